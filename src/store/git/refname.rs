//! The name of the ref results live in, validated: a full ref under
//! `refs/` that is neither a remote-tracking ref nor a tag.

use super::*;

/// A validated name of the ref results live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsRef(String);

impl ResultsRef {
    /// The full ref name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ref that holds what was last fetched of this ref from `remote`:
    /// `refs/regress/remotes/<remote>/<name without refs/>`, never a branch.
    pub fn tracking(&self, remote: &str) -> Result<String, GitStoreError> {
        let rest = self.0.strip_prefix("refs/").expect("validated under refs/");
        let name = format!("{TRACKING_PREFIX}/{remote}/{rest}");
        if !git2::Reference::is_valid_name(&name) {
            return Err(GitStoreError::InvalidRef {
                name,
                reason: format!("remote name `{remote}` does not make a valid ref name"),
            });
        }
        Ok(name)
    }
}

impl Default for ResultsRef {
    fn default() -> Self {
        ResultsRef(DEFAULT_RESULTS_REF.to_string())
    }
}

impl TryFrom<&str> for ResultsRef {
    type Error = GitStoreError;

    fn try_from(name: &str) -> Result<Self, GitStoreError> {
        let invalid = |reason: &str| GitStoreError::InvalidRef {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if !name.starts_with("refs/") || name.split('/').count() < 3 {
            return Err(invalid(
                "it is not a full ref name (refs/<namespace>/<name>)",
            ));
        }
        if !git2::Reference::is_valid_name(name) {
            return Err(invalid("git does not accept it as a ref name"));
        }
        if let Some(prefix) = FORBIDDEN_REF_PREFIXES.iter().find(|p| name.starts_with(*p)) {
            return Err(invalid(&format!(
                "refs under {prefix} are git's or regress's copies of other refs, or tags, which a push never moves"
            )));
        }
        Ok(ResultsRef(name.to_string()))
    }
}

impl std::fmt::Display for ResultsRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
