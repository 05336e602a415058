//! Always-valid inference for an A/B that keeps measuring until it can
//! tell (`regress ab --until-conclusive`).
//!
//! A fixed-sample test looked at after every new pair of processes, and
//! stopped as soon as it says "significant", raises false alarms far above
//! its alpha: each look is another chance for noise to cross the line.
//! Here the alpha is spent over the looks instead: look `j` (the first is
//! `j = 1`) gets α·6/(π²j²), and these sum to α over every look there could
//! ever be, so by the union bound the probability that *any* interval of
//! the sequence misses the true change is at most α, however long the A/B
//! runs and whenever it stops (alpha spending with a Bonferroni bound,
//! Lan & DeMets 1983, "Discrete sequential boundaries for clinical trials",
//! Biometrika 70(3); the 6/π² weights are the simplest summable schedule).
//!
//! The data are pairs: in pair `k` a base process and a head process ran
//! back to back (ABBA order), so a shift of the machine between pairs falls
//! on both and cancels in the difference of their log locations
//! (`process_location`). The differences of the pairs are independent
//! draws of one distribution whose mean is the change; the interval at each
//! look is Student's t on them.
//!
//! `examples/sequential_quality.rs` measures what this costs and gives.

use serde::Serialize;

use super::decision::{SUSPECT_FACTOR, SUSPECT_MIN};
use super::{mean_interval, Decision, Direction, StatsError};

/// The alpha that look `look` (counted from 1) may spend out of `alpha`:
/// α·6/(π²·look²), whose sum over all looks is α.
pub fn look_alpha(alpha: f64, look: u32) -> f64 {
    let j = f64::from(look.max(1));
    alpha * 6.0 / (std::f64::consts::PI.powi(2) * j * j)
}

/// What the pairs of one case say at one look, on the log scale
/// (head / base, oriented so that positive is worse).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SequentialEvidence {
    /// Pairs of processes behind it.
    pub pairs: usize,
    /// The look it was made at (1 = the first).
    pub look: u32,
    /// Mean log difference head − base.
    pub log_ratio: f64,
    /// Its interval at the look's alpha; every interval of the sequence
    /// holds the true change with probability ≥ 1 − alpha at once.
    pub lo: f64,
    pub hi: f64,
    /// The alpha this look spent.
    pub level: f64,
}

impl SequentialEvidence {
    /// The interval at look `look` of the per-pair log differences `diffs`
    /// (head − base, positive = worse). Needs two pairs at least; a zero
    /// spread gives a zero-width interval at the mean.
    pub fn of(diffs: &[f64], look: u32, alpha: f64) -> Result<SequentialEvidence, StatsError> {
        if diffs.len() < 2 {
            return Err(StatsError::TooFew {
                need: 2,
                got: diffs.len(),
            });
        }
        super::check_finite(diffs)?;
        let level = look_alpha(alpha, look);
        let (mean, lo, hi) = mean_interval(diffs, level).ok_or(StatsError::Empty)?;
        // Zero spread makes the half-width 0 · ∞ = NaN when the t quantile
        // overflows; the data then say exactly the mean.
        let (lo, hi) = if lo.is_nan() || hi.is_nan() {
            (mean, mean)
        } else {
            (lo, hi)
        };
        Ok(SequentialEvidence {
            pairs: diffs.len(),
            look,
            log_ratio: mean,
            lo,
            hi,
            level,
        })
    }

    /// The verdict, by the rule `stats::decide` uses for a fixed sample:
    /// `Regressed`/`Improved` when the interval excludes no change *and*
    /// the estimate is beyond the threshold; `Unchanged` when the interval
    /// lies inside ± threshold; `Suspect` when worse beyond
    /// `SUSPECT_FACTOR` thresholds and `SUSPECT_MIN`; else `Inconclusive`.
    /// The threshold is symmetric on the log scale, so swapping base and
    /// head swaps `Regressed` and `Improved`.
    pub fn decision(&self, threshold: f64, direction: Direction) -> Decision {
        let bound = (1.0 + threshold).ln();
        let (worse, lo, hi) = self.oriented(direction);
        if lo > 0.0 && worse > bound {
            Decision::Regressed
        } else if hi < 0.0 && worse < -bound {
            Decision::Improved
        } else if lo > -bound && hi < bound {
            Decision::Unchanged
        } else if worse > (SUSPECT_FACTOR * bound).max(SUSPECT_MIN.ln_1p()) {
            Decision::Suspect
        } else {
            Decision::Inconclusive
        }
    }

    /// Not decided, and far worse than the threshold: first in line for
    /// more pairs.
    pub fn suspect(&self, threshold: f64, direction: Direction) -> bool {
        self.decision(threshold, direction) == Decision::Suspect
    }

