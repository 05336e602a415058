//! Head against the level of the base branch: the base run and the earlier
//! runs of the same case on the same machine, as one reference.
//!
//! A single base run is one draw of the run-to-run noise; testing head
//! against it alone costs √2 of that noise. Bencher and Conbench compare
//! head with the level of many baseline runs, which is why they detect a
//! 5 % change at 5 % noise where a one-run comparison cannot. Here the
//! reference is the mean of the runs since the last change point of the
//! base branch (a commit that really moved performance starts a new
//! segment), one disturbed run is set aside, and head is tested against the
//! predictive distribution of a new run at that level: its variance is one
//! run's noise plus the uncertainty of the level (a prediction interval,
//! e.g. Hahn & Meeker, *Statistical Intervals*, 1991, §4.7).

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::welch::{finish, mean_var, TTest};

/// Runs needed in the series (history and base) before a level is taken
/// from it; with fewer, the history only lends its variance.
const MIN_RUNS: usize = 4;
/// Runs the segment holding the base must have to stand as the level: a
/// "segment" of the base run alone is as likely a disturbed base run as a
/// change at the base commit, and the two call for opposite answers.
const MIN_LEVEL_RUNS: usize = 2;
/// Shortest segment binary segmentation may cut off.
const MIN_SEGMENT: usize = 2;
/// Family-wise level of declaring a change point somewhere in the series
/// (Bonferroni over the candidate split points). Strict, because a false
/// change point shortens the segment and, by choosing the split that fits
/// best, shrinks the variance estimate.
const CHANGE_LEVEL: f64 = 0.001;
/// A run whose residual exceeds this many standard deviations of the other
/// runs is set aside as disturbed (one at most). Under normal noise a
/// residual that large happens about once in 3.5 million runs, so a clean
/// history practically never loses a run.
const DISTURBED_SD: f64 = 5.0;
/// Runs the level is the mean of, at most (the newest of the segment): a
/// step too small to be found as a change point biases the level only
/// until this many runs have passed it. Each run past ten narrows the
/// level's share of head's standard error by less than 5 %; in
/// `examples/verdict_quality.rs` (one commit in ten moving the level by
/// N(0, 3 %)) a window of 30 runs let 1.2 % of unchanged cases be flagged,
/// ten runs 0.9 %.
const LEVEL_WINDOW: usize = 10;
/// Degrees of freedom the run-to-run variance needs before it is used.
const MIN_DF: f64 = 2.0;

/// One earlier (or the base) run: the locations of its processes.
#[derive(Debug, Clone)]
struct Run {
    mean: f64,
    processes: usize,
    within: Option<(f64, f64)>,
}

impl Run {
    fn of(locations: &[f64]) -> Option<Run> {
        if locations.is_empty() || locations.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let (mean, var) = mean_var(locations);
        Some(Run {
            mean,
            processes: locations.len(),
            within: (locations.len() > 1).then_some((var, locations.len() as f64 - 1.0)),
        })
    }
}

/// How head was set against the base branch's level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference {
    /// The test of mean(head) − level.
    pub test: TTest,
    /// Runs whose mean makes the level: the newest of the base's segment,
    /// base included unless set aside.
    pub level_runs: usize,
    /// Change points found in the series.
    pub change_points: usize,
    /// Whether one run was set aside as disturbed.
    pub set_aside: bool,
}

