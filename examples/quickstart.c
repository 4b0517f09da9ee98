#define ACN_IMPLEMENTATION
#include "../acn.h"  /* in your project: "acn.h" */
#include <stdio.h>

int main(void) {
    static const float X[8] = {0, 0, 0, 1, 1, 0, 1, 1};  /* XOR: 4 rows of 2 */
    static const int Y[4] = {0, 1, 1, 0};
    int w1[2] = {16, 2}, w2[2] = {2, 16}, xs[2] = {4, 2}, step, rc;
    acn_ctx *ctx;
    acn_adamw opt;
    acn_tensor *W1, *b1, *W2, *b2, *loss = NULL;
    char why[256];
    if (acn_ctx_new_ex(&ctx, NULL, why, sizeof why)) { fprintf(stderr, "error: %s\n", why); return 1; }
    W1 = acn_param(ctx, "fc1.weight", 2, w1);  b1 = acn_param(ctx, "fc1.bias", 1, w1);
    W2 = acn_param(ctx, "fc2.weight", 2, w2);  b2 = acn_param(ctx, "fc2.bias", 1, w2);
    acn_init_linear(ctx, W1, b1);  acn_init_linear(ctx, W2, b2);  /* PyTorch's default */
    acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.0f);
    for (step = 0; step < 300; step++) {
        acn_reset(ctx);                                   /* a fresh arena each step */
        acn_tensor *h = acn_tanh(ctx, acn_linear(ctx, acn_input(ctx, 2, xs, X), W1, b1));
        loss = acn_cross_entropy(ctx, acn_linear(ctx, h, W2, b2), Y, 0.0f, -1);
        acn_zero_grad(ctx);
        if (acn_backward(ctx, loss) || acn_adamw_step(ctx, &opt, 0.05f)) break;
        if (step % 100 == 0) printf("step %3d  loss %.4f\n", step, acn_item(ctx, loss));
    }
    rc = acn_status_of(ctx);
    if (rc) fprintf(stderr, "error: %s\n", acn_error(ctx));
    else printf("final loss %.5f\n", acn_item(ctx, loss));
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
    return rc;
}
