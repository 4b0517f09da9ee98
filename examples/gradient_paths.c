/* Gradient paths in a real network: how much of each block's gradient comes
 * through the block's own long connection to the output, and how much
 * through the blocks above it.
 *
 * Two of acn.h's models (docs/models.md) are trained on the UCI digits
 * (examples/digits.h) in three wirings each, from the same initial weights:
 *   the deep MLP    x_0 = embed(x), block f_i(x) = LN(GELU(W_i x + b_i)),
 *                   head clf(LN(y)); 12 blocks of width 128 by default;
 *   a small Mixer   the paper's (authors') MLP-Mixer on the 8 x 8 images cut
 *                   into 2 x 2 patches (16 patches and the CLS token), 8
 *                   blocks of width 32, token MLP 16, channel MLP 64;
 * in the wirings
 *   plain     x_i = f_i(x_{i-1}),                 y = x_L
 *   residual  x_i = the block's residual form,    y = x_L
 *   ACN       x_i = f_i(x_{i-1}),                 y = x_0 + x_1 + ... + x_L
 * At a few steps of training (0, N/8, N/4, N/2 and N of N steps: 0, 50, 100,
 * 200 and 400 by default) it takes the gradient g_i of the loss on a fixed
 * batch (the first 256 training images) with respect to the parameters of
 * each block i, all of them as one vector (MLP: fc.weight, fc.bias,
 * ln.weight, ln.bias; Mixer: the block's 16 tensors), and splits it in two:
 *
 *   DG_i, the direct gradient: the part that reaches block i through its own
 *         long connection: from the output straight back to the block's
 *         output, through no other block;
 *   FG_i, the forward gradient: the part that comes through the blocks above
 *         it (i + 1 .. L), along the chain;
 *   g_i = DG_i + FG_i as vectors (their norms do not add).
 *
 * What the split means in each wiring:
 *   ACN       x_i enters the sum y directly: DG_i = J_i^T dL/dy, with J_i the
 *             Jacobian of block i's output with respect to its parameters. It
 *             is all that the detached variant (ACN_ACN_DETACH) trains on.
 *             FG_L = 0: nothing is above the top block.
 *   residual  MLP: x_i = x_{i-1} + h_i with the branch h_i = f_i(x_{i-1})
 *             unrolls to y = x_0 + h_1 + ... + h_L: the chain of identity
 *             skips is the branch's long connection. DG_i is the gradient
 *             along the identity path alone (J_i^T dL/dy, as for ACN), FG_i
 *             the part through the branches h_j of later blocks.
 *             Mixer: the authors' block keeps its skips inside and ends in
 *             x_i = LN(ReLU(W u + b + x_{i-1})), so no identity path leaves a
 *             block: as in plain, everything below the top passes the blocks
 *             above (DG_i = 0 for i < L).
 *   plain     only the top block reaches the output directly: DG_L = g_L,
 *             and DG_i = 0 below it, where everything is FG.
 * The split is made on the parameters, not on the block outputs: with respect
 * to x_i (ACN) or h_i (residual MLP), the direct part is dL/dy itself, the
 * same vector for every block, which would show nothing per block.
 *
 * DG is measured two independent ways, which must agree (the program exits 1
 * if they differ by more than 1e-4 relative; on this machine they are equal
 * to the last bit):
 *   (a) all blocks in one pass: for ACN, acn.h's own detached wiring
 *       (ACN_ACN_DETACH, x_i = f_i(detach(x_{i-1}))) on the same weights;
 *       otherwise the forward built here with every link of the chain
 *       detached (residual MLP: c_i = c_{i-1} + detach(h_i); others:
 *       c_i = detach(x_i)), the output as usual;
 *   (b) one pass per block i: the forward built here from public ops
 *       (acn_linear, acn_gelu, acn_layernorm, acn_add, acn_detach, ...) on the
 *       model's own parameter tensors with only the chain after block i
 *       detached: block i's output still enters the output, but the next
 *       block reads a detached copy. Backward gives block i exactly its DG.
 * The program reports DG from (b), the definition, and FG = g - DG.
 *
 * Output, in DIR (--out, default gradient-paths-out/), for MODEL = mlp, mixer:
 *   MODEL.csv   step,wiring,block,dg_norm,fg_norm,total_norm: the Euclidean
 *               norms of DG_i, FG_i and g_i; block 1 is the first after the
 *               embedding, block L the last; the rows of step s are
 *               measured after s updates (step 0: the initial weights);
 *   MODEL.svg   one panel per wiring: ||DG|| (solid) and ||FG|| (dashed) of
 *               each block on a log scale, one colour per step; a zero (DG
 *               below the top of a plain network, FG of the top block) has no
 *               point;
 * and on the terminal a table per model and wiring, blocks down, steps across.
 * How to read it: where DG dominates, a block learns from its own
 * connection to the output, as the detached variant would; where FG
 * dominates, it learns mainly through what the blocks above it do with its
 * output. Compare the columns of one block over training, and the blocks of
 * one column.
 *
 *   cc -O2 examples/gradient_paths.c -lm && ./a.out [--steps N] [--model mlp|mixer|both] [--out DIR]
 *
 * tests/test_paths.c includes this file (with GRADIENT_PATHS_NO_MAIN) and
 * checks its functions: the split on the 1-D linear chain against the closed
 * forms of docs/models.md, the forward built here against acn.h's, and the
 * two ways of measuring DG against each other.
 */
