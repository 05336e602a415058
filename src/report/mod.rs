//! Reports: view models built from a comparison or a record, rendered to
//! strings through minijinja templates (markdown, JSON) or the terminal
//! renderer. Templates in `templates/` are embedded; a directory given with
//! `--templates` overrides them file by file. Nothing here writes files.

mod format;
mod terminal;

use std::path::Path;

use serde::Serialize;

use crate::compare::{Comparison, GeoMean, Row, Side};
use crate::record::CommitInfo;
use crate::stats::{Direction, Method, Summary, Verdict};

pub use format::{format_bytes, format_duration, format_p, format_pct, format_rate};
pub use terminal::{render_compare_terminal, render_record_terminal};

/// Version of the JSON report format.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Hidden marker that identifies regress's PR comment, so it can be updated.
pub const COMMENT_MARKER: &str = "<!-- regress-report -->";

/// The embedded default templates: (name, source).
const DEFAULT_TEMPLATES: [(&str, &str); 2] = [
    (
        "compare.md.j2",
        include_str!("../../templates/compare.md.j2"),
    ),
    (
        "compare.json.j2",
        include_str!("../../templates/compare.json.j2"),
    ),
];

/// A template that could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read template {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
}

/// Output formats rendered through templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateFormat {
    Markdown,
    Json,
}

impl TemplateFormat {
    fn template(self) -> &'static str {
        match self {
            TemplateFormat::Markdown => "compare.md.j2",
            TemplateFormat::Json => "compare.json.j2",
        }
    }
}

/// The minijinja environment with the default templates, each replaced by a
/// file of the same name in `overrides` when there is one.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// Loads the templates.
    pub fn new(overrides: Option<&Path>) -> Result<Templates, ReportError> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        for (name, source) in DEFAULT_TEMPLATES {
            let text = match overrides.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|source| ReportError::Read { path, source })?,
                None => source.to_string(),
            };
            env.add_template_owned(name, text)
                .map_err(|source| ReportError::Template {
                    name: name.to_string(),
                    source,
                })?;
        }
        Ok(Templates { env })
    }

    /// Renders a comparison in a template format.
    pub fn render(
        &self,
        format: TemplateFormat,
        view: &CompareView,
    ) -> Result<String, ReportError> {
        let name = format.template();
        let template = self
            .env
            .get_template(name)
            .map_err(|source| ReportError::Template {
                name: name.to_string(),
                source,
            })?;
        template
            .render(minijinja::context! { report => minijinja::value::Serde(view), marker => COMMENT_MARKER })
            .map_err(|source| ReportError::Template { name: name.to_string(), source })
    }
}

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

/// A sample summary (seconds or bytes, as the row's unit says).
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

/// Preformatted cells, so every template shows numbers the same way.
#[derive(Debug, Clone, Serialize)]
pub struct RowDisplay {
    pub base: String,
    pub head: String,
    /// The change with its interval: `+4.1% (+2.0…+6.3)`.
    pub change: String,
    pub p: String,
    pub q: String,
    pub verdict: String,
    /// For inconclusive rows: the smallest change these samples could detect.
    pub detectable: String,
}

/// One case and metric of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RowView {
    pub pipeline: String,
    pub id: String,
    pub label: String,
    pub metric: String,
    pub unit: String,
    pub direction: Direction,
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
    pub history_commits: usize,
    pub threshold_pct: f64,
    pub alpha: f64,
    pub note: Option<String>,
    pub display: RowDisplay,
}

/// Eager against one compiled mode of the same case, as the seeds tabulate it.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedupView {
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
    pub skipped: usize,
    pub not_comparable: usize,
    pub total: usize,
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

impl GeoMeanView {
    fn new(g: &GeoMean) -> GeoMeanView {
        GeoMeanView {
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
        }
    }
}

