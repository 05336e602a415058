//! A measuring session: one or more lanes (a backend, its cases and the
//! record they fill) run in rounds, one process per case per round, with
//! the record saved after every case so a killed session keeps what
//! finished. `regress run` has one lane per pipeline; `regress ab` runs a
//! base and a head lane interleaved in ABBA order.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exit::Exit;
use crate::record::{CommitInfo, Record, RunState, CUT_SHORT, LOAD};
use crate::runner::{self, Load, Machine, Outcome, RunContext, RunnerError, StopFlag};
use crate::spec::{Case, Pipeline, ShardPlan};
use crate::store::{Store, StoreError};

/// Seed for weights and inputs; fixed so every process measures the same numbers.
pub const SEED: u64 = 0;

/// Why a session could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("pipeline {pipeline}: the {backend} backend cannot start")]
    Backend {
        pipeline: String,
        backend: String,
        #[source]
        source: RunnerError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot install the Ctrl-C handler: {0}")]
    StopHandler(#[from] ctrlc::Error),
}

/// Ctrl-C once: stop after killing the running worker, keeping what
/// finished. Twice (when `second_exits`): leave at once, which is safe
/// because every store write is atomic.
pub fn install_stop_handler(second_exits: bool) -> Result<StopFlag, SessionError> {
    let stop = StopFlag::default();
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if second_exits && flag.is_set() {
            std::process::exit(Exit::Interrupted.code().into());
        }
        flag.stop();
    })?;
    Ok(stop)
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One record being produced: a backend, its cases and the record they fill.
pub struct Lane {
    backend: Box<dyn runner::Backend>,
    pub cases: Vec<Case>,
    pub record: Record,
    pub processes: u32,
    /// Wall time spent in each case's processes so far: the time the
    /// device was held for it (start-up and warm-up included).
    pub spent: Vec<Duration>,
    /// The samples a process is asked for, and the time that may cut it short.
    min_iters: u64,
    max_time: Duration,
}

impl Lane {
    /// Starts the pipeline's backend, probes the machine and saves the
    /// record with every case pending (`shard`: the share of a sharded run).
    pub fn new(
        pipeline: &Pipeline,
        cases: Vec<Case>,
        shard: Option<ShardPlan>,
        commit: CommitInfo,
        ctx: RunContext,
        store: &dyn Store,
    ) -> Result<Lane, SessionError> {
        let backend_error = |source| SessionError::Backend {
            pipeline: pipeline.name.clone(),
            backend: pipeline.runner.backend.to_string(),
            source,
        };
        let mut backend = runner::select(pipeline, &cases, ctx).map_err(backend_error)?;
        let env = backend.environment().map_err(backend_error)?;
        if let Some(note) = backend.probe_note() {
            anstream::eprintln!("{note}");
        }
        Lane::with_backend(pipeline, cases, shard, commit, backend, &env, store)
    }

    /// A lane on a backend already chosen (tests pass their own).
    pub fn with_backend(
        pipeline: &Pipeline,
        cases: Vec<Case>,
        shard: Option<ShardPlan>,
        commit: CommitInfo,
        backend: Box<dyn runner::Backend>,
        env: &runner::Environment,
        store: &dyn Store,
    ) -> Result<Lane, SessionError> {
        let record = Record::begin(pipeline, &cases, commit, Machine::detect(env), shard);
        store.save(&record)?;
        Ok(Lane {
            backend,
            spent: vec![Duration::ZERO; cases.len()],
            cases,
            record,
            processes: pipeline.runner.processes,
            min_iters: pipeline.runner.measure.min_iters,
            max_time: pipeline.runner.measure.max_time,
        })
    }

    /// The outcome with what the process's numbers need beside them: a
    /// process that `max_time` stopped before it had `min_iters` samples
    /// is marked as such (`cut_short`), so that `run` warns and `compare`
    /// says so (the budget silently overrode the count); and the machine's
    /// load before and after it (`load`), so that a busy machine shows.
    fn annotate(&self, outcome: Outcome, before: Option<Load>, after: Option<Load>) -> Outcome {
        let Outcome::Measured(mut s) = outcome else {
            return outcome;
        };
        s.diagnostics.insert(
            LOAD.into(),
            serde_json::json!({"before": before, "after": after, "cores": cores()}),
        );
        let n = s.latency.len() as u64;
        if n > 0 && n < self.min_iters {
            s.diagnostics.insert(
                CUT_SHORT.into(),
                serde_json::json!({
                    "samples": n,
                    "min_iters": self.min_iters,
                    "max_time": self.max_time.as_secs_f64(),
                }),
            );
        }
        Outcome::Measured(s)
    }
}

/// The order cases run in: groups of (lane, case index). A group runs in
/// order on even rounds and reversed on odd ones.
pub type Schedule = Vec<Vec<(usize, usize)>>;