#define ACN_IMPLEMENTATION
#include "../acn.h"  /* in your project: "acn.h" */
#ifndef GRADIENT_PATHS_NO_MAIN /* the program's own: the data and the plots */
#include "digits.h"
#include "svg.h"
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { PATHS_MAXL = 32, PATHS_MAXP = 16, PATHS_MEASURE_N = 256, PATHS_BATCH = 64, PATHS_NSTEPS = 5 };
enum { PATHS_CUT_NONE = -1, PATHS_CUT_ALL = -2 };

/* One of the two models, by pointer: exactly one is not NULL. */
typedef struct paths_net {
    const acn_mlp *mlp;
    const acn_mixer *mixer;
} paths_net;

static int paths_depth(const paths_net *n) { return n->mlp ? n->mlp->cfg.depth : n->mixer->cfg.depth; }

/* Floats per example: the MLP's inputs, or the Mixer's C H W pixels. */
static int paths_in(const paths_net *n)
{
    const acn_mixer_config *c = n->mixer ? &n->mixer->cfg : NULL;
    return n->mlp ? n->mlp->cfg.in : c->channels * c->image_h * c->image_w;
}

/* The parameter tensors of block i into p[0..PATHS_MAXP-1]; returns how many. */
static int paths_block_params(const paths_net *n, int i, acn_tensor **p)
{
    int k = 0;
    if (n->mlp) {
        const acn_mlp_block *b = &n->mlp->blocks[i];
        acn_tensor *all[4];
        int j;
        all[0] = b->fc.weight; all[1] = b->fc.bias; all[2] = b->ln.weight; all[3] = b->ln.bias;
        for (j = 0; j < 4; j++) if (all[j]) p[k++] = all[j]; /* no bias, no LN: fewer */
    } else {
        const acn_mixer_block *b = &n->mixer->blocks[i];
        const acn_ln *ln[3];
        const acn_lin *lin[5];
        int j;
        ln[0] = &b->tok_ln; ln[1] = &b->ch_ln; ln[2] = &b->ln;
        lin[0] = &b->tok_fc1; lin[1] = &b->tok_fc2; lin[2] = &b->ch_fc1; lin[3] = &b->ch_fc2; lin[4] = &b->linear;
        for (j = 0; j < 3; j++) { p[k++] = ln[j]->weight; p[k++] = ln[j]->bias; }
        for (j = 0; j < 5; j++) { p[k++] = lin[j]->weight; p[k++] = lin[j]->bias; }
    }
    return k;
}

/* The number of parameters in one block (every block has the same). */
static size_t paths_block_size(const paths_net *n)
{
    acn_tensor *p[PATHS_MAXP];
    size_t s = 0;
    int k, np = paths_block_params(n, 0, p);
    for (k = 0; k < np; k++) s += p[k]->numel;
    return s;
}

/* x (rows, paths_in) -> the model's input: (rows, in) or (rows, C, H, W) */
static acn_tensor *paths_input(acn_ctx *ctx, const paths_net *n, const float *x, int rows)
{
    int s[4];
    if (n->mlp) {
        s[0] = rows;
        s[1] = n->mlp->cfg.in;
        return acn_input(ctx, 2, s, x);
    }
    s[0] = rows;
    s[1] = n->mixer->cfg.channels;
    s[2] = n->mixer->cfg.image_h;
    s[3] = n->mixer->cfg.image_w;
    return acn_input(ctx, 4, s, x);
}

/* acn.h's own forward of the model in `wiring` (any of the four), on its
 * weights.                                        in -> logits (B, classes) */
static acn_tensor *paths_library(acn_ctx *ctx, const paths_net *n, int wiring, acn_tensor *in)
{
    if (n->mlp) {
        acn_mlp m = *n->mlp;
        m.cfg.wiring = wiring;
        return acn_mlp_forward_ex(ctx, &m, in, -1, NULL, 0);
    } else {
        acn_mixer m = *n->mixer;
        m.cfg.wiring = wiring;
        return acn_mixer_forward_ex(ctx, &m, in, -1, NULL, 0);
    }
}

