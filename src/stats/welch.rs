//! Two-sample t-tests on log per-process medians. Iterations inside one
//! process are not independent (they share a clock state, an allocation
//! layout, a compiled kernel choice), so the unit of replication is the
//! process: each side contributes one number per process.
//!
//! References: B. L. Welch (1947), "The generalization of 'Student's' problem
//! when several different population variances are involved", Biometrika
//! 34(1–2); F. E. Satterthwaite (1946), "An approximate distribution of
//! estimates of variance components", Biometrics Bulletin 2(6). The pooled
//! variant with an external variance estimate is the textbook pooled t-test
//! (Student 1908) whose pooled variance also draws on earlier runs.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{check_finite, StatsError};

/// A t-test of mean(b) − mean(a).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TTest {
    /// mean(b) − mean(a).
    pub diff: f64,
    /// Standard error of `diff`.
    pub se: f64,
    pub df: f64,
    pub t: f64,
    /// Two-sided p-value.
    pub p: f64,
}

impl TTest {
    /// The two-sided (1 − alpha) confidence interval of `diff`.
    pub fn interval(&self, alpha: f64) -> (f64, f64) {
        if self.se == 0.0 {
            return (self.diff, self.diff);
        }
        let half = t_quantile(1.0 - alpha / 2.0, self.df) * self.se;
        (self.diff - half, self.diff + half)
    }

    /// Smallest |diff| this test detects with probability `power` at `alpha`.
    pub fn min_detectable(&self, alpha: f64, power: f64) -> f64 {
        (t_quantile(1.0 - alpha / 2.0, self.df) + t_quantile(power, self.df)) * self.se
    }
}

/// Quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df.max(f64::MIN_POSITIVE))
        .map(|d| d.inverse_cdf(p))
        .unwrap_or(f64::INFINITY)
}

/// Mean and sample variance (0 for a single value).
pub(crate) fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var)
}

pub(crate) fn finish(diff: f64, se: f64, df: f64) -> TTest {
    if se == 0.0 {
        // No spread at all: any difference is certain, none is no evidence.
        let p = if diff == 0.0 { 1.0 } else { 0.0 };
        let t = if diff == 0.0 {
            0.0
        } else {
            diff.signum() * f64::INFINITY
        };
        return TTest { diff, se, df, t, p };
    }
    let t = diff / se;
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    TTest {
        diff,
        se,
        df,
        t,
        p: (2.0 * dist.sf(t.abs())).min(1.0),
    }
}

/// Means, variances and counts of two sides with at least `need` values each.
struct Sides {
    ma: f64,
    va: f64,
    na: f64,
    mb: f64,
    vb: f64,
    nb: f64,
}

fn sides(a: &[f64], b: &[f64], need: usize) -> Result<Sides, StatsError> {
    if a.len() < need || b.len() < need {
        let got = a.len().min(b.len());
        return Err(if got == 0 {
            StatsError::Empty
        } else {
            StatsError::TooFew { need, got }
        });
    }
    check_finite(a)?;
    check_finite(b)?;
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    Ok(Sides {
        ma,
        va,
        na: a.len() as f64,
        mb,
        vb,
        nb: b.len() as f64,
    })
}

/// The mean of `xs` with its two-sided (1 − alpha) Student-t interval:
/// (mean, lo, hi). Needs two finite values at least.
pub fn mean_interval(xs: &[f64], alpha: f64) -> Option<(f64, f64, f64)> {
    if xs.len() < 2 || check_finite(xs).is_err() {
        return None;
    }
    let (mean, var) = mean_var(xs);
    let n = xs.len() as f64;
    let half = t_quantile(1.0 - alpha / 2.0, n - 1.0) * (var / n).sqrt();
    Some((mean, mean - half, mean + half))
}

/// Welch's unequal-variance t-test; needs at least two values per side.
pub fn welch_t(a: &[f64], b: &[f64]) -> Result<TTest, StatsError> {
    let Sides {
        ma,
        va,
        na,
        mb,
        vb,
        nb,
    } = sides(a, b, 2)?;
    let (sa, sb) = (va / na, vb / nb);
    let se = (sa + sb).sqrt();
    // Welch–Satterthwaite; when both variances are 0 the df do not matter.
    let df = if se > 0.0 {
        (sa + sb).powi(2) / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0))
    } else {
        na + nb - 2.0
    };
    Ok(finish(mb - ma, se, df))
}

