/* The GPU against the CPU, in two layers (docs/cuda.md):
 *   - the kernels: each runs on the device and its result is compared with
 *     acn.h's own CPU op on the same inputs, or with a plain loop where
 *     acn.h has no op of that shape (the matrix product's strides);
 *   - the device context: a GPU context and a CPU context build the same
 *     models and graphs from the same seed, train them, and must agree
 *     (losses, gradients, probes, weights after AdamW steps).
 * Tolerance: relative error under 1e-5 per tensor, TF32 off.
 *
 * Built two ways. `make cuda`: with acn_cuda.o (nvcc), for a real GPU;
 * where no CUDA device can be used it prints "no CUDA device: skipped" and
 * exits 0. And with -DACN_CUDA_EMU: with tests/cuda_emu.c, the GPU unit
 * emulated on the host with device pointers that fault if acn.h reads them
 * as host memory, so that the device context is tested on every machine
 * (make test). */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"
#ifdef ACN_CUDA_EMU
#include "cuda_emu.c"
#endif

#define TOL 1e-5

static acn__cu *G;
static acn_ctx *C; /* the CPU reference */

/* ---- device buffers: up, down, free ------------------------------------------ */
/* bytes of host memory in a new device buffer (the test stops if that fails) */
static void *up_bytes(const void *h, size_t bytes)
{
    void *d = NULL;
    if (acn__cu_alloc(G, &d, bytes, "test") || acn__cu_copy(G, d, h, bytes, ACN__CU_H2D, "test")) {
        fprintf(stderr, "%s\n", acn__cu_msg(G));
        exit(1);
    }
    return d;
}
static float *up(const float *h, size_t n) { return (float *)up_bytes(h, n * sizeof(float)); }
static int *up_int(const int *h, size_t n) { return (int *)up_bytes(h, n * sizeof(int)); }
static float *zeros_d(size_t n)
{
    void *d = NULL;
    if (acn__cu_alloc(G, &d, (n ? n : 1) * sizeof(float), "test") || acn__cu_zero(G, d, n * sizeof(float), "test")) {
        fprintf(stderr, "%s\n", acn__cu_msg(G));
        exit(1);
    }
    return (float *)d;
}
/* the device's n floats, in a malloc'd buffer the caller frees */
static float *down(const float *d, size_t n)
{
    float *h = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!h || acn__cu_copy(G, h, d, n * sizeof(float), ACN__CU_D2H, "test")) {
        fprintf(stderr, "%s\n", acn__cu_msg(G));
        exit(1);
    }
    return h;
}
static void same(const char *what, const float *d, const float *want, size_t n)
{
    float *h = down(d, n);
    double e = t_relerr(h, want, n);
    CHECK(e < TOL, "%s: relative error %.3g (tolerance %.0e)", what, e, TOL);
    free(h);
}
static void rnd(float *p, size_t n, float scale)
{
    size_t i;
    for (i = 0; i < n; i++) p[i] = scale * (2.0f * acn_rng_uniform(acn_ctx_rng(C)) - 1.0f);
}

/* ---- tests ---------------------------------------------------------------------- */
static void test_memory(void)
{
    float h[1000], *d, *back;
    size_t i;
    void *big = NULL;
    rnd(h, 1000, 1.0f);
    d = up(h, 1000);
    back = down(d, 1000);
    CHECK(!memcmp(back, h, sizeof h), "copy up and down");
    free(back);
    CHECK(acn__cu_fill(G, d, 1000, 2.5f, "fill") == ACN_OK, "%s", acn__cu_msg(G));
    back = down(d, 1000);
    for (i = 0; i < 1000 && back[i] == 2.5f; i++) {}
    CHECK(i == 1000, "fill");
    free(back);
    acn__cu_free(G, d);
    /* far more than any GPU has: a clear ACN_ERR_NOMEM that names what and the bytes */
    CHECK(acn__cu_alloc(G, &big, (size_t)1 << 50, "arena") == ACN_ERR_NOMEM && !big &&
              strstr(acn__cu_msg(G), "arena: out of device memory for 1125899906842624 bytes"),
          "out of memory: %s", acn__cu_msg(G));
}

/* C (M, N) = op(A) op(B) against a plain double loop, every transpose, a
 * leading dimension wider than the block, accumulation, and 3 batches. */
static void test_gemm(void)
{
    enum { M = 37, N = 29, K = 45, LD = 50, BATCH = 3 };
    static float A[BATCH * LD * LD], B[BATCH * LD * LD], C0[BATCH * M * LD], want[BATCH * M * LD];
    int ta, tb, acc, b, i, j, k;
    rnd(A, sizeof A / 4, 1.0f);
    rnd(B, sizeof B / 4, 1.0f);
    rnd(C0, sizeof C0 / 4, 1.0f);
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++)
            for (acc = 0; acc < 2; acc++) {
                float *dA = up(A, sizeof A / 4), *dB = up(B, sizeof B / 4), *dC = up(C0, sizeof C0 / 4);
                char what[64];
                for (b = 0; b < BATCH; b++)
                    for (i = 0; i < M; i++)
                        for (j = 0; j < LD; j++) {
                            double s = acc || j >= N ? C0[b * M * LD + i * LD + j] : 0.0;
                            for (k = 0; k < K && j < N; k++) {
                                float a = ta ? A[b * LD * LD + k * LD + i] : A[b * LD * LD + i * LD + k];
                                float bb = tb ? B[b * LD * LD + j * LD + k] : B[b * LD * LD + k * LD + j];
                                s += (double)a * bb;
                            }
                            want[b * M * LD + i * LD + j] = (float)s;
                        }
                CHECK(acn__cu_gemm(G, M, N, K, dA, LD, ta, dB, LD, tb, dC, LD, acc, BATCH, LD * LD, LD * LD, M * LD,
                                   "gemm") == ACN_OK, "%s", acn__cu_msg(G));
                snprintf(what, sizeof what, "gemm ta %d tb %d accumulate %d", ta, tb, acc);
                same(what, dC, want, sizeof want / 4);
                acn__cu_free(G, dA);
                acn__cu_free(G, dB);
                acn__cu_free(G, dC);
            }
}

/* The CPU op with its backward, d = a fixed random tensor (loss = sum(out * R)). */
static acn_tensor *cpu_bwd(acn_tensor *out, float *R)
{
    acn_tensor *r = acn_input(C, out->ndim, out->shape, R);
    acn_backward(C, acn_sum(C, acn_mul(C, out, r), ACN_AXIS_ALL));
    CHECK(acn_status_of(C) == ACN_OK, "CPU reference: %s", acn_error(C));
    return out;
}
static acn_tensor *leaf(int ndim, const int *shape, const float *v)
{
    acn_tensor *t = acn_new(C, ndim, shape, ACN_F_GRAD);
    acn_write(C, t, v);
    return t;
}

