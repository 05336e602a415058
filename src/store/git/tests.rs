//! Tests of the git store on scratch repositories.

use super::pending::process_alive;
use super::*;

const FIXTURE: &str = include_str!("../../../tests/fixtures/record-v1.json");

/// A repository in a temporary directory with one commit, and a store on it.
fn scratch() -> (tempfile::TempDir, GitStore) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    let sig = signature().unwrap();
    let tree = empty_tree(&repo).unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
        .unwrap();
    let store = GitStore::open(dir.path(), ResultsRef::default()).unwrap();
    (dir, store)
}

fn record(run: &str, state: RunState) -> Record {
    let mut r: Record = serde_json::from_str(FIXTURE).unwrap();
    r.run_id = RunId::try_from(run).unwrap();
    r.state = state;
    r
}

/// Commits a tree holding `files` (path, content) on top of ref `name`.
fn commit_files(store: &GitStore, name: &str, files: &[(&str, &str)]) -> Oid {
    let repo = store.repo().unwrap();
    let parent = ref_target(&repo, name).unwrap();
    let parent = parent.map(|p| repo.find_commit(p).unwrap());
    let base = match &parent {
        Some(c) => c.tree().unwrap(),
        None => empty_tree(&repo).unwrap(),
    };
    let mut update = git2::build::TreeUpdateBuilder::new();
    for (path, text) in files {
        update.upsert(*path, repo.blob(text.as_bytes()).unwrap(), FileMode::Blob);
    }
    let tree = repo
        .find_tree(update.create_updated(&repo, &base).unwrap())
        .unwrap();
    let sig = signature().unwrap();
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let oid = repo
        .commit(None, &sig, &sig, "test", &tree, &parents)
        .unwrap();
    repo.reference(name, oid, true, "test").unwrap();
    oid
}

fn paths(store: &GitStore) -> Vec<String> {
    let repo = store.repo().unwrap();
    let tip = ref_target(&repo, store.results.as_str()).unwrap().unwrap();
    let tree = repo.find_commit(tip).unwrap().tree().unwrap();
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
        if e.kind() == Some(ObjectType::Blob) {
            out.push(format!("{dir}{}", e.name().unwrap()));
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    out
}

const THEIRS: &str = "refs/regress/remotes/origin/regress/results";

#[test]
fn ref_names_are_validated() {
    assert!(ResultsRef::try_from("refs/regress/results").is_ok());
    assert!(ResultsRef::try_from("refs/heads/benchmarks").is_ok());
    for bad in [
        "results",
        "refs/results",
        "refs/regress/res..ults",
        "refs/regress/remotes/origin/x",
        "refs/remotes/origin/x",
        "refs/tags/v1",
    ] {
        let err = ResultsRef::try_from(bad).unwrap_err().to_string();
        assert!(
            err.contains(bad) && err.contains("refs/regress/results"),
            "{err}"
        );
    }
    assert_eq!(
        ResultsRef::default().tracking("origin").unwrap(),
        "refs/regress/remotes/origin/regress/results"
    );
    assert!(ResultsRef::default().tracking("bad..name").is_err());
}

#[test]
fn running_records_wait_in_the_pending_area_finished_ones_are_committed() {
    let (dir, store) = scratch();
    let mut r = record("20261122T020631.537Z-2147483646-aa", RunState::Running);
    store.save(&r).unwrap();
    assert_eq!(
        store.tip().unwrap(),
        None,
        "nothing enters the ref while running"
    );
    let entries = store.entries(&r.commit.sha).unwrap();
    assert_eq!(entries.len(), 1);
    assert!(matches!(entries[0].location, Location::Pending(_)));

    r.state = RunState::Complete;
    store.save(&r).unwrap();
    let path = GitStore::path_of(&r);
    assert_eq!(
        path,
        format!(
            "v1/91/91cf47618cdf4980421d3d38d1b48c5023106923/fixture/f3635426936fee41/{}.json",
            r.run_id
        )
    );
    assert_eq!(paths(&store), std::slice::from_ref(&path));
    let entries = store.entries(&r.commit.sha).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].location, Location::Committed(path));
    assert_eq!(entries[0].record, r);
    assert!(
        !store.pending_path(&r).exists(),
        "the pending file is removed"
    );

    // Saving the same finished record again changes nothing.
    let tip = store.tip().unwrap();
    store.save(&r).unwrap();
    assert_eq!(store.tip().unwrap(), tip);

    // Another content at the same path is refused and kept pending,
    // also by the sweep of abandoned records before a push.
    let mut other = r.clone();
    other.cases.clear();
    let err = store.save(&other).unwrap_err().to_string();
    assert!(err.contains(&GitStore::path_of(&r)), "{err}");
    assert_eq!(store.tip().unwrap(), tip);
    assert!(store.pending_path(&other).exists());
    let swept = store.commit_abandoned().unwrap();
    assert!(swept.committed.is_empty());
    assert!(
        swept.warnings[0].contains(&GitStore::path_of(&r)),
        "{swept:?}"
    );
    assert!(store.pending_path(&other).exists(), "never dropped");
    assert_eq!(store.tip().unwrap(), tip);

    // The commit is regress's, with a message naming the record.
    let repo = Repository::open(dir.path()).unwrap();
    let commit = repo.find_commit(tip.unwrap()).unwrap();
    assert_eq!(commit.author().name().ok(), Some("regress"));
    assert_eq!(
        commit.message().ok(),
        Some(format!("regress: fixture at 91cf476 ({})", r.run_id).as_str())
    );
}

