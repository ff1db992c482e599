"""PyTorch reference for the BiTA training forward (src/models/bita/train.c,
tests/test_bita.c): a tiny Llama-style decoder (RMSNorm, rotate-half RoPE,
grouped-query attention, SwiGLU, tied head) written out here, run ONCE over
[ordinary rows | mask rows] against keys [P prompt K/V | the same rows]
with one explicit mask, i.e. independently of the two-phase C code:
  - ordinary row t: position t, sees rows 0..t, no prompt K/V;
  - mask j of the group starting at s: position s + j, sees the prompt
    K/V, ordinary rows 0..s-1 and masks 0..j of its group; label seq[s+1+j].
Outputs the weights (HF names), the adapter, the example, the mask-row
logits, the mean cross-entropy and its gradients w.r.t. the adapter.
Run: /usr/bin/python3 tools/refs/gen_bita.py  -> tests/refs/bita.tref"""
import torch
from tref import save

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)
C, L, H, HKV, HID, V, P, K = 32, 2, 4, 2, 48, 40, 3, 3
D = C // H
THETA, EPS = 10000.0, 1e-5
w = {"model.embed_tokens.weight": torch.randn(V, C) * 0.3}
for l in range(L):
    p = f"model.layers.{l}."
    w[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(C)
    w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(C)
    w[p + "self_attn.q_proj.weight"] = torch.randn(H * D, C) * 0.2
    w[p + "self_attn.k_proj.weight"] = torch.randn(HKV * D, C) * 0.2
    w[p + "self_attn.v_proj.weight"] = torch.randn(HKV * D, C) * 0.2
    w[p + "self_attn.o_proj.weight"] = torch.randn(C, H * D) * 0.2
    w[p + "mlp.gate_proj.weight"] = torch.randn(HID, C) * 0.2
    w[p + "mlp.up_proj.weight"] = torch.randn(HID, C) * 0.2
    w[p + "mlp.down_proj.weight"] = torch.randn(C, HID) * 0.2
w["model.norm.weight"] = 1 + 0.1 * torch.randn(C)

mask_emb = (torch.randn(K, C) * 0.3).requires_grad_()
pk = [(torch.randn(1, P, HKV, D) * 0.5).requires_grad_() for _ in range(L)]
pv = [(torch.randn(1, P, HKV, D) * 0.5).requires_grad_() for _ in range(L)]

seq = torch.randint(0, V, (14,))
n_prompt = 4
starts = [5, 8, 10]
T0 = max(starts)
n = T0 + K * len(starts)

ids_emb = w["model.embed_tokens.weight"][seq[:T0]]
x = torch.cat([ids_emb, torch.cat([mask_emb] * len(starts))], 0)  # (n, C)
pos = torch.tensor(list(range(T0)) + [s + j for s in starts for j in range(K)])
vis = torch.zeros(n, P + n, dtype=torch.bool)
for t in range(T0):
    vis[t, P:P + t + 1] = True
for g, s in enumerate(starts):
    for j in range(K):
        r = T0 + g * K + j
        vis[r, :P + s] = True
        vis[r, P + T0 + g * K:P + T0 + g * K + j + 1] = True
labels = torch.tensor([int(seq[s + 1 + j]) for s in starts for j in range(K)])


def rms(v, wt):
    return v * torch.rsqrt((v * v).mean(-1, keepdim=True) + EPS) * wt


def rope(v):  # v (n, heads, D), rotate-half
    half = D // 2
    inv = THETA ** (-torch.arange(0, half, dtype=torch.float64) * 2 / D)
    ang = pos[:, None].double() * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
    rot = torch.cat([-v[..., half:], v[..., :half]], -1)
    return v * cos + rot * sin


for l in range(L):
    p = f"model.layers.{l}."
    h = rms(x, w[p + "input_layernorm.weight"])
    q = rope((h @ w[p + "self_attn.q_proj.weight"].T).view(n, H, D))
    k = rope((h @ w[p + "self_attn.k_proj.weight"].T).view(n, HKV, D))
    v = (h @ w[p + "self_attn.v_proj.weight"].T).view(n, HKV, D)
    kk = torch.cat([pk[l][0], k], 0)  # (P+n, HKV, D)
    vv = torch.cat([pv[l][0], v], 0)
    kk = kk.repeat_interleave(H // HKV, 1)
    vv = vv.repeat_interleave(H // HKV, 1)
    sc = torch.einsum("thd,shd->hts", q, kk) / D ** 0.5
    sc = sc.masked_fill(~vis[None], float("-inf"))
    a = torch.einsum("hts,shd->thd", sc.softmax(-1), vv).reshape(n, H * D)
    x = x + a @ w[p + "self_attn.o_proj.weight"].T
    h = rms(x, w[p + "post_attention_layernorm.weight"])
    g_ = h @ w[p + "mlp.gate_proj.weight"].T
    u = h @ w[p + "mlp.up_proj.weight"].T
    x = x + (torch.nn.functional.silu(g_) * u) @ w[p + "mlp.down_proj.weight"].T
hid = rms(x, w["model.norm.weight"])
logits = hid @ w["model.embed_tokens.weight"].T
mlog = logits[T0:]
loss = torch.nn.functional.cross_entropy(mlog, labels)
loss.backward()

out = dict(w)
out["seq"] = seq
out["meta"] = torch.tensor([C, L, H, HKV, HID, V, P, K, n_prompt, len(seq)])
out["starts"] = torch.tensor(starts)
out["bita.mask_embed"] = mask_emb
for l in range(L):
    out[f"bita.prefix.{l}.key"] = pk[l]
    out[f"bita.prefix.{l}.value"] = pv[l]
    out[f"grad.prefix.{l}.key"] = pk[l].grad
    out[f"grad.prefix.{l}.value"] = pv[l].grad
out["grad.mask_embed"] = mask_emb.grad
out["ord_logits"] = logits[:T0]
out["mask_logits"] = mlog
out["loss"] = loss.reshape(1)
print("loss", float(loss))
save("bita", out)
