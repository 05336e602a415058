//! `regress compare`: resolve two revisions (or take two record files),
//! compare their records and report.

use super::github::{context, publish, Publish};
use super::{current_repo, exit_of, fail_on, store_for, warn_all, write_report};
use crate::cli::CompareArgs;
use crate::compare::{compare as compare_sides, Comparison, FailOn};
use crate::exit::Exit;
use crate::report::{CompareView, Templates};
use crate::resolve::{resolve, Request, Selection, SideInput};

pub fn compare(args: &CompareArgs) -> anyhow::Result<Exit> {
    // Outside a job, --github says what is missing before any work.
    let github = match args.github {
        true => Some(context(&args.post)?),
        false => None,
    };
    let selection = Selection {
        pipeline: args.pipeline.clone(),
        allow_fingerprint_mismatch: args.report.allow_fingerprint_mismatch,
        allow_dirty: args.report.allow_dirty,
    };
    if let Some(files) = &args.records {
        let mut sides = Vec::new();
        for file in files {
            let record = crate::store::read_record(file)?;
            let rev = file.display().to_string();
            sides.push(SideInput::exact(&rev, record.commit.clone(), vec![record]));
        }
        let comparison = compare_sides(&sides[0], &sides[1], &[], &selection)?;
        let cwd = std::env::current_dir()?;
        return finish(args, &comparison, github.as_ref(), &cwd);
    }
    let base_rev = args
        .base
        .as_deref()
        .expect("clap requires base without --records");
    let repo = current_repo()?;
    let store = store_for(&repo, &args.store)?;
    let head = repo.resolve(&args.head)?;
    let request = Request {
        base_rev,
        head_rev: &args.head,
        base: repo.resolve(base_rev)?,
        head,
        exact: args.exact,
        max_walk: args.max_walk,
        selection: &selection,
    };
    let resolved = resolve(&repo, &store, &request)?;
    warn_all(&resolved.warnings);
    let comparison = compare_sides(
        &resolved.base,
        &resolved.head,
        &resolved.history,
        &selection,
    )?;
    finish(args, &comparison, github.as_ref(), &repo.workdir())
}

/// Writes the report, publishes it to GitHub when asked, and exits by the
/// gate, whatever became of the publishing.
fn finish(
    args: &CompareArgs,
    comparison: &Comparison,
    github: Option<&crate::github::ActionsContext>,
    workdir: &std::path::Path,
) -> anyhow::Result<Exit> {
    let view = CompareView::new(comparison);
    let templates = Templates::new(args.report.templates.as_deref())?;
    write_report(&view, &templates, &args.report)?;
    let asked = !args.report.fail_on.is_empty() || args.report.fail_on_regression;
    let on = match (github.is_some(), asked) {
        (true, false) => FailOn::ANY,
        _ => fail_on(&args.report),
    };
    let gate = comparison.gate(on);
    if let Some(ctx) = github {
        publish(
            ctx,
            &Publish {
                view: &view,
                gate,
                templates: &templates,
                post: &args.post,
                annotate_warnings: args.annotate_warnings,
                full_output: args.report.output.as_deref(),
                workdir,
            },
        );
    }
    Ok(exit_of(gate))
}
