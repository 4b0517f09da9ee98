/* Core behaviour of acn.h against hand-derived numbers: errors and their
 * messages, the arena, parameters, autograd semantics (fan-out, idempotent
 * backward, no-grad, detach), the gradients of the 1-D chains of docs/models.md in the
 * three wirings, recomputation, no allocation inside a training step, the
 * generator, initialisers, optimizers, schedules and safetensors files. */
#include <stdlib.h>
#include <errno.h>
static long n_mallocs; /* counted by the allocator below */
static void *counting_malloc(size_t n);
#define ACN_MALLOC(n) counting_malloc(n)
#define ACN_FREE(p) free(p)
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"

static void *counting_malloc(size_t n) { n_mallocs++; return malloc(n); }

static acn_ctx *ctx;

static int has(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

static acn_tensor *vec(int n, const float *v, int grad)
{
    acn_tensor *t = acn_new(ctx, 1, &n, grad ? ACN_F_GRAD : 0);
    memcpy(t->data, v, (size_t)n * sizeof(float));
    return t;
}

static void test_errors(void)
{
    int sa[2] = {64, 128}, sb[2] = {64, 512}, s3[3] = {2, 3, 4}, s4[2] = {3, 5};
    acn_tensor *a, *b, *c;
    acn_reset(ctx);
    a = acn_new(ctx, 2, sa, 0);
    b = acn_new(ctx, 2, sb, 0);
    CHECK(acn_matmul(ctx, a, b, 0, 0) == NULL, "matmul of bad shapes returned a tensor");
    CHECK(acn_status_of(ctx) == ACN_ERR_SHAPE, "status %s", acn_status_name(acn_status_of(ctx)));
    CHECK(!strcmp(acn_error(ctx), "matmul: (64, 128) x (64, 512): inner dimensions differ (128 vs 64)"),
          "message: %s", acn_error(ctx));
    /* sticky: the next op returns NULL and keeps the first message */
    CHECK(acn_relu(ctx, a) == NULL && has(acn_error(ctx), "matmul"), "error not sticky: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_status_of(ctx) == ACN_OK && acn_error(ctx)[0] == '\0', "clear_error");
    /* a chain fed by a failed op fails without a new message */
    CHECK(acn_relu(ctx, acn_matmul(ctx, a, b, 0, 0)) == NULL && has(acn_error(ctx), "inner"), "%s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_matmul(ctx, a, b, 1, 0) != NULL, "a^T b should work: %s", acn_error(ctx));
    /* broadcasting */
    c = acn_new(ctx, 3, s3, 0);
    CHECK(acn_add(ctx, c, acn_new(ctx, 2, s4, 0)) == NULL && has(acn_error(ctx), "add: (2, 3, 4) and (3, 5) do not broadcast"),
          "%s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_sum(ctx, c, 3) == NULL && has(acn_error(ctx), "sum: axis 3 is out of range"), "%s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_add(ctx, c, NULL) == NULL && has(acn_error(ctx), "add: input 1 is NULL"), "%s", acn_error(ctx));
    acn_clear_error(ctx);
    {
        int bad[2] = {5, -1};
        CHECK(acn_reshape(ctx, c, 2, bad) == NULL && has(acn_error(ctx), "reshape: (2, 3, 4) has 24 elements"), "%s", acn_error(ctx));
        acn_clear_error(ctx);
        bad[0] = 0;
        CHECK(acn_new(ctx, 2, bad, 0) == NULL && acn_status_of(ctx) == ACN_ERR_SHAPE, "zero-size dim: %s", acn_error(ctx));
        acn_clear_error(ctx);
    }
    {
        int q[3] = {2, 4, 6}, ids[3] = {0, 7, 1}, labels[3] = {0, 5, 1}, ls[2] = {3, 5};
        acn_tensor *x = acn_new(ctx, 3, q, 0);
        CHECK(acn_attention(ctx, x, x, x, 4, NULL) == NULL && has(acn_error(ctx), "D divisible by heads"), "%s", acn_error(ctx));
        acn_clear_error(ctx);
        {
            int n3 = 3;
            CHECK(acn_embedding(ctx, acn_new(ctx, 2, ls, 0), ids, 1, &n3) == NULL &&
                  has(acn_error(ctx), "embedding: id 7 at position 1 is outside [0, 3)"), "%s", acn_error(ctx));
            acn_clear_error(ctx);
        }
        CHECK(acn_cross_entropy(ctx, acn_new(ctx, 2, ls, 0), labels, 0.0f, -100) == NULL &&
              has(acn_error(ctx), "label 5 at row 1 is outside [0, 5)"), "%s", acn_error(ctx));
        acn_clear_error(ctx);
        CHECK(acn_slice(ctx, x, 1, 3, 2) == NULL && has(acn_error(ctx), "slice: [3, 5) is outside axis 1"), "%s", acn_error(ctx));
        acn_clear_error(ctx);
        CHECK(acn_patches(ctx, acn_new(ctx, 3, q, 0), 2) == NULL && has(acn_error(ctx), "(B, C, H, W)"), "%s", acn_error(ctx));
        acn_clear_error(ctx);
        CHECK(acn_backward(ctx, x) == ACN_ERR_SHAPE && has(acn_error(ctx), "must be a scalar"), "%s", acn_error(ctx));
        acn_clear_error(ctx);
    }
    CHECK(!strcmp(acn_status_name(ACN_ERR_ARENA), "ACN_ERR_ARENA"), "status_name");
}

static void test_arena(void)
{
    acn_ctx *small;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_stats s;
    int big[2] = {1000, 1000}, sm[1] = {10};
    acn_tensor *t;
    cfg.arena_bytes = 1 << 20;
    cfg.param_floats = 100;
    cfg.max_params = 2;
    CHECK(acn_ctx_new(&small, &cfg) == ACN_OK, "small context");
    t = acn_new(small, 2, big, 0);
    CHECK(!t && acn_status_of(small) == ACN_ERR_ARENA && has(acn_error(small), "arena_bytes"),
          "arena overflow: %s", acn_error(small));
    acn_clear_error(small);
    t = acn_new(small, 1, sm, 0);
    acn_stats_get(small, &s);
    CHECK(t && s.arena_used > 0 && s.arena_peak >= s.arena_used && s.arena_bytes == (size_t)1 << 20, "stats");
    acn_reset(small);
    acn_stats_get(small, &s);
    /* each reset starts the arena 64 bytes away from the one before (0, 64, 0, ...) */
    CHECK(s.arena_used == 64 && s.arena_peak > 0, "reset keeps the peak (%zu, %zu)", s.arena_used, s.arena_peak);
    acn_reset(small);
    acn_stats_get(small, &s);
    CHECK(s.arena_used == 0, "the second reset starts at 0 (%zu)", s.arena_used);
    /* parameter block and table limits */
    CHECK(acn_param(small, "a", 1, sm) != NULL, "param a");
    CHECK(acn_param(small, "a", 1, sm) == NULL && has(acn_error(small), "'a' exists already"), "%s", acn_error(small));
    acn_clear_error(small);
    {   /* the block grows past its first 112 floats (100 rounded up to 16s);
           the first parameter keeps its values and moves with the block */
        int s2[1] = {200};
        acn_tensor *a = acn_param_find(small, "a"), *big2;
        a->data[3] = 7.0f;
        a->grad[4] = 9.0f;
        big2 = acn_param(small, "big", 1, s2);
        acn_stats_get(small, &s);
        CHECK(big2 && s.param_floats_cap >= 216 && a->data[3] == 7.0f && a->grad[4] == 9.0f &&
              big2->data == a->data + 16 && big2->grad == a->grad + 16,
              "growth: cap %zu, %s", s.param_floats_cap, acn_error(small));
    }
    CHECK(acn_param(small, "c", 1, sm) == NULL && has(acn_error(small), "max_params"), "%s", acn_error(small));
    acn_clear_error(small);
    CHECK(acn_param_find(small, "big") && acn_param_numel(small) == 210, "find/numel");
    /* marks */
    {
        acn_mark m = acn_mark_get(small);
        acn_tensor *x = acn_new(small, 1, sm, ACN_F_GRAD);
        acn_relu(small, x);
        acn_stats_get(small, &s);
        CHECK(s.tape_nodes == 1, "tape %zu", s.tape_nodes);
        acn_mark_rewind(small, m);
        acn_stats_get(small, &s);
        CHECK(s.tape_nodes == 0 && s.arena_used == m.arena_used + 64, "rewind (%zu, mark %zu)", s.arena_used, m.arena_used);
        acn_relu(small, acn_new(small, 1, sm, ACN_F_GRAD));
        acn_mark_rewind(small, m);
        acn_stats_get(small, &s);
        CHECK(s.tape_nodes == 0 && s.arena_used == m.arena_used, "the second rewind starts at the mark (%zu)", s.arena_used);
    }
    acn_ctx_free(small);
    CHECK(acn_ctx_new(NULL, NULL) == ACN_ERR_ARG, "NULL out");
    cfg.max_params = 0;
    CHECK(acn_ctx_new(&small, &cfg) == ACN_ERR_ARG && small == NULL, "bad config");
}

/* y = x*x + 3x, y fans x out three ways: dy/dx = 2x + 3. */
static void test_autograd(void)
{
    float xv[3] = {1.0f, -2.0f, 0.5f}, g1[3];
    acn_tensor *x, *y, *loss;
    acn_stats s;
    int i;
    acn_reset(ctx);
    x = vec(3, xv, 1);
    y = acn_add(ctx, acn_mul(ctx, x, x), acn_scale(ctx, x, 3.0f));
    loss = acn_sum(ctx, y, ACN_AXIS_ALL);
    CHECK(acn_backward(ctx, loss) == ACN_OK, "%s", acn_error(ctx));
    for (i = 0; i < 3; i++) CHECK(x->grad[i] == 2 * xv[i] + 3, "dy/dx[%d] = %g", i, x->grad[i]);
    memcpy(g1, x->grad, sizeof g1);
    /* idempotent after zeroing; accumulates without */
    memset(x->grad, 0, sizeof g1);
    acn_backward(ctx, loss);
    CHECK(!memcmp(g1, x->grad, sizeof g1), "second backward differs");
    acn_backward(ctx, loss);
    CHECK(x->grad[0] == 2 * g1[0], "leaf gradients accumulate: %g", x->grad[0]);
    /* detach: d/dx sum(x * detach(x)) = x */
    acn_reset(ctx);
    x = vec(3, xv, 1);
    loss = acn_sum(ctx, acn_mul(ctx, x, acn_detach(ctx, x)), ACN_AXIS_ALL);
    acn_backward(ctx, loss);
    for (i = 0; i < 3; i++) CHECK(x->grad[i] == xv[i], "detach: %g", x->grad[i]);
    /* no-grad: nothing on the tape, backward refuses */
    acn_reset(ctx);
    x = vec(3, xv, 1);
    acn_set_no_grad(ctx, 1);
    loss = acn_sum(ctx, acn_relu(ctx, x), ACN_AXIS_ALL);
    acn_stats_get(ctx, &s);
    CHECK(loss && s.tape_nodes == 0, "no_grad recorded %zu nodes", s.tape_nodes);
    CHECK(acn_backward(ctx, loss) == ACN_ERR_STATE && has(acn_error(ctx), "no_grad"), "%s", acn_error(ctx));
    acn_clear_error(ctx);
    acn_set_no_grad(ctx, 0);
    /* eval mode: dropout is the identity */
    acn_set_train(ctx, 0);
    CHECK(acn_dropout(ctx, x, 0.5f) == x, "dropout in eval mode");
    acn_set_train(ctx, 1);
}

/* The 1-D linear chain, f_i(x) = w_i x, L = 4, x_0 = 1.5: dy/dw_i in
 * the three wirings against the closed forms of docs/models.md, "Wirings". */
static void test_wirings(void)
{
    const float w[4] = {0.9f, -0.6f, 1.3f, 0.4f}, x0 = 1.5f;
    const int L = 4;
    int wiring, i, j, k, one = 1;
    for (wiring = 0; wiring < 3; wiring++) { /* plain, residual, ACN */
        acn_tensor *W[4], *x, *y;
        acn_reset(ctx);
        x = acn_input(ctx, 1, &one, &x0);
        y = x;
        for (i = 0; i < L; i++) {
            W[i] = acn_new(ctx, 1, &one, ACN_F_GRAD);
            W[i]->data[0] = w[i];
        }
        if (wiring == 2) {
            acn_tensor *xi = x;
            for (i = 0; i < L; i++) {
                xi = acn_mul(ctx, W[i], xi);  /* x_i = f_i(x_{i-1}) */
                y = acn_add(ctx, y, xi);      /* y = x_0 + x_1 + ... */
            }
        } else {
            for (i = 0; i < L; i++)
                y = wiring ? acn_add(ctx, y, acn_mul(ctx, W[i], y)) : acn_mul(ctx, W[i], y);
        }
        acn_backward(ctx, acn_sum(ctx, y, ACN_AXIS_ALL));
        for (i = 0; i < L; i++) {
            double before = 1.0, after = 1.0, want;
            for (k = 0; k < i; k++) before *= wiring == 1 ? 1.0 + w[k] : w[k];
            if (wiring == 2) {       /* 1 + sum_{j>i} prod_{k=i+1..j} w_k */
                double run = 1.0;
                for (j = i + 1; j < L; j++) { run *= w[j]; after += run; }
            } else {
                for (k = i + 1; k < L; k++) after *= wiring == 1 ? 1.0 + w[k] : w[k];
            }
            want = after * before * x0;
            CHECK(fabs(W[i]->grad[0] - want) < 1e-5 * (1 + fabs(want)), "wiring %d: dy/dw_%d = %g, closed form %g",
                  wiring, i + 1, W[i]->grad[0], want);
        }
    }
}

/* Recomputed GELU/LayerNorm: the same gradients, less arena. Sixteen
 * blocks of  a = h W1^T (64, 256);  u = GELU(a);  b = u W1 (64, 32);
 * l = LN(b);  h = tanh(l).  With ACN_RECOMPUTE, u and l keep no storage;
 * the four scratch slots cost 4 x the largest (u). */
#define RC_BLOCKS 16
static double recompute_run(int flags, float *gout, size_t *peak)
{
    acn_ctx *c;
    acn_ctx_config cfg = acn_ctx_defaults();
    int xs[2] = {64, 32}, w1[2] = {256, 32}, w2[2] = {10, 32}, labels[64], i, blk;
    acn_tensor *x, *W1, *W2, *g, *h;
    acn_stats s;
    double loss;
    cfg.arena_bytes = 32 << 20;
    acn_ctx_new(&c, &cfg);
    W1 = acn_param(c, "w1", 2, w1);
    W2 = acn_param(c, "w2", 2, w2);
    g = acn_param(c, "g", 1, xs + 1);
    acn_init_linear(c, W1, NULL);
    acn_init_linear(c, W2, NULL);
    acn_init_ones(c, g);
    for (i = 0; i < 64; i++) labels[i] = i % 10;
    x = acn_new(c, 2, xs, 0);
    acn_init_normal(c, x, 0.0f, 1.0f);
    h = x;
    for (blk = 0; blk < RC_BLOCKS; blk++) {
        acn_tensor *u = acn_gelu_ex(c, acn_linear(c, h, W1, NULL), flags);
        acn_tensor *l = acn_layernorm_ex(c, acn_matmul(c, u, W1, 0, 0), g, NULL, 1e-5f, flags);
        h = acn_tanh(c, l);
    }
    h = acn_cross_entropy(c, acn_linear(c, h, W2, NULL), labels, 0.1f, -1);
    acn_backward(c, h);
    CHECK(acn_status_of(c) == ACN_OK, "recompute run: %s", acn_error(c));
    memcpy(gout, W1->grad, 256 * 32 * sizeof(float));
    loss = h ? h->data[0] : 0.0;
    acn_stats_get(c, &s);
    *peak = s.arena_peak;
    acn_ctx_free(c);
    return loss;
}

static void test_recompute(void)
{
    static float ga[256 * 32], gb[256 * 32];
    /* 2 outputs a block not stored, 4 slots stored; each allocation also
     * carries a red zone under AddressSanitizer (0 bytes otherwise) */
    size_t pa, pb, want = (size_t)RC_BLOCKS * (64 * 256 + 64 * 32) * 4 - 4 * (64 * 256) * 4 +
                          (2 * RC_BLOCKS - 4) * (size_t)ACN__REDZONE;
    double la = recompute_run(0, ga, &pa), lb = recompute_run(ACN_RECOMPUTE, gb, &pb);
    CHECK(la == lb && !memcmp(ga, gb, sizeof ga), "recompute changed the loss or gradients");
    CHECK(pa - pb == want, "recompute saved %zu bytes; the outputs not kept, less the slots, are %zu", pa - pb, want);
}

/* A small linear_gelu (the product below the SIMD kernel's size) gives the
 * same gradients with its outputs recomputed as stored: the first GELU and
 * the recomputed one take the same path through every row. */
static double small_lgelu_run(int flags, float *gw)
{
    acn_ctx *c;
    acn_ctx_config cfg = acn_ctx_defaults();
    int xs[2] = {4, 20}, ws[2] = {20, 20}, labels[4] = {1, 5, 9, 19}, blk;
    acn_tensor *x, *W, *h, *loss;
    double l;
    cfg.arena_bytes = 8 << 20;
    acn_ctx_new(&c, &cfg);
    W = acn_param(c, "w", 2, ws);
    acn_init_normal(c, W, 0.0f, 0.5f);
    x = acn_new(c, 2, xs, 0);
    acn_init_normal(c, x, 0.0f, 1.0f);
    h = x;
    for (blk = 0; blk < 8; blk++) h = acn_linear_gelu(c, h, W, NULL, flags);
    loss = acn_cross_entropy(c, h, labels, 0.0f, -1);
    acn_zero_grad(c);
    acn_backward(c, loss);
    l = loss ? loss->data[0] : -1.0;
    memcpy(gw, W->grad, 400 * sizeof(float));
    acn_ctx_free(c);
    return l;
}
static void test_recompute_small(void)
{
    static float ga[400], gb[400];
    double la = small_lgelu_run(0, ga), lb = small_lgelu_run(ACN_RECOMPUTE, gb);
    CHECK(la == lb && !memcmp(ga, gb, sizeof ga), "small linear_gelu: recompute changed the loss or gradients");
}

/* Marks and transient values: rewinding past a transient's header must not
 * leave its slot pointing at it; a transient older than the mark survives a
 * rewind that drops the slots. */
static void test_rewind_transient(void)
{
    int small[2] = {4, 8}, big[2] = {16, 8}, i;
    acn_tensor *x, *xb, *t1, *t2, *t3;
    acn_mark m;
    float want[32];
    acn_reset(ctx);
    x = acn_new(ctx, 2, small, 0);
    xb = acn_new(ctx, 2, big, 0);
    acn_init_normal(ctx, x, 0.0f, 1.0f);
    acn_init_normal(ctx, xb, 0.0f, 1.0f);
    t1 = acn_gelu_ex(ctx, x, ACN_RECOMPUTE);   /* carves the slots */
    memcpy(want, acn_data(ctx, t1), sizeof want);
    m = acn_mark_get(ctx);
    t2 = acn_gelu_ex(ctx, x, ACN_RECOMPUTE);   /* owns a slot, header after the mark */
    CHECK(t2 && acn_data(ctx, t2), "t2");
    acn_mark_rewind(ctx, m);
    for (i = 0; i < 8; i++) {                   /* cycle through every slot */
        t3 = acn_gelu_ex(ctx, x, ACN_RECOMPUTE);
        CHECK(t3 && !memcmp(acn_data(ctx, t3), want, sizeof want), "t3 %d", i);
    }
    CHECK(!memcmp(acn_data(ctx, t1), want, sizeof want), "t1 after a rewind");
    m = acn_mark_get(ctx);
    t2 = acn_gelu_ex(ctx, xb, ACN_RECOMPUTE);  /* larger: every slot is carved again */
    CHECK(t2 && acn_data(ctx, t2), "t2 big");
    acn_mark_rewind(ctx, m);                    /* ...and dropped again */
    CHECK(!memcmp(acn_data(ctx, t1), want, sizeof want), "t1 after its slots were dropped");
    CHECK(acn_status_of(ctx) == ACN_OK, "%s", acn_error(ctx));
}

/* Backward keeps only the gradients in flight: along a chain of 50 tanh
 * ops on 4096 floats (16 KB each), each node's output gradient is released
 * once the node has run, so the walk needs about two 16 KB buffers beyond
 * the forward pass (plus a span table of 16 bytes a node), not 50. The
 * intermediate gradients are gone afterwards; the leaf keeps its own. */
static void test_backward_memory(void)
{
    int n = 4096, i;
    acn_tensor *x, *h, *mid = NULL;
    acn_stats before, after;
    acn_reset(ctx);
    x = acn_new(ctx, 1, &n, ACN_F_GRAD);
    acn_init_uniform(ctx, x, -1.0f, 1.0f);
    for (h = x, i = 0; i < 50; i++) {
        h = acn_tanh(ctx, h);
        if (i == 25) mid = h;
    }
    h = acn_sum(ctx, h, ACN_AXIS_ALL);
    acn_stats_get(ctx, &before);
    CHECK(acn_backward(ctx, h) == ACN_OK, "%s", acn_error(ctx));
    acn_stats_get(ctx, &after);
    CHECK(after.arena_used == before.arena_used, "backward left %zu bytes in use", after.arena_used - before.arena_used);
    CHECK(after.arena_peak - before.arena_used <= 3 * (size_t)n * 4 + 64 * 16 + 3 * 128,
          "backward needed %zu bytes beyond the forward pass; ~2 x 16 KB expected", after.arena_peak - before.arena_used);
    CHECK(mid->grad == NULL && x->grad != NULL && x->grad[0] != 0.0f, "intermediate released, leaf kept");
}

/* The matrix kernel at every SIMD level the CPU has, against the reference
 * loops: every transpose case, with and without accumulation, on sizes
 * around the tile edges (1, mr +- 1, nr +- 1, a K that crosses the blocks). */
static void test_gemm_levels(void)
{
    static const int sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 33, 17}, {11, 31, 300}, {25, 65, 64},
                                   {65, 64, 513}, {130, 17, 9}, {37, 515, 259}};
    int si, ta, tb, acc, level, best = acn_set_simd(ctx, ACN_SIMD_AVX512), worst_ok = 1;
    for (level = ACN_SIMD_PORTABLE; level <= best; level++)
        for (si = 0; si < (int)(sizeof sizes / sizeof sizes[0]); si++)
            for (ta = 0; ta < 2; ta++)
                for (tb = 0; tb < 2; tb++)
                    for (acc = 0; acc < 2; acc++) {
                        int M = sizes[si][0], N = sizes[si][1], K = sizes[si][2], i;
                        float *A = (float *)malloc((size_t)M * K * 4), *B = (float *)malloc((size_t)K * N * 4);
                        float *C1 = (float *)malloc((size_t)M * N * 4), *C2 = (float *)malloc((size_t)M * N * 4);
                        double e;
                        for (i = 0; i < M * K; i++) A[i] = (float)(i * 37 % 101 - 50) / 50.0f;
                        for (i = 0; i < K * N; i++) B[i] = (float)(i * 53 % 97 - 48) / 48.0f;
                        for (i = 0; i < M * N; i++) C1[i] = C2[i] = (float)(i % 7);
                        acn__gemm_ref(M, N, K, A, ta, B, tb, C1, acc);
                        acn_set_simd(ctx, level);
                        acn__gemm(ctx, M, N, K, A, ta, B, tb, C2, acc);
                        e = t_relerr(C2, C1, (size_t)M * N);
                        if (e > 1e-6) {
                            worst_ok = 0;
                            CHECK(0, "gemm %s %dx%dx%d ta %d tb %d acc %d: relative error %g", acn_simd_name(level), M, N,
                                  K, ta, tb, acc, e);
                        }
                        free(A); free(B); free(C1); free(C2);
                    }
    CHECK(worst_ok, "gemm levels");
    acn_set_simd(ctx, best);
}

/* acn_linear_mid gives the values and gradients of transpose, linear,
 * transpose (the Mixer's token mixing), and refuses bad shapes. Its dW is
 * formed directly (J = 65 rows of 64 tokens) or transposed (J = 20 rows
 * of 65 tokens): both forms are compared. */
static void linear_mid_case(int T, int J, int with_bias)
{
    int xs[3] = {3, 0, 33}, ws[2], bs[1], i;
    xs[1] = ws[1] = T;
    ws[0] = bs[0] = J;
    {
        acn_tensor *x = acn_new(ctx, 3, xs, ACN_F_GRAD), *W = acn_new(ctx, 2, ws, ACN_F_GRAD);
        acn_tensor *b = with_bias ? acn_new(ctx, 1, bs, ACN_F_GRAD) : NULL, *y1, *y2, *l;
        float *g1[3], *g2[3], *up;
        size_t n[3];
        int k;
        acn_init_normal(ctx, x, 0.0f, 1.0f);
        acn_init_normal(ctx, W, 0.0f, 0.2f);
        if (b) acn_init_normal(ctx, b, 0.0f, 1.0f);
        n[0] = x->numel; n[1] = W->numel; n[2] = b ? b->numel : 0;
        y1 = acn_linear_mid(ctx, x, W, b);
        y2 = acn_transpose(ctx, acn_linear(ctx, acn_transpose(ctx, x, 1, 2), W, b), 1, 2);
        CHECK(y1 && y2 && y1->shape[0] == 3 && y1->shape[1] == ws[0] && y1->shape[2] == 33, "linear_mid: shape");
        if (!y1 || !y2) return;
        CHECK(t_relerr(y1->data, y2->data, y1->numel) < 1e-6, "linear_mid: values differ from the transposed linear");
        up = (float *)malloc(y1->numel * sizeof(float));
        for (i = 0; i < (int)y1->numel; i++) up[i] = (float)(i % 11) * 0.1f - 0.5f;
        for (k = 0; k < 2; k++) {
            acn_tensor *t[3];
            float **g = k ? g2 : g1;
            t[0] = x; t[1] = W; t[2] = b;
            acn_zero_grad(ctx);
            memset(x->grad, 0, n[0] * sizeof(float));
            memset(W->grad, 0, n[1] * sizeof(float));
            if (b) memset(b->grad, 0, n[2] * sizeof(float));
            l = k ? y2 : y1;
            CHECK(acn_backward_with(ctx, l, up) == ACN_OK, "linear_mid: backward: %s", acn_error(ctx));
            for (i = 0; i < 3; i++) {
                g[i] = t[i] ? (float *)malloc(n[i] * sizeof(float)) : NULL;
                if (t[i]) memcpy(g[i], t[i]->grad, n[i] * sizeof(float));
            }
        }
        for (i = 0; i < 3; i++)
            if (n[i]) {
                CHECK(t_relerr(g1[i], g2[i], n[i]) < 1e-5, "linear_mid: gradient %d differs by %g", i,
                      t_relerr(g1[i], g2[i], n[i]));
            }
        for (i = 0; i < 3; i++) free(g1[i]), free(g2[i]);
        free(up);
        acn_reset(ctx);
    }
}
static void test_linear_mid(void)
{
    int xs[3] = {3, 65, 33}, form;
    for (form = 0; form < 4; form++) linear_mid_case(form < 2 ? 65 : 64, form < 2 ? 20 : 65, form & 1);
    {
        int bad[2] = {20, 64};
        acn_tensor *x = acn_new(ctx, 3, xs, 0), *W = acn_new(ctx, 2, bad, 0);
        CHECK(!acn_linear_mid(ctx, x, W, NULL) && acn_status_of(ctx) == ACN_ERR_SHAPE &&
              has(acn_error(ctx), "linear_mid: x (3, 65, 33), W (20, 64)"),
              "linear_mid: a bad shape: %s", acn_error(ctx));
        acn_clear_error(ctx);
        acn_reset(ctx);
    }
}

/* acn_attention_qkv gives the values and gradients of acn_attention on the
 * three column blocks (with a padding mask), and refuses bad shapes. */
static void test_attention_qkv(void)
{
    int xs[3] = {2, 9, 3 * 12}, ms[2] = {2, 9}, i, k;
    acn_tensor *x = acn_new(ctx, 3, xs, ACN_F_GRAD), *m = acn_new(ctx, 2, ms, ACN_F_GRAD), *y[2];
    float *gx[2], *gm[2], *up;
    acn_init_normal(ctx, x, 0.0f, 1.0f);
    for (i = 0; i < 18; i++) m->data[i] = i % 5 == 4 ? -1e4f : 0.0f;
    y[0] = acn_attention_qkv(ctx, x, 3, m);
    y[1] = acn_attention(ctx, acn_slice(ctx, x, 2, 0, 12), acn_slice(ctx, x, 2, 12, 12), acn_slice(ctx, x, 2, 24, 12), 3, m);
    CHECK(y[0] && y[1] && y[0]->shape[2] == 12, "attention_qkv: %s", acn_error(ctx));
    if (!y[0] || !y[1]) return;
    CHECK(t_relerr(y[0]->data, y[1]->data, y[0]->numel) < 1e-6, "attention_qkv: values differ from acn_attention");
    up = (float *)malloc(y[0]->numel * sizeof(float));
    for (i = 0; i < (int)y[0]->numel; i++) up[i] = (float)(i % 7) * 0.2f - 0.6f;
    for (k = 0; k < 2; k++) {
        memset(x->grad, 0, x->numel * sizeof(float));
        memset(m->grad, 0, m->numel * sizeof(float));
        CHECK(acn_backward_with(ctx, y[k], up) == ACN_OK, "attention_qkv: backward: %s", acn_error(ctx));
        gx[k] = (float *)malloc(x->numel * sizeof(float));
        gm[k] = (float *)malloc(m->numel * sizeof(float));
        memcpy(gx[k], x->grad, x->numel * sizeof(float));
        memcpy(gm[k], m->grad, m->numel * sizeof(float));
    }
    CHECK(t_relerr(gx[0], gx[1], x->numel) < 1e-5 && t_relerr(gm[0], gm[1], m->numel) < 1e-5,
          "attention_qkv: gradients differ (%g, %g)", t_relerr(gx[0], gx[1], x->numel), t_relerr(gm[0], gm[1], m->numel));
    for (k = 0; k < 2; k++) free(gx[k]), free(gm[k]);
    free(up);
    { /* a recomputed qkv (given three times) and a recomputed mask take two recompute slots, not four */
        acn_tensor *q2 = acn_gelu_ex(ctx, x, ACN_RECOMPUTE), *m2 = acn_gelu_ex(ctx, m, ACN_RECOMPUTE);
        CHECK(acn_attention_qkv(ctx, q2, 3, m2) != NULL, "attention_qkv: recomputed inputs refused: %s", acn_error(ctx));
        acn_clear_error(ctx);
    }
    xs[2] = 35;
    x = acn_new(ctx, 3, xs, 0);
    CHECK(!acn_attention_qkv(ctx, x, 3, NULL) && acn_status_of(ctx) == ACN_ERR_SHAPE &&
          has(acn_error(ctx), "attention_qkv: qkv (2, 9, 35)"), "attention_qkv: a bad shape: %s", acn_error(ctx));
    acn_clear_error(ctx);
    acn_reset(ctx);
}

/* acn_ffn against acn_linear(acn_linear_gelu(...)) (values and gradients,
 * to rounding), with the hidden layer stored and recomputed (ACN_RECOMPUTE),
 * at every SIMD level on one and two threads; at each level, recomputing
 * and the thread count change no bit. Sizes are odd (tails everywhere) and
 * large enough for the packed kernels: x (3, 37, 29), hidden 45, out 21; and
 * x (2, 265, 20), hidden 17, out 31: R = 530 rows, more than the backward's
 * chunk of 512, with a tail whose own products would be small enough for
 * the plain loops; and x (2, 20, 16), hidden 64, out 10: 40 rows, where
 * W2's gradient as h^T d would be small enough for the plain loops but
 * d^T h is not. dims: x's three, hidden, out. */
static size_t ffn_l1d, ffn_l2; /* when set, the cache sizes ffn_run's context blocks for (test_cache_blocking) */
static int kernel_prefetch = -1; /* when 0 or 1, whether the AVX-512 kernel prefetches (test_cache_blocking) */
static void ffn_run(const int *dims, int level, int threads, int flags, int reference, float *out, size_t *n_out,
                    size_t *arena)
{
    acn_ctx *c;
    acn_stats st;
    int xs[3], w1[2], w2[2], i, k;
    acn_tensor *t[5], *y;
    float *up;
    size_t n = 0;
    xs[0] = dims[0]; xs[1] = dims[1]; xs[2] = dims[2];
    w1[0] = dims[3]; w1[1] = dims[2]; w2[0] = dims[4]; w2[1] = dims[3];
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "ffn: a context");
    acn_set_simd(c, level);
    acn_set_threads(c, threads);
    if (ffn_l1d) CHECK(acn_set_cache(c, ffn_l1d, ffn_l2) == ACN_OK, "ffn: set_cache: %s", acn_error(c));
    if (kernel_prefetch >= 0) c->prefetch = kernel_prefetch;
    t[0] = acn_new(c, 3, xs, ACN_F_GRAD);
    t[1] = acn_new(c, 2, w1, ACN_F_GRAD); t[2] = acn_new(c, 1, w1, ACN_F_GRAD);
    t[3] = acn_new(c, 2, w2, ACN_F_GRAD); t[4] = acn_new(c, 1, w2, ACN_F_GRAD);
    for (k = 0; k < 5; k++)
        for (i = 0; i < (int)t[k]->numel; i++)
            t[k]->data[i] = (float)((i * (7 + 2 * k) + 3 * k) % 23 - 11) / (k == 0 ? 4.0f : 12.0f);
    y = reference ? acn_linear(c, acn_linear_gelu(c, t[0], t[1], t[2], 0), t[3], t[4])
                  : acn_ffn(c, t[0], t[1], t[2], t[3], t[4], flags);
    CHECK(y && y->shape[0] == xs[0] && y->shape[1] == xs[1] && y->shape[2] == w2[0], "ffn: output shape (%s)",
          acn_error(c));
    if (!y) { acn_ctx_free(c); return; }
    acn_stats_get(c, &st);
    *arena = st.arena_used;
    up = (float *)malloc(y->numel * sizeof(float));
    for (i = 0; i < (int)y->numel; i++) up[i] = (float)(i % 13) * 0.1f - 0.6f;
    CHECK(acn_backward_with(c, y, up) == ACN_OK, "ffn: backward: %s", acn_error(c));
    memcpy(out, y->data, y->numel * sizeof(float));
    n = y->numel;
    for (k = 0; k < 5; k++) {
        memcpy(out + n, t[k]->grad, t[k]->numel * sizeof(float));
        n += t[k]->numel;
    }
    *n_out = n;
    free(up);
    acn_ctx_free(c);
}
static void test_ffn(void)
{
    enum { MAXN = 40000 };
    static const int shapes[3][5] = {{3, 37, 29, 45, 21}, {2, 265, 20, 17, 31}, {2, 20, 16, 64, 10}};
    static float ref[MAXN], base[MAXN], got[MAXN];
    size_t n = 0, m = 0, a0, a1, hidden;
    int best = acn_set_simd(ctx, ACN_SIMD_AVX512), level, threads, flags, sh;
    acn_set_simd(ctx, best);
    for (sh = 0; sh < 3; sh++)
        for (level = ACN_SIMD_PORTABLE; level <= best; level++) {
            const int *dims = shapes[sh];
            hidden = (size_t)dims[0] * dims[1] * dims[3] * sizeof(float);
            ffn_run(dims, level, 1, 0, 1, ref, &n, &a0);
            ffn_run(dims, level, 1, 0, 0, base, &m, &a0);
            CHECK(m == n && t_relerr(base, ref, n) < 1e-5, "ffn %d rows %s: differs from linear(linear_gelu) by %g",
                  dims[0] * dims[1], acn_simd_name(level), m == n ? t_relerr(base, ref, n) : 1.0);
            for (threads = 1; threads <= 2; threads++)
                for (flags = 0; flags <= ACN_RECOMPUTE; flags += ACN_RECOMPUTE) {
                    ffn_run(dims, level, threads, flags, 0, got, &m, &a1);
                    CHECK(m == n && !memcmp(got, base, n * sizeof(float)), "ffn %d rows %s, %d threads%s: the bits changed",
                          dims[0] * dims[1], acn_simd_name(level), threads, flags ? ", recomputed" : "");
                    /* recomputed, the hidden layer is not in the arena (but at the portable level) */
                    CHECK(flags && level != ACN_SIMD_PORTABLE ? a0 - a1 + 64 >= hidden && a0 - a1 <= hidden + 64
                                                              : a0 == a1,
                          "ffn %d rows %s%s: the forward used %zu bytes of arena, %zu without recompute",
                          dims[0] * dims[1], acn_simd_name(level), flags ? ", recomputed" : "", a1, a0);
                }
        }
    { /* bad shapes and NULLs are refused with the reason */
        int xs[2] = {4, 6}, w1[2] = {5, 7}, w2[2] = {3, 5};
        acn_tensor *x = acn_new(ctx, 2, xs, 0), *W1 = acn_new(ctx, 2, w1, 0), *W2 = acn_new(ctx, 2, w2, 0);
        CHECK(!acn_ffn(ctx, x, W1, NULL, W2, NULL, 0) && acn_status_of(ctx) == ACN_ERR_SHAPE &&
              has(acn_error(ctx), "ffn: x (4, 6), W1 (5, 7), b1 NULL, W2 (3, 5)"), "ffn: a bad shape: %s", acn_error(ctx));
        acn_clear_error(ctx);
        CHECK(!acn_ffn(ctx, x, W1, NULL, NULL, NULL, 0) && acn_status_of(ctx) == ACN_ERR_ARG &&
              has(acn_error(ctx), "W2 is NULL"), "ffn: a NULL weight: %s", acn_error(ctx));
        acn_clear_error(ctx);
        acn_reset(ctx);
    }
}

