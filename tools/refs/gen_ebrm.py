"""PyTorch reference for the ebrm QE cross-encoder (src/models/ebrm/qe.c,
tests/test_ebrm.c): the bidirectional Llama-block encoder with a padding
mask over [query ; entity] tokens, masked mean pooling, a two-logit head
(asks-for, contradicts), and BCE with logits against soft targets, in
float64.

ebrm.tref: dim 16, 2 layers, 4 heads, 2 kv heads, hidden 24, vocab 30;
4 pairs (T 7, lengths 7 5 3 1); targets (4, 2) in [0, 1]. Holds every
weight ("w.<name>"), the inputs, the logits, the loss and every gradient
("grad.<name>"). Then the full scoring model on the same weights
("full.*"): 6 pairs of 2 queries and 5 entities through the encoder, 5
items aggregated by soft logic (theta "full.theta"), their p, the BCE
loss and the gradient of every weight and of theta ("full.grad.<name>",
"full.grad.agg.theta"); and the "mean" aggregation ablation on the same
pairs and items ("mean.*": p, loss, every gradient).
Run: /usr/bin/python3 tools/refs/gen_ebrm.py
"""
import math

import torch
from gen_nn import rms_norm, rope, attention
from tref import save

DT = torch.float64
torch.manual_seed(23)
C, L, H, Hkv, F, V, EPS = 16, 2, 4, 2, 24, 30, 1e-5
D = C // H


def rnd(*shape, scale=1.0):
    return scale * torch.randn(*shape, dtype=DT)


W = {"model.embed_tokens.weight": rnd(V, C)}
for i in range(L):
    p = f"model.layers.{i}."
    W[p + "input_layernorm.weight"] = 1 + rnd(C, scale=0.2)
    W[p + "self_attn.q_proj.weight"] = rnd(H * D, C, scale=1 / math.sqrt(C))
    W[p + "self_attn.k_proj.weight"] = rnd(Hkv * D, C, scale=1 / math.sqrt(C))
    W[p + "self_attn.v_proj.weight"] = rnd(Hkv * D, C, scale=1 / math.sqrt(C))
    W[p + "self_attn.o_proj.weight"] = rnd(C, H * D, scale=1 / math.sqrt(C))
    W[p + "post_attention_layernorm.weight"] = 1 + rnd(C, scale=0.2)
    W[p + "mlp.gate_proj.weight"] = rnd(F, C, scale=1 / math.sqrt(C))
    W[p + "mlp.up_proj.weight"] = rnd(F, C, scale=1 / math.sqrt(C))
    W[p + "mlp.down_proj.weight"] = rnd(C, F, scale=1 / math.sqrt(F))
W["model.norm.weight"] = 1 + rnd(C, scale=0.2)
W["head.weight"] = rnd(2, C, scale=0.5)
W["head.bias"] = rnd(2, scale=0.5)
for w in W.values():
    w.requires_grad_(True)


def logits(tokens, lens):
    B, T = tokens.shape
    mask = torch.zeros(B, T, T, dtype=torch.int32)
    keep = torch.zeros(B, T, 1, dtype=DT)
    for b in range(B):
        mask[b, :, : lens[b]] = 1
        keep[b, : lens[b]] = 1
    pos = torch.arange(T)
    x = W["model.embed_tokens.weight"][tokens]
    for i in range(L):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], EPS)
        q = rope((h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, D), pos, 10000.0)
        k = rope((h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, Hkv, D), pos, 10000.0)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, Hkv, D)
        x = x + attention(q, k, v, False, mask).reshape(B, T, H * D) @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], EPS)
        gu = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
        x = x + gu @ W[p + "mlp.down_proj.weight"].T
    h = rms_norm(x, W["model.norm.weight"], EPS)
    pooled = (h * keep).sum(1) / torch.tensor(lens, dtype=DT)[:, None]
    return pooled @ W["head.weight"].T + W["head.bias"]


