/* End to end: small MLPs trained with AdamW drive learnable problems to
 * near-zero loss in a fixed number of steps: XOR (cross-entropy) and a
 * sine on [-pi, pi] (mean squared error), with the warmup-cosine schedule
 * and gradient clipping. */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"

/* A stack of Linear layers with tanh between them, named fc{i}.weight/bias
 * as an nn.Sequential of nn.Linear would be in PyTorch. */
static acn_tensor *mlp(acn_ctx *ctx, acn_tensor **p, int layers, acn_tensor *x)
{
    int i;
    for (i = 0; i < layers; i++) {
        x = acn_linear(ctx, x, p[2 * i], p[2 * i + 1]);
        if (i < layers - 1) x = acn_tanh(ctx, x);
    }
    return x;
}

static void make_mlp(acn_ctx *ctx, acn_tensor **p, int layers, const int *widths)
{
    int i;
    for (i = 0; i < layers; i++) {
        char name[32];
        int ws[2];
        ws[0] = widths[i + 1];
        ws[1] = widths[i];
        snprintf(name, sizeof name, "fc%d.weight", i);
        p[2 * i] = acn_param(ctx, name, 2, ws);
        snprintf(name, sizeof name, "fc%d.bias", i);
        p[2 * i + 1] = acn_param(ctx, name, 1, ws);
        acn_init_linear(ctx, p[2 * i], p[2 * i + 1]);
    }
}

static void xor_task(void)
{
    static const float X[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    static const int Y[4] = {0, 1, 1, 0};
    int widths[3] = {2, 16, 2}, xs[2] = {4, 2}, step, steps = 400;
    acn_ctx *ctx;
    acn_tensor *p[4], *loss = NULL;
    acn_adamw opt;
    acn_schedule sched = acn_schedule_warmup_cosine(0.05f, 20, steps, 1e-4f);
    float first = 0.0f, last = 0.0f;
    acn_ctx_config cfg = acn_ctx_defaults();
    cfg.seed = 3;
    acn_ctx_new(&ctx, &cfg);
    make_mlp(ctx, p, 2, widths);
    acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.0f);
    for (step = 0; step < steps; step++) {
        acn_reset(ctx);
        loss = acn_cross_entropy(ctx, mlp(ctx, p, 2, acn_input(ctx, 2, xs, X)), Y, 0.0f, -1);
        acn_zero_grad(ctx);
        acn_backward(ctx, loss);
        acn_clip_grad_norm(ctx, 1.0f, NULL);
        acn_adamw_step(ctx, &opt, acn_lr_at(&sched, step));
        if (!loss) break;
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
    }
    CHECK(acn_status_of(ctx) == ACN_OK, "xor: %s", acn_error(ctx));
    CHECK(first > 0.5f && last < 0.01f, "xor: loss %g -> %g in %d steps", first, last, steps);
    printf("xor: cross-entropy %.4f -> %.6f in %d AdamW steps\n", first, last, steps);
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
}

static void sine_task(void)
{
    enum { N = 64 };
    float X[N], Y[N];
    int widths[4] = {1, 32, 32, 1}, s1[2] = {N, 1}, i, step, steps = 1500;
    acn_ctx *ctx;
    acn_tensor *p[6], *loss = NULL;
    acn_adamw opt;
    acn_schedule sched = acn_schedule_warmup_cosine(1e-2f, 50, steps, 1e-5f);
    float first = 0.0f, last = 0.0f;
    for (i = 0; i < N; i++) {
        X[i] = -3.14159265f + 6.2831853f * (float)i / (N - 1);
        Y[i] = sinf(X[i]);
    }
    acn_ctx_new(&ctx, NULL);
    make_mlp(ctx, p, 3, widths);
    acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 1e-4f);
    for (step = 0; step < steps; step++) {
        acn_tensor *d;
        acn_reset(ctx);
        d = acn_sub(ctx, mlp(ctx, p, 3, acn_input(ctx, 2, s1, X)), acn_input(ctx, 2, s1, Y));
        loss = acn_mean(ctx, acn_mul(ctx, d, d), ACN_AXIS_ALL);
        acn_zero_grad(ctx);
        acn_backward(ctx, loss);
        acn_clip_grad_norm(ctx, 1.0f, NULL);
        acn_adamw_step(ctx, &opt, acn_lr_at(&sched, step));
        if (!loss) break;
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
    }
    CHECK(acn_status_of(ctx) == ACN_OK, "sine: %s", acn_error(ctx));
    CHECK(first > 0.1f && last < 1e-3f, "sine: mse %g -> %g in %d steps", first, last, steps);
    printf("sine: mean squared error %.4f -> %.6f in %d AdamW steps\n", first, last, steps);
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
}

/* Exact resume. A small network with dropout (the context's generator), a
 * shuffling sampler across epochs and AdamW with a schedule: 30 steps in
 * one go, against 13 steps, a checkpoint, and 17 more in a fresh context.
 * The weights must end bit for bit the same. */
enum { RN = 96, RB = 16, RSTEPS = 30 };
static float rx[RN * 8];
static int ry[RN];

