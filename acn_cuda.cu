/* acn_cuda.cu - the GPU kernels of acn.h (NVIDIA GPUs, CUDA 12 or later).
 *
 * Optional: a program that does not define ACN_CUDA never needs this file.
 * docs/cuda.md explains the design; this file is its lowest layer, a small
 * library of kernels with a C interface (the acn__cu_* functions declared
 * in acn.h under ACN__CUDA_UNIT), each the device twin of one CPU kernel of
 * acn.h, named after it.
 *
 * BUILD
 *     nvcc -O3 -gencode arch=compute_90,code=[sm_90,compute_90] -c acn_cuda.cu
 * (make cuda does this; the PTX target lets newer GPUs compile it at load),
 * then link acn_cuda.o with -lcudart -lcublas.
 *
 * CONVENTIONS
 *   - Every buffer argument is device memory unless its name ends in _h.
 *     Shapes are in the comments, as in acn.h: (R, C) is R rows of C
 *     floats, row-major and contiguous unless a leading dimension says
 *     otherwise.
 *   - Every call queues its work on the unit's one stream and returns at
 *     once; work runs in order. Only the calls marked "waits" wait for it
 *     (and report the errors of earlier kernels).
 *   - A call returns ACN_OK (0) or an acn_status code, and then
 *     acn__cu_msg(g) says what happened, naming the op and, for memory,
 *     the bytes: the caller prefixes nothing and prints nothing.
 *   - Sums that decide a result run in a fixed order (no atomics on
 *     floats), so every run gives the same bits: a step replayed from a
 *     captured graph equals the step run op by op.
 *   - Matrix products go to cuBLAS in float32 (CUBLAS_DEFAULT_MATH, which
 *     does not use TF32) unless acn__cu_set_tf32 turned TF32 on.
 *
 * LICENSE: MIT, as acn.h (see the end of acn.h).
 */
#define ACN__CUDA_UNIT 1
#include "acn.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct acn__cu {
    int ordinal;               /* the CUDA device                            */
    cudaStream_t stream;       /* every kernel and copy of this unit         */
    cublasHandle_t blas;       /* bound to the stream                        */
    int tf32;                  /* 1: cuBLAS may use TF32 for the products    */
    int sms;                   /* multiprocessors, for grid sizes            */
    char name[320];            /* the device's name, its capability, its memory */
    char msg[512];             /* the last error, "" when none               */
};

/* ---- errors -------------------------------------------------------------- */
static int acn__cu_fail(acn__cu *g, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->msg, sizeof g->msg, fmt, ap);
    va_end(ap);
    return code;
}
/* After a CUDA call: ACN_OK, or the error named with what was being done. */
static int acn__cu_check(acn__cu *g, cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return ACN_OK;
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls can run */
    if (e == cudaErrorMemoryAllocation)
        return acn__cu_fail(g, ACN_ERR_NOMEM, "%s: out of device memory (%s)", what, cudaGetErrorString(e));
    return acn__cu_fail(g, ACN_ERR_DEVICE, "%s: CUDA error %d, %s: %s", what, (int)e, cudaGetErrorName(e),
                        cudaGetErrorString(e));
}
static const char *acn__cu_blas_name(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "an unknown cuBLAS status";
    }
}
static int acn__cu_blas_check(acn__cu *g, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS) return ACN_OK;
    if (s == CUBLAS_STATUS_ALLOC_FAILED)
        return acn__cu_fail(g, ACN_ERR_NOMEM, "%s: cuBLAS is out of device memory (%s)", what, acn__cu_blas_name(s));
    return acn__cu_fail(g, ACN_ERR_DEVICE, "%s: cuBLAS failed with %s", what, acn__cu_blas_name(s));
}
/* Every entry point below that takes a unit makes its GPU the calling
 * thread's current device first: a process may hold contexts on several
 * GPUs, and a context may be used from another thread than the one that
 * made it. (cudaSetDevice to the device already current costs next to
 * nothing.) */
#define ACN__CU_USE(g) ((void)cudaSetDevice((g)->ordinal))
/* After a launch: the launch's own error (a bad configuration); errors
 * while the kernel runs come back from the next call that waits. */
#define ACN__CU_LAUNCHED(g, what) acn__cu_check((g), cudaGetLastError(), (what))

extern "C" const char *acn__cu_msg(const acn__cu *g) { return g ? g->msg : "no GPU unit"; }
extern "C" const char *acn__cu_name(const acn__cu *g) { return g ? g->name : ""; }

/* ---- devices, memory, copies ---------------------------------------------- */
extern "C" int acn__cu_devices(int *count, char *why, size_t why_cap)
{
    cudaError_t e = cudaGetDeviceCount(count);
    if (e == cudaSuccess) return ACN_OK;
    *count = 0;
    (void)cudaGetLastError();
    if (why && why_cap)
        snprintf(why, why_cap, "no CUDA device can be used: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    return ACN_ERR_DEVICE;
}

extern "C" int acn__cu_open(acn__cu **out, int ordinal, char *why, size_t why_cap)
{
    acn__cu *g;
    int count = 0, rc;
    cudaDeviceProp prop;
    cublasStatus_t bs;
    *out = NULL;
    if ((rc = acn__cu_devices(&count, why, why_cap))) return rc;
    if (ordinal < 0 || ordinal >= count) {
        if (why && why_cap)
            snprintf(why, why_cap, "CUDA device %d does not exist: this machine has %d (0..%d)", ordinal, count,
                     count - 1);
        return count ? ACN_ERR_ARG : ACN_ERR_DEVICE;
    }
    g = (acn__cu *)calloc(1, sizeof *g);
    if (!g) {
        if (why && why_cap) snprintf(why, why_cap, "out of host memory for the GPU unit's %zu bytes", sizeof *g);
        return ACN_ERR_NOMEM;
    }
    g->ordinal = ordinal;
    if ((rc = acn__cu_check(g, cudaSetDevice(ordinal), "select the device")) ||
        (rc = acn__cu_check(g, cudaGetDeviceProperties(&prop, ordinal), "read the device's properties")) ||
        (rc = acn__cu_check(g, cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "create a stream"))) {
        if (why && why_cap) snprintf(why, why_cap, "%s", g->msg);
        if (g->stream) cudaStreamDestroy(g->stream);
        free(g);
        return rc;
    }
    snprintf(g->name, sizeof g->name, "%s (compute capability %d.%d, %zu MiB)", prop.name, prop.major, prop.minor,
             prop.totalGlobalMem >> 20);
    g->sms = prop.multiProcessorCount;
    bs = cublasCreate(&g->blas);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(g->blas, g->stream);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH); /* float32: no TF32 */
    if (bs != CUBLAS_STATUS_SUCCESS) {
        rc = acn__cu_blas_check(g, bs, "start cuBLAS");
        if (why && why_cap) snprintf(why, why_cap, "%s", g->msg);
        if (g->blas) cublasDestroy(g->blas);
        cudaStreamDestroy(g->stream);
        free(g);
        return rc;
    }
    *out = g;
    return ACN_OK;
}

