//! Bind specifications in the syntax of Apptainer's `--bind` option and its
//! `APPTAINER_BIND` and `SINGULARITY_BIND` variables.
//!
//! A list is comma-separated, and each entry is `src`, `src:dst` or
//! `src:dst:opts`. Apptainer also lets further options follow an entry that
//! already has options, as separate list items: `/a:/b:ro,rw` is one bind with
//! two options, and `/a:/b:ro,/c` is two binds. Whitespace around entries and
//! around each part is ignored, and empty entries are skipped.
//!
//! The guard accepts a stricter subset, so that what it checks is exactly
//! what the runtime mounts:
//!
//! - The only options are `ro` and `rw`. Apptainer's `id=` and `image-src=`
//!   (binds from inside image files) are rejected.
//! - `^` and `\` are rejected. Apptainer's list tokenizer treats `^` as a
//!   separator (its character class `[^,^:]` excludes it), so such a path
//!   would be split into different binds than the ones checked.
//! - An option that follows `src:dst` without a third part (`/a:/b,ro`) is
//!   rejected, because Apptainer would read it as part of the destination.

use std::fmt;

/// Mount mode requested by a bind option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// `ro`: read-only.
    Ro,
    /// `rw`: read-write, the runtime's default.
    Rw,
}

impl BindMode {
    /// Returns the option as written: `ro` or `rw`.
    pub fn as_str(self) -> &'static str {
        match self {
            BindMode::Ro => "ro",
            BindMode::Rw => "rw",
        }
    }
}

/// One bind from a list, with whitespace around its parts removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSpec {
    /// Host path as written (not yet canonicalised).
    pub source: String,
    /// Path inside the container; `None` when the entry has no `:dst`, in
    /// which case the runtime mounts the source at the same path.
    pub destination: Option<String>,
    /// `ro` or `rw` when given.
    pub mode: Option<BindMode>,
}

impl fmt::Display for BindSpec {
    /// Formats the bind in list syntax: `src`, `src:dst` or `src:dst:ro`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(destination) = &self.destination {
            write!(f, ":{destination}")?;
            if let Some(mode) = self.mode {
                write!(f, ":{}", mode.as_str())?;
            }
        }
        Ok(())
    }
}

const ACCEPTED: &str = "expected `src`, `src:dst` or `src:dst:ro|rw`";

/// Parses a comma-separated bind list such as `/data,/scratch/u:/work:ro`.
///
/// # Errors
///
/// Returns a message naming the offending entry: an empty source or
/// destination, more than three `:`-separated parts, an option other than
/// `ro`/`rw`, both `ro` and `rw`, an option without a destination, or a `^`
/// or `\` character.
pub fn parse_bind_list(s: &str) -> Result<Vec<BindSpec>, String> {
    if s.contains('^') {
        return Err(format!(
            "bind list `{s}` contains `^`, which Apptainer treats as a separator; rename the path or bind its parent"
        ));
    }
    if s.contains('\\') {
        return Err(format!(
            "bind list `{s}` contains `\\`; escaped `,` or `:` in bind paths are not supported, so rename the path \
             or bind its parent"
        ));
    }

    let mut binds: Vec<BindSpec> = Vec::new();
    // Whether the last bind had an options part, so that option items that
    // follow belong to it.
    let mut takes_more_options = false;
    for item in s.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        if is_option_token(item) {
            match binds.last_mut() {
                Some(previous) if takes_more_options => {
                    let entry = previous.to_string();
                    previous.mode = merge_mode(previous.mode, item, &entry)?;
                }
                _ => {
                    return Err(format!(
                        "bind option `{item}` must follow a source and destination, as in `/src:/dst:{item}`"
                    ));
                }
            }
            continue;
        }

        let mut parts = item.split(':').map(str::trim);
        let source = parts.next().unwrap_or_default();
        let destination = parts.next();
        let options = parts.next();
        if parts.next().is_some() {
            return Err(format!("bind `{item}` has more than three `:`-separated parts; {ACCEPTED}"));
        }
        if source.is_empty() {
            return Err(format!("bind `{item}` has an empty source; {ACCEPTED}"));
        }
        if destination == Some("") {
            return Err(format!("bind `{item}` has an empty destination; {ACCEPTED}"));
        }
        let mode = match options {
            None => None,
            Some("") => return Err(format!("bind `{item}` has an empty option after the last `:`; {ACCEPTED}")),
            Some(option) => merge_mode(None, option, item)?,
        };

        takes_more_options = options.is_some();
        binds.push(BindSpec { source: source.to_string(), destination: destination.map(str::to_string), mode });
    }
    Ok(binds)
}

