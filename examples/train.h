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
 *             model's and the training's settings kept in the weights'
 *             metadata and compared on --resume (each flag declares whether
 *             it may differ), and the epoch's running sums (loss, per-block
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
/* The helpers here are static; a program need not use them all. */
#if defined(__GNUC__) || defined(__clang__)
#define TRAIN_FN static __attribute__((unused))
#else
#define TRAIN_FN static
#endif
#define RUN_META_MAX 160 /* enough for a model's settings, the training's and TRAIN_MAXL sums */

/* ---- flags ---------------------------------------------------------------- */
enum { FLAG_INT, FLAG_FLOAT, FLAG_STR, FLAG_SWITCH };

/* What a flag may do on --resume. Every flag declares it (the two fields
 * after hi, given by one of the RESUME_* macros below), so that a flag added
 * later has to say:
 *   RESUME_ANY          may differ: how the run is watched, housed or stopped
 *                       (--threads, --log, --save, --eval-*, --epochs, ...)
 *   RESUME_SAME(key)    a training setting: recorded in the checkpoint's
 *                       metadata under key and compared on --resume; a
 *                       difference is refused unless --force-resume
 *   RESUME_FIXED(key)   the same, but --force-resume cannot override it
 *                       (--seed: the data order of the checkpoint's epoch
 *                       comes from it)
 *   RESUME_MODEL(key)   part of the model: the program records the model's
 *                       settings itself (run_meta) and they must match; key
 *                       names the metadata entry, so that a difference is
 *                       reported by the flag's name */
enum { FLAG_RESUME_ANY, FLAG_RESUME_SAME, FLAG_RESUME_FIXED, FLAG_RESUME_MODEL };
#define RESUME_ANY FLAG_RESUME_ANY, NULL
#define RESUME_SAME(key) FLAG_RESUME_SAME, key
#define RESUME_FIXED(key) FLAG_RESUME_FIXED, key
#define RESUME_MODEL(key) FLAG_RESUME_MODEL, key
#define TRAIN_MAX_THREADS 64 /* acn.h's limit (acn_set_threads refuses more); the help says "up to 64" */

typedef struct flag {
    const char *name;      /* "--epochs"                                       */
    int type;              /* FLAG_*                                           */
    void *dst;             /* int *, float *, const char ** or int * (switch)  */
    double lo, hi;         /* the accepted range of a number                   */
    int resume;            /* FLAG_RESUME_*                                    */
    const char *key;       /* its metadata key (NULL for RESUME_ANY)           */
    const char *help;
} flag;
/* One entry of a flag table: appended to f[n++] (the caller's array and count). */
#define F_(name, type, dst, lo, hi, resume, help) do { flag g_ = {name, type, dst, lo, hi, resume, help}; f[n++] = g_; } while (0)

/* The flag's value as text, as the checkpoint's metadata records it. */
TRAIN_FN void flag_value(const flag *g, char *buf, size_t n)
{
    if (g->type == FLAG_FLOAT) snprintf(buf, n, "%g", *(float *)g->dst);
    else if (g->type == FLAG_STR) snprintf(buf, n, "%s", *(const char **)g->dst ? *(const char **)g->dst : "(none)");
    else snprintf(buf, n, "%d", *(int *)g->dst);
}

/* A whole number written as plain decimal digits (an optional sign), all of
 * the text consumed: "0x2", "1e3", "2.0" and " 5" are not. */
TRAIN_FN int parse_decimal(const char *s, long long *v)
{
    const char *p = s + (*s == '-' || *s == '+');
    char *end;
    if (!*p) return 0;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return !errno && !*end;
}

