//! `regress ab --until-conclusive`: after the pipelines' own processes,
//! keep adding interleaved pairs (one base process, one head process, ABBA
//! across rounds) to the cases not yet decided, suspects first, until every
//! case is regressed, improved or unchanged, or the budget is spent. The
//! verdicts come from `stats::SequentialEvidence`, whose intervals are valid
//! at every look, so looking after every pair raises no false alarms beyond
//! alpha.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;

use super::{fail_on, out, write_atomic};
use crate::cli::{Format, ReportArgs};
use crate::exit::Exit;
use crate::metric::{self, Direction};
use crate::record::CaseStatus;
use crate::runner::StopFlag;
use crate::session::{run_group, Lane, Schedule, SessionError};
use crate::stats::{Decision, SequentialEvidence};
use crate::store::Store;

/// How long the A/B may go on.
pub struct Limits {
    /// Wall time of the whole measurement, from `started`.
    pub budget: Duration,
    /// Pairs per case at most.
    pub max_pairs: usize,
    pub started: Instant,
}

/// Why the A/B stopped adding pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every case that ran on both sides is decided.
    Decided,
    /// The undecided cases reached `--max-pairs`.
    MaxPairs,
    /// The next pair would have ended after the budget.
    Budget,
    /// The user stopped it.
    Interrupted,
}

impl StopReason {
    fn as_str(self) -> &'static str {
        match self {
            StopReason::Decided => "every case decided",
            StopReason::MaxPairs => "the undecided cases reached --max-pairs",
            StopReason::Budget => "the budget was spent",
            StopReason::Interrupted => "interrupted",
        }
    }
}

/// One case on both sides: (lane, case index) of the base and of the head.
#[derive(Debug, Clone, Copy)]
struct Pair {
    base: (usize, usize),
    head: (usize, usize),
}

/// Where the adaptive A/B ended.
pub struct Outcome {
    pub stop: StopReason,
    pub elapsed: Duration,
    pairs: Vec<Pair>,
    /// Cases of one side only: (lane, case); even lanes are the base.
    singles: Vec<(usize, usize)>,
}

/// The latency locations of a case's processes (log scale), in run order;
/// `None` when the case did not run cleanly.
fn locations(lane: &Lane, case: usize) -> Option<Vec<f64>> {
    let c = &lane.record.cases[case];
    if c.status != CaseStatus::Ok {
        return None;
    }
    let m = c.metrics.get(metric::LATENCY)?;
    m.processes
        .iter()
        .map(|p| p.location.map(|l| l.mean))
        .collect()
}

/// The processes a case has measured so far.
fn processes_of(lane: &Lane, case: usize) -> usize {
    lane.record.cases[case]
        .metrics
        .get(metric::LATENCY)
        .map_or(0, |m| m.processes.len())
}

/// The pairs run so far and what they say: `None` when the case cannot be
/// judged (it failed, was skipped, or has fewer than two pairs).
fn judge(lanes: &[Lane], pair: Pair) -> (usize, Option<SequentialEvidence>) {
    let (Some(b), Some(h)) = (
        locations(&lanes[pair.base.0], pair.base.1),
        locations(&lanes[pair.head.0], pair.head.1),
    ) else {
        return (0, None);
    };
    let n = b.len().min(h.len());
    let diffs: Vec<f64> = (0..n).map(|k| h[k] - b[k]).collect();
    let compare = lanes[pair.head.0].record.pipeline.compare;
    // The looks are numbered from the first one this configuration makes:
    // after the pipeline's own processes (at least two pairs), one more
    // per pair. The numbering depends on nothing measured, which keeps
    // the alpha spending valid.
    let first = lanes[pair.base.0]
        .processes
        .min(lanes[pair.head.0].processes)
        .max(2) as usize;
    if n < first {
        return (n, None);
    }
    let look = (n - first + 1) as u32;
    (n, SequentialEvidence::of(&diffs, look, compare.alpha).ok())
}

fn threshold(lanes: &[Lane], pair: Pair) -> f64 {
    lanes[pair.head.0].record.pipeline.compare.threshold
}

/// Latency is the metric an A/B decides on; lower is better.
const DIRECTION: Direction = Direction::LowerIsBetter;

