//! Helpers shared by the integration tests: scratch git repositories and the
//! `regress` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

pub mod github;

/// A git repository in a temporary directory, removed on drop.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let repo = Repo::empty_dir();
        repo.git(&["init", "-q", "-b", "main"]);
        repo.configure();
        repo
    }

    /// A clone of `url` (a path or URL; `args` go to `git clone`, e.g.
    /// `--depth 1`).
    pub fn clone_of(url: &str, args: &[&str]) -> Repo {
        let repo = Repo::empty_dir();
        let mut cmd = Command::new("git");
        cmd.args(["clone", "-q"])
            .args(args)
            .arg(url)
            .arg(repo.path());
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "git clone {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        repo.configure();
        repo
    }

    fn empty_dir() -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("regress-test-")
            .tempdir()
            .unwrap();
        Repo { dir }
    }

    fn configure(&self) {
        self.git(&["config", "user.email", "test@example.com"]);
        self.git(&["config", "user.name", "regress test"]);
        self.git(&["config", "commit.gpgsign", "false"]);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes a script and makes it executable.
    pub fn write_executable(&self, rel: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write(rel, text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// `regress` with its working directory in this repository, none of
    /// the variables that choose a store or hold a token, and a probe
    /// cache of its own (in `.git`, outside the work tree), so that no
    /// test reuses another's answer or the user's.
    pub fn regress(&self) -> Command {
        let mut cmd = Command::cargo_bin("regress").unwrap();
        cmd.current_dir(self.path())
            .env("NO_COLOR", "1")
            .env("REGRESS_CACHE_DIR", self.path().join(".git/regress-cache"))
            .env_remove("REGRESS_STORE")
            .env_remove("REGRESS_STORE_REF")
            .env_remove("GITHUB_TOKEN");
        cmd
    }

    /// Every record file in the default store.
    pub fn record_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.path().join(".regress")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }
}

/// A bare repository in a temporary directory, as a remote: `url()` is its path.
pub struct Bare {
    pub dir: tempfile::TempDir,
}

impl Bare {
    /// An empty bare repository whose HEAD names `main`.
    pub fn new() -> Bare {
        let dir = tempfile::Builder::new()
            .prefix("regress-origin-")
            .tempdir()
            .unwrap();
        let out = Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Bare { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        self.path().display().to_string()
    }
}

/// Held by tests that measure wall time and by tests that load every
/// core (many processes at once), so that the load never lands inside a
/// measurement.
static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the machine lock (see `MACHINE`); a test that panicked while
/// holding it leaves it usable.
pub fn machine_lock() -> std::sync::MutexGuard<'static, ()> {
    MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a command and returns (exit code, stdout, stderr).
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The Python with torch the tests should use: REGRESS_PYTHON, else the
/// crate's .venv. None when neither exists (then torch tests are skipped).
pub fn torch_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REGRESS_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    venv.exists().then_some(venv)
}

/// `torch_python`, or None after saying why the calling test is skipped.
pub fn python_or_skip() -> Option<PathBuf> {
    let python = torch_python();
    if python.is_none() {
        eprintln!("skipped: no Python with torch (set REGRESS_PYTHON or run `make test`)");
    }
    python
}

/// A mock pipeline with `n` batch values.
pub fn mock_pipeline(name: &str, n: usize, processes: u32) -> String {
    let batches: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    format!(
        "version: 1\nname: {name}\nmodel: {{builtin: mlp}}\nrunner:\n  backend: mock\n  processes: {processes}\n  measure: {{min_iters: 20}}\nmatrix:\n  batch: [{}]\n  precision: [fp32, fp8]\ncompare: {{threshold: 5%, alpha: 0.01}}\n",
        batches.join(", ")
    )
}
