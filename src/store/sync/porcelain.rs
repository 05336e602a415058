//! Reading `git push --porcelain`: one status line per ref, and which of
//! them mean "try again after fetching".

use super::*;

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
