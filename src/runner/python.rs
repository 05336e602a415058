//! The torch.compile backend: a Python worker, embedded in the binary, run in
//! a fresh process per case and repeat, speaking the typed protocol.

use std::path::{Path, PathBuf};

use super::fork_server::{self, ForkServer};
use super::gpus::{self, GpuInfo};
use super::probe_cache::{self, Entry, KeyInputs, Lookup, Miss, ProbeCache};
use super::worker::Worker;
use super::{Backend, Environment, Outcome, RunContext, RunnerError};
use crate::id::fnv_hex;
use crate::spec::{defaults, Case, CompileMode, Pipeline};

/// Environment variable naming the interpreter when the pipeline does not.
pub const PYTHON_ENV: &str = "REGRESS_PYTHON";

/// Worker sources shipped inside the binary: (file name, text). The entry
/// point is `regress_worker.py`; the others are its modules.
const WORKER_FILES: [(&str, &str); 9] = [
    (
        "regress_worker.py",
        include_str!("../../python/regress_worker.py"),
    ),
    (
        "regress_case.py",
        include_str!("../../python/regress_case.py"),
    ),
    (
        "regress_models.py",
        include_str!("../../python/regress_models.py"),
    ),
    (
        "regress_precision.py",
        include_str!("../../python/regress_precision.py"),
    ),
    (
        "regress_compile.py",
        include_str!("../../python/regress_compile.py"),
    ),
    (
        "regress_accuracy.py",
        include_str!("../../python/regress_accuracy.py"),
    ),
    (
        "regress_timing.py",
        include_str!("../../python/regress_timing.py"),
    ),
    (
        "regress_gpu.py",
        include_str!("../../python/regress_gpu.py"),
    ),
    (
        "regress_zoo.py",
        include_str!("../../python/regress_zoo.py"),
    ),
];

