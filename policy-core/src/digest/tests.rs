use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::*;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// Uid of this test process: the owner of a file it creates.
fn current_uid(dir: &Path) -> u32 {
    let probe = dir.join("uid-probe");
    fs::write(&probe, b"").unwrap();
    let uid = fs::metadata(&probe).unwrap().uid();
    fs::remove_file(&probe).unwrap();
    uid
}

/// Creates a cache that stores fresh files at once and trusts directories
/// owned by this process, so tests can run as any user.
fn test_cache(dir: Option<&Path>, uid: u32) -> DigestCache {
    DigestCache::with_settings(dir.map(Path::to_path_buf), uid, Duration::ZERO)
}

fn private_dir(parent: &Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn ctime_ns(path: &Path) -> i128 {
    let metadata = fs::metadata(path).unwrap();
    i128::from(metadata.ctime()) * 1_000_000_000 + i128::from(metadata.ctime_nsec())
}

/// Overwrites `path` with `contents` (same length) and restores its mtime,
/// repeating until the kernel clock has moved on so the ctime differs.
fn rewrite_keeping_size_and_mtime(path: &Path, contents: &[u8]) {
    let original = fs::metadata(path).unwrap();
    let original_ctime = ctime_ns(path);
    let modified = original.modified().unwrap();
    for _ in 0..100_000 {
        let mut file = OpenOptions::new().write(true).open(path).unwrap();
        file.write_all(contents).unwrap();
        file.set_times(FileTimes::new().set_modified(modified)).unwrap();
        drop(file);
        if ctime_ns(path) != original_ctime {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let now = fs::metadata(path).unwrap();
    assert_eq!(now.size(), original.size());
    assert_eq!((now.mtime(), now.mtime_nsec()), (original.mtime(), original.mtime_nsec()));
    assert_ne!(ctime_ns(path), original_ctime, "the ctime never changed");
}

#[test]
fn known_digests() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();
    assert_eq!(sha256_file(&empty).unwrap(), EMPTY_SHA256);
    let abc = dir.path().join("abc");
    fs::write(&abc, b"abc").unwrap();
    assert_eq!(sha256_file(&abc).unwrap(), ABC_SHA256);
}

#[test]
fn file_larger_than_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let contents: Vec<u8> = (0..BUFFER_BYTES * 3 + 17).map(|i| (i % 251) as u8).collect();
    fs::write(&path, &contents).unwrap();
    let expected = format!("{:x}", Sha256::digest(&contents));
    assert_eq!(sha256_file(&path).unwrap(), expected);
    assert_eq!(DigestCache::new(None).sha256(&path).unwrap(), expected);
}

#[test]
fn directories_and_missing_files_fail() {
    let dir = tempfile::tempdir().unwrap();
    let error = sha256_file(dir.path()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert_eq!(error.to_string(), "not a regular file");

    let error = DigestCache::new(None).sha256(dir.path()).unwrap_err();
    assert_eq!(error.to_string(), "not a regular file");

    let error = sha256_file(&dir.path().join("missing")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    let error = DigestCache::new(None).sha256(&dir.path().join("missing")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[test]
fn second_lookup_hits_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.sif");
    fs::write(&path, b"abc").unwrap();
    let cache = test_cache(None, 0);

    let first = cache.sha256_with_source(&path).unwrap();
    assert_eq!(first.sha256, ABC_SHA256);
    assert_eq!(first.source, DigestSource::Computed);
    let second = cache.sha256_with_source(&path).unwrap();
    assert_eq!(second.sha256, ABC_SHA256);
    assert_eq!(second.source, DigestSource::Memory);
}

#[test]
fn same_size_rewrite_with_restored_mtime_rehashes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.sif");
    fs::write(&path, b"abc").unwrap();
    let cache = test_cache(None, 0);
    assert_eq!(cache.sha256_with_source(&path).unwrap().source, DigestSource::Computed);
    assert_eq!(cache.sha256_with_source(&path).unwrap().source, DigestSource::Memory);

    rewrite_keeping_size_and_mtime(&path, b"abd");

    let after = cache.sha256_with_source(&path).unwrap();
    assert_eq!(after.source, DigestSource::Computed);
    assert_eq!(after.sha256, format!("{:x}", Sha256::digest(b"abd")));
}

#[test]
fn fresh_files_are_not_cached() {
    // With the default minimum age, a file changed just now may still be
    // changed again within the same ctime tick, so nothing is stored.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.sif");
    fs::write(&path, b"abc").unwrap();
    let cache = DigestCache::new(None);
    assert_eq!(cache.sha256_with_source(&path).unwrap().source, DigestSource::Computed);
    assert_eq!(cache.sha256_with_source(&path).unwrap().source, DigestSource::Computed);
}

#[test]
fn change_during_hashing_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.sif");
    fs::write(&path, b"abc").unwrap();
    let cache = test_cache(None, 0);

    let error = cache
        .digest_with_hook(&path, |path| {
            OpenOptions::new().append(true).open(path).unwrap().write_all(b"more").unwrap();
        })
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Other);
    assert_eq!(
        error.to_string(),
        "the file changed while it was being hashed; try again once it is no longer being written"
    );
    // Nothing was cached for the old or the new contents.
    let digest = cache.sha256_with_source(&path).unwrap();
    assert_eq!(digest.source, DigestSource::Computed);
    assert_eq!(digest.sha256, format!("{:x}", Sha256::digest(b"abcmore")));
}

#[test]
fn persistent_entries_are_shared_between_caches() {
    let dir = tempfile::tempdir().unwrap();
    let uid = current_uid(dir.path());
    let cache_dir = private_dir(dir.path(), "cache");
    let path = dir.path().join("image.sif");
    fs::write(&path, b"abc").unwrap();

    let writer = test_cache(Some(&cache_dir), uid);
    assert_eq!(writer.persistent_dir(), Some(fs::canonicalize(&cache_dir).unwrap().as_path()));
    assert_eq!(writer.ignored_dir_reason(), None);
    let first = writer.sha256_with_source(&path).unwrap();
    assert_eq!(first.source, DigestSource::Computed);
    assert_eq!(first.cache_write_error, None);

    let entries: Vec<String> =
        fs::read_dir(&cache_dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    let key = FileKey::of(&fs::metadata(&path).unwrap());
    assert_eq!(entries, vec![key.entry_name()]);
    assert!(entries[0].starts_with("sha256-v1-"));
    let entry_path = cache_dir.join(&entries[0]);
    assert_eq!(fs::read_to_string(&entry_path).unwrap(), format!("{ABC_SHA256}\n"));
    assert_eq!(fs::metadata(&entry_path).unwrap().permissions().mode() & 0o777, 0o644);

    // A new process (a new cache) finds the entry on disk, then in memory.
    let reader = test_cache(Some(&cache_dir), uid);
    assert_eq!(reader.sha256_with_source(&path).unwrap().source, DigestSource::Disk);
    assert_eq!(reader.sha256_with_source(&path).unwrap().source, DigestSource::Memory);

    // After a change the old entry no longer applies.
    rewrite_keeping_size_and_mtime(&path, b"xyz");
    let changed = test_cache(Some(&cache_dir), uid).sha256_with_source(&path).unwrap();
    assert_eq!(changed.source, DigestSource::Computed);
    assert_eq!(changed.sha256, format!("{:x}", Sha256::digest(b"xyz")));
}

#[test]
fn corrupt_persistent_entry_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let uid = current_uid(dir.path());
    let cache_dir = private_dir(dir.path(), "cache");
    let path = dir.path().join("image.sif");
    fs::write(&path, b"abc").unwrap();
    let entry = cache_dir.join(FileKey::of(&fs::metadata(&path).unwrap()).entry_name());

    for corrupt in ["", "abc\n", &format!("{}\n", ABC_SHA256.to_uppercase()), &format!("{ABC_SHA256}\nextra")] {
        fs::write(&entry, corrupt).unwrap();
        let digest = test_cache(Some(&cache_dir), uid).sha256_with_source(&path).unwrap();
        assert_eq!(digest.source, DigestSource::Computed, "entry {corrupt:?}");
        assert_eq!(digest.sha256, ABC_SHA256);
        // The recomputed digest replaced the bad entry.
        assert_eq!(fs::read_to_string(&entry).unwrap(), format!("{ABC_SHA256}\n"));
    }
}

#[test]
fn unwritable_persistent_dir_reports_error() {
    let dir = tempfile::tempdir().unwrap();
    let uid = current_uid(dir.path());
    let cache_dir = private_dir(dir.path(), "cache");
    let path = dir.path().join("image.sif");
    fs::write(&path, b"abc").unwrap();
    let cache = test_cache(Some(&cache_dir), uid);
    // Removing the directory after the check makes every write fail.
    fs::remove_dir(&cache_dir).unwrap();

    let digest = cache.sha256_with_source(&path).unwrap();
    assert_eq!(digest.sha256, ABC_SHA256);
    let error = digest.cache_write_error.unwrap();
    assert!(error.starts_with("cannot write digest cache entry `"), "{error}");
    assert!(error.ends_with("`: No such file or directory (os error 2)"), "{error}");
}

#[test]
fn non_root_owned_dir_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = private_dir(dir.path(), "cache");
    // As root, hand the directory to `nobody`; as any other user it is not
    // root-owned to begin with.
    let _ = std::os::unix::fs::chown(&cache_dir, Some(65534), Some(65534));
    let owner = fs::metadata(&cache_dir).unwrap().uid();
    assert_ne!(owner, 0);

    let cache = DigestCache::new(Some(cache_dir.clone()));
    assert_eq!(cache.persistent_dir(), None);
    assert_eq!(
        cache.ignored_dir_reason(),
        Some(
            format!(
                "digest cache directory `{0}` is owned by uid {owner}, not root; run `chown root {0}`",
                cache_dir.display()
            )
            .as_str()
        )
    );

    let path = dir.path().join("image.sif");
    fs::write(&path, b"abc").unwrap();
    assert_eq!(cache.sha256(&path).unwrap(), ABC_SHA256);
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 0);
}

