//! Git through `git2`: which commit is checked out (and whether the work tree
//! is dirty), what commit a revision such as `main`, `HEAD~1`, a tag or a
//! short sha names, the commit graph that base resolution walks
//! (`Ancestry`), and the temporary worktrees of `regress ab`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::id::CommitSha;
use crate::record::CommitInfo;

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

    /// The files among `paths` that the checked-out commit does not hold
    /// although they are in the work tree: untracked or ignored. Files
    /// outside the work tree, or missing, are not listed.
    pub fn uncommitted(&self, paths: &[PathBuf]) -> Vec<PathBuf> {
        let Ok(root) = std::fs::canonicalize(self.workdir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in paths {
            let Ok(abs) = std::fs::canonicalize(path) else {
                continue;
            };
            let Ok(rel) = abs.strip_prefix(&root) else {
                continue;
            };
            let status = self.repo.status_file(rel);
            if status.is_ok_and(|s| s.intersects(git2::Status::WT_NEW | git2::Status::IGNORED)) {
                out.push(rel.to_path_buf());
            }
        }
        out
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

/// The commit graph, as far as choosing a base needs it. `Repo` reads it
/// from git; tests give a graph of their own.
pub trait Ancestry {
    /// The best common ancestor of two commits, if they have one.
    fn merge_base(&self, a: &CommitSha, b: &CommitSha) -> Result<Option<CommitInfo>, GitError>;

    /// Up to `limit` first-parent ancestors of `from`, nearest first, not
    /// including `from` itself: the history of a branch as it was merged.
    fn first_parents(&self, from: &CommitSha, limit: usize) -> Result<Vec<CommitInfo>, GitError>;
}

impl Ancestry for Repo {
    fn merge_base(&self, a: &CommitSha, b: &CommitSha) -> Result<Option<CommitInfo>, GitError> {
        let (a, b) = (
            git2::Oid::from_str(a.as_str())?,
            git2::Oid::from_str(b.as_str())?,
        );
        match self.repo.merge_base(a, b) {
            Ok(oid) => Ok(Some(commit_info(&self.repo.find_commit(oid)?))),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn first_parents(&self, from: &CommitSha, limit: usize) -> Result<Vec<CommitInfo>, GitError> {
        let mut out = Vec::new();
        let mut commit = self.repo.find_commit(git2::Oid::from_str(from.as_str())?)?;
        while out.len() < limit {
            let Ok(parent) = commit.parent(0) else { break };
            out.push(commit_info(&parent));
            commit = parent;
        }
        Ok(out)
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

/// A temporary checkout of one commit beside the main work tree, on a
/// branch of its own; `Repo::remove_worktree` takes both away again.
#[derive(Debug)]
pub struct Worktree {
    pub name: String,
    pub path: PathBuf,
    pub commit: CommitInfo,
}

/// Prefix of the worktrees and branches `regress ab` creates.
pub const AB_PREFIX: &str = "regress-ab-";

/// The name of a worktree (and its branch) of `regress ab`:
/// `regress-ab-<pid>-<unique>-<side>`. The pid lets a later run tell that
/// the owner died; `unique` keeps a reused pid from clashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbWorktreeName {
    pub pid: u32,
    /// Letters and digits only.
    pub unique: String,
    /// `base` or `head`.
    pub side: String,
}

impl AbWorktreeName {
    /// A name for this process; non-alphanumeric characters of `unique` are dropped.
    pub fn new(unique: &str, side: &str) -> AbWorktreeName {
        AbWorktreeName {
            pid: std::process::id(),
            unique: unique.chars().filter(char::is_ascii_alphanumeric).collect(),
            side: side.to_string(),
        }
    }

    /// Reads a worktree name back; `None` for names regress did not make.
    pub fn parse(name: &str) -> Option<AbWorktreeName> {
        let mut parts = name.strip_prefix(AB_PREFIX)?.splitn(3, '-');
        let pid = parts.next()?.parse().ok()?;
        let unique = parts.next()?.to_string();
        let side = parts.next().unwrap_or_default().to_string();
        Some(AbWorktreeName { pid, unique, side })
    }
}

impl std::fmt::Display for AbWorktreeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{AB_PREFIX}{}-{}-{}", self.pid, self.unique, self.side)
    }
}

impl Repo {
    /// Checks `commit` out at `path` as worktree `name` (a branch of the
    /// same name points at the commit while the worktree exists).
    pub fn add_worktree(
        &self,
        name: &str,
        path: &Path,
        commit: &CommitInfo,
    ) -> Result<Worktree, GitError> {
        let target = self
            .repo
            .find_commit(git2::Oid::from_str(commit.sha.as_str())?)?;
        let branch = self.repo.branch(name, &target, true)?;
        let mut opts = git2::WorktreeAddOptions::new();
        opts.reference(Some(branch.get()));
        self.repo.worktree(name, path, Some(&opts))?;
        Ok(Worktree {
            name: name.to_string(),
            path: path.to_path_buf(),
            commit: commit.clone(),
        })
    }

    /// Removes a worktree's files, its administrative entry and its branch.
    pub fn remove_worktree(&self, wt: &Worktree) -> Result<(), GitError> {
        let _ = std::fs::remove_dir_all(&wt.path);
        self.prune_worktree(&wt.name)
    }

    fn prune_worktree(&self, name: &str) -> Result<(), GitError> {
        if let Ok(w) = self.repo.find_worktree(name) {
            let mut opts = git2::WorktreePruneOptions::new();
            opts.valid(true).working_tree(true).locked(true);
            w.prune(Some(&mut opts))?;
        }
        if let Ok(mut b) = self.repo.find_branch(name, git2::BranchType::Local) {
            b.delete()?;
        }
        Ok(())
    }

    /// Removes worktrees (and their branches and files) a killed `regress
    /// ab` left behind: those with our prefix whose directory is gone or
    /// whose process (the pid in the name) no longer runs.
    pub fn prune_stale_ab_worktrees(&self) -> Result<usize, GitError> {
        let mut pruned = 0;
        for name in self.repo.worktrees()?.iter().flatten().flatten() {
            let Some(parsed) = AbWorktreeName::parse(name) else {
                continue;
            };
            let path = self
                .repo
                .find_worktree(name)
                .ok()
                .map(|w| w.path().to_path_buf());
            let owner_alive = Path::new(&format!("/proc/{}", parsed.pid)).exists();
            let gone = path.as_ref().is_none_or(|p| !p.exists());
            if gone || !owner_alive {
                if let Some(p) = &path {
                    let _ = std::fs::remove_dir_all(p);
                }
                self.prune_worktree(name)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ab_worktree_names_read_back() {
        let name = AbWorktreeName::new("tmp-x_Y9", "head");
        assert_eq!(name.unique, "tmpxY9");
        let text = name.to_string();
        assert_eq!(
            text,
            format!("regress-ab-{}-tmpxY9-head", std::process::id())
        );
        assert_eq!(AbWorktreeName::parse(&text), Some(name));
        assert_eq!(AbWorktreeName::parse("feature-branch"), None);
        assert_eq!(AbWorktreeName::parse("regress-ab-notapid-x-base"), None);
    }
}
