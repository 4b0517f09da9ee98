/* Compress a trained model: keep the blocks that matter, ship the rest as
 * nothing. For a checkpoint of train_mixer or train_vit and its test set:
 *
 *   1. the test accuracy of the head after every k blocks (the probes);
 *   2. the smallest k (at least 1) within --tolerance points of the full
 *      model (or the best k that fits --max-blocks or --max-ms, a time
 *      budget per image);
 *   3. the cut model written as a checkpoint (acn_save_cut: blocks 0..k-1,
 *      depth = k in the metadata), loaded back as a model of k blocks and
 *      checked to score exactly the probe's accuracy at k;
 *   4. inference of the full and the cut model side by side: images/s at
 *      batch 1 and 100, memory, file size;
 *   5. anytime inference (acn_mixer_anytime): each image leaves after the
 *      first block whose head is at least --thresholds sure; accuracy, mean
 *      and 95th-percentile blocks used and images/s per threshold, against
 *      the full model;
 *   6. with --prune 0.5,0.9: global pruning of the Linear weights instead of
 *      whole blocks (acn_prune), by magnitude |w| and by movement |w g| (g
 *      the training loss's gradient over --prune-batches batches of the
 *      model's own training images), and the test accuracy at each sparsity.
 * With --compare FILE a second checkpoint (say, the residual twin of an
 * ACN model) joins steps 1 and 5, so the two charts set them side by side.
 *
 *   cc -O2 examples/compress.c -o compress -lm
 *   ./compress --weights runs/mixer.safetensors --compare runs/residual.safetensors
 *   ./compress --weights runs/mixer.safetensors --max-ms 2 --save runs/mixer_cut.safetensors
 *
 * It prints tables and writes into --out (default compress-out/):
 *   probe_accuracy.svg   accuracy against blocks kept, the chosen k marked
 *   anytime.svg          accuracy against the mean blocks used, per threshold
 *   pruning.svg          accuracy against sparsity (with --prune)
 * and the cut checkpoint (default OUT/cut.safetensors), which train_mixer
 * --eval-only --weights evaluates as it evaluates any checkpoint.
 * docs/compression.md shows a run on CIFAR-10.
 */
#define ACN_IMPLEMENTATION
#include "../acn.h" /* in your project: "acn.h" */
#include "svg.h"
#include "train.h"
#include "train_images.h"

enum { MAX_THRESHOLDS = 16, TIME_REPS = 5 };

/* A model rebuilt from a weights file's metadata: a Mixer or a ViT. */
typedef struct model {
    int is_vit;
    acn_mixer mixer;
    acn_vit vit;
    int depth, classes;
    char wiring[32];
    char subset[96];       /* the class subset it was trained on ("all")     */
} model;

static acn_tensor *model_forward(acn_ctx *ctx, const void *mv, acn_tensor *images, acn_tensor **probes)
{
    const model *m = (const model *)mv;
    int n = probes ? TRAIN_MAXL + 1 : 0;
    return m->is_vit ? acn_vit_forward_ex(ctx, &m->vit, images, -1, probes, n)
                     : acn_mixer_forward_ex(ctx, &m->mixer, images, -1, probes, n);
}
static acn_tensor *model_truncated(acn_ctx *ctx, const model *m, acn_tensor *images, int k)
{
    return m->is_vit ? acn_vit_forward_ex(ctx, &m->vit, images, k, NULL, 0)
                     : acn_mixer_forward_ex(ctx, &m->mixer, images, k, NULL, 0);
}
static acn_status model_anytime(acn_ctx *ctx, const model *m, acn_tensor *images, const acn_exit_rule *r,
                                float *logits, int *blocks)
{
    return m->is_vit ? acn_vit_anytime(ctx, &m->vit, images, r, logits, blocks)
                     : acn_mixer_anytime(ctx, &m->mixer, images, r, logits, blocks);
}

/* An integer setting of the metadata into *v; 0, or -1 with a message. */
static int meta_int(const acn_st *st, const char *path, const char *key, int *v)
{
    const char *s = acn_st_meta(st, key);
    char *end;
    long x = s ? strtol(s, &end, 10) : 0;
    if (!s || end == s || *end || x < 0 || x > 1 << 20) {
        fprintf(stderr, "compress: %s: its metadata has no whole number \"%s\" (%s); is it a checkpoint of "
                "train_mixer or train_vit?\n", path, key, s ? s : "missing");
        return -1;
    }
    *v = (int)x;
    return 0;
}

/* The model of path's metadata, built in ctx with its weights loaded, and
 * the data flags it was trained with (data set, class subset) into o.
 * 0, or 1 with a message. */
