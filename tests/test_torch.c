/* PyTorch parity: every op's forward and backward, AdamW (with weight decay,
 * clipping and the warmup-cosine schedule) and SGD, against the reference
 * files that tests/ref/make_refs.py writes with PyTorch.
 * Usage: test_torch [DIR]   (DIR holds ops.safetensors and optim.safetensors;
 * default tests/ref). "Match" is ||acn - torch|| / ||torch|| under 1e-5 for
 * each tensor (1e-4 for the optimizer runs, where fp32 drift compounds). */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"

static acn_ctx *ctx;
static acn_st st;
static char name[128];

/* A tensor from the reference file, named case.key; NULL when absent. */
static acn_tensor *ref(const char *c, const char *key, int grad)
{
    const acn_st_entry *e;
    int shape[4], d;
    acn_tensor *t;
    snprintf(name, sizeof name, "%s.%s", c, key);
    if (!(e = acn_st_find(&st, name))) return NULL;
    for (d = 0; d < e->ndim; d++) shape[d] = (int)e->shape[d];
    t = acn_new(ctx, e->ndim, shape, grad ? ACN_F_GRAD : 0);
    if (t) acn_st_get_f32(ctx, &st, name, t->data, t->numel);
    return t;
}

/* Compare n floats with the reference case.key. */
static void same(const char *c, const char *key, const float *v, size_t n, double tol)
{
    const acn_st_entry *e;
    float *want;
    double err;
    snprintf(name, sizeof name, "%s.%s", c, key);
    e = acn_st_find(&st, name);
    CHECK(e && e->end - e->begin == n * 4, "%s: missing from the reference, or %zu values here", name, n);
    if (!e || e->end - e->begin != n * 4) return;
    want = (float *)malloc(n * sizeof(float));
    acn_st_get_f32(ctx, &st, name, want, n);
    err = t_relerr(v, want, n);
    CHECK(err < tol, "%s: relative error %.3g (tolerance %.1g)", name, err, tol);
    free(want);
}

/* Labels or ids stored as F32. */
static int *ints(acn_tensor *t)
{
    static int buf[256];
    size_t i;
    for (i = 0; i < t->numel; i++) buf[i] = (int)t->data[i];
    return buf;
}