static void resume_model(acn_ctx *ctx, acn_tensor **p)
{
    int s1[2] = {24, 8}, s2[2] = {3, 24};
    p[0] = acn_param(ctx, "fc1.weight", 2, s1);
    p[1] = acn_param(ctx, "fc1.bias", 1, s1);
    p[2] = acn_param(ctx, "fc2.weight", 2, s2);
    p[3] = acn_param(ctx, "fc2.bias", 1, s2);
    acn_init_linear(ctx, p[0], p[1]);
    acn_init_linear(ctx, p[2], p[3]);
}
static void resume_steps(acn_ctx *ctx, acn_tensor **p, acn_adamw *opt, acn_sampler *smp, int64_t from, int64_t to)
{
    acn_schedule sched = acn_schedule_warmup_cosine(0.02f, 4, RSTEPS, 1e-4f);
    int idx[RB], b, i, xs[2] = {RB, 8}, yb[RB];
    float xb[RB * 8];
    int64_t step;
    for (step = from; step < to; step++) {
        acn_tensor *h, *loss;
        while ((b = acn_sampler_next(smp, idx)) == 0) {}
        for (i = 0; i < b; i++) { memcpy(xb + i * 8, rx + idx[i] * 8, 8 * sizeof(float)); yb[i] = ry[idx[i]]; }
        xs[0] = b;
        acn_reset(ctx);
        h = acn_dropout(ctx, acn_tanh(ctx, acn_linear(ctx, acn_input(ctx, 2, xs, xb), p[0], p[1])), 0.2f);
        loss = acn_cross_entropy(ctx, acn_linear(ctx, h, p[2], p[3]), yb, 0.1f, -1);
        acn_zero_grad(ctx);
        acn_backward(ctx, loss);
        acn_clip_grad_norm(ctx, 1.0f, NULL);
        acn_adamw_step(ctx, opt, acn_lr_at(&sched, step));
    }
}
static void resume_task(void)
{
    acn_ctx *a, *b;
    acn_tensor *pa[4], *pb[4];
    acn_adamw oa, ob;
    acn_sampler sa, sb;
    acn_rng r;
    int64_t step = -1;
    int i, same = 1;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_rng_seed(&r, 5);
    for (i = 0; i < RN * 8; i++) rx[i] = acn_rng_normal(&r);
    for (i = 0; i < RN; i++) ry[i] = (rx[i * 8] > 0) + (rx[i * 8 + 1] > 0.5f);
    cfg.seed = 77;
    /* one go */
    acn_ctx_new(&a, &cfg);
    resume_model(a, pa);
    acn_adamw_init(a, &oa, 0.9f, 0.999f, 1e-8f, 0.01f);
    acn_sampler_init(a, &sa, RN, RB, 3, 0);
    resume_steps(a, pa, &oa, &sa, 0, RSTEPS);
    /* 13 steps, a checkpoint, and the rest in a new context */
    acn_ctx_new(&b, &cfg);
    resume_model(b, pb);
    acn_adamw_init(b, &ob, 0.9f, 0.999f, 1e-8f, 0.01f);
    acn_sampler_init(b, &sb, RN, RB, 3, 0);
    resume_steps(b, pb, &ob, &sb, 0, 13);
    CHECK(acn_save_checkpoint(b, "build/test_resume.safetensors", "build/test_resume.state.safetensors", &ob, &sb, 13,
                              NULL, 0) == ACN_OK, "%s", acn_error(b));
    acn_adamw_free(&ob);
    acn_sampler_free(&sb);
    acn_ctx_free(b);
    cfg.seed = 12345; /* the checkpoint, not the seed, must decide */
    acn_ctx_new(&b, &cfg);
    resume_model(b, pb);
    acn_adamw_init(b, &ob, 0.9f, 0.999f, 1e-8f, 0.01f);
    acn_sampler_init(b, &sb, RN, RB, 3, 0);
    CHECK(acn_load_checkpoint(b, "build/test_resume.safetensors", "build/test_resume.state.safetensors", &ob, &sb, &step) ==
          ACN_OK && step == 13, "load: %s (step %lld)", acn_error(b), (long long)step);
    resume_steps(b, pb, &ob, &sb, step, RSTEPS);
    for (i = 0; i < 4; i++) same &= !memcmp(pa[i]->data, pb[i]->data, pa[i]->numel * sizeof(float));
    CHECK(same && acn_status_of(a) == ACN_OK && acn_status_of(b) == ACN_OK, "resumed weights differ from the run in one go");
    /* a pair that does not belong together is refused */
    {
        const char *kv[2] = {"step", "14"};
        acn_save_params(b, "build/test_resume.safetensors", kv, 1);
        CHECK(acn_load_checkpoint(b, "build/test_resume.safetensors", "build/test_resume.state.safetensors", &ob, &sb,
                                  &step) == ACN_ERR_FORMAT && strstr(acn_error(b), "are not a pair"), "%s", acn_error(b));
        acn_clear_error(b);
    }
    printf("resume: 13 steps + checkpoint + 17 steps equal 30 steps bit for bit\n");
    acn_adamw_free(&oa); acn_adamw_free(&ob);
    acn_sampler_free(&sa); acn_sampler_free(&sb);
    acn_ctx_free(a); acn_ctx_free(b);
}

/* The thread pool: every part of every task runs exactly once, whether the
 * worker is awake (tasks back to back) or asleep (after a pause longer than
 * its spin), and work under the grain runs as one part on the caller. On
 * Linux, a pool pins its creator to one core and gives the mask back when it
 * stops, and ACN_AFFINITY=0 leaves it alone. */
static unsigned pool_runs[ACN__PARTS_MAX];
static int pool_bad_parts;
static void pool_task(void *arg, int part, int parts, int tid)
{
    (void)tid;
    if (parts != *(int *)arg) pool_bad_parts++;
    __atomic_add_fetch(&pool_runs[part], 1u, __ATOMIC_SEQ_CST);
}
static void pool_task_checks(void)
{
    acn_ctx *ctx;
    int r, p, wrong = 0, parts;
    struct timespec pause = {0, 2000000};
    CHECK(acn_ctx_new(&ctx, NULL) == ACN_OK && acn_set_threads(ctx, 2) == ACN_OK, "pool: a context of 2 threads");
    for (r = 0; r < 3000; r++) {
        int per = 1 + r % 4, big = r % 7 != 0;
        parts = big && acn_threads(ctx) > 1 ? acn_threads(ctx) * per : 1;
        memset(pool_runs, 0, sizeof pool_runs);
        if (r % 100 == 0) nanosleep(&pause, NULL); /* let the worker fall asleep */
        acn__parallel(ctx, pool_task, &parts, big ? 1e7 : 1.0, per); /* 1e7 ns: over any threshold */
        for (p = 0; p < ACN__PARTS_MAX; p++)
            if (pool_runs[p] != (p < parts ? 1u : 0u)) wrong++;
    }
    CHECK(!wrong && !pool_bad_parts, "pool: %d parts ran other than once, %d saw another count of parts", wrong,
          pool_bad_parts);
    acn_ctx_free(ctx);
}
/* The pool's threshold (acn__grain_update), by hand, for a pool of 2
 * threads, fresh (lost 0, help 1, rate 1):
 * 1. A task of 4 parts and 8000 ns of stated work; the caller ran 2 in
 *    2000 ns, then waited 11500 ns. A part took 1000, so the wait beyond
 *    1.5 parts is 10000: lost = 10000 / 1024 = 9.765625; the worker ran its
 *    fair share (help stays 1); a part took 1000 for 2000 stated (rate =
 *    1 - 0.5 / 1024 = 0.99951171875); threshold = 2 lost / (help (1/2)
 *    rate) = 39.0815828...
 * 2. The caller ran none of the 4 parts and waited 5000: a part is taken
 *    as rate x 2000 = 1999.0234375, the excess is 5000 - 2998.53515625 =
 *    2001.46484375; help = 1 + (2 - 1) / 1024 is held at 1 (clamped before
 *    averaging: 2 becomes 1); rate does not move.
 * 3. A stall of 10 s counts as 2 ms (ACN__GRAIN_MAX): lost moves by
 *    (2e6 - lost) / 1024.
 * 4. The caller ran all the parts, at the current rate, with no wait: help
 *    falls by 1/1024 of itself each time, and once it is under 1/64 (its
 *    floor) the threshold stays in proportion to lost.
 * Then in a real pool (no timing involved): with lost set so that the
 * threshold is 200 us, a 50 us task runs as one part on the caller, and
 * each such task shrinks lost by 1/16384, so the threshold is back under
 * 50 us after exactly ceil(ln(50 us / 200 us) / ln(1 - 1/16384)) = 22713
 * of them, when the task is shared again. */
