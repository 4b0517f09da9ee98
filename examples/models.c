/* Build each of acn.h's models, print its parameter count and, on a small
 * random batch, what its head says after every block (the probes of the
 * paper, all from one forward pass).
 *
 *   cc -O2 examples/models.c -lm && ./a.out [--model NAME] [--wiring NAME]
 *
 * The weights are untrained, so the table shows the mechanics, not
 * accuracy: for each k, the mean |logit| of the head applied after k
 * blocks, its predicted class for each input, and how many of those agree
 * with the full model's. */
#define ACN_IMPLEMENTATION
#include "../acn.h"  /* in your project: "acn.h" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BATCH = 4 };

static int argmax(const float *v, int n)
{
    int i, b = 0;
    for (i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static void table(acn_ctx *ctx, acn_tensor **probes, int L)
{
    int k, b, C = probes[0]->shape[probes[0]->ndim - 1], final[BATCH];
    for (b = 0; b < BATCH; b++) final[b] = argmax(acn_data(ctx, probes[L]) + b * C, C);
    printf("      k  mean|logit|  predicted class per input  agrees with k=%d\n", L);
    for (k = 0; k <= L; k++) {
        const float *v = acn_data(ctx, probes[k]);
        double s = 0.0;
        int same = 0;
        size_t i;
        for (i = 0; i < probes[k]->numel; i++) s += fabs(v[i]);
        printf("  %5d  %11.4f  ", k, s / (double)probes[k]->numel);
        for (b = 0; b < BATCH; b++) {
            int c = argmax(v + b * C, C);
            same += c == final[b];
            printf("%4d", c);
        }
        printf("%*s%d/%d\n", 27 - 4 * BATCH, "", same, BATCH);
    }
}

static void random_images(acn_ctx *ctx, acn_tensor *x) { acn_init_normal(ctx, x, 0.0f, 1.0f); }

static int run(const char *which, int wiring)
{
    acn_ctx *ctx;
    acn_tensor *probes[ACN_MAX_BLOCKS + 1], *x;
    int L = 0, s[4];
    clock_t t0, t1 = 0;
    static acn_mlp mlp;       /* the model structs hold 64 blocks: keep them off the stack */
    static acn_mixer mixer;
    static acn_vit vit;
    static acn_bert bert;
    acn_ctx_config cfg = acn_ctx_defaults();
    cfg.arena_bytes = (size_t)1 << 30; /* ViT-S with 13 probes needs ~0.5 GB; pages are touched as used */
    {
        char why[256];
        if (acn_ctx_new_ex(&ctx, &cfg, why, sizeof why)) { fprintf(stderr, "error: %s\n", why); return 1; }
    }
    t0 = clock();
    if (!strcmp(which, "mlp")) {
        acn_mlp_config c = acn_mlp_defaults();
        c.wiring = wiring;
        acn_mlp_build(ctx, &mlp, &c);
        printf("Deep MLP (%d -> %d blocks of %d -> %d)", c.in, c.depth, c.width, c.classes);
        s[0] = BATCH; s[1] = c.in;
        x = acn_new(ctx, 2, s, 0);
        random_images(ctx, x);
        L = c.depth;
        printf(", %s wiring: %zu parameters\n", acn_wiring_name(wiring), acn_param_numel(ctx));
        t1 = clock();
        acn_mlp_forward_ex(ctx, &mlp, x, -1, probes, ACN_MAX_BLOCKS + 1);
    } else if (!strcmp(which, "mixer") || !strcmp(which, "mixer-textbook")) {
        acn_mixer_config c = acn_mixer_defaults();
        c.wiring = wiring;
        c.textbook = !strcmp(which, "mixer-textbook");
        acn_mixer_build(ctx, &mixer, &c);
        printf("MLP-Mixer, %s form, CIFAR-10 (%d blocks, width %d)", c.textbook ? "textbook" : "the authors'", c.depth, c.width);
        s[0] = BATCH; s[1] = c.channels; s[2] = c.image_h; s[3] = c.image_w;
        x = acn_new(ctx, 4, s, 0);
        random_images(ctx, x);
        L = c.depth;
        printf(", %s wiring: %zu parameters\n", acn_wiring_name(wiring), acn_param_numel(ctx));
        t1 = clock();
        acn_mixer_forward_ex(ctx, &mixer, x, -1, probes, ACN_MAX_BLOCKS + 1);
    } else if (!strcmp(which, "vit")) {
        acn_vit_config c = acn_vit_defaults();  /* ViT-S/16 on 224 x 224 */
        c.wiring = wiring;
        acn_vit_build(ctx, &vit, &c);
        printf("ViT-S/16 (%d blocks, width %d, %d heads)", c.depth, c.width, c.heads);
        s[0] = BATCH; s[1] = c.channels; s[2] = c.image_h; s[3] = c.image_w;
        x = acn_new(ctx, 4, s, 0);
        random_images(ctx, x);
        L = c.depth;
        printf(", %s wiring: %zu parameters\n", acn_wiring_name(wiring), acn_param_numel(ctx));
        /* the head starts at zero (the authors' init): give it values to show */
        acn_init_normal(ctx, vit.head.weight, 0.0f, 0.02f);
        t1 = clock();
        acn_vit_forward_ex(ctx, &vit, x, -1, probes, ACN_MAX_BLOCKS + 1);
    } else if (!strcmp(which, "bert")) {
        acn_bert_config c = acn_bert_defaults();  /* BERT-base sizes */
        int tokens[BATCH * 16], mask[BATCH * 16], i;
        c.wiring = wiring;
        acn_bert_build(ctx, &bert, &c);
        printf("BERT-base encoder (%d blocks, width %d), classification head", c.depth, c.width);
        for (i = 0; i < BATCH * 16; i++) {
            tokens[i] = (int)(acn_rng_u64(acn_ctx_rng(ctx)) % (unsigned)c.vocab);
            mask[i] = i % 16 < 12 + i / 16; /* some padding at the end of each row */
        }
        L = c.depth;
        printf(", %s wiring: %zu parameters\n", acn_wiring_name(wiring), acn_param_numel(ctx));
        acn_set_train(ctx, 0); /* no dropout */
        t1 = clock();
        acn_bert_forward_ex(ctx, &bert, tokens, mask, BATCH, 16, ACN_BERT_CLS, -1, probes, ACN_MAX_BLOCKS + 1);
    } else {
        fprintf(stderr, "unknown model '%s' (mlp, mixer, mixer-textbook, vit, bert or all)\n", which);
        acn_ctx_free(ctx);
        return 2;
    }
    if (acn_status_of(ctx)) {
        fprintf(stderr, "error: %s\n", acn_error(ctx));
        acn_ctx_free(ctx);
        return 1;
    }
    table(ctx, probes, L);
    {
        acn_stats st;
        acn_stats_get(ctx, &st);
        printf("  built and initialised in %.2f s; one forward with %d probes on %d inputs in %.2f s, "
               "arena peak %.1f MB\n\n", (double)(t1 - t0) / CLOCKS_PER_SEC, L + 1, BATCH,
               (double)(clock() - t1) / CLOCKS_PER_SEC, st.arena_peak / 1e6);
    }
    acn_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *all[] = {"mlp", "mixer", "mixer-textbook", "vit", "bert"};
    const char *model = "all";
    int wiring = ACN_ACN, i, rc = 0;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--model mlp|mixer|mixer-textbook|vit|bert|all] [--wiring plain|residual|acn|acn-detach]\n"
                   "Builds each model at its default (paper) size, prints its parameter count and the\n"
                   "head's output after every block on %d random inputs. Default: all models, ACN wiring.\n",
                   argv[0], BATCH);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--wiring") && i + 1 < argc) {
            if ((wiring = acn_wiring_parse(argv[++i])) < 0) {
                fprintf(stderr, "unknown wiring '%s' (plain, residual, acn or acn-detach)\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "unknown argument '%s'; try --help\n", argv[i]);
            return 2;
        }
    }
    if (strcmp(model, "all")) return run(model, wiring);
    for (i = 0; i < 5 && !rc; i++) rc = run(all[i], wiring);
    return rc;
}
