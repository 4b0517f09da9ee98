/* acn.h in a web page: plain, residual and ACN MLPs trained side by side on
 * the built-in UCI digits, one call at a time, for examples/web/index.html
 * (whose script, app.js, runs this module in a Web Worker). Built by
 * `make web` with Debian's clang, lld and wasi-libc:
 *
 *   clang --target=wasm32-wasi -std=c99 -O2 -mexec-model=reactor examples/web/acn_web.c -o build/web/acn_web.wasm
 *
 * and natively with -DACN_WEB_MAIN for the test that checks the page's numbers
 * (a program that prints what the page shows after N steps):
 *
 *   cc -std=c99 -O2 -DACN_NO_SIMD -DACN_NO_THREADS -DACN_WEB_MAIN examples/web/acn_web.c -lm
 *   ./a.out DEPTH WIDTH LR SEED STEPS
 *
 * The exported functions (web_*) return 0 on success; on failure 1, with a
 * message in web_error(). Numbers come back through fixed arrays in the
 * module's memory, whose addresses the web_*_ptr functions give:
 *   loss      (3)               each network's mean loss over the steps of
 *                               the last web_train call
 *   gnorm     (3, WEB_MAXL)     each block's weight-gradient norm (before
 *                               clipping), the mean over those steps
 *   probe     (3, WEB_MAXL + 1) test accuracy (%) of the head after k blocks
 * The networks are, in this order, plain, residual and ACN (docs/models.md,
 * "Wirings"): the MLP of the demo (64 -> width, then depth blocks of Linear,
 * GELU and LayerNorm, then LayerNorm and a classifier), AdamW at a constant
 * rate with weight decay 0.01, gradients clipped to norm 1, batches of 64.
 * All three start from the same seed (their own weights differ by wiring
 * only where the wirings differ: the same draws fill the same shapes).
 */
#define ACN_NO_STDIO /* no files: the digits are compiled in */
#define ACN_IMPLEMENTATION
#include "../../acn.h"
#include "../digits.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#if defined(__wasm__)
#define WEB_EXPORT(name) __attribute__((export_name(name)))
#else
#define WEB_EXPORT(name)
#endif

enum { WEB_NETS = 3, WEB_BATCH = 64, WEB_MAXL = 24, WEB_MAXW = 256 };
static const int web_wiring[WEB_NETS] = {ACN_PLAIN, ACN_RESIDUAL, ACN_ACN};

typedef struct web_net {
    acn_ctx *ctx;
    acn_mlp m;
    acn_adamw opt;
    acn_sampler smp;
} web_net;

static web_net nets[WEB_NETS];
static int web_depth, web_steps_done;
static float web_rate;
static float xtr[DIGITS_N * 64], xte[(DIGITS_N / 5 + 1) * 64];
static int ytr[DIGITS_N], yte[DIGITS_N / 5 + 1], ntr, nte, have_data;
static float out_loss[WEB_NETS], out_gnorm[WEB_NETS][WEB_MAXL], out_probe[WEB_NETS][WEB_MAXL + 1];
static char out_error[640]; /* room for acn.h's message (512) and what we add */

static int web_fail(const char *what, const acn_ctx *ctx)
{
    snprintf(out_error, sizeof out_error, "%s%s%s", what, ctx ? ": " : "", ctx ? acn_error(ctx) : "");
    return 1;
}

static void web_free(void)
{
    int n;
    for (n = 0; n < WEB_NETS; n++) {
        acn_adamw_free(&nets[n].opt);
        acn_sampler_free(&nets[n].smp);
        acn_ctx_free(nets[n].ctx);
        memset(&nets[n], 0, sizeof nets[n]);
    }
}

/* Three new networks of depth blocks of the given width, trained at rate
 * lr; seed fixes their weights and the order of the batches. */
