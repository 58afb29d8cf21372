//! The compiled policy: cross-references resolved to indexes, globs, node
//! patterns, windows and keys prepared at load time so that evaluation does
//! no parsing.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::binds::BindSpec;
use crate::decision::Mode;
use crate::glob::glob_match;
use crate::hostlist::NodePattern;
use crate::window::Window;

/// One environment (tier) after compilation.
#[derive(Debug)]
pub struct Environment {
    /// Canonical name as written in the policy.
    pub name: String,
    pub risk: u32,
    pub aliases: Vec<String>,
    pub mode: Option<Mode>,
    pub allow: Option<Allow>,
    /// Indexes into [`super::Policy::windows`].
    pub windows: Vec<usize>,
    /// Node patterns with their source text; `None` means every node.
    pub nodes: Option<Vec<(String, NodePattern)>>,
    pub justification_min_chars: u32,
    pub ticket_required: bool,
    /// `None`: the environment allows no container.
    pub container: Option<EnvironmentContainer>,
    /// Global `env.set` merged with the environment's own, the environment winning.
    pub set: Vec<(String, Template)>,
    /// `None` when no user may break glass in this environment.
    pub break_glass: Option<BreakGlass>,
}

/// Users and groups that may break glass in an environment, and the limits
/// of a break-glass job.
#[derive(Debug)]
pub struct BreakGlass {
    pub users: HashSet<String>,
    pub groups: HashSet<String>,
    /// Maximum time limit of a break-glass job, in minutes.
    pub max_minutes: u32,
    /// Minimum number of non-blank characters in the reason.
    pub reason_min_chars: u32,
    /// Time from which the permission no longer applies.
    pub expires: Option<jiff::Timestamp>,
}

/// Users and groups allowed into an environment.
#[derive(Debug)]
pub struct Allow {
    pub users: HashSet<String>,
    pub groups: HashSet<String>,
}

/// Container rules of one environment, with the global binds and user flags
/// filled in where the environment does not override them.
#[derive(Debug)]
pub struct EnvironmentContainer {
    pub required: bool,
    /// Indexes into [`super::Policy::image_sets`].
    pub image_sets: Vec<usize>,
    pub binds: Binds,
    pub user_flags: Vec<String>,
}

/// Allowed bind roots and default binds.
#[derive(Debug, Clone, Default)]
pub struct Binds {
    pub allow: Vec<BindRoot>,
    pub default: Vec<BindSpec>,
}

/// An allowed bind root: as configured, and canonicalised at load time when it
/// exists. A root that does not exist stays as written, which can only match
/// less: canonical sources never contain symlinks.
#[derive(Debug, Clone)]
pub struct BindRoot {
    pub configured: String,
    pub canonical: PathBuf,
}

/// A named time window.
#[derive(Debug)]
pub struct NamedWindow {
    pub name: String,
    pub window: Window,
    /// Short human description like `mon-fri 08:00-18:00 Europe/London`.
    pub description: String,
}

/// One image entry.
#[derive(Debug)]
pub struct ImageEntry {
    /// Pattern as configured.
    pub configured: String,
    /// Pattern with its literal directory prefix canonicalised.
    pub pattern: String,
    /// Lowercase hex digest.
    pub sha256: Option<String>,
}

/// An image set, indexed so that a lookup does not scan every entry.
///
/// Because `*` never matches `/`, a matching path has the pattern's literal
/// directory or literal file name. So entries are found by exact path, by
/// literal directory (glob in the file name) and by literal file name (glob
/// in a directory). A pattern with `*` in both is found by one of three
/// literals: its leading directories before the first `*` component, the
/// text before the first `*` of its file name, or the text after the last
/// one, whichever the fewest patterns of the set share. Only patterns with
/// none of them (such as `/*/*`) are scanned, grouped by their number of
/// components.
#[derive(Debug)]
pub struct ImageSet {
    pub name: String,
    pub entries: Vec<ImageEntry>,
    exact: HashMap<String, Vec<usize>>,
    by_directory: HashMap<String, Vec<usize>>,
    by_file_name: HashMap<String, Vec<usize>>,
    by_file_prefix: HashMap<String, Vec<usize>>,
    by_file_suffix: HashMap<String, Vec<usize>>,
    by_leading_directory: HashMap<String, Vec<usize>>,
    by_depth: HashMap<usize, Vec<usize>>,
}

