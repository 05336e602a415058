//! The commands: one short file each, turning clap's arguments into a plan
//! and calling the library. This is the only module that wires the others
//! together; what several commands share is here.

mod ab;
mod ab_until;
mod compare;
mod github;
mod list;
mod run;
mod store;
mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cli::{Command, FailOnArg, Format, ReportArgs, StoreArgs, StoreRefArg};
use crate::compare::{Comparison, FailOn, Gate};
use crate::exit::Exit;
use crate::git::Repo;
use crate::report::{render_compare_terminal, render_json, CompareView, TemplateFormat, Templates};
use crate::spec::{Case, Pipeline};
use crate::store::{DirStore, GitStore, ResultsRef, Store, DEFAULT_RESULTS_REF, DEFAULT_STORE_DIR};

/// Runs one command line.
pub fn dispatch(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Validate { pipelines } => validate::validate(&pipelines),
        Command::List(args) => list::list(&args),
        Command::Run(args) => run::run(&args),
        Command::Compare(args) => compare::compare(&args),
        Command::Ab(args) => ab::ab(&args),
        Command::Store(command) => store::store(&command),
        Command::Github(command) => github::github(&command),
    }
}

/// Writes to stdout; a closed pipe surfaces as an io error that main treats as success.
fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = anstream::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// The repository around the current directory.
fn current_repo() -> anyhow::Result<Repo> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(Repo::discover(&cwd)?)
}

/// Where `--store` falls back to when it is not given.
const STORE_ENV: &str = "REGRESS_STORE";
/// Where `--store-ref` falls back to when it is not given.
const STORE_REF_ENV: &str = "REGRESS_STORE_REF";

/// A variable's value, unless it is unset or empty.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The store `--store` (else `$REGRESS_STORE`) names: `dir` or nothing for
/// `.regress` at the repository root, `git` for the results ref, anything
/// else a directory. The one place a store is chosen.
fn store_for(repo: &Repo, args: &StoreArgs) -> anyhow::Result<Box<dyn Store>> {
    let choice = args.store.clone().or_else(|| env_value(STORE_ENV));
    Ok(match choice.as_deref() {
        None | Some("" | "dir") => Box::new(DirStore::new(repo.workdir().join(DEFAULT_STORE_DIR))),
        Some("git") => Box::new(git_store(repo, &args.store_ref)?),
        Some(dir) => Box::new(DirStore::new(dir)),
    })
}

/// The git store on the ref `--store-ref` (else `$REGRESS_STORE_REF`) names.
fn git_store(repo: &Repo, arg: &StoreRefArg) -> anyhow::Result<GitStore> {
    let name = arg
        .store_ref
        .clone()
        .or_else(|| env_value(STORE_REF_ENV))
        .unwrap_or_else(|| DEFAULT_RESULTS_REF.to_string());
    Ok(GitStore::open(
        &repo.workdir(),
        ResultsRef::try_from(name.as_str())?,
    )?)
}

/// The cases whose label, or whose pipeline's name, contains `filter`.
fn filtered(pipeline: &Pipeline, filter: Option<&str>) -> Vec<Case> {
    pipeline
        .cases()
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.label.contains(f) || pipeline.name.contains(f)))
        .collect()
}

/// The pipelines with `--processes` (when given) in place of their
/// `runner.processes`.
fn with_processes(mut pipelines: Vec<Pipeline>, processes: Option<u32>) -> Vec<Pipeline> {
    if let Some(n) = processes {
        for p in &mut pipelines {
            p.runner.processes = n;
        }
    }
    pipelines
}

/// Every pipeline of the files, in order; a name used twice is an error.
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

/// What `--fail-on` and `--fail-on-regression` ask the gate to fail on.
fn fail_on(args: &ReportArgs) -> FailOn {
    fail_on_of(&args.fail_on, args.fail_on_regression)
}

/// The findings a list of `--fail-on` values (and `--fail-on-regression`)
/// name.
fn fail_on_of(list: &[FailOnArg], fail_on_regression: bool) -> FailOn {
    let mut on = if fail_on_regression {
        FailOn::ANY
    } else {
        FailOn::NOTHING
    };
    // `confirmed-regression` relaxes the suspect cases that
    // `--fail-on-regression` and `any` include.
    let relaxed = list.contains(&FailOnArg::ConfirmedRegression);
    for f in list {
        match f {
            FailOnArg::Regression => {
                on.regression = true;
                on.suspect = true;
            }
            FailOnArg::ConfirmedRegression => on.regression = true,
            FailOnArg::Failure => on.failure = true,
            FailOnArg::Any => on = FailOn::ANY,
        }
    }
    if relaxed {
        on.suspect = false;
    }
    on
}

/// Renders a comparison as asked, writes it, and maps its gate to an exit status.
fn report(comparison: &Comparison, args: &ReportArgs) -> anyhow::Result<Exit> {
    let view = CompareView::new(comparison);
    let templates = Templates::new(args.templates.as_deref())?;
    write_report(&view, &templates, args)?;
    Ok(exit_of(comparison.gate(fail_on(args))))
}

/// The exit status a gate asks for.
fn exit_of(gate: Gate) -> Exit {
    match gate {
        Gate::Pass => Exit::Success,
        Gate::Regressed => Exit::Regressed,
        Gate::Failed => Exit::Failed,
    }
}

/// Renders a view in the format asked and writes it to the output asked.
fn write_report(
    view: &CompareView,
    templates: &Templates,
    args: &ReportArgs,
) -> anyhow::Result<()> {
    let text = match args.format {
        Format::Terminal => render_compare_terminal(view),
        Format::Markdown => templates.render(TemplateFormat::Markdown, view)?,
        Format::Json => render_json(view),
    };
    match &args.output {
        Some(path) => {
            write_atomic(path, &text)?;
            anstream::eprintln!("wrote {}", path.display());
        }
        None => out(&text)?,
    }
    Ok(())
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

/// Prints warnings the library collected instead of failing.
fn warn_all(warnings: &[String]) {
    for w in warnings {
        anstream::eprintln!("warning: {w}");
    }
}
