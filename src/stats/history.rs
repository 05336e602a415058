//! Run-to-run spread from earlier runs of the same case on the same machine.
//! With it, a comparison of one or a few processes per side knows how much
//! whole runs move by themselves, which it cannot see from its own samples.
//!
//! Earlier commits differ in code, so their levels are not comparable with
//! each other; the spread of the processes *within* one commit is pure
//! run-to-run noise. That pooled within-commit variance is the estimate. It
//! is deliberately not winsorised: a run disturbed by another job is part of
//! the noise a base or head run can suffer too, and a robust scale that
//! ignores such tails makes the test flag them (in simulation, outlier-prone
//! processes raised the false alarms tenfold). Only when no commit had two
//! processes does it fall back to the mean square of successive differences
//! between commits (von Neumann et al. 1941), with about two thirds of the
//! degrees of freedom of a plain variance, leaving out the largest
//! differences, where commits that really changed performance show.

use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::welch::mean_var;
use super::PriorVariance;

/// Commits needed before successive differences say anything.
const MIN_COMMITS_FOR_DIFFERENCES: usize = 4;

/// Variance of one process's location, from groups of per-process
/// locations on the log scale (one group per earlier commit). `None` when history is too thin.
pub fn run_to_run_variance(groups: &[Vec<f64>]) -> Option<PriorVariance> {
    let groups: Vec<&Vec<f64>> = groups
        .iter()
        .filter(|g| g.iter().all(|x| x.is_finite()) && !g.is_empty())
        .collect();
    // Pooled within-commit variance: ΣSS / Σ(nᵢ − 1).
    let (mut ss, mut df) = (0.0, 0.0);
    for g in groups.iter().filter(|g| g.len() >= 2) {
        let (_, var) = mean_var(g);
        ss += var * (g.len() as f64 - 1.0);
        df += g.len() as f64 - 1.0;
    }
    if df >= 2.0 {
        return Some(PriorVariance { var: ss / df, df });
    }
    let means: Vec<f64> = groups.iter().map(|g| mean_var(g).0).collect();
    if means.len() < MIN_COMMITS_FOR_DIFFERENCES {
        return None;
    }
    successive_differences(&means)
}

/// Share of successive differences that may be dropped from the large end:
/// a level change between two commits shows as one large difference, and
/// on a baseline branch such changes are rare (a few per 30 commits).
const TRIM_DIFFERENCES: f64 = 0.1;

