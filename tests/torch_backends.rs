//! The python (torch.compile) and native (tch) backends end to end. These
//! need torch: `make test` provides it through REGRESS_PYTHON; without a
//! Python that has torch they say so and return.

use crate::common::{output, python_or_skip, Repo};
use regress::record::{metric, CaseStatus, RunState};

const PYTHON_PIPELINE: &str = "version: 1
name: tiny
model:
  builtin: mlp
  args: {dim: 32, hidden: 64}
runner:
  backend: python
  device: cpu
  processes: 1
  warmup: {min_iters: 5, min_time: 10ms}
  measure: {min_iters: 20, min_time: 50ms, max_time: 5s}
  timeout: 5m
matrix:
  batch: [4]
  precision: [fp32, bf16, fp8]
  compile: [eager, default]
  exclude:
    - {precision: bf16, compile: default}
    - {precision: fp8, compile: default}
compare: {threshold: 50%, alpha: 0.01}
";

#[test]
fn python_backend_runs_stores_and_compares() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    repo.write("p.yaml", PYTHON_PIPELINE);
    repo.commit("base");
    let run = |repo: &Repo| {
        let (code, stdout, stderr) = output(
            repo.regress()
                .args(["run", "p.yaml"])
                .env("REGRESS_PYTHON", &python),
        );
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        stdout
    };
    let stdout = run(&repo);
    assert!(
        stdout.contains("mlp[batch=4,fp32,default]/forward"),
        "{stdout}"
    );
    assert!(stdout.contains("fp8 needs a CUDA GPU"), "{stdout}");

    let files = repo.record_files();
    assert_eq!(files.len(), 1);
    let record = regress::store::read_record(&files[0]).unwrap();
    assert_eq!(record.state, RunState::Complete);
    assert!(
        record
            .machine
            .software
            .torch
            .as_deref()
            .unwrap_or("")
            .starts_with("2."),
        "{:?}",
        record.machine
    );
    let by_label = |l: &str| record.cases.iter().find(|c| c.label == l).unwrap();
    let compiled = by_label("mlp[batch=4,fp32,default]/forward");
    assert_eq!(compiled.status, CaseStatus::Ok, "{:?}", compiled.reason);
    assert!(compiled.metrics[metric::LATENCY].processes[0].n >= 20);
    let compile_time = compiled.metrics[metric::COMPILE_TIME].processes[0].min;
    let latency = compiled.metrics[metric::LATENCY].pooled();
    let median = regress::stats::Summary::of(&latency).unwrap().median;
    assert!(
        compile_time > 10.0 * median,
        "compile time {compile_time} should dwarf a steady-state call {median}"
    );
    let eager = by_label("mlp[batch=4,fp32,eager]/forward");
    assert!(
        !eager.metrics.contains_key(metric::COMPILE_TIME),
        "eager has no compile time"
    );
    assert_eq!(
        by_label("mlp[batch=4,fp8,eager]/forward").status,
        CaseStatus::Skipped
    );

    repo.write("README", "change\n");
    repo.commit("head");
    run(&repo);
    let (code, stdout, stderr) = output(repo.regress().args(["compare", "HEAD~1", "HEAD"]));
    assert_eq!(code, 0, "{stderr}");
    for label in [
        "mlp[batch=4,fp32,eager]/forward",
        "mlp[batch=4,fp32,default]/forward",
    ] {
        assert!(stdout.contains(label), "{stdout}");
    }
    assert!(stdout.contains("eager vs compiled"), "{stdout}");
    assert!(stdout.contains("1 skipped"), "{stdout}");
}

#[test]
fn python_without_torch_says_how_to_fix_it() {
    let repo = Repo::new();
    // An interpreter that cannot see site-packages, hence no torch.
    let wrapper = repo.write_executable("nopy/python", "#!/bin/sh\nexec python3 -S \"$@\"\n");
    repo.write("p.yaml", PYTHON_PIPELINE);
    repo.commit("c");
    let (code, _, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &wrapper),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("has no torch"), "{stderr}");
    assert!(stderr.contains("pip install torch==2.11.0"), "{stderr}");
    assert!(
        repo.record_files().is_empty(),
        "nothing is stored when the backend cannot start"
    );
}