/// Returns whether a list item is a bind option rather than a new bind, by
/// the same rule as Apptainer: a known flag or a known `name=` prefix.
fn is_option_token(item: &str) -> bool {
    matches!(item, "ro" | "rw") || item.starts_with("id=") || item.starts_with("image-src=")
}

fn merge_mode(current: Option<BindMode>, option: &str, entry: &str) -> Result<Option<BindMode>, String> {
    let mode = match option {
        "ro" => BindMode::Ro,
        "rw" => BindMode::Rw,
        _ => {
            return Err(format!(
                "bind option `{option}` in `{entry}` is not allowed; only `ro` and `rw` are accepted"
            ));
        }
    };
    match current {
        Some(existing) if existing != mode => {
            Err(format!("bind `{entry}` has both `ro` and `rw`; keep one of them"))
        }
        _ => Ok(Some(mode)),
    }
}

impl BindSpec {
    /// Checks the container-side path: it must be absolute and contain no
    /// `..` component. A bind without a destination passes, because its
    /// destination is derived from the source, which the caller checks.
    ///
    /// # Errors
    ///
    /// Returns a message naming the destination.
    pub fn check_destination(&self) -> Result<(), String> {
        let Some(destination) = &self.destination else {
            return Ok(());
        };
        if !destination.starts_with('/') {
            return Err(format!(
                "destination `{destination}` must be an absolute path inside the container (starting with `/`)"
            ));
        }
        if destination.split('/').any(|component| component == "..") {
            return Err(format!("destination `{destination}` must not contain a `..` component"));
        }
        if destination.contains('\0') {
            return Err(format!("destination `{}` contains a NUL byte", destination.escape_default()));
        }
        Ok(())
    }
}

/// Formats one `--bind` argument, `SRC:DST` or `SRC:DST:ro`, for the
/// runtime's command line.
///
/// # Errors
///
/// Returns a message naming the path when a path contains a character that
/// Apptainer's bind parser would split on or rewrite: `,`, `:`, `^`, `\`,
/// or whitespace at either end, which it trims. A canonical path can contain
/// them through a symbolic link even when the requested path does not.
pub fn format_bind_argument(source: &str, destination: &str, mode: Option<BindMode>) -> Result<String, String> {
    for path in [source, destination] {
        if let Some(special) = path.chars().find(|c| matches!(c, ',' | ':' | '^' | '\\')) {
            return Err(format!(
                "path `{path}` contains `{special}`, which Apptainer's --bind parser treats specially; \
                 rename the path or bind a parent directory"
            ));
        }
        if path.trim() != path {
            return Err(format!(
                "path `{path}` starts or ends with whitespace, which Apptainer's --bind parser removes; \
                 rename the path"
            ));
        }
    }
    let mut argument = format!("{source}:{destination}");
    if mode == Some(BindMode::Ro) {
        argument.push_str(":ro");
    }
    Ok(argument)
}

#[cfg(test)]
mod tests {
    use super::{format_bind_argument, parse_bind_list, BindMode, BindSpec};

    fn bind(source: &str, destination: Option<&str>, mode: Option<BindMode>) -> BindSpec {
        BindSpec { source: source.to_string(), destination: destination.map(str::to_string), mode }
    }

    fn parsed(s: &str) -> Vec<BindSpec> {
        parse_bind_list(s).unwrap_or_else(|e| panic!("`{s}` should parse: {e}"))
    }

