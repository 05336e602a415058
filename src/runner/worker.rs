//! A worker process per case and repeat, speaking the typed protocol
//! (`protocol`): regress writes one request, the worker answers with JSON
//! lines. The python (torch.compile) and native (libtorch) backends are
//! both workers; they differ only in the program they start.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::gpus::{self, GpuInfo, CUDA_VISIBLE_DEVICES};
use super::process::{describe_exit, Ended, Supervised};
use super::protocol::{
    parse_line, AccuracySpec, CaseSpec, CompileSpec, MeasureSpec, Message, ModelSpec, ProbeRequest,
    ProtocolError, Request, RunRequest, RunResult, WarmupSpec, PROTOCOL_VERSION,
};
use super::sampling::StopRule;
use super::{
    scrubbed_env, Environment, FailureKind, Outcome, ProcessSamples, RunContext, RunnerError,
};
use crate::metric;
use crate::spec::{
    defaults, AccuracyConfig, Case, CompileMode, CompileScope, DeviceChoice, Model, Phase,
    Pipeline, Precision,
};

/// The probe imports torch and may initialise CUDA: allow for a slow disk.
const PROBE_TIMEOUT: Duration = Duration::from_secs(300);

/// How to start one worker process.
pub struct Worker {
    /// `python` or `native`, for messages.
    pub kind: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    ctx: RunContext,
    /// The workers' environment, scrubbed of secrets once, not per spawn.
    env: Vec<(OsString, OsString)>,
    /// The request of every case, before the case's own fields are filled in.
    template: RunRequest,
    accuracy: AccuracyConfig,
    timeout: Duration,
}

/// What came back from one worker process.
struct Exchange {
    /// The messages it wrote, or the first line that broke the protocol.
    messages: Result<Vec<Message>, ProtocolError>,
    ended: Ended,
    stderr_tail: String,
}

/// The model and arguments of a pipeline as the protocol names them.
fn model_spec(model: &Model) -> (ModelSpec, Map<String, Value>) {
    let params = |args| match serde_json::to_value(args) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("a map of scalars serialises to a JSON object"),
    };
    match model {
        Model::Builtin { name, args } => (ModelSpec::Builtin { name: *name }, params(args)),
        Model::Entrypoint { target, args } => (
            ModelSpec::Entrypoint {
                target: target.clone(),
            },
            params(args),
        ),
        Model::Command { .. } => {
            unreachable!("spec validation pairs command models with the command backend")
        }
    }
}

impl Worker {
    /// A worker for the pipeline's cases: `program args…`, with `extra_env`
    /// beside the scrubbed environment. `isa_checks` is where inductor's
    /// vector-ISA answers are shared for the run (python only).
    pub fn new(
        kind: &'static str,
        program: PathBuf,
        args: Vec<OsString>,
        extra_env: &[(&str, &str)],
        pipeline: &Pipeline,
        ctx: RunContext,
        isa_checks: Option<PathBuf>,
    ) -> Worker {
        let (model, args_map) = model_spec(&pipeline.model);
        let r = &pipeline.runner;
        let o = &pipeline.compile_options;
        let template = RunRequest {
            protocol: PROTOCOL_VERSION,
            model,
            args: args_map,
            device: r.device,
            case: CaseSpec {
                id: String::new(),
                label: String::new(),
                params: Map::new(),
                precision: Precision::Fp32,
                compile: CompileMode::Eager,
                phase: Phase::Forward,
            },
            repeat: 0,
            seed: ctx.seed,
            threads: r.threads,
            isa_checks,
            warmup: WarmupSpec {
                min_iters: r.warmup.min_iters,
                min_time: r.warmup.min_time.as_secs_f64(),
            },
            measure: MeasureSpec::of(&StopRule::from(&r.measure)),
            l2: r.l2,
            cast: r.cast,
            fp8: r.fp8,
            compile_options: CompileSpec {
                fullgraph: o.fullgraph,
                dynamic: o.dynamic,
                backend: o.backend.clone(),
                scope: match &o.scope {
                    CompileScope::Model => json!("model"),
                    CompileScope::Blocks => json!("blocks"),
                    CompileScope::Names(names) => json!({ "names": names }),
                },
                cache: o.cache,
            },
            accuracy: accuracy_spec(&pipeline.accuracy, Precision::Fp32),
        };
        let mut env = scrubbed_env(&r.env_passthrough);
        env.extend(thread_env(r.threads));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        Worker {
            kind,
            program,
            args,
            ctx,
            env,
            template,
            accuracy: pipeline.accuracy.clone(),
            timeout: r.timeout,
        }
    }

