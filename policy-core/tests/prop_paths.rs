//! Property tests for `paths::canonicalize_abs` and `paths::is_within` on a
//! real directory tree with symbolic links, `..` and a sibling whose name
//! shares a prefix with the allowed root.
//!
//! The oracle does not use either function: it walks up from the requested
//! path through `..` entries, which the kernel resolves physically, and
//! compares (device, inode) pairs with the allowed root. So a bug in
//! canonicalisation or in the component comparison shows up as a path that
//! `is_within` accepts but that lies outside the root on disk.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test by unwrapping or panicking"
)]

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use policy_core::paths::{canonicalize_abs, is_within};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Path components the generated paths are built from: every directory and
/// link name of the tree, plus `.`, `..`, an empty component (`//`) and a
/// missing name.
const COMPONENTS: &[&str] = &[
    "data", "data2", "prod", "deep", "dev", "outside", "secret", "link-out", "abs-out", "link-in", "up", "link-back",
    "loop", "dangling", "..", ".", "", "missing",
];

/// A temporary tree:
///
/// ```text
/// base/data/prod/deep
/// base/data/prod/abs-out -> base/outside/secret (absolute)
/// base/data/dev/up       -> ../..               (base)
/// base/data/link-out     -> ../outside
/// base/data/link-in      -> prod
/// base/data/loop         -> loop                (ELOOP)
/// base/data/dangling     -> missing
/// base/data2/prod
/// base/outside/secret
/// base/outside/link-back -> ../data/prod
/// ```
struct Tree {
    _dir: tempfile::TempDir,
    base: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        for sub in ["data/prod/deep", "data/dev", "data2/prod", "outside/secret"] {
            fs::create_dir_all(base.join(sub)).unwrap();
        }
        symlink(base.join("outside/secret"), base.join("data/prod/abs-out")).unwrap();
        symlink("../..", base.join("data/dev/up")).unwrap();
        symlink("../outside", base.join("data/link-out")).unwrap();
        symlink("prod", base.join("data/link-in")).unwrap();
        symlink("loop", base.join("data/loop")).unwrap();
        symlink("missing", base.join("data/dangling")).unwrap();
        symlink("../data/prod", base.join("outside/link-back")).unwrap();
        Tree { _dir: dir, base }
    }

    fn path(&self, components: &[&str]) -> String {
        let mut text = self.base.to_str().unwrap().to_string();
        for component in components {
            text.push('/');
            text.push_str(component);
        }
        text
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|metadata| (metadata.dev(), metadata.ino()))
}

/// Returns whether the directory `path` resolves to lies at or below `root`
/// on disk, by walking up through `..` until `/`.
fn physically_inside(path: &str, root: &Path) -> bool {
    let root_id = file_id(root).unwrap();
    let mut current = PathBuf::from(path);
    for _ in 0..256 {
        let Some(id) = file_id(&current) else {
            return false;
        };
        if id == root_id {
            return true;
        }
        let parent = current.join("..");
        if file_id(&parent) == Some(id) {
            return false;
        }
        current = parent;
    }
    panic!("walking up from {path} did not reach /");
}

fn component_lists() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(COMPONENTS), 0..8)
}

fn check_against_oracle(tree: &Tree, root: &Path) {
    let root = fs::canonicalize(root).unwrap();
    let mut runner = TestRunner::new(Config { cases: 2000, failure_persistence: None, ..Config::default() });
    runner
        .run(&component_lists(), |components| {
            let requested = tree.path(&components);
            match canonicalize_abs(&requested) {
                Ok(canonical) => {
                    prop_assert_eq!(file_id(&canonical), file_id(Path::new(&requested)));
                    for ancestor in canonical.ancestors() {
                        let metadata = fs::symlink_metadata(ancestor).unwrap();
                        prop_assert!(!metadata.file_type().is_symlink(), "{} is a symlink", ancestor.display());
                    }
                    prop_assert!(!canonical.to_str().unwrap().contains("/./"));
                    prop_assert_eq!(
                        is_within(&canonical, &root),
                        physically_inside(&requested, &root),
                        "requested {}, canonical {}, root {}",
                        requested,
                        canonical.display(),
                        root.display()
                    );
                }
                Err(message) => {
                    prop_assert!(fs::metadata(&requested).is_err(), "{requested} exists but failed: {message}");
                    prop_assert!(message.starts_with(&format!("cannot resolve `{requested}`: ")), "{message}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn within_data_matches_disk() {
    let tree = Tree::new();
    check_against_oracle(&tree, &tree.base.join("data"));
}

#[test]
fn within_nested_root_matches_disk() {
    let tree = Tree::new();
    check_against_oracle(&tree, &tree.base.join("data/prod"));
}

#[test]
fn within_prefix_sibling_matches_disk() {
    // `data2` shares the prefix `data`; neither may count as inside the other.
    let tree = Tree::new();
    check_against_oracle(&tree, &tree.base.join("data2"));
}

#[test]
fn known_escapes_are_outside() {
    let tree = Tree::new();
    let data = tree.base.join("data");
    for escape in [
        vec!["data", "link-out"],
        vec!["data", "prod", "abs-out"],
        vec!["data", "dev", "up"],
        vec!["data", "dev", "up", "outside"],
        vec!["data", ".."],
        vec!["data", "link-in", "..", ".."],
        vec!["data2"],
        vec!["data2", "prod"],
    ] {
        let canonical = canonicalize_abs(&tree.path(&escape)).unwrap();
        assert!(!is_within(&canonical, &data), "{escape:?} resolved to {}", canonical.display());
    }
    for inside in [
        vec!["data"],
        vec!["data", "prod", ".."],
        vec!["data", "link-in"],
        vec!["outside", "link-back"],
        vec!["data", "dev", "up", "data", "prod"],
    ] {
        let canonical = canonicalize_abs(&tree.path(&inside)).unwrap();
        assert!(is_within(&canonical, &data), "{inside:?} resolved to {}", canonical.display());
    }
}

proptest! {
    #[test]
    fn relative_paths_are_rejected(path in "[^/\\x00][^\\x00]{0,40}") {
        prop_assert_eq!(
            canonicalize_abs(&path),
            Err(format!("`{path}` is a relative path; write an absolute path starting with `/`"))
        );
    }

    #[test]
    fn arbitrary_strings_never_panic(path in any::<String>()) {
        let _ = canonicalize_abs(&path);
        let _ = is_within(Path::new(&path), Path::new("/mnt/hpc-data"));
    }

    #[test]
    fn children_are_within_and_prefixed_siblings_are_not(
        root in prop::collection::vec("[a-z0-9_-]{1,8}", 1..4),
        child in prop::collection::vec("[a-z0-9._-]{1,8}", 0..4),
        suffix in "[a-z0-9_-]{1,4}",
    ) {
        prop_assume!(child.iter().all(|name| name != "." && name != ".."));
        let root_path = PathBuf::from(format!("/{}", root.join("/")));
        let child_path = root_path.join(child.join("/"));
        prop_assert!(is_within(&child_path, &root_path));

        let sibling = PathBuf::from(format!("{}{suffix}", root_path.display())).join(child.join("/"));
        prop_assert!(!is_within(&sibling, &root_path));

        let escaped = root_path.join("..").join(root.last().unwrap()).join(child.join("/"));
        prop_assert!(!is_within(&escaped, &root_path));
    }
}
