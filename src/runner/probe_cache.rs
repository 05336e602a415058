//! The python worker's start-up probe, kept between runs. The probe imports
//! torch and, when a case compiles with inductor, makes inductor's CPU
//! vector-ISA checks: seconds before the first case, with the same answer
//! every run. Its answer (and the ISA answers) are kept in a directory per
//! key, where the key holds everything the answer could depend on: the
//! interpreter and the torch installation (by file identity, found without
//! importing torch), the requested device, the GPUs nvidia-smi lists and
//! CUDA_VISIBLE_DEVICES, the host and its CPU, the compiler inductor would
//! call, the variables that change torch's settings or thread counts, and
//! the worker's own sources and protocol. A stale answer would be recorded
//! as the machine a result was measured on, so whatever might change it is
//! in the key; a cached file that cannot be read is probed anew, never an
//! error.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use wait_timeout::ChildExt;

use super::gpus::{GpuInfo, CUDA_VISIBLE_DEVICES};
use super::protocol::PROTOCOL_VERSION;
use super::Environment;
use crate::id::fnv_hex;
use crate::spec::DeviceChoice;

/// Directory holding regress's caches, instead of `$XDG_CACHE_HOME/regress`.
pub const CACHE_DIR_ENV: &str = "REGRESS_CACHE_DIR";

/// Set (to anything but empty or `0`) to probe anew, as `--refresh-probe`.
pub const REFRESH_PROBE_ENV: &str = "REGRESS_REFRESH_PROBE";

/// Version of `probe.json`; a file of another version is probed anew.
pub const PROBE_FORMAT: u32 = 1;

/// The probe's answer in an entry's directory.
const PROBE_FILE: &str = "probe.json";

/// Inductor's vector-ISA answers in an entry's directory (the worker reads
/// and writes this file itself, atomically).
const ISA_CHECKS_FILE: &str = "isa-checks.json";

/// How long locating torch may take: one interpreter start without
/// importing torch (tens of milliseconds), allowing for a cold disk.
const LOCATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the interpreter, in the worker's environment and without importing
/// anything heavy, where torch would come from. The worker runs as a
/// script, so its `sys.path[0]` is its own directory, not the current one:
/// `-c` puts the current directory there instead, which is taken out.
const LOCATE_TORCH: &str = "import importlib.util, json, sys
if not getattr(sys.flags, 'safe_path', False):
    del sys.path[0]
spec = importlib.util.find_spec('torch')
print(json.dumps({'torch': spec.origin if spec else None, 'version': sys.version,
                  'prefix': sys.prefix, 'executable': sys.executable}))";

/// Variables that change what the probe reports: the worker's speed
/// settings (its `SPEED_ENV` and `TORCHINDUCTOR_*`), the thread pools
/// (OpenMP, MKL), which libraries and which torch load, and the compiler
/// inductor's ISA checks call. Prefixes end in `_` or are whole families.
const ENV_PREFIXES: &[&str] = &[
    "TORCH",
    "PYTORCH_",
    "CUDA_",
    "NVIDIA_",
    "CUBLAS",
    "CUDNN",
    "OMP_",
    "MKL_",
    "KMP_",
    "GOMP_",
    "OPENBLAS_",
    "PYTHON",
    "HIP_",
    "ROCM_",
];
const ENV_NAMES: &[&str] = &[
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "DYLD_LIBRARY_PATH",
    "CXX",
    "CC",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
];

