//! `regress compare --github` and `regress github comment` end to end: two
//! commits measured with the mock backend, a fake event payload and job
//! summary file, and a fake GitHub API on 127.0.0.1.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::github::FakeGithub;
use crate::common::{machine_lock, mock_pipeline, output, Repo};

const TOKEN: &str = "ghs_e2e-t0ken";
const PR: u64 = 5;

/// A repository whose head is 20 % slower than its parent, both measured.
fn measured_repo() -> (Repo, String) {
    let repo = Repo::new();
    repo.write("workflows/p.yaml", &mock_pipeline("mocked", 2, 2));
    repo.commit("base");
    let (code, out, err) = output(repo.regress().args(["run", "workflows/p.yaml"]));
    assert_eq!(code, 0, "{out}{err}");
    repo.write("README", "change\n");
    let head = repo.commit("head");
    let (code, out, err) = output(
        repo.regress()
            .args(["run", "workflows/p.yaml"])
            .env("REGRESS_MOCK_SCALE", "1.2"),
    );
    assert_eq!(code, 0, "{out}{err}");
    (repo, head)
}

/// A `pull_request` event payload for PR 5 with head `head`.
fn event(dir: &Path, head: &str, head_repo: &str) -> String {
    let file = dir.join("event.json");
    let payload = json!({"pull_request": {"number": PR,
        "head": {"sha": head, "repo": {"full_name": head_repo}},
        "base": {"sha": "0".repeat(40), "repo": {"full_name": "octo/widgets"}}}});
    std::fs::write(&file, payload.to_string()).unwrap();
    file.display().to_string()
}

/// The variables of an Actions job, with the API at `api`.
fn in_actions(cmd: &mut Command, api: &str, event: &str, summary: &Path) {
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "octo/widgets")
        .env("GITHUB_API_URL", api)
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_RUN_ID", "99")
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", event)
        // The merge commit: never where the check goes.
        .env("GITHUB_SHA", "f".repeat(40))
        .env("GITHUB_STEP_SUMMARY", summary)
        .env("GITHUB_TOKEN", TOKEN);
}

/// An API that takes one comment and one check run.
fn accepting_api() -> FakeGithub {
    let fake = FakeGithub::new();
    fake.mount(
        Mock::given(method("GET")).and(path("/user")).respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        ),
    );
    let comments = format!("/repos/octo/widgets/issues/{PR}/comments");
    fake.mount(
        Mock::given(method("GET"))
            .and(path(comments.clone()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([]))),
    );
    fake.mount(
        Mock::given(method("POST")).and(path(comments)).respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": 1, "body": "",
                "user": {"login": "github-actions[bot]"}, "html_url": "https://github.example/c/1"})),
        ),
    );
    fake.mount(
        Mock::given(method("POST"))
            .and(path("/repos/octo/widgets/check-runs"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"id": 2, "html_url": "https://github.example/r/2"})),
            ),
    );
    fake
}

fn json_body(r: &wiremock::Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn compare_github_writes_the_summary_annotates_and_posts_once_on_the_pr_head() {
    let _guard = machine_lock();
    let (repo, head) = measured_repo();
    let fake = accepting_api();
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let event = event(tmp.path(), &head, "octo/widgets");
    let mut cmd = repo.regress();
    cmd.args(["compare", "HEAD~1", "HEAD", "--github"]);
    in_actions(&mut cmd, &fake.url(""), &event, &summary);
    let (code, stdout, stderr) = output(&mut cmd);
    // --github gates on any finding by default: a regression fails.
    assert_eq!(code, 1, "{stdout}{stderr}");

    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("earlier step\n### 🔴 regress: mocked"),
        "{text}"
    );
    assert!(
        text.contains("| `mlp[batch=1,fp32,eager]/forward` |"),
        "{text}"
    );

    // Annotations point at the pipeline file's `name:` line.
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(errors.len(), 2, "{stdout}");
    assert!(
        errors[0].starts_with("::error file=workflows/p.yaml,line=2,title=regress%3A mlp[batch="),
        "{stdout}"
    );
    assert!(errors[0].contains("regressed::latency"), "{stdout}");

    let comments = fake.matching("POST", "/issues/5/comments");
    assert_eq!(comments.len(), 1, "exactly one comment");
    let body = json_body(&comments[0])["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        body.starts_with("<!-- regress-comment key=mocked -->\n### 🔴"),
        "{body}"
    );
    let checks = fake.matching("POST", "/check-runs");
    assert_eq!(checks.len(), 1, "exactly one check run");
    let check = json_body(&checks[0]);
    assert_eq!(
        check["head_sha"],
        head.as_str(),
        "on the PR head, not GITHUB_SHA"
    );
    assert_eq!(check["name"], "regress");
    assert_eq!(check["conclusion"], "failure");
    assert_eq!(
        check["details_url"],
        "https://github.example/octo/widgets/actions/runs/99"
    );
    // The token was sent, and printed nowhere.
    assert_eq!(
        checks[0].headers.get("authorization").unwrap(),
        &format!("Bearer {TOKEN}")
    );
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN) && !text.contains(TOKEN));
}

