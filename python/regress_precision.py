"""Precision: where a case's model and inputs go and in which dtype, the
fp8 layers (`torch._scaled_mm` or torchao), and what a precision needs
of the device.
"""

import contextlib

import torch

from regress_models import Skip


def fp8_linear_class():
    nn = torch.nn
    e4m3 = torch.float8_e4m3fn
    fmax = torch.finfo(e4m3).max

    class Fp8Linear(nn.Module):
        """e4m3 forward through torch._scaled_mm with per-tensor scales.

        Weights are quantised once; activations are scaled per call from
        their absolute maximum (dynamic scaling), output in bf16.
        """

        def __init__(self, linear):
            super().__init__()
            w = linear.weight.detach()
            w_scale = w.abs().max().float().clamp(min=1e-12) / fmax
            self.register_buffer("w_fp8", (w.float() / w_scale).clamp(-fmax, fmax).to(e4m3))
            self.register_buffer("w_scale", w_scale.reshape(()))
            self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().to(torch.bfloat16))
            self.out_features = linear.out_features

        def forward(self, x):
            lead = x.shape[:-1]
            # _scaled_mm wants a row-major activation; reshape keeps a
            # transposed input's strides, and every op below preserves
            # them. Free when x is already contiguous.
            x2 = x.reshape(-1, x.shape[-1]).contiguous()
            x_scale = x2.abs().max().float().clamp(min=1e-12) / fmax
            x_fp8 = (x2.float() / x_scale).clamp(-fmax, fmax).to(e4m3)
            y = torch._scaled_mm(x_fp8, self.w_fp8.t(), scale_a=x_scale, scale_b=self.w_scale,
                                 out_dtype=torch.bfloat16)
            if self.bias is not None:
                y = y + self.bias
            return y.reshape(*lead, self.out_features)

    return Fp8Linear


def to_fp8(model, recipe):
    """Swaps linear layers for fp8 ones; the rest of the model runs in bf16."""
    model = model.to(torch.bfloat16)
    if recipe == "torchao":
        try:
            from torchao.float8 import convert_to_float8_training
        except ImportError as exc:
            raise Skip(f"runner.fp8 is torchao but torchao is not installed ({exc})")
        return convert_to_float8_training(
            model, module_filter_fn=lambda m, _: m.in_features % 16 == 0 and m.out_features % 16 == 0
        )
    cls = fp8_linear_class()
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear) and child.in_features % 16 == 0 and child.out_features % 16 == 0:
                setattr(parent, name, cls(child))
                swapped += 1
    if swapped == 0:
        raise Skip("fp8: the model has no linear layer with both sizes a multiple of 16, so nothing would run in fp8")
    return model


def place(model, inputs, device, precision, cast, fp8_recipe):
    """Moves model and inputs to the device and applies the case's precision."""
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.bfloat16}
    dtype = dtypes[precision]
    model = model.to(device)
    if precision == "fp8":
        model = to_fp8(model, fp8_recipe)
    elif precision != "fp32" and cast == "dtype":
        model = model.to(dtype)
    input_dtype = dtype if (cast == "dtype" or precision == "fp8") else torch.float32
    inputs = tuple(
        x.to(device=device, dtype=input_dtype) if torch.is_tensor(x) and x.is_floating_point()
        else (x.to(device) if torch.is_tensor(x) else x)
        for x in inputs
    )
    autocast = None
    if cast == "autocast" and precision in ("bf16", "fp16"):
        autocast = (device, dtype)
    return model, inputs, autocast


def reference_precision(precision, mode):
    """The precision of the eager reference: the case's own for compiled
    cases (what compilation changes), fp32 for fp8 and eager ones."""
    return precision if (mode != "eager" and precision in ("fp32", "bf16", "fp16")) else "fp32"


def autocast_context(autocast):
    """The autocast region of `place`'s (device, dtype), or no region."""
    if autocast:
        return torch.autocast(device_type=autocast[0], dtype=autocast[1])
    return contextlib.nullcontext()


def unsupported(precision, device, phase, fp8_recipe):
    """Why this device cannot time `precision` for real (None: it can)."""
    if precision == "fp8":
        if device != "cuda":
            return "fp8 needs a CUDA GPU of compute capability 8.9 or newer; CPU fp8 is emulation, not a performance result"
        major, minor = torch.cuda.get_device_capability(0)
        if (major, minor) < (8, 9):
            return f"fp8 needs compute capability 8.9 or newer; this GPU is {major}.{minor}"
        if phase != "forward" and fp8_recipe == "scaled_mm":
            return "fp8 through torch._scaled_mm is forward-only; set `runner.fp8: torchao` to time backward and step"
    # including_emulation=False: T4 and V100 emulate bf16, which times the
    # emulation, not the GPU's bf16.
    if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "this GPU has no native bf16 (compute capability 8.0 or newer); emulated bf16 is not a performance result"
    return None
