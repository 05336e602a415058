//! The whole flow in scratch repositories: run at two commits, compare,
//! gate on regressions.

use crate::common::{mock_pipeline, output, Repo};

/// The sleep-based tests measure wall time: every test of this file takes
/// the machine lock, so no other test of it (nor a test that loads the
/// machine, such as the git store's) runs while one measures.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    crate::common::machine_lock()
}

const SLEEP_PIPELINE: &str = "version: 1
name: sleepy
model:
  command: \"sh bench.sh  # sleeps {{ ms }} ms at first\"
runner:
  backend: command
  processes: 6
  warmup: {min_iters: 1, min_time: 0s}
  measure: {min_iters: 10, min_time: 0s, max_time: 1s}
  timeout: 30s
matrix:
  ms: [20]
compare: {threshold: 15%, alpha: 0.01}
";

/// A benchmark script that sleeps `ms` milliseconds: one `sleep`, no other
/// process, so start-up overhead stays small beside the sleep.
fn sleep_script(ms: u32) -> String {
    format!("#!/bin/sh\nexec sleep {}.{:03}\n", ms / 1000, ms % 1000)
}

fn run_at(repo: &Repo, pipeline: &str) {
    let (code, stdout, stderr) = output(repo.regress().args(["run", pipeline]));
    assert_eq!(code, 0, "run failed:\n{stdout}\n{stderr}");
}

#[test]
fn command_pipeline_slower_script_regresses() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("workflows/sleepy.yaml", SLEEP_PIPELINE);
    repo.write("bench.sh", &sleep_script(20));
    repo.commit("20 ms");
    run_at(&repo, "workflows/sleepy.yaml");
    repo.write("bench.sh", &sleep_script(30));
    repo.commit("30 ms");
    run_at(&repo, "workflows/sleepy.yaml");

    let (code, stdout, stderr) = output(repo.regress().args(["compare", "HEAD~1", "HEAD"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("sleepy[ms=20]"))
        .expect(&stdout);
    assert!(line.contains("regressed"), "{stdout}");
    assert!(stdout.contains("1 regressed"), "{stdout}");

    let (code, stdout, _) =
        output(
            repo.regress()
                .args(["compare", "HEAD~1", "HEAD", "--fail-on-regression"]),
        );
    assert_eq!(code, 1, "{stdout}");
}

#[test]
fn command_pipeline_unchanged_script_does_not_regress() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("workflows/sleepy.yaml", SLEEP_PIPELINE);
    repo.write("bench.sh", &sleep_script(20));
    repo.commit("first");
    run_at(&repo, "workflows/sleepy.yaml");
    repo.write("README", "an unrelated change\n");
    repo.commit("second");
    run_at(&repo, "workflows/sleepy.yaml");

    let (code, stdout, stderr) =
        output(
            repo.regress()
                .args(["compare", "HEAD~1", "HEAD", "--fail-on-regression"]),
        );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("sleepy[ms=20]"))
        .expect(&stdout);
    assert!(
        line.contains("unchanged") || line.contains("inconclusive"),
        "{stdout}"
    );
    assert!(!stdout.contains("regressed"), "{stdout}");
}

/// A script that reports `rate` items per second, plus 0–2 % (from its
/// process id), as its last line of output.
fn rate_script(rate: u32) -> String {
    format!(
        "#!/bin/sh\necho warming up\necho \"{{\\\"throughput\\\": $(( {rate} + $$ % {} ))}}\"\n",
        rate / 50
    )
}

