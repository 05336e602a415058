//! Matching the records of two commits case by case and judging each case.
//! Cases are matched by pipeline, machine fingerprint and case id; cases new,
//! removed, failed or measured elsewhere are listed, never hidden.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::record::{metric, CaseRecord, CaseStatus, CommitInfo, Record, RunState};
use crate::runner::Fingerprint;
use crate::spec::{CaseId, CompareConfig, CompileMode};
use crate::stats::{decide, mann_whitney_u, Summary, UTest, Verdict};

/// One side of a comparison as loaded from the store.
#[derive(Debug, Clone)]
pub struct SideInput {
    /// The revision as the user wrote it (`main`, `HEAD~1`).
    pub rev: String,
    pub commit: CommitInfo,
    pub records: Vec<Record>,
}

/// A side of a finished comparison, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub rev: String,
    pub commit: CommitInfo,
    pub records: usize,
    /// Records of runs that were interrupted or killed.
    pub incomplete: usize,
}

/// The judgement of one case.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub pipeline: String,
    pub id: CaseId,
    pub label: String,
    pub group: String,
    pub compile: Option<CompileMode>,
    pub base: Option<Summary>,
    pub head: Option<Summary>,
    pub base_processes: usize,
    pub head_processes: usize,
    /// head median / base median.
    pub ratio: Option<f64>,
    pub test: Option<UTest>,
    pub verdict: Verdict,
    pub note: Option<String>,
    pub compare: CompareConfig,
}

/// Everything `regress compare` concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base: Side,
    pub head: Side,
    pub rows: Vec<Row>,
    /// Things the reader should know about the inputs.
    pub notes: Vec<String>,
}

impl Comparison {
    /// How many cases got each verdict.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == verdict).count()
    }
}

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("no results stored for {side} `{rev}` ({short}){filter}\n  produce them: git checkout {short} && regress run <pipeline.yaml>")]
    MissingResults {
        side: &'static str,
        rev: String,
        short: String,
        filter: String,
    },
    #[error("case {label} of pipeline {pipeline} on {side}: {source}")]
    BadSamples {
        side: &'static str,
        pipeline: String,
        label: String,
        source: crate::stats::StatsError,
    },
}

type Key = (String, Fingerprint);

/// A case's records pooled over every run at one commit.
struct Pooled<'a> {
    first: &'a CaseRecord,
    status: CaseStatus,
    reason: Option<String>,
    latency: Vec<f64>,
    processes: usize,
    hash: &'a str,
    compare: CompareConfig,
}

fn pool<'a>(records: &[&'a Record]) -> (Vec<CaseId>, BTreeMap<CaseId, Pooled<'a>>) {
    let mut order = Vec::new();
    let mut map: BTreeMap<CaseId, Pooled<'a>> = BTreeMap::new();
    for record in records {
        for case in &record.cases {
            let entry = map.entry(case.id.clone()).or_insert_with(|| {
                order.push(case.id.clone());
                Pooled {
                    first: case,
                    status: case.status,
                    reason: case.reason.clone(),
                    latency: Vec::new(),
                    processes: 0,
                    hash: &record.pipeline.hash,
                    compare: record.pipeline.compare,
                }
            });
            if case.status == CaseStatus::Ok {
                if let Some(m) = case.metrics.get(metric::LATENCY) {
                    entry.latency.extend(m.pooled());
                    entry.processes += m.samples.len();
                }
                entry.status = CaseStatus::Ok;
                entry.reason = None;
            }
        }
    }
    (order, map)
}

fn one_sided(
    p: &Pooled,
    pipeline: &str,
    verdict: Verdict,
    note: Option<String>,
    head_side: bool,
) -> Row {
    let summary = Summary::of(&p.latency).ok();
    let (base, head) = if head_side {
        (None, summary)
    } else {
        (summary, None)
    };
    Row {
        pipeline: pipeline.to_string(),
        id: p.first.id.clone(),
        label: p.first.label.clone(),
        group: p.first.group.clone(),
        compile: p.first.compile,
        base,
        head,
        base_processes: if head_side { 0 } else { p.processes },
        head_processes: if head_side { p.processes } else { 0 },
        ratio: None,
        test: None,
        verdict,
        note,
        compare: p.compare,
    }
}

