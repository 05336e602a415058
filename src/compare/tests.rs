//! Comparisons of fixture records: machines, rates, counters, shards.

use super::*;
use crate::id::CommitSha;
use crate::metric::LATENCY;

fn fixture() -> Record {
    serde_json::from_str(include_str!("../../tests/fixtures/record-v1.json")).unwrap()
}

/// A metric with one process per list of samples.
fn metric(name: &str, unit: &str, lists: &[Vec<f64>]) -> crate::record::Metric {
    let mut m = crate::record::Metric {
        unit: unit.into(),
        processes: Vec::new(),
    };
    for l in lists {
        m.push(name, l);
    }
    m
}

fn input(records: Vec<Record>) -> SideInput {
    SideInput {
        rev: "rev".into(),
        commit: records[0].commit.clone(),
        distance: 0,
        records,
        notes: Vec::new(),
        unused_pipelines: Vec::new(),
        dirty_left_out: 0,
    }
}

/// The fixture as base against two head machines, `other` on machine
/// `fp`, compared across machines.
fn two_head_machines(head: Record, mut other: Record, fp: &str) -> Comparison {
    other.machine.fingerprint = Fingerprint::try_from(fp.to_string()).unwrap();
    let opts = Selection {
        allow_fingerprint_mismatch: true,
        ..Selection::default()
    };
    compare(
        &input(vec![fixture()]),
        &input(vec![head, other]),
        &[],
        &opts,
    )
    .unwrap()
}

#[test]
fn removed_cases_are_listed_once_with_two_head_machines() {
    let mut head = fixture();
    let removed = head.cases.remove(0).label;
    let c = two_head_machines(head.clone(), head, "0123456789abcdef");
    let removed_rows: Vec<&Row> = c
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::Removed)
        .collect();
    assert_eq!(removed_rows.len(), 1, "{:?}", c.rows);
    assert_eq!(removed_rows[0].label, removed);
    // Both head machines are compared, the other one with a note.
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("compared across machines")),
        "{:?}",
        c.notes
    );
}

#[test]
fn a_case_one_head_machine_still_has_is_not_removed() {
    // The machine without the case sorts first, the one with it second.
    let mut head = fixture();
    head.cases.remove(0);
    let c = two_head_machines(head, fixture(), "ffffffffffffffff");
    assert!(
        c.rows.iter().all(|r| r.verdict != Verdict::Removed),
        "{:?}",
        c.rows
    );
}

#[test]
fn a_bad_rate_is_named_as_stored() {
    let with_rate = |values: Vec<f64>| {
        let mut r = fixture();
        r.cases[0].metrics.insert(
            crate::metric::THROUGHPUT.to_string(),
            metric(crate::metric::THROUGHPUT, "1/s", &[values]),
        );
        r
    };
    let base = with_rate(vec![100.0, 0.0, 101.0]);
    let head = with_rate(vec![100.0, 99.0, 101.0]);
    let c = compare(
        &input(vec![base]),
        &input(vec![head]),
        &[],
        &Selection::default(),
    )
    .unwrap();
    let row = c
        .rows
        .iter()
        .find(|r| r.metric.name == crate::metric::THROUGHPUT)
        .unwrap();
    assert_eq!(row.verdict, Verdict::NotComparable);
    // Named as stored (0), not as its reciprocal (inf). Stored samples
    // are kept in ascending order, so the index is the sorted one.
    let note = row.note.as_deref().unwrap();
    assert!(note.contains("sample 0 is 0"), "{note}");
}

/// The fixture with `recompiles` counts per process on its first case.
fn with_recompiles(counts: &[f64]) -> Record {
    let mut r = fixture();
    r.cases[0].metrics.insert(
        crate::metric::RECOMPILES.to_string(),
        metric(
            crate::metric::RECOMPILES,
            "count",
            &counts.iter().map(|c| vec![*c]).collect::<Vec<_>>(),
        ),
    );
    r
}

