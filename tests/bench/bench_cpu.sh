#!/usr/bin/env bash
# make bench-cpu: acn.h against PyTorch on this machine's CPU, side by side in one run.
#
# For the paper's Mixer and a small ViT (batch 64; forward, loss, backward, clipping, AdamW), the
# acn.h program and the PyTorch reference module run in alternating processes, REPS times each
# (default 5), each a warm-up step then STEPS timed steps (default 5); PyTorch at 1 and at 2 threads,
# its better kept. Both start from the same weights and batch (acn.h writes them; PyTorch loads them
# with strict=True) and must report the same first-step loss. Then acn.h's matrix kernel against
# OpenBLAS's sgemm on every product of one Mixer step. Prints medians and ends with the summary lines.
set -eu
cd "$(dirname "$0")/../.."
B=build/bench
PY=${PYTHON:-/usr/bin/python3}
REPS=${REPS:-5}
STEPS=${STEPS:-5}
mkdir -p "$B"
"$PY" -c "import torch" 2> /dev/null || { echo "bench-cpu needs PyTorch: apt-get install python3-torch libopenblas0-pthread" >&2; exit 1; }
${CC:-cc} -std=c99 -O2 -Wall -Wextra -Werror tests/bench/bench_acn.c -o "$B/bench_acn" -lm
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
     "torch $("$PY" -c 'import torch; print(torch.__version__)');" \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for model in mixer vit; do
    "$B/bench_acn" init $model "$B"
    rm -f "$B/$model".acn "$B/$model".torch1 "$B/$model".torch2
    for r in $(seq "$REPS"); do
        "$B/bench_acn" run $model "$B" "$STEPS" >> "$B/$model.acn"
        "$PY" tests/bench/bench_torch.py $model "$B" "$STEPS" 1 >> "$B/$model.torch1"
        "$PY" tests/bench/bench_torch.py $model "$B" "$STEPS" 2 >> "$B/$model.torch2"
    done
done
"$B/bench_acn" gemm | tee "$B/gemm"
"$PY" - "$B" <<'PYEOF'
import statistics, sys
B = sys.argv[1]

def runs(path):
    rows = [dict(zip(l.split()[0::2], l.split()[1::2])) for l in open(path) if l.strip()]
    return rows

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

va, vt, _, _ = summary("vit")
ma, mt, ra, rt = summary("mixer")
frac = [l.split()[1] for l in open(B + "/gemm") if l.startswith("gemm_fraction")][0]
print("vit_train_img_per_s: %.1f pytorch: %.1f" % (va, vt))
print("mixer_train_img_per_s: %.1f pytorch: %.1f" % (ma, mt))
print("speedup_vs_pytorch: %.2f" % (ma / mt))
print("gemm_fraction_of_openblas: %s" % frac)
print("peak_rss_ratio_vs_pytorch: %.2f" % (ra / rt))
PYEOF
