//! The commands: each wires modules together for one subcommand. This is the
//! only code besides `lib.rs` that knows more than one module.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{CompareArgs, Format, ListArgs, RunArgs};
use crate::compare::{compare as compare_sides, SideInput};
use crate::git::Repo;
use crate::record::{Record, RunState};
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
fn install_stop_handler() -> anyhow::Result<StopFlag> {
    let stop = StopFlag::default();
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.is_set() {
            std::process::exit(Exit::Interrupted.code().into());
        }
        flag.stop();
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

pub fn run(args: &RunArgs) -> anyhow::Result<Exit> {
    // Validate everything before measuring anything.
    let mut pipelines: Vec<Pipeline> = Vec::new();
    for path in &args.pipelines {
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
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = Repo::discover(&cwd)?;
    let commit = repo.head()?;
    let store = store_for(&repo, args.store.as_deref());
    let stop = install_stop_handler()?;
    let ctx = RunContext {
        workdir: repo.workdir(),
        stop: stop.clone(),
        seed: SEED,
    };

    if commit.dirty {
        anstream::eprintln!(
            "warning: the work tree has uncommitted changes; results are stored under {} and marked dirty",
            commit.sha.short()
        );
    }
    if pipelines
        .iter()
        .all(|p| filtered(p, args.filter.as_deref()).is_empty())
    {
        bail!(
            "no case matches --filter {:?}; `regress list <pipeline.yaml>` shows the labels",
            args.filter.as_deref().unwrap_or("")
        );
    }
    for pipeline in &pipelines {
        let cases = filtered(pipeline, args.filter.as_deref());
        if cases.is_empty() {
            continue;
        }
        let mut backend = runner::select(pipeline, ctx.clone())?;
        let env = backend.environment().with_context(|| {
            format!(
                "pipeline {}: the {} backend cannot start",
                pipeline.name, pipeline.runner.backend
            )
        })?;
        let machine = Machine::detect(&env);
        let mut record = Record::begin(pipeline, &cases, commit.clone(), machine);
        let path = store.save(&record)?;

        let processes = pipeline.runner.processes;
        let bar = ProgressBar::with_draw_target(
            Some(cases.len() as u64 * u64::from(processes)),
            ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise} {wide_msg}",
            )
            .expect("the progress template is valid")
            .progress_chars("=> "),
        );
        bar.set_prefix(pipeline.name.clone());
        bar.enable_steady_tick(Duration::from_millis(200));

        // Interleave: every case once, then every case again, so slow drift
        // of the machine spreads over all cases instead of biasing some.
        'repeats: for repeat in 0..processes {
            for (i, case) in cases.iter().enumerate() {
                if !record.wants_more(i) {
                    bar.inc(1);
                    continue;
                }
                bar.set_message(format!(
                    "{} (process {}/{processes})",
                    case.label,
                    repeat + 1
                ));
                let outcome = backend.run_process(case, repeat);
                if stop.is_set() {
                    break 'repeats;
                }
                record.apply(i, outcome);
                store.save(&record)?;
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let interrupted = stop.is_set();
        record.finish(if interrupted {
            RunState::Interrupted
        } else {
            RunState::Complete
        });
        store.save(&record)?;
        out(&format!(
            "{} at {}{} on {}\n",
            pipeline.name,
            record.commit.sha.short(),
            if record.commit.dirty { " (dirty)" } else { "" },
            record.machine.gpu.as_deref().unwrap_or(&record.machine.cpu)
        ))?;
        out(&render_record_terminal(&record))?;
        out(&format!("stored {}\n\n", path.display()))?;
        if interrupted {
            anstream::eprintln!(
                "interrupted: the cases that finished are stored in {}",
                path.display()
            );
            return Ok(Exit::Interrupted);
        }
    }
    Ok(Exit::Success)
}

pub fn compare(args: &CompareArgs) -> anyhow::Result<Exit> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = Repo::discover(&cwd)?;
    let store = store_for(&repo, args.store.as_deref());
    let mut sides = Vec::new();
    for rev in [&args.base, &args.head] {
        let commit = repo.resolve(rev)?;
        let records = store
            .load(&commit.sha)?
            .into_iter()
            .map(|s| s.record)
            .collect();
        sides.push(SideInput {
            rev: rev.clone(),
            commit,
            records,
        });
    }
    let comparison = compare_sides(&sides[0], &sides[1], args.pipeline.as_deref())?;
    let view = CompareView::new(&comparison);
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

/// Writes a report so a reader never sees half of it.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
