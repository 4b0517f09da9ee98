/* Data-parallel training (acn_dist_*). Built twice by tests/run.sh:
 *   mpicc -DACN_MPI, run under mpirun with 1, 2 and 3 ranks: every rank
 *     trains a small network with dropout on its rows of each global batch,
 *     and checks its losses and weights against a context that is alone and
 *     trains on the whole batch (what one process does), the weights of all
 *     ranks equal bit for bit, a second run equal bit for bit to the first,
 *     and an error on one rank stopping every rank with a message;
 *   cc without ACN_MPI: the same calls on a lone context change nothing.
 * Each rank prints its own summary line; tests/run.sh reads rank 0's. */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"

#define B 12     /* global batch: 6 + 6 rows on 2 ranks, 4 + 4 + 4 on 3 */
#define D 8      /* inputs                                              */
#define H 16     /* hidden width, after dropout                         */
#define C 4      /* classes                                             */
#define STEPS 20

typedef struct net { acn_ctx *ctx; acn_tensor *w1, *b1, *w2, *b2; acn_adamw opt; } net;

static int net_new(net *n, int dist)
{
    acn_ctx_config cfg = acn_ctx_defaults();
    int s1[2] = {H, D}, s2[2] = {C, H}, v1[1] = {H}, v2[1] = {C};
    cfg.seed = 42;
    cfg.arena_bytes = 1 << 20;
    memset(n, 0, sizeof *n);
    if (acn_ctx_new(&n->ctx, &cfg)) return 1;
    acn_set_threads(n->ctx, 1);
    if (dist && acn_dist_init(n->ctx)) return 1;
    n->w1 = acn_param(n->ctx, "fc1.weight", 2, s1);
    n->b1 = acn_param(n->ctx, "fc1.bias", 1, v1);
    n->w2 = acn_param(n->ctx, "fc2.weight", 2, s2);
    n->b2 = acn_param(n->ctx, "fc2.bias", 1, v2);
    acn_init_linear(n->ctx, n->w1, n->b1);
    acn_init_linear(n->ctx, n->w2, n->b2);
    acn_dist_broadcast_params(n->ctx);
    acn_adamw_init(n->ctx, &n->opt, 0.9f, 0.999f, 1e-8f, 0.01f);
    acn_set_train(n->ctx, 1);
    return acn_status_of(n->ctx) != ACN_OK;
}
static void net_free(net *n)
{
    acn_adamw_free(&n->opt);
    acn_ctx_free(n->ctx);
}

/* The global batch of a step: the same on every rank. */
static void batch_of(int step, float *x, int *y)
{
    acn_rng r;
    int i;
    acn_rng_seed(&r, 1000 + (uint64_t)step);
    for (i = 0; i < B * D; i++) x[i] = acn_rng_normal(&r);
    for (i = 0; i < B; i++) { /* the class: the largest of the first C inputs */
        int k;
        for (y[i] = 0, k = 1; k < C; k++)
            if (x[i * D + k] > x[i * D + y[i]]) y[i] = k;
    }
}

/* One step on rows [off, off + cnt) of the global batch; the loss is the
 * mean over those rows and *global_loss the mean over all B (summed over
 * the ranks). Returns the status. */
static acn_status net_step(net *n, int step, int off, int cnt, float *global_loss)
{
    float x[B * D];
    int y[B], s[2];
    double l;
    acn_tensor *h, *loss;
    acn_ctx *ctx = n->ctx;
    batch_of(step, x, y);
    acn_reset(ctx);
    s[0] = cnt;
    s[1] = D;
    h = acn_gelu(ctx, acn_linear(ctx, acn_input(ctx, 2, s, x + off * D), n->w1, n->b1)); /* (cnt, H) */
    h = acn_dropout(ctx, h, 0.3f);
    loss = acn_cross_entropy(ctx, acn_linear(ctx, h, n->w2, n->b2), y + off, 0.1f, -1);
    acn_zero_grad(ctx);
    if (loss) acn_backward(ctx, loss);
    if (acn_dist_sum_grads(ctx, (double)cnt / B)) return acn_status_of(ctx);
    l = (double)loss->data[0] * cnt / B;
    acn_dist_sum(ctx, &l, 1);
    *global_loss = (float)l;
    acn_clip_grad_norm(ctx, 0.5f, NULL);
    acn_adamw_step(ctx, &n->opt, 1e-2f);
    return acn_status_of(ctx);
}

