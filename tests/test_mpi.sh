#!/usr/bin/env bash
# The training programs on several processes (make mpi; docs/distributed.md), on small CIFAR-10- and
# SST-2-format data sets the test writes, over loopback:
#   - 2 ranks against 1 process with the same global batch, 20 steps: the Mixer with the paper recipe
#     (crops, AutoAugment, CutMix), BERT pretraining with dropout and masking: the same losses and
#     evaluations, the weights within relative 1e-5 (see below for the Mixer's tok.fc2.bias);
#   - a second 2-rank run is bit-identical to the first;
#   - SIGINT to one rank: rank 0 saves and both exit (130);
#   - 1 process resuming a 2-rank checkpoint reaches the weights of the 2-rank run continued;
#   - a rank that fails alone (data it cannot read, an arena too small) stops the others with a
#     message, within a time limit, never a hang.
# Usage: tests/test_mpi.sh BUILD_DIR MPI_BUILD_DIR (train_mixer, train_bert in both; the second built with
# -DACN_MPI). Prints "mpi programs: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
B=$1
BM=$2
W=$B/mpi_programs
PY=${PYTHON:-/usr/bin/python3}
command -v "$PY" > /dev/null || PY=python3
rm -rf "$W" && mkdir -p "$W"
MPIRUN="timeout 120 mpirun --allow-run-as-root --oversubscribe --mca btl self,vader --mca oob_tcp_if_include lo"
pass=0
fail=0
check() { # check NAME CONDITION-EXIT-STATUS [LOG]
    if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1"; [ -n "${3:-}" ] && sed 's/^/    /' "$3" | tail -n 15; fi
}
same() { "$PY" tests/tools/st_compare.py "$@" > "$W/cmp.log" 2>&1; } # same A B TOL [EXCLUDE]
# as_one PROGRAM RANKS COLUMNS NAME EXCLUDE ARGS...: PROGRAM with ARGS as 1 process (W/NAME1) and on RANKS
# ranks (W/NAMEn); 0 when both ran, their logs agree in the first COLUMNS columns and their weights within
# 1e-5 (EXCLUDE: a regular expression of tensors left out, or "")
as_one() {
    local prog=$1 np=$2 cols=$3 name=$4 excl=$5
    shift 5
    $B/$prog "$@" --save "$W/${name}1" --log "$W/${name}1.csv" > "$W/${name}1.log" 2>&1 &&
        $MPIRUN -np $np $BM/$prog "$@" --save "$W/${name}n" --log "$W/${name}n.csv" > "$W/${name}n.log" 2>&1 &&
        cut -d, -f1-$cols "$W/${name}1.csv" > "$W/${name}1.cut" && cut -d, -f1-$cols "$W/${name}n.csv" > "$W/${name}n.cut" &&
        cmp -s "$W/${name}1.cut" "$W/${name}n.cut" && same "$W/${name}n.safetensors" "$W/${name}1.safetensors" 1e-5 $excl
}
"$PY" tests/tools/tiny_cifar.py "$W/cifar" 64 > /dev/null
"$PY" tests/tools/tiny_sst2.py "$W/sst2" > /dev/null
# 320 training images, batch 16: 20 steps an epoch, 8 rows per rank
M="--data-dir $W/cifar --recipe paper --width 32 --depth 4 --token-hidden 16 --channel-hidden 64 --batch 16 --threads 1"

