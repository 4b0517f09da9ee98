/* Misuse through the public API, each case checked for its clear error
 * (run.sh also runs it under AddressSanitizer and UBSan, where a case that
 * read freed or foreign memory would abort):
 *   - tensors that are gone: kept past acn_reset, past acn_mark_rewind, a
 *     mark from an earlier step; tensors and parameters of another context;
 *   - one context called from two threads while a call is running;
 *   - a loop that forgets acn_reset: backward costs one step, and the
 *     arena-full message names acn_reset;
 *   - NULL contexts, structs, shapes, labels; shapes that overflow;
 *     context creation that fails, with its reason;
 *   - a probes array shorter than k + 1; custom ops that fail. */
#define ACN_IMPLEMENTATION
#include "../acn.h"
#include "test.h"
#ifdef ACN__THREADS
#include <pthread.h>
#endif

static int has(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

/* a tiny model: loss = mean(relu(x W^T + b)) for x (2, 4), W (3, 4) */
static acn_tensor *tiny_loss(acn_ctx *c, acn_tensor *W, acn_tensor *b)
{
    int xs[2] = {2, 4};
    float xv[8] = {1, -2, 3, 0.5f, -1, 2, 0.25f, 1};
    acn_tensor *x = acn_input(c, 2, xs, xv);
    return acn_mean(c, acn_relu(c, acn_linear(c, x, W, b)), ACN_AXIS_ALL);
}
static void tiny_params(acn_ctx *c, acn_tensor **W, acn_tensor **b)
{
    int ws[2] = {3, 4}, bs[1] = {3};
    int i;
    *W = acn_param(c, "fc.weight", 2, ws);
    *b = acn_param(c, "fc.bias", 1, bs);
    for (i = 0; i < 12; i++) (*W)->data[i] = 0.1f * (float)(i % 5) - 0.15f;
    for (i = 0; i < 3; i++) (*b)->data[i] = 0.05f * (float)i;
}
/* ---- tensors that are gone ------------------------------------------------ */
static void test_stale(void)
{
    acn_ctx *c;
    acn_tensor *W, *b, *loss1, *loss2, *t, *u;
    acn_mark m;
    int s1[1] = {4};
    float v;
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "stale: a context");
    tiny_params(c, &W, &b);
    loss1 = tiny_loss(c, W, b);
    CHECK(loss1 && acn_backward(c, loss1) == ACN_OK, "step 1: %s", acn_error(c));
    v = loss1->data[0];
    acn_reset(c);
    /* step 2 is laid out as step 1 was: loss1 is not mistaken for loss2 */
    loss2 = tiny_loss(c, W, b);
    CHECK(loss2 && loss2 != loss1 && loss2->data[0] == v, "step 2 computes the same loss at another address");
    CHECK(!acn_add(c, loss2, loss1) && acn_status_of(c) == ACN_ERR_STATE &&
              has(acn_error(c), "add: input 1 was made before the last acn_reset"),
          "the previous step's loss in an op: %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_backward(c, loss1) == ACN_ERR_STATE && has(acn_error(c), "backward: input 0 was made before the last acn_reset"),
          "backward on the previous step's loss: %s", acn_error(c));
    acn_clear_error(c);
    CHECK(!acn_data(c, loss1) && acn_status_of(c) == ACN_ERR_STATE, "acn_data of the previous step's loss: %s",
          acn_error(c));
    acn_clear_error(c);
    CHECK(acn_backward(c, loss2) == ACN_OK, "this step's loss still works: %s", acn_error(c));
    /* a stale optional input (a bias) is caught before its shape is read */
    t = acn_new(c, 1, (int[]){3}, 0);
    acn_reset(c);
    u = acn_new(c, 2, (int[]){2, 4}, 0);
    CHECK(!acn_linear(c, u, W, t) && acn_status_of(c) == ACN_ERR_STATE && has(acn_error(c), "linear: input 2"),
          "a stale bias: %s", acn_error(c));
    acn_clear_error(c);
    /* past a rewind: an evaluation loop that keeps a tensor from the pass before */
    acn_reset(c);
    m = acn_mark_get(c);
    t = acn_relu(c, acn_new(c, 1, s1, 0));
    acn_mark_rewind(c, m);
    CHECK(!acn_relu(c, t) && has(acn_error(c), "relu: input 0 was made after an acn_mark and is gone since acn_mark_rewind"),
          "a tensor past a rewind, before anything new: %s", acn_error(c));
    acn_clear_error(c);
    u = acn_relu(c, acn_new(c, 1, s1, 0)); /* the next pass makes the same tensors */
    CHECK(u && u != t, "the next pass's tensor is at another address");
    CHECK(!acn_add(c, u, t) && acn_status_of(c) == ACN_ERR_STATE && has(acn_error(c), "acn_mark_rewind"),
          "the pass before's tensor, after the next pass made its own: %s", acn_error(c));
    acn_clear_error(c);
    /* a mark from before the reset */
    acn_reset(c);
    acn_new(c, 1, s1, 0);
    acn_mark_rewind(c, m);
    CHECK(acn_status_of(c) == ACN_ERR_STATE && has(acn_error(c), "mark_rewind: the mark was taken before the last acn_reset"),
          "a mark from the step before: %s", acn_error(c));
    acn_clear_error(c);
    acn_ctx_free(c);
}

