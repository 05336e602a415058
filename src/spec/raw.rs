//! The pipeline file exactly as written: serde structs that reject unknown
//! keys and wrong types (serde_yaml reports those with line and column).
//! Everything here is checked and turned into domain types by `validate`;
//! these structs never leave `spec/`.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPipeline {
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub model: RawModel,
    #[serde(default)]
    pub runner: RawRunner,
    #[serde(default)]
    pub matrix: Option<Mapping>,
    #[serde(default)]
    pub phases: Option<Vec<String>>,
    #[serde(default)]
    pub compile_options: Option<RawCompileOptions>,
    #[serde(default)]
    pub accuracy: Option<RawAccuracy>,
    #[serde(default)]
    pub compare: RawCompare,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompileOptions {
    #[serde(default)]
    pub fullgraph: Option<bool>,
    #[serde(default)]
    pub dynamic: Option<bool>,
    #[serde(default)]
    pub backend: Option<String>,
    /// `model`, `blocks`, or a list of names.
    #[serde(default)]
    pub scope: Option<Value>,
    #[serde(default)]
    pub cache: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccuracy {
    #[serde(default)]
    pub check: Option<bool>,
    #[serde(default)]
    pub rtol: Option<f64>,
    #[serde(default)]
    pub atol: Option<f64>,
    #[serde(default)]
    pub rmse: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    #[serde(default)]
    pub builtin: Option<String>,
    #[serde(default)]
    pub args: Option<Mapping>,
    #[serde(default)]
    pub entrypoint: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRunner {
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub processes: Option<u32>,
    #[serde(default)]
    pub threads: Option<u32>,
    #[serde(default)]
    pub warmup: Option<RawWarmup>,
    #[serde(default)]
    pub measure: Option<RawMeasure>,
    #[serde(default)]
    pub l2: Option<String>,
    #[serde(default)]
    pub cast: Option<String>,
    #[serde(default)]
    pub fp8: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub python: Option<String>,
    #[serde(default)]
    pub env_passthrough: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWarmup {
    #[serde(default)]
    pub min_iters: Option<u64>,
    #[serde(default)]
    pub min_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMeasure {
    #[serde(default)]
    pub min_iters: Option<u64>,
    #[serde(default)]
    pub min_time: Option<String>,
    #[serde(default)]
    pub max_time: Option<String>,
    #[serde(default)]
    pub target_rel_iqr: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompare {
    #[serde(default)]
    pub threshold: Option<Value>,
    #[serde(default)]
    pub alpha: Option<f64>,
}