/// Which Python runs the worker: `runner.python`, else `REGRESS_PYTHON`, else
/// the repository's `.venv/bin/python` when present, else `python3`.
pub fn interpreter(configured: Option<&str>, workdir: &Path) -> PathBuf {
    if let Some(p) = configured {
        let path = PathBuf::from(p);
        return if path.is_relative() && p.contains('/') {
            workdir.join(path)
        } else {
            path
        };
    }
    if let Some(p) = std::env::var_os(PYTHON_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = workdir.join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// A digest of the worker's sources, for the probe cache's key.
fn worker_digest() -> String {
    let mut all = String::new();
    for (name, text) in WORKER_FILES {
        all.push_str(name);
        all.push('\0');
        all.push_str(text);
        all.push('\0');
    }
    fnv_hex(all.as_bytes())
}

pub struct PythonBackend {
    worker: Worker,
    /// The fork server, from the probe on (see `fork_server`).
    server: Server,
    /// Whether a case compiles: the server then imports inductor too.
    compiles: bool,
    /// Holds the worker sources for as long as the backend lives.
    _dir: tempfile::TempDir,
    /// Whether inductor's vector-ISA answers are wanted (a case compiles).
    wants_isa: bool,
    cache: ProbeCache,
    /// Where the probe's answer came from, when that is worth a line.
    note: Option<String>,
}

/// Where the backend's fork server stands.
enum Server {
    /// Not started yet, or not wanted.
    None,
    /// Importing torch while the probe runs.
    Starting(ForkServer),
    /// Listening: the workers go through it (held until the backend ends).
    Ready { _server: ForkServer },
}

impl PythonBackend {
    /// The backend for `cases` of `pipeline`: only when one of them
    /// compiles is inductor's set-up made (a `--filter` that keeps eager
    /// cases pays nothing for the compiled ones left out).
    pub fn new(pipeline: &Pipeline, cases: &[Case], ctx: RunContext) -> Result<Self, RunnerError> {
        let dir = tempfile::Builder::new()
            .prefix("regress-worker-")
            .tempdir()
            .map_err(RunnerError::Worker)?;
        for (name, text) in WORKER_FILES {
            std::fs::write(dir.path().join(name), text).map_err(RunnerError::Worker)?;
        }
        let compiles = cases
            .iter()
            .any(|c| c.compile.is_some_and(|m| m != CompileMode::Eager));
        // Inductor's CPU vector-ISA checks, shared so that the probe makes
        // them once instead of every worker (none when nothing compiles):
        // kept across runs in the probe cache where it can be written
        // (`environment`), else for this run in its scratch directory.
        let wants_isa = compiles && pipeline.compile_options.backend == defaults::COMPILE_BACKEND;
        let isa_checks = wants_isa.then(|| ctx.scratch.path().join("isa-checks.json"));
        let cache = ctx.probe_cache.clone();
        let python = interpreter(pipeline.runner.python.as_deref(), &ctx.venv_root);
        let script = dir.path().join("regress_worker.py").into_os_string();
        let mut worker = Worker::new(
            "python",
            python,
            vec![script],
            &[("PYTHONUNBUFFERED", "1")],
            pipeline,
            ctx,
            isa_checks,
        );
        // Only regress points workers at a server.
        worker.set_env(fork_server::SOCKET_ENV, None);
        Ok(PythonBackend {
            worker,
            server: Server::None,
            compiles,
            _dir: dir,
            wants_isa,
            cache,
            note: None,
        })
    }

    /// Starts the fork server (it imports torch while the probe does).
    fn start_server(&mut self) {
        if !fork_server::enabled() {
            return;
        }
        let started = ForkServer::start(
            &self.worker.program,
            Path::new(&self.worker.args[0]),
            self.worker.env(),
            &self.worker.ctx().workdir,
            self._dir.path().join("fork-server.sock"),
            self.compiles,
        );
        match started {
            Ok(server) => self.server = Server::Starting(server),
            Err(e) => eprintln!(
                "regress: cannot start the fork server ({e}); every process imports torch itself"
            ),
        }
    }

    /// Once the server listens, the workers go through it; a server that
    /// failed is dropped, with a word, and every process starts its own
    /// interpreter as before.
    fn await_server(&mut self) {
        if !matches!(self.server, Server::Starting(_)) {
            return;
        }
        let Server::Starting(mut server) = std::mem::replace(&mut self.server, Server::None) else {
            unreachable!("matched above");
        };
        let stop = self.worker.ctx().stop.clone();
        match server.ready(fork_server::START_TIMEOUT, &stop) {
            Ok(()) => {
                let socket = server.socket().as_os_str().to_owned();
                self.worker.set_env(fork_server::SOCKET_ENV, Some(socket));
                self.server = Server::Ready { _server: server };
            }
            Err(why) if !stop.is_set() => eprintln!(
                "regress: the fork server did not start ({why}); every process imports torch itself"
            ),
            Err(_) => {}
        }
    }

    /// This worker's entry of the probe cache, or why there is none (a
    /// line to show, when there is one worth showing).
    fn cache_entry(&self, smi: &[GpuInfo]) -> Result<Entry, Option<String>> {
        let key = probe_cache::probe_key(&KeyInputs {
            program: &self.worker.program,
            env: self.worker.env(),
            workdir: self.worker.workdir(),
            device: self.worker.device(),
            worker: &worker_digest(),
            gpus: smi,
        })
        .map_err(|e| Some(format!("probe: not cached ({e})")))?;
        self.cache.entry(&key)
    }
}

impl Backend for PythonBackend {
    /// The probe's answer: cached from an earlier run when everything it
    /// depends on is unchanged, else asked of a worker (and kept). Whether
    /// torch can use the host's GPUs is checked either way.
    fn environment(&mut self) -> Result<Environment, RunnerError> {
        if matches!(self.server, Server::None) {
            self.start_server();
        }
        // nvidia-smi once: for the cache's key and for the GPU check.
        let smi = gpus::nvidia_smi();
        let entry = match self.cache_entry(&smi) {
            Ok(entry) => Some(entry),
            Err(note) => {
                self.note = note;
                None
            }
        };
        if let (Some(entry), true) = (&entry, self.wants_isa) {
            self.worker.set_isa_checks(Some(entry.isa_checks()));
        }
        let found = entry.as_ref().map(|e| (e, e.lookup(self.wants_isa)));
        let env = match found {
            Some((entry, Lookup::Hit(env))) => {
                self.note = Some(format!(
                    "probe: reused the answer cached in {} (torch {}, Python {}); --refresh-probe asks again",
                    entry.dir().display(),
                    env.torch.as_deref().unwrap_or("?"),
                    env.python.as_deref().unwrap_or("?"),
                ));
                *env
            }
            found => {
                let miss = found.map(|(_, lookup)| lookup);
                let python = self.worker.name();
                let env = self
                    .worker
                    .ask_probe(|source| RunnerError::PythonMissing { python, source })?;
                if let Some(entry) = &entry {
                    self.note = match (entry.store(&env), miss) {
                        (Err(e), _) => Some(format!(
                            "warning: cannot keep the probe's answer in {} ({e}); the next run probes again",
                            entry.file().display()
                        )),
                        (Ok(()), Some(Lookup::Miss(Miss::Refresh))) => Some(format!(
                            "probe: asked anew and kept in {}",
                            entry.dir().display()
                        )),
                        (Ok(()), Some(Lookup::Miss(Miss::Unreadable(why)))) => Some(format!(
                            "warning: ignored the cached probe {} ({why}); probed again and replaced it",
                            entry.file().display()
                        )),
                        _ => None,
                    };
                }
                env
            }
        };
        self.worker.check_cuda(&env, &smi)?;
        Ok(env)
    }

    fn probe_note(&self) -> Option<String> {
        self.note.clone()
    }

    fn run_process(&mut self, case: &Case, repeat: u32) -> Outcome {
        self.await_server();
        self.worker.run(case, repeat)
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::{parse_line, Message, Request, PROTOCOL_VERSION};
    use super::super::{RunContext, StopFlag};
    use super::PythonBackend;
    use crate::spec::{CompileMode, Pipeline};
    use serde_json::json;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn the_worker_refuses_a_request_of_another_protocol_before_importing_torch() {
        // Plain python3 (no torch needed): the check comes first.
        let worker = concat!(env!("CARGO_MANIFEST_DIR"), "/python/regress_worker.py");
        let mut child = match Command::new("python3")
            .arg(worker)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipped: no python3 ({e})");
                return;
            }
        };
        let request = json!({"cmd": "probe", "protocol": 999, "device": "cpu", "isa_checks": null});
        writeln!(child.stdin.take().unwrap(), "{request}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.lines().next().expect("an answer");
        let Message::Error { kind, message, .. } = parse_line(line).unwrap() else {
            panic!("an error: {line}")
        };
        assert_eq!(kind, "protocol");
        assert!(
            message.contains("protocol 999")
                && message.contains(&format!("speaks {PROTOCOL_VERSION}")),
            "{message}"
        );
    }

    #[test]
    fn the_compile_set_up_is_made_only_when_a_selected_case_compiles() {
        let src =
            "version: 1\nname: f\nmodel: {builtin: mlp}\nmatrix: {compile: [eager, default]}\n";
        let p = Pipeline::parse(src, std::path::Path::new("f.yaml"))
            .unwrap()
            .remove(0);
        let dir = std::env::temp_dir();
        let ctx = RunContext::new(dir.clone(), dir, StopFlag::default(), 0).unwrap();
        let isa_checks = |cases: &[crate::spec::Case]| {
            let backend = PythonBackend::new(&p, cases, ctx.clone()).unwrap();
            let Request::Run(run) = backend.worker.request(&cases[0], 0) else {
                panic!("a run request")
            };
            run.isa_checks
        };
        let all = p.cases();
        assert!(isa_checks(&all).is_some(), "a compiled case is selected");
        let eager: Vec<_> = all
            .into_iter()
            .filter(|c| c.compile == Some(CompileMode::Eager))
            .collect();
        assert_eq!(isa_checks(&eager), None, "--filter kept only eager cases");
    }
}
