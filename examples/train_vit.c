/* Train a small ViT (the authors' AC-ViT block, docs/models.md, "ViT (AC-ViT)") on CIFAR-10
 * or Fashion-MNIST, in any wiring, and read its head after every block.
 *
 *   cc -O2 examples/train_vit.c -o train_vit -lm -lpthread
 *   ./train_vit --epochs 10 --save runs/vit
 *   ./train_vit --help
 *
 * The defaults: patch 4 (64 tokens on CIFAR-10), width 192, 8 blocks of 3
 * heads, MLP 384; fixed 2-D sin-cos position embedding, no CLS token, mean
 * over tokens; AdamW 1e-3 with weight decay 0.05 on matrices only (as the
 * paper's ViT), batch 64, the simple recipe. Ctrl-C saves (with --save) and
 * exits; --resume continues bit for bit. docs/training.md describes every
 * flag, the files and the CSV log.
 */
#define ACN_IMPLEMENTATION
#include "../acn.h" /* in your project: "acn.h" */
#include "svg.h"
#include "train.h"
#include "train_images.h"

static acn_tensor *vit_forward(acn_ctx *ctx, const void *m, acn_tensor *images, acn_tensor **probes)
{
    return acn_vit_forward_ex(ctx, (const acn_vit *)m, images, -1, probes, probes ? TRAIN_MAXL + 1 : 0);
}

int main(int argc, char **argv)
{
    image_opts o = image_opts_defaults();
    acn_vit_config mc = acn_vit_defaults();
    const char *wiring = "acn";
    int arena_mb = 2048, n, rc, i, np;
    flag f[64];
    acn_ctx *ctx;
    static acn_vit m;
    acn_tensor *params;
    image_data d;
    image_model md;
    run_files save, resume;

    mc.patch = 4;
    mc.width = 192;
    mc.depth = 8;
    mc.heads = 3;
    mc.mlp = 384;
    o.recipe = "simple";
    o.wd = 0.05f;
    n = image_flags(&o, f);
    F_("--wiring", FLAG_STR, &wiring, 0, 0, RESUME_MODEL("wiring"), "acn, residual, plain or acn-detach");
    F_("--width", FLAG_INT, &mc.width, 8, 65536, RESUME_MODEL("width"), "channels per token (a multiple of 4 and of --heads)");
    F_("--depth", FLAG_INT, &mc.depth, 1, TRAIN_MAXL, RESUME_MODEL("depth"), "blocks");
    F_("--heads", FLAG_INT, &mc.heads, 1, 256, RESUME_MODEL("heads"), "attention heads");
    F_("--mlp", FLAG_INT, &mc.mlp, 1, 65536, RESUME_MODEL("mlp"), "hidden width of the MLP");
    F_("--patch", FLAG_INT, &mc.patch, 1, 64, RESUME_MODEL("patch"), "patch size (the image sides must be multiples of it)");
    F_("--arena-mb", FLAG_INT, &arena_mb, 16, 1 << 20, RESUME_ANY, "the step arena, in MB (pages are used as needed)");
    rc = flags_parse(argc, argv, f, n,
                     "Trains a small ViT (the authors' AC-ViT block) on CIFAR-10 or Fashion-MNIST and reports\n"
                     "the test accuracy of its head after every block.");
    if (rc) return rc == 1 ? 0 : 2;
    if (image_opts_check(argv[0], &o, &save, &resume)) return 2;
    if (o.eval_only && (rc = flags_from_weights(argv[0], o.weights, "vit", argc, argv, f, n, image_eval_keys)))
        return rc;
    if ((mc.wiring = train_wiring(argv[0], wiring)) < 0) return 2;
    if (mc.width % 4) { /* the 2-D sin-cos position embedding: a quarter of the channels per sin/cos and axis */
        fprintf(stderr, "%s: --width %d is not a multiple of 4 (the 2-D position embedding needs it)\n", argv[0],
                mc.width);
        return 2;
    }
    if (mc.width % mc.heads) {
        fprintf(stderr, "%s: --width %d is not a multiple of --heads %d (each head gets width / heads channels)\n",
                argv[0], mc.width, mc.heads);
        return 2;
    }
    /* a block has 12 parameter tensors; the table is sized for the depth asked */
    if (!(ctx = train_ctx_new(argv[0], o.seed, arena_mb, o.threads, 64 + 16 * mc.depth))) return 1;
    if ((rc = image_data_load(ctx, argv[0], &o, &d))) return train_finish(ctx, rc);
    mc.channels = d.train.c;
    mc.image_h = d.train.h;
    mc.image_w = d.train.w;
    mc.classes = d.train.classes;
    if (d.train.h % mc.patch || d.train.w % mc.patch) {
        fprintf(stderr, "%s: --patch %d does not divide the image size %d x %d; use a divisor of %d, such as 4\n",
                argv[0], mc.patch, d.train.h, d.train.w, d.train.h % mc.patch ? d.train.h : d.train.w);
        image_data_free(&d);
        return train_finish(ctx, 2);
    }
    if (acn_vit_build(ctx, &m, &mc)) {
        fprintf(stderr, "%s: %s\n", argv[0], acn_error(ctx));
        image_data_free(&d);
        return train_finish(ctx, 2);
    }
    params = acn_params(ctx, &np);
    for (i = 0; i < np; i++) acn_param_set_decay(&params[i], params[i].ndim >= 2); /* matrices only */
    memset(&md, 0, sizeof md);
    md.name = "vit";
    md.m = &m;
    md.depth = mc.depth;
    md.grad_fmt = "blocks.%d.mlp.fc1.weight";
    md.forward = vit_forward;
    md.flags = f;
    md.n_flags = n;
    meta_set(&md.meta, "model", "vit");
    meta_set(&md.meta, "wiring", "%s", acn_wiring_name(mc.wiring));
    meta_set(&md.meta, "patch", "%d", mc.patch);
    meta_set(&md.meta, "width", "%d", mc.width);
    meta_set(&md.meta, "depth", "%d", mc.depth);
    meta_set(&md.meta, "heads", "%d", mc.heads);
    meta_set(&md.meta, "mlp", "%d", mc.mlp);
    printf("ViT, %s wiring: %d blocks of width %d, %d heads, MLP %d, patch %d; %zu parameters; %d thread%s, %s kernels\n",
           acn_wiring_name(mc.wiring), mc.depth, mc.width, mc.heads, mc.mlp, mc.patch, acn_param_numel(ctx),
           acn_threads(ctx), acn_threads(ctx) == 1 ? "" : "s", acn_simd_name(acn_simd(ctx)));
    rc = o.eval_only ? image_eval_only(ctx, argv[0], &md, &d, &o) : image_train(ctx, argv[0], &md, &d, &o);
    image_data_free(&d);
    return train_finish(ctx, rc);
}