/* Build the op of case c from its inputs x[]; NULL if the case is unknown. */
static acn_tensor *build(const char *c, acn_tensor **x)
{
    int s[4];
#define IS(n) (!strcmp(c, n))
    if (IS("add_bcast") || IS("add_bcast2")) return acn_add(ctx, x[0], x[1]);
    if (IS("sub_bcast")) return acn_sub(ctx, x[0], x[1]);
    if (IS("mul_bcast") || IS("mul_same")) return acn_mul(ctx, x[0], x[1]);
    if (IS("scale")) return acn_scale(ctx, x[0], 0.37f);
    if (IS("add_n")) return acn_add_n(ctx, x, 3);
    if (IS("sum_axis1")) return acn_sum(ctx, x[0], 1);
    if (IS("mean_last")) return acn_mean(ctx, x[0], -1);
    if (IS("sum_all")) return acn_sum(ctx, x[0], ACN_AXIS_ALL);
    if (IS("mean_all")) return acn_mean(ctx, x[0], ACN_AXIS_ALL);
    if (IS("matmul_2d") || IS("matmul_batched4") || IS("matmul_shared") || IS("matmul_long"))
        return acn_matmul(ctx, x[0], x[1], 0, 0);
    if (IS("matmul_tt")) return acn_matmul(ctx, x[0], x[1], 1, 1);
    if (IS("matmul_nt")) return acn_matmul(ctx, x[0], x[1], 0, 1);
    if (IS("matmul_ta_batched")) return acn_matmul(ctx, x[0], x[1], 1, 0);
    if (IS("linear")) return acn_linear(ctx, x[0], x[1], x[2]);
    if (IS("linear_nobias")) return acn_linear(ctx, x[0], x[1], NULL);
    if (IS("linear_gelu")) return acn_linear_gelu(ctx, x[0], x[1], x[2], 0);
    if (IS("gelu")) return acn_gelu(ctx, x[0]);
    if (IS("gelu_tanh")) return acn_gelu_ex(ctx, x[0], ACN_GELU_TANH);
    if (IS("relu")) return acn_relu(ctx, x[0]);
    if (IS("tanh")) return acn_tanh(ctx, x[0]);
    if (IS("softmax")) return acn_softmax(ctx, x[0], NULL);
    if (IS("softmax_mask")) return acn_softmax(ctx, x[0], x[1]);
    if (IS("xent_smooth_ignore")) return acn_cross_entropy(ctx, x[0], ints(x[1]), 0.1f, -100);
    if (IS("xent_plain")) return acn_cross_entropy(ctx, x[0], ints(x[1]), 0.0f, -100);
    if (IS("xent_soft")) return acn_cross_entropy_soft(ctx, x[0], x[1], 0.1f);
    if (IS("layernorm")) return acn_layernorm(ctx, x[0], x[1], x[2], 1e-5f);
    if (IS("layernorm_noaffine")) return acn_layernorm(ctx, x[0], NULL, NULL, 1e-6f);
    if (IS("transpose")) return acn_transpose(ctx, x[0], 1, 3);
    if (IS("reshape")) { s[0] = 4; s[1] = -1; return acn_reshape(ctx, x[0], 2, s); }
    if (IS("concat")) return acn_concat(ctx, x, 3, 1);
    if (IS("slice")) return acn_slice(ctx, x[0], 1, 1, 3);
    if (IS("patches")) return acn_patches(ctx, x[0], 4);
    if (IS("patches_conv")) { /* Conv2d(k=4, s=4) = linear on patches with W.view(6, 48) */
        s[0] = 6; s[1] = -1;
        return acn_linear(ctx, acn_patches(ctx, x[0], 4), acn_reshape(ctx, x[1], 2, s), x[2]);
    }
    if (IS("embedding")) { s[0] = 2; s[1] = 4; return acn_embedding(ctx, x[0], ints(x[1]), 2, s); }
    if (IS("dropout")) { acn_rng_seed(acn_ctx_rng(ctx), 1234); return acn_dropout(ctx, x[0], 0.3f); }
    if (IS("attention")) return acn_attention(ctx, x[0], x[1], x[2], 2, x[3]);
    if (IS("attention_cross")) return acn_attention(ctx, x[0], x[1], x[2], 4, NULL);
#undef IS
    return NULL;
}

static void op_case(const char *c)
{
    acn_tensor *x[4] = {NULL, NULL, NULL, NULL}, *out, *r;
    char key[16];
    int i, n = 0;
    acn_reset(ctx);
    for (i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "gin%d", i);
        snprintf(name, sizeof name, "%s.%s", c, key);
        {
            int grad = acn_st_find(&st, name) != NULL;
            snprintf(key, sizeof key, "in%d", i);
            if ((x[i] = ref(c, key, grad))) n = i + 1;
        }
    }
    out = build(c, x);
    r = ref(c, "r", 0);
    CHECK(out && r && out->numel == r->numel, "%s: %s", c, out ? "no upstream gradient" : acn_error(ctx));
    if (!out || !r || out->numel != r->numel) { acn_clear_error(ctx); return; }
    same(c, "out", acn_data(ctx, out), out->numel, 1e-5);
    CHECK(acn_backward_with(ctx, out, r->data) == ACN_OK, "%s: backward: %s", c, acn_error(ctx));
    for (i = 0; i < n; i++)
        if (x[i] && (x[i]->flags & ACN_F_GRAD)) {
            snprintf(key, sizeof key, "gin%d", i);
            same(c, key, x[i]->grad, x[i]->numel, 1e-5);
        }
}

