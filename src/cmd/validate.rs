//! `regress validate`: check pipeline files and say how many cases each has.

use std::path::PathBuf;

use super::out;
use crate::exit::Exit;
use crate::spec::Pipeline;

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
