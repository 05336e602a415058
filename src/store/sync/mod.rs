//! Moving the git store's ref to and from a remote: `regress store push`
//! and `regress store pull`.
//!
//! Objects and merges are `git2`'s (see `git.rs`); the transport is the
//! `git` command. The crate's libgit2 is built without https or ssh, and
//! the `git` command honours what CI and users set up for it: the
//! `http.<url>.extraheader` that `actions/checkout` persists (libgit2
//! ignores it), credential helpers, ssh agents, `insteadOf` rewrites.
//!
//! A push fetches the remote's ref into a tracking ref of its own
//! (`refs/regress/remotes/<remote>/…`, never a branch), merges it in by
//! union of paths, and pushes without force. When another push landed
//! first it waits (jittered exponential back-off) and does all three
//! again, up to a time bound. Whether the remote took the ref is read from
//! the per-ref status line of `git push --porcelain`, not from an exit
//! status alone.
//!
//! With `GITHUB_TOKEN` set and an https remote on GitHub's host, git gets a
//! credential helper through the environment (never the command line) that
//! answers with the token as `x-access-token`; otherwise the user's own
//! helpers and ssh agent apply. Every message that carries git's output or
//! a URL goes through `scrub`, which removes the token and URL passwords.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use git2::Oid;
use wait_timeout::ChildExt;

use super::git::ref_target;
use super::{GitStore, GitStoreError, MergeOutcome, MergePlan, StoreError};

mod cli;
mod porcelain;
#[cfg(test)]
mod tests;

pub use cli::scrub;
use cli::{Backoff, Git};
pub use porcelain::{judge, parse_porcelain, RefStatus, Verdict};

/// How long `regress store push` keeps retrying by default (and `pull`
/// always): long enough for a few dozen matrix jobs finishing together to
/// take turns.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// The first back-off wait's upper bound: about one fetch-merge-push round
/// trip to a remote nearby. Doubling reaches a hosted remote's round trip
/// (about a second) within four retries; sixteen pushers to a local remote
/// finished no sooner with 200 ms or 50 ms.
const BACKOFF_START: Duration = Duration::from_millis(100);

/// The largest upper bound of one wait, so late retries still come often
/// enough to use the time bound well.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Time any one git command gets, even when the push's own bound is
/// nearly used up: a transfer under way is worth finishing.
const GIT_COMMAND_FLOOR: Duration = Duration::from_secs(30);

/// GitHub's host when `GITHUB_SERVER_URL` (set in Actions, and to the
/// server's address on GitHub Enterprise) is not.
const DEFAULT_GITHUB_SERVER: &str = "https://github.com";

/// What GitHub expects as the user name with an installation or Actions token.
const TOKEN_USER: &str = "x-access-token";

/// The credential helper handed to git: reads the token from the
/// environment when git asks for credentials, so the token is never on a
/// command line, in a file or in git's config.
fn token_helper() -> String {
    format!(
        "!f() {{ test \"$1\" = get || return 0; echo username={TOKEN_USER}; echo \"password=$GITHUB_TOKEN\"; }}; f"
    )
}

/// What replaces a secret in messages.
const REDACTED: &str = "***";

/// Reasons of a rejected push that mean "someone else pushed first" (or
/// was pushing at the same moment): fetch, merge and try again.
const RETRYABLE_REASONS: [&str; 7] = [
    "fetch first",
    "non-fast-forward",
    "stale info",
    "cannot lock ref",
    "failed to update ref",
    "failed to lock",
    "incorrect old value",
];

