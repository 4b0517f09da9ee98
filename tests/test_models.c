/* The models against PyTorch (tests/reference/models.py): for every model
 * in every wiring, the logits, the loss, the head's logits after every
 * block (probes) and the gradient of every parameter, with
 * ||acn - torch|| / ||torch|| under 1e-4 per tensor; the parameter count
 * against sum(p.numel()) of the reference module. Also: probes equal
 * truncated inference at every k; the detached ACN's gradients equal the
 * direct-gradient terms of the 1-D chain (docs/models.md, "Wirings"); recomputation changes nothing.
 * Usage: test_models [DIR [PAPER_DIR]]  (defaults tests/reference, none) */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"

enum { MLP, MIXER, VIT, BERT };
typedef struct model {
    int kind;
    acn_mlp mlp;
    acn_mixer mixer;
    acn_vit vit;
    acn_bert bert;
} model;

static acn_st ref;
static char key[256];

/* the configurations of models.py */
static acn_mlp_config cfg_mlp(int relu)
{
    acn_mlp_config c = acn_mlp_defaults();
    c.in = relu ? 7 : 10;
    c.width = relu ? 12 : 16;
    c.depth = relu ? 5 : 4;
    c.classes = relu ? 4 : 3;
    c.act = relu ? ACN_ACT_RELU : ACN_ACT_GELU;
    c.block_ln = c.head_ln = !relu;
    return c;
}
static acn_mixer_config cfg_mixer(int textbook, int paper)
{
    acn_mixer_config c = paper ? acn_mixer_defaults() : t_small_mixer();
    if (!paper) c.textbook = textbook;
    return c;
}

typedef struct spec {
    const char *name;
    int kind, relu, textbook, paper, recompute;
} spec;

/* The model of spec s in a wiring, with L blocks (-1: the spec's depth). */
static int build_depth(acn_ctx *ctx, model *m, const spec *s, int wiring, int L)
{
    m->kind = s->kind;
    switch (s->kind) {
    case MLP: {
        acn_mlp_config c = cfg_mlp(s->relu);
        c.wiring = wiring;
        if (L >= 0) c.depth = L;
        return acn_mlp_build(ctx, &m->mlp, &c);
    }
    case MIXER: {
        acn_mixer_config c = cfg_mixer(s->textbook, s->paper);
        c.wiring = wiring;
        c.recompute = s->recompute;
        if (L >= 0) c.depth = L;
        return acn_mixer_build(ctx, &m->mixer, &c);
    }
    case VIT: {
        acn_vit_config c = t_small_vit();
        c.wiring = wiring;
        c.recompute = s->recompute;
        if (L >= 0) c.depth = L;
        return acn_vit_build(ctx, &m->vit, &c);
    }
    default: {
        acn_bert_config c = t_small_bert();
        c.wiring = wiring;
        c.recompute = s->recompute;
        if (L >= 0) c.depth = L;
        return acn_bert_build(ctx, &m->bert, &c);
    }
    }
}
static int build(acn_ctx *ctx, model *m, const spec *s, int wiring) { return build_depth(ctx, m, s, wiring, -1); }
static int depth(const model *m)
{
    switch (m->kind) {
    case MLP: return m->mlp.cfg.depth;
    case MIXER: return m->mixer.cfg.depth;
    case VIT: return m->vit.cfg.depth;
    default: return m->bert.cfg.depth;
    }
}

/* A reference tensor into the arena; NULL if absent. */
static acn_tensor *get(acn_ctx *ctx, const char *name)
{
    const acn_st_entry *e = acn_st_find(&ref, name);
    int shape[4], d;
    acn_tensor *t;
    if (!e) return NULL;
    for (d = 0; d < e->ndim; d++) shape[d] = (int)e->shape[d];
    t = acn_new(ctx, e->ndim, shape, 0);
    if (t) acn_st_get_f32(ctx, &ref, name, t->data, t->numel);
    return t;
}
static int *ints(acn_ctx *ctx, const char *name)
{
    acn_tensor *t = get(ctx, name);
    int *v;
    size_t i;
    if (!t) return NULL;
    v = (int *)malloc(t->numel * sizeof(int));
    for (i = 0; i < t->numel; i++) v[i] = (int)t->data[i];
    return v;
}
static double worst;
static int n_zero;
static double norm(const float *v, size_t n)
{
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}
/* ||v - ref|| / ||ref|| < 1e-4. With a scale G > 0 (the norm of all the
 * reference gradients), a reference tensor below 1e-5 G is a gradient the
 * architecture makes zero (a per-token bias before a LayerNorm over
 * features, a key bias under softmax, saturated attention): both sides
 * must then be negligible, ||v - ref|| < 1e-5 G, as a relative error of
 * two roundings of zero means nothing. */
