"""Are processes forked from the fork server as independent as fresh ones?

regress tests the locations of several processes per case, so the spread
between processes must be what fresh processes would show: a mechanism that
made processes alike (one memory layout, one warm state inherited from a
parent) would shrink it and make compare overconfident. This benchmark
runs one case with many processes through `regress run`, alternately with
the fork server and with an interpreter per process
(REGRESS_FORK_SERVER_ENABLED=0), and prints, per mode, the spread between
the process medians: their coefficient of variation, their range over the
median, and the wall time of the runs.

Run it with `make bench-fork` (or `python benches/fork_independence.py
--regress PATH`). This is a benchmark, not a test: the numbers depend on the
machine and how quiet it is.
"""

import argparse
import glob
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PIPELINE = """version: 1
name: independence
model:
  builtin: mlp
  args: {{dim: 128, hidden: 512}}
runner:
  backend: python
  device: cpu
  threads: 1
  processes: {processes}
  warmup: {{min_iters: 10, min_time: 50ms}}
  measure: {{min_iters: 50, min_time: 250ms, max_time: 1s}}
matrix:
  batch: [8]
  precision: [fp32]
  compile: [eager]
"""


def git(repo, *args):
    subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True)


def process_medians(repo, before):
    """The process medians of the record that the last run added."""
    files = set(glob.glob(os.path.join(repo, ".regress", "records", "*", "*", "*.json"))) - before
    (path,) = files
    with open(path) as f:
        record = json.load(f)
    return [p["median"] for p in record["cases"][0]["metrics"]["latency"]["processes"]], path


def spread(medians):
    """(coefficient of variation of the logs, range / median)."""
    logs = [math.log(m) for m in medians]
    return statistics.stdev(logs), (max(medians) - min(medians)) / statistics.median(medians)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regress", default="target/release/regress")
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode, alternating")
    parser.add_argument("--processes", type=int, default=12, help="processes per run")
    args = parser.parse_args()
    regress = os.path.abspath(args.regress)

    repo = tempfile.mkdtemp(prefix="regress-fork-bench-")
    try:
        git(repo, "init", "-q")
        with open(os.path.join(repo, "p.yaml"), "w") as f:
            f.write(PIPELINE.format(processes=args.processes))
        git(repo, "add", "p.yaml")
        git(repo, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench")
        modes = {"forked": "1", "interpreter": "0"}
        got = {mode: {"medians": [], "cv": [], "range": [], "wall": []} for mode in modes}
        print(f"{args.rounds} runs per mode of {args.processes} processes, alternating; mlp 128x512 b8, eager, 1 thread")
        for round_ in range(args.rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for mode in order:
                before = set(glob.glob(os.path.join(repo, ".regress", "records", "*", "*", "*.json")))
                env = dict(os.environ, REGRESS_FORK_SERVER_ENABLED=modes[mode])
                t0 = time.perf_counter()
                subprocess.run([regress, "run", "p.yaml"], cwd=repo, env=env, check=True, capture_output=True)
                wall = time.perf_counter() - t0
                medians, _ = process_medians(repo, before)
                cv, rng = spread(medians)
                g = got[mode]
                g["medians"] += medians
                g["cv"].append(cv)
                g["range"].append(rng)
                g["wall"].append(wall)
                print(f"  round {round_ + 1} {mode:12} median {statistics.median(medians) * 1e6:8.2f} us  "
                      f"sd(log) {cv * 100:5.2f} %  range/median {rng * 100:5.2f} %  wall {wall:6.1f} s")
        print()
        print(f"{'mode':12} {'median':>10} {'sd(log) per run':>24} {'range/median per run':>28} {'wall per run':>14}")
        for mode, g in got.items():
            print(f"{mode:12} {statistics.median(g['medians']) * 1e6:8.2f} us "
                  f"{' '.join(f'{c * 100:5.2f}%' for c in g['cv']):>24} "
                  f"{' '.join(f'{r * 100:6.2f}%' for r in g['range']):>28} "
                  f"{statistics.median(g['wall']):12.1f} s")
    finally:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
