//! View models: what a report shows of a comparison, with numbers as
//! numbers (`RowData`, the JSON report's rows) and preformatted cells
//! (`RowDisplay`) so every template shows them the same way. Templates get
//! these structs, never the domain types.

use serde::Serialize;

use super::format::{format_count, format_duration, format_p, format_pct, format_value};
use crate::compare::{Comparison, ExactChange, Row, Side, Speedup, Verdict};
use crate::metric::{self, Direction, MetricKind};
use crate::record::{reason_in_one_line, CommitInfo};
use crate::stats::{Method, Summary};

/// One side (base or head) as reports show it.
#[derive(Debug, Clone, Serialize)]
pub struct SideView {
    pub rev: String,
    pub sha: String,
    pub short: String,
    pub branch: Option<String>,
    pub summary: Option<String>,
    /// First-parent commits back from `rev` to the commit with results.
    pub distance: usize,
    pub records: usize,
    pub incomplete: usize,
}

impl SideView {
    fn new(side: &Side) -> SideView {
        let CommitInfo {
            sha,
            branch,
            summary,
            ..
        } = &side.commit;
        SideView {
            rev: side.rev.clone(),
            sha: sha.to_string(),
            short: sha.short().to_string(),
            branch: branch.clone(),
            summary: summary.clone(),
            distance: side.distance,
            records: side.records,
            incomplete: side.incomplete,
        }
    }
}

/// A sample summary (seconds, bytes, items per second or a count, as the
/// row's unit says).
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct RowData {
    pub pipeline: String,
    pub id: String,
    pub label: String,
    pub metric: &'static str,
    pub unit: &'static str,
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
#[derive(Debug, Clone, Copy, Serialize)]
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

/// Eager against one compiled mode of the same case, as numbers.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedupData {
    pub pipeline: String,
    pub group: String,
    pub mode: String,
    pub eager: f64,
    pub compiled: f64,
    /// eager / compiled at head: above 1 means compiled is faster.
    pub speedup: f64,
    pub base_speedup: Option<f64>,
    /// head speed-up / base speed-up − 1, in percent.
    pub speedup_change_pct: Option<f64>,
    /// Verdict of the compiled case's latency.
    pub verdict: Verdict,
}

/// A speed-up with its preformatted cells.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedupView {
    #[serde(flatten)]
    pub data: SpeedupData,
    pub display: SpeedupDisplay,
}

/// Preformatted cells of a speed-up row.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedupDisplay {
    pub eager: String,
    pub compiled: String,
    pub speedup: String,
    pub base_speedup: String,
    pub change: String,
}

/// Verdict counts, over every case and metric.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub regressed: usize,
    pub improved: usize,
    pub unchanged: usize,
    pub inconclusive: usize,
    pub new: usize,
    pub removed: usize,
    pub failed: usize,
    pub still_failing: usize,
    pub fixed: usize,
    pub missing: usize,
    pub skipped: usize,
    pub not_comparable: usize,
    pub total: usize,
}

impl Counts {
    fn of(rows: &[Row]) -> Counts {
        let mut counts = Counts {
            total: rows.len(),
            ..Counts::default()
        };
        for r in rows {
            *counts.slot(r.verdict) += 1;
        }
        counts
    }

    fn slot(&mut self, v: Verdict) -> &mut usize {
        match v {
            Verdict::REGRESSED => &mut self.regressed,
            Verdict::IMPROVED => &mut self.improved,
            Verdict::UNCHANGED => &mut self.unchanged,
            Verdict::Judged(_) => &mut self.inconclusive,
            Verdict::New => &mut self.new,
            Verdict::Removed => &mut self.removed,
            Verdict::Failed => &mut self.failed,
            Verdict::StillFailing => &mut self.still_failing,
            Verdict::Fixed => &mut self.fixed,
            Verdict::Missing => &mut self.missing,
            Verdict::Skipped => &mut self.skipped,
            Verdict::NotComparable => &mut self.not_comparable,
        }
    }

