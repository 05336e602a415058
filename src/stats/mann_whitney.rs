//! The Mann–Whitney U test (Wilcoxon rank-sum): does one sample tend to be
//! larger than the other? Distribution-free, so heavy-tailed latencies and
//! outliers do not break it the way they break a t-test on raw times.
//!
//! References: Mann & Whitney (1947), "On a test of whether one of two random
//! variables is stochastically larger than the other", Ann. Math. Statist.
//! 18(1); exact null distribution by their recurrence; normal approximation
//! with tie correction and continuity correction as in Hollander, Wolfe &
//! Chicken, *Nonparametric Statistical Methods*, 3rd ed., §4.1.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use super::{check_finite, Points, StatsError};

/// Largest sample size per side for the exact distribution; beyond it the
/// normal approximation is accurate to well under the alphas in use, and the
/// exact table would grow as n⁴.
pub const EXACT_MAX_N: usize = 20;

/// How the p-value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UMethod {
    Exact,
    Normal,
}

/// The result of a two-sided Mann–Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UTest {
    /// U of the first sample: pairs (x, y) with x > y, ties counting ½.
    pub u: f64,
    pub p: f64,
    pub method: UMethod,
}

/// Two-sided Mann–Whitney U test of `a` against `b`.
///
/// Exact when both sides have at most [`EXACT_MAX_N`] samples and there are no
/// ties; otherwise the normal approximation with tie and continuity
/// correction. Needs at least one sample per side; when every value is tied
/// there is no evidence of a difference and p = 1.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Result<UTest, StatsError> {
    if a.is_empty() || b.is_empty() {
        return Err(StatsError::Empty);
    }
    check_finite(a)?;
    check_finite(b)?;
    let (n1, n2) = (a.len(), b.len());
    let n = n1 + n2;
    let mut pooled: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));

    // Average ranks over runs of ties; collect t³ − t for the variance correction.
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum_a += avg_rank * pooled[i..j].iter().filter(|p| p.1).count() as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let u = rank_sum_a - (n1 * (n1 + 1)) as f64 / 2.0;
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);

    if tie_term == 0.0 && n1 <= EXACT_MAX_N && n2 <= EXACT_MAX_N {
        let u_small = u.min(n1f * n2f - u);
        let counts = exact_counts(n1, n2);
        let total: f64 = counts.iter().sum();
        let tail: f64 = counts[..=(u_small.round() as usize)].iter().sum();
        return Ok(UTest {
            u,
            p: (2.0 * tail / total).min(1.0),
            method: UMethod::Exact,
        });
    }

    let mean = n1f * n2f / 2.0;
    let var = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if var.is_nan() || var <= 0.0 {
        return Ok(UTest {
            u,
            p: 1.0,
            method: UMethod::Normal,
        });
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    let normal = Normal::standard();
    let p = (2.0 * normal.sf(z)).min(1.0);
    Ok(UTest {
        u,
        p,
        method: UMethod::Normal,
    })
}

/// The two-sided test on points that may stand for more samples than are
/// stored (`Points`). With every sample present this is
/// [`mann_whitney_u`]; otherwise the normal approximation with the true
/// counts, each point's rank spread over the samples it stands for and
/// ties counted in samples, so a process of 40,000 iterations kept as 64
/// points weighs as 40,000.
pub fn mann_whitney_points(a: &Points, b: &Points) -> Result<UTest, StatsError> {
    if a.is_exact() && b.is_exact() {
        return mann_whitney_u(a.values(), b.values());
    }
    if a.is_empty() || b.is_empty() {
        return Err(StatsError::Empty);
    }
    let mut pooled: Vec<(f64, f64, bool)> = a
        .values()
        .iter()
        .zip(a.weights())
        .map(|(&x, &w)| (x, w, true))
        .chain(
            b.values()
                .iter()
                .zip(b.weights())
                .map(|(&x, &w)| (x, w, false)),
        )
        .collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (n1, n2) = (a.total(), b.total());
    let n = n1 + n2;
    let (mut rank_sum_a, mut tie_term, mut before) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i + 1;
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let group = &pooled[i..j];
        let t: f64 = group.iter().map(|p| p.1).sum();
        let in_a: f64 = group.iter().filter(|p| p.2).map(|p| p.1).sum();
        // Ranks before+1 ..= before+t, averaged over the tie.
        rank_sum_a += (before + (t + 1.0) / 2.0) * in_a;
        tie_term += t * t * t - t;
        before += t;
        i = j;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var.is_nan() || var <= 0.0 {
        return Ok(UTest {
            u,
            p: 1.0,
            method: UMethod::Normal,
        });
    }
    let z = ((u - n1 * n2 / 2.0).abs() - 0.5).max(0.0) / var.sqrt();
    Ok(UTest {
        u,
        p: (2.0 * Normal::standard().sf(z)).min(1.0),
        method: UMethod::Normal,
    })
}

