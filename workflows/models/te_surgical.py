"""Surgical torch.compile, Transformer Engine style, for
workflows/te-surgical-rope*.yaml.

te-surgical-compile.md compiles only the tensor operations of attention, the
QKV reshape/split and the rotary position embedding (RoPE), and leaves the
linear layers (TE's FP8 linears) eager. Both operations are attributes of
their own here, so a pipeline compiles exactly them with
``compile_options.scope: [rope, split_qkv]`` (regress compiles each
submodule or function attribute of that name and leaves the rest eager):

- ``part: ops``: the surgical operations alone: a fused QKV tensor
  (batch, seq_len, 3 * hidden) split into heads, RoPE on q and k.
- ``part: model``: the write-up's mini transformer, ``layers`` pre-LayerNorm
  blocks of QKV projection, split, RoPE, causal SDPA, output projection and a
  GELU MLP of width ``ffn``, on hidden states (batch, seq_len, hidden).

Linear weights are randn * fan_in ** -0.5 with zero bias, drawn from the
seeded default generator, so the models are deterministic; nothing depends
on data, so nothing breaks the graph.

factory(params) reads: part (model), batch (8), seq_len (2048), hidden
(2048), heads (16), layers (4), ffn (4096).
"""

import torch
from torch import nn
import torch.nn.functional as F


def split_qkv(qkv, heads):
    """(batch, seq, 3 * hidden) -> q, k, v of shape (batch, heads, seq, head_dim)."""
    b, s, three_h = qkv.shape
    h = three_h // 3
    return qkv.view(b, s, 3, heads, h // heads).permute(2, 0, 3, 1, 4).unbind(0)


class Rope(nn.Module):
    """Rotary position embedding (rotate-half form) on (batch, heads, seq, head_dim)."""

    def __init__(self, head_dim, max_seq, base=10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_seq, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x):
        s = x.shape[-2]
        cos, sin = self.cos[:s].to(x.dtype), self.sin[:s].to(x.dtype)
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def linear(d_in, d_out):
    layer = nn.Linear(d_in, d_out)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(d_out, d_in) * d_in ** -0.5)
        layer.bias.zero_()
    return layer


class SurgicalOps(nn.Module):
    """Just the operations the surgical approach compiles."""

    def __init__(self, hidden, heads, max_seq):
        super().__init__()
        self.heads = heads
        self.split_qkv = split_qkv
        self.rope = Rope(hidden // heads, max_seq)

    def forward(self, qkv):
        q, k, v = self.split_qkv(qkv, self.heads)
        return self.rope(q), self.rope(k), v


class Layer(nn.Module):
    def __init__(self, hidden, heads, ffn, max_seq):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(hidden)
        self.qkv = linear(hidden, 3 * hidden)
        self.split_qkv = split_qkv
        self.rope = Rope(hidden // heads, max_seq)
        self.proj = linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc1 = linear(hidden, ffn)
        self.fc2 = linear(ffn, hidden)

    def forward(self, x):
        b, s, e = x.shape
        q, k, v = self.split_qkv(self.qkv(self.ln1(x)), self.heads)
        q, k = self.rope(q), self.rope(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, s, e))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class MiniTransformer(nn.Module):
    def __init__(self, hidden, heads, ffn, layers, max_seq):
        super().__init__()
        self.layers = nn.ModuleList(Layer(hidden, heads, ffn, max_seq) for _ in range(layers))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def factory(params):
    part = params.get("part", "model")
    batch = int(params.get("batch", 8))
    seq_len = int(params.get("seq_len", 2048))
    hidden = int(params.get("hidden", 2048))
    heads = int(params.get("heads", 16))
    if hidden % heads or (hidden // heads) % 2:
        raise ValueError(f"hidden {hidden} must split into {heads} heads of even size")
    if part == "ops":
        return SurgicalOps(hidden, heads, seq_len), (torch.randn(batch, seq_len, 3 * hidden),)
    if part == "model":
        model = MiniTransformer(
            hidden, heads, int(params.get("ffn", 4096)), int(params.get("layers", 4)), seq_len
        )
        return model, (torch.randn(batch, seq_len, hidden),)
    raise ValueError(f"part must be `ops` or `model`, got {part!r}")
