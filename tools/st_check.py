"""safetensors interop between tessera and Python/PyTorch.

  /usr/bin/python3 tools/st_check.py write-fixtures
      writes tests/refs/st_*.safetensors, read back by tests/test_safetensors.c
  /usr/bin/python3 tools/st_check.py check FILE
      reads a file written by tessera (build/test_safetensors FILE) and checks
      every value, dtype, shape and metadata entry exactly

Debian's python3-torch 1.13 has no `safetensors` package, so files are laid
out by hand (struct + json) following the format: u64 little-endian header
length, JSON header, data section. When the package is present, `check`
also loads the file with it.
"""
import json
import os
import struct
import sys

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
          "U8": torch.uint8, "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: go through int16 bits
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def encode(tensors, metadata=None, order=None, pretty=False, pad=True):
    """the file image; order: names in data-section order (default: the
    Python library's, larger elements first then by name)"""
    if order is None:
        order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, blobs, pos = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for k in order:
        b = raw_bytes(tensors[k])
        header[k] = {"dtype": NAMES[tensors[k].dtype], "shape": list(tensors[k].shape),
                     "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    h = (json.dumps(header, indent=1, ensure_ascii=False) if pretty
         else json.dumps(header, separators=(",", ":"), ensure_ascii=False)).encode()
    if pad:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write(name, image):
    path = os.path.join(ROOT, "tests", "refs", name)
    with open(path + ".tmp", "wb") as f:
        f.write(image)
    os.replace(path + ".tmp", path)
    print("wrote", path, len(image), "bytes")


def write_fixtures():
    t = {
        "weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.25,
        "emb": torch.tensor([1.0, -2.5, 3.14159, 1e-3], dtype=torch.float32).to(torch.bfloat16),
        "half": torch.tensor([0.5, -65504.0, 2.0 ** -24], dtype=torch.float16),
        "dbl": torch.tensor([1.0 / 3.0, 2.5], dtype=torch.float64),
        "ids": torch.tensor([2 ** 62 + 1, -5, 0], dtype=torch.int64),
        "i32": torch.tensor([[1, -2], [2 ** 31 - 1, -2 ** 31]], dtype=torch.int32),
        "i16": torch.tensor([-32768, 7], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "mask": torch.tensor([0, 1, 2, 254, 255], dtype=torch.uint8),
        "flag": torch.tensor([True, False]),
        "scalar": torch.tensor(42.0),
        "empty": torch.zeros(0, 3),
    }
    meta = {"format": "pt", "note": "h\u00e9llo \u2713 \"quoted\"\n"}
    write("st_basic.safetensors", encode(t, meta))
    # another writer's layout: 1-byte tensor first so the F32 data is
    # misaligned, pretty-printed header, no padding, no metadata
    odd = {"u": torch.tensor([1, 2, 3], dtype=torch.uint8),
           "na\u00efve": torch.tensor([-1.5, 8.25], dtype=torch.float32)}
    write("st_odd.safetensors", encode(odd, None, order=["u", "na\u00efve"], pretty=True, pad=False))


def parse(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data), "header past EOF"
    assert (8 + n) % 8 == 0, "tessera pads the header to 8 bytes"
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    meta = header.pop("__metadata__", {})
    out, spans = {}, []
    for k, e in header.items():
        b, en = e["data_offsets"]
        dt = DTYPES[e["dtype"]]
        numel = 1
        for s in e["shape"]:
            numel *= s
        assert en - b == numel * torch.tensor([], dtype=dt).element_size(), k
        spans.append((b, en))
        buf = bytearray(body[b:en])
        if dt == torch.bfloat16:
            x = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16) if buf else torch.zeros(0, dtype=dt)
        else:
            x = torch.frombuffer(buf, dtype=dt) if buf else torch.zeros(0, dtype=dt)
        out[k] = x.reshape(e["shape"])
    pos = 0
    for b, en in sorted(spans):
        assert b == pos, "offsets not contiguous"
        pos = en
    assert pos == len(body), "data section not fully covered"
    return out, meta


def check(path):
    got, meta = parse(path)
    want = {
        "f32": torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25 - 1.0,
        "bf16": torch.tensor([1.0, -2.5, 3.14159, 1e-3, 65504.0]).to(torch.bfloat16),
        "i64": torch.tensor([2 ** 62 + 3, -7], dtype=torch.int64),
        "i32": torch.tensor([[5, -6, 2 ** 31 - 1]], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
        "scalar": torch.tensor(-0.75),
    }
    want_meta = {"author": "tessera", "unicode": "h\u00e9llo \u2713", "quote": "a\"b\\c\n"}
    bad = 0
    assert set(got) == set(want), f"tensor names {sorted(got)}"
    for k, w in want.items():
        g = got[k]
        same = g.dtype == w.dtype and g.shape == w.shape and torch.equal(
            g.view(torch.int16) if g.dtype == torch.bfloat16 else g,
            w.view(torch.int16) if w.dtype == torch.bfloat16 else w)
        if not same:
            print(f"MISMATCH {k}: got {g.dtype} {tuple(g.shape)} {g}, want {w.dtype} {tuple(w.shape)} {w}")
            bad += 1
    if meta != want_meta:
        print("MISMATCH metadata", meta)
        bad += 1
    try:
        from safetensors.torch import load_file
        lib = load_file(path)
        for k in want:
            bad += not torch.equal(lib[k], got[k])
        print("also checked with the safetensors package")
    except ImportError:
        pass
    print(f"{path}: {len(want)} tensors and {len(meta)} metadata entries checked, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "write-fixtures":
        write_fixtures()
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    else:
        sys.exit(__doc__)