extern "C" void acn__cu_close(acn__cu *g)
{
    if (!g) return;
    cudaSetDevice(g->ordinal);
    cudaStreamSynchronize(g->stream);
    cublasDestroy(g->blas);
    cudaStreamDestroy(g->stream);
    free(g);
}

extern "C" int acn__cu_set_tf32(acn__cu *g, int on)
{
    ACN__CU_USE(g);
    g->tf32 = on != 0;
    return acn__cu_blas_check(g, cublasSetMathMode(g->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                              "set the math mode");
}

/* waits */
extern "C" int acn__cu_sync(acn__cu *g, const char *what)
{
    ACN__CU_USE(g);
    return acn__cu_check(g, cudaStreamSynchronize(g->stream), what);
}

extern "C" int acn__cu_alloc(acn__cu *g, void **p, size_t bytes, const char *what)
{
    ACN__CU_USE(g);
    cudaError_t e;
    *p = NULL;
    if (!bytes) return ACN_OK;
    e = cudaMalloc(p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        size_t free_b = 0, total_b = 0;
        (void)cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        *p = NULL;
        return acn__cu_fail(g, ACN_ERR_NOMEM,
                            "%s: out of device memory for %zu bytes (%zu MiB free of %zu MiB on %s); use a smaller "
                            "batch or arena", what, bytes, free_b >> 20, total_b >> 20, g->name);
    }
    return acn__cu_check(g, e, what);
}
/* g may be NULL: the memory is the process's, whichever unit allocated it */
extern "C" void acn__cu_free(acn__cu *g, void *p)
{
    (void)g;
    if (p) cudaFree(p);
}
/* Page-locked host memory: copies from and to it run at the bus's rate,
 * and a captured graph may read it. */
extern "C" int acn__cu_host_alloc(acn__cu *g, void **p, size_t bytes, const char *what)
{
    ACN__CU_USE(g);
    cudaError_t e;
    *p = NULL;
    if (!bytes) return ACN_OK;
    e = cudaMallocHost(p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        return acn__cu_fail(g, ACN_ERR_NOMEM, "%s: out of page-locked host memory for %zu bytes", what, bytes);
    }
    return acn__cu_check(g, e, what);
}
extern "C" void acn__cu_host_free(acn__cu *g, void *p)
{
    (void)g;
    if (p) cudaFreeHost(p);
}

/* dir: ACN__CU_H2D, ACN__CU_D2H (waits: dst_h is filled on return), ACN__CU_D2D */
extern "C" int acn__cu_copy(acn__cu *g, void *dst, const void *src, size_t bytes, int dir, const char *what)
{
    ACN__CU_USE(g);
    cudaMemcpyKind k = dir == ACN__CU_H2D ? cudaMemcpyHostToDevice
                       : dir == ACN__CU_D2H ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
    int rc;
    if (!bytes) return ACN_OK;
    if ((rc = acn__cu_check(g, cudaMemcpyAsync(dst, src, bytes, k, g->stream), what))) return rc;
    return dir == ACN__CU_D2H ? acn__cu_sync(g, what) : ACN_OK;
}
extern "C" int acn__cu_zero(acn__cu *g, void *p, size_t bytes, const char *what)
{
    ACN__CU_USE(g);
    if (!bytes) return ACN_OK;
    return acn__cu_check(g, cudaMemsetAsync(p, 0, bytes, g->stream), what);
}

/* ---- launch helpers -------------------------------------------------------- */
#define ACN__CU_THREADS 256
/* Blocks for n elements, ACN__CU_THREADS each, at most 32 per SM: the
 * kernels loop with a grid stride over the rest. */
static unsigned acn__cu_blocks(const acn__cu *g, size_t n)
{
    size_t b = (n + ACN__CU_THREADS - 1) / ACN__CU_THREADS, cap = (size_t)(g->sms > 0 ? g->sms : 1) * 32;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}
#define ACN__CU_GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* ---- fill and axpy (scale, copies, add_n backward) -------------------------- */
__global__ void acn__k_fill(float *p, size_t n, float v)
{
    ACN__CU_GRID_STRIDE(i, n) p[i] = v;
}
/* p (n) = v */
extern "C" int acn__cu_fill(acn__cu *g, float *p, size_t n, float v, const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_fill<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(p, n, v);
    return ACN__CU_LAUNCHED(g, what);
}
__global__ void acn__k_axpy(size_t n, float a, const float *x, float *y, int accumulate)
{
    ACN__CU_GRID_STRIDE(i, n) y[i] = accumulate ? y[i] + a * x[i] : a * x[i];
}
/* y (n) = a x, or y += a x (acn__scale_fwd: out = s x; acn__scale_bwd: dx += s d;
 * acn__addn_bwd: dx_i += d) */
extern "C" int acn__cu_axpy(acn__cu *g, size_t n, float a, const float *x, float *y, int accumulate, const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_axpy<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(n, a, x, y, accumulate);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- add_n: the ACN output -------------------------------------------------- */
typedef struct acn__cu_ptrs { const float *p[ACN__CU_ADDN_MAX]; } acn__cu_ptrs;
__global__ void acn__k_addn(acn__cu_ptrs xs, int k, size_t n, float *out, int accumulate)
{
    ACN__CU_GRID_STRIDE(i, n) {
        float s = accumulate ? out[i] : xs.p[0][i];
        for (int j = accumulate ? 0 : 1; j < k; j++) s += xs.p[j][i];
        out[i] = s;
    }
}
/* out (n) = xs[0] + xs[1] + ... + xs[k-1], summed in that order
 * (acn__addn_fwd); more than ACN__CU_ADDN_MAX inputs go in rounds that add
 * to out, which keeps the order. */
extern "C" int acn__cu_add_n(acn__cu *g, const float *const *xs_h, int k, size_t n, float *out, const char *what)
{
    ACN__CU_USE(g);
    int done = 0;
    if (!n || k < 1) return ACN_OK;
    while (done < k) {
        acn__cu_ptrs p;
        int m = k - done < ACN__CU_ADDN_MAX ? k - done : ACN__CU_ADDN_MAX, j, rc;
        for (j = 0; j < m; j++) p.p[j] = xs_h[done + j];
        acn__k_addn<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(p, m, n, out, done > 0);
        if ((rc = ACN__CU_LAUNCHED(g, what))) return rc;
        done += m;
    }
    return ACN_OK;
}

/* ---- add, sub, mul with broadcasting ---------------------------------------- */
/* The operands are right-aligned in 4 dims; sa, sb are their element strides
 * per output dim (0 where the operand repeats), as acn__bcast in acn.h. */
typedef struct acn__cu_bc { int n[4]; size_t sa[4], sb[4]; } acn__cu_bc;
__device__ static float acn__d_bin(int op, float a, float b)
{
    return op == ACN__CU_ADD ? a + b : op == ACN__CU_SUB ? a - b : a * b;
}
__global__ void acn__k_binary(int op, acn__cu_bc bc, size_t n, const float *a, const float *b, float *out)
{
    ACN__CU_GRID_STRIDE(o, n) {
        size_t rest = o, ia = 0, ib = 0;
#pragma unroll
        for (int d = 3; d >= 0; d--) {
            size_t c = rest % (size_t)bc.n[d];
            rest /= (size_t)bc.n[d];
            ia += c * bc.sa[d];
            ib += c * bc.sb[d];
        }
        out[o] = acn__d_bin(op, a[ia], b[ib]);
    }
}
/* out (n[0..3]) = a op b   (acn__binary_fwd) */
extern "C" int acn__cu_binary(acn__cu *g, int op, const int n4[4], const size_t sa[4], const size_t sb[4],
                              const float *a, const float *b, float *out, const char *what)
{
    ACN__CU_USE(g);
    acn__cu_bc bc;
    size_t n = 1;
    for (int d = 0; d < 4; d++) {
        bc.n[d] = n4[d];
        bc.sa[d] = sa[d];
        bc.sb[d] = sb[d];
        n *= (size_t)n4[d];
    }
    if (!n) return ACN_OK;
    acn__k_binary<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(op, bc, n, a, b, out);
    return ACN__CU_LAUNCHED(g, what);
}
/* One thread per element j of the operand that receives the gradient
 * (strides s, the other operand's so): it walks the output positions that
 * read j, in increasing order, and adds their share once:
 *   add: g[j] += sum d;   sub: += sum d (first) or -= sum d (second);
 *   mul: g[j] += sum d * other. */
__global__ void acn__k_binary_bwd(int op, int second, acn__cu_bc bc, size_t m, const float *d, const float *other,
                                  float *gj)
{
    /* the operand's own extents: m[dim] = n[dim] where it does not repeat */
    int ext[4];
    size_t ostride[4], st = 1;
    for (int dd = 3; dd >= 0; dd--) {
        ext[dd] = bc.sa[dd] || bc.n[dd] == 1 ? bc.n[dd] : 1;
        ostride[dd] = st;
        st *= (size_t)bc.n[dd];
    }
    ACN__CU_GRID_STRIDE(j, m) {
        int c[4];
        size_t rest = j;
        for (int dd = 3; dd >= 0; dd--) {
            c[dd] = (int)(rest % (size_t)ext[dd]);
            rest /= (size_t)ext[dd];
        }
        float s = 0.0f;
        /* every output index whose coordinates agree with c where the operand does not repeat */
        int r0 = ext[0] == 1 ? bc.n[0] : 1, r1 = ext[1] == 1 ? bc.n[1] : 1;
        int r2 = ext[2] == 1 ? bc.n[2] : 1, r3 = ext[3] == 1 ? bc.n[3] : 1;
        for (int i0 = 0; i0 < r0; i0++)
            for (int i1 = 0; i1 < r1; i1++)
                for (int i2 = 0; i2 < r2; i2++)
                    for (int i3 = 0; i3 < r3; i3++) {
                        int k0 = ext[0] == 1 ? i0 : c[0], k1 = ext[1] == 1 ? i1 : c[1];
                        int k2 = ext[2] == 1 ? i2 : c[2], k3 = ext[3] == 1 ? i3 : c[3];
                        size_t o = k0 * ostride[0] + k1 * ostride[1] + k2 * ostride[2] + k3 * ostride[3];
                        float v = d[o];
                        if (op == ACN__CU_MUL)
                            v *= other[k0 * bc.sb[0] + k1 * bc.sb[1] + k2 * bc.sb[2] + k3 * bc.sb[3]];
                        s += v;
                    }
        gj[j] += op == ACN__CU_SUB && second ? -s : s;
    }
}
/* The gradient of one operand of a op b (acn__binary_bwd): ga (the operand
 * whose strides are sa; numel m) += the output gradient d (n[0..3]),
 * reduced over the dims along which the operand repeats. For the second
 * operand, pass it as "a" with second = 1 (and the first as "other"). */
extern "C" int acn__cu_binary_bwd(acn__cu *g, int op, int second, const int n4[4], const size_t s_self[4],
                                  const size_t s_other[4], size_t m, const float *d, const float *other, float *grad,
                                  const char *what)
{
    ACN__CU_USE(g);
    acn__cu_bc bc;
    for (int dd = 0; dd < 4; dd++) {
        bc.n[dd] = n4[dd];
        bc.sa[dd] = s_self[dd];
        bc.sb[dd] = s_other[dd];
    }
    if (!m) return ACN_OK;
    acn__k_binary_bwd<<<acn__cu_blocks(g, m), ACN__CU_THREADS, 0, g->stream>>>(op, second, bc, m, d, other, grad);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- GELU, ReLU, tanh --------------------------------------------------------- */
/* gelu(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, erf in double as
 * acn__erf1; the tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
__device__ static float acn__d_gelu(float x, int tanh_form)
{
    if (tanh_form) {
        float u = 0.7978845608f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    return 0.5f * x * (1.0f + (float)erf((double)(x * 0.70710678f)));
}
/* gelu'(x) = Phi(x) + x phi(x) (as acn__dgelu1), or the tanh form's derivative */
__device__ static float acn__d_dgelu(float x, int tanh_form)
{
    if (tanh_form) {
        float u = 0.7978845608f * (x + 0.044715f * x * x * x), t = tanhf(u);
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
    }
    return 0.5f * (1.0f + (float)erf((double)(x * 0.70710678f))) + x * 0.39894228f * expf(-0.5f * x * x);
}
__global__ void acn__k_unary(int op, size_t n, const float *x, float *y)
{
    ACN__CU_GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = op == ACN__CU_RELU ? (v > 0.0f ? v : 0.0f)
               : op == ACN__CU_TANH ? tanhf(v) : acn__d_gelu(v, op == ACN__CU_GELU_TANH);
    }
}
/* y (n) = f(x)   (acn__gelu_fwd, acn__relu_fwd, acn__tanh_fwd) */
extern "C" int acn__cu_unary(acn__cu *g, int op, size_t n, const float *x, float *y, const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_unary<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(op, n, x, y);
    return ACN__CU_LAUNCHED(g, what);
}
/* xy: x for GELU and ReLU, y = tanh(x) for tanh */
__global__ void acn__k_unary_bwd(int op, size_t n, const float *xy, const float *d, float *gx, int accumulate)
{
    ACN__CU_GRID_STRIDE(i, n) {
        float v = xy[i], s = op == ACN__CU_RELU ? (v > 0.0f ? 1.0f : 0.0f)
                             : op == ACN__CU_TANH ? 1.0f - v * v : acn__d_dgelu(v, op == ACN__CU_GELU_TANH);
        gx[i] = accumulate ? gx[i] + d[i] * s : d[i] * s;
    }
}
/* gx (n) (+)= d f'(x)   (acn__gelu_bwd: f'(x) at x; acn__relu_bwd: 1 where
 * x > 0; acn__tanh_bwd: 1 - y^2 from the output y). With accumulate 0 it
 * multiplies a product's result in place (d == gx): the GELU' of
 * acn__lgelu_bwd and acn__ffn_bwd. */
extern "C" int acn__cu_unary_bwd(acn__cu *g, int op, size_t n, const float *xy, const float *d, float *gx,
                                 int accumulate, const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_unary_bwd<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(op, n, xy, d, gx, accumulate);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- matrix products ------------------------------------------------------------ */
/* C (M, N) (ldc) = op(A) op(B), or += with accumulate, batch times with
 * element strides sa, sb, sc between the batches: op(A) is (M, K), stored
 * (M, K) with row stride lda, or (K, M) when ta; op(B) is (K, N), stored
 * (K, N) with row stride ldb, or (N, K) when tb. cuBLAS is column-major:
 * a row-major (R, C) block with row stride ld is its (C, R) column-major
 * view, so it computes C^T = op(B)^T op(A)^T, (N, M) column-major. */
extern "C" int acn__cu_gemm(acn__cu *g, int M, int N, int K, const float *A, int lda, int ta, const float *B, int ldb,
                            int tb, float *C, int ldc, int accumulate, int batch, long long sa, long long sb,
                            long long sc, const char *what)
{
    ACN__CU_USE(g);
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s;
    if (M <= 0 || N <= 0 || batch <= 0) return ACN_OK;
    if (K <= 0) { /* an empty sum: C = 0, or unchanged */
        if (accumulate) return ACN_OK;
        for (int b = 0; b < batch; b++) {
            int rc = acn__cu_check(g, cudaMemset2DAsync(C + (size_t)b * sc, (size_t)ldc * sizeof(float), 0,
                                                        (size_t)N * sizeof(float), (size_t)M, g->stream), what);
            if (rc) return rc;
        }
        return ACN_OK;
    }
    s = cublasSgemmStridedBatched(g->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                  &one, B, ldb, sb, A, lda, sa, accumulate ? &one : &zero, C, ldc, sc, batch);
    return acn__cu_blas_check(g, s, what);
}

/* ---- bias rows and column sums --------------------------------------------------- */
__global__ void acn__k_add_rows(size_t R, int N, const float *bias, float *C, int ldc)
{
    ACN__CU_GRID_STRIDE(i, R * (size_t)N) C[(i / N) * ldc + i % N] += bias[i % N];
}
/* C[r, :] += bias for each of R rows   (acn__linear_fwd's bias) */
extern "C" int acn__cu_add_rows(acn__cu *g, size_t R, int N, const float *bias, float *C, int ldc, const char *what)
{
    ACN__CU_USE(g);
    if (!R || N <= 0) return ACN_OK;
    acn__k_add_rows<<<acn__cu_blocks(g, R * (size_t)N), ACN__CU_THREADS, 0, g->stream>>>(R, N, bias, C, ldc);
    return ACN__CU_LAUNCHED(g, what);
}
/* One thread per column; the rows in order: out[c] (+)= sum_r d[r, c]. */
__global__ void acn__k_colsum(size_t R, size_t C, const float *d, float *out, int accumulate)
{
    ACN__CU_GRID_STRIDE(c, C) {
        float s = 0.0f;
        for (size_t r = 0; r < R; r++) s += d[r * C + c];
        out[c] = accumulate ? out[c] + s : s;
    }
}
/* out (C) (+)= the column sums of d (R, C)   (bias gradients: acn__colsums) */
extern "C" int acn__cu_colsum(acn__cu *g, size_t R, size_t C, const float *d, float *out, int accumulate,
                              const char *what)
{
    ACN__CU_USE(g);
    if (!C) return ACN_OK;
    acn__k_colsum<<<acn__cu_blocks(g, C), ACN__CU_THREADS, 0, g->stream>>>(R, C, d, out, accumulate);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- sum and mean over an axis ---------------------------------------------------- */
/* out[o, i] = sum_l x[o, l, i] (mean: / len), one thread per output, the sum
 * in double in order as acn__reduce_fwd */
__global__ void acn__k_reduce(size_t outer, size_t len, size_t inner, int mean, const float *x, float *out)
{
    ACN__CU_GRID_STRIDE(j, outer * inner) {
        size_t o = j / inner, i = j % inner;
        double s = 0.0;
        for (size_t l = 0; l < len; l++) s += x[(o * len + l) * inner + i];
        out[j] = (float)(mean ? s / (double)len : s);
    }
}
/* x (outer, len, inner) -> out (outer, inner)   (acn__reduce_fwd) */
extern "C" int acn__cu_reduce(acn__cu *g, size_t outer, size_t len, size_t inner, int mean, const float *x, float *out,
                              const char *what)
{
    ACN__CU_USE(g);
    if (!outer || !inner) return ACN_OK;
    acn__k_reduce<<<acn__cu_blocks(g, outer * inner), ACN__CU_THREADS, 0, g->stream>>>(outer, len, inner, mean, x, out);
    return ACN__CU_LAUNCHED(g, what);
}
__global__ void acn__k_reduce_bwd(size_t outer, size_t len, size_t inner, float k, const float *d, float *gx)
{
    ACN__CU_GRID_STRIDE(j, outer * len * inner) {
        size_t i = j % inner, o = j / (len * inner);
        gx[j] += d[o * inner + i] * k;
    }
}
/* gx (outer, len, inner) += d[o, i] k   (acn__reduce_bwd; k = 1 / len for a mean) */
extern "C" int acn__cu_reduce_bwd(acn__cu *g, size_t outer, size_t len, size_t inner, float k, const float *d, float *gx,
                                  const char *what)
{
    ACN__CU_USE(g);
    size_t n = outer * len * inner;
    if (!n) return ACN_OK;
    acn__k_reduce_bwd<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(outer, len, inner, k, d, gx);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- block reductions ----------------------------------------------------------- */
/* The sum of v over the block's threads, in a fixed order (a tree over the
 * warps' shuffles); every thread gets it. sh: blockDim.x / 32 scratch. */
template <typename T> __device__ static T acn__d_block_sum(T v, T *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (T)0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ static float acn__d_block_max(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
#define ACN__CU_ROW_THREADS 128 /* one block per row: LayerNorm, softmax, cross-entropy */

/* ---- LayerNorm -------------------------------------------------------------------- */
/* Per row r of x (R, D): mean = sum x / D; var = sum (x - mean)^2 / D;
 * rstd = 1 / sqrt(var + eps); out = (x - mean) rstd gamma + beta. */
__global__ void acn__k_ln_fwd(const float *x, const float *gamma, const float *beta, int D, float eps, float *out,
                              float *mean, float *rstd)
{
    __shared__ float sh[32];
    size_t r = blockIdx.x;
    const float *xr = x + r * D;
    float s = 0.0f, v = 0.0f, m, rs;
    for (int c = threadIdx.x; c < D; c += blockDim.x) s += xr[c];
    m = acn__d_block_sum(s, sh) / (float)D;
    for (int c = threadIdx.x; c < D; c += blockDim.x) v += (xr[c] - m) * (xr[c] - m);
    rs = 1.0f / sqrtf(acn__d_block_sum(v, sh) / (float)D + eps);
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        float h = (xr[c] - m) * rs;
        out[r * D + c] = (gamma ? h * gamma[c] : h) + (beta ? beta[c] : 0.0f);
    }
    if (threadIdx.x == 0) {
        mean[r] = m;
        rstd[r] = rs;
    }
}
/* x (R, D), gamma and beta (D) or NULL -> out (R, D), mean and rstd (R)
 * kept for backward   (acn__ln_fwd) */
extern "C" int acn__cu_ln_fwd(acn__cu *g, size_t R, int D, const float *x, const float *gamma, const float *beta,
                              float eps, float *out, float *mean, float *rstd, const char *what)
{
    ACN__CU_USE(g);
    if (!R) return ACN_OK;
    acn__k_ln_fwd<<<(unsigned)R, ACN__CU_ROW_THREADS, 0, g->stream>>>(x, gamma, beta, D, eps, out, mean, rstd);
    return ACN__CU_LAUNCHED(g, what);
}
/* dxhat = d gamma; dx += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
 * (the backward of the forward's out = xhat gamma + beta, per row) */
__global__ void acn__k_ln_bwd_rows(const float *x, const float *gamma, const float *mean, const float *rstd,
                                   const float *d, int D, float *gx)
{
    __shared__ float sh[32];
    size_t r = blockIdx.x;
    const float *xr = x + r * D, *dr = d + r * D;
    float m = mean[r], rs = rstd[r], s1 = 0.0f, s2 = 0.0f, m1, m2;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        float h = (xr[c] - m) * rs, dh = gamma ? dr[c] * gamma[c] : dr[c];
        s1 += dh;
        s2 += dh * h;
    }
    m1 = acn__d_block_sum(s1, sh) / (float)D;
    m2 = acn__d_block_sum(s2, sh) / (float)D;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        float h = (xr[c] - m) * rs, dh = gamma ? dr[c] * gamma[c] : dr[c];
        gx[r * D + c] += rs * (dh - m1 - h * m2);
    }
}
/* dgamma[c] += sum_r d[r, c] xhat[r, c]; dbeta[c] += sum_r d[r, c]: one
 * thread per column, the rows in order */
__global__ void acn__k_ln_bwd_cols(size_t R, int D, const float *x, const float *mean, const float *rstd,
                                   const float *d, float *ggamma, float *gbeta)
{
    ACN__CU_GRID_STRIDE(c, (size_t)D) {
        float sg = 0.0f, sb = 0.0f;
        for (size_t r = 0; r < R; r++) {
            float dv = d[r * D + c];
            if (ggamma) sg += dv * ((x[r * D + c] - mean[r]) * rstd[r]);
            sb += dv;
        }
        if (ggamma) ggamma[c] += sg;
        if (gbeta) gbeta[c] += sb;
    }
}
/* gx (R, D), ggamma, gbeta (D): each may be NULL   (acn__ln_bwd) */
extern "C" int acn__cu_ln_bwd(acn__cu *g, size_t R, int D, const float *x, const float *gamma, const float *mean,
                              const float *rstd, const float *d, float *gx, float *ggamma, float *gbeta,
                              const char *what)
{
    ACN__CU_USE(g);
    int rc;
    if (!R) return ACN_OK;
    if (gx) {
        acn__k_ln_bwd_rows<<<(unsigned)R, ACN__CU_ROW_THREADS, 0, g->stream>>>(x, gamma, mean, rstd, d, D, gx);
        if ((rc = ACN__CU_LAUNCHED(g, what))) return rc;
    }
    if (ggamma || gbeta) {
        acn__k_ln_bwd_cols<<<acn__cu_blocks(g, (size_t)D), ACN__CU_THREADS, 0, g->stream>>>(R, D, x, mean, rstd, d,
                                                                                              ggamma, gbeta);
        if ((rc = ACN__CU_LAUNCHED(g, what))) return rc;
    }
    return ACN_OK;
}

/* ---- softmax ------------------------------------------------------------------------ */
/* z = scale x + mask; out[r, :] = exp(z - max) / sum exp(z - max). The
 * mask (or NULL) broadcasts onto x (R, C) with the strides ms of the padded
 * 4-d shape n (as the add's), so row r, column c reads
 * mask[index of (r * C + c) under ms]. */
__global__ void acn__k_softmax(acn__cu_bc bc, int C, float scale, const float *x, const float *mask, float *out)
{
    __shared__ float sh[32];
    size_t r = blockIdx.x;
    const float *xr = x + r * C;
    float *o = out + r * C, mx = -INFINITY, s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float z = scale * xr[c];
        if (mask) {
            size_t rest = r * C + c, im = 0;
            for (int d = 3; d >= 0; d--) {
                im += (rest % (size_t)bc.n[d]) * bc.sb[d];
                rest /= (size_t)bc.n[d];
            }
            z += mask[im];
        }
        o[c] = z;
        mx = fmaxf(mx, z);
    }
    mx = acn__d_block_max(mx, sh);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float e = expf(o[c] - mx);
        o[c] = e;
        s += e;
    }
    s = acn__d_block_sum(s, sh);
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] /= s;
}
/* x (R, C) -> out (R, C)   (acn__softmax_fwd with scale 1; the attention's
 * weights with scale 1/sqrt(dh) and its (B, Tk) mask) */
extern "C" int acn__cu_softmax(acn__cu *g, size_t R, int C, float scale, const float *x, const float *mask,
                               const int n4[4], const size_t ms[4], float *out, const char *what)
{
    ACN__CU_USE(g);
    acn__cu_bc bc;
    memset(&bc, 0, sizeof bc);
    for (int d = 0; d < 4 && mask; d++) {
        bc.n[d] = n4[d];
        bc.sb[d] = ms[d];
    }
    if (!R) return ACN_OK;
    acn__k_softmax<<<(unsigned)R, ACN__CU_ROW_THREADS, 0, g->stream>>>(bc, C, scale, x, mask, out);
    return ACN__CU_LAUNCHED(g, what);
}
/* dz = y (d - sum_k d_k y_k), times scale; gx (+)= dz, or dz written to gx
 * when accumulate is 0 (the attention's scratch) */
__global__ void acn__k_softmax_bwd(int C, float scale, const float *y, const float *d, float *gx, int accumulate)
{
    __shared__ float sh[32];
    size_t r = blockIdx.x;
    const float *yr = y + r * C, *dr = d + r * C;
    float dot = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += dr[c] * yr[c];
    dot = acn__d_block_sum(dot, sh);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float dz = scale * yr[c] * (dr[c] - dot);
        gx[r * C + c] = accumulate ? gx[r * C + c] + dz : dz;
    }
}
/* y, d (R, C) -> gx (R, C)   (acn__softmax_bwd; the mask's gradient is
 * acn__cu_binary_bwd's reduction of the dz this writes with accumulate 0) */
