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

/// The `git` command, run against one repository with the environment a
/// remote operation needs.
struct Git {
    git_dir: std::path::PathBuf,
    top_dir: std::path::PathBuf,
    env: Vec<(String, String)>,
}

/// What a git command did; its stderr is already scrubbed.
struct Ran {
    success: bool,
    timed_out: bool,
    limit: Duration,
    stdout: String,
    stderr: String,
}

impl Git {
    fn new(store: &GitStore, remote: &Remote) -> Git {
        let mut env = vec![
            // Fail instead of waiting for a password nobody will type.
            ("GIT_TERMINAL_PROMPT".to_string(), "0".to_string()),
            // Messages are matched in English.
            ("LC_ALL".to_string(), "C".to_string()),
        ];
        env.extend(credential_env(
            &remote.urls,
            std::env::var("GITHUB_TOKEN").ok().as_deref(),
            std::env::var("GITHUB_SERVER_URL").ok().as_deref(),
            std::env::var("GIT_CONFIG_COUNT").ok().as_deref(),
        ));
        Git {
            git_dir: store.git_dir().to_path_buf(),
            top_dir: store.top_dir().to_path_buf(),
            env,
        }
    }

    /// Runs git with `args`; stops it when it outlives `deadline` (or
    /// `GIT_COMMAND_FLOOR`, whichever is later).
    fn run(&self, args: &[&str], deadline: Instant) -> Result<Ran, SyncError> {
        let missing = |source| SyncError::GitMissing { source };
        // Files, not pipes: nothing blocks however much git writes.
        let (mut stdout, mut stderr) = (
            tempfile::tempfile().map_err(missing)?,
            tempfile::tempfile().map_err(missing)?,
        );
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(args)
            .current_dir(&self.top_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().map_err(missing)?)
            .stderr(stderr.try_clone().map_err(missing)?)
            .spawn()
            .map_err(missing)?;
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .max(GIT_COMMAND_FLOOR);
        let status = child.wait_timeout(limit).map_err(missing)?;
        let timed_out = status.is_none();
        if timed_out {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(Ran {
            success: status.is_some_and(|s| s.success()),
            timed_out,
            limit,
            stdout: read_all(&mut stdout),
            stderr: scrub(&read_all(&mut stderr)),
        })
    }
}

fn read_all(file: &mut File) -> String {
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(0)).is_ok() {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Jittered exponential back-off ("full jitter"): each wait is uniform
/// between zero and a bound that doubles from `BACKOFF_START` up to
/// `BACKOFF_CAP`, so processes that collided once spread out instead of
/// colliding again in step.
struct Backoff {
    bound: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            bound: BACKOFF_START,
        }
    }

    fn next_wait(&mut self) -> Duration {
        let wait = self.bound.mul_f64(fastrand::f64());
        self.bound = (self.bound * 2).min(BACKOFF_CAP);
        wait
    }
}

/// The environment that hands `token` to git as the password for
/// `x-access-token`, when a remote URL is https on GitHub's host (`server`,
/// default github.com); empty otherwise. The token itself stays in the
/// `GITHUB_TOKEN` variable the helper reads. An empty helper value first
/// clears the helpers of the user's config for that host, so a stale
/// stored password does not win over the token. Entries are appended after
/// any `GIT_CONFIG_COUNT` the caller already set.
fn credential_env(
    urls: &[String],
    token: Option<&str>,
    server: Option<&str>,
    config_count: Option<&str>,
) -> Vec<(String, String)> {
    if token.is_none_or(str::is_empty) {
        return Vec::new();
    }
    let server = server
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_GITHUB_SERVER);
    let Some(origin) = https_origin(server) else {
        return Vec::new();
    };
    if !urls
        .iter()
        .any(|u| https_origin(u).as_deref() == Some(origin.as_str()))
    {
        return Vec::new();
    }
    let base: usize = config_count.and_then(|c| c.parse().ok()).unwrap_or(0);
    let key = format!("credential.{origin}.helper");
    vec![
        (format!("GIT_CONFIG_KEY_{base}"), key.clone()),
        (format!("GIT_CONFIG_VALUE_{base}"), String::new()),
        (format!("GIT_CONFIG_KEY_{}", base + 1), key),
        (format!("GIT_CONFIG_VALUE_{}", base + 1), token_helper()),
        ("GIT_CONFIG_COUNT".to_string(), (base + 2).to_string()),
    ]
}

