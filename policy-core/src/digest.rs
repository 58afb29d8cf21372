//! SHA-256 digests of image files, with a cache that never lets a changed
//! file pass.
//!
//! Files are hashed through a fixed 256 KiB buffer, so a multi-GB image is
//! never read into memory. [`DigestCache`] stores digests under a key of the
//! file's identity and change times: (device, inode, size, mtime in ns, ctime
//! in ns). The key comes from `fstat` on the very descriptor that is hashed,
//! and is taken again after hashing to detect a file that changed meanwhile.
//! Any write, `chmod` or `utimensat` sets the ctime to the current time, and
//! only setting the system clock back can set it back, so a modified file
//! gets a new key even when its size and mtime are restored.
//!
//! Two ctimes can still be equal when two changes fall into the same tick of
//! the kernel clock. So a digest is only cached when the file's ctime is at
//! least [`DEFAULT_MIN_AGE`] older than the start of hashing: while the clock
//! does not go backwards, any later change then gets a later ctime.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Size of the read buffer used for hashing.
pub const BUFFER_BYTES: usize = 256 * 1024;
/// Minimum age of a file's ctime for its digest to be cached. It covers
/// coarse file system timestamps (FAT keeps 2 s) and small clock differences
/// between an NFS server and the node.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(2);
/// Entries kept in memory before the map is cleared.
const MAX_MEMORY_ENTRIES: usize = 4096;
/// Prefix of persistent entry names; bump the version when the format changes.
const ENTRY_PREFIX: &str = "sha256-v1-";

/// Returns the lowercase hex SHA-256 of the regular file at `path`.
///
/// # Errors
///
/// Returns the I/O error of opening or reading the file, or `InvalidInput`
/// when the path is not a regular file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular_file());
    }
    hash_reader(&mut file)
}

fn not_regular_file() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
}

fn hash_reader(reader: &mut impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(buffer.get(..read).unwrap_or_default()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(to_hex(&hasher.finalize()))
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Origin of a digest: computed now or read from a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestSource {
    /// The file was hashed now.
    Computed,
    /// The in-process cache had an entry for the file's current key.
    Memory,
    /// The persistent cache directory had an entry for the file's current key.
    Disk,
}

/// A digest and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Lowercase hex SHA-256 of the file contents.
    pub sha256: String,
    /// Whether the file was hashed or the digest came from a cache.
    pub source: DigestSource,
    /// Error message of a failed write of the persistent entry. The digest is
    /// still correct; only the next process hashes the file again.
    pub cache_write_error: Option<String>,
}

/// Identity and change times of a file, from `fstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    device: u64,
    inode: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileKey {
    fn of(metadata: &fs::Metadata) -> FileKey {
        FileKey {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000 + i128::from(metadata.ctime_nsec()),
        }
    }

    fn entry_name(&self) -> String {
        format!(
            "{ENTRY_PREFIX}{}-{}-{}-{}-{}",
            self.device, self.inode, self.size, self.mtime_ns, self.ctime_ns
        )
    }
}

/// Digest cache shared by the evaluations of one loaded policy: an
/// in-process map plus, optionally, a persistent directory that later
/// processes (every job step starts a new one) read as well.
#[derive(Debug)]
pub struct DigestCache {
    directory: Option<PathBuf>,
    directory_problem: Option<String>,
    memory: Mutex<HashMap<FileKey, String>>,
    min_age: Duration,
    temp_counter: AtomicU64,
}

impl DigestCache {
    /// Creates a cache. The persistent directory `dir` is used only when it
    /// is a directory owned by root that neither group nor others may write,
    /// in a path whose parents are root-owned and not writable by group or
    /// others (unless sticky, like `/tmp`). Otherwise only the in-process map
    /// is used, and [`DigestCache::ignored_dir_reason`] returns the reason.
    pub fn new(dir: Option<PathBuf>) -> DigestCache {
        DigestCache::with_settings(dir, 0, DEFAULT_MIN_AGE)
    }

    fn with_settings(dir: Option<PathBuf>, owner_uid: u32, min_age: Duration) -> DigestCache {
        let (directory, directory_problem) = match dir {
            None => (None, None),
            Some(dir) => match check_directory(&dir, owner_uid) {
                Ok(canonical) => (Some(canonical), None),
                Err(problem) => (None, Some(problem)),
            },
        };
        DigestCache {
            directory,
            directory_problem,
            memory: Mutex::new(HashMap::new()),
            min_age,
            temp_counter: AtomicU64::new(0),
        }
    }

    /// Returns the canonical persistent directory in use, if any.
    pub fn persistent_dir(&self) -> Option<&Path> {
        self.directory.as_deref()
    }

    /// Returns why the configured persistent directory is not used, for the
    /// caller to log.
    pub fn ignored_dir_reason(&self) -> Option<&str> {
        self.directory_problem.as_deref()
    }

    /// Returns the lowercase hex SHA-256 of the regular file at `path`.
    ///
    /// # Errors
    ///
    /// See [`DigestCache::sha256_with_source`].
    pub fn sha256(&self, path: &Path) -> io::Result<String> {
        self.sha256_with_source(path).map(|digest| digest.sha256)
    }

    /// Returns the digest of the regular file at `path` and where it came
    /// from. A cached digest is returned only when the descriptor's `fstat`
    /// key equals the key it was stored under.
    ///
    /// # Errors
    ///
    /// Returns the I/O error of opening, `fstat` or reading, `InvalidInput`
    /// when the path is not a regular file, and `Other` when the file changed
    /// while it was being hashed.
    pub fn sha256_with_source(&self, path: &Path) -> io::Result<FileDigest> {
        self.digest_with_hook(path, |_| {})
    }

    /// Does the work of `sha256_with_source`; tests use `after_hashing` to
    /// change the file between hashing and the second `fstat`.
    fn digest_with_hook(&self, path: &Path, after_hashing: impl FnOnce(&Path)) -> io::Result<FileDigest> {
        let started = SystemTime::now();
        let mut file = File::open(path)?;
        let before = file.metadata()?;
        if !before.is_file() {
            return Err(not_regular_file());
        }
        let key = FileKey::of(&before);

        if let Some(sha256) = self.memory_get(&key) {
            return Ok(FileDigest { sha256, source: DigestSource::Memory, cache_write_error: None });
        }
        if let Some(sha256) = self.disk_get(&key) {
            self.memory_put(key, &sha256);
            return Ok(FileDigest { sha256, source: DigestSource::Disk, cache_write_error: None });
        }

        let sha256 = hash_reader(&mut file)?;
        after_hashing(path);
        if FileKey::of(&file.metadata()?) != key {
            return Err(io::Error::other(
                "the file changed while it was being hashed; try again once it is no longer being written",
            ));
        }

        let mut cache_write_error = None;
        if self.is_old_enough(&key, started) {
            self.memory_put(key, &sha256);
            cache_write_error = self.disk_put(&key, &sha256).err();
        }
        Ok(FileDigest { sha256, source: DigestSource::Computed, cache_write_error })
    }

    /// Returns whether the file's last change lies far enough before
    /// `started` that any later change gets a different ctime.
    fn is_old_enough(&self, key: &FileKey, started: SystemTime) -> bool {
        let Ok(since_epoch) = started.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let limit_ns = i128::try_from(since_epoch.saturating_sub(self.min_age).as_nanos()).unwrap_or(i128::MAX);
        key.ctime_ns <= limit_ns
    }

    fn memory_get(&self, key: &FileKey) -> Option<String> {
        let memory = self.memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        memory.get(key).cloned()
    }

    fn memory_put(&self, key: FileKey, sha256: &str) {
        let mut memory = self.memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if memory.len() >= MAX_MEMORY_ENTRIES {
            memory.clear();
        }
        memory.insert(key, sha256.to_string());
    }

    fn disk_get(&self, key: &FileKey) -> Option<String> {
        let path = self.directory.as_ref()?.join(key.entry_name());
        let mut contents = String::new();
        // An entry is 65 bytes; read one more to notice a longer file.
        File::open(path).ok()?.take(66).read_to_string(&mut contents).ok()?;
        let sha256 = contents.strip_suffix('\n')?;
        is_lower_hex_sha256(sha256).then(|| sha256.to_string())
    }

    /// Writes an entry to a temporary file and renames it into place, so a
    /// reader sees either no entry or a complete one.
    fn disk_put(&self, key: &FileKey, sha256: &str) -> Result<(), String> {
        let Some(directory) = &self.directory else {
            return Ok(());
        };
        let counter = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = directory.join(format!(".tmp-{}-{counter}-{}", std::process::id(), key.entry_name()));
        let target = directory.join(key.entry_name());

        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(format!("{sha256}\n").as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temp, &target));
        result.map_err(|error| {
            let _ = fs::remove_file(&temp);
            format!("cannot write digest cache entry `{}`: {error}", target.display())
        })
    }
}