/* ---- the forward, built from public ops --------------------------------- */
/* MLP block i without its residual form: LN(act(W x + b))       x (B, W) */
static acn_tensor *paths_mlp_block(acn_ctx *ctx, const acn_mlp *m, int i, acn_tensor *x)
{
    const acn_mlp_block *b = &m->blocks[i];
    acn_tensor *h = acn_linear(ctx, x, b->fc.weight, b->fc.bias);
    switch (m->cfg.act) {
    case ACN_ACT_RELU: h = acn_relu(ctx, h); break;
    case ACN_ACT_GELU: h = acn_gelu(ctx, h); break;
    case ACN_ACT_TANH: h = acn_tanh(ctx, h); break;
    default: break;
    }
    return m->cfg.block_ln ? acn_layernorm(ctx, h, b->ln.weight, b->ln.bias, b->ln.eps) : h;
}

/* The authors' Mixer block i (docs/models.md), its residual form when asked:
 *   tok(x) = LN over D, then across tokens Linear(T -> Th), GELU, Linear(Th -> T)
 *   ch(x)  = LN, Linear(D -> Dc), GELU, Linear(Dc -> D)
 *   ACN, plain: u = ch(tok(x));  residual: y1 = x + tok(x), u = y1 + ch(y1)
 *   x_i = LN(ReLU(W u + b + x))                                 x (B, T, D) */
static acn_tensor *paths_mixer_block(acn_ctx *ctx, const acn_mixer *m, int i, acn_tensor *x, int residual)
{
    const acn_mixer_block *b = &m->blocks[i];
    acn_tensor *t, *u;
    t = acn_linear_mid(ctx, acn_layernorm(ctx, x, b->tok_ln.weight, b->tok_ln.bias, b->tok_ln.eps), b->tok_fc1.weight,
                       b->tok_fc1.bias);                                              /* (B, Th, D) */
    t = acn_linear_mid(ctx, acn_gelu(ctx, t), b->tok_fc2.weight, b->tok_fc2.bias); /* (B, T, D)  */
    if (residual) t = acn_add(ctx, x, t);
    u = acn_ffn(ctx, acn_layernorm(ctx, t, b->ch_ln.weight, b->ch_ln.bias, b->ch_ln.eps), b->ch_fc1.weight,
                b->ch_fc1.bias, b->ch_fc2.weight, b->ch_fc2.bias, 0);               /* (B, T, D)  */
    if (residual) u = acn_add(ctx, t, u);
    u = acn_relu(ctx, acn_add(ctx, acn_linear(ctx, u, b->linear.weight, b->linear.bias), x));
    return acn_layernorm(ctx, u, b->ln.weight, b->ln.bias, b->ln.eps);
}

/* x_0. MLP: embed(x) (B, W). Mixer: the patch embedding (a Conv2d(k=p, s=p)
 * as a Linear on the patches) with the CLS token first (B, N + 1, D). */
static acn_tensor *paths_x0(acn_ctx *ctx, const paths_net *n, acn_tensor *in)
{
    const acn_mixer *m = n->mixer;
    acn_tensor *x, *parts[2];
    int s[3];
    if (n->mlp) return acn_linear(ctx, in, n->mlp->embed.weight, n->mlp->embed.bias);
    s[0] = m->cfg.width;
    s[1] = -1;
    x = acn_linear(ctx, acn_patches(ctx, in, m->cfg.patch), acn_reshape(ctx, m->embed_w, 2, s), m->embed_b); /* (B, N, D) */
    s[0] = in->shape[0]; s[1] = 1; s[2] = m->cfg.width;
    parts[0] = acn_add(ctx, acn_new(ctx, 3, s, 0), m->cls); /* (B, 1, D) */
    parts[1] = x;
    return acn_concat(ctx, parts, 2, 1);
}

/* The head. MLP: clf(LN(y)); Mixer: clf(LN(y[:, 0])).  -> (B, classes) */
static acn_tensor *paths_head(acn_ctx *ctx, const paths_net *n, acn_tensor *y)
{
    int s[2];
    if (n->mlp) {
        const acn_mlp *m = n->mlp;
        if (m->cfg.head_ln) y = acn_layernorm(ctx, y, m->ln.weight, m->ln.bias, m->ln.eps);
        return acn_linear(ctx, y, m->clf.weight, m->clf.bias);
    }
    s[0] = y ? y->shape[0] : 1;
    s[1] = n->mixer->cfg.width;
    y = acn_reshape(ctx, acn_slice(ctx, y, 1, 0, 1), 2, s); /* the CLS token (B, D) */
    y = acn_layernorm(ctx, y, n->mixer->ln.weight, n->mixer->ln.bias, n->mixer->ln.eps);
    return acn_linear(ctx, y, n->mixer->clf.weight, n->mixer->clf.bias);
}