extern "C" int acn__cu_softmax_bwd(acn__cu *g, size_t R, int C, float scale, const float *y, const float *d, float *gx,
                                   int accumulate, const char *what)
{
    ACN__CU_USE(g);
    if (!R) return ACN_OK;
    acn__k_softmax_bwd<<<(unsigned)R, ACN__CU_ROW_THREADS, 0, g->stream>>>(C, scale, y, d, gx, accumulate);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- cross-entropy -------------------------------------------------------------------- */
/* Per valid row, z = logits[r, :], lse = logsumexp(z), and
 *   labels:       q = (1 - eps) onehot(y) + eps / C,  loss_r = lse - sum_c q_c z_c
 *                 (in double, as acn__xent_rows)
 *   soft targets: q = (1 - eps) t[r, :] + eps / C,    loss_r = lse sum_c q_c - sum_c q_c z_c
 *                 (= -sum_c q_c log softmax(z)_c, as acn__xsoft_rows) */
__global__ void acn__k_xent_rows(int C, const float *z, const int *y, const float *t, int ignore, float eps,
                                 double *loss)
{
    __shared__ double shd[32];
    __shared__ float shf[32];
    size_t r = blockIdx.x;
    const float *zr = z + r * C;
    float mx = -INFINITY;
    double s = 0.0, qz = 0.0, qs = 0.0;
    if (!t && y[r] == ignore) { /* the whole block leaves together */
        if (threadIdx.x == 0) loss[r] = 0.0;
        return;
    }
    for (int c = threadIdx.x; c < C; c += blockDim.x) mx = fmaxf(mx, zr[c]);
    mx = acn__d_block_max(mx, shf);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double q = t ? (1.0 - eps) * t[r * C + c] + (double)eps / C : (c == y[r] ? 1.0 - eps : 0.0) + (double)eps / C;
        s += exp((double)(zr[c] - mx));
        qz += q * zr[c];
        qs += q;
    }
    s = acn__d_block_sum(s, shd);
    qz = acn__d_block_sum(qz, shd);
    qs = acn__d_block_sum(qs, shd);
    if (threadIdx.x == 0) loss[r] = t ? (mx + log(s)) * qs - qz : mx + log(s) - qz;
}
/* out[0] = sum_r loss[r] / count, the rows in order (one thread: R is a
 * batch of rows, and the order makes the loss the same on every run); 0
 * when count is 0 */
