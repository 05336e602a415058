//! Reports: view models built from a comparison or a record, rendered to
//! strings through minijinja templates (markdown, JSON) or the terminal
//! renderer. Templates in `templates/` are embedded; a directory given with
//! `--templates` overrides them file by file. Nothing here writes files.

mod format;
mod terminal;

use std::path::Path;

use serde::Serialize;

use crate::compare::{Comparison, Row, Side};
use crate::record::CommitInfo;
use crate::stats::{Summary, Verdict};

pub use format::{format_duration, format_p, format_pct};
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
    #[error("template {name}: {source:#}")]
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
            records: side.records,
            incomplete: side.incomplete,
        }
    }
}

/// A sample summary, in seconds, with display strings.
#[derive(Debug, Clone, Serialize)]
pub struct StatView {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub min: f64,
    pub n: usize,
    pub processes: usize,
    pub rel_iqr: f64,
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
            noisy: s.is_noisy(),
        }
    }
}

/// Preformatted cells, so every template shows numbers the same way.
#[derive(Debug, Clone, Serialize)]
pub struct RowDisplay {
    pub base: String,
    pub head: String,
    pub change: String,
    pub p: String,
    pub verdict: String,
}

/// One case of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RowView {
    pub pipeline: String,
    pub id: String,
    pub label: String,
    pub verdict: Verdict,
    pub base: Option<StatView>,
    pub head: Option<StatView>,
    /// head median / base median.
    pub ratio: Option<f64>,
    /// (ratio − 1) in percent.
    pub change_pct: Option<f64>,
    pub p: Option<f64>,
    pub test: Option<String>,
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
}

/// Verdict counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub regressed: usize,
    pub improved: usize,
    pub unchanged: usize,
    pub new: usize,
    pub removed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_comparable: usize,
    pub total: usize,
}

/// The rows and speed-ups of one pipeline, for reports that show a table each.
#[derive(Debug, Clone, Serialize)]
pub struct SectionView {
    pub pipeline: String,
    pub rows: Vec<RowView>,
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

fn row_view(r: &Row) -> RowView {
    let cell = |s: &Option<Summary>| {
        s.as_ref()
            .map_or("—".to_string(), |s| format_duration(s.median))
    };
    let change_pct = r.ratio.map(|x| (x - 1.0) * 100.0);
    RowView {
        pipeline: r.pipeline.clone(),
        id: r.id.to_string(),
        label: r.label.clone(),
        verdict: r.verdict,
        base: r.base.as_ref().map(|s| StatView::new(s, r.base_processes)),
        head: r.head.as_ref().map(|s| StatView::new(s, r.head_processes)),
        ratio: r.ratio,
        change_pct,
        p: r.test.map(|t| t.p),
        test: r.test.map(|t| {
            format!(
                "mann_whitney_u_{}",
                serde_json::to_value(t.method)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )
        }),
        threshold_pct: r.compare.threshold * 100.0,
        alpha: r.compare.alpha,
        note: r.note.clone(),
        display: RowDisplay {
            base: cell(&r.base),
            head: cell(&r.head),
            change: change_pct.map_or("—".to_string(), format_pct),
            p: r.test.map_or("—".to_string(), |t| format_p(t.p)),
            verdict: verdict_label(r.verdict),
        },
    }
}

fn speedups(c: &Comparison) -> Vec<SpeedupView> {
    let mut out = Vec::new();
    for eager in c
        .rows
        .iter()
        .filter(|r| r.compile == Some(crate::spec::CompileMode::Eager))
    {
        for compiled in c.rows.iter().filter(|r| {
            r.pipeline == eager.pipeline
                && r.group == eager.group
                && r.compile
                    .is_some_and(|m| m != crate::spec::CompileMode::Eager)
        }) {
            let (Some(e), Some(k)) = (&eager.head, &compiled.head) else {
                continue;
            };
            let speedup = e.median / k.median;
            let base_speedup = match (&eager.base, &compiled.base) {
                (Some(eb), Some(kb)) => Some(eb.median / kb.median),
                _ => None,
            };
            out.push(SpeedupView {
                pipeline: eager.pipeline.clone(),
                group: eager.group.clone(),
                mode: compiled.compile.map(|m| m.to_string()).unwrap_or_default(),
                eager: e.median,
                compiled: k.median,
                speedup,
                base_speedup,
                verdict: compiled.verdict,
                display: SpeedupDisplay {
                    eager: format_duration(e.median),
                    compiled: format_duration(k.median),
                    speedup: format!("{speedup:.2}x"),
                    base_speedup: base_speedup.map_or("—".to_string(), |s| format!("{s:.2}x")),
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
        let sections = pipelines
            .iter()
            .map(|name| SectionView {
                pipeline: name.clone(),
                rows: rows
                    .iter()
                    .filter(|r| &r.pipeline == name)
                    .cloned()
                    .collect(),
                speedups: speedups
                    .iter()
                    .filter(|s| &s.pipeline == name)
                    .cloned()
                    .collect(),
            })
            .collect();
        CompareView {
            schema_version: REPORT_SCHEMA_VERSION,
            sections,
            headline: format!(
                "{} of {} cases: {}",
                pipelines.join(", "),
                counts.total,
                parts.join(", ")
            ),
            regressed: counts.regressed > 0,
            pipelines,
            base: SideView::new(&c.base),
            head: SideView::new(&c.head),
            counts,
            rows,
            speedups,
            notes: c.notes.clone(),
        }
    }
}
