//! The git store: records as files in a ref of the user's repository
//! (`refs/regress/results` by default), written with `git2` as blobs, trees
//! and commits without touching the work tree, the index or HEAD. The
//! results then travel with the repository (`regress store push` and
//! `pull`, see `sync`), and many CI shards can add to them at once.
//!
//! Layout of the ref's tree:
//! `v1/<sha[0:2]>/<sha>/<pipeline>/<fingerprint>/<run_id>.json`.
//!
//! Records in the ref never change. A session saves its record after every
//! case while it is `running`; those saves go to a pending file inside the
//! git directory (`<git dir>/regress/pending/<sha>/<run_id>.json`, written
//! atomically like the dir store). Once the run is finished (complete or
//! interrupted) its record is committed into the ref, one commit per
//! record, and the pending file is removed. So a path in the ref holds one
//! content forever, and a union merge of two copies of the ref conflicts
//! only when something is damaged. `load` returns the ref's records plus the
//! pending ones (runs still going, or killed); `store push` commits, as they
//! are, the pending records of runs whose process is gone, so a killed run
//! is not lost either.
//!
//! The ref only moves by compare-and-swap, so processes writing into the
//! same clone never lose each other's commits.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::{ErrorCode, FileMode, ObjectType, Oid, Repository};

use super::dir::{
    is_hidden, parse_record, read_dir_sorted, read_record, record_bytes, write_atomic,
};
use super::{Store, StoreError};
use crate::record::{CommitSha, Record, RunId, RunState};

/// The ref results are kept in unless `--store-ref` names another.
pub const DEFAULT_RESULTS_REF: &str = "refs/regress/results";

/// Top directory of the ref's tree: the version of this layout (not of the
/// record format, which every file carries), so a later layout can live
/// beside this one in the same ref.
const LAYOUT_DIR: &str = "v1";

/// Where, under the repository's (common) git directory, running records
/// wait until they are finished. Inside the git directory so that it is
/// never part of the work tree, shared by every worktree of the clone.
const PENDING_DIR: &str = "regress/pending";

/// Commits in the ref are made by regress, never in the user's name: the
/// user's identity may not even be configured on a CI runner.
const AUTHOR_NAME: &str = "regress";
const AUTHOR_EMAIL: &str = "regress@localhost";

/// Ref namespaces the results may not live in: git's remote-tracking refs
/// and regress's own (a fetch would overwrite them), and tags (which a
/// push without force never moves).
const FORBIDDEN_REF_PREFIXES: [&str; 3] = ["refs/remotes/", "refs/regress/remotes/", "refs/tags/"];

/// Where regress keeps its copy of a remote's results ref.
const TRACKING_PREFIX: &str = "refs/regress/remotes";

/// A ref update holds its lock file for microseconds; one this old was
/// left by a writer that was killed and is removed.
const STALE_LOCK_AGE: Duration = Duration::from_secs(10);

/// How long to wait before trying a ref whose lock another writer holds.
const LOCK_POLL: Duration = Duration::from_millis(10);

/// Compare-and-swap attempts before giving up on a ref that keeps moving:
/// each attempt that loses means another writer won, so this many losses in
/// a row (each at least `LOCK_POLL` apart when locked) means something is
/// wrong, not busy.
const MAX_SWAP_ATTEMPTS: u32 = 2000;

/// A problem with the git store, naming the ref, the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitStoreError {
    #[error("`{name}` cannot hold results: {reason}\n  use a full ref name under refs/, such as {DEFAULT_RESULTS_REF}")]
    InvalidRef { name: String, reason: String },
    #[error("cannot open the git repository at {}: {}\n  run regress inside a git checkout", path.display(), source.message())]
    Open { path: PathBuf, source: git2::Error },
    #[error("git store {reference}: cannot {action}: {}", source.message())]
    Git {
        reference: String,
        action: String,
        source: git2::Error,
    },
    #[error("{path} differs between {ours} (blob {ours_blob}) and {theirs} (blob {theirs_blob}); nothing was written\n  stored records never change, so one side is damaged: compare them with `git cat-file -p <blob>` and remove the wrong one from its ref")]
    Conflict {
        path: String,
        ours: String,
        ours_blob: Oid,
        theirs: String,
        theirs_blob: Oid,
    },
    #[error("{path} (blob {blob}) is in {kept} but {changed} {what} it; nothing was written\n  stored records are never changed or removed: find out how {changed} was rewritten, and restore the record")]
    Rewritten {
        path: String,
        blob: Oid,
        kept: String,
        changed: String,
        /// `changed` or `removed`.
        what: &'static str,
    },
    #[error("git store {reference}: gave up updating it after {attempts} attempts, other writers kept moving it; try again")]
    Contended { reference: String, attempts: u32 },
}

