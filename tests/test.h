/* A small test harness shared by the test programs: CHECK counts, and the
 * program ends by printing "<suite>: N passed, N failed". */
#ifndef ACN_TEST_H
#define ACN_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            t_pass++;                                                      \
        } else {                                                           \
            t_fail++;                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

/* ||a - b|| / ||b|| over n floats (0 when both are zero). */
static inline double t_relerr(const float *a, const float *b, size_t n)
{
    double d = 0.0, s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    if (s == 0.0) return sqrt(d);
    return sqrt(d / s);
}

#ifdef ACN_H
/* The small Mixer of the PyTorch references (tests/reference/models.py,
 * MIXER): test_models.c checks it against them and interop.c trains it for
 * interop_check.py, so the two must stay the same. */
static inline acn_mixer_config t_small_mixer(void)
{
    acn_mixer_config c = acn_mixer_defaults();
    c.image_h = c.image_w = 8;
    c.width = 16;
    c.depth = 3;
    c.token_hidden = 8;
    c.channel_hidden = 32;
    c.classes = 5;
    return c;
}
/* The small ViT and BERT of the same references (VIT, BERT); the BERT
 * without dropout. */
static inline acn_vit_config t_small_vit(void)
{
    acn_vit_config c = acn_vit_defaults();
    c.image_h = c.image_w = 8;
    c.patch = 4;
    c.width = 16;
    c.depth = 3;
    c.heads = 2;
    c.mlp = 32;
    c.classes = 5;
    return c;
}
static inline acn_bert_config t_small_bert(void)
{
    acn_bert_config c = acn_bert_defaults();
    c.vocab = 30;
    c.max_pos = 12;
    c.width = 16;
    c.depth = 3;
    c.heads = 2;
    c.mlp = 32;
    c.classes = 3;
    c.dropout = 0.0f;
    return c;
}
#endif

static inline int t_done(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, t_pass, t_fail);
    return t_fail != 0;
}
#endif
