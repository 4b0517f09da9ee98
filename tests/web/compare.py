#!/usr/bin/env python3
"""The teaching page's numbers against the native build's (tests/run.sh).

    compare.py PAGE_JSON NATIVE_TXT

PAGE_JSON: the line tests/web/page_test.mjs printed; NATIVE_TXT: what examples/web/acn_web.c built with
-DACN_WEB_MAIN printed for the same settings. Both run the same C code, one compiled to WebAssembly
with wasi-libc (musl's libm), the other natively with -DACN_NO_SIMD -DACN_NO_THREADS (glibc's libm):
the same operations in the same order, and the same results from the two C libraries (acn.h takes erf
in double, where musl and glibc agree; their erff do not, by a last bit that 200 steps of training turn
into other accuracies). So the check is equality: the same steps, every probe accuracy the same, the
losses the same to the 6 decimals printed; and no console error.
"""
import json, sys

page = json.loads(open(sys.argv[1]).read())
native = {}
for line in open(sys.argv[2]):
    f = line.split()
    if f[0] == "probe":
        native.setdefault("probe", []).append([float(x) for x in f[2:]])
    elif f[0] == "loss":
        native["loss"] = [float(x) for x in f[1:]]
    elif f[0] == "steps":
        native["steps"] = int(f[1])
bad = []
if page["steps"] != native["steps"]:
    bad.append("steps: page %s, native %s" % (page["steps"], native["steps"]))
if page["console_errors"]:
    bad.append("console errors: %s" % page["console_errors"])
for n, name in enumerate(("plain", "residual", "ACN")):
    p, q = page["probe"][n], native["probe"][n]
    if len(p) != len(q) or any("%.4f" % a != "%.4f" % b for a, b in zip(p, q)):
        bad.append("%s probes: page %s, native %s" % (name, [round(a, 2) for a in p], q))
    if "%.6f" % page["loss"][n] != "%.6f" % native["loss"][n]:
        bad.append("%s loss: page %.6f, native %.6f" % (name, page["loss"][n], native["loss"][n]))
    print("%-8s loss page %.6f native %.6f; probes after k blocks %s" % (
        name, page["loss"][n], native["loss"][n], " ".join("%.1f" % a for a in p)))
for b in bad:
    print("MISMATCH " + b)
sys.exit(1 if bad else 0)
