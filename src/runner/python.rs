//! The torch.compile backend: a Python worker, embedded in the binary, run in
//! a fresh process per case and repeat, speaking JSON lines.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::process::{describe_exit, Ended, Supervised};
use super::protocol::{
    parse_line, AccuracySpec, CaseSpec, CompileSpec, MeasureSpec, Message, ModelSpec, ProbeRequest,
    ProtocolError, Request, RunRequest, RunResult, WarmupSpec, PROTOCOL_VERSION,
};
use super::sampling::StopRule;
use super::{
    scrubbed_env, Backend, Environment, FailureKind, Outcome, ProcessSamples, RunContext,
    RunnerError,
};
use crate::metric;
use crate::spec::{
    defaults, AccuracyConfig, Case, CompileMode, CompileScope, DeviceChoice, Model, Phase,
    Pipeline, Precision,
};

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
    device: DeviceChoice,
    /// The request of every case, before the case's own fields are filled in.
    template: RunRequest,
    accuracy: AccuracyConfig,
    timeout: Duration,
    /// The workers' environment, scrubbed of secrets once, not per spawn.
    env: Vec<(OsString, OsString)>,
}

/// What came back from one worker process.
struct Exchange {
    /// The messages it wrote, or the first line that broke the protocol.
    messages: Result<Vec<Message>, ProtocolError>,
    ended: Ended,
    stderr_tail: String,
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
                ModelSpec::Builtin {
                    name: name.as_str(),
                },
                params(args),
            ),
            Model::Entrypoint { target, args } => (
                ModelSpec::Entrypoint {
                    target: target.clone(),
                },
                params(args),
            ),
            Model::Command { .. } => {
                unreachable!("spec validation pairs command models with the command backend")
            }
        };
        let r = &pipeline.runner;
        let o = &pipeline.compile_options;
        let compiles = pipeline
            .cases()
            .iter()
            .any(|c| c.compile.is_some_and(|m| m != CompileMode::Eager));
        // Inductor's CPU vector-ISA checks, kept for the run, so the probe
        // makes them once instead of every worker (none when nothing compiles).
        let isa_checks = (compiles && o.backend == defaults::COMPILE_BACKEND)
            .then(|| ctx.scratch.path().join("isa-checks.json"));
        let template = RunRequest {
            protocol: PROTOCOL_VERSION,
            model,
            args,
            device: r.device.as_str(),
            case: CaseSpec {
                id: String::new(),
                label: String::new(),
                params: Value::Null,
                precision: Precision::Fp32.as_str(),
                compile: CompileMode::Eager.as_str(),
                phase: Phase::Forward.as_str(),
            },
            repeat: 0,
            seed: ctx.seed,
            isa_checks,
            warmup: WarmupSpec {
                min_iters: r.warmup.min_iters,
                min_time: r.warmup.min_time.as_secs_f64(),
            },
            measure: MeasureSpec::of(&StopRule::from(&r.measure)),
            l2: r.l2.as_str(),
            cast: r.cast.as_str(),
            fp8: r.fp8.as_str(),
            compile_options: CompileSpec {
                fullgraph: o.fullgraph,
                dynamic: o.dynamic,
                backend: o.backend.clone(),
                scope: match &o.scope {
                    CompileScope::Model => json!("model"),
                    CompileScope::Blocks => json!("blocks"),
                    CompileScope::Names(names) => json!({ "names": names }),
                },
                cache: o.cache.as_str(),
            },
            accuracy: accuracy_spec(&pipeline.accuracy, Precision::Fp32),
        };
        Ok(PythonBackend {
            python: interpreter(r.python.as_deref(), &ctx.venv_root),
            dir,
            device: r.device,
            template,
            accuracy: pipeline.accuracy.clone(),
            timeout: r.timeout,
            env: scrubbed_env(&r.env_passthrough),
            ctx,
        })
    }

    fn python_name(&self) -> String {
        self.python.display().to_string()
    }

    /// The request for one process of a case.
    fn request(&self, case: &Case, repeat: u32) -> Request {
        let precision = case.precision.unwrap_or(Precision::Fp32);
        let mut run = self.template.clone();
        run.case = CaseSpec {
            id: case.id.to_string(),
            label: case.label.clone(),
            params: serde_json::to_value(&case.params).expect("params serialise"),
            precision: precision.as_str(),
            compile: case.compile.unwrap_or(CompileMode::Eager).as_str(),
            phase: case.phase.as_str(),
        };
        run.repeat = repeat;
        run.accuracy = accuracy_spec(&self.accuracy, precision);
        Request::Run(Box::new(run))
    }

    /// Runs the worker with one request: what it wrote and how it ended.
    fn exchange(&self, request: &Request, timeout: Duration) -> std::io::Result<Exchange> {
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
        writeln!(stdin, "{}", request.to_line())?;
        drop(stdin);
        let stdout = proc.child.stdout.take().expect("stdout is piped");
        let reader = std::thread::spawn(move || -> Result<Vec<Message>, ProtocolError> {
            let mut messages = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                messages.push(parse_line(&line)?);
            }
            Ok(messages)
        });
        let ended = proc.wait(Instant::now() + timeout, &self.ctx.stop)?;
        let messages = reader.join().unwrap_or_else(|_| Ok(Vec::new()));
        Ok(Exchange {
            messages,
            ended,
            stderr_tail: proc.stderr_tail(),
        })
    }
}

