#!/usr/bin/env python3
"""Write YOLO boxes (KIT AIS cars: `class cx cy w h`, normalised) as DOTA
labelTxt quadrilaterals, so that `tessera apt eval --truth dota` can score an
image that has axis-aligned vehicle boxes.

    /usr/bin/python3 tools/yolo_to_dota.py ../shared/data/aerial/kit-ais-cars MOS155 OUTDIR

Classes (aerial.names): 0 car -> small-vehicle; 1 truck, 2 bus, 3 minibus ->
large-vehicle; 4 cyclist and anything else are left out. The image is linked
into OUTDIR as NAME.png beside NAME.txt. Box corners are clipped to the image.
Standard library only.
"""
import os
import struct
import sys

CLASSES = {0: "small-vehicle", 1: "large-vehicle", 2: "large-vehicle", 3: "large-vehicle"}


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        sys.exit(f"{path}: not a PNG")
    return struct.unpack(">II", head[16:24])


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: yolo_to_dota.py DIR NAME OUTDIR")
    src, name, out = sys.argv[1:]
    png = os.path.join(src, name + ".png")
    w, h = png_size(png)
    lines = []
    with open(os.path.join(src, name + ".txt")) as f:
        for ln, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                sys.exit(f"{name}.txt:{ln}: expected 'class cx cy w h'")
            c = int(parts[0])
            cx, cy, bw, bh = (float(v) for v in parts[1:])
            if c not in CLASSES:
                continue
            x0, x1 = max(0.0, (cx - bw / 2) * w), min(float(w), (cx + bw / 2) * w)
            y0, y1 = max(0.0, (cy - bh / 2) * h), min(float(h), (cy + bh / 2) * h)
            if x1 <= x0 or y1 <= y0:
                continue
            q = [x0, y0, x1, y0, x1, y1, x0, y1]
            lines.append(" ".join(f"{v:.1f}" for v in q) + f" {CLASSES[c]} 0")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name + ".txt"), "w") as f:
        f.write("imagesource:KIT-AIS\n")
        f.write("\n".join(lines) + "\n")
    dst = os.path.join(out, name + ".png")
    if not os.path.exists(dst):
        os.symlink(os.path.abspath(png), dst)
    print(f"{name}: {len(lines)} vehicle boxes, {w} x {h}")


if __name__ == "__main__":
    main()
