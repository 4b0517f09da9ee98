#!/usr/bin/env bash
# make bench-cpu: acn.h against PyTorch and OpenBLAS on this machine's CPU, side by side in one run.
#
# 1. The peer at its best. OpenBLAS picks its kernels by the CPU it recognises and falls back silently
#    (to a generic kernel on a CPU it does not know), and its settings come from the environment when it
#    loads. For the environment's OPENBLAS_CORETYPE, for none, and for each of Haswell SkylakeX Cooperlake
#    Zen, with OPENBLAS_L2_SIZE as the environment has it and unset, one process reports the kernel
#    OpenBLAS loaded, checks a small sgemm against float64 (a wrong result or a crash rules the setting
#    out) and times a 2048^3 sgemm on 1 and on 2 threads. The fastest correct setting is kept for every
#    PyTorch and OpenBLAS run that follows; its best sgemm rate is the machine's ceiling.
# 2. Training steps. For the paper's Mixer and a small ViT (batch 64; forward, loss, backward, clipping,
#    AdamW), the acn.h program and the PyTorch reference module run in alternating processes, REPS times
#    each (default 5), each a warm-up step then STEPS timed steps (default 5); PyTorch at 1 and at 2
#    threads, its better kept. Both start from the same weights and batch (acn.h writes them; PyTorch
#    loads them with strict=True) and must report the same first-step loss.
# 3. acn.h's matrix kernel against OpenBLAS's sgemm on every product of one Mixer step.
# 4. make demo's wall time with ACN_THREADS=1 and 2, alternating, DEMO_REPS times each (default 3).
# Before each acn.h Mixer run and each pair of demo runs, a cache line's round trip between the two
# cores (bench_acn roundtrip): the host may place the two vCPUs near each other or far apart.
# Prints medians and ends with the summary lines. Tests and CI never change the OpenBLAS settings; only
# this benchmark does, for its own processes.
set -eu
cd "$(dirname "$0")/../.."
B=build/bench
PY=${PYTHON:-/usr/bin/python3}
REPS=${REPS:-5}
STEPS=${STEPS:-5}
DEMO_REPS=${DEMO_REPS:-3}
mkdir -p "$B"
"$PY" -c "import torch" 2> /dev/null || { echo "bench-cpu needs PyTorch: apt-get install python3-torch libopenblas0-pthread" >&2; exit 1; }
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Werror tests/bench/bench_acn.c -o "$B/bench_acn" -lm
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Werror -pedantic examples/demo.c -o "$B/demo" -lm
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
fms="family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
echo "machine: $cpu ($fms), $(nproc) cores; torch $("$PY" -c 'import torch; print(torch.__version__)');" \
     "environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-unset}"

# ---- 1. OpenBLAS: the fastest correct setting -------------------------------------------------------
# with_blas CORE L2 CMD...: CMD with OPENBLAS_CORETYPE=CORE and OPENBLAS_L2_SIZE=L2 ("unset": neither set)
with_blas() {
    local core=$1 l2=$2 unset=() set=()
    shift 2
    if [ "$core" = unset ]; then unset+=(-u OPENBLAS_CORETYPE); else set+=("OPENBLAS_CORETYPE=$core"); fi
    if [ "$l2" = unset ]; then unset+=(-u OPENBLAS_L2_SIZE); else set+=("OPENBLAS_L2_SIZE=$l2"); fi
    env ${unset[@]+"${unset[@]}"} ${set[@]+"${set[@]}"} "$@"   # (env takes its options first)
}
env_core=${OPENBLAS_CORETYPE-unset}
env_l2=${OPENBLAS_L2_SIZE-unset}
echo
echo "== OpenBLAS settings (2048^3 sgemm, GFLOP/s; best of 3)"
printf '%-12s %-8s %-14s %-8s %10s %10s\n' CORETYPE L2_SIZE loaded correct 1-thread 2-thread
best="" best_gf=0 seen=""
for core in "$env_core" unset Haswell SkylakeX Cooperlake Zen; do
    for l2 in "$env_l2" unset; do
        key="$core/$l2"
        case " $seen " in *" $key "*) continue ;; esac
        seen="${seen:-} $key"
        if out=$(with_blas "$core" "$l2" timeout 300 "$B/bench_acn" calibrate 2> /dev/null); then
            set -- $out
            name=$2 ok=$4 g1=$8 g2=${10}
        else
            name="(crashed)" ok=0 g1=0 g2=0
        fi
        printf '%-12s %-8s %-14s %-8s %10s %10s\n' "$core" "$l2" "$name" "$ok" "$g1" "$g2"
        if [ "$ok" = 1 ]; then
            g=$(echo "$g1 $g2" | awk '{print ($1 > $2) ? $1 : $2}')
            if awk -v a="$g" -v b="$best_gf" 'BEGIN { exit !(a > b) }'; then
                best="$core $l2 $name $g1 $g2" best_gf=$g
            fi
        fi
    done
