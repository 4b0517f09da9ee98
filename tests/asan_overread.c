/* Reads one float past the end of an arena tensor. Built with
 * AddressSanitizer, it must be stopped with a report (tests/run.sh checks);
 * the arena's red zones and poisoning are what make that happen. */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include <stdio.h>

int main(void)
{
    acn_ctx *ctx;
    int n = 10;
    acn_tensor *a, *b;
    volatile float sink;
    if (acn_ctx_new(&ctx, NULL)) return 2;
    a = acn_new(ctx, 1, &n, 0);
    b = acn_new(ctx, 1, &n, 0);
    (void)b;
    sink = a->data[n]; /* one past the end: inside a's red zone */
    printf("read past the end went unnoticed (%g)\n", (double)sink);
    acn_ctx_free(ctx);
    return 0;
}
