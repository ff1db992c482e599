"""Peer for bench/bench_llama.c: the same Llama-style decoder written in
PyTorch 1.13 the usual way (HF-style modules, rotate-half RoPE, explicit
softmax attention with a causal mask, SwiGLU, RMSNorm), the same init,
batch and step (forward, backward, AdamW). Prints one JSON line.
Run with Debian's /usr/bin/python3 (python3-torch). Env: TESSERA_THREADS
(default all cores), BENCH_STEPS (default 6)."""
import json
import math
import os
import platform
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

B, T = 8, 256
DIM, LAYERS, HEADS, KV_HEADS, HIDDEN, VOCAB = 256, 6, 8, 8, 688, 4096
EPS, THETA = 1e-5, 10000.0


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.hd = DIM // HEADS
        self.input_layernorm = RMSNorm(DIM)
        self.q_proj = nn.Linear(DIM, HEADS * self.hd, bias=False)
        self.k_proj = nn.Linear(DIM, KV_HEADS * self.hd, bias=False)
        self.v_proj = nn.Linear(DIM, KV_HEADS * self.hd, bias=False)
        self.o_proj = nn.Linear(HEADS * self.hd, DIM, bias=False)
        self.post_attention_layernorm = RMSNorm(DIM)
        self.gate_proj = nn.Linear(DIM, HIDDEN, bias=False)
        self.up_proj = nn.Linear(DIM, HIDDEN, bias=False)
        self.down_proj = nn.Linear(HIDDEN, DIM, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, t, HEADS, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, t, KV_HEADS, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, t, KV_HEADS, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if KV_HEADS != HEADS:
            k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
            v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        a = torch.softmax(s, dim=-1) @ v
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, DIM))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, DIM)
        self.layers = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = RMSNorm(DIM)
        self.lm_head = nn.Linear(DIM, VOCAB, bias=False)
        hd = DIM // HEADS
        inv = 1.0 / (THETA ** (torch.arange(0, hd, 2).float() / hd))
        f = torch.arange(T).float()[:, None] * inv
        emb = torch.cat((f, f), dim=-1)
        self.register_buffer("cos", emb.cos()[None, None])
        self.register_buffer("sin", emb.sin()[None, None])
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1))
        std, res_std = 0.02, 0.02 / math.sqrt(2 * LAYERS)
        for n, p in self.named_parameters():
            if "norm" in n:
                continue
            nn.init.normal_(p, std=res_std if ("o_proj" in n or "down_proj" in n) else std)

    def forward(self, idx, targets):
        x = self.embed_tokens(idx)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))


def main():
    threads = int(os.environ.get("TESSERA_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    steps = int(os.environ.get("BENCH_STEPS", "6"))
    torch.manual_seed(42)
    model = Llama()
    decay = [p for n, p in model.named_parameters() if "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if "norm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    seqs = torch.randint(0, VOCAB, (B, T + 1))
    inp, tgt = seqs[:, :T].contiguous(), seqs[:, 1:].contiguous()
    times, losses = [], []
    for _ in range(steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(inp, tgt)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    if abs(losses[0] - math.log(VOCAB)) > 0.1 or not losses[-1] < losses[0]:
        raise SystemExit(f"llama_torch: validation failed, losses {losses}")
    timed = sorted(times[2:])
    med, best = timed[len(timed) // 2], timed[0]
    C, hd = DIM, DIM // HEADS
    per_tok = LAYERS * (2.0 * (C * HEADS * hd + 2 * C * KV_HEADS * hd + HEADS * hd * C + 3 * C * HIDDEN)
                        + 4.0 * T * HEADS * hd) + 2.0 * C * VOCAB
    flops = 3.0 * per_tok * B * T
    a = torch.randn(2048, 2048)
    bm = torch.randn(2048, 2048)
    best_mm = 1e30
    for r in range(4):
        t0 = time.perf_counter()
        torch.mm(a, bm)
        dt = time.perf_counter() - t0
        if r > 0:
            best_mm = min(best_mm, dt)
    print(json.dumps({
        "bench": "llama_train", "impl": "torch", "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "threads": threads,
        "B": B, "T": T, "dim": DIM, "layers": LAYERS, "heads": HEADS, "hidden": HIDDEN,
        "vocab": VOCAB, "params": sum(p.numel() for p in model.parameters()), "steps": steps,
        "loss0": round(losses[0], 4), "loss_last": round(losses[-1], 4),
        "step_ms_median": round(med * 1e3, 1), "step_ms_best": round(best * 1e3, 1),
        "tokens_per_s": round(B * T / med, 1), "gflop_per_step": round(flops * 1e-9, 2),
        "gflops": round(flops / med * 1e-9, 2),
        "torch_mm2048_gflops": round(2 * 2048 ** 3 / best_mm * 1e-9, 2)}))


if __name__ == "__main__":
    main()
