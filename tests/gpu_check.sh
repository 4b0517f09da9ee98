#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in stages, so that one short run on a
# GPU machine gives the essential answers first (docs/cuda.md):
#
#   tests/gpu_check.sh [STAGE...]     (default: every stage that exists)
#
#   1  build: make cuda (nvcc, sm_90 and PTX), then tests/test_cuda, every
#      kernel of acn_cuda.cu against acn.h's CPU op (C and C++ builds), and
#      the same under compute-sanitizer's memcheck where it works.
#
# What each stage prints goes to the terminal and, when $OUT is set (the
# device tool's folder of results), to $OUT/gpu_check.log too.
#
# The stages the issue of the GPU unit asks for next (the whole models on
# the device, captured steps, `make bench-cuda` against PyTorch, a CIFAR-10
# epoch) come with the device context; docs/cuda.md says where that stands.
set -u
cd "$(dirname "$0")/.."
log=${OUT:+$OUT/gpu_check.log}
say() { if [ -n "$log" ]; then echo "$@" | tee -a "$log"; else echo "$@"; fi; }
run() { # run CMD...: its output to the terminal and the log; its status kept
    if [ -n "$log" ]; then "$@" 2>&1 | tee -a "$log"; return "${PIPESTATUS[0]}"; fi
    "$@"
}
stages=${*:-1}
status=0
for s in $stages; do
    case $s in
    1)
        say "== stage 1: build and the kernels against the CPU ($(date -u +%H:%M:%S))"
        command -v nvidia-smi > /dev/null && run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
        run make -s cuda CC=${CC:-cc} || { say "stage 1: make cuda failed"; status=1; continue; }
        run build/cuda/test_cuda || status=1
        run build/cuda/test_cuda_cxx | tail -n 1 || status=1
        if command -v compute-sanitizer > /dev/null; then
            run compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 build/cuda/test_cuda | tail -n 4 ||
                say "stage 1: compute-sanitizer reported errors (or cannot run on this machine: see above)"
        fi
        ;;
    *)
        say "no stage $s: the stages are 1 (see the top of this file)"
        status=2
        ;;
    esac
done
say "gpu_check: done, status $status ($(date -u +%H:%M:%S))"
exit $status
