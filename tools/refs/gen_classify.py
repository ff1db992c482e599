"""PyTorch references for src/models/classify (tests/test_classify.c): a tiny
config of the Fashion-MNIST CNN (c1 2, c2 3, fc 5, no dropout), one training
step's logits, loss, parameter grads and updated batch-norm running stats,
then eval-mode logits and features with those stats."""
import os
import sys

import torch
import torch.nn.functional as F
from tref import save

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from classify_torch import Net  # noqa: E402  (the same module tree the bench times)

torch.manual_seed(0)
net = Net(c1=2, c2=3, fc=5, dropout=0.0)
with torch.no_grad():  # non-trivial affine and running stats
    for i in range(1, 5):
        bn = getattr(net, f"bn{i}")
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
out = {}
for k, v in net.state_dict().items():
    if not k.endswith("num_batches_tracked"):
        out["p." + k] = v.clone()
x = torch.rand(4, 1, 28, 28)
y = torch.tensor([3, 0, 9, 3])
net.train()
logits = net(x)
loss = F.cross_entropy(logits, y)
loss.backward()
out.update({"x": x, "y": y, "logits": logits, "loss": loss.reshape(1)})
for k, p in net.named_parameters():
    out["g." + k] = p.grad
for i in range(1, 5):
    bn = getattr(net, f"bn{i}")
    out[f"after.bn{i}.running_mean"] = bn.running_mean
    out[f"after.bn{i}.running_var"] = bn.running_var
net.eval()
with torch.no_grad():
    h = (x - 0.2860) / 0.3530
    h = F.relu(net.bn1(net.conv1(h)))
    h = F.max_pool2d(F.relu(net.bn2(net.conv2(h))), 2)
    h = F.relu(net.bn3(net.conv3(h)))
    h = F.max_pool2d(F.relu(net.bn4(net.conv4(h))), 2)
    feats = F.relu(net.fc1(h.flatten(1)))
    out["eval_features"] = feats
    out["eval_logits"] = net(x)
save("classify", out)
