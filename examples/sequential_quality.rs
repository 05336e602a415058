//! What `regress ab --until-conclusive` costs and gives, on simulated
//! benchmark noise: false alarms when looking after every pair, how often
//! and how fast a real change is found, and what looking after every pair
//! would cost without the alpha spending.
//!
//!     cargo run --release --example sequential_quality
//!
//! Each trial is one case of an A/B: pairs of processes (one base, one
//! head), each process 30 samples around 1 ms with log-normal noise of
//! 2 % CV inside it, the whole process shifted by a log-normal run-to-run
//! offset of 2 % (drawn for every process, so the two sides of a pair do
//! not share it). The A/B starts with the pipeline's 3 pairs, looks, and
//! adds one pair at a time, looking after each, until the case is decided
//! or has 20 pairs — exactly as `regress ab --until-conclusive --max-pairs
//! 20` does, through the same functions (`process_location`,
//! `SequentialEvidence`). Threshold 3 %, alpha 0.01, the pipeline defaults.
//!
//! "naive" applies the fixed-sample t interval at alpha at every look
//! instead: what peeking does to a test that was not built for it.

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

use regress::stats::{mean_interval, process_location, Decision, Direction, SequentialEvidence};

const THRESHOLD: f64 = 0.03;
const ALPHA: f64 = 0.01;
/// Trials per row.
const TRIALS: usize = 2000;
/// The pipeline's own processes: the first look.
const FIRST_PAIRS: usize = 3;
/// `--max-pairs`.
const MAX_PAIRS: usize = 20;
/// Samples per process.
const SAMPLES: usize = 30;
/// Noise inside a process, and of a process's level (both as log sd).
const CV_WITHIN: f64 = 0.02;
const CV_PROCESS: f64 = 0.02;

/// The location of one simulated process at `level` (log of a ratio).
fn process(rng: &mut Rng, level: f64) -> f64 {
    let offset = CV_PROCESS * rng.normal();
    let samples: Vec<f64> = (0..SAMPLES)
        .map(|_| (1e-3f64).ln() + level + offset + CV_WITHIN * rng.normal())
        .map(f64::exp)
        .collect();
    process_location(&samples).expect("positive samples")
}

/// How one trial ended: the verdict and the pairs it took.
struct Trial {
    decision: Decision,
    pairs: usize,
}

/// One A/B of a case whose head is `change` slower (0.05 = +5 %).
/// `naive`: a fixed-alpha interval at every look instead of the spending.
fn trial(rng: &mut Rng, change: f64, naive: bool) -> Trial {
    let effect = (1.0 + change).ln();
    let mut diffs = Vec::new();
    loop {
        let base = process(rng, 0.0);
        let head = process(rng, effect);
        diffs.push(head - base);
        if diffs.len() < FIRST_PAIRS {
            continue;
        }
        let look = (diffs.len() - FIRST_PAIRS + 1) as u32;
        let mut e = SequentialEvidence::of(&diffs, look, ALPHA).expect("finite");
        if naive {
            let (_, lo, hi) = mean_interval(&diffs, ALPHA).expect("two pairs");
            (e.lo, e.hi) = (lo, hi);
        }
        let decision = e.decision(THRESHOLD, Direction::LowerIsBetter);
        if decision != Decision::Inconclusive || diffs.len() == MAX_PAIRS {
            return Trial {
                decision,
                pairs: diffs.len(),
            };
        }
    }
}

fn percent(count: usize) -> f64 {
    100.0 * count as f64 / TRIALS as f64
}

fn main() {
    println!(
        "{TRIALS} trials per row; {FIRST_PAIRS} to {MAX_PAIRS} pairs, a look after every pair; \
         {SAMPLES} samples per process, CV {:.0} % within, {:.0} % run-to-run; threshold {:.0} %, alpha {ALPHA}",
        CV_WITHIN * 100.0,
        CV_PROCESS * 100.0,
        THRESHOLD * 100.0
    );
    println!();
    println!("| inference | true change | regressed % | improved % | unchanged % | inconclusive % | mean pairs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut rng = Rng(0x5eed);
    for (name, naive) in [("always-valid", false), ("naive peeking", true)] {
        for change in [0.0, 0.02, 0.05, 0.10, 0.20] {
            let trials: Vec<Trial> = (0..TRIALS)
                .map(|_| trial(&mut rng, change, naive))
                .collect();
            let count = |d: Decision| trials.iter().filter(|t| t.decision == d).count();
            let pairs = trials.iter().map(|t| t.pairs).sum::<usize>() as f64 / TRIALS as f64;
            println!(
                "| {name} | {:+.0} % | {:.2} | {:.2} | {:.2} | {:.2} | {pairs:.1} |",
                change * 100.0,
                percent(count(Decision::Regressed)),
                percent(count(Decision::Improved)),
                percent(count(Decision::Unchanged)),
                percent(count(Decision::Inconclusive)),
            );
        }
    }
}
