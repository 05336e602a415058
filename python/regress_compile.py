"""Compilation: torch.compile applied to the scope a pipeline asks for,
dynamo's and inductor's own account of what it compiled, and inductor's
vector-ISA checks shared across the worker processes of a run.
"""

import hashlib
import json
import logging
import os
import re

import torch


def share_isa_checks(path):
    """Remembers inductor's CPU vector-ISA checks in `path` for the whole run.

    Inductor checks each vector ISA in every new process by building a probe
    library and loading it in a fresh Python subprocess: about eight seconds
    per process on a small machine, which would otherwise land in every
    compile time. The answers depend only on the machine and the compiler,
    so the probe makes them once (see `probe`) and every worker of the run
    reads them: inductor takes the same decisions, without the cost.
    """
    from torch._inductor import cpu_vec_isa

    original = getattr(cpu_vec_isa.VecISA, "check_build", None)
    if original is None or not path:
        return False
    try:
        with open(path) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}

    def check_build(self, code):
        key = hashlib.sha256(f"{self._arch_flags}\0{code}".encode()).hexdigest()
        if key not in known:
            known[key] = bool(original(self, code))
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump(known, f)
            os.replace(tmp, path)
        return known[key]

    cpu_vec_isa.VecISA.check_build = check_build
    return True


def compile_model(model, mode, options):
    """Applies torch.compile to the scope the pipeline asks for; returns the callable."""
    kwargs = {"fullgraph": options["fullgraph"], "backend": options["backend"]}
    if options.get("dynamic") is not None:
        kwargs["dynamic"] = options["dynamic"]
    if mode != "default":
        kwargs["mode"] = mode
    scope = options["scope"]
    if scope == "model":
        return torch.compile(model, **kwargs)
    if scope == "blocks":
        blocks = [b for m in model.modules() if isinstance(m, torch.nn.ModuleList) for b in m]
        if not blocks:
            raise ValueError("compile_options.scope is `blocks` but the model has no nn.ModuleList of blocks")
        for block in blocks:
            block.compile(**kwargs)
        return model
    names = scope["names"]
    found = {name: 0 for name in names}
    for path, module in list(model.named_modules()):
        for name in names:
            parent_path, _, attr = name.rpartition(".")
            if parent_path and not (path == parent_path or path.endswith("." + parent_path)):
                continue
            target = getattr(module, attr, None) if attr in module.__dict__ or attr in module._modules else None
            if target is None:
                continue
            if isinstance(target, torch.nn.Module):
                target.compile(**kwargs)
            elif callable(target):
                setattr(module, attr, torch.compile(target, **kwargs))
            else:
                continue
            found[name] += 1
    missing = [n for n, count in found.items() if count == 0]
    if missing:
        available = sorted({p.rpartition(".")[2] for p, _ in model.named_modules() if p})
        raise ValueError(
            f"compile_options.scope: no submodule or function named {', '.join(missing)} "
            f"(submodules: {', '.join(available[:20]) or 'none'})"
        )
    return model


