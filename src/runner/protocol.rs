//! The python worker's protocol as typed messages. regress writes one
//! request (JSON, one line) on the worker's stdin; the worker answers with
//! JSON lines on its stdout, each naming its `type`. Both sides carry the
//! protocol version and check it: a worker from another build is a clear
//! error naming both versions, and a line that does not parse is an error
//! quoting it, never silently dropped.
//!
//! The workers are `python/regress_worker.py` (the torch.compile backend)
//! and the `regress-native` binary (libtorch through tch); the python
//! worker's `PROTOCOL_VERSION` must equal the one here (a test checks).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::spec::{
    BuiltinModel, CastMode, CompileCache, CompileMode, DeviceChoice, Fp8Recipe, L2Policy, Phase,
    Precision,
};

/// Version of the messages below. Bump it with any change to their shape.
pub const PROTOCOL_VERSION: u32 = 5;

/// What regress asks of a worker process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Report torch, the device and its settings; fill the ISA-check cache.
    Probe(ProbeRequest),
    /// Measure one process of one case.
    Run(Box<RunRequest>),
}

impl Request {
    /// The request as the one line the worker reads.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("requests serialise")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub protocol: u32,
    pub device: DeviceChoice,
    pub isa_checks: Option<PathBuf>,
}

/// The model to build.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    Builtin { name: BuiltinModel },
    Entrypoint { target: String },
}

/// The case, as the worker needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseSpec {
    pub id: String,
    pub label: String,
    pub params: Map<String, Value>,
    pub precision: Precision,
    pub compile: CompileMode,
    pub phase: Phase,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WarmupSpec {
    pub min_iters: u64,
    /// Seconds.
    pub min_time: f64,
}

/// The stop rule (`runner::sampling`), times in seconds, with the rule's
/// own constants so the worker keeps no copy of them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MeasureSpec {
    pub min_iters: u64,
    pub min_time: f64,
    pub max_time: f64,
    pub target_rel_iqr: f64,
    pub check_growth: f64,
    pub min_samples: usize,
    pub min_iqr_samples: usize,
}

impl MeasureSpec {
    /// The spec of a stop rule.
    pub fn of(rule: &super::sampling::StopRule) -> MeasureSpec {
        use super::sampling::{CHECK_GROWTH, MIN_IQR_SAMPLES, MIN_SAMPLES};
        MeasureSpec {
            min_iters: rule.min_iters,
            min_time: rule.min_time.as_secs_f64(),
            max_time: rule.max_time.as_secs_f64(),
            target_rel_iqr: rule.target_rel_iqr,
            check_growth: CHECK_GROWTH,
            min_samples: MIN_SAMPLES,
            min_iqr_samples: MIN_IQR_SAMPLES,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompileSpec {
    pub fullgraph: bool,
    pub dynamic: Option<bool>,
    pub backend: String,
    /// `"model"`, `"blocks"` or `{"names": [...]}`.
    pub scope: Value,
    pub cache: CompileCache,
}

/// The accuracy gate with the tolerances for this case's precision already
/// resolved (pipeline overrides, else the defaults of `spec::defaults`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AccuracySpec {
    pub check: bool,
    pub rtol: f64,
    pub atol: f64,
    pub rmse: f64,
}

/// Everything a worker needs to measure one process of one case; every
/// setting is explicit, so the worker keeps no defaults of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    pub protocol: u32,
    pub model: ModelSpec,
    pub args: Map<String, Value>,
    pub device: DeviceChoice,
    pub case: CaseSpec,
    pub repeat: u32,
    pub seed: u64,
    /// `runner.threads`: the worker sets torch's threads to it; None keeps
    /// torch's choice.
    pub threads: Option<u32>,
    pub isa_checks: Option<PathBuf>,
    pub warmup: WarmupSpec,
    pub measure: MeasureSpec,
    pub l2: L2Policy,
    pub cast: CastMode,
    pub fp8: Fp8Recipe,
    pub compile_options: CompileSpec,
    pub accuracy: AccuracySpec,
}

/// A line the worker wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Probe(ProbeReply),
    Result(RunResult),
    Skipped {
        reason: String,
    },
    AccuracyFail {
        message: String,
        #[serde(default)]
        accuracy: Value,
        /// What the case had found when it failed (4: new).
        #[serde(default)]
        diagnostics: Map<String, Value>,
    },
    Error {
        /// `no_torch`, `oom`, `protocol` or `exception`.
        kind: String,
        message: String,
        /// What the case had found when it failed (4: new).
        #[serde(default)]
        diagnostics: Map<String, Value>,
    },
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProbeReply {
    pub python: Option<String>,
    pub torch: Option<String>,
    pub cuda: Option<String>,
    pub cudnn: Option<String>,
    pub gpu: Option<String>,
    #[serde(default)]
    pub gpu_count: u32,
    pub compute_capability: Option<String>,
    pub device: Option<String>,
    pub threads: Option<u32>,
    #[serde(default)]
    pub settings: Map<String, Value>,
    #[serde(default)]
    pub vec_isa: Option<String>,
    /// The UUID of the GPU the worker would measure on (5: new).
    #[serde(default)]
    pub gpu_uuid: Option<String>,
    /// torch's CUDA version, also when CUDA is unusable here (5: new).
    #[serde(default)]
    pub torch_cuda: Option<String>,
    /// Why torch cannot use CUDA, when it cannot (5: new).
    #[serde(default)]
    pub cuda_unavailable: Option<String>,
}

/// Counters torch.compile reported for the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompileCounters {
    pub graph_breaks: Option<f64>,
    pub unique_graphs: Option<f64>,
    pub recompiles: Option<f64>,
    /// Everything else the worker said about compilation (reasons, places).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// The samples of one process.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunResult {
    /// Seconds per iteration; JSON has no NaN, so a non-finite sample
    /// arrives as null and is rejected here.
    pub samples: Vec<f64>,
    pub first_call: Option<f64>,
    pub compile_time: Option<f64>,
    pub peak_memory: Option<f64>,
    pub peak_memory_reserved: Option<f64>,
    pub compile: Option<CompileCounters>,
    #[serde(default)]
    pub diagnostics: Map<String, Value>,
}