static void same_scaled(acn_ctx *ctx, const char *what, const char *name, const float *v, size_t n, double G)
{
    acn_tensor *want = get(ctx, name);
    double e, nb;
    CHECK(want && want->numel == n, "%s: %s missing or of another size", what, name);
    if (!want || want->numel != n) return;
    nb = norm(want->data, n);
    if (G > 0.0 && nb < 1e-5 * G) {
        double d = t_relerr(v, want->data, n) * (nb > 0.0 ? nb : 1.0);
        n_zero++;
        CHECK(d < 1e-5 * G, "%s: %s: a zero gradient (%.3g of %.3g) differs by %.3g", what, name, nb, G, d);
        return;
    }
    e = t_relerr(v, want->data, n);
    if (e > worst) worst = e;
    CHECK(e < 1e-4, "%s: %s: relative error %.3g", what, name, e);
}
static void same(acn_ctx *ctx, const char *what, const char *name, const float *v, size_t n)
{
    same_scaled(ctx, what, name, v, n, 0.0);
}

/* The forward of model m on the reference batch; for BERT, head selects
 * MLM or CLS. k and probes as in acn.h. */
typedef struct batch { acn_tensor *x; int *labels, *tokens, *mask, *mlm, B, T; } batch;
static acn_tensor *forward(acn_ctx *ctx, const model *m, const batch *b, int head, int k, acn_tensor **probes)
{
    int n = probes ? ACN_MAX_BLOCKS + 1 : 0; /* the arrays hold this many */
    switch (m->kind) {
    case MLP: return acn_mlp_forward_ex(ctx, &m->mlp, b->x, k, probes, n);
    case MIXER: return acn_mixer_forward_ex(ctx, &m->mixer, b->x, k, probes, n);
    case VIT: return acn_vit_forward_ex(ctx, &m->vit, b->x, k, probes, n);
    default: return acn_bert_forward_ex(ctx, &m->bert, b->tokens, b->mask, b->B, b->T, head, k, probes, n);
    }
}

/* Anytime inference against the probes of the same batch: each input's
 * logits are the probe after the blocks it used, bit for bit, and it used
 * the blocks its rule asks for (recomputed here from the probes). */
static int exit_every_other(void *user, int blocks, const float *logits, int n, int classes, const int *rows,
                            unsigned char *leave)
{
    int r, L = *(const int *)user;
    (void)logits;
    (void)classes;
    for (r = 0; r < n; r++) leave[r] = rows[r] % L + 1 == blocks; /* input i leaves after i % L + 1 blocks */
    return 0;
}
static int argmax_of(const float *l, int C)
{
    int c, best = 0;
    for (c = 1; c < C; c++)
        if (l[c] > l[best]) best = c;
    return best;
}
static acn_status anytime(acn_ctx *ctx, const model *m, const batch *b, const acn_exit_rule *r, float *lg, int *bl)
{
    switch (m->kind) {
    case MLP: return acn_mlp_anytime(ctx, &m->mlp, b->x, r, lg, bl);
    case MIXER: return acn_mixer_anytime(ctx, &m->mixer, b->x, r, lg, bl);
    default: return acn_vit_anytime(ctx, &m->vit, b->x, r, lg, bl);
    }
}
static void anytime_check(acn_ctx *ctx, const model *m, const batch *b, acn_tensor **probes, int L, const char *what)
{
    int B = b->x->shape[0], C = probes[0]->shape[1], rule, i, j, bl[256], want[256], n_diff = 0, n_early = 0;
    float lg[4096];
    if (B > 256 || B * C > 4096 || L < 1) return;
    for (rule = 0; rule < 5; rule++) {
        acn_exit_rule r;
        acn_mark mk = acn_mark_get(ctx);
        const char *names[5] = {"never (threshold 2)", "always (threshold 0)", "input i after i % L + 1 blocks",
                                "stable for 2 blocks", "confidence 0.4"};
        switch (rule) {
        case 0: r = acn_exit_confidence(2.0f); break;
        case 1: r = acn_exit_confidence(0.0f); break;
        case 2: r = acn_exit_custom(exit_every_other, &L); break;
        case 3: r = acn_exit_stable(2); break;
        default: r = acn_exit_confidence(0.4f); break;
        }
        for (i = 0; i < B; i++) { /* what the rule should do, from the probes */
            want[i] = L;
            for (j = 1; j < L; j++) {
                const float *p = acn_data(ctx, probes[j]) + (size_t)i * C;
                int go;
                if (rule == 0) go = 0;
                else if (rule == 1) go = 1;
                else if (rule == 2) go = i % L + 1 == j;
                else if (rule == 3)
                    go = j >= 2 && argmax_of(p, C) == argmax_of(acn_data(ctx, probes[j - 1]) + (size_t)i * C, C);
                else {
                    double z = 0.0;
                    int c, a = argmax_of(p, C);
                    for (c = 0; c < C; c++) z += exp((double)p[c] - p[a]);
                    go = 1.0 / z >= 0.4;
                }
                if (go) { want[i] = j; break; }
            }
        }
        memset(bl, 0, sizeof bl);
        CHECK(anytime(ctx, m, b, &r, lg, bl) == ACN_OK, "%s: anytime, %s: %s", what, names[rule], acn_error(ctx));
        for (i = 0; i < B; i++) {
            n_diff += bl[i] != want[i] ||
                      memcmp(lg + (size_t)i * C, acn_data(ctx, probes[bl[i]]) + (size_t)i * C, sizeof(float) * C);
            n_early += bl[i] < L;
        }
        CHECK(n_diff == 0, "%s: anytime, %s: %d of %d inputs left at another block or with other logits than the "
              "probe's", what, names[rule], n_diff, B);
        acn_mark_rewind(ctx, mk);
        n_diff = 0;
    }
    CHECK(n_early > 0, "%s: anytime: no input ever left early", what);
}

