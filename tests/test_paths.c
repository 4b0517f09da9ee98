/* The gradient paths of examples/gradient_paths.c, checked through that
 * program's own functions (included here without its main):
 *   1. the 1-D linear chain (an MLP of width 1, no activation, no LayerNorm,
 *      no bias), in plain, residual and ACN wiring: the total gradient of
 *      every block, its direct part DG (chain after the block detached) and
 *      its forward part FG (the block's long connection detached), each from
 *      its own backward, equal the closed forms of docs/models.md times
 *      dL/dy, to 1e-6 relative; and DG + FG = total;
 *   2. a nonlinear MLP (GELU, LayerNorm, 4 blocks) and the small Mixer: the
 *      forward built from public ops gives acn.h's logits and gradients in
 *      every wiring; in ACN wiring, DG measured two independent ways, (a)
 *      acn.h's detached wiring and (b) the built forward with only block i's
 *      chain link detached, agrees to 1e-6 relative per block
 *      (||DG_a - DG_b|| / ||DG_b||, on the block's whole parameter vector);
 *      FG measured directly equals total - DG; plain: DG is zero below the
 *      top block and the whole gradient there.
 * (3, the program end to end, is a step of tests/run.sh.) */
#define GRADIENT_PATHS_NO_MAIN
#include "../examples/gradient_paths.c"
#include "test.h"

static acn_ctx *ctx;
static acn_ctx_config ctx_cfg;
static const int wirings3[3] = {ACN_PLAIN, ACN_RESIDUAL, ACN_ACN};

/* A new context for each model: parameter names are unique within one. */
static int fresh(void)
{
    char why[256];
    acn_ctx_free(ctx);
    if (acn_ctx_new_ex(&ctx, &ctx_cfg, why, sizeof why)) {
        fprintf(stderr, "test_paths: cannot create a context: %s\n", why);
        return -1;
    }
    return 0;
}

/* ---- 1. the linear chain --------------------------------------------------- */
enum { CHAIN_L = 8 };

/* dy/dw_i of the chain x_i = w_i x_{i-1} (docs/models.md, "Wirings"), split:
 * total, DG (through block i's own long connection) and FG = total - DG.
 *   plain:    total = prod_{k>i} w_k prod_{m<i} w_m x0; DG = total at the
 *             top block, 0 below;
 *   residual: total = prod_{k>i} (1 + w_k) prod_{m<i} (1 + w_m) x0; the
 *             branch h_i = w_i x_{i-1} reaches y = x0 + h_1 + ... + h_L
 *             along the identity skips with weight 1: DG = prod_{m<i} (1 + w_m) x0;
 *   ACN:      total = (1 + sum_{j>i} prod_{k=i+1..j} w_k) prod_{m<i} w_m x0;
 *             DG = prod_{m<i} w_m x0 (ACN_DETACH's closed form).
 * Also y itself. Blocks 0..L-1 here (1..L in the docs). */
static double chain_closed(int wiring, const double *w, int L, double x0, int i, double *dg, double *y)
{
    double before = 1, before_res = 1, after = 1, after_res = 1, fg = 0, run = 1, total;
    int k;
    for (k = 0; k < i; k++) { before *= w[k]; before_res *= 1 + w[k]; }
    for (k = i + 1; k < L; k++) { after *= w[k]; after_res *= 1 + w[k]; run *= w[k]; fg += run; }
    if (wiring == ACN_PLAIN) {
        total = after * before * x0;
        *dg = i == L - 1 ? total : 0.0;
    } else if (wiring == ACN_RESIDUAL) {
        total = after_res * before_res * x0;
        *dg = before_res * x0;
    } else {
        total = (1 + fg) * before * x0;
        *dg = before * x0;
    }
    for (*y = x0, run = x0, k = 0; k < L; k++) { /* the forward, in double */
        if (wiring == ACN_PLAIN) *y *= w[k];
        else if (wiring == ACN_RESIDUAL) *y *= 1 + w[k];
        else { run *= w[k]; *y += run; }
    }
    return total;
}