static void test_binary(void)
{
    /* a (2, 3, 4) op b (3, 1): b repeats along dims 0 and 3 */
    int sa_[3] = {2, 3, 4}, sb_[2] = {3, 1}, op;
    float a[24], b[3], R[24];
    rnd(a, 24, 1.0f);
    rnd(b, 3, 1.0f);
    rnd(R, 24, 1.0f);
    for (op = 0; op < 3; op++) {
        acn_tensor *A, *B, *O;
        acn__bcast bc;
        float *dA, *dB, *dO, *dR, *gA, *gB;
        char what[64];
        acn_reset(C);
        A = leaf(3, sa_, a);
        B = leaf(2, sb_, b);
        O = op == 0 ? acn_add(C, A, B) : op == 1 ? acn_sub(C, A, B) : acn_mul(C, A, B);
        cpu_bwd(O, R);
        acn__bcast_init(&bc, O, A, B);
        dA = up(a, 24); dB = up(b, 3); dO = zeros_d(24); dR = up(R, 24); gA = zeros_d(24); gB = zeros_d(3);
        CHECK(!acn__cu_binary(G, op, bc.n, bc.sa, bc.sb, dA, dB, dO, "binary"), "%s", acn__cu_msg(G));
        CHECK(!acn__cu_binary_bwd(G, op, 0, bc.n, bc.sa, bc.sb, 24, dR, dB, gA, "binary") &&
              !acn__cu_binary_bwd(G, op, 1, bc.n, bc.sb, bc.sa, 3, dR, dA, gB, "binary"), "%s", acn__cu_msg(G));
        snprintf(what, sizeof what, "binary %d forward", op);
        same(what, dO, O->data, 24);
        snprintf(what, sizeof what, "binary %d da", op);
        same(what, gA, A->grad, 24);
        snprintf(what, sizeof what, "binary %d db (broadcast)", op);
        same(what, gB, B->grad, 3);
        acn__cu_free(G, dA); acn__cu_free(G, dB); acn__cu_free(G, dO); acn__cu_free(G, dR);
        acn__cu_free(G, gA); acn__cu_free(G, gB);
    }
}

static void test_unary(void)
{
    enum { N = 1000 };
    int s = N, op;
    float x[N], R[N];
    rnd(x, N, 4.0f);
    rnd(R, N, 1.0f);
    for (op = 0; op < 4; op++) {
        acn_tensor *X, *Y;
        float *dX, *dY, *dR, *gX;
        char what[64];
        acn_reset(C);
        X = leaf(1, &s, x);
        Y = op == ACN__CU_GELU ? acn_gelu(C, X) : op == ACN__CU_GELU_TANH ? acn_gelu_ex(C, X, ACN_GELU_TANH)
            : op == ACN__CU_RELU ? acn_relu(C, X) : acn_tanh(C, X);
        cpu_bwd(Y, R);
        dX = up(x, N); dY = zeros_d(N); dR = up(R, N); gX = zeros_d(N);
        CHECK(!acn__cu_unary(G, op, N, dX, dY, "unary") &&
              !acn__cu_unary_bwd(G, op, N, op == ACN__CU_TANH ? dY : dX, dR, gX, 1, "unary"), "%s", acn__cu_msg(G));
        snprintf(what, sizeof what, "unary %d forward", op);
        same(what, dY, Y->data, N);
        snprintf(what, sizeof what, "unary %d backward", op);
        same(what, gX, X->grad, N);
        acn__cu_free(G, dX); acn__cu_free(G, dY); acn__cu_free(G, dR); acn__cu_free(G, gX);
    }
}

static void test_layernorm(void)
{
    enum { R = 33, D = 300 };
    int sx[2] = {R, D}, sd = D;
    static float x[R * D], gam[D], bet[D], Rw[R * D];
    acn_tensor *X, *Gm, *Bt, *Y;
    float *dX, *dG, *dB, *dY, *mean, *rstd, *dR, *gX, *gG, *gB;
    rnd(x, R * D, 3.0f);
    rnd(gam, D, 1.0f);
    rnd(bet, D, 1.0f);
    rnd(Rw, R * D, 1.0f);
    acn_reset(C);
    X = leaf(2, sx, x);
    Gm = leaf(1, &sd, gam);
    Bt = leaf(1, &sd, bet);
    Y = cpu_bwd(acn_layernorm(C, X, Gm, Bt, 1e-5f), Rw);
    dX = up(x, R * D); dG = up(gam, D); dB = up(bet, D); dY = zeros_d(R * D); mean = zeros_d(R); rstd = zeros_d(R);
    dR = up(Rw, R * D); gX = zeros_d(R * D); gG = zeros_d(D); gB = zeros_d(D);
    CHECK(!acn__cu_ln_fwd(G, R, D, dX, dG, dB, 1e-5f, dY, mean, rstd, "layernorm") &&
          !acn__cu_ln_bwd(G, R, D, dX, dG, mean, rstd, dR, gX, gG, gB, "layernorm"), "%s", acn__cu_msg(G));
    same("layernorm forward", dY, Y->data, R * D);
    same("layernorm dx", gX, X->grad, R * D);
    same("layernorm dgamma", gG, Gm->grad, D);
    same("layernorm dbeta", gB, Bt->grad, D);
    acn__cu_free(G, dX); acn__cu_free(G, dG); acn__cu_free(G, dB); acn__cu_free(G, dY); acn__cu_free(G, mean);
    acn__cu_free(G, rstd); acn__cu_free(G, dR); acn__cu_free(G, gX); acn__cu_free(G, gG); acn__cu_free(G, gB);
}

static void test_softmax(void)
{
    /* x (2, 5, 77), mask (2, 1, 77): one row of the mask per batch, as padding */
    enum { B = 2, T = 5, K = 77 };
    int sx[3] = {B, T, K}, sm[3] = {B, 1, K};
    static float x[B * T * K], m[B * K], Rw[B * T * K];
    acn_tensor *X, *Mk, *Y;
    acn__bcast bc;
    float *dX, *dM, *dY, *dR, *gX;
    size_t i;
    rnd(x, B * T * K, 5.0f);
    rnd(m, B * K, 1.0f);
    for (i = 0; i < K; i += 7) m[i] = -1e9f;
    rnd(Rw, B * T * K, 1.0f);
    acn_reset(C);
    X = leaf(3, sx, x);
    Mk = acn_input(C, 3, sm, m);
    Y = cpu_bwd(acn_softmax(C, X, Mk), Rw);
    acn__bcast_init(&bc, Y, X, Mk);
    dX = up(x, B * T * K); dM = up(m, B * K); dY = zeros_d(B * T * K); dR = up(Rw, B * T * K); gX = zeros_d(B * T * K);
    CHECK(!acn__cu_softmax(G, B * T, K, 1.0f, dX, dM, bc.n, bc.sb, dY, "softmax") &&
          !acn__cu_softmax_bwd(G, B * T, K, 1.0f, dY, dR, gX, 1, "softmax"), "%s", acn__cu_msg(G));
    same("softmax forward", dY, Y->data, B * T * K);
    same("softmax backward", gX, X->grad, B * T * K);
    acn__cu_free(G, dX); acn__cu_free(G, dM); acn__cu_free(G, dY); acn__cu_free(G, dR); acn__cu_free(G, gX);
}