/* Anytime inference on a model of the paper's width, down to batches of a
 * few rows: an input's logits do not depend on how many others are still
 * in its batch (the head's product has 128 x 10 weights; the kernel chosen
 * for it must not change as the batch shrinks). */
static int keep_five(void *user, int blocks, const float *logits, int n, int classes, const int *rows,
                     unsigned char *leave)
{
    int r;
    (void)user; (void)logits; (void)classes;
    for (r = 0; r < n; r++) leave[r] = blocks == 1 ? rows[r] >= 5 : rows[r] >= 2; /* 100 -> 5 -> 2 rows */
    return 0;
}
static void anytime_wide(void)
{
    acn_ctx *ctx;
    acn_mlp m;
    acn_mlp_config c = acn_mlp_defaults(); /* 64 -> 12 x 128 -> 10 */
    acn_tensor *x, *probes[ACN_MAX_BLOCKS + 1];
    acn_exit_rule r = acn_exit_custom(keep_five, NULL);
    static float lg[100 * 10];
    int s[2] = {100, 64}, bl[100], i, diff = 0, L;
    acn_ctx_new(&ctx, NULL);
    c.depth = L = 4;
    CHECK(acn_mlp_build(ctx, &m, &c) == ACN_OK, "wide MLP: %s", acn_error(ctx));
    x = acn_new(ctx, 2, s, 0);
    for (i = 0; x && i < 100 * 64; i++) x->data[i] = acn_rng_normal(acn_ctx_rng(ctx));
    acn_set_no_grad(ctx, 1);
    acn_mlp_forward_ex(ctx, &m, x, -1, probes, ACN_MAX_BLOCKS + 1);
    CHECK(acn_mlp_anytime(ctx, &m, x, &r, lg, bl) == ACN_OK, "wide anytime: %s", acn_error(ctx));
    for (i = 0; i < 100; i++) {
        int want = i >= 5 ? 1 : i >= 2 ? 2 : L;
        diff += bl[i] != want || memcmp(lg + i * 10, acn_data(ctx, probes[want]) + i * 10, sizeof(float) * 10);
    }
    CHECK(diff == 0, "anytime at width 128, the batch shrunk to 5 and then 2 rows: %d of 100 inputs differ from "
          "their probe", diff);
    acn_ctx_free(ctx);
}