#[test]
fn python_worker_crash_fails_the_case_and_the_run_goes_on() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    // A python that aborts on fp16 requests and runs the worker otherwise.
    let wrapper = repo.write_executable(
        "crashy/python",
        &format!(
            "#!/bin/sh\nread -r line\ncase \"$line\" in *'\"fp16\"'*) kill -SEGV $$ ;; esac\nprintf '%s\\n' \"$line\" | exec {} \"$@\"\n",
            python.display()
        ),
    );
    repo.write(
        "p.yaml",
        &PYTHON_PIPELINE.replace("[fp32, bf16, fp8]", "[fp32, fp16]").replace("compile: [eager, default]", "compile: [eager]").replace(
            "  exclude:\n    - {precision: bf16, compile: default}\n    - {precision: fp8, compile: default}\n",
            "",
        ),
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &wrapper),
    );
    assert_eq!(code, 1, "a crashed case fails the run:\n{stdout}{stderr}");
    let line = |l: &str| stdout.lines().find(|x| x.contains(l)).unwrap().to_string();
    assert!(
        line("mlp[batch=4,fp16,eager]").contains("failed"),
        "{stdout}"
    );
    assert!(stdout.contains("killed by signal 11 (SIGSEGV)"), "{stdout}");
    assert!(line("mlp[batch=4,fp32,eager]").contains(" ok"), "{stdout}");
}

