"""Fixtures for tests/test_sam.c: two reduced SAM-family models (TinyViT and
ViT image encoders) with random weights, their state dicts converted by
tools/convert_sam.py (the official .pth path), and the reference image
embedding, masks and IoU predictions for a few prompt sets.

    /usr/bin/python3 tools/refs/gen_sam.py
writes tests/refs/sam_{tinyvit,vit}.safetensors and tests/refs/sam_{tinyvit,vit}.tref
"""
import json
import os
import struct
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import convert_sam  # noqa: E402
import sam_ref  # noqa: E402
from tref import ROOT, save  # noqa: E402

IMG = 128
DEC = dict(dim=32, mask_chans=8, dec_depth=2, dec_heads=4, dec_mlp=48, n_multi=3, iou_hidden=24, iou_depth=3)


def randomize(model, g):
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if name.endswith("running_var"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "gaussian_matrix" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif "num_batches" in name or "bias_idxs" in name:
                continue
            elif p.dim() == 1 and ("norm" in name or ".bn." in name or "neck.1" in name or "neck.3" in name
                                   or "scaling.1" in name or "scaling.4" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                fan = p[0].numel() if p.dim() > 1 else 16
                p.copy_(torch.randn(p.shape, generator=g) / fan ** 0.5)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(v["shape"])
    return out, h.get("__metadata__", {})


def build(kind):
    torch.manual_seed(0)
    if kind == "tinyvit":
        enc = sam_ref.TinyViT(IMG, dims=[16, 24, 32, 40], depths=[1, 1, 2, 1], heads=[0, 2, 2, 4],
                              windows=[0, 7, 5, 3], out=DEC["dim"])
    else:
        enc = sam_ref.ImageEncoderViT(IMG, dim=32, depth=3, heads=2, window=3, global_idx=[1], out=DEC["dim"])
    return sam_ref.Sam(enc, IMG, **DEC)


def main():
    for kind in ("tinyvit", "vit"):
        m = build(kind).eval()
        g = torch.Generator().manual_seed(7 if kind == "vit" else 3)
        randomize(m, g)
        st_path = os.path.join(ROOT, "tests", "refs", "sam_%s.safetensors" % kind)
        with tempfile.TemporaryDirectory() as d:
            pth = os.path.join(d, "sam.pth")
            torch.save(m.state_dict(), pth)
            sd = torch.load(pth, map_location="cpu")
            kept, cfg = convert_sam.convert(sd, st_path, dec_heads=DEC["dec_heads"], img_size=IMG)
        back, meta = read_safetensors(st_path)
        # the converter round trip: same names, same values
        assert set(back) == set(kept), set(back) ^ set(kept)
        for k in kept:
            assert torch.equal(back[k], kept[k].float()), k
        assert not any("num_batches_tracked" in k for k in back)
        G = IMG // 16
        img = torch.randn(1, 3, IMG, IMG, generator=g)
        coords = torch.tensor([[[10.0, 20.0], [100.5, 40.0], [64.0, 120.0]],
                               [[5.0, 5.0], [70.0, 90.0], [127.0, 0.0]]])
        labels = torch.tensor([[1, 0, 1], [1, 1, 0]], dtype=torch.int32)
        box = torch.tensor([[12.0, 30.0, 90.0, 110.0]])
        mask_in = 2.0 * torch.randn(1, 1, 4 * G, 4 * G, generator=g)
        with torch.no_grad():
            emb = m.image_encoder(img)
            ma, ia = m.predict(emb, (coords, labels.float()), None, None, True)
            mb, ib = m.predict(emb, (coords[:1, :1], labels[:1, :1].float()), box, mask_in, False)
            mc, ic = m.predict(emb, None, box, None, True)
        # gradients of a fixed scalar of the outputs (eval mode: BN on running stats)
        R = torch.randn(ma.shape, generator=g)
        m.zero_grad()
        e2 = m.image_encoder(img)
        m2, i2 = m.predict(e2, (coords, labels.float()), None, None, True)
        m3, i3 = m.predict(e2, (coords[:1, :1], labels[:1, :1].float()), box, mask_in, False)
        loss = (m2 * R).sum() + 3.0 * i2.sum() + m3.mean()
        loss.backward()
        grads = {"grad." + k: p.grad for k, p in m.named_parameters() if p.grad is not None}
        save("sam_" + kind, {"img": img, "emb": emb, "R": R, "loss": loss.detach().reshape(1), **grads, "coords": coords, "labels": labels, "box": box,
                             "mask_in": mask_in, "masks_a": ma, "iou_a": ia, "masks_b": mb, "iou_b": ib,
                             "masks_c": mc, "iou_c": ic})
        print(kind, "emb", tuple(emb.shape), "masks", tuple(ma.shape), "|emb| max %.3f" % emb.abs().max(),
              "|masks| max %.3f" % ma.abs().max(), cfg)


if __name__ == "__main__":
    main()
