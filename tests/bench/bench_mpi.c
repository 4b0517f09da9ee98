/* make bench-mpi: the paper's Mixer trained data-parallel (acn_dist_*), and the messages between
 * two ranks. Built with mpicc -DACN_MPI; tests/bench/bench_mpi.sh runs it.
 *
 *   bench_mpi step THREADS STEPS   on every rank: the paper's CIFAR-10 Mixer, global batch 64 split
 *                                  over the ranks, STEPS timed steps after a warm-up one (forward,
 *                                  cross-entropy with smoothing 0.1, backward, the gradient sum,
 *                                  clipping, AdamW); rank 0 prints the median step and the median
 *                                  time spent in acn_dist_sum_grads (scaling and MPI_Allreduce)
 *   bench_mpi pingpong REPS        two ranks send a message back and forth for sizes 8 B .. 16 MB;
 *                                  rank 0 prints the median one-way time of each size
 */
#define ACN_IMPLEMENTATION
#include "../../acn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 64

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof t[0], cmp);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}
static int die(acn_ctx *ctx)
{
    fprintf(stderr, "bench_mpi: %s\n", acn_error(ctx));
    acn_dist_abort(ctx, 1);
    return 1;
}

static int step_bench(int threads, int steps)
{
    acn_ctx *ctx;
    acn_ctx_config cfg = acn_ctx_defaults();
    acn_mixer m;
    acn_mixer_config mc = acn_mixer_defaults();
    acn_adamw opt;
    acn_rng r;
    static float xs[BATCH * 3 * 32 * 32];
    int labels[BATCH], i, step, off, cnt, s[4];
    double t_step[256], t_sum[256];
    cfg.arena_bytes = (size_t)2 << 30;
    if (steps < 1 || steps > 255) steps = 10;
    if (acn_ctx_new(&ctx, &cfg)) return 1;
    if (acn_set_threads(ctx, threads) || acn_dist_init(ctx) || acn_mixer_build(ctx, &m, &mc) ||
        acn_dist_broadcast_params(ctx) || acn_adamw_init(ctx, &opt, 0.9f, 0.999f, 1e-8f, 0.01f))
        return die(ctx);
    acn_rng_seed(&r, 7);
    for (i = 0; i < BATCH * 3 * 32 * 32; i++) xs[i] = acn_rng_normal(&r);
    for (i = 0; i < BATCH; i++) labels[i] = (int)(acn_rng_u64(&r) % 10);
    acn_dist_rows(ctx, BATCH, &off, &cnt);
    s[0] = cnt; s[1] = 3; s[2] = 32; s[3] = 32;
    for (step = 0; step <= steps; step++) {
        double t0, t1, t2;
        acn_tensor *x, *loss;
        MPI_Barrier(MPI_COMM_WORLD); /* the ranks start each step together */
        t0 = MPI_Wtime();
        acn_reset(ctx);
        x = acn_input(ctx, 4, s, xs + (size_t)off * 3 * 32 * 32); /* (cnt, 3, 32, 32): this rank's rows */
        loss = acn_cross_entropy(ctx, acn_mixer_forward(ctx, &m, x, -1, NULL), labels + off, 0.1f, -1);
        acn_zero_grad(ctx);
        if (!loss || acn_backward(ctx, loss)) return die(ctx);
        t1 = MPI_Wtime();
        if (acn_dist_sum_grads(ctx, (double)cnt / BATCH)) return die(ctx);
        t2 = MPI_Wtime();
        if (acn_clip_grad_norm(ctx, 1.0f, NULL) || acn_adamw_step(ctx, &opt, 1e-3f)) return die(ctx);
        if (step > 0) {
            t_step[step - 1] = MPI_Wtime() - t0;
            t_sum[step - 1] = t2 - t1;
        }
    }
    if (acn_dist_rank(ctx) == 0)
        printf("ranks %d threads %d rows_per_rank %d median_step_s %.5f median_allreduce_s %.5f gradient_bytes %zu "
               "img_per_s %.1f\n", acn_dist_size(ctx), acn_threads(ctx), cnt, median(t_step, steps),
               median(t_sum, steps), acn_param_numel(ctx) * sizeof(float), BATCH / median(t_step, steps));
    acn_adamw_free(&opt);
    acn_ctx_free(ctx);
    return 0;
}

static int pingpong(int reps)
{
    int rank, size, bytes, k;
    char *buf = (char *)malloc((size_t)16 << 20);
    double t[256];
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2 || !buf) {
        if (rank == 0) fprintf(stderr, "bench_mpi pingpong: run it on 2 ranks\n");
        free(buf);
        return 1;
    }
    if (reps < 1 || reps > 256) reps = 50;
    memset(buf, 1, (size_t)16 << 20);
    for (bytes = 8; bytes <= (16 << 20); bytes *= 4) {
        for (k = -2; k < reps; k++) { /* two warm-up exchanges */
            double t0;
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = MPI_Wtime();
            if (rank == 0) {
                MPI_Send(buf, bytes, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
                MPI_Recv(buf, bytes, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else {
                MPI_Recv(buf, bytes, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(buf, bytes, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
            }
            if (k >= 0) t[k] = (MPI_Wtime() - t0) / 2.0;
        }
        if (rank == 0) printf("pingpong bytes %d one_way_s %.3e\n", bytes, median(t, reps));
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;
    MPI_Init(&argc, &argv);
    if (argc == 4 && !strcmp(argv[1], "step")) rc = step_bench(atoi(argv[2]), atoi(argv[3]));
    else if (argc == 3 && !strcmp(argv[1], "pingpong")) rc = pingpong(atoi(argv[2]));
    else fprintf(stderr, "usage: bench_mpi step THREADS STEPS | pingpong REPS\n");
    MPI_Finalize();
    return rc;
}