#[test]
fn native_backend_runs_the_mlp() {
    if !cfg!(feature = "native") {
        eprintln!("skipped: built without the `native` feature (libtorch)");
        return;
    }
    let repo = Repo::new();
    repo.write(
        "p.yaml",
        "version: 1\nname: nat\nmodel: {builtin: mlp, args: {dim: 32, hidden: 64}}\nrunner: {backend: native, device: cpu, processes: 2, measure: {min_iters: 20, min_time: 20ms, max_time: 1s}}\nmatrix: {batch: [2], precision: [fp32, bf16, fp8]}\n",
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(repo.regress().args(["run", "p.yaml"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let record = regress::store::read_record(&repo.record_files()[0]).unwrap();
    let fp32 = &record.cases[0];
    assert_eq!(fp32.status, CaseStatus::Ok, "{:?}", fp32.reason);
    assert_eq!(
        fp32.metrics[metric::LATENCY].processes.len(),
        2,
        "one sample list per process"
    );
    // Timed in blocks sized by the measured cost of what ends a block.
    let d = &fp32.diagnostics.maps()[0];
    assert!(d["batch"].as_u64() >= Some(1), "{d:?}");
    assert!(d["sync_s"].as_f64().is_some_and(|s| s > 0.0), "{d:?}");
    assert_eq!(
        record.cases[1].status,
        CaseStatus::Ok,
        "{:?}",
        record.cases[1].reason
    );
    assert_eq!(record.cases[2].status, CaseStatus::Skipped);
    if cfg!(feature = "native") {
        assert!(record
            .machine
            .software
            .torch
            .as_deref()
            .unwrap_or("")
            .starts_with("2."));
    }
}

/// A python wrapper that records its environment, sleeps when the request
/// asks for bf16, and otherwise runs the real worker.
fn spy_python(repo: &Repo, real: &std::path::Path) -> std::path::PathBuf {
    let wrapper = repo.write_executable(
        "spy/python",
        &format!(
            "#!/bin/sh\nenv > \"$(dirname \"$0\")/env.txt\"\nread -r line\ncase \"$line\" in *'\"bf16\"'*) sleep 300 ;; esac\n{{ printf '%s\\n' \"$line\"; cat; }} | exec {0} \"$@\"\n",
            real.display()
        ),
    );
    wrapper
}

#[test]
fn python_worker_gets_no_secrets_and_times_out_cleanly() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    let wrapper = spy_python(&repo, &python);
    repo.write(
        "p.yaml",
        &PYTHON_PIPELINE
            .replace("[fp32, bf16, fp8]", "[bf16, fp32]")
            .replace("compile: [eager, default]", "compile: [eager]")
            .replace("  exclude:\n    - {precision: bf16, compile: default}\n    - {precision: fp8, compile: default}\n", "")
            .replace("timeout: 5m", "timeout: 20s"),
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &wrapper)
            .env("GITHUB_TOKEN", "ghp_do_not_leak")
            .env("SOME_SECRET", "s3cr3t"),
    );
    assert_eq!(code, 1, "a timed-out case fails the run:\n{stdout}{stderr}");
    let line = |l: &str| stdout.lines().find(|x| x.contains(l)).unwrap().to_string();
    assert!(
        line("mlp[batch=4,bf16,eager]").contains("timeout"),
        "{stdout}"
    );
    assert!(line("mlp[batch=4,fp32,eager]").contains(" ok"), "{stdout}");
    let env = std::fs::read_to_string(repo.path().join("spy/env.txt")).unwrap();
    assert!(
        !env.contains("ghp_do_not_leak") && !env.contains("GITHUB_TOKEN"),
        "{env}"
    );
    assert!(!env.contains("s3cr3t"), "{env}");
    assert!(
        env.contains("PATH="),
        "the rest of the environment is kept: {env}"
    );
}

/// A user model (`model.entrypoint`) per kind of trouble, compiled.
const DIAGNOSTICS_PIPELINE: &str = "version: 1
name: diag
model:
  entrypoint: models/diag.py:build
runner:
  backend: python
  device: cpu
  processes: 1
  warmup: {min_iters: 3, min_time: 10ms}
  measure: {min_iters: 10, min_time: 20ms, max_time: 1s}
  timeout: 5m
matrix:
  kind: [abort, graph_break, recompile, wrong, recompile_limit]
  compile: [default]
  include:
    - {kind: nan, compile: eager}
";

#[test]
fn compiled_user_models_report_breaks_recompiles_accuracy_and_crashes() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    repo.write("p.yaml", DIAGNOSTICS_PIPELINE);
    repo.write("models/diag.py", include_str!("fixtures/models/diag.py"));
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &python),
    );
    assert_eq!(
        code, 1,
        "the aborting and wrong models fail the run:\n{stdout}{stderr}"
    );
    let record = regress::store::read_record(&repo.record_files()[0]).unwrap();
    let case = |kind: &str| {
        record
            .cases
            .iter()
            .find(|c| c.label == format!("diag[kind={kind},fp32,default]/forward"))
            .unwrap()
    };
    let count = |kind: &str, metric: &str| case(kind).metrics[metric].processes[0].min;
    let compile_report = |kind: &str| case(kind).diagnostics.maps()[0]["compile"].clone();

    let aborted = case("abort");
    assert_eq!(aborted.status, CaseStatus::Failed);
    let reason = aborted.reason.as_deref().unwrap_or("");
    assert!(reason.contains("SIGABRT"), "{reason}");

    let broken = case("graph_break");
    assert_eq!(broken.status, CaseStatus::Ok, "{:?}", broken.reason);
    assert!(count("graph_break", metric::GRAPH_BREAKS) >= 1.0);
    assert!(count("graph_break", metric::UNIQUE_GRAPHS) >= 2.0);
    let reasons = compile_report("graph_break")["graph_break_reasons"].to_string();
    assert!(reasons.to_lowercase().contains("graph break"), "{reasons}");
    assert!(
        reasons.contains("diag.py"),
        "the reason names the place: {reasons}"
    );
    assert_eq!(count("graph_break", metric::RECOMPILES), 0.0);

    let recompiled = case("recompile");
    assert_eq!(recompiled.status, CaseStatus::Ok, "{:?}", recompiled.reason);
    assert!(count("recompile", metric::RECOMPILES) >= 1.0);
    assert_eq!(count("recompile", metric::GRAPH_BREAKS), 0.0);
    let reasons = compile_report("recompile")["recompile_reasons"].to_string();
    assert!(
        reasons.contains("narrow"),
        "the guard that failed: {reasons}"
    );
    assert_eq!(
        recompiled.diagnostics.maps()[0]["dropped_compiling"],
        0,
        "the recompile happened in warm-up, not among the samples"
    );

    // Trouble with compilation is shown in the run's table, not only in the JSON.
    let limited = case("recompile_limit");
    assert_eq!(limited.status, CaseStatus::Ok, "{:?}", limited.reason);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("diag[kind=recompile_limit,fp32,default]"))
        .unwrap();
    assert!(row.contains(" ok* "), "{stdout}");
    assert!(
        stdout.contains("* diag[kind=recompile_limit,fp32,default]/forward: hit torch.compile's recompile limit (2) in 'forward'")
            && stdout.contains("fell back to eager"),
        "{stdout}"
    );
    assert!(
        stdout.contains("* diag[kind=graph_break,fp32,default]/forward: 1 graph break(s): "),
        "{stdout}"
    );

    let wrong = case("wrong");
    assert_eq!(wrong.status, CaseStatus::AccuracyFail);
    let reason = wrong.reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("max abs error") && reason.contains("relative RMSE"),
        "{reason}"
    );
    assert!(stdout.contains("accuracy_fail"), "{stdout}");
    // A failed case keeps what it found: the accuracy report, what compiled.
    let kept = &wrong.diagnostics.maps()[0];
    assert_eq!(kept["accuracy"]["passed"], false, "{kept:?}");
    assert_eq!(kept["device"], "cpu", "{kept:?}");
    assert!(
        kept["compile"]["unique_graphs"].as_u64() >= Some(1),
        "{kept:?}"
    );

    let nan = record
        .cases
        .iter()
        .find(|c| c.label == "diag[kind=nan,fp32,eager]/forward")
        .unwrap();
    assert_eq!(nan.status, CaseStatus::AccuracyFail);
    assert!(
        nan.reason.as_deref().unwrap_or("").contains("NaN or Inf"),
        "{:?}",
        nan.reason
    );
}

