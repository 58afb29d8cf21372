//! Loaded policies, keyed by path and reloaded when the file changes.
//!
//! slurmctld calls the job_submit hook under its job write lock, so each
//! call must not read the policy again. A call costs one `stat` of the
//! policy file. The file is read, checked and parsed again only when its
//! device, inode, size, modification time or change time differ from the
//! stamp taken before the last load. A failed load is cached the same way, so
//! a broken policy is not parsed again at every submission either.

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

/// Result of the last load of one policy file.
struct Entry {
    stamp: FileStamp,
    loaded: Result<Arc<Policy>, String>,
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
        if entry.stamp == stamp {
            return entry.loaded.clone();
        }
    }

    let loaded = load(path);
    policies.insert(path.to_path_buf(), Entry { stamp, loaded: loaded.clone() });
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