/* The matrix kernel's blocks from the cache sizes (acn__blocking), by hand
 * from the rule: kc = 2/3 L1 / (4 nr), a multiple of 16 in [64, 512];
 * kc_long = L1 / 2 / (4 mr), a multiple of 16 in [kc, 1024]; nc = L2 / 2 /
 * (4 kc), a multiple of nr in [4 nr, 4096]. The sizes $ACN_CACHE and
 * acn_set_cache take and refuse, and a refusal changes nothing. And the
 * blocks never change a bit: acn__gemm (every transpose case, written and
 * accumulated, K and N across several blocks) and acn_ffn (values and
 * every gradient, stored and recomputed hidden layer, two backward chunks)
 * at each SIMD level on 1 and 2 threads give the same bits under the CPU's
 * sizes and under three others: the smallest blocks (4 KB, 32 KB: kc 64,
 * nc 128), a machine with 32 KB and 512 KB, and the largest (kc 512,
 * kc_long 1024, nc 4096); and with the AVX-512 kernel's prefetching off
 * and on (kernel_prefetch), after a check that the setting picks the
 * prefetching kernel (and skips acn__gemm_part's bursts) at AVX-512 only. */
static void gemm_blocks_run(int level, int threads, size_t l1d, size_t l2, float *out, size_t *n_out)
{
    static const int sizes[][3] = {{11, 31, 300}, {65, 200, 513}, {37, 515, 259}, {300, 129, 700}};
    acn_ctx *c;
    size_t n = 0;
    int si, ta, tb, acc, i;
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "gemm blocks: a context");
    acn_set_simd(c, level);
    acn_set_threads(c, threads);
    if (l1d) CHECK(acn_set_cache(c, l1d, l2) == ACN_OK, "gemm blocks: set_cache: %s", acn_error(c));
    if (kernel_prefetch >= 0) c->prefetch = kernel_prefetch;
    for (si = 0; si < (int)(sizeof sizes / sizeof sizes[0]); si++)
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++)
                for (acc = 0; acc < 2; acc++) {
                    int M = sizes[si][0], N = sizes[si][1], K = sizes[si][2];
                    float *A = (float *)malloc((size_t)M * K * 4), *B = (float *)malloc((size_t)K * N * 4);
                    for (i = 0; i < M * K; i++) A[i] = (float)(i * 37 % 101 - 50) / 50.0f;
                    for (i = 0; i < K * N; i++) B[i] = (float)(i * 53 % 97 - 48) / 48.0f;
                    for (i = 0; i < M * N; i++) out[n + i] = (float)(i % 7);
                    acn__gemm(c, M, N, K, A, ta, B, tb, out + n, acc);
                    n += (size_t)M * N;
                    free(A); free(B);
                }
    *n_out = n;
    acn_ctx_free(c);
}
static void test_cache_blocking(void)
{
    static const size_t KB = 1024;
    /* the blocks of three other machines (the CPU's prefetch setting), then the CPU's sizes (0: as read)
     * with the kernel's prefetching off and on */
    static const struct { size_t l1d, l2; int pf; } setting[5] = {
        {4 * 1024, 32 * 1024, -1}, {32 * 1024, 512 * 1024, -1}, {1024 * 1024, 1024 * 1024 * 1024, -1}, {0, 0, 0}, {0, 0, 1}};
    static const int ffn_dims[5] = {2, 550, 200, 700, 150}; /* 1100 rows: backward chunks of 512 and 588 */
    static const struct { size_t l1d, l2; int mr, nr, kc, kc_long, nc; } hand[] = {
        {48 * 1024, 1024 * 1024, 12, 32, 256, 512, 512},        /* 32768 / 128; 24576 / 48; 524288 / 1024 */
        {32 * 1024, 512 * 1024, 12, 32, 160, 336, 384},         /* 170 -> 160; 341 -> 336; 409 -> 384 */
        {48 * 1024, 2048 * 1024, 12, 32, 256, 512, 1024},
        {48 * 1024, 1024 * 1024, 6, 16, 512, 1024, 256},        /* the AVX2 kernel */
        {32 * 1024, 256 * 1024, 6, 16, 336, 672, 96},           /* 341 -> 336; 682 -> 672; 97 -> 96 */
        {4 * 1024, 32 * 1024, 12, 32, 64, 64, 128},             /* each at its least */
        {1024 * 1024, 1024 * 1024 * 1024, 12, 32, 512, 1024, 4096}, /* each at its most */
    };
    enum { MAXN = 700000 };
    static float base[MAXN], got[MAXN];
    size_t i, n = 0, m = 0, l1d, l2, a0;
    int best = acn_set_simd(ctx, ACN_SIMD_AVX512), level, threads, flags, k, bad;
    acn_cache_info before, after;
    acn_set_simd(ctx, best);
    for (i = 0; i < sizeof hand / sizeof hand[0]; i++) {
        acn__blk b = acn__blocking(hand[i].l1d, hand[i].l2, hand[i].mr, hand[i].nr);
        CHECK(b.kc == hand[i].kc && b.kc_long == hand[i].kc_long && b.nc == hand[i].nc,
              "blocking for L1 %zu KB, L2 %zu KB, %d x %d: kc %d, kc_long %d, nc %d; expected %d, %d, %d",
              hand[i].l1d / KB, hand[i].l2 / KB, hand[i].mr, hand[i].nr, b.kc, b.kc_long, b.nc, hand[i].kc,
              hand[i].kc_long, hand[i].nc);
    }
    /* a thread's packing buffer: A panel + B block + edge tile, the larger of the two kernels' */
    CHECK(acn__pack_floats(48 * KB, 1024 * KB) == 12 * 512 + 256 * 512 + 12 * 32,
          "pack floats for 48 KB, 1 MB: %zu", acn__pack_floats(48 * KB, 1024 * KB));
    CHECK(acn__pack_floats(32 * KB, 256 * KB) == 6 * 672 + 336 * 96 + 6 * 16,
          "pack floats for 32 KB, 256 KB: %zu (the AVX2 kernel's is the larger)", acn__pack_floats(32 * KB, 256 * KB));
    /* $ACN_CACHE's form */
    CHECK(acn__cache_parse("48K,1M", &l1d, &l2) && l1d == 48 * KB && l2 == 1024 * KB, "parse 48K,1M");
    CHECK(acn__cache_parse("32k,512k", &l1d, &l2) && l1d == 32 * KB && l2 == 512 * KB, "parse 32k,512k");
    CHECK(acn__cache_parse("49152,2097152", &l1d, &l2) && l1d == 48 * KB && l2 == 2048 * KB, "parse bytes");
    {
        static const char *bad_forms[] = {"", "48K", "48K,", ",1M", "48K;1M", "-1,1M", "48K,1M,", "48KB,1M",
                                          "48K, 1M", "99999999999,1M", "48K,4097M", "1048577K,1M"};
        for (i = 0; i < sizeof bad_forms / sizeof bad_forms[0]; i++)
            CHECK(!acn__cache_parse(bad_forms[i], &l1d, &l2), "parse \"%s\" should fail", bad_forms[i]);
    }
    /* acn_set_cache: takes, refuses with the reason and changes nothing, reads the CPU again */
    before = acn_cache(ctx);
    CHECK(before.l1d && before.l2 && before.from, "acn_cache: sizes and where they came from");
    CHECK(acn_set_cache(ctx, 1024, 1024 * KB) == ACN_ERR_ARG &&
              has(acn_error(ctx), "set_cache: L1 data 1024 bytes, L2 1048576 bytes: give 4 KB to 1 MB"),
          "set_cache refuses 1 KB of L1: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_set_cache(ctx, 48 * KB, 16 * KB) == ACN_ERR_ARG, "set_cache refuses 16 KB of L2");
    acn_clear_error(ctx);
    after = acn_cache(ctx);
    CHECK(after.l1d == before.l1d && after.l2 == before.l2 && after.from == before.from, "a refusal changes nothing");
    CHECK(acn_set_cache(ctx, 1024 * KB, 1024 * 1024 * KB) == ACN_OK, "set_cache: the largest");
    after = acn_cache(ctx);
    CHECK(after.l1d == 1024 * KB && !strcmp(after.from, "acn_set_cache") &&
              (best == ACN_SIMD_PORTABLE ? after.kc == 0 : after.kc == 512 && after.nc == 4096),
          "acn_cache after set_cache: %zu, %s, kc %d, nc %d", after.l1d, after.from, after.kc, after.nc);
    { /* (the CPU's sizes, whatever $ACN_CACHE set for this context) */
        size_t c1, c2, c3;
        acn__cache_cpuid(&c1, &c2, &c3);
        if (!acn__cache_ok(c1, c2)) c1 = 32 * KB, c2 = 512 * KB;
        CHECK(acn_set_cache(ctx, 0, 0) == ACN_OK && acn_cache(ctx).l1d == c1 && acn_cache(ctx).l2 == c2,
              "set_cache(0, 0) reads the CPU's sizes again: %zu, %zu against %zu, %zu", acn_cache(ctx).l1d,
              acn_cache(ctx).l2, c1, c2);
    }
#ifdef ACN__X86
    { /* the setting picks the kernel: the prefetching one at AVX-512 when on, and then no bursts */
        acn__gemm_job g;
        float x = 1.0f;
        int on;
        for (level = ACN_SIMD_AVX2; level <= best; level++)
            for (on = 0; on <= 1; on++) {
                ctx->prefetch = on;
                acn_set_simd(ctx, level);
                acn__gemm_setup(ctx, &g, 1, 1, 1, &x, 1, 1, &x, 1, 1, &x, 0);
                if (level == ACN_SIMD_AVX512)
                    CHECK(g.uk == (on ? acn__uk_avx512_pf : acn__uk_avx512) && g.uk_prefetch == on &&
                          acn_cache(ctx).prefetch == on, "prefetch %d at avx512: the kernel or the report is wrong", on);
                else
                    CHECK(g.uk == acn__uk_avx2 && !g.uk_prefetch && !acn_cache(ctx).prefetch,
                          "prefetch %d at avx2: the AVX2 kernel, no prefetching, none reported", on);
            }
        ctx->prefetch = acn__cpu_intel();
        acn_set_simd(ctx, best);
        if (best < ACN_SIMD_AVX512) printf("note: no AVX-512 here: the prefetching kernel is not run\n");
    }
#endif
    /* the same bits under every blocking, and with the kernel's prefetching off and on */
    for (level = ACN_SIMD_AVX2; level <= best; level++)
        for (threads = 1; threads <= 2; threads++) {
            gemm_blocks_run(level, threads, 0, 0, base, &n);
            for (k = 0; k < 5; k++) {
                kernel_prefetch = setting[k].pf;
                gemm_blocks_run(level, threads, setting[k].l1d, setting[k].l2, got, &m);
                CHECK(m == n && !memcmp(got, base, n * sizeof(float)), "gemm %s, %d threads, L1 %zu KB, L2 %zu KB, "
                      "prefetch %d: the bits changed", acn_simd_name(level), threads, setting[k].l1d / KB,
                      setting[k].l2 / KB, setting[k].pf);
            }
            kernel_prefetch = -1;
            for (flags = 0; flags <= ACN_RECOMPUTE; flags += ACN_RECOMPUTE) {
                ffn_l1d = ffn_l2 = 0;
                ffn_run(ffn_dims, level, threads, flags, 0, base, &n, &a0);
                CHECK(n < MAXN, "ffn blocks: %zu values", n);
                for (k = 0; k < 5; k++) {
                    ffn_l1d = setting[k].l1d;
                    ffn_l2 = setting[k].l2;
                    kernel_prefetch = setting[k].pf;
                    ffn_run(ffn_dims, level, threads, flags, 0, got, &m, &a0);
                    for (bad = 0, i = 0; m == n && i < n; i++) bad += memcmp(got + i, base + i, sizeof(float)) != 0;
                    CHECK(m == n && !bad, "ffn %s, %d threads%s, L1 %zu KB, L2 %zu KB, prefetch %d: %d of %zu values "
                          "or gradients changed", acn_simd_name(level), threads, flags ? ", recomputed" : "",
                          setting[k].l1d / KB, setting[k].l2 / KB, setting[k].pf, bad, n);
                }
                kernel_prefetch = -1;
            }
        }
    ffn_l1d = ffn_l2 = 0;
}

/* acn_linear_add_relu against acn_relu(acn_add(acn_linear(...), skip)):
 * the same bits, values and every gradient, at every SIMD level on one and
 * two threads. Sizes: x (2, 33, 40) with out 64 (whole 32-wide tiles: the
 * kernel's own epilogue, 66 rows: a short last row panel) and out 36 (an
 * edge of 4 columns: the epilogue over the stored tile), and x (3, 5, 7) with
 * out 9 (the plain loops of small products). dims: x's three, out. */
static void lar_run(const int *dims, int level, int threads, int reference, float *out, size_t *n_out)
{
    acn_ctx *c;
    int xs[3], ws[2], ss[3], i, k;
    acn_tensor *t[4], *y;
    float *up;
    size_t n = 0;
    xs[0] = ss[0] = dims[0]; xs[1] = ss[1] = dims[1]; xs[2] = dims[2];
    ws[0] = ss[2] = dims[3]; ws[1] = dims[2];
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "linear_add_relu: a context");
    acn_set_simd(c, level);
    acn_set_threads(c, threads);
    t[0] = acn_new(c, 3, xs, ACN_F_GRAD);
    t[1] = acn_new(c, 2, ws, ACN_F_GRAD); t[2] = acn_new(c, 1, ws, ACN_F_GRAD);
    t[3] = acn_new(c, 3, ss, ACN_F_GRAD);
    for (k = 0; k < 4; k++)
        for (i = 0; i < (int)t[k]->numel; i++)
            t[k]->data[i] = (float)((i * (7 + 2 * k) + 3 * k) % 23 - 11) / (k == 1 ? 12.0f : 4.0f);
    y = reference ? acn_relu(c, acn_add(c, acn_linear(c, t[0], t[1], t[2]), t[3]))
                  : acn_linear_add_relu(c, t[0], t[1], t[2], t[3]);
    CHECK(y && y->shape[0] == xs[0] && y->shape[1] == xs[1] && y->shape[2] == ws[0],
          "linear_add_relu: output shape (%s)", acn_error(c));
    if (!y) { acn_ctx_free(c); return; }
    up = (float *)malloc(y->numel * sizeof(float));
    for (i = 0; i < (int)y->numel; i++) up[i] = (float)(i % 13) * 0.1f - 0.6f;
    CHECK(acn_backward_with(c, y, up) == ACN_OK, "linear_add_relu: backward: %s", acn_error(c));
    memcpy(out, y->data, y->numel * sizeof(float));
    n = y->numel;
    for (k = 0; k < 4; k++) {
        memcpy(out + n, t[k]->grad, t[k]->numel * sizeof(float));
        n += t[k]->numel;
    }
    *n_out = n;
    free(up);
    acn_ctx_free(c);
}
static void test_linear_add_relu(void)
{
    enum { MAXN = 20000 };
    static const int shapes[3][4] = {{2, 33, 40, 64}, {2, 33, 40, 36}, {3, 5, 7, 9}};
    static float ref[MAXN], got[MAXN];
    size_t n = 0, m = 0, i, zeros = 0;
    int best = acn_set_simd(ctx, ACN_SIMD_AVX512), level, threads, sh;
    acn_set_simd(ctx, best);
    for (sh = 0; sh < 3; sh++)
        for (level = ACN_SIMD_PORTABLE; level <= best; level++) {
            const int *dims = shapes[sh];
            size_t outn = (size_t)dims[0] * dims[1] * dims[3];
            lar_run(dims, level, 1, 1, ref, &n);
            for (zeros = 0, i = 0; i < outn; i++) zeros += ref[i] == 0.0f;
            CHECK(zeros > outn / 8 && zeros < outn - outn / 8, "linear_add_relu %d x %d: the ReLU cuts %zu of %zu values "
                  "(the test needs both sides)", dims[0] * dims[1], dims[3], zeros, outn);
            for (threads = 1; threads <= 2; threads++) {
                lar_run(dims, level, threads, 0, got, &m);
                CHECK(m == n && !memcmp(got, ref, n * sizeof(float)),
                      "linear_add_relu %d x %d %s, %d threads: differs from relu(add(linear)) (relative %g)",
                      dims[0] * dims[1], dims[3], acn_simd_name(level), threads, m == n ? t_relerr(got, ref, n) : 1.0);
            }
        }
    { /* bad shapes and a NULL skip are refused with the reason */
        int xs[2] = {4, 6}, ws[2] = {5, 6}, ss[2] = {4, 6};
        acn_tensor *x = acn_new(ctx, 2, xs, 0), *W = acn_new(ctx, 2, ws, 0), *sk = acn_new(ctx, 2, ss, 0);
        CHECK(!acn_linear_add_relu(ctx, x, W, NULL, sk) && acn_status_of(ctx) == ACN_ERR_SHAPE &&
              has(acn_error(ctx), "linear_add_relu: x (4, 6), W (5, 6), b NULL, skip (4, 6)"),
              "linear_add_relu: a bad skip: %s", acn_error(ctx));
        acn_clear_error(ctx);
        CHECK(!acn_linear_add_relu(ctx, x, W, NULL, NULL) && acn_status_of(ctx) == ACN_ERR_ARG &&
              has(acn_error(ctx), "skip (input 3) is NULL"), "linear_add_relu: a NULL skip: %s", acn_error(ctx));
        acn_clear_error(ctx);
        acn_reset(ctx);
    }
}

