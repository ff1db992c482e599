"""Write PyTorch reference tensors as .tref fixtures for tessera's tests.

Format (little endian): b"TREF", u32 version=1, u32 count, then per tensor:
u32 name_len, name bytes, u32 dtype (0 = f32, 2 = i32), u32 ndim,
i64 shape[ndim], data (4 bytes per element, row-major).
Run the generators with Debian's python3 + python3-torch (1.13):
    /usr/bin/python3 tools/refs/gen_<family>.py   (writes tests/refs/*.tref)
"""
import struct
import os

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def save(name, tensors):
    """tensors: dict name -> torch tensor (float -> f32, integer -> i32)."""
    path = os.path.join(ROOT, "tests", "refs", name + ".tref")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(b"TREF")
        f.write(struct.pack("<II", 1, len(tensors)))
        for k, t in tensors.items():
            t = t.detach().contiguous().cpu()
            if t.is_floating_point():
                code, t = 0, t.to(torch.float32)
            else:
                code, t = 2, t.to(torch.int32)
            kb = k.encode()
            f.write(struct.pack("<I", len(kb)))
            f.write(kb)
            f.write(struct.pack("<II", code, t.dim()))
            for s in t.shape:
                f.write(struct.pack("<q", s))
            f.write(t.numpy().tobytes())
    os.replace(path + ".tmp", path)
    return path
