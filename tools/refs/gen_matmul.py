"""PyTorch references for src/ops/matmul.c (tests/test_ops_matmul.c)."""
import torch
from tref import save

torch.manual_seed(0)
out = {}
for ta in (0, 1):
    for tb in (0, 1):
        a = torch.randn((2, 3, 5, 4) if not ta else (2, 3, 4, 5), requires_grad=True)
        b = torch.randn((2, 3, 4, 6) if not tb else (2, 3, 6, 4), requires_grad=True)
        A = a.transpose(-1, -2) if ta else a
        B = b.transpose(-1, -2) if tb else b
        y = A @ B
        g = torch.randn_like(y)
        y.backward(g)
        p = f"bmm_{ta}{tb}_"
        out.update({p + "a": a, p + "b": b, p + "y": y, p + "gy": g, p + "ga": a.grad, p + "gb": b.grad})
x = torch.randn(2, 7, 5, requires_grad=True)
w = torch.randn(3, 5, requires_grad=True)
bias = torch.randn(3, requires_grad=True)
y = torch.nn.functional.linear(x, w, bias)
g = torch.randn_like(y)
y.backward(g)
out.update({"lin_x": x, "lin_w": w, "lin_b": bias, "lin_y": y, "lin_gy": g,
            "lin_gx": x.grad, "lin_gw": w.grad, "lin_gb": bias.grad})
save("matmul", out)