done
[ -n "$best" ] || { echo "no OpenBLAS setting computed a correct sgemm" >&2; exit 1; }
set -- $best
keep_core=$1 keep_l2=$2 keep_name=$3 keep_g1=$4 keep_g2=$5
echo "kept: OPENBLAS_CORETYPE=$keep_core OPENBLAS_L2_SIZE=$keep_l2 ($keep_name); ceiling $best_gf GFLOP/s"
if [ "$keep_core" = unset ]; then unset OPENBLAS_CORETYPE; else export OPENBLAS_CORETYPE=$keep_core; fi
if [ "$keep_l2" = unset ]; then unset OPENBLAS_L2_SIZE; else export OPENBLAS_L2_SIZE=$keep_l2; fi

# ---- 2. training steps, side by side ----------------------------------------------------------------
echo
echo "== training steps (batch 64), alternating processes, $REPS repetitions"
# (before each acn.h run of the Mixer, the kept OpenBLAS setting's sgemm rate again: the shared machine's
# speed drifts by tens of per cent over minutes, so each repetition's step is set against the ceiling
# measured beside it, as well as against the calibration's)
rm -f "$B/ceilings" "$B/roundtrips"
for model in mixer vit; do
    "$B/bench_acn" init $model "$B"
    rm -f "$B/$model".acn "$B/$model".torch1 "$B/$model".torch2
    for r in $(seq "$REPS"); do
        if [ $model = mixer ]; then
            "$B/bench_acn" calibrate >> "$B/ceilings"
            "$B/bench_acn" roundtrip >> "$B/roundtrips"
        fi
        "$B/bench_acn" run $model "$B" "$STEPS" >> "$B/$model.acn"
        "$PY" tests/bench/bench_torch.py $model "$B" "$STEPS" 1 >> "$B/$model.torch1"
        "$PY" tests/bench/bench_torch.py $model "$B" "$STEPS" 2 >> "$B/$model.torch2"
    done
done

# ---- 3. the matrix kernel ---------------------------------------------------------------------------
echo
"$B/bench_acn" gemm | tee "$B/gemm"

# ---- 4. make demo at 1 and 2 threads ----------------------------------------------------------------
rm -f "$B/demo.times" "$B/demo.roundtrips"
for r in $(seq "$DEMO_REPS"); do
    "$B/bench_acn" roundtrip >> "$B/demo.roundtrips"
    for t in 1 2; do
        t0=$(date +%s.%N)
        ACN_THREADS=$t "$B/demo" --out "$B/demo-out" > /dev/null
        echo "$t $(echo "$(date +%s.%N) $t0" | awk '{printf "%.2f", $1 - $2}')" >> "$B/demo.times"
    done
done

"$PY" - "$B" "$cpu" "$keep_core" "$keep_name" "$keep_g1" "$keep_g2" <<'PYEOF'
import statistics, sys
B, cpu, core, name, g1, g2 = sys.argv[1:7]
ceiling = max(float(g1), float(g2))
MIXER_GFLOP_PER_IMAGE = 1.025  # forward and backward of the paper's Mixer (docs/performance.md)

def runs(path):
    return [dict(zip(l.split()[0::2], l.split()[1::2])) for l in open(path) if l.strip()]

