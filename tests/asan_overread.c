/* Reads one float past the end of an arena tensor (no argument) or of the
 * last parameter's gradient (argument "param"). Built with
 * AddressSanitizer, it must be stopped with a report (tests/run.sh checks);
 * the red zones and the poisoning of unused memory make that happen. */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include <stdio.h>

int main(int argc, char **argv)
{
    acn_ctx *ctx;
    int n = 16;
    acn_tensor *a, *b;
    volatile float sink;
    if (acn_ctx_new(&ctx, NULL)) return 2;
    if (argc > 1) { /* 16 floats fill their aligned view: the next float is unused */
        a = acn_param(ctx, "w", 1, &n);
        sink = a->grad[n];
    } else {
        a = acn_new(ctx, 1, &n, 0);
        b = acn_new(ctx, 1, &n, 0);
        (void)b;
        sink = a->data[n]; /* one past the end: inside a's red zone */
    }
    printf("read past the end went unnoticed (%g)\n", (double)sink);
    acn_ctx_free(ctx);
    return 0;
}
