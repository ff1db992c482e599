"""Fixtures for tests/test_apt.c: binary segmentation metrics (IoU of the
class, mIoU over class and background, OA, precision, recall, F1) from a
confusion matrix, as the APT code's learning/miou.py computes them, on
random masks with unscored (255) pixels. And the training mask loss
(src/models/apt/train.c, tsr_apt_mask_loss): fw * focal + dice of logits
against a 0/1 target, focal = mean alpha_t (1 - p_t)^2 BCE (gamma 2, as
torchvision's sigmoid_focal_loss), dice = 1 - (2 sum p y + 1) / (sum p +
sum y + 1), in float64: three cases (alpha 0.5 fw 1, the default; alpha
0.25 fw 20, SAM's; an empty target) with the loss, both terms and the
gradient of the logits -> apt_loss.tref.

    /usr/bin/python3 tools/refs/gen_apt.py
"""
import numpy as np
import torch

from tref import save

rng = np.random.default_rng(5)
out = {}
for case in range(3):
    n = 997
    truth = (rng.random(n) < [0.3, 0.02, 0.7][case]).astype(np.int64)
    truth[rng.random(n) < 0.05] = 255
    pred = (rng.random(n) < 0.4).astype(np.int64)
    pred[(truth == 1) & (rng.random(n) < 0.5)] = 1
    keep = truth != 255
    conf = np.zeros((2, 2))
    for t, p in zip(truth[keep], pred[keep]):
        conf[t, p] += 1
    iou_c = np.diag(conf) / (conf.sum(0) + conf.sum(1) - np.diag(conf))
    prec = conf[1, 1] / conf[:, 1].sum()
    rec = conf[1, 1] / conf[1, :].sum()
    out["truth%d" % case] = torch.tensor(truth, dtype=torch.int32)
    out["pred%d" % case] = torch.tensor(pred, dtype=torch.int32)
    out["metrics%d" % case] = torch.tensor([iou_c[1], iou_c.mean(), np.diag(conf).sum() / conf.sum(), prec, rec,
                                            2 * prec * rec / (prec + rec)], dtype=torch.float64)
save("apt_metrics", out)

torch.manual_seed(11)
loss_out = {}
for case, (alpha, fw, frac) in enumerate([(0.5, 1.0, 0.3), (0.25, 20.0, 0.6), (0.5, 1.0, 0.0)]):
    x = (3 * torch.randn(1, 1, 12, 12, dtype=torch.float64)).requires_grad_(True)
    y = (torch.rand(1, 1, 12, 12) < frac).to(torch.float64)
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    focal = (alpha_t * ce * (1 - p_t) ** 2).mean()
    dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    loss = fw * focal + dice
    loss.backward()
    k = "case%d." % case
    loss_out.update({k + "x": x, k + "y": y, k + "cfg": torch.tensor([alpha, fw], dtype=torch.float64),
                     k + "loss": loss.reshape(1), k + "focal": focal.reshape(1), k + "dice": dice.reshape(1),
                     k + "gx": x.grad})
save("apt_loss", loss_out)