impl ImageSet {
    pub fn new(name: String, entries: Vec<ImageEntry>) -> ImageSet {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_directory: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_file_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_file_prefix: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_file_suffix: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_leading_directory: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_depth: HashMap<usize, Vec<usize>> = HashMap::new();
        // Patterns with `*` in a directory and in the file name can be found
        // by three literals. Each goes to the index where the fewest other
        // patterns share its key, so 10,000 entries that share a suffix or a
        // leading directory are still distinguished by the other literal.
        let mut shared: HashMap<(Literal, &str), usize> = HashMap::new();
        for entry in &entries {
            for key in glob_literals(&entry.pattern).into_iter().flatten() {
                *shared.entry(key).or_default() += 1;
            }
        }
        for (position, entry) in entries.iter().enumerate() {
            let (directory, file) = split_parent(&entry.pattern);
            if !entry.pattern.contains('*') {
                exact.entry(entry.pattern.clone()).or_default().push(position);
            } else if !directory.contains('*') {
                by_directory.entry(directory.to_owned()).or_default().push(position);
            } else if !file.contains('*') {
                by_file_name.entry(file.to_owned()).or_default().push(position);
            } else {
                let rarest = glob_literals(&entry.pattern)
                    .into_iter()
                    .flatten()
                    .min_by_key(|key| shared.get(key).copied().unwrap_or(0));
                match rarest {
                    Some((kind, key)) => {
                        let index = match kind {
                            Literal::LeadingDirectory => &mut by_leading_directory,
                            Literal::FilePrefix => &mut by_file_prefix,
                            Literal::FileSuffix => &mut by_file_suffix,
                        };
                        index.entry(key.to_owned()).or_default().push(position);
                    }
                    None => by_depth.entry(depth(&entry.pattern)).or_default().push(position),
                }
            }
        }
        ImageSet {
            name,
            entries,
            exact,
            by_directory,
            by_file_name,
            by_file_prefix,
            by_file_suffix,
            by_leading_directory,
            by_depth,
        }
    }

    /// Calls `found` with every entry whose pattern matches the canonical `path`.
    pub fn for_each_match<'a>(&'a self, path: &str, mut found: impl FnMut(&'a ImageEntry)) {
        let mut report = |position: usize| {
            if let Some(entry) = self.entries.get(position) {
                found(entry);
            }
        };
        if let Some(positions) = self.exact.get(path) {
            positions.iter().for_each(|&position| report(position));
        }
        let (directory, file) = split_parent(path);
        let mut check = |positions: Option<&Vec<usize>>| {
            for &position in positions.into_iter().flatten() {
                if self.entries.get(position).is_some_and(|entry| glob_match(&entry.pattern, path)) {
                    report(position);
                }
            }
        };
        check(self.by_directory.get(directory));
        check(self.by_file_name.get(file));
        if !self.by_file_prefix.is_empty() || !self.by_file_suffix.is_empty() {
            // Every split point of the file name gives one prefix and one
            // suffix to look up; the empty prefix and suffix are never keys.
            for (cut, _) in file.char_indices().skip(1).chain(std::iter::once((file.len(), ' '))) {
                check(file.get(..cut).and_then(|prefix| self.by_file_prefix.get(prefix)));
            }
            for (cut, _) in file.char_indices() {
                check(file.get(cut..).and_then(|suffix| self.by_file_suffix.get(suffix)));
            }
        }
        if !self.by_leading_directory.is_empty() {
            // Every ancestor of the path's directory, the directory itself
            // included, may be the literal start of a pattern.
            let ancestors = directory.match_indices('/').map(|(cut, _)| cut).filter(|&cut| cut > 0);
            for cut in ancestors.chain(std::iter::once(directory.len())) {
                check(directory.get(..cut).and_then(|ancestor| self.by_leading_directory.get(ancestor)));
            }
        }
        check(self.by_depth.get(&depth(path)));
    }
}

/// The literal parts by which a pattern with `*` in a directory and in the
/// file name can be indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Literal {
    LeadingDirectory,
    FilePrefix,
    FileSuffix,
}