/* 0: parsed; 1: --help was printed (exit 0); 2: an error was printed (exit 2). */
TRAIN_FN int flags_parse(int argc, char **argv, const flag *f, int n, const char *about)
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
            for (j = 0; j < n && strcmp(f[j].name, "--resume"); j++) {}
            if (j == n) return 1; /* a program that does not resume */
            printf("On --resume, these may differ from the checkpoint's:");
            for (j = 0; j < n; j++)
                if (f[j].resume == FLAG_RESUME_ANY) printf(" %s", f[j].name);
            printf("; every other flag must match (--force-resume overrides training settings, not the model or --seed)\n");
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
        if (g->type == FLAG_STR) {
            if (!argv[i][0]) {
                fprintf(stderr, "%s: %s '': expected a value, not an empty string; try --help\n", argv[0], g->name);
                return 2;
            }
            *(const char **)g->dst = argv[i];
            continue;
        }
        if (g->type == FLAG_INT) {
            long long v;
            if (!parse_decimal(argv[i], &v) || (double)v < g->lo || (double)v > g->hi) {
                fprintf(stderr, "%s: %s %s: expected a whole number from %.0f to %.0f, in decimal digits\n", argv[0],
                        g->name, argv[i], g->lo, g->hi);
                return 2;
            }
            *(int *)g->dst = (int)v;
        } else {
            char *end;
            double v = strtod(argv[i], &end);
            if (end == argv[i] || *end || v != v || v < g->lo || v > g->hi) {
                fprintf(stderr, "%s: %s %s: expected a number from %g to %g\n", argv[0], g->name, argv[i], g->lo,
                        g->hi);
                return 2;
            }
            *(float *)g->dst = (float)v;
        }
    }
    return 0;
}

/* ---- the context and the wiring ---------------------------------------------- */
static int train_arena_mb; /* the program's --arena-mb, for train_report */

/* An acn.h error, as "PROG: WHAT<acn_error>"; when the step arena is full,
 * also what a program user can do about it (acn.h's own message speaks of
 * acn_ctx_config.arena_bytes, which is --arena-mb here). */
TRAIN_FN void train_report(acn_ctx *ctx, const char *prog, const char *what)
{
    fprintf(stderr, "%s: %s%s\n", prog, what, acn_error(ctx));
    if (acn_status_of(ctx) == ACN_ERR_ARENA)
        fprintf(stderr, "%s: the step needs more than the %d MB of the arena: raise --arena-mb (pages are only used "
                "as needed, so a generous value costs nothing), or use a smaller batch\n", prog, train_arena_mb);
}

/* A context seeded with seed, with an arena of arena_mb MB, room for
 * max_params parameter tensors (so that every depth the flags allow fits)
 * and threads threads (0: ACN_THREADS or every core). NULL with a message on
 * failure. */
static int train_rank; /* this process's rank (0 when alone): only rank 0 shows progress */
/* --device: cpu, or cuda for a GPU context (a program built with ACN_CUDA:
 * make cuda; docs/cuda.md). 0, or 2 with a message. */
