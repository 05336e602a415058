//! Errors a pipeline file can have, each with its place in the file.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{locate, KeyPath};

/// A pipeline that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: cannot read pipeline: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// YAML syntax, an unknown key or a wrong type, as serde_yaml saw it.
    #[error("{}: {message}", Place(file, *location))]
    Syntax {
        file: PathBuf,
        location: Option<(usize, usize)>,
        message: String,
    },
    /// A value that parsed but is not allowed.
    #[error("{}: {key}: {message}", Place(file, *location))]
    Invalid {
        file: PathBuf,
        location: Option<(usize, usize)>,
        key: String,
        message: String,
    },
}

struct Place<'a>(&'a PathBuf, Option<(usize, usize)>);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.0.display()),
            None => write!(f, "{}", self.0.display()),
        }
    }
}

impl SpecError {
    pub(crate) fn from_yaml(file: &Path, err: &serde_yaml::Error) -> SpecError {
        let location = err.location().map(|l| (l.line(), l.column()));
        let mut message = err.to_string();
        // serde_yaml appends the position in prose; it is already in front.
        if let Some((line, column)) = location {
            let suffix = format!(" at line {line} column {column}");
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        SpecError::Syntax {
            file: file.to_path_buf(),
            location,
            message,
        }
    }
}

/// A validation failure before it has been placed in the file.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub key: KeyPath,
    pub message: String,
}

impl Invalid {
    pub fn new(key: KeyPath, message: impl Into<String>) -> Self {
        Invalid {
            key,
            message: message.into(),
        }
    }

    pub fn into_spec_error(self, src: &str, doc: usize, file: &Path) -> SpecError {
        SpecError::Invalid {
            file: file.to_path_buf(),
            location: locate(src, doc, &self.key),
            key: self.key.to_string(),
            message: self.message,
        }
    }
}
