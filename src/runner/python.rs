//! The torch.compile backend: a Python worker, embedded in the binary, run in
//! a fresh process per case and repeat, speaking JSON lines.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::process::{describe_exit, Ended, Supervised};
use super::{
    metric, scrubbed_env, Backend, Environment, FailureKind, Outcome, ProcessSamples, RunContext,
    RunnerError,
};
use crate::spec::{Case, CompileMode, CompileScope, DeviceChoice, Model, Pipeline};

/// Environment variable naming the interpreter when the pipeline does not.
pub const PYTHON_ENV: &str = "REGRESS_PYTHON";

/// Worker sources shipped inside the binary: (file name, text).
const WORKER_FILES: [(&str, &str); 2] = [
    (
        "regress_worker.py",
        include_str!("../../python/regress_worker.py"),
    ),
    (
        "regress_zoo.py",
        include_str!("../../python/regress_zoo.py"),
    ),
];

/// The probe imports torch and may initialise CUDA: allow for a slow disk.
const PROBE_TIMEOUT: Duration = Duration::from_secs(300);

/// Which Python runs the worker: `runner.python`, else `REGRESS_PYTHON`, else
/// the repository's `.venv/bin/python` when present, else `python3`.
pub fn interpreter(configured: Option<&str>, workdir: &Path) -> PathBuf {
    if let Some(p) = configured {
        let path = PathBuf::from(p);
        return if path.is_relative() && p.contains('/') {
            workdir.join(path)
        } else {
            path
        };
    }
    if let Some(p) = std::env::var_os(PYTHON_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = workdir.join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

pub struct PythonBackend {
    python: PathBuf,
    /// Holds the worker sources for as long as the backend lives.
    dir: tempfile::TempDir,
    ctx: RunContext,
    /// `{"kind": "builtin", "name": ...}` or `{"kind": "entrypoint", "target": ...}`.
    model: Value,
    args: Map<String, Value>,
    device: DeviceChoice,
    /// Settings every run request carries unchanged (warm-up, sampling,
    /// cache policy, precision, compile options, accuracy gate).
    settings: Map<String, Value>,
    /// Where inductor's CPU vector-ISA checks are kept for the run, so the
    /// probe makes them once instead of every worker (none when nothing compiles).
    isa_checks: Option<PathBuf>,
    timeout: Duration,
    /// The workers' environment, scrubbed of secrets once, not per spawn.
    env: Vec<(OsString, OsString)>,
}

#[derive(Debug, Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl PythonBackend {
    pub fn new(pipeline: &Pipeline, ctx: RunContext) -> Result<Self, RunnerError> {
        let dir = tempfile::Builder::new()
            .prefix("regress-worker-")
            .tempdir()
            .map_err(RunnerError::Worker)?;
        for (name, text) in WORKER_FILES {
            std::fs::write(dir.path().join(name), text).map_err(RunnerError::Worker)?;
        }
        let params = |args| match serde_json::to_value(args) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("a map of scalars serialises to a JSON object"),
        };
        let (model, args) = match &pipeline.model {
            Model::Builtin { name, args } => (
                json!({"kind": "builtin", "name": name.as_str()}),
                params(args),
            ),
            Model::Entrypoint { target, args } => (
                json!({"kind": "entrypoint", "target": target}),
                params(args),
            ),
            Model::Command { .. } => {
                unreachable!("spec validation pairs command models with the command backend")
            }
        };
        let r = &pipeline.runner;
        let o = &pipeline.compile_options;
        let scope = match &o.scope {
            CompileScope::Model => json!("model"),
            CompileScope::Blocks => json!("blocks"),
            CompileScope::Names(names) => json!({ "names": names }),
        };
        let a = &pipeline.accuracy;
        let settings = json!({
            "warmup": {"min_iters": r.warmup.min_iters, "min_time": r.warmup.min_time.as_secs_f64()},
            "measure": {
                "min_iters": r.measure.min_iters,
                "min_time": r.measure.min_time.as_secs_f64(),
                "max_time": r.measure.max_time.as_secs_f64(),
                "target_rel_iqr": r.measure.target_rel_iqr,
            },
            "l2": r.l2.as_str(),
            "cast": r.cast.as_str(),
            "fp8": r.fp8.as_str(),
            "compile_options": {
                "fullgraph": o.fullgraph,
                "dynamic": o.dynamic,
                "backend": o.backend,
                "scope": scope,
                "cache": o.cache.as_str(),
            },
            "accuracy": {"check": a.check, "rtol": a.rtol, "atol": a.atol, "rmse": a.rmse},
        });
        let Value::Object(settings) = settings else {
            unreachable!("a JSON object literal")
        };
        let compiles = pipeline
            .cases()
            .iter()
            .any(|c| c.compile.is_some_and(|m| m != CompileMode::Eager));
        let isa_checks = (compiles && o.backend == "inductor")
            .then(|| ctx.scratch.path().join("isa-checks.json"));
        Ok(PythonBackend {
            python: interpreter(r.python.as_deref(), &ctx.venv_root),
            dir,
            model,
            args,
            device: r.device,
            settings,
            isa_checks,
            timeout: r.timeout,
            env: scrubbed_env(&r.env_passthrough),
            ctx,
        })
    }

    fn python_name(&self) -> String {
        self.python.display().to_string()
    }

    /// Runs the worker with one request; returns its protocol lines and how it ended.
    fn exchange(
        &self,
        request: &Value,
        timeout: Duration,
    ) -> std::io::Result<(Vec<Line>, Ended, String)> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.dir.path().join("regress_worker.py"))
            .current_dir(&self.ctx.workdir)
            .env_clear()
            .envs(self.env.iter().cloned())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut proc = Supervised::spawn(cmd)?;
        let mut stdin = proc.child.stdin.take().expect("stdin is piped");
        writeln!(stdin, "{request}")?;
        drop(stdin);
        let stdout = proc.child.stdout.take().expect("stdout is piped");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<Line>(&l).ok())
                .collect::<Vec<_>>()
        });
        let ended = proc.wait(Instant::now() + timeout, &self.ctx.stop)?;
        let lines = reader.join().unwrap_or_default();
        let tail = proc.stderr_tail();
        Ok((lines, ended, tail))
    }
}

