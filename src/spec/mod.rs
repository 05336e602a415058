//! Pipelines: YAML files in `workflows/` turned into validated domain types
//! and then into the list of cases to run.
//!
//! Parsing happens in two steps (raw serde structs, then `validate`), and all
//! YAML handling stays inside this module so the YAML crate can be swapped in
//! one place. Every error names the file, line, column and key, and says what
//! would be valid.

mod case;
pub mod defaults;
mod duration;
mod entrypoint;
mod error;
mod locate;
mod raw;
mod shard;
mod types;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::id::CaseId;
pub use case::{Case, Params};
pub use duration::{parse_duration, DURATION_HINT};
pub use error::SpecError;
pub use locate::KeyPath;
pub use shard::{split as split_shards, PipelineShards, PlannedCase, Shard, ShardPlan};
pub(crate) use types::StringEnum;
pub use types::{
    AccuracyConfig, BackendKind, BuiltinModel, CastMode, CommandOutput, CompileCache, CompileMode,
    CompileOptions, CompileScope, DeviceChoice, Fp8Recipe, L2Policy, Phase, Precision,
};

/// The only pipeline format version this build reads.
pub const PIPELINE_VERSION: u32 = 1;

/// A validated pipeline: what to run, where, how often, and how to judge it.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub name: String,
    #[serde(skip)]
    pub source: PathBuf,
    /// Which document of its file this is (0 for the first), for placing
    /// errors found after parsing.
    #[serde(skip)]
    pub doc: usize,
    pub description: Option<String>,
    pub model: Model,
    pub runner: RunnerConfig,
    pub matrix: Matrix,
    pub phases: Vec<Phase>,
    /// How `torch.compile` is applied when a case's mode is not `eager`.
    pub compile_options: CompileOptions,
    /// The check of compiled and reduced-precision outputs against eager.
    pub accuracy: AccuracyConfig,
    pub compare: CompareConfig,
}

/// What is being measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// A model of the built-in zoo, with constructor arguments.
    Builtin {
        name: BuiltinModel,
        args: BTreeMap<String, ParamValue>,
    },
    /// A user model: `path/to/file.py:factory` or `package.module:factory`,
    /// where `factory(params) -> (module, example_inputs)`.
    Entrypoint {
        target: String,
        args: BTreeMap<String, ParamValue>,
    },
    /// A shell command; `{{ param }}` is replaced by the case's value.
    Command {
        template: String,
        output: CommandOutput,
    },
}

impl Model {
    /// `mlp(dim=128,hidden=512)` for a model of the built-in zoo, which
    /// both the python and the native backend build with the same weights;
    /// `None` for other models.
    pub fn builtin_key(&self) -> Option<String> {
        match self {
            Model::Builtin { name, args } => {
                let args: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
                Some(format!("{}({})", name.as_str(), args.join(",")))
            }
            Model::Entrypoint { .. } | Model::Command { .. } => None,
        }
    }

    /// The short name used in case labels.
    pub fn label_name<'a>(&'a self, pipeline: &'a str) -> &'a str {
        match self {
            Model::Builtin { name, .. } => name.as_str(),
            Model::Entrypoint { .. } | Model::Command { .. } => pipeline,
        }
    }
}

/// A scalar parameter value: a matrix entry or a model argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    /// The value as an integer, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

/// How cases are executed and how long each is measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunnerConfig {
    pub backend: BackendKind,
    pub device: DeviceChoice,
    /// Independent repeats of every case, each in a fresh process where the
    /// backend allows.
    pub processes: u32,
    /// Threads each worker computes with (torch's intra-op threads, and
    /// OpenMP's); None leaves torch's own choice, which is recorded.
    pub threads: Option<u32>,
    pub warmup: Warmup,
    pub measure: Measure,
    pub l2: L2Policy,
    pub cast: CastMode,
    pub fp8: Fp8Recipe,
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Interpreter for the python backend, overriding `REGRESS_PYTHON`.
    pub python: Option<String>,
    /// Environment variables passed to workers although their names look secret.
    pub env_passthrough: Vec<String>,
}

/// Warm-up before samples are taken: both bounds must be met.
#[derive(Debug, Clone, Serialize)]
pub struct Warmup {
    pub min_iters: u64,
    #[serde(with = "secs")]
    pub min_time: Duration,
}

/// Sampling: at least `min_iters` and `min_time`; then on until the
/// relative IQR is below `target_rel_iqr`, never beyond `max_time`.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    pub min_iters: u64,
    #[serde(with = "secs")]
    pub min_time: Duration,
    #[serde(with = "secs")]
    pub max_time: Duration,
    /// Relative IQR (IQR / median) at which sampling may stop early, as a fraction.
    pub target_rel_iqr: f64,
}

