#!/usr/bin/env python3
"""The GPU check: every CUDA path of regress, in one run on one GPU.

It needs only Python and torch on the GPU host (a release `regress` binary
built elsewhere is optional, for the native backend), drives the python
worker (python/regress_worker.py) as regress does, one fresh process per
case over the worker protocol, and checks what comes back:

  preflight  nvidia-smi (with a time limit) and torch agree that CUDA is
             usable, else the driver / wheel mismatch is named; L2 size,
             PCI ids, native bf16; other processes on the GPU are reported
  probe      the worker reports device cuda, the GPU, CC, CUDA, cuDNN
  paths      eager fp32 / bf16, fp16 autocast backward; default,
             reduce-overhead (forward, backward, step) and max-autotune;
             a parameter-free backward under reduce-overhead; surgical
             scope; fp8 through _scaled_mm and torchao, or their skip
             reasons; CUDA graphs engaged (reduce-overhead faster than
             default on a launch-bound block)
  timing     CUDA-event timing against a kernel of known length
             (torch.cuda._sleep) and a large bf16 GEMM against a second
             timer; the L2 flush evicts and stays outside the timed region
  memory     the peak of a model with a 1 GiB output is < 1.5x the output
             (and the reserved peak < 2x); eager vs reduce-overhead peaks
  native     with --regress: the native backend on CUDA, beside python's
  forked     with --regress: python cases (eager and compiled) run by
             regress through its fork server on CUDA: every process is a
             forked child, and CUDA works in it
  gpus       with several GPUs: CUDA_VISIBLE_DEVICES=1 measures GPU 1

Budgets are tiny (warm-up 5 iterations, sampling 20 iterations or 0.1 s,
0.5 s at most) so that the whole check takes well under ten minutes on one
GPU; --budget bounds it (checks not reached then fail as not run).

    python scripts/gpu_check.py [--out gpu-check.json] [--regress PATH]
    python scripts/gpu_check.py --dry-run     # on the CPU, a few seconds

--dry-run runs the check's own machinery on the CPU (preflight, probe, a
worker case through the same assertions, the bookkeeping of a failure,
the results file); the steps that need a GPU are recorded as skipped.

Exit status: 0 when no check failed (skips are not failures), 1 when one
did, 2 for bad arguments. One JSON file holds every check's result.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "python", "regress_worker.py")
MODELS = os.path.join(ROOT, "workflows", "models")

# The worker's protocol version, read from the worker itself so that the
# check and the worker never disagree.
PROTOCOL = int(re.search(r"^PROTOCOL_VERSION = (\d+)$", open(WORKER).read(), re.M).group(1))
# Tolerances regress sends per precision (src/spec/defaults.rs `tolerance`).
TOLERANCE = {
    "fp32": (1.3e-6, 1e-5, 1e-4),
    "fp16": (1e-3, 1e-5, 5e-3),
    "bf16": (1.6e-2, 1e-5, 3e-2),
    "fp8": (1.25e-1, 1e-3, 1.5e-1),
}
# The stop rule's constants (src/runner/sampling.rs).
STOP_RULE = {"target_rel_iqr": 0.02, "check_growth": 1.25, "min_samples": 2, "min_iqr_samples": 4}
WARMUP = {"min_iters": 5, "min_time": 0.02}
MEASURE = dict(STOP_RULE, min_iters=20, min_time=0.1, max_time=0.5)
# One worker process may compile with max-autotune: allow it minutes.
WORKER_TIMEOUT_S = 300
NVIDIA_SMI_TIMEOUT_S = 10
# Agreement demanded of the timers (the review's part B).
SLEEP_REL, SLEEP_ABS_S = 0.03, 10e-6
GEMM_REL = 0.05
FLUSH_SLOWDOWN = 1.15
COLD_WARM_REL = 0.05
PEAK_OF_OUTPUT, RESERVED_OF_OUTPUT = 1.5, 2.0
GIB = 1 << 30


class Results:
    """Every check's outcome, printed as it comes and written as JSON."""

    def __init__(self, budget_s, quiet=False):
        self.quiet = quiet
        self.checks = []
        self.deadline = time.monotonic() + budget_s
        self.data = {}

    def add(self, step, name, status, detail="", **data):
        self.checks.append({"step": step, "name": name, "status": status, "detail": detail, **data})
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}[status]
        if not self.quiet:
            print(f"[{mark}] {step}: {name}" + (f" — {detail}" if detail else ""), flush=True)

    def check(self, step, name, ok, detail="", **data):
        self.add(step, name, "pass" if ok else "fail", detail, **data)
        return ok

    def out_of_time(self):
        return time.monotonic() > self.deadline

    def failed(self):
        return sum(c["status"] == "fail" for c in self.checks)

    def summary(self):
        count = lambda s: sum(c["status"] == s for c in self.checks)  # noqa: E731
        return {"passed": count("pass"), "failed": count("fail"), "skipped": count("skip")}


