//! From samples to evidence: which test fits the data, and what the change
//! is with its interval and p-value. `decision` turns evidence into a
//! named outcome.

use serde::{Deserialize, Serialize};

use super::quantile;
use super::reference::against_level;
use super::states::fastest_state;
use super::states::MAX_STATE_DISTANCE;
use super::welch::mean_var;
use super::welch::{finish, TTest};
use super::{
    check_positive, mann_whitney_points, pooled_t, run_to_run_variance, student_t, Points,
    StatsError,
};

/// Power at which the minimal detectable change is stated (the usual 80 %).
pub const MDE_POWER: f64 = 0.8;

/// The test a comparison used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Student's pooled t on per-process locations (both sides ≥ 2 processes).
    PooledProcesses,
    /// Head's process locations against the level of the base branch: the
    /// base run and earlier runs since the last change point
    /// (`reference::against_level`).
    HistoryLevel,
    /// Pooled t on per-process locations with variance from earlier runs
    /// (when those give no level to test against).
    PooledHistory,
    /// Pooled t whose variance also drew on the spread inside processes;
    /// no longer used, kept so that older JSON reports read back.
    PooledWithin,
    /// Welch's t on the two sides' locations with the variance their own
    /// samples give, one process on a side and no history: run-to-run
    /// variance is unobserved, and a side in one clock state against a side
    /// in two is read the way that blames the least on the change.
    WithinProcess,
    /// Mann–Whitney U on log iterations; no longer used, kept so that older
    /// JSON reports read back.
    MannWhitneyIterations,
    /// Too few samples for any test.
    None,
}

/// What the samples say about the change head/base, on the log scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evidence {
    pub method: Method,
    /// Estimated ln(head / base).
    pub log_ratio: f64,
    /// (1 − alpha) interval of the log ratio.
    pub lo: f64,
    pub hi: f64,
    /// Two-sided p-value of "no change".
    pub p: f64,
    /// Smallest |log ratio| detectable at alpha with 80 % power.
    pub mde: f64,
    /// With run-to-run variance unobserved, changes up to this (log) are
    /// indistinguishable from moving to another process; 0 otherwise.
    pub unobserved_spread: f64,
}

impl Evidence {
    /// The same evidence about 1/x: the log ratio and its interval change
    /// sign. Rates (higher is better) are tested as time per item, so that
    /// the trimmed location still drops the slow iterations, and turned back
    /// with this.
    pub fn reciprocal(self) -> Evidence {
        Evidence {
            log_ratio: -self.log_ratio,
            lo: -self.hi,
            hi: -self.lo,
            ..self
        }
    }
}

/// Fraction of a process's samples dropped from the fast end.
const TRIM_FAST: f64 = 0.1;
/// Fraction dropped from the slow end, where benchmark noise lives.
const TRIM_SLOW: f64 = 0.3;
/// Samples dropped from the slow end at least: with 10 samples and 5 % slow
/// outliers, three or more outliers in one process happen 1 % of the time.
const MIN_TRIM_SLOW: usize = 3;

/// One process's location with the sampling variance of that location,
/// estimated from the process's own samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessEstimate {
    /// Trimmed mean of the log samples (`process_location`).
    pub location: f64,
    /// Estimated variance of `location` over repeated samples of this
    /// process; 0 with fewer than two samples kept.
    pub var: f64,
    /// Degrees of freedom of `var`: samples kept − 1.
    pub df: f64,
    /// When the samples fall (or may fall) into clock states (`states`),
    /// how far above the fastest the next slower state lies (log); `None`
    /// for one group.
    pub slower: Option<f64>,
    /// Whether `location` is the fastest state's alone.
    pub fastest: bool,
}

/// The location of one process: the mean of its log samples after dropping
/// the fastest 10 % and the slowest 30 % (at least three, never past the
/// median).
///
/// Benchmark noise is one-sided: interrupts, clock drops and contention only
/// ever slow an iteration down, so the trim leans to the slow end. Like the
/// median it shrugs off slow outliers, but it keeps 60 % of the samples and
/// is more efficient: in `examples/verdict_quality.rs` (3 processes of 30
/// samples, no history) it detects a 5 % change at 5 % noise 83 % of the
/// time where process medians manage 72 %, and 77 % against 64 % under
/// drifting clock states. Any location-equivariant
/// estimator moves with a true shift, so the ratio of two sides stays
/// unbiased. Reference for trimmed means: Wilcox, *Introduction to Robust
/// Estimation and Hypothesis Testing*, 4th ed., §3.2. Samples must be
/// positive.
pub fn process_location(samples: &[f64]) -> Result<f64, StatsError> {
    Ok(process_estimate(samples)?.location)
}

