#!/usr/bin/env python3
"""Write a small CIFAR-10-format data set for the training-program tests.

Usage: tiny_cifar.py OUTDIR [PER_FILE]
Writes OUTDIR/data_batch_1..5.bin and OUTDIR/test_batch.bin, PER_FILE records
each (default 64): 1 label byte, then 3 x 32 x 32 pixel bytes. Image i has
label i % 10 and a plain colour that depends on its label, plus noise, so a
model can learn it. Pure Python, deterministic.
"""
import os
import random
import sys


def record(rng, label):
    base = [(label * 25 + 20) % 256, (label * 70 + 40) % 256, (label * 110 + 90) % 256]
    out = bytearray([label])
    for c in range(3):
        out += bytes(max(0, min(255, base[c] + rng.randint(-40, 40))) for _ in range(1024))
    return out


def main():
    outdir = sys.argv[1]
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(5)
    names = ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]
    for k, name in enumerate(names):
        with open(os.path.join(outdir, name), "wb") as f:
            for i in range(per):
                f.write(record(rng, (k * per + i) % 10))


if __name__ == "__main__":
    main()
