//! Aggregates over the rows of a comparison: the geometric mean of head /
//! base, and the eager-vs-compiled speed-up table the seed write-ups print
//! by hand.

use serde::Serialize;

use super::run_level::{widened_half_width, RunLevel};
use super::{Row, Verdict};
use crate::metric;
use crate::spec::CompileMode;
use crate::stats::{mean_interval, Evidence};

/// Geometric mean of head/base over the comparable latency rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GeoMean {
    pub ratio: f64,
    pub lo: f64,
    pub hi: f64,
    pub cases: usize,
    /// Whether the interval accounts for shifts of a whole run.
    pub run_level: RunLevel,
}

/// The geometric mean of the judged latency rows with its interval: one
/// case gives its own interval, several the t interval of their mean log,
/// widened by the run-level spread `run_sd` (log scale, from that many
/// commits of history) when it is known.
pub(super) fn geomean(rows: &[Row], alpha: f64, run_sd: Option<(f64, usize)>) -> Option<GeoMean> {
    let judged: Vec<Evidence> = rows
        .iter()
        .filter(|r| r.metric.name == metric::LATENCY && r.verdict.decision().is_some())
        .filter_map(|r| r.evidence)
        .filter(|e| e.log_ratio.is_finite())
        .collect();
    let logs: Vec<f64> = judged.iter().map(|e| e.log_ratio).collect();
    let (mean, mut lo, mut hi) = match judged.as_slice() {
        [] => return None,
        [one] => (one.log_ratio, one.lo, one.hi),
        _ => mean_interval(&logs, alpha)?,
    };
    let run_level = match run_sd {
        Some((sd, commits)) => {
            if logs.len() >= 2 {
                let k = logs.len() as f64;
                let case_var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (k - 1.0);
                let half = widened_half_width(case_var, logs.len(), sd, commits, alpha);
                (lo, hi) = (mean - half, mean + half);
            } else {
                // One case: its own interval already holds its processes'
                // spread; the run's shift adds on both sides.
                let half = widened_half_width(0.0, 1, sd, commits, alpha);
                (lo, hi) = (lo.min(mean - half), hi.max(mean + half));
            }
            RunLevel::FromHistory { commits, sd }
        }
        None => RunLevel::NotEstimated,
    };
    Some(GeoMean {
        ratio: mean.exp(),
        lo: lo.exp(),
        hi: hi.exp(),
        cases: logs.len(),
        run_level,
    })
}

/// Eager against one compiled mode of the same case.
#[derive(Debug, Clone, PartialEq)]
pub struct Speedup {
    pub pipeline: String,
    /// The case label without its compile mode.
    pub group: String,
    pub mode: CompileMode,
    /// Median latency at head, seconds.
    pub eager: f64,
    pub compiled: f64,
    /// eager / compiled at head: above 1 means compiled is faster.
    pub speedup: f64,
    /// The same at base, when both were measured there.
    pub base_speedup: Option<f64>,
    /// Verdict of the compiled case's latency.
    pub verdict: Verdict,
}

impl Speedup {
    /// head speed-up / base speed-up − 1, in percent.
    pub fn change_pct(&self) -> Option<f64> {
        self.base_speedup.map(|b| (self.speedup / b - 1.0) * 100.0)
    }
}

/// Every eager / compiled pair of latency rows that share a group.
pub(super) fn speedups(rows: &[Row]) -> Vec<Speedup> {
    let latency = |r: &&Row| r.metric.name == metric::LATENCY;
    let mut out = Vec::new();
    for eager in rows
        .iter()
        .filter(latency)
        .filter(|r| r.compile == Some(CompileMode::Eager))
    {
        for compiled in rows.iter().filter(latency).filter(|r| {
            r.pipeline == eager.pipeline
                && r.group == eager.group
                && r.compile.is_some_and(|m| m != CompileMode::Eager)
        }) {
            let (Some(e), Some(k), Some(mode)) = (&eager.head, &compiled.head, compiled.compile)
            else {
                continue;
            };
            let base_speedup = match (&eager.base, &compiled.base) {
                (Some(eb), Some(kb)) => Some(eb.median / kb.median),
                _ => None,
            };
            out.push(Speedup {
                pipeline: eager.pipeline.clone(),
                group: eager.group.clone(),
                mode,
                eager: e.median,
                compiled: k.median,
                speedup: e.median / k.median,
                base_speedup,
                verdict: compiled.verdict,
            });
        }
    }
    out
}
