#!/usr/bin/env bash
# The whole test suite (`make test` runs it). Prints one line per step and
# ends with "total: N passed, N failed"; exits non-zero on any failure.
#
#   ACN_REQUIRE_TORCH=1  fail (rather than skip) when PyTorch is missing; CI
#                        sets it, since CI installs Debian's python3-torch.
#   ACN_REQUIRE_MPI=1    the same for Open MPI (mpicc, mpirun); CI installs it.
#   PYTHON               the interpreter with torch (default /usr/bin/python3,
#                        Debian's, which python3-torch installs into).
set -u
cd "$(dirname "$0")/.."
B=build/test
mkdir -p "$B"
CC=${CC:-cc}
PYTHON=${PYTHON:-/usr/bin/python3}
WARN="-Wall -Wextra -Werror"
pass=0
fail=0
ok() { pass=$((pass + 1)); printf '  ok    %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf '  FAIL  %s\n' "$1"; [ -n "${2:-}" ] && sed 's/^/        /' "$2" | head -40; }
# step NAME CMD...: a check that passes when CMD exits 0
step() { local name=$1; shift; if "$@" > "$B/log" 2>&1; then ok "$name"; else bad "$name" "$B/log"; fi; }
# suite NAME BINARY ARGS...: a test program; its "N passed, N failed" line is added in
suite() {
    local name=$1; shift
    "$@" > "$B/out" 2>&1
    local rc=$? line
    line=$(grep -E '^[a-z ]+: [0-9]+ passed, [0-9]+ failed$' "$B/out" | tail -n 1)
    if [ -z "$line" ]; then bad "$name (no summary line, exit $rc)" "$B/out"; return; fi
    local p f
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
    pass=$((pass + p)); fail=$((fail + f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        fail=$((fail + ( f == 0 ? 1 : 0 )))
        printf '  FAIL  %s: %s (exit %d)\n' "$name" "$line" "$rc"; grep -v -E '^[a-z ]+: [0-9]+ passed' "$B/out" | head -40 | sed 's/^/        /'
    else
        printf '  ok    %s (%s)\n' "$name" "${line#*: }"
    fi
}

echo "== the header"
printf '#define ACN_IMPLEMENTATION\n#include "acn.h"\nint main(void) { return 0; }\n' > "$B/first.c"
cp "$B/first.c" "$B/first.cpp"
for cc in gcc clang; do
    command -v $cc > /dev/null || { bad "$cc is not installed"; continue; }
    step "$cc -std=c99 -pedantic $WARN, acn.h first" $cc -std=c99 -pedantic $WARN -I. -c "$B/first.c" -o "$B/first.o"
done
for cxx in g++ clang++; do
    command -v $cxx > /dev/null || { bad "$cxx is not installed"; continue; }
    step "$cxx $WARN, acn.h first" $cxx $WARN -I. -c "$B/first.cpp" -o "$B/first.o"
done
# optimisers warn about more than -O0 sees (inlined SIMD code, uninitialised paths)
step "gcc -O3 and g++ -O3 $WARN, a whole test program" sh -c "gcc -std=c99 -pedantic $WARN -O3 -c tests/test_models.c -o $B/o3.o && g++ $WARN -O3 -x c++ -c tests/test_models.c -o $B/o3pp.o"
step "ACN_STATIC ACN_NO_STDIO ACN_NO_POSIX" $CC -std=c99 -pedantic $WARN -DACN_STATIC -DACN_NO_STDIO -DACN_NO_POSIX -I. -c "$B/first.c" -o "$B/first.o"
# two translation units: the implementation in one, the declarations in the other
printf '#include "acn.h"\nint count(void) { acn_ctx *c; int n = acn_ctx_new(&c, NULL) == ACN_OK; acn_ctx_free(c); return n; }\n' > "$B/unit2.c"
printf '#define ACN_IMPLEMENTATION\n#include "acn.h"\nint count(void);\nint main(void) { return count() == 1 ? 0 : 1; }\n' > "$B/unit1.c"
step "two files link, one implementation" sh -c "$CC -std=c99 -pedantic $WARN -I. $B/unit1.c $B/unit2.c -o $B/units -lm && $B/units"

echo "== test programs"
build() { $CC -std=c99 -pedantic $WARN -O2 -g "$@" -lm; }
for t in core gradcheck torch models train data misuse; do
    if build tests/test_$t.c -o "$B/test_$t" 2> "$B/log"; then ok "build test_$t"; else bad "build test_$t" "$B/log"; fi
done
suite "core" "$B/test_core"
suite "gradcheck" "$B/test_gradcheck"
suite "torch parity (committed references)" "$B/test_torch" tests/ref
suite "models vs torch (committed references)" "$B/test_models" tests/reference
suite "train" "$B/test_train"
suite "data loaders" "$B/test_data"
suite "misuse: each caught with a clear error" "$B/test_misuse"
if build tests/test_paths.c -o "$B/test_paths" 2> "$B/log"; then suite "gradient paths: DG and FG against the closed forms, DG two ways" "$B/test_paths"; else bad "build test_paths" "$B/log"; fi
if g++ $WARN -O2 -x c++ tests/test_core.c -o "$B/test_core_cxx" 2> "$B/log"; then
    suite "core, built as C++" "$B/test_core_cxx"
else
    bad "build test_core as C++" "$B/log"
fi

echo "== the GPU unit (acn_cuda.cu)"
# the device context on an emulated GPU (tests/cuda_emu.c): needs no CUDA, runs everywhere; its
# device pointers fault if acn.h reads them as host memory
if build -DACN_CUDA -DACN_CUDA_EMU tests/test_cuda.c -o "$B/test_cuda_emu" 2> "$B/log" &&
    g++ $WARN -O1 -x c++ -DACN_CUDA -DACN_CUDA_EMU tests/test_cuda.c -o "$B/test_cuda_emu_cxx" -lm 2>> "$B/log"; then
    suite "GPU contexts against CPU contexts, on the emulated GPU (kernels; MLP, Mixer, ViT, BERT in 4 wirings; a graph of ops)" "$B/test_cuda_emu"
    suite "the same, built as C++" "$B/test_cuda_emu_cxx"
    if $CC -std=c99 $WARN -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -DACN_CUDA -DACN_CUDA_EMU tests/test_cuda.c -o "$B/san_cuda_emu" -lm 2> "$B/log"; then
        suite "the same, under AddressSanitizer and UndefinedBehaviorSanitizer" "$B/san_cuda_emu"
    else
        bad "build test_cuda (emulated) with sanitizers" "$B/log"
    fi
else
    bad "build test_cuda with the emulated GPU" "$B/log"
fi
suite "train_mixer and train_bert --device cuda on the emulated GPU: the CPU's logs; the checkpoint resumes on the CPU" \
    tests/test_cuda_programs.sh "$B/cuda_programs"
# CI has nvcc but no GPU: there this builds and links everything (the check), and the
# tests report that they skipped; tests/gpu_check.sh runs them on a GPU machine
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
if [ -x "$NVCC" ] || command -v "$NVCC" > /dev/null 2>&1; then
    if make -s cuda NVCC="$NVCC" CC="$CC" > "$B/log" 2>&1; then
        ok "make cuda: acn_cuda.cu with nvcc -Werror (sm_90 and PTX), tests/test_cuda.c as C and C++ and the training programs, linked"
        build/cuda/test_cuda > "$B/out" 2>&1
        if grep -q '^no CUDA device: skipped' "$B/out"; then
            echo "  skip  the GPU tests: $(head -n 1 "$B/out")"
        else
            suite "the GPU against the CPU, kernel by kernel" build/cuda/test_cuda
            suite "the same, built as C++" build/cuda/test_cuda_cxx
        fi
    else
        bad "make cuda" "$B/log"
    fi
else
    echo "  skip  the GPU unit: no nvcc at $NVCC (the CUDA toolkit is not a Debian package; set NVCC)"
fi

echo "== data parallel over processes (acn_dist_*, ACN_MPI)"
if build tests/test_dist.c -o "$B/test_dist_alone" 2> "$B/log"; then suite "alone (no ACN_MPI): the calls change nothing" "$B/test_dist_alone"; else bad "build test_dist" "$B/log"; fi
# Open MPI on loopback only; as root (CI) it must be told that is fine
MPIRUN="mpirun --allow-run-as-root --oversubscribe --mca btl self,vader --mca oob_tcp_if_include lo"
if command -v mpicc > /dev/null && command -v mpirun > /dev/null; then
    step "mpicxx $WARN -DACN_MPI, acn.h first (C++)" mpicxx $WARN -DACN_MPI -I. -c "$B/first.cpp" -o "$B/first_mpi.o"
    if OMPI_CC=$CC mpicc -std=c99 -pedantic $WARN -O2 -g -DACN_MPI tests/test_dist.c -o "$B/test_dist" -lm 2> "$B/log"; then
        for n in 1 2 3; do
            suite "$n rank(s) against one process: losses, weights, bit-equal ranks and reruns, an error on one rank stops all" timeout 120 $MPIRUN -np $n "$B/test_dist"
        done
        if make -s examples mpi CC="$CC" > "$B/log" 2>&1; then
            suite "train_mixer and train_bert on 2 ranks: as 1 process, bit-equal reruns, SIGINT, resume on 1, a failing rank" tests/test_mpi.sh build build/mpi
        else
            bad "make mpi" "$B/log"
        fi
    else
        bad "build test_dist with mpicc -DACN_MPI" "$B/log"
    fi
elif [ "${ACN_REQUIRE_MPI:-0}" = 1 ]; then
    bad "MPI: mpicc or mpirun not installed, and ACN_REQUIRE_MPI=1 (apt-get install openmpi-bin libopenmpi-dev)"
else
    echo "  skip  MPI: mpicc or mpirun not installed (apt-get install openmpi-bin libopenmpi-dev)"
fi

echo "== every SIMD level and thread count"
# The kernels are chosen at run time; each level the CPU has runs the suites
# that exercise them, on one thread and on two.
for simd in portable avx2 avx512; do
    for threads in 1 2; do
        export ACN_SIMD=$simd ACN_THREADS=$threads
        have=$(printf '#define ACN_IMPLEMENTATION\n#include "acn.h"\n#include <stdio.h>\nint main(void){acn_ctx *c; acn_ctx_new(&c, 0); puts(acn_simd_name(acn_simd(c))); return 0;}\n' |
               $CC -std=c99 -x c - -I. -o "$B/level" -lm && "$B/level")
        if [ "$have" != "$simd" ]; then echo "  skip  $simd: this CPU runs $have at most"; continue; fi
        suite "core ($simd, threads=$threads)" "$B/test_core"
        suite "torch parity ($simd, threads=$threads)" "$B/test_torch" tests/ref
        suite "models ($simd, threads=$threads)" "$B/test_models" tests/reference
        suite "train ($simd, threads=$threads)" "$B/test_train"
    done
done
unset ACN_SIMD ACN_THREADS
step "portable build: -DACN_NO_SIMD -DACN_NO_THREADS" sh -c "$CC -std=c99 -pedantic $WARN -O2 -DACN_NO_SIMD -DACN_NO_THREADS tests/test_models.c -o $B/test_models_portable -lm && $B/test_models_portable tests/reference > $B/portable.log 2>&1 && tail -n 1 $B/portable.log | grep -q ' 0 failed'"

echo "== under AddressSanitizer and UndefinedBehaviorSanitizer"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
for t in core gradcheck torch models train data misuse; do
    if $CC -std=c99 $WARN -O1 -g $SAN tests/test_$t.c -o "$B/san_$t" -lm 2> "$B/log"; then :; else bad "build test_$t with sanitizers" "$B/log"; continue; fi
    case $t in
        torch) suite "$t (sanitized)" "$B/san_$t" tests/ref ;;
        models) suite "$t (sanitized)" "$B/san_$t" tests/reference ;;
        *) suite "$t (sanitized)" "$B/san_$t" ;;
    esac
