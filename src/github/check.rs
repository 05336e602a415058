//! The check run named `regress` on the head commit, or a commit status
//! where the token may not write checks (a 403 without rate-limit signs:
//! no `checks: write`).

use http::Method;
use serde::Deserialize;

use super::api::Api;
use super::context::RepoName;
use super::GithubError;

/// The check's and the status's name.
pub const CHECK_NAME: &str = "regress";

/// GitHub's limit on a check run's summary, in characters.
pub const SUMMARY_LIMIT: usize = 65_535;

/// GitHub's limit on a commit status's description, in characters.
const STATUS_DESCRIPTION_LIMIT: usize = 140;

/// How the check ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Success,
    Failure,
    /// Nothing could be compared: neither pass nor fail.
    Neutral,
}

impl Conclusion {
    fn as_check(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Neutral => "neutral",
        }
    }

    /// Statuses have no neutral; it must not block a merge, so success.
    fn as_status(self) -> &'static str {
        match self {
            Conclusion::Failure => "failure",
            Conclusion::Success | Conclusion::Neutral => "success",
        }
    }
}

/// What a check says.
#[derive(Debug, Clone)]
pub struct CheckReport<'a> {
    pub sha: &'a str,
    pub conclusion: Conclusion,
    /// One line with the counts.
    pub title: &'a str,
    /// Markdown, at most `SUMMARY_LIMIT` characters.
    pub summary: &'a str,
    /// The workflow run's page.
    pub details_url: Option<&'a str>,
}

/// Where the result went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Check {
        id: u64,
        url: String,
    },
    /// Checks were refused; a commit status was set instead.
    Status,
}

/// Sets the check `regress` on `report.sha`, falling back to a commit
/// status when checks are not permitted.
pub fn publish(
    api: &Api,
    repo: &RepoName,
    report: &CheckReport,
) -> Result<CheckOutcome, GithubError> {
    #[derive(Deserialize)]
    struct Created {
        id: u64,
        #[serde(default)]
        html_url: String,
    }
    let short = &report.sha[..report.sha.len().min(7)];
    let mut check = serde_json::json!({
        "name": CHECK_NAME,
        "head_sha": report.sha,
        "status": "completed",
        "conclusion": report.conclusion.as_check(),
        "completed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "output": { "title": report.title, "summary": report.summary },
    });
    if let Some(url) = report.details_url {
        check["details_url"] = url.into();
    }
    let what = format!("create the check run `{CHECK_NAME}` on {short}");
    // A repeated create makes a second run of the same name, which GitHub
    // shows as the latest: harmless, so it may be retried.
    match api.send(
        Method::POST,
        &format!("{}/check-runs", repo.path()),
        Some(&check),
        &what,
    ) {
        Ok(reply) => {
            let c: Created = reply.json(&what)?;
            Ok(CheckOutcome::Check {
                id: c.id,
                url: c.html_url,
            })
        }
        Err(GithubError::Api { status: 403, .. }) => {
            let description: String = report
                .title
                .chars()
                .take(STATUS_DESCRIPTION_LIMIT)
                .collect();
            let mut status = serde_json::json!({
                "state": report.conclusion.as_status(),
                "context": CHECK_NAME,
                "description": description,
            });
            if let Some(url) = report.details_url {
                status["target_url"] = url.into();
            }
            let what = format!(
                "set the commit status `{CHECK_NAME}` on {short} (checks were refused: the job needs `checks: write`)"
            );
            api.send(
                Method::POST,
                &format!("{}/statuses/{}", repo.path(), report.sha),
                Some(&status),
                &what,
            )?;
            Ok(CheckOutcome::Status)
        }
        Err(e) => Err(e),
    }
}
