/* train_images.h: the training loop of an image classifier, shared by
 * train_mixer.c and train_vit.c (which only build their model). Include it
 * after train.h.
 *
 * One run: load CIFAR-10 or Fashion-MNIST, keep a low-data or class subset
 * if asked, then epochs of: a batch, the recipe's augmentation (acn.h's
 * acn_recipe_apply), forward, soft-target cross-entropy, backward, the
 * per-block gradient norms, clipping, AdamW at the warmup-cosine rate. Every
 * eval_every epochs the test set goes through once and the head is read
 * after every block (the paper's probes). Checkpoints at each epoch's end,
 * every save_every steps, on Ctrl-C and at the end; --resume continues
 * exactly (bit for bit) where a checkpoint left off.
 */
#ifndef ACN_TRAIN_IMAGES_H
#define ACN_TRAIN_IMAGES_H

/* Everything a run is told on the command line (the model's own flags are
 * the program's). */
typedef struct image_opts {
    const char *dataset, *data_dir, *recipe, *classes, *save, *resume, *log, *plots, *weights;
    int epochs, batch, warmup, seed, low_data, eval_every, eval_batch, threads, save_every, limit, crop, flip,
        autoaugment, stop_after, force_resume, eval_only, drop_last;
    float lr, wd, min_lr, clip, smoothing, cutmix, eval_noise, eval_sp;
} image_opts;

TRAIN_FN image_opts image_opts_defaults(void)
{
    image_opts o;
    memset(&o, 0, sizeof o);
    o.dataset = "cifar10";
    o.recipe = "paper";
    o.classes = "all";
    o.epochs = 10;
    o.batch = 64;
    o.warmup = 1;
    o.eval_every = 1;
    o.eval_batch = 100;
    o.crop = o.flip = o.autoaugment = -1;
    o.lr = 1e-3f;
    o.wd = 0.01f;
    o.min_lr = 1e-6f;
    o.clip = 1.0f;
    o.smoothing = o.cutmix = -1.0f;
    return o;
}

/* The flags every image program takes; returns how many were written. Each
 * says what it may do on --resume (train.h, RESUME_*); the keys of the
 * RESUME_SAME ones are those the checkpoints have always recorded. */
TRAIN_FN int image_flags(image_opts *o, flag *f)
{
    int n = 0;
    F_("--data", FLAG_STR, &o->dataset, 0, 0, RESUME_SAME("data"), "cifar10 or fashion (Fashion-MNIST)");
    F_("--data-dir", FLAG_STR, &o->data_dir, 0, 0, RESUME_ANY, "the data files' folder (if not given: data/cifar-10-batches-bin or data/fashion-mnist)");
    F_("--epochs", FLAG_INT, &o->epochs, 1, 1e6, RESUME_ANY, "epochs to train");
    F_("--batch", FLAG_INT, &o->batch, 1, 4096, RESUME_SAME("batch"), "batch size");
    F_("--drop-last", FLAG_SWITCH, &o->drop_last, 0, 0, RESUME_SAME("drop_last"), "skip each epoch's short last batch (N / batch steps an epoch)");
    F_("--lr", FLAG_FLOAT, &o->lr, 0, 1e30, RESUME_SAME("lr"), "peak learning rate (AdamW)");
    F_("--min-lr", FLAG_FLOAT, &o->min_lr, 0, 10, RESUME_SAME("min_lr"), "learning rate at the end of the cosine");
    F_("--wd", FLAG_FLOAT, &o->wd, 0, 10, RESUME_SAME("weight_decay"), "AdamW weight decay");
    F_("--warmup", FLAG_INT, &o->warmup, 0, 1e6, RESUME_SAME("warmup_epochs"), "epochs of linear warmup, then cosine decay (per step)");
    F_("--clip", FLAG_FLOAT, &o->clip, 0, 1e9, RESUME_SAME("clip"), "clip the gradient's global norm to this (0: no clipping)");
    F_("--seed", FLAG_INT, &o->seed, 0, 2147483647.0, RESUME_FIXED("seed"), "seed of initialisation, shuffling and augmentation");
    F_("--recipe", FLAG_STR, &o->recipe, 0, 0, RESUME_SAME("recipe"), "augmentation: paper, simple or none");
    F_("--crop", FLAG_INT, &o->crop, -1, 8, RESUME_SAME("crop"), "random crops with 4-pixel zero padding (-1: the recipe's)");
    F_("--flip", FLAG_INT, &o->flip, -1, 1, RESUME_SAME("flip"), "horizontal flips, 0 or 1 (-1: the recipe's)");
    F_("--autoaugment", FLAG_INT, &o->autoaugment, -1, 1, RESUME_SAME("autoaugment"), "AutoAugment, CIFAR-10 policy, 0 or 1 (-1: the recipe's)");
    F_("--cutmix", FLAG_FLOAT, &o->cutmix, -1, 1, RESUME_SAME("cutmix"), "CutMix probability, beta 1 (-1: the recipe's)");
    F_("--smoothing", FLAG_FLOAT, &o->smoothing, -1, 1, RESUME_SAME("smoothing"), "label smoothing (-1: the recipe's)");
    F_("--low-data", FLAG_INT, &o->low_data, 0, 1e9, RESUME_SAME("low_data"), "keep the first K training images of each class (0: all)");
    F_("--classes", FLAG_STR, &o->classes, 0, 0, RESUME_SAME("class_subset"), "train on these classes only, e.g. 3,5 (labels become 0, 1, ...), or all");
    F_("--limit", FLAG_INT, &o->limit, 0, 1e9, RESUME_SAME("limit"), "use only the first N training images, for quick runs (0: all)");
    F_("--eval-every", FLAG_INT, &o->eval_every, 0, 1e6, RESUME_ANY, "evaluate with probes every N epochs (0: only at the end)");
    F_("--eval-batch", FLAG_INT, &o->eval_batch, 1, 4096, RESUME_ANY, "batch size of evaluation");
    F_("--eval-noise", FLAG_FLOAT, &o->eval_noise, 0, 100, RESUME_ANY, "Gaussian noise on test images, sigma in normalised units");
    F_("--eval-sp", FLAG_FLOAT, &o->eval_sp, 0, 1, RESUME_ANY, "salt-and-pepper noise on test images, probability per pixel");
    F_("--threads", FLAG_INT, &o->threads, 0, TRAIN_MAX_THREADS, RESUME_ANY, "threads, up to 64 (0: ACN_THREADS or every core)");
    F_("--device", FLAG_STR, &train_device, 0, 0, RESUME_ANY, "cpu, or cuda: a GPU (a build with ACN_CUDA: make cuda)");
    F_("--save", FLAG_STR, &o->save, 0, 0, RESUME_ANY, "checkpoint prefix: PREFIX.safetensors and PREFIX.state.safetensors");
    F_("--save-every", FLAG_INT, &o->save_every, 0, 1e9, RESUME_ANY, "also save every N steps (0: at each epoch's end only)");
    F_("--resume", FLAG_STR, &o->resume, 0, 0, RESUME_ANY, "continue from checkpoint PREFIX exactly (the same flags)");
    F_("--force-resume", FLAG_SWITCH, &o->force_resume, 0, 0, RESUME_ANY, "with --resume: continue even if training settings differ from the checkpoint's");
    F_("--stop-after", FLAG_INT, &o->stop_after, 0, 2147483647.0, RESUME_ANY, "send this process SIGINT after N steps, as Ctrl-C would (0: never)");
    F_("--log", FLAG_STR, &o->log, 0, 0, RESUME_ANY, "CSV file: one row per epoch (appended to on --resume)");
    F_("--plots", FLAG_STR, &o->plots, 0, 0, RESUME_ANY, "folder for SVG plots of the probes and gradient norms, from --log");
    F_("--eval-only", FLAG_SWITCH, &o->eval_only, 0, 0, RESUME_ANY, "evaluate the checkpoint --weights (the model from its metadata) and stop; no training");
    F_("--weights", FLAG_STR, &o->weights, 0, 0, RESUME_ANY, "with --eval-only: a weights file, PREFIX.safetensors (a cut one too)");
    return n;
}