fn recompile_rows(base: &[f64], head: &[f64]) -> Vec<Row> {
    let c = compare(
        &input(vec![with_recompiles(base)]),
        &input(vec![with_recompiles(head)]),
        &[],
        &Selection::default(),
    )
    .unwrap();
    c.rows
        .into_iter()
        .filter(|r| r.metric.name == crate::metric::RECOMPILES)
        .collect()
}

#[test]
fn counters_are_compared_exactly_and_only_shown_when_they_change() {
    assert!(recompile_rows(&[1.0, 1.0], &[1.0, 1.0]).is_empty());
    let up = recompile_rows(&[0.0, 0.0], &[8.0, 8.0]);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].verdict, Verdict::REGRESSED);
    assert!(up[0].evidence.is_none() && up[0].q.is_none(), "no test");
    let x = up[0].exact.unwrap();
    assert_eq!((x.base_max, x.head_min), (0.0, 8.0));
    assert_eq!(recompile_rows(&[3.0], &[1.0])[0].verdict, Verdict::IMPROVED);
    // Processes that disagree with ranges that overlap: not a change.
    let varies = recompile_rows(&[0.0, 1.0], &[1.0, 2.0]);
    assert_eq!(varies[0].verdict, Verdict::INCONCLUSIVE);
    assert!(varies[0].note.as_deref().unwrap().contains("varies"));
}

/// The fixture as shard `index` of `count` of a run planning its cases
/// one per shard in turn, and `others` more pipelines on every shard.
fn shard_of(mut r: Record, index: u32, count: u32, others: &[&str]) -> Record {
    use crate::spec::{PipelineShards, PlannedCase, Shard, ShardPlan};
    let cases: Vec<PlannedCase> = r
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| PlannedCase {
            id: c.id.clone(),
            label: c.label.clone(),
            shard: i as u32 % count + 1,
        })
        .collect();
    r.cases = r
        .cases
        .into_iter()
        .zip(&cases)
        .filter(|(_, p)| p.shard == index)
        .map(|(c, _)| c)
        .collect();
    let mut pipelines = vec![PipelineShards {
        pipeline: r.pipeline.name.clone(),
        shards: (1..=count.min(4)).collect(),
    }];
    pipelines.extend(others.iter().map(|o| PipelineShards {
        pipeline: o.to_string(),
        shards: (1..=count).collect(),
    }));
    r.run_id = crate::id::RunId::new(chrono::Utc::now());
    r.shard = Some(ShardPlan {
        shard: Shard { index, count },
        cases,
        pipelines,
    });
    r
}

#[test]
fn a_crash_at_head_is_a_failure_even_where_the_base_shard_is_missing() {
    // Base ran two shards and shard 2 never arrived; at head the case
    // planned there crashes.
    let base = shard_of(fixture(), 1, 2, &[]);
    let mut head = fixture();
    head.cases[1].status = crate::record::CaseStatus::Failed;
    head.cases[1].reason = Some("boom".into());
    let c = compare(
        &input(vec![base]),
        &input(vec![head]),
        &[],
        &Selection::default(),
    )
    .unwrap();
    let row = c
        .rows
        .iter()
        .find(|r| r.label == fixture().cases[1].label)
        .unwrap();
    assert_eq!(row.verdict, Verdict::Failed, "{:?}", c.rows);
    assert_eq!(c.gate(FailOn::ANY), Gate::Failed);
    // The other case of the missing base shard is not comparable.
    let other = c
        .rows
        .iter()
        .find(|r| r.label == fixture().cases[3].label)
        .unwrap();
    assert_eq!(other.verdict, Verdict::NotComparable);
    assert!(other.note.as_deref().unwrap().contains("base shard 2/2"));
}

