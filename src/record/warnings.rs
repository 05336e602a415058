//! What a case's numbers cannot say by themselves: compile trouble (graph
//! breaks, recompiles, the recompile limit), read from its record so that
//! `run` shows it beside an `ok` instead of leaving it in the JSON.

use serde_json::Value;

use super::{metric, CaseRecord};

/// The diagnostics key of a process that `max_time` stopped before it had
/// `min_iters` samples: `{"samples", "min_iters", "max_time"}`.
pub const CUT_SHORT: &str = "cut_short";

/// The diagnostics key of the machine's load around a process:
/// `{"before": Load, "after": Load, "cores": n}` (`runner::Load`).
pub const LOAD: &str = "load";

/// The diagnostics key of the GPU's state around a process (python worker
/// on CUDA): `{"before", "during", "after"}`, where `during` summarises the
/// readings taken while the case was timed (`throttle_reasons`,
/// `throttled_share`, `sm_clock_mhz_min`, `temperature_c_max`).
pub const GPU_STATE: &str = "gpu_state";

/// The diagnostics key of a cudagraph mode's CUDA graphs (python worker):
/// `{"recordings", "skips", "skip_reasons", "engaged"}`.
pub const CUDAGRAPHS: &str = "cudagraphs";

/// Share of the cores that other runnable processes must fill, before or
/// after a process, for the machine to count as busy: then the case's
/// threads and theirs take turns on the cores, which gives stable, wrong
/// numbers (a Llama forward measured 168 ms beside 4 ms on a loaded
/// machine with torch's default threads).
const BUSY_SHARE: f64 = 0.5;

/// Ratio of the slowest process's median latency to the fastest one's
/// beyond which the processes of a case disagree: on a quiet machine they
/// differ by a few percent; 50 % means the machine changed under the run
/// (load, clocks, threads fighting over cores).
const DISAGREE_RATIO: f64 = 1.5;

/// Characters of a reason quoted in a warning; the record has all of it.
const QUOTED_CHARS: usize = 160;

