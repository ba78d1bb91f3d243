"""PyTorch baseline of `starpipe throughput encoder`: the same architecture (linear token embedding +
learned positions → pre-norm blocks of multi-head self-attention and a GELU MLP → final layer norm →
mean over tokens), fresh weights, tokens in memory, outputs copied back to the host. PyTorch's own
fast path: scaled_dot_product_attention (flash attention on GPUs), inference_mode.

usage: encoder_torch.py [--preset small|specclip] [--dtype f32|bf16] [--device cpu|cuda]
                        [--batch 64 ...] [--seconds 5] [--threads N] [--compile]
"""
import argparse, json, os, time

import torch

# TokenLayout::specclip(1462) (the specclip grid window): 146 windows of 20 pixels + the scale token.
N_TOKENS, TOKEN_DIM = 147, 21
PRESETS = {"small": (64, 2, 4), "specclip": (768, 6, 6)}  # d_model, layers, heads (d_ff = 4 d)


class Block(torch.nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = torch.nn.LayerNorm(d, eps=1e-5), torch.nn.LayerNorm(d, eps=1e-5)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
        self.ff1, self.ff2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        y = self.ln1(x)
        heads = lambda lin: lin(y).view(b, t, self.h, d // self.h).transpose(1, 2)
        a = torch.nn.functional.scaled_dot_product_attention(heads(self.q), heads(self.k), heads(self.v))
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        return x + self.ff2(torch.nn.functional.gelu(self.ff1(self.ln2(x)), approximate="tanh"))


class Encoder(torch.nn.Module):
    def __init__(self, d, layers, h):
        super().__init__()
        self.embed = torch.nn.Linear(TOKEN_DIM, d)
        self.position = torch.nn.Parameter(torch.randn(N_TOKENS, d) * 0.02)
        self.blocks = torch.nn.ModuleList(Block(d, h) for _ in range(layers))
        self.final = torch.nn.LayerNorm(d, eps=1e-5)

    def forward(self, tokens):
        x = self.embed(tokens) + self.position
        for blk in self.blocks:
            x = blk(x)
        return self.final(x).float().mean(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="specclip", choices=PRESETS)
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[64])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--compile", action="store_true", help="torch.compile the model first")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    net = Encoder(*PRESETS[a.preset]).eval().to(a.device, dtype)
    if a.compile:
        net = torch.compile(net)
    for b in a.batch:
        x = (torch.rand(b, N_TOKENS, TOKEN_DIM) - 0.5).mul(0.4).to(a.device, dtype)
        with torch.inference_mode():
            net(x).cpu()  # warm-up (kernel selection, compilation)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < a.seconds or n == 0:
                net(x).cpu()
                n += b
        rate = n / (time.perf_counter() - t0)
        print(json.dumps({"impl": "torch", "network": f"encoder-{a.preset}", "device": a.device, "precision": a.dtype,
                          "batch": b, "spectra_per_s": round(rate, 1),
                          "parameters": sum(p.numel() for p in net.parameters())}))


if __name__ == "__main__":
    main()
