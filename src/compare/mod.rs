//! Matching the records of two commits case by case and judging each case
//! and metric. Cases are matched by pipeline, machine fingerprint and case
//! id; cases new, removed, failed or measured elsewhere are listed, never
//! hidden. Every p-value of one comparison is adjusted together
//! (Benjamini–Hochberg) before any verdict is made; counters are compared
//! exactly. The `Gate` says what a CI job should make of it.

mod judge;
mod matching;
mod overhead;
mod run_level;
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
pub use overhead::Overhead;
pub use run_level::RunLevel;
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
    /// Python eager against native eager on the same built-in model.
    pub overheads: Vec<Overhead>,
    /// Things the reader should know about the inputs.
    pub notes: Vec<String>,
    /// Each pipeline's file, as its records name it (head's where both
    /// sides have one): where annotations point.
    pub sources: BTreeMap<String, String>,
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
    #[error("no results stored for {side} `{rev}` ({short}){scope}\n  {stored}\n  produce them: git checkout {short} && regress run <pipeline.yaml>")]
    MissingResults {
        side: &'static str,
        rev: String,
        short: String,
        /// The pipeline asked for and the ancestors walked, if any.
        scope: String,
        /// What the commit and the other side do hold, so a mix-up of
        /// pipelines or commits shows.
        stored: String,
    },
}

/// The pipelines a side holds, or could not use, in order: `a, b` or
/// `no results at all`.
fn stored_pipelines(input: &SideInput) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in input
        .records
        .iter()
        .map(|r| r.pipeline.name.as_str())
        .chain(input.unused_pipelines.iter().map(String::as_str))
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let held = if names.is_empty() {
        "no results at all".to_string()
    } else {
        format!("results of pipeline(s) {}", names.join(", "))
    };
    match input.dirty_left_out {
        0 => held,
        n => format!("{held} and {n} run(s) made with uncommitted changes, left out (--allow-dirty uses them)"),
    }
}