static void parity(const char *dir, const spec *s)
{
    char path[512], what[96];
    int wiring, i, j, nh, n_params;
    size_t numel;
    const char *meta;
    snprintf(path, sizeof path, "%s/%s.ref.safetensors", dir, s->name);
    {
        acn_ctx *tmp;
        acn_ctx_new(&tmp, NULL);
        if (acn_st_read(tmp, path, &ref)) {
            CHECK(0, "%s", acn_error(tmp));
            acn_ctx_free(tmp);
            return;
        }
        acn_ctx_free(tmp);
    }
    worst = 0.0;
    n_zero = 0;
    for (wiring = 0; wiring < 4; wiring++) {
        acn_ctx *ctx;
        acn_ctx_config cfg = acn_ctx_defaults();
        model m;
        batch b;
        acn_tensor *probes[2][ACN_MAX_BLOCKS + 1], *out[2], *loss;
        acn_tensor *params;
        const char *wn = acn_wiring_name(wiring), *heads[2] = {"logits", NULL};
        int L;
        memset(&b, 0, sizeof b);
        cfg.arena_bytes = (size_t)(s->paper ? 1024 : 64) << 20;
        acn_ctx_new(&ctx, &cfg);
        snprintf(what, sizeof what, "%s %s%s", s->name, wn, s->recompute ? " (recompute)" : "");
        CHECK(build(ctx, &m, s, wiring) == ACN_OK, "%s: build: %s", what, acn_error(ctx));
        L = depth(&m);
        /* the parameter count of the PyTorch module */
        numel = acn_param_numel(ctx);
        meta = acn_st_meta(&ref, "numel");
        CHECK(meta && (size_t)atol(meta) == numel, "%s: %zu parameters, the reference module has %s", what, numel,
              meta ? meta : "?");
        snprintf(path, sizeof path, "%s/%s.weights.safetensors", dir, s->name);
        CHECK(acn_load_params(ctx, path) == ACN_OK, "%s: %s", what, acn_error(ctx));
        if (s->kind == BERT) {
            acn_tensor *tk = get(ctx, "tokens");
            b.B = tk->shape[0];
            b.T = tk->shape[1];
            b.tokens = ints(ctx, "tokens");
            b.mask = ints(ctx, "mask");
            b.mlm = ints(ctx, "mlm_labels");
            heads[0] = "mlm";
            heads[1] = "cls";
        } else {
            b.x = get(ctx, "x");
        }
        b.labels = ints(ctx, "labels");
        nh = heads[1] ? 2 : 1;
        /* forward with probes, loss, backward */
        for (i = 0; i < nh; i++) out[i] = forward(ctx, &m, &b, i == 0 ? ACN_BERT_MLM : ACN_BERT_CLS, -1, probes[i]);
        if (s->kind == BERT)
            loss = acn_add(ctx, acn_cross_entropy(ctx, out[0], b.mlm, 0.0f, -100),
                           acn_cross_entropy(ctx, out[1], b.labels, 0.0f, -100));
        else
            loss = acn_cross_entropy(ctx, out[0], b.labels, 0.1f, -1);
        CHECK(acn_backward(ctx, loss) == ACN_OK, "%s: %s", what, acn_error(ctx));
        if (acn_status_of(ctx)) { acn_ctx_free(ctx); continue; }
        snprintf(key, sizeof key, "%s.loss", wn);
        same(ctx, what, key, loss->data, 1);
        for (i = 0; i < nh; i++) {
            snprintf(key, sizeof key, "%s.%s", wn, heads[i]);
            same(ctx, what, key, acn_data(ctx, out[i]), out[i]->numel);
            for (j = 0; j <= L; j++) {
                snprintf(key, sizeof key, "%s.%s.probe.%d", wn, heads[i], j);
                same(ctx, what, key, acn_data(ctx, probes[i][j]), probes[i][j]->numel);
            }
        }
        params = acn_params(ctx, &n_params);
        {
            double G = 0.0;
            for (i = 0; i < n_params; i++) {
                acn_tensor *g;
                snprintf(key, sizeof key, "%s.grad.%s", wn, params[i].name);
                if ((g = get(ctx, key))) G += norm(g->data, g->numel) * norm(g->data, g->numel);
            }
            G = sqrt(G);
            for (i = 0; i < n_params; i++) {
                snprintf(key, sizeof key, "%s.grad.%s", wn, params[i].name);
                same_scaled(ctx, what, key, params[i].grad, params[i].numel, G);
            }
        }
        /* truncated inference after k blocks equals the probe after k blocks */
        acn_set_no_grad(ctx, 1);
        for (i = 0; i < nh; i++)
            for (j = 0; j <= L; j++) {
                acn_mark mk = acn_mark_get(ctx);
                acn_tensor *t = forward(ctx, &m, &b, i == 0 ? ACN_BERT_MLM : ACN_BERT_CLS, j, NULL);
                CHECK(t && t->numel == probes[i][j]->numel &&
                      !memcmp(acn_data(ctx, t), acn_data(ctx, probes[i][j]), t->numel * sizeof(float)),
                      "%s: truncated to %d blocks differs from probe %d", what, j, j);
                acn_mark_rewind(ctx, mk);
            }
        /* the model cut to j blocks (acn_save_cut), loaded strictly into a model built with depth j,
           gives the probe after j blocks bit for bit */
        for (j = 0; j <= L && !s->paper; j++) {
            acn_ctx *cc;
            model cm;
            batch cb = b;
            const char *kv[4] = {"depth", "99", "note", "kept"};
            acn_st cst;
            char cpath[96];
            snprintf(cpath, sizeof cpath, "build/test_models_cut.safetensors");
            CHECK(acn_save_cut(ctx, cpath, j, kv, 2) == ACN_OK, "%s: save_cut %d: %s", what, j, acn_error(ctx));
            acn_ctx_new(&cc, &cfg);
            CHECK(build_depth(cc, &cm, s, wiring, j) == ACN_OK && acn_load_params(cc, cpath) == ACN_OK,
                  "%s: the cut model of %d blocks: %s", what, j, acn_error(cc));
            CHECK(acn_st_read(cc, cpath, &cst) == ACN_OK && acn_st_meta(&cst, "depth") &&
                  atoi(acn_st_meta(&cst, "depth")) == j && acn_st_meta(&cst, "note") &&
                  !strcmp(acn_st_meta(&cst, "note"), "kept") && cst.n_meta == 2,
                  "%s: the cut file's metadata (depth %d)", what, j);
            acn_st_free(&cst);
            acn_set_no_grad(cc, 1);
            if (b.x) {
                cb.x = acn_new(cc, b.x->ndim, b.x->shape, 0);
                if (cb.x) memcpy(acn_data(cc, cb.x), acn_data(ctx, b.x), b.x->numel * sizeof(float));
            }
            for (i = 0; i < nh && !acn_status_of(cc); i++) {
                acn_tensor *t = forward(cc, &cm, &cb, i == 0 ? ACN_BERT_MLM : ACN_BERT_CLS, -1, NULL);
                CHECK(t && t->numel == probes[i][j]->numel &&
                      !memcmp(acn_data(cc, t), acn_data(ctx, probes[i][j]), t->numel * sizeof(float)),
                      "%s: the cut model of %d blocks differs from probe %d: %s", what, j, j, acn_error(cc));
            }
            acn_ctx_free(cc);
        }
        if (s->kind != BERT) anytime_check(ctx, &m, &b, probes[0], L, what);
        CHECK(acn_save_cut(ctx, "build/test_models_cut.safetensors", L + 1, NULL, 0) == ACN_ERR_ARG,
              "%s: a cut above the depth is refused", what);
        acn_clear_error(ctx);
        if (s->kind == BERT) { /* the MLM head on the masked rows alone equals those rows of the full head */
            acn_tensor *y = forward(ctx, &m, &b, ACN_BERT_NONE, -1, NULL), *lg, *full, *part;
            int rows[256], nr = 0, ys[2], D = m.bert.cfg.width, V = m.bert.cfg.vocab, lab[256];
            double err = 0.0;
            for (j = 0; j < b.B * b.T && nr < 256; j++)
                if (b.mlm[j] != -100) { lab[nr] = b.mlm[j]; rows[nr++] = j; }
            ys[0] = b.B * b.T;
            ys[1] = D;
            lg = acn_bert_mlm(ctx, &m.bert, acn_embedding(ctx, acn_reshape(ctx, y, 2, ys), rows, 1, &nr));
            CHECK(y && y->ndim == 3 && y->shape[2] == D && lg && lg->shape[0] == nr && lg->shape[1] == V,
                  "%s: ACN_BERT_NONE and acn_bert_mlm: %s", what, acn_error(ctx));
            if (lg) {
                for (j = 0; j < nr; j++)
                    err = fmax(err, t_relerr(lg->data + (size_t)j * V, acn_data(ctx, out[0]) + (size_t)rows[j] * V, (size_t)V));
                full = acn_cross_entropy(ctx, out[0], b.mlm, 0.0f, -100);
                part = acn_cross_entropy(ctx, lg, lab, 0.0f, -1);
                CHECK(nr > 0 && err < 1e-6 && part && fabsf(part->data[0] - full->data[0]) <= 1e-6f * fabsf(full->data[0]),
                      "%s: the MLM head on %d masked rows: logits differ by %.2e, loss %g vs %g", what, nr, err,
                      part ? part->data[0] : -1.0, full->data[0]);
            }
        }
        free(b.labels); free(b.tokens); free(b.mask); free(b.mlm);
        acn_ctx_free(ctx);
    }
    printf("%-14s%-12s worst relative error %.2e over 4 wirings (%d zero gradients)\n", s->name,
           s->recompute ? " recompute" : "", worst, n_zero);
    acn_st_free(&ref);
}

