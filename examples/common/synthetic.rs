//! What the store benchmarks share: git in a scratch repository, and
//! records of synthetic cases at the sizes the python backend writes.

use std::path::Path;
use std::process::Command;

use regress::record::{CaseId, CaseRecord, CaseStatus, Diagnostics, Metric};

/// Processes per case: the python backend's default.
pub const PROCESSES: usize = 3;
/// Samples per process: any count above the 64 kept gives the same size.
pub const SAMPLES: usize = 2000;

/// Runs git in `dir`; panics with the arguments when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Commits whatever is staged (or nothing) with a fixed identity.
pub fn commit(dir: &Path, message: &str) -> String {
    git(
        dir,
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ],
    );
    git(dir, &["rev-parse", "HEAD"])
}

/// Deterministic latencies around `level` seconds, 5 % spread.
fn samples(level: f64, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..SAMPLES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            level * (1.0 + 0.05 * (u - 0.5))
        })
        .collect()
}

/// Diagnostics the python worker writes for one process (about their size).
fn diagnostics(process: usize, seed: u64) -> serde_json::Map<String, serde_json::Value> {
    let v = serde_json::json!({
        "device": "cuda", "precision": "bf16", "phase": "forward", "seed": 0,
        "settings": {"threads": 16, "interop_threads": 16, "float32_matmul_precision": "highest",
                     "cuda_matmul_allow_tf32": false, "cudnn_allow_tf32": true,
                     "cudnn_benchmark": false, "cudnn_deterministic": false,
                     "deterministic_algorithms": false},
        "output_digest": {"sum": -28.75401819869876, "abs_sum": 528.3828319273889},
        "accuracy": {"reference": "eager bf16", "rtol": 0.016, "atol": 1e-05, "rmse_tol": 0.03,
                     "max_abs_err": 0.0078125, "max_rel_err": 0.0153, "rel_rmse": 0.0021,
                     "passed": true, "rule": "allclose"},
        "warmup_iters": 500 + process + (seed % 7) as usize, "stop": "converged", "batch": 1,
        "dropped_compiling": 0, "rel_iqr": 0.0123 + (seed % 97) as f64 * 1e-5,
        "first_call": 3.1 + (seed % 89) as f64 * 0.001,
        "compile": {"fx_graph_cache_hits": 0, "fx_graph_cache_misses": 1,
                    "graph_break_reasons": [], "recompile_reasons": [],
                    "graph_breaks": 0.0, "unique_graphs": 1.0, "recompiles": 0.0},
    });
    v.as_object().expect("an object").clone()
}

/// Case `i` of a synthetic compiled transformer block, measured with
/// `seed`: latency and compile time of every process, and diagnostics.
pub fn case(template: &CaseRecord, i: usize, seed: u64) -> CaseRecord {
    let mut latency = Metric {
        unit: "s".into(),
        processes: Vec::new(),
    };
    let mut compile = Metric {
        unit: "s".into(),
        processes: Vec::new(),
    };
    for p in 0..PROCESSES {
        let s = seed * 8 + p as u64;
        latency.push("latency", &samples(1e-3 * (1.0 + i as f64 / 100.0), s));
        compile.push("compile_time", &[3.0 + (s % 100) as f64 * 0.001]);
    }
    CaseRecord {
        id: CaseId::of(&format!("case {i}")),
        label: format!("transformer_block[batch={i},seq_len=1024,bf16,default]/forward"),
        group: format!("transformer_block[batch={i},seq_len=1024,bf16]/forward"),
        status: CaseStatus::Ok,
        metrics: [
            ("latency".to_string(), latency),
            ("compile_time".to_string(), compile),
        ]
        .into_iter()
        .collect(),
        diagnostics: Diagnostics::from_maps(
            &(0..PROCESSES)
                .map(|p| diagnostics(p, seed))
                .collect::<Vec<_>>(),
        ),
        ..template.clone()
    }
}
