//! The record format is versioned and read back: a record written by schema
//! version 1 must stay readable by every later build.

use regress::record::{metric, CaseStatus, RunState, RECORD_SCHEMA_VERSION};
use regress::store::{read_record, StoreError};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/record-v1.json");

#[test]
fn version_1_record_reads_back_unchanged() {
    let record = read_record(FIXTURE.as_ref()).unwrap();
    assert_eq!(record.schema_version, 1);
    assert_eq!(record.state, RunState::Complete);
    assert_eq!(record.pipeline.name, "fixture");
    assert_eq!(
        record.commit.sha.as_str(),
        "91cf47618cdf4980421d3d38d1b48c5023106923"
    );
    assert_eq!(record.cases.len(), 4);
    let ok = &record.cases[0];
    assert_eq!(ok.label, "mlp[batch=1,fp32,eager]/forward");
    assert_eq!(ok.status, CaseStatus::Ok);
    let latency = &ok.metrics[metric::LATENCY];
    assert_eq!(latency.unit, "s");
    assert_eq!(latency.samples.len(), 2, "one list per process");
    assert!(latency.samples.iter().all(|p| p.len() == 3));
    let skipped = &record.cases[1];
    assert_eq!(skipped.status, CaseStatus::Skipped);
    assert!(skipped.reason.as_deref().unwrap().contains("fp8"));

    // Writing it again gives the same document.
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let again = serde_json::to_value(&record).unwrap();
    assert_eq!(original, again);
}

#[test]
fn newer_schema_is_refused_with_advice() {
    let text = std::fs::read_to_string(FIXTURE).unwrap().replacen(
        "\"schema_version\": 1",
        &format!("\"schema_version\": {}", RECORD_SCHEMA_VERSION + 1),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    std::fs::write(&path, text).unwrap();
    let err = read_record(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 2, .. }), "{err}");
    assert!(err.to_string().contains("upgrade regress"));
}

#[test]
fn truncated_record_is_reported_by_path() {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let err = read_record(&path).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("not a valid regress record"),
        "{err}"
    );
}
