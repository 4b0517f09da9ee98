#!/usr/bin/python3
"""PyTorch loads acn.h checkpoints into the reference Mixer with strict=True and reproduces acn.h's
logits, for each wiring (files written by tests/interop.c). Usage: interop_check.py DIR"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import models as M  # noqa: E402
from st import load  # noqa: E402

d = sys.argv[1] if len(sys.argv) > 1 else "build/interop"
cfg = dict(M.MIXER)  # the same small Mixer as tests/interop.c
passed = failed = 0
for wiring in M.WIRINGS:
    model = M.Mixer(cfg)
    model.load_state_dict(load(os.path.join(d, wiring + ".safetensors")), strict=True)
    batch = load(os.path.join(d, wiring + ".batch.safetensors"))
    with torch.no_grad():
        got = model.probes(batch["x"], wiring)[-1]
    err = float((got - batch["logits"]).norm() / batch["logits"].norm())
    ok = err < 1e-4
    passed += ok
    failed += not ok
    print("%-10s PyTorch logits vs acn.h: relative error %.2e %s" % (wiring, err, "ok" if ok else "FAIL"))
print("interop: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