static int model_load(acn_ctx *ctx, const char *path, model *m, image_opts *o)
{
    acn_st st;
    const char *kind, *wiring, *image, *v;
    int c = 0, h = 0, w = 0, rc = 1;
    memset(m, 0, sizeof *m);
    if (acn_st_read(ctx, path, &st)) {
        size_t len = strlen(path);
        fprintf(stderr, "compress: %s\n", acn_error(ctx));
        if (len < 12 || strcmp(path + len - 12, ".safetensors"))
            fprintf(stderr, "compress: a checkpoint's weights are PREFIX.safetensors (--weights %s.safetensors?)\n",
                    path);
        return 1;
    }
    kind = acn_st_meta(&st, "model");
    wiring = acn_st_meta(&st, "wiring");
    image = acn_st_meta(&st, "image");
    if (!kind || (strcmp(kind, "mixer") && strcmp(kind, "vit"))) {
        fprintf(stderr, "compress: %s holds %s%s; compress takes checkpoints of train_mixer and train_vit\n", path,
                kind ? "a model of kind " : "no \"model\" in its metadata", kind ? kind : "");
        goto out;
    }
    if (!wiring || acn_wiring_parse(wiring) < 0 || !image || sscanf(image, "%d x %d x %d", &c, &h, &w) != 3) {
        fprintf(stderr, "compress: %s: its metadata lacks the wiring or the image size\n", path);
        goto out;
    }
    if ((v = acn_st_meta(&st, "data"))) o->dataset = !strcmp(v, "fashion") ? "fashion" : "cifar10";
    if ((v = acn_st_meta(&st, "low_data"))) o->low_data = atoi(v); /* the training set it saw (--prune) */
    if ((v = acn_st_meta(&st, "limit"))) o->limit = atoi(v);
    snprintf(m->subset, sizeof m->subset, "%s", (v = acn_st_meta(&st, "class_subset")) ? v : "all");
    o->classes = m->subset;
    snprintf(m->wiring, sizeof m->wiring, "%s", wiring);
    m->is_vit = !strcmp(kind, "vit");
    if (m->is_vit) {
        acn_vit_config vc = acn_vit_defaults();
        vc.wiring = acn_wiring_parse(wiring);
        vc.channels = c, vc.image_h = h, vc.image_w = w;
        if (meta_int(&st, path, "patch", &vc.patch) || meta_int(&st, path, "width", &vc.width) ||
            meta_int(&st, path, "depth", &vc.depth) || meta_int(&st, path, "heads", &vc.heads) ||
            meta_int(&st, path, "mlp", &vc.mlp) || meta_int(&st, path, "classes", &vc.classes))
            goto out;
        if (acn_vit_build(ctx, &m->vit, &vc)) goto fail;
        m->depth = vc.depth;
        m->classes = vc.classes;
    } else {
        acn_mixer_config mc = acn_mixer_defaults();
        mc.wiring = acn_wiring_parse(wiring);
        mc.channels = c, mc.image_h = h, mc.image_w = w;
        mc.textbook = (v = acn_st_meta(&st, "block")) && !strcmp(v, "textbook");
        if (meta_int(&st, path, "patch", &mc.patch) || meta_int(&st, path, "width", &mc.width) ||
            meta_int(&st, path, "depth", &mc.depth) || meta_int(&st, path, "token_hidden", &mc.token_hidden) ||
            meta_int(&st, path, "channel_hidden", &mc.channel_hidden) || meta_int(&st, path, "classes", &mc.classes))
            goto out;
        if (acn_mixer_build(ctx, &m->mixer, &mc)) goto fail;
        m->depth = mc.depth;
        m->classes = mc.classes;
    }
    if (acn_load_params(ctx, path)) goto fail;
    if (m->depth < 1) {
        fprintf(stderr, "compress: %s has no blocks to cut\n", path);
        goto out;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "compress: %s: %s\n", path, acn_error(ctx));
out:
    acn_st_free(&st);
    return rc;
}

/* A context for one model, with an arena of arena_mb MB (a batch of 100
 * with probes through the paper's Mixer needs about 1.1 GB in the
 * residual wiring; pages are used as needed). */
static acn_ctx *ctx_new(int threads, int arena_mb)
{
    return train_ctx_new("compress", 0, arena_mb, threads, 64 + 16 * TRAIN_MAXL);
}