/// A validated name of the ref results live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsRef(String);

impl ResultsRef {
    /// The full ref name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ref that holds what was last fetched of this ref from `remote`:
    /// `refs/regress/remotes/<remote>/<name without refs/>`, never a branch.
    pub fn tracking(&self, remote: &str) -> Result<String, GitStoreError> {
        let rest = self.0.strip_prefix("refs/").expect("validated under refs/");
        let name = format!("{TRACKING_PREFIX}/{remote}/{rest}");
        if !git2::Reference::is_valid_name(&name) {
            return Err(GitStoreError::InvalidRef {
                name,
                reason: format!("remote name `{remote}` does not make a valid ref name"),
            });
        }
        Ok(name)
    }
}

impl Default for ResultsRef {
    fn default() -> Self {
        ResultsRef(DEFAULT_RESULTS_REF.to_string())
    }
}

impl TryFrom<&str> for ResultsRef {
    type Error = GitStoreError;

    fn try_from(name: &str) -> Result<Self, GitStoreError> {
        let invalid = |reason: &str| GitStoreError::InvalidRef {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if !name.starts_with("refs/") || name.split('/').count() < 3 {
            return Err(invalid(
                "it is not a full ref name (refs/<namespace>/<name>)",
            ));
        }
        if !git2::Reference::is_valid_name(name) {
            return Err(invalid("git does not accept it as a ref name"));
        }
        if let Some(prefix) = FORBIDDEN_REF_PREFIXES.iter().find(|p| name.starts_with(*p)) {
            return Err(invalid(&format!(
                "refs under {prefix} are git's or regress's copies of other refs, or tags, which a push never moves"
            )));
        }
        Ok(ResultsRef(name.to_string()))
    }
}

impl std::fmt::Display for ResultsRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a loaded record is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Committed: the path in the ref's tree.
    Committed(String),
    /// Still running (or killed): a file in the pending area of this clone.
    Pending(PathBuf),
}

/// A record with where it is kept.
#[derive(Debug, Clone)]
pub struct Stored {
    pub record: Record,
    pub location: Location,
}

/// What merging another ref into the results ref did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The other ref does not exist.
    NothingToMerge,
    /// Both refs point at the same commit.
    UpToDate,
    /// The results ref already contains the other one.
    Ahead,
    /// The results ref was behind and now points at the other ref's commit.
    FastForward(Oid),
    /// A merge commit with both as parents holds the union of both trees.
    Merged(Oid),
}

/// A merge worked out but not applied: the results ref is where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePlan {
    /// Where the results ref pointed when the plan was made.
    pub ours: Option<Oid>,
    pub outcome: MergeOutcome,
}

impl MergePlan {
    /// The commit that holds both sides; None when neither exists.
    pub fn result(&self) -> Option<Oid> {
        match self.outcome {
            MergeOutcome::FastForward(oid) | MergeOutcome::Merged(oid) => Some(oid),
            MergeOutcome::NothingToMerge | MergeOutcome::UpToDate | MergeOutcome::Ahead => {
                self.ours
            }
        }
    }
}

/// What committing one blob at a path found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Committed {
    /// A new commit holds it.
    New,
    /// The path already held this very blob.
    Same,
    /// The path already held another blob; nothing was written.
    Other(Oid),
}