__global__ void acn__k_xent_total(size_t R, const double *loss, int count, float *out)
{
    double s = 0.0;
    for (size_t r = 0; r < R; r++) s += loss[r];
    out[0] = count ? (float)(s / count) : 0.0f;
}
/* logits (R, C) and labels (R, device ints) or soft targets (R, C) -> out
 * (1), the mean over the count rows that are not ignored (all R for soft
 * targets); rowloss (R) doubles of scratch   (acn__xent_fwd, acn__xsoft_fwd) */
extern "C" int acn__cu_xent(acn__cu *g, size_t R, int C, const float *z, const int *labels, const float *target,
                            int ignore, float eps, int count, double *rowloss, float *out, const char *what)
{
    ACN__CU_USE(g);
    int rc;
    if (!R) return acn__cu_fill(g, out, 1, 0.0f, what);
    acn__k_xent_rows<<<(unsigned)R, ACN__CU_ROW_THREADS, 0, g->stream>>>(C, z, labels, target, ignore, eps, rowloss);
    if ((rc = ACN__CU_LAUNCHED(g, what))) return rc;
    acn__k_xent_total<<<1, 1, 0, g->stream>>>(R, rowloss, count, out);
    return ACN__CU_LAUNCHED(g, what);
}
/* With k = dout / count (dout read on the device: no round trip), p = softmax(z_r):
 *   labels: dz[r, c] += k (p_c - q_c)
 *   soft:   dz[r, c] += k (p_c sum_k q_k - q_c);  dt[r, c] -= k (1 - eps) (z_c - lse)
 * (the backward of acn__k_xent_rows' two forms; gz or gt may be NULL) */
