/* The acn.h side of `make bench-cpu` (tests/bench/bench_cpu.sh drives it).
 *
 *   bench_acn init MODEL DIR        write DIR/MODEL.weights.safetensors and
 *                                   DIR/MODEL.batch.safetensors (seeded)
 *   bench_acn run MODEL DIR STEPS   one warm-up step, then STEPS timed steps;
 *                                   prints "first_loss L median_s S rss_mb R"
 *   bench_acn gemm                  acn.h's matrix kernel and OpenBLAS's sgemm
 *                                   (loaded with dlopen) on every product of one
 *                                   Mixer training step
 *   bench_acn calibrate             OpenBLAS as the environment sets it up
 *                                   (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE): the
 *                                   kernel it loaded, whether a small sgemm is
 *                                   right (against float64), and a 2048^3
 *                                   sgemm's GFLOP/s on 1 and on 2 threads
 *   bench_acn roundtrip             a cache line's round trip between the
 *                                   first two cores, in ns (see roundtrip)
 *
 * MODEL is "mixer" (the paper's CIFAR-10 Mixer) or "vit" (width 192, 6
 * blocks, 3 heads, 4 x 4 patches on 32 x 32). A step is what train_mixer
 * does: forward, cross-entropy with label smoothing 0.1, backward, gradient
 * clipping at 1.0 and AdamW, batch 64, through the public functions. */
#define ACN_IMPLEMENTATION
#include "../../acn.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include "bench.h"

enum { BATCH = 64 };

static int die(acn_ctx *ctx)
{
    fprintf(stderr, "bench_acn: %s\n", acn_error(ctx));
    return 1;
}

static int init(const char *name, const char *dir)
{
    acn_ctx *ctx;
    static model m;
    char path[512];
    int s[4] = {BATCH, 3, 32, 32}, l[1] = {BATCH}, i;
    acn_tensor *x, *y, *batch[2];
    if (acn_ctx_new(&ctx, NULL) || build(ctx, &m, name)) return die(ctx);
    if (m.vit) acn_init_normal(ctx, m.v.head.weight, 0.0f, 0.02f); /* a zero head trains nothing below it */
    snprintf(path, sizeof path, "%s/%s.weights.safetensors", dir, name);
    if (acn_save_params(ctx, path, NULL, 0)) return die(ctx);
    x = acn_new(ctx, 4, s, 0);
    y = acn_new(ctx, 1, l, 0);
    acn_init_normal(ctx, x, 0.0f, 1.0f);
    for (i = 0; i < BATCH; i++) y->data[i] = (float)(i % 10);
    x->name = "x";
    y->name = "labels";
    batch[0] = x;
    batch[1] = y;
    snprintf(path, sizeof path, "%s/%s.batch.safetensors", dir, name);
    if (acn_st_write(ctx, path, batch, 2, NULL, 0)) return die(ctx);
    acn_ctx_free(ctx);
    return 0;
}

static int run(const char *name, const char *dir, int steps)
{
    acn_ctx *ctx;
    acn_ctx_config cfg = acn_ctx_defaults();
    static model m;
    acn_adamw opt;
    acn_st st;
    char path[512];
    int s[4] = {BATCH, 3, 32, 32}, labels[BATCH], i, step;
    float xs[BATCH * 3 * 32 * 32], ls[BATCH], first = 0.0f;
    double t[64];
    struct rusage ru;
    acn_cache_info c;
    cfg.arena_bytes = (size_t)2 << 30;
    if (steps < 1 || steps > 63) steps = 5;
    if (acn_ctx_new(&ctx, &cfg) || build(ctx, &m, name)) return die(ctx);
    snprintf(path, sizeof path, "%s/%s.weights.safetensors", dir, name);
    if (acn_load_params(ctx, path)) return die(ctx);
    snprintf(path, sizeof path, "%s/%s.batch.safetensors", dir, name);
    if (acn_st_read(ctx, path, &st) || acn_st_get_f32(ctx, &st, "x", xs, sizeof xs / sizeof xs[0]) ||
        acn_st_get_f32(ctx, &st, "labels", ls, BATCH))
        return die(ctx);
    acn_st_free(&st);
    for (i = 0; i < BATCH; i++) labels[i] = (int)ls[i];
    if (acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f)) return die(ctx);
    for (step = 0; step <= steps; step++) {
        double t0 = now();
        acn_tensor *loss;
        acn_reset(ctx);
        if (!(loss = bench_step(ctx, &m, acn_input(ctx, 4, s, xs), labels, &opt))) return die(ctx);
        if (step == 0) first = acn_item(ctx, loss);
        else t[step - 1] = now() - t0;
    }
    qsort(t, (size_t)steps, sizeof t[0], cmp);
    getrusage(RUSAGE_SELF, &ru);
    c = acn_cache(ctx);
    printf("first_loss %.6f median_s %.5f rss_mb %.1f simd %s threads %d l1d_kb %lu l2_kb %lu kc %d kc_long %d nc %d "
           "prefetch %d\n",
           (double)first, t[steps / 2], (double)ru.ru_maxrss / 1024.0, acn_simd_name(acn_simd(ctx)), acn_threads(ctx),
           (unsigned long)(c.l1d >> 10), (unsigned long)(c.l2 >> 10), c.kc, c.kc_long, c.nc, c.prefetch);
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
    return 0;
}