WEB_EXPORT("web_setup") int web_setup(int depth, int width, float lr, int seed)
{
    int n;
    web_free();
    out_error[0] = 0;
    memset(out_loss, 0, sizeof out_loss);
    memset(out_gnorm, 0, sizeof out_gnorm);
    memset(out_probe, 0, sizeof out_probe);
    web_steps_done = 0;
    if (depth < 1 || depth > WEB_MAXL || width < 8 || width > WEB_MAXW || !(lr > 0.0f && lr <= 0.1f) || seed < 0) {
        snprintf(out_error, sizeof out_error, "depth must be 1..%d, width 8..%d, the learning rate in (0, 0.1] and "
                 "the seed >= 0 (got %d, %d, %g, %d)", WEB_MAXL, WEB_MAXW, depth, width, (double)lr, seed);
        return 1;
    }
    if (!have_data) {
        digits_split(xtr, ytr, &ntr, xte, yte, &nte);
        have_data = 1;
    }
    web_depth = depth;
    web_rate = lr;
    for (n = 0; n < WEB_NETS; n++) {
        acn_ctx_config cfg = acn_ctx_defaults();
        acn_mlp_config mc = acn_mlp_defaults();
        char why[256];
        cfg.seed = (uint64_t)seed;
        cfg.arena_bytes = (size_t)16 << 20;
        if (acn_ctx_new_ex(&nets[n].ctx, &cfg, why, sizeof why)) {
            snprintf(out_error, sizeof out_error, "cannot create a context: %s", why);
            web_free();
            return 1;
        }
        mc.depth = depth;
        mc.width = width;
        mc.wiring = web_wiring[n];
        if (acn_mlp_build(nets[n].ctx, &nets[n].m, &mc) ||
            acn_adamw_init(nets[n].ctx, &nets[n].opt, 0.9f, 0.999f, 1e-8f, 0.01f) ||
            acn_sampler_init(nets[n].ctx, &nets[n].smp, ntr, WEB_BATCH, (uint64_t)seed, 0)) {
            web_fail("setup", nets[n].ctx);
            web_free();
            return 1;
        }
    }
    return 0;
}

/* steps training steps of each network: a batch, forward, cross-entropy,
 * backward, each block's gradient norm (before clipping), clipping, AdamW;
 * the loss and the norms averaged over the steps. */
WEB_EXPORT("web_train") int web_train(int steps)
{
    int n, s, i, b, idx[WEB_BATCH], yb[WEB_BATCH], shape[2];
    static float xb[WEB_BATCH * 64];
    static double sum_loss[WEB_NETS], sum_gnorm[WEB_NETS][WEB_MAXL];
    if (!nets[0].ctx) return web_fail("web_train: call web_setup first", NULL);
    if (steps < 1) return 0;
    memset(sum_loss, 0, sizeof sum_loss);
    memset(sum_gnorm, 0, sizeof sum_gnorm);
    for (s = 0; s < steps; s++) {
        for (n = 0; n < WEB_NETS; n++) {
            web_net *w = &nets[n];
            acn_tensor *loss;
            if ((b = acn_sampler_next(&w->smp, idx)) == 0) b = acn_sampler_next(&w->smp, idx); /* a new epoch */
            for (i = 0; i < b; i++) {
                memcpy(xb + i * 64, xtr + (size_t)idx[i] * 64, 64 * sizeof(float));
                yb[i] = ytr[idx[i]];
            }
            acn_reset(w->ctx);
            shape[0] = b;
            shape[1] = 64;
            loss = acn_cross_entropy(w->ctx, acn_mlp_forward(w->ctx, &w->m, acn_input(w->ctx, 2, shape, xb), -1, NULL),
                                     yb, 0.0f, -1);
            acn_zero_grad(w->ctx);
            if (!loss || acn_backward(w->ctx, loss)) return web_fail("training", w->ctx);
            for (i = 0; i < web_depth; i++) /* the Frobenius norm of block i's weight gradient */
                sum_gnorm[n][i] += acn_grad_norm(w->ctx, w->m.blocks[i].fc.weight);
            sum_loss[n] += acn_item(w->ctx, loss);
            if (acn_clip_grad_norm(w->ctx, 1.0f, NULL) || acn_adamw_step(w->ctx, &w->opt, web_rate))
                return web_fail("training", w->ctx);
        }
        web_steps_done++;
    }
    for (n = 0; n < WEB_NETS; n++) {
        out_loss[n] = (float)(sum_loss[n] / steps);
        for (i = 0; i < web_depth; i++) out_gnorm[n][i] = (float)(sum_gnorm[n][i] / steps);
    }
    return 0;
}