def summary(model):
    acn = runs("%s/%s.acn" % (B, model))
    torch = {t: runs("%s/%s.torch%d" % (B, model, t)) for t in (1, 2)}
    med = lambda rows, k: statistics.median(float(r[k]) for r in rows)
    ips = lambda rows: statistics.median(64.0 / float(r["median_s"]) for r in rows)
    best = max((1, 2), key=lambda t: ips(torch[t]))
    la, lt = float(acn[0]["first_loss"]), float(torch[best][0]["first_loss"])
    print("%s: acn.h %.1f img/s (%s, %s threads), rss %.0f MB | PyTorch %.1f img/s at 1 thread, %.1f at 2; "
          "best %d, rss %.0f MB | first-step loss %.6f vs %.6f"
          % (model, ips(acn), acn[0]["simd"], acn[0]["threads"], med(acn, "rss_mb"), ips(torch[1]), ips(torch[2]),
             best, med(torch[best], "rss_mb"), la, lt))
    if abs(la - lt) > 1e-3 * abs(lt):
        print("ERROR: the first-step losses differ: the two sides do not run the same model")
        sys.exit(1)
    return ips(acn), ips(torch[best]), med(acn, "rss_mb"), med(torch[best], "rss_mb")

print()
va, vt, _, _ = summary("vit")
ma, mt, ra, rt = summary("mixer")
beside = [max(float(l.split()[7]), float(l.split()[9])) for l in open(B + "/ceilings") if l.strip()]
step_rates = [64.0 / float(r["median_s"]) * MIXER_GFLOP_PER_IMAGE for r in runs(B + "/mixer.acn")]
if len(beside) != len(step_rates) or min(beside) <= 0.0:
    print("ERROR: a ceiling measured beside a repetition is missing or zero: %s" % beside)
    sys.exit(1)
paired = statistics.median(g / c for g, c in zip(step_rates, beside))
print("mixer: GFLOP/s of each repetition %s; the sgemm ceiling measured just before each %s"
      % ([round(g, 1) for g in step_rates], [round(c, 1) for c in beside]))
rts = [float(l.split()[1]) for l in open(B + "/roundtrips") if l.startswith("roundtrip_ns")]
print("mixer: each repetition's fraction %s; the two cores' cache-line round trip before each %s ns"
      % ([round(g / c, 3) for g, c in zip(step_rates, beside)], [int(r) for r in rts]))
frac = [l.split()[1] for l in open(B + "/gemm") if l.startswith("gemm_fraction")][0]
demo = {1: [], 2: []}
for l in open(B + "/demo.times"):
    t, s = l.split()
    demo[int(t)].append(float(s))
print("demo wall seconds, 1 thread: %s; 2 threads: %s; the cores' round trip before each pair %s ns"
      % (demo[1], demo[2], [int(float(l.split()[1])) for l in open(B + "/demo.roundtrips") if l.strip()]))
print()
print("cpu_model: %s" % cpu)
r0 = runs(B + "/mixer.acn")[0]
print("acn_blocks: L1d %s KB, L2 %s KB (acn_cache): kc %s, kc_long %s, nc %s, prefetch %s"
      % (r0.get("l1d_kb"), r0.get("l2_kb"), r0.get("kc"), r0.get("kc_long"), r0.get("nc"), r0.get("prefetch")))
print("openblas_coretype: %s corename: %s sgemm_gflops_1t: %s sgemm_gflops_2t: %s" % (core, name, g1, g2))
print("vit_train_img_per_s: %.1f pytorch: %.1f" % (va, vt))
print("vit_speedup_vs_pytorch: %.2f" % (va / vt))
print("mixer_train_img_per_s: %.1f pytorch: %.1f" % (ma, mt))
print("speedup_vs_pytorch: %.2f" % (ma / mt))
print("mixer_fraction_of_sgemm_ceiling: %.3f" % paired)
print("mixer_fraction_of_calibration_ceiling: %.3f (median step against the calibration's best, %.1f GFLOP/s)"
      % (ma * MIXER_GFLOP_PER_IMAGE / ceiling, ceiling))
print("gemm_fraction_of_openblas: %s" % frac)
print("peak_rss_ratio_vs_pytorch: %.2f" % (ra / rt))
print("demo_seconds_1t: %.2f demo_seconds_2t: %.2f" % (statistics.median(demo[1]), statistics.median(demo[2])))
PYEOF
