//! Every backend stops by the one rule of `sampling`: each backend's loop
//! is driven on a synthetic clock (the mock's own virtual clock) and stops
//! on the sample the rule predicts for the same trace; the python worker's
//! `StopRule` is fed the same traces as the Rust `Sampler` and stops alike.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::protocol::MeasureSpec;
use super::sampling::tests::{rule, stop_on, trace};
use super::sampling::{measure_loop, Sampler, StepClock, Stop, StopRule, WallClock};
use super::{Backend, Outcome, RunContext, StopFlag};
use crate::spec::{Case, Pipeline};

/// Each read of the synthetic clock advances it by this much.
const TICK: Duration = Duration::from_millis(10);

/// A pipeline for `backend` with `model` and a measuring budget of at
/// least 3 iterations over 50 ms, at most 100 ms, stopping early at `target`.
fn pipeline(model: &str, backend: &str, target: f64) -> Pipeline {
    let src = format!(
        "version: 1\nname: stop\nmodel: {model}\nrunner:\n  backend: {backend}\n  processes: 1\n  warmup: {{min_iters: 1, min_time: 0s}}\n  measure: {{min_iters: 3, min_time: 50ms, max_time: 100ms}}\n"
    );
    let mut p = Pipeline::parse(&src, Path::new("stop.yaml"))
        .unwrap()
        .remove(0);
    // Set here, not in YAML: an infinite target is no valid percentage,
    // but it makes the rule stop at its first look whatever the samples.
    p.runner.measure.target_rel_iqr = target;
    p
}

fn ctx() -> RunContext {
    let dir = std::env::temp_dir();
    RunContext::new(dir.clone(), dir, StopFlag::default(), 0).unwrap()
}

/// Where the rule stops when the n-th sample is taken `n` ticks after
/// sampling began (samples with some spread, as real timings have).
fn predicted(target: f64) -> (usize, Stop) {
    let ticks: Vec<(f64, Duration)> = (1..=1000)
        .map(|n| (1e-3 * (1.0 + 0.1 * f64::from(n % 2)), TICK * n))
        .collect();
    stop_on(rule(3, 50, 100, target), &ticks).unwrap()
}

fn measured(outcome: Outcome) -> (usize, String) {
    let Outcome::Measured(s) = outcome else {
        panic!("expected samples, got {outcome:?}")
    };
    let stop = s.diagnostics["stop"].as_str().unwrap().to_string();
    (s.latency.len(), stop)
}

/// The two budgets every backend is driven through: a target no spread
/// meets (the rule runs to max_time) and one any spread meets (the rule
/// stops at the first look after the minimums).
const TARGETS: [f64; 2] = [0.0, f64::INFINITY];

fn first_case(p: &Pipeline) -> Case {
    p.cases().remove(0)
}

/// Drives a backend made by `make` (with the synthetic clock set) through
/// both budgets and checks it stops where the rule predicts.
fn stops_by_the_rule(model: &str, backend: &str, make: impl Fn(&Pipeline) -> Box<dyn Backend>) {
    for target in TARGETS {
        let p = pipeline(model, backend, target);
        let (n, stop) = measured(make(&p).run_process(&first_case(&p), 0));
        let (want, why) = predicted(target);
        assert_eq!(
            (n, stop.as_str()),
            (want, why.as_str()),
            "{backend}, target {target}"
        );
    }
}

fn synthetic() -> Box<StepClock> {
    Box::new(StepClock {
        now: Duration::ZERO,
        step: TICK,
    })
}

#[test]
fn the_command_backend_stops_by_the_rule() {
    stops_by_the_rule("{command: \"true\"}", "command", |p| {
        let mut b = super::command::CommandBackend::new(p, ctx());
        b.set_clock(synthetic());
        Box::new(b)
    });
    // The two budgets end differently: at max_time and at the first look.
    assert_eq!(predicted(0.0), (10, Stop::MaxTime));
    assert_eq!(predicted(f64::INFINITY), (5, Stop::Converged));
}

#[test]
fn the_native_workers_loop_stops_by_the_rule() {
    // The regress-native worker times its iterations with `measure_loop`;
    // driven here with a stand-in iteration on the synthetic clock.
    for target in TARGETS {
        let p = pipeline("{builtin: mlp}", "native", target);
        let mut clock = StepClock {
            now: Duration::ZERO,
            step: TICK,
        };
        let mut i = 0u32;
        let sampled = measure_loop(
            &p.runner.warmup,
            StopRule::from(&p.runner.measure),
            &mut clock,
            &StopFlag::default(),
            || -> Result<f64, ()> {
                i += 1;
                Ok(1e-3 * (1.0 + 0.1 * f64::from(i % 2)))
            },
        )
        .unwrap()
        .unwrap();
        let (want, why) = predicted(target);
        assert_eq!(
            (sampled.samples.len(), sampled.stop),
            (want, why),
            "target {target}"
        );
        assert_eq!(sampled.warmup_iters, 1);
    }
    // A stop asked for ends the loop without samples.
    let stop = StopFlag::default();
    stop.stop();
    let p = pipeline("{builtin: mlp}", "native", 0.0);
    let none = measure_loop(
        &p.runner.warmup,
        StopRule::from(&p.runner.measure),
        &mut WallClock::default(),
        &stop,
        || -> Result<f64, ()> { Ok(1.0) },
    )
    .unwrap();
    assert!(none.is_none());
}

