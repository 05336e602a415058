//! Revisions → the record sets a comparison needs: head's records, the
//! base's (the merge-base by default, else the revision itself, walking its
//! first parents to the nearest commit with results, per pipeline), and the
//! history behind the base for the run-to-run variance. Works on any
//! `Store` and any commit graph (`Ancestry`), so it is tested without git.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use crate::git::{Ancestry, GitError};
use crate::id::{CommitSha, Fingerprint};
use crate::record::{CommitInfo, Record};
use crate::store::{Store, StoreError};

/// Earlier baseline commits whose runs give the run-to-run variance, at most.
pub const HISTORY_COMMITS: usize = 30;

/// Commits walked back at most when gathering history.
const HISTORY_WALK: usize = 500;

/// One side of a comparison as loaded from the store.
#[derive(Debug, Clone)]
pub struct SideInput {
    /// The revision as the user wrote it (`main`, `HEAD~1`).
    pub rev: String,
    /// The commit whose results are used.
    pub commit: CommitInfo,
    /// How many first-parent commits back from the resolved revision those
    /// results are (0: the revision itself had them).
    pub distance: usize,
    pub records: Vec<Record>,
    /// What the reader should know about how this side was chosen.
    pub notes: Vec<String>,
    /// Pipelines stored at the commit whose results could not serve (none
    /// of them ran at head): named when a side has no results to use.
    pub unused_pipelines: Vec<String>,
    /// Runs at the commit left out because they were made with
    /// uncommitted changes (`Selection::allow_dirty` keeps them).
    pub dirty_left_out: usize,
}

impl SideInput {
    /// A side made of records the user named (no walk, no notes).
    pub fn exact(rev: &str, commit: CommitInfo, records: Vec<Record>) -> SideInput {
        SideInput {
            rev: rev.to_string(),
            commit,
            distance: 0,
            records,
            notes: Vec::new(),
            unused_pipelines: Vec::new(),
            dirty_left_out: 0,
        }
    }
}

/// Which records take part in a comparison.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Compare results from different machines anyway (and say so).
    pub allow_fingerprint_mismatch: bool,
    /// Use runs made with uncommitted changes too (left out by default).
    pub allow_dirty: bool,
}

impl Selection {
    fn wants(&self, name: &str) -> bool {
        self.pipeline.as_deref().is_none_or(|p| p == name)
    }
}

/// Why the record sets could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to compare, as the user asked for it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub base_rev: &'a str,
    pub head_rev: &'a str,
    pub base: CommitInfo,
    pub head: CommitInfo,
    /// Use the base revision itself, not its merge-base with head.
    pub exact: bool,
    /// First-parent commits walked back at most for a base with results.
    pub max_walk: usize,
    pub selection: &'a Selection,
}

/// The record sets of a comparison.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub base: SideInput,
    pub head: SideInput,
    /// Records of earlier commits of the base branch, for run-to-run variance.
    pub history: Vec<Record>,
    /// Problems that cost a candidate commit, not the comparison.
    pub warnings: Vec<String>,
}

/// The store as a comparison reads it: runs made with uncommitted changes
/// are left out, counted per commit, since they measured code that no
/// commit holds (results filed under a commit must be that commit's).
struct Committed<'a> {
    inner: &'a dyn Store,
    left_out: RefCell<BTreeMap<CommitSha, usize>>,
}

impl Store for Committed<'_> {
    fn save(&self, record: &Record) -> Result<(), StoreError> {
        self.inner.save(record)
    }

    fn load(&self, sha: &CommitSha) -> Result<Vec<Record>, StoreError> {
        let (clean, dirty): (Vec<Record>, Vec<Record>) = self
            .inner
            .load(sha)?
            .into_iter()
            .partition(|r| !r.commit.dirty);
        if !dirty.is_empty() {
            self.left_out.borrow_mut().insert(sha.clone(), dirty.len());
        }
        Ok(clean)
    }

    fn location(&self, record: &Record) -> String {
        self.inner.location(record)
    }
}