/// Whether a variable of the worker's environment may change the probe's answer.
pub fn affects_probe(name: &str) -> bool {
    ENV_NAMES.contains(&name) || ENV_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Where the probe cache lives for one command, and whether to refresh it.
/// Cloned into every backend of the command; the clones share what was
/// refreshed and whether a warning was given.
#[derive(Debug, Clone, Default)]
pub struct ProbeCache {
    /// `None`: no cache (no home directory to put it in).
    root: Option<PathBuf>,
    /// Probe anew, once per key in this command, and keep the new answer.
    pub refresh: bool,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Keys already refreshed by this command (`ab` probes both sides).
    refreshed: Mutex<HashSet<String>>,
    /// Whether the cache directory was found unwritable already.
    warned: AtomicBool,
}

impl ProbeCache {
    /// The cache of this user: `$REGRESS_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/regress`, else `~/.cache/regress` (made absolute);
    /// refreshed when `REGRESS_REFRESH_PROBE` is set.
    pub fn from_env() -> ProbeCache {
        let var = |name| std::env::var_os(name).filter(|v: &OsString| !v.is_empty());
        let root = var(CACHE_DIR_ENV)
            .map(PathBuf::from)
            .or_else(|| {
                var("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|p| p.join("regress"))
            })
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/regress")))
            // Workers run in the checkout measured (a worktree, for `ab`)
            // and are handed paths in the cache: never relative ones.
            .and_then(|p| std::path::absolute(p).ok());
        let refresh = var(REFRESH_PROBE_ENV).is_some_and(|v| v != "0");
        ProbeCache {
            root,
            refresh,
            shared: Arc::default(),
        }
    }

    /// A cache in `root` (tests).
    pub fn at(root: PathBuf) -> ProbeCache {
        ProbeCache {
            root: Some(root),
            ..ProbeCache::default()
        }
    }

    /// The entry for `key`, if the cache directory can be written: when it
    /// cannot, the first call in the command says so (the returned note)
    /// and every backend goes on uncached.
    pub fn entry(&self, key: &ProbeKey) -> Result<Entry, Option<String>> {
        let Some(root) = &self.root else {
            return Err(None);
        };
        let dir = root.join("probe").join(key.digest());
        let writable = std::fs::create_dir_all(&dir)
            .and_then(|()| tempfile::NamedTempFile::new_in(&dir).map(drop));
        match writable {
            Ok(()) => Ok(Entry {
                dir,
                key: key.clone(),
                refresh: self.refresh && self.shared.refreshed.lock().is_ok_and(|mut done| {
                    // Only the first backend of the command with this key
                    // probes anew; the others reuse what it found.
                    done.insert(key.digest())
                }),
            }),
            Err(e) if !self.shared.warned.swap(true, Ordering::SeqCst) => Err(Some(format!(
                "warning: cannot write the probe cache in {} ({e}); probing every run (set {CACHE_DIR_ENV} to a writable directory)",
                root.display()
            ))),
            Err(_) => Err(None),
        }
    }
}

/// What the probe's answer depends on, by name; the directory of a cache
/// entry is named by its digest, and the entry keeps it whole so that a
/// digest collision is a miss, not a wrong answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeKey(BTreeMap<String, String>);

impl ProbeKey {
    /// The name of the entry's directory.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(&self.0).expect("a map of strings serialises");
        fnv_hex(text.as_bytes())
    }

    /// The component `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// What the python worker's probe is asked with and run in.
pub struct KeyInputs<'a> {
    /// The interpreter as configured (a venv's `python` is a link whose
    /// own path matters, not only its target).
    pub program: &'a Path,
    /// The worker's environment, complete (it is cleared before a spawn).
    pub env: &'a [(OsString, OsString)],
    pub workdir: &'a Path,
    pub device: DeviceChoice,
    /// A digest of the worker's sources: a changed worker may answer differently.
    pub worker: &'a str,
    /// Every GPU nvidia-smi lists.
    pub gpus: &'a [GpuInfo],
}

/// Why there is no key: the probe then runs uncached, and reports the
/// real trouble (no interpreter, no torch) itself.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot run `{program}` to locate torch: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{program}` did not say where torch is: {detail}")]
    Locate { program: String, detail: String },
    #[error("`{program}` finds no torch")]
    NoTorch { program: String },
}

