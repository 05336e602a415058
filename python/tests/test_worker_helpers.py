"""Unit tests of the python worker's helpers (python/regress_*.py): timing,
stop rule, the measuring loop, accuracy check, GPU readings. Run by `make
test` through pytest; the worker itself is exercised end to end by the
Rust integration tests.
"""

import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import regress_gpu as gpu  # noqa: E402
import regress_timing as timing  # noqa: E402
import regress_worker as worker  # noqa: E402


@pytest.fixture(scope="module")
def accuracy():
    """The accuracy module imports torch (the timing and GPU ones do not)."""
    import regress_accuracy

    return regress_accuracy


BUDGET = {
    "min_iters": 10,
    "min_time": 0.1,
    "max_time": 1.0,
    "min_samples": 5,
    "min_iqr_samples": 10,
    "target_rel_iqr": 0.05,
    "check_growth": 1.5,
}


def test_non_finite_numbers_travel_as_null():
    assert worker.finite({"a": [1.0, math.nan, (math.inf, 2)], "b": "x"}) == {"a": [1.0, None, [None, 2]], "b": "x"}


def test_rel_iqr_interpolates_and_is_infinite_when_unknown():
    assert timing.rel_iqr([1, 2, 3, 4, 5], 5) == pytest.approx((4 - 2) / 3)
    assert timing.rel_iqr([1, 2, 3], 5) == math.inf
    assert timing.rel_iqr([0, 0, 0, 1], 2) == math.inf


def test_stop_rule_waits_for_minimums_then_converges_or_runs_out():
    rule = timing.StopRule(BUDGET)
    steady = lambda: [1.0] * 20  # noqa: E731
    assert rule.done(5, 0.5, steady) is None  # below min_iters
    assert rule.done(10, 0.05, steady) is None  # below min_time
    assert rule.done(10, 0.2, steady) == "converged"
    noisy = timing.StopRule(BUDGET)
    spread = lambda: [1.0, 2.0] * 10  # noqa: E731
    assert noisy.done(10, 0.2, spread) is None
    # Looked at again only on the geometric schedule.
    assert noisy.next_check == 15
    assert noisy.done(12, 0.3, lambda: pytest.fail("looked too early")) is None
    assert noisy.done(12, 1.0, spread) == "max_time"


def test_a_case_that_keeps_recompiling_is_told_apart():
    assert timing.recompiling(dropped=8, kept=2, elapsed=1.0, budget=BUDGET) == "recompiling"
    assert timing.recompiling(dropped=2, kept=8, elapsed=1.0, budget=BUDGET) is None
    assert timing.recompiling(dropped=8, kept=2, elapsed=0.5, budget=BUDGET) is None


class FakeTime:
    """perf_counter on a clock of its own: each read costs `tick` seconds."""

    def __init__(self, tick=0.0):
        self.now = 0.0
        self.tick = tick

    def perf_counter(self):
        self.now += self.tick
        return self.now


class Calls:
    """A phase whose call takes `seconds` on the fake clock."""

    prepare = None

    def __init__(self, clock, seconds):
        self.clock = clock
        self.seconds = seconds
        self.calls = 0

    def body(self):
        self.clock.now += self.seconds
        self.calls += 1


def test_host_batches_last_a_millisecond_and_dwarf_the_clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(timing, "time", fake)
    assert timing.HostClock.sized_for(Calls(fake, 2 * timing.MIN_HOST_SAMPLE_S), "cpu", None).batch == 1
    # A binary fraction of a second, so the fake clock's sums stay exact.
    short = 2.0**-17
    batch = timing.HostClock.sized_for(Calls(fake, short), "cpu", None).batch
    assert timing.MIN_HOST_SAMPLE_S <= batch * short < 1.25 * timing.MIN_HOST_SAMPLE_S
    assert timing.HostClock.sized_for(Calls(fake, 1e-12), "cpu", None).batch == timing.MAX_BATCH
    # A clock that costs a microsecond per reading: the block grows until
    # that cost is at most CLOCK_SHARE of it (10 ms here).
    slow = FakeTime(tick=1e-6)
    monkeypatch.setattr(timing, "time", slow)
    batch = timing.HostClock.sized_for(Calls(slow, short), "cpu", None).batch
    assert batch * short >= 1e-6 / timing.CLOCK_SHARE
    # One call per sample when each needs its preparation or a flush.
    prepared = Calls(fake, 0.0)
    prepared.prepare = lambda: None
    assert timing.HostClock.sized_for(prepared, "cpu", None).batch == 1
    assert timing.HostClock.sized_for(Calls(fake, 1e-9), "cpu", lambda: None).batch == 1


