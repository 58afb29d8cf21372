//! `guardctl check POLICY`.

use policy_core::Policy;

use crate::cli::CheckArgs;
use crate::failure::{Failure, Status};
use crate::output::{count, print};

/// Validates the policy and prints its summary, or every problem.
pub fn run(arguments: &CheckArgs) -> Result<Status, Failure> {
    let origin = arguments.policy.display();
    match Policy::from_path(&arguments.policy) {
        Ok(policy) => {
            print(&format!("{origin}: {}\n", summary(&policy)))?;
            Ok(Status::Success)
        }
        Err(error) => Err(super::load_failure(&arguments.policy, &error)),
    }
}

/// Returns `valid policy, 3 environments (dev, prod, staging), 1 image set
/// (approved), sha256 <hex>`.
fn summary(policy: &Policy) -> String {
    let environments = policy.environment_names();
    let image_sets = policy.image_set_names();
    format!(
        "valid policy, {}, {}, sha256 {}",
        listed(&environments, "environment", "environments"),
        listed(&image_sets, "image set", "image sets"),
        policy.sha256()
    )
}

/// Returns `2 image sets (approved, gpu)`, or `0 image sets`.
fn listed(names: &[&str], singular: &str, plural: &str) -> String {
    let counted = count(names.len(), singular, plural);
    if names.is_empty() {
        counted
    } else {
        format!("{counted} ({})", names.join(", "))
    }
}
