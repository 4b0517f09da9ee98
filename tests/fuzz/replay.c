/* The fuzz targets without libFuzzer (tests/run.sh): every target in one
 * program, built with any C compiler under ASan and UBSan, that feeds each
 * file named on the command line to the target named first, as libFuzzer
 * would, and says how many it ran. A crash, a leak, undefined behaviour or
 * a target's own check (__builtin_trap) ends it with a non-zero status.
 *
 *   replay TARGET FILE...     TARGET: safetensors, checkpoint, cifar, idx, csv, tsv */
#define _POSIX_C_SOURCE 200809L /* getpid, before any header */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_checkpoint_one
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
#include "fuzz_checkpoint.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_cifar_one
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
#include "fuzz_cifar.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_idx_one
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
#include "fuzz_idx.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_csv_one
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
#include "fuzz_csv.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tsv_one
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
#include "fuzz_tsv.c"
#undef LLVMFuzzerTestOneInput

static const struct { const char *name; int (*one)(const unsigned char *, size_t); } targets[] = {
    {"safetensors", fuzz_safetensors_one}, {"checkpoint", fuzz_checkpoint_one}, {"cifar", fuzz_cifar_one},
    {"idx", fuzz_idx_one}, {"csv", fuzz_csv_one}, {"tsv", fuzz_tsv_one}};

int main(int argc, char **argv)
{
    size_t t;
    int i, ran = 0;
    for (t = 0; argc > 1 && t < sizeof targets / sizeof targets[0]; t++)
        if (!strcmp(argv[1], targets[t].name)) break;
    if (argc < 3 || t == sizeof targets / sizeof targets[0]) {
        fprintf(stderr, "usage: replay TARGET FILE... (TARGET: safetensors, checkpoint, cifar, idx, csv, tsv; "
                "at least one file)\n");
        return 2;
    }
    for (i = 2; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        unsigned char *buf;
        long n;
        if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            if (f) fclose(f);
            return 2;
        }
        buf = (unsigned char *)malloc((size_t)n + 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            free(buf);
            fclose(f);
            return 2;
        }
        fclose(f);
        targets[t].one(buf, (size_t)n);
        free(buf);
        ran++;
    }
    printf("replay %s: %d inputs, no crash\n", targets[t].name, ran);
    return 0;
}
