//! Supervising child processes: own process group (so a timeout or Ctrl-C
//! kills the whole tree, compile workers included), a deadline, the stop
//! flag, and the tail of stderr for failure reports.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use super::StopFlag;

/// How often a waiting loop looks at the stop flag. Waiting itself wakes at
/// once when the child exits, so this costs no timing accuracy.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Lines of stderr quoted when a process fails.
pub const STDERR_TAIL_LINES: usize = 20;

/// How a supervised process ended.
#[derive(Debug)]
pub enum Ended {
    Exited(ExitStatus),
    TimedOut,
    Stopped,
}

/// A child in its own process group with stderr going to an anonymous file.
pub struct Supervised {
    pub child: Child,
    /// Taken just before the child was started: wall time is measured from
    /// here, not counting the stderr file's creation.
    pub started: Instant,
    stderr: File,
}

impl Supervised {
    /// Spawns `cmd` with stderr captured; stdin/stdout are the caller's choice.
    pub fn spawn(mut cmd: Command) -> std::io::Result<Supervised> {
        let stderr = tempfile::tempfile()?;
        cmd.stderr(Stdio::from(stderr.try_clone()?))
            .process_group(0);
        let started = Instant::now();
        let child = cmd.spawn()?;
        Ok(Supervised {
            child,
            started,
            stderr,
        })
    }

    /// Waits for exit, the deadline, or a stop, whichever comes first; kills
    /// the process group in the last two cases.
    pub fn wait(&mut self, deadline: Instant, stop: &StopFlag) -> std::io::Result<Ended> {
        loop {
            if stop.is_set() {
                self.kill();
                return Ok(Ended::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                self.kill();
                return Ok(Ended::TimedOut);
            }
            let slice = (deadline - now).min(STOP_POLL);
            if let Some(status) = self.child.wait_timeout(slice)? {
                return Ok(Ended::Exited(status));
            }
        }
    }

    /// Kills the child's whole process group and reaps the child.
    pub fn kill(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals that process group; the
        // group was created for this child alone by `process_group(0)`.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines the child wrote to stderr.
    pub fn stderr_tail(&mut self) -> String {
        let mut text = String::new();
        if self.stderr.seek(SeekFrom::Start(0)).is_ok() {
            let mut bytes = Vec::new();
            let _ = self.stderr.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        tail_lines(&text, STDERR_TAIL_LINES)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// The last `n` non-empty lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Describes an exit status for a failure reason.
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
        _ => "ended abnormally".to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_non_empty_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(tail_lines("", 3), "");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & sleep 30"])
            .stdout(Stdio::null());
        let mut p = Supervised::spawn(cmd).unwrap();
        let started = Instant::now();
        let ended = p
            .wait(
                Instant::now() + Duration::from_millis(200),
                &StopFlag::default(),
            )
            .unwrap();
        assert!(matches!(ended, Ended::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