/* The flags that need no data, checked before anything is loaded: 0, or 2
 * with a message. Both data sets have 10 classes. */
TRAIN_FN int parse_classes(const char *prog, const char *s, int *cls, int max, int classes);
TRAIN_FN int image_opts_check(const char *prog, const image_opts *o, run_files *save, run_files *resume)
{
    acn_recipe r;
    int cls[16];
    if (strcmp(o->dataset, "cifar10") && strcmp(o->dataset, "fashion")) {
        fprintf(stderr, "%s: --data %s: expected cifar10 or fashion\n", prog, o->dataset);
        return 2;
    }
    if (train_device_check(prog)) return 2;
    if (acn_recipe_get(o->recipe, &r)) {
        fprintf(stderr, "%s: --recipe %s: expected paper, simple or none\n", prog, o->recipe);
        return 2;
    }
    if (parse_classes(prog, o->classes, cls, 16, 10) < 0) return 2;
    if ((o->save && run_prefix(prog, "--save", o->save, save)) ||
        (o->resume && run_prefix(prog, "--resume", o->resume, resume)))
        return 2;
    if (o->force_resume && !o->resume) {
        fprintf(stderr, "%s: --force-resume goes with --resume PREFIX\n", prog);
        return 2;
    }
    if (o->plots && !o->log) {
        fprintf(stderr, "%s: --plots draws from the CSV log; give --log FILE too\n", prog);
        return 2;
    }
    return eval_flags_check(prog, o->eval_only, o->weights,
                            o->save ? "--save" : o->resume ? "--resume" : o->plots ? "--plots" : NULL);
}

/* The flags --eval-only takes from the weights file besides the model's:
 * those the test set depends on. */
static const char *const image_eval_keys[] = {"data", "class_subset", NULL};

/* The training and test sets, after the subsets asked for. */
typedef struct image_data {
    acn_dataset train, test;
    acn_recipe recipe;
    const char *name;
} image_data;

