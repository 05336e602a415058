//! Which base a comparison uses: the merge-base by default, the nearest
//! ancestor with results, never another machine's results silently, record
//! files without git; and `regress ab` cleaning up its worktrees.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{mock_pipeline, output, Repo};
use assert_cmd::cargo::CommandCargoExt;

fn run(repo: &Repo, envs: &[(&str, &str)]) {
    let mut cmd = repo.regress();
    cmd.args(["run", "p.yaml"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

fn json(repo: &Repo, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["compare"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--format", "json"]);
    let (code, stdout, stderr) = output(repo.regress().args(&full));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn fp32_verdicts(v: &serde_json::Value) -> Vec<String> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["label"].as_str().unwrap().contains("fp32") && r["metric"] == "latency")
        .map(|r| r["verdict"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn merge_base_is_the_default_and_exact_uses_the_branch_tip() {
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("m", 2, 3));
    repo.commit("c1");
    run(&repo, &[]);
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("f.txt", "feature\n");
    repo.commit("feature work");
    run(&repo, &[]);
    repo.git(&["checkout", "-q", "main"]);
    repo.write("m.txt", "main moved on, and got twice as slow\n");
    repo.commit("c3");
    run(&repo, &[("REGRESS_MOCK_SCALE", "2")]);

    let v = json(&repo, &["main", "feature"]);
    let c1 = repo.git(&["rev-parse", "main~1"]);
    assert_eq!(
        v["base"]["sha"],
        c1.as_str(),
        "merge-base of main and feature is c1"
    );
    assert!(
        fp32_verdicts(&v)
            .iter()
            .all(|x| x == "unchanged" || x == "inconclusive"),
        "{v}"
    );

    let v = json(&repo, &["main", "feature", "--exact"]);
    assert_eq!(v["base"]["sha"], repo.git(&["rev-parse", "main"]).as_str());
    assert!(fp32_verdicts(&v).iter().all(|x| x == "improved"), "{v}");
}

#[test]
fn walks_first_parents_to_the_nearest_commit_with_results() {
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("m", 1, 3));
    repo.commit("c1");
    run(&repo, &[]);
    for i in 2..=3 {
        repo.write("x.txt", &format!("{i}\n"));
        repo.commit(&format!("c{i} without results"));
    }
    repo.write("x.txt", "head\n");
    repo.commit("c4");
    run(&repo, &[]);

    let (code, stdout, stderr) = output(repo.regress().args(["compare", "HEAD~1", "HEAD"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("(2 commits back along its first parents)"),
        "{stdout}"
    );
    let v = json(&repo, &["HEAD~1", "HEAD"]);
    assert_eq!(v["base"]["distance"], 2);
    assert_eq!(
        v["base"]["sha"],
        repo.git(&["rev-parse", "HEAD~3"]).as_str()
    );

    let (code, _, stderr) =
        output(
            repo.regress()
                .args(["compare", "HEAD~1", "HEAD", "--max-walk", "1"]),
        );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("or any of its 1 first-parent ancestors"),
        "{stderr}"
    );
}

#[test]
fn each_pipeline_walks_to_its_own_nearest_results() {
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("m", 1, 3));
    repo.write("q.yaml", &mock_pipeline("n", 1, 3));
    let run_both = |repo: &Repo| {
        for file in ["p.yaml", "q.yaml"] {
            let (code, stdout, stderr) = output(repo.regress().args(["run", file]));
            assert_eq!(code, 0, "{stdout}{stderr}");
        }
    };
    repo.commit("c1");
    run_both(&repo);
    repo.write("x.txt", "2\n");
    repo.write("r.yaml", &mock_pipeline("o", 1, 3));
    repo.commit("c2: only m ran, and o");
    run(&repo, &[]);
    let (code, stdout, stderr) = output(repo.regress().args(["run", "r.yaml"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    repo.write("x.txt", "3\n");
    repo.commit("c3");
    run_both(&repo);

    let v = json(&repo, &["HEAD~1", "HEAD"]);
    assert_eq!(
        v["base"]["sha"],
        repo.git(&["rev-parse", "HEAD~1"]).as_str(),
        "{v}"
    );
    let n_rows: Vec<&serde_json::Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pipeline"] == "n" && r["metric"] == "latency")
        .collect();
    assert!(!n_rows.is_empty(), "{v}");
    for row in &n_rows {
        assert_ne!(row["verdict"], "new", "{row}");
    }
    // o ran at the base but not at head: removed, not hidden.
    let o_rows: Vec<&serde_json::Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pipeline"] == "o")
        .collect();
    assert!(!o_rows.is_empty(), "{v}");
    assert!(o_rows.iter().all(|r| r["verdict"] == "removed"), "{v}");
    let c1 = repo.git(&["rev-parse", "--short=7", "HEAD~2"]);
    let note = format!("pipeline n: base results from {c1} (1 commit back");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with(&note)),
        "{note} not in {}",
        v["notes"]
    );
}

#[test]
fn other_machines_are_not_compared_unless_asked() {
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("m", 1, 3));
    repo.commit("c1");
    run(&repo, &[("REGRESS_RUNNER_LABEL", "runner-a")]);
    repo.write("x.txt", "x\n");
    repo.commit("c2");
    run(&repo, &[("REGRESS_RUNNER_LABEL", "runner-b")]);

    let v = json(&repo, &["HEAD~1", "HEAD", "--max-walk", "0"]);
    assert_eq!(fp32_verdicts(&v), ["not_comparable"]);
    assert!(
        v["notes"].to_string().contains("not compared"),
        "{}",
        v["notes"]
    );

    let v = json(&repo, &["HEAD~1", "HEAD", "--allow-fingerprint-mismatch"]);
    assert_ne!(fp32_verdicts(&v), ["not_comparable"]);
    assert!(
        v["notes"].to_string().contains("compared across machines"),
        "{}",
        v["notes"]
    );
}

#[test]
fn record_files_compare_without_git() {
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("m", 2, 3));
    repo.commit("c1");
    run(&repo, &[]);
    repo.write("x.txt", "x\n");
    repo.commit("c2");
    run(&repo, &[("REGRESS_MOCK_SCALE", "1.5")]);
    let files = repo.record_files();
    assert_eq!(files.len(), 2);
    let elsewhere = tempfile::tempdir().unwrap();
    let (first, second) = {
        let a = regress::store::read_record(&files[0]).unwrap();
        if a.commit.sha.as_str() == repo.git(&["rev-parse", "HEAD~1"]) {
            (&files[0], &files[1])
        } else {
            (&files[1], &files[0])
        }
    };
    let out = std::process::Command::cargo_bin("regress")
        .unwrap()
        .current_dir(elsewhere.path())
        .args(["compare", "--records"])
        .arg(first)
        .arg(second)
        .args(["--fail-on-regression"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 regressed"), "{stdout}");
}

#[test]
fn history_of_earlier_baseline_runs_gives_the_level_to_test_against() {
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("m", 1, 2));
    for i in 0..6 {
        repo.write("x.txt", &format!("{i}\n"));
        repo.commit(&format!("c{i}"));
        run(&repo, &[("REGRESS_MOCK_SEED", &i.to_string())]);
    }
    let v = json(&repo, &["HEAD~1", "HEAD"]);
    let row = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"].as_str().unwrap().contains("fp32"))
        .unwrap();
    // Four earlier commits and the base: head is tested against the level
    // of the base branch, not the base run alone.
    assert_eq!(row["method"], "history_level", "{row}");
    assert_eq!(row["history_commits"], 4, "{row}");
}

const AB_PIPELINE: &str = "version: 1
name: ab
model: {command: \"sh bench.sh\"}
runner: {backend: command, processes: 3, warmup: {min_iters: 1, min_time: 0s}, measure: {min_iters: 5, min_time: 0s, max_time: 1s}}
matrix: {n: [1]}
compare: {threshold: 10%}
";

fn ab_repo(head_sleep: &str) -> Repo {
    let repo = Repo::new();
    repo.write("p.yaml", AB_PIPELINE);
    repo.write("bench.sh", "sleep 0.01\n");
    repo.commit("base");
    repo.write("bench.sh", &format!("sleep {head_sleep}\n"));
    repo.commit("head");
    repo
}

fn assert_no_ab_leftovers(repo: &Repo) {
    let worktrees = repo.git(&["worktree", "list"]);
    assert_eq!(
        worktrees.lines().count(),
        1,
        "only the main work tree remains: {worktrees}"
    );
    let branches = repo.git(&["branch", "--list"]);
    assert!(!branches.contains("regress-ab-"), "{branches}");
}

#[test]
fn ab_runs_both_revisions_interleaved_and_removes_its_worktrees() {
    let repo = ab_repo("0.05");
    let (code, stdout, stderr) =
        output(
            repo.regress()
                .args(["ab", "HEAD~1", "HEAD", "p.yaml", "--fail-on-regression"]),
        );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("regressed"), "{stdout}");
    assert_no_ab_leftovers(&repo);
    let records = repo.record_files();
    assert_eq!(records.len(), 2, "one record per revision");
    let shas: Vec<String> = records
        .iter()
        .map(|f| {
            regress::store::read_record(f)
                .unwrap()
                .commit
                .sha
                .to_string()
        })
        .collect();
    assert!(
        shas.contains(&repo.git(&["rev-parse", "HEAD~1"]))
            && shas.contains(&repo.git(&["rev-parse", "HEAD"]))
    );
}

#[test]
fn ab_removes_its_worktrees_after_sigint() {
    let repo = ab_repo("0.3");
    let mut child = std::process::Command::cargo_bin("regress")
        .unwrap()
        .current_dir(repo.path())
        .args(["ab", "HEAD~1", "HEAD", "p.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while repo.git(&["worktree", "list"]).lines().count() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "ab never created its worktrees"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_no_ab_leftovers(&repo);
    for f in repo.record_files() {
        let r = regress::store::read_record(&f).unwrap();
        assert_eq!(r.state, regress::record::RunState::Interrupted);
    }
}
