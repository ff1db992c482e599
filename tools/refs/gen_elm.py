"""PyTorch reference for the ELM code generators (src/models/elm/gen.c,
tests/test_elm.c): the class token + split sub-token embeddings
(concatenated, projected by in_proj), a Llama-style stack (pre-RMSNorm,
SwiGLU) with 2-D RoPE (head channels [0, D/2) rotated by the grid row,
[D/2, D) by the column, halves layout), the final RMSNorm, one head per
sub-token, and the loss: the mean over sub-tokens of the cross-entropy
(ignore -100), in float64.

elm.tref: dim 16, 2 layers, 2 heads, hidden 16, rope theta 100, 8-bit BAE
codes split into 2 sub-tokens of 4 bits (vocabularies 16, embedding tables
17 x 8 with the [MASK] row last); one weight set ("w.<name>", the names of
tsr_elm_model's parameters), a batch of 2 (sub-tokens (2, 49, 2), class
labels 3 and 10 = null). Two cases on the same weights:
  ar.*   causal, inputs = class token + codes 0..47, row p predicts code p;
  mlm.*  bidirectional, inputs = class token + 49 codes with the masked
         positions' sub-tokens replaced by [MASK], loss on masked positions.
Each holds the logits of both heads, the loss and every gradient
("<case>.grad.<name>").
elm_vq.tref: the one-token path (VQ codes on a 16-entry codebook, token_each
1), 1 layer, MLM, the same entries for one head.
Run: /usr/bin/python3 tools/refs/gen_elm.py
"""
import math

import torch
from tref import save

DT = torch.float64
torch.manual_seed(41)
C, L, H, F, S, SB, THETA, EPS = 16, 2, 2, 16, 2, 4, 100.0, 1e-5
V = 1 << SB
E = C // S
P, NCLS = 49, 10
HD = C // H


def rnd(*shape, scale=1.0):
    return scale * torch.randn(*shape, dtype=DT)


W = {"cls_embed.weight": rnd(NCLS + 1, C)}
for j in range(S):
    W[f"tok_embed.{j}.weight"] = rnd(V + 1, E)
W["in_proj.weight"] = rnd(C, C, scale=1 / math.sqrt(C))
for i in range(L):
    p = f"layers.{i}."
    W[p + "input_layernorm.weight"] = 1 + rnd(C, scale=0.2)
    W[p + "self_attn.q_proj.weight"] = rnd(C, C, scale=1 / math.sqrt(C))
    W[p + "self_attn.k_proj.weight"] = rnd(C, C, scale=1 / math.sqrt(C))
    W[p + "self_attn.v_proj.weight"] = rnd(C, C, scale=1 / math.sqrt(C))
    W[p + "self_attn.o_proj.weight"] = rnd(C, C, scale=1 / math.sqrt(C))
    W[p + "post_attention_layernorm.weight"] = 1 + rnd(C, scale=0.2)
    W[p + "mlp.gate_proj.weight"] = rnd(F, C, scale=1 / math.sqrt(C))
    W[p + "mlp.up_proj.weight"] = rnd(F, C, scale=1 / math.sqrt(C))
    W[p + "mlp.down_proj.weight"] = rnd(C, F, scale=1 / math.sqrt(F))
W["norm.weight"] = 1 + rnd(C, scale=0.2)
for j in range(S):
    W[f"head.{j}.weight"] = rnd(V, C, scale=1 / math.sqrt(C))