fn is_lower_hex_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks the persistent directory and its parents; returns the canonical
/// directory or why it cannot be trusted.
fn check_directory(dir: &Path, owner_uid: u32) -> Result<PathBuf, String> {
    let display = dir.display();
    let canonical =
        fs::canonicalize(dir).map_err(|error| format!("digest cache directory `{display}` is not usable: {error}"))?;
    let metadata = fs::metadata(&canonical)
        .map_err(|error| format!("digest cache directory `{display}` is not usable: {error}"))?;
    if !metadata.is_dir() {
        return Err(format!("digest cache directory `{display}` is not a directory"));
    }
    if metadata.uid() != owner_uid {
        return Err(format!(
            "digest cache directory `{display}` is owned by uid {}, not {}; run `chown {} {display}`",
            metadata.uid(),
            owner_name(owner_uid),
            owner_name(owner_uid)
        ));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "digest cache directory `{display}` is writable by group or others (mode {mode:04o}); run `chmod go-w {display}`"
        ));
    }

    for parent in canonical.ancestors().skip(1) {
        let metadata = fs::metadata(parent)
            .map_err(|error| format!("digest cache directory `{display}`: cannot check `{}`: {error}", parent.display()))?;
        let mode = metadata.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        let trusted_owner = metadata.uid() == 0 || metadata.uid() == owner_uid;
        if !trusted_owner || (mode & 0o022 != 0 && !sticky) {
            return Err(format!(
                "digest cache directory `{display}` is inside `{}`, which a user other than {} can change \
                 (owner uid {}, mode {:04o})",
                parent.display(),
                owner_name(owner_uid),
                metadata.uid(),
                mode & 0o7777
            ));
        }
    }
    Ok(canonical)
}

fn owner_name(uid: u32) -> String {
    if uid == 0 {
        "root".to_string()
    } else {
        format!("uid {uid}")
    }
}

#[cfg(test)]
mod tests;
