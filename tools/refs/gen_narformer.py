"""PyTorch reference for narformer's predictor (NAR-Former V2) on a tiny
config: both heads, predictions, losses and every parameter gradient.
Written from the paper and the official model's structure (GNN_LinearAttn,
GroupLinear with LayerNorm, layer scale, fusion gates, -logsigmoid).

    /usr/bin/python3 tools/refs/gen_narformer.py   -> tests/refs/narformer.tref"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tref  # noqa: E402

torch.manual_seed(0)
IN, D, L, RATIO, G, FC = 12, 16, 2, 4, 4, 8
H = RATIO * D


def params(head):
    p = {}

    def U(shape, fan):
        b = 1.0 / math.sqrt(fan)
        return (torch.rand(*shape) * 2 - 1) * b

    for i in range(L):
        din = IN if i == 0 else D
        pre = "layers.%d." % i
        p[pre + "gnn.lin_d.weight"] = U((din, 1), 1)
        p[pre + "gnn.lin_d.bias"] = U((din,), 1)
        p[pre + "gnn.lin_qk.weight"] = U((din, din), din)
        p[pre + "gnn.lin_qk.bias"] = U((din,), din)
        p[pre + "gnn.lin_l.weight"] = U((D, din), din)
        p[pre + "gnn.lin_l.bias"] = U((D,), din)
        p[pre + "gnn.lin_r.weight"] = U((D, din), din)
        p[pre + "ffn.norm.weight"] = 1 + 0.1 * torch.randn(D)
        p[pre + "ffn.norm.bias"] = 0.1 * torch.randn(D)
        p[pre + "ffn.up.weight"] = U((G, D // G, H // G), D // G)
        p[pre + "ffn.up.bias"] = 0.1 * torch.randn(G, 1, H // G)
        p[pre + "ffn.up.norm.weight"] = 1 + 0.1 * torch.randn(H // G)
        p[pre + "ffn.up.norm.bias"] = 0.1 * torch.randn(H // G)
        p[pre + "ffn.down.weight"] = U((G, H // G, D // G), H // G)
        p[pre + "ffn.down.bias"] = 0.1 * torch.randn(G, 1, D // G)
        p[pre + "ffn.down.norm.weight"] = 1 + 0.1 * torch.randn(D // G)
        p[pre + "ffn.down.norm.bias"] = 0.1 * torch.randn(D // G)
        # a large layer scale so the FFN branch shows in the gradients
        p[pre + "gamma"] = 0.5 + 0.1 * torch.randn(D)
    if head == "accuracy":
        T = L * D
        p["fusion.0.weight"] = U((T // 4, T), T)
        p["fusion.0.bias"] = U((T // 4,), T)
        p["fusion.2.weight"] = U((L, T // 4), T // 4)
        p["fusion.2.bias"] = U((L,), T // 4)
        hin = D
    else:
        p["static.weight"] = U((D, 40), 40)
        p["static.bias"] = U((D,), 40)
        hin = 2 * D
    p["fc_1.weight"] = U((FC, hin), hin)
    p["fc_1.bias"] = U((FC,), hin)
    p["fc_2.weight"] = U((FC, FC), FC)
    p["fc_2.bias"] = U((FC,), FC)
    p["predictor.weight"] = U((1, FC), FC)
    p["predictor.bias"] = U((1,), FC)
    return {k: v.clone().requires_grad_(True) for k, v in p.items()}


def group_linear(x, w, b, lw, lb):
    R = x.shape[0]
    h = x.view(R, G, -1).transpose(0, 1)
    h = torch.bmm(h, w) + b
    h = h.transpose(0, 1)
    h = F.layer_norm(h, (h.shape[-1],), lw, lb, 1e-5)
    return h.reshape(R, -1)


def forward(p, head, x, A, sf):
    B, N, _ = x.shape
    feats = []
    deg = A.sum(-1, keepdim=True)
    for i in range(L):
        pre = "layers.%d." % i
        gate = torch.sigmoid(F.linear(deg, p[pre + "gnn.lin_d.weight"], p[pre + "gnn.lin_d.bias"]))
        x = x * gate
        q = torch.sigmoid(F.linear(x, p[pre + "gnn.lin_qk.weight"], p[pre + "gnn.lin_qk.bias"]))
        s = torch.matmul(q, q.transpose(-2, -1)) / math.sqrt(x.shape[-1])
        s = s * A
        s = s / (s.sum(-1, keepdim=True) + 1e-6)
        h = F.linear(torch.matmul(s, x), p[pre + "gnn.lin_l.weight"], p[pre + "gnn.lin_l.bias"])
        h = h + F.linear(x, p[pre + "gnn.lin_r.weight"])
        h = F.relu(F.normalize(h, p=2.0, dim=-1))
        f = F.layer_norm(h, (D,), p[pre + "ffn.norm.weight"], p[pre + "ffn.norm.bias"], 1e-5)
        f = f.reshape(B * N, D)
        f = group_linear(f, p[pre + "ffn.up.weight"], p[pre + "ffn.up.bias"],
                         p[pre + "ffn.up.norm.weight"], p[pre + "ffn.up.norm.bias"])
        f = F.relu(f)
        f = group_linear(f, p[pre + "ffn.down.weight"], p[pre + "ffn.down.bias"],
                         p[pre + "ffn.down.norm.weight"], p[pre + "ffn.down.norm.bias"])
        x = h + p[pre + "gamma"] * f.reshape(B, N, D)
        feats.append(x.mean(1))
    if head == "accuracy":
        cat = torch.cat(feats, -1)
        w = F.relu(F.linear(cat, p["fusion.0.weight"], p["fusion.0.bias"]))
        w = torch.sigmoid(F.linear(w, p["fusion.2.weight"], p["fusion.2.bias"]))
        hh = (cat.view(B, L, D) * w.unsqueeze(2)).sum(1)
    else:
        s = F.relu(F.linear(sf, p["static.weight"], p["static.bias"]))
        hh = torch.cat([x.sum(1), s], 1)
    hh = F.relu(F.linear(hh, p["fc_1.weight"], p["fc_1.bias"]))
    hh = F.relu(F.linear(hh, p["fc_2.weight"], p["fc_2.bias"]))
    return -F.logsigmoid(F.linear(hh, p["predictor.weight"], p["predictor.bias"]))


out = {}
B, N = 3, 5
for head in ("latency", "accuracy"):
    p = params(head)
    x = torch.randn(B, N, IN).requires_grad_(True)
    if head == "latency":
        A = (torch.rand(B, N, N) < 0.5).float()
        A = ((A + A.transpose(1, 2)) > 0).float() * (1 - torch.eye(N))
        A[0, 4, :] = 0  # an isolated token: its attention row sums to 0
        A[0, :, 4] = 0
        sf = torch.randn(B, 40)
    else:
        A = (torch.rand(N, N) < 0.5).float()
        A = ((A + A.t()) > 0).float() * (1 - torch.eye(N))
        sf = None
    y = torch.rand(B, 1) + 0.5
    perm = torch.tensor([2, 0, 1])
    pred = forward(p, head, x, A, sf)
    loss = F.mse_loss(pred / y, torch.ones_like(y))
    if head == "accuracy":
        loss = loss + 0.1 * F.l1_loss(pred - pred[perm], y - y[perm])
    loss.backward()
    pre = head + "."
    for k, v in p.items():
        out[pre + k] = v.detach()
        out[pre + "grad." + k] = v.grad
    out[pre + "x"] = x.detach()
    out[pre + "grad.x"] = x.grad
    out[pre + "adj"] = A
    if sf is not None:
        out[pre + "static"] = sf
    out[pre + "y"] = y
    out[pre + "pred"] = pred.detach()
    out[pre + "loss"] = loss.detach().reshape(1)
# the two new ops alone: forward and input gradient for a fixed dy
xl = torch.randn(6, 7)
xl[2] = 0  # a zero row: the eps branch
xl = xl.requires_grad_(True)
dy = torch.randn(6, 7)
yl = F.normalize(xl, p=2.0, dim=-1, eps=1e-12)
yl.backward(dy)
out["op.l2.x"], out["op.l2.y"], out["op.l2.dy"], out["op.l2.dx"] = xl.detach(), yl.detach(), dy, xl.grad
xs = torch.tensor([-80.0, -20.0, -3.0, -0.5, 0.0, 0.25, 2.0, 15.0, 90.0]).requires_grad_(True)
dys = torch.randn(9)
ys = -F.logsigmoid(xs)
ys.backward(dys)
out["op.nls.x"], out["op.nls.y"], out["op.nls.dy"], out["op.nls.dx"] = xs.detach(), ys.detach(), dys, xs.grad
print("latency loss %.6f accuracy loss %.6f" % (out["latency.loss"].item(), out["accuracy.loss"].item()))
tref.save("narformer", out)
