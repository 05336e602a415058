//! The environment workers get: the parent's, minus anything that looks like
//! a credential. A benchmark has no business holding `GITHUB_TOKEN`, and a
//! user's model code is not ours to trust with it.

use std::ffi::OsString;

/// Name fragments that mark a variable as secret (compared upper-case).
const SECRET_MARKERS: [&str; 3] = ["TOKEN", "SECRET", "PASSWORD"];

/// Whether a variable name looks like it holds a credential.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m))
}

/// The current environment without secret-looking variables, except those
/// the pipeline passes through by name.
pub fn scrubbed_env(passthrough: &[String]) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| {
            let name = k.to_string_lossy();
            !is_secret_name(&name) || passthrough.iter().any(|p| *p == name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognised() {
        for name in [
            "GITHUB_TOKEN",
            "hf_token",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
            "ACTIONS_RUNTIME_TOKEN",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["PATH", "HOME", "CUDA_VISIBLE_DEVICES", "TORCH_HOME"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }
}
