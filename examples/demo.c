/* The demo: plain, residual and ACN deep MLPs of the same depth trained side
 * by side on the UCI handwritten digits embedded in the project. It prints
 * the test accuracy of each network's own head after every block (the
 * probes of the paper) and writes SVG plots into demo-out/:
 *   probe_accuracy.svg         accuracy against the number of blocks kept
 *   grad_norms_WIRING.svg      per-block gradient norm over training
 *
 *   cc -O2 examples/demo.c -lm && ./a.out [--epochs N] [--depth L] [--out DIR]
 */
#define ACN_IMPLEMENTATION
#include "../acn.h"  /* in your project: "acn.h" */
#include "digits.h"
#include "svg.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>  /* isatty: the progress line rewrites itself only on a terminal */

enum { BATCH = 64, MAXL = 32 };
static const int wirings[3] = {ACN_PLAIN, ACN_RESIDUAL, ACN_ACN};

typedef struct run {
    float probe_acc[MAXL + 1];          /* test accuracy after k blocks       */
    float *grad_norm;                   /* (L, epochs) mean per epoch         */
    float final_loss;
} run;

/* Test accuracy of the head after each of 0..L blocks, in one pass per batch. */
static void probe(acn_ctx *ctx, const acn_mlp *m, const float *x, const int *y, int n, float *acc)
{
    int L = m->cfg.depth, i, k, c, correct[MAXL + 1], s[2];
    acn_tensor *probes[MAXL + 1];
    memset(correct, 0, sizeof correct);
    acn_set_no_grad(ctx, 1);
    for (i = 0; i < n; i += BATCH) {
        int b = n - i < BATCH ? n - i : BATCH;
        acn_reset(ctx);
        s[0] = b; s[1] = 64;
        acn_mlp_forward_ex(ctx, m, acn_input(ctx, 2, s, x + (size_t)i * 64), -1, probes, MAXL + 1);
        for (k = 0; k <= L && !acn_status_of(ctx); k++)
            for (c = 0; c < b; c++) {
                const float *l = probes[k]->data + c * 10;
                int j, best = 0;
                for (j = 1; j < 10; j++) if (l[j] > l[best]) best = j;
                correct[k] += best == y[i + c];
            }
    }
    acn_set_no_grad(ctx, 0);
    for (k = 0; k <= L; k++) acc[k] = 100.0f * correct[k] / n;
}

