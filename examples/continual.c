/* Continual learning: the paper's Mixer learns the classes of CIFAR-10 (or
 * CIFAR-100) a few at a time, task after task, with one head over all the
 * classes, optionally with Synaptic Intelligence (acn_si_*), and reports
 * how much of each earlier task it keeps (docs/acn.md, "Continual
 * learning"; docs/results.md):
 *
 *   split CIFAR-10   5 tasks of 2 classes, in class order (0-1, 2-3, ...)
 *   split CIFAR-100  20 tasks of 5 classes (--data cifar100: train.bin and
 *                    test.bin of the CIFAR-100 binary version in --data-dir)
 *
 * Each task trains for --epochs epochs on its classes' training images
 * (the first --low-data of each class, if given) with a fresh AdamW and the
 * recipe "simple" (crop, flip, label smoothing 0.1), at a constant rate.
 * With --si 1 the SI penalty c sum omega (w - w*)^2 holds the weights the
 * earlier tasks found important; its importance is consolidated at the end
 * of each task. After each task the test images of every task are
 * evaluated: the accuracy matrix A[t][j] (task j after training task t),
 * the average accuracy after the last task, and the forgetting (how far
 * each earlier task fell from its best).
 *
 *   cc -O2 examples/continual.c -o continual -lm
 *   ./continual --wiring acn --si 1 --epochs 2 --log runs/cl_acn_si.csv
 *
 * The run does not checkpoint or resume: it is one pass of a few tasks.
 */
#define ACN_IMPLEMENTATION
#include "../acn.h" /* in your project: "acn.h" */
#include "train.h"

enum { MAX_TASKS = 20 };

typedef struct cl_opts {
    const char *data, *data_dir, *wiring, *log;
    int tasks, epochs, batch, low_data, si, seed, threads, width, depth, token_hidden, channel_hidden, eval_batch;
    float lr, wd, clip, si_c, si_xi, smoothing;
} cl_opts;

/* The examples of src whose labels are in [lo, hi), the first k_per_class
 * of each (-1: all), keeping their labels (one head over every class). */
static int task_subset(acn_ctx *ctx, const acn_dataset *src, acn_dataset *dst, int lo, int hi, int k_per_class)
{
    int cls[100], n = hi - lo, i;
    for (i = 0; i < n; i++) cls[i] = lo + i;
    if (acn_data_select(ctx, src, dst, k_per_class, cls, n)) return 1;
    for (i = 0; i < dst->n; i++) dst->labels[i] = cls[dst->labels[i]]; /* back to the original labels */
    dst->classes = src->classes;
    return 0;
}

/* Test accuracy (%) of the full network on ds. */
static float evaluate(acn_ctx *ctx, const acn_mixer *m, const acn_dataset *ds, const acn_recipe *rc, int batch,
                      float *x, int *y, int *idx)
{
    long correct = 0;
    int i, j, *pred = idx, was_train = acn_set_train(ctx, 0), was_nograd = acn_set_no_grad(ctx, 1);
    for (i = 0; i < ds->n; i += batch) { /* pred: idx, free once the batch is read */
        int b = ds->n - i < batch ? ds->n - i : batch, s[4] = {b, ds->c, ds->h, ds->w};
        acn_tensor *lg;
        for (j = 0; j < b; j++) idx[j] = i + j;
        acn_data_batch(ds, idx, b, x, y);
        acn_aug_normalize(x, b, ds->c, ds->h, ds->w, rc->mean, rc->std);
        acn_reset(ctx);
        if (!(lg = acn_mixer_forward_ex(ctx, m, acn_input(ctx, 4, s, x), -1, NULL, 0))) break;
        if (acn_argmax(ctx, lg, pred)) break;
        for (j = 0; j < b; j++) correct += pred[j] == y[j];
    }
    acn_set_train(ctx, was_train);
    acn_set_no_grad(ctx, was_nograd);
    return ds->n ? 100.0f * (float)correct / (float)ds->n : 0.0f;
}