/// The key of the probe run with `inputs`.
pub fn probe_key(inputs: &KeyInputs) -> Result<ProbeKey, KeyError> {
    let mut k = BTreeMap::new();
    let mut put = |name: &str, value: String| {
        k.insert(name.to_string(), value);
    };
    put("regress", env!("CARGO_PKG_VERSION").to_string());
    put("protocol", PROTOCOL_VERSION.to_string());
    put("worker", inputs.worker.to_string());
    put("device", inputs.device.to_string());

    // The interpreter: as named, and the file it resolves to.
    let path_var = lookup(inputs.env, "PATH");
    let program = which(inputs.program, path_var).unwrap_or_else(|| inputs.program.to_path_buf());
    put("python", program.display().to_string());
    put("python.file", file_id(&program));
    let located = locate_torch(inputs)?;
    put("python.version", located.version);
    put("python.prefix", located.prefix);
    put("python.executable", located.executable);

    // torch: its package, its libraries, and the packages beside it
    // (nvidia-* wheels carry cuDNN and the CUDA runtime).
    let Some(init) = located.torch.map(PathBuf::from) else {
        return Err(KeyError::NoTorch {
            program: inputs.program.display().to_string(),
        });
    };
    let torch = init.parent().unwrap_or(Path::new("/")).to_path_buf();
    put("torch", torch.display().to_string());
    for (name, path) in torch_files(&torch) {
        put(&format!("torch.{name}"), file_id(&path));
    }
    if let Some(site) = torch.parent() {
        put("site-packages", file_id(site));
        for lib in dirs_of(&site.join("nvidia")) {
            let name = lib.file_name().unwrap_or_default().to_string_lossy();
            put(&format!("nvidia.{name}"), file_id(&lib.join("lib")));
        }
    }

    // The GPUs and which of them the worker sees.
    put(
        CUDA_VISIBLE_DEVICES,
        lookup(inputs.env, CUDA_VISIBLE_DEVICES)
            .map_or("(unset)".into(), |v| format!("={}", v.to_string_lossy())),
    );
    // The power limit changes speed, not the probe's answer (the machine's
    // fingerprint reads it anew every run).
    let gpus: Vec<String> = inputs
        .gpus
        .iter()
        .map(|g| {
            format!(
                "{}|{}|{}|{}|{}|{}|{}",
                g.name,
                g.driver,
                g.uuid.as_deref().unwrap_or(""),
                g.pci_bus_id.as_deref().unwrap_or(""),
                g.compute_capability.as_deref().unwrap_or(""),
                g.memory_mib.map(|m| m.to_string()).unwrap_or_default(),
                g.mig_mode.as_deref().unwrap_or(""),
            )
        })
        .collect();
    put("gpus", gpus.join("; "));

    // The host: its name, kernel and CPU (the vector ISA follows the CPU's
    // flags; a VM can move to another CPU under the same name), and the
    // cores this process may use (torch's default thread count).
    put("host", read_trimmed("/proc/sys/kernel/hostname"));
    put("kernel", read_trimmed("/proc/sys/kernel/osrelease"));
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let first = |field: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_once(':'))
            .map_or(String::new(), |(_, v)| v.trim().to_string())
    };
    put(
        "cpu",
        format!("{} {}", std::env::consts::ARCH, first("model name")),
    );
    put("cpu.flags", fnv_hex(first("flags").as_bytes()));
    put(
        "cores",
        std::thread::available_parallelism()
            .map_or(0, |n| n.get())
            .to_string(),
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    put(
        "cpus_allowed",
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string(),
    );

    // The compiler inductor calls for its ISA checks (`CXX`, else g++;
    // clang++ on macOS).
    let default_cxx = if cfg!(target_os = "macos") {
        "clang++"
    } else {
        "g++"
    };
    let cxx = lookup(inputs.env, "CXX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default_cxx));
    put(
        "cxx",
        which(&cxx, path_var).map_or(format!("{} (not found)", cxx.display()), |p| {
            format!("{} {}", p.display(), file_id(&p))
        }),
    );

    for (name, value) in inputs.env {
        let name = name.to_string_lossy();
        if affects_probe(&name) {
            put(&format!("env.{name}"), value.to_string_lossy().into_owned());
        }
    }
    Ok(ProbeKey(k))
}

/// One directory of the cache: the probe's answer for one key and
/// inductor's ISA answers beside it.
#[derive(Debug, Clone)]
pub struct Entry {
    dir: PathBuf,
    key: ProbeKey,
    /// Whether this command asked to probe anew.
    refresh: bool,
}

/// What a look-up found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Hit(Box<Environment>),
    Miss(Miss),
}

