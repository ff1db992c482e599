"""PyTorch references for src/ops/conv.c, pool.c and chnorm.c
(tests/test_ops_conv.c, test_ops_pool.c, test_ops_chnorm.c).

Each case stores its inputs, output y, a random output grad gy and the
grads of every input; integer case parameters go in an i32 tensor "<case>p"
so the C tests read the geometry from the fixture rather than repeating it.
"""
import torch
import torch.nn.functional as F
from tref import save

torch.manual_seed(0)


def run(out, p, fn, ins, params):
    leaves = {k: v.clone().requires_grad_(True) for k, v in ins.items() if v is not None}
    y = fn(**leaves)
    gy = torch.randn_like(y)
    y.backward(gy)
    out[p + "p"] = torch.tensor(params, dtype=torch.int32)
    for k, v in leaves.items():
        out[p + k] = v.detach()
        out[p + "g" + k] = v.grad
    out[p + "y"] = y.detach()
    out[p + "gy"] = gy


# ---- conv2d: (name, x shape, w shape, stride, pad, dil, groups, bias)
conv_cases = [
    ("c_basic", (2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    ("c_s2", (2, 3, 9, 8), (5, 3, 3, 3), (2, 2), (1, 1), (1, 1), 1, True),
    ("c_dil2", (2, 2, 9, 9), (3, 2, 3, 3), (1, 1), (2, 2), (2, 2), 1, False),
    ("c_g2", (2, 4, 7, 5), (6, 2, 3, 2), (1, 2), (1, 0), (1, 1), 2, True),
    ("c_dw", (3, 4, 6, 6), (4, 1, 3, 3), (1, 1), (1, 1), (1, 1), 4, True),
    ("c_1x1", (2, 5, 4, 3), (3, 5, 1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    ("c_odd", (1, 3, 8, 7), (2, 3, 2, 3), (2, 1), (0, 2), (1, 2), 1, True),
]
conv = {}
for name, xs, ws, s, p, d, g, hb in conv_cases:
    ins = {"x": torch.randn(xs), "w": torch.randn(ws) * 0.5, "b": torch.randn(ws[0]) if hb else None}
    fn = (lambda s, p, d, g: lambda x, w, b=None: F.conv2d(x, w, b, s, p, d, g))(s, p, d, g)
    run(conv, name + "_", fn, ins, [*s, *p, *d, g, 0, 0, int(hb)])

# ---- conv_transpose2d: (name, x shape, w shape (Cin, Cout/G, kh, kw), stride, pad, dil, groups, out_pad, bias)
tconv_cases = [
    ("t_basic", (2, 3, 4, 5), (3, 2, 3, 3), (2, 2), (1, 1), (1, 1), 1, (1, 1), True),
    ("t_g2", (2, 4, 3, 4), (4, 3, 3, 2), (2, 1), (0, 1), (1, 2), 2, (1, 1), True),
    ("t_s1", (1, 2, 5, 5), (2, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1, (0, 0), False),
    ("t_s3", (2, 2, 3, 3), (2, 2, 2, 4), (3, 2), (0, 1), (1, 1), 1, (2, 0), True),
]
for name, xs, ws, s, p, d, g, op, hb in tconv_cases:
    ins = {"x": torch.randn(xs), "w": torch.randn(ws) * 0.5, "b": torch.randn(ws[1] * g) if hb else None}
    fn = (lambda s, p, d, g, op: lambda x, w, b=None: F.conv_transpose2d(x, w, b, s, p, op, g, d))(s, p, d, g, op)
    run(conv, name + "_", fn, ins, [*s, *p, *d, g, *op, int(hb)])
save("conv", conv)

# ---- pooling and upsampling; params: kh kw sh sw ph pw (pool) / out_h out_w align (bilinear) / sh sw (nearest)
pool = {}
for i, (xs, k, s, p) in enumerate([((2, 3, 8, 6), (2, 2), (2, 2), (0, 0)),
                                   ((2, 2, 7, 9), (3, 3), (2, 2), (1, 1)),
                                   ((1, 2, 6, 7), (3, 2), (1, 2), (1, 0))]):
    x = torch.randn(xs)
    run(pool, f"max{i}_", lambda x: F.max_pool2d(x, k, s, p), {"x": x}, [*k, *s, *p])
    run(pool, f"avg{i}_", lambda x: F.avg_pool2d(x, k, s, p), {"x": x}, [*k, *s, *p])
for i, (xs, sc) in enumerate([((2, 3, 4, 5), (2, 2)), ((1, 2, 3, 4), (3, 1))]):
    run(pool, f"near{i}_", lambda x: F.interpolate(x, scale_factor=sc, mode="nearest"),
        {"x": torch.randn(xs)}, list(sc))
for i, (xs, size) in enumerate([((2, 2, 5, 7), (9, 4)), ((1, 3, 4, 4), (8, 8)),
                                ((1, 2, 8, 6), (3, 4)), ((1, 1, 4, 4), (1, 5))]):
    x = torch.randn(xs)
    for ac in (0, 1):
        run(pool, f"bil{i}{ac}_", lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=bool(ac)),
            {"x": x}, [*size, ac])
save("pool", pool)

# ---- group norm; params: groups, affine
chn = {}
for i, (xs, G, affine) in enumerate([((2, 6, 5, 4), 3, True), ((3, 4, 7), 2, False), ((2, 4, 3, 3), 4, True)]):
    C = xs[1]
    ins = {"x": torch.randn(xs) * 2 + 1,
           "w": torch.randn(C) if affine else None, "b": torch.randn(C) if affine else None}
    run(chn, f"gn{i}_", lambda x, w=None, b=None: F.group_norm(x, G, w, b, 1e-5), ins, [G, int(affine)])

# ---- batch norm: one training step (batch stats, running stats updated),
# then an eval forward/backward with the updated running stats.
# params: training, affine
for i, (xs, affine, offset) in enumerate([((4, 3, 5, 5), True, 0.0), ((8, 5), True, 0.0), ((3, 2, 4, 6), False, 5.0)]):
    C = xs[1]
    bn = torch.nn.BatchNorm2d(C, momentum=0.1, eps=1e-5, affine=affine) if len(xs) == 4 else \
        torch.nn.BatchNorm1d(C, momentum=0.1, eps=1e-5, affine=affine)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(C) * 0.3)
        bn.running_var.copy_(torch.rand(C) + 0.5)
        if affine:
            bn.weight.copy_(torch.randn(C))
            bn.bias.copy_(torch.randn(C))
    p = f"bn{i}_"
    chn[p + "p"] = torch.tensor([1, int(affine)], dtype=torch.int32)
    chn[p + "rm0"] = bn.running_mean.clone()
    chn[p + "rv0"] = bn.running_var.clone()
    if affine:
        chn[p + "w"] = bn.weight.detach().clone()
        chn[p + "b"] = bn.bias.detach().clone()
    for mode in ("train", "eval"):
        bn.train(mode == "train")
        bn.zero_grad()
        x = (torch.randn(xs) * 1.5 + offset).requires_grad_(True)
        y = bn(x)
        gy = torch.randn_like(y)
        y.backward(gy)
        q = p + mode + "_"
        chn[q + "x"], chn[q + "y"], chn[q + "gy"], chn[q + "gx"] = x.detach(), y.detach(), gy, x.grad
        if affine:
            chn[q + "gw"], chn[q + "gb"] = bn.weight.grad.clone(), bn.bias.grad.clone()
        chn[q + "rm"] = bn.running_mean.clone()
        chn[q + "rv"] = bn.running_var.clone()
save("chnorm", chn)

# ---- conv2d on the direct 3x3 kernels (stride 1, pad 1, input and output
# channels multiples of 8: forward, input grad and weight grad all take the
# direct path); drawn last so the fixtures above keep their bytes
torch.manual_seed(1)
run(conv, "c_d8_", lambda x, w, b: F.conv2d(x, w, b, 1, 1),
    {"x": torch.randn(2, 8, 6, 5), "w": torch.randn(8, 8, 3, 3) * 0.5, "b": torch.randn(8)},
    [1, 1, 1, 1, 1, 1, 1, 0, 0, 1])
save("conv", conv)