    /// `1 failed, 2 regressed, 5 unchanged`: failures first, zeros left out.
    fn phrase(&self) -> String {
        let parts: Vec<String> = [
            (self.failed, "failed"),
            (self.missing, "missing"),
            (self.regressed, "regressed"),
            (self.improved, "improved"),
            (self.unchanged, "unchanged"),
            (self.inconclusive, "inconclusive"),
            (self.new, "new"),
            (self.removed, "removed"),
            (self.fixed, "fixed"),
            (self.still_failing, "still failing"),
            (self.skipped, "skipped"),
            (self.not_comparable, "not comparable"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}"))
        .collect();
        parts.join(", ")
    }
}

/// The geometric mean of head/base over comparable latency cases.
#[derive(Debug, Clone, Serialize)]
pub struct GeoMeanView {
    pub ratio: f64,
    pub lo: f64,
    pub hi: f64,
    pub cases: usize,
    /// `0.97× (0.95–0.99) over 8 cases`.
    pub display: String,
}

/// A case that fails at head and did not at base: reports list these first.
#[derive(Debug, Clone, Serialize)]
pub struct FailureView {
    pub pipeline: String,
    pub label: String,
    /// Status and reason, as the worker reported them.
    pub reason: String,
    /// The reason in one line: its first line and, for a traceback, its
    /// last (where the exception is named).
    pub summary: String,
}

/// The rows and speed-ups of one pipeline, for reports that show a table each.
#[derive(Debug, Clone, Serialize)]
pub struct SectionView {
    pub pipeline: String,
    /// Latency, one row per case.
    pub rows: Vec<RowView>,
    /// Throughput, compile time, peak memory and changed counters.
    pub other_rows: Vec<RowView>,
    pub speedups: Vec<SpeedupView>,
}

/// Everything a comparison report shows.
#[derive(Debug, Clone, Serialize)]
pub struct CompareView {
    pub pipelines: Vec<String>,
    /// The rows, one section per pipeline in order of appearance.
    pub sections: Vec<SectionView>,
    pub base: SideView,
    pub head: SideView,
    pub counts: Counts,
    pub geomean: Option<GeoMeanView>,
    /// One line that says what happened, for headings and terminals.
    pub headline: String,
    pub regressed: bool,
    /// Cases that fail at head and did not at base, with their reasons.
    pub failures: Vec<FailureView>,
    /// Every row (also in `sections`), for templates that want one table.
    pub rows: Vec<RowView>,
    /// Every speed-up (also in `sections`).
    pub speedups: Vec<SpeedupView>,
    pub notes: Vec<String>,
    /// Threshold and alpha of the first row, for the legend.
    pub threshold_pct: Option<f64>,
    pub alpha: Option<f64>,
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

fn exact_display(x: &ExactChange) -> (String, String, String) {
    let base = count_range(x.base_min, x.base_max);
    let head = count_range(x.head_min, x.head_max);
    let change = format!("{base} → {head}");
    (base, head, change)
}

fn row_view(r: &Row) -> RowView {
    let unit = r.metric.unit;
    let cell = |s: &Option<Summary>| {
        s.as_ref()
            .map_or("—".to_string(), |s| format_value(s.median, unit))
    };
    let e = r.evidence;
    let finite = |x: f64| x.is_finite().then_some(x);
    let mde = e.and_then(|e| finite(e.mde)).map(|m| pct(m).abs());
    let (mut base, mut head) = (cell(&r.base), cell(&r.head));
    let mut change = match e {
        Some(e) if e.lo.is_finite() && e.hi.is_finite() => format!(
            "{} ({}…{})",
            format_pct(pct(e.log_ratio)),
            format_pct(pct(e.lo)),
            format_pct(pct(e.hi))
        ),
        Some(e) => format_pct(pct(e.log_ratio)),
        None => "—".to_string(),
    };
    if let Some(x) = &r.exact {
        (base, head, change) = exact_display(x);
    }
    let data = RowData {
        pipeline: r.pipeline.clone(),
        id: r.id.to_string(),
        label: r.label.clone(),
        metric: r.metric.name,
        unit,
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
        min_detectable_pct: mde,
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
    };
    let inconclusive = r.verdict == Verdict::INCONCLUSIVE && r.exact.is_none();
    RowView {
        display: RowDisplay {
            base,
            head,
            change,
            p: e.map_or("—".to_string(), |e| format_p(e.p)),
            q: r.q.map_or("—".to_string(), format_p),
            verdict: r.verdict.as_str().replace('_', " "),
            detectable: match (inconclusive, mde) {
                (true, Some(m)) => format!("could detect ±{m:.1}%"),
                (true, None) => "too few samples for a test".to_string(),
                _ => String::new(),
            },
        },
        data,
    }
}

fn speedup_view(s: &Speedup) -> SpeedupView {
    let change = s.change_pct();
    SpeedupView {
        data: SpeedupData {
            pipeline: s.pipeline.clone(),
            group: s.group.clone(),
            mode: s.mode.to_string(),
            eager: s.eager,
            compiled: s.compiled,
            speedup: s.speedup,
            base_speedup: s.base_speedup,
            speedup_change_pct: change,
            verdict: s.verdict,
        },
        display: SpeedupDisplay {
            eager: format_duration(s.eager),
            compiled: format_duration(s.compiled),
            speedup: format!("{:.2}x", s.speedup),
            base_speedup: s
                .base_speedup
                .map_or("—".to_string(), |b| format!("{b:.2}x")),
            change: change.map_or("—".to_string(), format_pct),
        },
    }
}

impl CompareView {
    /// Builds the view of a comparison.
    pub fn new(c: &Comparison) -> CompareView {
        let counts = Counts::of(&c.rows);
        let mut pipelines: Vec<String> = Vec::new();
        for r in &c.rows {
            if !pipelines.contains(&r.pipeline) {
                pipelines.push(r.pipeline.clone());
            }
        }
        let rows: Vec<RowView> = c.rows.iter().map(row_view).collect();
        let speedups: Vec<SpeedupView> = c.speedups.iter().map(speedup_view).collect();
        let sections = pipelines
            .iter()
            .map(|name| {
                let of = |r: &&RowView| &r.data.pipeline == name;
                SectionView {
                    pipeline: name.clone(),
                    rows: rows
                        .iter()
                        .filter(of)
                        .filter(|r| r.data.metric == metric::LATENCY)
                        .cloned()
                        .collect(),
                    other_rows: rows
                        .iter()
                        .filter(of)
                        .filter(|r| r.data.metric != metric::LATENCY)
                        .cloned()
                        .collect(),
                    speedups: speedups
                        .iter()
                        .filter(|s| &s.data.pipeline == name)
                        .cloned()
                        .collect(),
                }
            })
            .collect();
        let geomean = c.geomean.as_ref().map(|g| GeoMeanView {
            ratio: g.ratio,
            lo: g.lo,
            hi: g.hi,
            cases: g.cases,
            display: format!(
                "{:.3}× ({:.3}–{:.3}) over {} case{}",
                g.ratio,
                g.lo,
                g.hi,
                g.cases,
                if g.cases == 1 { "" } else { "s" }
            ),
        });
        let mut headline = format!("{}: {}", pipelines.join(", "), counts.phrase());
        if let Some(g) = &geomean {
            headline.push_str(&format!("; geometric mean {}", g.display));
        }
        let failures = c
            .failures()
            .map(|r| {
                let reason = r.failure.clone().unwrap_or_default();
                FailureView {
                    pipeline: r.pipeline.clone(),
                    label: r.label.clone(),
                    summary: reason_in_one_line(&reason),
                    reason,
                }
            })
            .collect();
        CompareView {
            sections,
            headline,
            regressed: counts.regressed > 0,
            pipelines,
            base: SideView::new(&c.base),
            head: SideView::new(&c.head),
            counts,
            geomean,
            failures,
            threshold_pct: c.rows.first().map(|r| r.compare.threshold * 100.0),
            alpha: c.rows.first().map(|r| r.compare.alpha),
            rows,
            speedups,
            notes: c.notes.clone(),
        }
    }
}