static int pool_seen_parts;
static void pool_parts_task(void *arg, int part, int parts, int tid)
{
    (void)arg;
    (void)part;
    (void)tid; /* whoever runs a part (the worker may run them all) */
    __atomic_store_n(&pool_seen_parts, parts, __ATOMIC_SEQ_CST);
}
static void pool_grain_checks(void)
{
#ifdef ACN__THREADS
    acn__pool p;
    acn_ctx *ctx;
    double lost, g, floor_g = 0.0;
    int r, shared_at = -1, expect;
    memset(&p, 0, sizeof p);
    p.n = 2;
    p.help = p.rate = 1.0;
    acn__grain_update(&p, 4, 2, 2000.0, 11500.0, 8000.0);
    CHECK(p.lost == 9.765625 && p.help == 1.0 && p.rate == 0.99951171875 && fabs(p.grain - 39.0815828041) < 1e-9,
          "grain: lost %g help %g rate %.17g threshold %.12g, by hand 9.765625 1 0.99951171875 39.0815828041", p.lost,
          p.help, p.rate, p.grain);
    lost = p.lost;
    acn__grain_update(&p, 4, 0, 0.0, 5000.0, 8000.0);
    CHECK(fabs(p.lost - (lost + (2001.46484375 - lost) / 1024)) < 1e-12 && p.help == 1.0 && p.rate == 0.99951171875,
          "grain: the caller ran no part: lost %.12g help %g rate %.17g", p.lost, p.help, p.rate);
    lost = p.lost;
    acn__grain_update(&p, 4, 2, 2000.0, 1e10, 8000.0);
    CHECK(fabs(p.lost - (lost + (2e6 - lost) / 1024)) < 1e-9, "grain: a stall of 10 s counted as %g, not 2e6",
          (p.lost - lost) * 1024 + lost);
    for (r = 0; r < 6000; r++) {
        acn__grain_update(&p, 4, 4, 4 * p.rate * 2000.0, 0.0, 8000.0); /* parts at the current rate */
        if (p.help < 1.0 / 64 && floor_g == 0.0) floor_g = p.grain / p.lost;
    }
    CHECK(p.help < 1.0 / 64 && fabs(p.grain / p.lost - floor_g) < 1e-9 * floor_g,
          "grain: help %g, under its floor of 1/64, still moved the threshold", p.help);
    CHECK(acn_ctx_new(&ctx, NULL) == ACN_OK && acn_set_threads(ctx, 2) == ACN_OK, "grain: a context of 2 threads");
    if (!ctx || !ctx->pool) { acn_ctx_free(ctx); return; }
    CHECK(ctx->pool->grain == 0.0, "grain: a new pool starts at %g, not 0", ctx->pool->grain);
    ctx->pool->help = ctx->pool->rate = 1.0;
    ctx->pool->lost = 2e5 / 4; /* threshold = 2 lost / (1 x 1/2 x 1) = 2e5 */
    acn__grain_set(ctx->pool);
    g = ctx->pool->grain;
    acn__parallel(ctx, pool_parts_task, NULL, 5e4, 2);
    CHECK(g == 2e5 && pool_seen_parts == 1, "grain: at a threshold of %g ns a 50 us task ran in %d parts", g,
          pool_seen_parts);
    expect = (int)ceil(log(5e4 / g) / log(1.0 - 1.0 / 16384));
    for (r = 1; r < 100000 && shared_at < 0; r++) { /* the call above was the first kept task */
        acn__parallel(ctx, pool_parts_task, NULL, 5e4, 2);
        if (pool_seen_parts > 1) shared_at = r;
    }
    CHECK(expect == 22713 && abs(shared_at - expect) <= 1, "grain: the threshold came back under 50 us after %d kept "
          "tasks, not %d (22713)", shared_at, expect);
    acn_ctx_free(ctx);
#endif
}

/* The two ways of running small tasks (acn__mode_update), by hand: a
 * window closes at ACN__MODE_CALLS (2048) tasks and ACN__MODE_NS (1e7) of
 * the caller's time, a trial at a quarter of each; each task here states
 * 1e4 x rate ns of work and takes 1e4, so a window's rate is `rate`.
 * 1. A new pool shares (solo 0); after 4 windows (ACN__MODE_FIRST) the
 *    fifth tries solo. 2047 tasks, or 2048 in under 1e7, close nothing.
 * 2. A trial at 1.02 against 1.00 does not switch (the margin is 3%); the
 *    gap doubles to 4: four more windows, then a trial.
 * 3. A trial at 1.04 switches to solo (over the 3% margin); the gap is
 *    back to 2.
 * 4. Solo windows at 1.2; after two of them the trial shares, at 1.1: no
 *    switch back (compared with solo's 1.2, not sharing's old 1.0); the
 *    gap then doubles on each failed trial, 4, 8, 16, 32, and stays at 32.
 * 5. A task's time counts up to 2 ms (ACN__GRAIN_MAX).
 * Then in a real pool of 2 (no timing involved): with the pool solo, a
 * task of 50 us runs as one part on the caller and counts in the window,
 * one of 1 ms (over ACN__MODE_MAX) is shared and does not count; the way
 * a task runs is solo XOR trial; sharing, the 50 us task is shared. */
