//! Where records live, keyed by commit. One trait so the directory store,
//! the git-ref store and the in-memory store of tests are interchangeable;
//! every implementation makes a write all-or-nothing, so a killed run never
//! leaves a broken record. `sync` moves the git store's ref to and from a
//! remote.

mod dir;
mod git;
mod mem;
pub mod sync;

use std::path::PathBuf;

use crate::record::{CommitSha, Record};

pub use dir::{parse_record, read_record, DirStore};
pub use git::{
    Abandoned, GitStore, GitStoreError, Location, MergeOutcome, MergePlan, ResultsRef, Stored,
    DEFAULT_RESULTS_REF,
};
pub use mem::MemStore;

/// Default store directory, at the repository root.
pub const DEFAULT_STORE_DIR: &str = ".regress";

/// A store operation that failed, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid regress record: {message}\n  move it out of the store if it was not written by regress", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{} was written by a newer regress (record schema {found}, this build reads up to {supported}); upgrade regress", path.display())]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(transparent)]
    Git(#[from] GitStoreError),
}

/// Keeps records by commit.
pub trait Store {
    /// Writes a record atomically; saving the same run again replaces it
    /// while it is running (the git store keeps a finished record forever).
    fn save(&self, record: &Record) -> Result<(), StoreError>;

    /// Every record stored under a commit, oldest run first.
    fn load(&self, sha: &CommitSha) -> Result<Vec<Record>, StoreError>;

    /// Where a record is (or will be) kept, for messages to the user.
    fn location(&self, record: &Record) -> String;
}

/// A boxed store is a store: commands choose one at run time.
impl<S: Store + ?Sized> Store for Box<S> {
    fn save(&self, record: &Record) -> Result<(), StoreError> {
        (**self).save(record)
    }

    fn load(&self, sha: &CommitSha) -> Result<Vec<Record>, StoreError> {
        (**self).load(sha)
    }

    fn location(&self, record: &Record) -> String {
        (**self).location(record)
    }
}
