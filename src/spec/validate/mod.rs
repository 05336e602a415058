//! Raw pipeline → validated `Pipeline`. Each check names the key it failed
//! on and what would be valid; `Invalid::into_spec_error` adds line and column.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::defaults;
use super::error::Invalid;
use super::locate::KeyPath;
use super::raw::{RawAccuracy, RawCompare, RawCompileOptions, RawModel, RawPipeline, RawRunner};
use super::{
    parse_duration, AccuracyConfig, BackendKind, BuiltinModel, CommandOutput, CompareConfig,
    CompileMode, CompileOptions, CompileScope, Matrix, Measure, Model, ParamValue, Phase, Pipeline,
    Precision, RunnerConfig, StringEnum, Warmup, DURATION_HINT, PIPELINE_VERSION,
};

mod matrix;
mod model;

use matrix::matrix;
use model::model;

type Result<T> = std::result::Result<T, Invalid>;

/// Longest pipeline name: it becomes a directory name in the store.
const MAX_NAME_LEN: usize = 64;

pub(crate) fn pipeline(raw: RawPipeline, path: &Path) -> Result<Pipeline> {
    let root = KeyPath::root();
    if raw.version != PIPELINE_VERSION {
        return Err(Invalid::new(
            root.key("version"),
            format!(
                "version {} is not supported; this regress reads version {PIPELINE_VERSION}",
                raw.version
            ),
        ));
    }
    check_name(&raw.name, &root.key("name"))?;
    let runner = runner(raw.runner, &root.key("runner"))?;
    let model = model(raw.model, runner.backend, &root.key("model"))?;
    let matrix = matrix(raw.matrix, &model, runner.backend, &root.key("matrix"))?;
    let phases = phases(raw.phases, runner.backend, &root.key("phases"))?;
    let compile_options = compile_options(
        raw.compile_options,
        runner.backend,
        &root.key("compile_options"),
    )?;
    let accuracy = accuracy(raw.accuracy, &root.key("accuracy"))?;
    let compare = compare(raw.compare, &root.key("compare"))?;
    let pipeline = Pipeline {
        name: raw.name,
        source: path.to_path_buf(),
        doc: 0,
        description: raw.description,
        model,
        runner,
        matrix,
        phases,
        compile_options,
        accuracy,
        compare,
    };
    let cases = pipeline.cases();
    check_command_template(&pipeline.model, &cases)?;
    if cases.is_empty() {
        return Err(Invalid::new(
            root.key("matrix").key("exclude"),
            "the matrix expands to no cases: every combination is excluded",
        ));
    }
    Ok(pipeline)
}

fn check_name(name: &str, key: &KeyPath) -> Result<()> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let valid_start = name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_chars || !valid_start {
        return Err(Invalid::new(
            key.clone(),
            format!(
                "`{name}` is not a valid pipeline name; use 1 to {MAX_NAME_LEN} letters, digits, \
                 '-', '_' or '.', starting with a letter or digit (results are stored under it)"
            ),
        ));
    }
    Ok(())
}

fn runner(raw: RawRunner, key: &KeyPath) -> Result<RunnerConfig> {
    let backend = parsed(
        raw.backend,
        defaults::BACKEND,
        "backend",
        &key.key("backend"),
    )?;
    let device = parsed(raw.device, defaults::DEVICE, "device", &key.key("device"))?;
    let l2 = parsed(raw.l2, defaults::L2, "L2 policy", &key.key("l2"))?;
    let cast = parsed(raw.cast, defaults::CAST, "cast mode", &key.key("cast"))?;
    let fp8 = parsed(raw.fp8, defaults::FP8, "fp8 recipe", &key.key("fp8"))?;
    if backend == BackendKind::Native {
        let unsupported = [
            ("l2", l2 != defaults::L2),
            ("cast", cast != defaults::CAST),
            ("fp8", fp8 != defaults::FP8),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(Invalid::new(
                key.key(name),
                format!("the native backend times end-to-end calls in dtype precision and has no `{name}` setting; remove it or use `backend: python`"),
            ));
        }
    }
    let processes = raw.processes.unwrap_or(defaults::PROCESSES);
    if processes == 0 {
        return Err(Invalid::new(
            key.key("processes"),
            "must be at least 1: each process is one independent repeat of the case",
        ));
    }
    if raw.threads == Some(0) {
        return Err(Invalid::new(
            key.key("threads"),
            "must be at least 1, or left out for torch's own choice (which is recorded)",
        ));
    }
    let (warm_iters, measure_iters) = defaults::iterations(backend);
    let warmup_raw = raw.warmup.unwrap_or_default();
    let wkey = key.key("warmup");
    let warmup = Warmup {
        min_iters: warmup_raw.min_iters.unwrap_or(warm_iters),
        min_time: duration_or(
            warmup_raw.min_time,
            &wkey.key("min_time"),
            defaults::WARMUP_TIME,
        )?,
    };
    let measure_raw = raw.measure.unwrap_or_default();
    let mkey = key.key("measure");
    let measure = Measure {
        min_iters: measure_raw.min_iters.unwrap_or(measure_iters),
        min_time: duration_or(
            measure_raw.min_time,
            &mkey.key("min_time"),
            defaults::MEASURE_MIN_TIME,
        )?,
        max_time: duration_or(
            measure_raw.max_time,
            &mkey.key("max_time"),
            defaults::MEASURE_MAX_TIME,
        )?,
        target_rel_iqr: match measure_raw.target_rel_iqr {
            None => defaults::TARGET_REL_IQR,
            Some(v) => percentage(&v, &mkey.key("target_rel_iqr"), 100.0)?,
        },
    };
    if measure.min_iters < 2 {
        return Err(Invalid::new(
            mkey.key("min_iters"),
            "must be at least 2: a comparison needs a spread, not a single sample",
        ));
    }
    if measure.max_time < measure.min_time {
        return Err(Invalid::new(
            mkey.key("max_time"),
            format!(
                "max_time ({:?}) is shorter than min_time ({:?}); make max_time at least min_time",
                measure.max_time, measure.min_time
            ),
        ));
    }
    let timeout = duration_or(raw.timeout, &key.key("timeout"), defaults::TIMEOUT)?;
    if timeout.is_zero() {
        return Err(Invalid::new(key.key("timeout"), "must be longer than 0s"));
    }
    Ok(RunnerConfig {
        backend,
        device,
        processes,
        threads: raw.threads,
        warmup,
        measure,
        l2,
        cast,
        fp8,
        timeout,
        python: raw.python,
        env_passthrough: raw.env_passthrough.unwrap_or_default(),
    })
}

