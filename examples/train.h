/* train.h: what the training examples (train_mixer.c, train_vit.c,
 * train_bert.c) share, in one place so each program shows only its model:
 *
 *   flags     a table-driven command-line parser with --help
 *   progress  a status line that rewrites itself on a terminal (plain lines
 *             otherwise), with images/s and the time left
 *   stopping  Ctrl-C (SIGINT) or SIGTERM asks the loop to save and exit; a
 *             second Ctrl-C quits at once
 *   runs      checkpoint pairs PREFIX.safetensors (the weights, loadable in
 *             PyTorch) and PREFIX.state.safetensors (optimizer, generator,
 *             data cursor), the pair before kept as PREFIX.prev.*, the
 *             model's settings kept in the weights' metadata and compared on
 *             --resume, and the epoch's running sums (loss, per-block
 *             gradient norms) carried across a resume
 *
 * train_images.h builds the image programs' loop on top of it.
 *
 * Include it after acn.h (with ACN_IMPLEMENTATION) in one C file. POSIX:
 * clock_gettime and isatty.
 */
#ifndef ACN_TRAIN_H
#define ACN_TRAIN_H
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRAIN_MAXL 64 /* blocks a program reports on */

/* ---- flags ---------------------------------------------------------------- */
enum { FLAG_INT, FLAG_FLOAT, FLAG_STR, FLAG_SWITCH };
typedef struct flag {
    const char *name;      /* "--epochs"                                       */
    int type;              /* FLAG_*                                           */
    void *dst;             /* int *, float *, const char ** or int * (switch)  */
    double lo, hi;         /* the accepted range of a number                   */
    const char *help;
} flag;

/* 0: parsed; 1: --help was printed (exit 0); 2: an error was printed (exit 2). */
static int flags_parse(int argc, char **argv, const flag *f, int n, const char *about)
{
    int i, j;
    for (i = 1; i < argc; i++) {
        const flag *g = NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [flags]\n%s\nflags (default in brackets):\n", argv[0], about);
            for (j = 0; j < n; j++) {
                char def[64] = "";
                if (f[j].type == FLAG_INT) snprintf(def, sizeof def, "[%d]", *(int *)f[j].dst);
                if (f[j].type == FLAG_FLOAT) snprintf(def, sizeof def, "[%g]", *(float *)f[j].dst);
                if (f[j].type == FLAG_STR && *(const char **)f[j].dst) snprintf(def, sizeof def, "[%s]", *(const char **)f[j].dst);
                printf("  %-18s %s %s\n", f[j].name, f[j].help, def);
            }
            return 1;
        }
        for (j = 0; j < n && !g; j++)
            if (!strcmp(argv[i], f[j].name)) g = &f[j];
        if (!g) {
            fprintf(stderr, "%s: unknown flag '%s'; try --help\n", argv[0], argv[i]);
            return 2;
        }
        if (g->type == FLAG_SWITCH) { *(int *)g->dst = 1; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value; try --help\n", argv[0], g->name);
            return 2;
        }
        i++;
        if (g->type == FLAG_STR) { *(const char **)g->dst = argv[i]; continue; }
        {
            char *end;
            double v = strtod(argv[i], &end);
            if (end == argv[i] || *end || v != v || v < g->lo || v > g->hi || (g->type == FLAG_INT && v != floor(v))) {
                fprintf(stderr, "%s: %s %s: expected %s from %g to %g\n", argv[0], g->name, argv[i],
                        g->type == FLAG_INT ? "a whole number" : "a number", g->lo, g->hi);
                return 2;
            }
            if (g->type == FLAG_INT) *(int *)g->dst = (int)v;
            else *(float *)g->dst = (float)v;
        }
    }
    return 0;
}

/* ---- the context and the wiring ---------------------------------------------- */
/* A context seeded with seed, with an arena of arena_mb MB and threads
 * threads (0: ACN_THREADS or every core). NULL with a message on failure. */
