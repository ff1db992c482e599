"""PyTorch references for src/models/ctnet (tests/test_ctnet.c): a tiny
config (dim 4, hidden 6,5, one DCNv2 cross layer, 2 token fields) of the
CTR tower, CTNet (frozen source tower, gated adapters at every MLP layer
input, and with adapters after the hidden layers only while the source
tower reads its own domain token) and the CoNet-style cross-connected
towers: logits, BCE loss and the gradients of every trained tensor."""
import torch
import torch.nn.functional as F
from tref import save

torch.manual_seed(0)
D, HID, NF, K, H = 4, [6, 5], 2, 8, 10  # H, K as TSR_CTNET_HIST, TSR_CTNET_FIELD_TOKS
UB, IB, TB, B = 7, 11, 9, 5
IN = (3 + NF) * D
out = {}


def tower(prefix):
    p = {
        "emb_user.weight": torch.randn(UB, D) * 0.5,
        "emb_item.weight": torch.randn(IB, D) * 0.5,
        "emb_tok.weight": torch.randn(TB, D) * 0.5,
        "cross.weight": torch.randn(IN, IN) * 0.2,
        "cross.bias": torch.randn(IN) * 0.1,
    }
    dims = [IN] + HID
    for l in range(len(HID)):
        p[f"mlp.{l}.weight"] = torch.randn(dims[l + 1], dims[l]) * 0.4
        p[f"mlp.{l}.bias"] = torch.randn(dims[l + 1]) * 0.1
    p["out.weight"] = torch.randn(1, HID[-1]) * 0.4
    p["out.bias"] = torch.randn(1) * 0.1
    for k in ("emb_user.weight", "emb_item.weight", "emb_tok.weight"):
        p[k][0] = 0  # padding bucket
    return {prefix + "." + k: v.requires_grad_() for k, v in p.items()}


def adapters(prefix, gated):
    p = {}
    dims = [IN] + HID
    for l, d in enumerate(dims):
        p[f"{prefix}.{l}.a.weight"] = torch.randn(d, d) * 0.3
        p[f"{prefix}.{l}.a.bias"] = torch.randn(d) * 0.1
        if gated:
            p[f"{prefix}.{l}.g.weight"] = torch.randn(d, d) * 0.3
            p[f"{prefix}.{l}.g.bias"] = torch.randn(d) * 0.1
    return {k: v.requires_grad_() for k, v in p.items()}


def pool_w(ids):
    cnt = (ids != 0).sum(-1, keepdim=True).clamp(min=1)
    return ((ids != 0).float() / cnt).unsqueeze(-1)


user = torch.randint(1, UB, (B,))
item = torch.randint(1, IB, (B,))
hist = torch.randint(0, IB, (B, H))
hist[1] = 0  # a row without history
tok = torch.randint(0, TB, (B, NF, K))
tok[2, 1] = 0  # an empty field
hist_w, tok_w = pool_w(hist), pool_w(tok)
y = torch.tensor([[1.0], [0.0], [1.0], [1.0], [0.0]])
out.update({"in.user": user, "in.item": item, "in.hist": hist, "in.tok": tok,
            "in.hist_w": hist_w, "in.tok_w": tok_w, "in.y": y})


def tower_input(p, pre, toks=None):
    toks = tok if toks is None else toks
    eu = p[pre + ".emb_user.weight"][user]
    ei = p[pre + ".emb_item.weight"][item]
    eh = (p[pre + ".emb_item.weight"][hist] * hist_w).sum(1)
    et = (p[pre + ".emb_tok.weight"][toks] * tok_w).sum(2).reshape(B, NF * D)
    x0 = torch.cat([eu, ei, eh, et], 1)
    return x0 * F.linear(x0, p[pre + ".cross.weight"], p[pre + ".cross.bias"]) + x0


def layer(p, pre, l, z):
    if l < len(HID):
        return F.relu(F.linear(z, p[f"{pre}.mlp.{l}.weight"], p[f"{pre}.mlp.{l}.bias"]))
    return F.linear(z, p[pre + ".out.weight"], p[pre + ".out.bias"])


def adapter(a, pre, l, z, gated):
    v = F.linear(z, a[f"{pre}.{l}.a.weight"], a[f"{pre}.{l}.a.bias"])
    if not gated:
        return v
    return v * torch.sigmoid(F.linear(z, a[f"{pre}.{l}.g.weight"], a[f"{pre}.{l}.g.bias"]))


params = {}
params.update(tower("source"))
params.update(tower("target"))
params.update(adapters("adapter", True))
params.update(adapters("link", False))
for k, v in params.items():
    out["p." + k] = v.detach().clone()

# CTNet: the source tower is frozen (no grad), adapters feed every layer input
with torch.no_grad():
    zs = [tower_input(params, "source")]
    for l in range(len(HID)):
        zs.append(layer(params, "source", l, zs[-1]))
z = tower_input(params, "target")
for l in range(len(HID) + 1):
    z = layer(params, "target", l, z + adapter(params, "adapter", l, zs[l], True))
loss = F.binary_cross_entropy_with_logits(z, y)
loss.backward()
out["ctnet.logits"] = z
out["ctnet.loss"] = loss.reshape(1)
for k, v in params.items():
    if k.startswith("target.") or k.startswith("adapter."):
        out["ctnet.g." + k] = v.grad.clone()
    v.grad = None

# CoNet: shared link H_l between the towers at every MLP layer input; loss
# of each row on its own domain's tower
dom_t = torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0]])
zt, zs2 = tower_input(params, "target"), tower_input(params, "source")
for l in range(len(HID) + 1):
    h = params[f"link.{l}.a.weight"]
    nt, ns = zt + zs2 @ h.t(), zs2 + zt @ h.t()
    zt, zs2 = layer(params, "target", l, nt), layer(params, "source", l, ns)
loss = (F.binary_cross_entropy_with_logits(zt, y, weight=dom_t)
        + F.binary_cross_entropy_with_logits(zs2, y, weight=1 - dom_t))
loss.backward()
out["conet.in.dom_t"] = dom_t
out["conet.logits_t"] = zt
out["conet.logits_s"] = zs2
out["conet.loss"] = loss.reshape(1)
for k, v in params.items():
    if k.startswith("target.") or k.startswith("source.") or (k.startswith("link.") and ".a.weight" in k):
        out["conet.g." + k] = v.grad.clone()
    v.grad = None
# CTNet as shipped: adapters after the hidden layers only (inputs of MLP
# layers 1.. and the output layer); the source tower reads tok_src, where
# field 1 plays the domain field and holds the source domain's token
tok_src = tok.clone()
tok_src[:, 1, 0] = torch.where(tok[:, 1, 0] != 0, torch.full_like(tok[:, 1, 0], 3), tok[:, 1, 0])
out["in.tok_src"] = tok_src
with torch.no_grad():
    zs = [tower_input(params, "source", tok_src)]
    for l in range(len(HID)):
        zs.append(layer(params, "source", l, zs[-1]))
z = tower_input(params, "target")
for l in range(len(HID) + 1):
    if l >= 1:
        z = z + adapter(params, "adapter", l, zs[l], True)
    z = layer(params, "target", l, z)
loss = F.binary_cross_entropy_with_logits(z, y)
loss.backward()
out["ctnet_h.logits"] = z
out["ctnet_h.loss"] = loss.reshape(1)
for k, v in params.items():
    if (k.startswith("target.") or k.startswith("adapter.")) and not k.startswith("adapter.0."):
        out["ctnet_h.g." + k] = v.grad.clone()
    v.grad = None
save("ctnet", out)
