//! Builds a repository for timing `regress compare` at scale: 32 commits,
//! each with one record of a 500-case pipeline in the directory store, at
//! the sizes record format 2 writes for the python backend at its defaults
//! (3 processes, latency and compile time, the worker's diagnostics).
//!
//!     cargo run --release --example compare_scale -- /tmp/scale
//!     cd /tmp/scale && /usr/bin/time -v taskset -c 0 regress compare HEAD~1 HEAD > /dev/null
//!
//! (`make bench-compare` does both.) The comparison then reads the base,
//! the head and 30 commits of history: 16,000 case records.

use std::path::Path;
use std::process::Command;

use regress::record::{CaseRecord, CaseStatus, Diagnostics, Metric, Record, RunId};
use regress::store::{DirStore, Store};

const COMMITS: usize = 32;
const CASES: usize = 500;
const PROCESSES: usize = 3;
/// Samples per process: any count above the 64 kept gives the same size.
const SAMPLES: usize = 2000;

fn git(dir: &Path, args: &[&str]) -> String {
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
fn diagnostics(process: usize) -> serde_json::Map<String, serde_json::Value> {
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
        "warmup_iters": 500 + process, "stop": "converged", "batch": 1, "dropped_compiling": 0,
        "rel_iqr": 0.0123 + process as f64 * 1e-4, "first_call": 3.1 + process as f64 * 0.01,
        "compile": {"fx_graph_cache_hits": 0, "fx_graph_cache_misses": 1,
                    "graph_break_reasons": [], "recompile_reasons": [],
                    "graph_breaks": 0.0, "unique_graphs": 1.0, "recompiles": 0.0},
    });
    v.as_object().expect("an object").clone()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: compare_scale <new directory>");
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("the directory can be made");
    git(dir, &["init", "-q", "-b", "main"]);
    let template: Record =
        serde_json::from_str(include_str!("../tests/fixtures/record-v1.json")).expect("fixture");
    let store = DirStore::new(dir.join(".regress"));
    for c in 0..COMMITS {
        std::fs::write(dir.join("commit.txt"), c.to_string()).expect("writable");
        git(dir, &["add", "-A"]);
        git(
            dir,
            &[
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@localhost",
                "commit",
                "-q",
                "-m",
                &format!("commit {c}"),
            ],
        );
        let sha = git(dir, &["rev-parse", "HEAD"]);
        let mut record = template.clone();
        record.schema_version = regress::record::RECORD_SCHEMA_VERSION;
        record.commit.sha = sha.try_into().expect("a full sha");
        record.run_id = RunId::new(chrono::Utc::now());
        let case = template.cases[0].clone();
        record.cases = (0..CASES)
            .map(|i| {
                let mut latency = Metric {
                    unit: "s".into(),
                    processes: Vec::new(),
                };
                let mut compile = Metric {
                    unit: "s".into(),
                    processes: Vec::new(),
                };
                for p in 0..PROCESSES {
                    let seed = (c * CASES + i) as u64 * 8 + p as u64;
                    latency.push("latency", &samples(1e-3 * (1.0 + i as f64 / 100.0), seed));
                    compile.push("compile_time", &[3.0 + p as f64 * 0.01]);
                }
                CaseRecord {
                    id: regress::record::CaseId::of(&format!("case {i}")),
                    label: format!(
                        "transformer_block[batch={i},seq_len=1024,bf16,default]/forward"
                    ),
                    group: format!("transformer_block[batch={i},seq_len=1024,bf16]/forward"),
                    status: CaseStatus::Ok,
                    metrics: [
                        ("latency".to_string(), latency),
                        ("compile_time".to_string(), compile),
                    ]
                    .into_iter()
                    .collect(),
                    diagnostics: Diagnostics::from_maps(
                        &(0..PROCESSES).map(diagnostics).collect::<Vec<_>>(),
                    ),
                    ..case.clone()
                }
            })
            .collect();
        store.save(&record).expect("the store is writable");
    }
    let bytes: u64 = walk(&dir.join(".regress"));
    println!(
        "{COMMITS} commits × {CASES} cases in {}: {bytes} bytes of records ({} per case)",
        dir.display(),
        bytes / (COMMITS * CASES) as u64
    );
}

fn walk(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).expect("readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            total += walk(&p);
        } else if p.extension().is_some_and(|x| x == "json") {
            total += e.metadata().map_or(0, |m| m.len());
        }
    }
    total
}
