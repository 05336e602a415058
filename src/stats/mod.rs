//! Statistics over samples: pure functions that know nothing of files, git or
//! pipelines. Each cites its reference and guards small n, ties, zero spread
//! and non-finite input.

mod bh;
mod decision;
mod evidence;
mod history;
mod hodges_lehmann;
mod mann_whitney;
mod points;
mod reference;
mod sequential;
mod states;
mod summary;
mod welch;

pub use bh::bh_qvalues;
pub use decision::{decide, Decision, Direction};
pub use evidence::{
    evidence, evidence_of, process_estimate, process_location, Evidence, Method, Process,
    ProcessEstimate, MDE_POWER,
};
pub use history::run_to_run_variance;
pub use hodges_lehmann::{hodges_lehmann, hodges_lehmann_points, Shift};
pub use mann_whitney::{mann_whitney_points, mann_whitney_u, UMethod, UTest, EXACT_MAX_N};
pub use points::Points;
pub use reference::{against_level, Reference};
pub use sequential::{look_alpha, SequentialEvidence};
pub use summary::{quantile, Summary, NOISY_REL_IQR};
pub use welch::{mean_interval, pooled_t, student_t, t_quantile, welch_t, PriorVariance, TTest};

/// Input the statistics cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("sample {index} is {value}: samples must be finite numbers")]
    NonFinite { index: usize, value: f64 },
    #[error("sample {index} is {value}: times and sizes must be positive to compare ratios")]
    NonPositive { index: usize, value: f64 },
    #[error("no samples")]
    Empty,
    #[error("needs at least {need} values per side, got {got}")]
    TooFew { need: usize, got: usize },
}

/// Rejects what a ratio cannot be taken of: non-finite, zero or negative
/// samples.
pub fn check_positive(xs: &[f64]) -> Result<(), StatsError> {
    check_finite(xs)?;
    match xs.iter().position(|x| *x <= 0.0) {
        Some(index) => Err(StatsError::NonPositive {
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}

/// Rejects NaN and infinities, which would silently poison every rank and mean.
pub(crate) fn check_finite(xs: &[f64]) -> Result<(), StatsError> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(StatsError::NonFinite {
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}