static void test_foreign(void)
{
    acn_ctx *c1 = NULL, *c2 = NULL;
    acn_tensor *W1, *b1, *W2, *b2, *x1, *x2, *loss2;
    float g;
    int s1[1] = {4};
    CHECK(acn_ctx_new(&c1, NULL) == ACN_OK && acn_ctx_new(&c2, NULL) == ACN_OK, "foreign: two contexts");
    if (!c1 || !c2) return;
    tiny_params(c1, &W1, &b1);
    tiny_params(c2, &W2, &b2);
    x1 = acn_new(c1, 1, s1, 0);
    x2 = acn_new(c2, 1, s1, 0);
    CHECK(!acn_add(c1, x1, x2) && acn_status_of(c1) == ACN_ERR_STATE &&
              has(acn_error(c1), "add: input 1 is not a tensor of this context: it belongs to another context"),
          "an arena tensor of another context: %s", acn_error(c1));
    acn_clear_error(c1);
    CHECK(!tiny_loss(c1, W2, b1) && has(acn_error(c1), "linear: input 1 is not a tensor of this context"),
          "a parameter of another context: %s", acn_error(c1));
    acn_clear_error(c1);
    CHECK(!tiny_loss(c1, W1, b2) && has(acn_error(c1), "linear: input 2 is not a tensor of this context"),
          "a bias of another context: %s", acn_error(c1));
    acn_clear_error(c1);
    loss2 = tiny_loss(c2, W2, b2);
    acn_zero_grad(c1);
    acn_zero_grad(c2);
    CHECK(loss2 && acn_backward(c1, loss2) == ACN_ERR_STATE && has(acn_error(c1), "backward: input 0 is not a tensor"),
          "backward in one context on another's loss: %s", acn_error(c1));
    g = W2->grad[0];
    CHECK(g == 0.0f, "and the other context's gradients are untouched (%g)", (double)g);
    acn_clear_error(c1);
    acn_ctx_free(c1);
    acn_ctx_free(c2);
}

