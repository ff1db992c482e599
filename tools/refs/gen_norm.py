"""PyTorch references for src/ops/norm.c, loss.c and rope.c
(tests/test_ops_norm.c, test_ops_loss.c, test_ops_rope.c).
Writes tests/refs/norm.tref, loss.tref and rope.tref."""
import torch
import torch.nn.functional as F
from tref import save

torch.manual_seed(0)


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def run(out, prefix, fn, inputs, grad_names, gy=None):
    """Call fn(*inputs), backprop a random (or given) upstream grad, store
    inputs, output y, upstream gy and the grads g<name> of the leaves."""
    y = fn(*inputs.values())
    if gy is None:
        gy = torch.randn_like(y)
    y.backward(gy)
    for k, v in inputs.items():
        out[prefix + k] = v
    out[prefix + "y"] = y
    out[prefix + "gy"] = gy
    for k in grad_names:
        out[prefix + "g" + k] = inputs[k].grad


# ------------------------------------------------------------------ norms
norm = {}
x = torch.randn(3, 5, 16) * 2 + 0.5
run(norm, "ln_", lambda x, w, b: F.layer_norm(x, (16,), w, b, 1e-5),
    {"x": leaf(x), "w": leaf(torch.randn(16)), "b": leaf(torch.randn(16))}, ["x", "w", "b"])
# no affine, large common offset (input ulp 7.6e-6): the reference is
# computed in float64 from the f32 input, so it is the exact answer rather
# than another f32 rounding of it
x = (torch.randn(6, 33) + 100.0).double()
run(norm, "ln0_", lambda x: F.layer_norm(x, (33,), None, None, 1e-5), {"x": leaf(x)}, ["x"])


