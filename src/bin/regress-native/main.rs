//! regress-native: the native backend's worker. It reads one request (the
//! protocol of `regress::runner::protocol`) on stdin, measures one process
//! of one case of the built-in MLP with libtorch through `tch`, and writes
//! its answer as JSON lines on stdout. `regress` starts it per case and
//! repeat, so native repeats are independent processes, and it is the only
//! binary that links libtorch.
//!
//! The MLP draws its weights in the same order from the same generator as
//! the python zoo (`python/regress_zoo.py`), so both backends compute the
//! same function and their difference is Python's overhead.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Instant;

use regress::runner::blocks::calibrate;
use regress::runner::protocol::{
    Message, ModelSpec, ProbeReply, Request, RunRequest, RunResult, PROTOCOL_VERSION,
};
use regress::runner::sampling::{measure_loop, WallClock};
use regress::runner::StopFlag;
use regress::spec::{BuiltinModel, DeviceChoice, Precision, Warmup};
use serde_json::{Map, Value};
use tch::{Device, Kind, Tensor};

/// The libtorch version this binary was linked against (from build.rs).
const LIBTORCH_VERSION: &str = env!("REGRESS_LIBTORCH_VERSION");

/// Exit status after an error message (as the python worker's).
const FAILED: u8 = 3;

/// The built-in MLP, as in `python/regress_zoo.py`.
struct Mlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w1, Some(&self.b1))
            .gelu("none")
            .linear(&self.w2, Some(&self.b2))
    }
}

fn send(message: &Message) {
    println!("{}", message.to_line());
}

fn error(kind: &str, message: String) -> ExitCode {
    send(&Message::Error {
        kind: kind.into(),
        message,
        diagnostics: Default::default(),
    });
    ExitCode::from(FAILED)
}

fn device(choice: DeviceChoice) -> Option<Device> {
    match choice {
        DeviceChoice::Auto => Some(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Some(Device::Cuda(0)),
        DeviceChoice::Cpu => Some(Device::Cpu),
        _ => None,
    }
}

fn device_name(d: Device) -> String {
    match d {
        Device::Cuda(_) => "cuda".into(),
        _ => "cpu".into(),
    }
}

/// The CUDA version a libtorch build names in its local version
/// (`2.11.0+cu128` → `12.8`); None for CPU builds and plain versions.
fn build_cuda(version: &str) -> Option<String> {
    let tag = version.split_once("+cu")?.1;
    let digits: String = tag.chars().take_while(char::is_ascii_digit).collect();
    (digits.len() >= 2).then(|| {
        format!(
            "{}.{}",
            &digits[..digits.len() - 1],
            &digits[digits.len() - 1..]
        )
    })
}

/// A positive integer parameter: the case's value, else the model's
/// argument, else `default`.
fn param(req: &RunRequest, name: &str, default: i64) -> Result<i64, String> {
    match req.case.params.get(name).or_else(|| req.args.get(name)) {
        None => Ok(default),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("parameter {name} must be a positive integer, got {v}")),
    }
}

fn main() -> ExitCode {
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim().is_empty() {
        return error("protocol", "no request on stdin".into());
    }
    let value: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => return error("protocol", format!("the request is not JSON: {e}")),
    };
    let sent = value.get("protocol").and_then(Value::as_u64);
    if sent != Some(u64::from(PROTOCOL_VERSION)) {
        return error(
            "protocol",
            format!(
                "regress sent protocol {}, this worker speaks {PROTOCOL_VERSION}: the worker and the binary come from different builds",
                sent.map_or("none".into(), |v| v.to_string())
            ),
        );
    }
    let request: Request = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => return error("protocol", format!("the request does not parse: {e}")),
    };
    match request {
        Request::Probe(p) => {
            let d = device(p.device);
            let cuda = tch::Cuda::is_available();
            send(&Message::Probe(ProbeReply {
                torch: Some(LIBTORCH_VERSION.into()),
                torch_cuda: build_cuda(LIBTORCH_VERSION),
                cuda: if cuda {
                    build_cuda(LIBTORCH_VERSION)
                } else {
                    None
                },
                cuda_unavailable: (!cuda).then(|| {
                    "libtorch finds no CUDA device (tch::Cuda::is_available() is false)".into()
                }),
                device: d.map(device_name),
                gpu_count: tch::Cuda::device_count().max(0) as u32,
                threads: Some(tch::get_num_threads().max(0) as u32),
                ..ProbeReply::default()
            }));
            ExitCode::SUCCESS
        }
        Request::Run(run) => {
            let outcome = std::panic::catch_unwind(|| measure(&run));
            match outcome {
                Ok(Ok(message)) => {
                    send(&message);
                    ExitCode::SUCCESS
                }
                Ok(Err(reason)) => error("exception", reason),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "libtorch raised an error".into());
                    let kind = if message.contains("out of memory") {
                        "oom"
                    } else {
                        "exception"
                    };
                    error(kind, message)
                }
            }
        }
    }
}

