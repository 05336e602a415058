//! A record: one run of one pipeline on one machine at one commit, with
//! the samples of every case kept compactly (`samples`): exact summaries
//! and locations, and order statistics from which any threshold can be
//! recomputed later. Records are the only thing the store keeps; their
//! format is versioned, and every earlier version still reads.

mod diagnostics;
#[cfg(test)]
mod rank_tests;
mod samples;
mod warnings;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::id::{CaseId, CommitSha, RunId};
use crate::runner::{FailureKind, Machine, Outcome};
use crate::spec::{
    BackendKind, Case, CompareConfig, CompileMode, Params, Phase, Pipeline, Precision, ShardPlan,
};

/// Version of the record format written by this build; readers take it and
/// every earlier one, and reject newer ones. 2: samples kept compactly.
pub const RECORD_SCHEMA_VERSION: u32 = 2;

pub use diagnostics::Diagnostics;
pub use samples::{summary_of, Location, Metric, ProcessSummary, Sketch, SKETCH_POINTS};
pub use warnings::{CUT_SHORT, LOAD};

/// The metric table: names, units, directions and kinds.
pub use crate::metric;

/// The commit a record measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: CommitSha,
    pub time: Option<DateTime<Utc>>,
    pub branch: Option<String>,
    /// Tracked files differed from the commit when the run started, or
    /// files the run used (its pipeline file, its entrypoint) were not
    /// committed.
    pub dirty: bool,
    pub summary: Option<String>,
}

/// Where a run got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Still going, or killed without a chance to say so.
    Running,
    Complete,
    /// Stopped by the user; the cases that finished are kept.
    Interrupted,
}

/// What happened to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Pending,
    Ok,
    Failed,
    Skipped,
    Timeout,
    Oom,
    /// The output disagreed with the eager reference, or held NaN or Inf.
    AccuracyFail,
    Interrupted,
}

impl CaseStatus {
    /// The spelling used in records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Pending => "pending",
            CaseStatus::Ok => "ok",
            CaseStatus::Failed => "failed",
            CaseStatus::Skipped => "skipped",
            CaseStatus::Timeout => "timeout",
            CaseStatus::Oom => "oom",
            CaseStatus::AccuracyFail => "accuracy_fail",
            CaseStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the case ran and failed (crash, timeout, out of memory,
    /// accuracy), as opposed to not running (skipped, interrupted).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            CaseStatus::Failed | CaseStatus::Timeout | CaseStatus::Oom | CaseStatus::AccuracyFail
        )
    }
}

/// A case's reason in one line: its first line and, when there are more
/// (a quoted stderr, a traceback), its last, where the error is named.
pub fn reason_in_one_line(reason: &str) -> String {
    let mut lines = reason.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    match lines.next_back() {
        Some(last) => format!("{first} … {last}"),
        None => first.to_string(),
    }
}

/// The pipeline a record ran, as much of it as a reader needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineInfo {
    pub name: String,
    /// Hash of the validated pipeline; records with other hashes measured something else.
    pub hash: String,
    pub source: String,
    pub backend: BackendKind,
    pub compare: CompareConfig,
    /// The built-in model with its arguments (`Model::builtin_key`), for
    /// setting the python backend against the native one on the same
    /// model; absent for other models and in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Metrics as read: each summarised with the direction its name gives.
fn named_metrics<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Metric>, D::Error> {
    let raw = BTreeMap::<String, samples::UnnamedMetric>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(name, m)| {
            let metric = m.named(&name);
            (name, metric)
        })
        .collect())
}

/// One case of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub id: CaseId,
    pub label: String,
    /// The label without the compile mode: eager and compiled variants share it.
    pub group: String,
    pub params: Params,
    pub precision: Option<Precision>,
    pub compile: Option<CompileMode>,
    pub phase: Phase,
    pub status: CaseStatus,
    pub reason: Option<String>,
    #[serde(deserialize_with = "named_metrics")]
    pub metrics: BTreeMap<String, Metric>,
    /// Per-process diagnostics from the backend (device, warm-up
    /// iterations, ...), parsed when asked (`Diagnostics::maps`).
    pub diagnostics: Diagnostics,
}

