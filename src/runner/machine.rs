//! The machine a record was measured on, and its fingerprint: results are
//! only compared between runs whose fingerprints match.

use serde::{Deserialize, Serialize};

use super::gpus::{self, GpuInfo, CUDA_VISIBLE_DEVICES};
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
    /// The GPU measured on: only when the backend used one (or, for a
    /// command, which may use any, the first one it can see).
    pub gpu: Option<String>,
    pub gpu_count: u32,
    pub driver: Option<String>,
    /// What the backend reported (torch, CUDA, device, threads).
    pub software: Environment,
    pub runner_label: Option<String>,
    pub hostname: Option<String>,
    /// What nvidia-smi says of the GPU measured on (power limit, MIG mode,
    /// memory, UUID). Added to format 2 without a version of its own:
    /// records without it read as None, and older readers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_info: Option<GpuInfo>,
    /// CUDA_VISIBLE_DEVICES as the workers saw it (unset: None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_visible_devices: Option<String>,
}

impl Machine {
    /// Reads the host (nvidia-smi, with its time limit) and combines it
    /// with what the backend reported.
    pub fn detect(env: &Environment) -> Machine {
        let visible = std::env::var(CUDA_VISIBLE_DEVICES).ok();
        Machine::from_host(env, &gpus::nvidia_smi(), visible.as_deref())
    }

    /// `detect`, given nvidia-smi's rows and CUDA_VISIBLE_DEVICES.
    pub fn from_host(env: &Environment, smi: &[GpuInfo], visible: Option<&str>) -> Machine {
        let seen = gpus::visible(smi, visible);
        // The GPU goes on the record only when it was measured on: a run
        // whose backend used the CPU is a CPU result, whatever the host
        // has. A backend that cannot say (a command) may use any GPU.
        let (used, gpu, gpu_count, key_count) = match env.device.as_deref() {
            Some("cuda") => {
                let used = gpus::select(&seen, env.gpu_uuid.as_deref()).cloned();
                let name = env
                    .gpu
                    .clone()
                    .or_else(|| used.as_ref().map(|g| g.name.clone()));
                // Workers measure on one GPU however many are visible, so
                // the count is not part of what they measured.
                let count = env.gpu_count.max(u32::from(name.is_some()));
                let key_count = u32::from(name.is_some());
                (used, name, count, key_count)
            }
            None => {
                let used = seen.first().cloned();
                let n = seen.len() as u32;
                (used.clone(), used.map(|g| g.name), n, n)
            }
            Some(_) => (None, None, 0, 0),
        };
        let cpu = cpu_model();
        let runner_label = std::env::var(RUNNER_LABEL_ENV)
            .ok()
            .filter(|s| !s.is_empty());
        let fingerprint = fingerprint(&FingerprintKey {
            cpu: &cpu,
            gpu: gpu.as_deref(),
            gpu_count: key_count,
            torch: env.torch.as_deref(),
            cuda: env.cuda.as_deref(),
            runner_label: runner_label.as_deref(),
            driver_major: used.as_ref().and_then(GpuInfo::driver_major),
            power_limit_w: used
                .as_ref()
                .and_then(|g| g.power_limit_w)
                .map(|w| w.round() as u32),
            mig_mode: used.as_ref().and_then(|g| g.mig_mode.as_deref()),
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
            driver: used
                .as_ref()
                .map(|g| g.driver.clone())
                .filter(|d| !d.is_empty()),
            software: env.clone(),
            runner_label,
            hostname: read_trimmed("/proc/sys/kernel/hostname"),
            gpu_info: used,
            cuda_visible_devices: visible.map(str::to_string),
        }
    }
}

/// What a machine's fingerprint is made of: what decides its speed.
#[derive(Debug, Clone, Copy, Default)]
pub struct FingerprintKey<'a> {
    pub cpu: &'a str,
    pub gpu: Option<&'a str>,
    pub gpu_count: u32,
    pub torch: Option<&'a str>,
    pub cuda: Option<&'a str>,
    pub runner_label: Option<&'a str>,
    /// The NVIDIA driver's major version: a new branch brings new kernels
    /// and schedulers; patch releases within one do not move timings.
    pub driver_major: Option<u32>,
    /// The enforced power limit in whole watts: an H100 at 700 W and one
    /// capped at 500 W share a name, not a speed.
    pub power_limit_w: Option<u32>,
    /// MIG mode: a MIG slice is a fraction of the GPU.
    pub mig_mode: Option<&'a str>,
}

