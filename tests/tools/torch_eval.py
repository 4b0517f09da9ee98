#!/usr/bin/python3
"""Evaluate a train_mixer or train_vit checkpoint in PyTorch, on the test set it was trained for.

Usage: /usr/bin/python3 tests/tools/torch_eval.py CHECKPOINT.safetensors DATA_DIR
The model's settings come from the checkpoint's metadata; the weights load into the reference module
of tests/reference/models.py with strict=True; the test images are normalised as the programs do.
Prints the test accuracy of the head after every block, as train_mixer prints it. Needs python3-torch.
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import models  # noqa: E402
import st  # noqa: E402


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def test_set(data, d):
    """Pixels in [0, 1] (N, C, H, W) and labels, with the programs' normalisation."""
    if data == "fashion":
        raw = open(os.path.join(d, "t10k-images-idx3-ubyte"), "rb").read()[16:]
        y = list(open(os.path.join(d, "t10k-labels-idx1-ubyte"), "rb").read()[8:])
        x = torch.tensor(list(raw), dtype=torch.float32).reshape(-1, 1, 28, 28) / 255
        mean, std = [0.2860], [0.3530]
    else:
        raw = open(os.path.join(d, "test_batch.bin"), "rb").read()
        recs = [raw[i:i + 3073] for i in range(0, len(raw), 3073)]
        y = [r[0] for r in recs]
        x = torch.tensor([list(r[1:]) for r in recs], dtype=torch.float32).reshape(-1, 3, 32, 32) / 255
        mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x - m) / s, torch.tensor(y)


def main():
    path, data_dir = sys.argv[1], sys.argv[2]
    meta = metadata(path)
    c, h, w = (int(v) for v in meta["image"].split(" x "))
    common = dict(image=h, channels=c, patch=int(meta["patch"]), width=int(meta["width"]),
                  depth=int(meta["depth"]), classes=int(meta["classes"]))
    if meta["model"] == "mixer":
        model = models.Mixer(dict(common, token_hidden=int(meta["token_hidden"]),
                                  channel_hidden=int(meta["channel_hidden"]),
                                  textbook=meta["block"] == "textbook", ln_eps=1e-5))
    else:
        model = models.ViT(dict(common, heads=int(meta["heads"]), mlp=int(meta["mlp"]), ln_eps=1e-6))
    model.load_state_dict(st.load(path), strict=True)
    model.eval()
    x, y = test_set(meta["data"], data_dir)
    if meta.get("class_subset", "all") != "all":  # --classes: those classes, labelled by position
        keep = [int(c) for c in meta["class_subset"].split(",")]
        sel = torch.tensor([int(v) in keep for v in y])
        x, y = x[sel], torch.tensor([keep.index(int(v)) for v in y[sel]])
    correct = torch.zeros(int(meta["depth"]) + 1)
    torch.set_num_threads(max(1, os.cpu_count() // 2))
    with torch.no_grad():
        for i in range(0, len(y), 500):
            for k, p in enumerate(model.probes(x[i:i + 500], meta["wiring"])):
                correct[k] += (p.argmax(1) == y[i:i + 500]).sum()
    acc = 100 * correct / len(y)
    print("PyTorch %s: %s, %s wiring, step %s: test accuracy %.2f%%" % (torch.__version__, meta["model"],
                                                                      meta["wiring"], meta["step"], acc[-1]))
    print("  after k blocks: " + "  ".join("%d:%.1f" % (k, a) for k, a in enumerate(acc.tolist())))


if __name__ == "__main__":
    main()
