//! Rows: one case and metric of a comparison, as numbers (`RowData`, the
//! JSON report's rows) and as preformatted cells (`RowDisplay`), the cells
//! computed from the numbers alone so a report read back from JSON renders
//! as the comparison did.

use serde::{Deserialize, Serialize};

use super::format::{format_count, format_p, format_pct, format_value};
use crate::compare::{Row, Verdict};
use crate::metric::{Direction, MetricKind};
use crate::stats::{Method, Summary};
/// A sample summary (seconds, bytes, items per second or a count, as the
/// row's unit says).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatView {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub min: f64,
    pub n: usize,
    pub processes: usize,
    pub rel_iqr: f64,
    pub outliers: usize,
    pub noisy: bool,
}

impl StatView {
    fn new(s: &Summary, processes: usize) -> StatView {
        StatView {
            median: s.median,
            p25: s.p25,
            p75: s.p75,
            min: s.min,
            n: s.n,
            processes,
            rel_iqr: s.rel_iqr,
            outliers: s.outliers,
            noisy: s.is_noisy(),
        }
    }
}

/// One case and metric of a comparison, as numbers: the JSON report's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowData {
    pub pipeline: String,
    pub id: String,
    pub label: String,
    pub metric: String,
    pub unit: String,
    pub direction: Direction,
    pub kind: MetricKind,
    pub verdict: Verdict,
    pub base: Option<StatView>,
    pub head: Option<StatView>,
    /// Estimated head / base.
    pub ratio: Option<f64>,
    /// (1 − alpha) interval of the ratio.
    pub ratio_lo: Option<f64>,
    pub ratio_hi: Option<f64>,
    /// (ratio − 1) in percent.
    pub change_pct: Option<f64>,
    pub p: Option<f64>,
    pub q: Option<f64>,
    pub method: Option<Method>,
    /// Smallest detectable change in percent at alpha with 80 % power.
    pub min_detectable_pct: Option<f64>,
    /// For counters: the lowest and highest count of a process on each side.
    pub exact: Option<ExactView>,
    pub history_commits: usize,
    pub threshold_pct: f64,
    pub alpha: f64,
    pub note: Option<String>,
    /// For failed rows: the head's status and whole reason.
    pub failure: Option<String>,
}

/// A counter's values on both sides.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ExactView {
    pub base_min: f64,
    pub base_max: f64,
    pub head_min: f64,
    pub head_max: f64,
}

/// Preformatted cells, so every template shows numbers the same way.
#[derive(Debug, Clone, Serialize)]
pub struct RowDisplay {
    pub base: String,
    pub head: String,
    /// The change with its interval: `+4.1% (+2.0…+6.3)`; `0 → 2` for counters.
    pub change: String,
    pub p: String,
    pub q: String,
    pub verdict: String,
    /// For inconclusive rows: the smallest change these samples could detect.
    pub detectable: String,
}

/// A row with its preformatted cells, for markdown and the terminal.
#[derive(Debug, Clone, Serialize)]
pub struct RowView {
    #[serde(flatten)]
    pub data: RowData,
    pub display: RowDisplay,
}
fn pct(log_ratio: f64) -> f64 {
    (log_ratio.exp() - 1.0) * 100.0
}

/// `3` or `2–3`.
fn count_range(lo: f64, hi: f64) -> String {
    if lo == hi {
        format_count(lo)
    } else {
        format!("{}–{}", format_count(lo), format_count(hi))
    }
}

fn exact_display(x: &ExactView) -> (String, String, String) {
    let base = count_range(x.base_min, x.base_max);
    let head = count_range(x.head_min, x.head_max);
    let change = format!("{base} → {head}");
    (base, head, change)
}

pub(super) fn row_data(r: &Row) -> RowData {
    let e = r.evidence;
    let finite = |x: f64| x.is_finite().then_some(x);
    RowData {
        pipeline: r.pipeline.clone(),
        id: r.id.to_string(),
        label: r.label.clone(),
        metric: r.metric.name.to_string(),
        unit: r.metric.unit.to_string(),
        direction: r.metric.direction,
        kind: r.metric.kind,
        verdict: r.verdict,
        base: r.base.as_ref().map(|s| StatView::new(s, r.base_processes)),
        head: r.head.as_ref().map(|s| StatView::new(s, r.head_processes)),
        ratio: r.ratio(),
        ratio_lo: e.and_then(|e| finite(e.lo)).map(f64::exp),
        ratio_hi: e.and_then(|e| finite(e.hi)).map(f64::exp),
        change_pct: e.map(|e| pct(e.log_ratio)),
        p: e.map(|e| e.p),
        q: r.q,
        method: e.map(|e| e.method),
        min_detectable_pct: e.and_then(|e| finite(e.mde)).map(|m| pct(m).abs()),
        exact: r.exact.map(|x| ExactView {
            base_min: x.base_min,
            base_max: x.base_max,
            head_min: x.head_min,
            head_max: x.head_max,
        }),
        history_commits: r.history_commits,
        threshold_pct: r.compare.threshold * 100.0,
        alpha: r.compare.alpha,
        note: r.note.clone(),
        failure: r.failure.clone(),
    }
}

/// A ratio's change in percent.
fn ratio_pct(ratio: f64) -> f64 {
    (ratio - 1.0) * 100.0
}

impl RowDisplay {
    /// The cells of a row, from its numbers alone (so a JSON report read
    /// back renders exactly as the comparison did).
    pub fn of(d: &RowData) -> RowDisplay {
        let cell = |s: &Option<StatView>| {
            s.as_ref()
                .map_or("—".to_string(), |s| format_value(s.median, &d.unit))
        };
        let (mut base, mut head) = (cell(&d.base), cell(&d.head));
        let mut change = match (d.change_pct, d.ratio_lo, d.ratio_hi) {
            (Some(c), Some(lo), Some(hi)) => format!(
                "{} ({}…{})",
                format_pct(c),
                format_pct(ratio_pct(lo)),
                format_pct(ratio_pct(hi))
            ),
            (Some(c), _, _) => format_pct(c),
            (None, _, _) => "—".to_string(),
        };
        if let Some(x) = &d.exact {
            (base, head, change) = exact_display(x);
        }
        let inconclusive = d.verdict == Verdict::INCONCLUSIVE && d.exact.is_none();
        RowDisplay {
            base,
            head,
            change,
            p: d.p.map_or("—".to_string(), format_p),
            q: d.q.map_or("—".to_string(), format_p),
            verdict: d.verdict.as_str().replace('_', " "),
            detectable: match (inconclusive, d.min_detectable_pct) {
                (true, Some(m)) => format!("could detect ±{m:.1}%"),
                (true, None) => "too few samples for a test".to_string(),
                _ => String::new(),
            },
        }
    }
}

impl RowView {
    /// A row with its cells.
    pub fn new(data: RowData) -> RowView {
        RowView {
            display: RowDisplay::of(&data),
            data,
        }
    }
}
