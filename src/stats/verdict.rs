//! The decision for one case: a named outcome, never a bare bool.

use serde::Serialize;

/// What a comparison concluded about one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Significantly slower by more than the threshold.
    Regressed,
    /// Significantly faster by more than the threshold.
    Improved,
    /// No significant change beyond the threshold.
    Unchanged,
    /// Only in head.
    New,
    /// Only in base.
    Removed,
    /// Failed, timed out or ran out of memory on either side.
    Failed,
    /// Skipped on either side (cannot run on this machine).
    Skipped,
    /// Measured on different machines or a different pipeline definition.
    NotComparable,
}

impl Verdict {
    /// The spelling used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::New => "new",
            Verdict::Removed => "removed",
            Verdict::Failed => "failed",
            Verdict::Skipped => "skipped",
            Verdict::NotComparable => "not_comparable",
        }
    }
}

/// Decides a lower-is-better metric from the head/base ratio and a p-value.
///
/// A change counts only when it is both significant (p < alpha) and larger
/// than the practical threshold. The threshold is applied symmetrically on
/// the log scale (×1.03 vs ÷1.03), so swapping base and head swaps
/// `Regressed` and `Improved` exactly.
pub fn decide(ratio: f64, p: f64, threshold: f64, alpha: f64) -> Verdict {
    if !(ratio.is_finite() && ratio > 0.0 && p.is_finite()) || p >= alpha {
        return Verdict::Unchanged;
    }
    let bound = (1.0 + threshold).ln();
    let shift = ratio.ln();
    if shift > bound {
        Verdict::Regressed
    } else if shift < -bound {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_significance_and_size() {
        assert_eq!(decide(1.25, 1e-6, 0.03, 0.01), Verdict::Regressed);
        assert_eq!(decide(0.80, 1e-6, 0.03, 0.01), Verdict::Improved);
        assert_eq!(decide(1.25, 0.2, 0.03, 0.01), Verdict::Unchanged);
        assert_eq!(decide(1.01, 1e-9, 0.03, 0.01), Verdict::Unchanged);
        assert_eq!(decide(f64::NAN, 1e-9, 0.03, 0.01), Verdict::Unchanged);
    }

    #[test]
    fn symmetric_in_log_space() {
        let r = 1.031;
        assert_eq!(decide(r, 0.0, 0.03, 0.01), Verdict::Regressed);
        assert_eq!(decide(1.0 / r, 0.0, 0.03, 0.01), Verdict::Improved);
    }
}