/// `process_location` with its variance. When the samples fall into
/// clock states (`states::fastest_state`), the location is that of the
/// fastest state alone, whose level does not depend on how much of the run
/// the clocks spent slow. Within the state (or the whole sample): Yuen's estimate for a trimmed
/// mean, (n − 1)·s²_w / (h·(h − 1)) where s²_w is the variance of the
/// samples winsorised at the kept range and h the number kept, with h − 1
/// degrees of freedom (Yuen 1974, "The two-sample trimmed t for unequal
/// population variances", Biometrika 61(1); Wilcox 4th ed. §4.1). The
/// asymmetric trim uses the same formula with its own cut points.
pub fn process_estimate(samples: &[f64]) -> Result<ProcessEstimate, StatsError> {
    if samples.is_empty() {
        return Err(StatsError::Empty);
    }
    let mut logs = logs(samples)?;
    logs.sort_by(f64::total_cmp);
    let logs = without_far_outliers(&logs);
    let Some(state) = fastest_state(logs) else {
        return Ok(trimmed(logs));
    };
    if !state.confirmed {
        // States may be there, too few samples to measure the fastest
        // alone: the location stays over every sample, and a comparison
        // allows for the sides sitting in different states.
        let mut e = trimmed(logs);
        let fast = logs[..state.end].iter().sum::<f64>() / state.end as f64;
        e.slower = Some(state.next - fast);
        return Ok(e);
    }
    let mut e = trimmed(&logs[..state.end]);
    e.fastest = true;
    if e.df < 1.0 {
        // Too few samples in the fastest state for their own spread: the
        // spread inside the states stands for it.
        e.var = state.sd.powi(2) / state.end as f64;
        e.df = state.df as f64;
    }
    e.slower = Some(state.next - e.location);
    Ok(e)
}

/// Robust standard deviations (1.4826 · median absolute deviation) above
/// the median past which a sample is an interruption, not a timing of the
/// code: under normal noise a sample that far out happens less than once
/// in 10²². Iterations 1.5–3× slower at 2 % noise lie 20 or more out. A
/// sample within `states::MAX_STATE_DISTANCE` of the median may be a clock
/// state and always stays, however tight the rest.
const FAR_OUTLIER_MADS: f64 = 10.0;

/// Sorted log samples without the slow ones past `FAR_OUTLIER_MADS`. The
/// trimmed mean already drops the slowest 30 %, but a short process can
/// catch more interruptions than that (four of ten 1.5–3× slower happen
/// about once in a thousand processes at a 5 % rate), and each one kept
/// moves the location by several percent. Samples that do not spread at
/// all (a coarse timer's ties) are left as they are.
fn without_far_outliers(sorted: &[f64]) -> &[f64] {
    let n = sorted.len();
    if n < 4 {
        return sorted;
    }
    let median = quantile(sorted, 0.5);
    let mut deviations: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let mad = quantile(&deviations, 0.5);
    if mad <= 0.0 {
        return sorted;
    }
    let cut = median + (FAR_OUTLIER_MADS * 1.4826 * mad).max(MAX_STATE_DISTANCE.ln_1p());
    let end = sorted.partition_point(|x| *x <= cut);
    &sorted[..end.max(1)]
}

/// The asymmetric trimmed mean of sorted log samples with Yuen's variance.
fn trimmed(logs: &[f64]) -> ProcessEstimate {
    let n = logs.len();
    let slow = ((TRIM_SLOW * n as f64).floor() as usize)
        .max(MIN_TRIM_SLOW)
        .min((n - 1) / 2);
    let fast = ((TRIM_FAST * n as f64).floor() as usize).min(n - 1 - slow);
    let kept = &logs[fast..n - slow];
    let h = kept.len();
    let location = kept.iter().sum::<f64>() / h as f64;
    if h < 2 {
        return ProcessEstimate {
            location,
            var: 0.0,
            df: 0.0,
            slower: None,
            fastest: false,
        };
    }
    let (low, high) = (kept[0], kept[h - 1]);
    let winsorised: Vec<f64> = logs.iter().map(|x| x.clamp(low, high)).collect();
    let (_, s2w) = mean_var(&winsorised);
    ProcessEstimate {
        location,
        var: (n - 1) as f64 * s2w / (h * (h - 1)) as f64,
        df: (h - 1) as f64,
        slower: None,
        fastest: false,
    }
}

