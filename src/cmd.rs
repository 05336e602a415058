//! The commands: each wires modules together for one subcommand. This is the
//! only code besides `lib.rs` that knows more than one module.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{AbArgs, CompareArgs, Format, ListArgs, ReportArgs, RunArgs};
use crate::compare::{compare as compare_sides, CompareOptions, SideInput, HISTORY_COMMITS};
use crate::git::Repo;
use crate::record::{CommitInfo, CommitSha, Record, RunState};
use crate::report::{
    render_compare_terminal, render_record_terminal, CompareView, TemplateFormat, Templates,
};
use crate::runner::{self, Machine, RunContext, StopFlag};
use crate::spec::{Case, Pipeline};
use crate::store::{DirStore, Store, DEFAULT_STORE_DIR};
use crate::Exit;

/// Seed for weights and inputs; fixed so every process measures the same numbers.
const SEED: u64 = 0;

/// Writes to stdout; a closed pipe surfaces as an io error that main treats as success.
fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = anstream::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

pub fn validate(paths: &[PathBuf]) -> anyhow::Result<Exit> {
    let mut exit = Exit::Success;
    for path in paths {
        match Pipeline::load(path) {
            Ok(ps) => {
                for p in ps {
                    out(&format!(
                        "ok: {} ({}, {} cases)\n",
                        path.display(),
                        p.name,
                        p.cases().len()
                    ))?;
                }
            }
            Err(e) => {
                anstream::eprintln!("error: {e}");
                exit = Exit::Invalid;
            }
        }
    }
    Ok(exit)
}

/// The cases whose label, or whose pipeline's name, contains `filter`.
fn filtered(pipeline: &Pipeline, filter: Option<&str>) -> Vec<Case> {
    pipeline
        .cases()
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.label.contains(f) || pipeline.name.contains(f)))
        .collect()
}

pub fn list(args: &ListArgs) -> anyhow::Result<Exit> {
    let pipelines = Pipeline::load(&args.pipeline)?;
    if args.json {
        let all: Vec<_> = pipelines
            .iter()
            .map(|p| serde_json::json!({"pipeline": p.name, "cases": filtered(p, args.filter.as_deref())}))
            .collect();
        out(&(serde_json::to_string_pretty(&all)? + "\n"))?;
        return Ok(Exit::Success);
    }
    let mut text = String::new();
    for p in &pipelines {
        let cases = filtered(p, args.filter.as_deref());
        text.push_str(&format!(
            "{} ({} backend): {} cases\n",
            p.name,
            p.runner.backend,
            cases.len()
        ));
        for c in &cases {
            text.push_str(&format!("  {}  {}\n", c.id, c.label));
        }
    }
    out(&text)?;
    Ok(Exit::Success)
}

fn store_for(repo: &Repo, store: Option<&Path>) -> DirStore {
    DirStore::new(store.map_or_else(|| repo.workdir().join(DEFAULT_STORE_DIR), Path::to_path_buf))
}