fn duration_or(text: Option<String>, key: &KeyPath, default: Duration) -> Result<Duration> {
    let Some(text) = text else {
        return Ok(default);
    };
    parse_duration(&text).ok_or_else(|| {
        Invalid::new(
            key.clone(),
            format!("`{text}` is not a duration; write {DURATION_HINT}"),
        )
    })
}

/// Parses the spelling of a string enum, or gives its default when absent.
fn parsed<T: StringEnum>(text: Option<String>, default: T, what: &str, key: &KeyPath) -> Result<T> {
    match text {
        None => Ok(default),
        Some(text) => T::parse_str(&text).ok_or_else(|| {
            Invalid::new(
                key.clone(),
                format!("unknown {what} `{text}`; valid: {}", T::valid_list()),
            )
        }),
    }
}

/// A percentage such as `3%`, as a fraction; `max` bounds the percentage.
fn percentage(v: &Value, key: &KeyPath, max: f64) -> Result<f64> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        other => {
            return Err(Invalid::new(
                key.clone(),
                format!("write a percentage such as `3%`, found {}", describe(other)),
            ))
        }
    };
    let pct = text
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|p| p.is_finite() && *p >= 0.0 && *p < max)
        .ok_or_else(|| {
            Invalid::new(
                key.clone(),
                format!("`{text}` is not a percentage; write e.g. `3%` (0% to {max}%)"),
            )
        })?;
    Ok(pct / 100.0)
}

pub(super) fn key_name(k: &Value, parent: &KeyPath) -> Result<String> {
    match k {
        Value::String(s) => Ok(s.clone()),
        other => Err(Invalid::new(
            parent.clone(),
            format!("keys must be names, found {}", describe(other)),
        )),
    }
}

pub(super) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