static int mode_window(acn__pool *p, double rate, unsigned calls, double t)
{
    unsigned i;
    int was = p->trial;
    for (i = 0; i < calls; i++) acn__mode_update(p, 1e4 * rate, t);
    return was;
}
static void pool_mode_checks(void)
{
#ifdef ACN__THREADS
    acn__pool p;
    acn_ctx *ctx;
    int w, trials = 0, gaps_ok = 1, expect_gap = 4;
    memset(&p, 0, sizeof p);
    p.n = 2;
    p.wait = ACN__MODE_FIRST;
    p.gap = ACN__MODE_GAP_MIN;
    mode_window(&p, 1.0, 2047, 1e4);
    CHECK(p.calls == 2047 && p.wait == 4, "mode: 2047 tasks closed a window");
    mode_window(&p, 1.0, 1, 1e4); /* the 2048th, at 2.048e7 */
    CHECK(p.calls == 0 && p.wait == 3 && p.mrate[0] == 1.0, "mode: the 2048th task did not close the window "
          "(calls %u, wait %d, rate %g)", p.calls, p.wait, p.mrate[0]);
    mode_window(&p, 1.0, 4096, 1e3); /* 4096 tasks, 4.1e6 of time: not yet */
    CHECK(p.calls == 4096 && p.wait == 3, "mode: a window closed under 1e7 of time");
    mode_window(&p, 1.0, 5904, 1e3); /* 10000 tasks, 1e7 of time: closes */
    CHECK(p.calls == 0 && p.wait == 2 && !p.trial, "mode: the long window: calls %u wait %d", p.calls, p.wait);
    mode_window(&p, 1.0, 2048, 1e4);
    mode_window(&p, 1.0, 2048, 1e4);
    CHECK(p.trial == 1 && p.solo == 0, "mode: no trial after 4 windows (trial %d, wait %d)", p.trial, p.wait);
    mode_window(&p, 1.02, 511, 1e4);
    CHECK(p.trial == 1 && p.calls == 511, "mode: a trial closed before a quarter of the tasks");
    mode_window(&p, 1.02, 1, 1e4);
    CHECK(!p.trial && !p.solo && p.gap == 4 && p.wait == 4 && fabs(p.mrate[1] - 1.02) < 1e-12,
          "mode: a trial at 1.02 against 1.00: solo %d gap %d wait %d rate %g", p.solo, p.gap, p.wait, p.mrate[1]);
    for (w = 0; w < 4; w++) mode_window(&p, 1.0, 2048, 1e4);
    CHECK(p.trial == 1, "mode: no trial after a gap of 4");
    mode_window(&p, 1.04, 512, 1e4);
    CHECK(p.solo == 1 && !p.trial && p.gap == 2 && p.wait == 2, "mode: a trial at 1.04 did not switch: solo %d gap %d",
          p.solo, p.gap);
    mode_window(&p, 1.2, 2048, 1e4);
    mode_window(&p, 1.2, 2048, 1e4);
    CHECK(p.trial == 1 && p.solo == 1, "mode: no trial after 2 solo windows");
    for (w = 0; w < 200 && trials < 6; w++)
        if (mode_window(&p, p.trial ? 1.1 : 1.2, p.trial ? 512 : 2048, 1e4)) {
            trials++;
            if (p.gap != expect_gap || p.solo != 1) gaps_ok = 0;
            expect_gap = expect_gap < 32 ? 2 * expect_gap : 32;
        }
    CHECK(trials == 6 && gaps_ok && p.gap == 32, "mode: failed trials: %d trials, gaps %s, gap %d (32)", trials,
          gaps_ok ? "right" : "wrong", p.gap);
    memset(&p, 0, sizeof p);
    p.wait = 1 << 30;
    acn__mode_update(&p, 1e4, 1e10); /* a stall of 10 s */
    CHECK(p.wtime == 2e6 && p.calls == 1, "mode: a task's 10 s counted as %g, not 2e6", p.wtime);
    CHECK(acn_ctx_new(&ctx, NULL) == ACN_OK && acn_set_threads(ctx, 2) == ACN_OK, "mode: a context of 2 threads");
    if (!ctx || !ctx->pool) {
        printf("note: mode: no pool of 2 threads here; the real pool not checked\n");
        acn_ctx_free(ctx);
        return;
    }
    CHECK(!ctx->pool->solo && !ctx->pool->trial && ctx->pool->wait == ACN__MODE_FIRST, "mode: a new pool");
    ctx->pool->wait = 1 << 30; /* no trial */
    ctx->pool->solo = 1;
    ctx->pool->calls = 0;
    ctx->pool->wwork = ctx->pool->wtime = 0.0;
    acn__parallel(ctx, pool_parts_task, NULL, 5e4, 2);
    CHECK(pool_seen_parts == 1 && ctx->pool->calls == 1 && ctx->pool->wwork == 5e4,
          "mode: solo, a 50 us task ran in %d parts and counted %u tasks, %g of work", pool_seen_parts,
          ctx->pool->calls, ctx->pool->wwork);
    acn__parallel(ctx, pool_parts_task, NULL, 1e6, 2);
    CHECK(pool_seen_parts == 4 && ctx->pool->calls == 1, "mode: solo, a 1 ms task ran in %d parts (not 4) and "
          "the window has %u tasks (1)", pool_seen_parts, ctx->pool->calls);
    ctx->pool->trial = 1; /* solo, trying shared */
    acn__parallel(ctx, pool_parts_task, NULL, 5e4, 2);
    CHECK(pool_seen_parts == 4, "mode: solo trying shared, a 50 us task ran in %d parts, not 4", pool_seen_parts);
    ctx->pool->solo = 0; /* shared, trying solo */
    acn__parallel(ctx, pool_parts_task, NULL, 5e4, 2);
    CHECK(pool_seen_parts == 1, "mode: shared trying solo, a 50 us task ran in %d parts", pool_seen_parts);
    ctx->pool->trial = 0;
    ctx->pool->solo = 0;
    ctx->pool->lost = 0.0;
    acn__grain_set(ctx->pool);
    acn__parallel(ctx, pool_parts_task, NULL, 5e4, 2);
    CHECK(pool_seen_parts == 4, "mode: sharing, a 50 us task ran in %d parts, not 4", pool_seen_parts);
    acn_ctx_free(ctx);
#endif
}

