//! Any command as a benchmark: the case's parameters are substituted into the
//! command line, and each iteration is the wall time of one run of it. This
//! is how an existing benchmark script joins a pipeline unchanged. A script
//! that measures itself says so with `model.output: json` and prints its
//! latency and throughput as JSON on its last line.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{describe_exit, Ended, Supervised};
use super::sampling::{warmed_up, Clock, Sampler, StopRule, WallClock};
use super::{
    scrubbed_env, Backend, Environment, FailureKind, Outcome, ProcessSamples, RunContext,
    RunnerError,
};
use crate::metric;
use crate::spec::{case_command, Case, CommandOutput, Model, Pipeline, Warmup};

pub struct CommandBackend {
    template: String,
    output: CommandOutput,
    ctx: RunContext,
    warmup: Warmup,
    rule: StopRule,
    timeout: Duration,
    /// The workers' environment, scrubbed of secrets once, not per spawn.
    env: Vec<(OsString, OsString)>,
    /// Where warm-up and the stop rule read the time (a test's synthetic clock).
    clock: Box<dyn Clock>,
}

impl CommandBackend {
    /// Reads the time from `clock` from now on: tests drive the loop on a
    /// synthetic clock.
    #[cfg(test)]
    pub(crate) fn set_clock(&mut self, clock: Box<dyn Clock>) {
        self.clock = clock;
    }

    pub fn new(pipeline: &Pipeline, ctx: RunContext) -> Self {
        let Model::Command { template, output } = &pipeline.model else {
            unreachable!("spec validation pairs the command backend with command models")
        };
        CommandBackend {
            template: template.clone(),
            output: *output,
            ctx,
            warmup: pipeline.runner.warmup.clone(),
            rule: StopRule::from(&pipeline.runner.measure),
            timeout: pipeline.runner.timeout,
            env: {
                let mut env = scrubbed_env(&pipeline.runner.env_passthrough);
                env.extend(super::worker::thread_env(pipeline.runner.threads));
                env
            },
            clock: Box::new(WallClock::default()),
        }
    }

    fn shell() -> PathBuf {
        PathBuf::from("/bin/sh")
    }

    /// Runs the command once: its wall time in seconds and the metrics it
    /// reported, or why it gave none.
    fn once(&self, line: &str) -> Result<Run, Box<Outcome>> {
        let failed = |reason: String| {
            Box::new(Outcome::Failed {
                kind: FailureKind::Failed,
                reason,
                diagnostics: Default::default(),
            })
        };
        let mut cmd = Command::new(Self::shell());
        cmd.arg("-c")
            .arg(line)
            .current_dir(&self.ctx.workdir)
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null());
        // A reporting command's stdout goes to an anonymous file, read once
        // the command ended, so a chatty command never blocks on a full pipe.
        let mut stdout = match self.output {
            CommandOutput::Time => {
                cmd.stdout(Stdio::null());
                None
            }
            CommandOutput::Json => {
                let file = tempfile::tempfile()
                    .and_then(|f| Ok((f.try_clone()?, f)))
                    .map_err(|e| failed(format!("cannot create a file for stdout: {e}")))?;
                cmd.stdout(Stdio::from(file.0));
                Some(file.1)
            }
        };
        let mut proc =
            Supervised::spawn(cmd).map_err(|e| failed(format!("cannot start /bin/sh: {e}")))?;
        let ended = proc.wait(proc.started + self.timeout, &self.ctx.stop);
        let elapsed = proc.started.elapsed().as_secs_f64();
        match ended {
            Ok(Ended::Exited(status)) if status.success() => {
                let reported = match stdout.as_mut() {
                    None => Vec::new(),
                    Some(file) => {
                        let text = last_output(file).map_err(|e| {
                            failed(format!("cannot read the stdout of `{line}`: {e}"))
                        })?;
                        reported_metrics(&text).map_err(|e| failed(format!("`{line}`: {e}")))?
                    }
                };
                Ok(Run {
                    wall: elapsed,
                    reported,
                })
            }
            Ok(Ended::Exited(status)) => Err(Box::new(Outcome::Failed {
                kind: FailureKind::Failed,
                reason: format!(
                    "`{line}` {}; stderr:\n{}",
                    describe_exit(status),
                    proc.stderr_tail()
                ),
                diagnostics: Default::default(),
            })),
            Ok(Ended::TimedOut) => Err(Box::new(Outcome::Failed {
                kind: FailureKind::Timeout,
                reason: format!(
                    "`{line}` ran past the {:?} timeout (runner.timeout)",
                    self.timeout
                ),
                diagnostics: Default::default(),
            })),
            Ok(Ended::Stopped) => Err(Box::new(Outcome::Interrupted)),
            Err(e) => Err(Box::new(Outcome::Failed {
                kind: FailureKind::Failed,
                reason: format!("waiting for `{line}` failed: {e}"),
                diagnostics: Default::default(),
            })),
        }
    }
}