#[test]
fn union_merge_keeps_both_sides_and_identical_paths() {
    let (_dir, store) = scratch();
    let ours = commit_files(
        &store,
        DEFAULT_RESULTS_REF,
        &[("v1/a/x.json", "x"), ("v1/same.json", "s")],
    );
    let theirs = commit_files(
        &store,
        THEIRS,
        &[("v1/b/y.json", "y"), ("v1/same.json", "s")],
    );
    let outcome = store.merge_from(THEIRS, "origin").unwrap();
    let MergeOutcome::Merged(merge) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        paths(&store),
        ["v1/a/x.json", "v1/b/y.json", "v1/same.json"]
    );
    let repo = store.repo().unwrap();
    let parents: Vec<Oid> = repo.find_commit(merge).unwrap().parent_ids().collect();
    assert_eq!(parents, [ours, theirs]);
    // Merging again finds everything there.
    assert_eq!(
        store.merge_from(THEIRS, "origin").unwrap(),
        MergeOutcome::Ahead
    );
}

#[test]
fn union_merge_refuses_the_same_path_with_other_content() {
    let (_dir, store) = scratch();
    let ours = commit_files(&store, DEFAULT_RESULTS_REF, &[("v1/a/run.json", "one")]);
    commit_files(
        &store,
        THEIRS,
        &[("v1/a/run.json", "two"), ("v1/b.json", "b")],
    );
    let err = store.merge_from(THEIRS, "origin's results").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("v1/a/run.json"), "{text}");
    assert!(
        text.contains("refs/regress/results (local)") && text.contains("origin's results"),
        "{text}"
    );
    let repo = store.repo().unwrap();
    let blob = |t: &str| repo.blob(t.as_bytes()).unwrap().to_string();
    assert!(
        text.contains(&blob("one")) && text.contains(&blob("two")),
        "{text}"
    );
    assert_eq!(store.tip().unwrap(), Some(ours), "nothing is written");
}

#[test]
fn merge_fast_forwards_when_one_side_contains_the_other() {
    let (_dir, store) = scratch();
    // No local ref yet: it takes the remote's commit.
    let first = commit_files(&store, THEIRS, &[("v1/a.json", "a")]);
    assert_eq!(
        store.merge_from(THEIRS, "o").unwrap(),
        MergeOutcome::FastForward(first)
    );
    assert_eq!(store.tip().unwrap(), Some(first));
    // The remote moved on: fast-forward, no merge commit.
    let second = commit_files(&store, THEIRS, &[("v1/b.json", "b")]);
    assert_eq!(
        store.merge_from(THEIRS, "o").unwrap(),
        MergeOutcome::FastForward(second)
    );
    assert_eq!(store.tip().unwrap(), Some(second));
    assert_eq!(
        store.merge_from(THEIRS, "o").unwrap(),
        MergeOutcome::UpToDate
    );
    // The local ref moved on: it stays.
    let third = commit_files(&store, DEFAULT_RESULTS_REF, &[("v1/c.json", "c")]);
    assert_eq!(store.merge_from(THEIRS, "o").unwrap(), MergeOutcome::Ahead);
    assert_eq!(store.tip().unwrap(), Some(third));
    assert_eq!(
        store.merge_from("refs/regress/none", "o").unwrap(),
        MergeOutcome::NothingToMerge
    );
}