done
# the fuzz targets without libFuzzer (tests/fuzz/replay.c): every committed seed and crash input
# (gcc's -fsanitize=undefined leaves out float-to-int casts out of range; clang's has them)
if $CC -std=c99 $WARN -O1 -g $SAN -fsanitize=float-cast-overflow tests/fuzz/replay.c -o "$B/replay" -lm 2> "$B/log"; then
    for t in safetensors checkpoint cifar idx csv tsv; do
        files=$(find tests/fuzz/corpus/$t tests/fuzz/crashes/$t -type f 2> /dev/null | sort)
        step "fuzz target $t replays its $(echo $files | wc -w) committed inputs" "$B/replay" $t $files
    done
else
    bad "build tests/fuzz/replay.c with sanitizers" "$B/log"
fi
# the owner check itself must be free of data races: the two-thread case under ThreadSanitizer
if command -v clang > /dev/null && clang -std=c99 $WARN -O1 -g -fsanitize=thread tests/test_misuse.c -o "$B/tsan_misuse" -lm 2> "$B/log"; then
    suite "misuse (ThreadSanitizer)" "$B/tsan_misuse"
else
    bad "build test_misuse with ThreadSanitizer" "$B/log"
fi
if $CC -std=c99 -O1 -g -fsanitize=address tests/asan_overread.c -o "$B/asan_overread" -lm 2> "$B/log"; then
    for where in arena param; do
        what="a read past a tensor's end ($where) is caught by ASan"
        if "$B/asan_overread" $( [ $where = param ] && echo param ) > "$B/log" 2>&1; then
            bad "$what" "$B/log"
        elif grep -q "use-after-poison" "$B/log"; then
            ok "$what"
        else
            bad "$what (no poison report)" "$B/log"
        fi
    done