#[test]
fn warm_compile_cache_and_cold_l2() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    repo.write(
        "p.yaml",
        &PYTHON_PIPELINE
            .replace("[fp32, bf16, fp8]", "[fp32]")
            .replace("compile: [eager, default]", "compile: [default]")
            .replace(
                "  exclude:\n    - {precision: bf16, compile: default}\n    - {precision: fp8, compile: default}\n",
                "",
            )
            .replace("  timeout: 5m", "  timeout: 5m\n  l2: cold")
            .replace("compare:", "compile_options: {cache: warm}\ncompare:"),
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &python),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let record = regress::store::read_record(&repo.record_files()[0]).unwrap();
    let case = &record.cases[0];
    assert_eq!(case.status, CaseStatus::Ok, "{:?}", case.reason);
    let d = &case.diagnostics.maps()[0];
    assert!(
        d["compile"]["fx_graph_cache_hits"].as_u64().unwrap() >= 1,
        "the timed compile hit the cache the first one filled: {d:?}"
    );
    assert!(d["l2_flush_bytes"].as_u64().unwrap() >= 1 << 20, "{d:?}");
    assert_eq!(d["batch"], 1, "a flushed iteration is timed alone");
}

#[test]
fn phases_and_the_accuracy_gate_on_the_zoo() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    repo.write(
        "p.yaml",
        "version: 1
name: lm
model:
  builtin: transformer_lm
  args: {vocab: 64, dim: 32, heads: 2, layers: 2, seq_len: 16}
runner:
  backend: python
  device: cpu
  processes: 1
  warmup: {min_iters: 2, min_time: 10ms}
  measure: {min_iters: 10, min_time: 20ms, max_time: 1s}
matrix:
  batch: [2]
  precision: [fp32, bf16]
phases: [forward, backward, step]
",
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &python),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let record = regress::store::read_record(&repo.record_files()[0]).unwrap();
    assert_eq!(record.cases.len(), 6);
    for case in &record.cases {
        assert_eq!(
            case.status,
            CaseStatus::Ok,
            "{}: {:?}",
            case.label,
            case.reason
        );
        let accuracy = case.diagnostics.maps()[0].get("accuracy").cloned();
        if case.precision == Some(regress::spec::Precision::Bf16) {
            let accuracy = accuracy.expect("reduced precision is checked");
            assert_eq!(accuracy["passed"], true, "{}: {accuracy}", case.label);
            assert_eq!(accuracy["reference"], "eager fp32", "{accuracy}");
        } else {
            assert!(accuracy.is_none(), "fp32 eager is its own reference");
        }
    }
    // Each phase measured something (no timing order is asserted: which
    // phase is slower is a benchmark's question, and flips under load).
    for case in &record.cases {
        assert!(
            case.metrics[metric::LATENCY]
                .pooled()
                .iter()
                .all(|&x| x > 0.0),
            "{}",
            case.label
        );
    }
}