TRAIN_FN int file_exists(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* dir/name, or dir/name.gz when only the compressed file is there (the
 * loader then says to gunzip it). */
TRAIN_FN const char *data_path(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    if (!file_exists(buf)) {
        snprintf(buf, n, "%s/%s.gz", dir, name);
        if (!file_exists(buf)) snprintf(buf, n, "%s/%s", dir, name);
    }
    return buf;
}

/* Parse "3,5" into classes: the count (0 for "all"), or -1 with a message
 * that says what is wrong. */
TRAIN_FN int parse_classes(const char *prog, const char *s, int *cls, int max, int classes)
{
    const char *all = s;
    int n = 0, j;
    if (!strcmp(s, "all")) return 0;
    while (*s) {
        char *end;
        long v;
        if (*s < '0' || *s > '9') { /* no sign, no space: digits only */
            if (*s == '-' && s[1] >= '0' && s[1] <= '9')
                fprintf(stderr, "%s: --classes %s: class %s is not among 0..%d\n", prog, all, s, classes - 1);
            else
                fprintf(stderr, "%s: --classes %s: expected distinct class numbers 0..%d separated by commas, or "
                        "all\n", prog, all, classes - 1);
            return -1;
        }
        v = strtol(s, &end, 10);
        if (*end && *end != ',') {
            fprintf(stderr, "%s: --classes %s: expected distinct class numbers 0..%d separated by commas, or all\n",
                    prog, all, classes - 1);
            return -1;
        }
        if (v >= classes) {
            fprintf(stderr, "%s: --classes %s: class %ld is not among 0..%d\n", prog, all, v, classes - 1);
            return -1;
        }
        for (j = 0; j < n; j++)
            if (cls[j] == v) {
                fprintf(stderr, "%s: --classes %s: class %ld is listed twice\n", prog, all, v);
                return -1;
            }
        if (n >= max) {
            fprintf(stderr, "%s: --classes %s: at most %d classes\n", prog, all, max);
            return -1;
        }
        cls[n++] = (int)v;
        if (*end == ',' && !end[1]) {
            fprintf(stderr, "%s: --classes %s: a class number is missing after the last comma\n", prog, all);
            return -1;
        }
        s = *end ? end + 1 : end;
    }
    return n;
}

/* 0 on success; with a message printed, 1 (the data) or 2 (flags the data
 * cannot meet: --classes it has no images of). */
TRAIN_FN int image_data_load(acn_ctx *ctx, const char *prog, const image_opts *o, image_data *d)
{
    char p[6][1100];
    int i, rc = 1;
    memset(d, 0, sizeof *d);
    if (!strcmp(o->dataset, "cifar10")) {
        const char *dir = o->data_dir ? o->data_dir : "data/cifar-10-batches-bin";
        const char *tr[5];
        for (i = 0; i < 5; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "data_batch_%d.bin", i + 1);
            tr[i] = data_path(p[i], sizeof p[i], dir, nm);
        }
        d->name = "CIFAR-10";
        if (!acn_data_cifar(ctx, &d->train, tr, 5, 0)) {
            const char *te = data_path(p[5], sizeof p[5], dir, "test_batch.bin");
            acn_data_cifar(ctx, &d->test, &te, 1, 0);
        }
        acn_recipe_get("none", &d->recipe); /* CIFAR-10's mean and std */
    } else if (!strcmp(o->dataset, "fashion")) {
        const char *dir = o->data_dir ? o->data_dir : "data/fashion-mnist";
        d->name = "Fashion-MNIST";
        if (!acn_data_idx(ctx, &d->train, data_path(p[0], sizeof p[0], dir, "train-images-idx3-ubyte"),
                          data_path(p[1], sizeof p[1], dir, "train-labels-idx1-ubyte")))
            acn_data_idx(ctx, &d->test, data_path(p[2], sizeof p[2], dir, "t10k-images-idx3-ubyte"),
                         data_path(p[3], sizeof p[3], dir, "t10k-labels-idx1-ubyte"));
        acn_recipe_get("none", &d->recipe);
        d->recipe.mean[0] = 0.2860f; /* Fashion-MNIST's training-set mean and std */
        d->recipe.std[0] = 0.3530f;
    } else { /* image_opts_check refused it */
        fprintf(stderr, "%s: --data %s: expected cifar10 or fashion\n", prog, o->dataset);
        return 1;
    }
    if (acn_status_of(ctx)) {
        fprintf(stderr, "%s: %s\n", prog, acn_error(ctx));
        fprintf(stderr, "%s: README.md, \"Train the paper's Mixer\", shows how to prepare the data\n", prog);
        goto fail;
    }
    if (d->train.c != d->test.c || d->train.h != d->test.h || d->train.w != d->test.w) {
        fprintf(stderr, "%s: the training images are %d x %d x %d but the test images %d x %d x %d\n", prog,
                d->train.c, d->train.h, d->train.w, d->test.c, d->test.h, d->test.w);
        goto fail;
    }
    if (!strcmp(o->dataset, "fashion")) { /* its labels are 0..9, in both files, before any training */
        const acn_dataset *s[2];
        int k;
        s[0] = &d->train;
        s[1] = &d->test;
        for (k = 0; k < 2; k++)
            for (i = 0; i < s[k]->n; i++)
                if (s[k]->labels[i] > 9) {
                    fprintf(stderr, "%s: %s: label %d at image %d; Fashion-MNIST's labels are 0..9 (a damaged file, "
                            "or not Fashion-MNIST)\n", prog, p[k ? 3 : 1], s[k]->labels[i], i);
                    goto fail;
                }
        d->train.classes = d->test.classes = 10; /* the model has 10 outputs, even if a class is missing from a file */
    }
    if (d->test.classes > d->train.classes) {
        fprintf(stderr, "%s: the test set has labels up to %d but the training set only 0..%d: the model would have "
                "no output for them\n", prog, d->test.classes - 1, d->train.classes - 1);
        goto fail;
    }
    d->test.classes = d->train.classes;
    { /* the recipe, then the switches over it; the data set's normalisation */
        acn_recipe r;
        if (acn_recipe_get(o->recipe, &r)) { /* image_opts_check refused it */
            fprintf(stderr, "%s: --recipe %s: expected paper, simple or none\n", prog, o->recipe);
            goto fail;
        }
        memcpy(r.mean, d->recipe.mean, sizeof r.mean);
        memcpy(r.std, d->recipe.std, sizeof r.std);
        if (o->crop >= 0) r.crops = o->crop;
        if (o->flip >= 0) r.flip = o->flip;
        if (o->autoaugment >= 0) r.autoaugment = o->autoaugment;
        if (o->cutmix >= 0) r.cutmix_p = o->cutmix;
        if (o->smoothing >= 0) r.smoothing = o->smoothing;
        d->recipe = r;
    }
    {
        int cls[16], nc;
        acn_dataset t;
        if ((nc = parse_classes(prog, o->classes, cls, 16, d->train.classes)) < 0) goto fail;
        if (o->low_data || nc) {
            if (acn_data_select(ctx, &d->train, &t, o->low_data ? o->low_data : -1, nc ? cls : NULL, nc))
                goto fail_ctx;
            acn_data_free(&d->train);
            d->train = t;
        }
        if (nc) {
            if (acn_data_select(ctx, &d->test, &t, -1, cls, nc)) goto fail_ctx;
            acn_data_free(&d->test);
            d->test = t;
        }
        if (o->limit && o->limit < d->train.n) d->train.n = o->limit; /* the first N, in file order */
        if (!d->train.n || !d->test.n) { /* (only a class list can empty a set) */
            fprintf(stderr, "%s: the %s set has no images of --classes %s; list classes it has\n", prog,
                    d->train.n ? "test" : "training", o->classes);
            rc = 2;
            goto fail;
        }
    }
    printf("%s: %d training and %d test images of %d x %d x %d, %d classes\n", d->name, d->train.n, d->test.n,
           d->train.c, d->train.h, d->train.w, d->train.classes);
    return 0;
fail_ctx:
    fprintf(stderr, "%s: %s\n", prog, acn_error(ctx));
fail:
    acn_data_free(&d->train);
    acn_data_free(&d->test);
    return rc;
}

