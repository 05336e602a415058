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

/// Axes regress gives a meaning of its own (besides `include`/`exclude`).
const TYPED_AXES: [&str; 2] = ["precision", "compile"];

/// Edits (insertions, deletions, substitutions, swaps of neighbours) between
/// two names: the optimal string alignment distance.
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// Characters per edit a name may be off by and still count as a typo of
/// a known one: one edit in a short name, two in `precision`. More would
/// take real axis names (`patch` for `batch`) for typos.
const CHARS_PER_EDIT: usize = 4;

/// The known name `name` is most likely a typo of, if any: the same but for
/// case and `-`/`_`, or within one edit per `CHARS_PER_EDIT` characters.
pub(super) fn near_miss<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let plain = name.to_ascii_lowercase().replace('-', "_");
    known
        .iter()
        .filter(|k| **k != name)
        .map(|k| (edits(&plain, k), *k))
        .filter(|(d, k)| *d <= (k.len() / CHARS_PER_EDIT).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

pub(super) fn check_param_name(name: &str, model: &Model, key: &KeyPath) -> Result<()> {
    if TYPED_AXES.contains(&name) {
        return Ok(());
    }
    let reserved: Vec<&str> = TYPED_AXES.iter().chain(&MATRIX_RESERVED).copied().collect();
    if let Model::Builtin { name: builtin, .. } = model {
        if !builtin.params().contains(&name) {
            let known: Vec<&str> = builtin.params().iter().chain(&reserved).copied().collect();
            let hint =
                near_miss(name, &known).map_or(String::new(), |k| format!("did you mean `{k}`? "));
            return Err(Invalid::new(
                key.clone(),
                format!(
                    "`{name}` is not a parameter of built-in model {builtin}; {hint}valid: {}, precision, compile",
                    builtin.params().join(", ")
                ),
            ));
        }
    }
    if let Some(k) = near_miss(name, &reserved) {
        return Err(Invalid::new(
            key.clone(),
            format!(
                "did you mean `{k}`? `{name}` is so close to the reserved key `{k}` that it is taken for a typo, not a user axis; spell it `{k}`, or give the axis a name further from it (reserved: precision, compile, include, exclude)"
            ),
        ));
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

#[cfg(test)]
mod tests {
    use super::near_miss;
    use crate::spec::Pipeline;
    use std::path::Path;

    fn error(matrix: &str) -> String {
        let src = format!(
            "version: 1\nname: t\nmodel: {{entrypoint: \"m.py:build\"}}\nmatrix:\n{matrix}"
        );
        Pipeline::parse(&src, Path::new("t.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_near_miss_of_a_reserved_axis_is_an_error_that_names_it() {
        let err = error("  precison: [bf16]\n");
        assert!(
            err.starts_with("t.yaml:5:13: matrix.precison: did you mean `precision`?"),
            "{err}"
        );
        assert!(err.contains("did you mean `precision`?"), "{err}");
        for (typo, meant) in [
            ("percision", "precision"),
            ("Precision", "precision"),
            ("compiel", "compile"),
            ("compile-", "compile"),
            ("includes", "include"),
        ] {
            let err = error(&format!("  {typo}: [a]\n"));
            assert!(err.contains(&format!("did you mean `{meant}`?")), "{err}");
        }
        // In `include` entries too.
        let err = error("  batch: [1]\n  include:\n    - {batch: 2, compil: default}\n");
        assert!(
            err.contains("matrix.include[0].compil") && err.contains("did you mean `compile`?"),
            "{err}"
        );
        // Built-in models suggest among their own parameters as well.
        let src = "version: 1\nname: t\nmodel: {builtin: mlp}\nmatrix: {batchh: [1]}\n";
        let err = Pipeline::parse(src, Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `batch`?"), "{err}");
    }

    #[test]
    fn names_far_from_every_reserved_axis_are_user_axes() {
        for name in [
            "batch",
            "patch",
            "compiler_flags",
            "dtype",
            "seq_len",
            "mode",
        ] {
            assert_eq!(
                near_miss(name, &["precision", "compile", "include", "exclude"]),
                None,
                "{name}"
            );
        }
        let src = "version: 1\nname: t\nmodel: {entrypoint: \"m.py:build\"}\nmatrix: {patch: [16], precision: [bf16]}\n";
        assert!(Pipeline::parse(src, Path::new("t.yaml")).is_ok());
    }
}
