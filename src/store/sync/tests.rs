//! Tests of the push/pull helpers that need no remote.

use super::cli::{credential_env, scrub_with};
use super::*;

#[test]
fn porcelain_lines_are_read_per_ref() {
    // Not a `\` continuation: it would eat the fast-forward's leading space.
    let out = concat!(
        "To /tmp/origin.git\n",
        "=\trefs/regress/results:refs/regress/results\t[up to date]\n",
        " \trefs/heads/a:refs/heads/a\t1a2b3c4..5d6e7f8\n",
        "*\trefs/heads/b:refs/heads/b\t[new reference]\n",
        "!\trefs/heads/c:refs/heads/c\t[rejected] (fetch first)\n",
        "!\trefs/heads/d:refs/heads/d\t[remote rejected] (cannot lock ref 'refs/heads/d': is at 1a2b (x) but expected 3c4d)\n",
        "!\trefs/heads/e:refs/heads/e\t[remote rejected] (pre-receive hook declined)\n",
        "Done\n",
    );
    let statuses = parse_porcelain(out);
    assert_eq!(statuses.len(), 6);
    assert_eq!(
        statuses[0],
        RefStatus {
            flag: '=',
            from: "refs/regress/results".into(),
            to: "refs/regress/results".into(),
            summary: "[up to date]".into(),
            reason: None,
        }
    );
    assert_eq!(statuses[1].flag, ' ');
    assert_eq!(statuses[1].summary, "1a2b3c4..5d6e7f8");
    assert_eq!(statuses[3].reason.as_deref(), Some("fetch first"));
    assert_eq!(
        statuses[4].reason.as_deref(),
        Some("cannot lock ref 'refs/heads/d': is at 1a2b (x) but expected 3c4d")
    );
    let verdicts: Vec<Verdict> = statuses.iter().map(judge).collect();
    assert_eq!(verdicts[0], Verdict::Accepted);
    assert_eq!(verdicts[1], Verdict::Accepted);
    assert_eq!(verdicts[2], Verdict::Accepted);
    assert_eq!(
        verdicts[3],
        Verdict::Retry("[rejected] (fetch first)".into())
    );
    assert!(matches!(verdicts[4], Verdict::Retry(_)));
    assert_eq!(
        verdicts[5],
        Verdict::Refused("[remote rejected] (pre-receive hook declined)".into())
    );
    assert!(parse_porcelain("fatal: could not read from remote\n").is_empty());
}

#[test]
fn scrub_removes_the_token_and_url_passwords() {
    let text = "fatal: https://x-access-token:s3cret@github.com/o/r.git: token s3cret refused; see 'https://u@h/x' and ssh://git@host/r";
    let clean = scrub_with(text, Some("s3cret"));
    assert!(!clean.contains("s3cret"), "{clean}");
    assert_eq!(
        clean,
        "fatal: https://***@github.com/o/r.git: token *** refused; see 'https://***@h/x' and ssh://***@host/r"
    );
    assert_eq!(scrub_with("nothing here", Some("")), "nothing here");
    assert_eq!(scrub_with("https://host/x", None), "https://host/x");
}

#[test]
fn backoff_waits_stay_under_a_doubling_bound() {
    let mut b = Backoff::new();
    let bounds = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000];
    for bound in bounds {
        let wait = b.next_wait();
        assert!(
            wait <= Duration::from_millis(bound),
            "{wait:?} > {bound} ms"
        );
    }
}

fn urls(u: &str) -> Vec<String> {
    vec![u.to_string()]
}

#[test]
fn the_token_helper_is_given_to_github_https_remotes_only() {
    let gh = urls("https://github.com/o/r.git");
    assert!(credential_env(&gh, None, None, None).is_empty());
    assert!(credential_env(&gh, Some(""), None, None).is_empty());
    assert!(credential_env(&urls("git@github.com:o/r.git"), Some("t"), None, None).is_empty());
    assert!(credential_env(&urls("https://gitlab.com/o/r.git"), Some("t"), None, None).is_empty());
    let env = credential_env(&gh, Some("the-token"), None, Some("2"));
    assert_eq!(
        env[0],
        (
            "GIT_CONFIG_KEY_2".into(),
            "credential.https://github.com.helper".into()
        )
    );
    assert_eq!(env[1], ("GIT_CONFIG_VALUE_2".into(), String::new()));
    assert_eq!(env[4], ("GIT_CONFIG_COUNT".into(), "4".into()));
    assert!(
        env.iter()
            .all(|(k, v)| !k.contains("the-token") && !v.contains("the-token")),
        "the token stays in GITHUB_TOKEN"
    );
    // GitHub Enterprise: the server's own host.
    let ghe = urls("https://GHE.example.com/o/r.git");
    assert!(!credential_env(&ghe, Some("t"), Some("https://ghe.example.com"), None).is_empty());
    assert!(credential_env(&ghe, Some("t"), None, None).is_empty());
}

/// The helper as git itself runs it: `git credential fill` asks it for
/// github.com and gets the token. Local only; nothing is contacted.
#[test]
fn git_gets_the_token_from_the_helper() {
    let home = tempfile::tempdir().unwrap();
    let env = credential_env(
        &urls("https://github.com/o/r.git"),
        Some("t0ken-value"),
        None,
        None,
    );
    let mut child = Command::new("git")
        .args(["credential", "fill"])
        .envs(env)
        .env("GITHUB_TOKEN", "t0ken-value")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"protocol=https\nhost=github.com\n\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("username={TOKEN_USER}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("password=t0ken-value\n"), "{stdout}");
}
