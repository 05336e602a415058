"""How much of a `regress run` is spent measuring?

Runs each pipeline with `regress run` in a scratch git repository (a copy of
`workflows/`), times the whole command, and reads back the records it wrote:

- wall: the command, end to end;
- measured: the time inside timed iterations, summed over every case and
  process (count × mean of the latency samples, × the calls per sample
  where the worker timed blocks of calls);
- compile: the compile time the cases measured (their `compile_time`
  metric: the first call of a compiled mode);
- runs: the records' own spans (first process started to last finished),
  whose difference from wall is what happens before and after them (the
  machine probe, reading the pipeline, storing);
- share: (measured + compile) / wall, the figure to raise.

Run it with `make bench-overhead` (or `python benches/overhead.py
[--regress PATH] [pipeline.yaml …]`). This is a benchmark, not a test: the
numbers depend on the machine and how quiet it is.
"""

import argparse
import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
DEFAULT_PIPELINES = ["workflows/quickstart.yaml", "workflows/kernelpytorch-quick-cpu.yaml"]


def parse_time(text):
    """An RFC 3339 time from a record (nanoseconds cut to microseconds)."""
    text = text.rstrip("Z")
    if "." in text:
        head, frac = text.split(".")
        text = f"{head}.{frac[:6]}"
    return datetime.datetime.fromisoformat(text)


def process_diagnostics(case):
    """Each process's diagnostics (stored whole, or factored into what all
    processes share and what is each one's own)."""
    d = case.get("diagnostics") or []
    if isinstance(d, dict):
        return [dict(d.get("common", {}), **own) for own in d.get("processes", [])]
    return d


def metric_seconds(case, name):
    """Σ count × mean over the processes of a case's metric, in seconds. A
    latency sample of a batched process is the mean of `batch` calls, so
    its process spent count × batch × mean timing them."""
    metric = case.get("metrics", {}).get(name)
    if not metric or metric.get("unit") != "s":
        return 0.0
    # One value per process (compile time) is stored as a plain list.
    total = sum(metric.get("values") or [])
    batches = [d.get("batch") or 1 for d in process_diagnostics(case)] if name == "latency" else []
    for i, p in enumerate(metric.get("processes") or []):
        batch = batches[i] if i < len(batches) else 1
        if isinstance(p, dict):
            total += p.get("n", 0) * p.get("mean", 0.0) * batch
        elif isinstance(p, list):
            total += sum(p) * batch
        else:
            total += float(p) * batch
    return total


def run_pipeline(regress, pipeline):
    """Runs one pipeline in a scratch repository; returns its figures."""
    scratch = tempfile.mkdtemp(prefix="regress-overhead-")
    try:
        shutil.copytree(os.path.join(ROOT, "workflows"), os.path.join(scratch, "workflows"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=scratch, check=True)
        subprocess.run(git + ["add", "-A"], cwd=scratch, check=True)
        subprocess.run(git + ["commit", "-q", "-m", "bench"], cwd=scratch, check=True)
        t0 = time.perf_counter()
        done = subprocess.run([regress, "run", pipeline], cwd=scratch, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"regress run {pipeline} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        measured = compile_s = spans = 0.0
        cases = processes = 0
        for path in glob.glob(os.path.join(scratch, ".regress", "records", "*", "*", "*.json")):
            with open(path) as f:
                record = json.load(f)
            if record.get("finished_at"):
                spans += (parse_time(record["finished_at"]) - parse_time(record["started_at"])).total_seconds()
            for case in record["cases"]:
                if case.get("status") != "ok":
                    continue
                cases += 1
                latency = case["metrics"].get("latency", {})
                processes += len(latency.get("processes") or [])
                measured += metric_seconds(case, "latency")
                compile_s += metric_seconds(case, "compile_time")
        return {"pipeline": pipeline, "wall": wall, "runs": spans, "measured": measured,
                "compile": compile_s, "cases": cases, "processes": processes}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regress", default=os.path.join(ROOT, "target", "release", "regress"))
    parser.add_argument("pipelines", nargs="*", default=DEFAULT_PIPELINES)
    args = parser.parse_args()
    regress = os.path.abspath(args.regress)
    if not os.path.exists(regress):
        sys.exit(f"no regress binary at {regress}: build it (cargo build --release) or pass --regress")
    print(f"{'pipeline':<42} {'cases':>5} {'procs':>5} {'wall':>8} {'runs':>8} {'measured':>9} "
          f"{'compile':>8} {'outside':>8} {'share':>6}")
    for pipeline in args.pipelines:
        r = run_pipeline(regress, pipeline)
        share = (r["measured"] + r["compile"]) / r["wall"]
        print(f"{r['pipeline']:<42} {r['cases']:>5} {r['processes']:>5} {r['wall']:>7.1f}s {r['runs']:>7.1f}s "
              f"{r['measured']:>8.1f}s {r['compile']:>7.1f}s {r['wall'] - r['runs']:>7.1f}s {share:>6.1%}")


if __name__ == "__main__":
    main()
