//! `regress run`: measure pipelines at the checked-out commit and store
//! the records.

use anyhow::Context;

use super::{current_repo, load_pipelines, out, select, store_for};
use crate::cli::RunArgs;
use crate::exit::Exit;
use crate::report::render_record_terminal;
use crate::runner::RunContext;
use crate::session::{compile_groups, install_stop_handler, run_schedule, Lane, SEED};
use crate::store::Store;

pub fn run(args: &RunArgs) -> anyhow::Result<Exit> {
    // Validate everything before measuring anything.
    let selected = select(load_pipelines(&args.pipelines)?, args.filter.as_deref())?;
    let repo = current_repo()?;
    let commit = repo.head()?;
    let store = store_for(&repo, &args.store)?;
    let stop = install_stop_handler(true)?;
    let ctx = RunContext::new(repo.workdir(), repo.workdir(), stop.clone(), SEED)
        .context("cannot create a temporary directory")?;
    if commit.dirty {
        anstream::eprintln!(
            "warning: the work tree has uncommitted changes; results are stored under {} and marked dirty",
            commit.sha.short()
        );
    }
    for (pipeline, cases) in &selected {
        let lane = Lane::new(pipeline, cases.clone(), commit.clone(), ctx.clone(), &store)?;
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
        if interrupted {
            anstream::eprintln!(
                "interrupted: the cases that finished are stored in {}",
                store.location(r)
            );
            return Ok(Exit::Interrupted);
        }
    }
    Ok(Exit::Success)
}
