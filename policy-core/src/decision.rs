//! The result of evaluating a request against a policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Final outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every rule passed.
    Allow,
    /// At least one rule failed in enforce mode: the job or step must not run.
    Deny,
    /// At least one rule failed in audit mode: the job runs and the failure is recorded.
    WouldDeny,
}

/// Policy mode: enforce decisions or only record what would have been denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Failing rules deny the request.
    #[default]
    Enforce,
    /// Failing rules are recorded and the request is allowed (`would_deny`).
    Audit,
}

/// One failing rule and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable rule id, one of [`crate::rules::ALL`].
    pub rule: String,
    /// Human-readable explanation naming the offending value.
    pub message: String,
}

/// The container launch that the enforcement point must perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLaunch {
    /// The exact argv prefix to exec; the task's own argv follows it:
    /// runtime, `exec`, forced args, `--bind SRC:DST[:ro]` pairs, user flags, image.
    pub argv_prefix: Vec<String>,
    /// Canonical path of the image.
    pub image: String,
    /// sha256 of the image file, when the policy pins or the engine computed it.
    pub image_sha256: Option<String>,
    /// Approved binds as passed to the runtime (`SRC:DST[:ro]`, canonical sources).
    pub binds: Vec<String>,
}

/// Changes the enforcement point applies to the step before it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effects {
    /// Variables to remove from the job environment (scrubbed deny-list
    /// matches, and `APPTAINER_*`/`SINGULARITY_*` when a container is used).
    pub unset: Vec<String>,
    /// Variables to set, after substitution of `{environment}` and friends.
    pub set: BTreeMap<String, String>,
    /// The container launch, when the step runs inside a container.
    pub container: Option<ContainerLaunch>,
}

/// Identifying data of a verified approval ticket (never the ticket itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSummary {
    /// Key id that signed the ticket.
    pub kid: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// A policy decision with every failing rule and the effects to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// allow, deny or would_deny.
    pub outcome: Outcome,
    /// Canonical name of the resolved environment; `None` when it is unknown.
    pub environment: Option<String>,
    /// Risk of the resolved environment.
    pub risk: Option<u32>,
    /// Effective mode (the environment's override, else the global mode).
    pub mode: Mode,
    /// Every failing rule, in evaluation order.
    pub reasons: Vec<Reason>,
    /// What to change before the step runs. Empty for a deny.
    pub effects: Effects,
    /// Correlation id shared by every step of the job.
    pub correlation_id: String,
    /// The verified approval ticket, when one was given and valid.
    pub ticket: Option<TicketSummary>,
    /// sha256 of the policy file bytes that produced this decision.
    pub policy_sha256: String,
    /// Rule ids that apply to the request but were not checked because they
    /// need the compute node (only at [`crate::Context::Controller`]). The
    /// node checks them when the step starts.
    #[serde(default)]
    pub deferred: Vec<String>,
    /// The user was permitted to break glass, at least one rule was waived
    /// and the job runs. A permitted request where every rule passed is not
    /// break glass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// Window and approval rules that failed and that a permitted break-glass
    /// request waived, also when other rules deny the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waived: Vec<Reason>,
}

impl Decision {
    /// Returns true when the job or step may run (allow or would_deny).
    pub fn permits(&self) -> bool {
        self.outcome != Outcome::Deny
    }

    /// Returns the rule ids of every reason, in order.
    pub fn rule_ids(&self) -> Vec<&str> {
        self.reasons.iter().map(|reason| reason.rule.as_str()).collect()
    }
}