def request(model, case, device, *, args=None, cast="dtype", fp8="scaled_mm", l2="warm", scope="model",
            accuracy=True, measure=None):
    """A run request as regress writes it, every setting explicit."""
    precision = case.get("precision", "fp32")
    rtol, atol, rmse = TOLERANCE[precision]
    return {
        "cmd": "run", "protocol": PROTOCOL, "model": model, "args": args or {}, "device": device,
        "case": {"id": case["label"], "label": case["label"], "params": case.get("params", {}),
                 "precision": precision, "compile": case.get("compile", "eager"),
                 "phase": case.get("phase", "forward")},
        "repeat": 0, "seed": 0, "threads": None, "isa_checks": None,
        "warmup": WARMUP, "measure": measure or MEASURE, "l2": l2, "cast": cast, "fp8": fp8,
        "compile_options": {"fullgraph": False, "dynamic": None, "backend": "inductor", "scope": scope,
                            "cache": "cold"},
        "accuracy": {"check": accuracy, "rtol": rtol, "atol": atol, "rmse": rmse},
    }


def worker(req, env=None, timeout=WORKER_TIMEOUT_S):
    """(the worker's answer, its stderr's tail): one fresh process, one request."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    try:
        out = subprocess.run([sys.executable, WORKER], input=json.dumps(req) + "\n", capture_output=True,
                             text=True, timeout=timeout, cwd=ROOT, env=full_env)
    except subprocess.TimeoutExpired:
        return {"type": "error", "kind": "timeout", "message": f"no answer within {timeout} s"}, ""
    tail = "\n".join(out.stderr.strip().splitlines()[-8:])
    for line in out.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("type") in ("probe", "result", "skipped", "accuracy_fail", "error"):
            return msg, tail
    return {"type": "error", "kind": "exit", "message": f"exit {out.returncode} without an answer"}, tail


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def describe(msg, tail=""):
    text = msg.get("message") or msg.get("reason") or msg.get("type")
    return f"{msg.get('type')}: {text}" + (f" | {tail.splitlines()[-1]}" if tail else "")


def expect_result(res, step, label, msg, tail, cuda, compiled, min_iters=MEASURE["min_iters"]):
    """The assertions every measured case must meet; its median, or None."""
    if msg.get("type") != "result":
        res.check(step, label, False, describe(msg, tail))
        return None
    samples = msg.get("samples") or []
    d = msg.get("diagnostics", {})
    problems = []
    if len(samples) < min_iters and d.get("stop") != "max_time":
        problems.append(f"{len(samples)} samples < {min_iters}")
    if not samples or min(samples) <= 0:
        problems.append("a sample is not positive")
    acc = d.get("accuracy")
    if acc is not None and not acc.get("passed", False):
        problems.append(f"accuracy {acc}")
    if d.get("dropped_compiling", 0):
        problems.append(f"{d['dropped_compiling']} samples dropped for compiling")
    if compiled and (msg.get("compile") or {}).get("unique_graphs", 0) < 1:
        problems.append("no graph compiled")
    graphs = d.get("cudagraphs")
    if cuda and graphs is not None and not graphs.get("engaged"):
        problems.append(f"ran without CUDA graphs: {graphs}")
    if cuda:
        if not (msg.get("peak_memory") or 0) > 0:
            problems.append("no peak memory")
        state = d.get("gpu_state") or {}
        if shutil.which("nvidia-smi"):
            if not isinstance((state.get("before") or {}).get("sm_clock_mhz"), (int, float)):
                problems.append(f"no SM clock before: {state.get('before')}")
            if not (state.get("during") or {}).get("readings"):
                problems.append(f"no GPU readings while timed: {state.get('during')}")
    med = median(samples)
    res.check(step, label, not problems, "; ".join(problems) or f"median {med * 1e3:.3f} ms, n={len(samples)}",
              median_s=med, n=len(samples), peak_memory=msg.get("peak_memory"),
              compile_time=msg.get("compile_time"), compile=msg.get("compile"),
              gpu_during=(d.get("gpu_state") or {}).get("during"))
    return med


# ---------------------------------------------------------------- steps


def preflight(res, torch, cuda_expected):
    step = "preflight"
    smi = shutil.which("nvidia-smi")
    host = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if smi:
        fields = "name,driver_version,compute_cap,memory.total,power.limit,clocks.max.sm,persistence_mode,mig.mode.current"
        try:
            out = subprocess.run([smi, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
            host["nvidia_smi"] = out.stdout.strip().splitlines()
            apps = subprocess.run([smi, "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
            others = [ln for ln in apps.stdout.strip().splitlines() if ln.strip()]
            if others:
                res.add(step, "no other process on the GPU", "skip",
                        f"other processes share the GPU, numbers may suffer: {others}")
        except subprocess.TimeoutExpired:
            res.check(step, "nvidia-smi answers", False, f"no answer within {NVIDIA_SMI_TIMEOUT_S} s")
    res.data["host"] = host
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        usable = torch.cuda.is_available()
    said = "; ".join(" ".join(str(w.message).split()) for w in caught)
    if not cuda_expected:
        res.add(step, "CUDA usable", "skip", f"dry run on the CPU (torch.cuda.is_available() = {usable})")
        return True
    if not res.check(step, "CUDA usable", usable,
                     "" if usable else f"torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use the GPU "
                     f"nvidia-smi lists ({host.get('nvidia_smi')}): {said or 'no reason given'}; install the torch "
                     "build of the driver's CUDA (make venv TORCH_INDEX=…/cu128)"):
        return False
    props = torch.cuda.get_device_properties(0)
    host.update(gpu=props.name, cc=f"{props.major}.{props.minor}", l2_bytes=getattr(props, "L2_cache_size", 0))
    res.check(step, "L2 size known", getattr(props, "L2_cache_size", 0) > 0, f"{host['l2_bytes']} bytes")
    res.check(step, "PCI ids present", getattr(props, "pci_bus_id", None) is not None,
              "the worker finds its GPU in nvidia-smi by them")
    res.add(step, "native bf16", "pass" if torch.cuda.is_bf16_supported(including_emulation=False) else "skip",
            "bf16 cases run emulated here" if not torch.cuda.is_bf16_supported(including_emulation=False) else "")
    return True


def probe(res, device):
    step = "probe"
    msg, tail = worker({"cmd": "probe", "protocol": PROTOCOL, "device": device, "isa_checks": None})
    if not res.check(step, "the worker answers", msg.get("type") == "probe", describe(msg, tail)):
        return None
    res.check(step, f"device is {device}", msg.get("device") == device, f"device {msg.get('device')}")
    if device == "cuda":
        missing = [k for k in ("gpu", "compute_capability", "cuda", "cudnn", "gpu_uuid", "torch_cuda") if not msg.get(k)]
        res.check(step, "GPU, CC, CUDA, cuDNN reported", not missing, f"missing {missing}" if missing else
                  f"{msg['gpu']}, CC {msg['compute_capability']}, CUDA {msg['cuda']}, cuDNN {msg['cudnn']}")
    else:
        res.check(step, "torch's CUDA reported even when unused", "torch_cuda" in msg, str(msg.get("torch_cuda")))
    return msg


def builtin(name):
    return {"kind": "builtin", "name": name}


def entrypoint(target):
    return {"kind": "entrypoint", "target": target}


MLP = {"dim": 1024, "hidden": 4096, "batch": 64}
BLOCK = {"dim": 256, "heads": 4, "seq_len": 128, "batch": 8}
TE_MINI = {"part": "model", "batch": 1, "seq_len": 128, "hidden": 256, "heads": 4, "ffn": 512, "layers": 2}


def worker_paths(res, cc):
    """Every path of the worker on CUDA; the medians by label."""
    step = "paths"
    fp8_ok = cc >= (8, 9)
    te = entrypoint("workflows/models/te_surgical.py:factory")
    cases = [
        # (label, model, params, precision, compile, phase, options, expect)
        ("mlp fp32 eager forward", builtin("mlp"), MLP, "fp32", "eager", "forward", {}, "result"),
        ("mlp bf16 eager forward", builtin("mlp"), MLP, "bf16", "eager", "forward", {}, "result"),
        ("mlp fp16 autocast backward", builtin("mlp"), MLP, "fp16", "eager", "backward", {"cast": "autocast"}, "result"),
        ("block bf16 default forward", builtin("transformer_block"), BLOCK, "bf16", "default", "forward", {}, "result"),
        ("block bf16 reduce-overhead forward", builtin("transformer_block"), BLOCK, "bf16", "reduce-overhead",
         "forward", {}, "result"),
        ("block bf16 reduce-overhead backward", builtin("transformer_block"), BLOCK, "bf16", "reduce-overhead",
         "backward", {}, "result"),
        ("block bf16 reduce-overhead step", builtin("transformer_block"), BLOCK, "bf16", "reduce-overhead", "step",
         {}, "result"),
        ("parameter-free attention reduce-overhead backward", entrypoint("workflows/models/attention_lm.py:factory"),
         {"part": "attention", "batch": 4, "seq_len": 128}, "bf16", "reduce-overhead", "backward", {}, "result"),
        ("linear_components fp16 max-autotune forward", builtin("linear_components"),
         {"d_in": 512, "components": 512, "batch": 64}, "fp16", "max-autotune", "forward", {}, "result"),
        ("te mini surgical reduce-overhead forward", te, TE_MINI, "bf16", "reduce-overhead", "forward",
         {"scope": {"names": ["rope", "split_qkv"]}}, "result"),
        ("mlp fp8 eager forward", builtin("mlp"), MLP, "fp8", "eager", "forward", {}, "result" if fp8_ok else "skipped"),
        ("mlp fp8 default forward", builtin("mlp"), MLP, "fp8", "default", "forward", {},
         "result" if fp8_ok else "skipped"),
        ("te mini fp8 surgical default forward", te, TE_MINI, "fp8", "default", "forward",
         {"scope": {"names": ["rope", "split_qkv"]}}, "result" if fp8_ok else "skipped"),
        ("mlp fp8 scaled_mm backward is skipped", builtin("mlp"), MLP, "fp8", "eager", "backward", {}, "skipped"),
        ("mlp fp8 torchao step", builtin("mlp"), MLP, "fp8", "default", "step", {"fp8": "torchao"},
         "result-or-skipped"),
    ]
    medians = {}
    for label, model, params, precision, mode, phase, options, expect in cases:
        if res.out_of_time():
            res.check(step, label, False, "not run: the time budget was spent")
            continue
        options = dict(options)
        scope = options.pop("scope", "model")
        req = request(model, {"label": label, "params": params, "precision": precision, "compile": mode,
                              "phase": phase}, "cuda", scope=scope, **options)
        msg, tail = worker(req)
        if expect == "skipped" or (expect == "result-or-skipped" and msg.get("type") == "skipped"):
            res.check(step, label, msg.get("type") == "skipped", describe(msg, tail))
            continue
        medians[label] = expect_result(res, step, label, msg, tail, True, mode != "eager")
    ro, default = medians.get("block bf16 reduce-overhead forward"), medians.get("block bf16 default forward")
    if ro and default:
        res.check(step, "CUDA graphs engaged: reduce-overhead faster than default on a launch-bound block",
                  ro < default, f"{ro * 1e6:.1f} µs vs {default * 1e6:.1f} µs")
    return medians


SLEEP_MODEL = '''
import torch


class Sleep(torch.nn.Module):
    """One kernel of known length."""

    def __init__(self, cycles):
        super().__init__()
        self.cycles = cycles

    def forward(self, x):
        torch.cuda._sleep(self.cycles)
        return x


class Gemm(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = torch.nn.Linear(n, n, bias=False)

    def forward(self, x):
        return self.lin(x)


class Big(torch.nn.Module):
    """A 1 MiB input repeated into a 1 GiB output."""

    def forward(self, x):
        return x.repeat(1024)


def factory(params):
    kind = params["kind"]
    if kind == "sleep":
        return Sleep(int(params["cycles"])), (torch.zeros(4),)
    if kind == "gemm":
        n = int(params["n"])
        return Gemm(n), (torch.randn(n, n),)
    return Big(), (torch.randn(1 << 18),)
'''


def timing(res, torch, models):
    step = "timing"
    import regress_timing as w  # noqa: E402 - the worker's own flush

    # A kernel of known length, timed by the worker and by raw events here.
    cycles = 2_000_000
    sleep = entrypoint(f"{models}:factory")
    msg, tail = worker(request(sleep, {"label": "sleep", "params": {"kind": "sleep", "cycles": cycles}}, "cuda",
                               accuracy=False))
    got = expect_result(res, step, "sleep kernel measured", msg, tail, True, False)
    times = []
    for i in range(60):  # the first half brings the clocks up, as the worker's warm-up does
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end) / 1e3)
    want = median(times[30:])
    if got:
        res.check(step, "events time a kernel of known length", abs(got - want) <= SLEEP_REL * want + SLEEP_ABS_S,
                  f"worker {got * 1e6:.1f} µs vs raw events {want * 1e6:.1f} µs")

    # A large bf16 GEMM against a second timer.
    n = 8192
    msg, tail = worker(request(sleep, {"label": "gemm", "params": {"kind": "gemm", "n": n}, "precision": "bf16"},
                               "cuda"))
    got = expect_result(res, step, f"bf16 GEMM {n}³ measured", msg, tail, True, False)
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    lin = torch.nn.Linear(n, n, bias=False, device="cuda", dtype=torch.bfloat16)
    try:
        from triton.testing import do_bench

        with torch.no_grad():
            want, timer = do_bench(lambda: lin(a), return_mode="median") / 1e3, "triton do_bench"
    except ImportError:
        with torch.no_grad():
            for _ in range(5):
                lin(a)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(50):
                lin(a)
            torch.cuda.synchronize()
        want, timer = (time.perf_counter() - t0) / 50, "host clock over 50 calls"
    if got:
        res.check(step, f"GEMM agrees with {timer}", abs(got - want) <= GEMM_REL * want,
                  f"worker {got * 1e3:.3f} ms vs {want * 1e3:.3f} ms", tflops=2 * n ** 3 / got / 1e12)
    del a, lin

    # The flush: twice the L2, and a read of half the L2 (which fits in it)
    # is slower after it.
    flush, size = w.cache_flusher("cuda", "cold")
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    res.check(step, "flush buffer is twice the L2", size == 2 * l2, f"{size} bytes for an L2 of {l2}")
    buf = torch.ones(max(l2 // 2, 1 << 20), dtype=torch.uint8, device="cuda")

    def read_time(flushed):
        out = []
        for _ in range(30):
            buf.sum()
            if flushed:
                flush()
            torch.cuda._sleep(100_000)  # a spacer, so the read's launch is not what is timed
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            buf.sum()
            end.record()
            end.synchronize()
            out.append(begin.elapsed_time(end))
        return median(out)

    warm, cold = read_time(False), read_time(True)
    res.check(step, "the flush evicts the L2", cold > FLUSH_SLOWDOWN * warm,
              f"read after flush {cold * 1e3:.1f} µs vs warm {warm * 1e3:.1f} µs")
    del buf, flush

    # A memory-bound model that does not fit in the L2: cold and warm agree,
    # so the flush itself is outside the timed region.
    big = {"label": "big", "params": {"kind": "big"}}
    medians = {}
    for l2_policy in ("warm", "cold"):
        msg, tail = worker(request(sleep, big, "cuda", l2=l2_policy, accuracy=False))
        medians[l2_policy] = expect_result(res, step, f"1 GiB output, l2 {l2_policy}", msg, tail, True, False)
    if medians["warm"] and medians["cold"]:
        res.check(step, "the flush stays outside the timed region",
                  abs(medians["cold"] - medians["warm"]) <= COLD_WARM_REL * medians["warm"],
                  f"cold {medians['cold'] * 1e3:.3f} ms vs warm {medians['warm'] * 1e3:.3f} ms")


def memory(res, models):
    step = "memory"
    big = {"label": "big", "params": {"kind": "big"}}
    peaks = {}
    for mode in ("eager", "reduce-overhead"):
        msg, tail = worker(request(entrypoint(f"{models}:factory"), dict(big, compile=mode), "cuda", accuracy=False))
        if not expect_result(res, step, f"1 GiB output, {mode}", msg, tail, True, mode != "eager"):
            continue
        peaks[mode] = (msg.get("peak_memory"), msg.get("peak_memory_reserved"),
                       msg.get("diagnostics", {}).get("peak_memory_warmup"))
    if "eager" in peaks:
        peak, reserved = peaks["eager"]
        res.check(step, f"peak < {PEAK_OF_OUTPUT}x the output", peak < PEAK_OF_OUTPUT * GIB,
                  f"{peak / GIB:.2f} GiB")
        res.check(step, f"reserved peak < {RESERVED_OF_OUTPUT}x the output", reserved < RESERVED_OF_OUTPUT * GIB,
                  f"{reserved / GIB:.2f} GiB")
    if len(peaks) == 2:
        gib = lambda b: f"{b / GIB:.2f} GiB" if isinstance(b, (int, float)) else "?"  # noqa: E731
        res.add(step, "eager vs reduce-overhead peaks (read by eye)", "pass",
                f"steady state {gib(peaks['eager'][0])} vs {gib(peaks['reduce-overhead'][0])}; over warm-up "
                f"{gib(peaks['eager'][2])} vs {gib(peaks['reduce-overhead'][2])}")


NATIVE_PIPELINE = """version: 1
name: gpu-check-native
model:
  builtin: mlp
  args: {dim: 1024, hidden: 4096}