/// Ctrl-C once: stop after killing the running worker, keeping what
/// finished. Twice: leave at once (every store write is atomic, so this is safe).
fn install_stop_handler(second_exits: bool) -> anyhow::Result<StopFlag> {
    let stop = StopFlag::default();
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if second_exits && flag.is_set() {
            std::process::exit(Exit::Interrupted.code().into());
        }
        flag.stop();
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// One record being produced: a backend, its cases and the record they fill.
struct Lane {
    backend: Box<dyn runner::Backend>,
    cases: Vec<Case>,
    record: Record,
    processes: u32,
}

impl Lane {
    fn new(
        pipeline: &Pipeline,
        cases: Vec<Case>,
        commit: CommitInfo,
        ctx: RunContext,
        store: &DirStore,
    ) -> anyhow::Result<Lane> {
        let mut backend = runner::select(pipeline, ctx)?;
        let env = backend.environment().with_context(|| {
            format!(
                "pipeline {}: the {} backend cannot start",
                pipeline.name, pipeline.runner.backend
            )
        })?;
        let machine = Machine::detect(&env);
        let record = Record::begin(pipeline, &cases, commit, machine);
        store.save(&record)?;
        Ok(Lane {
            backend,
            cases,
            record,
            processes: pipeline.runner.processes,
        })
    }
}

/// Runs `schedule` once per process round, saving each lane's record after
/// every case. The schedule is a list of groups of (lane, case index); a
/// group runs in order on even rounds and reversed on odd ones, so in a
/// base/head pair neither side always goes first (ABBA). Returns whether
/// the user stopped it.
fn run_schedule(
    lanes: &mut [Lane],
    schedule: &[Vec<(usize, usize)>],
    store: &DirStore,
    stop: &StopFlag,
    title: &str,
) -> anyhow::Result<bool> {
    let rounds = lanes.iter().map(|l| l.processes).max().unwrap_or(1);
    let total: u64 = schedule
        .iter()
        .flatten()
        .map(|&(l, _)| u64::from(lanes[l].processes))
        .sum();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise} {wide_msg}",
        )
        .expect("the progress template is valid")
        .progress_chars("=> "),
    );
    bar.set_prefix(title.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    // Interleave: every case once, then every case again, so slow drift of
    // the machine spreads over all cases instead of biasing some.
    'rounds: for repeat in 0..rounds {
        let order = schedule.iter().flat_map(|group| {
            let items: Box<dyn Iterator<Item = &(usize, usize)>> = if repeat % 2 == 1 {
                Box::new(group.iter().rev())
            } else {
                Box::new(group.iter())
            };
            items
        });
        for &(l, i) in order {
            let lane = &mut lanes[l];
            if repeat >= lane.processes {
                continue;
            }
            if !lane.record.wants_more(i) {
                bar.inc(1);
                continue;
            }
            let case = &lane.cases[i];
            bar.set_message(format!(
                "{} {} (process {}/{})",
                lane.record.commit.sha.short(),
                case.label,
                repeat + 1,
                lane.processes
            ));
            let outcome = lane.backend.run_process(case, repeat);
            if stop.is_set() {
                break 'rounds;
            }
            lane.record.apply(i, outcome);
            store.save(&lane.record)?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let interrupted = stop.is_set();
    for lane in lanes.iter_mut() {
        lane.record.finish(if interrupted {
            RunState::Interrupted
        } else {
            RunState::Complete
        });
        store.save(&lane.record)?;
    }
    Ok(interrupted)
}

fn print_lane(lane: &Lane, store: &DirStore) -> anyhow::Result<()> {
    let r = &lane.record;
    out(&format!(
        "{} at {}{} on {}\n",
        r.pipeline.name,
        r.commit.sha.short(),
        if r.commit.dirty { " (dirty)" } else { "" },
        r.machine.gpu.as_deref().unwrap_or(&r.machine.cpu)
    ))?;
    out(&render_record_terminal(r))?;
    out(&format!("stored {}\n\n", store.path_of(r).display()))
}

fn load_pipelines(paths: &[PathBuf]) -> anyhow::Result<Vec<Pipeline>> {
    let mut pipelines: Vec<Pipeline> = Vec::new();
    for path in paths {
        for p in Pipeline::load(path)? {
            if let Some(other) = pipelines.iter().find(|o| o.name == p.name) {
                bail!(
                    "pipeline name `{}` is used by both {} and {}; names key the results, give each its own",
                    p.name,
                    other.source.display(),
                    p.source.display()
                );
            }
            pipelines.push(p);
        }
    }
    Ok(pipelines)
}

/// The pipelines with at least one case matching `filter`, with those
/// cases; an error when no case of any pipeline matches.
fn select(
    pipelines: Vec<Pipeline>,
    filter: Option<&str>,
) -> anyhow::Result<Vec<(Pipeline, Vec<Case>)>> {
    let selected: Vec<(Pipeline, Vec<Case>)> = pipelines
        .into_iter()
        .map(|p| {
            let cases = filtered(&p, filter);
            (p, cases)
        })
        .filter(|(_, cases)| !cases.is_empty())
        .collect();
    if selected.is_empty() {
        bail!(
            "no case matches --filter {:?}; `regress list <pipeline.yaml>` shows the labels",
            filter.unwrap_or("")
        );
    }
    Ok(selected)
}

pub fn run(args: &RunArgs) -> anyhow::Result<Exit> {
    // Validate everything before measuring anything.
    let selected = select(load_pipelines(&args.pipelines)?, args.filter.as_deref())?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = Repo::discover(&cwd)?;
    let commit = repo.head()?;
    let store = store_for(&repo, args.store.as_deref());
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
        let mut lanes = vec![Lane::new(
            pipeline,
            cases.clone(),
            commit.clone(),
            ctx.clone(),
            &store,
        )?];
        let schedule = compile_groups(pipeline, &lanes[0].cases);
        let interrupted = run_schedule(&mut lanes, &schedule, &store, &stop, &pipeline.name)?;
        print_lane(&lanes[0], &store)?;
        if interrupted {
            anstream::eprintln!(
                "interrupted: the cases that finished are stored in {}",
                store.path_of(&lanes[0].record).display()
            );
            return Ok(Exit::Interrupted);
        }
    }
    Ok(Exit::Success)
}

