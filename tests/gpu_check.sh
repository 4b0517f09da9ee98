#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in stages, so that one short run on a
# GPU machine gives the essential answers first (docs/cuda.md):
#
#   tests/gpu_check.sh [STAGE...]     (default: every stage that exists)
#
#   1  build: make cuda (nvcc, sm_90 and PTX), then tests/test_cuda, every
#      kernel of acn_cuda.cu against acn.h's CPU op and GPU contexts against
#      CPU contexts (C and C++ builds), and the same under
#      compute-sanitizer's memcheck where it works.               (~1 min)
#   2  programs: tests/test_cuda_programs.sh with the real GPU unit:
#      train_mixer and train_bert on tiny data sets, the GPU's logs against
#      the CPU's; the GPU's checkpoint resumes on the CPU.        (~1 min)
#   3  the benchmark: make bench-cuda (acn.h against PyTorch eager and at
#      its best, the paper's Mixer at batch 64 and 256, the ViT at 64),
#      with fewer repetitions (REPS=2, STEPS=10).                  (~3 min)
#   4  CIFAR-10: one epoch of the paper's Mixer, simple recipe, seed 0, on
#      the GPU (build/cuda/train_mixer --device cuda), its test accuracy
#      and wall time. It needs the data, which is too large to travel with
#      the working tree: put a copy of CIFAR-10 as JPEGs (cifar10-jpg.tar.xz)
#      and its prepare.py in gpu-data/ (git-ignored); this stage prepares
#      the binary files there. docs/training.md, "On a GPU", has the CPU run
#      to compare with: 51.69%; the GPU's must be within a point. (a few min)
#
set -u
cd "$(dirname "$0")/.."
log=${OUT:+$OUT/gpu_check.log}
say() { if [ -n "$log" ]; then echo "$@" | tee -a "$log"; else echo "$@"; fi; }
run() { # run CMD...: its output to the terminal and the log; its status kept
    if [ -n "$log" ]; then "$@" 2>&1 | tee -a "$log"; return "${PIPESTATUS[0]}"; fi
    "$@"
}
stages=${*:-1 2 3 4}
status=0
for s in $stages; do
    case $s in
    1)
        say "== stage 1: build and the kernels against the CPU ($(date -u +%H:%M:%S))"
        command -v nvidia-smi > /dev/null && run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
        run make -s cuda CC=${CC:-cc} || { say "stage 1: make cuda failed"; status=1; continue; }
        run build/cuda/test_cuda || status=1
        run build/cuda/test_cuda_cxx || status=1
        if command -v compute-sanitizer > /dev/null; then
            run compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 build/cuda/test_cuda ||
                say "stage 1: compute-sanitizer reported errors (or cannot run on this machine: see above)"
        fi
        ;;
    2)
        say "== stage 2: the training programs on the GPU against the CPU ($(date -u +%H:%M:%S))"
        run env CUDA_UNIT=build/cuda/acn_cuda.o tests/test_cuda_programs.sh build/test/gpu_programs || status=1
        ;;
    3)
        say "== stage 3: make bench-cuda ($(date -u +%H:%M:%S))"
        run env REPS=2 STEPS=10 tests/bench/bench_cuda.sh || status=1
        ;;
    4)
        say "== stage 4: one CIFAR-10 epoch of the paper's Mixer on the GPU ($(date -u +%H:%M:%S))"
        if [ ! -f gpu-data/cifar-10-batches-bin/test_batch.bin ]; then
            if [ -f gpu-data/cifar10-jpg.tar.xz ] && [ -f gpu-data/prepare.py ]; then
                run python3 gpu-data/prepare.py gpu-data || { say "stage 4: preparing the data failed"; status=1; continue; }
            else
                say "stage 4: no data: copy cifar10-jpg.tar.xz and prepare.py into gpu-data/ (see the top of this file)"
                status=1
                continue
            fi
        fi
        run make -s build/cuda/train_mixer CC=${CC:-cc} || { status=1; continue; }
        start=$(date +%s)
        run build/cuda/train_mixer --device cuda --data-dir gpu-data/cifar-10-batches-bin --recipe simple --epochs 1 \
            --warmup 0 --seed 0 --threads 4 --log ${OUT:-build}/mixer_gpu_1epoch.csv || status=1
        say "stage 4: wall time $(( $(date +%s) - start )) s; the CPU run of docs/training.md reached 51.69%"
        ;;
    *)
        say "no stage $s: the stages are 1 to 4 (see the top of this file)"
        status=2
        ;;
    esac
done
say "gpu_check: done, status $status ($(date -u +%H:%M:%S))"
exit $status