fn str_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_string)
}

fn f64_field(map: &Map<String, Value>, key: &str) -> Option<f64> {
    map.get(key).and_then(Value::as_f64)
}

impl Backend for PythonBackend {
    fn environment(&mut self) -> Result<Environment, RunnerError> {
        let request = json!({
            "cmd": "probe",
            "device": self.device.as_str(),
            "isa_checks": self.isa_checks,
        });
        let (lines, ended, tail) = self.exchange(&request, PROBE_TIMEOUT).map_err(|source| {
            RunnerError::PythonMissing {
                python: self.python_name(),
                source,
            }
        })?;
        for line in &lines {
            match line.kind.as_str() {
                "probe" => {
                    let m = &line.rest;
                    return Ok(Environment {
                        torch: str_field(m, "torch"),
                        python: str_field(m, "python"),
                        device: str_field(m, "device"),
                        gpu: str_field(m, "gpu"),
                        gpu_count: m.get("gpu_count").and_then(Value::as_u64).unwrap_or(0) as u32,
                        compute_capability: str_field(m, "compute_capability"),
                        cuda: str_field(m, "cuda"),
                        cudnn: str_field(m, "cudnn"),
                        threads: m.get("threads").and_then(Value::as_u64).map(|t| t as u32),
                        settings: m
                            .get("settings")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default(),
                    });
                }
                "error" if str_field(&line.rest, "kind").as_deref() == Some("no_torch") => {
                    return Err(RunnerError::NoTorch {
                        python: self.python_name(),
                        detail: str_field(&line.rest, "message").unwrap_or_default(),
                    });
                }
                _ => {}
            }
        }
        let detail = match ended {
            Ended::Exited(status) => format!("{}; stderr:\n{tail}", describe_exit(status)),
            Ended::TimedOut => format!("no answer within {PROBE_TIMEOUT:?}"),
            Ended::Stopped => "interrupted".to_string(),
        };
        Err(RunnerError::Probe {
            python: self.python_name(),
            detail,
        })
    }

