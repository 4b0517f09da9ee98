/* libFuzzer target for acn_data_csv (make fuzz): the input is the file.
 * Any input gives ACN_OK or an error, never a crash, a leak or undefined
 * behaviour; an accepted file gives finite values and labels in range. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    acn_ctx *ctx = fuzz_ctx();
    acn_dataset ds;
    char path[64];
    size_t i;
    if (!ctx || fuzz_put("data.csv", data, size, path, sizeof path)) return 0;
    if (acn_data_csv(ctx, &ds, path, 0.5f) == ACN_OK) {
        if (ds.n < 1 || ds.c < 1 || ds.h != 1 || ds.w != 1 || ds.classes < 1 || ds.classes > 1000001 || !ds.f32)
            __builtin_trap();
        for (i = 0; i < (size_t)ds.n; i++)
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.classes) __builtin_trap();
        for (i = 0; i < (size_t)ds.n * (size_t)ds.c; i++)
            if (!(ds.f32[i] - ds.f32[i] == 0.0f)) __builtin_trap(); /* finite */
        acn_data_free(&ds);
    } else if (ds.n || ds.f32 || ds.labels) {
        __builtin_trap();
    }
    acn_clear_error(ctx);
    remove(path);
    return 0;
}
