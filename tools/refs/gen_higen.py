"""PyTorch reference for the Hi-Gen generator (src/models/higen/gen.c,
tests/test_higen.c): the causal Llama decoder over [left-padded query, SEP,
docID prefix] and the position-aware loss
    L = sum_p w_p [CE_V(p) + lambda CE_S(p)] / sum_p w_p,
w_p = 1 - decay * p / max_depth, S_p = the codes that follow the true prefix
among all items' docIDs (computed here from the docID list, not a trie).

higen.tref: dim 16, 2 layers, 4 heads, 2 kv heads, hidden 24, text vocab 20,
max query 4, max depth 3, fanout 3; 7 items with docIDs of length 1-3; a batch
of 4 (query lengths 4 2 1 3), decay 0.5, lambda 0.7. Holds every weight, the
docIDs, the batch, the loss and every gradient, and the same with CE_V over
the docID tokens only (loss_doc, gdoc.*).
Run: /usr/bin/python3 tools/refs/gen_higen.py
"""
import math

import torch
from gen_nn import rms_norm, rope, attention
from tref import save

DT = torch.float64
torch.manual_seed(18)
C, L, H, Hkv, F = 16, 2, 4, 2, 24
TV, Q, D, FAN = 20, 4, 3, 3
SEP, BASE = TV, TV + 1
V = BASE + D * FAN
S = Q + D
DH = C // H

W = {"model.embed_tokens.weight": torch.randn(V, C, dtype=DT)}
for i in range(L):
    p = f"model.layers.{i}."
    W[p + "input_layernorm.weight"] = 1 + 0.2 * torch.randn(C, dtype=DT)
    W[p + "self_attn.q_proj.weight"] = torch.randn(H * DH, C, dtype=DT) / math.sqrt(C)
    W[p + "self_attn.k_proj.weight"] = torch.randn(Hkv * DH, C, dtype=DT) / math.sqrt(C)
    W[p + "self_attn.v_proj.weight"] = torch.randn(Hkv * DH, C, dtype=DT) / math.sqrt(C)
    W[p + "self_attn.o_proj.weight"] = torch.randn(C, H * DH, dtype=DT) / math.sqrt(C)
    W[p + "post_attention_layernorm.weight"] = 1 + 0.2 * torch.randn(C, dtype=DT)
    W[p + "mlp.gate_proj.weight"] = torch.randn(F, C, dtype=DT) / math.sqrt(C)
    W[p + "mlp.up_proj.weight"] = torch.randn(F, C, dtype=DT) / math.sqrt(C)
    W[p + "mlp.down_proj.weight"] = torch.randn(C, F, dtype=DT) / math.sqrt(F)
W["model.norm.weight"] = 1 + 0.2 * torch.randn(C, dtype=DT)
W["lm_head.weight"] = torch.randn(V, C, dtype=DT) / math.sqrt(C)
for w in W.values():
    w.requires_grad_(True)

docids = [[0, 0], [0, 1, 0], [0, 1, 1], [1, 0], [1, 1], [1, 2], [2]]
batch_items = [2, 6, 3, 1]
qlens = [4, 2, 1, 3]
qtok = torch.randint(1, TV, (4, Q))
decay, lam = 0.5, 0.7

B = len(batch_items)
tok = torch.zeros(B, S, dtype=torch.long)
mask = torch.zeros(B, S, S, dtype=torch.int32)
tgt = torch.full((B, D), -1, dtype=torch.long)
wts = torch.zeros(B, D, dtype=DT)
sib = torch.zeros(B, D, V, dtype=DT)
for b, it in enumerate(batch_items):
    d = docids[it]
    ql = qlens[b]
    tok[b, Q - ql:Q] = qtok[b, :ql]
    tok[b, Q] = SEP
    np_ = len(d) - 1
    for p in range(np_):
        tok[b, Q + 1 + p] = BASE + p * FAN + d[p]
    for i in range(S):
        for j in range(S):
            mask[b, i, j] = int(j == i or (j < i and Q - ql <= j <= Q + np_))
    for p in range(len(d)):
        tgt[b, p] = BASE + p * FAN + d[p]
        wts[b, p] = 1.0 - decay * p / D
        allowed = {e[p] for e in docids if len(e) > p and e[:p] == d[:p]}
        sib[b, p] = -1e9
        for a in allowed:
            sib[b, p, BASE + p * FAN + a] = 0.0

pos = torch.arange(S)
x = W["model.embed_tokens.weight"][tok]
for i in range(L):
    p = f"model.layers.{i}."
    h = rms_norm(x, W[p + "input_layernorm.weight"], 1e-5)
    q = (h @ W[p + "self_attn.q_proj.weight"].T).view(B, S, H, DH)
    k = (h @ W[p + "self_attn.k_proj.weight"].T).view(B, S, Hkv, DH)
    v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, S, Hkv, DH)
    q, k = rope(q, pos, 10000.0), rope(k, pos, 10000.0)
    a = attention(q, k, v, True, mask).reshape(B, S, H * DH)
    x = x + a @ W[p + "self_attn.o_proj.weight"].T
    h = rms_norm(x, W[p + "post_attention_layernorm.weight"], 1e-5)
    x = x + (torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[
        p + "mlp.down_proj.weight"].T
x = rms_norm(x, W["model.norm.weight"], 1e-5)
logits = x[:, Q:Q + D] @ W["lm_head.weight"].T


def wce(lg):
    on = tgt >= 0
    lse = torch.logsumexp(lg, -1)
    pick = lg.gather(-1, tgt.clamp(min=0)[..., None])[..., 0]
    return ((lse - pick) * wts)[on].sum() / wts[on].sum()


loss = wce(logits) + lam * wce(logits + sib)
# doc_only: CE_V over the docID tokens only (logits BASE .. V-1, targets shifted by BASE)
tgt_all = tgt
tgt = torch.where(tgt_all >= 0, tgt_all - BASE, tgt_all)
loss_doc = wce(logits[..., BASE:]) + lam * wce((logits + sib)[..., BASE:])
tgt = tgt_all
gdoc = torch.autograd.grad(loss_doc, list(W.values()), retain_graph=True)
loss.backward()
dflat = torch.zeros(len(docids), D, dtype=torch.int32)
dlen = torch.zeros(len(docids), dtype=torch.int32)
for i, d in enumerate(docids):
    dflat[i, :len(d)] = torch.tensor(d, dtype=torch.int32)
    dlen[i] = len(d)
out = {"docids": dflat, "docid_len": dlen, "items": torch.tensor(batch_items), "q_tok": qtok,
       "q_len": torch.tensor(qlens), "loss": loss.reshape(1), "loss_doc": loss_doc.reshape(1)}
for (k, w), gd in zip(W.items(), gdoc):
    out["w." + k] = w
    out["grad." + k] = w.grad
    out["gdoc." + k] = gd
print(save("higen", out))
