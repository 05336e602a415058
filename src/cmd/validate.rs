//! `regress validate`: check pipeline files and say how many cases each has.

use std::path::{Path, PathBuf};

use super::{current_repo, out};
use crate::exit::Exit;
use crate::spec::Pipeline;

/// Where entrypoints are looked up: the repository root, as workers run
/// there; outside a repository, the current directory.
fn entrypoint_root() -> PathBuf {
    match current_repo() {
        Ok(repo) => repo.workdir(),
        Err(_) => PathBuf::from("."),
    }
}

/// The file's pipelines, entrypoints checked against `root`.
fn load_checked(path: &Path, root: &Path) -> Result<Vec<Pipeline>, crate::spec::SpecError> {
    let pipelines = Pipeline::load(path)?;
    for p in &pipelines {
        p.check_entrypoint(root)?;
    }
    Ok(pipelines)
}

pub fn validate(paths: &[PathBuf]) -> anyhow::Result<Exit> {
    let mut exit = Exit::Success;
    let root = entrypoint_root();
    for path in paths {
        match load_checked(path, &root) {
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