TRAIN_FN void image_data_free(image_data *d)
{
    acn_data_free(&d->train);
    acn_data_free(&d->test);
}

/* The model, as the loop sees it. */
typedef struct image_model {
    const char *name;      /* "mixer", "vit"                                  */
    const void *m;         /* the program's model                             */
    int depth;
    const char *grad_fmt;  /* the weight whose gradient norm is logged, "blocks.%d.ch.fc1.weight" */
    acn_tensor *(*forward)(acn_ctx *ctx, const void *m, acn_tensor *images, acn_tensor **probes);
    run_meta meta;         /* the settings that define it (compared on --resume) */
    run_meta train_meta;   /* how it is trained (compared on --resume, but for the record-only ones) */
    const flag *flags;     /* the program's flags (their RESUME_* say what is compared) */
    int n_flags;
} image_model;

/* The training settings, for the checkpoint's metadata: the flags' (their
 * RESUME_SAME and RESUME_FIXED keys), then what no single flag gives: the
 * augmentation they make (for the record), the epochs (may differ on
 * --resume; for the record) and the training images (compared). */
TRAIN_FN void image_opts_meta(const image_opts *o, const image_data *d, const image_model *md, run_meta *m,
                            run_meta *derived)
{
    flags_meta(md->flags, md->n_flags, m);
    meta_set(m, "augment", "crops %d flip %d autoaugment %d cutmix %g smoothing %g", d->recipe.crops, d->recipe.flip,
             d->recipe.autoaugment, d->recipe.cutmix_p, d->recipe.smoothing);
    meta_set(m, "epochs", "%d", o->epochs);
    meta_set(derived, "train_images", "%d", d->train.n);
    meta_set(m, "train_images", "%d", d->train.n);
}

/* Test-set loss and accuracy of the head after each of 0..L blocks. */
TRAIN_FN int image_eval(acn_ctx *ctx, const image_model *md, const image_data *d, const image_opts *o, float *acc,
                      double *loss_out)
{
    const acn_dataset *te = &d->test;
    int L = md->depth, i, k, c;
    int nb = (te->n + o->eval_batch - 1) / o->eval_batch, r = acn_dist_rank(ctx), size = acn_dist_size(ctx);
    int mine_lo = (int)((long)nb * r / size), mine_hi = (int)((long)nb * (r + 1) / size); /* this rank's batches */
    double sums[TRAIN_MAXL + 3]; /* correct after k blocks (0..L), the loss, ranks that failed */
    size_t per = (size_t)te->c * te->h * te->w;
    float *x = (float *)malloc(sizeof(float) * per * (size_t)o->eval_batch);
    int *y = (int *)malloc(sizeof(int) * (size_t)o->eval_batch), *idx = (int *)malloc(sizeof(int) * (size_t)o->eval_batch);
    acn_tensor *probes[TRAIN_MAXL + 1];
    acn_rng noise; /* its own generator: evaluation leaves the training's untouched */
    int train_was, nograd_was;
    if (!x || !y || !idx) {
        free(x);
        free(y);
        free(idx);
        fprintf(stderr, "evaluation: out of memory for a batch of %d; try a smaller --eval-batch\n", o->eval_batch);
        return 1;
    }
    train_was = acn_set_train(ctx, 0);
    nograd_was = acn_set_no_grad(ctx, 1);
    acn_rng_seed(&noise, 12345);
    memset(sums, 0, sizeof sums);
    for (i = 0; i < te->n && !acn_status_of(ctx); i += o->eval_batch) {
        int b = te->n - i < o->eval_batch ? te->n - i : o->eval_batch, s[4] = {b, te->c, te->h, te->w};
        int mine = i / o->eval_batch >= mine_lo && i / o->eval_batch < mine_hi;
        int noisy = o->eval_sp > 0 || o->eval_noise > 0;
        acn_tensor *lo;
        if (!mine && !noisy) continue; /* another rank's; with noise, its draws are made here too, to stay in step */
        for (k = 0; k < b; k++) idx[k] = i + k;
        acn_data_batch(te, idx, b, x, y);
        if (o->eval_sp > 0) acn_aug_salt_pepper(&noise, x, b, te->c, te->h, te->w, o->eval_sp, 0.0f, 1.0f);
        acn_aug_normalize(x, b, te->c, te->h, te->w, d->recipe.mean, d->recipe.std);
        if (o->eval_noise > 0) acn_aug_gaussian(&noise, x, per * (size_t)b, o->eval_noise);
        if (!mine) continue;
        acn_reset(ctx);
        if (!md->forward(ctx, md->m, acn_input(ctx, 4, s, x), probes)) break;
        lo = acn_cross_entropy(ctx, probes[L], y, 0.0f, -1);
        if (!lo) break;
        sums[L + 1] += (double)acn_item(ctx, lo) * b;
        for (k = 0; k <= L; k++) { /* the predictions go into idx, free once the batch is read */
            if (acn_argmax(ctx, probes[k], idx)) break;
            for (c = 0; c < b; c++) sums[k] += idx[c] == y[c];
        }
    }
    acn_set_train(ctx, train_was);
    acn_set_no_grad(ctx, nograd_was);
    free(x);
    free(y);
    free(idx);
    if (eval_sum_ranks(ctx, sums, L + 3)) return 1;
    for (k = 0; k <= L; k++) acc[k] = 100.0f * (float)sums[k] / (float)te->n;
    *loss_out = sums[L + 1] / te->n;
    return 0;
}