/// An undecided case waiting for its next pair.
#[derive(Debug, Clone, Copy)]
struct Due {
    pair: Pair,
    /// Pairs it has.
    pairs: usize,
    /// |estimated log change|.
    size: f64,
    suspect: bool,
}

/// The order a round measures the undecided cases in: suspects first, the
/// largest estimate first, so that a budget running out leaves the
/// smaller questions open; the rest keep the schedule's order (the sort
/// is stable).
fn round_order(due: &mut [Due]) {
    due.sort_by(|a, b| {
        b.suspect.cmp(&a.suspect).then_with(|| {
            if a.suspect && b.suspect {
                b.size.total_cmp(&a.size)
            } else {
                std::cmp::Ordering::Equal
            }
        })
    });
}

/// Adds pairs to the undecided cases of `schedule` (its groups of a base
/// and a head case) until each is decided, or a limit is reached. Every
/// round measures each undecided case once more, suspects (estimates far
/// beyond the threshold, not yet significant) first, largest first. The
/// A/B stops at the first pair that, at the case's average pace so far,
/// would end after the budget.
pub fn until_conclusive(
    lanes: &mut [Lane],
    schedule: &Schedule,
    store: &dyn Store,
    stop: &StopFlag,
    bar: &ProgressBar,
    limits: &Limits,
) -> Result<Outcome, SessionError> {
    let pairs: Vec<Pair> = schedule
        .iter()
        .filter_map(|g| match g.as_slice() {
            [base, head] => Some(Pair {
                base: *base,
                head: *head,
            }),
            _ => None,
        })
        .collect();
    let singles: Vec<(usize, usize)> = schedule
        .iter()
        .filter_map(|g| match g.as_slice() {
            [one] => Some(*one),
            _ => None,
        })
        .collect();
    let outcome = |stop| Outcome {
        stop,
        elapsed: limits.started.elapsed(),
        pairs: pairs.clone(),
        singles: singles.clone(),
    };
    loop {
        let mut due: Vec<Due> = Vec::new();
        let mut capped = false;
        for &pair in &pairs {
            let (n, evidence) = judge(lanes, pair);
            let t = threshold(lanes, pair);
            let (decided, suspect, size) = match evidence {
                Some(e) => (
                    !matches!(
                        e.decision(t, DIRECTION),
                        Decision::Inconclusive | Decision::Suspect
                    ),
                    e.suspect(t, DIRECTION),
                    e.log_ratio.abs(),
                ),
                // Too few pairs yet to judge, but running: one more.
                None if n > 0 => (false, false, 0.0),
                // Failed or skipped: nothing more to learn.
                None => (true, false, 0.0),
            };
            if decided {
                continue;
            }
            if n >= limits.max_pairs {
                capped = true;
                continue;
            }
            due.push(Due {
                pair,
                pairs: n,
                size,
                suspect,
            });
        }
        if due.is_empty() {
            return Ok(outcome(if capped {
                StopReason::MaxPairs
            } else {
                StopReason::Decided
            }));
        }
        round_order(&mut due);
        bar.inc_length(2 * due.len() as u64);
        for Due { pair, pairs: n, .. } in due {
            let spent =
                lanes[pair.base.0].spent[pair.base.1] + lanes[pair.head.0].spent[pair.head.1];
            let per_pair = spent / n.max(1) as u32;
            if limits.started.elapsed() + per_pair > limits.budget {
                return Ok(outcome(StopReason::Budget));
            }
            // Pair k is process k of each side. When the revisions ask
            // for different `processes`, the side that has more waits
            // until the other catches up, so that the pairs stay aligned.
            let behind: Vec<(usize, usize)> = [pair.base, pair.head]
                .into_iter()
                .filter(|&(l, i)| processes_of(&lanes[l], i) == n)
                .collect();
            if run_group(lanes, &behind, n as u32, store, stop, bar)? {
                return Ok(outcome(StopReason::Interrupted));
            }
        }
    }
}

/// One case of the adaptive A/B's report.
#[derive(Serialize)]
struct Row {
    pipeline: String,
    label: String,
    /// `regressed`, `improved`, `unchanged`, `inconclusive`, `suspect`,
    /// or the status of a case that did not run on both sides.
    verdict: String,
    ratio: Option<f64>,
    ratio_lo: Option<f64>,
    ratio_hi: Option<f64>,
    pairs: usize,
    /// Wall time of the case's processes on both sides.
    device_seconds: f64,
}

