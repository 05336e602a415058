//! Shifts of a whole run. A machine that is busier during one side's run
//! slows every case of it together; the cases' own spread says nothing of
//! that, so a geometric mean whose interval counts only the cases would
//! call such a shift a change of the code. The size of run-level shifts is
//! estimated from the base branch's history, the same machine measuring
//! earlier commits: per commit, how far all its cases sit from their own
//! means together. Without history it is not estimated, and the geometric
//! mean is not called a change.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::metric;
use crate::record::{CaseStatus, Record};
use crate::stats::t_quantile;

/// How the geometric mean's interval accounts for run-level shifts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RunLevel {
    /// From `commits` earlier runs of the base branch on this machine: one
    /// run's level varies with standard deviation `sd` (log scale).
    FromHistory { commits: usize, sd: f64 },
    /// Both sides were measured interleaved (`regress ab`, seen in the
    /// records' overlapping measuring windows): a shift of the machine
    /// falls on both alike, and the cases' spread is the interval.
    Interleaved,
    /// Without history: the interval counts the cases' spread only, and
    /// cannot tell a shift of the whole run from a change of the code.
    NotEstimated,
}

/// Whether base and head were measured interleaved: every head record's
/// measuring window overlaps a base record's of the same pipeline and
/// machine (as `regress ab` runs them: base, head, base, head… case by
/// case). A shift of the machine then fell on both sides alike. Records
/// still running, or sides measured one after the other, are not.
pub fn interleaved(base: &[Record], head: &[Record]) -> bool {
    let window = |r: &Record| r.finished_at.map(|end| (r.started_at, end));
    !head.is_empty()
        && head.iter().all(|h| {
            let Some((hs, he)) = window(h) else {
                return false;
            };
            base.iter().any(|b| {
                b.pipeline.name == h.pipeline.name
                    && b.machine.fingerprint == h.machine.fingerprint
                    && window(b).is_some_and(|(bs, be)| bs < he && hs < be)
            })
        })
}

/// Fewest earlier commits with shared cases for an estimate of the
/// run-level spread (two degrees of freedom).
const MIN_COMMITS: usize = 3;

/// The run-level standard deviation (log scale) the history shows, and
/// from how many commits: per commit, the mean over its cases of each
/// case's deviation from that case's mean over commits; the spread of those
/// means. Cases measured at one commit only say nothing and are left out.
/// The estimate also holds the cases' own noise divided by their number,
/// which only makes it larger (conservative).
pub fn run_level_sd(history: &[Record]) -> Option<(f64, usize)> {
    // (pipeline, case) -> commit -> log locations of its processes.
    let mut cells: HashMap<(&str, &str), HashMap<&str, Vec<f64>>> = HashMap::new();
    for r in history {
        for c in r.cases.iter().filter(|c| c.status == CaseStatus::Ok) {
            let Some(m) = c.metrics.get(metric::LATENCY) else {
                continue;
            };
            let locations = m
                .processes
                .iter()
                .filter_map(|p| p.location.map(|l| l.mean));
            cells
                .entry((r.pipeline.name.as_str(), c.id.as_str()))
                .or_default()
                .entry(r.commit.sha.as_str())
                .or_default()
                .extend(locations);
        }
    }
    let mut deviations: HashMap<&str, Vec<f64>> = HashMap::new();
    for by_commit in cells.values().filter(|b| b.len() >= 2) {
        let means: Vec<(&str, f64)> = by_commit
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(sha, v)| (*sha, v.iter().sum::<f64>() / v.len() as f64))
            .collect();
        if means.len() < 2 {
            continue;
        }
        let grand = means.iter().map(|(_, m)| m).sum::<f64>() / means.len() as f64;
        for (sha, m) in means {
            deviations.entry(sha).or_default().push(m - grand);
        }
    }
    let shifts: Vec<f64> = deviations
        .values()
        .map(|d| d.iter().sum::<f64>() / d.len() as f64)
        .collect();
    if shifts.len() < MIN_COMMITS {
        return None;
    }
    let n = shifts.len() as f64;
    let mean = shifts.iter().sum::<f64>() / n;
    let var = shifts.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.is_finite().then(|| (var.sqrt(), shifts.len()))
}

/// The interval of a mean log ratio over `k` cases whose spread is
/// `case_var` (the cases' sample variance), widened by the run-level spread
/// of both sides' runs (each `sd`, estimated from `commits`): the
/// half-width at `alpha`, with the degrees of freedom of the scarcer
/// source.
pub fn widened_half_width(case_var: f64, k: usize, sd: f64, commits: usize, alpha: f64) -> f64 {
    let var = case_var / k as f64 + 2.0 * sd * sd;
    let df = (k.min(commits) as f64 - 1.0).max(1.0);
    t_quantile(1.0 - alpha / 2.0, df) * var.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_grows_with_the_run_level_spread() {
        let narrow = widened_half_width(0.0004, 10, 0.0, 30, 0.01);
        let wide = widened_half_width(0.0004, 10, 0.05, 30, 0.01);
        assert!(wide > 5.0 * narrow, "{narrow} {wide}");
        // A run-level sd of 5 % gives about ±(t · √2 · 5 %).
        assert!(
            (wide - 3.25 * (2.0f64).sqrt() * 0.05).abs() < 0.03,
            "{wide}"
        );
    }
}