/// The run order of one pipeline: cases that differ only in compile mode
/// form a group and run back to back (eager, compiled, eager, … across
/// rounds, reversed on odd rounds), so drift of the machine hits both sides
/// of an eager-vs-compiled speed-up alike.
fn compile_groups(pipeline: &Pipeline, cases: &[Case]) -> Vec<Vec<(usize, usize)>> {
    let model = pipeline.model.label_name(&pipeline.name);
    let mut groups: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let key = case.group_label(model);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((0, i)),
            None => groups.push((key, vec![(0, i)])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// Renders a comparison as asked and maps it to an exit status.
fn report(comparison: &crate::compare::Comparison, args: &ReportArgs) -> anyhow::Result<Exit> {
    let view = CompareView::new(comparison);
    let text = match args.format {
        Format::Terminal => render_compare_terminal(&view),
        Format::Markdown => {
            Templates::new(args.templates.as_deref())?.render(TemplateFormat::Markdown, &view)?
        }
        Format::Json => {
            Templates::new(args.templates.as_deref())?.render(TemplateFormat::Json, &view)?
        }
    };
    match &args.output {
        Some(path) => {
            write_atomic(path, &text)?;
            anstream::eprintln!("wrote {}", path.display());
        }
        None => out(&text)?,
    }
    Ok(if args.fail_on_regression && view.regressed {
        Exit::Regressed
    } else {
        Exit::Success
    })
}

/// Whether a commit's records can serve as the base for `head`'s: same
/// pipeline, and same machine unless mismatches are allowed.
fn serves_as_base(records: &[Record], head: &[Record], opts: &CompareOptions) -> bool {
    records.iter().any(|b| {
        opts.pipeline.as_ref().is_none_or(|p| *p == b.pipeline.name)
            && head.iter().any(|h| {
                h.pipeline.name == b.pipeline.name
                    && (opts.allow_fingerprint_mismatch
                        || h.machine.fingerprint == b.machine.fingerprint)
            })
    })
}

fn load_records(store: &DirStore, sha: &CommitSha) -> anyhow::Result<Vec<Record>> {
    Ok(store.load(sha)?.into_iter().map(|s| s.record).collect())
}

/// Records of commits that are only candidates (the walk back, history),
/// each commit read once per command: an unreadable record there costs a
/// warning, not the whole comparison.
struct Candidates<'a> {
    store: &'a DirStore,
    loaded: HashMap<CommitSha, Vec<Record>>,
}

impl<'a> Candidates<'a> {
    fn new(store: &'a DirStore) -> Self {
        Candidates {
            store,
            loaded: HashMap::new(),
        }
    }

    fn at(&mut self, sha: &CommitSha) -> &[Record] {
        let store = self.store;
        self.loaded.entry(sha.clone()).or_insert_with(|| {
            load_records(store, sha).unwrap_or_else(|e| {
                anstream::eprintln!("warning: skipping the results of {}: {e:#}", sha.short());
                Vec::new()
            })
        })
    }
}

/// Records of up to HISTORY_COMMITS earlier first-parent commits of `base`
/// that ran pipeline `name`, for the run-to-run variance.
fn history(
    repo: &Repo,
    candidates: &mut Candidates,
    base: &CommitInfo,
    name: &str,
) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut commits = 0;
    for c in repo.first_parents(&base.sha, HISTORY_WALK)? {
        let records: Vec<Record> = candidates
            .at(&c.sha)
            .iter()
            .filter(|r| r.pipeline.name == name)
            .cloned()
            .collect();
        if !records.is_empty() {
            out.extend(records);
            commits += 1;
            if commits >= HISTORY_COMMITS {
                break;
            }
        }
    }
    Ok(out)
}

/// Commits walked back at most when gathering history.
const HISTORY_WALK: usize = 500;

