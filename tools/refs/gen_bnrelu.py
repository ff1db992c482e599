#!/usr/bin/python3
"""Reference tensors for tessera's fused batch norm + ReLU
(tsr_batchnorm_relu, src/ops/chnorm.c): F.relu(BatchNorm2d(x)), one
training step (batch stats, running stats updated) then an eval
forward/backward with the updated running stats. Writes tests/refs/bnrelu.tref
with the same keys as the batch-norm cases of chnorm.tref.
Run: /usr/bin/python3 tools/refs/gen_bnrelu.py
"""
import torch
import torch.nn.functional as F

from tref import save

torch.manual_seed(23)
out = {}
# shape, affine, input offset (a large offset checks the stats' cancellation)
for i, (xs, affine, offset) in enumerate([((4, 3, 5, 5), True, 0.0), ((3, 2, 4, 6), False, 5.0),
                                          ((2, 8, 6, 7), True, -1.0)]):
    C = xs[1]
    bn = torch.nn.BatchNorm2d(C, momentum=0.1, eps=1e-5, affine=affine)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(C) * 0.3)
        bn.running_var.copy_(torch.rand(C) + 0.5)
        if affine:
            bn.weight.copy_(torch.randn(C))
            bn.bias.copy_(torch.randn(C))
    p = f"br{i}_"
    out[p + "p"] = torch.tensor([1, int(affine)], dtype=torch.int32)
    out[p + "rm0"] = bn.running_mean.clone()
    out[p + "rv0"] = bn.running_var.clone()
    if affine:
        out[p + "w"] = bn.weight.detach().clone()
        out[p + "b"] = bn.bias.detach().clone()
    for mode in ("train", "eval"):
        bn.train(mode == "train")
        bn.zero_grad()
        x = (torch.randn(xs) * 1.5 + offset).requires_grad_(True)
        y = F.relu(bn(x))
        gy = torch.randn_like(y)
        y.backward(gy)
        q = p + mode + "_"
        out[q + "x"], out[q + "y"], out[q + "gy"], out[q + "gx"] = x.detach(), y.detach(), gy, x.grad
        if affine:
            out[q + "gw"], out[q + "gb"] = bn.weight.grad.clone(), bn.bias.grad.clone()
        out[q + "rm"] = bn.running_mean.clone()
        out[q + "rv"] = bn.running_var.clone()
print(save("bnrelu", out))
