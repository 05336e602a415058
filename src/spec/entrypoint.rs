//! Checking that a pipeline's `model.entrypoint` exists before anything
//! runs: the file, and a top-level definition of the factory in it. The
//! file is read as text, never imported: validation must not run user code
//! nor need torch. Whatever a reading of the text cannot settle (a star
//! import, a module `__getattr__`, a package installed elsewhere) passes,
//! and the worker reports it at run time.

use std::path::Path;

use super::error::Invalid;
use super::{KeyPath, Model, Pipeline, SpecError};

/// What a reading of a Python file says about a top-level name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// Defined, assigned or imported at the top level.
    Yes,
    /// Not there; the names the file does define, for the message.
    No(Vec<String>),
    /// The file could make any name (`from x import *`, `__getattr__`).
    CannotTell,
}

/// How many defined names a "not found" message lists.
const LISTED_NAMES: usize = 12;

/// The first identifier at the start of `text`.
fn ident(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let name = &text[..end];
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

/// The names an import statement binds (`import a.b as c`, `from m import
/// (x, y as z)`); None for a star import.
fn imported(statement: &str) -> Option<Vec<String>> {
    let list = match statement.split_once(" import ") {
        Some((from, list)) if from.trim_start().starts_with("from ") => list,
        _ => statement.trim_start().strip_prefix("import ")?,
    };
    let list = list.replace(['(', ')', '\\'], " ");
    let mut names = Vec::new();
    for item in list.split(',') {
        let words: Vec<&str> = item.split_whitespace().collect();
        match words.as_slice() {
            ["*"] => return None,
            [.., "as", alias] => names.push(alias.to_string()),
            [name] => names.push(name.split('.').next().unwrap_or(name).to_string()),
            _ => {}
        }
    }
    Some(names)
}

/// Top-level statements whose indented bodies run at module level.
const BLOCKS: [&str; 9] = [
    "if ", "elif ", "else:", "try:", "except", "finally:", "with ", "for ", "while ",
];

/// Whether one statement binds `name`: defines, imports or assigns it.
fn binds(statement: &str, name: &str) -> bool {
    let statement = statement.strip_prefix("async ").unwrap_or(statement);
    for keyword in ["def ", "class "] {
        if let Some(rest) = statement.strip_prefix(keyword) {
            return ident(rest) == Some(name);
        }
    }
    if statement.starts_with("import ") || statement.starts_with("from ") {
        return imported(statement).is_none_or(|names| names.iter().any(|n| n == name));
    }
    let after = statement.get(name.len()..).unwrap_or("").trim_start();
    ident(statement) == Some(name)
        && (after.starts_with(':') || (after.starts_with('=') && !after.starts_with("==")))
}

/// Whether `source` binds `name` at its top level, by its lines that start
/// in column 0 (continuation lines of parenthesised imports included).
fn top_level(source: &str, name: &str) -> Found {
    let mut defined: Vec<String> = Vec::new();
    // Inside a top-level `if`/`try`/`with`… block, an indented binding of
    // the name binds it at module level too (`try: from x import build`).
    let (mut in_block, mut maybe) = (false, false);
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if line.starts_with(char::is_whitespace) {
            maybe |= in_block && binds(line.trim_start(), name);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        in_block = BLOCKS.iter().any(|k| line.starts_with(k));
        let mut statement = line.split('#').next().unwrap_or("").to_string();
        if statement.starts_with("import ") || statement.starts_with("from ") {
            while statement.contains('(') && !statement.contains(')') {
                let Some(next) = lines.next() else { break };
                statement.push(' ');
                statement.push_str(next.split('#').next().unwrap_or(""));
            }
            match imported(&statement) {
                Some(names) => defined.extend(names),
                None => return Found::CannotTell,
            }
            continue;
        }
        let rest = statement
            .strip_prefix("async def ")
            .or_else(|| statement.strip_prefix("def "))
            .or_else(|| statement.strip_prefix("class "));
        if let Some(n) = rest.and_then(ident) {
            defined.push(n.to_string());
            continue;
        }
        // Assignments: `name = …`, `name: T = …`, `a, name = …`.
        if let Some((targets, value)) = statement.split_once('=') {
            if !targets.ends_with(['=', '!', '<', '>']) && !value.starts_with('=') {
                for target in targets.split(',') {
                    let target = target.split(':').next().unwrap_or("").trim();
                    if ident(target) == Some(target) {
                        defined.push(target.to_string());
                    }
                }
            }
        }
    }
    if defined.iter().any(|d| d == name) {
        Found::Yes
    } else if maybe || defined.iter().any(|d| d == "__getattr__") {
        Found::CannotTell
    } else {
        Found::No(defined)
    }
}

impl Pipeline {
    /// The file of the entrypoint's module under `root`, if the model is an
    /// entrypoint and the file is there (a dotted module may be installed
    /// elsewhere instead).
    pub fn entrypoint_file(&self, root: &Path) -> Option<std::path::PathBuf> {
        let Model::Entrypoint { target, .. } = &self.model else {
            return None;
        };
        let (module, _) = target.rsplit_once(':')?;
        let candidates = if module.ends_with(".py") {
            vec![root.join(module)]
        } else {
            let base = root.join(module.replace('.', "/"));
            vec![base.with_extension("py"), base.join("__init__.py")]
        };
        candidates.into_iter().find(|f| f.is_file())
    }

    /// Checks that the entrypoint's file exists under `root` (the checkout
    /// the worker runs in) and defines the factory at its top level. A
    /// dotted module that is not a file under `root` may be installed, and
    /// passes.
    pub fn check_entrypoint(&self, root: &Path) -> Result<(), SpecError> {
        let Model::Entrypoint { target, .. } = &self.model else {
            return Ok(());
        };
        let (module, factory) = target
            .rsplit_once(':')
            .expect("validation checked the entrypoint's form");
        let Some(file) = self.entrypoint_file(root) else {
            if !module.ends_with(".py") {
                return Ok(()); // perhaps installed: the worker will tell
            }
            return Err(self.entrypoint_error(format!(
                "no file `{module}` in {}; the path is relative to the repository root",
                root.display().to_string().trim_end_matches('/')
            )));
        };
        let source = std::fs::read_to_string(&file)
            .map_err(|e| self.entrypoint_error(format!("cannot read `{}`: {e}", file.display())))?;
        match top_level(&source, factory) {
            Found::Yes | Found::CannotTell => Ok(()),
            Found::No(defined) => {
                let mut listed: Vec<&str> = defined
                    .iter()
                    .map(String::as_str)
                    .filter(|d| !d.starts_with('_'))
                    .collect();
                listed.dedup();
                listed.truncate(LISTED_NAMES);
                Err(self.entrypoint_error(format!(
                    "`{module}` has no top-level function `{factory}` (it defines: {}); write `def {factory}(params):` returning (module, example_inputs)",
                    if listed.is_empty() { "nothing".to_string() } else { listed.join(", ") }
                )))
            }
        }
    }

    /// An error at `model.entrypoint`, placed in the pipeline's file.
    fn entrypoint_error(&self, message: String) -> SpecError {
        let key = KeyPath::root().key("model").key("entrypoint");
        let src = std::fs::read_to_string(&self.source).unwrap_or_default();
        Invalid::new(key, message).into_spec_error(&src, self.doc, &self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_definitions_assignments_and_imports_count() {
        let src = "\"\"\"Doc.\"\"\"\nimport torch\nfrom torch import nn as tnn\nfrom .models import (\n    build_a,\n    other as build_b,\n)\n\nclass Net(tnn.Module):\n    def build_nested(self):\n        pass\n\ndef build(params):\n    return Net(), ()\n\nasync def build_async(p): ...\nbuild_c = build\nbuild_d: object = build\nx, build_e = 1, build\nif build == 1:\n    pass\n";
        for name in [
            "build",
            "build_a",
            "build_b",
            "build_c",
            "build_d",
            "build_e",
            "build_async",
            "torch",
            "tnn",
            "Net",
        ] {
            assert_eq!(top_level(src, name), Found::Yes, "{name}");
        }
        let Found::No(defined) = top_level(src, "build_nested") else {
            panic!("a method is not a top-level function")
        };
        assert!(defined.contains(&"build".to_string()), "{defined:?}");
        assert_eq!(top_level(src, "other"), top_level(src, "build_nested"));
    }

    #[test]
    fn a_factory_bound_inside_a_top_level_block_passes() {
        let src = "try:\n    from fast import build\nexcept ImportError:\n    def build(p):\n        return None\n";
        assert_eq!(top_level(src, "build"), Found::CannotTell);
        let src = "import torch\nif torch.cuda.is_available():\n    make = 1\nelse:\n    def make(p): ...\n";
        assert_eq!(top_level(src, "make"), Found::CannotTell);
        // A method is still not a module-level function.
        let Found::No(_) = top_level("class A:\n    def build(self): ...\n", "build") else {
            panic!("a method is not a top-level function")
        };
    }

    #[test]
    fn what_the_text_cannot_settle_passes() {
        assert_eq!(top_level("from m import *\n", "build"), Found::CannotTell);
        assert_eq!(
            top_level("def __getattr__(name):\n    pass\n", "build"),
            Found::CannotTell
        );
    }

    fn pipeline(dir: &Path, target: &str) -> Pipeline {
        let path = dir.join("p.yaml");
        let src = format!(
            "version: 1\nname: p\nmodel:\n  entrypoint: \"{target}\"\nrunner: {{backend: mock}}\n"
        );
        std::fs::write(&path, &src).unwrap();
        Pipeline::load(&path).unwrap().remove(0)
    }

    #[test]
    fn a_missing_file_or_factory_is_an_error_at_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        std::fs::write(
            dir.path().join("models/m.py"),
            "import torch\n\ndef make(params):\n    pass\n",
        )
        .unwrap();
        let err = pipeline(dir.path(), "models/nope.py:build")
            .check_entrypoint(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.yaml:4:15: model.entrypoint: no file `models/nope.py`"),
            "{err}"
        );
        let err = pipeline(dir.path(), "models/m.py:build")
            .check_entrypoint(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "`models/m.py` has no top-level function `build` (it defines: torch, make)"
            ),
            "{err}"
        );
        pipeline(dir.path(), "models/m.py:make")
            .check_entrypoint(dir.path())
            .unwrap();
        // A dotted module: checked when it is a file here, else left to the worker.
        let err = pipeline(dir.path(), "models.m:build")
            .check_entrypoint(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no top-level function `build`"), "{err}");
        pipeline(dir.path(), "installed.pkg:build")
            .check_entrypoint(dir.path())
            .unwrap();
    }
}
