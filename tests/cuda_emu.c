/* An emulated GPU unit: the acn__cu_* functions of acn_cuda.cu written as
 * plain loops on the host, so that the device context of acn.h (everything
 * above the kernels: memory, dispatch, copies, reading values back) runs
 * and is tested on a machine without a GPU (tests/test_cuda.c, built with
 * -DACN_CUDA and this file instead of acn_cuda.o; docs/cuda.md).
 *
 * "Device" memory is host memory, but the pointers handed out are moved by
 * EMU_OFF = 2^46 bytes, which puts them outside the addresses a user-space
 * x86-64 or AArch64 process can have: acn.h reading or writing a device
 * pointer as if it were host memory faults at once, where a real GPU
 * would silently read garbage or crash later. The kernels below move the
 * pointers back before they touch them. tests/test_cuda.c includes this
 * file after acn.h's implementation; a program built with -DACN_CUDA links
 * it as its own translation unit instead of acn_cuda.o (test_programs.sh
 * trains that way). */
#ifndef ACN_H /* on its own: a translation unit beside a program built with -DACN_CUDA */
#define ACN__CUDA_UNIT 1
#include "../acn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#endif
#include <stdint.h>

#define EMU_OFF ((uintptr_t)1 << 46)
#define H(p) ((p) ? (void *)((uintptr_t)(p) - EMU_OFF) : NULL)  /* device -> host */
#define HF(p) ((float *)H(p))
#define HCF(p) ((const float *)H(p))
static void *HN(const void *p) { return (void *)((uintptr_t)p - EMU_OFF); } /* never NULL */

struct acn__cu {
    char msg[256];
};
static size_t emu_limit = (size_t)1 << 34; /* 16 GiB: a request beyond it fails as out of memory */

