//! Loaded policies, keyed by path and reloaded when the file changes.
//!
//! slurmctld calls the job_submit hook under its job write lock, so each
//! call must not read the policy again. A call costs one `stat` of the
//! policy file. The file is read, checked and parsed again only when its
//! device, inode, size, modification time or change time differ from the
//! stamp taken before the last load. A failed load is cached the same way, so
//! a broken policy is not parsed again at every submission either.
//!
//! A file written twice within one tick of the file system clock can keep
//! its stamp, so a load that saw the first write would be kept. Like git's
//! index, an entry is trusted only once the stamp is older than
//! [`SETTLE_SECONDS`]; until then every call reloads the file.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use policy_core::{check_file_security, Policy};

/// Identity and version of a file as `stat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_seconds: i64,
    modified_nanos: i64,
    changed_seconds: i64,
    changed_nanos: i64,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified_seconds: metadata.mtime(),
            modified_nanos: metadata.mtime_nsec(),
            changed_seconds: metadata.ctime(),
            changed_nanos: metadata.ctime_nsec(),
        }
    }
}

/// Age after which a file's stamp is trusted to change with its contents.
/// Two seconds cover the coarsest common timestamp resolution (FAT's 2 s);
/// ext4, XFS and tmpfs record nanoseconds.
const SETTLE_SECONDS: i64 = 2;

/// Result of the last load of one policy file.
struct Entry {
    stamp: FileStamp,
    loaded: Result<Arc<Policy>, String>,
    /// True when the stamp was older than [`SETTLE_SECONDS`] at load time.
    settled: bool,
}

static POLICIES: Mutex<Option<HashMap<PathBuf, Entry>>> = Mutex::new(None);

/// Returns the policy at `path`, loading it when it is new or its stamp
/// changed. The stamp is taken before the file is read, so a change during
/// the load is seen at the next call.
///
/// The file must be owned by root and not writable by group or others, as
/// the SPANK plugin requires on the nodes.
pub fn policy(path: &Path) -> Result<Arc<Policy>, String> {
    let metadata = std::fs::metadata(path).map_err(|error| format!("cannot read policy `{}`: {error}", path.display()))?;
    let stamp = FileStamp::of(&metadata);

    // A panic while the lock was held cannot leave an entry half written:
    // entries are replaced whole.
    let mut guard = POLICIES.lock().unwrap_or_else(PoisonError::into_inner);
    let policies = guard.get_or_insert_with(HashMap::new);
    if let Some(entry) = policies.get(path) {
        if entry.stamp == stamp && entry.settled {
            return entry.loaded.clone();
        }
    }

    let now = jiff::Timestamp::now().as_second();
    let settled = now - stamp.modified_seconds.max(stamp.changed_seconds) >= SETTLE_SECONDS;
    let loaded = load(path);
    policies.insert(path.to_path_buf(), Entry { stamp, loaded: loaded.clone(), settled });
    loaded
}

fn load(path: &Path) -> Result<Arc<Policy>, String> {
    check_file_security(path).map_err(|error| one_line(&error.to_string()))?;
    let policy = Policy::from_path(path).map_err(|error| one_line(&error.to_string()))?;
    Ok(Arc::new(policy))
}

/// Joins the lines of a multi-line load error with `; `, so that it fits one
/// slurmctld log line and one `slurm.log_user` message.
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const POLICY: &str = r#"{ "version": 1, "default_environment": "dev", "environments": { "dev": { "risk": 1 } } }"#;

    fn running_as_root() -> bool {
        std::fs::metadata("/proc/self").map(|metadata| metadata.uid() == 0).unwrap_or(false)
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    #[test]
    fn unchanged_file_reuses_policy() {
        if !running_as_root() {
            eprintln!("skipped: the policy must be owned by root, so this test needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        write(&path, POLICY);

        // A file written less than SETTLE_SECONDS ago is loaded at every call.
        let fresh = policy(&path).unwrap();
        let reloaded = policy(&path).unwrap();
        assert!(!Arc::ptr_eq(&fresh, &reloaded), "a file written just now must be loaded again");

        std::thread::sleep(std::time::Duration::from_millis(2100));
        let first = policy(&path).unwrap();
        let second = policy(&path).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "an unchanged file must not be loaded again");

        write(&path, &POLICY.replace("\"risk\": 1", "\"risk\": 2"));
        let third = policy(&path).unwrap();
        assert!(!Arc::ptr_eq(&first, &third), "a changed file must be loaded again");
        assert_ne!(first.sha256(), third.sha256());
    }

    #[test]
    fn failed_load_is_cached_until_change() {
        if !running_as_root() {
            eprintln!("skipped: the policy must be owned by root, so this test needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        write(&path, "{");
        let error = policy(&path).unwrap_err();
        assert_eq!(error, format!("{}:1:1: EOF while parsing an object", path.display()));

        write(&path, POLICY);
        assert_eq!(policy(&path).unwrap().default_environment(), "dev");
    }

    #[test]
    fn multi_line_error_joined() {
        assert_eq!(one_line("a: first\n  b: second\n\n"), "a: first; b: second");
    }
}
