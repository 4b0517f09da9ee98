/* Finite-difference gradient checks of every op in acn.h, on random shapes
 * that include odd sizes and sizes of 1, for every input that takes a
 * gradient; and a check that the checker rejects a backward that is off by
 * 1%. */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"

static acn_ctx *ctx;
static acn_rng R; /* shapes and values */

/* The inputs of one case and its arguments, read by the build functions. */
typedef struct G {
    acn_tensor *x[5];
    int n, a[4];
    float f;
    int labels[512];
    int flags;
} G;

static int rdim(void) /* 1, 2, 3, 5 or 7 */
{
    static const int d[5] = {1, 2, 3, 5, 7};
    return d[acn_rng_u64(&R) % 5];
}

/* A leaf with a gradient, filled with values in [-1, 1]; with `away`, values
 * keep |x| >= 0.1 (for ReLU, whose kink must not sit inside the step). */
static acn_tensor *leaf(int ndim, const int *shape, int away)
{
    acn_tensor *t = acn_new(ctx, ndim, shape, ACN_F_GRAD);
    size_t i;
    if (!t) return NULL;
    for (i = 0; i < t->numel; i++) {
        float u = 2.0f * acn_rng_uniform(&R) - 1.0f;
        if (away) u = (u < 0 ? -0.1f : 0.1f) + 0.9f * u;
        t->data[i] = u;
    }
    return t;
}

/* Spread each row of the last axis (adds 0.3 (c - (D-1)/2)): LayerNorm's
 * gradient grows as 1/std of a row, and a row whose std is near the
 * finite-difference step makes the numeric side wrong, not the analytic. */
static void spread(acn_tensor *t)
{
    int D = t->shape[t->ndim - 1];
    size_t i;
    for (i = 0; i < t->numel; i++) t->data[i] += 0.3f * ((float)(i % (size_t)D) - 0.5f * (float)(D - 1));
}

static void run(const char *what, acn_build_fn build, G *g, int n_wrt)
{
    acn_gradcheck_result res;
    acn_gradcheck_opts o = acn_gradcheck_defaults();
    acn_status st;
    o.seed = acn_rng_u64(&R);
    st = acn_gradcheck(ctx, build, g, g->x, n_wrt, &o, &res);
    CHECK(st == ACN_OK, "%s: %s (worst %.3g, tensor %d)", what, acn_error(ctx), res.worst,
          res.worst_index);
    CHECK(res.checked > 0, "%s: nothing was checked", what);
    acn_clear_error(ctx);
}

