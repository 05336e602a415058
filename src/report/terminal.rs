//! Coloured tables for the terminal. Colour codes are always emitted here;
//! the caller writes through `anstream`, which strips them when the output
//! is not a terminal or `NO_COLOR` is set.

use anstyle::{AnsiColor, Style};

use super::{format_duration, CompareView};
use crate::compare::Verdict;
use crate::metric;
use crate::record::{CaseStatus, Record};
use crate::stats::Decision;

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const CYAN: Style = AnsiColor::Cyan.on_default();

/// Lines of a failure's reason shown under its first line: the last ones,
/// where a traceback names the exception (all of it is in the record and
/// the JSON report).
const FAILURE_LINES: usize = 8;

/// A cell: text and an optional style.
type Cell = (String, Style);

struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    fn render(&self, out: &mut String) {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, (text, _)) in row.iter().enumerate() {
                widths[i] = widths[i].max(width(text));
            }
        }
        let last = widths.len() - 1;
        let pad = |text: &str, i: usize| {
            let fill = " ".repeat(widths[i] - width(text));
            if self.right[i] {
                format!("{fill}{text}")
            } else if i == last {
                text.to_string()
            } else {
                format!("{text}{fill}")
            }
        };
        let header: Vec<String> = self
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| pad(h, i))
            .collect();
        out.push_str(&format!("{BOLD}{}{BOLD:#}\n", header.join("  ").trim_end()));
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, (text, style))| format!("{style}{}{style:#}", pad(text, i)))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
    }
}

fn verdict_style(v: Verdict) -> Style {
    match v {
        Verdict::Judged(Decision::Regressed) | Verdict::Failed | Verdict::Missing => RED,
        Verdict::Judged(Decision::Suspect) => YELLOW,
        Verdict::Judged(Decision::Improved) | Verdict::Fixed => GREEN,
        Verdict::Judged(Decision::Unchanged) => Style::new(),
        Verdict::Judged(Decision::Inconclusive) => DIM,
        Verdict::New | Verdict::Removed => CYAN,
        Verdict::StillFailing | Verdict::Skipped | Verdict::NotComparable => YELLOW,
    }
}

fn verdict_cell(r: &super::RowView) -> String {
    let mut verdict = r.display.verdict.clone();
    let mut extra = Vec::new();
    if !r.display.detectable.is_empty() {
        extra.push(r.display.detectable.clone());
    }
    if let Some(note) = &r.data.note {
        extra.push(note.clone());
    }
    if !extra.is_empty() {
        verdict.push_str(&format!("  ({})", extra.join("; ")));
    }
    verdict
}

/// The comparison as tables with a headline and notes.
pub fn render_compare_terminal(view: &CompareView) -> String {
    let mut out = String::new();
    let side = |s: &super::SideView| match &s.branch {
        Some(b) if *b != s.rev => format!("{} ({}, {})", s.rev, s.short, b),
        _ => format!("{} ({})", s.rev, s.short),
    };
    out.push_str(&format!(
        "{BOLD}regress compare{BOLD:#}  base {}  →  head {}\n\n",
        side(&view.base),
        side(&view.head)
    ));
    if !view.failures.is_empty() {
        out.push_str(&format!(
            "{RED}failed at head{RED:#} (measured at base, or new):\n"
        ));
        for f in &view.failures {
            let lines: Vec<&str> = f.reason.lines().filter(|l| !l.trim().is_empty()).collect();
            let first = lines.first().copied().unwrap_or("");
            out.push_str(&format!("  {} ({}): {first}\n", f.label, f.pipeline));
            let rest = lines.get(1..).unwrap_or_default();
            let shown = rest.len().saturating_sub(FAILURE_LINES);
            if shown > 0 {
                out.push_str(&format!("{DIM}    … {shown} more line(s){DIM:#}\n"));
            }
            for line in &rest[shown..] {
                out.push_str(&format!("{DIM}    {line}{DIM:#}\n"));
            }
        }
        out.push('\n');
    }
    for section in &view.sections {
        out.push_str(&format!("{BOLD}{}{BOLD:#}\n", section.pipeline));
        let mut table = Table {
            headers: vec!["case", "base", "head", "change (interval)", "q", "verdict"],
            right: vec![false, true, true, true, true, false],
            rows: Vec::new(),
        };
        for r in &section.rows {
            let style = verdict_style(r.data.verdict);
            table.rows.push(vec![
                (format!("  {}", r.data.label), Style::new()),
                (r.display.base.clone(), Style::new()),
                (r.display.head.clone(), Style::new()),
                (r.display.change.clone(), style),
                (r.display.q.clone(), DIM),
                (verdict_cell(r), style),
            ]);
        }
        table.render(&mut out);
        if !section.other_rows.is_empty() {
            let mut t = Table {
                headers: vec![
                    "  case",
                    "metric",
                    "base",
                    "head",
                    "change (interval)",
                    "verdict",
                ],
                right: vec![false, false, true, true, true, false],
                rows: Vec::new(),
            };
            for r in &section.other_rows {
                let style = verdict_style(r.data.verdict);
                t.rows.push(vec![
                    (format!("  {}", r.data.label), Style::new()),
                    (r.data.metric.to_string(), Style::new()),
                    (r.display.base.clone(), Style::new()),
                    (r.display.head.clone(), Style::new()),
                    (r.display.change.clone(), style),
                    (verdict_cell(r), style),
                ]);
            }
            t.render(&mut out);
        }
        if !section.speedups.is_empty() {
            let mut t = Table {
                headers: vec![
                    "  eager vs compiled",
                    "mode",
                    "eager",
                    "compiled",
                    "speed-up",
                    "at base",
                    "change",
                ],
                right: vec![false, false, true, true, true, true, true],
                rows: Vec::new(),
            };
            for s in &section.speedups {
                let style = if s.data.speedup >= 1.0 { GREEN } else { YELLOW };
                t.rows.push(vec![
                    (format!("  {}", s.data.group), Style::new()),
                    (s.data.mode.clone(), Style::new()),
                    (s.display.eager.clone(), Style::new()),
                    (s.display.compiled.clone(), Style::new()),
                    (s.display.speedup.clone(), style),
                    (s.display.base_speedup.clone(), DIM),
                    (s.display.change.clone(), DIM),
                ]);
            }
            t.render(&mut out);
        }
        out.push('\n');
    }
    if !view.overheads.is_empty() {
        let mut t = Table {
            headers: vec![
                "python overhead (python eager − native eager, same model)",
                "python",
                "native",
                "overhead",
                "share",
                "at base",
            ],
            right: vec![false, true, true, true, true, true],
            rows: Vec::new(),
        };
        for o in &view.overheads {
            t.rows.push(vec![
                (format!("  {}", o.data.group), Style::new()),
                (o.display.python.clone(), Style::new()),
                (o.display.native.clone(), Style::new()),
                (o.display.overhead.clone(), Style::new()),
                (o.display.share.clone(), Style::new()),
                (o.display.base_overhead.clone(), DIM),
            ]);
        }
        t.render(&mut out);
        out.push('\n');
    }
    for note in &view.notes {
        out.push_str(&format!("{YELLOW}note:{YELLOW:#} {note}\n"));
    }
    let style = if view.regressed || view.suspect || !view.failures.is_empty() {
        RED
    } else {
        GREEN
    };
    out.push_str(&format!("{style}{}{style:#}\n", view.headline));
    out
}

