//! `guardctl evidence --correlation-id ID --audit FILE... --out DIR`: writes
//! the audit records of one job with the chain check of every file, as
//! `evidence.json`, `evidence.md` and a self-contained `evidence.html`, for
//! a CI build to archive.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use policy_core::audit::{AuditRecord, Event};
use policy_core::journal;
use serde::Serialize;

use crate::commands::audit::{json_name, read_records, step_name};
use crate::failure::{Failure, Status};
use crate::output::{count, print};

#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// Correlation id of the job (HOS_CORRELATION_ID, printed by srun and
    /// sbatch when they deny a job, and in every audit record).
    #[arg(long = "correlation-id", value_name = "ID")]
    pub correlation_id: String,

    /// Audit files to search: the journals of every node the job ran on,
    /// each node's rotated files oldest first.
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub audit: Vec<PathBuf>,

    /// Directory to write the bundle to; created when missing. Existing
    /// evidence files in it are replaced.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Chain check of one audit file.
#[derive(Debug, Serialize)]
struct FileCheck {
    file: String,
    intact: bool,
    records: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    /// FILE:LINE and reason of the first break.
    broken: Option<String>,
}

/// One entry of the timeline, in file order.
#[derive(Debug, Serialize)]
struct TimelineEntry {
    ts: String,
    event: String,
    job_id: Option<u32>,
    step: Option<String>,
    node: Option<String>,
    user: String,
    environment: Option<String>,
    outcome: Option<String>,
    break_glass: bool,
    rules: Vec<String>,
    container: Option<String>,
    exit_codes: Option<Vec<i32>>,
    policy_sha256: Option<String>,
}

#[derive(Debug, Serialize)]
struct Bundle {
    correlation_id: String,
    generated_at: String,
    guardctl_version: String,
    /// True when every file's chain holds.
    chain_intact: bool,
    chain: Vec<FileCheck>,
    policy_sha256s: Vec<String>,
    job_ids: Vec<u32>,
    users: Vec<String>,
    environments: Vec<String>,
    nodes: Vec<String>,
    outcomes: Vec<String>,
    break_glass: bool,
    /// Every `--guard-break-glass` reason of the job, used or rejected.
    break_glass_reasons: Vec<String>,
    timeline: Vec<TimelineEntry>,
    /// The records as stored, in file order.
    records: Vec<serde_json::Value>,
}

/// Runs `guardctl evidence`.
pub fn run(arguments: &EvidenceArgs) -> Result<Status, Failure> {
    let mut chain = Vec::new();
    for file in &arguments.audit {
        chain.push(check_file(file)?);
    }
    let records: Vec<_> = read_records(&arguments.audit)?
        .into_iter()
        .filter(|entry| entry.record.correlation_id == arguments.correlation_id)
        .collect();
    if records.is_empty() {
        return Err(Failure::new(format!(
            "no audit record has correlation id `{}` in {}; check the id and pass the journals of the nodes the job ran on",
            arguments.correlation_id,
            file_list(&arguments.audit)
        )));
    }

    let mut json_records = Vec::new();
    for entry in &records {
        let value = serde_json::from_str(&entry.line)
            .map_err(|error| Failure::new(format!("cannot reread an audit record as JSON: {error}")))?;
        json_records.push(value);
    }
    let plain: Vec<&AuditRecord> = records.iter().map(|entry| &entry.record).collect();
    let bundle = Bundle {
        correlation_id: arguments.correlation_id.clone(),
        generated_at: policy_core::audit::format_timestamp(jiff::Timestamp::now()),
        guardctl_version: env!("CARGO_PKG_VERSION").to_owned(),
        chain_intact: chain.iter().all(|check| check.intact),
        policy_sha256s: collect(&plain, |record| record.policy_sha256.clone()),
        job_ids: collect(&plain, |record| record.job_id),
        users: collect(&plain, |record| Some(record.user.clone())),
        environments: collect(&plain, |record| record.environment.clone()),
        nodes: collect(&plain, |record| record.node.clone()),
        outcomes: collect(&plain, |record| record.outcome.map(|outcome| json_name(&outcome))),
        break_glass: plain.iter().any(|record| record.break_glass),
        break_glass_reasons: collect(&plain, |record| record.break_glass_reason.clone()),
        timeline: plain.iter().map(|record| timeline_entry(record)).collect(),
        records: json_records,
        chain,
    };

    std::fs::create_dir_all(&arguments.out)
        .map_err(|error| Failure::new(format!("cannot create {}: {error}", arguments.out.display())))?;
    let json = serde_json::to_string_pretty(&bundle)
        .map_err(|error| Failure::new(format!("cannot format evidence.json: {error}")))?;
    write_replacing(&arguments.out.join("evidence.json"), &format!("{json}\n"))?;
    write_replacing(&arguments.out.join("evidence.md"), &markdown(&bundle))?;
    write_replacing(&arguments.out.join("evidence.html"), &html(&bundle))?;

    let summary = format!(
        "wrote {}/evidence.json, evidence.md and evidence.html: {} of `{}`, chain {}\n",
        arguments.out.display(),
        count(bundle.records.len(), "record", "records"),
        bundle.correlation_id,
        if bundle.chain_intact { "intact" } else { "BROKEN" }
    );
    print(&summary)?;
    if bundle.chain_intact {
        Ok(Status::Success)
    } else {
        let breaks: Vec<String> = bundle.chain.iter().filter_map(|check| check.broken.clone()).collect();
        Err(Failure::new(format!("audit chain broken, so the evidence cannot be trusted: {}", breaks.join("; "))))
    }
}

