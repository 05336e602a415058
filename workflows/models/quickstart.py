"""Feed-forward blocks of a transformer, for the quickstart's
``quickstart-ffn`` pipeline (workflows/quickstart.yaml): a model of the
user's own, loaded through ``model.entrypoint``, beside the built-in zoo.

- ``ffn: gelu``: Linear(dim, hidden) -> GELU -> Linear(hidden, dim), the
  block of GPT-2 and BERT.
- ``ffn: swiglu``: Linear(hidden, dim)(SiLU(W1 x) * W3 x), the gated block
  of Llama.

``make demo`` commits a change to this file as its second commit
(scripts/demo-regression.patch: an extra layer in the SwiGLU block only) and
shows that ``regress`` finds that one case slower and leaves the others
alone.

factory(params) reads: ffn (gelu), batch (16), dim (512), hidden (1024).
Weights are drawn from the seeded default generator (randn * fan_in ** -0.5),
so the model is deterministic.
"""

import torch
from torch import nn
import torch.nn.functional as F


def linear(d_in, d_out):
    layer = nn.Linear(d_in, d_out, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(d_out, d_in) * d_in ** -0.5)
    return layer


class GeluFfn(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.up = linear(dim, hidden)
        self.down = linear(hidden, dim)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class SwiGluFfn(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate = linear(dim, hidden)
        self.up = linear(dim, hidden)
        self.down = linear(hidden, dim)

    def forward(self, x):
        h = F.silu(self.gate(x)) * self.up(x)
        return self.down(h)


def factory(params):
    ffn = params.get("ffn", "gelu")
    batch = int(params.get("batch", 16))
    dim = int(params.get("dim", 512))
    hidden = int(params.get("hidden", 1024))
    blocks = {"gelu": GeluFfn, "swiglu": SwiGluFfn}
    if ffn not in blocks:
        raise ValueError(f"ffn must be one of {sorted(blocks)}, got {ffn!r}")
    return blocks[ffn](dim, hidden), (torch.randn(batch, dim),)
