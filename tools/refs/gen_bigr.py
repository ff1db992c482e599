"""PyTorch reference for the tiny BiGR of tests/test_bigr.c (src/models/bigr):
the transformer (bit embedding, mask token, class-token prefix, shared adaLN
with per-layer offsets, bidirectional Llama blocks with 2-D RoPE), the
binary transcoder, and the class-balanced weighted BCE on flip targets.
Writes tests/refs/bigr.tref: every parameter (p.<name>), the inputs, the
transformer output z, the transcoder logits, the loss and every parameter
gradient (g.<name>)."""
import math

import torch
import torch.nn.functional as F
from tref import save

torch.manual_seed(0)
K, d, NL, H, FF, C, h, NB, T = 4, 16, 2, 2, 24, 3, 8, 2, 16
L, G = 49, 7
B = 2
Dh = d // H
eps_rms = 1e-5

names = []
P = {}


def param(name, *shape, std=0.2):
    P[name] = (torch.randn(*shape) * std).requires_grad_(True)
    names.append(name)


param("tok_embeddings.weight", d, K)
param("tok_embeddings.bias", d)
param("mask_tok", d)
param("cls_embedding.weight", C + 1, d)
param("adaLN.weight", 6 * d, d)
param("adaLN.bias", 6 * d)
for i in range(NL):
    param(f"layers.{i}.ada_gss", 6, d)
    for n in ("attention_norm", "ffn_norm"):
        P[f"layers.{i}.{n}.weight"] = (1 + 0.1 * torch.randn(d)).requires_grad_(True)
        names.append(f"layers.{i}.{n}.weight")
    for n in ("wq", "wk", "wv", "wo"):
        param(f"layers.{i}.attention.{n}.weight", d, d)
    param(f"layers.{i}.feed_forward.w1.weight", FF, d)
    param(f"layers.{i}.feed_forward.w3.weight", FF, d)
    param(f"layers.{i}.feed_forward.w2.weight", d, FF)
P["norm.weight"] = (1 + 0.1 * torch.randn(d)).requires_grad_(True)
names.append("norm.weight")
param("diffusion_pos_embed", L, d)
for n, (o, i) in {"x_embedder": (h, K), "c_embedder": (h, d), "t_embedder.fc1": (h, h),
                  "t_embedder.fc2": (h, h)}.items():
    param(f"denoise.{n}.weight", o, i)
    param(f"denoise.{n}.bias", o)
for j in range(NB):
    for n, o in (("fc1", h), ("fc2", h), ("ada", 3 * h)):
        param(f"denoise.blocks.{j}.{n}.weight", o, h)
        param(f"denoise.blocks.{j}.{n}.bias", o)
param("denoise.final.ada.weight", 2 * h, h)
param("denoise.final.ada.bias", 2 * h)
param("denoise.final.linear.weight", K, h)
param("denoise.final.linear.bias", K)


def lin(x, n, bias=True):
    return F.linear(x, P[n + ".weight"], P[n + ".bias"] if bias else None)


def rms(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps_rms) * w