pub fn compare(args: &CompareArgs) -> anyhow::Result<Exit> {
    let opts = CompareOptions {
        pipeline: args.pipeline.clone(),
        allow_fingerprint_mismatch: args.report.allow_fingerprint_mismatch,
    };
    if let Some(files) = &args.records {
        let mut sides = Vec::new();
        for file in files {
            let record = crate::store::read_record(file)?;
            sides.push(SideInput {
                rev: file.display().to_string(),
                commit: record.commit.clone(),
                distance: 0,
                records: vec![record],
                notes: Vec::new(),
            });
        }
        let comparison = compare_sides(&sides[0], &sides[1], &[], &opts)?;
        return report(&comparison, &args.report);
    }
    let base_rev = args
        .base
        .as_deref()
        .expect("clap requires base without --records");
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = Repo::discover(&cwd)?;
    let store = store_for(&repo, args.store.as_deref());
    let head_commit = repo.resolve(&args.head)?;
    let head_records = load_records(&store, &head_commit.sha)?;
    let head = SideInput {
        rev: args.head.clone(),
        commit: head_commit.clone(),
        distance: 0,
        records: head_records,
        notes: Vec::new(),
    };
    let requested = repo.resolve(base_rev)?;
    let mut base_notes = Vec::new();
    let start = match repo.merge_base(&requested.sha, &head_commit.sha)? {
        _ if args.exact => requested.clone(),
        // Head is an ancestor of the base: the merge-base is head itself,
        // and comparing a commit with itself says nothing.
        Some(mb) if mb.sha == head_commit.sha => {
            base_notes.push(format!(
                "`{}` is an ancestor of `{base_rev}`: compared with `{base_rev}` itself",
                args.head
            ));
            requested.clone()
        }
        Some(mb) if mb.sha != requested.sha => {
            base_notes.push(format!(
                "base is the merge-base of `{base_rev}` and `{}`: {} (use --exact for `{base_rev}` itself)",
                args.head,
                mb.sha.short()
            ));
            mb
        }
        _ => requested.clone(),
    };
    let (base, history) = resolve_base(
        &repo,
        &store,
        BaseStart {
            rev: base_rev,
            commit: start,
            notes: base_notes,
        },
        &head.records,
        &opts,
        args.max_walk,
    )?;
    let comparison = compare_sides(&base, &head, &history, &opts)?;
    report(&comparison, &args.report)
}

/// Where the search for a base begins.
struct BaseStart<'a> {
    rev: &'a str,
    commit: CommitInfo,
    notes: Vec<String>,
}

