"""Built-in model zoo for the regress python backend.

Weights are drawn from torch's default generator in a fixed order after
``torch.manual_seed(seed)``: each linear layer draws ``randn(out, in)``
scaled by ``in ** -0.5`` and starts with a zero bias, exactly as the native
(tch) zoo draws them, so the same built-in model with the same seed computes
the same function in both backends.

A model may define ``regress_loss(output, *inputs)``; the worker uses it
for the ``backward`` and ``step`` phases instead of the mean square of the
output.
"""

import math

import torch
from torch import nn
import torch.nn.functional as F


class Linear(nn.Linear):
    """An ``nn.Linear`` (so fp8 conversions find it) with the zoo's weight draw."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__(in_features, out_features, bias=bias)
        with torch.no_grad():
            self.weight.copy_(torch.randn(out_features, in_features) * in_features ** -0.5)
            if self.bias is not None:
                self.bias.zero_()

    def reset_parameters(self):
        # nn.Linear's Kaiming init would consume the generator; the weights
        # are drawn in __init__ instead, in the documented order.
        pass


class Mlp(nn.Module):
    """Two-layer perceptron: Linear(dim, hidden) -> GELU -> Linear(hidden, dim)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention through scaled_dot_product_attention."""

    def __init__(self, embed_dim, heads, causal):
        super().__init__()
        if embed_dim % heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by heads {heads}")
        self.heads = heads
        self.causal = causal
        self.qkv = Linear(embed_dim, 3 * embed_dim, bias=False)
        self.out = Linear(embed_dim, embed_dim, bias=False)

    def forward(self, x):
        b, s, e = x.shape
        q, k, v = split_qkv(self.qkv(x), self.heads)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.out(y.transpose(1, 2).reshape(b, s, e))


def split_qkv(qkv, heads):
    """(batch, seq, 3 * dim) -> three (batch, heads, seq, head_dim) tensors."""
    b, s, three_e = qkv.shape
    e = three_e // 3
    return qkv.view(b, s, 3, heads, e // heads).permute(2, 0, 3, 1, 4).unbind(0)


class Rope(nn.Module):
    """Rotary position embedding (rotate-half form) on (batch, heads, seq, head_dim)."""

    def __init__(self, head_dim, max_seq, base=10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rope needs an even head_dim, got {head_dim}")
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_seq, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x):
        s = x.shape[-2]
        cos = self.cos[:s].to(x.dtype)
        sin = self.sin[:s].to(x.dtype)
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin


class RmsNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale (starts at one)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (x.float() * scale).to(x.dtype) * self.weight


class TransformerBlock(nn.Module):
    """Llama-style block: pre-norm, RoPE attention, pre-norm SwiGLU feed-forward.

    ``split_qkv`` and ``rope`` are attributes of their own so a pipeline can
    compile just them (``compile_options.scope: [rope, split_qkv]``).
    """

    def __init__(self, dim, heads, hidden, causal, max_seq):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.causal = causal
        self.attn_norm = RmsNorm(dim)
        self.qkv = Linear(dim, 3 * dim, bias=False)
        self.split_qkv = split_qkv
        self.rope = Rope(dim // heads, max_seq)
        self.proj = Linear(dim, dim, bias=False)
        self.ffn_norm = RmsNorm(dim)
        self.gate = Linear(dim, hidden, bias=False)
        self.up = Linear(dim, hidden, bias=False)
        self.down = Linear(hidden, dim, bias=False)

    def forward(self, x):
        b, s, e = x.shape
        q, k, v = self.split_qkv(self.qkv(self.attn_norm(x)), self.heads)
        q, k = self.rope(q), self.rope(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        x = x + self.proj(y.transpose(1, 2).reshape(b, s, e))
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class TransformerLm(nn.Module):
    """Token embedding, ``layers`` transformer blocks, final norm and LM head."""

    def __init__(self, vocab, dim, heads, hidden, layers, max_seq):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(vocab, dim) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, hidden, True, max_seq) for _ in range(layers)
        )
        self.norm = RmsNorm(dim)
        self.head = Linear(dim, vocab, bias=False)

    def forward(self, tokens):
        x = F.embedding(tokens, self.embed)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def regress_loss(self, logits, tokens):
        """Next-token cross-entropy, as in a language-model training step."""
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1)
        )


class LinearComponents(nn.Module):
    """SPD's masked low-rank layer: ``(x @ V * mask) @ U``."""

    def __init__(self, d_in, d_out, components):
        super().__init__()
        self.V = nn.Parameter(torch.randn(d_in, components) * d_in ** -0.5)
        self.U = nn.Parameter(torch.randn(components, d_out) * components ** -0.5)

    def forward(self, x, mask):
        return (x @ self.V * mask) @ self.U


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
        model = Attention(embed_dim, heads, bool(params.get("causal", False)))
        seq_len = _int(params, "seq_len", 128)
        return model, (torch.randn(batch, seq_len, embed_dim),)
    if name == "transformer_block":
        dim = _int(params, "dim", 256)
        heads = _int(params, "heads", 4)
        hidden = _int(params, "hidden", _swiglu_hidden(dim))
        seq_len = _int(params, "seq_len", 128)
        model = TransformerBlock(dim, heads, hidden, bool(params.get("causal", True)), seq_len)
        return model, (torch.randn(batch, seq_len, dim),)
    if name == "transformer_lm":
        vocab = _int(params, "vocab", 1000)
        dim = _int(params, "dim", 192)
        heads = _int(params, "heads", 6)
        hidden = _int(params, "hidden", 4 * dim)
        layers = _int(params, "layers", 3)
        seq_len = _int(params, "seq_len", 128)
        model = TransformerLm(vocab, dim, heads, hidden, layers, seq_len)
        return model, (torch.randint(0, vocab, (batch, seq_len)),)
    if name == "linear_components":
        d_in = _int(params, "d_in", 512)
        d_out = _int(params, "d_out", d_in)
        components = _int(params, "components", 512)
        model = LinearComponents(d_in, d_out, components)
        lead = (batch, _int(params, "seq_len", 1)) if "seq_len" in params else (batch,)
        x = torch.randn(*lead, d_in)
        mask = torch.rand(*lead, components)
        return model, (x, mask)
    if name == "rope":
        heads = _int(params, "heads", 8)
        head_dim = _int(params, "head_dim", 64)
        seq_len = _int(params, "seq_len", 128)
        return Rope(head_dim, seq_len), (torch.randn(batch, heads, seq_len, head_dim),)
    raise ValueError(f"unknown built-in model {name!r}")


def _swiglu_hidden(dim):
    """Llama's feed-forward width: 2/3 of 4 * dim, rounded up to a multiple of 64."""
    return int(math.ceil(8 * dim / 3 / 64) * 64)
