//! Helpers shared by the integration tests.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Returns true when `path` and every directory above it are owned by root
/// and not writable by group or others, as `require_root_owned` demands.
pub fn root_owned_tree(path: &Path) -> bool {
    path.ancestors().all(|ancestor| match std::fs::metadata(ancestor) {
        Ok(metadata) => metadata.uid() == 0 && metadata.mode() & 0o022 == 0,
        Err(_) => false,
    })
}

/// Creates a temporary directory (mode 0755) whose parents are all owned by
/// root and not writable by others, so image checks can pass.
///
/// Cargo's target directory is used when its parents qualify. A checkout
/// under `/tmp` (world-writable) does not, so `/run` (root-owned 0755 on
/// Debian) is the fallback.
pub fn root_owned_tempdir(prefix: &str) -> tempfile::TempDir {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let base = [target, Path::new("/run")]
        .into_iter()
        .find(|candidate| root_owned_tree(candidate))
        .unwrap_or(target);
    let directory = tempfile::Builder::new().prefix(prefix).tempdir_in(base).unwrap();
    std::fs::set_permissions(directory.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    directory
}
