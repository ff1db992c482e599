#!/usr/bin/env python3
"""Predict chosen networks of a latency data set through the ONNX path.

Each network (by its line index in the data set) is exported with
`tessera narformer export --no-weights` and predicted with
`tessera narformer predict --json`; the prediction is compared with the
measured cpu-1t latency. Prints Kendall tau, MAPE and the share within 10%.

usage: narformer_predict_ids.py TESSERA DATA.jsonl IDS.txt [MODEL]
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__.strip().splitlines()[-1])
    exe, data, ids_file = sys.argv[1:4]
    model = sys.argv[4] if len(sys.argv) == 5 else None
    with open(data) as f:
        lines = f.read().splitlines()[1:]  # skip the header
    with open(ids_file) as f:
        ids = [int(t) for t in f.read().split()]
    pred, meas = [], []
    with tempfile.TemporaryDirectory() as d:
        onnx = os.path.join(d, "net.onnx")
        for i in ids:
            net = json.loads(lines[i])
            subprocess.run([exe, "narformer", "export", "--family", net["family"], "--net-seed", str(net["seed"]),
                            "--no-weights", "--out", onnx], check=True, stdout=subprocess.DEVNULL)
            cmd = [exe, "narformer", "predict", "--onnx", onnx, "--json"] + (["--model", model] if model else [])
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            pred.append(out["latency_ms"])
            meas.append(net["latency_ms"][0])
    n = len(ids)
    conc = disc = 0
    for a in range(n):
        for b in range(a + 1, n):
            s = (pred[a] - pred[b]) * (meas[a] - meas[b])
            conc += s > 0
            disc += s < 0
    rel = [abs(p - y) / y for p, y in zip(pred, meas)]
    print(json.dumps({"n": n, "kendall_tau": round((conc - disc) / (n * (n - 1) / 2), 4),
                      "mape": round(sum(rel) / n, 5), "acc_10pct": round(sum(r <= 0.10 for r in rel) / n, 4)}))


if __name__ == "__main__":
    main()