/* Element-wise ops give the same bits however their values are cut into
 * parts: GELU's SIMD blocks and its scalar tail (libm's erf, other bits)
 * must cover the same values on 1 thread, on 2 threads sharing the op, and
 * on 2 threads whose pool's threshold keeps it on the caller (as on a busy
 * machine). Sizes that are not multiples of 16 per part: 6007 and 40001
 * values (12 and 80 microseconds of stated work: both shared on an idle
 * pool). */
static void gelu_bits_run(int threads, int keep, int n, float *y, float *gx)
{
    static float xv[40001], wv[40001];
    acn_ctx *ctx;
    acn_tensor *x, *out;
    int s[1], i;
    uint64_t rng = 7;
    s[0] = n;
    memset(y, 0, (size_t)n * sizeof(float));
    memset(gx, 0, (size_t)n * sizeof(float));
    for (i = 0; i < n; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        xv[i] = (float)((double)(rng >> 11) / 9007199254740992.0 * 8.0 - 4.0);
        wv[i] = (float)((double)((rng >> 7) & 1023) / 512.0 - 1.0);
    }
    if (acn_ctx_new(&ctx, NULL)) return;
    if (acn_set_threads(ctx, threads)) { acn_ctx_free(ctx); return; }
    if ((x = acn_param(ctx, "x", 1, s))) acn_write(ctx, x, xv);
#ifdef ACN__THREADS
    if (keep && ctx->pool) ctx->pool->lost = 1e12, acn__grain_set(ctx->pool); /* every task on the caller */
#endif
    (void)keep;
    out = acn_gelu(ctx, x);
    if (out && !acn_backward(ctx, acn_sum(ctx, acn_mul(ctx, out, acn_input(ctx, 1, s, wv)), -1))) {
        acn_read(ctx, out, y);
        acn_read_grad(ctx, x, gx);
    }
    acn_ctx_free(ctx);
}
static void gelu_bits_checks(void)
{
    static float y[3][40001], g[3][40001];
    int sizes[2] = {6007, 40001}, k, v, i;
    for (k = 0; k < 2; k++) {
        int n = sizes[k], diff[3] = {0, 0, 0}, nonzero = 0;
        gelu_bits_run(1, 0, n, y[0], g[0]);
        gelu_bits_run(2, 0, n, y[1], g[1]);
        gelu_bits_run(2, 1, n, y[2], g[2]);
        for (i = 0; i < n; i++) nonzero += y[0][i] != 0.0f && g[0][i] != 0.0f;
        for (v = 1; v < 3; v++)
            for (i = 0; i < n; i++)
                diff[v] += memcmp(&y[0][i], &y[v][i], sizeof(float)) || memcmp(&g[0][i], &g[v][i], sizeof(float));
        CHECK(nonzero > n / 2 && !diff[1] && !diff[2], "gelu bits, %d values: %d differ on 2 threads sharing it, %d on "
              "2 threads keeping it on the caller, from 1 thread (%d nonzero)", n, diff[1], diff[2], nonzero);
    }
}

static void pool_affinity_checks(void)
{
#ifdef ACN__AFFINITY
    cpu_set_t before, during, after;
    acn_ctx *ctx;
    if (sched_getaffinity(0, sizeof before, &before) || CPU_COUNT(&before) < 2) return; /* nothing to pin */
    CHECK(acn_ctx_new(&ctx, NULL) == ACN_OK && acn_set_threads(ctx, 2) == ACN_OK, "affinity: a context");
    sched_getaffinity(0, sizeof during, &during);
    CHECK(CPU_COUNT(&during) == 1, "affinity: the caller is on %d cores with a pool of 2", CPU_COUNT(&during));
    acn_ctx_free(ctx);
    sched_getaffinity(0, sizeof after, &after);
    CHECK(CPU_EQUAL(&before, &after), "affinity: the caller's mask was not given back");
    { /* a second context made meanwhile: its worker gets a core of its own, and the
       * caller's mask comes back when the last of the two stops */
        acn_ctx *c2;
        cpu_set_t w;
        CHECK(acn_ctx_new(&ctx, NULL) == ACN_OK && acn_set_threads(ctx, 2) == ACN_OK &&
              acn_ctx_new(&c2, NULL) == ACN_OK && acn_set_threads(c2, 2) == ACN_OK, "affinity: two contexts");
        sched_getaffinity(0, sizeof during, &during);
        CPU_ZERO(&w);
        if (c2->pool) pthread_getaffinity_np(c2->pool->th[1], sizeof w, &w);
        CHECK(c2->pool && CPU_COUNT(&w) == 1 && !CPU_EQUAL(&w, &during),
              "affinity: the second context's worker shares the caller's core (or is not pinned)");
        acn_ctx_free(ctx);
        sched_getaffinity(0, sizeof after, &after);
        CHECK(CPU_COUNT(&after) == 1, "affinity: the caller was unpinned while a pool still counts on it");
        acn_ctx_free(c2);
        sched_getaffinity(0, sizeof after, &after);
        CHECK(CPU_EQUAL(&before, &after), "affinity: two contexts: the caller's mask was not given back");
    }
    setenv("ACN_AFFINITY", "0", 1);
    CHECK(acn_ctx_new(&ctx, NULL) == ACN_OK && acn_set_threads(ctx, 2) == ACN_OK, "affinity: a context");
    sched_getaffinity(0, sizeof during, &during);
    CHECK(CPU_EQUAL(&before, &during), "affinity: ACN_AFFINITY=0 still pinned the caller");
    acn_ctx_free(ctx);
    unsetenv("ACN_AFFINITY");
#endif
}

/* On Linux the arena is offered to transparent huge pages (MEMORY at the
 * top of acn.h): its mapping carries the kernel's "hg" flag (madvise
 * MADV_HUGEPAGE) in /proc/self/smaps, whether or not huge pages are then
 * available; with ACN_HUGEPAGES=0 it does not. Skipped, with a note, on a
 * kernel without transparent huge pages or without VmFlags in smaps. */
