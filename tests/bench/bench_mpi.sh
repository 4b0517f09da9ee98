#!/usr/bin/env bash
# make bench-mpi: data-parallel training (acn_dist_*, docs/distributed.md) on this machine.
# 1. The paper's Mixer step (global batch 64) as 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1
#    thread, in alternating runs, REPS times each (default 3), STEPS timed steps each (default 10): the
#    median step, and the median time of the gradient sum (acn_dist_sum_grads).
# 2. A ping-pong between 2 ranks, 8 B to 16 MB: the latency and bandwidth of this machine's transport.
# 3. A model, not a measurement, of the step at 8 and 64 ranks from these figures: compute split
#    evenly over the ranks, plus a ring all-reduce of the gradient block (2 (p-1) latencies and
#    2 (p-1)/p of the block over the bandwidth).
set -eu
cd "$(dirname "$0")/../.."
B=build/bench
REPS=${REPS:-3}
STEPS=${STEPS:-10}
mkdir -p "$B"
MPIRUN="mpirun --allow-run-as-root --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo" # (each case sets its threads)
command -v mpicc > /dev/null || { echo "bench-mpi needs Open MPI: apt-get install openmpi-bin libopenmpi-dev" >&2; exit 1; }
mpicc -std=c99 -O2 -Wall -Wextra -Werror -DACN_MPI tests/bench/bench_mpi.c -o "$B/bench_mpi" -lm
cpu=$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //'); fam=$(grep -m1 "cpu family" /proc/cpuinfo | sed 's/.*: //')
mod=$(grep -m1 "^model\s" /proc/cpuinfo | sed 's/.*: //')
echo "cpu: $cpu (family $fam model $mod), $(nproc) cores; Open MPI $(mpirun --version | head -n 1 | grep -o '[0-9.]*$')"
out=$B/bench_mpi.txt
: > "$out"
for r in $(seq 1 "$REPS"); do
    for cfg in "1 1" "1 2" "2 1"; do
        set -- $cfg
        $MPIRUN -np $1 "$B/bench_mpi" step $2 "$STEPS" | tee -a "$out"
    done
done
$MPIRUN -np 2 "$B/bench_mpi" pingpong 50 | tee -a "$out"
${PYTHON:-/usr/bin/python3} - "$out" <<'PY'
import re, statistics as st, sys
rows = [dict(zip(l.split()[0::2], l.split()[1::2])) for l in open(sys.argv[1]) if l.startswith("ranks")]
pp = {int(m[0]): float(m[1]) for m in re.findall(r"pingpong bytes (\d+) one_way_s (\S+)", open(sys.argv[1]).read())}
def med(r, t, key):
    return st.median(float(x[key]) for x in rows if x["ranks"] == str(r) and x["threads"] == str(t))
s11, s12, s21 = med(1, 1, "median_step_s"), med(1, 2, "median_step_s"), med(2, 1, "median_step_s")
a21 = med(2, 1, "median_allreduce_s")
nbytes = int(rows[0]["gradient_bytes"])
lat, bw = pp[8], max(pp) / pp[max(pp)]
print("\nmedians of %d runs (each the median of its steps):" % (len(rows) // 3))
print("step_s 1 rank x 1 thread: %.4f  1 rank x 2 threads: %.4f  2 ranks x 1 thread: %.4f" % (s11, s12, s21))
print("img_per_s 1x1: %.1f  1x2: %.1f  2x1: %.1f" % (64 / s11, 64 / s12, 64 / s21))
print("two_ranks_vs_two_threads: %.2f (1 rank x 2 threads' step / 2 ranks x 1 thread's)" % (s12 / s21))
print("allreduce_share_2x1: %.3f (%.4f s of the step: %d bytes of gradient)" % (a21 / s21, a21, nbytes))
print("transport: latency %.2e s one way (8 B), bandwidth %.2f GB/s (%d B one way)" % (lat, bw / 1e9, max(pp)))
print("model, not measured (compute = 1x1 step / p, plus a ring all-reduce at this transport):")
def model(lat, bw):
    for p in (2, 8, 64):
        comm = 2 * (p - 1) * lat + 2 * (p - 1) / p * nbytes / bw
        comp = s11 / p
        print("  p %2d: compute %.4f s + all-reduce %.4f s = %.4f s a step; %.0f img/s; all-reduce %.0f%% of the step"
              % (p, comp, comm, comp + comm, 64 / (comp + comm), 100 * comm / (comp + comm)))
model(lat, bw)
print("the same model across machines on an assumed 10 Gb/s network (1.25 GB/s, 20 us one way; not measured):")
model(20e-6, 1.25e9)
PY
