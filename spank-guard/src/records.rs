//! Writing audit records to the hash-chained journal of `policy_core::journal`.

use std::path::Path;
use std::time::Duration;

use policy_core::audit::AuditRecord;
use policy_core::journal;
use policy_core::{Decision, LoadError, Outcome, Policy, Request};

/// Appends the `decision` record of a step to the policy's audit file, with
/// the time that loading the policy and evaluating the step took.
pub fn write_decision(policy: &Policy, request: &Request, decision: &Decision, duration: Duration) -> std::io::Result<()> {
    let mut record = AuditRecord::decision(policy, request, decision, jiff::Timestamp::now());
    record.duration_us = Some(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX));
    append(&policy.audit().path, &record)
}

/// Appends a record, and counts a failure in the write-error file that
/// `guardctl metrics export` reads.
fn append(path: &Path, record: &AuditRecord) -> std::io::Result<()> {
    let result = journal::append_record(path, record).map(drop);
    if let Err(error) = &result {
        if let Err(count_error) = journal::record_write_error(path, error) {
            tracing::error!("cannot count the audit write error in {}: {count_error}", journal::write_errors_path(path).display());
        }
    }
    result
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
    append(path, &record)
}

/// Appends a `policy_error` record to `path`. `outcome` is what the plugin
/// did about it (`deny` or `allow`, from `on_policy_error`).
pub fn write_policy_error(path: &Path, request: &Request, error: &LoadError, outcome: Outcome) -> std::io::Result<()> {
    let text = error.to_string().replace('\n', "; ");
    let record = AuditRecord::policy_error(request, &text, outcome, jiff::Timestamp::now());
    append(path, &record)
}
