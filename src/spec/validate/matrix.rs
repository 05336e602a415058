//! Validating `matrix:`: axes, typed values of the reserved axes, and
//! `include`/`exclude` entries that name existing axes and values.

use super::*;

/// Matrix keys that are not axes.
const MATRIX_RESERVED: [&str; 2] = ["include", "exclude"];

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

pub(super) fn check_param_name(name: &str, model: &Model, key: &KeyPath) -> Result<()> {
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

pub(super) fn matrix(
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