static const char *train_device = "cpu";
TRAIN_FN int train_device_check(const char *prog)
{
    if (!strcmp(train_device, "cpu") || !strcmp(train_device, "cuda")) return 0;
    fprintf(stderr, "%s: --device %s: expected cpu or cuda\n", prog, train_device);
    return 2;
}
TRAIN_FN acn_ctx *train_ctx_new(const char *prog, int seed, int arena_mb, int threads, int max_params)
{
    acn_ctx *ctx;
    acn_ctx_config cc = acn_ctx_defaults();
    char why[512];
    cc.seed = (uint64_t)seed;
    cc.arena_bytes = (size_t)arena_mb << 20;
    cc.device = strcmp(train_device, "cuda") ? ACN_DEVICE_CPU : ACN_DEVICE_CUDA;
    if (cc.max_params < max_params) cc.max_params = max_params;
    train_arena_mb = arena_mb;
    if (acn_ctx_new_ex(&ctx, &cc, why, sizeof why)) {
        if (cc.device == ACN_DEVICE_CUDA) fprintf(stderr, "%s: --device cuda: %s\n", prog, why);
        else fprintf(stderr, "%s: cannot create the context (arena %d MB); try a smaller --arena-mb\n", prog, arena_mb);
        return NULL;
    }
    if (threads && acn_set_threads(ctx, threads)) {
        train_report(ctx, prog, "");
        acn_ctx_free(ctx);
        return NULL;
    }
    /* built with ACN_MPI (make mpi) and started by mpirun: join the other
     * ranks; rank 0 alone prints, logs and saves (the others' errors still
     * go to stderr). Otherwise this process is alone. */
    if (acn_dist_init(ctx)) {
        train_report(ctx, prog, "");
        acn_ctx_free(ctx);
        return NULL;
    }
    /* several ranks on this machine, each free to use every core (mpirun
     * --bind-to none): each takes its share. (Bound to fewer cores, a rank
     * has a thread per core it may use already: acn.h counts those.) */
    if (!threads && !getenv("ACN_THREADS") && acn_dist_local_size(ctx) > 1 &&
        acn_threads(ctx) >= (int)sysconf(_SC_NPROCESSORS_ONLN)) {
        int share = acn_threads(ctx) / acn_dist_local_size(ctx);
        if (acn_set_threads(ctx, share > 1 ? share : 1)) {
            train_report(ctx, prog, "");
            acn_ctx_free(ctx);
            return NULL;
        }
    }
    train_rank = acn_dist_rank(ctx);
    if (acn_dist_rank(ctx) > 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "%s: rank %d: cannot silence its output: %s\n", prog, acn_dist_rank(ctx), strerror(errno));
        acn_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The end of a program: with several ranks, a rank that failed on its own
 * (status 1: a file, memory; not ACN_ERR_DIST, the news of another rank's
 * failure) takes the others down with it rather than leave them waiting;
 * then MPI ends. Returns status. */
TRAIN_FN int train_finish(acn_ctx *ctx, int status)
{
    if (status == 1 && acn_status_of(ctx) != ACN_ERR_DIST) acn_dist_abort(ctx, 1);
    acn_ctx_free(ctx);
    acn_dist_finalize();
    return status;
}

/* ACN_* of a wiring's name, or -1 with a message. */
TRAIN_FN int train_wiring(const char *prog, const char *name)
{
    int w = acn_wiring_parse(name);
    if (w < 0) fprintf(stderr, "%s: --wiring %s: expected acn, residual, plain or acn-detach\n", prog, name);
    return w;
}

/* ---- clock and progress ---------------------------------------------------- */
TRAIN_FN double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

TRAIN_FN void fmt_time(char *buf, size_t n, double s)
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

TRAIN_FN void progress_init(progress *p)
{
    memset(p, 0, sizeof *p);
    p->tty = isatty(fileno(stderr));
    p->t_start = now_s();
}

TRAIN_FN void progress_show(progress *p, const char *what, long epoch, long epochs, long pos, long per_epoch,
                          long step, long steps_total, float loss, float lr, double items, const char *unit)
{
    double el = now_s() - p->t_start, rate = el > 0 ? items / el : 0.0;
    double eta = p->steps_done > 0 ? el / (double)p->steps_done * (double)(steps_total - step) : 0.0;
    char e[32];
    fmt_time(e, sizeof e, eta);
    if (train_rank > 0) return;
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

TRAIN_FN void progress_end(progress *p)
{
    if (p->tty && p->shown) fputc('\n', stderr);
    p->shown = 0;
}

/* ---- stopping --------------------------------------------------------------- */
static volatile sig_atomic_t train_stop_signal;
TRAIN_FN void train_on_signal(int s)
{
    train_stop_signal = s;
    signal(s, SIG_DFL); /* a second Ctrl-C ends the program at once */
}
/* "signal 2", or, with several ranks, the news that another got one */
TRAIN_FN const char *train_signal_name(void)
{
    static char buf[40];
    if (!train_stop_signal) return "a signal to another rank";
    snprintf(buf, sizeof buf, "signal %d", (int)train_stop_signal);
    return buf;
}
TRAIN_FN void train_catch_signals(void)
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
 * clone. Failures show up when the file is opened (run_can_write). */
TRAIN_FN void make_parent(const char *path)
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
TRAIN_FN int run_files_of(const char *prefix, run_files *f)
{
    return prefix && strlen(prefix) < sizeof f->prefix &&
           (size_t)snprintf(f->prefix, sizeof f->prefix, "%s", prefix) < sizeof f->prefix &&
           (size_t)snprintf(f->weights, sizeof f->weights, "%s.safetensors", prefix) < sizeof f->weights &&
           (size_t)snprintf(f->state, sizeof f->state, "%s.state.safetensors", prefix) < sizeof f->state &&
           (size_t)snprintf(f->prev_w, sizeof f->prev_w, "%s.prev.safetensors", prefix) < sizeof f->prev_w &&
           (size_t)snprintf(f->prev_s, sizeof f->prev_s, "%s.prev.state.safetensors", prefix) < sizeof f->prev_s;
}

/* The prefix given to flag (--save, --resume) as file names; 0, or 2 with
 * a message: a prefix that names a folder ("runs/" would write the hidden
 * files runs/.safetensors), or one too long. */
TRAIN_FN int run_prefix(const char *prog, const char *flag_name, const char *prefix, run_files *f)
{
    size_t n = strlen(prefix);
    if (!n || prefix[n - 1] == '/' || (n >= 2 && !strcmp(prefix + n - 2, "/.")) || !strcmp(prefix, ".") ||
        (n >= 3 && !strcmp(prefix + n - 3, "/..")) || !strcmp(prefix, "..")) {
        fprintf(stderr, "%s: %s '%s': expected a checkpoint prefix that ends in a file name, e.g. runs/mixer "
                "(for runs/mixer.safetensors)\n", prog, flag_name, prefix);
        return 2;
    }
    if (!run_files_of(prefix, f)) {
        fprintf(stderr, "%s: %s: the checkpoint prefix is too long (%zu characters; at most %zu)\n", prog, flag_name,
                n, sizeof f->prefix - 30);
        return 2;
    }
    return 0;
}

/* --save: whether PREFIX.safetensors can be written, before any training:
 * the folder is created (one level), then PREFIX.safetensors.tmp (the name
 * acn.h writes first) is created and removed. 0, or 1 with the system's
 * reason (permission denied, a read-only file system, a missing folder). */
TRAIN_FN int run_can_write(const char *prog, const run_files *f)
{
    char tmp[1100];
    FILE *t;
    make_parent(f->weights);
    snprintf(tmp, sizeof tmp, "%s.tmp", f->weights);
    errno = 0;
    if (!(t = fopen(tmp, "ab"))) {
        int e = errno;
        fprintf(stderr, "%s: --save %s: cannot create %s: %s%s\n", prog, f->prefix, tmp, strerror(e),
                e == ENOENT ? " (only the last folder of the prefix is created)"
                            : "; give a prefix in a folder this user can write to");
        return 1;
    }
    fclose(t);
    remove(tmp);
    return 0;
}

/* dst becomes another name of src's file, atomically (link, then rename). */
TRAIN_FN int link_over(const char *src, const char *dst)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    remove(tmp);
    return link(src, tmp) || rename(tmp, dst);
}

/* Keep the pair about to be replaced as PREFIX.prev.*; 0 on success (or
 * when there is no pair yet), else 1 with a message. */
TRAIN_FN int run_keep_previous(const char *prog, const run_files *f)
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

/* The CPU's model name, from /proc/cpuinfo ("unknown" elsewhere), for the
 * record: checkpoints and CSV logs say which machine made them. Commas and
 * quotes become spaces, so that it sits in a CSV field as it is. */
TRAIN_FN const char *train_cpu_model(void)
{
    static char name[160];
    char line[512];
    FILE *f;
    if (name[0]) return name;
    snprintf(name, sizeof name, "unknown");
    if (!(f = fopen("/proc/cpuinfo", "r"))) return name;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            char *p = strchr(line, ':') + 1, *q;
            while (*p == ' ' || *p == '\t') p++;
            p[strcspn(p, "\r\n")] = 0;
            for (q = p; *q; q++)
                if (*q == ',' || *q == '"') *q = ' ';
            if (*p) snprintf(name, sizeof name, "%s", p);
            break;
        }
    fclose(f);
    return name;
}