/// One process of one case: a result, or why it was skipped.
fn measure(req: &RunRequest) -> Result<Message, String> {
    if let Some(n) = req.threads {
        tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
    }
    let skipped = |reason: String| Ok(Message::Skipped { reason });
    let Some(device) = device(req.device) else {
        return skipped(format!(
            "device `{}` is not available to the native backend on this machine",
            req.device
        ));
    };
    let kind = match req.case.precision {
        Precision::Fp32 => Kind::Float,
        Precision::Bf16 => Kind::BFloat16,
        Precision::Fp16 => Kind::Half,
        Precision::Fp8 => {
            return skipped(
                "fp8 is not supported by the native backend; use the python backend".into(),
            )
        }
    };
    if !matches!(
        req.model,
        ModelSpec::Builtin {
            name: BuiltinModel::Mlp
        }
    ) {
        return Err("the native backend runs the built-in mlp only".into());
    }
    let batch = param(req, "batch", 8)?;
    let dim = param(req, "dim", 256)?;
    let hidden = param(req, "hidden", 4 * dim)?;
    let _guard = tch::no_grad_guard();
    tch::manual_seed(req.seed as i64);
    let cpu = (Kind::Float, Device::Cpu);
    let w1 = Tensor::randn([hidden, dim], cpu) * (dim as f64).powf(-0.5);
    let b1 = Tensor::zeros([hidden], cpu);
    let w2 = Tensor::randn([dim, hidden], cpu) * (hidden as f64).powf(-0.5);
    let b2 = Tensor::zeros([dim], cpu);
    let has_seq = req.case.params.contains_key("seq_len") || req.args.contains_key("seq_len");
    let shape: Vec<i64> = if has_seq {
        vec![batch, param(req, "seq_len", 1)?, dim]
    } else {
        vec![batch, dim]
    };
    let x = Tensor::randn(shape.as_slice(), cpu)
        .to_device(device)
        .to_kind(kind);
    let to = |t: Tensor| t.to_device(device).to_kind(kind);
    let mlp = Mlp {
        w1: to(w1),
        b1: to(b1),
        w2: to(w2),
        b2: to(b2),
    };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };

    let t0 = Instant::now();
    let out = mlp.forward(&x);
    sync();
    let first_call = t0.elapsed().as_secs_f64();
    let finite = out.to_kind(Kind::Float).isfinite().all().int64_value(&[]) == 1;
    if !finite {
        return Ok(Message::AccuracyFail {
            message: "the model's output contains NaN or Inf".into(),
            accuracy: serde_json::json!({"nonfinite": true}),
            diagnostics: Default::default(),
        });
    }
    // The same digest as the python worker's: equal built-in models give
    // equal digests in both backends.
    let wide = out.to_kind(Kind::Double);
    let digest = serde_json::json!({
        "sum": wide.sum(Kind::Double).double_value(&[]),
        "abs_sum": wide.abs().sum(Kind::Double).double_value(&[]),
    });

    let warmup = Warmup {
        min_iters: req.warmup.min_iters,
        min_time: std::time::Duration::from_secs_f64(req.warmup.min_time),
    };
    // Blocks of calls between two synchronisations, sized so the
    // synchronisation costs at most a thousandth of a block: a sample is
    // then the calls' time, as the python worker's events measure it.
    let calibration = calibrate(
        || {
            let _ = mlp.forward(&x);
        },
        sync,
    );
    let block = calibration.block;
    let sampled = measure_loop(
        &warmup,
        req.measure.rule(),
        &mut WallClock::default(),
        &StopFlag::default(),
        || -> Result<f64, String> {
            let t = Instant::now();
            for _ in 0..block {
                let _ = mlp.forward(&x);
            }
            sync();
            Ok(t.elapsed().as_secs_f64() / block as f64)
        },
    )?
    .expect("nothing stops this process but regress killing it");
    let mut diagnostics = Map::new();
    diagnostics.insert("device".into(), device_name(device).into());
    diagnostics.insert("warmup_iters".into(), sampled.warmup_iters.into());
    diagnostics.insert("output_digest".into(), digest);
    diagnostics.insert("fresh_process".into(), true.into());
    diagnostics.insert("stop".into(), sampled.stop.as_str().into());
    diagnostics.insert("batch".into(), block.into());
    diagnostics.insert("sync_s".into(), calibration.sync_s.into());
    Ok(Message::Result(RunResult {
        samples: sampled.samples,
        first_call: Some(first_call),
        diagnostics,
        ..RunResult::default()
    }))
}