/* Test images first..first+b-1, normalised, as a (b, C, H, W) input. */
static acn_tensor *test_batch(acn_ctx *ctx, const image_data *d, int first, int b, float *x, int *y, int *idx)
{
    const acn_dataset *te = &d->test;
    int i, s[4];
    for (i = 0; i < b; i++) idx[i] = first + i;
    acn_data_batch(te, idx, b, x, y);
    acn_aug_normalize(x, b, te->c, te->h, te->w, d->recipe.mean, d->recipe.std);
    s[0] = b; s[1] = te->c; s[2] = te->h; s[3] = te->w;
    return acn_input(ctx, 4, s, x);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Seconds per image of inference after k blocks at batch size b: the
 * median over TIME_REPS of the time of `images` images in batches of b.
 * *arena_peak: the arena's peak of one batch (bytes). */
static double time_per_image(acn_ctx *ctx, const model *m, const image_data *d, int k, int b, int images,
                             float *x, int *y, int *idx, size_t *arena_peak)
{
    double t[TIME_REPS];
    int r, i, run = 0;
    int nograd = acn_set_no_grad(ctx, 1), train = acn_set_train(ctx, 0);
    if (b > d->test.n) b = d->test.n; /* a test set smaller than a batch (main says so) */
    for (r = 0; r < TIME_REPS; r++) {
        double t0 = now_s();
        for (i = run = 0; i < images; i += b, run += b) {
            acn_stats st;
            acn_reset(ctx);
            model_truncated(ctx, m, test_batch(ctx, d, i % (d->test.n - b + 1), b, x, y, idx), k);
            acn_stats_get(ctx, &st);
            if (arena_peak) *arena_peak = st.arena_peak;
        }
        t[r] = (now_s() - t0) / run;
    }
    acn_set_no_grad(ctx, nograd);
    acn_set_train(ctx, train);
    qsort(t, TIME_REPS, sizeof t[0], cmp_double);
    return t[TIME_REPS / 2];
}

/* Anytime inference over the test set at one confidence threshold: the
 * accuracy, the mean and 95th-percentile blocks used, and images/s. */
typedef struct anytime_row { float threshold, acc, mean_blocks; int p95; double img_s; } anytime_row;
static int anytime_eval(acn_ctx *ctx, const model *m, const image_data *d, float threshold, int batch, float *x,
                        int *y, int *idx, int *used, float *logits, anytime_row *row)
{
    const acn_dataset *te = &d->test;
    acn_exit_rule rule = acn_exit_confidence(threshold);
    long correct = 0, total = 0;
    double t0 = now_s();
    int i, j, c;
    for (i = 0; i < te->n; i += batch) {
        int b = te->n - i < batch ? te->n - i : batch;
        acn_reset(ctx);
        if (model_anytime(ctx, m, test_batch(ctx, d, i, b, x, y, idx), &rule, logits, used + i)) return 1;
        for (j = 0; j < b; j++) {
            const float *l = logits + (size_t)j * m->classes;
            int best = 0;
            for (c = 1; c < m->classes; c++)
                if (l[c] > l[best]) best = c;
            correct += best == y[j];
            total += used[i + j];
        }
    }
    row->img_s = te->n / (now_s() - t0);
    row->threshold = threshold;
    row->acc = 100.0f * (float)correct / (float)te->n;
    row->mean_blocks = (float)total / (float)te->n;
    qsort(used, (size_t)te->n, sizeof *used, cmp_int);
    row->p95 = used[(int)(0.95 * (te->n - 1) + 0.5)];
    return 0;
}

/* An x-y chart: series of points (x[i], y[i]) joined in order, a dot at
 * each (and its text, when `text` is given), an optional vertical marker at
 * mark_x (NAN: none) with its label. x ticks are 1, 2 or 5 times a power
 * of 10 apart (whole numbers for blocks). */
typedef struct xy_series { const char *label; const float *x, *y; int n; const char *const *text; } xy_series;
static int xy_chart(const char *path, const char *title, const char *xlabel, const char *ylabel, const xy_series *s,
                    int ns, float xmin, float xmax, float ymin, float ymax, float mark_x, const char *mark_label)
{
    const double W = 680, H = 420, L = 70, R = 210, T = 40, B = 55, pw = W - L - R, ph = H - T - B;
    FILE *f = fopen(path, "w");
    int i, k;
    char buf[64];
#define PX(v) (L + pw * ((v) - xmin) / (xmax - xmin))
#define PY(v) (T + ph - ph * (((v) < ymin ? ymin : (v) > ymax ? ymax : (v)) - ymin) / (ymax - ymin))
    if (!f) return -1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    svg_text(f, L + pw / 2, 24, "middle", 16, title, 0);
    for (k = 0; k <= 5; k++) { /* y grid and ticks */
        double vy = ymin + (ymax - ymin) * k / 5.0;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, PY(vy), L + pw,
                PY(vy));
        snprintf(buf, sizeof buf, "%g", vy);
        svg_text(f, L - 8, PY(vy) + 4, "end", 12, buf, 0);
    }
    {
        double range = xmax - xmin, step = pow(10.0, floor(log10(range))), vx;
        while (range / step < 4.0) { /* ..., 0.1, 0.2, 0.5, 1, 2, 5, 10, ...: 4 to 10 ticks */
            double lead = step / pow(10.0, floor(log10(step) + 1e-9));
            step /= lead > 4.0 ? 2.5 : 2.0;
        }
        for (vx = ceil(xmin / step) * step; vx <= xmax + 1e-9; vx += step) { /* x ticks */
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", PX(vx), T + ph,
                    PX(vx), T + ph + 5);
            snprintf(buf, sizeof buf, "%g", vx);
            svg_text(f, PX(vx), T + ph + 19, "middle", 12, buf, 0);
        }
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", L, T, pw,
            ph);
    svg_text(f, L + pw / 2, H - 12, "middle", 13, xlabel, 0);
    svg_text(f, 18, T + ph / 2, "middle", 13, ylabel, 1);
    if (mark_x == mark_x) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"5,4\"/>\n",
                PX(mark_x), T, PX(mark_x), T + ph);
        svg_text(f, PX(mark_x) + 4, T + 14, "start", 12, mark_label, 0);
    }
    for (i = 0; i < ns; i++) {
        const char *col = svg_colors[i % 6];
        double lastx = -1e9;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (k = 0; k < s[i].n; k++) fprintf(f, "%.1f,%.1f ", PX(s[i].x[k]), PY(s[i].y[k]));
        fputs("\"/>\n", f);
        for (k = 0; k < s[i].n; k++) { /* a text closer than 20 pixels to the last one written is left out */
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s[i].x[k]), PY(s[i].y[k]), col);
            if (s[i].text && s[i].text[k] && fabs(PX(s[i].x[k]) - lastx) >= 20.0) {
                /* above the dot for the first series, below for the second */
                svg_text(f, PX(s[i].x[k]), PY(s[i].y[k]) + (i % 2 ? 16 : -8), "middle", 10, s[i].text[k], 0);
                lastx = PX(s[i].x[k]);
            }
        }
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                L + pw + 15, T + 15 + 22.0 * i, L + pw + 40, T + 15 + 22.0 * i, col);
        svg_text(f, L + pw + 46, T + 19 + 22.0 * i, "start", 13, s[i].label, 0);
    }
