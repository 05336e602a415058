//! The start-up probe cached between runs: a fake interpreter that counts
//! the probes it answers shows when regress asked it and when it reused
//! the answer kept from an earlier run. No torch needed.

use std::path::{Path, PathBuf};

use regress::runner::protocol::PROTOCOL_VERSION;

use crate::common::{output, Repo};

/// A python worker that answers the probe (counting it in `probes`) and
/// every run with a few samples, and a torch installation it points at
/// without having one.
struct FakePython {
    python: PathBuf,
    probes: PathBuf,
    torch: PathBuf,
}

impl FakePython {
    fn new(repo: &Repo) -> FakePython {
        let base = repo.path().join(".git/fake-python");
        let torch = base.join("site-packages/torch");
        std::fs::create_dir_all(torch.join("lib")).unwrap();
        std::fs::write(torch.join("__init__.py"), "").unwrap();
        std::fs::write(torch.join("version.py"), "__version__ = '9.9.0'\n").unwrap();
        let probes = base.join("probes");
        let script = format!(
            r#"#!/bin/sh
if [ "$1" = "-c" ]; then
  echo '{{"torch": "{init}", "version": "3.99.0", "prefix": "{base}", "executable": "{base}/python"}}'
  exit 0
fi
read -r request
case "$request" in
  *'"cmd":"probe"'*)
    echo probe >> '{probes}'
    echo '{{"type": "probe", "protocol": {p}, "python": "3.99.0", "torch": "9.9.0", "device": "cpu", "threads": 1, "gpu_count": 0}}';;
  *)
    echo '{{"type": "result", "protocol": {p}, "samples": [0.001, 0.0011, 0.001, 0.0012, 0.001]}}';;
esac
"#,
            init = torch.join("__init__.py").display(),
            base = base.display(),
            probes = probes.display(),
            p = PROTOCOL_VERSION,
        );
        let python = repo.write_executable(".git/fake-python/python", &script);
        FakePython {
            python,
            probes,
            torch,
        }
    }

    /// How many probes it answered.
    fn probes(&self) -> usize {
        std::fs::read_to_string(&self.probes)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

const PIPELINE: &str = "version: 1
name: cached
model: {builtin: mlp, args: {dim: 8, hidden: 8}}
runner:
  backend: python
  device: cpu
  processes: 1
  warmup: {min_iters: 1, min_time: 0s}
  measure: {min_iters: 5, min_time: 0s, max_time: 1s}
matrix: {batch: [2]}
";

/// A repository with the pipeline committed and its fake interpreter.
fn setup() -> (Repo, FakePython) {
    let repo = Repo::new();
    let fake = FakePython::new(&repo);
    repo.write("p.yaml", PIPELINE);
    repo.commit("pipeline");
    (repo, fake)
}

/// `regress run p.yaml` with the fake interpreter: (exit code, stderr).
fn run(repo: &Repo, fake: &FakePython, extra: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
    let mut cmd = repo.regress();
    cmd.args(["run", "p.yaml"])
        .args(extra)
        .env("REGRESS_PYTHON", &fake.python)
        .env_remove("REGRESS_REFRESH_PROBE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (code, stdout, stderr) = output(&mut cmd);
    assert!(code == 0 || code == 2, "{stdout}\n{stderr}");
    (code, stderr)
}

/// The probe files of the cache in `root`.
fn cached_probes(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join("probe")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("probe.json"))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn a_second_run_reuses_the_probe_and_a_refresh_asks_again() {
    let (repo, fake) = setup();
    let (code, stderr) = run(&repo, &fake, &[], &[]);
    assert_eq!((code, fake.probes()), (0, 1), "{stderr}");
    assert!(!stderr.contains("reused"), "{stderr}");

    let (code, stderr) = run(&repo, &fake, &[], &[]);
    assert_eq!((code, fake.probes()), (0, 1), "no worker spawned: {stderr}");
    assert!(
        stderr.contains("probe: reused the answer cached in")
            && stderr.contains("torch 9.9.0")
            && stderr.contains("--refresh-probe"),
        "{stderr}"
    );
    // The record holds the cached answer as if probed.
    for file in repo.record_files() {
        let record = regress::store::read_record(&file).unwrap();
        assert_eq!(record.machine.software.torch.as_deref(), Some("9.9.0"));
    }

    let (code, stderr) = run(&repo, &fake, &["--refresh-probe"], &[]);
    assert_eq!((code, fake.probes()), (0, 2), "{stderr}");
    assert!(stderr.contains("probe: asked anew"), "{stderr}");
    let (_, stderr) = run(&repo, &fake, &[], &[]);
    assert_eq!(fake.probes(), 2, "{stderr}");

    let mut cmd = repo.regress();
    cmd.args(["run", "p.yaml"])
        .env("REGRESS_PYTHON", &fake.python)
        .env("REGRESS_REFRESH_PROBE", "1");
    let (code, _, stderr) = output(&mut cmd);
    assert_eq!((code, fake.probes()), (0, 3), "{stderr}");
}

#[test]
fn ab_refreshes_once_for_both_sides() {
    let (repo, fake) = setup();
    repo.write("README", "head\n");
    repo.commit("head");
    let ab = |extra: &[&str]| {
        let mut cmd = repo.regress();
        cmd.args(["ab", "HEAD~1", "HEAD", "p.yaml"])
            .args(extra)
            .env("REGRESS_PYTHON", &fake.python)
            .env_remove("REGRESS_REFRESH_PROBE");
        let (code, stdout, stderr) = output(&mut cmd);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
    };
    ab(&[]);
    assert_eq!(
        fake.probes(),
        1,
        "the head side reuses the base side's probe"
    );
    ab(&[]);
    assert_eq!(fake.probes(), 1);
    ab(&["--refresh-probe"]);
    assert_eq!(fake.probes(), 2);
}

#[test]
fn a_changed_torch_is_probed_again() {
    let (repo, fake) = setup();
    run(&repo, &fake, &[], &[]);
    std::fs::write(fake.torch.join("version.py"), "__version__ = '9.10.0'\n").unwrap();
    run(&repo, &fake, &[], &[]);
    assert_eq!(fake.probes(), 2);
    run(&repo, &fake, &[], &[]);
    assert_eq!(fake.probes(), 2);
}

#[test]
fn a_corrupt_cached_probe_is_probed_again_and_replaced() {
    let (repo, fake) = setup();
    let cache = repo.path().join(".git/probe-cache");
    let env = [("REGRESS_CACHE_DIR", cache.as_path())];
    run(&repo, &fake, &[], &env);
    let files = cached_probes(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::write(&files[0], "{\"format\": 1, \"environ").unwrap();

    let (code, stderr) = run(&repo, &fake, &[], &env);
    assert_eq!((code, fake.probes()), (0, 2), "{stderr}");
    assert!(
        stderr.contains("ignored the cached probe")
            && stderr.contains(&files[0].display().to_string()),
        "{stderr}"
    );
    let (_, stderr) = run(&repo, &fake, &[], &env);
    assert_eq!(fake.probes(), 2, "replaced by a good one: {stderr}");
}

#[test]
fn an_unwritable_cache_warns_and_runs_uncached() {
    let (repo, fake) = setup();
    let file = repo.path().join(".git/not-a-dir");
    std::fs::write(&file, "").unwrap();
    let cache = file.join("cache");
    for n in 1..=2 {
        let (code, stderr) = run(&repo, &fake, &[], &[("REGRESS_CACHE_DIR", cache.as_path())]);
        assert_eq!((code, fake.probes()), (0, n), "{stderr}");
        assert_eq!(
            stderr.matches("cannot write the probe cache").count(),
            1,
            "{stderr}"
        );
    }
}

#[test]
fn a_cached_probe_still_meets_the_gpu_check() {
    // nvidia-smi lists a GPU, the (cached) probe says torch is on the CPU:
    // `device: auto` is refused on every run, also when nothing is spawned.
    let (repo, fake) = setup();
    let smi = repo.write_executable(
        ".git/fakebin/nvidia-smi",
        "#!/bin/sh\necho 'NVIDIA H200, 570.86.15, GPU-aaaa'\n",
    );
    let mut path = std::ffi::OsString::from(smi.parent().unwrap());
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    repo.write("p.yaml", &PIPELINE.replace("device: cpu", "device: auto"));
    repo.commit("auto");
    for _ in 0..2 {
        let mut cmd = repo.regress();
        cmd.args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &fake.python)
            .env("PATH", &path)
            .env_remove("CUDA_VISIBLE_DEVICES")
            .env_remove("REGRESS_REFRESH_PROBE");
        let (code, _, stderr) = output(&mut cmd);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("NVIDIA H200"), "{stderr}");
    }
    assert_eq!(
        fake.probes(),
        1,
        "the second run's answer came from the cache"
    );
}
