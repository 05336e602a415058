//! Benjamini–Hochberg adjusted p-values (q-values), so that testing hundreds
//! of cases at once does not turn noise into a red check.
//!
//! Reference: Benjamini & Hochberg (1995), "Controlling the false discovery
//! rate: a practical and powerful approach to multiple testing", J. R.
//! Statist. Soc. B 57(1). The adjusted value of the i-th smallest of m
//! p-values is min over j ≥ i of p_(j)·m/j, capped at 1 (as R's p.adjust).

use super::StatsError;

/// q-values in the order of `ps`; every q is at least its p.
pub fn bh_qvalues(ps: &[f64]) -> Result<Vec<f64>, StatsError> {
    if let Some(index) = ps.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(StatsError::NonFinite {
            index,
            value: ps[index],
        });
    }
    let m = ps.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| ps[a].total_cmp(&ps[b]));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(ps[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0).max(ps[i]);
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference() {
        // SciPy 1.17.1 scipy.stats.false_discovery_control and statsmodels
        // 0.15.0 multipletests(method="fdr_bh") both give
        //   [0.025, 0.05, 0.05, 0.025, 0.5]
        let q = bh_qvalues(&[0.01, 0.04, 0.03, 0.005, 0.5]).unwrap();
        let want = [0.025, 0.05, 0.05, 0.025, 0.5];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
    }

    #[test]
    fn guards() {
        assert_eq!(bh_qvalues(&[]).unwrap(), Vec::<f64>::new());
        assert_eq!(bh_qvalues(&[0.2]).unwrap(), vec![0.2]);
        assert!(bh_qvalues(&[f64::NAN]).is_err());
        assert!(bh_qvalues(&[1.5]).is_err());
    }
}