/// The expanded axes of a matrix, in the order they were written.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Matrix {
    pub axes: Vec<(String, Vec<ParamValue>)>,
    pub include: Vec<Vec<(String, ParamValue)>>,
    pub exclude: Vec<Vec<(String, ParamValue)>>,
}

/// How `regress compare` judges this pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompareConfig {
    /// Smallest relative change that matters, as a fraction (0.03 = 3 %).
    pub threshold: f64,
    /// Significance level of the two-sample test.
    pub alpha: f64,
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Pipeline {
    /// Reads and validates a pipeline file. A file holds one pipeline, or
    /// several separated by `---` (each with its own name).
    pub fn load(path: &Path) -> Result<Vec<Pipeline>, SpecError> {
        let src = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Pipeline::parse(&src, path)
    }

    /// The 1-based line of the `name:` key of the pipeline called `name` in
    /// a pipeline file's text, if the file has that pipeline: where
    /// annotations about its cases point. Invalid documents are passed over.
    pub fn name_line(src: &str, name: &str) -> Option<usize> {
        use serde::Deserialize as _;
        #[derive(Deserialize)]
        struct Named {
            name: Option<String>,
        }
        for (doc, de) in serde_yaml::Deserializer::from_str(src).enumerate() {
            if Named::deserialize(de).is_ok_and(|n| n.name.as_deref() == Some(name)) {
                return locate::locate(src, doc, &KeyPath::root().key("name"))
                    .map(|(line, _)| line);
            }
        }
        None
    }

    /// Validates pipeline text; `path` only names the source in errors.
    pub fn parse(src: &str, path: &Path) -> Result<Vec<Pipeline>, SpecError> {
        use serde::Deserialize as _;
        let mut pipelines: Vec<Pipeline> = Vec::new();
        for (doc, de) in serde_yaml::Deserializer::from_str(src).enumerate() {
            let raw =
                raw::RawPipeline::deserialize(de).map_err(|e| SpecError::from_yaml(path, &e))?;
            let mut pipeline =
                validate::pipeline(raw, path).map_err(|e| e.into_spec_error(src, doc, path))?;
            pipeline.doc = doc;
            if pipelines.iter().any(|p| p.name == pipeline.name) {
                let e = error::Invalid::new(
                    KeyPath::root().key("name"),
                    format!("pipeline name `{}` is used twice in this file; names key the results, give each its own", pipeline.name),
                );
                return Err(e.into_spec_error(src, doc, path));
            }
            pipelines.push(pipeline);
        }
        if pipelines.is_empty() {
            return Err(SpecError::Syntax {
                file: path.to_path_buf(),
                location: None,
                message: "the file holds no pipeline; start with `version: 1`".into(),
            });
        }
        Ok(pipelines)
    }

    /// Every case of the pipeline: the matrix product, minus `exclude`, plus
    /// `include`, times the phases.
    pub fn cases(&self) -> Vec<Case> {
        case::expand(self)
    }

    /// A stable hash of how every case is measured (backend, device, warm-up
    /// and sampling); records whose hashes differ are not comparable. What a
    /// case *is* (model, parameters, phase) is in its id instead, so adding
    /// a value to an axis or changing the threshold keeps old results usable.
    ///
    /// Settings added after the first format enter the hash only when they
    /// differ from their defaults, so records of pipelines that do not use
    /// them stay comparable with earlier ones.
    pub fn hash(&self) -> String {
        let r = &self.runner;
        let mut measured = serde_json::json!({
            "backend": r.backend,
            "device": r.device,
            "warmup": r.warmup,
            "measure": {
                "min_iters": r.measure.min_iters,
                "min_time": r.measure.min_time.as_secs_f64(),
                "max_time": r.measure.max_time.as_secs_f64(),
            },
        });
        let extra = measured.as_object_mut().expect("a JSON object");
        if (r.measure.target_rel_iqr - defaults::TARGET_REL_IQR).abs() > f64::EPSILON {
            extra.insert("target_rel_iqr".into(), r.measure.target_rel_iqr.into());
        }
        if let Some(threads) = r.threads {
            extra.insert("threads".into(), threads.into());
        }
        if r.l2 != defaults::L2 {
            extra.insert("l2".into(), r.l2.as_str().into());
        }
        if r.cast != defaults::CAST {
            extra.insert("cast".into(), r.cast.as_str().into());
        }
        if r.fp8 != defaults::FP8 {
            extra.insert("fp8".into(), r.fp8.as_str().into());
        }
        if let Model::Command {
            output: CommandOutput::Json,
            ..
        } = self.model
        {
            extra.insert("command_output".into(), "json".into());
        }
        if self.compile_options != CompileOptions::default() {
            let options = serde_json::to_value(&self.compile_options).expect("options serialise");
            extra.insert("compile_options".into(), options);
        }
        crate::id::fnv_hex(measured.to_string().as_bytes())
    }
}

