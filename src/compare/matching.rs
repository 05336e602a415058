//! Which records meet: records grouped by pipeline and machine, runs at one
//! commit pooled per case, and the status a pooled case shows.

use std::collections::BTreeMap;

use crate::id::{CaseId, Fingerprint};
use crate::metric::{self, METRICS};
use crate::record::{
    reason_in_one_line, summary_of, CaseRecord, CaseStatus, ProcessSummary, Record,
};
use crate::spec::CompareConfig;
use crate::stats::Summary;

/// Records are grouped by pipeline name and machine.
pub(super) type Key = (String, Fingerprint);

/// A case's records pooled over every run at one commit.
pub(super) struct Pooled<'a> {
    pub first: &'a CaseRecord,
    pub status: CaseStatus,
    pub reason: Option<String>,
    /// Per compared metric: every process of every run.
    pub processes: BTreeMap<&'static str, Vec<&'a ProcessSummary>>,
    pub hash: &'a str,
    pub compare: CompareConfig,
    /// How the runs sampled the case, where a reader should know
    /// (`CaseRecord::cautions`).
    pub cautions: Vec<String>,
}

/// Which status a case pooled over several runs shows: any run that
/// measured it wins, then a failure (it says something about the code),
/// then a skip, then a run that never got to it.
fn rank(status: CaseStatus) -> u8 {
    match status {
        CaseStatus::Ok => 4,
        s if is_failure(s) => 3,
        CaseStatus::Skipped => 2,
        CaseStatus::Interrupted => 1,
        _ => 0,
    }
}

/// Whether a status says the code failed (as opposed to not running).
pub(super) fn is_failure(status: CaseStatus) -> bool {
    matches!(
        status,
        CaseStatus::Failed | CaseStatus::Timeout | CaseStatus::Oom | CaseStatus::AccuracyFail
    )
}

/// The cases of some runs, in order of first appearance, pooled by id.
pub(super) fn pool<'a>(records: &[&'a Record]) -> (Vec<CaseId>, BTreeMap<CaseId, Pooled<'a>>) {
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
                    cautions: Vec::new(),
                }
            });
            for caution in case.cautions() {
                if !entry.cautions.contains(&caution) {
                    entry.cautions.push(caution);
                }
            }
            if rank(case.status) > rank(entry.status) {
                entry.status = case.status;
                entry.reason = case.reason.clone();
            }
            if case.status == CaseStatus::Ok {
                for m in METRICS.iter().filter(|m| m.compared) {
                    if let Some(values) = case.metrics.get(m.name) {
                        entry
                            .processes
                            .entry(m.name)
                            .or_default()
                            .extend(values.processes.iter().filter(|p| p.n > 0));
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
    pub fn latency_processes(&self) -> usize {
        self.processes.get(metric::LATENCY).map_or(0, Vec::len)
    }

    /// Summary of every sample of a metric, over all processes.
    pub fn summary(&self, name: &str) -> Option<Summary> {
        summary_of(self.processes.get(name)?)
    }

    /// Whether the case was measured (ok, with latency samples).
    pub fn usable(&self) -> bool {
        self.status == CaseStatus::Ok && self.latency_processes() > 0
    }

    /// `failed on head: <reason in one line>`: its first line and, for a
    /// traceback or a quoted stderr, its last (where the error is named).
    pub fn status_note(&self, side: &str) -> String {
        match &self.reason {
            Some(r) => format!(
                "{} on {side}: {}",
                self.status.as_str(),
                reason_in_one_line(r)
            ),
            None => format!("{} on {side}", self.status.as_str()),
        }
    }

    /// The status and the whole reason, for the failures a report lists first.
    pub fn failure(&self) -> String {
        match &self.reason {
            Some(r) => format!("{}: {}", self.status.as_str(), r.trim_end()),
            None => self.status.as_str().to_string(),
        }
    }
}

/// Records by pipeline and machine. Runs at one commit are pooled only when
/// they measured the same way (same pipeline hash as the newest run); the
/// others are left out with a note.
pub(super) fn group<'a>(
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
