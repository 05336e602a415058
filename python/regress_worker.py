"""The regress python worker: measures one case in a fresh process.

Protocol: regress writes one JSON request on stdin and reads JSON lines on
stdout. The real stdout is kept for the protocol and file descriptor 1 is
pointed at stderr, so prints from user code (or C libraries) can never
corrupt it. Every line is an object with a "type": "probe", "result",
"skipped", "accuracy_fail" or "error".

Methodology, in the order a case runs:
1. Reference: when the accuracy gate applies, the same model in eager mode
   (fp32 for fp8 and reduced-precision eager cases) computes the reference
   output first, and is freed before the measured model is built.
2. First call: compilation for compiled modes (inductor's caches empty by
   default), timed apart from everything else; its output is checked.
3. Warm-up until both minimums are met and no new graph has been compiled
   for a few iterations, so compilation, autotuning and CUDA-graph recording
   never land in the samples.
4. Sampling: CUDA events around each iteration on the launch stream (one
   synchronisation at the end, and a few to decide an early stop); on the
   host, perf_counter per iteration, batching iterations that are too short
   for the timer's own cost to vanish. Iterations during which a graph was
   compiled are dropped and counted.
"""

import contextlib
import functools
import gc
from collections.abc import Mapping
import hashlib
import importlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

# The version of the messages exchanged with regress (src/runner/protocol.rs):
# both sides check it and refuse a peer of another version.
PROTOCOL_VERSION = 5

# A host sample must last this long so the timer's cost (~0.1 us for a
# perf_counter pair and the loop) stays under 0.1 % of it.
MIN_HOST_SAMPLE_S = 100e-6
# At most this many calls in one batched host sample.
MAX_BATCH = 10_000
# The warm-up ends only after this many iterations without a new graph.
STABLE_ITERS = 3
# Warm-up gives up waiting for a stable graph count after this long (the
# case is then flagged `graphs_unstable`).
WARMUP_STABLE_CAP_S = 60.0
# CUDA-graph modes record on the second or third call: warm up at least this.
CUDAGRAPH_MIN_WARMUP = 3
# Hard cap on CUDA event pairs kept in flight (about 100 MB of events).
MAX_CUDA_EVENTS = 200_000
# Share of samples that may be dropped for recompiling before the case fails.
MAX_DROPPED_SHARE = 0.5

torch = None  # imported by main() once the compile cache is set up
_proto = None
# What the running case has found so far (its diagnostics, its compile
# watch), so that a case that fails keeps them too.
_case = {}


def finite(value):
    """JSON has no NaN or Infinity: non-finite numbers travel as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def send(obj):
    obj = dict(obj, protocol=PROTOCOL_VERSION)
    _proto.write(json.dumps(finite(obj)) + "\n")
    _proto.flush()


def fail(kind, message, diagnostics=None):
    send({"type": "error", "kind": kind, "message": message, "diagnostics": diagnostics or {}})
    sys.exit(3)


def failed_case_diagnostics():
    """What a failed case had found: its diagnostics and what compiled."""
    diagnostics = dict(_case.get("diagnostics", {}))
    watch = _case.get("watch")
    if watch is not None:
        try:
            diagnostics["compile"] = watch.summary()
        except Exception as exc:  # the failure itself matters more
            diagnostics["compile"] = {"error": str(exc)}
    return diagnostics


class Skip(Exception):
    """The case cannot run here; the message says why."""


class AccuracyFail(Exception):
    """The measured model's output disagrees with the reference."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


# ---------------------------------------------------------------- device


def resolve_device(choice):
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    if choice in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    if choice in ("auto", "cpu"):
        return "cpu"
    return None


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


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


def cuda_status():
    """(usable, why not): torch.cuda.is_available(), and when it is False
    the warnings it raised on the way (a driver too old for this wheel's
    CUDA says so only there), for regress to quote."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        usable = torch.cuda.is_available()
    if usable:
        return True, None
    said = [" ".join(str(w.message).split()) for w in caught]
    return False, "; ".join(said) or "torch.cuda.is_available() is False"


def probe(req):
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
    send(info)


def gpu_uuid():
    """The UUID of the GPU measured on (cuda:0 of the visible ones), which
    names it in nvidia-smi's list; None when torch cannot say."""
    try:
        uuid = getattr(torch.cuda.get_device_properties(0), "uuid", None)
    except Exception:  # noqa: BLE001 - the record does without it
        return None
    return str(uuid) if uuid is not None else None