/// Device-seconds and cases per verdict.
#[derive(Serialize)]
struct Spent {
    verdict: String,
    cases: usize,
    device_seconds: f64,
}

/// The adaptive A/B's report: JSON's shape, and the terminal's source.
#[derive(Serialize)]
struct View {
    schema_version: u32,
    stop: StopReason,
    elapsed_seconds: f64,
    rows: Vec<Row>,
    spent: Vec<Spent>,
}

/// Version of the adaptive A/B's JSON report.
const VIEW_SCHEMA_VERSION: u32 = 1;

fn view(outcome: &Outcome, lanes: &[Lane]) -> View {
    let mut rows = Vec::new();
    for &pair in &outcome.pairs {
        let (n, evidence) = judge(lanes, pair);
        let t = threshold(lanes, pair);
        let head = &lanes[pair.head.0].record;
        let base = &lanes[pair.base.0].record;
        let status = |r: &crate::record::Record, i: usize| r.cases[i].status;
        let verdict = match evidence {
            Some(e) => e.decision(t, DIRECTION).as_str().to_string(),
            None => match (status(base, pair.base.1), status(head, pair.head.1)) {
                (CaseStatus::Ok, CaseStatus::Ok) => Decision::Inconclusive.as_str().to_string(),
                (b, h) if b == h => b.as_str().to_string(),
                (CaseStatus::Ok, s) => format!("{} at head", s.as_str()),
                (s, _) => format!("{} at base", s.as_str()),
            },
        };
        let spent = lanes[pair.base.0].spent[pair.base.1] + lanes[pair.head.0].spent[pair.head.1];
        rows.push(Row {
            pipeline: head.pipeline.name.clone(),
            label: head.cases[pair.head.1].label.clone(),
            verdict,
            ratio: evidence.map(|e| e.log_ratio.exp()),
            ratio_lo: evidence.map(|e| e.lo.exp()),
            ratio_hi: evidence.map(|e| e.hi.exp()),
            pairs: n,
            device_seconds: spent.as_secs_f64(),
        });
    }
    for &(l, i) in &outcome.singles {
        let record = &lanes[l].record;
        rows.push(Row {
            pipeline: record.pipeline.name.clone(),
            label: record.cases[i].label.clone(),
            verdict: if l % 2 == 0 {
                "removed at head"
            } else {
                "new at head"
            }
            .to_string(),
            ratio: None,
            ratio_lo: None,
            ratio_hi: None,
            pairs: 0,
            device_seconds: lanes[l].spent[i].as_secs_f64(),
        });
    }
    let mut spent: Vec<Spent> = Vec::new();
    for r in &rows {
        match spent.iter_mut().find(|s| s.verdict == r.verdict) {
            Some(s) => {
                s.cases += 1;
                s.device_seconds += r.device_seconds;
            }
            None => spent.push(Spent {
                verdict: r.verdict.clone(),
                cases: 1,
                device_seconds: r.device_seconds,
            }),
        }
    }
    View {
        schema_version: VIEW_SCHEMA_VERSION,
        stop: outcome.stop,
        elapsed_seconds: outcome.elapsed.as_secs_f64(),
        rows,
        spent,
    }
}

/// Signed percentage of a ratio, e.g. `+12.3%`.
fn percent(ratio: f64) -> String {
    format!("{:+.1}%", (ratio - 1.0) * 100.0)
}

/// The terminal table: one line per case, then device-seconds per verdict.
fn render_terminal(v: &View) -> String {
    let mut s = String::new();
    let width = v.rows.iter().map(|r| r.label.len()).max().unwrap_or(0);
    let mut pipeline = None;
    for r in &v.rows {
        // Labels repeat across pipelines (the same model on two backends).
        if pipeline != Some(&r.pipeline) {
            if pipeline.is_some() {
                s.push('\n');
            }
            s += &format!("{}\n", r.pipeline);
            pipeline = Some(&r.pipeline);
        }
        s += "  ";
        let change = match (r.ratio, r.ratio_lo, r.ratio_hi) {
            (Some(x), Some(lo), Some(hi)) => {
                format!("{:>7} ({} to {})", percent(x), percent(lo), percent(hi))
            }
            _ => String::new(),
        };
        s += &format!(
            "{:<width$}  {:<12}  {:<28}  {:>3} pairs  {:>7.1} s\n",
            r.label, r.verdict, change, r.pairs, r.device_seconds
        );
    }
    s += &format!(
        "\nstopped after {:.0} s: {}\ndevice-seconds per verdict:",
        v.elapsed_seconds,
        v.stop.as_str()
    );
    for sp in &v.spent {
        s += &format!(
            " {} {:.1} s ({} case{});",
            sp.verdict,
            sp.device_seconds,
            sp.cases,
            if sp.cases == 1 { "" } else { "s" }
        );
    }
    s.pop();
    s += "\nintervals hold at every look together with probability 1 - alpha; `regress compare` reads the stored records\n";
    s
}

