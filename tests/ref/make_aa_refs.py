#!/usr/bin/python3
"""Write the AutoAugment reference file that tests/test_data.c compares acn.h against.

Usage: /usr/bin/python3 tests/ref/make_aa_refs.py OUTDIR
Needs Debian's python3-torchvision (0.14, with PIL). Writes
OUTDIR/autoaugment.safetensors:
  policy      (25, 2, 3)  the CIFAR-10 policy: operation, probability, magnitude bin (-1: none)
  magnitudes  (14, 10)    torchvision's magnitude bins for a 32 x 32 image (0 for operations without one)
  signed      (14)        1 where a magnitude is negated half of the time
  images      (2, 3, 32, 32) U8, two test images
  cases       (N, 2)      operation and magnitude of case i
  case.i      (2, 3, 32, 32) U8, the images after torchvision applies case i to each as a PIL image
Operations are numbered as acn.h's ACN_AA_* constants.
"""
import os
import sys

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as A

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from st import save  # noqa: E402

OPS = ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert"]


def images():
    """Two 32 x 32 RGB images: smooth colour fields with noise, one bright and one dim."""
    g = torch.Generator().manual_seed(7)
    out = []
    for lo, hi in ((0.0, 1.0), (0.2, 0.55)):
        coarse = torch.rand((1, 3, 4, 4), generator=g)
        img = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)[0]
        img = img + 0.08 * torch.randn((3, 32, 32), generator=g)
        img = lo + (hi - lo) * img.clamp(0, 1)
        out.append((img * 255).round().clamp(0, 255).to(torch.uint8))
    return torch.stack(out)


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    aa = A.AutoAugment(A.AutoAugmentPolicy.CIFAR10)
    policy = torch.tensor([[[OPS.index(op), p, -1 if b is None else b] for op, p, b in sub] for sub in aa.policies])
    space = aa._augmentation_space(10, (32, 32))
    mags = torch.zeros(len(OPS), 10)
    signed = torch.zeros(len(OPS))
    for i, op in enumerate(OPS):
        m, s = space[op]
        if m.ndim:
            mags[i] = m.to(torch.float32)
        signed[i] = float(s)
    cases = []
    for i, op in enumerate(OPS):
        if i <= OPS.index("Sharpness"):
            cases += [(i, s * float(mags[i, b])) for b in (3, 9) for s in (1, -1)]
        elif op in ("Posterize", "Solarize"):
            cases += [(i, float(mags[i, b])) for b in (2, 5, 8)]
        else:
            cases.append((i, 0.0))
    imgs = images()
    out = {"policy": policy, "magnitudes": mags, "signed": signed, "images": imgs,
           "cases": torch.tensor(cases, dtype=torch.float64)}
    for k, (i, m) in enumerate(cases):
        res = []
        for img in imgs:
            pil = Image.fromarray(img.permute(1, 2, 0).numpy())
            if OPS[i] == "Posterize":
                m = float(int(m))
            r = A._apply_op(pil, OPS[i], m, interpolation=InterpolationMode.NEAREST, fill=None)
            res.append(torch.from_numpy(__import__("numpy").array(r)).permute(2, 0, 1).contiguous())
        out["case.%d" % k] = torch.stack(res)
    save(os.path.join(outdir, "autoaugment.safetensors"), out)
    print("wrote %s: %d cases" % (os.path.join(outdir, "autoaugment.safetensors"), len(cases)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
