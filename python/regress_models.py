"""The case's model: built from the zoo or the user's factory, and the
phase it times (forward, backward or a training step) as an untimed
preparation and a timed body.
"""

import contextlib
import functools
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Mapping

import torch


class Skip(Exception):
    """The case cannot run here; the message says why."""


@functools.lru_cache(maxsize=None)
def load_entrypoint(target):
    """`path/to/file.py:factory` (relative to the checkout) or `package.module:factory`.

    Loaded once per process: the eager reference and the measured model
    both build from it, and the user's file should run only once."""
    module_name, _, factory_name = target.rpartition(":")
    if module_name.endswith(".py"):
        path = os.path.abspath(module_name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model.entrypoint: no file {module_name} (looked in {os.getcwd()})")
        sys.path.insert(0, os.path.dirname(path))
        spec = importlib.util.spec_from_file_location(
            "regress_user_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0]), path
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise AttributeError(f"model.entrypoint: {module_name} has no function `{factory_name}`")
    return factory


def build_model(req, params):
    """(module, inputs) on the CPU in fp32, from the zoo or the user's factory."""
    spec = req["model"]
    seed = req["seed"]
    if spec["kind"] == "builtin":
        import regress_zoo

        return regress_zoo.build(spec["name"], params, seed)
    factory = load_entrypoint(spec["target"])
    torch.manual_seed(seed)
    built = factory(dict(params))
    if not (isinstance(built, (tuple, list)) and len(built) == 2):
        raise TypeError(f"{spec['target']} must return (module, example_inputs), got {type(built).__name__}")
    module, inputs = built
    if not callable(module):
        raise TypeError(f"{spec['target']} returned {type(module).__name__} as the module; expected an nn.Module")
    if torch.is_tensor(inputs):
        inputs = (inputs,)
    return module, tuple(inputs)


def outputs_of(out):
    """The tensors of a model output, in a stable order."""
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in outputs_of(out[k])]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in outputs_of(o)]
    return []


LOSS_HINT = "define `regress_loss(self, output, *inputs)` on the model to return the loss to differentiate"


def first_float(out):
    """The first floating-point tensor of an output, in its own order
    (a dict's insertion order, not sorted), or None."""
    if torch.is_tensor(out):
        return out if out.is_floating_point() else None
    if isinstance(out, Mapping):
        values = out.values()
    elif isinstance(out, (tuple, list)):
        values = out
    else:
        return None
    for value in values:
        found = first_float(value)
        if found is not None:
            return found
    return None


def default_loss(out):
    """(loss, where it came from). A transformers ModelOutput (a dict whose
    keys are attributes) or a look-alike: its `loss`, else the mean square of
    its `logits`; otherwise the mean square of the first floating-point
    tensor, a dict's in insertion order."""
    for key in ("loss", "logits"):
        value = out.get(key) if isinstance(out, Mapping) else getattr(out, key, None)
        if torch.is_tensor(value) and value.is_floating_point():
            return (value.float().mean() if key == "loss" else value.float().square().mean()), key
    if isinstance(out, Mapping):
        for key, value in out.items():
            found = first_float(value)
            if found is not None:
                return found.float().square().mean(), str(key)
    found = first_float(out)
    if found is None:
        raise TypeError(f"the model's output ({type(out).__name__}) has no floating-point tensor to take a "
                        f"loss of; {LOSS_HINT}")
    return found.float().square().mean(), "output" if torch.is_tensor(out) else "first tensor"


def loss_of(model, out, inputs):
    """(loss, where it came from): the model's `regress_loss`, else `default_loss`."""
    custom = getattr(model, "regress_loss", None)
    if callable(custom):
        return custom(out, *inputs), "regress_loss"
    loss, where = default_loss(out)
    if not loss.requires_grad:
        raise TypeError(f"the default loss was taken from the output's `{where}`, which no parameter or input "
                        f"contributes to, so it has no gradient; {LOSS_HINT}")
    return loss, where


class Phase:
    """One timed iteration: `prepare` runs untimed before each, `body` is timed."""

    def __init__(self, name, fn, model, inputs, autocast):
        self.name = name
        self.prepare = None
        # Where the loss of backward and step comes from (see loss_of).
        self.loss_from = None
        self.grad = contextlib.nullcontext if name != "forward" else torch.no_grad
        if autocast:
            def forward():
                with torch.autocast(device_type=autocast[0], dtype=autocast[1]):
                    return fn(*inputs)
        else:
            # Nothing around the call: a timed forward costs what the
            # model's own call costs, as `torch.utils.benchmark` times it.
            def forward():
                return fn(*inputs)

        if name == "forward":
            model.eval()
            self.body = forward
            self.first = forward
            return
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        if name == "backward":
            # Without parameters the gradient flows to the inputs instead.
            # Their .grad is cleared before every iteration like a
            # parameter's: left alone, each timed backward would also add
            # into it (an extra kernel per input, and under CUDA graphs a
            # read of a freed graph output). The timed backward takes it
            # with torch.autograd.grad and sets it on them, so that no
            # AccumulateGrad node runs at all.
            leaves = []
            if not trainable:
                leaves = [x.requires_grad_(True) for x in inputs if torch.is_tensor(x) and x.is_floating_point()]
            pending = {}

            def clear_grads():
                for t in (*trainable, *leaves):
                    t.grad = None

            def prepare():
                clear_grads()
                out = forward()
                pending["loss"] = loss_of(model, out, inputs)[0]

            def body():
                loss = pending.pop("loss")
                if not leaves:
                    loss.backward()
                    return
                for leaf, grad in zip(leaves, torch.autograd.grad(loss, leaves, allow_unused=True)):
                    leaf.grad = grad

            def first():
                clear_grads()
                out = forward()
                loss, self.loss_from = loss_of(model, out, inputs)
                loss.backward()
                return out

            self.prepare, self.body, self.first = prepare, body, first
        else:  # step
            if not trainable:
                raise Skip("the model has no trainable parameters, so `step` has no optimizer step to time")
            opt = torch.optim.AdamW(trainable, lr=1e-4)

            def step():
                opt.zero_grad(set_to_none=True)
                out = forward()
                loss, self.loss_from = loss_of(model, out, inputs)
                loss.backward()
                opt.step()
                return out

            self.body = step
            self.first = step

    def iterate(self):
        if self.prepare is not None:
            self.prepare()
        self.body()

    def mark_steps(self, mark):
        """Calls `mark` (cudagraph_mark_step_begin) at the start of every
        iteration: before the untimed preparation when there is one
        (backward's forward), else before the body, and before the first
        call. Never between a forward and its backward: a new CUDA-graph
        step frees the forward's outputs, the activations the backward
        reads (torch 2.11's cudagraph trees advance the generation on a
        mark before looking for pending backwards)."""
        def marked(f):
            def call():
                mark()
                return f()
            return call

        if self.prepare is not None:
            self.prepare = marked(self.prepare)
        else:
            self.body = marked(self.body)
        self.first = marked(self.first)
