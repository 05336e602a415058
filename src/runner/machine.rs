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

/// How busy the machine is at one moment: the 1-minute load average and
/// the processes ready to run besides the one asking (Linux's
/// `/proc/loadavg`; elsewhere the load average alone).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub load1: f64,
    /// Runnable processes other than the reader, when the system says.
    pub runnable: Option<u32>,
}

impl Load {
    /// The machine's load now, if it can be read.
    pub fn now() -> Option<Load> {
        if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
            return Load::parse(&text);
        }
        let mut avg = [0f64; 3];
        // SAFETY: getloadavg(3) writes at most `nelem` doubles into `avg`.
        let n = unsafe { libc::getloadavg(avg.as_mut_ptr(), 3) };
        (n >= 1).then_some(Load {
            load1: avg[0],
            runnable: None,
        })
    }

    /// `/proc/loadavg`: `0.52 0.58 0.59 3/467 12345`, where `3/467` counts
    /// the runnable processes (the reader among them) and all of them.
    fn parse(text: &str) -> Option<Load> {
        let mut fields = text.split_whitespace();
        let load1 = fields.next()?.parse().ok()?;
        let runnable = fields
            .nth(2)
            .and_then(|f| f.split('/').next()?.parse::<u32>().ok())
            .map(|r| r.saturating_sub(1));
        Some(Load { load1, runnable })
    }
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
    fn the_load_counts_runnable_processes_besides_the_reader() {
        let load = Load::parse("2.50 1.00 0.50 3/467 12345\n").unwrap();
        assert_eq!(
            load,
            Load {
                load1: 2.5,
                runnable: Some(2)
            }
        );
        assert!(Load::parse("garbage").is_none());
        let now = Load::now().expect("a load on a Unix machine");
        assert!(now.load1 >= 0.0);
    }
}