/// Gathers base, head and history for `req`. Runs made with uncommitted
/// changes are left out, and a note says so, unless the selection allows
/// them.
pub fn resolve(
    graph: &dyn Ancestry,
    store: &dyn Store,
    req: &Request,
) -> Result<Resolved, ResolveError> {
    let committed = Committed {
        inner: store,
        left_out: RefCell::default(),
    };
    let store: &dyn Store = if req.selection.allow_dirty {
        store
    } else {
        &committed
    };
    let mut resolved = resolve_all(graph, store, req)?;
    let left_out = committed.left_out.into_inner();
    if !left_out.is_empty() {
        let head = &mut resolved.head;
        head.dirty_left_out = left_out.get(&head.commit.sha).copied().unwrap_or(0);
        let base = &mut resolved.base;
        base.dirty_left_out = left_out.get(&base.commit.sha).copied().unwrap_or(0);
        let listed: Vec<String> = left_out
            .iter()
            .map(|(sha, n)| format!("{n} at {}", sha.short()))
            .collect();
        resolved.head.notes.push(format!(
            "left out {} run(s) made with uncommitted changes ({}): they measured code no commit holds; --allow-dirty uses them",
            left_out.values().sum::<usize>(),
            listed.join(", ")
        ));
    }
    Ok(resolved)
}

fn resolve_all(
    graph: &dyn Ancestry,
    store: &dyn Store,
    req: &Request,
) -> Result<Resolved, ResolveError> {
    let head = SideInput::exact(req.head_rev, req.head.clone(), store.load(&req.head.sha)?);
    let mut notes = Vec::new();
    let start = match graph.merge_base(&req.base.sha, &req.head.sha)? {
        _ if req.exact => req.base.clone(),
        // Head is an ancestor of the base: the merge-base is head itself,
        // and comparing a commit with itself says nothing.
        Some(mb) if mb.sha == req.head.sha => {
            notes.push(format!(
                "`{}` is an ancestor of `{}`: compared with `{}` itself",
                req.head_rev, req.base_rev, req.base_rev
            ));
            req.base.clone()
        }
        Some(mb) if mb.sha != req.base.sha => {
            notes.push(format!(
                "base is the merge-base of `{}` and `{}`: {} (use --exact for `{}` itself)",
                req.base_rev,
                req.head_rev,
                mb.sha.short(),
                req.base_rev
            ));
            mb
        }
        _ => req.base.clone(),
    };
    let mut candidates = Candidates::new(store);
    let (base, history) = resolve_base(
        graph,
        &mut candidates,
        BaseStart {
            rev: req.base_rev,
            commit: start,
            notes,
        },
        &head.records,
        req.selection,
        req.max_walk,
    )?;
    Ok(Resolved {
        base,
        head,
        history,
        warnings: candidates.warnings,
    })
}

/// History behind `base` for each pipeline of `head` (as `regress ab`
/// needs it: both sides were just measured).
pub fn history_for(
    graph: &dyn Ancestry,
    store: &dyn Store,
    base: &CommitInfo,
    head: &[Record],
) -> Result<(Vec<Record>, Vec<String>), ResolveError> {
    let mut candidates = Candidates::new(store);
    let mut out = Vec::new();
    for r in head {
        let keys = [HistoryKey::of(r)];
        out.extend(history(
            graph,
            &mut candidates,
            base,
            &r.pipeline.name,
            &keys,
        )?);
    }
    Ok((out, candidates.warnings))
}

/// Whether a commit's records can serve as the base for `head`'s pipeline
/// `name`: same pipeline, and same machine unless mismatches are allowed.
fn serves_as_base(records: &[Record], head: &[Record], name: &str, sel: &Selection) -> bool {
    records.iter().any(|b| {
        b.pipeline.name == name
            && head.iter().any(|h| {
                h.pipeline.name == name
                    && (sel.allow_fingerprint_mismatch
                        || h.machine.fingerprint == b.machine.fingerprint)
            })
    })
}