/// One run of the command.
struct Run {
    /// Wall time, seconds.
    wall: f64,
    /// What the command reported of itself, if anything.
    reported: Vec<(&'static str, f64)>,
}

impl Run {
    /// The latency the command reported of itself, which replaces its wall time.
    fn reported_latency(&self) -> Option<f64> {
        self.reported
            .iter()
            .find(|(name, _)| *name == metric::LATENCY)
            .map(|(_, v)| *v)
    }
}

/// Bytes of a command's stdout read for its report: the last line is all
/// that counts, and a benchmark's chatter before it can be long.
const STDOUT_TAIL: u64 = 64 * 1024;

fn last_output(file: &mut File) -> std::io::Result<String> {
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(len.saturating_sub(STDOUT_TAIL)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Metrics a command may report of itself (units in the metric table).
const REPORTABLE: [&str; 2] = [metric::LATENCY, metric::THROUGHPUT];

/// The metrics a command with `output: json` reported on the last
/// non-empty line of its stdout, a JSON object such as
/// `{"latency": 0.0123, "throughput": 812.5}`: latency in seconds per
/// iteration (it replaces the wall time), throughput in items per second.
fn reported_metrics(stdout: &str) -> Result<Vec<(&'static str, f64)>, String> {
    let valid = "with `model.output: json` a command prints `{\"latency\": <seconds per iteration>, \"throughput\": <items per second>}` (either or both) as its last line";
    let Some(last) = stdout.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        return Err(format!("it printed nothing; {valid}"));
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(last).map_err(|e| {
            format!("its last line of output `{last}` is not a JSON object ({e}); {valid}")
        })?;
    object
        .iter()
        .map(|(key, value)| {
            let name = REPORTABLE
                .into_iter()
                .find(|name| name == key)
                .ok_or_else(|| format!("it reported an unknown metric `{key}`; {valid}"))?;
            match value.as_f64() {
                Some(v) if v.is_finite() && v > 0.0 => Ok((name, v)),
                _ => Err(format!(
                    "it reported {key} = {value}; metrics must be positive numbers"
                )),
            }
        })
        .collect()
}

/// The samples of one process from its runs: reported latency replaces
/// the wall time; a metric must be reported by every run or by none.
fn samples_of(runs: Vec<Run>) -> Result<ProcessSamples, String> {
    let mut latency: Vec<f64> = runs.iter().map(|r| r.wall).collect();
    let mut extra = Vec::new();
    for name in REPORTABLE {
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.reported.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
            .collect();
        if values.is_empty() {
            continue;
        }
        if values.len() != runs.len() {
            return Err(format!(
                "{name} was reported by {} of {} runs; report it on every run or on none",
                values.len(),
                runs.len()
            ));
        }
        if name == metric::LATENCY {
            latency = values;
        } else {
            extra.push((name, values));
        }
    }
    Ok(ProcessSamples {
        latency,
        extra,
        ..ProcessSamples::default()
    })
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
                    diagnostics: Default::default(),
                }
            }
        };
        match self.sample(&line) {
            Ok((runs, stop)) => match samples_of(runs) {
                Ok(mut samples) => {
                    samples
                        .diagnostics
                        .insert("command".into(), line.clone().into());
                    samples
                        .diagnostics
                        .insert("stop".into(), stop.as_str().into());
                    Outcome::Measured(samples)
                }
                Err(reason) => Outcome::Failed {
                    kind: FailureKind::Failed,
                    reason: format!("`{line}`: {reason}"),
                    diagnostics: Default::default(),
                },
            },
            Err(o) => *o,
        }
    }
}