/// A worker line regress cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the python worker speaks protocol {worker}, this regress speaks {regress}: the worker and the binary come from different builds; reinstall regress")]
    Version { worker: u64, regress: u32 },
    #[error("the python worker wrote a line regress cannot read ({reason}): {line}")]
    Unreadable { line: String, reason: String },
}

impl Message {
    /// The message as the one line a worker writes, with its protocol version.
    pub fn to_line(&self) -> String {
        let mut value = serde_json::to_value(self).expect("messages serialise");
        if let Value::Object(map) = &mut value {
            map.insert("protocol".into(), PROTOCOL_VERSION.into());
        }
        value.to_string()
    }
}

impl MeasureSpec {
    /// The stop rule this spec describes.
    pub fn rule(&self) -> super::sampling::StopRule {
        super::sampling::StopRule {
            min_iters: self.min_iters,
            min_time: std::time::Duration::from_secs_f64(self.min_time),
            max_time: std::time::Duration::from_secs_f64(self.max_time),
            target_rel_iqr: self.target_rel_iqr,
        }
    }
}

/// Longest part of a bad line quoted in an error.
const QUOTE_CHARS: usize = 300;

/// Parses one line of worker output, checking its protocol version first
/// so that a worker of another build is named as such, whatever its shape.
pub fn parse_line(line: &str) -> Result<Message, ProtocolError> {
    let unreadable = |reason: String| {
        let mut quoted: String = line.chars().take(QUOTE_CHARS).collect();
        if quoted.len() < line.len() {
            quoted.push('…');
        }
        ProtocolError::Unreadable {
            line: quoted,
            reason,
        }
    };
    let value: Value = serde_json::from_str(line).map_err(|e| unreadable(e.to_string()))?;
    match value.get("protocol").and_then(Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(ProtocolError::Version {
                worker: v,
                regress: PROTOCOL_VERSION,
            })
        }
        None => return Err(unreadable("it has no protocol version".into())),
    }
    serde_json::from_value(value).map_err(|e| unreadable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_by_type() {
        let line =
            format!(r#"{{"type": "skipped", "protocol": {PROTOCOL_VERSION}, "reason": "no GPU"}}"#);
        assert_eq!(
            parse_line(&line).unwrap(),
            Message::Skipped {
                reason: "no GPU".into()
            }
        );
        let result = format!(
            r#"{{"type": "result", "protocol": {PROTOCOL_VERSION}, "samples": [0.001, 0.002], "first_call": 0.5, "compile_time": 0.5, "compile": {{"graph_breaks": 1, "unique_graphs": 2, "recompiles": 0, "break_reasons": []}}, "diagnostics": {{"batch": 1}}}}"#
        );
        let Message::Result(r) = parse_line(&result).unwrap() else {
            panic!("a result")
        };
        assert_eq!(r.samples, [0.001, 0.002]);
        let compile = r.compile.unwrap();
        assert_eq!(compile.graph_breaks, Some(1.0));
        assert!(compile.details.contains_key("break_reasons"));
    }

    #[test]
    fn a_worker_of_another_protocol_is_named_with_both_versions() {
        let err = parse_line(r#"{"type": "probe", "protocol": 2, "torch": "2.11.0"}"#).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::Version {
                worker: 2,
                regress: PROTOCOL_VERSION
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("protocol 2") && text.contains(&format!("speaks {PROTOCOL_VERSION}")),
            "{text}"
        );
    }

    #[test]
    fn unreadable_lines_are_errors_that_quote_them() {
        for bad in [
            "Traceback (most recent call last):",
            r#"{"type": "result"}"#,
            &format!(r#"{{"type": "teleport", "protocol": {PROTOCOL_VERSION}}}"#),
            &format!(r#"{{"type": "result", "protocol": {PROTOCOL_VERSION}, "samples": [null]}}"#),
        ] {
            let err = parse_line(bad).unwrap_err().to_string();
            assert!(err.contains("cannot read"), "{err}");
            assert!(err.contains(&bad[..20.min(bad.len())]), "{err}");
        }
    }

    #[test]
    fn the_worker_declares_the_same_version() {
        let source = include_str!("../../python/regress_worker.py");
        assert!(
            source.contains(&format!("\nPROTOCOL_VERSION = {PROTOCOL_VERSION}\n")),
            "python/regress_worker.py must declare PROTOCOL_VERSION = {PROTOCOL_VERSION}"
        );
    }
}