    /// The program as users see it in messages.
    pub fn name(&self) -> String {
        self.program.display().to_string()
    }

    /// The run this worker serves.
    pub fn ctx(&self) -> &RunContext {
        &self.ctx
    }

    /// Sets (or with `None` removes) one variable of that environment.
    pub fn set_env(&mut self, key: &str, value: Option<OsString>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.env.push((key.into(), value));
        }
    }

    /// The request for one process of a case.
    pub fn request(&self, case: &Case, repeat: u32) -> Request {
        let precision = case.precision.unwrap_or(Precision::Fp32);
        let mut run = self.template.clone();
        let params = match serde_json::to_value(&case.params) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("params serialise to a JSON object"),
        };
        run.case = CaseSpec {
            id: case.id.to_string(),
            label: case.label.clone(),
            params,
            precision,
            compile: case.compile.unwrap_or(CompileMode::Eager),
            phase: case.phase,
        };
        run.repeat = repeat;
        run.accuracy = accuracy_spec(&self.accuracy, precision);
        Request::Run(Box::new(run))
    }

    /// Runs the worker with one request: what it wrote and how it ended.
    fn exchange(&self, request: &Request, timeout: Duration) -> std::io::Result<Exchange> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.ctx.workdir)
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut proc = Supervised::spawn(cmd)?;
        let mut stdin = proc.child.stdin.take().expect("stdin is piped");
        writeln!(stdin, "{}", request.to_line())?;
        drop(stdin);
        let stdout = proc.child.stdout.take().expect("stdout is piped");
        let reader = std::thread::spawn(move || -> Result<Vec<Message>, ProtocolError> {
            // Read to the end even after a bad line, so a worker that goes
            // on writing never blocks on a full pipe; the first error wins.
            let (mut messages, mut first_error) = (Vec::new(), None);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() || first_error.is_some() {
                    continue;
                }
                match parse_line(&line) {
                    Ok(m) => messages.push(m),
                    Err(e) => first_error = Some(e),
                }
            }
            first_error.map_or(Ok(messages), Err)
        });
        let ended = proc.wait(Instant::now() + timeout, &self.ctx.stop)?;
        let messages = reader.join().unwrap_or_else(|_| Ok(Vec::new()));
        Ok(Exchange {
            messages,
            ended,
            stderr_tail: proc.stderr_tail(),
        })
    }

    /// The environment every process of this worker is started with.
    pub fn env(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// The directory workers run in.
    pub fn workdir(&self) -> &std::path::Path {
        &self.ctx.workdir
    }

    /// The device the pipeline asks for.
    pub fn device(&self) -> DeviceChoice {
        self.template.device
    }

    /// Where inductor's vector-ISA answers are shared (python only).
    pub fn set_isa_checks(&mut self, path: Option<PathBuf>) {
        self.template.isa_checks = path;
    }

    /// Asks a worker for the software and device it will measure with,
    /// and checks that a GPU the host has is one torch can use.
    /// `cannot_start` turns a failure to spawn into the backend's own error.
    pub fn probe(
        &self,
        cannot_start: impl FnOnce(std::io::Error) -> RunnerError,
    ) -> Result<Environment, RunnerError> {
        let env = self.ask_probe(cannot_start)?;
        self.check_cuda(&env, &gpus::nvidia_smi())?;
        Ok(env)
    }

    /// `cuda_usable` against `smi`, the GPUs nvidia-smi lists now: cheap,
    /// so run on every start, also when the probe's answer was cached.
    pub fn check_cuda(&self, env: &Environment, smi: &[GpuInfo]) -> Result<(), RunnerError> {
        let visible = std::env::var(CUDA_VISIBLE_DEVICES).ok();
        let seen = gpus::visible(smi, visible.as_deref());
        cuda_usable(self.kind, self.template.device, env, &seen)
    }

    /// The probe's answer, unchecked.
    pub fn ask_probe(
        &self,
        cannot_start: impl FnOnce(std::io::Error) -> RunnerError,
    ) -> Result<Environment, RunnerError> {
        let request = Request::Probe(ProbeRequest {
            protocol: PROTOCOL_VERSION,
            device: self.template.device,
            isa_checks: self.template.isa_checks.clone(),
        });
        let x = self
            .exchange(&request, PROBE_TIMEOUT)
            .map_err(cannot_start)?;
        let probe_error = |detail: String| RunnerError::Probe {
            kind: self.kind,
            worker: self.name(),
            detail,
        };
        for message in x.messages.map_err(|e| probe_error(e.to_string()))? {
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
                        gpu_uuid: p.gpu_uuid,
                        torch_cuda: p.torch_cuda,
                        cuda_unavailable: p.cuda_unavailable,
                        settings: p.settings,
                    });
                }
                Message::Error { kind, message, .. } if kind == "no_torch" => {
                    return Err(RunnerError::NoTorch {
                        python: self.name(),
                        detail: message,
                    });
                }
                Message::Error { message, .. } => return Err(probe_error(message)),
                _ => {}
            }
        }
        Err(probe_error(match x.ended {
            Ended::Exited(status) => {
                format!("{}; stderr:\n{}", describe_exit(status), x.stderr_tail)
            }
            Ended::TimedOut => format!("no answer within {PROBE_TIMEOUT:?}"),
            Ended::Stopped => "interrupted".to_string(),
        }))
    }

    /// Runs one process of a case and turns what the worker said into an outcome.
    pub fn run(&self, case: &Case, repeat: u32) -> Outcome {
        let x = match self.exchange(&self.request(case, repeat), self.timeout) {
            Ok(x) => x,
            Err(e) => {
                return Outcome::Failed {
                    kind: FailureKind::Failed,
                    reason: format!("cannot start `{}`: {e}", self.name()),
                    diagnostics: Default::default(),
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
                    diagnostics: Default::default(),
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
                    diagnostics: Default::default(),
                }
            }
        };
        for message in messages {
            match message {
                Message::Result(r) => return Outcome::Measured(process_samples(r)),
                Message::Skipped { reason } => return Outcome::Skipped(reason),
                Message::AccuracyFail {
                    message,
                    diagnostics,
                    ..
                } => {
                    return Outcome::Failed {
                        kind: FailureKind::AccuracyFail,
                        reason: message,
                        diagnostics,
                    }
                }
                Message::Error {
                    kind,
                    message,
                    diagnostics,
                } => {
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
                        diagnostics,
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
            diagnostics: Default::default(),
        }
    }
}

/// Whether a probe that asked for CUDA (`auto` or `cuda`) got it where the
/// host has a GPU: a torch that cannot use the GPU nvidia-smi sees (a
/// wheel for a newer CUDA than the driver runs, a CPU-only build) would
/// otherwise measure the CPU under a GPU machine's name, or skip every
/// case without saying why. `seen`: the GPUs the worker can see.
pub(super) fn cuda_usable(
    kind: &'static str,
    choice: DeviceChoice,
    env: &Environment,
    seen: &[GpuInfo],
) -> Result<(), RunnerError> {
    let asked = matches!(choice, DeviceChoice::Auto | DeviceChoice::Cuda);
    let Some(gpu) = seen.first() else {
        return Ok(());
    };
    if !asked || env.device.as_deref() == Some("cuda") {
        return Ok(());
    }
    let torch = env
        .torch
        .clone()
        .unwrap_or_else(|| "unknown version".into());
    let minimum = env.torch_cuda.as_deref().and_then(gpus::minimum_driver);
    let advice = match (env.torch_cuda.as_deref(), minimum, gpu.driver_major()) {
        (None, ..) => format!(
            "torch {torch} is built without CUDA (torch.version.cuda is None); install a CUDA build"
        ),
        (Some(cuda), Some(min), Some(have)) if have < min => format!(
            "torch is built for CUDA {cuda}, which needs driver {min} or newer; this one is {}; install the torch build of this driver's CUDA",
            gpu.driver
        ),
        (Some(cuda), ..) => format!(
            "torch is built for CUDA {cuda}; check that the driver and this build agree"
        ),
    } + if kind == "native" {
        // The native worker loads the libtorch it was linked against
        // (the build machine's torch/lib, by rpath) or LD_LIBRARY_PATH's.
        ", then rebuild regress against it (`make build`), or point LD_LIBRARY_PATH at the torch/lib of a CUDA build"
    } else {
        ", e.g. `make venv TORCH_INDEX=https://download.pytorch.org/whl/cu128` (see the README's GPU runners)"
    };
    let driver = if gpu.driver.is_empty() {
        "unknown"
    } else {
        &gpu.driver
    };
    let detail = env
        .cuda_unavailable
        .as_deref()
        .unwrap_or("it reports no CUDA device");
    Err(RunnerError::CudaUnusable {
        kind,
        gpu: format!("{} (driver {driver})", gpu.name),
        why: format!(
            "torch ({torch}, {}) cannot use it: {detail}\n  {advice}",
            env.torch_cuda
                .as_deref()
                .map_or("no CUDA".into(), |c| format!("CUDA {c}"))
        ),
    })
}

/// Variables that size the thread pools of OpenMP and MKL, set to
/// `runner.threads` when the pipeline gives it, so that libraries a worker
/// loads before torch applies the setting use as many threads too.
pub(super) fn thread_env(threads: Option<u32>) -> Vec<(OsString, OsString)> {
    let Some(n) = threads else {
        return Vec::new();
    };
    ["OMP_NUM_THREADS", "MKL_NUM_THREADS"]
        .into_iter()
        .map(|k| (OsString::from(k), OsString::from(n.to_string())))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn cuda_that_torch_cannot_use_is_an_error_only_where_it_was_asked_for() {
        let h200 = [GpuInfo {
            name: "NVIDIA H200".into(),
            driver: "535.104.05".into(),
            ..GpuInfo::default()
        }];
        let on_cpu = Environment {
            torch: Some("2.11.0+cu130".into()),
            device: Some("cpu".into()),
            torch_cuda: Some("13.0".into()),
            cuda_unavailable: Some("The NVIDIA driver on your system is too old".into()),
            ..Environment::default()
        };
        let err = |kind, env: &Environment| {
            cuda_usable(kind, DeviceChoice::Auto, env, &h200)
                .unwrap_err()
                .to_string()
        };
        let python = err("python", &on_cpu);
        for part in [
            "nvidia-smi lists NVIDIA H200 (driver 535.104.05)",
            "torch (2.11.0+cu130, CUDA 13.0) cannot use it: The NVIDIA driver on your system is too old",
            "needs driver 580 or newer; this one is 535.104.05",
            "TORCH_INDEX",
            "runner.device: cpu",
        ] {
            assert!(python.contains(part), "{part}: {python}");
        }
        assert!(err("native", &on_cpu).contains("LD_LIBRARY_PATH"));
        let cpu_build = Environment {
            torch: Some("2.11.0+cpu".into()),
            torch_cuda: None,
            ..on_cpu.clone()
        };
        assert!(err("python", &cpu_build).contains("built without CUDA"));
        // Asked for the CPU, no GPU visible, or CUDA in use: no error.
        assert!(cuda_usable("python", DeviceChoice::Cpu, &on_cpu, &h200).is_ok());
        assert!(cuda_usable("python", DeviceChoice::Auto, &on_cpu, &[]).is_ok());
        let on_gpu = Environment {
            device: Some("cuda".into()),
            ..on_cpu
        };
        assert!(cuda_usable("python", DeviceChoice::Cuda, &on_gpu, &h200).is_ok());
    }

    #[test]
    fn requests_carry_every_setting_resolved() {
        let src = "version: 1\nname: r\nmodel: {builtin: mlp}\nrunner: {device: cpu}\nmatrix: {precision: [bf16], compile: [default]}\naccuracy: {rtol: 0.5}\n";
        let p = Pipeline::parse(src, Path::new("r.yaml")).unwrap().remove(0);
        let dir = std::env::temp_dir();
        let ctx = RunContext::new(dir.clone(), dir, super::super::StopFlag::default(), 0).unwrap();
        let worker = Worker::new("python", "python3".into(), Vec::new(), &[], &p, ctx, None);
        let request: Value =
            serde_json::from_str(&worker.request(&p.cases()[0], 1).to_line()).unwrap();
        assert_eq!(request["cmd"], "run");
        assert_eq!(request["protocol"], PROTOCOL_VERSION);
        assert_eq!(request["repeat"], 1);
        assert_eq!(request["case"]["precision"], "bf16");
        assert_eq!(request["case"]["compile"], "default");
        assert_eq!(request["model"], json!({"kind": "builtin", "name": "mlp"}));
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
        // And the workers read it back.
        let back: Request =
            serde_json::from_str(&worker.request(&p.cases()[0], 1).to_line()).unwrap();
        assert!(matches!(back, Request::Run(r) if r.case.precision == Precision::Bf16));
    }
}
