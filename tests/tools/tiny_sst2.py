#!/usr/bin/env python3
"""Write a small SST-2-format data set for the training-program tests.

Usage: tiny_sst2.py OUTDIR [N_TRAIN]
Writes OUTDIR/train.tsv (N_TRAIN sentences, default 640) and OUTDIR/dev.tsv (120): a header line,
then "label<TAB>sentence" lines of lower-case words separated by spaces, as GLUE ships SST-2. A
sentence's label is 1 when it holds more positive than negative words. Pure Python, deterministic.
"""
import os
import random
import sys

GOOD = ["good", "great", "moving", "funny", "warm", "smart"]
BAD = ["bad", "dull", "flat", "boring", "weak", "messy"]
FILL = ["the", "film", "a", "story", "is", "and", "with", "its", "cast", "plot", "of", "this", "movie", "but"]


def sentence(rng):
    n_good, n_bad = rng.randint(0, 3), rng.randint(0, 3)
    while n_good == n_bad:
        n_good, n_bad = rng.randint(0, 3), rng.randint(0, 3)
    words = [rng.choice(GOOD) for _ in range(n_good)] + [rng.choice(BAD) for _ in range(n_bad)]
    words += [rng.choice(FILL) for _ in range(rng.randint(2, 12))]
    rng.shuffle(words)
    return int(n_good > n_bad), " ".join(words)


def main():
    outdir = sys.argv[1]
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 640
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(11)
    for name, n in (("train.tsv", n_train), ("dev.tsv", 120)):
        with open(os.path.join(outdir, name), "w") as f:
            f.write("label\tsentence\n")
            for _ in range(n):
                label, text = sentence(rng)
                f.write("%d\t%s\n" % (label, text))


if __name__ == "__main__":
    main()
