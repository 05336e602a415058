//! The GitHub client against a fake API on 127.0.0.1 (wiremock): the
//! sticky comment found by marker and author across pages, updated or
//! created exactly once through 5xx and lost answers, rate limits waited
//! out, checks falling back to statuses, Enterprise base paths, and the
//! token kept out of every message.

use std::time::{Duration, Instant};

use regress::github::{
    comment_body, identity, marker, publish_check, upsert, Api, CheckOutcome, CheckReport,
    CommentOutcome, Conclusion, GithubError, RepoName, RetryPolicy, ACTIONS_BOT,
};
use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::common::github::FakeGithub;

const TOKEN: &str = "ghs_s3cr3t-t0ken";
const BOT: &str = ACTIONS_BOT;
const PR: u64 = 12;

/// A policy that retries quickly, so the tests take milliseconds.
fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_total_wait: Duration::from_secs(5),
    }
}

/// The fake API, with a client for it.
struct Fake(FakeGithub);

impl std::ops::Deref for Fake {
    type Target = FakeGithub;
    fn deref(&self) -> &FakeGithub {
        &self.0
    }
}

impl Fake {
    fn new() -> Fake {
        Fake(FakeGithub::new())
    }

    fn api(&self, prefix: &str) -> Api {
        Api::new(&self.url(prefix), TOKEN.into(), quick()).unwrap()
    }
}

fn repo() -> RepoName {
    RepoName::parse("octo/widgets").unwrap()
}

fn comment(id: u64, author: &str, body: &str) -> Value {
    json!({
        "id": id,
        "body": body,
        "user": {"login": author},
        "html_url": format!("https://github.com/octo/widgets/pull/{PR}#issuecomment-{id}"),
    })
}

/// Serves `comments` in pages of 100 at the comments list of `prefix`.
fn serve_comments(fake: &Fake, prefix: &str, comments: &[Value]) {
    let pages: Vec<&[Value]> = comments.chunks(100).collect();
    let last = pages.len().max(1);
    for page in 1..=last {
        let items = pages.get(page - 1).map_or(vec![], |p| p.to_vec());
        fake.mount(
            Mock::given(method("GET"))
                .and(path(format!(
                    "{prefix}/repos/octo/widgets/issues/{PR}/comments"
                )))
                .and(query_param("per_page", "100"))
                .and(query_param("page", page.to_string()))
                .respond_with(ResponseTemplate::new(200).set_body_json(items)),
        );
    }
}

fn created(id: u64, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(comment(id, BOT, body))
}

const KEY: &str = "quickstart";

fn report(text: &str) -> String {
    comment_body(KEY, text)
}

#[test]
fn the_marker_on_page_three_of_250_comments_is_found_and_updated() {
    let fake = Fake::new();
    let mut comments: Vec<Value> = (1..=250)
        .map(|i| comment(i, "someone", &format!("comment {i}")))
        .collect();
    comments[219] = comment(220, BOT, &report("old numbers"));
    serve_comments(&fake, "", &comments);
    let new = report("new numbers");
    fake.mount(
        Mock::given(method("PATCH"))
            .and(path("/repos/octo/widgets/issues/comments/220"))
            .and(body_partial_json(json!({"body": new})))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(comment(220, BOT, &new)))
            .expect(1),
    );
    let out = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &new, true).unwrap();
    assert!(
        matches!(out, CommentOutcome::Updated { id: 220, .. }),
        "{out:?}"
    );
    assert_eq!(fake.count("GET", "/comments"), 3, "pages 1, 2 and 3");
    assert_eq!(fake.count("POST", "/comments"), 0);
}