static void test_xent(void)
{
    enum { R = 50, K = 10 };
    int s[2] = {R, K}, lab[R], i, soft;
    static float z[R * K], t[R * K];
    rnd(z, R * K, 4.0f);
    for (i = 0; i < R; i++) lab[i] = i % 7 == 3 ? -1 : i % K; /* some rows ignored */
    for (i = 0; i < R * K; i++) t[i] = (float)((i * 37) % 11) / 55.0f;
    for (soft = 0; soft < 2; soft++) {
        acn_tensor *Z, *Tg = NULL, *L;
        float *dZ, *dT = NULL, *out, *gZ, *gT = NULL, one = 1.0f, *dOne;
        double *rows;
        int *dLab = up_int(lab, R), valid = 0;
        void *rs = NULL;
        acn_reset(C);
        Z = leaf(2, s, z);
        if (soft) Tg = leaf(2, s, t); /* targets that take a gradient too (distillation) */
        L = soft ? acn_cross_entropy_soft(C, Z, Tg, 0.1f) : acn_cross_entropy(C, Z, lab, 0.1f, -1);
        acn_backward(C, L);
        for (i = 0; i < R; i++) valid += soft || lab[i] != -1;
        dZ = up(z, R * K);
        if (soft) {
            dT = up(t, R * K);
            gT = zeros_d(R * K);
        }
        out = zeros_d(1);
        gZ = zeros_d(R * K);
        dOne = up(&one, 1);
        acn__cu_alloc(G, &rs, R * sizeof(double), "test");
        rows = (double *)rs;
        CHECK(!acn__cu_xent(G, R, K, dZ, dLab, dT, -1, 0.1f, valid, rows, out, "xent") &&
              !acn__cu_xent_bwd(G, R, K, dZ, dLab, dT, -1, 0.1f, valid, dOne, gZ, gT, "xent"), "%s", acn__cu_msg(G));
        same(soft ? "soft cross-entropy loss" : "cross-entropy loss", out, L->data, 1);
        same(soft ? "soft cross-entropy dz" : "cross-entropy dz", gZ, Z->grad, R * K);
        if (soft) same("soft cross-entropy dtarget", gT, Tg->grad, R * K);
        acn__cu_free(G, dZ); acn__cu_free(G, dT); acn__cu_free(G, out); acn__cu_free(G, gZ);
        acn__cu_free(G, dOne); acn__cu_free(G, rs); acn__cu_free(G, dLab); acn__cu_free(G, gT);
    }
}

static void test_moves(void)
{
    /* transpose of axes 1 and 2 of (3, 4, 5): padded axes 2 and 3 */
    int s3[3] = {3, 4, 5}, n4[4] = {1, 3, 4, 5}, si[4] = {2, 3, 8, 8}, ids[6] = {4, 1, 4, 0, 2, 4}, st[2] = {5, 3};
    int so[2] = {2, 3};
    static float x[60], img[2 * 3 * 8 * 8], R[60], Rp[2 * 16 * 12], tab[15], Re[18];
    acn_tensor *X, *Y, *I, *P, *T, *E;
    float *dX, *dY, *dR, *gX, *dI, *dP, *dRp, *gI, *dTab, *dE, *dRe, *gTab;
    int *dIds;
    rnd(x, 60, 1.0f);
    rnd(R, 60, 1.0f);
    acn_reset(C);
    X = leaf(3, s3, x);
    Y = cpu_bwd(acn_transpose(C, X, 1, 2), R);
    dX = up(x, 60); dY = zeros_d(60); dR = up(R, 60); gX = zeros_d(60);
    CHECK(!acn__cu_transpose(G, n4, 2, 3, dX, dY, 0, "transpose"), "%s", acn__cu_msg(G));
    {   /* backward: the same swap of d, shaped as the output (1, 3, 5, 4) */
        int o4[4] = {1, 3, 5, 4};
        CHECK(!acn__cu_transpose(G, o4, 2, 3, dR, gX, 1, "transpose"), "%s", acn__cu_msg(G));
    }
    same("transpose forward", dY, Y->data, 60);
    same("transpose backward", gX, X->grad, 60);
    /* patches of 4 x 4 over (2, 3, 8, 8) */
    rnd(img, sizeof img / 4, 1.0f);
    rnd(Rp, sizeof Rp / 4, 1.0f);
    acn_reset(C);
    I = leaf(4, si, img);
    P = cpu_bwd(acn_patches(C, I, 4), Rp);
    dI = up(img, sizeof img / 4); dP = zeros_d(sizeof Rp / 4); dRp = up(Rp, sizeof Rp / 4); gI = zeros_d(sizeof img / 4);
    CHECK(!acn__cu_patches(G, 2, 3, 8, 8, 4, dI, dP, 0, "patches") &&
          !acn__cu_patches(G, 2, 3, 8, 8, 4, dRp, gI, 1, "patches"), "%s", acn__cu_msg(G));
    same("patches forward", dP, P->data, sizeof Rp / 4);
    same("patches backward", gI, I->grad, sizeof img / 4);
    /* embedding: table (5, 3), ids repeating (4 three times) */
    rnd(tab, 15, 1.0f);
    rnd(Re, 18, 1.0f);
    acn_reset(C);
    T = leaf(2, st, tab);
    E = cpu_bwd(acn_embedding(C, T, ids, 2, so), Re);
    dTab = up(tab, 15); dE = zeros_d(18); dRe = up(Re, 18); gTab = zeros_d(15); dIds = up_int(ids, 6);
    CHECK(!acn__cu_embed(G, 6, 3, dTab, dIds, dE, "embedding") && !acn__cu_embed_bwd(G, 6, 3, dRe, dIds, gTab, "embedding"),
          "%s", acn__cu_msg(G));
    same("embedding forward", dE, E->data, 18);
    same("embedding backward", gTab, T->grad, 15);
    acn__cu_free(G, dX); acn__cu_free(G, dY); acn__cu_free(G, dR); acn__cu_free(G, gX);
    acn__cu_free(G, dI); acn__cu_free(G, dP); acn__cu_free(G, dRp); acn__cu_free(G, gI);
    acn__cu_free(G, dTab); acn__cu_free(G, dE); acn__cu_free(G, dRe); acn__cu_free(G, gTab); acn__cu_free(G, dIds);
}

/* The device's dropout mask is the CPU's, draw for draw. */
static void test_dropout(void)
{
    enum { N = 5000 };
    int s = N;
    static float x[N];
    acn_tensor *X, *Y;
    uint64_t state;
    void *keep = NULL;
    float *dX, *dY;
    rnd(x, N, 1.0f);
    acn_reset(C);
    acn_set_train(C, 1);
    X = acn_input(C, 1, &s, x);
    state = acn_ctx_rng(C)->state;
    Y = acn_dropout(C, X, 0.3f);
    acn_set_train(C, 0);
    dX = up(x, N);
    dY = zeros_d(N);
    acn__cu_alloc(G, &keep, N, "test");
    CHECK(!acn__cu_dropout_mask(G, N, 0.3f, state, (unsigned char *)keep, "dropout") &&
          !acn__cu_mask_scale(G, N, (const unsigned char *)keep, 1.0f / 0.7f, dX, dY, 0, "dropout"), "%s",
          acn__cu_msg(G));
    {
        float *h = down(dY, N);
        CHECK(Y && !memcmp(h, Y->data, sizeof x), "dropout: the same kept values, bit for bit");
        free(h);
    }
    acn__cu_free(G, dX); acn__cu_free(G, dY); acn__cu_free(G, keep);
}

/* AdamW and clipping over a parameter block: 5 steps against acn_adamw_step
 * and acn_clip_grad_norm, with one parameter out of the weight decay. */