#[test]
fn the_mock_backend_stops_by_the_rule_on_its_virtual_clock() {
    for target in TARGETS {
        let p = pipeline("{builtin: mlp}", "mock", target);
        let mut backend = super::mock::MockBackend::new(&p, ctx());
        let Outcome::Measured(s) = backend.run_process(&first_case(&p), 0) else {
            panic!("the mock measures fp32")
        };
        // Its clock is the sum of its own samples.
        let mut t = Duration::ZERO;
        let ticks: Vec<(f64, Duration)> = s
            .latency
            .iter()
            .map(|&x| {
                t += Duration::from_secs_f64(x);
                (x, t)
            })
            .collect();
        let (want, why) = stop_on(rule(3, 50, 100, target), &ticks).unwrap();
        assert_eq!(s.latency.len(), want, "target {target}");
        assert_eq!(s.diagnostics["stop"], why.as_str());
    }
}

/// Runs the python worker's `StopRule` over traces: where each stops.
fn python_stops(cases: &[(StopRule, Vec<(f64, Duration)>)]) -> Option<Vec<(usize, String)>> {
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import regress_timing as w
out = []
for case in json.load(sys.stdin):
    rule = w.StopRule(case["rule"])
    samples, stop = [], None
    for x, elapsed in case["trace"]:
        samples.append(x)
        stop = rule.done(len(samples), elapsed, lambda: samples)
        if stop:
            break
    out.append([len(samples), stop])
print(json.dumps(out))
"#;
    let input: Vec<_> = cases
        .iter()
        .map(|(r, t)| {
            json!({
                "rule": MeasureSpec::of(r),
                "trace": t.iter().map(|(x, e)| json!([x, e.as_secs_f64()])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let python_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
    let mut child = match Command::new("python3")
        .args(["-c", script, python_dir])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("skipped: no python3 to run the worker's stop rule ({e})");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the worker's rule failed");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn the_python_worker_stops_where_the_rust_rule_stops() {
    let mut cases = Vec::new();
    for (cv, seed) in [(0.001, 1), (0.02, 2), (0.05, 3), (0.5, 4)] {
        for r in [
            rule(30, 100, 2_000, 0.02),
            rule(10, 10, 300, 0.01),
            rule(200, 1, 10_000, 0.05),
            rule(5, 0, 50, 0.0),
        ] {
            cases.push((r, trace(20_000, cv, seed)));
        }
    }
    // Slow samples: max_time before the minimums, two samples kept.
    cases.push((
        rule(30, 5_000, 500, 0.02),
        vec![(1.0, Duration::from_secs(1)), (1.0, Duration::from_secs(2))],
    ));
    let Some(python) = python_stops(&cases) else {
        return;
    };
    for ((r, t), (n, stop)) in cases.iter().zip(python) {
        let (want, why) = stop_on(*r, t).unwrap();
        assert_eq!((n, stop.as_str()), (want, why.as_str()), "{r:?}");
    }
    // The traces do stop both ways.
    let whys: Vec<Stop> = cases
        .iter()
        .map(|(r, t)| stop_on(*r, t).unwrap().1)
        .collect();
    assert!(whys.contains(&Stop::Converged) && whys.contains(&Stop::MaxTime));
}

#[test]
fn a_sampler_never_looks_before_the_minimums() {
    let mut sampler = Sampler::new(rule(3, 50, 100, f64::INFINITY));
    let samples = [1.0; 3];
    for n in 1..=3 {
        let looked = std::cell::Cell::new(false);
        let stop = sampler.done(n, TICK * n as u32, || {
            looked.set(true);
            &samples[..n]
        });
        assert_eq!(stop, None);
        assert!(!looked.get(), "looked at {n} samples before 50 ms");
    }
}

#[test]
fn the_worker_stops_at_max_time_when_every_iteration_recompiles() {
    // A fake phase whose every call compiles a new graph: no sample is ever
    // kept, so the stop rule alone would never stop.
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import regress_timing as w

class Watch:
    n = 0
    def graphs(self):
        return self.n

watch = Watch()

class Phase:
    prepare = None
    def body(self):
        watch.n += 1

budget = json.loads(sys.argv[2])
samples, dropped, batch, stop = w.measure(Phase(), w.HostClock("cpu"), budget, None, watch)
print(json.dumps([len(samples), dropped > 0, stop]))
"#;
    let spec = serde_json::to_string(&MeasureSpec::of(&rule(3, 10, 50, 0.02))).unwrap();
    let python_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
    let out = match Command::new("python3")
        .args(["-c", script, python_dir, &spec])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: no python3 ({e})");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, json!([0, true, "recompiling"]));
}
