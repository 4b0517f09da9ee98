/* libFuzzer target for acn_data_cifar (make fuzz). The first byte chooses
 * CIFAR-10 or CIFAR-100 (bit 0) and one file or the same file twice
 * (bit 1); the rest is the file. Any input gives ACN_OK or an error, never
 * a crash, a leak or undefined behaviour; an accepted file gives every
 * record, its labels in range and its pixels as the file has them. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    acn_ctx *ctx = fuzz_ctx();
    acn_dataset ds;
    char path[64];
    const char *paths[2];
    int c100, files, i;
    size_t rec;
    if (!ctx || size < 1 || fuzz_put("cifar.bin", data + 1, size - 1, path, sizeof path)) return 0;
    c100 = data[0] & 1;
    files = data[0] & 2 ? 2 : 1;
    rec = c100 ? 3074 : 3073;
    paths[0] = paths[1] = path;
    if (acn_data_cifar(ctx, &ds, paths, files, c100) == ACN_OK) {
        if ((size_t)ds.n != files * ((size - 1) / rec) || (size - 1) % rec || ds.classes != (c100 ? 100 : 10))
            __builtin_trap();
        for (i = 0; i < ds.n; i++) {
            const unsigned char *r = data + 1 + (size_t)(i % (ds.n / files)) * rec;
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.classes || ds.labels[i] != r[c100] ||
                (c100 && ds.coarse[i] != r[0]) || memcmp(ds.u8 + (size_t)i * 3072, r + 1 + c100, 3072))
                __builtin_trap();
        }
        acn_data_free(&ds);
    } else if (ds.n || ds.u8 || ds.labels) {
        __builtin_trap(); /* a refusal leaves nothing behind */
    }
    acn_clear_error(ctx);
    remove(path);
    return 0;
}