#[test]
fn a_failure_to_post_is_reported_and_the_gate_still_rules() {
    let _guard = machine_lock();
    let (repo, head) = measured_repo();
    let fake = FakeGithub::new();
    fake.mount(
        Mock::given(method("GET")).respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
        ),
    );
    fake.mount(
        Mock::given(method("POST")).respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
        ),
    );
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("summary.md");
    let event = event(tmp.path(), &head, "octo/widgets");
    for (gate, want) in [("regression", 1), ("failure", 0)] {
        let mut cmd = repo.regress();
        cmd.args(["compare", "HEAD~1", "HEAD", "--github", "--fail-on", gate]);
        in_actions(&mut cmd, &fake.url(""), &event, &summary);
        let (code, stdout, stderr) = output(&mut cmd);
        assert_eq!(code, want, "--fail-on {gate}: {stdout}{stderr}");
        assert!(
            stderr.contains("could not post the comment on pull request #5")
                && stderr.contains("404"),
            "{stderr}"
        );
        assert!(
            stdout.contains("::error title=regress could not"),
            "{stdout}"
        );
        assert!(!stderr.contains(TOKEN));
    }
    // The job summary was written regardless.
    assert!(std::fs::read_to_string(&summary)
        .unwrap()
        .contains("regressed"));
}

#[test]
fn a_fork_pull_request_gets_no_comment_and_says_why() {
    let _guard = machine_lock();
    let (repo, head) = measured_repo();
    let fake = accepting_api();
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("summary.md");
    let event = event(tmp.path(), &head, "someone/widgets");
    let mut cmd = repo.regress();
    cmd.args(["compare", "HEAD~1", "HEAD", "--github"]);
    in_actions(&mut cmd, &fake.url(""), &event, &summary);
    let (code, _, stderr) = output(&mut cmd);
    assert_eq!(code, 1);
    assert!(stderr.contains("comes from a fork"), "{stderr}");
    assert!(fake.requests().is_empty());
}

#[test]
fn outside_actions_github_names_what_is_missing() {
    let repo = Repo::new();
    let (code, _, stderr) = output(
        repo.regress()
            .args(["compare", "HEAD~1", "HEAD", "--github"])
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_REPOSITORY"),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("GITHUB_ACTIONS=true"), "{stderr}");
    assert!(stderr.contains("GITHUB_REPOSITORY"), "{stderr}");
}

#[test]
fn github_comment_posts_a_saved_report_with_the_check_on_the_pr_head() {
    let _guard = machine_lock();
    let (repo, head) = measured_repo();
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.json");
    let (code, _, stderr) = output(repo.regress().args([
        "compare",
        "HEAD~1",
        "HEAD",
        "--format",
        "json",
        "--output",
        report.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    for (pr_head, checks) in [(head.clone(), 1), ("e".repeat(40), 0)] {
        let fake = accepting_api();
        fake.mount(
            Mock::given(method("GET"))
                .and(path(format!("/repos/octo/widgets/pulls/{PR}")))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"head": {"sha": pr_head}})),
                ),
        );
        // A workflow_run event: no pull request in the payload.
        let event = tmp.path().join("run.json");
        std::fs::write(&event, r#"{"workflow_run": {"id": 1}}"#).unwrap();
        let mut cmd = repo.regress();
        cmd.args([
            "github",
            "comment",
            "--report",
            report.to_str().unwrap(),
            "--pr",
            "5",
        ]);
        in_actions(
            &mut cmd,
            &fake.url(""),
            event.to_str().unwrap(),
            &tmp.path().join("s.md"),
        );
        let (code, stdout, stderr) = output(&mut cmd);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_eq!(fake.count("POST", "/issues/5/comments"), 1);
        assert_eq!(fake.count("POST", "/check-runs"), checks, "{stderr}");
        if checks == 1 {
            let check = json_body(&fake.matching("POST", "/check-runs")[0]);
            assert_eq!(check["head_sha"], head.as_str());
            assert_eq!(check["conclusion"], "failure");
        } else {
            assert!(stderr.contains("no check is set"), "{stderr}");
        }
    }
}
