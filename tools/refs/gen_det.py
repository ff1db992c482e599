"""PyTorch references for src/ops/det.c (tests/test_ops_det.c): generalized
IoU of matched pairs (RT-DETR's generalized_box_iou on cxcywh -> xyxy), the
varifocal loss as RT-DETR writes it (weight detached) and OVA-DETR's
contrastive head logit = exp(s) <v/|v|, t/|t|> + b. Writes tests/refs/det.tref."""
import torch
import torch.nn.functional as F
from tref import save

torch.manual_seed(0)


def xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def giou_pairs(a, b):
    a, b = xyxy(a), xyxy(b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, :2], b[:, :2])
    rb = torch.min(a[:, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = area_a + area_b - inter
    iou = inter / union
    lt = torch.min(a[:, :2], b[:, :2])
    rb = torch.max(a[:, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[:, 0] * wh[:, 1]
    return iou - (area - union) / area


def rand_boxes(n):
    c = torch.rand(n, 2)
    wh = torch.rand(n, 2) * 0.5 + 0.05
    return torch.cat([c, wh], 1)


out = {}
# GIoU: overlapping, disjoint and nested pairs
a = rand_boxes(24)
b = a.clone()
b[:8, :2] += torch.randn(8, 2) * 0.05          # overlapping
b[8:16, :2] += 0.8                             # mostly disjoint
b[16:, 2:] *= 0.5                              # nested
b[:8, 2:] *= torch.rand(8, 2) + 0.5
a.requires_grad_(True)
b.requires_grad_(True)
y = giou_pairs(a, b)
gy = torch.randn_like(y)
y.backward(gy)
out.update({"giou.a": a, "giou.b": b, "giou.y": y, "giou.gy": gy, "giou.ga": a.grad, "giou.gb": b.grad})

# varifocal loss (RT-DETR loss_labels_vfl, before / num_boxes)
N, C = 12, 7
x = (torch.randn(N, C) * 2).requires_grad_(True)
lab = torch.randint(0, C, (N,))
pos = F.one_hot(lab, C).float()
pos[::3] = 0                                   # unmatched queries
iou = torch.rand(N)
q = pos * iou[:, None]
alpha, gamma = 0.75, 2.0
p = torch.sigmoid(x).detach()
w = alpha * p.pow(gamma) * (1 - pos) + q
loss = F.binary_cross_entropy_with_logits(x, q, weight=w, reduction="sum")
loss.backward()
out.update({"vfl.x": x, "vfl.q": q, "vfl.pos": pos, "vfl.loss": loss.reshape(1), "vfl.gx": x.grad})

# contrastive head
N, K, D = 10, 6, 16
v = torch.randn(N, D).requires_grad_(True)
t = torch.randn(K, D).requires_grad_(True)
s = torch.tensor([0.7]).requires_grad_(True)
bb = torch.tensor([-2.0]).requires_grad_(True)
y = torch.exp(s) * (F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).T) + bb
gy = torch.randn_like(y)
y.backward(gy)
out.update({"con.v": v, "con.t": t, "con.s": s, "con.b": bb, "con.y": y, "con.gy": gy,
            "con.gv": v.grad, "con.gt": t.grad, "con.gs": s.grad, "con.gb": bb.grad})

# row max (the text-guided gate's max over text tokens)
x = torch.randn(3, 5, 7).requires_grad_(True)
y = x.max(dim=-1, keepdim=True).values
gy = torch.randn_like(y)
y.backward(gy)
out.update({"max.x": x, "max.y": y, "max.gy": gy, "max.gx": x.grad})
print(save("det", out))