/* ---- matrix products of one Mixer step, acn.h against OpenBLAS ---------- */
typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);

/* One Linear (R rows, in -> out) gives three products: forward y = x W^T,
 * backward dx = dy W and dW = dy^T x. */
typedef struct shape { int M, N, K, ta, tb, count; const char *what; } shape;

/* One call's seconds. */
static double one_gemm(acn_ctx *ctx, sgemm_fn blas, const shape *sh, const float *A, const float *B, float *C)
{
    double t0 = now();
    if (blas)
        blas(101, sh->ta ? 112 : 111, sh->tb ? 112 : 111, sh->M, sh->N, sh->K, 1.0f, A, sh->ta ? sh->M : sh->K, B,
             sh->tb ? sh->K : sh->N, 0.0f, C, sh->N);
    else
        acn__gemm(ctx, sh->M, sh->N, sh->K, A, sh->ta, B, sh->tb, C, 0);
    return now() - t0;
}
/* GFLOP/s of acn.h (*ga) and OpenBLAS (*gb): 3 rounds that alternate 5
 * calls of each (after a warm-up call), medians of the 15. OpenBLAS's
 * threads keep spinning for a while after a call and would take a core from
 * the next acn.h call, so each block starts after 150 ms of quiet. */
static void quiet(void)
{
    struct timespec q;
    q.tv_sec = 0;
    q.tv_nsec = 150000000L;
    nanosleep(&q, NULL);
}
static void time_gemm(acn_ctx *ctx, sgemm_fn blas, const shape *sh, const float *A, const float *B, float *C,
                      double *ga, double *gb)
{
    double ta[15], tb[15], f = 2.0 * sh->M * sh->N * sh->K;
    int r, k;
    for (r = 0; r < 3; r++) {
        quiet();
        one_gemm(ctx, NULL, sh, A, B, C);
        for (k = 0; k < 5; k++) ta[5 * r + k] = one_gemm(ctx, NULL, sh, A, B, C);
        quiet();
        one_gemm(ctx, blas, sh, A, B, C);
        for (k = 0; k < 5; k++) tb[5 * r + k] = one_gemm(ctx, blas, sh, A, B, C);
    }
    qsort(ta, 15, sizeof ta[0], cmp);
    qsort(tb, 15, sizeof tb[0], cmp);
    *ga = f / ta[7] / 1e9;
    *gb = f / tb[7] / 1e9;
}

