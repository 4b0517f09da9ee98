/* Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/
 * (committed; run from the repository root to remake them):
 *   cc -std=c99 tests/fuzz/make_corpus.c -o build/make_corpus -lm && build/make_corpus
 * Valid inputs of each loader, and the malformed ones the tests in
 * tests/test_data.c refuse. */
#define ACN_IMPLEMENTATION
#include "../../acn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

static void put(const char *target, const char *name, const unsigned char *a, size_t na, const unsigned char *b,
                size_t nb)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof path, "tests/fuzz/corpus/%s/%s", target, name);
    if (!(f = fopen(path, "wb"))) { fprintf(stderr, "cannot write %s\n", path); failed = 1; return; }
    if (na) fwrite(a, 1, na, f);
    if (nb) fwrite(b, 1, nb, f);
    fclose(f);
}
/* a mode byte, then text */
static void put_mode(const char *target, const char *name, unsigned char mode, const char *text)
{
    put(target, name, &mode, 1, (const unsigned char *)text, strlen(text));
}
/* two files as one input: a 4-byte little-endian length, the first, the second */
static void put_pair(const char *target, const char *name, const unsigned char *a, size_t na, const unsigned char *b,
                     size_t nb)
{
    unsigned char *buf = (unsigned char *)malloc(4 + na + nb);
    int k;
    for (k = 0; k < 4; k++) buf[k] = (unsigned char)(na >> (8 * k));
    memcpy(buf + 4, a, na);
    memcpy(buf + 4 + na, b, nb);
    put(target, name, buf, 4 + na + nb, NULL, 0);
    free(buf);
}
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long len;
    if (!f) { failed = 1; *n = 0; return NULL; }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}
static void be32(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The fuzz target's model (fuzz_checkpoint.c): a.weight (2, 3), a.bias (3),
 * AdamW, a sampler of 10 in batches of 4 with seed 5. */
static void checkpoints(void)
{
    acn_ctx *ctx;
    acn_adamw opt;
    acn_sampler smp;
    int s1[2] = {2, 3}, s2[1] = {3}, idx[4];
    size_t nw, ns, nw2, ns2;
    unsigned char *w, *s, *w2, *s2b;
    const char *kv[2] = {"run", "seed"};
    acn_ctx_new(&ctx, NULL);
    acn_init_linear(ctx, acn_param(ctx, "a.weight", 2, s1), acn_param(ctx, "a.bias", 1, s2));
    acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f);
    acn_sampler_init(ctx, &smp, 10, 4, 5, 0);
    acn_sampler_next(&smp, idx);
    opt.step = 13;
    opt.m[0] = 0.5f;
    acn_save_checkpoint(ctx, "/tmp/acn_corpus_w", "/tmp/acn_corpus_s", &opt, &smp, 13, kv, 1);
    w = slurp("/tmp/acn_corpus_w", &nw);
    s = slurp("/tmp/acn_corpus_s", &ns);
    put_pair("checkpoint", "good_pair", w, nw, s, ns);
    put_pair("checkpoint", "state_as_weights", s, ns, w, nw);
    put_pair("checkpoint", "weights_only", w, nw, NULL, 0);
    /* the state without the optimizer and the sampler: refused (opt and smp are given) */
    acn_save_checkpoint(ctx, "/tmp/acn_corpus_w", "/tmp/acn_corpus_s", NULL, NULL, 13, NULL, 0);
    w2 = slurp("/tmp/acn_corpus_w", &nw2);
    s2b = slurp("/tmp/acn_corpus_s", &ns2);
    put_pair("checkpoint", "state_without_opt", w2, nw2, s2b, ns2);
    free(w2); free(s2b);
    /* a pair whose steps differ, and a cursor out of range */
    acn_save_checkpoint(ctx, "/tmp/acn_corpus_w", "/tmp/acn_corpus_s", &opt, &smp, 14, NULL, 0);
    s2b = slurp("/tmp/acn_corpus_s", &ns2);
    put_pair("checkpoint", "steps_differ", w, nw, s2b, ns2);
    free(s2b);
    acn_sampler_seek(&smp, 0, 0);
    smp.pos = 999999;
    acn_save_checkpoint(ctx, "/tmp/acn_corpus_w", "/tmp/acn_corpus_s", &opt, &smp, 13, NULL, 0);
    w2 = slurp("/tmp/acn_corpus_w", &nw2);
    s2b = slurp("/tmp/acn_corpus_s", &ns2);
    put_pair("checkpoint", "cursor_pos_999999", w2, nw2, s2b, ns2);
    free(w2); free(s2b);
    smp.pos = 0;
    smp.epoch = INT64_MAX;
    acn_save_checkpoint(ctx, "/tmp/acn_corpus_w", "/tmp/acn_corpus_s", &opt, &smp, 13, NULL, 0);
    w2 = slurp("/tmp/acn_corpus_w", &nw2);
    s2b = slurp("/tmp/acn_corpus_s", &ns2);
    put_pair("checkpoint", "cursor_epoch_max", w2, nw2, s2b, ns2);
    free(w2); free(s2b);
    smp.epoch = 0;
    remove("/tmp/acn_corpus_w");
    remove("/tmp/acn_corpus_s");
    free(w);
    free(s);
    /* safetensors seeds: the state file, and two small files of the format's other dtypes */
    acn_save_checkpoint(ctx, "/tmp/acn_corpus_w", "/tmp/acn_corpus_s", &opt, &smp, 13, kv, 1);
    s = slurp("/tmp/acn_corpus_s", &ns);
    put("safetensors", "state", s, ns, NULL, 0);
    free(s);
    remove("/tmp/acn_corpus_w");
    remove("/tmp/acn_corpus_s");
    {
        static const char h1[] = "{\"__metadata__\":{\"format\":\"pt\"},\"\xc3\xa9\":{\"dtype\":\"BOOL\",\"shape\":[3],"
                                 "\"data_offsets\":[0,3]},\"u\":{\"dtype\":\"U16\",\"shape\":[2,1],\"data_offsets\":[3,7]},"
                                 "\"f\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[7,11]}}";
        static const char h2[] = "{\"a\\u00e9\":{\"dtype\":\"F8_E5M2\",\"shape\":[0],\"data_offsets\":[0,0]},"
                                 "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}";
        unsigned char buf[512], data[11] = {1, 0, 1, 2, 3, 4, 5, 0, 0, 128, 63};
        size_t k, n = strlen(h1);
        for (k = 0; k < 8; k++) buf[k] = (unsigned char)(n >> (8 * k));
        memcpy(buf + 8, h1, n);
        memcpy(buf + 8 + n, data, sizeof data);
        put("safetensors", "other_dtypes", buf, 8 + n + sizeof data, NULL, 0);
        n = strlen(h2);
        for (k = 0; k < 8; k++) buf[k] = (unsigned char)(n >> (8 * k));
        memcpy(buf + 8, h2, n);
        memset(buf + 8 + n, 7, 8);
        put("safetensors", "escapes_and_empty", buf, 8 + n + 8, NULL, 0);
    }
    acn_adamw_free(&opt);
    acn_sampler_free(&smp);
    acn_ctx_free(ctx);
}