/// Writes the adaptive A/B's report and maps it to an exit status:
/// `--fail-on regression` fails on a regressed or suspect case
/// (`confirmed-regression` on a regressed one only), `--fail-on failure` on
/// a case that failed at head only.
pub fn report_adaptive(
    outcome: &Outcome,
    lanes: &[Lane],
    args: &ReportArgs,
) -> anyhow::Result<Exit> {
    let v = view(outcome, lanes);
    let text = match args.format {
        Format::Terminal => render_terminal(&v),
        Format::Json => serde_json::to_string_pretty(&v)? + "\n",
        Format::Markdown => anyhow::bail!(
            "--until-conclusive writes terminal or JSON reports; for markdown run `regress compare` on the stored records"
        ),
    };
    match &args.output {
        Some(path) => {
            write_atomic(path, &text)?;
            anstream::eprintln!("wrote {}", path.display());
        }
        None => out(&text)?,
    }
    let on = fail_on(args);
    let regressed = v
        .rows
        .iter()
        .any(|r| r.verdict == "regressed" || (on.suspect && r.verdict == "suspect"));
    let failed = v.rows.iter().any(|r| r.verdict.ends_with(" at head"));
    Ok(if on.regression && regressed {
        Exit::Regressed
    } else if on.failure && failed {
        Exit::Failed
    } else {
        Exit::Success
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspects_go_first_the_largest_first_the_rest_in_order() {
        let due = |case, size, suspect| Due {
            pair: Pair {
                base: (0, case),
                head: (1, case),
            },
            pairs: 3,
            size,
            suspect,
        };
        let mut round = vec![
            due(0, 0.01, false),
            due(1, 0.2, true),
            due(2, 0.05, false),
            due(3, 0.5, true),
            due(4, 0.0, false),
        ];
        round_order(&mut round);
        let order: Vec<usize> = round.iter().map(|d| d.pair.head.1).collect();
        assert_eq!(order, [3, 1, 0, 2, 4]);
    }

    #[test]
    fn the_table_names_each_pipeline_and_the_seconds_per_verdict() {
        let row = |pipeline: &str, verdict: &str, ratio: Option<f64>, seconds| Row {
            pipeline: pipeline.into(),
            label: "mlp[batch=8,fp32,eager]/forward".into(),
            verdict: verdict.into(),
            ratio,
            ratio_lo: ratio.map(|r| r - 0.1),
            ratio_hi: ratio.map(|r| r + 0.1),
            pairs: 4,
            device_seconds: seconds,
        };
        let v = View {
            schema_version: VIEW_SCHEMA_VERSION,
            stop: StopReason::Budget,
            elapsed_seconds: 61.0,
            rows: vec![
                row("python", "regressed", Some(1.5), 10.0),
                row("native", "failed at head", None, 2.0),
            ],
            spent: vec![
                Spent {
                    verdict: "regressed".into(),
                    cases: 1,
                    device_seconds: 10.0,
                },
                Spent {
                    verdict: "failed at head".into(),
                    cases: 1,
                    device_seconds: 2.0,
                },
            ],
        };
        let text = render_terminal(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "python");
        assert!(lines[1].contains("regressed") && lines[1].contains("+50.0% (+40.0% to +60.0%)"));
        assert_eq!(lines[3], "native");
        assert!(lines[4].contains("failed at head"), "{text}");
        assert!(
            text.contains("stopped after 61 s: the budget was spent"),
            "{text}"
        );
        assert!(
            text.contains("regressed 10.0 s (1 case); failed at head 2.0 s (1 case)\n"),
            "{text}"
        );
    }
}