/* The test accuracy (%) of each network's head after k = 0..depth blocks,
 * on the 360 test images, into out_probe. */
WEB_EXPORT("web_probe") int web_probe(void)
{
    int n, i, k, c;
    if (!nets[0].ctx) return web_fail("web_probe: call web_setup first", NULL);
    for (n = 0; n < WEB_NETS; n++) {
        web_net *w = &nets[n];
        int correct[WEB_MAXL + 1], shape[2];
        acn_tensor *probes[WEB_MAXL + 1];
        memset(correct, 0, sizeof correct);
        acn_set_no_grad(w->ctx, 1);
        for (i = 0; i < nte; i += WEB_BATCH) {
            int b = nte - i < WEB_BATCH ? nte - i : WEB_BATCH;
            acn_reset(w->ctx);
            shape[0] = b;
            shape[1] = 64;
            if (!acn_mlp_forward_ex(w->ctx, &w->m, acn_input(w->ctx, 2, shape, xte + (size_t)i * 64), -1, probes,
                                    WEB_MAXL + 1))
                break;
            for (k = 0; k <= web_depth; k++) {
                int pred[WEB_BATCH];
                if (acn_argmax(w->ctx, probes[k], pred)) break;
                for (c = 0; c < b; c++) correct[k] += pred[c] == yte[i + c];
            }
        }
        acn_set_no_grad(w->ctx, 0);
        if (acn_status_of(w->ctx)) return web_fail("probing", w->ctx);
        for (k = 0; k <= web_depth; k++) out_probe[n][k] = 100.0f * (float)correct[k] / (float)nte;
    }
    return 0;
}

/* ---- the 1-D linear chain (docs/models.md, "Wirings") -------------------
 * L blocks f_i(x) = w_i x on x_0: plain x_i = w_i x_{i-1}, y = x_L;
 * residual x_i = (1 + w_i) x_{i-1}, y = x_L; ACN x_i = w_i x_{i-1},
 * y = x_0 + ... + x_L. web_chain computes y and dy/dw_i by acn.h's
 * backward, and by the closed forms, for the weights the page wrote into
 * chain_w; for ACN also the direct part DG_i (through block i's own long
 * connection: backward with every block's input detached) and the forward
 * part FG_i = dy/dw_i - DG_i. chain_out, for L blocks:
 *   [0 .. 2]          y of plain, residual, ACN (autograd)
 *   [3 + 8 i ...]     row i (i = 0 .. L-1), 8 numbers: autograd and
 *                     closed-form dy/dw_i for plain, residual, ACN, then
 *                     DG_i, FG_i */
enum { WEB_CHAIN_MAX = 12 };
static float chain_w[WEB_CHAIN_MAX], chain_out[3 + 8 * WEB_CHAIN_MAX];
static acn_ctx *chain_ctx;

/* y (returned) and dy/dw_i (into g) for one wiring: 0 plain, 1 residual, 2 ACN, 3 ACN detached. */
static float chain_grads(int wiring, int L, float x0, float *g)
{
    acn_tensor *W[WEB_CHAIN_MAX], *y, *xi;
    int i, one = 1;
    acn_reset(chain_ctx);
    y = xi = acn_input(chain_ctx, 1, &one, &x0);
    for (i = 0; i < L; i++) {
        W[i] = acn_new(chain_ctx, 1, &one, ACN_F_GRAD);
        if (W[i]) acn_write(chain_ctx, W[i], &chain_w[i]);
    }
    for (i = 0; i < L; i++) {
        if (wiring == 0) y = acn_mul(chain_ctx, W[i], y);
        else if (wiring == 1) y = acn_add(chain_ctx, y, acn_mul(chain_ctx, W[i], y));
        else {
            xi = acn_mul(chain_ctx, W[i], wiring == 3 ? acn_detach(chain_ctx, xi) : xi);
            y = acn_add(chain_ctx, y, xi);
        }
    }
    if (acn_backward(chain_ctx, acn_sum(chain_ctx, y, ACN_AXIS_ALL))) return NAN;
    for (i = 0; i < L; i++)
        if (acn_read_grad(chain_ctx, W[i], &g[i])) return NAN;
    return acn_item(chain_ctx, y);
}

