"""PyTorch references for src/ops/attention.c (tests/test_ops_attention.c).

The attention is written out explicitly (no fused torch kernel): scores,
masked_fill(-inf) for hidden keys, softmax, nan_to_num for rows with no
visible key, repeat_interleave of k/v heads for grouped-query attention.
Each case stores q, k, v, the u8 mask as i32, the bias, the output, the
upstream gradient and the gradients of q, k, v and bias, plus a small
"cfg" tensor [causal, scale, mask_batched, bias_ndim].
"""
import math

import torch
from tref import save

torch.manual_seed(0)


def reference(q, k, v, causal, mask, bias, scale):
    # q (B,T,H,D), k/v (B,S,Hkv,D), mask (T,S)/(B,T,S) bool or None
    B, T, H, D = q.shape
    S, Hkv = k.shape[1], k.shape[2]
    kk = k.repeat_interleave(H // Hkv, dim=2)
    vv = v.repeat_interleave(H // Hkv, dim=2)
    s = torch.einsum("bthd,bshd->bhts", q, kk) * scale
    if bias is not None:
        s = s + bias
    vis = torch.ones(B, 1, T, S, dtype=torch.bool)
    if causal:
        t = torch.arange(T).view(T, 1)
        j = torch.arange(S).view(1, S)
        vis = vis & (j <= t + (S - T))
    if mask is not None:
        vis = vis & (mask.view(1, 1, T, S) if mask.dim() == 2 else mask.view(B, 1, T, S))
    s = s.masked_fill(~vis, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return torch.einsum("bhts,bshd->bthd", p, vv)


def tree_mask(parents, prefix):
    # draft tokens form a tree: token i sees the cached prefix, its
    # ancestors and itself
    T = len(parents)
    m = torch.zeros(T, prefix + T, dtype=torch.bool)
    m[:, :prefix] = True
    for i in range(T):
        j = i
        while j >= 0:
            m[i, prefix + j] = True
            j = parents[j]
    return m


def case(out, name, B, T, S, H, Hkv, D, causal, mask, bias_shape, scale=0.0):
    q = torch.randn(B, T, H, D, requires_grad=True)
    k = torch.randn(B, S, Hkv, D, requires_grad=True)
    v = torch.randn(B, S, Hkv, D, requires_grad=True)
    bias = torch.randn(*bias_shape, requires_grad=True) if bias_shape else None
    sc = scale if scale != 0.0 else 1.0 / math.sqrt(D)
    y = reference(q, k, v, causal, mask, bias, sc)
    gy = torch.randn_like(y)
    y.backward(gy)
    p = name + "_"
    out.update({p + "q": q, p + "k": k, p + "v": v, p + "y": y, p + "gy": gy,
                p + "gq": q.grad, p + "gk": k.grad, p + "gv": v.grad})
    if mask is not None:
        out[p + "mask"] = mask.to(torch.int32)
    if bias is not None:
        out[p + "bias"] = bias
        out[p + "gbias"] = bias.grad
    out[p + "cfg"] = torch.tensor([float(causal), scale,
                                   float(mask is not None and mask.dim() == 3),
                                   float(len(bias_shape) if bias_shape else 0)])


out = {}
# grouped-query, KV-cache offset (S > T), random mask with one row fully hidden,
# per-head learned bias
m = torch.rand(5, 7) > 0.3
m[2, :] = False
case(out, "gqa", 2, 5, 7, 4, 2, 8, True, m, (4, 5, 7))
# bidirectional, batched mask, full (B,H,T,S) bias, custom scale
mb = torch.rand(2, 6, 6) > 0.25
case(out, "full", 2, 6, 6, 2, 2, 16, False, mb, (2, 2, 6, 6), scale=0.3)
# speculative-decoding tree over a cached prefix of 5, shared (T,S) bias
tm = tree_mask([-1, 0, 0, 1, 2, 1], 5)
case(out, "tree", 1, 6, 11, 3, 1, 8, True, tm, (6, 11))
# multi-query, causal, D=64, no mask or bias; single-token decode
case(out, "mqa", 1, 9, 9, 4, 1, 64, True, None, None)
case(out, "decode", 2, 1, 13, 4, 4, 16, True, None, None)
save("attention", out)