int acn__cu_devices(int *count, char *why, size_t why_cap)
{
    *count = 1;
    if (why && why_cap) why[0] = '\0';
    return ACN_OK;
}
int acn__cu_open(acn__cu **out, int ordinal, char *why, size_t why_cap)
{
    acn__cu *g;
    *out = NULL;
    if (ordinal != 0) {
        if (why && why_cap) snprintf(why, why_cap, "CUDA device %d does not exist: this machine has 1 (0..0)", ordinal);
        return ACN_ERR_ARG;
    }
    if (!(g = (acn__cu *)calloc(1, sizeof *g))) return ACN_ERR_NOMEM;
    *out = g;
    return ACN_OK;
}
void acn__cu_close(acn__cu *g) { free(g); }
const char *acn__cu_msg(const acn__cu *g) { return g ? g->msg : "no GPU unit"; }
const char *acn__cu_name(const acn__cu *g)
{
    (void)g;
    return "the emulated GPU of tests/cuda_emu.c (host loops; its pointers fault when read as host memory)";
}
int acn__cu_set_tf32(acn__cu *g, int on) { (void)g; (void)on; return ACN_OK; }
int acn__cu_sync(acn__cu *g, const char *what) { (void)g; (void)what; return ACN_OK; }
int acn__cu_alloc(acn__cu *g, void **p, size_t bytes, const char *what)
{
    void *h = NULL;
    *p = NULL;
    if (!bytes) return ACN_OK;
    if (bytes > emu_limit || !(h = malloc(bytes))) {
        snprintf(g->msg, sizeof g->msg, "%s: out of device memory for %zu bytes (emulated)", what, bytes);
        return ACN_ERR_NOMEM;
    }
    memset(h, 0xA5, bytes); /* like cudaMalloc's, what was there before: not zeros */
    *p = (void *)((uintptr_t)h + EMU_OFF);
    return ACN_OK;
}
void acn__cu_free(acn__cu *g, void *p)
{
    (void)g; /* it may be gone: the memory is the process's, as cudaFree's */
    if (!p) return;
    free(H(p));
}
int acn__cu_host_alloc(acn__cu *g, void **p, size_t bytes, const char *what)
{
    (void)g; (void)what;
    *p = bytes ? malloc(bytes) : NULL;
    return bytes && !*p ? ACN_ERR_NOMEM : ACN_OK;
}
void acn__cu_host_free(acn__cu *g, void *p) { (void)g; free(p); }
int acn__cu_copy(acn__cu *g, void *dst, const void *src, size_t bytes, int dir, const char *what)
{
    (void)g; (void)what;
    if (!bytes) return ACN_OK;
    memmove(dir == ACN__CU_D2H ? dst : HN(dst), dir == ACN__CU_H2D ? src : HN(src), bytes);
    return ACN_OK;
}
int acn__cu_zero(acn__cu *g, void *p, size_t bytes, const char *what)
{
    (void)g; (void)what;
    if (bytes) memset(HN(p), 0, bytes);
    return ACN_OK;
}
int acn__cu_fill(acn__cu *g, float *p, size_t n, float v, const char *what)
{
    size_t i;
    (void)g; (void)what;
    for (i = 0; i < n; i++) HF(p)[i] = v;
    return ACN_OK;
}
int acn__cu_axpy(acn__cu *g, size_t n, float a, const float *x, float *y, int accumulate, const char *what)
{
    size_t i;
    (void)g; (void)what;
    for (i = 0; i < n; i++) HF(y)[i] = accumulate ? HF(y)[i] + a * HCF(x)[i] : a * HCF(x)[i];
    return ACN_OK;
}
int acn__cu_add_n(acn__cu *g, const float *const *xs_h, int k, size_t n, float *out, const char *what)
{
    size_t i;
    int j;
    (void)g; (void)what;
    for (i = 0; i < n; i++) {
        float s = HCF(xs_h[0])[i];
        for (j = 1; j < k; j++) s += HCF(xs_h[j])[i];
        HF(out)[i] = s;
    }
    return ACN_OK;
}
static size_t emu_index(size_t o, const int n4[4], const size_t s[4])
{
    size_t rest = o, idx = 0;
    int d;
    for (d = 3; d >= 0; d--) {
        idx += (rest % (size_t)n4[d]) * s[d];
        rest /= (size_t)n4[d];
    }
    return idx;
}
int acn__cu_binary(acn__cu *g, int op, const int n4[4], const size_t sa[4], const size_t sb[4], const float *a,
                   const float *b, float *out, const char *what)
{
    size_t n = (size_t)n4[0] * n4[1] * n4[2] * n4[3], o;
    (void)g; (void)what;
    for (o = 0; o < n; o++) {
        float x = HCF(a)[emu_index(o, n4, sa)], y = HCF(b)[emu_index(o, n4, sb)];
        HF(out)[o] = op == ACN__CU_ADD ? x + y : op == ACN__CU_SUB ? x - y : x * y;
    }
    return ACN_OK;
}
int acn__cu_binary_bwd(acn__cu *g, int op, int second, const int n4[4], const size_t s_self[4],
                       const size_t s_other[4], size_t m, const float *d, const float *other, float *grad,
                       const char *what)
{
    size_t n = (size_t)n4[0] * n4[1] * n4[2] * n4[3], o;
    (void)g; (void)what; (void)m;
    for (o = 0; o < n; o++) {
        float v = HCF(d)[o];
        if (op == ACN__CU_MUL) v *= HCF(other)[emu_index(o, n4, s_other)];
        if (op == ACN__CU_SUB && second) v = -v;
        HF(grad)[emu_index(o, n4, s_self)] += v;
    }
    return ACN_OK;
}
static float emu_gelu(float x, int t)
{
    if (t) return 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
    return 0.5f * x * (1.0f + (float)erf((double)(x * 0.70710678f)));
}
static float emu_dgelu(float x, int t)
{
    if (t) {
        float u = 0.7978845608f * (x + 0.044715f * x * x * x), th = tanhf(u);
        return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
    }
    return 0.5f * (1.0f + (float)erf((double)(x * 0.70710678f))) + x * 0.39894228f * expf(-0.5f * x * x);
}
int acn__cu_unary(acn__cu *g, int op, size_t n, const float *x, float *y, const char *what)
{
    size_t i;
    (void)g; (void)what;
    for (i = 0; i < n; i++) {
        float v = HCF(x)[i];
        HF(y)[i] = op == ACN__CU_RELU ? (v > 0.0f ? v : 0.0f) : op == ACN__CU_TANH ? tanhf(v)
                                                                  : emu_gelu(v, op == ACN__CU_GELU_TANH);
    }
    return ACN_OK;
}
int acn__cu_unary_bwd(acn__cu *g, int op, size_t n, const float *xy, const float *d, float *gx, int accumulate,
                      const char *what)
{
    size_t i;
    (void)g; (void)what;
    for (i = 0; i < n; i++) {
        float v = HCF(xy)[i], s = op == ACN__CU_RELU ? (v > 0.0f ? 1.0f : 0.0f)
                                  : op == ACN__CU_TANH ? 1.0f - v * v : emu_dgelu(v, op == ACN__CU_GELU_TANH);
        float r = HCF(d)[i] * s;
        HF(gx)[i] = accumulate ? HF(gx)[i] + r : r;
    }
    return ACN_OK;
}
int acn__cu_gemm(acn__cu *g, int M, int N, int K, const float *A, int lda, int ta, const float *B, int ldb, int tb,
                 float *C, int ldc, int accumulate, int batch, long long sa, long long sb, long long sc,
                 const char *what)
{
    int b, i, j, k;
    (void)g; (void)what;
    for (b = 0; b < batch; b++) {
        const float *a = HCF(A) + (size_t)b * sa, *bb = HCF(B) + (size_t)b * sb;
        float *c = HF(C) + (size_t)b * sc;
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                float s = 0.0f;
                for (k = 0; k < K; k++)
                    s += (ta ? a[(size_t)k * lda + i] : a[(size_t)i * lda + k]) *
                         (tb ? bb[(size_t)j * ldb + k] : bb[(size_t)k * ldb + j]);
                c[(size_t)i * ldc + j] = accumulate ? c[(size_t)i * ldc + j] + s : s;
            }
    }
    return ACN_OK;
}
int acn__cu_add_rows(acn__cu *g, size_t R, int N, const float *bias, float *C, int ldc, const char *what)
{
    size_t r;
    int j;
    (void)g; (void)what;
    for (r = 0; r < R; r++)
        for (j = 0; j < N; j++) HF(C)[r * ldc + j] += HCF(bias)[j];
    return ACN_OK;
}
int acn__cu_colsum(acn__cu *g, size_t R, size_t C, const float *d, float *out, int accumulate, const char *what)
{
    size_t r, c;
    (void)g; (void)what;
    for (c = 0; c < C; c++) {
        float s = 0.0f;
        for (r = 0; r < R; r++) s += HCF(d)[r * C + c];
        HF(out)[c] = accumulate ? HF(out)[c] + s : s;
    }
    return ACN_OK;
}
int acn__cu_reduce(acn__cu *g, size_t outer, size_t len, size_t inner, int mean, const float *x, float *out,
                   const char *what)
{
    size_t o, l, i;
    (void)g; (void)what;
    for (o = 0; o < outer; o++)
        for (i = 0; i < inner; i++) {
            double s = 0.0;
            for (l = 0; l < len; l++) s += HCF(x)[(o * len + l) * inner + i];
            HF(out)[o * inner + i] = (float)(mean ? s / (double)len : s);
        }
    return ACN_OK;
}
int acn__cu_reduce_bwd(acn__cu *g, size_t outer, size_t len, size_t inner, float k, const float *d, float *gx,
                       const char *what)
{
    size_t o, l, i;
    (void)g; (void)what;
    for (o = 0; o < outer; o++)
        for (l = 0; l < len; l++)
            for (i = 0; i < inner; i++) HF(gx)[(o * len + l) * inner + i] += HCF(d)[o * inner + i] * k;
    return ACN_OK;
}
int acn__cu_ln_fwd(acn__cu *g, size_t R, int D, const float *x, const float *gamma, const float *beta, float eps,
                   float *out, float *mean, float *rstd, const char *what)
{
    size_t r;
    int c;
    (void)g; (void)what;
    for (r = 0; r < R; r++) {
        const float *xr = HCF(x) + r * D;
        float m = 0.0f, v = 0.0f, rs;
        for (c = 0; c < D; c++) m += xr[c];
        m /= (float)D;
        for (c = 0; c < D; c++) v += (xr[c] - m) * (xr[c] - m);
        rs = 1.0f / sqrtf(v / (float)D + eps);
        HF(mean)[r] = m;
        HF(rstd)[r] = rs;
        for (c = 0; c < D; c++) {
            float h = (xr[c] - m) * rs;
            HF(out)[r * D + c] = (gamma ? h * HCF(gamma)[c] : h) + (beta ? HCF(beta)[c] : 0.0f);
        }
    }
    return ACN_OK;
}
int acn__cu_ln_bwd(acn__cu *g, size_t R, int D, const float *x, const float *gamma, const float *mean,
                   const float *rstd, const float *d, float *gx, float *ggamma, float *gbeta, const char *what)
{
    size_t r;
    int c;
    (void)g; (void)what;
    for (r = 0; r < R; r++) {
        const float *xr = HCF(x) + r * D, *dr = HCF(d) + r * D, *gm = HCF(gamma);
        float m = HCF(mean)[r], rs = HCF(rstd)[r], m1 = 0.0f, m2 = 0.0f;
        for (c = 0; c < D; c++) {
            float h = (xr[c] - m) * rs, dh = gm ? dr[c] * gm[c] : dr[c];
            m1 += dh;
            m2 += dh * h;
        }
        m1 /= (float)D;
        m2 /= (float)D;
        for (c = 0; c < D; c++) {
            float h = (xr[c] - m) * rs, dh = gm ? dr[c] * gm[c] : dr[c];
            if (gx) HF(gx)[r * D + c] += rs * (dh - m1 - h * m2);
            if (ggamma) HF(ggamma)[c] += dr[c] * h;
            if (gbeta) HF(gbeta)[c] += dr[c];
        }
    }
    return ACN_OK;
}
int acn__cu_softmax(acn__cu *g, size_t R, int C, float scale, const float *x, const float *mask, const int n4[4],
                    const size_t ms[4], float *out, const char *what)
{
    size_t r;
    int c;
    (void)g; (void)what;
    for (r = 0; r < R; r++) {
        float *o = HF(out) + r * C, mx = -INFINITY, s = 0.0f;
        for (c = 0; c < C; c++) {
            o[c] = scale * HCF(x)[r * C + c] + (mask ? HCF(mask)[emu_index(r * C + c, n4, ms)] : 0.0f);
            if (o[c] > mx) mx = o[c];
        }
        for (c = 0; c < C; c++) { o[c] = expf(o[c] - mx); s += o[c]; }
        for (c = 0; c < C; c++) o[c] /= s;
    }
    return ACN_OK;
}
int acn__cu_softmax_bwd(acn__cu *g, size_t R, int C, float scale, const float *y, const float *d, float *gx,
                        int accumulate, const char *what)
{
    size_t r;
    int c;
    (void)g; (void)what;
    for (r = 0; r < R; r++) {
        const float *yr = HCF(y) + r * C, *dr = HCF(d) + r * C;
        float dot = 0.0f;
        for (c = 0; c < C; c++) dot += dr[c] * yr[c];
        for (c = 0; c < C; c++) {
            float dz = scale * yr[c] * (dr[c] - dot);
            HF(gx)[r * C + c] = accumulate ? HF(gx)[r * C + c] + dz : dz;
        }
    }
    return ACN_OK;
}
int acn__cu_xent(acn__cu *g, size_t R, int C, const float *z, const int *labels, const float *target, int ignore,
                 float eps, int count, double *rowloss, float *out, const char *what)
{
    size_t r;
    int c;
    double total = 0.0;
    const int *y = (const int *)H(labels);
    (void)g; (void)what; (void)rowloss;
    for (r = 0; r < R; r++) {
        const float *zr = HCF(z) + r * C;
        float mx = zr[0];
        double s = 0.0, qz = 0.0, qs = 0.0;
        if (!target && y[r] == ignore) continue;
        for (c = 1; c < C; c++) if (zr[c] > mx) mx = zr[c];
        for (c = 0; c < C; c++) {
            double q = target ? (1.0 - eps) * HCF(target)[r * C + c] + (double)eps / C
                              : (c == y[r] ? 1.0 - eps : 0.0) + (double)eps / C;
            s += exp((double)(zr[c] - mx));
            qz += q * zr[c];
            qs += q;
        }
        total += target ? (mx + log(s)) * qs - qz : mx + log(s) - qz;
    }
    HF(out)[0] = count ? (float)(total / count) : 0.0f;
    return ACN_OK;
}
int acn__cu_xent_bwd(acn__cu *g, size_t R, int C, const float *z, const int *labels, const float *target, int ignore,
                     float eps, int count, const float *dout, float *gz, float *gt, const char *what)
{
    size_t r;
    int c;
    const int *y = (const int *)H(labels);
    float k;
    (void)g; (void)what;
    if (!count) return ACN_OK;
    k = HCF(dout)[0] / (float)count;
    for (r = 0; r < R; r++) {
        const float *zr = HCF(z) + r * C;
        float mx = zr[0], s = 0.0f, qs = 0.0f, lse;
        if (!target && y[r] == ignore) continue;
        for (c = 1; c < C; c++) if (zr[c] > mx) mx = zr[c];
        for (c = 0; c < C; c++) {
            s += expf(zr[c] - mx);
            if (target) qs += (1.0f - eps) * HCF(target)[r * C + c] + eps / (float)C;
        }
        lse = mx + logf(s);
        for (c = 0; c < C; c++) {
            float q = target ? (1.0f - eps) * HCF(target)[r * C + c] + eps / (float)C
                             : eps / (float)C + (c == y[r] ? 1.0f - eps : 0.0f);
            float p = target ? expf(zr[c] - lse) : expf(zr[c] - mx) / s;
            if (gz) HF(gz)[r * C + c] += k * (target ? p * qs - q : p - q);
            if (gt) HF(gt)[r * C + c] -= k * (1.0f - eps) * (zr[c] - lse);
        }
    }
    return ACN_OK;
}
int acn__cu_transpose(acn__cu *g, const int n4[4], int a0, int a1, const float *x, float *out, int accumulate,
                      const char *what)
{
    size_t n = (size_t)n4[0] * n4[1] * n4[2] * n4[3], i, os[4], st = 1, sa[4];
    int on[4], d;
    (void)g; (void)what;
    for (d = 0; d < 4; d++) on[d] = n4[d];
    on[a0] = n4[a1];
    on[a1] = n4[a0];
    for (d = 3; d >= 0; d--) { os[d] = st; st *= (size_t)on[d]; }
    for (d = 0; d < 4; d++) sa[d] = os[d == a0 ? a1 : d == a1 ? a0 : d];
    for (i = 0; i < n; i++) {
        size_t o = emu_index(i, n4, sa);
        HF(out)[o] = accumulate ? HF(out)[o] + HCF(x)[i] : HCF(x)[i];
    }
    return ACN_OK;
}
int acn__cu_copy2d(acn__cu *g, size_t rows, size_t cols, const float *src, size_t sld, float *dst, size_t dld,
                   int accumulate, const char *what)
{
    size_t r, c;
    (void)g; (void)what;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++)
            HF(dst)[r * dld + c] = accumulate ? HF(dst)[r * dld + c] + HCF(src)[r * sld + c] : HCF(src)[r * sld + c];
    return ACN_OK;
}
int acn__cu_patches(acn__cu *g, int B, int C, int H_, int W, int p, const float *src, float *dst, int backward,
                    const char *what)
{
    size_t n = (size_t)B * C * H_ * W, i;
    int P = W / p, per = C * p * p;
    (void)g; (void)what;
    for (i = 0; i < n; i++) {
        size_t rest = i, b, row, j;
        int x, y, c;
        x = (int)(rest % W); rest /= W;
        y = (int)(rest % H_); rest /= H_;
        c = (int)(rest % C);
        b = rest / C;
        row = b * (size_t)(H_ / p) * P + (size_t)(y / p) * P + (size_t)(x / p);
        j = row * per + (size_t)c * p * p + (size_t)(y % p) * p + (size_t)(x % p);
        if (backward) HF(dst)[i] += HCF(src)[j];
        else HF(dst)[j] = HCF(src)[i];
    }
    return ACN_OK;
}
int acn__cu_embed(acn__cu *g, size_t n, int D, const float *table, const int *ids, float *out, const char *what)
{
    size_t i;
    int c;
    (void)g; (void)what;
    for (i = 0; i < n; i++)
        for (c = 0; c < D; c++) HF(out)[i * D + c] = HCF(table)[(size_t)((const int *)H(ids))[i] * D + c];
    return ACN_OK;
}
int acn__cu_embed_bwd(acn__cu *g, size_t n, int D, const float *d, const int *ids, float *gtable, const char *what)
{
    size_t i;
    int c;
    (void)g; (void)what;
    for (i = 0; i < n; i++)
        for (c = 0; c < D; c++) HF(gtable)[(size_t)((const int *)H(ids))[i] * D + c] += HCF(d)[i * D + c];
    return ACN_OK;
}
int acn__cu_dropout_mask(acn__cu *g, size_t n, float p, uint64_t state, unsigned char *keep, const char *what)
{
    acn_rng r;
    size_t i;
    (void)g; (void)what;
    r.state = state;
    for (i = 0; i < n; i++) ((unsigned char *)H(keep))[i] = acn_rng_uniform(&r) >= p;
    return ACN_OK;
}
int acn__cu_mask_scale(acn__cu *g, size_t n, const unsigned char *keep, float s, const float *x, float *y,
                       int accumulate, const char *what)
{
    size_t i;
    (void)g; (void)what;
    for (i = 0; i < n; i++) {
        float v = ((const unsigned char *)H(keep))[i] ? HCF(x)[i] * s : 0.0f;
        HF(y)[i] = accumulate ? HF(y)[i] + v : v;
    }
    return ACN_OK;
}
int acn__cu_adamw(acn__cu *g, size_t n, float *w, const float *grad, float *m, float *v, const unsigned char *nodecay,
                  const float *hp, float b1, float b2, float eps, const char *what)
{
    size_t i;
    const float *h = HCF(hp);
    const unsigned char *nd = (const unsigned char *)H(nodecay);
    (void)g; (void)what;
    for (i = 0; i < n; i++) {
        float wi = HF(w)[i] * (nd && nd[i] ? 1.0f : h[2]), gi = HCF(grad)[i];
        float mi = HF(m)[i] * b1 + gi * (1.0f - b1), vi = HF(v)[i] * b2 + gi * gi * (1.0f - b2);
        HF(w)[i] = wi - h[0] * (mi / (sqrtf(vi) / h[1] + eps));
        HF(m)[i] = mi;
        HF(v)[i] = vi;
    }
    return ACN_OK;
}
int acn__cu_clip(acn__cu *g, size_t n, float *grad, float max_norm, void *scratch, float *norm_out, const char *what)
{
    double s = 0.0;
    size_t i;
    float norm, coef;
    (void)g; (void)what; (void)scratch;
    for (i = 0; i < n; i++) s += (double)HF(grad)[i] * HF(grad)[i];
    norm = (float)sqrt(s);
    coef = max_norm / (norm + 1e-6f);
    HF(norm_out)[0] = norm;
    if (max_norm > 0.0f && coef < 1.0f)
        for (i = 0; i < n; i++) HF(grad)[i] *= coef;
    return ACN_OK;
}
size_t acn__cu_clip_scratch_bytes(void) { return 256 * sizeof(double) + 2 * sizeof(float); }
