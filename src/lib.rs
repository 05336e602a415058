//! regress: run PyTorch benchmark pipelines, store every result under the
//! commit it measured, and tell whether a change made things slower.
//!
//! Modules are listed in flow order: each may use the types of those
//! before it, never of those after. `id`, `metric` and `exit` are the
//! vocabulary every later module speaks, and `stats` the pure functions
//! over samples that records and comparisons both use; then pipelines
//! become cases (`spec`), cases become samples (`runner`), samples become
//! compact records (`record`), records are kept under commits (`git`,
//! `store`), measured in sessions (`session`), gathered for a comparison
//! (`resolve`), judged (`compare`), reported (`report`) and posted to a
//! pull request (`github`). Only `cmd` wires them together for the
//! command line.

pub mod exit;
pub mod id;
pub mod metric;

pub mod stats;

pub mod spec;

pub mod runner;

pub mod record;

pub mod git;

pub mod store;

pub mod session;

pub mod resolve;

pub mod compare;

pub mod report;

pub mod github;

pub mod cli;
mod cmd;

pub use exit::Exit;

/// Runs one command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<Exit> {
    cmd::dispatch(cli.command)
}