/* acn_save_checkpoint with the message of a failure: acn.h's, and the
 * system's reason when there is one. The metadata gains, for the record,
 * the CPU (cpu_model) and acn.h's version (acn_version). 0, or 1. */
TRAIN_FN int run_save(acn_ctx *ctx, const char *prog, const run_files *f, const acn_adamw *opt, const acn_sampler *smp,
                    long step, const char *const *kv, int n_kv)
{
    static const char *all[2 * (RUN_META_MAX + 2)];
    int i;
    for (i = 0; i < 2 * n_kv && i < 2 * RUN_META_MAX; i++) all[i] = kv[i];
    all[i++] = "cpu_model";
    all[i++] = train_cpu_model();
    all[i++] = "acn_version";
    all[i++] = ACN_VERSION;
    kv = all;
    n_kv = i / 2;
    errno = 0;
    if (acn_save_checkpoint(ctx, f->weights, f->state, opt, smp, step, kv, n_kv)) {
        int e = errno;
        train_report(ctx, prog, "saving the checkpoint failed: ");
        if (e) fprintf(stderr, "%s: the system says: %s\n", prog, strerror(e));
        return 1;
    }
    return 0;
}

/* The message for a checkpoint that does not load: what acn.h said, and,
 * when PREFIX.prev exists, that it is the pair before it. */
