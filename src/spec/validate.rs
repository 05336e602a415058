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
    CompileMode, CompileOptions, CompileScope, DeviceChoice, Matrix, Measure, Model, ParamValue,
    Phase, Pipeline, Precision, RunnerConfig, StringEnum, Warmup, DURATION_HINT, PIPELINE_VERSION,
};

type Result<T> = std::result::Result<T, Invalid>;

/// Longest pipeline name: it becomes a directory name in the store.
const MAX_NAME_LEN: usize = 64;

/// Matrix keys that are not axes.
const MATRIX_RESERVED: [&str; 2] = ["include", "exclude"];

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
    let backend = match raw.backend {
        None => defaults::BACKEND,
        Some(text) => BackendKind::parse(&text).ok_or_else(|| {
            Invalid::new(
                key.key("backend"),
                format!("unknown backend `{text}`; valid: {}", BackendKind::valid()),
            )
        })?,
    };
    let device = match raw.device {
        None => defaults::DEVICE,
        Some(text) => DeviceChoice::parse(&text).ok_or_else(|| {
            Invalid::new(
                key.key("device"),
                format!("unknown device `{text}`; valid: {}", DeviceChoice::valid()),
            )
        })?,
    };
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

fn model(raw: RawModel, backend: BackendKind, key: &KeyPath) -> Result<Model> {
    let given = [
        raw.builtin.is_some(),
        raw.entrypoint.is_some(),
        raw.command.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        let second = if raw.command.is_some() {
            "command"
        } else {
            "entrypoint"
        };
        return Err(Invalid::new(
            key.key(second),
            "give one of `builtin`, `entrypoint` or `command`, not several",
        ));
    }
    if raw.output.is_some() && raw.command.is_none() {
        return Err(Invalid::new(
            key.key("output"),
            "`output` says what a `command` model prints; built-in and entrypoint models are measured by regress",
        ));
    }
    if let Some(target) = raw.entrypoint {
        return entrypoint(target, raw.args, backend, key);
    }
    match (raw.builtin, raw.command) {
        (Some(_), Some(_)) => unreachable!("checked above"),
        (None, None) => Err(Invalid::new(
            key.clone(),
            format!(
                "no model: add `builtin: <name>` (one of {}), `entrypoint: \"models/file.py:factory\"` or `command: \"...\"`",
                BuiltinModel::valid()
            ),
        )),
        (None, Some(template)) => {
            if backend != BackendKind::Command {
                return Err(Invalid::new(
                    key.key("command"),
                    format!(
                        "a command model needs `runner.backend: command` (the backend is `{backend}`)"
                    ),
                ));
            }
            if let Some(_args) = raw.args {
                return Err(Invalid::new(
                    key.key("args"),
                    "a command model takes no args: put parameters in the matrix and write `{{ name }}` in the command",
                ));
            }
            if template.trim().is_empty() {
                return Err(Invalid::new(key.key("command"), "the command is empty"));
            }
            let output = parsed(
                raw.output,
                CommandOutput::Time,
                "command output",
                &key.key("output"),
            )?;
            Ok(Model::Command { template, output })
        }
        (Some(name), None) => {
            let bkey = key.key("builtin");
            let builtin = BuiltinModel::parse(&name).ok_or_else(|| {
                Invalid::new(
                    bkey.clone(),
                    format!(
                        "unknown built-in model `{name}`; valid: {}",
                        BuiltinModel::valid()
                    ),
                )
            })?;
            if backend == BackendKind::Command {
                return Err(Invalid::new(
                    bkey,
                    "the command backend runs `model.command`, not a built-in model; use `backend: python` or `native`",
                ));
            }
            if !backend.builtins().contains(&builtin) {
                let available: Vec<_> = backend.builtins().iter().map(|b| b.as_str()).collect();
                return Err(Invalid::new(
                    bkey,
                    format!(
                        "built-in model `{builtin}` is not available on the {backend} backend (available: {}); use `backend: python`",
                        available.join(", ")
                    ),
                ));
            }
            let mut args = BTreeMap::new();
            let akey = key.key("args");
            for (k, v) in raw.args.unwrap_or_default() {
                let name = key_name(&k, &akey)?;
                let vkey = akey.key(&name);
                if !builtin.params().contains(&name.as_str()) {
                    return Err(Invalid::new(
                        vkey,
                        format!(
                            "`{name}` is not a parameter of built-in model {builtin}; valid: {}",
                            builtin.params().join(", ")
                        ),
                    ));
                }
                args.insert(name, scalar(&v, &vkey)?);
            }
            Ok(Model::Builtin {
                name: builtin,
                args,
            })
        }
    }
}

