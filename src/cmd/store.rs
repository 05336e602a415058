//! `regress store push|pull|ls`: share the git store's results with a
//! remote, and show what is stored for a commit.

use std::collections::BTreeMap;

use anyhow::anyhow;

use super::{current_repo, git_store, out};
use crate::cli::{StoreCommand, StoreImportArgs, StoreLsArgs, StorePullArgs, StorePushArgs};
use crate::exit::Exit;
use crate::record::{CaseStatus, CommitInfo, RunState};
use crate::spec::{parse_duration, DURATION_HINT};
use crate::store::sync::{self, PullOutcome, PushOutcome, SyncError};
use crate::store::{Location, MergeOutcome, ResultsRef, Store, Stored};

pub fn store(command: &StoreCommand) -> anyhow::Result<Exit> {
    match command {
        StoreCommand::Push(args) => push(args),
        StoreCommand::Pull(args) => pull(args),
        StoreCommand::Ls(args) => ls(args),
        StoreCommand::Import(args) => import(args),
    }
}

/// Copies every record of the directory stores into the git store. A
/// record already there is left alone; one whose path holds another
/// record is an error (the git store never overwrites).
fn import(args: &StoreImportArgs) -> anyhow::Result<Exit> {
    let repo = current_repo()?;
    let store = git_store(&repo, &args.store_ref)?;
    let mut imported = 0;
    for dir in &args.dirs {
        if !dir.is_dir() {
            return Err(anyhow!(
                "{} is not a directory; give the directory `regress run --store DIR` wrote",
                dir.display()
            ));
        }
        let files = crate::store::DirStore::new(dir).record_files()?;
        if files.is_empty() {
            anstream::eprintln!(
                "warning: {} holds no records (expected records/<commit>/<pipeline>/<run>.json)",
                dir.display()
            );
        }
        for file in files {
            let record = crate::store::read_record(&file)?;
            store.save(&record)?;
            imported += 1;
        }
    }
    out(&format!(
        "imported {imported} record(s) into {}\n",
        store.results_ref()
    ))?;
    Ok(Exit::Success)
}

fn push(args: &StorePushArgs) -> anyhow::Result<Exit> {
    let timeout = match &args.timeout {
        None => sync::DEFAULT_TIMEOUT,
        Some(text) => parse_duration(text).ok_or_else(|| {
            anyhow!("--timeout `{text}` is not a duration; write {DURATION_HINT}")
        })?,
    };
    let repo = current_repo()?;
    let store = git_store(&repo, &args.store_ref)?;
    let mut progress = |line: &str| anstream::eprintln!("{line}");
    let report = match sync::push(&store, &args.remote, timeout, &mut progress) {
        Ok(report) => report,
        Err(e) => return remote_failure(e),
    };
    if report.abandoned > 0 {
        anstream::eprintln!(
            "committed {} record(s) of runs killed before they finished; they stay marked `running`",
            report.abandoned
        );
    }
    let results = store.results_ref();
    let text = match report.outcome {
        PushOutcome::Pushed { from, to, records } => format!(
            "pushed {results} to {}: {records} new record(s), {}..{}\n",
            args.remote,
            from.map_or_else(|| "(new)".to_string(), short),
            short(to)
        ),
        PushOutcome::UpToDate(tip) => format!(
            "{results} on {} is up to date ({})\n",
            args.remote,
            short(tip)
        ),
        PushOutcome::NothingToPush => format!(
            "nothing to push: {results} holds no results yet (`regress run --store git` stores some)\n"
        ),
    };
    out(&text)?;
    Ok(Exit::Success)
}

fn pull(args: &StorePullArgs) -> anyhow::Result<Exit> {
    let repo = current_repo()?;
    let store = git_store(&repo, &args.store_ref)?;
    let outcome = match sync::pull(&store, &args.remote) {
        Ok(outcome) => outcome,
        Err(e) => return remote_failure(e),
    };
    let results = store.results_ref();
    let remote = &args.remote;
    let text = match outcome {
        PullOutcome::RemoteEmpty => format!("{remote} has no {results} yet: nothing to pull\n"),
        PullOutcome::Merged(merge) => match merge {
            MergeOutcome::NothingToMerge | MergeOutcome::UpToDate | MergeOutcome::Ahead => {
                format!("{results} already has everything {remote} has\n")
            }
            MergeOutcome::FastForward(tip) => {
                format!("{results} now at {} from {remote}\n", short(tip))
            }
            MergeOutcome::Merged(tip) => format!(
                "merged {remote}'s results into {results} ({})\n",
                short(tip)
            ),
        },
    };
    out(&text)?;
    Ok(Exit::Success)
}