TRAIN_FN void run_resume_failed(acn_ctx *ctx, const char *prog, const run_files *f)
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
TRAIN_FN const char *last_good(const char *weights, long step)
{
    static char buf[1200];
    if (!weights) snprintf(buf, sizeof buf, "No checkpoint is kept (no --save).");
    else if (step < 0) snprintf(buf, sizeof buf, "No checkpoint was written yet.");
    else snprintf(buf, sizeof buf, "The last good state is %s (step %ld), left as it was.", weights, step);
    return buf;
}

/* Settings as metadata key/value pairs. */
typedef struct run_meta {
    int n;
    char key[RUN_META_MAX][40], val[RUN_META_MAX][96];
    const char *kv[2 * RUN_META_MAX];
} run_meta;

TRAIN_FN void meta_set(run_meta *m, const char *key, const char *fmt, ...)
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

TRAIN_FN const char *const *meta_kv(run_meta *m)
{
    int i;
    for (i = 0; i < m->n; i++) {
        m->kv[2 * i] = m->key[i];
        m->kv[2 * i + 1] = m->val[i];
    }
    return m->kv;
}

/* The training settings the flags give (RESUME_SAME and RESUME_FIXED), for
 * the checkpoint's metadata. */
TRAIN_FN void flags_meta(const flag *f, int n, run_meta *m)
{
    int j;
    for (j = 0; j < n; j++)
        if (f[j].resume == FLAG_RESUME_SAME || f[j].resume == FLAG_RESUME_FIXED) {
            char v[96];
            flag_value(&f[j], v, sizeof v);
            meta_set(m, f[j].key, "%s", v);
        }
}

/* Appends printf text to buf (capacity cap), cut if it does not fit. */
TRAIN_FN void buf_add(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    if (len + 1 >= cap) return;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* On --resume: this run's settings against those the checkpoint's metadata
 * records, every difference listed ("--batch: checkpoint 16, now 32"):
 *   model    the model's settings (must match; a RESUME_MODEL flag with the
 *            same key names it);
 *   f, n     the flags: RESUME_SAME and RESUME_FIXED ones under their keys;
 *   derived  training settings that are no single flag (the number of
 *            training images), compared like RESUME_SAME ones.
 * A training setting the checkpoint does not record (one written by an
 * older version) is named in a note and not checked; a model setting it
 * does not record counts as a difference. With force (--force-resume),
 * differences in RESUME_SAME and derived settings are accepted: the output
 * says so and changes gets them ("--batch 16 -> 32, ..."), for the log.
 * Returns 0 (resume), 1 (the checkpoint cannot be read) or 2 (refused). */
TRAIN_FN int resume_check(acn_ctx *ctx, const char *prog, const run_files *rf, const run_meta *model, const flag *f,
                        int n, const run_meta *derived, int force, char *changes, size_t cap)
{
    acn_st st;
    char lines[6000] = "", missing[1000] = "", now[96];
    int i, j, ndiff = 0, hard = 0;
    changes[0] = 0;
    if (acn_st_read(ctx, rf->weights, &st)) {
        fprintf(stderr, "%s: cannot resume: %s\n", prog, acn_error(ctx));
        return 1;
    }
    for (i = 0; i < model->n; i++) {
        const char *v = acn_st_meta(&st, model->key[i]), *name = model->key[i];
        if (v && !strcmp(v, model->val[i])) continue;
        for (j = 0; j < n; j++)
            if (f[j].resume == FLAG_RESUME_MODEL && !strcmp(f[j].key, model->key[i])) name = f[j].name;
        buf_add(lines, sizeof lines, "  %s: checkpoint %s, now %s (the model)\n", name, v ? v : "(not recorded)",
                model->val[i]);
        ndiff++;
        hard = 1;
    }
    for (j = 0; j < n + (derived ? derived->n : 0); j++) {
        const char *key, *name, *v;
        int fixed = 0;
        if (j < n) {
            if (f[j].resume != FLAG_RESUME_SAME && f[j].resume != FLAG_RESUME_FIXED) continue;
            key = f[j].key;
            name = f[j].name;
            fixed = f[j].resume == FLAG_RESUME_FIXED;
            flag_value(&f[j], now, sizeof now);
        } else {
            key = name = derived->key[j - n];
            snprintf(now, sizeof now, "%s", derived->val[j - n]);
        }
        if (!(v = acn_st_meta(&st, key))) {
            buf_add(missing, sizeof missing, "%s%s", missing[0] ? ", " : "", name);
            continue;
        }
        if (!strcmp(v, now)) continue;
        buf_add(lines, sizeof lines, "  %s: checkpoint %s, now %s%s\n", name, v, now,
                fixed ? " (--force-resume cannot change it)" : "");
        if (!fixed) buf_add(changes, cap, "%s%s %s -> %s", changes[0] ? ", " : "", name, v, now);
        ndiff++;
        hard |= fixed;
    }
    acn_st_free(&st);
    if (missing[0])
        fprintf(stderr, "%s: note: %s does not record %s (it was written by an older version); %s not checked\n", prog,
                rf->weights, missing, strchr(missing, ',') ? "these were" : "this was");
    if (!ndiff) return 0;
    if (hard || !force) {
        fprintf(stderr, "%s: cannot resume from %s: %d setting%s differ%s from the checkpoint's:\n%s", prog,
                rf->weights, ndiff, ndiff == 1 ? "" : "s", ndiff == 1 ? "s" : "", lines);
        if (hard)
            fprintf(stderr, "%s: give the checkpoint's values, or start afresh without --resume\n", prog);
        else
            fprintf(stderr, "%s: give the checkpoint's values, start afresh without --resume, or add --force-resume "
                    "to continue with the new ones (the run is then not the one the checkpoint came from)\n", prog);
        changes[0] = 0;
        return 2;
    }
    printf("--force-resume: resuming from %s with %d setting%s that differ%s from the checkpoint's (the run is no "
           "longer the one the checkpoint came from):\n%s", rf->weights, ndiff, ndiff == 1 ? "" : "s",
           ndiff == 1 ? "s" : "", lines);
    return 0;
}