fn file_list(files: &[PathBuf]) -> String {
    files.iter().map(|file| file.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Verifies one file on its own: journals of different nodes are separate
/// chains, so the files given are not one chain.
fn check_file(file: &Path) -> Result<FileCheck, Failure> {
    let verification = journal::verify(&[file.to_path_buf()])
        .map_err(|error| Failure::new(format!("cannot verify: {error}")))?;
    Ok(FileCheck {
        file: file.display().to_string(),
        intact: verification.broken.is_none(),
        records: verification.records,
        first_seq: verification.first.map(|link| link.seq),
        last_seq: verification.last.map(|link| link.seq),
        broken: verification.broken.map(|broken| broken.to_string()),
    })
}

fn collect<T: Ord>(records: &[&AuditRecord], field: impl Fn(&AuditRecord) -> Option<T>) -> Vec<T> {
    records.iter().filter_map(|record| field(record)).collect::<BTreeSet<T>>().into_iter().collect()
}

fn timeline_entry(record: &AuditRecord) -> TimelineEntry {
    let container = record.effects.as_ref().and_then(|effects| effects.container.as_ref()).map(|container| {
        if container.binds.is_empty() {
            container.image.clone()
        } else {
            format!("{} (binds {})", container.image, container.binds.join(", "))
        }
    });
    let event = match (record.event, record.request.as_ref().map(|request| request.context)) {
        (Event::Decision, Some(policy_core::Context::Submit)) => "submit".to_owned(),
        (Event::Decision, Some(policy_core::Context::Controller)) => "controller".to_owned(),
        (event, _) => json_name(&event),
    };
    TimelineEntry {
        ts: record.ts.clone(),
        event,
        job_id: record.job_id,
        step: record.step_id.map(step_name),
        node: record.node.clone(),
        user: record.user.clone(),
        environment: record.environment.clone(),
        outcome: record.outcome.map(|outcome| json_name(&outcome)),
        break_glass: record.break_glass,
        rules: record
            .reasons
            .iter()
            .map(|reason| format!("{}: {}", reason.rule, reason.message))
            .chain(record.waived.iter().map(|reason| format!("waived by break glass: {}: {}", reason.rule, reason.message)))
            .collect(),
        container,
        exit_codes: record.exit_codes.clone(),
        policy_sha256: record.policy_sha256.clone(),
    }
}

/// Writes `text` to a temporary file in the same directory, then renames it
/// over `path`, so an archiver never picks up half a file.
fn write_replacing(path: &Path, text: &str) -> Result<(), Failure> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|error| Failure::new(format!("cannot write {}: {error}", path.display())))
}

