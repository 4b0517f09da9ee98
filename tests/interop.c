/* Writes what tests/interop_check.py checks: for each wiring, a small Mixer
 * trained for 5 steps, saved with acn_save_checkpoint, a batch, and the
 * logits acn.h computes on it; and the model cut to 2 blocks (acn_save_cut)
 * with the probe after 2 blocks. Usage: interop DIR */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"
#include <stdio.h>

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/interop";
    int w, step, s[4] = {4, 3, 8, 8}, labels[4] = {1, 0, 4, 2};
    char wp[512], sp[512];
    for (w = 0; w < 4; w++) {
        acn_ctx *ctx;
        acn_mixer m;
        acn_mixer_config c = t_small_mixer(); /* models.py's MIXER */
        acn_adamw opt;
        acn_tensor *x, *logits, *out[3], *probes[ACN_MAX_BLOCKS + 1];
        const char *kv[2] = {"wiring", acn_wiring_name(w)};
        c.wiring = w;
        if (acn_ctx_new(&ctx, NULL) || acn_mixer_build(ctx, &m, &c) || acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f))
            return 1;
        x = acn_new(ctx, 4, s, 0);
        acn_init_normal(ctx, x, 0.0f, 1.0f);
        for (step = 0; step < 5; step++) { /* weights that are not the initial ones */
            acn_mark mk = acn_mark_get(ctx);
            acn_tensor *loss = acn_cross_entropy(ctx, acn_mixer_forward(ctx, &m, x, -1, NULL), labels, 0.1f, -1);
            acn_zero_grad(ctx);
            acn_backward(ctx, loss);
            acn_adamw_step(ctx, &opt, 1e-2f);
            acn_mark_rewind(ctx, mk);
        }
        acn_set_no_grad(ctx, 1);
        logits = acn_mixer_forward_ex(ctx, &m, x, -1, probes, ACN_MAX_BLOCKS + 1);
        if (!logits) {
            fprintf(stderr, "interop: %s\n", acn_error(ctx));
            return 1;
        }
        snprintf(wp, sizeof wp, "%s/%s.safetensors", dir, acn_wiring_name(w));
        snprintf(sp, sizeof sp, "%s/%s.state.safetensors", dir, acn_wiring_name(w));
        acn_save_checkpoint(ctx, wp, sp, &opt, NULL, 5, kv, 1);
        snprintf(wp, sizeof wp, "%s/%s.cut2.safetensors", dir, acn_wiring_name(w));
        acn_save_cut(ctx, wp, 2, kv, 1);
        x->name = "x";
        logits->name = "logits";
        probes[2]->name = "probe2";
        out[0] = x;
        out[1] = logits;
        out[2] = probes[2];
        snprintf(sp, sizeof sp, "%s/%s.batch.safetensors", dir, acn_wiring_name(w));
        acn_st_write(ctx, sp, out, 3, NULL, 0);
        if (acn_status_of(ctx)) {
            fprintf(stderr, "interop: %s\n", acn_error(ctx));
            return 1;
        }
        acn_adamw_free(&opt);
        acn_ctx_free(ctx);
    }
    return 0;
}