/* LayerNorm's backward: dx, and gamma's and beta's gradients summed in the
 * same pass over fixed groups of rows: against float64 sums of the
 * definition, and the same bits on 1, 2 and 3 threads, at every SIMD level
 * (x (530, 128): the SIMD rows; x (530, 37): the scalar ones; 530 rows do
 * not split evenly into the groups). */
static void ln_run(int D, int level, int threads, float *out)
{
    acn_ctx *c;
    int xs[2], i, k;
    acn_tensor *t[3], *y;
    float *up;
    xs[0] = 530; xs[1] = D;
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "layernorm: a context");
    acn_set_simd(c, level);
    acn_set_threads(c, threads);
    t[0] = acn_new(c, 2, xs, ACN_F_GRAD);
    t[1] = acn_new(c, 1, xs + 1, ACN_F_GRAD);
    t[2] = acn_new(c, 1, xs + 1, ACN_F_GRAD);
    for (k = 0; k < 3; k++)
        for (i = 0; i < (int)t[k]->numel; i++) t[k]->data[i] = (float)((i * (7 + 2 * k) + 3 * k) % 23 - 11) / 8.0f;
    y = acn_layernorm(c, t[0], t[1], t[2], 1e-5f);
    up = (float *)malloc(y->numel * sizeof(float));
    for (i = 0; i < (int)y->numel; i++) up[i] = (float)(i % 13) * 0.1f - 0.6f;
    CHECK(acn_backward_with(c, y, up) == ACN_OK, "layernorm: backward: %s", acn_error(c));
    memcpy(out, t[0]->grad, t[0]->numel * sizeof(float));
    memcpy(out + t[0]->numel, t[1]->grad, (size_t)D * sizeof(float));
    memcpy(out + t[0]->numel + D, t[2]->grad, (size_t)D * sizeof(float));
    if (level == ACN_SIMD_PORTABLE && threads == 1) { /* gamma's and beta's sums against float64 */
        double worst = 0.0;
        int r, col;
        for (col = 0; col < D; col++) {
            double sg = 0.0, sb = 0.0;
            for (r = 0; r < 530; r++) {
                const float *xr = t[0]->data + (size_t)r * D;
                double m = 0.0, v = 0.0, h;
                for (k = 0; k < D; k++) m += xr[k];
                m /= D;
                for (k = 0; k < D; k++) v += (xr[k] - m) * (xr[k] - m);
                h = (xr[col] - m) / sqrt(v / D + 1e-5);
                sg += up[(size_t)r * D + col] * h;
                sb += up[(size_t)r * D + col];
            }
            if (fabs(t[1]->grad[col] - sg) / (1.0 + fabs(sg)) > worst) worst = fabs(t[1]->grad[col] - sg) / (1.0 + fabs(sg));
            if (fabs(t[2]->grad[col] - sb) / (1.0 + fabs(sb)) > worst) worst = fabs(t[2]->grad[col] - sb) / (1.0 + fabs(sb));
        }
        CHECK(worst < 1e-5, "layernorm D %d: gamma's and beta's gradients differ from float64 sums by %g", D, worst);
    }
    free(up);
    acn_ctx_free(c);
}
static void test_layernorm_groups(void)
{
    enum { MAXN = 530 * 128 + 256 };
    static float base[MAXN], got[MAXN];
    int best = acn_set_simd(ctx, ACN_SIMD_AVX512), level, threads, di, Ds[2] = {128, 37};
    acn_set_simd(ctx, best);
    for (di = 0; di < 2; di++)
        for (level = ACN_SIMD_PORTABLE; level <= best; level++) {
            size_t n = (size_t)530 * Ds[di] + 2 * (size_t)Ds[di];
            ln_run(Ds[di], level, 1, base);
            for (threads = 2; threads <= 3; threads++) {
                ln_run(Ds[di], level, threads, got);
                CHECK(!memcmp(got, base, n * sizeof(float)), "layernorm D %d %s, %d threads: the bits changed", Ds[di],
                      acn_simd_name(level), threads);
            }
        }
}