/* --eval-only and --weights go together, and an evaluation trains nothing:
 * 0, or 2 with a message naming the flag that does not belong. `training`
 * is the first training-only flag given (--save, --resume, ...), or NULL. */
TRAIN_FN int eval_flags_check(const char *prog, int eval_only, const char *weights, const char *training)
{
    if (eval_only != (weights != NULL)) {
        fprintf(stderr, "%s: %s\n", prog, eval_only ? "--eval-only needs --weights FILE.safetensors, the weights to "
                "evaluate" : "--weights goes with --eval-only (to continue a training run, use --resume PREFIX)");
        return 2;
    }
    if (eval_only && training) {
        fprintf(stderr, "%s: --eval-only trains nothing, so it takes no %s\n", prog, training);
        return 2;
    }
    return 0;
}

/* --eval-only --weights FILE: the flags that define the model (the
 * RESUME_MODEL ones) and the training flags whose keys `also` lists (what
 * the evaluation's data depends on: the data set, a class subset, BERT's
 * vocabulary threshold), set from FILE's metadata as if given on the
 * command line, ranges checked. A file made by another program (metadata
 * "model" other than model) is refused, as is any of these flags given on
 * the command line too: the file decides them. A cut file (acn_save_cut)
 * records its own depth, so it rebuilds as the smaller model. Returns 0, 1
 * (the file cannot be read, or lacks a setting) or 2 (a flag given). */