fn ls(args: &StoreLsArgs) -> anyhow::Result<Exit> {
    let repo = current_repo()?;
    let commit = repo.resolve(&args.rev)?;
    let store = git_store(&repo, &args.store_ref)?;
    let entries = store.entries(&commit.sha)?;
    out(&render_listing(&commit, store.results_ref(), &entries))?;
    Ok(Exit::Success)
}

/// A remote that failed is reported here with its own exit status; any
/// other error goes up the usual way.
fn remote_failure(e: SyncError) -> anyhow::Result<Exit> {
    if e.is_remote_failure() {
        anstream::eprintln!("error: {e}");
        Ok(Exit::Remote)
    } else {
        Err(e.into())
    }
}

/// Digits of an object id shown to people.
const SHORT_OID: usize = 7;

fn short(oid: git2::Oid) -> String {
    oid.to_string()[..SHORT_OID].to_string()
}

/// The order case counts are listed in: what worked, what did not, what never ran.
const STATUS_ORDER: [CaseStatus; 8] = [
    CaseStatus::Ok,
    CaseStatus::Failed,
    CaseStatus::Timeout,
    CaseStatus::Oom,
    CaseStatus::AccuracyFail,
    CaseStatus::Skipped,
    CaseStatus::Interrupted,
    CaseStatus::Pending,
];

/// What `store ls` prints: per pipeline, per machine, each run with its
/// state, its shard (of a sharded run) and its cases counted by status.
fn render_listing(commit: &CommitInfo, results: &ResultsRef, entries: &[Stored]) -> String {
    let sha = commit.sha.short();
    let title = commit
        .summary
        .as_deref()
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    if entries.is_empty() {
        return format!("{sha}{title}: nothing stored in {results}\n");
    }
    let mut by_pipeline: BTreeMap<&str, BTreeMap<&str, Vec<&Stored>>> = BTreeMap::new();
    for s in entries {
        by_pipeline
            .entry(&s.record.pipeline.name)
            .or_default()
            .entry(s.record.machine.fingerprint.as_str())
            .or_default()
            .push(s);
    }
    let machines: usize = by_pipeline.values().map(BTreeMap::len).sum();
    let mut text = format!(
        "{sha}{title}: {} run(s) of {} pipeline(s) on {machines} machine(s) in {results}\n",
        entries.len(),
        by_pipeline.len()
    );
    for (pipeline, by_machine) in &by_pipeline {
        text.push_str(&format!("{pipeline}\n"));
        for (fingerprint, runs) in by_machine {
            let m = &runs[0].record.machine;
            let label = m
                .runner_label
                .as_deref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default();
            text.push_str(&format!(
                "  machine {fingerprint}  {}{label}\n",
                m.gpu.as_deref().unwrap_or(&m.cpu)
            ));
            for s in runs {
                let r = &s.record;
                let state = match r.state {
                    RunState::Running => "running",
                    RunState::Complete => "complete",
                    RunState::Interrupted => "interrupted",
                };
                let counts: Vec<String> = STATUS_ORDER
                    .iter()
                    .filter_map(|status| {
                        let n = r.cases.iter().filter(|c| c.status == *status).count();
                        (n > 0).then(|| format!("{n} {}", status.as_str()))
                    })
                    .collect();
                let shard = r
                    .shard
                    .as_ref()
                    .map(|plan| format!("shard {}  ", plan.shard))
                    .unwrap_or_default();
                let place = match &s.location {
                    Location::Committed(_) => "",
                    Location::Pending(_) => {
                        "  (pending: in this clone only until it finishes or `store push`)"
                    }
                };
                text.push_str(&format!(
                    "    {}  {state:<11}  {shard}{} case(s): {}{place}\n",
                    r.run_id,
                    r.cases.len(),
                    counts.join(", ")
                ));
            }
        }
    }
    text
}
