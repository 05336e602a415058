//! A GPU host seen from a CPU: a fake `nvidia-smi` first on PATH lists
//! GPUs, so that what regress does with them (the loud error when torch
//! cannot use them, the fingerprint fields, CUDA_VISIBLE_DEVICES) is tested
//! without one.

use std::ffi::OsString;
use std::path::Path;

use crate::common::{output, python_or_skip, Repo};

/// A fake nvidia-smi answering `--query-gpu=<fields>` with one row per GPU
/// (name, uuid, power limit), in the fields' order, under `driver`.
fn fake_nvidia_smi(repo: &Repo, driver: &str, gpus: &[(&str, &str, &str)]) -> OsString {
    let rows: String = gpus
        .iter()
        .map(|(name, uuid, power)| format!("row '{name}' {uuid} {power}\n"))
        .collect();
    let script = format!(
        r#"#!/bin/sh
q=
for a in "$@"; do case "$a" in --query-gpu=*) q="${{a#--query-gpu=}}";; esac; done
[ -n "$q" ] || exit 0
row() {{
  out=
  for f in $(echo "$q" | tr , ' '); do
    case $f in
      name) v="$1";; driver_version) v={driver};; uuid) v="$2";; power.limit) v="$3";;
      mig.mode.current) v=Disabled;; compute_cap) v=9.0;; memory.total) v=143771;;
      *) v='[N/A]';;
    esac
    out="$out${{out:+, }}$v"
  done
  echo "$out"
}}
{rows}"#
    );
    let smi = repo.write_executable("fakebin/nvidia-smi", &script);
    let mut path = OsString::from(smi.parent().unwrap());
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    path
}

/// The one record the run stored.
fn only_record(repo: &Repo) -> regress::record::Record {
    let files = repo.record_files();
    assert_eq!(files.len(), 1, "{files:?}");
    regress::store::read_record(Path::new(&files[0])).unwrap()
}

const TORCH_PIPELINE: &str = "version: 1
name: gpu-or-not
model:
  builtin: mlp
  args: {dim: 16, hidden: 32}
runner:
  backend: python
  device: DEVICE
  processes: 1
  warmup: {min_iters: 2, min_time: 0s}
  measure: {min_iters: 5, min_time: 0s, max_time: 1s}
matrix:
  batch: [2]
";

#[test]
fn a_gpu_torch_cannot_use_stops_auto_and_cuda_naming_driver_and_torch_cuda() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let torch_cuda = std::process::Command::new(&python)
        .args(["-c", "import torch; print(torch.version.cuda)"])
        .output()
        .unwrap();
    let torch_cuda = String::from_utf8_lossy(&torch_cuda.stdout)
        .trim()
        .to_string();
    let repo = Repo::new();
    let path = fake_nvidia_smi(
        &repo,
        "535.104.05",
        &[("NVIDIA H200", "GPU-aaaa", "700.00")],
    );
    for device in ["auto", "cuda", "cpu"] {
        repo.write("p.yaml", &TORCH_PIPELINE.replace("DEVICE", device));
        repo.commit(device);
        let (code, stdout, stderr) = output(
            repo.regress()
                .args(["run", "p.yaml"])
                .env("PATH", &path)
                .env("REGRESS_PYTHON", &python)
                .env_remove("CUDA_VISIBLE_DEVICES"),
        );
        if device == "cpu" {
            // Asked for on purpose: measured, and recorded as a CPU result.
            assert_eq!(code, 0, "{stdout}\n{stderr}");
            let record = only_record(&repo);
            assert_eq!(record.machine.software.device.as_deref(), Some("cpu"));
            assert_eq!(record.machine.gpu, None, "{:?}", record.machine);
            assert_eq!(record.machine.driver, None);
            assert!(!stdout.contains("H200"), "{stdout}");
            continue;
        }
        assert_eq!(code, 2, "device {device}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("NVIDIA H200") && stderr.contains("driver 535.104.05"),
            "{stderr}"
        );
        if torch_cuda == "None" {
            assert!(stderr.contains("built without CUDA"), "{stderr}");
        } else {
            assert!(stderr.contains(&format!("CUDA {torch_cuda}")), "{stderr}");
        }
        if torch_cuda.starts_with("13.") {
            assert!(stderr.contains("needs driver 580 or newer"), "{stderr}");
        }
        assert!(
            stderr.contains("TORCH_INDEX") && stderr.contains("runner.device: cpu"),
            "{stderr}"
        );
        assert!(
            repo.record_files().is_empty(),
            "nothing measured, nothing stored"
        );
    }
}

#[test]
fn hidden_gpus_leave_auto_on_the_cpu_without_an_error() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    let path = fake_nvidia_smi(
        &repo,
        "535.104.05",
        &[("NVIDIA H200", "GPU-aaaa", "700.00")],
    );
    repo.write("p.yaml", &TORCH_PIPELINE.replace("DEVICE", "auto"));
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("PATH", &path)
            .env("REGRESS_PYTHON", &python)
            .env("CUDA_VISIBLE_DEVICES", ""),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let record = only_record(&repo);
    assert_eq!(record.machine.gpu, None);
    assert_eq!(record.machine.cuda_visible_devices.as_deref(), Some(""));
}