TRAIN_FN int flags_from_weights(const char *prog, const char *path, const char *model, int argc, char **argv,
                              const flag *f, int n, const char *const *also)
{
    static char vals[128][96]; /* by flag */
    char *args[2 * 128 + 1];
    int j, a, nargs = 0, rc = 0;
    const char *v;
    acn_st st;
    acn_ctx *ctx;
    acn_ctx_config cc = acn_ctx_defaults();
    cc.arena_bytes = ACN_ARENA_MIN; /* for its error message alone */
    if (acn_ctx_new(&ctx, &cc)) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    if (acn_st_read(ctx, path, &st)) {
        fprintf(stderr, "%s: --weights: %s\n", prog, acn_error(ctx));
        acn_ctx_free(ctx);
        return 1;
    }
    acn_ctx_free(ctx);
    if (!(v = acn_st_meta(&st, "model")) || strcmp(v, model)) {
        fprintf(stderr, "%s: --weights %s: %s; this program evaluates %s checkpoints (as its --save writes them)\n",
                prog, path, v ? "the file holds another model" : "the file does not say which model it holds (no "
                "\"model\" in its metadata)", model);
        if (v) fprintf(stderr, "%s: its metadata says model = %s; use train_%s\n", prog, v, v);
        acn_st_free(&st);
        return 1;
    }
    args[nargs++] = (char *)prog;
    for (j = 0; j < n && j < 128 && !rc; j++) {
        int wanted = f[j].resume == FLAG_RESUME_MODEL;
        for (a = 0; also && also[a] && !wanted; a++) wanted = f[j].key && !strcmp(f[j].key, also[a]);
        if (!wanted) continue;
        for (a = 1; a < argc; a++)
            if (!strcmp(argv[a], f[j].name)) {
                fprintf(stderr, "%s: %s: with --eval-only the model and its data come from the metadata of %s; "
                        "leave %s out\n", prog, f[j].name, path, f[j].name);
                rc = 2;
            }
        if (rc) break;
        if (!(v = acn_st_meta(&st, f[j].key))) {
            if (f[j].resume != FLAG_RESUME_MODEL) continue; /* an older file: the default stands */
            fprintf(stderr, "%s: --weights %s: its metadata does not record \"%s\" (%s), so the model cannot be "
                    "rebuilt from it\n", prog, path, f[j].key, f[j].name);
            rc = 1;
            break;
        }
        if (f[j].type == FLAG_SWITCH) { /* recorded as 1, or as the flag's own name ("textbook") */
            if (!strcmp(v, "1") || !strcmp(v, f[j].name + 2)) args[nargs++] = (char *)f[j].name;
            continue;
        }
        snprintf(vals[j], sizeof vals[0], "%s", v);
        args[nargs++] = (char *)f[j].name;
        args[nargs++] = vals[j];
    }
    acn_st_free(&st);
    if (!rc && flags_parse(nargs, args, f, n, "")) {
        fprintf(stderr, "%s: --weights %s: a setting in its metadata is out of range (above)\n", prog, path);
        rc = 1;
    }
    return rc;
}

/* Whether a training log that a --resume appends to has the columns
 * cpu_model and acn_version: a log begun by an older version does not, and
 * its rows keep its own columns. 1 for a file that is not there yet. */
TRAIN_FN int log_has_record(FILE *f)
{
    char line[16384];
    return !f || !fgets(line, sizeof line, f) || strstr(line, ",cpu_model,acn_version") != NULL;
}
/* The end of a training log's row: the record columns when the log has them. */
TRAIN_FN void log_end_row(FILE *f, int record, double seconds)
{
    if (record) fprintf(f, ",%.1f,%s,%s\n", seconds, train_cpu_model(), ACN_VERSION);
    else fprintf(f, ",%.1f\n", seconds);
}

/* A CSV field: s in double quotes, a quote inside it doubled. */
TRAIN_FN void csv_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* --log of an --eval-only run: a CSV file of evaluations, opened to append
 * a row. A new file gets head (the header line); an existing one must
 * start with it, so that its rows stay comparable (the same columns, the
 * same number of blocks). NULL with a message on failure. */
TRAIN_FN FILE *eval_log_open(const char *prog, const char *path, const char *head, int L)
{
    char line[8192];
    int exists = 0, same = 0;
    FILE *log = fopen(path, "r");
    if (log) { /* an empty file counts as a new one */
        exists = fgets(line, sizeof line, log) != NULL;
        same = exists && !strcmp(line, head);
        fclose(log);
    }
    if (exists) {
        if (!same) {
            fprintf(stderr, "%s: --log %s holds another kind of log (its first line is not the header of an "
                    "evaluation of %d blocks); give a new file\n", prog, path, L);
            return NULL;
        }
        log = fopen(path, "a");
    } else {
        make_parent(path);
        if ((log = fopen(path, "w"))) fputs(head, log);
    }
    if (!log) fprintf(stderr, "%s: cannot open the log %s for writing: %s\n", prog, path, strerror(errno));
    return log;
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
TRAIN_FN void sums_find_weights(acn_ctx *ctx, const char *fmt, int L, acn_tensor **gw)
{
    int i;
    for (i = 0; i < L; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, fmt, i);
        gw[i] = acn_param_find(ctx, nm);
    }
}

/* docs/acn.md, "Gradient heat map": the Frobenius norm of each block's weight gradient, added
 * to the epoch's sums (before clipping). */
TRAIN_FN void sums_add_gnorms(acn_ctx *ctx, epoch_sums *e, acn_tensor *const *gw, int L)
{
    int i;
    for (i = 0; i < L; i++)
        if (gw[i]) e->gnorm[i] += acn_grad_norm(ctx, gw[i]);
}

