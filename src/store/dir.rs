//! The directory store: `<root>/records/<commit>/<pipeline>/<run>.json`.
//!
//! Each write goes to a hidden temporary file in the same directory, is
//! flushed to disk, then renamed over the final name: rename is atomic on
//! POSIX file systems, so readers see the old record or the new one, never a
//! mix. Readers skip hidden files, so a temporary file left by a killed
//! process is never taken for a record. Runs never rewrite each other's files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Store, StoreError};
use crate::record::{CommitSha, Record, RECORD_SCHEMA_VERSION};

/// Prefix of in-progress files; readers ignore names starting with '.'.
const TEMP_PREFIX: &str = ".tmp-";

/// Temporary files older than this were left by a killed writer (a write
/// takes milliseconds) and are removed by the next write in their directory.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// A store rooted at a directory, `.regress/` by default.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store at `root`; nothing is created until the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStore { root: root.into() }
    }

    fn commit_dir(&self, sha: &CommitSha) -> PathBuf {
        self.root.join("records").join(sha.as_str())
    }

    /// The file a record is kept in.
    pub fn path_of(&self, record: &Record) -> PathBuf {
        self.commit_dir(&record.commit.sha)
            .join(&record.pipeline.name)
            .join(format!("{}.json", record.run_id.as_str()))
    }

    /// Every record file of the store (`records/<sha>/<pipeline>/<run>.json`),
    /// in path order; an empty list when the store does not exist.
    pub fn record_files(&self) -> Result<Vec<PathBuf>, StoreError> {
        let mut files = Vec::new();
        let records = self.root.join("records");
        if !records.is_dir() {
            return Ok(files);
        }
        let list = |dir: &Path| -> Result<Vec<PathBuf>, StoreError> {
            let mut paths: Vec<PathBuf> = fs::read_dir(dir)
                .map_err(|source| StoreError::Read {
                    path: dir.to_path_buf(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            paths.sort();
            Ok(paths)
        };
        for commit in list(&records)?.into_iter().filter(|p| p.is_dir()) {
            for pipeline in list(&commit)?.into_iter().filter(|p| p.is_dir()) {
                files.extend(
                    list(&pipeline)?
                        .into_iter()
                        .filter(|p| p.extension().is_some_and(|e| e == "json")),
                );
            }
        }
        Ok(files)
    }

    /// Keeps the store out of `git status` without touching the user's .gitignore.
    fn ensure_root(&self) -> Result<(), StoreError> {
        let ignore = self.root.join(".gitignore");
        if ignore.exists() {
            return Ok(());
        }
        fs::create_dir_all(&self.root).map_err(|source| StoreError::Write {
            path: self.root.clone(),
            source,
        })?;
        fs::write(&ignore, "# results of `regress run`; kept out of git\n*\n").map_err(|source| {
            StoreError::Write {
                path: ignore,
                source,
            }
        })
    }
}

impl Store for DirStore {
    fn save(&self, record: &Record) -> Result<(), StoreError> {
        self.ensure_root()?;
        write_record_file(&self.path_of(record), record)
    }

    fn location(&self, record: &Record) -> String {
        self.path_of(record).display().to_string()
    }

    fn load(&self, sha: &CommitSha) -> Result<Vec<Record>, StoreError> {
        let dir = self.commit_dir(sha);
        let mut out = Vec::new();
        if !dir.exists() {
            return Ok(out);
        }
        for pipeline_dir in read_dir_sorted(&dir)? {
            if !pipeline_dir.is_dir() || is_hidden(&pipeline_dir) {
                continue;
            }
            for file in read_dir_sorted(&pipeline_dir)? {
                if is_hidden(&file) || file.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                out.push(read_record(&file)?);
            }
        }
        out.sort_by_key(|r| r.started_at);
        Ok(out)
    }
}

/// Best effort: a leftover we cannot remove does no harm, readers skip it.
pub(super) fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

pub(super) fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

pub(super) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let rerr = |source| StoreError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = fs::read_dir(dir)
        .map_err(rerr)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(rerr)?;
    paths.sort();
    Ok(paths)
}

/// Writes `record` to `path` atomically: a hidden temporary file in the same
/// directory, flushed, then renamed over the final name.
pub(crate) fn write_record_file(path: &Path, record: &Record) -> Result<(), StoreError> {
    write_atomic(path, &record_bytes(record))
}

/// A record as stored: compact JSON and a newline, the same bytes in
/// every store (the git store relies on it: same record, same blob).
pub(super) fn record_bytes(record: &Record) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(record).expect("records serialise");
    bytes.push(b'\n');
    bytes
}

/// Writes `bytes` to `path` so that readers see the old file or the new
/// one, never a mix; creates the directory. Leftovers of killed writers
/// older than `STALE_TEMP_AGE` are removed on the way.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path
        .parent()
        .expect("record paths have a parent")
        .to_path_buf();
    let werr = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(&dir).map_err(werr)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(werr)?;
    tmp.write_all(bytes).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    // Make the rename itself durable.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    remove_stale_temps(&dir);
    Ok(())
}

/// Reads and checks one record file.
pub fn read_record(path: &Path) -> Result<Record, StoreError> {
    let text = fs::read_to_string(path).map_err(|source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_record(&text, path)
}

/// Checks and parses a record's text; `origin` names where it came from
/// (a file, or `<ref>:<path>` for a record in the git store) in errors.
pub fn parse_record(text: &str, origin: &Path) -> Result<Record, StoreError> {
    #[derive(serde::Deserialize)]
    struct Version {
        schema_version: u32,
    }
    let corrupt = |message: String| StoreError::Corrupt {
        path: origin.to_path_buf(),
        message,
    };
    let version: Version = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    if version.schema_version > RECORD_SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: origin.to_path_buf(),
            found: version.schema_version,
            supported: RECORD_SCHEMA_VERSION,
        });
    }
    let record: Record = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    // Settings the statistics rely on are checked again: a record may have
    // been edited or written by another tool.
    let c = record.pipeline.compare;
    if !(c.alpha > 0.0 && c.alpha <= 0.5 && c.threshold.is_finite() && c.threshold >= 0.0) {
        return Err(corrupt(format!(
            "pipeline.compare has alpha {} and threshold {}; alpha must be in (0, 0.5] and the threshold a fraction ≥ 0",
            c.alpha, c.threshold
        )));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn stale_temporary_files_are_removed_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".tmp-old.partial");
        let fresh = dir.path().join(".tmp-new.partial");
        let record = dir.path().join("run.json");
        for p in [&stale, &fresh, &record] {
            fs::write(p, "x").unwrap();
        }
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        fs::File::options()
            .write(true)
            .open(&record)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        remove_stale_temps(dir.path());
        assert!(!stale.exists());
        assert!(
            fresh.exists(),
            "a write in progress elsewhere keeps its file"
        );
        assert!(record.exists(), "records are never touched");
    }
}
