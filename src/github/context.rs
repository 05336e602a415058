//! Where a GitHub Actions job runs, read from its environment and its
//! event payload: the repository, the API, the pull request and its head
//! commit, the job summary file and the token. Nothing is guessed: what is
//! missing is named.

use std::path::PathBuf;

use serde::Deserialize;

use super::GithubError;

/// github.com's API, where `GITHUB_API_URL` is not set.
const DEFAULT_API_URL: &str = "https://api.github.com";
/// github.com, where `GITHUB_SERVER_URL` is not set.
const DEFAULT_SERVER_URL: &str = "https://github.com";

/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoName {
    pub owner: String,
    pub name: String,
}

impl RepoName {
    /// Parses `owner/name`.
    pub fn parse(text: &str) -> Option<RepoName> {
        let (owner, name) = text.split_once('/')?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (valid(owner) && valid(name)).then(|| RepoName {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    /// The API path of the repository: `/repos/owner/name`.
    pub fn path(&self) -> String {
        format!("/repos/{}/{}", self.owner, self.name)
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// The pull request a job runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    /// The PR's head commit: where its check belongs. Not `GITHUB_SHA`,
    /// which for `pull_request` events is a merge commit nobody sees.
    pub head_sha: String,
    /// The head is in another repository: the job's token is read-only.
    pub from_fork: bool,
}

/// What a job knows about itself.
#[derive(Debug, Clone)]
pub struct ActionsContext {
    pub api_url: String,
    pub repo: RepoName,
    /// `GITHUB_STEP_SUMMARY`: the file the job summary is appended to.
    pub step_summary: Option<PathBuf>,
    /// The token, unless its variable is unset or empty.
    pub token: Option<String>,
    /// The variable the token was read from (named in messages).
    pub token_env: String,
    pub pull: Option<PullRequest>,
    /// `GITHUB_EVENT_NAME`.
    pub event: Option<String>,
    /// `GITHUB_SHA`: for push events, the commit pushed.
    pub sha: Option<String>,
    /// The page of this workflow run, linked from checks and comments.
    pub run_url: Option<String>,
}

/// The parts of a `pull_request` (or `pull_request_target`) payload used.
#[derive(Deserialize)]
struct Event {
    pull_request: Option<EventPull>,
}

#[derive(Deserialize)]
struct EventPull {
    number: u64,
    head: EventRef,
    base: EventRef,
}

#[derive(Deserialize)]
struct EventRef {
    sha: String,
    repo: Option<EventRepo>,
}

#[derive(Deserialize)]
struct EventRepo {
    full_name: String,
}

impl ActionsContext {
    /// Reads the context through `get` (the environment, or a map in
    /// tests); the token from the variable `token_env`.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        token_env: &str,
    ) -> Result<ActionsContext, GithubError> {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        let mut missing = Vec::new();
        if var("GITHUB_ACTIONS").as_deref() != Some("true") {
            missing.push("GITHUB_ACTIONS=true (this is not a GitHub Actions job)".to_string());
        }
        let repo = match var("GITHUB_REPOSITORY") {
            None => {
                missing.push("GITHUB_REPOSITORY (owner/name)".to_string());
                None
            }
            Some(text) => match RepoName::parse(&text) {
                Some(r) => Some(r),
                None => {
                    missing.push(format!("GITHUB_REPOSITORY as owner/name (it is `{text}`)"));
                    None
                }
            },
        };
        let (Some(repo), true) = (repo, missing.is_empty()) else {
            return Err(GithubError::NotInActions { missing });
        };
        let event_path = var("GITHUB_EVENT_PATH").map(PathBuf::from);
        let pull = match &event_path {
            Some(path) => read_pull(path)?,
            None => None,
        };
        let server = var("GITHUB_SERVER_URL").unwrap_or_else(|| DEFAULT_SERVER_URL.to_string());
        let run_url = var("GITHUB_RUN_ID")
            .map(|id| format!("{}/{repo}/actions/runs/{id}", server.trim_end_matches('/')));
        Ok(ActionsContext {
            api_url: var("GITHUB_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_string()),
            step_summary: var("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            token: var(token_env),
            token_env: token_env.to_string(),
            pull,
            event: var("GITHUB_EVENT_NAME"),
            sha: var("GITHUB_SHA"),
            run_url,
            repo,
        })
    }
}

/// The pull request of an event payload, if the event has one.
fn read_pull(path: &std::path::Path) -> Result<Option<PullRequest>, GithubError> {
    let text = std::fs::read_to_string(path).map_err(|e| GithubError::Event {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let event: Event = serde_json::from_str(&text).map_err(|e| GithubError::Event {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(event.pull_request.map(|p| {
        let repo_of = |r: &EventRef| r.repo.as_ref().map(|r| r.full_name.clone());
        PullRequest {
            number: p.number,
            from_fork: repo_of(&p.head) != repo_of(&p.base),
            head_sha: p.head.sha,
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn context(vars: &[(&str, &str)]) -> Result<ActionsContext, GithubError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ActionsContext::from_env(&|k| map.get(k).cloned(), "GITHUB_TOKEN")
    }

    #[test]
    fn outside_actions_names_what_is_missing() {
        let err = context(&[]).unwrap_err().to_string();
        assert!(err.contains("GITHUB_ACTIONS=true"), "{err}");
        assert!(err.contains("GITHUB_REPOSITORY"), "{err}");
        let err = context(&[("GITHUB_ACTIONS", "true"), ("GITHUB_REPOSITORY", "nope")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`nope`"), "{err}");
    }

    #[test]
    fn the_pull_request_head_comes_from_the_payload_not_github_sha() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(
            &event,
            r#"{"pull_request": {"number": 7,
                "head": {"sha": "aaaa", "repo": {"full_name": "fork/r"}},
                "base": {"sha": "bbbb", "repo": {"full_name": "o/r"}}}}"#,
        )
        .unwrap();
        let ctx = context(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_SHA", "cccc"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
            ("GITHUB_RUN_ID", "42"),
        ])
        .unwrap();
        assert_eq!(
            ctx.pull,
            Some(PullRequest {
                number: 7,
                head_sha: "aaaa".into(),
                from_fork: true
            })
        );
        assert_eq!(ctx.api_url, "https://api.github.com");
        assert_eq!(
            ctx.run_url.as_deref(),
            Some("https://github.com/o/r/actions/runs/42")
        );
        assert_eq!(ctx.token, None);
    }
}