/// Seconds in the unit that suits them (`report` formats tables; this is
/// for one-line warnings of the record itself).
fn seconds(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// `text` on one line, runs of blanks as one, cut to `QUOTED_CHARS` with
/// an ellipsis when cut.
fn quoted(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = text.chars().take(QUOTED_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

impl CaseRecord {
    /// Warnings about how the case ran, one line each, most serious first.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let processes = self.diagnostics.maps();
        let compile: Vec<&serde_json::Map<String, Value>> = processes
            .iter()
            .filter_map(|p| p.get("compile").and_then(Value::as_object))
            .collect();
        let first_str = |key: &str| {
            compile
                .iter()
                .filter_map(|c| c.get(key).and_then(Value::as_array))
                .flatten()
                .find_map(Value::as_str)
                .map(quoted)
        };
        // The recompile limit: torch.compile gave up and ran the rest eager.
        let hit = compile
            .iter()
            .filter_map(|c| c.get("recompile_limit_hits").and_then(Value::as_array))
            .flatten()
            .find_map(Value::as_object);
        if let Some(hit) = hit {
            let text = |k: &str| hit.get(k).and_then(Value::as_str).map(quoted);
            let limit = hit
                .get("limit")
                .and_then(Value::as_u64)
                .map_or(String::new(), |l| format!(" ({l})"));
            out.push(format!(
                "hit torch.compile's recompile limit{limit}{} and fell back to eager for it: the numbers are not all compiled code{}",
                text("function").map_or(String::new(), |f| format!(" in {f}")),
                text("last_reason").map_or(String::new(), |r| format!("; last reason: {r}"))
            ));
        }
        if let Some(caution) = self.cut_short() {
            out.push(format!(
                "{caution}: the numbers rest on fewer samples than asked; raise measure.max_time or lower measure.min_iters"
            ));
        }
        out.extend(self.disagreement());
        out.extend(self.busy());
        out.extend(self.throttled());
        out.extend(self.without_cuda_graphs());
        let most = |name: &str| {
            self.metrics
                .get(name)
                .map(|m| m.processes.iter().map(|p| p.max).fold(0.0, f64::max))
                .unwrap_or(0.0)
        };
        let recompiles = most(metric::RECOMPILES);
        if recompiles > 0.0 && hit.is_none() {
            out.push(format!(
                "{recompiles} recompile(s){}",
                first_str("recompile_reasons").map_or(String::new(), |r| format!(": {r}"))
            ));
        }
        let breaks = most(metric::GRAPH_BREAKS);
        if breaks > 0.0 {
            out.push(format!(
                "{breaks} graph break(s){}",
                first_str("graph_break_reasons").map_or(String::new(), |r| format!(": {r}"))
            ));
        }
        out
    }

    /// What a comparison should say about how this case was sampled, if
    /// anything: processes cut short of `min_iters` by `max_time`, a busy
    /// machine, processes that disagree.
    pub fn cautions(&self) -> Vec<String> {
        [
            self.cut_short(),
            self.busy(),
            self.disagreement(),
            self.throttled(),
            self.without_cuda_graphs(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// `the machine was busy during 2 of 3 processes (up to 5 other
    /// runnable processes on 2 cores, load 7.1)`, when it was.
    fn busy(&self) -> Option<String> {
        let processes = self.diagnostics.maps();
        let (mut busy, mut most, mut load1, mut cores) = (0, 0u64, 0f64, 0u64);
        for p in &processes {
            let Some(load) = p.get(LOAD) else { continue };
            let n = load["cores"].as_u64().unwrap_or(1).max(1);
            let others = ["before", "after"]
                .iter()
                .filter_map(|k| load[k]["runnable"].as_u64())
                .max()
                .unwrap_or(0);
            // With the case's own thread count known, busy means its
            // threads and the others do not fit on the cores together; a
            // one-thread case beside one other process on two cores has a
            // core to itself.
            let own = p
                .get("settings")
                .and_then(|s| s["threads"].as_u64())
                .filter(|t| *t > 0);
            let crowded = match own {
                Some(threads) => others + threads > n,
                None => others as f64 >= (n as f64 * BUSY_SHARE).ceil(),
            };
            if crowded {
                busy += 1;
                most = most.max(others);
                cores = n;
                load1 = ["before", "after"]
                    .iter()
                    .filter_map(|k| load[k]["load1"].as_f64())
                    .fold(load1, f64::max);
            }
        }
        (busy > 0).then(|| {
            format!(
                "the machine was busy during {busy} of {} process(es) (up to {most} other runnable process(es) on {cores} core(s), load {load1:.1}): threads fighting over cores give stable, wrong numbers; free the machine or set runner.threads",
                processes.len()
            )
        })
    }

    /// `the GPU throttled during 1 of 3 process(es) (sw_power_cap, for 40 %
    /// of the readings; SM clock down to 1410 MHz, up to 83 °C)`, when the
    /// readings taken while the case was timed name a throttle reason.
    fn throttled(&self) -> Option<String> {
        let processes = self.diagnostics.maps();
        let (mut n, mut share, mut clock, mut temp) = (0, 0f64, f64::INFINITY, f64::NAN);
        let mut reasons: Vec<String> = Vec::new();
        for p in &processes {
            let Some(during) = p.get(GPU_STATE).and_then(|g| g.get("during")) else {
                continue;
            };
            let named: Vec<&str> = during["throttle_reasons"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if named.is_empty() {
                continue;
            }
            n += 1;
            for r in named {
                if !reasons.iter().any(|x| x == r) {
                    reasons.push(r.to_string());
                }
            }
            share = share.max(during["throttled_share"].as_f64().unwrap_or(0.0));
            clock = clock.min(during["sm_clock_mhz_min"].as_f64().unwrap_or(f64::INFINITY));
            temp = temp.max(during["temperature_c_max"].as_f64().unwrap_or(f64::NAN));
        }
        (n > 0).then(|| {
            let clock = if clock.is_finite() {
                format!("; SM clock down to {clock:.0} MHz")
            } else {
                String::new()
            };
            let temp = if temp.is_finite() {
                format!(", up to {temp:.0} °C")
            } else {
                String::new()
            };
            format!(
                "the GPU throttled during {n} of {} process(es) ({}, for up to {:.0} % of the readings{clock}{temp}): its numbers are slower than the GPU's best; check cooling and the power limit",
                processes.len(),
                reasons.join(", "),
                share * 100.0
            )
        })
    }

    /// `reduce-overhead ran without CUDA graphs in 2 of 3 process(es)
    /// (skipping cudagraphs due to …)`, when a cudagraph mode on a GPU fell
    /// back to plain kernels: its numbers are not what the mode promises.
    /// On the CPU there are no CUDA graphs to expect, and nothing is said.
    fn without_cuda_graphs(&self) -> Option<String> {
        let processes = self.diagnostics.maps();
        let fell_back: Vec<&Value> = processes
            .iter()
            .filter(|p| p.get("device").and_then(Value::as_str) == Some("cuda"))
            .filter_map(|p| p.get(CUDAGRAPHS))
            .filter(|c| c["engaged"] == Value::Bool(false))
            .collect();
        let first = fell_back.first()?;
        let reason = first["skip_reasons"]
            .as_array()
            .and_then(|r| r.iter().find_map(Value::as_str))
            .map(quoted)
            .unwrap_or_else(|| {
                if first["recordings"].as_u64() == Some(0) {
                    "no graph was recorded".into()
                } else {
                    format!("{} graph(s) skipped", first["skips"])
                }
            });
        Some(format!(
            "{} ran without CUDA graphs in {} of {} process(es) ({reason}): its numbers are plain kernels'",
            self.compile.map_or("this mode".into(), |m| m.to_string()),
            fell_back.len(),
            processes.len()
        ))
    }

    /// `processes disagree: median latency from 4.0 ms to 168 ms`, when
    /// the slowest is more than `DISAGREE_RATIO` times the fastest.
    fn disagreement(&self) -> Option<String> {
        let medians: Vec<f64> = self
            .metrics
            .get(metric::LATENCY)?
            .processes
            .iter()
            .map(|p| p.median)
            .filter(|m| m.is_finite() && *m > 0.0)
            .collect();
        let lo = medians.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = medians.iter().copied().fold(0.0, f64::max);
        (medians.len() >= 2 && hi > DISAGREE_RATIO * lo).then(|| {
            format!(
                "its {} processes disagree: median latency from {} to {} ({:.1}×); the machine changed under the run",
                medians.len(),
                seconds(lo),
                seconds(hi),
                hi / lo
            )
        })
    }

    /// `max_time (1s) stopped 2 of 3 processes short of min_iters (10): 3, 2
    /// samples`, when it did.
    fn cut_short(&self) -> Option<String> {
        let processes = self.diagnostics.maps();
        let cut: Vec<&serde_json::Map<String, Value>> = processes
            .iter()
            .filter_map(|p| p.get(CUT_SHORT).and_then(Value::as_object))
            .collect();
        let first = cut.first()?;
        let number = |m: &serde_json::Map<String, Value>, k: &str| {
            m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
        };
        let samples: Vec<String> = cut
            .iter()
            .map(|c| number(c, "samples").to_string())
            .collect();
        Some(format!(
            "max_time ({}s) stopped {} of {} process(es) short of min_iters ({}): {} sample(s)",
            number(first, "max_time"),
            cut.len(),
            processes.len(),
            number(first, "min_iters"),
            samples.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::LOAD;
    use crate::record::{CommitInfo, Record};
    use crate::runner::{Environment, Machine, Outcome, ProcessSamples};
    use crate::spec::Pipeline;

    /// A one-case record whose processes took `medians` (seconds) with
    /// `runnable` other processes on 2 cores around each.
    fn case_with(medians: &[f64], runnable: u32) -> crate::record::CaseRecord {
        let p = Pipeline::parse(
            "version: 1\nname: w\nmodel: {builtin: mlp}\nrunner: {backend: mock}\n",
            std::path::Path::new("w.yaml"),
        )
        .unwrap()
        .remove(0);
        let commit = CommitInfo {
            sha: crate::id::CommitSha::try_from("a".repeat(40)).unwrap(),
            time: None,
            branch: None,
            dirty: false,
            summary: None,
        };
        let machine = Machine::detect(&Environment::default());
        let mut record = Record::begin(&p, &p.cases(), commit, machine, None);
        for &m in medians {
            let mut s = ProcessSamples {
                latency: vec![m; 5],
                ..ProcessSamples::default()
            };
            let load = serde_json::json!({"load1": 3.0, "runnable": runnable});
            s.diagnostics.insert(
                LOAD.into(),
                serde_json::json!({"before": load, "after": load, "cores": 2}),
            );
            record.apply(0, Outcome::Measured(s));
        }
        record.cases.remove(0)
    }

    #[test]
    fn a_busy_machine_and_disagreeing_processes_are_warned() {
        let quiet = case_with(&[4e-3, 4.1e-3, 4.05e-3], 0);
        assert_eq!(quiet.warnings(), Vec::<String>::new());
        assert!(quiet.cautions().is_empty());

        let loaded = case_with(&[4e-3, 0.168, 4.1e-3], 1);
        let warnings = loaded.warnings().join("\n");
        assert!(
            warnings.contains(
                "its 3 processes disagree: median latency from 4.00 ms to 168.00 ms (42.0×)"
            ),
            "{warnings}"
        );
        assert!(
            warnings.contains("the machine was busy during 3 of 3 process(es) (up to 1 other runnable process(es) on 2 core(s), load 3.0)"),
            "{warnings}"
        );
        assert_eq!(loaded.cautions().len(), 2, "the comparison says so too");
    }

    #[test]
    fn a_one_thread_case_beside_one_other_process_on_two_cores_is_not_busy() {
        let with_threads = |threads: u64| {
            let mut case = case_with(&[4e-3, 4.1e-3, 4.05e-3], 1);
            let mut processes = case.diagnostics.maps();
            for p in processes.iter_mut() {
                p.insert("settings".into(), serde_json::json!({"threads": threads}));
            }
            case.diagnostics = crate::record::Diagnostics::from_maps(&processes);
            case
        };
        assert!(with_threads(1).cautions().is_empty());
        assert!(with_threads(2).cautions()[0].contains("the machine was busy during 3 of 3"));
    }

    #[test]
    fn a_cudagraph_mode_that_fell_back_on_a_gpu_is_warned() {
        let mut case = case_with(&[4e-3, 4e-3], 0);
        case.compile = Some(crate::spec::CompileMode::ReduceOverhead);
        let mut maps = case.diagnostics.maps();
        let engaged =
            serde_json::json!({"recordings": 2, "skips": 0, "skip_reasons": [], "engaged": true});
        let skipped = serde_json::json!({"recordings": 0, "skips": 1, "engaged": false,
            "skip_reasons": ["skipping cudagraphs due to mutated inputs (1 instances)"]});
        for (p, state) in maps.iter_mut().zip([&engaged, &skipped]) {
            p.insert("device".into(), "cpu".into());
            p.insert(super::CUDAGRAPHS.into(), state.clone());
        }
        case.diagnostics = crate::record::Diagnostics::from_maps(&maps);
        assert!(
            case.warnings().is_empty(),
            "none on the CPU: {:?}",
            case.warnings()
        );
        for p in &mut maps {
            p.insert("device".into(), "cuda".into());
        }
        case.diagnostics = crate::record::Diagnostics::from_maps(&maps);
        let warnings = case.warnings().join("\n");
        assert!(
            warnings.contains("reduce-overhead ran without CUDA graphs in 1 of 2 process(es) (skipping cudagraphs due to mutated inputs (1 instances))"),
            "{warnings}"
        );
        assert_eq!(case.cautions().len(), 1, "the comparison says so too");
    }

    #[test]
    fn a_throttled_gpu_is_warned_and_an_idle_one_is_not() {
        let mut case = case_with(&[4e-3, 4e-3], 0);
        let mut maps = case.diagnostics.maps();
        maps[0].insert(
            super::GPU_STATE.into(),
            serde_json::json!({"during": {"throttle_reasons": [], "throttled_share": 0.0}}),
        );
        case.diagnostics = crate::record::Diagnostics::from_maps(&maps);
        assert!(case.warnings().is_empty(), "{:?}", case.warnings());
        maps[1].insert(
            super::GPU_STATE.into(),
            serde_json::json!({"during": {"throttle_reasons": ["sw_power_cap", "hw_thermal_slowdown"],
                "throttled_share": 0.4, "sm_clock_mhz_min": 1410.0, "temperature_c_max": 83.0}}),
        );
        case.diagnostics = crate::record::Diagnostics::from_maps(&maps);
        let warnings = case.warnings().join("\n");
        assert!(
            warnings.contains("the GPU throttled during 1 of 2 process(es) (sw_power_cap, hw_thermal_slowdown, for up to 40 % of the readings; SM clock down to 1410 MHz, up to 83 °C)"),
            "{warnings}"
        );
        assert_eq!(case.cautions().len(), 1, "the comparison says so too");
    }
}