/* ---- two threads ---------------------------------------------------------- */
#ifdef ACN__THREADS
typedef struct hold { acn_ctx *ctx; acn_tensor *x; int inside, release; acn_tensor *got; acn_status bst; float dout[4]; } hold;
static acn_status hold_fwd(acn_ctx *c, acn_tensor *const *in, int n, acn_tensor *out, void *user)
{
    hold *h = (hold *)user;
    (void)c; (void)n;
    memcpy(out->data, in[0]->data, in[0]->numel * sizeof(float));
    __atomic_store_n(&h->inside, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&h->release, __ATOMIC_SEQ_CST)) { /* the call stays open */ }
    return ACN_OK;
}
static acn_status hold_bwd(acn_ctx *c, acn_tensor *const *in, int n, acn_tensor *out, void *user)
{
    (void)c; (void)in; (void)n; (void)out; (void)user;
    return ACN_OK;
}
static void *second_thread(void *arg)
{
    hold *h = (hold *)arg;
    while (!__atomic_load_n(&h->inside, __ATOMIC_SEQ_CST)) { }
    h->got = acn_relu(h->ctx, h->x);          /* while the custom op runs */
    h->bst = acn_backward_with(h->ctx, h->x, h->dout);
    acn_reset(h->ctx);                         /* refused: must not empty the arena */
    __atomic_store_n(&h->release, 1, __ATOMIC_SEQ_CST);
    return NULL;
}
static void test_threads(void)
{
    acn_ctx *c;
    hold h;
    pthread_t th;
    acn_tensor *y;
    int s1[1] = {4};
    float v[4] = {1, -2, 3, -4};
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "threads: a context");
    acn_set_threads(c, 1);
    memset(&h, 0, sizeof h);
    h.ctx = c;
    h.x = acn_input(c, 1, s1, v);
    CHECK(pthread_create(&th, NULL, second_thread, &h) == 0, "a second thread");
    y = acn_custom_ex(c, "hold", &h.x, 1, 1, s1, hold_fwd, hold_bwd, &h);
    pthread_join(th, NULL);
    CHECK(h.got == NULL && h.bst == ACN_ERR_STATE, "the second thread's calls fail (op %p, backward %s)",
          (void *)h.got, acn_status_name(h.bst));
    CHECK(acn_status_of(c) == ACN_ERR_STATE && has(acn_error(c), "called from a second thread"),
          "the context names the second thread's call: %s", acn_error(c));
    CHECK(!y, "and the op that was running reports the error too");
    acn_clear_error(c);
    /* nothing was damaged: the first thread goes on */
    y = acn_relu(c, h.x);
    CHECK(y && y->data[0] == 1.0f && y->data[1] == 0.0f && y->data[2] == 3.0f, "the context still works: %s",
          acn_error(c));
    acn_ctx_free(c);
}
#endif

/* ---- forgetting acn_reset --------------------------------------------------- */
static void test_no_reset(void)
{
    acn_ctx *c;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_tensor *W, *b, *loss;
    acn_stats st;
    size_t first = 0;
    int step, same = 1;
    cfg.arena_bytes = (size_t)256 << 10;
    CHECK(acn_ctx_new(&c, &cfg) == ACN_OK, "no reset: a context");
    tiny_params(c, &W, &b);
    for (step = 0; step < 100000 && acn_status_of(c) == ACN_OK; step++) {
        loss = tiny_loss(c, W, b);
        if (!loss || acn_backward(c, loss)) break;
        acn_stats_get(c, &st);
        if (!step) first = st.backward_nodes;
        same &= st.backward_nodes == first;
    }
    CHECK(first == 3 && same, "each backward visits one step's 3 nodes, not the tape of every step (%zu)", first);
    CHECK(acn_status_of(c) == ACN_ERR_ARENA && has(acn_error(c), "backward passes since the last acn_reset") &&
              has(acn_error(c), "call acn_reset(ctx) once per step"),
          "the full arena names the missing reset after %d steps: %s", step, acn_error(c));
    acn_clear_error(c);
    acn_reset(c);
    loss = tiny_loss(c, W, b);
    CHECK(loss && acn_backward(c, loss) == ACN_OK, "after a reset it trains again: %s", acn_error(c));
    acn_ctx_free(c);
}

