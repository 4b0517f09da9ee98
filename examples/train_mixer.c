/* Train the paper's MLP-Mixer (docs/acn.md, "The paper's models") on CIFAR-10 or Fashion-MNIST,
 * in any wiring, and read its head after every block.
 *
 *   cc -O2 examples/train_mixer.c -o train_mixer -lm -lpthread
 *   ./train_mixer --data cifar10 --data-dir data/cifar-10-batches-bin --epochs 2 --recipe simple --save runs/mixer
 *   ./train_mixer --help
 *
 * The defaults are the paper's CIFAR-10 Mixer (16 blocks of width 128,
 * patch 4, token MLP 64, channel MLP 512, 2,527,002 parameters) and its
 * recipe (docs/acn.md, "Training settings": AdamW 1e-3, weight decay 0.01, batch 64, label
 * smoothing 0.1, two random crops, AutoAugment, CutMix, clip 1.0). Ctrl-C
 * saves (with --save) and exits; --resume continues bit for bit.
 * docs/training.md describes every flag, the files and the CSV log.
 */
#define ACN_IMPLEMENTATION
#include "../acn.h" /* in your project: "acn.h" */
#include "svg.h"
#include "train.h"
#include "train_images.h"

static acn_tensor *mixer_forward(acn_ctx *ctx, const void *m, acn_tensor *images, acn_tensor **probes)
{
    return acn_mixer_forward_ex(ctx, (const acn_mixer *)m, images, -1, probes, probes ? TRAIN_MAXL + 1 : 0);
}

int main(int argc, char **argv)
{
    image_opts o = image_opts_defaults();
    acn_mixer_config mc = acn_mixer_defaults();
    const char *wiring = "acn";
    int textbook = 0, arena_mb = 2048, n, rc;
    flag f[64];
    acn_ctx *ctx;
    static acn_mixer m;
    image_data d;
    image_model md;
    run_files save, resume;

    n = image_flags(&o, f);
    F_("--wiring", FLAG_STR, &wiring, 0, 0, RESUME_MODEL("wiring"), "acn, residual, plain or acn-detach");
    F_("--width", FLAG_INT, &mc.width, 1, 65536, RESUME_MODEL("width"), "channels per token (H)");
    F_("--depth", FLAG_INT, &mc.depth, 1, TRAIN_MAXL, RESUME_MODEL("depth"), "blocks");
    F_("--patch", FLAG_INT, &mc.patch, 1, 64, RESUME_MODEL("patch"), "patch size (the image sides must be multiples of it)");
    F_("--token-hidden", FLAG_INT, &mc.token_hidden, 1, 65536, RESUME_MODEL("token_hidden"), "hidden width of the token-mixing MLP");
    F_("--channel-hidden", FLAG_INT, &mc.channel_hidden, 1, 65536, RESUME_MODEL("channel_hidden"), "hidden width of the channel-mixing MLP");
    F_("--textbook", FLAG_SWITCH, &textbook, 0, 0, RESUME_MODEL("block"), "the textbook Mixer block and head instead of the authors'");
    F_("--arena-mb", FLAG_INT, &arena_mb, 16, 1 << 20, RESUME_ANY, "the step arena, in MB (pages are used as needed)");
    rc = flags_parse(argc, argv, f, n,
                     "Trains the paper's MLP-Mixer (or any size of it) on CIFAR-10 or Fashion-MNIST and reports\n"
                     "the test accuracy of its head after every block.");
    if (rc) return rc == 1 ? 0 : 2;
    if (image_opts_check(argv[0], &o, &save, &resume)) return 2;
    if (o.eval_only && (rc = flags_from_weights(argv[0], o.weights, "mixer", argc, argv, f, n, image_eval_keys)))
        return rc;
    if ((mc.wiring = train_wiring(argv[0], wiring)) < 0) return 2;
    mc.textbook = textbook;
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
    if (acn_mixer_build(ctx, &m, &mc)) {
        fprintf(stderr, "%s: %s\n", argv[0], acn_error(ctx));
        image_data_free(&d);
        return train_finish(ctx, 2);
    }
    memset(&md, 0, sizeof md);
    md.name = "mixer";
    md.m = &m;
    md.depth = mc.depth;
    md.grad_fmt = "blocks.%d.ch.fc1.weight";
    md.forward = mixer_forward;
    md.flags = f;
    md.n_flags = n;
    meta_set(&md.meta, "model", "mixer");
    meta_set(&md.meta, "wiring", "%s", acn_wiring_name(mc.wiring));
    meta_set(&md.meta, "block", "%s", textbook ? "textbook" : "authors");
    meta_set(&md.meta, "patch", "%d", mc.patch);
    meta_set(&md.meta, "width", "%d", mc.width);
    meta_set(&md.meta, "depth", "%d", mc.depth);
    meta_set(&md.meta, "token_hidden", "%d", mc.token_hidden);
    meta_set(&md.meta, "channel_hidden", "%d", mc.channel_hidden);
    printf("Mixer (%s block), %s wiring: %d blocks of width %d, patch %d; %zu parameters; %d thread%s, %s kernels\n",
           textbook ? "textbook" : "authors'", acn_wiring_name(mc.wiring), mc.depth, mc.width, mc.patch,
           acn_param_numel(ctx), acn_threads(ctx), acn_threads(ctx) == 1 ? "" : "s", acn_simd_name(acn_simd(ctx)));
    rc = o.eval_only ? image_eval_only(ctx, argv[0], &md, &d, &o) : image_train(ctx, argv[0], &md, &d, &o);
    image_data_free(&d);
    return train_finish(ctx, rc);
}
