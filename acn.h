/* acn.h - Auto-Compressing Networks in one C header.                 v0.1
 *
 * A small, exact reverse-mode autograd engine over float32 tensors, with the
 * optimizers, schedules and file format needed to train the networks of
 * "Auto-Compressing Networks" (Dorovatas et al., NeurIPS 2025), in which every
 * block feeds the output directly: x_i = f_i(x_{i-1}), y = x_0 + ... + x_L.
 *
 * USAGE
 *   In exactly one C or C++ file of your project:
 *
 *       #define ACN_IMPLEMENTATION
 *       #include "acn.h"
 *
 *   Everywhere else, include "acn.h" as a normal header. Link with -lm.
 *
 *   A training step:
 *
 *       acn_ctx *ctx;
 *       char why[256];
 *       if (acn_ctx_new_ex(&ctx, NULL, why, sizeof why))  // NULL: default sizes
 *           { puts(why); return 1; }                     // why it failed
 *       int ws[2] = {16, 2};
 *       acn_tensor *W = acn_param(ctx, "fc.weight", 2, ws);
 *       ...                                              // init, optimizer
 *       for (step = 0; step < n; step++) {
 *           acn_reset(ctx);                              // empty the arena
 *           acn_tensor *x = acn_input(ctx, 2, xs, batch);
 *           acn_tensor *loss = acn_cross_entropy(ctx, acn_linear(ctx, x, W, b),
 *                                                labels, 0.0f, -1);
 *           if (!loss) { puts(acn_error(ctx)); break; }  // what went wrong
 *           acn_zero_grad(ctx);
 *           acn_backward(ctx, loss);
 *           acn_adamw_step(ctx, &opt, lr);
 *       }
 *
 *   README.md has a complete program; docs/design.md explains the memory
 *   model, the tape and how to add an op.
 *
 * CONTENTS (declarations, in this order)
 *   context, arena and errors; settings (SIMD level, threads); parameters and
 *   tensors; ops; backward and the gradient checker; generator and
 *   initialisers; AdamW, SGD, clipping and schedules; models (MLP, Mixer, ViT,
 *   BERT) and their wiring, probes and truncation (docs/models.md);
 *   safetensors, checkpoints and cut models (acn_save_cut); data sets,
 *   sampler and loaders (CIFAR, IDX, CSV, TSV text); augmentation (crop,
 *   flip, noise, CutMix, AutoAugment) and training recipes; pruning and
 *   Synaptic Intelligence; data-parallel training over processes (MPI).
 *   examples/train_*.c train the paper's models with them (docs/training.md).
 *
 * FEATURE MACROS (define before including the implementation)
 *   ACN_IMPLEMENTATION    emit the implementation in this translation unit.
 *   ACN_STATIC            make every function static (private to one file).
 *   ACN_MALLOC(n), ACN_FREE(p)
 *                         the allocator (default: malloc/free). acn.h allocates
 *                         only when a context, an optimizer or a file buffer is
 *                         created, never inside a training step.
 *   ACN_ASSERT(x)         internal invariants (default: assert). Bad input from
 *                         the caller is never an assertion: it is an error code.
 *   ACN_NO_STDIO          leave out everything that touches files (safetensors
 *                         and checkpoint files, the data loaders); the rest
 *                         needs no stdio FILE.
 *   ACN_NO_SIMD           only the portable matrix kernel (no AVX2/AVX-512
 *                         paths, no <immintrin.h>).
 *   ACN_NO_THREADS        no thread pool (no <pthread.h>); one thread. The
 *                         pool needs GCC or Clang (their atomic built-ins);
 *                         WebAssembly under WASI (__wasi__) has none either.
 *   ACN_PAR_MIN_NS        work, in nanoseconds of one core, below which an op
 *                         always runs on the calling thread alone (default
 *                         10000). Above it the pool measures: it raises its
 *                         threshold (up to 2 ms of work) while handing work
 *                         over costs more than it saves, as on a busy
 *                         machine, and lowers it when the machine is idle
 *                         again; and it times small ops (under 0.5 ms) in
 *                         windows, shared and all on the caller, and keeps
 *                         the faster way (acn__mode_update). Who runs an op
 *                         never changes its result.
 *   ACN_SPIN_US           how long an idle worker spins before it sleeps
 *                         (default 50 microseconds; 0: sleep at once).
 *   ACN_NO_AFFINITY       never pin threads to cores (see THREADS).
 *   ACN_NO_HUGEPAGES      never ask Linux for huge pages (see MEMORY).
 *   ACN_MPI               data-parallel training over MPI processes
 *                         (acn_dist_*; build with mpicc; docs/distributed.md).
 *                         Without it the acn_dist_* calls see one process.
 *   ACN_NO_POSIX          do not ask for POSIX. By default, on non-Windows
 *                         systems the implementation defines _POSIX_C_SOURCE
 *                         (200809L) when acn.h is the first header the file
 *                         includes, and uses fsync() to make saved files
 *                         durable whenever POSIX is on (first header, GNU
 *                         mode, or your own _POSIX_C_SOURCE). Without it,
 *                         files are still written to a temporary name and
 *                         renamed, only not synced.
 *   The core (tensors, autograd, optimizers) needs only C99 and libm.
 *
 * ERRORS
 *   Functions that can fail return an acn_status (ACN_OK == 0). Functions
 *   that build a tensor return NULL on failure. Either way the context keeps
 *   the first error, and acn_error(ctx) says what happened and what to do,
 *   naming the op and the shapes, e.g.
 *       "matmul: (64, 128) x (64, 512): inner dimensions differ (128 vs 64)"
 *   Once an error is set, further ops return NULL at once (so a chain of calls
 *   can be checked once at the end) until acn_clear_error(ctx). acn.h never
 *   prints and never exits.
 *
 * THREADS
 *   A context is used by one thread at a time; it runs its own pool of
 *   worker threads for large ops (POSIX threads; glibc needs no -pthread).
 *   Separate contexts are independent. Results are the same, bit for bit,
 *   for every number of threads.
 *   On Linux, a pool of n threads pins the thread that creates it to the
 *   core it is on and each worker to another core it may use, so that a
 *   worker woken for a task runs beside the caller instead of taking turns
 *   with it on one core (which Linux does on some virtual machines). The
 *   caller's own setting is restored when the last pool that pinned it
 *   stops (acn_ctx_free, acn_set_threads) in that thread; the workers of a
 *   second context made meanwhile get cores of their own too. Threads the
 *   caller starts while it is pinned inherit its one core: start them
 *   first, or set ACN_AFFINITY=0. Nothing is pinned when the process may
 *   use fewer cores than n, when acn.h is not the first header of the
 *   implementation file (GNU's extensions are then off, unless the file
 *   defines _GNU_SOURCE), with ACN_NO_AFFINITY, or with the environment
 *   variable ACN_AFFINITY=0.
 *
 * MEMORY
 *   On Linux, the large blocks (the arena, the parameter and gradient
 *   blocks, the optimizer's moments) are offered to transparent huge pages
 *   (madvise(MADV_HUGEPAGE), for systems that leave huge pages to such
 *   advice): a training step runs through hundreds of MB, and with 2 MB
 *   pages instead of 4 KB ones its address translations stay in the TLB
 *   (about 1 to 2% of the paper Mixer's step on the project's machine,
 *   docs/performance.md). It is advice only, taken where GNU's extensions
 *   are on (see THREADS: so not with ACN_NO_THREADS, which asks for plain
 *   POSIX); ACN_NO_HUGEPAGES or the environment variable ACN_HUGEPAGES=0
 *   turn it off.
 *
 * LICENSE: MIT, at the end of this file.
 */
#if defined(ACN_IMPLEMENTATION) && !defined(ACN_NO_POSIX) && !defined(_WIN32) && \
    !defined(NULL) && !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && !defined(_GNU_SOURCE)
/* Ask for POSIX (fsync, fileno) while no standard header has been read
 * (NULL is not yet defined); later it would be too late to take effect. On
 * Linux, GNU's extensions too: sched_setaffinity, for the thread pool. */
#if defined(__linux__) && !defined(ACN_NO_THREADS)
#define _GNU_SOURCE 1
#else
#define _POSIX_C_SOURCE 200809L
#endif
#endif

#ifndef ACN_H
#define ACN_H

#include <stddef.h>
#include <stdint.h>

#ifdef ACN_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define ACNDEF static __attribute__((unused)) /* a file need not use them all */
#else
#define ACNDEF static
#endif
#else
#define ACNDEF extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define ACN_VERSION "0.1.0"
#define ACN_MAX_DIMS 4     /* tensors have 0..4 dimensions                  */
#define ACN_NAME_MAX 96    /* longest parameter name, with its NUL          */
#define ACN_AXIS_ALL 127   /* acn_sum/acn_mean over every element           */

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */
typedef enum acn_status {
    ACN_OK = 0,
    ACN_ERR_ARG,       /* an argument is invalid (NULL, out of range)        */
    ACN_ERR_SHAPE,     /* tensor shapes do not fit the operation             */
    ACN_ERR_ARENA,     /* the per-step arena is full                         */
    ACN_ERR_NOMEM,     /* the allocator (ACN_MALLOC) returned NULL           */
    ACN_ERR_PARAMS,    /* the parameter block or table is full               */
    ACN_ERR_NONFINITE, /* a NaN or Inf was found (acn_set_check_finite)      */
    ACN_ERR_STATE,     /* called at the wrong time (see the message)         */
    ACN_ERR_IO,        /* a file could not be opened, read or written        */
    ACN_ERR_FORMAT,    /* a file is not what it claims to be                 */
    ACN_ERR_DIST,      /* a message between processes failed (ACN_MPI)       */
    ACN_ERR_DEVICE     /* the GPU or its driver failed (ACN_CUDA)            */
} acn_status;

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */
enum {
    ACN_F_GRAD      = 1 << 0, /* gradients flow to this tensor              */
    ACN_F_PARAM     = 1 << 1, /* lives in the parameter block               */
    ACN_F_NODECAY   = 1 << 2, /* parameter excluded from weight decay       */
    ACN_F_TRANSIENT = 1 << 3  /* value recomputed on demand (ACN_RECOMPUTE) */
};
enum { ACN_DEVICE_CPU = 0, ACN_DEVICE_CUDA = 1 };
typedef struct acn_ctx acn_ctx;

/* A float32 tensor, contiguous and row-major. Parameters live in the
 * context's parameter block; every other tensor lives in the per-step arena
 * and is gone after acn_reset(). On a CPU context data and grad are host
 * memory (data can be NULL for a transient, built with ACN_RECOMPUTE: use
 * acn_data); on a GPU context they are device memory, which the host must
 * not read: use acn_read, acn_item and the other calls below them. */
typedef struct acn_tensor {
    float *data;               /* (numel) values                              */
    float *grad;               /* (numel) gradient, or NULL                   */
    int ndim;                  /* 0..ACN_MAX_DIMS; 0 is a scalar              */
    int shape[ACN_MAX_DIMS];   /* shape[0..ndim-1]; the rest are 1            */
    size_t numel;              /* product of the shape                        */
    int flags;                 /* ACN_F_*                                     */
    int device;                /* ACN_DEVICE_CPU or ACN_DEVICE_CUDA           */
    const char *name;          /* parameter: its state_dict key; else op name */
    struct acn__node *node;    /* tape node that made it (NULL for leaves)    */
    size_t offset;             /* parameter: offset in the parameter block    */
    int slot;                  /* transient: scratch slot, -1 when evicted    */
    /* private: set by acn.h, so that a tensor of another context, or one
     * made before the last acn_reset or past an acn_mark_rewind, is refused
     * (ACN_ERR_STATE) rather than read (see acn__live) */
    acn_ctx *ctx;              /* the context that made it                    */
    uintptr_t seal;            /* its address and context, mixed; 0: gone     */
    struct acn_tensor *older;  /* arena: the tensor made before it            */
} acn_tensor;

typedef struct acn_ctx_config {
    size_t param_floats;  /* first capacity of the parameter block (floats);
                             it grows as parameters are created, and the
                             gradient block with it                          */
    int max_params;       /* capacity of the parameter table (tensors)       */
    size_t arena_bytes;   /* per-step arena: activations, tape, scratch      */
    uint64_t seed;        /* seed of the context's random generator          */
    int device;           /* ACN_DEVICE_CPU, or ACN_DEVICE_CUDA: the floats
                             (parameters, gradients, optimizer state, the
                             arena's tensors) in the memory of a GPU; needs
                             a build with ACN_CUDA (docs/cuda.md)            */
    int device_index;     /* which GPU, 0 for the first                       */
} acn_ctx_config;

typedef struct acn_stats {
    size_t arena_used, arena_peak, arena_bytes;   /* bytes                  */
    size_t param_floats_used, param_floats_cap;   /* floats                 */
    size_t persistent_bytes;   /* parameter + gradient blocks and table      */
    int n_params;              /* parameter tensors                          */
    size_t tape_nodes;         /* ops recorded since the last acn_reset      */
    size_t backward_nodes;     /* tape nodes the last acn_backward visited   */
    size_t backwards;          /* acn_backward calls since the last reset    */
    size_t dev_arena_used, dev_arena_peak, dev_arena_bytes; /* a GPU context's
                                  arena of floats (bytes); 0 on the CPU      */
} acn_stats;

#define ACN_ARENA_MIN 4096 /* the smallest arena_bytes a context accepts  */
ACNDEF acn_ctx_config acn_ctx_defaults(void);

/* A new context (cfg NULL: the defaults). On failure *out is NULL and the
 * status says why in a word (ACN_ERR_ARG, ACN_ERR_NOMEM); acn_ctx_new_ex
 * also writes the reason, a sentence, into why (why_cap bytes), since there
 * is no context to keep it. */
ACNDEF acn_status acn_ctx_new(acn_ctx **out, const acn_ctx_config *cfg);
ACNDEF acn_status acn_ctx_new_ex(acn_ctx **out, const acn_ctx_config *cfg, char *why, size_t why_cap);
ACNDEF void       acn_ctx_free(acn_ctx *ctx);
ACNDEF void       acn_reset(acn_ctx *ctx);     /* empty arena and tape       */
ACNDEF void       acn_stats_get(const acn_ctx *ctx, acn_stats *out);

ACNDEF acn_status  acn_status_of(const acn_ctx *ctx);
ACNDEF const char *acn_error(const acn_ctx *ctx);  /* "" when no error        */
ACNDEF void        acn_clear_error(acn_ctx *ctx);
/* Set the context's error from your own code (a custom op's callback, a
 * loader of your own), printf-style; the first error stays, as with acn.h's
 * own. code is an ACN_ERR_*; ACN_OK is taken as ACN_ERR_ARG. */
ACNDEF void        acn_set_error(acn_ctx *ctx, acn_status code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
ACNDEF const char *acn_status_name(acn_status s);  /* "ACN_ERR_SHAPE", ...    */
/* Where the context's floats live: ACN_DEVICE_CPU or ACN_DEVICE_CUDA, and
 * the device's name ("the CPU", or the GPU's name and memory). */
ACNDEF int         acn_device(const acn_ctx *ctx);
ACNDEF const char *acn_device_name(const acn_ctx *ctx);
/* Wait until the device has finished the work queued so far: a GPU
 * context's ops run asynchronously (reading a value waits by itself; a
 * timer needs this). Returns the error of a kernel that failed meanwhile,
 * if any. On the CPU it returns at once. */
ACNDEF acn_status  acn_sync(acn_ctx *ctx);
/* TF32 for a GPU context's matrix products: faster on NVIDIA GPUs since
 * Ampere, with 10-bit mantissas in the products' inputs (float32 sums), so
 * results are no longer within float32 rounding of the CPU's. Off by
 * default. ACN_ERR_STATE on a CPU context (which has no TF32). */
ACNDEF acn_status  acn_set_tf32(acn_ctx *ctx, int on);

/* Modes. no_grad: ops record nothing (evaluation). train: dropout active.
 * check_finite: every op output and gradient is scanned for NaN/Inf, and the
 * first one found becomes an ACN_ERR_NONFINITE error naming the op. Each
 * returns the previous setting. */
ACNDEF int acn_set_no_grad(acn_ctx *ctx, int on);
ACNDEF int acn_set_train(acn_ctx *ctx, int on);
ACNDEF int acn_set_check_finite(acn_ctx *ctx, int on);

/* Fast paths. The matrix kernel runs at one of these SIMD levels, chosen
 * at run time: a context starts at the best the CPU has, or at $ACN_SIMD
 * ("portable", "avx2", "avx512") when set; acn_set_simd changes it (never
 * above what the CPU has) and returns the level in force. Work is split
 * over a pool of threads, the caller included: $ACN_THREADS, else the
 * online cores; acn_set_threads changes it. Results are identical for every
 * thread count. */
enum { ACN_SIMD_PORTABLE, ACN_SIMD_AVX2, ACN_SIMD_AVX512 };
ACNDEF int         acn_set_simd(acn_ctx *ctx, int level);
ACNDEF int         acn_simd(const acn_ctx *ctx);
ACNDEF const char *acn_simd_name(int level);      /* "portable", "avx2", ... */
ACNDEF acn_status  acn_set_threads(acn_ctx *ctx, int n);
ACNDEF int         acn_threads(const acn_ctx *ctx);
/* The cache sizes the SIMD matrix kernel cuts its operands for (bytes, as
 * the CPU describes each cache: per core on most CPUs, whole where a cluster
 * of cores shares one), read from the CPU when a context starts (CPUID on x86), or from
 * $ACN_CACHE ("L1D,L2": "48K,1M", or bytes) when set; acn_set_cache sets
 * them (0, 0: read them from the CPU again). `from` says where they came
 * from. kc, kc_long and nc are the blocks they give at the context's SIMD
 * level (docs/design.md, "Fast paths"). They change the speed, never a
 * result: the kernel adds along K in the same order whatever the blocks.
 * Nor does `prefetch`. */
typedef struct acn_cache_info {
    size_t l1d, l2, l3;   /* bytes; l3 as the CPU reports it (not used)   */
    const char *from;     /* "cpuid", "$ACN_CACHE", "acn_set_cache", ...  */
    int kc, kc_long, nc;  /* K block, K block of a narrow product whose A
                           * rows are contiguous, N block (0: portable)   */
    int prefetch;         /* 1: the matrix kernel asks for the rows of its
                           * operands a few steps ahead (software prefetch):
                           * at the AVX-512 level, when the context's
                           * setting is on. The setting is on by default on
                           * Intel CPUs, where it was measured faster, off
                           * elsewhere; $ACN_PREFETCH "0" or "1" sets it
                           * when a context starts (other values: the
                           * default).                                    */
} acn_cache_info;
ACNDEF acn_cache_info acn_cache(const acn_ctx *ctx);
ACNDEF acn_status     acn_set_cache(acn_ctx *ctx, size_t l1d, size_t l2);

/* Parameters: zero-filled, named (use the PyTorch state_dict key), with a
 * gradient. The acn_tensor pointer stays valid for the life of the context;
 * creating a parameter may move the blocks (->data and ->grad change), so
 * create every parameter before the first step and before the optimizer. */
ACNDEF acn_tensor *acn_param(acn_ctx *ctx, const char *name, int ndim, const int *shape);
ACNDEF acn_tensor *acn_param_find(acn_ctx *ctx, const char *name);
ACNDEF acn_tensor *acn_params(acn_ctx *ctx, int *count); /* the table        */
ACNDEF size_t      acn_param_numel(const acn_ctx *ctx);  /* sum of numel     */
ACNDEF void        acn_param_set_decay(acn_tensor *p, int on);
ACNDEF void        acn_zero_grad(acn_ctx *ctx);          /* all parameters   */

/* Arena tensors (gone at acn_reset). acn_new: zero-filled; flags may hold
 * ACN_F_GRAD for a leaf that should receive a gradient. acn_input: a copy of
 * `data` (numel floats), no gradient. */
ACNDEF acn_tensor *acn_new(acn_ctx *ctx, int ndim, const int *shape, int flags);
ACNDEF acn_tensor *acn_input(acn_ctx *ctx, int ndim, const int *shape, const float *data);
/* t's values; for a transient, recomputed if evicted, and valid until the
 * next op runs. NULL (with the error set) only if the arena is full. On a
 * GPU context this is a device pointer: read the values with acn_read. */
ACNDEF float      *acn_data(acn_ctx *ctx, acn_tensor *t);
/* Values between the tensor and your memory, the same calls whatever the
 * device that holds the tensor (so a program written with them needs no
 * change to run on a GPU context, see docs/cuda.md). acn_read copies t's
 * numel values (recomputed if t is transient) into dst; acn_read_grad its
 * gradient (ACN_ERR_STATE when t has none: no gradient flows to it, or it
 * is an activation and backward has not reached it; a parameter always has
 * one, zeros until a backward adds to it). acn_write copies numel values from src into a
 * parameter or a leaf (acn_new, acn_input); an op's output is refused, as
 * the tape would no longer agree with it. acn_item: the value of a tensor
 * of one element (a loss), or NaN with the error set. */
ACNDEF acn_status  acn_read(acn_ctx *ctx, acn_tensor *t, float *dst);
ACNDEF acn_status  acn_read_grad(acn_ctx *ctx, acn_tensor *t, float *dst);
ACNDEF acn_status  acn_write(acn_ctx *ctx, acn_tensor *t, const float *src);
ACNDEF float       acn_item(acn_ctx *ctx, acn_tensor *t);
/* Two more that a training loop needs, on every device. acn_argmax: for
 * each row of t (..., C), out[r] = the index of its first largest value
 * (numel / C rows; a NaN compares as never larger). acn_grad_norm: the
 * Frobenius norm of t's gradient, its squares summed in double in index
 * order (on a GPU context, in a fixed order on the device, the norm then
 * rounded to float); NaN with the error set when t has none. */
ACNDEF acn_status  acn_argmax(acn_ctx *ctx, acn_tensor *t, int *out);
ACNDEF double      acn_grad_norm(acn_ctx *ctx, acn_tensor *t);

/* Arena marks: rewind the arena and the tape to an earlier point (everything
 * made after the mark is gone). Used by the gradient checker and eval loops. */
typedef struct acn_mark { size_t arena_used, dev_used; struct acn__node *tape; size_t tape_len; unsigned resets; } acn_mark;
ACNDEF acn_mark acn_mark_get(const acn_ctx *ctx);
ACNDEF void     acn_mark_rewind(acn_ctx *ctx, acn_mark m);

/* ------------------------------------------------------------------------ */
/* Ops. Each returns a new arena tensor, or NULL with the context's error    */
/* set. Shapes in comments: (B, T, C) etc.; "..." is any leading dims.      */
/* ------------------------------------------------------------------------ */
enum {
    ACN_RECOMPUTE = 1 << 0, /* keep no output: recompute it when needed      */
    ACN_GELU_TANH = 1 << 1  /* GELU: the tanh approximation, not exact erf   */
};

/* Elementwise with NumPy/PyTorch broadcasting (shapes aligned at the right,
 * each dim equal or 1). */
ACNDEF acn_tensor *acn_add(acn_ctx *ctx, acn_tensor *a, acn_tensor *b);
ACNDEF acn_tensor *acn_sub(acn_ctx *ctx, acn_tensor *a, acn_tensor *b);
ACNDEF acn_tensor *acn_mul(acn_ctx *ctx, acn_tensor *a, acn_tensor *b);
ACNDEF acn_tensor *acn_scale(acn_ctx *ctx, acn_tensor *x, float s);
/* xs[0] + xs[1] + ... + xs[n-1], all of one shape, summed in that order in
 * one pass (the ACN output: one buffer instead of n - 1). */
ACNDEF acn_tensor *acn_add_n(acn_ctx *ctx, acn_tensor *const *xs, int n);
/* Reductions over one axis (negative counts from the end) or ACN_AXIS_ALL.
 * The reduced axis is removed, as torch.sum(x, dim) does. */
ACNDEF acn_tensor *acn_sum(acn_ctx *ctx, acn_tensor *x, int axis);
ACNDEF acn_tensor *acn_mean(acn_ctx *ctx, acn_tensor *x, int axis);
/* a (..., M, K) @ b (..., K, N) -> (..., M, N); ta/tb: the operand is stored
 * transposed ((..., K, M) / (..., N, K)). b may be 2-D and shared by every
 * batch of a; otherwise the batch dims must be equal. */
ACNDEF acn_tensor *acn_matmul(acn_ctx *ctx, acn_tensor *a, acn_tensor *b, int ta, int tb);
/* x (..., in) W (out, in) b (out) or NULL -> (..., out) = x W^T + b */
ACNDEF acn_tensor *acn_linear(acn_ctx *ctx, acn_tensor *x, acn_tensor *W, acn_tensor *b);
/* A Linear along the middle axis, with no transposed copies:
 * x (B, T, D), W (J, T), b (J) or NULL -> (B, J, D),
 * out[b, j, d] = sum_t W[j, t] x[b, t, d] + b[j]: the function
 * acn_transpose(acn_linear(acn_transpose(x, 1, 2), W, b), 1, 2) computes
 * (the token mixing of an MLP-Mixer), equal to it up to rounding. */
ACNDEF acn_tensor *acn_linear_mid(acn_ctx *ctx, acn_tensor *x, acn_tensor *W, acn_tensor *b);
/* GELU(x W^T + b) in one op: the bias add and the exact GELU share one pass
 * over the product (flags: ACN_RECOMPUTE recomputes only the GELU). */
ACNDEF acn_tensor *acn_linear_gelu(acn_ctx *ctx, acn_tensor *x, acn_tensor *W, acn_tensor *b, int flags);
/* The feed-forward block of a Transformer or Mixer in one op:
 * GELU(x W1^T + b1) W2^T + b2, x (..., in), W1 (hidden, in), b1 (hidden)
 * or NULL, W2 (out, hidden), b2 (out) or NULL -> (..., out): the values of
 * acn_linear(acn_linear_gelu(x, W1, b1, 0), W2, b2), with the backward's
 * GELU' applied inside the product that makes the hidden layer's gradient,
 * so that gradient is never stored. With ACN_RECOMPUTE the hidden layer
 * itself is not stored either (a quarter less memory for the Mixer): the
 * products apply the GELU to the pre-activation as they read it, at the
 * cost of one more GELU pass in backward (the portable level stores it). */
ACNDEF acn_tensor *acn_ffn(acn_ctx *ctx, acn_tensor *x, acn_tensor *W1, acn_tensor *b1, acn_tensor *W2,
                           acn_tensor *b2, int flags);
/* ReLU(x W^T + b + skip) in one op: x (..., in), W (out, in), b (out) or
 * NULL, skip of the output's shape (..., out) -> (..., out). The values of
 * acn_relu(acn_add(acn_linear(x, W, b), skip)), bit for bit, in one pass
 * instead of three (the tail of the authors' Mixer block, before its
 * LayerNorm); the backward masks the output's gradient once and hands it
 * to skip and to the product. */
ACNDEF acn_tensor *acn_linear_add_relu(acn_ctx *ctx, acn_tensor *x, acn_tensor *W, acn_tensor *b, acn_tensor *skip);
ACNDEF acn_tensor *acn_gelu(acn_ctx *ctx, acn_tensor *x);
ACNDEF acn_tensor *acn_gelu_ex(acn_ctx *ctx, acn_tensor *x, int flags);
ACNDEF acn_tensor *acn_relu(acn_ctx *ctx, acn_tensor *x);
ACNDEF acn_tensor *acn_tanh(acn_ctx *ctx, acn_tensor *x);
/* softmax(x + mask) over the last axis; mask (additive) broadcasts onto x,
 * or NULL. */
ACNDEF acn_tensor *acn_softmax(acn_ctx *ctx, acn_tensor *x, acn_tensor *mask);
/* Mean cross-entropy of logits (..., C) against class labels (one per row),
 * with label smoothing eps (PyTorch: target (1-eps) one-hot + eps/C) and
 * rows whose label is ignore_index left out (use -1 for none). Scalar; 0
 * when every row is ignored (PyTorch gives NaN there). */
ACNDEF acn_tensor *acn_cross_entropy(acn_ctx *ctx, acn_tensor *logits, const int *labels,
                                     float smoothing, int ignore_index);
/* The same against soft targets (..., C) (CutMix, distillation). */
ACNDEF acn_tensor *acn_cross_entropy_soft(acn_ctx *ctx, acn_tensor *logits, acn_tensor *target,
                                          float smoothing);
/* LayerNorm over the last axis (biased variance); gamma, beta (D) or NULL. */
ACNDEF acn_tensor *acn_layernorm(acn_ctx *ctx, acn_tensor *x, acn_tensor *gamma, acn_tensor *beta,
                                 float eps);
ACNDEF acn_tensor *acn_layernorm_ex(acn_ctx *ctx, acn_tensor *x, acn_tensor *gamma,
                                    acn_tensor *beta, float eps, int flags);
ACNDEF acn_tensor *acn_transpose(acn_ctx *ctx, acn_tensor *x, int axis0, int axis1);
/* Same data, new shape; one dim may be -1 (inferred). */
ACNDEF acn_tensor *acn_reshape(acn_ctx *ctx, acn_tensor *x, int ndim, const int *shape);
ACNDEF acn_tensor *acn_concat(acn_ctx *ctx, acn_tensor *const *xs, int n, int axis);
/* x[..., start:start+len, ...] along axis */
ACNDEF acn_tensor *acn_slice(acn_ctx *ctx, acn_tensor *x, int axis, int start, int len);
/* images (B, C, H, W) -> patch rows (B, (H/p)*(W/p), C*p*p): patches in
 * row-major order, each row ordered (c, ky, kx) as a Conv2d(k=p, s=p) weight
 * (out, C, p, p) flattens, so acn_linear(patches, W.view(out, -1), b) is
 * that convolution. */
ACNDEF acn_tensor *acn_patches(acn_ctx *ctx, acn_tensor *images, int p);
/* table (V, D), ids (numel of shape) -> (shape..., D) */
ACNDEF acn_tensor *acn_embedding(acn_ctx *ctx, acn_tensor *table, const int *ids, int ndim,
                                 const int *shape);
/* Inverted dropout with the context's generator; identity when p == 0 or the
 * context is not in train mode. */
ACNDEF acn_tensor *acn_dropout(acn_ctx *ctx, acn_tensor *x, float p);
/* Multi-head scaled-dot-product attention, fused and exact:
 * q (B, Tq, D), k and v (B, Tk, D), D split into `heads` heads;
 * out_h = softmax(q_h k_h^T / sqrt(D/heads) + mask) v_h, heads concatenated.
 * mask: additive (B, Tk) over keys (padding), or NULL. */
ACNDEF acn_tensor *acn_attention(acn_ctx *ctx, acn_tensor *q, acn_tensor *k, acn_tensor *v,
                                 int heads, acn_tensor *mask);
/* The same with q, k and v the three column blocks of one tensor, as a fused
 * projection makes them: qkv (B, T, 3D) -> (B, T, D); the same values as
 * acn_attention on acn_slice(qkv, 2, 0, D), (.., D, D), (.., 2D, D), without
 * the three copies. */
ACNDEF acn_tensor *acn_attention_qkv(acn_ctx *ctx, acn_tensor *qkv, int heads, acn_tensor *mask);
/* The same values, cut from the tape: no gradient flows back through it. */
ACNDEF acn_tensor *acn_detach(acn_ctx *ctx, acn_tensor *x);

/* A user-defined op. fwd fills out->data from the inputs' data; bwd adds
 * each input's gradient (in[i]->grad, NULL when not needed) from
 * out->grad. Both may run again (fwd when recomputing), so keep them pure.
 * They get the context and return ACN_OK, or an error: the op (or the
 * backward) then fails, with the message the callback set through
 * acn_set_error, or else one naming the op and the code. */
typedef acn_status (*acn_custom_fwd_ex)(acn_ctx *ctx, acn_tensor *const *in, int n_in, acn_tensor *out,
                                        void *user);
typedef acn_status (*acn_custom_bwd_ex)(acn_ctx *ctx, acn_tensor *const *in, int n_in, acn_tensor *out,
                                        void *user);
ACNDEF acn_tensor *acn_custom_ex(acn_ctx *ctx, const char *name, acn_tensor *const *in, int n_in,
                                 int ndim, const int *shape, acn_custom_fwd_ex fwd,
                                 acn_custom_bwd_ex bwd, void *user);
/* The older form, kept for its callers: callbacks without the context that
 * cannot fail. */
typedef void (*acn_custom_fwd)(acn_tensor *const *in, int n_in, acn_tensor *out, void *user);
typedef void (*acn_custom_bwd)(acn_tensor *const *in, int n_in, acn_tensor *out, void *user);
ACNDEF acn_tensor *acn_custom(acn_ctx *ctx, const char *name, acn_tensor *const *in, int n_in,
                              int ndim, const int *shape, acn_custom_fwd fwd,
                              acn_custom_bwd bwd, void *user);

/* ------------------------------------------------------------------------ */
/* Autograd                                                                 */
/* ------------------------------------------------------------------------ */
/* Gradients of a scalar `loss` with respect to every parameter and leaf
 * (acn_new with ACN_F_GRAD) that it depends on. These accumulate (call
 * acn_zero_grad first, as with PyTorch), so calling it twice after zeroing
 * gives the same result. The gradients of intermediate tensors are released
 * during the walk (their ->grad is NULL afterwards), as PyTorch does for
 * non-leaf tensors; use acn_custom to observe one. */
ACNDEF acn_status acn_backward(acn_ctx *ctx, acn_tensor *loss);
/* The same from any output with the given upstream gradient (out->numel). */
ACNDEF acn_status acn_backward_with(acn_ctx *ctx, acn_tensor *out, const float *dout);

/* Gradient checker: central finite differences against acn_backward.
 * build() makes the output from the tensors in wrt (which need ACN_F_GRAD);
 * the checker compares, per tensor, ||analytic - numeric|| / ||numeric||
 * over up to max_elems sampled elements with a random projection of the
 * output, and fails a tensor above tol. */
typedef acn_tensor *(*acn_build_fn)(acn_ctx *ctx, void *user);
typedef struct acn_gradcheck_opts {
    float eps;       /* finite-difference step (default 1e-2)                */
    float tol;       /* largest relative error accepted (default 5e-3)       */
    int max_elems;   /* elements sampled per tensor (default 64)             */
    uint64_t seed;   /* sampling and projection seed                         */
} acn_gradcheck_opts;
typedef struct acn_gradcheck_result {
    double worst;    /* the largest relative error seen                      */
    int worst_index; /* index into wrt of that tensor                        */
    int checked;     /* elements compared in all                             */
} acn_gradcheck_result;
ACNDEF acn_gradcheck_opts acn_gradcheck_defaults(void);
ACNDEF acn_status acn_gradcheck(acn_ctx *ctx, acn_build_fn build, void *user,
                                acn_tensor *const *wrt, int n_wrt,
                                const acn_gradcheck_opts *opts, acn_gradcheck_result *res);

/* ------------------------------------------------------------------------ */
/* Random numbers and initialisers                                          */
/* ------------------------------------------------------------------------ */
/* SplitMix64: a seed gives the same integers and uniforms on every
 * platform; normals go through libm's log and cos, which may differ in the
 * last bit between C libraries. */
typedef struct acn_rng { uint64_t state; } acn_rng;
ACNDEF void     acn_rng_seed(acn_rng *r, uint64_t seed);
ACNDEF uint64_t acn_rng_u64(acn_rng *r);
ACNDEF float    acn_rng_uniform(acn_rng *r);  /* [0, 1), 24 random bits     */
ACNDEF float    acn_rng_normal(acn_rng *r);   /* N(0, 1), Box-Muller        */
ACNDEF acn_rng *acn_ctx_rng(acn_ctx *ctx);    /* the context's generator    */

/* Each fills t from the context's generator. fan_in/fan_out as PyTorch:
 * fan_in = shape[1] * prod(shape[2:]), fan_out = shape[0] * prod(shape[2:]). */
ACNDEF acn_status acn_init_uniform(acn_ctx *ctx, acn_tensor *t, float lo, float hi);
ACNDEF acn_status acn_init_normal(acn_ctx *ctx, acn_tensor *t, float mean, float std);
/* PyTorch trunc_normal_: N(mean, std) cut at the absolute bounds [lo, hi]. */
ACNDEF acn_status acn_init_trunc_normal(acn_ctx *ctx, acn_tensor *t, float mean, float std,
                                        float lo, float hi);
ACNDEF acn_status acn_init_xavier_uniform(acn_ctx *ctx, acn_tensor *t, float gain);
/* kaiming_uniform_(a, fan_in, leaky_relu): U(+-sqrt(6 / ((1 + a^2) fan_in))) */
ACNDEF acn_status acn_init_kaiming_uniform(acn_ctx *ctx, acn_tensor *t, float a);
/* PyTorch's Linear/Conv default: weight kaiming_uniform(a = sqrt(5)), i.e.
 * U(+-1/sqrt(fan_in)), and bias U(+-1/sqrt(fan_in)); b may be NULL. */
ACNDEF acn_status acn_init_linear(acn_ctx *ctx, acn_tensor *W, acn_tensor *b);
ACNDEF acn_status acn_init_const(acn_ctx *ctx, acn_tensor *t, float value);
ACNDEF acn_status acn_init_zeros(acn_ctx *ctx, acn_tensor *t);
ACNDEF acn_status acn_init_ones(acn_ctx *ctx, acn_tensor *t);

/* ------------------------------------------------------------------------ */
/* Optimizers, clipping, schedules                                          */
/* ------------------------------------------------------------------------ */
/* AdamW as torch.optim.AdamW: p -= lr*wd*p; m = b1 m + (1-b1) g;
 * v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 * Parameters with acn_param_set_decay(p, 0) skip the decay. The moments are
 * one block of 2 x (parameter floats), laid out as the parameter block. */
typedef struct acn_adamw {
    float beta1, beta2, eps, weight_decay;
    int64_t step;          /* steps taken                                    */
    size_t n;              /* parameter floats covered                       */
    float *m, *v;          /* (n) each: views into one block; on a GPU
                              context, device memory                         */
    int n_params;          /* parameter tensors when created                 */
    void *dev_;            /* private: the GPU unit that holds m and v       */
    uint64_t decay_sig_;   /* private: the decay settings the GPU has        */
} acn_adamw;
ACNDEF acn_status acn_adamw_init(acn_ctx *ctx, acn_adamw *opt, float beta1, float beta2,
                                 float eps, float weight_decay);
ACNDEF acn_status acn_adamw_step(acn_ctx *ctx, acn_adamw *opt, float lr);
ACNDEF void       acn_adamw_free(acn_adamw *opt);

/* SGD as torch.optim.SGD: g += wd p; buf = mu buf + (1 - dampening) g
 * (buf = g on the first step); g = nesterov ? g + mu buf : buf; p -= lr g. */
typedef struct acn_sgd {
    float momentum, dampening, weight_decay;
    int nesterov;
    int64_t step;
    size_t n;
    float *buf;            /* (n) momentum buffer                            */
    int n_params;
} acn_sgd;
ACNDEF acn_status acn_sgd_init(acn_ctx *ctx, acn_sgd *opt, float momentum, float dampening,
                               float weight_decay, int nesterov);
ACNDEF acn_status acn_sgd_step(acn_ctx *ctx, acn_sgd *opt, float lr);
ACNDEF void       acn_sgd_free(acn_sgd *opt);

/* torch.nn.utils.clip_grad_norm_: scale all parameter gradients by
 * max_norm / (norm + 1e-6) when that is below 1. Writes the norm before
 * clipping to *norm_out (may be NULL). */
ACNDEF acn_status acn_clip_grad_norm(acn_ctx *ctx, float max_norm, float *norm_out);

/* Learning rate at a 0-based step. Warmup-cosine: base*(s+1)/warmup for
 * s < warmup, then min + (base-min)(1 + cos(pi (s-warmup)/(total-warmup)))/2,
 * and min from s >= total. Step: base * gamma^floor(s / step_size). */
enum { ACN_SCHED_CONSTANT, ACN_SCHED_WARMUP_COSINE, ACN_SCHED_STEP };
typedef struct acn_schedule {
    int kind;
    float base_lr, min_lr, gamma;
    int64_t warmup, total, step_size;
} acn_schedule;
ACNDEF acn_schedule acn_schedule_constant(float lr);
ACNDEF acn_schedule acn_schedule_warmup_cosine(float base_lr, int64_t warmup, int64_t total,
                                               float min_lr);
ACNDEF acn_schedule acn_schedule_step(float base_lr, int64_t step_size, float gamma);
ACNDEF float        acn_lr_at(const acn_schedule *s, int64_t step);

/* ------------------------------------------------------------------------ */
/* Pruning and Synaptic Intelligence: state over the parameter block         */
/* ------------------------------------------------------------------------ */
/* Global unstructured pruning of chosen weights: of all their elements
 * together, the fraction `sparsity` with the smallest scores is pruned,
 * round(sparsity x count) elements exactly (ties: the earlier element in
 * the parameter block first):
 *   ACN_PRUNE_MAGNITUDE  score |w|
 *   ACN_PRUNE_MOVEMENT   score |w g|, g the gradient in ->grad now (sum it
 *                        over a few batches first: backward on each,
 *                        without acn_zero_grad between them); the
 *                        first-order saliency the paper calls movement
 *                        (Sanh et al.'s movement pruning sums -w g over
 *                        training instead). All-zero scores (no gradient)
 *                        are refused, and so is a NaN or an infinity
 * A weight may be listed once. The mask covers the whole parameter block
 * (parameters not listed keep everything); it is allocated here, never in
 * a step: acn_pruning_free releases it, and must come before the struct is
 * used for another acn_prune. acn_prune_apply zeroes what is pruned: the weights, their
 * gradients and, with opt, AdamW's moments. Call it right after acn_prune
 * and, to fine-tune, after each backward and after each optimizer step: a
 * pruned weight then stays exactly 0 (AdamW moves a weight only through
 * its gradient, its moments and its decay, all zero there), and so it is
 * in a saved checkpoint. */
enum { ACN_PRUNE_MAGNITUDE, ACN_PRUNE_MOVEMENT };
typedef struct acn_pruning {
    size_t n;              /* parameter floats covered (the block's)         */
    unsigned char *keep;   /* (n) 1 keeps, 0 prunes, laid out as the block   */
    size_t scored, pruned; /* elements of the listed weights, and pruned     */
} acn_pruning;
ACNDEF acn_status acn_prune(acn_ctx *ctx, acn_pruning *p, acn_tensor *const *weights, int n_weights,
                            float sparsity, int score);
ACNDEF acn_status acn_prune_apply(acn_ctx *ctx, const acn_pruning *p, acn_adamw *opt);
ACNDEF void       acn_pruning_free(acn_pruning *p);

/* Synaptic Intelligence (Zenke, Poole and Ganguli, ICML 2017), for
 * learning tasks one after another: the penalty
 *     c sum_k omega_k (w_k - w*_k)^2
 * holds each parameter near its value at the end of the tasks before (w*)
 * in proportion to its importance omega_k. Importance is earned along the
 * way: each step adds -g_k dw_k to a path sum (g the gradient of the task's
 * own loss, dw the step the optimizer took), and at a task's end
 *     omega_k += path_k / ((w_k - w_start_k)^2 + xi),
 * where w_start is where the task began; then w* = w_start = w and the path
 * starts again at 0. A step, in this order:
 *     acn_backward(ctx, task_loss);
 *     acn_si_penalty(ctx, &si, &pen);   (keeps g and w; adds the penalty's
 *                                        gradient 2 c omega (w - w*))
 *     acn_clip_grad_norm(...); acn_adamw_step(...);
 *     acn_si_update(ctx, &si);          (path -= g (w - w before the step))
 * and acn_si_consolidate(ctx, &si) at the end of each task. Before the
 * first consolidation omega is 0 and the penalty nothing. A second
 * acn_si_penalty before acn_si_update, or an acn_si_update without one, is
 * refused (ACN_ERR_STATE); acn_si_value reads the penalty without touching
 * anything. All state is one block of 6 x (parameter floats), laid out as
 * the parameter block, allocated by acn_si_init (acn_si_free releases it,
 * and must come before the struct is initialised again). */
typedef struct acn_si {
    float c, xi;           /* strength, damping                              */
    size_t n;              /* parameter floats covered                       */
    float *omega, *anchor, *start, *path, *g, *w;  /* (n) each: one block    */
    int tasks;             /* consolidations so far                          */
    int n_params;          /* parameter tensors when created                 */
    int pending;           /* acn_si_penalty was called, acn_si_update not   */
} acn_si;
ACNDEF acn_status acn_si_init(acn_ctx *ctx, acn_si *si, float c, float xi);
ACNDEF acn_status acn_si_penalty(acn_ctx *ctx, acn_si *si, float *penalty);
ACNDEF acn_status acn_si_value(acn_ctx *ctx, const acn_si *si, float *penalty);
ACNDEF acn_status acn_si_update(acn_ctx *ctx, acn_si *si);
ACNDEF acn_status acn_si_consolidate(acn_ctx *ctx, acn_si *si);
ACNDEF void       acn_si_free(acn_si *si);

/* ------------------------------------------------------------------------ */
/* Data parallel training over processes (ACN_MPI)                          */
/* ------------------------------------------------------------------------ */
/* Compiled with ACN_MPI (the implementation file built by mpicc), contexts
 * on the processes ("ranks") of MPI_COMM_WORLD train one model together
 * (docs/distributed.md): every rank holds the whole model, works on its
 * share of each global batch, and after backward the gradient blocks are
 * summed, so that every rank takes the same optimizer step and the
 * parameters stay equal. Without ACN_MPI, or before acn_dist_init, a
 * context is alone (rank 0 of 1) and every call below changes nothing, so
 * one program serves both.
 *
 * A step on each rank, for a global batch of B rows:
 *     acn_dist_rows(ctx, B, &off, &cnt);  rows [off, off + cnt) are this
 *                                         rank's (B / n each, the first
 *                                         B % n ranks one more)
 *     prepare all B rows with the generator every rank shares (so that
 *     augmentation draws do not depend on n), keep rows off .. off+cnt-1
 *     loss = the mean over those rows;   acn_backward(ctx, loss);
 *     acn_dist_sum_grads(ctx, (double)cnt / B);
 *     acn_clip_grad_norm(...); acn_adamw_step(...);  (the same on all ranks)
 * acn_dist_sum_grads scales this rank's gradient by weight (its rows' share
 * of the loss's denominator: cnt / B for a mean over rows, this rank's
 * counted tokens over all ranks' for a mean over tokens) and sums the
 * blocks over the ranks in one MPI_Allreduce. Dropout draws the numbers of
 * the whole global batch and keeps this rank's rows' (the generator skips
 * the others' in constant time), so its masks do not depend on n either:
 * the results of n ranks are those of one process, up to the order of
 * float sums. acn_dist_rows sets the rows that dropout takes, for the
 * steps that follow; every tensor dropout sees in training must then have
 * cnt rows first (a multiple of cnt elements).
 *
 * acn_dist_init joins MPI_COMM_WORLD (it calls MPI_Init_thread, funneled,
 * when the program has not); acn_dist_finalize ends MPI if acn_dist_init
 * started it. Every call here that talks to the other ranks does so even
 * when this context holds an error, so that no rank is left waiting:
 * acn_dist_sum_grads then fails on every rank (ACN_ERR_DIST on the others,
 * this rank's own error here), acn_dist_sum and acn_dist_any still give
 * their sums (a rank that failed tells the others with acn_dist_any).
 * acn_dist_local_size counts the ranks on this machine (to share its
 * cores: acn_set_threads(ctx, cores / local ranks)).
 * acn_dist_sum adds n doubles over the ranks in place (losses, counts of
 * correct answers); acn_dist_any sets *flag to 1 on every rank when any
 * rank passed a non-zero one (a stop signal, an error). Call them at the
 * same points on every rank, as every call here that talks to the others. acn_dist_broadcast_params
 * copies rank 0's parameter block to every rank. acn_dist_abort ends every
 * rank (MPI_Abort) when there are several, and returns when alone: for a
 * rank that failed where the others may be waiting for it. */
ACNDEF acn_status acn_dist_init(acn_ctx *ctx);
ACNDEF void       acn_dist_finalize(void);
ACNDEF int        acn_dist_rank(const acn_ctx *ctx);  /* 0 when alone      */
ACNDEF int        acn_dist_size(const acn_ctx *ctx);  /* 1 when alone      */
ACNDEF int        acn_dist_local_size(const acn_ctx *ctx); /* ranks on this machine (1 when alone) */
ACNDEF acn_status acn_dist_rows(acn_ctx *ctx, int batch, int *offset, int *count);
ACNDEF acn_status acn_dist_sum_grads(acn_ctx *ctx, double weight);
ACNDEF acn_status acn_dist_sum(acn_ctx *ctx, double *values, int n);
ACNDEF acn_status acn_dist_any(acn_ctx *ctx, int *flag);
ACNDEF acn_status acn_dist_broadcast_params(acn_ctx *ctx);
ACNDEF void       acn_dist_abort(acn_ctx *ctx, int code);

/* ------------------------------------------------------------------------ */
/* Models: blocks, wirings, probing                                         */
/* ------------------------------------------------------------------------ */
/* The same blocks wired three ways (docs/models.md, "Wirings"; docs/acn.md, "Long connections"):
 *   plain      x_i = f_i(x_{i-1})                       y = x_L
 *   residual   x_i = the block's residual form           y = x_L
 *   ACN        x_i = f_i(x_{i-1})                       y = x_0 + x_1 + ... + x_L
 *   ACN_DETACH x_i = f_i(detach(x_{i-1}))               y = x_0 + x_1 + ... + x_L
 * The head reads y. ACN_DETACH trains each block on its direct gradient only
 * (the gradient through its own long connection). */
enum { ACN_PLAIN, ACN_RESIDUAL, ACN_ACN, ACN_ACN_DETACH };
ACNDEF const char *acn_wiring_name(int wiring);   /* "plain", "residual", ... */
ACNDEF int         acn_wiring_parse(const char *name); /* -1 if unknown    */

#define ACN_MAX_BLOCKS 64
typedef struct acn_lin { acn_tensor *weight, *bias; } acn_lin; /* nn.Linear: (out, in), (out) */
typedef struct acn_ln { acn_tensor *weight, *bias; float eps; } acn_ln; /* nn.LayerNorm */

/* Forward functions share one contract:
 *   k       blocks to run, 0..depth, or -1 for all: truncated inference, whose
 *           cost grows with k;
 *   probes  NULL, or an array that receives the head's output after 0, 1,
 *           ..., k blocks, all in the same pass (ACN: the head of the partial
 *           sum x_0 + ... + x_j; plain and residual: of x_j);
 *   n_probes  the length of probes; shorter than k + 1 is an error
 *           (ACN_ERR_ARG). The forms without _ex and n_probes are kept for
 *           older callers: they trust probes to hold k + 1 tensors;
 *   return  the head's output after k blocks (probes[k]), or NULL on error. */

/* Deep MLP: x_0 = embed(x); block f(x) = LN(act(W x + b)) (LN optional);
 * residual form x + f(x); head: optional LN, then clf. Parameter names:
 * embed.{weight,bias}, blocks.i.fc.{weight,bias}, blocks.i.ln.{weight,bias},
 * ln.{weight,bias}, clf.{weight,bias}. Init: PyTorch defaults. */
enum { ACN_ACT_RELU, ACN_ACT_GELU, ACN_ACT_TANH, ACN_ACT_NONE };
typedef struct acn_mlp_config {
    int in, width, depth, classes;
    int act;              /* ACN_ACT_*                                      */
    int block_ln;         /* LayerNorm at the end of each block             */
    int head_ln;          /* LayerNorm before the classifier                */
    int bias;             /* biases in every Linear                         */
    float ln_eps;
    int wiring;
} acn_mlp_config;
typedef struct acn_mlp_block { acn_lin fc; acn_ln ln; } acn_mlp_block;
typedef struct acn_mlp {
    acn_mlp_config cfg;
    acn_lin embed;
    acn_mlp_block blocks[ACN_MAX_BLOCKS];
    acn_ln ln;
    acn_lin clf;
} acn_mlp;
ACNDEF acn_mlp_config acn_mlp_defaults(void); /* 64 -> 12 x 128 -> 10, GELU, LN */
ACNDEF acn_status acn_mlp_build(acn_ctx *ctx, acn_mlp *m, const acn_mlp_config *cfg);
/* x (B, in) -> logits (B, classes) */
ACNDEF acn_tensor *acn_mlp_forward_ex(acn_ctx *ctx, const acn_mlp *m, acn_tensor *x, int k,
                                      acn_tensor **probes, int n_probes);
ACNDEF acn_tensor *acn_mlp_forward(acn_ctx *ctx, const acn_mlp *m, acn_tensor *x, int k,
                                   acn_tensor **probes);

/* MLP-Mixer, the authors' form (docs/models.md, "MLP-Mixer, the authors' form"), or the textbook form.
 * Authors': patch embedding (a Conv2d(k=p, s=p) as a matmul on patches), a
 * CLS token at index 0, no position embedding; block
 *   tok(x) = LN over D, then across tokens: Linear(T -> token_hidden), GELU,
 *            Linear(token_hidden -> T)      (T tokens, the CLS token included)
 *   ch(x)  = LN, Linear(D -> channel_hidden), GELU, Linear(channel_hidden -> D)
 *   ACN and plain: u = ch(tok(x));              x_i = LN(ReLU(W u + b + x))
 *   residual: y1 = x + tok(x), y2 = y1 + ch(y1); x_i = LN(ReLU(W y2 + b + x))
 * head: LN, token 0, Linear. Textbook: no CLS token and no wrapper;
 *   residual x' = x + tok(x), x_i = x' + ch(x'); ACN and plain x_i = ch(tok(x));
 * head: LN, mean over tokens, Linear. Names: embed.{weight (D, C, p, p), bias},
 * cls (1, 1, D), blocks.i.tok.{ln,fc1,fc2}.*, blocks.i.ch.{ln,fc1,fc2}.*,
 * blocks.i.linear.*, blocks.i.ln.* (authors' form only), ln.*, clf.*.
 * Init: PyTorch defaults; cls N(0, 1). The defaults are the paper's
 * CIFAR-10 Mixer: 2,527,002 parameters. */
typedef struct acn_mixer_config {
    int image_h, image_w, channels, patch;
    int width, depth, token_hidden, channel_hidden, classes;
    int textbook;         /* the textbook block and head instead of the authors' */
    float ln_eps;
    int wiring;
    int recompute;        /* recompute GELU and LayerNorm outputs in backward */
} acn_mixer_config;
typedef struct acn_mixer_block {
    acn_ln tok_ln, ch_ln, ln;
    acn_lin tok_fc1, tok_fc2, ch_fc1, ch_fc2, linear;
} acn_mixer_block;
typedef struct acn_mixer {
    acn_mixer_config cfg;
    acn_tensor *embed_w, *embed_b, *cls;
    acn_mixer_block blocks[ACN_MAX_BLOCKS];
    acn_ln ln;
    acn_lin clf;
} acn_mixer;
ACNDEF acn_mixer_config acn_mixer_defaults(void);
ACNDEF acn_status acn_mixer_build(acn_ctx *ctx, acn_mixer *m, const acn_mixer_config *cfg);
/* images (B, C, H, W) -> logits (B, classes) */
ACNDEF acn_tensor *acn_mixer_forward_ex(acn_ctx *ctx, const acn_mixer *m, acn_tensor *images, int k,
                                        acn_tensor **probes, int n_probes);
ACNDEF acn_tensor *acn_mixer_forward(acn_ctx *ctx, const acn_mixer *m, acn_tensor *images, int k,
                                     acn_tensor **probes);

/* ViT of the authors' AC-ViT (docs/models.md, "ViT (AC-ViT)"): patch embedding plus a fixed
 * 2-D sin-cos position embedding, no CLS token; pre-LN block
 *   residual: h = x + Attn(LN1(x)), x_i = h + MLP(LN2(h))
 *   ACN and plain: x_i = MLP(LN2(Attn(LN1(x))))
 * head: LN, mean over tokens, Linear (zero-initialised). Attn: one qkv
 * Linear (3D, D), heads, one output Linear; MLP: Linear, GELU, Linear.
 * Names: embed.{weight (D, C, p, p), bias}, blocks.i.ln1.*,
 * blocks.i.attn.qkv.*, blocks.i.attn.proj.*, blocks.i.ln2.*,
 * blocks.i.mlp.fc1.*, blocks.i.mlp.fc2.*, ln.*, head.*. Init (mup-vit):
 * qkv and proj U(+-sqrt(3/D)) with zero biases; MLP Xavier-uniform with
 * N(0, 1e-6) biases; patch embedding LeCun-normal (truncated at 2 std),
 * zero bias; head zeros. Defaults: ViT-S/16 on 224 x 224. */
typedef struct acn_vit_config {
    int image_h, image_w, channels, patch;
    int width, depth, heads, mlp, classes;
    float ln_eps;
    int wiring;
    int recompute;
} acn_vit_config;
typedef struct acn_vit_block { acn_ln ln1, ln2; acn_lin qkv, proj, fc1, fc2; } acn_vit_block;
typedef struct acn_vit {
    acn_vit_config cfg;
    acn_tensor *embed_w, *embed_b;
    acn_vit_block blocks[ACN_MAX_BLOCKS];
    acn_ln ln;
    acn_lin head;
} acn_vit;
ACNDEF acn_vit_config acn_vit_defaults(void);
ACNDEF acn_status acn_vit_build(acn_ctx *ctx, acn_vit *m, const acn_vit_config *cfg);
ACNDEF acn_tensor *acn_vit_forward_ex(acn_ctx *ctx, const acn_vit *m, acn_tensor *images, int k,
                                      acn_tensor **probes, int n_probes);
ACNDEF acn_tensor *acn_vit_forward(acn_ctx *ctx, const acn_vit *m, acn_tensor *images, int k,
                                   acn_tensor **probes);
/* The fixed position embedding, (gh * gw, D): for patch (r, c) and
 * w_j = 10000^(-j / (D/4 - 1)), j < D/4: [sin(c w), cos(c w), sin(r w), cos(r w)]. */
ACNDEF acn_status acn_posemb_sincos_2d(int gh, int gw, int D, float *out);

/* BERT of the authors' AC-BERT (docs/models.md, "BERT (AC-BERT)"): token and position
 * embeddings, LayerNorm; post-LN block
 *   residual: a = LN_a(x + O(Attn(x))), x_i = LN_b(a + FC2(GELU(FC1(a))))
 *   ACN and plain: a = LN_a(O(Attn(x))), x_i = LN_b(FC2(GELU(FC1(a))))
 * with a padding mask; y has no final LayerNorm. Heads read y: MLM
 * (dense, GELU, LN, decoder to the vocabulary; untied from the input
 * embedding, as in the authors' ACN code) or classification (pooler:
 * dense + tanh on token 0, then a Linear). Names: embed.tok.weight (V, D),
 * embed.pos.weight (P, D), embed.ln.*, blocks.i.attn.{q,k,v,o}.*,
 * blocks.i.ln_a.*, blocks.i.mlp.fc1.*, blocks.i.mlp.fc2.*, blocks.i.ln_b.*,
 * mlm.dense.*, mlm.ln.*, mlm.decoder.*, pooler.*, clf.*. Init N(0, 0.02),
 * zero biases. Dropout (train mode) after the embedding and after each
 * attention and MLP output. Defaults: BERT-base sizes, vocabulary 30522. */
enum { ACN_BERT_MLM, ACN_BERT_CLS, ACN_BERT_NONE };
typedef struct acn_bert_config {
    int vocab, max_pos, width, depth, heads, mlp, classes;
    float ln_eps, dropout;
    int wiring;
    int recompute;
} acn_bert_config;
typedef struct acn_bert_block { acn_lin q, k, v, o, fc1, fc2; acn_ln ln_a, ln_b; } acn_bert_block;
typedef struct acn_bert {
    acn_bert_config cfg;
    acn_tensor *tok, *pos;
    acn_ln embed_ln;
    acn_bert_block blocks[ACN_MAX_BLOCKS];
    acn_lin mlm_dense, mlm_decoder, pooler, clf;
    acn_ln mlm_ln;
} acn_bert;
ACNDEF acn_bert_config acn_bert_defaults(void);
ACNDEF acn_status acn_bert_build(acn_ctx *ctx, acn_bert *m, const acn_bert_config *cfg);
/* tokens (B*T ids), mask (B*T: 1 real, 0 padding; NULL: all real) ->
 * ACN_BERT_MLM: logits (B, T, vocab); ACN_BERT_CLS: logits (B, classes);
 * ACN_BERT_NONE: y (B, T, width), what the heads read. */
ACNDEF acn_tensor *acn_bert_forward_ex(acn_ctx *ctx, const acn_bert *m, const int *tokens,
                                       const int *mask, int B, int T, int head, int k,
                                       acn_tensor **probes, int n_probes);
ACNDEF acn_tensor *acn_bert_forward(acn_ctx *ctx, const acn_bert *m, const int *tokens,
                                    const int *mask, int B, int T, int head, int k,
                                    acn_tensor **probes);
/* The MLM head alone on rows of y (..., width) -> logits (..., vocab). With
 * ACN_BERT_NONE and acn_embedding as a row gather it scores only the masked
 * positions, which is what MLM training needs: the same logits as those
 * rows of ACN_BERT_MLM, at a fraction of the decoder's cost. */
ACNDEF acn_tensor *acn_bert_mlm(acn_ctx *ctx, const acn_bert *m, acn_tensor *y);

/* ------------------------------------------------------------------------ */
/* Anytime inference: each input leaves when its head is sure enough         */
/* ------------------------------------------------------------------------ */
/* The blocks run one at a time on the whole batch; after block j (j >= 1)
 * the head reads the running output (ACN: x_0 + ... + x_j; plain and
 * residual: x_j) and a rule decides, input by input, whether that input
 * leaves with the logits it has now. Inputs that leave are taken out of
 * the batch (a row gather), so the blocks above cost only what stays. After
 * the last block every input that is left leaves. An input's logits are bit
 * for bit the full model's probe after the blocks it used (the blocks of
 * acn.h compute each input alone), so a rule that never fires gives the
 * full model's output (docs/compression.md, "Anytime inference").
 *
 * Rules:
 *   ACN_EXIT_CONFIDENCE  leave when the largest softmax probability is at
 *                        least threshold (a threshold above 1: never)
 *   ACN_EXIT_STABLE      leave when the prediction (arg max; the first of
 *                        equals) has been the same after `patience` blocks
 *                        in a row (1: leave after the first block)
 *   ACN_EXIT_CUSTOM      call fn after each block from min_blocks on, but
 *                        the last (where everyone leaves), with the logits
 *                        of the inputs still in the batch; it sets
 *                        leave[r] = 1 for those that go. rows[r] is row
 *                        r's index in the caller's batch. A non-zero return
 *                        stops the run with ACN_ERR_ARG.
 * min_blocks holds every input for at least that many blocks (0 or 1: the
 * rule is asked from the first block on). */
enum { ACN_EXIT_CONFIDENCE, ACN_EXIT_STABLE, ACN_EXIT_CUSTOM };
/* logits (n, classes): the inputs still running, after `blocks` blocks. */
typedef int (*acn_exit_fn)(void *user, int blocks, const float *logits, int n, int classes,
                           const int *rows, unsigned char *leave);
typedef struct acn_exit_rule {
    int kind;              /* ACN_EXIT_*                                     */
    float threshold;       /* CONFIDENCE: 0 leaves at once, > 1 never         */
    int patience;          /* STABLE: equal predictions in a row, >= 1        */
    int min_blocks;        /* no input leaves before this many blocks        */
    acn_exit_fn fn;        /* CUSTOM                                         */
    void *user;            /* CUSTOM: passed to fn                           */
} acn_exit_rule;
ACNDEF acn_exit_rule acn_exit_confidence(float threshold);
ACNDEF acn_exit_rule acn_exit_stable(int patience);
ACNDEF acn_exit_rule acn_exit_custom(acn_exit_fn fn, void *user);
/* Run the model on a batch of B inputs (as its forward takes them) with
 * per-input exits. logits (B, classes) receives each input's logits when it
 * left; blocks (B) how many blocks it used (1..depth; 0 for a model of 0
 * blocks), and may be NULL. The context runs in inference mode for the
 * call (no gradient, no dropout) and both settings come back after; the
 * arena keeps what the call made until the next acn_reset. BERT is not
 * covered (its blocks also read each sentence's padding mask). */
ACNDEF acn_status acn_mlp_anytime(acn_ctx *ctx, const acn_mlp *m, acn_tensor *x, const acn_exit_rule *rule,
                                  float *logits, int *blocks);
ACNDEF acn_status acn_mixer_anytime(acn_ctx *ctx, const acn_mixer *m, acn_tensor *images,
                                    const acn_exit_rule *rule, float *logits, int *blocks);
ACNDEF acn_status acn_vit_anytime(acn_ctx *ctx, const acn_vit *m, acn_tensor *images,
                                  const acn_exit_rule *rule, float *logits, int *blocks);

/* ------------------------------------------------------------------------ */
/* safetensors                                                              */
/* ------------------------------------------------------------------------ */
enum { ACN_DT_F32, ACN_DT_F16, ACN_DT_BF16, ACN_DT_F64, ACN_DT_I64, ACN_DT_I32, ACN_DT_U8,
       ACN_DT_OTHER };
typedef struct acn_st_entry {
    char name[ACN_NAME_MAX];
    int dtype;                 /* ACN_DT_*                                    */
    int ndim;                  /* up to 8 in a file                           */
    int64_t shape[8];
    size_t begin, end;         /* byte offsets in the data section            */
} acn_st_entry;
typedef struct acn_st {
    unsigned char *buf;        /* the whole file                              */
    size_t size, data_start;
    acn_st_entry *entries;
    int n;
    char **meta;               /* key0, value0, key1, value1, ...            */
    int n_meta;
} acn_st;

/* One tensor to write: any of the dtypes above but ACN_DT_OTHER, its data
 * in host byte order (written little-endian). */
typedef struct acn_st_item {
    const char *name;
    int dtype, ndim;
    int64_t shape[8];
    const void *data;
} acn_st_item;

/* Parse a file's bytes (copied). The reader treats its input as hostile:
 * header length within the file and at most 100 MB, strict JSON with UTF-8
 * strings, no duplicate names or fields, string-only __metadata__, dtypes
 * of the safetensors format only (BOOL, I8, I16, U16, U32, U64 and the F8
 * types are kept as ACN_DT_OTHER; an unknown name is refused), sizes equal
 * to shape x dtype with overflow checked, and tensors that tile the data
 * exactly (from 0, no gaps, no overlaps, no trailing bytes); the error
 * names what is wrong. acn_st_free releases. */
ACNDEF acn_status acn_st_parse(acn_ctx *ctx, acn_st *st, const void *bytes, size_t size, const char *name);
ACNDEF void       acn_st_free(acn_st *st);
ACNDEF const acn_st_entry *acn_st_find(const acn_st *st, const char *name);
ACNDEF const char *acn_st_meta(const acn_st *st, const char *key);
/* Copy a tensor of exactly n elements of the given dtype into dst (host
 * byte order). */
ACNDEF acn_status acn_st_get(acn_ctx *ctx, const acn_st *st, const char *name, int dtype, void *dst, size_t n);
ACNDEF acn_status acn_st_get_f32(acn_ctx *ctx, const acn_st *st, const char *name, float *dst,
                                 size_t n);
#ifndef ACN_NO_STDIO
/* Read a whole file and parse it as acn_st_parse does. */
ACNDEF acn_status acn_st_read(acn_ctx *ctx, const char *path, acn_st *st);
/* Write items (any dtype) with string metadata given as n_meta key/value
 * pairs (kv[2i], kv[2i+1]): to path.tmp, synced, then renamed over path. */
ACNDEF acn_status acn_st_write_items(acn_ctx *ctx, const char *path, const acn_st_item *items, int n,
                                     const char *const *kv, int n_meta);
/* Write F32 tensors named by their ->name, as acn_st_write_items does. */
ACNDEF acn_status acn_st_write(acn_ctx *ctx, const char *path, acn_tensor *const *tensors, int n,
                               const char *const *kv, int n_meta);
/* Every parameter of the context, by name. Loading is strict: each
 * parameter must be in the file with its shape, and the file may hold
 * nothing else. */
ACNDEF acn_status acn_save_params(acn_ctx *ctx, const char *path, const char *const *kv, int n_meta);
ACNDEF acn_status acn_load_params(acn_ctx *ctx, const char *path);
/* The model cut to its first k blocks, as a file: every parameter except
 * those of blocks k and above (names "blocks.<j>." with j >= k), with the
 * caller's metadata and "depth" = k (a "depth" key of kv is replaced). The
 * model built with depth k loads it with acn_load_params, and its output
 * is bit for bit the full model's probe after k blocks (the head is shared
 * by every probe; docs/models.md, "Cut models"). k in [0, ACN_MAX_BLOCKS]. */
ACNDEF acn_status acn_save_cut(acn_ctx *ctx, const char *path, int k, const char *const *kv, int n_meta);
#endif

#ifndef ACN_NO_STDIO
/* Checkpoints for exact resume: a pair of files, both carrying the step.
 * weights_path: every parameter by name (PyTorch-loadable), metadata "step"
 * plus the caller's key/value pairs; state_path: the AdamW moments and step,
 * the context's generator and the sampler's cursor, as exact F32/I64 items.
 * Loading refuses a pair whose steps differ, state of another dtype or
 * shape, a step tensor other than the metadata's step, a negative step, a
 * sampler cursor outside [0, 2^31) epochs and [0, smp->n] positions or of
 * another seed, and weights the model lacks; it checks everything before it
 * changes anything, so on an error the parameters, opt, smp and the
 * generator are as they were. opt and smp may be NULL (nothing of theirs is
 * saved or restored). */
struct acn_sampler;
ACNDEF acn_status acn_save_checkpoint(acn_ctx *ctx, const char *weights_path, const char *state_path,
                                      const acn_adamw *opt, const struct acn_sampler *smp, int64_t step,
                                      const char *const *kv, int n_meta);
ACNDEF acn_status acn_load_checkpoint(acn_ctx *ctx, const char *weights_path, const char *state_path,
                                      acn_adamw *opt, struct acn_sampler *smp, int64_t *step);
#endif

/* ------------------------------------------------------------------------ */
/* Data sets                                                                */
/* ------------------------------------------------------------------------ */
/* Labelled examples in memory. Each example is c x h x w values (a table
 * row: c features, h = w = 1), kept as the file has them: bytes for images
 * (u8) or floats for text tables (f32); value = stored * scale. Loading
 * allocates (ACN_MALLOC) once; acn_data_free releases. */
typedef struct acn_dataset {
    int n;                 /* examples                                       */
    int c, h, w;           /* shape of one example                           */
    int classes;           /* labels lie in [0, classes)                     */
    unsigned char *u8;     /* (n, c h w) bytes, or NULL                      */
    float *f32;            /* (n, c h w) values, or NULL                     */
    float scale;           /* pixels: 1/255                                  */
    int *labels;           /* (n)                                            */
    int *coarse;           /* (n) CIFAR-100's 20 coarse labels, else NULL    */
} acn_dataset;
ACNDEF void acn_data_free(acn_dataset *ds);
/* Examples idx[0..b-1] as floats x (b, c, h, w) = stored * scale, and their
 * labels y (b) (either may be NULL). */
ACNDEF void acn_data_batch(const acn_dataset *ds, const int *idx, int b, float *x, int *y);
/* A new data set of the examples of src in file order, keeping the first
 * k_per_class of each class (k_per_class < 0: all), from the classes listed
 * (classes NULL: all); with a list, labels become positions in it, so
 * classes {3, 5} train as a 2-class problem. The paper's low-data setting
 * is k_per_class = 100 on CIFAR-10. */
ACNDEF acn_status acn_data_select(acn_ctx *ctx, const acn_dataset *src, acn_dataset *dst, int k_per_class,
                                  const int *classes, int n_classes);

/* Seeded shuffling in batches. The order of epoch e is a permutation drawn
 * from (seed, e) alone, so the cursor (epoch, pos) is all there is to save:
 * acn_sampler_seek resumes exactly. */
typedef struct acn_sampler {
    int n, batch, drop_last;
    uint64_t seed;
    int64_t epoch, pos;    /* the cursor: next is order[pos] of this epoch   */
    int *order;            /* (n) this epoch's permutation                   */
} acn_sampler;
ACNDEF acn_status acn_sampler_init(acn_ctx *ctx, acn_sampler *s, int n, int batch, uint64_t seed, int drop_last);
/* Up to batch indices of this epoch into idx; 0 when the epoch is over (the
 * next call starts the next epoch). With drop_last, a short last batch is
 * skipped (n / batch batches an epoch; fewer examples than a batch is an
 * error at init). */
ACNDEF int  acn_sampler_next(acn_sampler *s, int *idx);
ACNDEF void acn_sampler_seek(acn_sampler *s, int64_t epoch, int64_t pos);
ACNDEF void acn_sampler_free(acn_sampler *s);

#ifndef ACN_NO_STDIO
/* CIFAR-10 (records of 1 label byte + 3072 pixel bytes, channel-major
 * 3 x 32 x 32) or, with cifar100, CIFAR-100 (coarse and fine label bytes,
 * then the pixels; labels are the fine ones), from n_paths files in order. */
ACNDEF acn_status acn_data_cifar(acn_ctx *ctx, acn_dataset *ds, const char *const *paths, int n_paths,
                                 int cifar100);
/* An IDX image file (magic 0x00000803, n x rows x cols bytes) and its IDX
 * label file (0x00000801), as MNIST and Fashion-MNIST ship them, unzipped. */
ACNDEF acn_status acn_data_idx(acn_ctx *ctx, acn_dataset *ds, const char *images, const char *labels);
/* A CSV file of numbers, one example a line, the label (an integer in
 * [0, 1000000]) last; values are multiplied by scale (the UCI digits: 0..16,
 * scale 1/16). NaN, inf and values beyond float's range are refused, with
 * the file, line and column. */
ACNDEF acn_status acn_data_csv(acn_ctx *ctx, acn_dataset *ds, const char *path, float scale);
#endif

/* Augmentation, in place on a float batch x (b, c, h, w), drawing from the
 * generator r. None allocates. */
/* Random crop with zero padding: each image shifted by (dy, dx) drawn from
 * [-pad, pad], the uncovered border zero (torchvision RandomCrop(h, pad)). */
ACNDEF void acn_aug_crop(acn_rng *r, float *x, int b, int c, int h, int w, int pad);
/* Each image mirrored left-right with probability 1/2. */
ACNDEF void acn_aug_flip(acn_rng *r, float *x, int b, int c, int h, int w);
/* x[:, k] = (x[:, k] - mean[k]) / std[k] for each channel k. */
ACNDEF void acn_aug_normalize(float *x, int b, int c, int h, int w, const float *mean, const float *std);
/* x += sigma N(0, 1), for n values (sigma in the units of x: after
 * normalisation, normalised units). */
ACNDEF void acn_aug_gaussian(acn_rng *r, float *x, size_t n, float sigma);
/* Each pixel (all its channels) set to hi with probability p/2 and to lo
 * with probability p/2 (before normalisation: lo 0, hi 1). */
ACNDEF void acn_aug_salt_pepper(acn_rng *r, float *x, int b, int c, int h, int w, float p, float lo, float hi);
/* Beta(a, b) from two gamma draws (Marsaglia and Tsang). */
ACNDEF float acn_rng_beta(acn_rng *r, float a, float b);
/* CutMix (docs/acn.md, "Numerical conventions"), with probability p: lambda ~ Beta(beta, beta), one box
 * of area (1 - lambda) h w at a uniform centre, clipped to the image; image
 * i takes the box from image b-1-i, and lambda becomes 1 - (clipped area) /
 * (h w). targets (b, classes) receive lambda onehot(y_i) + (1 - lambda)
 * onehot(y_{b-1-i}) (one-hot when no mix), for acn_cross_entropy_soft.
 * Returns lambda (1 when no mix); box, if not NULL, gets y0, x0, y1, x1. */
ACNDEF float acn_aug_cutmix(acn_rng *r, float *x, const int *y, int b, int c, int h, int w, int classes, float p,
                            float beta, float *targets, int *box);

/* AutoAugment with the CIFAR-10 policy of Cubuk et al. (2019), as
 * torchvision's AutoAugment(AutoAugmentPolicy.CIFAR10) applies it to a PIL
 * image: per image, one of the 25 sub-policies drawn uniformly, each of its
 * two operations applied with its probability, at its magnitude bin (of 10),
 * a signed magnitude negated with probability 1/2. x holds pixel values k/255
 * (before normalisation, c = 1 or 3); the operations work on the bytes, as
 * PIL does (nearest-neighbour sampling, black fill). scratch: 2 c h w bytes. */
ACNDEF void acn_aug_autoaugment(acn_rng *r, float *x, int b, int c, int h, int w, unsigned char *scratch);
/* The operations, one at a time on a byte image (c, h, w); magnitudes in
 * torchvision's units: shear = tan of the shear angle, translate in pixels
 * (truncated), rotate in degrees (counter-clockwise), brightness, color,
 * contrast and sharpness blend with factor 1 + magnitude, posterize keeps
 * magnitude bits, solarize inverts values >= magnitude; the last three take
 * none. tmp: c h w bytes. */
enum { ACN_AA_SHEAR_X, ACN_AA_SHEAR_Y, ACN_AA_TRANSLATE_X, ACN_AA_TRANSLATE_Y, ACN_AA_ROTATE,
       ACN_AA_BRIGHTNESS, ACN_AA_COLOR, ACN_AA_CONTRAST, ACN_AA_SHARPNESS, ACN_AA_POSTERIZE,
       ACN_AA_SOLARIZE, ACN_AA_AUTOCONTRAST, ACN_AA_EQUALIZE, ACN_AA_INVERT, ACN_AA_COUNT };
ACNDEF void        acn_aa_apply(int op, double magnitude, unsigned char *img, int c, int h, int w,
                                unsigned char *tmp);
ACNDEF const char *acn_aa_name(int op);             /* "ShearX", ...         */
/* The magnitude of bin (0..9) of op for an h x w image (0 where it takes
 * none), and whether the op's magnitude is signed. */
ACNDEF double      acn_aa_magnitude(int op, int bin, int h, int w, int *is_signed);
/* Step (0 or 1) of sub-policy sub (0..24) of the CIFAR-10 policy: its
 * operation, probability and magnitude bin (-1: none). 0 if out of range. */
ACNDEF int         acn_aa_cifar10_step(int sub, int step, int *op, float *p, int *bin);

/* Training recipes: the augmentation and loss settings of a run, applied
 * to a batch of pixel values in [0, 1]. "paper" (docs/acn.md, "Training settings"): random
 * crop (pad 4) twice, AutoAugment, per-channel normalisation, CutMix (p 0.5,
 * beta 1), label smoothing 0.1, no flip. "simple": random crop, flip,
 * normalisation, label smoothing 0.1. "none": normalisation only. */
typedef struct acn_recipe {
    int crops;             /* random crops with zero padding, one after another */
    int pad;               /* their padding                                  */
    int flip;              /* horizontal flip with probability 1/2           */
    int autoaugment;       /* AutoAugment, CIFAR-10 policy                   */
    float cutmix_p, cutmix_beta;
    float smoothing;       /* label smoothing of the loss                    */
    int normalize;         /* (x - mean) / std per channel                   */
    float mean[3], std[3];
} acn_recipe;
/* Fill *out with a named recipe ("paper", "simple", "none"); the
 * normalisation is CIFAR-10's (docs/acn.md, "Training settings"). ACN_ERR_ARG if unknown. */
ACNDEF acn_status acn_recipe_get(const char *name, acn_recipe *out);
/* Augment x (b, c, h, w) in place and write soft targets (b, classes) with
 * the CutMix mix and the label smoothing folded in, for
 * acn_cross_entropy_soft(..., 0): target = (1 - eps) mix + eps / classes.
 * Order: crops, flip, AutoAugment, normalisation, CutMix. scratch: 2 c h w
 * bytes (AutoAugment's). Returns CutMix's lambda (1 when no mix), or -1
 * with x untouched when c is not 1, 2 or 3 (mean and std hold three). */
ACNDEF float acn_recipe_apply(const acn_recipe *rc, acn_rng *r, float *x, const int *y, int b, int c, int h,
                              int w, int classes, float *targets, unsigned char *scratch);

/* Text: a word-level vocabulary and labelled sentences as word ids. */
enum { ACN_TOK_PAD, ACN_TOK_UNK, ACN_TOK_CLS, ACN_TOK_SEP, ACN_TOK_MASK, ACN_TOK_SPECIAL };
typedef struct acn_vocab {
    int size;              /* ids 0..size-1: the ACN_TOK_SPECIAL tokens first */
    char **words;          /* (size) "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", words */
    int *sorted;           /* (size) ids in the order of their words         */
    char *pool;            /* the words' storage                             */
} acn_vocab;
typedef struct acn_textset {
    int n, classes;
    int *labels;           /* (n)                                            */
    size_t *start;         /* (n + 1) example i is ids[start[i] .. start[i+1]) */
    int *ids;              /* word ids, example after example                */
} acn_textset;
/* The id of a word (len bytes), or -1 when it is not in the vocabulary. */
ACNDEF int  acn_vocab_find(const acn_vocab *v, const char *word, size_t len);
ACNDEF void acn_vocab_free(acn_vocab *v);
ACNDEF void acn_text_free(acn_textset *ts);
/* Rows of T tokens for examples idx[0..b-1]: [CLS], then the words (cut at
 * T), then [PAD]; mask 1 for a token, 0 for padding; either of mask and
 * labels may be NULL. */
ACNDEF void acn_text_batch(const acn_textset *ts, const int *idx, int b, int T, int *tokens, int *mask, int *labels);
#ifndef ACN_NO_STDIO
/* GLUE-style TSV (SST-2): a header line, then "label<TAB>text" lines, the
 * text's words separated by spaces; a header that starts "sentence<TAB>"
 * (GLUE's own files) means "text<TAB>label" lines. Labels are 0 or 1 (two
 * classes, ts->classes = 2); any other label, or a NUL byte, is refused with
 * the file and line. A line may have no words. With build, the vocabulary is made from
 * this file's words seen at least min_count times (the most frequent first,
 * ties in alphabetical order) and written to *vocab; without, *vocab is used
 * and unknown words become [UNK]. Text that spells a special token ("[PAD]",
 * "[UNK]", "[CLS]", "[SEP]", "[MASK]") is not a word: it never enters the
 * vocabulary and is read as [UNK], so a file cannot pad, mask or split. */
ACNDEF acn_status acn_text_tsv(acn_ctx *ctx, acn_textset *ts, const char *path, acn_vocab *vocab, int build,
                               int min_count);
#endif

#if defined(ACN_CUDA) || defined(ACN__CUDA_UNIT)
/* ------------------------------------------------------------------------ */
/* Private: the GPU unit, acn_cuda.cu, as the implementation calls it       */
/* (docs/cuda.md). Each is the device twin of the CPU kernel it names       */
/* there; buffers are device memory (those ending in _h: host). Each       */
/* returns ACN_OK or an ACN_ERR_* code with the reason in acn__cu_msg; work */
/* is queued in order on the unit's stream, and only the calls marked      */
/* "waits" wait for it.                                                    */
/* ------------------------------------------------------------------------ */
typedef struct acn__cu acn__cu;
enum { ACN__CU_H2D, ACN__CU_D2H, ACN__CU_D2D };                       /* copies */
enum { ACN__CU_ADD, ACN__CU_SUB, ACN__CU_MUL };                      /* binary */
enum { ACN__CU_GELU, ACN__CU_GELU_TANH, ACN__CU_RELU, ACN__CU_TANH }; /* unary  */
#define ACN__CU_ADDN_MAX 64  /* inputs add_n takes in one launch          */
extern int         acn__cu_devices(int *count, char *why, size_t why_cap);
extern int         acn__cu_open(acn__cu **out, int ordinal, char *why, size_t why_cap);
extern void        acn__cu_close(acn__cu *g);
extern const char *acn__cu_msg(const acn__cu *g);
extern const char *acn__cu_name(const acn__cu *g);
extern int         acn__cu_set_tf32(acn__cu *g, int on);
extern int         acn__cu_sync(acn__cu *g, const char *what);                         /* waits */
extern int         acn__cu_alloc(acn__cu *g, void **p, size_t bytes, const char *what);
extern void        acn__cu_free(acn__cu *g, void *p);
extern int         acn__cu_host_alloc(acn__cu *g, void **p, size_t bytes, const char *what);
extern void        acn__cu_host_free(acn__cu *g, void *p);
extern int         acn__cu_copy(acn__cu *g, void *dst, const void *src, size_t bytes, int dir,
                                const char *what);                                /* D2H waits */
extern int         acn__cu_zero(acn__cu *g, void *p, size_t bytes, const char *what);
extern int         acn__cu_fill(acn__cu *g, float *p, size_t n, float v, const char *what);
extern int         acn__cu_axpy(acn__cu *g, size_t n, float a, const float *x, float *y, int accumulate,
                                const char *what);
extern int         acn__cu_add_n(acn__cu *g, const float *const *xs_h, int k, size_t n, float *out,
                                 const char *what);
extern int         acn__cu_binary(acn__cu *g, int op, const int n4[4], const size_t sa[4], const size_t sb[4],
                                  const float *a, const float *b, float *out, const char *what);
extern int         acn__cu_binary_bwd(acn__cu *g, int op, int second, const int n4[4], const size_t s_self[4],
                                      const size_t s_other[4], size_t m, const float *d, const float *other,
                                      float *grad, const char *what);
extern int         acn__cu_unary(acn__cu *g, int op, size_t n, const float *x, float *y, const char *what);
extern int         acn__cu_unary_bwd(acn__cu *g, int op, size_t n, const float *xy, const float *d, float *gx,
                                     int accumulate, const char *what);
extern int         acn__cu_gemm(acn__cu *g, int M, int N, int K, const float *A, int lda, int ta, const float *B,
                                int ldb, int tb, float *C, int ldc, int accumulate, int batch, long long sa,
                                long long sb, long long sc, const char *what);
extern int         acn__cu_add_rows(acn__cu *g, size_t R, int N, const float *bias, float *C, int ldc,
                                    const char *what);
extern int         acn__cu_colsum(acn__cu *g, size_t R, size_t C, const float *d, float *out, int accumulate,
                                  const char *what);
extern int         acn__cu_reduce(acn__cu *g, size_t outer, size_t len, size_t inner, int mean, const float *x,
                                  float *out, const char *what);
extern int         acn__cu_reduce_bwd(acn__cu *g, size_t outer, size_t len, size_t inner, float k, const float *d,
                                      float *gx, const char *what);
extern int         acn__cu_ln_fwd(acn__cu *g, size_t R, int D, const float *x, const float *gamma,
                                  const float *beta, float eps, float *out, float *mean, float *rstd,
                                  const char *what);
extern int         acn__cu_ln_bwd(acn__cu *g, size_t R, int D, const float *x, const float *gamma,
                                  const float *mean, const float *rstd, const float *d, float *gx, float *ggamma,
                                  float *gbeta, const char *what);
extern int         acn__cu_softmax(acn__cu *g, size_t R, int C, float scale, const float *x, const float *mask,
                                   const int n4[4], const size_t ms[4], float *out, const char *what);
extern int         acn__cu_softmax_bwd(acn__cu *g, size_t R, int C, float scale, const float *y, const float *d,
                                       float *gx, int accumulate, const char *what);
extern int         acn__cu_xent(acn__cu *g, size_t R, int C, const float *z, const int *labels,
                                const float *target, int ignore, float eps, int count, double *rowloss, float *out,
                                const char *what);
extern int         acn__cu_xent_bwd(acn__cu *g, size_t R, int C, const float *z, const int *labels,
                                    const float *target, int ignore, float eps, int count, const float *dout,
                                    float *gz, float *gt, const char *what);
extern int         acn__cu_transpose(acn__cu *g, const int n4[4], int a0, int a1, const float *x, float *out,
                                     int accumulate, const char *what);
extern int         acn__cu_copy2d(acn__cu *g, size_t rows, size_t cols, const float *src, size_t sld, float *dst,
                                  size_t dld, int accumulate, const char *what);
extern int         acn__cu_patches(acn__cu *g, int B, int C, int H, int W, int p, const float *src, float *dst,
                                   int backward, const char *what);
extern int         acn__cu_embed(acn__cu *g, size_t n, int D, const float *table, const int *ids, float *out,
                                 const char *what);
extern int         acn__cu_embed_bwd(acn__cu *g, size_t n, int D, const float *d, const int *ids, float *gtable,
                                     const char *what);
extern int         acn__cu_dropout_mask(acn__cu *g, size_t n, float p, uint64_t state, unsigned char *keep,
                                        const char *what);
extern int         acn__cu_mask_scale(acn__cu *g, size_t n, const unsigned char *keep, float s, const float *x,
                                      float *y, int accumulate, const char *what);
extern int         acn__cu_adamw(acn__cu *g, size_t n, float *w, const float *grad, float *m, float *v,
                                 const unsigned char *nodecay, const float *hp, float b1, float b2, float eps,
                                 const char *what);
extern int         acn__cu_clip(acn__cu *g, size_t n, float *grad, float max_norm, void *scratch, float *norm_out,
                                const char *what);
extern size_t      acn__cu_clip_scratch_bytes(void);
#endif

#ifdef __cplusplus
}
#endif
#endif /* ACN_H */

/* ======================================================================== */
/*                             IMPLEMENTATION                               */
/* ======================================================================== */
#ifdef ACN_IMPLEMENTATION
#ifndef ACN__IMPLEMENTED
#define ACN__IMPLEMENTED

#include <math.h>
#include <stdarg.h>
#include <stdio.h>   /* snprintf; FILE only outside ACN_NO_STDIO */
#include <string.h>
#include <errno.h>   /* the system's reason when a file cannot be opened */

#include <stdlib.h>  /* getenv, atoi; malloc and free unless overridden */
#if !defined(ACN_NO_THREADS) && !defined(_WIN32) && !defined(__wasi__) && (defined(__GNUC__) || defined(__clang__))
#include <pthread.h>  /* (the pool's hand-over uses GCC's __atomic built-ins) */
#include <unistd.h>  /* sysconf: the number of online cores */
#include <time.h>    /* clock_gettime: what a hand-over costs (see acn__parallel) */
#define ACN__THREADS 1
#if defined(__linux__) && !defined(ACN_NO_AFFINITY)
#include <sched.h>
#if defined(CPU_SET)  /* declared when GNU's extensions were asked for */
#define ACN__AFFINITY 1
#endif
#endif
#endif
#if !defined(ACN_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <cpuid.h>     /* the cache sizes (acn_cache) */
#define ACN__X86 1
#endif
#if defined(__linux__) && !defined(ACN_NO_HUGEPAGES)
#include <sys/mman.h>  /* madvise */
#include <unistd.h>    /* sysconf */
#if defined(MADV_HUGEPAGE)  /* declared when GNU's extensions were asked for */
#define ACN__HUGEPAGES 1
#endif
#endif
#ifndef ACN_MALLOC
#define ACN_MALLOC(n) malloc(n)
#endif
#ifndef ACN_FREE
#define ACN_FREE(p) free(p)
#endif
#ifndef ACN_ASSERT
#include <assert.h>
#define ACN_ASSERT(x) assert(x)
#endif
#ifdef ACN_MPI
#if defined(__cplusplus) && !defined(OMPI_SKIP_MPICXX)
#define OMPI_SKIP_MPICXX 1 /* the C interface only, not MPI's C++ classes */
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>     /* data parallel over processes (acn_dist_*)          */
#endif

/* fsync() and fileno() are declared only when POSIX was asked for before
 * the first standard header: by acn.h itself when it comes first, by the
 * compiler's default (GNU) mode, or by the user. glibc says which through
 * __USE_POSIX; elsewhere _POSIX_C_SOURCE does. */
#if !defined(ACN_NO_STDIO) && !defined(ACN_NO_POSIX) && !defined(_WIN32)
#include <unistd.h>
#if defined(__GLIBC__)
#if defined(__USE_POSIX)
#define ACN__HAVE_FSYNC 1
#endif
#elif (defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200112L) || defined(_GNU_SOURCE) || defined(__APPLE__)
#define ACN__HAVE_FSYNC 1
#endif
#endif

/* AddressSanitizer: the unused parts of the arena and of the parameter and
 * gradient blocks are poisoned, and every arena allocation is followed by a
 * poisoned red zone, so reading past the end of a tensor is reported. */
#if defined(__SANITIZE_ADDRESS__)
#define ACN__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ACN__ASAN 1
#endif
#endif
#ifdef ACN__ASAN
#include <sanitizer/asan_interface.h>
#define ACN__POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ACN__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define ACN__REDZONE 64
#else
#define ACN__POISON(p, n) ((void)(p), (void)(n))
#define ACN__UNPOISON(p, n) ((void)(p), (void)(n))
#define ACN__REDZONE 0
#endif

#define ACN__ALIGN 64     /* bytes; every arena block and parameter view   */
#define ACN__SLOTS 4      /* scratch slots for transient (recomputed) data */
#define ACN__MAX_THREADS 64

#ifdef __cplusplus
extern "C" {
#endif

/* One recorded op. The op's table entry (acn__ops[op]) knows how to run it
 * forward (again, for a transient output) and backward. */
typedef struct acn__node {
    int op;                    /* index into acn__ops                         */
    int n_in;
    acn_tensor **in;           /* (n_in) inputs                               */
    acn_tensor *out;
    int iarg[4];               /* op-specific integers (axes, flags, ...)    */
    float farg[2];             /* op-specific floats (eps, scale, ...)       */
    void *aux;                 /* op-specific saved state (see each op)      */
    unsigned wr;               /* backward: bit i when input i's gradient is
                                  written, not added (it was fresh: acn__fresh) */
    struct acn__node *prev;    /* the tape, newest first                     */
    acn_ctx *ctx;              /* for kernels split over threads             */
#ifdef ACN_CUDA
    void *daux;                /* GPU context: host data of aux, copied up by
                                  the forward for the backward (acn__d_aux)   */
#endif
} acn__node;

/* The matrix kernel's blocks for one SIMD level (see acn__blocking) */
typedef struct acn__blk { int kc, kc_long, nc; } acn__blk;

struct acn_ctx {
    acn_status status;
    char msg[512];
    /* persistent: parameters and their gradients, one block each */
    float *params;             /* (param_cap)                                */
    float *grads;              /* (param_cap)                                */
    size_t param_cap, param_used;
    acn_tensor *ptab;          /* (max_params) parameter views               */
    char (*pnames)[ACN_NAME_MAX];
    int max_params, n_params;
    /* per step: one arena for activations, gradients, tape and scratch */
    unsigned char *arena;
    size_t arena_cap, arena_used, arena_peak;
    acn__node *tape;           /* newest node                                */
    size_t tape_len;
    acn_tensor *newest;        /* newest arena tensor (their ->older chain)  */
    unsigned resets, rewinds;  /* counts: the arena's start alternates        */
    size_t rewound_lo, rewound_hi; /* the span the last rewind freed (bytes) */
    size_t backwards;          /* acn_backward calls since the last reset    */
    size_t bwd_nodes;          /* nodes the last backward ran                */
    /* the owner check: the thread inside a call, and a second one's call */
    uintptr_t owner;           /* 0, or the calling thread (acn__enter)      */
    int depth;                 /* nested calls of the owner                  */
    const char *intruder;      /* what a second thread called meanwhile      */
    /* scratch slots for transient outputs (see acn__val) */
    float *slot[ACN__SLOTS];
    acn_tensor *slot_owner[ACN__SLOTS];
    unsigned slot_pin[ACN__SLOTS], slot_used[ACN__SLOTS];
    size_t slot_cap;           /* floats; grows to the largest transient     */
    unsigned stamp, clock;
    /* modes */
    int no_grad, train, check_finite;
    acn_rng rng;
    /* fast paths: SIMD level, threads (the caller counts as one), and one
     * packing buffer per thread for the SIMD matrix kernel */
    int simd, threads;
    struct acn__pool *pool;
    float *packbuf;
    size_t pack_floats;        /* each thread's share of packbuf (floats)    */
    /* the cache sizes the matrix kernel blocks for (bytes) and
     * where they came from (see acn_cache) */
    size_t cache_l1d, cache_l2, cache_l3;
    const char *cache_from;
    int prefetch;              /* the AVX-512 kernel asks for its operands
                                  ahead (acn__uk_avx512_pf)                 */
    acn__blk blk[3];           /* the blocks they give at each SIMD level
                                * (portable: none), set with them           */
    struct acn__gheap *gheap;  /* the gradient heap while backward runs      */
    /* the device of the floats (docs/cuda.md): on a GPU context, params,
     * grads and every tensor's data and grad point into device memory; the
     * tape, the nodes and the tensor headers stay in the host arena */
    int device;                /* ACN_DEVICE_*                               */
#ifdef ACN_CUDA
    struct acn__cu *cu;        /* the GPU unit (acn_cuda.cu)                 */
    unsigned char *dev_arena;  /* (dev_cap + ACN__ALIGN) device bytes        */
    size_t dev_cap, dev_used, dev_peak;
    void *dev_scratch;         /* clipping's scratch (acn__cu_clip), then the norm */
#endif
    /* data parallel (acn_dist_*): 0 ranks means alone; this rank's rows
     * [dist_off, dist_off + dist_cnt) of a global batch of dist_batch */
    int dist_rank, dist_size, dist_local, dist_off, dist_cnt, dist_batch;
#ifdef ACN_MPI
    MPI_Comm comm;             /* a duplicate of MPI_COMM_WORLD              */
#endif
};

struct acn__pool;
struct acn__gheap;
static acn_status acn__fast_init(acn_ctx *ctx);        /* "Fast paths" */
static float *acn__galloc(acn_ctx *ctx, struct acn__gheap *h, size_t numel); /* "Backward": zeroed */
static float *acn__galloc_raw(acn_ctx *ctx, struct acn__gheap *h, size_t numel); /* not zeroed */
static void acn__gfree(struct acn__gheap *h, float *p, size_t numel);
static void acn__pool_stop(struct acn__pool *pool);
static void acn__rng_skip(acn_rng *r, uint64_t n);    /* "Random numbers" */

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */
/* Record the first error; later ones are dropped (the first is the cause). */
static void acn__fail(acn_ctx *ctx, acn_status code, const char *fmt, ...)
{
    va_list ap;
    if (!ctx || ctx->status != ACN_OK) return;
    ctx->status = code;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
}

/* The owner check. A context belongs to one thread at a time: the calls
 * that change it (allocation, running an op, backward, reset, rewind, the
 * optimizers) enter and leave it, and a call from a second thread that
 * finds it entered fails without touching it (NULL or ACN_ERR_STATE); the
 * context's error names that call when the first thread's call ends.
 * Nested calls of the owner (a custom op's callback reading acn_data) are
 * fine. Without the thread pool (ACN_NO_THREADS, or a compiler without
 * GCC's atomics) nothing is checked. */
#ifdef ACN__THREADS
static __thread char acn__me; /* one per thread: its address names the thread */
static int acn__enter(acn_ctx *ctx, const char *who)
{
    uintptr_t me = (uintptr_t)&acn__me, cur = 0;
    if (__atomic_compare_exchange_n(&ctx->owner, &cur, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
        ctx->depth = 1;
        return 0;
    }
    if (cur == me) { ctx->depth++; return 0; }
    __atomic_store_n(&ctx->intruder, who, __ATOMIC_RELEASE); /* the owner reports it */
    return -1;
}
static void acn__leave(acn_ctx *ctx)
{
    const char *who;
    if (--ctx->depth > 0) return;
    who = __atomic_exchange_n(&ctx->intruder, (const char *)NULL, __ATOMIC_ACQ_REL);
    if (who)
        acn__fail(ctx, ACN_ERR_STATE,
                  "%s: called from a second thread while this context was busy in another; a context "
                  "belongs to one thread at a time (give each thread its own context, or hand it over "
                  "between calls)", who);
    __atomic_store_n(&ctx->owner, (uintptr_t)0, __ATOMIC_RELEASE);
}
#else
static int acn__enter(acn_ctx *ctx, const char *who) { (void)ctx; (void)who; return 0; }
static void acn__leave(acn_ctx *ctx) { (void)ctx; }
#endif

/* "(64, 128)" into buf; a scalar is "()". acn__dims_str does the work for
 * tensors (int dims) and file entries (int64_t dims) alike. */
static const char *acn__dims_str(const long long *dims, int ndim, char *buf, size_t cap)
{
    size_t len = 0;
    int d;
    len += (size_t)snprintf(buf, cap, "(");
    for (d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, d ? ", %lld" : "%lld", dims[d]);
    if (len < cap) snprintf(buf + len, cap - len, ")");
    return buf;
}
static const char *acn__shape_str(const acn_tensor *t, char *buf, size_t cap)
{
    long long dims[ACN_MAX_DIMS] = {0};
    int d;
    for (d = 0; d < t->ndim; d++) dims[d] = t->shape[d];
    return acn__dims_str(dims, t->ndim, buf, cap);
}
#define ACN__SHAPE(t, buf) acn__shape_str((t), (buf), sizeof(buf))

/* ---- floats that may live on a GPU (docs/cuda.md) ------------------------ */
/* ACN__GPU(ctx): the context keeps its floats in device memory. Without
 * ACN_CUDA it is the constant 0 and every branch below folds away; with it,
 * these helpers are the only places where the two kinds of context differ
 * in how they touch memory. dir of acn__dcopy: ACN__H2D, ACN__D2H, ACN__D2D
 * (host to host on the CPU, where all three are memmove). */
#ifdef ACN_CUDA
#define ACN__GPU(ctx) ((ctx)->device == ACN_DEVICE_CUDA)
#define ACN__H2D ACN__CU_H2D
#define ACN__D2H ACN__CU_D2H
#define ACN__D2D ACN__CU_D2D
#else
#define ACN__GPU(ctx) 0
enum { ACN__H2D, ACN__D2H, ACN__D2D };
#endif
static void acn__fail(acn_ctx *ctx, acn_status code, const char *fmt, ...);
/* A call of the GPU unit: its status, with its message as the context's error. */
#ifdef ACN_CUDA
static int acn__cu_ok(acn_ctx *ctx, int rc)
{
    if (rc && !ctx->status) acn__fail(ctx, (acn_status)rc, "%s", acn__cu_msg(ctx->cu));
    return rc;
}
#endif
static int acn__dzero(acn_ctx *ctx, void *p, size_t bytes, const char *what)
{
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) return acn__cu_ok(ctx, acn__cu_zero(ctx->cu, p, bytes, what));
#endif
    (void)ctx; (void)what;
    if (bytes) memset(p, 0, bytes);
    return 0;
}
static int acn__dcopy(acn_ctx *ctx, void *dst, const void *src, size_t bytes, int dir, const char *what)
{
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) return acn__cu_ok(ctx, acn__cu_copy(ctx->cu, dst, src, bytes, dir, what));
#endif
    (void)ctx; (void)dir; (void)what;
    if (bytes) memmove(dst, src, bytes);
    return 0;
}
/* -1 with an error when ctx is a GPU context and `who` runs on the CPU only. */
static int acn__cpu_only(acn_ctx *ctx, const char *who)
{
    if (!ACN__GPU(ctx)) return 0;
    acn__fail(ctx, ACN_ERR_STATE, "%s runs on a CPU context only for now: use a CPU context for it (docs/cuda.md "
              "lists what runs on a GPU context)", who);
    return -1;
}
/* AddressSanitizer's poisoning, for host memory only */
#define ACN__DPOISON(ctx, p, n) do { if (!ACN__GPU(ctx)) ACN__POISON((p), (n)); } while (0)
#define ACN__DUNPOISON(ctx, p, n) do { if (!ACN__GPU(ctx)) ACN__UNPOISON((p), (n)); } while (0)

ACNDEF acn_status acn_status_of(const acn_ctx *ctx) { return ctx ? ctx->status : ACN_ERR_ARG; }
ACNDEF const char *acn_error(const acn_ctx *ctx)
{
    return !ctx ? "no context (acn_ctx_new failed or was not called)" : ctx->msg;
}
ACNDEF void acn_set_error(acn_ctx *ctx, acn_status code, const char *fmt, ...)
{
    va_list ap;
    if (!ctx || ctx->status != ACN_OK) return;
    ctx->status = code == ACN_OK ? ACN_ERR_ARG : code;
    if (!fmt) { ctx->msg[0] = '\0'; return; }
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
}
ACNDEF void acn_clear_error(acn_ctx *ctx)
{
    if (!ctx) return;
    ctx->status = ACN_OK;
    ctx->msg[0] = '\0';
}
ACNDEF const char *acn_status_name(acn_status s)
{
    static const char *const names[] = {
        "ACN_OK", "ACN_ERR_ARG", "ACN_ERR_SHAPE", "ACN_ERR_ARENA", "ACN_ERR_NOMEM",
        "ACN_ERR_PARAMS", "ACN_ERR_NONFINITE", "ACN_ERR_STATE", "ACN_ERR_IO", "ACN_ERR_FORMAT",
        "ACN_ERR_DIST", "ACN_ERR_DEVICE"};
    return ((unsigned)s < sizeof names / sizeof names[0]) ? names[s] : "ACN_ERR_UNKNOWN";
}
ACNDEF int acn_device(const acn_ctx *ctx) { return ctx ? ctx->device : ACN_DEVICE_CPU; }
ACNDEF acn_status acn_set_tf32(acn_ctx *ctx, int on)
{
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) return acn__cu_ok(ctx, acn__cu_set_tf32(ctx->cu, on)) ? ctx->status : ACN_OK;
#endif
    if (on) acn__fail(ctx, ACN_ERR_STATE, "set_tf32: TF32 is a mode of NVIDIA GPUs; this is a CPU context");
    return ctx->status;
}
ACNDEF acn_status acn_sync(acn_ctx *ctx)
{
    if (!ctx) return ACN_ERR_ARG;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) acn__cu_ok(ctx, acn__cu_sync(ctx->cu, "sync"));
#endif
    return ctx->status;
}
ACNDEF const char *acn_device_name(const acn_ctx *ctx)
{
#ifdef ACN_CUDA
    if (ctx && ACN__GPU(ctx)) return acn__cu_name(ctx->cu);
#endif
    (void)ctx;
    return "the CPU";
}

/* ------------------------------------------------------------------------ */
/* Context and memory                                                       */
/* ------------------------------------------------------------------------ */
ACNDEF acn_ctx_config acn_ctx_defaults(void)
{
    acn_ctx_config c;
    c.param_floats = (size_t)1 << 20;   /* 1 M floats to start; grows        */
    c.max_params = 1024;
    c.arena_bytes = (size_t)256 << 20; /* 256 MB; pages are touched lazily  */
    c.seed = 0x5eedULL;
    c.device = ACN_DEVICE_CPU;
    c.device_index = 0;
    return c;
}

static size_t acn__round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Offers [p, p + bytes) to transparent huge pages (see MEMORY at the top):
 * the whole pages inside it, for blocks of 2 MB and more. Advice only: a
 * kernel that declines leaves everything as it was. */
static void acn__hugepages(void *p, size_t bytes)
{
#ifdef ACN__HUGEPAGES
    long ps = sysconf(_SC_PAGESIZE);
    const char *e = getenv("ACN_HUGEPAGES");
    uintptr_t a, end;
    if (!p || bytes < ((size_t)2 << 20) || ps <= 0 || (e && !strcmp(e, "0"))) return;
    a = ((uintptr_t)p + (uintptr_t)ps - 1u) / (uintptr_t)ps * (uintptr_t)ps;
    end = ((uintptr_t)p + bytes) / (uintptr_t)ps * (uintptr_t)ps;
    if (end > a) (void)madvise((void *)a, (size_t)(end - a), MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* A failed creation has no context to keep its message: it goes to why. */
static acn_status acn__ctx_fail(char *why, size_t cap, acn_status code, const char *fmt, ...)
{
    va_list ap;
    if (why && cap) {
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return code;
}

ACNDEF acn_status acn_ctx_new(acn_ctx **out, const acn_ctx_config *cfg) { return acn_ctx_new_ex(out, cfg, NULL, 0); }

ACNDEF acn_status acn_ctx_new_ex(acn_ctx **out, const acn_ctx_config *cfg_in, char *why, size_t why_cap)
{
    acn_ctx_config cfg = cfg_in ? *cfg_in : acn_ctx_defaults();
    acn_ctx *ctx;
    if (why && why_cap) why[0] = '\0';
    if (!out) return acn__ctx_fail(why, why_cap, ACN_ERR_ARG, "ctx_new: out is NULL (pass the address of an acn_ctx *)");
    *out = NULL;
    if (cfg.max_params <= 0)
        return acn__ctx_fail(why, why_cap, ACN_ERR_ARG, "ctx_new: max_params is %d; it must be positive (the "
                             "default is %d)", cfg.max_params, acn_ctx_defaults().max_params);
    if (cfg.arena_bytes < ACN_ARENA_MIN)
        return acn__ctx_fail(why, why_cap, ACN_ERR_ARG, "ctx_new: arena_bytes is %zu; the arena needs at least "
                             "ACN_ARENA_MIN = %d bytes (the default is %zu)", cfg.arena_bytes, ACN_ARENA_MIN,
                             acn_ctx_defaults().arena_bytes);
    if (cfg.arena_bytes > ((size_t)-1) / 2 || cfg.param_floats > ((size_t)-1) / (2 * sizeof(float)) ||
        (size_t)cfg.max_params > ((size_t)-1) / (2 * (sizeof(acn_tensor) + ACN_NAME_MAX)))
        return acn__ctx_fail(why, why_cap, ACN_ERR_ARG, "ctx_new: the sizes asked for (arena_bytes %zu, "
                             "param_floats %zu, max_params %d) overflow the address space", cfg.arena_bytes,
                             cfg.param_floats, cfg.max_params);
    if (cfg.device != ACN_DEVICE_CPU && cfg.device != ACN_DEVICE_CUDA)
        return acn__ctx_fail(why, why_cap, ACN_ERR_ARG, "ctx_new: device is %d; use ACN_DEVICE_CPU or "
                             "ACN_DEVICE_CUDA", cfg.device);
#ifndef ACN_CUDA
    if (cfg.device == ACN_DEVICE_CUDA)
        return acn__ctx_fail(why, why_cap, ACN_ERR_ARG, "ctx_new: a GPU context needs acn.h built with ACN_CUDA "
                             "and linked with acn_cuda.o, -lcudart and -lcublas (docs/cuda.md); this program was "
                             "built without it");
#endif
    ctx = (acn_ctx *)ACN_MALLOC(sizeof *ctx);
    if (!ctx) return acn__ctx_fail(why, why_cap, ACN_ERR_NOMEM, "ctx_new: out of memory for the context itself");
    memset(ctx, 0, sizeof *ctx);
    ctx->param_cap = acn__round_up(cfg.param_floats, ACN__ALIGN / sizeof(float));
    ctx->max_params = cfg.max_params;
    ctx->arena_cap = acn__round_up(cfg.arena_bytes, ACN__ALIGN);
    ctx->device = cfg.device;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* the floats on the GPU: the two blocks, the arena's floats, clipping's scratch */
        acn_status st = (acn_status)acn__cu_open(&ctx->cu, cfg.device_index, why, why_cap);
        size_t pbytes = ctx->param_cap * sizeof(float) + ACN__ALIGN;
        if (!st && ((st = (acn_status)acn__cu_alloc(ctx->cu, (void **)&ctx->params, pbytes, "ctx_new: the parameter block")) ||
                    (st = (acn_status)acn__cu_alloc(ctx->cu, (void **)&ctx->grads, pbytes, "ctx_new: the gradient block")) ||
                    (st = (acn_status)acn__cu_alloc(ctx->cu, (void **)&ctx->dev_arena, ctx->arena_cap + ACN__ALIGN,
                                                    "ctx_new: the arena")) ||
                    (st = (acn_status)acn__cu_alloc(ctx->cu, &ctx->dev_scratch, acn__cu_clip_scratch_bytes() + ACN__ALIGN + 4 * sizeof(float),
                                                    "ctx_new: scratch"))))
            acn__ctx_fail(why, why_cap, st, "ctx_new: %s", acn__cu_msg(ctx->cu));
        if (st) {
            acn_ctx_free(ctx);
            return st;
        }
        ctx->dev_cap = ctx->arena_cap;
    } else
#endif
    { /* The blocks are over-allocated by one alignment unit and aligned by hand. */
        ctx->params = (float *)ACN_MALLOC(ctx->param_cap * sizeof(float) + ACN__ALIGN);
        ctx->grads = (float *)ACN_MALLOC(ctx->param_cap * sizeof(float) + ACN__ALIGN);
    }
    ctx->ptab = (acn_tensor *)ACN_MALLOC((size_t)cfg.max_params * sizeof(acn_tensor));
    ctx->pnames = (char (*)[ACN_NAME_MAX])ACN_MALLOC((size_t)cfg.max_params * ACN_NAME_MAX);
    ctx->arena = (unsigned char *)ACN_MALLOC(ctx->arena_cap + ACN__ALIGN);
    if (!ctx->params || !ctx->grads || !ctx->ptab || !ctx->pnames || !ctx->arena) {
        acn_ctx_free(ctx);
        return acn__ctx_fail(why, why_cap, ACN_ERR_NOMEM, "ctx_new: out of memory for the arena (%zu bytes) or "
                             "the parameter blocks (2 x %zu floats, %d tensors); ask for less in acn_ctx_config",
                             cfg.arena_bytes, cfg.param_floats, cfg.max_params);
    }
    acn__hugepages(ctx->arena, ctx->arena_cap + ACN__ALIGN);
    if (!ACN__GPU(ctx)) {
        acn__hugepages(ctx->params, ctx->param_cap * sizeof(float) + ACN__ALIGN);
        acn__hugepages(ctx->grads, ctx->param_cap * sizeof(float) + ACN__ALIGN);
    }
    ctx->train = 1;
    acn_rng_seed(&ctx->rng, cfg.seed);
    if (acn__fast_init(ctx)) {
        acn_ctx_free(ctx);
        return acn__ctx_fail(why, why_cap, ACN_ERR_NOMEM, "ctx_new: out of memory for the thread pool's buffers");
    }
    ACN__POISON(ctx->arena, ctx->arena_cap + ACN__ALIGN);
    ACN__DPOISON(ctx, ctx->params, ctx->param_cap * sizeof(float) + ACN__ALIGN); /* until carved */
    ACN__DPOISON(ctx, ctx->grads, ctx->param_cap * sizeof(float) + ACN__ALIGN);
    *out = ctx;
    return ACN_OK;
}

/* The aligned start of a block allocated with ACN__ALIGN bytes to spare. */
static void *acn__aligned(void *p)
{
    uintptr_t u = (uintptr_t)p;
    return (void *)((u + ACN__ALIGN - 1) & ~(uintptr_t)(ACN__ALIGN - 1));
}
static float *acn__pblock(const acn_ctx *ctx) { return (float *)acn__aligned(ctx->params); }
static float *acn__gblock(const acn_ctx *ctx) { return (float *)acn__aligned(ctx->grads); }
static unsigned char *acn__ablock(const acn_ctx *ctx)
{
    return (unsigned char *)acn__aligned(ctx->arena);
}

ACNDEF void acn_ctx_free(acn_ctx *ctx)
{
    if (!ctx) return;
    if (ctx->arena) ACN__UNPOISON(ctx->arena, ctx->arena_cap + ACN__ALIGN);
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) {
        if (ctx->cu) {
            acn__cu_free(ctx->cu, ctx->params);
            acn__cu_free(ctx->cu, ctx->grads);
            acn__cu_free(ctx->cu, ctx->dev_arena);
            acn__cu_free(ctx->cu, ctx->dev_scratch);
            acn__cu_close(ctx->cu);
        }
        ctx->params = ctx->grads = NULL;
    }
#endif
    if (ctx->params) ACN__UNPOISON(ctx->params, ctx->param_cap * sizeof(float) + ACN__ALIGN);
    if (ctx->grads) ACN__UNPOISON(ctx->grads, ctx->param_cap * sizeof(float) + ACN__ALIGN);
    ACN_FREE(ctx->params);
    ACN_FREE(ctx->grads);
    ACN_FREE(ctx->ptab);
    ACN_FREE(ctx->pnames);
    ACN_FREE(ctx->arena);
    acn__pool_stop(ctx->pool);
    ACN_FREE(ctx->packbuf);
#ifdef ACN_MPI
    if (ctx->dist_size) {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Comm_free(&ctx->comm);
    }
#endif
    ACN_FREE(ctx);
}

/* Bump allocation from the arena, 64-byte aligned. NULL (and an error that
 * names `what`) when full. */
static void *acn__alloc(acn_ctx *ctx, size_t bytes, const char *what)
{
    size_t need = acn__round_up(bytes ? bytes : 1, ACN__ALIGN) + ACN__REDZONE;
    unsigned char *p;
    if (acn__enter(ctx, what)) return NULL;
    if (need > ctx->arena_cap - ctx->arena_used) {
        if (ctx->backwards > 1) /* the likely cause: no acn_reset between steps */
            acn__fail(ctx, ACN_ERR_ARENA,
                      "%s: the arena is full (%zu bytes needed, %zu of %zu free) after %zu backward passes "
                      "since the last acn_reset: every earlier step's tape and activations are still held; "
                      "call acn_reset(ctx) once per step (after the optimizer step)",
                      what, need, ctx->arena_cap - ctx->arena_used, ctx->arena_cap, ctx->backwards);
        else
            acn__fail(ctx, ACN_ERR_ARENA,
                      "%s: the arena is full (%zu bytes needed, %zu of %zu free); create the "
                      "context with a larger acn_ctx_config.arena_bytes, or use a smaller batch",
                      what, need, ctx->arena_cap - ctx->arena_used, ctx->arena_cap);
        acn__leave(ctx);
        return NULL;
    }
    p = acn__ablock(ctx) + ctx->arena_used;
    ctx->arena_used += need;
    if (ctx->arena_used > ctx->arena_peak) ctx->arena_peak = ctx->arena_used;
    ACN__UNPOISON(p, bytes);
    acn__leave(ctx);
    return p;
}
/* A tensor's floats: from the arena, or on a GPU context from the device
 * arena beside it, carved the same way and emptied by the same acn_reset. */
static float *acn__alloc_floats(acn_ctx *ctx, size_t n, const char *what)
{
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) {
        size_t need = acn__round_up(n ? n * sizeof(float) : 1, ACN__ALIGN);
        unsigned char *p;
        if (need > ctx->dev_cap - ctx->dev_used) {
            acn__fail(ctx, ACN_ERR_ARENA, "%s: the device arena is full (%zu bytes needed, %zu of %zu free); "
                      "create the context with a larger acn_ctx_config.arena_bytes, or use a smaller batch%s",
                      what, need, ctx->dev_cap - ctx->dev_used, ctx->dev_cap,
                      ctx->backwards > 1 ? " (or call acn_reset once per step)" : "");
            return NULL;
        }
        p = (unsigned char *)acn__aligned(ctx->dev_arena) + ctx->dev_used;
        ctx->dev_used += need;
        if (ctx->dev_used > ctx->dev_peak) ctx->dev_peak = ctx->dev_used;
        return (float *)p;
    }
#endif
    return (float *)acn__alloc(ctx, n * sizeof(float), what);
}

/* Tensors that are gone. Every arena tensor carries a seal (its address
 * mixed with its context's), and the arena's tensors are chained newest
 * first; acn_reset and acn_mark_rewind break the seals of the tensors they
 * free, and acn__live refuses a tensor whose seal is broken, or which lies
 * outside the arena's used part. An address can be reused, so a freed
 * tensor could be mistaken for a new one at the same place: to prevent
 * that for the common case (the previous step's tensors, the previous
 * pass of an evaluation loop), each reset and each rewind starts the arena
 * 64 bytes away from where the one before started. Every tensor header
 * takes 128 bytes or more, so a step laid out as the one before never puts
 * a header where a header of that step was. */
static uintptr_t acn__seal_of(const acn_ctx *ctx, const acn_tensor *t)
{
    return ((uintptr_t)t ^ ((uintptr_t)ctx * (uintptr_t)0x9E3779B1u) ^ (uintptr_t)0x5AC3u) | 1u;
}
static void acn__unseal_from(acn_ctx *ctx, const unsigned char *cut) /* tensors at cut or above */
{
    acn_tensor *t = ctx->newest;
    while (t && (const unsigned char *)t >= cut) {
        acn_tensor *next = t->older;
        t->seal = 0;
        t = next;
    }
    ctx->newest = t;
}

ACNDEF void acn_reset(acn_ctx *ctx)
{
    int s;
    if (!ctx || acn__enter(ctx, "reset")) return;
    acn__unseal_from(ctx, acn__ablock(ctx));
    ACN__POISON(acn__ablock(ctx), ctx->arena_used);
    ctx->arena_used = (ctx->resets++ & 1u) ? 0 : ACN__ALIGN; /* see acn__seal_of */
#ifdef ACN_CUDA
    ctx->dev_used = 0; /* the same place every step: a captured step's addresses stay valid */
#endif
    ctx->rewound_lo = ctx->rewound_hi = 0;
    ctx->backwards = 0;
    ctx->tape = NULL;
    ctx->tape_len = 0;
    for (s = 0; s < ACN__SLOTS; s++) {
        ctx->slot[s] = NULL;
        ctx->slot_owner[s] = NULL;
    }
    acn__leave(ctx);
}

ACNDEF acn_mark acn_mark_get(const acn_ctx *ctx)
{
    acn_mark m;
    memset(&m, 0, sizeof m);
    if (!ctx) return m;
    m.arena_used = ctx->arena_used;
#ifdef ACN_CUDA
    m.dev_used = ctx->dev_used;
#endif
    m.tape = ctx->tape;
    m.tape_len = ctx->tape_len;
    m.resets = ctx->resets;
    return m;
}

ACNDEF void acn_mark_rewind(acn_ctx *ctx, acn_mark m)
{
    unsigned char *cut, *fcut; /* the arena's, and the arena of floats' */
    int s;
    if (!ctx) return;
    if (m.resets != ctx->resets || m.arena_used > ctx->arena_used) {
        acn__fail(ctx, ACN_ERR_STATE, "mark_rewind: the mark was taken %s; take marks in the step that "
                  "rewinds to them", m.resets != ctx->resets ? "before the last acn_reset" : "after this point");
        return;
    }
    if (acn__enter(ctx, "mark_rewind")) return;
    cut = fcut = acn__ablock(ctx) + m.arena_used;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) fcut = (unsigned char *)acn__aligned(ctx->dev_arena) + m.dev_used;
#endif
    acn__unseal_from(ctx, cut);
    /* Slots owned by tensors made after the mark forget them; slots carved
     * after the mark are gone, and their (older) owners are evicted. */
    for (s = 0; s < ACN__SLOTS; s++) {
        if ((unsigned char *)ctx->slot_owner[s] >= cut) ctx->slot_owner[s] = NULL;
        if (ctx->slot[s] && (unsigned char *)ctx->slot[s] >= fcut) {
            if (ctx->slot_owner[s]) { ctx->slot_owner[s]->data = NULL; ctx->slot_owner[s]->slot = -1; }
            ctx->slot[s] = NULL;
            ctx->slot_owner[s] = NULL;
        }
    }
    ACN__POISON(acn__ablock(ctx) + m.arena_used, ctx->arena_used - m.arena_used);
    if (ctx->arena_used > m.arena_used) { /* what the message of acn__live calls "past a rewind" */
        ctx->rewound_lo = m.arena_used;
        ctx->rewound_hi = ctx->arena_used;
    }
    /* the next pass starts 64 bytes away (see acn__seal_of), room allowing */
    ctx->arena_used = m.arena_used + ((ctx->rewinds++ & 1u) || ctx->arena_cap - m.arena_used < ACN__ALIGN ? 0 : ACN__ALIGN);
#ifdef ACN_CUDA
    ctx->dev_used = m.dev_used;
#endif
    ctx->tape = m.tape;
    ctx->tape_len = m.tape_len;
    acn__leave(ctx);
}

ACNDEF void acn_stats_get(const acn_ctx *ctx, acn_stats *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    if (!ctx) return;
    o->arena_used = ctx->arena_used;
    o->arena_peak = ctx->arena_peak;
    o->arena_bytes = ctx->arena_cap;
    o->param_floats_used = ctx->param_used;
    o->param_floats_cap = ctx->param_cap;
    o->persistent_bytes = 2 * ctx->param_cap * sizeof(float) +
                          (size_t)ctx->max_params * (sizeof(acn_tensor) + ACN_NAME_MAX);
    o->n_params = ctx->n_params;
    o->tape_nodes = ctx->tape_len;
    o->backward_nodes = ctx->bwd_nodes;
    o->backwards = ctx->backwards;
#ifdef ACN_CUDA
    o->dev_arena_used = ctx->dev_used;
    o->dev_arena_peak = ctx->dev_peak;
    o->dev_arena_bytes = ctx->dev_cap;
#endif
}

/* (a NULL context: nothing to set, 0 returned) */
ACNDEF int acn_set_no_grad(acn_ctx *ctx, int on)
{
    int o;
    if (!ctx) return 0;
    o = ctx->no_grad;
    ctx->no_grad = !!on;
    return o;
}
ACNDEF int acn_set_train(acn_ctx *ctx, int on)
{
    int o;
    if (!ctx) return 0;
    o = ctx->train;
    ctx->train = !!on;
    return o;
}
ACNDEF int acn_set_check_finite(acn_ctx *ctx, int on)
{
    int o;
    if (!ctx) return 0;
    o = ctx->check_finite;
    if (on && ACN__GPU(ctx)) {
        acn__fail(ctx, ACN_ERR_STATE, "set_check_finite runs on a CPU context only for now (docs/cuda.md lists "
                  "what runs on a GPU context); check the loss with acn_item instead");
        return o;
    }
    ctx->check_finite = !!on;
    return o;
}

/* ------------------------------------------------------------------------ */
/* Tensors and parameters                                                   */
/* ------------------------------------------------------------------------ */
/* Validate a shape and fill t's shape fields. 0 on success. */
static int acn__set_shape(acn_ctx *ctx, acn_tensor *t, int ndim, const int *shape, const char *who)
{
    int d;
    size_t n = 1;
    if (ndim < 0 || ndim > ACN_MAX_DIMS) {
        acn__fail(ctx, ACN_ERR_SHAPE, "%s: %d dimensions; acn.h tensors have 0 to %d", who, ndim,
                  ACN_MAX_DIMS);
        return -1;
    }
    if (ndim > 0 && !shape) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the shape is NULL for %d dimensions (pass an array of %d sizes)", who,
                  ndim, ndim);
        return -1;
    }
    for (d = 0; d < ACN_MAX_DIMS; d++) {
        int s = d < ndim ? shape[d] : 1;
        if (s <= 0) {
            acn__fail(ctx, ACN_ERR_SHAPE, "%s: dimension %d has size %d; sizes must be positive",
                      who, d, s);
            return -1;
        }
        if (n > ((size_t)-1 / sizeof(float)) / (size_t)s) { /* the bytes of the product would not fit a size_t */
            acn__fail(ctx, ACN_ERR_SHAPE, "%s: a shape of more elements than an address space holds (dimension %d "
                      "of size %d overflows the count); use smaller sizes", who, d, s);
            return -1;
        }
        t->shape[d] = s;
        n *= (size_t)s;
    }
    t->ndim = ndim;
    t->numel = n;
    return 0;
}

/* A tensor header in the arena (no data yet). */
static acn_tensor *acn__header(acn_ctx *ctx, int ndim, const int *shape, const char *who)
{
    acn_tensor tmp, *t;
    memset(&tmp, 0, sizeof tmp);
    if (acn__set_shape(ctx, &tmp, ndim, shape, who)) return NULL;
    t = (acn_tensor *)acn__alloc(ctx, sizeof *t, who);
    if (!t) return NULL;
    *t = tmp;
    t->name = who;
    t->slot = -1;
    t->device = ctx->device;
    t->ctx = ctx;
    t->seal = acn__seal_of(ctx, t);
    t->older = ctx->newest;
    ctx->newest = t;
    return t;
}

/* 0 when t is a tensor of this context that is still alive: a parameter of
 * its table, or an arena tensor with its seal intact (see acn__seal_of);
 * else ACN_ERR_STATE, saying which of the three it is. Nothing outside
 * this context's own memory is read. */
static int acn__poisoned(const void *p, size_t n)
{
#ifdef ACN__ASAN
    return __asan_region_is_poisoned((void *)(uintptr_t)p, n) != NULL;
#else
    (void)p; (void)n;
    return 0;
#endif
}
static int acn__live(acn_ctx *ctx, const acn_tensor *t, const char *who, int index)
{
    const unsigned char *a = (const unsigned char *)t, *base = acn__ablock(ctx);
    const unsigned char *ptab = (const unsigned char *)ctx->ptab;
    size_t off;
    if (a >= ptab && a < ptab + (size_t)ctx->n_params * sizeof(acn_tensor) &&
        (size_t)(a - ptab) % sizeof(acn_tensor) == 0)
        return 0; /* a parameter: alive as long as the context */
    if (a >= base && a < base + ctx->arena_cap) {
        off = (size_t)(a - base);
        if (off + sizeof *t <= ctx->arena_used && off % ACN__ALIGN == 0 && !acn__poisoned(t, sizeof *t) &&
            t->seal == acn__seal_of(ctx, t))
            return 0;
        if (off >= ctx->rewound_lo && off < ctx->rewound_hi)
            acn__fail(ctx, ACN_ERR_STATE, "%s: input %d was made after an acn_mark and is gone since "
                      "acn_mark_rewind went back to it; make it again after the rewind", who, index);
        else
            acn__fail(ctx, ACN_ERR_STATE, "%s: input %d was made before the last acn_reset and is gone "
                      "(the arena holds one step); make it again in this step, or copy the values out "
                      "before the reset", who, index);
        return -1;
    }
    acn__fail(ctx, ACN_ERR_STATE, "%s: input %d is not a tensor of this context: it belongs to another "
              "context (ops combine tensors of one context only), or its context was freed", who, index);
    return -1;
}

ACNDEF acn_tensor *acn_new(acn_ctx *ctx, int ndim, const int *shape, int flags)
{
    acn_tensor *t;
    if (!ctx || ctx->status) return NULL;
    t = acn__header(ctx, ndim, shape, "new");
    if (!t || !(t->data = acn__alloc_floats(ctx, t->numel, "new"))) return NULL;
    if (acn__dzero(ctx, t->data, t->numel * sizeof(float), "new")) return NULL;
    t->flags = flags & ACN_F_GRAD;
    if (t->flags) { /* a leaf's gradient lives as long as the leaf */
        if (!(t->grad = acn__alloc_floats(ctx, t->numel, "new"))) return NULL;
        if (acn__dzero(ctx, t->grad, t->numel * sizeof(float), "new")) return NULL;
    }
    return t;
}

ACNDEF acn_tensor *acn_input(acn_ctx *ctx, int ndim, const int *shape, const float *data)
{
    acn_tensor *t;
    if (!ctx || ctx->status) return NULL;
    if (!data) { acn__fail(ctx, ACN_ERR_ARG, "input: data is NULL"); return NULL; }
    t = acn__header(ctx, ndim, shape, "input");
    if (!t || !(t->data = acn__alloc_floats(ctx, t->numel, "input"))) return NULL;
    if (acn__dcopy(ctx, t->data, data, t->numel * sizeof(float), ACN__H2D, "input")) return NULL;
    return t;
}

/* Grow the parameter and gradient blocks to hold at least `need` floats,
 * moving every parameter's data and grad pointers with them. The table of
 * parameter headers does not move, so acn_tensor pointers stay valid. */
static int acn__grow_params(acn_ctx *ctx, size_t need, const char *name)
{
    size_t cap = ctx->param_cap * 2 > need ? ctx->param_cap * 2 : need, bytes;
    float *np, *ng;
    int i;
    cap = acn__round_up(cap, ACN__ALIGN / sizeof(float));
    bytes = cap * sizeof(float) + ACN__ALIGN;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* on the device: new blocks, the used part copied across */
        np = ng = NULL;
        if (acn__cu_ok(ctx, acn__cu_alloc(ctx->cu, (void **)&np, bytes, "param: the parameter block")) ||
            acn__cu_ok(ctx, acn__cu_alloc(ctx->cu, (void **)&ng, bytes, "param: the gradient block")) ||
            acn__dcopy(ctx, acn__aligned(np), acn__pblock(ctx), ctx->param_used * sizeof(float), ACN__D2D, "param") ||
            acn__dcopy(ctx, acn__aligned(ng), acn__gblock(ctx), ctx->param_used * sizeof(float), ACN__D2D, "param")) {
            acn__cu_free(ctx->cu, np);
            acn__cu_free(ctx->cu, ng);
            return -1;
        }
        acn__cu_free(ctx->cu, ctx->params);
        acn__cu_free(ctx->cu, ctx->grads);
    } else
#endif
    {
        np = (float *)ACN_MALLOC(bytes);
        ng = (float *)ACN_MALLOC(bytes);
        if (!np || !ng) {
            ACN_FREE(np);
            ACN_FREE(ng);
            acn__fail(ctx, ACN_ERR_NOMEM, "param '%s': cannot grow the parameter block to %zu floats",
                      name, cap);
            return -1;
        }
        acn__hugepages(np, bytes);
        acn__hugepages(ng, bytes);
        ACN__POISON(np, bytes);
        ACN__POISON(ng, bytes);
        ACN__UNPOISON(acn__aligned(np), ctx->param_used * sizeof(float));
        ACN__UNPOISON(acn__aligned(ng), ctx->param_used * sizeof(float));
        memcpy(acn__aligned(np), acn__pblock(ctx), ctx->param_used * sizeof(float));
        memcpy(acn__aligned(ng), acn__gblock(ctx), ctx->param_used * sizeof(float));
        ACN__UNPOISON(ctx->params, ctx->param_cap * sizeof(float) + ACN__ALIGN);
        ACN__UNPOISON(ctx->grads, ctx->param_cap * sizeof(float) + ACN__ALIGN);
        ACN_FREE(ctx->params);
        ACN_FREE(ctx->grads);
    }
    ctx->params = np;
    ctx->grads = ng;
    ctx->param_cap = cap;
    for (i = 0; i < ctx->n_params; i++) {
        ctx->ptab[i].data = acn__pblock(ctx) + ctx->ptab[i].offset;
        ctx->ptab[i].grad = acn__gblock(ctx) + ctx->ptab[i].offset;
    }
    return 0;
}

ACNDEF acn_tensor *acn_param(acn_ctx *ctx, const char *name, int ndim, const int *shape)
{
    acn_tensor tmp, *t;
    size_t off;
    int i;
    if (!ctx || ctx->status) return NULL;
    memset(&tmp, 0, sizeof tmp);
    if (!name || !*name || strlen(name) >= ACN_NAME_MAX) {
        acn__fail(ctx, ACN_ERR_ARG, "param: the name must be 1 to %d characters", ACN_NAME_MAX - 1);
        return NULL;
    }
    if (acn__set_shape(ctx, &tmp, ndim, shape, "param")) return NULL;
    for (i = 0; i < ctx->n_params; i++)
        if (!strcmp(ctx->pnames[i], name)) {
            acn__fail(ctx, ACN_ERR_ARG, "param: '%s' exists already; names must be unique", name);
            return NULL;
        }
    if (ctx->n_params == ctx->max_params) {
        acn__fail(ctx, ACN_ERR_PARAMS,
                  "param '%s': the table holds %d parameters; raise acn_ctx_config.max_params",
                  name, ctx->max_params);
        return NULL;
    }
    off = ctx->param_used;
    if (tmp.numel > ctx->param_cap - off && acn__grow_params(ctx, off + tmp.numel, name)) return NULL;
    ctx->param_used = off + acn__round_up(tmp.numel, ACN__ALIGN / sizeof(float));
    if (ctx->param_used > ctx->param_cap) ctx->param_used = ctx->param_cap;
    t = &ctx->ptab[ctx->n_params];
    strcpy(ctx->pnames[ctx->n_params], name);
    *t = tmp;
    t->name = ctx->pnames[ctx->n_params];
    t->flags = ACN_F_PARAM | ACN_F_GRAD;
    t->device = ctx->device;
    t->offset = off;
    t->slot = -1;
    t->ctx = ctx;
    t->seal = acn__seal_of(ctx, t);
    t->data = acn__pblock(ctx) + off;
    t->grad = acn__gblock(ctx) + off;
    /* the view and its alignment padding (zeroed by acn_zero_grad's memset) */
    ACN__DUNPOISON(ctx, t->data, (ctx->param_used - off) * sizeof(float));
    ACN__DUNPOISON(ctx, t->grad, (ctx->param_used - off) * sizeof(float));
    if (acn__dzero(ctx, t->data, (ctx->param_used - off) * sizeof(float), "param") ||
        acn__dzero(ctx, t->grad, (ctx->param_used - off) * sizeof(float), "param"))
        return NULL;
    ctx->n_params++;
    return t;
}

ACNDEF acn_tensor *acn_param_find(acn_ctx *ctx, const char *name)
{
    int i;
    if (!ctx || !name) return NULL;
    for (i = 0; i < ctx->n_params; i++)
        if (!strcmp(ctx->ptab[i].name, name)) return &ctx->ptab[i];
    return NULL;
}
ACNDEF acn_tensor *acn_params(acn_ctx *ctx, int *count)
{
    if (count) *count = ctx ? ctx->n_params : 0;
    return ctx ? ctx->ptab : NULL;
}
ACNDEF size_t acn_param_numel(const acn_ctx *ctx)
{
    size_t n = 0;
    int i;
    for (i = 0; ctx && i < ctx->n_params; i++) n += ctx->ptab[i].numel;
    return n;
}
ACNDEF void acn_param_set_decay(acn_tensor *p, int on)
{
    if (!p) return;
    if (on) p->flags &= ~ACN_F_NODECAY;
    else p->flags |= ACN_F_NODECAY;
}
static void acn__gblock_pass(acn_ctx *ctx, int op, float coef, double *sums); /* "Optimizers" */
ACNDEF void acn_zero_grad(acn_ctx *ctx)
{
    if (!ctx || acn__enter(ctx, "zero_grad")) return;
    if (ACN__GPU(ctx)) acn__dzero(ctx, acn__gblock(ctx), ctx->param_used * sizeof(float), "zero_grad");
    else acn__gblock_pass(ctx, 0, 0.0f, NULL);
    acn__leave(ctx);
}

/* ------------------------------------------------------------------------ */
/* The op table                                                             */
/* ------------------------------------------------------------------------ */
/* One line per op: id, name, forward kernel, backward kernel, and their
 * device twins for a GPU context (the section "Ops on a GPU"; acn__d_none
 * where an op does not run there yet, which fails with a message). A forward
 * kernel computes node->out->data from the inputs and must be pure (it runs
 * again when a transient output is recomputed); a backward kernel adds to
 * the gradients of the inputs that have one, reading out->grad. To add an
 * op: write the two kernels and a constructor next to each other, then add
 * its line here (docs/design.md). */
#define ACN__OP_LIST(X) \
    X(ADD, "add", acn__binary_fwd, acn__binary_bwd, acn__d_binary_fwd, acn__d_binary_bwd) \
    X(SUB, "sub", acn__binary_fwd, acn__binary_bwd, acn__d_binary_fwd, acn__d_binary_bwd) \
    X(MUL, "mul", acn__binary_fwd, acn__binary_bwd, acn__d_binary_fwd, acn__d_binary_bwd) \
    X(SCALE, "scale", acn__scale_fwd, acn__scale_bwd, acn__d_scale_fwd, acn__d_scale_bwd) \
    X(ADD_N, "add_n", acn__addn_fwd, acn__addn_bwd, acn__d_addn_fwd, acn__d_addn_bwd) \
    X(SUM, "sum", acn__reduce_fwd, acn__reduce_bwd, acn__d_reduce_fwd, acn__d_reduce_bwd) \
    X(MEAN, "mean", acn__reduce_fwd, acn__reduce_bwd, acn__d_reduce_fwd, acn__d_reduce_bwd) \
    X(MATMUL, "matmul", acn__matmul_fwd, acn__matmul_bwd, acn__d_matmul_fwd, acn__d_matmul_bwd) \
    X(LINEAR, "linear", acn__linear_fwd, acn__linear_bwd, acn__d_linear_fwd, acn__d_linear_bwd) \
    X(LINEAR_GELU, "linear_gelu", acn__lgelu_fwd, acn__lgelu_bwd, acn__d_lgelu_fwd, acn__d_lgelu_bwd) \
    X(LINEAR_MID, "linear_mid", acn__lmid_fwd, acn__lmid_bwd, acn__d_lmid_fwd, acn__d_lmid_bwd) \
    X(FFN, "ffn", acn__ffn_fwd, acn__ffn_bwd, acn__d_ffn_fwd, acn__d_ffn_bwd) \
    X(LINEAR_ADD_RELU, "linear_add_relu", acn__lar_fwd, acn__lar_bwd, acn__d_lar_fwd, acn__d_lar_bwd) \
    X(GELU, "gelu", acn__gelu_fwd, acn__gelu_bwd, acn__d_unary_fwd, acn__d_unary_bwd) \
    X(RELU, "relu", acn__relu_fwd, acn__relu_bwd, acn__d_unary_fwd, acn__d_unary_bwd) \
    X(TANH, "tanh", acn__tanh_fwd, acn__tanh_bwd, acn__d_unary_fwd, acn__d_unary_bwd) \
    X(SOFTMAX, "softmax", acn__softmax_fwd, acn__softmax_bwd, acn__d_softmax_fwd, acn__d_softmax_bwd) \
    X(XENT, "cross_entropy", acn__xent_fwd, acn__xent_bwd, acn__d_xent_fwd, acn__d_xent_bwd) \
    X(XENT_SOFT, "cross_entropy_soft", acn__xsoft_fwd, acn__xsoft_bwd, acn__d_xent_fwd, acn__d_xent_bwd) \
    X(LAYERNORM, "layernorm", acn__ln_fwd, acn__ln_bwd, acn__d_ln_fwd, acn__d_ln_bwd) \
    X(TRANSPOSE, "transpose", acn__transpose_fwd, acn__transpose_bwd, acn__d_transpose_fwd, acn__d_transpose_bwd) \
    X(RESHAPE, "reshape", acn__reshape_fwd, acn__reshape_bwd, acn__d_reshape_fwd, acn__d_reshape_bwd) \
    X(CONCAT, "concat", acn__concat_fwd, acn__concat_bwd, acn__d_concat_fwd, acn__d_concat_bwd) \
    X(SLICE, "slice", acn__slice_fwd, acn__slice_bwd, acn__d_slice_fwd, acn__d_slice_bwd) \
    X(PATCHES, "patches", acn__patches_fwd, acn__patches_bwd, acn__d_patches_fwd, acn__d_patches_bwd) \
    X(EMBEDDING, "embedding", acn__embed_fwd, acn__embed_bwd, acn__d_embed_fwd, acn__d_embed_bwd) \
    X(DROPOUT, "dropout", acn__dropout_fwd, acn__dropout_bwd, acn__d_dropout_fwd, acn__d_dropout_bwd) \
    X(ATTENTION, "attention", acn__attn_fwd, acn__attn_bwd, acn__d_attn_fwd, acn__d_attn_bwd) \
    X(CUSTOM, "custom", acn__custom_fwd, acn__custom_bwd, acn__d_none, acn__d_none)

#define ACN__OP_ENUM(id, name, fwd, bwd, dfwd, dbwd) ACN__OP_##id,
enum { ACN__OP_LIST(ACN__OP_ENUM) ACN__OP_COUNT };
#undef ACN__OP_ENUM

typedef void (*acn__kernel)(acn_ctx *ctx, acn__node *n);
#ifdef ACN_CUDA /* and the device twins (the section "Ops on a GPU") */
#define ACN__OP_DECL(id, name, fwd, bwd, dfwd, dbwd) \
    static void fwd(acn_ctx *ctx, acn__node *n); static void bwd(acn_ctx *ctx, acn__node *n); \
    static void dfwd(acn_ctx *ctx, acn__node *n); static void dbwd(acn_ctx *ctx, acn__node *n);
#else
#define ACN__OP_DECL(id, name, fwd, bwd, dfwd, dbwd) \
    static void fwd(acn_ctx *ctx, acn__node *n); static void bwd(acn_ctx *ctx, acn__node *n);
#endif
ACN__OP_LIST(ACN__OP_DECL)
#undef ACN__OP_DECL
static void acn__forward(acn_ctx *ctx, acn__node *n); /* acn__ops[n->op].fwd */
/* The thread pool's decision (see "Fast paths"): a parallel call states its
 * work in nanoseconds of one core, estimated from these nominal rates, and
 * runs on the caller alone when that is under ACN_PAR_MIN_NS or under the
 * pool's measured threshold (acn__grain_update), or when it is small and the
 * pool is running small tasks on the caller (acn__mode_update). */
#ifndef ACN_PAR_MIN_NS
#define ACN_PAR_MIN_NS 10000.0   /* below this much work, one thread      */
#endif
#ifndef ACN_SPIN_US
#define ACN_SPIN_US 50           /* how long an idle thread spins         */
#endif
/* Nominal costs on one core, for the work estimates. */
#define ACN__NS_FLOP 0.008       /* a matrix-kernel flop (~125 GFLOP/s)   */
#define ACN__NS_ELEM 0.25        /* one element of a simple element-wise op */
#define ACN__NS_ELEM_HEAVY 2.0   /* one element with exp, erf, division   */

/* Run fn(n, lo, hi) over [lo, hi) ranges that split [0, count) across the
 * context's threads, each item costing about item_ns (a single call when
 * the whole is too little work: see acn__parallel). A range function
 * reads values through ->data and ->grad only (acn__ready made every value
 * the kernel needs available), and writes only its own part. */
typedef void (*acn__task)(void *arg, int part, int parts, int tid); /* see acn__parallel */
static void acn__parallel(acn_ctx *ctx, acn__task fn, void *arg, double work_ns, int per_thread);
static void acn__share(size_t n, size_t unit, int part, int parts, size_t *lo, size_t *hi);
typedef void (*acn__range_fn)(acn__node *n, size_t lo, size_t hi);
static size_t acn__gelu_fast(acn_ctx *ctx, int dir, const float *x, const float *d, float *y, size_t lo, size_t hi);
static size_t acn__relu_fast(acn_ctx *ctx, int dir, const float *x, const float *d, float *y, size_t lo, size_t hi);
static size_t acn__colsum_fast(acn_ctx *ctx, const float *d, size_t R, size_t C, size_t lo, size_t hi, float *gb);
static void acn__colsums(acn_ctx *ctx, const float *src, size_t R, size_t C, float *out);
static double acn__sumsq(acn_ctx *ctx, const float *g, size_t n); /* sum of g[i]^2, in double */
static void acn__add_to(acn_ctx *ctx, float *y, const float *x, size_t n); /* y[i] += x[i], i < n */
static void acn__fill(acn_ctx *ctx, float *y, float v, size_t n);          /* y[i] = v, i < n */
static int acn__ln_fast(acn_ctx *ctx, int bwd, const float *x, const float *g, const float *b, const float *d,
                        float eps, int D, float *y, float *mean, float *rstd, float *pg, float *pb);
static void acn__par(acn_ctx *ctx, acn__node *n, size_t count, double item_ns, acn__range_fn fn);       /* rows   */
static void acn__par_elems(acn_ctx *ctx, acn__node *n, size_t count, double item_ns, acn__range_fn fn); /* values */
/* C (M, N) (+)= op(A) op(B): the packed SIMD kernels on the context's
 * threads, or acn__gemm_ref (see "Fast paths"). */
static void acn__gemm(acn_ctx *ctx, int M, int N, int K, const float *A, int ta, const float *B, int tb,
                      float *C, int accumulate);
/* C (M, N) = op(A) op(B) + bias, the bias (N) added to every row (or
 * NULL); and, when gelu_out is given, gelu_out (M, N) = GELU(C), each tile
 * while it is still in cache */
static void acn__gemm_bias(acn_ctx *ctx, int M, int N, int K, const float *A, int ta, const float *B, int tb,
                           const float *bias, float *C, float *gelu_out);
/* The GELU options of the packed kernel (acn_ffn), for acn__gemm_run:
 * a: op(A) is GELU of what A holds (A not transposed); b: op(B) is GELU of
 * what B holds (B not transposed); dz (M, N) or NULL: C *= GELU'(dz) once
 * finished. They need a SIMD level (acn__gemm_fuses); the plain loops
 * never see them. slope: z is kept as its slope GELU'(z), the one value
 * the backward needs of it: with gelu_out, C = GELU'(C) once GELU(C) is
 * written (at any level); with dz, dz holds the slopes: C *= dz.
 * addrelu (M, N) or NULL: C = ReLU(C + addrelu) once finished (at any level:
 * acn_linear_add_relu). */
typedef struct acn__gemm_gelu { int a, b; const float *dz; int slope; const float *addrelu; } acn__gemm_gelu;
static int acn__gemm_fuses(const acn_ctx *ctx);
static int acn__gemm_small(int N, int K); /* the plain loops take it (unless fused) */
static void acn__gemm_run(acn_ctx *ctx, int M, int N, int K, const float *A, int ta, const float *B, int tb,
                          const float *bias, float *C, float *gelu_out, int accumulate, const acn__gemm_gelu *fuse);
/* The same on the calling thread (tid: whose packing buffer), for operands
 * that lie inside larger arrays: op(A)(i, k) = A[i ar + k ac],
 * op(B)(k, j) = B[k br + j bc], C rows ldc apart. */
static void acn__gemm_on(acn_ctx *ctx, int tid, int M, int N, int K, const float *A, size_t ar, size_t ac,
                         const float *B, size_t br, size_t bc, float *C, size_t ldc, int accumulate);
static const char *acn__op_name(int op);

/* ------------------------------------------------------------------------ */
/* Transient values (ACN_RECOMPUTE)                                         */
/* ------------------------------------------------------------------------ */
/* A transient output keeps no storage of its own: its value lives in one of
 * ACN__SLOTS scratch slots and is recomputed from its (stored) inputs
 * whenever it is read after being evicted. Reads go through acn__val, which
 * pins the slot for the kernel that is running (ctx->stamp), so a kernel
 * can hold the values of up to ACN__SLOTS transients at once. Slots are
 * carved from the arena, all at the size of the largest transient seen, so
 * recomputing in backward never allocates. */
static int acn__slots_reserve(acn_ctx *ctx, size_t numel)
{
    int s;
    if (ctx->slot[0] && ctx->slot_cap >= numel) return 0;
    if (numel > ctx->slot_cap) ctx->slot_cap = numel;
    for (s = 0; s < ACN__SLOTS; s++) {
        if (ctx->slot_owner[s]) { ctx->slot_owner[s]->data = NULL; ctx->slot_owner[s]->slot = -1; }
        ctx->slot_owner[s] = NULL;
        ctx->slot_used[s] = 0;
        ctx->slot[s] = acn__alloc_floats(ctx, ctx->slot_cap, "recompute scratch");
        if (!ctx->slot[s]) return -1;
    }
    return 0;
}

/* The value of t: its data, or for a transient its recomputed value. NULL
 * only when the slots had to be carved again (after acn_mark_rewind) and
 * the arena is full; the kernels never see that, as acn__ready runs first. */
static float *acn__val(acn_ctx *ctx, acn_tensor *t)
{
    int s, best = -1;
    if (!(t->flags & ACN_F_TRANSIENT)) return t->data;
    if (t->slot < 0 && (!ctx->slot[0] || ctx->slot_cap < t->numel) && acn__slots_reserve(ctx, t->numel))
        return NULL;
    if (t->slot < 0) {
        /* Take the least recently used slot not pinned by this kernel. */
        for (s = 0; s < ACN__SLOTS; s++)
            if (ctx->slot_pin[s] != ctx->stamp || !ctx->slot_owner[s])
                if (best < 0 || ctx->slot_used[s] < ctx->slot_used[best]) best = s;
        ACN_ASSERT(best >= 0 && ctx->slot[best] && ctx->slot_cap >= t->numel);
        if (ctx->slot_owner[best]) {
            ctx->slot_owner[best]->data = NULL;
            ctx->slot_owner[best]->slot = -1;
        }
        ctx->slot_owner[best] = t;
        t->slot = best;
        t->data = ctx->slot[best];
        acn__forward(ctx, t->node); /* inputs of a transient are stored */
    }
    ctx->slot_pin[t->slot] = ctx->stamp;
    ctx->slot_used[t->slot] = ++ctx->clock;
    return t->data;
}

ACNDEF float *acn_data(acn_ctx *ctx, acn_tensor *t)
{
    float *v;
    if (!ctx) return NULL;
    if (!t) {
        acn__fail(ctx, ACN_ERR_ARG, "data: the tensor is NULL (an op before it failed? see the error it set)");
        return NULL;
    }
    if (acn__live(ctx, t, "data", 0) || acn__enter(ctx, "data")) return NULL;
    ctx->stamp++;
    v = acn__val(ctx, t);
    acn__leave(ctx);
    return v;
}

/* The checks the four calls below share: a context, a live tensor of it,
 * and dst/src not NULL. -1 with the error set (when there is a context). */
static int acn__io_ok(acn_ctx *ctx, const acn_tensor *t, const void *buf, const char *who)
{
    if (!ctx) return -1;
    if (ctx->status) return -1;
    if (!t) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the tensor is NULL (an op before it failed? see the error it set)", who);
        return -1;
    }
    if (!buf) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the buffer is NULL; pass room for the tensor's %zu values", who, t->numel);
        return -1;
    }
    return acn__live(ctx, t, who, 0);
}
ACNDEF acn_status acn_read(acn_ctx *ctx, acn_tensor *t, float *dst)
{
    const float *v;
    if (acn__io_ok(ctx, t, dst, "read")) return ctx ? ctx->status : ACN_ERR_ARG;
    if (!(v = acn_data(ctx, t))) return ctx->status;
    acn__dcopy(ctx, dst, v, t->numel * sizeof(float), ACN__D2H, "read");
    return ctx->status;
}
ACNDEF acn_status acn_read_grad(acn_ctx *ctx, acn_tensor *t, float *dst)
{
    char sh[64];
    if (acn__io_ok(ctx, t, dst, "read_grad")) return ctx ? ctx->status : ACN_ERR_ARG;
    if (!t->grad) {
        acn__fail(ctx, ACN_ERR_STATE, "read_grad: the tensor '%s' of shape %s has no gradient: no gradient "
                         "flows to it (a parameter, or a leaf made with ACN_F_GRAD, has one), or acn_backward "
                         "has not reached it since the last acn_reset", t->name ? t->name : "", ACN__SHAPE(t, sh));
        return ctx->status;
    }
    acn__dcopy(ctx, dst, t->grad, t->numel * sizeof(float), ACN__D2H, "read_grad");
    return ctx->status;
}
ACNDEF acn_status acn_write(acn_ctx *ctx, acn_tensor *t, const float *src)
{
    char sh[64];
    if (acn__io_ok(ctx, t, src, "write")) return ctx ? ctx->status : ACN_ERR_ARG;
    if (t->node) {
        acn__fail(ctx, ACN_ERR_STATE, "write: the tensor of shape %s is the output of %s, and the tape "
                         "would no longer agree with it; write parameters and leaves (acn_new, acn_input) "
                         "only", ACN__SHAPE(t, sh), acn__op_name(t->node->op));
        return ctx->status;
    }
    acn__dcopy(ctx, t->data, src, t->numel * sizeof(float), ACN__H2D, "write");
    return ctx->status;
}
ACNDEF float acn_item(acn_ctx *ctx, acn_tensor *t)
{
    float v = NAN;
    char sh[64];
    if (!ctx || ctx->status) return NAN;
    if (t && t->numel != 1) {
        acn__fail(ctx, ACN_ERR_SHAPE, "item: the tensor has shape %s, %zu values; item reads a tensor of "
                  "one value (a loss): use acn_read for more", ACN__SHAPE(t, sh), t->numel);
        return NAN;
    }
    return acn_read(ctx, t, &v) ? NAN : v;
}
ACNDEF acn_status acn_argmax(acn_ctx *ctx, acn_tensor *t, int *out)
{
    const float *v;
    size_t r, rows;
    int j, C;
    char sh[64];
    if (acn__io_ok(ctx, t, out, "argmax")) return ctx ? ctx->status : ACN_ERR_ARG;
    if (t->ndim < 1) {
        acn__fail(ctx, ACN_ERR_SHAPE, "argmax: the tensor has shape %s; it needs rows (..., C)", ACN__SHAPE(t, sh));
        return ctx->status;
    }
    if (!(v = acn_data(ctx, t))) return ctx->status;
    if (ACN__GPU(ctx)) { /* the values come to the host, into the arena (gone at the next reset) */
        float *h = (float *)acn__alloc(ctx, t->numel * sizeof(float), "argmax");
        if (!h || acn__dcopy(ctx, h, v, t->numel * sizeof(float), ACN__D2H, "argmax")) return ctx->status;
        v = h;
    }
    C = t->shape[t->ndim - 1];
    rows = C ? t->numel / (size_t)C : 0;
    for (r = 0; r < rows; r++, v += C) {  /* v: row r, (C) */
        int best = 0;
        for (j = 1; j < C; j++)
            if (v[j] > v[best]) best = j;
        out[r] = best;
    }
    return ACN_OK;
}
ACNDEF double acn_grad_norm(acn_ctx *ctx, acn_tensor *t)
{
    const float *g;
    char sh[64];
    if (!ctx || ctx->status) return NAN;
    if (!t || !t->grad) {
        if (t) acn__fail(ctx, ACN_ERR_STATE, "grad_norm: the tensor '%s' of shape %s has no gradient (see "
                         "acn_read_grad)", t->name ? t->name : "", ACN__SHAPE(t, sh));
        else acn__fail(ctx, ACN_ERR_ARG, "grad_norm: the tensor is NULL");
        return NAN;
    }
    if (acn__live(ctx, t, "grad_norm", 0)) return NAN;
    g = t->grad;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* summed on the device (squares in double, a fixed order); one float comes back */
        float *dnorm = (float *)((unsigned char *)acn__aligned(ctx->dev_scratch) + acn__cu_clip_scratch_bytes()), norm;
        if (acn__cu_ok(ctx, acn__cu_clip(ctx->cu, t->numel, t->grad, 0.0f, acn__aligned(ctx->dev_scratch),
                                         dnorm, "grad_norm")) ||
            acn__dcopy(ctx, &norm, dnorm, sizeof norm, ACN__D2H, "grad_norm"))
            return NAN;
        return norm;
    }
#endif
    return sqrt(acn__sumsq(ctx, g, t->numel));
}

/* Make the values a kernel of node n reads available (the inputs, and for
 * backward the output), under a fresh stamp. -1 with the error set if not. */
static int acn__ready(acn_ctx *ctx, acn__node *n, int with_out)
{
    int i;
    ctx->stamp++;
    for (i = 0; i < n->n_in; i++)
        if (n->in[i] && !acn__val(ctx, n->in[i])) return -1;
    if (with_out && !acn__val(ctx, n->out)) return -1;
    return 0;
}

/* The gradient buffer of an input, or NULL when it takes no gradient. */
static float *acn__g(const acn_tensor *t) { return t && (t->flags & ACN_F_GRAD) ? t->grad : NULL; }
/* An activation's gradient is allocated when the first of its consumers
 * runs backward. For the ops that can write it rather than add to it (the
 * products, and on a CPU context the element-wise ops and LayerNorm:
 * acn__writes_first), it is left unwritten and marked fresh; the
 * op's backward asks acn__fresh (1: write it, and it is no longer fresh) or
 * acn__zeroed (clear it first) for each input it adds to. Any other op, and
 * any input the op left alone, gets the buffer zeroed (acn_backward_with). */
#define ACN__F_FRESH (1 << 8)  /* internal: grad allocated, not yet written */
static int acn__fresh(acn_tensor *t)
{
    int fresh = t && (t->flags & ACN__F_FRESH);
    if (fresh) t->flags &= ~ACN__F_FRESH;
    return fresh;
}
static float *acn__zeroed(acn_tensor *t)
{
    if (acn__fresh(t)) acn__dzero(t->ctx, t->grad, t->numel * sizeof(float), "backward");
    return acn__g(t);
}

/* ------------------------------------------------------------------------ */
/* Running an op                                                            */
/* ------------------------------------------------------------------------ */
/* 0 when every one of the n inputs is a tensor (NULL only where allowed is
 * checked by the op itself). A NULL input after an earlier error is not a
 * new error: the first one stays. */
static int acn__inputs_ok(acn_ctx *ctx, const char *op, acn_tensor *const *in, int n)
{
    int i;
    if (!ctx) return -1;
    if (ctx->status) return -1;
    for (i = 0; i < n; i++) {
        if (!in[i]) {
            acn__fail(ctx, ACN_ERR_ARG, "%s: input %d is NULL", op, i);
            return -1;
        }
        if (acn__live(ctx, in[i], op, i)) return -1;
    }
    return 0;
}
/* The same for an optional input (a bias, a mask): NULL is fine. */
static int acn__optional_ok(acn_ctx *ctx, const char *op, const acn_tensor *t, int index)
{
    return t ? acn__live(ctx, t, op, index) : 0;
}

/* A node for `op` on inputs in[0..n_in-1] (entries may be NULL for optional
 * inputs) with an output of the given shape. With `recompute`, the output
 * is transient when none of the inputs is. */
static acn__node *acn__node_new(acn_ctx *ctx, int op, acn_tensor *const *in, int n_in, int ndim,
                                const int *shape, int recompute)
{
    acn__node *n;
    acn_tensor *out;
    int i, grad = 0, transient_in = 0;
    const char *name = acn__op_name(op);
    for (i = 0; i < n_in; i++) /* the optional inputs too */
        if (acn__optional_ok(ctx, name, in[i], i)) return NULL;
    for (i = 0; i < n_in; i++)
        if (in[i]) {
            int k, again = 0; /* a tensor given twice takes one slot */
            for (k = 0; k < i; k++) again |= in[k] == in[i];
            grad |= in[i]->flags & ACN_F_GRAD;
            transient_in += !again && (in[i]->flags & ACN_F_TRANSIENT);
        }
    if (transient_in > ACN__SLOTS - 1) {
        acn__fail(ctx, ACN_ERR_ARG,
                  "%s: %d of its inputs are recomputed (ACN_RECOMPUTE); at most %d can be",
                  name, transient_in, ACN__SLOTS - 1);
        return NULL;
    }
    n = (acn__node *)acn__alloc(ctx, sizeof *n, name);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->op = op;
    n->ctx = ctx;
    n->n_in = n_in;
    n->in = (acn_tensor **)acn__alloc(ctx, (size_t)(n_in ? n_in : 1) * sizeof(acn_tensor *), name);
    out = acn__header(ctx, ndim, shape, name);
    if (!n->in || !out) return NULL;
    for (i = 0; i < n_in; i++) n->in[i] = in[i];
    n->out = out;
    out->node = n;
    if (grad && !ctx->no_grad) out->flags |= ACN_F_GRAD;
    /* a recompute reads the inputs, which must then be stored; linear_gelu
     * recomputes from its saved pre-activation alone */
    if (recompute && (!transient_in || op == ACN__OP_LINEAR_GELU)) {
        out->flags |= ACN_F_TRANSIENT;
        if (acn__slots_reserve(ctx, out->numel)) return NULL;
    } else if (!(out->data = acn__alloc_floats(ctx, out->numel, name))) {
        return NULL;
    }
    return n;
}

/* Scan n floats for NaN/Inf; sets an error naming op and what. */
static int acn__finite(acn_ctx *ctx, const float *p, size_t n, const char *op, const char *what,
                       const acn_tensor *t)
{
    size_t i, bad = 0, first = 0;
    char sh[64];
    for (i = 0; i < n; i++)
        if (!isfinite(p[i])) {
            if (!bad) first = i;
            bad++;
        }
    if (!bad) return 0;
    acn__fail(ctx, ACN_ERR_NONFINITE,
              "%s: %zu non-finite values in the %s %s, first at index %zu (value %g); check the "
              "inputs, the learning rate, or masks of -inf over whole rows",
              op, bad, what, ACN__SHAPE(t, sh), first, (double)p[first]);
    return -1;
}

/* Run a node's forward kernel and put it on the tape when it needs a
 * gradient. Returns its output, or NULL on error. */
static acn_tensor *acn__run(acn_ctx *ctx, acn__node *n)
{
    acn_tensor *out;
    if (!n || acn__enter(ctx, acn__op_name(n->op))) return NULL;
    out = n->out;
    if (acn__ready(ctx, n, 0)) out = NULL;
    else if (out->flags & ACN_F_TRANSIENT) acn__val(ctx, out);
    else acn__forward(ctx, n);
    if (out && !ctx->status && ctx->check_finite)
        acn__finite(ctx, out->data, out->numel, acn__op_name(n->op), "output", out);
    if (out && !ctx->status && (out->flags & ACN_F_GRAD)) {
        n->prev = ctx->tape;
        ctx->tape = n;
        ctx->tape_len++;
    }
    acn__leave(ctx);
    return ctx->status ? NULL : out;
}

/* Negative axes count from the end; -1 when out of range (with an error). */
static int acn__axis(acn_ctx *ctx, const char *op, const acn_tensor *x, int axis)
{
    int a = axis < 0 ? axis + x->ndim : axis;
    char sh[64];
    if (a < 0 || a >= x->ndim) {
        acn__fail(ctx, ACN_ERR_SHAPE, "%s: axis %d is out of range for a tensor of shape %s", op,
                  axis, ACN__SHAPE(x, sh));
        return -1;
    }
    return a;
}

/* Product of shape[lo..hi-1]. */
static size_t acn__prod(const acn_tensor *t, int lo, int hi)
{
    size_t p = 1;
    int d;
    for (d = lo; d < hi; d++) p *= (size_t)t->shape[d];
    return p;
}

/* ======================================================================== */
/* Ops: each constructor, forward kernel and backward kernel together.      */
/* In backward, "d" is the gradient of the loss: dx = dL/dx.                */
/* ======================================================================== */

/* ---- add, sub, mul with broadcasting ----------------------------------- */
/* The operands are right-aligned in 4 dims; a dim of size 1 repeats. */
typedef struct acn__bcast {
    int n[4];              /* output dims, padded to 4                       */
    size_t sa[4], sb[4];   /* element strides of a and b (0: broadcast)      */
} acn__bcast;

/* Padded 4-d size of t along dim d (0..3). */
static int acn__dim4(const acn_tensor *t, int d)
{
    int k = d - (ACN_MAX_DIMS - t->ndim);
    return k < 0 ? 1 : t->shape[k];
}

static void acn__bcast_strides(const acn_tensor *t, const int *n, size_t *s)
{
    size_t stride = 1;
    int d;
    for (d = ACN_MAX_DIMS - 1; d >= 0; d--) {
        int sz = acn__dim4(t, d);
        s[d] = (sz == 1 && n[d] != 1) ? 0 : stride;
        stride *= (size_t)sz;
    }
}

static void acn__bcast_init(acn__bcast *bc, const acn_tensor *out, const acn_tensor *a,
                            const acn_tensor *b)
{
    int d;
    for (d = 0; d < ACN_MAX_DIMS; d++) bc->n[d] = acn__dim4(out, d);
    acn__bcast_strides(a, bc->n, bc->sa);
    acn__bcast_strides(b, bc->n, bc->sb);
}

/* Broadcast shape of a and b into ndim/shape; -1 with an error if none. */
static int acn__bcast_shape(acn_ctx *ctx, const char *op, const acn_tensor *a, const acn_tensor *b,
                            int *ndim, int *shape)
{
    int d, nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    char s1[64], s2[64];
    for (d = 0; d < nd; d++) {
        int da = acn__dim4(a, ACN_MAX_DIMS - nd + d), db = acn__dim4(b, ACN_MAX_DIMS - nd + d);
        if (da != db && da != 1 && db != 1) {
            acn__fail(ctx, ACN_ERR_SHAPE,
                      "%s: %s and %s do not broadcast (axis %d: %d vs %d); each dim must be equal "
                      "or 1, shapes aligned at the right",
                      op, ACN__SHAPE(a, s1), ACN__SHAPE(b, s2), d, da, db);
            return -1;
        }
        shape[d] = da > db ? da : db;
    }
    *ndim = nd;
    return 0;
}

static acn_tensor *acn__binary(acn_ctx *ctx, int op, acn_tensor *a, acn_tensor *b)
{
    acn_tensor *in[2];
    int ndim, shape[ACN_MAX_DIMS];
    in[0] = a;
    in[1] = b;
    if (acn__inputs_ok(ctx, acn__op_name(op), in, 2)) return NULL;
    if (acn__bcast_shape(ctx, acn__op_name(op), a, b, &ndim, shape)) return NULL;
    return acn__run(ctx, acn__node_new(ctx, op, in, 2, ndim, shape, 0));
}
ACNDEF acn_tensor *acn_add(acn_ctx *ctx, acn_tensor *a, acn_tensor *b) { return acn__binary(ctx, ACN__OP_ADD, a, b); }
ACNDEF acn_tensor *acn_sub(acn_ctx *ctx, acn_tensor *a, acn_tensor *b) { return acn__binary(ctx, ACN__OP_SUB, a, b); }
ACNDEF acn_tensor *acn_mul(acn_ctx *ctx, acn_tensor *a, acn_tensor *b) { return acn__binary(ctx, ACN__OP_MUL, a, b); }

/* out = a + b | a - b | a * b                      a, b broadcast to out
 * (split over rows: the first three padded dims; a row is the last dim) */
static void acn__binary_fwd_rows(acn__node *n, size_t lo, size_t hi)
{
    const float *a = n->in[0]->data, *b = n->in[1]->data;
    float *out = n->out->data;
    acn__bcast bc;
    size_t r;
    int i3;
    acn__bcast_init(&bc, n->out, n->in[0], n->in[1]);
    for (r = lo; r < hi; r++) {
        size_t i2 = r % (size_t)bc.n[2], i1 = r / (size_t)bc.n[2] % (size_t)bc.n[1];
        size_t i0 = r / ((size_t)bc.n[2] * bc.n[1]), o = r * (size_t)bc.n[3];
        const float *pa = a + i0 * bc.sa[0] + i1 * bc.sa[1] + i2 * bc.sa[2];
        const float *pb = b + i0 * bc.sb[0] + i1 * bc.sb[1] + i2 * bc.sb[2];
        size_t sa = bc.sa[3], sb = bc.sb[3];
        switch (n->op) {
        case ACN__OP_ADD: for (i3 = 0; i3 < bc.n[3]; i3++) out[o + i3] = pa[i3 * sa] + pb[i3 * sb]; break;
        case ACN__OP_SUB: for (i3 = 0; i3 < bc.n[3]; i3++) out[o + i3] = pa[i3 * sa] - pb[i3 * sb]; break;
        default:          for (i3 = 0; i3 < bc.n[3]; i3++) out[o + i3] = pa[i3 * sa] * pb[i3 * sb]; break;
        }
    }
}
static void acn__binary_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__par(ctx, n, n->out->numel / (size_t)acn__dim4(n->out, 3), acn__dim4(n->out, 3) * ACN__NS_ELEM,
             acn__binary_fwd_rows);
}
/* add: da += d, db += d;  sub: da += d, db -= d;  mul: da += d b, db += d a,
 * each summed over the dims it was broadcast along. */
/* g[i] = or += (d[i] m[i], or -d[i] when neg, or d[i]) for i in [lo, hi):
 * an input's share of an element-wise op's gradient, written when write
 * (the gradient was fresh) and added otherwise. */
static void acn__gput(acn_ctx *ctx, float *g, int write, const float *d, const float *m, int neg, size_t lo,
                      size_t hi)
{
    size_t i;
    if (m) {
        if (write) for (i = lo; i < hi; i++) g[i] = d[i] * m[i];
        else for (i = lo; i < hi; i++) g[i] += d[i] * m[i];
    } else if (neg) {
        if (write) for (i = lo; i < hi; i++) g[i] = -d[i];
        else for (i = lo; i < hi; i++) g[i] -= d[i];
    } else if (write) {
        memcpy(g + lo, d + lo, (hi - lo) * sizeof(float));
    } else {
        acn__add_to(ctx, g + lo, d + lo, hi - lo);
    }
}
/* The same without broadcasting, for i in [lo, hi), each input's gradient
 * written or added as n->wr says; da before db, so add(x, x) writes d into
 * dx and then adds d. */
static void acn__binary_bwd_flat(acn__node *n, size_t lo, size_t hi)
{
    float *ga = acn__g(n->in[0]), *gb = acn__g(n->in[1]);
    const float *d = n->out->grad, *a = n->in[0]->data, *b = n->in[1]->data;
    int mul = n->op == ACN__OP_MUL;
    if (ga) acn__gput(n->ctx, ga, n->wr & 1, d, mul ? b : NULL, 0, lo, hi);
    if (gb) acn__gput(n->ctx, gb, (n->wr & 2) != 0, d, mul ? a : NULL, n->op == ACN__OP_SUB, lo, hi);
}
static void acn__binary_bwd(acn_ctx *ctx, acn__node *n)
{
    float *ga, *gb;
    const float *d = n->out->grad, *a = n->in[0]->data, *b = n->in[1]->data;
    acn__bcast bc;
    int i0, i1, i2, i3;
    size_t o = 0;
    if (n->in[0]->numel == n->out->numel && n->in[1]->numel == n->out->numel) {
        n->wr = (unsigned)acn__fresh(n->in[0]); /* in[0] first: add(x, x) writes, then adds */
        n->wr |= (unsigned)acn__fresh(n->in[1]) << 1;
        acn__par_elems(ctx, n, n->out->numel, ACN__NS_ELEM, acn__binary_bwd_flat);
        return;
    }
    /* broadcast: several outputs add into one input element, so one thread */
    ga = acn__zeroed(n->in[0]);
    gb = acn__zeroed(n->in[1]);
    acn__bcast_init(&bc, n->out, n->in[0], n->in[1]);
    for (i0 = 0; i0 < bc.n[0]; i0++)
        for (i1 = 0; i1 < bc.n[1]; i1++)
            for (i2 = 0; i2 < bc.n[2]; i2++) {
                size_t ia = i0 * bc.sa[0] + i1 * bc.sa[1] + i2 * bc.sa[2];
                size_t ib = i0 * bc.sb[0] + i1 * bc.sb[1] + i2 * bc.sb[2];
                for (i3 = 0; i3 < bc.n[3]; i3++, o++) {
                    size_t ja = ia + i3 * bc.sa[3], jb = ib + i3 * bc.sb[3];
                    switch (n->op) {
                    case ACN__OP_ADD: if (ga) ga[ja] += d[o]; if (gb) gb[jb] += d[o]; break;
                    case ACN__OP_SUB: if (ga) ga[ja] += d[o]; if (gb) gb[jb] -= d[o]; break;
                    default:          if (ga) ga[ja] += d[o] * b[jb]; if (gb) gb[jb] += d[o] * a[ja]; break;
                    }
                }
            }
}

/* ---- scale -------------------------------------------------------------- */
ACNDEF acn_tensor *acn_scale(acn_ctx *ctx, acn_tensor *x, float s)
{
    acn__node *n;
    if (acn__inputs_ok(ctx, "scale", &x, 1)) return NULL;
    n = acn__node_new(ctx, ACN__OP_SCALE, &x, 1, x->ndim, x->shape, 0);
    if (n) n->farg[0] = s;
    return acn__run(ctx, n);
}
/* out = s x */
static void acn__scale_fwd(acn_ctx *ctx, acn__node *n)
{
    const float *x = acn__val(ctx, n->in[0]);
    size_t i;
    for (i = 0; i < n->out->numel; i++) n->out->data[i] = n->farg[0] * x[i];
}
/* dx += s d */
static void acn__scale_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    size_t i;
    (void)ctx;
    if (gx) for (i = 0; i < n->out->numel; i++) gx[i] += n->farg[0] * n->out->grad[i];
}

/* ---- add_n: the ACN running sum in one op ------------------------------- */
ACNDEF acn_tensor *acn_add_n(acn_ctx *ctx, acn_tensor *const *xs, int n)
{
    acn__node *nd;
    char s1[64], s2[64];
    int i, d;
    if (!ctx || ctx->status) return NULL;
    if (!xs || n < 1) { acn__fail(ctx, ACN_ERR_ARG, "add_n: no tensors given"); return NULL; }
    if (acn__inputs_ok(ctx, "add_n", xs, n)) return NULL;
    for (i = 1; i < n; i++) {
        int same = xs[i]->ndim == xs[0]->ndim;
        for (d = 0; same && d < xs[0]->ndim; d++) same = xs[i]->shape[d] == xs[0]->shape[d];
        if (!same) {
            acn__fail(ctx, ACN_ERR_SHAPE, "add_n: tensor %d %s differs from tensor 0 %s; all need one shape", i,
                      ACN__SHAPE(xs[i], s1), ACN__SHAPE(xs[0], s2));
            return NULL;
        }
    }
    nd = acn__node_new(ctx, ACN__OP_ADD_N, xs, n, xs[0]->ndim, xs[0]->shape, 0);
    if (nd && !(nd->aux = acn__alloc(ctx, (size_t)n, "add_n"))) return NULL; /* backward: which dx_k it writes */
    return acn__run(ctx, nd);
}
/* out = ((x_0 + x_1) + x_2) + ...   (the order of a chain of acn_add), in
 * runs of 2048 values (8 KB), so the sum stays in L1 while every input
 * passes through it */
static void acn__addn_fwd_range(acn__node *n, size_t lo, size_t hi)
{
    float *out = n->out->data;
    int k;
    size_t r, e;
    for (r = lo; r < hi; r = e) {
        e = hi - r > 2048 ? r + 2048 : hi;
        memcpy(out + r, n->in[0]->data + r, (e - r) * sizeof(float));
        for (k = 1; k < n->n_in; k++) acn__add_to(n->ctx, out + r, n->in[k]->data + r, e - r);
    }
}
static void acn__addn_fwd(acn_ctx *ctx, acn__node *n) { acn__par_elems(ctx, n, n->out->numel, n->n_in * ACN__NS_ELEM, acn__addn_fwd_range); }
/* dx_k += d for every k (dx_k = d where aux's byte k says it was fresh) */
static void acn__addn_bwd_range(acn__node *n, size_t lo, size_t hi)
{
    const unsigned char *w = (const unsigned char *)n->aux;
    int k;
    for (k = 0; k < n->n_in; k++) {
        float *g = acn__g(n->in[k]);
        if (g) acn__gput(n->ctx, g, w[k], n->out->grad, NULL, 0, lo, hi);
    }
}
static void acn__addn_bwd(acn_ctx *ctx, acn__node *n)
{
    unsigned char *w = (unsigned char *)n->aux;
    int k;
    for (k = 0; k < n->n_in; k++) w[k] = (unsigned char)acn__fresh(n->in[k]); /* in order: a repeat adds */
    acn__par_elems(ctx, n, n->out->numel, n->n_in * ACN__NS_ELEM, acn__addn_bwd_range);
}

/* ---- sum, mean over an axis --------------------------------------------- */
/* x viewed as (outer, len, inner), reduced over len: iarg = {outer, len, inner}. */
static acn_tensor *acn__reduce(acn_ctx *ctx, int op, acn_tensor *x, int axis)
{
    int a, d, k = 0, shape[ACN_MAX_DIMS] = {1, 1, 1, 1};
    acn__node *n;
    if (acn__inputs_ok(ctx, acn__op_name(op), &x, 1)) return NULL;
    if (axis == ACN_AXIS_ALL) {
        n = acn__node_new(ctx, op, &x, 1, 0, NULL, 0);
        if (n) { n->iarg[0] = 1; n->iarg[1] = (int)x->numel; n->iarg[2] = 1; }
        return acn__run(ctx, n);
    }
    if ((a = acn__axis(ctx, acn__op_name(op), x, axis)) < 0) return NULL;
    for (d = 0; d < x->ndim; d++)
        if (d != a) shape[k++] = x->shape[d];
    n = acn__node_new(ctx, op, &x, 1, k, shape, 0);
    if (n) {
        n->iarg[0] = (int)acn__prod(x, 0, a);
        n->iarg[1] = x->shape[a];
        n->iarg[2] = (int)acn__prod(x, a + 1, x->ndim);
    }
    return acn__run(ctx, n);
}
ACNDEF acn_tensor *acn_sum(acn_ctx *ctx, acn_tensor *x, int axis) { return acn__reduce(ctx, ACN__OP_SUM, x, axis); }
ACNDEF acn_tensor *acn_mean(acn_ctx *ctx, acn_tensor *x, int axis) { return acn__reduce(ctx, ACN__OP_MEAN, x, axis); }

/* out[o, i] = sum_j x[o, j, i]   (mean: divided by len)   x (outer, len, inner) */
static void acn__reduce_fwd(acn_ctx *ctx, acn__node *n)
{
    const float *x = acn__val(ctx, n->in[0]);
    int outer = n->iarg[0], len = n->iarg[1], inner = n->iarg[2], o, j, i;
    float *out = n->out->data;
    for (o = 0; o < outer; o++)
        for (i = 0; i < inner; i++) {
            double s = 0.0; /* long sums (a whole-tensor mean) in double */
            for (j = 0; j < len; j++) s += x[((size_t)o * len + j) * inner + i];
            out[(size_t)o * inner + i] = (float)(n->op == ACN__OP_MEAN ? s / len : s);
        }
}
/* dx[o, j, i] += d[o, i]   (mean: d[o, i] / len) */
static void acn__reduce_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    int outer = n->iarg[0], len = n->iarg[1], inner = n->iarg[2], o, j, i;
    float k = n->op == ACN__OP_MEAN ? 1.0f / (float)len : 1.0f;
    (void)ctx;
    if (!gx) return;
    for (o = 0; o < outer; o++)
        for (j = 0; j < len; j++)
            for (i = 0; i < inner; i++)
                gx[((size_t)o * len + j) * inner + i] += k * n->out->grad[(size_t)o * inner + i];
}

/* ---- matmul, linear ----------------------------------------------------- */
/* The reference matrix kernel: C (M, N) (+)= op(A) op(B), op(A) (M, K),
 * op(B) (K, N). A is stored (M, K), or (K, M) when ta; B is stored (K, N),
 * or (N, K) when tb. Loop orders keep the innermost loop on contiguous
 * memory. This is the portable path (ACN_SIMD_PORTABLE); the packed SIMD
 * kernels of the "Fast paths" section compute the same product faster. */
static void acn__gemm_ref(int M, int N, int K, const float *A, int ta, const float *B, int tb, float *C,
                          int accumulate)
{
    int i, j, k;
    if (!accumulate) memset(C, 0, (size_t)M * N * sizeof(float));
    if (!ta && !tb) {            /* C[i, :] += A[i, k] B[k, :]                */
        for (i = 0; i < M; i++)
            for (k = 0; k < K; k++) {
                float a = A[(size_t)i * K + k];
                const float *b = B + (size_t)k * N;
                float *c = C + (size_t)i * N;
                for (j = 0; j < N; j++) c[j] += a * b[j];
            }
    } else if (!ta && tb) {      /* C[i, j] += A[i, :] . B[j, :]              */
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                const float *a = A + (size_t)i * K, *b = B + (size_t)j * K;
                float s = 0.0f;
                for (k = 0; k < K; k++) s += a[k] * b[k];
                C[(size_t)i * N + j] += s;
            }
    } else if (ta && !tb) {      /* C[i, :] += A[k, i] B[k, :]                */
        for (k = 0; k < K; k++)
            for (i = 0; i < M; i++) {
                float a = A[(size_t)k * M + i];
                const float *b = B + (size_t)k * N;
                float *c = C + (size_t)i * N;
                for (j = 0; j < N; j++) c[j] += a * b[j];
            }
    } else {                     /* C[i, j] += sum_k A[k, i] B[j, k]          */
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                float s = 0.0f;
                for (k = 0; k < K; k++) s += A[(size_t)k * M + i] * B[(size_t)j * K + k];
                C[(size_t)i * N + j] += s;
            }
    }
}

/* iarg = {ta, tb, batches, b_shared}; the M, N, K come from the shapes. */
ACNDEF acn_tensor *acn_matmul(acn_ctx *ctx, acn_tensor *a, acn_tensor *b, int ta, int tb)
{
    acn_tensor *in[2];
    int M, K, Kb, N, d, shape[ACN_MAX_DIMS], shared;
    char s1[64], s2[64];
    acn__node *n;
    in[0] = a;
    in[1] = b;
    if (acn__inputs_ok(ctx, "matmul", in, 2)) return NULL;
    if (a->ndim < 2 || b->ndim < 2) {
        acn__fail(ctx, ACN_ERR_SHAPE, "matmul: %s x %s: both operands need at least 2 dimensions",
                  ACN__SHAPE(a, s1), ACN__SHAPE(b, s2));
        return NULL;
    }
    M = a->shape[a->ndim - (ta ? 1 : 2)];
    K = a->shape[a->ndim - (ta ? 2 : 1)];
    Kb = b->shape[b->ndim - (tb ? 1 : 2)];
    N = b->shape[b->ndim - (tb ? 2 : 1)];
    if (K != Kb) {
        acn__fail(ctx, ACN_ERR_SHAPE, "matmul: %s%s x %s%s: inner dimensions differ (%d vs %d)",
                  ACN__SHAPE(a, s1), ta ? "^T" : "", ACN__SHAPE(b, s2), tb ? "^T" : "", K, Kb);
        return NULL;
    }
    shared = b->ndim == 2;
    if (!shared) {
        int same = b->ndim == a->ndim;
        for (d = 0; same && d < a->ndim - 2; d++) same = a->shape[d] == b->shape[d];
        if (!same) {
            acn__fail(ctx, ACN_ERR_SHAPE,
                      "matmul: %s x %s: batch dimensions differ; b must be 2-D or have the batch "
                      "dims of a",
                      ACN__SHAPE(a, s1), ACN__SHAPE(b, s2));
            return NULL;
        }
    }
    for (d = 0; d < a->ndim - 2; d++) shape[d] = a->shape[d];
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    n = acn__node_new(ctx, ACN__OP_MATMUL, in, 2, a->ndim, shape, 0);
    if (n) {
        n->iarg[0] = ta;
        n->iarg[1] = tb;
        n->iarg[2] = (int)acn__prod(a, 0, a->ndim - 2);
        n->iarg[3] = shared;
    }
    return acn__run(ctx, n);
}

/* Dims of a matmul node: M, N, K. */
static void acn__mnk(const acn__node *n, int *M, int *N, int *K)
{
    const acn_tensor *a = n->in[0];
    *M = n->out->shape[n->out->ndim - 2];
    *N = n->out->shape[n->out->ndim - 1];
    *K = a->shape[a->ndim - (n->iarg[0] ? 2 : 1)];
}

/* out[z] = op(a[z]) op(b[z])     a (Z, M, K), b (Z, K, N) or (K, N), out (Z, M, N) */
static void acn__matmul_fwd(acn_ctx *ctx, acn__node *n)
{
    const float *a = acn__val(ctx, n->in[0]), *b = acn__val(ctx, n->in[1]);
    int M, N, K, z, ta = n->iarg[0], tb = n->iarg[1], Z = n->iarg[2], shared = n->iarg[3];
    acn__mnk(n, &M, &N, &K);
    for (z = 0; z < Z; z++)
        acn__gemm(ctx, M, N, K, a + (size_t)z * M * K, ta, b + (shared ? 0 : (size_t)z * K * N), tb,
                  n->out->data + (size_t)z * M * N, 0);
}
/* From C = op(A) op(B):  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC,
 * written for the stored layouts (a transposed operand gets the transposed
 * product). A shared b sums its gradient over the batch. */
static void acn__matmul_bwd(acn_ctx *ctx, acn__node *n)
{
    float *ga = acn__g(n->in[0]), *gb = acn__g(n->in[1]);
    const float *a = gb ? acn__val(ctx, n->in[0]) : NULL, *b = ga ? acn__val(ctx, n->in[1]) : NULL;
    int M, N, K, z, ta = n->iarg[0], tb = n->iarg[1], Z = n->iarg[2], shared = n->iarg[3];
    acn__mnk(n, &M, &N, &K);
    for (z = 0; z < Z; z++) {
        const float *dC = n->out->grad + (size_t)z * M * N;
        const float *az = a ? a + (size_t)z * M * K : NULL;
        const float *bz = b ? b + (shared ? 0 : (size_t)z * K * N) : NULL;
        float *gaz = ga ? ga + (size_t)z * M * K : NULL;
        float *gbz = gb ? gb + (shared ? 0 : (size_t)z * K * N) : NULL;
        if (gaz) {
            if (!ta) acn__gemm(ctx, M, K, N, dC, 0, bz, !tb, gaz, 1);   /* dA (M,K) = dC op(B)^T */
            else acn__gemm(ctx, K, M, N, bz, tb, dC, 1, gaz, 1);        /* dA (K,M) = op(B) dC^T */
        }
        if (gbz) {
            if (!tb) acn__gemm(ctx, K, N, M, az, !ta, dC, 0, gbz, 1);   /* dB (K,N) = op(A)^T dC */
            else acn__gemm(ctx, N, K, M, dC, 1, az, ta, gbz, 1);        /* dB (N,K) = dC^T op(A) */
        }
    }
}

ACNDEF acn_tensor *acn_linear(acn_ctx *ctx, acn_tensor *x, acn_tensor *W, acn_tensor *b)
{
    acn_tensor *in[3];
    int shape[ACN_MAX_DIMS], d;
    char s1[64], s2[64], s3[64];
    in[0] = x;
    in[1] = W;
    in[2] = b;
    if (acn__inputs_ok(ctx, "linear", in, 2) || acn__optional_ok(ctx, "linear", b, 2)) return NULL;
    if (x->ndim < 1 || W->ndim != 2 || x->shape[x->ndim - 1] != W->shape[1] ||
        (b && (b->ndim != 1 || b->shape[0] != W->shape[0]))) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "linear: x %s, W %s, b %s: need x (..., in), W (out, in) as PyTorch stores it, "
                  "b (out) or NULL",
                  ACN__SHAPE(x, s1), ACN__SHAPE(W, s2), b ? ACN__SHAPE(b, s3) : "NULL");
        return NULL;
    }
    for (d = 0; d < x->ndim - 1; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = W->shape[0];
    return acn__run(ctx, acn__node_new(ctx, ACN__OP_LINEAR, in, 3, x->ndim, shape, 0));
}
/* out (R, O) = x (R, I) W^T + b      W (O, I), b (O) */
static void acn__linear_fwd(acn_ctx *ctx, acn__node *n)
{
    const float *x = acn__val(ctx, n->in[0]), *W = acn__val(ctx, n->in[1]);
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1];
    int R = (int)(n->out->numel / (size_t)O);
    acn__gemm_bias(ctx, R, O, I, x, 0, W, 1, n->in[2] ? acn__val(ctx, n->in[2]) : NULL, n->out->data, NULL);
}
/* dx (R, I) += d (R, O) W;   dW (O, I) += d^T x;   db (O) += sum_r d[r, :] */
static void acn__linear_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]), *gW = acn__g(n->in[1]), *gb = acn__g(n->in[2]);
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1];
    int R = (int)(n->out->numel / (size_t)O);
    const float *d = n->out->grad;
    if (gx) acn__gemm(ctx, R, I, O, d, 0, acn__val(ctx, n->in[1]), 0, gx, !acn__fresh(n->in[0]));
    if (gW) acn__gemm(ctx, O, I, R, d, 1, acn__val(ctx, n->in[0]), 0, gW, !acn__fresh(n->in[1]));
    if (gb) acn__colsums(ctx, d, (size_t)R, (size_t)O, acn__zeroed(n->in[2]));    /* db[o] += sum_r d[r, o] */
}

/* ---- linear along the middle axis ----------------------------------------- */
ACNDEF acn_tensor *acn_linear_mid(acn_ctx *ctx, acn_tensor *x, acn_tensor *W, acn_tensor *b)
{
    acn_tensor *in[3];
    int shape[3];
    char s1[64], s2[64], s3[64];
    in[0] = x;
    in[1] = W;
    in[2] = b;
    if (acn__inputs_ok(ctx, "linear_mid", in, 2) || acn__optional_ok(ctx, "linear_mid", b, 2)) return NULL;
    if (x->ndim != 3 || W->ndim != 2 || x->shape[1] != W->shape[1] ||
        (b && (b->ndim != 1 || b->shape[0] != W->shape[0]))) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "linear_mid: x %s, W %s, b %s: need x (B, T, D), W (J, T) and b (J) or NULL",
                  ACN__SHAPE(x, s1), ACN__SHAPE(W, s2), b ? ACN__SHAPE(b, s3) : "NULL");
        return NULL;
    }
    shape[0] = x->shape[0];
    shape[1] = W->shape[0];
    shape[2] = x->shape[2];
    return acn__run(ctx, acn__node_new(ctx, ACN__OP_LINEAR_MID, in, 3, 3, shape, 0));
}
/* Per batch element b, with x_b (T, D), out_b (J, D), d_b = d out_b:
 *   out_b = W x_b + b 1^T                    (fwd: rows start from the bias)
 *   dx_b += W^T d_b;   dW += sum_g P_g;   db[j] += sum_{b, d} d_b[j, d]
 * where P_g sums d_b x_b^T over the b of group g in order, and the groups
 * (ACN__LMID_GROUPS fixed ranges of b) are added in order. Parts are batch
 * elements (fwd, dx) or groups (dW), so no sum is split, and each part of
 * dW reads only its own x_b and d_b. On AVX-512 (and J, T >= 5), P_g (J, T)
 * is formed as dot products of rows of d_b and x_b, which both lie along D
 * (acn__lmid_dw512: nothing transposed or packed). Otherwise by the matrix
 * kernel, as whichever of
 *   (J, T) = sum_b d_b x_b^T        (x_b^T packed: its T columns)
 *   (T, J) = sum_b x_b d_b^T        (d_b^T packed: its J columns)
 * pads fewer columns up to a multiple of the kernel's width (the Mixer's
 * T = 65 would pad 31). */
/* dW of acn_linear_mid sums over the batch in this many fixed groups of b
 * (the same groups whatever the number of threads, so the same bits; as
 * many threads as groups can share the work) */
#define ACN__LMID_GROUPS 8
static int acn__lmid_has_fast(const acn_ctx *ctx, int J, int T);
static int acn__lmid_dw_fast(const acn_ctx *ctx, int J, int T, int D, const float *d, const float *x, size_t b0,
                             size_t b1, float *P);
typedef struct acn__lmid_job { acn__node *n; int dir, transposed, add; float *S; } acn__lmid_job;
static void acn__lmid_task(void *arg, int part, int parts, int tid)
{
    const acn__lmid_job *j = (const acn__lmid_job *)arg;
    acn__node *n = j->n;
    int B = n->in[0]->shape[0], T = n->in[0]->shape[1], D = n->in[0]->shape[2], J = n->in[1]->shape[0], r;
    const float *x = n->in[0]->data, *W = n->in[1]->data, *bias = n->in[2] ? n->in[2]->data : NULL;
    size_t lo, hi, b;
    if (j->dir == 2) { /* the sums over ACN__LMID_GROUPS fixed groups of b (each in order), whole groups
                        * to a part: each part reads only its own x_b and d_b */
        const float *d = n->out->grad;
        size_t g0, g1, g;
        acn__share(ACN__LMID_GROUPS, 1, part, parts, &g0, &g1);
        for (g = g0; g < g1; g++) {
            float *P = j->S + g * (size_t)J * T;
            acn__share((size_t)B, 1, (int)g, ACN__LMID_GROUPS, &lo, &hi);
            if (lo < hi && acn__lmid_dw_fast(n->ctx, J, T, D, d, x, lo, hi, P)) continue;
            for (b = lo; b < hi; b++)
                if (j->transposed) /* P (T, J) (+)= x_b d_b^T */
                    acn__gemm_on(n->ctx, tid, T, J, D, x + b * T * D, (size_t)D, 1, d + b * J * D, 1, (size_t)D, P,
                                 (size_t)J, b > lo);
                else               /* P (J, T) (+)= d_b x_b^T */
                    acn__gemm_on(n->ctx, tid, J, T, D, d + b * J * D, (size_t)D, 1, x + b * T * D, 1, (size_t)D, P,
                                 (size_t)T, b > lo);
            if (lo == hi) memset(P, 0, (size_t)J * T * sizeof(float));
        }
        return;
    }
    acn__share((size_t)B, 1, part, parts, &lo, &hi);
    for (b = lo; b < hi; b++) {
        if (j->dir == 0) {
            float *o = n->out->data + b * J * D;
            if (bias)
                for (r = 0; r < J; r++) acn__fill(n->ctx, o + (size_t)r * D, bias[r], (size_t)D);
            acn__gemm_on(n->ctx, tid, J, D, T, W, (size_t)T, 1, x + b * T * D, (size_t)D, 1, o, (size_t)D, bias != NULL);
        } else {
            acn__gemm_on(n->ctx, tid, T, D, J, W, 1, (size_t)T, n->out->grad + b * J * D, (size_t)D, 1,
                         n->in[0]->grad + b * T * D, (size_t)D, j->add);
        }
    }
}
static double acn__lmid_work(const acn__node *n)
{
    return 2.0 * n->out->numel * n->in[1]->shape[1] * ACN__NS_FLOP;
}
static void acn__lmid_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__lmid_job j;
    acn__val(ctx, n->in[0]);
    j.n = n;
    j.dir = 0;
    acn__parallel(ctx, acn__lmid_task, &j, acn__lmid_work(n), 16);
}
static void acn__lmid_bwd(acn_ctx *ctx, acn__node *n)
{
    acn__lmid_job j;
    float *gb = n->in[2] ? acn__zeroed(n->in[2]) : NULL;
    int J = n->in[1]->shape[0], D = n->in[0]->shape[2], r, c;
    acn__val(ctx, n->in[0]);
    j.n = n;
    if (acn__g(n->in[0])) {
        j.dir = 1;
        j.add = !acn__fresh(n->in[0]);
        acn__parallel(ctx, acn__lmid_task, &j, acn__lmid_work(n), 16);
    }
    if (acn__g(n->in[1])) { /* dW (+)= sum_g P_g, in group order (P_g: (J, T), or (T, J) when transposed) */
        int T = n->in[1]->shape[1], add = !acn__fresh(n->in[1]), g;
        size_t JT = (size_t)J * T, e;
        float *gW = n->in[1]->grad;
        j.dir = 2;
        j.transposed = !acn__lmid_has_fast(ctx, J, T) && /* (the SIMD path writes P (J, T)) */
                       (J + 31) / 32 * 32 - J < (T + 31) / 32 * 32 - T; /* the narrower padding of N */
        if (!(j.S = acn__galloc_raw(ctx, ctx->gheap, ACN__LMID_GROUPS * JT))) return;
        acn__parallel(ctx, acn__lmid_task, &j, acn__lmid_work(n), 1);
        for (r = 0; r < J; r++)
            for (c = 0; c < T; c++) {
                float v;
                e = j.transposed ? (size_t)c * J + (size_t)r : (size_t)r * T + (size_t)c;
                v = j.S[e];
                for (g = 1; g < ACN__LMID_GROUPS; g++) v += j.S[(size_t)g * JT + e];
                gW[(size_t)r * T + c] = add ? gW[(size_t)r * T + c] + v : v;
            }
        acn__gfree(ctx->gheap, j.S, ACN__LMID_GROUPS * JT);
    }
    if (gb) { /* S[j, d] = sum_b d_b[j, d] (column sums), then db[j] += sum_d S[j, d] */
        float *S = acn__galloc(ctx, ctx->gheap, (size_t)J * D);
        if (!S) return;
        acn__colsums(ctx, n->out->grad, (size_t)n->in[0]->shape[0], (size_t)J * D, S);
        for (r = 0; r < J; r++)
            for (c = 0; c < D; c++) gb[r] += S[(size_t)r * D + c];
        acn__gfree(ctx->gheap, S, (size_t)J * D);
    }
}

/* ---- the exact GELU, one value (used by acn_gelu and acn_linear_gelu) -- */
/* erf in double, rounded to float: within half an ulp or so of the true
 * value, and the same bits from glibc and from musl (wasi-libc, the
 * WebAssembly build of examples/web), whose erff differ in the last bit,
 * which a few hundred training steps turn into other accuracies. */
static float acn__erf1(float z) { return (float)erf((double)z); }
/* gelu(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 */
static float acn__gelu1(float x) { return 0.5f * x * (1.0f + acn__erf1(x * 0.70710678f)); }
/* gelu'(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi) */
static float acn__dgelu1(float x)
{
    return 0.5f * (1.0f + acn__erf1(x * 0.70710678f)) + x * 0.39894228f * expf(-0.5f * x * x);
}

/* ---- linear + GELU ------------------------------------------------------ */
/* in = {x, W, b or NULL}; aux = z = x W^T + b (R, O), kept for backward;
 * iarg[1] = 1 once z is computed (a recompute then redoes only the GELU). */
ACNDEF acn_tensor *acn_linear_gelu(acn_ctx *ctx, acn_tensor *x, acn_tensor *W, acn_tensor *b, int flags)
{
    acn_tensor *in[3];
    acn__node *n;
    int shape[ACN_MAX_DIMS], d;
    char s1[64], s2[64], s3[64];
    in[0] = x;
    in[1] = W;
    in[2] = b;
    if (acn__inputs_ok(ctx, "linear_gelu", in, 2) || acn__optional_ok(ctx, "linear_gelu", b, 2)) return NULL;
    if (x->ndim < 1 || W->ndim != 2 || x->shape[x->ndim - 1] != W->shape[1] ||
        (b && (b->ndim != 1 || b->shape[0] != W->shape[0]))) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "linear_gelu: x %s, W %s, b %s: need x (..., in), W (out, in), b (out) or NULL",
                  ACN__SHAPE(x, s1), ACN__SHAPE(W, s2), b ? ACN__SHAPE(b, s3) : "NULL");
        return NULL;
    }
    for (d = 0; d < x->ndim - 1; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = W->shape[0];
    n = acn__node_new(ctx, ACN__OP_LINEAR_GELU, in, 3, x->ndim, shape, flags & ACN_RECOMPUTE);
    if (!n || !(n->aux = acn__alloc_floats(ctx, n->out->numel, "linear_gelu"))) return NULL;
    return acn__run(ctx, n);
}
/* out[r, :] = z Phi(z), rows [lo, hi) */
static void acn__lgelu_fwd_rows(acn__node *n, size_t lo, size_t hi)
{
    size_t O = (size_t)n->in[1]->shape[0], r, o;
    const float *z = (const float *)n->aux;
    float *out = n->out->data;
    for (r = lo; r < hi; r++) {
        const float *zr = z + r * O;
        float *yr = out + r * O;
        for (o = acn__gelu_fast(n->ctx, 0, zr, NULL, yr, 0, O); o < O; o++)
            yr[o] = acn__gelu1(zr[o]);
    }
}
/* z = x W^T + b, out = GELU(z): the matrix kernel adds b and applies the GELU to each finished tile
 *                                                 x (R, I), W (O, I) -> (R, O) */
static void acn__lgelu_fwd(acn_ctx *ctx, acn__node *n)
{
    size_t O = (size_t)n->in[1]->shape[0], R = n->out->numel / O;
    if (!n->iarg[1]) /* the product, with the GELU as its epilogue */
        acn__gemm_bias(ctx, (int)R, (int)O, n->in[1]->shape[1], n->in[0]->data, 0, n->in[1]->data, 1,
                       n->in[2] ? n->in[2]->data : NULL, (float *)n->aux, n->out->data);
    else             /* recomputing the output of z */
        acn__par(ctx, n, R, (double)O * ACN__NS_ELEM_HEAVY, acn__lgelu_fwd_rows);
    n->iarg[1] = 1;
}
/* dz = d GELU'(z) into j->dz (written, not added to), over this thread's share */
typedef struct acn__lgelu_bwd_job { acn__node *n; float *dz; } acn__lgelu_bwd_job;
static void acn__lgelu_dz(void *arg, int part, int parts, int tid)
{
    const acn__lgelu_bwd_job *j = (const acn__lgelu_bwd_job *)arg;
    const acn__node *n = j->n;
    const float *z = (const float *)n->aux, *d = n->out->grad;
    size_t lo, hi, i;
    (void)tid;
    acn__share(n->out->numel, 16, part, parts, &lo, &hi);
    for (i = acn__gelu_fast(n->ctx, 2, z, d, j->dz, lo, hi); i < hi; i++) j->dz[i] = d[i] * acn__dgelu1(z[i]);
}
/* dz = d GELU'(z) (scratch from the gradient heap, returned at the end);
 * then as linear: dx += dz W;  dW += dz^T x;  db += sum_r dz[r, :] */
static void acn__lgelu_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]), *gW = acn__g(n->in[1]), *gb = n->in[2] ? acn__g(n->in[2]) : NULL;
    size_t O = (size_t)n->in[1]->shape[0], I = (size_t)n->in[1]->shape[1], R = n->out->numel / O;
    acn__lgelu_bwd_job j;
    j.n = n;
    if (!(j.dz = acn__galloc_raw(ctx, ctx->gheap, n->out->numel))) return;
    acn__parallel(ctx, acn__lgelu_dz, &j, (double)n->out->numel * ACN__NS_ELEM_HEAVY, 4);
    if (gx) acn__gemm(ctx, (int)R, (int)I, (int)O, j.dz, 0, n->in[1]->data, 0, gx, !acn__fresh(n->in[0]));
    if (gW) acn__gemm(ctx, (int)O, (int)I, (int)R, j.dz, 1, n->in[0]->data, 0, gW, !acn__fresh(n->in[1]));
    if (gb) acn__colsums(ctx, j.dz, R, O, acn__zeroed(n->in[2]));
    acn__gfree(ctx->gheap, j.dz, n->out->numel);
}

/* ---- the feed-forward block: Linear, GELU, Linear ------------------------ */
/* in = {x, W1, b1 or NULL, W2, b2 or NULL}; aux = z = x W1^T + b1 (R, H),
 * then h = GELU(z) (R, H) when it is stored (iarg[0] = 1: without
 * ACN_RECOMPUTE, or at the portable level and for small products, which
 * the plain loops compute: they cannot apply the GELU as they read). With
 * h stored, aux keeps GELU'(z) in place of z: all the backward needs of z,
 * computed with GELU(z) from one evaluation of Phi and phi. */
ACNDEF acn_tensor *acn_ffn(acn_ctx *ctx, acn_tensor *x, acn_tensor *W1, acn_tensor *b1, acn_tensor *W2,
                           acn_tensor *b2, int flags)
{
    acn_tensor *in[5];
    acn__node *n;
    int shape[ACN_MAX_DIMS], d, store_h;
    char s1[64], s2[64], s3[64], s4[64], s5[64];
    if (!ctx || ctx->status) return NULL;
    if (!x || !W1 || !W2) {
        acn__fail(ctx, ACN_ERR_ARG, "ffn: %s is NULL (only the biases may be)", !x ? "x" : !W1 ? "W1" : "W2");
        return NULL;
    }
    if (acn__live(ctx, x, "ffn", 0) || acn__live(ctx, W1, "ffn", 1) || acn__optional_ok(ctx, "ffn", b1, 2) ||
        acn__live(ctx, W2, "ffn", 3) || acn__optional_ok(ctx, "ffn", b2, 4))
        return NULL;
    if (x->ndim < 1 || W1->ndim != 2 || W2->ndim != 2 || x->shape[x->ndim - 1] != W1->shape[1] ||
        W2->shape[1] != W1->shape[0] || (b1 && (b1->ndim != 1 || b1->shape[0] != W1->shape[0])) ||
        (b2 && (b2->ndim != 1 || b2->shape[0] != W2->shape[0]))) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "ffn: x %s, W1 %s, b1 %s, W2 %s, b2 %s: need x (..., in), W1 (hidden, in), b1 (hidden), "
                  "W2 (out, hidden), b2 (out) (the biases may be NULL)",
                  ACN__SHAPE(x, s1), ACN__SHAPE(W1, s2), b1 ? ACN__SHAPE(b1, s3) : "NULL", ACN__SHAPE(W2, s4),
                  b2 ? ACN__SHAPE(b2, s5) : "NULL");
        return NULL;
    }
    in[0] = x; in[1] = W1; in[2] = b1; in[3] = W2; in[4] = b2;
    for (d = 0; d < x->ndim - 1; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = W2->shape[0];
    n = acn__node_new(ctx, ACN__OP_FFN, in, 5, x->ndim, shape, 0);
    if (!n) return NULL;
    /* (when a product that reads the hidden layer is small enough for the
     * plain loops, it is stored too, so that ACN_RECOMPUTE never changes the
     * result: y = h W2^T has op(B) (out, hidden), dW2 = dy^T h has op(B)
     * (rows, hidden)) */
    store_h = !(flags & ACN_RECOMPUTE) || !acn__gemm_fuses(ctx) ||
              acn__gemm_small(W2->shape[0], W1->shape[0]) ||
              acn__gemm_small(W1->shape[0], (int)(x->numel / (size_t)W1->shape[1]));
    n->iarg[0] = store_h;
    if (!(n->aux = acn__alloc_floats(ctx, (size_t)(1 + store_h) * (x->numel / (size_t)W1->shape[1]) *
                                              (size_t)W1->shape[0], "ffn")))
        return NULL;
    return acn__run(ctx, n);
}
/* z = x W1^T + b1, and h = GELU(z), z = GELU'(z) as the product's epilogue
 * when h is stored;  y = h W2^T + b2, or GELU(z) W2^T + b2 with the second
 * product applying the GELU to each panel of z it reads.
 *                    x (R, I), W1 (H, I), W2 (O, H) -> (R, O) */
static void acn__ffn_fwd(acn_ctx *ctx, acn__node *n)
{
    int H = n->in[1]->shape[0], I = n->in[1]->shape[1], O = n->in[3]->shape[0];
    int R = (int)(n->out->numel / (size_t)O);
    float *z = (float *)n->aux, *h = n->iarg[0] ? z + (size_t)R * H : NULL;
    const float *b1 = n->in[2] ? acn__val(ctx, n->in[2]) : NULL, *b2 = n->in[4] ? acn__val(ctx, n->in[4]) : NULL;
    acn__gemm_gelu s;
    memset(&s, 0, sizeof s);
    s.slope = h != NULL;
    acn__gemm_run(ctx, R, H, I, acn__val(ctx, n->in[0]), 0, acn__val(ctx, n->in[1]), 1, b1, z, h, 0, &s);
    if (h) {
        acn__gemm_bias(ctx, R, O, H, h, 0, acn__val(ctx, n->in[3]), 1, b2, n->out->data, NULL);
    } else {
        acn__gemm_gelu f;
        memset(&f, 0, sizeof f);
        f.a = 1;
        acn__gemm_run(ctx, R, O, H, z, 0, acn__val(ctx, n->in[3]), 1, b2, n->out->data, NULL, 0, &f);
    }
}
/* acn_ffn's backward goes through the rows in chunks of this many (at a
 * SIMD level) */
#define ACN__FFN_ROWS 512
/* dz = (d W2) GELU'(z)   (at a SIMD level, the product's epilogue;
 *                         GELU'(z) as kept when h is stored)
 * dW2 += d^T h;  db2 += sum_r d[r, :]   (h not stored: B packed with the
 *                                        GELU of z)
 * dx += dz W1;  dW1 += dz^T x;  db1 += sum_r dz[r, :]  (as linear_gelu)
 * At a SIMD level the rows go through in chunks of ACN__FFN_ROWS (the last
 * one takes the rest, up to twice that), each through all six: dz (R, H) is
 * then only ever a chunk in cache, never written to memory and read back
 * three times. The results are the same bits as over all rows at once:
 * each row of dz and dx is its own; dW1 and dW2 sum over rows in order,
 * each chunk's product continuing from the sums the last one stored (a
 * float stored and reloaded is the same float), and no chunk is shorter
 * than ACN__FFN_ROWS, so its products take the packed kernel as the whole
 * would (a short one could fall to the plain loops, acn__gemm_small); the
 * column sums add rows in order. With the output narrower than the
 * hidden layer (O < H), h stored, AVX-512 and every chunk's product large
 * enough for the packed kernel, dW2 is summed as its transpose h^T d
 * (H, O) in the gradient heap, whose rows the kernel splits better, and
 * turned back at the end: each value is the same multiply-adds in the same
 * order (a b = b a exactly), so the same bits.                         */
static int acn__transpose_fast(const acn_ctx *ctx, float *dst, const float *src, size_t R, size_t C);
static void acn__ffn_bwd(acn_ctx *ctx, acn__node *n)
{
    int H = n->in[1]->shape[0], I = n->in[1]->shape[1], O = n->in[3]->shape[0];
    int R = (int)(n->out->numel / (size_t)O), fuses = acn__gemm_fuses(ctx), chunk = fuses ? ACN__FFN_ROWS : R, r0, rc;
    int last = R > chunk ? R - (R / chunk - 1) * chunk : R;     /* the last chunk's rows, the most */
    float *gx = acn__g(n->in[0]), *gW1 = acn__g(n->in[1]), *gb1 = NULL;
    float *gW2 = acn__g(n->in[3]), *gb2 = NULL, *dz, *scratch = NULL;
    const float *z = (const float *)n->aux, *d = n->out->grad, *x = acn__val(ctx, n->in[0]);
    const float *W1 = acn__val(ctx, n->in[1]), *W2 = acn__val(ctx, n->in[3]);
    const float *h = n->iarg[0] ? z + (size_t)R * H : NULL;
    int acc_x = gx && !acn__fresh(n->in[0]), acc_W1 = gW1 && !acn__fresh(n->in[1]), acc_W2 = gW2 && !acn__fresh(n->in[3]);
    size_t CH = (size_t)last * H, i;
    float *sT = NULL; /* dW2^T (H, O), when it is summed in that form (see below) */
    acn__gemm_gelu f;
    memset(&f, 0, sizeof f);
    if (acn__g(n->in[2])) gb1 = acn__zeroed(n->in[2]);
    if (acn__g(n->in[4])) gb2 = acn__zeroed(n->in[4]);
    if (!(dz = acn__galloc_raw(ctx, ctx->gheap, CH))) return;
    if (gW2 && h && O < H && !acn__gemm_small(O, last) && acn__transpose_fast(ctx, NULL, NULL, 0, 0)) {
        /* dW2^T (H, O) = h^T d: the product with more rows than columns, which the kernel runs faster (the
         * same sums in the same order: the same bits), turned back at the end; only where every chunk's
         * product still takes the packed kernel, as d^T h does (a short single chunk with a narrow output
         * would fall to the plain loops, acn__gemm_small, and round otherwise) */
        if (!(sT = acn__galloc_raw(ctx, ctx->gheap, (size_t)H * O))) { acn__gfree(ctx->gheap, dz, CH); return; }
        if (acc_W2) acn__transpose_fast(ctx, sT, gW2, (size_t)O, (size_t)H);
    }
    for (r0 = 0; r0 < R; r0 += rc) {
        size_t at, RH;
        rc = R - r0 == last ? last : chunk;                      /* this chunk's rows    */
        at = (size_t)r0 * H;
        RH = (size_t)rc * H;
        const float *dc = d + (size_t)r0 * O, *zc = z + at;      /* (rc, O), (rc, H)     */
        f.a = 0; f.b = 0; f.dz = zc; f.slope = h != NULL; /* z holds GELU'(z) when h is stored */
        if (fuses) {
            acn__gemm_run(ctx, rc, H, O, dc, 0, W2, 0, NULL, dz, NULL, 0, &f);
        } else { /* the portable loops: the product, then the GELU' pass */
            acn__gemm(ctx, rc, H, O, dc, 0, W2, 0, dz, 0);
            for (i = 0; i < RH; i++) dz[i] *= h ? zc[i] : acn__dgelu1(zc[i]);
        }
        if (gW2) {
            if (sT) {
                acn__gemm(ctx, H, O, rc, h + at, 1, dc, 0, sT, acc_W2);
            } else if (h) {
                acn__gemm(ctx, O, H, rc, dc, 1, h + at, 0, gW2, acc_W2);
            } else if (fuses) {
                f.b = 1; f.dz = NULL; f.slope = 0;
                acn__gemm_run(ctx, O, H, rc, dc, 1, zc, 0, NULL, gW2, NULL, acc_W2, &f);
            } else { /* h not stored, and the level changed since forward: the GELU again, into scratch */
                if (!(scratch = acn__galloc_raw(ctx, ctx->gheap, RH))) { acn__gfree(ctx->gheap, dz, CH); return; }
                for (i = 0; i < RH; i++) scratch[i] = acn__gelu1(zc[i]);
                acn__gemm(ctx, O, H, rc, dc, 1, scratch, 0, gW2, acc_W2);
                acn__gfree(ctx->gheap, scratch, RH);
            }
            acc_W2 = 1;
        }
        if (gb2) acn__colsums(ctx, dc, (size_t)rc, (size_t)O, gb2);
        if (gx) acn__gemm(ctx, rc, I, H, dz, 0, W1, 0, gx + (size_t)r0 * I, acc_x);
        if (gW1) acn__gemm(ctx, H, I, rc, dz, 1, x + (size_t)r0 * I, 0, gW1, acc_W1), acc_W1 = 1;
        if (gb1) acn__colsums(ctx, dz, (size_t)rc, (size_t)H, gb1);
    }
    if (sT) {
        acn__transpose_fast(ctx, gW2, sT, (size_t)H, (size_t)O);
        acn__gfree(ctx->gheap, sT, (size_t)H * O);
    }
    acn__gfree(ctx->gheap, dz, CH);
}

/* ---- linear + skip + ReLU (the Mixer block's tail) ------------------------ */
/* in = {x, W, b or NULL, skip} */
ACNDEF acn_tensor *acn_linear_add_relu(acn_ctx *ctx, acn_tensor *x, acn_tensor *W, acn_tensor *b, acn_tensor *skip)
{
    acn_tensor *in[4];
    int shape[ACN_MAX_DIMS], d, same;
    char s1[64], s2[64], s3[64], s4[64];
    in[0] = x;
    in[1] = W;
    in[2] = b;
    in[3] = skip;
    if (acn__inputs_ok(ctx, "linear_add_relu", in, 2) || acn__optional_ok(ctx, "linear_add_relu", b, 2)) return NULL;
    if (!skip) {
        acn__fail(ctx, ACN_ERR_ARG, "linear_add_relu: skip (input 3) is NULL; for no skip use acn_relu(acn_linear(...))");
        return NULL;
    }
    if (acn__live(ctx, skip, "linear_add_relu", 3)) return NULL;
    same = x->ndim >= 1 && W->ndim == 2 && x->shape[x->ndim - 1] == W->shape[1] && skip->ndim == x->ndim;
    for (d = 0; same && d < x->ndim; d++) same = skip->shape[d] == (d < x->ndim - 1 ? x->shape[d] : W->shape[0]);
    if (!same || (b && (b->ndim != 1 || b->shape[0] != W->shape[0]))) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "linear_add_relu: x %s, W %s, b %s, skip %s: need x (..., in), W (out, in) as PyTorch stores "
                  "it, b (out) or NULL, and skip (..., out), the output's shape",
                  ACN__SHAPE(x, s1), ACN__SHAPE(W, s2), b ? ACN__SHAPE(b, s3) : "NULL", ACN__SHAPE(skip, s4));
        return NULL;
    }
    for (d = 0; d < x->ndim - 1; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = W->shape[0];
    return acn__run(ctx, acn__node_new(ctx, ACN__OP_LINEAR_ADD_RELU, in, 4, x->ndim, shape, 0));
}
/* out (R, O) = ReLU(x (R, I) W^T + b + skip)      W (O, I), b (O), skip (R, O):
 * the product's epilogue adds skip and applies the ReLU to each finished
 * tile (acn__addrelu_block, or ACN__EPI_ADDRELU in the kernel) */
static void acn__lar_fwd(acn_ctx *ctx, acn__node *n)
{
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1], R = (int)(n->out->numel / (size_t)O);
    acn__gemm_gelu f;
    memset(&f, 0, sizeof f);
    f.addrelu = acn__val(ctx, n->in[3]);
    acn__gemm_run(ctx, R, O, I, acn__val(ctx, n->in[0]), 0, acn__val(ctx, n->in[1]), 1,
                  n->in[2] ? acn__val(ctx, n->in[2]) : NULL, n->out->data, NULL, 0, &f);
}
/* ds = d [out > 0] (out > 0 exactly where the ReLU's input was: see
 * acn__relu_bwd), in place in d, this op's own gradient; dskip += ds
 * (written when fresh: n->wr)                                 values [lo, hi) */
static void acn__lar_mask_range(acn__node *n, size_t lo, size_t hi)
{
    float *d = n->out->grad, *gs = acn__g(n->in[3]);
    const float *y = n->out->data;
    size_t i;
    for (i = acn__relu_fast(n->ctx, 2, y, d, d, lo, hi); i < hi; i++) d[i] = y[i] > 0.0f ? d[i] : 0.0f;
    if (gs) acn__gput(n->ctx, gs, (int)n->wr, d, NULL, 0, lo, hi);
}
/* then as acn__linear_bwd on ds:
 * dx (R, I) += ds W;   dW (O, I) += ds^T x;   db (O) += sum_r ds[r, :] */
static void acn__lar_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]), *gW = acn__g(n->in[1]), *gb = acn__g(n->in[2]);
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1], R = (int)(n->out->numel / (size_t)O);
    const float *ds = n->out->grad;
    n->wr = (unsigned)acn__fresh(n->in[3]);
    acn__par_elems(ctx, n, n->out->numel, ACN__NS_ELEM, acn__lar_mask_range);
    if (gx) acn__gemm(ctx, R, I, O, ds, 0, acn__val(ctx, n->in[1]), 0, gx, !acn__fresh(n->in[0]));
    if (gW) acn__gemm(ctx, O, I, R, ds, 1, acn__val(ctx, n->in[0]), 0, gW, !acn__fresh(n->in[1]));
    if (gb) acn__colsums(ctx, ds, (size_t)R, (size_t)O, acn__zeroed(n->in[2]));
}

/* ---- GELU, ReLU, tanh --------------------------------------------------- */
static acn_tensor *acn__unary(acn_ctx *ctx, int op, acn_tensor *x, int flags)
{
    acn__node *n;
    if (acn__inputs_ok(ctx, acn__op_name(op), &x, 1)) return NULL;
    n = acn__node_new(ctx, op, &x, 1, x->ndim, x->shape, flags & ACN_RECOMPUTE);
    if (n) n->iarg[0] = flags;
    return acn__run(ctx, n);
}
ACNDEF acn_tensor *acn_gelu(acn_ctx *ctx, acn_tensor *x) { return acn__unary(ctx, ACN__OP_GELU, x, 0); }
ACNDEF acn_tensor *acn_gelu_ex(acn_ctx *ctx, acn_tensor *x, int flags) { return acn__unary(ctx, ACN__OP_GELU, x, flags); }
ACNDEF acn_tensor *acn_relu(acn_ctx *ctx, acn_tensor *x) { return acn__unary(ctx, ACN__OP_RELU, x, 0); }
ACNDEF acn_tensor *acn_tanh(acn_ctx *ctx, acn_tensor *x) { return acn__unary(ctx, ACN__OP_TANH, x, 0); }

#define ACN__SQRT_2_OVER_PI 0.7978845608028654f
#define ACN__GELU_C 0.044715f
/* exact:  out = x/2 (1 + erf(x/sqrt 2))
 * tanh:   out = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3) */
static void acn__gelu_fwd_range(acn__node *n, size_t lo, size_t hi)
{
    const float *x = n->in[0]->data;
    float *out = n->out->data;
    size_t i;
    if (n->iarg[0] & ACN_GELU_TANH)
        for (i = lo; i < hi; i++) {
            float u = ACN__SQRT_2_OVER_PI * (x[i] + ACN__GELU_C * x[i] * x[i] * x[i]);
            out[i] = 0.5f * x[i] * (1.0f + tanhf(u));
        }
    else
        for (i = acn__gelu_fast(n->ctx, 0, x, NULL, out, lo, hi); i < hi; i++)
            out[i] = acn__gelu1(x[i]);
}
static void acn__gelu_fwd(acn_ctx *ctx, acn__node *n) { acn__par_elems(ctx, n, n->out->numel, ACN__NS_ELEM_HEAVY, acn__gelu_fwd_range); }
/* exact:  dx += d (Phi(x) + x phi(x)),  Phi = (1 + erf(x/sqrt 2))/2,
 *                                        phi = exp(-x^2/2)/sqrt(2 pi)
 * tanh:   dx += d (1/2 (1 + t) + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2)) */
static void acn__gelu_bwd_range(acn__node *n, size_t lo, size_t hi)
{
    float *gx = n->in[0]->grad;
    const float *x = n->in[0]->data, *d = n->out->grad;
    size_t i;
    if (n->iarg[0] & ACN_GELU_TANH)
        for (i = lo; i < hi; i++) {
            float x2 = x[i] * x[i];
            float t = tanhf(ACN__SQRT_2_OVER_PI * (x[i] + ACN__GELU_C * x2 * x[i]));
            float du = ACN__SQRT_2_OVER_PI * (1.0f + 3.0f * ACN__GELU_C * x2);
            float v = d[i] * (0.5f * (1.0f + t) + 0.5f * x[i] * (1.0f - t * t) * du);
            gx[i] = n->wr ? v : gx[i] + v; /* a fresh dx is written (n->wr) */
        }
    else if (n->wr)
        for (i = acn__gelu_fast(n->ctx, 2, x, d, gx, lo, hi); i < hi; i++) gx[i] = d[i] * acn__dgelu1(x[i]);
    else
        for (i = acn__gelu_fast(n->ctx, 1, x, d, gx, lo, hi); i < hi; i++) gx[i] += d[i] * acn__dgelu1(x[i]);
}
static void acn__gelu_bwd(acn_ctx *ctx, acn__node *n)
{
    n->wr = (unsigned)acn__fresh(n->in[0]);
    if (acn__g(n->in[0])) acn__par_elems(ctx, n, n->out->numel, ACN__NS_ELEM_HEAVY, acn__gelu_bwd_range);
}

/* out = max(0, x) */
static void acn__relu_fwd_range(acn__node *n, size_t lo, size_t hi)
{
    const float *x = n->in[0]->data;
    float *y = n->out->data;
    size_t i;
    for (i = acn__relu_fast(n->ctx, 0, x, NULL, y, lo, hi); i < hi; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
static void acn__relu_fwd(acn_ctx *ctx, acn__node *n) { acn__par_elems(ctx, n, n->out->numel, ACN__NS_ELEM, acn__relu_fwd_range); }
/* dx += d [x > 0]   (dx = d [x > 0] when it was fresh: n->wr) */
static void acn__relu_bwd_range(acn__node *n, size_t lo, size_t hi)
{
    const float *x = n->in[0]->data, *d = n->out->grad;
    float *gx = n->in[0]->grad;
    size_t i;
    if (n->wr)
        for (i = acn__relu_fast(n->ctx, 2, x, d, gx, lo, hi); i < hi; i++) gx[i] = x[i] > 0.0f ? d[i] : 0.0f;
    else
        for (i = acn__relu_fast(n->ctx, 1, x, d, gx, lo, hi); i < hi; i++) gx[i] += x[i] > 0.0f ? d[i] : 0.0f;
}
static void acn__relu_bwd(acn_ctx *ctx, acn__node *n)
{
    n->wr = (unsigned)acn__fresh(n->in[0]);
    if (acn__g(n->in[0])) acn__par_elems(ctx, n, n->out->numel, ACN__NS_ELEM, acn__relu_bwd_range);
}

/* out = tanh(x) */
static void acn__tanh_fwd(acn_ctx *ctx, acn__node *n)
{
    const float *x = acn__val(ctx, n->in[0]);
    size_t i;
    for (i = 0; i < n->out->numel; i++) n->out->data[i] = tanhf(x[i]);
}
/* dx += d (1 - out^2) */
static void acn__tanh_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    const float *y = acn__val(ctx, n->out);
    size_t i;
    if (gx) for (i = 0; i < n->out->numel; i++) gx[i] += n->out->grad[i] * (1.0f - y[i] * y[i]);
}

/* ---- softmax ------------------------------------------------------------ */
ACNDEF acn_tensor *acn_softmax(acn_ctx *ctx, acn_tensor *x, acn_tensor *mask)
{
    acn_tensor *in[2];
    int ndim, shape[ACN_MAX_DIMS], d;
    char s1[64], s2[64];
    in[0] = x;
    in[1] = mask;
    if (acn__inputs_ok(ctx, "softmax", in, 1) || acn__optional_ok(ctx, "softmax", mask, 1)) return NULL;
    if (x->ndim < 1) {
        acn__fail(ctx, ACN_ERR_SHAPE, "softmax: a scalar has no last axis");
        return NULL;
    }
    if (mask) {
        int same = acn__bcast_shape(ctx, "softmax", x, mask, &ndim, shape) == 0 && ndim == x->ndim;
        for (d = 0; same && d < ndim; d++) same = shape[d] == x->shape[d];
        if (!same) {
            ctx->status = ACN_OK; /* replace the broadcast message by a clearer one */
            acn__fail(ctx, ACN_ERR_SHAPE,
                      "softmax: the mask %s must broadcast onto x %s without growing it",
                      ACN__SHAPE(mask, s1), ACN__SHAPE(x, s2));
            return NULL;
        }
    }
    return acn__run(ctx, acn__node_new(ctx, ACN__OP_SOFTMAX, in, 2, x->ndim, x->shape, 0));
}
/* z = x + mask; out[r, :] = exp(z[r, :] - max) / sum exp(z[r, :] - max)
 * over rows [lo, hi) of the last axis (the mask with the add's broadcasting) */
static void acn__softmax_rows(acn__node *n, size_t lo, size_t hi)
{
    const float *x = n->in[0]->data, *m = n->in[1] ? n->in[1]->data : NULL;
    float *out = n->out->data;
    int C = n->out->shape[n->out->ndim - 1], c;
    acn__bcast bc;
    size_t r;
    if (m) acn__bcast_init(&bc, n->out, n->in[0], n->in[1]);
    for (r = lo; r < hi; r++) {
        float *z = out + r * C, mx, s = 0.0f;
        if (m) {
            size_t i2 = r % (size_t)bc.n[2], i1 = r / (size_t)bc.n[2] % (size_t)bc.n[1];
            size_t i0 = r / ((size_t)bc.n[2] * bc.n[1]);
            const float *mr = m + i0 * bc.sb[0] + i1 * bc.sb[1] + i2 * bc.sb[2];
            for (c = 0; c < C; c++) z[c] = x[r * C + c] + mr[(size_t)c * bc.sb[3]];
        } else {
            memcpy(z, x + r * C, (size_t)C * sizeof(float));
        }
        mx = z[0];
        for (c = 1; c < C; c++) if (z[c] > mx) mx = z[c];
        for (c = 0; c < C; c++) { z[c] = expf(z[c] - mx); s += z[c]; }
        for (c = 0; c < C; c++) z[c] /= s;
    }
}
static void acn__softmax_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__par(ctx, n, n->out->numel / (size_t)n->out->shape[n->out->ndim - 1],
             n->out->shape[n->out->ndim - 1] * ACN__NS_ELEM_HEAVY, acn__softmax_rows);
}
/* dz[r, c] = out[r, c] (d[r, c] - sum_k d[r, k] out[r, k]);  dx += dz;
 * dmask += dz summed over the dims the mask was broadcast along. */
static void acn__softmax_bwd_rows(acn__node *n, size_t lo, size_t hi) /* dx only */
{
    float *gx = n->in[0]->grad;
    const float *y = n->out->data, *d = n->out->grad;
    int C = n->out->shape[n->out->ndim - 1], c;
    size_t r;
    for (r = lo; r < hi; r++) {
        const float *yr = y + r * C, *dr = d + r * C;
        float dot = 0.0f;
        for (c = 0; c < C; c++) dot += dr[c] * yr[c];
        for (c = 0; c < C; c++) gx[r * C + c] += yr[c] * (dr[c] - dot);
    }
}
static void acn__softmax_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]), *gm = n->in[1] ? acn__g(n->in[1]) : NULL;
    const float *y = acn__val(ctx, n->out), *d = n->out->grad;
    int C = n->out->shape[n->out->ndim - 1], c;
    size_t R = n->out->numel / (size_t)C, r;
    acn__bcast bc;
    if (!gm) { /* rows are independent: split them */
        if (gx) acn__par(ctx, n, R, (double)n->out->numel / (double)R * ACN__NS_ELEM, acn__softmax_bwd_rows);
        return;
    }
    /* the mask's gradient sums over rows: one thread */
    acn__bcast_init(&bc, n->out, n->in[0], n->in[1]);
    for (r = 0; r < R; r++) {
        const float *yr = y + r * C, *dr = d + r * C;
        float dot = 0.0f;
        for (c = 0; c < C; c++) dot += dr[c] * yr[c];
        for (c = 0; c < C; c++) {
            float dz = yr[c] * (dr[c] - dot);
            size_t o = r * C + c, im = 0, rest = o;
            int dd;
            if (gx) gx[o] += dz;
            for (dd = ACN_MAX_DIMS - 1; dd >= 0; dd--) {
                im += (rest % (size_t)bc.n[dd]) * bc.sb[dd];
                rest /= (size_t)bc.n[dd];
            }
            gm[im] += dz;
        }
    }
}

/* ---- cross-entropy ------------------------------------------------------ */
/* Rows are the leading dims of logits (..., C). aux: each row's loss
 * (double, R), then the labels (int, R); iarg = {ignore_index, valid rows};
 * farg[0] = smoothing eps. Rows run on the pool; the loss is their sum in
 * row order, so it does not depend on the thread count. */
ACNDEF acn_tensor *acn_cross_entropy(acn_ctx *ctx, acn_tensor *logits, const int *labels,
                                     float smoothing, int ignore_index)
{
    acn__node *n;
    int C, valid = 0;
    size_t R, r;
    if (acn__inputs_ok(ctx, "cross_entropy", &logits, 1)) return NULL;
    if (!labels) {
        acn__fail(ctx, ACN_ERR_ARG, "cross_entropy: labels is NULL; pass one class index per row of the logits");
        return NULL;
    }
    if (logits->ndim < 1 || !(smoothing >= 0.0f && smoothing <= 1.0f)) {
        acn__fail(ctx, ACN_ERR_ARG,
                  "cross_entropy: need logits (..., C) and smoothing in [0, 1] (got %d dimensions, "
                  "smoothing %g)", logits->ndim, (double)smoothing);
        return NULL;
    }
    C = logits->shape[logits->ndim - 1];
    R = logits->numel / (size_t)C;
    for (r = 0; r < R; r++) {
        if (labels[r] == ignore_index) continue;
        if (labels[r] < 0 || labels[r] >= C) {
            acn__fail(ctx, ACN_ERR_ARG,
                      "cross_entropy: label %d at row %zu is outside [0, %d) and is not the "
                      "ignore index %d", labels[r], r, C, ignore_index);
            return NULL;
        }
        valid++;
    }
    n = acn__node_new(ctx, ACN__OP_XENT, &logits, 1, 0, NULL, 0);
    if (!n || !(n->aux = acn__alloc(ctx, R * (sizeof(double) + sizeof(int)), "cross_entropy"))) return NULL;
    memcpy((double *)n->aux + R, labels, R * sizeof(int));
    n->iarg[0] = ignore_index;
    n->iarg[1] = valid;
    n->farg[0] = smoothing;
    return acn__run(ctx, n);
}
/* Per valid row, with z = logits[r, :], q = (1-eps) onehot(y) + eps/C:
 *   loss_r = logsumexp(z) - sum_c q_c z_c;   out = mean over valid rows
 * (0 when every row is ignored; PyTorch gives NaN there). */
static void acn__xent_rows(acn__node *n, size_t lo, size_t hi)
{
    const float *z = n->in[0]->data;
    int C = n->in[0]->shape[n->in[0]->ndim - 1], c;
    size_t R = n->in[0]->numel / (size_t)C, r;
    double *loss = (double *)n->aux;
    const int *y = (const int *)(loss + R);
    float eps = n->farg[0];
    for (r = lo; r < hi; r++) {
        const float *zr = z + r * C;
        float mx = zr[0];
        double s = 0.0, zsum = 0.0;
        loss[r] = 0.0;
        if (y[r] == n->iarg[0]) continue;
        for (c = 1; c < C; c++) if (zr[c] > mx) mx = zr[c];
        for (c = 0; c < C; c++) { s += exp((double)(zr[c] - mx)); zsum += zr[c]; }
        loss[r] = mx + log(s) - (1.0 - eps) * zr[y[r]] - eps * zsum / C;
    }
}
static void acn__xent_fwd(acn_ctx *ctx, acn__node *n)
{
    size_t R = n->in[0]->numel / (size_t)n->in[0]->shape[n->in[0]->ndim - 1], r;
    const double *loss = (const double *)n->aux;
    double total = 0.0;
    acn__par(ctx, n, R, (double)n->in[0]->numel / (double)R * ACN__NS_ELEM_HEAVY, acn__xent_rows);
    for (r = 0; r < R; r++) total += loss[r];
    n->out->data[0] = n->iarg[1] ? (float)(total / n->iarg[1]) : 0.0f;
}
/* dz[r, c] = d (softmax(z_r)_c - q_c) / valid */
static void acn__xent_bwd_rows(acn__node *n, size_t lo, size_t hi)
{
    float *gz = n->in[0]->grad;
    const float *z = n->in[0]->data;
    int C = n->in[0]->shape[n->in[0]->ndim - 1], c;
    size_t R = n->in[0]->numel / (size_t)C, r;
    const int *y = (const int *)((const double *)n->aux + R);
    float eps = n->farg[0], k = n->out->grad[0] / (float)n->iarg[1];
    for (r = lo; r < hi; r++) {
        const float *zr = z + r * C;
        float mx = zr[0], s = 0.0f;
        if (y[r] == n->iarg[0]) continue;
        for (c = 1; c < C; c++) if (zr[c] > mx) mx = zr[c];
        for (c = 0; c < C; c++) s += expf(zr[c] - mx);
        for (c = 0; c < C; c++) {
            float q = eps / (float)C + (c == y[r] ? 1.0f - eps : 0.0f);
            gz[r * C + c] += k * (expf(zr[c] - mx) / s - q);
        }
    }
}
static void acn__xent_bwd(acn_ctx *ctx, acn__node *n)
{
    if (!acn__g(n->in[0]) || !n->iarg[1]) return;
    acn__par(ctx, n, n->in[0]->numel / (size_t)n->in[0]->shape[n->in[0]->ndim - 1],
             n->in[0]->shape[n->in[0]->ndim - 1] * ACN__NS_ELEM_HEAVY, acn__xent_bwd_rows);
}

ACNDEF acn_tensor *acn_cross_entropy_soft(acn_ctx *ctx, acn_tensor *logits, acn_tensor *target,
                                          float smoothing)
{
    acn_tensor *in[2];
    acn__node *n;
    char s1[64], s2[64];
    int d, same;
    in[0] = logits;
    in[1] = target;
    if (acn__inputs_ok(ctx, "cross_entropy_soft", in, 2)) return NULL;
    same = logits->ndim == target->ndim && logits->ndim >= 1;
    for (d = 0; same && d < logits->ndim; d++) same = logits->shape[d] == target->shape[d];
    if (!same || !(smoothing >= 0.0f && smoothing <= 1.0f)) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "cross_entropy_soft: logits %s and target %s must have the same shape (..., C), "
                  "smoothing in [0, 1]", ACN__SHAPE(logits, s1), ACN__SHAPE(target, s2));
        return NULL;
    }
    n = acn__node_new(ctx, ACN__OP_XENT_SOFT, in, 2, 0, NULL, 0);
    if (!n || !(n->aux = acn__alloc(ctx, logits->numel / (size_t)logits->shape[logits->ndim - 1] * sizeof(double),
                                    "cross_entropy_soft")))
        return NULL;
    n->farg[0] = smoothing;
    return acn__run(ctx, n);
}
/* q = (1-eps) t + eps/C;  out = mean_r ( -sum_c q[r, c] log softmax(z_r)_c )
 * (aux: each row's loss, double, summed in row order) */
static void acn__xsoft_rows(acn__node *n, size_t lo, size_t hi)
{
    const float *z = n->in[0]->data, *t = n->in[1]->data;
    int C = n->in[0]->shape[n->in[0]->ndim - 1], c;
    size_t r;
    double *loss = (double *)n->aux;
    float eps = n->farg[0];
    for (r = lo; r < hi; r++) {
        const float *zr = z + r * C, *tr = t + r * C;
        float mx = zr[0];
        double s = 0.0, lse;
        for (c = 1; c < C; c++) if (zr[c] > mx) mx = zr[c];
        for (c = 0; c < C; c++) s += exp((double)(zr[c] - mx));
        lse = mx + log(s);
        loss[r] = 0.0;
        for (c = 0; c < C; c++) loss[r] -= ((1.0 - eps) * tr[c] + eps / C) * (zr[c] - lse);
    }
}
static void acn__xsoft_fwd(acn_ctx *ctx, acn__node *n)
{
    size_t R = n->in[0]->numel / (size_t)n->in[0]->shape[n->in[0]->ndim - 1], r;
    const double *loss = (const double *)n->aux;
    double total = 0.0;
    acn__par(ctx, n, R, (double)n->in[0]->numel / (double)R * ACN__NS_ELEM_HEAVY, acn__xsoft_rows);
    for (r = 0; r < R; r++) total += loss[r];
    n->out->data[0] = (float)(total / (double)R);
}
/* dz[r, c] = d (p_c sum_k q_k - q_c) / R;   dt[r, c] = -d (1-eps) log p_c / R */
static void acn__xsoft_bwd_rows(acn__node *n, size_t lo, size_t hi)
{
    float *gz = acn__g(n->in[0]), *gt = acn__g(n->in[1]);
    const float *z = n->in[0]->data, *t = n->in[1]->data;
    int C = n->in[0]->shape[n->in[0]->ndim - 1], c;
    size_t R = n->in[0]->numel / (size_t)C, r;
    float eps = n->farg[0], k = n->out->grad[0] / (float)R;
    for (r = lo; r < hi; r++) {
        const float *zr = z + r * C, *tr = t + r * C;
        float mx = zr[0], s = 0.0f, qsum = 0.0f, lse;
        for (c = 1; c < C; c++) if (zr[c] > mx) mx = zr[c];
        for (c = 0; c < C; c++) { s += expf(zr[c] - mx); qsum += (1.0f - eps) * tr[c] + eps / (float)C; }
        lse = mx + logf(s);
        for (c = 0; c < C; c++) {
            float p = expf(zr[c] - lse), q = (1.0f - eps) * tr[c] + eps / (float)C;
            if (gz) gz[r * C + c] += k * (p * qsum - q);
            if (gt) gt[r * C + c] -= k * (1.0f - eps) * (zr[c] - lse);
        }
    }
}
static void acn__xsoft_bwd(acn_ctx *ctx, acn__node *n)
{
    acn__par(ctx, n, n->in[0]->numel / (size_t)n->in[0]->shape[n->in[0]->ndim - 1],
             n->in[0]->shape[n->in[0]->ndim - 1] * ACN__NS_ELEM_HEAVY, acn__xsoft_bwd_rows);
}

/* ---- LayerNorm ---------------------------------------------------------- */
/* in = {x, gamma or NULL, beta or NULL}; farg[0] = eps; aux = mean (R) then
 * rstd (R), saved by the forward kernel for the backward one. */
ACNDEF acn_tensor *acn_layernorm_ex(acn_ctx *ctx, acn_tensor *x, acn_tensor *gamma,
                                    acn_tensor *beta, float eps, int flags)
{
    acn_tensor *in[3];
    acn__node *n;
    char s1[64], s2[64];
    int D;
    size_t R;
    in[0] = x;
    in[1] = gamma;
    in[2] = beta;
    if (acn__inputs_ok(ctx, "layernorm", in, 1) || acn__optional_ok(ctx, "layernorm", gamma, 1) ||
        acn__optional_ok(ctx, "layernorm", beta, 2))
        return NULL;
    if (x->ndim < 1) { acn__fail(ctx, ACN_ERR_SHAPE, "layernorm: a scalar has no last axis"); return NULL; }
    D = x->shape[x->ndim - 1];
    if ((gamma && (gamma->ndim != 1 || gamma->shape[0] != D)) ||
        (beta && (beta->ndim != 1 || beta->shape[0] != D)) || !(eps > 0.0f)) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "layernorm: x %s needs gamma and beta of shape (%d) or NULL, and eps > 0; got "
                  "%s%s", ACN__SHAPE(x, s1), D,
                  gamma ? ACN__SHAPE(gamma, s2) : (beta ? ACN__SHAPE(beta, s2) : "eps <= 0"),
                  gamma ? " for gamma" : (beta ? " for beta" : ""));
        return NULL;
    }
    R = x->numel / (size_t)D;
    n = acn__node_new(ctx, ACN__OP_LAYERNORM, in, 3, x->ndim, x->shape, flags & ACN_RECOMPUTE);
    if (!n || !(n->aux = acn__alloc_floats(ctx, 2 * R, "layernorm"))) return NULL;
    n->farg[0] = eps;
    return acn__run(ctx, n);
}
ACNDEF acn_tensor *acn_layernorm(acn_ctx *ctx, acn_tensor *x, acn_tensor *gamma, acn_tensor *beta,
                                 float eps)
{
    return acn_layernorm_ex(ctx, x, gamma, beta, eps, 0);
}
/* mean = sum x / D;  var = sum (x - mean)^2 / D (biased);  rstd = 1/sqrt(var + eps)
 * xhat = (x - mean) rstd;  out = xhat gamma + beta          x (R, D), rows [lo, hi) */
static void acn__ln_fwd_rows(acn__node *n, size_t lo, size_t hi)
{
    const float *x = n->in[0]->data;
    const float *g = n->in[1] ? n->in[1]->data : NULL, *b = n->in[2] ? n->in[2]->data : NULL;
    int D = n->out->shape[n->out->ndim - 1], c;
    size_t R = n->out->numel / (size_t)D, r;
    float *mean = (float *)n->aux, *rstd = mean + R;
    for (r = lo; r < hi; r++) {
        const float *xr = x + r * D;
        float *o = n->out->data + r * D, m = 0.0f, v = 0.0f;
        if (acn__ln_fast(n->ctx, 0, xr, g, b, NULL, n->farg[0], D, o, mean + r, rstd + r, NULL, NULL)) continue;
        for (c = 0; c < D; c++) m += xr[c];
        m /= (float)D;
        for (c = 0; c < D; c++) v += (xr[c] - m) * (xr[c] - m);
        v /= (float)D;
        mean[r] = m;
        rstd[r] = 1.0f / sqrtf(v + n->farg[0]);
        for (c = 0; c < D; c++) {
            float h = (xr[c] - m) * rstd[r];
            o[c] = (g ? h * g[c] : h) + (b ? b[c] : 0.0f);
        }
    }
}
static void acn__ln_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__par(ctx, n, n->out->numel / (size_t)n->out->shape[n->out->ndim - 1],
             3 * n->out->shape[n->out->ndim - 1] * ACN__NS_ELEM, acn__ln_fwd_rows);
}
/* dxhat = d gamma;
 * dx += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))         rows [lo, hi)
 * (dx = ... when it was fresh: n->wr; gx NULL: no dx), and in the same
 * pass, when pg is given, the rows' shares of gamma's and beta's gradients:
 * pg[c] += d[r, c] xhat[r, c], pb[c] += d[r, c], rows in order */
static void acn__ln_bwd_rows(acn__node *n, size_t lo, size_t hi, float *pg, float *pb)
{
    float *gx = acn__g(n->in[0]);
    const float *x = n->in[0]->data, *g = n->in[1] ? n->in[1]->data : NULL;
    const float *mean = (const float *)n->aux, *d = n->out->grad;
    int D = n->out->shape[n->out->ndim - 1], c;
    size_t R = n->out->numel / (size_t)D, r;
    const float *rstd = mean + R;
    for (r = lo; r < hi; r++) {
        const float *xr = x + r * D, *dr = d + r * D;
        float m1 = 0.0f, m2 = 0.0f, mr = mean[r], sr = rstd[r];  /* mean(dxhat), mean(dxhat xhat) */
        if (acn__ln_fast(n->ctx, n->wr ? 2 : 1, xr, g, NULL, dr, 0.0f, D, gx ? gx + r * D : NULL, &mr, &sr, pg, pb))
            continue;
        for (c = 0; c < D; c++) {
            float h = (xr[c] - mean[r]) * rstd[r], dh = g ? dr[c] * g[c] : dr[c];
            m1 += dh;
            m2 += dh * h;
            if (pg) {
                pg[c] += dr[c] * h;
                pb[c] += dr[c];
            }
        }
        m1 /= (float)D;
        m2 /= (float)D;
        for (c = 0; gx && c < D; c++) {
            float h = (xr[c] - mean[r]) * rstd[r], dh = g ? dr[c] * g[c] : dr[c];
            float v = rstd[r] * (dh - m1 - h * m2);
            gx[r * D + c] = n->wr ? v : gx[r * D + c] + v;
        }
    }
}
/* With gamma's or beta's gradient wanted, the rows go in ACN__LN_GROUPS
 * fixed groups, each group's rows in order on one thread, with its own sums
 * for gamma and beta (part: (groups, 2, D));
 * the groups' sums are added in group order after: x and d are read once,
 * and the bits are the same for any number of threads. */
#define ACN__LN_GROUPS 8
typedef struct acn__ln_bwd_job { acn__node *n; float *part; } acn__ln_bwd_job;
static void acn__ln_bwd_task(void *arg, int part, int parts, int tid)
{
    const acn__ln_bwd_job *j = (const acn__ln_bwd_job *)arg;
    size_t D = (size_t)j->n->out->shape[j->n->out->ndim - 1], R = j->n->out->numel / D, glo, ghi, k;
    (void)tid;
    acn__share(ACN__LN_GROUPS, 1, part, parts, &glo, &ghi);
    for (k = glo; k < ghi; k++) {
        float *pg = j->part + k * 2 * D;
        memset(pg, 0, 2 * D * sizeof(float));
        acn__ln_bwd_rows(j->n, R * k / ACN__LN_GROUPS, R * (k + 1) / ACN__LN_GROUPS, pg, pg + D);
    }
}
/* rows [lo, hi), dx only (no gamma or beta gradient wanted): over all threads */
static void acn__ln_bwd_dx(acn__node *n, size_t lo, size_t hi) { acn__ln_bwd_rows(n, lo, hi, NULL, NULL); }
static void acn__ln_bwd(acn_ctx *ctx, acn__node *n)
{
    size_t D = (size_t)n->out->shape[n->out->ndim - 1], R = n->out->numel / D, c;
    /* (gamma and beta may be activations, whose gradient is added to: cleared first if fresh) */
    float *gg = n->in[1] ? acn__zeroed(n->in[1]) : NULL, *gb = n->in[2] ? acn__zeroed(n->in[2]) : NULL;
    size_t len = gg || gb ? (size_t)ACN__LN_GROUPS * 2 * D : 0;
    acn__ln_bwd_job j;
    int k;
    n->wr = (unsigned)acn__fresh(n->in[0]);
    if (!acn__g(n->in[0]) && !len) return;
    if (!len) {
        acn__par(ctx, n, R, 4.0 * D * ACN__NS_ELEM, acn__ln_bwd_dx);
        return;
    }
    j.n = n;
    if (!(j.part = acn__galloc_raw(ctx, ctx->gheap, len))) return;
    acn__parallel(ctx, acn__ln_bwd_task, &j, (double)R * D * 4.0 * ACN__NS_ELEM, 4);
    for (c = 0; c < D; c++) { /* dgamma += sum over the groups, in order (and dbeta) */
        float sg = j.part[c], sb = j.part[D + c];
        for (k = 1; k < ACN__LN_GROUPS; k++) {
            sg += j.part[(size_t)k * 2 * D + c];
            sb += j.part[(size_t)k * 2 * D + D + c];
        }
        if (gg) gg[c] += sg;
        if (gb) gb[c] += sb;
    }
    acn__gfree(ctx->gheap, j.part, len);
}

/* ---- transpose ---------------------------------------------------------- */
/* iarg = {axis0, axis1} as padded 4-d axes. */
ACNDEF acn_tensor *acn_transpose(acn_ctx *ctx, acn_tensor *x, int axis0, int axis1)
{
    int a0, a1, shape[ACN_MAX_DIMS], d, tmp;
    acn__node *n;
    if (acn__inputs_ok(ctx, "transpose", &x, 1)) return NULL;
    if ((a0 = acn__axis(ctx, "transpose", x, axis0)) < 0) return NULL;
    if ((a1 = acn__axis(ctx, "transpose", x, axis1)) < 0) return NULL;
    for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    tmp = shape[a0];
    shape[a0] = shape[a1];
    shape[a1] = tmp;
    n = acn__node_new(ctx, ACN__OP_TRANSPOSE, &x, 1, x->ndim, shape, 0);
    if (n) {
        n->iarg[0] = a0 + ACN_MAX_DIMS - x->ndim;
        n->iarg[1] = a1 + ACN_MAX_DIMS - x->ndim;
    }
    return acn__run(ctx, n);
}
/* Over out rows [lo, hi) (the first three padded dims), the input offset of
 * each out element with axes a0, a1 swapped. dir 0: out[o] = x[ix];
 * dir 1: dx[ix] += d[o] (every ix once, so rows can run in parallel). */
static void acn__transpose_rows(const acn__node *n, int dir, float *dst, const float *src, size_t lo, size_t hi)
{
    size_t sx[ACN_MAX_DIMS], s[ACN_MAX_DIMS], stride = 1, tmp, r;
    int no[ACN_MAX_DIMS], d, i3;
    for (d = ACN_MAX_DIMS - 1; d >= 0; d--) {   /* strides of x */
        sx[d] = stride;
        stride *= (size_t)acn__dim4(n->in[0], d);
    }
    for (d = 0; d < ACN_MAX_DIMS; d++) { s[d] = sx[d]; no[d] = acn__dim4(n->out, d); }
    tmp = s[n->iarg[0]];
    s[n->iarg[0]] = s[n->iarg[1]];
    s[n->iarg[1]] = tmp;
    for (r = lo; r < hi; r++) {
        size_t i2 = r % (size_t)no[2], i1 = r / (size_t)no[2] % (size_t)no[1], i0 = r / ((size_t)no[2] * no[1]);
        size_t base = i0 * s[0] + i1 * s[1] + i2 * s[2], o = r * (size_t)no[3];
        for (i3 = 0; i3 < no[3]; i3++) {
            size_t ix = base + i3 * s[3];
            if (dir) dst[ix] += src[o + i3];
            else dst[o + i3] = src[ix];
        }
    }
}
/* out[.., i, .., j, ..] = x[.., j, .., i, ..] */
static void acn__transpose_fwd_rows(acn__node *n, size_t lo, size_t hi)
{
    acn__transpose_rows(n, 0, n->out->data, n->in[0]->data, lo, hi);
}
static void acn__transpose_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__par(ctx, n, n->out->numel / (size_t)acn__dim4(n->out, 3), acn__dim4(n->out, 3) * ACN__NS_ELEM,
             acn__transpose_fwd_rows);
}
/* dx[.., j, .., i, ..] += d[.., i, .., j, ..] */
static void acn__transpose_bwd_rows(acn__node *n, size_t lo, size_t hi)
{
    acn__transpose_rows(n, 1, n->in[0]->grad, n->out->grad, lo, hi);
}
static void acn__transpose_bwd(acn_ctx *ctx, acn__node *n)
{
    if (acn__g(n->in[0]))
        acn__par(ctx, n, n->out->numel / (size_t)acn__dim4(n->out, 3), acn__dim4(n->out, 3) * ACN__NS_ELEM,
                 acn__transpose_bwd_rows);
}

/* ---- reshape ------------------------------------------------------------ */
/* The output shares x's storage (no copy), unless x is transient, when
 * iarg[0] = 1 and the forward kernel copies. */
ACNDEF acn_tensor *acn_reshape(acn_ctx *ctx, acn_tensor *x, int ndim, const int *shape)
{
    int s[ACN_MAX_DIMS], d, infer = -1;
    size_t known = 1;
    char sh[64];
    acn__node *n;
    acn_tensor *out;
    if (acn__inputs_ok(ctx, "reshape", &x, 1)) return NULL;
    if (ndim < 0 || ndim > ACN_MAX_DIMS || (ndim && !shape)) {
        acn__fail(ctx, ACN_ERR_SHAPE, "reshape: %d dimensions; acn.h tensors have 0 to %d", ndim,
                  ACN_MAX_DIMS);
        return NULL;
    }
    for (d = 0; d < ndim; d++) {
        s[d] = shape[d];
        if (s[d] == -1 && infer < 0) infer = d;
        else if (s[d] <= 0 || known > x->numel / (size_t)s[d]) break; /* (a product past numel cannot fit) */
        else known *= (size_t)s[d];
    }
    if (d == ndim && infer >= 0 && known && x->numel % known == 0) s[infer] = (int)(x->numel / known);
    else if (d == ndim && infer < 0 && known == x->numel) infer = -2;
    else infer = -3;
    if (infer == -3) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "reshape: %s has %zu elements, which the new shape (%d dims) cannot hold; sizes "
                  "must be positive, with at most one -1", ACN__SHAPE(x, sh), x->numel, ndim);
        return NULL;
    }
    if (x->flags & ACN_F_TRANSIENT) {
        n = acn__node_new(ctx, ACN__OP_RESHAPE, &x, 1, ndim, s, 0);
        if (n) n->iarg[0] = 1;
        return acn__run(ctx, n);
    }
    /* Share the storage: a node with a header only, no data of its own. */
    n = (acn__node *)acn__alloc(ctx, sizeof *n, "reshape");
    out = acn__header(ctx, ndim, s, "reshape");
    if (!n || !out) return NULL;
    memset(n, 0, sizeof *n);
    n->op = ACN__OP_RESHAPE;
    n->ctx = ctx;
    n->n_in = 1;
    n->in = (acn_tensor **)acn__alloc(ctx, sizeof(acn_tensor *), "reshape");
    if (!n->in) return NULL;
    n->in[0] = x;
    n->out = out;
    out->node = n;
    out->data = x->data;
    if ((x->flags & ACN_F_GRAD) && !ctx->no_grad) out->flags |= ACN_F_GRAD;
    return acn__run(ctx, n);
}
/* out = x (same elements, new shape) */
static void acn__reshape_fwd(acn_ctx *ctx, acn__node *n)
{
    if (n->iarg[0]) memcpy(n->out->data, acn__val(ctx, n->in[0]), n->out->numel * sizeof(float));
}
/* dx += d */
static void acn__reshape_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    size_t i;
    (void)ctx;
    if (gx) for (i = 0; i < n->out->numel; i++) gx[i] += n->out->grad[i];
}

/* ---- concat, slice ------------------------------------------------------ */
/* Along an axis, a tensor is (outer, len, inner); iarg = {axis} and, for
 * slice, {axis, start}. */
ACNDEF acn_tensor *acn_concat(acn_ctx *ctx, acn_tensor *const *xs, int n_in, int axis)
{
    int a, i, d, shape[ACN_MAX_DIMS];
    char s1[64], s2[64];
    acn__node *n;
    if (!ctx || ctx->status) return NULL;
    if (!xs || n_in < 1) { acn__fail(ctx, ACN_ERR_ARG, "concat: no tensors given"); return NULL; }
    if (acn__inputs_ok(ctx, "concat", xs, n_in)) return NULL;
    if ((a = acn__axis(ctx, "concat", xs[0], axis)) < 0) return NULL;
    for (d = 0; d < xs[0]->ndim; d++) shape[d] = xs[0]->shape[d];
    shape[a] = 0;
    for (i = 0; i < n_in; i++) {
        int ok = xs[i]->ndim == xs[0]->ndim;
        for (d = 0; ok && d < xs[0]->ndim; d++) ok = d == a || xs[i]->shape[d] == xs[0]->shape[d];
        if (!ok) {
            acn__fail(ctx, ACN_ERR_SHAPE,
                      "concat: tensor %d %s does not match tensor 0 %s outside axis %d", i,
                      ACN__SHAPE(xs[i], s1), ACN__SHAPE(xs[0], s2), a);
            return NULL;
        }
        shape[a] += xs[i]->shape[a];
    }
    n = acn__node_new(ctx, ACN__OP_CONCAT, xs, n_in, xs[0]->ndim, shape, 0);
    if (n) n->iarg[0] = a;
    return acn__run(ctx, n);
}
/* out[o, :, i] = [x_0[o, :, i], x_1[o, :, i], ...] along the axis */
static void acn__concat_fwd(acn_ctx *ctx, acn__node *n)
{
    int a = n->iarg[0], k;
    size_t outer = acn__prod(n->out, 0, a), inner = acn__prod(n->out, a + 1, n->out->ndim), o;
    size_t row = (size_t)n->out->shape[a] * inner, off = 0;
    for (k = 0; k < n->n_in; k++) {
        size_t len = (size_t)n->in[k]->shape[a] * inner;
        const float *x = acn__val(ctx, n->in[k]);
        for (o = 0; o < outer; o++) memcpy(n->out->data + o * row + off, x + o * len, len * sizeof(float));
        off += len;
    }
}
/* dx_k[o, :, i] += d[o, (x_k's range), i] */
static void acn__concat_bwd(acn_ctx *ctx, acn__node *n)
{
    int a = n->iarg[0], k;
    size_t outer = acn__prod(n->out, 0, a), inner = acn__prod(n->out, a + 1, n->out->ndim), o;
    size_t row = (size_t)n->out->shape[a] * inner, off = 0;
    for (k = 0; k < n->n_in; k++) {
        size_t len = (size_t)n->in[k]->shape[a] * inner;
        float *g = acn__g(n->in[k]);
        if (g)
            for (o = 0; o < outer; o++)
                acn__add_to(ctx, g + o * len, n->out->grad + o * row + off, len);
        off += len;
    }
}

ACNDEF acn_tensor *acn_slice(acn_ctx *ctx, acn_tensor *x, int axis, int start, int len)
{
    int a, d, shape[ACN_MAX_DIMS];
    char sh[64];
    acn__node *n;
    if (acn__inputs_ok(ctx, "slice", &x, 1)) return NULL;
    if ((a = acn__axis(ctx, "slice", x, axis)) < 0) return NULL;
    if (start < 0 || len < 1 || start > x->shape[a] - len) {
        acn__fail(ctx, ACN_ERR_SHAPE, "slice: [%d, %d) is outside axis %d of %s (size %d)", start,
                  start + len, a, ACN__SHAPE(x, sh), x->shape[a]);
        return NULL;
    }
    for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[a] = len;
    n = acn__node_new(ctx, ACN__OP_SLICE, &x, 1, x->ndim, shape, 0);
    if (n) { n->iarg[0] = a; n->iarg[1] = start; }
    return acn__run(ctx, n);
}
/* out[o, j, i] = x[o, start + j, i] */
static void acn__slice_fwd(acn_ctx *ctx, acn__node *n)
{
    const float *x = acn__val(ctx, n->in[0]);
    int a = n->iarg[0];
    size_t outer = acn__prod(n->out, 0, a), inner = acn__prod(n->out, a + 1, n->out->ndim), o;
    size_t len = (size_t)n->out->shape[a] * inner, row = (size_t)n->in[0]->shape[a] * inner;
    size_t off = (size_t)n->iarg[1] * inner;
    for (o = 0; o < outer; o++) memcpy(n->out->data + o * len, x + o * row + off, len * sizeof(float));
}
/* dx[o, start + j, i] += d[o, j, i] */
static void acn__slice_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    int a = n->iarg[0];
    size_t outer = acn__prod(n->out, 0, a), inner = acn__prod(n->out, a + 1, n->out->ndim), o;
    size_t len = (size_t)n->out->shape[a] * inner, row = (size_t)n->in[0]->shape[a] * inner;
    size_t off = (size_t)n->iarg[1] * inner;
    if (gx)
        for (o = 0; o < outer; o++) acn__add_to(ctx, gx + o * row + off, n->out->grad + o * len, len);
}

/* ---- patches ------------------------------------------------------------ */
ACNDEF acn_tensor *acn_patches(acn_ctx *ctx, acn_tensor *x, int p)
{
    int shape[3];
    char sh[64];
    acn__node *n;
    if (acn__inputs_ok(ctx, "patches", &x, 1)) return NULL;
    if (x->ndim != 4 || p < 1 || x->shape[2] % p || x->shape[3] % p) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "patches: images %s with patch %d: need (B, C, H, W) with H and W divisible by "
                  "the patch size", ACN__SHAPE(x, sh), p);
        return NULL;
    }
    shape[0] = x->shape[0];
    shape[1] = (x->shape[2] / p) * (x->shape[3] / p);
    shape[2] = x->shape[1] * p * p;
    n = acn__node_new(ctx, ACN__OP_PATCHES, &x, 1, 3, shape, 0);
    if (n) n->iarg[0] = p;
    return acn__run(ctx, n);
}
/* Patch (py, px) of image b is row py*(W/p) + px; its column c*p*p + ky*p + kx
 * holds x[b, c, py*p + ky, px*p + kx]. dir 0: out = gather(x); dir 1:
 * dx += scatter(d). */
static void acn__patches_map(const acn__node *n, int dir, float *dst, const float *src)
{
    const acn_tensor *x = n->in[0];
    int B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], p = n->iarg[0];
    int b, c, py, px, ky, kx;
    size_t o = 0;
    for (b = 0; b < B; b++)
        for (py = 0; py < H / p; py++)
            for (px = 0; px < W / p; px++)
                for (c = 0; c < C; c++)
                    for (ky = 0; ky < p; ky++)
                        for (kx = 0; kx < p; kx++, o++) {
                            size_t ix = (((size_t)b * C + c) * H + py * p + ky) * W + px * p + kx;
                            if (dir) dst[ix] += src[o];
                            else dst[o] = src[ix];
                        }
}
static void acn__patches_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__patches_map(n, 0, n->out->data, acn__val(ctx, n->in[0]));
}
static void acn__patches_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    (void)ctx;
    if (gx) acn__patches_map(n, 1, gx, n->out->grad);
}

/* ---- embedding ---------------------------------------------------------- */
/* aux = the ids (int, numel of the index shape). */
ACNDEF acn_tensor *acn_embedding(acn_ctx *ctx, acn_tensor *table, const int *ids, int ndim,
                                 const int *shape)
{
    int s[ACN_MAX_DIMS], d;
    size_t count = 1, i;
    char sh[64];
    acn__node *n;
    if (acn__inputs_ok(ctx, "embedding", &table, 1)) return NULL;
    if (table->ndim != 2 || !ids || ndim < 0 || ndim > ACN_MAX_DIMS - 1 || (ndim && !shape)) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "embedding: table %s with %d index dims: need a (V, D) table, ids, and at most "
                  "%d index dims", ACN__SHAPE(table, sh), ndim, ACN_MAX_DIMS - 1);
        return NULL;
    }
    for (d = 0; d < ndim; d++) {
        s[d] = shape[d];
        if (s[d] <= 0) {
            acn__fail(ctx, ACN_ERR_SHAPE, "embedding: index dim %d has size %d", d, s[d]);
            return NULL;
        }
        count *= (size_t)s[d];
    }
    for (i = 0; i < count; i++)
        if (ids[i] < 0 || ids[i] >= table->shape[0]) {
            acn__fail(ctx, ACN_ERR_ARG, "embedding: id %d at position %zu is outside [0, %d)",
                      ids[i], i, table->shape[0]);
            return NULL;
        }
    s[ndim] = table->shape[1];
    n = acn__node_new(ctx, ACN__OP_EMBEDDING, &table, 1, ndim + 1, s, 0);
    if (!n || !(n->aux = acn__alloc(ctx, count * sizeof(int), "embedding"))) return NULL;
    memcpy(n->aux, ids, count * sizeof(int));
    return acn__run(ctx, n);
}
/* out[i, :] = table[ids[i], :] */
static void acn__embed_fwd(acn_ctx *ctx, acn__node *n)
{
    const float *tab = acn__val(ctx, n->in[0]);
    const int *ids = (const int *)n->aux;
    size_t D = (size_t)n->in[0]->shape[1], count = n->out->numel / D, i;
    for (i = 0; i < count; i++) memcpy(n->out->data + i * D, tab + (size_t)ids[i] * D, D * sizeof(float));
}
/* dtable[ids[i], :] += d[i, :] */
static void acn__embed_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gt = acn__g(n->in[0]);
    const int *ids = (const int *)n->aux;
    size_t D = (size_t)n->in[0]->shape[1], count = n->out->numel / D, i, j;
    (void)ctx;
    if (gt)
        for (i = 0; i < count; i++)
            for (j = 0; j < D; j++) gt[(size_t)ids[i] * D + j] += n->out->grad[i * D + j];
}

/* ---- dropout ------------------------------------------------------------ */
/* aux = keep mask (bytes), drawn when the op is built so that the forward
 * kernel is pure; farg = {p, 1/(1-p)}. */
ACNDEF acn_tensor *acn_dropout(acn_ctx *ctx, acn_tensor *x, float p)
{
    acn__node *n;
    unsigned char *keep;
    size_t i;
    if (acn__inputs_ok(ctx, "dropout", &x, 1)) return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) {
        acn__fail(ctx, ACN_ERR_ARG, "dropout: p = %g; it must be in [0, 1]", (double)p);
        return NULL;
    }
    if (p == 0.0f || !ctx->train) return x;
    n = acn__node_new(ctx, ACN__OP_DROPOUT, &x, 1, x->ndim, x->shape, 0);
    if (!n || !(keep = (unsigned char *)acn__alloc(ctx, x->numel, "dropout"))) return NULL;
    if (ctx->dist_size > 1 && ctx->dist_cnt < 1) {
        acn__fail(ctx, ACN_ERR_STATE, "dropout: this context shares its batches with %d ranks, but no rows of "
                  "one are this rank's: call acn_dist_rows with the step's batch before its forward pass (a rank "
                  "given no rows runs none)", ctx->dist_size);
        return NULL;
    }
    if (ctx->dist_size > 1 && x->numel % (size_t)ctx->dist_cnt) {
        char sx[64];
        acn__fail(ctx, ACN_ERR_SHAPE, "dropout: %s is not a whole number of rows for this rank's %d rows of the "
                  "batch (acn_dist_rows): in data-parallel training, dropout's input must have the batch first; "
                  "call acn_dist_rows with the batch of this step", ACN__SHAPE(x, sx), ctx->dist_cnt);
        return NULL;
    }
    if (ctx->dist_size > 1) /* the draws of the rows before this rank's */
        acn__rng_skip(&ctx->rng, (uint64_t)(x->numel / (size_t)ctx->dist_cnt) * (uint64_t)ctx->dist_off);
    for (i = 0; i < x->numel; i++) keep[i] = acn_rng_uniform(&ctx->rng) >= p;
    if (ctx->dist_size > 1) /* and after them */
        acn__rng_skip(&ctx->rng, (uint64_t)(x->numel / (size_t)ctx->dist_cnt) *
                                     (uint64_t)(ctx->dist_batch - ctx->dist_off - ctx->dist_cnt));
    n->aux = keep;
    n->farg[0] = p;
    n->farg[1] = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    return acn__run(ctx, n);
}
/* out = x keep / (1 - p) */
static void acn__dropout_fwd(acn_ctx *ctx, acn__node *n)
{
    const float *x = acn__val(ctx, n->in[0]);
    const unsigned char *keep = (const unsigned char *)n->aux;
    size_t i;
    for (i = 0; i < n->out->numel; i++) n->out->data[i] = keep[i] ? x[i] * n->farg[1] : 0.0f;
}
/* dx += d keep / (1 - p) */
static void acn__dropout_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    const unsigned char *keep = (const unsigned char *)n->aux;
    size_t i;
    (void)ctx;
    if (gx) for (i = 0; i < n->out->numel; i++) if (keep[i]) gx[i] += n->out->grad[i] * n->farg[1];
}

/* ---- multi-head attention ----------------------------------------------- */
/* in = {q, k, v, mask or NULL}; iarg[0] = heads, iarg[1] = the threads the
 * backward scratch was sized for, iarg[2] = 1 when q, k and v are the
 * column blocks of one tensor (acn_attention_qkv: in[0..2] are that
 * tensor); aux = the attention weights P (B, heads, Tq, Tk), then a
 * (Tq, Tk) block of scratch per thread for backward. The (batch, head)
 * pairs run on the pool; within a pair, the two products of each direction
 * go through the matrix kernel (acn__gemm_on), on the columns
 * h dh .. h dh + dh - 1 of q, k and v where they lie.
 * acn__attn_node makes the node, with output (B, Tq, D). */
static acn_tensor *acn__attn_node(acn_ctx *ctx, acn_tensor **in, int B, int Tq, int Tk, int D, int heads, int fused)
{
    int shape[3];
    acn__node *n;
    shape[0] = B;
    shape[1] = Tq;
    shape[2] = D;
    n = acn__node_new(ctx, ACN__OP_ATTENTION, in, 4, 3, shape, 0);
    if (!n || !(n->aux = acn__alloc_floats(ctx, (size_t)(B * heads + ctx->threads) * Tq * Tk, "attention")))
        return NULL;
    n->iarg[0] = heads;
    n->iarg[1] = ctx->threads;
    n->iarg[2] = fused;
    return acn__run(ctx, n);
}
ACNDEF acn_tensor *acn_attention(acn_ctx *ctx, acn_tensor *q, acn_tensor *k, acn_tensor *v,
                                 int heads, acn_tensor *mask)
{
    acn_tensor *in[4];
    char s1[64], s2[64], s3[64], s4[64];
    int B, Tq, Tk, D;
    in[0] = q;
    in[1] = k;
    in[2] = v;
    in[3] = mask;
    if (acn__inputs_ok(ctx, "attention", in, 3) || acn__optional_ok(ctx, "attention", mask, 3)) return NULL;
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || heads < 1 || q->shape[2] % heads ||
        k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] || k->shape[2] != q->shape[2] ||
        v->shape[2] != q->shape[2] || v->shape[1] != k->shape[1] ||
        (mask && (mask->ndim != 2 || mask->shape[0] != q->shape[0] || mask->shape[1] != k->shape[1]))) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "attention: q %s, k %s, v %s, mask %s, %d heads: need q (B, Tq, D), k and v "
                  "(B, Tk, D), D divisible by heads, mask (B, Tk) or NULL",
                  ACN__SHAPE(q, s1), ACN__SHAPE(k, s2), ACN__SHAPE(v, s3),
                  mask ? ACN__SHAPE(mask, s4) : "NULL", heads);
        return NULL;
    }
    B = q->shape[0]; Tq = q->shape[1]; Tk = k->shape[1]; D = q->shape[2];
    return acn__attn_node(ctx, in, B, Tq, Tk, D, heads, 0);
}
ACNDEF acn_tensor *acn_attention_qkv(acn_ctx *ctx, acn_tensor *qkv, int heads, acn_tensor *mask)
{
    acn_tensor *in[4];
    char s1[64], s2[64];
    int D;
    in[0] = in[1] = in[2] = qkv;
    in[3] = mask;
    if (acn__inputs_ok(ctx, "attention_qkv", in, 1) || acn__optional_ok(ctx, "attention_qkv", mask, 3)) return NULL;
    D = qkv->ndim == 3 ? qkv->shape[2] / 3 : 0;
    if (qkv->ndim != 3 || heads < 1 || D < 1 || qkv->shape[2] != 3 * D || D % heads ||
        (mask && (mask->ndim != 2 || mask->shape[0] != qkv->shape[0] || mask->shape[1] != qkv->shape[1]))) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "attention_qkv: qkv %s, mask %s, %d heads: need qkv (B, T, 3 D), D divisible by heads, "
                  "mask (B, T) or NULL",
                  ACN__SHAPE(qkv, s1), mask ? ACN__SHAPE(mask, s2) : "NULL", heads);
        return NULL;
    }
    return acn__attn_node(ctx, in, qkv->shape[0], qkv->shape[1], qkv->shape[1], D, heads, 1);
}
/* Where q, k and v lie: q[b, i, c] = in[0]->data[b Tq lq + i lq + qo + c],
 * and so on; the row strides are D (three tensors) or 3 D (fused). */
typedef struct acn__attn_geom { int Tq, Tk, D; size_t qo, ko, vo, lq, lk, lv; } acn__attn_geom;
static acn__attn_geom acn__attn_where(const acn__node *n)
{
    acn__attn_geom g;
    g.Tq = n->in[0]->shape[1];
    g.Tk = n->in[1]->shape[1];
    g.D = n->out->shape[2];
    g.qo = 0;
    g.ko = n->iarg[2] ? (size_t)g.D : 0;
    g.vo = n->iarg[2] ? 2 * (size_t)g.D : 0;
    g.lq = g.lk = g.lv = n->iarg[2] ? 3 * (size_t)g.D : (size_t)g.D;
    return g;
}
/* Per batch b and head h (columns h*dh .. h*dh+dh-1 of D), s = 1/sqrt(dh):
 *   S = q[b, :, h] k[b, :, h]^T                   (Tq, Tk)   the kernel
 *   P[i, :] = softmax(s S[i, :] + mask[b, :])
 *   out[b, :, h] = P v[b, :, h]                   (Tq, dh)   the kernel
 * for the pairs bh = b * heads + h in [lo, hi), on thread tid. */
static void acn__attn_fwd_pairs(const acn__node *n, size_t lo, size_t hi, int tid)
{
    acn__attn_geom g = acn__attn_where(n);
    const float *q = n->in[0]->data + g.qo, *k = n->in[1]->data + g.ko, *v = n->in[2]->data + g.vo;
    const float *m = n->in[3] ? n->in[3]->data : NULL;
    int Tq = g.Tq, Tk = g.Tk, D = g.D, H = n->iarg[0], dh = D / H, i, j;
    float s = 1.0f / sqrtf((float)dh), *P = (float *)n->aux, *out = n->out->data;
    size_t bh;
    for (bh = lo; bh < hi; bh++) {
        size_t b = bh / (size_t)H, h = bh % (size_t)H;
        const float *qh = q + b * Tq * g.lq + h * dh, *kh = k + b * Tk * g.lk + h * dh, *vh = v + b * Tk * g.lv + h * dh;
        float *Pb = P + bh * Tq * Tk;
        acn__gemm_on(n->ctx, tid, Tq, Tk, dh, qh, g.lq, 1, kh, 1, g.lk, Pb, (size_t)Tk, 0);
        for (i = 0; i < Tq; i++) {
            float *p = Pb + (size_t)i * Tk, mx = -INFINITY, sum = 0.0f;
            for (j = 0; j < Tk; j++) {
                p[j] = s * p[j] + (m ? m[b * Tk + j] : 0.0f);
                if (p[j] > mx) mx = p[j];
            }
            for (j = 0; j < Tk; j++) { p[j] = expf(p[j] - mx); sum += p[j]; }
            for (j = 0; j < Tk; j++) p[j] /= sum;
        }
        acn__gemm_on(n->ctx, tid, Tq, dh, Tk, Pb, (size_t)Tk, 1, vh, g.lv, 1, out + b * Tq * D + h * dh, (size_t)D, 0);
    }
}
typedef struct acn__attn_job { acn__node *n; size_t pairs; } acn__attn_job;
static void acn__attn_fwd_task(void *arg, int part, int parts, int tid)
{
    const acn__attn_job *j = (const acn__attn_job *)arg;
    size_t lo, hi;
    acn__share(j->pairs, 1, part, parts, &lo, &hi);
    if (lo < hi) acn__attn_fwd_pairs(j->n, lo, hi, tid);
}
/* 4 flops for each (i, j, c) of a pair: the two products */
static double acn__attn_work(const acn__node *n)
{
    return 4.0 * n->out->shape[0] * n->in[0]->shape[1] * n->in[1]->shape[1] * n->out->shape[2] * ACN__NS_FLOP;
}
static void acn__attn_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__attn_job j;
    j.n = n;
    j.pairs = (size_t)n->in[0]->shape[0] * n->iarg[0];
    /* the scratch of forward is P itself, so any thread count will do */
    acn__parallel(ctx, acn__attn_fwd_task, &j, acn__attn_work(n), 4);
}
/* With G = d out (B, Tq, D), per b, h, into the thread's scratch dS (Tq, Tk):
 *   dP = G[b, :, h] v[b, :, h]^T                    the kernel
 *   dv[b, :, h] += P^T G[b, :, h]                   the kernel
 *   dS[i, j] = P[i, j] (dP[i, j] - sum_l P[i, l] dP[i, l])    (softmax backward)
 *   dmask[b, j] += sum_i dS[i, j]
 *   dq[b, :, h] += s dS k[b, :, h];   dk[b, :, h] += s dS^T q[b, :, h]   the kernel
 * for the pairs [lo, hi). */
static void acn__attn_bwd_pairs(const acn__node *n, size_t lo, size_t hi, float *dS, int tid)
{
    acn__attn_geom g = acn__attn_where(n);
    const float *q = n->in[0]->data + g.qo, *k = n->in[1]->data + g.ko, *v = n->in[2]->data + g.vo, *G = n->out->grad;
    float *gq = acn__g(n->in[0]), *gk = acn__g(n->in[1]), *gv = acn__g(n->in[2]);
    float *gm = n->in[3] ? acn__g(n->in[3]) : NULL;
    int Tq = g.Tq, Tk = g.Tk, D = g.D, H = n->iarg[0], dh = D / H, i, j;
    float s = 1.0f / sqrtf((float)dh);
    const float *P = (const float *)n->aux;
    size_t bh;
    if (gq) gq += g.qo;
    if (gk) gk += g.ko;
    if (gv) gv += g.vo;
    for (bh = lo; bh < hi; bh++) {
        size_t b = bh / (size_t)H, h = bh % (size_t)H, off_g = b * Tq * D + h * dh;
        size_t off_q = b * Tq * g.lq + h * dh, off_k = b * Tk * g.lk + h * dh, off_v = b * Tk * g.lv + h * dh;
        const float *Pb = P + bh * Tq * Tk;
        acn__gemm_on(n->ctx, tid, Tq, Tk, dh, G + off_g, (size_t)D, 1, v + off_v, 1, g.lv, dS, (size_t)Tk, 0);
        if (gv) acn__gemm_on(n->ctx, tid, Tk, dh, Tq, Pb, 1, (size_t)Tk, G + off_g, (size_t)D, 1, gv + off_v, g.lv, 1);
        for (i = 0; i < Tq; i++) {
            const float *p = Pb + (size_t)i * Tk;
            float *d = dS + (size_t)i * Tk, dot = 0.0f;
            for (j = 0; j < Tk; j++) dot += p[j] * d[j];
            for (j = 0; j < Tk; j++) d[j] = p[j] * (d[j] - dot);
        }
        if (gm)
            for (i = 0; i < Tq; i++)
                for (j = 0; j < Tk; j++) gm[b * Tk + j] += dS[(size_t)i * Tk + j];
        for (i = 0; i < Tq * Tk; i++) dS[i] *= s;
        if (gq) acn__gemm_on(n->ctx, tid, Tq, dh, Tk, dS, (size_t)Tk, 1, k + off_k, g.lk, 1, gq + off_q, g.lq, 1);
        if (gk) acn__gemm_on(n->ctx, tid, Tk, dh, Tq, dS, 1, (size_t)Tk, q + off_q, g.lq, 1, gk + off_k, g.lk, 1);
    }
}
static void acn__attn_bwd_task(void *arg, int part, int parts, int tid)
{
    const acn__attn_job *j = (const acn__attn_job *)arg;
    const acn__node *n = j->n;
    size_t lo, hi, TT = (size_t)n->in[0]->shape[1] * n->in[1]->shape[1];
    acn__share(j->pairs, 1, part, parts, &lo, &hi);
    if (lo < hi) acn__attn_bwd_pairs(n, lo, hi, (float *)n->aux + (j->pairs + (size_t)tid) * TT, tid);
}
static void acn__attn_bwd(acn_ctx *ctx, acn__node *n)
{
    acn__attn_job j;
    j.n = n;
    j.pairs = (size_t)n->in[0]->shape[0] * n->iarg[0];
    /* heads add into the same mask gradient, and the scratch was made for
     * iarg[1] threads: otherwise one thread */
    if ((n->in[3] && acn__g(n->in[3])) || ctx->threads > n->iarg[1]) {
        acn__attn_bwd_pairs(n, 0, j.pairs, (float *)n->aux + j.pairs * n->in[0]->shape[1] * n->in[1]->shape[1], 0);
        return;
    }
    acn__parallel(ctx, acn__attn_bwd_task, &j, 2.0 * acn__attn_work(n), 4);
}

/* ---- detach ------------------------------------------------------------- */
ACNDEF acn_tensor *acn_detach(acn_ctx *ctx, acn_tensor *x)
{
    acn_tensor *t;
    if (acn__inputs_ok(ctx, "detach", &x, 1)) return NULL;
    t = acn__header(ctx, x->ndim, x->shape, "detach");
    if (!t) return NULL;
    if (x->flags & ACN_F_TRANSIENT) { /* a stored copy, as the slot will move */
        const float *v;
        if (!(t->data = acn__alloc_floats(ctx, x->numel, "detach"))) return NULL;
        if (!(v = acn_data(ctx, x))) return NULL;
        if (acn__dcopy(ctx, t->data, v, x->numel * sizeof(float), ACN__D2D, "detach")) return NULL;
    } else {
        t->data = x->data;
    }
    return t;
}

/* ---- custom ops ----------------------------------------------------------- */
/* aux: the callbacks, of one form or the other */
typedef struct acn__custom {
    acn_custom_fwd fwd; acn_custom_bwd bwd;           /* acn_custom     */
    acn_custom_fwd_ex fwd_ex; acn_custom_bwd_ex bwd_ex; /* acn_custom_ex */
    void *user;
    const char *name;
} acn__custom;

static acn_tensor *acn__custom_op(acn_ctx *ctx, const char *name, acn_tensor *const *in, int n_in, int ndim,
                                  const int *shape, const acn__custom *cb)
{
    acn__node *n;
    acn__custom *c;
    if (!ctx || ctx->status) return NULL;
    if (!(cb->fwd || cb->fwd_ex) || !(cb->bwd || cb->bwd_ex) || n_in < 0 || (n_in && !in)) {
        acn__fail(ctx, ACN_ERR_ARG, "custom op '%s': needs a forward and a backward function, and the "
                  "array of its %d inputs", name ? name : "?", n_in);
        return NULL;
    }
    if (acn__inputs_ok(ctx, name ? name : "custom", in, n_in)) return NULL;
    n = acn__node_new(ctx, ACN__OP_CUSTOM, in, n_in, ndim, shape, 0);
    if (!n || !(c = (acn__custom *)acn__alloc(ctx, sizeof *c, "custom"))) return NULL;
    *c = *cb;
    c->name = name ? name : "custom";
    n->aux = c;
    n->out->name = c->name;
    return acn__run(ctx, n);
}
ACNDEF acn_tensor *acn_custom_ex(acn_ctx *ctx, const char *name, acn_tensor *const *in, int n_in,
                                 int ndim, const int *shape, acn_custom_fwd_ex fwd, acn_custom_bwd_ex bwd,
                                 void *user)
{
    acn__custom cb;
    memset(&cb, 0, sizeof cb);
    cb.fwd_ex = fwd;
    cb.bwd_ex = bwd;
    cb.user = user;
    return acn__custom_op(ctx, name, in, n_in, ndim, shape, &cb);
}
ACNDEF acn_tensor *acn_custom(acn_ctx *ctx, const char *name, acn_tensor *const *in, int n_in,
                              int ndim, const int *shape, acn_custom_fwd fwd, acn_custom_bwd bwd,
                              void *user)
{
    acn__custom cb;
    memset(&cb, 0, sizeof cb);
    cb.fwd = fwd;
    cb.bwd = bwd;
    cb.user = user;
    return acn__custom_op(ctx, name, in, n_in, ndim, shape, &cb);
}
/* A callback's failure becomes the context's error (unless it set one). */
static void acn__custom_status(acn_ctx *ctx, const acn__custom *c, acn_status st, const char *dir)
{
    if (st != ACN_OK)
        acn__fail(ctx, st, "custom op '%s': its %s returned %s (and set no message)", c->name, dir,
                  acn_status_name(st));
}
static void acn__custom_fwd(acn_ctx *ctx, acn__node *n)
{
    const acn__custom *c = (const acn__custom *)n->aux;
    int i;
    for (i = 0; i < n->n_in; i++) acn__val(ctx, n->in[i]);
    if (c->fwd_ex) acn__custom_status(ctx, c, c->fwd_ex(ctx, n->in, n->n_in, n->out, c->user), "forward");
    else c->fwd(n->in, n->n_in, n->out, c->user);
}
static void acn__custom_bwd(acn_ctx *ctx, acn__node *n)
{
    const acn__custom *c = (const acn__custom *)n->aux;
    int i;
    for (i = 0; i < n->n_in; i++) acn__val(ctx, n->in[i]);
    acn__val(ctx, n->out);
    if (c->bwd_ex) acn__custom_status(ctx, c, c->bwd_ex(ctx, n->in, n->n_in, n->out, c->user), "backward");
    else c->bwd(n->in, n->n_in, n->out, c->user);
}

/* ---- the table ---------------------------------------------------------- */
#ifdef ACN_CUDA
typedef struct acn__opdef { const char *name; acn__kernel fwd, bwd, dfwd, dbwd; } acn__opdef;
#define ACN__OP_ROW(id, name, fwd, bwd, dfwd, dbwd) {name, fwd, bwd, dfwd, dbwd},
#else
typedef struct acn__opdef { const char *name; acn__kernel fwd, bwd; } acn__opdef;
#define ACN__OP_ROW(id, name, fwd, bwd, dfwd, dbwd) {name, fwd, bwd},
#endif
static const acn__opdef acn__ops[ACN__OP_COUNT] = {ACN__OP_LIST(ACN__OP_ROW)};
#undef ACN__OP_ROW
/* An op's kernels on the context's device. */
static void acn__forward(acn_ctx *ctx, acn__node *n)
{
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { acn__ops[n->op].dfwd(ctx, n); return; }
#endif
    acn__ops[n->op].fwd(ctx, n);
}
static void acn__backward_op(acn_ctx *ctx, acn__node *n)
{
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { acn__ops[n->op].dbwd(ctx, n); return; }
#endif
    acn__ops[n->op].bwd(ctx, n);
}
static const char *acn__op_name(int op) { return acn__ops[op].name; }

#ifdef ACN_CUDA
/* ======================================================================== */
/* Ops on a GPU: each CPU kernel's device twin (docs/cuda.md)               */
/* ======================================================================== */
/* Each reads its node exactly as the CPU kernel named in its comment and
 * calls the GPU unit (acn_cuda.cu) with device pointers; a failure of the
 * unit becomes the context's error (acn__cu_ok). Host data an op keeps
 * (labels, ids, a dropout mask) goes up once, in forward (acn__d_aux). */
#define ACN__CU_CALL(ctx, call) ((void)acn__cu_ok((ctx), (call)))

/* An op that does not run on a GPU context yet. */
static void acn__d_none(acn_ctx *ctx, acn__node *n)
{
    acn__fail(ctx, ACN_ERR_STATE, "%s: this op does not run on a GPU context yet; docs/cuda.md lists the ops that "
              "do (use a CPU context for this model for now)", acn__op_name(n->op));
}

/* An op's host data (labels, ids, a dropout mask: in aux) on the device:
 * copied up by the forward into the arena beside the op's floats and kept
 * in n->daux for the backward; gone with the arena at the next reset. */
static void *acn__d_aux(acn_ctx *ctx, acn__node *n, const void *src, size_t bytes, const char *what)
{
    void *d = acn__alloc_floats(ctx, (bytes + sizeof(float) - 1) / sizeof(float), what);
    if (d && acn__dcopy(ctx, d, src, bytes, ACN__H2D, what)) d = NULL;
    return n->daux = d;
}

/* A contiguous matrix product on the device, with the storage conventions
 * of acn__gemm: op(A) (M, K) stored (M, K), or (K, M) when ta; op(B) (K, N)
 * stored (K, N), or (N, K) when tb; C (M, N); batch products with strides. */
static void acn__dgemm(acn_ctx *ctx, int M, int N, int K, const float *A, int ta, const float *B, int tb, float *C,
                       int accumulate, int batch, size_t sa, size_t sb, size_t sc, const char *what)
{
    ACN__CU_CALL(ctx, acn__cu_gemm(ctx->cu, M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C, N, accumulate, batch,
                                   (long long)sa, (long long)sb, (long long)sc, what));
}

/* device twin of acn__binary_fwd: out = a op b, broadcast */
static void acn__d_binary_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__bcast bc;
    acn__bcast_init(&bc, n->out, n->in[0], n->in[1]);
    ACN__CU_CALL(ctx, acn__cu_binary(ctx->cu, n->op - ACN__OP_ADD + ACN__CU_ADD, bc.n, bc.sa, bc.sb,
                                     acn__val(ctx, n->in[0]), acn__val(ctx, n->in[1]), n->out->data, "binary"));
}
/* device twin of acn__binary_bwd: each operand's gradient, reduced over the dims it repeats along */
static void acn__d_binary_bwd(acn_ctx *ctx, acn__node *n)
{
    acn__bcast bc;
    int op = n->op - ACN__OP_ADD + ACN__CU_ADD;
    float *ga = acn__g(n->in[0]), *gb = acn__g(n->in[1]);
    acn__bcast_init(&bc, n->out, n->in[0], n->in[1]);
    if (ga) ACN__CU_CALL(ctx, acn__cu_binary_bwd(ctx->cu, op, 0, bc.n, bc.sa, bc.sb, n->in[0]->numel, n->out->grad,
                                                 acn__val(ctx, n->in[1]), ga, acn__op_name(n->op)));
    if (gb) ACN__CU_CALL(ctx, acn__cu_binary_bwd(ctx->cu, op, 1, bc.n, bc.sb, bc.sa, n->in[1]->numel, n->out->grad,
                                                 acn__val(ctx, n->in[0]), gb, acn__op_name(n->op)));
}
/* device twins of acn__scale_fwd (out = s x) and acn__scale_bwd (dx += s d) */
static void acn__d_scale_fwd(acn_ctx *ctx, acn__node *n)
{
    ACN__CU_CALL(ctx, acn__cu_axpy(ctx->cu, n->out->numel, n->farg[0], acn__val(ctx, n->in[0]), n->out->data, 0, "scale"));
}
static void acn__d_scale_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    if (gx) ACN__CU_CALL(ctx, acn__cu_axpy(ctx->cu, n->out->numel, n->farg[0], n->out->grad, gx, 1, "scale"));
}
/* device twins of acn__addn_fwd (in order) and acn__addn_bwd (dx_k += d) */
static void acn__d_addn_fwd(acn_ctx *ctx, acn__node *n)
{
    const float **xs = (const float **)acn__alloc(ctx, (size_t)n->n_in * sizeof(float *), "add_n"); /* host */
    int k;
    if (!xs) return;
    for (k = 0; k < n->n_in; k++) xs[k] = acn__val(ctx, n->in[k]);
    ACN__CU_CALL(ctx, acn__cu_add_n(ctx->cu, xs, n->n_in, n->out->numel, n->out->data, "add_n"));
}
static void acn__d_addn_bwd(acn_ctx *ctx, acn__node *n)
{
    int k;
    for (k = 0; k < n->n_in; k++) {
        float *g = acn__g(n->in[k]);
        if (g) ACN__CU_CALL(ctx, acn__cu_axpy(ctx->cu, n->out->numel, 1.0f, n->out->grad, g, 1, "add_n"));
    }
}
/* device twins of acn__reduce_fwd and acn__reduce_bwd: x (outer, len, inner) */
static void acn__d_reduce_fwd(acn_ctx *ctx, acn__node *n)
{
    ACN__CU_CALL(ctx, acn__cu_reduce(ctx->cu, (size_t)n->iarg[0], (size_t)n->iarg[1], (size_t)n->iarg[2],
                                     n->op == ACN__OP_MEAN, acn__val(ctx, n->in[0]), n->out->data, acn__op_name(n->op)));
}
static void acn__d_reduce_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    if (gx) ACN__CU_CALL(ctx, acn__cu_reduce_bwd(ctx->cu, (size_t)n->iarg[0], (size_t)n->iarg[1], (size_t)n->iarg[2],
                                                 n->op == ACN__OP_MEAN ? 1.0f / (float)n->iarg[1] : 1.0f,
                                                 n->out->grad, gx, acn__op_name(n->op)));
}
/* device twin of acn__matmul_fwd: out[z] = op(a[z]) op(b[z]), one batched product */
static void acn__d_matmul_fwd(acn_ctx *ctx, acn__node *n)
{
    int M, N, K, Z = n->iarg[2];
    acn__mnk(n, &M, &N, &K);
    acn__dgemm(ctx, M, N, K, acn__val(ctx, n->in[0]), n->iarg[0], acn__val(ctx, n->in[1]), n->iarg[1], n->out->data, 0,
               Z, (size_t)M * K, n->iarg[3] ? 0 : (size_t)K * N, (size_t)M * N, "matmul");
}
/* device twin of acn__matmul_bwd, its four products as written there; a
 * shared b's gradient sums over the batch, one product after another */
static void acn__d_matmul_bwd(acn_ctx *ctx, acn__node *n)
{
    float *ga = acn__g(n->in[0]), *gb = acn__g(n->in[1]);
    const float *a = acn__val(ctx, n->in[0]), *b = acn__val(ctx, n->in[1]), *dC = n->out->grad;
    int M, N, K, z, ta = n->iarg[0], tb = n->iarg[1], Z = n->iarg[2], shared = n->iarg[3];
    size_t sa, sb, sc;
    acn__mnk(n, &M, &N, &K);
    sa = (size_t)M * K;
    sb = shared ? 0 : (size_t)K * N;
    sc = (size_t)M * N;
    if (ga) {
        if (!ta) acn__dgemm(ctx, M, K, N, dC, 0, b, !tb, ga, 1, Z, sc, sb, sa, "matmul");   /* dA = dC op(B)^T */
        else acn__dgemm(ctx, K, M, N, b, tb, dC, 1, ga, 1, Z, sb, sc, sa, "matmul");        /* dA = op(B) dC^T */
    }
    if (gb)
        for (z = 0; z < (shared ? Z : 1); z++) {
            int nb = shared ? 1 : Z;
            const float *az = a + (size_t)z * sa, *dz = dC + (size_t)z * sc;
            if (!tb) acn__dgemm(ctx, K, N, M, az, !ta, dz, 0, gb, 1, nb, sa, sc, sb, "matmul"); /* dB = op(A)^T dC */
            else acn__dgemm(ctx, N, K, M, dz, 1, az, ta, gb, 1, nb, sc, sa, sb, "matmul");     /* dB = dC^T op(A) */
        }
}
/* device twin of acn__linear_fwd: out (R, O) = x (R, I) W^T, then + b on every row */
static void acn__d_linear_fwd(acn_ctx *ctx, acn__node *n)
{
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1], R = (int)(n->out->numel / (size_t)O);
    acn__dgemm(ctx, R, O, I, acn__val(ctx, n->in[0]), 0, acn__val(ctx, n->in[1]), 1, n->out->data, 0, 1, 0, 0, 0,
               "linear");
    if (n->in[2])
        ACN__CU_CALL(ctx, acn__cu_add_rows(ctx->cu, (size_t)R, O, acn__val(ctx, n->in[2]), n->out->data, O, "linear"));
}
/* device twin of acn__linear_bwd: dx += d W; dW += d^T x; db += column sums of d */
static void acn__d_linear_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]), *gW = acn__g(n->in[1]), *gb = acn__g(n->in[2]);
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1], R = (int)(n->out->numel / (size_t)O);
    const float *d = n->out->grad;
    if (gx) acn__dgemm(ctx, R, I, O, d, 0, acn__val(ctx, n->in[1]), 0, gx, !acn__fresh(n->in[0]), 1, 0, 0, 0, "linear");
    if (gW) acn__dgemm(ctx, O, I, R, d, 1, acn__val(ctx, n->in[0]), 0, gW, !acn__fresh(n->in[1]), 1, 0, 0, 0, "linear");
    if (gb) ACN__CU_CALL(ctx, acn__cu_colsum(ctx->cu, (size_t)R, (size_t)O, d, acn__zeroed(n->in[2]), 1, "linear"));
}
/* device twins of acn__gelu_fwd, acn__relu_fwd, acn__tanh_fwd and their backward */
static int acn__d_unary_op(const acn__node *n)
{
    return n->op == ACN__OP_RELU ? ACN__CU_RELU : n->op == ACN__OP_TANH ? ACN__CU_TANH
           : (n->iarg[0] & ACN_GELU_TANH) ? ACN__CU_GELU_TANH : ACN__CU_GELU;
}
static void acn__d_unary_fwd(acn_ctx *ctx, acn__node *n)
{
    ACN__CU_CALL(ctx, acn__cu_unary(ctx->cu, acn__d_unary_op(n), n->out->numel, acn__val(ctx, n->in[0]), n->out->data,
                                    acn__op_name(n->op)));
}
static void acn__d_unary_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    const float *xy = n->op == ACN__OP_TANH ? acn__val(ctx, n->out) : acn__val(ctx, n->in[0]); /* tanh' from y */
    if (gx) ACN__CU_CALL(ctx, acn__cu_unary_bwd(ctx->cu, acn__d_unary_op(n), n->out->numel, xy, n->out->grad, gx, 1,
                                                acn__op_name(n->op)));
}
/* device twin of acn__softmax_fwd: rows of the last axis, the mask broadcast as the add's */
static void acn__d_softmax_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__bcast bc;
    int C = n->out->shape[n->out->ndim - 1];
    memset(&bc, 0, sizeof bc);
    if (n->in[1]) acn__bcast_init(&bc, n->out, n->in[0], n->in[1]);
    ACN__CU_CALL(ctx, acn__cu_softmax(ctx->cu, n->out->numel / (size_t)C, C, 1.0f, acn__val(ctx, n->in[0]),
                                      n->in[1] ? acn__val(ctx, n->in[1]) : NULL, bc.n, bc.sb, n->out->data, "softmax"));
}
/* device twin of acn__softmax_bwd: dz = y (d - sum d y); dx += dz; the mask's
 * gradient sums dz over the dims it was broadcast along */
static void acn__d_softmax_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]), *gm = n->in[1] ? acn__g(n->in[1]) : NULL, *dz;
    const float *y = acn__val(ctx, n->out);
    int C = n->out->shape[n->out->ndim - 1];
    size_t R = n->out->numel / (size_t)C;
    acn__bcast bc;
    if (!gm) {
        if (gx) ACN__CU_CALL(ctx, acn__cu_softmax_bwd(ctx->cu, R, C, 1.0f, y, n->out->grad, gx, 1, "softmax"));
        return;
    }
    if (!(dz = acn__galloc_raw(ctx, ctx->gheap, n->out->numel))) return;
    acn__bcast_init(&bc, n->out, n->in[0], n->in[1]);
    ACN__CU_CALL(ctx, acn__cu_softmax_bwd(ctx->cu, R, C, 1.0f, y, n->out->grad, dz, 0, "softmax"));
    if (gx) ACN__CU_CALL(ctx, acn__cu_axpy(ctx->cu, n->out->numel, 1.0f, dz, gx, 1, "softmax"));
    ACN__CU_CALL(ctx, acn__cu_binary_bwd(ctx->cu, ACN__CU_ADD, 0, bc.n, bc.sb, bc.sa, n->in[1]->numel, dz, NULL, gm,
                                         "softmax"));
    acn__gfree(ctx->gheap, dz, n->out->numel);
}
/* device twins of acn__xent_fwd and acn__xsoft_fwd: the labels (kept on the
 * host in aux, after the rows' losses) go up with the forward (acn__d_aux) */
static void acn__d_xent_fwd(acn_ctx *ctx, acn__node *n)
{
    int C = n->in[0]->shape[n->in[0]->ndim - 1], soft = n->op == ACN__OP_XENT_SOFT;
    size_t R = n->in[0]->numel / (size_t)C;
    double *rows = (double *)acn__alloc_floats(ctx, 2 * R, acn__op_name(n->op));
    int *labels = soft ? NULL : (int *)acn__d_aux(ctx, n, (const double *)n->aux + R, R * sizeof(int), "cross_entropy");
    if (!rows || (!soft && !labels)) return;
    ACN__CU_CALL(ctx, acn__cu_xent(ctx->cu, R, C, acn__val(ctx, n->in[0]), labels, soft ? acn__val(ctx, n->in[1]) : NULL,
                                   soft ? 0 : n->iarg[0], n->farg[0], soft ? (int)R : n->iarg[1], rows, n->out->data,
                                   acn__op_name(n->op)));
}
static void acn__d_xent_bwd(acn_ctx *ctx, acn__node *n)
{
    int C = n->in[0]->shape[n->in[0]->ndim - 1], soft = n->op == ACN__OP_XENT_SOFT;
    size_t R = n->in[0]->numel / (size_t)C;
    float *gz = acn__g(n->in[0]), *gt = soft ? acn__g(n->in[1]) : NULL;
    if ((!gz && !gt) || (!soft && !n->iarg[1])) return;
    ACN__CU_CALL(ctx, acn__cu_xent_bwd(ctx->cu, R, C, acn__val(ctx, n->in[0]), (const int *)n->daux,
                                       soft ? acn__val(ctx, n->in[1]) : NULL, soft ? 0 : n->iarg[0], n->farg[0],
                                       soft ? (int)R : n->iarg[1], n->out->grad, gz, gt, acn__op_name(n->op)));
}
/* device twins of acn__ln_fwd and acn__ln_bwd (aux: mean (R), rstd (R), on the device) */
static void acn__d_ln_fwd(acn_ctx *ctx, acn__node *n)
{
    int D = n->out->shape[n->out->ndim - 1];
    size_t R = n->out->numel / (size_t)D;
    float *mean = (float *)n->aux;
    ACN__CU_CALL(ctx, acn__cu_ln_fwd(ctx->cu, R, D, acn__val(ctx, n->in[0]), n->in[1] ? acn__val(ctx, n->in[1]) : NULL,
                                     n->in[2] ? acn__val(ctx, n->in[2]) : NULL, n->farg[0], n->out->data, mean,
                                     mean + R, "layernorm"));
}
static void acn__d_ln_bwd(acn_ctx *ctx, acn__node *n)
{
    int D = n->out->shape[n->out->ndim - 1];
    size_t R = n->out->numel / (size_t)D;
    const float *mean = (const float *)n->aux;
    float *gg = n->in[1] ? acn__g(n->in[1]) : NULL, *gb = n->in[2] ? acn__g(n->in[2]) : NULL;
    ACN__CU_CALL(ctx, acn__cu_ln_bwd(ctx->cu, R, D, acn__val(ctx, n->in[0]), n->in[1] ? acn__val(ctx, n->in[1]) : NULL,
                                     mean, mean + R, n->out->grad, acn__g(n->in[0]), gg, gb, "layernorm"));
}
/* device twins of acn__transpose_fwd and acn__transpose_bwd (the same swap, added back) */
static void acn__d_transpose_fwd(acn_ctx *ctx, acn__node *n)
{
    int n4[4], d;
    for (d = 0; d < 4; d++) n4[d] = acn__dim4(n->in[0], d);
    ACN__CU_CALL(ctx, acn__cu_transpose(ctx->cu, n4, n->iarg[0], n->iarg[1], acn__val(ctx, n->in[0]), n->out->data, 0,
                                        "transpose"));
}
static void acn__d_transpose_bwd(acn_ctx *ctx, acn__node *n)
{
    int n4[4], d;
    float *gx = acn__g(n->in[0]);
    for (d = 0; d < 4; d++) n4[d] = acn__dim4(n->out, d);
    if (gx) ACN__CU_CALL(ctx, acn__cu_transpose(ctx->cu, n4, n->iarg[0], n->iarg[1], n->out->grad, gx, 1, "transpose"));
}
/* device twins of acn__reshape_fwd (a copy only when iarg[0] says so) and acn__reshape_bwd (dx += d) */
static void acn__d_reshape_fwd(acn_ctx *ctx, acn__node *n)
{
    if (n->iarg[0])
        acn__dcopy(ctx, n->out->data, acn__val(ctx, n->in[0]), n->out->numel * sizeof(float), ACN__D2D, "reshape");
}
static void acn__d_reshape_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    if (gx) ACN__CU_CALL(ctx, acn__cu_axpy(ctx->cu, n->out->numel, 1.0f, n->out->grad, gx, 1, "reshape"));
}
/* device twins of acn__dropout_fwd and acn__dropout_bwd: the mask acn_dropout
 * drew on the host (aux) goes up with the forward (acn__d_aux) */
static void acn__d_dropout_fwd(acn_ctx *ctx, acn__node *n)
{
    const unsigned char *keep = (const unsigned char *)acn__d_aux(ctx, n, n->aux, n->out->numel, "dropout");
    if (keep) ACN__CU_CALL(ctx, acn__cu_mask_scale(ctx->cu, n->out->numel, keep, n->farg[1], acn__val(ctx, n->in[0]),
                                                   n->out->data, 0, "dropout"));
}
static void acn__d_dropout_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    if (gx) ACN__CU_CALL(ctx, acn__cu_mask_scale(ctx->cu, n->out->numel, (const unsigned char *)n->daux, n->farg[1],
                                                 n->out->grad, gx, 1, "dropout"));
}
/* device twins of acn__lgelu_fwd and acn__lgelu_bwd: z = x W^T + b kept in
 * aux (computed once: iarg[1]), out = GELU(z); dz = d GELU'(z), then as linear */
static void acn__d_lgelu_fwd(acn_ctx *ctx, acn__node *n)
{
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1], R = (int)(n->out->numel / (size_t)O);
    float *z = (float *)n->aux;
    if (!n->iarg[1]) {
        acn__dgemm(ctx, R, O, I, acn__val(ctx, n->in[0]), 0, acn__val(ctx, n->in[1]), 1, z, 0, 1, 0, 0, 0, "linear_gelu");
        if (n->in[2]) ACN__CU_CALL(ctx, acn__cu_add_rows(ctx->cu, (size_t)R, O, acn__val(ctx, n->in[2]), z, O, "linear_gelu"));
    }
    ACN__CU_CALL(ctx, acn__cu_unary(ctx->cu, ACN__CU_GELU, n->out->numel, z, n->out->data, "linear_gelu"));
    n->iarg[1] = 1;
}
static void acn__d_lgelu_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]), *gW = acn__g(n->in[1]), *gb = n->in[2] ? acn__g(n->in[2]) : NULL, *dz;
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1], R = (int)(n->out->numel / (size_t)O);
    if (!(dz = acn__galloc_raw(ctx, ctx->gheap, n->out->numel))) return;
    ACN__CU_CALL(ctx, acn__cu_unary_bwd(ctx->cu, ACN__CU_GELU, n->out->numel, (const float *)n->aux, n->out->grad, dz,
                                        0, "linear_gelu"));
    if (gx) acn__dgemm(ctx, R, I, O, dz, 0, acn__val(ctx, n->in[1]), 0, gx, !acn__fresh(n->in[0]), 1, 0, 0, 0, "linear_gelu");
    if (gW) acn__dgemm(ctx, O, I, R, dz, 1, acn__val(ctx, n->in[0]), 0, gW, !acn__fresh(n->in[1]), 1, 0, 0, 0, "linear_gelu");
    if (gb) ACN__CU_CALL(ctx, acn__cu_colsum(ctx->cu, (size_t)R, (size_t)O, dz, acn__zeroed(n->in[2]), 1, "linear_gelu"));
    acn__gfree(ctx->gheap, dz, n->out->numel);
}
/* device twins of acn__lmid_fwd and acn__lmid_bwd, per batch element b:
 * out_b (J, D) = W (J, T) x_b (T, D) + b 1^T;  dx_b += W^T d_b;
 * dW += d_b x_b^T (b in order);  db[j] += sum_{b, d} d_b[j, d] */
static void acn__d_lmid_fwd(acn_ctx *ctx, acn__node *n)
{
    int B = n->in[0]->shape[0], T = n->in[0]->shape[1], D = n->in[0]->shape[2], J = n->in[1]->shape[0];
    acn__dgemm(ctx, J, D, T, acn__val(ctx, n->in[1]), 0, acn__val(ctx, n->in[0]), 0, n->out->data, 0, B, 0,
               (size_t)T * D, (size_t)J * D, "linear_mid");
    if (n->in[2]) { /* + bias[j] on row j of every b: an add broadcast over (B, 1, D), in place */
        int n4[4];
        size_t so[4], sb[4];
        n4[0] = 1; n4[1] = B; n4[2] = J; n4[3] = D;
        so[0] = 0; so[1] = (size_t)J * D; so[2] = (size_t)D; so[3] = 1;
        sb[0] = sb[1] = sb[3] = 0; sb[2] = 1;
        ACN__CU_CALL(ctx, acn__cu_binary(ctx->cu, ACN__CU_ADD, n4, so, sb, n->out->data, acn__val(ctx, n->in[2]),
                                         n->out->data, "linear_mid"));
    }
}
static void acn__d_lmid_bwd(acn_ctx *ctx, acn__node *n)
{
    int B = n->in[0]->shape[0], T = n->in[0]->shape[1], D = n->in[0]->shape[2], J = n->in[1]->shape[0], b;
    float *gx = acn__g(n->in[0]), *gW = acn__g(n->in[1]), *gb = n->in[2] ? acn__zeroed(n->in[2]) : NULL;
    const float *x = acn__val(ctx, n->in[0]), *d = n->out->grad;
    if (gx) acn__dgemm(ctx, T, D, J, acn__val(ctx, n->in[1]), 1, d, 0, gx, !acn__fresh(n->in[0]), B, 0, (size_t)J * D,
                       (size_t)T * D, "linear_mid");
    if (gW) {
        int add = !acn__fresh(n->in[1]);
        for (b = 0; b < B && !ctx->status; b++)
            acn__dgemm(ctx, J, T, D, d + (size_t)b * J * D, 0, x + (size_t)b * T * D, 1, gW, b > 0 || add, 1, 0, 0, 0,
                       "linear_mid");
    }
    if (gb) { /* d (B, J, D) summed over b and d into (J) */
        int n4[4];
        size_t sb[4], so[4];
        n4[0] = 1; n4[1] = B; n4[2] = J; n4[3] = D;
        sb[0] = sb[1] = sb[3] = 0; sb[2] = 1;
        so[0] = 0; so[1] = (size_t)J * D; so[2] = (size_t)D; so[3] = 1;
        ACN__CU_CALL(ctx, acn__cu_binary_bwd(ctx->cu, ACN__CU_ADD, 0, n4, sb, so, (size_t)J, d, NULL, gb, "linear_mid"));
    }
}
/* device twins of acn__ffn_fwd and acn__ffn_bwd. On a GPU context aux holds
 * z = x W1^T + b1 (R, H) and, when there is room (iarg[0]), h = GELU(z);
 * without it h lives in the arena for the forward and is made again from z
 * in the gradient heap for backward. */
static void acn__d_ffn_fwd(acn_ctx *ctx, acn__node *n)
{
    int H = n->in[1]->shape[0], I = n->in[1]->shape[1], O = n->in[3]->shape[0];
    int R = (int)(n->out->numel / (size_t)O);
    float *z = (float *)n->aux, *h = n->iarg[0] ? z + (size_t)R * H : acn__alloc_floats(ctx, (size_t)R * H, "ffn");
    if (!h) return;
    acn__dgemm(ctx, R, H, I, acn__val(ctx, n->in[0]), 0, acn__val(ctx, n->in[1]), 1, z, 0, 1, 0, 0, 0, "ffn");
    if (n->in[2]) ACN__CU_CALL(ctx, acn__cu_add_rows(ctx->cu, (size_t)R, H, acn__val(ctx, n->in[2]), z, H, "ffn"));
    ACN__CU_CALL(ctx, acn__cu_unary(ctx->cu, ACN__CU_GELU, (size_t)R * H, z, h, "ffn"));
    acn__dgemm(ctx, R, O, H, h, 0, acn__val(ctx, n->in[3]), 1, n->out->data, 0, 1, 0, 0, 0, "ffn");
    if (n->in[4]) ACN__CU_CALL(ctx, acn__cu_add_rows(ctx->cu, (size_t)R, O, acn__val(ctx, n->in[4]), n->out->data, O, "ffn"));
}
/* dz = (d W2) GELU'(z);  dW2 += d^T h;  db2 += sum_r d;  dx += dz W1;  dW1 += dz^T x;  db1 += sum_r dz */
static void acn__d_ffn_bwd(acn_ctx *ctx, acn__node *n)
{
    int H = n->in[1]->shape[0], I = n->in[1]->shape[1], O = n->in[3]->shape[0];
    int R = (int)(n->out->numel / (size_t)O);
    size_t RH = (size_t)R * H;
    float *gx = acn__g(n->in[0]), *gW1 = acn__g(n->in[1]), *gb1 = acn__g(n->in[2]);
    float *gW2 = acn__g(n->in[3]), *gb2 = acn__g(n->in[4]), *dz, *h = NULL;
    const float *z = (const float *)n->aux, *d = n->out->grad;
    if (!(dz = acn__galloc_raw(ctx, ctx->gheap, RH))) return;
    acn__dgemm(ctx, R, H, O, d, 0, acn__val(ctx, n->in[3]), 0, dz, 0, 1, 0, 0, 0, "ffn");
    ACN__CU_CALL(ctx, acn__cu_unary_bwd(ctx->cu, ACN__CU_GELU, RH, z, dz, dz, 0, "ffn"));
    if (gW2) {
        if (n->iarg[0]) h = (float *)z + RH;
        else if ((h = acn__galloc_raw(ctx, ctx->gheap, RH)))
            ACN__CU_CALL(ctx, acn__cu_unary(ctx->cu, ACN__CU_GELU, RH, z, h, "ffn"));
        if (h) acn__dgemm(ctx, O, H, R, d, 1, h, 0, gW2, !acn__fresh(n->in[3]), 1, 0, 0, 0, "ffn");
        if (h && !n->iarg[0]) acn__gfree(ctx->gheap, h, RH);
    }
    if (gb2) ACN__CU_CALL(ctx, acn__cu_colsum(ctx->cu, (size_t)R, (size_t)O, d, acn__zeroed(n->in[4]), 1, "ffn"));
    if (gx) acn__dgemm(ctx, R, I, H, dz, 0, acn__val(ctx, n->in[1]), 0, gx, !acn__fresh(n->in[0]), 1, 0, 0, 0, "ffn");
    if (gW1) acn__dgemm(ctx, H, I, R, dz, 1, acn__val(ctx, n->in[0]), 0, gW1, !acn__fresh(n->in[1]), 1, 0, 0, 0, "ffn");
    if (gb1) ACN__CU_CALL(ctx, acn__cu_colsum(ctx->cu, (size_t)R, (size_t)H, dz, acn__zeroed(n->in[2]), 1, "ffn"));
    acn__gfree(ctx->gheap, dz, RH);
}
/* device twin of acn__lar_fwd: the product with its bias, then out += skip
 * and the ReLU in place (the same values: the CPU's epilogue does the same
 * two operations on each value) */
static void acn__d_lar_fwd(acn_ctx *ctx, acn__node *n)
{
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1], R = (int)(n->out->numel / (size_t)O);
    acn__dgemm(ctx, R, O, I, acn__val(ctx, n->in[0]), 0, acn__val(ctx, n->in[1]), 1, n->out->data, 0, 1, 0, 0, 0,
               "linear_add_relu");
    if (n->in[2])
        ACN__CU_CALL(ctx, acn__cu_add_rows(ctx->cu, (size_t)R, O, acn__val(ctx, n->in[2]), n->out->data, O,
                                           "linear_add_relu"));
    ACN__CU_CALL(ctx, acn__cu_axpy(ctx->cu, n->out->numel, 1.0f, acn__val(ctx, n->in[3]), n->out->data, 1,
                                   "linear_add_relu"));
    ACN__CU_CALL(ctx, acn__cu_unary(ctx->cu, ACN__CU_RELU, n->out->numel, n->out->data, n->out->data, "linear_add_relu"));
}
/* device twin of acn__lar_bwd: ds = d [out > 0] in place; dskip += ds; then
 * as acn__d_linear_bwd on ds */
static void acn__d_lar_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]), *gW = acn__g(n->in[1]), *gb = acn__g(n->in[2]), *gs = acn__g(n->in[3]);
    int O = n->in[1]->shape[0], I = n->in[1]->shape[1], R = (int)(n->out->numel / (size_t)O);
    float *ds = n->out->grad;
    ACN__CU_CALL(ctx, acn__cu_unary_bwd(ctx->cu, ACN__CU_RELU, n->out->numel, n->out->data, ds, ds, 0,
                                        "linear_add_relu"));
    if (gs) ACN__CU_CALL(ctx, acn__cu_axpy(ctx->cu, n->out->numel, 1.0f, ds, gs, !acn__fresh(n->in[3]), "linear_add_relu"));
    if (gx) acn__dgemm(ctx, R, I, O, ds, 0, acn__val(ctx, n->in[1]), 0, gx, !acn__fresh(n->in[0]), 1, 0, 0, 0,
                       "linear_add_relu");
    if (gW) acn__dgemm(ctx, O, I, R, ds, 1, acn__val(ctx, n->in[0]), 0, gW, !acn__fresh(n->in[1]), 1, 0, 0, 0,
                       "linear_add_relu");
    if (gb) ACN__CU_CALL(ctx, acn__cu_colsum(ctx->cu, (size_t)R, (size_t)O, ds, acn__zeroed(n->in[2]), 1,
                                             "linear_add_relu"));
}
/* device twins of acn__concat_fwd/bwd and acn__slice_fwd/bwd: each input is
 * an (outer, len) block of rows inside the (outer, row) output */
static void acn__d_concat_fwd(acn_ctx *ctx, acn__node *n)
{
    int a = n->iarg[0], k;
    size_t outer = acn__prod(n->out, 0, a), inner = acn__prod(n->out, a + 1, n->out->ndim);
    size_t row = (size_t)n->out->shape[a] * inner, off = 0;
    for (k = 0; k < n->n_in; k++) {
        size_t len = (size_t)n->in[k]->shape[a] * inner;
        ACN__CU_CALL(ctx, acn__cu_copy2d(ctx->cu, outer, len, acn__val(ctx, n->in[k]), len, n->out->data + off, row, 0,
                                         "concat"));
        off += len;
    }
}
static void acn__d_concat_bwd(acn_ctx *ctx, acn__node *n)
{
    int a = n->iarg[0], k;
    size_t outer = acn__prod(n->out, 0, a), inner = acn__prod(n->out, a + 1, n->out->ndim);
    size_t row = (size_t)n->out->shape[a] * inner, off = 0;
    for (k = 0; k < n->n_in; k++) {
        size_t len = (size_t)n->in[k]->shape[a] * inner;
        float *g = acn__g(n->in[k]);
        if (g) ACN__CU_CALL(ctx, acn__cu_copy2d(ctx->cu, outer, len, n->out->grad + off, row, g, len, 1, "concat"));
        off += len;
    }
}
static void acn__d_slice_fwd(acn_ctx *ctx, acn__node *n)
{
    int a = n->iarg[0];
    size_t outer = acn__prod(n->out, 0, a), inner = acn__prod(n->out, a + 1, n->out->ndim);
    size_t len = (size_t)n->out->shape[a] * inner, row = (size_t)n->in[0]->shape[a] * inner;
    ACN__CU_CALL(ctx, acn__cu_copy2d(ctx->cu, outer, len, acn__val(ctx, n->in[0]) + (size_t)n->iarg[1] * inner, row,
                                     n->out->data, len, 0, "slice"));
}
static void acn__d_slice_bwd(acn_ctx *ctx, acn__node *n)
{
    float *gx = acn__g(n->in[0]);
    int a = n->iarg[0];
    size_t outer = acn__prod(n->out, 0, a), inner = acn__prod(n->out, a + 1, n->out->ndim);
    size_t len = (size_t)n->out->shape[a] * inner, row = (size_t)n->in[0]->shape[a] * inner;
    if (gx) ACN__CU_CALL(ctx, acn__cu_copy2d(ctx->cu, outer, len, n->out->grad, len, gx + (size_t)n->iarg[1] * inner,
                                             row, 1, "slice"));
}
/* device twins of acn__patches_fwd (gather) and acn__patches_bwd (scatter, added) */
static void acn__d_patches_fwd(acn_ctx *ctx, acn__node *n)
{
    const acn_tensor *x = n->in[0];
    ACN__CU_CALL(ctx, acn__cu_patches(ctx->cu, x->shape[0], x->shape[1], x->shape[2], x->shape[3], n->iarg[0],
                                      acn__val(ctx, n->in[0]), n->out->data, 0, "patches"));
}
static void acn__d_patches_bwd(acn_ctx *ctx, acn__node *n)
{
    const acn_tensor *x = n->in[0];
    float *gx = acn__g(n->in[0]);
    if (gx) ACN__CU_CALL(ctx, acn__cu_patches(ctx->cu, x->shape[0], x->shape[1], x->shape[2], x->shape[3], n->iarg[0],
                                              n->out->grad, gx, 1, "patches"));
}
/* device twins of acn__embed_fwd and acn__embed_bwd: the ids (host, aux) go
 * up with the forward (acn__d_aux) */
static void acn__d_embed_fwd(acn_ctx *ctx, acn__node *n)
{
    int D = n->in[0]->shape[1];
    size_t count = n->out->numel / (size_t)D;
    const int *ids = (const int *)acn__d_aux(ctx, n, n->aux, count * sizeof(int), "embedding");
    if (ids) ACN__CU_CALL(ctx, acn__cu_embed(ctx->cu, count, D, acn__val(ctx, n->in[0]), ids, n->out->data, "embedding"));
}
static void acn__d_embed_bwd(acn_ctx *ctx, acn__node *n)
{
    int D = n->in[0]->shape[1];
    size_t count = n->out->numel / (size_t)D;
    float *gt = acn__g(n->in[0]);
    if (gt) ACN__CU_CALL(ctx, acn__cu_embed_bwd(ctx->cu, count, D, n->out->grad, (const int *)n->daux, gt, "embedding"));
}
/* device twins of acn__attn_fwd and acn__attn_bwd, head by head, each a
 * product batched over b on the columns h dh .. h dh + dh - 1 where they lie:
 *   P[b, h] = softmax(s q_bh k_bh^T + mask[b]) (kept in aux, (B, H, Tq, Tk));  out_bh = P v_bh
 *   dP = G_bh v_bh^T;  dv_bh += P^T G_bh;  dS = P (dP - rowsum(P dP));  dmask[b, j] += sum_i dS
 *   dq_bh += s dS k_bh;  dk_bh += s dS^T q_bh */
static void acn__d_attn_fwd(acn_ctx *ctx, acn__node *n)
{
    acn__attn_geom g = acn__attn_where(n);
    int B = n->out->shape[0], H = n->iarg[0], dh = g.D / H, h, n4[4];
    const float *q = acn__val(ctx, n->in[0]) + g.qo, *k = acn__val(ctx, n->in[1]) + g.ko, *v = acn__val(ctx, n->in[2]) + g.vo;
    float *P = (float *)n->aux;
    size_t PT = (size_t)g.Tq * g.Tk, ms[4];
    for (h = 0; h < H && !ctx->status; h++)
        ACN__CU_CALL(ctx, acn__cu_gemm(ctx->cu, g.Tq, g.Tk, dh, q + (size_t)h * dh, (int)g.lq, 0, k + (size_t)h * dh,
                                       (int)g.lk, 1, P + (size_t)h * PT, g.Tk, 0, B, (long long)(g.Tq * g.lq),
                                       (long long)(g.Tk * g.lk), (long long)(H * PT), "attention"));
    n4[0] = B; n4[1] = H; n4[2] = g.Tq; n4[3] = g.Tk;
    ms[0] = (size_t)g.Tk; ms[1] = ms[2] = 0; ms[3] = 1; /* the mask (B, Tk) over every head and query */
    ACN__CU_CALL(ctx, acn__cu_softmax(ctx->cu, (size_t)B * H * g.Tq, g.Tk, 1.0f / sqrtf((float)dh), P,
                                      n->in[3] ? acn__val(ctx, n->in[3]) : NULL, n4, ms, P, "attention"));
    for (h = 0; h < H && !ctx->status; h++)
        ACN__CU_CALL(ctx, acn__cu_gemm(ctx->cu, g.Tq, dh, g.Tk, P + (size_t)h * PT, g.Tk, 0, v + (size_t)h * dh,
                                       (int)g.lv, 0, n->out->data + (size_t)h * dh, g.D, 0, B, (long long)(H * PT),
                                       (long long)(g.Tk * g.lv), (long long)((size_t)g.Tq * g.D), "attention"));
}
static void acn__d_attn_bwd(acn_ctx *ctx, acn__node *n)
{
    acn__attn_geom g = acn__attn_where(n);
    int B = n->out->shape[0], H = n->iarg[0], dh = g.D / H, h, n4[4];
    const float *q = acn__val(ctx, n->in[0]) + g.qo, *k = acn__val(ctx, n->in[1]) + g.ko, *v = acn__val(ctx, n->in[2]) + g.vo;
    const float *P = (const float *)n->aux, *G = n->out->grad;
    float *gq = acn__g(n->in[0]), *gk = acn__g(n->in[1]), *gv = acn__g(n->in[2]);
    float *gm = n->in[3] ? acn__g(n->in[3]) : NULL, *dS, s = 1.0f / sqrtf((float)dh);
    size_t PT = (size_t)g.Tq * g.Tk, all = (size_t)B * H * PT, ms[4], ss[4];
    long long sP = (long long)(H * PT), sG = (long long)((size_t)g.Tq * g.D);
    if (gq) gq += g.qo;
    if (gk) gk += g.ko;
    if (gv) gv += g.vo;
    if (!(dS = acn__galloc_raw(ctx, ctx->gheap, all))) return;
    for (h = 0; h < H && !ctx->status; h++) {
        size_t c = (size_t)h * dh;
        ACN__CU_CALL(ctx, acn__cu_gemm(ctx->cu, g.Tq, g.Tk, dh, G + c, g.D, 0, v + c, (int)g.lv, 1, dS + (size_t)h * PT,
                                       g.Tk, 0, B, sG, (long long)(g.Tk * g.lv), sP, "attention"));
        if (gv) ACN__CU_CALL(ctx, acn__cu_gemm(ctx->cu, g.Tk, dh, g.Tq, P + (size_t)h * PT, g.Tk, 1, G + c, g.D, 0,
                                               gv + c, (int)g.lv, 1, B, sP, sG, (long long)(g.Tk * g.lv), "attention"));
    }
    ACN__CU_CALL(ctx, acn__cu_softmax_bwd(ctx->cu, (size_t)B * H * g.Tq, g.Tk, 1.0f, P, dS, dS, 0, "attention"));
    if (gm) {
        n4[0] = B; n4[1] = H; n4[2] = g.Tq; n4[3] = g.Tk;
        ms[0] = (size_t)g.Tk; ms[1] = ms[2] = 0; ms[3] = 1;
        ss[0] = (size_t)H * PT; ss[1] = PT; ss[2] = (size_t)g.Tk; ss[3] = 1;
        ACN__CU_CALL(ctx, acn__cu_binary_bwd(ctx->cu, ACN__CU_ADD, 0, n4, ms, ss, n->in[3]->numel, dS, NULL, gm,
                                             "attention"));
    }
    ACN__CU_CALL(ctx, acn__cu_axpy(ctx->cu, all, s, dS, dS, 0, "attention"));
    for (h = 0; h < H && !ctx->status; h++) {
        size_t c = (size_t)h * dh;
        if (gq) ACN__CU_CALL(ctx, acn__cu_gemm(ctx->cu, g.Tq, dh, g.Tk, dS + (size_t)h * PT, g.Tk, 0, k + c, (int)g.lk, 0,
                                               gq + c, (int)g.lq, 1, B, sP, (long long)(g.Tk * g.lk),
                                               (long long)(g.Tq * g.lq), "attention"));
        if (gk) ACN__CU_CALL(ctx, acn__cu_gemm(ctx->cu, g.Tk, dh, g.Tq, dS + (size_t)h * PT, g.Tk, 1, q + c, (int)g.lq, 0,
                                               gk + c, (int)g.lk, 1, B, sP, (long long)(g.Tq * g.lq),
                                               (long long)(g.Tk * g.lk), "attention"));
    }
    acn__gfree(ctx->gheap, dS, all);
}
#endif /* ACN_CUDA */

/* ======================================================================== */
/* Fast paths: the thread pool and the packed SIMD matrix kernel            */
/* ======================================================================== */
/* Nothing here changes what is computed, only how fast: acn__gemm_ref (in
 * the matmul section) is the definition, and every test passes on each
 * SIMD level and thread count. The SIMD kernel is BLIS-style: op(A) and
 * op(B) are copied ("packed") block by block into panels that a small
 * register-blocked micro-kernel streams through; transposes are handled by
 * the packing, so one micro-kernel serves all four cases. */

/* ---- the thread pool ---------------------------------------------------- */
/* A task is cut into `parts` shares, and fn(arg, part, parts, tid) computes
 * one of them on thread tid (the caller is thread 0; tid only picks the
 * thread's own scratch). Threads claim parts one at a time from a shared
 * counter until none are left, so no thread ever waits for another to
 * start: a worker that is late (asleep, or its core busy elsewhere) finds
 * its parts done by the others, and a task on a busy machine costs about
 * what it costs on one thread. A result never depends on who computed a
 * part, nor on how many threads there are: the parts of a task are the
 * same for every thread count, and no sum is split across them.
 *
 * Every parallel call states its work, in nanoseconds of one core (the
 * ACN__NS_* rates), and acn__parallel decides: under ACN_PAR_MIN_NS, or
 * under the pool's threshold, it runs on the caller alone, since handing it
 * to another core would cost more than it saves. The threshold is measured:
 * it follows what shared tasks have lately cost (waiting for a worker that
 * came late) against what they saved (acn__grain_update). It is near 0 on
 * an idle machine and rises when other programs hold the workers' cores.
 * Small tasks are also weighed together, in windows, shared against all on
 * the caller (acn__mode_update). So whether a task is shared depends on the
 * machine's load and on where the host has put its cores; its result
 * does not, since no task's result depends on its number of parts (an
 * element-wise op is cut at multiples of 16 values: acn__par_elems).
 *
 * A worker that finishes spins (with the CPU's pause instruction) for up to
 * ACN_SPIN_US microseconds, watching for the next task, before it sleeps on
 * a condition variable. The tasks of a training step come microseconds
 * apart, so they find the workers awake; waking a sleeping worker means
 * waking a halted core, which on a virtual machine can take from tens to
 * hundreds of microseconds. Between steps (data loading, printing) nothing
 * spins for longer than the budget. The caller, once no part is left to
 * claim, waits for the parts in progress the same way: spin, then sleep.
 *
 * The hand-over is lock-free on the fast path. `claim` holds, in one word,
 * the task's number, its count of parts and the next unclaimed part; a
 * thread claims a part with a compare-and-swap that fails once the task has
 * changed or has no part left. The caller writes a new task only after the
 * last one is done, so a worker that wakes late and reads a newer fn with
 * an older number cannot run it. A sleeper announces itself (`sleepers`)
 * and looks at `gen` again under the mutex; the caller looks at `sleepers`
 * after publishing `gen`: with sequentially consistent atomics one of the
 * two sees the other, and no wake-up is lost.
 * `done` and `waiting` pair the same way at the end of a task. */
#define ACN__PARTS_MAX (4 * ACN__MAX_THREADS)
/* the two ways of running small tasks (see acn__mode_update) */
#define ACN__MODE_MAX 5e5        /* tasks under 500 us of work are small   */
#define ACN__MODE_CALLS 2048u    /* a window: at least this many tasks     */
#define ACN__MODE_NS 1e7         /*   and 10 ms of the caller's time       */
#define ACN__MODE_MARGIN 1.03
#define ACN__MODE_GAP_MIN 2
#define ACN__MODE_FIRST 4        /* windows before a new pool's first trial */
#define ACN__MODE_GAP_MAX 32

struct acn__pool;
struct acn__who { struct acn__pool *pool; int tid, cpu; }; /* a worker; cpu < 0: not pinned */

typedef struct acn__pool {
    int n;
#ifdef ACN__THREADS
    pthread_t th[ACN__MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t go, done_cv;
    acn__task fn;               /* atomic: the task, set before gen moves  */
    void *arg;                  /* atomic                                  */
    unsigned gen;               /* atomic: the task's number               */
    unsigned long long claim;   /* atomic: gen << 32 | parts << 16 | next  */
    unsigned done;              /* atomic: parts finished                  */
    unsigned sleepers;          /* atomic: workers asleep on `go`          */
    unsigned waiting;           /* atomic: the caller asleep on `done_cv`  */
    unsigned quit;              /* atomic                                  */
    double grain;               /* the caller's: ns of work from which a   */
    double lost, help, rate;    /*   task is shared, and what it follows   */
                                /*   (see acn__grain_update)               */
    int solo, trial;            /* the caller's: small tasks all on the    */
    int wait, gap;              /*   caller, or as the threshold says; a   */
    unsigned calls;             /*   window that tries the other way; the  */
    double wwork, wtime;        /*   window so far; each way's last rate   */
    double mrate[2];            /*   (see acn__mode_update)                */
    struct acn__who who[ACN__MAX_THREADS];
#ifdef ACN__AFFINITY
    int pinned;                 /* counted in the caller's acn__pins       */
    pthread_t caller;
#endif
#endif
} acn__pool;
#ifdef ACN__AFFINITY
/* Per thread: how many live pools have pinned it, and the cores it could
 * use before the first of them. A second pool made by a pinned thread picks
 * its workers' cores from that set, not from the one core it is left. */
static __thread int acn__pins;
static __thread cpu_set_t acn__mask_before;
#endif

#ifdef ACN__THREADS
#define ACN__LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define ACN__STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define ACN__ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#define ACN__SUB(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_SEQ_CST)

/* Spins while (*p == v) == equal, for at most the spin budget; returns the
 * last value read. The budget is counted in time-stamp cycles on x86 (about
 * 3 per nanosecond on current cores), elsewhere in loop turns. */
static unsigned acn__spin(const unsigned *p, unsigned v, int equal)
{
    unsigned x = ACN__LOAD(p);
#if defined(__x86_64__) || defined(__i386__)
    unsigned long long end = __builtin_ia32_rdtsc() + (unsigned long long)ACN_SPIN_US * 3000u;
    while ((x == v) == equal && __builtin_ia32_rdtsc() < end) {
        __builtin_ia32_pause();
        x = ACN__LOAD(p);
    }
#else
    long turns = (long)ACN_SPIN_US * 100;
    while ((x == v) == equal && turns-- > 0) x = ACN__LOAD(p);
#endif
    return x;
}
/* Claims and runs parts of task `gen` until none is left (or the task has
 * moved on); returns how many it ran. */
static int acn__run_parts(acn__pool *pool, unsigned gen, acn__task fn, void *arg, int tid)
{
    int ran = 0;
    for (;;) {
        unsigned long long c = ACN__LOAD(&pool->claim);
        unsigned parts = (unsigned)(c >> 16) & 0xFFFFu, next = (unsigned)c & 0xFFFFu;
        if ((unsigned)(c >> 32) != gen || next >= parts) return ran;
        if (!__atomic_compare_exchange_n(&pool->claim, &c, c + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) continue;
        fn(arg, (int)next, (int)parts, tid);
        ran++;
        if (ACN__ADD(&pool->done, 1u) == parts && ACN__LOAD(&pool->waiting)) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done_cv);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}
static void *acn__worker(void *p)
{
    struct acn__who *w = (struct acn__who *)p;
    acn__pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        if (acn__spin(&pool->gen, seen, 1) == seen) { /* nothing came: sleep */
            pthread_mutex_lock(&pool->mu);
            ACN__ADD(&pool->sleepers, 1u);
            while (ACN__LOAD(&pool->gen) == seen && !ACN__LOAD(&pool->quit)) pthread_cond_wait(&pool->go, &pool->mu);
            ACN__SUB(&pool->sleepers, 1u);
            pthread_mutex_unlock(&pool->mu);
        }
        if (ACN__LOAD(&pool->quit)) break;
        seen = gen = ACN__LOAD(&pool->gen);
        /* fn and arg may already belong to a later task: the claim (tagged
         * with gen) then fails, and nothing runs */
        acn__run_parts(pool, gen, __atomic_load_n(&pool->fn, __ATOMIC_SEQ_CST),
                       __atomic_load_n(&pool->arg, __ATOMIC_SEQ_CST), w->tid);
    }
    return NULL;
}
#endif

static void acn__pool_stop(acn__pool *pool)
{
    if (!pool) return;
#ifdef ACN__THREADS
    {
        int t;
        pthread_mutex_lock(&pool->mu);
        ACN__STORE(&pool->quit, 1u);
        ACN__ADD(&pool->gen, 1u);
        pthread_cond_broadcast(&pool->go);
        pthread_mutex_unlock(&pool->mu);
        for (t = 1; t < pool->n; t++) pthread_join(pool->th[t], NULL);
#ifdef ACN__AFFINITY
        if (pool->pinned && pthread_equal(pool->caller, pthread_self()) && --acn__pins == 0)
            sched_setaffinity(0, sizeof acn__mask_before, &acn__mask_before);
#endif
        pthread_mutex_destroy(&pool->mu);
        pthread_cond_destroy(&pool->go);
        pthread_cond_destroy(&pool->done_cv);
    }
#endif
    ACN_FREE(pool);
}

#ifdef ACN__AFFINITY
/* Pins the caller to the core it is on and picks a core for each worker
 * (who[t].cpu), from the cores the caller may use (see THREADS). */
static void acn__pin(acn__pool *pool, int n)
{
    cpu_set_t all, one;
    int me = sched_getcpu(), k = 1, c, t;
    const char *e = getenv("ACN_AFFINITY");
    if ((e && !strcmp(e, "0")) || me < 0 || me >= CPU_SETSIZE) return;
    if (acn__pins) all = acn__mask_before;
    else if (sched_getaffinity(0, sizeof all, &all)) return;
    if (!CPU_ISSET(me, &all) || CPU_COUNT(&all) < n) return;
    for (c = (me + 1) % CPU_SETSIZE; k < n && c != me; c = (c + 1) % CPU_SETSIZE)
        if (CPU_ISSET(c, &all)) pool->who[k++].cpu = c;
    if (!acn__pins) {
        CPU_ZERO(&one);
        CPU_SET(me, &one);
        if (sched_setaffinity(0, sizeof one, &one)) {
            for (t = 1; t < n; t++) pool->who[t].cpu = -1;
            return;
        }
        acn__mask_before = all;
    }
    acn__pins++;
    pool->caller = pthread_self();
    pool->pinned = 1;
}
#endif

#ifdef ACN__THREADS
/* Starts worker t, on its own core when acn__pin picked one (it starts
 * there: no moment on the caller's core); 0 on success. */
static int acn__spawn(acn__pool *pool, int t)
{
#ifdef ACN__AFFINITY
    if (pool->who[t].cpu >= 0) {
        pthread_attr_t attr;
        cpu_set_t one;
        int r;
        CPU_ZERO(&one);
        CPU_SET(pool->who[t].cpu, &one);
        if (pthread_attr_init(&attr)) return 1;
        r = pthread_attr_setaffinity_np(&attr, sizeof one, &one) ||
            pthread_create(&pool->th[t], &attr, acn__worker, &pool->who[t]);
        pthread_attr_destroy(&attr);
        return r;
    }
#endif
    return pthread_create(&pool->th[t], NULL, acn__worker, &pool->who[t]) != 0;
}
#endif
/* A pool of n threads (n - 1 workers); NULL when n is 1 or on failure. */
static acn__pool *acn__pool_start(int n)
{
#ifdef ACN__THREADS
    acn__pool *pool;
    int t;
    if (n < 2) return NULL;
    if (!(pool = (acn__pool *)ACN_MALLOC(sizeof *pool))) return NULL;
    memset(pool, 0, sizeof *pool);
    pool->n = 1;
    if (pthread_mutex_init(&pool->mu, NULL)) { ACN_FREE(pool); return NULL; }
    pthread_cond_init(&pool->go, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    for (t = 0; t < n; t++) pool->who[t].cpu = -1;
    pool->help = pool->rate = 1.0;
    pool->wait = ACN__MODE_FIRST;
    pool->gap = ACN__MODE_GAP_MIN;
#ifdef ACN__AFFINITY
    acn__pin(pool, n);
#endif
    for (t = 1; t < n; t++) {
        pool->who[t].pool = pool;
        pool->who[t].tid = t;
        pool->n = t + 1;
        if (acn__spawn(pool, t)) {
            pool->n = t;
            break;
        }
    }
    if (pool->n < 2) { acn__pool_stop(pool); return NULL; }
    return pool;
#else
    (void)n;
    return NULL;
#endif
}

#ifdef ACN__THREADS
/* A clock for the pool's measure of what sharing costs: nanoseconds, or on
 * x86 without POSIX's clock (acn.h not the first header in strict C99)
 * the time-stamp counter's ticks; the unit cancels in the threshold (see
 * below). 0 where neither is known: the threshold then stays 0, and only
 * ACN_PAR_MIN_NS decides; and no window of small tasks closes (they stay
 * shared). */
static unsigned long long acn__clock(void)
{
#if defined(CLOCK_MONOTONIC)
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000u + (unsigned long long)t.tv_nsec;
#elif defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return 0;
#endif
}
/* t1 - t0 of acn__clock, 0 if the clock went back (counters of two cores) */
static double acn__elapsed(unsigned long long t0, unsigned long long t1) { return t1 > t0 ? (double)(t1 - t0) : 0.0; }

/* The threshold follows what sharing has cost and what it has saved.
 * After a shared task of `parts` parts, the caller has run `mine` of them
 * in `own` clock units, and then waited `wait` for the rest:
 * - What it cost. Waiting for about one part (one a worker had just begun)
 *   is the normal end of a shared task; a longer wait means a worker was
 *   late: its core was running another program, or it slept and woke
 *   slowly. `lost` is the recent average of that excess, each sample at
 *   most ACN__GRAIN_MAX (one stall of the whole process, a debugger's say,
 *   does not stand for the machine).
 * - What it saved: the parts the other threads ran. `help` is the recent
 *   average of their share of the parts, against a fair share (1: the
 *   others ran (n - 1) / n of the parts; 0: the caller ran them all, as it
 *   does while the workers' cores are busy elsewhere). `rate` is the
 *   recent average of the caller's time per part against the part's
 *   stated work, which is a nominal figure.
 * Sharing work W then saves about W rate help (n - 1) / n, and the
 * threshold is the W for which that is twice `lost` (a margin for the
 * spread of both): the clock's unit is in both `lost` and `rate`, so the
 * threshold is in nanoseconds of stated work whatever the clock counts.
 * It stays under ACN__GRAIN_MAX (2 ms). The averages run over about 1024
 * shared tasks: a late worker costs a scheduler's time slice (about a
 * millisecond) but comes only once in hundreds of tasks on a busy machine.
 * A task kept on the caller by the threshold lets `lost` decay a little
 * (over about 16384 such tasks), so a machine that is idle again gets its
 * threads back. On an idle machine `lost` stays near 0, and only
 * ACN_PAR_MIN_NS decides. (On the project's AMD EPYC, family 26 model 2,
 * 2 cores, make demo took 4.5 s on 2 threads against 6.4 s on 1 when idle;
 * beside one busy program 4% longer than on 1 thread, beside two 10%
 * longer, where the fixed threshold this replaced was 21% longer:
 * docs/performance.md.) */
#define ACN__GRAIN_MAX 2e6       /* the threshold's ceiling, ns           */
#define ACN__GRAIN_AVG 1024.0    /* the averages' span, in tasks          */
static void acn__grain_set(acn__pool *pool)
{
    double help = pool->help > 1.0 / 64 ? pool->help : 1.0 / 64;
    double rate = pool->rate > 1.0 / 64 ? pool->rate : 1.0 / 64;
    double saves = help * (double)(pool->n - 1) / pool->n * rate;
    pool->grain = 2.0 * pool->lost < ACN__GRAIN_MAX * saves ? 2.0 * pool->lost / saves : ACN__GRAIN_MAX;
}
static void acn__grain_update(acn__pool *pool, int parts, int mine, double own, double wait, double work)
{
    double part = mine > 0 ? own / mine : pool->rate * work / parts, excess = wait - 1.5 * part;
    double help = (double)(parts - mine) / parts * pool->n / (pool->n - 1);
    excess = excess < 0.0 ? 0.0 : excess < ACN__GRAIN_MAX ? excess : ACN__GRAIN_MAX;
    pool->lost += (excess - pool->lost) / ACN__GRAIN_AVG;
    pool->help += ((help < 1.0 ? help : 1.0) - pool->help) / ACN__GRAIN_AVG;
    if (mine > 0 && own > 0.0) pool->rate += (part / (work / parts) - pool->rate) / ACN__GRAIN_AVG;
    acn__grain_set(pool);
}
static void acn__grain_decay(acn__pool *pool)
{
    pool->lost -= pool->lost / (16.0 * ACN__GRAIN_AVG);
    acn__grain_set(pool);
}

/* Small tasks, all together, one way or the other. The threshold above
 * weighs each task alone, by what the caller waits for; it cannot see what
 * sharing costs the tasks that follow. A task split between two cores
 * leaves its output half in each core's cache, and the next task reads it
 * across: on a virtual machine whose host has placed the two vCPUs far
 * apart (a cache line's round trip of 400 ns instead of 100 to 150), that
 * costs small tasks more than the second core saves. (make demo, whose
 * products are 64 x 128 x 128, then took longer on 2 threads than on 1, on
 * both of the project's machines: docs/performance.md, fifth session for
 * the AMD one, sixth for the Intel one.)
 * So the pool also compares the two ways as a whole, over every task under
 * ACN__MODE_MAX of stated work (the shared ones, and those any rule keeps
 * on the caller, which pay for reading what the other core wrote):
 * - the tasks go in windows of at least ACN__MODE_CALLS tasks and
 *   ACN__MODE_NS of the caller's time in them (10 ms with POSIX's clock;
 *   with the time-stamp counter, 1e7 ticks, a few ms); a window's rate is
 *   their stated work over that time, each task's time counted up to
 *   ACN__GRAIN_MAX (one stall of the process does not stand for a way);
 * - a window runs the tasks as the current way says: "shared" (each task
 *   as the threshold decides) or "solo" (every one on the caller);
 * - after `gap` windows one window tries the other way; if its rate beats
 *   the current way's last by ACN__MODE_MARGIN, the pool switches and the
 *   gap goes back to ACN__MODE_GAP_MIN windows, else the gap doubles, up to
 *   ACN__MODE_GAP_MAX.
 * Larger tasks are always as the threshold says; a trial costs them at
 * most a worker's wake-up (the workers sleep through solo windows). A
 * trial of the wrong way costs at most a quarter of a window of small tasks
 * in every ACN__MODE_GAP_MAX + 1/4 windows. A trial is a shorter window than
 * the one it is compared with, and the nominal rates weigh ops only roughly,
 * so a trial can win or lose by a few percent on the mix of ops alone: the
 * gap bounds what such a wrong switch costs. The two clock readings per
 * small task cost about 18 ns each on the project's Intel machine (more
 * where the clock is a system call). The stated work is the same in both
 * ways, so the clock's unit cancels; without a clock no window closes and
 * small tasks stay shared. No result depends on the way (see above). */
/* A small task of `work` stated ns took the caller `t` (clock units) */
static void acn__mode_update(acn__pool *pool, double work, double t)
{
    int ran;
    double rate;
    pool->calls++;
    pool->wwork += work;
    pool->wtime += t < ACN__GRAIN_MAX ? t : ACN__GRAIN_MAX;
    if (pool->calls < (pool->trial ? ACN__MODE_CALLS / 4 : ACN__MODE_CALLS) ||
        pool->wtime < (pool->trial ? ACN__MODE_NS / 4 : ACN__MODE_NS))
        return;
    ran = pool->solo ^ pool->trial; /* 1: this window ran every task on the caller */
    rate = pool->wwork / pool->wtime;
    if (pool->trial) {
        if (rate > ACN__MODE_MARGIN * pool->mrate[pool->solo]) {
            pool->solo = ran;
            pool->gap = ACN__MODE_GAP_MIN;
        } else if (pool->gap < ACN__MODE_GAP_MAX) {
            pool->gap *= 2;
        }
        pool->trial = 0;
        pool->wait = pool->gap;
    } else if (--pool->wait <= 0) {
        pool->trial = 1;
    }
    pool->mrate[ran] = rate;
    pool->calls = 0;
    pool->wwork = pool->wtime = 0.0;
}
#endif

/* acn__parallel (below), the way decided (solo: on the caller, whatever the work) */
static void acn__parallel_as(acn_ctx *ctx, acn__task fn, void *arg, double work, int per_thread, int solo)
{
#ifdef ACN__THREADS
    {
        acn__pool *pool = solo ? NULL : ctx->pool;
        int parts = pool ? pool->n * (per_thread < 1 ? 1 : per_thread) : 1;
        if (parts > ACN__PARTS_MAX) parts = ACN__PARTS_MAX;
        if (pool && work >= ACN_PAR_MIN_NS && work < pool->grain) acn__grain_decay(pool);
        else if (pool && work >= ACN_PAR_MIN_NS) {
            unsigned gen = ACN__LOAD(&pool->gen) + 1u;
            unsigned long long t0 = acn__clock(), t1;
            int mine;
            __atomic_store_n(&pool->fn, fn, __ATOMIC_SEQ_CST);
            __atomic_store_n(&pool->arg, arg, __ATOMIC_SEQ_CST);
            ACN__STORE(&pool->done, 0u);
            ACN__STORE(&pool->claim, (unsigned long long)gen << 32 | (unsigned long long)parts << 16);
            ACN__STORE(&pool->gen, gen);
            if (ACN__LOAD(&pool->sleepers)) {
                pthread_mutex_lock(&pool->mu);
                pthread_cond_broadcast(&pool->go);
                pthread_mutex_unlock(&pool->mu);
            }
            mine = acn__run_parts(pool, gen, fn, arg, 0);
            t1 = acn__clock();
            if (acn__spin(&pool->done, (unsigned)parts, 0) != (unsigned)parts) { /* the budget ran out: sleep */
                pthread_mutex_lock(&pool->mu);
                ACN__STORE(&pool->waiting, 1u);
                while (ACN__LOAD(&pool->done) != (unsigned)parts) pthread_cond_wait(&pool->done_cv, &pool->mu);
                ACN__STORE(&pool->waiting, 0u);
                pthread_mutex_unlock(&pool->mu);
            }
            acn__grain_update(pool, parts, mine, acn__elapsed(t0, t1), acn__elapsed(t1, acn__clock()), work);
            return;
        }
    }
#endif
    (void)ctx;
    (void)work;
    (void)per_thread;
    (void)solo;
    fn(arg, 0, 1, 0);
}

/* The one decision: a task of `work` nanoseconds runs as `per_thread`
 * parts for each thread of the pool when the work reaches both
 * ACN_PAR_MIN_NS and the pool's threshold (acn__grain_update), and the
 * pool is not keeping small tasks on the caller (acn__mode_update), else
 * as one part on the caller. A task's result must not depend on its number
 * of parts (see above). */
static void acn__parallel(acn_ctx *ctx, acn__task fn, void *arg, double work, int per_thread)
{
#ifdef ACN__THREADS
    acn__pool *pool = ctx->pool;
    if (pool && work < ACN__MODE_MAX) {
        unsigned long long t0 = acn__clock();
        acn__parallel_as(ctx, fn, arg, work, per_thread, pool->solo ^ pool->trial);
        acn__mode_update(pool, work, acn__elapsed(t0, acn__clock()));
        return;
    }
#endif
    acn__parallel_as(ctx, fn, arg, work, per_thread, 0);
}

/* Part `part` of `parts`: [*lo, *hi) of n items, in whole multiples of `unit`. */
static void acn__share(size_t n, size_t unit, int part, int parts, size_t *lo, size_t *hi)
{
    size_t units = (n + unit - 1) / unit, per = (units + (size_t)parts - 1) / (size_t)parts;
    *lo = (size_t)part * per * unit;
    *hi = *lo + per * unit;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

typedef struct acn__par_job { acn__node *n; size_t count, unit; acn__range_fn fn; } acn__par_job;
static void acn__par_task(void *arg, int part, int parts, int tid)
{
    const acn__par_job *j = (const acn__par_job *)arg;
    size_t lo, hi;
    (void)tid;
    acn__share(j->count, j->unit, part, parts, &lo, &hi);
    if (lo < hi) j->fn(j->n, lo, hi);
}
static void acn__par_units(acn_ctx *ctx, acn__node *n, size_t count, size_t unit, double item_ns, acn__range_fn fn)
{
    acn__par_job j;
    if (!count) return;
    j.n = n;
    j.count = count;
    j.unit = unit;
    j.fn = fn;
    acn__parallel(ctx, acn__par_task, &j, (double)count * item_ns, 4);
}
/* over rows: each row is computed whole, by one thread */
static void acn__par(acn_ctx *ctx, acn__node *n, size_t count, double item_ns, acn__range_fn fn)
{
    acn__par_units(ctx, n, count, 1, item_ns, fn);
}
/* over the values of an element-wise op: parts start at multiples of 16
 * values, so the SIMD kernels' blocks (16 floats for AVX-512, 8 for AVX2)
 * fall where they fall in one part, and the same values take the scalar
 * tail (whose bits may differ: GELU's is libm's erf) however the range is
 * cut */
static void acn__par_elems(acn_ctx *ctx, acn__node *n, size_t count, double item_ns, acn__range_fn fn)
{
    acn__par_units(ctx, n, count, 16, item_ns, fn);
}

/* out[c] += sum_r src[r, c] (rows in order)      src (R, C), out (C): the
 * bias gradients. Parts are whole columns, so no sum is split. */
typedef struct acn__colsum_job { acn_ctx *ctx; const float *src; size_t R, C; float *out; } acn__colsum_job;
static void acn__colsum_task(void *arg, int part, int parts, int tid)
{
    const acn__colsum_job *j = (const acn__colsum_job *)arg;
    size_t lo, hi, r, c;
    (void)tid;
    acn__share(j->C, 32, part, parts, &lo, &hi); /* whole 32-column strips (acn__colsum512) */
    lo = acn__colsum_fast(j->ctx, j->src, j->R, j->C, lo, hi, j->out);
    for (r = 0; r < j->R; r++)
        for (c = lo; c < hi; c++) j->out[c] += j->src[r * j->C + c];
}
static void acn__colsums(acn_ctx *ctx, const float *src, size_t R, size_t C, float *out)
{
    acn__colsum_job j;
    j.ctx = ctx;
    j.src = src;
    j.R = R;
    j.C = C;
    j.out = out;
    acn__parallel(ctx, acn__colsum_task, &j, (double)R * C * ACN__NS_ELEM, 4);
}

/* ---- SIMD micro-kernels ------------------------------------------------- */
/* Each computes C[mr x nr] (+)= A (mr x kc) * B (kc x nr), with the C tile
 * (row-major, stride ldc) held in registers: loaded first when `load_c`,
 * else started at zero (C = A B without clearing C beforehand).
 * A(i, k) = a[i rs + k cs]: the kernel only broadcasts single values of A,
 * so it reads A where it lies (row-major: rs = lda, cs = 1; transposed:
 * rs = 1, cs = lda) or from a packed panel (rs = 1, cs = mr). Row k of the
 * B tile is the nr floats at b + k bs: a packed panel (bs = nr) or B itself
 * when its rows are contiguous (bs = ldb). Only the first mm rows and nn
 * columns of C are read and written: the AVX-512 kernels do edge tiles in
 * place with masks (the A and B panels of an edge are zero-padded); the AVX2
 * kernel is called for whole tiles only (mm = mr, nn = nr). When `bias` is
 * given (and not load_c), every row of the tile starts from those nn floats
 * instead of zero: the same sums as copying the bias into C and loading it,
 * without the copies. */
/* A whole tile's epilogue, done in registers before the tile is stored
 * (by the AVX-512 kernel, at the last K block, for tiles 32 columns wide):
 * the same operations, value for value, as the passes over the stored tile
 * that the other tiles get (acn__mul512_rows, acn__gelu512_rows,
 * acn__gelu512_pair), without reloading a tile just stored (a load that
 * follows a store to the same place waits for it to reach the cache). */
enum { ACN__EPI_MUL = 1,   /* C *= z           (z: GELU'(z) as kept)      */
       ACN__EPI_DGELU,     /* C *= GELU'(z)                               */
       ACN__EPI_GELU,      /* e = GELU(C)                                 */
       ACN__EPI_PAIR,      /* e = GELU(C), then C = GELU'(C)              */
       ACN__EPI_ADDRELU }; /* C = ReLU(C + z)     (z: the skip input)     */
typedef struct acn__epi {
    int op;
    const float *z;        /* the tile's z (MUL, DGELU, ADDRELU), rows ld apart */
    float *e;              /* the tile's GELU output (GELU, PAIR)         */
    size_t ld;
} acn__epi;
typedef void (*acn__ukernel)(int kc, const float *a, size_t rs, size_t cs, const float *b, size_t bs, float *c,
                             size_t ldc, int load_c, const float *bias, const acn__epi *ep, int mm, int nn);

#ifdef ACN__X86
#define ACN__AVX2 __attribute__((target("avx2,fma")))
#define ACN__AVX512 __attribute__((target("avx512f")))
/* for the small vector helpers of the element-wise loops (a call per vector
 * costs more than the helper) */
#define ACN__INLINE __attribute__((always_inline)) inline
/* For helpers that must equal the portable loops bit for bit: no fused
 * multiply-adds, even where the compiler would contract a mul and an add
 * (GCC does in C++, whose default is -ffp-contract=fast; AVX-512 implies FMA). */
#if defined(__GNUC__) && !defined(__clang__)
#define ACN__AVX512_NOFMA __attribute__((target("avx512f"), optimize("fp-contract=off")))
#else
#define ACN__AVX512_NOFMA ACN__AVX512
#endif

/* 6 x 16: twelve 8-float accumulators */
#define ACN__LOAD256(i) c##i##0 = _mm256_loadu_ps(c + i * ldc); c##i##1 = _mm256_loadu_ps(c + i * ldc + 8);
ACN__AVX2 static void acn__uk_avx2(int kc, const float *a, size_t rs, size_t cs, const float *b, size_t bs,
                                   float *c, size_t ldc, int load_c, const float *bias, const acn__epi *ep, int mm,
                                   int nn)
{
    const float *a0 = a, *a3 = a + 3 * rs;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    int k;
    (void)mm; (void)nn; (void)ep; /* (whole tiles only, no epilogue: see acn__ukernel) */
    if (load_c) { ACN__LOAD256(0) ACN__LOAD256(1) ACN__LOAD256(2) ACN__LOAD256(3) ACN__LOAD256(4) ACN__LOAD256(5) }
    else if (bias) {
        c00 = c10 = c20 = c30 = c40 = c50 = _mm256_loadu_ps(bias);
        c01 = c11 = c21 = c31 = c41 = c51 = _mm256_loadu_ps(bias + 8);
    }
    for (k = 0; k < kc; k++, a0 += cs, a3 += cs, b += bs) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
        x = _mm256_broadcast_ss(a0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a0 + rs); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a0 + 2 * rs); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a3 + rs); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a3 + 2 * rs); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    _mm256_storeu_ps(c, c00); _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + ldc, c10); _mm256_storeu_ps(c + ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20); _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30); _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40); _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50); _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}
#undef ACN__LOAD256

/* Exact GELU for 16 floats at a time: erf by Abramowitz and Stegun 7.1.26
 * (|error| < 1.5e-7), whose exp(-z^2) also gives the normal density that
 * the backward needs; exp by range reduction to [-ln2/2, ln2/2], a degree-6
 * polynomial and scaling by 2^n. */
ACN__AVX512 static ACN__INLINE __m512 acn__exp512(__m512 x)
{
    __m512 n, r, p;
    /* (the masked forms, with every lane selected, spare GCC's headers a
     * false "maybe uninitialized" warning in C++) */
    x = _mm512_mask_max_ps(x, 0xFFFF, x, _mm512_set1_ps(-87.0f));
    n = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504f));
    n = _mm512_mask_roundscale_ps(n, 0xFFFF, n, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);      /* x - n ln2, in two parts */
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_mask_scalef_ps(p, 0xFFFF, p, n);
}
/* Phi(x) = (1 + erf(x / sqrt 2)) / 2 and phi(x) = exp(-x^2/2) / sqrt(2 pi) */
ACN__AVX512 static ACN__INLINE void acn__phi512(__m512 x, __m512 *cdf, __m512 *pdf)
{
    __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678f)), az = _mm512_abs_ps(z), q, t, p, e, erf;
    /* t = 1 / (1 + 0.3275911 |z|): the 14-bit reciprocal estimate and one
     * Newton step, t (2 - q t), good to about 2^-27 (a division costs far more) */
    q = _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f));
    t = _mm512_mask_rcp14_ps(q, 0xFFFF, q); /* (masked: see acn__exp512) */
    t = _mm512_fmadd_ps(t, _mm512_fnmadd_ps(q, t, _mm512_set1_ps(1.0f)), t);
    p = _mm512_fmadd_ps(_mm512_set1_ps(1.061405429f), t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    p = _mm512_mul_ps(p, t);
    e = acn__exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z)); /* exp(-x^2 / 2) */
    erf = _mm512_fnmadd_ps(p, e, _mm512_set1_ps(1.0f));                  /* erf(|z|) */
    erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf),   /* sign of z */
          _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32((int)0x80000000u))));
    *cdf = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_add_ps(_mm512_set1_ps(1.0f), erf));
    *pdf = _mm512_mul_ps(_mm512_set1_ps(0.39894228f), e);
}
/* One vector of a tile's epilogue (see acn__epi) */
ACN__AVX512 static ACN__INLINE __m512 acn__epi512(const acn__epi *ep, size_t at, __m512 v)
{
    __m512 cdf, pdf, x;
    switch (ep->op) {
    case ACN__EPI_MUL: return _mm512_mul_ps(v, _mm512_loadu_ps(ep->z + at));
    case ACN__EPI_ADDRELU: /* max(s, 0) is +0 for s <= 0 (-0 too) and NaN, as the scalar s > 0 ? s : 0
                            * (masked: see acn__exp512) */
        x = _mm512_add_ps(v, _mm512_loadu_ps(ep->z + at));
        return _mm512_mask_max_ps(x, 0xFFFF, x, _mm512_setzero_ps());
    case ACN__EPI_DGELU:
        x = _mm512_loadu_ps(ep->z + at);
        acn__phi512(x, &cdf, &pdf);
        return _mm512_mul_ps(v, _mm512_fmadd_ps(x, pdf, cdf));
    case ACN__EPI_GELU:
        acn__phi512(v, &cdf, &pdf);
        _mm512_storeu_ps(ep->e + at, _mm512_mul_ps(v, cdf));
        return v;
    default: /* ACN__EPI_PAIR */
        acn__phi512(v, &cdf, &pdf);
        _mm512_storeu_ps(ep->e + at, _mm512_mul_ps(v, cdf));
        return _mm512_fmadd_ps(v, pdf, cdf);
    }
}

/* 12 x 32: twenty-four 16-float accumulators; rows past mm and columns
 * past nn of C are neither read nor written (masks m0, m1). */
#define ACN__ROW512(i)                                                              \
    x = _mm512_set1_ps(a[i * rs]);                                                  \
    r##i##0 = _mm512_fmadd_ps(x, b0, r##i##0);                                      \
    r##i##1 = _mm512_fmadd_ps(x, b1, r##i##1);
#define ACN__ZERO512(i) __m512 r##i##0 = _mm512_setzero_ps(), r##i##1 = r##i##0;
#define ACN__LOAD512(i) if (i < mm) { r##i##0 = _mm512_maskz_loadu_ps(m0, c + i * ldc);                     \
                                      r##i##1 = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16); }
#define ACN__STORE512(i) if (i < mm) { _mm512_mask_storeu_ps(c + i * ldc, m0, r##i##0);                     \
                                       _mm512_mask_storeu_ps(c + i * ldc + 16, m1, r##i##1); }
#define ACN__STOREF512(i) if (i < mm) { _mm512_storeu_ps(c + i * ldc, r##i##0); _mm512_storeu_ps(c + i * ldc + 16, r##i##1); }
#define ACN__EPI512(i) if (i < mm) { _mm512_storeu_ps(c + i * ldc, acn__epi512(ep, i * ep->ld, r##i##0));        \
                                     _mm512_storeu_ps(c + i * ldc + 16, acn__epi512(ep, i * ep->ld + 16, r##i##1)); }
#define ACN__BIAS512(i) r##i##0 = q0; r##i##1 = q1;
/* One step along K: a row of B (two vectors) times a column of A (12 broadcasts) */
#define ACN__STEP512                                                                \
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), x;                \
    ACN__ROW512(0) ACN__ROW512(1) ACN__ROW512(2) ACN__ROW512(3) ACN__ROW512(4)      \
    ACN__ROW512(5) ACN__ROW512(6) ACN__ROW512(7) ACN__ROW512(8) ACN__ROW512(9)      \
    ACN__ROW512(10) ACN__ROW512(11)
/* the line at p + off floats, asked for into L1 (the address formed as an
 * integer: near a block's end it may lie past the array, where a pointer
 * may not point; a prefetch never faults) */
#define ACN__PF512(p, off) _mm_prefetch((const char *)((uintptr_t)(p) + (off) * sizeof(float)), _MM_HINT_T0);
/* With pf, each step asks for the row of B (and, when A's k steps are
 * contiguous columns, the column of A) ACN__PF_STEPS steps ahead, into L1.
 * On the project's Intel Xeon (family 6 model 167), by time samples, the
 * kernel waited on L2 with the hardware's prefetchers alone, and with this
 * the Mixer step took 5 to 10% less time (docs/performance.md, sixth
 * session). Near a block's last steps the rows asked for are the next
 * packed panel's (wanted next) or past B's end. No result changes. */
#define ACN__PF_STEPS 8
ACN__AVX512 static ACN__INLINE void acn__uk512(int kc, const float *a, size_t rs, size_t cs, const float *b, size_t bs,
                                               float *c, size_t ldc, int load_c, const float *bias, const acn__epi *ep,
                                               int mm, int nn, int pf)
{
    ACN__ZERO512(0) ACN__ZERO512(1) ACN__ZERO512(2) ACN__ZERO512(3) ACN__ZERO512(4) ACN__ZERO512(5)
    ACN__ZERO512(6) ACN__ZERO512(7) ACN__ZERO512(8) ACN__ZERO512(9) ACN__ZERO512(10) ACN__ZERO512(11)
    __mmask16 m0 = (__mmask16)(nn >= 16 ? 0xFFFF : (1u << nn) - 1u);
    __mmask16 m1 = (__mmask16)(nn >= 32 ? 0xFFFF : nn <= 16 ? 0 : (1u << (nn - 16)) - 1u);
    int k;
    if (ep) { /* the epilogue's rows start to load while the loop runs (they come from memory) */
        const float *pz = ep->z ? ep->z : ep->e;
        for (k = 0; k < mm; k++) {
            _mm_prefetch((const char *)(pz + (size_t)k * ep->ld), _MM_HINT_T0);
            _mm_prefetch((const char *)(pz + (size_t)k * ep->ld + 16), _MM_HINT_T0);
        }
    }
    if (load_c) {
        ACN__LOAD512(0) ACN__LOAD512(1) ACN__LOAD512(2) ACN__LOAD512(3) ACN__LOAD512(4) ACN__LOAD512(5)
        ACN__LOAD512(6) ACN__LOAD512(7) ACN__LOAD512(8) ACN__LOAD512(9) ACN__LOAD512(10) ACN__LOAD512(11)
    } else if (bias) {
        __m512 q0 = _mm512_maskz_loadu_ps(m0, bias), q1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        ACN__BIAS512(0) ACN__BIAS512(1) ACN__BIAS512(2) ACN__BIAS512(3) ACN__BIAS512(4) ACN__BIAS512(5)
        ACN__BIAS512(6) ACN__BIAS512(7) ACN__BIAS512(8) ACN__BIAS512(9) ACN__BIAS512(10) ACN__BIAS512(11)
    }
    if (pf && rs == 1) /* A's k steps are columns of 12 (packed, or A transposed in place) */
        for (k = 0; k < kc; k++, a += cs, b += bs) {
            ACN__STEP512
            ACN__PF512(b, ACN__PF_STEPS * bs) ACN__PF512(b, ACN__PF_STEPS * bs + 16)
            ACN__PF512(a, ACN__PF_STEPS * cs) ACN__PF512(a, ACN__PF_STEPS * cs + 11)
        }
    else if (pf) /* A's rows in place: B only (the hardware follows the 12 rows of A, and
                  * gemm_part's bursts are off: measured faster so) */
        for (k = 0; k < kc; k++, a += cs, b += bs) {
            ACN__STEP512
            ACN__PF512(b, ACN__PF_STEPS * bs) ACN__PF512(b, ACN__PF_STEPS * bs + 16)
        }
    else
        for (k = 0; k < kc; k++, a += cs, b += bs) {
            ACN__STEP512
        }
    if (ep) { /* (nn is 32) */
        ACN__EPI512(0) ACN__EPI512(1) ACN__EPI512(2) ACN__EPI512(3) ACN__EPI512(4) ACN__EPI512(5)
        ACN__EPI512(6) ACN__EPI512(7) ACN__EPI512(8) ACN__EPI512(9) ACN__EPI512(10) ACN__EPI512(11)
    } else if (nn >= 32) { /* whole rows: plain stores, which a later load of C can take from the store queue
                     * (a load after a masked store waits until the store reaches the cache) */
        ACN__STOREF512(0) ACN__STOREF512(1) ACN__STOREF512(2) ACN__STOREF512(3) ACN__STOREF512(4) ACN__STOREF512(5)
        ACN__STOREF512(6) ACN__STOREF512(7) ACN__STOREF512(8) ACN__STOREF512(9) ACN__STOREF512(10) ACN__STOREF512(11)
    } else {
        ACN__STORE512(0) ACN__STORE512(1) ACN__STORE512(2) ACN__STORE512(3) ACN__STORE512(4) ACN__STORE512(5)
        ACN__STORE512(6) ACN__STORE512(7) ACN__STORE512(8) ACN__STORE512(9) ACN__STORE512(10) ACN__STORE512(11)
    }
}
ACN__AVX512 static void acn__uk_avx512(int kc, const float *a, size_t rs, size_t cs, const float *b, size_t bs,
                                       float *c, size_t ldc, int load_c, const float *bias, const acn__epi *ep, int mm,
                                       int nn)
{
    acn__uk512(kc, a, rs, cs, b, bs, c, ldc, load_c, bias, ep, mm, nn, 0);
}
ACN__AVX512 static void acn__uk_avx512_pf(int kc, const float *a, size_t rs, size_t cs, const float *b, size_t bs,
                                          float *c, size_t ldc, int load_c, const float *bias, const acn__epi *ep,
                                          int mm, int nn)
{
    acn__uk512(kc, a, rs, cs, b, bs, c, ldc, load_c, bias, ep, mm, nn, 1);
}
/* 12 x 16, for an edge of at most 16 columns (half the work of 12 x 32). */
#define ACN__ZERO512N(i) __m512 r##i##0 = _mm512_setzero_ps();
#define ACN__ROW512N(i) r##i##0 = _mm512_fmadd_ps(_mm512_set1_ps(a[i * rs]), b0, r##i##0);
#define ACN__LOAD512N(i) if (i < mm) r##i##0 = _mm512_maskz_loadu_ps(m0, c + i * ldc);
#define ACN__STORE512N(i) if (i < mm) _mm512_mask_storeu_ps(c + i * ldc, m0, r##i##0);
#define ACN__BIAS512N(i) r##i##0 = q0;
ACN__AVX512 static void acn__uk_avx512_n16(int kc, const float *a, size_t rs, size_t cs, const float *b, size_t bs,
                                           float *c, size_t ldc, int load_c, const float *bias, const acn__epi *ep,
                                           int mm, int nn)
{
    ACN__ZERO512N(0) ACN__ZERO512N(1) ACN__ZERO512N(2) ACN__ZERO512N(3) ACN__ZERO512N(4) ACN__ZERO512N(5)
    ACN__ZERO512N(6) ACN__ZERO512N(7) ACN__ZERO512N(8) ACN__ZERO512N(9) ACN__ZERO512N(10) ACN__ZERO512N(11)
    __mmask16 m0 = (__mmask16)(nn >= 16 ? 0xFFFF : (1u << nn) - 1u);
    int k;
    (void)ep; /* (edges only, no epilogue) */
    if (load_c) {
        ACN__LOAD512N(0) ACN__LOAD512N(1) ACN__LOAD512N(2) ACN__LOAD512N(3) ACN__LOAD512N(4) ACN__LOAD512N(5)
        ACN__LOAD512N(6) ACN__LOAD512N(7) ACN__LOAD512N(8) ACN__LOAD512N(9) ACN__LOAD512N(10) ACN__LOAD512N(11)
    } else if (bias) {
        __m512 q0 = _mm512_maskz_loadu_ps(m0, bias);
        ACN__BIAS512N(0) ACN__BIAS512N(1) ACN__BIAS512N(2) ACN__BIAS512N(3) ACN__BIAS512N(4) ACN__BIAS512N(5)
        ACN__BIAS512N(6) ACN__BIAS512N(7) ACN__BIAS512N(8) ACN__BIAS512N(9) ACN__BIAS512N(10) ACN__BIAS512N(11)
    }
    for (k = 0; k < kc; k++, a += cs, b += bs) {
        __m512 b0 = _mm512_loadu_ps(b);
        ACN__ROW512N(0) ACN__ROW512N(1) ACN__ROW512N(2) ACN__ROW512N(3) ACN__ROW512N(4) ACN__ROW512N(5)
        ACN__ROW512N(6) ACN__ROW512N(7) ACN__ROW512N(8) ACN__ROW512N(9) ACN__ROW512N(10) ACN__ROW512N(11)
    }
    ACN__STORE512N(0) ACN__STORE512N(1) ACN__STORE512N(2) ACN__STORE512N(3) ACN__STORE512N(4) ACN__STORE512N(5)
    ACN__STORE512N(6) ACN__STORE512N(7) ACN__STORE512N(8) ACN__STORE512N(9) ACN__STORE512N(10) ACN__STORE512N(11)
}
#undef ACN__ZERO512N
#undef ACN__BIAS512N
#undef ACN__BIAS512
#undef ACN__ROW512N
#undef ACN__LOAD512N
#undef ACN__STORE512N
#undef ACN__ROW512
#undef ACN__ZERO512
#undef ACN__LOAD512
#undef ACN__STORE512
#undef ACN__STOREF512
#undef ACN__EPI512
#undef ACN__STEP512
#undef ACN__PF512
#undef ACN__PF_STEPS

/* y = x Phi(x) (dir 0), y += d (Phi(x) + x phi(x)) (dir 1) or
 * y = d (Phi(x) + x phi(x)) (dir 2), over `rows` rows of n values, rows
 * ldx, ldd and ldy apart in x, d and y (one call for a block of a matrix:
 * the constants are set up once); returns how many values of each row it
 * did (a multiple of 16: a shorter tail is left). */
ACN__AVX512 static size_t acn__gelu512_rows(int dir, int rows, size_t n, const float *x, size_t ldx, const float *d,
                                            size_t ldd, float *y, size_t ldy)
{
    size_t i = 0;
    int r;
    for (r = 0; r < rows; r++, x += ldx, d = d ? d + ldd : NULL, y += ldy)
        for (i = 0; i + 16 <= n; i += 16) {
            __m512 v = _mm512_loadu_ps(x + i), cdf, pdf;
            acn__phi512(v, &cdf, &pdf);
            if (dir == 1) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(_mm512_loadu_ps(d + i), _mm512_fmadd_ps(v, pdf, cdf),
                                                                  _mm512_loadu_ps(y + i)));
            else if (dir == 2) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(d + i), _mm512_fmadd_ps(v, pdf, cdf)));
            else _mm512_storeu_ps(y + i, _mm512_mul_ps(v, cdf));
        }
    return n - n % 16;
}
/* y = GELU(x), then x = GELU'(x), over `rows` rows of n values (acn_ffn's
 * forward: the backward then needs only the slope); returns how many
 * values of each row it did (a multiple of 16). */
ACN__AVX512 static size_t acn__gelu512_pair(int rows, size_t n, float *x, size_t ldx, float *y, size_t ldy)
{
    size_t i = 0;
    int r;
    for (r = 0; r < rows; r++, x += ldx, y += ldy)
        for (i = 0; i + 16 <= n; i += 16) {
            __m512 v = _mm512_loadu_ps(x + i), cdf, pdf;
            acn__phi512(v, &cdf, &pdf);
            _mm512_storeu_ps(y + i, _mm512_mul_ps(v, cdf));
            _mm512_storeu_ps(x + i, _mm512_fmadd_ps(v, pdf, cdf));
        }
    return n - n % 16;
}
/* c *= s over `rows` rows of n values (rows lds and ldc apart); returns
 * how many values of each row it did (a multiple of 16). */
ACN__AVX512 static size_t acn__mul512_rows(int rows, size_t n, const float *s, size_t lds, float *c, size_t ldc)
{
    size_t i = 0;
    int r;
    for (r = 0; r < rows; r++, s += lds, c += ldc)
        for (i = 0; i + 16 <= n; i += 16)
            _mm512_storeu_ps(c + i, _mm512_mul_ps(_mm512_loadu_ps(c + i), _mm512_loadu_ps(s + i)));
    return n - n % 16;
}
/* The same over [lo, hi) of one row; returns where it stopped. */
ACN__AVX512 static size_t acn__gelu512(int dir, const float *x, const float *d, float *y, size_t lo, size_t hi)
{
    return lo + acn__gelu512_rows(dir, 1, hi - lo, x + lo, 0, d ? d + lo : NULL, 0, y + lo, 0);
}

/* A panel of w <= 32 vectors, each contiguous along k and `outer` apart,
 * laid out [k][32] (zeros past w), 16 x 16 blocks at a time: 16 loads, an
 * in-register transpose, 16 stores (the matrix kernel's transposed packing,
 * as acn__pack_panel does it one value at a time). The transpose: within
 * each 128-bit lane, interleave pairs of rows (unpack ps), then pairs of
 * pairs (unpack pd); then gather lanes across registers (two rounds of
 * shuffle_f32x4). (The masked forms, with every lane selected, spare GCC's
 * headers a false "uninitialized" warning in C++.) */
#define ACN__UNPACK(x, y, i, j) x##i = _mm512_mask_unpacklo_ps(y##i, 0xFFFF, y##i, y##j); \
                                x##j = _mm512_mask_unpackhi_ps(y##i, 0xFFFF, y##i, y##j);
#define ACN__UNPD(lh, p, q) _mm512_castpd_ps(_mm512_mask_unpack##lh##_pd(_mm512_castps_pd(p), 0xFF, _mm512_castps_pd(p), \
                                                                      _mm512_castps_pd(q)))
#define ACN__SHUF(p, q, imm) _mm512_mask_shuffle_f32x4(p, 0xFFFF, p, q, imm)
#define ACN__LANES(x, y, i, j, p, q) x##i = ACN__SHUF(y##p, y##q, 0x88); x##j = ACN__SHUF(y##p, y##q, 0xdd);
/* A panel of w <= 32 columns whose values at each k are contiguous (rows
 * `inner` apart), laid out [k][32], zeros past w: two (masked) loads and
 * stores per k (a memcpy call per k costs more than the copy). */
ACN__AVX512 static void acn__pack_n512(int w, int len, const float *src, size_t inner, float *dst)
{
    __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1u);
    __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFF : w <= 16 ? 0 : (1u << (w - 16)) - 1u);
    int k;
    for (k = 0; k < len; k++, src += inner, dst += 32) {
        _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(m0, src));
        _mm512_storeu_ps(dst + 16, w > 16 ? _mm512_maskz_loadu_ps(m1, src + 16) : _mm512_setzero_ps());
    }
}
/* o[c] = column c of the 16 rows r[0..15] (the transpose described above
 * acn__pack_n512) */
ACN__AVX512 static ACN__INLINE void acn__tr16(const __m512 *r, __m512 *o)
{
    __m512 a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15;
    __m512 b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15;
    b0 = r[0]; b1 = r[1]; b2 = r[2]; b3 = r[3]; b4 = r[4]; b5 = r[5]; b6 = r[6]; b7 = r[7];
    b8 = r[8]; b9 = r[9]; b10 = r[10]; b11 = r[11]; b12 = r[12]; b13 = r[13]; b14 = r[14]; b15 = r[15];
    /* a: [r0[c] r1[c] r0[c+1] r1[c+1]] per lane, rows paired */
    ACN__UNPACK(a, b, 0, 1) ACN__UNPACK(a, b, 2, 3) ACN__UNPACK(a, b, 4, 5) ACN__UNPACK(a, b, 6, 7)
    ACN__UNPACK(a, b, 8, 9) ACN__UNPACK(a, b, 10, 11) ACN__UNPACK(a, b, 12, 13) ACN__UNPACK(a, b, 14, 15)
    /* b: columns 4l + c of four rows, lane l (b0: c = 0, b1: 1, b2: 2, b3: 3 for rows 0-3; ...) */
    b0 = ACN__UNPD(lo, a0, a2);
    b1 = ACN__UNPD(hi, a0, a2);
    b2 = ACN__UNPD(lo, a1, a3);
    b3 = ACN__UNPD(hi, a1, a3);
    b4 = ACN__UNPD(lo, a4, a6);
    b5 = ACN__UNPD(hi, a4, a6);
    b6 = ACN__UNPD(lo, a5, a7);
    b7 = ACN__UNPD(hi, a5, a7);
    b8 = ACN__UNPD(lo, a8, a10);
    b9 = ACN__UNPD(hi, a8, a10);
    b10 = ACN__UNPD(lo, a9, a11);
    b11 = ACN__UNPD(hi, a9, a11);
    b12 = ACN__UNPD(lo, a12, a14);
    b13 = ACN__UNPD(hi, a12, a14);
    b14 = ACN__UNPD(lo, a13, a15);
    b15 = ACN__UNPD(hi, a13, a15);
    /* a: lanes (c, c + 8) of rows 0-3 and 4-7 (a0..a7), of rows 8-11 and 12-15 (a8..a15) */
    ACN__LANES(a, b, 0, 4, 0, 4) ACN__LANES(a, b, 1, 5, 1, 5) ACN__LANES(a, b, 2, 6, 2, 6)
    ACN__LANES(a, b, 3, 7, 3, 7) ACN__LANES(a, b, 8, 12, 8, 12) ACN__LANES(a, b, 9, 13, 9, 13)
    ACN__LANES(a, b, 10, 14, 10, 14) ACN__LANES(a, b, 11, 15, 11, 15)
    /* column c of the 16 rows */
    o[0] = ACN__SHUF(a0, a8, 0x88); o[8] = ACN__SHUF(a0, a8, 0xdd);
    o[1] = ACN__SHUF(a1, a9, 0x88); o[9] = ACN__SHUF(a1, a9, 0xdd);
    o[2] = ACN__SHUF(a2, a10, 0x88); o[10] = ACN__SHUF(a2, a10, 0xdd);
    o[3] = ACN__SHUF(a3, a11, 0x88); o[11] = ACN__SHUF(a3, a11, 0xdd);
    o[4] = ACN__SHUF(a4, a12, 0x88); o[12] = ACN__SHUF(a4, a12, 0xdd);
    o[5] = ACN__SHUF(a5, a13, 0x88); o[13] = ACN__SHUF(a5, a13, 0xdd);
    o[6] = ACN__SHUF(a6, a14, 0x88); o[14] = ACN__SHUF(a6, a14, 0xdd);
    o[7] = ACN__SHUF(a7, a15, 0x88); o[15] = ACN__SHUF(a7, a15, 0xdd);
}
ACN__AVX512 static void acn__pack_t512(int w, int len, const float *src, size_t outer, float *dst)
{
    int h, k0, k, i;
    for (h = 0; h < 2; h++) {
        int wh = w - 16 * h < 0 ? 0 : w - 16 * h > 16 ? 16 : w - 16 * h;
        float *d = dst + 16 * h;
        for (k0 = 0; k0 < len; k0 += 16) {
            int kn = len - k0 < 16 ? len - k0 : 16;
            __mmask16 km = (__mmask16)(kn == 16 ? 0xFFFF : (1u << kn) - 1u);
            __m512 r[16], o[16];
            for (i = 0; i < 16; i++)
                r[i] = i < wh ? _mm512_maskz_loadu_ps(km, src + (size_t)(16 * h + i) * outer + k0) : _mm512_setzero_ps();
            acn__tr16(r, o);
            for (k = 0; k < kn; k++) _mm512_storeu_ps(d + (size_t)(k0 + k) * 32, o[k]);
        }
    }
}
/* dst (C, R) = src (R, C)^T, 16 x 16 blocks at a time (masked at the edges) */
ACN__AVX512 static void acn__transpose512(float *dst, const float *src, size_t R, size_t C)
{
    size_t r0, c0;
    int i;
    for (r0 = 0; r0 < R; r0 += 16)
        for (c0 = 0; c0 < C; c0 += 16) {
            int rn = R - r0 < 16 ? (int)(R - r0) : 16, cn = C - c0 < 16 ? (int)(C - c0) : 16;
            __mmask16 cm = (__mmask16)(cn == 16 ? 0xFFFF : (1u << cn) - 1u);
            __mmask16 rm = (__mmask16)(rn == 16 ? 0xFFFF : (1u << rn) - 1u);
            __m512 r[16], o[16];
            for (i = 0; i < 16; i++)
                r[i] = i < rn ? _mm512_maskz_loadu_ps(cm, src + (r0 + (size_t)i) * C + c0) : _mm512_setzero_ps();
            acn__tr16(r, o);
            for (i = 0; i < cn; i++) _mm512_mask_storeu_ps(dst + (c0 + (size_t)i) * R + r0, rm, o[i]);
        }
}
#undef ACN__UNPACK
#undef ACN__LANES
#undef ACN__UNPD
#undef ACN__SHUF
/* y[i] = v, 16 at a time; returns where it stopped */
ACN__AVX512 static size_t acn__fill512(float *y, float v, size_t n)
{
    size_t i;
    __m512 x = _mm512_set1_ps(v);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, x);
    return i;
}
/* y[i] += x[i], 16 at a time; returns where it stopped */
ACN__AVX512 static size_t acn__add512(float *y, const float *x, size_t n)
{
    size_t i;
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
    return i;
}
/* ReLU: y = x > 0 ? x : 0 (dir 0), y += x > 0 ? d : 0 (dir 1) or
 * y = x > 0 ? d : 0 (dir 2), for i in [lo, hi); returns where it stopped.
 * (Masks, not a branch per value.) */
ACN__AVX512 static size_t acn__relu512(int dir, const float *x, const float *d, float *y, size_t lo, size_t hi)
{
    size_t i;
    for (i = lo; i + 16 <= hi; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        if (dir == 1) _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_maskz_loadu_ps(pos, d + i)));
        else if (dir == 2) _mm512_storeu_ps(y + i, _mm512_maskz_loadu_ps(pos, d + i));
        else _mm512_storeu_ps(y + i, _mm512_maskz_mov_ps(pos, v));
    }
    return i;
}
/* Column sums over R rows of C floats, rows in order, for c in [lo, hi):
 * gb[c] += sum_r d[r, c] (the bias gradients), with the operations of the
 * scalar loop. 32 columns at a time (two independent chains), the last
 * strip masked; returns hi. */
ACN__AVX512_NOFMA static size_t acn__colsum512(const float *d, size_t R, size_t C, size_t lo, size_t hi, float *gb)
{
    size_t c, r;
    for (c = lo; c < hi; c += 32) {
        size_t w = hi - c < 32 ? hi - c : 32;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1u);
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFF : w <= 16 ? 0 : (1u << (w - 16)) - 1u);
        __m512 b0 = _mm512_maskz_loadu_ps(m0, gb + c), b1 = _mm512_maskz_loadu_ps(m1, gb + c + 16);
        for (r = 0; r < R; r++) {
            const float *dr = d + r * C + c;
            b0 = _mm512_add_ps(b0, _mm512_maskz_loadu_ps(m0, dr));
            b1 = _mm512_add_ps(b1, _mm512_maskz_loadu_ps(m1, dr + 16));
        }
        _mm512_mask_storeu_ps(gb + c, m0, b0);
        _mm512_mask_storeu_ps(gb + c + 16, m1, b1);
    }
    return hi;
}

/* The sum of 16 lanes, in lane order. (GCC's _mm512_reduce_add_ps draws a
 * false "uninitialized" warning in C++.) */
ACN__AVX512 static float acn__hsum512(__m512 v)
{
    float t[16], s = 0.0f;
    int i;
    _mm512_storeu_ps(t, v);
    for (i = 0; i < 16; i++) s += t[i];
    return s;
}
/* LayerNorm rows of D floats, D a multiple of 16, 16 lanes at a time (the
 * same formulas as acn__ln_fwd_rows and acn__ln_bwd_rows). */
ACN__AVX512 static void acn__ln_fwd512(const float *x, const float *g, const float *b, float eps, int D, float *out,
                                       float *mean, float *rstd)
{
    __m512 s = _mm512_setzero_ps(), v = _mm512_setzero_ps(), m, r;
    int c;
    for (c = 0; c < D; c += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(x + c));
    *mean = acn__hsum512(s) / (float)D;
    m = _mm512_set1_ps(*mean);
    for (c = 0; c < D; c += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(x + c), m);
        v = _mm512_fmadd_ps(t, t, v);
    }
    *rstd = 1.0f / sqrtf(acn__hsum512(v) / (float)D + eps);
    r = _mm512_set1_ps(*rstd);
    for (c = 0; c < D; c += 16) {
        __m512 h = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), m), r);
        if (g) h = _mm512_mul_ps(h, _mm512_loadu_ps(g + c));
        if (b) h = _mm512_add_ps(h, _mm512_loadu_ps(b + c));
        _mm512_storeu_ps(out + c, h);
    }
}
/* (gx NULL: no dx; pg, pb: gamma's and beta's sums, pg += d xhat, pb += d) */
ACN__AVX512 static void acn__ln_bwd512(const float *x, const float *g, const float *d, float mean, float rstd, int D,
                                       float *gx, int write, float *pg, float *pb)
{
    __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), m = _mm512_set1_ps(mean), r = _mm512_set1_ps(rstd);
    __m512 m1, m2;
    int c;
    for (c = 0; c < D; c += 16) {
        __m512 h = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), m), r), d0 = _mm512_loadu_ps(d + c), dh = d0;
        if (g) dh = _mm512_mul_ps(dh, _mm512_loadu_ps(g + c));
        s1 = _mm512_add_ps(s1, dh);
        s2 = _mm512_fmadd_ps(dh, h, s2);
        if (pg) {
            _mm512_storeu_ps(pg + c, _mm512_add_ps(_mm512_loadu_ps(pg + c), _mm512_mul_ps(d0, h)));
            _mm512_storeu_ps(pb + c, _mm512_add_ps(_mm512_loadu_ps(pb + c), d0));
        }
    }
    if (!gx) return;
    m1 = _mm512_set1_ps(acn__hsum512(s1) / (float)D);
    m2 = _mm512_set1_ps(acn__hsum512(s2) / (float)D);
    for (c = 0; c < D; c += 16) {
        __m512 h = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), m), r), dh = _mm512_loadu_ps(d + c);
        if (g) dh = _mm512_mul_ps(dh, _mm512_loadu_ps(g + c));
        dh = _mm512_sub_ps(_mm512_sub_ps(dh, m1), _mm512_mul_ps(h, m2));
        if (write) _mm512_storeu_ps(gx + c, _mm512_mul_ps(r, dh));
        else _mm512_storeu_ps(gx + c, _mm512_fmadd_ps(r, dh, _mm512_loadu_ps(gx + c)));
    }
}

/* ---- the same helpers on AVX2 (8 lanes), for CPUs without AVX-512 ------- */
/* Fill, add, ReLU, column sums and AdamW are compiled without FMA in their
 * target, so a compiler that contracts a*b+c cannot change their rounding
 * (unless the whole build enables FMA): they give the scalar loops'
 * results. GELU uses FMA, as acn__gelu512 does. */
#define ACN__AVX2_NOFMA __attribute__((target("avx2")))
ACN__AVX2 static __m256 acn__exp256(__m256 x) /* as acn__exp512 */
{
    __m256 n, r, p;
    __m256i e;
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);
    p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* times 2^n: n (>= -126 here) goes into the exponent field */
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
ACN__AVX2 static void acn__phi256(__m256 x, __m256 *cdf, __m256 *pdf) /* as acn__phi512 */
{
    __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678f)), sign = _mm256_set1_ps(-0.0f);
    __m256 az = _mm256_andnot_ps(sign, z), t, p, e, erf;
    t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(az, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
    p = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    e = acn__exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), z), z)); /* exp(-x^2 / 2) */
    erf = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));                  /* erf(|z|) */
    erf = _mm256_or_ps(erf, _mm256_and_ps(z, sign));                      /* sign of z */
    *cdf = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
    *pdf = _mm256_mul_ps(_mm256_set1_ps(0.39894228f), e);
}
ACN__AVX2 static size_t acn__gelu256_rows(int dir, int rows, size_t n, const float *x, size_t ldx, const float *d,
                                          size_t ldd, float *y, size_t ldy)
{
    size_t i = 0;
    int r;
    for (r = 0; r < rows; r++, x += ldx, d = d ? d + ldd : NULL, y += ldy)
        for (i = 0; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i), cdf, pdf;
            acn__phi256(v, &cdf, &pdf);
            if (dir == 1) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(d + i), _mm256_fmadd_ps(v, pdf, cdf),
                                                                  _mm256_loadu_ps(y + i)));
            else if (dir == 2) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(d + i), _mm256_fmadd_ps(v, pdf, cdf)));
            else _mm256_storeu_ps(y + i, _mm256_mul_ps(v, cdf));
        }
    return n - n % 8;
}
ACN__AVX2 static size_t acn__gelu256_pair(int rows, size_t n, float *x, size_t ldx, float *y, size_t ldy)
{
    size_t i = 0;
    int r;
    for (r = 0; r < rows; r++, x += ldx, y += ldy)
        for (i = 0; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i), cdf, pdf;
            acn__phi256(v, &cdf, &pdf);
            _mm256_storeu_ps(y + i, _mm256_mul_ps(v, cdf));
            _mm256_storeu_ps(x + i, _mm256_fmadd_ps(v, pdf, cdf));
        }
    return n - n % 8;
}
ACN__AVX2 static size_t acn__mul256_rows(int rows, size_t n, const float *s, size_t lds, float *c, size_t ldc)
{
    size_t i = 0;
    int r;
    for (r = 0; r < rows; r++, s += lds, c += ldc)
        for (i = 0; i + 8 <= n; i += 8)
            _mm256_storeu_ps(c + i, _mm256_mul_ps(_mm256_loadu_ps(c + i), _mm256_loadu_ps(s + i)));
    return n - n % 8;
}
ACN__AVX2 static size_t acn__gelu256(int dir, const float *x, const float *d, float *y, size_t lo, size_t hi)
{
    return lo + acn__gelu256_rows(dir, 1, hi - lo, x + lo, 0, d ? d + lo : NULL, 0, y + lo, 0);
}
ACN__AVX2_NOFMA static size_t acn__fill256(float *y, float v, size_t n)
{
    size_t i;
    __m256 x = _mm256_set1_ps(v);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, x);
    return i;
}
ACN__AVX2_NOFMA static size_t acn__add256(float *y, const float *x, size_t n)
{
    size_t i;
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    return i;
}
ACN__AVX2_NOFMA static size_t acn__relu256(int dir, const float *x, const float *d, float *y, size_t lo, size_t hi)
{
    size_t i;
    for (i = lo; i + 8 <= hi; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
        if (dir == 1) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_and_ps(pos, _mm256_loadu_ps(d + i))));
        else if (dir == 2) _mm256_storeu_ps(y + i, _mm256_and_ps(pos, _mm256_loadu_ps(d + i)));
        else _mm256_storeu_ps(y + i, _mm256_and_ps(pos, v));
    }
    return i;
}
/* as acn__colsum512, 16 columns at a time, the last strip masked; returns hi */
ACN__AVX2_NOFMA static __m256i acn__mask256(size_t w) /* lanes i < w */
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(w < 8 ? w : 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
ACN__AVX2_NOFMA static size_t acn__colsum256(const float *d, size_t R, size_t C, size_t lo, size_t hi, float *gb)
{
    size_t c, r;
    for (c = lo; c < hi; c += 16) {
        size_t w = hi - c < 16 ? hi - c : 16;
        __m256i m0 = acn__mask256(w), m1 = acn__mask256(w > 8 ? w - 8 : 0);
        __m256 b0 = _mm256_maskload_ps(gb + c, m0), b1 = _mm256_maskload_ps(gb + c + 8, m1);
        for (r = 0; r < R; r++) {
            const float *dr = d + r * C + c;
            b0 = _mm256_add_ps(b0, _mm256_maskload_ps(dr, m0));
            b1 = _mm256_add_ps(b1, _mm256_maskload_ps(dr + 8, m1));
        }
        _mm256_maskstore_ps(gb + c, m0, b0);
        _mm256_maskstore_ps(gb + c + 8, m1, b1);
    }
    return hi;
}
/* AdamW on [lo, hi) of one parameter, 8 at a time, with the scalar loop's
 * operations in its order (see acn__adamw_task); returns where it stopped. */
ACN__AVX2_NOFMA static size_t acn__adamw256(float *w, float *m, float *v, const float *g, size_t lo, size_t hi, float keep,
                                           float b1, float b2, float step_size, float bc2_sqrt, float eps)
{
    __m256 K = _mm256_set1_ps(keep), B1 = _mm256_set1_ps(b1), B2 = _mm256_set1_ps(b2);
    __m256 C1 = _mm256_set1_ps(1.0f - b1), C2 = _mm256_set1_ps(1.0f - b2), S = _mm256_set1_ps(step_size);
    __m256 Q = _mm256_set1_ps(bc2_sqrt), E = _mm256_set1_ps(eps);
    size_t i;
    for (i = lo; i + 8 <= hi; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i), wi = _mm256_mul_ps(_mm256_loadu_ps(w + i), K), mi, vi;
        mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), B1), _mm256_mul_ps(gi, C1));
        vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), B2), _mm256_mul_ps(_mm256_mul_ps(gi, gi), C2));
        wi = _mm256_sub_ps(wi, _mm256_mul_ps(S, _mm256_div_ps(mi, _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), Q), E))));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(w + i, wi);
    }
    return i;
}

/* The sum of 16 lanes as a tree: (l, l + 8), then (l, l + 4), (l, l + 2),
 * (l, l + 1); a fixed order, a few instructions. */
ACN__AVX512 static ACN__INLINE float acn__tree512(__m512 v)
{
    /* (the masked forms, with every lane selected: see acn__exp512) */
    __m512d w = _mm512_castps_pd(v);
    __m256 h = _mm256_add_ps(_mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, w, 0)),
                             _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, w, 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}
/* dW of acn_linear_mid over one group of batch elements [b0, b1):
 *   P[j, t] = sum_b sum_k d_b[j, k] x_b[t, k]     d_b (J, D), x_b (T, D), P (J, T)
 * Both operands hold K = D along their rows, so each element is a dot
 * product of two rows, and no operand is transposed or packed (the matrix
 * kernel would need x_b^T). Five rows of d by five rows of x at a time:
 * 25 accumulators of 16 lanes, lane l summing the k = l (mod 16) of each
 * b in order, the lanes then added as acn__tree512 does. A last tile that
 * would pass J or T starts 5 rows before the end instead, overlapping the
 * one before it, whose elements it computes again to the same bits. The x
 * rows of a tile stay in L1 while the d rows go by (t outer, j inner).
 * Needs J, T >= 5 (see acn__lmid_dw_fast). */
#define ACN__DW_ZERO(i) __m512 r##i##0 = _mm512_setzero_ps(), r##i##1 = r##i##0, r##i##2 = r##i##0, \
                               r##i##3 = r##i##0, r##i##4 = r##i##0;
#define ACN__DW_ROW(i)                                                                            \
    a = _mm512_maskz_loadu_ps(m, dp + i * D + k);                                                 \
    r##i##0 = _mm512_fmadd_ps(a, x0, r##i##0); r##i##1 = _mm512_fmadd_ps(a, x1, r##i##1);         \
    r##i##2 = _mm512_fmadd_ps(a, x2, r##i##2); r##i##3 = _mm512_fmadd_ps(a, x3, r##i##3);         \
    r##i##4 = _mm512_fmadd_ps(a, x4, r##i##4);
#define ACN__DW_STEP(mask) {                                                                      \
    __mmask16 m = (__mmask16)(mask);                                                              \
    __m512 x0 = _mm512_maskz_loadu_ps(m, xp + k), x1 = _mm512_maskz_loadu_ps(m, xp + D + k);     \
    __m512 x2 = _mm512_maskz_loadu_ps(m, xp + 2 * D + k), x3 = _mm512_maskz_loadu_ps(m, xp + 3 * D + k); \
    __m512 x4 = _mm512_maskz_loadu_ps(m, xp + 4 * D + k), a;                                     \
    ACN__DW_ROW(0) ACN__DW_ROW(1) ACN__DW_ROW(2) ACN__DW_ROW(3) ACN__DW_ROW(4) }
#define ACN__DW_PUT(i) { float *p = P + (size_t)(j + i) * T + t;                                   \
    p[0] = acn__tree512(r##i##0); p[1] = acn__tree512(r##i##1); p[2] = acn__tree512(r##i##2);    \
    p[3] = acn__tree512(r##i##3); p[4] = acn__tree512(r##i##4); }
ACN__AVX512 static void acn__lmid_dw512(int J, int T, int D, const float *d, const float *x, size_t b0, size_t b1,
                                        float *P)
{
    int j0, t0, j, t, k;
    size_t b;
    for (t0 = 0; t0 < T; t0 += 5)
        for (j0 = 0; j0 < J; j0 += 5) {
            size_t od, ox;
            ACN__DW_ZERO(0) ACN__DW_ZERO(1) ACN__DW_ZERO(2) ACN__DW_ZERO(3) ACN__DW_ZERO(4)
            j = j0 + 5 <= J ? j0 : J - 5;
            t = t0 + 5 <= T ? t0 : T - 5;
            for (b = b0, od = (b0 * J + (size_t)j) * D, ox = (b0 * T + (size_t)t) * D; b < b1;
                 b++, od += (size_t)J * D, ox += (size_t)T * D) { /* (offsets: no pointer past the end) */
                const float *dp = d + od, *xp = x + ox;   /* rows j.. of d_b, t.. of x_b */
                for (k = 0; k + 16 <= D; k += 16) { ACN__DW_STEP(0xFFFF) }
                if (k < D) { ACN__DW_STEP((1u << (D - k)) - 1u) } /* the last D % 16, masked */
            }
            ACN__DW_PUT(0) ACN__DW_PUT(1) ACN__DW_PUT(2) ACN__DW_PUT(3) ACN__DW_PUT(4)
        }
}
#undef ACN__DW_ZERO
#undef ACN__DW_ROW
#undef ACN__DW_STEP
#undef ACN__DW_PUT

static int acn__cpu_level(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return ACN_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ACN_SIMD_AVX2;
    return ACN_SIMD_PORTABLE;
}
#else
static int acn__cpu_level(void) { return ACN_SIMD_PORTABLE; }
#endif

/* LayerNorm rows on SIMD: forward (bwd 0), or backward with dx into y
 * added (bwd 1) or written (bwd 2), or no dx (y NULL), and gamma's and
 * beta's sums into pg, pb when given; 0 when this level has no such path
 * (or D does not fit it), and the scalar rows run instead. */
static int acn__ln_fast(acn_ctx *ctx, int bwd, const float *x, const float *g, const float *b, const float *d,
                        float eps, int D, float *y, float *mean, float *rstd, float *pg, float *pb)
{
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512 && D % 16 == 0) {
        if (bwd) acn__ln_bwd512(x, g, d, *mean, *rstd, D, y, bwd == 2, pg, pb);
        else acn__ln_fwd512(x, g, b, eps, D, y, mean, rstd);
        return 1;
    }
#endif
    (void)ctx; (void)bwd; (void)x; (void)g; (void)b; (void)d; (void)eps; (void)D; (void)y; (void)mean; (void)rstd;
    (void)pg; (void)pb;
    return 0;
}

/* dst (C, R) = src (R, C)^T on SIMD (acn__transpose512), on the calling
 * thread; 0 when this level has no such path (dst NULL: only asks). */
static int acn__transpose_fast(const acn_ctx *ctx, float *dst, const float *src, size_t R, size_t C)
{
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) {
        if (dst) acn__transpose512(dst, src, R, C);
        return 1;
    }
#endif
    (void)ctx; (void)dst; (void)src; (void)R; (void)C;
    return 0;
}
/* dW of acn_linear_mid over one group on SIMD (acn__lmid_dw512): P (J, T)
 * written; 0 when this level has no such path, and the matrix kernel runs
 * instead (see acn__lmid_task). */
static int acn__lmid_has_fast(const acn_ctx *ctx, int J, int T)
{
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512 && J >= 5 && T >= 5) return 1;
#endif
    (void)ctx; (void)J; (void)T;
    return 0;
}
static int acn__lmid_dw_fast(const acn_ctx *ctx, int J, int T, int D, const float *d, const float *x, size_t b0,
                             size_t b1, float *P)
{
#ifdef ACN__X86
    if (acn__lmid_has_fast(ctx, J, T)) {
        acn__lmid_dw512(J, T, D, d, x, b0, b1, P);
        return 1;
    }
#endif
    (void)ctx; (void)J; (void)T; (void)D; (void)d; (void)x; (void)b0; (void)b1; (void)P;
    return 0;
}

/* y[i] = v for i < n */
static void acn__fill(acn_ctx *ctx, float *y, float v, size_t n)
{
    size_t i = 0;
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) i = acn__fill512(y, v, n);
    if (ctx->simd == ACN_SIMD_AVX2) i = acn__fill256(y, v, n);
#endif
    (void)ctx;
    for (; i < n; i++) y[i] = v;
}
/* y[i] += x[i] for i < n: AVX-512 where there is one (the same sums). */
static void acn__add_to(acn_ctx *ctx, float *y, const float *x, size_t n)
{
    size_t i = 0;
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) i = acn__add512(y, x, n);
    if (ctx->simd == ACN_SIMD_AVX2) i = acn__add256(y, x, n);
#endif
    (void)ctx;
    for (; i < n; i++) y[i] += x[i];
}
/* The SIMD parts of ReLU and of column sums, as for GELU below. */
static size_t acn__relu_fast(acn_ctx *ctx, int dir, const float *x, const float *d, float *y, size_t lo, size_t hi)
{
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) return acn__relu512(dir, x, d, y, lo, hi);
    if (ctx->simd == ACN_SIMD_AVX2) return acn__relu256(dir, x, d, y, lo, hi);
#endif
    (void)ctx; (void)dir; (void)x; (void)d; (void)y; (void)hi;
    return lo;
}
/* The sum of g[i]^2 over n floats, in double: sixteen partial sums, the
 * one of lane j taking the i with i = j (mod 16), then added in lane
 * order. A square of a float is exact in double, so the SIMD code's fused
 * multiply-add rounds where the portable loop's add does: every level gives
 * the same bits. (One running sum would be a chain of dependent adds, one
 * value per add's latency.) */
#ifdef ACN__X86
ACN__AVX512 static size_t acn__sumsq512(const float *g, size_t n, double *s)
{
    __m512d a = _mm512_setzero_pd(), b = a;
    size_t i;
    for (i = 0; i + 16 <= n; i += 16) {
        /* (the masked forms, with every lane selected, spare GCC's headers a
         * false "maybe uninitialized" warning in C++) */
        __m512d x = _mm512_mask_cvtps_pd(_mm512_setzero_pd(), 0xFF, _mm256_loadu_ps(g + i));
        __m512d y = _mm512_mask_cvtps_pd(_mm512_setzero_pd(), 0xFF, _mm256_loadu_ps(g + i + 8));
        a = _mm512_fmadd_pd(x, x, a);
        b = _mm512_fmadd_pd(y, y, b);
    }
    _mm512_storeu_pd(s, a);
    _mm512_storeu_pd(s + 8, b);
    return i;
}
ACN__AVX2 static size_t acn__sumsq256(const float *g, size_t n, double *s)
{
    __m256d a = _mm256_setzero_pd(), b = a, c = a, d = a;
    size_t i;
    for (i = 0; i + 16 <= n; i += 16) {
        __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(g + i)), y = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 4));
        __m256d z = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 8)), w = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 12));
        a = _mm256_fmadd_pd(x, x, a);
        b = _mm256_fmadd_pd(y, y, b);
        c = _mm256_fmadd_pd(z, z, c);
        d = _mm256_fmadd_pd(w, w, d);
    }
    _mm256_storeu_pd(s, a);
    _mm256_storeu_pd(s + 4, b);
    _mm256_storeu_pd(s + 8, c);
    _mm256_storeu_pd(s + 12, d);
    return i;
}
#endif
static double acn__sumsq(acn_ctx *ctx, const float *g, size_t n)
{
    double s[16], t = 0.0;
    size_t i = 0;
    int j;
    for (j = 0; j < 16; j++) s[j] = 0.0;
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) i = acn__sumsq512(g, n, s);
    else if (ctx->simd == ACN_SIMD_AVX2) i = acn__sumsq256(g, n, s);
#endif
    (void)ctx;
    for (; i < n; i++) s[i % 16] += (double)g[i] * g[i];
    for (j = 0; j < 16; j++) t += s[j];
    return t;
}
static size_t acn__colsum_fast(acn_ctx *ctx, const float *d, size_t R, size_t C, size_t lo, size_t hi, float *gb)
{
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) return acn__colsum512(d, R, C, lo, hi, gb);
    if (ctx->simd == ACN_SIMD_AVX2) return acn__colsum256(d, R, C, lo, hi, gb);
#endif
    (void)ctx; (void)d; (void)R; (void)C; (void)hi; (void)gb;
    return lo;
}
/* The exact GELU over a block of `rows` rows of n values, rows ldx, ldd and
 * ldy apart in x, d and y: dir 0 y = GELU(x), dir 2 y = d GELU'(x) (d may
 * be y). The SIMD code does what it can of each row, the scalar loops the
 * rest. */
static void acn__gelu_block(acn_ctx *ctx, int dir, int rows, size_t n, const float *x, size_t ldx, const float *d,
                            size_t ldd, float *y, size_t ldy)
{
    size_t done = 0, i;
    int r;
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) done = acn__gelu512_rows(dir, rows, n, x, ldx, d, ldd, y, ldy);
    else if (ctx->simd == ACN_SIMD_AVX2) done = acn__gelu256_rows(dir, rows, n, x, ldx, d, ldd, y, ldy);
#endif
    (void)ctx;
    for (r = 0; r < rows; r++)
        for (i = done; i < n; i++) {
            float v = x[(size_t)r * ldx + i];
            y[(size_t)r * ldy + i] = dir ? d[(size_t)r * ldd + i] * acn__dgelu1(v) : acn__gelu1(v);
        }
}
/* y = GELU(x), then x = GELU'(x), over a block as acn__gelu_block's: the
 * slope is what the backward multiplies by (dz = dh GELU'(z)), computed
 * here with the same code that computes it there. */
static void acn__gelu_pair_block(acn_ctx *ctx, int rows, size_t n, float *x, size_t ldx, float *y, size_t ldy)
{
    size_t done = 0, i;
    int r;
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) done = acn__gelu512_pair(rows, n, x, ldx, y, ldy);
    else if (ctx->simd == ACN_SIMD_AVX2) done = acn__gelu256_pair(rows, n, x, ldx, y, ldy);
#endif
    (void)ctx;
    for (r = 0; r < rows; r++)
        for (i = done; i < n; i++) {
            float v = x[(size_t)r * ldx + i];
            y[(size_t)r * ldy + i] = acn__gelu1(v);
            x[(size_t)r * ldx + i] = acn__dgelu1(v);
        }
}
/* c *= s over a block of `rows` rows of n values, rows lds and ldc apart */
static void acn__mul_block(acn_ctx *ctx, int rows, size_t n, const float *s, size_t lds, float *c, size_t ldc)
{
    size_t done = 0, i;
    int r;
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) done = acn__mul512_rows(rows, n, s, lds, c, ldc);
    else if (ctx->simd == ACN_SIMD_AVX2) done = acn__mul256_rows(rows, n, s, lds, c, ldc);
#endif
    (void)ctx;
    for (r = 0; r < rows; r++)
        for (i = done; i < n; i++) c[(size_t)r * ldc + i] *= s[(size_t)r * lds + i];
}
/* c = ReLU(c + s), over rows of n values (ldc, lds apart): the
 * linear_add_relu epilogue of the tiles the kernel does not finish itself,
 * the same two operations as ACN__EPI_ADDRELU. */
static void acn__addrelu_block(int rows, size_t n, const float *s, size_t lds, float *c, size_t ldc)
{
    size_t i;
    int r;
    for (r = 0; r < rows; r++, s += lds, c += ldc)
        for (i = 0; i < n; i++) {
            float v = c[i] + s[i];
            c[i] = v > 0.0f ? v : 0.0f;
        }
}
/* The SIMD part of an exact-GELU range: returns the first index it left for
 * the scalar loop (lo when there is no SIMD GELU at this level). */
static size_t acn__gelu_fast(acn_ctx *ctx, int dir, const float *x, const float *d, float *y, size_t lo, size_t hi)
{
#ifdef ACN__X86
    if (ctx->simd == ACN_SIMD_AVX512) return acn__gelu512(dir, x, d, y, lo, hi);
    if (ctx->simd == ACN_SIMD_AVX2) return acn__gelu256(dir, x, d, y, lo, hi);
#endif
    (void)ctx; (void)dir; (void)x; (void)d; (void)y; (void)hi;
    return lo;
}

/* ---- the packed matrix kernel ------------------------------------------- */
/* Blocking, from the cache sizes of the context (acn_cache), for a kernel
 * of mr x nr (12 x 32 at AVX-512, 6 x 16 at AVX2):
 *  - kc, the K block: a micro-panel of B (kc x nr floats) takes at most two
 *    thirds of L1, so it stays there while rows of A stream past it, read
 *    where they lie: kc = 2/3 L1 / (4 nr), a multiple of 16, 64 to 512;
 *  - nc, the N block: a packed block of op(B) (kc x nc floats) takes at
 *    most half of L2: nc = L2 / 2 / (4 kc), a multiple of nr, 4 nr to 4096;
 *  - kc_long: a narrower product whose A rows are contiguous takes K blocks
 *    as long as that block of B allows, up to kc_long, so that each row of
 *    A is read from memory in longer runs (a panel of mr rows x kc_long
 *    floats takes at most half of L1: kc_long = L1 / 2 / (4 mr), a
 *    multiple of 16, kc to 1024). A transposed A touches a cache line per
 *    k, so it keeps kc.
 * With 48 KB of L1 and 1 MB of L2 per core (the AMD EPYC machine of
 * docs/performance.md) the 12 x 32 kernel gets kc 256, kc_long 512, nc 512:
 * 512 KB blocks of B. The blocking never changes a result: the kernel adds
 * along K in order whatever kc is (between K blocks C is stored and loaded
 * back, the same float), and the blocks follow the whole product, not a
 * thread's part. */
#define ACN__MR_MAX 12
#define ACN__NR_MAX 32
/* the micro-kernel's tile, mr x nr, at each SIMD level (portable: none) */
static const int acn__tiles[3][2] = {{0, 0}, {6, 16}, {ACN__MR_MAX, ACN__NR_MAX}};
static acn__blk acn__blocking(size_t l1d, size_t l2, int mr, int nr)
{
    acn__blk b;
    size_t kc = l1d * 2 / 3 / (4 * (size_t)nr) / 16 * 16, kl = l1d / 2 / (4 * (size_t)mr) / 16 * 16, nc;
    kc = kc < 64 ? 64 : kc > 512 ? 512 : kc;
    kl = kl < kc ? kc : kl > 1024 ? 1024 : kl;
    nc = l2 / 2 / (4 * kc) / (size_t)nr * (size_t)nr;
    nc = nc < 4 * (size_t)nr ? 4 * (size_t)nr : nc > 4096 ? 4096 : nc;
    b.kc = (int)kc;
    b.kc_long = (int)kl;
    b.nc = (int)nc;
    return b;
}
/* One thread's packing buffer (floats), for any SIMD level: a panel of A
 * (mr x kc_long), a block of B (kc x nc), an edge tile (mr x nr). */
static size_t acn__pack_floats(size_t l1d, size_t l2)
{
    size_t most = 0, need;
    int lv;
    for (lv = ACN_SIMD_AVX2; lv <= ACN_SIMD_AVX512; lv++) {
        int mr = acn__tiles[lv][0], nr = acn__tiles[lv][1];
        acn__blk b = acn__blocking(l1d, l2, mr, nr);
        need = (size_t)mr * b.kc_long + (size_t)b.kc * b.nc + (size_t)mr * nr;
        if (need > most) most = need;
    }
    return most;
}

/* op(A)(i, k) = A[i ar + k ac], op(B)(k, j) = B[k br + j bc]: the strides
 * say how each operand is stored. */
typedef struct acn__gemm_job {
    int M, N, K, mr, nr, split_rows;
    const float *A, *B;
    size_t ar, ac, br, bc;
    float *C;
    int accumulate;
    const float *bias;         /* (N) or NULL: C starts from it, not zero   */
    float *gelu_out;           /* (M, N) or NULL: GELU(C) after the last K  */
    const float *dgelu_z;      /* (M, N) or NULL: C *= GELU'(z) after it    */
    const float *addrelu;      /* (M, N) or NULL: C = ReLU(C + it) after it */
    int a_gelu, b_gelu;        /* op(A) (op(B)) is GELU of what is stored:
                                * rows contiguous, copied with the GELU     */
    int slope;                 /* with gelu_out: then C = GELU'(C); with
                                * dgelu_z: it holds GELU'(z), C *= it       */
    acn_ctx *ctx;              /* its SIMD level (packing, the GELU)        */
    acn__ukernel uk, uk16;     /* uk16: for edges of <= 16 columns; NULL when
                                * uk does whole tiles only (see the kernels) */
    int uk_prefetch;           /* uk asks for its operands ahead itself     */
    float *packbuf;            /* pack_floats per thread                    */
    size_t pack_floats;
    acn__blk blk;              /* the blocks (acn__blocking)                */
} acn__gemm_job;

/* A panel: w rows (or columns) of an operand, each `len` long, stored with
 * stride `outer` between them and `inner` along them, laid out [k][i] with
 * `width` slots per k (the slots past w are zero). The loop order follows
 * whichever stride is 1, so the reads are contiguous. */
static void acn__pack_panel(int w, int width, int len, const float *src, size_t outer, size_t inner, float *dst,
                            int simd)
{
    int i, k;
#ifdef ACN__X86
    if (simd == ACN_SIMD_AVX512 && inner == 1 && width == 32) {
        acn__pack_t512(w, len, src, outer, dst);
        return;
    }
    if (simd == ACN_SIMD_AVX512 && outer == 1 && width == 32) {
        acn__pack_n512(w, len, src, inner, dst);
        return;
    }
#endif
    (void)simd;
    if (w < width)
        for (k = 0; k < len; k++)
            for (i = w; i < width; i++) dst[(size_t)k * width + i] = 0.0f;
    if (inner == 1) /* each of the w vectors is contiguous: read along it */
        for (i = 0; i < w; i++) {
            const float *v = src + (size_t)i * outer;
            for (k = 0; k < len; k++) dst[(size_t)k * width + i] = v[k];
        }
    else if (outer == 1) /* the w values of one k are contiguous: copy them */
        for (k = 0; k < len; k++) memcpy(dst + (size_t)k * width, src + (size_t)k * inner, (size_t)w * sizeof(float));
    else            /* the w values of one k are spread */
        for (k = 0; k < len; k++) {
            const float *v = src + (size_t)k * inner;
            for (i = 0; i < w; i++) dst[(size_t)k * width + i] = v[(size_t)i * outer];
        }
}
/* Panels of mr rows of op(A)[0..mc, 0..kc]: dst[p][k][i], zero-padded. */
static void acn__pack_a(int mc, int kc, int mr, const float *A, size_t ar, size_t ac, float *dst)
{
    int p;
    for (p = 0; p < mc; p += mr, dst += (size_t)mr * kc)
        acn__pack_panel(mc - p < mr ? mc - p : mr, mr, kc, A + (size_t)p * ar, ar, ac, dst, ACN_SIMD_PORTABLE);
}
/* Panels of nr columns of op(B)[0..kc, 0..nc]: dst[q][k][j], zero-padded. */
static void acn__pack_b(int kc, int nc, int nr, const float *B, size_t br, size_t bc, float *dst, int simd)
{
    int q;
    for (q = 0; q < nc; q += nr, dst += (size_t)nr * kc)
        acn__pack_panel(nc - q < nr ? nc - q : nr, nr, kc, B + (size_t)q * bc, bc, br, dst, simd);
}

/* GELU while packing (acn_ffn: the hidden layer is never stored). The K
 * blocks and column panels do not depend on the number of threads, so
 * every value is computed by the same code (SIMD or scalar tail) whatever
 * the split. */
/* dst[i][0..kp) = GELU(src row i [0..kc)), zeros past kc; rows mm..mr-1 zero */
static void acn__gelu_rows(acn_ctx *ctx, int mm, int mr, int kc, int kp, const float *src, size_t stride, float *dst)
{
    int i;
    acn__gelu_block(ctx, 0, mm, (size_t)kc, src, stride, NULL, 0, dst, (size_t)kp);
    for (i = 0; i < mr; i++)
        memset(dst + (size_t)i * kp + (i < mm ? kc : 0), 0, (size_t)(i < mm ? kp - kc : kp) * sizeof(float));
}
/* Panels of nr columns of GELU(B)[0..kc, 0..nc], B's rows contiguous
 * (stride br): dst[q][k][j], zero-padded, as acn__pack_b lays them out. */
static void acn__pack_b_gelu(acn_ctx *ctx, int kc, int nc, int nr, const float *B, size_t br, float *dst)
{
    int q, k;
    for (q = 0; q < nc; q += nr, dst += (size_t)nr * kc) {
        int w = nc - q < nr ? nc - q : nr;
        acn__gelu_block(ctx, 0, kc, (size_t)w, B + q, br, NULL, 0, dst, (size_t)nr);
        if (w < nr)
            for (k = 0; k < kc; k++) memset(dst + (size_t)k * nr + w, 0, (size_t)(nr - w) * sizeof(float));
    }
}

/* C[0..M, 0..N] (ldc) (+)= op(A) op(B) for one thread's part. A is read in
 * place, but for a last row panel shorter than mr, which is packed with
 * zeros below it. B is packed block by block, except when its rows are
 * contiguous and this part has few rows (under ACN__B_INPLACE_ROWS): then
 * a packed block would be used too few times to repay its copy, and the
 * kernel reads B where it lies (all but a last panel narrower than nr).
 * The first K block writes C (C = ...) unless the job accumulates: from
 * zero, or from the bias row (bias, for this part's N columns). */
#define ACN__B_INPLACE_ROWS 256
static void acn__gemm_part(const acn__gemm_job *g, int M, int N, const float *A, const float *B, const float *bias,
                           float *C, float *E, const float *Z, const float *S, size_t ldc, float *buf)
{
    int mr = g->mr, nr = g->nr, inplace = g->bc == 1 && M < ACN__B_INPLACE_ROWS && !g->b_gelu, jc, pc, jr, ir, i, j;
    int KC = g->blk.kc, NC = g->blk.nc;
    size_t bblock = (size_t)KC * NC;                            /* floats of a block of B */
    float *pa = buf, *pb = buf + (size_t)mr * g->blk.kc_long, *tile = pb + bblock;
    /* the K blocks follow the whole product's width, not this part's, so
     * they do not depend on the number of threads */
    int ncw = ((g->N < NC ? g->N : NC) + nr - 1) / nr * nr;
    int kcb = g->ac != 1 ? KC : (int)(bblock / (size_t)ncw) > g->blk.kc_long ? g->blk.kc_long
                                                                          : (int)(bblock / (size_t)ncw) / 16 * 16;
    for (jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC, nin = inplace ? nc - nc % nr : 0; /* columns read in place */
        for (pc = 0; pc < g->K; pc += kcb) {
            int kc = g->K - pc < kcb ? g->K - pc : kcb, mfull = M - M % mr, load_c = g->accumulate || pc > 0;
            const float *Bk = B + (size_t)pc * g->br + (size_t)jc * g->bc;
            if (g->b_gelu) acn__pack_b_gelu(g->ctx, kc, nc, nr, Bk, g->br, pb);
            else if (nin < nc) acn__pack_b(kc, nc - nin, nr, Bk + (size_t)nin * g->bc, g->br, g->bc, pb, g->ctx->simd);
            if (g->a_gelu) mfull = 0; /* every panel is copied, with the GELU */
            else if (mfull < M) acn__pack_a(M - mfull, kc, mr, A + (size_t)mfull * g->ar + (size_t)pc * g->ac, g->ar, g->ac, pa);
            for (ir = 0; ir < M; ir += mr) {
                const float *a = ir < mfull ? A + (size_t)ir * g->ar + (size_t)pc * g->ac : pa;
                size_t rs = ir < mfull ? g->ar : 1, cs = ir < mfull ? g->ac : (size_t)mr;
                int mm = M - ir < mr ? M - ir : mr;
                if (g->a_gelu) { /* rows of GELU(A), each kc long (padded to 16), zeros below the last */
                    int kp = (kc + 15) / 16 * 16;
                    acn__gelu_rows(g->ctx, mm, mr, kc, kp, A + (size_t)ir * g->ar + (size_t)pc, g->ar, pa);
                    rs = (size_t)kp;
                    cs = 1;
                }
                for (jr = 0; jr < nc; jr += nr) {
                    float *c = C + (size_t)ir * ldc + jc + jr;
                    const float *b = jr < nin ? Bk + jr : pb + (size_t)(jr - nin) * kc;
                    size_t bs = jr < nin ? g->br : (size_t)nr;
                    int nn = nc - jr < nr ? nc - jr : nr;
                    const float *tb = !load_c && bias ? bias + jc + jr : NULL; /* the tile starts from the bias */
#ifdef ACN__X86
                    /* (a kernel that asks for its operands step by step goes without these bursts:
                     * on the project's Intel Xeon they cost it 1 to 7%) */
                    if (ir + mr < mfull && !g->uk_prefetch) { /* this tile's share of the next row panel of A
                                                               * (read in place) */
                        int tiles = (nc + nr - 1) / nr, t = jr / nr, q, q0, q1;
                        const float *an = A + (size_t)(ir + mr) * g->ar + (size_t)pc * g->ac;
                        if (g->ac == 1) { /* rows of kc floats */
                            q0 = mr * t / tiles; q1 = mr * (t + 1) / tiles;
                            for (q = q0; q < q1; q++)
                                for (i = 0; i < kc; i += 16) _mm_prefetch((const char *)(an + (size_t)q * g->ar + i), _MM_HINT_T0);
                        } else if (g->ar == 1) { /* mr floats at each k: every other k (measured faster
                                                   * than each: the hardware finds the stride) */
                            q0 = kc * t / tiles; q1 = kc * (t + 1) / tiles;
                            for (q = q0; q < q1; q += 2) _mm_prefetch((const char *)(an + (size_t)q * g->ac), _MM_HINT_T0);
                        }
                    }
                    if (ir == 0 && jr + nr < nin && !g->uk_prefetch) /* the first row panel reads B from memory:
                                                                          * ask for the next tile's */
                        for (i = 0; i < kc; i++) {
                            _mm_prefetch((const char *)(Bk + (size_t)i * g->br + jr + nr), _MM_HINT_T0);
                            if (nr > 16) _mm_prefetch((const char *)(Bk + (size_t)i * g->br + jr + nr + 16), _MM_HINT_T0);
                        }
#endif
                    acn__epi ep, *epp = NULL;
                    if (pc + kc == g->K && (E || Z || S) && g->uk16 && nn == 32) { /* the epilogue in the kernel */
                        size_t at = (size_t)ir * ldc + jc + jr;
                        ep.op = S ? ACN__EPI_ADDRELU : E ? (g->slope ? ACN__EPI_PAIR : ACN__EPI_GELU)
                                : g->slope ? ACN__EPI_MUL : ACN__EPI_DGELU;
                        ep.z = S ? S + at : Z ? Z + at : NULL;
                        ep.e = E ? E + at : NULL;
                        ep.ld = ldc;
                        epp = &ep;
                    }
                    if (g->uk16) { /* masked tiles, whatever the edge: a scalar loop runs into the FMA's latency */
                        (nn <= 16 ? g->uk16 : g->uk)(kc, a, rs, cs, b, bs, c, ldc, load_c, tb, epp, mm, nn);
                    } else if (mm == mr && nn == nr) {
                        g->uk(kc, a, rs, cs, b, bs, c, ldc, load_c, tb, NULL, mr, nr);
                    } else if (nn <= nr / 4) { /* a few columns: plain loops beat a full tile */
                        int k;
                        for (i = 0; i < mm; i++)
                            for (j = 0; j < nn; j++) {
                                float sum = load_c ? c[(size_t)i * ldc + j] : tb ? tb[j] : 0.0f;
                                for (k = 0; k < kc; k++) sum += a[(size_t)i * rs + (size_t)k * cs] * b[(size_t)k * bs + j];
                                c[(size_t)i * ldc + j] = sum;
                            }
                    } else { /* an edge tile: through a full-size scratch tile */
                        for (i = 0; i < mr; i++)
                            for (j = 0; j < nr; j++)
                                tile[i * nr + j] = i >= mm || j >= nn ? 0.0f : load_c ? c[(size_t)i * ldc + j] : tb ? tb[j] : 0.0f;
                        g->uk(kc, a, rs, cs, b, bs, tile, (size_t)nr, 1, NULL, NULL, mr, nr);
                        for (i = 0; i < mm; i++)
                            for (j = 0; j < nn; j++) c[(size_t)i * ldc + j] = tile[i * nr + j];
                    }
                    if (pc + kc == g->K && !epp) { /* the epilogues, on the finished tile while it is in cache */
                        size_t at = (size_t)ir * ldc + jc + jr;
                        if (E && g->slope) /* GELU(C), then C = GELU'(C) */
                            acn__gelu_pair_block(g->ctx, mm, (size_t)nn, c, ldc, E + at, ldc);
                        else if (E) acn__gelu_block(g->ctx, 0, mm, (size_t)nn, c, ldc, NULL, 0, E + at, ldc); /* GELU(C) */
                        if (Z && g->slope) acn__mul_block(g->ctx, mm, (size_t)nn, Z + at, ldc, c, ldc); /* C GELU'(z), kept */
                        else if (Z) acn__gelu_block(g->ctx, 2, mm, (size_t)nn, Z + at, ldc, c, ldc, c, ldc); /* C GELU'(z) */
                        if (S) acn__addrelu_block(mm, (size_t)nn, S + at, ldc, c, ldc); /* C = ReLU(C + skip) */
                    }
                }
            }
        }
    }
}

/* One thread's rows (or columns) of the product. The split never cuts the
 * K loop, so every element of C is summed in the same order whatever the
 * number of threads. */
static void acn__gemm_task(void *arg, int part, int parts, int tid)
{
    const acn__gemm_job *g = (const acn__gemm_job *)arg;
    size_t lo, hi;
    float *buf = g->packbuf + (size_t)tid * g->pack_floats;
    if (g->split_rows) {
        acn__share((size_t)g->M, (size_t)g->mr, part, parts, &lo, &hi);
        if (lo < hi)
            acn__gemm_part(g, (int)(hi - lo), g->N, g->A + lo * g->ar, g->B, g->bias, g->C + lo * (size_t)g->N,
                           g->gelu_out ? g->gelu_out + lo * (size_t)g->N : NULL,
                           g->dgelu_z ? g->dgelu_z + lo * (size_t)g->N : NULL,
                           g->addrelu ? g->addrelu + lo * (size_t)g->N : NULL, (size_t)g->N, buf);
    } else {
        acn__share((size_t)g->N, (size_t)g->nr, part, parts, &lo, &hi);
        if (lo < hi)
            acn__gemm_part(g, g->M, (int)(hi - lo), g->A, g->B + lo * g->bc, g->bias ? g->bias + lo : NULL, g->C + lo,
                           g->gelu_out ? g->gelu_out + lo : NULL, g->dgelu_z ? g->dgelu_z + lo : NULL,
                           g->addrelu ? g->addrelu + lo : NULL, (size_t)g->N, buf);
    }
}

/* A job for the context's SIMD level, with the operands' strides (see
 * acn__gemm_job); no bias, no epilogue. */
static void acn__gemm_setup(acn_ctx *ctx, acn__gemm_job *g, int M, int N, int K, const float *A, size_t ar, size_t ac,
                            const float *B, size_t br, size_t bc, float *C, int accumulate)
{
    memset(g, 0, sizeof *g);
#ifdef ACN__X86
    {
        int lv = ctx->simd == ACN_SIMD_AVX512 ? ACN_SIMD_AVX512 : ACN_SIMD_AVX2;
        g->uk_prefetch = lv == ACN_SIMD_AVX512 && ctx->prefetch;
        g->uk = lv != ACN_SIMD_AVX512 ? acn__uk_avx2 : g->uk_prefetch ? acn__uk_avx512_pf : acn__uk_avx512;
        g->uk16 = lv == ACN_SIMD_AVX512 ? acn__uk_avx512_n16 : NULL;
        g->mr = acn__tiles[lv][0];
        g->nr = acn__tiles[lv][1];
        g->blk = ctx->blk[lv];
    }
#else
    g->uk = g->uk16 = NULL;
    g->uk_prefetch = 0;
    g->mr = g->nr = 1;
#endif
    g->M = M; g->N = N; g->K = K;
    g->A = A; g->B = B; g->C = C;
    g->ar = ar; g->ac = ac; g->br = br; g->bc = bc;
    g->accumulate = accumulate;
    g->packbuf = ctx->packbuf;
    g->pack_floats = ctx->pack_floats;
    g->ctx = ctx;
}
static int acn__gemm_fuses(const acn_ctx *ctx) { return ctx->simd != ACN_SIMD_PORTABLE; }
/* Products with a small op(B) (N x K under 512) take the plain loops,
 * the others the packed kernel, whatever M is: each row of C then comes out
 * the same bits however many rows the product has, so an input's result
 * does not depend on the batch it is in (anytime inference gathers smaller
 * and smaller batches, and relies on it). */
static int acn__gemm_small(int N, int K) { return (double)N * K < 512.0 || K < 1; }
static void acn__gemm_run(acn_ctx *ctx, int M, int N, int K, const float *A, int ta, const float *B, int tb,
                          const float *bias, float *C, float *gelu_out, int accumulate, const acn__gemm_gelu *fuse)
{
    acn__gemm_job g;
    int packed = fuse && (fuse->a || fuse->b || fuse->dz), slope = fuse && fuse->slope;
    if (packed) ACN_ASSERT(acn__gemm_fuses(ctx) && (!fuse->a || !ta) && (!fuse->b || !tb));
    if (!packed && (ctx->simd == ACN_SIMD_PORTABLE || acn__gemm_small(N, K))) {
        size_t i, j;
        acn__gemm_ref(M, N, K, A, ta, B, tb, C, accumulate);
        if (bias)
            for (i = 0; i < (size_t)M; i++)
                for (j = 0; j < (size_t)N; j++) C[i * N + j] += bias[j];
        if (gelu_out && slope) /* row by row, each row's SIMD part and tail as the packed kernel's tiles */
            acn__gelu_pair_block(ctx, M, (size_t)N, C, (size_t)N, gelu_out, (size_t)N);
        else if (gelu_out) /* row by row, as a recompute does it (acn__lgelu_fwd_rows) */
            for (i = 0; i < (size_t)M; i++)
                for (j = acn__gelu_fast(ctx, 0, C + i * N, NULL, gelu_out + i * N, 0, (size_t)N); j < (size_t)N; j++)
                    gelu_out[i * N + j] = acn__gelu1(C[i * N + j]);
        if (fuse && fuse->addrelu) acn__addrelu_block(M, (size_t)N, fuse->addrelu, (size_t)N, C, (size_t)N);
        return;
    }
    acn__gemm_setup(ctx, &g, M, N, K, A, ta ? 1 : (size_t)K, ta ? (size_t)M : 1, B, tb ? 1 : (size_t)N,
                     tb ? (size_t)K : 1, C, accumulate);
    g.bias = bias;
    g.gelu_out = gelu_out;
    if (fuse) {
        g.a_gelu = fuse->a;
        g.b_gelu = fuse->b;
        g.dgelu_z = fuse->dz;
        g.slope = fuse->slope;
        g.addrelu = fuse->addrelu;
    }
    { /* split by rows unless a thread's largest share of C is more than 10% larger than by columns:
       * split by rows, each thread reads only its rows of A (an activation, often just written by
       * the other core) and all of op(B) (usually weights, which both cores can keep a copy of);
       * split by columns, each reads all of A. (On the project's AMD EPYC, in minutes when the
       * host kept its two vCPUs far apart, the Mixer step took 8% less time than with the
       * smaller share deciding alone, and 1% less otherwise: docs/performance.md, fifth session.) */
        size_t T = (size_t)ctx->threads, um = ((size_t)M + g.mr - 1) / g.mr, un = ((size_t)N + g.nr - 1) / g.nr;
        double rows = (double)((um + T - 1) / T) * g.mr * N, cols = (double)((un + T - 1) / T) * g.nr * M;
        g.split_rows = rows <= 1.1 * cols;
    }
    /* two parts per thread (a late thread costs less) when each still has
     * enough rows or columns to repay its own packing of B */
    acn__parallel(ctx, acn__gemm_task, &g, 2.0 * M * N * K * ACN__NS_FLOP,
                  (g.split_rows ? M : N) >= 1024 * ctx->threads ? 2 : 1);
}
static void acn__gemm(acn_ctx *ctx, int M, int N, int K, const float *A, int ta, const float *B, int tb,
                      float *C, int accumulate)
{
    acn__gemm_run(ctx, M, N, K, A, ta, B, tb, NULL, C, NULL, accumulate, NULL);
}
static void acn__gemm_bias(acn_ctx *ctx, int M, int N, int K, const float *A, int ta, const float *B, int tb,
                           const float *bias, float *C, float *gelu_out)
{
    acn__gemm_run(ctx, M, N, K, A, ta, B, tb, bias, C, gelu_out, 0, NULL);
}

static void acn__gemm_on(acn_ctx *ctx, int tid, int M, int N, int K, const float *A, size_t ar, size_t ac,
                         const float *B, size_t br, size_t bc, float *C, size_t ldc, int accumulate)
{
    acn__gemm_job g;
    int i, j, k;
    if (ctx->simd == ACN_SIMD_PORTABLE || K < 1) { /* the definition, as in acn__gemm_ref */
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                float sum = 0.0f;
                for (k = 0; k < K; k++) sum += A[(size_t)i * ar + (size_t)k * ac] * B[(size_t)k * br + (size_t)j * bc];
                C[(size_t)i * ldc + j] = accumulate ? C[(size_t)i * ldc + j] + sum : sum;
            }
        return;
    }
    acn__gemm_setup(ctx, &g, M, N, K, A, ar, ac, B, br, bc, C, accumulate);
    g.split_rows = 1;
    acn__gemm_part(&g, M, N, A, B, NULL, C, NULL, NULL, NULL, ldc, ctx->packbuf + (size_t)tid * ctx->pack_floats);
}

/* ---- settings ----------------------------------------------------------- */
ACNDEF const char *acn_simd_name(int level)
{
    return level == ACN_SIMD_AVX512 ? "avx512" : level == ACN_SIMD_AVX2 ? "avx2" : "portable";
}
ACNDEF int acn_simd(const acn_ctx *ctx) { return ctx ? ctx->simd : ACN_SIMD_PORTABLE; }
ACNDEF int acn_set_simd(acn_ctx *ctx, int level)
{
    int best = acn__cpu_level();
    if (!ctx) return ACN_SIMD_PORTABLE;
    ctx->simd = level < ACN_SIMD_PORTABLE ? ACN_SIMD_PORTABLE : level > best ? best : level;
    return ctx->simd;
}
ACNDEF int acn_threads(const acn_ctx *ctx) { return ctx ? ctx->threads : 1; }
ACNDEF acn_status acn_set_threads(acn_ctx *ctx, int n)
{
    float *buf;
    if (!ctx) return ACN_ERR_ARG;
    if (n < 1 || n > ACN__MAX_THREADS) {
        acn__fail(ctx, ACN_ERR_ARG, "set_threads: %d threads; use 1 to %d", n, ACN__MAX_THREADS);
        return ctx->status;
    }
#ifndef ACN__THREADS
    n = 1;
#endif
    if (!(buf = (float *)ACN_MALLOC((size_t)n * ctx->pack_floats * sizeof(float) + ACN__ALIGN))) {
        acn__fail(ctx, ACN_ERR_NOMEM, "set_threads: cannot allocate the packing buffers for %d threads", n);
        return ctx->status;
    }
    acn__pool_stop(ctx->pool);
    ACN_FREE(ctx->packbuf);
    ctx->packbuf = buf;
    ctx->pool = acn__pool_start(n);
    ctx->threads = ctx->pool ? ctx->pool->n : 1;
    return ACN_OK;
}

/* The caches of this CPU (bytes, 0 where nothing says; a cache that several
 * cores share is given whole, as CPUID describes it): CPUID's
 * cache descriptions (leaf 4 on Intel, 0x8000001D on AMD: ways x
 * partitions x line x sets of each cache), else AMD's older leaves
 * 0x80000005 and 0x80000006 (sizes in KB). */
static void acn__cache_cpuid(size_t *l1d, size_t *l2, size_t *l3)
{
    *l1d = *l2 = *l3 = 0;
#ifdef ACN__X86
    {
        static const unsigned leaves[2] = {4u, 0x8000001Du};
        unsigned a = 0, b = 0, c = 0, d = 0, top[2], i, k;
        top[0] = __get_cpuid_max(0u, NULL);
        top[1] = __get_cpuid_max(0x80000000u, NULL);
        for (k = 0; k < 2 && !*l2; k++) {
            if (top[k] < leaves[k]) continue;
            for (i = 0; i < 16; i++) {
                unsigned type, level;
                size_t size;
                __cpuid_count(leaves[k], i, a, b, c, d);
                type = a & 31u;  /* 1 data, 2 instructions, 3 unified; 0: no more */
                level = (a >> 5) & 7u;
                if (!type) break;
                size = (size_t)((b >> 22) + 1u) * (((b >> 12) & 0x3FFu) + 1u) * ((b & 0xFFFu) + 1u) * ((size_t)c + 1u);
                if (level == 1 && type == 1) *l1d = size;
                else if (level == 2 && type != 2) *l2 = size;
                else if (level == 3 && type != 2) *l3 = size;
            }
        }
        if (!*l2 && top[1] >= 0x80000006u) { /* (only what the leaves above left unsaid) */
            __cpuid(0x80000005u, a, b, c, d);
            if (!*l1d) *l1d = (size_t)(c >> 24) << 10;
            __cpuid(0x80000006u, a, b, c, d);
            *l2 = (size_t)(c >> 16) << 10;
            if (!*l3) *l3 = (size_t)(d >> 18) << 19;
        }
        (void)d;
    }
#endif
}
/* 1 on an Intel CPU (CPUID's vendor string "GenuineIntel") */
static int acn__cpu_intel(void)
{
#ifdef ACN__X86
    unsigned a, b, c, d;
    __cpuid(0u, a, b, c, d);
    (void)a;
    return b == 0x756E6547u && d == 0x49656E69u && c == 0x6C65746Eu; /* "Genu" "ineI" "ntel" */
#else
    return 0;
#endif
}
/* "48K,1M" (or bytes, "49152,1048576"): L1 data, L2; 0 when e is not that */
static int acn__cache_parse(const char *e, size_t *l1d, size_t *l2)
{
    size_t v[2];
    int i;
    for (i = 0; i < 2; i++) {
        char *end;
        unsigned long x;
        if (*e < '0' || *e > '9') return 0;
        x = strtoul(e, &end, 10);
        if (x > 1ul << 30) return 0;
        if (*end == 'K' || *end == 'k') {
            if (x > 1ul << 20) return 0; /* (no wrap where long is 32 bits) */
            x <<= 10, end++;
        } else if (*end == 'M' || *end == 'm') {
            if (x > 1ul << 10) return 0;
            x <<= 20, end++;
        }
        v[i] = (size_t)x;
        if (*end != (i ? '\0' : ',')) return 0;
        e = end + 1;
    }
    *l1d = v[0];
    *l2 = v[1];
    return 1;
}
/* the sizes acn_set_cache takes (per core) */
static int acn__cache_ok(size_t l1d, size_t l2)
{
    return l1d >= ((size_t)4 << 10) && l1d <= ((size_t)1 << 20) && l2 >= ((size_t)32 << 10) && l2 <= ((size_t)1 << 30);
}
/* Sets the context's cache sizes, the packing buffers growing to fit them. */
static acn_status acn__cache_set(acn_ctx *ctx, size_t l1d, size_t l2, size_t l3, const char *from)
{
    size_t need = acn__pack_floats(l1d, l2);
    int lv;
    if (ctx->packbuf && need > ctx->pack_floats) {
        float *buf = (float *)ACN_MALLOC((size_t)ctx->threads * need * sizeof(float) + ACN__ALIGN);
        if (!buf) {
            acn__fail(ctx, ACN_ERR_NOMEM, "set_cache: cannot allocate the packing buffers for %d threads (%lu KB "
                      "each); the sizes stay as they were", ctx->threads, (unsigned long)(need * sizeof(float) >> 10));
            return ctx->status;
        }
        ACN_FREE(ctx->packbuf);
        ctx->packbuf = buf;
    }
    if (!ctx->packbuf || need > ctx->pack_floats) ctx->pack_floats = need;
    for (lv = ACN_SIMD_AVX2; lv <= ACN_SIMD_AVX512; lv++)
        ctx->blk[lv] = acn__blocking(l1d, l2, acn__tiles[lv][0], acn__tiles[lv][1]);
    ctx->cache_l1d = l1d;
    ctx->cache_l2 = l2;
    ctx->cache_l3 = l3;
    ctx->cache_from = from;
    return ACN_OK;
}
/* The CPU's sizes, or 32 KB and 512 KB where it says nothing */
static acn_status acn__cache_detect(acn_ctx *ctx)
{
    size_t l1d, l2, l3;
    acn__cache_cpuid(&l1d, &l2, &l3);
    if (acn__cache_ok(l1d, l2)) return acn__cache_set(ctx, l1d, l2, l3, "cpuid");
    return acn__cache_set(ctx, (size_t)32 << 10, (size_t)512 << 10, l3, "default: the CPU gave no usable sizes");
}
ACNDEF acn_status acn_set_cache(acn_ctx *ctx, size_t l1d, size_t l2)
{
    if (!ctx) return ACN_ERR_ARG;
    if (!l1d && !l2) return acn__cache_detect(ctx);
    if (!acn__cache_ok(l1d, l2)) {
        acn__fail(ctx, ACN_ERR_ARG, "set_cache: L1 data %lu bytes, L2 %lu bytes: give 4 KB to 1 MB and 32 KB to "
                  "1 GB (per core), or 0, 0 to read them from the CPU", (unsigned long)l1d, (unsigned long)l2);
        return ctx->status;
    }
    return acn__cache_set(ctx, l1d, l2, ctx->cache_l3, "acn_set_cache");
}
ACNDEF acn_cache_info acn_cache(const acn_ctx *ctx)
{
    acn_cache_info c;
    memset(&c, 0, sizeof c);
    if (!ctx) return c;
    c.l1d = ctx->cache_l1d;
    c.l2 = ctx->cache_l2;
    c.l3 = ctx->cache_l3;
    c.from = ctx->cache_from;
    c.kc = ctx->blk[ctx->simd].kc; /* (zeros at the portable level) */
    c.kc_long = ctx->blk[ctx->simd].kc_long;
    c.nc = ctx->blk[ctx->simd].nc;
    c.prefetch = ctx->prefetch && ctx->simd == ACN_SIMD_AVX512;
    return c;
}

/* The defaults of a new context: $ACN_PREFETCH, $ACN_SIMD, $ACN_CACHE and $ACN_THREADS,
 * else the CPU (one thread per core this process may run on). */
static acn_status acn__fast_init(acn_ctx *ctx)
{
    const char *e;
    int n = 1;
    size_t l1d, l2;
    if (acn__cache_detect(ctx)) return ctx->status;
    e = getenv("ACN_PREFETCH");
    ctx->prefetch = e && (!strcmp(e, "0") || !strcmp(e, "1")) ? *e == '1' : acn__cpu_intel();
    e = getenv("ACN_CACHE");
    if (e && acn__cache_parse(e, &l1d, &l2) && acn__cache_ok(l1d, l2))
        acn__cache_set(ctx, l1d, l2, ctx->cache_l3, "$ACN_CACHE");
    else if (e) /* (the library prints nothing: acn_cache tells) */
        ctx->cache_from = !strcmp(ctx->cache_from, "cpuid")
                              ? "cpuid; $ACN_CACHE not understood or out of range (\"48K,1M\": L1 data, L2 per core)"
                              : "default; $ACN_CACHE not understood or out of range (\"48K,1M\": L1 data, L2 per core)";
    e = getenv("ACN_SIMD");
    acn_set_simd(ctx, !e ? ACN_SIMD_AVX512 : !strcmp(e, "portable") ? ACN_SIMD_PORTABLE
                      : !strcmp(e, "avx2") ? ACN_SIMD_AVX2 : ACN_SIMD_AVX512);
#ifdef ACN__THREADS
    e = getenv("ACN_THREADS");
    if (e && atoi(e) > 0) n = atoi(e);
#if defined(_SC_NPROCESSORS_ONLN)
    else n = (int)sysconf(_SC_NPROCESSORS_ONLN);
#endif
#ifdef ACN__AFFINITY
    if (!(e && atoi(e) > 0)) { /* the cores this process may use, when fewer (taskset, mpirun's binding) */
        cpu_set_t mine;
        if (!sched_getaffinity(0, sizeof mine, &mine) && CPU_COUNT(&mine) >= 1 && CPU_COUNT(&mine) < n)
            n = CPU_COUNT(&mine);
    }
#endif
    if (n < 1) n = 1;
    if (n > ACN__MAX_THREADS) n = ACN__MAX_THREADS;
#endif
    return acn_set_threads(ctx, n);
}

/* ======================================================================== */
/* Backward                                                                 */
/* ======================================================================== */
/* One walk over the tape, newest first, from the node that made `out`
 * (later nodes cannot feed it), with no recursion. Each backward kernel
 * adds into its inputs' gradients, so a value used by several ops (an ACN
 * output sums L+1 tensors) gets the sum of their gradients.
 *
 * Activation gradients live in a small heap carved from the arena's free
 * part: one is allocated (zeroed) when the first of its consumers runs
 * backward, and released as soon as the node that made it has run, since
 * nothing reads it after that. So a step holds its activations plus the
 * gradients in flight, not a second copy of everything. A node whose
 * output received no gradient (it does not feed `out`) is skipped.
 * Parameters and leaves (acn_new with ACN_F_GRAD) keep their gradients and
 * accumulate, as in PyTorch. */
typedef struct acn__gheap {
    unsigned char *base;       /* the arena's free part when backward began  */
    size_t top, cap, peak;     /* bytes: bump pointer, room, high water      */
    size_t *off, *len;         /* free spans below top, sorted by offset     */
    int n, max;
    acn_ctx *ctx;              /* on a GPU context, base is device memory    */
} acn__gheap;

static float *acn__galloc_raw(acn_ctx *ctx, acn__gheap *h, size_t numel)
{
    size_t need = acn__round_up(numel * sizeof(float), ACN__ALIGN) + ACN__REDZONE, at = h->top;
    int i, k;
    for (i = 0; i < h->n; i++) /* first fit among the released spans */
        if (h->len[i] >= need) {
            at = h->off[i];
            h->off[i] += need;
            h->len[i] -= need;
            if (!h->len[i]) {
                for (k = i; k + 1 < h->n; k++) { h->off[k] = h->off[k + 1]; h->len[k] = h->len[k + 1]; }
                h->n--;
            }
            break;
        }
    if (at == h->top) {
        if (need > h->cap - h->top) {
            acn__fail(ctx, ACN_ERR_ARENA,
                      "backward: the arena is full (%zu bytes of gradients needed, %zu free); create "
                      "the context with a larger acn_ctx_config.arena_bytes, or use a smaller batch",
                      need, h->cap - h->top);
            return NULL;
        }
        h->top += need;
        if (h->top > h->peak) h->peak = h->top;
    }
    ACN__DUNPOISON(ctx, h->base + at, numel * sizeof(float));
#ifdef ACN__ASAN /* a sanitized build sees a read of an unwritten gradient as NaN, not as old zeros */
    if (!ACN__GPU(ctx)) memset(h->base + at, 0xFF, numel * sizeof(float));
#endif
    return (float *)(h->base + at);
}
static float *acn__galloc(acn_ctx *ctx, acn__gheap *h, size_t numel)
{
    float *p = acn__galloc_raw(ctx, h, numel);
    if (p && acn__dzero(ctx, p, numel * sizeof(float), "backward")) return NULL;
    return p;
}

static void acn__gfree(acn__gheap *h, float *p, size_t numel)
{
    size_t at = (size_t)((unsigned char *)p - h->base);
    size_t len = acn__round_up(numel * sizeof(float), ACN__ALIGN) + ACN__REDZONE;
    int i = 0, k;
    ACN__DPOISON(h->ctx, p, len);
    while (i < h->n && h->off[i] < at) i++;
    if (i > 0 && h->off[i - 1] + h->len[i - 1] == at) { /* joins the span before */
        i--;
        h->len[i] += len;
    } else {
        for (k = h->n; k > i; k--) { h->off[k] = h->off[k - 1]; h->len[k] = h->len[k - 1]; }
        h->off[i] = at;
        h->len[i] = len;
        h->n++;
    }
    if (i + 1 < h->n && h->off[i] + h->len[i] == h->off[i + 1]) { /* and the one after */
        h->len[i] += h->len[i + 1];
        for (k = i + 1; k + 1 < h->n; k++) { h->off[k] = h->off[k + 1]; h->len[k] = h->len[k + 1]; }
        h->n--;
    }
    if (h->n && h->off[h->n - 1] + h->len[h->n - 1] == h->top) { /* the top span returns */
        h->top = h->off[h->n - 1];
        h->n--;
    }
}

/* The ops whose backward writes a fresh input gradient (see acn__fresh):
 * the products everywhere; on the CPU also the element-wise ops and
 * LayerNorm (their device twins add, to a cleared gradient). */
static int acn__writes_first(const acn_ctx *ctx, int op)
{
    (void)ctx;
    if (op == ACN__OP_LINEAR || op == ACN__OP_LINEAR_GELU || op == ACN__OP_LINEAR_MID || op == ACN__OP_FFN ||
        op == ACN__OP_LINEAR_ADD_RELU)
        return 1;
    if (ACN__GPU(ctx)) return 0;
    return op == ACN__OP_ADD || op == ACN__OP_SUB || op == ACN__OP_MUL || op == ACN__OP_ADD_N || op == ACN__OP_RELU ||
           op == ACN__OP_GELU || op == ACN__OP_LAYERNORM;
}

static acn_status acn__backward(acn_ctx *ctx, acn_tensor *out, const float *dout);
ACNDEF acn_status acn_backward_with(acn_ctx *ctx, acn_tensor *out, const float *dout)
{
    acn_status st;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!out || !dout) {
        acn__fail(ctx, ACN_ERR_ARG, "backward: %s is NULL", out ? "the upstream gradient" : "the output");
        return ctx->status;
    }
    if (acn__live(ctx, out, "backward", 0)) return ctx->status;
    if (acn__enter(ctx, "backward")) return ACN_ERR_STATE;
    st = acn__backward(ctx, out, dout);
    acn__leave(ctx);
    return ctx->status ? ctx->status : st;
}

/* The walk. `pending` counts the activation gradients allocated and not yet
 * released; when it falls to 0 nothing older can receive a gradient, so the
 * walk stops there and never visits the tape of an earlier step (when a
 * loop forgets acn_reset, each backward costs one step, not all of them). */
static acn_status acn__backward(acn_ctx *ctx, acn_tensor *out, const float *dout)
{
    acn__node *n;
    acn__gheap h;
    size_t used, start, pending = 1, visited = 0;
    int i;
    if (!(out->flags & ACN_F_GRAD) || !out->node) {
        acn__fail(ctx, ACN_ERR_STATE,
                  "backward: '%s' does not depend on any tensor that takes a gradient (a "
                  "parameter, or acn_new with ACN_F_GRAD), or it was built under no_grad",
                  out->name ? out->name : "?");
        return ctx->status;
    }
    /* the heap's span table (a release adds at most one span), then the heap */
    memset(&h, 0, sizeof h);
    start = ctx->arena_used;
    h.max = (int)ctx->tape_len + 2;
    h.off = (size_t *)acn__alloc(ctx, 2 * (size_t)h.max * sizeof(size_t), "backward");
    if (!h.off) return ctx->status;
    h.len = h.off + h.max;
    used = ctx->arena_used;
    h.ctx = ctx;
    h.base = acn__ablock(ctx) + used;
    h.cap = ctx->arena_cap - used;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* the gradients in the device arena's free part */
        h.base = (unsigned char *)acn__aligned(ctx->dev_arena) + ctx->dev_used;
        h.cap = ctx->dev_cap - ctx->dev_used;
    }
#endif
    ctx->backwards++;
    ctx->gheap = &h; /* a kernel's scratch comes from here too (acn_linear_gelu) */
    if (!(out->grad = acn__galloc(ctx, &h, out->numel)) ||
        acn__dcopy(ctx, out->grad, dout, out->numel * sizeof(float), ACN__H2D, "backward")) {
        ctx->gheap = NULL;
        return ctx->status;
    }
    /* activations start with no gradient: each was released (or dropped
     * after an error) by the walk that allocated it */
    for (n = out->node; n && pending && !ctx->status; n = n->prev) {
        visited++;
        if (!n->out->grad) continue; /* nothing downstream of out used it */
        for (i = 0; i < n->n_in; i++) {
            acn_tensor *x = n->in[i];
            if (x && (x->flags & ACN_F_GRAD) && !x->grad) {
                int wf = acn__writes_first(ctx, n->op);
                if (!(x->grad = wf ? acn__galloc_raw(ctx, &h, x->numel) : acn__galloc(ctx, &h, x->numel))) break;
                if (wf) x->flags |= ACN__F_FRESH;
                if (x->node) pending++; /* an activation: released when its node has run */
            }
        }
        if (ctx->status || acn__ready(ctx, n, 1)) break;
        acn__backward_op(ctx, n);
        for (i = 0; i < n->n_in; i++) /* an input the op did not write stays valid for the next one */
            acn__zeroed(n->in[i]);
        if (ctx->check_finite)
            for (i = 0; i < n->n_in; i++) {
                acn_tensor *x = n->in[i];
                if (x && (x->flags & ACN_F_GRAD) &&
                    acn__finite(ctx, x->grad, x->numel, acn__op_name(n->op), "gradient of input", x))
                    break;
            }
        acn__gfree(&h, n->out->grad, n->out->numel);
        n->out->grad = NULL;
        pending--;
    }
    ctx->bwd_nodes = visited;
    /* every activation gradient is released: leave the arena as it was, and
     * count the heap's high water in the peak */
    for (; n && pending; n = n->prev) { /* after an error, drop the pointers into the heap */
        if (n->out->grad) { n->out->grad = NULL; pending--; }
        n->out->flags &= ~ACN__F_FRESH;
    }
    ctx->gheap = NULL;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* the heap was in the device arena */
        if (ctx->dev_used + h.peak > ctx->dev_peak) ctx->dev_peak = ctx->dev_used + h.peak;
    } else
#endif
    if (used + h.peak > ctx->arena_peak) ctx->arena_peak = used + h.peak;
    ACN__POISON(acn__ablock(ctx) + start, used - start); /* the span table too */
    ctx->arena_used = start;
    return ctx->status;
}

ACNDEF acn_status acn_backward(acn_ctx *ctx, acn_tensor *loss)
{
    float one = 1.0f;
    char sh[64];
    if (ctx && !ctx->status && loss && !acn__live(ctx, loss, "backward", 0) && loss->numel != 1) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "backward: the loss has shape %s; it must be a scalar (use acn_mean or "
                  "acn_sum, or acn_backward_with for an upstream gradient)", ACN__SHAPE(loss, sh));
        return ctx->status;
    }
    return acn_backward_with(ctx, loss, &one);
}

/* ======================================================================== */
/* Gradient checker                                                         */
/* ======================================================================== */
ACNDEF acn_gradcheck_opts acn_gradcheck_defaults(void)
{
    acn_gradcheck_opts o;
    o.eps = 1e-2f;
    o.tol = 5e-3f;
    o.max_elems = 64;
    o.seed = 1;
    return o;
}

/* J = sum_i r_i out_i, in double so that the finite difference keeps its
 * digits. The context's generator is restored first, so that ops that draw
 * random numbers (dropout) draw the same ones on every evaluation. */
static double acn__gc_eval(acn_ctx *ctx, acn_build_fn build, void *user, acn_rng rng,
                           const float *r, size_t numel, int *failed)
{
    acn_tensor *out;
    const float *v;
    double J = 0.0;
    size_t i;
    ctx->rng = rng;
    out = build(ctx, user);
    if (!out || out->numel != numel) { *failed = 1; return 0.0; }
    if (!(v = acn_data(ctx, out))) { *failed = 1; return 0.0; }
    for (i = 0; i < numel; i++) J += (double)r[i] * v[i];
    return J;
}

ACNDEF acn_status acn_gradcheck(acn_ctx *ctx, acn_build_fn build, void *user,
                                acn_tensor *const *wrt, int n_wrt, const acn_gradcheck_opts *opts_in,
                                acn_gradcheck_result *res)
{
    acn_gradcheck_opts o = opts_in ? *opts_in : acn_gradcheck_defaults();
    acn_rng pick, rng0;
    acn_mark m0, m1;
    acn_tensor *out;
    float *r, *ana;
    size_t numel, i, *idx;
    int w, k, M = o.max_elems, failed = 0, old_ng;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status || acn__cpu_only(ctx, "gradcheck")) return ctx->status;
    if (!build || !wrt || n_wrt < 1 || !res || o.max_elems < 1 || !(o.eps > 0.0f)) {
        acn__fail(ctx, ACN_ERR_ARG, "gradcheck: needs build(), tensors to check, a result and eps > 0");
        return ctx->status;
    }
    for (w = 0; w < n_wrt; w++)
        if (!wrt[w] || !(wrt[w]->flags & ACN_F_GRAD) || !wrt[w]->grad ||
            (wrt[w]->flags & ACN_F_TRANSIENT)) {
            acn__fail(ctx, ACN_ERR_ARG,
                      "gradcheck: tensor %d must be a stored tensor with ACN_F_GRAD (a parameter "
                      "or acn_new(..., ACN_F_GRAD))", w);
            return ctx->status;
        }
    res->worst = 0.0;
    res->worst_index = 0;
    res->checked = 0;
    rng0 = ctx->rng;
    acn_rng_seed(&pick, o.seed);
    /* The output's size; then, below mark m1, the projection r, the sampled
     * element indices and their analytic gradients. */
    m0 = acn_mark_get(ctx);
    if (!(out = build(ctx, user))) return ctx->status ? ctx->status : ACN_ERR_ARG;
    numel = out->numel;
    acn_mark_rewind(ctx, m0);
    r = acn__alloc_floats(ctx, numel, "gradcheck");
    ana = acn__alloc_floats(ctx, (size_t)n_wrt * M, "gradcheck");
    idx = (size_t *)acn__alloc(ctx, (size_t)n_wrt * M * sizeof(size_t), "gradcheck");
    if (!r || !ana || !idx) return ctx->status;
    for (i = 0; i < numel; i++) r[i] = 2.0f * acn_rng_uniform(&pick) - 1.0f;
    for (w = 0; w < n_wrt; w++)
        for (k = 0; k < M; k++)
            idx[w * M + k] = wrt[w]->numel <= (size_t)M ? (size_t)k % wrt[w]->numel
                                                         : (size_t)(acn_rng_u64(&pick) % wrt[w]->numel);
    m1 = acn_mark_get(ctx);
    /* analytic: one backward of J = r . out */
    for (w = 0; w < n_wrt; w++) memset(wrt[w]->grad, 0, wrt[w]->numel * sizeof(float));
    ctx->rng = rng0;
    out = build(ctx, user);
    if (!out || acn_backward_with(ctx, out, r)) failed = 1;
    for (w = 0; w < n_wrt && !failed; w++)
        for (k = 0; k < M; k++) ana[w * M + k] = wrt[w]->grad[idx[w * M + k]];
    acn_mark_rewind(ctx, m1);
    /* numeric: (J(x + eps) - J(x - eps)) / (the step actually taken) */
    old_ng = acn_set_no_grad(ctx, 1);
    for (w = 0; w < n_wrt && !failed; w++) {
        acn_tensor *t = wrt[w];
        int count = t->numel < (size_t)M ? (int)t->numel : M;
        double num2 = 0.0, diff2 = 0.0, ana2 = 0.0, err, denom;
        for (k = 0; k < count && !failed; k++) {
            size_t j = idx[w * M + k];
            float orig = t->data[j], hi = orig + o.eps, lo = orig - o.eps;
            double Jp, Jm, num, a = ana[w * M + k];
            t->data[j] = hi;
            Jp = acn__gc_eval(ctx, build, user, rng0, r, numel, &failed);
            acn_mark_rewind(ctx, m1);
            t->data[j] = lo;
            Jm = acn__gc_eval(ctx, build, user, rng0, r, numel, &failed);
            acn_mark_rewind(ctx, m1);
            t->data[j] = orig;
            num = (Jp - Jm) / ((double)hi - (double)lo);
            num2 += num * num;
            ana2 += a * a;
            diff2 += (a - num) * (a - num);
            res->checked++;
        }
        denom = sqrt(num2 > ana2 ? num2 : ana2);
        err = denom > 1e-7 ? sqrt(diff2) / denom : 0.0;
        if (err > res->worst || w == 0) {
            res->worst = err;
            res->worst_index = w;
        }
    }
    acn_set_no_grad(ctx, old_ng);
    ctx->rng = rng0;
    acn_mark_rewind(ctx, m0);
    if (failed) {
        if (!ctx->status) acn__fail(ctx, ACN_ERR_ARG, "gradcheck: build() failed or changed its output size");
        return ctx->status;
    }
    if (res->worst > o.tol) {
        acn__fail(ctx, ACN_ERR_STATE,
                  "gradcheck: tensor %d ('%s'): analytic and numeric gradients differ by %.3g "
                  "(relative norm; tolerance %.3g)",
                  res->worst_index, wrt[res->worst_index]->name ? wrt[res->worst_index]->name : "?",
                  res->worst, (double)o.tol);
        return ctx->status;
    }
    return ACN_OK;
}

/* ======================================================================== */
/* Random numbers and initialisers                                          */
/* ======================================================================== */
ACNDEF void acn_rng_seed(acn_rng *r, uint64_t seed) { r->state = seed; }
/* SplitMix64 (Steele, Lea and Flood 2014). */
ACNDEF uint64_t acn_rng_u64(acn_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
/* The state of n draws later: SplitMix64's state is a counter. */
static void acn__rng_skip(acn_rng *r, uint64_t n) { r->state += n * 0x9E3779B97F4A7C15ULL; }
ACNDEF float acn_rng_uniform(acn_rng *r) { return (float)(acn_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }
/* 53-bit uniforms in (0, 1] and [0, 1), then Box-Muller's cosine branch. */
ACNDEF float acn_rng_normal(acn_rng *r)
{
    double u1 = ((double)(acn_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(acn_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
ACNDEF acn_rng *acn_ctx_rng(acn_ctx *ctx) { return ctx ? &ctx->rng : NULL; }

static int acn__init_ok(acn_ctx *ctx, const acn_tensor *t, const char *who)
{
    if (!ctx) return -1;
    if (ctx->status) return -1;
    if (!t || !t->data || (t->flags & ACN_F_TRANSIENT)) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the tensor is NULL or has no storage of its own", who);
        return -1;
    }
    return 0;
}

/* Where an initialiser writes t's values: t's own data on the CPU; on a GPU
 * context, a host buffer that acn__init_done copies up and frees (the draws
 * are the CPU's, so both devices start from the same weights). */
static float *acn__init_dst(acn_ctx *ctx, acn_tensor *t, const char *who)
{
    float *h;
    if (!ACN__GPU(ctx)) return t->data;
    if (!(h = (float *)ACN_MALLOC((t->numel ? t->numel : 1) * sizeof(float))))
        acn__fail(ctx, ACN_ERR_NOMEM, "%s: out of host memory for %zu values on their way to the GPU", who, t->numel);
    return h;
}
static acn_status acn__init_done(acn_ctx *ctx, acn_tensor *t, float *dst, const char *who)
{
    if (dst != t->data) {
        acn__dcopy(ctx, t->data, dst, t->numel * sizeof(float), ACN__H2D, who);
        ACN_FREE(dst);
    }
    return ctx->status;
}

/* PyTorch's _calculate_fan_in_and_fan_out. */
static int acn__fans(acn_ctx *ctx, const acn_tensor *t, const char *who, double *fan_in, double *fan_out)
{
    char sh[64];
    double rf;
    if (t->ndim < 2) {
        acn__fail(ctx, ACN_ERR_SHAPE,
                  "%s: '%s' %s: fan in and fan out need at least 2 dimensions", who,
                  t->name ? t->name : "?", ACN__SHAPE(t, sh));
        return -1;
    }
    rf = (double)acn__prod(t, 2, t->ndim);
    *fan_in = t->shape[1] * rf;
    *fan_out = t->shape[0] * rf;
    return 0;
}

ACNDEF acn_status acn_init_uniform(acn_ctx *ctx, acn_tensor *t, float lo, float hi)
{
    size_t i;
    float *v;
    if (acn__init_ok(ctx, t, "init_uniform") || !(v = acn__init_dst(ctx, t, "init_uniform"))) return acn_status_of(ctx);
    for (i = 0; i < t->numel; i++) v[i] = lo + (hi - lo) * acn_rng_uniform(&ctx->rng);
    return acn__init_done(ctx, t, v, "init_uniform");
}
ACNDEF acn_status acn_init_normal(acn_ctx *ctx, acn_tensor *t, float mean, float std)
{
    size_t i;
    float *v;
    if (acn__init_ok(ctx, t, "init_normal") || !(v = acn__init_dst(ctx, t, "init_normal"))) return acn_status_of(ctx);
    for (i = 0; i < t->numel; i++) v[i] = mean + std * acn_rng_normal(&ctx->rng);
    return acn__init_done(ctx, t, v, "init_normal");
}

/* erf^-1 in double: Winitzki's closed form (error ~2e-3) then Newton steps
 * on erf, which converge to double precision in three. */
static double acn__erfinv(double y)
{
    double a = 0.147, l, t, x;
    int k;
    if (y <= -1.0) return -HUGE_VAL;
    if (y >= 1.0) return HUGE_VAL;
    l = log(1.0 - y * y);
    t = 2.0 / (3.141592653589793 * a) + 0.5 * l;
    x = sqrt(sqrt(t * t - l / a) - t);
    if (y < 0.0) x = -x;
    for (k = 0; k < 3; k++) x -= (erf(x) - y) / (1.1283791670955126 * exp(-x * x));
    return x;
}
/* PyTorch's method: uniform on [2 Phi(a') - 1, 2 Phi(b') - 1], then erfinv,
 * scaled by std sqrt 2, shifted by mean, clamped to [lo, hi]. */
ACNDEF acn_status acn_init_trunc_normal(acn_ctx *ctx, acn_tensor *t, float mean, float std, float lo,
                                        float hi)
{
    double cl, cu;
    size_t i;
    float *v;
    if (acn__init_ok(ctx, t, "init_trunc_normal")) return acn_status_of(ctx);
    if (!(std > 0.0f) || !(lo < hi)) {
        acn__fail(ctx, ACN_ERR_ARG, "init_trunc_normal: need std > 0 and lo < hi (got std %g, [%g, %g])",
                  (double)std, (double)lo, (double)hi);
        return ctx->status;
    }
    cl = 0.5 * (1.0 + erf((lo - mean) / (std * 1.4142135623730951)));
    cu = 0.5 * (1.0 + erf((hi - mean) / (std * 1.4142135623730951)));
    if (!(v = acn__init_dst(ctx, t, "init_trunc_normal"))) return ctx->status;
    for (i = 0; i < t->numel; i++) {
        double u = (2.0 * cl - 1.0) + (2.0 * (cu - cl)) * acn_rng_uniform(&ctx->rng);
        double x = mean + std * 1.4142135623730951 * acn__erfinv(u);
        v[i] = (float)(x < lo ? lo : x > hi ? hi : x);
    }
    return acn__init_done(ctx, t, v, "init_trunc_normal");
}
ACNDEF acn_status acn_init_xavier_uniform(acn_ctx *ctx, acn_tensor *t, float gain)
{
    double fi = 1.0, fo = 1.0, bound;
    if (acn__init_ok(ctx, t, "init_xavier_uniform")) return acn_status_of(ctx);
    if (acn__fans(ctx, t, "init_xavier_uniform", &fi, &fo)) return ctx->status;
    bound = gain * sqrt(6.0 / (fi + fo));
    return acn_init_uniform(ctx, t, (float)-bound, (float)bound);
}
ACNDEF acn_status acn_init_kaiming_uniform(acn_ctx *ctx, acn_tensor *t, float a)
{
    double fi = 1.0, fo = 1.0, bound;
    if (acn__init_ok(ctx, t, "init_kaiming_uniform")) return acn_status_of(ctx);
    if (acn__fans(ctx, t, "init_kaiming_uniform", &fi, &fo)) return ctx->status;
    bound = sqrt(3.0) * sqrt(2.0 / (1.0 + (double)a * a)) / sqrt(fi);
    return acn_init_uniform(ctx, t, (float)-bound, (float)bound);
}
ACNDEF acn_status acn_init_linear(acn_ctx *ctx, acn_tensor *W, acn_tensor *b)
{
    double fi = 1.0, fo = 1.0, bound;
    if (acn_init_kaiming_uniform(ctx, W, (float)sqrt(5.0))) return acn_status_of(ctx);
    if (!b) return ACN_OK;
    acn__fans(ctx, W, "init_linear", &fi, &fo);
    bound = 1.0 / sqrt(fi);
    return acn_init_uniform(ctx, b, (float)-bound, (float)bound);
}
ACNDEF acn_status acn_init_const(acn_ctx *ctx, acn_tensor *t, float value)
{
    size_t i;
    float *v;
    if (acn__init_ok(ctx, t, "init_const") || !(v = acn__init_dst(ctx, t, "init_const"))) return acn_status_of(ctx);
    for (i = 0; i < t->numel; i++) v[i] = value;
    return acn__init_done(ctx, t, v, "init_const");
}
ACNDEF acn_status acn_init_zeros(acn_ctx *ctx, acn_tensor *t) { return acn_init_const(ctx, t, 0.0f); }
ACNDEF acn_status acn_init_ones(acn_ctx *ctx, acn_tensor *t) { return acn_init_const(ctx, t, 1.0f); }

/* ======================================================================== */
/* Optimizers, clipping, schedules                                          */
/* ======================================================================== */
/* A zeroed block of k x (parameter block size) floats for optimizer state. */
static float *acn__opt_block(acn_ctx *ctx, size_t k, const char *who)
{
    float *p;
    if (!ctx->param_used) {
        acn__fail(ctx, ACN_ERR_STATE, "%s: the context has no parameters yet; create the model first", who);
        return NULL;
    }
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* the moments, then AdamW's 4 scalars of a step and a byte per float: no decay */
        size_t bytes = k * ctx->param_used * sizeof(float) + 4 * sizeof(float) + ctx->param_used;
        p = NULL;
        if (acn__cu_ok(ctx, acn__cu_alloc(ctx->cu, (void **)&p, bytes, who))) return NULL;
        if (acn__dzero(ctx, p, bytes, who)) { acn__cu_free(ctx->cu, p); return NULL; }
        return p;
    }
#endif
    p = (float *)ACN_MALLOC(k * ctx->param_used * sizeof(float));
    if (!p) {
        acn__fail(ctx, ACN_ERR_NOMEM, "%s: could not allocate %zu bytes of optimizer state", who,
                  k * ctx->param_used * sizeof(float));
        return NULL;
    }
    acn__hugepages(p, k * ctx->param_used * sizeof(float));
    memset(p, 0, k * ctx->param_used * sizeof(float));
    return p;
}
static int acn__opt_matches(acn_ctx *ctx, const void *opt, int n_params, const char *who)
{
    if (!ctx || ctx->status) return -1;
    if (!opt) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the optimizer is NULL (set it up with acn_%s_init after the model)", who, who);
        return -1;
    }
    if (ctx->n_params != n_params) {
        acn__fail(ctx, ACN_ERR_STATE,
                  "%s: the optimizer was made for %d parameters and the context now has %d; "
                  "create the optimizer after the whole model", who, n_params, ctx->n_params);
        return -1;
    }
    return 0;
}

#ifdef ACN_CUDA
/* On a GPU context AdamW reads which floats take weight decay from a byte
 * per float beside its moments. acn__decay_sig: the parameters' settings
 * in one number (FNV-1a of the flags), so a step sees when
 * acn_param_set_decay changed them; acn__adamw_decay_up: the bytes made on
 * the host and copied up in one go. */
static uint64_t acn__decay_sig(const acn_ctx *ctx)
{
    uint64_t h = 1469598103934665603ULL;
    int k;
    for (k = 0; k < ctx->n_params; k++) h = (h ^ (uint64_t)!!(ctx->ptab[k].flags & ACN_F_NODECAY)) * 1099511628211ULL;
    return h;
}
static int acn__adamw_decay_up(acn_ctx *ctx, acn_adamw *opt)
{
    unsigned char *h = (unsigned char *)ACN_MALLOC(opt->n ? opt->n : 1);
    int k;
    if (!h) {
        acn__fail(ctx, ACN_ERR_NOMEM, "adamw: out of host memory for %zu bytes of weight-decay marks", opt->n);
        return -1;
    }
    memset(h, 0, opt->n);
    for (k = 0; k < ctx->n_params; k++)
        if (ctx->ptab[k].flags & ACN_F_NODECAY) memset(h + ctx->ptab[k].offset, 1, ctx->ptab[k].numel);
    acn__dcopy(ctx, (unsigned char *)(opt->v + opt->n + 4), h, opt->n, ACN__H2D, "adamw");
    ACN_FREE(h);
    opt->decay_sig_ = acn__decay_sig(ctx);
    return ctx->status ? -1 : 0;
}
#endif
ACNDEF acn_status acn_adamw_init(acn_ctx *ctx, acn_adamw *opt, float beta1, float beta2, float eps,
                                 float weight_decay)
{
    if (!ctx) return ACN_ERR_ARG;
    if (!opt) {
        acn__fail(ctx, ACN_ERR_ARG, "adamw_init: the optimizer struct is NULL (pass the address of one)");
        return acn_status_of(ctx);
    }
    memset(opt, 0, sizeof *opt);
    if (ctx->status) return ctx->status;
    if (!(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f) || !(eps >= 0.0f) ||
        !(weight_decay >= 0.0f)) {
        acn__fail(ctx, ACN_ERR_ARG, "adamw: betas must be in [0, 1), eps and weight decay >= 0");
        return ctx->status;
    }
    if (!(opt->m = acn__opt_block(ctx, 2, "adamw"))) return ctx->status;
    opt->v = opt->m + ctx->param_used;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* the bytes that mark the parameters without weight decay */
        opt->dev_ = ctx->cu;
        if (acn__adamw_decay_up(ctx, opt)) {
            acn_adamw_free(opt);
            return ctx->status;
        }
    }
#endif
    opt->n = ctx->param_used;
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->weight_decay = weight_decay;
    opt->n_params = ctx->n_params;
    return ACN_OK;
}
/* One flat loop over [lo, hi) of the contiguous parameter block, walking
 * the parameters that overlap it for their decay setting. The padding
 * between parameters is zero in w, g, m and v, and stays zero. */
typedef struct acn__adamw_job { acn_ctx *ctx; acn_adamw *opt; float step_size, bc2_sqrt, decay_keep; } acn__adamw_job;
static void acn__adamw_task(void *arg, int part, int parts, int tid)
{
    const acn__adamw_job *j = (const acn__adamw_job *)arg;
    const acn_ctx *ctx = j->ctx;
    const acn_adamw *opt = j->opt;
    float b1 = opt->beta1, b2 = opt->beta2, *w = acn__pblock(ctx), *g = acn__gblock(ctx);
    size_t lo, hi, i;
    int k;
    (void)tid;
    acn__share(opt->n, 16, part, parts, &lo, &hi);
    for (k = 0; k < ctx->n_params && lo < hi; k++) {
        const acn_tensor *p = &ctx->ptab[k];
        size_t end = k + 1 < ctx->n_params ? ctx->ptab[k + 1].offset : opt->n;
        float keep = (p->flags & ACN_F_NODECAY) ? 1.0f : j->decay_keep;
        if (end <= lo) continue;
        i = lo;
#ifdef ACN__X86
        if (ctx->simd >= ACN_SIMD_AVX2) /* the same operations, 8 at a time */
            i = acn__adamw256(w, opt->m, opt->v, g, lo, hi < end ? hi : end, keep, b1, b2, j->step_size, j->bc2_sqrt,
                              opt->eps);
#endif
        for (; i < hi && i < end; i++) {
            w[i] *= keep;                                        /* decoupled decay */
            opt->m[i] = opt->m[i] * b1 + g[i] * (1.0f - b1);
            opt->v[i] = opt->v[i] * b2 + g[i] * g[i] * (1.0f - b2);
            w[i] -= j->step_size * (opt->m[i] / (sqrtf(opt->v[i]) / j->bc2_sqrt + opt->eps));
        }
        lo = i;
    }
}
ACNDEF acn_status acn_adamw_step(acn_ctx *ctx, acn_adamw *opt, float lr)
{
    acn__adamw_job j;
    double bc1, bc2;
    if (acn__opt_matches(ctx, opt, opt ? opt->n_params : 0, "adamw")) return acn_status_of(ctx);
    if (acn__enter(ctx, "adamw_step")) return ACN_ERR_STATE;
    opt->step++;
    bc1 = 1.0 - pow(opt->beta1, (double)opt->step);
    bc2 = 1.0 - pow(opt->beta2, (double)opt->step);
    j.ctx = ctx;
    j.opt = opt;
    j.step_size = (float)(lr / bc1);
    j.bc2_sqrt = (float)sqrt(bc2);
    j.decay_keep = (float)(1.0 - (double)lr * opt->weight_decay);
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* the step's scalars go up beside the moments; the kernel reads them there */
        float hp[4], *dhp = opt->v + opt->n;
        hp[0] = j.step_size;
        hp[1] = j.bc2_sqrt;
        hp[2] = j.decay_keep;
        hp[3] = 0.0f;
        if ((opt->decay_sig_ == acn__decay_sig(ctx) || !acn__adamw_decay_up(ctx, opt)) &&
            !acn__dcopy(ctx, dhp, hp, sizeof hp, ACN__H2D, "adamw_step"))
            acn__cu_ok(ctx, acn__cu_adamw(ctx->cu, opt->n, acn__pblock(ctx), acn__gblock(ctx), opt->m, opt->v,
                                          (const unsigned char *)(dhp + 4), dhp, opt->beta1, opt->beta2, opt->eps,
                                          "adamw_step"));
        acn__leave(ctx);
        return ctx->status;
    }
#endif
    acn__parallel(ctx, acn__adamw_task, &j, (double)opt->n * ACN__NS_ELEM_HEAVY, 4);
    acn__leave(ctx);
    return ctx->status;
}
ACNDEF void acn_adamw_free(acn_adamw *opt)
{
    if (!opt) return;
#ifdef ACN_CUDA
    if (opt->dev_) {
        acn__cu_free((acn__cu *)opt->dev_, opt->m);
        opt->m = opt->v = NULL;
        opt->dev_ = NULL;
        return;
    }
#endif
    ACN_FREE(opt->m);
    opt->m = opt->v = NULL;
}

ACNDEF acn_status acn_sgd_init(acn_ctx *ctx, acn_sgd *opt, float momentum, float dampening,
                               float weight_decay, int nesterov)
{
    if (!ctx) return ACN_ERR_ARG;
    if (!opt) {
        acn__fail(ctx, ACN_ERR_ARG, "sgd_init: the optimizer struct is NULL (pass the address of one)");
        return acn_status_of(ctx);
    }
    memset(opt, 0, sizeof *opt);
    if (ctx->status) return ctx->status;
    if (acn__cpu_only(ctx, "sgd_init")) return ctx->status; /* AdamW runs on both */
    if (!(momentum >= 0.0f) || !(weight_decay >= 0.0f) || (nesterov && (momentum <= 0.0f || dampening != 0.0f))) {
        acn__fail(ctx, ACN_ERR_ARG,
                  "sgd: momentum and weight decay must be >= 0; Nesterov needs momentum > 0 and "
                  "no dampening");
        return ctx->status;
    }
    if (momentum > 0.0f && !(opt->buf = acn__opt_block(ctx, 1, "sgd"))) return ctx->status;
    opt->n = ctx->param_used;
    opt->momentum = momentum;
    opt->dampening = dampening;
    opt->weight_decay = weight_decay;
    opt->nesterov = nesterov;
    opt->n_params = ctx->n_params;
    return ACN_OK;
}
ACNDEF acn_status acn_sgd_step(acn_ctx *ctx, acn_sgd *opt, float lr)
{
    int k;
    if (acn__opt_matches(ctx, opt, opt ? opt->n_params : 0, "sgd")) return acn_status_of(ctx);
    if (acn__enter(ctx, "sgd_step")) return ACN_ERR_STATE;
    for (k = 0; k < ctx->n_params; k++) {
        acn_tensor *p = &ctx->ptab[k];
        float *w = p->data, *g = p->grad, *buf = opt->buf ? opt->buf + p->offset : NULL;
        float wd = (p->flags & ACN_F_NODECAY) ? 0.0f : opt->weight_decay;
        size_t i;
        for (i = 0; i < p->numel; i++) {
            float d = g[i] + wd * w[i];
            if (buf) {
                buf[i] = opt->step == 0 ? d : buf[i] * opt->momentum + d * (1.0f - opt->dampening);
                d = opt->nesterov ? d + opt->momentum * buf[i] : buf[i];
            }
            w[i] -= lr * d;
        }
    }
    opt->step++;
    acn__leave(ctx);
    return ctx->status;
}
ACNDEF void acn_sgd_free(acn_sgd *opt)
{
    if (!opt) return;
    ACN_FREE(opt->buf);
    opt->buf = NULL;
}

/* Whole-block passes over the flat gradient block, on the pool: zero it
 * (op 0), sum its squares in double per chunk (op 1; the caller adds the
 * chunks' sums in order), or scale it (op 2). The chunks depend on the
 * block's size only: at least 65536 floats, at most ACN__CHUNKS of them. */
#define ACN__CHUNKS 64
static size_t acn__chunk(size_t n)
{
    size_t c = (n + ACN__CHUNKS - 1) / ACN__CHUNKS;
    return c < 65536 ? 65536 : c;
}
typedef struct acn__gblock_job { acn_ctx *ctx; int op; float coef; double *sums; } acn__gblock_job;
static void acn__gblock_task(void *arg, int part, int parts, int tid)
{
    const acn__gblock_job *j = (const acn__gblock_job *)arg;
    float *g = acn__gblock(j->ctx);
    size_t n = j->ctx->param_used, len = acn__chunk(n), chunks = (n + len - 1) / len, lo, hi, c, i;
    (void)tid;
    acn__share(chunks, 1, part, parts, &lo, &hi);
    for (c = lo; c < hi; c++) {
        size_t a = c * len, b = a + len < n ? a + len : n;
        if (j->op == 0) {
            memset(g + a, 0, (b - a) * sizeof(float));
        } else if (j->op == 1) {
            j->sums[c] = acn__sumsq(j->ctx, g + a, b - a);
        } else {
            for (i = a; i < b; i++) g[i] *= j->coef;
        }
    }
}
static void acn__gblock_pass(acn_ctx *ctx, int op, float coef, double *sums)
{
    acn__gblock_job j;
    j.ctx = ctx;
    j.op = op;
    j.coef = coef;
    j.sums = sums;
    acn__parallel(ctx, acn__gblock_task, &j, (double)ctx->param_used * ACN__NS_ELEM * (op == 0 ? 0.5 : 2.0), 4);
}
/* The norm of the flat gradient block (the padding between parameters is
 * zero): squares summed in double per chunk, the chunks in order. */
ACNDEF acn_status acn_clip_grad_norm(acn_ctx *ctx, float max_norm, float *norm_out)
{
    double s = 0.0, sums[ACN__CHUNKS];
    float norm, coef;
    size_t i, chunks;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!(max_norm > 0.0f)) {
        acn__fail(ctx, ACN_ERR_ARG, "clip_grad_norm: max_norm must be > 0 (got %g)", (double)max_norm);
        return ctx->status;
    }
    if (acn__enter(ctx, "clip_grad_norm")) return ACN_ERR_STATE;
#ifdef ACN_CUDA
    if (ACN__GPU(ctx)) { /* the norm and the scaling on the device; the norm comes back only if asked for */
        float *dnorm = (float *)((unsigned char *)acn__aligned(ctx->dev_scratch) + acn__cu_clip_scratch_bytes());
        if (!acn__cu_ok(ctx, acn__cu_clip(ctx->cu, ctx->param_used, acn__gblock(ctx), max_norm,
                                          acn__aligned(ctx->dev_scratch), dnorm, "clip_grad_norm")) && norm_out)
            acn__dcopy(ctx, norm_out, dnorm, sizeof(float), ACN__D2H, "clip_grad_norm");
        acn__leave(ctx);
        return ctx->status;
    }
#endif
    chunks = (ctx->param_used + acn__chunk(ctx->param_used) - 1) / acn__chunk(ctx->param_used);
    acn__gblock_pass(ctx, 1, 0.0f, sums);
    for (i = 0; i < chunks; i++) s += sums[i];
    norm = (float)sqrt(s);
    if (norm_out) *norm_out = norm;
    coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f) acn__gblock_pass(ctx, 2, coef, NULL);
    acn__leave(ctx);
    return ctx->status;
}

ACNDEF acn_schedule acn_schedule_constant(float lr)
{
    acn_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = ACN_SCHED_CONSTANT;
    s.base_lr = s.min_lr = lr;
    return s;
}
ACNDEF acn_schedule acn_schedule_warmup_cosine(float base_lr, int64_t warmup, int64_t total, float min_lr)
{
    acn_schedule s = acn_schedule_constant(base_lr);
    s.kind = ACN_SCHED_WARMUP_COSINE;
    s.min_lr = min_lr;
    s.warmup = warmup < 0 ? 0 : warmup;
    s.total = total;
    return s;
}
ACNDEF acn_schedule acn_schedule_step(float base_lr, int64_t step_size, float gamma)
{
    acn_schedule s = acn_schedule_constant(base_lr);
    s.kind = ACN_SCHED_STEP;
    s.step_size = step_size > 0 ? step_size : 1;
    s.gamma = gamma;
    return s;
}
ACNDEF float acn_lr_at(const acn_schedule *s, int64_t step)
{
    double p;
    if (step < 0) step = 0;
    switch (s->kind) {
    case ACN_SCHED_WARMUP_COSINE:
        if (step < s->warmup) return (float)((double)s->base_lr * (double)(step + 1) / (double)s->warmup);
        if (step >= s->total || s->total <= s->warmup) return s->min_lr;
        p = (double)(step - s->warmup) / (double)(s->total - s->warmup);
        return (float)(s->min_lr + 0.5 * ((double)s->base_lr - s->min_lr) * (1.0 + cos(3.141592653589793 * p)));
    case ACN_SCHED_STEP:
        return (float)((double)s->base_lr * pow((double)s->gamma, (double)(step / s->step_size)));
    default:
        return s->base_lr;
    }
}

/* ---- pruning ------------------------------------------------------------ */
typedef struct acn__score { float s; size_t i; } acn__score;
static int acn__score_cmp(const void *a, const void *b)
{
    const acn__score *x = (const acn__score *)a, *y = (const acn__score *)b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}
ACNDEF acn_status acn_prune(acn_ctx *ctx, acn_pruning *p, acn_tensor *const *weights, int n_weights,
                            float sparsity, int score)
{
    const float *w, *g;
    acn__score *sc;
    size_t total = 0, k, j, m = 0;
    int t;
    if (!ctx) return ACN_ERR_ARG;
    if (!ctx->status && acn__cpu_only(ctx, "prune")) return ctx->status;
    if (!p) {
        acn__fail(ctx, ACN_ERR_ARG, "prune: the pruning struct is NULL (pass the address of one)");
        return ctx->status;
    }
    memset(p, 0, sizeof *p);
    if (ctx->status) return ctx->status;
    if (!weights || n_weights < 1 || !(sparsity >= 0.0f && sparsity <= 1.0f) ||
        (score != ACN_PRUNE_MAGNITUDE && score != ACN_PRUNE_MOVEMENT)) {
        acn__fail(ctx, ACN_ERR_ARG, "prune: %d weights, sparsity %g, score %d: need at least one weight, a sparsity "
                  "in [0, 1] and ACN_PRUNE_MAGNITUDE or ACN_PRUNE_MOVEMENT", weights ? n_weights : 0,
                  (double)sparsity, score);
        return ctx->status;
    }
    for (t = 0; t < n_weights; t++) {
        const acn_tensor *x = weights[t];
        if (!x || !(x->flags & ACN_F_PARAM) || x->ctx != ctx) {
            acn__fail(ctx, ACN_ERR_ARG, "prune: weight %d (%s) is %s; list parameters of this context", t,
                      x && x->name ? x->name : "?", !x ? "NULL" : x->ctx != ctx ? "of another context"
                                                                        : "not a parameter");
            return ctx->status;
        }
        for (m = 0; m < (size_t)t; m++)
            if (weights[m] == x) {
                acn__fail(ctx, ACN_ERR_ARG, "prune: %s is listed twice (as weights %zu and %d); list each once",
                          x->name, m, t);
                return ctx->status;
            }
        total += x->numel;
    }
    m = 0;
    p->keep = (unsigned char *)ACN_MALLOC(ctx->param_used ? ctx->param_used : 1);
    sc = (acn__score *)ACN_MALLOC((total ? total : 1) * sizeof *sc);
    if (!p->keep || !sc) {
        ACN_FREE(p->keep);
        ACN_FREE(sc);
        p->keep = NULL;
        acn__fail(ctx, ACN_ERR_NOMEM, "prune: out of memory for the scores of %zu elements", total);
        return ctx->status;
    }
    memset(p->keep, 1, ctx->param_used);
    p->n = ctx->param_used;
    w = acn__pblock(ctx);
    g = acn__gblock(ctx);
    for (t = 0; t < n_weights; t++) { /* each element's score and its place in the block */
        const acn_tensor *x = weights[t];
        for (j = 0; j < x->numel; j++) {
            size_t i = x->offset + j;
            sc[m].s = score == ACN_PRUNE_MAGNITUDE ? fabsf(w[i]) : fabsf(w[i] * g[i]);
            sc[m++].i = i;
        }
    }
    for (j = 0, k = 0; j < total; j++) { /* scores that can be ranked */
        if (!isfinite(sc[j].s)) {
            size_t before = 0; /* which weight element j belongs to: they were scored in listed order */
            for (t = 0; t + 1 < n_weights && j >= before + weights[t]->numel; t++) before += weights[t]->numel;
            acn__fail(ctx, ACN_ERR_NONFINITE, "prune: the score of an element of %s is %g (its weight or its "
                      "gradient is not finite); nothing was pruned", weights[t]->name, (double)sc[j].s);
            break;
        }
        k += sc[j].s != 0.0f;
    }
    if (!ctx->status && score == ACN_PRUNE_MOVEMENT && total && !k)
        acn__fail(ctx, ACN_ERR_STATE, "prune: every movement score |w g| is 0: the gradients are 0 (run backward on a "
                  "few batches, without acn_zero_grad after them, before acn_prune)");
    if (ctx->status) {
        ACN_FREE(sc);
        acn_pruning_free(p);
        return ctx->status;
    }
    qsort(sc, total, sizeof *sc, acn__score_cmp);
    k = (size_t)((double)sparsity * (double)total + 0.5);
    for (j = 0; j < k; j++) p->keep[sc[j].i] = 0;
    ACN_FREE(sc);
    p->scored = total;
    p->pruned = k;
    return ACN_OK;
}
ACNDEF acn_status acn_prune_apply(acn_ctx *ctx, const acn_pruning *p, acn_adamw *opt)
{
    float *w, *g;
    size_t i;
    if (!ctx) return ACN_ERR_ARG;
    if (!ctx->status && acn__cpu_only(ctx, "prune_apply")) return ctx->status;
    if (ctx->status) return ctx->status;
    if (!p || !p->keep || p->n != ctx->param_used || (opt && (!opt->m || opt->n != p->n))) {
        acn__fail(ctx, ACN_ERR_ARG, "prune_apply: %s", !p || !p->keep ? "no mask (make one with acn_prune)"
                  : p->n != ctx->param_used ? "the mask was made for another parameter block (create every "
                                              "parameter before pruning)"
                                            : "the optimizer covers another parameter block");
        return ctx->status;
    }
    w = acn__pblock(ctx);
    g = acn__gblock(ctx);
    for (i = 0; i < p->n; i++)
        if (!p->keep[i]) {
            w[i] = g[i] = 0.0f;
            if (opt) opt->m[i] = opt->v[i] = 0.0f;
        }
    return ACN_OK;
}
ACNDEF void acn_pruning_free(acn_pruning *p)
{
    if (!p) return;
    ACN_FREE(p->keep);
    memset(p, 0, sizeof *p);
}

/* ---- Synaptic Intelligence ---------------------------------------------- */
static int acn__si_ok(acn_ctx *ctx, const acn_si *si, const char *who)
{
    if (!ctx) return -1;
    if (ctx->status) return -1;
    if (!si || !si->omega) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the SI state is %s (set it up with acn_si_init after the model)", who,
                  si ? "not initialised" : "NULL");
        return -1;
    }
    if (si->n != ctx->param_used || si->n_params != ctx->n_params) {
        acn__fail(ctx, ACN_ERR_STATE, "%s: the SI state was made for %d parameters (%zu floats) and the context "
                  "now has %d (%zu); create every parameter before acn_si_init", who, si->n_params, si->n,
                  ctx->n_params, ctx->param_used);
        return -1;
    }
    return 0;
}
ACNDEF acn_status acn_si_init(acn_ctx *ctx, acn_si *si, float c, float xi)
{
    size_t n;
    if (!ctx) return ACN_ERR_ARG;
    if (!ctx->status && acn__cpu_only(ctx, "si_init")) return ctx->status;
    if (!si) {
        acn__fail(ctx, ACN_ERR_ARG, "si_init: the SI struct is NULL (pass the address of one)");
        return ctx->status;
    }
    memset(si, 0, sizeof *si);
    if (ctx->status) return ctx->status;
    if (!(c >= 0.0f) || !(xi > 0.0f)) {
        acn__fail(ctx, ACN_ERR_ARG, "si_init: strength c = %g and damping xi = %g: need c >= 0 and xi > 0",
                  (double)c, (double)xi);
        return ctx->status;
    }
    if (!(si->omega = acn__opt_block(ctx, 6, "si_init"))) return ctx->status;
    n = si->n = ctx->param_used;
    si->anchor = si->omega + n;
    si->start = si->anchor + n;
    si->path = si->start + n;
    si->g = si->path + n;
    si->w = si->g + n;
    memcpy(si->anchor, acn__pblock(ctx), n * sizeof(float));
    memcpy(si->start, si->anchor, n * sizeof(float));
    si->c = c;
    si->xi = xi;
    si->n_params = ctx->n_params;
    return ACN_OK;
}
/* penalty = c sum omega (w - w*)^2;  dpenalty/dw = 2 c omega (w - w*), added
 * to the gradient after g (the task's) and w are kept for acn_si_update. */
ACNDEF acn_status acn_si_penalty(acn_ctx *ctx, acn_si *si, float *penalty)
{
    float *w, *g;
    double sum = 0.0;
    size_t i;
    if (acn__si_ok(ctx, si, "si_penalty")) return ctx ? ctx->status : ACN_ERR_ARG;
    if (si->pending) {
        acn__fail(ctx, ACN_ERR_STATE, "si_penalty: called twice in one step (its gradient would be added twice, "
                  "and the task's gradient lost); call acn_si_update after the optimizer step, or acn_si_value to "
                  "read the penalty alone");
        return ctx->status;
    }
    si->pending = 1;
    w = acn__pblock(ctx);
    g = acn__gblock(ctx);
    memcpy(si->g, g, si->n * sizeof(float));
    memcpy(si->w, w, si->n * sizeof(float));
    for (i = 0; i < si->n; i++) {
        float d = w[i] - si->anchor[i];
        sum += (double)si->omega[i] * d * d;
        g[i] += 2.0f * si->c * si->omega[i] * d;
    }
    if (penalty) *penalty = (float)(si->c * sum);
    return ACN_OK;
}
ACNDEF acn_status acn_si_value(acn_ctx *ctx, const acn_si *si, float *penalty)
{
    const float *w;
    double sum = 0.0;
    size_t i;
    if (acn__si_ok(ctx, si, "si_value")) return ctx ? ctx->status : ACN_ERR_ARG;
    w = acn__pblock(ctx);
    for (i = 0; i < si->n; i++) sum += (double)si->omega[i] * (w[i] - si->anchor[i]) * (w[i] - si->anchor[i]);
    if (penalty) *penalty = (float)(si->c * sum);
    return ACN_OK;
}
/* path -= g (w - w before the step), with g and w kept by acn_si_penalty */
ACNDEF acn_status acn_si_update(acn_ctx *ctx, acn_si *si)
{
    const float *w;
    size_t i;
    if (acn__si_ok(ctx, si, "si_update")) return ctx ? ctx->status : ACN_ERR_ARG;
    if (!si->pending) {
        acn__fail(ctx, ACN_ERR_STATE, "si_update: no acn_si_penalty since the last update, so the step's task "
                  "gradient is not known; call acn_si_penalty after backward and before the optimizer step");
        return ctx->status;
    }
    si->pending = 0;
    w = acn__pblock(ctx);
    for (i = 0; i < si->n; i++) si->path[i] -= si->g[i] * (w[i] - si->w[i]);
    return ACN_OK;
}
/* omega += path / ((w - w_start)^2 + xi); w* = w_start = w; path = 0 */
ACNDEF acn_status acn_si_consolidate(acn_ctx *ctx, acn_si *si)
{
    const float *w;
    size_t i;
    if (acn__si_ok(ctx, si, "si_consolidate")) return ctx ? ctx->status : ACN_ERR_ARG;
    w = acn__pblock(ctx);
    for (i = 0; i < si->n; i++) {
        float d = w[i] - si->start[i];
        si->omega[i] += si->path[i] / (d * d + si->xi);
        si->path[i] = 0.0f;
    }
    memcpy(si->anchor, w, si->n * sizeof(float));
    memcpy(si->start, w, si->n * sizeof(float));
    si->tasks++;
    return ACN_OK;
}
ACNDEF void acn_si_free(acn_si *si)
{
    if (!si) return;
    ACN_FREE(si->omega);
    memset(si, 0, sizeof *si);
}

/* ======================================================================== */
/* Data parallel training over processes                                    */
/* ======================================================================== */
#ifdef ACN_MPI
static int acn__mpi_started; /* acn_dist_init called MPI_Init */
/* An MPI call's failure as the context's error: the call and MPI's words. */
static acn_status acn__mpi_check(acn_ctx *ctx, int rc, const char *what)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (rc == MPI_SUCCESS) return ACN_OK;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", rc);
    acn__fail(ctx, ACN_ERR_DIST, "%s on rank %d of %d failed: %s (another rank may have stopped; its own "
              "message says why)", what, ctx->dist_rank, ctx->dist_size, text);
    return ctx->status;
}
#endif

/* It joins even when the context holds an error (the others are joining
 * too: MPI_Comm_dup is collective), then returns that error. */
ACNDEF acn_status acn_dist_init(acn_ctx *ctx)
{
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->dist_size) {
        acn__fail(ctx, ACN_ERR_STATE, "dist_init: this context has joined the processes already");
        return ctx->status;
    }
#ifdef ACN_MPI
    {
        int on = 0, rank = 0, size = 1, level;
        MPI_Initialized(&on);
        if (!on) { /* the pool's workers never call MPI: only this thread does */
            if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &level) != MPI_SUCCESS) {
                acn__fail(ctx, ACN_ERR_DIST, "dist_init: MPI_Init failed; start the program with mpirun");
                return ctx->status;
            }
            acn__mpi_started = 1;
        }
        {
            int rc = MPI_Comm_dup(MPI_COMM_WORLD, &ctx->comm);
            if (rc != MPI_SUCCESS) return acn__mpi_check(ctx, rc, "dist_init: MPI_Comm_dup");
        }
        MPI_Comm_set_errhandler(ctx->comm, MPI_ERRORS_RETURN); /* failures come back as codes */
        MPI_Comm_rank(ctx->comm, &rank);
        MPI_Comm_size(ctx->comm, &size);
        ctx->dist_rank = rank;
        ctx->dist_size = size;
        ctx->dist_local = 1;
        { /* the ranks that share this machine's memory (and cores) */
            MPI_Comm node;
            if (MPI_Comm_split_type(ctx->comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
                MPI_Comm_size(node, &ctx->dist_local);
                MPI_Comm_free(&node);
            }
        }
    }
#else
    ctx->dist_size = ctx->dist_local = 1;
#endif
    return ctx->status;
}
ACNDEF void acn_dist_finalize(void)
{
#ifdef ACN_MPI
    int done = 0;
    MPI_Finalized(&done);
    if (acn__mpi_started && !done) MPI_Finalize();
    acn__mpi_started = 0;
#endif
}
ACNDEF int acn_dist_rank(const acn_ctx *ctx) { return ctx ? ctx->dist_rank : 0; }
ACNDEF int acn_dist_size(const acn_ctx *ctx) { return ctx && ctx->dist_size ? ctx->dist_size : 1; }
ACNDEF int acn_dist_local_size(const acn_ctx *ctx) { return ctx && ctx->dist_local ? ctx->dist_local : 1; }

/* Rank r of n takes batch / n rows, and one more when r < batch % n: with
 * fewer rows than ranks, the last ranks take none (and run no forward pass;
 * their share of the sum is 0). */
ACNDEF acn_status acn_dist_rows(acn_ctx *ctx, int batch, int *offset, int *count)
{
    int n, r, base, extra;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    n = acn_dist_size(ctx);
    r = ctx->dist_rank;
    if (!offset || !count)
        acn__fail(ctx, ACN_ERR_ARG, "dist_rows: offset and count must not be NULL");
    else if (batch < 1)
        acn__fail(ctx, ACN_ERR_ARG, "dist_rows: a batch of %d rows; it must have at least one", batch);
    if (ctx->status) return ctx->status;
    base = batch / n;
    extra = batch % n;
    *offset = r * base + (r < extra ? r : extra);
    *count = base + (r < extra);
    ctx->dist_off = *offset;
    ctx->dist_cnt = *count;
    ctx->dist_batch = batch;
    return ACN_OK;
}

/* g = sum over the ranks of weight_r g_r. A rank that holds an error says
 * so first (one int over all ranks), so that no rank waits for a sum that
 * will not come: every rank then returns an error. */
ACNDEF acn_status acn_dist_sum_grads(acn_ctx *ctx, double weight)
{
    if (!ctx) return ACN_ERR_ARG;
    if (!(weight >= 0.0 && weight <= 1.0)) {
        acn__fail(ctx, ACN_ERR_ARG, "dist_sum_grads: weight = %g; it is this rank's share of the loss's "
                  "denominator, in [0, 1] (count / batch for a mean over rows)", weight);
    }
    if (ctx->dist_size > 1) acn__cpu_only(ctx, "dist_sum_grads"); /* the other ranks learn of it below */
#ifdef ACN_MPI
    if (ctx->dist_size > 1) {
        int entered = !acn__enter(ctx, "dist_sum_grads"), bad = !entered || ctx->status != ACN_OK, rc;
        size_t done, n = ctx->param_used;
        float *g = acn__gblock(ctx);
        rc = MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, ctx->comm);
        if (rc != MPI_SUCCESS || bad) {
            if (rc != MPI_SUCCESS) acn__mpi_check(ctx, rc, "dist_sum_grads: MPI_Allreduce");
            else acn__fail(ctx, ACN_ERR_DIST, "dist_sum_grads: another rank failed before this step's sum (its "
                           "own message says why); every rank stops here");
            if (entered) acn__leave(ctx);
            return entered ? ctx->status : ACN_ERR_STATE;
        }
        if (weight != 1.0) acn__gblock_pass(ctx, 2, (float)weight, NULL);
        for (done = 0; done < n && !ctx->status;) { /* counts are ints: in pieces of at most 2^30 */
            int len = (int)(n - done < ((size_t)1 << 30) ? n - done : ((size_t)1 << 30));
            acn__mpi_check(ctx, MPI_Allreduce(MPI_IN_PLACE, g + done, len, MPI_FLOAT, MPI_SUM, ctx->comm),
                           "dist_sum_grads: MPI_Allreduce");
            done += (size_t)len;
        }
        acn__leave(ctx);
        return ctx->status;
    }
#endif
    if (ctx->status) return ctx->status;
    if (weight != 1.0) { /* alone: the sum is this rank's own, scaled */
        if (acn__enter(ctx, "dist_sum_grads")) return ACN_ERR_STATE;
        acn__gblock_pass(ctx, 2, (float)weight, NULL);
        acn__leave(ctx);
    }
    return ctx->status;
}

/* These two run even when the context holds an error, so that a rank
 * that failed can still tell the others (acn_dist_any). */
ACNDEF acn_status acn_dist_sum(acn_ctx *ctx, double *values, int n)
{
    if (!ctx) return ACN_ERR_ARG;
    if (n < 0 || (n && !values)) {
        acn__fail(ctx, ACN_ERR_ARG, "dist_sum: %d values at %p", n, (void *)values);
        return ctx->status;
    }
#ifdef ACN_MPI
    if (ctx->dist_size > 1 && n) {
        int rc = MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, ctx->comm);
        if (rc != MPI_SUCCESS) return acn__mpi_check(ctx, rc, "dist_sum: MPI_Allreduce");
    }
#endif
    return ctx->status;
}
ACNDEF acn_status acn_dist_any(acn_ctx *ctx, int *flag)
{
    if (!ctx) return ACN_ERR_ARG;
    if (!flag) {
        acn__fail(ctx, ACN_ERR_ARG, "dist_any: flag must not be NULL");
        return ctx->status;
    }
    *flag = *flag != 0;
#ifdef ACN_MPI
    if (ctx->dist_size > 1) {
        int rc = MPI_Allreduce(MPI_IN_PLACE, flag, 1, MPI_INT, MPI_MAX, ctx->comm);
        if (rc != MPI_SUCCESS) {
            *flag = 1; /* no answer: take the worst */
            return acn__mpi_check(ctx, rc, "dist_any: MPI_Allreduce");
        }
    }
#endif
    return ctx->status;
}
/* It runs even when the context holds an error (the others wait for it). */
ACNDEF acn_status acn_dist_broadcast_params(acn_ctx *ctx)
{
    if (!ctx) return ACN_ERR_ARG;
#ifdef ACN_MPI
    if (ctx->dist_size > 1 && !acn__cpu_only(ctx, "dist_broadcast_params")) {
        size_t done, n = ctx->param_used;
        float *w = acn__pblock(ctx);
        for (done = 0; done < n;) {
            int len = (int)(n - done < ((size_t)1 << 30) ? n - done : ((size_t)1 << 30));
            int rc = MPI_Bcast(w + done, len, MPI_FLOAT, 0, ctx->comm);
            if (rc != MPI_SUCCESS) return acn__mpi_check(ctx, rc, "dist_broadcast_params: MPI_Bcast");
            done += (size_t)len;
        }
    }
#endif
    return ctx->status;
}
ACNDEF void acn_dist_abort(acn_ctx *ctx, int code)
{
#ifdef ACN_MPI
    if (ctx && ctx->dist_size > 1) MPI_Abort(ctx->comm, code ? code : 1);
#else
    (void)ctx;
    (void)code;
#endif
}

/* ======================================================================== */
/* Models                                                                   */
/* ======================================================================== */
ACNDEF const char *acn_wiring_name(int wiring)
{
    static const char *const names[] = {"plain", "residual", "acn", "acn-detach"};
    return wiring >= 0 && wiring < 4 ? names[wiring] : "?";
}
ACNDEF int acn_wiring_parse(const char *name)
{
    int w;
    for (w = 0; name && w < 4; w++)
        if (!strcmp(name, acn_wiring_name(w))) return w;
    return -1;
}

/* ---- parameter helpers -------------------------------------------------- */
/* A parameter named by a printf format: (d0) when d1 == 0, else (d0, d1). */
static acn_tensor *acn__pnew(acn_ctx *ctx, int d0, int d1, const char *fmt, ...)
{
    char name[ACN_NAME_MAX];
    int shape[2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    shape[0] = d0;
    shape[1] = d1;
    return acn_param(ctx, name, d1 ? 2 : 1, shape);
}
/* prefix.weight (out, in) and prefix.bias (out), PyTorch's default init. */
static void acn__mk_lin(acn_ctx *ctx, acn_lin *l, int out, int in, int bias, const char *prefix)
{
    l->weight = acn__pnew(ctx, out, in, "%s.weight", prefix);
    l->bias = bias ? acn__pnew(ctx, out, 0, "%s.bias", prefix) : NULL;
    if (l->weight) acn_init_linear(ctx, l->weight, l->bias);
}
/* prefix.weight = 1 and prefix.bias = 0, both (D). */
static void acn__mk_ln(acn_ctx *ctx, acn_ln *l, int D, float eps, const char *prefix)
{
    l->weight = acn__pnew(ctx, D, 0, "%s.weight", prefix);
    l->bias = acn__pnew(ctx, D, 0, "%s.bias", prefix);
    l->eps = eps;
    if (l->weight) acn_init_ones(ctx, l->weight);
}
static acn_tensor *acn__lin(acn_ctx *ctx, acn_tensor *x, const acn_lin *l)
{
    return acn_linear(ctx, x, l->weight, l->bias);
}
static acn_tensor *acn__norm(acn_ctx *ctx, acn_tensor *x, const acn_ln *l, int flags)
{
    return acn_layernorm_ex(ctx, x, l->weight, l->bias, l->eps, flags);
}
/* (a, b) formatted into buf */
static const char *acn__fmt(char *buf, size_t cap, const char *fmt, int i)
{
    snprintf(buf, cap, fmt, i);
    return buf;
}

/* ---- the wirings -------------------------------------------------------- */
typedef acn_tensor *(*acn__block_fn)(acn_ctx *ctx, const void *m, int i, acn_tensor *x, int residual);
typedef acn_tensor *(*acn__head_fn)(acn_ctx *ctx, const void *m, acn_tensor *y);

/* Check a forward's wiring and k (-1: all `depth` blocks). */
/* A model's forward given no model: refused with the reason. */
static int acn__model_ok(acn_ctx *ctx, const char *who, const void *model)
{
    if (!ctx || ctx->status) return -1;
    if (!model) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the model is NULL (build it first with its _build function)", who);
        return -1;
    }
    return 0;
}
/* n_probes < 0: the forms without _ex, which trust probes to hold k + 1. */
static int acn__run_ok(acn_ctx *ctx, const char *who, int wiring, int depth, int *k, acn_tensor **probes,
                       int n_probes)
{
    if (!ctx || ctx->status) return -1;
    if (wiring < ACN_PLAIN || wiring > ACN_ACN_DETACH) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: unknown wiring %d", who, wiring);
        return -1;
    }
    if (*k < 0) *k = depth;
    if (*k > depth) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: k = %d blocks, but the model has %d", who, *k, depth);
        return -1;
    }
    if (probes && n_probes >= 0 && n_probes < *k + 1) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the probes array holds %d tensors, but %d blocks make k + 1 = %d "
                  "outputs; pass an array of ACN_MAX_BLOCKS + 1, or of k + 1", who, n_probes, *k, *k + 1);
        return -1;
    }
    return 0;
}

/* Run k blocks on x_0 in the given wiring and apply the head:
 *   plain, residual:  x_i = block(x_{i-1})          y_i = x_i
 *   ACN:              x_i = block(x_{i-1})          y_i = x_0 + x_1 + ... + x_i
 *   ACN_DETACH:       x_i = block(detach(x_{i-1}))  y_i as ACN
 * probes[j] = head(y_j) for j = 0..k when probes is given; the result is
 * head(y_k). The block function applies its own residual form. */
static acn_tensor *acn__wire(acn_ctx *ctx, const void *m, int wiring, int k, acn_tensor *x0,
                             acn__block_fn block, acn__head_fn head, acn_tensor **probes)
{
    acn_tensor *x = x0, *y = x0, *outs[ACN_MAX_BLOCKS + 1];
    int i, transient = 0, fused = wiring >= ACN_ACN && !probes; /* one add_n at the end */
    if (!x0) return NULL;
    if (probes && !(probes[0] = head(ctx, m, y))) return NULL;
    outs[0] = x0;
    for (i = 0; i < k; i++) {
        acn_tensor *in = wiring == ACN_ACN_DETACH ? acn_detach(ctx, x) : x;
        if (!(x = block(ctx, m, i, in, wiring == ACN_RESIDUAL))) return NULL;
        outs[i + 1] = x;
        transient += !!(x->flags & ACN_F_TRANSIENT);
        if (fused) continue;
        y = wiring >= ACN_ACN ? acn_add(ctx, y, x) : x; /* the long connection */
        if (!y) return NULL;
        if (probes && !(probes[i + 1] = head(ctx, m, y))) return NULL;
    }
    if (fused) { /* y = x_0 + x_1 + ... + x_k, in the order of the chain above */
        if (transient <= ACN__SLOTS - 1) y = acn_add_n(ctx, outs, k + 1);
        else for (y = x0, i = 1; i <= k; i++) y = acn_add(ctx, y, outs[i]);
    }
    return probes ? probes[k] : head(ctx, m, y);
}

/* ---- deep MLP ----------------------------------------------------------- */
ACNDEF acn_mlp_config acn_mlp_defaults(void)
{
    acn_mlp_config c;
    c.in = 64;
    c.width = 128;
    c.depth = 12;
    c.classes = 10;
    c.act = ACN_ACT_GELU;
    c.block_ln = 1;
    c.head_ln = 1;
    c.bias = 1;
    c.ln_eps = 1e-5f;
    c.wiring = ACN_ACN;
    return c;
}

ACNDEF acn_status acn_mlp_build(acn_ctx *ctx, acn_mlp *m, const acn_mlp_config *cfg)
{
    char pre[64];
    int i;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!m || !cfg || cfg->in < 1 || cfg->width < 1 || cfg->classes < 1 || cfg->depth < 0 ||
        cfg->depth > ACN_MAX_BLOCKS || cfg->act < ACN_ACT_RELU || cfg->act > ACN_ACT_NONE ||
        !(cfg->ln_eps > 0.0f) || cfg->wiring < ACN_PLAIN || cfg->wiring > ACN_ACN_DETACH) {
        acn__fail(ctx, ACN_ERR_ARG,
                  "mlp_build: need positive sizes, 0..%d blocks, a known activation and wiring, "
                  "and ln_eps > 0", ACN_MAX_BLOCKS);
        return ctx->status;
    }
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    acn__mk_lin(ctx, &m->embed, cfg->width, cfg->in, cfg->bias, "embed");
    for (i = 0; i < cfg->depth; i++) {
        acn__mk_lin(ctx, &m->blocks[i].fc, cfg->width, cfg->width, cfg->bias, acn__fmt(pre, sizeof pre, "blocks.%d.fc", i));
        if (cfg->block_ln) acn__mk_ln(ctx, &m->blocks[i].ln, cfg->width, cfg->ln_eps, acn__fmt(pre, sizeof pre, "blocks.%d.ln", i));
    }
    if (cfg->head_ln) acn__mk_ln(ctx, &m->ln, cfg->width, cfg->ln_eps, "ln");
    acn__mk_lin(ctx, &m->clf, cfg->classes, cfg->width, cfg->bias, "clf");
    return ctx->status;
}

static acn_tensor *acn__act(acn_ctx *ctx, acn_tensor *x, int act)
{
    switch (act) {
    case ACN_ACT_RELU: return acn_relu(ctx, x);
    case ACN_ACT_GELU: return acn_gelu(ctx, x);
    case ACN_ACT_TANH: return acn_tanh(ctx, x);
    default: return x;
    }
}
/* f(x) = LN(act(W x + b));  residual: x + f(x)          x (B, W) */
static acn_tensor *acn__mlp_block(acn_ctx *ctx, const void *mv, int i, acn_tensor *x, int residual)
{
    const acn_mlp *m = (const acn_mlp *)mv;
    acn_tensor *h = acn__act(ctx, acn__lin(ctx, x, &m->blocks[i].fc), m->cfg.act);
    if (m->cfg.block_ln) h = acn__norm(ctx, h, &m->blocks[i].ln, 0);
    return residual ? acn_add(ctx, x, h) : h;
}
/* logits = clf(LN(y))                                    y (B, W) -> (B, classes) */
static acn_tensor *acn__mlp_head(acn_ctx *ctx, const void *mv, acn_tensor *y)
{
    const acn_mlp *m = (const acn_mlp *)mv;
    if (m->cfg.head_ln) y = acn__norm(ctx, y, &m->ln, 0);
    return acn__lin(ctx, y, &m->clf);
}
static int acn__mlp_x_ok(acn_ctx *ctx, const char *who, const acn_mlp *m, const acn_tensor *x)
{
    char sh[64];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != m->cfg.in) {
        acn__fail(ctx, ACN_ERR_SHAPE, "%s: x %s must end in the model's %d inputs", who, ACN__SHAPE(x, sh),
                  m->cfg.in);
        return -1;
    }
    return 0;
}
ACNDEF acn_tensor *acn_mlp_forward(acn_ctx *ctx, const acn_mlp *m, acn_tensor *x, int k, acn_tensor **probes)
{
    return acn_mlp_forward_ex(ctx, m, x, k, probes, -1);
}
ACNDEF acn_tensor *acn_mlp_forward_ex(acn_ctx *ctx, const acn_mlp *m, acn_tensor *x, int k,
                                      acn_tensor **probes, int n_probes)
{
    if (acn__model_ok(ctx, "mlp_forward", m) || acn__inputs_ok(ctx, "mlp_forward", &x, 1)) return NULL;
    if (acn__run_ok(ctx, "mlp_forward", m->cfg.wiring, m->cfg.depth, &k, probes, n_probes)) return NULL;
    if (acn__mlp_x_ok(ctx, "mlp_forward", m, x)) return NULL;
    return acn__wire(ctx, m, m->cfg.wiring, k, acn__lin(ctx, x, &m->embed), acn__mlp_block,
                     acn__mlp_head, probes);
}

/* ---- MLP-Mixer ---------------------------------------------------------- */
ACNDEF acn_mixer_config acn_mixer_defaults(void)
{
    acn_mixer_config c;
    c.image_h = c.image_w = 32;
    c.channels = 3;
    c.patch = 4;
    c.width = 128;
    c.depth = 16;
    c.token_hidden = 64;
    c.channel_hidden = 512;
    c.classes = 10;
    c.textbook = 0;
    c.ln_eps = 1e-5f;
    c.wiring = ACN_ACN;
    c.recompute = 0;
    return c;
}

/* Tokens: patches, plus the CLS token in the authors' form. */
static int acn__mixer_tokens(const acn_mixer_config *c)
{
    return (c->image_h / c->patch) * (c->image_w / c->patch) + !c->textbook;
}

ACNDEF acn_status acn_mixer_build(acn_ctx *ctx, acn_mixer *m, const acn_mixer_config *c)
{
    char pre[64];
    int i, T, es[4], cs[3];
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!m || !c || c->patch < 1 || c->image_h < c->patch || c->image_w < c->patch ||
        c->image_h % c->patch || c->image_w % c->patch || c->channels < 1 || c->width < 1 ||
        c->depth < 0 || c->depth > ACN_MAX_BLOCKS || c->token_hidden < 1 || c->channel_hidden < 1 ||
        c->classes < 1 || !(c->ln_eps > 0.0f) || c->wiring < ACN_PLAIN || c->wiring > ACN_ACN_DETACH) {
        acn__fail(ctx, ACN_ERR_ARG,
                  "mixer_build: need an image size divisible by the patch, positive sizes, 0..%d "
                  "blocks, a known wiring and ln_eps > 0", ACN_MAX_BLOCKS);
        return ctx->status;
    }
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    T = acn__mixer_tokens(c);
    es[0] = c->width; es[1] = c->channels; es[2] = es[3] = c->patch;
    m->embed_w = acn_param(ctx, "embed.weight", 4, es);        /* a Conv2d weight */
    m->embed_b = acn_param(ctx, "embed.bias", 1, es);
    if (m->embed_w) acn_init_linear(ctx, m->embed_w, m->embed_b);
    if (!c->textbook) {
        cs[0] = cs[1] = 1; cs[2] = c->width;
        m->cls = acn_param(ctx, "cls", 3, cs);
        if (m->cls) acn_init_normal(ctx, m->cls, 0.0f, 1.0f);
    }
    for (i = 0; i < c->depth; i++) {
        acn_mixer_block *b = &m->blocks[i];
        acn__mk_ln(ctx, &b->tok_ln, c->width, c->ln_eps, acn__fmt(pre, sizeof pre, "blocks.%d.tok.ln", i));
        acn__mk_lin(ctx, &b->tok_fc1, c->token_hidden, T, 1, acn__fmt(pre, sizeof pre, "blocks.%d.tok.fc1", i));
        acn__mk_lin(ctx, &b->tok_fc2, T, c->token_hidden, 1, acn__fmt(pre, sizeof pre, "blocks.%d.tok.fc2", i));
        acn__mk_ln(ctx, &b->ch_ln, c->width, c->ln_eps, acn__fmt(pre, sizeof pre, "blocks.%d.ch.ln", i));
        acn__mk_lin(ctx, &b->ch_fc1, c->channel_hidden, c->width, 1, acn__fmt(pre, sizeof pre, "blocks.%d.ch.fc1", i));
        acn__mk_lin(ctx, &b->ch_fc2, c->width, c->channel_hidden, 1, acn__fmt(pre, sizeof pre, "blocks.%d.ch.fc2", i));
        if (!c->textbook) {
            acn__mk_lin(ctx, &b->linear, c->width, c->width, 1, acn__fmt(pre, sizeof pre, "blocks.%d.linear", i));
            acn__mk_ln(ctx, &b->ln, c->width, c->ln_eps, acn__fmt(pre, sizeof pre, "blocks.%d.ln", i));
        }
    }
    acn__mk_ln(ctx, &m->ln, c->width, c->ln_eps, "ln");
    acn__mk_lin(ctx, &m->clf, c->classes, c->width, 1, "clf");
    return ctx->status;
}

/* tok(x): LN over D, then across tokens: Linear(T -> Th), GELU, Linear(Th -> T),
 * each Linear along the token axis where it lies (acn_linear_mid: what
 * transposing to (B, D, T) and back computes, without the copies)
 *   x (B, T, D) -> LN -> (B, Th, D) -> GELU -> (B, T, D) */
static acn_tensor *acn__mixer_tok(acn_ctx *ctx, const acn_mixer_block *b, acn_tensor *x, int f)
{
    acn_tensor *h = acn_linear_mid(ctx, acn__norm(ctx, x, &b->tok_ln, f), b->tok_fc1.weight, b->tok_fc1.bias);
    return acn_linear_mid(ctx, acn_gelu_ex(ctx, h, f), b->tok_fc2.weight, b->tok_fc2.bias);
}
/* ch(x): LN, Linear(D -> Dc), GELU, Linear(Dc -> D)       x (B, T, D) */
static acn_tensor *acn__mixer_ch(acn_ctx *ctx, const acn_mixer_block *b, acn_tensor *x, int f)
{
    return acn_ffn(ctx, acn__norm(ctx, x, &b->ch_ln, f), b->ch_fc1.weight, b->ch_fc1.bias, b->ch_fc2.weight,
                   b->ch_fc2.bias, f);
}
/* Authors':  ACN, plain  u = ch(tok(x))
 *            residual    y1 = x + tok(x), u = y1 + ch(y1)
 *            then        x_i = LN(ReLU(W u + b + x))   (one op: acn_linear_add_relu)
 * Textbook:  ACN, plain  x_i = ch(tok(x))
 *            residual    x' = x + tok(x), x_i = x' + ch(x') */
static acn_tensor *acn__mixer_block(acn_ctx *ctx, const void *mv, int i, acn_tensor *x, int residual)
{
    const acn_mixer *m = (const acn_mixer *)mv;
    const acn_mixer_block *b = &m->blocks[i];
    int f = m->cfg.recompute ? ACN_RECOMPUTE : 0;
    acn_tensor *u;
    if (residual) {
        acn_tensor *y1 = acn_add(ctx, x, acn__mixer_tok(ctx, b, x, f));
        u = acn_add(ctx, y1, acn__mixer_ch(ctx, b, y1, f));
    } else {
        u = acn__mixer_ch(ctx, b, acn__mixer_tok(ctx, b, x, f), f);
    }
    if (m->cfg.textbook) return u;
    return acn__norm(ctx, acn_linear_add_relu(ctx, u, b->linear.weight, b->linear.bias, x), &b->ln, f);
}
/* Authors': logits = clf(LN(y[:, 0]))  (LN is per token, so taking token 0
 * first gives the same values).  Textbook: clf(mean_t LN(y)).
 *   y (B, T, D) -> (B, classes) */
static acn_tensor *acn__mixer_head(acn_ctx *ctx, const void *mv, acn_tensor *y)
{
    const acn_mixer *m = (const acn_mixer *)mv;
    int s[2];
    if (m->cfg.textbook) return acn__lin(ctx, acn_mean(ctx, acn__norm(ctx, y, &m->ln, 0), 1), &m->clf);
    s[0] = y ? y->shape[0] : 1;
    s[1] = m->cfg.width;
    return acn__lin(ctx, acn__norm(ctx, acn_reshape(ctx, acn_slice(ctx, y, 1, 0, 1), 2, s), &m->ln, 0), &m->clf);
}

/* Patch embedding: a Conv2d(k=p, s=p) as patches (B, N, C p p) times its
 * weight viewed as (D, C p p).                 images (B, C, H, W) -> (B, N, D) */
static acn_tensor *acn__patch_embed(acn_ctx *ctx, acn_tensor *images, acn_tensor *w, acn_tensor *b,
                                    int p)
{
    int s[2];
    s[0] = w->shape[0];
    s[1] = -1;
    return acn_linear(ctx, acn_patches(ctx, images, p), acn_reshape(ctx, w, 2, s), b);
}

static int acn__images_ok(acn_ctx *ctx, const char *who, const acn_tensor *x, int C, int H, int W)
{
    char sh[64];
    if (x->ndim != 4 || x->shape[1] != C || x->shape[2] != H || x->shape[3] != W) {
        acn__fail(ctx, ACN_ERR_SHAPE, "%s: images %s; the model takes (B, %d, %d, %d)", who,
                  ACN__SHAPE(x, sh), C, H, W);
        return -1;
    }
    return 0;
}

ACNDEF acn_tensor *acn_mixer_forward(acn_ctx *ctx, const acn_mixer *m, acn_tensor *images, int k,
                                     acn_tensor **probes)
{
    return acn_mixer_forward_ex(ctx, m, images, k, probes, -1);
}
/* x_0: the patch embedding, with the CLS token first (authors' form).
 *                                          images (B, C, H, W) -> (B, T, D) */
static acn_tensor *acn__mixer_x0(acn_ctx *ctx, const void *mv, acn_tensor *images)
{
    const acn_mixer *m = (const acn_mixer *)mv;
    const acn_mixer_config *c = &m->cfg;
    acn_tensor *x = acn__patch_embed(ctx, images, m->embed_w, m->embed_b, c->patch), *parts[2]; /* (B, N, D) */
    int s[3];
    if (c->textbook) return x;
    /* CLS at index 0: the (1, 1, D) token broadcast to (B, 1, D) */
    s[0] = images->shape[0]; s[1] = 1; s[2] = c->width;
    parts[0] = acn_add(ctx, acn_new(ctx, 3, s, 0), m->cls);
    parts[1] = x;
    return acn_concat(ctx, parts, 2, 1);                                    /* (B, N + 1, D) */
}
ACNDEF acn_tensor *acn_mixer_forward_ex(acn_ctx *ctx, const acn_mixer *m, acn_tensor *images, int k,
                                        acn_tensor **probes, int n_probes)
{
    const acn_mixer_config *c;
    if (acn__model_ok(ctx, "mixer_forward", m) || acn__inputs_ok(ctx, "mixer_forward", &images, 1)) return NULL;
    c = &m->cfg;
    if (acn__run_ok(ctx, "mixer_forward", c->wiring, c->depth, &k, probes, n_probes)) return NULL;
    if (acn__images_ok(ctx, "mixer_forward", images, c->channels, c->image_h, c->image_w)) return NULL;
    return acn__wire(ctx, m, c->wiring, k, acn__mixer_x0(ctx, m, images), acn__mixer_block, acn__mixer_head,
                     probes);
}

/* ---- ViT ---------------------------------------------------------------- */
ACNDEF acn_vit_config acn_vit_defaults(void)
{
    acn_vit_config c;
    c.image_h = c.image_w = 224;
    c.channels = 3;
    c.patch = 16;
    c.width = 384;
    c.depth = 12;
    c.heads = 6;
    c.mlp = 1536;
    c.classes = 1000;
    c.ln_eps = 1e-6f;
    c.wiring = ACN_ACN;
    c.recompute = 0;
    return c;
}

ACNDEF acn_status acn_posemb_sincos_2d(int gh, int gw, int D, float *out)
{
    int r, col, j, q = D / 4;
    if (gh < 1 || gw < 1 || D < 8 || D % 4 || !out) return ACN_ERR_ARG;
    for (r = 0; r < gh; r++)
        for (col = 0; col < gw; col++) {
            float *pe = out + ((size_t)r * gw + col) * D;
            for (j = 0; j < q; j++) {
                double w = 1.0 / pow(10000.0, (double)j / (double)(q - 1));
                pe[j] = (float)sin(col * w);
                pe[q + j] = (float)cos(col * w);
                pe[2 * q + j] = (float)sin(r * w);
                pe[3 * q + j] = (float)cos(r * w);
            }
        }
    return ACN_OK;
}

ACNDEF acn_status acn_vit_build(acn_ctx *ctx, acn_vit *m, const acn_vit_config *c)
{
    char pre[64];
    int i, es[4];
    float a;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!m || !c || c->patch < 1 || c->image_h < c->patch || c->image_w < c->patch ||
        c->image_h % c->patch || c->image_w % c->patch || c->channels < 1 || c->width < 8 ||
        c->width % 4 || c->heads < 1 || c->width % c->heads || c->depth < 0 ||
        c->depth > ACN_MAX_BLOCKS || c->mlp < 1 || c->classes < 1 || !(c->ln_eps > 0.0f) ||
        c->wiring < ACN_PLAIN || c->wiring > ACN_ACN_DETACH) {
        acn__fail(ctx, ACN_ERR_ARG,
                  "vit_build: need an image size divisible by the patch, a width divisible by 4 "
                  "and by the heads, positive sizes, 0..%d blocks, a known wiring, ln_eps > 0",
                  ACN_MAX_BLOCKS);
        return ctx->status;
    }
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    es[0] = c->width; es[1] = c->channels; es[2] = es[3] = c->patch;
    m->embed_w = acn_param(ctx, "embed.weight", 4, es);
    m->embed_b = acn_param(ctx, "embed.bias", 1, es);
    if (m->embed_w) { /* LeCun normal, truncated at 2 std, the std restored by / 0.8796 */
        float sd = (float)(sqrt(1.0 / ((double)c->channels * c->patch * c->patch)) / 0.87962566103423978);
        acn_init_trunc_normal(ctx, m->embed_w, 0.0f, sd, -2.0f * sd, 2.0f * sd);
    }
    a = (float)sqrt(3.0 / c->width);
    for (i = 0; i < c->depth; i++) {
        acn_vit_block *b = &m->blocks[i];
        acn__mk_ln(ctx, &b->ln1, c->width, c->ln_eps, acn__fmt(pre, sizeof pre, "blocks.%d.ln1", i));
        acn__mk_lin(ctx, &b->qkv, 3 * c->width, c->width, 1, acn__fmt(pre, sizeof pre, "blocks.%d.attn.qkv", i));
        acn__mk_lin(ctx, &b->proj, c->width, c->width, 1, acn__fmt(pre, sizeof pre, "blocks.%d.attn.proj", i));
        acn__mk_ln(ctx, &b->ln2, c->width, c->ln_eps, acn__fmt(pre, sizeof pre, "blocks.%d.ln2", i));
        acn__mk_lin(ctx, &b->fc1, c->mlp, c->width, 1, acn__fmt(pre, sizeof pre, "blocks.%d.mlp.fc1", i));
        acn__mk_lin(ctx, &b->fc2, c->width, c->mlp, 1, acn__fmt(pre, sizeof pre, "blocks.%d.mlp.fc2", i));
        if (ctx->status) break;
        acn_init_uniform(ctx, b->qkv.weight, -a, a);   /* U(+-sqrt(3/D)), zero biases */
        acn_init_zeros(ctx, b->qkv.bias);
        acn_init_uniform(ctx, b->proj.weight, -a, a);
        acn_init_zeros(ctx, b->proj.bias);
        acn_init_xavier_uniform(ctx, b->fc1.weight, 1.0f); /* Xavier, N(0, 1e-6) biases */
        acn_init_normal(ctx, b->fc1.bias, 0.0f, 1e-6f);
        acn_init_xavier_uniform(ctx, b->fc2.weight, 1.0f);
        acn_init_normal(ctx, b->fc2.bias, 0.0f, 1e-6f);
    }
    acn__mk_ln(ctx, &m->ln, c->width, c->ln_eps, "ln");
    acn__mk_lin(ctx, &m->head, c->classes, c->width, 1, "head");
    if (m->head.weight) { acn_init_zeros(ctx, m->head.weight); acn_init_zeros(ctx, m->head.bias); }
    return ctx->status;
}

/* Attn(x) = proj(MHA(q, k, v)), [q k v] = qkv(x)          x (B, T, D) */
static acn_tensor *acn__vit_attn(acn_ctx *ctx, const acn_vit *m, const acn_vit_block *b, acn_tensor *x)
{
    acn_tensor *qkv = acn__lin(ctx, x, &b->qkv);                            /* (B, T, 3D) */
    acn_tensor *a = acn_attention_qkv(ctx, qkv, m->cfg.heads, NULL);        /* q, k, v where they lie */
    return acn__lin(ctx, a, &b->proj);
}
/* residual: h = x + Attn(LN1(x)), x_i = h + MLP(LN2(h));  ACN, plain: x_i = MLP(LN2(Attn(LN1(x)))) */
static acn_tensor *acn__vit_block(acn_ctx *ctx, const void *mv, int i, acn_tensor *x, int residual)
{
    const acn_vit *m = (const acn_vit *)mv;
    const acn_vit_block *b = &m->blocks[i];
    int f = m->cfg.recompute ? ACN_RECOMPUTE : 0;
    acn_tensor *h = acn__vit_attn(ctx, m, b, acn__norm(ctx, x, &b->ln1, f)), *o;
    if (residual) h = acn_add(ctx, x, h);
    o = acn_ffn(ctx, acn__norm(ctx, h, &b->ln2, f), b->fc1.weight, b->fc1.bias, b->fc2.weight, b->fc2.bias, f);
    return residual ? acn_add(ctx, h, o) : o;
}
/* logits = head(mean_t LN(y))                           y (B, T, D) -> (B, classes) */
static acn_tensor *acn__vit_head(acn_ctx *ctx, const void *mv, acn_tensor *y)
{
    const acn_vit *m = (const acn_vit *)mv;
    return acn__lin(ctx, acn_mean(ctx, acn__norm(ctx, y, &m->ln, 0), 1), &m->head);
}
ACNDEF acn_tensor *acn_vit_forward(acn_ctx *ctx, const acn_vit *m, acn_tensor *images, int k,
                                   acn_tensor **probes)
{
    return acn_vit_forward_ex(ctx, m, images, k, probes, -1);
}
/* x_0: the patch embedding plus the fixed position embedding.
 *                                          images (B, C, H, W) -> (B, N, D) */
static acn_tensor *acn__vit_x0(acn_ctx *ctx, const void *mv, acn_tensor *images)
{
    const acn_vit *m = (const acn_vit *)mv;
    const acn_vit_config *c = &m->cfg;
    acn_tensor *pe;
    int s[2];
    s[0] = (c->image_h / c->patch) * (c->image_w / c->patch);
    s[1] = c->width;
    float *h = (float *)acn__alloc(ctx, (size_t)s[0] * s[1] * sizeof(float), "vit_forward"); /* host */
    if (!h || acn_posemb_sincos_2d(c->image_h / c->patch, c->image_w / c->patch, c->width, h)) return NULL;
    if (!(pe = acn_input(ctx, 2, s, h))) return NULL;                       /* (N, D), on the context's device */
    return acn_add(ctx, acn__patch_embed(ctx, images, m->embed_w, m->embed_b, c->patch), pe);
}
ACNDEF acn_tensor *acn_vit_forward_ex(acn_ctx *ctx, const acn_vit *m, acn_tensor *images, int k,
                                      acn_tensor **probes, int n_probes)
{
    const acn_vit_config *c;
    if (acn__model_ok(ctx, "vit_forward", m) || acn__inputs_ok(ctx, "vit_forward", &images, 1)) return NULL;
    c = &m->cfg;
    if (acn__run_ok(ctx, "vit_forward", c->wiring, c->depth, &k, probes, n_probes)) return NULL;
    if (acn__images_ok(ctx, "vit_forward", images, c->channels, c->image_h, c->image_w)) return NULL;
    return acn__wire(ctx, m, c->wiring, k, acn__vit_x0(ctx, m, images), acn__vit_block, acn__vit_head, probes);
}

/* ---- anytime inference ------------------------------------------------- */
ACNDEF acn_exit_rule acn_exit_confidence(float threshold)
{
    acn_exit_rule r;
    memset(&r, 0, sizeof r);
    r.kind = ACN_EXIT_CONFIDENCE;
    r.threshold = threshold;
    return r;
}
ACNDEF acn_exit_rule acn_exit_stable(int patience)
{
    acn_exit_rule r;
    memset(&r, 0, sizeof r);
    r.kind = ACN_EXIT_STABLE;
    r.patience = patience;
    return r;
}
ACNDEF acn_exit_rule acn_exit_custom(acn_exit_fn fn, void *user)
{
    acn_exit_rule r;
    memset(&r, 0, sizeof r);
    r.kind = ACN_EXIT_CUSTOM;
    r.fn = fn;
    r.user = user;
    return r;
}

/* The status of a call that failed before it began: the context's error,
 * or ACN_ERR_ARG when there is no context to hold one. */
static acn_status acn__failed(const acn_ctx *ctx)
{
    return ctx ? (ctx->status ? ctx->status : ACN_ERR_ARG) : ACN_ERR_ARG;
}

static int acn__exit_ok(acn_ctx *ctx, const char *who, const acn_exit_rule *r, const float *logits)
{
    if (!r || !logits) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: the %s is NULL", who, r ? "logits buffer (B x classes floats)" : "exit rule");
        return -1;
    }
    if (r->min_blocks < 0 || (r->kind == ACN_EXIT_CONFIDENCE && !(r->threshold >= 0.0f)) ||
        (r->kind == ACN_EXIT_STABLE && r->patience < 1) || (r->kind == ACN_EXIT_CUSTOM && !r->fn) ||
        r->kind < ACN_EXIT_CONFIDENCE || r->kind > ACN_EXIT_CUSTOM) {
        acn__fail(ctx, ACN_ERR_ARG, "%s: exit rule of kind %d with threshold %g, patience %d, min_blocks %d, fn %s: "
                  "need a known kind, a threshold >= 0 (above 1: never exit), a patience >= 1, min_blocks >= 0 "
                  "and a function for ACN_EXIT_CUSTOM; acn_exit_confidence/_stable/_custom make one", who, r->kind,
                  (double)r->threshold, r->patience, r->min_blocks, r->fn ? "set" : "NULL");
        return -1;
    }
    return 0;
}

/* Rows keep[0..n-1] of x (B, ...) -> (n, ...): a gather through
 * acn_embedding on x viewed as (B, rest). */
static acn_tensor *acn__rows(acn_ctx *ctx, acn_tensor *x, const int *keep, int n)
{
    int s[2];
    s[0] = x->shape[0];
    s[1] = -1;
    return acn_embedding(ctx, acn_reshape(ctx, x, 2, s), keep, 1, &n);      /* (n, rest) */
}

/* The blocks one at a time on x_0 (B, ...), the head after each, and the
 * rule's exits; the contract is at the declaration of acn_mixer_anytime.
 * Per input still running (row r of the shrinking batch): rows[r] its index
 * in the caller's batch, pred[r] and run[r] its last prediction and how
 * many heads in a row gave it. */
static acn_status acn__anytime_run(acn_ctx *ctx, const char *who, const void *m, int wiring, int depth, int classes,
                               acn_tensor *x0, acn__block_fn block, acn__head_fn head, const acn_exit_rule *rule,
                               float *logits, int *blocks)
{
    acn_tensor *x = x0, *y = x0, *lg = NULL;
    int B, n, r, j, kept, C = classes, *rows, *pred, *run, *keep, shape[ACN_MAX_DIMS], d;
    unsigned char *leave;
    const float *v;
    if (!x0) return ctx->status;
    B = n = x0->shape[0];
    rows = (int *)acn__alloc(ctx, 4 * sizeof(int) * (size_t)B + (size_t)B, who);
    if (!rows) return ctx->status;
    pred = rows + B;
    run = pred + B;
    keep = run + B;
    leave = (unsigned char *)(keep + B);
    for (r = 0; r < B; r++) rows[r] = r, run[r] = 0, pred[r] = -1;
    if (depth == 0) { /* nothing to run: the head of x_0 */
        if (!(lg = head(ctx, m, y)) || !(v = acn_data(ctx, lg))) return ctx->status;
        memcpy(logits, v, sizeof(float) * (size_t)B * (size_t)C);
        if (blocks) memset(blocks, 0, sizeof(int) * (size_t)B);
        return ACN_OK;
    }
    for (j = 1; j <= depth && n > 0; j++) {
        x = block(ctx, m, j - 1, x, wiring == ACN_RESIDUAL);                 /* x_j        (n, ...)     */
        y = wiring >= ACN_ACN ? acn_add(ctx, y, x) : x;                      /* the output (n, ...)     */
        if (!x || !y || !(lg = head(ctx, m, y)) || !(v = acn_data(ctx, lg))) return ctx->status; /* (n, C) */
        if (lg->ndim != 2 || lg->shape[0] != n || lg->shape[1] != C) {
            acn__fail(ctx, ACN_ERR_STATE, "%s: the head gave %d x %d logits for %d inputs of %d classes", who,
                      lg->shape[0], lg->ndim > 1 ? lg->shape[1] : 1, n, C);
            return ctx->status;
        }
        memset(leave, 0, (size_t)n);
        for (r = 0; r < n; r++) { /* each input's prediction and its streak, counted from block 1 */
            const float *l = v + (size_t)r * C;
            int c, best = 0;
            for (c = 1; c < C; c++)
                if (l[c] > l[best]) best = c;
            run[r] = best == pred[r] ? run[r] + 1 : 1;
            pred[r] = best;
        }
        if (j == depth) memset(leave, 1, (size_t)n);
        else if (j >= rule->min_blocks) {
            if (rule->kind == ACN_EXIT_CUSTOM) {
                if (rule->fn(rule->user, j, v, n, C, rows, leave)) {
                    acn__fail(ctx, ACN_ERR_ARG, "%s: the exit function returned an error after block %d", who, j);
                    return ctx->status;
                }
            } else if (rule->kind == ACN_EXIT_STABLE) {
                for (r = 0; r < n; r++) leave[r] = run[r] >= rule->patience;
            } else if (rule->threshold <= 1.0f) { /* max softmax = 1 / sum_c exp(l_c - l_max) */
                for (r = 0; r < n; r++) {
                    const float *l = v + (size_t)r * C;
                    double z = 0.0;
                    int c;
                    for (c = 0; c < C; c++) z += exp((double)l[c] - (double)l[pred[r]]);
                    leave[r] = 1.0 / z >= (double)rule->threshold;
                }
            }
        }
        for (r = kept = 0; r < n; r++) { /* leavers out; the rest close ranks, in order */
            if (leave[r]) {
                memcpy(logits + (size_t)rows[r] * C, v + (size_t)r * C, sizeof(float) * (size_t)C);
                if (blocks) blocks[rows[r]] = j;
                continue;
            }
            keep[kept] = r;
            rows[kept] = rows[r];
            pred[kept] = pred[r];
            run[kept] = run[r];
            kept++;
        }
        if (kept && kept < n) { /* the batch shrinks: x_j and the running sum, rows keep[] */
            for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
            shape[0] = kept;
            x = acn_reshape(ctx, acn__rows(ctx, x, keep, kept), x->ndim, shape);
            y = wiring >= ACN_ACN ? acn_reshape(ctx, acn__rows(ctx, y, keep, kept), y->ndim, shape) : x;
            if (!x || !y) return ctx->status;
        }
        n = kept;
    }
    return ctx->status;
}

/* x_0 of a model from its input: the stem the forwards also use. */
typedef acn_tensor *(*acn__stem_fn)(acn_ctx *ctx, const void *m, acn_tensor *input);
static acn_tensor *acn__mlp_x0(acn_ctx *ctx, const void *mv, acn_tensor *x)
{
    return acn__lin(ctx, x, &((const acn_mlp *)mv)->embed);
}
/* The run in inference mode (no tape, no dropout), the caller's modes
 * given back after. */
static acn_status acn__anytime(acn_ctx *ctx, const char *who, const void *m, int wiring, int depth, int classes,
                               acn__stem_fn stem, acn_tensor *input, acn__block_fn block, acn__head_fn head,
                               const acn_exit_rule *rule, float *logits, int *blocks)
{
    int no_grad, train;
    acn_status st;
    if (acn__cpu_only(ctx, who)) return ctx->status;
    no_grad = acn_set_no_grad(ctx, 1);
    train = acn_set_train(ctx, 0);
    st = acn__anytime_run(ctx, who, m, wiring, depth, classes, stem(ctx, m, input), block, head, rule,
                                     logits, blocks);
    acn_set_no_grad(ctx, no_grad);
    acn_set_train(ctx, train);
    return st;
}

ACNDEF acn_status acn_mlp_anytime(acn_ctx *ctx, const acn_mlp *m, acn_tensor *x, const acn_exit_rule *rule,
                                  float *logits, int *blocks)
{
    int k = -1;
    if (acn__model_ok(ctx, "mlp_anytime", m) || acn__inputs_ok(ctx, "mlp_anytime", &x, 1) ||
        acn__run_ok(ctx, "mlp_anytime", m->cfg.wiring, m->cfg.depth, &k, NULL, 0) ||
        acn__exit_ok(ctx, "mlp_anytime", rule, logits) || acn__mlp_x_ok(ctx, "mlp_anytime", m, x))
        return acn__failed(ctx);
    if (x->ndim != 2) {
        char sh[64];
        acn__fail(ctx, ACN_ERR_SHAPE, "mlp_anytime: x %s; anytime inference takes a batch (B, %d)",
                  ACN__SHAPE(x, sh), m->cfg.in);
        return ctx->status;
    }
    return acn__anytime(ctx, "mlp_anytime", m, m->cfg.wiring, m->cfg.depth, m->cfg.classes, acn__mlp_x0, x,
                        acn__mlp_block, acn__mlp_head, rule, logits, blocks);
}
ACNDEF acn_status acn_mixer_anytime(acn_ctx *ctx, const acn_mixer *m, acn_tensor *images,
                                    const acn_exit_rule *rule, float *logits, int *blocks)
{
    int k = -1;
    if (acn__model_ok(ctx, "mixer_anytime", m) || acn__inputs_ok(ctx, "mixer_anytime", &images, 1) ||
        acn__run_ok(ctx, "mixer_anytime", m->cfg.wiring, m->cfg.depth, &k, NULL, 0) ||
        acn__exit_ok(ctx, "mixer_anytime", rule, logits) ||
        acn__images_ok(ctx, "mixer_anytime", images, m->cfg.channels, m->cfg.image_h, m->cfg.image_w))
        return acn__failed(ctx);
    return acn__anytime(ctx, "mixer_anytime", m, m->cfg.wiring, m->cfg.depth, m->cfg.classes, acn__mixer_x0, images,
                        acn__mixer_block, acn__mixer_head, rule, logits, blocks);
}
ACNDEF acn_status acn_vit_anytime(acn_ctx *ctx, const acn_vit *m, acn_tensor *images, const acn_exit_rule *rule,
                                  float *logits, int *blocks)
{
    int k = -1;
    if (acn__model_ok(ctx, "vit_anytime", m) || acn__inputs_ok(ctx, "vit_anytime", &images, 1) ||
        acn__run_ok(ctx, "vit_anytime", m->cfg.wiring, m->cfg.depth, &k, NULL, 0) ||
        acn__exit_ok(ctx, "vit_anytime", rule, logits) ||
        acn__images_ok(ctx, "vit_anytime", images, m->cfg.channels, m->cfg.image_h, m->cfg.image_w))
        return acn__failed(ctx);
    return acn__anytime(ctx, "vit_anytime", m, m->cfg.wiring, m->cfg.depth, m->cfg.classes, acn__vit_x0, images,
                        acn__vit_block, acn__vit_head, rule, logits, blocks);
}

/* ---- BERT --------------------------------------------------------------- */
ACNDEF acn_bert_config acn_bert_defaults(void)
{
    acn_bert_config c;
    c.vocab = 30522;
    c.max_pos = 512;
    c.width = 768;
    c.depth = 12;
    c.heads = 12;
    c.mlp = 3072;
    c.classes = 2;
    c.ln_eps = 1e-12f;
    c.dropout = 0.1f;
    c.wiring = ACN_ACN;
    c.recompute = 0;
    return c;
}

/* Every weight N(0, 0.02), every bias 0. */
static void acn__bert_lin(acn_ctx *ctx, acn_lin *l, int out, int in, const char *fmt, int i)
{
    char pre[64];
    acn__mk_lin(ctx, l, out, in, 1, acn__fmt(pre, sizeof pre, fmt, i));
    if (l->weight) { acn_init_normal(ctx, l->weight, 0.0f, 0.02f); acn_init_zeros(ctx, l->bias); }
}

ACNDEF acn_status acn_bert_build(acn_ctx *ctx, acn_bert *m, const acn_bert_config *c)
{
    char pre[64];
    int i, s[2];
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!m || !c || c->vocab < 1 || c->max_pos < 1 || c->width < 1 || c->heads < 1 ||
        c->width % c->heads || c->depth < 0 || c->depth > ACN_MAX_BLOCKS || c->mlp < 1 ||
        c->classes < 1 || !(c->ln_eps > 0.0f) || !(c->dropout >= 0.0f && c->dropout < 1.0f) ||
        c->wiring < ACN_PLAIN || c->wiring > ACN_ACN_DETACH) {
        acn__fail(ctx, ACN_ERR_ARG,
                  "bert_build: need positive sizes, a width divisible by the heads, 0..%d blocks, "
                  "dropout in [0, 1), a known wiring and ln_eps > 0", ACN_MAX_BLOCKS);
        return ctx->status;
    }
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    s[0] = c->vocab; s[1] = c->width;
    m->tok = acn_param(ctx, "embed.tok.weight", 2, s);
    s[0] = c->max_pos;
    m->pos = acn_param(ctx, "embed.pos.weight", 2, s);
    if (m->pos) { acn_init_normal(ctx, m->tok, 0.0f, 0.02f); acn_init_normal(ctx, m->pos, 0.0f, 0.02f); }
    acn__mk_ln(ctx, &m->embed_ln, c->width, c->ln_eps, "embed.ln");
    for (i = 0; i < c->depth; i++) {
        acn_bert_block *b = &m->blocks[i];
        acn__bert_lin(ctx, &b->q, c->width, c->width, "blocks.%d.attn.q", i);
        acn__bert_lin(ctx, &b->k, c->width, c->width, "blocks.%d.attn.k", i);
        acn__bert_lin(ctx, &b->v, c->width, c->width, "blocks.%d.attn.v", i);
        acn__bert_lin(ctx, &b->o, c->width, c->width, "blocks.%d.attn.o", i);
        acn__mk_ln(ctx, &b->ln_a, c->width, c->ln_eps, acn__fmt(pre, sizeof pre, "blocks.%d.ln_a", i));
        acn__bert_lin(ctx, &b->fc1, c->mlp, c->width, "blocks.%d.mlp.fc1", i);
        acn__bert_lin(ctx, &b->fc2, c->width, c->mlp, "blocks.%d.mlp.fc2", i);
        acn__mk_ln(ctx, &b->ln_b, c->width, c->ln_eps, acn__fmt(pre, sizeof pre, "blocks.%d.ln_b", i));
    }
    acn__bert_lin(ctx, &m->mlm_dense, c->width, c->width, "mlm.dense", 0);
    acn__mk_ln(ctx, &m->mlm_ln, c->width, c->ln_eps, "mlm.ln");
    acn__bert_lin(ctx, &m->mlm_decoder, c->vocab, c->width, "mlm.decoder", 0);
    acn__bert_lin(ctx, &m->pooler, c->width, c->width, "pooler", 0);
    acn__bert_lin(ctx, &m->clf, c->classes, c->width, "clf", 0);
    return ctx->status;
}

/* What the BERT block and head functions need besides the model. */
typedef struct acn__bert_run { const acn_bert *m; acn_tensor *mask; int head; } acn__bert_run;

/* residual: a = LN_a(x + drop(O(Attn(x)))), x_i = LN_b(a + drop(FC2(GELU(FC1(a)))))
 * ACN, plain: the same without the two "+ input"             x (B, T, D) */
static acn_tensor *acn__bert_block(acn_ctx *ctx, const void *rv, int i, acn_tensor *x, int residual)
{
    const acn__bert_run *r = (const acn__bert_run *)rv;
    const acn_bert_block *b = &r->m->blocks[i];
    float p = r->m->cfg.dropout;
    int f = r->m->cfg.recompute ? ACN_RECOMPUTE : 0;
    acn_tensor *a = acn_attention(ctx, acn__lin(ctx, x, &b->q), acn__lin(ctx, x, &b->k),
                                  acn__lin(ctx, x, &b->v), r->m->cfg.heads, r->mask);
    acn_tensor *h;
    a = acn_dropout(ctx, acn__lin(ctx, a, &b->o), p);
    a = acn__norm(ctx, residual ? acn_add(ctx, x, a) : a, &b->ln_a, f);
    h = acn_dropout(ctx, acn_ffn(ctx, a, b->fc1.weight, b->fc1.bias, b->fc2.weight, b->fc2.bias, f), p);
    return acn__norm(ctx, residual ? acn_add(ctx, a, h) : h, &b->ln_b, f);
}
/* MLM: decoder(LN(GELU(dense(y))))             y (B, T, D) -> (B, T, V)
 * CLS: clf(tanh(pooler(y[:, 0])))              y (B, T, D) -> (B, classes) */
static acn_tensor *acn__bert_head(acn_ctx *ctx, const void *rv, acn_tensor *y)
{
    const acn__bert_run *r = (const acn__bert_run *)rv;
    const acn_bert *m = r->m;
    int s[2];
    if (r->head == ACN_BERT_NONE) return y;
    if (r->head == ACN_BERT_MLM) return acn_bert_mlm(ctx, m, y);
    s[0] = y ? y->shape[0] : 1;
    s[1] = m->cfg.width;
    return acn__lin(ctx, acn_tanh(ctx, acn__lin(ctx, acn_reshape(ctx, acn_slice(ctx, y, 1, 0, 1), 2, s), &m->pooler)),
                    &m->clf);
}

/* MLM head: decoder(LN(GELU(dense(y)))) */
ACNDEF acn_tensor *acn_bert_mlm(acn_ctx *ctx, const acn_bert *m, acn_tensor *y)
{
    if (acn__model_ok(ctx, "bert_mlm", m) || acn__inputs_ok(ctx, "bert_mlm", &y, 1)) return NULL;
    return acn__lin(ctx, acn__norm(ctx, acn_gelu(ctx, acn__lin(ctx, y, &m->mlm_dense)), &m->mlm_ln, 0),
                    &m->mlm_decoder);
}

ACNDEF acn_tensor *acn_bert_forward(acn_ctx *ctx, const acn_bert *m, const int *tokens,
                                    const int *mask, int B, int T, int head, int k,
                                    acn_tensor **probes)
{
    return acn_bert_forward_ex(ctx, m, tokens, mask, B, T, head, k, probes, -1);
}
ACNDEF acn_tensor *acn_bert_forward_ex(acn_ctx *ctx, const acn_bert *m, const int *tokens,
                                       const int *mask, int B, int T, int head, int k,
                                       acn_tensor **probes, int n_probes)
{
    const acn_bert_config *c;
    acn__bert_run r;
    acn_tensor *x;
    int s[2], i, *pos;
    if (acn__model_ok(ctx, "bert_forward", m)) return NULL;
    c = &m->cfg;
    if (acn__run_ok(ctx, "bert_forward", c->wiring, c->depth, &k, probes, n_probes)) return NULL;
    if (!tokens || B < 1 || T < 1 || T > c->max_pos || head < ACN_BERT_MLM || head > ACN_BERT_NONE) {
        acn__fail(ctx, ACN_ERR_ARG,
                  "bert_forward: need tokens, B >= 1, 1 <= T <= max_pos (%d; got T = %d) and a "
                  "head (ACN_BERT_MLM, ACN_BERT_CLS or ACN_BERT_NONE)", c->max_pos, T);
        return NULL;
    }
    r.m = m;
    r.head = head;
    r.mask = NULL;
    s[0] = B;
    s[1] = T;
    if (mask) { /* additive over keys: 0 for tokens, -10000 for padding (made on the host) */
        float *h = (float *)acn__alloc(ctx, (size_t)B * T * sizeof(float), "bert_forward");
        if (!h) return NULL;
        for (i = 0; i < B * T; i++) h[i] = mask[i] ? 0.0f : -10000.0f;
        if (!(r.mask = acn_input(ctx, 2, s, h))) return NULL;
    }
    if (!(pos = (int *)acn__alloc(ctx, (size_t)T * sizeof(int), "bert_forward"))) return NULL;
    for (i = 0; i < T; i++) pos[i] = i;
    x = acn_add(ctx, acn_embedding(ctx, m->tok, tokens, 2, s), acn_embedding(ctx, m->pos, pos, 1, &T));
    x = acn_dropout(ctx, acn__norm(ctx, x, &m->embed_ln, 0), c->dropout);
    return acn__wire(ctx, &r, c->wiring, k, x, acn__bert_block, acn__bert_head, probes);
}

/* ======================================================================== */
/* safetensors                                                              */
/* ======================================================================== */
/* Layout: u64 little-endian header length N, N bytes of JSON (padded with
 * spaces to a multiple of 8), then the data. The JSON maps each tensor name
 * to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the
 * data), with an optional "__metadata__" object of strings. */
static int acn__little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static const struct { const char *name; int dtype, size; } acn__dtypes[] = {
    {"F32", ACN_DT_F32, 4}, {"F16", ACN_DT_F16, 2}, {"BF16", ACN_DT_BF16, 2}, {"F64", ACN_DT_F64, 8},
    {"I64", ACN_DT_I64, 8}, {"I32", ACN_DT_I32, 4}, {"U8", ACN_DT_U8, 1}};
/* The safetensors format's other (whole-byte) dtypes: kept as ACN_DT_OTHER,
 * which acn_st_get does not convert, their byte counts checked like the
 * rest. Any other dtype name is refused. */
static const struct { const char *name; int size; } acn__dtypes_other[] = {
    {"BOOL", 1}, {"I8", 1}, {"I16", 2}, {"U16", 2}, {"U32", 4}, {"U64", 8},
    {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}};

/* 1 when s[0..n) is well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing past U+10FFFF), else 0. */
static int acn__utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], lo = 0x80, hi = 0xbf;
        size_t k, more = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                         : c >= 0xf0 && c <= 0xf4 ? 3 : 4;
        if (more == 4 || more > n - i - 1) return 0; /* not a lead byte, or cut short */
        if (c == 0xe0) lo = 0xa0;
        else if (c == 0xed) hi = 0x9f;
        else if (c == 0xf0) lo = 0x90;
        else if (c == 0xf4) hi = 0x8f;
        for (k = 1; k <= more; k++) {
            unsigned b = s[i + k];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return 0;
        }
        i += more + 1;
    }
    return 1;
}

/* ---- a small JSON reader for the header ---- */
typedef struct acn__json { const char *p, *end; } acn__json;

static void acn__jws(acn__json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}
static int acn__jeat(acn__json *j, char c)
{
    acn__jws(j);
    if (j->p < j->end && *j->p == c) { j->p++; return 1; }
    return 0;
}
/* UTF-8 bytes of code point cp into out; returns the count (0 if no room). */
static size_t acn__utf8(unsigned long cp, char *out, size_t room)
{
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4, k;
    if (n > room) return 0;
    if (n == 1) { out[0] = (char)cp; return 1; }
    for (k = n - 1; k > 0; k--) { out[k] = (char)(0x80 | (cp & 0x3f)); cp >>= 6; }
    out[0] = (char)((n == 2 ? 0xc0 : n == 3 ? 0xe0 : 0xf0) | cp);
    return n;
}
static int acn__jhex4(acn__json *j, unsigned long *v)
{
    int k;
    *v = 0;
    if (j->end - j->p < 4) return -1;
    for (k = 0; k < 4; k++) {
        char c = *j->p++;
        *v <<= 4;
        if (c >= '0' && c <= '9') *v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f') *v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') *v |= (unsigned long)(c - 'A' + 10);
        else return -1;
    }
    return 0;
}
/* A string into out (NUL-terminated, cap bytes); -1 when malformed or long,
 * -2 when its bytes are not UTF-8. */
static int acn__jstr(acn__json *j, char *out, size_t cap)
{
    size_t n = 0;
    if (!acn__jeat(j, '"')) return -1;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) return -1;
        if (c == '\\') {
            unsigned long cp, lo;
            size_t w;
            if (j->p >= j->end) return -1;
            c = (unsigned char)*j->p++;
            switch (c) {
            case '"': case '\\': case '/': cp = c; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (acn__jhex4(j, &cp)) return -1;
                if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') return -1;
                    j->p += 2;
                    if (acn__jhex4(j, &lo) || lo < 0xdc00 || lo >= 0xe000) return -1;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp < 0xe000) {
                    return -1;
                }
                break;
            default: return -1;
            }
            if (!cp || !(w = acn__utf8(cp, out + n, cap - 1 - n))) return -1;
            n += w;
        } else {
            if (n + 1 >= cap) return -1;
            out[n++] = (char)c;
        }
    }
    if (j->p >= j->end) return -1;
    j->p++;
    out[n] = '\0';
    return acn__utf8_ok((const unsigned char *)out, n) ? 0 : -2;
}
/* A non-negative integer that fits in 53 bits (JSON's safe range). */
static int acn__jint(acn__json *j, int64_t *v)
{
    int64_t x = 0;
    int digits = 0;
    acn__jws(j);
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > ((int64_t)1 << 53) / 10) return -1;
        x = x * 10 + (*j->p++ - '0');
        digits++;
    }
    if (!digits) return -1;
    *v = x;
    return 0;
}

static void acn__st_clear(acn_st *st)
{
    int i;
    for (i = 0; i < st->n_meta * 2; i++) ACN_FREE(st->meta[i]);
    ACN_FREE(st->meta);
    ACN_FREE(st->entries);
    ACN_FREE(st->buf);
    memset(st, 0, sizeof *st);
}
ACNDEF void acn_st_free(acn_st *st) { if (st) acn__st_clear(st); }

/* Grow an array of `size`-byte items to hold at least need items. */
static int acn__grow(acn_ctx *ctx, void **arr, int *cap, int need, size_t size, const char *who)
{
    void *p;
    int ncap;
    if (need <= *cap) return 0;
    ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    if (!(p = ACN_MALLOC((size_t)ncap * size))) {
        acn__fail(ctx, ACN_ERR_NOMEM, "%s: out of memory", who);
        return -1;
    }
    if (*arr) memcpy(p, *arr, (size_t)*cap * size);
    ACN_FREE(*arr);
    *arr = p;
    *cap = ncap;
    return 0;
}

static char *acn__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = (char *)ACN_MALLOC(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Parse the JSON header of st (buf and size set). */
static acn_status acn__st_parse(acn_ctx *ctx, acn_st *st, const char *path, size_t hlen)
{
    acn__json j;
    char key[ACN_NAME_MAX], field[32], *val;
    int cap = 0, mcap = 0, first = 1, have_meta = 0, entry = 0, r;
    size_t data_size = st->size - 8 - hlen;
    val = (char *)ACN_MALLOC(hlen + 1);
    if (!val) { acn__fail(ctx, ACN_ERR_NOMEM, "safetensors: out of memory"); return ctx->status; }
#define ACN__BAD(...) do { acn__fail(ctx, ACN_ERR_FORMAT, __VA_ARGS__); ACN_FREE(val); return ctx->status; } while (0)
    j.p = (const char *)st->buf + 8;
    j.end = j.p + hlen;
    if (!acn__jeat(&j, '{')) ACN__BAD("%s: the header is not a JSON object", path);
    while (!acn__jeat(&j, '}')) {
        if (!first && !acn__jeat(&j, ',')) ACN__BAD("%s: expected ',' or '}' in the header", path);
        first = 0;
        entry++;
        if ((r = acn__jstr(&j, key, sizeof key)) == -2)
            ACN__BAD("%s: the name of header entry %d (counting from 1) is not valid UTF-8; safetensors names are "
                     "UTF-8 strings (a damaged file?)", path, entry);
        if (r || !acn__jeat(&j, ':'))
            ACN__BAD("%s: the name of header entry %d is malformed or longer than %d bytes", path, entry,
                     ACN_NAME_MAX - 1);
        if (!strcmp(key, "__metadata__")) {
            int mfirst = 1, d;
            if (have_meta++) ACN__BAD("%s: __metadata__ appears twice", path);
            if (!acn__jeat(&j, '{')) ACN__BAD("%s: __metadata__ must be an object of strings", path);
            while (!acn__jeat(&j, '}')) {
                if (!mfirst && !acn__jeat(&j, ',')) ACN__BAD("%s: expected ',' or '}' in __metadata__", path);
                mfirst = 0;
                if (acn__grow(ctx, (void **)&st->meta, &mcap, 2 * st->n_meta + 2, sizeof(char *), "safetensors")) {
                    ACN_FREE(val);
                    return ctx->status;
                }
                if (acn__jstr(&j, val, hlen + 1))
                    ACN__BAD("%s: __metadata__ key %d is malformed or not UTF-8", path, st->n_meta + 1);
                for (d = 0; d < st->n_meta; d++)
                    if (!strcmp(st->meta[2 * d], val)) ACN__BAD("%s: __metadata__ key '%s' appears twice", path, val);
                if (!(st->meta[2 * st->n_meta] = acn__strdup(val))) ACN__BAD("%s: out of memory", path);
                st->meta[2 * st->n_meta + 1] = NULL;
                st->n_meta++;
                if (!acn__jeat(&j, ':') || acn__jstr(&j, val, hlen + 1))
                    ACN__BAD("%s: __metadata__ value of '%s' is not a string (or not UTF-8)", path,
                             st->meta[2 * st->n_meta - 2]);
                if (!(st->meta[2 * st->n_meta - 1] = acn__strdup(val))) ACN__BAD("%s: out of memory", path);
            }
        } else {
            acn_st_entry e;
            int have = 0, efirst = 1, d, bit;
            int64_t b = 0, en = 0, count = 1;
            size_t esize = 0;
            memset(&e, 0, sizeof e);
            strcpy(e.name, key);
            e.dtype = -1;
            if (!acn__jeat(&j, '{')) ACN__BAD("%s: '%s' is not an object", path, key);
            while (!acn__jeat(&j, '}')) {
                if (!efirst && !acn__jeat(&j, ',')) ACN__BAD("%s: '%s': expected ',' or '}'", path, key);
                efirst = 0;
                if (acn__jstr(&j, field, sizeof field) || !acn__jeat(&j, ':'))
                    ACN__BAD("%s: '%s': a malformed field", path, key);
                bit = !strcmp(field, "dtype") ? 1 : !strcmp(field, "shape") ? 2 : !strcmp(field, "data_offsets") ? 4 : 0;
                if (have & bit) ACN__BAD("%s: '%s': the field '%s' appears twice", path, key, field);
                if (bit == 1) {
                    size_t k;
                    if (acn__jstr(&j, field, sizeof field))
                        ACN__BAD("%s: '%s': dtype is not a string naming a dtype", path, key);
                    for (k = 0; k < sizeof acn__dtypes / sizeof acn__dtypes[0]; k++)
                        if (!strcmp(field, acn__dtypes[k].name)) {
                            e.dtype = acn__dtypes[k].dtype;
                            esize = (size_t)acn__dtypes[k].size;
                        }
                    for (k = 0; k < sizeof acn__dtypes_other / sizeof acn__dtypes_other[0]; k++)
                        if (!strcmp(field, acn__dtypes_other[k].name)) {
                            e.dtype = ACN_DT_OTHER;
                            esize = (size_t)acn__dtypes_other[k].size;
                        }
                    if (!esize)
                        ACN__BAD("%s: '%s': unknown dtype '%s' (safetensors dtypes: F64, F32, F16, BF16, I64, I32, "
                                 "I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2, F8_E8M0)", path, key, field);
                    have |= 1;
                } else if (!strcmp(field, "shape")) {
                    if (!acn__jeat(&j, '[')) ACN__BAD("%s: '%s': shape is not an array", path, key);
                    while (!acn__jeat(&j, ']')) {
                        if (e.ndim && !acn__jeat(&j, ',')) ACN__BAD("%s: '%s': malformed shape", path, key);
                        if (e.ndim == 8 || acn__jint(&j, &e.shape[e.ndim]))
                            ACN__BAD("%s: '%s': shape needs at most 8 integers in [0, 2^53]", path, key);
                        e.ndim++;
                    }
                    have |= 2;
                } else if (!strcmp(field, "data_offsets")) {
                    if (!acn__jeat(&j, '[') || acn__jint(&j, &b) || !acn__jeat(&j, ',') ||
                        acn__jint(&j, &en) || !acn__jeat(&j, ']'))
                        ACN__BAD("%s: '%s': data_offsets must be [begin, end]", path, key);
                    have |= 4;
                } else {
                    ACN__BAD("%s: '%s': unknown field '%s'", path, key, field);
                }
            }
            if (have != 7) ACN__BAD("%s: '%s' lacks dtype, shape or data_offsets", path, key);
            for (d = 0; d < e.ndim; d++) {
                if (e.shape[d] && count > ((int64_t)1 << 53) / e.shape[d])
                    ACN__BAD("%s: '%s': the shape is too large", path, key);
                count *= e.shape[d];
            }
            if (b > en || (uint64_t)en > data_size)
                ACN__BAD("%s: '%s': data_offsets [%lld, %lld] fall outside the %zu data bytes", path,
                         key, (long long)b, (long long)en, data_size);
            if ((uint64_t)(en - b) != (uint64_t)count * esize)
                ACN__BAD("%s: '%s': %lld bytes for %lld elements of %zu bytes", path, key,
                         (long long)(en - b), (long long)count, esize);
            e.begin = (size_t)b;
            e.end = (size_t)en;
            if (acn_st_find(st, key)) ACN__BAD("%s: '%s' appears twice", path, key);
            if (acn__grow(ctx, (void **)&st->entries, &cap, st->n + 1, sizeof e, "safetensors")) {
                ACN_FREE(val);
                return ctx->status;
            }
            st->entries[st->n++] = e;
        }
    }
    acn__jws(&j);
    if (j.p != j.end) ACN__BAD("%s: bytes after the header's closing brace", path);
    /* the tensors must tile the data: sorted by offset, from 0, each where
     * the last ended, the last at the end of the file */
    {
        size_t *span = (size_t *)ACN_MALLOC(2 * (size_t)(st->n ? st->n : 1) * sizeof(size_t)), at = 0;
        int i, k;
        if (!span) ACN__BAD("%s: out of memory", path);
        for (i = 0; i < st->n; i++) { /* insertion sort of (begin, end) by begin */
            size_t b0 = st->entries[i].begin, e0 = st->entries[i].end;
            for (k = i; k > 0 && span[2 * (k - 1)] > b0; k--) {
                span[2 * k] = span[2 * k - 2];
                span[2 * k + 1] = span[2 * k - 1];
            }
            span[2 * k] = b0;
            span[2 * k + 1] = e0;
        }
        for (i = 0; i < st->n; i++) {
            if (span[2 * i] != at) {
                int gap = span[2 * i] > at;
                ACN_FREE(span);
                ACN__BAD("%s: the tensors %s at byte %zu of the data (they must follow one another from 0)",
                         path, gap ? "leave a gap" : "overlap", at);
            }
            at = span[2 * i + 1];
        }
        ACN_FREE(span);
        if (at != data_size)
            ACN__BAD("%s: %zu bytes after the last tensor (a damaged or padded file)", path, data_size - at);
    }
#undef ACN__BAD
    ACN_FREE(val);
    return ACN_OK;
}

/* Parse buf (size bytes, taken over: freed with st) as a safetensors file. */
static acn_status acn__st_take(acn_ctx *ctx, acn_st *st, unsigned char *buf, size_t size, const char *name)
{
    uint64_t hlen = 0;
    int k;
    st->buf = buf;
    st->size = size;
    for (k = 7; k >= 0 && size >= 8; k--) hlen = (hlen << 8) | buf[k];
    if (size < 8 || hlen > size - 8 || hlen > ((uint64_t)100 << 20)) {
        acn__st_clear(st);
        acn__fail(ctx, ACN_ERR_FORMAT,
                  "%s: not a safetensors file (the header length %llu does not fit the %zu-byte file, or "
                  "exceeds 100 MB)", name, (unsigned long long)hlen, size);
        return ctx->status;
    }
    st->data_start = 8 + (size_t)hlen;
    if (acn__st_parse(ctx, st, name, (size_t)hlen)) {
        acn__st_clear(st);
        return ctx->status;
    }
    return ACN_OK;
}

ACNDEF acn_status acn_st_parse(acn_ctx *ctx, acn_st *st, const void *bytes, size_t size, const char *name)
{
    unsigned char *copy;
    if (!ctx) return ACN_ERR_ARG;
    if (!st || (size && !bytes)) { acn__fail(ctx, ACN_ERR_ARG, "st_parse: st or bytes is NULL"); return ctx->status; }
    memset(st, 0, sizeof *st);
    if (ctx->status) return ctx->status;
    if (!(copy = (unsigned char *)ACN_MALLOC(size ? size : 1))) {
        acn__fail(ctx, ACN_ERR_NOMEM, "st_parse: cannot allocate %zu bytes", size);
        return ctx->status;
    }
    if (size) memcpy(copy, bytes, size);
    return acn__st_take(ctx, st, copy, size, name ? name : "(memory)");
}

#ifndef ACN_NO_STDIO
static acn_status acn__read_file(acn_ctx *ctx, const char *path, unsigned char **buf, size_t *size);
ACNDEF acn_status acn_st_read(acn_ctx *ctx, const char *path, acn_st *st)
{
    unsigned char *buf;
    size_t size;
    if (!ctx) return ACN_ERR_ARG;
    if (!st) { acn__fail(ctx, ACN_ERR_ARG, "st_read: st is NULL"); return ctx->status; }
    memset(st, 0, sizeof *st);
    if (ctx->status || acn__read_file(ctx, path, &buf, &size)) return ctx->status;
    return acn__st_take(ctx, st, buf, size, path);
}
#endif

ACNDEF const acn_st_entry *acn_st_find(const acn_st *st, const char *name)
{
    int i;
    for (i = 0; i < st->n; i++)
        if (!strcmp(st->entries[i].name, name)) return &st->entries[i];
    return NULL;
}
ACNDEF const char *acn_st_meta(const acn_st *st, const char *key)
{
    int i;
    for (i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

static int acn__dtype_size(int dtype)
{
    size_t k;
    for (k = 0; k < sizeof acn__dtypes / sizeof acn__dtypes[0]; k++)
        if (acn__dtypes[k].dtype == dtype) return acn__dtypes[k].size;
    return 0;
}
/* Reverse the bytes of each of count elements of size w, on big-endian hosts. */
static void acn__to_host(void *p, size_t count, int w)
{
    unsigned char *b = (unsigned char *)p, t;
    size_t i;
    int k;
    if (acn__little_endian() || w < 2) return;
    for (i = 0; i < count; i++, b += w)
        for (k = 0; k < w / 2; k++) { t = b[k]; b[k] = b[w - 1 - k]; b[w - 1 - k] = t; }
}

ACNDEF acn_status acn_st_get(acn_ctx *ctx, const acn_st *st, const char *name, int dtype, void *dst, size_t n)
{
    const acn_st_entry *e;
    int w = acn__dtype_size(dtype);
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!(e = acn_st_find(st, name))) {
        acn__fail(ctx, ACN_ERR_ARG, "st_get: no tensor named '%s' in the file (%d tensors)", name, st->n);
        return ctx->status;
    }
    if (!w || e->dtype != dtype || e->end - e->begin != n * (size_t)w) {
        acn__fail(ctx, ACN_ERR_FORMAT, "st_get: '%s' is not %zu values of dtype %d (%zu bytes, dtype %d)", name, n,
                  dtype, e->end - e->begin, e->dtype);
        return ctx->status;
    }
    if (n) memcpy(dst, st->buf + st->data_start + e->begin, n * (size_t)w);
    acn__to_host(dst, n, w);
    return ACN_OK;
}
ACNDEF acn_status acn_st_get_f32(acn_ctx *ctx, const acn_st *st, const char *name, float *dst, size_t n)
{
    return acn_st_get(ctx, st, name, ACN_DT_F32, dst, n);
}

#ifndef ACN_NO_STDIO
/* A growing string for the header. */
typedef struct acn__sb { char *p; size_t len, cap; int oom; } acn__sb;
static void acn__sb_put(acn__sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 1024;
        char *q;
        while (ncap < b->len + n + 1) ncap *= 2;
        if (!(q = (char *)ACN_MALLOC(ncap))) { b->oom = 1; return; }
        if (b->p) memcpy(q, b->p, b->len);
        ACN_FREE(b->p);
        b->p = q;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void acn__sb_str(acn__sb *b, const char *s) { acn__sb_put(b, s, strlen(s)); }
static void acn__sb_json(acn__sb *b, const char *s) /* a quoted, escaped JSON string */
{
    char esc[8];
    acn__sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; acn__sb_put(b, esc, 2); }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); acn__sb_put(b, esc, 6); }
        else acn__sb_put(b, s, 1);
    }
    acn__sb_put(b, "\"", 1);
}

ACNDEF acn_status acn_st_write_items(acn_ctx *ctx, const char *path, const acn_st_item *t, int n,
                                     const char *const *kv, int n_meta)
{
    acn__sb h;
    char num[64], *tmp;
    size_t off = 0, pad, plen, *bytes;
    unsigned char len8[8];
    uint64_t hl;
    FILE *f;
    int i, d, ok;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!path || n < 0 || (n && !t) || n_meta < 0 || (n_meta && !kv)) {
        acn__fail(ctx, ACN_ERR_ARG, "st_write: bad arguments (path, tensors or metadata)");
        return ctx->status;
    }
    if (!(bytes = (size_t *)ACN_MALLOC((size_t)(n ? n : 1) * sizeof(size_t)))) {
        acn__fail(ctx, ACN_ERR_NOMEM, "st_write: out of memory");
        return ctx->status;
    }
    for (i = 0; i < n; i++) { /* each item: a unique name, a known dtype, a shape, data */
        size_t count = 1;
        int j = 0, w = acn__dtype_size(t[i].dtype), bad;
        for (d = 0; d < t[i].ndim && d < 8; d++) count *= t[i].shape[d] >= 0 ? (size_t)t[i].shape[d] : 0;
        bytes[i] = count * (size_t)w;
        for (j = 0; j < i && t[i].name; j++)
            if (!strcmp(t[j].name, t[i].name)) break;
        bad = !t[i].name || !*t[i].name || !strcmp(t[i].name, "__metadata__") || j < i;
        if (bad || !w || t[i].ndim < 0 || t[i].ndim > 8 || (bytes[i] && !t[i].data)) {
            acn__fail(ctx, ACN_ERR_ARG, "st_write: tensor %d ('%s') lacks a unique name, a dtype, a shape or its "
                      "data", i, t[i].name ? t[i].name : "(NULL)");
            ACN_FREE(bytes);
            return ctx->status;
        }
    }
    for (i = 0; i < n_meta; i++) { /* each metadata key once */
        int j;
        for (j = 0; j < i; j++)
            if (kv[2 * i] && kv[2 * j] && !strcmp(kv[2 * i], kv[2 * j])) break;
        if (!kv[2 * i] || j < i) {
            acn__fail(ctx, ACN_ERR_ARG, "st_write: metadata key %d ('%s') is missing or given twice; each key may "
                      "appear once", i, kv[2 * i] ? kv[2 * i] : "(NULL)");
            ACN_FREE(bytes);
            return ctx->status;
        }
    }
    memset(&h, 0, sizeof h);
    acn__sb_str(&h, "{");
    if (n_meta) {
        acn__sb_str(&h, "\"__metadata__\":{");
        for (i = 0; i < n_meta; i++) {
            if (i) acn__sb_str(&h, ",");
            acn__sb_json(&h, kv[2 * i] ? kv[2 * i] : "");
            acn__sb_str(&h, ":");
            acn__sb_json(&h, kv[2 * i + 1] ? kv[2 * i + 1] : "");
        }
        acn__sb_str(&h, "}");
    }
    for (i = 0; i < n; i++) {
        size_t k;
        if (i || n_meta) acn__sb_str(&h, ",");
        acn__sb_json(&h, t[i].name);
        acn__sb_str(&h, ":{\"dtype\":\"");
        for (k = 0; k < sizeof acn__dtypes / sizeof acn__dtypes[0]; k++)
            if (acn__dtypes[k].dtype == t[i].dtype) acn__sb_str(&h, acn__dtypes[k].name);
        acn__sb_str(&h, "\",\"shape\":[");
        for (d = 0; d < t[i].ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t[i].shape[d]);
            acn__sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes[i]);
        acn__sb_str(&h, num);
        off += bytes[i];
    }
    acn__sb_str(&h, "}");
    pad = (8 - h.len % 8) % 8;
    for (; pad; pad--) acn__sb_str(&h, " ");
    if (h.oom) {
        ACN_FREE(h.p);
        ACN_FREE(bytes);
        acn__fail(ctx, ACN_ERR_NOMEM, "st_write: out of memory building the header");
        return ctx->status;
    }
    hl = h.len;
    for (i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
    plen = strlen(path);
    if (!(tmp = (char *)ACN_MALLOC(plen + 5))) {
        ACN_FREE(h.p);
        ACN_FREE(bytes);
        acn__fail(ctx, ACN_ERR_NOMEM, "st_write: out of memory");
        return ctx->status;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    if (!(f = fopen(tmp, "wb"))) {
        acn__fail(ctx, ACN_ERR_IO, "%s: cannot open for writing: %s (does the directory exist, and may it be "
                  "written to?)", tmp, strerror(errno));
        ACN_FREE(h.p);
        ACN_FREE(tmp);
        ACN_FREE(bytes);
        return ctx->status;
    }
    ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.p, 1, h.len, f) == h.len;
    for (i = 0; i < n && ok; i++) {
        int w = acn__dtype_size(t[i].dtype);
        if (acn__little_endian() || w < 2) {
            ok = !bytes[i] || fwrite(t[i].data, 1, bytes[i], f) == bytes[i];
        } else { /* element by element, bytes reversed */
            const unsigned char *src = (const unsigned char *)t[i].data;
            unsigned char el[8];
            size_t e;
            int k;
            for (e = 0; e < bytes[i] && ok; e += (size_t)w) {
                for (k = 0; k < w; k++) el[k] = src[e + (size_t)(w - 1 - k)];
                ok = fwrite(el, 1, (size_t)w, f) == (size_t)w;
            }
        }
    }
    ok = fflush(f) == 0 && ok;
#ifdef ACN__HAVE_FSYNC
    ok = fsync(fileno(f)) == 0 && ok;
#endif
    ok = fclose(f) == 0 && ok;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) {
        remove(tmp);
        acn__fail(ctx, ACN_ERR_IO, "%s: writing failed (disk full, or no permission?); the "
                                   "previous file, if any, is untouched", path);
    }
    ACN_FREE(h.p);
    ACN_FREE(tmp);
    ACN_FREE(bytes);
    return ok ? ACN_OK : ctx->status;
}

/* Files and a GPU context: what is written comes down to a host buffer
 * first, and what is read goes up from one. acn__host_copy: n device floats
 * in a new host buffer (the caller frees it with ACN_FREE); NULL with the
 * error set. acn__st_get_to: st's tensor `name` into the context's floats
 * at dst (device memory on a GPU context). */
static float *acn__host_copy(acn_ctx *ctx, const float *src, size_t n, const char *who)
{
    float *h = (float *)ACN_MALLOC((n ? n : 1) * sizeof(float));
    if (!h) acn__fail(ctx, ACN_ERR_NOMEM, "%s: out of host memory for %zu values from the GPU", who, n);
    else if (acn__dcopy(ctx, h, src, n * sizeof(float), ACN__D2H, who)) { ACN_FREE(h); h = NULL; }
    return h;
}
static acn_status acn__st_get_to(acn_ctx *ctx, const acn_st *st, const char *name, float *dst, size_t n)
{
    float *h;
    if (!ACN__GPU(ctx)) return acn_st_get_f32(ctx, st, name, dst, n);
    if (!(h = (float *)ACN_MALLOC((n ? n : 1) * sizeof(float)))) {
        acn__fail(ctx, ACN_ERR_NOMEM, "load: out of host memory for %zu values on their way to the GPU", n);
        return ctx->status;
    }
    if (!acn_st_get_f32(ctx, st, name, h, n)) acn__dcopy(ctx, dst, h, n * sizeof(float), ACN__H2D, "load");
    ACN_FREE(h);
    return ctx->status;
}

ACNDEF acn_status acn_st_write(acn_ctx *ctx, const char *path, acn_tensor *const *t, int n,
                               const char *const *kv, int n_meta)
{
    acn_st_item *items;
    acn_status st;
    int i, d;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (n < 0 || (n && !t)) {
        acn__fail(ctx, ACN_ERR_ARG, "st_write: bad arguments (tensors)");
        return ctx->status;
    }
    if (!(items = (acn_st_item *)ACN_MALLOC((size_t)(n ? n : 1) * sizeof *items))) {
        acn__fail(ctx, ACN_ERR_NOMEM, "st_write: out of memory");
        return ctx->status;
    }
    for (i = 0; i < n; i++) {
        if (!t[i] || (t[i]->flags & ACN_F_TRANSIENT)) { /* a recomputed value has no fixed storage */
            ACN_FREE(items);
            acn__fail(ctx, ACN_ERR_ARG, "st_write: tensor %d is NULL or recomputed (ACN_RECOMPUTE); write "
                      "acn_detach() of it", i);
            return ctx->status;
        }
        items[i].name = t[i]->name;
        items[i].dtype = ACN_DT_F32;
        items[i].ndim = t[i]->ndim;
        for (d = 0; d < t[i]->ndim; d++) items[i].shape[d] = t[i]->shape[d];
        items[i].data = t[i]->data;
    }
    if (ACN__GPU(ctx)) /* the values come down first, each into its own host copy */
        for (i = 0; i < n; i++)
            if (!(items[i].data = acn__host_copy(ctx, t[i]->data, t[i]->numel, "st_write"))) break;
    st = ctx->status ? ctx->status : acn_st_write_items(ctx, path, items, n, kv, n_meta);
    if (ACN__GPU(ctx))
        for (i = 0; i < n; i++) ACN_FREE((void *)items[i].data);
    ACN_FREE(items);
    return st;
}

ACNDEF acn_status acn_save_params(acn_ctx *ctx, const char *path, const char *const *kv, int n_meta)
{
    acn_tensor **list;
    acn_status st;
    int i;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!(list = (acn_tensor **)ACN_MALLOC((size_t)(ctx->n_params + 1) * sizeof *list))) {
        acn__fail(ctx, ACN_ERR_NOMEM, "save_params: out of memory");
        return ctx->status;
    }
    for (i = 0; i < ctx->n_params; i++) list[i] = &ctx->ptab[i];
    st = acn_st_write(ctx, path, list, ctx->n_params, kv, n_meta);
    ACN_FREE(list);
    return st;
}

/* Whether st holds exactly the context's parameters: each by name with its
 * shape as F32, and nothing else. Nothing is copied. */
static acn_status acn__params_match(acn_ctx *ctx, const acn_st *st, const char *path)
{
    int i, d;
    char sh[64];
    for (i = 0; i < st->n; i++)
        if (!acn_param_find(ctx, st->entries[i].name)) {
            acn__fail(ctx, ACN_ERR_FORMAT,
                      "%s: '%s' is not a parameter of this model (was the file written for "
                      "another model or configuration?)", path, st->entries[i].name);
            return ctx->status;
        }
    for (i = 0; i < ctx->n_params; i++) {
        acn_tensor *p = &ctx->ptab[i];
        const acn_st_entry *e = acn_st_find(st, p->name);
        int same = e && e->ndim == p->ndim;
        for (d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
        if (!e || !same || e->dtype != ACN_DT_F32) {
            acn__fail(ctx, ACN_ERR_FORMAT,
                      e ? "%s: '%s' is in the file with another shape or dtype than the model's %s F32"
                        : "%s: '%s' %s is missing from the file",
                      path, p->name, ACN__SHAPE(p, sh));
            return ctx->status;
        }
    }
    return ACN_OK;
}
/* The parameters from st, checked first: on an error none is changed. */
static acn_status acn__params_take(acn_ctx *ctx, const acn_st *st, const char *path)
{
    int i;
    if (acn__params_match(ctx, st, path)) return ctx->status;
    for (i = 0; i < ctx->n_params && !ctx->status; i++)
        acn__st_get_to(ctx, st, ctx->ptab[i].name, ctx->ptab[i].data, ctx->ptab[i].numel);
    return ctx->status;
}

/* The block a parameter belongs to ("blocks.<j>." -> j), or -1. */
static int acn__param_block(const char *name)
{
    int j = 0;
    if (strncmp(name, "blocks.", 7)) return -1;
    name += 7;
    if (*name < '0' || *name > '9') return -1;
    while (*name >= '0' && *name <= '9' && j < 100000) j = j * 10 + (*name++ - '0');
    return *name == '.' ? j : -1;
}

ACNDEF acn_status acn_save_cut(acn_ctx *ctx, const char *path, int k, const char *const *kv, int n_meta)
{
    acn_tensor **list;
    const char **meta;
    char depth[16];
    acn_status st;
    int i, n = 0, m = 0, top = -1;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (!path || (n_meta > 0 && !kv) || n_meta < 0 || k < 0 || k > ACN_MAX_BLOCKS) {
        acn__fail(ctx, ACN_ERR_ARG, "save_cut: %s", !path ? "path is NULL" : k < 0 || k > ACN_MAX_BLOCKS ?
                  "k must be in [0, ACN_MAX_BLOCKS]" : "kv is NULL or n_meta is negative");
        return ctx->status;
    }
    for (i = 0; i < ctx->n_params; i++)
        if (acn__param_block(ctx->ptab[i].name) > top) top = acn__param_block(ctx->ptab[i].name);
    if (k > top + 1) {
        acn__fail(ctx, ACN_ERR_ARG, "save_cut: k = %d blocks, but the model's parameters go up to block %d "
                  "(k must be at most the model's depth, %d)", k, top, top + 1);
        return ctx->status;
    }
    list = (acn_tensor **)ACN_MALLOC((size_t)(ctx->n_params + 1) * sizeof *list);
    meta = (const char **)ACN_MALLOC((size_t)(2 * n_meta + 2) * sizeof *meta);
    if (!list || !meta) {
        ACN_FREE(list);
        ACN_FREE((void *)meta);
        acn__fail(ctx, ACN_ERR_NOMEM, "save_cut: out of memory");
        return ctx->status;
    }
    for (i = 0; i < ctx->n_params; i++)
        if (acn__param_block(ctx->ptab[i].name) < k) list[n++] = &ctx->ptab[i];
    snprintf(depth, sizeof depth, "%d", k);
    for (i = 0; i < n_meta; i++)
        if (!kv[2 * i] || strcmp(kv[2 * i], "depth")) { meta[2 * m] = kv[2 * i]; meta[2 * m + 1] = kv[2 * i + 1]; m++; }
    meta[2 * m] = "depth";
    meta[2 * m + 1] = depth;
    st = acn_st_write(ctx, path, list, n, meta, m + 1);
    ACN_FREE(list);
    ACN_FREE((void *)meta);
    return st;
}

ACNDEF acn_status acn_load_params(acn_ctx *ctx, const char *path)
{
    acn_st st;
    if (!ctx) return ACN_ERR_ARG;
    if (acn_st_read(ctx, path, &st)) return ctx->status;
    acn__params_take(ctx, &st, path);
    acn__st_clear(&st);
    return ctx->status;
}
#endif /* ACN_NO_STDIO */


/* ======================================================================== */
/* Data sets                                                                */
/* ======================================================================== */
ACNDEF void acn_data_free(acn_dataset *ds)
{
    if (!ds) return;
    ACN_FREE(ds->u8);
    ACN_FREE(ds->f32);
    ACN_FREE(ds->labels);
    ACN_FREE(ds->coarse);
    memset(ds, 0, sizeof *ds);
}

ACNDEF void acn_data_batch(const acn_dataset *ds, const int *idx, int b, float *x, int *y)
{
    size_t d = (size_t)ds->c * ds->h * ds->w, j;
    int i;
    for (i = 0; i < b; i++) {
        size_t e = (size_t)idx[i];
        if (x && ds->u8)
            for (j = 0; j < d; j++) x[(size_t)i * d + j] = ds->u8[e * d + j] * ds->scale;
        else if (x)
            for (j = 0; j < d; j++) x[(size_t)i * d + j] = ds->f32[e * d + j] * ds->scale;
        if (y) y[i] = ds->labels[e];
    }
}

static int acn__data_alloc(acn_ctx *ctx, acn_dataset *ds, int n, int bytes, const char *who)
{
    size_t d = (size_t)ds->c * ds->h * ds->w;
    ds->n = n;
    ds->labels = (int *)ACN_MALLOC((size_t)(n ? n : 1) * sizeof(int));
    if (bytes) ds->u8 = (unsigned char *)ACN_MALLOC((n ? (size_t)n : 1) * d);
    else ds->f32 = (float *)ACN_MALLOC((n ? (size_t)n : 1) * d * sizeof(float));
    if (!ds->labels || (bytes ? !ds->u8 : !ds->f32)) {
        acn_data_free(ds);
        acn__fail(ctx, ACN_ERR_NOMEM, "%s: out of memory for %d examples", who, n);
        return -1;
    }
    return 0;
}

ACNDEF acn_status acn_data_select(acn_ctx *ctx, const acn_dataset *src, acn_dataset *dst, int k_per_class,
                                  const int *classes, int n_classes)
{
    int *seen, *map, i, n = 0, c, classes_out;
    size_t d;
    if (!ctx) return ACN_ERR_ARG;
    if (!src || !dst || src == dst || (classes && n_classes < 1)) {
        acn__fail(ctx, ACN_ERR_ARG, "data_select: need a source, a separate destination, and a class list or NULL");
        return ctx->status;
    }
    memset(dst, 0, sizeof *dst);
    if (ctx->status) return ctx->status;
    for (c = 0; classes && c < n_classes; c++)
        if (classes[c] < 0 || classes[c] >= src->classes) {
            acn__fail(ctx, ACN_ERR_ARG, "data_select: class %d is not among the data set's %d classes", classes[c],
                      src->classes);
            return ctx->status;
        }
    seen = (int *)ACN_MALLOC(2 * (size_t)src->classes * sizeof(int));
    if (!seen) { acn__fail(ctx, ACN_ERR_NOMEM, "data_select: out of memory"); return ctx->status; }
    map = seen + src->classes;    /* class -> new label, or -1 */
    for (c = 0; c < src->classes; c++) { seen[c] = 0; map[c] = classes ? -1 : c; }
    for (c = 0; classes && c < n_classes; c++) map[classes[c]] = c;
    classes_out = classes ? n_classes : src->classes;
    for (i = 0; i < src->n; i++) /* count first */
        if (map[src->labels[i]] >= 0 && (k_per_class < 0 || seen[src->labels[i]]++ < k_per_class)) n++;
    *dst = *src;
    dst->u8 = NULL; dst->f32 = NULL; dst->labels = NULL; dst->coarse = NULL;
    if (acn__data_alloc(ctx, dst, n, src->u8 != NULL, "data_select")) { ACN_FREE(seen); return ctx->status; }
    if (src->coarse && !(dst->coarse = (int *)ACN_MALLOC((size_t)(n ? n : 1) * sizeof(int)))) {
        ACN_FREE(seen);
        acn_data_free(dst);
        acn__fail(ctx, ACN_ERR_NOMEM, "data_select: out of memory");
        return ctx->status;
    }
    dst->classes = classes_out;
    d = (size_t)src->c * src->h * src->w;
    for (c = 0; c < src->classes; c++) seen[c] = 0;
    for (i = 0, n = 0; i < src->n; i++) {
        int l = src->labels[i];
        if (map[l] < 0 || (k_per_class >= 0 && seen[l]++ >= k_per_class)) continue;
        if (src->u8) memcpy(dst->u8 + (size_t)n * d, src->u8 + (size_t)i * d, d);
        else memcpy(dst->f32 + (size_t)n * d, src->f32 + (size_t)i * d, d * sizeof(float));
        dst->labels[n] = map[l];
        if (src->coarse) dst->coarse[n] = src->coarse[i];
        n++;
    }
    ACN_FREE(seen);
    return ACN_OK;
}

/* Epoch e's order: Fisher-Yates with a generator seeded from (seed, e). */
static void acn__sampler_shuffle(acn_sampler *s)
{
    acn_rng r;
    int i;
    acn_rng_seed(&r, s->seed ^ (0x9E3779B97F4A7C15ULL * ((uint64_t)s->epoch + 1))); /* (no signed overflow) */
    for (i = 0; i < s->n; i++) s->order[i] = i;
    for (i = s->n - 1; i > 0; i--) {
        int j = (int)(acn_rng_u64(&r) % (uint64_t)(i + 1)), t = s->order[i];
        s->order[i] = s->order[j];
        s->order[j] = t;
    }
}
ACNDEF acn_status acn_sampler_init(acn_ctx *ctx, acn_sampler *s, int n, int batch, uint64_t seed, int drop_last)
{
    if (!ctx || !s) return ACN_ERR_ARG;
    memset(s, 0, sizeof *s);
    if (ctx->status) return ctx->status;
    if (n < 1 || batch < 1) {
        acn__fail(ctx, ACN_ERR_ARG, "sampler_init: %d examples in batches of %d; both must be positive", n, batch);
        return ctx->status;
    }
    if (drop_last && n < batch) {
        acn__fail(ctx, ACN_ERR_ARG, "sampler_init: drop_last with %d examples in batches of %d leaves no whole "
                  "batch; use a batch of at most %d, or keep the short batch", n, batch, n);
        return ctx->status;
    }
    if (!(s->order = (int *)ACN_MALLOC((size_t)n * sizeof(int)))) {
        acn__fail(ctx, ACN_ERR_NOMEM, "sampler_init: out of memory");
        return ctx->status;
    }
    s->n = n;
    s->batch = batch;
    s->seed = seed;
    s->drop_last = drop_last;
    acn__sampler_shuffle(s);
    return ACN_OK;
}
ACNDEF int acn_sampler_next(acn_sampler *s, int *idx)
{
    int k = 0;
    if (s->pos >= s->n || (s->drop_last && s->n - s->pos < s->batch)) { /* the epoch is over */
        s->epoch++;
        s->pos = 0;
        acn__sampler_shuffle(s);
        return 0;
    }
    while (k < s->batch && s->pos < s->n) idx[k++] = s->order[s->pos++];
    return k;
}
ACNDEF void acn_sampler_seek(acn_sampler *s, int64_t epoch, int64_t pos)
{
    s->epoch = epoch < 0 ? 0 : epoch;
    s->pos = pos < 0 ? 0 : pos > s->n ? s->n : pos;
    acn__sampler_shuffle(s);
}
ACNDEF void acn_sampler_free(acn_sampler *s)
{
    if (!s) return;
    ACN_FREE(s->order);
    s->order = NULL;
}

#ifndef ACN_NO_STDIO
/* A whole file into a new buffer; the error names the path. */
static acn_status acn__read_file(acn_ctx *ctx, const char *path, unsigned char **buf, size_t *size)
{
    FILE *f;
    long n;
    *buf = NULL;
    *size = 0;
    if (!path || !(f = fopen(path, "rb"))) {
        acn__fail(ctx, ACN_ERR_IO, "%s: cannot open the file for reading", path ? path : "(NULL path)");
        return ctx->status;
    }
    if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        acn__fail(ctx, ACN_ERR_IO, "%s: cannot find the file's size", path);
        return ctx->status;
    }
    if (!(*buf = (unsigned char *)ACN_MALLOC((size_t)n ? (size_t)n : 1))) {
        fclose(f);
        acn__fail(ctx, ACN_ERR_NOMEM, "%s: cannot allocate %ld bytes to read it", path, n);
        return ctx->status;
    }
    if (fread(*buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        ACN_FREE(*buf);
        *buf = NULL;
        acn__fail(ctx, ACN_ERR_IO, "%s: read error", path);
        return ctx->status;
    }
    fclose(f);
    *size = (size_t)n;
    return ACN_OK;
}

ACNDEF acn_status acn_data_cifar(acn_ctx *ctx, acn_dataset *ds, const char *const *paths, int n_paths,
                                 int cifar100)
{
    size_t rec = 3072 + (cifar100 ? 2 : 1), total = 0, size, r;
    unsigned char *buf;
    int f, n = 0;
    if (!ctx) return ACN_ERR_ARG;
    if (!ds || !paths || n_paths < 1) { acn__fail(ctx, ACN_ERR_ARG, "data_cifar: no files given"); return ctx->status; }
    memset(ds, 0, sizeof *ds);
    if (ctx->status) return ctx->status;
    /* first the sizes: every file a whole number of records */
    for (f = 0; f < n_paths; f++) {
        if (acn__read_file(ctx, paths[f], &buf, &size)) return ctx->status;
        ACN_FREE(buf);
        if (!size || size % rec) {
            acn__fail(ctx, ACN_ERR_FORMAT,
                      "%s: %zu bytes is not a whole number of %zu-byte CIFAR-%s records (truncated, or "
                      "CIFAR-%s?)", paths[f], size, rec, cifar100 ? "100" : "10", cifar100 ? "10" : "100");
            return ctx->status;
        }
        total += size / rec;
    }
    ds->c = 3; ds->h = ds->w = 32;
    ds->classes = cifar100 ? 100 : 10;
    ds->scale = 1.0f / 255.0f;
    if (acn__data_alloc(ctx, ds, (int)total, 1, "data_cifar")) return ctx->status;
    if (cifar100 && !(ds->coarse = (int *)ACN_MALLOC(total * sizeof(int)))) {
        acn_data_free(ds);
        acn__fail(ctx, ACN_ERR_NOMEM, "data_cifar: out of memory");
        return ctx->status;
    }
    for (f = 0; f < n_paths; f++) {
        if (acn__read_file(ctx, paths[f], &buf, &size)) { acn_data_free(ds); return ctx->status; }
        for (r = 0; r < size / rec; r++, n++) {
            const unsigned char *p = buf + r * rec;
            int label = p[cifar100 ? 1 : 0];
            if (label >= ds->classes || (cifar100 && p[0] >= 20)) {
                acn__fail(ctx, ACN_ERR_FORMAT, "%s: record %zu has label %d, outside [0, %d): a corrupt file%s",
                          paths[f], r, label, ds->classes, cifar100 ? "" : ", or CIFAR-100 (cifar100 = 1)?");
                ACN_FREE(buf);
                acn_data_free(ds);
                return ctx->status;
            }
            ds->labels[n] = label;
            if (cifar100) ds->coarse[n] = p[0];
            memcpy(ds->u8 + (size_t)n * 3072, p + (cifar100 ? 2 : 1), 3072);
        }
        ACN_FREE(buf);
    }
    return ACN_OK;
}

static uint32_t acn__be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

ACNDEF acn_status acn_data_idx(acn_ctx *ctx, acn_dataset *ds, const char *images, const char *labels)
{
    unsigned char *ib = NULL, *lb = NULL;
    size_t is, ls, i;
    uint32_t n, rows, cols;
    const char *bad = NULL, *which = images;
    if (!ctx) return ACN_ERR_ARG;
    if (!ds) { acn__fail(ctx, ACN_ERR_ARG, "data_idx: ds is NULL"); return ctx->status; }
    memset(ds, 0, sizeof *ds);
    if (ctx->status) return ctx->status;
    if (acn__read_file(ctx, images, &ib, &is) || acn__read_file(ctx, labels, &lb, &ls)) {
        ACN_FREE(ib);
        return ctx->status;
    }
    if ((is >= 2 && ib[0] == 0x1f && ib[1] == 0x8b) || (ls >= 2 && lb[0] == 0x1f && lb[1] == 0x8b)) {
        which = is >= 2 && ib[0] == 0x1f ? images : labels;
        bad = "is gzip-compressed; unpack it first (gunzip -k FILE) and pass the unpacked file";
    } else if (is < 16 || acn__be32(ib) != 0x803) {
        bad = "is not an IDX image file (magic 0x00000803 and three sizes expected)";
    } else if (ls < 8 || acn__be32(lb) != 0x801) {
        which = labels;
        bad = "is not an IDX label file (magic 0x00000801 and a count expected)";
    }
    if (!bad) {
        n = acn__be32(ib + 4);
        rows = acn__be32(ib + 8);
        cols = acn__be32(ib + 12);
        if (!n || n > 2147483647u || !rows || !cols || rows > 4096 || cols > 4096 ||
            is - 16 != (size_t)n * rows * cols)
            bad = "has a size that does not match its header (truncated?)";
        else if (acn__be32(lb + 4) != n || ls - 8 != n) {
            which = labels;
            bad = "holds another number of labels than the image file has images, or is truncated";
        }
    }
    if (bad) {
        acn__fail(ctx, ACN_ERR_FORMAT, "%s %s", which, bad);
        ACN_FREE(ib);
        ACN_FREE(lb);
        return ctx->status;
    }
    ds->c = 1; ds->h = (int)rows; ds->w = (int)cols;
    ds->scale = 1.0f / 255.0f;
    if (acn__data_alloc(ctx, ds, (int)n, 1, "data_idx")) { ACN_FREE(ib); ACN_FREE(lb); return ctx->status; }
    memcpy(ds->u8, ib + 16, (size_t)n * rows * cols);
    for (i = 0; i < n; i++) {
        ds->labels[i] = lb[8 + i];
        if (ds->labels[i] + 1 > ds->classes) ds->classes = ds->labels[i] + 1;
    }
    ACN_FREE(ib);
    ACN_FREE(lb);
    return ACN_OK;
}

/* The next comma-separated number of line [*pos, end) as a double; -1 if
 * the field is empty or not a number, -2 if it is NaN, infinite or beyond
 * float's range (its text in tmp). */
static int acn__csv_field(const unsigned char *buf, size_t *pos, size_t end, double *v, char *tmp)
{
    char *stop;
    size_t a = *pos, len;
    while (*pos < end && buf[*pos] != ',') (*pos)++;
    len = *pos - a;
    while (len && (buf[a] == ' ' || buf[a] == '\t')) { a++; len--; }
    while (len && (buf[a + len - 1] == ' ' || buf[a + len - 1] == '\t' || buf[a + len - 1] == '\r')) len--;
    (*pos)++; /* past the comma (or the end of the line) */
    if (!len || len >= 64) return -1;
    memcpy(tmp, buf + a, len);
    tmp[len] = '\0';
    *v = strtod(tmp, &stop);
    if (*stop || stop == tmp) return -1;
    return *v >= -3.4028234663852886e38 && *v <= 3.4028234663852886e38 ? 0 : -2; /* FLT_MAX; NaN fails too */
}

ACNDEF acn_status acn_data_csv(acn_ctx *ctx, acn_dataset *ds, const char *path, float scale)
{
    unsigned char *buf;
    size_t size, pos, line;
    int pass, cols = -1, n = 0;
    if (!ctx) return ACN_ERR_ARG;
    if (!ds) { acn__fail(ctx, ACN_ERR_ARG, "data_csv: ds is NULL"); return ctx->status; }
    memset(ds, 0, sizeof *ds);
    if (ctx->status || acn__read_file(ctx, path, &buf, &size)) return ctx->status;
    /* pass 0 checks every line and counts them; pass 1 stores the values */
    for (pass = 0; pass < 2 && !ctx->status; pass++) {
        for (pos = 0, line = 1, n = 0; pos < size && !ctx->status; line++) {
            size_t end = pos;
            double v = 0.0;
            int k = 0, r;
            char text[64];
            while (end < size && buf[end] != '\n') end++;
            while (pos < end && (buf[pos] == ' ' || buf[pos] == '\t' || buf[pos] == '\r')) pos++;
            if (pos == end) { pos = end + 1; continue; }  /* an empty line */
            while (pos <= end && !ctx->status) {
                if ((r = acn__csv_field(buf, &pos, end, &v, text)) == -1)
                    acn__fail(ctx, ACN_ERR_FORMAT, "%s:%zu: column %d is not a number", path, line, k + 1);
                else if (r)
                    acn__fail(ctx, ACN_ERR_FORMAT, "%s:%zu: column %d is '%s'; values must be finite numbers within "
                              "float's range (a missing value? fill it in or drop the line)", path, line, k + 1, text);
                else if (pass && k < cols - 1)
                    ds->f32[(size_t)n * (cols - 1) + k] = (float)v;
                k++;
            }
            if (ctx->status) break;
            if (cols < 0) cols = k;
            if (k != cols || cols < 2)
                acn__fail(ctx, ACN_ERR_FORMAT, "%s:%zu: %d columns where the first line has %d; each line needs "
                          "the same values and then the label", path, line, k, cols);
            else if (!(v >= 0.0 && v <= 1e6) || v != (double)(int)v) /* the range first: then the cast is defined */
                acn__fail(ctx, ACN_ERR_FORMAT, "%s:%zu: the label (last column) %g is not a class number (an "
                          "integer in [0, 1000000])", path, line, v);
            else if (pass) {
                ds->labels[n] = (int)v;
                if ((int)v + 1 > ds->classes) ds->classes = (int)v + 1;
            }
            n++;
            pos = end + 1;
        }
        if (!pass && !ctx->status) {
            if (!n) { acn__fail(ctx, ACN_ERR_FORMAT, "%s: no data lines", path); break; }
            ds->c = cols - 1;
            ds->h = ds->w = 1;
            ds->scale = scale;
            if (acn__data_alloc(ctx, ds, n, 0, "data_csv")) break;
        }
    }
    ACN_FREE(buf);
    if (ctx->status) acn_data_free(ds);
    return ctx->status;
}
#endif /* ACN_NO_STDIO */




/* ---- checkpoints ---------------------------------------------------------- */
#ifndef ACN_NO_STDIO
ACNDEF acn_status acn_save_checkpoint(acn_ctx *ctx, const char *weights_path, const char *state_path,
                                      const acn_adamw *opt, const acn_sampler *smp, int64_t step,
                                      const char *const *kv, int n_meta)
{
    const char **meta;
    float *moments[2] = {NULL, NULL}; /* on a GPU context: their host copies */
    char num[32];
    acn_st_item it[8];
    int64_t ints[6];
    int n = 0, i;
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (n_meta < 0 || (n_meta && !kv) || !weights_path || !state_path) {
        acn__fail(ctx, ACN_ERR_ARG, "save_checkpoint: two paths are needed, and kv for n_meta pairs");
        return ctx->status;
    }
    snprintf(num, sizeof num, "%lld", (long long)step);
    /* the state first: a crash between the two writes leaves a pair whose
     * steps differ, which loading refuses, rather than a silent mix */
    memset(it, 0, sizeof it);
    ints[0] = step;
    ints[1] = (int64_t)ctx->rng.state;
    it[n].name = "step"; it[n].dtype = ACN_DT_I64; it[n].ndim = 1; it[n].shape[0] = 1; it[n++].data = &ints[0];
    it[n].name = "rng.state"; it[n].dtype = ACN_DT_I64; it[n].ndim = 1; it[n].shape[0] = 1; it[n++].data = &ints[1];
    if (opt) {
        ints[2] = opt->step;
        it[n].name = "adamw.step"; it[n].dtype = ACN_DT_I64; it[n].ndim = 1; it[n].shape[0] = 1; it[n++].data = &ints[2];
        it[n].name = "adamw.m"; it[n].dtype = ACN_DT_F32; it[n].ndim = 1; it[n].shape[0] = (int64_t)opt->n; it[n++].data = opt->m;
        it[n].name = "adamw.v"; it[n].dtype = ACN_DT_F32; it[n].ndim = 1; it[n].shape[0] = (int64_t)opt->n; it[n++].data = opt->v;
    }
    if (smp) {
        ints[3] = smp->epoch;
        ints[4] = smp->pos;
        ints[5] = (int64_t)smp->seed;
        it[n].name = "sampler.cursor"; it[n].dtype = ACN_DT_I64; it[n].ndim = 1; it[n].shape[0] = 3; it[n++].data = &ints[3];
    }
    meta = (const char **)ACN_MALLOC((size_t)(2 * n_meta + 2) * sizeof(char *));
    if (!meta) { acn__fail(ctx, ACN_ERR_NOMEM, "save_checkpoint: out of memory"); return ctx->status; }
    meta[0] = "step";
    meta[1] = num;
    for (i = 0; i < 2 * n_meta; i++) meta[2 + i] = kv[i];
    if (opt && ACN__GPU(ctx)) /* AdamW's moments come down first, into host copies */
        for (i = 0; i < n; i++)
            if (it[i].data == opt->m || it[i].data == opt->v) {
                it[i].data = acn__host_copy(ctx, (const float *)it[i].data, opt->n, "save_checkpoint");
                moments[moments[0] != NULL] = (float *)it[i].data;
            }
    if (!ctx->status && !acn_st_write_items(ctx, state_path, it, n, meta, 1))
        acn_save_params(ctx, weights_path, meta, n_meta + 1);
    ACN_FREE(moments[0]);
    ACN_FREE(moments[1]);
    ACN_FREE(meta);
    return ctx->status;
}

/* An entry's shape as "(2, 3)" into buf. */
static const char *acn__st_shape_str(const acn_st_entry *e, char *buf, size_t cap)
{
    long long dims[8] = {0};
    int d;
    for (d = 0; d < e->ndim && d < 8; d++) dims[d] = (long long)e->shape[d];
    return acn__dims_str(dims, d, buf, cap);
}
static const char *acn__dtype_name(int dtype)
{
    size_t k;
    for (k = 0; k < sizeof acn__dtypes / sizeof acn__dtypes[0]; k++)
        if (acn__dtypes[k].dtype == dtype) return acn__dtypes[k].name;
    return "a dtype acn.h does not convert";
}
/* State tensor `name` of st, which must be exactly dtype with shape (n):
 * copied into dst unless dst is NULL; else an error naming path. */
static acn_status acn__state_get(acn_ctx *ctx, const acn_st *st, const char *path, const char *name, int dtype,
                                 int64_t n, void *dst, const char *what)
{
    const acn_st_entry *e = acn_st_find(st, name);
    char sh[200];
    if (!e) {
        acn__fail(ctx, ACN_ERR_FORMAT, "load_checkpoint: %s has no '%s' (%s); was the checkpoint saved without it, "
                  "or is this not a state file?", path, name, what);
        return ctx->status;
    }
    if (e->dtype != dtype || e->ndim != 1 || e->shape[0] != n) {
        acn__fail(ctx, ACN_ERR_FORMAT, "load_checkpoint: %s: '%s' is %s %s where %s (%lld) is expected (%s); a "
                  "checkpoint of another model or data set, or a damaged file", path, name,
                  acn__dtype_name(e->dtype), acn__st_shape_str(e, sh, sizeof sh), acn__dtype_name(dtype),
                  (long long)n, what);
        return ctx->status;
    }
    if (dst) acn_st_get(ctx, st, name, dtype, dst, (size_t)n);
    return ctx->status;
}

/* Everything is checked before anything is changed: on an error the
 * parameters, opt, smp, the generator and *step are as they were. */
ACNDEF acn_status acn_load_checkpoint(acn_ctx *ctx, const char *weights_path, const char *state_path,
                                      acn_adamw *opt, acn_sampler *smp, int64_t *step)
{
    acn_st st, w;
    const char *ws, *ss;
    char num[32];
    int64_t s0 = 0, rng = 0, ostep = 0, cur[3] = {0, 0, 0};
    if (!ctx) return ACN_ERR_ARG;
    if (ctx->status) return ctx->status;
    if (acn_st_read(ctx, weights_path, &w)) return ctx->status;
    if (acn_st_read(ctx, state_path, &st)) { acn_st_free(&w); return ctx->status; }
    ws = acn_st_meta(&w, "step");
    ss = acn_st_meta(&st, "step");
    if (!ws || !ss || strcmp(ws, ss)) {
        acn__fail(ctx, ACN_ERR_FORMAT, "load_checkpoint: %s (step %s) and %s (step %s) are not a pair; resume from "
                  "two files saved together", weights_path, ws ? ws : "?", state_path, ss ? ss : "?");
    } else if (!acn__state_get(ctx, &st, state_path, "step", ACN_DT_I64, 1, &s0, "the step") &&
               !acn__state_get(ctx, &st, state_path, "rng.state", ACN_DT_I64, 1, &rng, "the generator") &&
               (!opt || (!acn__state_get(ctx, &st, state_path, "adamw.step", ACN_DT_I64, 1, &ostep, "AdamW's step") &&
                         !acn__state_get(ctx, &st, state_path, "adamw.m", ACN_DT_F32, (int64_t)opt->n, NULL,
                                         "AdamW's first moments, one per parameter float") &&
                         !acn__state_get(ctx, &st, state_path, "adamw.v", ACN_DT_F32, (int64_t)opt->n, NULL,
                                         "AdamW's second moments, one per parameter float"))) &&
               (!smp || !acn__state_get(ctx, &st, state_path, "sampler.cursor", ACN_DT_I64, 3, cur,
                                        "the sampler's epoch, position and seed"))) {
        snprintf(num, sizeof num, "%lld", (long long)s0);
        if (s0 < 0 || strcmp(num, ss))
            acn__fail(ctx, ACN_ERR_FORMAT, "load_checkpoint: %s: the step tensor holds %lld but the metadata says "
                      "step %s%s (a damaged or edited file)", state_path, (long long)s0, ss,
                      s0 < 0 ? ", and a step is never negative" : "");
        else if (opt && ostep < 0)
            acn__fail(ctx, ACN_ERR_FORMAT, "load_checkpoint: %s: AdamW's step is %lld; steps taken are never "
                      "negative (a damaged or edited file)", state_path, (long long)ostep);
        else if (smp && (uint64_t)cur[2] != smp->seed)
            acn__fail(ctx, ACN_ERR_FORMAT, "load_checkpoint: the sampler was seeded with %llu, the checkpoint with "
                      "%llu", (unsigned long long)smp->seed, (unsigned long long)cur[2]);
        else if (smp && (cur[0] < 0 || cur[0] > 2147483647))
            acn__fail(ctx, ACN_ERR_FORMAT, "load_checkpoint: %s: the sampler's epoch %lld is outside [0, 2147483647] "
                      "(a damaged or edited file)", state_path, (long long)cur[0]);
        else if (smp && (cur[1] < 0 || cur[1] > smp->n))
            acn__fail(ctx, ACN_ERR_FORMAT, "load_checkpoint: %s: the sampler's position %lld is outside [0, %d], "
                      "the examples of this data set (a checkpoint of another data set, or a damaged file)",
                      state_path, (long long)cur[1], smp->n);
        else if (!acn__params_take(ctx, &w, weights_path)) { /* the last check; then nothing can fail */
            if (opt) {
                acn__st_get_to(ctx, &st, "adamw.m", opt->m, opt->n);
                acn__st_get_to(ctx, &st, "adamw.v", opt->v, opt->n);
                opt->step = ostep;
            }
            ctx->rng.state = (uint64_t)rng;
            if (smp) acn_sampler_seek(smp, cur[0], cur[1]);
            if (step) *step = s0;
        }
    }
    acn_st_free(&w);
    acn_st_free(&st);
    return ctx->status;
}
#endif

/* ---- augmentation --------------------------------------------------------- */
ACNDEF void acn_aug_crop(acn_rng *r, float *x, int b, int c, int h, int w, int pad)
{
    int i, k, row;
    for (i = 0; i < b; i++) {
        int dy = (int)(acn_rng_u64(r) % (uint64_t)(2 * pad + 1)) - pad;
        int dx = (int)(acn_rng_u64(r) % (uint64_t)(2 * pad + 1)) - pad;
        for (k = 0; k < c; k++) {
            float *img = x + ((size_t)i * c + k) * h * w;
            /* out[y][x] = in[y + dy][x + dx], 0 outside: rows in the order
             * that reads each source row before it is overwritten */
            for (row = 0; row < h; row++) {
                int y = dy > 0 ? row : h - 1 - row, sy = y + dy;
                float *dst = img + (size_t)y * w;
                if (sy < 0 || sy >= h || dx >= w || dx <= -w) {
                    memset(dst, 0, (size_t)w * sizeof(float));
                } else if (dx >= 0) {
                    memmove(dst, img + (size_t)sy * w + dx, (size_t)(w - dx) * sizeof(float));
                    memset(dst + w - dx, 0, (size_t)dx * sizeof(float));
                } else {
                    memmove(dst - dx, img + (size_t)sy * w, (size_t)(w + dx) * sizeof(float));
                    memset(dst, 0, (size_t)(-dx) * sizeof(float));
                }
            }
        }
    }
}

ACNDEF void acn_aug_flip(acn_rng *r, float *x, int b, int c, int h, int w)
{
    int i, k, row, j;
    for (i = 0; i < b; i++) {
        if (acn_rng_uniform(r) >= 0.5f) continue;
        for (k = 0; k < c; k++)
            for (row = 0; row < h; row++) {
                float *p = x + (((size_t)i * c + k) * h + row) * w;
                for (j = 0; j < w / 2; j++) {
                    float t = p[j];
                    p[j] = p[w - 1 - j];
                    p[w - 1 - j] = t;
                }
            }
    }
}

ACNDEF void acn_aug_normalize(float *x, int b, int c, int h, int w, const float *mean, const float *std)
{
    size_t hw = (size_t)h * w, j;
    int i, k;
    for (i = 0; i < b; i++)
        for (k = 0; k < c; k++) {
            float *p = x + ((size_t)i * c + k) * hw, m = mean[k], inv = 1.0f / std[k];
            for (j = 0; j < hw; j++) p[j] = (p[j] - m) * inv;
        }
}

ACNDEF void acn_aug_gaussian(acn_rng *r, float *x, size_t n, float sigma)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] += sigma * acn_rng_normal(r);
}

ACNDEF void acn_aug_salt_pepper(acn_rng *r, float *x, int b, int c, int h, int w, float p, float lo, float hi)
{
    size_t hw = (size_t)h * w, j;
    int i, k;
    for (i = 0; i < b; i++)
        for (j = 0; j < hw; j++) {
            float u = acn_rng_uniform(r);
            if (u >= p) continue;
            for (k = 0; k < c; k++) x[((size_t)i * c + k) * hw + j] = u < 0.5f * p ? hi : lo;
        }
}

/* Gamma(a, 1), Marsaglia and Tsang (2000); a < 1 through Gamma(a + 1) U^(1/a). */
static double acn__gamma(acn_rng *r, double a)
{
    double d, c, x, v, u;
    if (a < 1.0) {
        double g = acn__gamma(r, a + 1.0);
        return g * pow(((double)(acn_rng_u64(r) >> 11) + 1.0) / 9007199254740993.0, 1.0 / a);
    }
    d = a - 1.0 / 3.0;
    c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        do {
            x = acn_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        u = ((double)(acn_rng_u64(r) >> 11) + 1.0) / 9007199254740993.0;
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}
ACNDEF float acn_rng_beta(acn_rng *r, float a, float b)
{
    double x = acn__gamma(r, a), y = acn__gamma(r, b);
    return (float)(x / (x + y));
}

ACNDEF float acn_aug_cutmix(acn_rng *r, float *x, const int *y, int b, int c, int h, int w, int classes, float p,
                            float beta, float *targets, int *box)
{
    float lam = 1.0f;
    int i, k, row, y0 = 0, y1 = 0, x0 = 0, x1 = 0;
    if (p > 0.0f && acn_rng_uniform(r) < p) {
        float cut = sqrtf(1.0f - acn_rng_beta(r, beta, beta));
        int ch = (int)((float)h * cut), cw = (int)((float)w * cut);
        int cy = (int)(acn_rng_u64(r) % (uint64_t)h), cx = (int)(acn_rng_u64(r) % (uint64_t)w);
        y0 = cy - ch / 2 < 0 ? 0 : cy - ch / 2;
        y1 = cy + ch / 2 > h ? h : cy + ch / 2;
        x0 = cx - cw / 2 < 0 ? 0 : cx - cw / 2;
        x1 = cx + cw / 2 > w ? w : cx + cw / 2;
        lam = 1.0f - (float)((y1 - y0) * (x1 - x0)) / (float)(h * w);
        for (i = 0; i < b / 2; i++) /* swap the box between image i and image b-1-i */
            for (k = 0; k < c; k++)
                for (row = y0; row < y1; row++) {
                    float *pa = x + (((size_t)i * c + k) * h + row) * w, *pb = x + (((size_t)(b - 1 - i) * c + k) * h + row) * w;
                    int col;
                    for (col = x0; col < x1; col++) {
                        float t = pa[col];
                        pa[col] = pb[col];
                        pb[col] = t;
                    }
                }
    }
    if (targets)
        for (i = 0; i < b; i++) {
            float *t = targets + (size_t)i * classes;
            for (k = 0; k < classes; k++) t[k] = 0.0f;
            t[y[i]] += lam;
            t[y[b - 1 - i]] += 1.0f - lam;
        }
    if (box) { box[0] = y0; box[1] = x0; box[2] = y1; box[3] = x1; }
    return lam;
}

/* ---- AutoAugment ---------------------------------------------------------- */
/* The operations work on a byte image img (c, h, w), channel planes of h w,
 * following PIL's arithmetic, which torchvision calls for PIL images:
 * sampling at pixel centres with truncation, blends truncated, lookup tables
 * per channel. */

/* Nearest-neighbour affine warp: output pixel (x, y) takes the input pixel
 * under (a0 (x+.5) + a1 (y+.5) + a2, a3 (x+.5) + a4 (y+.5) + a5), black when
 * outside (PIL's ImagingTransformAffine with NEAREST). */
static void acn__aa_affine(unsigned char *img, int c, int h, int w, unsigned char *tmp, const double *a)
{
    size_t hw = (size_t)h * w;
    int k, y, x;
    memcpy(tmp, img, (size_t)c * hw);
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            double fx = a[0] * (x + 0.5) + a[1] * (y + 0.5) + a[2];
            double fy = a[3] * (x + 0.5) + a[4] * (y + 0.5) + a[5];
            int xi = fx < 0.0 ? -1 : (int)fx, yi = fy < 0.0 ? -1 : (int)fy;
            int in = xi >= 0 && xi < w && yi >= 0 && yi < h;
            for (k = 0; k < c; k++)
                img[k * hw + (size_t)y * w + x] = in ? tmp[k * hw + (size_t)yi * w + xi] : 0;
        }
}

/* PIL's Image.blend(degenerate, img, factor), truncating (ImagingBlend). */
static unsigned char acn__aa_blend(unsigned char d, unsigned char v, float factor)
{
    float t = (float)d + factor * (float)((int)v - (int)d);
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (unsigned char)t;
}

/* PIL's RGB -> L: (19595 R + 38470 G + 7471 B + 2^15) >> 16. */
static unsigned char acn__aa_gray(const unsigned char *img, int c, size_t hw, size_t j)
{
    if (c < 3) return img[j];
    return (unsigned char)((img[j] * 19595u + img[hw + j] * 38470u + img[2 * hw + j] * 7471u + 0x8000u) >> 16);
}

/* Apply a lookup table (c, 256) to each channel. */
static void acn__aa_lut(unsigned char *img, int c, size_t hw, const unsigned char *lut)
{
    size_t j;
    int k;
    for (k = 0; k < c; k++)
        for (j = 0; j < hw; j++) img[k * hw + j] = lut[k * 256 + img[k * hw + j]];
}

ACNDEF void acn_aa_apply(int op, double m, unsigned char *img, int c, int h, int w, unsigned char *tmp)
{
    size_t hw = (size_t)h * w, j;
    int k, i;
    unsigned char lut[3 * 256];
    float f = (float)(1.0 + m); /* blend factor of the four enhancers */
    if (c > 3) c = 3;
    switch (op) {
    case ACN_AA_SHEAR_X: /* torchvision: affine shear (atan m) about (0, 0) */
    case ACN_AA_SHEAR_Y: {
        double t = tan(atan(m)), a[6] = {1, 0, 0, 0, 1, 0};
        if (op == ACN_AA_SHEAR_X) a[1] = t;
        else a[3] = t;
        acn__aa_affine(img, c, h, w, tmp, a);
    } break;
    case ACN_AA_TRANSLATE_X: /* affine translate [int(m), 0] */
    case ACN_AA_TRANSLATE_Y: {
        double a[6] = {1, 0, 0, 0, 1, 0};
        if (op == ACN_AA_TRANSLATE_X) a[2] = -(double)(int)m;
        else a[5] = -(double)(int)m;
        acn__aa_affine(img, c, h, w, tmp, a);
    } break;
    case ACN_AA_ROTATE: { /* PIL rotate(m) about (w/2, h/2), inverse map */
        double th = -m * 3.14159265358979323846 / 180.0, cs = cos(th), sn = sin(th);
        double cx = w / 2.0, cy = h / 2.0, a[6];
        if (fmod(m, 360.0) == 0.0) return;
        a[0] = cs; a[1] = sn; a[3] = -sn; a[4] = cs;
        a[2] = cs * -cx + sn * -cy + cx;
        a[5] = -sn * -cx + cs * -cy + cy;
        acn__aa_affine(img, c, h, w, tmp, a);
    } break;
    case ACN_AA_BRIGHTNESS: /* blend with black */
        for (j = 0; j < (size_t)c * hw; j++) img[j] = acn__aa_blend(0, img[j], f);
        break;
    case ACN_AA_COLOR: /* blend with the grey image */
        if (c < 3) return;
        for (j = 0; j < hw; j++) {
            unsigned char g = acn__aa_gray(img, c, hw, j);
            for (k = 0; k < c; k++) img[k * hw + j] = acn__aa_blend(g, img[k * hw + j], f);
        }
        break;
    case ACN_AA_CONTRAST: { /* blend with the mean grey level, rounded */
        double sum = 0.0;
        unsigned char g;
        for (j = 0; j < hw; j++) sum += acn__aa_gray(img, c, hw, j);
        g = (unsigned char)(int)(sum / (double)hw + 0.5);
        for (j = 0; j < (size_t)c * hw; j++) img[j] = acn__aa_blend(g, img[j], f);
    } break;
    case ACN_AA_SHARPNESS: { /* blend with PIL's SMOOTH filter (1 1 1; 1 5 1; 1 1 1) / 13, border kept */
        int y, x;
        memcpy(tmp, img, (size_t)c * hw);
        for (k = 0; k < c; k++)
            for (y = 1; y < h - 1; y++)
                for (x = 1; x < w - 1; x++) {
                    const unsigned char *p = tmp + k * hw + (size_t)y * w + x;
                    float s = (float)(p[-w - 1] + p[-w] + p[-w + 1] + p[-1] + p[1] + p[w - 1] + p[w] + p[w + 1]) / 13.0f +
                              (float)p[0] * (5.0f / 13.0f);
                    unsigned char d = s <= 0.0f ? 0 : s >= 255.0f ? 255 : (unsigned char)(s + 0.5f);
                    img[k * hw + (size_t)y * w + x] = acn__aa_blend(d, p[0], f);
                }
    } break;
    case ACN_AA_POSTERIZE: { /* keep the top int(m) bits */
        int bits = (int)m;
        unsigned char mask = (unsigned char)(bits >= 8 ? 0xFF : bits <= 0 ? 0 : ~((1u << (8 - bits)) - 1u));
        for (j = 0; j < (size_t)c * hw; j++) img[j] &= mask;
    } break;
    case ACN_AA_SOLARIZE: /* invert values >= m */
        for (j = 0; j < (size_t)c * hw; j++)
            if ((double)img[j] >= m) img[j] = (unsigned char)(255 - img[j]);
        break;
    case ACN_AA_INVERT:
        for (j = 0; j < (size_t)c * hw; j++) img[j] = (unsigned char)(255 - img[j]);
        break;
    case ACN_AA_AUTOCONTRAST: /* stretch each channel's [min, max] to [0, 255] */
        for (k = 0; k < c; k++) {
            int lo = 255, hi = 0;
            for (j = 0; j < hw; j++) {
                int v = img[k * hw + j];
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            for (i = 0; i < 256; i++) {
                int v = i;
                if (hi > lo) {
                    double scale = 255.0 / (hi - lo);
                    v = (int)(i * scale + -lo * scale);
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                }
                lut[k * 256 + i] = (unsigned char)v;
            }
        }
        acn__aa_lut(img, c, hw, lut);
        break;
    case ACN_AA_EQUALIZE: /* PIL's ImageOps.equalize, per channel */
        for (k = 0; k < c; k++) {
            size_t hist[256] = {0}, total = 0, last = 0, step, n;
            for (j = 0; j < hw; j++) hist[img[k * hw + j]]++;
            for (i = 0; i < 256; i++)
                if (hist[i]) { total += hist[i]; last = hist[i]; }
            step = (total - last) / 255;
            n = step / 2;
            for (i = 0; i < 256; i++) {
                size_t v = step ? n / step : (size_t)i;
                lut[k * 256 + i] = (unsigned char)(v > 255 ? 255 : v);
                n += hist[i];
            }
        }
        acn__aa_lut(img, c, hw, lut);
        break;
    default: break;
    }
}

static const char *const acn__aa_names[ACN_AA_COUNT] = {
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
    "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert"};
ACNDEF const char *acn_aa_name(int op) { return op >= 0 && op < ACN_AA_COUNT ? acn__aa_names[op] : "?"; }

/* torchvision's _augmentation_space(10, (h, w)): bin i of 10 is i/9 of the
 * largest magnitude; posterize 8 - round(i / 2.25); solarize 255 (1 - i/9). */
/* torch.linspace(lo, hi, 10)[bin] in float32, computed as torch does it:
 * from the nearer end. */
static double acn__aa_linspace(float lo, float hi, int bin)
{
    float step = (hi - lo) / 9.0f;
    return (double)(bin < 5 ? lo + step * (float)bin : hi - step * (float)(9 - bin));
}
ACNDEF double acn_aa_magnitude(int op, int bin, int h, int w, int *is_signed)
{
    int sgn = op <= ACN_AA_SHARPNESS;
    if (is_signed) *is_signed = sgn;
    if (bin < 0 || bin > 9) return 0.0;
    switch (op) {
    case ACN_AA_SHEAR_X: case ACN_AA_SHEAR_Y: return acn__aa_linspace(0.0f, 0.3f, bin);
    case ACN_AA_TRANSLATE_X: return acn__aa_linspace(0.0f, 150.0f / 331.0f * (float)w, bin);
    case ACN_AA_TRANSLATE_Y: return acn__aa_linspace(0.0f, 150.0f / 331.0f * (float)h, bin);
    case ACN_AA_ROTATE: return acn__aa_linspace(0.0f, 30.0f, bin);
    case ACN_AA_BRIGHTNESS: case ACN_AA_COLOR: case ACN_AA_CONTRAST: case ACN_AA_SHARPNESS:
        return acn__aa_linspace(0.0f, 0.9f, bin);
    case ACN_AA_POSTERIZE: return (double)(8 - (int)nearbyint((double)bin / 2.25));
    case ACN_AA_SOLARIZE: return acn__aa_linspace(255.0f, 0.0f, bin);
    default: return 0.0;
    }
}

/* The CIFAR-10 policy: 25 sub-policies of two (operation, probability,
 * magnitude bin) steps; bin -1 where the operation takes no magnitude. */
static const struct { signed char op; float p; signed char bin; } acn__aa_cifar10[25][2] = {
    {{ACN_AA_INVERT, 0.1f, -1}, {ACN_AA_CONTRAST, 0.2f, 6}},
    {{ACN_AA_ROTATE, 0.7f, 2}, {ACN_AA_TRANSLATE_X, 0.3f, 9}},
    {{ACN_AA_SHARPNESS, 0.8f, 1}, {ACN_AA_SHARPNESS, 0.9f, 3}},
    {{ACN_AA_SHEAR_Y, 0.5f, 8}, {ACN_AA_TRANSLATE_Y, 0.7f, 9}},
    {{ACN_AA_AUTOCONTRAST, 0.5f, -1}, {ACN_AA_EQUALIZE, 0.9f, -1}},
    {{ACN_AA_SHEAR_Y, 0.2f, 7}, {ACN_AA_POSTERIZE, 0.3f, 7}},
    {{ACN_AA_COLOR, 0.4f, 3}, {ACN_AA_BRIGHTNESS, 0.6f, 7}},
    {{ACN_AA_SHARPNESS, 0.3f, 9}, {ACN_AA_BRIGHTNESS, 0.7f, 9}},
    {{ACN_AA_EQUALIZE, 0.6f, -1}, {ACN_AA_EQUALIZE, 0.5f, -1}},
    {{ACN_AA_CONTRAST, 0.6f, 7}, {ACN_AA_SHARPNESS, 0.6f, 5}},
    {{ACN_AA_COLOR, 0.7f, 7}, {ACN_AA_TRANSLATE_X, 0.5f, 8}},
    {{ACN_AA_EQUALIZE, 0.3f, -1}, {ACN_AA_AUTOCONTRAST, 0.4f, -1}},
    {{ACN_AA_TRANSLATE_Y, 0.4f, 3}, {ACN_AA_SHARPNESS, 0.2f, 6}},
    {{ACN_AA_BRIGHTNESS, 0.9f, 6}, {ACN_AA_COLOR, 0.2f, 8}},
    {{ACN_AA_SOLARIZE, 0.5f, 2}, {ACN_AA_INVERT, 0.0f, -1}},
    {{ACN_AA_EQUALIZE, 0.2f, -1}, {ACN_AA_AUTOCONTRAST, 0.6f, -1}},
    {{ACN_AA_EQUALIZE, 0.2f, -1}, {ACN_AA_EQUALIZE, 0.6f, -1}},
    {{ACN_AA_COLOR, 0.9f, 9}, {ACN_AA_EQUALIZE, 0.6f, -1}},
    {{ACN_AA_AUTOCONTRAST, 0.8f, -1}, {ACN_AA_SOLARIZE, 0.2f, 8}},
    {{ACN_AA_BRIGHTNESS, 0.1f, 3}, {ACN_AA_COLOR, 0.7f, 0}},
    {{ACN_AA_SOLARIZE, 0.4f, 5}, {ACN_AA_AUTOCONTRAST, 0.9f, -1}},
    {{ACN_AA_TRANSLATE_Y, 0.9f, 9}, {ACN_AA_TRANSLATE_Y, 0.7f, 9}},
    {{ACN_AA_AUTOCONTRAST, 0.9f, -1}, {ACN_AA_SOLARIZE, 0.8f, 3}},
    {{ACN_AA_EQUALIZE, 0.8f, -1}, {ACN_AA_INVERT, 0.1f, -1}},
    {{ACN_AA_TRANSLATE_Y, 0.7f, 9}, {ACN_AA_AUTOCONTRAST, 0.9f, -1}},
};

ACNDEF int acn_aa_cifar10_step(int sub, int step, int *op, float *p, int *bin)
{
    if (sub < 0 || sub >= 25 || step < 0 || step > 1) return 0;
    if (op) *op = acn__aa_cifar10[sub][step].op;
    if (p) *p = acn__aa_cifar10[sub][step].p;
    if (bin) *bin = acn__aa_cifar10[sub][step].bin;
    return 1;
}

ACNDEF void acn_aug_autoaugment(acn_rng *r, float *x, int b, int c, int h, int w, unsigned char *scratch)
{
    size_t n = (size_t)c * h * w, j;
    unsigned char *img = scratch, *tmp = scratch + n;
    int i, s;
    for (i = 0; i < b; i++) {
        float *p = x + (size_t)i * n;
        /* torchvision's draws: the sub-policy, two probabilities, two signs */
        int pol = (int)(acn_rng_u64(r) % 25u);
        float u[2];
        int sign[2];
        u[0] = acn_rng_uniform(r);
        u[1] = acn_rng_uniform(r);
        sign[0] = (int)(acn_rng_u64(r) & 1u);
        sign[1] = (int)(acn_rng_u64(r) & 1u);
        for (j = 0; j < n; j++) {
            float v = p[j] * 255.0f + 0.5f;
            img[j] = (unsigned char)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)v);
        }
        for (s = 0; s < 2; s++) {
            int op = acn__aa_cifar10[pol][s].op, bin = acn__aa_cifar10[pol][s].bin, sg = 0;
            double m;
            if (!(u[s] <= acn__aa_cifar10[pol][s].p)) continue;
            m = bin < 0 ? 0.0 : acn_aa_magnitude(op, bin, h, w, &sg);
            if (sg && !sign[s]) m = -m;
            acn_aa_apply(op, m, img, c, h, w, tmp);
        }
        for (j = 0; j < n; j++) p[j] = (float)img[j] / 255.0f;
    }
}

/* ---- recipes -------------------------------------------------------------- */
ACNDEF acn_status acn_recipe_get(const char *name, acn_recipe *o)
{
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, sd[3] = {0.2470f, 0.2435f, 0.2616f};
    memset(o, 0, sizeof *o);
    memcpy(o->mean, mean, sizeof mean);
    memcpy(o->std, sd, sizeof sd);
    o->normalize = 1;
    o->cutmix_beta = 1.0f;
    o->pad = 4;
    if (!name) return ACN_ERR_ARG;
    if (!strcmp(name, "paper")) {
        o->crops = 2;
        o->autoaugment = 1;
        o->cutmix_p = 0.5f;
        o->smoothing = 0.1f;
    } else if (!strcmp(name, "simple")) {
        o->crops = 1;
        o->flip = 1;
        o->smoothing = 0.1f;
    } else if (strcmp(name, "none")) return ACN_ERR_ARG;
    return ACN_OK;
}

ACNDEF float acn_recipe_apply(const acn_recipe *rc, acn_rng *r, float *x, const int *y, int b, int c, int h,
                              int w, int classes, float *targets, unsigned char *scratch)
{
    float lam;
    int i, k;
    if (c < 1 || c > 3) return -1.0f;
    for (i = 0; i < rc->crops; i++) acn_aug_crop(r, x, b, c, h, w, rc->pad);
    if (rc->flip) acn_aug_flip(r, x, b, c, h, w);
    if (rc->autoaugment) acn_aug_autoaugment(r, x, b, c, h, w, scratch);
    if (rc->normalize) acn_aug_normalize(x, b, c, h, w, rc->mean, rc->std);
    lam = acn_aug_cutmix(r, x, y, b, c, h, w, classes, rc->cutmix_p, rc->cutmix_beta, targets, NULL);
    if (targets && rc->smoothing > 0.0f)
        for (i = 0; i < b * classes; i += classes)
            for (k = 0; k < classes; k++)
                targets[i + k] = (1.0f - rc->smoothing) * targets[i + k] + rc->smoothing / (float)classes;
    return lam;
}

/* ---- text ---------------------------------------------------------------- */
/* Byte order of two words of given lengths (a prefix first). */
static int acn__wordcmp(const char *a, int la, const char *b, int lb)
{
    int c = memcmp(a, b, (size_t)(la < lb ? la : lb));
    return c ? c : la - lb;
}

ACNDEF int acn_vocab_find(const acn_vocab *v, const char *word, size_t len)
{
    int lo = 0, hi = v->size - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, id = v->sorted[mid];
        int c = acn__wordcmp(v->words[id], (int)strlen(v->words[id]), word, (int)len);
        if (!c) return id;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}
ACNDEF void acn_vocab_free(acn_vocab *v)
{
    if (!v) return;
    ACN_FREE(v->words);
    ACN_FREE(v->sorted);
    ACN_FREE(v->pool);
    memset(v, 0, sizeof *v);
}
ACNDEF void acn_text_free(acn_textset *ts)
{
    if (!ts) return;
    ACN_FREE(ts->labels);
    ACN_FREE(ts->start);
    ACN_FREE(ts->ids);
    memset(ts, 0, sizeof *ts);
}
ACNDEF void acn_text_batch(const acn_textset *ts, const int *idx, int b, int T, int *tokens, int *mask, int *labels)
{
    int i, t;
    for (i = 0; i < b; i++) {
        size_t s0 = ts->start[idx[i]], len = ts->start[idx[i] + 1] - s0;
        for (t = 0; t < T; t++) {
            int tok = t == 0 ? ACN_TOK_CLS : (size_t)(t - 1) < len ? ts->ids[s0 + (size_t)t - 1] : ACN_TOK_PAD;
            tokens[i * T + t] = tok;
            if (mask) mask[i * T + t] = tok != ACN_TOK_PAD;
        }
        if (labels) labels[i] = ts->labels[idx[i]];
    }
}

#ifndef ACN_NO_STDIO
typedef struct acn__word { const char *p; int len, count; } acn__word; /* count: or an id */
static int acn__word_by_text(const void *x, const void *y)
{
    const acn__word *a = (const acn__word *)x, *b = (const acn__word *)y;
    return acn__wordcmp(a->p, a->len, b->p, b->len);
}
static int acn__word_by_count(const void *x, const void *y)
{
    const acn__word *a = (const acn__word *)x, *b = (const acn__word *)y;
    return a->count != b->count ? (a->count > b->count ? -1 : 1) : acn__wordcmp(a->p, a->len, b->p, b->len);
}

static const char *const acn__special[ACN_TOK_SPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
/* Whether a word (len bytes) spells one of the special tokens. */
static int acn__is_special(const char *p, size_t len)
{
    int k;
    for (k = 0; k < ACN_TOK_SPECIAL; k++)
        if (strlen(acn__special[k]) == len && !memcmp(acn__special[k], p, len)) return 1;
    return 0;
}

/* The vocabulary of the words in w[0..n) (sorted by text) seen min_count times. */
static acn_status acn__make_vocab(acn_ctx *ctx, acn__word *w, size_t n, int min_count, acn_vocab *v)
{
    const char *const *special = acn__special;
    size_t i, u = 0, bytes = 0;
    int k;
    /* runs of equal words -> one entry each, with its count */
    for (i = 0; i < n; i++) {
        if (u && !acn__wordcmp(w[u - 1].p, w[u - 1].len, w[i].p, w[i].len)) { w[u - 1].count++; continue; }
        w[u] = w[i];
        w[u++].count = 1;
    }
    for (i = 0, n = 0; i < u; i++)
        if (w[i].count >= min_count) { w[n++] = w[i]; bytes += (size_t)w[i].len + 1; }
    if (n) qsort(w, n, sizeof *w, acn__word_by_count); /* (w is NULL when there are no words) */
    memset(v, 0, sizeof *v);
    v->size = (int)n + ACN_TOK_SPECIAL;
    v->words = (char **)ACN_MALLOC((size_t)v->size * sizeof(char *));
    v->sorted = (int *)ACN_MALLOC((size_t)v->size * sizeof(int));
    v->pool = (char *)ACN_MALLOC(bytes + 64);
    if (!v->words || !v->sorted || !v->pool) {
        acn_vocab_free(v);
        acn__fail(ctx, ACN_ERR_NOMEM, "text_tsv: out of memory for the vocabulary");
        return ctx->status;
    }
    for (k = 0, bytes = 0; k < v->size; k++) {
        const char *src = k < ACN_TOK_SPECIAL ? special[k] : w[k - ACN_TOK_SPECIAL].p;
        size_t len = k < ACN_TOK_SPECIAL ? strlen(src) : (size_t)w[k - ACN_TOK_SPECIAL].len;
        v->words[k] = v->pool + bytes;
        memcpy(v->pool + bytes, src, len);
        v->pool[bytes + len] = '\0';
        bytes += len + 1;
    }
    /* the lookup order: (word, id) pairs sorted by word, reusing w */
    {
        acn__word *pairs = (acn__word *)ACN_MALLOC((size_t)v->size * sizeof *pairs);
        if (!pairs) {
            acn_vocab_free(v);
            acn__fail(ctx, ACN_ERR_NOMEM, "text_tsv: out of memory for the vocabulary");
            return ctx->status;
        }
        for (k = 0; k < v->size; k++) {
            pairs[k].p = v->words[k];
            pairs[k].len = (int)strlen(v->words[k]);
            pairs[k].count = k;
        }
        qsort(pairs, (size_t)v->size, sizeof *pairs, acn__word_by_text);
        for (k = 0; k < v->size; k++) v->sorted[k] = pairs[k].count;
        ACN_FREE(pairs);
    }
    return ACN_OK;
}

ACNDEF acn_status acn_text_tsv(acn_ctx *ctx, acn_textset *ts, const char *path, acn_vocab *vocab, int build,
                               int min_count)
{
    unsigned char *buf;
    size_t size, pos, line, nw = 0, cap = 0, w;
    acn__word *words = NULL;
    int pass, n, text_first;
    if (!ctx) return ACN_ERR_ARG;
    if (!ts || !vocab) { acn__fail(ctx, ACN_ERR_ARG, "text_tsv: ts and vocab are needed"); return ctx->status; }
    memset(ts, 0, sizeof *ts);
    if (build) memset(vocab, 0, sizeof *vocab);
    if (ctx->status || acn__read_file(ctx, path, &buf, &size)) return ctx->status;
    /* the header names the column order: "label<TAB>sentence", or GLUE's own
     * "sentence<TAB>label" */
    text_first = size >= 9 && !memcmp(buf, "sentence\t", 9);
    /* pass 0 checks the lines and gathers the words; pass 1 stores ids */
    for (pass = 0; pass < 2 && !ctx->status; pass++) {
        for (pos = 0, line = 1, n = 0, w = 0; pos < size && !ctx->status; line++) {
            size_t end = pos, tab, p, t0, t1, l0, l1; /* text [t0, t1), label [l0, l1) */
            long label;
            char *stop, num[16];
            while (end < size && buf[end] != '\n') end++;
            if (line == 1 || end == pos || (end == pos + 1 && buf[pos] == '\r')) { pos = end + 1; continue; }
            if (memchr(buf + pos, 0, end - pos)) {
                acn__fail(ctx, ACN_ERR_FORMAT, "%s:%zu: a NUL byte in the line; is this a text file?", path, line);
                break;
            }
            for (tab = pos; tab < end && buf[tab] != '\t'; tab++) {}
            if (text_first) { t0 = pos; t1 = tab; l0 = tab + 1; l1 = end; }
            else { l0 = pos; l1 = tab; t0 = tab + 1; t1 = end; }
            while (l1 > l0 && (buf[l1 - 1] == '\r' || buf[l1 - 1] == ' ')) l1--;
            if (tab == end || l1 <= l0 || l1 - l0 >= sizeof num) {
                acn__fail(ctx, ACN_ERR_FORMAT, "%s:%zu: expected \"%s\"", path, line,
                          text_first ? "text<TAB>label" : "label<TAB>text");
                break;
            }
            memcpy(num, buf + l0, l1 - l0);
            num[l1 - l0] = '\0';
            label = strtol(num, &stop, 10);
            if (*stop || stop == num) {
                acn__fail(ctx, ACN_ERR_FORMAT, "%s:%zu: the label '%s' is not a class number", path, line, num);
                break;
            }
            if (label != 0 && label != 1) {
                acn__fail(ctx, ACN_ERR_FORMAT, "%s:%zu: the label %s is not 0 or 1; the file must have two classes, "
                          "as SST-2 has (0 negative, 1 positive)", path, line, num);
                break;
            }
            if (pass) {
                ts->labels[n] = (int)label;
                ts->start[n] = w;
            }
            for (p = t0; p < t1;) { /* the words */
                size_t a;
                while (p < t1 && (buf[p] == ' ' || buf[p] == '\r')) p++;
                for (a = p; p < t1 && buf[p] != ' ' && buf[p] != '\r'; p++) {}
                if (p == a) continue;
                if (!pass) {
                    if (nw == cap) {
                        size_t ncap = cap ? 2 * cap : 4096;
                        acn__word *nwds = (acn__word *)ACN_MALLOC(ncap * sizeof *nwds);
                        if (!nwds) { acn__fail(ctx, ACN_ERR_NOMEM, "text_tsv: out of memory"); break; }
                        if (words) memcpy(nwds, words, nw * sizeof *nwds);
                        ACN_FREE(words);
                        words = nwds;
                        cap = ncap;
                    }
                    if (!acn__is_special((const char *)buf + a, p - a)) { /* "[MASK]" in the text is no word */
                        words[nw].p = (const char *)buf + a;
                        words[nw].len = (int)(p - a);
                        words[nw++].count = 1;
                    }
                } else { /* unknown words, and text that spells a special token, become [UNK] */
                    int id = acn_vocab_find(vocab, (const char *)buf + a, p - a);
                    ts->ids[w] = id < ACN_TOK_SPECIAL ? ACN_TOK_UNK : id;
                }
                w++;
            }
            n++;
            pos = end + 1;
        }
        if (!pass && !ctx->status) {
            if (!n) acn__fail(ctx, ACN_ERR_FORMAT, "%s: no examples after the header line", path);
            else if (build) {
                if (nw) qsort(words, nw, sizeof *words, acn__word_by_text);
                acn__make_vocab(ctx, words, nw, min_count < 1 ? 1 : min_count, vocab);
            } else if (!vocab->size) {
                acn__fail(ctx, ACN_ERR_ARG, "text_tsv: build is 0 but the vocabulary is empty; build it from "
                          "the training split first");
            }
            if (!ctx->status) {
                ts->n = n;
                ts->classes = 2;
                ts->labels = (int *)ACN_MALLOC((size_t)n * sizeof(int));
                ts->start = (size_t *)ACN_MALLOC((size_t)(n + 1) * sizeof(size_t));
                ts->ids = (int *)ACN_MALLOC((w ? w : 1) * sizeof(int));
                if (!ts->labels || !ts->start || !ts->ids)
                    acn__fail(ctx, ACN_ERR_NOMEM, "text_tsv: out of memory for %d examples", n);
            }
        } else if (pass && !ctx->status) {
            ts->start[n] = w;
        }
    }
    ACN_FREE(words);
    ACN_FREE(buf);
    if (ctx->status) {
        acn_text_free(ts);
        if (build) acn_vocab_free(vocab);
    }
    return ctx->status;
}
#endif

#ifdef __cplusplus
}
#endif
#endif /* ACN__IMPLEMENTED */
#endif /* ACN_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
MIT License

Copyright (c) 2026 the acn.h authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
