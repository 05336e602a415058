//! Judging one case measured on both sides: a row per compared metric,
//! timings and memory tested statistically (with the run-to-run variance
//! of earlier runs where there are any), counters compared exactly. The
//! p-values of a whole comparison are adjusted together (`adjust`).

use super::matching::{is_failure, Pooled};
use super::{ExactChange, Row, Verdict};
use std::collections::HashMap;

use crate::id::{CaseId, CommitSha};
use crate::metric::{self, Direction, MetricDef, MetricKind, METRICS};
use crate::record::{CaseRecord, CaseStatus, ProcessSummary, Record};
use crate::spec::{PlannedCase, Shard};
use crate::stats::{bh_qvalues, decide, evidence_of, Decision, Method, Process, StatsError};

/// What names a row: its case and how its pipeline judges.
struct RowKey<'a> {
    id: &'a CaseId,
    label: &'a str,
    group: &'a str,
    compile: Option<crate::spec::CompileMode>,
    compare: crate::spec::CompareConfig,
}

/// A latency row with no numbers yet, with the given verdict and note.
fn empty_row(pipeline: &str, k: RowKey, verdict: Verdict, note: Option<String>) -> Row {
    Row {
        pipeline: pipeline.to_string(),
        id: k.id.clone(),
        label: k.label.to_string(),
        group: k.group.to_string(),
        compile: k.compile,
        metric: metric::get(metric::LATENCY),
        base: None,
        head: None,
        base_processes: 0,
        head_processes: 0,
        evidence: None,
        exact: None,
        q: None,
        history_commits: 0,
        verdict,
        note,
        failure: None,
        compare: k.compare,
    }
}

/// A row for `p` with no numbers yet: latency, the given verdict and note.
pub(super) fn blank_row(pipeline: &str, p: &Pooled, verdict: Verdict, note: Option<String>) -> Row {
    let key = RowKey {
        id: &p.first.id,
        label: &p.first.label,
        group: &p.first.group,
        compile: p.first.compile,
        compare: p.compare,
    };
    empty_row(pipeline, key, verdict, note)
}

/// A latency row with one side's summary: new and removed cases.
pub(super) fn one_sided(
    pipeline: &str,
    p: &Pooled,
    verdict: Verdict,
    note: Option<String>,
    head_side: bool,
) -> Row {
    let mut row = blank_row(pipeline, p, verdict, note);
    let summary = p.summary(metric::LATENCY);
    if head_side {
        row.head = summary;
        row.head_processes = p.latency_processes();
    } else {
        row.base = summary;
        row.base_processes = p.latency_processes();
    }
    row
}

/// A case whose head shard never arrived: missing, with the base's numbers
/// when the base measured it.
pub(super) fn missing_row(
    pipeline: &str,
    planned: &PlannedCase,
    shard: Shard,
    base: Option<&Pooled>,
) -> Row {
    let note = Some(format!("shard {shard} did not arrive"));
    match base {
        Some(b) => one_sided(pipeline, b, Verdict::Missing, note, false),
        // Never measured on either side: only the plan names it.
        None => {
            let key = RowKey {
                id: &planned.id,
                label: &planned.label,
                group: &planned.label,
                compile: None,
                compare: crate::spec::CompareConfig {
                    threshold: crate::spec::defaults::THRESHOLD,
                    alpha: crate::spec::defaults::ALPHA,
                },
            };
            empty_row(pipeline, key, Verdict::Missing, note)
        }
    }
}

/// A case only at head: new, or failed when it fails.
pub(super) fn new_case(pipeline: &str, h: &Pooled) -> Row {
    if is_failure(h.status) {
        let mut row = one_sided(
            pipeline,
            h,
            Verdict::Failed,
            Some(format!("new case; {}", h.status_note("head"))),
            true,
        );
        row.failure = Some(h.failure());
        return row;
    }
    one_sided(pipeline, h, Verdict::New, None, true)
}

/// The processes of one side as the statistics take them, oriented so that
/// slow is high (rates as time per item, so the trimmed location still
/// drops the slow iterations). An error names a stored value that is not
/// positive.
fn oriented(processes: &[&ProcessSummary], m: &MetricDef) -> Result<Vec<Process>, StatsError> {
    processes.iter().map(|p| p.process(m.direction)).collect()
}