runner:
  backend: native
  device: DEVICE
  processes: 1
  warmup: {min_iters: 5, min_time: 20ms}
  measure: {min_iters: 20, min_time: 100ms, max_time: 500ms}
matrix:
  batch: [64]
  precision: [fp32, bf16]
---
version: 1
name: gpu-check-forked
model:
  builtin: mlp
  args: FORKED_SHAPE
runner:
  backend: python
  device: DEVICE
  processes: 2
  warmup: {min_iters: 5, min_time: 20ms}
  measure: {min_iters: 20, min_time: 100ms, max_time: 500ms}
matrix:
  batch: [64]
  precision: [bf16]
  compile: [eager, default]
"""


def native(res, regress, torch, python_medians, device="cuda"):
    step = "native"
    if not regress:
        res.add(step, f"native backend on {device}", "skip", "no --regress binary given")
        return
    if shutil.which("git") is None:
        res.add(step, f"native backend on {device}", "skip", "no git to make the scratch repository")
        return
    lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    with tempfile.TemporaryDirectory(prefix="regress-gpu-check-") as repo:
        with open(os.path.join(repo, "p.yaml"), "w") as f:
            # Small on the CPU (a dry run), where compiling costs most.
            shape = "{dim: 1024, hidden: 4096}" if device == "cuda" else "{dim: 32, hidden: 64}"
            f.write(NATIVE_PIPELINE.replace("DEVICE", device).replace("FORKED_SHAPE", shape))
        git = ["git", "-C", repo, "-c", "user.name=gpu-check", "-c", "user.email=gpu-check@localhost"]
        subprocess.run(git[:3] + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-qm", "check"], check=True)
        env = dict(os.environ, LD_LIBRARY_PATH=lib + os.pathsep + os.environ.get("LD_LIBRARY_PATH", ""),
                   NO_COLOR="1")
        out = subprocess.run([os.path.abspath(regress), "run", "p.yaml"], cwd=repo, env=env, capture_output=True,
                             text=True, timeout=WORKER_TIMEOUT_S)
        tail = "" if out.returncode == 0 else "\n".join((out.stdout + out.stderr).strip().splitlines()[-6:])
        if not res.check(step, f"regress run (native and python, {device})", out.returncode == 0, tail):
            return
        records = {os.path.basename(d): os.path.join(d, f)
                   for d, _, fs in os.walk(os.path.join(repo, ".regress", "records")) for f in fs
                   if f.endswith(".json")}
        forked(res, json.load(open(records["gpu-check-forked"])), device)
        record = json.load(open(records["gpu-check-native"]))
        used = record["machine"]["software"].get("device")
        res.check(step, f"the native record says {device}", used == device, f"device {used}")
        for case in record["cases"]:
            ok = res.check(step, case["label"], case["status"] == "ok", case.get("reason") or "")
            if ok:
                med = case["metrics"]["latency"]["processes"][0]["median"]
                precision = "fp32" if ",fp32" in case["label"] else "bf16"
                py = python_medians.get(f"mlp {precision} eager forward")
                res.add(step, f"python vs native, {precision} (read by eye)", "pass",
                        f"native {med * 1e3:.3f} ms, python {py * 1e3:.3f} ms" if py else f"native {med * 1e3:.3f} ms")


def forked(res, record, device):
    """The python cases regress ran through its fork server: on the device,
    every process a child forked from the server (which imported torch and
    inductor but initialised no CUDA, or the children could not use it)."""
    step = "forked"
    used = record["machine"]["software"].get("device")
    res.check(step, f"the python record says {device}", used == device, f"device {used}")
    for case in record["cases"]:
        if not res.check(step, f"{case['label']} through the fork server", case["status"] == "ok",
                         case.get("reason") or ""):
            continue
        diagnostics = case["diagnostics"]
        if isinstance(diagnostics, dict):  # factored: common and per process
            maps = [dict(diagnostics.get("common", {}), **own) for own in diagnostics.get("processes", [])]
        else:
            maps = diagnostics
        starts = [d.get("process_start", {}) for d in maps]
        res.check(step, f"{case['label']}: every process forked", starts and all(s.get("how") == "forked"
                                                                                 for s in starts),
                  json.dumps(starts))


def several_gpus(res, torch):
    step = "gpus"
    if torch.cuda.device_count() < 2:
        res.add(step, "CUDA_VISIBLE_DEVICES=1", "skip", "one GPU")
        return
    want = str(torch.cuda.get_device_properties(1).uuid)
    msg, _ = worker({"cmd": "probe", "protocol": PROTOCOL, "device": "cuda", "isa_checks": None},
                    env={"CUDA_VISIBLE_DEVICES": "1"})
    res.check(step, "the worker sees GPU 1 under CUDA_VISIBLE_DEVICES=1", msg.get("gpu_uuid") == want,
              f"{msg.get('gpu_uuid')} vs {want}")
    msg, tail = worker(request(builtin("mlp"), {"label": "mlp on GPU 1", "params": MLP}, "cuda"),
                       env={"CUDA_VISIBLE_DEVICES": "1"})
    expect_result(res, step, "mlp on GPU 1", msg, tail, True, False)


# ---------------------------------------------------------------- dry run


def dry_run(res, torch):
    """The check's own machinery on the CPU: a worker case through the same
    assertions, and the bookkeeping of a failure."""
    step = "dry-run"
    quick = dict(MEASURE, min_iters=5, min_time=0.0, max_time=0.2)
    for phase in ("forward", "backward"):
        label = f"mlp fp32 eager {phase} on the CPU"
        msg, tail = worker(request(builtin("mlp"), {"label": label, "params": {"dim": 32, "hidden": 64, "batch": 4},
                                                    "phase": phase}, "cpu", measure=quick))
        expect_result(res, step, label, msg, tail, False, False, min_iters=quick["min_iters"])
    scratch = Results(60, quiet=True)
    expect_result(scratch, "self-test", "a worker error", {"type": "error", "message": "boom"}, "", False, False)
    expect_result(scratch, "self-test", "a result without samples", {"type": "result", "samples": []}, "", False,
                  False)
    res.check(step, "failures are counted", scratch.failed() == 2, f"{scratch.failed()} of 2 counted")
    for name in ("timing", "memory", "gpus"):
        res.add(name, "needs a GPU", "skip", "dry run on the CPU")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu-check.json", help="the results file (JSON)")
    parser.add_argument("--regress", help="a regress binary (regress-native beside it) for the native step")
    parser.add_argument("--budget", type=float, default=540, help="seconds before the remaining cases are not run")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU: the check's own logic, a few seconds")
    args = parser.parse_args()
    if args.regress and not os.path.exists(args.regress):
        parser.error(f"--regress {args.regress}: no such file")
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import torch

    res = Results(args.budget)
    started = time.time()
    device = "cpu" if args.dry_run else "cuda"
    if preflight(res, torch, cuda_expected=not args.dry_run):
        probe(res, device)
        if args.dry_run:
            dry_run(res, torch)
            # The native step's own logic, on the CPU (a debug build will do).
            native(res, args.regress, torch, {}, device="cpu")
        else:
            major, minor = torch.cuda.get_device_capability(0)
            with tempfile.TemporaryDirectory(prefix="regress-gpu-check-models-") as tmp:
                models = os.path.join(tmp, "gpu_check_models.py")
                with open(models, "w") as f:
                    f.write(SLEEP_MODEL)
                python_medians = worker_paths(res, (major, minor))
                timing(res, torch, models)
                memory(res, models)
                native(res, args.regress, torch, python_medians)
                several_gpus(res, torch)
    report = {
        "version": 1,
        "mode": "dry-run" if args.dry_run else "gpu",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        **res.data,
        **res.summary(),
        "checks": res.checks,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1, default=str)
    s = res.summary()
    print(f"{s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped in {report['seconds']} s; "
          f"results in {args.out}")
    return 1 if s["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