int main(int argc, char **argv)
{
    cl_opts o;
    flag f[32];
    int n = 0, rc = 1, t, j, e, per_task, arena_mb = 2048;
    acn_ctx *ctx = NULL;
    static acn_mixer m;
    acn_mixer_config mc = acn_mixer_defaults();
    acn_dataset train, test, tr_task[MAX_TASKS], te_task[MAX_TASKS];
    acn_recipe rcp;
    acn_si si;
    acn_adamw opt;
    acn_sampler smp;
    float acc[MAX_TASKS][MAX_TASKS], *x = NULL, *targets = NULL;
    int *y = NULL, *idx = NULL;
    unsigned char *scratch = NULL;
    FILE *log = NULL;
    double t0 = now_s();
    char p[2][1100];

    memset(&o, 0, sizeof o);
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    memset(tr_task, 0, sizeof tr_task);
    memset(te_task, 0, sizeof te_task);
    memset(&si, 0, sizeof si);
    memset(&opt, 0, sizeof opt);
    memset(&smp, 0, sizeof smp);
    o.data = "cifar10";
    o.wiring = "acn";
    o.epochs = 2;
    o.batch = 64;
    o.lr = 1e-3f;
    o.wd = 0.01f;
    o.clip = 1.0f;
    o.si_c = 1.0f;
    o.si_xi = 1e-3f;
    o.smoothing = 0.1f;
    o.width = mc.width;
    o.depth = mc.depth;
    o.token_hidden = mc.token_hidden;
    o.channel_hidden = mc.channel_hidden;
    o.eval_batch = 100;
    F_("--data", FLAG_STR, &o.data, 0, 0, RESUME_ANY, "cifar10 (5 tasks of 2 classes) or cifar100 (20 tasks of 5)");
    F_("--data-dir", FLAG_STR, &o.data_dir, 0, 0, RESUME_ANY, "the data files' folder (default data/cifar-10-batches-bin or data/cifar-100-binary)");
    F_("--tasks", FLAG_INT, &o.tasks, 0, MAX_TASKS, RESUME_ANY, "tasks to learn, in class order (0: all of the split)");
    F_("--epochs", FLAG_INT, &o.epochs, 1, 1e6, RESUME_ANY, "epochs per task");
    F_("--low-data", FLAG_INT, &o.low_data, 0, 1e9, RESUME_ANY, "keep the first K training images of each class (0: all)");
    F_("--si", FLAG_INT, &o.si, 0, 1, RESUME_ANY, "Synaptic Intelligence, 0 or 1");
    F_("--si-c", FLAG_FLOAT, &o.si_c, 0, 1e9, RESUME_ANY, "SI's strength c (the paper's lambda)");
    F_("--si-xi", FLAG_FLOAT, &o.si_xi, 1e-12, 1e9, RESUME_ANY, "SI's damping xi");
    F_("--wiring", FLAG_STR, &o.wiring, 0, 0, RESUME_ANY, "acn, residual, plain or acn-detach");
    F_("--width", FLAG_INT, &o.width, 1, 65536, RESUME_ANY, "channels per token");
    F_("--depth", FLAG_INT, &o.depth, 1, TRAIN_MAXL, RESUME_ANY, "blocks");
    F_("--token-hidden", FLAG_INT, &o.token_hidden, 1, 65536, RESUME_ANY, "hidden width of the token-mixing MLP");
    F_("--channel-hidden", FLAG_INT, &o.channel_hidden, 1, 65536, RESUME_ANY, "hidden width of the channel-mixing MLP");
    F_("--batch", FLAG_INT, &o.batch, 1, 4096, RESUME_ANY, "batch size");
    F_("--lr", FLAG_FLOAT, &o.lr, 0, 1e30, RESUME_ANY, "AdamW's learning rate (constant)");
    F_("--wd", FLAG_FLOAT, &o.wd, 0, 10, RESUME_ANY, "AdamW weight decay");
    F_("--clip", FLAG_FLOAT, &o.clip, 0, 1e9, RESUME_ANY, "clip the gradient's global norm (0: no clipping)");
    F_("--seed", FLAG_INT, &o.seed, 0, 2147483647.0, RESUME_ANY, "seed of initialisation, shuffling and augmentation");
    F_("--eval-batch", FLAG_INT, &o.eval_batch, 1, 4096, RESUME_ANY, "batch size of evaluation");
    F_("--threads", FLAG_INT, &o.threads, 0, TRAIN_MAX_THREADS, RESUME_ANY, "threads (0: ACN_THREADS or every core)");
    F_("--log", FLAG_STR, &o.log, 0, 0, RESUME_ANY, "CSV file: the accuracy matrix, a row per task trained");
    if ((rc = flags_parse(argc, argv, f, n, "Learns CIFAR-10 (or CIFAR-100) a few classes at a time, with or without "
                          "Synaptic Intelligence,\nand reports the accuracy of every task after every task.")))
        return rc == 1 ? 0 : 2;
    rc = 1;
    if (strcmp(o.data, "cifar10") && strcmp(o.data, "cifar100")) {
        fprintf(stderr, "%s: --data %s: expected cifar10 or cifar100\n", argv[0], o.data);
        return 2;
    }
    if ((mc.wiring = train_wiring(argv[0], o.wiring)) < 0) return 2;
    per_task = !strcmp(o.data, "cifar10") ? 2 : 5;
    if (!o.tasks) o.tasks = !strcmp(o.data, "cifar10") ? 5 : 20;
    if (o.tasks * per_task > (!strcmp(o.data, "cifar10") ? 10 : 100)) {
        fprintf(stderr, "%s: --tasks %d: the split has %d tasks of %d classes\n", argv[0], o.tasks,
                !strcmp(o.data, "cifar10") ? 5 : 20, per_task);
        return 2;
    }
    if (!(ctx = train_ctx_new(argv[0], o.seed, arena_mb, o.threads, 64 + 16 * o.depth))) return 1;
    if (!strcmp(o.data, "cifar10")) {
        const char *dir = o.data_dir ? o.data_dir : "data/cifar-10-batches-bin", *tr[5], *te;
        static char bp[5][1100];
        for (j = 0; j < 5; j++) {
            snprintf(bp[j], sizeof bp[j], "%s/data_batch_%d.bin", dir, j + 1);
            tr[j] = bp[j];
        }
        snprintf(p[1], sizeof p[1], "%s/test_batch.bin", dir);
        te = p[1];
        if (!acn_data_cifar(ctx, &train, tr, 5, 0)) acn_data_cifar(ctx, &test, &te, 1, 0);
    } else {
        const char *dir = o.data_dir ? o.data_dir : "data/cifar-100-binary", *tr, *te;
        snprintf(p[0], sizeof p[0], "%s/train.bin", dir);
        snprintf(p[1], sizeof p[1], "%s/test.bin", dir);
        tr = p[0];
        te = p[1];
        if (!acn_data_cifar(ctx, &train, &tr, 1, 1)) acn_data_cifar(ctx, &test, &te, 1, 1);
    }
    if (acn_status_of(ctx)) {
        fprintf(stderr, "%s: %s\n", argv[0], acn_error(ctx));
        goto done;
    }
    train.classes = test.classes = !strcmp(o.data, "cifar10") ? 10 : 100; /* one head over every class */
    for (t = 0; t < o.tasks; t++)
        if (task_subset(ctx, &train, &tr_task[t], t * per_task, (t + 1) * per_task, o.low_data ? o.low_data : -1) ||
            task_subset(ctx, &test, &te_task[t], t * per_task, (t + 1) * per_task, -1)) {
            fprintf(stderr, "%s: %s\n", argv[0], acn_error(ctx));
            goto done;
        } else if (!tr_task[t].n || !te_task[t].n) {
            fprintf(stderr, "%s: task %d (classes %d-%d) has no %s images\n", argv[0], t + 1, t * per_task,
                    (t + 1) * per_task - 1, tr_task[t].n ? "test" : "training");
            goto done;
        }
    mc.channels = train.c;
    mc.image_h = train.h;
    mc.image_w = train.w;
    mc.classes = train.classes;
    mc.width = o.width;
    mc.depth = o.depth;
    mc.token_hidden = o.token_hidden;
    mc.channel_hidden = o.channel_hidden;
    acn_recipe_get("simple", &rcp);
    rcp.smoothing = o.smoothing;
    x = (float *)malloc(sizeof(float) * (size_t)train.c * train.h * train.w * (size_t)(o.batch > o.eval_batch ? o.batch : o.eval_batch));
    targets = (float *)malloc(sizeof(float) * (size_t)train.classes * (size_t)o.batch);
    y = (int *)malloc(sizeof(int) * (size_t)(o.batch > o.eval_batch ? o.batch : o.eval_batch));
    idx = (int *)malloc(sizeof(int) * (size_t)(o.batch > o.eval_batch ? o.batch : o.eval_batch));
    scratch = (unsigned char *)malloc(2 * (size_t)train.c * train.h * train.w);
    if (!x || !targets || !y || !idx || !scratch) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        goto done;
    }
    if (acn_mixer_build(ctx, &m, &mc) || (o.si && acn_si_init(ctx, &si, o.si_c, o.si_xi))) {
        train_report(ctx, argv[0], "");
        goto done;
    }
    printf("%s: %d tasks of %d classes, %d epochs each, %s wiring%s; %zu parameters; CPU %s\n",
           !strcmp(o.data, "cifar10") ? "split CIFAR-10" : "split CIFAR-100", o.tasks, per_task, o.epochs, o.wiring,
           o.si ? ", Synaptic Intelligence" : "", acn_param_numel(ctx), train_cpu_model());
    if (o.log) {
        make_parent(o.log);
        if (!(log = fopen(o.log, "w"))) {
            fprintf(stderr, "%s: cannot open the log %s for writing: %s\n", argv[0], o.log, strerror(errno));
            goto done;
        }
        fprintf(log, "after_task");
        for (j = 0; j < o.tasks; j++) fprintf(log, ",task_%d", j + 1);
        fprintf(log, ",wiring,si,epochs,seed,seconds,cpu_model,acn_version\n");
    }
    for (t = 0; t < o.tasks; t++) {
        const acn_dataset *ds = &tr_task[t];
        long step = 0;
        if (acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, o.wd) ||
            acn_sampler_init(ctx, &smp, ds->n, o.batch, (uint64_t)o.seed * 1000 + (uint64_t)t, 0)) {
            train_report(ctx, argv[0], "");
            goto done;
        }
        for (e = 0; e < o.epochs; e++) {
            int b;
            double loss_sum = 0.0;
            long batches = 0;
            while ((b = acn_sampler_next(&smp, idx)) > 0) { /* one step: task loss, SI, clip, AdamW, SI */
                int s[4] = {b, ds->c, ds->h, ds->w};
                acn_tensor *loss;
                float pen = 0.0f;
                acn_data_batch(ds, idx, b, x, y);
                acn_recipe_apply(&rcp, acn_ctx_rng(ctx), x, y, b, ds->c, ds->h, ds->w, ds->classes, targets, scratch);
                acn_reset(ctx);
                s[1] = ds->c;
                loss = acn_mixer_forward_ex(ctx, &m, acn_input(ctx, 4, s, x), -1, NULL, 0);
                s[1] = ds->classes;
                loss = acn_cross_entropy_soft(ctx, loss, acn_input(ctx, 2, s, targets), 0.0f);
                acn_zero_grad(ctx);
                if (!loss || acn_backward(ctx, loss) || (o.si && acn_si_penalty(ctx, &si, &pen)) ||
                    acn_clip_grad_norm(ctx, o.clip > 0 ? o.clip : 3e38f, NULL) || acn_adamw_step(ctx, &opt, o.lr) ||
                    (o.si && acn_si_update(ctx, &si))) {
                    train_report(ctx, argv[0], "");
                    goto done;
                }
                if (!isfinite(acn_item(ctx, loss))) {
                    fprintf(stderr, "%s: the loss is %g at task %d, step %ld; try a lower --lr\n", argv[0],
                            (double)acn_item(ctx, loss), t + 1, step);
                    rc = 3;
                    goto done;
                }
                loss_sum += acn_item(ctx, loss) + pen;
                batches++;
                step++;
            }
            printf("task %d (classes %d-%d), epoch %d/%d: loss %.4f (%.0f s)\n", t + 1, t * per_task,
                   (t + 1) * per_task - 1, e + 1, o.epochs, batches ? loss_sum / batches : 0.0, now_s() - t0);
            fflush(stdout);
        }
        acn_adamw_free(&opt);
        acn_sampler_free(&smp);
        if (o.si && acn_si_consolidate(ctx, &si)) {
            train_report(ctx, argv[0], "");
            goto done;
        }
        printf("after task %d, test accuracy of task:", t + 1);
        for (j = 0; j < o.tasks; j++) {
            acc[t][j] = evaluate(ctx, &m, &te_task[j], &rcp, o.eval_batch, x, y, idx);
            printf(" %d:%.1f", j + 1, acc[t][j]);
        }
        printf("\n");
        if (acn_status_of(ctx)) {
            train_report(ctx, argv[0], "evaluation failed: ");
            goto done;
        }
        if (log) {
            fprintf(log, "%d", t + 1);
            for (j = 0; j < o.tasks; j++) fprintf(log, ",%.4f", acc[t][j]);
            fprintf(log, ",%s,%d,%d,%d,%.1f,%s,%s\n", o.wiring, o.si, o.epochs, o.seed, now_s() - t0,
                    train_cpu_model(), ACN_VERSION);
            fflush(log);
        }
    }
    { /* the summary: average accuracy after the last task, and forgetting */
        int T = o.tasks;
        double avg = 0.0, forget = 0.0;
        for (j = 0; j < T; j++) avg += acc[T - 1][j];
        for (j = 0; j < T - 1; j++) {
            double best = 0.0;
            for (t = j; t < T - 1; t++)
                if (acc[t][j] > best) best = acc[t][j];
            forget += best - acc[T - 1][j];
        }
        printf("\naccuracy matrix (row: after task t; column: task j), %%\n      ");
        for (j = 0; j < T; j++) printf(" %6d", j + 1);
        printf("\n");
        for (t = 0; t < T; t++) {
            printf("%5d ", t + 1);
            for (j = 0; j < T; j++) printf(" %6.1f", acc[t][j]);
            printf("\n");
        }
        printf("average accuracy after the last task: %.2f%%; forgetting: %.2f points (the mean fall of tasks 1..%d "
               "from their best); %.0f s\n", avg / T, T > 1 ? forget / (T - 1) : 0.0, T - 1, now_s() - t0);
    }
    rc = 0;
done:
    if (log && fclose(log) && !rc) {
        fprintf(stderr, "%s: writing the log %s failed: %s\n", argv[0], o.log, strerror(errno));
        rc = 1;
    }
    for (t = 0; t < MAX_TASKS; t++) {
        acn_data_free(&tr_task[t]);
        acn_data_free(&te_task[t]);
    }
    acn_data_free(&train);
    acn_data_free(&test);
    acn_si_free(&si);
    acn_adamw_free(&opt);
    acn_sampler_free(&smp);
    free(x);
    free(targets);
    free(y);
    free(idx);
    free(scratch);
    if (ctx) acn_ctx_free(ctx);
    return rc;
}