/// The shell command of a case of a command pipeline, parameters substituted.
pub fn case_command(template: &str, case: &Case) -> Result<String, String> {
    case::render_command(template, &case.params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Pipeline, SpecError> {
        Pipeline::parse(src, Path::new("t.yaml")).map(|mut v| v.remove(0))
    }

    const BASE: &str =
        "version: 1\nname: t\nmodel: {builtin: attention, args: {embed_dim: 64, heads: 4}}\n";

    #[test]
    fn matrix_product_in_axis_order_with_readable_labels() {
        let p = parse(&format!(
            "{BASE}matrix:\n  batch: [1, 8]\n  seq_len: [128]\n  precision: [fp32, bf16]\n  compile: [eager, max-autotune]\n"
        ))
        .unwrap();
        let labels: Vec<_> = p.cases().iter().map(|c| c.label.clone()).collect();
        assert_eq!(labels.len(), 8);
        assert_eq!(
            labels[0],
            "attention[batch=1,seq_len=128,fp32,eager]/forward"
        );
        assert_eq!(
            labels[7],
            "attention[batch=8,seq_len=128,bf16,max-autotune]/forward"
        );
        let c = &p.cases()[3];
        assert_eq!(
            (c.precision, c.compile),
            (Some(Precision::Bf16), Some(CompileMode::MaxAutotune))
        );
        assert_eq!(
            c.group_label("attention"),
            "attention[batch=1,seq_len=128,bf16]/forward"
        );
    }

    #[test]
    fn exclude_removes_partial_matches_and_include_adds() {
        let p = parse(&format!(
            "{BASE}matrix:\n  batch: [1, 8]\n  compile: [eager, default]\n  exclude:\n    - {{compile: default, batch: 1}}\n  include:\n    - {{batch: 32, compile: default}}\n    - {{batch: 8, compile: eager}}\n"
        ))
        .unwrap();
        let labels: Vec<_> = p.cases().iter().map(|c| c.label.clone()).collect();
        assert_eq!(
            labels,
            [
                "attention[batch=1,fp32,eager]/forward",
                "attention[batch=8,fp32,eager]/forward",
                "attention[batch=8,fp32,default]/forward",
                "attention[batch=32,fp32,default]/forward",
            ]
        );
    }

    #[test]
    fn include_inherits_the_single_valued_axes_and_pairs_with_its_eager_case() {
        let p = parse(
            "version: 1\nname: t\nmodel: {entrypoint: \"m.py:build\"}\nmatrix:\n  batch: [8]\n  memory_format: [channels_last, contiguous]\n  compile: [eager]\n  include:\n    - {memory_format: contiguous, compile: default}\n",
        )
        .unwrap();
        let cases = p.cases();
        let labels: Vec<_> = cases.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "t[batch=8,memory_format=channels_last,fp32,eager]/forward",
                "t[batch=8,memory_format=contiguous,fp32,eager]/forward",
                "t[batch=8,memory_format=contiguous,fp32,default]/forward",
            ]
        );
        assert_eq!(cases[2].params.get("batch"), Some(&ParamValue::Int(8)));
        assert_eq!(cases[2].group_label("t"), cases[1].group_label("t"));
        // A value the include gives itself wins over the inherited one.
        let p = parse(
            "version: 1\nname: t\nmodel: {entrypoint: \"m.py:build\"}\nmatrix:\n  batch: [8]\n  include:\n    - {batch: 32, compile: default}\n",
        )
        .unwrap();
        assert_eq!(p.cases()[1].label, "t[batch=32,fp32,default]/forward");
    }

    #[test]
    fn a_matrix_of_only_include_has_only_those_cases() {
        let p = parse(&format!(
            "{BASE}matrix:\n  include:\n    - {{batch: 4, compile: default}}\n"
        ))
        .unwrap();
        let labels: Vec<_> = p.cases().iter().map(|c| c.label.clone()).collect();
        assert_eq!(labels, ["attention[batch=4,fp32,default]/forward"]);
    }

    #[test]
    fn ids_are_stable_and_independent_of_axis_order() {
        let a = parse(&format!(
            "{BASE}matrix:\n  batch: [8]\n  precision: [bf16]\n"
        ))
        .unwrap();
        let b = parse(&format!(
            "{BASE}matrix:\n  precision: [bf16]\n  batch: [8]\n"
        ))
        .unwrap();
        assert_eq!(a.cases()[0].id, b.cases()[0].id);
        // Pinned: ids key stored results, so a change here orphans every record.
        assert_eq!(a.cases()[0].id.as_str(), "262a43ceca871f46");
        let other_args = parse(
            &format!("{BASE}matrix:\n  batch: [8]\n  precision: [bf16]\n")
                .replace("heads: 4", "heads: 8"),
        )
        .unwrap();
        assert_ne!(a.cases()[0].id, other_args.cases()[0].id);
    }

    #[test]
    fn defaults_fill_the_runner() {
        let p = parse(BASE).unwrap();
        assert_eq!(p.runner.backend, BackendKind::Python);
        assert_eq!(p.runner.processes, 3);
        assert_eq!(p.runner.timeout, Duration::from_secs(600));
        assert_eq!(p.phases, [Phase::Forward]);
        assert!((p.compare.threshold - 0.03).abs() < 1e-12);
        assert_eq!(p.cases().len(), 1);
        assert_eq!(p.cases()[0].label, "attention[fp32,eager]/forward");
    }

    #[test]
    fn command_templates_are_checked_against_the_matrix() {
        let src = "version: 1\nname: c\nmodel: {command: \"bench --batch {{ batch }} --n {{ n }}\"}\nrunner: {backend: command}\nmatrix: {batch: [1]}\n";
        let err = parse(src).unwrap_err().to_string();
        assert!(
            err.starts_with("t.yaml:3:18: model.command: cannot substitute"),
            "{err}"
        );
        assert!(err.contains("parameters: batch"), "{err}");
        let ok = parse(&src.replace(" --n {{ n }}", "")).unwrap();
        assert_eq!(
            case_command("bench --batch {{ batch }}", &ok.cases()[0]).unwrap(),
            "bench --batch 1"
        );
    }

    #[test]
    fn command_output_is_checked_and_measured_differently() {
        let src = "version: 1\nname: c\nmodel: {command: \"bench\"}\nrunner: {backend: command}\n";
        let time = parse(src).unwrap();
        let json = parse(&src.replace("\"bench\"}", "\"bench\", output: json}")).unwrap();
        assert!(matches!(
            json.model,
            Model::Command {
                output: CommandOutput::Json,
                ..
            }
        ));
        assert_ne!(time.hash(), json.hash());
        let explicit = parse(&src.replace("\"bench\"}", "\"bench\", output: time}")).unwrap();
        assert_eq!(time.hash(), explicit.hash());
        let err = parse(&src.replace("\"bench\"}", "\"bench\", output: csv}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.output: unknown command output `csv`; valid: time, json"),
            "{err}"
        );
        let builtin =
            "version: 1\nname: b\nmodel: {builtin: mlp, output: json}\nrunner: {backend: mock}\n";
        let err = parse(builtin).unwrap_err().to_string();
        assert!(
            err.contains("model.output: `output` says what a `command` model prints"),
            "{err}"
        );
    }

    #[test]
    fn threshold_must_be_a_percentage() {
        let err = parse(&format!("{BASE}compare: {{threshold: 0.03}}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("compare.threshold: write a percentage such as `3%`"),
            "{err}"
        );
        let p = parse(&format!("{BASE}compare: {{threshold: 2.5%}}\n")).unwrap();
        assert!((p.compare.threshold - 0.025).abs() < 1e-12);
    }

    #[test]
    fn pipeline_hash_tracks_definition() {
        let a = parse(BASE).unwrap();
        let b = parse(&format!("{BASE}runner: {{measure: {{min_iters: 5}}}}\n")).unwrap();
        assert_eq!(a.hash(), parse(BASE).unwrap().hash());
        assert_ne!(a.hash(), b.hash());
        let c = parse(&format!(
            "{BASE}compare: {{threshold: 10%}}\nmatrix: {{batch: [1, 2]}}\n"
        ))
        .unwrap();
        assert_eq!(
            a.hash(),
            c.hash(),
            "threshold and matrix do not change how a case is measured"
        );
        let threads = parse(&format!("{BASE}runner: {{threads: 1}}\n")).unwrap();
        assert_eq!(threads.runner.threads, Some(1));
        assert_ne!(a.hash(), threads.hash(), "threads change the numbers");
        let err = parse(&format!("{BASE}runner: {{threads: 0}}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("runner.threads: must be at least 1"), "{err}");
    }
}
