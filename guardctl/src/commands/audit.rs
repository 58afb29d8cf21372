//! `guardctl audit verify|query|tail`: checks the hash chain of audit files
//! and lists the records that match filters.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use policy_core::audit::{AuditRecord, Event};
use policy_core::journal::{self, HeadCheck, GENESIS_SHA256};
use policy_core::Outcome;

use crate::failure::{Failure, Status};
use crate::output::{count, print};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of audit files and report the first broken line.
    ///
    /// Give rotated files oldest first, then the live file, for example
    /// `audit.jsonl-20261203 audit.jsonl`. Exits 0 when every record links
    /// to the one before, and 1 with FILE:LINE and the reason at the first
    /// break. Compressed rotated files must be decompressed first.
    Verify(VerifyArgs),
    /// Print the records that match every filter, oldest first.
    Query(QueryArgs),
    /// Print the last records that match every filter.
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Audit files, oldest first.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Filters shared by `query` and `tail`; a record must match all given.
#[derive(Debug, Args)]
pub struct RecordFilter {
    /// Only records with this correlation id.
    #[arg(long = "correlation-id", value_name = "ID")]
    pub correlation_id: Option<String>,

    /// Only records of this Slurm job id.
    #[arg(long = "job", value_name = "JOB_ID")]
    pub job: Option<u32>,

    /// Only records of this user name.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Only records of this canonical environment name.
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: Option<String>,

    /// Only records with this outcome.
    #[arg(long, value_enum, value_name = "OUTCOME")]
    pub outcome: Option<OutcomeFilter>,

    /// Only records of this event.
    #[arg(long, value_enum, value_name = "EVENT")]
    pub event: Option<EventFilter>,

    /// Only records written on this node.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,

    /// Only records at or after this time (RFC 3339, for example 2026-12-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub since: Option<Timestamp>,

    /// Only records before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub until: Option<Timestamp>,

    /// Only decisions that asked to break glass (used or rejected), for review.
    #[arg(long = "break-glass")]
    pub break_glass: bool,

    /// Print the matching lines as they are in the file (JSON Lines)
    /// instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum OutcomeFilter {
    Allow,
    Deny,
    WouldDeny,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum EventFilter {
    Decision,
    StepEnd,
    PolicyError,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filter: RecordFilter,

    /// Audit files, oldest first.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub filter: RecordFilter,

    /// Number of records to print.
    #[arg(short = 'n', long = "lines", value_name = "COUNT", default_value_t = 10)]
    pub lines: usize,

    /// Audit files, oldest first.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|error| {
        format!("expected an RFC 3339 time with an offset, for example 2026-06-01T09:30:00Z: {error}")
    })
}

/// Runs `guardctl audit ...`.
pub fn run(command: &AuditCommand) -> Result<Status, Failure> {
    match command {
        AuditCommand::Verify(arguments) => verify(&arguments.files),
        AuditCommand::Query(arguments) => {
            let records = matching_records(&arguments.files, &arguments.filter)?;
            print_records(&records, arguments.filter.json)
        }
        AuditCommand::Tail(arguments) => {
            let records = matching_records(&arguments.files, &arguments.filter)?;
            let skip = records.len().saturating_sub(arguments.lines);
            print_records(records.get(skip..).unwrap_or_default(), arguments.filter.json)
        }
    }
}

fn verify(files: &[PathBuf]) -> Result<Status, Failure> {
    let verification = journal::verify(files).map_err(|error| Failure::new(format!("cannot verify: {error}")))?;
    if let Some(broken) = verification.broken {
        return Err(Failure::new(format!(
            "audit chain broken at {broken}\nintact records before the break: {}",
            verification.records
        )));
    }
    let mut text = match (&verification.first, &verification.last) {
        (Some(first), Some(last)) => format!(
            "audit chain intact: {}, {}, seq {} to {}\n",
            count(files.len(), "file", "files"),
            count(usize::try_from(verification.records).unwrap_or(usize::MAX), "record", "records"),
            first.seq,
            last.seq
        ),
        _ => format!("audit chain intact: {}, no records\n", count(files.len(), "file", "files")),
    };
    if let Some(first) = verification.first.as_ref().filter(|first| first.sha256 != GENESIS_SHA256) {
        text.push_str(&format!(
            "note: the first record (seq {}) links to sha256 {}, the last record of an earlier file that was not given\n",
            first.seq, first.sha256
        ));
    }
    match &verification.head {
        HeadCheck::Matched(path) => text.push_str(&format!("head: {} names the last record\n", path.display())),
        HeadCheck::Absent => text.push_str(&format!(
            "note: no head file next to {}, so records removed from its end cannot be detected\n",
            files.last().map(|path| path.display().to_string()).unwrap_or_default()
        )),
        HeadCheck::Unreadable(error) => text.push_str(&format!(
            "note: cannot read the head file ({error}), so records removed from the end cannot be detected\n"
        )),
    }
    print(&text)?;
    Ok(Status::Success)
}

/// One record with the exact line it was read from.
pub struct RecordLine {
    pub record: AuditRecord,
    pub line: String,
}

/// Reads every record of `files` in order. A line that is not an audit
/// record fails with its FILE:LINE.
pub fn read_records(files: &[PathBuf]) -> Result<Vec<RecordLine>, Failure> {
    let mut records = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|error| Failure::new(format!("cannot read {}: {error}", file.display())))?;
        for (index, line) in text.lines().enumerate() {
            let record = parse_line(file, index + 1, line)?;
            records.push(RecordLine { record, line: line.to_owned() });
        }
    }
    Ok(records)
}