class Tokens:
    """A clock whose tokens are labels: what the loop hands it, and when."""

    batch = 1

    def __init__(self, capacity=None):
        self.n = 0
        self.capacity = capacity
        self.events = []

    def after_flush(self):
        self.events.append("flushed")

    def start(self):
        self.events.append("start")

    def stop(self):
        self.n += 1
        self.events.append("stop")
        return float(self.n)

    def seconds(self, tokens):
        return list(tokens)

    def full(self, kept):
        return "full" if self.capacity and kept >= self.capacity else None

    def finish(self, tokens):
        self.events.append("finish")
        return [t * 10 for t in tokens]


def test_the_measuring_loop_drops_compiling_iterations_and_asks_the_clock_to_finish():
    class Watch:
        n = 0

        def graphs(self):
            return self.n

    watch = Watch()
    order = []

    class Phase:
        def prepare(self):
            order.append("prepare")

        def body(self):
            order.append("body")
            if order.count("body") == 2:  # the second call compiles a graph
                watch.n += 1

    clock = Tokens(capacity=3)
    budget = dict(BUDGET, min_iters=1000)
    samples, dropped, batch, stop = timing.measure(Phase(), clock, budget, lambda: order.append("flush"), watch)
    # Four iterations, the second dropped; the clock's capacity stops it.
    assert (samples, dropped, batch, stop) == ([10.0, 30.0, 40.0], 1, 1, "full")
    assert order[:4] == ["prepare", "flush", "body", "prepare"]
    assert clock.events[:3] == ["flushed", "start", "stop"] and clock.events[-1] == "finish"


def test_the_flush_buffer_holds_at_least_a_mebibyte_or_nothing():
    assert timing.flush_held_bytes(0) == 0
    assert timing.flush_held_bytes(1000) == 1 << 20
    assert timing.flush_held_bytes(64 << 20) == 64 << 20
    assert timing.largest_cpu_cache() > 0


def test_throttle_readings_are_summarised():
    readings = [(1980, 2619, 60, 400.0, 0x0), (1410, 2619, 83, 700.0, 0x4), (1700, 2619, 70, 500.0, "0x0")]
    s = gpu.summarise_gpu_samples([(*r[:4], gpu.parse_reasons(r[4])) for r in readings], "nvml")
    assert s["sm_clock_mhz_min"] == 1410
    assert s["temperature_c_max"] == 83
    assert s["throttle_reasons"] == ["sw_power_cap"]
    assert s["throttled_share"] == pytest.approx(1 / 3)
    assert gpu.summarise_gpu_samples([], "nvml") is None
    assert gpu.parse_reasons("not hex") is None


def test_accuracy_passes_close_outputs_and_names_the_difference(accuracy):
    import torch

    tol = {"rtol": 1e-3, "atol": 1e-5, "rmse": 1e-3}
    ref = torch.linspace(-1, 1, 64)
    report = accuracy.check_accuracy(ref + 1e-7, ref, tol, "eager")
    assert report["passed"] and report["rule"] == "allclose"
    with pytest.raises(accuracy.AccuracyFail, match="differs from eager"):
        accuracy.check_accuracy(ref * 1.1, ref, tol, "eager")
    with pytest.raises(accuracy.AccuracyFail, match="NaN or Inf"):
        accuracy.check_accuracy(ref / 0.0, ref, tol, "eager")
    with pytest.raises(accuracy.AccuracyFail, match="2 tensors"):
        accuracy.check_accuracy((ref, ref), ref, tol, "eager")
    # Outputs in a dict are compared key by key, in a stable order.
    assert accuracy.check_accuracy({"b": ref, "a": ref * 2}, {"a": ref * 2, "b": ref}, tol, "eager")["passed"]
