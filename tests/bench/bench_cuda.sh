#!/usr/bin/env bash
# make bench-cuda: training steps of the paper's Mixer (batch 64 and 256) and of the small ViT (batch 64)
# on one NVIDIA GPU, acn.h (tests/bench/bench_cuda.c, a GPU context) against PyTorch eager and PyTorch at
# its best (torch.compile(mode="reduce-overhead") with fused AdamW; tests/bench/bench_cuda_torch.py), from
# the same weights and images, in the same run, alternating, REPS times; medians. The first step's loss
# of acn.h and of PyTorch must agree (relative 1e-4) or the benchmark stops. Ends with:
#   cuda_mixer_b64_img_per_s: <acn.h> pytorch_eager: <x> pytorch_best: <y>
#   cuda_mixer_b256_img_per_s: <acn.h> pytorch_eager: <x> pytorch_best: <y>
#   cuda_vit_b64_img_per_s: <acn.h> pytorch_eager: <x> pytorch_best: <y>
#   cuda_speedup_vs_pytorch_best_b64: <ratio>
# Needs nvcc (make cuda), a GPU, and python3 with torch for CUDA. docs/cuda.md.
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON_CUDA:-python3}
REPS=${REPS:-3}
STEPS=${STEPS:-20}
W=build/bench_cuda
mkdir -p "$W"
: > "$W/summary"
make -s build/cuda/acn_cuda.o
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Werror -DACN_CUDA tests/bench/bench_cuda.c build/cuda/acn_cuda.o -o "$W/bench_cuda" \
    -L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 -lcudart -lcublas -lstdc++ -lm
${CC:-cc} -std=c99 -O2 tests/bench/bench_acn.c -o "$W/bench_acn" -lm -ldl
echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo unknown)"
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }
for model in mixer vit; do
    "$W/bench_acn" init "$model" "$W"
    for B in 64 256; do
        [ "$model" = vit ] && [ "$B" = 256 ] && continue
        : > "$W/$model.$B.acn"; : > "$W/$model.$B.eager"; : > "$W/$model.$B.best"
        for r in $(seq "$REPS"); do
            "$W/bench_cuda" run "$model" "$W" "$STEPS" "$B" | tee -a "$W/$model.$B.acn"
            "$PY" tests/bench/bench_cuda_torch.py "$model" "$W" "$STEPS" "$B" eager | tee -a "$W/$model.$B.eager"
            "$PY" tests/bench/bench_cuda_torch.py "$model" "$W" "$STEPS" "$B" best | tee -a "$W/$model.$B.best"
        done
        la=$(head -n 1 "$W/$model.$B.acn" | field first_loss)
        lt=$(head -n 1 "$W/$model.$B.eager" | field first_loss)
        if ! awk -v a="$la" -v b="$lt" 'BEGIN {d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * (b < 0 ? -b : b))}'; then
            echo "bench_cuda: $model batch $B: the first loss differs: acn.h $la, PyTorch $lt" >&2
            exit 1
        fi
        for k in acn eager best; do
            s=$(field median_s < "$W/$model.$B.$k" | median)
            awk -v b="$B" -v s="$s" 'BEGIN {printf "%.1f\n", b / s}' > "$W/$model.$B.$k.ips"
        done
        echo "cuda_${model}_b${B}_img_per_s: $(cat "$W/$model.$B.acn.ips") pytorch_eager: $(cat "$W/$model.$B.eager.ips")" \
             "pytorch_best: $(cat "$W/$model.$B.best.ips")" >> "$W/summary"
    done
done
cat "$W/summary"
awk '{print $2 / $6}' < <(grep cuda_mixer_b64 "$W/summary") | awk '{printf "cuda_speedup_vs_pytorch_best_b64: %.2f\n", $1}'
rm -f "$W/summary"
