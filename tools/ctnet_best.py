#!/usr/bin/env python3
"""The setting `tessera ctnet eval --tuned FILE` would take, from its JSON lines.

usage: tools/ctnet_best.py FILE PAIR METHOD   -> "lr epochs source_epochs weight_decay adapter_std auc source_lr carry adapter_scale adapter_norm"
       tools/ctnet_best.py FILE PAIR ctnet --max-cost F   -> the same, for the cost-constrained choice (--tuned-max-cost F)
       tools/ctnet_best.py FILE PAIR --baseline -> the baseline with the best validation AUC
Same rule as --tuned: the validation line with the highest auc_mean on the
pair (the first of equals); lines of the zero-source diagnostic are skipped;
a line without source_epochs / weight_decay / adapter_std has the defaults,
one without source_lr 0 (the source tower at the method's lr); carry is 1 when
the line has "carry_optimizer": true, else 0; one without adapter_scale 1,
one without adapter_norm none.
--max-cost F (0 < F <= 10, ctnet only; as `eval --tuned-max-cost F`): only
ctnet lines whose train_seconds_per_period is at most F times that of
retrain's chosen line (its best validation AUC, unconstrained) are
candidates; a line without the field is not one. No retrain line, or no
ctnet line within the cost: an error.
Standard library only."""
import json
import math
import sys

BASELINES = ["target-only", "retrain", "fine-tune", "joint", "cross-domain"]


def main():
    args = sys.argv[1:]
    max_cost = None
    if "--max-cost" in args:
        i = args.index("--max-cost")
        if i + 1 >= len(args):
            sys.exit("--max-cost needs a value")
        try:
            max_cost = float(args[i + 1])
        except ValueError:
            max_cost = math.nan
        if not (0 < max_cost <= 10):
            sys.exit(f"--max-cost must be a number in (0, 10], not '{args[i + 1]}'")
        del args[i:i + 2]
    if len(args) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    path, pair, method = args
    if max_cost is not None and method != "ctnet":
        sys.exit("--max-cost applies to ctnet only (the issue's cost constraint)")
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r["pair"] == pair and r["split"] == "validation"
            and not r.get("zero_source_states")]

    def best(m, ok=lambda r: True):
        b = None
        for r in rows:
            if r["method"] == m and ok(r) and (b is None or r["auc_mean"] > b["auc_mean"]):
                b = r
        return b

    if method == "--baseline":
        found = [b for b in map(best, BASELINES) if b]
        if not found:
            sys.exit(f"{path}: no baseline line for {pair}")
        print(max(found, key=lambda b: b["auc_mean"])["method"])  # max keeps the first of equals
        return
    ok = lambda r: True
    if max_cost is not None:
        rt = best("retrain")
        sec = rt.get("train_seconds_per_period") if rt else None
        if not isinstance(sec, (int, float)) or not sec > 0:
            sys.exit(f"{path}: --max-cost needs retrain's validation line (with train_seconds_per_period) for {pair}")
        ok = lambda r: (isinstance(r.get("train_seconds_per_period"), (int, float))
                        and r["train_seconds_per_period"] <= max_cost * sec)
    b = best(method, ok)
    if not b:
        if max_cost is not None and best(method):
            sys.exit(f"{path}: no {method} line for {pair} within {max_cost:g} of retrain's training time per period")
        sys.exit(f"{path}: no {method} line for {pair}")
    print(b["lr"], b["epochs"], b.get("source_epochs", 2), b.get("weight_decay", 1e-5),
          b.get("adapter_std", 1e-3), b["auc_mean"], b.get("source_lr", 0),
          1 if b.get("carry_optimizer") else 0, b.get("adapter_scale", 1),
          b.get("adapter_norm", "none"))


if __name__ == "__main__":
    main()
