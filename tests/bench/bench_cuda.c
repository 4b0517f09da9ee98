/* The acn.h side of `make bench-cuda` (tests/bench/bench_cuda.sh drives it):
 * training steps on a GPU context.
 *
 *   bench_cuda run MODEL DIR STEPS BATCH
 *
 * MODEL is "mixer" (the paper's CIFAR-10 Mixer) or "vit" (as bench_acn's).
 * The weights and the 64 images of DIR/MODEL.weights.safetensors and
 * DIR/MODEL.batch.safetensors (written by `bench_acn init`) are loaded; a
 * batch of BATCH repeats the 64 images. One step: forward, cross-entropy with
 * label smoothing 0.1, backward, clipping at 1.0, AdamW, through the public
 * functions, as train_mixer does. Three warm-up steps, then STEPS timed
 * steps, each waited for (acn_sync); prints
 * "first_loss L median_s S device NAME". Built by make bench-cuda with
 * -DACN_CUDA and acn_cuda.o. */
#define ACN_IMPLEMENTATION
#include "../../acn.h"
#include <stdio.h>
#include <stdlib.h>
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
static int die(acn_ctx *ctx, const char *why)
{
    fprintf(stderr, "bench_cuda: %s\n", ctx ? acn_error(ctx) : why);
    return 1;
}

int main(int argc, char **argv)
{
    acn_ctx *ctx = NULL;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_mixer mixer;
    acn_vit vit;
    acn_adamw opt;
    acn_st st;
    char path[512], why[512];
    int vitm, steps, B, s[4], i, step, *labels;
    float *x, ls[64], first = 0.0f;
    double *t;
    if (argc != 6 || strcmp(argv[1], "run")) {
        fprintf(stderr, "usage: bench_cuda run MODEL DIR STEPS BATCH\n");
        return 2;
    }
    vitm = !strcmp(argv[2], "vit");
    steps = atoi(argv[4]);
    B = atoi(argv[5]);
    if (steps < 1 || B < 1 || B % 64) return die(NULL, "STEPS must be >= 1 and BATCH a multiple of 64");
    cfg.device = ACN_DEVICE_CUDA;
    cfg.arena_bytes = (size_t)8 << 30;
    if (acn_ctx_new_ex(&ctx, &cfg, why, sizeof why)) return die(NULL, why);
    if (vitm) {
        acn_vit_config c = acn_vit_defaults();
        c.image_h = c.image_w = 32;
        c.patch = 4;
        c.width = 192;
        c.depth = 6;
        c.heads = 3;
        c.mlp = 768;
        c.classes = 10;
        if (acn_vit_build(ctx, &vit, &c)) return die(ctx, NULL);
    } else {
        acn_mixer_config c = acn_mixer_defaults();
        if (acn_mixer_build(ctx, &mixer, &c)) return die(ctx, NULL);
    }
    snprintf(path, sizeof path, "%s/%s.weights.safetensors", argv[3], argv[2]);
    if (acn_load_params(ctx, path)) return die(ctx, NULL);
    x = (float *)malloc((size_t)B * 3 * 32 * 32 * sizeof(float));
    labels = (int *)malloc((size_t)B * sizeof(int));
    t = (double *)malloc((size_t)steps * sizeof(double));
    if (!x || !labels || !t) return die(NULL, "out of memory");
    snprintf(path, sizeof path, "%s/%s.batch.safetensors", argv[3], argv[2]);
    if (acn_st_read(ctx, path, &st) || acn_st_get_f32(ctx, &st, "x", x, 64 * 3 * 32 * 32) ||
        acn_st_get_f32(ctx, &st, "labels", ls, 64))
        return die(ctx, NULL);
    acn_st_free(&st);
    for (i = 64; i < B; i += 64) memcpy(x + (size_t)i * 3 * 32 * 32, x, 64 * 3 * 32 * 32 * sizeof(float));
    for (i = 0; i < B; i++) labels[i] = (int)ls[i % 64];
    s[0] = B; s[1] = 3; s[2] = 32; s[3] = 32;
    if (acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f)) return die(ctx, NULL);
    for (step = -3; step < steps; step++) {
        double t0;
        acn_tensor *in, *logits, *loss;
        acn_sync(ctx);
        t0 = now();
        acn_reset(ctx);
        in = acn_input(ctx, 4, s, x);
        logits = vitm ? acn_vit_forward(ctx, &vit, in, -1, NULL) : acn_mixer_forward(ctx, &mixer, in, -1, NULL);
        loss = acn_cross_entropy(ctx, logits, labels, 0.1f, -1);
        acn_zero_grad(ctx);
        if (acn_backward(ctx, loss) || acn_clip_grad_norm(ctx, 1.0f, NULL) || acn_adamw_step(ctx, &opt, 1e-3f) ||
            acn_sync(ctx))
            return die(ctx, NULL);
        if (step >= 0) t[step] = now() - t0;
        if (step == -3) first = acn_item(ctx, loss);
    }
    qsort(t, (size_t)steps, sizeof t[0], cmp);
    printf("first_loss %.6f median_s %.6f device %s\n", (double)first, t[steps / 2], acn_device_name(ctx));
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
    free(x);
    free(labels);
    free(t);
    return 0;
}
