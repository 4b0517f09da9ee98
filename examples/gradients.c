/* How the gradient reaches each block in plain, residual and ACN wiring.
 *
 * The 1-D linear chain of the paper (docs/models.md, "Wirings"): L blocks
 * f_i(x) = w_i x on an input x_0. acn.h's autograd computes dy/dw_i for
 *   plain     x_i = w_i x_{i-1},             y = x_L
 *   residual  x_i = x_{i-1} + w_i x_{i-1},   y = x_L
 *   ACN       x_i = w_i x_{i-1},             y = x_0 + x_1 + ... + x_L
 * and the program checks each against its closed form. For ACN it also
 * splits the gradient into the direct part (DG, through block i's own long
 * connection: what the detached variant trains on) and the forward part
 * (FG, through the later blocks).
 *
 *   cc -O2 examples/gradients.c -lm && ./a.out [L] [w]
 */
#define ACN_IMPLEMENTATION
#include "../acn.h"  /* in your project: "acn.h" */
#include <stdio.h>
#include <stdlib.h>

enum { PLAIN, RESIDUAL, ACN, ACN_DETACHED };

/* dy/dw_i for every block in one wiring, by backward. */
static int grads(acn_ctx *ctx, int wiring, int L, const float *w, float x0, double *out)
{
    acn_tensor *W[64], *x, *y, *xi;
    int i, one = 1;
    acn_reset(ctx);
    x = acn_input(ctx, 1, &one, &x0);
    for (i = 0; i < L; i++) {
        W[i] = acn_new(ctx, 1, &one, ACN_F_GRAD);
        if (W[i]) acn_write(ctx, W[i], &w[i]);
    }
    y = xi = x;
    for (i = 0; i < L; i++) {
        switch (wiring) {
        case PLAIN: y = acn_mul(ctx, W[i], y); break;
        case RESIDUAL: y = acn_add(ctx, y, acn_mul(ctx, W[i], y)); break;
        default:
            /* ACN: the chain feeds each block; the output sums them. The
             * detached variant cuts the chain for gradients. */
            xi = acn_mul(ctx, W[i], wiring == ACN_DETACHED ? acn_detach(ctx, xi) : xi);
            y = acn_add(ctx, y, xi);
        }
    }
    if (acn_backward(ctx, acn_sum(ctx, y, ACN_AXIS_ALL))) return -1;
    for (i = 0; i < L; i++) {
        float g;
        if (acn_read_grad(ctx, W[i], &g)) return -1;
        out[i] = g;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int L = argc > 1 ? atoi(argv[1]) : 8, i, k, bad = 0;
    float wv = argc > 2 ? (float)atof(argv[2]) : 0.5f, w[64], x0 = 1.0f;
    double g[4][64];
    acn_ctx *ctx;
    if (L < 1 || L > 64) {
        fprintf(stderr, "usage: %s [L (1..64 blocks, default 8)] [w (every block's weight, default 0.5)]\n", argv[0]);
        return 2;
    }
    {
        char why[256];
        if (acn_ctx_new_ex(&ctx, NULL, why, sizeof why)) { fprintf(stderr, "error: %s\n", why); return 1; }
    }
    for (i = 0; i < L; i++) w[i] = wv;
    for (k = 0; k < 4; k++)
        if (grads(ctx, k, L, w, x0, g[k])) {
            fprintf(stderr, "error: %s\n", acn_error(ctx));
            return 1;
        }
    printf("dy/dw_i of a %d-block linear chain, w_i = %g, x_0 = %g\n\n", L, (double)wv, (double)x0);
    printf("block      plain   residual        ACN  |  ACN: DG (direct)   FG (forward)   DG/FG\n");
    for (i = 0; i < L; i++) {
        double before = 1, before_res = 1, after = 1, after_res = 1, fg = 0, run = 1;
        for (k = 0; k < i; k++) { before *= w[k]; before_res *= 1 + w[k]; }
        for (k = i + 1; k < L; k++) { after *= w[k]; after_res *= 1 + w[k]; run *= w[k]; fg += run; }
        /* the closed forms of docs/models.md, "Wirings" */
        bad += fabs(g[PLAIN][i] - after * before * x0) > 1e-5;
        bad += fabs(g[RESIDUAL][i] - after_res * before_res * x0) > 1e-4 * after_res * before_res;
        bad += fabs(g[ACN][i] - (1 + fg) * before * x0) > 1e-5 * (1 + fg);
        bad += fabs(g[ACN_DETACHED][i] - before * x0) > 1e-6;
        printf("%5d %10.4g %10.4g %10.4g  |  %17.4g %14.4g ", i + 1, g[PLAIN][i], g[RESIDUAL][i], g[ACN][i],
               g[ACN_DETACHED][i], g[ACN][i] - g[ACN_DETACHED][i]);
        if (g[ACN][i] != g[ACN_DETACHED][i]) printf("%7.3g\n", g[ACN_DETACHED][i] / (g[ACN][i] - g[ACN_DETACHED][i]));
        else printf("%7s\n", "-");
    }
    printf("\n%s\n", bad ? "MISMATCH with the closed forms" : "all match the closed forms of docs/models.md");
    printf("DG is the gradient through block i's own long connection (the detached variant\n"
           "trains on it alone); it is not scaled by the blocks above i. In the plain chain\n"
           "every gradient is a product of all the other weights; in the residual chain, of\n"
           "all the (1 + w).\n");
    acn_ctx_free(ctx);
    return bad != 0;
}
