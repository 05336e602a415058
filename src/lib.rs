//! regress: run PyTorch benchmark pipelines, store every result under the
//! commit it measured, and tell whether a change made things slower.
//!
//! Data flows one way through the modules, in this order: `spec` (pipelines
//! and cases) → `runner` (samples) → `record` → `store` → `git` → `stats` →
//! `compare` → `report`. Each may use the types of those before it, never
//! after. Only this file and the private `cmd` module wire them together.

pub mod cli;
mod cmd;
pub mod compare;
pub mod git;
pub mod record;
pub mod report;
pub mod runner;
pub mod spec;
pub mod stats;
pub mod store;

/// How a successful invocation ends, mapped to the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything went as asked.
    Success,
    /// A case regressed and `--fail-on-regression` was given.
    Regressed,
    /// Input was invalid (already reported).
    Invalid,
    /// The user stopped a run; what finished is stored.
    Interrupted,
}

impl Exit {
    /// The process exit status: 0, 1, 2, or 130 (killed by SIGINT, by convention).
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Regressed => 1,
            Exit::Invalid => 2,
            Exit::Interrupted => 130,
        }
    }
}

/// Runs one command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<Exit> {
    match cli.command {
        cli::Command::Validate { pipelines } => cmd::validate(&pipelines),
        cli::Command::List(args) => cmd::list(&args),
        cli::Command::Run(args) => cmd::run(&args),
        cli::Command::Compare(args) => cmd::compare(&args),
        cli::Command::Ab(args) => cmd::ab(&args),
    }
}
