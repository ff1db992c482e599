#!/usr/bin/env python3
"""Convert an official SAM / MobileSAM checkpoint (.pt/.pth state dict) to a
safetensors file that `tessera apt` loads (include/tessera/sam.h).

    /usr/bin/python3 tools/convert_sam.py sam_vit_b_01ec64.pth sam_vit_b.safetensors
    /usr/bin/python3 tools/convert_sam.py mobile_sam.pt mobile_sam.safetensors

Tensor names stay as in the official state dict. Dropped: BatchNorm's
num_batches_tracked counters and TinyViT's unused classification head
(image_encoder.head.*, image_encoder.norm_head.*). The configuration is read
from the tensor shapes and written as "sam.*" metadata; the two values that
shapes cannot tell (ViT heads: from rel_pos head dim; decoder heads) take the
official values unless --dec-heads is given. Needs only Debian's
python3-torch, at conversion time; tessera never runs Python.
"""
import argparse
import json
import os
import re
import struct
import sys

import torch

DROP = re.compile(r"(num_batches_tracked$|^image_encoder\.(norm_head|head)\.)")


def count(sd, pattern):
    idx = {int(m.group(1)) for k in sd for m in [re.match(pattern, k)] if m}
    return max(idx) + 1 if idx else 0


def infer_config(sd, dec_heads):
    cfg = {}
    dim = sd["mask_decoder.iou_token.weight"].shape[1]
    if "image_encoder.patch_embed.proj.weight" in sd:
        pos = sd["image_encoder.pos_embed"]
        g, D = pos.shape[1], pos.shape[3]
        depth = count(sd, r"image_encoder\.blocks\.(\d+)\.")
        hd = sd["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
        glob, window = [], 0
        for i in range(depth):
            rows = sd["image_encoder.blocks.%d.attn.rel_pos_h" % i].shape[0]
            if rows == 2 * g - 1:
                glob.append(i)
            else:
                window = (rows + 1) // 2
        if len(glob) > 8:
            raise SystemExit("convert_sam: more than 8 global-attention blocks: unsupported")
        cfg.update({"encoder": 0, "img_size": g * 16, "vit_dim": D, "vit_depth": depth, "vit_heads": D // hd,
                    "vit_window": window,
                    "vit_mlp_ratio": sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] // D,
                    "vit_n_global": len(glob), "vit_global": glob + [0] * (8 - len(glob))})
    elif "image_encoder.patch_embed.seq.0.c.weight" in sd:
        dims, depths, heads, windows = [], [], [], []
        for L in range(4):
            depths.append(count(sd, r"image_encoder\.layers\.%d\.blocks\.(\d+)\." % L))
            if L == 0:
                dims.append(sd["image_encoder.layers.0.blocks.0.conv1.c.weight"].shape[1])
                heads.append(0)
                windows.append(0)
            else:
                ab = sd["image_encoder.layers.%d.blocks.0.attn.attention_biases" % L]
                dims.append(sd["image_encoder.layers.%d.blocks.0.attn.proj.weight" % L].shape[0])
                heads.append(ab.shape[0])
                windows.append(int(round(ab.shape[1] ** 0.5)))
        g = None
        cfg.update({"encoder": 1, "tv_dims": dims, "tv_depths": depths, "tv_heads": heads,
                    "tv_windows": windows,
                    "tv_mlp_ratio": sd["image_encoder.layers.1.blocks.0.mlp.fc1.weight"].shape[0] // dims[1],
                    "tv_expand": sd["image_encoder.layers.0.blocks.0.conv1.c.weight"].shape[0] // dims[0],
                    "tv_local_conv": sd["image_encoder.layers.1.blocks.0.local_conv.c.weight"].shape[2],
                    "img_size": 1024})
    else:
        raise SystemExit("convert_sam: no ViT or TinyViT image encoder found (not a SAM-family state dict?)")
    cfg.update({"dim": dim,
                "mask_in_chans": sd["prompt_encoder.mask_downscaling.3.weight"].shape[0],
                "dec_depth": count(sd, r"mask_decoder\.transformer\.layers\.(\d+)\."),
                "dec_heads": dec_heads,
                "dec_mlp": sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
                "n_multimask": sd["mask_decoder.mask_tokens.weight"].shape[0] - 1,
                "iou_hidden": sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
                "iou_depth": count(sd, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.")})
    return cfg


def write_safetensors(path, tensors, meta):
    header, blobs, pos = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().to(torch.float32).contiguous()
        b = t.numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def convert(sd, out, dec_heads=8, img_size=None, extra_meta=None):
    if "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    sd = {k: v for k, v in sd.items() if torch.is_tensor(v) and not DROP.search(k)}
    cfg = infer_config(sd, dec_heads)
    if img_size:
        cfg["img_size"] = img_size
    meta = {"sam." + k: ",".join(str(x) for x in v) if isinstance(v, list) else str(v) for k, v in cfg.items()}
    meta.update(extra_meta or {})
    write_safetensors(out, sd, meta)
    return sd, cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="official .pt/.pth checkpoint (a state dict)")
    ap.add_argument("out", help="safetensors file to write")
    ap.add_argument("--dec-heads", type=int, default=8, help="mask decoder heads (official: 8)")
    ap.add_argument("--img-size", type=int, default=None,
                    help="encoder input size (ViT: from pos_embed; TinyViT: 1024)")
    a = ap.parse_args()
    try:
        sd = torch.load(a.src, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any unreadable file gets one line
        sys.exit("convert_sam: cannot read %s as a PyTorch checkpoint: %s" % (a.src, str(e).splitlines()[0]))
    if not isinstance(sd, dict):
        sys.exit("convert_sam: %s does not hold a state dict" % a.src)
    sd, cfg = convert(sd, a.out, a.dec_heads, a.img_size)
    print("wrote %s: %d tensors, %s encoder" % (a.out, len(sd), "ViT" if cfg["encoder"] == 0 else "TinyViT"))


if __name__ == "__main__":
    main()