/// The base side and its history, resolved for each of head's pipelines on
/// its own: `start` when it has results for the pipeline on head's machine,
/// else the nearest of its first `max_walk` parents that has (a skipped
/// shard, a pipeline added later), walked once for all pipelines. A
/// pipeline found nowhere keeps what `start` holds of it (other machines'
/// results, listed as not comparable). Each pipeline's history begins
/// behind its own base commit. The side's commit is the first found
/// pipeline's, any other pipeline's base commit is named in a note, and
/// pipelines that ran at `start` but not at head come along as removed.
fn resolve_base(
    repo: &Repo,
    store: &DirStore,
    start: BaseStart,
    head: &[Record],
    opts: &CompareOptions,
    max_walk: usize,
) -> anyhow::Result<(SideInput, Vec<Record>)> {
    let mut names: Vec<&str> = Vec::new();
    for r in head {
        let name = r.pipeline.name.as_str();
        if !names.contains(&name) && opts.pipeline.as_deref().is_none_or(|p| p == name) {
            names.push(name);
        }
    }
    let serves = |name: &str, records: &[Record]| {
        let only = CompareOptions {
            pipeline: Some(name.to_string()),
            ..opts.clone()
        };
        serves_as_base(records, head, &only)
    };
    let start_records = load_records(store, &start.commit.sha)?;
    let mut candidates = Candidates::new(store);
    // Per pipeline, in head's order: its base commit and distance.
    let mut bases: Vec<Option<(CommitInfo, usize)>> = names
        .iter()
        .map(|n| serves(n, &start_records).then(|| (start.commit.clone(), 0)))
        .collect();
    let mut walked = 0;
    if bases.iter().any(Option::is_none) {
        let parents = repo.first_parents(&start.commit.sha, max_walk)?;
        walked = parents.len();
        for (i, c) in parents.into_iter().enumerate() {
            let records = candidates.at(&c.sha);
            for (name, base) in names.iter().zip(bases.iter_mut()) {
                if base.is_none() && serves(name, records) {
                    *base = Some((c.clone(), i + 1));
                }
            }
            if bases.iter().all(Option::is_some) {
                break;
            }
        }
    }
    let mut side: Option<SideInput> = None;
    let mut history_records = Vec::new();
    for (name, base) in names.iter().zip(bases) {
        let (commit, distance) = base.unwrap_or_else(|| (start.commit.clone(), 0));
        let at = if commit.sha == start.commit.sha {
            &start_records[..]
        } else {
            candidates.at(&commit.sha)
        };
        let records: Vec<Record> = at
            .iter()
            .filter(|r| r.pipeline.name == *name)
            .cloned()
            .collect();
        if records.is_empty() {
            continue;
        }
        history_records.extend(history(repo, &mut candidates, &commit, name)?);
        let Some(side) = &mut side else {
            side = Some(SideInput {
                rev: start.rev.to_string(),
                commit,
                distance,
                records,
                notes: start.notes.clone(),
            });
            continue;
        };
        if commit.sha != side.commit.sha {
            side.notes.push(if distance == 0 {
                format!("pipeline {name}: base results from {} itself", commit.sha.short())
            } else {
                format!(
                    "pipeline {name}: base results from {} ({distance} commit{} back from {} along its first parents)",
                    commit.sha.short(),
                    if distance == 1 { "" } else { "s" },
                    start.commit.sha.short(),
                )
            });
        }
        side.records.extend(records);
    }
    let head_has = |r: &Record| head.iter().any(|h| h.pipeline.name == r.pipeline.name);
    let Some(mut side) = side else {
        // No pipeline has base results: the start commit with the distance
        // walked, for the error that says so (or, when head has no results
        // either, with what it holds).
        let records = if head.is_empty() {
            start_records
        } else {
            Vec::new()
        };
        let side = SideInput {
            rev: start.rev.to_string(),
            commit: start.commit,
            distance: if head.is_empty() { 0 } else { walked },
            records,
            notes: start.notes,
        };
        return Ok((side, history_records));
    };
    // Pipelines that ran at the start commit but not at head are listed as
    // removed, never hidden.
    side.records.extend(start_records.into_iter().filter(|r| {
        !head_has(r)
            && opts
                .pipeline
                .as_deref()
                .is_none_or(|p| p == r.pipeline.name)
    }));
    Ok((side, history_records))
}

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
    trees: Vec<crate::git::Worktree>,
    _dir: tempfile::TempDir,
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
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = Repo::discover(&cwd)?;
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
    let store = store_for(&repo, args.run.store.as_deref());
    // Only a stop flag: a second Ctrl-C must still clean the worktrees up.
    let stop = install_stop_handler(false)?;

    let dir = tempfile::Builder::new()
        .prefix(crate::git::AB_PREFIX)
        .tempdir()?;
    let mut guard = WorktreeGuard {
        repo: &repo,
        trees: Vec::new(),
        _dir: dir,
    };
    // Name: prefix, pid (so a later run can tell a dead owner), and the
    // random part of the temporary directory (so a reused pid cannot clash).
    let unique = guard
        ._dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().replace(crate::git::AB_PREFIX, ""))
        .unwrap_or_default();
    let tag = format!(
        "{}{}-{}",
        crate::git::AB_PREFIX,
        std::process::id(),
        unique.replace('-', "")
    );
    for (side, commit) in [("base", &base_commit), ("head", &head_commit)] {
        let name = format!("{tag}-{side}");
        let path = guard._dir.path().join(side);
        guard.trees.push(repo.add_worktree(&name, &path, commit)?);
    }
    let load = |wt: &crate::git::Worktree| -> anyhow::Result<Vec<Pipeline>> {
        let paths: Vec<PathBuf> = rel.iter().map(|r| wt.path.join(r)).collect();
        load_pipelines(&paths).with_context(|| {
            format!(
                "reading the pipelines at {} ({})",
                wt.commit.sha.short(),
                wt.name
            )
        })
    };
    let base_pipelines = load(&guard.trees[0])?;
    let head_selected = select(load(&guard.trees[1])?, args.run.filter.as_deref())?;

    // One context for the command: both sides share its scratch directory.
    let shared = RunContext::new(repo.workdir(), repo.workdir(), stop.clone(), SEED)
        .context("cannot create a temporary directory")?;
    let (mut base_records, mut head_records) = (Vec::new(), Vec::new());
    for (hp, head_cases) in &head_selected {
        let head_cases = head_cases.clone();
        let Some(bp) = base_pipelines.iter().find(|b| b.name == hp.name) else {
            anstream::eprintln!(
                "pipeline {} does not exist at {}: skipped",
                hp.name,
                base_commit.sha.short()
            );
            continue;
        };
        let base_cases = filtered(bp, args.run.filter.as_deref());
        let ctx = |wt: &crate::git::Worktree| RunContext {
            workdir: wt.path.clone(),
            ..shared.clone()
        };
        let mut lanes = vec![
            Lane::new(
                bp,
                base_cases,
                base_commit.clone(),
                ctx(&guard.trees[0]),
                &store,
            )?,
            Lane::new(
                hp,
                head_cases,
                head_commit.clone(),
                ctx(&guard.trees[1]),
                &store,
            )?,
        ];
        // Pairs of base and head for each case, then cases only at base.
        let mut schedule = Vec::new();
        for (hi, hc) in lanes[1].cases.iter().enumerate() {
            match lanes[0].cases.iter().position(|c| c.id == hc.id) {
                Some(bi) => schedule.push(vec![(0, bi), (1, hi)]),
                None => schedule.push(vec![(1, hi)]),
            }
        }
        for (bi, bc) in lanes[0].cases.iter().enumerate() {
            if !lanes[1].cases.iter().any(|c| c.id == bc.id) {
                schedule.push(vec![(0, bi)]);
            }
        }
        let interrupted = run_schedule(
            &mut lanes,
            &schedule,
            &store,
            &stop,
            &format!("ab {}", hp.name),
        )?;
        if interrupted {
            anstream::eprintln!("interrupted: finished cases are stored; removing the worktrees");
            return Ok(Exit::Interrupted);
        }
        base_records.push(lanes[0].record.clone());
        head_records.push(lanes[1].record.clone());
    }
    drop(guard);
    if head_records.is_empty() {
        bail!("no pipeline ran at both revisions");
    }
    // One comparison over every pipeline: one report, one BH adjustment.
    let mut candidates = Candidates::new(&store);
    let mut history_records = Vec::new();
    for r in &head_records {
        history_records.extend(history(
            &repo,
            &mut candidates,
            &base_commit,
            &r.pipeline.name,
        )?);
    }
    let side = |rev: &str, commit: &CommitInfo, records: Vec<Record>| SideInput {
        rev: rev.to_string(),
        commit: commit.clone(),
        distance: 0,
        records,
        notes: Vec::new(),
    };
    let opts = CompareOptions {
        pipeline: None,
        allow_fingerprint_mismatch: args.report.allow_fingerprint_mismatch,
    };
    let comparison = compare_sides(
        &side(&args.base, &base_commit, base_records),
        &side(&args.head, &head_commit, head_records),
        &history_records,
        &opts,
    )?;
    report(&comparison, &args.report)
}
/// Permissions of written reports: readable by everyone, like any file a
/// shell redirection would create under the usual umask.
const REPORT_MODE: u32 = 0o644;