/* libopenblas.so.0, its cblas_sgemm (NULL if missing) and the kernel it loaded */
static void *open_blas(sgemm_fn *blas, const char **core)
{
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW);
    const char *(*corename)(void) = lib ? (const char *(*)(void))(size_t)dlsym(lib, "openblas_get_corename") : NULL;
    *blas = lib ? (sgemm_fn)(size_t)dlsym(lib, "cblas_sgemm") : NULL;
    *core = corename ? corename() : "?";
    return lib;
}
static int gemm(void)
{
    /* B = 64 images, T = 65 tokens, D = 128, token MLP 64, channel MLP 512 */
    static const shape shapes[] = {
        {8192, 64, 65, 0, 1, 16, "tok.fc1 forward"},   {8192, 65, 64, 0, 0, 16, "tok.fc1 dx"},
        {64, 65, 8192, 1, 0, 16, "tok.fc1 dW"},        {8192, 65, 64, 0, 1, 16, "tok.fc2 forward"},
        {8192, 64, 65, 0, 0, 16, "tok.fc2 dx"},        {65, 64, 8192, 1, 0, 16, "tok.fc2 dW"},
        {4160, 512, 128, 0, 1, 16, "ch.fc1 forward"},  {4160, 128, 512, 0, 0, 16, "ch.fc1 dx"},
        {512, 128, 4160, 1, 0, 16, "ch.fc1 dW"},       {4160, 128, 512, 0, 1, 16, "ch.fc2 forward"},
        {4160, 512, 128, 0, 0, 16, "ch.fc2 dx"},       {128, 512, 4160, 1, 0, 16, "ch.fc2 dW"},
        {4160, 128, 128, 0, 1, 16, "linear forward"},  {4160, 128, 128, 0, 0, 16, "linear dx"},
        {128, 128, 4160, 1, 0, 16, "linear dW"},       {4096, 128, 48, 0, 1, 1, "embed forward"},
        {128, 48, 4096, 1, 0, 1, "embed dW"},
    };
    sgemm_fn blas;
    const char *core;
    acn_ctx *ctx;
    double flops = 0.0, weighted = 0.0;
    size_t i;
    open_blas(&blas, &core);
    if (!blas) {
        fprintf(stderr, "bench_acn: cannot load cblas_sgemm from libopenblas.so.0 (apt-get install libopenblas0-pthread)\n");
        return 1;
    }
    if (acn_ctx_new(&ctx, NULL)) return 1;
    printf("%-16s %5s %5s %5s  %10s %10s  %s\n", "product", "M", "N", "K", "acn GF/s", "BLAS GF/s", "ratio");
    for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *sh = &shapes[i];
        size_t na = (size_t)sh->M * sh->K, nb = (size_t)sh->K * sh->N, j;
        float *A = (float *)malloc(na * 4), *B = (float *)malloc(nb * 4), *C = (float *)malloc((size_t)sh->M * sh->N * 4);
        double ga, gb, f = 2.0 * sh->M * sh->N * sh->K * sh->count;
        for (j = 0; j < na; j++) A[j] = (float)(j % 17) * 0.1f - 0.8f;
        for (j = 0; j < nb; j++) B[j] = (float)(j % 13) * 0.1f - 0.6f;
        time_gemm(ctx, blas, sh, A, B, C, &ga, &gb);
        printf("%-16s %5d %5d %5d  %10.1f %10.1f  %.2f\n", sh->what, sh->M, sh->N, sh->K, ga, gb, ga / gb);
        flops += f;
        weighted += f * (ga / gb);
        free(A);
        free(B);
        free(C);
    }
    {
        acn_cache_info c = acn_cache(ctx);
        printf("openblas_core %s  acn_simd %s  threads %d  caches L1d %lu KB, L2 %lu KB (%s): kc %d, kc_long %d, nc %d, "
               "prefetch %d\n",
               core, acn_simd_name(acn_simd(ctx)), acn_threads(ctx), (unsigned long)(c.l1d >> 10),
               (unsigned long)(c.l2 >> 10), c.from, c.kc, c.kc_long, c.nc, c.prefetch);
    }
    printf("gemm_fraction %.3f\n", weighted / flops);
    acn_ctx_free(ctx);
    return 0;
}

/* ---- OpenBLAS calibration (tests/bench/bench_cpu.sh runs one process per
 * setting, since OpenBLAS reads its settings when it loads) ------------- */