#[test]
fn a_pipeline_none_of_whose_shards_arrived_is_missing_not_removed() {
    // Head ran pipelines `fixture` and `other` in two shards; only a
    // shard of `other` arrived, so nothing of `fixture` is at head.
    let mut other = shard_of(fixture(), 1, 2, &["fixture"]);
    other.pipeline.name = "other".into();
    let c = compare(
        &input(vec![fixture()]),
        &input(vec![other]),
        &[],
        &Selection::default(),
    )
    .unwrap();
    let fixture_rows: Vec<&Row> = c.rows.iter().filter(|r| r.pipeline == "fixture").collect();
    assert_eq!(fixture_rows.len(), 4);
    assert!(
        fixture_rows.iter().all(|r| r.verdict == Verdict::Missing),
        "{fixture_rows:?}"
    );
    assert_eq!(c.gate(FailOn::ANY), Gate::Failed);
    assert!(
        c.notes.iter().any(|n| n.contains("none of its shards")),
        "{:?}",
        c.notes
    );
}

#[test]
fn a_shard_that_ran_on_another_machine_did_arrive() {
    let one = shard_of(fixture(), 1, 2, &[]);
    let mut two = shard_of(fixture(), 2, 2, &[]);
    two.machine.fingerprint = Fingerprint::try_from("00000000000000ff").unwrap();
    let opts = Selection {
        allow_fingerprint_mismatch: true,
        ..Selection::default()
    };
    let c = compare(&input(vec![fixture()]), &input(vec![one, two]), &[], &opts).unwrap();
    assert!(
        c.rows.iter().all(|r| r.verdict != Verdict::Missing),
        "{:?}",
        c.rows
    );
    assert!(
        c.notes.iter().all(|n| !n.contains("did not arrive")),
        "{:?}",
        c.notes
    );
}

/// A record at commit `n` of 8 cases, each 3 processes at its own level
/// times `shift` (the whole run), with 0.5 % noise.
fn run_of(n: usize, shift: f64) -> Record {
    let mut r = fixture();
    r.commit.sha = CommitSha::try_from(format!("{n:040x}")).unwrap();
    // Each run in a window of its own, one after the other.
    r.started_at += chrono::Duration::seconds(100 * n as i64);
    r.finished_at = Some(r.started_at + chrono::Duration::seconds(60));
    let template = r.cases[0].clone();
    r.cases = (0..8)
        .map(|i| {
            let mut c = template.clone();
            c.id = CaseId::try_from(format!("{:016x}", 0xc0 + i)).unwrap();
            c.label = format!("mlp[batch={i},fp32,eager]/forward");
            let level = 1e-3 * (1.0 + i as f64);
            let lists: Vec<Vec<f64>> = (0..3)
                .map(|p| {
                    (0..20)
                        .map(|j| {
                            let wiggle = ((j * 7 + p * 3 + i) % 11) as f64 / 10.0 - 0.5;
                            level * shift * (1.0 + 0.005 * wiggle)
                        })
                        .collect()
                })
                .collect();
            c.metrics = [(LATENCY.to_string(), metric(LATENCY, "s", &lists))].into();
            c
        })
        .collect();
    r
}