    fn run_process(&mut self, case: &Case, repeat: u32) -> Outcome {
        let mut request = json!({
            "cmd": "run",
            "model": self.model,
            "args": self.args,
            "device": self.device.as_str(),
            "case": {
                "id": case.id,
                "label": case.label,
                "params": case.params,
                "precision": case.precision,
                "compile": case.compile,
                "phase": case.phase,
            },
            "repeat": repeat,
            "seed": self.ctx.seed,
            "isa_checks": self.isa_checks,
        });
        if let Value::Object(map) = &mut request {
            map.extend(self.settings.clone());
        }
        let (lines, ended, tail) = match self.exchange(&request, self.timeout) {
            Ok(x) => x,
            Err(e) => {
                return Outcome::Failed {
                    kind: FailureKind::Failed,
                    reason: format!("cannot start `{}`: {e}", self.python_name()),
                }
            }
        };
        match ended {
            Ended::Stopped => return Outcome::Interrupted,
            Ended::TimedOut => {
                return Outcome::Failed {
                    kind: FailureKind::Timeout,
                    reason: format!(
                        "no result within the {:?} timeout (runner.timeout); stderr:\n{tail}",
                        self.timeout
                    ),
                }
            }
            Ended::Exited(_) => {}
        }
        for line in lines {
            let m = &line.rest;
            match line.kind.as_str() {
                "result" => {
                    let latency: Vec<f64> = m
                        .get("samples")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_f64).collect())
                        .unwrap_or_default();
                    let mut diagnostics = m
                        .get("diagnostics")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(first) = m.get("first_call") {
                        diagnostics.insert("first_call".into(), first.clone());
                    }
                    let mut extra = Vec::new();
                    if let Some(reserved) = f64_field(m, "peak_memory_reserved") {
                        extra.push((
                            metric::PEAK_MEMORY_RESERVED.to_string(),
                            "B".into(),
                            vec![reserved],
                        ));
                    }
                    if let Some(compile) = m.get("compile").and_then(Value::as_object) {
                        for name in [
                            metric::GRAPH_BREAKS,
                            metric::UNIQUE_GRAPHS,
                            metric::RECOMPILES,
                        ] {
                            if let Some(v) = f64_field(compile, name) {
                                extra.push((name.to_string(), "count".into(), vec![v]));
                            }
                        }
                        diagnostics.insert("compile".into(), Value::Object(compile.clone()));
                    }
                    return Outcome::Measured(ProcessSamples {
                        latency,
                        compile_time: f64_field(m, "compile_time"),
                        peak_memory: f64_field(m, "peak_memory"),
                        extra,
                        diagnostics,
                    });
                }
                "skipped" => return Outcome::Skipped(str_field(m, "reason").unwrap_or_default()),
                "accuracy_fail" => {
                    return Outcome::Failed {
                        kind: FailureKind::AccuracyFail,
                        reason: str_field(m, "message").unwrap_or_default(),
                    }
                }
                "error" => {
                    let kind = match str_field(m, "kind").as_deref() {
                        Some("oom") => FailureKind::Oom,
                        _ => FailureKind::Failed,
                    };
                    let message = str_field(m, "message").unwrap_or_default();
                    return Outcome::Failed {
                        kind,
                        reason: if tail.is_empty() {
                            message
                        } else {
                            format!("{message}\n{tail}")
                        },
                    };
                }
                _ => {}
            }
        }
        let how = match ended {
            Ended::Exited(status) => describe_exit(status),
            _ => "ended".to_string(),
        };
        Outcome::Failed {
            kind: FailureKind::Failed,
            reason: format!("the worker {how} without a result; stderr:\n{tail}"),
        }
    }
}
