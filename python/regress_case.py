"""One request in a worker process: the probe, or one case measured.

Methodology, in the order `run` takes its steps:
1. Runnable: the device and precision can time the case for real, else it
   is skipped with the reason.
2. Reference: when the accuracy gate applies, the same model in eager mode
   (fp32 for fp8 and reduced-precision eager cases) computes the reference
   output first, and is freed before the measured model is built.
3. Build: the model from the zoo or the user's factory (whose settings are
   then recorded), placed in the case's precision and compiled.
4. First call: compilation for compiled modes (inductor's caches empty by
   default), timed apart from everything else; its output is checked, then
   freed.
5. Warm-up until both minimums are met and no new graph has been compiled
   for a few iterations, so compilation, autotuning and CUDA-graph recording
   never land in the samples.
6. Measure: one loop (regress_timing.measure) with the device's clock: CUDA
   events around each iteration on the launch stream (one synchronisation
   at the end, and a few to decide an early stop); on the host,
   perf_counter around batches of calls long enough for the clock's own
   cost to vanish. Iterations during which a graph was compiled are dropped
   and counted.
7. Result: samples, compile time, peak memory and diagnostics.
"""

import gc
import os
import sys
import time

import torch

import regress_timing as timing
from regress_accuracy import (DROPOUT_HINT, AccuracyFail, check_accuracy, check_drawing_the_same_numbers,
                              reference_output, tolerance)
from regress_compile import CompileWatch, compile_model, share_isa_checks
from regress_gpu import GpuSampler, cuda_status, gpu_state, gpu_uuid, nvml_target
from regress_models import Phase, Skip, build_model, outputs_of
from regress_precision import place, unsupported

# CUDA-graph modes record on the second or third call: warm up at least this.
CUDAGRAPH_MIN_WARMUP = 3

# What the running case has found so far (its diagnostics, its compile
# watch), so that a case that fails keeps them too.
CURRENT = {}


def failed_case_diagnostics():
    """What a failed case had found: its diagnostics and what compiled."""
    diagnostics = dict(CURRENT.get("diagnostics", {}))
    watch = CURRENT.get("watch")
    if watch is not None:
        try:
            diagnostics["compile"] = watch.summary()
        except Exception as exc:  # the failure itself matters more
            diagnostics["compile"] = {"error": str(exc)}
    return diagnostics


# ---------------------------------------------------------------- machine


def resolve_device(choice):
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    if choice in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    if choice in ("auto", "cpu"):
        return "cpu"
    return None