for w in W.values():
    w.requires_grad_(True)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope_halves(x, pos):
    """x (B,T,H,d), pos (T): x cos + rotate_half(x) sin, frequencies over d."""
    d = x.shape[-1]
    f = THETA ** (-torch.arange(0, d, 2, dtype=DT) / d)
    ang = pos.to(DT)[:, None] * f
    emb = torch.cat([ang, ang], -1)[None, :, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()


def rope2d(x, ph, pw):
    return torch.cat([rope_halves(x[..., : HD // 2], ph), rope_halves(x[..., HD // 2:], pw)], -1)


def attention(q, k, v, causal):
    T = q.shape[1]
    s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(HD)
    if causal:
        s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
    return torch.einsum("bhts,bshd->bthd", torch.softmax(s, -1), v)


def model_loss(sub, labels, mask, ar):
    """sub (B,49,S) sub-tokens, labels (B), mask (B,49) bool (MLM)."""
    B = sub.shape[0]
    Tc = P - 1 if ar else P
    inp = sub[:, :Tc].clone()
    if not ar:
        inp[mask] = V  # [MASK] row of every table
    parts = [W[f"tok_embed.{j}.weight"][inp[:, :, j]] for j in range(S)]
    codes = torch.cat(parts, -1) @ W["in_proj.weight"].T
    x = torch.cat([W["cls_embed.weight"][labels][:, None, :], codes], 1)
    T = Tc + 1
    s = torch.arange(T)
    ph = torch.where(s == 0, 0, 1 + (s - 1) // 7)
    pw = torch.where(s == 0, 0, 1 + (s - 1) % 7)
    for i in range(L):
        p = f"layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"])
        q = rope2d((h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, HD), ph, pw)
        k = rope2d((h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, H, HD), ph, pw)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, H, HD)
        x = x + attention(q, k, v, ar).reshape(B, T, C) @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"])
        gu = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
        x = x + gu @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["norm.weight"])
    if not ar:
        x = x[:, 1:]
    logits, loss = [], 0
    for j in range(S):
        lg = x @ W[f"head.{j}.weight"].T
        tg = sub[:, :, j].clone()
        if not ar:
            tg[~mask] = -100
        loss = loss + torch.nn.functional.cross_entropy(lg.reshape(-1, V), tg.reshape(-1), ignore_index=-100)
        logits.append(lg)
    return logits, loss / S


sub = torch.randint(0, V, (2, P, S))
labels = torch.tensor([3, NCLS])
mask = torch.rand(2, P) < 0.4
out = {"sub": sub, "labels": labels, "mask": mask.to(torch.int32)}
for k, w in W.items():
    out["w." + k] = w
for case, ar in (("ar", True), ("mlm", False)):
    lg, loss = model_loss(sub, labels, mask, ar)
    loss.backward()
    for j in range(S):
        out[f"{case}.logits.{j}"] = lg[j]
    out[case + ".loss"] = loss.reshape(1)
    for k, w in W.items():
        out[f"{case}.grad.{k}"] = w.grad
        w.grad = None
    print(case, "loss", float(loss))
print(save("elm", out))

# elm_vq.tref: the one-token path (VQ codes, token_each 1: no concatenation,
# no mean over sub-tokens) on a 16-entry codebook, 1 layer, MLM only (the
# AR / MLM differences are covered above); same batch layout, new draws.
torch.manual_seed(42)
S, V, L, E = 1, 16, 1, C
W = {"cls_embed.weight": rnd(NCLS + 1, C), "tok_embed.0.weight": rnd(V + 1, E),
     "in_proj.weight": rnd(C, C, scale=1 / math.sqrt(C))}
p = "layers.0."
W[p + "input_layernorm.weight"] = 1 + rnd(C, scale=0.2)
for k in ("q", "k", "v", "o"):
    W[p + f"self_attn.{k}_proj.weight"] = rnd(C, C, scale=1 / math.sqrt(C))
W[p + "post_attention_layernorm.weight"] = 1 + rnd(C, scale=0.2)
W[p + "mlp.gate_proj.weight"] = rnd(F, C, scale=1 / math.sqrt(C))
W[p + "mlp.up_proj.weight"] = rnd(F, C, scale=1 / math.sqrt(C))
W[p + "mlp.down_proj.weight"] = rnd(C, F, scale=1 / math.sqrt(F))
W["norm.weight"] = 1 + rnd(C, scale=0.2)
W["head.0.weight"] = rnd(V, C, scale=1 / math.sqrt(C))
for w in W.values():
    w.requires_grad_(True)
sub = torch.randint(0, V, (2, P, 1))
labels = torch.tensor([7, NCLS])
mask = torch.rand(2, P) < 0.5
lg, loss = model_loss(sub, labels, mask, False)
loss.backward()
out = {"sub": sub, "labels": labels, "mask": mask.to(torch.int32), "mlm.logits.0": lg[0], "mlm.loss": loss.reshape(1)}
for k, w in W.items():
    out["w." + k] = w
    out["mlm.grad." + k] = w.grad
print("vq mlm loss", float(loss))
print(save("elm_vq", out))