/* The model's forward built from public ops, in wiring ACN_PLAIN,
 * ACN_RESIDUAL or ACN_ACN, with two cuts for measuring paths:
 *   chain_cut  PATHS_CUT_NONE, a block index i (the next block reads a
 *              detached copy of block i's output or, residual MLP, of its
 *              branch), or PATHS_CUT_ALL (after every block);
 *   long_cut   -1, or a block index i whose output (branch) enters the
 *              output y detached: its long connection carries no gradient.
 * With no cuts it computes what acn.h's forward does, op for op.
 *                                                  in -> logits (B, classes) */
static acn_tensor *paths_forward(acn_ctx *ctx, const paths_net *n, int wiring, acn_tensor *in, int chain_cut,
                                 int long_cut)
{
    int L = paths_depth(n), i;
    int skips = n->mlp && wiring == ACN_RESIDUAL;      /* y = x_0 + h_1 + ... + h_L        */
    int in_block = n->mixer && wiring == ACN_RESIDUAL; /* the Mixer's residual form inside */
    acn_tensor *c, *y;
    if (n->mixer && n->mixer->cfg.textbook) {
        acn_set_error(ctx, ACN_ERR_ARG, "paths_forward: the textbook Mixer is not built here; use the authors' form");
        return NULL;
    }
    if (wiring != ACN_PLAIN && wiring != ACN_RESIDUAL && wiring != ACN_ACN) {
        acn_set_error(ctx, ACN_ERR_ARG, "paths_forward: wiring %d; plain, residual or ACN only", wiring);
        return NULL;
    }
    c = y = paths_x0(ctx, n, in); /* the chain and the output */
    for (i = 0; i < L; i++) {
        acn_tensor *h = n->mlp ? paths_mlp_block(ctx, n->mlp, i, c) : paths_mixer_block(ctx, n->mixer, i, c, in_block);
        acn_tensor *to_y = i == long_cut ? acn_detach(ctx, h) : h;
        acn_tensor *to_chain = chain_cut == PATHS_CUT_ALL || chain_cut == i ? acn_detach(ctx, h) : h;
        if (skips) { /* the same values in y as in the chain, added in the same order */
            y = acn_add(ctx, y, to_y);
            c = acn_add(ctx, c, to_chain);
        } else if (wiring == ACN_ACN) {
            y = acn_add(ctx, y, to_y); /* x_0 + x_1 + ... + x_i */
            c = to_chain;
        } else {
            y = to_y; /* y = x_L: only the last block's counts */
            c = to_chain;
        }
    }
    return paths_head(ctx, n, y);
}

/* ---- measuring ------------------------------------------------------------ */
/* One backward of the mean cross-entropy on (x, labels), rows examples:
 * through acn.h's forward in `wiring` when hand == 0, else through
 * paths_forward with the two cuts. Copies the gradient of block `only`'s
 * parameters (of every block when only < 0) into g (L, P) row by row, P =
 * paths_block_size; *loss gets the loss when loss is not NULL. Returns 0, or
 * -1 with the context's error. */
static int paths_grads(acn_ctx *ctx, const paths_net *n, int wiring, int hand, int chain_cut, int long_cut,
                       const float *x, const int *labels, int rows, int only, float *g, float *loss)
{
    acn_tensor *in, *logits, *l, *p[PATHS_MAXP];
    int i, k, np;
    size_t P = paths_block_size(n), off;
    acn_reset(ctx);
    in = paths_input(ctx, n, x, rows);
    logits = hand ? paths_forward(ctx, n, wiring, in, chain_cut, long_cut) : paths_library(ctx, n, wiring, in);
    l = acn_cross_entropy(ctx, logits, labels, 0.0f, -1);
    acn_zero_grad(ctx);
    if (!l || acn_backward(ctx, l)) return -1;
    if (loss) *loss = acn_item(ctx, l);
    for (i = 0; i < paths_depth(n); i++) {
        if (only >= 0 && i != only) continue;
        np = paths_block_params(n, i, p);
        for (k = 0, off = 0; k < np; off += p[k]->numel, k++)
            if (acn_read_grad(ctx, p[k], g + (size_t)i * P + off)) return -1;
    }
    return 0;
}

/* ||a - b|| over n floats (b NULL: ||a||), in double */
static double paths_dist(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    size_t j;
    for (j = 0; j < n; j++) {
        double d = (double)a[j] - (b ? (double)b[j] : 0.0);
        s += d * d;
    }
    return sqrt(s);
}

/* What one measurement gives, per block i = 0..L-1. */
typedef struct paths_row {
    double dg[PATHS_MAXL], fg[PATHS_MAXL], total[PATHS_MAXL]; /* norms of DG_i, FG_i, g_i */
    double agree; /* the largest ||DG(a) - DG(b)|| / max(||DG(a)||, ||DG(b)||) over the blocks */
    float loss;   /* the loss on the batch */
} paths_row;