tokens = torch.randint(0, V, (4, 7))
lens = [7, 5, 3, 1]
targets = torch.rand(4, 2, dtype=DT)
out_logits = logits(tokens, lens)
loss = torch.nn.functional.binary_cross_entropy_with_logits(out_logits, targets)
loss.backward()
out = {"tokens": tokens, "lens": torch.tensor(lens), "targets": targets, "logits": out_logits,
       "loss": loss.reshape(1)}
for k, w in W.items():
    out["w." + k] = w
    out["grad." + k] = w.grad.clone()
    w.grad = None

# The full scoring model (src/models/ebrm/train.c, tsr_ebrm_qi_agg_loss):
# the QE logits of 6 (query, entity) pairs [query ; sep ; entity], r and c
# their sigmoids, 5 items whose slots read those pairs (one item with no
# entity: p = leak), the soft-logic aggregation with 2T+1 = 9 logits theta,
# and the mean BCE of p against 0/1 labels.
NT = 4  # TSR_EBRM_TYPES
SEP = V - 1
queries = [torch.randint(0, V - 1, (3,)), torch.randint(0, V - 1, (2,))]
ents = [torch.randint(0, V - 1, (n,)) for n in (2, 1, 3, 2, 1)]
ent_type = [0, 1, 2, 3, 0]
pairs = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 3), (1, 4)]
f_lens = [len(queries[q]) + 1 + len(ents[e]) for q, e in pairs]
f_tokens = torch.zeros(len(pairs), max(f_lens), dtype=torch.int64)
for i, (q, e) in enumerate(pairs):
    f_tokens[i, : f_lens[i]] = torch.cat([queries[q], torch.tensor([SEP]), ents[e]])
items = [[0, 1], [0, 2, 1], [], [3, 4, 5], [4]]  # pair of each slot
f_y = torch.tensor([1, 0, 0, 1, 0])
theta = rnd(2 * NT + 1).requires_grad_(True)
lg = logits(f_tokens, f_lens)
r, c = torch.sigmoid(lg[:, 0]), torch.sigmoid(lg[:, 1])
leak, wt, vt = torch.sigmoid(theta[0]), torch.sigmoid(theta[1 : 1 + NT]), torch.sigmoid(theta[1 + NT :])
ps = []
for slots in items:
    Q = torch.ones((), dtype=DT)
    K = torch.ones((), dtype=DT)
    for k in slots:
        t = ent_type[pairs[k][1]]
        Q = Q * (1 - wt[t] * r[k])
        K = K * (1 - vt[t] * c[k])
    ps.append((1 - (1 - leak) * Q) * K)
f_p = torch.stack(ps)
f_loss = torch.nn.functional.binary_cross_entropy(f_p, f_y.to(DT))
f_loss.backward()
off = [0]
for slots in items:
    off.append(off[-1] + len(slots))
out["full.tokens"] = f_tokens
out["full.lens"] = torch.tensor(f_lens)
out["full.pair_of"] = torch.tensor([k for slots in items for k in slots])
out["full.type"] = torch.tensor([ent_type[pairs[k][1]] for slots in items for k in slots])
out["full.off"] = torch.tensor(off)
out["full.y"] = f_y
out["full.theta"] = theta
out["full.logits"] = lg


def store(prefix, p, loss):
    """p, the loss and every gradient (the QE weights', then theta's)."""
    out[prefix + ".p"] = p
    out[prefix + ".loss"] = loss.reshape(1)
    for k, w in W.items():
        out[prefix + ".grad." + k] = w.grad
    out[prefix + ".grad.agg.theta"] = theta.grad
    print(prefix, "p", [round(float(v), 4) for v in p], "loss", float(loss))


store("full", f_p, f_loss)

# The "mean" aggregation ablation on the same pairs and items: p = the mean
# of r over the item's slots, sigmoid(theta[0]) for an item without any.
for w in list(W.values()) + [theta]:
    w.grad = None
r = torch.sigmoid(logits(f_tokens, f_lens)[:, 0])
m_p = torch.stack([r[slots].mean() if slots else torch.sigmoid(theta[0]) for slots in items])
m_loss = torch.nn.functional.binary_cross_entropy(m_p, f_y.to(DT))
m_loss.backward()
store("mean", m_p, m_loss)
print(save("ebrm", out))
