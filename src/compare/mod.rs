//! Matching the records of two commits case by case and judging each case
//! and metric. Cases are matched by pipeline, machine fingerprint and case
//! id; cases new, removed, failed or measured elsewhere are listed, never
//! hidden. Every p-value of one comparison is adjusted together
//! (Benjamini–Hochberg) before any verdict is made; counters are compared
//! exactly. The `Gate` says what a CI job should make of it.

mod judge;
mod matching;
mod shards;
mod speedup;
mod verdict;

use std::collections::{BTreeMap, BTreeSet};

use crate::id::{CaseId, Fingerprint};
use crate::metric::MetricDef;
use crate::record::{CommitInfo, Record, RunState};
pub use crate::resolve::{Selection, SideInput};
use crate::spec::{CompareConfig, CompileMode};
use crate::stats::{Evidence, Method, Summary};

use judge::{adjust, both_sides, missing_row, new_case, one_sided, HistoryIndex};
use matching::{group, pool, Key};
pub use speedup::{GeoMean, Speedup};
pub use verdict::{FailOn, Gate, Verdict};

/// A side of a finished comparison, for the report.
#[derive(Debug, Clone)]
pub struct Side {
    pub rev: String,
    pub commit: CommitInfo,
    pub distance: usize,
    pub records: usize,
    /// Records of runs that were interrupted or killed.
    pub incomplete: usize,
}

/// A counter on both sides: the lowest and highest count of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactChange {
    pub base_min: f64,
    pub base_max: f64,
    pub head_min: f64,
    pub head_max: f64,
}

/// The judgement of one case and metric.
#[derive(Debug, Clone)]
pub struct Row {
    pub pipeline: String,
    pub id: CaseId,
    pub label: String,
    pub group: String,
    pub compile: Option<CompileMode>,
    /// The metric's row of the metric table (name, unit, direction, kind).
    pub metric: &'static MetricDef,
    pub base: Option<Summary>,
    pub head: Option<Summary>,
    pub base_processes: usize,
    pub head_processes: usize,
    /// The statistical test, for timings and memory.
    pub evidence: Option<Evidence>,
    /// The exact values, for counters.
    pub exact: Option<ExactChange>,
    /// Benjamini–Hochberg adjusted p-value across the comparison.
    pub q: Option<f64>,
    /// Earlier baseline commits whose runs gave the run-to-run variance.
    pub history_commits: usize,
    pub verdict: Verdict,
    pub note: Option<String>,
    /// For `Failed` rows: the head's status and whole reason.
    pub failure: Option<String>,
    pub compare: CompareConfig,
}

impl Row {
    /// head / base, from the estimate.
    pub fn ratio(&self) -> Option<f64> {
        self.evidence.map(|e| e.log_ratio.exp())
    }
}

/// Everything `regress compare` concluded.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub base: Side,
    pub head: Side,
    pub rows: Vec<Row>,
    pub geomean: Option<GeoMean>,
    pub speedups: Vec<Speedup>,
    /// Things the reader should know about the inputs.
    pub notes: Vec<String>,
}

impl Comparison {
    /// What a CI job asked to fail on `on` should do.
    pub fn gate(&self, on: FailOn) -> Gate {
        Gate::of(self.rows.iter().map(|r| r.verdict), on)
    }

    /// The rows of cases that fail at head and did not at base.
    pub fn failures(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Failed)
    }
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

