//! `guardctl policy sha256 POLICY`.
//!
//! Prints the sha256 of a policy the plugin would accept, for drift checks
//! across nodes: the same digest appears as `policy_sha256` in every audit
//! record and in `guardctl check`. Unlike `sha256sum`, it fails when the
//! plugin would reject the file (invalid policy, not owned by root, or
//! writable by group or others), because such a file is not the active
//! policy even though it exists.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use policy_core::{check_file_security, Policy};

use crate::failure::{Failure, Status};
use crate::output::print;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the sha256 of a policy file the plugin would load.
    ///
    /// Prints the lowercase hex digest of the file's exact bytes and a
    /// newline. Exits 1, printing every problem, when the policy is invalid
    /// or when, like the plugin, it rejects the file's owner or mode.
    Sha256(PolicySha256Args),
}

#[derive(Debug, Args)]
pub struct PolicySha256Args {
    /// Policy file, for example /etc/slurm/spank-guard/policy.json.
    #[arg(value_name = "POLICY")]
    pub policy: PathBuf,

    /// Skip the owner and mode check, for a copy of the policy that is not
    /// installed on a node (the plugin never skips it).
    #[arg(long = "any-owner")]
    pub any_owner: bool,
}

/// Runs `guardctl policy ...`.
pub fn run(command: &PolicyCommand) -> Result<Status, Failure> {
    match command {
        PolicyCommand::Sha256(arguments) => sha256(arguments),
    }
}

fn sha256(arguments: &PolicySha256Args) -> Result<Status, Failure> {
    let path = &arguments.policy;
    if !arguments.any_owner {
        check_file_security(path).map_err(|error| {
            Failure::new(format!("{}: the plugin would reject this policy file:\n{error}", path.display()))
        })?;
    }
    let policy = Policy::from_path(path).map_err(|error| super::load_failure(path, &error))?;
    print(&format!("{}\n", policy.sha256()))?;
    Ok(Status::Success)
}
