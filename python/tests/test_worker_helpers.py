"""Unit tests of the python worker's helpers (python/regress_worker.py):
timing, stop rule, accuracy check, GPU readings. Run by `make test`
through pytest; the worker itself is exercised end to end by the Rust
integration tests.
"""

import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import regress_worker as w  # noqa: E402


@pytest.fixture(scope="module")
def torch():
    """The worker imports torch lazily (main() sets the cache up first)."""
    import torch as t

    w.torch = t
    return t


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
    assert w.finite({"a": [1.0, math.nan, (math.inf, 2)], "b": "x"}) == {"a": [1.0, None, [None, 2]], "b": "x"}


def test_rel_iqr_interpolates_and_is_infinite_when_unknown():
    assert w.rel_iqr([1, 2, 3, 4, 5], 5) == pytest.approx((4 - 2) / 3)
    assert w.rel_iqr([1, 2, 3], 5) == math.inf
    assert w.rel_iqr([0, 0, 0, 1], 2) == math.inf


def test_stop_rule_waits_for_minimums_then_converges_or_runs_out():
    rule = w.StopRule(BUDGET)
    steady = lambda: [1.0] * 20  # noqa: E731
    assert rule.done(5, 0.5, steady) is None  # below min_iters
    assert rule.done(10, 0.05, steady) is None  # below min_time
    assert rule.done(10, 0.2, steady) == "converged"
    noisy = w.StopRule(BUDGET)
    spread = lambda: [1.0, 2.0] * 10  # noqa: E731
    assert noisy.done(10, 0.2, spread) is None
    # Looked at again only on the geometric schedule.
    assert noisy.next_check == 15
    assert noisy.done(12, 0.3, lambda: pytest.fail("looked too early")) is None
    assert noisy.done(12, 1.0, spread) == "max_time"


def test_a_case_that_keeps_recompiling_is_told_apart():
    assert w.recompiling(dropped=8, kept=2, elapsed=1.0, budget=BUDGET) == "recompiling"
    assert w.recompiling(dropped=2, kept=8, elapsed=1.0, budget=BUDGET) is None
    assert w.recompiling(dropped=8, kept=2, elapsed=0.5, budget=BUDGET) is None


def test_host_batches_are_long_enough_for_the_timer(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(w.time, "perf_counter", lambda: clock[0])

    class Phase:
        """A call that takes `seconds` on a clock of its own."""

        prepare = None

        def __init__(self, seconds):
            self.seconds = seconds

        def body(self):
            clock[0] += self.seconds

    assert w.host_batch(Phase(2 * w.MIN_HOST_SAMPLE_S), "cpu") == 1
    # A binary fraction of a second, so the fake clock's sums stay exact.
    short = 2.0**-17
    assert w.host_batch(Phase(short), "cpu") == math.ceil(w.MIN_HOST_SAMPLE_S / short)
    assert w.host_batch(Phase(1e-12), "cpu") == w.MAX_BATCH
    prepared = Phase(0.0)
    prepared.prepare = lambda: None
    assert w.host_batch(prepared, "cpu") == 1


def test_the_flush_buffer_holds_at_least_a_mebibyte_or_nothing():
    assert w.flush_held_bytes(0) == 0
    assert w.flush_held_bytes(1000) == 1 << 20
    assert w.flush_held_bytes(64 << 20) == 64 << 20
    assert w.largest_cpu_cache() > 0


def test_throttle_readings_are_summarised():
    readings = [(1980, 2619, 60, 400.0, 0x0), (1410, 2619, 83, 700.0, 0x4), (1700, 2619, 70, 500.0, "0x0")]
    s = w.summarise_gpu_samples([(*r[:4], w.parse_reasons(r[4])) for r in readings], "nvml")
    assert s["sm_clock_mhz_min"] == 1410
    assert s["temperature_c_max"] == 83
    assert s["throttle_reasons"] == ["sw_power_cap"]
    assert s["throttled_share"] == pytest.approx(1 / 3)
    assert w.summarise_gpu_samples([], "nvml") is None
    assert w.parse_reasons("not hex") is None


def test_accuracy_passes_close_outputs_and_names_the_difference(torch):
    tol = {"rtol": 1e-3, "atol": 1e-5, "rmse": 1e-3}
    ref = torch.linspace(-1, 1, 64)
    report = w.check_accuracy(ref + 1e-7, ref, tol, "eager")
    assert report["passed"] and report["rule"] == "allclose"
    with pytest.raises(w.AccuracyFail, match="differs from eager"):
        w.check_accuracy(ref * 1.1, ref, tol, "eager")
    with pytest.raises(w.AccuracyFail, match="NaN or Inf"):
        w.check_accuracy(ref / 0.0, ref, tol, "eager")
    with pytest.raises(w.AccuracyFail, match="2 tensors"):
        w.check_accuracy((ref, ref), ref, tol, "eager")
    # Outputs in a dict are compared key by key, in a stable order.
    assert w.check_accuracy({"b": ref, "a": ref * 2}, {"a": ref * 2, "b": ref}, tol, "eager")["passed"]
