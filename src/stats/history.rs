//! Run-to-run spread from earlier runs of the same case on the same machine.
//! With it, a comparison of one or a few processes per side knows how much
//! whole runs move by themselves, which it cannot see from its own samples.
//!
//! Earlier commits differ in code, so their levels are not comparable with
//! each other; the spread of the processes *within* one commit is pure
//! run-to-run noise. That pooled within-commit variance is the estimate,
//! with residuals winsorised at 3.5 robust standard deviations so that one
//! broken run cannot inflate it. Only when no commit had two processes does
//! it fall back to successive differences between commits, scaled from
//! their median absolute value (Rousseeuw & Croux 1993: MAD·1.4826 is
//! consistent for σ; differences of two runs have variance 2σ²), with the
//! degrees of freedom cut to the MAD's 37 % efficiency (Huber, *Robust
//! Statistics*, 1981, §5.5).

use super::PriorVariance;

/// Consistency factor of the MAD for a normal standard deviation.
const MAD_TO_SD: f64 = 1.4826;
/// Residuals beyond this many robust SDs are clipped.
const WINSOR_SDS: f64 = 3.5;
/// Asymptotic efficiency of the MAD relative to the SD under normality.
const MAD_EFFICIENCY: f64 = 0.37;

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Variance of one process's log median, from groups of log per-process
/// medians (one group per earlier commit). `None` when history is too thin.
pub fn run_to_run_variance(groups: &[Vec<f64>]) -> Option<PriorVariance> {
    let groups: Vec<&Vec<f64>> = groups
        .iter()
        .filter(|g| g.iter().all(|x| x.is_finite()) && !g.is_empty())
        .collect();
    let mut residuals = Vec::new();
    let mut df = 0.0;
    for g in groups.iter().filter(|g| g.len() >= 2) {
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        // Scale so each residual has the variance of one observation.
        let scale = (g.len() as f64 / (g.len() as f64 - 1.0)).sqrt();
        residuals.extend(g.iter().map(|x| (x - mean) * scale));
        df += g.len() as f64 - 1.0;
    }
    if df >= 2.0 {
        let mut abs: Vec<f64> = residuals.iter().map(|r| r.abs()).collect();
        let robust_sd = MAD_TO_SD * median(&mut abs);
        let clip = WINSOR_SDS * robust_sd;
        let ss: f64 = residuals
            .iter()
            .map(|r| {
                if robust_sd > 0.0 {
                    r.clamp(-clip, clip)
                } else {
                    *r
                }
            })
            .map(|r| r * r)
            .sum();
        // Residuals were scaled up, so dividing by their count is unbiased.
        return Some(PriorVariance {
            var: ss / residuals.len() as f64,
            df,
        });
    }
    let means: Vec<f64> = groups
        .iter()
        .map(|g| g.iter().sum::<f64>() / g.len() as f64)
        .collect();
    if means.len() < 4 {
        return None;
    }
    let mut diffs: Vec<f64> = means.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let sd = MAD_TO_SD * median(&mut diffs) / std::f64::consts::SQRT_2;
    let df = (MAD_EFFICIENCY * (means.len() - 1) as f64).floor().max(1.0);
    Some(PriorVariance { var: sd * sd, df })
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
    fn one_broken_run_does_not_blow_up_the_estimate() {
        let mut groups: Vec<Vec<f64>> = (0..10).map(|_| vec![-0.01, 0.0, 0.01]).collect();
        groups[3] = vec![-0.01, 0.0, 2.0];
        let prior = run_to_run_variance(&groups).unwrap();
        assert!(prior.var < 1e-3, "{}", prior.var);
    }

    #[test]
    fn single_process_history_uses_successive_differences() {
        let groups: Vec<Vec<f64>> = [0.0, 0.02, 0.0, 0.02, 0.0, 0.02]
            .iter()
            .map(|x| vec![*x])
            .collect();
        let prior = run_to_run_variance(&groups).unwrap();
        let sd = 1.4826 * 0.02 / 2f64.sqrt();
        assert!((prior.var - sd * sd).abs() < 1e-12);
        assert_eq!(prior.df, 1.0);
        assert!(run_to_run_variance(&[vec![0.0], vec![1.0]]).is_none());
        assert!(run_to_run_variance(&[]).is_none());
    }
}