/* The 1-D chain of docs/models.md ("Wirings") as an MLP of width 1 with no activation, biases or
 * LayerNorms, embed = clf = 1, block weights w_i: for the logit y,
 *   ACN:        dy/dw_i = (1 + sum_{j>i} prod_{k=i+1..j} w_k) prod_{m<i} w_m x_0
 *   ACN_DETACH: dy/dw_i = prod_{m<i} w_m x_0   (the direct gradient alone) */
static void detached_is_direct(void)
{
    const float w[5] = {0.8f, -1.2f, 0.5f, 1.5f, -0.7f}, x0 = 1.25f;
    int wiring, i, j, one = 1, xs[2] = {1, 1};
    for (wiring = ACN_ACN; wiring <= ACN_ACN_DETACH; wiring++) {
        acn_ctx *ctx;
        acn_mlp m;
        acn_mlp_config c = acn_mlp_defaults();
        acn_tensor *x, *y;
        float dy = 1.0f;
        c.in = c.width = c.classes = 1;
        c.depth = 5;
        c.act = ACN_ACT_NONE;
        c.block_ln = c.head_ln = c.bias = 0;
        c.wiring = wiring;
        acn_ctx_new(&ctx, NULL);
        acn_mlp_build(ctx, &m, &c);
        m.embed.weight->data[0] = m.clf.weight->data[0] = 1.0f;
        for (i = 0; i < 5; i++) m.blocks[i].fc.weight->data[0] = w[i];
        x = acn_input(ctx, 2, xs, &x0);
        y = acn_mlp_forward(ctx, &m, x, -1, NULL);
        CHECK(acn_backward_with(ctx, y, &dy) == ACN_OK, "%s", acn_error(ctx));
        for (i = 0; i < 5; i++) {
            double before = x0, fg = 0.0, run = 1.0;
            for (j = 0; j < i; j++) before *= w[j];
            for (j = i + 1; j < 5; j++) { run *= w[j]; fg += run; }
            {
                double want = wiring == ACN_ACN ? (1.0 + fg) * before : before;
                CHECK(fabs(m.blocks[i].fc.weight->grad[0] - want) < 1e-5 * (1 + fabs(want)),
                      "%s: dy/dw_%d = %g, closed form %g", acn_wiring_name(wiring), i + 1,
                      m.blocks[i].fc.weight->grad[0], want);
            }
        }
        (void)one;
        acn_ctx_free(ctx);
    }
}