static void test_adamw_clip(void)
{
    acn_ctx *P;
    acn_adamw opt;
    int s1[2] = {64, 33}, s2 = 17, step, i;
    acn_tensor *W, *b;
    size_t n;
    float *dw, *dg, *dm, *dv, *hp, *norm_d, norm_cpu = 0.0f;
    unsigned char *nodecay_h;
    void *nd = NULL, *scratch = NULL;
    static float g[64 * 33 + 64];
    if (acn_ctx_new(&P, NULL)) return;
    W = acn_param(P, "w", 2, s1);
    b = acn_param(P, "b", 1, &s2);
    acn_param_set_decay(b, 0);
    acn_init_normal(P, W, 0.0f, 1.0f);
    acn_init_normal(P, b, 0.0f, 1.0f);
    acn_adamw_init(P, &opt, 0.9f, 0.999f, 1e-8f, 0.1f);
    n = opt.n;
    nodecay_h = (unsigned char *)calloc(n, 1);
    for (i = 0; i < (int)b->numel; i++) nodecay_h[b->offset + i] = 1;
    dw = up(acn__pblock(P), n); dm = zeros_d(n); dv = zeros_d(n); dg = zeros_d(n); hp = zeros_d(3); norm_d = zeros_d(1);
    acn__cu_alloc(G, &nd, n, "test");
    acn__cu_copy(G, nd, nodecay_h, n, ACN__CU_H2D, "test");
    acn__cu_alloc(G, &scratch, acn__cu_clip_scratch_bytes(), "test");
    for (step = 1; step <= 5; step++) {
        float lr = 0.01f * step, h[3];
        double bc1 = 1.0 - pow(0.9, step), bc2 = 1.0 - pow(0.999, step);
        rnd(g, n, 3.0f);
        memcpy(acn__gblock(P), g, n * sizeof(float));
        for (i = 0; i < (int)n; i++) /* the padding between parameters stays zero */
            if (!(i < (int)W->numel || (i >= (int)b->offset && i < (int)(b->offset + b->numel)))) acn__gblock(P)[i] = g[i] = 0;
        acn__cu_copy(G, dg, g, n * sizeof(float), ACN__CU_H2D, "test");
        acn_clip_grad_norm(P, 10.0f, &norm_cpu);
        acn_adamw_step(P, &opt, lr);
        h[0] = (float)(lr / bc1);
        h[1] = (float)sqrt(bc2);
        h[2] = (float)(1.0 - (double)lr * 0.1);
        acn__cu_copy(G, hp, h, sizeof h, ACN__CU_H2D, "test");
        CHECK(!acn__cu_clip(G, n, dg, 10.0f, scratch, norm_d, "clip") &&
              !acn__cu_adamw(G, n, dw, dg, dm, dv, (const unsigned char *)nd, hp, 0.9f, 0.999f, 1e-8f, "adamw"),
              "%s", acn__cu_msg(G));
        same("clip: the norm", norm_d, &norm_cpu, 1);
        same("clip: the clipped gradient", dg, acn__gblock(P), n);
    }
    same("adamw: the parameters after 5 steps", dw, acn__pblock(P), n);
    same("adamw: the first moments", dm, opt.m, n);
    same("adamw: the second moments", dv, opt.v, n);
    acn__cu_free(G, dw); acn__cu_free(G, dm); acn__cu_free(G, dv); acn__cu_free(G, dg); acn__cu_free(G, hp);
    acn__cu_free(G, norm_d); acn__cu_free(G, nd); acn__cu_free(G, scratch);
    free(nodecay_h);
    acn_adamw_free(&opt);
    acn_ctx_free(P);
}

/* add_n with 70 inputs: two launches, summed in order as acn_add_n */
static void test_add_n(void)
{
    enum { K = 70, N = 300 };
    static float x[K][N];
    acn_tensor *xs[K], *Y;
    const float *dx[K];
    float *dY;
    int s = N, k;
    acn_reset(C);
    for (k = 0; k < K; k++) {
        rnd(x[k], N, 1.0f);
        xs[k] = acn_input(C, 1, &s, x[k]);
        dx[k] = up(x[k], N);
    }
    Y = acn_add_n(C, xs, K);
    dY = zeros_d(N);
    CHECK(!acn__cu_add_n(G, dx, K, N, dY, "add_n"), "%s", acn__cu_msg(G));
    {
        float *h = down(dY, N);
        CHECK(Y && !memcmp(h, Y->data, N * sizeof(float)), "add_n: the CPU's sum, bit for bit (the same order)");
        free(h);
    }
    for (k = 0; k < K; k++) acn__cu_free(G, (void *)dx[k]);
    acn__cu_free(G, dY);
}


/* ---- the device context --------------------------------------------------------- */
static acn_ctx *new_ctx(int device)
{
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_ctx *c = NULL;
    char why[512];
    cfg.device = device;
    cfg.arena_bytes = (size_t)64 << 20;
    if (acn_ctx_new_ex(&c, &cfg, why, sizeof why)) {
        fprintf(stderr, "context on %s: %s\n", device ? "the GPU" : "the CPU", why);
        exit(1);
    }
    acn_set_threads(c, 1);
    return c;
}
/* t on both contexts, compared through acn_read (values) or acn_read_grad */
static void agree(const char *what, acn_ctx *cg, acn_tensor *g, acn_ctx *cc, acn_tensor *c, int grad)
{
    float *a = (float *)malloc(c->numel * sizeof(float)), *b = (float *)malloc(c->numel * sizeof(float));
    double e;
    int rg = grad ? acn_read_grad(cg, g, a) : acn_read(cg, g, a), rc = grad ? acn_read_grad(cc, c, b) : acn_read(cc, c, b);
    e = rg || rc ? 1.0 : t_relerr(a, b, c->numel);
    CHECK(!rg && !rc && e < TOL, "%s: relative error %.3g (GPU: %s; CPU: %s)", what, e, acn_error(cg), acn_error(cc));
    free(a);
    free(b);
}

/* Every parameter's gradient on both contexts. Each is held to 1e-5 of the
 * larger of its own norm and 1e-2 of the whole gradient's norm: a gradient
 * that is zero in exact arithmetic (the key bias of attention, whose shift
 * softmax ignores; the bias of the Mixer's token-mixing output, which the
 * LayerNorm after it removes) is rounding noise on both devices, and is held
 * to rounding, not to its own noise. */
static void grads_agree(const char *model, int wiring, acn_ctx *cg, acn_ctx *cc)
{
    int np, i;
    acn_tensor *pg = acn_params(cg, &np), *pc = acn_params(cc, &np);
    double total = 0.0;
    for (i = 0; i < np; i++) {
        double n = acn_grad_norm(cc, &pc[i]);
        total += n * n;
    }
    total = sqrt(total);
    for (i = 0; i < np; i++) {
        size_t n = pc[i].numel, j;
        float *a = (float *)malloc(n * sizeof(float)), *b = (float *)malloc(n * sizeof(float));
        double d = 0.0, own = 0.0, scale;
        int ok = a && b && !acn_read_grad(cg, &pg[i], a) && !acn_read_grad(cc, &pc[i], b);
        for (j = 0; ok && j < n; j++) {
            d += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
            own += (double)b[j] * b[j];
        }
        scale = sqrt(own) > 1e-2 * total ? sqrt(own) : 1e-2 * total;
        CHECK(ok && sqrt(d) <= TOL * scale, "%s wiring %d: the gradient of %s: error %.3g of %.3g (its norm %.3g)",
              model, wiring, pc[i].name, sqrt(d), scale, sqrt(own));
        CHECK(fabs(acn_grad_norm(cg, &pg[i]) - sqrt(own)) <= TOL * scale, "%s wiring %d: acn_grad_norm of %s: %.9g, "
              "%.9g on the CPU", model, wiring, pc[i].name, acn_grad_norm(cg, &pg[i]), sqrt(own));
        free(a);
        free(b);
    }
}
/* Parameters whose gradient is zero in exact arithmetic (see grads_agree):
 * AdamW turns their rounding noise into steps of the learning rate's size,
 * so after steps they are compared with nothing. */