else
    bad "build asan_overread" "$B/log"
fi

echo "== examples"
step "make examples (-std=c99 -Wall -Wextra -Werror -pedantic)" make -s examples CC="$CC"
step "examples/gradients agrees with the closed forms" build/gradients 12 0.7
step "examples/gradient_paths --steps 16: DG two ways agree; CSV and SVG written" sh -c "{ build/gradient_paths --steps 16 --out $B/paths-out > $B/paths.log 2>&1 || { tail -n 5 $B/paths.log; false; }; } && head -n 1 $B/paths-out/mlp.csv | grep -qx 'step,wiring,block,dg_norm,fg_norm,total_norm' && [ \$(wc -l < $B/paths-out/mlp.csv) -eq 181 ] && [ \$(wc -l < $B/paths-out/mixer.csv) -eq 121 ] && grep -q '^16,acn,12,' $B/paths-out/mlp.csv && grep -q '^0,plain,1,0,' $B/paths-out/mlp.csv && $PYTHON -c 'import sys, xml.etree.ElementTree as E; assert all(E.parse(f).getroot().tag.endswith(\"svg\") for f in sys.argv[1:])' $B/paths-out/mlp.svg $B/paths-out/mixer.svg"
step "examples/models --model mlp --wiring residual" sh -c 'build/models --model mlp --wiring residual | grep -q "211082 parameters"'
step "examples/models refuses a bad flag" sh -c '! build/models --wiring dense 2> /dev/null' 

