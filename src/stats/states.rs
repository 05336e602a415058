//! Clock states inside one process: iterations that fall into groups
//! separated by far more than their own spread (a GPU or CPU dropping from
//! its boost clock for part of a run, a second kernel choice, a run of
//! slow outliers).
//!
//! Which share of a run's iterations lands in the slow state changes from
//! process to process, so a location that mixes the states moves between
//! runs of the same code by a good part of the distance between them: with
//! states 8 % apart and the slow share anywhere between 20 and 80 %, a
//! trimmed mean of two unchanged processes differs by more than a 3 %
//! threshold a quarter of the time. The fastest state's own level does not
//! depend on that share, so it is what a process's location measures when
//! there are states (`evidence::process_estimate`).

/// How far apart (in pooled standard deviations of the two groups) the
/// means of the best two-group split of `n` samples must be to call them
/// states: the 99.9th percentile of that distance for `n` normal samples
/// (simulated, 40,000 samples of each size), and never below 5. Small
/// samples fall into two groups by chance, so the bar is high for them;
/// clock states 8 % apart at 1 % noise stand about 8 apart at any size.
const SEPARATION: [(usize, f64); 5] = [(8, 10.9), (10, 9.2), (15, 6.3), (20, 5.6), (30, 5.0)];
/// The 95th percentiles of the same distance below 30 samples: past them a
/// sample *may* hold states. Not enough to measure the fastest state
/// alone, enough that a comparison must allow for it
/// (`FastestState::confirmed`).
/// From 30 samples on, states are confirmed or not there: the bars meet.
const POSSIBLE: [(usize, f64); 5] = [(8, 5.6), (10, 5.1), (15, 4.3), (20, 4.0), (30, 5.0)];
use super::welch::mean_var;

/// The farthest apart (as a ratio − 1) a few slow samples may lie from the
/// rest to hint at a clock state rather than outliers: boost and base
/// clocks differ by 10–40 %, while the interruptions that make outliers
/// cost half an iteration or more.
pub const MAX_STATE_DISTANCE: f64 = 0.25;
/// Fewer samples than this are never split.
const MIN_SAMPLES: usize = 8;
/// A slower group with fewer than this share of the samples (or a single
/// sample) is a handful of outliers, not a state: the trimmed mean already
/// drops them, and a side that happened to have none is no different.
/// Clock states that matter hold a fifth of a run or more; below 15 % the
/// trimmed mean (which drops the slowest 30 %) leaves them out anyway.
const MIN_STATE_SHARE: f64 = 0.15;
/// A state is about as tight as the fastest one; a slower group spread
/// more than this many times as widely is outliers of different sizes
/// (iterations 1.5 to 3× slower), not a clock state.
const MAX_SPREAD_RATIO: f64 = 4.0;

/// The separation needed at `n` samples, interpolated in `SEPARATION`.
fn separation(n: usize) -> Option<f64> {
    interpolate(&SEPARATION, n)
}

fn interpolate(table: &[(usize, f64)], n: usize) -> Option<f64> {
    if n < MIN_SAMPLES {
        return None;
    }
    let last = table[table.len() - 1];
    if n >= last.0 {
        return Some(last.1);
    }
    let i = table.iter().position(|(m, _)| *m > n)?;
    let ((n0, k0), (n1, k1)) = (table[i - 1], table[i]);
    Some(k0 + (k1 - k0) * (n - n0) as f64 / (n1 - n0) as f64)
}

/// Where the fastest state of sorted log samples ends, and the centre of
/// the next slower state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FastestState {
    /// Samples `[..end]` form the fastest state.
    pub end: usize,
    /// Mean of the slower group (log scale).
    pub next: f64,
    /// Pooled standard deviation inside the two groups.
    pub sd: f64,
    /// Degrees of freedom of `sd`.
    pub df: usize,
    /// Past `SEPARATION`: the fastest state can be measured alone.
    /// Otherwise only past `POSSIBLE`: states may be there.
    pub confirmed: bool,
}

/// The fastest state of `sorted` (ascending log samples): the split into
/// two groups with the least spread inside them (two-means, found exactly
/// over the sorted order with running sums), kept when the groups' means
/// stand further apart than `separation(n)` pooled standard deviations;
/// `None` when the samples form one group. A split past only the lower bar
/// of `POSSIBLE` comes back with `confirmed` false. A slower group too
/// small to be a state (`MIN_STATE_SHARE`) is set aside as outliers and
/// the rest searched again.
pub fn fastest_state(sorted: &[f64]) -> Option<FastestState> {
    let mut part = sorted;
    loop {
        let split = two_groups(part)?;
        let (fast, slow) = part.split_at(split.end);
        let sd = |xs: &[f64]| mean_var(xs).1.sqrt();
        let tight = fast.len() < 2 || sd(slow) <= MAX_SPREAD_RATIO * sd(fast);
        if slow.len() >= 2 && slow.len() as f64 >= MIN_STATE_SHARE * part.len() as f64 && tight {
            return Some(split);
        }
        let mf = fast.iter().sum::<f64>() / fast.len() as f64;
        if tight && split.next - mf < MAX_STATE_DISTANCE.ln_1p() {
            // Too few to be a state, but as close as clock states lie: the
            // run may have spent all but these iterations in the fast state
            // (and another run all of them in the slow one).
            return Some(FastestState {
                confirmed: false,
                ..split
            });
        }
        // Outliers split off: look for states among the rest.
        part = &part[..split.end];
    }
}