/// Writes a report so a reader never sees half of it.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // NamedTempFile is private (0600); a report is meant to be read.
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(REPORT_MODE))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eager_and_compiled_cases_of_a_point_run_back_to_back() {
        // The compile axis comes first, so matrix order would run every
        // eager case before any compiled one.
        let src = "version: 1\nname: g\nmodel: {builtin: mlp}\nmatrix:\n  compile: [eager, default]\n  batch: [1, 8]\nphases: [forward, backward]\n";
        let pipeline = Pipeline::parse(src, Path::new("g.yaml")).unwrap().remove(0);
        let cases = pipeline.cases();
        let groups = compile_groups(&pipeline, &cases);
        let labels: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|&(_, i)| cases[i].label.as_str()).collect())
            .collect();
        assert_eq!(
            labels,
            [
                [
                    "mlp[batch=1,fp32,eager]/forward",
                    "mlp[batch=1,fp32,default]/forward"
                ],
                [
                    "mlp[batch=1,fp32,eager]/backward",
                    "mlp[batch=1,fp32,default]/backward"
                ],
                [
                    "mlp[batch=8,fp32,eager]/forward",
                    "mlp[batch=8,fp32,default]/forward"
                ],
                [
                    "mlp[batch=8,fp32,eager]/backward",
                    "mlp[batch=8,fp32,default]/backward"
                ],
            ]
        );
    }
}
