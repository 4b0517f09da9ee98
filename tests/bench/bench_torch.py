#!/usr/bin/python3
"""The PyTorch side of `make bench-cpu` (tests/bench/bench_cpu.sh drives it).

Usage: /usr/bin/python3 tests/bench/bench_torch.py MODEL DIR STEPS THREADS

Loads the weights acn.h wrote (DIR/MODEL.weights.safetensors) into the reference module of
tests/reference/models.py with strict=True, and the same batch, then runs one warm-up step and STEPS
timed steps of what bench_acn does (forward, cross-entropy with label smoothing 0.1, backward,
clip_grad_norm_ 1.0, AdamW) with torch.set_num_threads(THREADS). Prints the same line as bench_acn:
"first_loss L median_s S rss_mb R".
"""
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import models as M  # noqa: E402
from st import load  # noqa: E402


def load_model(name, d):
    """The reference module of MODEL with the weights acn.h wrote into D (strict=True); also used by
    bench_cuda_torch.py."""
    if name == "vit":
        cfg = dict(image=32, channels=3, patch=4, width=192, depth=6, heads=3, mlp=768, classes=10, ln_eps=1e-6)
        model = M.ViT(cfg)
    else:
        model = M.Mixer(M.PAPER_MIXER)
    model.load_state_dict(load(os.path.join(d, name + ".weights.safetensors")), strict=True)
    return model


def acn_forward(model, name, img):
    """The ACN wiring, as acn.h runs it, without probes."""
    if name == "vit":
        x0 = model.embed(img).flatten(2).transpose(1, 2) + model.pos
    else:
        x0 = model.embed(img).flatten(2).transpose(1, 2)
        x0 = torch.cat([model.cls.expand(x0.shape[0], -1, -1), x0], 1)
    h = s = x0
    for blk in model.blocks:
        h = blk(h, False)
        s = s + h
    return (model.head_fn if name == "vit" else model.head)(s)


def main():
    name, d, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    model = load_model(name, d)
    batch = load(os.path.join(d, name + ".batch.safetensors"))
    x, y = batch["x"], batch["labels"].long()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    def forward(img):
        return acn_forward(model, name, img)

    times, first = [], None
    for step in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(forward(x), y, label_smoothing=0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step == 0:
            first = float(loss)
        else:
            times.append(time.perf_counter() - t0)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("first_loss %.6f median_s %.5f rss_mb %.1f threads %d" % (first, times[len(times) // 2], rss, threads))


if __name__ == "__main__":
    main()