fn status_note(side: &str, p: &Pooled) -> String {
    match &p.reason {
        Some(r) => format!("{} on {side}: {}", p.status.as_str(), first_line(r)),
        None => format!("{} on {side}", p.status.as_str()),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn both_sides(pipeline: &str, b: &Pooled, h: &Pooled) -> Result<Row, CompareError> {
    let mut row = Row {
        pipeline: pipeline.to_string(),
        id: h.first.id.clone(),
        label: h.first.label.clone(),
        group: h.first.group.clone(),
        compile: h.first.compile,
        base: None,
        head: None,
        base_processes: b.processes,
        head_processes: h.processes,
        ratio: None,
        test: None,
        verdict: Verdict::Unchanged,
        note: None,
        compare: h.compare,
    };
    let bad = |side: &'static str, source| CompareError::BadSamples {
        side,
        pipeline: pipeline.to_string(),
        label: h.first.label.clone(),
        source,
    };
    let not_ok = |p: &Pooled| p.status != CaseStatus::Ok || p.latency.is_empty();
    if not_ok(b) || not_ok(h) {
        let statuses = [b.status, h.status];
        row.verdict = if statuses.iter().any(|s| {
            matches!(
                s,
                CaseStatus::Failed | CaseStatus::Timeout | CaseStatus::Oom
            )
        }) {
            Verdict::Failed
        } else if statuses.contains(&CaseStatus::Skipped) {
            Verdict::Skipped
        } else {
            Verdict::NotComparable
        };
        let mut notes = Vec::new();
        if not_ok(b) {
            notes.push(status_note("base", b));
        }
        if not_ok(h) {
            notes.push(status_note("head", h));
        }
        row.note = Some(notes.join("; "));
        row.base = Summary::of(&b.latency).ok();
        row.head = Summary::of(&h.latency).ok();
        return Ok(row);
    }
    let base = Summary::of(&b.latency).map_err(|e| bad("base", e))?;
    let head = Summary::of(&h.latency).map_err(|e| bad("head", e))?;
    let test = mann_whitney_u(&b.latency, &h.latency).map_err(|e| bad("head", e))?;
    let ratio = head.median / base.median;
    row.verdict = decide(ratio, test.p, h.compare.threshold, h.compare.alpha);
    if b.hash != h.hash {
        row.note = Some("the pipeline's definition changed between base and head".into());
    }
    row.base = Some(base);
    row.head = Some(head);
    row.ratio = Some(ratio);
    row.test = Some(test);
    Ok(row)
}

fn group<'a>(records: &'a [Record], filter: Option<&str>) -> BTreeMap<Key, Vec<&'a Record>> {
    let mut map: BTreeMap<Key, Vec<&Record>> = BTreeMap::new();
    for r in records {
        if filter.is_some_and(|f| f != r.pipeline.name) {
            continue;
        }
        map.entry((r.pipeline.name.clone(), r.machine.fingerprint.clone()))
            .or_default()
            .push(r);
    }
    map
}

fn side(input: &SideInput, filter: Option<&str>) -> Side {
    let records: Vec<_> = input
        .records
        .iter()
        .filter(|r| filter.is_none_or(|f| f == r.pipeline.name))
        .collect();
    Side {
        rev: input.rev.clone(),
        commit: input.commit.clone(),
        records: records.len(),
        incomplete: records
            .iter()
            .filter(|r| r.state != RunState::Complete)
            .count(),
    }
}

/// Compares the records of two commits, optionally for one pipeline only.
pub fn compare(
    base: &SideInput,
    head: &SideInput,
    pipeline: Option<&str>,
) -> Result<Comparison, CompareError> {
    let filter_note = pipeline
        .map(|p| format!(" for pipeline {p}"))
        .unwrap_or_default();
    for (name, input) in [("base", base), ("head", head)] {
        if !input
            .records
            .iter()
            .any(|r| pipeline.is_none_or(|p| p == r.pipeline.name))
        {
            return Err(CompareError::MissingResults {
                side: name,
                rev: input.rev.clone(),
                short: input.commit.sha.short().to_string(),
                filter: filter_note.clone(),
            });
        }
    }
    let bmap = group(&base.records, pipeline);
    let hmap = group(&head.records, pipeline);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut names: Vec<&String> = hmap.keys().chain(bmap.keys()).map(|k| &k.0).collect();
    names.dedup();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(*n));

    for name in names {
        let hfps: Vec<&Fingerprint> = hmap.keys().filter(|k| &k.0 == name).map(|k| &k.1).collect();
        let bfps: Vec<&Fingerprint> = bmap.keys().filter(|k| &k.0 == name).map(|k| &k.1).collect();
        for fp in &hfps {
            let key = (name.clone(), (*fp).clone());
            let (horder, hpool) = pool(&hmap[&key]);
            match bmap.get(&key) {
                Some(brecs) => {
                    let (border, bpool) = pool(brecs);
                    for id in &horder {
                        match bpool.get(id) {
                            Some(b) => rows.push(both_sides(name, b, &hpool[id])?),
                            None => {
                                rows.push(one_sided(&hpool[id], name, Verdict::New, None, true))
                            }
                        }
                    }
                    for id in border.iter().filter(|id| !hpool.contains_key(*id)) {
                        rows.push(one_sided(&bpool[id], name, Verdict::Removed, None, false));
                    }
                }
                None if !bfps.is_empty() => {
                    let other: Vec<_> = bfps.iter().map(|f| f.as_str()).collect();
                    notes.push(format!(
                        "pipeline {name}: head was measured on machine {fp}, base only on {}; results from different machines are not compared",
                        other.join(", ")
                    ));
                    for id in &horder {
                        let note = Some(format!("no base results on machine {fp}"));
                        rows.push(one_sided(
                            &hpool[id],
                            name,
                            Verdict::NotComparable,
                            note,
                            true,
                        ));
                    }
                }
                None => {
                    for id in &horder {
                        rows.push(one_sided(&hpool[id], name, Verdict::New, None, true));
                    }
                }
            }
        }
        if hfps.is_empty() {
            for fp in &bfps {
                let (border, bpool) = pool(&bmap[&(name.clone(), (*fp).clone())]);
                for id in &border {
                    rows.push(one_sided(&bpool[id], name, Verdict::Removed, None, false));
                }
            }
        }
    }
    let base_side = side(base, pipeline);
    let head_side = side(head, pipeline);
    for s in [&base_side, &head_side] {
        if s.incomplete > 0 {
            notes.push(format!(
                "{} of {} records at `{}` come from runs that did not complete; their finished cases are used",
                s.incomplete, s.records, s.rev
            ));
        }
    }
    for r in base.records.iter().chain(&head.records) {
        if r.commit.dirty && !notes.iter().any(|n| n.contains("uncommitted")) {
            notes.push(format!(
                "some runs at {} were measured with uncommitted changes",
                r.commit.sha.short()
            ));
        }
    }
    Ok(Comparison {
        base: base_side,
        head: head_side,
        rows,
        notes,
    })
}