fn status_style(s: CaseStatus) -> Style {
    match s {
        CaseStatus::Ok => GREEN,
        CaseStatus::Skipped | CaseStatus::Pending | CaseStatus::Interrupted => YELLOW,
        CaseStatus::Failed | CaseStatus::Timeout | CaseStatus::Oom | CaseStatus::AccuracyFail => {
            RED
        }
    }
}

/// The cases of one record: status, median, quartiles, sample count, compile time.
pub fn render_record_terminal(record: &Record) -> String {
    let mut out = String::new();
    let mut table = Table {
        headers: vec!["case", "status", "median", "p25–p75", "n", "compile"],
        right: vec![false, false, true, true, true, true],
        rows: Vec::new(),
    };
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    for case in &record.cases {
        let summary = case.metrics.get(metric::LATENCY).and_then(|m| m.summary());
        let compile = case
            .metrics
            .get(metric::COMPILE_TIME)
            .and_then(|m| m.summary())
            .map_or(String::new(), |s| format_duration(s.median));
        let processes = case
            .metrics
            .get(metric::LATENCY)
            .map_or(0, |m| m.processes.len());
        let warnings = case.warnings();
        let status = if warnings.is_empty() {
            case.status.as_str().to_string()
        } else {
            format!("{}*", case.status.as_str())
        };
        table.rows.push(vec![
            (case.label.clone(), Style::new()),
            (status, status_style(case.status)),
            (
                summary.map_or("—".into(), |s| format_duration(s.median)),
                Style::new(),
            ),
            (
                summary.map_or("—".into(), |s| {
                    format!("{}–{}", format_duration(s.p25), format_duration(s.p75))
                }),
                DIM,
            ),
            (
                summary.map_or("0".into(), |s| {
                    format!("{}×{}", processes, s.n / processes.max(1))
                }),
                DIM,
            ),
            (compile, Style::new()),
        ]);
        for w in warnings {
            notes.push(format!("* {}: {w}", case.label));
        }
        if let Some(reason) = &case.reason {
            let lines: Vec<&str> = reason.lines().filter(|l| !l.trim().is_empty()).collect();
            reasons.push(format!(
                "{}: {}",
                case.label,
                lines.first().copied().unwrap_or("")
            ));
            // A failure's last lines name the error (a traceback's end).
            if case.status.is_failure() {
                let rest = lines.get(1..).unwrap_or_default();
                let hidden = rest.len().saturating_sub(FAILURE_LINES);
                if hidden > 0 {
                    reasons.push(format!("  … {hidden} more line(s) in the record"));
                }
                reasons.extend(rest[hidden..].iter().map(|l| format!("  {l}")));
            }
        }
    }
    table.render(&mut out);
    for r in reasons {
        out.push_str(&format!("{DIM}  {r}{DIM:#}\n"));
    }
    for n in notes {
        out.push_str(&format!("{YELLOW}  {n}{YELLOW:#}\n"));
    }
    out
}
