//! Every seed pipeline's CPU variant runs end to end: `regress run
//! workflows/<seed>-cpu.yaml` in a repository holding `workflows/`, every
//! case `ok` (or `skipped` with a reason), with the raw samples, compile
//! diagnostics and accuracy results in the record. Needs torch, like
//! tests/torch_backends.rs.

use std::path::Path;

use crate::common::{output, python_or_skip, Repo};
use regress::record::{metric, CaseStatus, RunState};
use regress::spec::CompileMode;

/// Copies the repository's `workflows/` into the scratch repository.
fn copy_workflows(repo: &Repo) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "__pycache__") {
                    stack.push(path);
                }
                continue;
            }
            let rel = path.strip_prefix(src.parent().unwrap()).unwrap();
            repo.write(
                rel.to_str().unwrap(),
                &std::fs::read_to_string(&path).unwrap(),
            );
        }
    }
}

fn run_seed(file: &str) {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    copy_workflows(&repo);
    repo.commit("seeds");
    let path = format!("workflows/{file}");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", &path])
            .env("REGRESS_PYTHON", &python),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let files = repo.record_files();
    assert!(!files.is_empty(), "{stdout}");
    for file in files {
        let record = regress::store::read_record(&file).unwrap();
        assert_eq!(record.state, RunState::Complete);
        for case in &record.cases {
            match case.status {
                CaseStatus::Ok => {}
                CaseStatus::Skipped => {
                    assert!(
                        case.reason.is_some(),
                        "{}: skipped without a reason",
                        case.label
                    );
                    continue;
                }
                other => panic!("{}: {other:?}: {:?}", case.label, case.reason),
            }
            let latency = &case.metrics[metric::LATENCY];
            assert!(
                latency.processes.iter().all(|p| p.n >= 2),
                "{}: raw samples per process",
                case.label
            );
            let compiled = case.compile.is_some_and(|m| m != CompileMode::Eager);
            if compiled {
                for name in [
                    metric::COMPILE_TIME,
                    metric::GRAPH_BREAKS,
                    metric::UNIQUE_GRAPHS,
                    metric::RECOMPILES,
                ] {
                    assert!(case.metrics.contains_key(name), "{}: no {name}", case.label);
                }
            }
            let reduced = case.precision.is_some_and(|p| p.as_str() != "fp32");
            if compiled || reduced {
                for d in &case.diagnostics.maps() {
                    assert_eq!(
                        d.get("accuracy").and_then(|a| a.get("passed")),
                        Some(&serde_json::Value::Bool(true)),
                        "{}: accuracy checked and passed: {d:?}",
                        case.label
                    );
                }
            }
        }
    }
}

#[test]
fn kaufmann_attention_cpu() {
    run_seed("kaufmann-attention-cpu.yaml");
}

#[test]
fn spd_linear_components_cpu() {
    run_seed("spd-linear-components-cpu.yaml");
}

#[test]
fn attention_transformerlm_cpu() {
    run_seed("attention-transformerlm-cpu.yaml");
}

#[test]
fn kernelpytorch_quick_cpu() {
    run_seed("kernelpytorch-quick-cpu.yaml");
}

#[test]
fn te_surgical_rope_cpu() {
    run_seed("te-surgical-rope-cpu.yaml");
}

/// The GPU pipelines cannot run here, but they must stay valid.
#[test]
fn every_workflow_validates() {
    let repo = Repo::new();
    copy_workflows(&repo);
    let mut files: Vec<String> = std::fs::read_dir(repo.path().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| format!("workflows/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    files.sort();
    assert!(files.len() >= 11, "quickstart and two per seed: {files:?}");
    let mut cmd = repo.regress();
    cmd.arg("validate").args(&files);
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
