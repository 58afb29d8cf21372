//! The policy file as written (format version 1): plain serde structs that
//! reject unknown fields. `compile` turns them into the checked [`super::Policy`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::decision::Mode;
use crate::window::WindowSpec;

/// Default persistent directory of the image digest cache.
pub const DEFAULT_DIGEST_CACHE: &str = "/var/cache/spank-guard/digests";
/// Default audit log path.
pub const DEFAULT_AUDIT_PATH: &str = "/var/log/spank-guard/audit.jsonl";
/// Default minimum number of non-blank characters in a break-glass reason.
pub const DEFAULT_BREAK_GLASS_REASON_MIN_CHARS: u32 = 20;
/// Default maximum lifetime of an approval ticket, in hours.
pub const DEFAULT_MAX_TTL_HOURS: u32 = 24;

/// The whole policy document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub version: u32,
    #[serde(default)]
    pub mode: Mode,
    pub default_environment: String,
    pub environments: BTreeMap<String, EnvironmentSpec>,
    #[serde(default)]
    pub windows: BTreeMap<String, WindowSpec>,
    #[serde(default)]
    pub images: BTreeMap<String, Vec<ImageSpec>>,
    #[serde(default)]
    pub container: ContainerSpec,
    #[serde(default)]
    pub env: EnvSpec,
    #[serde(default)]
    pub approvals: ApprovalsSpec,
    #[serde(default)]
    pub audit: AuditSpec,
    #[serde(default)]
    pub metrics: MetricsSpec,
}

/// One environment (tier).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    pub risk: u32,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub allow: Option<AllowSpec>,
    #[serde(default)]
    pub windows: Vec<String>,
    #[serde(default)]
    pub nodes: Option<Vec<String>>,
    #[serde(default)]
    pub approval: ApprovalSpec,
    #[serde(default)]
    pub container: Option<EnvironmentContainerSpec>,
    #[serde(default)]
    pub env: EnvironmentEnvSpec,
    #[serde(default)]
    pub break_glass: Option<BreakGlassSpec>,
}

/// Break-glass permission of an environment: the users and groups, and the
/// limits of a break-glass job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassSpec {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub max_minutes: u32,
    #[serde(default = "default_break_glass_reason_min_chars")]
    pub reason_min_chars: u32,
    #[serde(default)]
    pub expires: Option<String>,
}

/// Users and groups that may use an environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowSpec {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Approval requirements of an environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    #[serde(default)]
    pub justification_min_chars: u32,
    #[serde(default)]
    pub ticket: bool,
}

/// Container rules of one environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentContainerSpec {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub binds: Option<BindsSpec>,
    #[serde(default)]
    pub user_flags: Option<Vec<String>>,
}

/// Variables one environment sets on top of the global ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentEnvSpec {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// One entry of an image set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub path: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Allowed bind roots and the binds added to every container.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindsSpec {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub default: Vec<String>,
}

/// Placement of the batch step of a job that requests an image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStep {
    /// The batch script runs on the host; the steps it starts are wrapped.
    #[default]
    Host,
    /// The batch script itself runs inside the container.
    Wrap,
}

/// The global container section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    #[serde(default = "default_runtime")]
    pub runtime: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub binds: BindsSpec,
    #[serde(default)]
    pub user_flags: Vec<String>,
    #[serde(default)]
    pub batch_step: BatchStep,
    #[serde(default = "default_true")]
    pub require_root_owned: bool,
    #[serde(default = "default_digest_cache")]
    pub digest_cache: Option<String>,
}

impl Default for ContainerSpec {
    fn default() -> Self {
        ContainerSpec {
            runtime: default_runtime(),
            args: Vec::new(),
            binds: BindsSpec::default(),
            user_flags: Vec::new(),
            batch_step: BatchStep::default(),
            require_root_owned: true,
            digest_cache: default_digest_cache(),
        }
    }
}

/// Action for a variable on the deny list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDenied {
    /// Remove the variable and list it in the effects.
    #[default]
    Scrub,
    /// Deny the request with `env.denied`.
    Deny,
}

/// The global env section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub on_denied: OnDenied,
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// Approval ticket keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsSpec {
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    #[serde(default = "default_max_ttl_hours")]
    pub max_ttl_hours: u32,
}

impl Default for ApprovalsSpec {
    fn default() -> Self {
        ApprovalsSpec { keys: BTreeMap::new(), max_ttl_hours: DEFAULT_MAX_TTL_HOURS }
    }
}

/// Action of an enforcement point that cannot write an audit record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail the task.
    #[default]
    Deny,
    /// Log the error and let the task run.
    Allow,
}

/// How much of the command line an audit record keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgvMode {
    /// Only the program (`argv0`).
    #[default]
    Argv0,
    /// The whole command line (`argv`).
    Full,
}

/// The audit section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    #[serde(default = "default_audit_path")]
    pub path: String,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default)]
    pub argv: ArgvMode,
}

impl Default for AuditSpec {
    fn default() -> Self {
        AuditSpec { path: default_audit_path(), on_error: OnError::default(), argv: ArgvMode::default() }
    }
}

/// The metrics section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    #[serde(default)]
    pub textfile: Option<String>,
}

fn default_runtime() -> String {
    "/usr/bin/apptainer".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_digest_cache() -> Option<String> {
    Some(DEFAULT_DIGEST_CACHE.to_owned())
}

fn default_break_glass_reason_min_chars() -> u32 {
    DEFAULT_BREAK_GLASS_REASON_MIN_CHARS
}

fn default_max_ttl_hours() -> u32 {
    DEFAULT_MAX_TTL_HOURS
}

fn default_audit_path() -> String {
    DEFAULT_AUDIT_PATH.to_owned()
}