/// `path/to/file.py:factory` or `package.module:factory`.
fn entrypoint(
    target: String,
    raw_args: Option<Mapping>,
    backend: BackendKind,
    key: &KeyPath,
) -> Result<Model> {
    let ekey = key.key("entrypoint");
    if !matches!(backend, BackendKind::Python | BackendKind::Mock) {
        return Err(Invalid::new(
            ekey,
            format!("an entrypoint model is Python: it needs `runner.backend: python` (the backend is `{backend}`)"),
        ));
    }
    let valid_ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    let well_formed = match target.rsplit_once(':') {
        Some((module, factory)) => {
            let module_ok = if module.ends_with(".py") {
                !module.trim().is_empty()
            } else {
                module.split('.').all(valid_ident)
            };
            module_ok && valid_ident(factory)
        }
        None => false,
    };
    if !well_formed {
        return Err(Invalid::new(
            ekey,
            format!("`{target}` is not an entrypoint; write `path/to/file.py:factory` (relative to the repository root) or `package.module:factory`, where factory(params) returns (module, example_inputs)"),
        ));
    }
    let mut args = BTreeMap::new();
    let akey = key.key("args");
    for (k, v) in raw_args.unwrap_or_default() {
        let name = key_name(&k, &akey)?;
        let vkey = akey.key(&name);
        args.insert(name, scalar(&v, &vkey)?);
    }
    Ok(Model::Entrypoint { target, args })
}

fn key_name(k: &Value, parent: &KeyPath) -> Result<String> {
    match k {
        Value::String(s) => Ok(s.clone()),
        other => Err(Invalid::new(
            parent.clone(),
            format!("keys must be names, found {}", describe(other)),
        )),
    }
}

fn describe(v: &Value) -> &'static str {
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