def rope_half(x, pos, theta=10000.0):
    # x (..., T, H, dd): rotate pairs (i, i + dd/2), angle pos * theta^(-2i/dd)
    dd = x.shape[-1]
    i = torch.arange(dd // 2, dtype=torch.float64)
    ang = pos.to(torch.float64)[:, None] * theta ** (-2 * i / dd)
    c, s = torch.cos(ang).float()[:, None, :], torch.sin(ang).float()[:, None, :]
    a, b = x[..., : dd // 2], x[..., dd // 2:]
    return torch.cat([a * c - b * s, a * s + b * c], -1)


def rope2d(x, ph, pw):
    half = x.shape[-1] // 2
    return torch.cat([rope_half(x[..., :half], ph), rope_half(x[..., half:], pw)], -1)


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


bits = (torch.rand(B, L, K) < 0.4).float()
mask = torch.zeros(B, L)
mask[0, [0, 5, 17, 30, 48]] = 1
mask[1, 3:40:3] = 1
labels = torch.tensor([1, 3])  # 3 = null class

e = lin(bits, "tok_embeddings") * (1 - mask[..., None]) + mask[..., None] * P["mask_tok"]
ce = P["cls_embedding.weight"][labels]
x = torch.cat([ce[:, None, :], e], 1)
ada = lin(F.silu(ce), "adaLN").view(B, 6, d)
ph = torch.tensor([0] + [p // G + 1 for p in range(L)])
pw = torch.tensor([0] + [p % G + 1 for p in range(L)])
for i in range(NL):
    m = ada + P[f"layers.{i}.ada_gss"]
    s = [m[:, k:k + 1, :] for k in range(6)]
    a = modulate(rms(x, P[f"layers.{i}.attention_norm.weight"]), s[0], s[1])
    q = lin(a, f"layers.{i}.attention.wq", False).view(B, L + 1, H, Dh)
    k = lin(a, f"layers.{i}.attention.wk", False).view(B, L + 1, H, Dh)
    v = lin(a, f"layers.{i}.attention.wv", False).view(B, L + 1, H, Dh)
    q, k = rope2d(q, ph, pw), rope2d(k, ph, pw)
    att = torch.softmax(torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(Dh), -1)
    o = torch.einsum("bhts,bshd->bthd", att, v).reshape(B, L + 1, d)
    x = x + s[2] * lin(o, f"layers.{i}.attention.wo", False)
    f = modulate(rms(x, P[f"layers.{i}.ffn_norm.weight"]), s[3], s[4])
    g = F.silu(lin(f, f"layers.{i}.feed_forward.w1", False)) * lin(f, f"layers.{i}.feed_forward.w3", False)
    x = x + s[5] * lin(g, f"layers.{i}.feed_forward.w2", False)
z = rms(x, P["norm.weight"])[:, 1:] + P["diffusion_pos_embed"]

# transcoder on the masked rows
rows = mask.reshape(-1).nonzero().squeeze(1)
M = rows.numel()
cond = z.reshape(B * L, d)[rows]
x0 = bits.reshape(B * L, K)[rows]
tsteps = torch.randint(0, T, (M,))
tt = tsteps + 1
kq = 1 - tt.float() / T
xt = (torch.rand(M, K) < (kq[:, None] * x0 + tt.float()[:, None] / (2 * T))).float()
y = (xt != x0).float()
half = h // 2
fr = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
an = tsteps.to(torch.float64)[:, None] * fr
tf = torch.cat([torch.cos(an), torch.sin(an)], -1).float()
temb = lin(F.silu(lin(tf, "denoise.t_embedder.fc1")), "denoise.t_embedder.fc2")
cc = lin(cond, "denoise.c_embedder") + temb
sc = F.silu(cc)
hx = lin(xt * 2 - 1, "denoise.x_embedder")
for j in range(NB):
    sh, scl, gt = lin(sc, f"denoise.blocks.{j}.ada").chunk(3, 1)
    a = modulate(F.layer_norm(hx, (h,), eps=1e-6), sh, scl)
    hx = hx + gt * lin(F.silu(lin(a, f"denoise.blocks.{j}.fc1")), f"denoise.blocks.{j}.fc2")
sh, scl = lin(sc, "denoise.final.ada").chunk(2, 1)
logits = lin(modulate(F.layer_norm(hx, (h,), eps=1e-6), sh, scl), "denoise.final.linear")
frac = y.mean(1, keepdim=True)
w = (1 - frac) * y + frac * (1 - y) + 1.0 / K
loss = (w * F.binary_cross_entropy_with_logits(logits, y, reduction="none")).mean()
loss.backward()

out = {"bits": bits, "mask": mask, "labels": labels.int(), "rows": rows.int(), "tsteps": tsteps.int(),
       "xt": xt, "y": y, "z": z, "logits": logits, "loss": loss.reshape(1)}
for n in names:
    out["p." + n] = P[n]
    out["g." + n] = P[n].grad
print(save("bigr", out), len(names), "parameters, loss", loss.item())