pub(super) fn scalar(v: &Value, key: &KeyPath) -> Result<ParamValue> {
    match v {
        Value::Bool(b) => Ok(ParamValue::Bool(*b)),
        Value::Number(n) => Ok(match n.as_i64() {
            Some(i) => ParamValue::Int(i),
            None => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Ok(ParamValue::Str(s.clone())),
        other => Err(Invalid::new(
            key.clone(),
            format!(
                "expected a number, string or boolean, found {}",
                describe(other)
            ),
        )),
    }
}

/// Checks one value of a typed axis (`precision`, `compile`) wherever it appears.
fn phases(raw: Option<Vec<String>>, backend: BackendKind, key: &KeyPath) -> Result<Vec<Phase>> {
    let Some(raw) = raw else {
        return Ok(defaults::PHASES.to_vec());
    };
    if raw.is_empty() {
        return Err(Invalid::new(
            key.clone(),
            format!("no phases; give at least one of: {}", Phase::valid()),
        ));
    }
    let mut phases = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let phase = Phase::parse(text).ok_or_else(|| {
            Invalid::new(
                key.index(i),
                format!("unknown phase `{text}`; valid: {}", Phase::valid()),
            )
        })?;
        if phases.contains(&phase) {
            return Err(Invalid::new(
                key.index(i),
                format!("phase `{text}` is listed twice"),
            ));
        }
        if backend == BackendKind::Command && phase != Phase::Forward {
            return Err(Invalid::new(
                key.index(i),
                format!("the command backend times the whole command, so it has no phase `{phase}`; leave `phases` out"),
            ));
        }
        if !backend.phases().contains(&phase) {
            let valid: Vec<_> = backend.phases().iter().map(|p| p.as_str()).collect();
            return Err(Invalid::new(
                key.index(i),
                format!(
                    "the {backend} backend cannot time phase `{phase}` (it times: {}); use `backend: python` for backward and step",
                    valid.join(", ")
                ),
            ));
        }
        phases.push(phase);
    }
    Ok(phases)
}

fn compare(raw: RawCompare, key: &KeyPath) -> Result<CompareConfig> {
    let threshold = match raw.threshold {
        None => defaults::THRESHOLD,
        Some(v) => percentage(&v, &key.key("threshold"), 1000.0)?,
    };
    let alpha = raw.alpha.unwrap_or(defaults::ALPHA);
    if !(alpha > 0.0 && alpha <= 0.5) {
        return Err(Invalid::new(
            key.key("alpha"),
            format!(
                "alpha {alpha} is out of range; use a significance level in (0, 0.5], e.g. 0.01"
            ),
        ));
    }
    Ok(CompareConfig { threshold, alpha })
}

fn compile_options(
    raw: Option<RawCompileOptions>,
    backend: BackendKind,
    key: &KeyPath,
) -> Result<CompileOptions> {
    let Some(raw) = raw else {
        return Ok(CompileOptions::default());
    };
    if backend == BackendKind::Native {
        return Err(Invalid::new(
            key.clone(),
            "the native backend runs eager only; compile_options apply to `backend: python`",
        ));
    }
    let defaults = CompileOptions::default();
    let backend_name = raw.backend.unwrap_or(defaults.backend);
    let valid_backend = !backend_name.is_empty()
        && backend_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_backend {
        return Err(Invalid::new(
            key.key("backend"),
            format!("`{backend_name}` is not a torch.compile backend name (e.g. inductor, aot_eager, eager)"),
        ));
    }
    let skey = key.key("scope");
    let scope_hint = "write `model` (the whole model), `blocks` (each block of every nn.ModuleList) or a list of submodule or function names such as `[rope, split_qkv]`";
    let scope = match raw.scope {
        None => CompileScope::Model,
        Some(Value::String(s)) if s == "model" => CompileScope::Model,
        Some(Value::String(s)) if s == "blocks" => CompileScope::Blocks,
        Some(Value::Sequence(items)) => {
            if items.is_empty() {
                return Err(Invalid::new(
                    skey,
                    format!("the list of names is empty; {scope_hint}"),
                ));
            }
            let mut names = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let ikey = skey.index(i);
                let Value::String(name) = item else {
                    return Err(Invalid::new(
                        ikey,
                        format!("expected a name, found {}", describe(item)),
                    ));
                };
                let valid = name.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                if !valid {
                    return Err(Invalid::new(
                        ikey,
                        format!("`{name}` is not a dotted attribute path; {scope_hint}"),
                    ));
                }
                if names.contains(name) {
                    return Err(Invalid::new(ikey, format!("`{name}` is listed twice")));
                }
                names.push(name.clone());
            }
            CompileScope::Names(names)
        }
        Some(other) => {
            let found = match &other {
                Value::String(s) => format!("`{s}`"),
                v => describe(v).to_string(),
            };
            return Err(Invalid::new(
                skey,
                format!("unknown scope {found}; {scope_hint}"),
            ));
        }
    };
    Ok(CompileOptions {
        fullgraph: raw.fullgraph.unwrap_or(defaults.fullgraph),
        dynamic: raw.dynamic,
        backend: backend_name,
        scope,
        cache: parsed(
            raw.cache,
            defaults.cache,
            "compile cache",
            &key.key("cache"),
        )?,
    })
}

fn accuracy(raw: Option<RawAccuracy>, key: &KeyPath) -> Result<AccuracyConfig> {
    let Some(raw) = raw else {
        return Ok(AccuracyConfig::default());
    };
    for (name, value) in [("rtol", raw.rtol), ("atol", raw.atol), ("rmse", raw.rmse)] {
        if let Some(v) = value {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Invalid::new(
                    key.key(name),
                    format!("{name} {v} is not a tolerance; use a number of 0 or more, e.g. 1e-3"),
                ));
            }
        }
    }
    Ok(AccuracyConfig {
        check: raw.check.unwrap_or(true),
        rtol: raw.rtol,
        atol: raw.atol,
        rmse: raw.rmse,
    })
}

/// Renders the command for every case now, so an undefined `{{ name }}` is a
/// validation error rather than a failure halfway through a run.
fn check_command_template(model: &Model, cases: &[super::Case]) -> Result<()> {
    let Model::Command { template, .. } = model else {
        return Ok(());
    };
    let key = KeyPath::root().key("model").key("command");
    for case in cases {
        super::case::render_command(template, &case.params)
            .map_err(|message| Invalid::new(key.clone(), message))?;
    }
    Ok(())
}
