/* libFuzzer target for acn_data_idx (make fuzz): the input is split (a
 * 4-byte length prefix) into an IDX image file and an IDX label file. Any
 * input gives ACN_OK or an error, never a crash, a leak or undefined
 * behaviour; an accepted pair gives the images and labels as stored. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    acn_ctx *ctx = fuzz_ctx();
    acn_dataset ds;
    char ip[64], lp[64];
    const unsigned char *a, *b;
    size_t na, nb;
    int i;
    if (!ctx) return 0;
    fuzz_split(data, size, &a, &na, &b, &nb);
    if (fuzz_put("images.idx", a, na, ip, sizeof ip) || fuzz_put("labels.idx", b, nb, lp, sizeof lp)) return 0;
    if (acn_data_idx(ctx, &ds, ip, lp) == ACN_OK) {
        size_t d = (size_t)ds.h * ds.w;
        if (ds.n < 1 || ds.c != 1 || na != 16 + (size_t)ds.n * d || nb != 8 + (size_t)ds.n ||
            memcmp(ds.u8, a + 16, (size_t)ds.n * d))
            __builtin_trap();
        for (i = 0; i < ds.n; i++)
            if (ds.labels[i] != b[8 + i] || ds.labels[i] >= ds.classes) __builtin_trap();
        acn_data_free(&ds);
    } else if (ds.n || ds.u8 || ds.labels) {
        __builtin_trap();
    }
    acn_clear_error(ctx);
    remove(ip);
    remove(lp);
    return 0;
}