/// The fingerprint of a machine. The text hashed is part of the stored
/// format: changing it makes every stored result "not comparable" (a test
/// pins it). The GPU fields came later and are appended only when known,
/// so a machine without them keeps the fingerprint it always had.
pub fn fingerprint(k: &FingerprintKey) -> Fingerprint {
    let mut text = format!(
        "cpu={}|gpu={}x{}|torch={}|cuda={}|label={}",
        k.cpu,
        k.gpu.unwrap_or("none"),
        k.gpu_count,
        k.torch.unwrap_or("none"),
        k.cuda.unwrap_or("none"),
        k.runner_label.unwrap_or(""),
    );
    if let Some(d) = k.driver_major {
        text.push_str(&format!("|driver={d}"));
    }
    if let Some(w) = k.power_limit_w {
        text.push_str(&format!("|power={w}W"));
    }
    if let Some(m) = k.mig_mode {
        text.push_str(&format!("|mig={m}"));
    }
    Fingerprint::of(&text)
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

    fn h200(uuid: &str, power: f64, mig: &str) -> GpuInfo {
        GpuInfo {
            name: "NVIDIA H200".into(),
            driver: "570.86.15".into(),
            uuid: Some(format!("GPU-{uuid}")),
            power_limit_w: Some(power),
            mig_mode: Some(mig.into()),
            ..GpuInfo::default()
        }
    }

    fn used(device: Option<&str>, uuid: Option<&str>) -> Environment {
        Environment {
            torch: Some("2.11.0+cu128".into()),
            device: device.map(str::to_string),
            gpu: (device == Some("cuda")).then(|| "NVIDIA H200".into()),
            gpu_count: u32::from(device == Some("cuda")),
            gpu_uuid: uuid.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn a_cpu_run_on_a_gpu_host_is_a_cpu_result() {
        let host = [h200("a", 700.0, "Disabled")];
        let on_cpu = Machine::from_host(&used(Some("cpu"), None), &host, None);
        assert_eq!((on_cpu.gpu.as_deref(), on_cpu.gpu_count), (None, 0));
        assert_eq!(
            (on_cpu.driver.as_deref(), on_cpu.gpu_info.as_ref()),
            (None, None)
        );
        let no_gpu_host = Machine::from_host(&used(Some("cpu"), None), &[], None);
        assert_eq!(on_cpu.fingerprint, no_gpu_host.fingerprint);
    }

    #[test]
    fn driver_power_limit_and_mig_mode_are_fingerprinted() {
        let env = used(Some("cuda"), Some("a"));
        let print = |gpu: GpuInfo| Machine::from_host(&env, &[gpu], None);
        let base = print(h200("a", 700.0, "Disabled"));
        assert_eq!(base.gpu.as_deref(), Some("NVIDIA H200"));
        assert_eq!(base.driver.as_deref(), Some("570.86.15"));
        assert_eq!(base.gpu_info.as_ref().unwrap().power_limit_w, Some(700.0));
        // A patch release of the same driver branch, and a power reading
        // that rounds the same, keep the fingerprint.
        let mut patched = h200("a", 700.2, "Disabled");
        patched.driver = "570.124.06".into();
        assert_eq!(print(patched).fingerprint, base.fingerprint);
        let mut new_branch = h200("a", 700.0, "Disabled");
        new_branch.driver = "580.65.06".into();
        for other in [
            new_branch,
            h200("a", 500.0, "Disabled"),
            h200("a", 700.0, "Enabled"),
        ] {
            assert_ne!(
                print(other.clone()).fingerprint,
                base.fingerprint,
                "{other:?}"
            );
        }
    }

    #[test]
    fn the_gpu_recorded_is_the_one_the_worker_used() {
        let host = [h200("a", 700.0, "Disabled"), h200("b", 500.0, "Disabled")];
        // The worker names the second GPU by its UUID (torch writes no prefix).
        let m = Machine::from_host(&used(Some("cuda"), Some("b")), &host, Some("1"));
        assert_eq!(m.gpu_info.unwrap().power_limit_w, Some(500.0));
        assert_eq!(m.cuda_visible_devices.as_deref(), Some("1"));
        // Whether one GPU or all eight are visible, a worker measured one.
        let one = Machine::from_host(&used(Some("cuda"), Some("a")), &host[..1], Some("0"));
        let mut all = used(Some("cuda"), Some("a"));
        all.gpu_count = 2;
        let both = Machine::from_host(&all, &host, None);
        assert_eq!(one.fingerprint, both.fingerprint);
        assert_eq!(both.gpu_count, 2);
        // A command may use any GPU: the first one it can see.
        let command = Machine::from_host(&Environment::default(), &host, Some("1"));
        assert_eq!(command.gpu_info.unwrap().uuid.as_deref(), Some("GPU-b"));
        assert_eq!(command.gpu_count, 1);
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