/// Variance of one run from the mean square of successive differences of
/// one run per commit (von Neumann et al. 1941, "The mean square successive
/// difference", Ann. Math. Statist. 12(2)): each difference of two runs has
/// variance 2σ².
///
/// Among the largest 10 % of the differences, those that look like a level
/// change are dropped: a commit that really moved performance makes one
/// large difference, and the level stays. A disturbed run makes two
/// adjacent large differences of opposite sign (up, then back down); those
/// stay in, as do the many of a noisy machine, since a base or head run can
/// be disturbed as well. The rest is rescaled to stay unbiased for normal
/// runs: for d² = 2σ²·X with X ~ χ²₁, E[X; X < q] = F_χ²₃(q) (because
/// x·f₁(x) = f₃(x)), so the kept mean is divided by F_χ²₃(q) / (kept share),
/// q being the χ²₁ quantile of the kept share; when the dropped ones were
/// level changes rather than noise this overstates the variance, which errs
/// towards fewer alarms. In `examples/verdict_quality.rs` (one process per
/// commit, one commit in ten moving ±3 %) the untrimmed estimate detected a
/// 5 % change at 1 % noise 95.9 % of the time, this one 99.8 %.
fn successive_differences(means: &[f64]) -> Option<PriorVariance> {
    let d: Vec<f64> = means.windows(2).map(|w| w[1] - w[0]).collect();
    let n = d.len();
    let mut largest: Vec<usize> = (0..n).collect();
    largest.sort_by(|a, b| d[*b].abs().total_cmp(&d[*a].abs()));
    largest.truncate((TRIM_DIFFERENCES * n as f64).floor() as usize);
    let spike = |i: usize| {
        largest
            .iter()
            .any(|&j| (j + 1 == i || i + 1 == j) && d[j].signum() != d[i].signum())
    };
    let steps: Vec<usize> = largest.iter().copied().filter(|&i| !spike(i)).collect();
    let kept: Vec<f64> = (0..n)
        .filter(|i| !steps.contains(i))
        .map(|i| d[i] * d[i])
        .collect();
    let share = kept.len() as f64 / n as f64;
    let mean = kept.iter().sum::<f64>() / kept.len() as f64;
    let correction = if kept.len() < n {
        let q = ChiSquared::new(1.0).ok()?.inverse_cdf(share);
        ChiSquared::new(3.0).ok()?.cdf(q) / share
    } else {
        1.0
    };
    // The MSSD is less efficient than a variance: about 2n/3 degrees of freedom.
    let df = (2.0 * kept.len() as f64 / 3.0).floor().max(1.0);
    Some(PriorVariance {
        var: mean / correction / 2.0,
        df,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_within_commit_variance_ignores_level_changes() {
        // Each commit at a different level, processes ±0.01 around it.
        let groups: Vec<Vec<f64>> = (0..10)
            .map(|i| {
                let level = i as f64 * 0.1;
                vec![level - 0.01, level, level + 0.01]
            })
            .collect();
        let prior = run_to_run_variance(&groups).unwrap();
        assert_eq!(prior.df, 20.0);
        // Sample variance of (-0.01, 0, 0.01) is 1e-4.
        assert!((prior.var - 1e-4).abs() < 1e-12, "{}", prior.var);
    }

    #[test]
    fn a_disturbed_run_widens_the_estimate() {
        let calm: Vec<Vec<f64>> = (0..10).map(|_| vec![-0.01, 0.0, 0.01]).collect();
        let mut disturbed = calm.clone();
        disturbed[3] = vec![-0.01, 0.0, 0.2];
        let (a, b) = (
            run_to_run_variance(&calm).unwrap(),
            run_to_run_variance(&disturbed).unwrap(),
        );
        assert!(b.var > 10.0 * a.var, "{} vs {}", b.var, a.var);
        assert_eq!(a.df, b.df);
    }

    #[test]
    fn level_changes_between_commits_are_trimmed() {
        // Thirty commits, one process each, alternating ±0.01 around a level
        // that steps up by 0.3 twice.
        let groups: Vec<Vec<f64>> = (0..30)
            .map(|i| {
                let level = if i < 10 {
                    0.0
                } else if i < 20 {
                    0.3
                } else {
                    0.6
                };
                vec![level + if i % 2 == 0 { 0.01 } else { -0.01 }]
            })
            .collect();
        let prior = run_to_run_variance(&groups).unwrap();
        // 29 differences: 27 of ±0.02 and two steps; the two steps go.
        // Kept share 27/29: q = 3.30747 with erf(√(q/2)) = 27/29, and
        // F_χ²₃(q) = erf(√(q/2)) − √(2q/π)·e^(−q/2) gives the correction
        // 0.701796 (computed with Python's math.erf, independently of
        // statrs), so the variance is 4e-4 / 0.701796 / 2.
        assert!((prior.var - 2.849832485e-4).abs() < 1e-9, "{}", prior.var);
        assert_eq!(prior.df, 18.0);
    }

    #[test]
    fn a_disturbed_run_between_commits_stays_in() {
        // Thirty commits alternating ±0.01 at one level; the run of commit
        // 15 was 0.3 slower: up, then back down.
        let groups: Vec<Vec<f64>> = (0..30)
            .map(|i| {
                let noise = if i % 2 == 0 { 0.01 } else { -0.01 };
                vec![noise + if i == 15 { 0.3 } else { 0.0 }]
            })
            .collect();
        let prior = run_to_run_variance(&groups).unwrap();
        // Nothing is dropped: the mean square of the 29 differences, halved.
        let d15 = 0.3f64 - 0.02;
        let expected = (27.0 * 4e-4 + 2.0 * d15 * d15) / 29.0 / 2.0;
        assert!((prior.var - expected).abs() < 1e-12, "{}", prior.var);
        assert_eq!(prior.df, 19.0);
    }

    #[test]
    fn single_process_history_uses_successive_differences() {
        let groups: Vec<Vec<f64>> = [0.0, 0.02, 0.0, 0.02, 0.0, 0.02]
            .iter()
            .map(|x| vec![*x])
            .collect();
        let prior = run_to_run_variance(&groups).unwrap();
        // Every difference is ±0.02: mean square 4e-4, halved.
        assert!((prior.var - 2e-4).abs() < 1e-12, "{}", prior.var);
        assert_eq!(prior.df, 3.0);
        assert!(run_to_run_variance(&[vec![0.0], vec![1.0]]).is_none());
        assert!(run_to_run_variance(&[]).is_none());
    }
}