/* The smallest k whose probe is within 1 point of the full network's. */
TRAIN_FN int blocks_needed(const float *acc, int L)
{
    int k;
    for (k = 0; k <= L; k++)
        if (acc[k] >= acc[L] - 1.0f) return k;
    return L;
}

TRAIN_FN void print_probes(const float *acc, int L)
{
    int k;
    printf("  test accuracy after k blocks:");
    for (k = 0; k <= L; k++) printf("%s%d:%.1f", k % 8 == 0 ? "\n   " : "  ", k, acc[k]);
    printf("\n  within 1 point of the full network after %d of %d blocks\n", blocks_needed(acc, L), L);
}

static long image_saved_step = -1; /* the step of the last checkpoint written or resumed from */
TRAIN_FN int image_save(acn_ctx *ctx, const char *prog, const run_files *f, const image_model *md, const acn_adamw *opt,
                      const acn_sampler *smp, long step, const epoch_sums *e)
{
    run_meta m = md->meta;
    int i;
    if (acn_dist_rank(ctx) > 0) { /* rank 0 writes for all: they hold the same state */
        image_saved_step = step;
        return 0;
    }
    if (run_keep_previous(prog, f)) return 1;
    for (i = 0; i < md->train_meta.n; i++) meta_set(&m, md->train_meta.key[i], "%s", md->train_meta.val[i]);
    sums_to_meta(e, md->depth, &m);
    if (run_save(ctx, prog, f, opt, smp, step, meta_kv(&m), m.n)) return 1;
    image_saved_step = step;
    return 0;
}

/* The value of key in m, or "" */
TRAIN_FN const char *meta_value(const run_meta *m, const char *key)
{
    int i;
    for (i = 0; i < m->n; i++)
        if (!strcmp(m->key[i], key)) return m->val[i];
    return "";
}

/* --plots DIR: the CSV log read back (every epoch so far, those before a
 * resume included) as two SVG files: probe_accuracy.svg, the test accuracy
 * after k blocks at up to six evaluated epochs, and grad_norms.svg, each
 * block's mean gradient norm per epoch (docs/acn.md, "Gradient heat map"). Each is
 * written to NAME.tmp and renamed into place. 0, or 1 with a message. */
