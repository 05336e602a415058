//! How big the git store grows: a repository whose `main` has N commits,
//! each with the record of a C-case pipeline committed to the results ref
//! (record format 2, python-backend sizes: 3 processes, latency and
//! compile time, the worker's diagnostics), then packed.
//!
//!     cargo run --release --example store_growth -- /tmp/growth 2000 200
//!     git -C /tmp/growth count-objects -vH
//!
//! It prints the records' bytes, and the size of a pack of everything the
//! results ref reaches, which is what `regress store pull` fetches.

use std::path::Path;
use std::process::Command;

use regress::record::{CaseRecord, CaseStatus, Diagnostics, Metric, Record, RunId, RunState};
use regress::store::{GitStore, ResultsRef, Store};

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

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: store_growth <new directory> <commits> <cases>";
    let dir = args.next().expect(usage);
    let commits: usize = args.next().expect(usage).parse().expect(usage);
    let cases: usize = args.next().expect(usage).parse().expect(usage);
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("the directory can be made");
    git(dir, &["init", "-q", "-b", "main"]);
    let store = GitStore::open(dir, ResultsRef::default()).expect("a repository");
    let template: Record =
        serde_json::from_str(include_str!("../tests/fixtures/record-v1.json")).expect("fixture");
    let case = template.cases[0].clone();
    let mut record_bytes = 0usize;
    for c in 0..commits {
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
                &format!("commit {c}"),
            ],
        );
        let mut record = template.clone();
        record.schema_version = regress::record::RECORD_SCHEMA_VERSION;
        record.state = RunState::Complete;
        record.commit.sha = git(dir, &["rev-parse", "HEAD"])
            .try_into()
            .expect("a full sha");
        record.run_id = RunId::new(chrono::Utc::now());
        record.cases = (0..cases)
            .map(|i| {
                let seed = (c * cases + i) as u64;
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
                        &(0..PROCESSES)
                            .map(|p| diagnostics(p, seed))
                            .collect::<Vec<_>>(),
                    ),
                    ..case.clone()
                }
            })
            .collect();
        record_bytes += serde_json::to_vec(&record).expect("serialises").len();
        store.save(&record).expect("the store is writable");
        if (c + 1) % 100 == 0 {
            eprintln!("{} of {commits} commits", c + 1);
        }
    }
    // What `store pull` fetches: every object the results ref reaches, as a pack.
    let out = Command::new("sh")
        .arg("-c")
        .arg("git rev-list --objects refs/regress/results | git pack-objects --stdout | wc -c")
        .current_dir(dir)
        .output()
        .expect("git runs");
    let pack: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a byte count");
    println!(
        "{commits} commits × {cases} cases: {} MB of records as written, {} MB as one pack of the results ref",
        record_bytes / 1_000_000,
        pack / 1_000_000
    );
}