/// fp8 cases are skipped on CPU, but the e4m3 layers themselves run there
/// (emulated): check that the conversion computes the model's function
/// within the fp8 accuracy gate, and that a broken scale would fail it.
#[test]
fn fp8_linear_layers_compute_the_model_within_the_gate() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, regress_zoo
from regress_precision import to_fp8
from regress_accuracy import AccuracyFail, check_accuracy
tol = json.loads(sys.argv[2])
model, (x,) = regress_zoo.build("mlp", {"dim": 64, "hidden": 128, "batch": 32}, 0)
with torch.no_grad():
    ref = model(x)
    fp8 = to_fp8(model, "scaled_mm")
    swapped = sum(type(m).__name__ == "Fp8Linear" for m in fp8.modules())
    report = check_accuracy(fp8(x.to(torch.bfloat16)), ref, tol, "eager fp32")
    for m in fp8.modules():
        if type(m).__name__ == "Fp8Linear":
            m.w_scale.mul_(2.0)
    try:
        check_accuracy(fp8(x.to(torch.bfloat16)), ref, tol, "eager fp32")
        broken = "passed"
    except AccuracyFail as e:
        broken = "failed: " + str(e)
print(swapped, report["passed"], round(report["rel_rmse"], 4), broken)
"#;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
    // The tolerances regress sends the worker for fp8 cases.
    let t = regress::spec::defaults::tolerance(regress::spec::Precision::Fp8);
    let tol = serde_json::json!({"rtol": t.rtol, "atol": t.atol, "rmse": t.rmse}).to_string();
    let out = std::process::Command::new(&python)
        .args(["-c", script, dir, &tol])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields[0], "2", "both linear layers run in fp8: {stdout}");
    assert_eq!(fields[1], "True", "{stdout}");
    let rel_rmse: f64 = fields[2].parse().unwrap();
    assert!(
        rel_rmse > 0.0 && rel_rmse < 0.15,
        "e4m3 is lossy but close: {stdout}"
    );
    assert!(
        stdout.contains("failed: output 0 differs"),
        "a wrong scale must fail the gate: {stdout}"
    );
}

