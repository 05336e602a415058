//! Statistics over samples: pure functions that know nothing of files, git or
//! pipelines. Each cites its reference and guards small n, ties, zero spread
//! and non-finite input.

mod mann_whitney;
mod summary;
mod verdict;

pub use mann_whitney::{mann_whitney_u, UMethod, UTest, EXACT_MAX_N};
pub use summary::{quantile, Summary};
pub use verdict::{decide, Verdict};

/// Input the statistics cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("sample {index} is {value}: samples must be finite numbers")]
    NonFinite { index: usize, value: f64 },
    #[error("no samples")]
    Empty,
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