#[test]
fn reported_throughput_is_compared_higher_is_better() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write(
        "rate.yaml",
        "version: 1\nname: rate\nmodel: {command: \"sh rate.sh {{ n }}\", output: json}\nrunner: {backend: command, processes: 3, warmup: {min_iters: 1, min_time: 0s}, measure: {min_iters: 8, min_time: 0s, max_time: 1s}}\nmatrix: {n: [1]}\n",
    );
    repo.write("rate.sh", &rate_script(1000));
    repo.commit("fast");
    run_at(&repo, "rate.yaml");
    repo.write("rate.sh", &rate_script(800));
    repo.commit("slower");
    run_at(&repo, "rate.yaml");

    let row = |args: &[&str]| {
        let (code, json, stderr) = output(repo.regress().args(args));
        assert_eq!(code, 0, "{json}{stderr}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == "throughput")
            .cloned()
            .unwrap_or_else(|| panic!("no throughput row: {json}"))
    };
    let forward = row(&["compare", "HEAD~1", "HEAD", "--format", "json"]);
    assert_eq!(forward["direction"], "higher_is_better", "{forward}");
    assert_eq!(forward["verdict"], "regressed", "{forward}");
    let ratio = forward["ratio"].as_f64().unwrap();
    assert!((ratio - 0.8).abs() < 0.02, "{forward}");
    assert_eq!(forward["unit"], "1/s", "{forward}");
    let backward = row(&["compare", "HEAD", "HEAD~1", "--exact", "--format", "json"]);
    assert_eq!(backward["verdict"], "improved", "{backward}");

    let (code, stdout, _) =
        output(
            repo.regress()
                .args(["compare", "HEAD~1", "HEAD", "--fail-on-regression"]),
        );
    assert_eq!(code, 1, "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("throughput"))
        .expect(&stdout);
    assert!(
        line.contains(" k/s") && line.contains("regressed"),
        "{stdout}"
    );
}

#[test]
fn a_command_reporting_an_unknown_metric_fails_with_the_valid_ones() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write(
        "p.yaml",
        "version: 1\nname: odd\nmodel: {command: \"echo '{\\\"tokens\\\": {{ n }}}'\", output: json}\nrunner: {backend: command, processes: 1, measure: {min_iters: 2, min_time: 0s, max_time: 500ms}}\nmatrix: {n: [5]}\n",
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(repo.regress().args(["run", "p.yaml"]));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("unknown metric `tokens`"), "{stdout}");
    assert!(stdout.contains("\"throughput\""), "{stdout}");
}

#[test]
fn failing_command_fails_its_case_the_run_goes_on_and_exits_1() {
    let _guard = serial();
    let repo = Repo::new();
    // A traceback's worth of stderr: the error is named on the last line.
    repo.write_executable(
        "bench.sh",
        "#!/bin/sh\ntest \"$1\" -ne 2 && exit 0\necho 'Traceback (most recent call last):' >&2\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo \"  frame $i\" >&2; done\necho 'ValueError: the last line names it' >&2\nexit 3\n",
    );
    repo.write(
        "p.yaml",
        "version: 1\nname: flaky\nmodel: {command: \"./bench.sh {{ n }}\"}\nrunner: {backend: command, processes: 1, measure: {min_iters: 3, min_time: 0s, max_time: 500ms}}\nmatrix: {n: [1, 2, 3]}\n",
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(repo.regress().args(["run", "p.yaml"]));
    assert_eq!(code, 1, "a failed case fails the run:\n{stdout}{stderr}");
    assert!(stderr.contains("1 case(s) failed"), "{stderr}");
    assert!(stderr.contains("--keep-going"), "{stderr}");
    let failed = stdout.lines().find(|l| l.contains("flaky[n=2]")).unwrap();
    assert!(failed.contains("failed"), "{stdout}");
    assert!(stdout.contains("exited with status 3"), "{stdout}");
    assert!(
        stdout.contains("ValueError: the last line names it"),
        "the end of stderr is shown:\n{stdout}"
    );
    assert!(stdout.contains("frame 12"), "{stdout}");
    for n in [1, 3] {
        let ok = stdout
            .lines()
            .find(|l| l.contains(&format!("flaky[n={n}]")))
            .unwrap();
        assert!(ok.contains(" ok"), "{stdout}");
    }
    let (code, stdout, stderr) = output(repo.regress().args(["run", "p.yaml", "--keep-going"]));
    assert_eq!(code, 0, "--keep-going exits 0:\n{stdout}{stderr}");
    assert!(
        stdout.contains("flaky[n=3]"),
        "every case still runs:\n{stdout}"
    );
}

#[test]
fn mock_regression_is_found_and_gated() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("mocked", 3, 2));
    repo.commit("base");
    run_at(&repo, "p.yaml");
    repo.write("README", "change\n");
    repo.commit("head");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_MOCK_SCALE", "1.2"),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");

    let (code, stdout, _) =
        output(
            repo.regress()
                .args(["compare", "main~1", "main", "--fail-on-regression"]),
        );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("3 regressed, 3 skipped"), "{stdout}");
    assert!(stdout.contains("+20.0%"), "{stdout}");

    let (code, md, _) = output(
        repo.regress()
            .args(["compare", "HEAD~1", "HEAD", "--format", "markdown"]),
    );
    assert_eq!(code, 0);
    assert!(md.starts_with("### 🔴 regress:"), "{md}");
    assert!(md.contains("| `mlp[batch=1,fp32,eager]/forward` |"), "{md}");
    assert!(md.contains("🔴 regressed"), "{md}");

    let (code, json, _) = output(
        repo.regress()
            .args(["compare", "HEAD~1", "HEAD", "--format", "json"]),
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 3, "JSON report format 3");
    assert_eq!(v["sources"]["mocked"], "p.yaml");
    assert_eq!(v["counts"]["regressed"], 3);
    let ratio = v["rows"][0]["ratio"].as_f64().unwrap();
    assert!((ratio - 1.2).abs() < 0.01, "{ratio}");
}

