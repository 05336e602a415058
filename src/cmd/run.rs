//! `regress run`: measure pipelines at the checked-out commit and store
//! the records.

use std::path::PathBuf;

use anyhow::Context;

use super::{current_repo, load_pipelines, out, select, store_for, with_processes};
use crate::cli::RunCommand;
use crate::exit::Exit;
use crate::git::Repo;
use crate::record::CommitInfo;
use crate::report::render_record_terminal;
use crate::runner::RunContext;
use crate::session::{compile_groups, install_stop_handler, run_schedule, Lane, SEED};
use crate::spec::{split_shards, Case, Pipeline};
use crate::store::Store;

pub fn run(command: &RunCommand) -> anyhow::Result<Exit> {
    let args = &command.run;
    // Validate everything before measuring anything.
    let pipelines = with_processes(load_pipelines(&args.pipelines)?, args.processes);
    let selected = select(pipelines, args.filter.as_deref())?;
    let shares: Vec<_> = match command.shard {
        Some(shard) => split_shards(&selected, shard)
            .into_iter()
            .map(|(cases, plan)| (cases, Some(plan)))
            .collect(),
        None => selected.iter().map(|(_, c)| (c.clone(), None)).collect(),
    };
    let repo = current_repo()?;
    for (pipeline, _) in &selected {
        pipeline.check_entrypoint(&repo.workdir())?;
    }
    let mut commit = repo.head()?;
    if commit.dirty {
        anstream::eprintln!(
            "warning: the work tree has uncommitted changes; results are stored under {} and marked dirty (compare leaves them out unless --allow-dirty)",
            commit.sha.short()
        );
    }
    mark_uncommitted_files(&repo, &selected, &mut commit);
    let store = store_for(&repo, &args.store)?;
    let stop = install_stop_handler(true)?;
    let mut ctx = RunContext::new(repo.workdir(), repo.workdir(), stop.clone(), SEED)
        .context("cannot create a temporary directory")?;
    ctx.probe_cache.refresh |= args.refresh_probe;
    let mut failed = 0;
    for ((pipeline, _), (cases, plan)) in selected.iter().zip(shares) {
        if cases.is_empty() {
            let shard = command.shard.expect("only a shard can have no cases");
            anstream::eprintln!(
                "pipeline {}: shard {shard} has none of its cases",
                pipeline.name
            );
            continue;
        }
        let lane = Lane::new(pipeline, cases, plan, commit.clone(), ctx.clone(), &store)?;
        let schedule = compile_groups(pipeline, &lane.cases);
        let mut lanes = vec![lane];
        let interrupted = run_schedule(&mut lanes, &schedule, &store, &stop, &pipeline.name)?;
        let r = &lanes[0].record;
        out(&format!(
            "{} at {}{} on {}\n",
            r.pipeline.name,
            r.commit.sha.short(),
            if r.commit.dirty { " (dirty)" } else { "" },
            r.machine.gpu.as_deref().unwrap_or(&r.machine.cpu)
        ))?;
        out(&render_record_terminal(r))?;
        out(&format!("stored {}\n\n", store.location(r)))?;
        failed += r.cases.iter().filter(|c| c.status.is_failure()).count();
        if interrupted {
            anstream::eprintln!(
                "interrupted: the cases that finished are stored in {}",
                store.location(r)
            );
            return Ok(Exit::Interrupted);
        }
    }
    if failed > 0 && !command.keep_going {
        anstream::eprintln!(
            "{failed} case(s) failed (see the reasons above); exit status 1 (`--keep-going` exits 0)"
        );
        return Ok(Exit::Failed);
    }
    Ok(Exit::Success)
}

/// Marks the run dirty, and says so, when a file it uses (a pipeline file,
/// an entrypoint's module) is not committed: results filed under a commit
/// must be of the code that commit holds.
fn mark_uncommitted_files(
    repo: &Repo,
    selected: &[(Pipeline, Vec<Case>)],
    commit: &mut CommitInfo,
) {
    let root = repo.workdir();
    let used: Vec<PathBuf> = selected
        .iter()
        .flat_map(|(p, _)| [Some(p.source.clone()), p.entrypoint_file(&root)])
        .flatten()
        .collect();
    let uncommitted = repo.uncommitted(&used);
    if uncommitted.is_empty() {
        return;
    }
    let names: Vec<String> = uncommitted
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    anstream::eprintln!(
        "warning: {} {} not committed; results are stored under {} and marked dirty (compare leaves them out unless --allow-dirty)",
        names.join(", "),
        if names.len() == 1 { "is" } else { "are" },
        commit.sha.short()
    );
    commit.dirty = true;
}