/// Why the cache did not answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Miss {
    /// Nothing cached yet.
    Absent,
    /// The user asked to probe anew.
    Refresh,
    /// A file that cannot be read or parsed (or another format, or key);
    /// probed anew and overwritten.
    Unreadable(String),
    /// The answer is there but inductor's ISA answers, which the probe
    /// makes, are not: probing again keeps them out of the first compile.
    NoIsaChecks,
}

/// `probe.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    format: u32,
    saved: chrono::DateTime<chrono::Utc>,
    key: ProbeKey,
    environment: Environment,
}

impl Entry {
    /// The directory of the entry.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where inductor's ISA answers are kept for this key.
    pub fn isa_checks(&self) -> PathBuf {
        self.dir.join(ISA_CHECKS_FILE)
    }

    /// The probe's file.
    pub fn file(&self) -> PathBuf {
        self.dir.join(PROBE_FILE)
    }

    /// The cached answer, if it is there, readable and of this key.
    /// `wants_isa`: the run compiles with inductor, whose ISA answers the
    /// probe makes on the CPU. On a refresh both files are removed first.
    pub fn lookup(&self, wants_isa: bool) -> Lookup {
        if self.refresh {
            for file in [self.file(), self.isa_checks()] {
                let _ = std::fs::remove_file(file);
            }
            return Lookup::Miss(Miss::Refresh);
        }
        let text = match std::fs::read_to_string(self.file()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Lookup::Miss(Miss::Absent)
            }
            Err(e) => return Lookup::Miss(Miss::Unreadable(e.to_string())),
        };
        let cached: Cached = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => return Lookup::Miss(Miss::Unreadable(e.to_string())),
        };
        if cached.format != PROBE_FORMAT {
            return Lookup::Miss(Miss::Unreadable(format!(
                "format {}, this regress reads {PROBE_FORMAT}",
                cached.format
            )));
        }
        if cached.key != self.key {
            return Lookup::Miss(Miss::Unreadable("saved under another key".into()));
        }
        let on_cpu = cached.environment.device.as_deref() == Some("cpu");
        if wants_isa && on_cpu && !self.isa_checks().exists() {
            return Lookup::Miss(Miss::NoIsaChecks);
        }
        Lookup::Hit(Box::new(cached.environment))
    }

    /// Keeps `env` as this key's answer (written to a temporary file and
    /// renamed, so a reader never sees half of it).
    pub fn store(&self, env: &Environment) -> std::io::Result<()> {
        let cached = Cached {
            format: PROBE_FORMAT,
            saved: chrono::Utc::now(),
            key: self.key.clone(),
            environment: env.clone(),
        };
        let text = serde_json::to_string_pretty(&cached).expect("the probe serialises");
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.persist(self.file()).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The value of `name` in a spawn environment.
fn lookup<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a OsStr> {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_os_str())
}

/// A program as a spawn would find it: a path as given, a bare name on
/// `PATH`; canonical (links resolved) either way.
fn which(program: &Path, path: Option<&OsStr>) -> Option<PathBuf> {
    let found = if program.components().count() > 1 {
        Some(program.to_path_buf())
    } else {
        std::env::split_paths(path?)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    }?;
    std::fs::canonicalize(found).ok()
}

/// A file's identity: size, modification and change times, inode. A
/// reinstall changes the change time (which no one can set back) and
/// usually the inode, also when the size and modification time stay.
fn file_id(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!(
                "size={} mtime={mtime} ctime={}.{:09} ino={}:{}",
                m.len(),
                m.ctime(),
                m.ctime_nsec(),
                m.dev(),
                m.ino()
            )
        }
        Err(_) => "absent".into(),
    }
}

