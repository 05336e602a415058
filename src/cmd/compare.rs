//! `regress compare`: resolve two revisions (or take two record files),
//! compare their records and report.

use super::{current_repo, report, store_for, warn_all};
use crate::cli::CompareArgs;
use crate::compare::compare as compare_sides;
use crate::exit::Exit;
use crate::resolve::{resolve, Request, Selection, SideInput};

pub fn compare(args: &CompareArgs) -> anyhow::Result<Exit> {
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
        return report(&comparison, &args.report);
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
    report(&comparison, &args.report)
}
