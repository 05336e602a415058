//! Turning a case into samples. One `Backend` trait, one implementation per
//! way of executing a case, chosen in `select` and nowhere else. Every
//! backend returns the same `Outcome`, so the rest of regress never needs to
//! know how a number was taken.

pub mod blocks;
mod command;
mod env;
mod fork_server;
pub mod gpus;
mod machine;
mod mock;
mod native;
pub mod probe_cache;
mod process;
pub mod protocol;
mod python;
pub mod sampling;
#[cfg(test)]
mod stop_tests;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::metric;
use crate::spec::{BackendKind, Case, Pipeline};

pub use env::{is_secret_name, scrubbed_env};
pub use machine::{fingerprint, Fingerprint, FingerprintKey, Load, Machine};
pub use native::NATIVE_WORKER_ENV;
pub use probe_cache::ProbeCache;
pub use python::{interpreter, PYTHON_ENV};

/// Set when the user asks regress to stop (Ctrl-C, SIGTERM); backends check
/// it between iterations and kill their worker.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Asks every backend holding this flag to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What every backend needs besides the pipeline.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Directory commands and workers run in: the root of the checkout measured.
    pub workdir: PathBuf,
    /// Where to look for `.venv/bin/python`: the main checkout, also when
    /// `workdir` is a temporary worktree.
    pub venv_root: PathBuf,
    pub stop: StopFlag,
    /// Seed for weights and inputs, the same in every process.
    pub seed: u64,
    /// A directory that lives as long as the command, shared by every
    /// backend of it (for answers worth computing once per run).
    pub scratch: Arc<tempfile::TempDir>,
    /// Where probe answers are kept between runs (`probe_cache`).
    pub probe_cache: ProbeCache,
}

impl RunContext {
    /// A context for measuring the checkout at `workdir`, with the user's
    /// probe cache (`ProbeCache::from_env`).
    pub fn new(
        workdir: PathBuf,
        venv_root: PathBuf,
        stop: StopFlag,
        seed: u64,
    ) -> std::io::Result<Self> {
        let scratch = tempfile::Builder::new().prefix("regress-run-").tempdir()?;
        Ok(RunContext {
            workdir,
            venv_root,
            stop,
            seed,
            scratch: Arc::new(scratch),
            probe_cache: ProbeCache::from_env(),
        })
    }
}

/// The software and device a backend measures with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub torch: Option<String>,
    pub python: Option<String>,
    /// The device `auto` resolved to (`cpu`, `cuda`, `mps`), if any.
    pub device: Option<String>,
    pub gpu: Option<String>,
    pub gpu_count: u32,
    pub compute_capability: Option<String>,
    pub cuda: Option<String>,
    pub cudnn: Option<String>,
    pub threads: Option<u32>,
    /// The UUID of the GPU measured on, which names it in nvidia-smi's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_uuid: Option<String>,
    /// The CUDA version torch was built for, also when it cannot use CUDA
    /// here (`cuda` is set only when it can).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_cuda: Option<String>,
    /// Why torch cannot use CUDA here, in its own words (the warnings of
    /// `torch.cuda.is_available()`), when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_unavailable: Option<String>,
    /// Settings that change speed without changing code: TF32, cuDNN
    /// benchmark mode, thread counts.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// The samples and diagnostics of one process (one repeat) of one case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSamples {
    /// Steady-state latency of each iteration, in seconds.
    pub latency: Vec<f64>,
    /// Further metrics of the metric table (`crate::metric`), by name: one
    /// value per process (compile time, peak memory, graph breaks) or one
    /// per iteration (a command's own throughput).
    pub extra: Vec<(&'static str, Vec<f64>)>,
    pub diagnostics: serde_json::Map<String, serde_json::Value>,
}

impl ProcessSamples {
    /// Adds one value of a per-process metric.
    pub fn push_once(&mut self, name: &'static str, value: f64) {
        debug_assert!(metric::lookup(name).is_some(), "{name} is not in the table");
        self.extra.push((name, vec![value]));
    }
}

/// How a process that produced no samples ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Failed,
    Timeout,
    Oom,
    /// The output disagreed with the reference, or held NaN or Inf.
    AccuracyFail,
}

/// The result of one process of one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Measured(ProcessSamples),
    /// The case cannot run on this machine; the reason says why.
    Skipped(String),
    Failed {
        kind: FailureKind,
        reason: String,
        /// What the process had found before it failed (settings, the
        /// accuracy report, what compiled), kept with the case.
        diagnostics: serde_json::Map<String, serde_json::Value>,
    },
    /// The user stopped the run while this process was going.
    Interrupted,
}

/// A backend that cannot start at all (as opposed to one case failing).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot start Python `{python}`: {source}\n  set `runner.python` in the pipeline or {PYTHON_ENV} to an interpreter that has torch")]
    PythonMissing {
        python: String,
        source: std::io::Error,
    },
    #[error("`{python}` has no torch ({detail})\n  install it: `{python} -m pip install torch==2.11.0` (or run `make venv`), or point regress at a Python that has it with `runner.python` or {PYTHON_ENV}=.venv/bin/python")]
    NoTorch { python: String, detail: String },
    #[error("the {kind} worker (`{worker}`) did not answer the probe: {detail}")]
    Probe {
        kind: &'static str,
        worker: String,
        detail: String,
    },
    #[error("cannot prepare the python worker: {0}")]
    Worker(std::io::Error),
    /// `gpu` names the GPU and its driver; `why` names torch and its CUDA,
    /// gives torch's own reason and the advice that follows from the
    /// versions.
    #[error("nvidia-smi lists {gpu}, but the {kind} backend's {why}\n  or set `runner.device: cpu` to measure the CPU on purpose")]
    CudaUnusable {
        kind: &'static str,
        gpu: String,
        why: String,
    },
    #[error("cannot start the native worker `{worker}`: {source}\n  it is built with regress (`cargo build`, feature `native`) and must sit beside the `regress` binary, or be named by {NATIVE_WORKER_ENV}")]
    NativeMissing {
        worker: String,
        source: std::io::Error,
    },
}

/// One way of executing cases.
pub trait Backend {
    /// Probes the software and device this backend will measure with.
    fn environment(&mut self) -> Result<Environment, RunnerError>;

    /// Runs one independent repeat (`repeat` counts from 0) of a case.
    fn run_process(&mut self, case: &Case, repeat: u32) -> Outcome;

    /// A line on where `environment`'s answer came from (a cache, and how
    /// to refresh it) or why it could not be kept, when worth showing.
    fn probe_note(&self) -> Option<String> {
        None
    }
}

/// Chooses the backend a pipeline asks for, to run `cases` (the ones
/// selected, which decide what needs setting up). The only place that
/// knows them all.
pub fn select(
    pipeline: &Pipeline,
    cases: &[Case],
    ctx: RunContext,
) -> Result<Box<dyn Backend>, RunnerError> {
    Ok(match pipeline.runner.backend {
        BackendKind::Python => Box::new(python::PythonBackend::new(pipeline, cases, ctx)?),
        BackendKind::Native => Box::new(native::NativeBackend::new(pipeline, ctx)),
        BackendKind::Command => Box::new(command::CommandBackend::new(pipeline, ctx)),
        BackendKind::Mock => Box::new(mock::MockBackend::new(pipeline, ctx)),
    })
}
