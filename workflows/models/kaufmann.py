"""Reaction-diffusion ("Kaufmann") attention, for workflows/kaufmann-attention*.yaml.

A stand-in for the KaufmannAttention layer whose torch.compile results are
in kaufmann-attention-compile.md: multi-head attention over the tokens (the
"topology": its softmaxed scores say how strongly tokens are linked), whose
diffused signal then drives a FitzHugh-Nagumo reaction loop on the token
states, ``steps`` explicit Euler steps of

    du = u - u^3 / 3 - w + tanh(x) + tanh(diffused)
    dw = (u + a - b * w) / tau

with the states clamped every step, and an output projection of ``u``.

The loop is a standalone function, ``reaction_diffusion_step``, kept on the
layer as the function attribute ``reaction_diffusion``: the original code
compiled just that function (``torch.compile(..., mode="reduce-overhead")``)
and left the rest eager, which a pipeline reproduces with
``compile_options.scope: [reaction_diffusion]``; ``scope: model`` compiles
the whole layer instead.

Everything is deterministic (no dropout, no sampling) and bounded: the
drive is a sum of two tanh, u is clamped to [-2, 2] inside the cubic and
both states to [-3, 3], so bf16 cannot overflow, and the forward has no
data-dependent Python control flow, hence no graph break.

factory(params) reads: batch (2), seq_len (64), embed_dim (512), heads (8),
steps (2, the original's n_fhn_steps), causal (true).
"""

import math

import torch
from torch import nn
import torch.nn.functional as F


def reaction_diffusion_step(u, w, drive, a, b, dt, tau: float, steps: int):
    """``steps`` Euler steps of the FitzHugh-Nagumo reaction driven by ``drive``."""
    for _ in range(steps):
        u_safe = u.clamp(-2.0, 2.0)
        du = u_safe - u_safe * u_safe * u_safe / 3.0 - w + drive
        dw = (u_safe + a - b * w) / tau
        u = (u + dt * du).clamp(-3.0, 3.0)
        w = (w + dt * dw).clamp(-3.0, 3.0)
    return u, w


class KaufmannAttention(nn.Module):
    def __init__(self, embed_dim, heads, steps=2, causal=True, tau=12.5):
        super().__init__()
        if embed_dim % heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by heads {heads}")
        self.heads = heads
        self.steps = steps
        self.causal = causal
        self.tau = tau
        # Weights from the same distribution as regress's zoo: randn * fan_in ** -0.5, zero bias.
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=False)
        self.link = nn.Linear(embed_dim, embed_dim, bias=False)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        with torch.no_grad():
            for lin in (self.qkv, self.link, self.out_proj):
                lin.weight.copy_(torch.randn_like(lin.weight) * embed_dim ** -0.5)
            self.out_proj.bias.zero_()
        # FitzHugh-Nagumo parameters, learned as in the original.
        self.a = nn.Parameter(torch.tensor(0.7))
        self.b = nn.Parameter(torch.tensor(0.8))
        self.dt = nn.Parameter(torch.tensor(0.1))
        # The standalone loop, as an attribute so a scope can compile just it.
        self.reaction_diffusion = reaction_diffusion_step

    def forward(self, x):
        b, s, e = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(b, s, 3, h, e // h).permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(e // h))
        if self.causal:
            future = torch.ones(s, s, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        links = scores.softmax(dim=-1)
        diffused = self.link((links @ v).transpose(1, 2).reshape(b, s, e))
        drive = torch.tanh(x) + torch.tanh(diffused)
        u = torch.tanh(x)
        w = torch.zeros_like(u)
        dt = torch.sigmoid(self.dt) * 0.2
        u, w = self.reaction_diffusion(u, w, drive, self.a, self.b, dt, self.tau, self.steps)
        return self.out_proj(u)


def factory(params):
    embed_dim = int(params.get("embed_dim", 512))
    model = KaufmannAttention(
        embed_dim,
        int(params.get("heads", 8)),
        steps=int(params.get("steps", 2)),
        causal=bool(params.get("causal", True)),
    )
    x = torch.randn(int(params.get("batch", 2)), int(params.get("seq_len", 64)), embed_dim)
    return model, (x,)
