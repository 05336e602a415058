"""Does the regress worker agree with torch.utils.benchmark?

Measures fixed CPU workloads two ways, alternating, twice over: first in
one process (the worker's own sampling code and Timer on the very same
model object, so only the methods differ), then in fresh processes with the
same interpreter, environment and thread count (which adds the
process-to-process variation regress is built to expose):

- the regress python worker, through the same JSON request `regress run`
  sends it (warm-up, sampling with early stop, batching of short calls);
- torch.utils.benchmark.Timer.blocked_autorange on the same zoo model, built
  with the same seed, under torch.no_grad, with the same number of threads
  (Timer defaults to one thread; the worker uses torch's default).

Prints each side's median per round and the ratio of the medians of the
rounds. Run it with `make bench-timer` (or `python benches/timer_agreement.py`
with a Python that has torch). This is a benchmark, not a test: the numbers
depend on the machine and how quiet it is.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_DIR = os.path.join(HERE, "..", "python")

# (name, zoo model, parameters): one call long enough to time alone, one so
# short that the worker batches calls.
WORKLOADS = [
    ("mlp-256x1024-b32", "mlp", {"dim": 256, "hidden": 1024, "batch": 32}),
    ("transformer_block-128-s64", "transformer_block", {"dim": 128, "heads": 4, "seq_len": 64, "batch": 2}),
    ("mlp-32x64-b4 (batched)", "mlp", {"dim": 32, "hidden": 64, "batch": 4}),
]

TIMER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.utils.benchmark as benchmark
    sys.path.insert(0, sys.argv[1])
    import regress_zoo
    name, params, min_run_time = sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
    model, inputs = regress_zoo.build(name, params, 0)
    model.eval()
    with torch.no_grad():
        for _ in range(10):
            model(*inputs)
        timer = benchmark.Timer(
            stmt="model(*inputs)",
            globals={"model": model, "inputs": inputs},
            num_threads=torch.get_num_threads(),
        )
        m = timer.blocked_autorange(min_run_time=min_run_time)
    print(json.dumps({"median": m.median, "n": len(m.times), "number_per_run": m.number_per_run}))
    """
)


def measure_budget(budget):
    """The stop rule as regress sends it: a fixed time (no early stop)."""
    return {
        "min_iters": 30, "min_time": budget, "max_time": budget, "target_rel_iqr": 0.0,
        "check_growth": 1.25, "min_samples": 2, "min_iqr_samples": 4,
    }


def worker_median(python, name, params, budget):
    sys.path.insert(0, WORKER_DIR)
    import regress_worker  # imports no torch: only for the protocol version

    request = {
        "cmd": "run",
        "protocol": regress_worker.PROTOCOL_VERSION,
        "model": {"kind": "builtin", "name": name},
        "args": {},
        "device": "cpu",
        "case": {"id": "0" * 16, "label": name, "params": params, "precision": "fp32",
                 "compile": "eager", "phase": "forward"},
        "repeat": 0,
        "seed": 0,
        "isa_checks": None,
        "warmup": {"min_iters": 10, "min_time": 0.1},
        "measure": measure_budget(budget),
        "l2": "warm",
        "cast": "dtype",
        "fp8": "scaled_mm",
        "compile_options": {"fullgraph": False, "dynamic": None, "backend": "inductor", "scope": "model", "cache": "cold"},
        "accuracy": {"check": True, "rtol": 1.3e-6, "atol": 1e-5, "rmse": 1e-4},
    }
    out = subprocess.run(
        [python, os.path.join(WORKER_DIR, "regress_worker.py")],
        input=json.dumps(request) + "\n", capture_output=True, text=True, check=True,
    )
    result = json.loads(out.stdout.splitlines()[0])
    if result["type"] != "result":
        raise RuntimeError(f"worker: {result}")
    return statistics.median(result["samples"]), result["diagnostics"]["batch"]


def timer_median(python, name, params, budget):
    out = subprocess.run(
        [python, "-c", TIMER_SCRIPT, WORKER_DIR, name, json.dumps(params), str(budget)],
        capture_output=True, text=True, check=True,
    )
    result = json.loads(out.stdout.splitlines()[-1])
    return result["median"], result["number_per_run"]


def in_process(name, params, budget, rounds):
    """Worker sampling and Timer on one model object in this process."""
    import torch
    import torch.utils.benchmark as benchmark

    sys.path.insert(0, WORKER_DIR)
    import regress_models
    import regress_timing
    import regress_zoo

    model, inputs = regress_zoo.build(name, params, 0)
    phase = regress_models.Phase("forward", model, model, inputs, None)
    budget = measure_budget(budget)
    ours, theirs = [], []
    with torch.no_grad():
        for _ in range(10):
            phase.body()
        for round_ in range(rounds):
            for side in (("worker", "timer") if round_ % 2 == 0 else ("timer", "worker")):
                if side == "worker":
                    clock = regress_timing.HostClock.sized_for(phase, "cpu", None)
                    samples, _, batch, _ = regress_timing.measure(phase, clock, budget, None, None)
                    ours.append(statistics.median(samples))
                else:
                    timer = benchmark.Timer(
                        stmt="model(*inputs)", globals={"model": model, "inputs": inputs},
                        num_threads=torch.get_num_threads(),
                    )
                    m = timer.blocked_autorange(min_run_time=budget["max_time"])
                    theirs.append(m.median)
    return ours, theirs, batch, m.number_per_run


def report(label, ours, theirs, batch, per_run):
    a, b = statistics.median(ours), statistics.median(theirs)
    ratios = [x / y for x, y in zip(ours, theirs)]
    print(
        f"{label:28} {a * 1e6:12.2f} us {b * 1e6:10.2f} us {a / b:7.3f}  "
        + " ".join(f"{r:.3f}" for r in ratios)
        + f"  (worker batch {batch}, Timer number_per_run {per_run})"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per workload")
    parser.add_argument("--time", type=float, default=1.0, help="seconds of sampling per side and round")
    parser.add_argument("--python", default=os.environ.get("REGRESS_PYTHON", sys.executable))
    args = parser.parse_args()

    print(f"python {args.python}, {args.rounds} rounds of {args.time:.1f} s per side, alternating")
    header = f"{'workload':28} {'regress median':>15} {'Timer median':>13} {'ratio':>7}  per-round ratios"
    print("\nin one process (same model object):")
    print(header)
    for label, name, params in WORKLOADS:
        report(label, *in_process(name, params, args.time, args.rounds))
    print("\nin fresh processes (worker protocol vs a Timer script):")
    print(header)
    for label, name, params in WORKLOADS:
        ours, theirs = [], []
        for round_ in range(args.rounds):
            # Alternate who goes first, so drift does not favour one side.
            order = ("worker", "timer") if round_ % 2 == 0 else ("timer", "worker")
            got = {}
            for side in order:
                if side == "worker":
                    got[side], batch = worker_median(args.python, name, params, args.time)
                else:
                    got[side], per_run = timer_median(args.python, name, params, args.time)
            ours.append(got["worker"])
            theirs.append(got["timer"])
        report(label, ours, theirs, batch, per_run)


if __name__ == "__main__":
    main()
