/* libFuzzer target for acn_text_tsv (make fuzz). The first byte chooses
 * building a vocabulary from the file (bit 0, with min_count 1 + bits 1-2)
 * or reading it through a fixed one; the rest is the file. Any input gives
 * ACN_OK or an error, never a crash, a leak or undefined behaviour; an
 * accepted file gives labels 0 and 1, ids within the vocabulary and none
 * of them a special token other than [UNK], and the batches built from it. */
#include "fuzz.h"

static acn_vocab fuzz_tsv_vocab;

static int fuzz_tsv_check(const acn_textset *ts, const acn_vocab *v)
{
    int i, tok[16], mask[16], lab;
    size_t k;
    if (ts->n < 1 || ts->classes != 2 || ts->start[0] != 0) return 0;
    for (i = 0; i < v->size; i++) { /* every word once, found at its id; no word spells a special token */
        int s;
        if (acn_vocab_find(v, v->words[i], strlen(v->words[i])) != i) return 0;
        for (s = 0; s < ACN_TOK_SPECIAL && i >= ACN_TOK_SPECIAL; s++)
            if (!strcmp(v->words[i], v->words[s])) return 0;
    }
    for (i = 0; i < ts->n; i++) {
        if (ts->labels[i] != 0 && ts->labels[i] != 1) return 0;
        if (ts->start[i + 1] < ts->start[i]) return 0;
        for (k = ts->start[i]; k < ts->start[i + 1]; k++)
            if (ts->ids[k] >= v->size || (ts->ids[k] < ACN_TOK_SPECIAL && ts->ids[k] != ACN_TOK_UNK)) return 0;
        acn_text_batch(ts, &i, 1, 16, tok, mask, &lab);
        if (tok[0] != ACN_TOK_CLS || lab != ts->labels[i]) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    acn_ctx *ctx = fuzz_ctx();
    acn_textset ts;
    acn_vocab built, *v;
    char path[64];
    int build;
    if (!ctx || size < 1) return 0;
    if (!fuzz_tsv_vocab.size) { /* the fixed vocabulary, once */
        static const char text[] = "label\tsentence\n1\tthe cat sat\n0\tthe dog , a bird\n";
        if (fuzz_put("vocab.tsv", (const unsigned char *)text, sizeof text - 1, path, sizeof path) ||
            acn_text_tsv(ctx, &ts, path, &fuzz_tsv_vocab, 1, 1))
            return 0;
        acn_text_free(&ts);
        remove(path);
    }
    if (fuzz_put("text.tsv", data + 1, size - 1, path, sizeof path)) return 0;
    build = data[0] & 1;
    v = build ? &built : &fuzz_tsv_vocab;
    if (acn_text_tsv(ctx, &ts, path, v, build, 1 + (data[0] >> 1 & 3)) == ACN_OK) {
        if (!fuzz_tsv_check(&ts, v)) __builtin_trap();
        acn_text_free(&ts);
        if (build) acn_vocab_free(&built);
    } else if (ts.n || ts.ids || ts.labels || (build && built.size)) {
        __builtin_trap();
    }
    acn_clear_error(ctx);
    remove(path);
    return 0;
}