#ifdef ACN__HUGEPAGES
static int arena_advised(const acn_ctx *c)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    uintptr_t at = (uintptr_t)c->arena + ((size_t)1 << 20), lo = 0, hi = 0;
    int in = 0, hg = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2) { /* a mapping's first line */
            lo = a; hi = b;
            in = at >= lo && at < hi;
        } else if (in && !strncmp(line, "VmFlags:", 8)) {
            hg = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return hg;
}
#endif
static void hugepage_checks(void)
{
#ifdef ACN__HUGEPAGES
    acn_ctx *c;
    acn_ctx_config cfg = acn_ctx_defaults();
    int got;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) {
        printf("note: hugepages: no transparent huge pages in this kernel; not checked\n");
        return;
    }
    fclose(f);
    cfg.arena_bytes = (size_t)64 << 20;
    CHECK(acn_ctx_new(&c, &cfg) == ACN_OK, "hugepages: a context");
    got = arena_advised(c);
    if (got < 0) {
        printf("note: hugepages: /proc/self/smaps shows no VmFlags here; not checked\n");
        acn_ctx_free(c);
        return;
    }
    CHECK(got == 1, "hugepages: the arena's mapping has no hg flag in /proc/self/smaps (%d)", got);
    acn_ctx_free(c);
    setenv("ACN_HUGEPAGES", "0", 1);
    CHECK(acn_ctx_new(&c, &cfg) == ACN_OK, "hugepages: a context");
    got = arena_advised(c);
    CHECK(got == 0, "hugepages: ACN_HUGEPAGES=0, and the arena was still advised (%d)", got);
    acn_ctx_free(c);
    unsetenv("ACN_HUGEPAGES");
#endif
}

/* The cache sizes a context blocks its products for (acn_cache): on Linux
 * on x86, CPUID's L1 data and L2 sizes are those of
 * /sys/devices/system/cpu/cpu0/cache (skipped, with a note, where that is
 * missing); $ACN_CACHE sets them when it reads as two sizes in range, and is
 * otherwise left aside, which acn_cache's `from` says. */
#if defined(ACN__X86) && defined(__linux__)
static size_t sys_cache(int want_level, const char *want_type)
{
    int i;
    for (i = 0; i < 16; i++) {
        char path[128], type[32] = "", size[32] = "";
        int level = 0;
        unsigned long v;
        FILE *f;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (!(f = fopen(path, "r"))) return 0;
        if (fscanf(f, "%d", &level) != 1) level = 0;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if ((f = fopen(path, "r"))) { if (fscanf(f, "%31s", type) != 1) type[0] = 0; fclose(f); }
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if ((f = fopen(path, "r"))) { if (fscanf(f, "%31s", size) != 1) size[0] = 0; fclose(f); }
        if (level == want_level && !strcmp(type, want_type) && sscanf(size, "%lu", &v) == 1)
            return (size_t)v << (strchr(size, 'M') ? 20 : strchr(size, 'K') ? 10 : 0);
    }
    return 0;
}
#endif
static void cache_env_checks(void)
{
#if defined(ACN__X86) && defined(__linux__)
    acn_ctx *c;
    acn_cache_info got, cpu;
    size_t l1d = sys_cache(1, "Data"), l2 = sys_cache(2, "Unified");
    const char *had = getenv("ACN_CACHE");
    char saved[64] = "";
    if (had) snprintf(saved, sizeof saved, "%s", had);
    unsetenv("ACN_CACHE"); /* (the CPU's sizes first; the caller's setting is put back at the end) */
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "cache: a context");
    cpu = acn_cache(c);
    acn_ctx_free(c);
    if (!l1d || !l2)
        printf("note: cache: /sys/devices/system/cpu/cpu0/cache does not give L1d and L2 here; CPUID not compared\n");
    else if (strcmp(cpu.from, "cpuid"))
        printf("note: cache: CPUID gave no usable sizes here (%s); not compared\n", cpu.from);
    else
        CHECK(cpu.l1d == l1d && cpu.l2 == l2, "cache: CPUID says L1d %zu, L2 %zu bytes; /sys says %zu, %zu", cpu.l1d,
              cpu.l2, l1d, l2);
    setenv("ACN_CACHE", "32K,512K", 1);
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "cache: a context");
    got = acn_cache(c);
    CHECK(got.l1d == 32 * 1024 && got.l2 == 512 * 1024 && !strcmp(got.from, "$ACN_CACHE"),
          "cache: ACN_CACHE=32K,512K gave %zu, %zu (%s)", got.l1d, got.l2, got.from);
    CHECK(acn_simd(c) != ACN_SIMD_AVX512 || (got.kc == 160 && got.kc_long == 336 && got.nc == 384),
          "cache: ACN_CACHE=32K,512K at avx512: kc %d, kc_long %d, nc %d (160, 336, 384)", got.kc, got.kc_long, got.nc);
    acn_ctx_free(c);
    setenv("ACN_CACHE", "32K,1K", 1);  /* out of range */
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "cache: a context");
    got = acn_cache(c);
    CHECK(got.l1d == cpu.l1d && got.l2 == cpu.l2 && strstr(got.from, "$ACN_CACHE not understood or out of range"),
          "cache: ACN_CACHE=32K,1K gave %zu, %zu (%s)", got.l1d, got.l2, got.from);
    acn_ctx_free(c);
    setenv("ACN_CACHE", "big", 1);
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "cache: a context");
    got = acn_cache(c);
    CHECK(got.l1d == cpu.l1d && got.l2 == cpu.l2 && strstr(got.from, "$ACN_CACHE not understood"),
          "cache: ACN_CACHE=big gave %zu, %zu (%s)", got.l1d, got.l2, got.from);
    acn_ctx_free(c);
    if (had) setenv("ACN_CACHE", saved, 1);
    else unsetenv("ACN_CACHE");
    { /* the kernel's prefetching: on for an Intel CPU (/proc/cpuinfo's vendor), $ACN_PREFETCH "0" or "1" */
        static const char *const forms[4] = {NULL, "0", "1", "yes"};
        char line[256];
        int intel = -1, k;
        FILE *f = fopen("/proc/cpuinfo", "r");
        while (f && intel < 0 && fgets(line, sizeof line, f))
            if (!strncmp(line, "vendor_id", 9)) intel = strstr(line, "GenuineIntel") != NULL;
        if (f) fclose(f);
        had = getenv("ACN_PREFETCH");
        saved[0] = '\0';
        if (had) snprintf(saved, sizeof saved, "%s", had);
        for (k = 0; k < 4; k++) {
            int want = k == 1 ? 0 : k == 2 ? 1 : intel;
            if (forms[k]) setenv("ACN_PREFETCH", forms[k], 1);
            else unsetenv("ACN_PREFETCH");
            CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "prefetch: a context");
            if (want >= 0) /* (reported at the AVX-512 level only, where the kernel prefetches) */
                CHECK(acn_cache(c).prefetch == (want && acn_simd(c) == ACN_SIMD_AVX512),
                      "prefetch: ACN_PREFETCH=%s on a%s CPU at %s gave %d", forms[k] ? forms[k] : "(unset)",
                      intel ? "n Intel" : " non-Intel", acn_simd_name(acn_simd(c)), acn_cache(c).prefetch);
            acn_ctx_free(c);
        }
        if (intel < 0) printf("note: prefetch: /proc/cpuinfo gives no vendor_id; the default not compared\n");
        if (had) setenv("ACN_PREFETCH", saved, 1);
        else unsetenv("ACN_PREFETCH");
    }
