"""Timing: the warm-up, the one measuring loop, its two clocks (perf_counter
around a batch of calls on the host, CUDA events on the launch stream), the
stop rule it shares with regress, and the cache flush of `l2: cold`.

Imports no torch at module level (the stop rule's tests run without it);
the functions that need it import it themselves.
"""

import math
import os
import time

# A host sample lasts at least this long, and long enough that the clock's
# own cost (a perf_counter pair, the loop, a device synchronisation) is at
# most CLOCK_SHARE of it: torch.utils.benchmark's rule for its blocks.
MIN_HOST_SAMPLE_S = 1e-3
CLOCK_SHARE = 1e-4
# At most this many calls in one batched host sample.
MAX_BATCH = 10_000
# Hard cap on CUDA event pairs kept in flight (about 100 MB of events).
MAX_CUDA_EVENTS = 200_000
# Share of samples that may be dropped for recompiling before the case fails.
MAX_DROPPED_SHARE = 0.5
# The warm-up ends only after this many iterations without a new graph.
STABLE_ITERS = 3
# Warm-up gives up waiting for a stable graph count after this long (the
# case is then flagged `graphs_unstable`).
WARMUP_STABLE_CAP_S = 60.0


def synchronize(device):
    """Waits for the device's queued work (nothing to wait for on the CPU)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    elif device == "mps":
        import torch

        torch.mps.synchronize()


# ---------------------------------------------------------------- cache flush


def cache_flusher(device, policy):
    """For `l2: cold`, a function that overwrites twice the cache before each iteration."""
    if policy != "cold":
        return None, None
    import torch

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


# ---------------------------------------------------------------- stop rule


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


def recompiling(dropped, kept, elapsed, budget):
    """"recompiling" once max_time is spent with most iterations dropped for
    compiling: such a model has no steady state, and the stop rule alone
    would wait for samples that never come (the case then fails)."""
    if elapsed >= budget["max_time"] and dropped > MAX_DROPPED_SHARE * (dropped + kept):
        return "recompiling"
    return None


# ---------------------------------------------------------------- clocks


class HostClock:
    """perf_counter around `batch` calls, with the device synchronised
    before the clock stops: a token is the seconds per call."""

    def __init__(self, device, batch=1):
        self.device = device
        self.batch = batch

    @classmethod
    def sized_for(cls, phase, device, flush):
        """The clock for `phase`, its batch grown until one sample lasts at
        least MIN_HOST_SAMPLE_S and the clock's own cost is at most
        CLOCK_SHARE of it. One call per sample when each needs its untimed
        preparation or a cache flush before it."""
        clock = cls(device)
        if phase.prepare is not None or flush is not None:
            return clock
        overhead = sorted(clock.cost() for _ in range(5))[2]
        need = max(MIN_HOST_SAMPLE_S, overhead / CLOCK_SHARE)
        while clock.batch < MAX_BATCH:
            clock.start()
            for _ in range(clock.batch):
                phase.body()
            block = clock.stop() * clock.batch
            if block >= need:
                break
            # Grow towards the need in one step when the block is long
            # enough to predict from, else double.
            grow = need / block if block >= 0.1 * need else 2.0
            clock.batch = min(MAX_BATCH, max(clock.batch + 1, math.ceil(clock.batch * grow * 1.1)))
        return clock

    def cost(self):
        """Seconds an empty sample takes: the clock's own cost."""
        self.start()
        synchronize(self.device)
        return time.perf_counter() - self._t0

    def after_flush(self):
        synchronize(self.device)

    def start(self):
        self._t0 = time.perf_counter()

    def stop(self):
        synchronize(self.device)
        return (time.perf_counter() - self._t0) / self.batch

    def seconds(self, tokens):
        return tokens

    def full(self, kept):
        return None

    def finish(self, tokens):
        return tokens


class CudaClock:
    """A CUDA event pair around each call on the launch stream: a token is
    the pair, resolved (one synchronisation) only when the stop rule looks
    at the spread, and at the end."""

    batch = 1

    def __init__(self):
        import torch

        self._event = torch.cuda.Event

    def after_flush(self):
        pass

    def start(self):
        self._begin, self._end = self._event(enable_timing=True), self._event(enable_timing=True)
        # CUDA creates an event at its first record: recording `end` once
        # before `begin` keeps that creation (about a microsecond) out of
        # the timed region; the second record moves it after the body.
        self._end.record()
        self._begin.record()

    def stop(self):
        self._end.record()
        return self._begin, self._end

    def seconds(self, tokens):
        tokens[-1][1].synchronize()
        return self.elapsed(tokens)

    def full(self, kept):
        return "max_events" if kept >= MAX_CUDA_EVENTS else None

    def finish(self, tokens):
        import torch

        torch.cuda.synchronize()
        return self.elapsed(tokens)

    @staticmethod
    def elapsed(tokens):
        """Seconds between each pair's events, once they have happened."""
        return [b.elapsed_time(e) / 1e3 for b, e in tokens]


# ---------------------------------------------------------------- loops


def warm_up(phase, device, warm, min_iters, watch):
    """Iterates until `min_iters` and warm["min_time"] are both met and, for
    a compiled model, no new graph has come for STABLE_ITERS iterations
    (or WARMUP_STABLE_CAP_S is spent). Returns (iterations, seconds spent
    in the iterations that compiled, whether the graphs never settled)."""
    n, last_change, t_start = 0, 0, time.perf_counter()
    graphs = watch.graphs() if watch else 0
    compiling = 0.0
    unstable = False
    while True:
        t_iter = time.perf_counter()
        phase.iterate()
        n += 1
        if watch and watch.graphs() != graphs:
            synchronize(device)
            compiling += time.perf_counter() - t_iter
            graphs, last_change = watch.graphs(), n
        elapsed = time.perf_counter() - t_start
        settled = watch is None or n - last_change >= STABLE_ITERS
        if n >= min_iters and elapsed >= warm["min_time"] and settled:
            break
        if n >= min_iters and elapsed >= warm["min_time"] and elapsed >= WARMUP_STABLE_CAP_S:
            unstable = True
            break
    synchronize(device)
    return n, compiling, unstable


def measure(phase, clock, budget, flush, watch):
    """The measuring loop: the untimed preparation and cache flush, then
    the clock around the phase's body, until the stop rule (or the
    clock's capacity, or a model that never stops compiling) ends it.
    Iterations during which a graph was compiled are dropped and counted.

    Returns (seconds per call of each sample, dropped, batch, why it stopped)."""
    kept, dropped = [], 0
    rule = StopRule(budget)
    batch = clock.batch
    start = time.perf_counter()
    while True:
        if phase.prepare is not None:
            phase.prepare()
        if flush is not None:
            flush()
            clock.after_flush()
        graphs = watch.graphs() if watch else 0
        clock.start()
        if batch == 1:
            phase.body()
        else:
            for _ in range(batch):
                phase.body()
        token = clock.stop()
        if watch and watch.graphs() != graphs:
            dropped += 1
        else:
            kept.append(token)
        elapsed = time.perf_counter() - start
        stop = rule.done(len(kept), elapsed, lambda: clock.seconds(kept)) if kept else None
        stop = stop or recompiling(dropped, len(kept), elapsed, budget) or clock.full(len(kept))
        if stop:
            return clock.finish(kept), dropped, batch, stop
