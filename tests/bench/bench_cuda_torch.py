#!/usr/bin/env python3
"""The PyTorch side of `make bench-cuda` (tests/bench/bench_cuda.sh drives it).

Usage: python3 tests/bench/bench_cuda_torch.py MODEL DIR STEPS BATCH MODE

Loads the weights acn.h wrote (DIR/MODEL.weights.safetensors) into the reference module of
tests/reference/models.py with strict=True, on the GPU, and the 64 images of DIR/MODEL.batch.safetensors,
repeated to BATCH. One step is bench_cuda's: forward in the ACN wiring, cross-entropy with label smoothing
0.1, backward, clip_grad_norm_ 1.0, AdamW (lr 1e-3, betas 0.9 0.999, eps 1e-8, weight decay 0.01). MODE:
  eager   plain PyTorch, AdamW's default implementation
  best    torch.compile(mode="reduce-overhead") of forward, loss and backward (CUDA graphs), AdamW
          with fused=True, clipping with foreach: the fastest settings PyTorch offers for this step
Float32 with TF32 off, as acn.h runs. Three warm-up steps (compile's first calls among them), then STEPS
timed steps, each timed with CUDA events; prints "first_loss L median_s S device NAME torch VERSION".
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import acn_forward, load, load_model  # noqa: E402  (the CPU side's model and forward)


def main():
    name, d, steps, batch, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    model = load_model(name, d).to(dev)
    b = load(os.path.join(d, name + ".batch.safetensors"))
    reps = batch // 64
    x = b["x"].repeat(reps, 1, 1, 1).to(dev)
    y = b["labels"].long().repeat(reps).to(dev)

    def loss_backward(img, labels):
        loss = F.cross_entropy(acn_forward(model, name, img), labels, label_smoothing=0.1)
        loss.backward()
        return loss.detach()

    if mode == "best":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                                fused=True)
        step_fn = torch.compile(loss_backward, mode="reduce-overhead")
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        step_fn = loss_backward
    times, first = [], None
    for step in range(-3, steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        opt.zero_grad(set_to_none=False)
        loss = step_fn(x, y)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        end.record()
        torch.cuda.synchronize()
        if step == -3:
            first = float(loss)
        if step >= 0:
            times.append(start.elapsed_time(end) / 1000.0)
    times.sort()
    print("first_loss %.6f median_s %.6f device %s torch %s" % (first, times[len(times) // 2],
                                                               torch.cuda.get_device_name(0).replace(" ", "_"),
                                                               torch.__version__))


if __name__ == "__main__":
    main()