/// One run of one pipeline on one machine at one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    pub run_id: RunId,
    pub state: RunState,
    pub pipeline: PipelineInfo,
    pub commit: CommitInfo,
    pub machine: Machine,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// For a run of one shard (`run --shard i/n`): which shard, and where
    /// every case of the pipeline runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardPlan>,
    pub cases: Vec<CaseRecord>,
}

impl Record {
    /// A new, running record with every case pending (`shard`: the share
    /// of a sharded run these cases are).
    pub fn begin(
        pipeline: &Pipeline,
        cases: &[Case],
        commit: CommitInfo,
        machine: Machine,
        shard: Option<ShardPlan>,
    ) -> Record {
        let started_at = Utc::now();
        let run_id = RunId::new(started_at);
        let model_name = pipeline.model.label_name(&pipeline.name).to_string();
        Record {
            schema_version: RECORD_SCHEMA_VERSION,
            run_id,
            state: RunState::Running,
            pipeline: PipelineInfo {
                name: pipeline.name.clone(),
                hash: pipeline.hash(),
                source: pipeline.source.display().to_string(),
                backend: pipeline.runner.backend,
                compare: pipeline.compare,
                model: pipeline.model.builtin_key(),
            },
            commit,
            machine,
            started_at,
            finished_at: None,
            shard,
            cases: cases
                .iter()
                .map(|c| CaseRecord {
                    id: c.id.clone(),
                    label: c.label.clone(),
                    group: c.group_label(&model_name),
                    params: c.params.clone(),
                    precision: c.precision,
                    compile: c.compile,
                    phase: c.phase,
                    status: CaseStatus::Pending,
                    reason: None,
                    metrics: BTreeMap::new(),
                    diagnostics: Diagnostics::default(),
                })
                .collect(),
        }
    }

    /// Adds the outcome of one process of case `index`.
    pub fn apply(&mut self, index: usize, outcome: Outcome) {
        let case = &mut self.cases[index];
        match outcome {
            Outcome::Measured(s) => {
                let mut push = |name: &'static str, values: &[f64]| {
                    if values.is_empty() {
                        return;
                    }
                    case.metrics
                        .entry(name.to_string())
                        .or_insert_with(|| Metric {
                            unit: metric::get(name).unit.to_string(),
                            processes: Vec::new(),
                        })
                        .push(name, values);
                };
                push(metric::LATENCY, &s.latency);
                for (name, values) in &s.extra {
                    push(name, values);
                }
                case.diagnostics.push(s.diagnostics);
                if case.status == CaseStatus::Pending {
                    case.status = CaseStatus::Ok;
                }
            }
            Outcome::Skipped(reason) => {
                case.status = CaseStatus::Skipped;
                case.reason = Some(reason);
            }
            Outcome::Failed {
                kind,
                reason,
                diagnostics,
            } => {
                if !diagnostics.is_empty() {
                    case.diagnostics.push(diagnostics);
                }
                case.status = match kind {
                    FailureKind::Failed => CaseStatus::Failed,
                    FailureKind::Timeout => CaseStatus::Timeout,
                    FailureKind::Oom => CaseStatus::Oom,
                    FailureKind::AccuracyFail => CaseStatus::AccuracyFail,
                };
                case.reason = Some(reason);
            }
            Outcome::Interrupted => {}
        }
    }

    /// Whether later processes of case `index` should still run.
    pub fn wants_more(&self, index: usize) -> bool {
        matches!(
            self.cases[index].status,
            CaseStatus::Pending | CaseStatus::Ok
        )
    }

    /// Closes the record; cases that never ran are marked as interrupted.
    pub fn finish(&mut self, state: RunState) {
        self.state = state;
        self.finished_at = Some(Utc::now());
        for case in &mut self.cases {
            if case.status == CaseStatus::Pending {
                case.status = CaseStatus::Interrupted;
                case.reason = Some("the run was stopped before this case ran".into());
            }
        }
    }
}
