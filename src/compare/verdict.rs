//! What became of a case in a comparison (`Verdict`), and what that means
//! for a CI job (`Gate`). The statistics' own answer is `stats::Decision`;
//! a verdict wraps it when a case could be judged at all.

use crate::stats::Decision;

/// The fate of one case and metric in a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Measured on both sides and judged by the numbers.
    Judged(Decision),
    /// Only at head.
    New,
    /// Only at base.
    Removed,
    /// Fails at head (crash, timeout, out of memory, accuracy) where the
    /// base measured it, or a new case that fails: the change broke it.
    Failed,
    /// Fails on both sides: broken before this change.
    StillFailing,
    /// Failed at base, measured at head.
    Fixed,
    /// Planned for a shard of head's run that never arrived.
    Missing,
    /// Skipped on either side (cannot run on this machine).
    Skipped,
    /// Measured on different machines, with a different definition, or
    /// not finished on a side.
    NotComparable,
}

impl Verdict {
    /// Regressed, as the numbers say.
    pub const REGRESSED: Verdict = Verdict::Judged(Decision::Regressed);
    /// Improved, as the numbers say.
    pub const IMPROVED: Verdict = Verdict::Judged(Decision::Improved);
    /// Unchanged within the threshold, as the numbers say.
    pub const UNCHANGED: Verdict = Verdict::Judged(Decision::Unchanged);
    /// Far worse than the threshold, not yet significant.
    pub const SUSPECT: Verdict = Verdict::Judged(Decision::Suspect);
    /// The numbers cannot tell.
    pub const INCONCLUSIVE: Verdict = Verdict::Judged(Decision::Inconclusive);

    /// The spelling used in reports and the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Judged(d) => d.as_str(),
            Verdict::New => "new",
            Verdict::Removed => "removed",
            Verdict::Failed => "failed",
            Verdict::StillFailing => "still_failing",
            Verdict::Fixed => "fixed",
            Verdict::Missing => "missing",
            Verdict::Skipped => "skipped",
            Verdict::NotComparable => "not_comparable",
        }
    }

    /// The decision, for verdicts that have one.
    pub fn decision(self) -> Option<Decision> {
        match self {
            Verdict::Judged(d) => Some(d),
            _ => None,
        }
    }
}

impl serde::Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Every verdict, for reading one back by its spelling.
const ALL: [Verdict; 13] = [
    Verdict::REGRESSED,
    Verdict::IMPROVED,
    Verdict::UNCHANGED,
    Verdict::SUSPECT,
    Verdict::INCONCLUSIVE,
    Verdict::New,
    Verdict::Removed,
    Verdict::Failed,
    Verdict::StillFailing,
    Verdict::Fixed,
    Verdict::Missing,
    Verdict::Skipped,
    Verdict::NotComparable,
];

impl<'de> serde::Deserialize<'de> for Verdict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let text = String::deserialize(d)?;
        ALL.into_iter().find(|v| v.as_str() == text).ok_or_else(|| {
            let known: Vec<&str> = ALL.iter().map(|v| v.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown verdict `{text}`; one of {}",
                known.join(", ")
            ))
        })
    }
}

/// What a CI job should do about a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Nothing the job was asked to fail on.
    Pass,
    /// A case regressed.
    Regressed,
    /// A case fails at head that did not fail at base, or a shard of
    /// head's run never arrived.
    Failed,
}

/// Which findings fail the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailOn {
    pub regression: bool,
    /// Suspect cases too (with `regression`: a large slowdown not yet
    /// significant must not pass a check unless asked).
    pub suspect: bool,
    pub failure: bool,
}

impl FailOn {
    /// Never fail: the report is for reading.
    pub const NOTHING: FailOn = FailOn {
        regression: false,
        suspect: false,
        failure: false,
    };
    /// Regressions (suspect ones too) and failures all fail the job.
    pub const ANY: FailOn = FailOn {
        regression: true,
        suspect: true,
        failure: true,
    };
}

impl Gate {
    /// The gate for a comparison's verdicts: a failure at head comes first
    /// (a crash says more than a slowdown), then a regression, each only
    /// when `on` asks for it.
    pub fn of(verdicts: impl IntoIterator<Item = Verdict>, on: FailOn) -> Gate {
        let (mut failed, mut regressed) = (false, false);
        for v in verdicts {
            failed |= matches!(v, Verdict::Failed | Verdict::Missing);
            regressed |= v == Verdict::REGRESSED || (on.suspect && v == Verdict::SUSPECT);
        }
        if on.failure && failed {
            Gate::Failed
        } else if on.regression && regressed {
            Gate::Regressed
        } else {
            Gate::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_gate_before_regressions_and_only_when_asked() {
        let both = [Verdict::REGRESSED, Verdict::Failed, Verdict::UNCHANGED];
        assert_eq!(Gate::of(both, FailOn::ANY), Gate::Failed);
        let only_regression = FailOn {
            regression: true,
            suspect: true,
            failure: false,
        };
        assert_eq!(Gate::of(both, only_regression), Gate::Regressed);
        assert_eq!(Gate::of(both, FailOn::NOTHING), Gate::Pass);
        // Broken before the change, or fixed by it: not this change's failure.
        let old = [Verdict::StillFailing, Verdict::Fixed, Verdict::Removed];
        assert_eq!(Gate::of(old, FailOn::ANY), Gate::Pass);
    }

    #[test]
    fn suspect_cases_gate_unless_relaxed() {
        let suspect = [Verdict::SUSPECT, Verdict::UNCHANGED];
        assert_eq!(Gate::of(suspect, FailOn::ANY), Gate::Regressed);
        let confirmed_only = FailOn {
            suspect: false,
            ..FailOn::ANY
        };
        assert_eq!(Gate::of(suspect, confirmed_only), Gate::Pass);
        assert_eq!(
            Gate::of([Verdict::REGRESSED], confirmed_only),
            Gate::Regressed
        );
        assert_eq!(Gate::of([Verdict::INCONCLUSIVE], FailOn::ANY), Gate::Pass);
    }

    #[test]
    fn verdicts_spell_as_before_the_split() {
        assert_eq!(Verdict::REGRESSED.as_str(), "regressed");
        assert_eq!(Verdict::NotComparable.as_str(), "not_comparable");
        assert_eq!(
            serde_json::to_string(&Verdict::INCONCLUSIVE).unwrap(),
            "\"inconclusive\""
        );
    }
}
