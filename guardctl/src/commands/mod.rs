//! One module per subcommand.

pub mod audit;
pub mod check;
pub mod evidence;
pub mod explain;
pub mod metrics;
pub mod plugin;
pub mod policy;
pub mod replay;
pub mod ticket;

use std::path::Path;

use policy_core::Policy;

use crate::failure::Failure;
use crate::output::count;

/// Loads the policy a command works with; the failure lists every problem,
/// one per line, each with the path, line and column.
pub fn load_policy(path: &Path) -> Result<Policy, Failure> {
    Policy::from_path(path).map_err(|error| load_failure(path, &error))
}

/// Returns `PATH: cannot load policy, 2 problems:` followed by the problems.
pub fn load_failure(path: &Path, error: &policy_core::LoadError) -> Failure {
    let problems = count(error.problems.len(), "problem", "problems");
    Failure::new(format!("{}: cannot load policy, {problems}:\n{error}", path.display()))
}
