//! The python backend's fork server: one process that imports torch (and,
//! when a case compiles, dynamo and inductor) once for the whole run, and
//! forks a child for each case and repeat (`fork_server` in
//! python/regress_worker.py).
//!
//! Nothing else changes for the processes regress starts: each repeat is
//! still `regress_worker.py` in a process group of its own, under the same
//! timeout and stop flag. That process hands the server its protocol and
//! stderr descriptors; the forked child joins its process group, answers
//! on them, and the process exits with the child's status. Each child is a
//! fresh process as far as the case goes (its own memory, inductor cache
//! and device context); only the imported modules are shared,
//! copy-on-write. A server that cannot start, or a machine where a child
//! cannot be forked, falls back to a fresh interpreter per process.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::json;

use super::process::{describe_exit, Supervised};
use super::protocol::PROTOCOL_VERSION;
use super::StopFlag;

/// Where the worker looks for the server's socket (set by regress only).
pub const SOCKET_ENV: &str = "REGRESS_FORK_SERVER";
/// Set to `0` (or `false`, `no`, `off`) to start a fresh interpreter for
/// every process instead.
pub const SWITCH_ENV: &str = "REGRESS_FORK_SERVER_ENABLED";
/// How long the server may take to import torch and listen (it starts
/// beside the probe, which mostly hides this wait).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether fork servers are wanted: on, unless `REGRESS_FORK_SERVER_ENABLED`
/// says otherwise.
pub fn enabled() -> bool {
    !matches!(
        std::env::var(SWITCH_ENV)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str(),
        "0" | "false" | "no" | "off"
    )
}

/// A started server, ready or not yet.
pub struct ForkServer {
    proc: Supervised,
    /// Held open for the server's lifetime: at its end the server exits.
    _stdin: ChildStdin,
    lines: Receiver<String>,
    socket: PathBuf,
}

impl ForkServer {
    /// Starts `python script` in `workdir` with the workers' environment,
    /// as a worker is started, and asks it to serve on `socket` (with
    /// inductor imported too when `inductor`); returns without waiting.
    pub fn start(
        python: &Path,
        script: &Path,
        env: &[(OsString, OsString)],
        workdir: &Path,
        socket: PathBuf,
        inductor: bool,
    ) -> std::io::Result<ForkServer> {
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .current_dir(workdir)
            .env_clear()
            .envs(env.iter().cloned())
            .env_remove(SOCKET_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut proc = Supervised::spawn(cmd)?;
        let mut stdin = proc.child.stdin.take().expect("stdin is piped");
        let request = json!({
            "cmd": "serve",
            "protocol": PROTOCOL_VERSION,
            "socket": socket,
            "preload": if inductor { vec!["inductor"] } else { vec![] },
        });
        // A server that already exited cannot read it: `ready` then says
        // how it ended, with its stderr.
        let _ = writeln!(stdin, "{request}");
        let stdout = proc.child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ForkServer {
            proc,
            _stdin: stdin,
            lines,
            socket,
        })
    }

    /// The socket the workers connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Waits until the server listens. Err: why it will not (it exited,
    /// said something else, took longer than `timeout`, or the run was
    /// stopped).
    pub fn ready(&mut self, timeout: Duration, stop: &StopFlag) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if stop.is_set() {
                return Err("the run was interrupted".into());
            }
            let now = Instant::now();
            if now >= deadline {
                self.proc.kill();
                return Err(format!("it did not start listening within {timeout:?}"));
            }
            match self
                .lines
                .recv_timeout((deadline - now).min(Duration::from_millis(100)))
            {
                Ok(line) if is_ready(&line) => return Ok(()),
                Ok(line) => {
                    self.proc.kill();
                    return Err(format!("it answered `{line}` instead of ready"));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let how = match self.proc.child.wait() {
                        Ok(status) => describe_exit(status),
                        Err(e) => e.to_string(),
                    };
                    return Err(format!("it {how}; stderr:\n{}", self.proc.stderr_tail()));
                }
            }
        }
    }
}

/// Whether a line is the server's `{"type": "ready"}`.
fn is_ready(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|v| v["type"] == "ready" && v["protocol"] == PROTOCOL_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_turns_the_server_off_only_when_it_says_so() {
        // One test owns the variable: tests run in threads of one process.
        for (value, on) in [
            ("0", false),
            ("off", false),
            (" False ", false),
            ("1", true),
            ("", true),
        ] {
            std::env::set_var(SWITCH_ENV, value);
            assert_eq!(enabled(), on, "{value:?}");
        }
        std::env::remove_var(SWITCH_ENV);
        assert!(enabled());
    }

    /// A server that is the shell script `text`, started in `dir`.
    fn server(dir: &Path, text: &str) -> ForkServer {
        let script = dir.join("server.sh");
        std::fs::write(&script, text).unwrap();
        ForkServer::start(
            Path::new("sh"),
            &script,
            &[(OsString::from("PATH"), std::env::var_os("PATH").unwrap())],
            dir,
            dir.join("s.sock"),
            false,
        )
        .unwrap()
    }

    #[test]
    fn a_server_that_exits_at_once_says_how_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = server(dir.path(), "echo 'no torch here' >&2\nexit 7\n");
        let err = server
            .ready(Duration::from_secs(30), &StopFlag::default())
            .unwrap_err();
        assert!(
            err.contains("status 7") && err.contains("no torch here"),
            "{err}"
        );
    }

    #[test]
    fn a_server_is_ready_when_it_says_so() {
        let dir = tempfile::tempdir().unwrap();
        // Reads the request, says ready, then waits for its stdin to close,
        // as the worker does.
        let mut server = server(
            dir.path(),
            &format!(
                "read -r request\ncase \"$request\" in *'\"cmd\":\"serve\"'*) ;; *) exit 9 ;; esac\n\
                 echo '{{\"type\": \"ready\", \"protocol\": {PROTOCOL_VERSION}}}'\ncat >/dev/null\n"
            ),
        );
        assert_eq!(
            server.ready(Duration::from_secs(30), &StopFlag::default()),
            Ok(())
        );
        assert_eq!(server.socket(), dir.path().join("s.sock"));
    }
}