/* ---- builders ---- */
static acn_tensor *b_add(acn_ctx *c, void *u) { G *g = (G *)u; return acn_add(c, g->x[0], g->x[1]); }
static acn_tensor *b_sub(acn_ctx *c, void *u) { G *g = (G *)u; return acn_sub(c, g->x[0], g->x[1]); }
static acn_tensor *b_mul(acn_ctx *c, void *u) { G *g = (G *)u; return acn_mul(c, g->x[0], g->x[1]); }
static acn_tensor *b_scale(acn_ctx *c, void *u) { G *g = (G *)u; return acn_scale(c, g->x[0], g->f); }
static acn_tensor *b_sum(acn_ctx *c, void *u) { G *g = (G *)u; return acn_sum(c, g->x[0], g->a[0]); }
static acn_tensor *b_mean(acn_ctx *c, void *u) { G *g = (G *)u; return acn_mean(c, g->x[0], g->a[0]); }
static acn_tensor *b_matmul(acn_ctx *c, void *u) { G *g = (G *)u; return acn_matmul(c, g->x[0], g->x[1], g->a[0], g->a[1]); }
static acn_tensor *b_linear(acn_ctx *c, void *u) { G *g = (G *)u; return acn_linear(c, g->x[0], g->x[1], g->n > 2 ? g->x[2] : NULL); }
static acn_tensor *b_lmid(acn_ctx *c, void *u) { G *g = (G *)u; return acn_linear_mid(c, g->x[0], g->x[1], g->n > 2 ? g->x[2] : NULL); }
static acn_tensor *b_lgelu(acn_ctx *c, void *u) { G *g = (G *)u; return acn_linear_gelu(c, g->x[0], g->x[1], g->n > 2 ? g->x[2] : NULL, g->flags); }
static acn_tensor *b_gelu(acn_ctx *c, void *u) { G *g = (G *)u; return acn_gelu_ex(c, g->x[0], g->flags); }
static acn_tensor *b_relu(acn_ctx *c, void *u) { G *g = (G *)u; return acn_relu(c, g->x[0]); }
static acn_tensor *b_tanh(acn_ctx *c, void *u) { G *g = (G *)u; return acn_tanh(c, g->x[0]); }
static acn_tensor *b_softmax(acn_ctx *c, void *u) { G *g = (G *)u; return acn_softmax(c, g->x[0], g->n > 1 ? g->x[1] : NULL); }
static acn_tensor *b_xent(acn_ctx *c, void *u) { G *g = (G *)u; return acn_cross_entropy(c, g->x[0], g->labels, g->f, -100); }
static acn_tensor *b_xsoft(acn_ctx *c, void *u) { G *g = (G *)u; return acn_cross_entropy_soft(c, g->x[0], g->x[1], g->f); }
static acn_tensor *b_ln(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    return acn_layernorm_ex(c, g->x[0], g->n > 1 ? g->x[1] : NULL, g->n > 2 ? g->x[2] : NULL, 1e-5f, g->flags);
}
static acn_tensor *b_transpose(acn_ctx *c, void *u) { G *g = (G *)u; return acn_transpose(c, g->x[0], g->a[0], g->a[1]); }
static acn_tensor *b_reshape(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    int s[2] = {-1, 1};
    s[1] = g->a[0];
    return acn_tanh(c, acn_reshape(c, g->x[0], 2, s)); /* tanh: the reshape's grad is not the identity */
}
static acn_tensor *b_concat(acn_ctx *c, void *u) { G *g = (G *)u; return acn_concat(c, g->x, g->n, g->a[0]); }
static acn_tensor *b_addn(acn_ctx *c, void *u) { G *g = (G *)u; return acn_tanh(c, acn_add_n(c, g->x, g->n)); }
static acn_tensor *b_slice(acn_ctx *c, void *u) { G *g = (G *)u; return acn_slice(c, g->x[0], g->a[0], g->a[1], g->a[2]); }
static acn_tensor *b_patches(acn_ctx *c, void *u) { G *g = (G *)u; return acn_patches(c, g->x[0], g->a[0]); }
static acn_tensor *b_embed(acn_ctx *c, void *u) { G *g = (G *)u; int s[2]; s[0] = g->a[0]; s[1] = g->a[1]; return acn_embedding(c, g->x[0], g->labels, 2, s); }
static acn_tensor *b_dropout(acn_ctx *c, void *u) { G *g = (G *)u; return acn_dropout(c, g->x[0], g->f); }
static acn_tensor *b_attn_qkv(acn_ctx *c, void *u) { G *g = (G *)u; return acn_attention_qkv(c, g->x[0], g->a[0], g->n > 1 ? g->x[1] : NULL); }
static acn_tensor *b_attn(acn_ctx *c, void *u) { G *g = (G *)u; return acn_attention(c, g->x[0], g->x[1], g->x[2], g->a[0], g->n > 3 ? g->x[3] : NULL); }
/* A chain with long connections: x1 = tanh(x0 W1), x2 = tanh(x1 W2),
 * y = x0 + x1 + x2 (the ACN output), so x0 and x1 fan out. */
static acn_tensor *b_acn(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    acn_tensor *x1 = acn_tanh(c, acn_linear(c, g->x[0], g->x[1], NULL));
    acn_tensor *x2 = acn_tanh(c, acn_linear(c, x1, g->x[2], NULL));
    return acn_add(c, acn_add(c, g->x[0], x1), x2);
}
/* A product whose every input is an activation: h = tanh(x0), W = tanh(x1),
 * b = tanh(x2) (none for a[1] = 0), y = linear (a[0] = 0), linear_gelu (1)
 * or linear_mid (2) of them. An older op also reads h and b, so the product's
 * backward gets their gradients unwritten (fresh) and the older op adds to
 * them; a newer op reads W, so the product adds to W's. The output is
 * tanh(h), tanh(b), y and tanh(W), flattened, side by side. */
