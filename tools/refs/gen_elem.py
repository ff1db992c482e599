"""PyTorch references for src/ops/elem.c, shape.c and activ.c
(tests/test_ops_elem.c, test_ops_shape.c, test_ops_activ.c).
Writes tests/refs/elem.tref, elem_shape.tref, elem_activ.tref."""
import torch
import torch.nn.functional as F
from tref import save

torch.manual_seed(0)


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def run(out, prefix, fn, inputs):
    """y = fn(*inputs); backward with random gy; store inputs, y, gy, grads."""
    ins = [leaf(t) if t.is_floating_point() else t for t in inputs]
    y = fn(*ins)
    gy = torch.randn_like(y)
    y.backward(gy)
    names = "abcdefgh"
    for i, t in enumerate(ins):
        out[f"{prefix}{names[i]}"] = t
        if t.is_floating_point():
            out[f"{prefix}g{names[i]}"] = t.grad
    out[prefix + "y"] = y
    out[prefix + "gy"] = gy


# ---------------------------------------------------------------- elem
e = {}
BIN_SHAPES = [
    ((3, 4), (3, 4)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4)),
    ((2, 1, 4), (1, 3, 1)),
    ((2, 3, 1, 5), (3, 4, 1)),
    ((5, 1), (1,)),
    ((2, 3, 4), (2, 1, 4)),
]
OPS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
for op, fn in OPS.items():
    for k, (sa, sb) in enumerate(BIN_SHAPES):
        a = torch.randn(sa)
        b = torch.randn(sb)
        if op == "div":  # keep the divisor away from zero
            b = torch.sign(b) * (0.5 + b.abs())
        run(e, f"{op}{k}_", fn, [a, b])
run(e, "scale_", lambda x: x * 0.75, [torch.randn(3, 5)])
run(e, "adds_", lambda x: x + (-1.25), [torch.randn(3, 5)])
x = torch.randn(2, 3, 4)
for dim in (0, 1, 2, -1, -3):
    for kd in (0, 1):
        run(e, f"sum_d{dim}_k{kd}_", lambda t: t.sum(dim, keepdim=bool(kd)), [x])
        run(e, f"mean_d{dim}_k{kd}_", lambda t: t.mean(dim, keepdim=bool(kd)), [x])
x4 = torch.randn(2, 3, 4, 5)
run(e, "sum4_", lambda t: t.sum(2), [x4])
run(e, "mean4_", lambda t: t.mean(-1, keepdim=True), [x4])
run(e, "sumall_", lambda t: t.sum(), [x4])
run(e, "meanall_", lambda t: t.mean(), [x4])
run(e, "sum1d_", lambda t: t.sum(0), [torch.randn(7)])
save("elem", e)

# --------------------------------------------------------------- shape
s = {}
run(s, "reshape_", lambda t: t.reshape(4, -1) * 1.0, [torch.randn(2, 3, 4)])
run(s, "tr0_", lambda t: t.transpose(1, -1).contiguous(), [torch.randn(2, 3, 4, 5)])
run(s, "tr1_", lambda t: t.transpose(0, 1).contiguous(), [torch.randn(3, 5)])
PERMS = [((2, 3, 4, 5), (0, 2, 1, 3)), ((2, 3, 4, 5), (3, 1, 0, 2)), ((2, 3, 4), (2, 0, 1)),
         ((2, 1, 4, 3), (1, 3, 2, 0))]
for k, (sh, p) in enumerate(PERMS):
    run(s, f"perm{k}_", lambda t: t.permute(*p).contiguous(), [torch.randn(sh)])
SLICES = [((2, 5, 3), 1, 1, 4), ((2, 5, 3), -1, 0, 2), ((4, 3), 0, 2, 4), ((2, 5, 3), 1, -3, 5)]
for k, (sh, d, st, en) in enumerate(SLICES):
    n = sh[d]
    st, en = (st + n if st < 0 else st), (en + n if en < 0 else en)
    run(s, f"slice{k}_", lambda t: t.narrow(d, st, en - st), [torch.randn(sh)])
CATS = [([(2, 1, 3), (2, 4, 3), (2, 2, 3)], 1), ([(3, 2), (3, 5)], -1), ([(1, 4), (3, 4)], 0)]
for k, (shs, d) in enumerate(CATS):
    run(s, f"cat{k}_", lambda *ts: torch.cat(ts, d), [torch.randn(sh) for sh in shs])
xs = leaf(torch.randn(2, 7, 3))
parts = torch.split(xs, [2, 4, 1], dim=1)
s["split_x"] = xs
for i, p in enumerate(parts):
    g = torch.randn_like(p)
    p.backward(g, retain_graph=True)
    s[f"split_y{i}"] = p
    s[f"split_gy{i}"] = g
s["split_gx"] = xs.grad
w = torch.randn(10, 6)
ids = torch.tensor([[1, 3, 3, 9, 0], [3, 7, 1, 1, 3]], dtype=torch.int32)
run(s, "emb_", lambda ww, ii: F.embedding(ii.long(), ww), [w, ids])
ISEL = [((4, 5, 3), 1, [4, 0, 4, 2]), ((4, 3), 0, [3, 3, 1]), ((2, 3, 4), -1, [0, 3])]
for k, (sh, d, ix) in enumerate(ISEL):
    it = torch.tensor(ix, dtype=torch.int32)
    run(s, f"isel{k}_", lambda t, i: torch.index_select(t, d, i.long()), [torch.randn(sh), it])
GATH = [((3, 5), 1, (3, 4)), ((4, 3, 2), 0, (2, 3, 2)), ((2, 3, 4), -1, (2, 2, 3)), ((3, 4, 2, 5), 2, (2, 3, 3, 4))]
for k, (sh, d, ish) in enumerate(GATH):
    it = torch.randint(0, sh[d], ish, dtype=torch.int32)
    run(s, f"gath{k}_", lambda t, i: torch.gather(t, d, i.long()), [torch.randn(sh), it])
save("elem_shape", s)

# --------------------------------------------------------------- activ
a = {}
x = torch.randn(3, 50) * 3
ACTS = {
    "relu": F.relu,
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "gelu_erf": lambda t: F.gelu(t, approximate="none"),
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}
for name, fn in ACTS.items():
    run(a, name + "_", fn, [x])
run(a, "swiglu_", lambda g, u: F.silu(g) * u, [torch.randn(4, 16) * 2, torch.randn(4, 16)])
save("elem_activ", a)
