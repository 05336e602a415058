"""The regress python worker: measures one case in a fresh process.

Protocol: regress writes one JSON request on stdin and reads JSON lines on
stdout. The real stdout is kept for the protocol and file descriptor 1 is
pointed at stderr, so prints from user code (or C libraries) can never
corrupt it. Every line is an object with a "type": "probe", "result" or
"error".
"""

import json
import os
import sys
import time
import traceback

PROTOCOL_VERSION = 1

_proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr


def send(obj):
    _proto.write(json.dumps(obj) + "\n")
    _proto.flush()


def fail(kind, message):
    send({"type": "error", "kind": kind, "message": message})
    sys.exit(3)


try:
    import torch
except ImportError as exc:  # reported by regress with the fix
    fail("no_torch", f"{sys.executable} cannot import torch: {exc}")

import regress_zoo  # noqa: E402  (after the torch check on purpose)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(choice):
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    if choice in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    if choice in ("auto", "cpu"):
        return "cpu"
    return None


def probe(req):
    cuda = torch.cuda.is_available()
    info = {
        "type": "probe",
        "protocol": PROTOCOL_VERSION,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": str(torch.backends.cudnn.version()) if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
        "device": resolve_device(req.get("device", "auto")),
        "threads": torch.get_num_threads(),
    }
    send(info)


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def skip_reason(req, device):
    precision = req["case"].get("precision") or "fp32"
    if device is None:
        return f"device `{req['device']}` is not available on this machine"
    if precision == "fp8":
        if device != "cuda":
            return "fp8 needs a CUDA GPU of compute capability 8.9 or newer; CPU fp8 is emulation, not a performance result"
        major, minor = torch.cuda.get_device_capability(0)
        if (major, minor) < (8, 9):
            return f"fp8 needs compute capability 8.9 or newer; this GPU is {major}.{minor}"
        return "fp8 is not supported by the built-in zoo of this version"
    if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU does not support bf16"
    return None


def run(req):
    case = req["case"]
    device = resolve_device(req["device"])
    reason = skip_reason(req, device)
    if reason:
        send({"type": "skipped", "reason": reason})
        return
    seed = req.get("seed", 0)
    model, inputs = regress_zoo.build(req["model"], dict(req.get("args", {}), **case["params"]), seed)
    dtype = DTYPES[case.get("precision") or "fp32"]
    model = model.to(device=device, dtype=dtype).eval()
    inputs = tuple(x.to(device=device, dtype=dtype) for x in inputs)

    mode = case.get("compile") or "eager"
    fn = model
    if mode != "eager":
        fn = torch.compile(model, mode=None if mode == "default" else mode)
    cudagraph_step = mode in ("reduce-overhead",) and device == "cuda"

    def call():
        if cudagraph_step:
            torch.compiler.cudagraph_mark_step_begin()
        return fn(*inputs)

    diagnostics = {"device": device, "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads()}
    with torch.no_grad():
        # First call: compilation for compiled modes, lazy init for eager.
        synchronize(device)
        t0 = time.perf_counter()
        out = call()
        synchronize(device)
        first_call = time.perf_counter() - t0
        if not torch.isfinite(out.float()).all():
            send({"type": "error", "kind": "nonfinite", "message": "the model's output contains NaN or Inf"})
            return

        warm = req["warmup"]
        n, t_start = 0, time.perf_counter()
        while n < warm["min_iters"] or time.perf_counter() - t_start < warm["min_time"]:
            call()
            n += 1
        synchronize(device)
        diagnostics["warmup_iters"] = n

        samples = measure(call, device, req["measure"])

    result = {
        "type": "result",
        "samples": samples,
        "first_call": first_call,
        "compile_time": first_call if mode != "eager" else None,
        "diagnostics": diagnostics,
    }
    if device == "cuda":
        result["peak_memory"] = torch.cuda.max_memory_allocated()
    send(result)


def measure(call, device, budget):
    """Per-iteration latencies in seconds: CUDA events on the GPU, perf_counter on the host."""
    min_iters, min_time, max_time = budget["min_iters"], budget["min_time"], budget["max_time"]
    samples = []
    start = time.perf_counter()
    if device == "cuda":
        events = []
        while True:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            call()
            end.record()
            events.append((begin, end))
            elapsed = time.perf_counter() - start
            if (len(events) >= min_iters and elapsed >= min_time) or (elapsed >= max_time and len(events) >= 2):
                break
        torch.cuda.synchronize()
        return [b.elapsed_time(e) / 1e3 for b, e in events]
    while True:
        t0 = time.perf_counter()
        call()
        synchronize(device)
        samples.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if (len(samples) >= min_iters and elapsed >= min_time) or (elapsed >= max_time and len(samples) >= 2):
            return samples


def main():
    line = sys.stdin.readline()
    if not line:
        fail("protocol", "no request on stdin")
    req = json.loads(line)
    try:
        if req["cmd"] == "probe":
            probe(req)
        elif req["cmd"] == "run":
            run(req)
        else:
            fail("protocol", f"unknown command {req['cmd']!r}")
    except torch.cuda.OutOfMemoryError as exc:
        fail("oom", str(exc).splitlines()[0] if str(exc) else "CUDA out of memory")
    except Exception as exc:  # the case fails; regress goes on with the next
        traceback.print_exc()
        fail("exception", f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