/* The weight gradient of acn_linear_mid, dW[j, t] = sum_b sum_k d_b[j, k]
 * x_b[t, k], summed in fixed groups of b: against float64 sums, and the
 * same bits on 1, 2 and 3 threads, at every SIMD level. The shapes take
 * AVX-512's dot-product path (tiles of 5 rows, a last tile overlapping the
 * one before, D not a multiple of 16) and its fallback (J under 5); 19
 * batch elements do not split evenly into the groups. */
static void lmid_dw_run(int J, int T, int D, int level, int threads, float *out)
{
    acn_ctx *c;
    int xs[3], ws[2], i;
    acn_tensor *x, *W, *y;
    float *up;
    xs[0] = 19; xs[1] = ws[1] = T; xs[2] = D; ws[0] = J;
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "linear_mid dW: a context");
    acn_set_simd(c, level);
    acn_set_threads(c, threads);
    x = acn_new(c, 3, xs, 0);
    W = acn_new(c, 2, ws, ACN_F_GRAD);
    for (i = 0; i < (int)x->numel; i++) x->data[i] = (float)((i * 7 + 3) % 23 - 11) / 8.0f;
    for (i = 0; i < (int)W->numel; i++) W->data[i] = (float)((i * 5 + 1) % 17 - 8) / 16.0f;
    y = acn_linear_mid(c, x, W, NULL);
    up = (float *)malloc(y->numel * sizeof(float));
    for (i = 0; i < (int)y->numel; i++) up[i] = (float)((i * 3) % 13) * 0.1f - 0.6f;
    CHECK(acn_backward_with(c, y, up) == ACN_OK, "linear_mid dW: backward: %s", acn_error(c));
    memcpy(out, W->grad, W->numel * sizeof(float));
    if (threads == 1) {
        double worst = 0.0;
        int j, t, b, k;
        for (j = 0; j < J; j++)
            for (t = 0; t < T; t++) {
                double s = 0.0, e;
                for (b = 0; b < 19; b++)
                    for (k = 0; k < D; k++)
                        s += (double)up[((size_t)b * J + j) * D + k] * x->data[((size_t)b * T + t) * D + k];
                e = fabs(W->grad[(size_t)j * T + t] - s) / (1.0 + fabs(s));
                if (e > worst) worst = e;
            }
        CHECK(worst < 1e-5, "linear_mid dW J %d T %d D %d %s: differs from float64 sums by %g", J, T, D,
              acn_simd_name(level), worst);
    }
    free(up);
    acn_ctx_free(c);
}
static void test_linear_mid_dw(void)
{
    static float base[65 * 65], got[65 * 65];
    static const int shapes[4][3] = {{64, 65, 128}, {65, 64, 33}, {7, 12, 16}, {3, 9, 20}};
    int best = acn_set_simd(ctx, ACN_SIMD_AVX512), level, threads, s;
    acn_set_simd(ctx, best);
    for (s = 0; s < 4; s++)
        for (level = ACN_SIMD_PORTABLE; level <= best; level++) {
            const int *sh = shapes[s];
            lmid_dw_run(sh[0], sh[1], sh[2], level, 1, base);
            for (threads = 2; threads <= 3; threads++) {
                lmid_dw_run(sh[0], sh[1], sh[2], level, threads, got);
                CHECK(!memcmp(got, base, (size_t)sh[0] * sh[1] * sizeof(float)),
                      "linear_mid dW J %d T %d D %d %s, %d threads: the bits changed", sh[0], sh[1], sh[2],
                      acn_simd_name(level), threads);
            }
        }
}