# ---- 2 ranks against 1 process ---------------------------------------------------------------
$B/train_mixer $M --epochs 1 --save "$W/one" --log "$W/one.csv" > "$W/one.log" 2>&1
check "train_mixer, 1 process" $? "$W/one.log"
$MPIRUN -np 2 $BM/train_mixer $M --epochs 1 --save "$W/two" --log "$W/two.csv" > "$W/two.log" 2>&1
check "train_mixer, 2 ranks" $? "$W/two.log"
# the epoch's mean training loss, the test loss and accuracy and every probe: the same to the digit printed
cut -d, -f1-11 "$W/one.csv" > "$W/one.cut" && cut -d, -f1-11 "$W/two.csv" > "$W/two.cut" && cmp -s "$W/one.cut" "$W/two.cut"
check "train_mixer: 2 ranks and 1 process log the same losses, test accuracy and probes ($(tail -n 1 "$W/two.cut"))" $? "$W/two.cut"
# tok.fc2.bias adds one number to every channel of a token, which the LayerNorm after it removes: its
# gradient is 0 but for rounding, which AdamW scales up to steps of the learning rate's size, so it
# differs as much between AVX2 and AVX-512 kernels in one process (docs/distributed.md); every other tensor:
same "$W/two.safetensors" "$W/one.safetensors" 1e-5 'tok\.fc2\.bias'
check "train_mixer: the weights after 20 steps within 1e-5 ($(cat "$W/cmp.log"))" $? "$W/cmp.log"
$MPIRUN -np 2 $BM/train_mixer $M --epochs 1 --save "$W/two_again" > "$W/two_again.log" 2>&1
same "$W/two_again.safetensors" "$W/two.safetensors" 0
check "train_mixer: a second 2-rank run is bit-identical ($(cat "$W/cmp.log"))" $? "$W/cmp.log"

# the ViT, the simple recipe (crop, flip), 20 steps
V="--data-dir $W/cifar --width 32 --heads 2 --mlp 64 --depth 3 --batch 16 --threads 1 --epochs 1"
as_one train_vit 2 10 vit "" $V
check "train_vit: 2 ranks as 1 process: the same log, the weights within 1e-5 ($(cat "$W/cmp.log"))" $? "$W/vitn.log"
# without --threads, each of 2 ranks on this machine takes its share of the cores
$MPIRUN -np 2 $BM/train_mixer $M --epochs 1 --limit 32 --threads 0 > "$W/share.log" 2>&1
n=$(nproc); want=$(( n / 2 > 1 ? n / 2 : 1 ))
grep -q "parameters; $want thread" "$W/share.log"
check "2 ranks without --threads: $want thread(s) each on $n cores" $? "$W/share.log"

# uneven shares: 3 ranks, batch 16 (6 + 5 + 5 rows), and a short last batch of 1 image (33 = 2 x 16 + 1),
# which leaves two ranks no rows; with a noisy evaluation (--eval-noise), whose draws every rank makes
U="$M --epochs 2 --limit 33 --eval-noise 0.3"
as_one train_mixer 3 11 uneven 'tok\.fc2\.bias' $U
check "train_mixer on 3 ranks, a last batch of 1 image, noisy evaluation: as 1 process ($(cat "$W/cmp.log"))" $? "$W/unevenn.log"

# BERT: MLM pretraining with dropout 0.1 and 15% masking, 20 steps of 32 sentences (16 per rank)
T="--data-dir $W/sst2 --width 16 --heads 2 --mlp 32 --depth 2 --seq 16 --batch 32 --limit 640 --mlm-epochs 1 --cls-epochs 0 --threads 1"
$B/train_bert $T --save "$W/bone" --log "$W/bone.csv" > "$W/bone.log" 2>&1
check "train_bert, 1 process" $? "$W/bone.log"
$MPIRUN -np 2 $BM/train_bert $T --save "$W/btwo" --log "$W/btwo.csv" > "$W/btwo.log" 2>&1
check "train_bert, 2 ranks" $? "$W/btwo.log"
cut -d, -f1-5 "$W/bone.csv" > "$W/bone.cut" && cut -d, -f1-5 "$W/btwo.csv" > "$W/btwo.cut" && cmp -s "$W/bone.cut" "$W/btwo.cut"
check "train_bert: the same MLM training and dev losses ($(tail -n 1 "$W/btwo.cut"))" $? "$W/btwo.cut"
same "$W/btwo.safetensors" "$W/bone.safetensors" 1e-5
check "train_bert: the weights after 20 steps within 1e-5 ($(cat "$W/cmp.log"))" $? "$W/cmp.log"
$MPIRUN -np 2 $BM/train_bert $T --save "$W/btwo_again" > /dev/null 2>&1
same "$W/btwo_again.safetensors" "$W/btwo.safetensors" 0
check "train_bert: a second 2-rank run is bit-identical ($(cat "$W/cmp.log"))" $? "$W/cmp.log"
# fine-tuning too (dropout, the classification head), batch 30 on 3 ranks, from the start
TC="--data-dir $W/sst2 --width 16 --heads 2 --mlp 32 --depth 2 --seq 16 --batch 30 --limit 300 --mlm-epochs 1 --cls-epochs 1 --threads 1"
as_one train_bert 3 8 finetune "" $TC
check "train_bert pretraining and fine-tuning on 3 ranks: the same log and dev accuracies, weights within 1e-5 ($(cat "$W/cmp.log"))" $? "$W/finetunen.log"

