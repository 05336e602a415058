//! Identities that key stored results: a commit, a case, a machine, a run.
//! Each is a newtype validated on construction, so a malformed id read from
//! a record or typed by a user is an error where it enters, never a silent
//! mismatch later. All four come from one macro.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a validated text identity: `$check` says whether a string is
/// one, `$what` describes the valid form in errors.
macro_rules! validated_id {
    ($(#[$meta:meta])* $name:ident, $what:expr, $check:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                let check: fn(&str) -> bool = $check;
                if check(&s) {
                    Ok($name(s))
                } else {
                    Err(format!("`{s}` is not {}", $what))
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = String;

            fn try_from(s: &str) -> Result<Self, String> {
                $name::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Whether `s` is exactly `len` lowercase hex digits.
fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Hex digits in a SHA-1 commit id.
pub const COMMIT_SHA_LEN: usize = 40;
/// Hex digits in a case id and a machine fingerprint: 64 bits of FNV-1a.
pub const SHORT_HASH_LEN: usize = 16;
/// Longest run id: it becomes a file name in the store.
const MAX_RUN_ID_LEN: usize = 80;

validated_id!(
    /// A full 40-digit git commit id.
    CommitSha,
    "a full commit id (40 lowercase hex digits)",
    |s| is_hex(s, COMMIT_SHA_LEN)
);

impl CommitSha {
    /// The abbreviated form shown to people.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

validated_id!(
    /// A case's stable identity: 16 hex digits of a hash of the pipeline
    /// name, the model and the case's parameters and phase.
    CaseId,
    "a case id (16 lowercase hex digits)",
    |s| is_hex(s, SHORT_HASH_LEN)
);

validated_id!(
    /// 16 hex digits identifying the hardware and software that determine
    /// speed; results are compared only between equal fingerprints.
    Fingerprint,
    "a machine fingerprint (16 lowercase hex digits)",
    |s| is_hex(s, SHORT_HASH_LEN)
);

validated_id!(
    /// One run of one pipeline: its start time (so names sort by time), the
    /// process id and 64 random bits. Runs are file names in the store, so
    /// only letters, digits, '.', '-' and '_' are allowed.
    RunId,
    "a run id (1 to 80 letters, digits, '.', '-' or '_', starting with a letter or digit)",
    |s| !s.is_empty()
        && s.len() <= MAX_RUN_ID_LEN
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
);

impl RunId {
    /// A new id for a run starting at `started`. Two shards on two
    /// machines (or in two containers, where pids repeat) that start in the
    /// same millisecond still differ: the random part decides.
    pub fn new(started: chrono::DateTime<chrono::Utc>) -> RunId {
        RunId(format!(
            "{}-{}-{:016x}",
            started.format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id(),
            random_u64()
        ))
    }
}

/// 64 bits from the operating system's random source. std's `RandomState`
/// keys are drawn from it once per thread and then stepped, so a fresh
/// hasher also mixes in a per-process counter and the time.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQUENCE.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// FNV-1a, 64 bit, as 16 hex digits: tiny, dependency-free and stable across
/// releases and platforms, which `std`'s hasher is not. Case ids, pipeline
/// hashes and fingerprints are made with it; collisions are irrelevant at
/// the scale of one pipeline's cases or one fleet's machines.
pub fn fnv_hex(bytes: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    format!("{h:016x}")
}

impl CaseId {
    /// The id of the case described by `key` (see `spec::case`).
    pub fn of(key: &str) -> CaseId {
        CaseId(fnv_hex(key.as_bytes()))
    }
}

impl Fingerprint {
    /// The fingerprint of the machine described by `key` (see `runner::machine`).
    pub fn of(key: &str) -> Fingerprint {
        Fingerprint(fnv_hex(key.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated_on_construction() {
        assert!(CommitSha::try_from("91cf47618cdf4980421d3d38d1b48c5023106923").is_ok());
        let short = CommitSha::try_from("91cf476").unwrap_err();
        assert!(short.contains("40 lowercase hex digits"), "{short}");
        assert!(CommitSha::try_from("91CF47618CDF4980421D3D38D1B48C5023106923").is_err());
        assert!(CaseId::try_from("262a43ceca871f46").is_ok());
        assert!(CaseId::try_from("262a43ceca871f4g").is_err());
        assert!(Fingerprint::try_from("xyz").is_err());
        assert!(Fingerprint::try_from("0123456789abcdef").is_ok());
        // Ids written by earlier versions still read.
        assert!(RunId::try_from("20251201T120000.000Z-1234-0000").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(RunId::try_from(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&CaseId::of("x")).unwrap();
        assert_eq!(
            serde_json::from_str::<CaseId>(&json).unwrap(),
            CaseId::of("x")
        );
        assert!(serde_json::from_str::<CaseId>("\"nothex\"").is_err());
    }

    #[test]
    fn run_ids_of_the_same_millisecond_differ() {
        let now = chrono::Utc::now();
        let ids: std::collections::HashSet<RunId> = (0..1000).map(|_| RunId::new(now)).collect();
        assert_eq!(ids.len(), 1000);
        let one = RunId::new(now);
        assert!(RunId::try_from(one.as_str()).is_ok(), "{one}");
        assert!(one
            .as_str()
            .starts_with(&now.format("%Y%m%dT%H%M%S").to_string()));
    }

    #[test]
    fn fnv_is_pinned() {
        // Ids and fingerprints key stored results: this must never change.
        assert_eq!(fnv_hex(b""), "cbf29ce484222325");
        assert_eq!(fnv_hex(b"regress"), "639c3a6b4d02a96e");
    }
}