/// One process as the tests take it: its location with that location's
/// variance (exact, from every sample), and its samples as points (every
/// sample, or order statistics standing for them; see `Points`).
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub estimate: ProcessEstimate,
    pub points: Points,
}

impl Process {
    /// A process from all its samples, which must be positive.
    pub fn of(samples: &[f64]) -> Result<Process, StatsError> {
        Ok(Process {
            estimate: process_estimate(samples)?,
            points: Points::exact(samples)?,
        })
    }
}

/// The processes of one side, empty ones left out.
fn processes(side: &[Vec<f64>]) -> Result<Vec<Process>, StatsError> {
    side.iter()
        .filter(|p| !p.is_empty())
        .map(|p| Process::of(p))
        .collect()
}

/// Every iteration of a side on the log scale, as points.
fn log_points(side: &[Process]) -> Result<Points, StatsError> {
    for p in side {
        check_positive(p.points.values())?;
    }
    let logged: Vec<Points> = side.iter().map(|p| p.points.map(f64::ln)).collect();
    Ok(Points::union(&logged))
}

fn logs(xs: &[f64]) -> Result<Vec<f64>, StatsError> {
    check_positive(xs)?;
    Ok(xs.iter().map(|x| x.ln()).collect())
}

/// Weighs per-process samples of base and head (positive values, one list
/// per process) and picks the test that fits. With `history` (earlier runs
/// of the base branch on this machine: per commit, the per-process
/// locations on the log scale, nearest commit first), head is tested
/// against the level of the base branch (`reference::against_level`); when
/// the history gives no level it still lends its run-to-run variance to a
/// pooled t against the base run. Without history, when both sides have
/// several processes, Student's pooled t on process locations
/// (`process_location`); otherwise Mann–Whitney U on the iterations with
/// the caveat that run-to-run variance is unobserved.
///
/// Why pooled and not Welch between the sides: the hypothesis under test is
/// "the change did nothing", and then both sides are runs of the same code
/// on the same machine, so their variances are equal and Student's test is
/// exact. Welch's degrees of freedom collapse towards n − 1 when one side
/// happens to be tight, which with three processes per side doubles the
/// critical value and hides even a 3× slowdown. `welch_t` remains for
/// callers that compare different machines.
///
/// The process-level tests without a level must be borne out by
/// Mann–Whitney U on the iterations (p is the larger of the two), which
/// keeps one disturbed process from passing for a change. The spread
/// inside processes never stands in for the spread between them: when
/// processes happen to agree, that pooling gave p-values far smaller than
/// three processes support (in `examples/verdict_quality.rs`, scenario e,
/// p < 2·10⁻⁵ 35 times as often as it should).
pub fn evidence(
    base: &[Vec<f64>],
    head: &[Vec<f64>],
    history: &[Vec<f64>],
    alpha: f64,
) -> Result<Evidence, StatsError> {
    evidence_of(&processes(base)?, &processes(head)?, history, alpha)
}

