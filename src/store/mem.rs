//! A store in memory: the same contract as the others, for tests of
//! everything that reads and writes records without touching a disk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Store, StoreError};
use crate::record::{CommitSha, Record};

/// Records by commit, in memory.
#[derive(Debug, Default)]
pub struct MemStore {
    records: Mutex<BTreeMap<CommitSha, Vec<Record>>>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Every record of every commit (for tests' assertions).
    pub fn all(&self) -> Vec<Record> {
        let map = self.records.lock().unwrap_or_else(|e| e.into_inner());
        map.values().flatten().cloned().collect()
    }
}

impl Store for MemStore {
    fn save(&self, record: &Record) -> Result<(), StoreError> {
        let mut map = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let runs = map.entry(record.commit.sha.clone()).or_default();
        match runs.iter_mut().find(|r| r.run_id == record.run_id) {
            Some(slot) => *slot = record.clone(),
            None => runs.push(record.clone()),
        }
        Ok(())
    }

    fn load(&self, sha: &CommitSha) -> Result<Vec<Record>, StoreError> {
        let map = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut runs = map.get(sha).cloned().unwrap_or_default();
        runs.sort_by_key(|r| r.started_at);
        Ok(runs)
    }

    fn location(&self, record: &Record) -> String {
        format!(
            "memory:{}/{}/{}",
            record.commit.sha,
            record.pipeline.name,
            record.run_id.as_str()
        )
    }
}
