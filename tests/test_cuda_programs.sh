#!/usr/bin/env bash
# The training programs with --device cuda, on the emulated GPU of
# tests/cuda_emu.c (no CUDA needed; docs/cuda.md), or on a real one with
# CUDA_UNIT=build/cuda/acn_cuda.o: each program is built with -DACN_CUDA and
# that GPU unit, trains a small model on the
# tiny data sets of tests/tools on a GPU context and on a CPU context, and
# the two logs must agree (every number of every row, relative 1e-4: the two
# devices add in different orders). A checkpoint saved from the GPU context
# then resumes on the CPU, and evaluates there. Prints "N passed, N failed".
#
#   tests/test_cuda_programs.sh OUTDIR
set -u
cd "$(dirname "$0")/.."
W=${1:-build/test/cuda_programs}
PY=${PYTHON:-/usr/bin/python3}
CC=${CC:-cc}
rm -rf "$W" && mkdir -p "$W"
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && head -20 "$2"; }
# CUDA_UNIT: the GPU unit to link (tests/gpu_check.sh passes build/cuda/acn_cuda.o for a real GPU)
UNIT=${CUDA_UNIT:-tests/cuda_emu.c}
LIBS=""
case $UNIT in *.o) LIBS="-L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 -lcudart -lcublas -lstdc++" ;; esac
for p in train_mixer train_bert; do
    if ! $CC -std=c99 -O2 -Wall -Wextra -Werror -pedantic -DACN_CUDA examples/$p.c "$UNIT" -o "$W/$p" $LIBS -lm \
        2> "$W/log"; then
        bad "build $p with -DACN_CUDA and $UNIT" "$W/log"
        echo "cuda programs: $pass passed, $fail failed"
        exit 1
    fi
    $CC -std=c99 -O2 -Wall -Wextra -Werror -pedantic examples/$p.c -o "$W/${p}_cpu" -lm 2> "$W/log" || bad "build $p" "$W/log"
done
"$PY" tests/tools/tiny_cifar.py "$W/cifar" 64 > /dev/null
"$PY" tests/tools/tiny_sst2.py "$W/sst2" > /dev/null

# rows of two CSV logs: the same columns, the same numbers to 1e-4 (the cpu_model column aside)
same_log() {
    "$PY" - "$1" "$2" << 'EOF'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert len(a) == len(b) and len(a) > 0, f"{len(a)} rows against {len(b)}"
for ra, rb in zip(a, b):
    for k in ra:
        if k in ("seconds", "cpu_model"): continue
        x, y = ra[k], rb[k]
        if x == y: continue
        fx, fy = float(x), float(y)
        assert abs(fx - fy) <= 1e-4 * max(abs(fx), abs(fy), 1e-3), f"{k}: {x} against {y}"
EOF
}

M="--data-dir $W/cifar --recipe paper --width 32 --depth 4 --token-hidden 16 --channel-hidden 64 --batch 16 --threads 1 --eval-every 2"
"$W/train_mixer_cpu" $M --epochs 2 --log "$W/mixer_cpu.csv" > "$W/mixer_cpu.out" 2>&1 || bad "train_mixer on the CPU" "$W/mixer_cpu.out"
if "$W/train_mixer" $M --epochs 2 --device cuda --log "$W/mixer_gpu.csv" --save "$W/mixer_gpu" > "$W/mixer_gpu.out" 2>&1; then
    ok
    if same_log "$W/mixer_gpu.csv" "$W/mixer_cpu.csv" > "$W/log" 2>&1; then ok
    else bad "train_mixer (paper recipe: AutoAugment, CutMix) on the GPU: the log differs from the CPU's" "$W/log"; fi
else
    bad "train_mixer --device cuda" "$W/mixer_gpu.out"
fi
# the GPU's checkpoint continues on the CPU, and evaluates there
if "$W/train_mixer_cpu" $M --epochs 3 --resume "$W/mixer_gpu" --log "$W/mixer_gpu.csv" > "$W/resume.out" 2>&1 &&
    grep -q "epoch 3/3" "$W/resume.out"; then ok; else bad "the GPU's checkpoint resumed on the CPU" "$W/resume.out"; fi
if "$W/train_mixer_cpu" --eval-only --weights "$W/mixer_gpu.safetensors" --data-dir "$W/cifar" > "$W/eval.out" 2>&1 &&
    grep -q "test accuracy" "$W/eval.out"; then ok; else bad "the GPU's weights evaluated on the CPU" "$W/eval.out"; fi

B="--data-dir $W/sst2 --width 16 --depth 2 --heads 2 --mlp 32 --batch 8 --mlm-epochs 1 --cls-epochs 1 --threads 1 --min-count 1"
"$W/train_bert_cpu" $B --log "$W/bert_cpu.csv" > "$W/bert_cpu.out" 2>&1 || bad "train_bert on the CPU" "$W/bert_cpu.out"
if "$W/train_bert" $B --device cuda --log "$W/bert_gpu.csv" > "$W/bert_gpu.out" 2>&1; then
    ok
    if same_log "$W/bert_gpu.csv" "$W/bert_cpu.csv" > "$W/log" 2>&1; then ok
    else bad "train_bert (MLM, then the classifier; dropout, padding masks) on the GPU: the log differs from the CPU's" "$W/log"; fi
else
    bad "train_bert --device cuda" "$W/bert_gpu.out"
fi
# a program built without ACN_CUDA says how to get one that has it
if ! "$W/train_mixer_cpu" $M --epochs 1 --device cuda > "$W/nocuda.out" 2>&1 && grep -q "built with ACN_CUDA" "$W/nocuda.out"
then ok; else bad "--device cuda without ACN_CUDA" "$W/nocuda.out"; fi
echo "cuda programs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