/* The strided product on one thread (attention, linear_mid) against the
 * definition, on blocks inside larger arrays, at every SIMD level. */
static void test_gemm_on(void)
{
    enum { LD = 80 };
    static float A[LD * LD], B[LD * LD], C1[LD * LD], C2[LD * LD];
    int level, best = acn_set_simd(ctx, ACN_SIMD_AVX512), i, j, k, M = 37, N = 45, K = 29, acc;
    for (i = 0; i < LD * LD; i++) {
        A[i] = (float)(i * 37 % 101 - 50) / 50.0f;
        B[i] = (float)(i * 53 % 97 - 48) / 48.0f;
    }
    for (level = ACN_SIMD_PORTABLE; level <= best; level++)
        for (acc = 0; acc < 2; acc++) {
            double e;
            acn_set_simd(ctx, level);
            for (i = 0; i < LD * LD; i++) C1[i] = C2[i] = (float)(i % 7);
            /* op(A)(i, k) = A[3 + i + k LD] (a transposed block), op(B)(k, j) = B[5 + k LD + j] */
            acn__gemm_on(ctx, 0, M, N, K, A + 3, 1, LD, B + 5, LD, 1, C2 + 2, LD, acc);
            for (i = 0; i < M; i++)
                for (j = 0; j < N; j++) {
                    double s = 0.0;
                    for (k = 0; k < K; k++) s += (double)A[3 + i + k * LD] * B[5 + k * LD + j];
                    C1[2 + i * LD + j] = (float)(acc ? C1[2 + i * LD + j] + s : s);
                }
            e = t_relerr(C2, C1, (size_t)LD * LD);
            CHECK(e < 1e-6, "gemm_on %s acc %d: relative error %g", acn_simd_name(level), acc, e);
        }
    acn_set_simd(ctx, best);
}