/// The measured cases of earlier commits (the history), by case id, in
/// the order of the history records (nearest commit first): built once per
/// comparison so each case finds its own runs without a scan.
pub(super) struct HistoryIndex<'a> {
    cases: HashMap<&'a CaseId, Vec<(&'a CommitSha, &'a CaseRecord)>>,
}

impl<'a> HistoryIndex<'a> {
    pub fn new(history: &[&'a Record]) -> HistoryIndex<'a> {
        let mut cases: HashMap<&CaseId, Vec<(&CommitSha, &CaseRecord)>> = HashMap::new();
        for r in history {
            for c in r.cases.iter().filter(|c| c.status == CaseStatus::Ok) {
                cases.entry(&c.id).or_default().push((&r.commit.sha, c));
            }
        }
        HistoryIndex { cases }
    }

    /// Groups of per-process locations of one case and metric, one group
    /// per earlier commit (the exact locations the records stored, already
    /// oriented).
    fn groups(&self, id: &CaseId, m: &MetricDef) -> Vec<Vec<f64>> {
        let mut by_commit: Vec<(&CommitSha, Vec<f64>)> = Vec::new();
        for (sha, case) in self.cases.get(id).into_iter().flatten() {
            let Some(values) = case.metrics.get(m.name) else {
                continue;
            };
            let locations = values
                .processes
                .iter()
                .filter_map(|p| p.location.map(|l| l.mean));
            match by_commit.iter_mut().find(|(s, _)| s == sha) {
                Some((_, g)) => g.extend(locations),
                None => by_commit.push((sha, locations.collect())),
            }
        }
        by_commit
            .into_iter()
            .map(|(_, g)| g)
            .filter(|g| !g.is_empty())
            .collect()
    }
}

/// The verdict of a case that was not measured on both sides.
fn lifecycle(b: &Pooled, h: &Pooled) -> Verdict {
    let (bfail, hfail) = (is_failure(b.status), is_failure(h.status));
    if hfail && !bfail {
        Verdict::Failed
    } else if hfail {
        Verdict::StillFailing
    } else if bfail && h.usable() {
        Verdict::Fixed
    } else if b.status == CaseStatus::Skipped || h.status == CaseStatus::Skipped {
        Verdict::Skipped
    } else {
        Verdict::NotComparable
    }
}

/// The rows of a case present on both sides.
pub(super) fn both_sides(
    pipeline: &str,
    b: &Pooled,
    h: &Pooled,
    history: &HistoryIndex,
) -> Vec<Row> {
    // A latency row with both summaries but no test, for cases not judged.
    let unjudged = |verdict, note: String| {
        let mut row = blank_row(pipeline, h, verdict, Some(note));
        row.base = b.summary(metric::LATENCY);
        row.head = h.summary(metric::LATENCY);
        row.base_processes = b.latency_processes();
        row.head_processes = h.latency_processes();
        if verdict == Verdict::Failed {
            row.failure = Some(h.failure());
        }
        vec![row]
    };
    if !b.usable() || !h.usable() {
        let mut notes = Vec::new();
        if !b.usable() {
            notes.push(b.status_note("base"));
        }
        if !h.usable() {
            notes.push(h.status_note("head"));
        }
        return unjudged(lifecycle(b, h), notes.join("; "));
    }
    if b.hash != h.hash {
        return unjudged(
            Verdict::NotComparable,
            format!(
                "the pipeline's definition changed ({} → {}): measured differently",
                b.hash, h.hash
            ),
        );
    }
    let mut rows = Vec::new();
    for m in METRICS.iter().filter(|m| m.compared) {
        let (Some(bp), Some(hp)) = (b.processes.get(m.name), h.processes.get(m.name)) else {
            continue;
        };
        if m.kind == MetricKind::Counter {
            rows.extend(counter_row(pipeline, h, m, bp, hp));
            continue;
        }
        let groups = history.groups(&h.first.id, m);
        let tested = oriented(bp, m)
            .and_then(|b| evidence_of(&b, &oriented(hp, m)?, &groups, h.compare.alpha));
        let mut row = blank_row(pipeline, h, Verdict::INCONCLUSIVE, None);
        row.metric = m;
        match tested {
            Ok(e) => {
                row.history_commits = match e.method {
                    Method::HistoryLevel | Method::PooledHistory => groups.len(),
                    _ => 0,
                };
                row.evidence = Some(match m.direction {
                    Direction::LowerIsBetter => e,
                    Direction::HigherIsBetter => e.reciprocal(),
                });
                row.base = b.summary(m.name);
                row.head = h.summary(m.name);
                row.base_processes = bp.len();
                row.head_processes = hp.len();
            }
            Err(err) => {
                // Unusable samples (zero or negative times, say) spoil this
                // row, not the whole comparison.
                row.verdict = Verdict::NotComparable;
                row.note = Some(format!("{}: {err}", m.name));
            }
        }
        rows.push(row);
    }
    // How either side was sampled, on the latency row.
    let cautions: Vec<String> = [("base", b), ("head", h)]
        .iter()
        .flat_map(|(side, p)| p.cautions.iter().map(move |c| format!("{side}: {c}")))
        .collect();
    if let Some(row) = rows
        .iter_mut()
        .find(|r| r.metric.name == metric::LATENCY)
        .filter(|_| !cautions.is_empty())
    {
        let cautions = cautions.join("; ");
        row.note = Some(match row.note.take() {
            Some(note) => format!("{note}; {cautions}"),
            None => cautions,
        });
    }
    rows
}

/// A counter's row, only when it changed: the values are exact, so equal
/// counts need no row and different ones need no test. Processes of one
/// side normally agree; when they do not, ranges that overlap are
/// inconclusive rather than a change.
fn counter_row(
    pipeline: &str,
    h: &Pooled,
    m: &'static MetricDef,
    base: &[&ProcessSummary],
    head: &[&ProcessSummary],
) -> Option<Row> {
    let range = |side: &[&ProcessSummary]| {
        let all = side
            .iter()
            .filter(|p| p.min.is_finite() && p.max.is_finite());
        all.fold(None, |r: Option<(f64, f64)>, p| {
            Some(r.map_or((p.min, p.max), |(lo, hi)| (lo.min(p.min), hi.max(p.max))))
        })
    };
    let (Some((base_min, base_max)), Some((head_min, head_max))) = (range(base), range(head))
    else {
        return None;
    };
    if base_min == base_max && head_min == head_max && base_min == head_min {
        return None;
    }
    let worse_up = m.direction == Direction::LowerIsBetter;
    let decision = if head_min > base_max {
        if worse_up {
            Decision::Regressed
        } else {
            Decision::Improved
        }
    } else if head_max < base_min {
        if worse_up {
            Decision::Improved
        } else {
            Decision::Regressed
        }
    } else {
        Decision::Inconclusive
    };
    let mut row = blank_row(pipeline, h, Verdict::Judged(decision), None);
    row.metric = m;
    row.base_processes = base.len();
    row.head_processes = head.len();
    row.exact = Some(ExactChange {
        base_min,
        base_max,
        head_min,
        head_max,
    });
    if decision == Decision::Inconclusive {
        row.note = Some("the count varies between processes".into());
    }
    Some(row)
}

/// Adjusts every p-value of the comparison together (Benjamini–Hochberg),
/// then decides each tested row.
pub(super) fn adjust(rows: &mut [Row]) {
    let tested: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.evidence.is_some())
        .map(|(i, _)| i)
        .collect();
    let ps: Vec<f64> = tested
        .iter()
        .map(|&i| rows[i].evidence.expect("filtered").p)
        .collect();
    let qs = bh_qvalues(&ps).expect("p-values from the tests lie in [0, 1]");
    for (&i, q) in tested.iter().zip(qs) {
        let row = &mut rows[i];
        let e = row.evidence.expect("filtered");
        row.q = Some(q);
        let decision = decide(
            &e,
            q,
            row.compare.threshold,
            row.compare.alpha,
            row.metric.direction,
        );
        row.verdict = Verdict::Judged(decision);
        if e.method == Method::WithinProcess
            && decision == Decision::Inconclusive
            && row.note.is_none()
        {
            row.note = Some("one process per side: run-to-run variance unobserved".into());
        }
    }
}