/// The built-in MLP draws the same weights and inputs in both backends, so
/// "Python overhead" compares the same function: their output digests agree.
#[test]
fn native_and_python_mlp_compute_the_same_function() {
    let Some(python) = python_or_skip() else {
        return;
    };
    if !cfg!(feature = "native") {
        return;
    }
    let repo = Repo::new();
    let pipeline = |name: &str, backend: &str| {
        format!("version: 1\nname: {name}\nmodel: {{builtin: mlp, args: {{dim: 32, hidden: 64}}}}\nrunner: {{backend: {backend}, device: cpu, processes: 1, measure: {{min_iters: 5, min_time: 10ms, max_time: 1s}}}}\nmatrix: {{batch: [4], seq_len: [3]}}\n")
    };
    repo.write("n.yaml", &pipeline("nat", "native"));
    repo.write("p.yaml", &pipeline("py", "python"));
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "n.yaml", "p.yaml"])
            .env("REGRESS_PYTHON", &python),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let digests: Vec<(f64, f64)> = repo
        .record_files()
        .iter()
        .map(|f| {
            let record = regress::store::read_record(f).unwrap();
            let case = &record.cases[0];
            assert_eq!(case.status, CaseStatus::Ok, "{:?}", case.reason);
            let d = &case.diagnostics.maps()[0]["output_digest"];
            (d["sum"].as_f64().unwrap(), d["abs_sum"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(digests.len(), 2);
    let (a, b) = (digests[0], digests[1]);
    assert!(a.1 > 1.0, "a non-trivial output: {a:?}");
    assert!(
        (a.0 - b.0).abs() < 1e-4 * a.1 && (a.1 - b.1).abs() < 1e-4 * a.1,
        "native {a:?} vs python {b:?}"
    );
}

/// Runs the transformers-style test pipeline (`tests/fixtures/tiny-hf.yaml`)
/// on the cases `filter` selects; the record and the run's output.
fn run_tiny_hf(python: &std::path::Path, filter: &str) -> (regress::record::Record, String) {
    let repo = Repo::new();
    repo.write("p.yaml", include_str!("fixtures/tiny-hf.yaml"));
    repo.write(
        "models/tiny_hf.py",
        include_str!("fixtures/models/tiny_hf.py"),
    );
    repo.commit("c");
    let (_, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml", "--filter", filter])
            .env("REGRESS_PYTHON", python),
    );
    let record = regress::store::read_record(&repo.record_files()[0]).unwrap();
    (record, format!("{stdout}{stderr}"))
}

#[test]
fn default_loss_takes_model_output_loss_then_logits_and_dicts_in_order() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let (record, text) = run_tiny_hf(&python, "eager");
    assert_eq!(record.cases.len(), 3, "{text}");
    for (kind, from) in [("lm", "loss"), ("logits", "logits"), ("dict", "hidden")] {
        let case = record
            .cases
            .iter()
            .find(|c| c.label == format!("tiny-hf[kind={kind},fp32,eager]/step"))
            .unwrap();
        assert_eq!(
            case.status,
            CaseStatus::Ok,
            "{kind}: {:?}\n{text}",
            case.reason
        );
        let diagnostics = &case.diagnostics.maps()[0];
        assert_eq!(
            diagnostics["loss_from"], from,
            "{kind}: the loss comes from `{from}`"
        );
        // runner.threads is applied and recorded, with the machine's load.
        assert_eq!(diagnostics["settings"]["threads"], 1, "{diagnostics:?}");
        assert!(
            diagnostics["load"]["before"]["load1"].is_number(),
            "{diagnostics:?}"
        );
        assert!(
            diagnostics["load"]["cores"].as_u64() >= Some(1),
            "{diagnostics:?}"
        );
    }
}

#[test]
fn compiled_dropout_is_checked_drawing_the_same_numbers_as_eager() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let (record, text) = run_tiny_hf(&python, "kind=lm,fp32,default");
    let case = &record.cases[0];
    assert_eq!(case.label, "tiny-hf[kind=lm,fp32,default]/step");
    assert_eq!(case.status, CaseStatus::Ok, "{:?}\n{text}", case.reason);
    let diagnostics = &case.diagnostics.maps()[0];
    assert_eq!(diagnostics["draws_random_numbers"], true, "{diagnostics:?}");
    let accuracy = &diagnostics["accuracy"];
    assert_eq!(accuracy["passed"], true, "{accuracy}");
    assert_eq!(accuracy["random"], "fallback_random", "{accuracy}");
    assert_eq!(accuracy["reference"], "eager fp32", "{accuracy}");
}

/// The worker's phases as a CUDA-graph run drives them, replayed on CPU
/// with logging: where the step marks fall, and what happens to the
/// inputs' gradients of a model without parameters.
const PHASE_PROBE: &str = r#"
import sys, torch
sys.path.insert(0, "python")
import regress_models as w
log = []

class Logged(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        log.append("F")
        return x * 2
    @staticmethod
    def backward(ctx, g):
        log.append("B")
        return g * 2

class WithParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.ones(4))
    def forward(self, x):
        return Logged.apply(x * self.p)

class NoParam(torch.nn.Module):
    def forward(self, x):
        return Logged.apply(x)

for name in ("forward", "backward", "step"):
    log.clear()
    model = WithParam()
    phase = w.Phase(name, model, model, (torch.randn(4),), None)
    phase.mark_steps(lambda: log.append("M"))
    with phase.grad():
        phase.first(); log.append("|")
        for _ in range(2):
            phase.iterate(); log.append("|")
    print(name, " ".join(log))

from torch.profiler import profile
log.clear()
x = torch.ones(4)
model = NoParam()
phase = w.Phase("backward", model, model, (x,), None)
phase.first()
one = x.grad.clone()
for _ in range(4):
    phase.iterate()
phase.prepare()
with profile() as prof:
    phase.body()
# An add into .grad, or the AccumulateGrad node itself (the engine still
# visits it to capture the gradient: "evaluate_function: …AccumulateGrad").
adds = [e.key for e in prof.key_averages() if e.key in ("aten::add_", "aten::add", "torch::autograd::AccumulateGrad")]
print("input grad", float((x.grad / one).mean()), "adds", len(adds), "backwards", log.count("B"))
"#;

#[test]
fn cuda_graph_marks_start_iterations_and_input_gradients_do_not_pile_up() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let out = std::process::Command::new(&python)
        .args(["-c", PHASE_PROBE])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A mark never falls between a forward and its backward.
    assert!(stdout.contains("forward M F | M F | M F |"), "{stdout}");
    assert!(
        stdout.contains("backward M F B | M F B | M F B |"),
        "{stdout}"
    );
    assert!(stdout.contains("step M F B | M F B | M F B |"), "{stdout}");
    // After four more backwards the input's gradient is one backward's,
    // not five summed, and the timed body runs no AccumulateGrad node and
    // adds nothing; the backward does run (six of them: the first call,
    // four, and the profiled one).
    assert!(
        stdout.contains("input grad 1.0 adds 0 backwards 6"),
        "{stdout}"
    );
}