def rmsnorm_llama(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


run(norm, "rms_", lambda x, w: rmsnorm_llama(x, w, 1e-6),
    {"x": leaf(torch.randn(4, 3, 24)), "w": leaf(torch.randn(24))}, ["x", "w"])
run(norm, "rms0_", lambda x: rmsnorm_llama(x, 1.0, 1e-5), {"x": leaf(torch.randn(5, 40))}, ["x"])

run(norm, "sm_", lambda x: torch.softmax(x, -1), {"x": leaf(torch.randn(4, 7, 11) * 3)}, ["x"])
run(norm, "lsm_", lambda x: torch.log_softmax(x, -1), {"x": leaf(torch.randn(4, 7, 11) * 3)}, ["x"])
# large magnitudes: a naive exp would overflow
run(norm, "smbig_", lambda x: torch.softmax(x, -1), {"x": leaf(torch.randn(3, 50) * 1000)}, ["x"])
run(norm, "lsmbig_", lambda x: torch.log_softmax(x, -1), {"x": leaf(torch.randn(3, 50) * 1000)}, ["x"])
save("norm", norm)

# ----------------------------------------------------------------- losses
loss = {}


def ce_weighted(x, t, w, ignore_index, ls):
    """tessera's definition: per-row torch loss, weighted mean over counted rows."""
    rows = F.cross_entropy(x, t.long(), ignore_index=ignore_index, label_smoothing=ls, reduction="none")
    keep = (t != ignore_index).to(x.dtype)
    return (rows * w).sum() / (w * keep).sum()


def ce_case(name, N, V, scale, ignore_index, ls, weights, n_ignored, classw=False):
    x = leaf(torch.randn(N, V) * scale)
    t = torch.randint(0, V, (N,))
    if ignore_index >= 0:
        t[t == ignore_index] = (ignore_index + 1) % V
    t[torch.randperm(N)[:n_ignored]] = ignore_index
    g = torch.tensor(1.7)
    w = None
    if classw:
        # per-class weights given to torch == per-token weights w_i = cw[t_i] (ls = 0)
        cw = torch.rand(V) + 0.2
        y = F.cross_entropy(x, t.long(), weight=cw, ignore_index=ignore_index)
        w = cw[t.clamp(min=0)]
    elif weights:
        w = torch.rand(N) * 2
        y = ce_weighted(x, t, w, ignore_index, ls)
    else:
        y = F.cross_entropy(x, t.long(), ignore_index=ignore_index, label_smoothing=ls)
    y.backward(g)
    p = "ce_" + name + "_"
    loss.update({p + "x": x, p + "t": t.int(), p + "y": y, p + "gy": g, p + "gx": x.grad})
    if w is not None:
        loss[p + "w"] = w


ce_case("plain", 12, 37, 3.0, -100, 0.0, False, 0)
ce_case("ign_ls", 12, 37, 3.0, -100, 0.1, False, 4)
ce_case("w_ls", 12, 37, 3.0, -100, 0.2, True, 3)
ce_case("classw", 10, 23, 2.0, 3, 0.0, False, 2, classw=True)
ce_case("big", 8, 50, 1000.0, -100, 0.1, False, 2)
ce_case("wide", 6, 1003, 4.0, -1, 0.05, True, 1)

x = torch.randn(5, 7) * 3
x[0, :3] = torch.tensor([60.0, -60.0, 0.0])  # stability: saturated logits
y = torch.rand(5, 7)
wt = torch.rand(5, 7) + 0.5
pw = 2.0
run(loss, "bce_", lambda x, y, wt: F.binary_cross_entropy_with_logits(
    x, y, weight=wt, pos_weight=torch.full((7,), pw)), {"x": leaf(x), "t": y, "wt": wt}, ["x"],
    gy=torch.tensor(1.3))


def bce_manual(x, y, pos_w, neg_w):
    return (-(pos_w * y * F.logsigmoid(x) + neg_w * (1 - y) * F.logsigmoid(-x))).mean()


x = torch.randn(4, 9) * 4
y = (torch.rand(4, 9) > 0.5).float()
run(loss, "bcen_", lambda x, y: bce_manual(x, y, 0.7, 0.4), {"x": leaf(x), "t": y}, ["x"],
    gy=torch.tensor(0.8))

a, b = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
run(loss, "mse_", lambda a, b: F.mse_loss(a, b), {"a": leaf(a), "b": leaf(b)}, ["a", "b"],
    gy=torch.tensor(1.1))
run(loss, "l1_", lambda a, b: F.l1_loss(a, b), {"a": leaf(a), "b": leaf(b)}, ["a", "b"],
    gy=torch.tensor(0.9))
save("loss", loss)

# ------------------------------------------------------------------- rope
rope = {}


def rope_interleaved(x, pos, theta):
    """Meta's form: pairs (2i, 2i+1) as complex numbers times e^{i pos f_i}."""
    D = x.shape[-1]
    f = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = pos.to(torch.float64)[..., None] * f          # (B,T,D/2)
    rot = torch.polar(torch.ones_like(ang), ang)[:, :, None, :]
    xc = torch.view_as_complex(x.reshape(*x.shape[:-1], D // 2, 2))
    return torch.view_as_real(xc * rot).reshape(x.shape)


def rope_halves(x, pos, theta):
    """HF Llama's form: x*cos + rotate_half(x)*sin with cos = cat(c, c)."""
    D = x.shape[-1]
    f = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = pos.to(torch.float64)[..., None] * f
    emb = torch.cat([ang, ang], -1)[:, :, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()


def rope_case(name, fn, B, T, H, D, pos, theta):
    """pos: (T,) shared or (B,T) per row; computed in float64."""
    x = leaf(torch.randn(B, T, H, D, dtype=torch.float64))
    pos_bt = pos.expand(B, T) if pos.dim() == 1 else pos
    y = fn(x, pos_bt, theta)
    gy = torch.randn_like(y)
    y.backward(gy)
    p = "rope_" + name + "_"
    rope.update({p + "x": x, p + "pos": pos.reshape(-1).int(), p + "y": y, p + "gy": gy, p + "gx": x.grad})


B, T, H, D = 2, 5, 3, 16
rope_case("i", rope_interleaved, B, T, H, D, torch.arange(T) + 3, 10000.0)
rope_case("h", rope_halves, B, T, H, D, torch.arange(T) + 3, 10000.0)
per_row = torch.tensor([[0, 1, 2, 3, 4], [7, 7, 8, 1500, 2]])
rope_case("ri", rope_interleaved, B, T, H, D, per_row, 10000.0)
rope_case("rh", rope_halves, B, T, H, D, per_row, 500.0)

# 2-D: first D/2 channels by row position, last D/2 by column (halves layout)
x = leaf(torch.randn(B, 6, H, D, dtype=torch.float64))
ph = torch.tensor([0, 0, 0, 1, 1, 1])
pw = torch.tensor([[0, 1, 2, 0, 1, 2], [5, 6, 7, 5, 6, 7]])
y = torch.cat([rope_halves(x[..., : D // 2], ph.expand(B, 6), 100.0),
               rope_halves(x[..., D // 2:], pw, 100.0)], -1)
gy = torch.randn_like(y)
y.backward(gy)
rope.update({"rope2d_x": x, "rope2d_ph": ph.int(), "rope2d_pw": pw.reshape(-1).int(), "rope2d_y": y,
             "rope2d_gy": gy, "rope2d_gx": x.grad})
save("rope", rope)