TRAIN_FN void sums_to_meta(const epoch_sums *e, int L, run_meta *m)
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
TRAIN_FN void sums_from_meta(acn_ctx *ctx, const char *weights, int L, epoch_sums *e)
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
/* Everything after the forward pass of a training step: backward, the sum
 * of the ranks' gradients (acn_dist_sum_grads; share is this rank's share
 * of the loss's denominator, 1 when alone), the per-block gradient norms
 * (before clipping), clipping to clip (0: none), and AdamW at rate lr; the
 * loss of the whole batch (summed over the ranks) joins the epoch's sums
 * and goes to *batch_loss. A non-finite loss or gradient norm changes
 * nothing and returns 3 with a message saying where (e.g. "step 12 (epoch
 * 1)") and what the last good checkpoint is (good, from last_good). 1 on
 * an acn.h error (printed; with several ranks, every rank returns 1 when
 * one fails), 0 otherwise. loss may be NULL when the forward pass failed
 * (the other ranks are told) or, with share 0, when this rank was given
 * no rows of the batch (it adds nothing). */
TRAIN_FN int train_update(acn_ctx *ctx, const char *prog, acn_tensor *loss, double share, acn_adamw *opt, float lr,
                        float clip, epoch_sums *es, acn_tensor *const *gw, int L, progress *pg, const char *where,
                        const char *good, float *batch_loss)
{
    float gnorm = 0.0f;
    int finite;
    double v[2]; /* ranks that failed, the batch's loss */
    v[0] = (!loss && share > 0.0) || acn_status_of(ctx);
    v[1] = loss ? (double)acn_item(ctx, loss) * share : 0.0;
    acn_dist_sum(ctx, v, 2);
    if (v[0] > 0.0 || acn_status_of(ctx)) {
        if (acn_status_of(ctx)) train_report(ctx, prog, "");
        else {
            acn_set_error(ctx, ACN_ERR_DIST, "another rank failed at %s (its message says why)", where);
            fprintf(stderr, "%s: rank %d stops: %s\n", prog, acn_dist_rank(ctx), acn_error(ctx));
        }
        return 1;
    }
    *batch_loss = (float)v[1];
    if ((finite = isfinite(*batch_loss) != 0)) {
        acn_zero_grad(ctx);
        if (loss) acn_backward(ctx, loss); /* (none on a rank given no rows of this batch) */
        if (acn_dist_sum_grads(ctx, share)) { /* called even after a failed backward: it tells the others */
            train_report(ctx, prog, "");
            return 1;
        }
        sums_add_gnorms(ctx, es, gw, L);
        acn_clip_grad_norm(ctx, clip > 0 ? clip : 3e38f, &gnorm);
    }
    if (!finite || !isfinite(gnorm)) {
        progress_end(pg);
        fprintf(stderr, "%s: the %s is %g at %s; stopped without saving. %s Try a lower learning rate, or --clip\n",
                prog, finite ? "gradient norm" : "loss", finite ? (double)gnorm : (double)*batch_loss, where, good);
        return 3;
    }
    if (acn_adamw_step(ctx, opt, lr)) {
        train_report(ctx, prog, "");
        return 1;
    }
    es->loss += *batch_loss;
    es->batches++;
    pg->steps_done++;
    return 0;
}

/* An evaluation's sums over the ranks: sums[0 .. n-2], this rank's counts
 * and losses, become every rank's; sums[n-1] is set here to whether this
 * rank failed. Returns 1, with the context's error set (this rank's own, or
 * the news of another's), when any rank failed. */
TRAIN_FN int eval_sum_ranks(acn_ctx *ctx, double *sums, int n)
{
    sums[n - 1] = acn_status_of(ctx) != ACN_OK;
    acn_dist_sum(ctx, sums, n); /* (counts are exact in double) */
    if (sums[n - 1] > 0.0) {
        acn_set_error(ctx, ACN_ERR_DIST, "rank %d stops: another rank's evaluation failed (its message says why)",
                      acn_dist_rank(ctx));
        return 1;
    }
    return 0;
}

/* Whether to stop between two steps: a signal reached this rank or any
 * other (every rank stops at the same step). */
TRAIN_FN int train_should_stop(acn_ctx *ctx)
{
    int stop = train_stop_signal != 0;
    acn_dist_any(ctx, &stop);
    return stop;
}

#endif /* ACN_TRAIN_H */