#[test]
fn identical_runs_do_not_regress() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("mocked", 4, 2));
    repo.commit("base");
    run_at(&repo, "p.yaml");
    repo.write("README", "change\n");
    repo.commit("head");
    let (code, _, _) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_MOCK_SEED", "7"),
    );
    assert_eq!(code, 0);
    let (code, stdout, _) =
        output(
            repo.regress()
                .args(["compare", "HEAD~1", "HEAD", "--fail-on-regression"]),
        );
    assert_eq!(code, 0, "{stdout}");
    for line in stdout.lines().filter(|l| l.contains("fp32,eager]")) {
        assert!(
            line.contains("unchanged") || line.contains("inconclusive"),
            "{stdout}"
        );
    }
    assert!(
        !stdout.contains("regressed") && !stdout.contains("improved"),
        "{stdout}"
    );
}

#[test]
fn missing_results_say_which_commit_and_how_to_fix() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("mocked", 1, 1));
    let first = repo.commit("base");
    repo.write("README", "change\n");
    repo.commit("head");
    run_at(&repo, "p.yaml");
    let (code, _, stderr) = output(repo.regress().args(["compare", "HEAD~1", "HEAD"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "no results stored for base `HEAD~1` ({})",
            &first[..7]
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("git checkout {} && regress run", &first[..7])),
        "{stderr}"
    );

    assert!(
        stderr.contains(&format!(
            "{} has no results at all; head `HEAD` (",
            &first[..7]
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(") has results of pipeline(s) mocked"),
        "{stderr}"
    );

    let (code, _, stderr) = output(repo.regress().args(["compare", "nope", "HEAD"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("`nope` does not name a commit"), "{stderr}");

    // Results of another pipeline at base: named, with what head has.
    repo.write("q.yaml", &mock_pipeline("other", 1, 1));
    repo.write("README", "again\n");
    repo.commit("third");
    run_at(&repo, "q.yaml");
    let (code, _, stderr) = output(repo.regress().args(["compare", "HEAD~1", "HEAD"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no results stored for base `HEAD~1`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("has results of pipeline(s) mocked; head `HEAD` (")
            && stderr.contains(") has results of pipeline(s) other"),
        "{stderr}"
    );
}

#[test]
fn revisions_resolve_by_tag_and_short_sha() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("mocked", 1, 1));
    let first = repo.commit("base");
    repo.git(&["tag", "v1"]);
    run_at(&repo, "p.yaml");
    repo.write("README", "change\n");
    repo.commit("head");
    run_at(&repo, "p.yaml");
    let (code, stdout, stderr) = output(repo.regress().args(["compare", "v1", &first[..8]]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 unchanged"), "{stdout}");
    let (code, stdout, _) = output(repo.regress().args(["compare", "v1", "main"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("main"), "{stdout}");
}

#[test]
fn run_outside_git_is_a_clear_error() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), mock_pipeline("mocked", 1, 1)).unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("regress").unwrap();
    let out = cmd
        .current_dir(dir.path())
        .args(["run", "p.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not inside a git repository"),
        "{stderr}"
    );
}

#[test]
fn workers_do_not_see_secrets_unless_passed_through() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write(
        "p.yaml",
        "version: 1\nname: env\nmodel: {command: \"env > env-{{ n }}.txt\"}\nrunner: {backend: command, processes: 1, measure: {min_iters: 2, min_time: 0s, max_time: 500ms}, env_passthrough: [HF_TOKEN]}\nmatrix: {n: [1]}\n",
    );
    repo.commit("c");
    let (code, _, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("GITHUB_TOKEN", "ghp_secret")
            .env("MY_PASSWORD", "hunter2")
            .env("HF_TOKEN", "hf_passed")
            .env("HARMLESS", "visible"),
    );
    assert_eq!(code, 0, "{stderr}");
    let env = std::fs::read_to_string(repo.path().join("env-1.txt")).unwrap();
    assert!(
        !env.contains("ghp_secret") && !env.contains("GITHUB_TOKEN"),
        "{env}"
    );
    assert!(!env.contains("hunter2"), "{env}");
    assert!(env.contains("HF_TOKEN=hf_passed"), "{env}");
    assert!(env.contains("HARMLESS=visible"), "{env}");
}

#[test]
fn a_case_that_crashes_at_head_fails_the_gate_and_is_named_first() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write(
        "p.yaml",
        "version: 1\nname: crashy\nmodel: {command: \"sh bench.sh {{ n }}\"}\nrunner: {backend: command, processes: 2, warmup: {min_iters: 1, min_time: 0s}, measure: {min_iters: 3, min_time: 0s, max_time: 300ms}}\nmatrix: {n: [1, 2]}\n",
    );
    repo.write("bench.sh", "true\n");
    repo.commit("base");
    run_at(&repo, "p.yaml");
    repo.write(
        "bench.sh",
        "if [ \"$1\" = 2 ]; then echo 'Traceback (most recent call last):' >&2; echo 'RuntimeError: CUDA error: an illegal memory access' >&2; exit 1; fi\n",
    );
    repo.commit("head breaks n=2");
    let (code, stdout, stderr) = output(repo.regress().args(["run", "p.yaml", "--keep-going"]));
    assert_eq!(code, 0, "{stdout}{stderr}");

    let compare = |extra: &[&str]| {
        let mut args = vec!["compare", "HEAD~1", "HEAD"];
        args.extend_from_slice(extra);
        output(repo.regress().args(&args))
    };
    let (code, stdout, stderr) = compare(&["--fail-on-regression"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let failure = stdout.find("crashy[n=2]").expect(&stdout);
    let table = stdout.find("crashy[n=1]").expect(&stdout);
    assert!(failure < table, "the failure comes first:\n{stdout}");
    assert!(stdout.contains("failed at head"), "{stdout}");
    assert!(stdout.contains("illegal memory access"), "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");

    // What the gate fails on is the caller's choice; without a flag it reports only.
    assert_eq!(compare(&["--fail-on", "failure"]).0, 1);
    assert_eq!(compare(&["--fail-on", "any"]).0, 1);
    assert_eq!(compare(&["--fail-on", "regression"]).0, 0);
    assert_eq!(compare(&[]).0, 0);

    let (code, md, _) = compare(&["--format", "markdown", "--fail-on", "failure"]);
    assert_eq!(code, 1);
    let failure = md.find("**Failed at head**").expect(&md);
    assert!(failure < md.find("| Case |").unwrap(), "{md}");
    assert!(md.contains("illegal memory access"), "{md}");

    let (_, json, _) = compare(&["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["gate"]["failed"], true);
    assert_eq!(v["failures"][0]["label"], "crashy[n=2]");
}

#[test]
fn shards_merge_into_one_comparison_and_a_missing_shard_is_named() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("sharded", 5, 2));
    repo.commit("base");
    run_at(&repo, "p.yaml");
    repo.write("README", "change\n");
    repo.commit("head");
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let (code, stdout, stderr) =
            output(repo.regress().args(["run", "p.yaml", "--shard", &shard]));
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
    // Three shards at head: every case compared once, none new or removed.
    let json = |repo: &Repo| -> serde_json::Value {
        let (code, out, err) = output(
            repo.regress()
                .args(["compare", "HEAD~1", "HEAD", "--format", "json"]),
        );
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let v = json(&repo);
    assert_eq!(v["counts"]["total"], 10, "{v}");
    assert_eq!(v["counts"]["new"], 0, "{v}");
    assert_eq!(v["counts"]["removed"], 0, "{v}");
    assert_eq!(v["counts"]["missing"], 0, "{v}");

    // Without shard 2 its cases are missing, named by shard, and gate the job.
    let store = repo.path().join(".regress/records");
    let head = repo.git(&["rev-parse", "HEAD"]);
    let shard_two = std::fs::read_dir(store.join(&head).join("sharded"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let r = regress::store::read_record(p).unwrap();
            r.shard.unwrap().shard.index == 2
        })
        .unwrap();
    std::fs::remove_file(shard_two).unwrap();
    let v = json(&repo);
    assert_eq!(
        v["counts"]["missing"], 3,
        "ten cases dealt over three shards: 4, 3, 3: {v}"
    );
    assert_eq!(v["counts"]["removed"], 0, "{v}");
    assert_eq!(v["gate"]["failed"], true);
    assert!(
        v["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("shard 2/3 of `HEAD` did not arrive")),
        "{v}"
    );
    let (code, stdout, _) =
        output(
            repo.regress()
                .args(["compare", "HEAD~1", "HEAD", "--fail-on", "failure"]),
        );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("missing"), "{stdout}");
}

#[test]
fn list_takes_several_files_processes_are_overridden_and_commands_have_no_phase() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("mocked", 2, 3));
    repo.write(
        "c.yaml",
        "version: 1\nname: cmd\nmodel: {command: \"true {{ n }}\"}\nrunner: {backend: command, processes: 3, measure: {min_iters: 2, min_time: 0s, max_time: 200ms}}\nmatrix: {n: [1]}\n",
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(repo.regress().args(["list", "p.yaml", "c.yaml"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("mocked (mock backend): 4 cases"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cmd (command backend): 1 cases"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.ends_with("  cmd[n=1]")),
        "a command is timed whole: no /forward\n{stdout}"
    );
    let (code, stdout, stderr) =
        output(
            repo.regress()
                .args(["run", "p.yaml", "c.yaml", "--processes", "1"]),
        );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let files = repo.record_files();
    assert_eq!(files.len(), 2);
    for file in files {
        let record = regress::store::read_record(&file).unwrap();
        for case in record.cases.iter().filter(|c| !c.metrics.is_empty()) {
            assert_eq!(case.metrics["latency"].processes.len(), 1, "{}", case.label);
        }
    }
    let (code, _, stderr) = output(repo.regress().args(["run", "p.yaml", "--processes", "0"]));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn max_time_cutting_min_iters_short_is_recorded_warned_and_marked() {
    let _guard = serial();
    let repo = Repo::new();
    // Mock samples take 1 to 2 ms of virtual time: 5 ms allows a few.
    repo.write(
        "p.yaml",
        "version: 1\nname: short\nmodel: {builtin: mlp}\nrunner: {backend: mock, processes: 2, measure: {min_iters: 20, min_time: 5ms, max_time: 5ms}}\nmatrix: {batch: [1]}\n",
    );
    repo.commit("base");
    let (code, stdout, stderr) = output(repo.regress().args(["run", "p.yaml"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("mlp[batch=1"))
        .unwrap();
    assert!(row.contains(" ok* "), "{stdout}");
    assert!(
        stdout.contains("max_time (0.005s) stopped 2 of 2 process(es) short of min_iters (20)"),
        "{stdout}"
    );
    let record = regress::store::read_record(&repo.record_files()[0]).unwrap();
    let kept = &record.cases[0].diagnostics.maps()[0];
    assert_eq!(kept["cut_short"]["min_iters"], 20, "{kept:?}");

    repo.write("README", "change\n");
    repo.commit("head");
    run_at(&repo, "p.yaml");
    let (code, stdout, stderr) = output(repo.regress().args(["compare", "HEAD~1", "HEAD"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let row = stdout.lines().find(|l| l.contains("mlp[batch=1")).unwrap();
    assert!(
        row.contains("base: max_time (0.005s) stopped 2 of 2")
            && row.contains("head: max_time (0.005s) stopped 2 of 2"),
        "the compared case is marked:\n{stdout}"
    );
}

#[test]
fn dirty_runs_and_uncommitted_pipeline_files_are_kept_out_of_comparisons() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("mocked", 1, 2));
    repo.commit("base");
    run_at(&repo, "p.yaml");
    repo.write("README", "change\n");
    repo.commit("head");
    // A pipeline file that is not committed: the run is dirty.
    repo.write("u.yaml", &mock_pipeline("mocked", 1, 2));
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "u.yaml"])
            .env("REGRESS_MOCK_SCALE", "1.5"),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("u.yaml is not committed"), "{stderr}");
    assert!(stdout.contains(" (dirty) "), "{stdout}");

    let compare = |extra: &[&str]| {
        let mut args = vec!["compare", "HEAD~1", "HEAD"];
        args.extend_from_slice(extra);
        output(repo.regress().args(&args))
    };
    let (code, _, stderr) = compare(&[]);
    assert_eq!(
        code, 2,
        "only a dirty run at head: nothing to compare\n{stderr}"
    );
    assert!(
        stderr
            .contains("1 run(s) made with uncommitted changes, left out (--allow-dirty uses them)"),
        "{stderr}"
    );
    let (code, stdout, stderr) = compare(&["--allow-dirty"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("1 regressed"), "{stdout}");

    // A clean run at head is compared; the dirty one stays out, and the report says so.
    std::fs::remove_file(repo.path().join("u.yaml")).unwrap();
    run_at(&repo, "p.yaml");
    let (code, stdout, stderr) = compare(&[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("regressed"), "{stdout}");
    assert!(
        stdout.contains("left out 1 run(s) made with uncommitted changes"),
        "{stdout}"
    );
}

#[test]
fn a_large_slowdown_too_noisy_to_confirm_is_suspect_and_gates() {
    let _guard = serial();
    let repo = Repo::new();
    repo.write("p.yaml", &mock_pipeline("mocked", 1, 2));
    repo.commit("base");
    let noisy = |r: &Repo, seed: &str, scale: &str| {
        let (code, stdout, stderr) = output(
            r.regress()
                .args(["run", "p.yaml"])
                .env("REGRESS_MOCK_PROCESS_CV", "0.25")
                .env("REGRESS_MOCK_SEED", seed)
                .env("REGRESS_MOCK_SCALE", scale),
        );
        assert_eq!(code, 0, "{stdout}{stderr}");
    };
    noisy(&repo, "1", "1.0");
    repo.write("README", "change\n");
    repo.commit("head");
    // 60 % slower, two processes a side that scatter by 25 %: far beyond
    // the threshold, not significant.
    noisy(&repo, "2", "1.6");
    let (code, stdout, _) =
        output(
            repo.regress()
                .args(["compare", "main~1", "main", "--fail-on-regression"]),
        );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("1 suspect"), "{stdout}");
    assert!(!stdout.contains("regressed"), "{stdout}");
    let (code, stdout, _) = output(repo.regress().args([
        "compare",
        "main~1",
        "main",
        "--fail-on",
        "any,confirmed-regression",
    ]));
    assert_eq!(code, 0, "{stdout}");
    let (_, md, _) = output(
        repo.regress()
            .args(["compare", "HEAD~1", "HEAD", "--format", "markdown"]),
    );
    assert!(md.starts_with("### 🟡 regress:"), "{md}");
    assert!(md.contains("🟡 suspect"), "{md}");
    assert!(!md.contains("🟢"), "{md}");
}
