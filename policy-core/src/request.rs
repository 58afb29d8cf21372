//! The facts an enforcement point gathers about a job or step.
//!
//! A request is plain data: the SPANK plugin, `guardctl explain` and the C ABI
//! all build one (the C ABI and `guardctl` from JSON), so every field has a
//! serde default and unknown fields are rejected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the request is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// srun, sbatch or salloc on a login node, before anything is submitted.
    /// Advisory: the user controls this process.
    #[default]
    Submit,
    /// slurmstepd on the compute node. Authoritative.
    Step,
    /// slurmctld's `job_submit/lua` hook, before the job is queued. Trusted,
    /// but the job has no node yet: rules that inspect the node's files or
    /// name are skipped and listed in [`crate::Decision::deferred`], so the
    /// node enforces them when the step starts.
    Controller,
}

/// Value of [`Request::time_limit_minutes`] for a job without a time limit
/// (Slurm's `INFINITE`, shown as `UNLIMITED`).
pub const UNLIMITED_TIME_LIMIT: u32 = u32::MAX;

/// Values of the `--guard-*` options, exactly as the user typed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardOptions {
    /// `--guard-env`.
    pub env: Option<String>,
    /// `--guard-justification`.
    pub justification: Option<String>,
    /// `--guard-ticket`.
    pub ticket: Option<String>,
    /// `--guard-image`.
    pub image: Option<String>,
    /// `--guard-bind`, one entry per occurrence; each entry may be a comma list.
    pub binds: Vec<String>,
    /// `--guard-container-flags`, one entry per occurrence; each entry may be a comma list.
    pub container_flags: Vec<String>,
    /// `--guard-break-glass`: the reason for running despite failing window
    /// or approval rules.
    pub break_glass: Option<String>,
}

/// Everything `evaluate` needs to know about one job or step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Request {
    /// Submit-time check or node-side step check.
    pub context: Context,
    /// Slurm cluster name (`SLURM_CLUSTER_NAME` on the node).
    pub cluster: String,
    /// Job id; `None` before submission.
    pub job_id: Option<u32>,
    /// Step id; `None` before submission. The batch step is 4294967291.
    pub step_id: Option<u32>,
    /// Short host name of the node that runs the step.
    pub node: Option<String>,
    /// Numeric uid of the job's user.
    pub uid: u32,
    /// User name resolved from the uid.
    pub user: String,
    /// Names of the user's primary and supplementary groups.
    pub groups: Vec<String>,
    /// The `--guard-*` option values.
    pub options: GuardOptions,
    /// The job environment. Values that are not UTF-8 are converted lossily
    /// by the enforcement point; names are kept as they are.
    pub env: BTreeMap<String, String>,
    /// The command of the step (`argv[0]` is the program).
    pub argv: Vec<String>,
    /// Slurm job name.
    pub job_name: Option<String>,
    /// Time limit of the job in minutes ([`UNLIMITED_TIME_LIMIT`] for none);
    /// `None` when unknown, which skips the check against the end of the
    /// environment's window.
    pub time_limit_minutes: Option<u32>,
}
