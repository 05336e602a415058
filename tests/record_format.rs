//! The record format is versioned and read back: a record written by schema
//! version 1 (every sample) must stay readable by every later build, and
//! reads into the compact form of version 2, which writes and reads back
//! unchanged.

use regress::record::{metric, CaseStatus, Record, RunState, Sketch, RECORD_SCHEMA_VERSION};
use regress::store::{read_record, StoreError};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/record-v1.json");

#[test]
fn version_1_record_reads_into_version_2() {
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
    assert_eq!(latency.processes.len(), 2, "one summary per process");
    assert!(latency.processes.iter().all(|p| p.n == 3));
    let skipped = &record.cases[1];
    assert_eq!(skipped.status, CaseStatus::Skipped);
    assert!(skipped.reason.as_deref().unwrap().contains("fp8"));

    // Every sample of a short process is kept, and its summary is exact.
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let samples: Vec<f64> = original["cases"][0]["metrics"]["latency"]["samples"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let first = &latency.processes[0];
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(first.sketch, Sketch::All(sorted.clone()));
    assert_eq!(
        (first.min, first.median, first.max),
        (sorted[0], sorted[1], sorted[2])
    );

    // Written again (as version 2), it reads back the same.
    let again: Record = serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
    assert_eq!(again, record);
    assert!(
        serde_json::to_value(&record).unwrap()["cases"][0]["metrics"]["latency"]
            .get("processes")
            .is_some()
    );
}

/// The GPU's nvidia-smi fields and CUDA_VISIBLE_DEVICES joined format 2
/// as optional fields: a record without them (the fixture) reads them as
/// absent, and a record with them writes and reads back unchanged.
#[test]
fn the_gpu_fields_of_the_machine_read_back() {
    use regress::runner::gpus::GpuInfo;
    let mut record = read_record(FIXTURE.as_ref()).unwrap();
    assert_eq!(record.machine.gpu_info, None);
    assert_eq!(record.machine.cuda_visible_devices, None);
    assert_eq!(record.machine.software.torch_cuda, None);
    record.machine.gpu_info = Some(GpuInfo {
        name: "NVIDIA H200".into(),
        driver: "570.86.15".into(),
        uuid: Some("GPU-aaaa".into()),
        pci_bus_id: Some("00000000:18:00.0".into()),
        compute_capability: Some("9.0".into()),
        memory_mib: Some(143771),
        power_limit_w: Some(700.0),
        mig_mode: Some("Disabled".into()),
    });
    record.machine.cuda_visible_devices = Some("1".into());
    record.machine.software.gpu_uuid = Some("aaaa".into());
    record.machine.software.torch_cuda = Some("12.8".into());
    let text = serde_json::to_string(&record).unwrap();
    assert!(text.contains("\"power_limit_w\":700.0"), "{text}");
    let again: Record = serde_json::from_str(&text).unwrap();
    assert_eq!(again, record);
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
    assert!(
        matches!(err, StoreError::TooNew { found, .. } if found == RECORD_SCHEMA_VERSION + 1),
        "{err}"
    );
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

/// Pipeline hashes and case ids key stored results, and machine
/// fingerprints decide which results are compared. These values were
/// produced by the first releases; if they move, every stored record
/// becomes "not comparable" or is orphaned.
#[test]
fn hashes_ids_and_fingerprints_are_pinned() {
    use regress::runner::{fingerprint, FingerprintKey};
    use regress::spec::Pipeline;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pinned.yaml");
    let pipelines = Pipeline::load(path.as_ref()).unwrap();
    // (pipeline name, pipeline hash, [(case id, label)])
    type Pin = (String, String, Vec<(String, String)>);
    let pins: Vec<Pin> = pipelines
        .iter()
        .map(|p| {
            let cases = p
                .cases()
                .into_iter()
                .map(|c| (c.id.to_string(), c.label))
                .collect();
            (p.name.clone(), p.hash(), cases)
        })
        .collect();
    let pinned = |name: &str, hash: &str, cases: &[(&str, &str)]| {
        (
            name.to_string(),
            hash.to_string(),
            cases
                .iter()
                .map(|(id, label)| (id.to_string(), label.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        pins,
        [
            pinned(
                "pinned-defaults",
                "d019fb6a11eaf251",
                &[
                    ("360b93e6b0f41a6d", "mlp[batch=1,fp32,eager]/forward"),
                    ("0623a051516ff6b9", "mlp[batch=1,bf16,eager]/forward"),
                    ("2e7ed6c468eedfd0", "mlp[batch=8,fp32,eager]/forward"),
                    ("e15737324254bc38", "mlp[batch=8,bf16,eager]/forward"),
                ]
            ),
            pinned(
                "pinned-options",
                "daf59456d6cfc875",
                &[
                    (
                        "71ed1d1eec955891",
                        "attention[batch=2,seq_len=16,fp32,eager]/forward"
                    ),
                    (
                        "294ae3c8e3a1f605",
                        "attention[batch=2,seq_len=16,fp32,eager]/backward"
                    ),
                    (
                        "8438c1eed5e8b44e",
                        "attention[batch=2,seq_len=16,fp32,default]/forward"
                    ),
                    (
                        "845e6073cd610fb0",
                        "attention[batch=2,seq_len=16,fp32,default]/backward"
                    ),
                    (
                        "6fa529c7f6cf37c3",
                        "attention[batch=2,seq_len=16,fp32,max-autotune]/forward"
                    ),
                    (
                        "888f87b47dff3aeb",
                        "attention[batch=2,seq_len=16,fp32,max-autotune]/backward"
                    ),
                    (
                        "b9c1439dfd75f37f",
                        "attention[batch=2,seq_len=32,fp32,eager]/forward"
                    ),
                    (
                        "8b53d4b8cc7c57cf",
                        "attention[batch=2,seq_len=32,fp32,eager]/backward"
                    ),
                    (
                        "4cf1771603f2af58",
                        "attention[batch=2,seq_len=32,fp32,default]/forward"
                    ),
                    (
                        "0f32bc22e6a42c66",
                        "attention[batch=2,seq_len=32,fp32,default]/backward"
                    ),
                    (
                        "45c5104383c588cb",
                        "attention[batch=4,seq_len=16,fp32,eager]/forward"
                    ),
                    (
                        "c41923a9e5662383",
                        "attention[batch=4,seq_len=16,fp32,eager]/backward"
                    ),
                ]
            ),
        ]
    );
    let gpu = fingerprint(&FingerprintKey {
        cpu: "Intel(R) Xeon(R) Platinum 8480+",
        gpu: Some("NVIDIA H200"),
        gpu_count: 8,
        torch: Some("2.11.0+cu128"),
        cuda: Some("12.8"),
        runner_label: Some("gpu-runner-a"),
        ..FingerprintKey::default()
    });
    assert_eq!(gpu.as_str(), "3a6ed7e48d051333");
    // The GPU fields that came later change the fingerprint only when known.
    let gpu_fields = fingerprint(&FingerprintKey {
        cpu: "Intel(R) Xeon(R) Platinum 8480+",
        gpu: Some("NVIDIA H200"),
        gpu_count: 1,
        torch: Some("2.11.0+cu128"),
        cuda: Some("12.8"),
        runner_label: Some("gpu-runner-a"),
        driver_major: Some(570),
        power_limit_w: Some(700),
        mig_mode: Some("Disabled"),
    });
    assert_eq!(gpu_fields.as_str(), "434d9f047ec907c3");
    let cpu = fingerprint(&FingerprintKey {
        cpu: "AMD EPYC 7763 64-Core Processor",
        gpu: None,
        gpu_count: 0,
        torch: Some("2.11.0"),
        cuda: None,
        runner_label: None,
        ..FingerprintKey::default()
    });
    assert_eq!(cpu.as_str(), "d881c4697380b723");
}

#[test]
fn a_version_1_record_compares_with_a_version_2_one() {
    use regress::compare::{compare, FailOn, Gate, SideInput};
    use regress::resolve::Selection;
    let v1 = read_record(FIXTURE.as_ref()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.json");
    std::fs::write(&path, serde_json::to_string(&v1).unwrap()).unwrap();
    let v2 = read_record(&path).unwrap();
    let side = |r: Record| SideInput::exact("rev", r.commit.clone(), vec![r]);
    let c = compare(&side(v1), &side(v2), &[], &Selection::default()).unwrap();
    assert_eq!(c.gate(FailOn::ANY), Gate::Pass);
    let judged = c
        .rows
        .iter()
        .filter(|r| r.evidence.is_some() && r.verdict.decision().is_some())
        .count();
    assert_eq!(judged, 2, "{:?}", c.rows);
    assert!(c.rows.iter().all(|r| r.ratio().is_none_or(|x| x == 1.0)));
}
