/* What the acn.h sides of the benchmarks share (tests/bench/bench_acn.c for
 * the CPU, bench_cuda.c for a GPU): a monotonic clock, a comparison for
 * qsort, the two benchmarked models, and one training step. Include it
 * after acn.h's implementation. */
#ifndef ACN_BENCH_H
#define ACN_BENCH_H
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
/* MODEL "mixer": the paper's CIFAR-10 Mixer; "vit": width 192, 6 blocks,
 * 3 heads, MLP 768, 4 x 4 patches on 32 x 32 images. */
typedef struct model { int vit; acn_mixer mixer; acn_vit v; } model;

static acn_status build(acn_ctx *ctx, model *m, const char *name)
{
    if (!strcmp(name, "vit")) {
        acn_vit_config c = acn_vit_defaults();
        c.image_h = c.image_w = 32;
        c.patch = 4;
        c.width = 192;
        c.depth = 6;
        c.heads = 3;
        c.mlp = 768;
        c.classes = 10;
        m->vit = 1;
        return acn_vit_build(ctx, &m->v, &c);
    }
    {
        acn_mixer_config c = acn_mixer_defaults();
        m->vit = 0;
        return acn_mixer_build(ctx, &m->mixer, &c);
    }
}

/* One step, as train_mixer takes it: forward, cross-entropy with label
 * smoothing 0.1, backward, clipping at 1.0, AdamW at 1e-3. The loss, or
 * NULL with the context's error set. */
static acn_tensor *bench_step(acn_ctx *ctx, const model *m, acn_tensor *x, const int *labels, acn_adamw *opt)
{
    acn_tensor *logits = m->vit ? acn_vit_forward(ctx, &m->v, x, -1, NULL) : acn_mixer_forward(ctx, &m->mixer, x, -1, NULL);
    acn_tensor *loss = acn_cross_entropy(ctx, logits, labels, 0.1f, -1);
    acn_zero_grad(ctx);
    if (acn_backward(ctx, loss) || acn_clip_grad_norm(ctx, 1.0f, NULL) || acn_adamw_step(ctx, opt, 1e-3f)) return NULL;
    return loss;
}
#endif
