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

#[path = "common/synthetic.rs"]
mod synthetic;

use std::path::Path;
use std::process::Command;

use regress::record::{Record, RunId, RunState};
use regress::store::{GitStore, ResultsRef, Store};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: store_growth <new directory> <commits> <cases>";
    let dir = args.next().expect(usage);
    let commits: usize = args.next().expect(usage).parse().expect(usage);
    let cases: usize = args.next().expect(usage).parse().expect(usage);
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("the directory can be made");
    synthetic::git(dir, &["init", "-q", "-b", "main"]);
    let store = GitStore::open(dir, ResultsRef::default()).expect("a repository");
    let template: Record =
        serde_json::from_str(include_str!("../tests/fixtures/record-v1.json")).expect("fixture");
    let mut record_bytes = 0usize;
    for c in 0..commits {
        let sha = synthetic::commit(dir, &format!("commit {c}"));
        let mut record = template.clone();
        record.schema_version = regress::record::RECORD_SCHEMA_VERSION;
        record.state = RunState::Complete;
        record.commit.sha = sha.try_into().expect("a full sha");
        record.run_id = RunId::new(chrono::Utc::now());
        record.cases = (0..cases)
            .map(|i| synthetic::case(&template.cases[0], i, (c * cases + i) as u64))
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