static int zero_gradient(const char *name)
{
    return strstr(name, "attn.k.bias") || strstr(name, "attn.qkv.bias") || strstr(name, "tok.fc2.bias");
}
/* The weights after AdamW steps: AdamW divides each step by the root of the
 * gradient's second moment, which makes small differences of the gradient
 * count more than in the forward and backward passes: where an element's
 * gradients nearly cancel in the first moment, a rounding difference of the
 * gradient becomes a visible part of its step (seen: one element of BERT's
 * token embedding, ACN wiring, 0.6% of a step apart, 1.2e-4 of the tensor
 * when the CPU's narrow product edges moved from scalar loops to the FMA
 * kernel). 1e-3 per tensor: a wrong AdamW or a wrong gradient moves the
 * weights by whole steps (1e-2 here), far more. */
#define TOL_STEPS 1e-3
static void weights_agree(const char *model, int wiring, acn_ctx *cg, acn_ctx *cc)
{
    int np, i;
    acn_tensor *pg = acn_params(cg, &np), *pc = acn_params(cc, &np);
    for (i = 0; i < np; i++) {
        float *a = (float *)malloc(pc[i].numel * sizeof(float)), *b = (float *)malloc(pc[i].numel * sizeof(float));
        double e = 1.0;
        if (zero_gradient(pc[i].name)) { free(a); free(b); continue; }
        if (a && b && !acn_read(cg, &pg[i], a) && !acn_read(cc, &pc[i], b)) e = t_relerr(a, b, pc[i].numel);
        CHECK(e < TOL_STEPS, "%s wiring %d: %s after 3 AdamW steps: relative error %.3g", model, wiring, pc[i].name, e);
        free(a);
        free(b);
    }
}

/* A checkpoint pair written from one device loads on the other: the
 * weights and AdamW's moments arrive bit for bit, both ways. */
static void same_bits(const char *what, acn_ctx *ca, const float *a, acn_ctx *cb, const float *b, size_t n)
{
    float *ha = ACN__GPU(ca) ? acn__host_copy(ca, a, n, "test") : (float *)a;
    float *hb = ACN__GPU(cb) ? acn__host_copy(cb, b, n, "test") : (float *)b;
    CHECK(ha && hb && !memcmp(ha, hb, n * sizeof(float)), "%s: not the same bits", what);
    if (ha != a) free(ha);
    if (hb != b) free(hb);
}
static void checkpoint_both_ways(acn_ctx *const *ctx, const acn_mlp *m, const acn_adamw *opt, const acn_mlp_config *c)
{
    int from;
    for (from = 0; from < 2; from++) {
        acn_ctx *to = new_ctx(from ? ACN_DEVICE_CPU : ACN_DEVICE_CUDA);
        acn_mlp m2;
        acn_adamw o2;
        int64_t step = -1;
        char what[96];
        CHECK(!acn_save_checkpoint(ctx[from], "build/test_cuda_ckpt.safetensors", "build/test_cuda_ckpt.state.safetensors",
                                   &opt[from], NULL, 3, NULL, 0), "save on the %s: %s", from ? "GPU" : "CPU",
              acn_error(ctx[from]));
        CHECK(!acn_mlp_build(to, &m2, c) && !acn_adamw_init(to, &o2, 0.9f, 0.999f, 1e-8f, 0.01f) &&
                  !acn_load_checkpoint(to, "build/test_cuda_ckpt.safetensors", "build/test_cuda_ckpt.state.safetensors",
                                       &o2, NULL, &step) && step == 3 && o2.step == opt[from].step,
              "load on the %s: %s", from ? "CPU" : "GPU", acn_error(to));
        snprintf(what, sizeof what, "checkpoint from the %s: the weights", from ? "GPU" : "CPU");
        same_bits(what, to, acn__pblock(to), ctx[from], acn__pblock(ctx[from]), acn_param_numel(to) ? o2.n : 0);
        snprintf(what, sizeof what, "checkpoint from the %s: AdamW's moments", from ? "GPU" : "CPU");
        same_bits(what, to, o2.m, ctx[from], opt[from].m, 2 * o2.n);
        (void)m;
        acn_adamw_free(&o2);
        acn_ctx_free(to);
    }
    remove("build/test_cuda_ckpt.safetensors");
    remove("build/test_cuda_ckpt.state.safetensors");
}

/* The MLP in every wiring, with LayerNorm in its blocks and head: three
 * steps of cross-entropy with smoothing, clipping and AdamW on both
 * contexts; the loss and the clipped norm of each step, every probe, and
 * every weight after the steps must agree. */
static void test_context_mlp(void)
{
    int wiring, step, k, np, i, xs[2] = {16, 64};
    static float x[16 * 64];
    int y[16];
    for (i = 0; i < 16 * 64; i++) x[i] = (float)((i * 7919) % 97) / 48.0f - 1.0f;
    for (i = 0; i < 16; i++) y[i] = (i * 3) % 10;
    for (wiring = ACN_PLAIN; wiring <= ACN_ACN_DETACH; wiring++) {
        acn_ctx *ctx[2];
        acn_mlp m[2];
        acn_adamw opt[2];
        acn_mlp_config c = acn_mlp_defaults();
        acn_tensor *probes[2][8], *pg, *pc;
        char what[96];
        c.depth = 4;
        c.width = 32;
        c.wiring = wiring;
        for (k = 0; k < 2; k++) {
            ctx[k] = new_ctx(k ? ACN_DEVICE_CUDA : ACN_DEVICE_CPU);
            CHECK(!acn_mlp_build(ctx[k], &m[k], &c) && !acn_adamw_init(ctx[k], &opt[k], 0.9f, 0.999f, 1e-8f, 0.01f),
                  "build: %s", acn_error(ctx[k]));
        }
        CHECK(acn_device(ctx[1]) == ACN_DEVICE_CUDA && acn_device(ctx[0]) == ACN_DEVICE_CPU, "acn_device");
        for (step = 0; step < 3; step++) {
            float loss[2], norm[2];
            acn_tensor *lo_[2];
            for (k = 0; k < 2; k++) {
                acn_tensor *lo;
                acn_reset(ctx[k]);
                lo = lo_[k] = acn_cross_entropy(ctx[k], acn_mlp_forward_ex(ctx[k], &m[k], acn_input(ctx[k], 2, xs, x), -1,
                                                                  probes[k], 8), y, 0.1f, -1);
                acn_zero_grad(ctx[k]);
                acn_backward(ctx[k], lo);
            }
            if (step == 0) grads_agree("MLP", wiring, ctx[1], ctx[0]);
            for (k = 0; k < 2; k++) {
                acn_clip_grad_norm(ctx[k], 0.5f, &norm[k]);
                loss[k] = acn_item(ctx[k], lo_[k]);
                acn_adamw_step(ctx[k], &opt[k], 1e-2f);
                CHECK(acn_status_of(ctx[k]) == ACN_OK, "wiring %d step %d on the %s: %s", wiring, step,
                      k ? "GPU" : "CPU", acn_error(ctx[k]));
            }
            snprintf(what, sizeof what, "MLP wiring %d step %d: the loss", wiring, step);
            CHECK(fabsf(loss[1] - loss[0]) <= TOL * fabsf(loss[0]), "%s: %.9g vs %.9g", what, loss[1], loss[0]);
            CHECK(fabsf(norm[1] - norm[0]) <= TOL * fabsf(norm[0]), "MLP wiring %d step %d: the norm %.9g vs %.9g",
                  wiring, step, norm[1], norm[0]);
            for (i = 0; i <= c.depth && step == 2; i++) {
                snprintf(what, sizeof what, "MLP wiring %d: the probe after %d blocks", wiring, i);
                agree(what, ctx[1], probes[1][i], ctx[0], probes[0][i], 0);
            }
        }
        weights_agree("MLP", wiring, ctx[1], ctx[0]);
        (void)pg; (void)pc; (void)np;
        if (wiring == ACN_ACN) checkpoint_both_ways(ctx, m, opt, &c);
        for (k = 0; k < 2; k++) {
            acn_adamw_free(&opt[k]);
            acn_ctx_free(ctx[k]);
        }
    }
}