    /// (estimate, lo, hi) with positive meaning worse.
    fn oriented(&self, direction: Direction) -> (f64, f64, f64) {
        match direction {
            Direction::LowerIsBetter => (self.log_ratio, self.lo, self.hi),
            Direction::HigherIsBetter => (-self.log_ratio, -self.hi, -self.lo),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_looks_spend_no_more_than_alpha() {
        let spent: f64 = (1..=100_000).map(|j| look_alpha(0.01, j)).sum();
        assert!(spent < 0.01, "{spent}");
        assert!(spent > 0.0099, "{spent}");
        assert!(look_alpha(0.01, 1) > look_alpha(0.01, 2));
        assert_eq!(look_alpha(0.01, 0), look_alpha(0.01, 1));
    }

    #[test]
    fn later_looks_are_stricter_than_a_fixed_test() {
        let diffs = [0.10, 0.12, 0.11, 0.09, 0.13];
        let fixed = mean_interval(&diffs, 0.01).unwrap();
        let first = SequentialEvidence::of(&diffs, 1, 0.01).unwrap();
        let tenth = SequentialEvidence::of(&diffs, 10, 0.01).unwrap();
        assert!((first.log_ratio - 0.11).abs() < 1e-12);
        assert!(first.lo < fixed.1 && first.hi > fixed.2);
        assert!(tenth.lo < first.lo && tenth.hi > first.hi);
    }

    #[test]
    fn decides_like_a_fixed_sample_verdict() {
        let t = 0.05;
        let d = Direction::LowerIsBetter;
        let ev = |log_ratio, lo, hi| SequentialEvidence {
            pairs: 5,
            look: 3,
            log_ratio,
            lo,
            hi,
            level: 0.001,
        };
        assert_eq!(ev(0.3, 0.1, 0.5).decision(t, d), Decision::Regressed);
        assert_eq!(ev(-0.3, -0.5, -0.1).decision(t, d), Decision::Improved);
        assert_eq!(
            ev(-0.3, -0.5, -0.1).decision(t, Direction::HigherIsBetter),
            Decision::Regressed
        );
        // Significant but smaller than the threshold, and the interval
        // inside it: unchanged.
        assert_eq!(ev(0.02, 0.01, 0.03).decision(t, d), Decision::Unchanged);
        // Significant, small, but the interval reaches past the threshold.
        assert_eq!(ev(0.04, 0.01, 0.07).decision(t, d), Decision::Inconclusive);
        // Far beyond the threshold, not significant: suspect.
        let far = ev(0.3, -0.1, 0.7);
        assert_eq!(far.decision(t, d), Decision::Suspect);
        assert!(far.suspect(t, d));
        assert!(!ev(0.06, -0.1, 0.2).suspect(t, d));
        assert!(!ev(0.3, 0.1, 0.5).suspect(t, d));
    }

    #[test]
    fn swapping_the_sides_swaps_the_verdict() {
        let diffs = [0.2, 0.25, 0.22, 0.18];
        let swapped: Vec<f64> = diffs.iter().map(|d| -d).collect();
        let d = Direction::LowerIsBetter;
        let a = SequentialEvidence::of(&diffs, 2, 0.01).unwrap();
        let b = SequentialEvidence::of(&swapped, 2, 0.01).unwrap();
        assert_eq!(a.decision(0.05, d), Decision::Regressed);
        assert_eq!(b.decision(0.05, d), Decision::Improved);
    }

    /// A standard normal draw from a SplitMix64 state (Box–Muller).
    fn normal(state: &mut u64) -> f64 {
        let mut next = || {
            *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let (u1, u2) = (next().max(f64::MIN_POSITIVE), next());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    #[test]
    fn peeking_after_every_pair_keeps_false_alarms_under_alpha() {
        // No change, a look after every pair from the second to the 20th:
        // how often does any interval exclude zero? At alpha 0.05 fixed
        // intervals do so in about a quarter of the trials; the spent
        // alpha must stay under 0.05. (examples/sequential_quality.rs
        // runs the whole verdict on simulated processes.)
        let (alpha, trials) = (0.05, 1000);
        let mut state = 12;
        let (mut valid, mut naive) = (0, 0);
        for _ in 0..trials {
            let mut diffs = Vec::new();
            let (mut v, mut n) = (false, false);
            for pairs in 1..=20u32 {
                diffs.push(0.03 * normal(&mut state));
                if pairs < 2 {
                    continue;
                }
                let e = SequentialEvidence::of(&diffs, pairs - 1, alpha).unwrap();
                v |= e.lo > 0.0 || e.hi < 0.0;
                let (_, lo, hi) = mean_interval(&diffs, alpha).unwrap();
                n |= lo > 0.0 || hi < 0.0;
            }
            valid += usize::from(v);
            naive += usize::from(n);
        }
        let rate = |k: usize| k as f64 / trials as f64;
        assert!(rate(valid) <= alpha, "always-valid: {}", rate(valid));
        assert!(rate(naive) > 2.0 * alpha, "naive: {}", rate(naive));
    }

    #[test]
    fn guards_few_pairs_zero_spread_and_nan() {
        assert!(SequentialEvidence::of(&[0.1], 1, 0.01).is_err());
        assert!(SequentialEvidence::of(&[0.1, f64::NAN], 1, 0.01).is_err());
        let flat = SequentialEvidence::of(&[0.0, 0.0, 0.0], 1, 0.01).unwrap();
        assert_eq!((flat.lo, flat.hi), (0.0, 0.0));
        assert_eq!(
            flat.decision(0.05, Direction::LowerIsBetter),
            Decision::Unchanged
        );
    }
}
