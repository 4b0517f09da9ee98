#!/usr/bin/python3
"""PyTorch loads acn.h checkpoints into the reference Mixer with strict=True and reproduces acn.h's
logits, for each wiring; and a model cut to 2 blocks (acn_save_cut) loads, with strict=True, into the
module of the depth its metadata names and reproduces acn.h's probe after 2 blocks (files written by
tests/interop.c). Usage: interop_check.py DIR"""
import json
import struct
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
def depth_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return int(json.loads(f.read(n))["__metadata__"]["depth"])


for wiring in M.WIRINGS:
    path = os.path.join(d, wiring + ".cut2.safetensors")
    cut = M.Mixer(dict(cfg, depth=depth_of(path)))
    cut.load_state_dict(load(path), strict=True)
    batch = load(os.path.join(d, wiring + ".batch.safetensors"))
    with torch.no_grad():
        got = cut.probes(batch["x"], wiring)[-1]
    err = float((got - batch["probe2"]).norm() / batch["probe2"].norm())
    ok = err < 1e-4 and len(cut.blocks) == 2
    passed += ok
    failed += not ok
    print("%-10s cut to %d blocks, PyTorch vs acn.h's probe 2: relative error %.2e %s"
          % (wiring, len(cut.blocks), err, "ok" if ok else "FAIL"))
print("interop: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
