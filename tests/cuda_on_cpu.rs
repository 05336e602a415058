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

/// While the case is timed, nothing of the first call's output is alive
/// (it, or a float64 copy of it, would be counted in the peak memory).
#[test]
fn nothing_of_the_first_call_is_alive_while_sampling() {
    let Some(stdout) = python(
        r#"
import gc, json, sys
sys.path.insert(0, sys.argv[1])
import torch, regress_worker as w
w.torch = torch
sent = []
w.send = sent.append
OUT = (2, 16, 512)  # the logits: no weight or input has this shape
seen = {}
original = w.measure_host
def spy(*args):
    gc.collect()
    alive = [o for o in gc.get_objects() if torch.is_tensor(o)]
    seen["output_shaped"] = sum(tuple(t.shape) == OUT for t in alive)
    seen["float64"] = sum(t.dtype == torch.float64 for t in alive)
    return original(*args)
w.measure_host = spy
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
w.run(req)
print(json.dumps({"type": sent[-1]["type"], "digest": sent[-1]["diagnostics"].get("output_digest"), **seen}))
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
