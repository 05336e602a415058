//! The report formats, pinned on one fixed comparison that holds every kind
//! of row: regressed, improved, unchanged, inconclusive, failed, new,
//! removed and skipped cases, a changed counter, an eager-vs-compiled
//! speed-up and notes. Markdown and terminal are insta snapshots; the JSON
//! report is a golden file (`REGRESS_BLESS=1` rewrites it after a
//! deliberate change, which must come with a new JSON_SCHEMA_VERSION).

use regress::compare::{compare, FailOn, Gate, SideInput};
use regress::record::{CaseRecord, Record};
use regress::report::{
    read_json, render_compare_terminal, render_json, CompareView, TemplateFormat, Templates,
    JSON_SCHEMA_VERSION,
};
use regress::resolve::Selection;
use serde_json::json;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/report-v3.json");

/// 30 samples around `level` seconds, spread ±`cv`/2, in a fixed order.
fn samples(level: f64, cv: f64) -> Vec<f64> {
    (0..30)
        .map(|i| level * (1.0 + cv * (((i * 7) % 30) as f64 / 29.0 - 0.5)))
        .collect()
}

/// Three processes at `level`, each shifted by its entry of `shifts`.
fn processes(level: f64, cv: f64, shifts: [f64; 3]) -> Vec<Vec<f64>> {
    shifts
        .iter()
        .map(|s| samples(level * (1.0 + s), cv))
        .collect()
}

const STEADY: [f64; 3] = [-0.004, 0.0, 0.004];

/// One case of batch `batch`, precision `precision` and compile mode `mode`.
fn case(
    batch: u32,
    precision: &str,
    mode: &str,
    status: &str,
    metrics: serde_json::Value,
) -> CaseRecord {
    let label = format!("mlp[batch={batch},{precision},{mode}]/forward");
    serde_json::from_value(json!({
        "id": format!("{:016x}", 0xca5e_0000_u64 + u64::from(batch) * 16 + mode.len() as u64 + precision.len() as u64 * 256),
        "label": label,
        "group": format!("mlp[batch={batch},{precision}]/forward"),
        "params": {"batch": batch, "precision": precision, "compile": mode},
        "precision": precision,
        "compile": mode,
        "phase": "forward",
        "status": status,
        "reason": match status {
            "failed" => Some("the worker exited with status 1; stderr:\nTraceback (most recent call last):\n  File \"model.py\", line 12, in forward\nRuntimeError: shape mismatch"),
            "skipped" => Some("fp8 needs a CUDA GPU of compute capability 8.9 or newer"),
            _ => None,
        },
        "metrics": metrics,
        "diagnostics": [],
    }))
    .unwrap()
}

fn latency(p: Vec<Vec<f64>>) -> serde_json::Value {
    json!({"latency": {"unit": "s", "samples": p}})
}

fn record(sha: &str, dirty: bool, cases: Vec<CaseRecord>) -> Record {
    let mut r: Record = serde_json::from_str(include_str!("fixtures/record-v1.json")).unwrap();
    r.commit.sha = sha.to_string().try_into().unwrap();
    r.commit.dirty = dirty;
    r.commit.branch = Some(if dirty { "feature" } else { "main" }.into());
    r.commit.summary = Some(format!("commit {}", &sha[..7]));
    r.cases = cases;
    r
}

fn view() -> (CompareView, Gate) {
    let compiled = |level: f64, breaks: f64| {
        let mut m = latency(processes(level, 0.02, STEADY));
        m["compile_time"] = json!({"unit": "s", "samples": [[2.0], [2.01], [1.99]]});
        m["graph_breaks"] = json!({"unit": "count", "samples": [[breaks], [breaks], [breaks]]});
        m
    };
    // An fp32 eager case with 2 % noise and steady processes.
    let steady = |batch, level| {
        case(
            batch,
            "fp32",
            "eager",
            "ok",
            latency(processes(level, 0.02, STEADY)),
        )
    };
    let noisy = |level, shifts| {
        case(
            3,
            "fp32",
            "eager",
            "ok",
            latency(processes(level, 0.3, shifts)),
        )
    };
    let skipped = || case(1, "fp8", "eager", "skipped", json!({}));
    let base = record(
        "1111111111111111111111111111111111111111",
        false,
        vec![
            steady(1, 1e-3),
            case(1, "fp32", "default", "ok", compiled(5e-4, 0.0)),
            steady(2, 2e-3),
            noisy(3e-3, [-0.08, 0.0, 0.08]),
            steady(4, 4e-3),
            steady(6, 6e-3),
            skipped(),
        ],
    );
    let head = record(
        "2222222222222222222222222222222222222222",
        true,
        vec![
            steady(1, 1.2e-3),
            case(1, "fp32", "default", "ok", compiled(4e-4, 2.0)),
            steady(2, 2e-3),
            noisy(3.1e-3, [0.08, -0.08, 0.0]),
            case(4, "fp32", "eager", "failed", json!({})),
            steady(5, 5e-3),
            skipped(),
        ],
    );
    // Head measured after base, as two CI runs are (not interleaved).
    let mut head = head;
    head.started_at = base.finished_at.unwrap() + chrono::Duration::seconds(1);
    head.finished_at = Some(head.started_at + chrono::Duration::seconds(60));
    let side = |rev: &str, r: Record| SideInput::exact(rev, r.commit.clone(), vec![r]);
    let c = compare(
        &side("main", base),
        &side("HEAD", head),
        &[],
        &Selection::default(),
    )
    .unwrap();
    (CompareView::new(&c), c.gate(FailOn::ANY))
}