impl CommandBackend {
    /// Warm-up, then runs of the command until the stop rule says enough.
    fn sample(&mut self, line: &str) -> Result<(Vec<Run>, super::sampling::Stop), Box<Outcome>> {
        let started = self.clock.now();
        let mut n = 0;
        while !warmed_up(&self.warmup, n, self.clock.now() - started) {
            self.once(line)?;
            n += 1;
        }
        let mut sampler = Sampler::new(self.rule);
        let (mut runs, mut walls) = (Vec::new(), Vec::new());
        let started = self.clock.now();
        loop {
            let run = self.once(line)?;
            walls.push(run.reported_latency().unwrap_or(run.wall));
            runs.push(run);
            let elapsed = self.clock.now() - started;
            if let Some(stop) = sampler.done(walls.len(), elapsed, || &walls) {
                return Ok((runs, stop));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_json_line_is_the_report() {
        let out = "warming up\n{\"throughput\": 812.5, \"latency\": 0.0123}\n\n";
        let mut reported = reported_metrics(out).unwrap();
        reported.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(
            reported,
            vec![(metric::LATENCY, 0.0123), (metric::THROUGHPUT, 812.5)]
        );
        assert!(reported_metrics("{}").unwrap().is_empty());
        // The last line must be the report; JSON earlier does not count.
        let late = reported_metrics("{\"latency\": 1}\nbye\n").unwrap_err();
        assert!(late.contains("`bye` is not a JSON object"), "{late}");
        let silent = reported_metrics("").unwrap_err();
        assert!(silent.contains("printed nothing"), "{silent}");
    }

    #[test]
    fn bad_reports_say_what_is_valid() {
        let unknown = reported_metrics("{\"tokens\": 5}").unwrap_err();
        assert!(unknown.contains("unknown metric `tokens`"), "{unknown}");
        assert!(unknown.contains("\"throughput\""), "{unknown}");
        let negative = reported_metrics("{\"latency\": -1}").unwrap_err();
        assert!(negative.contains("latency = -1"), "{negative}");
        let broken = reported_metrics("{\"latency\": ").unwrap_err();
        assert!(broken.contains("not a JSON object"), "{broken}");
    }

    #[test]
    fn reported_latency_replaces_wall_time_and_must_be_reported_by_every_run() {
        let run = |wall, reported| Run { wall, reported };
        let s = samples_of(vec![
            run(
                1.0,
                vec![(metric::LATENCY, 0.1), (metric::THROUGHPUT, 10.0)],
            ),
            run(2.0, vec![(metric::LATENCY, 0.2), (metric::THROUGHPUT, 5.0)]),
        ])
        .unwrap();
        assert_eq!(s.latency, vec![0.1, 0.2]);
        assert_eq!(s.extra, vec![(metric::THROUGHPUT, vec![10.0, 5.0])]);
        let wall = samples_of(vec![run(1.0, vec![]), run(2.0, vec![])]).unwrap();
        assert_eq!(wall.latency, vec![1.0, 2.0]);
        let uneven = samples_of(vec![
            run(1.0, vec![(metric::THROUGHPUT, 1.0)]),
            run(2.0, vec![]),
        ])
        .unwrap_err();
        assert!(uneven.contains("1 of 2 runs"), "{uneven}");
    }
}