/* Recomputing GELU and LayerNorm outputs gives the same bits. */
static void recompute_same(const char *dir)
{
    spec s[2] = {{"mixer", MIXER, 0, 0, 0, 0}, {"vit", VIT, 0, 0, 0, 0}};
    int k, r, wiring;
    for (k = 0; k < 2; k++)
        for (wiring = 0; wiring < 4; wiring++) {
            float *g[2] = {NULL, NULL};
            size_t n = 0, peak[2];
            for (r = 0; r < 2; r++) {
                acn_ctx *ctx;
                model m;
                batch b;
                char path[512];
                acn_stats st;
                acn_tensor *loss;
                memset(&b, 0, sizeof b);
                s[k].recompute = r;
                acn_ctx_new(&ctx, NULL);
                build(ctx, &m, &s[k], wiring);
                snprintf(path, sizeof path, "%s/%s.weights.safetensors", dir, s[k].name);
                acn_load_params(ctx, path);
                snprintf(path, sizeof path, "%s/%s.ref.safetensors", dir, s[k].name);
                acn_st_read(ctx, path, &ref);
                b.x = get(ctx, "x");
                b.labels = ints(ctx, "labels");
                loss = acn_cross_entropy(ctx, forward(ctx, &m, &b, 0, -1, NULL), b.labels, 0.1f, -1);
                acn_backward(ctx, loss);
                CHECK(acn_status_of(ctx) == ACN_OK, "recompute %s: %s", s[k].name, acn_error(ctx));
                n = acn_param_numel(ctx);
                acn_stats_get(ctx, &st);
                peak[r] = st.arena_peak;
                g[r] = (float *)malloc(st.param_floats_used * sizeof(float));
                memcpy(g[r], acn_params(ctx, NULL)[0].grad, st.param_floats_used * sizeof(float));
                n = st.param_floats_used;
                free(b.labels);
                acn_st_free(&ref);
                acn_ctx_free(ctx);
            }
            CHECK(!memcmp(g[0], g[1], n * sizeof(float)), "%s %s: recompute changed the gradients", s[k].name,
                  acn_wiring_name(wiring));
            (void)peak;
            free(g[0]);
            free(g[1]);
        }
}