/// `evidence` on processes whose samples may be kept as points standing
/// for more samples (a record's compact form): the process-level tests use
/// the exact locations and variances, the rank tests the true counts.
pub fn evidence_of(
    base: &[Process],
    head: &[Process],
    history: &[Vec<f64>],
    alpha: f64,
) -> Result<Evidence, StatsError> {
    let be: Vec<ProcessEstimate> = base.iter().map(|p| p.estimate).collect();
    let he: Vec<ProcessEstimate> = head.iter().map(|p| p.estimate).collect();
    let bm: Vec<f64> = be.iter().map(|e| e.location).collect();
    let hm: Vec<f64> = he.iter().map(|e| e.location).collect();
    if bm.is_empty() || hm.is_empty() {
        return Err(StatsError::Empty);
    }
    let t_evidence = |t: super::TTest, method| {
        let (lo, hi) = t.interval(alpha);
        Evidence {
            method,
            log_ratio: t.diff,
            lo,
            hi,
            p: t.p,
            mde: t.min_detectable(alpha, MDE_POWER),
            unobserved_spread: 0.0,
        }
    };
    if let Some(r) = against_level(&bm, &hm, history) {
        let (t, spread) = allow_for_states(r.test, &be, &he);
        let mut e = t_evidence(t, Method::HistoryLevel);
        e.unobserved_spread = spread;
        return Ok(e);
    }
    let (b, h) = (log_points(base)?, log_points(head)?);
    let (m, n) = (b.total(), h.total());
    // A process-level test must also be borne out by the iterations: p is
    // the larger of the two (an intersection–union test, Berger 1982), so a
    // single disturbed process cannot pass for a change.
    // Only where processes hold several samples each: metrics with one value
    // per process (compile time, peak memory) have no iterations to ask.
    let corroborated = |mut e: Evidence| -> Result<Evidence, StatsError> {
        if m > bm.len() as f64 && n > hm.len() as f64 {
            e.p = e.p.max(mann_whitney_points(&b, &h)?.p);
        }
        Ok(e)
    };
    if let Some(prior) = run_to_run_variance(history) {
        return corroborated(t_evidence(
            pooled_t(&bm, &hm, prior)?,
            Method::PooledHistory,
        ));
    }
    if bm.len() >= 2 && hm.len() >= 2 {
        return corroborated(t_evidence(student_t(&bm, &hm)?, Method::PooledProcesses));
    }
    if m < 2.0 || n < 2.0 {
        return Ok(Evidence {
            method: Method::None,
            log_ratio: hm.iter().sum::<f64>() / hm.len() as f64
                - bm.iter().sum::<f64>() / bm.len() as f64,
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
            p: 1.0,
            mde: f64::INFINITY,
            unobserved_spread: 0.0,
        });
    }
    let (t, spread) = allow_for_states(within_t(&be, &he), &be, &he);
    let mut e = t_evidence(t, Method::WithinProcess);
    e.unobserved_spread = spread;
    Ok(e)
}

/// Welch's t on the mean process location of each side, with the variance
/// of those means from the processes' own samples (Welch–Satterthwaite
/// degrees of freedom).
fn within_t(be: &[ProcessEstimate], he: &[ProcessEstimate]) -> TTest {
    let side = |es: &[ProcessEstimate]| {
        let k = es.len() as f64;
        let mean = es.iter().map(|e| e.location).sum::<f64>() / k;
        let var = es.iter().map(|e| e.var).sum::<f64>() / (k * k);
        let df: f64 = es.iter().map(|e| e.df).sum();
        (mean, var, df)
    };
    let (mb, vb, db) = side(be);
    let (mh, vh, dh) = side(he);
    let var = vb + vh;
    let df = if var > 0.0 {
        let part = |v: f64, d: f64| if d > 0.0 { v * v / d } else { 0.0 };
        let denom = part(vb, db) + part(vh, dh);
        if denom > 0.0 {
            var * var / denom
        } else {
            1.0
        }
    } else {
        (db + dh).max(1.0)
    };
    finish(mh - mb, var.sqrt(), df.max(1.0))
}

/// The mean distance from the fastest clock state to the next of the
/// processes of a side that showed states; `None` when none did.
fn states_offset(side: &[ProcessEstimate]) -> Option<f64> {
    let offs: Vec<f64> = side.iter().filter_map(|e| e.slower).collect();
    (!offs.is_empty()).then(|| offs.iter().sum::<f64>() / offs.len() as f64)
}