/* The SIMD element-wise helpers at every level the CPU has, against the
 * definitions: GELU forward and backward within 1e-6 (x 1 + |x|) of the
 * double-precision formula over [-12, 12]; ReLU, column sums, fill and
 * add equal to the portable loops bit for bit; AdamW (parameters with and
 * without decay, lengths not a multiple of 8) bit for bit the portable
 * step. Lengths leave scalar tails. */
static void simd_adamw_run(int level, float *out)
{
    acn_ctx *c;
    acn_adamw opt;
    int n1 = 37, n2 = 13, i, s;
    acn_tensor *a, *b;
    acn_ctx_new(&c, NULL);
    acn_set_simd(c, level);
    a = acn_param(c, "a", 1, &n1);
    b = acn_param(c, "b", 1, &n2);
    acn_param_set_decay(b, 0);
    acn_adamw_init(c, &opt, 0.9f, 0.95f, 1e-6f, 0.1f);
    for (i = 0; i < n1; i++) a->data[i] = (float)(i % 9 - 4) / 3.0f;
    for (i = 0; i < n2; i++) b->data[i] = (float)(i % 5 - 2) / 7.0f;
    for (s = 1; s <= 3; s++) {
        for (i = 0; i < n1; i++) a->grad[i] = (float)((i * s) % 11 - 5) / 4.0f;
        for (i = 0; i < n2; i++) b->grad[i] = (float)((i + s) % 7 - 3) / 5.0f;
        acn_adamw_step(c, &opt, 0.01f);
    }
    memcpy(out, a->data, (size_t)n1 * sizeof(float));
    memcpy(out + n1, b->data, (size_t)n2 * sizeof(float));
    acn_adamw_free(&opt);
    acn_ctx_free(c);
}
static void test_simd_elementwise(void)
{
    enum { N = 1003, R = 7, C = 45 };
    static float x[N], d[N], y[N], g[N], cs[2][2 * C], ad[2][50];
    int level, best = acn_set_simd(ctx, ACN_SIMD_AVX512), i, k;
    for (i = 0; i < N; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (N - 1);
        d[i] = (float)(i * 29 % 17 - 8) / 8.0f;
    }
    simd_adamw_run(ACN_SIMD_PORTABLE, ad[0]);
    for (level = ACN_SIMD_PORTABLE; level <= best; level++) {
        double worst = 0.0, worstb = 0.0;
        size_t j;
        acn_set_simd(ctx, level);
        /* GELU: y = x Phi(x);  g = 0.5 + d (Phi(x) + x phi(x)) */
        for (j = acn__gelu_fast(ctx, 0, x, NULL, y, 0, N); j < N; j++) y[j] = acn__gelu1(x[j]);
        for (i = 0; i < N; i++) g[i] = 0.5f;
        for (j = acn__gelu_fast(ctx, 1, x, d, g, 0, N); j < N; j++) g[j] += d[j] * acn__dgelu1(x[j]);
        for (i = 0; i < N; i++) {
            double xv = x[i], cdf = 0.5 * (1.0 + erf(xv / sqrt(2.0))), pdf = exp(-0.5 * xv * xv) / sqrt(2.0 * 3.14159265358979324);
            double e1 = fabs(y[i] - xv * cdf) / (1.0 + fabs(xv)), e2 = fabs(g[i] - (0.5 + d[i] * (cdf + xv * pdf))) / (1.0 + fabs(xv));
            if (e1 > worst) worst = e1;
            if (e2 > worstb) worstb = e2;
        }
        CHECK(worst < 1e-6 && worstb < 1e-6, "GELU at %s: error %g forward, %g backward", acn_simd_name(level), worst, worstb);
        /* ReLU forward and backward against the definition */
        for (j = acn__relu_fast(ctx, 0, x, NULL, y, 0, N); j < N; j++) y[j] = x[j] > 0.0f ? x[j] : 0.0f;
        for (i = 0; i < N; i++) g[i] = 0.25f;
        for (j = acn__relu_fast(ctx, 1, x, d, g, 0, N); j < N; j++) g[j] += x[j] > 0.0f ? d[j] : 0.0f;
        for (i = 0, k = 0; i < N; i++)
            k += y[i] != (x[i] > 0.0f ? x[i] : 0.0f) || g[i] != 0.25f + (x[i] > 0.0f ? d[i] : 0.0f);
        CHECK(k == 0, "ReLU at %s: %d values differ", acn_simd_name(level), k);
        /* ReLU's backward into a fresh gradient (written, not added) */
        for (j = acn__relu_fast(ctx, 2, x, d, g, 0, N); j < N; j++) g[j] = x[j] > 0.0f ? d[j] : 0.0f;
        for (i = 0, k = 0; i < N; i++) k += g[i] != (x[i] > 0.0f ? d[i] : 0.0f);
        CHECK(k == 0, "ReLU written at %s: %d values differ", acn_simd_name(level), k);
        /* column sums of R x C (C not a multiple of 8): the bias gradients */
        {
            float *gb = cs[level > 0];
            size_t r, c, lo;
            for (c = 0; c < C; c++) gb[c] = 1.0f;
            lo = acn__colsum_fast(ctx, d, R, C, 0, C, gb);
            for (r = 0; r < R; r++)
                for (c = lo; c < C; c++) gb[c] += d[r * C + c];
            if (level > 0) CHECK(!memcmp(cs[0], cs[1], sizeof cs[0]), "column sums at %s differ", acn_simd_name(level));
        }
        /* fill and add */
        acn__fill(ctx, y, 1.5f, N);
        acn__add_to(ctx, y, d, N);
        for (i = 0, k = 0; i < N; i++) k += y[i] != 1.5f + d[i];
        CHECK(k == 0, "fill and add at %s: %d values differ", acn_simd_name(level), k);
        /* AdamW: bit for bit the portable step */
        simd_adamw_run(level, ad[1]);
        CHECK(!memcmp(ad[0], ad[1], sizeof ad[0]), "AdamW at %s differs from the portable step", acn_simd_name(level));
    }
    acn_set_simd(ctx, best);
}

/* A training step allocates nothing once the first step has run. */
static void test_no_malloc(void)
{
    acn_ctx *c;
    acn_adamw opt;
    int ws[2] = {16, 8}, os[2] = {4, 16}, xs[2] = {32, 8}, labels[32], i, step;
    acn_tensor *W1, *b1, *W2, *x, *loss;
    long before = 0;
    acn_ctx_config cfg = acn_ctx_defaults();
    cfg.arena_bytes = 4 << 20;
    acn_ctx_new(&c, &cfg);
    W1 = acn_param(c, "fc1.weight", 2, ws);
    b1 = acn_param(c, "fc1.bias", 1, ws);
    W2 = acn_param(c, "fc2.weight", 2, os);
    acn_init_linear(c, W1, b1);
    acn_init_linear(c, W2, NULL);
    acn_adamw_init(c, &opt, 0.9f, 0.999f, 1e-8f, 0.01f);
    for (i = 0; i < 32; i++) labels[i] = i % 4;
    for (step = 0; step < 5; step++) {
        if (step == 1) before = n_mallocs;
        acn_reset(c);
        x = acn_new(c, 2, xs, 0);
        acn_init_normal(c, x, 0.0f, 1.0f);
        loss = acn_cross_entropy(c, acn_linear(c, acn_gelu_ex(c, acn_linear(c, x, W1, b1), ACN_RECOMPUTE), W2, NULL),
                                 labels, 0.1f, -1);
        acn_zero_grad(c);
        acn_backward(c, loss);
        acn_clip_grad_norm(c, 1.0f, NULL);
        acn_adamw_step(c, &opt, 1e-3f);
    }
    CHECK(acn_status_of(c) == ACN_OK, "%s", acn_error(c));
    CHECK(n_mallocs == before, "%ld allocations in 4 training steps", n_mallocs - before);
    acn_adamw_free(&opt);
    acn_ctx_free(c);
}

static void test_finite(void)
{
    float v[3] = {1.0f, INFINITY, 2.0f};
    acn_tensor *x;
    acn_reset(ctx);
    x = vec(3, v, 0);
    CHECK(acn_scale(ctx, x, 2.0f) != NULL, "checking is off by default");
    acn_set_check_finite(ctx, 1);
    CHECK(acn_scale(ctx, x, 2.0f) == NULL && acn_status_of(ctx) == ACN_ERR_NONFINITE &&
          has(acn_error(ctx), "scale: 1 non-finite values in the output (3), first at index 1"),
          "%s", acn_error(ctx));
    acn_clear_error(ctx);
    /* a gradient that overflows: d/dx of sum(1e30 * (1e30 * x)) */
    v[1] = 1.0f;
    x = vec(3, v, 1);
    {
        acn_tensor *loss = acn_sum(ctx, acn_scale(ctx, acn_scale(ctx, x, 1e-30f), 1e30f), ACN_AXIS_ALL);
        float big[1] = {1e38f};
        acn_status st = acn_backward_with(ctx, loss, big);
        (void)st;
        /* d = 1e38 * 1e30 overflows in the outer scale's backward */
        CHECK(acn_status_of(ctx) == ACN_ERR_NONFINITE && has(acn_error(ctx), "scale: 3 non-finite values in the gradient"),
              "%s", acn_error(ctx));
    }
    acn_clear_error(ctx);
    acn_set_check_finite(ctx, 0);
}