# ---- stopping and resuming -------------------------------------------------------------------
# --stop-after raises SIGINT in every rank after 10 steps; then 2 ranks and 1 process continue it
$MPIRUN -np 2 $BM/train_mixer $M --epochs 2 --save "$W/cut" --stop-after 10 > "$W/cut.log" 2>&1
rc=$?
grep -q "stopped by signal 2 at step 10" "$W/cut.log"
check "2 ranks stopped after 10 steps: saved, exit 130 (exit $rc)" $(( $? || rc != 130 )) "$W/cut.log"
for f in safetensors state.safetensors; do cp "$W/cut.$f" "$W/cut1.$f"; done
$MPIRUN -np 2 $BM/train_mixer $M --epochs 2 --save "$W/cut" --resume "$W/cut" > "$W/cut2.log" 2>&1
check "2 ranks resume their checkpoint" $? "$W/cut2.log"
$B/train_mixer $M --epochs 2 --save "$W/cut1" --resume "$W/cut1" > "$W/cut1.log" 2>&1
check "1 process resumes the 2-rank checkpoint" $? "$W/cut1.log"
same "$W/cut1.safetensors" "$W/cut.safetensors" 1e-5 'tok\.fc2\.bias'
check "1 process from a 2-rank checkpoint ends where 2 ranks end, within 1e-5 ($(cat "$W/cmp.log"))" $? "$W/cmp.log"
# SIGINT to rank 1 alone, from outside
$MPIRUN -np 2 $BM/train_mixer $M --epochs 400 --save "$W/sig" > "$W/sig.log" 2>&1 &
job=$!
pid=
for i in $(seq 1 100); do # rank 1's process: OMPI_COMM_WORLD_RANK=1 in its environment
    for p in $(pgrep -f "$BM/train_mixer.*$W/sig"); do
        tr '\0' '\n' < /proc/$p/environ 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && pid=$p
    done
    [ -n "$pid" ] && grep -q "step [0-9]*/20" "$W/sig.log" 2> /dev/null && break
    sleep 0.2
done
[ -n "$pid" ] && kill -INT "$pid"
wait $job
rc=$?
grep -q "stopped by a signal to another rank at step [0-9]* .*saved $W/sig.safetensors" "$W/sig.log" && [ -f "$W/sig.state.safetensors" ]
check "SIGINT to rank 1 alone: rank 0 saves, both stop (exit $rc)" $(( $? || rc == 0 || rc == 124 )) "$W/sig.log"

# ---- a rank that fails alone -----------------------------------------------------------------
$MPIRUN -np 1 $BM/train_mixer $M --epochs 1 : -np 1 $BM/train_mixer $M --epochs 1 --data-dir "$W/nowhere" > "$W/gone.log" 2>&1
rc=$?
grep -q "nowhere" "$W/gone.log"
check "rank 1 cannot read its data: every rank exits non-zero with its message, no hang (exit $rc)" $(( $? || rc == 0 || rc == 124 )) "$W/gone.log"
$MPIRUN -np 1 $BM/train_mixer $M --epochs 1 --width 256 --channel-hidden 1024 : -np 1 $BM/train_mixer $M --epochs 1 --width 256 --channel-hidden 1024 --arena-mb 16 > "$W/arena.log" 2>&1
rc=$?
grep -q "arena is full" "$W/arena.log" && grep -q "rank 0 stops: another rank failed at step 0" "$W/arena.log"
check "rank 1's arena is too small: it says so, rank 0 says why it stops, no hang (exit $rc)" $(( $? || rc == 0 || rc == 124 )) "$W/arena.log"

echo "mpi programs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
