"""PyTorch reference of the ovadetr model (src/models/ovadetr/model.c) on a
tiny config: every output set (encoder top-Q and each decoder layer: logits
and boxes), the matching loss and the gradients of every parameter, for the
contrastive model and its closed-set twin. Parameter names match the C
registry. Writes tests/refs/ovadetr.tref."""
import itertools
import math

import torch
import torch.nn.functional as F
from tref import save

torch.manual_seed(0)
CH = [8, 8, 16, 16, 16]
D, H, FFN, Q, DEC, TD = 16, 2, 24, 6, 2, 512
B, S, K = 2, 64, 3


def conv_names(p, name, cin, cout, k):
    p[name + ".conv.weight"] = torch.randn(cout, cin, k, k) * math.sqrt(2.0 / (cin * k * k))
    p[name + ".conv.bias"] = torch.randn(cout) * 0.1
    p[name + ".norm.weight"] = 1 + 0.1 * torch.randn(cout)
    p[name + ".norm.bias"] = 0.1 * torch.randn(cout)


def lin(p, name, i, o):
    a = math.sqrt(6.0 / (i + o))
    p[name + ".weight"] = (torch.rand(o, i) * 2 - 1) * a
    p[name + ".bias"] = torch.randn(o) * 0.1


def ln(p, name, d):
    p[name + ".weight"] = 1 + 0.1 * torch.randn(d)
    p[name + ".bias"] = 0.1 * torch.randn(d)


def mha(p, name, d):
    for n in ["q_proj", "k_proj", "v_proj", "out_proj"]:
        lin(p, name + "." + n, d, d)


def mlp(p, name, i, h, o, n):
    for k in range(n):
        lin(p, "%s.layers.%d" % (name, k), i if k == 0 else h, o if k == n - 1 else h)


def make_params(closed):
    p = {}
    cin = [3, CH[0], CH[1], CH[2], CH[2], CH[3], CH[3], CH[4]]
    cout = [CH[0], CH[1], CH[2], CH[2], CH[3], CH[3], CH[4], CH[4]]
    for i in range(8):
        conv_names(p, "backbone.%d" % i, cin[i], cout[i], 3)
    for i in range(3):
        conv_names(p, "encoder.input_proj.%d" % i, CH[2 + i], D, 1)
    mha(p, "encoder.aifi.self_attn", D)
    ln(p, "encoder.aifi.norm1", D)
    ln(p, "encoder.aifi.norm2", D)
    lin(p, "encoder.aifi.linear1", D, FFN)
    lin(p, "encoder.aifi.linear2", FFN, D)
    conv_names(p, "encoder.lateral5", D, D, 1)
    conv_names(p, "encoder.lateral4", D, D, 1)
    for n in ["fpn4", "fpn3", "pan4", "pan5"]:
        conv_names(p, "encoder.%s.0" % n, 2 * D, D, 1)
        conv_names(p, "encoder.%s.1" % n, D, D, 3)
    conv_names(p, "encoder.down3", D, D, 3)
    conv_names(p, "encoder.down4", D, D, 3)
    lin(p, "text.proj", TD, D)
    lin(p, "text.head_proj", D, D)
    for l in range(3):
        mha(p, "fusion.%d.vat" % l, D)
        ln(p, "fusion.%d.vat_norm" % l, D)
        mha(p, "fusion.%d.tgvt" % l, D)
        ln(p, "fusion.%d.tgvt_norm" % l, D)
    lin(p, "enc_output.linear", D, D)
    ln(p, "enc_output.norm", D)
    mlp(p, "enc_bbox_head", D, D, 4, 3)
    if closed:
        p["text.closed_rows"] = torch.randn(closed, TD)
        lin(p, "enc_score_head", D, closed)
    else:
        lin(p, "enc_score_head.region", D, D)
        p["enc_score_head.logit_scale"] = torch.tensor([math.log(10.0)])
        p["enc_score_head.bias"] = torch.tensor([-2.0])
    mlp(p, "decoder.query_pos_head", 4, 2 * D, D, 2)
    for l in range(DEC):
        for n in ["text_attn", "self_attn", "cross_attn"]:
            mha(p, "decoder.layers.%d.%s" % (l, n), D)
        for i in range(4):
            ln(p, "decoder.layers.%d.norm%d" % (l, i + 1), D)
        lin(p, "decoder.layers.%d.linear1" % l, D, FFN)
        lin(p, "decoder.layers.%d.linear2" % l, FFN, D)
        mlp(p, "decoder.bbox_head.%d" % l, D, D, 4, 3)
        if closed:
            lin(p, "decoder.score_head.%d" % l, D, closed)
        else:
            lin(p, "decoder.score_head.%d.region" % l, D, D)
            p["decoder.score_head.%d.logit_scale" % l] = torch.tensor([math.log(10.0) + 0.1 * l])
            p["decoder.score_head.%d.bias" % l] = torch.tensor([-2.0])
    return {k: v.clone().requires_grad_(k != "text.closed_rows") for k, v in p.items()}