/* |a - b| / |b| (b nonzero), or |a| when b is 0 */
static double rel(double a, double b) { return b != 0.0 ? fabs(a - b) / fabs(b) : fabs(a); }

static void test_chain(const char *name, const double *w)
{
    static const float one = 1.0f;
    static const int label = 0;
    double wf[CHAIN_L]; /* the weights as the model holds them, rounded to float */
    int wi, i;
    for (i = 0; i < CHAIN_L; i++) wf[i] = (double)(float)w[i];
    for (wi = 0; wi < 3; wi++) {
        int wiring = wirings3[wi];
        double y0, dummy, c0, c1; /* the head: logits (c0 y, c1 y) */
        acn_mlp m;
        acn_mlp_config c = acn_mlp_defaults();
        paths_net net;
        float tot[CHAIN_L], dg[CHAIN_L], fg[CHAIN_L], dga[CHAIN_L], loss;
        double worst = 0.0, worst_sum = 0.0;
        c.in = c.width = 1;
        c.depth = CHAIN_L;
        c.classes = 2;
        c.act = ACN_ACT_NONE;
        c.block_ln = c.head_ln = c.bias = 0;
        c.wiring = wiring;
        if (fresh()) { CHECK(0, "no context"); return; }
        if (acn_mlp_build(ctx, &m, &c)) { CHECK(0, "%s: build: %s", name, acn_error(ctx)); return; }
        m.embed.weight->data[0] = 1.0f; /* x_0 = x = 1 */
        for (i = 0; i < CHAIN_L; i++) m.blocks[i].fc.weight->data[0] = (float)w[i];
        /* logits of about 0.5 and -0.25, whatever the size of y: a softmax far
         * from saturation, so that dL/dy is neither tiny nor rounded away */
        chain_closed(wiring, wf, CHAIN_L, 1.0, 0, &dummy, &y0);
        c0 = (float)(0.5 / fabs(y0));
        c1 = (float)(-0.25 / fabs(y0));
        m.clf.weight->data[0] = (float)c0;
        m.clf.weight->data[1] = (float)c1;
        memset(&net, 0, sizeof net);
        net.mlp = &m;
        CHECK(paths_block_size(&net) == 1, "%s: a block of the chain has %d parameters", name, (int)paths_block_size(&net));
        /* total: acn.h's forward; DG: (b) chain after block i detached, and
         * (a) every link detached; FG: block i's long connection detached */
        CHECK(!paths_grads(ctx, &net, wiring, 0, PATHS_CUT_NONE, -1, &one, &label, 1, -1, tot, &loss), "%s", acn_error(ctx));
        CHECK(!paths_grads(ctx, &net, wiring, 1, PATHS_CUT_ALL, -1, &one, &label, 1, -1, dga, NULL), "%s", acn_error(ctx));
        for (i = 0; i < CHAIN_L; i++) {
            CHECK(!paths_grads(ctx, &net, wiring, 1, i, -1, &one, &label, 1, i, dg, NULL), "%s", acn_error(ctx));
            CHECK(!paths_grads(ctx, &net, wiring, 1, PATHS_CUT_NONE, i, &one, &label, 1, i, fg, NULL), "%s", acn_error(ctx));
        }
        if (acn_status_of(ctx)) return;
        for (i = 0; i < CHAIN_L; i++) {
            double cdg, y, ctot = chain_closed(wiring, wf, CHAIN_L, 1.0, i, &cdg, &y);
            /* dL/dy for cross-entropy on logits (c0 y, c1 y), label 0 */
            double l0 = c0 * y, l1 = c1 * y, mx = l0 > l1 ? l0 : l1;
            double p0 = exp(l0 - mx) / (exp(l0 - mx) + exp(l1 - mx)), s = (p0 - 1.0) * c0 + (1.0 - p0) * c1;
            double e[4];
            CHECK(fabs(s) > 0.05 * fabs(c0), "%s, %s: dL/dy = %.3g is too small to test with", name,
                  acn_wiring_name(wiring), s);
            e[0] = rel(tot[i], s * ctot);
            e[1] = rel(dg[i], s * cdg);
            e[2] = rel(fg[i], s * (ctot - cdg));
            e[3] = rel(dga[i], s * cdg);
            CHECK(e[0] < 1e-6 && e[1] < 1e-6 && e[2] < 1e-6 && e[3] < 1e-6,
                  "%s, %s, block %d: total %.9g vs %.9g, DG %.9g vs %.9g (all at once %.9g), FG %.9g vs %.9g",
                  name, acn_wiring_name(wiring), i + 1, tot[i], s * ctot, dg[i], s * cdg, dga[i], fg[i], s * (ctot - cdg));
            if (e[0] > worst) worst = e[0];
            if (e[1] > worst) worst = e[1];
            if (e[2] > worst) worst = e[2];
            if (e[3] > worst) worst = e[3];
            if (rel((double)dg[i] + fg[i], tot[i]) > worst_sum) worst_sum = rel((double)dg[i] + fg[i], tot[i]);
            /* FG is a real part of the gradient below the top (else the check above says little) */
            if (i < CHAIN_L - 1 && wiring != ACN_PLAIN)
                CHECK(fabs(ctot - cdg) > 0.05 * fabs(ctot), "%s, %s, block %d: FG is only %.3g of %.3g", name,
                      acn_wiring_name(wiring), i + 1, ctot - cdg, ctot);
        }
        CHECK(worst_sum < 1e-6, "%s, %s: DG + FG differs from the total by %.3g relative", name, acn_wiring_name(wiring),
              worst_sum);
        printf("  chain %-8s %-8s: DG, FG, total against the closed forms: worst %.2g relative; DG + FG = total to %.2g\n",
               name, acn_wiring_name(wiring), worst, worst_sum);
    }
}

