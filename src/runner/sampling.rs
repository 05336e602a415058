//! The one stop rule for sampling, honoured by every backend: take at least
//! `min_iters` samples over at least `min_time`; then stop as soon as the
//! relative IQR is at or below `target_rel_iqr`, and in any case once
//! `max_time` is spent (with two samples at least, the fewest a spread
//! needs).
//!
//! The relative IQR is looked at on a geometric schedule (at `min_iters`,
//! then each time the count has grown by a quarter), so the rule costs
//! O(n log n) however long a case runs, and a CUDA backend only has to
//! synchronise at those points. The python worker implements the same rule
//! in `StopRule` (python/regress_worker.py), with the constants below sent
//! in each request; a test feeds both the same traces and checks that they
//! stop on the same sample.
//!
//! Time comes from a `Clock`, so tests drive the rule, and each backend's
//! loop, on a synthetic clock.

use std::time::{Duration, Instant};

use crate::spec::{Measure, Warmup};

/// Growth of the sample count between two looks at the relative IQR.
pub const CHECK_GROWTH: f64 = 1.25;
/// Fewest samples a stop at `max_time` leaves: one spread needs two.
pub const MIN_SAMPLES: usize = 2;
/// Fewest samples whose quartiles mean anything; below, the IQR is unknown.
pub const MIN_IQR_SAMPLES: usize = 4;

/// The measuring budget of one process, from the pipeline's `runner.measure`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    pub min_iters: u64,
    pub min_time: Duration,
    pub max_time: Duration,
    /// Relative IQR (IQR / median) at which sampling may stop, as a fraction.
    pub target_rel_iqr: f64,
}

impl From<&Measure> for StopRule {
    fn from(m: &Measure) -> Self {
        StopRule {
            min_iters: m.min_iters,
            min_time: m.min_time,
            max_time: m.max_time,
            target_rel_iqr: m.target_rel_iqr,
        }
    }
}

/// Why sampling stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The minimums were met and the spread was small enough.
    Converged,
    /// `max_time` was spent.
    MaxTime,
}

impl Stop {
    /// The spelling recorded in diagnostics (and used by the python worker).
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Converged => "converged",
            Stop::MaxTime => "max_time",
        }
    }
}

/// The rule's state over one process: when it looks at the spread next.
#[derive(Debug, Clone)]
pub struct Sampler {
    rule: StopRule,
    next_check: usize,
}

impl Sampler {
    pub fn new(rule: StopRule) -> Sampler {
        Sampler {
            rule,
            next_check: rule.min_iters as usize,
        }
    }

    /// After each sample: `Some` when sampling should stop. `n` samples have
    /// been taken over `elapsed`; `samples` is called only when the rule
    /// looks at the spread (a CUDA backend resolves its events then).
    pub fn done<'a>(
        &mut self,
        n: usize,
        elapsed: Duration,
        samples: impl FnOnce() -> &'a [f64],
    ) -> Option<Stop> {
        let r = &self.rule;
        if n >= MIN_SAMPLES && elapsed >= r.max_time {
            return Some(Stop::MaxTime);
        }
        if (n as u64) < r.min_iters || elapsed < r.min_time || n < self.next_check {
            return None;
        }
        if rel_iqr(samples()) <= r.target_rel_iqr {
            return Some(Stop::Converged);
        }
        self.next_check = (n + 1).max((n as f64 * CHECK_GROWTH) as usize);
        None
    }
}

/// Whether warm-up may end: both minimums met.
pub fn warmed_up(warmup: &Warmup, iters: u64, elapsed: Duration) -> bool {
    iters >= warmup.min_iters && elapsed >= warmup.min_time
}

/// (p75 − p25) / median with quartiles by linear interpolation (Hyndman &
/// Fan definition 7, as `stats::quantile` and the python worker compute
/// them); infinite below four samples or for a non-positive median, so an
/// unknown spread never passes for a small one.
pub fn rel_iqr(samples: &[f64]) -> f64 {
    if samples.len() < MIN_IQR_SAMPLES {
        return f64::INFINITY;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (s.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(s.len() - 1);
        s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
    };
    let median = q(0.5);
    if median > 0.0 {
        (q(0.75) - q(0.25)) / median
    } else {
        f64::INFINITY
    }
}

/// What one process's measuring loop produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// Seconds per iteration.
    pub samples: Vec<f64>,
    pub stop: Stop,
    pub warmup_iters: u64,
}

/// Warm-up until both of `warmup`'s minimums are met, then iterations until
/// the stop rule says enough: the loop of a backend that times iterations
/// itself (the native worker). `iteration` runs one iteration and returns
/// its time in seconds; the loop ends early (`None`) when `stop` is set.
pub fn measure_loop<E>(
    warmup: &Warmup,
    rule: StopRule,
    clock: &mut dyn Clock,
    stop: &super::StopFlag,
    mut iteration: impl FnMut() -> Result<f64, E>,
) -> Result<Option<Sampled>, E> {
    let started = clock.now();
    let mut warmup_iters = 0;
    while !warmed_up(warmup, warmup_iters, clock.now() - started) {
        if stop.is_set() {
            return Ok(None);
        }
        iteration()?;
        warmup_iters += 1;
    }
    let mut sampler = Sampler::new(rule);
    let mut samples = Vec::new();
    let started = clock.now();
    loop {
        if stop.is_set() {
            return Ok(None);
        }
        samples.push(iteration()?);
        let elapsed = clock.now() - started;
        if let Some(stop) = sampler.done(samples.len(), elapsed, || &samples) {
            return Ok(Some(Sampled {
                samples,
                stop,
                warmup_iters,
            }));
        }
    }
}