TRAIN_FN int image_plots(const char *prog, const char *log_path, const char *dir, int L, const char *what)
{
    int ncol = 2 * L + 8, E = 0, cap = 0, i, e, k, n_eval = 0, status = 0;
    double *v = NULL;            /* (E, ncol) the values; NaN where a field is empty */
    float *gn = NULL, *probe = NULL;
    char line[16384], path[1200], tmp[1300], title[400], labels[6][32];
    svg_series ser[6];
    int chosen[6];
    FILE *f = fopen(log_path, "r");
    if (!f) {
        fprintf(stderr, "%s: --plots: cannot read the log %s: %s\n", prog, log_path, strerror(errno));
        return 1;
    }
    errno = 0;
    if (!fgets(line, sizeof line, f)) line[0] = 0; /* the header */
    while (fgets(line, sizeof line, f)) { /* epoch,step,lr,train_loss,test_loss,test_acc,probe_0..L,grad_norm_1..L,seconds */
        char *p = line;
        if (line[0] == '#') continue; /* a note, e.g. of a --force-resume */
        if (E == cap) {
            double *nv = (double *)realloc(v, sizeof(double) * (size_t)(cap = cap ? 2 * cap : 64) * ncol);
            if (!nv) { status = 1; break; }
            v = nv;
        }
        for (k = 0; k < ncol; k++) {
            char *end;
            double x = strtod(p, &end);
            v[(size_t)E * ncol + k] = end == p ? NAN : x;
            p = strchr(p, ',');
            if (!p) break;
            p++;
        }
        for (k++; k < ncol; k++) v[(size_t)E * ncol + k] = NAN;
        E++;
    }
    fclose(f);
    gn = (float *)malloc(sizeof(float) * (size_t)(L * (E ? E : 1)));
    probe = (float *)malloc(sizeof(float) * 6 * (size_t)(L + 1));
    if (status || !gn || !probe || !E) goto out;
    for (i = 0; i < L; i++) /* grad_norm_{i+1} of epoch e */
        for (e = 0; e < E; e++) gn[i * E + e] = (float)v[(size_t)e * ncol + 7 + L + i];
    for (e = 0; e < E; e++) n_eval += v[(size_t)e * ncol + 6] == v[(size_t)e * ncol + 6];
    for (k = 0; k < 6 && k < n_eval; k++) { /* up to six evaluated epochs, evenly spread, the last included */
        int want = n_eval <= 6 ? k : (int)((double)k * (n_eval - 1) / 5.0 + 0.5), seen = -1;
        for (e = 0; e < E; e++)
            if (v[(size_t)e * ncol + 6] == v[(size_t)e * ncol + 6] && ++seen == want) break;
        chosen[k] = e;
    }
    for (k = 0; k < 6 && k < n_eval; k++) {
        for (i = 0; i <= L; i++) probe[k * (L + 1) + i] = (float)v[(size_t)chosen[k] * ncol + 6 + i];
        snprintf(labels[k], sizeof labels[k], "epoch %.0f", v[(size_t)chosen[k] * ncol]);
        ser[k].label = labels[k];
        ser[k].y = probe + k * (L + 1);
        ser[k].n = L + 1;
    }
    if (n_eval) {
        snprintf(path, sizeof path, "%s/probe_accuracy.svg", dir);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        snprintf(title, sizeof title, "Test accuracy after k blocks (%s)", what);
        if (svg_line_chart(tmp, title, "blocks kept (k)", "test accuracy (%)", ser, k, 0.0f, 100.0f) ||
            rename(tmp, path))
            status = 1;
    }
    snprintf(path, sizeof path, "%s/grad_norms.svg", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(title, sizeof title, "Block gradient norms, log scale (%s)", what);
    if (!status && (svg_heat_map(tmp, title, "epoch", "block", gn, L, E) || rename(tmp, path))) status = 1;
out:
    if (status)
        fprintf(stderr, "%s: --plots: cannot write the plots into %s: %s\n", prog, dir,
                errno ? strerror(errno) : "a write failed");
    free(v);
    free(gn);
    free(probe);
    return status;
}

/* --eval-only: the weights of --weights into the model the program built
 * from their metadata, the test set through it with probes (and the noise
 * of --eval-noise and --eval-sp), the accuracy after every block printed,
 * and, with --log, a row appended to a CSV file of evaluations:
 *   weights,step,eval_noise,eval_sp,test_loss,test_acc,probe_0..probe_L,cpu_model,acn_version
 * (a file with another header is refused, so that rows stay comparable).
 * Returns the exit status: 0, or 1 with a message. */
TRAIN_FN int image_eval_only(acn_ctx *ctx, const char *prog, const image_model *md, const image_data *d,
                           const image_opts *o)
{
    int L = md->depth, i;
    float acc[TRAIN_MAXL + 1];
    double loss, t0 = now_s();
    char head[8192] = "", step[32] = "";
    acn_st st;
    FILE *log;
    if (acn_load_params(ctx, o->weights)) {
        fprintf(stderr, "%s: --weights: %s\n", prog, acn_error(ctx));
        return 1;
    }
    if (!acn_st_read(ctx, o->weights, &st)) {
        const char *v = acn_st_meta(&st, "step");
        snprintf(step, sizeof step, "%s", v ? v : "");
        acn_st_free(&st);
    }
    if (image_eval(ctx, md, d, o, acc, &loss)) {
        train_report(ctx, prog, "evaluation failed: ");
        return 1;
    }
    printf("%s (step %s): test loss %.4f, test accuracy %.2f%% (%.0f s)\n", o->weights, step[0] ? step : "?", loss,
           acc[L], now_s() - t0);
    print_probes(acc, L);
    if (!o->log || acn_dist_rank(ctx) > 0) return 0;
    buf_add(head, sizeof head, "weights,step,eval_noise,eval_sp,test_loss,test_acc");
    for (i = 0; i <= L; i++) buf_add(head, sizeof head, ",probe_%d", i);
    buf_add(head, sizeof head, ",cpu_model,acn_version\n");
    if (!(log = eval_log_open(prog, o->log, head, L))) return 1;
    csv_quoted(log, o->weights);
    fprintf(log, ",%s,%g,%g,%.6f,%.4f", step, o->eval_noise, o->eval_sp, loss, acc[L]);
    for (i = 0; i <= L; i++) fprintf(log, ",%.4f", acc[i]);
    fprintf(log, ",%s,%s\n", train_cpu_model(), ACN_VERSION);
    if (fclose(log)) {
        fprintf(stderr, "%s: writing the log %s failed: %s\n", prog, o->log, strerror(errno));
        return 1;
    }
    return 0;
}

/* The loop. Returns the exit status: 0 done, 1 an error, 2 bad flags,
 * 3 the loss or gradient went non-finite, 130 stopped by a signal. */
TRAIN_FN int image_train(acn_ctx *ctx, const char *prog, image_model *md, image_data *d, const image_opts *o)
{
    acn_dataset *tr = &d->train;
    int L = md->depth, classes = tr->classes, i, status = 0;
    size_t per = (size_t)tr->c * tr->h * tr->w;
    long spe = o->drop_last ? tr->n / o->batch : (tr->n + o->batch - 1) / o->batch, step = 0;
    long total = spe * (long)o->epochs;
    acn_adamw opt;
    acn_sampler smp;
    acn_schedule sched = acn_schedule_warmup_cosine(o->lr, (int64_t)o->warmup * spe, total, o->min_lr);
    run_files save, resume;
    epoch_sums es;
    progress pg;
    FILE *log = NULL;
    float *x = (float *)malloc(sizeof(float) * per * (size_t)o->batch);
    float *targets = (float *)malloc(sizeof(float) * (size_t)classes * (size_t)o->batch);
    unsigned char *scratch = (unsigned char *)malloc(2 * per);
    int *y = (int *)malloc(sizeof(int) * (size_t)o->batch), *idx = (int *)malloc(sizeof(int) * (size_t)o->batch);
    acn_tensor *gw[TRAIN_MAXL];
    float acc[TRAIN_MAXL + 1];
    double t_epoch = now_s(), test_loss = 0.0;
    int log_record = 1; /* the log has the columns cpu_model and acn_version (one begun by an older version not) */
    char plot_title[160], changes[2000] = "";
    static run_meta derived; /* compared on --resume, not flags: the training images */
    meta_set(&md->meta, "image", "%d x %d x %d", tr->c, tr->h, tr->w);
    meta_set(&md->meta, "classes", "%d", classes);
    derived.n = 0;
    image_opts_meta(o, d, md, &md->train_meta, &derived);
    printf("recipe %s: %d crop(s), flip %d, AutoAugment %d, CutMix %g, label smoothing %g; batch %d, lr %g, "
           "weight decay %g, warmup %d epoch(s), %d epochs\n", o->recipe, d->recipe.crops, d->recipe.flip,
           d->recipe.autoaugment, d->recipe.cutmix_p, d->recipe.smoothing, o->batch, o->lr, o->wd, o->warmup, o->epochs);
    fflush(stdout);
    snprintf(plot_title, sizeof plot_title, "%s, %s, %s", md->name, d->name, meta_value(&md->meta, "wiring"));
    memset(&es, 0, sizeof es);
    memset(&opt, 0, sizeof opt);
    memset(&smp, 0, sizeof smp);
    if (!x || !targets || !scratch || !y || !idx) {
        fprintf(stderr, "%s: out of memory for a batch of %d\n", prog, o->batch);
        status = 1;
        goto done;
    }
    if ((o->save && run_prefix(prog, "--save", o->save, &save)) ||
        (o->resume && run_prefix(prog, "--resume", o->resume, &resume))) { /* image_opts_check refused these */
        status = 2;
        goto done;
    }
    sums_find_weights(ctx, md->grad_fmt, L, gw);
    if (acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, o->wd) ||
        acn_sampler_init(ctx, &smp, tr->n, o->batch, (uint64_t)o->seed, o->drop_last)) {
        train_report(ctx, prog, "");
        status = 1;
        goto done;
    }
    if (o->resume) {
        int64_t s64 = 0;
        if ((status = resume_check(ctx, prog, &resume, &md->meta, md->flags, md->n_flags, &derived, o->force_resume,
                                   changes, sizeof changes)))
            goto done;
        if (acn_load_checkpoint(ctx, resume.weights, resume.state, &opt, &smp, &s64)) {
            run_resume_failed(ctx, prog, &resume);
            status = 1;
            goto done;
        }
        step = (long)s64;
        if (!o->save || !strcmp(o->save, o->resume)) image_saved_step = step;
        sums_from_meta(ctx, resume.weights, L, &es);
        printf("resumed from %s at step %ld (epoch %ld, image %ld of %d)\n", resume.weights, step, (long)smp.epoch + 1,
               (long)smp.pos, tr->n);
    }
    if (acn_dist_broadcast_params(ctx)) { /* equal already (one seed, one file); now certainly */
        train_report(ctx, prog, "");
        status = 1;
        goto done;
    }
    if (o->save && run_can_write(prog, &save)) { status = 1; goto done; }
    if (o->plots && acn_dist_rank(ctx) == 0) mkdir(o->plots, 0755);
    if (o->log && acn_dist_rank(ctx) == 0) {
        FILE *old = o->resume ? fopen(o->log, "r") : NULL;
        if (old) {
            log_record = log_has_record(old);
            fclose(old);
        }
        make_parent(o->log);
        log = fopen(o->log, old ? "a" : "w");
        if (!log) {
            fprintf(stderr, "%s: cannot open the log %s for writing: %s\n", prog, o->log, strerror(errno));
            status = 1;
            goto done;
        }
        if (!old) {
            fprintf(log, "epoch,step,lr,train_loss,test_loss,test_acc");
            for (i = 0; i <= L; i++) fprintf(log, ",probe_%d", i);
            for (i = 0; i < L; i++) fprintf(log, ",grad_norm_%d", i + 1);
            fprintf(log, ",seconds,cpu_model,acn_version\n");
        }
        if (changes[0]) fprintf(log, "# step %ld: resumed from %s with --force-resume: %s\n", step, resume.weights, changes);
        fflush(log);
    }
    train_catch_signals();
    progress_init(&pg);
    t_epoch = now_s() - es.seconds;
    while (smp.epoch < o->epochs) {
        int b, s[4], off, cnt;
        acn_tensor *logits, *loss, *tg;
        float lr, batch_loss = 0.0f;
        if (train_should_stop(ctx)) { /* Ctrl-C (on any rank): between two steps, the state is whole */
            progress_end(&pg);
            if (o->save) {
                es.seconds = now_s() - t_epoch;
                if (image_save(ctx, prog, &save, md, &opt, &smp, step, &es)) { status = 1; break; }
                printf("stopped by %s at step %ld (epoch %ld, image %ld of %d); saved %s and %s; continue "
                       "with --resume %s\n", train_signal_name(), step, (long)smp.epoch + 1, (long)smp.pos, tr->n,
                       save.weights, save.state, o->save);
            } else {
                printf("stopped by %s at step %ld; nothing saved (no --save)\n", train_signal_name(), step);
            }
            status = 130;
            break;
        }
        b = acn_sampler_next(&smp, idx);
        if (b == 0) { /* the end of epoch smp.epoch - 1 */
            long e = (long)smp.epoch - 1;
            int evaluated = 0;
            progress_end(&pg);
            es.seconds = now_s() - t_epoch;
            if ((o->eval_every && (e + 1) % o->eval_every == 0) || smp.epoch == o->epochs) {
                if (image_eval(ctx, md, d, o, acc, &test_loss)) {
                    train_report(ctx, prog, "evaluation failed: ");
                    status = 1;
                    break;
                }
                evaluated = 1;
            }
            printf("epoch %ld/%d: train loss %.4f", e + 1, o->epochs, es.batches ? es.loss / es.batches : 0.0);
            if (evaluated) printf(", test loss %.4f, test accuracy %.2f%%", test_loss, acc[L]);
            printf(" (%.0f s)\n", es.seconds);
            if (evaluated) print_probes(acc, L);
            fflush(stdout);
            if (log) {
                fprintf(log, "%ld,%ld,%.6g,%.6f", e + 1, step, acn_lr_at(&sched, step > 0 ? step - 1 : 0),
                        es.batches ? es.loss / es.batches : 0.0);
                if (evaluated) fprintf(log, ",%.6f,%.4f", test_loss, acc[L]);
                else fprintf(log, ",,");
                for (i = 0; i <= L; i++)
                    if (evaluated) fprintf(log, ",%.4f", acc[i]);
                    else fprintf(log, ",");
                for (i = 0; i < L; i++) fprintf(log, ",%.6g", es.batches ? es.gnorm[i] / es.batches : 0.0);
                log_end_row(log, log_record, es.seconds);
                fflush(log);
                if (o->plots && image_plots(prog, o->log, o->plots, L, plot_title)) { status = 1; break; }
            }
            memset(&es, 0, sizeof es);
            t_epoch = now_s();
            if (o->save && image_save(ctx, prog, &save, md, &opt, &smp, step, &es)) { status = 1; break; }
            continue;
        }
        /* a batch: pixels in [0, 1], then the recipe (soft targets); every
         * rank prepares all b images, with the generator they share, and
         * trains on its rows [off, off + cnt) (all of them when alone) */
        acn_data_batch(tr, idx, b, x, y);
        acn_recipe_apply(&d->recipe, acn_ctx_rng(ctx), x, y, b, tr->c, tr->h, tr->w, classes, targets, scratch);
        acn_reset(ctx);
        off = 0;
        cnt = b;
        acn_dist_rows(ctx, b, &off, &cnt);
        loss = NULL;
        if (cnt > 0) { /* (a short last batch may leave a rank no rows) */
            s[0] = cnt; s[1] = tr->c; s[2] = tr->h; s[3] = tr->w;
            logits = md->forward(ctx, md->m, acn_input(ctx, 4, s, x + (size_t)off * per), NULL);
            s[1] = classes;
            tg = acn_input(ctx, 2, s, targets + (size_t)off * classes);
            loss = acn_cross_entropy_soft(ctx, logits, tg, 0.0f);
        }
        {
            char where[64];
            snprintf(where, sizeof where, "step %ld (epoch %ld)", step, (long)smp.epoch + 1);
            lr = acn_lr_at(&sched, step);
            status = train_update(ctx, prog, loss, (double)cnt / b, &opt, lr, o->clip, &es, gw, L, &pg, where,
                                  last_good(o->save ? save.weights : NULL, image_saved_step), &batch_loss);
            if (status) break;
        }
        step++;
        progress_show(&pg, md->name, (long)smp.epoch, o->epochs, (smp.pos + o->batch - 1) / o->batch, spe, step,
                      total, batch_loss, lr, (double)pg.steps_done * o->batch, "img");
        if (o->save && o->save_every && step % o->save_every == 0) {
            es.seconds = now_s() - t_epoch;
            if (image_save(ctx, prog, &save, md, &opt, &smp, step, &es)) { status = 1; break; }
        }
        if (o->stop_after && pg.steps_done == o->stop_after) raise(SIGINT);
    }
    progress_end(&pg);
    if (!status && !pg.steps_done && o->resume)
        printf("the checkpoint has finished its %d epochs already; nothing to do (a larger --epochs continues "
               "with a longer schedule, which is not the run the checkpoint came from)\n", o->epochs);
    else if (!status) {
        printf("\nfinal: test accuracy %.2f%% on %s after %d epoch%s\n", acc[L], d->name, o->epochs,
               o->epochs == 1 ? "" : "s");
        if (o->save) printf("saved %s and %s\n", save.weights, save.state);
    }
done:
    if (log) fclose(log);
    acn_adamw_free(&opt);
    acn_sampler_free(&smp);
    free(x);
    free(targets);
    free(scratch);
    free(y);
    free(idx);
    return status;
}

#endif /* ACN_TRAIN_IMAGES_H */