/// Records of commits that are only candidates (the walk back, history),
/// each commit read once per command: an unreadable record there costs a
/// warning, not the whole comparison.
struct Candidates<'a> {
    store: &'a dyn Store,
    loaded: HashMap<CommitSha, Vec<Record>>,
    warnings: Vec<String>,
}

impl<'a> Candidates<'a> {
    fn new(store: &'a dyn Store) -> Self {
        Candidates {
            store,
            loaded: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// The records of pipeline `name` at `sha`, moved out: each commit's
    /// records of one pipeline serve once (as a base or as history), so
    /// they are not copied.
    fn take(&mut self, sha: &CommitSha, name: &str) -> Vec<Record> {
        self.at(sha);
        let all = self.loaded.get_mut(sha).expect("just loaded");
        let (mine, rest) = std::mem::take(all)
            .into_iter()
            .partition(|r| r.pipeline.name == name);
        *all = rest;
        mine
    }

    fn at(&mut self, sha: &CommitSha) -> &[Record] {
        let (store, warnings) = (self.store, &mut self.warnings);
        self.loaded.entry(sha.clone()).or_insert_with(|| {
            store.load(sha).unwrap_or_else(|e| {
                warnings.push(format!("skipping the results of {}: {e}", sha.short()));
                Vec::new()
            })
        })
    }
}

/// What makes earlier records usable as history for a base record: the
/// same machine and the same pipeline definition (compare uses no other).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HistoryKey {
    fingerprint: Fingerprint,
    hash: String,
}

impl HistoryKey {
    fn of(r: &Record) -> HistoryKey {
        HistoryKey {
            fingerprint: r.machine.fingerprint.clone(),
            hash: r.pipeline.hash.clone(),
        }
    }
}

/// Records of up to HISTORY_COMMITS earlier first-parent commits of `base`
/// that ran pipeline `name`, for the run-to-run variance, counted for each
/// of `keys` (the base's machines and pipeline hashes) on its own: commits
/// measured only by other machines, or with another definition, neither
/// count nor end the walk.
fn history(
    graph: &dyn Ancestry,
    candidates: &mut Candidates,
    base: &CommitInfo,
    name: &str,
    keys: &[HistoryKey],
) -> Result<Vec<Record>, ResolveError> {
    let mut out = Vec::new();
    let mut commits: HashMap<&HistoryKey, usize> = keys.iter().map(|k| (k, 0)).collect();
    for c in graph.first_parents(&base.sha, HISTORY_WALK)? {
        if commits.values().all(|&n| n >= HISTORY_COMMITS) {
            break;
        }
        let records = candidates.take(&c.sha, name);
        let mut seen: Vec<&HistoryKey> = Vec::new();
        for r in records {
            let key = HistoryKey::of(&r);
            let Some((k, &n)) = commits.get_key_value(&key) else {
                continue;
            };
            if n < HISTORY_COMMITS {
                if !seen.contains(k) {
                    seen.push(k);
                }
                out.push(r);
            }
        }
        for k in seen {
            *commits.get_mut(k).expect("a key of the map") += 1;
        }
    }
    Ok(out)
}

/// Where the search for a base begins.
struct BaseStart<'a> {
    rev: &'a str,
    commit: CommitInfo,
    notes: Vec<String>,
}

/// `N commit(s)`.
fn commits(n: usize) -> String {
    format!("{n} commit{}", if n == 1 { "" } else { "s" })
}