#undef PX
#undef PY
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

static long file_size(const char *path)
{
    struct stat s;
    return stat(path, &s) ? -1 : (long)s.st_size;
}

/* The elements of the 2-D weights, those --prune prunes. */
static size_t prune_numel(acn_ctx *ctx)
{
    int np, i;
    acn_tensor *p = acn_params(ctx, &np);
    size_t n = 0;
    for (i = 0; i < np; i++)
        if (p[i].ndim == 2) n += p[i].numel;
    return n;
}

/* Step 6: the test accuracy of model m after global pruning of its 2-D
 * weights (the Linear layers and the classifier; not the patch embedding,
 * LayerNorms or biases) at each sparsity, by magnitude (acc[0][i]) and by
 * movement (acc[1][i]). The movement scores use the gradient of the
 * training loss (cross-entropy, no augmentation) summed over `batches`
 * batches of 64 of the training images in file order. The weights are
 * restored after each. 0, or 1 with a message. */
static int prune_eval(acn_ctx *ctx, const model *m, const image_data *d, const image_opts *o, const float *sp, int ns,
                      int batches, float (*acc)[MAX_THRESHOLDS])
{
    const acn_dataset *tr = &d->train;
    int np, i, j, b, method, rc = 1;
    acn_tensor *params = acn_params(ctx, &np), **w = (acn_tensor **)malloc(sizeof(acn_tensor *) * (size_t)np);
    int nw = 0, train_was = -1;
    acn_stats st;
    float *saved = NULL, *grads = NULL, *x = NULL, lacc[TRAIN_MAXL + 1];
    int *y = NULL, *idx = NULL;
    image_model md;
    acn_pruning pr;
    double loss;
    size_t per = (size_t)tr->c * tr->h * tr->w;
    memset(&pr, 0, sizeof pr);
    acn_stats_get(ctx, &st);
    for (i = 0; w && i < np; i++)
        if (params[i].ndim == 2) w[nw++] = &params[i];
    saved = (float *)malloc(sizeof(float) * st.param_floats_used);
    grads = (float *)malloc(sizeof(float) * st.param_floats_used);
    x = (float *)malloc(sizeof(float) * per * 64);
    y = (int *)malloc(sizeof(int) * 64);
    idx = (int *)malloc(sizeof(int) * 64);
    if (!w || !saved || !grads || !x || !y || !idx) {
        fprintf(stderr, "compress: out of memory for pruning\n");
        goto out;
    }
    memcpy(saved, params[0].data, sizeof(float) * st.param_floats_used);
    acn_zero_grad(ctx);
    train_was = acn_set_train(ctx, 0);
    for (b = 0; b < batches && b * 64 < tr->n; b++) { /* the gradient for the movement scores, summed */
        int n = tr->n - b * 64 < 64 ? tr->n - b * 64 : 64, s[4];
        for (j = 0; j < n; j++) idx[j] = b * 64 + j;
        acn_data_batch(tr, idx, n, x, y);
        acn_aug_normalize(x, n, tr->c, tr->h, tr->w, d->recipe.mean, d->recipe.std);
        s[0] = n; s[1] = tr->c; s[2] = tr->h; s[3] = tr->w;
        acn_reset(ctx);
        if (acn_backward(ctx, acn_cross_entropy(ctx, model_forward(ctx, m, acn_input(ctx, 4, s, x), NULL), y, 0.0f,
                                                -1))) {
            train_report(ctx, "compress", "pruning: the gradient failed: ");
            goto out;
        }
    }
    memcpy(grads, params[0].grad, sizeof(float) * st.param_floats_used);
    memset(&md, 0, sizeof md);
    md.m = m;
    md.depth = m->depth;
    md.forward = model_forward;
    for (method = ACN_PRUNE_MAGNITUDE; method <= ACN_PRUNE_MOVEMENT; method++)
        for (i = 0; i < ns; i++) {
            memcpy(params[0].data, saved, sizeof(float) * st.param_floats_used);
            memcpy(params[0].grad, grads, sizeof(float) * st.param_floats_used);
            if (acn_prune(ctx, &pr, w, nw, sp[i], method) || acn_prune_apply(ctx, &pr, NULL) ||
                image_eval(ctx, &md, d, o, lacc, &loss)) {
                train_report(ctx, "compress", "pruning failed: ");
                goto out;
            }
            acc[method][i] = lacc[m->depth];
            acn_pruning_free(&pr);
        }
    rc = 0;
out:
    if (saved) memcpy(params[0].data, saved, sizeof(float) * st.param_floats_used);
    if (train_was >= 0) acn_set_train(ctx, train_was);
    acn_zero_grad(ctx);
    acn_pruning_free(&pr);
    free(w);
    free(saved);
    free(grads);
    free(x);
    free(y);
    free(idx);
    return rc;
}

