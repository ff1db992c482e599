#!/usr/bin/env python3
"""Re-run agreement of latency data sets measured more than once, and their merge.

Each FILE is a `tessera narformer dataset` output of the same networks (same
--per-family, --families and --seed; one measurement pass each). The tool
checks that line i is the same network in every file (id, family, seed,
node count and node operators), then prints one JSON object: for every pair
of passes (first, second), the share of networks whose second cpu-1t figure
lies within +-10% / +-5% of the first, for the network median
(`latency_ms`) and the minimum over repeats (`min_ms`), and the median of
|second - first| / first.

With --out, it also writes a merged data set (the same format): a network's
label on each platform is the median over the passes of the chosen
statistic (--label median|min; the mean for two passes), its min_ms / max_ms
the smallest / largest over the passes, and each node's time the median over
the passes of the node medians. The header records the passes and the label.

usage: narformer_latset_merge.py [--label median|min] [--out MERGED.jsonl] FILE FILE [FILE ...]
"""
import json
import sys


def load(path):
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines:
        sys.exit(f"{path}: empty")
    head = json.loads(lines[0])
    if head.get("format") != "tessera-narformer-latency":
        sys.exit(f"{path}: not a narformer latency data set")
    return head, [json.loads(s) for s in lines[1:] if s.strip()]


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def agreement(a, b):
    """share of |b - a| <= 10% / 5% of a, and the median relative difference"""
    rel = [abs(y - x) / x for x, y in zip(a, b)]
    n = len(rel)
    return {"within_10pct": round(sum(r <= 0.10 for r in rel) / n, 4),
            "within_5pct": round(sum(r <= 0.05 for r in rel) / n, 4),
            "median_rel_diff": round(median(rel), 4)}


def main():
    args = sys.argv[1:]
    label, out = "median", None
    while args and args[0].startswith("--"):
        if args[0] == "--label" and len(args) > 1 and args[1] in ("median", "min"):
            label, args = args[1], args[2:]
        elif args[0] == "--out" and len(args) > 1:
            out, args = args[1], args[2:]
        else:
            sys.exit(__doc__.strip().splitlines()[-1])
    if len(args) < 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    sets = [load(p) for p in args]
    n = min(len(nets) for _, nets in sets)
    for p, (_, nets) in zip(args, sets):
        for i in range(n):
            a, b = sets[0][1][i], nets[i]
            if (a["id"], a["family"], a["seed"], a["n_nodes"]) != (b["id"], b["family"], b["seed"], b["n_nodes"]) or \
                    [x["op"] for x in a["nodes"]] != [x["op"] for x in b["nodes"]]:
                sys.exit(f"{p}: line {i + 1} is another network than in {args[0]}")
    rep = {"files": args, "networks": n, "pairs": []}
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            pair = {"first": args[i], "second": args[j]}
            for key in ("latency_ms", "min_ms"):
                a = [x[key][0] for x in sets[i][1][:n]]
                b = [x[key][0] for x in sets[j][1][:n]]
                pair[key] = agreement(a, b)
            rep["pairs"].append(pair)
    spread = [(x["max_ms"][0] - x["min_ms"][0]) / x["latency_ms"][0] for x in sets[0][1][:n]]
    rep["repeat_spread_median"] = round(median(spread), 4)
    if out:
        key = "latency_ms" if label == "median" else "min_ms"
        head = dict(sets[0][0])
        head["passes"] = len(sets)
        head["label"] = f"median over {len(sets)} passes of the per-pass {label}"
        with open(out, "w") as f:
            f.write(json.dumps(head) + "\n")
            for i in range(n):
                per = [nets[i] for _, nets in sets]
                net = dict(per[0])
                k = len(net["latency_ms"])
                net["latency_ms"] = [round(median([x[key][p] for x in per]), 5) for p in range(k)]
                net["min_ms"] = [round(min(x["min_ms"][p] for x in per), 5) for p in range(k)]
                net["max_ms"] = [round(max(x["max_ms"][p] for x in per), 5) for p in range(k)]
                nodes = []
                for j, nd in enumerate(net["nodes"]):
                    nd = dict(nd)
                    nd["ms"] = [round(median([x["nodes"][j]["ms"][p] for x in per]), 6) for p in range(k)]
                    nodes.append(nd)
                net["nodes"] = nodes
                f.write(json.dumps(net) + "\n")
        rep["out"] = out
        rep["label"] = head["label"]
    print(json.dumps(rep))


if __name__ == "__main__":
    main()