fn scalar(v: &Value, key: &KeyPath) -> Result<ParamValue> {
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
fn typed_value(axis: &str, value: &ParamValue, backend: BackendKind, key: &KeyPath) -> Result<()> {
    if axis != "precision" && axis != "compile" {
        return Ok(());
    }
    let text = match value {
        ParamValue::Str(s) => s.as_str(),
        other => {
            return Err(Invalid::new(
                key.clone(),
                format!("`{other}` is not a {axis} name"),
            ))
        }
    };
    match axis {
        "precision" => {
            Precision::parse(text).ok_or_else(|| {
                Invalid::new(
                    key.clone(),
                    format!("unknown precision `{text}`; valid: {}", Precision::valid()),
                )
            })?;
        }
        "compile" => {
            let mode = CompileMode::parse(text).ok_or_else(|| {
                Invalid::new(
                    key.clone(),
                    format!(
                        "unknown compile mode `{text}`; valid: {}",
                        CompileMode::valid()
                    ),
                )
            })?;
            if !backend.compile_modes().contains(&mode) {
                let valid: Vec<_> = backend.compile_modes().iter().map(|m| m.as_str()).collect();
                return Err(Invalid::new(
                    key.clone(),
                    format!(
                        "the {backend} backend cannot run compile mode `{mode}` (it runs: {}); use `backend: python` for torch.compile",
                        valid.join(", ")
                    ),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_param_name(name: &str, model: &Model, key: &KeyPath) -> Result<()> {
    if name == "precision" || name == "compile" {
        return Ok(());
    }
    if let Model::Builtin { name: builtin, .. } = model {
        if !builtin.params().contains(&name) {
            return Err(Invalid::new(
                key.clone(),
                format!(
                    "`{name}` is not a parameter of built-in model {builtin}; valid: {}, precision, compile",
                    builtin.params().join(", ")
                ),
            ));
        }
    }
    let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    if !valid {
        return Err(Invalid::new(
            key.clone(),
            format!("`{name}` is not a valid axis name; use letters, digits and '_'"),
        ));
    }
    Ok(())
}

fn matrix(
    raw: Option<Mapping>,
    model: &Model,
    backend: BackendKind,
    key: &KeyPath,
) -> Result<Matrix> {
    let mut matrix = Matrix::default();
    let Some(raw) = raw else {
        return Ok(matrix);
    };
    for (k, v) in &raw {
        let name = key_name(k, key)?;
        let akey = key.key(&name);
        if MATRIX_RESERVED.contains(&name.as_str()) {
            continue;
        }
        check_param_name(&name, model, &akey)?;
        let Value::Sequence(items) = v else {
            return Err(Invalid::new(
                akey,
                format!(
                    "an axis is a list of values, e.g. `{name}: [1, 8]`; found {}",
                    describe(v)
                ),
            ));
        };
        if items.is_empty() {
            return Err(Invalid::new(
                akey,
                format!("axis `{name}` has no values; give at least one, e.g. `{name}: [1, 8]`"),
            ));
        }
        let mut values = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ikey = akey.index(i);
            let value = scalar(item, &ikey)?;
            typed_value(&name, &value, backend, &ikey)?;
            if values.contains(&value) {
                return Err(Invalid::new(
                    ikey,
                    format!("`{value}` appears twice in axis `{name}`"),
                ));
            }
            values.push(value);
        }
        matrix.axes.push((name, values));
    }
    for reserved in MATRIX_RESERVED {
        let Some(v) = raw.get(reserved) else { continue };
        let rkey = key.key(reserved);
        let Value::Sequence(entries) = v else {
            return Err(Invalid::new(
                rkey,
                format!(
                    "`{reserved}` is a list of combinations, e.g. `- {{batch: 1, precision: bf16}}`"
                ),
            ));
        };
        let mut combos = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let ekey = rkey.index(i);
            let Value::Mapping(map) = entry else {
                return Err(Invalid::new(
                    ekey,
                    format!(
                        "each `{reserved}` entry is a map of axis to value, found {}",
                        describe(entry)
                    ),
                ));
            };
            if map.is_empty() {
                return Err(Invalid::new(ekey, format!("empty `{reserved}` entry")));
            }
            let mut combo = Vec::new();
            for (k, v) in map {
                let name = key_name(k, &ekey)?;
                let vkey = ekey.key(&name);
                let value = scalar(v, &vkey)?;
                typed_value(&name, &value, backend, &vkey)?;
                if reserved == "exclude" {
                    let Some((_, values)) = matrix.axes.iter().find(|(a, _)| *a == name) else {
                        let axes: Vec<_> = matrix.axes.iter().map(|(a, _)| a.as_str()).collect();
                        return Err(Invalid::new(
                            vkey,
                            format!(
                                "`{name}` is not a matrix axis, so excluding it matches nothing (axes: {})",
                                if axes.is_empty() { "none".to_string() } else { axes.join(", ") }
                            ),
                        ));
                    };
                    if !values.contains(&value) {
                        let listed: Vec<_> = values.iter().map(|v| v.to_string()).collect();
                        return Err(Invalid::new(
                            vkey,
                            format!(
                                "`{value}` is not a value of axis `{name}`, so this exclude matches nothing (values: {})",
                                listed.join(", ")
                            ),
                        ));
                    }
                } else {
                    check_param_name(&name, model, &vkey)?;
                }
                combo.push((name, value));
            }
            combos.push(combo);
        }
        if reserved == "include" {
            matrix.include = combos;
        } else {
            matrix.exclude = combos;
        }
    }
    Ok(matrix)
}

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
