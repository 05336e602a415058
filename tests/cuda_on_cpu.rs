//! The python worker's CUDA paths, checked on the CPU where the cause can
//! be shown there: torch's fake CUDA tensors run `torch._scaled_mm`'s own
//! CUDA-side checks, and a spy on the timed loop sees what the first call
//! left alive. These need torch and skip without it.

use crate::common::python_or_skip;

/// Runs `script` with the worker's directory as argv[1]; its stdout.
fn python(script: &str) -> Option<String> {
    let python = python_or_skip()?;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
    let out = std::process::Command::new(&python)
        .args(["-c", script, dir])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

/// `torch._scaled_mm` on CUDA refuses a column-major activation (`self must
/// be row_major`); a linear applied to a transposed tensor gives one, and
/// the fp8 layer must make it row-major first.
#[test]
fn fp8_layers_give_scaled_mm_a_row_major_activation() {
    let Some(stdout) = python(
        r#"
import sys
sys.path.insert(0, sys.argv[1])
import torch, regress_precision as w
from torch._subclasses.fake_tensor import FakeTensorMode

class Transposing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 32)
    def forward(self, h):  # (64, tokens): the linear sees a column-major (tokens, 64)
        return self.lin(h.t())

model = w.to_fp8(Transposing(), "scaled_mm")
with FakeTensorMode(allow_non_fake_inputs=True):
    for mod in model.modules():
        for k, b in list(mod._buffers.items()):
            mod._buffers[k] = torch.empty_strided(b.shape, b.stride(), dtype=b.dtype, device="cuda")
        for k, p in list(mod._parameters.items()):
            if p is not None:
                mod._parameters[k] = torch.nn.Parameter(
                    torch.empty_strided(p.shape, p.stride(), dtype=p.dtype, device="cuda"), requires_grad=False)
    h = torch.empty(64, 48, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        y = model(h)
print(tuple(y.shape), y.dtype, y.device.type)
"#,
    ) else {
        return;
    };
    assert_eq!(stdout.trim(), "(48, 32) torch.bfloat16 cuda", "{stdout}");
}

/// While the case is timed, nothing of the first call's output is alive
/// (it, or a float64 copy of it, would be counted in the peak memory).
#[test]
fn nothing_of_the_first_call_is_alive_while_sampling() {
    let Some(stdout) = python(
        r#"
import gc, json, sys
sys.path.insert(0, sys.argv[1])
import torch, regress_case, regress_timing, regress_worker as w
OUT = (2, 16, 512)  # the logits: no weight or input has this shape
seen = {}
original = regress_timing.measure
def spy(*args):
    gc.collect()
    alive = [o for o in gc.get_objects() if torch.is_tensor(o)]
    seen["output_shaped"] = sum(tuple(t.shape) == OUT for t in alive)
    seen["float64"] = sum(t.dtype == torch.float64 for t in alive)
    return original(*args)
regress_timing.measure = spy
req = {"cmd": "run", "protocol": w.PROTOCOL_VERSION, "device": "cpu", "repeat": 0, "seed": 0,
       "model": {"kind": "builtin", "name": "transformer_lm"}, "args": {}, "threads": None, "isa_checks": None,
       "case": {"id": "x", "label": "x", "precision": "bf16", "compile": "eager", "phase": "forward",
                "params": {"batch": 2, "seq_len": 16, "vocab": 512, "dim": 32, "heads": 2, "hidden": 64, "layers": 1}},
       "warmup": {"min_iters": 2, "min_time": 0.0},
       "measure": {"min_iters": 5, "min_time": 0.0, "max_time": 0.5, "target_rel_iqr": 0.02,
                   "check_growth": 1.5, "min_samples": 2, "min_iqr_samples": 5},
       "l2": "warm", "cast": "dtype", "fp8": "scaled_mm",
       "compile_options": {"fullgraph": False, "dynamic": None, "backend": "inductor", "scope": "model", "cache": "cold"},
       "accuracy": {"check": True, "rtol": 0.016, "atol": 1e-5, "rmse": 0.03}}
r = regress_case.run(req)
print(json.dumps({"type": r["type"], "digest": r["diagnostics"].get("output_digest"), **seen}))
"#,
    ) else {
        return;
    };
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["type"], "result", "{v}");
    assert!(
        v["digest"]["abs_sum"].as_f64().unwrap() > 0.0,
        "the digest is still taken: {v}"
    );
    assert_eq!(v["output_shaped"], 0, "the first output is alive: {v}");
    assert_eq!(v["float64"], 0, "a float64 copy is alive: {v}");
}

/// A cudagraph mode that ran no CUDA graph says so in its record: on the
/// CPU inductor skips them (and counts the skip), as it does on a GPU for
/// a graph it cannot capture; the compile summary counts the recordings.
#[test]
fn a_cudagraph_mode_without_cuda_graphs_says_so() {
    let Some(stdout) = python(
        r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, regress_case, regress_worker as w
req = {"cmd": "run", "protocol": w.PROTOCOL_VERSION, "device": "cpu", "repeat": 0, "seed": 0,
       "model": {"kind": "builtin", "name": "mlp"}, "args": {}, "threads": None, "isa_checks": None,
       "case": {"id": "x", "label": "x", "precision": "fp32", "compile": "reduce-overhead", "phase": "forward",
                "params": {"batch": 2, "dim": 16, "hidden": 32}},
       "warmup": {"min_iters": 2, "min_time": 0.0},
       "measure": {"min_iters": 5, "min_time": 0.0, "max_time": 0.5, "target_rel_iqr": 0.02,
                   "check_growth": 1.5, "min_samples": 2, "min_iqr_samples": 5},
       "l2": "warm", "cast": "dtype", "fp8": "scaled_mm",
       "compile_options": {"fullgraph": False, "dynamic": None, "backend": "inductor", "scope": "model", "cache": "cold"},
       "accuracy": {"check": True, "rtol": 1.3e-6, "atol": 1e-5, "rmse": 1e-4}}
r = regress_case.run(req)
print(json.dumps({"type": r["type"], "cudagraphs": r["diagnostics"].get("cudagraphs"), "compile": r.get("compile"),
                  "after_first": r["diagnostics"].get("compile_time_after_first_call"),
                  "compile_time": r.get("compile_time"), "first_call": r.get("first_call")}))
"#,
    ) else {
        return;
    };
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["type"], "result", "{v}");
    let cg = &v["cudagraphs"];
    assert_eq!(cg["engaged"], false, "{v}");
    assert_eq!(cg["recordings"], 0, "{v}");
    assert!(cg["skips"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["compile"]["cudagraph_recordings"], 0, "{v}");
    assert!(
        v["compile"]["cudagraph_skips"].as_u64().unwrap() >= 1,
        "{v}"
    );
    // The compile time is the first call and any compiling after it.
    let after = v["after_first"].as_f64().unwrap();
    let total = v["compile_time"].as_f64().unwrap();
    assert!(
        (total - (v["first_call"].as_f64().unwrap() + after)).abs() < 1e-9,
        "{v}"
    );
}
