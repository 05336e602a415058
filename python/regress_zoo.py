"""Built-in model zoo for the regress python backend.

Weights are drawn from torch's default generator in a fixed order after
``torch.manual_seed(seed)``, exactly as the native (tch) zoo draws them, so
the same built-in model with the same seed computes the same function in
both backends.
"""

import torch
from torch import nn
import torch.nn.functional as F


def _param(*shape, scale):
    return nn.Parameter(torch.randn(*shape) * scale)


class Mlp(nn.Module):
    """Two-layer perceptron: Linear(dim, hidden) -> GELU -> Linear(hidden, dim)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = _param(hidden, dim, scale=dim ** -0.5)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = _param(dim, hidden, scale=hidden ** -0.5)
        self.b2 = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        h = F.gelu(F.linear(x, self.w1, self.b1))
        return F.linear(h, self.w2, self.b2)


class Attention(nn.Module):
    """Multi-head self-attention through scaled_dot_product_attention."""

    def __init__(self, embed_dim, heads, causal):
        super().__init__()
        if embed_dim % heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by heads {heads}")
        self.heads = heads
        self.causal = causal
        self.w_qkv = _param(3 * embed_dim, embed_dim, scale=embed_dim ** -0.5)
        self.w_out = _param(embed_dim, embed_dim, scale=embed_dim ** -0.5)

    def forward(self, x):
        b, s, e = x.shape
        qkv = F.linear(x, self.w_qkv).view(b, s, 3, self.heads, e // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return F.linear(y.transpose(1, 2).reshape(b, s, e), self.w_out)


def _int(params, name, default):
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"parameter {name} must be a positive integer, got {value!r}")
    return value


def build(name, params, seed):
    """Returns (module, example_inputs) for a built-in model on the CPU in fp32."""
    torch.manual_seed(seed)
    batch = _int(params, "batch", 8)
    if name == "mlp":
        dim = _int(params, "dim", 256)
        hidden = _int(params, "hidden", 4 * dim)
        model = Mlp(dim, hidden)
        shape = (batch, _int(params, "seq_len", 1), dim) if "seq_len" in params else (batch, dim)
        return model, (torch.randn(*shape),)
    if name == "attention":
        embed_dim = _int(params, "embed_dim", 256)
        heads = _int(params, "heads", 4)
        causal = bool(params.get("causal", False))
        model = Attention(embed_dim, heads, causal)
        seq_len = _int(params, "seq_len", 128)
        return model, (torch.randn(batch, seq_len, embed_dim),)
    raise ValueError(f"unknown built-in model {name!r}")
