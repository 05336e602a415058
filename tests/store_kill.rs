//! Killing `regress run` never leaves a broken record: every record file in
//! the store parses, whatever moment the kill lands on.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{output, Repo};
use assert_cmd::cargo::CommandCargoExt;
use regress::record::{CaseStatus, RunState};
use regress::store::DirStore;

/// Many small cases so that the store is rewritten every few milliseconds.
fn busy_pipeline() -> String {
    let batches: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    format!(
        "version: 1\nname: busy\nmodel: {{builtin: mlp}}\nrunner:\n  backend: mock\n  processes: 3\n  measure: {{min_iters: 500}}\nmatrix:\n  batch: [{}]\n",
        batches.join(", ")
    )
}

fn spawn_run(repo: &Repo, delay_ms: &str) -> std::process::Child {
    std::process::Command::cargo_bin("regress")
        .unwrap()
        .current_dir(repo.path())
        .args(["run", "p.yaml"])
        .env("REGRESS_MOCK_DELAY_MS", delay_ms)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn assert_all_records_parse(repo: &Repo) -> Vec<regress::record::Record> {
    let files = repo.record_files();
    files
        .iter()
        .map(|f| regress::store::read_record(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}

#[test]
fn sigkill_at_any_moment_leaves_only_complete_records() {
    let repo = Repo::new();
    repo.write("p.yaml", &busy_pipeline());
    repo.commit("c");
    // Two kills during start-up, before anything is written.
    for kill_after_ms in [5u64, 100] {
        let mut child = spawn_run(&repo, "1");
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_all_records_parse(&repo);
    }
    // Then kills at spread-out moments after the run's first write, while
    // it rewrites its record after every case (every few milliseconds).
    let offsets_ms = [0u64, 3, 7, 13, 21, 34, 55, 89, 144, 233];
    for (i, offset) in offsets_ms.iter().enumerate() {
        let before = repo.record_files().len();
        let mut child = spawn_run(&repo, "1");
        let started = Instant::now();
        while repo.record_files().len() == before {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "run {i} never wrote its record"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(*offset));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_all_records_parse(&repo);
    }
    let records = assert_all_records_parse(&repo);
    assert!(
        records.len() >= offsets_ms.len(),
        "every run that wrote keeps its record, got {}",
        records.len()
    );
    assert!(
        records.iter().all(|r| r.state == RunState::Running),
        "a killed run cannot say it completed"
    );
    // Records written before the kill hold whole cases only: every ok case has samples.
    for r in &records {
        for c in r.cases.iter().filter(|c| c.status == CaseStatus::Ok) {
            assert!(!c.metrics["latency"].processes.is_empty());
        }
    }
    // The temporary files the kills left behind are never taken for records.
    let store = regress::store::Store::load(
        &DirStore::new(repo.path().join(".regress")),
        &records[0].commit.sha,
    )
    .unwrap();
    assert_eq!(store.len(), records.len());
}

#[test]
fn sigint_stops_keeps_finished_cases_and_exits_130() {
    let repo = Repo::new();
    repo.write("p.yaml", &busy_pipeline());
    repo.commit("c");
    let mut child = spawn_run(&repo, "20");
    // Wait until the first checkpoint shows finished cases.
    let started = Instant::now();
    loop {
        let done = repo
            .record_files()
            .first()
            .and_then(|f| regress::store::read_record(f).ok())
            .is_some_and(|r| r.cases.iter().any(|c| c.status == CaseStatus::Ok));
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never stored a case"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130));
    let records = assert_all_records_parse(&repo);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.state, RunState::Interrupted);
    assert!(r.finished_at.is_some());
    assert!(r.cases.iter().any(|c| c.status == CaseStatus::Ok));
    assert!(r.cases.iter().any(|c| c.status == CaseStatus::Interrupted));

    // An interrupted record still compares, with a note saying so.
    repo.write("README", "x\n");
    repo.commit("d");
    let (code, _, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_MOCK_DELAY_MS", "0"),
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = output(repo.regress().args(["compare", "HEAD~1", "HEAD"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("did not complete"), "{stdout}");
    assert!(stdout.contains("not comparable"), "{stdout}");
}
