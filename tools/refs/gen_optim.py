"""PyTorch references for src/optim (tests/test_optim.c): AdamW and SGD
weights after each of a few steps from a fixed init and a fixed sequence of
gradients, and clip_grad_norm_ results."""
import torch
from tref import save



def f32(x):
    """the float32 value the C side holds, handed to torch as a double so
    both sides use the same hyperparameters (1 - 0.999 differs from
    1 - float32(0.999) by 1.3e-5 relative)"""
    return float(torch.tensor(x, dtype=torch.float32))


torch.manual_seed(0)
STEPS = 5
shapes = {"w": (4, 5), "b": (5,), "c": (3,)}
no_decay = {"b"}
out = {}
init = {k: torch.randn(s) for k, s in shapes.items()}
grads = [{k: torch.randn(s) * (0.5 + s_i) for k, s in shapes.items()} for s_i in range(STEPS)]
lrs = torch.tensor([1e-2, 2e-2, 3e-2, 2e-2, 1e-2], dtype=torch.float32)
out["lrs"] = lrs
for k in shapes:
    out["init_" + k] = init[k]
    for s in range(STEPS):
        out[f"g{s}_{k}"] = grads[s][k]


def run(name, make):
    ps = {k: torch.nn.Parameter(init[k].clone()) for k in shapes}
    opt = make(ps)
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = float(lrs[s])
        for k in shapes:
            ps[k].grad = grads[s][k].clone()
        opt.step()
        for k in shapes:
            out[f"{name}{s}_{k}"] = ps[k].detach().clone()
    return opt, ps


def groups(ps, wd):
    return [{"params": [ps[k] for k in shapes if k not in no_decay], "weight_decay": wd},
            {"params": [ps[k] for k in shapes if k in no_decay], "weight_decay": 0.0}]


opt, ps = run("adamw", lambda ps: torch.optim.AdamW(groups(ps, f32(0.1)), lr=1.0,
                                                      betas=(f32(0.9), f32(0.999)), eps=f32(1e-8), foreach=False))
for k in shapes:
    st = opt.state[ps[k]]
    out["adamw_m_" + k] = st["exp_avg"]
    out["adamw_v_" + k] = st["exp_avg_sq"]
run("sgd", lambda ps: torch.optim.SGD(groups(ps, f32(0.01)), lr=1.0, momentum=f32(0.9), foreach=False))
run("nest", lambda ps: torch.optim.SGD(groups(ps, f32(0.01)), lr=1.0, momentum=f32(0.9), nesterov=True,
                                       foreach=False))
run("plain", lambda ps: torch.optim.SGD(groups(ps, f32(0.01)), lr=1.0, foreach=False))

# clipping: one case that clips, one that does not
for tag, max_norm in (("clip", 1.0), ("noclip", 100.0)):
    ps = [torch.nn.Parameter(init[k].clone()) for k in shapes]
    for p, k in zip(ps, shapes):
        p.grad = grads[4][k].clone()
    n = torch.nn.utils.clip_grad_norm_(ps, max_norm)
    out[tag + "_norm"] = n.reshape(1)
    for p, k in zip(ps, shapes):
        out[f"{tag}_{k}"] = p.grad
save("optim", out)
