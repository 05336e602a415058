//! A sample as the rank tests take it: ascending values, each standing for
//! a weight of original samples. Every sample of a short process is there
//! with weight 1; a long process is kept (in the record) as k evenly spaced
//! order statistics, each standing for n/k samples. The tests then use the
//! true counts, so a process of 40,000 iterations weighs as 40,000, not as
//! its 64 stored points.
//!
//! With every weight 1 the quantiles here are Hyndman & Fan's definition 7
//! exactly (as `quantile`); with weights, each point sits at the centre of
//! the ranks it stands for, and quantiles interpolate between those
//! positions — the same rule on a coarser grid.

use super::{check_finite, StatsError};

/// Values in ascending order, each with the number of samples it stands for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Points {
    values: Vec<f64>,
    weights: Vec<f64>,
}

impl Points {
    /// Every sample, weight 1.
    pub fn exact(samples: &[f64]) -> Result<Points, StatsError> {
        Points::weighted(samples.iter().map(|&x| (x, 1.0)))
    }

    /// Points from (value, weight) pairs in any order; weights must be ≥ 1.
    pub fn weighted(pairs: impl IntoIterator<Item = (f64, f64)>) -> Result<Points, StatsError> {
        let mut pairs: Vec<(f64, f64)> = pairs.into_iter().collect();
        let values: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        check_finite(&values)?;
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Points {
            values: pairs.iter().map(|p| p.0).collect(),
            weights: pairs.iter().map(|p| p.1).collect(),
        })
    }

    /// The union of several samples (the processes of one side).
    pub fn union<'a>(parts: impl IntoIterator<Item = &'a Points>) -> Points {
        let mut pairs = Vec::new();
        for p in parts {
            pairs.extend(p.values.iter().copied().zip(p.weights.iter().copied()));
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        Points {
            values: pairs.iter().map(|p| p.0).collect(),
            weights: pairs.iter().map(|p| p.1).collect(),
        }
    }

    /// The same points through a function: increasing (`ln`) or decreasing
    /// (`1/x`), the order is restored either way.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Points {
        let mut pairs: Vec<(f64, f64)> = self
            .values
            .iter()
            .map(|&x| f(x))
            .zip(self.weights.iter().copied())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        Points {
            values: pairs.iter().map(|p| p.0).collect(),
            weights: pairs.iter().map(|p| p.1).collect(),
        }
    }

    /// The values, ascending.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The weights, in the order of `values`.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Number of samples the points stand for.
    pub fn total(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// Number of stored points.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether every sample is there (every weight is 1).
    pub fn is_exact(&self) -> bool {
        self.weights.iter().all(|&w| w == 1.0)
    }

    /// Quantile `q`: definition 7 on the ranks the points stand for.
    pub fn quantile(&self, q: f64) -> f64 {
        assert!(!self.is_empty(), "quantile of no points");
        let h = (self.total() - 1.0).max(0.0) * q.clamp(0.0, 1.0);
        // Position of each point: the centre of the ranks (0-based) it covers.
        let mut start = 0.0;
        let mut prev: Option<(f64, f64)> = None;
        for (&x, &w) in self.values.iter().zip(&self.weights) {
            let pos = start + (w - 1.0) / 2.0;
            start += w;
            if pos >= h {
                return match prev {
                    Some((p0, x0)) if pos > p0 => x0 + (x - x0) * (h - p0) / (pos - p0),
                    _ => x,
                };
            }
            prev = Some((pos, x));
        }
        *self.values.last().expect("not empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::quantile;

    #[test]
    fn exact_points_give_definition_7() {
        let xs = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.0];
        let p = Points::exact(&xs).unwrap();
        let mut sorted = xs.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0] {
            assert!((p.quantile(q) - quantile(&sorted, q)).abs() < 1e-12, "{q}");
        }
        assert!(p.is_exact());
        assert_eq!(p.total(), 7.0);
    }

    #[test]
    fn weighted_points_stand_for_their_ranks() {
        // 1..=1000, kept as 10 order statistics of 100 samples each.
        let all: Vec<f64> = (1..=1000).map(f64::from).collect();
        let sketch =
            Points::weighted((0..10).map(|i| (f64::from(i) * 100.0 + 50.5, 100.0))).unwrap();
        let exact = Points::exact(&all).unwrap();
        assert_eq!(sketch.total(), 1000.0);
        for q in [0.25, 0.5, 0.75] {
            assert!(
                (sketch.quantile(q) - exact.quantile(q)).abs() < 1.0,
                "{q}: {} vs {}",
                sketch.quantile(q),
                exact.quantile(q)
            );
        }
    }

    #[test]
    fn union_and_map_keep_the_order() {
        let a = Points::exact(&[3.0, 1.0]).unwrap();
        let b = Points::weighted([(2.0, 5.0)]).unwrap();
        let u = Points::union([&a, &b]);
        assert_eq!(u.values(), [1.0, 2.0, 3.0]);
        assert_eq!(u.weights(), [1.0, 5.0, 1.0]);
        let r = u.map(|x| 1.0 / x);
        assert_eq!(r.values(), [1.0 / 3.0, 0.5, 1.0]);
        assert_eq!(r.weights(), [1.0, 5.0, 1.0]);
        assert!(Points::exact(&[f64::NAN]).is_err());
    }
}