/// The accuracy gate for one precision: the pipeline's tolerances where it
/// sets them, else the defaults for the precision.
fn accuracy_spec(a: &AccuracyConfig, precision: Precision) -> AccuracySpec {
    let d = defaults::tolerance(precision);
    AccuracySpec {
        check: a.check,
        rtol: a.rtol.unwrap_or(d.rtol),
        atol: a.atol.unwrap_or(d.atol),
        rmse: a.rmse.unwrap_or(d.rmse),
    }
}

/// The samples of a result message, metrics named by the metric table.
fn process_samples(r: RunResult) -> ProcessSamples {
    let mut diagnostics = r.diagnostics;
    if let Some(first) = r.first_call {
        diagnostics.insert("first_call".into(), first.into());
    }
    let mut samples = ProcessSamples {
        latency: r.samples,
        ..ProcessSamples::default()
    };
    for (name, value) in [
        (metric::COMPILE_TIME, r.compile_time),
        (metric::PEAK_MEMORY, r.peak_memory),
        (metric::PEAK_MEMORY_RESERVED, r.peak_memory_reserved),
    ] {
        if let Some(v) = value {
            samples.push_once(name, v);
        }
    }
    if let Some(c) = r.compile {
        let mut compile = c.details;
        for (name, value) in [
            (metric::GRAPH_BREAKS, c.graph_breaks),
            (metric::UNIQUE_GRAPHS, c.unique_graphs),
            (metric::RECOMPILES, c.recompiles),
        ] {
            if let Some(v) = value {
                samples.push_once(name, v);
                compile.insert(name.into(), v.into());
            }
        }
        diagnostics.insert("compile".into(), Value::Object(compile));
    }
    samples.diagnostics = diagnostics;
    samples
}

impl Backend for PythonBackend {
    fn environment(&mut self) -> Result<Environment, RunnerError> {
        let request = Request::Probe(ProbeRequest {
            protocol: PROTOCOL_VERSION,
            device: self.device.as_str(),
            isa_checks: self.template.isa_checks.clone(),
        });
        let x = self.exchange(&request, PROBE_TIMEOUT).map_err(|source| {
            RunnerError::PythonMissing {
                python: self.python_name(),
                source,
            }
        })?;
        let messages = x.messages.map_err(|e| RunnerError::Probe {
            python: self.python_name(),
            detail: e.to_string(),
        })?;
        for message in messages {
            match message {
                Message::Probe(p) => {
                    return Ok(Environment {
                        torch: p.torch,
                        python: p.python,
                        device: p.device,
                        gpu: p.gpu,
                        gpu_count: p.gpu_count,
                        compute_capability: p.compute_capability,
                        cuda: p.cuda,
                        cudnn: p.cudnn,
                        threads: p.threads,
                        settings: p.settings,
                    });
                }
                Message::Error { kind, message } if kind == "no_torch" => {
                    return Err(RunnerError::NoTorch {
                        python: self.python_name(),
                        detail: message,
                    });
                }
                Message::Error { message, .. } => {
                    return Err(RunnerError::Probe {
                        python: self.python_name(),
                        detail: message,
                    });
                }
                _ => {}
            }
        }
        let detail = match x.ended {
            Ended::Exited(status) => {
                format!("{}; stderr:\n{}", describe_exit(status), x.stderr_tail)
            }
            Ended::TimedOut => format!("no answer within {PROBE_TIMEOUT:?}"),
            Ended::Stopped => "interrupted".to_string(),
        };
        Err(RunnerError::Probe {
            python: self.python_name(),
            detail,
        })
    }