/// Tests head's process locations (`head`, log scale) against the level
/// of the base branch: `base` holds the base run's process locations,
/// `history` earlier runs' (one list per commit, nearest commit first).
///
/// `None` when the history cannot give a level: fewer than `MIN_RUNS`
/// runs, a change point leaving fewer than `MIN_LEVEL_RUNS` runs in the
/// base's segment, or too few degrees of freedom for the variance. The
/// caller then falls back to comparing with the base run alone.
pub fn against_level(base: &[f64], head: &[f64], history: &[Vec<f64>]) -> Option<Reference> {
    let head_run = Run::of(head)?;
    // Oldest first, the base run last.
    let mut runs: Vec<Run> = history.iter().rev().filter_map(|g| Run::of(g)).collect();
    runs.push(Run::of(base)?);
    if runs.len() < MIN_RUNS {
        return None;
    }
    let means: Vec<f64> = runs.iter().map(|r| r.mean).collect();
    let mut bounds = Vec::new();
    split(&means, 0, &mut bounds);
    bounds.sort_unstable();
    let segment_of = |i: usize| bounds.iter().filter(|&&b| b <= i).count();
    let segments = bounds.len() + 1;
    let last = segments - 1;

    // Residuals around the segment means; set aside the worst run if it
    // stands far out from the rest.
    let mut kept = vec![true; runs.len()];
    let fit = |kept: &[bool]| -> Option<(Vec<f64>, f64, f64)> {
        let mut sums = vec![(0.0, 0usize); segments];
        for (i, m) in means.iter().enumerate().filter(|(i, _)| kept[*i]) {
            let s = &mut sums[segment_of(i)];
            s.0 += m;
            s.1 += 1;
        }
        let centres: Vec<f64> = sums
            .iter()
            .map(|(s, n)| if *n > 0 { s / *n as f64 } else { f64::NAN })
            .collect();
        let used = sums.iter().filter(|(_, n)| *n > 0).count();
        let n = kept.iter().filter(|k| **k).count();
        let ss: f64 = means
            .iter()
            .enumerate()
            .filter(|(i, _)| kept[*i])
            .map(|(i, m)| (m - centres[segment_of(i)]).powi(2))
            .sum();
        let df = n as f64 - used as f64;
        (df > 0.0).then(|| (centres, ss / df, df))
    };
    let (centres, _, _) = fit(&kept)?;
    let worst = (0..runs.len())
        .max_by(|&a, &b| {
            let r = |i: usize| (means[i] - centres[segment_of(i)]).abs();
            r(a).total_cmp(&r(b))
        })
        .expect("at least MIN_RUNS runs");
    let mut others = kept.clone();
    others[worst] = false;
    let mut set_aside = false;
    if let Some((c, var, df)) = fit(&others) {
        let residual = (means[worst] - c[segment_of(worst)]).abs();
        if df >= MIN_DF && var > 0.0 && residual > DISTURBED_SD * var.sqrt() {
            if worst == runs.len() - 1 {
                // The base run itself stands out: a disturbed base and a
                // change at the base commit look the same, and only the
                // comparison with the base run blames neither on head.
                return None;
            }
            kept = others;
            set_aside = true;
        }
    }
    let (_, run_var, df) = fit(&kept)?;
    let in_segment = (0..runs.len())
        .filter(|&i| kept[i] && segment_of(i) == last)
        .count();
    if df < MIN_DF || in_segment < MIN_LEVEL_RUNS {
        return None;
    }
    // A run of head's process count: one run's variance rescaled by the
    // spread inside runs where runs had several processes.
    let used: Vec<&Run> = runs
        .iter()
        .enumerate()
        .filter(|(i, _)| kept[*i])
        .map(|(_, r)| r)
        .collect();
    let typical = used.iter().map(|r| r.processes as f64).sum::<f64>() / used.len() as f64;
    let k = head_run.processes as f64;
    let (wss, wdf) = used
        .iter()
        .filter_map(|r| r.within)
        .fold((0.0, 0.0), |(s, d), (v, df)| (s + v * df, d + df));
    let head_var = if wdf >= MIN_DF {
        let within = wss / wdf;
        (run_var + within * (1.0 / k - 1.0 / typical)).max(within / k)
    } else if k < typical {
        run_var * typical / k
    } else {
        run_var
    };
    // The level: the newest `LEVEL_WINDOW` runs of the base's segment, so
    // steps too small to find move it only for a while.
    let recent: Vec<f64> = (0..runs.len())
        .rev()
        .filter(|&i| kept[i] && segment_of(i) == last)
        .take(LEVEL_WINDOW)
        .map(|i| means[i])
        .collect();
    let level_runs = recent.len();
    let level = recent.iter().sum::<f64>() / level_runs as f64;
    let se = (head_var + run_var / level_runs as f64).sqrt();
    Some(Reference {
        test: finish(head_run.mean - level, se, df),
        level_runs,
        change_points: bounds.len(),
        set_aside,
    })
}