/// `https://host[:port]` of an https URL, without user info, host in lower case.
fn https_origin(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.to_ascii_lowercase();
    (!host.is_empty()).then(|| format!("https://{host}"))
}

/// `text` with the value of `GITHUB_TOKEN` and the user info of any URL
/// (`https://user:password@host`) replaced by `***`.
pub fn scrub(text: &str) -> String {
    scrub_with(text, std::env::var("GITHUB_TOKEN").ok().as_deref())
}

fn scrub_with(text: &str, token: Option<&str>) -> String {
    let mut out = match token.filter(|t| !t.is_empty()) {
        Some(t) => text.replace(t, REDACTED),
        None => text.to_string(),
    };
    let mut from = 0;
    while let Some(found) = out[from..].find("://") {
        let start = from + found + 3;
        let end = out[start..]
            .find(|c: char| c == '/' || c.is_whitespace() || matches!(c, '\'' | '"' | '>' | ')'))
            .map_or(out.len(), |e| start + e);
        if let Some(at) = out[start..end].rfind('@') {
            out.replace_range(start..start + at, REDACTED);
            from = start + REDACTED.len() + 1;
        } else {
            from = end;
        }
    }
    out
}

/// One ref's line of `git push --porcelain`:
/// `<flag>\t<from>:<to>\t<summary> (<reason>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefStatus {
    /// ` ` fast-forward, `+` forced, `-` deleted, `*` new, `=` up to date, `!` rejected.
    pub flag: char,
    pub from: String,
    pub to: String,
    /// `abc..def`, `[new reference]`, `[up to date]`, `[rejected]`, `[remote rejected]`, …
    pub summary: String,
    pub reason: Option<String>,
}

/// The per-ref lines of `git push --porcelain`'s standard output; other
/// lines (`To <url>`, `Done`) are skipped.
pub fn parse_porcelain(stdout: &str) -> Vec<RefStatus> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let flag = fields.next()?;
            let refs = fields.next()?;
            let rest = fields.next()?;
            let mut chars = flag.chars();
            let flag = chars
                .next()
                .filter(|c| " +-*=!".contains(*c) && chars.next().is_none())?;
            let (from, to) = refs.split_once(':')?;
            let (summary, reason) = match rest.find(" (") {
                Some(i) if rest.ends_with(')') => {
                    (&rest[..i], Some(rest[i + 2..rest.len() - 1].to_string()))
                }
                _ => (rest, None),
            };
            Some(RefStatus {
                flag,
                from: from.to_string(),
                to: to.to_string(),
                summary: summary.to_string(),
                reason,
            })
        })
        .collect()
}

/// What a ref's push status means for regress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The remote's ref now holds what was pushed.
    Accepted,
    /// Another push landed first (or at the same moment): fetch, merge, retry.
    Retry(String),
    /// The remote will not take it, however often asked.
    Refused(String),
}

/// Judges one ref's status line.
pub fn judge(status: &RefStatus) -> Verdict {
    let describe = || match &status.reason {
        Some(reason) => format!("{} ({reason})", status.summary),
        None => status.summary.clone(),
    };
    match status.flag {
        ' ' | '*' | '+' | '=' => Verdict::Accepted,
        '!' => {
            let reason = status.reason.as_deref().unwrap_or("");
            if status.summary == "[rejected]"
                || RETRYABLE_REASONS.iter().any(|r| reason.contains(r))
            {
                Verdict::Retry(describe())
            } else {
                Verdict::Refused(describe())
            }
        }
        _ => Verdict::Refused(describe()),
    }
}

#[cfg(test)]
mod tests {
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
        assert!(
            credential_env(&urls("https://gitlab.com/o/r.git"), Some("t"), None, None).is_empty()
        );
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
}
