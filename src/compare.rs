//! Matching the records of two commits case by case and judging each case
//! and metric. Cases are matched by pipeline, machine fingerprint and case
//! id; cases new, removed, failed or measured elsewhere are listed, never
//! hidden. Every p-value of one comparison is adjusted together
//! (Benjamini–Hochberg) before any verdict is made.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::record::{metric, CaseRecord, CaseStatus, CommitInfo, Record, RunState};
use crate::runner::Fingerprint;
use crate::spec::{CaseId, CompareConfig, CompileMode};
use crate::stats::{
    bh_qvalues, check_positive, decide, evidence, mean_interval, process_location,
    run_to_run_variance, Direction, Evidence, Method, StatsError, Summary, Verdict,
};

/// Earlier baseline runs used for the run-to-run variance, at most.
pub const HISTORY_COMMITS: usize = 30;

/// One side of a comparison as loaded from the store.
#[derive(Debug, Clone)]
pub struct SideInput {
    /// The revision as the user wrote it (`main`, `HEAD~1`).
    pub rev: String,
    /// The commit whose results are used.
    pub commit: CommitInfo,
    /// How many first-parent commits back from the resolved revision those
    /// results are (0: the revision itself had them).
    pub distance: usize,
    pub records: Vec<Record>,
    /// What the reader should know about how this side was chosen.
    pub notes: Vec<String>,
}

/// Options of a comparison.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Compare results from different machines anyway (and say so).
    pub allow_fingerprint_mismatch: bool,
}

/// A side of a finished comparison, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub rev: String,
    pub commit: CommitInfo,
    pub distance: usize,
    pub records: usize,
    /// Records of runs that were interrupted or killed.
    pub incomplete: usize,
}

/// The judgement of one case and metric.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub pipeline: String,
    pub id: CaseId,
    pub label: String,
    pub group: String,
    pub compile: Option<CompileMode>,
    pub metric: String,
    pub unit: String,
    pub direction: Direction,
    pub base: Option<Summary>,
    pub head: Option<Summary>,
    pub base_processes: usize,
    pub head_processes: usize,
    pub evidence: Option<Evidence>,
    /// Benjamini–Hochberg adjusted p-value across the comparison.
    pub q: Option<f64>,
    /// Earlier baseline commits whose runs gave the run-to-run variance.
    pub history_commits: usize,
    pub verdict: Verdict,
    pub note: Option<String>,
    pub compare: CompareConfig,
}

impl Row {
    /// head / base, from the estimate.
    pub fn ratio(&self) -> Option<f64> {
        self.evidence.map(|e| e.log_ratio.exp())
    }
}

/// Geometric mean of head/base over the comparable latency rows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GeoMean {
    pub ratio: f64,
    pub lo: f64,
    pub hi: f64,
    pub cases: usize,
}

/// Everything `regress compare` concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base: Side,
    pub head: Side,
    pub rows: Vec<Row>,
    pub geomean: Option<GeoMean>,
    /// Things the reader should know about the inputs.
    pub notes: Vec<String>,
}

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("no results stored for {side} `{rev}` ({short}){filter}{walked}\n  produce them: git checkout {short} && regress run <pipeline.yaml>")]
    MissingResults {
        side: &'static str,
        rev: String,
        short: String,
        filter: String,
        walked: String,
    },
}

/// Metrics compared, with units and direction; latency first.
const METRICS: [(&str, &str, Direction); 4] = [
    (metric::LATENCY, "s", Direction::LowerIsBetter),
    (metric::THROUGHPUT, "1/s", Direction::HigherIsBetter),
    (metric::COMPILE_TIME, "s", Direction::LowerIsBetter),
    (metric::PEAK_MEMORY, "B", Direction::LowerIsBetter),
];

type Key = (String, Fingerprint);

/// A case's records pooled over every run at one commit.
struct Pooled<'a> {
    first: &'a CaseRecord,
    status: CaseStatus,
    reason: Option<String>,
    /// Per metric: one sample list per process, over every run.
    processes: BTreeMap<&'static str, Vec<Vec<f64>>>,
    hash: &'a str,
    compare: CompareConfig,
}