/* ---- 2. the nonlinear MLP and the small Mixer ------------------------------- */
enum { ROWS = 8 };

/* ||a - b|| / ||b|| over (L, P), block by block: the worst */
static double worst_rel(const float *a, const float *b, int L, size_t P)
{
    double w = 0.0;
    int i;
    for (i = 0; i < L; i++) {
        double r = t_relerr(a + (size_t)i * P, b + (size_t)i * P, P);
        if (r > w) w = r;
    }
    return w;
}

/* every LayerNorm's parameters away from 1 and 0, so that they matter */
static void perturb(acn_rng *r)
{
    int n, j;
    size_t k;
    acn_tensor *p = acn_params(ctx, &n);
    for (j = 0; j < n; j++)
        if (strstr(p[j].name, "ln."))
            for (k = 0; k < p[j].numel; k++) p[j].data[k] += 0.3f * acn_rng_normal(r);
}

static void test_net(const char *name, const paths_net *net, const float *x, const int *labels)
{
    int L = paths_depth(net), wi, i;
    size_t P = paths_block_size(net);
    float *buf = (float *)malloc(8 * (size_t)L * P * sizeof(float)); /* 8 x (L, P) */
    float *lib = buf, *hand = buf + L * P, *dga = buf + 2 * L * P, *dgb = buf + 3 * L * P, *fg = buf + 4 * L * P,
          *scratch = buf + 5 * L * P; /* 3 x (L, P) for paths_measure */
    if (!buf) { CHECK(0, "out of memory"); return; }
    for (wi = 0; wi < 3; wi++) {
        int wiring = wirings3[wi];
        float l1 = 0, l2 = 0;
        double e_fwd, e_dg = 0.0, e_fg = 0.0, min_fg = 1e300;
        acn_tensor *a, *b;
        paths_row row;
        /* the built forward against acn.h's: logits, loss and every block's gradient */
        acn_reset(ctx);
        a = paths_library(ctx, net, wiring, paths_input(ctx, net, x, ROWS));
        b = paths_forward(ctx, net, wiring, paths_input(ctx, net, x, ROWS), PATHS_CUT_NONE, -1);
        CHECK(a && b && a->numel == b->numel, "%s, %s: %s", name, acn_wiring_name(wiring), acn_error(ctx));
        if (!a || !b) break;
        e_fwd = t_relerr(b->data, a->data, a->numel);
        CHECK(e_fwd < 1e-6, "%s, %s: the built forward's logits differ from acn.h's by %.3g", name,
              acn_wiring_name(wiring), e_fwd);
        CHECK(!paths_grads(ctx, net, wiring, 0, PATHS_CUT_NONE, -1, x, labels, ROWS, -1, lib, &l1) &&
              !paths_grads(ctx, net, wiring, 1, PATHS_CUT_NONE, -1, x, labels, ROWS, -1, hand, &l2),
              "%s", acn_error(ctx));
        CHECK(fabs(l1 - l2) <= 1e-6 * fabs(l1) && worst_rel(hand, lib, L, P) < 1e-6,
              "%s, %s: the built forward's loss %.9g vs %.9g, gradients off by %.3g", name, acn_wiring_name(wiring), l2,
              l1, worst_rel(hand, lib, L, P));
        /* DG: (a) every link at once (ACN: acn.h's detached wiring), (b) block by block */
        if (wiring == ACN_ACN)
            CHECK(!paths_grads(ctx, net, ACN_ACN_DETACH, 0, PATHS_CUT_NONE, -1, x, labels, ROWS, -1, dga, NULL), "%s",
                  acn_error(ctx));
        else
            CHECK(!paths_grads(ctx, net, wiring, 1, PATHS_CUT_ALL, -1, x, labels, ROWS, -1, dga, NULL), "%s", acn_error(ctx));
        for (i = 0; i < L; i++) {
            CHECK(!paths_grads(ctx, net, wiring, 1, i, -1, x, labels, ROWS, i, dgb, NULL) &&
                  !paths_grads(ctx, net, wiring, 1, PATHS_CUT_NONE, i, x, labels, ROWS, i, fg, NULL),
                  "%s", acn_error(ctx));
        }
        if (acn_status_of(ctx)) break;
        for (i = 0; i < L; i++) {
            const float *t = lib + i * P, *da = dga + i * P, *db = dgb + i * P, *f = fg + i * P;
            double nd = paths_dist(db, NULL, P), nt = paths_dist(t, NULL, P), d, s = 0.0;
            size_t j;
            for (j = 0; j < P; j++) { /* ||t - (DG + FG)|| */
                double r = (double)t[j] - ((double)db[j] + f[j]);
                s += r * r;
            }
            if (nt > 0.0 && sqrt(s) / nt > e_fg) e_fg = sqrt(s) / nt;
            if (wiring == ACN_PLAIN && i < L - 1) { /* no long connection: DG exactly 0 both ways */
                CHECK(nd == 0.0 && paths_dist(da, NULL, P) == 0.0, "%s, plain, block %d: DG %.3g, not 0", name, i + 1, nd);
                continue;
            }
            if (wiring == ACN_PLAIN || (net->mixer && wiring == ACN_RESIDUAL)) { /* the top block: all DG */
                if (i < L - 1) {
                    CHECK(nd == 0.0, "%s, %s, block %d: DG %.3g, not 0", name, acn_wiring_name(wiring), i + 1, nd);
                    continue;
                }
                CHECK(t_relerr(db, t, P) < 1e-6, "%s, %s: the top block's DG is not its whole gradient (%.3g)", name,
                      acn_wiring_name(wiring), t_relerr(db, t, P));
            }
            d = t_relerr(da, db, P);
            if (d > e_dg) e_dg = d;
            if (i < L - 1 && nt > 0.0 && paths_dist(f, NULL, P) / nt < min_fg) min_fg = paths_dist(f, NULL, P) / nt;
        }
        CHECK(e_dg < 1e-6, "%s, %s: DG two ways differs by %.3g relative", name, acn_wiring_name(wiring), e_dg);
        CHECK(e_fg < 1e-5, "%s, %s: DG + FG differs from the total by %.3g relative", name, acn_wiring_name(wiring), e_fg);
        if (wiring != ACN_PLAIN && !(net->mixer && wiring == ACN_RESIDUAL))
            CHECK(min_fg > 1e-2, "%s, %s: FG is only %.3g of a block's gradient; the test would not see a wrong DG",
                  name, acn_wiring_name(wiring), min_fg);
        /* paths_measure, as the program calls it, says the same */
        CHECK(!paths_measure(ctx, net, wiring, x, labels, ROWS, scratch, &row), "%s", acn_error(ctx));
        CHECK(row.agree < 1e-6, "%s, %s: paths_measure: DG two ways differs by %.3g", name, acn_wiring_name(wiring),
              row.agree);
        for (i = 0; i < L; i++) {
            double nt = paths_dist(lib + i * P, NULL, P), nd = paths_dist(dgb + i * P, NULL, P);
            double nf = paths_dist(lib + i * P, dgb + i * P, P);
            CHECK(rel(row.total[i], nt) < 1e-6 && rel(row.dg[i], nd) < 1e-6 && rel(row.fg[i], nf) < 1e-6,
                  "%s, %s, block %d: paths_measure's norms DG %.6g FG %.6g total %.6g; here %.6g %.6g %.6g", name,
                  acn_wiring_name(wiring), i + 1, row.dg[i], row.fg[i], row.total[i], nd, nf, nt);
        }
        printf("  %-5s %-8s: built forward = acn.h's (%.2g); DG two ways %.2g; DG + FG = total to %.2g%s\n", name,
               acn_wiring_name(wiring), e_fwd, e_dg, e_fg,
               wiring == ACN_PLAIN || (net->mixer && wiring == ACN_RESIDUAL) ? "; DG = 0 below the top" : "");
    }
    free(buf);
}

