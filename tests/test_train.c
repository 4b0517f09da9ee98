/* End to end: small MLPs trained with AdamW drive learnable problems to
 * near-zero loss in a fixed number of steps: XOR (cross-entropy) and a
 * sine on [-pi, pi] (mean squared error), with the warmup-cosine schedule
 * and gradient clipping. */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"

/* A stack of Linear layers with tanh between them, named fc{i}.weight/bias
 * as an nn.Sequential of nn.Linear would be in PyTorch. */
static acn_tensor *mlp(acn_ctx *ctx, acn_tensor **p, int layers, acn_tensor *x)
{
    int i;
    for (i = 0; i < layers; i++) {
        x = acn_linear(ctx, x, p[2 * i], p[2 * i + 1]);
        if (i < layers - 1) x = acn_tanh(ctx, x);
    }
    return x;
}

static void make_mlp(acn_ctx *ctx, acn_tensor **p, int layers, const int *widths)
{
    int i;
    for (i = 0; i < layers; i++) {
        char name[32];
        int ws[2];
        ws[0] = widths[i + 1];
        ws[1] = widths[i];
        snprintf(name, sizeof name, "fc%d.weight", i);
        p[2 * i] = acn_param(ctx, name, 2, ws);
        snprintf(name, sizeof name, "fc%d.bias", i);
        p[2 * i + 1] = acn_param(ctx, name, 1, ws);
        acn_init_linear(ctx, p[2 * i], p[2 * i + 1]);
    }
}

static void xor_task(void)
{
    static const float X[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    static const int Y[4] = {0, 1, 1, 0};
    int widths[3] = {2, 16, 2}, xs[2] = {4, 2}, step, steps = 400;
    acn_ctx *ctx;
    acn_tensor *p[4], *loss = NULL;
    acn_adamw opt;
    acn_schedule sched = acn_schedule_warmup_cosine(0.05f, 20, steps, 1e-4f);
    float first = 0.0f, last = 0.0f;
    acn_ctx_config cfg = acn_ctx_defaults();
    cfg.seed = 3;
    acn_ctx_new(&ctx, &cfg);
    make_mlp(ctx, p, 2, widths);
    acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.0f);
    for (step = 0; step < steps; step++) {
        acn_reset(ctx);
        loss = acn_cross_entropy(ctx, mlp(ctx, p, 2, acn_input(ctx, 2, xs, X)), Y, 0.0f, -1);
        acn_zero_grad(ctx);
        acn_backward(ctx, loss);
        acn_clip_grad_norm(ctx, 1.0f, NULL);
        acn_adamw_step(ctx, &opt, acn_lr_at(&sched, step));
        if (!loss) break;
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
    }
    CHECK(acn_status_of(ctx) == ACN_OK, "xor: %s", acn_error(ctx));
    CHECK(first > 0.5f && last < 0.01f, "xor: loss %g -> %g in %d steps", first, last, steps);
    printf("xor: cross-entropy %.4f -> %.6f in %d AdamW steps\n", first, last, steps);
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
}

static void sine_task(void)
{
    enum { N = 64 };
    float X[N], Y[N];
    int widths[4] = {1, 32, 32, 1}, s1[2] = {N, 1}, i, step, steps = 1500;
    acn_ctx *ctx;
    acn_tensor *p[6], *loss = NULL;
    acn_adamw opt;
    acn_schedule sched = acn_schedule_warmup_cosine(1e-2f, 50, steps, 1e-5f);
    float first = 0.0f, last = 0.0f;
    for (i = 0; i < N; i++) {
        X[i] = -3.14159265f + 6.2831853f * (float)i / (N - 1);
        Y[i] = sinf(X[i]);
    }
    acn_ctx_new(&ctx, NULL);
    make_mlp(ctx, p, 3, widths);
    acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 1e-4f);
    for (step = 0; step < steps; step++) {
        acn_tensor *d;
        acn_reset(ctx);
        d = acn_sub(ctx, mlp(ctx, p, 3, acn_input(ctx, 2, s1, X)), acn_input(ctx, 2, s1, Y));
        loss = acn_mean(ctx, acn_mul(ctx, d, d), ACN_AXIS_ALL);
        acn_zero_grad(ctx);
        acn_backward(ctx, loss);
        acn_clip_grad_norm(ctx, 1.0f, NULL);
        acn_adamw_step(ctx, &opt, acn_lr_at(&sched, step));
        if (!loss) break;
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
    }
    CHECK(acn_status_of(ctx) == ACN_OK, "sine: %s", acn_error(ctx));
    CHECK(first > 0.1f && last < 1e-3f, "sine: mse %g -> %g in %d steps", first, last, steps);
    printf("sine: mean squared error %.4f -> %.6f in %d AdamW steps\n", first, last, steps);
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
}

int main(void)
{
    xor_task();
    sine_task();
    return t_done("train");
}