/// `t` unless clock states make it ambiguous. When every process of both
/// sides was measured in its fastest state, the sides compare like with
/// like. Otherwise, where a side showed (or may have shown) states, the
/// other side's level may belong to either of them: under "the change did
/// nothing" head may sit in the base's slower state (difference − offset)
/// or base in head's (difference + offset), and the test takes the
/// reading that blames the change least. A process in one state against
/// one in two is what makes unchanged single processes look 8 % apart.
/// Changes within the distance between the states cannot be told from a
/// different mix of them: that distance comes back as the spread the
/// verdict must clear (`Evidence::unobserved_spread`), 0 when no side
/// showed states.
fn allow_for_states(t: TTest, base: &[ProcessEstimate], head: &[ProcessEstimate]) -> (TTest, f64) {
    if base.iter().chain(head).all(|e| e.fastest) {
        return (t, 0.0);
    }
    let offsets = [states_offset(base), states_offset(head)];
    let spread = offsets.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
    let mut best = t;
    let readings = [
        offsets[0].map(|off| t.diff - off),
        offsets[1].map(|off| t.diff + off),
    ];
    for diff in readings.into_iter().flatten() {
        if diff.abs() < best.diff.abs() {
            best = finish(diff, t.se, t.df);
        }
    }
    (best, spread)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{decide, Decision, Direction};

    /// Three processes of 30 samples: `noise` inside each, process `p` of
    /// a side shifted by `shifts[p]`.
    fn processes(level: f64, noise: f64, shifts: [f64; 3]) -> Vec<Vec<f64>> {
        shifts
            .iter()
            .map(|s| {
                (0..30)
                    .map(|i| level * (1.0 + s) * (1.0 + noise * ((i * 7 % 30) as f64 / 29.0 - 0.5)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_spread_inside_processes_never_stands_for_the_spread_between() {
        // ±10 % inside every process, processes ±1.5 % apart: the processes
        // happen to agree with their samples, yet three of them per side
        // are all there is to know run-to-run variance from.
        let shifts = [-0.015, 0.0, 0.015];
        let base = processes(1.0, 0.2, shifts);
        let head = processes(1.05, 0.2, shifts);
        let e = evidence(&base, &head, &[], 0.01).unwrap();
        assert_eq!(e.method, Method::PooledProcesses);
        let locations = |side: &[Vec<f64>]| -> Vec<f64> {
            side.iter().map(|p| process_location(p).unwrap()).collect()
        };
        let alone = student_t(&locations(&base), &locations(&head)).unwrap();
        assert!(e.p >= alone.p, "{} < {}", e.p, alone.p);
        assert!(e.p > 0.01, "{}", e.p);
    }

    /// `n` log-evenly spread samples around `level`, standard deviation
    /// about `sd` on the log scale, in a scrambled order.
    fn spread(level: f64, sd: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let u = ((i * 7 + 3) % n) as f64 + 0.5;
                level * (sd * 3f64.sqrt() * (2.0 * u / n as f64 - 1.0)).exp()
            })
            .collect()
    }

    fn verdict(base: &[Vec<f64>], head: &[Vec<f64>]) -> (Decision, Evidence) {
        let e = evidence(base, head, &[], 0.01).unwrap();
        (decide(&e, e.p, 0.03, 0.01, Direction::LowerIsBetter), e)
    }

    #[test]
    fn clock_states_compare_fastest_with_fastest() {
        // Base spent 60 % of its run in the slow state (×1.08), head 30 %,
        // and head is 5 % slower in both.
        let mut base = spread(1.0, 0.01, 12);
        base.extend(spread(1.08, 0.01, 18));
        let mut head = spread(1.05, 0.01, 21);
        head.extend(spread(1.05 * 1.08, 0.01, 9));
        let (v, e) = verdict(&[base.clone()], &[head]);
        assert_eq!(v, Decision::Regressed, "{e:?}");
        assert!((e.log_ratio - 1.05f64.ln()).abs() < 0.005, "{e:?}");
        // Unchanged code with another share of slow iterations.
        let mut same = spread(1.0, 0.01, 24);
        same.extend(spread(1.08, 0.01, 6));
        let (v, e) = verdict(&[base], &[same]);
        assert_eq!(v, Decision::Unchanged, "{e:?}");
    }

    #[test]
    fn a_run_all_in_the_slow_state_is_not_a_regression() {
        // Head never left the slow clock state; base showed both. Same code.
        let mut base = spread(1.0, 0.01, 12);
        base.extend(spread(1.08, 0.01, 18));
        let head = spread(1.08, 0.01, 30);
        let (v, e) = verdict(&[base.clone()], &[head]);
        assert!(
            matches!(v, Decision::Inconclusive | Decision::Unchanged),
            "{v:?} {e:?}"
        );
        assert!(e.log_ratio.abs() < 0.01, "{e:?}");
        // Head all in a state 20 % slower than either of base's: regressed.
        let head = spread(1.2 * 1.08, 0.01, 30);
        assert_eq!(verdict(&[base], &[head]).0, Decision::Regressed);
    }

    #[test]
    fn one_process_tells_more_with_more_samples() {
        // 4 % slower at 5 % noise: ten samples a side cannot tell, a
        // hundred can.
        let few = verdict(&[spread(1.0, 0.05, 10)], &[spread(1.04, 0.05, 10)]);
        assert_eq!(few.0, Decision::Inconclusive, "{:?}", few.1);
        let many = verdict(&[spread(1.0, 0.05, 100)], &[spread(1.04, 0.05, 100)]);
        assert_eq!(many.0, Decision::Regressed, "{:?}", many.1);
        assert_eq!(many.1.method, Method::WithinProcess);
        assert!(many.1.mde < few.1.mde);
    }

    #[test]
    fn interruptions_far_beyond_the_spread_leave_the_location() {
        let sorted_logs = |xs: &[f64]| {
            let mut l: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
            l.sort_by(f64::total_cmp);
            l
        };
        // Six of thirty iterations 1.5–3× slower.
        let mut xs = spread(1.0, 0.02, 24);
        xs.extend([1.5, 1.8, 2.1, 2.4, 2.7, 3.0]);
        assert_eq!(without_far_outliers(&sorted_logs(&xs)).len(), 24);
        // A slow clock state 8 % up is no outlier, however tight the rest.
        let mut xs = spread(1.0, 0.001, 6);
        xs.extend([1.08, 1.08, 1.08, 1.08]);
        assert_eq!(without_far_outliers(&sorted_logs(&xs)).len(), 10);
        // A timer's ties (no spread at all) are left alone.
        let ties = [0.0, 0.0, 0.0, 0.0, 0.0, 0.7];
        assert_eq!(without_far_outliers(&ties).len(), 6);
    }

    #[test]
    fn process_location_trims_outliers() {
        let clean = process_location(&[1.0, 1.0, 1.0, 1.0, 1.0]).unwrap();
        assert_eq!(clean, 0.0);
        // Two of five samples 3× slower are trimmed away entirely.
        let dirty = process_location(&[1.0, 3.0, 1.0, 1.0, 3.0]).unwrap();
        assert_eq!(dirty, 0.0);
        // Ten samples: the fastest one and the slowest three go.
        let xs: Vec<f64> = (1..=10).map(|i| (i as f64).exp()).collect();
        let expected = (2..=7).map(|i| i as f64).sum::<f64>() / 6.0;
        assert!((process_location(&xs).unwrap() - expected).abs() < 1e-12);
        assert!(process_location(&[]).is_err());
        assert!(process_location(&[1.0, -1.0]).is_err());
    }

    #[test]
    fn one_value_per_process_is_judged_by_the_t_test_alone() {
        // Peak memory: one value per process, a steady 20 % increase.
        let base = [vec![100.0], vec![100.5], vec![99.5]];
        let head = [vec![120.0], vec![120.5], vec![119.5]];
        let e = evidence(&base, &head, &[], 0.01).unwrap();
        assert_eq!(e.method, Method::PooledProcesses);
        assert!(e.p < 1e-4, "{}", e.p);
        assert_eq!(
            decide(&e, e.p, 0.03, 0.01, Direction::LowerIsBetter),
            Decision::Regressed
        );
    }

    #[test]
    fn evidence_picks_the_test_by_processes_and_history() {
        let p = |v: f64| vec![v, v * 1.01, v * 0.99];
        let one = evidence(&[p(1.0)], &[p(1.1)], &[], 0.01).unwrap();
        assert_eq!(one.method, Method::WithinProcess);
        let many = evidence(&[p(1.0), p(1.1)], &[p(1.2), p(1.3)], &[], 0.01).unwrap();
        assert_eq!(many.method, Method::PooledProcesses);
        // Two earlier runs: too few for a level, enough for a variance.
        let runs: Vec<Vec<f64>> = [0.01, -0.01]
            .iter()
            .map(|x| vec![x - 0.005, x + 0.005])
            .collect();
        let hist = evidence(&[p(1.0)], &[p(1.1)], &runs, 0.01).unwrap();
        assert_eq!(hist.method, Method::PooledHistory);
        assert!((hist.log_ratio - 1.1f64.ln()).abs() < 1e-9);
        // Thirty: head against the level of the base branch.
        let runs: Vec<Vec<f64>> = (0..30).map(|i| vec![(i % 5) as f64 * 0.002]).collect();
        let level = evidence(&[p(1.0)], &[p(1.1)], &runs, 0.01).unwrap();
        assert_eq!(level.method, Method::HistoryLevel);
        assert!(level.p < 1e-6, "{}", level.p);
        let none = evidence(&[vec![1.0]], &[vec![2.0]], &[], 0.01).unwrap();
        assert_eq!(none.method, Method::None);
        assert!(evidence(&[vec![0.0, 1.0]], &[vec![1.0, 1.0]], &[], 0.01).is_err());
    }
}
