"""PyTorch reference for the search bi-encoder (src/search/biencoder.c,
tests/test_biencoder.c): the bidirectional Llama-block encoder with a
padding mask, masked mean pooling, the efficiency MLP on the item side,
L2 normalisation and InfoNCE over in-batch + extra negatives, in float64.

biencoder.tref: dim 16, 2 layers, 4 heads, 2 kv heads, hidden 24, vocab 30,
eff_hidden 8; 3 queries (T 5, lengths 5 3 1) against 5 items (T 7, lengths
7 4 2 6 1; the last two are extra negatives), tau 0.1. Holds every weight
("w.<name>"), the inputs, both embeddings, the loss and every gradient
("grad.<name>").
Run: /usr/bin/python3 tools/refs/gen_biencoder.py
"""
import math

import torch
from gen_nn import rms_norm, rope, attention
from tref import save

DT = torch.float64
torch.manual_seed(19)
cfg = dict(dim=16, n_layers=2, n_heads=4, n_kv_heads=2, hidden=24, vocab=30, eps=1e-5, theta=10000.0)
EH = 8
C, H, Hkv, F, V = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"], cfg["hidden"], cfg["vocab"]
D = C // H

W = {"model.embed_tokens.weight": torch.randn(V, C, dtype=DT)}
for i in range(cfg["n_layers"]):
    p = f"model.layers.{i}."
    W[p + "input_layernorm.weight"] = 1 + 0.2 * torch.randn(C, dtype=DT)
    W[p + "self_attn.q_proj.weight"] = torch.randn(H * D, C, dtype=DT) / math.sqrt(C)
    W[p + "self_attn.k_proj.weight"] = torch.randn(Hkv * D, C, dtype=DT) / math.sqrt(C)
    W[p + "self_attn.v_proj.weight"] = torch.randn(Hkv * D, C, dtype=DT) / math.sqrt(C)
    W[p + "self_attn.o_proj.weight"] = torch.randn(C, H * D, dtype=DT) / math.sqrt(C)
    W[p + "post_attention_layernorm.weight"] = 1 + 0.2 * torch.randn(C, dtype=DT)
    W[p + "mlp.gate_proj.weight"] = torch.randn(F, C, dtype=DT) / math.sqrt(C)
    W[p + "mlp.up_proj.weight"] = torch.randn(F, C, dtype=DT) / math.sqrt(C)
    W[p + "mlp.down_proj.weight"] = torch.randn(C, F, dtype=DT) / math.sqrt(F)
W["model.norm.weight"] = 1 + 0.2 * torch.randn(C, dtype=DT)
W["eff.0.weight"] = torch.randn(EH, 1, dtype=DT)
W["eff.0.bias"] = 0.5 * torch.randn(EH, dtype=DT)
W["eff.2.weight"] = 0.5 * torch.randn(C, EH, dtype=DT)
for w in W.values():
    w.requires_grad_(True)


def hidden(tokens, lens):
    B, T = tokens.shape
    mask = torch.zeros(B, T, T, dtype=torch.int32)
    for b in range(B):
        mask[b, :, : lens[b]] = 1
    pos = torch.arange(T)
    x = W["model.embed_tokens.weight"][tokens]
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], cfg["eps"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, D)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, Hkv, D)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, Hkv, D)
        q, k = rope(q, pos, cfg["theta"]), rope(k, pos, cfg["theta"])
        a = attention(q, k, v, False, mask).reshape(B, T, H * D)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg["eps"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    return rms_norm(x, W["model.norm.weight"], cfg["eps"])


def encode(tokens, lens, eff):
    h = hidden(tokens, lens)
    keep = torch.zeros(h.shape[0], h.shape[1], 1, dtype=DT)
    for b, n in enumerate(lens):
        keep[b, :n] = 1
    pooled = (h * keep).sum(1) / torch.tensor(lens, dtype=DT)[:, None]
    if eff is not None:
        z = torch.nn.functional.silu(eff[:, None] @ W["eff.0.weight"].T + W["eff.0.bias"])
        pooled = pooled + z @ W["eff.2.weight"].T
    # x / |x| written as the C code computes it: rmsnorm(x) / sqrt(C)
    return pooled * torch.rsqrt(pooled.pow(2).mean(-1, keepdim=True) + 1e-12) / math.sqrt(C)


qt = torch.randint(0, V, (3, 5))
ql = [5, 3, 1]
dt = torch.randint(0, V, (5, 7))
dl = [7, 4, 2, 6, 1]
eff = torch.tensor([0.9, 0.1, 0.5, 0.0, 1.0], dtype=DT)
tau = 0.1
qe = encode(qt, ql, None)
de = encode(dt, dl, eff)
loss = torch.nn.functional.cross_entropy(qe @ de.T / tau, torch.arange(3))
loss.backward()
out = {"q_tokens": qt, "q_lens": torch.tensor(ql), "d_tokens": dt, "d_lens": torch.tensor(dl), "eff": eff,
       "q_emb": qe, "d_emb": de, "loss": loss.reshape(1)}
for k, w in W.items():
    out["w." + k] = w
    out["grad." + k] = w.grad
print(save("biencoder", out))
