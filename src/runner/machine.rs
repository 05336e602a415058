//! The machine a record was measured on, and its fingerprint: results are
//! only compared between runs whose fingerprints match.

use std::fmt;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::Environment;
use crate::spec::fnv_hex;

/// Variable that adds a label to the fingerprint, to keep apart runners whose
/// hardware and software look alike but are not (say, two cloud SKUs).
pub const RUNNER_LABEL_ENV: &str = "REGRESS_RUNNER_LABEL";

/// 16 hex digits identifying hardware and software that determine speed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Fingerprint(s))
        } else {
            Err(format!(
                "`{s}` is not a machine fingerprint (16 lowercase hex digits)"
            ))
        }
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
        let key = format!(
            "cpu={cpu}|gpu={}x{gpu_count}|torch={}|cuda={}|label={}",
            gpu.as_deref().unwrap_or("none"),
            env.torch.as_deref().unwrap_or("none"),
            env.cuda.as_deref().unwrap_or("none"),
            runner_label.as_deref().unwrap_or(""),
        );
        Machine {
            fingerprint: Fingerprint(fnv_hex(key.as_bytes())),
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

    #[test]
    fn fingerprint_rejects_bad_text() {
        assert!(Fingerprint::try_from("xyz".to_string()).is_err());
        assert!(Fingerprint::try_from("0123456789abcdef".to_string()).is_ok());
    }
}