#[test]
fn the_fixture_holds_every_kind_of_row() {
    let (v, gate) = view();
    assert_eq!(gate, Gate::Failed, "a failure gates before a regression");
    let verdicts: Vec<String> = v
        .rows
        .iter()
        .map(|r| format!("{} {}", r.data.verdict.as_str(), r.data.metric))
        .collect();
    for want in [
        "regressed latency",
        "improved latency",
        "unchanged latency",
        "inconclusive latency",
        "failed latency",
        "new latency",
        "removed latency",
        "skipped latency",
        "unchanged compile_time",
        "regressed graph_breaks",
    ] {
        assert!(verdicts.iter().any(|x| x == want), "{want}: {verdicts:?}");
    }
    assert_eq!(v.sections[0].speedups.len(), 1);
    assert!(!v.notes.is_empty());
}

#[test]
fn markdown_report() {
    let (v, _) = view();
    let md = Templates::new(None)
        .unwrap()
        .render(TemplateFormat::Markdown, &v)
        .unwrap();
    // The failure comes before any table.
    let failure = md.find("RuntimeError").unwrap_or(usize::MAX);
    assert!(failure < md.find("| Case |").unwrap(), "{md}");
    insta::assert_snapshot!("report_markdown", md);
}

#[test]
fn terminal_report() {
    let (v, _) = view();
    let text = anstream::adapter::strip_str(&render_compare_terminal(&v)).to_string();
    let failure = text.find("failed at head").unwrap_or(usize::MAX);
    assert!(failure < text.find("case").unwrap(), "{text}");
    insta::assert_snapshot!("report_terminal", text);
}

#[test]
fn json_report_matches_the_golden_file() {
    let (v, _) = view();
    let json = render_json(&v);
    if std::env::var_os("REGRESS_BLESS").is_some() {
        std::fs::write(GOLDEN, &json).unwrap();
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap();
    if let Some((i, (got, want))) = json
        .lines()
        .zip(golden.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "the JSON report differs from {GOLDEN} at line {}:\n  got:  {got}\n  want: {want}\nif on purpose, bump JSON_SCHEMA_VERSION and rerun with REGRESS_BLESS=1",
            i + 1
        );
    }
    assert_eq!(json.lines().count(), golden.lines().count(), "line count");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["schema_version"], JSON_SCHEMA_VERSION);
    // One copy of each row: no per-pipeline sections repeat them.
    assert!(parsed.get("sections").is_none());
    assert_eq!(
        parsed["rows"].as_array().unwrap().len(),
        parsed["counts"]["total"].as_u64().unwrap() as usize
    );
    assert_eq!(parsed["gate"]["failed"], true);
}

#[test]
fn a_json_report_reads_back_to_the_same_markdown() {
    let (v, _) = view();
    let templates = Templates::new(None).unwrap();
    let direct = templates.render(TemplateFormat::Markdown, &v).unwrap();
    let back = read_json(&render_json(&v)).unwrap();
    assert_eq!(
        templates.render(TemplateFormat::Markdown, &back).unwrap(),
        direct
    );
    assert_eq!(back.gate(FailOn::ANY), Gate::Failed);
    // Another schema is refused with the version named.
    let old = render_json(&v).replace("\"schema_version\": 3", "\"schema_version\": 2");
    let err = read_json(&old).unwrap_err().to_string();
    assert!(err.contains("schema version 2"), "{err}");
}
