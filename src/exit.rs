//! Exit codes. `cmd/` maps a comparison's `Gate` and a run's outcome onto
//! them; `main` turns them into the process status.

/// How a successful invocation ends, mapped to the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything went as asked.
    Success,
    /// A case regressed and the gate asked to fail on regressions.
    Regressed,
    /// A case failed (crash, timeout, out of memory, accuracy): in a run,
    /// or at head when the gate asked to fail on failures.
    Failed,
    /// Input was invalid (already reported).
    Invalid,
    /// A remote could not be reached, or did not take the results after
    /// every retry (already reported); nothing local was lost.
    Remote,
    /// The user stopped a run; what finished is stored.
    Interrupted,
}

impl Exit {
    /// The process exit status: 0, 1 (regressed or failed), 2, 3 (remote),
    /// or 130 (killed by SIGINT, by convention).
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Regressed | Exit::Failed => 1,
            Exit::Invalid => 2,
            Exit::Remote => 3,
            Exit::Interrupted => 130,
        }
    }
}
