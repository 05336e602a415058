"""Hand-written attention and a small TransformerLM, for
workflows/attention-transformerlm*.yaml.

The write-up (mps-attention-transformerlm-compile.md) compares torch.compile
against eager for two things built on one attention implementation:

- ``part: attention``: scaled dot-product attention written out by hand,
  ``softmax(Q K^T / sqrt(d)) V``, single head, on inputs Q, K, V of shape
  (batch, seq_len, d_model). The module has no weights, so the backward phase
  differentiates with respect to Q, K and V. This is the "attention module"
  table of the write-up (d_model 16-128, seq_len 256-8192).
- ``part: lm``: a decoder-only TransformerLM (token embedding, pre-norm
  blocks of RMSNorm, causal multi-head attention through the same function
  with RoPE, RMSNorm, SwiGLU feed-forward; final RMSNorm and LM head) with a
  next-token cross-entropy loss. This is the "TransformerLM" table (vocab
  1000, d_model 192, 3 layers, 6 heads, d_ff 768, batch 6, seq_len 192).

The attention is spelled out (not F.scaled_dot_product_attention) because
that is what the write-up timed, and it is what torch.compile can fuse.
Weights are drawn from the seeded default generator (randn * fan_in ** -0.5),
so the models are deterministic; no data-dependent control flow, so no graph
breaks.

factory(params) reads: part (attention), batch (8), seq_len (256); for the
attention d_model (64); for the LM vocab (1000), d_model (192), layers (3),
heads (6), d_ff (768).
"""

import math

import torch
from torch import nn
import torch.nn.functional as F


def attention(q, k, v, causal=False):
    """softmax(q k^T / sqrt(d)) v over the last two dimensions."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal:
        s = q.shape[-2]
        future = torch.ones(s, s, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class Attention(nn.Module):
    """The attention function alone, on given Q, K and V."""

    def forward(self, q, k, v):
        return attention(q, k, v)


def linear(d_in, d_out):
    layer = nn.Linear(d_in, d_out, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(d_out, d_in) * d_in ** -0.5)
    return layer


class RmsNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    def __init__(self, d_model, heads, d_ff):
        super().__init__()
        self.heads = heads
        self.norm1 = RmsNorm(d_model)
        self.q = linear(d_model, d_model)
        self.k = linear(d_model, d_model)
        self.v = linear(d_model, d_model)
        self.o = linear(d_model, d_model)
        self.norm2 = RmsNorm(d_model)
        self.w1 = linear(d_model, d_ff)
        self.w3 = linear(d_model, d_ff)
        self.w2 = linear(d_ff, d_model)

    def forward(self, x, cos, sin):
        b, s, e = x.shape
        h = self.norm1(x)

        def heads(t):
            return t.view(b, s, self.heads, e // self.heads).transpose(1, 2)

        q, k, v = heads(self.q(h)), heads(self.k(h)), heads(self.v(h))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        y = attention(q, k, v, causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, s, e))
        h = self.norm2(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


class TransformerLm(nn.Module):
    def __init__(self, vocab, d_model, layers, heads, d_ff, context):
        super().__init__()
        if d_model % heads or (d_model // heads) % 2:
            raise ValueError(f"d_model {d_model} must split into {heads} heads of even size")
        self.embed = nn.Parameter(torch.randn(vocab, d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(d_model, heads, d_ff) for _ in range(layers))
        self.norm = RmsNorm(d_model)
        self.head = linear(d_model, vocab)
        head_dim = d_model // heads
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(context, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, tokens):
        s = tokens.shape[1]
        x = F.embedding(tokens, self.embed)
        cos, sin = self.cos[:s].to(x.dtype), self.sin[:s].to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(self.norm(x))

    def regress_loss(self, logits, tokens):
        """Next-token cross-entropy."""
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1)
        )


def factory(params):
    part = params.get("part", "attention")
    batch = int(params.get("batch", 8))
    seq_len = int(params.get("seq_len", 256))
    if part == "attention":
        d = int(params.get("d_model", 64))
        return Attention(), tuple(torch.randn(batch, seq_len, d) for _ in range(3))
    if part == "lm":
        vocab = int(params.get("vocab", 1000))
        model = TransformerLm(
            vocab,
            int(params.get("d_model", 192)),
            int(params.get("layers", 3)),
            int(params.get("heads", 6)),
            int(params.get("d_ff", 768)),
            seq_len,
        )
        return model, (torch.randint(0, vocab, (batch, seq_len)),)
    raise ValueError(f"part must be `attention` or `lm`, got {part!r}")
