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

mod merge;
mod pending;
mod refname;
#[cfg(test)]
mod tests;

use crate::record::{CommitSha, Record, RunId, RunState};
use merge::subtrees;
pub use merge::{MergeOutcome, MergePlan};
pub use pending::Abandoned;
use pending::{hold, remove_pending};
pub use refname::ResultsRef;

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
        // Creating is a swap from the zero id: libgit2 checks that under
        // the ref's lock. `reference(.., force = false, ..)` checks that the
        // ref is absent *before* taking the lock, so two first writers
        // could both pass and the second overwrite the first's commit.
        let expected = expected.unwrap_or(Oid::ZERO_SHA1);
        let result = repo.reference_matching(name, new, true, expected, message);
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
}

impl Store for GitStore {
    fn save(&self, record: &Record) -> Result<(), StoreError> {
        let pending = self.pending_path(record);
        if record.state == RunState::Running {
            super::dir::write_record_file(&pending, record)?;
            hold(&pending);
            return Ok(());
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

/// Whether `name` can be one component of a path in the tree.
fn is_path_component(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