WEB_EXPORT("web_chain") int web_chain(int L, float x0)
{
    float g[4][WEB_CHAIN_MAX];
    int i, k, wr;
    if (L < 1 || L > WEB_CHAIN_MAX) {
        snprintf(out_error, sizeof out_error, "the chain has 1 to %d blocks (got %d)", WEB_CHAIN_MAX, L);
        return 1;
    }
    if (!chain_ctx && acn_ctx_new(&chain_ctx, NULL)) return web_fail("cannot create the chain's context", NULL);
    for (wr = 0; wr < 4; wr++) {
        float y = chain_grads(wr, L, x0, g[wr]);
        if (acn_status_of(chain_ctx)) return web_fail("chain", chain_ctx);
        if (wr < 3) chain_out[wr] = y;
    }
    for (i = 0; i < L; i++) {
        double before = 1, before_res = 1, after = 1, after_res = 1, fg = 0, run = 1;
        float *row = chain_out + 3 + 8 * i;
        for (k = 0; k < i; k++) { before *= chain_w[k]; before_res *= 1 + chain_w[k]; }
        for (k = i + 1; k < L; k++) { after *= chain_w[k]; after_res *= 1 + chain_w[k]; run *= chain_w[k]; fg += run; }
        row[0] = g[0][i];
        row[1] = (float)(after * before * x0);         /* plain: the product of all other weights */
        row[2] = g[1][i];
        row[3] = (float)(after_res * before_res * x0); /* residual: of all other (1 + w) */
        row[4] = g[2][i];
        /* ACN: (1 + w_{i+1} + w_{i+1} w_{i+2} + ...) (w_1 ... w_{i-1}) x0 */
        row[5] = (float)((1 + fg) * before * x0);
        row[6] = g[3][i];                              /* DG: before * x0 */
        row[7] = g[2][i] - g[3][i];                    /* FG */
    }
    return 0;
}

WEB_EXPORT("web_steps") int web_steps(void) { return web_steps_done; }
WEB_EXPORT("web_loss_ptr") float *web_loss_ptr(void) { return out_loss; }
WEB_EXPORT("web_gnorm_ptr") float *web_gnorm_ptr(void) { return &out_gnorm[0][0]; }
WEB_EXPORT("web_probe_ptr") float *web_probe_ptr(void) { return &out_probe[0][0]; }
WEB_EXPORT("web_chain_w_ptr") float *web_chain_w_ptr(void) { return chain_w; }
WEB_EXPORT("web_chain_out_ptr") float *web_chain_out_ptr(void) { return chain_out; }
WEB_EXPORT("web_error") const char *web_error(void) { return out_error; }
WEB_EXPORT("web_maxl") int web_maxl(void) { return WEB_MAXL; }

#ifdef ACN_WEB_MAIN
/* The page's numbers, natively: DEPTH WIDTH LR SEED STEPS, trained in
 * calls of 10 steps as the page's test mode does (the last one shorter),
 * then "steps N", "loss ..." (the last call's means) and one "probe ..."
 * line per network. */
#include <stdlib.h>
int main(int argc, char **argv)
{
    int n, k;
    if (argc != 6) {
        fprintf(stderr, "usage: %s DEPTH WIDTH LR SEED STEPS\n", argv[0]);
        return 2;
    }
    if (web_setup(atoi(argv[1]), atoi(argv[2]), (float)atof(argv[3]), atoi(argv[4]))) {
        fprintf(stderr, "%s\n", web_error());
        return 1;
    }
    for (k = atoi(argv[5]); k > 0; k -= 10)
        if (web_train(k < 10 ? k : 10)) {
            fprintf(stderr, "%s\n", web_error());
            return 1;
        }
    if (web_probe()) {
        fprintf(stderr, "%s\n", web_error());
        return 1;
    }
    printf("steps %d\nloss %.6f %.6f %.6f\n", web_steps(), (double)out_loss[0], (double)out_loss[1],
           (double)out_loss[2]);
    for (n = 0; n < WEB_NETS; n++) {
        printf("probe %s", acn_wiring_name(web_wiring[n]));
        for (k = 0; k <= web_depth; k++) printf(" %.4f", (double)out_probe[n][k]);
        printf("\n");
    }
    web_free();
    return 0;
}
#endif
