//! Loading and checking the site policy (JSON, format version 1).
//!
//! Loading happens in three passes. First serde parses the document and
//! rejects unknown fields, stopping at the first syntax or schema error. Then a
//! scan of the source finds duplicate keys. Last, `compile` checks every
//! cross-reference and value, and collects all problems before it fails.

mod compile;
mod error;
mod locate;
pub(crate) mod model;
mod schema;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::decision::Mode;
use crate::digest::DigestCache;

pub use error::{LoadError, Problem};
pub use schema::{ArgvMode, BatchStep, OnDenied, OnError, DEFAULT_AUDIT_PATH, DEFAULT_DIGEST_CACHE};

use locate::SourceIndex;
use model::{DenyList, Environment, ImageSet, NamedWindow};

/// Largest policy file accepted, in bytes. A policy with 10,000 image entries
/// is about 1 MiB; the limit only stops a wrong path (a device, a huge log)
/// from being read into memory.
pub const MAX_POLICY_BYTES: u64 = 64 * 1024 * 1024;

/// The audit section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Audit log file (JSON lines).
    pub path: PathBuf,
    /// Action when a record cannot be written.
    pub on_error: OnError,
    /// How much of the command line to record.
    pub argv: ArgvMode,
}

/// Global container settings.
#[derive(Debug)]
pub(crate) struct ContainerSettings {
    pub runtime: PathBuf,
    pub args: Vec<String>,
    pub batch_step: BatchStep,
    pub require_root_owned: bool,
    pub digest_cache: Option<PathBuf>,
}

/// A loaded, checked policy, ready for [`crate::evaluate`].
pub struct Policy {
    pub(crate) sha256: String,
    pub(crate) version: u32,
    pub(crate) mode: Mode,
    /// Index into `environments`.
    pub(crate) default_environment: usize,
    /// Sorted by name.
    pub(crate) environments: Vec<Environment>,
    /// Lowercase names and aliases to indexes into `environments`.
    pub(crate) environment_lookup: BTreeMap<String, usize>,
    pub(crate) windows: Vec<NamedWindow>,
    pub(crate) image_sets: Vec<ImageSet>,
    pub(crate) container: ContainerSettings,
    pub(crate) deny: DenyList,
    pub(crate) on_denied: OnDenied,
    pub(crate) approval_keys: BTreeMap<String, ed25519_dalek::VerifyingKey>,
    pub(crate) max_ttl_hours: u32,
    pub(crate) audit: AuditSettings,
    pub(crate) metrics_textfile: Option<PathBuf>,
    pub(crate) digests: DigestCache,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Policy")
            .field("sha256", &self.sha256)
            .field("version", &self.version)
            .field("mode", &self.mode)
            .field("environments", &self.environment_names())
            .field("image_sets", &self.image_set_names())
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Reads and loads the policy file at `path`; the origin in errors is the path.
    pub fn from_path(path: &Path) -> Result<Policy, LoadError> {
        let origin = path.display().to_string();
        let bytes = read_limited(path).map_err(|message| LoadError::whole(&origin, message))?;
        Policy::from_slice(&bytes, &origin)
    }

    /// Loads a policy from bytes; `origin` names the source in errors.
    pub fn from_slice(bytes: &[u8], origin: &str) -> Result<Policy, LoadError> {
        let source = std::str::from_utf8(bytes).map_err(|error| {
            LoadError::whole(origin, format!("policy is not valid UTF-8 (byte {})", error.valid_up_to()))
        })?;
        let spec = parse(source, origin)?;
        let index = SourceIndex::build(source);
        let mut problems: Vec<(String, String)> = index
            .duplicates
            .iter()
            .map(|(path, _, _)| (path.clone(), "duplicate key; each key may appear once per object".to_owned()))
            .collect();
        let sha256 = hex(&Sha256::digest(bytes));
        match compile::compile(spec, sha256) {
            Ok(policy) if problems.is_empty() => return Ok(policy),
            Ok(_) => {}
            Err(found) => problems.extend(found),
        }
        let mut located: Vec<Problem> = problems
            .into_iter()
            .map(|(path, message)| {
                let (line, column) = index.locate(&path);
                Problem { path, line, column, message }
            })
            .collect();
        located.sort_by_key(|problem| (problem.line, problem.column));
        Err(LoadError { origin: origin.to_owned(), problems: located })
    }

    /// Hex sha256 of the exact bytes loaded.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Format version (1).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Global mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Canonical name of the default environment.
    pub fn default_environment(&self) -> &str {
        self.environments.get(self.default_environment).map_or("", |environment| environment.name.as_str())
    }

    /// Canonical environment names, sorted.
    pub fn environment_names(&self) -> Vec<&str> {
        self.environments.iter().map(|environment| environment.name.as_str()).collect()
    }

    /// Image set names, sorted.
    pub fn image_set_names(&self) -> Vec<&str> {
        self.image_sets.iter().map(|set| set.name.as_str()).collect()
    }

    /// Ticket verification keys by key id.
    pub fn approval_keys(&self) -> &BTreeMap<String, ed25519_dalek::VerifyingKey> {
        &self.approval_keys
    }

    /// Maximum ticket lifetime (`exp - iat`), in hours.
    pub fn max_ttl_hours(&self) -> u32 {
        self.max_ttl_hours
    }

    /// Returns the audit section.
    pub fn audit(&self) -> &AuditSettings {
        &self.audit
    }

    /// Prometheus textfile path, when configured.
    pub fn metrics_textfile(&self) -> Option<&Path> {
        self.metrics_textfile.as_deref()
    }