/* STEPS steps of n; the losses into loss[]. */
static acn_status net_train(net *n, float *loss)
{
    int step, off = 0, cnt = B;
    for (step = 0; step < STEPS; step++) {
        if (acn_dist_rows(n->ctx, B, &off, &cnt) || net_step(n, step, off, cnt, &loss[step]))
            return acn_status_of(n->ctx);
    }
    return ACN_OK;
}

static size_t param_floats(net *n, const float **w)
{
    int count = 0;
    acn_tensor *t = acn_params(n->ctx, &count);
    *w = t[0].data;
    return (size_t)(t[count - 1].data + t[count - 1].numel - t[0].data);
}

int main(void)
{
    net a, b, alone;
    float la[STEPS], lb[STEPS], lr[STEPS];
    const float *wa, *wb, *wr;
    size_t nw;
    int rank, size, i, off, cnt;
    double cover[B];
    if (net_new(&a, 1)) {
        fprintf(stderr, "setup: %s\n", acn_error(a.ctx));
        return 1;
    }
    rank = acn_dist_rank(a.ctx);
    size = acn_dist_size(a.ctx);
#ifndef ACN_MPI
    CHECK(rank == 0 && size == 1, "alone: rank %d of %d", rank, size);
#endif
    CHECK(acn_dist_local_size(a.ctx) == size, "rank %d: %d ranks on this machine, of %d (all are here)", rank,
          acn_dist_local_size(a.ctx), size);

    /* the rows: each global row on exactly one rank, in order, the first B % n ranks one more */
    for (i = 0; i < B; i++) cover[i] = 0.0;
    CHECK(acn_dist_rows(a.ctx, 7, &off, &cnt) == ACN_OK, "rows of 7: %s", acn_error(a.ctx));
    CHECK(cnt == 7 / size + (rank < 7 % size) && off == rank * (7 / size) + (rank < 7 % size ? rank : 7 % size),
          "rank %d of %d: rows of 7 at %d, %d of them", rank, size, off, cnt);
    for (i = off; i < off + cnt; i++) cover[i] += 1.0;
    acn_dist_sum(a.ctx, cover, B);
    for (i = 0; i < B; i++) CHECK(cover[i] == (i < 7 ? 1.0 : 0.0), "row %d of 7 taken %g times", i, cover[i]);
    /* fewer rows than ranks: the first ranks take one each, the others none */
    CHECK(acn_dist_rows(a.ctx, 1, &off, &cnt) == ACN_OK && off == (rank < 1 ? 0 : 1) && cnt == (rank < 1),
          "rank %d: a batch of 1 at %d, %d rows", rank, off, cnt);
    CHECK(acn_dist_rows(a.ctx, 0, &off, &cnt) == ACN_ERR_ARG && strstr(acn_error(a.ctx), "at least one"),
          "a batch of 0: %s", acn_error(a.ctx));
    acn_clear_error(a.ctx);

    /* training: against a lone context on the whole batch */
    CHECK(net_train(&a, la) == ACN_OK, "rank %d: training: %s", rank, acn_error(a.ctx));
    CHECK(net_new(&alone, 0) == 0 && acn_dist_size(alone.ctx) == 1, "the lone context");
    CHECK(net_train(&alone, lr) == ACN_OK, "alone: %s", acn_error(alone.ctx));
    for (i = 0; i < STEPS; i++)
        CHECK(fabsf(la[i] - lr[i]) <= 1e-5f * fabsf(lr[i]), "step %d: loss %.9g on %d ranks, %.9g alone", i, la[i],
              size, lr[i]);
    nw = param_floats(&a, &wa);
    CHECK(param_floats(&alone, &wr) == nw, "parameter blocks of the same size");
    CHECK(t_relerr(wa, wr, nw) <= 1e-5, "weights after %d steps on %d ranks vs alone: relative error %.3g", STEPS,
          size, t_relerr(wa, wr, nw));
    CHECK(la[STEPS - 1] < la[0], "the loss falls: %g -> %g", la[0], la[STEPS - 1]);

    /* every rank holds the same weights, bit for bit: rank 0's, broadcast into a copy */
    {
        float *copy = (float *)malloc(nw * sizeof(float)), *keep = (float *)malloc(nw * sizeof(float));
        memcpy(keep, wa, nw * sizeof(float));
        acn_dist_broadcast_params(a.ctx);
        memcpy(copy, wa, nw * sizeof(float));
        CHECK(memcmp(copy, keep, nw * sizeof(float)) == 0, "rank %d: weights differ from rank 0's", rank);
        free(copy);
        free(keep);
    }

    /* a second run gives the same bits */
    CHECK(net_new(&b, 1) == 0, "second context: %s", acn_error(b.ctx));
    CHECK(net_train(&b, lb) == ACN_OK, "second run: %s", acn_error(b.ctx));
    param_floats(&b, &wb);
    CHECK(memcmp(wa, wb, nw * sizeof(float)) == 0 && memcmp(la, lb, sizeof la) == 0, "rank %d: a second run differs",
          rank);

    /* alone, acn_dist_sum_grads scales by the weight and sums nothing */
    {
        acn_tensor *t = acn_params(alone.ctx, &i);
        float g0 = 0.25f;
        t[0].grad[0] = g0;
        CHECK(acn_dist_sum_grads(alone.ctx, 0.5) == ACN_OK && t[0].grad[0] == 0.125f, "alone: weight 0.5 gives %g",
              t[0].grad[0]);
        CHECK(acn_dist_sum_grads(alone.ctx, 1.5) == ACN_ERR_ARG && strstr(acn_error(alone.ctx), "in [0, 1]"),
              "weight 1.5: %s", acn_error(alone.ctx));
    }

    /* dropout on a tensor that is not this rank's rows is refused when several ranks share a batch */
    if (size > 1) {
        int s[2] = {5, 7}; /* 35 elements: not a whole number of rows of 6 (2 ranks) or 4 (3 ranks) */
        float z[5 * 7];
        memset(z, 0, sizeof z);
        acn_dist_rows(b.ctx, B, &off, &cnt);
        acn_reset(b.ctx);
        CHECK(!acn_dropout(b.ctx, acn_input(b.ctx, 2, s, z), 0.5f) && strstr(acn_error(b.ctx), "batch first"),
              "dropout on (5, 7) with %d rows: %s", cnt, acn_error(b.ctx));
        acn_clear_error(b.ctx);
    }

    /* dropout in training before acn_dist_rows has said which rows are this rank's: refused */
    if (size > 1) {
        net c;
        int sh[2] = {4, 4};
        float z[16] = {0};
        CHECK(net_new(&c, 1) == 0, "a third context: %s", acn_error(c.ctx));
        acn_reset(c.ctx);
        CHECK(!acn_dropout(c.ctx, acn_input(c.ctx, 2, sh, z), 0.5f) && acn_status_of(c.ctx) == ACN_ERR_STATE &&
              strstr(acn_error(c.ctx), "call acn_dist_rows"), "dropout before acn_dist_rows: %s", acn_error(c.ctx));
        net_free(&c);
    }

    /* an error on the last rank stops every rank at the next sum, with a message */
    {
        acn_status st;
        int flag = rank == size - 1;
        acn_dist_rows(b.ctx, B, &off, &cnt);
        if (rank == size - 1) acn_dropout(b.ctx, NULL, 2.0f); /* the error */
        st = acn_dist_sum_grads(b.ctx, (double)cnt / B);
        CHECK(st != ACN_OK, "rank %d: the sum went on after rank %d failed", rank, size - 1);
        if (size > 1 && rank != size - 1)
            CHECK(st == ACN_ERR_DIST && strstr(acn_error(b.ctx), "another rank failed"), "rank %d: %s", rank,
                  acn_error(b.ctx));
        acn_dist_any(b.ctx, &flag);
        CHECK(flag == 1, "rank %d: acn_dist_any did not see the last rank's flag", rank);
    }
    net_free(&b);
    net_free(&alone);
    net_free(&a);
    acn_dist_finalize();
    if (rank == 0) return t_done(size > 1 ? "data parallel" : "data parallel alone");
    if (t_fail) fprintf(stderr, "rank %d: %d failed\n", rank, t_fail);
    return t_fail != 0;
}