#[test]
fn settings_are_read_after_the_factory_and_survive_the_new_tf32_api() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    // The factory switches fp32 matmuls to TF32 with torch 2.11's new API,
    // after which the legacy getters raise.
    repo.write(
        "models/tf32.py",
        "import torch\n\n\ndef build(params):\n    torch.backends.cuda.matmul.fp32_precision = \"tf32\"\n    return torch.nn.Linear(4, 4), (torch.randn(2, 4),)\n",
    );
    repo.write(
        "p.yaml",
        "version: 1\nname: tf\nmodel:\n  entrypoint: models/tf32.py:build\nrunner:\n  backend: python\n  device: cpu\n  processes: 1\n  warmup: {min_iters: 1, min_time: 0s}\n  measure: {min_iters: 3, min_time: 1ms, max_time: 200ms}\n",
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &python)
            .env("CUBLAS_WORKSPACE_CONFIG", ":4096:8"),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let record = regress::store::read_record(&repo.record_files()[0]).unwrap();
    let case = &record.cases[0];
    assert_eq!(case.status, CaseStatus::Ok, "{:?}", case.reason);
    let settings = &case.diagnostics.maps()[0]["settings"];
    assert_eq!(settings["matmul_fp32_precision"], "tf32", "{settings}");
    assert_eq!(
        settings["cuda_matmul_allow_tf32"], "unreadable: RuntimeError",
        "{settings}"
    );
    assert_eq!(
        settings["env"]["CUBLAS_WORKSPACE_CONFIG"], ":4096:8",
        "{settings}"
    );
}

