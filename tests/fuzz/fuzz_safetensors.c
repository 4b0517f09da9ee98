/* libFuzzer target for the safetensors reader (make fuzz). Any input must
 * give ACN_OK or an error, never a crash, a leak or undefined behaviour;
 * an accepted file must give every F32 tensor it lists. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    acn_ctx *ctx = fuzz_ctx();
    acn_st st;
    int i;
    if (!ctx) return 0;
    if (acn_st_parse(ctx, &st, data, size, "fuzz") == ACN_OK) {
        for (i = 0; i < st.n; i++) {
            const acn_st_entry *e = &st.entries[i];
            size_t n = (e->end - e->begin) / 4;
            if (e->dtype == ACN_DT_F32 && n <= 1 << 16) {
                float *dst = (float *)malloc(n ? n * sizeof(float) : 1);
                if (dst && acn_st_get_f32(ctx, &st, e->name, dst, n) != ACN_OK) __builtin_trap();
                free(dst);
            }
        }
        acn_st_meta(&st, "format");
        acn_st_free(&st);
    }
    acn_clear_error(ctx);
    return 0;
}