/* The 4-8-3 tanh MLP of make_refs.py, trained with AdamW or SGD. */
static void optim_case(const char *which)
{
    static const char *pn[4] = {"W1", "b1", "W2", "b2"};
    acn_tensor *p[4], *X, *Y, *h, *loss;
    int shape[4][2] = {{8, 4}, {8, 0}, {3, 8}, {3, 0}}, k, s, steps = which[0] == 'a' ? 10 : 6;
    float losses[10], lrs[10], norms[10];
    acn_schedule sched = acn_schedule_warmup_cosine(1e-2f, 3, 10, 1e-4f);
    acn_adamw adam;
    acn_sgd sgd;
    acn_ctx *saved = ctx;
    acn_ctx_config cfg = acn_ctx_defaults();
    cfg.param_floats = 4096;
    cfg.arena_bytes = 1 << 20;
    if (acn_ctx_new(&ctx, &cfg)) { CHECK(0, "context"); ctx = saved; return; }
    for (k = 0; k < 4; k++) {
        char key[32];
        p[k] = acn_param(ctx, pn[k], shape[k][1] ? 2 : 1, shape[k]);
        snprintf(key, sizeof key, "init.%s", pn[k]);
        acn_st_get_f32(ctx, &st, key, p[k]->data, p[k]->numel);
    }
    acn_param_set_decay(p[1], 0);
    if (which[0] == 'a') acn_adamw_init(ctx, &adam, 0.9f, 0.99f, 1e-8f, 0.1f);
    else acn_sgd_init(ctx, &sgd, 0.9f, 0.0f, 0.01f, 1);
    for (s = 0; s < steps; s++) {
        acn_reset(ctx);
        X = ref("init", "x", 0);
        Y = ref("init", "y", 0);
        h = acn_tanh(ctx, acn_linear(ctx, X, p[0], p[1]));
        loss = acn_cross_entropy(ctx, acn_linear(ctx, h, p[2], p[3]), ints(Y), 0.0f, -100);
        acn_zero_grad(ctx);
        acn_backward(ctx, loss);
        acn_clip_grad_norm(ctx, 0.5f, &norms[s]);
        lrs[s] = which[0] == 'a' ? acn_lr_at(&sched, s) : 0.1f;
        if (which[0] == 'a') acn_adamw_step(ctx, &adam, lrs[s]);
        else acn_sgd_step(ctx, &sgd, lrs[s]);
        losses[s] = loss ? loss->data[0] : NAN;
    }
    CHECK(acn_status_of(ctx) == ACN_OK, "%s: %s", which, acn_error(ctx));
    same(which, "lr", lrs, (size_t)steps, 1e-6);
    same(which, "norm", norms, (size_t)steps, 1e-5);
    same(which, "loss", losses, (size_t)steps, 1e-5);
    for (k = 0; k < 4; k++) same(which, pn[k], p[k]->data, p[k]->numel, 1e-4);
    if (which[0] == 'a') acn_adamw_free(&adam);
    else acn_sgd_free(&sgd);
    acn_ctx_free(ctx);
    ctx = saved;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/ref";
    char path[512];
    int i, cases = 0;
    if (acn_ctx_new(&ctx, NULL)) return 1;
    snprintf(path, sizeof path, "%s/ops.safetensors", dir);
    if (acn_st_read(ctx, path, &st)) {
        fprintf(stderr, "%s\n", acn_error(ctx));
        return 1;
    }
    /* every case in the file: names ending in ".out" */
    for (i = 0; i < st.n; i++) {
        size_t len = strlen(st.entries[i].name);
        if (len > 4 && !strcmp(st.entries[i].name + len - 4, ".out")) {
            char c[96];
            memcpy(c, st.entries[i].name, len - 4);
            c[len - 4] = '\0';
            op_case(c);
            cases++;
        }
    }
    CHECK(cases >= 40, "only %d op cases in %s", cases, path);
    acn_st_free(&st);
    snprintf(path, sizeof path, "%s/optim.safetensors", dir);
    if (acn_st_read(ctx, path, &st)) {
        fprintf(stderr, "%s\n", acn_error(ctx));
        return 1;
    }
    optim_case("adamw");
    optim_case("sgd");
    acn_st_free(&st);
    acn_ctx_free(ctx);
    return t_done("torch parity");
}