    fn error(s: &str) -> String {
        match parse_bind_list(s) {
            Ok(binds) => panic!("`{s}` should fail, got {binds:?}"),
            Err(message) => message,
        }
    }

    #[test]
    fn single_forms() {
        assert_eq!(parsed("/data"), vec![bind("/data", None, None)]);
        assert_eq!(parsed("/data:/mnt"), vec![bind("/data", Some("/mnt"), None)]);
        assert_eq!(parsed("/data:/mnt:ro"), vec![bind("/data", Some("/mnt"), Some(BindMode::Ro))]);
        assert_eq!(parsed("/data:/mnt:rw"), vec![bind("/data", Some("/mnt"), Some(BindMode::Rw))]);
    }

    #[test]
    fn comma_lists() {
        assert_eq!(
            parsed("/a,/b:/c,/d:/e:ro"),
            vec![
                bind("/a", None, None),
                bind("/b", Some("/c"), None),
                bind("/d", Some("/e"), Some(BindMode::Ro)),
            ]
        );
        // A path after options starts a new bind.
        assert_eq!(
            parsed("/a:/b:ro,/c"),
            vec![bind("/a", Some("/b"), Some(BindMode::Ro)), bind("/c", None, None)]
        );
    }

    #[test]
    fn options_continue_across_commas() {
        assert_eq!(parsed("/a:/b:ro,ro"), vec![bind("/a", Some("/b"), Some(BindMode::Ro))]);
        assert_eq!(
            parsed("/a:/b:rw,rw,/c:/d:ro"),
            vec![bind("/a", Some("/b"), Some(BindMode::Rw)), bind("/c", Some("/d"), Some(BindMode::Ro))]
        );
    }

    #[test]
    fn empty_entries_and_whitespace() {
        assert_eq!(parsed(""), vec![]);
        assert_eq!(parsed(" , ,"), vec![]);
        assert_eq!(
            parsed(" /a ,, /b : /c : ro ,"),
            vec![bind("/a", None, None), bind("/b", Some("/c"), Some(BindMode::Ro))]
        );
        // Whitespace inside a path is kept.
        assert_eq!(parsed("/my data:/in here"), vec![bind("/my data", Some("/in here"), None)]);
    }

    #[test]
    fn relative_and_dotted_paths_parse() {
        // Parsing keeps them; canonicalisation and `check_destination` reject them.
        assert_eq!(parsed("data:../x"), vec![bind("data", Some("../x"), None)]);
    }

    #[test]
    fn other_options_are_rejected_by_name() {
        assert_eq!(
            error("/a:/b:rslave"),
            "bind option `rslave` in `/a:/b:rslave` is not allowed; only `ro` and `rw` are accepted"
        );
        assert_eq!(
            error("/a:/b:id=2"),
            "bind option `id=2` in `/a:/b:id=2` is not allowed; only `ro` and `rw` are accepted"
        );
        assert_eq!(
            error("/a:/b:ro,image-src=/x"),
            "bind option `image-src=/x` in `/a:/b:ro` is not allowed; only `ro` and `rw` are accepted"
        );
        assert_eq!(
            error("/a:/b:RO"),
            "bind option `RO` in `/a:/b:RO` is not allowed; only `ro` and `rw` are accepted"
        );
    }

    #[test]
    fn conflicting_modes_are_rejected() {
        assert_eq!(error("/a:/b:ro,rw"), "bind `/a:/b:ro` has both `ro` and `rw`; keep one of them");
    }

    #[test]
    fn option_without_destination_is_rejected() {
        assert_eq!(error("ro"), "bind option `ro` must follow a source and destination, as in `/src:/dst:ro`");
        assert_eq!(
            error("/a:/b,ro"),
            "bind option `ro` must follow a source and destination, as in `/src:/dst:ro`"
        );
        assert_eq!(error("/a,rw"), "bind option `rw` must follow a source and destination, as in `/src:/dst:rw`");
    }