/// Which status a case pooled over several runs shows: any run that
/// measured it wins, then a failure (it says something about the code),
/// then a skip, then a run that never got to it.
fn rank(status: CaseStatus) -> u8 {
    match status {
        CaseStatus::Ok => 4,
        CaseStatus::Failed | CaseStatus::Timeout | CaseStatus::Oom | CaseStatus::AccuracyFail => 3,
        CaseStatus::Skipped => 2,
        CaseStatus::Interrupted => 1,
        CaseStatus::Pending => 0,
    }
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
                    processes: BTreeMap::new(),
                    hash: &record.pipeline.hash,
                    compare: record.pipeline.compare,
                }
            });
            if rank(case.status) > rank(entry.status) {
                entry.status = case.status;
                entry.reason = case.reason.clone();
            }
            if case.status == CaseStatus::Ok {
                for (name, _, _) in METRICS {
                    if let Some(m) = case.metrics.get(name) {
                        entry
                            .processes
                            .entry(name)
                            .or_default()
                            .extend(m.samples.iter().filter(|s| !s.is_empty()).cloned());
                    }
                }
                entry.status = CaseStatus::Ok;
                entry.reason = None;
            }
        }
    }
    (order, map)
}

impl Pooled<'_> {
    fn latency_processes(&self) -> usize {
        self.processes.get(metric::LATENCY).map_or(0, Vec::len)
    }

    fn summary(&self, name: &str) -> Option<Summary> {
        let all: Vec<f64> = self
            .processes
            .get(name)?
            .iter()
            .flatten()
            .copied()
            .collect();
        Summary::of(&all).ok()
    }

    fn usable(&self) -> bool {
        self.status == CaseStatus::Ok && self.latency_processes() > 0
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn status_note(side: &str, p: &Pooled) -> String {
    match &p.reason {
        Some(r) => format!("{} on {side}: {}", p.status.as_str(), first_line(r)),
        None => format!("{} on {side}", p.status.as_str()),
    }
}

fn base_row(pipeline: &str, p: &Pooled, verdict: Verdict, note: Option<String>) -> Row {
    Row {
        pipeline: pipeline.to_string(),
        id: p.first.id.clone(),
        label: p.first.label.clone(),
        group: p.first.group.clone(),
        compile: p.first.compile,
        metric: metric::LATENCY.to_string(),
        unit: "s".to_string(),
        direction: Direction::LowerIsBetter,
        base: None,
        head: None,
        base_processes: 0,
        head_processes: 0,
        evidence: None,
        q: None,
        history_commits: 0,
        verdict,
        note,
        compare: p.compare,
    }
}

fn one_sided(
    pipeline: &str,
    p: &Pooled,
    verdict: Verdict,
    note: Option<String>,
    head_side: bool,
) -> Row {
    let mut row = base_row(pipeline, p, verdict, note);
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

/// Samples as the statistics take them: times and sizes as they are
/// (borrowed), rates (higher is better) as time per item, so that the slow
/// end of every metric is its high end. Rates are checked before they are
/// inverted, so an error names the stored value.
fn oriented(
    processes: &[Vec<f64>],
    direction: Direction,
) -> Result<Cow<'_, [Vec<f64>]>, StatsError> {
    match direction {
        Direction::LowerIsBetter => Ok(Cow::Borrowed(processes)),
        Direction::HigherIsBetter => processes
            .iter()
            .map(|p| {
                check_positive(p)?;
                Ok(p.iter().map(|x| 1.0 / x).collect())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cow::Owned),
    }
}

/// Groups of per-process locations of one case and metric, one group per
/// earlier commit, from history records.
fn history_groups(
    history: &[&Record],
    id: &CaseId,
    name: &str,
    direction: Direction,
) -> Vec<Vec<f64>> {
    let mut by_commit: Vec<(String, Vec<f64>)> = Vec::new();
    for r in history {
        let Some(case) = r
            .cases
            .iter()
            .find(|c| &c.id == id && c.status == CaseStatus::Ok)
        else {
            continue;
        };
        let Some(m) = case.metrics.get(name) else {
            continue;
        };
        let medians: Vec<f64> = m
            .samples
            .iter()
            .filter_map(|s| {
                let s = oriented(std::slice::from_ref(s), direction).ok()?;
                process_location(&s[0]).ok()
            })
            .collect();
        let sha = r.commit.sha.to_string();
        match by_commit.iter_mut().find(|(s, _)| *s == sha) {
            Some((_, g)) => g.extend(medians),
            None => by_commit.push((sha, medians)),
        }
    }
    by_commit
        .into_iter()
        .map(|(_, g)| g)
        .filter(|g| !g.is_empty())
        .collect()
}

fn both_sides(pipeline: &str, b: &Pooled, h: &Pooled, history: &[&Record]) -> Vec<Row> {
    // A latency row with both summaries but no test, for cases not judged.
    let unjudged = |verdict, note: String| {
        let mut row = base_row(pipeline, h, verdict, Some(note));
        row.base = b.summary(metric::LATENCY);
        row.head = h.summary(metric::LATENCY);
        vec![row]
    };
    if !b.usable() || !h.usable() {
        let statuses = [b.status, h.status];
        let verdict = if statuses.iter().any(|s| {
            matches!(
                s,
                CaseStatus::Failed
                    | CaseStatus::Timeout
                    | CaseStatus::Oom
                    | CaseStatus::AccuracyFail
            )
        }) {
            Verdict::Failed
        } else if statuses.contains(&CaseStatus::Skipped) {
            Verdict::Skipped
        } else {
            Verdict::NotComparable
        };
        let mut notes = Vec::new();
        if !b.usable() {
            notes.push(status_note("base", b));
        }
        if !h.usable() {
            notes.push(status_note("head", h));
        }
        return unjudged(verdict, notes.join("; "));
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
    for (name, unit, direction) in METRICS {
        let (Some(bp), Some(hp)) = (b.processes.get(name), h.processes.get(name)) else {
            continue;
        };
        let groups = history_groups(history, &h.first.id, name, direction);
        let prior = run_to_run_variance(&groups);
        let tested = oriented(bp, direction)
            .and_then(|b| evidence(&b, &oriented(hp, direction)?, prior, h.compare.alpha));
        let e = match tested.map(|e| match direction {
            Direction::LowerIsBetter => e,
            Direction::HigherIsBetter => e.reciprocal(),
        }) {
            Ok(e) => e,
            Err(err) => {
                // Unusable samples (zero or negative times, say) spoil this
                // row, not the whole comparison.
                let mut row = base_row(
                    pipeline,
                    h,
                    Verdict::NotComparable,
                    Some(format!("{name}: {err}")),
                );
                row.metric = name.to_string();
                row.unit = unit.to_string();
                rows.push(row);
                continue;
            }
        };
        let mut row = base_row(pipeline, h, Verdict::Inconclusive, None);
        row.metric = name.to_string();
        row.unit = unit.to_string();
        row.direction = direction;
        row.base = b.summary(name);
        row.head = h.summary(name);
        row.base_processes = bp.len();
        row.head_processes = hp.len();
        row.history_commits = if prior.is_some() { groups.len() } else { 0 };
        row.evidence = Some(e);
        rows.push(row);
    }
    rows
}

/// Records by pipeline and machine. Runs at one commit are pooled only when
/// they measured the same way (same pipeline hash as the newest run); the
/// others are left out with a note.
fn group<'a>(
    records: &'a [Record],
    filter: Option<&str>,
    rev: &str,
    notes: &mut Vec<String>,
) -> BTreeMap<Key, Vec<&'a Record>> {
    let mut map: BTreeMap<Key, Vec<&Record>> = BTreeMap::new();
    for r in records {
        if filter.is_some_and(|f| f != r.pipeline.name) {
            continue;
        }
        map.entry((r.pipeline.name.clone(), r.machine.fingerprint.clone()))
            .or_default()
            .push(r);
    }
    for ((name, _), runs) in map.iter_mut() {
        runs.sort_by_key(|r| r.started_at);
        let newest = runs
            .last()
            .expect("groups are never empty")
            .pipeline
            .hash
            .clone();
        let before = runs.len();
        runs.retain(|r| r.pipeline.hash == newest);
        if runs.len() < before {
            notes.push(format!(
                "{} run(s) of pipeline {name} at `{rev}` measured with other settings than the newest and were left out",
                before - runs.len()
            ));
        }
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
        distance: input.distance,
        records: records.len(),
        incomplete: records
            .iter()
            .filter(|r| r.state != RunState::Complete)
            .count(),
    }
}

fn geomean(rows: &[Row], alpha: f64) -> Option<GeoMean> {
    let judged: Vec<Evidence> = rows
        .iter()
        .filter(|r| {
            r.metric == metric::LATENCY
                && matches!(
                    r.verdict,
                    Verdict::Regressed
                        | Verdict::Improved
                        | Verdict::Unchanged
                        | Verdict::Inconclusive
                )
        })
        .filter_map(|r| r.evidence)
        .filter(|e| e.log_ratio.is_finite())
        .collect();
    let logs: Vec<f64> = judged.iter().map(|e| e.log_ratio).collect();
    // One case: its own interval; several: the interval of their mean.
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

/// Compares the records of two commits. `history` holds records of earlier
/// commits of the base branch (nearest first), used for run-to-run variance.
pub fn compare(
    base: &SideInput,
    head: &SideInput,
    history: &[Record],
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let filter = opts.pipeline.as_deref();
    let filter_note = filter
        .map(|p| format!(" for pipeline {p}"))
        .unwrap_or_default();
    for (name, input) in [("base", base), ("head", head)] {
        if !input
            .records
            .iter()
            .any(|r| filter.is_none_or(|p| p == r.pipeline.name))
        {
            return Err(CompareError::MissingResults {
                side: name,
                rev: input.rev.clone(),
                short: input.commit.sha.short().to_string(),
                filter: filter_note.clone(),
                walked: if input.distance > 0 {
                    format!(" or any of its {} first-parent ancestors", input.distance)
                } else {
                    String::new()
                },
            });
        }
    }
    let mut rows = Vec::new();
    let mut notes: Vec<String> = base.notes.iter().chain(&head.notes).cloned().collect();
    let bmap = group(&base.records, filter, &base.rev, &mut notes);
    let hmap = group(&head.records, filter, &head.rev, &mut notes);
    let mut names: Vec<&String> = Vec::new();
    for k in hmap.keys().chain(bmap.keys()) {
        if !names.contains(&&k.0) {
            names.push(&k.0);
        }
    }

    for name in names {
        // Per base machine, the case ids any head machine matched to it had.
        let mut matched: BTreeMap<Key, BTreeSet<CaseId>> = BTreeMap::new();
        let hfps: Vec<&Fingerprint> = hmap.keys().filter(|k| &k.0 == name).map(|k| &k.1).collect();
        let bfps: Vec<&Fingerprint> = bmap.keys().filter(|k| &k.0 == name).map(|k| &k.1).collect();
        for fp in &hfps {
            let key = (name.clone(), (*fp).clone());
            let (horder, hpool) = pool(&hmap[&key]);
            let base_key = if bmap.contains_key(&key) {
                Some(key.clone())
            } else if opts.allow_fingerprint_mismatch && !bfps.is_empty() {
                let other = bfps
                    .iter()
                    .max_by_key(|f| bmap[&(name.clone(), (**f).clone())].len())
                    .expect("non-empty");
                notes.push(format!(
                    "pipeline {name}: compared across machines as asked (--allow-fingerprint-mismatch): base {other}, head {fp}; differences may be the machines'"
                ));
                Some((name.clone(), (*other).clone()))
            } else {
                None
            };
            match base_key {
                Some(bkey) => {
                    let (_, bpool) = pool(&bmap[&bkey]);
                    let hist: Vec<&Record> = history
                        .iter()
                        .filter(|r| r.pipeline.name == *name && r.machine.fingerprint == bkey.1)
                        .filter(|r| {
                            bmap[&bkey]
                                .last()
                                .is_some_and(|b| b.pipeline.hash == r.pipeline.hash)
                        })
                        .collect();
                    for id in &horder {
                        match bpool.get(id) {
                            Some(b) => rows.extend(both_sides(name, b, &hpool[id], &hist)),
                            None => {
                                rows.push(one_sided(name, &hpool[id], Verdict::New, None, true))
                            }
                        }
                    }
                    matched.entry(bkey).or_default().extend(horder);
                }
                None if !bfps.is_empty() => {
                    let other: Vec<_> = bfps.iter().map(|f| f.as_str()).collect();
                    notes.push(format!(
                        "pipeline {name}: head was measured on machine {fp}, base only on {}; results of different machines are not compared (--allow-fingerprint-mismatch compares them anyway)",
                        other.join(", ")
                    ));
                    for id in &horder {
                        let note = Some(format!("no base results on machine {fp}"));
                        rows.push(one_sided(
                            name,
                            &hpool[id],
                            Verdict::NotComparable,
                            note,
                            true,
                        ));
                    }
                }
                None => {
                    for id in &horder {
                        rows.push(one_sided(name, &hpool[id], Verdict::New, None, true));
                    }
                }
            }
        }
        // A base case is removed when no head machine compared with its
        // machine has it; listed once even when two head machines were
        // matched to one base machine (--allow-fingerprint-mismatch).
        for (bkey, ids) in &matched {
            let (border, bpool) = pool(&bmap[bkey]);
            for id in border.iter().filter(|id| !ids.contains(*id)) {
                rows.push(one_sided(name, &bpool[id], Verdict::Removed, None, false));
            }
        }
        if hfps.is_empty() {
            for fp in &bfps {
                let (border, bpool) = pool(&bmap[&(name.clone(), (*fp).clone())]);
                for id in &border {
                    rows.push(one_sided(name, &bpool[id], Verdict::Removed, None, false));
                }
            }
        }
    }

    // Adjust every p-value of this comparison together, then decide.
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
        row.verdict = decide(
            &e,
            q,
            row.compare.threshold,
            row.compare.alpha,
            row.direction,
        );
        if e.method == Method::MannWhitneyIterations
            && row.verdict == Verdict::Inconclusive
            && row.note.is_none()
        {
            row.note = Some("one process per side: run-to-run variance unobserved".into());
        }
    }
    if rows.iter().any(|r| {
        r.evidence
            .is_some_and(|e| e.method == Method::MannWhitneyIterations)
    }) {
        notes.push(
            "some cases ran one process per side with no earlier baseline runs: run-to-run variance is unobserved, so changes within a process's own spread are reported as inconclusive; set runner.processes to 3 or more, or keep results of earlier baseline commits".into(),
        );
    }

    let base_side = side(base, filter);
    let head_side = side(head, filter);
    if base_side.distance > 0 {
        notes.push(format!(
            "`{}` had no results for this machine; using {} ({} commit{} back along its first parents)",
            base_side.rev,
            base_side.commit.sha.short(),
            base_side.distance,
            if base_side.distance == 1 { "" } else { "s" }
        ));
    }
    for s in [&base_side, &head_side] {
        if s.incomplete > 0 {
            notes.push(format!(
                "{} of {} records at `{}` come from runs that did not complete; their finished cases are used",
                s.incomplete, s.records, s.rev
            ));
        }
    }
    if base
        .records
        .iter()
        .chain(&head.records)
        .any(|r| r.commit.dirty)
    {
        notes.push("some runs were measured with uncommitted changes in the work tree".into());
    }
    let alpha = rows.first().map_or(0.01, |r| r.compare.alpha);
    let geomean = geomean(&rows, alpha);
    Ok(Comparison {
        base: base_side,
        head: head_side,
        rows,
        geomean,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Record {
        serde_json::from_str(include_str!("../tests/fixtures/record-v1.json")).unwrap()
    }

    fn input(records: Vec<Record>) -> SideInput {
        SideInput {
            rev: "rev".into(),
            commit: records[0].commit.clone(),
            distance: 0,
            records,
            notes: Vec::new(),
        }
    }

    /// The fixture as base against two head machines, `other` on machine
    /// `fp`, compared across machines.
    fn two_head_machines(head: Record, mut other: Record, fp: &str) -> Comparison {
        other.machine.fingerprint = Fingerprint::try_from(fp.to_string()).unwrap();
        let opts = CompareOptions {
            allow_fingerprint_mismatch: true,
            ..CompareOptions::default()
        };
        compare(
            &input(vec![fixture()]),
            &input(vec![head, other]),
            &[],
            &opts,
        )
        .unwrap()
    }

    #[test]
    fn removed_cases_are_listed_once_with_two_head_machines() {
        let mut head = fixture();
        let removed = head.cases.remove(0).label;
        let c = two_head_machines(head.clone(), head, "0123456789abcdef");
        let removed_rows: Vec<&Row> = c
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Removed)
            .collect();
        assert_eq!(removed_rows.len(), 1, "{:?}", c.rows);
        assert_eq!(removed_rows[0].label, removed);
        // Both head machines are compared, the other one with a note.
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("compared across machines")),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn a_case_one_head_machine_still_has_is_not_removed() {
        // The machine without the case sorts first, the one with it second.
        let mut head = fixture();
        head.cases.remove(0);
        let c = two_head_machines(head, fixture(), "ffffffffffffffff");
        assert!(
            c.rows.iter().all(|r| r.verdict != Verdict::Removed),
            "{:?}",
            c.rows
        );
    }

    #[test]
    fn a_bad_rate_is_named_as_stored() {
        let with_rate = |values: Vec<f64>| {
            let mut r = fixture();
            r.cases[0].metrics.insert(
                metric::THROUGHPUT.to_string(),
                crate::record::Metric {
                    unit: "1/s".into(),
                    samples: vec![values],
                },
            );
            r
        };
        let base = with_rate(vec![100.0, 0.0, 101.0]);
        let head = with_rate(vec![100.0, 99.0, 101.0]);
        let c = compare(
            &input(vec![base]),
            &input(vec![head]),
            &[],
            &CompareOptions::default(),
        )
        .unwrap();
        let row = c
            .rows
            .iter()
            .find(|r| r.metric == metric::THROUGHPUT)
            .unwrap();
        assert_eq!(row.verdict, Verdict::NotComparable);
        let note = row.note.as_deref().unwrap();
        assert!(note.contains("sample 1 is 0"), "{note}");
    }
}