fn optional(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

fn join_or_none(values: &[String]) -> String {
    if values.is_empty() {
        "none".to_owned()
    } else {
        values.join(", ")
    }
}

fn exit_text(codes: Option<&Vec<i32>>) -> String {
    codes.map(|codes| codes.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")).unwrap_or_else(|| "-".to_owned())
}

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Returns `YES` or `no` for the summary, with the reasons given. A job
/// that asked to break glass and was rejected is marked as rejected.
fn break_glass_summary(bundle: &Bundle) -> String {
    let reasons = join_or_none(&bundle.break_glass_reasons);
    match (bundle.break_glass, bundle.break_glass_reasons.is_empty()) {
        (true, _) => format!("YES, reason: {reasons}"),
        (false, false) => format!("no (asked and rejected), reason: {reasons}"),
        (false, true) => "no".to_owned(),
    }
}

fn markdown(bundle: &Bundle) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# Evidence for `{}`\n", bundle.correlation_id);
    let _ = writeln!(text, "Generated {} by guardctl {}.\n", bundle.generated_at, bundle.guardctl_version);
    let _ = writeln!(text, "| | |\n|---|---|");
    let jobs: Vec<String> = bundle.job_ids.iter().map(u32::to_string).collect();
    for (name, value) in [
        ("Jobs", join_or_none(&jobs)),
        ("Users", join_or_none(&bundle.users)),
        ("Environments", join_or_none(&bundle.environments)),
        ("Nodes", join_or_none(&bundle.nodes)),
        ("Outcomes", join_or_none(&bundle.outcomes)),
        ("Break glass", break_glass_summary(bundle)),
        ("Policy sha256", join_or_none(&bundle.policy_sha256s)),
        ("Audit chain", if bundle.chain_intact { "intact".to_owned() } else { "BROKEN".to_owned() }),
    ] {
        let _ = writeln!(text, "| {name} | {} |", markdown_cell(&value));
    }

    let _ = writeln!(text, "\n## Timeline\n");
    let _ = writeln!(text, "| Time | Event | Job | Step | Node | Outcome | Container | Exit codes | Failing rules |");
    let _ = writeln!(text, "|---|---|---|---|---|---|---|---|---|");
    for entry in &bundle.timeline {
        let mut outcome = optional(entry.outcome.as_deref()).to_owned();
        if entry.break_glass {
            outcome.push_str(" (break glass)");
        }
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            entry.ts,
            entry.event,
            entry.job_id.map_or_else(|| "-".to_owned(), |job| job.to_string()),
            optional(entry.step.as_deref()),
            optional(entry.node.as_deref()),
            outcome,
            markdown_cell(optional(entry.container.as_deref())),
            exit_text(entry.exit_codes.as_ref()),
            markdown_cell(&if entry.rules.is_empty() { "-".to_owned() } else { entry.rules.join("; ") })
        );
    }

    let _ = writeln!(text, "\n## Audit chain\n");
    let _ = writeln!(text, "| File | Records | Seq | Result |\n|---|---|---|---|");
    for check in &bundle.chain {
        let _ = writeln!(
            text,
            "| {} | {} | {} to {} | {} |",
            markdown_cell(&check.file),
            check.records,
            check.first_seq.map_or_else(|| "-".to_owned(), |seq| seq.to_string()),
            check.last_seq.map_or_else(|| "-".to_owned(), |seq| seq.to_string()),
            markdown_cell(check.broken.as_deref().unwrap_or("intact"))
        );
    }
    text
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#1d2330;background:#fff}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}\
.meta{color:#5a6275;margin-top:0}table{border-collapse:collapse;width:100%;font-size:.9em}\
th,td{border:1px solid #d5d9e2;padding:.35em .6em;text-align:left;vertical-align:top}\
th{background:#eef1f6}table.summary{width:auto}table.summary th{width:10em}\
.allow{color:#11683a;font-weight:600}.deny{color:#b3261e;font-weight:600}.would_deny{color:#9a6200;font-weight:600}\
.badge{display:inline-block;padding:.15em .6em;border-radius:.8em;font-weight:600}\
.ok{background:#dff3e6;color:#11683a}.bad{background:#fbe2e0;color:#b3261e}\
code{font-family:ui-monospace,monospace;font-size:.95em}";

fn html(bundle: &Bundle) -> String {
    let mut text = String::new();
    let title = format!("Evidence for {}", bundle.correlation_id);
    let _ = write!(
        text,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    let _ = writeln!(text, "<h1>Evidence for <code>{}</code></h1>", escape(&bundle.correlation_id));
    let _ = writeln!(
        text,
        "<p class=\"meta\">Generated {} by guardctl {}.</p>",
        escape(&bundle.generated_at),
        escape(&bundle.guardctl_version)
    );
    let chain_badge = if bundle.chain_intact {
        "<span class=\"badge ok\">intact</span>".to_owned()
    } else {
        "<span class=\"badge bad\">BROKEN</span>".to_owned()
    };
    let break_glass = if bundle.break_glass {
        format!("<span class=\"badge bad\">YES</span> reason: {}", escape(&join_or_none(&bundle.break_glass_reasons)))
    } else {
        escape(&break_glass_summary(bundle))
    };
    let jobs: Vec<String> = bundle.job_ids.iter().map(u32::to_string).collect();
    let _ = writeln!(text, "<table class=\"summary\">");
    for (name, value) in [
        ("Jobs", escape(&join_or_none(&jobs))),
        ("Users", escape(&join_or_none(&bundle.users))),
        ("Environments", escape(&join_or_none(&bundle.environments))),
        ("Nodes", escape(&join_or_none(&bundle.nodes))),
        ("Outcomes", escape(&join_or_none(&bundle.outcomes))),
        ("Break glass", break_glass),
        ("Policy sha256", format!("<code>{}</code>", escape(&join_or_none(&bundle.policy_sha256s)))),
        ("Audit chain", chain_badge),
    ] {
        let _ = writeln!(text, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    let _ = writeln!(text, "</table>");

    let _ = writeln!(text, "<h2>Timeline</h2>\n<table>");
    let _ = writeln!(
        text,
        "<tr><th>Time</th><th>Event</th><th>Job</th><th>Step</th><th>Node</th><th>Outcome</th><th>Container</th><th>Exit codes</th><th>Failing rules</th></tr>"
    );
    for entry in &bundle.timeline {
        let outcome = entry.outcome.as_deref().unwrap_or("-");
        let mut outcome_cell = format!("<span class=\"{}\">{}</span>", escape(outcome), escape(outcome));
        if entry.break_glass {
            outcome_cell.push_str(" <span class=\"badge bad\">break glass</span>");
        }
        let rules = if entry.rules.is_empty() {
            "-".to_owned()
        } else {
            entry.rules.iter().map(|rule| escape(rule)).collect::<Vec<_>>().join("<br>")
        };
        let _ = writeln!(
            text,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{outcome_cell}</td><td><code>{}</code></td><td>{}</td><td>{rules}</td></tr>",
            escape(&entry.ts),
            escape(&entry.event),
            entry.job_id.map_or_else(|| "-".to_owned(), |job| job.to_string()),
            escape(optional(entry.step.as_deref())),
            escape(optional(entry.node.as_deref())),
            escape(optional(entry.container.as_deref())),
            escape(&exit_text(entry.exit_codes.as_ref()))
        );
    }
    let _ = writeln!(text, "</table>");

    let _ = writeln!(text, "<h2>Audit chain</h2>\n<table>\n<tr><th>File</th><th>Records</th><th>Seq</th><th>Result</th></tr>");
    for check in &bundle.chain {
        let result = check.broken.as_deref().map_or_else(
            || "<span class=\"badge ok\">intact</span>".to_owned(),
            |broken| format!("<span class=\"badge bad\">broken</span> {}", escape(broken)),
        );
        let _ = writeln!(
            text,
            "<tr><td><code>{}</code></td><td>{}</td><td>{} to {}</td><td>{result}</td></tr>",
            escape(&check.file),
            check.records,
            check.first_seq.map_or_else(|| "-".to_owned(), |seq| seq.to_string()),
            check.last_seq.map_or_else(|| "-".to_owned(), |seq| seq.to_string())
        );
    }
    let _ = writeln!(text, "</table>\n</body>\n</html>");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_html_specials() {
        assert_eq!(escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn markdown_cell_escapes_pipes() {
        assert_eq!(markdown_cell("a|b\nc"), "a\\|b c");
    }
}