/// Pending records committed by `GitStore::commit_abandoned`.
#[derive(Debug, Default)]
pub struct Abandoned {
    /// Runs committed as they were when their process died.
    pub committed: Vec<RunId>,
    /// Pending files that could not be read, with why; left in place.
    pub warnings: Vec<String>,
}

/// Records in a ref of a git repository, plus the pending records of this clone.
#[derive(Debug, Clone)]
pub struct GitStore {
    git_dir: PathBuf,
    /// Where git commands run: the work tree's root (relative remote URLs
    /// are relative to it), or the git directory of a bare repository.
    top_dir: PathBuf,
    pending_root: PathBuf,
    results: ResultsRef,
}

impl GitStore {
    /// The store of the repository containing `path`; nothing is written
    /// until the first record.
    pub fn open(path: &Path, results: ResultsRef) -> Result<GitStore, GitStoreError> {
        let repo = Repository::discover(path).map_err(|source| GitStoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(GitStore {
            git_dir: repo.path().to_path_buf(),
            top_dir: repo.workdir().unwrap_or(repo.path()).to_path_buf(),
            pending_root: repo.commondir().join(PENDING_DIR),
            results,
        })
    }

    /// The ref the results live in.
    pub fn results_ref(&self) -> &ResultsRef {
        &self.results
    }

    /// The repository's git directory.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// Where git commands on this repository run.
    pub fn top_dir(&self) -> &Path {
        &self.top_dir
    }

    /// Opened afresh for each operation: objects and refs written by other
    /// processes (a `git fetch`, another regress) are then always seen.
    pub(super) fn repo(&self) -> Result<Repository, GitStoreError> {
        Repository::open(&self.git_dir).map_err(|source| GitStoreError::Open {
            path: self.git_dir.clone(),
            source,
        })
    }

    fn git_error(&self, action: impl Into<String>) -> impl FnOnce(git2::Error) -> GitStoreError {
        let reference = self.results.to_string();
        let action = action.into();
        move |source| GitStoreError::Git {
            reference,
            action,
            source,
        }
    }

    /// The path of a record in the ref's tree.
    pub fn path_of(record: &Record) -> String {
        format!(
            "{}/{}/{}/{}.json",
            commit_dir(&record.commit.sha),
            record.pipeline.name,
            record.machine.fingerprint,
            record.run_id
        )
    }

    fn pending_path(&self, record: &Record) -> PathBuf {
        self.pending_root
            .join(record.commit.sha.as_str())
            .join(format!("{}.json", record.run_id.as_str()))
    }

    /// The commit the results ref points at, if it exists.
    pub fn tip(&self) -> Result<Option<Oid>, GitStoreError> {
        let repo = self.repo()?;
        ref_target(&repo, self.results.as_str()).map_err(self.git_error("read the ref"))
    }

    /// How many record files the tree of commit `oid` holds (0 for none).
    pub fn count_records(&self, oid: Option<Oid>) -> Result<usize, GitStoreError> {
        let Some(oid) = oid else { return Ok(0) };
        let repo = self.repo()?;
        let tree = repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(self.git_error(format!("read commit {oid}")))?;
        let mut count = 0;
        tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
            if entry.kind() == Some(ObjectType::Blob) && entry.name_bytes().ends_with(b".json") {
                count += 1;
            }
            git2::TreeWalkResult::Ok
        })
        .map_err(self.git_error("walk the tree"))?;
        Ok(count)
    }

    /// Every record stored for a commit, with where it is kept: the ref's,
    /// then pending ones the ref does not hold yet; oldest run first.
    pub fn entries(&self, sha: &CommitSha) -> Result<Vec<Stored>, StoreError> {
        let repo = self.repo()?;
        let mut out = self.committed_records(&repo, sha)?;
        let committed: HashSet<RunId> = out.iter().map(|s| s.record.run_id.clone()).collect();
        let dir = self.pending_root.join(sha.as_str());
        if dir.is_dir() {
            for file in read_dir_sorted(&dir)? {
                if is_hidden(&file) || file.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let record = read_record(&file)?;
                // A run killed between its commit and the removal of its
                // pending file: the committed record is the newer one.
                if record.commit.sha == *sha && !committed.contains(&record.run_id) {
                    out.push(Stored {
                        record,
                        location: Location::Pending(file),
                    });
                }
            }
        }
        out.sort_by_key(|s| s.record.started_at);
        Ok(out)
    }

    fn committed_records(
        &self,
        repo: &Repository,
        sha: &CommitSha,
    ) -> Result<Vec<Stored>, StoreError> {
        let read = self.git_error("read the ref");
        let Some(tip) = ref_target(repo, self.results.as_str()).map_err(read)? else {
            return Ok(Vec::new());
        };
        let tree = repo
            .find_commit(tip)
            .and_then(|c| c.tree())
            .map_err(self.git_error(format!("read commit {tip}")))?;
        let dir = commit_dir(sha);
        let commit_tree = match tree.get_path(Path::new(&dir)) {
            Ok(entry) if entry.kind() == Some(ObjectType::Tree) => repo
                .find_tree(entry.id())
                .map_err(self.git_error(format!("read {dir}")))?,
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.git_error(format!("read {dir}"))(e).into()),
        };
        let mut out = Vec::new();
        let subtrees = |tree: &git2::Tree<'_>, at: &str| {
            subtrees(repo, tree).map_err(self.git_error(format!("read {at}")))
        };
        for pipeline in subtrees(&commit_tree, &dir)? {
            let at = format!("{dir}/{}", pipeline.0);
            for machine in subtrees(&pipeline.1, &at)? {
                for file in machine.1.iter() {
                    let Some(name) = file.name().ok().filter(|n| n.ends_with(".json")) else {
                        continue;
                    };
                    if file.kind() != Some(ObjectType::Blob) {
                        continue;
                    }
                    let path = format!("{dir}/{}/{}/{name}", pipeline.0, machine.0);
                    let blob = repo
                        .find_blob(file.id())
                        .map_err(self.git_error(format!("read {path}")))?;
                    let origin = PathBuf::from(format!("{}:{path}", self.results));
                    let text = String::from_utf8_lossy(blob.content());
                    let record = parse_record(&text, &origin)?;
                    if record.commit.sha != *sha {
                        return Err(StoreError::Corrupt {
                            path: origin,
                            message: format!(
                                "it is stored under commit {sha} but measured {}",
                                record.commit.sha
                            ),
                        });
                    }
                    out.push(Stored {
                        record,
                        location: Location::Committed(path),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Commits `blob` at `path` on top of the ref, compare-and-swap, unless
    /// the path already holds a blob.
    fn commit_blob(
        &self,
        repo: &Repository,
        path: &str,
        blob: Oid,
        message: &str,
    ) -> Result<Committed, GitStoreError> {
        let name = self.results.as_str();
        let signature = signature().map_err(self.git_error("make a signature"))?;
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let parent = ref_target(repo, name).map_err(self.git_error("read the ref"))?;
            let parent_commit = match parent {
                Some(oid) => Some(
                    repo.find_commit(oid)
                        .map_err(self.git_error(format!("read commit {oid}")))?,
                ),
                None => None,
            };
            let base = match &parent_commit {
                Some(c) => c.tree(),
                None => empty_tree(repo),
            }
            .map_err(self.git_error("read the tree"))?;
            match base.get_path(Path::new(path)) {
                Ok(entry) if entry.id() == blob => return Ok(Committed::Same),
                Ok(entry) => return Ok(Committed::Other(entry.id())),
                Err(e) if e.code() == ErrorCode::NotFound => {}
                Err(e) => return Err(self.git_error(format!("read {path}"))(e)),
            }
            let mut update = git2::build::TreeUpdateBuilder::new();
            update.upsert(path, blob, FileMode::Blob);
            let tree = update
                .create_updated(repo, &base)
                .and_then(|t| repo.find_tree(t))
                .map_err(self.git_error(format!("write the tree with {path}")))?;
            let parents: Vec<&git2::Commit> = parent_commit.iter().collect();
            let commit = repo
                .commit(None, &signature, &signature, message, &tree, &parents)
                .map_err(self.git_error("write a commit"))?;
            if self.swap(repo, name, commit, parent, message)? {
                return Ok(Committed::New);
            }
        }
        Err(GitStoreError::Contended {
            reference: name.to_string(),
            attempts: MAX_SWAP_ATTEMPTS,
        })
    }

    /// Moves ref `name` from `expected` (None: absent) to `new`; false when
    /// another writer moved it first (or holds its lock), to be retried.
    fn swap(
        &self,
        repo: &Repository,
        name: &str,
        new: Oid,
        expected: Option<Oid>,
        message: &str,
    ) -> Result<bool, GitStoreError> {
        let result = match expected {
            Some(old) => repo.reference_matching(name, new, true, old, message),
            None => repo.reference(name, new, false, message),
        };
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Modified | ErrorCode::Exists | ErrorCode::NotFound
                ) =>
            {
                Ok(false)
            }
            Err(e) if e.code() == ErrorCode::Locked => {
                self.wait_for_lock(repo, name);
                Ok(false)
            }
            Err(e) => Err(GitStoreError::Git {
                reference: name.to_string(),
                action: format!("move it to {new}"),
                source: e,
            }),
        }
    }

    /// Waits a moment for another writer's lock on ref `name`, and removes
    /// the lock file when it is old enough to have been left by a kill.
    pub(super) fn wait_for_lock(&self, repo: &Repository, name: &str) {
        let lock = repo.commondir().join(format!("{name}.lock"));
        let stale = fs::metadata(&lock)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_LOCK_AGE);
        if stale {
            let _ = fs::remove_file(&lock);
        } else {
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// Merges ref `other` (`other_label` names it in messages) into the
    /// results ref; see `merge_commit`.
    pub fn merge_from(
        &self,
        other: &str,
        other_label: &str,
    ) -> Result<MergeOutcome, GitStoreError> {
        let repo = self.repo()?;
        match ref_target(&repo, other).map_err(self.git_error(format!("read {other}")))? {
            Some(theirs) => self.merge_commit(theirs, other_label),
            None => Ok(MergeOutcome::NothingToMerge),
        }
    }

    /// Merges commit `theirs` into the results ref and moves the ref
    /// (compare-and-swap, again while other writers move it first).
    pub fn merge_commit(
        &self,
        theirs: Oid,
        other_label: &str,
    ) -> Result<MergeOutcome, GitStoreError> {
        let repo = self.repo()?;
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let plan = self.plan_in(&repo, theirs, other_label)?;
            let new = match plan.outcome {
                MergeOutcome::FastForward(oid) | MergeOutcome::Merged(oid) => oid,
                other => return Ok(other),
            };
            let message = format!("regress: merge {other_label}");
            if self.swap(&repo, self.results.as_str(), new, plan.ours, &message)? {
                return Ok(plan.outcome);
            }
        }
        Err(GitStoreError::Contended {
            reference: self.results.to_string(),
            attempts: MAX_SWAP_ATTEMPTS,
        })
    }

    /// Works out merging commit `theirs` into the results ref without
    /// moving the ref: nothing when it is contained, a fast-forward when
    /// the results ref is behind, else a new commit with both parents whose
    /// tree is the union of both trees. The same path with different blobs
    /// is a `Conflict`, a path that one side changed or removed on the way
    /// to the other is `Rewritten`; then nothing is written.
    pub fn plan_merge(&self, theirs: Oid, other_label: &str) -> Result<MergePlan, GitStoreError> {
        self.plan_in(&self.repo()?, theirs, other_label)
    }

    fn plan_in(
        &self,
        repo: &Repository,
        theirs: Oid,
        other_label: &str,
    ) -> Result<MergePlan, GitStoreError> {
        let name = self.results.as_str();
        let read = |what: &str| self.git_error(format!("read {what}"));
        let ours = ref_target(repo, name).map_err(read(name))?;
        let plan = |outcome| MergePlan { ours, outcome };
        let Some(ours) = ours else {
            return Ok(plan(MergeOutcome::FastForward(theirs)));
        };
        if ours == theirs {
            return Ok(plan(MergeOutcome::UpToDate));
        }
        let descends = |a, b| repo.graph_descendant_of(a, b).map_err(read("the history"));
        let local = format!("{name} (local)");
        if descends(ours, theirs)? {
            // What a push would send must only add to theirs.
            self.check_adds_only(repo, theirs, ours, other_label, &local)?;
            return Ok(plan(MergeOutcome::Ahead));
        }
        if descends(theirs, ours)? {
            self.check_adds_only(repo, ours, theirs, &local, other_label)?;
            return Ok(plan(MergeOutcome::FastForward(theirs)));
        }
        let (ours_c, theirs_c) = (
            repo.find_commit(ours).map_err(read("our commit"))?,
            repo.find_commit(theirs).map_err(read("their commit"))?,
        );
        let sides = Sides {
            ours: local,
            theirs: other_label.to_string(),
        };
        let tree = union_trees(
            repo,
            &ours_c.tree().map_err(read("our tree"))?,
            &theirs_c.tree().map_err(read("their tree"))?,
            "",
            &sides,
        )?;
        let tree = repo.find_tree(tree).map_err(read("the merged tree"))?;
        let signature = signature().map_err(self.git_error("make a signature"))?;
        let commit = repo
            .commit(
                None,
                &signature,
                &signature,
                &format!("regress: merge {other_label}"),
                &tree,
                &[&ours_c, &theirs_c],
            )
            .map_err(self.git_error("write the merge commit"))?;
        Ok(plan(MergeOutcome::Merged(commit)))
    }

    /// Checks that commit `new` (of side `new_label`) only adds paths to
    /// commit `old` (of `old_label`): a fast-forward takes no union, so a
    /// record changed or removed by rewriting one side would otherwise pass
    /// as an overwrite.
    fn check_adds_only(
        &self,
        repo: &Repository,
        old: Oid,
        new: Oid,
        old_label: &str,
        new_label: &str,
    ) -> Result<(), GitStoreError> {
        let read = |what: String| self.git_error(format!("read {what}"));
        let tree = |oid: Oid| {
            repo.find_commit(oid)
                .and_then(|c| c.tree())
                .map_err(read(format!("commit {oid}")))
        };
        let (old_tree, new_tree) = (tree(old)?, tree(new)?);
        let diff = repo
            .diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None)
            .map_err(read(format!("the changes from {old} to {new}")))?;
        for delta in diff.deltas() {
            let what = match delta.status() {
                git2::Delta::Added => continue,
                git2::Delta::Deleted => "removed",
                _ => "changed",
            };
            let file = delta.old_file();
            return Err(GitStoreError::Rewritten {
                path: file
                    .path()
                    .map_or_else(String::new, |p| p.display().to_string()),
                blob: file.id(),
                kept: old_label.to_string(),
                changed: new_label.to_string(),
                what,
            });
        }
        Ok(())
    }

    /// Commits, as they are, the pending records of runs whose process is
    /// no longer alive (killed, or its machine rebooted), and removes pending
    /// files whose run the ref already holds. A record committed this way
    /// keeps its state `running`; compare reports it as not complete.
    pub fn commit_abandoned(&self) -> Result<Abandoned, StoreError> {
        let mut done = Abandoned::default();
        if !self.pending_root.is_dir() {
            return Ok(done);
        }
        let repo = self.repo()?;
        for dir in read_dir_sorted(&self.pending_root)? {
            if !dir.is_dir() || is_hidden(&dir) {
                continue;
            }
            for file in read_dir_sorted(&dir)? {
                if is_hidden(&file) || file.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let record = match read_record(&file) {
                    Ok(r) => r,
                    Err(e) => {
                        done.warnings.push(e.to_string());
                        continue;
                    }
                };
                if file != self.pending_path(&record) || !is_path_component(&record.pipeline.name) {
                    done.warnings.push(format!(
                        "{} does not hold the pending record of run {} at {}; left in place",
                        file.display(),
                        record.run_id,
                        record.commit.sha.short()
                    ));
                    continue;
                }
                if process_alive(&record.run_id) {
                    continue;
                }
                let bytes = fs::read(&file).map_err(|source| StoreError::Read {
                    path: file.clone(),
                    source,
                })?;
                let blob = repo.blob(&bytes).map_err(self.git_error("write a blob"))?;
                let message = format!("{} (abandoned while running)", commit_message(&record));
                let path = Self::path_of(&record);
                match self.commit_blob(&repo, &path, blob, &message)? {
                    Committed::New => done.committed.push(record.run_id.clone()),
                    Committed::Same => {}
                    // The run finished and was committed, then was killed
                    // before it removed this older snapshot.
                    Committed::Other(_) if record.state == RunState::Running => {}
                    // A finished record kept here because the ref holds
                    // another at its path (see `save`): never dropped.
                    Committed::Other(theirs_blob) => {
                        done.warnings.push(
                            GitStoreError::Conflict {
                                path,
                                ours: format!("{} (pending)", file.display()),
                                ours_blob: blob,
                                theirs: self.results.to_string(),
                                theirs_blob,
                            }
                            .to_string(),
                        );
                        continue;
                    }
                }
                remove_pending(&file);
            }
        }
        Ok(done)
    }
}