static void test_rng_init(void)
{
    acn_rng r;
    double s = 0, s2 = 0, bound;
    int i, n = 200000;
    int ws[4] = {6, 3, 4, 4}, w1[1] = {5}, big[2] = {200, 500};
    acn_tensor *W, *t;
    /* SplitMix64 reference outputs for seed 0 */
    acn_rng_seed(&r, 0);
    CHECK(acn_rng_u64(&r) == 0xE220A8397B1DCDAFULL, "splitmix64 output 1");
    CHECK(acn_rng_u64(&r) == 0x6E789E6AA1B965F4ULL, "splitmix64 output 2");
    acn_rng_seed(&r, 7);
    for (i = 0; i < n; i++) {
        float z = acn_rng_normal(&r);
        s += z;
        s2 += (double)z * z;
    }
    CHECK(fabs(s / n) < 0.01 && fabs(s2 / n - 1.0) < 0.01, "normal mean %g var %g", s / n, s2 / n);
    acn_reset(ctx);
    /* PyTorch Conv2d default: fan_in = 3*4*4 = 48, bound 1/sqrt(48) */
    W = acn_new(ctx, 4, ws, 0);
    acn_init_linear(ctx, W, NULL);
    bound = 1.0 / sqrt(48.0);
    for (i = 0, s = 0; i < (int)W->numel; i++) s = fabs(W->data[i]) > s ? fabs(W->data[i]) : s;
    CHECK(s <= bound && s > 0.9 * bound, "conv weight max %g, bound %g", s, bound);
    CHECK(acn_init_kaiming_uniform(ctx, acn_new(ctx, 1, w1, 0), 0.0f) == ACN_ERR_SHAPE &&
          has(acn_error(ctx), "at least 2 dimensions"), "%s", acn_error(ctx));
    acn_clear_error(ctx);
    /* the variance of each distribution, from its formula */
    t = acn_new(ctx, 2, big, 0);
    acn_init_xavier_uniform(ctx, t, 1.0f);         /* var = 2 / (fan_in + fan_out) */
    for (i = 0, s2 = 0; i < (int)t->numel; i++) s2 += (double)t->data[i] * t->data[i];
    CHECK(fabs(s2 / t->numel / (2.0 / 700.0) - 1.0) < 0.02, "xavier variance ratio %g", s2 / t->numel / (2.0 / 700.0));
    acn_init_trunc_normal(ctx, t, 0.0f, 1.0f, -2.0f, 2.0f); /* var of N(0,1) cut at +-2: 0.773741 */
    for (i = 0, s = 0, s2 = 0; i < (int)t->numel; i++) {
        s2 += (double)t->data[i] * t->data[i];
        if (fabs(t->data[i]) > 2.0) s = 1;
    }
    CHECK(s == 0 && fabs(s2 / t->numel - 0.773741) < 0.01, "trunc normal variance %g", s2 / t->numel);
    acn_init_trunc_normal(ctx, t, 0.5f, 0.02f, -2.0f, 2.0f); /* bounds far away: plain N(0.5, 0.02^2) */
    for (i = 0, s = 0, s2 = 0; i < (int)t->numel; i++) { s += t->data[i]; s2 += (t->data[i] - 0.5) * (t->data[i] - 0.5); }
    CHECK(fabs(s / t->numel - 0.5) < 1e-3 && fabs(sqrt(s2 / t->numel) - 0.02) < 5e-4, "trunc normal N(0.5, 0.02)");
    /* same seed, same numbers */
    acn_rng_seed(acn_ctx_rng(ctx), 99);
    acn_init_uniform(ctx, W, -1, 1);
    s = W->data[17];
    acn_rng_seed(acn_ctx_rng(ctx), 99);
    acn_init_uniform(ctx, W, -1, 1);
    CHECK(W->data[17] == s, "reseeding repeats");
}

static void test_optim_sched(void)
{
    acn_schedule c = acn_schedule_warmup_cosine(1e-3f, 10, 110, 1e-6f), st = acn_schedule_step(0.1f, 3, 0.5f);
    acn_ctx *o;
    acn_sgd sgd;
    acn_adamw adam;
    int one = 1, two = 2;
    acn_tensor *w, *nd, *d;
    float norm;
    CHECK(fabs(acn_lr_at(&c, 0) - 1e-4f) < 1e-10, "warmup step 0: %g", acn_lr_at(&c, 0));
    CHECK(fabs(acn_lr_at(&c, 9) - 1e-3f) < 1e-10, "warmup step 9");
    CHECK(fabs(acn_lr_at(&c, 10) - 1e-3f) < 1e-10, "cosine start");
    CHECK(fabs(acn_lr_at(&c, 60) - 5.005e-4f) < 1e-9, "cosine middle: %g", acn_lr_at(&c, 60));
    CHECK(acn_lr_at(&c, 110) == 1e-6f && acn_lr_at(&c, 500) == 1e-6f, "cosine end");
    CHECK(fabs(acn_lr_at(&st, 5) - 0.05f) < 1e-9 && fabs(acn_lr_at(&st, 6) - 0.025f) < 1e-9, "step schedule");
    c = acn_schedule_constant(0.3f);
    CHECK(acn_lr_at(&c, 1000) == 0.3f, "constant");

    acn_ctx_new(&o, NULL);
    w = acn_param(o, "w", 1, &one);
    CHECK(acn_sgd_init(o, &sgd, 0.9f, 0.0f, 0.0f, 0) == ACN_OK, "sgd init");
    /* loss = 2 w: g = 2. buf1 = 2, w = 1 - 0.1*2 = 0.8; buf2 = 0.9*2 + 2 = 3.8, w = 0.8 - 0.38 = 0.42 */
    w->data[0] = 1.0f;
    w->grad[0] = 2.0f;
    acn_sgd_step(o, &sgd, 0.1f);
    acn_sgd_step(o, &sgd, 0.1f);
    CHECK(fabs(w->data[0] - 0.42f) < 1e-6, "sgd momentum: %g", w->data[0]);
    acn_sgd_free(&sgd);
    /* decay on and off with a zero gradient: only the decayed one shrinks, by 1 - lr wd */
    nd = acn_param(o, "nd", 1, &one);
    acn_param_set_decay(nd, 0);
    CHECK(acn_sgd_step(o, &sgd, 0.1f) == ACN_ERR_STATE && has(acn_error(o), "create the optimizer after the whole model"),
          "%s", acn_error(o));
    acn_clear_error(o);
    acn_adamw_init(o, &adam, 0.9f, 0.999f, 1e-8f, 0.5f);
    w->data[0] = nd->data[0] = 2.0f;
    acn_zero_grad(o);
    acn_adamw_step(o, &adam, 0.1f);
    CHECK(fabs(w->data[0] - 2.0f * 0.95f) < 1e-6 && nd->data[0] == 2.0f, "decay: %g %g", w->data[0], nd->data[0]);
    /* one AdamW step with g = 3: m^ = 3, v^ = 9, w -= lr * 3 / (3 + eps) */
    w->grad[0] = 3.0f;
    w->data[0] = 1.0f;
    acn_adamw_free(&adam);
    acn_adamw_init(o, &adam, 0.9f, 0.999f, 1e-8f, 0.0f);
    acn_adamw_step(o, &adam, 0.01f);
    CHECK(fabs(w->data[0] - (1.0f - 0.01f * 3.0f / (3.0f + 1e-8f))) < 1e-6, "adamw step 1: %.9g", w->data[0]);
    acn_adamw_free(&adam);
    /* clipping: gradients (3, 4) and 0 -> norm 5, scaled to norm 1 */
    d = acn_param(o, "d", 1, &two);
    acn_zero_grad(o);
    d->grad[0] = 3.0f;
    d->grad[1] = 4.0f;
    acn_clip_grad_norm(o, 1.0f, &norm);
    CHECK(norm == 5.0f && fabs(d->grad[0] - 0.6f) < 1e-6 && fabs(d->grad[1] - 0.8f) < 1e-6, "clip: %g %g %g", norm, d->grad[0], d->grad[1]);
    acn_clip_grad_norm(o, 10.0f, &norm);
    CHECK(fabs(d->grad[1] - 0.8f) < 1e-6, "clip below the limit changes nothing");
    acn_ctx_free(o);
}