/// A synchronisation that failed, naming the remote and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no remote named `{remote}` in this repository (remotes: {known})\n  add it with `git remote add {remote} <url>`, or name another with --remote")]
    NoSuchRemote { remote: String, known: String },
    #[error("cannot run `git`: {source}\n  regress talks to remotes through the git command; install git or put it on PATH")]
    GitMissing { source: std::io::Error },
    #[error("cannot reach remote `{remote}` ({url}): {detail}\n  nothing is lost: the results stay in {reference} in this clone, and the next `regress store push` sends all of them")]
    Unreachable {
        remote: String,
        url: String,
        reference: String,
        detail: String,
    },
    #[error("remote `{remote}` ({url}) refused {reference}: {reason}\n  nothing is lost: the results stay in {reference} in this clone; check the remote's rules for this ref and your permission to push")]
    Refused {
        remote: String,
        url: String,
        reference: String,
        reason: String,
    },
    #[error("gave up {action} {reference} (remote `{remote}`) after {attempts} attempts in {elapsed_s:.0} s; the last: {last}\n  nothing is lost: run it again later (`regress store push --timeout` allows more time)")]
    GaveUp {
        /// `pushing` or `pulling`.
        action: &'static str,
        remote: String,
        reference: String,
        attempts: u32,
        elapsed_s: f64,
        last: String,
    },
    #[error(transparent)]
    Store(#[from] GitStoreError),
    #[error(transparent)]
    Record(#[from] StoreError),
}

impl SyncError {
    /// Whether the remote could not be reached or did not take the results
    /// (exit status 3), as opposed to a problem here.
    pub fn is_remote_failure(&self) -> bool {
        matches!(
            self,
            SyncError::Unreachable { .. } | SyncError::Refused { .. } | SyncError::GaveUp { .. }
        )
    }
}

/// How a push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote's ref moved from `from` (None: it did not exist) to `to`,
    /// gaining `records` record files.
    Pushed {
        from: Option<Oid>,
        to: Oid,
        records: usize,
    },
    /// The remote already had everything.
    UpToDate(Oid),
    /// There are no results here or there.
    NothingToPush,
}

/// A push's outcome with how it got there.
#[derive(Debug)]
pub struct PushReport {
    pub outcome: PushOutcome,
    /// Fetch-merge-push rounds it took.
    pub attempts: u32,
    /// Pending records of killed runs that were committed before pushing.
    pub abandoned: usize,
}

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullOutcome {
    /// The remote has no results ref yet.
    RemoteEmpty,
    /// The remote's ref was fetched and merged in.
    Merged(MergeOutcome),
}

/// A remote of the repository, by name.
#[derive(Debug, Clone)]
pub struct Remote {
    pub name: String,
    /// As configured; may hold credentials, so shown only through `scrub`.
    urls: Vec<String>,
}

impl Remote {
    /// Looks the remote up in the repository's configuration.
    pub fn find(store: &GitStore, name: &str) -> Result<Remote, SyncError> {
        let repo = store.repo()?;
        let remote = match repo.find_remote(name) {
            Ok(r) => r,
            Err(_) => {
                let known: Vec<String> = repo
                    .remotes()
                    .map(|r| r.iter().flatten().flatten().map(str::to_string).collect())
                    .unwrap_or_default();
                return Err(SyncError::NoSuchRemote {
                    remote: name.to_string(),
                    known: if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                });
            }
        };
        let urls = [remote.url().ok(), remote.pushurl().ok().flatten()]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect();
        Ok(Remote {
            name: name.to_string(),
            urls,
        })
    }

    /// The URL for messages, without secrets.
    pub fn shown_url(&self) -> String {
        scrub(self.urls.first().map_or("no url", String::as_str))
    }
}

/// Sends the local results to `remote`: commits the pending records of
/// killed runs, then fetch, union merge and push without force, again and
/// again with back-off while other pushes land first, until `timeout`.
/// `progress` gets a line per retry.
pub fn push(
    store: &GitStore,
    remote: &str,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<PushReport, SyncError> {
    let remote = Remote::find(store, remote)?;
    let abandoned = store.commit_abandoned()?;
    for warning in &abandoned.warnings {
        progress(&format!("warning: {warning}"));
    }
    let started = Instant::now();
    let deadline = started + timeout;
    let git = Git::new(store, &remote);
    let mut backoff = Backoff::new();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let reason = match push_once(store, &git, &remote, deadline)? {
            Step::Done(outcome) => {
                return Ok(PushReport {
                    outcome,
                    attempts,
                    abandoned: abandoned.committed.len(),
                })
            }
            Step::Retry(reason) => reason,
        };
        let wait = backoff.next_wait();
        if Instant::now() + wait >= deadline {
            return Err(SyncError::GaveUp {
                action: "pushing",
                remote: remote.name.clone(),
                reference: store.results_ref().to_string(),
                attempts,
                elapsed_s: started.elapsed().as_secs_f64(),
                last: reason,
            });
        }
        progress(&format!(
            "push to {}: {reason}; trying again in {:.1} s (attempt {})",
            remote.name,
            wait.as_secs_f64(),
            attempts + 1
        ));
        std::thread::sleep(wait);
    }
}

