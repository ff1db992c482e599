"""PyTorch reference for tsr_dropout (src/ops/activ.c, tests/test_ops_activ.c).

tessera draws its keep mask from its own rng (xoshiro256** seeded by
splitmix64), torch from another, so this generator replays tessera's
stream in Python to get the same mask, then lets torch's own dropout
kernels apply it: out = x * mask * scale and aten::native_dropout_backward
for the gradient. The mask rule (24-bit uniform >= p, two draws per u64,
element order) is the one documented in tsr_dropout. Then tsr_relu_dropout
(dropout of relu(x), same draws) as case "r".
"""
import torch
from tref import save

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


class Xoshiro:
    def __init__(self, seed):
        self.s = []
        x = seed
        for _ in range(4):
            x, v = splitmix64(x)
            self.s.append(v)

    def next(self):
        s = self.s
        rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & M64
        res = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return res


def tessera_mask(seed, n, p):
    r = Xoshiro(seed)
    thr = int(p * 16777216.0 + 0.5)
    m = []
    for i in range(0, n, 2):
        v = r.next()
        m.append((v >> 40) >= thr)
        if i + 1 < n:
            m.append(((v >> 8) & 0xFFFFFF) >= thr)
    return torch.tensor(m, dtype=torch.bool)


torch.manual_seed(0)
out = {}
for name, shape, p in (("a", (2, 3, 5), 0.3), ("b", (4, 33), 0.5), ("c", (7,), 0.9)):
    x = torch.randn(shape, dtype=torch.float32)
    n = x.numel()
    mask = tessera_mask(4242, n, p).reshape(shape)
    scale = 1.0 / (1.0 - p)
    y = torch.ops.aten.mul(torch.ops.aten.mul(x, mask), scale)  # native_dropout's forward with this mask
    gy = torch.randn(shape)
    gx = torch.ops.aten.native_dropout_backward(gy, mask, scale)
    out.update({f"{name}_x": x, f"{name}_p": torch.tensor([p]), f"{name}_y": y, f"{name}_gy": gy,
                f"{name}_gx": gx, f"{name}_mask": mask.to(torch.int32)})
save("dropout", out)

# tsr_relu_dropout: dropout(relu(x)) in one op, the same rng draws (seed
# 4242) and so the same mask; drawn after the cases above (their bytes stay)
x = torch.randn(4, 9, dtype=torch.float32)
p = 0.4
mask = tessera_mask(4242, x.numel(), p).reshape(x.shape)
xr = x.clone().requires_grad_(True)
y = torch.nn.functional.relu(xr) * mask * (1.0 / (1.0 - p))
gy = torch.randn(x.shape)
y.backward(gy)
out.update({"r_x": x, "r_p": torch.tensor([p]), "r_y": y.detach(), "r_gy": gy, "r_gx": xr.grad,
            "r_mask": mask.to(torch.int32)})
save("dropout", out)