__global__ void acn__k_xent_bwd(int C, const float *z, const int *y, const float *t, int ignore, float eps, int count,
                                const float *dout, float *gz, float *gt)
{
    __shared__ float sh[32];
    size_t r = blockIdx.x;
    const float *zr = z + r * C;
    float mx = -INFINITY, s = 0.0f, qs = 0.0f, lse, k = dout[0] / (float)count;
    if (!t && y[r] == ignore) return;
    for (int c = threadIdx.x; c < C; c += blockDim.x) mx = fmaxf(mx, zr[c]);
    mx = acn__d_block_max(mx, sh);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        s += expf(zr[c] - mx);
        if (t) qs += (1.0f - eps) * t[r * C + c] + eps / (float)C;
    }
    s = acn__d_block_sum(s, sh);
    qs = t ? acn__d_block_sum(qs, sh) : 1.0f;
    lse = mx + logf(s);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float q = t ? (1.0f - eps) * t[r * C + c] + eps / (float)C : eps / (float)C + (c == y[r] ? 1.0f - eps : 0.0f);
        float p = t ? expf(zr[c] - lse) : expf(zr[c] - mx) / s;
        if (gz) gz[r * C + c] += k * (t ? p * qs - q : p - q);
        if (gt) gt[r * C + c] -= k * (1.0f - eps) * (zr[c] - lse);
    }
}
/* gz (R, C) and, for soft targets, gt (R, C) += the gradients of the mean
 * loss   (acn__xent_bwd, acn__xsoft_bwd) */