fn parse_line(file: &Path, number: usize, line: &str) -> Result<AuditRecord, Failure> {
    serde_json::from_str(line).map_err(|error| {
        Failure::new(format!("{}:{number}: not an audit record: {error}", file.display()))
    })
}

fn matching_records(files: &[PathBuf], filter: &RecordFilter) -> Result<Vec<RecordLine>, Failure> {
    let mut records = read_records(files)?;
    records.retain(|entry| matches(&entry.record, filter));
    Ok(records)
}

fn matches(record: &AuditRecord, filter: &RecordFilter) -> bool {
    let same = |wanted: &Option<String>, actual: Option<&str>| wanted.as_deref().is_none_or(|wanted| actual == Some(wanted));
    let time = record.ts.parse::<Timestamp>().ok();
    same(&filter.correlation_id, Some(&record.correlation_id))
        && filter.job.is_none_or(|job| record.job_id == Some(job))
        && same(&filter.user, Some(&record.user))
        && same(&filter.environment, record.environment.as_deref())
        && same(&filter.node, record.node.as_deref())
        && filter.outcome.is_none_or(|outcome| record.outcome == Some(outcome_of(outcome)))
        && filter.event.is_none_or(|event| record.event == event_of(event))
        && filter.since.is_none_or(|since| time.is_some_and(|time| time >= since))
        && filter.until.is_none_or(|until| time.is_some_and(|time| time < until))
        && (!filter.break_glass || record.break_glass || record.break_glass_reason.is_some())
}

fn outcome_of(filter: OutcomeFilter) -> Outcome {
    match filter {
        OutcomeFilter::Allow => Outcome::Allow,
        OutcomeFilter::Deny => Outcome::Deny,
        OutcomeFilter::WouldDeny => Outcome::WouldDeny,
    }
}

fn event_of(filter: EventFilter) -> Event {
    match filter {
        EventFilter::Decision => Event::Decision,
        EventFilter::StepEnd => Event::StepEnd,
        EventFilter::PolicyError => Event::PolicyError,
    }
}

/// Returns the JSON name of an event or outcome, like `step_end`.
pub fn json_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

fn print_records(records: &[RecordLine], json: bool) -> Result<Status, Failure> {
    if json {
        let text: String = records.iter().map(|entry| format!("{}\n", entry.line)).collect();
        print(&text)?;
        return Ok(Status::Success);
    }
    if records.is_empty() {
        print("no matching records\n")?;
        return Ok(Status::Success);
    }
    let header = ["SEQ", "TIME", "EVENT", "JOB", "STEP", "NODE", "USER", "ENV", "OUTCOME", "DETAIL", "CORRELATION"];
    let rows: Vec<[String; 11]> = records.iter().map(|entry| table_row(&entry.record)).collect();
    print(&format_table(&header, &rows))?;
    Ok(Status::Success)
}

fn table_row(record: &AuditRecord) -> [String; 11] {
    let optional = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let mut detail: Vec<String> = record.reasons.iter().map(|reason| reason.rule.clone()).collect();
    if record.break_glass {
        let waived: Vec<&str> = record.waived.iter().map(|reason| reason.rule.as_str()).collect();
        detail.insert(0, format!("BREAK-GLASS(waived {})", if waived.is_empty() { "-".to_owned() } else { waived.join(",") }));
    }
    if let Some(codes) = &record.exit_codes {
        detail.push(format!("exit {}", codes.iter().map(i32::to_string).collect::<Vec<_>>().join(",")));
    }
    [
        optional(record.seq.map(|seq| seq.to_string())),
        record.ts.clone(),
        json_name(&record.event),
        optional(record.job_id.map(|job| job.to_string())),
        optional(record.step_id.map(step_name)),
        optional(record.node.clone()),
        record.user.clone(),
        optional(record.environment.clone()),
        optional(record.outcome.map(|outcome| json_name(&outcome))),
        detail_text(&detail, record.break_glass_reason.as_deref()),
        record.correlation_id.clone(),
    ]
}

/// Joins the detail items with commas and adds the break-glass reason after
/// a space, so that it does not read as one of the rules.
fn detail_text(items: &[String], break_glass_reason: Option<&str>) -> String {
    let mut text = if items.is_empty() { "-".to_owned() } else { items.join(",") };
    if let Some(reason) = break_glass_reason {
        text.push_str(&format!(" reason={reason:?}"));
    }
    text
}

/// Returns Slurm's name of a step id: `batch`, `extern` or the number.
pub fn step_name(step: u32) -> String {
    match step {
        0xffff_fffb => "batch".to_owned(),
        0xffff_fffc => "extern".to_owned(),
        _ => step.to_string(),
    }
}

/// Formats rows as columns separated by two spaces, padded to the widest
/// cell; the last column is not padded.
pub fn format_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header_cells: Vec<String> = header.iter().map(|cell| (*cell).to_owned()).collect();
    for cells in std::iter::once(header_cells.as_slice()).chain(rows.iter().map(|row| row.as_slice())) {
        let mut line = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_all_but_last_column() {
        let rows = [["1".to_owned(), "long value".to_owned()], ["22".to_owned(), "x".to_owned()]];
        assert_eq!(format_table(&["SEQ", "V"], &rows), "SEQ  V\n1    long value\n22   x\n");
    }

    #[test]
    fn step_names_match_slurm() {
        assert_eq!(step_name(0xffff_fffb), "batch");
        assert_eq!(step_name(0xffff_fffc), "extern");
        assert_eq!(step_name(3), "3");
    }
}
