/* The demo: plain, residual and ACN deep MLPs of the same depth trained side
 * by side on the UCI handwritten digits embedded in the project, once for
 * each of several seeds (5 by default). For every run it finds the test
 * accuracy of the network's own head after every block (the probes of the
 * paper) and the blocks it needs: the smallest k whose head is within 1 point
 * of the network's full test accuracy. It prints one line per seed, the
 * median and range over the seeds, in how many seeds ACN needed fewer blocks
 * than the others, and the blocks' gradient norms at the first step and in
 * the last epoch; and writes SVG plots into demo-out/:
 *   probe_accuracy.svg         accuracy against the number of blocks kept (medians over the seeds)
 *   grad_norms_WIRING.svg      per-block gradient norm over training (medians over the seeds),
 *                              the three maps on one colour scale
 *
 * A network that ends under 50% test accuracy has not learned; its blocks needed are left out.
 * Results are the same bits for any ACN_THREADS. Built with -std=c99 (as make does) they match
 * make demo's; GNU modes (plain cc, c++) may contract a*b+c into FMA and give other, equally valid
 * numbers.
 *
 *   cc -std=c99 -O2 examples/demo.c -lm && ./a.out [--seeds N] [--seed S] [--epochs N] [--depth L]
 *                                                  [--width W] [--out DIR]
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

enum { BATCH = 64, MAXL = 32, MAXSEEDS = 64, MAXW = 512 };
/* A network whose full test accuracy is under this has not learned (chance is 10%): its blocks needed
 * mean nothing (a head at chance after 0 blocks is "within 1 point" of one at chance after L). */
#define LEARNED_ACC 50.0f
static const int wirings[3] = {ACN_PLAIN, ACN_RESIDUAL, ACN_ACN};

typedef struct run {
    float probe_acc[MAXL + 1];          /* test accuracy after k blocks        */
    float *grad_norm;                   /* (L, epochs) mean per epoch          */
    float grad_init[MAXL];              /* each block's norm at the first step */
    float final_loss;
    int need;                           /* blocks needed: see blocks_needed    */
    int learned;                        /* full accuracy >= LEARNED_ACC        */
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
        for (k = 0; k <= L && !acn_status_of(ctx); k++) {
            int pred[BATCH];
            if (acn_argmax(ctx, probes[k], pred)) break;
            for (c = 0; c < b; c++) correct[k] += pred[c] == y[i + c];
        }
    }
    acn_set_no_grad(ctx, 0);
    for (k = 0; k <= L; k++) acc[k] = 100.0f * correct[k] / n;
}

/* The smallest k whose probe accuracy is within 1 point of the full network's (k = L). */
static int blocks_needed(const float *acc, int L)
{
    int k;
    for (k = 0; k <= L; k++)
        if (acc[k] >= acc[L] - 1.0f) return k;
    return L;
}

static int train(int wiring, int L, int width, int epochs, uint64_t seed, const char *what, const float *xtr,
                 const int *ytr, int ntr, const float *xte, const int *yte, int nte, run *out)
{
    acn_ctx *ctx;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_mlp m;
    acn_mlp_config mc = acn_mlp_defaults();
    acn_adamw opt;
    acn_sampler smp;
    acn_schedule sched;
    int idx[BATCH], e, i, b, s[2], steps_per_epoch = (ntr + BATCH - 1) / BATCH, step = 0;
    int tty = isatty(fileno(stdout));
    float xb[BATCH * 64];
    int yb[BATCH];
    cfg.seed = seed;
    cfg.arena_bytes = (size_t)(64 << 20) * (width > 128 ? (width + 127) / 128 : 1);
    {
        char why[256];
        if (acn_ctx_new_ex(&ctx, &cfg, why, sizeof why)) { fprintf(stderr, "error: %s\n", why); return 1; }
    }
    mc.depth = L;
    mc.width = width;
    mc.wiring = wiring;
    if (acn_mlp_build(ctx, &m, &mc) || acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f) ||
        acn_sampler_init(ctx, &smp, ntr, BATCH, seed, 0)) {
        fprintf(stderr, "demo: %s\n", acn_error(ctx));
        acn_ctx_free(ctx);
        return 1;
    }
    sched = acn_schedule_warmup_cosine(2e-3f, steps_per_epoch, (int64_t)epochs * steps_per_epoch, 1e-5f);
    out->grad_norm = (float *)calloc((size_t)L * epochs, sizeof(float));
    if (!out->grad_norm) {
        fprintf(stderr, "demo: out of memory\n");
        acn_ctx_free(ctx);
        return 1;
    }
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
            for (i = 0; i < L; i++) { /* the Frobenius norm of each block's weight gradient, before clipping */
                float norm = (float)acn_grad_norm(ctx, m.blocks[i].fc.weight);
                out->grad_norm[(size_t)i * epochs + e] += norm;
                if (step == 0) out->grad_init[i] = norm;
            }
            acn_clip_grad_norm(ctx, 1.0f, NULL);
            acn_adamw_step(ctx, &opt, acn_lr_at(&sched, step++));
            loss_sum += acn_item(ctx, loss);
            nb++;
        }
        if (acn_status_of(ctx)) break;
        for (i = 0; i < L; i++) out->grad_norm[(size_t)i * epochs + e] /= (float)(nb ? nb : 1);
        out->final_loss = (float)(loss_sum / (nb ? nb : 1));
        if (tty) {
            printf("\r  %s  %-9s epoch %3d/%d  training loss %.4f ", what, acn_wiring_name(wiring), e + 1, epochs,
                   out->final_loss);
            fflush(stdout);
        }
    }
    if (tty) printf("\r%72s\r", "");
    if (acn_status_of(ctx)) {
        fprintf(stderr, "demo: %s\n", acn_error(ctx));
        acn_ctx_free(ctx);
        return 1;
    }
    probe(ctx, &m, xte, yte, nte, out->probe_acc);
    out->need = blocks_needed(out->probe_acc, L);
    out->learned = out->probe_acc[L] >= LEARNED_ACC;
    acn_sampler_free(&smp);
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
    return 0;
}

