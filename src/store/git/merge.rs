//! Merging two copies of the results ref: the union of their paths, an
//! error naming any path whose content differs, a fast-forward when one
//! side contains the other.

use super::*;

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

impl GitStore {
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
}

/// The entries of `tree` that are trees, with their names; other entries
/// are not part of the layout and are skipped, like unknown files in `.regress`.
pub(super) fn subtrees<'r>(
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