static acn_tensor *flat(acn_ctx *c, acn_tensor *t) { int s[2] = {1, -1}; return acn_reshape(c, t, 2, s); }
static acn_tensor *b_fresh(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    acn_tensor *h = acn_tanh(c, g->x[0]), *W = acn_tanh(c, g->x[1]), *b = g->a[1] ? acn_tanh(c, g->x[2]) : NULL, *y;
    acn_tensor *parts[4];
    int n = 0;
    parts[n++] = flat(c, acn_tanh(c, h));
    if (b) parts[n++] = flat(c, acn_tanh(c, b));
    y = g->a[0] == 0 ? acn_linear(c, h, W, b) : g->a[0] == 1 ? acn_linear_gelu(c, h, W, b, 0) : acn_linear_mid(c, h, W, b);
    parts[n++] = flat(c, y);
    parts[n++] = flat(c, acn_tanh(c, W)); /* newer: W's gradient is written before the product adds to it */
    return acn_concat(c, parts, n, 1);
}
/* The element-wise ops and LayerNorm on activations (on the CPU their
 * backward writes a fresh input gradient instead of adding to a cleared
 * one): h0 = tanh(x0) and h1 = tanh(x1), each of shape x0's. h0 is also read
 * by an older op (so the op under test writes its gradient, and the older
 * op adds), h1 by a newer one (so the op adds to what that one wrote); the
 * repeated forms read h0 twice (the first use writes, the second adds).
 * a[0]: 0 add, 1 sub, 2 mul, 3 add_n(h0, h1, h0), 4 relu, 5 gelu, 6 tanh
 * GELU, 7 layernorm, 8 add(h0, h0), 9 mul(h0, h0), and LayerNorm of x2
 * (its own leaf) whose gamma (10), beta (11) or both (12) are activations:
 * tanh(x0 row 0) and tanh(x1 row 0), also read by older ops. The output
 * is tanh(h0), the op's output(s) and tanh(h1), flattened, side by side. */
static acn_tensor *b_fresh_ew(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    acn_tensor *h0 = acn_tanh(c, g->x[0]), *h1 = acn_tanh(c, g->x[1]), *parts[5], *xs[3];
    int n = 0, op = g->a[0];
    parts[n++] = flat(c, acn_tanh(c, h0)); /* older reader of h0 */
    if (op >= 10) { /* gamma and beta: rows 0 of h0 and h1 */
        int s1[1];
        acn_tensor *gm, *bt;
        s1[0] = h0->shape[1];
        gm = acn_reshape(c, acn_slice(c, h0, 0, 0, 1), 1, s1);
        bt = acn_reshape(c, acn_slice(c, h1, 0, 0, 1), 1, s1);
        parts[n++] = flat(c, acn_tanh(c, gm)); /* older readers: LayerNorm is the newest, its */
        parts[n++] = flat(c, acn_tanh(c, bt)); /* backward finds their gradients fresh */
        parts[n++] = flat(c, acn_layernorm(c, g->x[2], op != 11 ? gm : NULL, op != 10 ? bt : NULL, 1e-5f));
        return acn_concat(c, parts, n, 1);
    }
    if (op <= 2) {
        parts[n++] = flat(c, op == 0 ? acn_add(c, h0, h1) : op == 1 ? acn_sub(c, h0, h1) : acn_mul(c, h0, h1));
    } else if (op == 3) {
        xs[0] = h0; xs[1] = h1; xs[2] = h0;
        parts[n++] = flat(c, acn_add_n(c, xs, 3));
    } else if (op <= 7) { /* unary: the op on h0 (writes) and on h1 (adds) */
        acn_tensor *a = op == 4 ? acn_relu(c, h0) : op == 7 ? acn_layernorm(c, h0, NULL, NULL, 1e-5f)
                                                             : acn_gelu_ex(c, h0, op == 6 ? ACN_GELU_TANH : 0);
        acn_tensor *b = op == 4 ? acn_relu(c, h1) : op == 7 ? acn_layernorm(c, h1, NULL, NULL, 1e-5f)
                                                             : acn_gelu_ex(c, h1, op == 6 ? ACN_GELU_TANH : 0);
        parts[n++] = flat(c, a);
        parts[n++] = flat(c, b);
    } else {
        parts[n++] = flat(c, op == 8 ? acn_add(c, h0, h0) : acn_mul(c, h0, h0));
    }
    parts[n++] = flat(c, acn_tanh(c, h1)); /* newer reader of h1 */
    return acn_concat(c, parts, n, 1);
}
/* acn_linear_add_relu on x[0..3] = x, W, b, skip: on leaves (a[0] = 0), or
 * with x and skip through tanh first (a[0] = 1: skip also read by an older
 * op, so the op writes its gradient; a[0] = 2: also by a newer one, so the op
 * adds to what that one wrote). The output is the op's, with tanh(skip)
 * beside it where skip has another reader. */
static acn_tensor *b_lar(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    int act = g->a[0] > 0;
    acn_tensor *x = act ? acn_tanh(c, g->x[0]) : g->x[0], *sk = act ? acn_tanh(c, g->x[3]) : g->x[3], *parts[3];
    int n = 0;
    if (act) parts[n++] = flat(c, acn_tanh(c, sk)); /* older reader */
    parts[n++] = flat(c, acn_linear_add_relu(c, x, g->x[1], g->x[2], sk));
    if (g->a[0] == 2) parts[n++] = flat(c, acn_tanh(c, sk)); /* newer reader */
    return n == 1 ? parts[0] : acn_concat(c, parts, n, 1);
}
/* The feed-forward op on x[0..4] = x, W1, b1, W2, b2 (flags: g->flags);
 * with a[0], each input goes through tanh first, so the op's backward gets
 * fresh (unwritten) gradients for all of them, and tanh(x) is also read by
 * an older op that adds to its gradient after the op has written it. */