#[test]
fn a_marker_in_someone_elses_comment_is_left_alone() {
    let fake = Fake::new();
    // Another user pasted the marker (a quote, or an attempt to have
    // their comment overwritten).
    serve_comments(&fake, "", &[comment(5, "mallory", &report("fake"))]);
    let body = report("numbers");
    fake.mount(
        Mock::given(method("POST"))
            .and(path(format!("/repos/octo/widgets/issues/{PR}/comments")))
            .and(body_partial_json(json!({"body": body})))
            .respond_with(created(77, &body))
            .expect(1),
    );
    let out = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &body, true).unwrap();
    assert!(
        matches!(out, CommentOutcome::Created { id: 77, .. }),
        "{out:?}"
    );
    assert_eq!(
        fake.count("PATCH", "/comments/5"),
        0,
        "mallory's comment untouched"
    );
}

#[test]
fn an_unchanged_body_is_not_posted_again() {
    let fake = Fake::new();
    let body = report("same numbers");
    serve_comments(&fake, "", &[comment(9, BOT, &body)]);
    let out = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &body, true).unwrap();
    assert!(
        matches!(out, CommentOutcome::Unchanged { id: 9, .. }),
        "{out:?}"
    );
    assert_eq!(fake.count("PATCH", ""), 0);
    assert_eq!(fake.count("POST", ""), 0);
}

#[test]
fn a_mode_that_does_not_create_still_updates_and_never_creates() {
    let fake = Fake::new();
    serve_comments(&fake, "", &[]);
    let out = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &report("x"), false).unwrap();
    assert!(matches!(out, CommentOutcome::Skipped(_)), "{out:?}");
    assert_eq!(fake.count("POST", ""), 0);
}

#[test]
fn a_502_on_create_then_success_makes_exactly_one_comment() {
    let fake = Fake::new();
    serve_comments(&fake, "", &[]);
    let body = report("numbers");
    let url = format!("/repos/octo/widgets/issues/{PR}/comments");
    fake.mount(
        Mock::given(method("POST"))
            .and(path(url.clone()))
            .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
            .up_to_n_times(1)
            .with_priority(1),
    );
    fake.mount(
        Mock::given(method("POST"))
            .and(path(url))
            .respond_with(created(31, &body))
            .with_priority(2),
    );
    let out = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &body, true).unwrap();
    assert!(
        matches!(out, CommentOutcome::Created { id: 31, .. }),
        "{out:?}"
    );
    assert_eq!(fake.count("POST", "/comments"), 2, "one 502, one created");
    // The list was read again before the second create.
    assert_eq!(fake.count("GET", "/comments"), 2);
}

#[test]
fn a_create_whose_answer_was_lost_is_found_not_repeated() {
    let fake = Fake::new();
    let body = report("numbers");
    let list = format!("/repos/octo/widgets/issues/{PR}/comments");
    // GitHub made the comment but answered 502; the next list shows it.
    fake.mount(
        Mock::given(method("GET"))
            .and(path(list.clone()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .up_to_n_times(1)
            .with_priority(1),
    );
    fake.mount(
        Mock::given(method("GET"))
            .and(path(list.clone()))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!([comment(40, BOT, &body)])),
            )
            .with_priority(2),
    );
    fake.mount(
        Mock::given(method("POST"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(502))
            .expect(1),
    );
    let out = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &body, true).unwrap();
    assert!(
        matches!(out, CommentOutcome::Unchanged { id: 40, .. }),
        "{out:?}"
    );
}

#[test]
fn a_429_with_retry_after_is_waited_out() {
    let fake = Fake::new();
    let list = format!("/repos/octo/widgets/issues/{PR}/comments");
    fake.mount(
        Mock::given(method("GET"))
            .and(path(list.clone()))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .set_body_json(json!({"message": "API rate limit exceeded"})),
            )
            .up_to_n_times(1)
            .with_priority(1),
    );
    let body = report("numbers");
    fake.mount(
        Mock::given(method("GET"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([comment(3, BOT, &body)])))
            .with_priority(2),
    );
    let started = Instant::now();
    let out = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &body, true).unwrap();
    assert!(matches!(out, CommentOutcome::Unchanged { .. }), "{out:?}");
    // retry-after (1 s) ruled, not the 10 ms back-off.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_rate_limit_reset_past_the_budget_fails_at_once_and_says_so() {
    let fake = Fake::new();
    let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
    fake.mount(
        Mock::given(method("GET")).respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.as_str())
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        ),
    );
    let started = Instant::now();
    let err = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &report("x"), true).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = err.to_string();
    assert!(
        text.contains("list the comments of pull request #12"),
        "{text}"
    );
    assert!(text.contains("rate limited"), "{text}");
    assert_eq!(fake.count("GET", ""), 1);
}

