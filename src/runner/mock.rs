//! A deterministic stand-in for a real backend, for tests and dry runs that
//! need no torch: samples come from a seeded generator, around a latency
//! derived from the case id. Its clock is virtual (the sum of the samples
//! it made up), and it stops by the same rule as every other backend.
//!
//! Knobs, all optional: `REGRESS_MOCK_SCALE` multiplies every latency (a
//! fake regression), `REGRESS_MOCK_SEED` changes the noise, and
//! `REGRESS_MOCK_DELAY_MS` makes each process take that long in wall time.
//! `REGRESS_MOCK_SCALE_FILE` names a file of the checkout measured whose
//! number multiplies every latency too, so that a commit can make the mock
//! slower as a code change would, and `regress ab` sees it on one side
//! only; with it, each checkout draws noise of its own.
//! `REGRESS_MOCK_PROCESS_CV` shifts each process as a whole by log-normal
//! noise of that relative spread: run-to-run variance.

use std::time::Duration;

use super::sampling::{Sampler, StopRule};
use super::{Backend, Environment, Outcome, ProcessSamples, RunContext, RunnerError};
use crate::spec::{Case, Pipeline, Precision};

/// Relative spread of the fake samples (1 % coefficient of variation).
const MOCK_CV: f64 = 0.01;

pub struct MockBackend {
    ctx: RunContext,
    rule: StopRule,
    scale: f64,
    seed: u64,
    delay: Duration,
    process_cv: f64,
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

impl MockBackend {
    pub fn new(pipeline: &Pipeline, ctx: RunContext) -> Self {
        let mut scale = env_f64("REGRESS_MOCK_SCALE").unwrap_or(1.0);
        let mut seed = env_f64("REGRESS_MOCK_SEED").unwrap_or(0.0) as u64;
        if let Ok(name) = std::env::var("REGRESS_MOCK_SCALE_FILE") {
            let path = ctx.workdir.join(name);
            if let Some(x) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
            {
                scale *= x;
            }
            // Base and head of an A/B are two checkouts of one case: give
            // each its own noise, as two real runs would have.
            for b in ctx.workdir.as_os_str().as_encoded_bytes() {
                seed = splitmix(&mut seed) ^ u64::from(*b);
            }
        }
        MockBackend {
            ctx,
            rule: StopRule::from(&pipeline.runner.measure),
            scale,
            seed,
            delay: Duration::from_millis(env_f64("REGRESS_MOCK_DELAY_MS").unwrap_or(0.0) as u64),
            process_cv: env_f64("REGRESS_MOCK_PROCESS_CV").unwrap_or(0.0),
        }
    }
}

/// SplitMix64: a tiny, well-mixed generator, ample for fake noise.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn uniform(state: &mut u64) -> f64 {
    (splitmix(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw (Box–Muller).
fn normal(state: &mut u64) -> f64 {
    let u1 = uniform(state).max(f64::MIN_POSITIVE);
    let u2 = uniform(state);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl Backend for MockBackend {
    fn environment(&mut self) -> Result<Environment, RunnerError> {
        Ok(Environment {
            device: Some("cpu".into()),
            ..Environment::default()
        })
    }

    fn run_process(&mut self, case: &Case, repeat: u32) -> Outcome {
        if case.precision == Some(Precision::Fp8) {
            return Outcome::Skipped(
                "fp8 needs a CUDA GPU of compute capability 8.9 or newer".into(),
            );
        }
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        while waited < self.delay {
            if self.ctx.stop.is_set() {
                return Outcome::Interrupted;
            }
            std::thread::sleep(step.min(self.delay - waited));
            waited += step;
        }
        let id = u64::from_str_radix(case.id.as_str(), 16).unwrap_or(0);
        // 1 ms to 2 ms, fixed per case.
        let base = 1e-3 * (1.0 + (id % 1000) as f64 / 1000.0) * self.scale;
        let mut state =
            id ^ self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ u64::from(repeat) << 32;
        let base = if self.process_cv > 0.0 {
            base * (self.process_cv * normal(&mut state)).exp()
        } else {
            base
        };
        let mut sampler = Sampler::new(self.rule);
        let (mut latency, mut elapsed) = (Vec::new(), Duration::ZERO);
        let stop = loop {
            let x = base * (MOCK_CV * normal(&mut state)).exp();
            latency.push(x);
            elapsed += Duration::from_secs_f64(x);
            if let Some(stop) = sampler.done(latency.len(), elapsed, || &latency) {
                break stop;
            }
        };
        let mut samples = ProcessSamples {
            latency,
            ..ProcessSamples::default()
        };
        samples
            .diagnostics
            .insert("stop".into(), stop.as_str().into());
        Outcome::Measured(samples)
    }
}