# Environment variables that change speed without changing the code.
SPEED_ENV = ("NVIDIA_TF32_OVERRIDE", "CUDA_LAUNCH_BLOCKING", "PYTORCH_CUDA_ALLOC_CONF",
             "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def torch_settings():
    """Settings that change speed without changing the code: recorded per
    case after the user's code has run (a factory may enable TF32).

    Each getter is read on its own: in torch 2.11, once code used the new
    fp32_precision API, reading the legacy allow_tf32 getters raises, and
    a setting that cannot be read is recorded as such, never a crash.
    """
    def read(get):
        try:
            return get()
        except Exception as exc:  # noqa: BLE001 - any getter may refuse
            return f"unreadable: {type(exc).__name__}"

    settings = {
        "threads": read(torch.get_num_threads),
        "interop_threads": read(torch.get_num_interop_threads),
        "matmul_fp32_precision": read(lambda: torch.backends.cuda.matmul.fp32_precision),
        "cudnn_conv_fp32_precision": read(lambda: torch.backends.cudnn.conv.fp32_precision),
        "float32_matmul_precision": read(torch.get_float32_matmul_precision),
        "cuda_matmul_allow_tf32": read(lambda: torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": read(lambda: torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": read(lambda: torch.backends.cudnn.benchmark),
        "cudnn_deterministic": read(lambda: torch.backends.cudnn.deterministic),
        "deterministic_algorithms": read(torch.are_deterministic_algorithms_enabled),
    }
    env = {k: v for k, v in os.environ.items() if k in SPEED_ENV or k.startswith("TORCHINDUCTOR_")}
    if env:
        settings["env"] = dict(sorted(env.items()))
    return settings


def probe(req):
    """The software and device a case would be measured with."""
    cuda, unavailable = cuda_status()
    info = {
        "type": "probe",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "torch_cuda": torch.version.cuda,
        "cuda_unavailable": unavailable,
        "gpu_uuid": gpu_uuid() if cuda else None,
        "cudnn": str(torch.backends.cudnn.version()) if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
        "device": resolve_device(req["device"]),
        "threads": torch.get_num_threads(),
        "settings": torch_settings(),
    }
    if req.get("isa_checks") and info["device"] == "cpu":
        try:
            if share_isa_checks(req["isa_checks"]):
                from torch._inductor import cpu_vec_isa

                info["vec_isa"] = str(cpu_vec_isa.pick_vec_isa()) or None
        except Exception as exc:  # workers then check for themselves
            print(f"regress: the vector ISA check failed: {exc}", file=sys.stderr)
    return info


# ---------------------------------------------------------------- a case


def run(req):
    """Measures the case of `req`; returns the result message."""
    case = Case(req)
    case.check_runnable()
    case.check_reference()
    case.build()
    with case.phase.grad():
        case.first_call()
        case.warm_up()
        case.measure()
    return case.result()


class Case:
    """The state one case builds up as `run` takes its steps."""

    def __init__(self, req):
        self.req = req
        case = req["case"]
        self.device = resolve_device(req["device"])
        self.precision = case.get("precision") or "fp32"
        self.mode = case.get("compile") or "eager"
        self.phase_name = case.get("phase") or "forward"
        self.params = dict(req["args"], **case["params"])
        self.options = req["compile_options"]
        self.compiled = self.mode != "eager"
        self.cudagraphs = self.mode in ("reduce-overhead", "max-autotune") and self.device == "cuda"
        CURRENT.clear()
        self.diagnostics = CURRENT.setdefault("diagnostics", {})
        self.watch = None
        self.ref = self.ref_name = None
        self.random = False

    def check_runnable(self):
        """Skips a case this machine cannot time for real; sets the process up."""
        req = self.req
        if self.device is None:
            raise Skip(f"device `{req['device']}` is not available on this machine")
        reason = unsupported(self.precision, self.device, self.phase_name, req["fp8"])
        if reason:
            raise Skip(reason)
        if req.get("isa_checks") and self.device == "cpu" and self.compiled:
            share_isa_checks(req["isa_checks"])
        if req.get("threads"):
            torch.set_num_threads(req["threads"])
        self.diagnostics.update(device=self.device, precision=self.precision, phase=self.phase_name,
                                seed=req["seed"], settings=torch_settings())
        self.state_before = gpu_state(self.device)

    def check_reference(self):
        """The eager output the case is checked against, built and freed
        before the measured model; a compiled model that draws random
        numbers is checked here, on a copy that draws them as eager does."""
        self.ref, self.ref_name, self.random = reference_output(
            self.req, self.params, self.device, self.precision, self.mode, self.phase_name)
        if self.random:
            self.diagnostics["draws_random_numbers"] = True
        if self.ref is not None and self.random and self.compiled:
            self.diagnostics["accuracy"] = check_drawing_the_same_numbers(
                self.req, self.params, self.device, self.precision, self.mode, self.options, self.ref,
                self.ref_name)
            self.ref = None  # checked; the measured model draws its numbers its own way

    def build(self):
        """The measured model, placed, compiled, and wrapped in its phase."""
        req = self.req
        model, inputs = build_model(req, self.params)
        # The user's factory has run: what it set is what the case runs with.
        self.diagnostics["settings"] = torch_settings()
        model, inputs, autocast = place(model, inputs, self.device, self.precision, req["cast"], req["fp8"])
        self.watch = CompileWatch() if self.compiled else None
        CURRENT["watch"] = self.watch
        fn = compile_model(model, self.mode, self.options) if self.compiled else model
        self.phase = Phase(self.phase_name, fn, model, inputs, autocast)
        if self.cudagraphs:
            self.phase.mark_steps(torch.compiler.cudagraph_mark_step_begin)

    def first_call(self):
        """The first call, timed on its own (compilation, for compiled
        modes); its output is checked, digested and freed."""
        device, phase = self.device, self.phase
        if self.options.get("cache") == "warm" and self.compiled:
            # Fill inductor's on-disk caches, forget everything in memory, and
            # time the compile that a warm cache gives.
            phase.first()
            timing.synchronize(device)
            torch._dynamo.reset()
        timing.synchronize(device)
        t0 = time.perf_counter()
        out = phase.first()
        timing.synchronize(device)
        self.first_call_s = time.perf_counter() - t0
        if phase.loss_from is not None:
            self.diagnostics["loss_from"] = phase.loss_from
        self.digest(out)
        self.check_output(out)
        del out
        self.ref = None
        if device == "cuda":
            # The peak over warm-up, apart: under CUDA graphs the pool is
            # filled while recording, in warm-up, and replays allocate
            # nothing, so the steady-state peak alone is not comparable
            # with eager's per-iteration peak.
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def digest(self, out):
        """Sums of the first floating-point output: equal models give equal
        digests, here and in the native backend. Summed in float64 without
        a float64 copy, and nothing of it kept: whatever the first call
        leaves alive inflates the peak."""
        t = next((t for t in outputs_of(out) if t.is_floating_point()), None)
        if t is not None:
            t = t.detach()
            self.diagnostics["output_digest"] = {"sum": t.sum(dtype=torch.float64).item(),
                                                 "abs_sum": t.abs().sum(dtype=torch.float64).item()}

    def check_output(self, out):
        """The accuracy gate against the reference, else finite outputs."""
        if self.ref is not None:
            try:
                self.diagnostics["accuracy"] = check_accuracy(out, self.ref, tolerance(self.req), self.ref_name)
            except AccuracyFail as exc:
                if self.random:
                    raise AccuracyFail(f"{exc} ({DROPOUT_HINT})", exc.report) from None
                raise
            return
        for i, t in enumerate(outputs_of(out)):
            if t.is_floating_point() and not torch.isfinite(t.detach()).all():
                raise AccuracyFail(f"output {i} contains NaN or Inf", {"nonfinite": True})

    def warm_up(self):
        """Iterations until compilation, autotuning and CUDA-graph recording
        are over; compilation after the first call is compile time."""
        warm = self.req["warmup"]
        min_iters = max(warm["min_iters"], CUDAGRAPH_MIN_WARMUP if self.cudagraphs else 0)
        n, self.compiling_after_first, unstable = timing.warm_up(
            self.phase, self.device, warm, min_iters, self.watch)
        if unstable:
            self.diagnostics["graphs_unstable"] = True
        self.diagnostics["warmup_iters"] = n
        if self.device == "cuda":
            self.diagnostics["peak_memory_warmup"] = torch.cuda.max_memory_allocated()
        if self.watch is not None:
            self.diagnostics["compile_time_after_first_call"] = self.compiling_after_first
            if self.mode in ("reduce-overhead", "max-autotune"):
                # A cudagraph mode whose graphs were not recorded, or were
                # skipped, ran plain kernels: the record says so.
                self.diagnostics["cudagraphs"] = self.watch.cudagraphs()

    def measure(self):
        """The timed samples, with the device's clock."""
        device, req = self.device, self.req
        flush, self.flush_bytes = timing.cache_flusher(device, req["l2"])
        if self.flush_bytes:
            self.diagnostics["l2_flush_bytes"] = self.flush_bytes
        if device != "cuda":
            clock = timing.HostClock.sized_for(self.phase, device, flush)
            self.timed = timing.measure(self.phase, clock, req["measure"], flush, self.watch)
            return
        # The peak is the steady state's: the first call's output is gone,
        # and the cache that compilation, autotuning and warm-up left
        # reserved is returned, so the reserved peak starts from what the
        # case holds (the flush buffer is taken out in result()).
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        sampler = GpuSampler(nvml_target()).start()
        try:
            self.timed = timing.measure(self.phase, timing.CudaClock(), req["measure"], flush, self.watch)
        finally:
            self.gpu_during = sampler.stop()

    def result(self):
        """The result message: samples, compile time, memory, diagnostics."""
        samples, dropped, batch, stop = self.timed
        diagnostics = self.diagnostics
        diagnostics["stop"] = stop
        diagnostics["batch"] = batch
        diagnostics["dropped_compiling"] = dropped
        enough = self.req["measure"]["min_iqr_samples"]
        diagnostics["rel_iqr"] = timing.rel_iqr(samples, enough) if len(samples) >= enough else None
        if dropped > timing.MAX_DROPPED_SHARE * (dropped + len(samples)):
            raise RuntimeError(
                f"the model compiled new graphs during {dropped} of {dropped + len(samples)} timed iterations; "
                "it recompiles on every call (see the recompile reasons) and has no steady state to time"
            )
        result = {
            "type": "result",
            "samples": samples,
            "first_call": self.first_call_s,
            "compile_time": self.first_call_s + self.compiling_after_first if self.compiled else None,
            "diagnostics": diagnostics,
        }
        if self.watch is not None:
            result["compile"] = self.watch.summary()
        if self.device == "cuda":
            # The flush buffer is regress's, not the case's: kept out of both
            # peaks (it was allocated before the reset, so it is in them whole).
            held = timing.flush_held_bytes(self.flush_bytes)
            result["peak_memory"] = torch.cuda.max_memory_allocated() - held
            result["peak_memory_reserved"] = torch.cuda.max_memory_reserved() - held
            if held:
                diagnostics["peak_memory_excludes_l2_flush_bytes"] = held
            diagnostics["gpu_state"] = {"before": self.state_before, "during": self.gpu_during,
                                        "after": gpu_state(self.device)}
        return result