#[test]
fn endless_5xx_gives_up_after_the_policy_naming_what_was_not_done() {
    let fake = Fake::new();
    fake.mount(Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)));
    let err = upsert(&fake.api(""), &repo(), PR, KEY, BOT, &report("x"), true).unwrap_err();
    assert!(
        matches!(err, GithubError::GaveUp { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(fake.count("GET", ""), 4);
    assert!(err.to_string().contains("503"), "{err}");
}

#[test]
fn forbidden_checks_fall_back_to_a_commit_status() {
    let fake = Fake::new();
    let sha = "a".repeat(40);
    fake.mount(
        Mock::given(method("POST"))
            .and(path("/repos/octo/widgets/check-runs"))
            .and(body_partial_json(
                json!({"name": "regress", "head_sha": sha, "conclusion": "failure"}),
            ))
            .respond_with(
                ResponseTemplate::new(403)
                    .set_body_json(json!({"message": "Resource not accessible by integration"})),
            )
            .expect(1),
    );
    fake.mount(
        Mock::given(method("POST"))
            .and(path(format!("/repos/octo/widgets/statuses/{sha}")))
            .and(body_partial_json(
                json!({"state": "failure", "context": "regress", "description": "1 regressed"}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
            .expect(1),
    );
    let out = publish_check(
        &fake.api(""),
        &repo(),
        &CheckReport {
            sha: &sha,
            conclusion: Conclusion::Failure,
            title: "1 regressed",
            summary: "summary",
            details_url: None,
        },
    )
    .unwrap();
    assert_eq!(out, CheckOutcome::Status);
}

#[test]
fn an_enterprise_base_path_is_kept() {
    let fake = Fake::new();
    let prefix = "/api/v3";
    serve_comments(&fake, prefix, &[]);
    let body = report("numbers");
    fake.mount(
        Mock::given(method("POST"))
            .and(path(format!(
                "{prefix}/repos/octo/widgets/issues/{PR}/comments"
            )))
            .respond_with(created(8, &body))
            .expect(1),
    );
    let out = upsert(&fake.api(prefix), &repo(), PR, KEY, BOT, &body, true).unwrap();
    assert!(
        matches!(out, CommentOutcome::Created { id: 8, .. }),
        "{out:?}"
    );
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.url.path().starts_with(prefix)));
}

#[test]
fn an_actions_token_that_cannot_ask_who_it_is_posts_as_the_bot() {
    let fake = Fake::new();
    fake.mount(
        Mock::given(method("GET")).and(path("/user")).respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        ),
    );
    assert_eq!(identity(&fake.api("")).unwrap(), BOT);
    let fake = Fake::new();
    fake.mount(
        Mock::given(method("GET"))
            .and(path("/user"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"login": "perf-bot"}))),
    );
    assert_eq!(identity(&fake.api("")).unwrap(), "perf-bot");
}

#[test]
fn the_token_appears_in_no_error_or_debug_output() {
    let fake = Fake::new();
    // A hostile or broken server echoing the request would still not
    // make regress print the token it sent.
    fake.mount(
        Mock::given(method("GET")).respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
        ),
    );
    let api = fake.api("");
    let err = upsert(&api, &repo(), PR, KEY, BOT, &report("x"), true).unwrap_err();
    for text in [err.to_string(), format!("{err:?}"), format!("{api:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
    }
    assert!(err.to_string().contains("404"), "{err}");
    assert!(marker(KEY).starts_with("<!-- regress-comment"));
}
