//! Robust summaries of one sample set: the median and quartiles rather than
//! mean ± std, which warm-up outliers and clock changes distort.

use serde::Serialize;

use super::{check_finite, Points, StatsError};

/// Relative IQR above which a case is flagged as noisy.
pub const NOISY_REL_IQR: f64 = 0.10;

/// Tukey's (1977) fence multiplier for outliers, in IQRs beyond the quartiles.
const TUKEY_FENCE: f64 = 1.5;

/// Location and spread of one sample set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub min: f64,
    pub max: f64,
    /// (p75 − p25) / median; 0 when the median is 0.
    pub rel_iqr: f64,
    /// Samples beyond Tukey's fences (1.5 IQR outside the quartiles).
    pub outliers: usize,
}

impl Summary {
    /// Summarises `xs`; errors on an empty or non-finite sample.
    pub fn of(xs: &[f64]) -> Result<Summary, StatsError> {
        if xs.is_empty() {
            return Err(StatsError::Empty);
        }
        check_finite(xs)?;
        let mut sorted = xs.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let median = quantile(&sorted, 0.5);
        let (p25, p75) = (quantile(&sorted, 0.25), quantile(&sorted, 0.75));
        let exact = Points::exact(&sorted)?;
        Ok(Summary::from_quartiles(&exact, (p25, median, p75)))
    }

    /// The summary of `points` with these quartiles: Tukey's fences around
    /// them count the outliers (in samples the points stand for).
    fn from_quartiles(points: &Points, (p25, median, p75): (f64, f64, f64)) -> Summary {
        let fence = TUKEY_FENCE * (p75 - p25);
        let outliers: f64 = points
            .values()
            .iter()
            .zip(points.weights())
            .filter(|(x, _)| **x < p25 - fence || **x > p75 + fence)
            .map(|(_, w)| w)
            .sum();
        let values = points.values();
        Summary {
            outliers: outliers.round() as usize,
            n: points.total().round() as usize,
            median,
            p25,
            p75,
            min: values[0],
            max: values[values.len() - 1],
            rel_iqr: if median != 0.0 {
                (p75 - p25) / median.abs()
            } else {
                0.0
            },
        }
    }

    /// Summarises points that may stand for more samples (`Points`): n is
    /// the true count, quantiles are taken on the ranks the points stand
    /// for, outliers are the samples the points beyond the fences stand
    /// for. With every sample present this equals `of`.
    pub fn of_points(points: &Points) -> Result<Summary, StatsError> {
        if points.is_exact() {
            return Summary::of(points.values());
        }
        if points.is_empty() {
            return Err(StatsError::Empty);
        }
        let quartiles = (
            points.quantile(0.25),
            points.quantile(0.5),
            points.quantile(0.75),
        );
        Ok(Summary::from_quartiles(points, quartiles))
    }

    /// Whether the spread is too large for small changes to be seen.
    pub fn is_noisy(&self) -> bool {
        self.rel_iqr > NOISY_REL_IQR
    }
}

/// Quantile `q` of an ascending, non-empty slice by linear interpolation
/// between order statistics: Hyndman & Fan (1996) definition 7, the default
/// of R and NumPy, so numbers match what users compute themselves.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of an empty sample");
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_match_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [25, 50, 75]) == [2, 3, 4]
        let s = Summary::of(&[10.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.p25, s.median, s.p75), (2.0, 3.0, 4.0));
        assert_eq!(s.outliers, 1, "10 is beyond 4 + 1.5·2");
        // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) == [1.75, 2.5, 3.25]
        let s = Summary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((s.p25, s.median, s.p75), (1.75, 2.5, 3.25));
        assert!((s.rel_iqr - 0.6).abs() < 1e-12);
    }

    #[test]
    fn single_sample_and_constant_samples() {
        let s = Summary::of(&[5.0]).unwrap();
        assert_eq!((s.n, s.median, s.rel_iqr), (1, 5.0, 0.0));
        let s = Summary::of(&[0.0, 0.0]).unwrap();
        assert_eq!(s.rel_iqr, 0.0);
        assert!(!s.is_noisy());
    }

    #[test]
    fn rejects_empty_and_non_finite() {
        assert_eq!(Summary::of(&[]), Err(StatsError::Empty));
        assert!(matches!(
            Summary::of(&[1.0, f64::NAN]),
            Err(StatsError::NonFinite { index: 1, .. })
        ));
        assert!(Summary::of(&[f64::INFINITY]).is_err());
    }
}
