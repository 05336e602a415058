//! Any command as a benchmark: the case's parameters are substituted into the
//! command line, and each iteration is the wall time of one run of it. This
//! is how an existing benchmark script joins a pipeline unchanged.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{describe_exit, Ended, Supervised};
use super::{
    scrubbed_env, Backend, Environment, FailureKind, Outcome, ProcessSamples, RunContext,
    RunnerError,
};
use crate::spec::{case_command, Case, Measure, Model, Pipeline, Warmup};

pub struct CommandBackend {
    template: String,
    ctx: RunContext,
    warmup: Warmup,
    measure: Measure,
    timeout: Duration,
    /// The workers' environment, scrubbed of secrets once, not per spawn.
    env: Vec<(OsString, OsString)>,
}

impl CommandBackend {
    pub fn new(pipeline: &Pipeline, ctx: RunContext) -> Self {
        let Model::Command { template } = &pipeline.model else {
            unreachable!("spec validation pairs the command backend with command models")
        };
        CommandBackend {
            template: template.clone(),
            ctx,
            warmup: pipeline.runner.warmup.clone(),
            measure: pipeline.runner.measure.clone(),
            timeout: pipeline.runner.timeout,
            env: scrubbed_env(&pipeline.runner.env_passthrough),
        }
    }

    fn shell() -> PathBuf {
        PathBuf::from("/bin/sh")
    }

    /// Runs the command once; its wall time in seconds, or why it gave none.
    fn once(&self, line: &str) -> Result<f64, Box<Outcome>> {
        let mut cmd = Command::new(Self::shell());
        cmd.arg("-c")
            .arg(line)
            .current_dir(&self.ctx.workdir)
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut proc = Supervised::spawn(cmd).map_err(|e| {
            Box::new(Outcome::Failed {
                kind: FailureKind::Failed,
                reason: format!("cannot start /bin/sh: {e}"),
            })
        })?;
        let ended = proc.wait(proc.started + self.timeout, &self.ctx.stop);
        let elapsed = proc.started.elapsed().as_secs_f64();
        match ended {
            Ok(Ended::Exited(status)) if status.success() => Ok(elapsed),
            Ok(Ended::Exited(status)) => Err(Box::new(Outcome::Failed {
                kind: FailureKind::Failed,
                reason: format!(
                    "`{line}` {}; stderr:\n{}",
                    describe_exit(status),
                    proc.stderr_tail()
                ),
            })),
            Ok(Ended::TimedOut) => Err(Box::new(Outcome::Failed {
                kind: FailureKind::Timeout,
                reason: format!(
                    "`{line}` ran past the {:?} timeout (runner.timeout)",
                    self.timeout
                ),
            })),
            Ok(Ended::Stopped) => Err(Box::new(Outcome::Interrupted)),
            Err(e) => Err(Box::new(Outcome::Failed {
                kind: FailureKind::Failed,
                reason: format!("waiting for `{line}` failed: {e}"),
            })),
        }
    }
}

impl Backend for CommandBackend {
    fn environment(&mut self) -> Result<Environment, RunnerError> {
        Ok(Environment::default())
    }

    fn run_process(&mut self, case: &Case, _repeat: u32) -> Outcome {
        let line = match case_command(&self.template, case) {
            Ok(line) => line,
            Err(reason) => {
                return Outcome::Failed {
                    kind: FailureKind::Failed,
                    reason,
                }
            }
        };
        let run = || -> Result<Vec<f64>, Box<Outcome>> {
            let (mut n, started) = (0, Instant::now());
            while n < self.warmup.min_iters || started.elapsed() < self.warmup.min_time {
                self.once(&line)?;
                n += 1;
            }
            let (mut samples, started) = (Vec::new(), Instant::now());
            loop {
                samples.push(self.once(&line)?);
                let elapsed = started.elapsed();
                let enough = samples.len() as u64 >= self.measure.min_iters
                    && elapsed >= self.measure.min_time;
                if enough || (elapsed >= self.measure.max_time && samples.len() >= 2) {
                    return Ok(samples);
                }
            }
        };
        match run() {
            Ok(latency) => {
                let mut diagnostics = serde_json::Map::new();
                diagnostics.insert("command".into(), line.clone().into());
                Outcome::Measured(ProcessSamples {
                    latency,
                    diagnostics,
                    ..ProcessSamples::default()
                })
            }
            Err(o) => *o,
        }
    }
}