/// Compares the records of two commits. `history` holds records of earlier
/// commits of the base branch (nearest first), used for run-to-run variance.
pub fn compare(
    base: &SideInput,
    head: &SideInput,
    history: &[Record],
    opts: &Selection,
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
            let hgaps = shards::gaps(&hmap[&key]);
            for s in &hgaps.missing {
                notes.push(format!(
                    "pipeline {name}: shard {s} of `{}` did not arrive; its cases are listed as missing",
                    head.rev
                ));
            }
            match base_key {
                Some(bkey) => {
                    let (_, bpool) = pool(&bmap[&bkey]);
                    let bgaps = shards::gaps(&bmap[&bkey]);
                    for s in &bgaps.missing {
                        notes.push(format!(
                            "pipeline {name}: shard {s} of `{}` did not arrive; the cases it ran at head are not comparable",
                            base.rev
                        ));
                    }
                    let hist: Vec<&Record> = history
                        .iter()
                        .filter(|r| r.pipeline.name == *name && r.machine.fingerprint == bkey.1)
                        .filter(|r| {
                            bmap[&bkey]
                                .last()
                                .is_some_and(|b| b.pipeline.hash == r.pipeline.hash)
                        })
                        .collect();
                    let hist = HistoryIndex::new(&hist);
                    for id in &horder {
                        match (bpool.get(id), bgaps.shard_of(id)) {
                            (Some(b), _) => rows.extend(both_sides(name, b, &hpool[id], &hist)),
                            (None, Some(s)) => rows.push(one_sided(
                                name,
                                &hpool[id],
                                Verdict::NotComparable,
                                Some(format!("base shard {s} did not arrive")),
                                true,
                            )),
                            (None, None) => rows.push(new_case(name, &hpool[id])),
                        }
                    }
                    for (planned, s) in hgaps
                        .cases
                        .iter()
                        .filter(|(c, _)| !hpool.contains_key(&c.id))
                    {
                        rows.push(missing_row(name, planned, *s, bpool.get(&planned.id)));
                    }
                    let missing = hgaps.cases.iter().map(|(c, _)| c.id.clone());
                    matched
                        .entry(bkey)
                        .or_default()
                        .extend(horder.into_iter().chain(missing));
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
                        rows.push(new_case(name, &hpool[id]));
                    }
                    for (planned, s) in hgaps
                        .cases
                        .iter()
                        .filter(|(c, _)| !hpool.contains_key(&c.id))
                    {
                        rows.push(missing_row(name, planned, *s, None));
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
    adjust(&mut rows);
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
    let alpha = rows
        .first()
        .map_or(crate::spec::defaults::ALPHA, |r| r.compare.alpha);
    Ok(Comparison {
        base: base_side,
        head: head_side,
        geomean: speedup::geomean(&rows, alpha),
        speedups: speedup::speedups(&rows),
        rows,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Record {
        serde_json::from_str(include_str!("../../tests/fixtures/record-v1.json")).unwrap()
    }

    /// A metric with one process per list of samples.
    fn metric(name: &str, unit: &str, lists: &[Vec<f64>]) -> crate::record::Metric {
        let mut m = crate::record::Metric {
            unit: unit.into(),
            processes: Vec::new(),
        };
        for l in lists {
            m.push(name, l);
        }
        m
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
        let opts = Selection {
            allow_fingerprint_mismatch: true,
            ..Selection::default()
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
                crate::metric::THROUGHPUT.to_string(),
                metric(crate::metric::THROUGHPUT, "1/s", &[values]),
            );
            r
        };
        let base = with_rate(vec![100.0, 0.0, 101.0]);
        let head = with_rate(vec![100.0, 99.0, 101.0]);
        let c = compare(
            &input(vec![base]),
            &input(vec![head]),
            &[],
            &Selection::default(),
        )
        .unwrap();
        let row = c
            .rows
            .iter()
            .find(|r| r.metric.name == crate::metric::THROUGHPUT)
            .unwrap();
        assert_eq!(row.verdict, Verdict::NotComparable);
        // Named as stored (0), not as its reciprocal (inf). Stored samples
        // are kept in ascending order, so the index is the sorted one.
        let note = row.note.as_deref().unwrap();
        assert!(note.contains("sample 0 is 0"), "{note}");
    }

    /// The fixture with `recompiles` counts per process on its first case.
    fn with_recompiles(counts: &[f64]) -> Record {
        let mut r = fixture();
        r.cases[0].metrics.insert(
            crate::metric::RECOMPILES.to_string(),
            metric(
                crate::metric::RECOMPILES,
                "count",
                &counts.iter().map(|c| vec![*c]).collect::<Vec<_>>(),
            ),
        );
        r
    }

    fn recompile_rows(base: &[f64], head: &[f64]) -> Vec<Row> {
        let c = compare(
            &input(vec![with_recompiles(base)]),
            &input(vec![with_recompiles(head)]),
            &[],
            &Selection::default(),
        )
        .unwrap();
        c.rows
            .into_iter()
            .filter(|r| r.metric.name == crate::metric::RECOMPILES)
            .collect()
    }

    #[test]
    fn counters_are_compared_exactly_and_only_shown_when_they_change() {
        assert!(recompile_rows(&[1.0, 1.0], &[1.0, 1.0]).is_empty());
        let up = recompile_rows(&[0.0, 0.0], &[8.0, 8.0]);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].verdict, Verdict::REGRESSED);
        assert!(up[0].evidence.is_none() && up[0].q.is_none(), "no test");
        let x = up[0].exact.unwrap();
        assert_eq!((x.base_max, x.head_min), (0.0, 8.0));
        assert_eq!(recompile_rows(&[3.0], &[1.0])[0].verdict, Verdict::IMPROVED);
        // Processes that disagree with ranges that overlap: not a change.
        let varies = recompile_rows(&[0.0, 1.0], &[1.0, 2.0]);
        assert_eq!(varies[0].verdict, Verdict::INCONCLUSIVE);
        assert!(varies[0].note.as_deref().unwrap().contains("varies"));
    }
}
