/* Shared by the fuzz targets: a small context, and the input written to a
 * per-process file under /tmp for the loaders that read paths. */
#ifndef ACN_FUZZ_H
#define ACN_FUZZ_H
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* getpid */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define ACN_IMPLEMENTATION
#include "../../acn.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A context of one thread with a small arena (created once). */
static inline acn_ctx *fuzz_ctx(void)
{
    static acn_ctx *ctx;
    if (!ctx) {
        acn_ctx_config cfg = acn_ctx_defaults();
        cfg.arena_bytes = 1 << 16;
        cfg.param_floats = 1024;
        if (acn_ctx_new(&ctx, &cfg)) return NULL;
        acn_set_threads(ctx, 1);
    }
    return ctx;
}

/* n bytes into /tmp/acn_fuzz_<pid>_<tag>, its path into out. 0 on success. */
static inline int fuzz_put(const char *tag, const unsigned char *data, size_t n, char *out, size_t cap)
{
    FILE *f;
    snprintf(out, cap, "/tmp/acn_fuzz_%ld_%s", (long)getpid(), tag);
    if (!(f = fopen(out, "wb"))) return -1;
    if (n && fwrite(data, 1, n, f) != n) { fclose(f); return -1; }
    return fclose(f) ? -1 : 0;
}

/* Two files from one input: a 4-byte little-endian length L, then L bytes
 * of the first (fewer if the input is shorter) and the rest for the second. */
static inline void fuzz_split(const unsigned char *data, size_t size, const unsigned char **a, size_t *na,
                       const unsigned char **b, size_t *nb)
{
    size_t len = 0;
    int k;
    if (size < 4) { *a = *b = data; *na = *nb = 0; return; }
    for (k = 3; k >= 0; k--) len = len << 8 | data[k];
    if (len > size - 4) len = size - 4;
    *a = data + 4;
    *na = len;
    *b = data + 4 + len;
    *nb = size - 4 - len;
}
#endif