/// Binary segmentation: the split of `ys` whose two means differ most in
/// units of their pooled spread, kept when significant at `CHANGE_LEVEL`
/// after Bonferroni over the candidate splits; then each side is searched
/// again. `offset` places `ys` in the whole series; found boundaries (the
/// index where a new segment starts) go to `bounds`.
fn split(ys: &[f64], offset: usize, bounds: &mut Vec<usize>) {
    let n = ys.len();
    if n < 2 * MIN_SEGMENT {
        return;
    }
    let mut best: Option<(usize, f64)> = None;
    for s in MIN_SEGMENT..=n - MIN_SEGMENT {
        let (l, r) = ys.split_at(s);
        let ((ml, vl), (mr, vr)) = (mean_var(l), mean_var(r));
        let pooled = (vl * (l.len() - 1) as f64 + vr * (r.len() - 1) as f64) / (n - 2) as f64;
        let se = (pooled * (1.0 / l.len() as f64 + 1.0 / r.len() as f64)).sqrt();
        let t = if se > 0.0 {
            (mr - ml).abs() / se
        } else if mr != ml {
            f64::INFINITY
        } else {
            0.0
        };
        if best.is_none_or(|(_, bt)| t > bt) {
            best = Some((s, t));
        }
    }
    let Some((s, t)) = best else { return };
    let candidates = (n - 2 * MIN_SEGMENT + 1) as f64;
    let p = match StudentsT::new(0.0, 1.0, (n - 2) as f64) {
        Ok(dist) => 2.0 * dist.sf(t),
        Err(_) => 1.0,
    };
    if p * candidates < CHANGE_LEVEL {
        bounds.push(offset + s);
        split(&ys[..s], offset, bounds);
        split(&ys[s..], offset + s, bounds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in ±`sd`·√3 (uniform, standard deviation `sd`).
    fn noise(i: usize, sd: f64) -> f64 {
        let u = ((i * 7919 + 13) % 101) as f64 / 100.0 - 0.5;
        u * sd * 12f64.sqrt()
    }

    fn history(levels: &[f64], sd: f64) -> Vec<Vec<f64>> {
        // Nearest first, as the caller passes it.
        levels
            .iter()
            .enumerate()
            .map(|(i, l)| vec![l + noise(i, sd)])
            .rev()
            .collect()
    }

    #[test]
    fn the_level_of_many_runs_beats_one_base_run() {
        let h = history(&[0.0; 30], 0.01);
        let r = against_level(&[0.0], &[0.05], &h).unwrap();
        assert_eq!(r.change_points, 0);
        assert_eq!(r.level_runs, 10);
        assert!(r.test.p < 1e-4, "{:?}", r);
        // √(1 + 1/10) of one run's spread (and the variance from all 31
        // runs), not √2.
        assert!(r.test.se < 0.012 && r.test.se > 0.009, "{}", r.test.se);
        let same = against_level(&[0.0], &[0.001], &h).unwrap();
        assert!(same.test.p > 0.5, "{:?}", same);
    }

    #[test]
    fn a_step_in_the_history_starts_a_new_segment() {
        // The base branch got 10 % slower 10 runs ago; head is at the new level.
        let mut levels = vec![0.0; 20];
        levels.extend([0.1; 10]);
        let h = history(&levels, 0.01);
        let r = against_level(&[0.1], &[0.1], &h).unwrap();
        assert_eq!(r.change_points, 1, "{r:?}");
        assert_eq!(r.level_runs, 10);
        assert!(r.test.diff.abs() < 0.01, "{r:?}");
        assert!(r.test.p > 0.1, "{r:?}");
    }

    #[test]
    fn one_disturbed_run_is_set_aside() {
        let h = history(&[0.0; 30], 0.01);
        // A run of the history was disturbed (+20 %): the level stays put.
        let mut disturbed = h.clone();
        disturbed[7][0] += 0.2;
        let r = against_level(&[0.0], &[0.0], &disturbed).unwrap();
        assert!(r.set_aside, "{r:?}");
        assert_eq!(r.level_runs, 10);
        assert!(r.test.diff.abs() < 0.01, "{r:?}");
        assert!(r.test.p > 0.1, "{r:?}");
        // The base run itself stands out: no level, the caller compares
        // with the base run.
        assert!(against_level(&[0.2], &[0.0], &h).is_none());
    }

    #[test]
    fn too_little_history_gives_no_level() {
        assert!(against_level(&[0.0], &[0.1], &history(&[0.0; 2], 0.01)).is_none());
        // A step at the base commit itself: the base run is alone in its segment.
        let mut levels = vec![0.0; 20];
        levels.push(0.2);
        let h = history(&levels[..20], 0.01);
        assert!(against_level(&[0.2], &[0.2], &h).is_none());
        assert!(against_level(&[0.0], &[f64::NAN], &h).is_none());
    }
}
