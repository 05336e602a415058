//! Base resolution on the in-memory store and a commit graph of the test's
//! own: merge-base, walk distance, the per-pipeline walk, another machine's
//! results, a pipeline only at the base, and history.

use super::*;
use crate::id::{Fingerprint, RunId};
use crate::store::MemStore;

/// A commit graph without merges: each commit has at most one parent.
struct Graph {
    commits: Vec<(CommitInfo, Option<usize>)>,
}

fn sha(n: usize) -> CommitSha {
    CommitSha::try_from(format!("{n:040x}")).unwrap()
}

fn info(n: usize) -> CommitInfo {
    CommitInfo {
        sha: sha(n),
        time: None,
        branch: None,
        dirty: false,
        summary: Some(format!("c{n}")),
    }
}

impl Graph {
    /// Commits 1..=n on one line, each the parent of the next.
    fn line(n: usize) -> Graph {
        let commits = (1..=n).map(|i| (info(i), (i > 1).then(|| i - 2))).collect();
        Graph { commits }
    }

    /// Adds commit `n` with parent `parent`.
    fn branch(mut self, n: usize, parent: usize) -> Graph {
        let at = self.index(&sha(parent));
        self.commits.push((info(n), Some(at)));
        self
    }

    fn index(&self, s: &CommitSha) -> usize {
        self.commits.iter().position(|(c, _)| &c.sha == s).unwrap()
    }

    fn ancestors(&self, s: &CommitSha) -> Vec<usize> {
        let mut out = vec![self.index(s)];
        while let Some(p) = self.commits[*out.last().unwrap()].1 {
            out.push(p);
        }
        out
    }
}

impl Ancestry for Graph {
    fn merge_base(&self, a: &CommitSha, b: &CommitSha) -> Result<Option<CommitInfo>, GitError> {
        let of_a = self.ancestors(a);
        Ok(self
            .ancestors(b)
            .into_iter()
            .find(|i| of_a.contains(i))
            .map(|i| self.commits[i].0.clone()))
    }

    fn first_parents(&self, from: &CommitSha, limit: usize) -> Result<Vec<CommitInfo>, GitError> {
        Ok(self
            .ancestors(from)
            .into_iter()
            .skip(1)
            .take(limit)
            .map(|i| self.commits[i].0.clone())
            .collect())
    }
}

const MACHINE: &str = "00000000000000aa";
const OTHER_MACHINE: &str = "00000000000000bb";

/// A record of pipeline `name` at commit `n` on `machine`.
fn record(name: &str, n: usize, machine: &str) -> Record {
    let mut r: Record =
        serde_json::from_str(include_str!("../tests/fixtures/record-v1.json")).unwrap();
    r.pipeline.name = name.to_string();
    r.commit = info(n);
    r.machine.fingerprint = Fingerprint::try_from(machine).unwrap();
    r.run_id = RunId::new(chrono::Utc::now());
    r
}

fn store_with(records: &[Record]) -> MemStore {
    let store = MemStore::new();
    for r in records {
        store.save(r).unwrap();
    }
    store
}

fn resolve_at(
    graph: &Graph,
    store: &MemStore,
    base: usize,
    head: usize,
    exact: bool,
    max_walk: usize,
) -> Resolved {
    let selection = Selection::default();
    let req = Request {
        base_rev: "main",
        head_rev: "HEAD",
        base: info(base),
        head: info(head),
        exact,
        max_walk,
        selection: &selection,
    };
    resolve(graph, store, &req).unwrap()
}

#[test]
fn the_merge_base_is_the_default_base_and_exact_takes_the_tip() {
    // main: 1 - 2 - 3; feature 10 branches off 1.
    let graph = Graph::line(3).branch(10, 1);
    let store = store_with(&[
        record("p", 1, MACHINE),
        record("p", 3, MACHINE),
        record("p", 10, MACHINE),
    ]);
    let r = resolve_at(&graph, &store, 3, 10, false, 50);
    assert_eq!(r.base.commit.sha, sha(1));
    assert_eq!(r.base.distance, 0);
    assert!(
        r.base.notes.iter().any(|n| n.contains("merge-base")),
        "{:?}",
        r.base.notes
    );
    assert_eq!(r.head.records.len(), 1);
    let r = resolve_at(&graph, &store, 3, 10, true, 50);
    assert_eq!(r.base.commit.sha, sha(3));
    assert!(r.base.notes.is_empty());
}

#[test]
fn the_walk_goes_to_the_nearest_commit_with_results_and_counts_the_distance() {
    let graph = Graph::line(5);
    let store = store_with(&[record("p", 2, MACHINE), record("p", 5, MACHINE)]);
    let r = resolve_at(&graph, &store, 4, 5, false, 50);
    assert_eq!(r.base.commit.sha, sha(2));
    assert_eq!(r.base.distance, 2);
    // Too short a walk finds nothing and says how far it went.
    let r = resolve_at(&graph, &store, 4, 5, false, 1);
    assert!(r.base.records.is_empty());
    assert_eq!(r.base.distance, 1);
}

