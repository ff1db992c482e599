#!/usr/bin/env python3
"""The setting `tessera ctnet eval --tuned FILE` would take, from its JSON lines.

usage: tools/ctnet_best.py FILE PAIR METHOD   -> "lr epochs source_epochs weight_decay adapter_std auc source_lr carry adapter_scale adapter_norm"
       tools/ctnet_best.py FILE PAIR --baseline -> the baseline with the best validation AUC
Same rule as --tuned: the validation line with the highest auc_mean on the
pair (the first of equals); lines of the zero-source diagnostic are skipped;
a line without source_epochs / weight_decay / adapter_std has the defaults,
one without source_lr 0 (the source tower at the method's lr); carry is 1 when
the line has "carry_optimizer": true, else 0; one without adapter_scale 1,
one without adapter_norm none.
Standard library only."""
import json
import sys

BASELINES = ["target-only", "retrain", "fine-tune", "joint", "cross-domain"]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    path, pair, method = sys.argv[1:]
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r["pair"] == pair and r["split"] == "validation"
            and not r.get("zero_source_states")]

    def best(m):
        b = None
        for r in rows:
            if r["method"] == m and (b is None or r["auc_mean"] > b["auc_mean"]):
                b = r
        return b

    if method == "--baseline":
        found = [b for b in map(best, BASELINES) if b]
        if not found:
            sys.exit(f"{path}: no baseline line for {pair}")
        print(max(found, key=lambda b: b["auc_mean"])["method"])  # max keeps the first of equals
        return
    b = best(method)
    if not b:
        sys.exit(f"{path}: no {method} line for {pair}")
    print(b["lr"], b["epochs"], b.get("source_epochs", 2), b.get("weight_decay", 1e-5),
          b.get("adapter_std", 1e-3), b["auc_mean"], b.get("source_lr", 0),
          1 if b.get("carry_optimizer") else 0, b.get("adapter_scale", 1),
          b.get("adapter_norm", "none"))


if __name__ == "__main__":
    main()