/// The rows and speed-ups of one pipeline, for reports that show a table each.
#[derive(Debug, Clone, Serialize)]
pub struct SectionView {
    pub pipeline: String,
    /// Latency, one row per case.
    pub rows: Vec<RowView>,
    /// Throughput, compile time and peak memory, where measured.
    pub other_rows: Vec<RowView>,
    pub speedups: Vec<SpeedupView>,
}

/// Everything a comparison report shows.
#[derive(Debug, Clone, Serialize)]
pub struct CompareView {
    pub schema_version: u32,
    pub pipelines: Vec<String>,
    /// The rows again, one section per pipeline in order of appearance.
    pub sections: Vec<SectionView>,
    pub base: SideView,
    pub head: SideView,
    pub counts: Counts,
    pub geomean: Option<GeoMeanView>,
    /// One line that says what happened, for headings and terminals.
    pub headline: String,
    pub regressed: bool,
    pub rows: Vec<RowView>,
    pub speedups: Vec<SpeedupView>,
    pub notes: Vec<String>,
}

fn verdict_label(v: Verdict) -> String {
    v.as_str().replace('_', " ")
}

fn pct(log_ratio: f64) -> f64 {
    (log_ratio.exp() - 1.0) * 100.0
}

fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "B" => format_bytes(value),
        "1/s" => format_rate(value),
        _ => format_duration(value),
    }
}

fn row_view(r: &Row) -> RowView {
    let cell = |s: &Option<Summary>| {
        s.as_ref()
            .map_or("—".to_string(), |s| format_value(s.median, &r.unit))
    };
    let e = r.evidence;
    let change_pct = e.map(|e| pct(e.log_ratio));
    let finite = |x: f64| x.is_finite().then_some(x);
    let change = match e {
        Some(e) if e.lo.is_finite() && e.hi.is_finite() => format!(
            "{} ({}…{})",
            format_pct(pct(e.log_ratio)),
            format_pct(pct(e.lo)),
            format_pct(pct(e.hi))
        ),
        Some(e) => format_pct(pct(e.log_ratio)),
        None => "—".to_string(),
    };
    let mde = e.and_then(|e| finite(e.mde)).map(|m| pct(m).abs());
    RowView {
        pipeline: r.pipeline.clone(),
        id: r.id.to_string(),
        label: r.label.clone(),
        metric: r.metric.clone(),
        unit: r.unit.clone(),
        direction: r.direction,
        verdict: r.verdict,
        base: r.base.as_ref().map(|s| StatView::new(s, r.base_processes)),
        head: r.head.as_ref().map(|s| StatView::new(s, r.head_processes)),
        ratio: r.ratio(),
        ratio_lo: e.and_then(|e| finite(e.lo)).map(f64::exp),
        ratio_hi: e.and_then(|e| finite(e.hi)).map(f64::exp),
        change_pct,
        p: e.map(|e| e.p),
        q: r.q,
        method: e.map(|e| e.method),
        min_detectable_pct: mde,
        history_commits: r.history_commits,
        threshold_pct: r.compare.threshold * 100.0,
        alpha: r.compare.alpha,
        note: r.note.clone(),
        display: RowDisplay {
            base: cell(&r.base),
            head: cell(&r.head),
            change,
            p: e.map_or("—".to_string(), |e| format_p(e.p)),
            q: r.q.map_or("—".to_string(), format_p),
            verdict: verdict_label(r.verdict),
            detectable: match (r.verdict, mde) {
                (Verdict::Inconclusive, Some(m)) => format!("could detect ±{m:.1}%"),
                (Verdict::Inconclusive, None) => "too few samples for a test".to_string(),
                _ => String::new(),
            },
        },
    }
}