/* Measure DG, FG and g of every block of the model (depth <= PATHS_MAXL)
 * in `wiring` (ACN_PLAIN, ACN_RESIDUAL or ACN_ACN) on (x, labels), rows
 * examples. scratch: 3 L P floats (P = paths_block_size). Returns 0, or -1
 * with the context's error. */
static int paths_measure(acn_ctx *ctx, const paths_net *n, int wiring, const float *x, const int *labels, int rows,
                         float *scratch, paths_row *out)
{
    int L = paths_depth(n), i;
    size_t P = paths_block_size(n);
    float *tot = scratch, *dga = scratch + (size_t)L * P, *dgb = scratch + 2 * (size_t)L * P; /* (L, P) each */
    if (L > PATHS_MAXL) {
        acn_set_error(ctx, ACN_ERR_ARG, "paths_measure: %d blocks; at most %d", L, PATHS_MAXL);
        return -1;
    }
    if (paths_grads(ctx, n, wiring, 0, PATHS_CUT_NONE, -1, x, labels, rows, -1, tot, &out->loss)) return -1;
    /* (a): every DG in one pass */
    if (wiring == ACN_ACN) {
        if (paths_grads(ctx, n, ACN_ACN_DETACH, 0, PATHS_CUT_NONE, -1, x, labels, rows, -1, dga, NULL)) return -1;
    } else if (paths_grads(ctx, n, wiring, 1, PATHS_CUT_ALL, -1, x, labels, rows, -1, dga, NULL)) {
        return -1;
    }
    /* (b): block by block, only the chain after block i detached */
    for (i = 0; i < L; i++)
        if (paths_grads(ctx, n, wiring, 1, i, -1, x, labels, rows, i, dgb, NULL)) return -1;
    out->agree = 0.0;
    for (i = 0; i < L; i++) {
        const float *t = tot + (size_t)i * P, *a = dga + (size_t)i * P, *b = dgb + (size_t)i * P;
        double na = paths_dist(a, NULL, P), nb = paths_dist(b, NULL, P), d = paths_dist(a, b, P);
        double big = na > nb ? na : nb;
        if (big > 0.0 && d / big > out->agree) out->agree = d / big;
        out->dg[i] = nb;
        out->fg[i] = paths_dist(t, b, P);
        out->total[i] = paths_dist(t, NULL, P);
    }
    return 0;
}

#ifndef GRADIENT_PATHS_NO_MAIN
static const int paths_wirings[3] = {ACN_PLAIN, ACN_RESIDUAL, ACN_ACN};

typedef struct paths_opts {
    int steps, depth, width, threads;
    uint64_t seed;
    const float *xtr; /* (ntr, 64) training images, pixels 0..1 */
    const int *ytr;   /* (ntr) */
    int ntr;
    const float *xte; /* (nte, 64) test images */
    const int *yte;
    int nte;
    int at[PATHS_NSTEPS], n_at; /* the steps measured */
} paths_opts;

/* Test accuracy (%) of the model's output. */
static float paths_accuracy(acn_ctx *ctx, const paths_net *n, int wiring, const float *x, const int *y, int rows)
{
    int i, c, correct = 0, in = paths_in(n), pred[PATHS_MEASURE_N];
    acn_set_no_grad(ctx, 1);
    for (i = 0; i < rows; i += PATHS_MEASURE_N) {
        int b = rows - i < PATHS_MEASURE_N ? rows - i : PATHS_MEASURE_N;
        acn_tensor *logits;
        acn_reset(ctx);
        logits = paths_library(ctx, n, wiring, paths_input(ctx, n, x + (size_t)i * in, b)); /* (b, 10) */
        if (!logits) break;
        if (acn_argmax(ctx, logits, pred)) break;
        for (c = 0; c < b; c++) correct += pred[c] == y[i + c];
    }
    acn_set_no_grad(ctx, 0);
    return 100.0f * (float)correct / (float)rows;
}

/* Build one model (mixer: 0 the MLP, 1 the small Mixer) in `wiring`, train it
 * for o->steps steps and measure at o->at[]: rows[k] gets the measurement at
 * o->at[k], *acc the test accuracy at the end, *depth the model's depth.
 * Returns 0, or 1 after printing the error. */
