//! GitHub: where a comparison meets a pull request. Reads the Actions
//! job's context, appends the job summary, prints annotations, upserts
//! the sticky PR comment and sets the `regress` check (or a commit status)
//! on the PR's head commit, through octocrab with bounded retries. It
//! posts strings `report/` made and a conclusion the comparison's gate
//! decided; it never sees a sample. The token never appears in output,
//! errors or debug formatting.

mod annotations;
mod api;
mod check;
mod comment;
mod context;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use annotations::{annotations, Place, PER_LEVEL};
pub use api::{Api, Attempt, Reply, RetryPolicy, REQUEST_TIMEOUT};
pub use check::{
    publish as publish_check, CheckOutcome, CheckReport, Conclusion, CHECK_NAME, SUMMARY_LIMIT,
};
pub use comment::{
    body as comment_body, identity, marker, upsert, CommentMode, CommentOutcome, ACTIONS_BOT,
    COMMENT_LIMIT,
};
pub use context::{ActionsContext, PullRequest, RepoName};

/// GitHub's limit on a step's job summary, in bytes.
pub const STEP_SUMMARY_LIMIT: usize = 1024 * 1024;

/// What went wrong talking to GitHub, naming what was not done.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("--github works inside a GitHub Actions job; missing: {}", missing.join("; "))]
    NotInActions { missing: Vec<String> },
    #[error("cannot read the event payload {}: {message}", path.display())]
    Event { path: PathBuf, message: String },
    #[error("cannot set up the GitHub client: {0}")]
    Client(String),
    #[error("GitHub refused to {what}: {status} {message}{}", hint(*status))]
    Api {
        what: String,
        status: u16,
        message: String,
    },
    #[error("GitHub gave an answer regress cannot read when asked to {what}: {message}")]
    Decode { what: String, message: String },
    #[error("could not {what} after {attempts} attempt(s) over {:.0} s: {last}", elapsed.as_secs_f64())]
    GaveUp {
        what: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    #[error("cannot append to the job summary {}: {source}", path.display())]
    Summary {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a refusal usually means for a job's workflow file.
fn hint(status: u16) -> &'static str {
    match status {
        401 => " (the token is missing, expired or wrong)",
        403 => " (the job's token lacks a permission: comments need `pull-requests: write`, checks `checks: write`, statuses `statuses: write`)",
        404 => " (the repository or pull request is not visible to this token)",
        _ => "",
    }
}

/// The size of the job summary file so far (0 when it does not exist).
pub fn summary_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Appends `text` to the job summary file.
pub fn append_summary(path: &Path, text: &str) -> Result<(), GithubError> {
    let fail = |source| GithubError::Summary {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    if !text.ends_with('\n') {
        file.write_all(b"\n").map_err(fail)?;
    }
    Ok(())
}