/// Returns the non-empty literals of a pattern with `*` in a directory and
/// in the file name; `None` for the others.
fn glob_literals(pattern: &str) -> [Option<(Literal, &str)>; 3] {
    let (directory, file) = split_parent(pattern);
    if !directory.contains('*') || !file.contains('*') {
        return [None, None, None];
    }
    let candidates = [
        (Literal::LeadingDirectory, leading_literal_directory(directory)),
        (Literal::FilePrefix, file.split('*').next().unwrap_or("")),
        (Literal::FileSuffix, file.rsplit('*').next().unwrap_or("")),
    ];
    candidates.map(|(kind, text)| (!text.is_empty()).then_some((kind, text)))
}

/// Returns the components of `directory` before the first one that contains
/// `*`: `/data/team-1` for `/data/team-1/*/v2`, and `` for `/*/x`.
fn leading_literal_directory(directory: &str) -> &str {
    match directory.find('*') {
        Some(star) => {
            let literal = directory.get(..star).unwrap_or("");
            literal.rfind('/').and_then(|cut| literal.get(..cut)).unwrap_or("")
        }
        None => directory,
    }
}

/// Returns the number of `/` in a path, which a glob and every path it
/// matches share.
fn depth(path: &str) -> usize {
    path.bytes().filter(|&byte| byte == b'/').count()
}

/// Splits `/a/b/c` into (`/a/b`, `c`); a path without `/` has an empty directory.
pub fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(cut) => (path.get(..cut).unwrap_or(""), path.get(cut + 1..).unwrap_or("")),
        None => ("", path),
    }
}

/// The environment deny list: exact names in a set, globs in a list.
#[derive(Debug, Default)]
pub struct DenyList {
    pub exact: HashSet<String>,
    pub globs: Vec<String>,
}

impl DenyList {
    /// Returns true when `name` is denied, directly or through the
    /// `APPTAINERENV_`/`SINGULARITYENV_` prefixes that Apptainer strips.
    pub fn denies(&self, name: &str) -> bool {
        if self.matches(name) {
            return true;
        }
        ["APPTAINERENV_", "SINGULARITYENV_"]
            .iter()
            .filter_map(|prefix| name.strip_prefix(prefix))
            .any(|inner| self.matches(inner))
    }

    fn matches(&self, name: &str) -> bool {
        self.exact.contains(name) || self.globs.iter().any(|pattern| glob_match(pattern, name))
    }
}

/// A value of `env.set` split into literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Environment,
    Risk,
    CorrelationId,
    JobId,
}