/// The base side and its history, resolved for each of head's pipelines on
/// its own: `start` when it has results for the pipeline on head's machine,
/// else the nearest of its first `max_walk` parents that has (a skipped
/// shard, a pipeline added later), walked once for all pipelines. A
/// pipeline found nowhere keeps what `start` holds of it (other machines'
/// results, listed as not comparable). Each pipeline's history begins
/// behind its own base commit. The side's commit is the first found
/// pipeline's, any other pipeline's base commit is named in a note, and
/// pipelines that ran at `start` but not at head come along as removed.
fn resolve_base(
    graph: &dyn Ancestry,
    candidates: &mut Candidates,
    start: BaseStart,
    head: &[Record],
    sel: &Selection,
    max_walk: usize,
) -> Result<(SideInput, Vec<Record>), ResolveError> {
    let mut names: Vec<&str> = Vec::new();
    for r in head {
        let name = r.pipeline.name.as_str();
        if !names.contains(&name) && sel.wants(name) {
            names.push(name);
        }
    }
    let start_records = candidates.store.load(&start.commit.sha)?;
    // Per pipeline, in head's order: its base commit and distance.
    let mut bases: Vec<Option<(CommitInfo, usize)>> = names
        .iter()
        .map(|n| serves_as_base(&start_records, head, n, sel).then(|| (start.commit.clone(), 0)))
        .collect();
    let mut walked = 0;
    if bases.iter().any(Option::is_none) {
        let parents = graph.first_parents(&start.commit.sha, max_walk)?;
        walked = parents.len();
        for (i, c) in parents.into_iter().enumerate() {
            let records = candidates.at(&c.sha);
            for (name, base) in names.iter().zip(bases.iter_mut()) {
                if base.is_none() && serves_as_base(records, head, name, sel) {
                    *base = Some((c.clone(), i + 1));
                }
            }
            if bases.iter().all(Option::is_some) {
                break;
            }
        }
    }
    let mut side: Option<SideInput> = None;
    let mut history_records = Vec::new();
    for (name, base) in names.iter().zip(bases) {
        let (commit, distance) = base.unwrap_or_else(|| (start.commit.clone(), 0));
        let records: Vec<Record> = if commit.sha == start.commit.sha {
            start_records
                .iter()
                .filter(|r| r.pipeline.name == *name)
                .cloned()
                .collect()
        } else {
            candidates.take(&commit.sha, name)
        };
        if records.is_empty() {
            continue;
        }
        let mut keys: Vec<HistoryKey> = Vec::new();
        for k in records.iter().map(HistoryKey::of) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        history_records.extend(history(graph, candidates, &commit, name, &keys)?);
        let Some(side) = &mut side else {
            side = Some(SideInput {
                rev: start.rev.to_string(),
                commit,
                distance,
                records,
                notes: start.notes.clone(),
                unused_pipelines: Vec::new(),
                dirty_left_out: 0,
            });
            continue;
        };
        if commit.sha != side.commit.sha {
            side.notes.push(if distance == 0 {
                format!("pipeline {name}: base results from {} itself", commit.sha.short())
            } else {
                format!(
                    "pipeline {name}: base results from {} ({} back from {} along its first parents)",
                    commit.sha.short(),
                    commits(distance),
                    start.commit.sha.short(),
                )
            });
        }
        side.records.extend(records);
    }
    let head_has = |r: &Record| head.iter().any(|h| h.pipeline.name == r.pipeline.name);
    let Some(mut side) = side else {
        // No pipeline has base results: the start commit with the distance
        // walked, for the error that says so (or, when head has no results
        // either, with what it holds).
        let mut unused_pipelines: Vec<String> = Vec::new();
        for r in &start_records {
            if !unused_pipelines.contains(&r.pipeline.name) {
                unused_pipelines.push(r.pipeline.name.clone());
            }
        }
        let records = if head.is_empty() {
            start_records
        } else {
            Vec::new()
        };
        let side = SideInput {
            rev: start.rev.to_string(),
            commit: start.commit,
            distance: if head.is_empty() { 0 } else { walked },
            records,
            notes: start.notes,
            unused_pipelines,
            dirty_left_out: 0,
        };
        return Ok((side, history_records));
    };
    // Pipelines that ran at the start commit but not at head are listed as
    // removed, never hidden.
    side.records.extend(
        start_records
            .into_iter()
            .filter(|r| !head_has(r) && sel.wants(&r.pipeline.name)),
    );
    Ok((side, history_records))
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