/// Where a backend's loop reads the time.
pub trait Clock: Send {
    /// Time since an arbitrary origin fixed for this clock.
    fn now(&mut self) -> Duration;
}

/// The real, monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct WallClock(Instant);

impl Default for WallClock {
    fn default() -> Self {
        WallClock(Instant::now())
    }
}

impl Clock for WallClock {
    fn now(&mut self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that advances by a fixed step each time it is read: for tests
/// that drive a backend's loop independently of how fast it really is.
#[derive(Debug, Clone, Copy)]
pub struct StepClock {
    pub now: Duration,
    pub step: Duration,
}

impl Clock for StepClock {
    fn now(&mut self) -> Duration {
        self.now += self.step;
        self.now
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rule(min_iters: u64, min_ms: u64, max_ms: u64, target: f64) -> StopRule {
        StopRule {
            min_iters,
            min_time: Duration::from_millis(min_ms),
            max_time: Duration::from_millis(max_ms),
            target_rel_iqr: target,
        }
    }

    /// Where the rule stops on a trace of (sample, elapsed after it).
    pub(crate) fn stop_on(rule: StopRule, trace: &[(f64, Duration)]) -> Option<(usize, Stop)> {
        let mut sampler = Sampler::new(rule);
        let mut samples = Vec::new();
        for &(x, elapsed) in trace {
            samples.push(x);
            if let Some(stop) = sampler.done(samples.len(), elapsed, || &samples) {
                return Some((samples.len(), stop));
            }
        }
        None
    }

    /// Deterministic noisy samples around 1 ms: `cv` relative spread,
    /// clock advancing by each sample plus 10 µs of overhead.
    pub(crate) fn trace(n: usize, cv: f64, seed: u64) -> Vec<(f64, Duration)> {
        let mut state = seed;
        let mut t = Duration::ZERO;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                let x = 1e-3 * (1.0 + cv * (2.0 * u - 1.0));
                t += Duration::from_secs_f64(x + 1e-5);
                (x, t)
            })
            .collect()
    }

    #[test]
    fn minimums_hold_before_any_early_stop() {
        let quiet = trace(10_000, 0.001, 1);
        // Converges at the first look, which waits for both minimums.
        let (n, stop) = stop_on(rule(30, 100, 10_000, 0.02), &quiet).unwrap();
        assert_eq!(stop, Stop::Converged);
        assert!(
            n >= 30 && quiet[n - 1].1 >= Duration::from_millis(100),
            "{n}"
        );
        assert!(quiet[n - 2].1 < Duration::from_millis(100), "{n}");
        let (n, _) = stop_on(rule(200, 1, 10_000, 0.02), &quiet).unwrap();
        assert_eq!(n, 200);
    }

    #[test]
    fn noisy_samples_run_to_max_time_and_a_zero_target_never_stops_early() {
        let noisy = trace(100_000, 0.5, 2);
        let (n, stop) = stop_on(rule(10, 10, 300, 0.02), &noisy).unwrap();
        assert_eq!(stop, Stop::MaxTime);
        assert!(
            noisy[n - 1].1 >= Duration::from_millis(300)
                && noisy[n - 2].1 < Duration::from_millis(300)
        );
        let quiet = trace(100_000, 0.001, 3);
        let (_, stop) = stop_on(rule(10, 10, 300, 0.0), &quiet).unwrap();
        assert_eq!(stop, Stop::MaxTime);
    }

    #[test]
    fn max_time_overrides_the_minimums_but_keeps_two_samples() {
        let slow = [(1.0, Duration::from_secs(1)), (1.0, Duration::from_secs(2))];
        assert_eq!(
            stop_on(rule(30, 5_000, 500, 0.02), &slow),
            Some((2, Stop::MaxTime))
        );
    }

    #[test]
    fn the_spread_is_looked_at_on_a_geometric_schedule() {
        // A spread that never meets a zero target: every look is recorded.
        let mut looks = Vec::new();
        let mut sampler = Sampler::new(rule(8, 0, 1_000_000, 0.0));
        let samples: Vec<f64> = (0..100).map(|i| 1.0 + (i % 2) as f64).collect();
        for n in 1..=100 {
            let _ = sampler.done(n, Duration::from_millis(n as u64), || {
                looks.push(n);
                &samples[..n]
            });
        }
        assert_eq!(looks, [8, 10, 12, 15, 18, 22, 27, 33, 41, 51, 63, 78, 97]);
    }

    #[test]
    fn rel_iqr_matches_type_7_quartiles() {
        assert_eq!(rel_iqr(&[1.0, 2.0, 3.0]), f64::INFINITY);
        // Quartiles of 1..=5 are 2 and 4, median 3.
        assert!((rel_iqr(&[5.0, 1.0, 4.0, 2.0, 3.0]) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(rel_iqr(&[0.0, 0.0, 0.0, 0.0]), f64::INFINITY);
    }
}