static int paths_run(int mixer, int wiring, const paths_opts *o, paths_row *rows, float *acc, int *depth)
{
    acn_ctx *ctx;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_mlp mlp;
    acn_mixer mix;
    paths_net net;
    acn_adamw opt;
    acn_sampler smp;
    acn_schedule sched;
    float xb[PATHS_BATCH * 64]; /* (B, 64): the 8 x 8 pixels */
    int yb[PATHS_BATCH], idx[PATHS_BATCH], step, k = 0, b, i, rc = 0;
    float *scratch = NULL;
    const char *what = mixer ? "Mixer" : "MLP";
    char why[256];
    cfg.seed = o->seed;
    cfg.arena_bytes = (size_t)(mixer ? 256 : 64) << 20; /* the Mixer's 17 tokens: 17 times the MLP's rows */
    if (acn_ctx_new_ex(&ctx, &cfg, why, sizeof why)) {
        fprintf(stderr, "gradient_paths: cannot create a context: %s\n", why);
        return 1;
    }
    memset(&net, 0, sizeof net);
    if (mixer) {
        acn_mixer_config c = acn_mixer_defaults();
        c.image_h = c.image_w = 8;
        c.channels = 1;
        c.patch = 2;
        c.width = 32;
        c.depth = 8;
        c.token_hidden = 16;
        c.channel_hidden = 64;
        c.classes = 10;
        c.wiring = wiring;
        acn_mixer_build(ctx, &mix, &c);
        net.mixer = &mix;
    } else {
        acn_mlp_config c = acn_mlp_defaults();
        c.depth = o->depth;
        c.width = o->width;
        c.wiring = wiring;
        acn_mlp_build(ctx, &mlp, &c);
        net.mlp = &mlp;
    }
    if (acn_status_of(ctx) || acn_set_threads(ctx, o->threads) ||
        acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f) ||
        acn_sampler_init(ctx, &smp, o->ntr, PATHS_BATCH, o->seed, 1)) {
        fprintf(stderr, "gradient_paths: setting up the %s %s: %s\n", acn_wiring_name(wiring), what, acn_error(ctx));
        acn_ctx_free(ctx);
        return 1;
    }
    *depth = paths_depth(&net);
    scratch = (float *)malloc(3 * (size_t)*depth * paths_block_size(&net) * sizeof(float)); /* 3 x (L, P) */
    if (!scratch) {
        fprintf(stderr, "gradient_paths: out of memory for the gradient buffers (%.1f MB); try a smaller --width\n",
                3.0 * *depth * (double)paths_block_size(&net) * 4 / 1e6);
        acn_adamw_free(&opt);
        acn_sampler_free(&smp);
        acn_ctx_free(ctx);
        return 1;
    }
    sched = acn_schedule_warmup_cosine(2e-3f, o->steps / 10 > 0 ? o->steps / 10 : 1, o->steps, 1e-5f);
    for (step = 0;; step++) {
        acn_tensor *loss;
        if (k < o->n_at && o->at[k] == step) {
            if (paths_measure(ctx, &net, wiring, o->xtr, o->ytr, PATHS_MEASURE_N, scratch, &rows[k])) break;
            printf("  %-5s %-8s step %4d  loss %.4f  (DG two ways: largest difference %.1e)\n", what,
                   acn_wiring_name(wiring), step, rows[k].loss, rows[k].agree);
            fflush(stdout);
            k++;
        }
        if (step == o->steps) break;
        while ((b = acn_sampler_next(&smp, idx)) == 0) {} /* 0: the epoch is over; the next call starts one */
        for (i = 0; i < b; i++) {
            memcpy(xb + i * 64, o->xtr + (size_t)idx[i] * 64, 64 * sizeof(float));
            yb[i] = o->ytr[idx[i]];
        }
        acn_reset(ctx);
        loss = acn_cross_entropy(ctx, paths_library(ctx, &net, wiring, paths_input(ctx, &net, xb, b)), yb, 0.0f, -1);
        acn_zero_grad(ctx);
        if (!loss || acn_backward(ctx, loss) || acn_clip_grad_norm(ctx, 1.0f, NULL) ||
            acn_adamw_step(ctx, &opt, acn_lr_at(&sched, step)))
            break;
    }
    if (!acn_status_of(ctx)) *acc = paths_accuracy(ctx, &net, wiring, o->xte, o->yte, o->nte);
    if (acn_status_of(ctx)) {
        fprintf(stderr, "gradient_paths: the %s %s, step %d: %s\n", acn_wiring_name(wiring), what, step, acn_error(ctx));
        rc = 1;
    }
    free(scratch);
    acn_sampler_free(&smp);
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
    return rc;
}

/* The CSV, the table and the SVG of one model. Returns 0, or 1 after
 * printing the error. */