/* One graph of the other ops that run on a GPU context, on both contexts:
 * every leaf's gradient must agree. */
static acn_tensor *graph(acn_ctx *c, acn_tensor **leaves)
{
    int s_a[3] = {2, 6, 8}, s_w[2] = {8, 5}, s_b[2] = {6, 1}, s_m[3] = {2, 1, 5}, s_t[2] = {12, 5}, i;
    static float va[96], vw[40], vb[6], vm[10], vt[60];
    int lab[12];
    acn_tensor *a, *w, *b, *m, *t, *h, *p, *u, *v, *parts[4];
    for (i = 0; i < 96; i++) va[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    for (i = 0; i < 40; i++) vw[i] = (float)((i * 11) % 17) / 8.0f - 1.0f;
    for (i = 0; i < 6; i++) vb[i] = 0.25f * (float)i - 0.5f;
    for (i = 0; i < 10; i++) vm[i] = i == 3 ? -1e9f : 0.1f * (float)i;
    for (i = 0; i < 60; i++) vt[i] = (float)((i * 13) % 7) / 7.0f;
    for (i = 0; i < 12; i++) lab[i] = i % 5 == 2 ? -1 : i % 5;
    a = leaves[0] = acn_new(c, 3, s_a, ACN_F_GRAD);
    w = leaves[1] = acn_new(c, 2, s_w, ACN_F_GRAD);
    b = leaves[2] = acn_new(c, 2, s_b, ACN_F_GRAD);
    m = leaves[3] = acn_new(c, 3, s_m, ACN_F_GRAD);
    t = leaves[4] = acn_new(c, 2, s_t, ACN_F_GRAD);
    acn_write(c, a, va); acn_write(c, w, vw); acn_write(c, b, vb); acn_write(c, m, vm); acn_write(c, t, vt);
    h = acn_matmul(c, acn_tanh(c, acn_sub(c, acn_mul(c, a, b), acn_scale(c, b, 0.5f))), w, 0, 0); /* (2, 6, 5) */
    h = acn_transpose(c, acn_relu(c, acn_transpose(c, h, 1, 2)), 1, 2);
    p = acn_softmax(c, acn_layernorm(c, h, NULL, NULL, 1e-5f), m);                                  /* mask (2, 1, 5) */
    u = acn_matmul(c, a, acn_reshape(c, w, 2, s_w), 0, 0);                                        /* shared b */
    v = acn_matmul(c, p, h, 1, 0);                                                                /* (2, 5, 5), a^T */
    parts[0] = acn_sum(c, acn_mean(c, acn_gelu_ex(c, u, ACN_GELU_TANH), 1), ACN_AXIS_ALL);
    parts[1] = acn_mean(c, acn_gelu(c, v), ACN_AXIS_ALL);
    parts[2] = acn_add(c, acn_cross_entropy(c, acn_reshape(c, p, 2, s_t), lab, 0.2f, -1),
                       acn_cross_entropy_soft(c, acn_reshape(c, h, 2, s_t), acn_dropout(c, t, 0.25f), 0.1f));
    parts[3] = acn_mean(c, acn_linear_add_relu(c, a, acn_transpose(c, w, 0, 1), NULL, h), ACN_AXIS_ALL); /* h: skip */
    return acn_add_n(c, parts, 4);
}
static void custom_fwd(acn_tensor *const *in, int n_in, acn_tensor *out, void *user)
{
    (void)in; (void)n_in; (void)out; (void)user;
}
static void custom_bwd(acn_tensor *const *in, int n_in, acn_tensor *out, void *user)
{
    (void)in; (void)n_in; (void)out; (void)user;
}
static void test_context_graph(void)
{
    acn_ctx *ctx[2];
    acn_tensor *leaves[2][5], *lo[2];
    const char *names[5] = {"a", "b (broadcast)", "w (shared by a batch)", "the mask", "the soft targets"};
    int k, i, map[5] = {0, 2, 1, 3, 4};
    for (k = 0; k < 2; k++) {
        ctx[k] = new_ctx(k ? ACN_DEVICE_CUDA : ACN_DEVICE_CPU);
        acn_set_train(ctx[k], 1);
        lo[k] = graph(ctx[k], leaves[k]);
        CHECK(lo[k] && acn_backward(ctx[k], lo[k]) == ACN_OK, "graph on the %s: %s", k ? "GPU" : "CPU", acn_error(ctx[k]));
    }
    if (lo[0] && lo[1]) {
        agree("graph: the loss", ctx[1], lo[1], ctx[0], lo[0], 0);
        for (i = 0; i < 5; i++) {
            char what[64];
            snprintf(what, sizeof what, "graph: the gradient of %s", names[i]);
            agree(what, ctx[1], leaves[1][map[i]], ctx[0], leaves[0][map[i]], 1);
        }
    }
    /* what does not run on a GPU context yet says so */
    {
        int s[1] = {4};
        acn_tensor *q = acn_new(ctx[1], 1, s, 0);
        CHECK(!acn_custom(ctx[1], "mine", &q, 1, 1, s, custom_fwd, custom_bwd, NULL) && acn_status_of(ctx[1]) == ACN_ERR_STATE &&
                  strstr(acn_error(ctx[1]), "custom: this op does not run on a GPU context yet"),
              "a custom op on a GPU context: %s", acn_error(ctx[1]));
        acn_clear_error(ctx[1]);
        acn_set_check_finite(ctx[1], 1);
        CHECK(acn_status_of(ctx[1]) == ACN_ERR_STATE, "check_finite on a GPU context: %s", acn_error(ctx[1]));
        acn_clear_error(ctx[1]);
    }
    {   /* and what runs on a CPU context only, each refused with the same sentence */
        acn_mlp mm;
        acn_mlp_config mc = acn_mlp_defaults();
        acn_sgd sgd;
        acn_si si;
        acn_pruning pr;
        acn_exit_rule rule;
        acn_tensor *W;
        float logits[10];
        int blocks[1], xs[2] = {1, 64};
        static float x1[64];
        acn_status got[4];
        mc.depth = 2;
        mc.width = 16;
        CHECK(!acn_mlp_build(ctx[1], &mm, &mc), "build: %s", acn_error(ctx[1]));
        W = mm.blocks[0].fc.weight;
        memset(&rule, 0, sizeof rule);
        memset(&pr, 0, sizeof pr);
        rule.kind = ACN_EXIT_CONFIDENCE;
        rule.threshold = 0.5f;
        got[0] = acn_sgd_init(ctx[1], &sgd, 0.9f, 0.0f, 0.0f, 0);
        acn_clear_error(ctx[1]);
        got[1] = acn_si_init(ctx[1], &si, 1.0f, 1e-3f);
        CHECK(strstr(acn_error(ctx[1]), "si_init runs on a CPU context only for now"), "si_init: %s", acn_error(ctx[1]));
        acn_clear_error(ctx[1]);
        got[2] = acn_prune(ctx[1], &pr, &W, 1, 0.5f, ACN_PRUNE_MAGNITUDE);
        acn_clear_error(ctx[1]);
        got[3] = acn_mlp_anytime(ctx[1], &mm, acn_input(ctx[1], 2, xs, x1), &rule, logits, blocks);
        CHECK(got[0] == ACN_ERR_STATE && got[1] == ACN_ERR_STATE && got[2] == ACN_ERR_STATE && got[3] == ACN_ERR_STATE,
              "sgd %d, si %d, prune %d, anytime %d: each ACN_ERR_STATE (%s)", got[0], got[1], got[2], got[3],
              acn_error(ctx[1]));
        acn_clear_error(ctx[1]);
    }
    for (k = 0; k < 2; k++) acn_ctx_free(ctx[k]);
}
/* The paper's models on both contexts: the Mixer (its fused ops), the ViT
 * (attention on one fused projection, concat, patches) and BERT (embedding,
 * padding mask, dropout), each in every wiring; three training steps, as
 * for the MLP. */
enum { M_MIXER, M_VIT, M_BERT };
typedef struct model_run { int kind; acn_mixer mixer; acn_vit vit; acn_bert bert; } model_run;
static const char *model_name[3] = {"Mixer", "ViT", "BERT"};
static acn_status model_build(acn_ctx *c, model_run *m, int kind, int wiring)
{
    m->kind = kind;
    if (kind == M_MIXER) {
        acn_mixer_config cfg = t_small_mixer();
        cfg.wiring = wiring;
        return acn_mixer_build(c, &m->mixer, &cfg);
    }
    if (kind == M_VIT) {
        acn_vit_config cfg = t_small_vit();
        cfg.wiring = wiring;
        return acn_vit_build(c, &m->vit, &cfg);
    } else {
        acn_bert_config cfg = t_small_bert();
        cfg.classes = 5;
        cfg.dropout = 0.1f;
        cfg.wiring = wiring;
        return acn_bert_build(c, &m->bert, &cfg);
    }
}
static acn_tensor *model_loss(acn_ctx *c, model_run *m, acn_tensor **probes, int np)
{
    static float img[4 * 3 * 8 * 8];
    static const int tok[4 * 6] = {1, 5, 9, 2, 0, 0, 1, 7, 7, 3, 8, 2, 1, 4, 2, 0, 0, 0, 1, 29, 11, 12, 13, 2};
    static const int msk[4 * 6] = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    static const int lab[4] = {3, 0, 4, 1};
    int s[4] = {4, 3, 8, 8}, i;
    acn_tensor *logits;
    for (i = 0; i < 4 * 3 * 8 * 8; i++) img[i] = (float)((i * 7919) % 101) / 50.0f - 1.0f;
    if (m->kind == M_MIXER) logits = acn_mixer_forward_ex(c, &m->mixer, acn_input(c, 4, s, img), -1, probes, np);
    else if (m->kind == M_VIT) logits = acn_vit_forward_ex(c, &m->vit, acn_input(c, 4, s, img), -1, probes, np);
    else logits = acn_bert_forward_ex(c, &m->bert, tok, msk, 4, 6, ACN_BERT_CLS, -1, probes, np);
    return acn_cross_entropy(c, logits, lab, 0.1f, -1);
}
static void test_context_models(void)
{
    int kind, wiring, step, k, np, i;
    for (kind = M_MIXER; kind <= M_BERT; kind++)
        for (wiring = ACN_PLAIN; wiring <= ACN_ACN_DETACH; wiring++) {
            acn_ctx *ctx[2];
            model_run *m[2];
            acn_adamw opt[2];
            acn_tensor *probes[2][8], *pg, *pc;
            char what[128];
            for (k = 0; k < 2; k++) {
                ctx[k] = new_ctx(k ? ACN_DEVICE_CUDA : ACN_DEVICE_CPU);
                acn_set_train(ctx[k], 1);
                m[k] = (model_run *)calloc(1, sizeof(model_run));
                CHECK(m[k] && !model_build(ctx[k], m[k], kind, wiring) &&
                          !acn_adamw_init(ctx[k], &opt[k], 0.9f, 0.999f, 1e-8f, 0.05f),
                      "%s: build: %s", model_name[kind], acn_error(ctx[k]));
            }
            for (step = 0; step < 3 && !acn_status_of(ctx[0]) && !acn_status_of(ctx[1]); step++) {
                float loss[2], norm[2];
                acn_tensor *lo[2];
                for (k = 0; k < 2; k++) {
                    acn_reset(ctx[k]);
                    lo[k] = model_loss(ctx[k], m[k], probes[k], 8);
                    acn_zero_grad(ctx[k]);
                    acn_backward(ctx[k], lo[k]);
                }
                if (step == 0) grads_agree(model_name[kind], wiring, ctx[1], ctx[0]);
                for (k = 0; k < 2; k++) {
                    acn_clip_grad_norm(ctx[k], 0.5f, &norm[k]);
                    loss[k] = acn_item(ctx[k], lo[k]);
                    acn_adamw_step(ctx[k], &opt[k], 1e-2f);
                    CHECK(acn_status_of(ctx[k]) == ACN_OK, "%s wiring %d step %d on the %s: %s", model_name[kind],
                          wiring, step, k ? "GPU" : "CPU", acn_error(ctx[k]));
                }
                CHECK(fabsf(loss[1] - loss[0]) <= TOL * fabsf(loss[0]) && fabsf(norm[1] - norm[0]) <= TOL * fabsf(norm[0]),
                      "%s wiring %d step %d: loss %.9g vs %.9g, norm %.9g vs %.9g", model_name[kind], wiring, step,
                      loss[1], loss[0], norm[1], norm[0]);
                for (i = 0; i <= 3 && step == 2; i++) {
                    snprintf(what, sizeof what, "%s wiring %d: the probe after %d blocks", model_name[kind], wiring, i);
                    agree(what, ctx[1], probes[1][i], ctx[0], probes[0][i], 0);
                }
            }
            weights_agree(model_name[kind], wiring, ctx[1], ctx[0]);
            (void)pg; (void)pc; (void)np;
            for (k = 0; k < 2; k++) {
                acn_adamw_free(&opt[k]);
                acn_ctx_free(ctx[k]);
                free(m[k]);
            }
        }
}

/* acn_param_set_decay after acn_adamw_init takes effect on both devices;
 * acn_stats reports the device arena; acn_sync waits and reports OK. */
static void test_context_decay_stats(void)
{
    acn_ctx *ctx[2];
    acn_mlp m[2];
    acn_adamw opt[2];
    acn_mlp_config c = acn_mlp_defaults();
    acn_stats st[2];
    int k, xs[2] = {4, 64}, y[4] = {1, 2, 3, 4};
    static float x[4 * 64];
    for (k = 0; k < 4 * 64; k++) x[k] = (float)(k % 13) / 6.0f - 1.0f;
    c.depth = 2;
    c.width = 16;
    for (k = 0; k < 2; k++) {
        acn_tensor *lo;
        ctx[k] = new_ctx(k ? ACN_DEVICE_CUDA : ACN_DEVICE_CPU);
        acn_mlp_build(ctx[k], &m[k], &c);
        acn_adamw_init(ctx[k], &opt[k], 0.9f, 0.999f, 1e-8f, 0.5f);
        acn_param_set_decay(m[k].blocks[0].fc.weight, 0); /* after the optimizer was made */
        acn_reset(ctx[k]);
        lo = acn_cross_entropy(ctx[k], acn_mlp_forward(ctx[k], &m[k], acn_input(ctx[k], 2, xs, x), -1, NULL), y, 0.0f, -1);
        acn_zero_grad(ctx[k]);
        acn_backward(ctx[k], lo);
        acn_adamw_step(ctx[k], &opt[k], 0.1f);
        CHECK(acn_sync(ctx[k]) == ACN_OK, "sync: %s", acn_error(ctx[k]));
        if (k) CHECK(acn_set_tf32(ctx[k], 1) == ACN_OK && acn_set_tf32(ctx[k], 0) == ACN_OK, "set_tf32 on a GPU: %s",
                     acn_error(ctx[k]));
        acn_stats_get(ctx[k], &st[k]);
    }
    weights_agree("MLP, a parameter out of weight decay after adamw_init,", ACN_ACN, ctx[1], ctx[0]);
    CHECK(st[1].dev_arena_peak > 0 && st[1].dev_arena_bytes == (size_t)64 << 20 && st[0].dev_arena_peak == 0 &&
              st[0].dev_arena_bytes == 0, "acn_stats: the device arena (GPU %zu of %zu, CPU %zu)", st[1].dev_arena_peak,
          st[1].dev_arena_bytes, st[0].dev_arena_peak);
    for (k = 0; k < 2; k++) {
        acn_adamw_free(&opt[k]);
        acn_ctx_free(ctx[k]);
    }
}

/* Recomputed outputs (ACN_RECOMPUTE: their values live in scratch slots of
 * the device arena and are made again when needed) and arena marks on a GPU
 * context: the same values and gradients as on the CPU; a rewind frees the
 * device arena back to the mark. */
static void test_context_recompute(void)
{
    acn_ctx *ctx[2];
    int k, s[2] = {8, 32}, i;
    static float v[256];
    for (i = 0; i < 256; i++) v[i] = (float)((i * 29) % 31) / 15.0f - 1.0f;
    for (k = 0; k < 2; k++) ctx[k] = new_ctx(k ? ACN_DEVICE_CUDA : ACN_DEVICE_CPU);
    {
        acn_tensor *x[2], *y[2], *l[2];
        acn_stats st0, st1;
        acn_mark mk;
        for (k = 0; k < 2; k++) {
            acn_reset(ctx[k]);
            x[k] = acn_new(ctx[k], 2, s, ACN_F_GRAD);
            acn_write(ctx[k], x[k], v);
            y[k] = acn_gelu_ex(ctx[k], acn_layernorm_ex(ctx[k], x[k], NULL, NULL, 1e-5f, ACN_RECOMPUTE), ACN_RECOMPUTE);
            l[k] = acn_sum(ctx[k], acn_mul(ctx[k], y[k], acn_tanh(ctx[k], y[k])), ACN_AXIS_ALL);
            CHECK(l[k] && acn_backward(ctx[k], l[k]) == ACN_OK, "recompute on the %s: %s", k ? "GPU" : "CPU",
                  acn_error(ctx[k]));
        }
        agree("recomputed GELU of a recomputed LayerNorm: the output", ctx[1], y[1], ctx[0], y[0], 0);
        agree("recomputed GELU of a recomputed LayerNorm: the gradient", ctx[1], x[1], ctx[0], x[0], 1);
        acn_stats_get(ctx[1], &st0);
        mk = acn_mark_get(ctx[1]);
        for (i = 0; i < 3; i++) acn_relu(ctx[1], x[1]);
        acn_mark_rewind(ctx[1], mk);
        acn_stats_get(ctx[1], &st1);
        CHECK(st1.dev_arena_used == st0.dev_arena_used && acn_status_of(ctx[1]) == ACN_OK, "rewind: the device arena back at %zu (is %zu): %s",
              st0.dev_arena_used, st1.dev_arena_used, acn_error(ctx[1]));
        agree("after a rewind: the recomputed output again", ctx[1], y[1], ctx[0], y[0], 0);
    }
    for (k = 0; k < 2; k++) acn_ctx_free(ctx[k]);
}

/* An exact resume on a GPU context: two steps, a checkpoint, two more;
 * a fresh GPU context loads the checkpoint and takes the same two steps:
 * the weights must be the same bits (the device's sums run in a fixed
 * order, and the generator's state travels in the checkpoint). BERT with
 * dropout, so the generator matters. */
static void gpu_steps(acn_ctx *c, model_run *m, acn_adamw *opt, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        acn_tensor *lo;
        acn_reset(c);
        lo = model_loss(c, m, NULL, 0);
        acn_zero_grad(c);
        acn_backward(c, lo);
        acn_clip_grad_norm(c, 0.5f, NULL);
        acn_adamw_step(c, opt, 1e-2f);
    }
}
static void test_context_resume(void)
{
    acn_ctx *a = new_ctx(ACN_DEVICE_CUDA), *b = new_ctx(ACN_DEVICE_CUDA);
    model_run *ma = (model_run *)calloc(1, sizeof(model_run)), *mb = (model_run *)calloc(1, sizeof(model_run));
    acn_adamw oa, ob;
    int64_t step = 0;
    acn_set_train(a, 1);
    acn_set_train(b, 1);
    model_build(a, ma, M_BERT, ACN_ACN);
    model_build(b, mb, M_BERT, ACN_ACN);
    acn_adamw_init(a, &oa, 0.9f, 0.999f, 1e-8f, 0.05f);
    acn_adamw_init(b, &ob, 0.9f, 0.999f, 1e-8f, 0.05f);
    gpu_steps(a, ma, &oa, 2);
    CHECK(!acn_save_checkpoint(a, "build/test_cuda_resume.safetensors", "build/test_cuda_resume.state.safetensors", &oa,
                               NULL, 2, NULL, 0), "save: %s", acn_error(a));
    gpu_steps(a, ma, &oa, 2);
    CHECK(!acn_load_checkpoint(b, "build/test_cuda_resume.safetensors", "build/test_cuda_resume.state.safetensors", &ob,
                               NULL, &step) && step == 2, "load: %s", acn_error(b));
    gpu_steps(b, mb, &ob, 2);
    CHECK(acn_status_of(a) == ACN_OK && acn_status_of(b) == ACN_OK, "%s / %s", acn_error(a), acn_error(b));
    same_bits("a resumed GPU run: the weights after 2 + 2 steps", b, acn__pblock(b), a, acn__pblock(a), oa.n);
    same_bits("a resumed GPU run: AdamW's moments", b, ob.m, a, oa.m, 2 * oa.n);
    remove("build/test_cuda_resume.safetensors");
    remove("build/test_cuda_resume.state.safetensors");
    acn_adamw_free(&oa);
    acn_adamw_free(&ob);
    acn_ctx_free(a);
    acn_ctx_free(b);
    free(ma);
    free(mb);
}

int main(void)
{
    char why[512];
    int count = 0;
    if (acn__cu_devices(&count, why, sizeof why) || count < 1) {
        printf("no CUDA device: skipped (%s)\n", count < 1 && !why[0] ? "the driver reports none" : why);
        return 0;
    }
    if (acn__cu_open(&G, 0, why, sizeof why)) {
        fprintf(stderr, "cuda: %s\n", why);
        return 1;
    }
    if (acn_ctx_new(&C, NULL)) return 1;
    acn_set_threads(C, 1);
    printf("cuda: %s\n", acn__cu_name(G));
    test_memory();
    test_gemm();
    test_binary();
    test_unary();
    test_layernorm();
    test_softmax();
    test_xent();
    test_moves();
    test_dropout();
    test_adamw_clip();
    test_add_n();
    CHECK(acn__cu_sync(G, "the last kernels") == ACN_OK, "%s", acn__cu_msg(G));
    test_context_mlp();
    test_context_graph();
    test_context_models();
    test_context_decay_stats();
    test_context_recompute();
    test_context_resume();
    acn_ctx_free(C);
    acn__cu_close(G);
    return t_done("cuda");
}