static void counts_and_errors(void)
{
    acn_ctx *ctx;
    acn_mixer m;
    acn_mixer_config c = acn_mixer_defaults();
    acn_tensor *x;
    int s[4] = {2, 3, 28, 28};
    acn_ctx_new(&ctx, NULL);
    CHECK(acn_mixer_build(ctx, &m, &c) == ACN_OK && acn_param_numel(ctx) == 2527002,
          "the paper Mixer has %zu parameters; docs/models.md says 2,527,002", acn_param_numel(ctx));
    x = acn_new(ctx, 4, s, 0);
    CHECK(acn_mixer_forward(ctx, &m, x, -1, NULL) == NULL &&
          strstr(acn_error(ctx), "images (2, 3, 28, 28); the model takes (B, 3, 32, 32)"), "%s", acn_error(ctx));
    acn_clear_error(ctx);
    s[2] = s[3] = 32;
    x = acn_new(ctx, 4, s, 0);
    CHECK(acn_mixer_forward(ctx, &m, x, 17, NULL) == NULL && strstr(acn_error(ctx), "k = 17 blocks, but the model has 16"),
          "%s", acn_error(ctx));
    acn_ctx_free(ctx);
    /* Fashion-MNIST geometry: 28 x 28 x 1 -> 49 patches + CLS */
    acn_ctx_new(&ctx, NULL);
    c.image_h = c.image_w = 28;
    c.channels = 1;
    CHECK(acn_mixer_build(ctx, &m, &c) == ACN_OK && acn_param_find(ctx, "blocks.0.tok.fc1.weight")->shape[1] == 50,
          "28 x 28 x 1 Mixer: %s", acn_error(ctx));
    acn_ctx_free(ctx);
    acn_ctx_new(&ctx, NULL);
    c.image_h = 30;
    CHECK(acn_mixer_build(ctx, &m, &c) == ACN_ERR_ARG && strstr(acn_error(ctx), "divisible by the patch"), "%s", acn_error(ctx));
    CHECK(acn_wiring_parse("acn-detach") == ACN_ACN_DETACH && acn_wiring_parse("dense") == -1, "wiring names");
    acn_ctx_free(ctx);
}

/* One training step of the paper Mixer (batch 4) gives the same bits on 1
 * and on 2 threads: work is split by rows or columns, never along a sum. */
static void threads_same(void)
{
    float *g[2] = {NULL, NULL};
    size_t n = 0;
    int t, s[4] = {4, 3, 32, 32}, labels[4] = {1, 5, 7, 0};
    for (t = 0; t < 2; t++) {
        acn_ctx *ctx;
        static acn_mixer m;
        acn_mixer_config c = acn_mixer_defaults();
        acn_tensor *x;
        acn_stats st;
        acn_ctx_new(&ctx, NULL);
        acn_set_threads(ctx, t + 1);
        acn_mixer_build(ctx, &m, &c);
        x = acn_new(ctx, 4, s, 0);
        acn_init_normal(ctx, x, 0.0f, 1.0f);
        acn_backward(ctx, acn_cross_entropy(ctx, acn_mixer_forward(ctx, &m, x, -1, NULL), labels, 0.1f, -1));
        CHECK(acn_status_of(ctx) == ACN_OK && acn_threads(ctx) >= 1, "threads %d: %s", t + 1, acn_error(ctx));
        acn_stats_get(ctx, &st);
        n = st.param_floats_used;
        g[t] = (float *)malloc(n * sizeof(float));
        memcpy(g[t], acn_params(ctx, NULL)[0].grad, n * sizeof(float));
        acn_ctx_free(ctx);
    }
    CHECK(!memcmp(g[0], g[1], n * sizeof(float)), "gradients differ between 1 and 2 threads");
    free(g[0]);
    free(g[1]);
}

/* max |v| and the standard deviation of a tensor */
static void stats(const acn_tensor *t, double *maxabs, double *sd)
{
    double s = 0.0, s2 = 0.0;
    size_t i;
    *maxabs = 0.0;
    for (i = 0; i < t->numel; i++) {
        s += t->data[i];
        s2 += (double)t->data[i] * t->data[i];
        if (fabs(t->data[i]) > *maxabs) *maxabs = fabs(t->data[i]);
    }
    *sd = sqrt(s2 / t->numel - (s / t->numel) * (s / t->numel));
}

