"""PyTorch references for src/nn/ (tests/test_nn.c): a Llama-style decoder
written out explicitly (HF rotate-half RoPE, grouped-query attention by
repeating kv heads, SwiGLU MLP, pre-RMSNorm), run in float64 and stored as
f32. Weights come from a hash both sides compute (det_fill), so the files
hold only tokens, targets, positions, mask, logits, loss and the grad of
every parameter ("grad.<HF name>").

nn.tref:      dim 32, 2 layers, 4 heads, 2 kv heads, hidden 64, vocab 50,
              seq 7, batch 2, untied head, causal, positions 0..T-1.
nn_tied.tref: dim 16, 2 layers, 4 heads, 1 kv head, hidden 24, vocab 20,
              seq 5, batch 2, tied head, per-row positions, a caller mask
              (not causal), one ignored target.
"""
import math

import torch
from tref import save

DT = torch.float64


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, pos, theta):
    # x (B,T,H,D); pos (T) or (B,T)
    B, T, H, D = x.shape
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=DT) / D))
    pos = pos.to(DT).expand(B, T) if pos.dim() == 2 else pos.to(DT).view(1, T).expand(B, T)
    f = pos[..., None] * inv  # (B,T,D/2)
    emb = torch.cat((f, f), dim=-1)[:, :, None, :]  # (B,T,1,D)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def attention(q, k, v, causal, mask):
    # q (B,T,H,D), k v (B,T,Hkv,D)
    B, T, H, D = q.shape
    rep = H // k.shape[2]
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D)
    allow = torch.ones(B, 1, T, T, dtype=torch.bool)
    if causal:
        allow = allow & torch.tril(torch.ones(T, T, dtype=torch.bool))
    if mask is not None:
        allow = allow & (mask.bool().view(B, 1, T, T) if mask.dim() == 3 else mask.bool().view(1, 1, T, T))
    s = s.masked_fill(~allow, float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.einsum("bhts,bshd->bthd", p, v)


def forward(W, cfg, tokens, pos, causal, mask):
    B, T = tokens.shape
    C, H, Hkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    D = C // H
    x = W["model.embed_tokens.weight"][tokens]
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], cfg["eps"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, D)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, Hkv, D)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, Hkv, D)
        q, k = rope(q, pos, cfg["theta"]), rope(k, pos, cfg["theta"])
        a = attention(q, k, v, causal, mask).reshape(B, T, H * D)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg["eps"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], cfg["eps"])
    head = W["model.embed_tokens.weight"] if cfg["tied"] else W["lm_head.weight"]
    return x @ head.T


M64 = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def det_fill(k, n, offset, scale):
    """offset + scale * u, u uniform in [-1,1) from a hash of (k, i); the C
    test (det_fill in tests/test_nn.c) makes the same f32 values, so the
    fixture need not store the weights."""
    vals = []
    for i in range(n):
        u = (splitmix64(((k + 1) << 32) + i) >> 40) / float(1 << 24)
        vals.append(offset + scale * (2.0 * u - 1.0))
    return torch.tensor(vals, dtype=torch.float32).to(DT)


def make_weights(cfg):
    """Parameters in the order tsr_nn_llama_init registers them; the k-th
    gets hash stream k."""
    C, H, Hkv, F, V = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"], cfg["hidden"], cfg["vocab"]
    D = C // H
    W = {}

    def lin(name, out, inp):
        W[name] = det_fill(len(W), out * inp, 0.0, math.sqrt(3.0 / inp)).view(out, inp)

    def norm(name):
        W[name] = det_fill(len(W), C, 1.0, 0.3)

    W["model.embed_tokens.weight"] = det_fill(0, V * C, 0.0, 1.7).view(V, C)
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        norm(p + "input_layernorm.weight")
        lin(p + "self_attn.q_proj.weight", H * D, C)
        lin(p + "self_attn.k_proj.weight", Hkv * D, C)
        lin(p + "self_attn.v_proj.weight", Hkv * D, C)
        lin(p + "self_attn.o_proj.weight", C, H * D)
        norm(p + "post_attention_layernorm.weight")
        lin(p + "mlp.gate_proj.weight", F, C)
        lin(p + "mlp.up_proj.weight", F, C)
        lin(p + "mlp.down_proj.weight", C, F)
    norm("model.norm.weight")
    if not cfg["tied"]:
        lin("lm_head.weight", V, C)
    for w in W.values():
        w.requires_grad_(True)
    return W


def case(name, cfg, B, T, pos, causal, mask, ignore, seed):
    gen = torch.Generator().manual_seed(seed)
    W = make_weights(cfg)
    tokens = torch.randint(0, cfg["vocab"], (B, T), generator=gen)
    targets = torch.randint(0, cfg["vocab"], (B, T), generator=gen)
    for (b, t) in ignore:
        targets[b, t] = -1
    logits = forward(W, cfg, tokens, pos, causal, mask)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab"]), targets.reshape(-1),
                                             ignore_index=-1)
    loss.backward()
    out = {}
    out.update({"tokens": tokens, "targets": targets, "pos": pos, "logits": logits,
                "loss": loss.reshape(1)})
    if mask is not None:
        out["mask"] = mask.to(torch.int32)
    for k, w in W.items():
        out["grad." + k] = w.grad
    print(name, "loss", loss.item())
    save(name, out)


torch.manual_seed(0)
cfg = dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden=64, vocab=50, eps=1e-5,
           theta=10000.0, tied=False)
case("nn", cfg, 2, 7, torch.arange(7), True, None, [], 1)

cfg_t = dict(dim=16, n_layers=2, n_heads=4, n_kv_heads=1, hidden=24, vocab=20, eps=1e-6,
             theta=500.0, tied=True)
pos_t = torch.tensor([[3, 4, 5, 6, 7], [0, 1, 1, 2, 2]])
# row 0: sliding window of 2 (non-causal looks one ahead); row 1: a token tree
mask_t = torch.zeros(2, 5, 5, dtype=torch.int32)
for t in range(5):
    for s in range(5):
        mask_t[0, t, s] = int(abs(t - s) <= 1)
tree_parent = [-1, 0, 0, 1, 2]
for t in range(5):
    a = t
    while a >= 0:
        mask_t[1, t, a] = 1
        a = tree_parent[a]
case("nn_tied", cfg_t, 2, 5, pos_t, False, mask_t, [(0, 2)], 2)