def conv(p, name, x, stride):
    w = p[name + ".conv.weight"]
    y = F.conv2d(x, w, p[name + ".conv.bias"], stride=stride, padding=w.shape[2] // 2)
    c = y.shape[1]
    y = F.group_norm(y, 8 if c % 8 == 0 else 1, p[name + ".norm.weight"], p[name + ".norm.bias"], 1e-5)
    return F.relu(y)


def L(p, name, x):
    return F.linear(x, p[name + ".weight"], p[name + ".bias"])


def LN(p, name, x):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], p[name + ".bias"], 1e-5)


def MLP(p, name, x, n):
    for k in range(n):
        x = L(p, "%s.layers.%d" % (name, k), x)
        if k < n - 1:
            x = F.relu(x)
    return x


def heads(x, b, t):
    return x.view(b, x.shape[1], H, -1).transpose(1, 2)


def MHA(p, name, xq, xk, xv):
    b, t, d = xq.shape
    q, k, v = heads(L(p, name + ".q_proj", xq), b, t), heads(L(p, name + ".k_proj", xk), b, t), heads(L(p, name + ".v_proj", xv), b, t)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // H), -1)
    return L(p, name + ".out_proj", (a @ v).transpose(1, 2).reshape(b, t, d))


def TGVT(p, name, x, t):
    b, n, d = x.shape
    q, k, v = heads(L(p, name + ".q_proj", x), b, n), heads(L(p, name + ".k_proj", t), b, n), heads(L(p, name + ".v_proj", t), b, n)
    s = q @ k.transpose(-1, -2) / math.sqrt(d // H)
    g = torch.sigmoid(s.max(-1, keepdim=True).values)
    o = (torch.softmax(s, -1) @ v) * g
    return L(p, name + ".out_proj", o.transpose(1, 2).reshape(b, n, d))


def pos2d(h, w, d):
    q = d // 4
    om = 1.0 / torch.pow(torch.tensor(10000.0), torch.arange(q, dtype=torch.float32) / q)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    xs, ys = xs.reshape(-1, 1) * om, ys.reshape(-1, 1) * om
    return torch.cat([torch.sin(xs), torch.cos(xs), torch.sin(ys), torch.cos(ys)], 1)


def inv_sig(x):
    x = x.clamp(1e-5, 1 - 1e-5)
    return torch.log(x / (1 - x))


def head(p, name, x, th, closed):
    if closed:
        return L(p, name, x)
    return torch.exp(p[name + ".logit_scale"]) * (F.normalize(L(p, name + ".region", x), dim=-1) @ F.normalize(th, dim=-1).T) + p[name + ".bias"]


def forward(p, img, text, closed):
    x = conv(p, "backbone.0", img, 2)
    x = conv(p, "backbone.1", x, 2)
    f = []
    for s in range(3):
        x = conv(p, "backbone.%d" % (2 + 2 * s), x, 2)
        x = x + conv(p, "backbone.%d" % (3 + 2 * s), x, 1)
        f.append(conv(p, "encoder.input_proj.%d" % s, x, 1))
    hw = [(t.shape[2], t.shape[3]) for t in f]
    tok = lambda t: t.flatten(2).transpose(1, 2)
    t = tok(f[2])
    qk = t + pos2d(*hw[2], D)
    t = LN(p, "encoder.aifi.norm1", t + MHA(p, "encoder.aifi.self_attn", qk, qk, t))
    t = LN(p, "encoder.aifi.norm2", t + L(p, "encoder.aifi.linear2", F.gelu(L(p, "encoder.aifi.linear1", t))))
    f[2] = t.transpose(1, 2).reshape(B, D, *hw[2])
    l5 = conv(p, "encoder.lateral5", f[2], 1)
    up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
    p4 = conv(p, "encoder.fpn4.1", conv(p, "encoder.fpn4.0", torch.cat([up(l5), f[1]], 1), 1), 1)
    l4 = conv(p, "encoder.lateral4", p4, 1)
    p3 = conv(p, "encoder.fpn3.1", conv(p, "encoder.fpn3.0", torch.cat([up(l4), f[0]], 1), 1), 1)
    n4 = conv(p, "encoder.pan4.1", conv(p, "encoder.pan4.0", torch.cat([conv(p, "encoder.down3", p3, 2), l4], 1), 1), 1)
    n5 = conv(p, "encoder.pan5.1", conv(p, "encoder.pan5.0", torch.cat([conv(p, "encoder.down4", n4, 2), l5], 1), 1), 1)
    lv = [p3, n4, n5]
    kk = closed if closed else K
    if closed:
        text = p["text.closed_rows"]
    tp = L(p, "text.proj", F.normalize(text, dim=-1))
    t0 = tp.unsqueeze(0).expand(B, -1, -1)  # (B, kk, D)
    th = L(p, "text.head_proj", tp)
    toks, tls, mpos = [], [], []
    for l in range(3):
        x = tok(lv[l])
        tl = LN(p, "fusion.%d.vat_norm" % l, t0 + MHA(p, "fusion.%d.vat" % l, t0, x, x))
        x = LN(p, "fusion.%d.tgvt_norm" % l, x + TGVT(p, "fusion.%d.tgvt" % l, x, tl))
        toks.append(x), tls.append(tl), mpos.append(pos2d(*hw[l], D))
    mem = torch.cat(toks, 1)
    memk = mem + torch.cat(mpos, 0)
    tcat = torch.cat(tls, 1)
    anc = []
    for l in range(3):
        h, w = hw[l]
        for y in range(h):
            for x in range(w):
                a = 0.05 * (1 << l)
                anc.append([(x + 0.5) / w, (y + 0.5) / h, a, a])
    anc = inv_sig(torch.tensor(anc))
    eo = LN(p, "enc_output.norm", L(p, "enc_output.linear", mem))
    elog = head(p, "enc_score_head", eo.reshape(-1, D), th, closed).view(B, -1, kk)
    ebox = MLP(p, "enc_bbox_head", eo, 3) + anc
    sel = elog.max(-1).values.topk(Q, dim=1).indices  # (B, Q)
    g = lambda t: torch.stack([t[b][sel[b]] for b in range(B)])
    logits = [g(elog).reshape(B * Q, kk)]
    boxes = [torch.sigmoid(g(ebox)).reshape(B * Q, 4)]
    tgt = g(eo).detach()
    ref = boxes[0].detach().view(B, Q, 4)
    for l in range(DEC):
        n = "decoder.layers.%d." % l
        pos = MLP(p, "decoder.query_pos_head", ref, 2)
        qp = tgt + pos
        tgt = LN(p, n + "norm1", tgt + MHA(p, n + "text_attn", qp, tcat, tcat))
        qp = tgt + pos
        tgt = LN(p, n + "norm2", tgt + MHA(p, n + "self_attn", qp, qp, tgt))
        qp = tgt + pos
        tgt = LN(p, n + "norm3", tgt + MHA(p, n + "cross_attn", qp, memk, mem))
        tgt = LN(p, n + "norm4", tgt + L(p, n + "linear2", F.relu(L(p, n + "linear1", tgt))))
        bx = torch.sigmoid(MLP(p, "decoder.bbox_head.%d" % l, tgt, 3) + inv_sig(ref))
        logits.append(head(p, "decoder.score_head.%d" % l, tgt.reshape(B * Q, D), th, closed))
        boxes.append(bx.reshape(B * Q, 4))
        ref = bx.detach()
    return logits, boxes, sel


def xyxy(b):
    return torch.stack([b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2, b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2], -1)


def giou(a, b):  # pairwise (N,4) x (M,4)
    a, b = xyxy(a), xyxy(b)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = aa[:, None] + ab[None] - inter
    lt, rb = torch.min(a[:, None, :2], b[None, :, :2]), torch.max(a[:, None, 2:], b[None, :, 2:])
    wh = rb - lt
    enc = wh[..., 0] * wh[..., 1]
    return inter / union - (enc - union) / enc, inter / union


def loss_fn(logits, boxes, tb, tc, off):
    nb = max(len(tc), 1)
    total = 0
    for lg, bx in zip(logits, boxes):
        kk = lg.shape[1]
        q = torch.zeros_like(lg)
        pos = torch.zeros_like(lg)
        rows, tgts = [], []
        for b in range(B):
            j0, j1 = off[b], off[b + 1]
            if j1 == j0:
                continue
            pb = bx[b * Q:(b + 1) * Q].detach()
            pl = lg[b * Q:(b + 1) * Q].detach()
            gi, _ = giou(tb[j0:j1], pb)
            cost = torch.zeros(j1 - j0, Q)
            for j in range(j1 - j0):
                p = torch.sigmoid(pl[:, tc[j0 + j]])
                cpos = 0.25 * (1 - p) ** 2 * -torch.log(p + 1e-8)
                cneg = 0.75 * p ** 2 * -torch.log(1 - p + 1e-8)
                l1 = (pb - tb[j0 + j]).abs().sum(-1)
                cost[j] = 2 * (cpos - cneg) + 5 * l1 - 2 * gi[j]
            best, bp = None, None
            for perm in itertools.permutations(range(Q), j1 - j0):
                c = sum(cost[j, perm[j]].item() for j in range(j1 - j0))
                if best is None or c < best:
                    best, bp = c, perm
            for j in range(j1 - j0):
                r = b * Q + bp[j]
                _, iou = giou(bx[r:r + 1].detach(), tb[j0 + j:j0 + j + 1])
                q[r, tc[j0 + j]] = iou[0, 0]
                pos[r, tc[j0 + j]] = 1
                rows.append(r), tgts.append(j0 + j)
        w = 0.75 * torch.sigmoid(lg).detach().pow(2) * (1 - pos) + q
        lv = F.binary_cross_entropy_with_logits(lg, q, weight=w, reduction="sum") / nb
        pb = bx[rows]
        t = tb[tgts]
        l1 = (pb - t).abs().sum() * 5 / nb
        gi, _ = giou(pb, t)
        lg2 = (1 - torch.diagonal(gi)).sum() * 2 / nb
        total = total + lv + l1 + lg2
    return total


out = {}
img = torch.randn(B, 3, S, S)
text = torch.randn(K, TD)
tb = torch.tensor([[0.3, 0.4, 0.2, 0.1], [0.7, 0.6, 0.15, 0.3], [0.5, 0.5, 0.3, 0.2]])
tcs = {"open": [0, 2, 1], "closed": [1, 0, 3]}
off = [0, 2, 3]
out["img"] = img
out["text"] = text
out["tbox"] = tb
for tag, closed in [("open", 0), ("closed", 4)]:
    p = make_params(closed)
    logits, boxes, sel = forward(p, img, text, closed)
    tc = tcs[tag]
    loss = loss_fn(logits, boxes, tb, tc, off)
    loss.backward()
    out[tag + ".tcls"] = torch.tensor(tc, dtype=torch.int32)
    out[tag + ".sel"] = sel.to(torch.int32)
    for i, (lg, bx) in enumerate(zip(logits, boxes)):
        out["%s.logits%d" % (tag, i)] = lg
        out["%s.boxes%d" % (tag, i)] = bx
    out[tag + ".loss"] = loss.reshape(1)
    for k, v in p.items():
        out[tag + ".p." + k] = v
        out[tag + ".g." + k] = v.grad if v.grad is not None else torch.zeros_like(v)
print(save("ovadetr", out), "loss", out["open.loss"].item(), out["closed.loss"].item())
