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

#[path = "common/synthetic.rs"]
mod synthetic;

use std::path::Path;

use regress::record::{Record, RunId};
use regress::store::{DirStore, Store};

const COMMITS: usize = 32;
const CASES: usize = 500;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: compare_scale <new directory>");
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("the directory can be made");
    synthetic::git(dir, &["init", "-q", "-b", "main"]);
    let template: Record =
        serde_json::from_str(include_str!("../tests/fixtures/record-v1.json")).expect("fixture");
    let store = DirStore::new(dir.join(".regress"));
    for c in 0..COMMITS {
        let sha = synthetic::commit(dir, &format!("commit {c}"));
        let mut record = template.clone();
        record.schema_version = regress::record::RECORD_SCHEMA_VERSION;
        record.commit.sha = sha.try_into().expect("a full sha");
        record.run_id = RunId::new(chrono::Utc::now());
        record.cases = (0..CASES)
            .map(|i| synthetic::case(&template.cases[0], i, (c * CASES + i) as u64))
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