echo "== the training programs: exact resume after SIGINT, NaN, bad input"
suite "train_mixer, train_vit, train_bert" tests/test_programs.sh build
mkdir -p "$B/san_programs"
if (for p in train_mixer train_vit train_bert compress continual; do
        $CC -std=c99 $WARN -O1 -g $SAN examples/$p.c -o "$B/san_programs/$p" -lm || exit 1
    done) 2> "$B/log"; then
    suite "the same, under AddressSanitizer and UndefinedBehaviorSanitizer" tests/test_programs.sh "$B/san_programs"
else
    bad "build the training programs with sanitizers" "$B/log"
fi

echo "== the teaching page: acn.h in WebAssembly, trained in headless Chromium"
# make web needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32; the browser test needs
# chromium and node (tests/web/page_test.mjs drives Chromium over the DevTools protocol itself).
# Skipped with a message when missing, unless ACN_REQUIRE_WEB=1 (CI installs them all).
web_missing=""
command -v chromium > /dev/null || web_missing="$web_missing chromium"
command -v node > /dev/null || web_missing="$web_missing node"
if make -s web > "$B/log" 2>&1; then
    ok "make web (clang --target=wasm32-wasi)"
    if [ -z "$web_missing" ]; then
        WEB_SET="8 64 0.002 1" # depth, width, learning rate, seed; 200 steps
        build -DACN_NO_SIMD -DACN_NO_THREADS -DACN_WEB_MAIN examples/web/acn_web.c -o "$B/web_native" 2> "$B/log.native" || bad "build examples/web/acn_web.c natively" "$B/log.native"
        "$B/web_native" $WEB_SET 200 > "$B/web_native.txt" 2>&1
        if timeout 300 node tests/web/page_test.mjs build/web build/web-screenshot.png 200 $WEB_SET > "$B/web_page.json" 2> "$B/web_page.log"; then
            ok "the page trains 200 steps in headless Chromium (screenshot: build/web-screenshot.png)"
            step "the page's losses and probe accuracies are the native build's (-DACN_NO_SIMD -DACN_NO_THREADS), and no console error" "$PYTHON" tests/web/compare.py "$B/web_page.json" "$B/web_native.txt"
        else
            bad "the page in headless Chromium" "$B/web_page.log"
        fi
    elif [ "${ACN_REQUIRE_WEB:-0}" = 1 ]; then
        bad "the browser test: missing$web_missing, and ACN_REQUIRE_WEB=1"
    else
        echo "  skip  the browser test: missing$web_missing"
    fi