/// Every record of pipeline `name`, over all machines.
fn records_of<'a>(map: &BTreeMap<Key, Vec<&'a Record>>, name: &str) -> Vec<&'a Record> {
    map.iter()
        .filter(|(k, _)| k.0 == name)
        .flat_map(|(_, v)| v.iter().copied())
        .collect()
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
    for (name, input, other_name, other) in
        [("base", base, "head", head), ("head", head, "base", base)]
    {
        if !input
            .records
            .iter()
            .any(|r| filter.is_none_or(|p| p == r.pipeline.name))
        {
            return Err(CompareError::MissingResults {
                side: name,
                rev: input.rev.clone(),
                short: input.commit.sha.short().to_string(),
                scope: if input.distance > 0 {
                    format!(
                        "{filter_note} or any of its {} first-parent ancestors",
                        input.distance
                    )
                } else {
                    filter_note.clone()
                },
                stored: format!(
                    "{} has {}; {other_name} `{}` ({}) has {}",
                    input.commit.sha.short(),
                    stored_pipelines(input),
                    other.rev,
                    other.commit.sha.short(),
                    stored_pipelines(other)
                ),
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

    // Pipelines a sharded head run planned, to tell a pipeline none of
    // whose shards arrived from one that was removed.
    let planned = shards::planned_pipelines(&head.records);
    for name in names {
        // Shards are counted over every machine of the pipeline: a shard
        // that ran on another runner did arrive.
        let hgaps = shards::gaps(&records_of(&hmap, name));
        let bgaps = shards::gaps(&records_of(&bmap, name));
        for (s, side) in hgaps
            .missing
            .iter()
            .map(|s| (s, &head.rev))
            .chain(bgaps.missing.iter().map(|s| (s, &base.rev)))
        {
            notes.push(format!(
                "pipeline {name}: shard {s} of `{side}` did not arrive; {}",
                if side == &head.rev {
                    "its cases are listed as missing"
                } else {
                    "the cases it ran at head are not comparable"
                }
            ));
        }
        // Per base machine, the case ids any head machine matched to it had.
        let mut matched: BTreeMap<Key, BTreeSet<CaseId>> = BTreeMap::new();
        let mut seen_at_head: BTreeSet<CaseId> = BTreeSet::new();
        let hfps: Vec<&Fingerprint> = hmap.keys().filter(|k| &k.0 == name).map(|k| &k.1).collect();
        let bfps: Vec<&Fingerprint> = bmap.keys().filter(|k| &k.0 == name).map(|k| &k.1).collect();
        for fp in &hfps {
            let key = (name.clone(), (*fp).clone());
            let (horder, hpool) = pool(&hmap[&key]);
            seen_at_head.extend(horder.iter().cloned());
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
            // A case with nothing to compare against: new, or failed when it
            // fails (whatever else is wrong, a crash at head is named), or
            // not comparable with `why`.
            let unmatched = |h: &matching::Pooled, why: Option<String>| match why {
                Some(why) if !matching::is_failure(h.status) => {
                    one_sided(name, h, Verdict::NotComparable, Some(why), true)
                }
                _ => new_case(name, h),
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
                    let hist = HistoryIndex::new(&hist);
                    for id in &horder {
                        let h = &hpool[id];
                        rows.extend(match bpool.get(id) {
                            Some(b) => both_sides(name, b, h, &hist),
                            None => {
                                let why = bgaps
                                    .shard_of(id)
                                    .map(|s| format!("base shard {s} did not arrive"));
                                vec![unmatched(h, why)]
                            }
                        });
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
                        let why = format!("no base results on machine {fp}");
                        rows.push(unmatched(&hpool[id], Some(why)));
                    }
                }
                None => {
                    for id in &horder {
                        rows.push(new_case(name, &hpool[id]));
                    }
                }
            }
        }
        // Cases of head shards that never arrived, once per pipeline, with
        // the base's numbers where a base machine has them.
        let base_pools: Vec<_> = bfps
            .iter()
            .map(|fp| pool(&bmap[&(name.clone(), (*fp).clone())]).1)
            .collect();
        let mut missing: BTreeSet<CaseId> = BTreeSet::new();
        for (planned_case, s) in hgaps
            .cases
            .iter()
            .filter(|(c, _)| !seen_at_head.contains(&c.id))
        {
            let base = base_pools.iter().find_map(|p| p.get(&planned_case.id));
            rows.push(missing_row(name, planned_case, *s, base));
            missing.insert(planned_case.id.clone());
        }
        // A base case is removed when no head machine compared with its
        // machine has it; listed once even when two head machines were
        // matched to one base machine (--allow-fingerprint-mismatch).
        for (bkey, ids) in &matched {
            let (border, bpool) = pool(&bmap[bkey]);
            for id in border
                .iter()
                .filter(|id| !ids.contains(*id) && !missing.contains(*id))
            {
                rows.push(one_sided(name, &bpool[id], Verdict::Removed, None, false));
            }
        }
        if hfps.is_empty() {
            // Only at base: removed, unless a sharded head run planned the
            // pipeline and none of its shards arrived.
            let unarrived = planned.get(name.as_str());
            if let Some(shards) = unarrived {
                notes.push(format!(
                    "pipeline {name}: none of its shards of `{}` arrived ({}); its cases are listed as missing",
                    head.rev,
                    shards.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ));
            }
            for fp in &bfps {
                let (border, bpool) = pool(&bmap[&(name.clone(), (*fp).clone())]);
                for id in &border {
                    rows.push(match unarrived {
                        Some(shards) => one_sided(
                            name,
                            &bpool[id],
                            Verdict::Missing,
                            Some(format!(
                                "none of shards {} arrived",
                                shards
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                            false,
                        ),
                        None => one_sided(name, &bpool[id], Verdict::Removed, None, false),
                    });
                }
            }
        }
    }

    // Adjust every p-value of this comparison together, then decide.
    adjust(&mut rows);
    if rows.iter().any(|r| {
        r.evidence
            .is_some_and(|e| e.method == Method::WithinProcess)
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
    let sources = base
        .records
        .iter()
        .chain(&head.records)
        .map(|r| (r.pipeline.name.clone(), r.pipeline.source.clone()))
        .collect();
    Ok(Comparison {
        sources,
        base: base_side,
        head: head_side,
        geomean: speedup::geomean(&rows, alpha, run_level::run_level_sd(history)).map(|mut g| {
            if g.run_level == RunLevel::NotEstimated
                && run_level::interleaved(&base.records, &head.records)
            {
                g.run_level = RunLevel::Interleaved;
            }
            g
        }),
        speedups: speedup::speedups(&rows),
        overheads: overhead::overheads(&base.records, &head.records),
        rows,
        notes,
    })
}

#[cfg(test)]
mod tests;
