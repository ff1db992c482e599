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

The host's speed drifts by a few per cent within minutes, and the drift is
common to the networks measured at the same time. --normalise divides each
pass by a scale factor before the passes are combined:
  none   no scale (default);
  pass   one factor per pass: the median over networks of the pass's figure
         over the consensus (the median over all passes);
  chunk  one factor per run of --chunk K consecutive networks of a pass
         (file order is measurement order, round-robin over the families;
         default K 50): the same median, over the chunk only.
The factors are computed per platform and per statistic. With three or more
passes the report also gives the split-half agreement: for every split of
the passes into two halves (sizes P//2 and P - P//2), the share of networks
whose two half-labels (median over the half's passes of the --label
statistic, cpu-1t) agree within 10% / 5%, averaged over the splits, for no
scale and for the chosen one, and each pass's factor (cpu-1t).

With --out, it also writes a merged data set (the same format): a network's
label on each platform is the median over the passes of the chosen
statistic (--label median|min; the mean for two passes), scaled as above,
its min_ms / max_ms the smallest / largest over the passes (scaled), and
each node's time the median over the passes of the scaled node medians. The
header records the passes, the label and the scaling.

usage: narformer_latset_merge.py [--label median|min] [--normalise none|pass|chunk] [--chunk K] [--out MERGED.jsonl] FILE FILE [FILE ...]
"""
import itertools
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


def scales(x, mode, k):
    """x[p][i]: pass p, network i. The factor s[p][i] the figure is divided by."""
    n_pass, n = len(x), len(x[0])
    if mode == "none":
        return [[1.0] * n for _ in range(n_pass)]
    cons = [median([x[p][i] for p in range(n_pass)]) for i in range(n)]
    ratio = [[x[p][i] / cons[i] for i in range(n)] for p in range(n_pass)]
    width = n if mode == "pass" else k
    s = []
    for p in range(n_pass):
        row = []
        for a in range(0, n, width):
            f = median(ratio[p][a:a + width])
            row += [f] * len(ratio[p][a:a + width])
        s.append(row)
    return s


def split_half(y):
    """mean over the splits of the passes into two halves of the half-labels' agreement"""
    n_pass, n = len(y), len(y[0])
    res = []
    for a in itertools.combinations(range(n_pass), n_pass // 2):
        b = [p for p in range(n_pass) if p not in a]
        if 2 * len(a) == n_pass and list(a) > b:
            continue
        la = [median([y[p][i] for p in a]) for i in range(n)]
        lb = [median([y[p][i] for p in b]) for i in range(n)]
        res.append(agreement(la, lb))
    return {"splits": len(res),
            "within_10pct": round(sum(r["within_10pct"] for r in res) / len(res), 4),
            "within_5pct": round(sum(r["within_5pct"] for r in res) / len(res), 4)}


def main():
    args = sys.argv[1:]
    label, out, norm, chunk = "median", None, "none", 50
    while args and args[0].startswith("--"):
        if args[0] == "--label" and len(args) > 1 and args[1] in ("median", "min"):
            label, args = args[1], args[2:]
        elif args[0] == "--normalise" and len(args) > 1 and args[1] in ("none", "pass", "chunk"):
            norm, args = args[1], args[2:]
        elif args[0] == "--chunk" and len(args) > 1 and args[1].isdigit() and int(args[1]) > 0:
            chunk, args = int(args[1]), args[2:]
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
    key = "latency_ms" if label == "median" else "min_ms"
    k = len(sets[0][1][0]["latency_ms"])
    # the scale of every pass, network and platform (of the label statistic)
    sc = []
    for p in range(k):
        x = [[nets[i][key][p] for i in range(n)] for _, nets in sets]
        sc.append(scales(x, norm, chunk))
    x0 = [[nets[i][key][0] for i in range(n)] for _, nets in sets]
    if norm != "none":
        rep["normalise"] = norm if norm == "pass" else f"chunk of {chunk} networks"
        rep["pass_scale"] = [round(median(s), 4) for s in scales(x0, "pass", n)]
        rep["chunk_scale_range"] = [[round(min(s), 4), round(max(s), 4)] for s in sc[0]]
    if len(sets) >= 3:
        rep["split_half"] = {"label": key, "none": split_half(x0)}
        if norm != "none":
            rep["split_half"][norm] = split_half([[v / s for v, s in zip(xp, sp)] for xp, sp in zip(x0, sc[0])])
    if out:
        head = dict(sets[0][0])
        head["passes"] = len(sets)
        head["label"] = f"median over {len(sets)} passes of the per-pass {label}"
        if norm != "none":
            head["label"] += ", each pass divided by its " + \
                ("median ratio to the consensus" if norm == "pass" else
                 f"median ratio to the consensus over runs of {chunk} consecutive networks")
        with open(out, "w") as f:
            f.write(json.dumps(head) + "\n")
            for i in range(n):
                per = [nets[i] for _, nets in sets]
                s = [[sc[p][q][i] for p in range(k)] for q in range(len(sets))]
                net = dict(per[0])
                net["latency_ms"] = [round(median([x[key][p] / s[q][p] for q, x in enumerate(per)]), 5) for p in range(k)]
                net["min_ms"] = [round(min(x["min_ms"][p] / s[q][p] for q, x in enumerate(per)), 5) for p in range(k)]
                net["max_ms"] = [round(max(x["max_ms"][p] / s[q][p] for q, x in enumerate(per)), 5) for p in range(k)]
                nodes = []
                for j, nd in enumerate(net["nodes"]):
                    nd = dict(nd)
                    nd["ms"] = [round(median([x["nodes"][j]["ms"][p] / s[q][p] for q, x in enumerate(per)]), 6)
                                for p in range(k)]
                    nodes.append(nd)
                net["nodes"] = nodes
                f.write(json.dumps(net) + "\n")
        rep["out"] = out
        rep["label"] = head["label"]
    print(json.dumps(rep))


if __name__ == "__main__":
    main()
