//! `regress validate`: one clear error per mistake, with file:line:column,
//! the key and what would be valid; exit 2. A valid file exits 0.

use crate::common::{output, Repo};

const VALID: &str = "version: 1
name: demo
model:
  builtin: mlp
  args: {dim: 64}
runner:
  backend: python
  warmup: {min_iters: 5, min_time: 100ms}
  measure: {min_iters: 10, min_time: 1s, max_time: 10s}
  timeout: 10m
matrix:
  batch: [1, 8]
  precision: [fp32, bf16]
  compile: [eager, default]
  exclude:
    - {batch: 1, compile: default}
compare: {threshold: 3%, alpha: 0.01}
";

fn validate(yaml: &str) -> (i32, String) {
    validate_with(yaml, &[])
}

/// Validates `yaml` in a repository that also holds `files` (path, text).
fn validate_with(yaml: &str, files: &[(&str, &str)]) -> (i32, String) {
    let repo = Repo::new();
    repo.write("p.yaml", yaml);
    for (path, text) in files {
        repo.write(path, text);
    }
    let (code, stdout, stderr) = output(repo.regress().args(["validate", "p.yaml"]));
    (code, format!("{stdout}{stderr}"))
}

fn mistake(from: &str, to: &str) -> String {
    assert!(
        VALID.contains(from),
        "{from:?} is not in the valid pipeline"
    );
    let (code, text) = validate(&VALID.replacen(from, to, 1));
    assert_eq!(code, 2, "expected exit 2 for {to:?}, got {code}: {text}");
    assert_eq!(text.lines().count(), 1, "one error line expected: {text}");
    text
}

#[test]
fn valid_pipeline_exits_zero() {
    let (code, text) = validate(VALID);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text, "ok: p.yaml (demo, 6 cases)\n");
}

#[test]
fn unknown_key() {
    insta::assert_snapshot!(mistake("  timeout: 10m", "  timout: 10m"));
}

#[test]
fn unknown_top_level_key() {
    insta::assert_snapshot!(mistake("compare:", "comparison:"));
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(mistake("min_iters: 5,", "min_iters: five,"));
}

#[test]
fn empty_axis() {
    insta::assert_snapshot!(mistake("batch: [1, 8]", "batch: []"));
}

#[test]
fn unknown_builtin_model() {
    insta::assert_snapshot!(mistake("builtin: mlp", "builtin: resnet"));
}

#[test]
fn unknown_precision() {
    insta::assert_snapshot!(mistake("[fp32, bf16]", "[fp32, fp64]"));
}

#[test]
fn unknown_compile_mode() {
    insta::assert_snapshot!(mistake("[eager, default]", "[eager, max_autotune]"));
}

#[test]
fn bad_duration() {
    insta::assert_snapshot!(mistake("timeout: 10m", "timeout: 10 minutes"));
}

#[test]
fn bad_duration_without_unit() {
    insta::assert_snapshot!(mistake("min_time: 100ms", "min_time: 100"));
}

#[test]
fn compile_mode_the_backend_cannot_run() {
    insta::assert_snapshot!(mistake("backend: python", "backend: native"));
}

#[test]
fn unknown_model_parameter() {
    insta::assert_snapshot!(mistake("args: {dim: 64}", "args: {dims: 64}"));
}

#[test]
fn exclude_value_not_in_axis() {
    insta::assert_snapshot!(mistake(
        "{batch: 1, compile: default}",
        "{batch: 2, compile: default}"
    ));
}

#[test]
fn yaml_syntax_error() {
    insta::assert_snapshot!(mistake("batch: [1, 8]", "batch: [1, 8"));
}

#[test]
fn every_file_is_checked() {
    let repo = Repo::new();
    repo.write("good.yaml", VALID);
    repo.write(
        "bad.yaml",
        &VALID.replace("builtin: mlp", "builtin: resnet"),
    );
    let (code, stdout, stderr) =
        output(
            repo.regress()
                .args(["validate", "good.yaml", "bad.yaml", "missing.yaml"]),
        );
    assert_eq!(code, 2);
    assert!(stdout.contains("ok: good.yaml"));
    assert!(
        stderr.contains("bad.yaml:4:12: model.builtin: unknown built-in model `resnet`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing.yaml: cannot read pipeline"),
        "{stderr}"
    );
}

#[test]
fn several_pipelines_in_one_file() {
    let two = format!("{VALID}---\n{VALID}");
    let (code, text) = validate(&two);
    assert_eq!(code, 2);
    assert!(
        text.contains("p.yaml:20:7: name: pipeline name `demo` is used twice"),
        "{text}"
    );
    let (code, text) = validate(&format!(
        "{VALID}---\n{}",
        VALID.replace("name: demo", "name: other")
    ));
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn unknown_compile_scope() {
    insta::assert_snapshot!(mistake(
        "compare:",
        "compile_options: {scope: everything}\ncompare:"
    ));
}

#[test]
fn malformed_entrypoint() {
    insta::assert_snapshot!(mistake(
        "  builtin: mlp\n  args: {dim: 64}",
        "  entrypoint: models/rd.py"
    ));
}

#[test]
fn phase_the_backend_cannot_time() {
    // The native backend also cannot compile: keep only eager in the matrix.
    let yaml = VALID
        .replace("  backend: python", "  backend: native")
        .replace("  compile: [eager, default]\n", "")
        .replace(
            "    - {batch: 1, compile: default}",
            "    - {batch: 1, precision: bf16}",
        )
        .replace("compare:", "phases: [forward, step]\ncompare:");
    let (code, text) = validate(&yaml);
    assert_eq!(code, 2, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn unknown_l2_policy() {
    insta::assert_snapshot!(mistake("  timeout: 10m", "  timeout: 10m\n  l2: hot"));
}

#[test]
fn seed_style_pipeline_is_valid() {
    let yaml = VALID
        .replace(
            "  builtin: mlp\n  args: {dim: 64}",
            "  entrypoint: models/rd.py:build\n  args: {embed_dim: 512, steps: 4}",
        )
        .replace(
            "  timeout: 10m",
            "  timeout: 10m\n  l2: cold\n  cast: autocast\n  fp8: torchao",
        )
        .replace(
            "compare:",
            "phases: [forward, backward, step]\ncompile_options: {fullgraph: true, dynamic: false, scope: [rope, attn.split_qkv], cache: warm}\naccuracy: {rtol: 0.02, rmse: 0.05}\ncompare:",
        );
    let (code, text) = validate_with(&yaml, &[("models/rd.py", "def build(params):\n    ...\n")]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text, "ok: p.yaml (demo, 18 cases)\n");
}

#[test]
fn entrypoint_file_and_factory_must_exist() {
    let yaml = VALID.replace(
        "  builtin: mlp\n  args: {dim: 64}",
        "  entrypoint: models/rd.py:build",
    );
    let (code, text) = validate(&yaml);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.starts_with("error: p.yaml:4:15: model.entrypoint: no file `models/rd.py`"),
        "{text}"
    );
    let (code, text) = validate_with(
        &yaml,
        &[("models/rd.py", "import torch\n\nclass Net(torch.nn.Module):\n    def build(self):\n        pass\n\ndef make(params):\n    return Net(), ()\n")],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("model.entrypoint: `models/rd.py` has no top-level function `build` (it defines: torch, Net, make)"),
        "{text}"
    );
}