/// Fetches `remote`'s results and merges them into the local ref.
pub fn pull(store: &GitStore, remote: &str) -> Result<PullOutcome, SyncError> {
    let remote = Remote::find(store, remote)?;
    let git = Git::new(store, &remote);
    let started = Instant::now();
    let deadline = started + DEFAULT_TIMEOUT;
    let mut backoff = Backoff::new();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match fetch(store, &git, &remote, deadline)? {
            Fetched::RemoteEmpty => return Ok(PullOutcome::RemoteEmpty),
            Fetched::Updated { tracking, tip } => {
                let label = tracking_label(&remote, store, &tracking);
                return Ok(PullOutcome::Merged(store.merge_commit(tip, &label)?));
            }
            Fetched::Busy(reason) => {
                let wait = backoff.next_wait();
                if Instant::now() + wait >= deadline {
                    return Err(SyncError::GaveUp {
                        action: "pulling",
                        remote: remote.name.clone(),
                        reference: store.results_ref().to_string(),
                        attempts,
                        elapsed_s: started.elapsed().as_secs_f64(),
                        last: reason,
                    });
                }
                std::thread::sleep(wait);
            }
        }
    }
}

/// What one fetch-merge-push round came to.
enum Step {
    Done(PushOutcome),
    Retry(String),
}

/// Fetch, merge, push. The merge is pushed before the local ref moves to
/// it, so a push that loses leaves no merge commit behind: the history of
/// the ref gets one merge per push that landed, not one per attempt.
fn push_once(
    store: &GitStore,
    git: &Git,
    remote: &Remote,
    deadline: Instant,
) -> Result<Step, SyncError> {
    let tracking_label;
    let (theirs, plan) = match fetch(store, git, remote, deadline)? {
        Fetched::Busy(reason) => return Ok(Step::Retry(reason)),
        Fetched::RemoteEmpty => {
            tracking_label = String::new();
            let ours = store.tip()?;
            let plan = MergePlan {
                ours,
                outcome: MergeOutcome::NothingToMerge,
            };
            (None, plan)
        }
        Fetched::Updated { tracking, tip } => {
            tracking_label = self::tracking_label(remote, store, &tracking);
            (Some(tip), store.plan_merge(tip, &tracking_label)?)
        }
    };
    let Some(new) = plan.result() else {
        return Ok(Step::Done(PushOutcome::NothingToPush));
    };
    if theirs == Some(new) {
        // The remote has everything; catch up when it has more.
        if plan.outcome != MergeOutcome::UpToDate {
            store.merge_commit(new, &tracking_label)?;
        }
        return Ok(Step::Done(PushOutcome::UpToDate(new)));
    }
    let name = store.results_ref().as_str();
    let refspec = format!("{new}:{name}");
    // --no-verify: the user's pre-push hooks check code, and this is not code.
    let ran = git.run(
        &["push", "--porcelain", "--no-verify", &remote.name, &refspec],
        deadline,
    )?;
    let status = parse_porcelain(&ran.stdout)
        .into_iter()
        .find(|s| s.to == name);
    let unreachable = |detail: String| SyncError::Unreachable {
        remote: remote.name.clone(),
        url: remote.shown_url(),
        reference: name.to_string(),
        detail,
    };
    match status.as_ref().map(judge) {
        Some(Verdict::Accepted) => {
            if Some(new) != plan.ours {
                // The remote now holds the merge; so does the local ref
                // (merged again if another local run committed meanwhile).
                store.merge_commit(new, &format!("{} as pushed", remote.name))?;
            }
            // `new` holds everything `theirs` does.
            let records = store
                .count_records(Some(new))?
                .saturating_sub(store.count_records(theirs)?);
            Ok(Step::Done(PushOutcome::Pushed {
                from: theirs,
                to: new,
                records,
            }))
        }
        Some(Verdict::Retry(reason)) => Ok(Step::Retry(scrub(&reason))),
        Some(Verdict::Refused(reason)) => Err(SyncError::Refused {
            remote: remote.name.clone(),
            url: remote.shown_url(),
            reference: name.to_string(),
            reason: scrub(&reason),
        }),
        None if ran.timed_out => Err(unreachable(format!(
            "git push did not finish within {} s",
            ran.limit.as_secs()
        ))),
        None => Err(unreachable(last_lines(&ran.stderr))),
    }
}

