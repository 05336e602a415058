//! Aggregates over the rows of a comparison: the geometric mean of head /
//! base, and the eager-vs-compiled speed-up table the seed write-ups print
//! by hand.

use serde::Serialize;

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
}

/// The geometric mean of the judged latency rows with its interval: one
/// case gives its own interval, several the t interval of their mean log.
pub(super) fn geomean(rows: &[Row], alpha: f64) -> Option<GeoMean> {
    let judged: Vec<Evidence> = rows
        .iter()
        .filter(|r| r.metric.name == metric::LATENCY && r.verdict.decision().is_some())
        .filter_map(|r| r.evidence)
        .filter(|e| e.log_ratio.is_finite())
        .collect();
    let logs: Vec<f64> = judged.iter().map(|e| e.log_ratio).collect();
    let (mean, lo, hi) = match judged.as_slice() {
        [] => return None,
        [one] => (one.log_ratio, one.lo, one.hi),
        _ => mean_interval(&logs, alpha)?,
    };
    Some(GeoMean {
        ratio: mean.exp(),
        lo: lo.exp(),
        hi: hi.exp(),
        cases: logs.len(),
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
