//! Exit statuses and the error type every command returns.

use std::fmt;

/// Exit status of `guardctl`. The numbers are documented in the README and
/// scripts rely on them, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The command succeeded; for `explain`, the job would run (allow or would_deny).
    Success,
    /// The input was checked and rejected (invalid policy, invalid ticket), or
    /// a file could not be read or written.
    Failure,
    /// `explain`: the policy denies the request.
    Denied,
}

impl Status {
    /// Returns the process exit code. Code 2 is clap's usage error.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Denied => 3,
        }
    }
}

/// A failed command: the message printed after `guardctl: `. It exits with
/// [`Status::Failure`].
#[derive(Debug)]
pub struct Failure {
    message: String,
}

impl Failure {
    /// Builds a failure that exits with status 1.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure { message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}
