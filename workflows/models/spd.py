"""SPD's "full ComponentModel": a small Llama whose linear layers are all
replaced by masked LinearComponents, for workflows/spd-linear-components*.yaml.

In SPD (stochastic parameter decomposition) every decomposed weight W of a
target model becomes C rank-one components, ``W ~ V @ U`` with V (d_in, C)
and U (C, d_out), and a forward pass with a mask over the components computes
``(x @ V * mask) @ U``: the core operation of spd-linear-components-compile.md
(regress's built-in ``linear_components`` times it alone). The write-up's
full model is a 4-layer Llama ("SS Llama Simple") with 28 decomposed modules
(q, k, v, o, gate, up, down per layer), C = 1200 each. Its widths are not in
the write-up; the defaults here (dim 256, 8 heads, SwiGLU hidden 1024, vocab
4096) are a SimpleStories-sized guess and every one is a parameter.

As in an SPD training step, the target model (embedding, norms, LM head) is
frozen and only the components (V, U) train; the masks are inputs, one per
decomposed module and token, drawn uniformly in [0, 1) like SPD's stochastic
masks: the inputs are the tokens and then layers * 7 tensors of shape
(batch, seq_len, components). (Separate tensors rather than one stacked
tensor: the seven masked multiplies of a layer then compile to one shared
kernel, which matters for compile time on a small CPU.) The loss for the
backward phase is next-token cross-entropy.

Weights are drawn from the seeded default generator (randn * fan_in ** -0.5),
so the model is deterministic; there is no data-dependent control flow, so
torch.compile captures it in one graph.

factory(params) reads: batch (16), seq_len (128), vocab (4096), dim (256),
heads (8), hidden (1024), layers (4), components (1200), and ``part``:
``model`` (the default) for the full model above, or ``components`` for the
isolated operation alone, one LinearComponents with d_in = d_out = C = ``d``
(512), inputs x (batch, seq_len, d) and mask (batch, seq_len, d); the same
operation as regress's built-in ``linear_components``, so a CPU pipeline can
time both in one pipeline (one start-up of the compiler instead of two).
"""

import torch
from torch import nn
import torch.nn.functional as F

MODULES_PER_LAYER = 7  # q, k, v, o, gate, up, down


class LinearComponents(nn.Module):
    """``(x @ V * mask) @ U``: a weight decomposed into C masked rank-one components."""

    def __init__(self, d_in, d_out, components):
        super().__init__()
        self.V = nn.Parameter(torch.randn(d_in, components) * d_in ** -0.5)
        self.U = nn.Parameter(torch.randn(components, d_out) * components ** -0.5)

    def forward(self, x, mask):
        return (x @ self.V * mask) @ self.U


class RmsNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (x.float() * scale).to(x.dtype) * self.weight


def rope_tables(head_dim, max_seq, base=10000.0):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_seq, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class ComponentBlock(nn.Module):
    """A Llama block (pre-norm, RoPE causal attention, SwiGLU) with every linear decomposed."""

    def __init__(self, dim, heads, hidden, components):
        super().__init__()
        self.heads = heads
        self.attn_norm = RmsNorm(dim)
        self.q = LinearComponents(dim, dim, components)
        self.k = LinearComponents(dim, dim, components)
        self.v = LinearComponents(dim, dim, components)
        self.o = LinearComponents(dim, dim, components)
        self.ffn_norm = RmsNorm(dim)
        self.gate = LinearComponents(dim, hidden, components)
        self.up = LinearComponents(dim, hidden, components)
        self.down = LinearComponents(hidden, dim, components)

    def forward(self, x, masks, cos, sin):
        b, s, e = x.shape
        h = self.attn_norm(x)

        def heads(t):
            return t.view(b, s, self.heads, e // self.heads).transpose(1, 2)

        q = apply_rope(heads(self.q(h, masks[0])), cos, sin)
        k = apply_rope(heads(self.k(h, masks[1])), cos, sin)
        v = heads(self.v(h, masks[2]))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, s, e), masks[3])
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h, masks[4])) * self.up(h, masks[5]), masks[6])


class ComponentLlama(nn.Module):
    def __init__(self, vocab, dim, heads, hidden, layers, components, max_seq):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.embed = nn.Parameter(torch.randn(vocab, dim) * 0.02)
        self.blocks = nn.ModuleList(
            ComponentBlock(dim, heads, hidden, components) for _ in range(layers)
        )
        self.norm = RmsNorm(dim)
        self.head = nn.Parameter(torch.randn(vocab, dim) * dim ** -0.5)
        cos, sin = rope_tables(dim // heads, max_seq)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        # The target model is frozen; SPD trains the components only.
        for p in (self.embed, self.head, self.norm.weight):
            p.requires_grad_(False)
        for block in self.blocks:
            block.attn_norm.weight.requires_grad_(False)
            block.ffn_norm.weight.requires_grad_(False)

    def forward(self, tokens, *masks):
        s = tokens.shape[1]
        x = F.embedding(tokens, self.embed)
        cos = self.cos[:s].to(x.dtype)
        sin = self.sin[:s].to(x.dtype)
        for i, block in enumerate(self.blocks):
            x = block(x, masks[MODULES_PER_LAYER * i : MODULES_PER_LAYER * (i + 1)], cos, sin)
        return F.linear(self.norm(x), self.head)

    def regress_loss(self, logits, tokens, *masks):
        """Next-token cross-entropy."""
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1)
        )


def factory(params):
    batch = int(params.get("batch", 16))
    seq_len = int(params.get("seq_len", 128))
    part = params.get("part", "model")
    if part == "components":
        d = int(params.get("d", 512))
        return LinearComponents(d, d, d), (
            torch.randn(batch, seq_len, d),
            torch.rand(batch, seq_len, d),
        )
    if part != "model":
        raise ValueError(f"part must be `model` or `components`, got {part!r}")
    vocab = int(params.get("vocab", 4096))
    layers = int(params.get("layers", 4))
    components = int(params.get("components", 1200))
    model = ComponentLlama(
        vocab,
        int(params.get("dim", 256)),
        int(params.get("heads", 8)),
        int(params.get("hidden", 1024)),
        layers,
        components,
        seq_len,
    )
    tokens = torch.randint(0, vocab, (batch, seq_len))
    masks = tuple(torch.rand(batch, seq_len, components) for _ in range(MODULES_PER_LAYER * layers))
    return model, (tokens, *masks)
