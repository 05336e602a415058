//! Validating `model:`: exactly one of a built-in, an entrypoint or a
//! command, with arguments the model accepts.

use super::*;

pub(super) fn model(raw: RawModel, backend: BackendKind, key: &KeyPath) -> Result<Model> {
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