static int paths_report(const char *outdir, const char *name, const char *title, const paths_opts *o, int L,
                        paths_row rows[3][PATHS_NSTEPS], const float *acc)
{
    svg_curve curves[3][2 * PATHS_NSTEPS];
    float vals[3][2 * PATHS_NSTEPS][PATHS_MAXL];
    const svg_curve *cp[3];
    const char *titles[3];
    char labels[PATHS_NSTEPS][32], path[1024], head[200];
    int nc[3], w, k, i;
    FILE *csv;
    snprintf(path, sizeof path, "%s/%s.csv", outdir, name);
    if (!(csv = fopen(path, "w"))) {
        fprintf(stderr, "gradient_paths: cannot write %s: %s; give another folder with --out\n", path, strerror(errno));
        return 1;
    }
    fprintf(csv, "step,wiring,block,dg_norm,fg_norm,total_norm\n");
    for (w = 0; w < 3; w++)
        for (k = 0; k < o->n_at; k++)
            for (i = 0; i < L; i++)
                fprintf(csv, "%d,%s,%d,%.9g,%.9g,%.9g\n", o->at[k], acn_wiring_name(paths_wirings[w]), i + 1,
                        rows[w][k].dg[i], rows[w][k].fg[i], rows[w][k].total[i]);
    if (fclose(csv) != 0) {
        fprintf(stderr, "gradient_paths: cannot finish %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (w = 0; w < 3; w++) {
        printf("\n%s, %s (test accuracy after %d steps: %.1f%%): ||DG|| and ||FG|| per block\n", title,
               acn_wiring_name(paths_wirings[w]), o->steps, acc[w]);
        printf("block");
        for (k = 0; k < o->n_at; k++) printf(" | step %-5d DG       FG", o->at[k]);
        printf("\n");
        for (i = 0; i < L; i++) {
            printf("%5d", i + 1);
            for (k = 0; k < o->n_at; k++) printf(" | %11.2e %8.2e", rows[w][k].dg[i], rows[w][k].fg[i]);
            printf("\n");
        }
    }
    for (w = 0; w < 3; w++) {
        for (k = 0; k < o->n_at; k++) {
            snprintf(labels[k], sizeof labels[k], "step %d", o->at[k]);
            for (i = 0; i < L; i++) {
                vals[w][2 * k][i] = (float)rows[w][k].dg[i];
                vals[w][2 * k + 1][i] = (float)rows[w][k].fg[i];
            }
            curves[w][2 * k].label = labels[k];
            curves[w][2 * k].y = vals[w][2 * k];
            curves[w][2 * k].n = L;
            curves[w][2 * k].color = k;
            curves[w][2 * k].dashed = 0;
            curves[w][2 * k + 1] = curves[w][2 * k];
            curves[w][2 * k + 1].label = NULL;
            curves[w][2 * k + 1].y = vals[w][2 * k + 1];
            curves[w][2 * k + 1].dashed = 1;
        }
        cp[w] = curves[w];
        nc[w] = 2 * o->n_at;
        titles[w] = acn_wiring_name(paths_wirings[w]);
    }
    snprintf(path, sizeof path, "%s/%s.svg", outdir, name);
    snprintf(head, sizeof head, "%s: gradient of each block's parameters, ||DG|| solid, ||FG|| dashed", title);
    if (svg_log_panels(path, head, "block", "gradient norm (log scale)", titles, cp, nc, 3)) {
        fprintf(stderr, "gradient_paths: cannot write %s: %s; give another folder with --out\n", path, strerror(errno));
        return 1;
    }
    printf("wrote %s/%s.csv and %s/%s.svg\n", outdir, name, outdir, name);
    return 0;
}

static void paths_usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [--steps N (400)] [--model mlp|mixer|both (both)] [--depth L (12, at most %d)]\n"
            "          [--width W (128)] [--threads T (1)] [--seed S (1)] [--out DIR (gradient-paths-out)]\n"
            "Trains plain, residual and ACN networks on the UCI digits for N steps (the deep MLP, of depth L\n"
            "and width W, and a small MLP-Mixer of 8 blocks of width 32) and, at steps 0, N/8, N/4, N/2 and N,\n"
            "splits the gradient of each block's parameters into the part through its own long connection to\n"
            "the output (DG) and the part through the blocks above it (FG). Writes DIR/mlp.csv, DIR/mlp.svg,\n"
            "DIR/mixer.csv and DIR/mixer.svg and prints a table; exits 1 if the two ways of measuring DG\n"
            "disagree.\n",
            argv0, PATHS_MAXL);
}

/* a whole number in 1..max, or -1 */
static int paths_int(const char *s, int max)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max) return -1;
    return (int)v;
}