    #[test]
    fn malformed_entries_name_the_entry() {
        let accepted = "expected `src`, `src:dst` or `src:dst:ro|rw`";
        assert_eq!(error(":/b"), format!("bind `:/b` has an empty source; {accepted}"));
        assert_eq!(error("/a:"), format!("bind `/a:` has an empty destination; {accepted}"));
        assert_eq!(error("/a::ro"), format!("bind `/a::ro` has an empty destination; {accepted}"));
        assert_eq!(error("/a:/b:"), format!("bind `/a:/b:` has an empty option after the last `:`; {accepted}"));
        assert_eq!(
            error("/a:/b:ro:x"),
            format!("bind `/a:/b:ro:x` has more than three `:`-separated parts; {accepted}")
        );
        assert_eq!(error("/x,/a:/b:/c"), "bind option `/c` in `/a:/b:/c` is not allowed; only `ro` and `rw` are accepted");
    }

    #[test]
    fn caret_and_backslash_are_rejected() {
        assert_eq!(
            error("/mnt/x^/etc"),
            "bind list `/mnt/x^/etc` contains `^`, which Apptainer treats as a separator; rename the path or bind its parent"
        );
        assert_eq!(
            error("/a\\,b"),
            "bind list `/a\\,b` contains `\\`; escaped `,` or `:` in bind paths are not supported, so rename the path \
             or bind its parent"
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["/a", "/a:/b", "/a:/b:ro", "/a:/b:rw"] {
            let binds = parsed(text);
            assert_eq!(binds.len(), 1);
            assert_eq!(binds[0].to_string(), text);
        }
    }

    #[test]
    fn destination_checks() {
        assert_eq!(bind("/a", None, None).check_destination(), Ok(()));
        assert_eq!(bind("/a", Some("/data"), None).check_destination(), Ok(()));
        assert_eq!(bind("/a", Some("/data/..x/y.."), None).check_destination(), Ok(()));
        assert_eq!(
            bind("/a", Some("data"), None).check_destination(),
            Err("destination `data` must be an absolute path inside the container (starting with `/`)".to_string())
        );
        assert_eq!(
            bind("/a", Some("/data/../etc"), None).check_destination(),
            Err("destination `/data/../etc` must not contain a `..` component".to_string())
        );
        assert_eq!(
            bind("/a", Some("/.."), None).check_destination(),
            Err("destination `/..` must not contain a `..` component".to_string())
        );
        assert_eq!(
            bind("/a", Some("/data\0x"), None).check_destination(),
            Err("destination `/data\\u{0}x` contains a NUL byte".to_string())
        );
    }

    #[test]
    fn mode_names() {
        assert_eq!(BindMode::Ro.as_str(), "ro");
        assert_eq!(BindMode::Rw.as_str(), "rw");
    }

    #[test]
    fn bind_argument_forms() {
        assert_eq!(format_bind_argument("/data/x", "/x", None), Ok("/data/x:/x".to_string()));
        assert_eq!(format_bind_argument("/data/x", "/x", Some(BindMode::Rw)), Ok("/data/x:/x".to_string()));
        assert_eq!(format_bind_argument("/data/x", "/x", Some(BindMode::Ro)), Ok("/data/x:/x:ro".to_string()));
        assert_eq!(format_bind_argument("/my data", "/in here", None), Ok("/my data:/in here".to_string()));
    }

    #[test]
    fn bind_argument_rejects_parser_characters() {
        for (source, destination, special) in [
            ("/data/a,b", "/x", ','),
            ("/data/a:b", "/x", ':'),
            ("/data/a^b", "/x", '^'),
            ("/data/a\\b", "/x", '\\'),
            ("/data", "/x,/etc", ','),
        ] {
            let path = if source.contains(special) { source } else { destination };
            assert_eq!(
                format_bind_argument(source, destination, None),
                Err(format!(
                    "path `{path}` contains `{special}`, which Apptainer's --bind parser treats specially; \
                     rename the path or bind a parent directory"
                ))
            );
        }
        assert_eq!(
            format_bind_argument("/data/x ", "/x", None),
            Err("path `/data/x ` starts or ends with whitespace, which Apptainer's --bind parser removes; \
                 rename the path"
                .to_string())
        );
    }
}
