/* libFuzzer target for acn_load_checkpoint (make fuzz): the input is split
 * (a 4-byte length prefix) into a weights file and a state file, loaded
 * into a small model (a.weight (2, 3), a.bias (3)) with AdamW and a sampler
 * of 10 examples. Any input gives ACN_OK or an error, never a crash, a leak
 * or undefined behaviour; a refusal changes nothing (parameters, moments,
 * steps, cursor, generator), and an accepted pair leaves a cursor in range
 * and steps that are not negative. */
#include "fuzz.h"

static acn_ctx *fuzz_ck_ctx;
static acn_adamw fuzz_ck_opt;
static acn_sampler fuzz_ck_smp;
static acn_tensor *fuzz_ck_p[2];

/* The state every input starts from: the same values each run. */
static void fuzz_ck_baseline(void)
{
    size_t i;
    for (i = 0; i < 6; i++) fuzz_ck_p[0]->data[i] = (float)i + 1.0f;
    for (i = 0; i < 3; i++) fuzz_ck_p[1]->data[i] = (float)i - 5.0f;
    for (i = 0; i < fuzz_ck_opt.n; i++) { fuzz_ck_opt.m[i] = 0.125f * (float)i; fuzz_ck_opt.v[i] = 0.5f; }
    fuzz_ck_opt.step = 21;
    acn_sampler_seek(&fuzz_ck_smp, 1, 3);
    acn_ctx_rng(fuzz_ck_ctx)->state = 99;
}
static int fuzz_ck_is_baseline(void)
{
    size_t i;
    int k, order[10], ok = 1;
    acn_sampler s = fuzz_ck_smp;
    for (i = 0; i < 6; i++) ok &= fuzz_ck_p[0]->data[i] == (float)i + 1.0f;
    for (i = 0; i < 3; i++) ok &= fuzz_ck_p[1]->data[i] == (float)i - 5.0f;
    for (i = 0; i < fuzz_ck_opt.n; i++) ok &= fuzz_ck_opt.m[i] == 0.125f * (float)i && fuzz_ck_opt.v[i] == 0.5f;
    for (k = 0; k < 10; k++) order[k] = s.order[k];
    acn_sampler_seek(&fuzz_ck_smp, 1, 3); /* the order of epoch 1, for comparison */
    for (k = 0; k < 10; k++) ok &= order[k] == fuzz_ck_smp.order[k];
    return ok && fuzz_ck_opt.step == 21 && s.epoch == 1 && s.pos == 3 && acn_ctx_rng(fuzz_ck_ctx)->state == 99;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char wp[64], sp[64];
    const unsigned char *a, *b;
    size_t na, nb;
    int64_t step = -12345;
    if (!fuzz_ck_ctx) {
        acn_ctx_config cfg = acn_ctx_defaults();
        int s1[2] = {2, 3}, s2[1] = {3};
        cfg.arena_bytes = 1 << 16;
        cfg.param_floats = 1024;
        if (acn_ctx_new(&fuzz_ck_ctx, &cfg)) return 0;
        acn_set_threads(fuzz_ck_ctx, 1);
        fuzz_ck_p[0] = acn_param(fuzz_ck_ctx, "a.weight", 2, s1);
        fuzz_ck_p[1] = acn_param(fuzz_ck_ctx, "a.bias", 1, s2);
        if (!fuzz_ck_p[0] || !fuzz_ck_p[1] || acn_adamw_init(fuzz_ck_ctx, &fuzz_ck_opt, 0.9f, 0.999f, 1e-8f, 0.01f) ||
            acn_sampler_init(fuzz_ck_ctx, &fuzz_ck_smp, 10, 4, 5, 0))
            __builtin_trap();
    }
    fuzz_split(data, size, &a, &na, &b, &nb);
    if (fuzz_put("w.safetensors", a, na, wp, sizeof wp) || fuzz_put("s.safetensors", b, nb, sp, sizeof sp)) return 0;
    fuzz_ck_baseline();
    if (acn_load_checkpoint(fuzz_ck_ctx, wp, sp, &fuzz_ck_opt, &fuzz_ck_smp, &step) == ACN_OK) {
        if (step < 0 || fuzz_ck_opt.step < 0 || fuzz_ck_smp.epoch < 0 || fuzz_ck_smp.epoch > 2147483647 ||
            fuzz_ck_smp.pos < 0 || fuzz_ck_smp.pos > fuzz_ck_smp.n)
            __builtin_trap();
    } else if (step != -12345 || !fuzz_ck_is_baseline()) {
        __builtin_trap(); /* a refusal must change nothing */
    }
    acn_clear_error(fuzz_ck_ctx);
    remove(wp);
    remove(sp);
    return 0;
}
