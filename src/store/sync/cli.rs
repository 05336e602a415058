//! Running the `git` CLI for the network half of the store: a bounded
//! command with the credential environment, its output scrubbed of tokens,
//! and the back-off between attempts.

use super::*;

/// The `git` command, run against one repository with the environment a
/// remote operation needs.
pub(super) struct Git {
    pub(super) git_dir: std::path::PathBuf,
    pub(super) top_dir: std::path::PathBuf,
    pub(super) env: Vec<(String, String)>,
}

/// What a git command did; its stderr is already scrubbed.
pub(super) struct Ran {
    pub(super) success: bool,
    pub(super) timed_out: bool,
    pub(super) limit: Duration,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Git {
    pub(super) fn new(store: &GitStore, remote: &Remote) -> Git {
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
    pub(super) fn run(&self, args: &[&str], deadline: Instant) -> Result<Ran, SyncError> {
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

pub(super) fn read_all(file: &mut File) -> String {
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
pub(super) struct Backoff {
    pub(super) bound: Duration,
}

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff {
            bound: BACKOFF_START,
        }
    }

    pub(super) fn next_wait(&mut self) -> Duration {
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
pub(super) fn credential_env(
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
pub(super) fn https_origin(url: &str) -> Option<String> {
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

pub(super) fn scrub_with(text: &str, token: Option<&str>) -> String {
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