/// Student's two-sample t-test with pooled variance; needs at least two
/// values per side. Exact for normal data with equal variances, which is
/// what "no change" means for two sides measured on one machine.
pub fn student_t(a: &[f64], b: &[f64]) -> Result<TTest, StatsError> {
    Ok(pooled(sides(a, b, 2)?, None))
}

/// The pooled t-test, optionally with an outside variance estimate.
fn pooled(sides: Sides, prior: Option<PriorVariance>) -> TTest {
    let Sides {
        ma,
        va,
        na,
        mb,
        vb,
        nb,
    } = sides;
    let (prior_df, prior_ss) = prior.map_or((0.0, 0.0), |p| (p.df, p.df * p.var));
    let df = prior_df + (na - 1.0) + (nb - 1.0);
    let var = (prior_ss + (na - 1.0) * va + (nb - 1.0) * vb) / df;
    finish(mb - ma, (var * (1.0 / na + 1.0 / nb)).sqrt(), df)
}

/// An outside estimate of the per-process variance with its degrees of
/// freedom (from earlier runs of the same case on the same machine).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PriorVariance {
    pub var: f64,
    pub df: f64,
}

/// Pooled t-test whose variance combines `prior` with whatever spread the
/// two sides show themselves; works with one value per side.
pub fn pooled_t(a: &[f64], b: &[f64], prior: PriorVariance) -> Result<TTest, StatsError> {
    if !(prior.var.is_finite() && prior.var >= 0.0 && prior.df > 0.0) {
        return Err(StatsError::NonFinite {
            index: 0,
            value: prior.var,
        });
    }
    Ok(pooled(sides(a, b, 1)?, Some(prior)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn welch_matches_reference() {
        // SciPy 1.17.1: scipy.stats.ttest_ind([1, 2, 3, 4], [2, 4, 6, 8, 10], equal_var=False)
        // gives t = -2.2514363231593695, p = 0.06913359319239237, df = 5.520787746170677
        // (its t is mean(a) − mean(b); ours is mean(b) − mean(a)).
        let t = welch_t(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap();
        assert!(close(t.diff, 3.5, 1e-12));
        assert!(close(t.t, 2.2514363231593695, 1e-12), "{}", t.t);
        assert!(close(t.df, 5.520787746170677, 1e-12), "{}", t.df);
        assert!(close(t.p, 0.06913359319239237, 1e-9), "{}", t.p);
    }

    #[test]
    fn student_matches_reference() {
        // SciPy 1.17.1: scipy.stats.ttest_ind([1, 2, 3, 4], [2, 4, 6, 8, 10], equal_var=True)
        // gives t = -2.0578065752724592, p = 0.0786192350586938, df = 7.
        let t = student_t(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap();
        assert!(close(t.t, 2.0578065752724592, 1e-12), "{}", t.t);
        assert_eq!(t.df, 7.0);
        assert!(close(t.p, 0.0786192350586938, 1e-9), "{}", t.p);
        assert!(student_t(&[1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn welch_guards() {
        assert!(welch_t(&[1.0], &[1.0, 2.0]).is_err());
        assert!(welch_t(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
        let same = welch_t(&[2.0, 2.0], &[2.0, 2.0]).unwrap();
        assert_eq!(same.p, 1.0);
        let shifted = welch_t(&[2.0, 2.0], &[3.0, 3.0]).unwrap();
        assert_eq!(shifted.p, 0.0);
    }

    #[test]
    fn pooled_with_one_value_per_side_uses_the_prior() {
        let prior = PriorVariance {
            var: 0.01f64.powi(2),
            df: 30.0,
        };
        let t = pooled_t(&[0.0], &[0.05], prior).unwrap();
        assert!(close(t.se, 0.01 * 2f64.sqrt(), 1e-12));
        assert_eq!(t.df, 30.0);
        assert!(t.p < 0.01, "{}", t.p);
        let (lo, hi) = t.interval(0.05);
        assert!(lo > 0.0 && hi < 0.1);
    }
}
