#!/usr/bin/env python3
"""Markdown tables of docs/ctnet.md from the JSON lines of tools/ctnet_protocol.sh.

usage: tools/ctnet_tables.py OUTDIR [LABEL]
Reads OUTDIR/validation.jsonl, OUTDIR/eval.jsonl and, when present,
OUTDIR/diagnostics.jsonl and OUTDIR/cost.jsonl; prints, per pair, the
evaluation table (every method at its validation-chosen setting, with the
chosen line's validation AUC, the time column as a share of retrain's),
the cost at matched epochs, the validation grid and other settings it was
chosen on (rows "(carried AdamW)": the grid with --carry-optimizer, "(adapter
scale X)": with --adapter-scale X, "(adapter norm N)": with
--adapter-norm N), and
the diagnostics.
Standard library only."""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


DEFAULTS = {"source_epochs": 2, "weight_decay": 1e-5, "adapter_std": 1e-3}


# the methods a setting acts on (source epochs: a source tower updated on
# its own; adapter std: the near-zero init of ctnet's W_a and CoNet's links)
USES = {"source_epochs": ("ctnet", "ctnet-no-adapters", "ctnet-no-gate", "ctnet-random-adapters", "fine-tune"),
        "adapter_std": ("ctnet", "ctnet-no-gate", "cross-domain")}


def grid_tags(r):
    """the settings a validation grid is searched again with (own rows in the grid table)"""
    out = ["carried AdamW"] if r.get("carry_optimizer") else []
    if "adapter_scale" in r:
        out.append(f"adapter scale {r['adapter_scale']:g}")
    if "adapter_norm" in r:
        out.append(f"adapter norm {r['adapter_norm']}")
    return out


def extras(r, tags=True):
    """the settings of a line beyond lr and epochs that differ from the defaults"""
    out = grid_tags(r) if tags else []
    for k, short in (("source_epochs", "source ep"), ("weight_decay", "wd"), ("adapter_std", "adapter std")):
        if k in USES and r["method"] not in USES[k]:
            continue
        if k in r and abs(r[k] - DEFAULTS[k]) > 1e-12:
            out.append(f"{short} {r[k]:g}")
    return ", ".join(out)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: tools/ctnet_tables.py OUTDIR [LABEL]")
    out = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else ""
    val = load(os.path.join(out, "validation.jsonl"))
    ev = load(os.path.join(out, "eval.jsonl"))
    dp = os.path.join(out, "diagnostics.jsonl")
    diags = load(dp) if os.path.exists(dp) else []
    cp = os.path.join(out, "cost.jsonl")
    costs = load(cp) if os.path.exists(cp) else []

    def chosen(pair, method):
        """the validation line `eval --tuned` takes (highest auc_mean, first of equals)"""
        b = None
        for r in val:
            if (r["pair"] == pair and r["method"] == method and r["split"] == "validation"
                    and not r.get("zero_source_states") and (b is None or r["auc_mean"] > b["auc_mean"])):
                b = r
        return b
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
        print("| method | lr | epochs | other settings | validation AUC | AUC (mean ± 95%) | log loss | train CPU s/period | vs retrain | source CPU s/period | examples/period |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            share = r["train_seconds_per_period"] / base if base > 0 else float("nan")
            auc = f"{r['auc_mean']:.4f} ± {r['auc_ci95']:.4f}"
            if r is best or r["method"] == "ctnet":
                auc = f"**{auc}**"
            v = chosen(pair, r["method"])
            vs = f"{v['auc_mean']:.4f} ± {v['auc_ci95']:.4f}" if v else f"{r['validation_auc']:.4f}"
            print(f"| `{r['method']}` | {r['lr']:g} | {r['epochs']} | {extras(r)} | {vs} | {auc} | "
                  f"{r['logloss_mean']:.4f} | {r['train_seconds_per_period']:.4f} | {100 * share:.0f}% | "
                  f"{r['source_seconds_per_period']:.4f} | {r['examples_per_period']:.1f} |")
        ct = [r for r in rows if r["method"] == "ctnet"]
        if ct:
            c = ct[-1]
            d = c["auc_mean"] - best["auc_mean"]
            print(f"\nctnet − best baseline (`{best['method']}`): {d:+.4f}; intervals ±{c['auc_ci95']:.4f} and "
                  f"±{best['auc_ci95']:.4f}; "
                  f"{'separated' if abs(d) > c['auc_ci95'] + best['auc_ci95'] else 'overlapping'}.")
            if rt:
                print(f"\nCost, `ctnet` / `retrain`, each at its own chosen setting (same run): "
                      f"{100 * c['train_seconds_per_period'] / base:.1f}% "
                      f"({c['train_seconds_per_period']:.4f} / {base:.4f} CPU s per period).")
            cc = [r for r in costs if r["pair"] == pair]
            cct = [r for r in cc if r["method"] == "ctnet"]
            ccr = [r for r in cc if r["method"] == "retrain"]
            if cct and ccr:
                a, b = cct[-1], ccr[-1]
                print(f"At matched epochs (`retrain` at ctnet's lr {b['lr']:g} and {b['epochs']} epochs, "
                      f"{b['seeds']} seeds, cost only): {100 * a['train_seconds_per_period'] / b['train_seconds_per_period']:.1f}% "
                      f"({a['train_seconds_per_period']:.4f} / {b['train_seconds_per_period']:.4f}).")
        grid, other = {}, []
        for r in val:
            if r["pair"] == pair:
                if extras(r, tags=False):
                    other.append(r)
                else:  # the grid, with a fresh AdamW per update, carried, and with an adapter scale
                    m = r["method"] + (f" ({', '.join(grid_tags(r))})" if grid_tags(r) else "")
                    grid.setdefault(m, {})[(r["lr"], r["epochs"])] = (r["auc_mean"], r["auc_ci95"])
        keys = sorted({k for g in grid.values() for k in g})
        if keys:
            first = [r for r in val if r["pair"] == pair][0]  # the pair's own lines
            print(f"\nValidation AUC per setting ({first['seeds']} seeds, periods "
                  f"{first['periods'][0]}–{first['periods'][1]}):\n")
            print("| method | " + " | ".join(f"lr {lr:g}, {ep} ep" for lr, ep in keys) + " |")
            print("|---|" + "---|" * len(keys))
            for m, g in grid.items():
                print(f"| `{m}` | " + " | ".join(f"{g[k][0]:.4f} ± {g[k][1]:.3f}" if k in g else "" for k in keys) + " |")
        if other:
            print("\nOther settings on the validation periods:\n")
            print("| method | lr | epochs | setting | validation AUC |")
            print("|---|---|---|---|---|")
            for r in other:
                print(f"| `{r['method']}` | {r['lr']:g} | {r['epochs']} | {extras(r)} | {r['auc_mean']:.4f} ± {r['auc_ci95']:.4f} |")
        diag = [r for r in diags if r["pair"] == pair]
        if diag:
            print("\nDiagnostics on the validation periods (not used for any choice):\n")
            print("| method | lr | epochs | setting | validation AUC | per period |")
            print("|---|---|---|---|---|---|")
            for r in diag:
                st = ", ".join(x for x in (extras(r), "adapters read zeros" if r.get("zero_source_states") else "") if x)
                pp = " / ".join(f"{x:.3f}" for x in r["auc_per_period"])
                print(f"| `{r['method']}` | {r['lr']:g} | {r['epochs']} | {st} | {r['auc_mean']:.4f} ± {r['auc_ci95']:.4f} | {pp} |")
        print()


if __name__ == "__main__":
    main()