def gpu_state(device):
    """Clocks, temperature and power of the GPU in use, from nvidia-smi."""
    if device != "cuda" or shutil.which("nvidia-smi") is None:
        return None
    target = nvml_target()
    fields = ["clocks.sm", "clocks.mem", "temperature.gpu", "power.draw"]
    for reasons in ("clocks_event_reasons.active", "clocks_throttle_reasons.active"):
        try:
            out = subprocess.run(
                ["nvidia-smi", f"--id={target}", f"--query-gpu={','.join(fields + [reasons])}",
                 "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode == 0 and out.stdout.strip():
            values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
            names = ["sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w", "clock_event_reasons"]
            state = {}
            for name, value in zip(names, values):
                try:
                    state[name] = float(value) if name != "clock_event_reasons" else value
                except ValueError:
                    state[name] = value
            return state
    return None


# Clock-event reasons (NVML's nvmlClocksEventReason* bits) that mean the GPU
# slowed itself down. Idle (0x1), application clocks (0x2), sync boost
# (0x10) and display clocks (0x100) are not throttling.
THROTTLE_REASONS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
# How often the GPU is read while the case is timed: often enough to see a
# few-second throttle, rare enough to cost no measurable CPU time.
GPU_SAMPLE_PERIOD_S = 0.05
# How long the sampler may wait for its first reading before timing starts
# (nvidia-smi needs a few hundred milliseconds to start on a large host).
FIRST_GPU_READING_WAIT_S = 2.0


def nvml_target():
    """The GPU in use as nvidia-smi and NVML name it: its PCI bus id (the
    one name that does not depend on CUDA_VISIBLE_DEVICES or on the order
    CUDA lists GPUs in), else its UUID, else its index."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        return f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"
    uuid = getattr(props, "uuid", None)
    return f"GPU-{uuid}" if uuid is not None else str(torch.cuda.current_device())


def parse_reasons(value):
    """A clock-event reason mask from NVML (an int) or nvidia-smi (`0x…`)."""
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 16)
    except ValueError:
        return None


def summarise_gpu_samples(samples, source):
    """What the GPU did while the case was timed, from readings of
    (sm_clock_mhz, mem_clock_mhz, temperature_c, power_w, reasons mask);
    None when there were none. `throttled` is the share of readings with
    a throttling reason set (THROTTLE_REASONS)."""
    if not samples:
        return None

    def column(i):
        return sorted(v[i] for v in samples if isinstance(v[i], (int, float)))

    def median(values):
        return values[len(values) // 2] if values else None

    sm, mem, temp, power = column(0), column(1), column(2), column(3)
    seen, throttled = 0, 0
    for v in samples:
        mask = v[4]
        if mask is None:
            continue
        hot = mask & sum(THROTTLE_REASONS)
        seen |= hot
        throttled += bool(hot)
    return {
        "source": source,
        "readings": len(samples),
        "sm_clock_mhz_min": sm[0] if sm else None,
        "sm_clock_mhz_median": median(sm),
        "mem_clock_mhz_median": median(mem),
        "temperature_c_max": temp[-1] if temp else None,
        "power_w_median": median(power),
        "power_w_max": power[-1] if power else None,
        "throttle_reasons": [name for bit, name in sorted(THROTTLE_REASONS.items()) if seen & bit],
        "throttled_share": throttled / len(samples),
    }


class GpuSampler:
    """Reads clocks, temperature, power and clock-event reasons of the GPU
    in the background while a case is timed: through NVML (nvidia-ml-py's
    `pynvml`) when it imports, else from `nvidia-smi -lms`, which prints a
    line per period until it is stopped. Either way the timed loop itself
    does nothing more; `stop()` returns `summarise_gpu_samples`."""

    def __init__(self, target):
        self.target = target
        self.samples = []
        self.source = None
        self._stop = None
        self._thread = None
        self._proc = None

    def start(self):
        import threading

        self._stop = threading.Event()
        self._first = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            if self.target.startswith("GPU-"):
                handle = pynvml.nvmlDeviceGetHandleByUUID(self.target)
            elif ":" in self.target:
                handle = pynvml.nvmlDeviceGetHandleByPciBusId(self.target)
            else:
                handle = pynvml.nvmlDeviceGetHandleByIndex(int(self.target))
            self.source = "nvml"
            self._thread = threading.Thread(target=self._poll_nvml, args=(pynvml, handle), daemon=True)
        except Exception:  # noqa: BLE001 - no NVML: nvidia-smi instead
            if shutil.which("nvidia-smi") is None:
                return self
            fields = "clocks.sm,clocks.mem,temperature.gpu,power.draw,clocks_event_reasons.active"
            if nvidia_smi_reasons_field() == "clocks_throttle_reasons.active":
                fields = fields.replace("clocks_event_reasons.active", "clocks_throttle_reasons.active")
            try:
                self._proc = subprocess.Popen(
                    ["nvidia-smi", f"--id={self.target}", f"--query-gpu={fields}",
                     "--format=csv,noheader,nounits", "-lms", str(int(GPU_SAMPLE_PERIOD_S * 1000))],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                )
            except OSError:
                return self
            self.source = "nvidia-smi"
            self._thread = threading.Thread(target=self._read_smi, daemon=True)
        self._thread.start()
        # nvidia-smi takes a moment to start: wait for its first reading, so
        # that a short timed loop is not over before the GPU was read once.
        self._first.wait(FIRST_GPU_READING_WAIT_S)
        return self

    def _poll_nvml(self, pynvml, handle):
        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons")
        while not self._stop.is_set():
            try:
                self.samples.append((
                    pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                    pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
                    pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
                    pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
                    reasons(handle),
                ))
                self._first.set()
            except Exception:  # noqa: BLE001 - a reading that fails is left out
                pass
            self._stop.wait(GPU_SAMPLE_PERIOD_S)

    def _read_smi(self):
        for line in self._proc.stdout:
            values = [v.strip() for v in line.split(",")]
            if len(values) != 5:
                continue

            def number(v):
                try:
                    return float(v)
                except ValueError:
                    return None

            self.samples.append((*map(number, values[:4]), parse_reasons(values[4])))
            self._first.set()

    def stop(self):
        if self._stop is not None:
            self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return summarise_gpu_samples(list(self.samples), self.source)


_REASONS_FIELD = []


def nvidia_smi_reasons_field():
    """`clocks_event_reasons.active` (driver R535 and newer), else the older
    name `clocks_throttle_reasons.active`; asked once per process."""
    if not _REASONS_FIELD:
        field = "clocks_event_reasons.active"
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode != 0:
                field = "clocks_throttle_reasons.active"
        except (OSError, subprocess.TimeoutExpired):
            pass
        _REASONS_FIELD.append(field)
    return _REASONS_FIELD[0]


# ---------------------------------------------------------------- models


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


# ---------------------------------------------------------------- compile


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


# ---------------------------------------------------------------- phases


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
        ctx = (lambda: torch.autocast(device_type=autocast[0], dtype=autocast[1])) if autocast else contextlib.nullcontext
        self.grad = contextlib.nullcontext if name != "forward" else torch.no_grad

        def forward():
            with ctx():
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
            # read of a freed graph output).
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
                pending.pop("loss").backward()

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


# ---------------------------------------------------------------- accuracy


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
    with torch.no_grad():
        if autocast:
            with torch.autocast(device_type=autocast[0], dtype=autocast[1]):
                out = model(*inputs)
        else:
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


def reference_precision(precision, mode):
    """The precision of the eager reference: the case's own for compiled
    cases (what compilation changes), fp32 for fp8 and eager ones."""
    return precision if (mode != "eager" and precision in ("fp32", "bf16", "fp16")) else "fp32"


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
        with torch.no_grad():
            if autocast:
                with torch.autocast(device_type=autocast[0], dtype=autocast[1]):
                    out = compiled(*inputs)
            else:
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


# ---------------------------------------------------------------- timing


def cache_flusher(device, policy):
    """For `l2: cold`, a function that overwrites twice the cache before each iteration."""
    if policy != "cold":
        return None, None
    if device == "cuda":
        size = 2 * torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size
    else:
        size = 2 * largest_cpu_cache()
    buf = torch.empty(flush_held_bytes(size), dtype=torch.uint8, device=device)
    return (lambda: buf.zero_()), size


def flush_held_bytes(size):
    """Bytes the flush buffer of an `l2_flush_bytes` of `size` holds (0: none)."""
    return max(size, 1 << 20) if size else 0


def largest_cpu_cache():
    """Bytes of the largest CPU cache level, from sysfs (32 MiB when unknown)."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(base):
            try:
                with open(os.path.join(base, entry, "size")) as f:
                    text = f.read().strip()
            except OSError:
                continue
            unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            digits = text[:-1] if text[-1:] in "KMG" else text
            if digits.isdigit():
                best = max(best, int(digits) * unit)
    except OSError:
        pass
    return best or 32 << 20


def rel_iqr(samples, min_samples):
    """(p75 - p25) / median, quartiles by linear interpolation; inf when unknown
    (fewer than `min_samples`, or a median that is not positive)."""
    s = sorted(samples)
    n = len(s)
    if n < min_samples:
        return math.inf

    def q(p):
        pos = p * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    med = q(0.5)
    return (q(0.75) - q(0.25)) / med if med > 0 else math.inf


class StopRule:
    """The stop rule of src/runner/sampling.rs (`Sampler`), step for step.

    At least min_iters samples over min_time; then stop once the relative
    IQR is at or below target_rel_iqr, looked at on a geometric schedule;
    in any case stop once max_time is spent with min_samples or more. The
    budget, constants included, comes from regress in the request; a test
    in regress feeds this class and the Rust rule the same traces.
    """

    def __init__(self, budget):
        self.budget = budget
        self.next_check = budget["min_iters"]

    def done(self, n, elapsed, samples):
        """After each sample: None to go on, else why to stop. `samples` is
        called only when the spread is looked at."""
        b = self.budget
        if n >= b["min_samples"] and elapsed >= b["max_time"]:
            return "max_time"
        if n < b["min_iters"] or elapsed < b["min_time"] or n < self.next_check:
            return None
        if rel_iqr(samples(), b["min_iqr_samples"]) <= b["target_rel_iqr"]:
            return "converged"
        self.next_check = max(n + 1, int(n * b["check_growth"]))
        return None


def host_batch(phase, device):
    """Calls per host sample, so one sample lasts at least MIN_HOST_SAMPLE_S."""
    if phase.prepare is not None:
        return 1
    single = []
    for _ in range(5):
        t0 = time.perf_counter()
        phase.body()
        synchronize(device)
        single.append(time.perf_counter() - t0)
    typical = sorted(single)[2]
    if typical >= MIN_HOST_SAMPLE_S:
        return 1
    return min(MAX_BATCH, math.ceil(MIN_HOST_SAMPLE_S / max(typical, 1e-9)))


def recompiling(dropped, kept, elapsed, budget):
    """"recompiling" once max_time is spent with most iterations dropped for
    compiling: such a model has no steady state, and the stop rule alone
    would wait for samples that never come (run() then fails the case)."""
    if elapsed >= budget["max_time"] and dropped > MAX_DROPPED_SHARE * (dropped + kept):
        return "recompiling"
    return None


def measure_host(phase, device, budget, flush, watch):
    """Per-iteration seconds by perf_counter, batched when one call is too short."""
    batch = 1 if flush is not None else host_batch(phase, device)
    samples, dropped = [], 0
    rule = StopRule(budget)
    start = time.perf_counter()
    while True:
        if phase.prepare is not None:
            phase.prepare()
        if flush is not None:
            flush()
            synchronize(device)
        graphs = watch.graphs() if watch else 0
        t0 = time.perf_counter()
        for _ in range(batch):
            phase.body()
        synchronize(device)
        dt = time.perf_counter() - t0
        if watch and watch.graphs() != graphs:
            dropped += 1
        else:
            samples.append(dt / batch)
        elapsed = time.perf_counter() - start
        stop = rule.done(len(samples), elapsed, lambda: samples) or recompiling(dropped, len(samples), elapsed, budget)
        if stop:
            return samples, dropped, batch, stop


def measure_cuda(phase, budget, flush, watch):
    """Per-iteration seconds from a CUDA event pair on the launch stream.

    Events are resolved (one synchronisation) only when the stop rule looks
    at the spread; MAX_CUDA_EVENTS bounds the pairs kept in flight."""
    events, dropped = [], 0
    rule = StopRule(budget)
    start = time.perf_counter()

    def resolved():
        events[-1][1].synchronize()
        return [b.elapsed_time(e) / 1e3 for b, e in events]

    while True:
        if phase.prepare is not None:
            phase.prepare()
        if flush is not None:
            flush()
        graphs = watch.graphs() if watch else 0
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        # CUDA creates an event at its first record: recording `end` once
        # before `begin` keeps that creation (about a microsecond) out of
        # the timed region; the second record moves it after the body.
        end.record()
        begin.record()
        phase.body()
        end.record()
        if watch and watch.graphs() != graphs:
            dropped += 1
        else:
            events.append((begin, end))
        elapsed = time.perf_counter() - start
        stop = rule.done(len(events), elapsed, resolved) if events else None
        stop = stop or recompiling(dropped, len(events), elapsed, budget)
        if stop is None and len(events) >= MAX_CUDA_EVENTS:
            stop = "max_events"
        if stop:
            break
    torch.cuda.synchronize()
    return [b.elapsed_time(e) / 1e3 for b, e in events], dropped, 1, stop


# ---------------------------------------------------------------- run


def skip_reason(req, device, precision, phase):
    if device is None:
        return f"device `{req['device']}` is not available on this machine"
    if precision == "fp8":
        if device != "cuda":
            return "fp8 needs a CUDA GPU of compute capability 8.9 or newer; CPU fp8 is emulation, not a performance result"
        major, minor = torch.cuda.get_device_capability(0)
        if (major, minor) < (8, 9):
            return f"fp8 needs compute capability 8.9 or newer; this GPU is {major}.{minor}"
        if phase != "forward" and req["fp8"] == "scaled_mm":
            return "fp8 through torch._scaled_mm is forward-only; set `runner.fp8: torchao` to time backward and step"
    # including_emulation=False: T4 and V100 emulate bf16, which times the
    # emulation, not the GPU's bf16.
    if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "this GPU has no native bf16 (compute capability 8.0 or newer); emulated bf16 is not a performance result"
    return None


def run(req):
    case = req["case"]
    device = resolve_device(req["device"])
    precision = case.get("precision") or "fp32"
    mode = case.get("compile") or "eager"
    phase_name = case.get("phase") or "forward"
    reason = skip_reason(req, device, precision, phase_name)
    if reason:
        raise Skip(reason)
    if req.get("isa_checks") and device == "cpu" and mode != "eager":
        share_isa_checks(req["isa_checks"])
    params = dict(req["args"], **case["params"])
    seed = req["seed"]
    if req.get("threads"):
        torch.set_num_threads(req["threads"])
    options = req["compile_options"]

    diagnostics = _case.setdefault("diagnostics", {})
    diagnostics.update(device=device, precision=precision, phase=phase_name, seed=seed, settings=torch_settings())
    state_before = gpu_state(device)

    ref, ref_name, random = reference_output(req, params, device, precision, mode, phase_name)
    if random:
        diagnostics["draws_random_numbers"] = True
    if ref is not None and random and mode != "eager":
        diagnostics["accuracy"] = check_drawing_the_same_numbers(
            req, params, device, precision, mode, options, ref, ref_name)
        ref = None  # checked; the measured model draws its numbers its own way

    model, inputs = build_model(req, params)
    # The user's factory has run: what it set is what the case runs with.
    diagnostics["settings"] = torch_settings()
    model, inputs, autocast = place(model, inputs, device, precision, req["cast"], req["fp8"])
    watch = CompileWatch() if mode != "eager" else None
    _case["watch"] = watch
    fn = compile_model(model, mode, options) if mode != "eager" else model
    cudagraphs = mode in ("reduce-overhead", "max-autotune") and device == "cuda"
    phase = Phase(phase_name, fn, model, inputs, autocast)
    if cudagraphs:
        phase.mark_steps(torch.compiler.cudagraph_mark_step_begin)

    with phase.grad():
        if options.get("cache") == "warm" and mode != "eager":
            # Fill inductor's on-disk caches, forget everything in memory, and
            # time the compile that a warm cache gives.
            phase.first()
            synchronize(device)
            torch._dynamo.reset()
        synchronize(device)
        t0 = time.perf_counter()
        out = phase.first()
        synchronize(device)
        first_call = time.perf_counter() - t0
        if phase.loss_from is not None:
            diagnostics["loss_from"] = phase.loss_from

        first_float_output = next((t for t in outputs_of(out) if t.is_floating_point()), None)
        if first_float_output is not None:
            # Equal models give equal digests, here and in the native backend.
            # Summed in float64 without a float64 copy, and nothing of it
            # kept: whatever the first call leaves alive inflates the peak.
            t = first_float_output.detach()
            diagnostics["output_digest"] = {"sum": t.sum(dtype=torch.float64).item(),
                                            "abs_sum": t.abs().sum(dtype=torch.float64).item()}
            del t
        del first_float_output
        if ref is not None:
            try:
                diagnostics["accuracy"] = check_accuracy(out, ref, tolerance(req), ref_name)
            except AccuracyFail as exc:
                if random:
                    raise AccuracyFail(f"{exc} ({DROPOUT_HINT})", exc.report) from None
                raise
        else:
            for i, t in enumerate(outputs_of(out)):
                if t.is_floating_point() and not torch.isfinite(t.detach()).all():
                    raise AccuracyFail(f"output {i} contains NaN or Inf", {"nonfinite": True})
        del out, ref

        if device == "cuda":
            # The peak over warm-up, apart: under CUDA graphs the pool is
            # filled while recording, in warm-up, and replays allocate
            # nothing, so the steady-state peak alone is not comparable
            # with eager's per-iteration peak.
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        warm = req["warmup"]
        min_iters = max(warm["min_iters"], CUDAGRAPH_MIN_WARMUP if cudagraphs else 0)
        n, last_change, t_start = 0, 0, time.perf_counter()
        graphs = watch.graphs() if watch else 0
        # Compilation after the first call (a CUDA-graph recording on the
        # second, a lazy backward, a recompile) is part of the compile time.
        compiling_after_first = 0.0
        while True:
            t_iter = time.perf_counter()
            phase.iterate()
            n += 1
            if watch and watch.graphs() != graphs:
                synchronize(device)
                compiling_after_first += time.perf_counter() - t_iter
                graphs, last_change = watch.graphs(), n
            elapsed = time.perf_counter() - t_start
            settled = watch is None or n - last_change >= STABLE_ITERS
            if n >= min_iters and elapsed >= warm["min_time"] and settled:
                break
            if n >= min_iters and elapsed >= warm["min_time"] and elapsed >= WARMUP_STABLE_CAP_S:
                diagnostics["graphs_unstable"] = True
                break
        synchronize(device)
        diagnostics["warmup_iters"] = n
        if device == "cuda":
            diagnostics["peak_memory_warmup"] = torch.cuda.max_memory_allocated()
        if watch is not None:
            diagnostics["compile_time_after_first_call"] = compiling_after_first
            if mode in ("reduce-overhead", "max-autotune"):
                # A cudagraph mode whose graphs were not recorded, or were
                # skipped, ran plain kernels: the record says so.
                diagnostics["cudagraphs"] = watch.cudagraphs()

        flush, flush_bytes = cache_flusher(device, req["l2"])
        if flush_bytes:
            diagnostics["l2_flush_bytes"] = flush_bytes
        if device == "cuda":
            # The peak is the steady state's: the first call's output is
            # gone, and the cache that compilation, autotuning and warm-up
            # left reserved is returned, so the reserved peak starts from
            # what the case holds (the flush buffer is taken out below).
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            sampler = GpuSampler(nvml_target()).start()
            try:
                samples, dropped, batch, stop = measure_cuda(phase, req["measure"], flush, watch)
            finally:
                gpu_during = sampler.stop()
        else:
            samples, dropped, batch, stop = measure_host(phase, device, req["measure"], flush, watch)

    diagnostics["stop"] = stop
    diagnostics["batch"] = batch
    diagnostics["dropped_compiling"] = dropped
    enough = req["measure"]["min_iqr_samples"]
    diagnostics["rel_iqr"] = rel_iqr(samples, enough) if len(samples) >= enough else None
    if dropped > MAX_DROPPED_SHARE * (dropped + len(samples)):
        raise RuntimeError(
            f"the model compiled new graphs during {dropped} of {dropped + len(samples)} timed iterations; "
            "it recompiles on every call (see the recompile reasons) and has no steady state to time"
        )
    result = {
        "type": "result",
        "samples": samples,
        "first_call": first_call,
        "compile_time": first_call + compiling_after_first if mode != "eager" else None,
        "diagnostics": diagnostics,
    }
    if watch is not None:
        result["compile"] = watch.summary()
    if device == "cuda":
        # The flush buffer is regress's, not the case's: kept out of both
        # peaks (it was allocated before the reset, so it is in them whole).
        held = flush_held_bytes(flush_bytes)
        result["peak_memory"] = torch.cuda.max_memory_allocated() - held
        result["peak_memory_reserved"] = torch.cuda.max_memory_reserved() - held
        if held:
            diagnostics["peak_memory_excludes_l2_flush_bytes"] = held
        diagnostics["gpu_state"] = {"before": state_before, "during": gpu_during, "after": gpu_state(device)}
    send(result)


def main():
    global _proto, torch
    _proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    line = sys.stdin.readline()
    if not line:
        fail("protocol", "no request on stdin")
    req = json.loads(line)
    # Checked before torch is imported, so a mismatch is reported at once.
    if req.get("protocol") != PROTOCOL_VERSION:
        fail(
            "protocol",
            f"regress sent protocol {req.get('protocol')}, this worker speaks {PROTOCOL_VERSION}: "
            "the worker and the binary come from different builds",
        )

    cache_dir = None
    if req.get("cmd") == "run":
        # An empty inductor cache per process: the first call then measures a
        # cold compile, and nothing leaks from one case into the next.
        cache_dir = tempfile.mkdtemp(prefix="regress-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
        os.environ["TRITON_CACHE_DIR"] = os.path.join(cache_dir, "triton")
    try:
        try:
            import torch
        except ImportError as exc:  # reported by regress with the fix
            fail("no_torch", f"{sys.executable} cannot import torch: {exc}")
        try:
            if req["cmd"] == "probe":
                probe(req)
            elif req["cmd"] == "run":
                run(req)
            else:
                fail("protocol", f"unknown command {req['cmd']!r}")
        except Skip as exc:
            send({"type": "skipped", "reason": str(exc)})
        except AccuracyFail as exc:
            diagnostics = failed_case_diagnostics()
            diagnostics["accuracy"] = exc.report
            send({"type": "accuracy_fail", "message": str(exc), "accuracy": exc.report,
                  "diagnostics": diagnostics})
        except torch.cuda.OutOfMemoryError as exc:
            fail("oom", str(exc).splitlines()[0] if str(exc) else "CUDA out of memory", failed_case_diagnostics())
        except Exception as exc:  # the case fails; regress goes on with the next
            traceback.print_exc()
            fail("exception", f"{type(exc).__name__}: {exc}", failed_case_diagnostics())
    finally:
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