/* A list "0.5,0.9,0.99" (of --thresholds or --prune) into t; the count, or
 * -1 with a message. */
static int parse_fractions(const char *flag_name, const char *s, float *t)
{
    int n = 0;
    while (*s && n < MAX_THRESHOLDS) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || (*end && *end != ',') || !(v > 0.0 && v <= 1.0)) {
            fprintf(stderr, "compress: %s: expected numbers in (0, 1] separated by commas, at %s\n", flag_name, s);
            return -1;
        }
        t[n++] = (float)v;
        s = *end ? end + 1 : end;
    }
    if (*s) fprintf(stderr, "compress: %s: at most %d\n", flag_name, MAX_THRESHOLDS);
    return *s || !n ? -1 : n;
}

int main(int argc, char **argv)
{
    const char *weights = NULL, *compare = NULL, *data_dir = NULL, *out = "compress-out", *save = NULL;
    const char *thresholds = "0.5,0.6,0.7,0.8,0.9,0.95,0.99", *prune = NULL;
    float tolerance = 1.0f, max_ms = 0.0f, th[MAX_THRESHOLDS], sp[MAX_THRESHOLDS];
    int nsp = 0, prune_batches = 16;
    static float pacc[2][2][MAX_THRESHOLDS];
    int max_blocks = -1, threads = 0, limit = 0, batch = 100, skip_anytime = 0, arena_mb = 2048, n = 0, rc = 1, nm, i,
        j, k, nt;
    flag f[20];
    acn_ctx *ctx[2] = {NULL, NULL}, *cc = NULL;
    static model m[2], cut;
    image_data d;
    image_opts o = image_opts_defaults();
    image_model md;
    float acc[2][TRAIN_MAXL + 1], cut_acc[TRAIN_MAXL + 1], *x = NULL, *logits = NULL;
    int *y = NULL, *idx = NULL, *used = NULL;
    double loss;
    char cut_path[1100], path[1200], label[64];
    static anytime_row rows[2][MAX_THRESHOLDS + 1];

    memset(&d, 0, sizeof d);
    F_("--weights", FLAG_STR, &weights, 0, 0, RESUME_ANY, "the checkpoint to compress (PREFIX.safetensors of train_mixer or train_vit)");
    F_("--compare", FLAG_STR, &compare, 0, 0, RESUME_ANY, "a second checkpoint for the probe and anytime charts (e.g. the residual twin)");
    F_("--data-dir", FLAG_STR, &data_dir, 0, 0, RESUME_ANY, "the test set's folder (default: as train_mixer's)");
    F_("--tolerance", FLAG_FLOAT, &tolerance, 0, 100, RESUME_ANY, "keep the fewest blocks within this many points of the full model");
    F_("--max-blocks", FLAG_INT, &max_blocks, -1, TRAIN_MAXL, RESUME_ANY, "instead: the best k of at most this many blocks, at least 1 (-1: no budget)");
    F_("--max-ms", FLAG_FLOAT, &max_ms, 0, 1e6, RESUME_ANY, "instead: the best k whose batch-100 inference takes at most this many ms per image (0: no budget)");
    F_("--save", FLAG_STR, &save, 0, 0, RESUME_ANY, "where to write the cut checkpoint (default OUT/cut.safetensors)");
    F_("--out", FLAG_STR, &out, 0, 0, RESUME_ANY, "folder for the SVG charts and the cut checkpoint");
    F_("--thresholds", FLAG_STR, &thresholds, 0, 0, RESUME_ANY, "confidence thresholds of anytime inference");
    F_("--no-anytime", FLAG_SWITCH, &skip_anytime, 0, 0, RESUME_ANY, "skip anytime inference");
    F_("--prune", FLAG_STR, &prune, 0, 0, RESUME_ANY, "also prune the Linear weights to these sparsities, e.g. 0.5,0.7,0.9 (magnitude and movement)");
    F_("--prune-batches", FLAG_INT, &prune_batches, 1, 1e6, RESUME_ANY, "batches of 64 training images for the movement scores");
    F_("--limit", FLAG_INT, &limit, 0, 1e9, RESUME_ANY, "use only the first N test images (0: all)");
    F_("--threads", FLAG_INT, &threads, 0, TRAIN_MAX_THREADS, RESUME_ANY, "threads (0: ACN_THREADS or every core)");
    F_("--arena-mb", FLAG_INT, &arena_mb, 16, 1 << 20, RESUME_ANY, "the arena of each model, in MB (pages are used as needed)");
    if ((rc = flags_parse(argc, argv, f, n, "Cuts a trained Mixer or ViT to the blocks it needs and measures what that "
                          "buys, and tries anytime inference.")))
        return rc == 1 ? 0 : 2;
    rc = 1;
    if (!weights) {
        fprintf(stderr, "compress: give --weights PREFIX.safetensors, a checkpoint of train_mixer or train_vit\n");
        return 2;
    }
    if ((nt = parse_fractions("--thresholds", thresholds, th)) < 0) return 2;
    if (prune && (nsp = parse_fractions("--prune", prune, sp)) < 0) return 2;
    if (max_blocks >= 0 && max_ms > 0) {
        fprintf(stderr, "compress: --max-blocks and --max-ms are two budgets; give one\n");
        return 2;
    }
    if (save) snprintf(cut_path, sizeof cut_path, "%s", save);
    else snprintf(cut_path, sizeof cut_path, "%s/cut.safetensors", out);
    nm = compare ? 2 : 1;
    for (i = 0; i < nm; i++) {
        image_opts oi = image_opts_defaults();
        if (!(ctx[i] = ctx_new(threads, arena_mb))) goto done;
        if (model_load(ctx[i], i ? compare : weights, &m[i], &oi)) goto done;
        if (i == 0) o = oi;
        else if (strcmp(oi.dataset, o.dataset) || strcmp(oi.classes, o.classes) || m[1].classes != m[0].classes) {
            fprintf(stderr, "compress: --compare %s was trained on other data than --weights %s\n", compare, weights);
            goto done;
        }
    }
    o.data_dir = data_dir;
    o.eval_batch = batch;
    if (image_data_load(ctx[0], "compress", &o, &d)) goto done;
    if (limit && limit < d.test.n) d.test.n = limit;
    x = (float *)malloc(sizeof(float) * (size_t)batch * d.test.c * d.test.h * d.test.w);
    y = (int *)malloc(sizeof(int) * (size_t)batch);
    idx = (int *)malloc(sizeof(int) * (size_t)batch);
    used = (int *)malloc(sizeof(int) * (size_t)d.test.n);
    logits = (float *)malloc(sizeof(float) * (size_t)batch * m[0].classes);
    if (!x || !y || !idx || !used || !logits) {
        fprintf(stderr, "compress: out of memory\n");
        goto done;
    }
    mkdir(out, 0755);

    /* 1. the probes */
    for (i = 0; i < nm; i++) {
        memset(&md, 0, sizeof md);
        md.m = &m[i];
        md.depth = m[i].depth;
        md.forward = model_forward;
        if (image_eval(ctx[i], &md, &d, &o, acc[i], &loss)) {
            train_report(ctx[i], "compress", "evaluation failed: ");
            goto done;
        }
        printf("%s (%s, %s wiring, %d blocks) on %d test images:\n", i ? compare : weights,
               m[i].is_vit ? "ViT" : "Mixer", m[i].wiring, m[i].depth, d.test.n);
        print_probes(acc[i], m[i].depth);
    }

    /* 2. the cut: the fewest blocks within the tolerance, or the best within a budget */
    {
        int L = m[0].depth, kmax = L;
        double t0 = 0.0, tl = 0.0;
        if (max_ms > 0) { /* inference time is linear in k: measure k = 0 and k = L */
            t0 = time_per_image(ctx[0], &m[0], &d, 0, batch, batch, x, y, idx, NULL);
            tl = time_per_image(ctx[0], &m[0], &d, L, batch, batch, x, y, idx, NULL);
            for (kmax = L; kmax > 0 && 1e3 * (t0 + (tl - t0) * kmax / L) > max_ms; kmax--) {}
            printf("budget %.3g ms per image: %.3f ms with no block, %.3f ms with all %d, so at most %d blocks\n",
                   max_ms, 1e3 * t0, 1e3 * tl, L, kmax);
        } else if (max_blocks >= 0) {
            kmax = max_blocks < L ? max_blocks : L;
        }
        if (kmax < 1) kmax = 1; /* a cut keeps at least one block */
        if (max_ms > 0 || max_blocks >= 0) {
            for (k = j = 1; j <= kmax; j++)
                if (acc[0][j] > acc[0][k]) k = j;
            printf("chosen: k = %d, the most accurate probe of at most %d blocks (%.2f%%; the full model %.2f%%)\n", k,
                   kmax, acc[0][k], acc[0][L]);
        } else {
            for (k = 1; k < L && acc[0][k] < acc[0][L] - tolerance; k++) {}
            printf("chosen: k = %d of %d blocks, the fewest within %g point%s of the full model (%.2f%% against "
                   "%.2f%%)\n", k, L, tolerance, tolerance == 1.0f ? "" : "s", acc[0][k], acc[0][L]);
        }
    }

    /* 3. the cut model, written, read back as a model of k blocks, evaluated */
    {
        acn_st st;
        if (acn_st_read(ctx[0], weights, &st)) {
            train_report(ctx[0], "compress", "");
            goto done;
        }
        make_parent(cut_path);
        if (acn_save_cut(ctx[0], cut_path, k, (const char *const *)st.meta, st.n_meta)) {
            acn_st_free(&st);
            train_report(ctx[0], "compress", "writing the cut model failed: ");
            goto done;
        }
        acn_st_free(&st);
    }
    {
        image_opts co = image_opts_defaults();
        if (!(cc = ctx_new(threads, arena_mb)) || model_load(cc, cut_path, &cut, &co)) goto done;
        memset(&md, 0, sizeof md);
        md.m = &cut;
        md.depth = cut.depth;
        md.forward = model_forward;
        if (image_eval(cc, &md, &d, &o, cut_acc, &loss)) {
            train_report(cc, "compress", "evaluation failed: ");
            goto done;
        }
        printf("wrote %s: %d blocks; read back as a model of %d blocks, it scores %.2f%% (the probe after %d "
               "blocks: %.2f%%)%s\n", cut_path, k, cut.depth, cut_acc[cut.depth], k, acc[0][k],
               cut_acc[cut.depth] == acc[0][k] ? "" : "  MISMATCH");
        if (cut.depth != k || cut_acc[cut.depth] != acc[0][k]) goto done;
    }

    /* 4. full and cut side by side */
    {
        size_t peak_full = 0, peak_cut = 0;
        double b1_full = time_per_image(ctx[0], &m[0], &d, -1, 1, 20, x, y, idx, NULL);
        double b1_cut = time_per_image(cc, &cut, &d, -1, 1, 20, x, y, idx, NULL);
        double bb_full = time_per_image(ctx[0], &m[0], &d, -1, batch, batch, x, y, idx, &peak_full);
        double bb_cut = time_per_image(cc, &cut, &d, -1, batch, batch, x, y, idx, &peak_cut);
        double p_full = 4.0 * (double)acn_param_numel(ctx[0]), p_cut = 4.0 * (double)acn_param_numel(cc);
        printf("\n%-28s %12s %12s %8s\n", "inference (median of 5)", "full", "cut", "ratio");
        printf("%-28s %12d %12d %8.2f\n", "blocks", m[0].depth, cut.depth, (double)cut.depth / m[0].depth);
        printf("%-28s %12.2f %12.2f %8.2f\n", "test accuracy (%)", acc[0][m[0].depth], cut_acc[cut.depth],
               cut_acc[cut.depth] / acc[0][m[0].depth]);
        printf("%-28s %12.1f %12.1f %8.2f\n", "images/s, batch 1", 1 / b1_full, 1 / b1_cut, b1_full / b1_cut);
        char bl[32];
        snprintf(bl, sizeof bl, "images/s, batch %d", batch < d.test.n ? batch : d.test.n);
        printf("%-28s %12.1f %12.1f %8.2f\n", bl, 1 / bb_full, 1 / bb_cut, bb_full / bb_cut);
        printf("%-28s %12.2f %12.2f %8.2f\n", "parameters (MB)", p_full / 1e6, p_cut / 1e6, p_cut / p_full);
        snprintf(bl, sizeof bl, "memory, batch %d (MB)", batch < d.test.n ? batch : d.test.n);
        printf("%-28s %12.2f %12.2f %8.2f\n", bl, (p_full + (double)peak_full) / 1e6,
               (p_cut + (double)peak_cut) / 1e6, (p_cut + (double)peak_cut) / (p_full + (double)peak_full));
        printf("%-28s %12.2f %12.2f %8.2f\n", "file (MB)", file_size(weights) / 1e6, file_size(cut_path) / 1e6,
               (double)file_size(cut_path) / (double)file_size(weights));
        printf("(memory: the parameters and the arena's peak for one batch; threads: %d; CPU: %s)\n",
               acn_threads(ctx[0]), train_cpu_model());
    }
    {
        float xs[TRAIN_MAXL + 1];
        xy_series s[2];
        char title[160];
        for (j = 0; j <= TRAIN_MAXL; j++) xs[j] = (float)j;
        for (i = 0; i < nm; i++) {
            static char labels[2][48];
            snprintf(labels[i], sizeof labels[i], "%s", m[i].wiring);
            s[i].label = labels[i];
            s[i].x = xs;
            s[i].y = acc[i];
            s[i].n = m[i].depth + 1;
            s[i].text = NULL;
        }
        snprintf(label, sizeof label, "cut at k = %d", k);
        snprintf(title, sizeof title, "Test accuracy after k blocks (%s)", m[0].is_vit ? "ViT" : "Mixer");
        snprintf(path, sizeof path, "%s/probe_accuracy.svg", out);
        if (xy_chart(path, title, "blocks kept (k)", "test accuracy (%)", s, nm, 0.0f,
                     (float)(m[0].depth > m[nm - 1].depth ? m[0].depth : m[nm - 1].depth), 0.0f, 100.0f, (float)k,
                     label)) {
            fprintf(stderr, "compress: cannot write %s: %s\n", path, strerror(errno));
            goto done;
        }
    }

    /* 5. anytime inference */
    if (!skip_anytime) {
        float ax[2][MAX_THRESHOLDS + 1], ay[2][MAX_THRESHOLDS + 1], ymin = 100.0f, ymax = 0.0f;
        int maxd = 0;
        xy_series s[2];
        static char tnames[MAX_THRESHOLDS + 1][16];
        static const char *tlabels[MAX_THRESHOLDS + 1];
        for (j = 0; j <= nt; j++) {
            snprintf(tnames[j], sizeof tnames[j], j < nt ? "%g" : "full", (double)th[j < nt ? j : 0]);
            tlabels[j] = tnames[j];
        }
        for (i = 0; i < nm; i++) {
            printf("\nanytime inference, %s (%s wiring): each image leaves at the first block whose head is at least "
                   "THRESHOLD sure\n%-10s %10s %12s %10s %10s\n", i ? compare : weights, m[i].wiring, "threshold",
                   "accuracy", "mean blocks", "p95 blocks", "images/s");
            for (j = 0; j <= nt; j++) { /* the thresholds, then the full model (a threshold of 2 never exits) */
                anytime_row *r = &rows[i][j];
                if (anytime_eval(ctx[i], &m[i], &d, j < nt ? th[j] : 2.0f, batch, x, y, idx, used, logits, r)) {
                    train_report(ctx[i], "compress", "anytime inference failed: ");
                    goto done;
                }
                if (j < nt) printf("%-10g %9.2f%% %12.2f %10d %10.1f\n", r->threshold, r->acc, r->mean_blocks, r->p95,
                                   r->img_s);
                else printf("%-10s %9.2f%% %12.2f %10d %10.1f\n", "full", r->acc, r->mean_blocks, r->p95, r->img_s);
                ax[i][j] = r->mean_blocks;
                ay[i][j] = r->acc;
                ymin = fminf(ymin, r->acc);
                ymax = fmaxf(ymax, r->acc);
            }
            s[i].label = m[i].wiring;
            s[i].x = ax[i];
            s[i].y = ay[i];
            s[i].n = nt + 1;
            s[i].text = tlabels;
            if (m[i].depth > maxd) maxd = m[i].depth;
        }
        ymin = fmaxf(0.0f, floorf(ymin) - 1.0f); /* a point of room each side */
        ymax = fminf(100.0f, ceilf(ymax) + 1.0f);
        snprintf(path, sizeof path, "%s/anytime.svg", out);
        if (xy_chart(path, "Anytime inference: accuracy against compute", "mean blocks used per image",
                     "test accuracy (%)", s, nm, 0.0f, (float)maxd, ymin, ymax, NAN, "")) {
            fprintf(stderr, "compress: cannot write %s: %s\n", path, strerror(errno));
            goto done;
        }
    }
    /* 6. pruning */
    if (prune) {
        xy_series s[4];
        static char labels[4][48];
        static float px[MAX_THRESHOLDS + 1], py[2][2][MAX_THRESHOLDS + 1];
        float ymax = 0.0f;
        for (i = 0; i < nm; i++) {
            if (prune_eval(ctx[i], &m[i], &d, &o, sp, nsp, prune_batches, pacc[i])) goto done;
            printf("\npruning %s (%s wiring): the 2-D weights, %zu of %zu parameters, pruned globally\n%-10s %12s "
                   "%12s\n", i ? compare : weights, m[i].wiring, prune_numel(ctx[i]), acn_param_numel(ctx[i]),
                   "sparsity", "magnitude", "movement");
            printf("%-10s %11.2f%% %11.2f%%\n", "0", acc[i][m[i].depth], acc[i][m[i].depth]);
            for (j = 0; j < nsp; j++) printf("%-10g %11.2f%% %11.2f%%\n", sp[j], pacc[i][0][j], pacc[i][1][j]);
            for (k = 0; k < 2; k++) { /* from sparsity 0, the model as it is */
                xy_series *q = &s[2 * i + k];
                snprintf(labels[2 * i + k], sizeof labels[0], "%s, %s", m[i].wiring, k ? "movement" : "magnitude");
                px[0] = 0.0f;
                py[i][k][0] = acc[i][m[i].depth];
                for (j = 0; j < nsp; j++) px[j + 1] = sp[j], py[i][k][j + 1] = pacc[i][k][j];
                q->label = labels[2 * i + k];
                q->x = px;
                q->y = py[i][k];
                q->n = nsp + 1;
                q->text = NULL;
                for (j = 0; j <= nsp; j++) ymax = fmaxf(ymax, py[i][k][j]);
            }
        }
        snprintf(path, sizeof path, "%s/pruning.svg", out);
        if (xy_chart(path, "Global pruning of the Linear weights", "sparsity", "test accuracy (%)", s, 2 * nm, 0.0f,
                     1.0f, 0.0f, fminf(100.0f, ceilf(ymax / 10.0f) * 10.0f), NAN, "")) {
            fprintf(stderr, "compress: cannot write %s: %s\n", path, strerror(errno));
            goto done;
        }
    }
    printf("\nwrote %s/probe_accuracy.svg%s%s and %s\n", out, skip_anytime ? "" : ", anytime.svg",
           prune ? ", pruning.svg" : "", cut_path);
    rc = 0;
done:
    image_data_free(&d);
    for (i = 0; i < 2; i++)
        if (ctx[i]) acn_ctx_free(ctx[i]);
    if (cc) acn_ctx_free(cc);
    free(x);
    free(y);
    free(idx);
    free(used);
    free(logits);
    return rc;
}