static acn_tensor *b_ffn(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    acn_tensor *t[5], *parts[3];
    int i;
    for (i = 0; i < 5; i++) t[i] = g->a[0] ? acn_tanh(c, g->x[i]) : g->x[i];
    if (!g->a[0]) return acn_ffn(c, t[0], t[1], t[2], t[3], t[4], g->flags);
    parts[0] = flat(c, acn_tanh(c, t[0]));
    parts[1] = flat(c, acn_ffn(c, t[0], t[1], t[2], t[3], t[4], g->flags));
    /* a[0] = 2: a newer op also reads W1 and W2, so the op adds to their gradients */
    if (g->a[0] == 2) parts[2] = flat(c, acn_add(c, acn_sum(c, acn_tanh(c, t[1]), ACN_AXIS_ALL), acn_sum(c, acn_tanh(c, t[3]), ACN_AXIS_ALL)));
    return acn_concat(c, parts, g->a[0] == 2 ? 3 : 2, 1);
}
/* A recomputed LayerNorm read by a linear (forward and backward), and a
 * recomputed GELU read by the next linear's backward. */
static acn_tensor *b_recompute(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    acn_tensor *l = acn_layernorm_ex(c, g->x[0], g->x[2], NULL, 1e-5f, ACN_RECOMPUTE);
    acn_tensor *h = acn_gelu_ex(c, acn_linear(c, l, g->x[1], NULL), ACN_RECOMPUTE);
    return acn_tanh(c, acn_linear(c, h, g->x[3], NULL));
}

/* ---- a custom op with a right and a wrong backward ---- */
static void sq_fwd(acn_tensor *const *in, int n, acn_tensor *out, void *u)
{
    size_t i;
    (void)n; (void)u;
    for (i = 0; i < out->numel; i++) out->data[i] = in[0]->data[i] * in[0]->data[i];
}
static void sq_bwd(acn_tensor *const *in, int n, acn_tensor *out, void *u)
{
    float k = *(const float *)u; /* 1 for the right gradient */
    size_t i;
    (void)n;
    if (in[0]->grad)
        for (i = 0; i < out->numel; i++) in[0]->grad[i] += k * 2.0f * in[0]->data[i] * out->grad[i];
}
static float sq_k = 1.0f;
static acn_tensor *b_square(acn_ctx *c, void *u)
{
    G *g = (G *)u;
    return acn_custom(c, "square", g->x, 1, g->x[0]->ndim, g->x[0]->shape, sq_fwd, sq_bwd, &sq_k);
}

static void random_shape(int *nd, int *s, int lo, int hi)
{
    int d;
    *nd = lo + (int)(acn_rng_u64(&R) % (unsigned)(hi - lo + 1));
    for (d = 0; d < *nd; d++) s[d] = rdim();
}