impl Store for GitStore {
    fn save(&self, record: &Record) -> Result<(), StoreError> {
        let pending = self.pending_path(record);
        if record.state == RunState::Running {
            return super::dir::write_record_file(&pending, record);
        }
        let repo = self.repo()?;
        let bytes = record_bytes(record);
        let blob = repo.blob(&bytes).map_err(self.git_error("write a blob"))?;
        let path = Self::path_of(record);
        match self.commit_blob(&repo, &path, blob, &commit_message(record))? {
            Committed::New | Committed::Same => {}
            Committed::Other(theirs_blob) => {
                // Keep the record where it can be recovered.
                write_atomic(&pending, &bytes)?;
                return Err(GitStoreError::Conflict {
                    path,
                    ours: format!("run {} (kept in {})", record.run_id, pending.display()),
                    ours_blob: blob,
                    theirs: self.results.to_string(),
                    theirs_blob,
                }
                .into());
            }
        }
        remove_pending(&pending);
        Ok(())
    }

    fn load(&self, sha: &CommitSha) -> Result<Vec<Record>, StoreError> {
        Ok(self.entries(sha)?.into_iter().map(|s| s.record).collect())
    }

    fn location(&self, record: &Record) -> String {
        if record.state == RunState::Running {
            self.pending_path(record).display().to_string()
        } else {
            format!("{}:{}", self.results, Self::path_of(record))
        }
    }
}