#[test]
fn a_shift_of_the_whole_run_is_not_called_a_change_of_the_code() {
    // Same code; the machine was 8 % faster for the whole head run.
    let (base, head) = (run_of(100, 1.0), run_of(101, 0.92));
    let alone = compare(
        &input(vec![base.clone()]),
        &input(vec![head.clone()]),
        &[],
        &Selection::default(),
    )
    .unwrap();
    let g = alone.geomean.unwrap();
    assert_eq!(g.run_level, RunLevel::NotEstimated);
    assert!((g.ratio - 0.92).abs() < 0.01, "{g:?}");
    // History: ten earlier runs whose levels moved by up to ±6 %.
    let shifts = [1.0, 1.06, 0.95, 1.02, 0.97, 1.05, 0.94, 1.01, 1.03, 0.96];
    let history: Vec<Record> = shifts
        .iter()
        .enumerate()
        .map(|(n, s)| run_of(n, *s))
        .collect();
    let (sd, commits) = run_level::run_level_sd(&history).unwrap();
    assert_eq!(commits, 10);
    assert!((0.03..0.06).contains(&sd), "{sd}");
    let judged = compare(
        &input(vec![base]),
        &input(vec![head]),
        &history,
        &Selection::default(),
    )
    .unwrap();
    let g = judged.geomean.unwrap();
    assert!(
        matches!(g.run_level, RunLevel::FromHistory { commits: 10, .. }),
        "{g:?}"
    );
    assert!(
        g.lo < 1.0 && g.hi > 1.0,
        "an 8 % run shift is within what runs do: {g:?}"
    );
    // Without the run-level term the cases alone would have excluded 1.
    assert!(alone.geomean.unwrap().hi < 1.0);
}

#[test]
fn sides_measured_interleaved_need_no_history_for_the_interval() {
    let (mut base, mut head) = (run_of(100, 1.0), run_of(101, 0.92));
    let t0 = base.started_at;
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    // One after the other: a whole-run shift is unknown.
    (base.started_at, base.finished_at) = (at(0), Some(at(60)));
    (head.started_at, head.finished_at) = (at(61), Some(at(120)));
    let judge = |b: &Record, h: &Record| {
        compare(
            &input(vec![b.clone()]),
            &input(vec![h.clone()]),
            &[],
            &Selection::default(),
        )
        .unwrap()
        .geomean
        .unwrap()
        .run_level
    };
    assert_eq!(judge(&base, &head), RunLevel::NotEstimated);
    // Interleaved (as `regress ab` measures): the windows overlap.
    (head.started_at, head.finished_at) = (at(1), Some(at(121)));
    assert_eq!(judge(&base, &head), RunLevel::Interleaved);
    // A side still running is not taken as interleaved.
    head.finished_at = None;
    assert_eq!(judge(&base, &head), RunLevel::NotEstimated);
}

#[test]
fn python_overhead_sets_the_backends_against_each_other_on_the_same_model() {
    use crate::spec::BackendKind;
    let side = |backend: BackendKind, name: &str, model: &str, level: f64| {
        let mut r = run_of(200, 1.0);
        r.pipeline.backend = backend;
        r.pipeline.name = name.into();
        r.pipeline.model = Some(model.into());
        for c in r.cases.iter_mut() {
            let lists: Vec<Vec<f64>> = (0..3).map(|_| vec![level; 20]).collect();
            c.metrics = [(LATENCY.to_string(), metric(LATENCY, "s", &lists))].into();
        }
        r
    };
    let mlp = "mlp(dim=128,hidden=512)";
    let head = vec![
        side(BackendKind::Python, "py", mlp, 50e-6),
        side(BackendKind::Native, "nat", mlp, 30e-6),
        // Another model on the native backend: nothing to set against.
        side(
            BackendKind::Native,
            "other",
            "mlp(dim=64,hidden=512)",
            10e-6,
        ),
    ];
    let base = vec![
        side(BackendKind::Python, "py", mlp, 45e-6),
        side(BackendKind::Native, "nat", mlp, 30e-6),
    ];
    let o = overhead::overheads(&base, &head);
    assert_eq!(o.len(), 8, "{o:?}");
    for x in &o {
        assert_eq!(
            (x.python_pipeline.as_str(), x.native_pipeline.as_str()),
            ("py", "nat")
        );
        assert!((x.overhead() - 20e-6).abs() < 1e-9, "{x:?}");
        assert!((x.share() - 0.4).abs() < 1e-6, "{x:?}");
        assert!((x.base_overhead.unwrap() - 15e-6).abs() < 1e-9, "{x:?}");
    }
    // Without a native run of the model, there is no overhead to show.
    assert!(overhead::overheads(&base, &head[..1]).is_empty());
}