#endif
}

/* Synaptic Intelligence on two parameters, worked by hand (c = 1,
 * xi = 1e-3): a task step with task gradient g = (1, -2) moves w by
 * d = (-0.1, 0.2), so path = -g d = (0.1, 0.4) and, at consolidation,
 * omega = path / (d^2 + xi) = (0.1 / 0.011, 0.4 / 0.041); then w moves by
 * e = (0.3, -0.1) from the anchor: penalty = sum omega e^2 and its
 * gradient 2 omega e, also against central differences of the penalty. */
static void si_task(void)
{
    acn_ctx *ctx;
    acn_si si;
    acn_tensor *p[2];
    int one = 1, k;
    float pen, pen2, w0[2] = {0.5f, -0.25f}, g[2] = {1.0f, -2.0f}, d[2] = {-0.1f, 0.2f}, e[2] = {0.3f, -0.1f};
    double om[2], want_pen = 0.0, want_g[2];
    acn_ctx_new(&ctx, NULL);
    p[0] = acn_param(ctx, "a", 1, &one);
    p[1] = acn_param(ctx, "b", 1, &one);
    for (k = 0; k < 2; k++) p[k]->data[0] = w0[k];
    CHECK(acn_si_init(ctx, &si, 1.0f, 1e-3f) == ACN_OK && si.n >= 2, "si_init: %s", acn_error(ctx));
    for (k = 0; k < 2; k++) p[k]->grad[0] = g[k];
    CHECK(acn_si_penalty(ctx, &si, &pen) == ACN_OK && pen == 0.0f && p[0]->grad[0] == g[0] && p[1]->grad[0] == g[1],
          "si: no penalty before the first task ends (%g)", pen);
    for (k = 0; k < 2; k++) p[k]->data[0] = w0[k] + d[k]; /* the optimizer's step */
    acn_si_update(ctx, &si);
    acn_si_consolidate(ctx, &si);
    for (k = 0; k < 2; k++) {
        double dk = (double)(float)(w0[k] + d[k]) - w0[k], path = -(double)g[k] * dk;
        om[k] = path / (dk * dk + 1e-3);
        CHECK(fabs(si.omega[p[k]->offset] - om[k]) < 1e-4 * fabs(om[k]), "si: omega %d = %g, by hand %g", k,
              si.omega[p[k]->offset], om[k]);
    }
    for (k = 0; k < 2; k++) {
        p[k]->data[0] = w0[k] + d[k] + e[k];
        p[k]->grad[0] = 0.0f;
        want_pen += om[k] * e[k] * e[k];
        want_g[k] = 2.0 * om[k] * e[k];
    }
    CHECK(acn_si_penalty(ctx, &si, &pen) == ACN_OK && fabs(pen - want_pen) < 1e-4 * want_pen,
          "si: penalty %g, by hand %g", pen, want_pen);
    for (k = 0; k < 2; k++) g[k] = p[k]->grad[0]; /* the penalty's gradient (the calls below add to it again) */
    for (k = 0; k < 2; k++) {
        float keep = p[k]->data[0], h = 1e-3f, plus, minus, grad = g[k];
        CHECK(fabs(grad - want_g[k]) < 1e-4 * fabs(want_g[k]), "si: gradient %d = %g, by hand %g", k, grad, want_g[k]);
        p[k]->data[0] = keep + h;
        acn_si_value(ctx, &si, &plus);
        p[k]->data[0] = keep - h;
        acn_si_value(ctx, &si, &minus);
        p[k]->data[0] = keep;
        CHECK(fabs((plus - minus) / (2.0 * h) - grad) < 2e-3 * fabs(grad), "si: gradient %d = %g, central "
              "differences %g", k, grad, (plus - minus) / (2.0 * h));
    }
    CHECK(acn_si_penalty(ctx, &si, &pen2) == ACN_ERR_STATE && strstr(acn_error(ctx), "called twice in one step"),
          "si: a second penalty in one step is refused: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_si_update(ctx, &si) == ACN_OK && acn_si_update(ctx, &si) == ACN_ERR_STATE &&
          strstr(acn_error(ctx), "no acn_si_penalty since the last update"), "si: an update without a penalty is "
          "refused: %s", acn_error(ctx));
    acn_clear_error(ctx);
    si.c = 2.0f; /* the strength scales both */
    p[0]->grad[0] = p[1]->grad[0] = 0.0f;
    acn_si_penalty(ctx, &si, &pen2);
    CHECK(fabs(pen2 - 2.0 * pen) < 1e-6 * pen && fabs(p[0]->grad[0] - 2.0 * want_g[0]) < 1e-4 * fabs(want_g[0]),
          "si: c = 2 doubles the penalty (%g, %g) and its gradient", pen2, pen);
    acn_si_free(&si);
    CHECK(acn_si_init(ctx, &si, 1.0f, 0.0f) == ACN_ERR_ARG && strstr(acn_error(ctx), "xi > 0"),
          "si: xi = 0 is refused: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_si_update(ctx, &si) == ACN_ERR_ARG && strstr(acn_error(ctx), "not initialised"),
          "si: a freed state is refused: %s", acn_error(ctx));
    acn_ctx_free(ctx);
}

/* Pruning: exactly round(s n) elements go, the smallest scores first;
 * pruned weights stay exactly 0 through AdamW steps, and in a saved and
 * reloaded checkpoint. */