/// What a fetch of the remote's results ref found.
enum Fetched {
    /// The tracking ref (named) holds the remote's ref, at `tip`.
    Updated { tracking: String, tip: Oid },
    /// The remote has no such ref.
    RemoteEmpty,
    /// Another local fetch held the tracking ref's lock: try again.
    Busy(String),
}

fn fetch(
    store: &GitStore,
    git: &Git,
    remote: &Remote,
    deadline: Instant,
) -> Result<Fetched, SyncError> {
    let name = store.results_ref().as_str();
    let tracking = store.results_ref().tracking(&remote.name)?;
    // An explicit refspec: clones (actions/checkout above all) fetch
    // branches only, never this ref. Forced, because the tracking ref
    // mirrors whatever the remote holds.
    let refspec = format!("+{name}:{tracking}");
    // No housekeeping after the fetch: one process less per retry, and no
    // `pack-refs` taking locks while this and other processes move refs.
    let ran = git.run(
        &[
            "-c",
            "maintenance.auto=false",
            "-c",
            "gc.auto=0",
            "fetch",
            "--no-tags",
            &remote.name,
            &refspec,
        ],
        deadline,
    )?;
    if ran.success {
        let repo = store.repo()?;
        let tip = ref_target(&repo, &tracking).map_err(|source| GitStoreError::Git {
            reference: tracking.clone(),
            action: "read it after the fetch".into(),
            source,
        })?;
        // None: the ref vanished between the fetch and now; fetch again.
        return Ok(match tip {
            Some(tip) => Fetched::Updated { tracking, tip },
            None => Fetched::Busy(format!("{tracking} changed during the fetch")),
        });
    }
    if ran.stderr.contains("couldn't find remote ref") {
        return Ok(Fetched::RemoteEmpty);
    }
    if ran.stderr.contains("cannot lock ref")
        || (ran.stderr.contains("Unable to create") && ran.stderr.contains(".lock"))
    {
        // Another fetch in this clone, or a lock left by a killed one.
        store.wait_for_lock(&store.repo()?, &tracking);
        return Ok(Fetched::Busy(format!(
            "{tracking} is locked by another fetch"
        )));
    }
    let detail = if ran.timed_out {
        format!("git fetch did not finish within {} s", ran.limit.as_secs())
    } else {
        last_lines(&ran.stderr)
    };
    Err(SyncError::Unreachable {
        remote: remote.name.clone(),
        url: remote.shown_url(),
        reference: name.to_string(),
        detail,
    })
}

fn tracking_label(remote: &Remote, store: &GitStore, tracking: &str) -> String {
    format!(
        "{}'s {} (fetched into {tracking})",
        remote.name,
        store.results_ref()
    )
}

/// The last few lines of git's stderr: where it says what went wrong.
fn last_lines(stderr: &str) -> String {
    /// Enough for git's error and its hint, not its whole progress output.
    const LINES: usize = 4;
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(LINES)..].join("\n  ");
    if tail.is_empty() {
        "git gave no reason".to_string()
    } else {
        tail
    }
}