    /// Returns how the batch step of a job with an image runs.
    pub fn batch_step(&self) -> BatchStep {
        self.container.batch_step
    }

    /// Persistent image digest cache directory, when configured.
    pub fn digest_cache_dir(&self) -> Option<&Path> {
        self.container.digest_cache.as_deref()
    }

    /// Container runtime path.
    pub fn container_runtime(&self) -> &Path {
        &self.container.runtime
    }

    /// Resolves an environment name or alias, case-insensitively, to its canonical name.
    pub fn resolve_environment(&self, name: &str) -> Option<&str> {
        self.find_environment(name).map(|(_, environment)| environment.name.as_str())
    }

    /// Returns the aliases of the environment that `name` resolves to, without
    /// its canonical name; empty when the name is unknown.
    pub fn environment_aliases(&self, name: &str) -> Vec<&str> {
        self.find_environment(name)
            .map(|(_, environment)| environment.aliases.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Returns true when the environment that `name` resolves to requires an
    /// approval ticket, and false when it requires none or the name is unknown.
    pub fn ticket_required(&self, name: &str) -> bool {
        self.find_environment(name).is_some_and(|(_, environment)| environment.ticket_required)
    }

    /// Returns the node patterns of the environment that `name` resolves to,
    /// as written in the policy. Returns `None` when the environment runs on
    /// every node or the name is unknown.
    pub fn environment_nodes(&self, name: &str) -> Option<Vec<&str>> {
        let (_, environment) = self.find_environment(name)?;
        let patterns = environment.nodes.as_ref()?;
        Some(patterns.iter().map(|(text, _)| text.as_str()).collect())
    }

    /// Returns the `break_glass.max_minutes` of the environment that `name`
    /// resolves to, or `None` when no user may break glass there or the name
    /// is unknown.
    pub fn break_glass_max_minutes(&self, name: &str) -> Option<u32> {
        let (_, environment) = self.find_environment(name)?;
        environment.break_glass.as_ref().map(|permission| permission.max_minutes)
    }

    pub(crate) fn find_environment(&self, name: &str) -> Option<(usize, &Environment)> {
        let position = if name.chars().any(char::is_uppercase) {
            *self.environment_lookup.get(&name.to_lowercase())?
        } else {
            *self.environment_lookup.get(name)?
        };
        self.environments.get(position).map(|environment| (position, environment))
    }
}

/// Checks that a policy file is a regular file owned by root and not writable
/// by group or others, like sudo checks sudoers. Only the file itself is
/// checked, not its parent directories.
pub fn check_file_security(path: &Path) -> Result<(), LoadError> {
    let origin = path.display().to_string();
    let metadata = std::fs::metadata(path)
        .map_err(|error| LoadError::whole(&origin, format!("cannot read policy file: {error}")))?;
    let mut problems = Vec::new();
    if !metadata.is_file() {
        problems.push("policy path is not a regular file".to_owned());
    }
    if metadata.uid() != 0 {
        problems.push(format!(
            "policy file is owned by uid {}, expected root (uid 0); run `chown root {origin}`",
            metadata.uid()
        ));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        problems.push(format!(
            "policy file is writable by group or others (mode {mode:04o}); run `chmod go-w {origin}`"
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(LoadError {
        origin,
        problems: problems
            .into_iter()
            .map(|message| Problem { path: String::new(), line: 0, column: 0, message })
            .collect(),
    })
}

fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|error| format!("cannot read policy file: {error}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read policy file: {error}"))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(format!("policy file is larger than {MAX_POLICY_BYTES} bytes"));
    }
    Ok(bytes)
}

fn parse(source: &str, origin: &str) -> Result<schema::PolicyFile, LoadError> {
    let mut deserializer = serde_json::Deserializer::from_str(source);
    let located = |path: String, error: &serde_json::Error| LoadError {
        origin: origin.to_owned(),
        problems: vec![Problem { path, line: error.line(), column: error.column(), message: serde_message(error) }],
    };
    let parsed: Result<schema::PolicyFile, _> = serde_path_to_error::deserialize(&mut deserializer);
    let spec = parsed.map_err(|error| {
        let path = error.path().to_string();
        // serde_path_to_error writes `.` for the root and `?` where a syntax
        // error left the position unknown.
        let path = if path == "." || path == "?" { String::new() } else { path };
        located(path, error.inner())
    })?;
    deserializer.end().map_err(|error| located(String::new(), &error))?;
    Ok(spec)
}

/// Returns serde_json's message without its trailing " at line L column C".
fn serde_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) if error.line() != 0 => text.get(..cut).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Policy;

    const SOURCE: &str = r#"{
      "version": 1,
      "default_environment": "dev",
      "environments": {
        "dev": {"risk": 1},
        "prod": {"risk": 10, "aliases": ["production"], "nodes": ["c[1-2]", "gpu-*"], "approval": {"ticket": true}}
      },
      "approvals": {"keys": {"jenkins-2026": "0WlG7tolFUsO1g1d1YBCf27bqVInT8VZrNuAWIidu0Q="}}
    }"#;

    #[test]
    fn ticket_and_node_accessors() {
        let policy = Policy::from_slice(SOURCE.as_bytes(), "policy.json").unwrap_or_else(|error| unreachable!("{error}"));
        assert!(policy.ticket_required("Production"));
        assert!(!policy.ticket_required("dev"));
        assert!(!policy.ticket_required("qa"));
        assert_eq!(policy.environment_nodes("prod"), Some(vec!["c[1-2]", "gpu-*"]));
        assert_eq!(policy.environment_nodes("dev"), None);
        assert_eq!(policy.environment_nodes("qa"), None);
    }
}