extern "C" int acn__cu_xent_bwd(acn__cu *g, size_t R, int C, const float *z, const int *labels, const float *target,
                                int ignore, float eps, int count, const float *dout, float *gz, float *gt,
                                const char *what)
{
    ACN__CU_USE(g);
    if (!R || !count || (!gz && !gt)) return ACN_OK;
    acn__k_xent_bwd<<<(unsigned)R, ACN__CU_ROW_THREADS, 0, g->stream>>>(C, z, labels, target, ignore, eps, count,
                                                                         dout, gz, gt);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- moving data: transpose, 2-d blocks, patches, embedding --------------------------- */
/* out = x with two axes swapped: bc.n is x's padded 4-d shape and bc.sa
 * the stride in out of each of x's axes (out's axes are x's, two of them
 * swapped), so element i of x goes to sum_d coord_d(i) sa[d]. */
__global__ void acn__k_transpose(acn__cu_bc bc, size_t n, const float *x, float *out, int accumulate)
{
    ACN__CU_GRID_STRIDE(i, n) {
        size_t rest = i, o = 0;
#pragma unroll
        for (int d = 3; d >= 0; d--) {
            o += (rest % (size_t)bc.n[d]) * bc.sa[d];
            rest /= (size_t)bc.n[d];
        }
        out[o] = accumulate ? out[o] + x[i] : x[i];
    }
}
/* x (n4) -> out, axes a0 and a1 (0..3, padded) swapped   (acn__transpose_fwd;
 * its backward is the same swap of d, accumulated into gx) */
extern "C" int acn__cu_transpose(acn__cu *g, const int n4[4], int a0, int a1, const float *x, float *out,
                                 int accumulate, const char *what)
{
    ACN__CU_USE(g);
    acn__cu_bc bc;
    size_t n = 1, os[4], st = 1;
    int on[4], d;
    memset(&bc, 0, sizeof bc);
    for (d = 0; d < 4; d++) n *= (size_t)(bc.n[d] = on[d] = n4[d]);
    on[a0] = n4[a1];
    on[a1] = n4[a0];
    for (d = 3; d >= 0; d--) { /* out's contiguous strides */
        os[d] = st;
        st *= (size_t)on[d];
    }
    for (d = 0; d < 4; d++) bc.sa[d] = os[d == a0 ? a1 : d == a1 ? a0 : d];
    if (!n) return ACN_OK;
    acn__k_transpose<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(bc, n, x, out, accumulate);
    return ACN__CU_LAUNCHED(g, what);
}
__global__ void acn__k_copy2d(size_t rows, size_t cols, const float *src, size_t sld, float *dst, size_t dld,
                              int accumulate)
{
    ACN__CU_GRID_STRIDE(i, rows * cols) {
        size_t r = i / cols, c = i % cols;
        dst[r * dld + c] = accumulate ? dst[r * dld + c] + src[r * sld + c] : src[r * sld + c];
    }
}
/* dst[r, c] (+)= src[r, c] for a (rows, cols) block, row strides sld and dld
 * (acn__concat_fwd/bwd, acn__slice_fwd/bwd: outer x (length inner) blocks) */
extern "C" int acn__cu_copy2d(acn__cu *g, size_t rows, size_t cols, const float *src, size_t sld, float *dst,
                              size_t dld, int accumulate, const char *what)
{
    ACN__CU_USE(g);
    if (!rows || !cols) return ACN_OK;
    acn__k_copy2d<<<acn__cu_blocks(g, rows * cols), ACN__CU_THREADS, 0, g->stream>>>(rows, cols, src, sld, dst, dld,
                                                                                      accumulate);
    return ACN__CU_LAUNCHED(g, what);
}
/* images (B, C, H, W) <-> patch rows (B, (H/p)(W/p), C p p): element
 * (b, n, (c, ky, kx)) is images[b, c, py p + ky, px p + kx], n = py (W/p) + px.
 * Each output (forward) or input-gradient (backward) element is written by
 * one thread, so backward needs no atomics: the patches do not overlap. */
__global__ void acn__k_patches(int B, int C, int H, int W, int p, const float *src, float *dst, int backward)
{
    size_t n = (size_t)B * C * H * W;
    int P = W / p, per = C * p * p;
    ACN__CU_GRID_STRIDE(i, n) { /* i indexes the image tensor */
        size_t rest = i;
        int x = (int)(rest % W);
        rest /= W;
        int y = (int)(rest % H);
        rest /= H;
        int c = (int)(rest % C);
        size_t b = rest / C;
        size_t row = b * (size_t)(H / p) * P + (size_t)(y / p) * P + (size_t)(x / p);
        size_t j = row * per + (size_t)c * p * p + (size_t)(y % p) * p + (size_t)(x % p);
        if (backward) dst[i] += src[j];
        else dst[j] = src[i];
    }
}
/* forward: images -> rows; backward: d rows added into gimages   (acn__patches_fwd/bwd) */
extern "C" int acn__cu_patches(acn__cu *g, int B, int C, int H, int W, int p, const float *src, float *dst,
                               int backward, const char *what)
{
    ACN__CU_USE(g);
    size_t n = (size_t)B * C * H * W;
    if (!n) return ACN_OK;
    acn__k_patches<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(B, C, H, W, p, src, dst, backward);
    return ACN__CU_LAUNCHED(g, what);
}
__global__ void acn__k_embed(size_t n, int D, const float *table, const int *ids, float *out)
{
    ACN__CU_GRID_STRIDE(i, n * (size_t)D) out[i] = table[(size_t)ids[i / D] * D + i % D];
}
/* table (V, D), ids (n) on the device -> out (n, D)   (acn__embed_fwd) */
extern "C" int acn__cu_embed(acn__cu *g, size_t n, int D, const float *table, const int *ids, float *out,
                             const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_embed<<<acn__cu_blocks(g, n * (size_t)D), ACN__CU_THREADS, 0, g->stream>>>(n, D, table, ids, out);
    return ACN__CU_LAUNCHED(g, what);
}
/* gtable[ids[i], c] += d[i, c]: one thread per column c walks the ids in
 * order, so rows repeated in ids add up in the CPU's order */
__global__ void acn__k_embed_bwd(size_t n, int D, const float *d, const int *ids, float *gtable)
{
    ACN__CU_GRID_STRIDE(c, (size_t)D) {
        for (size_t i = 0; i < n; i++) gtable[(size_t)ids[i] * D + c] += d[i * D + c];
    }
}
/* gtable (V, D) += the rows of d (n, D)   (acn__embed_bwd) */
extern "C" int acn__cu_embed_bwd(acn__cu *g, size_t n, int D, const float *d, const int *ids, float *gtable,
                                 const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_embed_bwd<<<acn__cu_blocks(g, (size_t)D), ACN__CU_THREADS, 0, g->stream>>>(n, D, d, ids, gtable);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- dropout ------------------------------------------------------------------------- */
/* The mask of acn_dropout, drawn on the device with the CPU's generator:
 * SplitMix64 is a counter, so draw i is mix(state + (i + 1) gamma), and
 * keep[i] = uniform(draw i) >= p, as acn_rng_uniform's 24 bits. */
__device__ static uint64_t acn__d_splitmix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
__global__ void acn__k_dropout_mask(size_t n, float p, uint64_t state, unsigned char *keep)
{
    ACN__CU_GRID_STRIDE(i, n) {
        uint64_t z = acn__d_splitmix(state + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ULL);
        float u = (float)(z >> 40) * (1.0f / 16777216.0f);
        keep[i] = u >= p;
    }
}
/* keep (n) from the generator's state before the draws (the caller then
 * advances the host generator by n, as acn__rng_skip does) */
extern "C" int acn__cu_dropout_mask(acn__cu *g, size_t n, float p, uint64_t state, unsigned char *keep,
                                    const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_dropout_mask<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(n, p, state, keep);
    return ACN__CU_LAUNCHED(g, what);
}
__global__ void acn__k_mask_scale(size_t n, const unsigned char *keep, float s, const float *x, float *y,
                                  int accumulate)
{
    ACN__CU_GRID_STRIDE(i, n) {
        float v = keep[i] ? x[i] * s : 0.0f;
        y[i] = accumulate ? y[i] + v : v;
    }
}
/* y (n) (+)= keep x s   (acn__dropout_fwd: out = keep x / (1 - p);
 * acn__dropout_bwd: dx += keep d / (1 - p)) */
extern "C" int acn__cu_mask_scale(acn__cu *g, size_t n, const unsigned char *keep, float s, const float *x, float *y,
                                  int accumulate, const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_mask_scale<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(n, keep, s, x, y, accumulate);
    return ACN__CU_LAUNCHED(g, what);
}

/* ---- AdamW, the gradient's norm and clipping --------------------------------------------- */
/* The step's scalars, in device memory so that a captured step reads the
 * ones of the step being replayed: hp = {step_size = lr / (1 - b1^t),
 * bc2_sqrt = sqrt(1 - b2^t), decay_keep = 1 - lr wd}. */
__global__ void acn__k_adamw(size_t n, float *w, const float *g, float *m, float *v, const unsigned char *nodecay,
                             const float *hp, float b1, float b2, float eps)
{
    float step_size = hp[0], bc2_sqrt = hp[1], decay_keep = hp[2];
    ACN__CU_GRID_STRIDE(i, n) {
        float wi = w[i] * (nodecay && nodecay[i] ? 1.0f : decay_keep);  /* decoupled decay */
        float mi = m[i] * b1 + g[i] * (1.0f - b1);
        float vi = v[i] * b2 + g[i] * g[i] * (1.0f - b2);
        w[i] = wi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
        m[i] = mi;
        v[i] = vi;
    }
}
/* One AdamW step over the flat blocks w, g, m, v (n), as acn_adamw_step;
 * nodecay (n) bytes or NULL marks the parameters without weight decay */
extern "C" int acn__cu_adamw(acn__cu *g, size_t n, float *w, const float *grad, float *m, float *v,
                             const unsigned char *nodecay, const float *hp, float b1, float b2, float eps,
                             const char *what)
{
    ACN__CU_USE(g);
    if (!n) return ACN_OK;
    acn__k_adamw<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(n, w, grad, m, v, nodecay, hp, b1, b2, eps);
    return ACN__CU_LAUNCHED(g, what);
}
#define ACN__CU_SUMSQ_BLOCKS 256
/* Pass 1: block b sums the squares of its chunk [b len, (b + 1) len), in
 * double, into part[b]; pass 2 adds the parts in order. A fixed number of
 * blocks makes the order, and so the bits, the same on every run. */
__global__ void acn__k_sumsq_part(size_t n, const float *x, double *part)
{
    __shared__ double sh[32];
    size_t len = (n + gridDim.x - 1) / gridDim.x, lo = (size_t)blockIdx.x * len, hi = lo + len < n ? lo + len : n;
    double s = 0.0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)x[i] * x[i];
    s = acn__d_block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}
/* norm = sqrt(sum of the parts); out_norm[0] = norm; when max_norm > 0 and
 * coef = max_norm / (norm + 1e-6) < 1, coef_out[0] = coef, else 1 */
__global__ void acn__k_norm_coef(const double *part, int parts, float max_norm, float *out_norm, float *coef_out)
{
    double s = 0.0;
    for (int b = 0; b < parts; b++) s += part[b];
    float norm = (float)sqrt(s), coef = max_norm / (norm + 1e-6f);
    out_norm[0] = norm;
    coef_out[0] = max_norm > 0.0f && coef < 1.0f ? coef : 1.0f;
}
__global__ void acn__k_scale_by(size_t n, const float *coef, float *x)
{
    float c = coef[0];
    if (c == 1.0f) return;
    ACN__CU_GRID_STRIDE(i, n) x[i] *= c;
}
/* The global norm of g (n) and, with max_norm > 0, the clipping of
 * clip_grad_norm, without a round trip to the host: scratch holds
 * ACN__CU_SUMSQ_BLOCKS doubles and 2 floats; norm_out (1) on the device. */
extern "C" int acn__cu_clip(acn__cu *g, size_t n, float *grad, float max_norm, void *scratch, float *norm_out,
                            const char *what)
{
    ACN__CU_USE(g);
    double *part = (double *)scratch;
    float *coef = (float *)(part + ACN__CU_SUMSQ_BLOCKS);
    int rc;
    acn__k_sumsq_part<<<ACN__CU_SUMSQ_BLOCKS, ACN__CU_THREADS, 0, g->stream>>>(n, grad, part);
    if ((rc = ACN__CU_LAUNCHED(g, what))) return rc;
    acn__k_norm_coef<<<1, 1, 0, g->stream>>>(part, ACN__CU_SUMSQ_BLOCKS, max_norm, norm_out, coef);
    if ((rc = ACN__CU_LAUNCHED(g, what))) return rc;
    if (!(max_norm > 0.0f) || !n) return ACN_OK;
    acn__k_scale_by<<<acn__cu_blocks(g, n), ACN__CU_THREADS, 0, g->stream>>>(n, coef, grad);
    return ACN__CU_LAUNCHED(g, what);
}
extern "C" size_t acn__cu_clip_scratch_bytes(void)
{
    return ACN__CU_SUMSQ_BLOCKS * sizeof(double) + 2 * sizeof(float);
}
