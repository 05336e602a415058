//! Git through `git2`: which commit is checked out (and whether the work tree
//! is dirty), and what commit a revision such as `main`, `HEAD~1`, a tag or a
//! short sha names.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::record::{CommitInfo, CommitSha};

/// A git problem, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{} is not inside a git repository: regress stores results under the commit they measured\n  run it from a git checkout (or `git init && git commit` first)", path.display())]
    NotARepo { path: PathBuf },
    #[error("the repository at {} has no commits yet; commit first, results are stored under a commit", path.display())]
    NoCommits { path: PathBuf },
    #[error("the repository at {} is bare; run regress in a checkout", path.display())]
    Bare { path: PathBuf },
    #[error("`{rev}` does not name a commit: {message}\n  use a branch, tag, sha or an expression such as HEAD~1")]
    BadRevision { rev: String, message: String },
    #[error("git: {0}")]
    Other(#[from] git2::Error),
}

/// An opened repository.
pub struct Repo {
    repo: git2::Repository,
}

impl Repo {
    /// Finds the repository containing `path`.
    pub fn discover(path: &Path) -> Result<Repo, GitError> {
        let repo = git2::Repository::discover(path).map_err(|_| GitError::NotARepo {
            path: path.to_path_buf(),
        })?;
        if repo.is_bare() {
            return Err(GitError::Bare {
                path: path.to_path_buf(),
            });
        }
        Ok(Repo { repo })
    }

    /// The root of the work tree.
    pub fn workdir(&self) -> PathBuf {
        self.repo
            .workdir()
            .expect("non-bare repositories have a work tree")
            .to_path_buf()
    }

    /// The checked-out commit, its branch and whether tracked files differ from it.
    pub fn head(&self) -> Result<CommitInfo, GitError> {
        let head = self.repo.head().map_err(|_| GitError::NoCommits {
            path: self.workdir(),
        })?;
        let commit = head.peel_to_commit().map_err(|_| GitError::NoCommits {
            path: self.workdir(),
        })?;
        let branch = if head.is_branch() {
            head.shorthand().ok().map(str::to_string)
        } else {
            None
        };
        let mut info = commit_info(&commit);
        info.branch = branch;
        info.dirty = self.is_dirty()?;
        Ok(info)
    }

    /// Resolves a revision to a commit.
    pub fn resolve(&self, rev: &str) -> Result<CommitInfo, GitError> {
        let object = self
            .repo
            .revparse_single(rev)
            .map_err(|e| GitError::BadRevision {
                rev: rev.to_string(),
                message: e.message().to_string(),
            })?;
        let commit = object.peel_to_commit().map_err(|e| GitError::BadRevision {
            rev: rev.to_string(),
            message: e.message().to_string(),
        })?;
        let mut info = commit_info(&commit);
        // Name the branch when the revision is one.
        if let Ok(branch) = self.repo.find_branch(rev, git2::BranchType::Local) {
            if branch.get().peel_to_commit().map(|c| c.id()) == Ok(commit.id()) {
                info.branch = Some(rev.to_string());
            }
        }
        Ok(info)
    }

    /// Untracked files do not count: only changes to what the commit holds.
    fn is_dirty(&self) -> Result<bool, GitError> {
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(false)
            .include_ignored(false)
            .exclude_submodules(true);
        Ok(!self.repo.statuses(Some(&mut opts))?.is_empty())
    }
}

fn commit_info(commit: &git2::Commit) -> CommitInfo {
    CommitInfo {
        sha: CommitSha::try_from(commit.id().to_string()).expect("git2 gives full sha-1 ids"),
        time: DateTime::<Utc>::from_timestamp(commit.time().seconds(), 0),
        branch: None,
        dirty: false,
        summary: commit.summary().ok().flatten().map(str::to_string),
    }
}