impl Template {
    /// Parses `{environment}`, `{risk}`, `{correlation_id}` and `{job_id}`;
    /// any other `{` ... `}` is an error naming it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let literal = rest.get(..open).unwrap_or("");
            if !literal.is_empty() {
                parts.push(TemplatePart::Literal(literal.to_owned()));
            }
            let after = rest.get(open..).unwrap_or("");
            let Some(close) = after.find('}') else {
                return Err(format!(
                    "unclosed placeholder in `{text}`; expected one of {{environment}}, {{risk}}, {{correlation_id}}, {{job_id}}"
                ));
            };
            let placeholder = after.get(..=close).unwrap_or("");
            parts.push(match placeholder {
                "{environment}" => TemplatePart::Environment,
                "{risk}" => TemplatePart::Risk,
                "{correlation_id}" => TemplatePart::CorrelationId,
                "{job_id}" => TemplatePart::JobId,
                other => {
                    return Err(format!(
                        "unknown placeholder `{other}`; expected one of {{environment}}, {{risk}}, {{correlation_id}}, {{job_id}}"
                    ))
                }
            });
            rest = after.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Substitutes the placeholders.
    pub fn render(&self, environment: &str, risk: u32, correlation_id: &str, job_id: Option<u32>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Environment => out.push_str(environment),
                TemplatePart::Risk => out.push_str(&risk.to_string()),
                TemplatePart::CorrelationId => out.push_str(correlation_id),
                TemplatePart::JobId => {
                    if let Some(job_id) = job_id {
                        out.push_str(&job_id.to_string());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_substitutes_every_placeholder() {
        let template = Template::parse("{environment}/{risk}/{correlation_id}/{job_id}!").unwrap();
        assert_eq!(template.render("prod", 10, "c-1", Some(7)), "prod/10/c-1/7!");
        assert_eq!(template.render("prod", 10, "c-1", None), "prod/10/c-1/!");
    }

    #[test]
    fn template_rejects_unknown_placeholder() {
        assert_eq!(
            Template::parse("x{user}").unwrap_err(),
            "unknown placeholder `{user}`; expected one of {environment}, {risk}, {correlation_id}, {job_id}"
        );
    }

    fn set(patterns: &[&str]) -> ImageSet {
        let entries = patterns
            .iter()
            .map(|pattern| ImageEntry { configured: (*pattern).to_owned(), pattern: (*pattern).to_owned(), sha256: None })
            .collect();
        ImageSet::new("test".to_owned(), entries)
    }

    fn matches(set: &ImageSet, path: &str) -> Vec<String> {
        let mut found = Vec::new();
        set.for_each_match(path, |entry| found.push(entry.configured.clone()));
        found
    }

    #[test]
    fn image_set_finds_every_shape() {
        let set = set(&[
            "/i/a.sif",
            "/i/*.sif",
            "/*/a.sif",
            "/*/*.sif",
            "/x/*/*/b.sif",
            "/*/*/*",
            "/*/build-*-*.sif",
            "/*/*-x86.sif",
            "/*/é*",
            "/d/team-5/*/*.sif",
        ]);
        assert_eq!(matches(&set, "/i/a.sif"), vec!["/i/a.sif", "/i/*.sif", "/*/a.sif", "/*/*.sif"]);
        assert_eq!(matches(&set, "/j/a.sif"), vec!["/*/a.sif", "/*/*.sif"]);
        assert_eq!(matches(&set, "/x/y/z/b.sif"), vec!["/x/*/*/b.sif"]);
        assert_eq!(matches(&set, "/x/y/b.sif"), vec!["/*/*/*"]);
        assert_eq!(matches(&set, "/i/sub/a.sif"), vec!["/*/*/*"]);
        assert_eq!(matches(&set, "/j/build-7-x86.sif"), vec!["/*/build-*-*.sif", "/*/*-x86.sif", "/*/*.sif"]);
        assert_eq!(matches(&set, "/j/éa"), vec!["/*/é*"]);
        assert_eq!(matches(&set, "/i/a.img"), Vec::<String>::new());
        assert_eq!(matches(&set, "/d/team-5/v1/m.sif"), vec!["/d/team-5/*/*.sif"]);
        assert_eq!(matches(&set, "/d/team-50/v1/m.sif"), Vec::<String>::new());
    }

    fn path_like() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex("(/[ab.*é]{0,4}){1,3}").unwrap()
    }

    proptest::proptest! {
        /// The index finds exactly the entries a scan of every pattern finds.
        #[test]
        fn image_index_agrees_with_scan(
            patterns in proptest::collection::vec(path_like(), 1..12),
            path in path_like(),
        ) {
            let path = path.replace('*', "a");
            let references: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let index = set(&references);
            let mut found = matches(&index, &path);
            found.sort();
            let mut expected: Vec<String> =
                patterns.iter().filter(|pattern| glob_match(pattern, &path)).cloned().collect();
            expected.sort();
            proptest::prop_assert_eq!(found, expected);
        }
    }

    #[test]
    fn split_parent_cases() {
        assert_eq!(split_parent("/a/b.sif"), ("/a", "b.sif"));
        assert_eq!(split_parent("/b.sif"), ("", "b.sif"));
        assert_eq!(split_parent("b"), ("", "b"));
    }

    #[test]
    fn deny_list_matches_apptainerenv_prefix() {
        let deny = DenyList { exact: ["LD_PRELOAD".to_owned()].into(), globs: vec!["PYTHON*".to_owned()] };
        assert!(deny.denies("LD_PRELOAD"));
        assert!(deny.denies("APPTAINERENV_LD_PRELOAD"));
        assert!(deny.denies("SINGULARITYENV_PYTHONPATH"));
        assert!(!deny.denies("LD_LIBRARY_PATH"));
        assert!(!deny.denies("XAPPTAINERENV_LD_PRELOAD"));
    }
}
