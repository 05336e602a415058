//! Properties every verdict must keep, on random samples (proptest).

use proptest::prelude::*;
use regress::stats::{bh_qvalues, decide, evidence, Decision, Direction, Evidence};

const THRESHOLD: f64 = 0.03;
const ALPHA: f64 = 0.01;

/// One side: 1–4 processes of 2–15 positive samples around `level`.
fn side() -> impl Strategy<Value = Vec<Vec<f64>>> {
    (
        0.5f64..2.0,
        prop::collection::vec(prop::collection::vec(0.9f64..1.1, 2..15), 1..4),
    )
        .prop_map(|(level, ps)| {
            ps.into_iter()
                .map(|p| p.into_iter().map(|x| x * level).collect())
                .collect()
        })
}

/// Whether rounding could move this evidence across a decision boundary.
fn near_boundary(e: &Evidence) -> bool {
    let bound = (1.0 + THRESHOLD).ln();
    let edges = [
        bound,
        -bound,
        bound.max(e.unobserved_spread),
        -bound.max(e.unobserved_spread),
    ];
    let close = |x: f64| {
        edges.iter().any(|b| (x - b).abs() < 1e-6)
            || edges.iter().any(|b| {
                (x - e.unobserved_spread - b).abs() < 1e-6
                    || (x + e.unobserved_spread - b).abs() < 1e-6
            })
    };
    (e.p - ALPHA).abs() < 1e-9 || close(e.log_ratio) || close(e.lo) || close(e.hi)
}

fn verdict(base: &[Vec<f64>], head: &[Vec<f64>]) -> (Decision, Evidence) {
    let e = evidence(base, head, &[], ALPHA).unwrap();
    (
        decide(&e, e.p, THRESHOLD, ALPHA, Direction::LowerIsBetter),
        e,
    )
}

/// The verdict with base and head swapped: regressed and improved trade
/// places; suspect (one-sided: a large unconfirmed slowdown) becomes
/// inconclusive, as a large unconfirmed speed-up is.
fn mirror(v: Decision) -> Decision {
    match v {
        Decision::Regressed => Decision::Improved,
        Decision::Improved => Decision::Regressed,
        Decision::Suspect => Decision::Inconclusive,
        other => other,
    }
}

proptest! {
    #[test]
    fn swapping_base_and_head_swaps_regressed_and_improved(base in side(), head in side()) {
        let (forward, e1) = verdict(&base, &head);
        let (backward, e2) = verdict(&head, &base);
        prop_assume!(!near_boundary(&e1) && !near_boundary(&e2));
        if backward == Decision::Suspect {
            prop_assert_eq!(forward, Decision::Inconclusive);
        } else {
            prop_assert_eq!(backward, mirror(forward));
        }
    }

    #[test]
    fn scaling_every_sample_changes_no_verdict(base in side(), head in side(), scale in 1e-3f64..1e3) {
        let scaled = |s: &Vec<Vec<f64>>| s.iter().map(|p| p.iter().map(|x| x * scale).collect()).collect::<Vec<Vec<f64>>>();
        let (plain, e1) = verdict(&base, &head);
        let (scaled_v, e2) = verdict(&scaled(&base), &scaled(&head));
        prop_assume!(!near_boundary(&e1) && !near_boundary(&e2));
        prop_assert_eq!(plain, scaled_v);
    }

    #[test]
    fn identical_samples_never_regress(side in side()) {
        let (v, _) = verdict(&side, &side);
        prop_assert!(v != Decision::Regressed && v != Decision::Improved, "{:?}", v);
    }

    #[test]
    fn q_is_never_below_p(ps in prop::collection::vec(0.0f64..=1.0, 0..50)) {
        let qs = bh_qvalues(&ps).unwrap();
        for (p, q) in ps.iter().zip(&qs) {
            prop_assert!(q >= p && *q <= 1.0);
        }
    }
}
