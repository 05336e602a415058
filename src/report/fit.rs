//! Reports that must fit a size limit: a PR comment (65,536 characters),
//! a check run's summary (65,535), the job summary (1 MiB). An oversized
//! report keeps its headline with the true counts and shows the rows that
//! matter most (failed and missing, then regressed, then the largest
//! changes), whole rows only, with a line saying how many were left out
//! and where the full report is.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::view::{CompareView, Omitted};
use super::{ReportError, RowView, TemplateFormat, Templates};
use crate::compare::Verdict;

/// How a limit is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Unicode characters (GitHub's comment and check-run limits).
    Chars(usize),
    /// UTF-8 bytes (the job summary's file limit).
    Bytes(usize),
}

impl Limit {
    fn fits(self, text: &str) -> bool {
        match self {
            Limit::Chars(n) => text.chars().count() <= n,
            Limit::Bytes(n) => text.len() <= n,
        }
    }
}

/// How much a row matters in a shortened report: lower first.
fn rank(r: &RowView) -> u8 {
    match r.data.verdict {
        Verdict::Failed | Verdict::Missing => 0,
        Verdict::REGRESSED | Verdict::SUSPECT => 1,
        Verdict::IMPROVED | Verdict::Fixed => 2,
        _ => 3,
    }
}

/// The order rows are kept in: failures, regressions, improvements, then
/// the rest by the size of their change, largest first.
fn priority(rows: &[RowView]) -> Vec<usize> {
    let size = |r: &RowView| r.data.change_pct.map_or(-1.0, f64::abs);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        rank(&rows[a]).cmp(&rank(&rows[b])).then_with(|| {
            size(&rows[b])
                .partial_cmp(&size(&rows[a]))
                .unwrap_or(Ordering::Equal)
        })
    });
    order
}

/// A row's identity within one comparison.
type Key = (String, String, String);

fn key(r: &RowView) -> Key {
    (
        r.data.pipeline.clone(),
        r.data.id.clone(),
        r.data.metric.clone(),
    )
}

/// `view` with only the rows whose place in the priority order is below
/// `keep`, each section's rows in that order, and the speed-up tables
/// left out.
fn shortened(
    view: &CompareView,
    place: &HashMap<Key, usize>,
    keep: usize,
    full_report: &str,
) -> CompareView {
    let pick = |rows: &[RowView]| -> Vec<RowView> {
        let mut ranked: Vec<(usize, &RowView)> = rows
            .iter()
            .map(|r| (place[&key(r)], r))
            .filter(|(p, _)| *p < keep)
            .collect();
        ranked.sort_by_key(|(p, _)| *p);
        ranked.into_iter().map(|(_, r)| r.clone()).collect()
    };
    let mut short = view.clone();
    short.rows = pick(&view.rows);
    for s in &mut short.sections {
        s.rows = pick(&s.rows);
        s.other_rows = pick(&s.other_rows);
        s.speedups.clear();
    }
    short
        .sections
        .retain(|s| !s.rows.is_empty() || !s.other_rows.is_empty());
    let kept: HashSet<(&str, &str)> = short
        .rows
        .iter()
        .map(|r| (r.data.pipeline.as_str(), r.data.label.as_str()))
        .collect();
    let failures = std::mem::take(&mut short.failures);
    short.failures = failures
        .into_iter()
        .filter(|f| kept.contains(&(f.pipeline.as_str(), f.label.as_str())))
        .collect();
    short.speedups.clear();
    short.omitted = Some(Omitted {
        rows: view.rows.len() - keep,
        total: view.rows.len(),
        speedups: view.speedups.len(),
        full_report: full_report.to_string(),
    });
    short
}

/// Renders `view` in `format` within `limit`. When the whole report does
/// not fit, as many rows as fit are kept in priority order (found by
/// bisection over the count); `full_report` says where the whole one is.
/// When not even the headline fits, the text is cut at a line break and
/// says so (only a limit far below any GitHub limit does that).
pub fn render_within(
    templates: &Templates,
    format: TemplateFormat,
    view: &CompareView,
    limit: Limit,
    full_report: &str,
) -> Result<String, ReportError> {
    let full = templates.render(format, view)?;
    if limit.fits(&full) {
        return Ok(full);
    }
    let place: HashMap<Key, usize> = priority(&view.rows)
        .into_iter()
        .enumerate()
        .map(|(p, i)| (key(&view.rows[i]), p))
        .collect();
    let render =
        |keep: usize| templates.render(format, &shortened(view, &place, keep, full_report));
    // The largest count that fits: rendering grows with every kept row.
    let (mut lo, mut hi) = (0usize, view.rows.len());
    let mut best: Option<String> = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let text = render(mid)?;
        if limit.fits(&text) {
            best = Some(text);
            lo = mid + 1;
        } else if mid == 0 {
            break;
        } else {
            hi = mid - 1;
        }
    }
    Ok(match best {
        Some(text) => text,
        None => cut_at_line(&render(0)?, limit, full_report),
    })
}

/// The longest prefix of whole lines that fits with a closing note.
fn cut_at_line(text: &str, limit: Limit, full_report: &str) -> String {
    let note = format!("\n\n> The report was cut to fit; the full report is in {full_report}.\n");
    let size = |t: &str| match limit {
        Limit::Chars(_) => t.chars().count(),
        Limit::Bytes(_) => t.len(),
    };
    let max = match limit {
        Limit::Chars(n) | Limit::Bytes(n) => n,
    };
    let mut used = size(&note);
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        used += size(line);
        if used > max {
            break;
        }
        end += line.len();
    }
    format!("{}{note}", &text[..end])
}