elif [ "${ACN_REQUIRE_WEB:-0}" = 1 ] || [ -d /usr/share/wasi-sysroot ]; then
    bad "make web" "$B/log"
else
    echo "  skip  make web: no WebAssembly toolchain (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)"
fi

echo "== make demo, end to end (fewer epochs, 3 seeds)"
if build/demo --epochs 4 --seeds 3 --seed 7 --out "$B/demo-out" > "$B/demo.log" 2>&1; then
    ok "demo runs ($(grep -c '^ *[0-9]* ' "$B/demo.log") numbered rows)"
else
    bad "demo" "$B/demo.log"
fi
# the output's tables agree with each other: per-seed rows, medians and ranges, counts of the comparisons
step "demo: per-seed rows, probe and gradient tables, summary medians, ranges and seed counts agree" "$PYTHON" -c '
import re, sys, statistics as st
t = open(sys.argv[1]).read()
L, seeds, names = 12, [7, 8, 9], ["plain", "residual", "ACN"]
rows = {int(m[0]): [(None if m[i] == "-" else int(m[i]), float(m[i + 1])) for i in (1, 3, 5)] for m in
        re.findall(r"^ +(\d+) +(\d+|-) +([\d.]+)% +(\d+|-) +([\d.]+)% +(\d+|-) +([\d.]+)%$", t, re.M)}
assert sorted(rows) == seeds, rows
for r in rows.values():
    for need, acc in r:
        assert 0 <= acc <= 100 and (need is None) == (acc < 50) and (need is None or 0 <= need <= L), r
