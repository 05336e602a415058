//! The sticky PR comment: one per comment key, found by a hidden marker
//! at the start of its body *and* by its author (anyone can paste the
//! marker into a comment of their own), updated in place, created only
//! when none exists. A create that may have reached GitHub before failing
//! is never simply repeated: the comments are listed again first.

use http::{Method, StatusCode};
use serde::Deserialize;

use super::api::{Api, Attempt};
use super::context::RepoName;
use super::GithubError;

/// Comments per page when listing: GitHub's maximum.
const PER_PAGE: usize = 100;

/// GitHub's limit on a comment's body, in characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// Who posts when the token cannot say who it is: the identity of
/// Actions' `GITHUB_TOKEN`.
pub const ACTIONS_BOT: &str = "github-actions[bot]";

/// When a comment is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentMode {
    /// Every comparison creates or updates the comment.
    Always,
    /// Created when a case regressed, improved, failed or was fixed;
    /// an existing comment is always updated, so it never goes stale.
    OnChange,
    /// Created when the gate fails; an existing one is always updated.
    OnRegression,
    /// No comment.
    Never,
}

/// What became of the comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentOutcome {
    Created {
        id: u64,
        url: String,
    },
    Updated {
        id: u64,
        url: String,
    },
    /// Found with the same body: not touched.
    Unchanged {
        id: u64,
        url: String,
    },
    /// Not posted, and why.
    Skipped(String),
}

/// A comment as listed.
#[derive(Debug, Clone, Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    user: Option<User>,
    #[serde(default)]
    html_url: String,
}

#[derive(Debug, Clone, Deserialize)]
struct User {
    login: String,
}

/// The hidden first line that identifies the comment of a comment key.
/// The key is percent-encoded down to `[A-Za-z0-9._,/+-]`, so no key can
/// close the HTML comment or break its line.
pub fn marker(key: &str) -> String {
    let mut encoded = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"._,/+-".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("<!-- regress-comment key={encoded} -->")
}

/// The body posted for `report` under `key`: the marker, then the report.
pub fn body(key: &str, report: &str) -> String {
    format!("{}\n{report}", marker(key))
}

/// The login the token posts as: `GET /user`, or `github-actions[bot]`
/// where the token may not ask (an Actions or app installation token).
pub fn identity(api: &Api) -> Result<String, GithubError> {
    #[derive(Deserialize)]
    struct Me {
        login: String,
    }
    let what = "find who the token is (GET /user)";
    match api.send(Method::GET, "/user", None::<&()>, what) {
        Ok(reply) => Ok(reply.json::<Me>(what)?.login),
        Err(GithubError::Api {
            status: 401 | 403, ..
        }) => Ok(ACTIONS_BOT.to_string()),
        Err(e) => Err(e),
    }
}

/// The first comment on the pull request whose body starts with `marker`
/// and whose author is `author`, paging through all of them.
fn find(
    api: &Api,
    repo: &RepoName,
    pr: u64,
    marker: &str,
    author: &str,
) -> Result<Option<Comment>, GithubError> {
    let what = format!("list the comments of pull request #{pr}");
    for page in 1.. {
        let path = format!(
            "{}/issues/{pr}/comments?per_page={PER_PAGE}&page={page}",
            repo.path()
        );
        let reply = api.send(Method::GET, &path, None::<&()>, &what)?;
        let comments: Vec<Comment> = reply.json(&what)?;
        let found = comments.iter().find(|c| {
            c.body.as_deref().is_some_and(|b| b.starts_with(marker))
                && c.user
                    .as_ref()
                    .is_some_and(|u| u.login.eq_ignore_ascii_case(author))
        });
        if let Some(c) = found {
            return Ok(Some(c.clone()));
        }
        if comments.len() < PER_PAGE {
            break;
        }
    }
    Ok(None)
}

/// Creates or updates the comment of `key` on pull request `pr` with
/// `body` (which must start with the key's marker). `create` says whether
/// a missing comment is created; an existing one is updated regardless,
/// unless its body is already `body`.
pub fn upsert(
    api: &Api,
    repo: &RepoName,
    pr: u64,
    key: &str,
    author: &str,
    body: &str,
    create: bool,
) -> Result<CommentOutcome, GithubError> {
    let marker = marker(key);
    debug_assert!(body.starts_with(&marker));
    let payload = serde_json::json!({ "body": body });
    let created_what = format!("create the comment on pull request #{pr}");
    // Each attempt lists first: a create whose answer was lost (timeout,
    // 5xx) may have made the comment, and the list then finds it.
    api.retrying(&created_what, || {
        let existing = match find(api, repo, pr, &marker, author) {
            Ok(found) => found,
            Err(e) => return Attempt::Fail(e),
        };
        if let Some(c) = existing {
            if c.body.as_deref() == Some(body) {
                return Attempt::Done(CommentOutcome::Unchanged {
                    id: c.id,
                    url: c.html_url,
                });
            }
            let what = format!("update comment {} on pull request #{pr}", c.id);
            let path = format!("{}/issues/comments/{}", repo.path(), c.id);
            return match api.send(Method::PATCH, &path, Some(&payload), &what) {
                Ok(reply) => match reply.json::<Comment>(&what) {
                    Ok(c) => Attempt::Done(CommentOutcome::Updated {
                        id: c.id,
                        url: c.html_url,
                    }),
                    Err(e) => Attempt::Fail(e),
                },
                Err(e) => Attempt::Fail(e),
            };
        }
        if !create {
            return Attempt::Done(CommentOutcome::Skipped(
                "no earlier comment, and nothing this comment mode posts about".into(),
            ));
        }
        let path = format!("{}/issues/{pr}/comments", repo.path());
        match api.once(Method::POST, &path, Some(&payload)) {
            Err(reason) => Attempt::Retry { reason, wait: None },
            Ok(reply) if reply.status == StatusCode::CREATED || reply.status.is_success() => {
                match reply.json::<Comment>(&created_what) {
                    Ok(c) => Attempt::Done(CommentOutcome::Created {
                        id: c.id,
                        url: c.html_url,
                    }),
                    Err(e) => Attempt::Fail(e),
                }
            }
            Ok(reply) => match Api::classify(reply, &created_what) {
                Attempt::Done(_) => unreachable!("success is handled above"),
                Attempt::Retry { reason, wait } => Attempt::Retry { reason, wait },
                Attempt::Fail(e) => Attempt::Fail(e),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_cannot_be_closed_by_their_key() {
        assert_eq!(
            marker("quickstart,seed-a"),
            "<!-- regress-comment key=quickstart,seed-a -->"
        );
        let m = marker("x --> <b>\n@all");
        assert_eq!(m.matches("-->").count(), 1, "{m}");
        let key = &m[m.find("key=").unwrap() + 4..m.len() - " -->".len()];
        assert!(!key.contains(['\n', '<', '>', '@', ' ']), "{m}");
        // Distinct keys, distinct markers.
        assert_ne!(marker("a b"), marker("a%20b"));
    }
}
