#!/usr/bin/env python3
"""Compare the tensors of two safetensors files (float32 only, metadata ignored).

    st_compare.py A B TOL [EXCLUDE]
        exit 0 when ||a - b|| / ||b|| <= TOL over all tensors together (TOL 0: every tensor bit
        for bit), leaving out tensors whose names match the regular expression EXCLUDE, and
        print the figure (and, with EXCLUDE, the figure over every tensor)

Plain Python: no numpy or torch needed.
"""
import json, math, re, struct, sys


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    head.pop("__metadata__", None)
    out = {}
    for name, e in head.items():
        a, b = e["data_offsets"]
        assert e["dtype"] == "F32", (name, e["dtype"])
        out[name] = body[a:b]
    return out


def main():
    a, b, tol = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
    if sorted(a) != sorted(b):
        print("the files hold other tensors: %s" % sorted(set(a) ^ set(b)))
        return 1
    if len(sys.argv) > 4:
        every = rel_diff(a, b, list(a))
        keep = [k for k in a if not re.search(sys.argv[4], k)]
        rel = rel_diff(a, b, keep)
        print("relative difference %.3g without %s (%d of %d tensors), %.3g with (tolerance %g)" % (
            rel, sys.argv[4], len(keep), len(a), every, tol))
        return 0 if rel <= tol else 1
    if tol == 0:
        diff = [k for k in a if a[k] != b[k]]
        print("bit for bit: %s" % ("equal" if not diff else "%d of %d tensors differ, e.g. %s" % (len(diff), len(a), diff[0])))
        return 1 if diff else 0
    rel = rel_diff(a, b, list(a))
    print("relative difference %.3g (tolerance %g)" % (rel, tol))
    return 0 if rel <= tol else 1


def rel_diff(a, b, names):
    """||a - b|| / ||b|| over the tensors named, together."""
    d = s = 0.0
    for k in names:
        x = struct.unpack("<%df" % (len(a[k]) // 4), a[k])
        y = struct.unpack("<%df" % (len(b[k]) // 4), b[k])
        d += sum((p - q) * (p - q) for p, q in zip(x, y))
        s += sum(q * q for q in y)
    return math.sqrt(d / s) if s else math.sqrt(d)


if __name__ == "__main__":
    sys.exit(main())