/// The best split of `sorted` into two groups, when they stand apart.
fn two_groups(sorted: &[f64]) -> Option<FastestState> {
    let n = sorted.len();
    let need = separation(n)?;
    let possible = interpolate(&POSSIBLE, n)?;
    let total: f64 = sorted.iter().sum();
    let total2: f64 = sorted.iter().map(|x| x * x).sum();
    let (mut s, mut s2) = (0.0, 0.0);
    let mut best: Option<(f64, usize)> = None;
    for (i, x) in sorted[..n - 1].iter().enumerate() {
        s += x;
        s2 += x * x;
        let (nf, ns) = ((i + 1) as f64, (n - i - 1) as f64);
        let ss = (s2 - s * s / nf) + ((total2 - s2) - (total - s).powi(2) / ns);
        if best.is_none_or(|(b, _)| ss < b) {
            best = Some((ss, i + 1));
        }
    }
    let (ss, end) = best?;
    let (fast, slow) = sorted.split_at(end);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (mf, next) = (mean(fast), mean(slow));
    let df = n - 2;
    let sd = (ss.max(0.0) / df as f64).sqrt();
    let apart = next - mf;
    (apart > possible * sd && apart > 0.0).then_some(FastestState {
        end,
        next,
        sd,
        df,
        confirmed: apart > need * sd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut xs: Vec<f64>) -> Vec<f64> {
        xs.sort_by(f64::total_cmp);
        xs
    }

    /// Evenly spread values with standard deviation about `sd` around `at`.
    fn group(at: f64, sd: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| at + sd * 3f64.sqrt() * (2.0 * (i as f64 + 0.5) / n as f64 - 1.0))
            .collect()
    }

    #[test]
    fn two_clock_states_split_and_one_group_does_not() {
        let mut xs = group(0.0, 0.01, 12);
        xs.extend(group(0.077, 0.01, 18));
        let s = fastest_state(&sorted(xs)).unwrap();
        assert_eq!(s.end, 12);
        assert!((s.next - 0.077).abs() < 1e-9);
        assert!(s.confirmed);
        assert!(fastest_state(&group(0.0, 0.05, 30)).is_none());
        assert!(fastest_state(&[0.0, 0.1]).is_none());
        // Seven samples are too few to tell states from chance.
        let mut xs = group(0.0, 0.01, 3);
        xs.extend(group(0.077, 0.01, 4));
        assert!(fastest_state(&sorted(xs)).is_none());
        // Ten samples in two groups about 6.5 standard deviations apart may
        // hold states, but ten normal samples split that far one time in
        // two hundred: not confirmed.
        let mut xs = group(0.0, 0.01, 5);
        xs.extend(group(0.07, 0.01, 5));
        let s = fastest_state(&sorted(xs)).unwrap();
        assert!(!s.confirmed, "{s:?}");
    }

    #[test]
    fn outliers_are_not_a_state_but_states_behind_them_are_found() {
        // One sample of 30 twice as slow: outliers, no states.
        let mut xs = group(0.0, 0.01, 29);
        xs.push(0.7);
        assert!(fastest_state(&sorted(xs.clone())).is_none());
        // Clock states 8 % apart, and two outliers 1.5–3× slower.
        let mut xs = group(0.0, 0.01, 10);
        xs.extend(group(0.077, 0.01, 28));
        xs.extend([0.5, 1.0]);
        let s = fastest_state(&sorted(xs)).unwrap();
        assert_eq!(s.end, 10);
        assert!((s.next - 0.077).abs() < 1e-9);
    }

    #[test]
    fn a_lone_sample_in_a_slow_state_hints_at_states() {
        // One of ten samples 8 % slower: not a state to measure, but the
        // run may have had one.
        let mut xs = group(0.0, 0.01, 9);
        xs.push(0.077);
        let s = fastest_state(&sorted(xs)).unwrap();
        assert!(!s.confirmed);
        assert_eq!(s.end, 9);
        // One twice as slow is an outlier.
        let mut xs = group(0.0, 0.01, 9);
        xs.push(0.7);
        assert!(fastest_state(&sorted(xs)).is_none());
    }

    #[test]
    fn a_lone_fast_sample_far_from_the_rest_is_a_state() {
        let mut xs = vec![-0.077];
        xs.extend(group(0.0, 0.01, 29));
        assert_eq!(fastest_state(&sorted(xs)).unwrap().end, 1);
        assert_eq!(separation(9), Some(10.05));
        assert_eq!(separation(100), Some(5.0));
        assert_eq!(separation(7), None);
    }
}
