//! `regress ab`: check out two revisions in temporary worktrees, measure
//! both on this machine interleaved (ABBA), and compare them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};

use super::ab_until::{report_adaptive, until_conclusive, Limits, StopReason};
use super::{
    current_repo, filtered, load_pipelines, report, select, store_for, warn_all, with_processes,
};
use crate::cli::{AbArgs, Format};
use crate::compare::compare as compare_sides;
use crate::exit::Exit;
use crate::git::{AbWorktreeName, Repo, Worktree, AB_PREFIX};
use crate::resolve::{history_for, Selection, SideInput};
use crate::runner::RunContext;
use crate::session::{
    ab_schedule, finish, install_stop_handler, progress_bar, run_rounds, schedule_total, Lane,
    Schedule, SEED,
};
use crate::spec::Pipeline;

/// Path of a pipeline file relative to the repository root, so the same
/// file can be read from another checkout of it.
fn repo_relative(repo: &Repo, path: &Path) -> anyhow::Result<PathBuf> {
    let abs =
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let root = std::fs::canonicalize(repo.workdir())?;
    Ok(abs
        .strip_prefix(&root)
        .with_context(|| {
            format!(
                "{} is outside the repository {}; `regress ab` reads pipelines from each revision",
                path.display(),
                root.display()
            )
        })?
        .to_path_buf())
}

/// Removes the worktrees however `ab` ends (success, error or Ctrl-C).
struct WorktreeGuard<'a> {
    repo: &'a Repo,
    trees: Vec<Worktree>,
    dir: tempfile::TempDir,
}

impl Drop for WorktreeGuard<'_> {
    fn drop(&mut self) {
        for wt in &self.trees {
            if let Err(e) = self.repo.remove_worktree(wt) {
                anstream::eprintln!("warning: could not remove worktree {}: {e}", wt.name);
            }
        }
    }
}

