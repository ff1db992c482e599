"""Fixtures for tests/test_apt.c: binary segmentation metrics (IoU of the
class, mIoU over class and background, OA, precision, recall, F1) from a
confusion matrix, as the APT code's learning/miou.py computes them, on
random masks with unscored (255) pixels.

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