/* Write a file of raw bytes: an 8-byte length then the header text. */
static void write_raw(const char *path, const char *header, const void *data, size_t n, long len_override)
{
    FILE *f = fopen(path, "wb");
    unsigned char len8[8];
    unsigned long long hl = len_override >= 0 ? (unsigned long long)len_override : strlen(header);
    int i;
    for (i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void test_safetensors(void)
{
    acn_ctx *a, *b;
    acn_st st;
    int ws[2] = {3, 4}, bs[1] = {3}, other[2] = {4, 3};
    const char *kv[4] = {"config", "width=4 \"quoted\" back\\slash", "note", "caf\xc3\xa9"};
    acn_tensor *W, *B;
    FILE *f;
    float v[3] = {1, 2, 3};
    const char *path = "build/test_core_params.safetensors";
    acn_ctx_new(&a, NULL);
    W = acn_param(a, "blocks.0.ch.fc1.weight", 2, ws);
    B = acn_param(a, "blocks.0.ch.fc1.bias", 1, bs);
    acn_init_linear(a, W, B);
    CHECK(acn_save_params(a, path, kv, 2) == ACN_OK, "save: %s", acn_error(a));
    f = fopen("build/test_core_params.safetensors.tmp", "rb");
    CHECK(f == NULL, "the temporary file was left behind");
    if (f) fclose(f);
    /* a folder that does not exist: the system's reason is in the message */
    CHECK(acn_save_params(a, "build/no_such_folder/x.safetensors", NULL, 0) == ACN_ERR_IO &&
          has(acn_error(a), "build/no_such_folder/x.safetensors.tmp: cannot open for writing: ") &&
          has(acn_error(a), strerror(ENOENT)), "save into a missing folder: %s", acn_error(a));
    acn_clear_error(a);
    CHECK(acn_st_read(a, path, &st) == ACN_OK, "read: %s", acn_error(a));
    CHECK(st.n == 2 && st.data_start % 8 == 0, "entries %d, data at %zu", st.n, st.data_start);
    CHECK(st.n_meta == 2 && acn_st_meta(&st, "config") && !strcmp(acn_st_meta(&st, "config"), kv[1]) &&
          !strcmp(acn_st_meta(&st, "note"), kv[3]), "metadata round trip");
    acn_st_free(&st);
    /* load into a second model */
    acn_ctx_new(&b, NULL);
    acn_param(b, "blocks.0.ch.fc1.weight", 2, ws);
    acn_param(b, "blocks.0.ch.fc1.bias", 1, bs);
    CHECK(acn_load_params(b, path) == ACN_OK, "load: %s", acn_error(b));
    CHECK(!memcmp(acn_param_find(b, "blocks.0.ch.fc1.weight")->data, W->data, 12 * sizeof(float)) &&
          !memcmp(acn_param_find(b, "blocks.0.ch.fc1.bias")->data, B->data, 3 * sizeof(float)), "loaded values");
    acn_ctx_free(b);
    /* strict loading */
    acn_ctx_new(&b, NULL);
    acn_param(b, "blocks.0.ch.fc1.weight", 2, other);
    acn_param(b, "blocks.0.ch.fc1.bias", 1, bs);
    CHECK(acn_load_params(b, path) == ACN_ERR_FORMAT && has(acn_error(b), "another shape"), "%s", acn_error(b));
    acn_ctx_free(b);
    acn_ctx_new(&b, NULL);
    acn_param(b, "blocks.0.ch.fc1.bias", 1, bs);
    CHECK(acn_load_params(b, path) == ACN_ERR_FORMAT && has(acn_error(b), "not a parameter of this model"), "%s", acn_error(b));
    acn_ctx_free(b);
    acn_ctx_new(&b, NULL);
    acn_param(b, "blocks.0.ch.fc1.weight", 2, ws);
    acn_param(b, "blocks.0.ch.fc1.bias", 1, bs);
    acn_param(b, "blocks.0.ch.fc2.bias", 1, bs);
    CHECK(acn_load_params(b, path) == ACN_ERR_FORMAT && has(acn_error(b), "'blocks.0.ch.fc2.bias' (3) is missing"), "%s", acn_error(b));
    acn_ctx_free(b);
    /* malformed files: each refused with a message naming the problem */
    {
        static const struct { const char *header; long len; size_t n; const char *want; } bad[] = {
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", -1, 8, "outside the 8 data bytes"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", -1, 12, "12 bytes for 2 elements"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}", -1, 12, "expected ',' or '}'"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12],\"x\":1}}", -1, 12, "unknown field 'x'"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3]}}", -1, 12, "lacks dtype, shape or data_offsets"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8, "appears twice"},
            {"{\"__metadata__\":{\"k\":3}}", -1, 0, "is not a string"},
            {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", -1, 0, "key 'k' appears twice"},
            {"{\"__metadata__\":{\"k\":\"1\"},\"__metadata__\":{\"j\":\"2\"}}", -1, 0, "__metadata__ appears twice"},
            {"{}", 1000, 0, "not a safetensors file"},
            {"[1]", -1, 0, "not a JSON object"},
            {"{}  x", -1, 0, "after the header's closing brace"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", -1, 12, "leave a gap at byte 4"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12, "overlap at byte 8"},
            {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 8, "4 bytes after the last tensor"},
            {"{\"a\":{\"dtype\":\"I64\",\"shape\":[1073741824,1073741824],\"data_offsets\":[0,4]}}", -1, 4, "too large"},
            {"{\"a\":{\"dtype\":\"I64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", -1, 4, "integers in [0, 2^53]"},
        };
        const char *bp = "build/test_core_bad.safetensors";
        size_t k;
        for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            float zeros[4] = {0, 0, 0, 0};
            write_raw(bp, bad[k].header, zeros, bad[k].n, bad[k].len);
            CHECK(acn_st_read(a, bp, &st) != ACN_OK && has(acn_error(a), bad[k].want) && st.buf == NULL,
                  "bad file %zu: got '%s', want '%s'", k, acn_error(a), bad[k].want);
            acn_clear_error(a);
        }
        CHECK(acn_st_read(a, "build/no/such/file", &st) == ACN_ERR_IO && has(acn_error(a), "cannot open"), "%s", acn_error(a));
        acn_clear_error(a);
        /* a valid file by hand, with JSON escapes and padding */
        write_raw(bp, "{\"a\\u00e9\\\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}   ", v, 12, -1);
        CHECK(acn_st_read(a, bp, &st) == ACN_OK && st.n == 1 && !strcmp(st.entries[0].name, "a\xc3\xa9\"b"),
              "escaped name: %s", acn_error(a));
        {
            float got[3];
            CHECK(acn_st_get_f32(a, &st, "a\xc3\xa9\"b", got, 3) == ACN_OK && !memcmp(got, v, 12), "values");
            CHECK(acn_st_get_f32(a, &st, "a\xc3\xa9\"b", got, 2) == ACN_ERR_FORMAT, "wrong count accepted");
            acn_clear_error(a);
        }
        acn_st_free(&st);
    }
    /* typed items: exact integers through the file, and read back from memory */
    {
        const unsigned char u8[3] = {1, 2, 255};
        const int64_t i64[2] = {((int64_t)1 << 40) + 3, -5};
        const int32_t i32[1] = {-7};
        const float f1[1] = {1.5f};
        acn_st_item it[4];
        unsigned char gu[3];
        int64_t gi[2];
        int32_t g32;
        float gf;
        FILE *fp;
        unsigned char raw[4096];
        size_t nraw;
        memset(it, 0, sizeof it);
        it[0].name = "rng.state"; it[0].dtype = ACN_DT_U8; it[0].ndim = 1; it[0].shape[0] = 3; it[0].data = u8;
        it[1].name = "step"; it[1].dtype = ACN_DT_I64; it[1].ndim = 1; it[1].shape[0] = 2; it[1].data = i64;
        it[2].name = "epoch"; it[2].dtype = ACN_DT_I32; it[2].ndim = 0; it[2].data = i32;
        it[3].name = "lr"; it[3].dtype = ACN_DT_F32; it[3].ndim = 1; it[3].shape[0] = 1; it[3].data = f1;
        CHECK(acn_st_write_items(a, "build/test_core_items.safetensors", it, 4, NULL, 0) == ACN_OK, "%s", acn_error(a));
        fp = fopen("build/test_core_items.safetensors", "rb");
        nraw = fp ? fread(raw, 1, sizeof raw, fp) : 0;
        if (fp) fclose(fp);
        CHECK(acn_st_parse(a, &st, raw, nraw, "items") == ACN_OK, "parse from memory: %s", acn_error(a));
        CHECK(acn_st_get(a, &st, "rng.state", ACN_DT_U8, gu, 3) == ACN_OK && gu[2] == 255 &&
              acn_st_get(a, &st, "step", ACN_DT_I64, gi, 2) == ACN_OK && gi[0] == ((int64_t)1 << 40) + 3 && gi[1] == -5 &&
              acn_st_get(a, &st, "epoch", ACN_DT_I32, &g32, 1) == ACN_OK && g32 == -7 &&
              acn_st_get_f32(a, &st, "lr", &gf, 1) == ACN_OK && gf == 1.5f, "typed values: %s", acn_error(a));
        CHECK(acn_st_get(a, &st, "step", ACN_DT_F32, gi, 4) == ACN_ERR_FORMAT && has(acn_error(a), "not 4 values"),
              "wrong dtype: %s", acn_error(a));
        acn_clear_error(a);
        acn_st_free(&st);
        it[1].name = "rng.state";
        CHECK(acn_st_write_items(a, "build/test_core_items.safetensors", it, 2, NULL, 0) == ACN_ERR_ARG &&
              has(acn_error(a), "unique name"), "duplicate names: %s", acn_error(a));
        acn_clear_error(a);
        {
            const char *kv[4] = {"step", "1", "step", "2"};
            CHECK(acn_st_write_items(a, "build/test_core_items.safetensors", it, 1, kv, 2) == ACN_ERR_ARG &&
                  has(acn_error(a), "metadata key 1 ('step') is missing or given twice"), "duplicate metadata: %s",
                  acn_error(a));
            acn_clear_error(a);
        }
        CHECK(acn_st_parse(a, &st, raw, 7, "short") == ACN_ERR_FORMAT && has(acn_error(a), "not a safetensors file"),
              "%s", acn_error(a));
        acn_clear_error(a);
    }
    acn_ctx_free(a);
}

/* A custom op inside a graph: y = sum(cube(x) * 2), dy/dx = 6 x^2. */
static void cube_fwd(acn_tensor *const *in, int n, acn_tensor *out, void *u)
{
    size_t i;
    (void)n; (void)u;
    for (i = 0; i < out->numel; i++) out->data[i] = in[0]->data[i] * in[0]->data[i] * in[0]->data[i];
}
static void cube_bwd(acn_tensor *const *in, int n, acn_tensor *out, void *u)
{
    size_t i;
    (void)n; (void)u;
    for (i = 0; i < out->numel; i++) in[0]->grad[i] += 3 * in[0]->data[i] * in[0]->data[i] * out->grad[i];
}
static void test_custom(void)
{
    float xv[2] = {1.5f, -2.0f};
    acn_tensor *x, *y;
    acn_reset(ctx);
    x = vec(2, xv, 1);
    y = acn_custom(ctx, "cube", &x, 1, 1, x->shape, cube_fwd, cube_bwd, NULL);
    acn_backward(ctx, acn_sum(ctx, acn_scale(ctx, y, 2.0f), ACN_AXIS_ALL));
    CHECK(y && !strcmp(y->name, "cube") && x->grad[0] == 6 * 2.25f && x->grad[1] == 24.0f, "custom: %g %g",
          x->grad[0], x->grad[1]);
}

/* NULL contexts and structs: no crash, and the reason where a context can
 * hold one. */
/* acn_read, acn_read_grad, acn_write, acn_item, acn_argmax, acn_grad_norm:
 * values by hand, and each misuse refused with its error. */
static void test_host_io(void)
{
    int ws[2] = {2, 3}, rs[2] = {3, 3}, one = 1, pred[3];
    float w[6] = {1, -2, 3, 0.5f, 4, -1}, got[6], g[6];
    float rows[9] = {1, 5, 5, /* ties: the first */ -1, -3, -2, 1, NAN, 2 /* NaN is never larger */};
    acn_tensor *W = acn_param_find(ctx, "io.w"), *l, *x, *r;
    if (!W) W = acn_param(ctx, "io.w", 2, ws);
    acn_reset(ctx);
    CHECK(W && acn_write(ctx, W, w) == ACN_OK && acn_read(ctx, W, got) == ACN_OK && !memcmp(got, w, sizeof w),
          "write then read a parameter");
    /* loss = sum(W * W) / 2: dL/dW = W, |dL/dW| = |W| = sqrt(1+4+9+0.25+16+1) = sqrt(31.25) */
    acn_zero_grad(ctx);
    l = acn_scale(ctx, acn_sum(ctx, acn_mul(ctx, W, W), ACN_AXIS_ALL), 0.5f);
    CHECK(l && acn_backward(ctx, l) == ACN_OK, "%s", acn_error(ctx));
    CHECK(acn_item(ctx, l) == 15.625f, "item %g, want 15.625", (double)acn_item(ctx, l));
    CHECK(acn_read_grad(ctx, W, g) == ACN_OK && !memcmp(g, w, sizeof w), "read_grad is W");
    CHECK(fabs(acn_grad_norm(ctx, W) - sqrt(31.25)) < 1e-12, "grad_norm %.17g", acn_grad_norm(ctx, W));
    r = acn_input(ctx, 2, rs, rows);
    CHECK(acn_argmax(ctx, r, pred) == ACN_OK && pred[0] == 1 && pred[1] == 0 && pred[2] == 2,
          "argmax %d %d %d, want 1 0 2", pred[0], pred[1], pred[2]);
    x = acn_new(ctx, 1, &one, 0);
    CHECK(acn_write(ctx, x, w) == ACN_OK && acn_item(ctx, x) == 1.0f, "write a leaf");
    /* misuse */
    CHECK(isnan(acn_item(ctx, W)) && acn_status_of(ctx) == ACN_ERR_SHAPE && strstr(acn_error(ctx), "acn_read"),
          "item of 6 values: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_write(ctx, l, w) == ACN_ERR_STATE && strstr(acn_error(ctx), "output of scale"), "write an op's "
          "output: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_read_grad(ctx, x, g) == ACN_ERR_STATE && strstr(acn_error(ctx), "no gradient"), "read_grad of a "
          "tensor without one: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(isnan(acn_grad_norm(ctx, x)) && acn_status_of(ctx) == ACN_ERR_STATE, "grad_norm without one");
    acn_clear_error(ctx);
    CHECK(acn_read(ctx, W, NULL) == ACN_ERR_ARG && strstr(acn_error(ctx), "6 values"), "NULL buffer: %s",
          acn_error(ctx));
    acn_clear_error(ctx);
    acn_reset(ctx);
    CHECK(acn_read(ctx, x, got) == ACN_ERR_STATE && strstr(acn_error(ctx), "acn_reset"), "a tensor from before "
          "the reset: %s", acn_error(ctx));
    acn_clear_error(ctx);
    CHECK(acn_read(NULL, W, got) == ACN_ERR_ARG, "no context");
    {   /* a GPU context from a build without ACN_CUDA: refused, saying how to build one */
        acn_ctx_config cfg = acn_ctx_defaults();
        acn_ctx *g = NULL;
        char why[300];
        cfg.device = ACN_DEVICE_CUDA;
        CHECK(acn_ctx_new_ex(&g, &cfg, why, sizeof why) == ACN_ERR_ARG && !g && strstr(why, "ACN_CUDA") &&
                  strstr(why, "acn_cuda.o"), "a GPU context without ACN_CUDA: %s", why);
        cfg.device = 7;
        CHECK(acn_ctx_new_ex(&g, &cfg, why, sizeof why) == ACN_ERR_ARG && strstr(why, "device is 7"), "device 7: %s", why);
        CHECK(acn_device(ctx) == ACN_DEVICE_CPU && !strcmp(acn_device_name(ctx), "the CPU"), "acn_device");
        CHECK(acn_sync(ctx) == ACN_OK && acn_sync(NULL) == ACN_ERR_ARG, "acn_sync on the CPU");
        CHECK(acn_set_tf32(ctx, 0) == ACN_OK && acn_set_tf32(ctx, 1) == ACN_ERR_STATE && strstr(acn_error(ctx), "TF32"),
              "acn_set_tf32 on the CPU: %s", acn_error(ctx));
        acn_clear_error(ctx);
    }
}

int main(void)
{
    if (acn_ctx_new(&ctx, NULL)) return 1;
    test_errors();
    test_arena();
    test_autograd();
    test_wirings();
    test_recompute();
    test_rewind_transient();
    test_backward_memory();
    test_gemm_levels();
    test_gemm_on();
    test_simd_elementwise();
    test_linear_mid();
    test_linear_mid_dw();
    test_ffn();
    test_cache_blocking();
    test_linear_add_relu();
    test_layernorm_groups();
    test_recompute_small();
    test_attention_qkv();
    test_no_malloc();
    test_finite();
    test_rng_init();
    test_optim_sched();
    test_safetensors();
    test_custom();
    test_host_io();
    acn_ctx_free(ctx);
    return t_done("core");
}