static int calibrate(void)
{
    enum { m = 67, n = 53, k = 71, BIG = 2048 };
    sgemm_fn blas;
    const char *core;
    void *lib = open_blas(&blas, &core);
    void (*set_threads)(int) = lib ? (void (*)(int))(size_t)dlsym(lib, "openblas_set_num_threads") : NULL;
    static float a[m * k], b[k * n], c[m * n];
    float *A, *B, *C;
    double gf[3] = {0.0, 0.0, 0.0}, worst = 0.0;
    int i, j, l, t, r, ok = 1;
    if (!blas || !set_threads) {
        fprintf(stderr, "bench_acn: cannot load libopenblas.so.0 (apt-get install libopenblas0-pthread)\n");
        return 1;
    }
    /* a small product with both operands transposed, against float64 */
    for (i = 0; i < m * k; i++) a[i] = (float)((i * 7919) % 201 - 100) / 64.0f;
    for (i = 0; i < k * n; i++) b[i] = (float)((i * 104729) % 197 - 98) / 64.0f;
    blas(101, 112, 112, m, n, k, 1.0f, a, m, b, k, 0.0f, c, n);
    for (i = 0; i < m; i++)
        for (j = 0; j < n; j++) {
            double ref = 0.0, err;
            for (l = 0; l < k; l++) ref += (double)a[l * m + i] * b[j * k + l];
            err = fabs(ref - c[i * n + j]) / (1.0 + fabs(ref));
            if (!(err <= worst)) worst = err;
        }
    ok = worst < 1e-4;
    A = (float *)malloc((size_t)BIG * BIG * 4);
    B = (float *)malloc((size_t)BIG * BIG * 4);
    C = (float *)malloc((size_t)BIG * BIG * 4);
    if (!A || !B || !C) return 1;
    for (i = 0; i < BIG * BIG; i++) { A[i] = (float)(i % 17) * 0.1f; B[i] = (float)(i % 13) * 0.1f; }
    for (t = 1; t <= 2 && ok; t++) { /* best of 3 after a warm-up call */
        set_threads(t);
        blas(101, 111, 111, BIG, BIG, BIG, 1.0f, A, BIG, B, BIG, 0.0f, C, BIG);
        for (r = 0; r < 3; r++) {
            double t0 = now(), g;
            blas(101, 111, 111, BIG, BIG, BIG, 1.0f, A, BIG, B, BIG, 0.0f, C, BIG);
            g = 2.0 * BIG * BIG * BIG / (now() - t0) / 1e9;
            if (g > gf[t]) gf[t] = g;
        }
    }
    printf("corename %s correct %d max_rel_err %.2e gflops_1t %.1f gflops_2t %.1f\n", core, ok, worst, gf[1], gf[2]);
    free(A);
    free(B);
    free(C);
    return 0;
}

/* ---- the two cores' distance: a cache line's round trip ---------------
 * Two threads, pinned to the first two cores this process may use, pass a
 * counter back and forth 200000 times; the median of 3 such runs, in ns per
 * round trip (shorter runs read high: the first thousands of round trips
 * are slower). On a virtual machine the host may place the two vCPUs close
 * together (sharing a last-level cache) or far apart, and may move them:
 * data one thread writes and the other reads then crosses a longer way.
 * (0 where threads cannot be pinned.) */
#ifdef ACN__AFFINITY
static volatile unsigned long rt_flag;
static int rt_cores[2];
static void rt_pin(int core)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(core, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
static void *rt_other(void *arg)
{
    unsigned long i, n = (unsigned long)(size_t)arg;
    rt_pin(rt_cores[1]);
    for (i = 0; i < n; i++) {
        while (rt_flag != 2 * i + 1) {}
        rt_flag = 2 * i + 2;
    }
    return NULL;
}
#endif
static int roundtrip(void)
{
    double ns[3] = {0.0, 0.0, 0.0};
#ifdef ACN__AFFINITY
    enum { N = 200000 };
    cpu_set_t mine, old;
    int c, found = 0, r;
    unsigned long i;
    pthread_getaffinity_np(pthread_self(), sizeof old, &old);
    sched_getaffinity(0, sizeof mine, &mine);
    for (c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &mine)) rt_cores[found++] = c;
    for (r = 0; r < 3 && found == 2; r++) {
        pthread_t t;
        double t0;
        rt_flag = 0;
        if (pthread_create(&t, NULL, rt_other, (void *)(size_t)N)) break;
        rt_pin(rt_cores[0]);
        t0 = now();
        for (i = 0; i < N; i++) {
            rt_flag = 2 * i + 1;
            while (rt_flag != 2 * i + 2) {}
        }
        ns[r] = (now() - t0) / N * 1e9;
        pthread_join(t, NULL);
    }
    pthread_setaffinity_np(pthread_self(), sizeof old, &old);
    qsort(ns, 3, sizeof ns[0], cmp);
#endif
    printf("roundtrip_ns %.0f\n", ns[1]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "init")) return init(argv[2], argv[3]);
    if (argc >= 5 && !strcmp(argv[1], "run")) return run(argv[2], argv[3], atoi(argv[4]));
    if (argc >= 2 && !strcmp(argv[1], "gemm")) return gemm();
    if (argc >= 2 && !strcmp(argv[1], "calibrate")) return calibrate();
    if (argc >= 2 && !strcmp(argv[1], "roundtrip")) return roundtrip();
    fprintf(stderr, "usage: bench_acn init MODEL DIR | run MODEL DIR STEPS | gemm | calibrate | roundtrip   (MODEL: mixer "
            "or vit)\n");
    return 2;
}