int main(int argc, char **argv)
{
    static float xtr[DIGITS_N * 64], xte[DIGITS_N * 64]; /* (n, 64) */
    static int ytr[DIGITS_N], yte[DIGITS_N];
    static paths_row rows[3][PATHS_NSTEPS];
    float acc[3];
    paths_opts o;
    const char *outdir = "gradient-paths-out", *model = "both";
    int i, k, w, m, L = 0, bad = 0, ntr = 0, nte = 0;
    clock_t t0 = clock();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line as it comes, in order with the errors */
    (void)svg_line_chart; /* svg.h's other writers: not used here */
    (void)svg_heat_map;
    memset(&o, 0, sizeof o);
    o.steps = 400;
    o.depth = 12;
    o.width = 128;
    o.threads = 1;
    o.seed = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = NULL, max = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            paths_usage(stdout, argv[0]);
            return 0;
        }
        if (!strcmp(a, "--steps")) { dst = &o.steps; max = 1000000; }
        else if (!strcmp(a, "--depth")) { dst = &o.depth; max = PATHS_MAXL; }
        else if (!strcmp(a, "--width")) { dst = &o.width; max = 1024; }
        else if (!strcmp(a, "--threads")) { dst = &o.threads; max = 256; }
        if (dst) {
            if (!v || (*dst = paths_int(v, max)) < 0) {
                fprintf(stderr, "gradient_paths: %s needs a whole number from 1 to %d, not '%s'; try --help\n", a, max,
                        v ? v : "(nothing)");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--model")) {
            if (!v || (strcmp(v, "mlp") && strcmp(v, "mixer") && strcmp(v, "both"))) {
                fprintf(stderr, "gradient_paths: --model takes mlp, mixer or both, not '%s'\n", v ? v : "(nothing)");
                return 2;
            }
            model = argv[++i];
        } else if (!strcmp(a, "--seed") && v) {
            char *end;
            errno = 0;
            o.seed = (uint64_t)strtoull(v, &end, 10);
            if (errno || end == v || *end || *v == '-') {
                fprintf(stderr, "gradient_paths: --seed needs a whole number, not '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--out") && v && *v) {
            outdir = argv[++i];
        } else {
            fprintf(stderr, "gradient_paths: unknown flag, bad value or missing value: '%s'%s%s%s; try --help\n", a,
                    v ? " '" : "", v ? v : "", v ? "'" : "");
            return 2;
        }
    }
    digits_split(xtr, ytr, &ntr, xte, yte, &nte); /* every fifth image for testing */
    o.xtr = xtr; o.ytr = ytr; o.ntr = ntr;
    o.xte = xte; o.yte = yte; o.nte = nte;
    { /* measured at 0, N/8, N/4, N/2, N, each once */
        int want[PATHS_NSTEPS];
        want[0] = 0; want[1] = o.steps / 8; want[2] = o.steps / 4; want[3] = o.steps / 2; want[4] = o.steps;
        for (k = 0; k < PATHS_NSTEPS; k++)
            if (o.n_at == 0 || want[k] > o.at[o.n_at - 1]) o.at[o.n_at++] = want[k];
    }
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gradient_paths: cannot create the folder %s: %s; give another with --out\n", outdir,
                strerror(errno));
        return 1;
    }
    {
        struct stat st;
        if (stat(outdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "gradient_paths: %s is not a folder; give another with --out\n", outdir);
            return 1;
        }
    }
    printf("UCI digits: %d training and %d test images; %d steps of AdamW (batch %d) per network;\n"
           "gradients measured on the first %d training images\n\n",
           ntr, nte, o.steps, PATHS_BATCH, PATHS_MEASURE_N);
    for (m = 0; m < 2; m++) {
        char title[96];
        if ((m == 0 && !strcmp(model, "mixer")) || (m == 1 && !strcmp(model, "mlp"))) continue;
        for (w = 0; w < 3; w++) {
            if (paths_run(m, paths_wirings[w], &o, rows[w], &acc[w], &L)) return 1;
            for (k = 0; k < o.n_at; k++) bad |= !(rows[w][k].agree <= 1e-4);
        }
        if (m == 0) snprintf(title, sizeof title, "MLP of %d blocks of width %d", L, o.width);
        else snprintf(title, sizeof title, "Mixer of %d blocks of width 32", L);
        if (paths_report(outdir, m ? "mixer" : "mlp", title, &o, L, rows, acc)) return 1;
        printf("\n");
    }
    printf("DG: the part of a block's gradient that comes through its own long connection to the output\n"
           "(ACN: its term of the sum; residual MLP: the identity path; plain, and the residual Mixer whose\n"
           "blocks end in LayerNorm: the top block only). FG: the part that comes through the blocks above.\n"
           "Norms over all the block's parameters. Done in %.1f s of CPU time.\n",
           (double)(clock() - t0) / CLOCKS_PER_SEC);
    if (bad) {
        fprintf(stderr, "gradient_paths: the two ways of measuring DG differ by more than 1e-4 (the lines above\n"
                        "say where); this is a bug in acn.h or in this program\n");
        return 1;
    }
    return 0;
}
#endif
