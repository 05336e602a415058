//! The pending area: records of runs still going (or killed) wait here
//! until they are finished and committed; `store push` commits those
//! whose process is gone, so a killed run is not lost.

use super::*;

/// Pending records committed by `GitStore::commit_abandoned`.
#[derive(Debug, Default)]
pub struct Abandoned {
    /// Runs committed as they were when their process died.
    pub committed: Vec<RunId>,
    /// Pending files that could not be read, with why; left in place.
    pub warnings: Vec<String>,
}

impl GitStore {
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
                if run_alive(&file, &record.run_id) {
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

/// Whether the process that started run `id` (the pid in
/// `<time>-<pid>-<random>`) still runs on this machine. When the id says no
/// pid, the answer is yes: such a record is left pending, never lost.
pub(super) fn process_alive(id: &RunId) -> bool {
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

/// The locks this process holds on the lock files of its running records.
/// A lock lives exactly as long as the process that took it, so it tells a
/// live run from a dead one even where pids repeat (containers, pid
/// namespaces), which the pid in the run id cannot.
static HELD: std::sync::Mutex<std::collections::BTreeMap<PathBuf, fs::File>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The lock file beside a pending record (hidden, so readers skip it).
fn lock_path(pending: &Path) -> PathBuf {
    let name = pending
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    pending.with_file_name(format!(".{name}.lock"))
}

/// Takes, once per process, an exclusive lock on the lock file of a running
/// record's pending file. Best effort: without it, liveness falls back to
/// the pid in the run id.
pub(super) fn hold(pending: &Path) {
    let path = lock_path(pending);
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if held.contains_key(&path) {
        return;
    }
    let Ok(file) = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    else {
        return;
    };
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        held.insert(path, file);
    }
}

/// Whether the run of a pending record is still going: its lock file is
/// locked (by any process on this machine); without a lock file (records
/// of earlier versions), whether the pid in its run id is alive.
pub(super) fn run_alive(pending: &Path, id: &RunId) -> bool {
    let path = lock_path(pending);
    if HELD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&path)
    {
        return true;
    }
    let Ok(file) = fs::OpenOptions::new().write(true).open(&path) else {
        return process_alive(id);
    };
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns; a lock taken here
    // is released when `file` is dropped.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// Best effort: a pending file left behind is shadowed by the committed
/// record and removed by the next `store push`. Its lock goes with it.
pub(super) fn remove_pending(path: &Path) {
    let lock = lock_path(path);
    HELD.lock().unwrap_or_else(|e| e.into_inner()).remove(&lock);
    let _ = fs::remove_file(&lock);
    let _ = fs::remove_file(path);
    if let Some(dir) = path.parent() {
        // Only succeeds when empty, which is what is wanted.
        let _ = fs::remove_dir(dir);
    }
}
