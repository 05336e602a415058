//! `regress ab --until-conclusive` with the mock backend: a commit that
//! writes `scale` makes the head slower, as a code change would; the mock's
//! run-to-run noise keeps a case undecided for as long as needed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

use crate::common::{output, Repo};

/// One case, the mock's noise, a pipeline's alpha of `alpha`.
fn pipeline(processes: u32, alpha: &str) -> String {
    format!(
        "version: 1\nname: adaptive\nmodel: {{builtin: mlp}}\nrunner:\n  backend: mock\n  processes: {processes}\n  measure: {{min_iters: 20}}\nmatrix:\n  batch: [1]\ncompare: {{threshold: 5%, alpha: {alpha}}}\n"
    )
}

/// A repository whose head commit scales the mock's latency by `head_scale`.
fn repo(processes: u32, alpha: &str, head_scale: &str) -> Repo {
    let repo = Repo::new();
    repo.write("p.yaml", &pipeline(processes, alpha));
    repo.write("scale", "1\n");
    repo.commit("base");
    repo.write("scale", &format!("{head_scale}\n"));
    repo.commit("head");
    repo
}

/// `regress ab HEAD~1 HEAD p.yaml --until-conclusive --format json` plus
/// `extra`, with the mock reading `scale` from each revision.
fn ab(repo: &Repo, extra: &[&str], env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let mut cmd = repo.regress();
    cmd.args([
        "ab",
        "HEAD~1",
        "HEAD",
        "p.yaml",
        "--until-conclusive",
        "--format",
        "json",
    ])
    .args(extra)
    .env("REGRESS_MOCK_SCALE_FILE", "scale");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (code, stdout, stderr) = output(&mut cmd);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (code, v, stderr)
}

