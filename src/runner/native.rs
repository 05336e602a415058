//! The native backend: the built-in zoo written with `tch`, run in this
//! process, with no Python on the hot path. Weights are drawn in the same
//! order from the same libtorch generator as the Python zoo, so both backends
//! compute the same function and their difference is Python's overhead.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::sampling::{warmed_up, Clock, Sampler, StopRule, WallClock};
use super::{Backend, Environment, FailureKind, Outcome, ProcessSamples, RunContext, RunnerError};
use crate::spec::{
    BuiltinModel, Case, DeviceChoice, Model, ParamValue, Pipeline, Precision, Warmup,
};

/// The libtorch version this binary was linked against (from build.rs).
const LIBTORCH_VERSION: &str = env!("REGRESS_LIBTORCH_VERSION");

pub struct NativeBackend {
    ctx: RunContext,
    model: BuiltinModel,
    args: Vec<(String, ParamValue)>,
    device_choice: DeviceChoice,
    warmup: Warmup,
    rule: StopRule,
    /// Where warm-up and the stop rule read the time (a test's synthetic clock).
    clock: Box<dyn Clock>,
}

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

impl NativeBackend {
    /// Reads the time from `clock` from now on: tests drive the loop on a
    /// synthetic clock.
    #[cfg(test)]
    pub(crate) fn set_clock(&mut self, clock: Box<dyn Clock>) {
        self.clock = clock;
    }

    pub fn new(pipeline: &Pipeline, ctx: RunContext) -> Self {
        let Model::Builtin { name, args } = &pipeline.model else {
            unreachable!("spec validation pairs the native backend with built-in models")
        };
        NativeBackend {
            ctx,
            model: *name,
            args: args.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            device_choice: pipeline.runner.device,
            warmup: pipeline.runner.warmup.clone(),
            rule: StopRule::from(&pipeline.runner.measure),
            clock: Box::new(WallClock::default()),
        }
    }

    fn device(&self) -> Option<Device> {
        match self.device_choice {
            DeviceChoice::Auto => Some(Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Some(Device::Cuda(0)),
            DeviceChoice::Cpu => Some(Device::Cpu),
            _ => None,
        }
    }

    fn param(&self, case: &Case, name: &str, default: i64) -> Result<i64, String> {
        let value = case
            .params
            .get(name)
            .or_else(|| self.args.iter().find(|(k, _)| k == name).map(|(_, v)| v));
        match value {
            None => Ok(default),
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("parameter {name} must be a positive integer, got {v}")),
        }
    }

    fn measure_case(
        &mut self,
        case: &Case,
        device: Device,
        kind: Kind,
    ) -> Result<Option<ProcessSamples>, String> {
        let batch = self.param(case, "batch", 8)?;
        let dim = self.param(case, "dim", 256)?;
        let hidden = self.param(case, "hidden", 4 * dim)?;
        let _guard = tch::no_grad_guard();
        tch::manual_seed(self.ctx.seed as i64);
        let cpu = (Kind::Float, Device::Cpu);
        let w1 = Tensor::randn([hidden, dim], cpu) * (dim as f64).powf(-0.5);
        let b1 = Tensor::zeros([hidden], cpu);
        let w2 = Tensor::randn([dim, hidden], cpu) * (hidden as f64).powf(-0.5);
        let b2 = Tensor::zeros([dim], cpu);
        let shape: Vec<i64> = match case.params.get("seq_len").or_else(|| {
            self.args
                .iter()
                .find(|(k, _)| k == "seq_len")
                .map(|(_, v)| v)
        }) {
            Some(_) => vec![batch, self.param(case, "seq_len", 1)?, dim],
            None => vec![batch, dim],
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
            return Err("the model's output contains NaN or Inf".into());
        }
        // The same digest as the python worker's: equal built-in models give
        // equal digests in both backends.
        let wide = out.to_kind(Kind::Double);
        let digest = serde_json::json!({
            "sum": wide.sum(Kind::Double).double_value(&[]),
            "abs_sum": wide.abs().sum(Kind::Double).double_value(&[]),
        });

        let (mut n, started) = (0u64, self.clock.now());
        while !warmed_up(&self.warmup, n, self.clock.now() - started) {
            if self.ctx.stop.is_set() {
                return Ok(None);
            }
            let _ = mlp.forward(&x);
            n += 1;
        }
        sync();
        let mut sampler = Sampler::new(self.rule);
        let mut samples = Vec::new();
        let started = self.clock.now();
        let stop = loop {
            if self.ctx.stop.is_set() {
                return Ok(None);
            }
            let t = Instant::now();
            let _ = mlp.forward(&x);
            sync();
            samples.push(t.elapsed().as_secs_f64());
            let elapsed = self.clock.now() - started;
            if let Some(stop) = sampler.done(samples.len(), elapsed, || &samples) {
                break stop;
            }
        };
        let mut diagnostics = serde_json::Map::new();
        diagnostics.insert("device".into(), format!("{device:?}").to_lowercase().into());
        diagnostics.insert("first_call".into(), first_call.into());
        diagnostics.insert("warmup_iters".into(), n.into());
        diagnostics.insert("output_digest".into(), digest);
        diagnostics.insert("fresh_process".into(), false.into());
        diagnostics.insert("stop".into(), stop.as_str().into());
        Ok(Some(ProcessSamples {
            latency: samples,
            diagnostics,
            ..ProcessSamples::default()
        }))
    }
}

impl Backend for NativeBackend {
    fn environment(&mut self) -> Result<Environment, RunnerError> {
        let device = self.device().map(|d| match d {
            Device::Cuda(_) => "cuda".to_string(),
            _ => "cpu".to_string(),
        });
        Ok(Environment {
            torch: Some(LIBTORCH_VERSION.to_string()),
            device,
            gpu_count: tch::Cuda::device_count().max(0) as u32,
            threads: Some(tch::get_num_threads().max(0) as u32),
            ..Environment::default()
        })
    }

    fn run_process(&mut self, case: &Case, _repeat: u32) -> Outcome {
        let Some(device) = self.device() else {
            return Outcome::Skipped(format!(
                "device `{}` is not available to the native backend on this machine",
                self.device_choice
            ));
        };
        let kind = match case.precision.unwrap_or(Precision::Fp32) {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
            Precision::Fp8 => {
                return Outcome::Skipped(
                    "fp8 is not supported by the native backend; use the python backend".into(),
                )
            }
        };
        debug_assert_eq!(
            self.model,
            BuiltinModel::Mlp,
            "spec validation allows only mlp here"
        );
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.measure_case(case, device, kind)
        }));
        match result {
            Ok(Ok(Some(samples))) => Outcome::Measured(samples),
            Ok(Ok(None)) => Outcome::Interrupted,
            Ok(Err(reason)) => Outcome::Failed {
                kind: FailureKind::Failed,
                reason,
            },
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "libtorch raised an error".into());
                let kind = if message.contains("out of memory") {
                    FailureKind::Oom
                } else {
                    FailureKind::Failed
                };
                Outcome::Failed {
                    kind,
                    reason: message,
                }
            }
        }
    }
}