int main(void)
{
    /* mixed signs, but no 1 + w near 0: a residual x + w x that cancels to
     * 0.1 x would lose a decimal digit in float, and the closed forms are exact */
    static const double w_fixed[CHAIN_L] = {0.9, -0.7, 1.3, 0.6, -0.4, 0.8, 1.2, -0.5};
    double w_rand[CHAIN_L];
    acn_rng r;
    float x[ROWS * 64]; /* (ROWS, 64): MLP inputs, or 1 x 8 x 8 images */
    int labels[ROWS], i;
    ctx_cfg = acn_ctx_defaults();
    ctx_cfg.seed = 7;
    ctx_cfg.arena_bytes = 64 << 20;
    acn_rng_seed(&r, 11);
    for (i = 0; i < CHAIN_L; i++) w_rand[i] = 0.3 + acn_rng_uniform(&r); /* 0.3 .. 1.3 */
    for (i = 0; i < ROWS * 64; i++) x[i] = acn_rng_uniform(&r);
    for (i = 0; i < ROWS; i++) labels[i] = (int)(acn_rng_u64(&r) % 5);

    printf("1. the linear chain of %d blocks\n", CHAIN_L);
    test_chain("fixed", w_fixed);
    test_chain("random", w_rand);

    printf("2. a nonlinear MLP and the small Mixer\n");
    if (!fresh()) {
        acn_mlp m;
        acn_mlp_config c = acn_mlp_defaults(); /* GELU, LayerNorms, biases */
        paths_net net;
        c.in = 64;
        c.width = 16;
        c.depth = 4;
        c.classes = 5;
        CHECK(!acn_mlp_build(ctx, &m, &c), "%s", acn_error(ctx));
        perturb(&r);
        memset(&net, 0, sizeof net);
        net.mlp = &m;
        CHECK(paths_in(&net) == 64, "the MLP takes %d inputs", paths_in(&net));
        test_net("MLP", &net, x, labels);
    }
    if (!fresh()) {
        acn_mixer m;
        acn_mixer_config c = t_small_mixer(); /* 3 blocks of width 16, 8 x 8 images, 5 classes */
        paths_net net;
        c.channels = 1; /* x as 1 x 8 x 8 images in 2 x 2 patches: 16 patches and the CLS token */
        c.patch = 2;
        CHECK(!acn_mixer_build(ctx, &m, &c), "%s", acn_error(ctx));
        perturb(&r);
        memset(&net, 0, sizeof net);
        net.mixer = &m;
        CHECK(paths_in(&net) == 64, "the Mixer takes %d floats an image", paths_in(&net));
        test_net("Mixer", &net, x, labels);
    }
    acn_ctx_free(ctx);
    return t_done("paths");
}
