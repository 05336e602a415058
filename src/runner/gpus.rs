//! The NVIDIA GPUs of this host as `nvidia-smi` sees them: the driver that
//! decides which torch build can use them, and the properties that decide
//! their speed (power limit, MIG), for the machine fingerprint. nvidia-smi
//! sees every physical GPU whatever `CUDA_VISIBLE_DEVICES` says, and can
//! hang on a wedged driver, so it is always called with a time limit and
//! its rows are narrowed to the GPUs a worker can see.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wait_timeout::ChildExt;

/// How long nvidia-smi may take before the host counts as having no GPU
/// information (the python worker allows its own calls as long).
pub const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);

/// The variable that chooses which GPUs CUDA programs see.
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// Fields asked of nvidia-smi, in this order. `compute_cap` needs driver
/// 510 or newer; older ones refuse the whole query, and `BASIC_FIELDS`
/// is asked instead.
const FIELDS: &[&str] = &[
    "name",
    "driver_version",
    "uuid",
    "pci.bus_id",
    "compute_cap",
    "memory.total",
    "power.limit",
    "mig.mode.current",
];
const BASIC_FIELDS: &[&str] = &["name", "driver_version", "uuid"];

/// One GPU as nvidia-smi lists it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GpuInfo {
    pub name: String,
    pub driver: String,
    /// `GPU-…`, the name CUDA_VISIBLE_DEVICES and torch also know it by.
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    pub compute_capability: Option<String>,
    pub memory_mib: Option<u64>,
    /// The enforced power limit, in watts: two GPUs of one name capped
    /// differently run at different speeds.
    pub power_limit_w: Option<f64>,
    /// `Enabled` / `Disabled`: a MIG slice is a fraction of the GPU.
    pub mig_mode: Option<String>,
}

impl GpuInfo {
    /// The driver's major version (`570` of `570.86.15`).
    pub fn driver_major(&self) -> Option<u32> {
        self.driver.split('.').next()?.trim().parse().ok()
    }
}

/// The GPUs nvidia-smi lists, in its (PCI) order; empty when there is no
/// nvidia-smi, it fails, or it takes longer than `NVIDIA_SMI_TIMEOUT`.
pub fn nvidia_smi() -> Vec<GpuInfo> {
    query("nvidia-smi", NVIDIA_SMI_TIMEOUT)
}

/// `nvidia_smi` through `program`, with a given time limit.
fn query(program: &str, timeout: Duration) -> Vec<GpuInfo> {
    for fields in [FIELDS, BASIC_FIELDS] {
        if let Some(text) = run_smi(program, fields, timeout) {
            return parse(&text, fields);
        }
    }
    Vec::new()
}

/// nvidia-smi's CSV answer for `fields`, or None when it could not give one
/// in time.
fn run_smi(program: &str, fields: &[&str], timeout: Duration) -> Option<String> {
    let mut child = Command::new(program)
        .arg(format!("--query-gpu={}", fields.join(",")))
        .arg("--format=csv,noheader,nounits")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // A few lines per GPU: far below a pipe's buffer, so waiting before
    // reading cannot block the child.
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
    };
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    (status.success() && !text.trim().is_empty()).then_some(text)
}

/// A value nvidia-smi could give (it writes `[N/A]` or `[Not Supported]`).
fn known(value: &str) -> Option<&str> {
    let v = value.trim();
    (!v.is_empty() && !v.starts_with('[') && v != "N/A").then_some(v)
}

/// Rows of `--format=csv,noheader,nounits` for `fields`.
fn parse(text: &str, fields: &[&str]) -> Vec<GpuInfo> {
    let column = |name: &str| fields.iter().position(|f| *f == name);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let values: Vec<&str> = line.split(',').map(str::trim).collect();
            let get =
                |name: &str| column(name).and_then(|i| values.get(i).copied().and_then(known));
            Some(GpuInfo {
                name: get("name")?.to_string(),
                driver: get("driver_version").unwrap_or_default().to_string(),
                uuid: get("uuid").map(str::to_string),
                pci_bus_id: get("pci.bus_id").map(str::to_string),
                compute_capability: get("compute_cap").map(str::to_string),
                memory_mib: get("memory.total")
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|v| v as u64),
                power_limit_w: get("power.limit").and_then(|v| v.parse().ok()),
                mig_mode: get("mig.mode.current").map(str::to_string),
            })
        })
        .collect()
}