static int train(int wiring, int L, int epochs, uint64_t seed, const float *xtr, const int *ytr, int ntr,
                 const float *xte, const int *yte, int nte, run *out)
{
    acn_ctx *ctx;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_mlp m;
    acn_mlp_config mc = acn_mlp_defaults();
    acn_adamw opt;
    acn_sampler smp;
    acn_schedule sched;
    int idx[BATCH], e, i, b, s[2], steps_per_epoch = (ntr + BATCH - 1) / BATCH, step = 0;
    float xb[BATCH * 64];
    int yb[BATCH];
    cfg.seed = seed;
    cfg.arena_bytes = 64 << 20;
    {
        char why[256];
        if (acn_ctx_new_ex(&ctx, &cfg, why, sizeof why)) { fprintf(stderr, "error: %s\n", why); return 1; }
    }
    mc.depth = L;
    mc.wiring = wiring;
    if (acn_mlp_build(ctx, &m, &mc) || acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f) ||
        acn_sampler_init(ctx, &smp, ntr, BATCH, seed, 0)) {
        fprintf(stderr, "demo: %s\n", acn_error(ctx));
        acn_ctx_free(ctx);
        return 1;
    }
    sched = acn_schedule_warmup_cosine(2e-3f, steps_per_epoch, (int64_t)epochs * steps_per_epoch, 1e-5f);
    out->grad_norm = (float *)calloc((size_t)L * epochs, sizeof(float));
    for (e = 0; e < epochs; e++) {
        double loss_sum = 0.0;
        int nb = 0;
        while ((b = acn_sampler_next(&smp, idx)) > 0) {
            acn_tensor *loss;
            for (i = 0; i < b; i++) {
                memcpy(xb + i * 64, xtr + (size_t)idx[i] * 64, 64 * sizeof(float));
                yb[i] = ytr[idx[i]];
            }
            acn_reset(ctx);
            s[0] = b; s[1] = 64;
            loss = acn_cross_entropy(ctx, acn_mlp_forward(ctx, &m, acn_input(ctx, 2, s, xb), -1, NULL), yb, 0.0f, -1);
            acn_zero_grad(ctx);
            if (acn_backward(ctx, loss)) break;
            for (i = 0; i < L; i++) { /* the Frobenius norm of each block's weight gradient */
                const acn_tensor *g = m.blocks[i].fc.weight;
                double s2 = 0.0;
                size_t j;
                for (j = 0; j < g->numel; j++) s2 += (double)g->grad[j] * g->grad[j];
                out->grad_norm[(size_t)i * epochs + e] += (float)sqrt(s2);
            }
            acn_clip_grad_norm(ctx, 1.0f, NULL);
            acn_adamw_step(ctx, &opt, acn_lr_at(&sched, step++));
            loss_sum += loss->data[0];
            nb++;
        }
        if (acn_status_of(ctx)) break;
        for (i = 0; i < L; i++) out->grad_norm[(size_t)i * epochs + e] /= (float)(nb ? nb : 1);
        out->final_loss = (float)(loss_sum / (nb ? nb : 1));
        if (isatty(fileno(stdout)) || e + 1 == epochs) {
            printf("\r  %-9s epoch %3d/%d  training loss %.4f", acn_wiring_name(wiring), e + 1, epochs, out->final_loss);
            fflush(stdout);
        }
    }
    printf("\n");
    if (acn_status_of(ctx)) {
        fprintf(stderr, "demo: %s\n", acn_error(ctx));
        acn_ctx_free(ctx);
        return 1;
    }
    probe(ctx, &m, xte, yte, nte, out->probe_acc);
    acn_sampler_free(&smp);
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    int epochs = 30, L = 12, i, k, w, ntr = 0, nte = 0;
    uint64_t seed = 1;
    const char *outdir = "demo-out";
    static float xtr[DIGITS_N * 64], xte[DIGITS_N * 64];
    static int ytr[DIGITS_N], yte[DIGITS_N];
    run runs[3];
    char path[512];
    clock_t t0 = clock();
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--epochs N (30)] [--depth L (12, at most %d)] [--seed S (1)] [--out DIR (demo-out)]\n"
                   "Trains plain, residual and ACN MLPs of depth L on the UCI digits (1,437 training and 360 test\n"
                   "images), prints the test accuracy of each network's head after every block, and writes SVG\n"
                   "plots into DIR.\n", argv[0], MAXL);
            return 0;
        } else if (!strcmp(argv[i], "--epochs") && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            epochs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--depth") && i + 1 < argc && atoi(argv[i + 1]) > 0 && atoi(argv[i + 1]) <= MAXL) {
            L = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = (uint64_t)strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            outdir = argv[++i];
        } else {
            fprintf(stderr, "demo: bad argument '%s' (a flag without its value, or out of range); try --help\n", argv[i]);
            return 2;
        }
    }
    /* every fifth image for testing, the rest for training; pixels 0..16 -> 0..1 */
    for (i = 0; i < DIGITS_N; i++) {
        float *x = i % 5 == 0 ? xte + (size_t)nte * 64 : xtr + (size_t)ntr * 64;
        for (k = 0; k < 64; k++) x[k] = digits_data[i][k] / 16.0f;
        if (i % 5 == 0) yte[nte++] = digits_data[i][64];
        else ytr[ntr++] = digits_data[i][64];
    }
    printf("UCI digits: %d training and %d test images of 8 x 8; MLPs of %d blocks of width 128, %d epochs\n", ntr, nte,
           L, epochs);
    for (w = 0; w < 3; w++)
        if (train(wirings[w], L, epochs, seed, xtr, ytr, ntr, xte, yte, nte, &runs[w])) return 1;

    printf("\nTest accuracy (%%) of each network's head after k blocks:\n\n  k   plain  residual     ACN\n");
    for (k = 0; k <= L; k++)
        printf("%3d  %6.1f  %8.1f  %6.1f\n", k, runs[0].probe_acc[k], runs[1].probe_acc[k], runs[2].probe_acc[k]);
    for (w = 0; w < 3; w++) {
        int need = L;
        for (k = 0; k <= L; k++)
            if (runs[w].probe_acc[k] >= runs[w].probe_acc[L] - 1.0f) { need = k; break; }
        printf("%s: within 1 point of its full accuracy (%.1f%%) after %d of %d blocks\n", acn_wiring_name(wirings[w]),
               runs[w].probe_acc[L], need, L);
    }

    mkdir(outdir, 0755);
    {
        svg_series s[3];
        for (w = 0; w < 3; w++) {
            s[w].label = acn_wiring_name(wirings[w]);
            s[w].y = runs[w].probe_acc;
            s[w].n = L + 1;
        }
        snprintf(path, sizeof path, "%s/probe_accuracy.svg", outdir);
        if (svg_line_chart(path, "Test accuracy of the head after k blocks (UCI digits)", "blocks kept (k)",
                           "test accuracy (%)", s, 3, 0.0f, 100.0f)) {
            fprintf(stderr, "demo: cannot write %s\n", path);
            return 1;
        }
        printf("\nwrote %s\n", path);
    }
    for (w = 0; w < 3; w++) {
        char title[128];
        snprintf(path, sizeof path, "%s/grad_norms_%s.svg", outdir, acn_wiring_name(wirings[w]));
        snprintf(title, sizeof title, "Gradient norm of each block's weight, %s (log scale)", acn_wiring_name(wirings[w]));
        if (svg_heat_map(path, title, "epoch", "block", runs[w].grad_norm, L, epochs)) {
            fprintf(stderr, "demo: cannot write %s\n", path);
            return 1;
        }
        printf("wrote %s\n", path);
        free(runs[w].grad_norm);
    }
    printf("done in %.1f s of CPU time\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    return 0;
}
