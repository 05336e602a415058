//! The machine a record was measured on, and its fingerprint: results are
//! only compared between runs whose fingerprints match.

use std::process::Command;

use serde::{Deserialize, Serialize};

use super::Environment;
pub use crate::id::Fingerprint;

/// Variable that adds a label to the fingerprint, to keep apart runners whose
/// hardware and software look alike but are not (say, two cloud SKUs).
pub const RUNNER_LABEL_ENV: &str = "REGRESS_RUNNER_LABEL";

/// Hardware and software of the machine, as recorded with every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub fingerprint: Fingerprint,
    pub cpu: String,
    pub cores: u32,
    pub os: String,
    pub gpu: Option<String>,
    pub gpu_count: u32,
    pub driver: Option<String>,
    /// What the backend reported (torch, CUDA, device, threads).
    pub software: Environment,
    pub runner_label: Option<String>,
    pub hostname: Option<String>,
}

impl Machine {
    /// Reads the host and combines it with what the backend reported.
    pub fn detect(env: &Environment) -> Machine {
        let smi = nvidia_smi();
        let gpu = env
            .gpu
            .clone()
            .or_else(|| smi.as_ref().map(|s| s.0.clone()));
        let gpu_count = if env.gpu_count > 0 {
            env.gpu_count
        } else {
            smi.as_ref().map_or(0, |s| s.2)
        };
        let cpu = cpu_model();
        let runner_label = std::env::var(RUNNER_LABEL_ENV)
            .ok()
            .filter(|s| !s.is_empty());
        let fingerprint = fingerprint(&FingerprintKey {
            cpu: &cpu,
            gpu: gpu.as_deref(),
            gpu_count,
            torch: env.torch.as_deref(),
            cuda: env.cuda.as_deref(),
            runner_label: runner_label.as_deref(),
        });
        Machine {
            fingerprint,
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            os: format!(
                "{} {}",
                std::env::consts::OS,
                read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default()
            ),
            gpu,
            gpu_count,
            driver: smi.map(|s| s.1),
            software: env.clone(),
            runner_label,
            hostname: read_trimmed("/proc/sys/kernel/hostname"),
        }
    }
}

/// What a machine's fingerprint is made of: what decides its speed.
#[derive(Debug, Clone, Copy)]
pub struct FingerprintKey<'a> {
    pub cpu: &'a str,
    pub gpu: Option<&'a str>,
    pub gpu_count: u32,
    pub torch: Option<&'a str>,
    pub cuda: Option<&'a str>,
    pub runner_label: Option<&'a str>,
}

/// The fingerprint of a machine. The text hashed is part of the stored
/// format: changing it makes every stored result "not comparable" (a test
/// pins it).
pub fn fingerprint(k: &FingerprintKey) -> Fingerprint {
    Fingerprint::of(&format!(
        "cpu={}|gpu={}x{}|torch={}|cuda={}|label={}",
        k.cpu,
        k.gpu.unwrap_or("none"),
        k.gpu_count,
        k.torch.unwrap_or("none"),
        k.cuda.unwrap_or("none"),
        k.runner_label.unwrap_or(""),
    ))
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// (name of the first GPU, driver version, GPU count) from `nvidia-smi`.
fn nvidia_smi() -> Option<(String, String, u32)> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let (name, driver) = rows.first()?.split_once(',')?;
    Some((
        name.trim().to_string(),
        driver.trim().to_string(),
        rows.len() as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_torch_version() {
        let a = Machine::detect(&Environment {
            torch: Some("2.11.0".into()),
            ..Default::default()
        });
        let b = Machine::detect(&Environment {
            torch: Some("2.10.0".into()),
            ..Default::default()
        });
        let a2 = Machine::detect(&Environment {
            torch: Some("2.11.0".into()),
            ..Default::default()
        });
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint, a2.fingerprint);
    }
}