/// Number of orderings of m + n distinct values giving each U from 0 to m·n,
/// by the recurrence c(u; m, n) = c(u − n; m − 1, n) + c(u; m, n − 1).
pub(crate) fn exact_counts(m: usize, n: usize) -> Vec<f64> {
    // table[i][j] holds the counts for sizes (i, j).
    let mut table: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); n + 1]; m + 1];
    for i in 0..=m {
        for j in 0..=n {
            let mut c = vec![0.0; i * j + 1];
            if i == 0 || j == 0 {
                c[0] = 1.0;
            } else {
                for (u, slot) in c.iter_mut().enumerate() {
                    let from_a = if u >= j {
                        table[i - 1][j].get(u - j).copied().unwrap_or(0.0)
                    } else {
                        0.0
                    };
                    let from_b = table[i][j - 1].get(u).copied().unwrap_or(0.0);
                    *slot = from_a + from_b;
                }
            }
            table[i][j] = c;
        }
    }
    std::mem::take(&mut table[m][n])
}

#[cfg(test)]
mod tests {
    //! Reference p-values computed once with SciPy 1.17.1,
    //! `scipy.stats.mannwhitneyu(a, b, alternative="two-sided", method=...)`,
    //! whose statistic is also U of the first sample.
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn exact_fully_separated() {
        // All of a below all of b: U = 0 and p = 2 / C(10, 5) = 2 / 252.
        let t = mann_whitney_u(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]).unwrap();
        assert_eq!(t.u, 0.0);
        assert_eq!(t.method, UMethod::Exact);
        assert!(close(t.p, 2.0 / 252.0, 1e-12), "{}", t.p);
        assert!(close(t.p, 0.007936507936507936, 1e-12)); // SciPy, method="exact"
    }

    #[test]
    fn exact_counts_sum_to_binomial() {
        let c = exact_counts(4, 3);
        assert_eq!(c.iter().sum::<f64>(), 35.0); // C(7, 3)
        assert_eq!(c.len(), 13);
        // Symmetric about m·n / 2.
        for u in 0..c.len() {
            assert_eq!(c[u], c[c.len() - 1 - u]);
        }
    }

    #[test]
    fn exact_interleaved_is_not_significant() {
        // a = 1,3,5,7 and b = 2,4,6,8: U = 6 of 16. Counts of U = 0..6 for
        // sizes (4, 4) are 1, 1, 2, 3, 5, 5, 7: P(U ≤ 6) = 24/70, p = 48/70.
        let t = mann_whitney_u(&[1.0, 3.0, 5.0, 7.0], &[2.0, 4.0, 6.0, 8.0]).unwrap();
        assert_eq!(t.u, 6.0);
        assert!(close(t.p, 48.0 / 70.0, 1e-12), "{}", t.p);
        assert!(close(t.p, 0.6857142857142857, 1e-12)); // SciPy, method="exact"
    }

    #[test]
    fn normal_with_ties() {
        // Ties force the normal approximation. a = [1,2,2,3], b = [2,3,3,4]:
        // ranks 1, 3, 3, 3, 6, 6, 6, 8 -> R_a = 1+3+3+6 = 13, U = 13 − 10 = 3;
        // tie term 2·(27 − 3) = 48, var = 16/12·(9 − 48/56) = 10.857142...;
        // z = (|3 − 8| − 0.5)/sqrt(var) = 1.365670..., p = 2·sf(z) = 0.172037...
        let t = mann_whitney_u(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 3.0, 4.0]).unwrap();
        assert_eq!(t.method, UMethod::Normal);
        assert_eq!(t.u, 3.0);
        let z = 4.5 / (16.0_f64 / 12.0 * (9.0 - 48.0 / 56.0)).sqrt();
        let expected = 2.0 * Normal::standard().sf(z);
        assert!(close(t.p, expected, 1e-12));
        assert!(close(t.p, 0.1720337089218229, 1e-9), "{}", t.p); // SciPy, method="asymptotic"
    }

    #[test]
    fn normal_approximation_beyond_the_exact_range() {
        let a = [
            1.1, 2.3, 2.9, 4.2, 5.0, 6.1, 7.7, 8.4, 9.9, 10.5, 11.2, 12.8, 13.3, 14.9, 15.1, 16.6,
            17.2, 18.8, 19.4, 20.0, 21.7, 22.1,
        ];
        let b: Vec<f64> = a[..21].iter().map(|x| x * 1.3 + 0.5).collect();
        let t = mann_whitney_u(&a, &b).unwrap();
        assert_eq!(t.method, UMethod::Normal);
        assert_eq!(t.u, 171.0);
        assert!(close(t.p, 0.14827810191656352, 1e-9), "{}", t.p); // SciPy, method="asymptotic"
    }

    #[test]
    fn all_tied_gives_p_one() {
        let t = mann_whitney_u(&[2.0; 5], &[2.0; 7]).unwrap();
        assert_eq!(t.p, 1.0);
    }

    #[test]
    fn guards() {
        assert_eq!(mann_whitney_u(&[], &[1.0]), Err(StatsError::Empty));
        assert!(mann_whitney_u(&[1.0, f64::NAN], &[1.0]).is_err());
        let single = mann_whitney_u(&[1.0], &[2.0]).unwrap();
        assert_eq!(single.p, 1.0);
    }
}
