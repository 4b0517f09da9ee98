"""safetensors reading and writing for the test and benchmark scripts (F32, and U8 for byte images; no dependencies)."""
import json
import struct

import torch


def save(path, tensors, meta=None):
    """F32 (U8 for uint8 tensors) little-endian, the header padded with spaces to a multiple of 8, string metadata."""
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    for name, t in tensors.items():
        if t.dtype == torch.uint8:
            b, dtype = bytes(t.contiguous().flatten().tolist()), "U8"
        else:
            flat = t.detach().to(torch.float32).contiguous().flatten().tolist()
            b, dtype = struct.pack("<%df" % len(flat), *flat), "F32"
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load(path):
    """{name: float32 tensor} of a file that holds F32 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise ValueError("%s: %s is %s, not F32" % (path, name, e["dtype"]))
        b, end = e["data_offsets"]
        vals = struct.unpack("<%df" % ((end - b) // 4), data[8 + n + b:8 + n + end])
        out[name] = torch.tensor(vals, dtype=torch.float32).reshape(e["shape"])
    return out
