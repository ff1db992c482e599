"""PyTorch references for src/nn/imgtok.c and src/nn/imgmetrics.c
(tests/test_imgtok.c, tests/test_imgmetrics.c): a tiny tokenizer forward /
backward with the straight-through Bernoulli in threshold mode, and the
Fréchet distance / eigenvalues / IS / k-NN radii computed in float64 with
torch.linalg (no numpy/scipy); then the same tiny network as a VQ
tokenizer (8-entry codebook, straight-through, commitment loss)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from tref import save

torch.manual_seed(0)
out = {}

# ---- tiny tokenizer: ch=4 (h=2), K=3, batch 2
ch, h, K = 4, 2, 3


class Tok(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.ModuleDict({
            "conv1": nn.Conv2d(1, h, 3, 1, 1), "conv2": nn.Conv2d(h, ch, 4, 2, 1),
            "conv3": nn.Conv2d(ch, ch, 4, 2, 1), "conv4": nn.Conv2d(ch, ch, 3, 1, 1)})
        self.quant = nn.ModuleDict({"proj": nn.Conv2d(ch, K, 1)})
        self.dec = nn.ModuleDict({
            "proj": nn.Conv2d(K, ch, 1), "conv1": nn.Conv2d(ch, ch, 3, 1, 1),
            "up1": nn.ConvTranspose2d(ch, ch, 4, 2, 1), "up2": nn.ConvTranspose2d(ch, h, 4, 2, 1),
            "conv_out": nn.Conv2d(h, 1, 3, 1, 1)})

    def encode(self, x):
        e = self.enc
        y = x * 2 - 1
        for n in ("conv1", "conv2", "conv3", "conv4"):
            y = F.relu(e[n](y))
        return self.quant["proj"](y)

    def decode(self, q):
        d = self.dec
        y = F.relu(d["proj"](q))
        y = F.relu(d["conv1"](y))
        y = F.relu(d["up1"](y))
        y = F.relu(d["up2"](y))
        return torch.sigmoid(d["conv_out"](y))


m = Tok()
x = torch.rand(2, 1, 28, 28, requires_grad=True)
z = m.encode(x)
p = torch.sigmoid(z)
hard = (p > 0.5).float()
q = p + (hard - p).detach()  # straight-through, threshold mode
y = m.decode(q)
loss = F.l1_loss(y, x) + F.mse_loss(y, x)
loss.backward()
for k, v in m.state_dict().items():
    out["tok." + k] = v
    out["tok.grad." + k] = dict(m.named_parameters())[k].grad
out.update({"tok.x": x, "tok.z": z, "tok.q": hard, "tok.y": y, "tok.loss": loss.reshape(1),
            "tok.gx": x.grad})

# ---- metrics (float64)
torch.manual_seed(1)
d = 8
A = torch.randn(300, d) @ torch.randn(d, d) * 0.5
B = torch.randn(250, d) @ torch.randn(d, d) * 0.7 + 0.3
A, B = A.float(), B.float()


def stats(X):
    X = X.double()
    mu = X.mean(0)
    Xc = X - mu
    return mu, Xc.T @ Xc / (X.shape[0] - 1)


def sqrtm_psd(S):
    e, V = torch.linalg.eigh(S)
    return V @ torch.diag(e.clamp(min=0).sqrt()) @ V.T


m1, c1 = stats(A)
m2, c2 = stats(B)
s1 = sqrtm_psd(c1)
M = s1 @ c2 @ s1
fd = ((m1 - m2) ** 2).sum() + torch.trace(c1) + torch.trace(c2) - 2 * torch.linalg.eigvalsh(M).clamp(min=0).sqrt().sum()
out.update({"fd.a": A, "fd.b": B, "fd.value": fd.reshape(1), "fd.eig_c1": torch.linalg.eigvalsh(c1)})

L = torch.randn(64, 10) * 2
pr = torch.softmax(L.double(), 1)
py = pr.mean(0)
is_v = torch.exp((pr * (pr.log() - py.log())).sum(1).mean())
out.update({"is.logits": L, "is.value": is_v.reshape(1)})

R = torch.randn(40, 5)
D2 = torch.cdist(R.double(), R.double()) ** 2
D2.fill_diagonal_(float("inf"))
out.update({"knn.x": R, "knn.r2_k3": D2.sort(1).values[:, 2]})
Fk = torch.randn(30, 5) + 0.5
rr = D2.sort(1).values[:, 2]
Df = torch.cdist(Fk.double(), Fk.double()) ** 2
Df.fill_diagonal_(float("inf"))
rf = Df.sort(1).values[:, 2]
prec = (torch.cdist(Fk.double(), R.double()) ** 2 <= rr[None, :]).any(1).double().mean()
rec = (torch.cdist(R.double(), Fk.double()) ** 2 <= rf[None, :]).any(1).double().mean()
out.update({"pr.fake": Fk, "pr.precision": prec.reshape(1), "pr.recall": rec.reshape(1)})

# ---- the VQ tokenizer: same tiny network, an 8-entry codebook of dim 3,
# nearest code (first minimum) with the straight-through estimator, and the
# training loss L1 + L2 + beta * commitment, beta 0.25 (codebook held fixed:
# it moves by EMA, not by gradient); the commitment dominates the encoder's
# gradients, so the straight-through path is also stored alone: the
# gradient of L1 + L2 with respect to z (vq.gz_rec). Batch of 1.
torch.manual_seed(2)
mv = Tok()
cb = torch.randn(8, K)
xv = torch.rand(1, 1, 28, 28, requires_grad=True)
zv = mv.encode(xv)
zr = zv.permute(0, 2, 3, 1).reshape(-1, K)
d2 = ((zr[:, None, :] - cb[None, :, :]) ** 2).sum(-1).detach().double()
top2 = d2.sort(1).values[:, :2]
assert (top2[:, 1] - top2[:, 0]).min() > 1e-3, "a near tie: pick another seed"
ids = d2.argmin(1)
qv = cb[ids].reshape(1, 7, 7, K).permute(0, 3, 1, 2)
yv = mv.decode(zv + (qv - zv).detach())
commit = F.mse_loss(zv, qv.detach())
rec = F.l1_loss(yv, xv) + F.mse_loss(yv, xv)
gz_rec = torch.autograd.grad(rec, zv, retain_graph=True)[0]
lv = rec + 0.25 * commit
lv.backward()
for k, v in mv.state_dict().items():
    out["vq." + k] = v
    out["vq.grad." + k] = dict(mv.named_parameters())[k].grad
out.update({"vq.codebook": cb, "vq.x": xv, "vq.z": zv, "vq.ids": ids.reshape(1, 7, 7), "vq.q": qv, "vq.y": yv,
            "vq.commit": commit.reshape(1), "vq.loss": lv.reshape(1), "vq.gx": xv.grad, "vq.gz_rec": gz_rec})
save("imgtok", out)