/* ---- creation, probes, shapes, labels, custom ops ---------------------------- */
static acn_status fail_fwd(acn_ctx *c, acn_tensor *const *in, int n, acn_tensor *out, void *user)
{
    (void)in; (void)n; (void)out; (void)user;
    acn_set_error(c, ACN_ERR_FORMAT, "myop: the table it reads has %d rows, 3 expected", 2);
    return ACN_ERR_FORMAT;
}
static acn_status copy_fwd(acn_ctx *c, acn_tensor *const *in, int n, acn_tensor *out, void *user)
{
    (void)c; (void)n; (void)user;
    memcpy(out->data, in[0]->data, out->numel * sizeof(float));
    return ACN_OK;
}
static acn_status silent_bwd(acn_ctx *c, acn_tensor *const *in, int n, acn_tensor *out, void *user)
{
    (void)c; (void)in; (void)n; (void)out; (void)user;
    return ACN_ERR_NONFINITE;
}
static void test_creation_probes_custom(void)
{
    acn_ctx *c = (acn_ctx *)1;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_mlp m;
    acn_mlp_config mc = acn_mlp_defaults();
    acn_tensor *probes[ACN_MAX_BLOCKS + 1], *x, *y;
    char why[256];
    int xs[2] = {2, 64}, s4[1] = {4}, big[4] = {2147483647, 2147483647, 2147483647, -1};
    int labels[2] = {0, 1};
    cfg.arena_bytes = 100;
    CHECK(acn_ctx_new_ex(&c, &cfg, why, sizeof why) == ACN_ERR_ARG && !c && has(why, "ACN_ARENA_MIN = 4096"),
          "an arena under the minimum: %s", why);
    cfg = acn_ctx_defaults();
    cfg.max_params = 0;
    CHECK(acn_ctx_new_ex(&c, &cfg, why, sizeof why) == ACN_ERR_ARG && has(why, "max_params is 0"), "%s", why);
    CHECK(acn_ctx_new_ex(NULL, NULL, why, sizeof why) == ACN_ERR_ARG && has(why, "out is NULL"), "%s", why);
    CHECK(acn_ctx_new_ex(&c, NULL, why, sizeof why) == ACN_OK && c && why[0] == '\0', "a good one: %s", why);
    /* probes: the array's length is checked */
    mc.depth = 4;
    CHECK(acn_mlp_build(c, &m, &mc) == ACN_OK, "an MLP");
    x = acn_new(c, 2, xs, 0);
    CHECK(!acn_mlp_forward_ex(c, &m, x, -1, probes, 4) && acn_status_of(c) == ACN_ERR_ARG &&
              has(acn_error(c), "the probes array holds 4 tensors, but 4 blocks make k + 1 = 5 outputs"),
          "a probes array one short: %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_mlp_forward_ex(c, &m, x, 2, probes, 3) && probes[2], "k = 2 needs 3: %s", acn_error(c));
    y = acn_mlp_forward_ex(c, &m, x, -1, probes, ACN_MAX_BLOCKS + 1);
    CHECK(y && y == probes[4], "the full array: %s", acn_error(c));
    CHECK(acn_mlp_forward(c, &m, x, -1, probes) != NULL, "the older form still works: %s", acn_error(c));
    { /* anytime inference: a missing or bad rule, buffers, the model and the modes */
        float lg[20];
        int bl[2], was_train = acn_set_train(c, 1), was_nograd = acn_set_no_grad(c, 0);
        acn_exit_rule r = acn_exit_confidence(NAN);
        acn_mixer mx;
        CHECK(acn_mlp_anytime(c, &m, x, NULL, lg, bl) == ACN_ERR_ARG && has(acn_error(c), "the exit rule is NULL"),
              "anytime without a rule: %s", acn_error(c));
        acn_clear_error(c);
        CHECK(acn_mlp_anytime(c, &m, x, &r, lg, bl) == ACN_ERR_ARG && has(acn_error(c), "a threshold >= 0"),
              "anytime with a NaN threshold: %s", acn_error(c));
        acn_clear_error(c);
        r = acn_exit_stable(0);
        CHECK(acn_mlp_anytime(c, &m, x, &r, lg, bl) == ACN_ERR_ARG && has(acn_error(c), "a patience >= 1"),
              "anytime with patience 0: %s", acn_error(c));
        acn_clear_error(c);
        r = acn_exit_custom(NULL, NULL);
        CHECK(acn_mlp_anytime(c, &m, x, &r, lg, bl) == ACN_ERR_ARG && has(acn_error(c), "fn NULL"),
              "anytime with a custom rule and no function: %s", acn_error(c));
        acn_clear_error(c);
        r = acn_exit_confidence(0.5f);
        r.min_blocks = -1;
        CHECK(acn_mlp_anytime(c, &m, x, &r, lg, bl) == ACN_ERR_ARG && has(acn_error(c), "min_blocks >= 0"),
              "anytime with min_blocks -1: %s", acn_error(c));
        acn_clear_error(c);
        r.min_blocks = 0;
        CHECK(acn_mlp_anytime(c, &m, x, &r, NULL, bl) == ACN_ERR_ARG && has(acn_error(c), "the logits buffer"),
              "anytime with no logits buffer: %s", acn_error(c));
        acn_clear_error(c);
        CHECK(acn_mixer_anytime(c, NULL, x, &r, lg, bl) == ACN_ERR_ARG &&
                  has(acn_error(c), "mixer_anytime: the model is NULL"), "anytime without a model: %s", acn_error(c));
        acn_clear_error(c);
        CHECK(acn_vit_anytime(NULL, NULL, NULL, &r, lg, bl) == ACN_ERR_ARG, "anytime without a context");
        memset(&mx, 0, sizeof mx);
        mx.cfg = acn_mixer_defaults();
        CHECK(acn_mixer_anytime(c, &mx, x, &r, lg, bl) == ACN_ERR_SHAPE && has(acn_error(c), "the model takes (B, 3, 32, 32)"),
              "anytime on images of the wrong shape: %s", acn_error(c));
        acn_clear_error(c);
        CHECK(acn_mlp_anytime(c, &m, x, &r, lg, NULL) == ACN_OK, "anytime without a blocks array: %s", acn_error(c));
        CHECK(acn_set_train(c, was_train) == 1 && acn_set_no_grad(c, was_nograd) == 0,
              "anytime gives the caller's modes back");
    }
    /* reshape whose known sizes overflow */
    CHECK(!acn_reshape(c, x, 4, big) && acn_status_of(c) == ACN_ERR_SHAPE && has(acn_error(c), "cannot hold"),
          "reshape to (2^31-1)^3 x -1: %s", acn_error(c));
    acn_clear_error(c);
    /* NULL labels say so */
    CHECK(!acn_cross_entropy(c, y, NULL, 0.0f, -1) && has(acn_error(c), "cross_entropy: labels is NULL"),
          "NULL labels: %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_cross_entropy(c, y, labels, 0.0f, -1) != NULL, "good labels: %s", acn_error(c));
    /* custom ops that fail: with their own message, or with the code alone */
    x = acn_new(c, 1, s4, ACN_F_GRAD);
    CHECK(!acn_custom_ex(c, "myop", &x, 1, 1, s4, fail_fwd, silent_bwd, NULL) && acn_status_of(c) == ACN_ERR_FORMAT &&
              has(acn_error(c), "myop: the table it reads has 2 rows"),
          "a custom forward that fails: %s", acn_error(c));
    acn_clear_error(c);
    y = acn_custom_ex(c, "quiet", &x, 1, 1, s4, copy_fwd, silent_bwd, NULL);
    CHECK(y && acn_backward(c, acn_sum(c, y, ACN_AXIS_ALL)) == ACN_ERR_NONFINITE &&
              has(acn_error(c), "custom op 'quiet': its backward returned ACN_ERR_NONFINITE"),
          "a custom backward that fails: %s", acn_error(c));
    acn_clear_error(c);
    CHECK(!acn_custom_ex(c, "nofn", &x, 1, 1, s4, NULL, silent_bwd, NULL) && has(acn_error(c), "needs a forward"),
          "a custom op without a forward: %s", acn_error(c));
    acn_clear_error(c);
    acn_set_error(c, ACN_OK, "x");
    CHECK(acn_status_of(c) == ACN_ERR_ARG, "acn_set_error with ACN_OK sets ACN_ERR_ARG");
    acn_clear_error(c);
    acn_ctx_free(c);
}

/* ---- NULL contexts and structs: every public function that takes one ------- */
static void test_null_sweep(void)
{
    acn_tensor *t[2] = {NULL, NULL};
    acn_adamw opt;
    acn_sgd sgd;
    acn_mlp mlp;
    acn_mixer mixer;
    acn_vit vit;
    acn_bert bert;
    acn_gradcheck_result gr;
    acn_mark mk;
    float norm;
    int s1[1] = {4};
    memset(&opt, 0, sizeof opt);
    memset(&sgd, 0, sizeof sgd);
    CHECK(acn_status_of(NULL) == ACN_ERR_ARG && has(acn_error(NULL), "no context"), "status and error of NULL");
    acn_clear_error(NULL);
    acn_set_error(NULL, ACN_ERR_ARG, "x");
    acn_ctx_free(NULL);
    CHECK(acn_set_no_grad(NULL, 1) == 0 && acn_set_train(NULL, 1) == 0 && acn_set_check_finite(NULL, 1) == 0,
          "mode setters on NULL return 0");
    CHECK(acn_set_simd(NULL, ACN_SIMD_PORTABLE) == ACN_SIMD_PORTABLE && acn_simd(NULL) == ACN_SIMD_PORTABLE,
          "SIMD on NULL: portable");
    CHECK(acn_set_threads(NULL, 2) == ACN_ERR_ARG && acn_threads(NULL) == 1, "threads on NULL");
    CHECK(!acn_param(NULL, "w", 1, s1) && !acn_param_find(NULL, "w") && !acn_params(NULL, NULL) &&
              acn_param_numel(NULL) == 0, "parameters on NULL");
    acn_param_set_decay(NULL, 0);
    CHECK(!acn_new(NULL, 1, s1, 0) && !acn_input(NULL, 1, s1, NULL) && !acn_data(NULL, NULL), "tensors on NULL");
    mk = acn_mark_get(NULL);
    acn_mark_rewind(NULL, mk);
    CHECK(!acn_add(NULL, NULL, NULL) && !acn_scale(NULL, NULL, 1.0f) && !acn_add_n(NULL, t, 2) &&
              !acn_sum(NULL, NULL, 0) && !acn_matmul(NULL, NULL, NULL, 0, 0) && !acn_linear(NULL, NULL, NULL, NULL) &&
              !acn_linear_mid(NULL, NULL, NULL, NULL) && !acn_linear_gelu(NULL, NULL, NULL, NULL, 0) &&
              !acn_ffn(NULL, NULL, NULL, NULL, NULL, NULL, 0) && !acn_linear_add_relu(NULL, NULL, NULL, NULL, NULL) &&
              !acn_gelu(NULL, NULL) && !acn_softmax(NULL, NULL, NULL) &&
              !acn_cross_entropy(NULL, NULL, NULL, 0.0f, -1) && !acn_cross_entropy_soft(NULL, NULL, NULL, 0.0f) &&
              !acn_layernorm(NULL, NULL, NULL, NULL, 1e-5f) && !acn_transpose(NULL, NULL, 0, 1) &&
              !acn_reshape(NULL, NULL, 1, s1) && !acn_concat(NULL, t, 2, 0) && !acn_slice(NULL, NULL, 0, 0, 1) &&
              !acn_patches(NULL, NULL, 2) && !acn_embedding(NULL, NULL, NULL, 1, s1) && !acn_dropout(NULL, NULL, 0.1f) &&
              !acn_attention(NULL, NULL, NULL, NULL, 1, NULL) && !acn_attention_qkv(NULL, NULL, 1, NULL) &&
              !acn_detach(NULL, NULL) && !acn_custom_ex(NULL, "c", t, 0, 1, s1, copy_fwd, silent_bwd, NULL),
          "every op on NULL returns NULL");
    CHECK(acn_backward(NULL, NULL) == ACN_ERR_ARG && acn_backward_with(NULL, NULL, NULL) == ACN_ERR_ARG,
          "backward on NULL");
    CHECK(acn_gradcheck(NULL, NULL, NULL, t, 0, NULL, &gr) == ACN_ERR_ARG, "gradcheck on NULL");
    CHECK(acn_adamw_init(NULL, &opt, 0.9f, 0.999f, 1e-8f, 0.0f) == ACN_ERR_ARG &&
              acn_adamw_step(NULL, &opt, 0.1f) == ACN_ERR_ARG && acn_sgd_init(NULL, &sgd, 0.0f, 0.0f, 0.0f, 0) == ACN_ERR_ARG &&
              acn_sgd_step(NULL, &sgd, 0.1f) == ACN_ERR_ARG && acn_clip_grad_norm(NULL, 1.0f, &norm) == ACN_ERR_ARG,
          "optimizers on NULL");
    acn_adamw_free(NULL);
    acn_sgd_free(NULL);
    CHECK(acn_mlp_build(NULL, &mlp, NULL) == ACN_ERR_ARG && acn_mixer_build(NULL, &mixer, NULL) == ACN_ERR_ARG &&
              acn_vit_build(NULL, &vit, NULL) == ACN_ERR_ARG && acn_bert_build(NULL, &bert, NULL) == ACN_ERR_ARG,
          "builds on NULL");
    CHECK(!acn_mlp_forward_ex(NULL, NULL, NULL, -1, NULL, 0) && !acn_mixer_forward_ex(NULL, NULL, NULL, -1, NULL, 0) &&
              !acn_vit_forward_ex(NULL, NULL, NULL, -1, NULL, 0) &&
              !acn_bert_forward_ex(NULL, NULL, NULL, NULL, 1, 1, 0, -1, NULL, 0) && !acn_bert_mlm(NULL, NULL, NULL),
          "forwards on NULL");
    CHECK(acn_init_normal(NULL, NULL, 0.0f, 1.0f) == ACN_ERR_ARG && acn_init_zeros(NULL, NULL) == ACN_ERR_ARG,
          "initialisers on NULL");
}
static void test_null_args(void)
{
    acn_ctx *c = NULL;
    acn_stats st;
    acn_adamw opt;
    int xs[2] = {2, 64}, ws[2] = {3, 4};
    acn_tensor *x, *W;
    CHECK(acn_ctx_new(&c, NULL) == ACN_OK, "null args: a context");
    acn_reset(NULL);
    acn_zero_grad(NULL);
    memset(&opt, 0, sizeof opt);
    memset(&st, 0x5a, sizeof st);
    acn_stats_get(NULL, &st);
    CHECK(st.arena_used == 0 && st.n_params == 0 && st.tape_nodes == 0, "acn_stats_get(NULL): the stats are zeroed");
    acn_stats_get(c, NULL);
    W = acn_param(c, "w", 2, ws);
    CHECK(acn_init_linear(NULL, W, NULL) == ACN_ERR_ARG, "acn_init_linear(NULL, ...) returns ACN_ERR_ARG");
    CHECK(acn_adamw_step(NULL, &opt, 0.1f) == ACN_ERR_ARG, "acn_adamw_step(NULL, ...) returns ACN_ERR_ARG");
    CHECK(acn_save_cut(NULL, "build/x.safetensors", 0, NULL, 0) == ACN_ERR_ARG, "acn_save_cut(NULL, ...)");
    CHECK(acn_save_cut(c, NULL, 0, NULL, 0) == ACN_ERR_ARG && has(acn_error(c), "save_cut: path is NULL"),
          "acn_save_cut with a NULL path: %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_save_cut(c, "build/x.safetensors", -1, NULL, 0) == ACN_ERR_ARG && has(acn_error(c), "k must be"),
          "acn_save_cut with k = -1: %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_save_cut(c, "build/x.safetensors", 0, NULL, 1) == ACN_ERR_ARG && has(acn_error(c), "kv is NULL"),
          "acn_save_cut with metadata but no kv: %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_adamw_step(c, NULL, 0.1f) == ACN_ERR_ARG && has(acn_error(c), "adamw: the optimizer is NULL"),
          "acn_adamw_step(ctx, NULL): %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_sgd_step(c, NULL, 0.1f) == ACN_ERR_ARG && has(acn_error(c), "sgd: the optimizer is NULL"),
          "acn_sgd_step(ctx, NULL): %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_adamw_init(c, NULL, 0.9f, 0.999f, 1e-8f, 0.0f) == ACN_ERR_ARG &&
          has(acn_error(c), "adamw_init: the optimizer struct is NULL"), "acn_adamw_init(ctx, NULL): %s", acn_error(c));
    acn_clear_error(c);
    CHECK(acn_sgd_init(c, NULL, 0.9f, 0.0f, 0.0f, 0) == ACN_ERR_ARG &&
          has(acn_error(c), "sgd_init: the optimizer struct is NULL"), "acn_sgd_init(ctx, NULL): %s", acn_error(c));
    acn_clear_error(c);
    x = acn_new(c, 2, xs, 0);
    CHECK(!acn_mlp_forward(c, NULL, x, -1, NULL) && acn_status_of(c) == ACN_ERR_ARG &&
          has(acn_error(c), "mlp_forward: the model is NULL"), "acn_mlp_forward(ctx, NULL, ...): %s", acn_error(c));
    acn_clear_error(c);
    CHECK(!acn_mixer_forward(c, NULL, x, -1, NULL) && has(acn_error(c), "mixer_forward: the model is NULL"),
          "acn_mixer_forward(ctx, NULL, ...): %s", acn_error(c));
    acn_clear_error(c);
    CHECK(!acn_vit_forward(c, NULL, x, -1, NULL) && has(acn_error(c), "vit_forward: the model is NULL"),
          "acn_vit_forward(ctx, NULL, ...): %s", acn_error(c));
    acn_clear_error(c);
    CHECK(!acn_bert_forward(c, NULL, NULL, NULL, 1, 1, 0, -1, NULL) && has(acn_error(c), "bert_forward: the model is NULL"),
          "acn_bert_forward(ctx, NULL, ...): %s", acn_error(c));
    acn_clear_error(c);
    CHECK(!acn_mlp_forward(NULL, NULL, NULL, -1, NULL), "acn_mlp_forward(NULL, NULL, ...) returns NULL");
    { /* shapes: NULL, too many dimensions, an element count that overflows */
        int big[4] = {65536, 65536, 65536, 65536}, five[5] = {1, 1, 1, 1, 1};
        CHECK(!acn_new(c, 2, NULL, 0) && acn_status_of(c) == ACN_ERR_ARG &&
              has(acn_error(c), "the shape is NULL for 2 dimensions"), "acn_new with a NULL shape: %s", acn_error(c));
        acn_clear_error(c);
        CHECK(!acn_new(c, 5, five, 0) && acn_status_of(c) == ACN_ERR_SHAPE &&
              has(acn_error(c), "5 dimensions; acn.h tensors have 0 to 4"), "acn_new with 5 dimensions: %s", acn_error(c));
        acn_clear_error(c);
        CHECK(!acn_new(c, 4, big, 0) && acn_status_of(c) == ACN_ERR_SHAPE &&
              has(acn_error(c), "more elements than an address space holds"), "65536^4 elements: %s", acn_error(c));
        acn_clear_error(c);
        CHECK(!acn_param(c, "big", 4, big) && acn_status_of(c) == ACN_ERR_SHAPE, "a 65536^4 parameter: %s",
              acn_error(c));
        acn_clear_error(c);
        /* acn_data of NULL says so, and keeps an earlier op's error */
        CHECK(!acn_data(c, NULL) && acn_status_of(c) == ACN_ERR_ARG && has(acn_error(c), "data: the tensor is NULL"),
              "acn_data(ctx, NULL): %s", acn_error(c));
        acn_clear_error(c);
        CHECK(!acn_data(c, acn_new(c, 4, big, 0)) && has(acn_error(c), "more elements than"),
              "acn_data after a failed op keeps its error: %s", acn_error(c));
        acn_clear_error(c);
    }
    acn_ctx_free(c);
}

int main(void)
{
    test_stale();
    test_foreign();
#ifdef ACN__THREADS
    test_threads();
#else
    printf("skip  the two-thread case: this build has no threads\n");
#endif
    test_no_reset();
    test_creation_probes_custom();
    test_null_sweep();
    test_null_args();
    return t_done("misuse");
}
