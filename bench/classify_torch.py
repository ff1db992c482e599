#!/usr/bin/python3
"""PyTorch peer of `tessera classify train` for bench/bench_classify.sh: the
same CNN (include/tessera/classify.h), optimiser and batch on the same
Fashion-MNIST images, timed for a fixed number of steps on N threads.
Prints one JSON line. Needs Debian's python3-torch (1.13) at /usr/bin/python3.
"""
import argparse
import gzip
import json
import os
import platform
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530


class Net(nn.Module):
    """Module names match tessera's checkpoint tensor names."""

    def __init__(self, c1=16, c2=32, fc=128, dropout=0.2):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c1, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c1)
        self.conv3 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c2)
        self.conv4 = nn.Conv2d(c2, c2, 3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm2d(c2)
        self.fc1 = nn.Linear(c2 * 49, fc)
        self.fc2 = nn.Linear(fc, 10)
        self.p = dropout

    def forward(self, x):
        x = (x - MEAN) / STD
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))
        x = F.max_pool2d(x, 2)
        x = F.dropout(x.flatten(1), self.p, self.training)
        x = F.relu(self.fc1(x))
        return self.fc2(F.dropout(x, self.p, self.training))


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        buf = f.read()
    ndim = buf[3]
    shape = struct.unpack(">" + "i" * ndim, buf[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(buf[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--c1", type=int, default=16)
    ap.add_argument("--c2", type=int, default=32)
    ap.add_argument("--fc", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    imgs = read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).long()
    n = (a.steps + a.warmup_steps) * a.batch
    x_all = imgs[:n].float().div_(255).unsqueeze(1)
    y_all = labels[:n]
    net = Net(a.c1, a.c2, a.fc)
    decay = [p for nm, p in net.named_parameters() if nm.endswith("weight") and "bn" not in nm]
    no_decay = [p for nm, p in net.named_parameters() if not (nm.endswith("weight") and "bn" not in nm)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    net.train()
    losses = []
    t0 = None
    for s in range(a.steps + a.warmup_steps):
        if s == a.warmup_steps:
            t0 = time.perf_counter()
        xb = x_all[s * a.batch:(s + 1) * a.batch]
        yb = y_all[s * a.batch:(s + 1) * a.batch]
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    dt = time.perf_counter() - t0
    print(json.dumps({
        "bench": "classify_train", "impl": "pytorch", "torch": torch.__version__,
        "cpu": cpu_model(), "threads": a.threads, "batch": a.batch, "steps": a.steps,
        "images_per_s": round(a.steps * a.batch / dt, 1),
        "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }))


if __name__ == "__main__":
    main()