probe = re.findall(r"^ *(\d+) +([\d.]+) +([\d.]+) +([\d.]+)$", t.split("after k blocks, median")[1].split("Gradient")[0], re.M)
assert [int(p[0]) for p in probe] == list(range(L + 1)) and all(0 <= float(x) <= 100 for p in probe for x in p[1:]), probe
assert all(float(probe[L][1 + w]) == st.median(rows[s][w][1] for s in seeds) for w in range(3)), probe[L]
g = re.findall(r"^ *(\d+)((?: +\d\.\d\de[-+]\d\d){6})$", t, re.M)
assert [int(x[0]) for x in g] == list(range(1, L + 1)) and all(float(v) > 0 for x in g for v in x[1].split()), g
for w, name in enumerate(names):
    m = re.search(r"^  %s +(\S+) \[(\S+)-(\S+)\](?: \((\d) seeds?\))? +([\d.]+) \[([\d.]+)-([\d.]+)\]$" % name, t, re.M)
    need = [rows[s][w][0] for s in seeds if rows[s][w][0] is not None]
    acc = [rows[s][w][1] for s in seeds]
    if need:
        assert (float(m[1]), float(m[2]), float(m[3])) == (st.median(need), min(need), max(need)), (name, m and m[0])
    assert abs(float(m[5]) - st.median(acc)) < 0.051 and (float(m[6]), float(m[7])) == (min(acc), max(acc)), m[0]
for a, b in ((2, 1), (2, 0), (1, 0)):
    both = [s for s in seeds if rows[s][a][0] is not None and rows[s][b][0] is not None]
    f = sum(rows[s][a][0] < rows[s][b][0] for s in both); e = sum(rows[s][a][0] == rows[s][b][0] for s in both)
    line = "  %s needed fewer blocks than %s in %d of %d seeds (as many in %d, more in %d): " % (
        names[a], names[b], f, len(both), e, len(both) - f - e)
    verdict = "in every seed" if f == len(both) else "in none; more in every seed" if f + e == 0 else "not consistent over the seeds"
    assert line + verdict in t, (line + verdict, t[-1500:])
' "$B/demo.log"
for f in probe_accuracy grad_norms_plain grad_norms_residual grad_norms_acn; do
    step "demo-out/$f.svg is well-formed SVG" "$PYTHON" -c "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); assert r.tag.endswith('svg') and len(list(r.iter())) > 20" "$B/demo-out/$f.svg"
done
step "demo: the three heat maps share one labelled colour scale (every text but the title the same)" "$PYTHON" -c '
import sys, xml.etree.ElementTree as E
def texts(p):
    r = E.parse(p).getroot()
    cells = [e for e in r.iter() if e.tag.endswith("rect") and e.get("width") != "18" and e.get("fill", "").startswith("rgb")]
    assert len(cells) == 12 * 4, len(cells)  # 12 blocks x 4 epochs
    return [e.text for e in r.iter() if e.tag.endswith("text")][1:]
a, b, c = (texts(sys.argv[1] + "/grad_norms_%s.svg" % w) for w in ("plain", "residual", "acn"))
assert a == b == c, (a, b, c)
assert any("log scale" in s for s in a) and sum(1 for s in a if s[:1].isdigit()) > 12 + 4, a
' "$B/demo-out"
step "demo: the same output on 1 and 2 threads" sh -c '
for t in 1 2; do ACN_THREADS=$t build/demo --seeds 2 --epochs 2 --depth 4 --out "$1/demo-t$t" | grep -v "done in" | sed "s|$1/demo-t$t||" > "$1/demo-t$t.log" || exit 1; done
cmp "$1/demo-t1.log" "$1/demo-t2.log" && for f in "$1"/demo-t1/*.svg; do cmp "$f" "$1/demo-t2/${f##*/}" || exit 1; done' sh "$B"
step "demo refuses a bad flag" sh -c '! build/demo --epochs 2> /dev/null && ! build/demo --seeds 0 2> /dev/null'

