#!/usr/bin/env python3
"""PyTorch on the shape bench_train_throughput --arch llama trains: the peer
measurement of bench/README.md's Llama figures, run in the same session.

A Llama block written from docs/models.md in plain PyTorch (RMSNorm, RoPE
with rotate_half, grouped-query attention through
scaled_dot_product_attention, SwiGLU, untied head), fp32, trained with
torch.optim.AdamW and gradient clipping as dfm's step does; the median step
time over --steps after a warm-up step, and the model FLOP/s by the same
PaLM accounting (6 N + 12 L C T, N without the input embedding).

usage: torch_train_throughput.py [--layers 12 --d-model 768 --heads 12 --kv-heads 4 --ffn 2048
                                  --vocab 32000 --seq 256 --batch 4 --steps 4 --threads 2]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, C, H, KV, ffn):
        super().__init__()
        self.H, self.KV, self.D = H, KV, C // H
        self.ln1, self.ln2 = torch.nn.RMSNorm(C, eps=1e-5), torch.nn.RMSNorm(C, eps=1e-5)
        self.q = torch.nn.Linear(C, H * self.D, bias=False)
        self.k = torch.nn.Linear(C, KV * self.D, bias=False)
        self.v = torch.nn.Linear(C, KV * self.D, bias=False)
        self.o = torch.nn.Linear(H * self.D, C, bias=False)
        self.gate = torch.nn.Linear(C, ffn, bias=False)
        self.up = torch.nn.Linear(C, ffn, bias=False)
        self.down = torch.nn.Linear(ffn, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        a = self.ln1(x)
        q = self.q(a).view(B, T, self.H, self.D).transpose(1, 2)
        k = self.k(a).view(B, T, self.KV, self.D).transpose(1, 2)
        v = self.v(a).view(B, T, self.KV, self.D).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        group = self.H // self.KV
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(o.transpose(1, 2).reshape(B, T, -1))
        m = self.ln2(x)
        return x + self.down(F.silu(self.gate(m)) * self.up(m))


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Llama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = torch.nn.Embedding(a.vocab, a.d_model)
        self.blocks = torch.nn.ModuleList(Block(a.d_model, a.heads, a.kv_heads, a.ffn) for _ in range(a.layers))
        self.norm = torch.nn.RMSNorm(a.d_model, eps=1e-5)
        self.head = torch.nn.Linear(a.d_model, a.vocab, bias=False)
        D = a.d_model // a.heads
        angles = torch.arange(a.seq, dtype=torch.float64)[:, None] * 10000.0 ** (-2.0 * torch.arange(D // 2) / D)
        self.register_buffer("cos", angles.cos().float())
        self.register_buffer("sin", angles.sin().float())

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.head(self.norm(x))


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 12), ("d-model", 768), ("heads", 12), ("kv-heads", 4), ("ffn", 2048),
                          ("vocab", 32000), ("seq", 256), ("batch", 4), ("steps", 4), ("threads", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
    times = []
    for step in range(a.steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step > 0:
            times.append(time.perf_counter() - t0)
    n_params = sum(t.numel() for t in model.parameters())
    n_matmul = n_params - a.vocab * a.d_model
    flops_per_token = 6 * n_matmul + 12 * a.layers * a.d_model * a.seq
    step = statistics.median(times)
    tokens_per_s = a.batch * a.seq / step
    print(f"torch {torch.__version__}, {a.threads} threads: {n_params / 1e6:.1f}M parameters")
    print(f"step time (median of {a.steps}): {step * 1e3:.1f} ms")
    print(f"tokens/s: {tokens_per_s:.0f}")
    print(f"model FLOP/s: {tokens_per_s * flops_per_token / 1e9:.1f} GFLOP/s ({flops_per_token / 1e9:.2f} GFLOP per token)")


if __name__ == "__main__":
    main()
