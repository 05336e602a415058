//! The compact samples: exact summaries, sketches, formats, round trips.

use super::*;

fn lognormal(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            1e-3 * (0.05 * (u - 0.5) * 3.46).exp()
        })
        .collect()
}

#[test]
fn long_processes_keep_exact_summaries_and_64_points() {
    let xs = lognormal(40_000, 1);
    let p = ProcessSummary::of(&xs, Direction::LowerIsBetter);
    assert_eq!(p.n, 40_000);
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!((p.min, p.max), (sorted[0], sorted[39_999]));
    assert_eq!(p.median, quantile(&sorted, 0.5));
    let exact = process_estimate(&xs).unwrap();
    assert_eq!(p.location.unwrap().mean, exact.location);
    assert_eq!(p.location.unwrap().var, exact.var);
    let Sketch::Quantiles(q) = &p.sketch else {
        panic!("a sketch")
    };
    assert_eq!(q.len(), SKETCH_POINTS);
    // The points' median is the samples' median to the grid's precision.
    let points = p.process(Direction::LowerIsBetter).unwrap().points;
    assert_eq!(points.total(), 40_000.0);
    assert!((points.quantile(0.5) / p.median - 1.0).abs() < 1e-3);
}

#[test]
fn records_read_back_exactly_as_written() {
    for n in [1, 7, 64, 65, 5000] {
        let p = ProcessSummary::of(&lognormal(n, n as u64), Direction::LowerIsBetter);
        let json = serde_json::to_string(&p).unwrap();
        let back: ProcessSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p, "n = {n}");
    }
}

#[test]
fn few_distinct_values_are_kept_with_their_counts() {
    // A timer with 0.5 µs resolution around 20 µs.
    let xs: Vec<f64> = lognormal(5000, 3)
        .iter()
        .map(|x| (x * 20e-3 / 0.5e-6).round() * 0.5e-6)
        .collect();
    let p = ProcessSummary::of(&xs, Direction::LowerIsBetter);
    let Sketch::Counts(values, counts) = &p.sketch else {
        panic!("counts: {:?}", p.sketch)
    };
    assert_eq!(counts.iter().sum::<u64>(), 5000);
    assert!(values.len() < SKETCH_POINTS);
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<ProcessSummary>(&json).unwrap(), p);
    // The points stand for the samples exactly.
    let points = p.process(Direction::LowerIsBetter).unwrap().points;
    assert_eq!(points.total(), 5000.0);
}

#[test]
fn short_processes_keep_every_sample() {
    let xs = [3.0, 1.0, 2.0];
    let p = ProcessSummary::of(&xs, Direction::LowerIsBetter);
    assert_eq!(p.sketch, Sketch::All(vec![1.0, 2.0, 3.0]));
    assert!(p
        .process(Direction::LowerIsBetter)
        .unwrap()
        .points
        .is_exact());
}

#[test]
fn rates_are_oriented_so_that_slow_is_high() {
    let rates = [100.0, 110.0, 90.0, 105.0, 95.0];
    let p = ProcessSummary::of(&rates, Direction::HigherIsBetter);
    let times: Vec<f64> = rates.iter().map(|r| 1.0 / r).collect();
    assert_eq!(
        p.location.unwrap().mean,
        process_estimate(&times).unwrap().location
    );
    let proc = p.process(Direction::HigherIsBetter).unwrap();
    assert_eq!(proc.points.values()[0], 1.0 / 110.0);
}

#[test]
fn metrics_read_every_format() {
    let v1: UnnamedMetric =
        serde_json::from_str(r#"{"unit": "s", "samples": [[0.001, 0.002], [0.003]]}"#).unwrap();
    let m = v1.named(metric::LATENCY);
    assert_eq!(m.processes.len(), 2);
    assert_eq!(m.processes[0].n, 2);
    // One value per process is written as `values`, and read back.
    let mut once = Metric {
        unit: "s".into(),
        processes: Vec::new(),
    };
    once.push(metric::COMPILE_TIME, &[2.0]);
    once.push(metric::COMPILE_TIME, &[2.5]);
    let json = serde_json::to_string(&once).unwrap();
    assert_eq!(json, r#"{"unit":"s","values":[2.0,2.5]}"#);
    let back: UnnamedMetric = serde_json::from_str(&json).unwrap();
    assert_eq!(back.named(metric::COMPILE_TIME), once);
    let both = serde_json::from_str::<UnnamedMetric>(
        r#"{"unit": "s", "values": [1.0], "samples": [[1.0]]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(both.contains("exactly one of"), "{both}");
}