class CompileWatch:
    """Counts graphs, graph breaks and recompiles from dynamo's own logs."""

    def __init__(self):
        from torch._dynamo.utils import counters

        # Read between timed iterations: look the counters up once.
        self.counters = counters
        self.breaks = {}
        self.recompiles = []

        watch = self

        class Handler(logging.Handler):
            def emit(self, record):
                watch.on_record(record)

        # Graph events besides dynamo's graphs: a backward compiled lazily on
        # its first call, and a CUDA-graph (re-)recording, which cudagraph
        # trees make on the second call and again whenever their invariants
        # fail. Counted by trigger, so that warm-up waits for them and a
        # timed iteration that had one is dropped like a recompile.
        self.events = {}
        try:
            from torch._dynamo.callback import on_compile_start

            def on_start(args):
                name = getattr(args.callback_trigger, "name", str(args.callback_trigger))
                self.events[name] = self.events.get(name, 0) + 1

            on_compile_start(on_start)
        except (ImportError, AttributeError):  # older torch: dynamo's graphs only
            pass
        # Inductor's reasons for running a graph without CUDA graphs.
        self.cudagraph_skip_reasons = []
        self.cudagraph_skips_before = counters["inductor"].get("cudagraph_skips", 0)

        torch._logging.set_logs(graph_breaks=True, recompiles=True, cudagraphs=True)
        from torch._logging._internal import log_registry

        for qname in log_registry.artifact_log_qnames:
            if any(qname.endswith(suffix) for suffix in ("__graph_breaks", "__recompiles", "__cudagraphs")):
                logger = logging.getLogger(qname)
                logger.addHandler(Handler())
                logger.propagate = False
        # Where dynamo says it gave up recompiling a function (the recompile
        # limit): from then on that function runs eager, silently.
        self.limit_hits = []
        logging.getLogger("torch._dynamo.convert_frame").addHandler(Handler())

    def on_record(self, record):
        try:
            text = record.getMessage()
        except Exception:
            return
        if record.name == "torch._dynamo.convert_frame":
            if "recompile_limit" in text or "cache_size_limit" in text:
                lines = [ln.strip() for ln in text.splitlines()]
                found = {"message": lines[0]}
                for ln in lines[1:]:
                    for key in ("function", "last reason"):
                        if ln.startswith(key + ":"):
                            found[key.replace(" ", "_")] = ln[len(key) + 1:].strip()[:300]
                limit = re.search(r"\((\d+)\)", lines[0])
                if limit:
                    found["limit"] = int(limit.group(1))
                self.limit_hits.append(found)
            return
        if record.name.endswith("__cudagraphs"):
            # Its debug lines narrate recording; the skips are warnings.
            if "skipping cudagraphs" in text and len(self.cudagraph_skip_reasons) < 20:
                self.cudagraph_skip_reasons.append(text.splitlines()[0][:300])
            return
        if record.name.endswith("__recompiles"):
            failures = [ln.strip()[2:] for ln in text.splitlines() if ln.strip().startswith("- ")]
            head = text.splitlines()[0] if text else "recompiled"
            self.recompiles.append(f"{head}: {failures[0]}" if failures else head)
            return
        where = re.search(r"in user code at (\S+)", text)
        reason = re.search(r"Explanation: (.*)", text) or re.search(r"Graph Break Reason: (.*)", text)
        site = where.group(1) if where else (reason.group(1) if reason else text.splitlines()[0])
        if site not in self.breaks:
            self.breaks[site] = (reason.group(1).strip() if reason else text.splitlines()[0])[:300]

    def graphs(self):
        """Graph events so far: dynamo's graphs, lazy backward compiles and
        CUDA-graph recordings. A change means the iteration compiled."""
        return (self.counters["stats"]["unique_graphs"] + self.events.get("LAZY_BACKWARD", 0)
                + self.events.get("CUDAGRAPH_RECORDING", 0))

    def cudagraphs(self):
        """Whether CUDA graphs ran: recordings, skips and their reasons."""
        recordings = self.events.get("CUDAGRAPH_RECORDING", 0)
        skips = self.counters["inductor"].get("cudagraph_skips", 0) - self.cudagraph_skips_before
        return {
            "recordings": recordings,
            "skips": skips,
            "skip_reasons": list(self.cudagraph_skip_reasons),
            "engaged": recordings > 0 and skips == 0,
        }

    def summary(self):
        counters = self.counters
        breaks = dict(self.breaks)
        if not breaks and counters["graph_break"]:
            # Logs unavailable: fall back to dynamo's counter of reasons.
            breaks = {f"reason {i + 1}": k.splitlines()[0][:300] for i, k in enumerate(counters["graph_break"])}
        inductor = counters["inductor"]
        return {
            "fx_graph_cache_hits": inductor.get("fxgraph_cache_hit", 0),
            "fx_graph_cache_misses": inductor.get("fxgraph_cache_miss", 0),
            "graph_breaks": len(breaks),
            "graph_break_reasons": [f"{site}: {reason}" if site != reason else reason
                                    for site, reason in breaks.items()],
            "unique_graphs": self.counters["stats"]["unique_graphs"],
            "lazy_backward_compiles": self.events.get("LAZY_BACKWARD", 0),
            "cudagraph_recordings": self.events.get("CUDAGRAPH_RECORDING", 0),
            "cudagraph_skips": counters["inductor"].get("cudagraph_skips", 0) - self.cudagraph_skips_before,
            "cudagraph_skip_reasons": self.cudagraph_skip_reasons[:20],
            "cudagraph_recorded_non_static_inputs": counters["inductor"].get(
                "cudagraph_recorded_non_static_inputs", 0),
            "recompiles": len(self.recompiles),
            "recompile_reasons": self.recompiles[:20],
            "recompile_limit_hits": self.limit_hits[:20],
        }
