#!/usr/bin/env python3
"""Markdown tables of docs/ctnet.md from the JSON lines of tools/ctnet_protocol.sh.

usage: tools/ctnet_tables.py OUTDIR [LABEL]
Reads OUTDIR/validation.jsonl and OUTDIR/eval.jsonl; prints, per pair, the
evaluation table (every method at its validation-chosen setting, the time
column as a share of retrain's) and the validation grid it was chosen on.
Standard library only."""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: tools/ctnet_tables.py OUTDIR [LABEL]")
    out = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else ""
    val = load(os.path.join(out, "validation.jsonl"))
    ev = load(os.path.join(out, "eval.jsonl"))
    pairs = []
    for r in ev:
        if r["pair"] not in pairs:
            pairs.append(r["pair"])
    for pair in pairs:
        rows = [r for r in ev if r["pair"] == pair]
        rt = [r for r in rows if r["method"] == "retrain"]
        base = rt[-1]["train_seconds_per_period"] if rt else float("nan")
        best = max((r for r in rows if not r["method"].startswith("ctnet")), key=lambda r: r["auc_mean"])
        print(f"#### {label}{pair}: periods {rows[0]['periods'][0]}–{rows[0]['periods'][1]}\n")
        print("| method | lr | epochs | validation AUC | AUC (mean ± 95%) | log loss | train CPU s/period | vs retrain | source CPU s/period | examples/period |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            share = r["train_seconds_per_period"] / base if base > 0 else float("nan")
            auc = f"{r['auc_mean']:.4f} ± {r['auc_ci95']:.4f}"
            if r is best or r["method"] == "ctnet":
                auc = f"**{auc}**"
            print(f"| `{r['method']}` | {r['lr']:g} | {r['epochs']} | {r['validation_auc']:.4f} | {auc} | "
                  f"{r['logloss_mean']:.4f} | {r['train_seconds_per_period']:.4f} | {100 * share:.0f}% | "
                  f"{r['source_seconds_per_period']:.4f} | {r['examples_per_period']:.1f} |")
        ct = [r for r in rows if r["method"] == "ctnet"]
        if ct:
            c = ct[-1]
            d = c["auc_mean"] - best["auc_mean"]
            print(f"\nctnet − best baseline (`{best['method']}`): {d:+.4f}; intervals ±{c['auc_ci95']:.4f} and "
                  f"±{best['auc_ci95']:.4f}; "
                  f"{'separated' if abs(d) > c['auc_ci95'] + best['auc_ci95'] else 'overlapping'}.")
        grid = {}
        for r in val:
            if r["pair"] == pair:
                grid.setdefault(r["method"], {})[(r["lr"], r["epochs"])] = r["auc_mean"]
        keys = sorted({k for g in grid.values() for k in g})
        if keys:
            print(f"\nValidation AUC per setting ({val[0]['seeds']} seeds, periods "
                  f"{[r for r in val if r['pair'] == pair][0]['periods'][0]}–"
                  f"{[r for r in val if r['pair'] == pair][0]['periods'][1]}):\n")
            print("| method | " + " | ".join(f"lr {lr:g}, {ep} ep" for lr, ep in keys) + " |")
            print("|---|" + "---|" * len(keys))
            for m, g in grid.items():
                print(f"| `{m}` | " + " | ".join(f"{g[k]:.4f}" if k in g else "" for k in keys) + " |")
        print()


if __name__ == "__main__":
    main()
