//! The git store between clones and a bare `origin` on disk: sixteen clones
//! pushing at once lose and overwrite nothing, a push killed at any moment
//! leaves every ref whole, a record rewritten on one side is refused by
//! path, an unreachable remote loses nothing, a killed run is pushed as it
//! was, the token is never printed, `store ls` names shards, and no store
//! command touches the work tree, the index or HEAD.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::common::{machine_lock, output, Bare, Repo};
use regress::record::Record;

const RESULTS: &str = "refs/regress/results";

/// A mock pipeline that takes milliseconds: two cases, one process.
fn quick_pipeline(name: &str) -> String {
    format!(
        "version: 1\nname: {name}\nmodel: {{builtin: mlp}}\nrunner:\n  backend: mock\n  processes: 1\n  measure: {{min_iters: 5, min_time: 0s, max_time: 50ms}}\nmatrix:\n  batch: [1, 2]\n"
    )
}

/// The pipeline the sixteen shards split: 32 cases (one group each), one
/// process each, milliseconds per case.
const SHARDED: &str = "workflows/sharded.yaml";

fn sharded_pipeline() -> String {
    let batches: Vec<String> = (1..=32).map(|b| b.to_string()).collect();
    format!(
        "version: 1\nname: sharded\nmodel: {{builtin: mlp}}\nrunner:\n  backend: mock\n  processes: 1\n  measure: {{min_iters: 5, min_time: 0s, max_time: 50ms}}\nmatrix:\n  batch: [{}]\n",
        batches.join(", ")
    )
}

fn pipeline_name(i: usize) -> String {
    format!("p{i:02}")
}

fn pipeline_file(i: usize) -> String {
    format!("workflows/{}.yaml", pipeline_name(i))
}

/// A bare origin whose `main` has two commits, both holding pipelines
/// p00…p{n-1}; returns it and the two commits' shas.
fn origin_with_pipelines(n: usize) -> (Bare, [String; 2]) {
    let origin = Bare::new();
    let seed = Repo::new();
    for i in 0..n {
        seed.write(&pipeline_file(i), &quick_pipeline(&pipeline_name(i)));
    }
    seed.write(SHARDED, &sharded_pipeline());
    let first = seed.commit("pipelines");
    seed.write("README", "second commit\n");
    let second = seed.commit("readme");
    seed.git(&["remote", "add", "origin", &origin.url()]);
    seed.git(&["push", "-q", "origin", "main"]);
    (origin, [first, second])
}

fn git_dir(repo: &Repo) -> PathBuf {
    repo.path().join(".git")
}

/// Every record file in the results ref of the repository at `git_dir`:
/// path → (blob, record). Asserts that every object the ref reaches is
/// present (git rev-list --objects) and that every file parses as a record.
fn stored(git_dir: &Path) -> BTreeMap<String, (git2::Oid, Record)> {
    let repo = git2::Repository::open(git_dir).unwrap();
    let Ok(tip) = repo.refname_to_id(RESULTS) else {
        return BTreeMap::new();
    };
    let objects = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-list", "--objects", RESULTS])
        .output()
        .unwrap();
    assert!(
        objects.status.success(),
        "{RESULTS} in {} reaches a missing object: {}",
        git_dir.display(),
        String::from_utf8_lossy(&objects.stderr)
    );
    let tree = repo.find_commit(tip).unwrap().tree().unwrap();
    let mut out = BTreeMap::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            let path = format!("{dir}{}", entry.name().unwrap());
            let blob = repo.find_blob(entry.id()).unwrap();
            let text = String::from_utf8_lossy(blob.content());
            let record = regress::store::parse_record(&text, Path::new(&path))
                .unwrap_or_else(|e| panic!("{} {path}: {e}", git_dir.display()));
            out.insert(path, (entry.id(), record));
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    out
}

/// `regress run <pipeline> --store git [more args]`; returns the path of
/// the record in the ref.
fn run_into_git_with(repo: &Repo, pipeline: &str, more: &[&str]) -> String {
    let mut args = vec!["run", pipeline, "--store", "git"];
    args.extend_from_slice(more);
    let (code, stdout, stderr) = output(repo.regress().args(&args));
    assert_eq!(code, 0, "run {pipeline}:\n{stdout}\n{stderr}");
    let prefix = format!("stored {RESULTS}:");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no stored line:\n{stdout}"))
        .to_string()
}

