//! View models: what a report shows of a comparison, with numbers as
//! numbers (`RowData`, the JSON report's rows) and preformatted cells
//! (`RowDisplay`) so every template shows them the same way. Templates get
//! these structs, never the domain types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::format::{format_duration, format_pct};
use super::row::{row_data, RowData, RowView};
use crate::compare::{Comparison, FailOn, Gate, Overhead, RunLevel, Side, Speedup, Verdict};
use crate::metric;
use crate::record::{reason_in_one_line, CommitInfo};

/// One side (base or head) as reports show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Eager against one compiled mode of the same case, as numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Python eager against native eager on the same built-in model, as
/// numbers (seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverheadData {
    pub model: String,
    pub group: String,
    pub python_pipeline: String,
    pub native_pipeline: String,
    pub python: f64,
    pub native: f64,
    /// python − native at head.
    pub overhead: f64,
    /// The overhead's share of the python latency, in percent.
    pub share_pct: f64,
    pub base_overhead: Option<f64>,
}

/// A python overhead with its preformatted cells.
#[derive(Debug, Clone, Serialize)]
pub struct OverheadView {
    #[serde(flatten)]
    pub data: OverheadData,
    pub display: OverheadDisplay,
}

/// Preformatted cells of a python-overhead row.
#[derive(Debug, Clone, Serialize)]
pub struct OverheadDisplay {
    pub python: String,
    pub native: String,
    pub overhead: String,
    pub share: String,
    pub base_overhead: String,
}

fn overhead_data(o: &Overhead) -> OverheadData {
    OverheadData {
        model: o.model.clone(),
        group: o.group.clone(),
        python_pipeline: o.python_pipeline.clone(),
        native_pipeline: o.native_pipeline.clone(),
        python: o.python,
        native: o.native,
        overhead: o.overhead(),
        share_pct: 100.0 * o.share(),
        base_overhead: o.base_overhead,
    }
}

impl OverheadView {
    /// An overhead with its cells.
    pub fn new(data: OverheadData) -> OverheadView {
        let signed = |s: f64| {
            let sign = if s < 0.0 { "-" } else { "+" };
            format!("{sign}{}", format_duration(s.abs()))
        };
        OverheadView {
            display: OverheadDisplay {
                python: format_duration(data.python),
                native: format_duration(data.native),
                overhead: signed(data.overhead),
                share: format!("{:.0}%", data.share_pct),
                base_overhead: data.base_overhead.map_or("—".to_string(), signed),
            },
            data,
        }
    }
}