int main(void)
{
    int trial, s[4], s2[4], nd, d, i;
    char what[96];
    G g;
    acn_ctx_config cfg = acn_ctx_defaults();
    cfg.arena_bytes = 64 << 20;
    if (acn_ctx_new(&ctx, &cfg)) return 1;
    acn_rng_seed(&R, 42);

    for (trial = 0; trial < 4; trial++) {
        acn_mark m = acn_mark_get(ctx);
        memset(&g, 0, sizeof g);
        /* add, sub, mul: b is a's shape with some dims 1 and maybe fewer dims */
        random_shape(&nd, s, 1, 4);
        for (d = 0; d < nd; d++) s2[d] = (acn_rng_u64(&R) & 1) ? 1 : s[d];
        g.x[0] = leaf(nd, s, 0);
        g.x[1] = leaf(nd - (int)(acn_rng_u64(&R) % (unsigned)nd), s2 + (nd - (nd - 0)), 0);
        g.x[1] = leaf(nd, s2, 0);
        sprintf(what, "add trial %d", trial); run(what, b_add, &g, 2);
        sprintf(what, "sub trial %d", trial); run(what, b_sub, &g, 2);
        sprintf(what, "mul trial %d", trial); run(what, b_mul, &g, 2);
        /* b broadcast from the left as a bias row */
        g.x[1] = leaf(1, s + nd - 1, 0);
        sprintf(what, "mul bias-row trial %d", trial); run(what, b_mul, &g, 2);
        g.f = 0.5f + acn_rng_uniform(&R);
        sprintf(what, "scale trial %d", trial); run(what, b_scale, &g, 1);
        g.a[0] = (int)(acn_rng_u64(&R) % (unsigned)nd) - (trial & 1 ? nd : 0);
        sprintf(what, "sum trial %d", trial); run(what, b_sum, &g, 1);
        sprintf(what, "mean trial %d", trial); run(what, b_mean, &g, 1);
        g.a[0] = ACN_AXIS_ALL;
        sprintf(what, "sum all trial %d", trial); run(what, b_sum, &g, 1);
        sprintf(what, "mean all trial %d", trial); run(what, b_mean, &g, 1);

        /* matmul: each transpose combination, 2-d, batched and shared */
        {
            int M = rdim(), K = rdim(), N = rdim(), B = rdim(), ta = trial & 1, tb = (trial >> 1) & 1;
            int sa[4], sb[4];
            sa[0] = B; sa[1] = 2; sa[2] = ta ? K : M; sa[3] = ta ? M : K;
            sb[0] = B; sb[1] = 2; sb[2] = tb ? N : K; sb[3] = tb ? K : N;
            g.a[0] = ta; g.a[1] = tb;
            g.x[0] = leaf(2, sa + 2, 0); g.x[1] = leaf(2, sb + 2, 0);
            sprintf(what, "matmul 2-d ta=%d tb=%d", ta, tb); run(what, b_matmul, &g, 2);
            g.x[0] = leaf(4, sa, 0); g.x[1] = leaf(4, sb, 0);
            sprintf(what, "matmul 4-d ta=%d tb=%d", ta, tb); run(what, b_matmul, &g, 2);
            g.x[0] = leaf(3, sa + 1, 0); g.x[1] = leaf(2, sb + 2, 0);
            sprintf(what, "matmul shared ta=%d tb=%d", ta, tb); run(what, b_matmul, &g, 2);
        }
        /* linear, with and without bias, x of 1 to 3 dims */
        {
            int I = rdim(), O = rdim(), ws[2], xs[3];
            xs[0] = rdim(); xs[1] = rdim(); xs[2] = I;
            ws[0] = O; ws[1] = I;
            nd = 1 + trial % 3;
            g.x[0] = leaf(nd, xs + 3 - nd, 0); g.x[1] = leaf(2, ws, 0); g.x[2] = leaf(1, ws, 0);
            g.n = 3; sprintf(what, "linear %d-d x", nd); run(what, b_linear, &g, 3);
            g.n = 2; sprintf(what, "linear no bias %d-d x", nd); run(what, b_linear, &g, 2);
            for (i = 0; i < (int)g.x[1]->numel; i++) g.x[1]->data[i] *= 2.0f; /* pre-activations past the GELU knee */
            g.n = 3; g.flags = 0; sprintf(what, "linear_gelu %d-d x", nd); run(what, b_lgelu, &g, 3);
            g.flags = ACN_RECOMPUTE; sprintf(what, "linear_gelu recompute %d-d x", nd); run(what, b_lgelu, &g, 3);
            g.n = 2; g.flags = 0; sprintf(what, "linear_gelu no bias %d-d x", nd); run(what, b_lgelu, &g, 2);
        }
        /* linear along the middle axis, with and without bias */
        {
            int xs[3], ws[2];
            xs[0] = rdim(); xs[1] = rdim(); xs[2] = rdim();
            ws[0] = rdim(); ws[1] = xs[1];
            g.x[0] = leaf(3, xs, 0); g.x[1] = leaf(2, ws, 0); g.x[2] = leaf(1, ws, 0);
            g.n = 3; run("linear_mid", b_lmid, &g, 3);
            g.n = 2; run("linear_mid no bias", b_lmid, &g, 2);
        }
        /* activations */
        random_shape(&nd, s, 1, 3);
        g.x[0] = leaf(nd, s, 0);
        for (i = 0; i < (int)g.x[0]->numel; i++) g.x[0]->data[i] *= 3.0f;
        g.flags = 0; sprintf(what, "gelu trial %d", trial); run(what, b_gelu, &g, 1);
        g.flags = ACN_GELU_TANH; sprintf(what, "gelu tanh trial %d", trial); run(what, b_gelu, &g, 1);
        g.flags = ACN_RECOMPUTE; sprintf(what, "gelu recompute trial %d", trial); run(what, b_gelu, &g, 1);
        sprintf(what, "tanh trial %d", trial); run(what, b_tanh, &g, 1);
        g.x[0] = leaf(nd, s, 1);
        sprintf(what, "relu trial %d", trial); run(what, b_relu, &g, 1);
        /* softmax, without and with a mask (whose gradient is checked too) */
        random_shape(&nd, s, 1, 4);
        g.x[0] = leaf(nd, s, 0);
        g.n = 1; sprintf(what, "softmax trial %d", trial); run(what, b_softmax, &g, 1);
        for (d = 0; d < nd; d++) s2[d] = (d == nd - 1 || (acn_rng_u64(&R) & 1)) ? s[d] : 1;
        g.x[1] = leaf(nd, s2, 0);
        g.n = 2; sprintf(what, "softmax mask trial %d", trial); run(what, b_softmax, &g, 2);
        /* cross-entropy: hard labels with smoothing and ignored rows, soft targets */
        {
            int ls[2];
            ls[0] = 1 + (int)(acn_rng_u64(&R) % 9); ls[1] = 1 + rdim();
            g.x[0] = leaf(2, ls, 0);
            for (i = 0; i < ls[0]; i++)
                g.labels[i] = (i % 4 == 3) ? -100 : (int)(acn_rng_u64(&R) % (unsigned)ls[1]);
            g.labels[0] = 0;
            g.f = trial * 0.1f;
            sprintf(what, "cross_entropy trial %d", trial); run(what, b_xent, &g, 1);
            g.x[1] = leaf(2, ls, 0);
            for (i = 0; i < (int)g.x[1]->numel; i++) g.x[1]->data[i] = 0.5f + 0.5f * g.x[1]->data[i];
            sprintf(what, "cross_entropy_soft trial %d", trial); run(what, b_xsoft, &g, 2);
        }
        /* LayerNorm with gamma and beta, without, and recomputed */
        random_shape(&nd, s, 1, 3);
        s[nd - 1] = 3 + rdim(); /* with D = 2 each output is +-1 up to eps: no gradient to check */
        g.x[0] = leaf(nd, s, 0); g.x[1] = leaf(1, s + nd - 1, 0); g.x[2] = leaf(1, s + nd - 1, 0);
        spread(g.x[0]);
        g.n = 3; g.flags = 0; sprintf(what, "layernorm trial %d", trial); run(what, b_ln, &g, 3);
        g.n = 1; sprintf(what, "layernorm plain trial %d", trial); run(what, b_ln, &g, 1);
        g.n = 3; g.flags = ACN_RECOMPUTE; sprintf(what, "layernorm recompute trial %d", trial); run(what, b_ln, &g, 3);
        /* transpose, reshape, concat, slice */
        random_shape(&nd, s, 2, 4);
        g.x[0] = leaf(nd, s, 0);
        g.a[0] = (int)(acn_rng_u64(&R) % (unsigned)nd); g.a[1] = -1;
        sprintf(what, "transpose trial %d", trial); run(what, b_transpose, &g, 1);
        g.a[0] = s[nd - 1];
        sprintf(what, "reshape trial %d", trial); run(what, b_reshape, &g, 1);
        g.a[0] = (int)(acn_rng_u64(&R) % (unsigned)nd);
        g.x[1] = NULL;
        for (i = 0; i < 3; i++) {
            int t[4];
            memcpy(t, s, sizeof t);
            t[g.a[0]] = rdim();
            g.x[i] = leaf(nd, t, 0);
        }
        g.n = 3; sprintf(what, "concat axis %d", g.a[0]); run(what, b_concat, &g, 3);
        for (i = 0; i < 3; i++) g.x[i] = leaf(nd, s, 0);
        g.x[3] = g.x[1];  /* a tensor twice: its gradient doubles */
        g.n = 4; sprintf(what, "add_n trial %d", trial); run(what, b_addn, &g, 3);
        g.x[0] = leaf(nd, s, 0);
        g.a[1] = (int)(acn_rng_u64(&R) % (unsigned)s[g.a[0]]);
        g.a[2] = 1 + (int)(acn_rng_u64(&R) % (unsigned)(s[g.a[0]] - g.a[1]));
        sprintf(what, "slice [%d, +%d)", g.a[1], g.a[2]); run(what, b_slice, &g, 1);
        /* patches */
        {
            int p = 1 + trial % 3, is[4];
            is[0] = 1 + trial % 2; is[1] = rdim() % 4 + 1; is[2] = p * (1 + trial % 2); is[3] = p * 2;
            g.x[0] = leaf(4, is, 0); g.a[0] = p;
            sprintf(what, "patches p=%d", p); run(what, b_patches, &g, 1);
        }
        /* embedding with repeated ids */
        {
            int ts[2];
            ts[0] = rdim() + 1; ts[1] = rdim();
            g.x[0] = leaf(2, ts, 0);
            g.a[0] = rdim(); g.a[1] = 3;
            for (i = 0; i < g.a[0] * 3; i++) g.labels[i] = (int)(acn_rng_u64(&R) % (unsigned)ts[0]);
            sprintf(what, "embedding trial %d", trial); run(what, b_embed, &g, 1);
        }
        /* dropout */
        random_shape(&nd, s, 1, 3);
        g.x[0] = leaf(nd, s, 0); g.f = 0.4f;
        sprintf(what, "dropout trial %d", trial); run(what, b_dropout, &g, 1);
        /* attention: self with a mask (its gradient checked), and cross */
        {
            int B = 1 + trial % 2, H = 1 + trial % 3, dh = rdim(), Tq = rdim(), Tk = rdim();
            int qs[3], ks[3], ms[2];
            qs[0] = B; qs[1] = Tq; qs[2] = H * dh;
            ks[0] = B; ks[1] = Tk; ks[2] = H * dh;
            ms[0] = B; ms[1] = Tk;
            g.x[0] = leaf(3, qs, 0); g.x[1] = leaf(3, ks, 0); g.x[2] = leaf(3, ks, 0); g.x[3] = leaf(2, ms, 0);
            g.a[0] = H; g.n = 4;
            sprintf(what, "attention B=%d H=%d Tq=%d Tk=%d", B, H, Tq, Tk); run(what, b_attn, &g, 4);
            g.n = 3; sprintf(what, "attention no mask trial %d", trial); run(what, b_attn, &g, 3);
            /* q, k, v as the column blocks of one tensor */
            qs[2] = 3 * H * dh; ms[1] = Tq;
            g.x[0] = leaf(3, qs, 0); g.x[1] = leaf(2, ms, 0);
            g.n = 2; sprintf(what, "attention_qkv B=%d H=%d T=%d", B, H, Tq); run(what, b_attn_qkv, &g, 2);
            g.n = 1; sprintf(what, "attention_qkv no mask trial %d", trial); run(what, b_attn_qkv, &g, 1);
        }
        /* fan-out: an ACN chain summed at the output */
        {
            int xs[2], ws[2];
            xs[0] = rdim(); xs[1] = rdim(); ws[0] = ws[1] = xs[1];
            g.x[0] = leaf(2, xs, 0); g.x[1] = leaf(2, ws, 0); g.x[2] = leaf(2, ws, 0);
            sprintf(what, "acn chain trial %d", trial); run(what, b_acn, &g, 3);
        }
        /* products on activations (fresh gradients), at sizes for the SIMD kernel; linear_mid
         * with its dW formed transposed (T = 33, J = 32) and directly (T = 32, J = 33) */
        {
            int xs[3], ws[2], op;
            for (op = 0; op < 3; op++) {
                xs[0] = 2; xs[1] = 33 - (op == 2 && trial % 2); xs[2] = 40;
                ws[0] = op == 2 ? 65 - xs[1] : 36; ws[1] = op == 2 ? xs[1] : xs[2];
                g.x[0] = leaf(3, xs, 0); g.x[1] = leaf(2, ws, 0); g.x[2] = leaf(1, ws, 0);
                g.a[0] = op; g.a[1] = trial < 2;
                sprintf(what, "%s on activations, T %d J %d%s", op == 0 ? "linear" : op == 1 ? "linear_gelu" : "linear_mid",
                        xs[1], ws[0], g.a[1] ? "" : " no bias");
                run(what, b_fresh, &g, g.a[1] ? 3 : 2);
            }
        }
        /* element-wise ops and LayerNorm on activations (fresh gradients), at sizes past the SIMD
         * width (rows of 37 or 48: a masked tail, or whole vectors for LayerNorm's rows) */
        {
            int xs[2], op;
            for (op = 0; op < 13; op++) {
                xs[0] = 3; xs[1] = trial % 2 ? 37 : 48;
                g.x[0] = leaf(2, xs, op == 4); g.x[1] = leaf(2, xs, op == 4); /* (ReLU: away from its kink) */
                g.x[2] = leaf(2, xs, 0);
                if (op == 7) { spread(g.x[0]); spread(g.x[1]); }
                if (op >= 10) spread(g.x[2]);
                g.a[0] = op;
                sprintf(what, "element-wise op %d on activations, rows of %d", op, xs[1]);
                run(what, b_fresh_ew, &g, op >= 10 ? 3 : 2);
            }
        }
        /* linear_add_relu on leaves and on activations, at sizes for the packed kernel with its
         * own epilogue (out 32) and with an edge (out 36); the skip keeps each sum away from the
         * ReLU's kink (a finite difference across it is wrong, not the gradient), and tanh(skip)
         * too: tanh(3 x 0.1) > 0.29 */
        {
            int xs[3], ws[2], ss[3], mode, i;
            for (mode = 0; mode < 3; mode++) {
                xs[0] = ss[0] = 2; xs[1] = ss[1] = 33; xs[2] = 20; ws[0] = ss[2] = trial % 2 ? 36 : 32; ws[1] = xs[2];
                g.x[0] = leaf(3, xs, 0); g.x[1] = leaf(2, ws, 0); g.x[2] = leaf(1, ws, 0); g.x[3] = leaf(3, ss, 1);
                /* |x W^T + b| <= 20 x 0.01 + 0.01 stays under |skip| >= 0.3 */
                for (i = 0; i < (int)g.x[1]->numel; i++) g.x[1]->data[i] *= 0.01f;
                for (i = 0; i < (int)g.x[2]->numel; i++) g.x[2]->data[i] *= 0.01f;
                for (i = 0; i < (int)g.x[3]->numel; i++) g.x[3]->data[i] *= 3.0f;
                g.a[0] = mode;
                sprintf(what, "linear_add_relu %s, out %d", mode == 0 ? "on leaves" : mode == 1 ? "on activations, written"
                        : "on activations, added", ws[0]);
                run(what, b_lar, &g, 4);
            }
        }
        /* the feed-forward op: random small shapes, then sizes for the packed kernels (R 2 x 33,
         * in 20, hidden 37, out 27), stored and recomputed, on leaves and on activations */
        {
            int xs[3], w1[2], w2[2], big, act;
            for (big = 0; big < 2; big++)
                for (act = 0; act < 3; act++) {
                    xs[0] = big ? 2 : rdim(); xs[1] = big ? 33 : rdim(); xs[2] = big ? 20 : rdim();
                    w1[0] = big ? 37 : rdim(); w1[1] = xs[2]; w2[0] = big ? 27 : rdim(); w2[1] = w1[0];
                    g.x[0] = leaf(3, xs, 0); g.x[1] = leaf(2, w1, 0); g.x[2] = leaf(1, w1, 0);
                    g.x[3] = leaf(2, w2, 0); g.x[4] = leaf(1, w2, 0);
                    g.a[0] = act;
                    g.flags = trial % 2 ? ACN_RECOMPUTE : 0;
                    sprintf(what, "ffn%s%s%s trial %d", big ? " (packed sizes)" : "",
                            act == 2 ? " on act., shared W" : act ? " on activations" : "",
                            g.flags ? " recomputed" : "", trial);
                    run(what, b_ffn, &g, 5);
                }
            g.flags = 0;
        }
        /* recomputed values read by a later op's backward */
        {
            int xs[2], w1[2], w2[2];
            xs[0] = rdim(); xs[1] = rdim() + 3; w1[0] = rdim(); w1[1] = xs[1]; w2[0] = rdim(); w2[1] = w1[0];
            g.x[0] = leaf(2, xs, 0); g.x[1] = leaf(2, w1, 0); g.x[2] = leaf(1, xs + 1, 0); g.x[3] = leaf(2, w2, 0);
            spread(g.x[0]);
            sprintf(what, "recompute chain trial %d", trial); run(what, b_recompute, &g, 4);
        }
        acn_mark_rewind(ctx, m);
    }

    /* The checker itself: a right backward passes, one off by 1% fails. */
    {
        acn_gradcheck_result res;
        acn_status st;
        int xs[2] = {3, 5};
        memset(&g, 0, sizeof g);
        g.x[0] = leaf(2, xs, 0);
        sq_k = 1.0f;
        st = acn_gradcheck(ctx, b_square, &g, g.x, 1, NULL, &res);
        CHECK(st == ACN_OK && res.worst < 1e-3, "right custom backward rejected: %s (%g)", acn_error(ctx), res.worst);
        acn_clear_error(ctx);
        sq_k = 1.01f;
        st = acn_gradcheck(ctx, b_square, &g, g.x, 1, NULL, &res);
        CHECK(st == ACN_ERR_STATE && res.worst > 5e-3 && res.worst < 2e-2,
              "a backward off by 1%% was accepted (status %d, worst %g)", st, res.worst);
        CHECK(strstr(acn_error(ctx), "differ") != NULL, "message: %s", acn_error(ctx));
        acn_clear_error(ctx);
        sq_k = 0.99f;
        st = acn_gradcheck(ctx, b_square, &g, g.x, 1, NULL, &res);
        CHECK(st == ACN_ERR_STATE, "a backward 1%% low was accepted (worst %g)", res.worst);
        acn_clear_error(ctx);
    }
    acn_ctx_free(ctx);
    return t_done("gradcheck");
}