/// `v1/<sha[0:2]>/<sha>`: the directory of one commit's records.
fn commit_dir(sha: &CommitSha) -> String {
    let sha = sha.as_str();
    format!("{LAYOUT_DIR}/{}/{sha}", &sha[..2])
}

/// `regress: <pipeline> at <short sha> (<run id>)`.
fn commit_message(record: &Record) -> String {
    format!(
        "regress: {} at {} ({})",
        record.pipeline.name,
        record.commit.sha.short(),
        record.run_id
    )
}

fn signature() -> Result<git2::Signature<'static>, git2::Error> {
    git2::Signature::now(AUTHOR_NAME, AUTHOR_EMAIL)
}

/// The commit ref `name` points at; None when it does not exist.
pub(super) fn ref_target(repo: &Repository, name: &str) -> Result<Option<Oid>, git2::Error> {
    match repo.refname_to_id(name) {
        Ok(oid) => Ok(Some(oid)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn empty_tree(repo: &Repository) -> Result<git2::Tree<'_>, git2::Error> {
    let oid = repo.treebuilder(None)?.write()?;
    repo.find_tree(oid)
}

/// The entries of `tree` that are trees, with their names; other entries
/// are not part of the layout and are skipped, like unknown files in `.regress`.
fn subtrees<'r>(
    repo: &'r Repository,
    tree: &git2::Tree<'_>,
) -> Result<Vec<(String, git2::Tree<'r>)>, git2::Error> {
    tree.iter()
        .filter(|e| e.kind() == Some(ObjectType::Tree))
        .map(|e| {
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            Ok((name, repo.find_tree(e.id())?))
        })
        .collect()
}

/// How the two sides of a merge are named in a conflict.
struct Sides {
    ours: String,
    theirs: String,
}

/// The union of two trees, recursively; the same path with two different
/// blobs (or a blob on one side and a tree on the other) is a conflict.
/// Subtrees with the same id are taken as they are, so the work is
/// proportional to what differs.
fn union_trees(
    repo: &Repository,
    ours: &git2::Tree<'_>,
    theirs: &git2::Tree<'_>,
    prefix: &str,
    sides: &Sides,
) -> Result<Oid, GitStoreError> {
    if ours.id() == theirs.id() {
        return Ok(ours.id());
    }
    let fail = |action: String| {
        move |source| GitStoreError::Git {
            reference: sides.ours.clone(),
            action,
            source,
        }
    };
    let mut builder = repo
        .treebuilder(Some(ours))
        .map_err(fail("start the merged tree".into()))?;
    for entry in theirs.iter() {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Some(mine) = ours.get_name_bytes(entry.name_bytes()) else {
            builder
                .insert(entry.name_bytes().to_vec(), entry.id(), entry.filemode())
                .map_err(fail(format!("add {path}")))?;
            continue;
        };
        if mine.id() == entry.id() {
            continue;
        }
        let both_trees =
            mine.kind() == Some(ObjectType::Tree) && entry.kind() == Some(ObjectType::Tree);
        if !both_trees {
            return Err(GitStoreError::Conflict {
                path,
                ours: sides.ours.clone(),
                ours_blob: mine.id(),
                theirs: sides.theirs.clone(),
                theirs_blob: entry.id(),
            });
        }
        let (a, b) = (
            repo.find_tree(mine.id())
                .map_err(fail(format!("read {path}")))?,
            repo.find_tree(entry.id())
                .map_err(fail(format!("read {path}")))?,
        );
        let merged = union_trees(repo, &a, &b, &path, sides)?;
        builder
            .insert(
                entry.name_bytes().to_vec(),
                merged,
                i32::from(FileMode::Tree),
            )
            .map_err(fail(format!("add {path}")))?;
    }
    builder
        .write()
        .map_err(fail("write the merged tree".into()))
}

/// Whether `name` can be one component of a path in the tree.
fn is_path_component(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether the process that started run `id` (the pid in
/// `<time>-<pid>-<random>`) still runs on this machine. When the id says no
/// pid, the answer is yes: such a record is left pending, never lost.
fn process_alive(id: &RunId) -> bool {
    let Some(pid) = id
        .as_str()
        .split('-')
        .nth(1)
        .and_then(|p| p.parse::<libc::pid_t>().ok())
        .filter(|p| *p > 0)
    else {
        return true;
    };
    if pid as u32 == std::process::id() {
        return true;
    }
    // SAFETY: signal 0 performs the permission and existence checks only.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Best effort: a pending file left behind is shadowed by the committed
/// record and removed by the next `store push`.
fn remove_pending(path: &Path) {
    let _ = fs::remove_file(path);
    if let Some(dir) = path.parent() {
        // Only succeeds when empty, which is what is wanted.
        let _ = fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/record-v1.json");

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
        let (_dir, store) = scratch();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
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
        assert_eq!(store.load(&sha).unwrap().len(), 80);
    }

    #[test]
    fn abandoned_pending_records_are_committed_live_ones_kept() {
        let (_dir, store) = scratch();
        // pid 1 is init: alive. A pid far above any pid_max: dead.
        let alive = record("20261122T020631.537Z-1-aa", RunState::Running);
        let dead = record("20261122T020631.537Z-2147483646-bb", RunState::Running);
        store.save(&alive).unwrap();
        store.save(&dead).unwrap();
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
}