#[test]
fn a_large_change_is_decided_at_the_first_look() {
    let repo = repo(3, "0.01", "1.5");
    let (code, v, stderr) = ab(&repo, &["--max-pairs", "30", "--fail-on-regression"], &[]);
    assert_eq!(code, 1, "the gate fails on the regression: {v}{stderr}");
    assert_eq!(
        v["schema_version"], 1,
        "the adaptive report's format 1: {v}"
    );
    assert_eq!(v["stop"], "decided", "{v}");
    let row = &v["rows"][0];
    assert_eq!(row["verdict"], "regressed", "{v}");
    // The pipeline's three processes were enough: no pair was added.
    assert_eq!(row["pairs"], 3, "{v}");
    let ratio = row["ratio"].as_f64().unwrap();
    assert!((ratio - 1.5).abs() < 0.02, "{v}");
    assert!(row["ratio_lo"].as_f64().unwrap() > 1.05, "{v}");
    assert_eq!(v["spent"][0]["verdict"], "regressed", "{v}");
    assert!(
        v["spent"][0]["device_seconds"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    // Both revisions' records are stored, complete, with three processes.
    let records = repo.record_files();
    assert_eq!(records.len(), 2);
    for f in records {
        let r = regress::store::read_record(&f).unwrap();
        assert_eq!(r.state, regress::record::RunState::Complete);
        assert_eq!(r.cases[0].metrics["latency"].processes.len(), 3);
    }
}

#[test]
fn an_unclear_case_gets_more_pairs_until_the_cap() {
    // 10 % run-to-run noise against a 5 % threshold: eight pairs cannot
    // tell, so every pair up to the cap is run. Alpha 0.001 keeps a false
    // verdict out of the test's way.
    let repo = repo(3, "0.001", "1.0");
    let (code, v, stderr) = ab(
        &repo,
        &["--max-pairs", "8"],
        &[("REGRESS_MOCK_PROCESS_CV", "0.1")],
    );
    assert_eq!(code, 0, "{v}{stderr}");
    assert_eq!(v["stop"], "max_pairs", "{v}");
    let row = &v["rows"][0];
    assert!(
        row["verdict"] == "inconclusive" || row["verdict"] == "suspect",
        "{v}"
    );
    assert_eq!(row["pairs"], 8, "{v}");
    for f in repo.record_files() {
        let r = regress::store::read_record(&f).unwrap();
        assert_eq!(r.cases[0].metrics["latency"].processes.len(), 8);
    }
}

#[test]
fn a_small_change_that_stays_unclear_stops_at_the_budget() {
    // Each process takes 300 ms of wall time; a 2 s budget holds the two
    // pairs of the pipeline and a few more, far from the cap of 100.
    let repo = repo(2, "0.001", "1.0");
    let (code, v, stderr) = ab(
        &repo,
        &["--budget", "2s", "--max-pairs", "100"],
        &[
            ("REGRESS_MOCK_PROCESS_CV", "0.1"),
            ("REGRESS_MOCK_DELAY_MS", "300"),
        ],
    );
    assert_eq!(code, 0, "{v}{stderr}");
    assert_eq!(v["stop"], "budget", "{v}");
    let pairs = v["rows"][0]["pairs"].as_u64().unwrap();
    assert!((2..100).contains(&pairs), "{v}");
}

#[test]
fn markdown_is_refused_before_anything_is_measured() {
    let repo = repo(2, "0.01", "1.0");
    let (code, stdout, stderr) = output(repo.regress().args([
        "ab",
        "HEAD~1",
        "HEAD",
        "p.yaml",
        "--until-conclusive",
        "--format",
        "markdown",
    ]));
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("regress compare"), "{stderr}");
    assert!(repo.record_files().is_empty());
    // The budget only means something with --until-conclusive.
    let (code, _, stderr) = output(
        repo.regress()
            .args(["ab", "HEAD~1", "HEAD", "p.yaml", "--budget", "1m"]),
    );
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn ctrl_c_while_adding_pairs_keeps_the_records_readable() {
    let repo = repo(2, "0.001", "1.0");
    let mut child = std::process::Command::cargo_bin("regress")
        .unwrap()
        .current_dir(repo.path())
        .args(["ab", "HEAD~1", "HEAD", "p.yaml", "--until-conclusive"])
        .env("REGRESS_MOCK_SCALE_FILE", "scale")
        .env("REGRESS_MOCK_PROCESS_CV", "0.1")
        .env("REGRESS_MOCK_DELAY_MS", "200")
        .env_remove("REGRESS_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until pairs beyond the pipeline's two are being added.
    let started = Instant::now();
    let processes = |repo: &Repo| -> usize {
        repo.record_files()
            .iter()
            .filter_map(|f| regress::store::read_record(f).ok())
            .filter_map(|r| r.cases[0].metrics.get("latency").map(|m| m.processes.len()))
            .min()
            .unwrap_or(0)
    };
    while processes(&repo) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no pair was added"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let worktrees = repo.git(&["worktree", "list"]);
    assert_eq!(worktrees.lines().count(), 1, "{worktrees}");
    let records = repo.record_files();
    assert_eq!(records.len(), 2);
    for f in records {
        let r = regress::store::read_record(&f).unwrap();
        assert_eq!(r.state, regress::record::RunState::Interrupted);
        assert!(r.cases[0].metrics["latency"].processes.len() >= 3);
    }
}

#[test]
fn pairs_stay_aligned_when_the_revisions_ask_for_different_processes() {
    // The head asks for four processes, the base for two: the base catches
    // up first, then both sides grow together to the cap.
    let repo = Repo::new();
    repo.write("p.yaml", &pipeline(2, "0.001"));
    repo.write("scale", "1\n");
    repo.commit("base");
    repo.write("p.yaml", &pipeline(4, "0.001"));
    repo.commit("head");
    let (code, v, stderr) = ab(
        &repo,
        &["--max-pairs", "6"],
        &[("REGRESS_MOCK_PROCESS_CV", "0.1")],
    );
    assert_eq!(code, 0, "{v}{stderr}");
    assert_eq!(v["stop"], "max_pairs", "{v}");
    assert_eq!(v["rows"][0]["pairs"], 6, "{v}");
    for f in repo.record_files() {
        let r = regress::store::read_record(&f).unwrap();
        assert_eq!(r.cases[0].metrics["latency"].processes.len(), 6, "{v}");
    }
}
