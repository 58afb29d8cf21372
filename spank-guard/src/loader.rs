//! Loading the policy file named on the plugstack line.

use std::io::ErrorKind;
use std::path::Path;

use policy_core::policy::check_file_security;
use policy_core::{LoadError, Policy};

/// Reason the policy is not available.
pub enum LoadFailure {
    /// The calling user may not read the file. Only the submit-side check
    /// treats this specially: it skips the check and leaves it to the node.
    NotReadable,
    /// The file is missing, unreadable, insecure or invalid.
    Invalid(LoadError),
}

/// Checks the file's owner and mode like sudo does, then loads it.
///
/// With `report_not_readable`, a file the caller may not open yields
/// [`LoadFailure::NotReadable`]; otherwise that case is an invalid policy
/// like any other read error.
pub fn load(path: &Path, report_not_readable: bool) -> Result<Policy, LoadFailure> {
    if report_not_readable {
        if let Err(error) = std::fs::File::open(path) {
            if error.kind() == ErrorKind::PermissionDenied {
                return Err(LoadFailure::NotReadable);
            }
        }
    }
    check_file_security(path).map_err(LoadFailure::Invalid)?;
    Policy::from_path(path).map_err(LoadFailure::Invalid)
}
