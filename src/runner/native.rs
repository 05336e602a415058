//! The native backend: the built-in zoo written with `tch`, run by the
//! `regress-native` worker binary (src/bin/regress-native) in a fresh
//! process per case and repeat, like the python worker and over the same
//! protocol, with no Python on the hot path. It is the only binary that
//! links libtorch, so `regress` itself starts without loading it.

use std::path::PathBuf;

use super::worker::Worker;
use super::{Backend, Environment, Outcome, RunContext, RunnerError};
use crate::spec::{Case, Pipeline};

/// Variable naming the native worker when it is not beside `regress`.
pub const NATIVE_WORKER_ENV: &str = "REGRESS_NATIVE_WORKER";

/// File name of the native worker, installed beside `regress`.
const NATIVE_WORKER: &str = "regress-native";

/// Where the native worker is: `REGRESS_NATIVE_WORKER`, else beside the
/// running `regress` (where cargo builds and installs it).
fn worker_path() -> PathBuf {
    if let Some(p) = std::env::var_os(NATIVE_WORKER_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(NATIVE_WORKER)))
        .unwrap_or_else(|| PathBuf::from(NATIVE_WORKER))
}

pub struct NativeBackend {
    worker: Worker,
    /// Why no case can run (the worker was not built), once the probe found out.
    missing: Option<String>,
}

impl NativeBackend {
    pub fn new(pipeline: &Pipeline, ctx: RunContext) -> Self {
        NativeBackend {
            worker: Worker::new(
                "native",
                worker_path(),
                Vec::new(),
                &[],
                pipeline,
                ctx,
                None,
            ),
            missing: None,
        }
    }
}

impl Backend for NativeBackend {
    fn environment(&mut self) -> Result<Environment, RunnerError> {
        if !self.worker.program.exists() {
            // Built without the `native` feature: every case is skipped with
            // the reason, never dropped; the run goes on.
            self.missing = Some(format!(
                "the native worker `{}` is not installed: this regress was built without the `native` feature (libtorch)",
                self.worker.name()
            ));
            return Ok(Environment::default());
        }
        let worker = self.worker.name();
        self.worker
            .probe(|source| RunnerError::NativeMissing { worker, source })
    }

    fn run_process(&mut self, case: &Case, repeat: u32) -> Outcome {
        match &self.missing {
            Some(reason) => Outcome::Skipped(reason.clone()),
            None => self.worker.run(case, repeat),
        }
    }
}