echo "== README.md quick start, compiled as written"
awk '/^## Quick start/{q=1} q && /^```c$/{c=1; next} c && /^```$/{exit} c' README.md > "$B/quickstart.c"
if [ -s "$B/quickstart.c" ] && sed 's|#include "../acn.h" .*|#include "acn.h"|' examples/quickstart.c | cmp -s "$B/quickstart.c" -; then
    ok "README.md quick start is examples/quickstart.c"
else
    bad "README.md quick start differs from examples/quickstart.c"
fi
if cp "$B/quickstart.c" "$B/readme.c" && $CC -std=c99 -pedantic $WARN -O2 -I. "$B/readme.c" -o "$B/readme" -lm 2> "$B/log" &&
   "$B/readme" > "$B/log" 2>&1 && grep -q "^final loss 0\.0" "$B/log"; then
    ok "README.md quick start builds, runs and learns XOR ($(tail -n 1 "$B/log"))"
else
    bad "README.md quick start" "$B/log"
fi

echo "== PyTorch references, regenerated"
if "$PYTHON" -c "import torch" > /dev/null 2>&1; then
    if "$PYTHON" tests/ref/make_refs.py "$B/ref" > "$B/log" 2>&1; then
        ok "make_refs.py ($("$PYTHON" -c 'import torch; print("torch", torch.__version__)'))"
        suite "torch parity (fresh references)" "$B/test_torch" "$B/ref"
    else
        bad "make_refs.py" "$B/log"
    fi
    # the small models again, and the paper's CIFAR-10 Mixer (2,527,002 parameters, 50 MB of
    # references: made here, never committed)
    if "$PYTHON" tests/reference/models.py "$B/reference" small > "$B/log" 2>&1 &&
       "$PYTHON" tests/reference/models.py "$B/paper" paper >> "$B/log" 2>&1; then
        ok "models.py: small models and the paper Mixer"
        suite "models vs torch (fresh references, with the paper Mixer)" "$B/test_models" "$B/reference" "$B/paper"
    else
        bad "models.py" "$B/log"
    fi
    # AutoAugment against torchvision, from a freshly written reference file
    if "$PYTHON" -c "import torchvision" > /dev/null 2>&1; then
        if "$PYTHON" tests/ref/make_aa_refs.py "$B/ref" > "$B/log" 2>&1; then
            ok "make_aa_refs.py ($("$PYTHON" -c 'import torchvision; print("torchvision", torchvision.__version__)'))"
            suite "data and AutoAugment (fresh references)" "$B/test_data" "$B/ref"
        else
            bad "make_aa_refs.py" "$B/log"
        fi
    elif [ "${ACN_REQUIRE_TORCH:-0}" = 1 ]; then
        bad "torchvision is required (ACN_REQUIRE_TORCH=1) but $PYTHON cannot import it; install python3-torchvision"
    else
        echo "  skip  $PYTHON has no torchvision (apt-get install python3-torchvision); the committed AutoAugment references were used"
    fi
    # PyTorch loads acn.h checkpoints (strict=True) and reproduces acn.h's logits
    mkdir -p "$B/interop"
    if build tests/interop.c -o "$B/interop_write" 2> "$B/log" && "$B/interop_write" "$B/interop" > "$B/log" 2>&1; then
        suite "checkpoints load in PyTorch" "$PYTHON" tests/interop_check.py "$B/interop"
    else
        bad "interop: writing the checkpoints" "$B/log"
    fi
elif [ "${ACN_REQUIRE_TORCH:-0}" = 1 ]; then
    bad "PyTorch is required (ACN_REQUIRE_TORCH=1) but $PYTHON cannot import torch; install python3-torch"
else
    echo "  skip  $PYTHON has no torch (apt-get install python3-torch); the committed references were used"
fi

echo "total: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