fn speedups(c: &Comparison) -> Vec<SpeedupView> {
    use crate::spec::CompileMode;
    let latency = |r: &&Row| r.metric == crate::record::metric::LATENCY;
    let mut out = Vec::new();
    for eager in c
        .rows
        .iter()
        .filter(latency)
        .filter(|r| r.compile == Some(CompileMode::Eager))
    {
        for compiled in c.rows.iter().filter(latency).filter(|r| {
            r.pipeline == eager.pipeline
                && r.group == eager.group
                && r.compile.is_some_and(|m| m != CompileMode::Eager)
        }) {
            let (Some(e), Some(k)) = (&eager.head, &compiled.head) else {
                continue;
            };
            let speedup = e.median / k.median;
            let base_speedup = match (&eager.base, &compiled.base) {
                (Some(eb), Some(kb)) => Some(eb.median / kb.median),
                _ => None,
            };
            let change = base_speedup.map(|b| (speedup / b - 1.0) * 100.0);
            out.push(SpeedupView {
                pipeline: eager.pipeline.clone(),
                group: eager.group.clone(),
                mode: compiled.compile.map(|m| m.to_string()).unwrap_or_default(),
                eager: e.median,
                compiled: k.median,
                speedup,
                base_speedup,
                speedup_change_pct: change,
                verdict: compiled.verdict,
                display: SpeedupDisplay {
                    eager: format_duration(e.median),
                    compiled: format_duration(k.median),
                    speedup: format!("{speedup:.2}x"),
                    base_speedup: base_speedup.map_or("—".to_string(), |s| format!("{s:.2}x")),
                    change: change.map_or("—".to_string(), format_pct),
                },
            });
        }
    }
    out
}

impl CompareView {
    /// Builds the view of a comparison.
    pub fn new(c: &Comparison) -> CompareView {
        let mut counts = Counts {
            total: c.rows.len(),
            ..Counts::default()
        };
        for r in &c.rows {
            *match r.verdict {
                Verdict::Regressed => &mut counts.regressed,
                Verdict::Improved => &mut counts.improved,
                Verdict::Unchanged => &mut counts.unchanged,
                Verdict::Inconclusive => &mut counts.inconclusive,
                Verdict::New => &mut counts.new,
                Verdict::Removed => &mut counts.removed,
                Verdict::Failed => &mut counts.failed,
                Verdict::Skipped => &mut counts.skipped,
                Verdict::NotComparable => &mut counts.not_comparable,
            } += 1;
        }
        let mut parts = Vec::new();
        for (n, word) in [
            (counts.regressed, "regressed"),
            (counts.improved, "improved"),
            (counts.unchanged, "unchanged"),
            (counts.inconclusive, "inconclusive"),
            (counts.new, "new"),
            (counts.removed, "removed"),
            (counts.failed, "failed"),
            (counts.skipped, "skipped"),
            (counts.not_comparable, "not comparable"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        let mut pipelines: Vec<String> = Vec::new();
        for r in &c.rows {
            if !pipelines.contains(&r.pipeline) {
                pipelines.push(r.pipeline.clone());
            }
        }
        let rows: Vec<RowView> = c.rows.iter().map(row_view).collect();
        let speedups = speedups(c);
        let latency = crate::record::metric::LATENCY;
        let sections = pipelines
            .iter()
            .map(|name| SectionView {
                pipeline: name.clone(),
                rows: rows
                    .iter()
                    .filter(|r| &r.pipeline == name && r.metric == latency)
                    .cloned()
                    .collect(),
                other_rows: rows
                    .iter()
                    .filter(|r| &r.pipeline == name && r.metric != latency)
                    .cloned()
                    .collect(),
                speedups: speedups
                    .iter()
                    .filter(|s| &s.pipeline == name)
                    .cloned()
                    .collect(),
            })
            .collect();
        let geomean = c.geomean.as_ref().map(GeoMeanView::new);
        let mut headline = format!("{}: {}", pipelines.join(", "), parts.join(", "));
        if let Some(g) = &geomean {
            headline.push_str(&format!("; geometric mean {}", g.display));
        }
        CompareView {
            schema_version: REPORT_SCHEMA_VERSION,
            sections,
            headline,
            regressed: counts.regressed > 0,
            pipelines,
            base: SideView::new(&c.base),
            head: SideView::new(&c.head),
            counts,
            geomean,
            rows,
            speedups,
            notes: c.notes.clone(),
        }
    }
}