/// The pipeline of the fork-server tests: one fp32 case compiled `compile`,
/// `processes` of it, on a user model that writes its process id and hangs
/// when asked.
fn fork_pipeline(processes: u32, timeout: &str, compile: &str) -> String {
    format!(
        "version: 1
name: forked
model:
  entrypoint: models/pid.py:build
runner:
  backend: python
  device: cpu
  processes: {processes}
  warmup: {{min_iters: 2, min_time: 0s}}
  measure: {{min_iters: 5, min_time: 1ms, max_time: 100ms}}
  timeout: {timeout}
matrix:
  hang: [0]
  compile: [{compile}]
compare: {{threshold: 50%, alpha: 0.01}}
"
    )
}

const PID_MODEL: &str = "import os, time, torch


def build(params):
    with open(os.path.join('pids', str(os.getpid())), 'w') as f:
        f.write(str(os.getpgrp()))
    if params['hang']:
        time.sleep(600)
    return torch.nn.Linear(4, 4), (torch.randn(2, 4),)
";

/// The process ids the model wrote, each with its process group.
fn model_pids(repo: &Repo) -> Vec<(u32, u32)> {
    let mut pids: Vec<(u32, u32)> = std::fs::read_dir(repo.path().join("pids"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let pid = e.file_name().to_string_lossy().parse().unwrap();
            let group = std::fs::read_to_string(e.path()).unwrap().parse().unwrap();
            (pid, group)
        })
        .collect();
    pids.sort();
    pids
}

/// Every process of a python case is a child forked from the run's fork
/// server (a process of its own, in the process group regress started for
/// it), unless `REGRESS_FORK_SERVER_ENABLED=0` asks for an interpreter per
/// process; the records say which.
#[test]
fn python_processes_are_forked_from_one_server_unless_switched_off() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    repo.write("models/pid.py", PID_MODEL);
    repo.write("p.yaml", &fork_pipeline(3, "5m", "eager"));
    repo.commit("c");
    for (switch, how) in [("1", "forked"), ("0", "interpreter")] {
        let _ = std::fs::remove_dir_all(repo.path().join("pids"));
        std::fs::create_dir(repo.path().join("pids")).unwrap();
        let before = repo.record_files();
        let (code, stdout, stderr) = output(
            repo.regress()
                .args(["run", "p.yaml"])
                .env("REGRESS_PYTHON", &python)
                .env("REGRESS_FORK_SERVER_ENABLED", switch),
        );
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let file = repo
            .record_files()
            .into_iter()
            .find(|f| !before.contains(f))
            .expect("a new record");
        let record = regress::store::read_record(&file).unwrap();
        let maps = record.cases[0].diagnostics.maps();
        assert_eq!(maps.len(), 3);
        for d in &maps {
            assert_eq!(d["process_start"]["how"], how, "{d:?}");
            assert!(d
                .get("process_start")
                .unwrap()
                .get("fork_server_unused")
                .is_none());
        }
        // Three processes, each the leader's child in its own group.
        let pids = model_pids(&repo);
        assert_eq!(pids.len(), 3, "{pids:?}");
        let groups: std::collections::BTreeSet<u32> = pids.iter().map(|p| p.1).collect();
        assert_eq!(groups.len(), 3, "one process group per repeat: {pids:?}");
    }
}

/// A forked child that hangs is killed with the process regress started
/// for it when the case times out: nothing is left running.
#[test]
fn a_forked_child_that_hangs_dies_with_its_timeout() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let repo = Repo::new();
    repo.write("models/pid.py", PID_MODEL);
    std::fs::create_dir(repo.path().join("pids")).unwrap();
    repo.write(
        "p.yaml",
        &fork_pipeline(1, "15s", "eager").replace("hang: [0]", "hang: [1]"),
    );
    repo.commit("c");
    let (code, stdout, stderr) = output(
        repo.regress()
            .args(["run", "p.yaml"])
            .env("REGRESS_PYTHON", &python),
    );
    assert_eq!(code, 1, "a timed-out case fails the run:\n{stdout}{stderr}");
    assert!(stdout.contains("timeout"), "{stdout}");
    let pids = model_pids(&repo);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pids[0].0));
    // Killed at the timeout; reaped by the server or, once it is gone, init.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while proc_dir.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !proc_dir.exists(),
        "the hung child {} still runs",
        pids[0].0
    );
}