#[test]
fn each_pipeline_walks_to_its_own_results() {
    let graph = Graph::line(4);
    let store = store_with(&[
        record("p", 3, MACHINE),
        record("q", 1, MACHINE),
        record("p", 4, MACHINE),
        record("q", 4, MACHINE),
    ]);
    let r = resolve_at(&graph, &store, 3, 4, false, 50);
    assert_eq!(r.base.commit.sha, sha(3), "the first pipeline's base");
    let at = |name: &str| -> Vec<CommitSha> {
        r.base
            .records
            .iter()
            .filter(|x| x.pipeline.name == name)
            .map(|x| x.commit.sha.clone())
            .collect()
    };
    assert_eq!(at("p"), [sha(3)]);
    assert_eq!(at("q"), [sha(1)]);
    assert!(
        r.base
            .notes
            .iter()
            .any(|n| n.contains("pipeline q") && n.contains("2 commits back")),
        "{:?}",
        r.base.notes
    );
}

#[test]
fn another_machines_results_do_not_serve_as_the_base() {
    let graph = Graph::line(3);
    let store = store_with(&[
        record("p", 1, MACHINE),
        record("p", 2, OTHER_MACHINE),
        record("p", 3, MACHINE),
    ]);
    let r = resolve_at(&graph, &store, 2, 3, false, 50);
    assert_eq!(r.base.commit.sha, sha(1), "walked past the other machine");
    assert_eq!(r.base.distance, 1);
    // Allowed to compare across machines, the base itself serves.
    let selection = Selection {
        allow_fingerprint_mismatch: true,
        ..Selection::default()
    };
    let req = Request {
        base_rev: "main",
        head_rev: "HEAD",
        base: info(2),
        head: info(3),
        exact: false,
        max_walk: 50,
        selection: &selection,
    };
    let r = resolve(&graph, &store, &req).unwrap();
    assert_eq!(r.base.commit.sha, sha(2));
    // Found nowhere on head's machine: the start commit keeps what it holds.
    let store = store_with(&[record("p", 2, OTHER_MACHINE), record("p", 3, MACHINE)]);
    let r = resolve_at(&graph, &store, 2, 3, false, 50);
    assert_eq!(r.base.commit.sha, sha(2));
    assert_eq!(r.base.records.len(), 1);
    assert_eq!(
        r.base.records[0].machine.fingerprint.as_str(),
        OTHER_MACHINE
    );
}

#[test]
fn a_pipeline_only_at_the_base_comes_along_to_be_listed_as_removed() {
    let graph = Graph::line(2);
    let store = store_with(&[
        record("p", 1, MACHINE),
        record("gone", 1, MACHINE),
        record("p", 2, MACHINE),
    ]);
    let r = resolve_at(&graph, &store, 1, 2, false, 50);
    let mut names: Vec<&str> = r
        .base
        .records
        .iter()
        .map(|x| x.pipeline.name.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["gone", "p"]);
}

#[test]
fn history_is_gathered_behind_the_base() {
    let graph = Graph::line(40);
    let mut records: Vec<Record> = (1..=38).map(|n| record("p", n, MACHINE)).collect();
    records.push(record("p", 40, MACHINE));
    let store = store_with(&records);
    let r = resolve_at(&graph, &store, 38, 40, false, 50);
    assert_eq!(r.base.commit.sha, sha(38));
    assert_eq!(r.history.len(), HISTORY_COMMITS);
    assert_eq!(r.history[0].commit.sha, sha(37), "nearest first");
    let (history, warnings) = history_for(&graph, &store, &info(38), &r.head.records).unwrap();
    assert_eq!(history.len(), HISTORY_COMMITS);
    assert!(warnings.is_empty());
}

#[test]
fn history_counts_only_this_machines_commits() {
    // Machine A measured commits 1..=20; machine B alone measured the 30
    // commits after them. A's base at 51 still gets A's 20 commits.
    let graph = Graph::line(52);
    let mut records: Vec<Record> = (1..=20).map(|n| record("p", n, MACHINE)).collect();
    records.extend((21..=50).map(|n| record("p", n, OTHER_MACHINE)));
    records.push(record("p", 51, MACHINE));
    records.push(record("p", 52, MACHINE));
    let store = store_with(&records);
    let r = resolve_at(&graph, &store, 51, 52, false, 60);
    assert_eq!(r.base.commit.sha, sha(51));
    let mine = |h: &[Record]| {
        h.iter()
            .filter(|r| r.machine.fingerprint.as_str() == MACHINE)
            .count()
    };
    assert_eq!(mine(&r.history), 20, "A's history behind B's commits");
    assert_eq!(r.history.len(), 20, "B's records are no history for A");
    let (history, _) = history_for(&graph, &store, &info(51), &r.head.records).unwrap();
    assert_eq!(mine(&history), 20);
    // Another definition of the pipeline is no history either.
    let mut changed = record("p", 51, MACHINE);
    changed.pipeline.hash = "another".into();
    let store = store_with(&[records.clone(), vec![changed.clone()]].concat());
    let (history, _) = history_for(&graph, &store, &info(51), &[changed]).unwrap();
    assert!(history.is_empty(), "{} records", history.len());
}
