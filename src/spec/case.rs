//! Expanding a pipeline's matrix into cases, each with a stable id and a
//! readable label such as `attention[batch=8,seq_len=1024,bf16,eager]/forward`.

use serde::{Deserialize, Serialize};

use super::{BackendKind, CaseId, CompileMode, ParamValue, Phase, Pipeline, Precision};

/// The parameters of one case, in matrix order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params(pub Vec<(String, ParamValue)>);

impl Params {
    /// The value of a parameter, if the case has it.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn set(&mut self, name: &str, value: ParamValue) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    /// Parameters sorted by name: the canonical form that ids are hashed from.
    fn canonical(&self) -> String {
        let mut sorted: Vec<_> = self.0.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        serde_json::to_string(&sorted).expect("params serialise")
    }
}

impl Serialize for Params {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let mut params = Vec::with_capacity(map.len());
        for (k, v) in map {
            let value = ParamValue::deserialize(v).map_err(serde::de::Error::custom)?;
            params.push((k, value));
        }
        Ok(Params(params))
    }
}

/// One thing to measure: a point of the matrix and a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub id: CaseId,
    pub label: String,
    pub params: Params,
    pub precision: Option<Precision>,
    pub compile: Option<CompileMode>,
    pub phase: Phase,
    /// A command's case: the whole command is timed, so its label names no
    /// phase.
    #[serde(skip)]
    pub whole_command: bool,
}

impl Case {
    /// The label with the compile mode left out: cases that differ only in
    /// compile mode share it, which is how eager and compiled are paired.
    pub fn group_label(&self, model_name: &str) -> String {
        let phase = (!self.whole_command).then_some(self.phase);
        label(model_name, &self.params, phase, true)
    }
}

/// `model[k=v,...,precision,compile]/phase`: shape parameters in matrix
/// order, then precision and compile mode as bare words, as people write
/// them; a command's case has no `/phase`.
fn label(model_name: &str, params: &Params, phase: Option<Phase>, without_compile: bool) -> String {
    let mut parts: Vec<String> = params
        .0
        .iter()
        .filter(|(k, _)| k != "precision" && k != "compile")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let typed: &[&str] = if without_compile {
        &["precision"]
    } else {
        &["precision", "compile"]
    };
    parts.extend(
        typed
            .iter()
            .filter_map(|k| params.get(k))
            .map(|v| v.to_string()),
    );
    let phase = phase.map_or(String::new(), |p| format!("/{p}"));
    format!("{model_name}[{}]{phase}", parts.join(","))
}

fn matches(params: &Params, filter: &[(String, ParamValue)]) -> bool {
    filter.iter().all(|(k, v)| params.get(k) == Some(v))
}

pub(crate) fn expand(p: &Pipeline) -> Vec<Case> {
    // No axes: one point of defaults, unless `include` lists the points,
    // as a GitHub Actions matrix of only `include` does.
    let mut points: Vec<Params> = if p.matrix.axes.is_empty() && !p.matrix.include.is_empty() {
        Vec::new()
    } else {
        vec![Params::default()]
    };
    for (axis, values) in &p.matrix.axes {
        points = points
            .into_iter()
            .flat_map(|base| {
                values.iter().map(move |v| {
                    let mut next = base.clone();
                    next.set(axis, v.clone());
                    next
                })
            })
            .collect();
    }
    points.retain(|pt| !p.matrix.exclude.iter().any(|ex| matches(pt, ex)));
    // An included point inherits every axis that has a single value: such
    // an axis is a setting of the whole matrix (`batch: [8]`), and without
    // it the point would miss a parameter its model needs and pair with
    // no eager case.
    let single_valued: Params = Params(
        p.matrix
            .axes
            .iter()
            .filter(|(_, values)| values.len() == 1)
            .map(|(axis, values)| (axis.clone(), values[0].clone()))
            .collect(),
    );
    for inc in &p.matrix.include {
        let mut extra = single_valued.clone();
        for (k, v) in inc {
            extra.set(k, v.clone());
        }
        points.push(extra);
    }
    let torch_backend = matches!(
        p.runner.backend,
        BackendKind::Python | BackendKind::Native | BackendKind::Mock
    );
    let model_json = serde_json::to_string(&p.model).expect("models serialise");
    let model_name = p.model.label_name(&p.name).to_string();
    let whole_command = p.runner.backend == BackendKind::Command;
    let mut seen = std::collections::HashSet::new();
    let mut cases = Vec::new();
    for mut params in points {
        if torch_backend {
            if params.get("precision").is_none() {
                params.set("precision", ParamValue::Str("fp32".into()));
            }
            if params.get("compile").is_none() {
                params.set("compile", ParamValue::Str("eager".into()));
            }
        }
        let text = |name: &str| match params.get(name) {
            Some(ParamValue::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let precision = text("precision").and_then(|s| Precision::parse(&s));
        let compile = text("compile").and_then(|s| CompileMode::parse(&s));
        for &phase in &p.phases {
            let key = format!(
                "{}\u{0}{}\u{0}{}\u{0}{}",
                p.name,
                model_json,
                params.canonical(),
                phase
            );
            let id = CaseId::of(&key);
            if !seen.insert(id.clone()) {
                continue; // an `include` that repeats a matrix point
            }
            cases.push(Case {
                id,
                label: label(
                    &model_name,
                    &params,
                    (!whole_command).then_some(phase),
                    false,
                ),
                params: params.clone(),
                precision,
                compile,
                phase,
                whole_command,
            });
        }
    }
    cases
}

/// Substitutes a case's parameters into a command template; an undefined
/// name is an error naming it and the parameters that exist.
pub fn render_command(template: &str, params: &Params) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let ctx: serde_json::Map<String, serde_json::Value> = params
        .0
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::to_value(v).expect("params serialise"),
            )
        })
        .collect();
    env.render_str(template, minijinja::value::Serde(ctx))
        .map_err(|e| {
            let names: Vec<_> = params.0.iter().map(|(k, _)| k.as_str()).collect();
            format!(
                "cannot substitute the case's parameters: {}; parameters: {}",
                e,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })
}
