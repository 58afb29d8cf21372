//! Writing audit records to the hash-chained journal of `policy_core::journal`.

use std::path::Path;

use policy_core::audit::AuditRecord;
use policy_core::journal;
use policy_core::{Decision, LoadError, Outcome, Policy, Request};

/// Appends the `decision` record of a step to the policy's audit file.
pub fn write_decision(policy: &Policy, request: &Request, decision: &Decision) -> std::io::Result<()> {
    let record = AuditRecord::decision(policy, request, decision, jiff::Timestamp::now());
    journal::append_record(&policy.audit().path, &record).map(drop)
}

/// Appends the `step_end` record with the task count and exit codes.
/// `decision` is `None` when the policy could not be loaded.
pub fn write_step_end(
    path: &Path,
    request: &Request,
    decision: Option<&Decision>,
    task_count: u32,
    exit_codes: &[i32],
) -> std::io::Result<()> {
    let record = AuditRecord::step_end(request, decision, task_count, exit_codes, jiff::Timestamp::now());
    journal::append_record(path, &record).map(drop)
}

/// Appends a `policy_error` record to `path`. `outcome` is what the plugin
/// did about it (`deny` or `allow`, from `on_policy_error`).
pub fn write_policy_error(path: &Path, request: &Request, error: &LoadError, outcome: Outcome) -> std::io::Result<()> {
    let text = error.to_string().replace('\n', "; ");
    let record = AuditRecord::policy_error(request, &text, outcome, jiff::Timestamp::now());
    journal::append_record(path, &record).map(drop)
}