/// Verdict counts, over every case and metric.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counts {
    pub regressed: usize,
    /// Far worse than the threshold, not yet significant.
    #[serde(default)]
    pub suspect: usize,
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
    fn of(verdicts: impl Iterator<Item = Verdict>) -> Counts {
        let mut counts = Counts::default();
        for v in verdicts {
            *counts.slot(v) += 1;
            counts.total += 1;
        }
        counts
    }

    fn slot(&mut self, v: Verdict) -> &mut usize {
        match v {
            Verdict::REGRESSED => &mut self.regressed,
            Verdict::IMPROVED => &mut self.improved,
            Verdict::UNCHANGED => &mut self.unchanged,
            Verdict::SUSPECT => &mut self.suspect,
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
    pub fn phrase(&self) -> String {
        let parts: Vec<String> = [
            (self.failed, "failed"),
            (self.missing, "missing"),
            (self.regressed, "regressed"),
            (self.suspect, "suspect"),
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
    /// How the interval accounts for shifts of a whole run.
    pub run_level: RunLevel,
    /// `0.97× (0.95–0.99) over 8 cases`; without an estimate of run-level
    /// shifts, no interval: it would call a shift of the machine a change.
    pub display: String,
}

/// A case that fails at head and did not at base: reports list these first.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The pipeline's file, as its records name it.
    pub source: Option<String>,
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
    /// A case is suspect (and none regressed or failed, or some did).
    pub suspect: bool,
    /// Cases that fail at head and did not at base, with their reasons.
    pub failures: Vec<FailureView>,
    /// Every row (also in `sections`), for templates that want one table.
    pub rows: Vec<RowView>,
    /// Every speed-up (also in `sections`).
    pub speedups: Vec<SpeedupView>,
    /// Python eager against native eager on the same built-in model.
    pub overheads: Vec<OverheadView>,
    pub notes: Vec<String>,
    /// Threshold and alpha of the first row, for the legend.
    pub threshold_pct: Option<f64>,
    pub alpha: Option<f64>,
    /// Pipeline name → its file.
    pub sources: BTreeMap<String, String>,
    /// Set when rows were left out to fit a size limit.
    pub omitted: Option<Omitted>,
}

/// What a shortened report left out, and where the whole one is.
#[derive(Debug, Clone, Serialize)]
pub struct Omitted {
    /// Rows (cases and metrics) not shown.
    pub rows: usize,
    /// Of all rows.
    pub total: usize,
    /// Speed-up rows not shown.
    pub speedups: usize,
    /// Where the full report is: markdown made by regress (a link to the
    /// job summary), shown as is.
    pub full_report: String,
}

fn speedup_data(s: &Speedup) -> SpeedupData {
    SpeedupData {
        pipeline: s.pipeline.clone(),
        group: s.group.clone(),
        mode: s.mode.to_string(),
        eager: s.eager,
        compiled: s.compiled,
        speedup: s.speedup,
        base_speedup: s.base_speedup,
        speedup_change_pct: s.change_pct(),
        verdict: s.verdict,
    }
}

impl SpeedupView {
    /// A speed-up with its cells, from its numbers alone.
    pub fn new(data: SpeedupData) -> SpeedupView {
        SpeedupView {
            display: SpeedupDisplay {
                eager: format_duration(data.eager),
                compiled: format_duration(data.compiled),
                speedup: format!("{:.2}x", data.speedup),
                base_speedup: data
                    .base_speedup
                    .map_or("—".to_string(), |b| format!("{b:.2}x")),
                change: data.speedup_change_pct.map_or("—".to_string(), format_pct),
            },
            data,
        }
    }
}

impl GeoMeanView {
    /// The geometric mean with its display line.
    pub fn new(ratio: f64, lo: f64, hi: f64, cases: usize, run_level: RunLevel) -> GeoMeanView {
        let plural = if cases == 1 { "" } else { "s" };
        let display = match run_level {
            RunLevel::NotEstimated => format!(
                "{ratio:.3}× over {cases} case{plural} (no interval: a whole-run shift is unknown without history)"
            ),
            _ => format!("{ratio:.3}× ({lo:.3}–{hi:.3}) over {cases} case{plural}"),
        };
        GeoMeanView {
            ratio,
            lo,
            hi,
            cases,
            run_level,
            display,
        }
    }
}

/// What a report is assembled from: a comparison's numbers, or the same
/// numbers read back from a JSON report.
#[derive(Debug, Clone)]
pub struct ViewParts {
    pub base: SideView,
    pub head: SideView,
    pub rows: Vec<RowData>,
    pub speedups: Vec<SpeedupData>,
    pub overheads: Vec<OverheadData>,
    pub geomean: Option<GeoMeanView>,
    pub notes: Vec<String>,
    /// Pipeline name → its file.
    pub sources: BTreeMap<String, String>,
}

impl CompareView {
    /// Builds the view of a comparison.
    pub fn new(c: &Comparison) -> CompareView {
        CompareView::assemble(ViewParts {
            base: SideView::new(&c.base),
            head: SideView::new(&c.head),
            rows: c.rows.iter().map(row_data).collect(),
            speedups: c.speedups.iter().map(speedup_data).collect(),
            overheads: c.overheads.iter().map(overhead_data).collect(),
            geomean: c
                .geomean
                .as_ref()
                .map(|g| GeoMeanView::new(g.ratio, g.lo, g.hi, g.cases, g.run_level)),
            notes: c.notes.clone(),
            sources: c.sources.clone(),
        })
    }

    /// Builds a view from its parts; everything derived (counts, sections,
    /// failures, headline) is computed here, once for every source.
    pub fn assemble(parts: ViewParts) -> CompareView {
        let counts = Counts::of(parts.rows.iter().map(|r| r.verdict));
        let mut pipelines: Vec<String> = Vec::new();
        for r in &parts.rows {
            if !pipelines.contains(&r.pipeline) {
                pipelines.push(r.pipeline.clone());
            }
        }
        let rows: Vec<RowView> = parts.rows.into_iter().map(RowView::new).collect();
        let speedups: Vec<SpeedupView> = parts.speedups.into_iter().map(SpeedupView::new).collect();
        let sections = pipelines
            .iter()
            .map(|name| {
                let of = |r: &&RowView| &r.data.pipeline == name;
                SectionView {
                    pipeline: name.clone(),
                    source: parts.sources.get(name).cloned(),
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
        let mut headline = format!("{}: {}", pipelines.join(", "), counts.phrase());
        if let Some(g) = &parts.geomean {
            headline.push_str(&format!("; geometric mean {}", g.display));
        }
        let failures = rows
            .iter()
            .filter(|r| r.data.verdict == Verdict::Failed)
            .map(|r| {
                let reason = r.data.failure.clone().unwrap_or_default();
                FailureView {
                    pipeline: r.data.pipeline.clone(),
                    label: r.data.label.clone(),
                    summary: reason_in_one_line(&reason),
                    reason,
                }
            })
            .collect();
        CompareView {
            sections,
            headline,
            regressed: counts.regressed > 0,
            suspect: counts.suspect > 0,
            pipelines,
            base: parts.base,
            head: parts.head,
            counts,
            geomean: parts.geomean,
            failures,
            threshold_pct: rows.first().map(|r| r.data.threshold_pct),
            alpha: rows.first().map(|r| r.data.alpha),
            rows,
            speedups,
            overheads: parts.overheads.into_iter().map(OverheadView::new).collect(),
            notes: parts.notes,
            sources: parts.sources,
            omitted: None,
        }
    }

    /// What a CI gate asked to fail on `on` makes of these rows.
    pub fn gate(&self, on: FailOn) -> Gate {
        Gate::of(self.rows.iter().map(|r| r.data.verdict), on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{render_compare_terminal, render_json, TemplateFormat, Templates};

    #[test]
    fn the_python_overhead_is_shown_in_every_format_and_read_back() {
        let mut view = crate::report::fixtures::view(vec![]);
        view.overheads.push(OverheadView::new(OverheadData {
            model: "mlp(dim=128,hidden=512)".into(),
            group: "mlp[batch=8,fp32]/forward".into(),
            python_pipeline: "quickstart-mlp".into(),
            native_pipeline: "quickstart-native".into(),
            python: 50e-6,
            native: 30e-6,
            overhead: 20e-6,
            share_pct: 40.0,
            base_overhead: Some(15e-6),
        }));
        let o = &view.overheads[0].display;
        assert_eq!(
            (
                o.overhead.as_str(),
                o.share.as_str(),
                o.base_overhead.as_str()
            ),
            ("+20.00 µs", "40%", "+15.00 µs")
        );
        let terminal = render_compare_terminal(&view);
        assert!(terminal.contains("python overhead"), "{terminal}");
        assert!(terminal.contains("+20.00 µs"), "{terminal}");
        let md = Templates::new(None)
            .unwrap()
            .render(TemplateFormat::Markdown, &view)
            .unwrap();
        assert!(
            md.contains("| `mlp[batch=8,fp32]/forward` | 50.00 µs | 30.00 µs | +20.00 µs | 40% | +15.00 µs |"),
            "{md}"
        );
        let back = crate::report::read_json(&render_json(&view)).unwrap();
        assert_eq!(back.overheads.len(), 1);
        assert_eq!(back.overheads[0].display.overhead, "+20.00 µs");
    }
}