/// The run order of one pipeline: cases that differ only in compile mode
/// form a group and run back to back (eager, compiled, eager, … across
/// rounds, reversed on odd rounds), so drift of the machine hits both sides
/// of an eager-vs-compiled speed-up alike.
pub fn compile_groups(pipeline: &Pipeline, cases: &[Case]) -> Schedule {
    let model = pipeline.model.label_name(&pipeline.name);
    let mut groups: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let key = case.group_label(model);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((0, i)),
            None => groups.push((key, vec![(0, i)])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// The run order of `regress ab`: lane 0 is the base, lane 1 the head.
/// Each case present on both sides is a pair (ABBA across rounds); cases
/// of one side only follow.
pub fn ab_schedule(base: &[Case], head: &[Case]) -> Schedule {
    let mut schedule = Vec::new();
    for (hi, hc) in head.iter().enumerate() {
        match base.iter().position(|c| c.id == hc.id) {
            Some(bi) => schedule.push(vec![(0, bi), (1, hi)]),
            None => schedule.push(vec![(1, hi)]),
        }
    }
    for (bi, bc) in base.iter().enumerate() {
        if !head.iter().any(|c| c.id == bc.id) {
            schedule.push(vec![(0, bi)]);
        }
    }
    schedule
}

/// How often the progress bar redraws while a worker runs.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// The progress bar of a session: `total` processes under `title`.
pub fn progress_bar(total: u64, title: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise} {wide_msg}",
        )
        .expect("the progress template is valid")
        .progress_chars("=> "),
    );
    bar.set_prefix(title.to_string());
    bar.enable_steady_tick(PROGRESS_TICK);
    bar
}

/// Runs `schedule` once per process round, saving each lane's record after
/// every case, and closes the records. Interleaving (every case once, then
/// every case again) spreads slow drift of the machine over all cases
/// instead of biasing some. Returns whether the user stopped it.
pub fn run_schedule(
    lanes: &mut [Lane],
    schedule: &Schedule,
    store: &dyn Store,
    stop: &StopFlag,
    title: &str,
) -> Result<bool, SessionError> {
    let bar = progress_bar(schedule_total(lanes, schedule), title);
    let interrupted = run_rounds(lanes, schedule, store, stop, &bar)?;
    bar.finish_and_clear();
    finish(lanes, interrupted, store)?;
    Ok(interrupted)
}

/// The processes `run_rounds` runs for `schedule` at most.
pub fn schedule_total(lanes: &[Lane], schedule: &Schedule) -> u64 {
    schedule
        .iter()
        .flatten()
        .map(|&(l, _)| u64::from(lanes[l].processes))
        .sum()
}