static void prune_task(void)
{
    acn_ctx *ctx, *back;
    acn_tensor *p[4], *w[2];
    acn_pruning pr;
    acn_adamw opt;
    int widths[3] = {6, 8, 3}, labels[5] = {0, 1, 2, 1, 0}, xs[2] = {5, 6}, step, score;
    size_t i, j, zeros;
    float x[30];
    for (i = 0; i < 30; i++) x[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
    for (score = ACN_PRUNE_MAGNITUDE; score <= ACN_PRUNE_MOVEMENT; score++) {
        float kept_min = 1e30f, pruned_max = 0.0f;
        acn_ctx_new(&ctx, NULL);
        make_mlp(ctx, p, 2, widths); /* W0 (8, 6), b0, W1 (3, 8), b1 */
        w[0] = p[0];
        w[1] = p[2];
        acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f);
        acn_zero_grad(ctx);
        acn_backward(ctx, acn_cross_entropy(ctx, acn_linear(ctx, acn_relu(ctx, acn_linear(ctx,
                     acn_input(ctx, 2, xs, x), p[0], p[1])), p[2], p[3]), labels, 0.0f, -1));
        CHECK(acn_prune(ctx, &pr, w, 2, 0.7f, score) == ACN_OK && pr.scored == 72 && pr.pruned == 50,
              "prune: 70%% of 72 elements is 50 (%zu of %zu): %s", pr.pruned, pr.scored, acn_error(ctx));
        for (j = 0; j < 2; j++)
            for (i = 0; i < w[j]->numel; i++) {
                float sc = score == ACN_PRUNE_MAGNITUDE ? fabsf(w[j]->data[i]) : fabsf(w[j]->data[i] * w[j]->grad[i]);
                if (pr.keep[w[j]->offset + i]) kept_min = fminf(kept_min, sc);
                else pruned_max = fmaxf(pruned_max, sc);
            }
        CHECK(pruned_max <= kept_min, "prune (%s): the pruned scores (up to %g) are the smallest (kept from %g)",
              score ? "movement" : "magnitude", pruned_max, kept_min);
        CHECK(pr.keep[p[1]->offset] && pr.keep[p[3]->offset], "prune: the biases are not touched");
        acn_prune_apply(ctx, &pr, &opt);
        for (step = 0; step < 5; step++) { /* fine-tuning keeps them at 0 */
            acn_reset(ctx);
            acn_zero_grad(ctx);
            acn_backward(ctx, acn_cross_entropy(ctx, acn_linear(ctx, acn_relu(ctx, acn_linear(ctx,
                         acn_input(ctx, 2, xs, x), p[0], p[1])), p[2], p[3]), labels, 0.0f, -1));
            acn_prune_apply(ctx, &pr, &opt);
            acn_adamw_step(ctx, &opt, 0.05f);
            acn_prune_apply(ctx, &pr, &opt);
        }
        for (zeros = 0, j = 0; j < 2; j++)
            for (i = 0; i < w[j]->numel; i++) zeros += pr.keep[w[j]->offset + i] ? 0 : w[j]->data[i] == 0.0f;
        CHECK(zeros == 50 && !acn_status_of(ctx), "prune: %zu of the 50 pruned weights are exactly 0 after 5 AdamW "
              "steps: %s", zeros, acn_error(ctx));
        for (zeros = 0, i = 0; i < pr.n; i++) zeros += !pr.keep[i] && opt.m[i] == 0.0f && opt.v[i] == 0.0f;
        CHECK(zeros == 50, "prune: AdamW's moments are 0 where pruned (%zu of 50)", zeros);
        acn_save_params(ctx, "build/test_prune.safetensors", NULL, 0);
        acn_ctx_new(&back, NULL);
        make_mlp(back, p, 2, widths);
        CHECK(acn_load_params(back, "build/test_prune.safetensors") == ACN_OK, "prune: reload: %s", acn_error(back));
        for (zeros = 0, j = 0; j < 2; j++)
            for (i = 0; i < w[j]->numel; i++) zeros += !pr.keep[w[j]->offset + i] && p[2 * j]->data[i] == 0.0f;
        CHECK(zeros == 50, "prune: the saved checkpoint has %zu of the 50 zeros", zeros);
        acn_ctx_free(back);
        acn_pruning_free(&pr);
        acn_adamw_free(&opt);
        acn_ctx_free(ctx);
    }
    acn_ctx_new(&ctx, NULL);
    make_mlp(ctx, p, 2, widths);
    CHECK(acn_prune(ctx, &pr, p, 1, 1.5f, ACN_PRUNE_MAGNITUDE) == ACN_ERR_ARG && strstr(acn_error(ctx), "[0, 1]"),
          "prune: sparsity 1.5 is refused: %s", acn_error(ctx));
    acn_clear_error(ctx);
    w[0] = acn_new(ctx, 2, xs, 0);
    CHECK(acn_prune(ctx, &pr, w, 1, 0.5f, ACN_PRUNE_MAGNITUDE) == ACN_ERR_ARG && strstr(acn_error(ctx), "not a parameter"),
          "prune: a tensor that is not a parameter is refused: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_prune_apply(ctx, &pr, NULL) == ACN_ERR_ARG && strstr(acn_error(ctx), "no mask"),
          "prune_apply without a mask: %s", acn_error(ctx));
    acn_clear_error(ctx);
    w[0] = p[0];
    w[1] = p[0];
    CHECK(acn_prune(ctx, &pr, w, 2, 0.5f, ACN_PRUNE_MAGNITUDE) == ACN_ERR_ARG && strstr(acn_error(ctx), "listed twice"),
          "prune: a weight listed twice is refused: %s", acn_error(ctx));
    acn_clear_error(ctx);
    acn_zero_grad(ctx);
    CHECK(acn_prune(ctx, &pr, w, 1, 0.5f, ACN_PRUNE_MOVEMENT) == ACN_ERR_STATE && strstr(acn_error(ctx), "gradients are 0")
          && !pr.keep, "prune: movement without a gradient is refused: %s", acn_error(ctx));
    acn_clear_error(ctx);
    p[0]->data[3] = NAN;
    CHECK(acn_prune(ctx, &pr, w, 1, 0.5f, ACN_PRUNE_MAGNITUDE) == ACN_ERR_NONFINITE &&
          strstr(acn_error(ctx), "fc0.weight is nan"), "prune: a NaN weight is refused, by name: %s", acn_error(ctx));
    acn_ctx_free(ctx);
}

int main(void)
{
    pool_task_checks();
    pool_grain_checks();
    pool_mode_checks();
    gelu_bits_checks();
    pool_affinity_checks();
    hugepage_checks();
    cache_env_checks();
    xor_task();
    sine_task();
    resume_task();
    si_task();
    prune_task();
    return t_done("train");
}
