//! From evidence to a decision: regressed, improved, unchanged or
//! inconclusive — what the numbers say, a named outcome, never a bare bool.
//! Whether a case could be compared at all is `compare::Verdict`'s business.

use serde::Serialize;

pub use crate::metric::Direction;

use super::Evidence;

/// What the numbers say about one case and metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Significantly worse by more than the threshold.
    Regressed,
    /// Significantly better by more than the threshold.
    Improved,
    /// The interval excludes changes larger than the threshold.
    Unchanged,
    /// Not significant, but the estimate is far worse than the threshold:
    /// a large slowdown the samples cannot yet confirm. Never shown as
    /// fine, and it gates CI unless asked not to.
    Suspect,
    /// Neither: these samples cannot tell.
    Inconclusive,
}

impl Decision {
    /// The spelling used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Regressed => "regressed",
            Decision::Improved => "improved",
            Decision::Unchanged => "unchanged",
            Decision::Suspect => "suspect",
            Decision::Inconclusive => "inconclusive",
        }
    }
}

/// How far past the threshold an estimate must be to be `Suspect`: three
/// times it, and at least `SUSPECT_MIN`. A case that ran +60 % slower on
/// two processes per side is not significant at alpha 0.01 but must not
/// pass for fine; at three thresholds the estimate is well outside the
/// noise of any case that could still be called unchanged.
pub const SUSPECT_FACTOR: f64 = 3.0;
/// The smallest change (as a ratio − 1) called suspect, whatever the
/// threshold: 10 %.
pub const SUSPECT_MIN: f64 = 0.10;

/// The verdict for evidence whose p-value was adjusted to `q` across the
/// comparison.
///
/// `Regressed`/`Improved` need q < alpha *and* a change beyond the
/// threshold (and, when run-to-run variance is unobserved, beyond the
/// within-process spread). `Unchanged` needs the interval, widened by that
/// spread, inside ± threshold. Otherwise a worse estimate beyond
/// `SUSPECT_FACTOR` thresholds (and `SUSPECT_MIN`) is `Suspect`, and
/// anything else `Inconclusive`. The threshold is symmetric on the log
/// scale (×1.03 vs ÷1.03), so swapping base and head swaps `Regressed` and
/// `Improved` exactly; `Suspect` is one-sided (a large unconfirmed speed-up
/// stays `Inconclusive`), because it exists to keep slowdowns from passing.
pub fn decide(e: &Evidence, q: f64, threshold: f64, alpha: f64, direction: Direction) -> Decision {
    if !e.log_ratio.is_finite() || q.is_nan() {
        return Decision::Inconclusive;
    }
    let bound = (1.0 + threshold).ln();
    let worse = match direction {
        Direction::LowerIsBetter => e.log_ratio,
        Direction::HigherIsBetter => -e.log_ratio,
    };
    let beyond = bound.max(e.unobserved_spread);
    if q < alpha && worse.abs() > beyond {
        return if worse > 0.0 {
            Decision::Regressed
        } else {
            Decision::Improved
        };
    }
    if e.lo - e.unobserved_spread > -bound && e.hi + e.unobserved_spread < bound {
        return Decision::Unchanged;
    }
    let suspect = (SUSPECT_FACTOR * bound).max(SUSPECT_MIN.ln_1p());
    if worse > suspect {
        return Decision::Suspect;
    }
    Decision::Inconclusive
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Method;

    fn ev(log_ratio: f64, lo: f64, hi: f64) -> Evidence {
        Evidence {
            method: Method::PooledProcesses,
            log_ratio,
            lo,
            hi,
            p: 0.0,
            mde: 0.01,
            unobserved_spread: 0.0,
        }
    }

    #[test]
    fn needs_significance_and_size() {
        let d = Direction::LowerIsBetter;
        assert_eq!(
            decide(&ev(0.2, 0.1, 0.3), 1e-6, 0.03, 0.01, d),
            Decision::Regressed
        );
        assert_eq!(
            decide(&ev(-0.2, -0.3, -0.1), 1e-6, 0.03, 0.01, d),
            Decision::Improved
        );
        assert_eq!(
            decide(&ev(0.05, -0.1, 0.2), 0.2, 0.03, 0.01, d),
            Decision::Inconclusive
        );
        assert_eq!(
            decide(&ev(0.2, -0.1, 0.5), 0.2, 0.03, 0.01, d),
            Decision::Suspect
        );
        assert_eq!(
            decide(&ev(0.01, 0.0, 0.02), 1e-9, 0.03, 0.01, d),
            Decision::Unchanged
        );
        assert_eq!(
            decide(&ev(f64::NAN, 0.0, 0.0), 1e-9, 0.03, 0.01, d),
            Decision::Inconclusive
        );
        assert_eq!(
            decide(
                &ev(0.2, 0.1, 0.3),
                1e-6,
                0.03,
                0.01,
                Direction::HigherIsBetter
            ),
            Decision::Improved
        );
    }

    #[test]
    fn a_large_unconfirmed_slowdown_is_suspect_not_inconclusive() {
        let d = Direction::LowerIsBetter;
        // +60 % on two processes a side: far from significant.
        let e = ev(0.47, -0.2, 1.1);
        assert_eq!(decide(&e, 0.08, 0.03, 0.01, d), Decision::Suspect);
        // The same as a speed-up stays inconclusive.
        let e = ev(-0.47, -1.1, 0.2);
        assert_eq!(decide(&e, 0.08, 0.03, 0.01, d), Decision::Inconclusive);
        // +8 %: beyond the threshold but not three times it and 10 %.
        let e = ev(0.077, -0.02, 0.17);
        assert_eq!(decide(&e, 0.08, 0.03, 0.01, d), Decision::Inconclusive);
        // A 10 % threshold needs +30 %.
        let e = ev(0.2, -0.1, 0.5);
        assert_eq!(decide(&e, 0.08, 0.10, 0.01, d), Decision::Inconclusive);
        // Higher is better: a throughput that fell by half.
        let e = ev(-0.69, -1.2, 0.1);
        assert_eq!(
            decide(&e, 0.08, 0.03, 0.01, Direction::HigherIsBetter),
            Decision::Suspect
        );
    }

    #[test]
    fn unobserved_run_to_run_variance_caps_the_verdict() {
        let mut e = ev(0.08, 0.07, 0.09);
        e.unobserved_spread = 0.1;
        assert_eq!(
            decide(&e, 1e-9, 0.03, 0.01, Direction::LowerIsBetter),
            Decision::Inconclusive
        );
        e.log_ratio = 0.3;
        assert_eq!(
            decide(&e, 1e-9, 0.03, 0.01, Direction::LowerIsBetter),
            Decision::Regressed
        );
    }
}