/* The median of v[0..n-1] (n >= 1; v is sorted in place): the mean of the middle two when n is even. */
static float median(float *v, int n)
{
    int i, j;
    for (i = 1; i < n; i++) {
        float x = v[i];
        for (j = i; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
        v[j] = x;
    }
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

static const char *wiring_label(int w) { return w == 2 ? "ACN" : acn_wiring_name(wirings[w]); }

/* How often wiring a needed fewer blocks than wiring b (what = 0: over the seeds where both learned),
 * or reached a higher full accuracy (what = 1: over all seeds), and whether that held in every seed. */
static void compare(run (*r)[3], int ns, int L, int a, int b, int what)
{
    int s, n = 0, better = 0, same = 0, worse = 0;
    for (s = 0; s < ns; s++) {
        float x = what ? -r[s][a].probe_acc[L] : (float)r[s][a].need, y = what ? -r[s][b].probe_acc[L] : (float)r[s][b].need;
        if (!what && !(r[s][a].learned && r[s][b].learned)) continue;
        n++;
        better += x < y;
        same += x == y;
        worse += x > y;
    }
    if (n == 0) {
        printf("  %s against %s: no seed where both learned, no blocks to compare.\n", wiring_label(a), wiring_label(b));
        return;
    }
    printf("  %s %s than %s in %d of %d seeds (%s in %d, %s in %d): ", wiring_label(a),
           what ? "reached a higher full accuracy" : "needed fewer blocks", wiring_label(b), better, n,
           what ? "the same" : "as many", same, what ? "lower" : "more", worse);
    if (better == n) printf("in every seed");
    else if (worse == n) printf("in none; %s in every seed", what ? "lower" : "more");
    else printf("not consistent over the seeds");
    if (n < ns) printf(" (%d seed%s left out: one of the two did not learn)", ns - n, ns - n > 1 ? "s" : "");
    printf(".\n");
}

int main(int argc, char **argv)
{
    int epochs = 30, L = 12, width = 128, nseeds = 5, i, k, w, s, e, ntr = 0, nte = 0;
    uint64_t seed = 1;
    const char *outdir = "demo-out";
    static float xtr[DIGITS_N * 64], xte[DIGITS_N * 64];
    static int ytr[DIGITS_N], yte[DIGITS_N];
    static run runs[MAXSEEDS][3];
    float v[MAXSEEDS], med_probe[3][MAXL + 1], med_init[3][MAXL], med_last[3][MAXL], *med_gn[3];
    double lo = 1e300, hi = -1e300;
    char path[512], what[32];
    clock_t t0 = clock();
    (void)svg_heat_map; /* svg.h's map on its own range: not used here, the demo's three maps share one scale */
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--seeds N (5, at most %d)] [--seed S (1)] [--epochs N (30)] [--depth L (12, at most %d)]\n"
                   "       [--width W (128, at most %d)] [--out DIR (demo-out)]\n"
                   "Trains plain, residual and ACN MLPs of depth L on the UCI digits (1,437 training and 360 test\n"
                   "images) with seeds S, S+1, ..., S+N-1; prints for each network the blocks it needs (the\n"
                   "smallest k whose head is within 1 point of its full test accuracy) and its accuracy, per seed\n"
                   "and as median and range over the seeds, the probe accuracies and the blocks' gradient norms\n"
                   "(medians over the seeds), and writes SVG plots into DIR.\n", argv[0], MAXSEEDS, MAXL, MAXW);
            return 0;
        } else if (!strcmp(argv[i], "--epochs") && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            epochs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--depth") && i + 1 < argc && atoi(argv[i + 1]) > 0 && atoi(argv[i + 1]) <= MAXL) {
            L = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--width") && i + 1 < argc && atoi(argv[i + 1]) > 0 && atoi(argv[i + 1]) <= MAXW) {
            width = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seeds") && i + 1 < argc && atoi(argv[i + 1]) > 0 &&
                   atoi(argv[i + 1]) <= MAXSEEDS) {
            nseeds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = (uint64_t)strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            outdir = argv[++i];
        } else {
            fprintf(stderr, "demo: bad argument '%s' (a flag without its value, or out of range); try --help\n", argv[i]);
            return 2;
        }
    }
    digits_split(xtr, ytr, &ntr, xte, yte, &nte); /* every fifth image for testing */
    printf("UCI digits: %d training and %d test images of 8 x 8; MLPs of %d blocks of width %d, %d epochs, "
           "seeds %llu to %llu\n", ntr, nte, L, width, epochs, (unsigned long long)seed,
           (unsigned long long)(seed + (uint64_t)nseeds - 1));
    printf("\nBlocks needed (the smallest k whose head is within 1 point of the network's full test accuracy)\n"
           "and the full test accuracy, per seed:\n\n      ");
    for (w = 0; w < 3; w++) printf(w < 2 ? "  %-14s" : "  %s", wiring_label(w));
    printf("\n  seed");
    for (w = 0; w < 3; w++) printf("  blocks    acc.");
    printf("\n");
    fflush(stdout);
    for (s = 0; s < nseeds; s++) {
        for (w = 0; w < 3; w++) {
            snprintf(what, sizeof what, "seed %llu", (unsigned long long)(seed + (uint64_t)s));
            if (train(wirings[w], L, width, epochs, seed + (uint64_t)s, what, xtr, ytr, ntr, xte, yte, nte, &runs[s][w]))
                return 1;
        }
        printf("%6llu", (unsigned long long)(seed + (uint64_t)s));
        for (w = 0; w < 3; w++) {
            if (runs[s][w].learned) printf("%8d", runs[s][w].need);
            else printf("%8s", "-");
            printf("  %5.1f%%", runs[s][w].probe_acc[L]);
        }
        printf("\n");
        fflush(stdout);
    }

    for (s = 0, k = 0; s < nseeds; s++) k += !runs[s][0].learned + !runs[s][1].learned + !runs[s][2].learned;
    if (k) printf("  -: the network did not learn (full test accuracy under %.0f%%); its blocks needed mean nothing\n",
                  LEARNED_ACC);

    /* medians over the seeds: probe accuracies, gradient norms (first step, last epoch, every epoch) */
    for (w = 0; w < 3; w++) {
        med_gn[w] = (float *)malloc((size_t)L * epochs * sizeof(float));
        if (!med_gn[w]) { fprintf(stderr, "demo: out of memory\n"); return 1; }
        for (k = 0; k <= L; k++) {
            for (s = 0; s < nseeds; s++) v[s] = runs[s][w].probe_acc[k];
            med_probe[w][k] = median(v, nseeds);
        }
        for (i = 0; i < L; i++) {
            for (s = 0; s < nseeds; s++) v[s] = runs[s][w].grad_init[i];
            med_init[w][i] = median(v, nseeds);
            for (e = 0; e < epochs; e++) {
                float x;
                for (s = 0; s < nseeds; s++) v[s] = runs[s][w].grad_norm[(size_t)i * epochs + e];
                x = median(v, nseeds);
                med_gn[w][(size_t)i * epochs + e] = x;
                if (x > 1e-30f && x < lo) lo = x;
                if (x > hi) hi = x;
            }
            med_last[w][i] = med_gn[w][(size_t)i * epochs + epochs - 1];
        }
    }

    printf("\nTest accuracy (%%) of each network's head after k blocks, median over %d seed%s:\n\n"
           "  k   plain  residual     ACN\n", nseeds, nseeds > 1 ? "s" : "");
    for (k = 0; k <= L; k++)
        printf("%3d  %6.1f  %8.1f  %6.1f\n", k, med_probe[0][k], med_probe[1][k], med_probe[2][k]);

    printf("\nGradient norm of each block's weight (Frobenius, before clipping), median over %d seed%s:\n"
           "at the first step (the initialisation) and averaged over the last epoch:\n\n", nseeds, nseeds > 1 ? "s" : "");
    printf("%7s   %-30s   %s\n%7s", "", "first step", "last epoch", "block");
    for (w = 0; w < 6; w++) printf(w < 5 ? "   %-8s" : "   %s", wiring_label(w % 3));
    printf("\n");
    for (i = 0; i < L; i++) {
        printf("%7d", i + 1);
        for (w = 0; w < 3; w++) printf("   %-8.2e", med_init[w][i]);
        for (w = 0; w < 3; w++) printf("   %-8.2e", med_last[w][i]);
        printf("\n");
    }

    printf("\nSummary over %d seed%s (%llu to %llu), median [min-max]:\n\n"
           "  wiring     blocks needed (of %d)   full test accuracy (%%)\n", nseeds, nseeds > 1 ? "s" : "",
           (unsigned long long)seed, (unsigned long long)(seed + (uint64_t)nseeds - 1), L);
    for (w = 0; w < 3; w++) {
        float amed, alo, ahi, nmed;
        int n = 0;
        char b1[80];
        for (s = 0; s < nseeds; s++)
            if (runs[s][w].learned) v[n++] = (float)runs[s][w].need;
        nmed = n ? median(v, n) : 0.0f; /* sorts v: v[0] and v[n - 1] are the range after it */
        if (n == 0) snprintf(b1, sizeof b1, "- (did not learn)");
        else if (n < nseeds) snprintf(b1, sizeof b1, "%g [%g-%g] (%d seed%s)", nmed, v[0], v[n - 1], n, n > 1 ? "s" : "");
        else snprintf(b1, sizeof b1, "%g [%g-%g]", nmed, v[0], v[n - 1]);
        for (s = 0; s < nseeds; s++) v[s] = runs[s][w].probe_acc[L];
        amed = median(v, nseeds); alo = v[0]; ahi = v[nseeds - 1];
        printf("  %-9s  %-22s  %.1f [%.1f-%.1f]\n", wiring_label(w), b1, amed, alo, ahi);
    }
    printf("\n");
    compare(runs, nseeds, L, 2, 1, 0);
    compare(runs, nseeds, L, 2, 1, 1);
    compare(runs, nseeds, L, 2, 0, 0);
    compare(runs, nseeds, L, 1, 0, 0);

    mkdir(outdir, 0755);
    {
        svg_series ser[3];
        char title[128];
        for (w = 0; w < 3; w++) {
            ser[w].label = acn_wiring_name(wirings[w]);
            ser[w].y = med_probe[w];
            ser[w].n = L + 1;
        }
        snprintf(path, sizeof path, "%s/probe_accuracy.svg", outdir);
        snprintf(title, sizeof title, "Test accuracy after k blocks (UCI digits, median of %d seed%s)", nseeds,
                 nseeds > 1 ? "s" : "");
        if (svg_line_chart(path, title, "blocks kept (k)", "test accuracy (%)", ser, 3, 0.0f, 100.0f)) {
            fprintf(stderr, "demo: cannot write %s\n", path);
            return 1;
        }
        printf("\nwrote %s\n", path);
    }
    if (hi < lo) lo = hi = 1.0; /* every norm zero: any scale */
    for (w = 0; w < 3; w++) {
        char title[128];
        snprintf(path, sizeof path, "%s/grad_norms_%s.svg", outdir, acn_wiring_name(wirings[w]));
        snprintf(title, sizeof title, "Gradient norm of each block's weight, %s (median of %d)", acn_wiring_name(wirings[w]),
                 nseeds);
        if (svg_heat_map_range(path, title, "epoch", "block", med_gn[w], L, epochs, lo, hi,
                               "gradient norm, log scale, the same in all three maps")) {
            fprintf(stderr, "demo: cannot write %s\n", path);
            return 1;
        }
        printf("wrote %s\n", path);
        free(med_gn[w]);
    }
    for (s = 0; s < nseeds; s++)
        for (w = 0; w < 3; w++) free(runs[s][w].grad_norm);
    printf("done in %.1f s of CPU time\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    return 0;
}