pub fn ab(args: &AbArgs) -> anyhow::Result<Exit> {
    if args.until_conclusive && args.report.format == Format::Markdown {
        bail!(
            "--until-conclusive writes terminal or JSON reports; for markdown, run `regress compare BASE HEAD --exact --format markdown` on the records it stores"
        );
    }
    let repo = current_repo()?;
    let stale = repo.prune_stale_ab_worktrees()?;
    if stale > 0 {
        anstream::eprintln!(
            "removed {stale} worktree(s) left by an earlier `regress ab` that was killed"
        );
    }
    let base_commit = repo.resolve(&args.base)?;
    let head_commit = repo.resolve(&args.head)?;
    let rel: Vec<PathBuf> = args
        .run
        .pipelines
        .iter()
        .map(|p| repo_relative(&repo, p))
        .collect::<anyhow::Result<_>>()?;
    let store = store_for(&repo, &args.run.store)?;
    // Only a stop flag: a second Ctrl-C must still clean the worktrees up.
    let stop = install_stop_handler(false)?;

    let mut guard = WorktreeGuard {
        repo: &repo,
        trees: Vec::new(),
        dir: tempfile::Builder::new().prefix(AB_PREFIX).tempdir()?,
    };
    // The random part of the temporary directory keeps a reused pid from clashing.
    let unique = guard
        .dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().replace(AB_PREFIX, ""))
        .unwrap_or_default();
    for (side, commit) in [("base", &base_commit), ("head", &head_commit)] {
        let name = AbWorktreeName::new(&unique, side).to_string();
        let path = guard.dir.path().join(side);
        guard.trees.push(repo.add_worktree(&name, &path, commit)?);
    }
    let load = |wt: &Worktree| -> anyhow::Result<Vec<Pipeline>> {
        let paths: Vec<PathBuf> = rel.iter().map(|r| wt.path.join(r)).collect();
        let pipelines = load_pipelines(&paths).with_context(|| {
            format!(
                "reading the pipelines at {} ({})",
                wt.commit.sha.short(),
                wt.name
            )
        })?;
        Ok(with_processes(pipelines, args.run.processes))
    };
    let base_pipelines = load(&guard.trees[0])?;
    let head_selected = select(load(&guard.trees[1])?, args.run.filter.as_deref())?;

    // One context for the command: both sides share its scratch directory.
    let mut shared = RunContext::new(repo.workdir(), repo.workdir(), stop.clone(), SEED)
        .context("cannot create a temporary directory")?;
    shared.probe_cache.refresh |= args.run.refresh_probe;
    let ctx = |wt: &Worktree| RunContext {
        workdir: wt.path.clone(),
        ..shared.clone()
    };
    // Every pipeline's lanes up front, so that the rounds interleave all
    // cases (drift of the machine spreads over every case) and an adaptive
    // A/B can weigh them all against one budget.
    let mut lanes = Vec::new();
    let mut schedule: Schedule = Vec::new();
    for (hp, head_cases) in &head_selected {
        let Some(bp) = base_pipelines.iter().find(|b| b.name == hp.name) else {
            anstream::eprintln!(
                "pipeline {} does not exist at {}: skipped",
                hp.name,
                base_commit.sha.short()
            );
            continue;
        };
        let base_cases = filtered(bp, args.run.filter.as_deref());
        let offset = lanes.len();
        lanes.push(Lane::new(
            bp,
            base_cases,
            None,
            base_commit.clone(),
            ctx(&guard.trees[0]),
            &store,
        )?);
        lanes.push(Lane::new(
            hp,
            head_cases.clone(),
            None,
            head_commit.clone(),
            ctx(&guard.trees[1]),
            &store,
        )?);
        let pairs = ab_schedule(&lanes[offset].cases, &lanes[offset + 1].cases);
        schedule.extend(
            pairs
                .into_iter()
                .map(|g| g.into_iter().map(|(l, i)| (offset + l, i)).collect()),
        );
    }
    if lanes.is_empty() {
        bail!("no pipeline ran at both revisions");
    }
    let started = Instant::now();
    let bar = progress_bar(schedule_total(&lanes, &schedule), "ab");
    let mut interrupted = run_rounds(&mut lanes, &schedule, &store, &stop, &bar)?;
    let adaptive = if args.until_conclusive && !interrupted {
        let limits = Limits {
            budget: args.budget,
            max_pairs: args.max_pairs as usize,
            started,
        };
        let outcome = until_conclusive(&mut lanes, &schedule, &store, &stop, &bar, &limits)?;
        interrupted = outcome.stop == StopReason::Interrupted;
        Some(outcome)
    } else {
        None
    };
    bar.finish_and_clear();
    finish(&mut lanes, interrupted, &store)?;
    if interrupted {
        anstream::eprintln!("interrupted: finished cases are stored; removing the worktrees");
        return Ok(Exit::Interrupted);
    }
    drop(guard);
    if let Some(outcome) = adaptive {
        return report_adaptive(&outcome, &lanes, &args.report);
    }
    let (mut base_records, mut head_records) = (Vec::new(), Vec::new());
    for pair in lanes.chunks(2) {
        base_records.push(pair[0].record.clone());
        head_records.push(pair[1].record.clone());
    }
    // One comparison over every pipeline: one report, one BH adjustment.
    let (history, warnings) = history_for(&repo, &store, &base_commit, &head_records)?;
    warn_all(&warnings);
    let selection = Selection {
        pipeline: None,
        allow_fingerprint_mismatch: args.report.allow_fingerprint_mismatch,
        allow_dirty: args.report.allow_dirty,
    };
    // Both sides ran interleaved: `compare` sees it in the records'
    // overlapping windows and gives the geometric mean its interval.
    let comparison = compare_sides(
        &SideInput::exact(&args.base, base_commit, base_records),
        &SideInput::exact(&args.head, head_commit, head_records),
        &history,
        &selection,
    )?;
    report(&comparison, &args.report)
}