/// The GPUs a CUDA program sees under `visible` (CUDA_VISIBLE_DEVICES):
/// all of them when it is unset; else the ones it names, in its order, by
/// index into nvidia-smi's list or by (a prefix of) their UUID. CUDA stops
/// at the first entry it cannot resolve, and so does this. An index is
/// CUDA's order, which is nvidia-smi's PCI order only under
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID`; the UUID a worker reports settles it
/// where it can (`select`).
pub fn visible(all: &[GpuInfo], visible: Option<&str>) -> Vec<GpuInfo> {
    let Some(spec) = visible else {
        return all.to_vec();
    };
    let mut out = Vec::new();
    for entry in spec.split(',').map(str::trim) {
        let found = if let Ok(i) = entry.parse::<usize>() {
            all.get(i)
        } else if entry.starts_with("GPU-") || entry.starts_with("MIG-") {
            all.iter()
                .find(|g| g.uuid.as_deref().is_some_and(|u| u.starts_with(entry)))
        } else {
            None
        };
        match found {
            Some(g) => out.push(g.clone()),
            None => break,
        }
    }
    out
}

/// The GPU a worker measured on: the one with the UUID it reported (torch
/// writes it without the `GPU-` prefix), else the first visible one.
pub fn select<'a>(visible: &'a [GpuInfo], uuid: Option<&str>) -> Option<&'a GpuInfo> {
    let wanted = uuid.map(|u| u.trim_start_matches("GPU-"));
    wanted
        .and_then(|w| {
            visible.iter().find(|g| {
                g.uuid
                    .as_deref()
                    .is_some_and(|u| u.trim_start_matches("GPU-") == w)
            })
        })
        .or_else(|| visible.first())
}

/// The oldest driver (major version) that runs a CUDA major version, by
/// CUDA's minor-version compatibility (CUDA's release notes, table 2).
pub fn minimum_driver(cuda: &str) -> Option<u32> {
    match cuda.split('.').next()?.parse::<u32>().ok()? {
        13 => Some(580),
        12 => Some(525),
        11 => Some(450),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "NVIDIA H200, 570.86.15, GPU-aaaa1111-0000-0000-0000-000000000000, 00000000:18:00.0, 9.0, 143771, 700.00, Disabled\n\
NVIDIA H100 80GB HBM3, 570.86.15, GPU-bbbb2222-0000-0000-0000-000000000000, 00000000:2A:00.0, 9.0, 81559, [N/A], [N/A]\n";

    #[test]
    fn rows_parse_with_unknown_values_left_out() {
        let gpus = parse(TWO, FIELDS);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H200");
        assert_eq!(gpus[0].driver_major(), Some(570));
        assert_eq!(gpus[0].power_limit_w, Some(700.0));
        assert_eq!(gpus[0].memory_mib, Some(143771));
        assert_eq!(gpus[0].mig_mode.as_deref(), Some("Disabled"));
        assert_eq!(gpus[0].compute_capability.as_deref(), Some("9.0"));
        assert_eq!(gpus[1].power_limit_w, None);
        assert_eq!(gpus[1].mig_mode, None);
        let basic = parse("Tesla T4, 470.57.02, GPU-cccc\n", BASIC_FIELDS);
        assert_eq!(basic[0].uuid.as_deref(), Some("GPU-cccc"));
        assert_eq!(basic[0].power_limit_w, None);
    }

    #[test]
    fn cuda_visible_devices_narrows_and_orders_the_gpus() {
        let gpus = parse(TWO, FIELDS);
        assert_eq!(visible(&gpus, None).len(), 2);
        let names = |v: Option<&str>| -> Vec<String> {
            visible(&gpus, v).into_iter().map(|g| g.name).collect()
        };
        assert_eq!(names(Some("1")), ["NVIDIA H100 80GB HBM3"]);
        assert_eq!(names(Some("1,0")), ["NVIDIA H100 80GB HBM3", "NVIDIA H200"]);
        assert_eq!(names(Some("GPU-aaaa")), ["NVIDIA H200"]);
        // CUDA stops at the first entry it cannot resolve.
        assert_eq!(names(Some("0,7,1")), ["NVIDIA H200"]);
        assert!(names(Some("")).is_empty());
        assert!(names(Some("-1")).is_empty());
    }

    #[test]
    fn the_gpu_used_is_found_by_the_uuid_torch_reports() {
        let gpus = parse(TWO, FIELDS);
        let by = |u| select(&gpus, u).map(|g| g.name.as_str());
        assert_eq!(
            by(Some("bbbb2222-0000-0000-0000-000000000000")),
            Some("NVIDIA H100 80GB HBM3")
        );
        assert_eq!(by(None), Some("NVIDIA H200"));
        assert_eq!(by(Some("not-listed")), Some("NVIDIA H200"));
        assert_eq!(select(&[], None), None);
    }

    #[test]
    fn a_hung_nvidia_smi_is_given_up_on_and_an_old_one_asked_less() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.display().to_string()
        };
        let hung = script("hung", "exec sleep 30");
        let start = std::time::Instant::now();
        assert!(query(&hung, Duration::from_millis(300)).is_empty());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // A driver older than 510 refuses compute_cap, and with it the query.
        let old = script(
            "old",
            "case \"$1\" in *compute_cap*) echo 'Field \"compute_cap\" is not a valid field to query.'; exit 2;; esac\necho 'Tesla V100, 470.57.02, GPU-dddd'",
        );
        let gpus = query(&old, Duration::from_secs(5));
        assert_eq!(gpus.len(), 1);
        assert_eq!(
            (gpus[0].name.as_str(), gpus[0].driver_major()),
            ("Tesla V100", Some(470))
        );
    }

    #[test]
    fn drivers_that_run_a_cuda_version() {
        assert_eq!(minimum_driver("13.0"), Some(580));
        assert_eq!(minimum_driver("12.8"), Some(525));
        assert_eq!(minimum_driver("x"), None);
    }
}