    fn run_process(&mut self, case: &Case, repeat: u32) -> Outcome {
        let x = match self.exchange(&self.request(case, repeat), self.timeout) {
            Ok(x) => x,
            Err(e) => {
                return Outcome::Failed {
                    kind: FailureKind::Failed,
                    reason: format!("cannot start `{}`: {e}", self.python_name()),
                }
            }
        };
        let tail = x.stderr_tail;
        match x.ended {
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
        let messages = match x.messages {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Failed {
                    kind: FailureKind::Failed,
                    reason: format!("{e}; stderr:\n{tail}"),
                }
            }
        };
        for message in messages {
            match message {
                Message::Result(r) => return Outcome::Measured(process_samples(r)),
                Message::Skipped { reason } => return Outcome::Skipped(reason),
                Message::AccuracyFail { message, .. } => {
                    return Outcome::Failed {
                        kind: FailureKind::AccuracyFail,
                        reason: message,
                    }
                }
                Message::Error { kind, message } => {
                    return Outcome::Failed {
                        kind: if kind == "oom" {
                            FailureKind::Oom
                        } else {
                            FailureKind::Failed
                        },
                        reason: if tail.is_empty() {
                            message
                        } else {
                            format!("{message}\n{tail}")
                        },
                    };
                }
                Message::Probe(_) => {}
            }
        }
        let how = match x.ended {
            Ended::Exited(status) => describe_exit(status),
            _ => "ended".to_string(),
        };
        Outcome::Failed {
            kind: FailureKind::Failed,
            reason: format!("the worker {how} without a result; stderr:\n{tail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_refuses_a_request_of_another_protocol_before_importing_torch() {
        // Plain python3 (no torch needed): the check comes first.
        let worker = concat!(env!("CARGO_MANIFEST_DIR"), "/python/regress_worker.py");
        let mut child = match Command::new("python3")
            .arg(worker)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipped: no python3 ({e})");
                return;
            }
        };
        let request = json!({"cmd": "probe", "protocol": 999, "device": "cpu", "isa_checks": null});
        writeln!(child.stdin.take().unwrap(), "{request}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.lines().next().expect("an answer");
        let Message::Error { kind, message } = parse_line(line).unwrap() else {
            panic!("an error: {line}")
        };
        assert_eq!(kind, "protocol");
        assert!(
            message.contains("protocol 999")
                && message.contains(&format!("speaks {PROTOCOL_VERSION}")),
            "{message}"
        );
    }

    #[test]
    fn requests_carry_every_setting_resolved() {
        let src = "version: 1\nname: r\nmodel: {builtin: mlp}\nrunner: {device: cpu}\nmatrix: {precision: [bf16], compile: [default]}\naccuracy: {rtol: 0.5}\n";
        let p = Pipeline::parse(src, Path::new("r.yaml")).unwrap().remove(0);
        let dir = std::env::temp_dir();
        let ctx = RunContext::new(dir.clone(), dir, super::super::StopFlag::default(), 0).unwrap();
        let backend = PythonBackend::new(&p, ctx).unwrap();
        let request: Value =
            serde_json::from_str(&backend.request(&p.cases()[0], 1).to_line()).unwrap();
        assert_eq!(request["cmd"], "run");
        assert_eq!(request["protocol"], PROTOCOL_VERSION);
        assert_eq!(request["repeat"], 1);
        assert_eq!(request["case"]["precision"], "bf16");
        assert_eq!(request["compile_options"]["backend"], "inductor");
        // The pipeline's rtol, the bf16 defaults for the rest.
        let bf16 = defaults::tolerance(Precision::Bf16);
        assert_eq!(request["accuracy"]["rtol"], 0.5);
        assert_eq!(request["accuracy"]["atol"], bf16.atol);
        assert_eq!(request["accuracy"]["rmse"], bf16.rmse);
        assert_eq!(
            request["measure"]["target_rel_iqr"],
            defaults::TARGET_REL_IQR
        );
        assert_eq!(request["l2"], "warm");
    }
}