/// `regress run <pipeline> --store git`; returns the path of the record in the ref.
fn run_into_git(repo: &Repo, pipeline: &str) -> String {
    run_into_git_with(repo, pipeline, &[])
}

fn push(repo: &Repo) -> (i32, String, String) {
    output(repo.regress().args(["store", "push", "--timeout", "60s"]))
}

fn push_ok(repo: &Repo) -> String {
    let (code, stdout, stderr) = push(repo);
    assert_eq!(code, 0, "store push:\n{stdout}\n{stderr}");
    stderr
}

/// Runs `f` for every clone on a thread of its own, all released at the same moment.
fn at_once<T: Send>(clones: &[Repo], f: impl Fn(usize, &Repo) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(clones.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = clones
            .iter()
            .enumerate()
            .map(|(i, clone)| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i, clone)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Sixteen clones run the sixteen shards of one pipeline
/// (`run --store git --shard i/16`) and push at the same moment, five
/// rounds over; afterwards the remote and a fresh shallow clone hold every
/// record ever made, each with the content its clone wrote, and `compare`
/// in the fresh clone sees every case of every shard. Records are counted
/// per (shard, commit).
#[test]
fn sixteen_clones_push_at_once_and_nothing_is_lost() {
    const CLONES: usize = 16;
    const ROUNDS: usize = 5;
    // Sixteen processes at once load every core: no timing test meanwhile.
    let _machine = machine_lock();
    let started = Instant::now();
    let (origin, shas) = origin_with_pipelines(CLONES);
    let clones: Vec<Repo> = (0..CLONES)
        .map(|_| Repo::clone_of(&origin.url(), &[]))
        .collect();
    // (pipeline, commit) → the record paths made there.
    let mut made: BTreeMap<(u32, String), BTreeSet<String>> = BTreeMap::new();
    let mut retries = 0;
    let mut push_time = Duration::ZERO;
    for round in 0..ROUNDS {
        let sha = &shas[round % 2];
        for clone in &clones {
            clone.git(&["checkout", "-q", "--detach", sha]);
        }
        let running = Instant::now();
        let paths = at_once(&clones, |i, clone| {
            run_into_git_with(clone, SHARDED, &["--shard", &format!("{}/{CLONES}", i + 1)])
        });
        eprintln!(
            "round {round}: runs {:.1} s",
            running.elapsed().as_secs_f64()
        );
        for (i, path) in paths.into_iter().enumerate() {
            made.entry((i as u32 + 1, sha.clone()))
                .or_default()
                .insert(path);
        }
        let pushing = Instant::now();
        let pushes = at_once(&clones, |_, clone| push(clone));
        push_time += pushing.elapsed();
        eprintln!(
            "round {round}: pushes {:.1} s",
            pushing.elapsed().as_secs_f64()
        );
        for (i, (code, stdout, stderr)) in pushes.iter().enumerate() {
            assert_eq!(*code, 0, "round {round}, clone {i}:\n{stdout}\n{stderr}");
            retries += stderr.matches("trying again").count();
        }

        let remote = stored(origin.path());
        let all_made: BTreeSet<&String> = made.values().flatten().collect();
        for path in &all_made {
            assert!(remote.contains_key(*path), "round {round}: {path} was lost");
        }
        assert_eq!(
            remote.len(),
            all_made.len(),
            "round {round}: only what was made"
        );
        for (i, clone) in clones.iter().enumerate() {
            for (path, (blob, _)) in stored(&git_dir(clone)) {
                assert_eq!(
                    remote[&path].0, blob,
                    "round {round}: clone {i}'s {path} was overwritten"
                );
            }
        }
    }

    // The final job of a CI matrix: a fresh clone of one branch, shallow
    // (deep enough for both commits), that never fetched the results ref.
    let fresh = Repo::clone_of(
        &format!("file://{}", origin.url()),
        &["--depth", "2", "--single-branch", "-b", "main"],
    );
    let (code, stdout, stderr) = output(fresh.regress().args(["store", "pull"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let pulled = stored(&git_dir(&fresh));
    let remote = stored(origin.path());
    assert_eq!(
        pulled.iter().map(|(p, (b, _))| (p, b)).collect::<Vec<_>>(),
        remote.iter().map(|(p, (b, _))| (p, b)).collect::<Vec<_>>()
    );
    // Counted per shard and commit: three runs at the first commit
    // (rounds 0, 2, 4), two at the second, each with its two cases of 32.
    let mut found: BTreeMap<(u32, String), BTreeSet<String>> = BTreeMap::new();
    for (path, (_, record)) in &pulled {
        assert_eq!(record.cases.len(), 2, "{path}");
        let shard = record.shard.as_ref().expect("a sharded run").shard;
        assert_eq!(shard.count, CLONES as u32);
        found
            .entry((shard.index, record.commit.sha.to_string()))
            .or_default()
            .insert(path.clone());
    }
    assert_eq!(found, made);
    for (i, sha) in shas.iter().enumerate() {
        let runs = if i == 0 { 3 } else { 2 };
        let (code, stdout, stderr) = output(fresh.regress().args(["store", "ls", sha]));
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.contains(&format!("{} run(s) of 1 pipeline(s)", CLONES * runs)),
            "{stdout}"
        );
        assert_eq!(
            stdout.matches(" complete ").count(),
            CLONES * runs,
            "{stdout}"
        );
    }
    let (code, stdout, stderr) = output(fresh.regress().args([
        "compare", &shas[0], &shas[1], "--store", "git", "--format", "json",
    ]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // Every case of every shard is compared: none missing, new or removed.
    assert_eq!(v["counts"]["total"], 32, "{v}");
    for gone in ["missing", "new", "removed", "not_comparable", "failed"] {
        assert_eq!(v["counts"][gone], 0, "{gone}: {v}");
    }
    eprintln!(
        "{CLONES} clones x {ROUNDS} rounds: pushes took {:.1} s with {retries} retries; the test body {:.1} s",
        push_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// `store push` killed with SIGKILL at random moments, ten times, while
/// another clone keeps the remote moving (so each push fetches and merges):
/// the remote ref always points at a whole commit, the local store always
/// reads, and a later push sends everything.
#[test]
fn sigkill_during_push_leaves_every_ref_whole() {
    // The kill moments are drawn against a measured push: keep it steady.
    let _machine = machine_lock();
    let (origin, _) = origin_with_pipelines(2);
    let victim = Repo::clone_of(&origin.url(), &[]);
    let other = Repo::clone_of(&origin.url(), &[]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments drawn with seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);

    // One whole push, to know how long "during" lasts.
    run_into_git(&victim, &pipeline_file(0));
    let timing = Instant::now();
    push_ok(&victim);
    let span_ms = timing.elapsed().as_millis() as u64;
    let mut mid_push = 0;

    for kill in 0..10 {
        run_into_git(&other, &pipeline_file(1));
        push_ok(&other);
        run_into_git(&victim, &pipeline_file(0));
        let mut child = victim
            .regress()
            .args(["store", "push"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = rng.u64(0..=span_ms * 3 / 2);
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            mid_push += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let remote = stored(origin.path());
        assert!(!remote.is_empty(), "kill {kill} after {delay} ms");
        stored(&git_dir(&victim));
        let (code, stdout, stderr) = output(victim.regress().args(["store", "ls"]));
        assert_eq!(code, 0, "kill {kill} after {delay} ms: {stderr}");
        assert!(stdout.contains("p00"), "{stdout}");
    }

    eprintln!("{mid_push} of 10 kills landed while the push ran (one push took {span_ms} ms)");
    assert!(mid_push > 0, "no kill landed during a push");

    push_ok(&victim);
    push_ok(&other);
    let remote = stored(origin.path());
    for clone in [&victim, &other] {
        for (path, (blob, _)) in stored(&git_dir(clone)) {
            assert_eq!(remote.get(&path).map(|r| r.0), Some(blob), "{path}");
        }
    }
    assert_eq!(remote.len(), 1 + 10 + 10, "every run of both clones");
}

/// Commits `text` at `path` on top of the results ref of the repository
/// at `git_dir`, as a damaged or hand-edited copy would hold it.
fn write_in_ref(git_dir: &Path, path: &str, text: &str) -> git2::Oid {
    let repo = git2::Repository::open(git_dir).unwrap();
    let parent = repo
        .find_commit(repo.refname_to_id(RESULTS).unwrap())
        .unwrap();
    let mut update = git2::build::TreeUpdateBuilder::new();
    let blob = repo.blob(text.as_bytes()).unwrap();
    update.upsert(path, blob, git2::FileMode::Blob);
    let tree = update
        .create_updated(&repo, &parent.tree().unwrap())
        .unwrap();
    let tree = repo.find_tree(tree).unwrap();
    let sig = git2::Signature::now("someone", "someone@example.com").unwrap();
    let oid = repo
        .commit(None, &sig, &sig, "edit", &tree, &[&parent])
        .unwrap();
    repo.reference(RESULTS, oid, true, "edit").unwrap();
    oid
}

fn tip(git_dir: &Path) -> git2::Oid {
    git2::Repository::open(git_dir)
        .unwrap()
        .refname_to_id(RESULTS)
        .unwrap()
}

/// The same path with different content on both sides: push and pull
/// fail naming the path and both blobs, and write nothing. A rewrite that
/// would fast-forward is refused the same way.
#[test]
fn the_same_path_with_other_content_is_an_error_naming_it() {
    let (origin, _) = origin_with_pipelines(1);
    let a = Repo::clone_of(&origin.url(), &[]);
    let path = run_into_git(&a, &pipeline_file(0));
    push_ok(&a);
    let b = Repo::clone_of(&origin.url(), &[]);
    let (code, _, stderr) = output(b.regress().args(["store", "pull"]));
    assert_eq!(code, 0, "{stderr}");

    let remote_tip = write_in_ref(origin.path(), &path, "{\"side\": \"remote\"}\n");
    let local_tip = write_in_ref(&git_dir(&b), &path, "{\"side\": \"local\"}\n");
    for args in [["store", "push"], ["store", "pull"]] {
        let (code, stdout, stderr) = output(b.regress().args(args));
        assert_eq!(code, 2, "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(&path), "{args:?}: {stderr}");
        assert!(
            stderr.contains("(local)") && stderr.contains("origin's"),
            "{stderr}"
        );
        let repo = git2::Repository::open(git_dir(&b)).unwrap();
        for side in ["remote", "local"] {
            let blob = repo
                .blob(format!("{{\"side\": \"{side}\"}}\n").as_bytes())
                .unwrap();
            assert!(stderr.contains(&blob.to_string()), "{side} blob: {stderr}");
        }
        assert_eq!(tip(origin.path()), remote_tip, "{args:?} wrote the remote");
        assert_eq!(tip(&git_dir(&b)), local_tip, "{args:?} wrote the local ref");
    }

    // A clone that rewrites the path on top of what it pulled would
    // fast-forward the remote: refused too.
    let c = Repo::clone_of(&origin.url(), &[]);
    let (code, _, stderr) = output(c.regress().args(["store", "pull"]));
    assert_eq!(code, 0, "{stderr}");
    write_in_ref(&git_dir(&c), &path, "{\"side\": \"rewritten\"}\n");
    let (code, stdout, stderr) = push(&c);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&path) && stderr.contains("changed"),
        "{stderr}"
    );
    assert_eq!(tip(origin.path()), remote_tip);
}

/// What `git status`, HEAD and the index say, in every state a file can be in.
fn work_state(repo: &Repo) -> Vec<String> {
    [
        vec!["status", "--porcelain", "--untracked-files=all"],
        vec!["rev-parse", "HEAD"],
        vec!["symbolic-ref", "HEAD"],
        vec!["ls-files", "--stage"],
        vec!["diff"],
    ]
    .iter()
    .map(|args| repo.git(args))
    .collect()
}

/// Every command of the git store leaves the work tree, the index and
/// HEAD as they were: staged, modified and untracked files included.
#[test]
fn store_commands_leave_work_tree_index_and_head_alone() {
    let (origin, _) = origin_with_pipelines(1);
    let c = Repo::clone_of(&origin.url(), &[]);
    c.write("staged.txt", "staged\n");
    c.git(&["add", "staged.txt"]);
    c.write("README", "modified\n");
    c.write("untracked.txt", "untracked\n");
    let before = work_state(&c);
    assert!(before[0].contains("staged.txt") && before[0].contains("README"));
    let steps: [&[&str]; 5] = [
        &["run", "workflows/p00.yaml", "--store", "git"],
        &["store", "push"],
        &["store", "pull"],
        &["store", "ls"],
        // The run was made in a dirty tree: compare it anyway.
        &["compare", "HEAD", "HEAD", "--store", "git", "--allow-dirty"],
    ];
    for args in steps {
        let (code, stdout, stderr) = output(c.regress().args(args));
        assert_eq!(code, 0, "{args:?}:\n{stdout}\n{stderr}");
        assert_eq!(work_state(&c), before, "after regress {args:?}");
    }
    // REGRESS_STORE=git chooses the same store as the flag.
    let (code, stdout, stderr) = output(
        c.regress()
            .args(["compare", "HEAD", "HEAD", "--allow-dirty"])
            .env("REGRESS_STORE", "git"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("mlp[batch=2,fp32,eager]/forward"),
        "{stdout}"
    );
    assert_eq!(work_state(&c), before);
    assert!(
        !c.path().join(".regress").exists(),
        "the dir store was not used"
    );
}

/// With the remote gone, `run` still stores, `push` and `pull` fail with
/// exit status 3 and say nothing is lost; once the remote exists, one push
/// sends every record.
#[test]
fn an_unreachable_remote_keeps_results_and_a_later_push_sends_them() {
    let repo = Repo::new();
    repo.write("p.yaml", &quick_pipeline("solo"));
    repo.commit("c");
    let gone = tempfile::tempdir().unwrap();
    let url = gone.path().join("origin.git");
    repo.git(&["remote", "add", "origin", &url.display().to_string()]);
    run_into_git(&repo, "p.yaml");
    run_into_git(&repo, "p.yaml");
    for args in [["store", "push"], ["store", "pull"]] {
        let (code, stdout, stderr) = output(repo.regress().args(args));
        assert_eq!(code, 3, "{args:?}:\n{stdout}\n{stderr}");
        assert!(stderr.contains("cannot reach remote `origin`"), "{stderr}");
        assert!(stderr.contains("nothing is lost"), "{stderr}");
    }
    let (code, stdout, _) = output(repo.regress().args(["store", "ls"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("2 run(s) of 1 pipeline(s)"), "{stdout}");

    let out = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (code, stdout, stderr) = push(&repo);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("2 new record(s)"), "{stdout}");
    assert_eq!(stored(&url).len(), 2);
}

/// GITHUB_TOKEN is never printed, whether git or regress would have
/// shown it: not in a URL's user info, not in an error.
#[test]
fn the_token_never_appears_in_output() {
    const TOKEN: &str = "secret-token-value";
    let repo = Repo::new();
    repo.write("p.yaml", &quick_pipeline("solo"));
    repo.commit("c");
    run_into_git(&repo, "p.yaml");
    // Port 1 of the loopback address: nothing listens, nothing leaves the machine.
    let with_token = format!("https://x-access-token:{TOKEN}@127.0.0.1:1/o/r.git");
    repo.git(&["remote", "add", "origin", &with_token]);
    for url in [with_token.as_str(), "https://127.0.0.1:1/o/r.git"] {
        repo.git(&["remote", "set-url", "origin", url]);
        for args in [["store", "push"], ["store", "pull"]] {
            let mut cmd = repo.regress();
            cmd.args(args)
                .env("GITHUB_TOKEN", TOKEN)
                .env("GITHUB_SERVER_URL", "https://127.0.0.1:1");
            for proxy in [
                "https_proxy",
                "HTTPS_PROXY",
                "http_proxy",
                "HTTP_PROXY",
                "ALL_PROXY",
                "all_proxy",
            ] {
                cmd.env_remove(proxy);
            }
            let (code, stdout, stderr) = output(&mut cmd);
            assert_eq!(code, 3, "{url} {args:?}:\n{stdout}\n{stderr}");
            assert!(stderr.contains("cannot reach remote `origin`"), "{stderr}");
            assert!(
                !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
                "{url} {args:?} printed the token:\n{stdout}\n{stderr}"
            );
        }
    }
}

/// A run killed mid-way leaves its record pending in this clone: `store
/// ls` shows it, and the next push commits it as it was (still `running`,
/// with the cases that finished) instead of losing it.
#[test]
fn a_killed_run_is_pushed_as_it_was() {
    let (origin, _) = origin_with_pipelines(1);
    let c = Repo::clone_of(&origin.url(), &[]);
    let pending = git_dir(&c).join("regress/pending");
    let mut child = c
        .regress()
        .args(["run", &pipeline_file(0), "--store", "git"])
        .env("REGRESS_MOCK_DELAY_MS", "400")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the first case is saved: the record says `1 ok`.
    let started = Instant::now();
    while !output(c.regress().args(["store", "ls"])).1.contains("1 ok") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no case finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, stdout, _) = output(c.regress().args(["store", "ls"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("running") && stdout.contains("pending"),
        "{stdout}"
    );

    let (code, stdout, stderr) = push(&c);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 new record(s)"), "{stdout}");
    assert!(stderr.contains("killed before they finished"), "{stderr}");
    let remote = stored(origin.path());
    let (_, record) = remote.values().next().expect("the killed run was pushed");
    assert_eq!(record.state, regress::record::RunState::Running);
    assert!(record
        .cases
        .iter()
        .any(|case| case.status == regress::record::CaseStatus::Ok));
    assert!(
        std::fs::read_dir(&pending).map_or(true, |mut d| d.next().is_none()),
        "nothing is left pending"
    );
}

/// `store ls` names the shard of each run of a sharded pipeline.
#[test]
fn store_ls_names_each_runs_shard() {
    let repo = Repo::new();
    repo.write("p.yaml", &quick_pipeline("split"));
    repo.commit("c");
    for shard in ["1/2", "2/2"] {
        let (code, stdout, stderr) = output(
            repo.regress()
                .args(["run", "p.yaml", "--store", "git", "--shard", shard]),
        );
        assert_eq!(code, 0, "{stdout}\n{stderr}");
    }
    let (code, stdout, stderr) = output(repo.regress().args(["store", "ls"]));
    assert_eq!(code, 0, "{stderr}");
    for shard in ["1/2", "2/2"] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("shard {shard}")))
            .unwrap_or_else(|| panic!("no shard {shard}:\n{stdout}"));
        assert!(
            line.contains("complete") && line.contains("1 case(s): 1 ok"),
            "{line}"
        );
    }
}

#[test]
fn shard_results_uploaded_as_directories_are_imported_into_the_git_store() {
    let _guard = machine_lock();
    let repo = Repo::new();
    repo.write(SHARDED, &sharded_pipeline());
    let sha = repo.commit("pipelines");
    // Two shards, each into its own directory store (what PR shards upload),
    // then both directories merged as download-artifact merges them.
    let artifacts = tempfile::tempdir().unwrap();
    let merged = artifacts.path().join("merged");
    for i in 1..=2 {
        let dir = artifacts.path().join(format!("shard-{i}"));
        let (code, out, err) = output(repo.regress().args([
            "run",
            SHARDED,
            "--shard",
            &format!("{i}/2"),
            "--store",
            dir.to_str().unwrap(),
        ]));
        assert_eq!(code, 0, "{out}{err}");
        std::fs::create_dir_all(&merged).unwrap();
        let copied = Command::new("cp")
            .args([
                "-r",
                &format!("{}/.", dir.display()),
                merged.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(copied.success());
    }
    let import = || {
        output(
            repo.regress()
                .args(["store", "import", merged.to_str().unwrap()]),
        )
    };
    let (code, out, err) = import();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("imported 2 record(s) into refs/regress/results"),
        "{out}"
    );
    let records = stored(&git_dir(&repo));
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.values().all(|(_, r)| r.commit.sha.as_str() == sha));
    // Importing again changes nothing: the same records are already there.
    let tip_before = tip(&git_dir(&repo));
    let (code, _, err) = import();
    assert_eq!(code, 0, "{err}");
    assert_eq!(tip(&git_dir(&repo)), tip_before);
    let (code, out, _) = output(repo.regress().args(["store", "ls", &sha]));
    assert_eq!(code, 0);
    assert!(
        out.contains("shard 1/2") && out.contains("shard 2/2"),
        "{out}"
    );
    // A directory that is not a store is refused by name.
    let (code, _, err) = output(repo.regress().args(["store", "import", "nowhere"]));
    assert_ne!(code, 0);
    assert!(err.contains("nowhere is not a directory"), "{err}");
}
