"""Reference ranking metrics for tessera's search module (tests/test_search.c).

Writes tests/refs/search_metrics.tref: random rankings with relevant sets and
the metrics computed here by their textbook definitions (binary relevance):
recall@k = |rel in top k| / |rel|, MRR@10, NDCG@10 (gain 1, discount
1/log2(rank+1), ideal = min(|rel|, 10) hits at the top), and ROC AUC by
enumerating every (positive, negative) pair, ties counting one half (an
independent algorithm from the C code's tie-averaged ranks).
Run: /usr/bin/python3 tools/refs/gen_search_metrics.py
"""
import math
import random

import torch

from tref import save

rng = random.Random(18)
C, N, L, R = 64, 40, 20, 8  # cases, item pool, ranked length, max relevant
ranked = torch.zeros(C, L, dtype=torch.int32)
rel = torch.full((C, R), -1, dtype=torch.int32)
n_rel = torch.zeros(C, dtype=torch.int32)
n_ranked = torch.zeros(C, dtype=torch.int32)
want = torch.zeros(C, 6, dtype=torch.float64)
for c in range(C):
    pool = list(range(N))
    rng.shuffle(pool)
    nr = rng.randint(0, L) if c % 5 == 0 else L  # some short rankings
    rk = pool[:nr]
    k_rel = rng.randint(1, R)
    # relevant items drawn from the whole pool, so some are never ranked
    rs = rng.sample(range(N), k_rel)
    ranked[c, :nr] = torch.tensor(rk, dtype=torch.int32) if nr else ranked[c, :0]
    rel[c, :k_rel] = torch.tensor(rs, dtype=torch.int32)
    n_rel[c], n_ranked[c] = k_rel, nr
    rset = set(rs)

    def recall(k):
        return sum(1 for x in rk[:k] if x in rset) / len(rset)

    mrr = 0.0
    for i, x in enumerate(rk[:10]):
        if x in rset:
            mrr = 1.0 / (i + 1)
            break
    dcg = sum(1.0 / math.log2(i + 2) for i, x in enumerate(rk[:10]) if x in rset)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(rset), 10)))
    want[c] = torch.tensor([recall(1), recall(5), recall(10), recall(100), mrr, dcg / idcg])

A, M = 32, 50
scores = torch.zeros(A, M)
labels = torch.zeros(A, M, dtype=torch.int32)
auc = torch.zeros(A, dtype=torch.float64)
for a in range(A):
    levels = [2, 5, 50][a % 3]  # coarse scores make many ties
    s = [float(rng.randint(0, levels - 1)) * 0.25 for _ in range(M)]
    lab = [1 if rng.random() < 0.3 else 0 for _ in range(M)]
    lab[0], lab[1] = 1, 0  # both classes present
    pos = [s[i] for i in range(M) if lab[i]]
    neg = [s[i] for i in range(M) if not lab[i]]
    tot = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    auc[a] = tot / (len(pos) * len(neg))
    scores[a] = torch.tensor(s)
    labels[a] = torch.tensor(lab, dtype=torch.int32)

print(save("search_metrics", {
    "ranked": ranked, "n_ranked": n_ranked, "rel": rel, "n_rel": n_rel,
    "want": want.float(), "auc_scores": scores, "auc_labels": labels, "auc_want": auc.float(),
}))
