//! `guardctl replay --policy NEW.json --audit FILE...`: re-evaluates the
//! requests of recorded decisions against another policy and lists the
//! outcomes that would change, before the policy is rolled out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args;
use jiff::Timestamp;
use policy_core::audit::{AuditRecord, Event};
use policy_core::{evaluate, rules, Outcome, Policy};
use serde::Serialize;

use crate::commands::audit::{format_table, json_name, read_records, step_name};
use crate::failure::{Failure, Status};
use crate::output::print;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The policy to try, for example a candidate policy.json.
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,

    /// Audit files with the decisions to replay, oldest first.
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub audit: Vec<PathBuf>,

    /// Evaluate every request at this time (RFC 3339) instead of the time
    /// of its record, for example to try windows at a planned roll-out time.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub at: Option<Timestamp>,

    /// Print the result as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|error| {
        format!("expected an RFC 3339 time with an offset, for example 2026-06-01T09:30:00Z: {error}")
    })
}

/// A decision whose outcome or failing rules differ under the new policy.
#[derive(Debug, Serialize)]
struct Change {
    seq: Option<u64>,
    ts: String,
    correlation_id: String,
    job_id: Option<u32>,
    step_id: Option<u32>,
    node: Option<String>,
    user: String,
    environment: Option<String>,
    recorded: Outcome,
    replayed: Outcome,
    /// Rules that fail under the new policy but did not before.
    added_rules: Vec<String>,
    /// Rules that failed before but pass under the new policy.
    removed_rules: Vec<String>,
    /// Messages of the rules in `added_rules`, as the new policy words them.
    added_messages: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    policy: String,
    policy_sha256: String,
    /// Decision records re-evaluated.
    replayed: usize,
    /// Of those, decisions with the same outcome and rules.
    unchanged: usize,
    /// Decision records without a `request` (written by an older version).
    skipped: usize,
    changed: Vec<Change>,
}

/// Runs `guardctl replay`.
pub fn run(arguments: &ReplayArgs) -> Result<Status, Failure> {
    let policy = super::load_policy(&arguments.policy)?;
    let records = read_records(&arguments.audit)?;
    let mut report = Report {
        policy: arguments.policy.display().to_string(),
        policy_sha256: policy.sha256().to_owned(),
        replayed: 0,
        unchanged: 0,
        skipped: 0,
        changed: Vec::new(),
    };
    for entry in records.iter().filter(|entry| entry.record.event == Event::Decision) {
        match replay(&policy, &entry.record, arguments.at) {
            None => report.skipped += 1,
            Some(None) => {
                report.replayed += 1;
                report.unchanged += 1;
            }
            Some(Some(change)) => {
                report.replayed += 1;
                report.changed.push(change);
            }
        }
    }

    if arguments.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|error| Failure::new(format!("cannot format the report as JSON: {error}")))?;
        print(&format!("{text}\n"))?;
    } else {
        print(&format_report(&report))?;
    }
    Ok(Status::Success)
}

/// Re-evaluates one decision record: `None` when it has no recorded
/// request, `Some(None)` when nothing changes.
///
/// Tickets are not stored, so a request that had a verified ticket is
/// replayed as if the ticket were still valid: `approval.ticket` failures
/// caused only by the missing ticket are dropped, and the outcome follows
/// from the remaining rules.
fn replay(policy: &Policy, record: &AuditRecord, at: Option<Timestamp>) -> Option<Option<Change>> {
    let recorded_outcome = record.outcome?;
    let request = record.replay_request()?;
    let now = at.or_else(|| record.ts.parse::<Timestamp>().ok()).unwrap_or_else(Timestamp::now);
    let decision = evaluate(policy, &request, now);

    let mut reasons = decision.reasons.clone();
    let mut outcome = decision.outcome;
    if record.ticket.is_some() {
        reasons.retain(|reason| reason.rule != rules::APPROVAL_TICKET);
        if reasons.is_empty() {
            outcome = Outcome::Allow;
        }
    }

    let before: BTreeSet<&str> = record.reasons.iter().map(|reason| reason.rule.as_str()).collect();
    let after: BTreeSet<&str> = reasons.iter().map(|reason| reason.rule.as_str()).collect();
    if outcome == recorded_outcome && before == after {
        return Some(None);
    }
    let added_rules: Vec<String> = after.difference(&before).map(|rule| (*rule).to_owned()).collect();
    let added_messages = reasons
        .iter()
        .filter(|reason| added_rules.contains(&reason.rule))
        .map(|reason| format!("{}: {}", reason.rule, reason.message))
        .collect();
    Some(Some(Change {
        seq: record.seq,
        ts: record.ts.clone(),
        correlation_id: record.correlation_id.clone(),
        job_id: record.job_id,
        step_id: record.step_id,
        node: record.node.clone(),
        user: record.user.clone(),
        environment: decision.environment.clone().or_else(|| record.environment.clone()),
        recorded: recorded_outcome,
        replayed: outcome,
        removed_rules: before.difference(&after).map(|rule| (*rule).to_owned()).collect(),
        added_rules,
        added_messages,
    }))
}

fn format_report(report: &Report) -> String {
    let mut text = format!(
        "replayed {} decisions against {} (sha256 {}): {} would change, {} unchanged",
        report.replayed,
        report.policy,
        report.policy_sha256,
        report.changed.len(),
        report.unchanged
    );
    if report.skipped > 0 {
        text.push_str(&format!("; {} records without a recorded request were skipped", report.skipped));
    }
    text.push('\n');
    if report.changed.is_empty() {
        return text;
    }
    let header = ["SEQ", "TIME", "JOB", "STEP", "NODE", "USER", "ENV", "RECORDED", "REPLAYED", "RULES"];
    let rows: Vec<[String; 10]> = report.changed.iter().map(change_row).collect();
    text.push('\n');
    text.push_str(&format_table(&header, &rows));
    text.push_str("\nnew failing rules:\n");
    for change in &report.changed {
        let who = format!("seq {}", change.seq.map_or_else(|| "-".to_owned(), |seq| seq.to_string()));
        for message in &change.added_messages {
            text.push_str(&format!("  {who}: {message}\n"));
        }
    }
    text
}

fn change_row(change: &Change) -> [String; 10] {
    let optional = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let rules: Vec<String> = change
        .added_rules
        .iter()
        .map(|rule| format!("+{rule}"))
        .chain(change.removed_rules.iter().map(|rule| format!("-{rule}")))
        .collect();
    [
        optional(change.seq.map(|seq| seq.to_string())),
        change.ts.clone(),
        optional(change.job_id.map(|job| job.to_string())),
        optional(change.step_id.map(step_name)),
        optional(change.node.clone()),
        change.user.clone(),
        optional(change.environment.clone()),
        json_name(&change.recorded),
        json_name(&change.replayed),
        if rules.is_empty() { "-".to_owned() } else { rules.join(",") },
    ]
}