#[test]
fn group_writable_dir_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let uid = current_uid(dir.path());
    let cache_dir = private_dir(dir.path(), "cache");
    fs::set_permissions(&cache_dir, fs::Permissions::from_mode(0o775)).unwrap();

    let cache = test_cache(Some(&cache_dir), uid);
    assert_eq!(cache.persistent_dir(), None);
    assert_eq!(
        cache.ignored_dir_reason(),
        Some(
            format!(
                "digest cache directory `{0}` is writable by group or others (mode 0775); run `chmod go-w {0}`",
                cache_dir.display()
            )
            .as_str()
        )
    );
}

#[test]
fn dir_inside_writable_parent_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let uid = current_uid(dir.path());
    let parent = private_dir(dir.path(), "shared");
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).unwrap();
    let cache_dir = private_dir(&parent, "cache");

    let cache = test_cache(Some(&cache_dir), uid);
    assert_eq!(cache.persistent_dir(), None);
    let expected_owner = if uid == 0 { "root".to_string() } else { format!("uid {uid}") };
    assert_eq!(
        cache.ignored_dir_reason(),
        Some(
            format!(
                "digest cache directory `{}` is inside `{}`, which a user other than {expected_owner} can change \
                 (owner uid {uid}, mode 0777)",
                cache_dir.display(),
                parent.display()
            )
            .as_str()
        )
    );

    // The sticky bit, as on /tmp, stops others from replacing the entry.
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(test_cache(Some(&cache_dir), uid).persistent_dir().is_some());
}

#[test]
fn missing_or_file_dir_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let uid = current_uid(dir.path());
    let missing = dir.path().join("missing");
    let cache = test_cache(Some(&missing), uid);
    assert_eq!(cache.persistent_dir(), None);
    assert_eq!(
        cache.ignored_dir_reason(),
        Some(
            format!(
                "digest cache directory `{}` is not usable: No such file or directory (os error 2)",
                missing.display()
            )
            .as_str()
        )
    );

    let file = dir.path().join("file");
    File::create(&file).unwrap();
    let cache = test_cache(Some(&file), uid);
    assert_eq!(
        cache.ignored_dir_reason(),
        Some(format!("digest cache directory `{}` is not a directory", file.display()).as_str())
    );

    assert_eq!(DigestCache::new(None).ignored_dir_reason(), None);
}

#[test]
fn symlinked_dir_resolves_to_target() {
    let dir = tempfile::tempdir().unwrap();
    let uid = current_uid(dir.path());
    let cache_dir = private_dir(dir.path(), "cache");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&cache_dir, &link).unwrap();
    let cache = test_cache(Some(&link), uid);
    assert_eq!(cache.persistent_dir(), Some(fs::canonicalize(&cache_dir).unwrap().as_path()));
}