static acn_ctx *train_ctx_new(const char *prog, int seed, int arena_mb, int threads)
{
    acn_ctx *ctx;
    acn_ctx_config cc = acn_ctx_defaults();
    cc.seed = (uint64_t)seed;
    cc.arena_bytes = (size_t)arena_mb << 20;
    if (acn_ctx_new(&ctx, &cc)) {
        fprintf(stderr, "%s: cannot create the context (arena %d MB); try a smaller --arena-mb\n", prog, arena_mb);
        return NULL;
    }
    if (threads && acn_set_threads(ctx, threads)) {
        fprintf(stderr, "%s: %s\n", prog, acn_error(ctx));
        acn_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ACN_* of a wiring's name, or -1 with a message. */
static int train_wiring(const char *prog, const char *name)
{
    int w = acn_wiring_parse(name);
    if (w < 0) fprintf(stderr, "%s: --wiring %s: expected acn, residual, plain or acn-detach\n", prog, name);
    return w;
}

/* ---- clock and progress ---------------------------------------------------- */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fmt_time(char *buf, size_t n, double s)
{
    long t = s < 0 || s > 1e8 ? 0 : (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* One status line: rewritten in place on a terminal; elsewhere (a log file)
 * a plain line about every tenth of an epoch. */
typedef struct progress {
    int tty, shown;
    double t_start;        /* when this process started training           */
    long steps_done;       /* steps run by this process                    */
    long last_line;        /* step of the last line shown                  */
    double last_time;      /* and when                                     */
} progress;

static void progress_init(progress *p)
{
    memset(p, 0, sizeof *p);
    p->tty = isatty(fileno(stderr));
    p->t_start = now_s();
}

static void progress_show(progress *p, const char *what, long epoch, long epochs, long pos, long per_epoch,
                          long step, long steps_total, float loss, float lr, double items, const char *unit)
{
    double el = now_s() - p->t_start, rate = el > 0 ? items / el : 0.0;
    double eta = p->steps_done > 0 ? el / (double)p->steps_done * (double)(steps_total - step) : 0.0;
    char e[32];
    fmt_time(e, sizeof e, eta);
    if (p->shown && pos != per_epoch &&
        (p->tty ? now_s() - p->last_time < 0.1 : step - p->last_line < (per_epoch >= 10 ? per_epoch / 10 : 1)))
        return; /* a terminal: at most 10 updates a second; a file: a line every tenth of an epoch */
    fprintf(stderr, "%s%s epoch %ld/%ld  step %ld/%ld  loss %.4f  lr %.2e  %.0f %s/s  ETA %s%s", p->tty ? "\r" : "",
            what, epoch + 1, epochs, pos, per_epoch, loss, lr, rate, unit, e, p->tty ? "   " : "\n");
    fflush(stderr);
    p->shown = 1;
    p->last_line = step;
    p->last_time = now_s();
}

static void progress_end(progress *p)
{
    if (p->tty && p->shown) fputc('\n', stderr);
    p->shown = 0;
}

/* ---- stopping --------------------------------------------------------------- */
static volatile sig_atomic_t train_stop_signal;
static void train_on_signal(int s)
{
    train_stop_signal = s;
    signal(s, SIG_DFL); /* a second Ctrl-C ends the program at once */
}
static void train_catch_signals(void)
{
    signal(SIGINT, train_on_signal);
    signal(SIGTERM, train_on_signal);
}

/* ---- runs: checkpoints and settings ---------------------------------------- */
/* A checkpoint is a pair, PREFIX.safetensors (weights) and
 * PREFIX.state.safetensors (optimizer, generator, cursor); acn.h writes each
 * file atomically, the state first. A crash between the two writes leaves a
 * pair of different steps, which acn_load_checkpoint refuses; so before each
 * save the programs keep the pair they are about to replace as
 * PREFIX.prev.safetensors and PREFIX.prev.state.safetensors (hard links,
 * each put in place by a rename). At every moment one of the two pairs is
 * whole. */
typedef struct run_files {
    char prefix[1000];
    char weights[1024], state[1024];      /* PREFIX.safetensors, PREFIX.state.safetensors */
    char prev_w[1024], prev_s[1024];      /* PREFIX.prev.safetensors, PREFIX.prev.state.safetensors */
} run_files;

/* Create the folder that will hold path (one level, as mkdir does; an
 * existing folder is fine), so that --save runs/mixer works in a fresh
 * clone. Failures show up when the file is written. */
static void make_parent(const char *path)
{
    char dir[1100];
    char *slash;
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir) return;
    *slash = 0;
    mkdir(dir, 0755);
}

/* The file names of a prefix; 0 if it is too long. */
static int run_files_of(const char *prefix, run_files *f)
{
    return prefix && strlen(prefix) < sizeof f->prefix &&
           (size_t)snprintf(f->prefix, sizeof f->prefix, "%s", prefix) < sizeof f->prefix &&
           (size_t)snprintf(f->weights, sizeof f->weights, "%s.safetensors", prefix) < sizeof f->weights &&
           (size_t)snprintf(f->state, sizeof f->state, "%s.state.safetensors", prefix) < sizeof f->state &&
           (size_t)snprintf(f->prev_w, sizeof f->prev_w, "%s.prev.safetensors", prefix) < sizeof f->prev_w &&
           (size_t)snprintf(f->prev_s, sizeof f->prev_s, "%s.prev.state.safetensors", prefix) < sizeof f->prev_s;
}

/* dst becomes another name of src's file, atomically (link, then rename). */
static int link_over(const char *src, const char *dst)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    remove(tmp);
    return link(src, tmp) || rename(tmp, dst);
}

/* Keep the pair about to be replaced as PREFIX.prev.*; 0 on success (or
 * when there is no pair yet), else 1 with a message. */
static int run_keep_previous(const char *prog, const run_files *f)
{
    FILE *w = fopen(f->weights, "rb"), *s = fopen(f->state, "rb");
    int both = w && s;
    if (w) fclose(w);
    if (s) fclose(s);
    if (!both) return 0;
    if (link_over(f->weights, f->prev_w) || link_over(f->state, f->prev_s)) {
        fprintf(stderr, "%s: cannot keep the previous checkpoint as %s: %s; the folder must allow hard links\n",
                prog, f->prev_w, strerror(errno));
        return 1;
    }
    return 0;
}

/* The message for a checkpoint that does not load: what acn.h said, and,
 * when PREFIX.prev exists, that it is the pair before it. */
static void run_resume_failed(acn_ctx *ctx, const char *prog, const run_files *f)
{
    FILE *p = fopen(f->prev_w, "rb");
    fprintf(stderr, "%s: cannot resume: %s\n", prog, acn_error(ctx));
    if (p) {
        fclose(p);
        fprintf(stderr, "%s: %s.prev is the checkpoint saved before it; --resume %s.prev continues from there\n", prog,
                f->prefix, f->prefix);
    }
}

/* "The last good state is X (step N)." for the message of a run stopped by
 * a non-finite loss: the checkpoint on disk is left as it was. */
static const char *last_good(const char *weights, long step)
{
    static char buf[1200];
    if (!weights) snprintf(buf, sizeof buf, "No checkpoint is kept (no --save).");
    else if (step < 0) snprintf(buf, sizeof buf, "No checkpoint was written yet.");
    else snprintf(buf, sizeof buf, "The last good state is %s (step %ld), left as it was.", weights, step);
    return buf;
}

/* The settings that define a model, as metadata key/value pairs. */
#define RUN_META_MAX 128 /* enough for a model's settings, the training's and TRAIN_MAXL sums */
typedef struct run_meta {
    int n;
    char key[RUN_META_MAX][40], val[RUN_META_MAX][96];
    const char *kv[2 * RUN_META_MAX];
} run_meta;

static void meta_set(run_meta *m, const char *key, const char *fmt, ...)
{
    va_list ap;
    ACN_ASSERT(m->n < RUN_META_MAX);
    if (m->n >= RUN_META_MAX) return;
    snprintf(m->key[m->n], sizeof m->key[0], "%s", key);
    va_start(ap, fmt);
    vsnprintf(m->val[m->n], sizeof m->val[0], fmt, ap);
    va_end(ap);
    m->n++;
}

static const char *const *meta_kv(run_meta *m)
{
    int i;
    for (i = 0; i < m->n; i++) {
        m->kv[2 * i] = m->key[i];
        m->kv[2 * i + 1] = m->val[i];
    }
    return m->kv;
}

/* On --resume: each model setting must be what the checkpoint was made
 * with. 0 if they agree; otherwise prints which differs and returns 1. */
static int meta_check(acn_ctx *ctx, const char *prog, const run_files *f, const run_meta *model)
{
    acn_st st;
    int i, bad = 0;
    if (acn_st_read(ctx, f->weights, &st)) {
        fprintf(stderr, "%s: cannot resume: %s\n", prog, acn_error(ctx));
        return 1;
    }
    for (i = 0; i < model->n && !bad; i++) {
        const char *v = acn_st_meta(&st, model->key[i]);
        if (!v || strcmp(v, model->val[i])) {
            fprintf(stderr, "%s: cannot resume: %s was made with %s=%s, this run has %s=%s; pass the flags it was "
                    "trained with, or start afresh without --resume\n", prog, f->weights, model->key[i], v ? v : "(none)",
                    model->key[i], model->val[i]);
            bad = 1;
        }
    }
    acn_st_free(&st);
    return bad;
}

/* Per-epoch sums the loop keeps; saved in the checkpoint's metadata (as
 * exact hex floats) so that a resumed epoch still reports the whole epoch. */
typedef struct epoch_sums {
    double loss;
    long batches;
    double gnorm[TRAIN_MAXL];
    double seconds;
} epoch_sums;

/* The weights whose gradient norms are logged: fmt with the block index. */
static void sums_find_weights(acn_ctx *ctx, const char *fmt, int L, acn_tensor **gw)
{
    int i;
    for (i = 0; i < L; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, fmt, i);
        gw[i] = acn_param_find(ctx, nm);
    }
}

/* Spec section 5: the Frobenius norm of each block's weight gradient, added
 * to the epoch's sums (before clipping). */
static void sums_add_gnorms(epoch_sums *e, acn_tensor *const *gw, int L)
{
    int i;
    for (i = 0; i < L; i++) {
        double s2 = 0.0;
        size_t j;
        if (!gw[i]) continue;
        for (j = 0; j < gw[i]->numel; j++) s2 += (double)gw[i]->grad[j] * gw[i]->grad[j];
        e->gnorm[i] += sqrt(s2);
    }
}

static void sums_to_meta(const epoch_sums *e, int L, run_meta *m)
{
    int i;
    meta_set(m, "train.epoch_loss_sum", "%a", e->loss);
    meta_set(m, "train.epoch_batches", "%ld", e->batches);
    meta_set(m, "train.epoch_seconds", "%a", e->seconds);
    for (i = 0; i < L; i++) {
        char key[40];
        snprintf(key, sizeof key, "train.gnorm_sum.%d", i);
        meta_set(m, key, "%a", e->gnorm[i]);
    }
}

/* The sums back from a checkpoint's metadata (zero where missing). */
static void sums_from_meta(acn_ctx *ctx, const char *weights, int L, epoch_sums *e)
{
    acn_st st;
    const char *v;
    char key[40];
    int i;
    memset(e, 0, sizeof *e);
    if (acn_st_read(ctx, weights, &st)) { acn_clear_error(ctx); return; }
    if ((v = acn_st_meta(&st, "train.epoch_loss_sum"))) e->loss = strtod(v, NULL);
    if ((v = acn_st_meta(&st, "train.epoch_batches"))) e->batches = strtol(v, NULL, 10);
    if ((v = acn_st_meta(&st, "train.epoch_seconds"))) e->seconds = strtod(v, NULL);
    for (i = 0; i < L; i++) {
        snprintf(key, sizeof key, "train.gnorm_sum.%d", i);
        if ((v = acn_st_meta(&st, key))) e->gnorm[i] = strtod(v, NULL);
    }
    acn_st_free(&st);
}

/* ---- one update ------------------------------------------------------------ */
/* Everything after the forward pass of a training step: backward, the
 * per-block gradient norms (before clipping), clipping to clip (0: none),
 * and AdamW at rate lr; the loss joins the epoch's sums. A non-finite loss
 * or gradient norm changes nothing and returns 3 with a message saying
 * where (e.g. "step 12 (epoch 1)") and what the last good checkpoint is
 * (good, from last_good). 1 on an acn.h error (printed), 0 otherwise. */
static int train_update(acn_ctx *ctx, const char *prog, acn_tensor *loss, acn_adamw *opt, float lr, float clip,
                        epoch_sums *es, acn_tensor *const *gw, int L, progress *pg, const char *where,
                        const char *good)
{
    float gnorm = 0.0f;
    int finite;
    if (!loss) {
        fprintf(stderr, "%s: %s\n", prog, acn_error(ctx));
        return 1;
    }
    if ((finite = isfinite(loss->data[0]) != 0)) {
        acn_zero_grad(ctx);
        if (acn_backward(ctx, loss)) {
            fprintf(stderr, "%s: %s\n", prog, acn_error(ctx));
            return 1;
        }
        sums_add_gnorms(es, gw, L);
        acn_clip_grad_norm(ctx, clip > 0 ? clip : 3e38f, &gnorm);
    }
    if (!finite || !isfinite(gnorm)) {
        progress_end(pg);
        fprintf(stderr, "%s: the %s is %g at %s; stopped without saving. %s Try a lower learning rate, or --clip\n",
                prog, finite ? "gradient norm" : "loss", finite ? (double)gnorm : (double)loss->data[0], where, good);
        return 3;
    }
    if (acn_adamw_step(ctx, opt, lr)) {
        fprintf(stderr, "%s: %s\n", prog, acn_error(ctx));
        return 1;
    }
    es->loss += loss->data[0];
    es->batches++;
    pg->steps_done++;
    return 0;
}

#endif /* ACN_TRAIN_H */
