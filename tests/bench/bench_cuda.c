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
#include "bench.h"

static int die(acn_ctx *ctx, const char *why)
{
    fprintf(stderr, "bench_cuda: %s\n", ctx ? acn_error(ctx) : why);
    return 1;
}

int main(int argc, char **argv)
{
    acn_ctx *ctx = NULL;
    acn_ctx_config cfg = acn_ctx_defaults();
    static model m;
    acn_adamw opt;
    acn_st st;
    char path[512], why[512];
    int steps, B, s[4], i, step, *labels;
    float *x, ls[64], first = 0.0f;
    double *t;
    if (argc != 6 || strcmp(argv[1], "run")) {
        fprintf(stderr, "usage: bench_cuda run MODEL DIR STEPS BATCH\n");
        return 2;
    }
    steps = atoi(argv[4]);
    B = atoi(argv[5]);
    if (steps < 1 || B < 1 || B % 64) return die(NULL, "STEPS must be >= 1 and BATCH a multiple of 64");
    cfg.device = ACN_DEVICE_CUDA;
    cfg.arena_bytes = (size_t)8 << 30;
    if (acn_ctx_new_ex(&ctx, &cfg, why, sizeof why)) return die(NULL, why);
    if (build(ctx, &m, argv[2])) return die(ctx, NULL);
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
        acn_tensor *loss;
        acn_sync(ctx);
        t0 = now();
        acn_reset(ctx);
        if (!(loss = bench_step(ctx, &m, acn_input(ctx, 4, s, x), labels, &opt)) || acn_sync(ctx)) return die(ctx, NULL);
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
