//! Canonical host paths and prefix checks by whole components.

use std::path::{Component, Path, PathBuf};

/// Resolves an absolute path to its canonical form with `realpath(3)`
/// semantics: every symbolic link and every `.` and `..` is resolved, and
/// the path must exist.
///
/// # Errors
///
/// Returns a message when the path is empty, relative or contains a NUL
/// byte, or, naming the path and the OS error, when it cannot be resolved
/// (for example because a component does not exist or is not searchable).
pub fn canonicalize_abs(p: &str) -> Result<PathBuf, String> {
    if p.is_empty() {
        return Err("empty path; write an absolute path starting with `/`".to_string());
    }
    if p.contains('\0') {
        return Err(format!("path `{}` contains a NUL byte", p.escape_default()));
    }
    if !p.starts_with('/') {
        return Err(format!("`{p}` is a relative path; write an absolute path starting with `/`"));
    }
    std::fs::canonicalize(p).map_err(|error| format!("cannot resolve `{p}`: {error}"))
}

/// Returns whether `path` is `root` or lies below it, comparing whole
/// components, so `/mnt/hpc-data2` is not within `/mnt/hpc-data`.
///
/// The check is lexical: pass canonical paths (see [`canonicalize_abs`]).
/// As a guard against misuse it returns false when either path is relative
/// or contains a `..` component, because `..` after a symbolic link cannot be
/// resolved without the file system.
pub fn is_within(path: &Path, root: &Path) -> bool {
    let has_parent = |p: &Path| p.components().any(|component| component == Component::ParentDir);
    if !path.is_absolute() || !root.is_absolute() || has_parent(path) || has_parent(root) {
        return false;
    }
    path.starts_with(root)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::{canonicalize_abs, is_within};

    fn within(path: &str, root: &str) -> bool {
        is_within(Path::new(path), Path::new(root))
    }

    #[test]
    fn within_compares_whole_components() {
        assert!(within("/mnt/hpc-data", "/mnt/hpc-data"));
        assert!(within("/mnt/hpc-data/prod/x", "/mnt/hpc-data"));
        assert!(within("/mnt/hpc-data/prod/x", "/mnt/hpc-data/"));
        assert!(!within("/mnt/hpc-data2", "/mnt/hpc-data"));
        assert!(!within("/mnt/hpc-data2/x", "/mnt/hpc-data"));
        assert!(!within("/mnt/hpc", "/mnt/hpc-data"));
        assert!(!within("/mnt", "/mnt/hpc-data"));
        assert!(within("/anything/at/all", "/"));
        assert!(within("/", "/"));
    }

    #[test]
    fn within_ignores_redundant_separators() {
        assert!(within("/mnt//hpc-data///x", "/mnt/hpc-data"));
        assert!(within("/mnt/./hpc-data/x", "/mnt/hpc-data"));
    }

    #[test]
    fn within_rejects_relative_and_parent_components() {
        assert!(!within("/mnt/hpc-data/../etc", "/mnt/hpc-data"));
        assert!(!within("/mnt/hpc-data/x/..", "/mnt/hpc-data"));
        assert!(!within("/mnt/hpc-data/x", "/mnt/../mnt/hpc-data"));
        assert!(!within("mnt/hpc-data/x", "mnt/hpc-data"));
        assert!(!within("/mnt/hpc-data/x", "mnt/hpc-data"));
        assert!(!within("", "/"));
        // `..` inside a name is not a parent component.
        assert!(within("/mnt/hpc-data/..x", "/mnt/hpc-data"));
    }

    #[test]
    fn canonicalize_rejects_empty_and_relative() {
        assert_eq!(canonicalize_abs(""), Err("empty path; write an absolute path starting with `/`".to_string()));
        assert_eq!(
            canonicalize_abs("data/x"),
            Err("`data/x` is a relative path; write an absolute path starting with `/`".to_string())
        );
        assert_eq!(
            canonicalize_abs("./x"),
            Err("`./x` is a relative path; write an absolute path starting with `/`".to_string())
        );
        assert_eq!(
            canonicalize_abs("~/x"),
            Err("`~/x` is a relative path; write an absolute path starting with `/`".to_string())
        );
        assert_eq!(canonicalize_abs("/a\0b"), Err("path `/a\\u{0}b` contains a NUL byte".to_string()));
    }

    #[test]
    fn canonicalize_reports_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let missing = missing.to_str().unwrap();
        assert_eq!(
            canonicalize_abs(missing),
            Err(format!("cannot resolve `{missing}`: No such file or directory (os error 2)"))
        );
    }

    #[test]
    fn canonicalize_resolves_symlinks_and_dots() {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        let allowed = base.join("allowed");
        let outside = base.join("outside");
        fs::create_dir_all(allowed.join("sub")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        symlink(&outside, allowed.join("escape")).unwrap();
        symlink("sub", allowed.join("relative-link")).unwrap();

        let text = |p: &Path| p.to_str().unwrap().to_string();

        let escaped = canonicalize_abs(&text(&allowed.join("escape"))).unwrap();
        assert_eq!(escaped, outside);
        assert!(!is_within(&escaped, &allowed));

        let via_dots = canonicalize_abs(&format!("{}/sub/../../outside", text(&allowed))).unwrap();
        assert_eq!(via_dots, outside);
        assert!(!is_within(&via_dots, &allowed));

        let relative_link = canonicalize_abs(&text(&allowed.join("relative-link"))).unwrap();
        assert_eq!(relative_link, allowed.join("sub"));
        assert!(is_within(&relative_link, &allowed));

        // `..` after a symlink goes to the link target's parent, as the kernel does.
        let after_link = canonicalize_abs(&format!("{}/escape/..", text(&allowed))).unwrap();
        assert_eq!(after_link, base);
    }
}