/// Runs the rounds of `schedule` (`processes` of each lane) without
/// closing the records, so that more rounds may follow. Returns whether
/// the user stopped it.
pub fn run_rounds(
    lanes: &mut [Lane],
    schedule: &Schedule,
    store: &dyn Store,
    stop: &StopFlag,
    bar: &ProgressBar,
) -> Result<bool, SessionError> {
    let rounds = lanes.iter().map(|l| l.processes).max().unwrap_or(1);
    for repeat in 0..rounds {
        for group in schedule {
            let due: Vec<(usize, usize)> = group
                .iter()
                .copied()
                .filter(|&(l, _)| repeat < lanes[l].processes)
                .collect();
            if run_group(lanes, &due, repeat, store, stop, bar)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Runs process `repeat` of every case of `group`, in order on even
/// rounds and reversed on odd ones (ABBA across rounds), saving the lane's
/// record after every case; cases that failed or were skipped are not run
/// again. Returns whether the user stopped it (the process it stopped is
/// not kept).
pub fn run_group(
    lanes: &mut [Lane],
    group: &[(usize, usize)],
    repeat: u32,
    store: &dyn Store,
    stop: &StopFlag,
    bar: &ProgressBar,
) -> Result<bool, SessionError> {
    let order: Box<dyn Iterator<Item = &(usize, usize)>> = if repeat % 2 == 1 {
        Box::new(group.iter().rev())
    } else {
        Box::new(group.iter())
    };
    for &(l, i) in order {
        let lane = &mut lanes[l];
        if !lane.record.wants_more(i) {
            bar.inc(1);
            continue;
        }
        let case = &lane.cases[i];
        bar.set_message(format!(
            "{} {} (process {}/{})",
            lane.record.commit.sha.short(),
            case.label,
            repeat + 1,
            lane.processes.max(repeat + 1)
        ));
        let before = Load::now();
        let started = Instant::now();
        let outcome = lane.backend.run_process(case, repeat);
        let outcome = lane.annotate(outcome, before, Load::now());
        if stop.is_set() {
            return Ok(true);
        }
        lane.spent[i] += started.elapsed();
        lane.record.apply(i, outcome);
        store.save(&lane.record)?;
        bar.inc(1);
    }
    Ok(false)
}

/// Closes and saves every lane's record: complete, or interrupted by the
/// user.
pub fn finish(
    lanes: &mut [Lane],
    interrupted: bool,
    store: &dyn Store,
) -> Result<(), SessionError> {
    for lane in lanes.iter_mut() {
        lane.record.finish(if interrupted {
            RunState::Interrupted
        } else {
            RunState::Complete
        });
        store.save(&lane.record)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::CaseStatus;
    use crate::runner::{Backend, Environment, Outcome, ProcessSamples};
    use crate::store::MemStore;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    fn pipeline(src: &str) -> Pipeline {
        Pipeline::parse(src, Path::new("g.yaml")).unwrap().remove(0)
    }

    #[test]
    fn eager_and_compiled_cases_of_a_point_run_back_to_back() {
        // The compile axis comes first, so matrix order would run every
        // eager case before any compiled one.
        let src = "version: 1\nname: g\nmodel: {builtin: mlp}\nmatrix:\n  compile: [eager, default]\n  batch: [1, 8]\nphases: [forward, backward]\n";
        let pipeline = pipeline(src);
        let cases = pipeline.cases();
        let groups = compile_groups(&pipeline, &cases);
        let labels: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|&(_, i)| cases[i].label.as_str()).collect())
            .collect();
        assert_eq!(
            labels,
            [
                [
                    "mlp[batch=1,fp32,eager]/forward",
                    "mlp[batch=1,fp32,default]/forward"
                ],
                [
                    "mlp[batch=1,fp32,eager]/backward",
                    "mlp[batch=1,fp32,default]/backward"
                ],
                [
                    "mlp[batch=8,fp32,eager]/forward",
                    "mlp[batch=8,fp32,default]/forward"
                ],
                [
                    "mlp[batch=8,fp32,eager]/backward",
                    "mlp[batch=8,fp32,default]/backward"
                ],
            ]
        );
    }

    /// A backend that logs which (lane tag, case, repeat) ran, and fails
    /// the cases whose label contains `fail`.
    struct Logging {
        tag: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        fail: Option<&'static str>,
    }

    impl Backend for Logging {
        fn environment(&mut self) -> Result<Environment, RunnerError> {
            Ok(Environment::default())
        }

        fn run_process(&mut self, case: &Case, repeat: u32) -> Outcome {
            self.log
                .lock()
                .unwrap()
                .push(format!("{}:{}:{repeat}", self.tag, case.label));
            if self.fail.is_some_and(|f| case.label.contains(f)) {
                return Outcome::Failed {
                    kind: runner::FailureKind::Failed,
                    reason: "boom".into(),
                    diagnostics: Default::default(),
                };
            }
            Outcome::Measured(ProcessSamples {
                latency: vec![1e-3, 1e-3],
                ..ProcessSamples::default()
            })
        }
    }

    fn commit() -> CommitInfo {
        CommitInfo {
            sha: crate::id::CommitSha::try_from("a".repeat(40)).unwrap(),
            time: None,
            branch: None,
            dirty: false,
            summary: None,
        }
    }

    #[test]
    fn ab_rounds_alternate_the_order_and_every_case_is_saved() {
        let p = pipeline("version: 1\nname: s\nmodel: {builtin: mlp}\nrunner: {backend: mock, processes: 2}\nmatrix: {batch: [1, 2]}\n");
        let cases = p.cases();
        let store = MemStore::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lane = |tag, fail| {
            let backend = Box::new(Logging {
                tag,
                log: log.clone(),
                fail,
            });
            let env = Environment::default();
            Lane::with_backend(&p, cases.clone(), None, commit(), backend, &env, &store).unwrap()
        };
        let mut lanes = vec![lane("A", None), lane("B", Some("batch=2"))];
        let schedule = ab_schedule(&cases, &cases);
        let stopped =
            run_schedule(&mut lanes, &schedule, &store, &StopFlag::default(), "t").unwrap();
        assert!(!stopped);
        assert_eq!(
            *log.lock().unwrap(),
            [
                "A:mlp[batch=1,fp32,eager]/forward:0",
                "B:mlp[batch=1,fp32,eager]/forward:0",
                "A:mlp[batch=2,fp32,eager]/forward:0",
                "B:mlp[batch=2,fp32,eager]/forward:0",
                // Second round: each pair reversed; the failed case is not run again.
                "B:mlp[batch=1,fp32,eager]/forward:1",
                "A:mlp[batch=1,fp32,eager]/forward:1",
                "A:mlp[batch=2,fp32,eager]/forward:1",
            ]
        );
        let saved = store.all();
        assert_eq!(saved.len(), 2);
        for r in &saved {
            assert_eq!(r.state, RunState::Complete);
        }
        let b = saved
            .iter()
            .find(|r| r.run_id == lanes[1].record.run_id)
            .unwrap();
        assert_eq!(b.cases[1].status, CaseStatus::Failed);
        assert_eq!(b.cases[0].metrics["latency"].processes.len(), 2);
    }
}
