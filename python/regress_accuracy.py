"""The accuracy gate: the eager reference a case is checked against, and
the check itself (allclose, else a relative RMSE within the precision's
tolerance).
"""

import math

import torch

from regress_compile import compile_model
from regress_models import build_model, outputs_of
from regress_precision import autocast_context, place, reference_precision


class AccuracyFail(Exception):
    """The measured model's output disagrees with the reference."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def check_accuracy(out, ref, tol, reference_name):
    got, want = outputs_of(out), outputs_of(ref)
    report = {"reference": reference_name, "rtol": tol["rtol"], "atol": tol["atol"], "rmse_tol": tol["rmse"]}
    if len(got) != len(want):
        raise AccuracyFail(f"the output has {len(got)} tensors, the reference {len(want)}", report)
    max_abs = max_rel = rel_rmse = 0.0
    rule = "allclose"
    for i, (a, b) in enumerate(zip(got, want)):
        a = a.detach().float().cpu()
        b = b.detach().float().cpu()
        if a.shape != b.shape:
            raise AccuracyFail(f"output {i} has shape {tuple(a.shape)}, the reference {tuple(b.shape)}", report)
        if not torch.isfinite(a).all():
            report.update(nonfinite=True)
            raise AccuracyFail(f"output {i} contains NaN or Inf", report)
        diff = (a - b).abs()
        max_abs = max(max_abs, diff.max().item() if diff.numel() else 0.0)
        max_rel = max(max_rel, (diff / (b.abs() + tol["atol"])).max().item() if diff.numel() else 0.0)
        rms_ref = b.square().mean().sqrt().item() if b.numel() else 0.0
        rmse = diff.square().mean().sqrt().item() if diff.numel() else 0.0
        this_rel_rmse = rmse / rms_ref if rms_ref > 0 else (0.0 if rmse == 0 else math.inf)
        rel_rmse = max(rel_rmse, this_rel_rmse)
        if not torch.allclose(a, b, rtol=tol["rtol"], atol=tol["atol"]):
            rule = "rmse"
            if this_rel_rmse > tol["rmse"]:
                report.update(max_abs_err=max_abs, max_rel_err=max_rel, rel_rmse=rel_rmse, passed=False)
                raise AccuracyFail(
                    f"output {i} differs from {reference_name}: max abs error {max_abs:.3g}, max rel error "
                    f"{max_rel:.3g}, relative RMSE {this_rel_rmse:.3g} > {tol['rmse']:.3g}",
                    report,
                )
    report.update(max_abs_err=max_abs, max_rel_err=max_rel, rel_rmse=rel_rmse, passed=True, rule=rule)
    return report


DROPOUT_HINT = ("the model draws random numbers in training mode (dropout, most likely): two eager runs of it "
                "differ, and so do eager and compiled runs unless they draw the same numbers")


def reference_forward(model, inputs, autocast):
    """The model's output tensors under no_grad, detached copies."""
    with torch.no_grad(), autocast_context(autocast):
        out = model(*inputs)
    return [t.detach().clone() for t in outputs_of(out)]


def reference_output(req, params, device, precision, mode, phase_name):
    """(output, name, random): the eager output the case is checked against
    (None when no check applies), and whether the model draws random numbers
    in training mode, found by running it twice."""
    if not req["accuracy"]["check"] or (mode == "eager" and precision == "fp32"):
        return None, None, False
    ref_precision = reference_precision(precision, mode)
    model, inputs = build_model(req, params)
    model, inputs, autocast = place(model, inputs, device, ref_precision, req["cast"], "scaled_mm")
    # The measured case runs its forward in train mode for backward and step.
    training = phase_name != "forward"
    model.train(training)
    detached = reference_forward(model, inputs, autocast)
    # The generator has moved on: a model that draws random numbers
    # (dropout) now gives another output.
    random = training and any(not torch.equal(a, b) for a, b in zip(detached, reference_forward(model, inputs, autocast)))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    name = f"eager {ref_precision}" + (" (autocast)" if autocast else "")
    return detached, name, random


def check_drawing_the_same_numbers(req, params, device, precision, mode, options, ref, ref_name):
    """The accuracy check of a compiled model that draws random numbers, as
    the TorchInductor dashboard's accuracy runs make it: a copy compiled with
    inductor's `fallback_random`, which draws through the same eager
    operators, from the same generator state as the reference, so dropout
    masks agree. The copy is then dropped with everything dynamo compiled,
    and the measured model compiles afresh, as fast as it can draw."""
    import torch._inductor.config as inductor_config

    model, inputs = build_model(req, params)
    model, inputs, autocast = place(model, inputs, device, precision, req["cast"], req["fp8"])
    model.train(True)
    with inductor_config.patch(fallback_random=True):
        compiled = compile_model(model, mode, options)
        with torch.no_grad(), autocast_context(autocast):
            out = compiled(*inputs)
    try:
        report = check_accuracy(out, ref, tolerance(req), ref_name)
    except AccuracyFail as exc:
        exc.report["random"] = "fallback_random"
        raise AccuracyFail(f"{exc} ({DROPOUT_HINT}; they did here, through inductor's fallback_random, so the "
                           "difference is not dropout's)", exc.report) from None
    finally:
        del model, compiled, out
        torch._dynamo.reset()
        from torch._dynamo.utils import counters

        counters.clear()
    report["random"] = "fallback_random"
    return report


def tolerance(req):
    """The tolerances for this case's precision, resolved by regress."""
    acc = req["accuracy"]
    return {"rtol": acc["rtol"], "atol": acc["atol"], "rmse": acc["rmse"]}