#[test]
fn a_fast_forward_that_changes_or_removes_a_record_is_refused() {
    let (_dir, store) = scratch();
    let base = commit_files(&store, THEIRS, &[("v1/a.json", "a"), ("v1/b.json", "b")]);
    assert_eq!(
        store.merge_from(THEIRS, "o").unwrap(),
        MergeOutcome::FastForward(base)
    );
    // The local ref, rewritten on top: a push would overwrite v1/a.json.
    commit_files(
        &store,
        DEFAULT_RESULTS_REF,
        &[("v1/a.json", "A"), ("v1/c.json", "c")],
    );
    let local = store.tip().unwrap();
    let err = store
        .merge_from(THEIRS, "origin's copy")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("v1/a.json") && err.contains("changed"),
        "{err}"
    );
    assert!(
        err.contains("origin's copy") && err.contains("(local)"),
        "{err}"
    );
    // The remote, rewritten to drop a record: a pull would lose it.
    let repo = store.repo().unwrap();
    repo.reference(DEFAULT_RESULTS_REF, base, true, "reset")
        .unwrap();
    let mut update = git2::build::TreeUpdateBuilder::new();
    update.remove("v1/b.json");
    let base_tree = repo.find_commit(base).unwrap().tree().unwrap();
    let tree = repo
        .find_tree(update.create_updated(&repo, &base_tree).unwrap())
        .unwrap();
    let sig = signature().unwrap();
    let parent = repo.find_commit(base).unwrap();
    let dropped = repo
        .commit(None, &sig, &sig, "drop", &tree, &[&parent])
        .unwrap();
    repo.reference(THEIRS, dropped, true, "test").unwrap();
    let err = store
        .merge_from(THEIRS, "origin's copy")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("v1/b.json") && err.contains("removed"),
        "{err}"
    );
    assert_eq!(store.tip().unwrap(), Some(base), "nothing moved");
    assert_ne!(local, Some(base));
}

#[test]
fn concurrent_writers_in_one_clone_lose_no_commit() {
    // Rounds from an absent ref, the threads released together: the first
    // commits race to create the ref, where a lost update once hid.
    for round in 0..4 {
        let (_dir, store) = scratch();
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..3 {
                        let r = record(
                            &format!("20261122T020631.537Z-1-{t}x{i}"),
                            RunState::Complete,
                        );
                        store.save(&r).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let sha = record("x", RunState::Complete).commit.sha;
        assert_eq!(store.load(&sha).unwrap().len(), 24, "round {round}");
    }
}

#[test]
fn abandoned_pending_records_are_committed_live_ones_kept() {
    let (_dir, store) = scratch();
    // Pending files of other processes (written without their locks, as
    // an earlier version did): pid 1 is init, alive; a pid far above any
    // pid_max is dead.
    let alive = record("20261122T020631.537Z-1-aa", RunState::Running);
    let dead = record("20261122T020631.537Z-2147483646-bb", RunState::Running);
    for r in [&alive, &dead] {
        crate::store::dir::write_record_file(&store.pending_path(r), r).unwrap();
    }
    let done = store.commit_abandoned().unwrap();
    assert_eq!(done.committed, std::slice::from_ref(&dead.run_id));
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert!(store.pending_path(&alive).exists());
    assert!(!store.pending_path(&dead).exists());
    let entries = store.entries(&dead.commit.sha).unwrap();
    let located: Vec<(&str, bool)> = entries
        .iter()
        .map(|s| {
            (
                s.record.run_id.as_str(),
                matches!(s.location, Location::Committed(_)),
            )
        })
        .collect();
    assert_eq!(located.len(), 2);
    assert!(located.contains(&(dead.run_id.as_str(), true)));
    assert!(located.contains(&(alive.run_id.as_str(), false)));
    let committed = entries
        .iter()
        .find(|s| s.record.run_id == dead.run_id)
        .unwrap();
    assert_eq!(
        committed.record.state,
        RunState::Running,
        "committed as it was"
    );
}

#[test]
fn pid_liveness_reads_the_run_id() {
    let me = RunId::new(chrono::Utc::now());
    assert!(process_alive(&me));
    assert!(!process_alive(
        &RunId::try_from("20261122T020631.537Z-2147483646-bb").unwrap()
    ));
    assert!(process_alive(&RunId::try_from("no-pid-here").unwrap()));
}

#[test]
fn a_run_is_alive_while_its_lock_is_held_whatever_its_pid() {
    let (_dir, store) = scratch();
    // Saved by this process: locked, so alive.
    let mine = record("20261122T020631.537Z-2147483646-cc", RunState::Running);
    store.save(&mine).unwrap();
    // Another process's run in a container that reused pid 1: its lock
    // file is there but nobody holds it, so the run is over, whatever pid 1 is.
    let reused = record("20261122T020631.537Z-1-dd", RunState::Running);
    let pending = store.pending_path(&reused);
    crate::store::dir::write_record_file(&pending, &reused).unwrap();
    std::fs::write(
        pending.with_file_name(".20261122T020631.537Z-1-dd.lock"),
        "",
    )
    .unwrap();
    let done = store.commit_abandoned().unwrap();
    assert_eq!(done.committed, std::slice::from_ref(&reused.run_id));
    assert!(
        store.pending_path(&mine).exists(),
        "a locked run stays pending"
    );
    // Finishing the run commits it and releases the lock with its files.
    let mut finished = mine.clone();
    finished.state = RunState::Complete;
    store.save(&finished).unwrap();
    let dir = store.pending_path(&mine).parent().unwrap().to_path_buf();
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
}
