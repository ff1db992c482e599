#!/usr/bin/env python3
"""Exit 1 when a file under DIR with a finished name (not *.tmp) is torn: a
.safetensors / .state whose header or data does not fill the file exactly,
or a .json that does not parse."""
import json, os, struct, sys

def whole(p):
    with open(p, "rb") as f:
        b = f.read()
    if p.endswith(".json"):
        json.loads(b)
        return True
    if len(b) < 8:
        return False
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    end = max([v["data_offsets"][1] for k, v in h.items() if k != "__metadata__"] or [0])
    return 8 + n + end == len(b)

bad = 0
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        p = os.path.join(root, name)
        if name.endswith(".tmp") or not (".safetensors" in name or name.endswith((".state", ".json"))):
            continue
        try:
            ok = whole(p)
        except Exception:
            ok = False
        if not ok:
            print("torn:", p)
            bad = 1
sys.exit(bad)