/* Each model's initialisation against the formulas of docs/models.md. */
static void inits(void)
{
    acn_ctx *ctx;
    acn_ctx_config cfg = acn_ctx_defaults();
    double mx, sd, b;
    cfg.arena_bytes = 1 << 20;
    {   /* the paper Mixer: PyTorch defaults, cls N(0, 1) */
        static acn_mixer m;
        acn_mixer_config c = acn_mixer_defaults();
        acn_ctx_new(&ctx, &cfg);
        acn_mixer_build(ctx, &m, &c);
        b = 1.0 / sqrt(65.0);
        stats(m.blocks[3].tok_fc1.weight, &mx, &sd);
        CHECK(mx <= b && mx > 0.98 * b && fabs(sd - b / sqrt(3.0)) < 0.05 * b, "tok.fc1: max %g sd %g (bound %g)", mx, sd, b);
        b = 1.0 / sqrt(48.0);
        stats(m.embed_w, &mx, &sd);
        CHECK(mx <= b && mx > 0.98 * b, "embed (Conv2d, fan_in 48): max %g, bound %g", mx, b);
        stats(m.embed_b, &mx, &sd);
        CHECK(mx <= b, "embed bias: max %g, bound %g", mx, b);
        stats(m.cls, &mx, &sd);
        CHECK(sd > 0.75 && sd < 1.25, "cls N(0, 1): sd %g over 128 values", sd);
        stats(m.blocks[0].ln.weight, &mx, &sd);
        CHECK(mx == 1.0 && sd == 0.0, "LayerNorm weight 1");
        acn_ctx_free(ctx);
    }
    {   /* ViT-S: qkv, proj U(+-sqrt(3/D)); MLP Xavier, biases N(0, 1e-6); embed LeCun
           normal truncated at 2 sd; head 0 */
        static acn_vit m;
        acn_vit_config c = acn_vit_defaults();
        acn_ctx_new(&ctx, &cfg);
        acn_vit_build(ctx, &m, &c);
        b = sqrt(3.0 / 384);
        stats(m.blocks[5].qkv.weight, &mx, &sd);
        CHECK(mx <= b && mx > 0.99 * b && fabs(sd - 1.0 / sqrt(384.0)) < 0.01 / sqrt(384.0), "qkv: max %g sd %g", mx, sd);
        stats(m.blocks[5].proj.bias, &mx, &sd);
        CHECK(mx == 0.0, "proj bias 0");
        b = sqrt(6.0 / (384 + 1536));
        stats(m.blocks[5].fc1.weight, &mx, &sd);
        CHECK(mx <= b && mx > 0.99 * b, "fc1 Xavier: max %g bound %g", mx, b);
        stats(m.blocks[5].fc2.bias, &mx, &sd);
        CHECK(mx > 0.0 && mx < 6e-6 && fabs(sd - 1e-6) < 2e-7, "fc2 bias N(0, 1e-6): max %g sd %g", mx, sd);
        stats(m.embed_w, &mx, &sd);
        b = sqrt(1.0 / 768.0);  /* the truncation's std correction restores sd = sqrt(1/fan_in) */
        CHECK(mx <= 2.0 * b / 0.87962566 && fabs(sd - b) < 0.02 * b, "embed LeCun: max %g sd %g (want %g)", mx, sd, b);
        stats(m.head.weight, &mx, &sd);
        CHECK(mx == 0.0, "head weight 0");
        acn_ctx_free(ctx);
    }
    {   /* BERT (small width, real vocabulary): N(0, 0.02), zero biases */
        static acn_bert m;
        acn_bert_config c = acn_bert_defaults();
        c.width = 64; c.heads = 4; c.mlp = 128; c.depth = 2;
        acn_ctx_new(&ctx, &cfg);
        acn_bert_build(ctx, &m, &c);
        stats(m.tok, &mx, &sd);
        CHECK(fabs(sd - 0.02) < 0.0005, "tok embedding sd %g", sd);
        stats(m.blocks[1].fc1.weight, &mx, &sd);
        CHECK(fabs(sd - 0.02) < 0.001, "fc1 sd %g", sd);
        stats(m.blocks[1].fc1.bias, &mx, &sd);
        CHECK(mx == 0.0, "fc1 bias 0");
        acn_ctx_free(ctx);
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/reference";
    static const spec small[] = {
        {"mlp_gelu", MLP, 0, 0, 0, 0}, {"mlp_relu", MLP, 1, 0, 0, 0}, {"mixer", MIXER, 0, 0, 0, 0},
        {"mixer_textbook", MIXER, 0, 1, 0, 0}, {"vit", VIT, 0, 0, 0, 0}, {"bert", BERT, 0, 0, 0, 0},
        {"mixer", MIXER, 0, 0, 0, 1}, {"bert", BERT, 0, 0, 0, 1},
    };
    size_t i;
    for (i = 0; i < sizeof small / sizeof small[0]; i++) parity(dir, &small[i]);
    if (argc > 2) {
        spec paper = {"paper_mixer", MIXER, 0, 0, 1, 0};
        parity(argv[2], &paper);
    }
    detached_is_direct();
    anytime_wide();
    recompute_same(dir);
    counts_and_errors();
    inits();
    threads_same();
    return t_done("models");
}