/// The files of a torch installation whose change means another torch:
/// the package and its version, the directories (a file added or removed),
/// the extension module and the libraries.
fn torch_files(torch: &Path) -> Vec<(String, PathBuf)> {
    let mut files = vec![
        ("dir".to_string(), torch.to_path_buf()),
        ("__init__.py".to_string(), torch.join("__init__.py")),
        ("version.py".to_string(), torch.join("version.py")),
        ("lib".to_string(), torch.join("lib")),
    ];
    let named = |dir: &Path, keep: &dyn Fn(&str) -> bool| -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                keep(&name).then(|| (name, e.path()))
            })
            .collect();
        out.sort();
        out
    };
    files.extend(named(torch, &|n| {
        n.starts_with("_C.") || n.starts_with("_C-")
    }));
    files.extend(
        named(&torch.join("lib"), &|n| {
            n.starts_with("libtorch") || n.starts_with("libc10")
        })
        .into_iter()
        .map(|(n, p)| (format!("lib/{n}"), p)),
    );
    files
}

/// The subdirectories of `dir`, sorted; none when it does not exist.
fn dirs_of(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What the interpreter said about itself and torch.
#[derive(Debug, Deserialize)]
struct Located {
    torch: Option<String>,
    version: String,
    prefix: String,
    executable: String,
}

/// Runs `LOCATE_TORCH` as the worker would be run (its environment, its
/// directory), with a time limit.
fn locate_torch(inputs: &KeyInputs) -> Result<Located, KeyError> {
    let program = inputs.program.display().to_string();
    let mut child = Command::new(inputs.program)
        .args(["-c", LOCATE_TORCH])
        .current_dir(inputs.workdir)
        .env_clear()
        .envs(inputs.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| KeyError::Spawn {
            program: program.clone(),
            source,
        })?;
    let locate = |detail: String| KeyError::Locate {
        program: program.clone(),
        detail,
    };
    // Read both pipes while waiting, so a chatty start-up (warnings of a
    // site hook) never blocks the child on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = match child.wait_timeout(LOCATE_TIMEOUT) {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(locate(format!("no answer within {LOCATE_TIMEOUT:?}")));
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        return Err(locate(format!("{status}: {}", err.trim())));
    }
    serde_json::from_str(out.trim()).map_err(|e| locate(format!("{e}: {}", out.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A torch installation and an interpreter that points at it without
    /// having it: enough for the key, which never imports torch.
    struct FakeInstall {
        dir: tempfile::TempDir,
        python: PathBuf,
    }

    impl FakeInstall {
        fn new() -> FakeInstall {
            let dir = tempfile::tempdir().unwrap();
            let torch = dir.path().join("site-packages/torch");
            std::fs::create_dir_all(torch.join("lib")).unwrap();
            std::fs::write(torch.join("__init__.py"), "").unwrap();
            std::fs::write(torch.join("version.py"), "__version__ = '2.11.0'\n").unwrap();
            std::fs::write(torch.join("lib/libtorch_cpu.so"), "elf").unwrap();
            let python = dir.path().join("python");
            std::fs::write(
                &python,
                format!(
                    "#!/bin/sh\necho '{{\"torch\": \"{}\", \"version\": \"3.12.3\", \"prefix\": \"/venv\", \"executable\": \"/venv/bin/python\"}}'\n",
                    torch.join("__init__.py").display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
            FakeInstall { dir, python }
        }

        fn torch(&self, rel: &str) -> PathBuf {
            self.dir.path().join("site-packages/torch").join(rel)
        }

        fn key(&self, env: &[(&str, &str)], device: DeviceChoice, gpus: &[GpuInfo]) -> ProbeKey {
            let env: Vec<(OsString, OsString)> = env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect();
            probe_key(&KeyInputs {
                program: &self.python,
                env: &env,
                workdir: self.dir.path(),
                device,
                worker: "w1",
                gpus,
            })
            .unwrap()
        }
    }

    const PATH: (&str, &str) = ("PATH", "/usr/bin:/bin");

    #[test]
    fn the_key_changes_with_torch_the_device_the_gpus_and_the_thread_settings() {
        let fake = FakeInstall::new();
        let cpu = DeviceChoice::Cpu;
        let base = fake.key(&[PATH], cpu, &[]);
        assert_eq!(
            base,
            fake.key(&[PATH], cpu, &[]),
            "the same inputs, the same key"
        );
        assert_eq!(base.get("python.version"), Some("3.12.3"));
        assert!(base.get("torch.version.py").is_some_and(|v| v != "absent"));

        // A reinstall or upgrade rewrites torch/version.py.
        std::fs::write(fake.torch("version.py"), "__version__ = '2.12.0+cpu'\n").unwrap();
        let upgraded = fake.key(&[PATH], cpu, &[]);
        assert_ne!(upgraded, base);
        assert_ne!(upgraded.digest(), base.digest());
        // So does a rebuilt library.
        std::fs::write(fake.torch("lib/libtorch_cpu.so"), "elf, rebuilt").unwrap();
        assert_ne!(fake.key(&[PATH], cpu, &[]), upgraded);
        let now = fake.key(&[PATH], cpu, &[]);

        assert_ne!(fake.key(&[PATH], DeviceChoice::Auto, &[]), now);
        assert_ne!(fake.key(&[PATH, ("OMP_NUM_THREADS", "1")], cpu, &[]), now);
        assert_ne!(
            fake.key(&[PATH, ("TORCHINDUCTOR_FREEZING", "1")], cpu, &[]),
            now
        );
        assert_ne!(
            fake.key(&[PATH, ("CUDA_VISIBLE_DEVICES", "")], cpu, &[]),
            now
        );
        assert_ne!(fake.key(&[PATH, ("CXX", "clang++")], cpu, &[]), now);
        let h200 = GpuInfo {
            name: "NVIDIA H200".into(),
            driver: "570.86.15".into(),
            ..GpuInfo::default()
        };
        let with_gpu = fake.key(&[PATH], cpu, std::slice::from_ref(&h200));
        assert_ne!(with_gpu, now);
        let new_driver = GpuInfo {
            driver: "580.65.06".into(),
            ..h200
        };
        assert_ne!(fake.key(&[PATH], cpu, &[new_driver]), with_gpu);
        // A variable of the CI job, not of torch, leaves it alone.
        assert_eq!(fake.key(&[PATH, ("GITHUB_RUN_ID", "7")], cpu, &[]), now);
    }

    #[test]
    fn every_setting_the_probe_reports_from_the_environment_is_in_the_key() {
        // The worker's SPEED_ENV, read from its source, so that a variable
        // added there cannot be forgotten here.
        let source = include_str!("../../python/regress_case.py");
        let start = source
            .find("SPEED_ENV = (")
            .expect("SPEED_ENV in the worker");
        let end = start + source[start..].find(')').unwrap();
        let names: Vec<&str> = source[start..end].split('"').skip(1).step_by(2).collect();
        assert!(names.contains(&"OMP_NUM_THREADS"), "{names:?}");
        for name in names
            .into_iter()
            .chain(["TORCHINDUCTOR_CACHE_DIR", "MKL_NUM_THREADS"])
        {
            assert!(affects_probe(name), "{name}");
        }
        for name in ["GITHUB_SHA", "RUNNER_NAME", "HOME", "PWD", "TERM"] {
            assert!(!affects_probe(name), "{name}");
        }
    }

    #[test]
    fn no_torch_is_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let python = dir.path().join("python");
        std::fs::write(
            &python,
            "#!/bin/sh\necho '{\"torch\": null, \"version\": \"3\", \"prefix\": \"/\", \"executable\": \"/p\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        let inputs = |program| KeyInputs {
            program,
            env: &[],
            workdir: dir.path(),
            device: DeviceChoice::Cpu,
            worker: "w",
            gpus: &[],
        };
        let err = probe_key(&inputs(&python)).unwrap_err();
        assert!(matches!(err, KeyError::NoTorch { .. }), "{err}");
        let missing = dir.path().join("no-such-python");
        let err = probe_key(&inputs(&missing)).unwrap_err();
        assert!(matches!(err, KeyError::Spawn { .. }), "{err}");
    }

    fn sample_env() -> Environment {
        Environment {
            torch: Some("2.11.0+cpu".into()),
            python: Some("3.12.3".into()),
            device: Some("cpu".into()),
            threads: Some(2),
            ..Environment::default()
        }
    }

    #[test]
    fn an_entry_reads_back_what_it_kept_and_probes_anew_on_a_bad_file() {
        let fake = FakeInstall::new();
        let key = fake.key(&[PATH], DeviceChoice::Cpu, &[]);
        let root = tempfile::tempdir().unwrap();
        let cache = ProbeCache::at(root.path().to_path_buf());
        let entry = cache.entry(&key).unwrap();
        assert!(entry.dir().starts_with(root.path()));
        assert_eq!(entry.lookup(false), Lookup::Miss(Miss::Absent));
        entry.store(&sample_env()).unwrap();
        assert_eq!(entry.lookup(false), Lookup::Hit(Box::new(sample_env())));
        // The saved format carries its version and the whole key.
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry.file()).unwrap()).unwrap();
        assert_eq!(saved["format"], PROBE_FORMAT);
        assert_eq!(saved["key"]["python.version"], "3.12.3");
        assert_eq!(saved["environment"]["torch"], "2.11.0+cpu");

        // A compiling run also wants the ISA answers the probe makes.
        assert_eq!(entry.lookup(true), Lookup::Miss(Miss::NoIsaChecks));
        std::fs::write(entry.isa_checks(), "{}").unwrap();
        assert_eq!(entry.lookup(true), Lookup::Hit(Box::new(sample_env())));

        for bad in [
            "{\"format\": 1, \"saved\": ".to_string(),
            String::from_utf8_lossy(&[0xff, 0xfe, 0]).into_owned(),
            saved.to_string().replace("\"format\":1", "\"format\":99"),
            saved.to_string().replace("3.12.3", "3.13.0"),
        ] {
            std::fs::write(entry.file(), &bad).unwrap();
            assert!(
                matches!(entry.lookup(false), Lookup::Miss(Miss::Unreadable(_))),
                "{bad}"
            );
        }
        // Overwritten by the next probe.
        entry.store(&sample_env()).unwrap();
        assert_eq!(entry.lookup(false), Lookup::Hit(Box::new(sample_env())));
    }

    #[test]
    fn a_refresh_probes_once_per_key_and_forgets_the_isa_answers() {
        let fake = FakeInstall::new();
        let key = fake.key(&[PATH], DeviceChoice::Cpu, &[]);
        let root = tempfile::tempdir().unwrap();
        let first = ProbeCache::at(root.path().to_path_buf())
            .entry(&key)
            .unwrap();
        first.store(&sample_env()).unwrap();
        std::fs::write(first.isa_checks(), "{}").unwrap();

        let mut cache = ProbeCache::at(root.path().to_path_buf());
        cache.refresh = true;
        let entry = cache.entry(&key).unwrap();
        assert_eq!(entry.lookup(true), Lookup::Miss(Miss::Refresh));
        assert!(!entry.file().exists() && !entry.isa_checks().exists());
        entry.store(&sample_env()).unwrap();
        // Another backend of the same command (`ab`'s other side) reuses it.
        let again = cache.clone().entry(&key).unwrap();
        assert_eq!(again.lookup(false), Lookup::Hit(Box::new(sample_env())));
    }

    #[test]
    fn an_unwritable_cache_is_one_warning_and_no_cache() {
        let fake = FakeInstall::new();
        let key = fake.key(&[PATH], DeviceChoice::Cpu, &[]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        // Below a file: no directory can be made there, even by root.
        let cache = ProbeCache::at(file.join("regress"));
        let warning = cache.entry(&key).unwrap_err().expect("a warning");
        assert!(
            warning.contains("cannot write the probe cache")
                && warning.contains(&file.display().to_string())
                && warning.contains(CACHE_DIR_ENV),
            "{warning}"
        );
        assert_eq!(cache.clone().entry(&key).unwrap_err(), None, "said once");
    }
}
