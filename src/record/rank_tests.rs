//! The rank tests on the compact form of long processes follow those on
//! every sample.

use super::samples::*;
use crate::metric::Direction;
use crate::stats::{hodges_lehmann, hodges_lehmann_points, mann_whitney_points, mann_whitney_u};

/// Log-normal samples, 5 % spread, scaled by `level`.
fn side(n: usize, seed: u64, level: f64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            let mut u = 0.0;
            for _ in 0..12 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                u += (state >> 11) as f64 / (1u64 << 53) as f64;
            }
            level * 1e-3 * (0.05 * (u - 6.0)).exp()
        })
        .collect()
}

#[test]
fn rank_tests_on_the_compact_form_follow_every_sample() {
    for (shift, seed) in [(1.0, 1), (1.003, 2), (1.01, 3), (1.05, 4)] {
        let (a, b) = (side(4000, seed, 1.0), side(3000, seed + 10, shift));
        let compact = |xs: &[f64]| {
            ProcessSummary::of(xs, Direction::LowerIsBetter)
                .process(Direction::LowerIsBetter)
                .unwrap()
                .points
        };
        let (pa, pb) = (compact(&a), compact(&b));
        assert!(!pa.is_exact(), "the weighted path is what is tested");
        let full = mann_whitney_u(&a, &b).unwrap().p;
        let kept = mann_whitney_points(&pa, &pb).unwrap().p;
        // Same conclusion at any alpha that matters, and close p-values.
        assert!(
            (full.ln() - kept.ln()).abs() < 0.25 * full.ln().abs().max(1.0),
            "shift {shift}: p {full} from every sample, {kept} from the compact form"
        );
        let hl = hodges_lehmann(&a, &b, 0.01).unwrap();
        let hk = hodges_lehmann_points(&pa, &pb, 0.01).unwrap();
        for (x, y) in [(hl.estimate, hk.estimate), (hl.lo, hk.lo), (hl.hi, hk.hi)] {
            assert!((x - y).abs() < 2e-6, "shift {shift}: {hl:?} vs {hk:?}");
        }
    }
}

/// Timings a coarse timer rounds to its resolution (CUDA events resolve
/// about 0.5 µs): around 20 µs, only a dozen distinct values, so about a
/// third of each side ties with the other.
fn quantized(n: usize, seed: u64, spread: f64) -> Vec<f64> {
    side(n, seed, 1.0)
        .into_iter()
        .map(|x| {
            let t = 20e-6 * (1.0 + spread * (x / 1e-3).ln() / 0.05 / 3.0);
            (t / 0.5e-6).round() * 0.5e-6
        })
        .collect()
}

#[test]
fn ties_of_a_quantized_timer_stay_ties_in_the_compact_form() {
    // Processes with different extremes: equal timings must still be
    // stored as equal, or the rank test sees an ordering that is not there.
    let compact = |xs: &[f64]| {
        ProcessSummary::of(xs, Direction::LowerIsBetter)
            .process(Direction::LowerIsBetter)
            .unwrap()
            .points
    };
    for (spread, seed) in [(0.03, 1), (0.04, 2), (0.05, 3)] {
        let base: Vec<Vec<f64>> = (0..2)
            .map(|p| quantized(40_000, seed * 10 + p, 0.03))
            .collect();
        let head: Vec<Vec<f64>> = (0..2)
            .map(|p| quantized(40_000, seed * 20 + p, spread))
            .collect();
        let all = |side: &[Vec<f64>]| side.concat();
        let full = mann_whitney_u(&all(&base), &all(&head)).unwrap().p;
        let points = |side: &[Vec<f64>]| {
            crate::stats::Points::union(&side.iter().map(|p| compact(p)).collect::<Vec<_>>())
        };
        let kept = mann_whitney_points(&points(&base), &points(&head))
            .unwrap()
            .p;
        assert!(
            (full.ln() - kept.ln()).abs() < 0.5 * full.ln().abs().max(1.0),
            "spread {spread}: p {full} from every sample, {kept} from the compact form"
        );
    }
}

#[test]
fn a_non_positive_sample_is_named_even_when_no_stored_point_holds_it() {
    let mut xs = side(40_000, 9, 1.0);
    xs[17] = 0.0;
    let err = ProcessSummary::of(&xs, Direction::LowerIsBetter)
        .process(Direction::LowerIsBetter)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is 0"), "{err}");
}