const COMMAND_PIPELINE: &str = "version: 1
name: smi
model: {command: \"true\"}
runner: {backend: command, processes: 1, warmup: {min_iters: 1, min_time: 0s}, measure: {min_iters: 3, min_time: 0s, max_time: 1s}}
";

#[test]
fn the_fingerprint_holds_driver_power_limit_and_mig_of_the_visible_gpu() {
    let run = |driver: &str, second_power: &str, visible: Option<&str>| {
        let repo = Repo::new();
        let path = fake_nvidia_smi(
            &repo,
            driver,
            &[
                ("NVIDIA H200", "GPU-aaaa", "700.00"),
                ("NVIDIA H200", "GPU-bbbb", second_power),
            ],
        );
        repo.write("p.yaml", COMMAND_PIPELINE);
        repo.commit("c");
        let mut cmd = repo.regress();
        cmd.args(["run", "p.yaml"]).env("PATH", &path);
        match visible {
            Some(v) => cmd.env("CUDA_VISIBLE_DEVICES", v),
            None => cmd.env_remove("CUDA_VISIBLE_DEVICES"),
        };
        let (code, stdout, stderr) = output(&mut cmd);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        only_record(&repo).machine
    };
    let second = run("570.86.15", "500.00", Some("1"));
    let info = second
        .gpu_info
        .clone()
        .expect("the GPU's nvidia-smi fields");
    assert_eq!(info.uuid.as_deref(), Some("GPU-bbbb"));
    assert_eq!(info.power_limit_w, Some(500.0));
    assert_eq!(info.mig_mode.as_deref(), Some("Disabled"));
    assert_eq!(second.driver.as_deref(), Some("570.86.15"));
    assert_eq!(second.cuda_visible_devices.as_deref(), Some("1"));
    assert_eq!(second.gpu_count, 1, "one GPU visible of two");

    // The same host with the second GPU capped differently, or a new
    // driver branch, is another machine; a patch release is not.
    assert_ne!(
        run("570.86.15", "400.00", Some("1")).fingerprint,
        second.fingerprint
    );
    assert_ne!(
        run("580.65.06", "500.00", Some("1")).fingerprint,
        second.fingerprint
    );
    assert_eq!(
        run("570.124.06", "500.00", Some("1")).fingerprint,
        second.fingerprint
    );
    let first = run("570.86.15", "500.00", None);
    assert_eq!(first.gpu_info.unwrap().power_limit_w, Some(700.0));
    assert_eq!(first.cuda_visible_devices, None);
}

/// The python worker's GPU sampler without NVML: `nvidia-smi -lms` run in
/// the background while a case is timed, its lines read into a summary
/// that names the throttle reasons. Plain python3 (no torch needed).
#[test]
fn the_worker_samples_the_gpu_in_the_background_and_names_throttling() {
    let repo = Repo::new();
    let smi = repo.write_executable(
        "fakebin/nvidia-smi",
        r#"#!/bin/sh
case "$*" in
  *-lms*) ;;
  *) echo 0x0000000000000000; exit 0;;
esac
echo "1980, 2619, 45, 350.50, 0x0000000000000000"
echo "1980, 2619, 60, 400.00, 0x0000000000000001"
while :; do
  echo "1410, 2619, 83, 690.00, 0x0000000000000024"
  sleep 0.05
done
"#,
    );
    let mut path = OsString::from(smi.parent().unwrap());
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let code = r#"
import json, time, regress_gpu as w
s = w.GpuSampler("00000000:18:00.0").start()
time.sleep(0.5)
print(json.dumps(s.stop()))
"#;
    let python_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
    let out = std::process::Command::new("python3")
        .args(["-c", code])
        .env("PATH", &path)
        .env("PYTHONPATH", python_dir)
        .output();
    let Ok(out) = out else {
        eprintln!("skipped: no python3");
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["source"], "nvidia-smi", "{summary}");
    assert!(summary["readings"].as_u64().unwrap() >= 3, "{summary}");
    assert_eq!(summary["sm_clock_mhz_min"], 1410.0);
    assert_eq!(summary["temperature_c_max"], 83.0);
    assert_eq!(summary["power_w_max"], 690.0);
    // 0x24: software power cap and software thermal slowdown; the idle
    // bit (0x1) of the second reading is not throttling.
    assert_eq!(
        summary["throttle_reasons"],
        serde_json::json!(["sw_power_cap", "sw_thermal_slowdown"])
    );
    let share = summary["throttled_share"].as_f64().unwrap();
    assert!(share > 0.0 && share < 1.0, "{summary}");
}