static void images(void)
{
    static unsigned char rec[1 + 2 * 3074];
    unsigned char img[16 + 12], lab[8 + 3], gz[8] = {4, 0, 0, 0, 0x1f, 0x8b, 8, 0};
    size_t j;
    int i;
    /* CIFAR: the mode byte, then the records */
    rec[0] = 0;
    rec[1] = 7;
    for (j = 0; j < 3072; j++) rec[2 + j] = (unsigned char)(j * 7);
    put("cifar", "c10_one_record", rec, 1 + 3073, NULL, 0);
    rec[0] = 2;
    put("cifar", "c10_two_files", rec, 1 + 3073, NULL, 0);
    rec[0] = 0;
    rec[1] = 37;
    put("cifar", "c10_label_37", rec, 1 + 3073, NULL, 0);
    rec[0] = 1;
    rec[1] = 11;
    rec[2] = 57;
    put("cifar", "c100_one_record", rec, 1 + 3074, NULL, 0);
    put("cifar", "c100_truncated", rec, 1 + 3074 - 1, NULL, 0);
    /* IDX: three 2 x 2 images, their labels */
    be32(img, 0x803); be32(img + 4, 3); be32(img + 8, 2); be32(img + 12, 2);
    for (i = 0; i < 12; i++) img[16 + i] = (unsigned char)(i * 20);
    be32(lab, 0x801); be32(lab + 4, 3);
    lab[8] = 7; lab[9] = 0; lab[10] = 3;
    put_pair("idx", "three_images", img, sizeof img, lab, sizeof lab);
    put_pair("idx", "swapped", lab, sizeof lab, img, sizeof img);
    put_pair("idx", "images_cut", img, sizeof img - 1, lab, sizeof lab);
    be32(lab + 4, 4);
    put_pair("idx", "label_count_4", img, sizeof img, lab, sizeof lab);
    put("idx", "gzip", gz, sizeof gz, NULL, 0);
}

static void tables(void)
{
    char line[400];
    int k, at = 0;
    put("csv", "two_lines", (const unsigned char *)"1, 2,3,0\r\n\n4,5,6 ,2\n", 20, NULL, 0);
    for (k = 0; k < 64; k++) at += snprintf(line + at, sizeof line - (size_t)at, "%d,", k % 17);
    snprintf(line + at, sizeof line - (size_t)at, "9\n");
    put("csv", "digits_row", (const unsigned char *)line, strlen(line), NULL, 0);
    put("csv", "inf", (const unsigned char *)"1,2,0\n3,inf,1\n", 14, NULL, 0);
    put("csv", "label_3611117611", (const unsigned char *)"1,2,0\n1,2,3611117611\n", 21, NULL, 0);
    put("csv", "label_1e999", (const unsigned char *)"1.5e-3,-2,1e999\n", 16, NULL, 0);
    put_mode("tsv", "build_sst2", 1, "label\tsentence\n1\tthe cat sat\n0\tthe  dog \r\n\n1\ta cat\n");
    put_mode("tsv", "glue_order", 0, "sentence\tlabel\nthe cat sat \t1\nthe  dog \t0\r\n\na cat\t1\n");
    put_mode("tsv", "special_tokens", 3, "label\tsentence\n1\t[MASK] cat [PAD]\n0\t[CLS] [SEP] [UNK] cat [MASK]x\n");
    put_mode("tsv", "no_words", 1, "label\tsentence\n1\t\n0\t   \r\n");
    put_mode("tsv", "label_2", 0, "label\tsentence\n1\tcat\n2\tdog\n");
}

int main(void)
{
    const char *dirs[6] = {"safetensors", "checkpoint", "cifar", "idx", "csv", "tsv"};
    char cmd[300];
    int i;
    for (i = 0; i < 6; i++) {
        snprintf(cmd, sizeof cmd, "mkdir -p tests/fuzz/corpus/%s", dirs[i]);
        if (system(cmd)) return 1;
    }
    checkpoints();
    images();
    tables();
    return failed;
}
