//! `guardctl metrics export --audit FILE... --out FILE.prom`: derives
//! Prometheus counters from the audit journal for node_exporter's textfile
//! collector, so the job launch path writes only its audit record.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use policy_core::audit::{AuditRecord, Event};
use policy_core::{journal, Outcome};

use crate::commands::audit::{json_name, read_records, RecordLine};
use crate::failure::{Failure, Status};

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Write the metrics of audit files in Prometheus text format.
    ///
    /// Counts every record of the files given, so give the rotated files
    /// too. The output is written to a temporary file in the same directory
    /// and renamed, so node_exporter never reads a partial file.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Audit files to count, for example the live journal and its rotated
    /// files. A missing file counts as empty, with a note on standard error.
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub audit: Vec<PathBuf>,

    /// Output file, for example
    /// /var/lib/prometheus/node-exporter/spank_guard.prom. Default: the
    /// policy's metrics.textfile (needs --policy).
    #[arg(long, value_name = "FILE.prom")]
    pub out: Option<PathBuf>,

    /// The installed policy, for spank_guard_policy_info. Without it the
    /// policy sha256 of the last decision record is used.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<PathBuf>,
}

/// Upper bounds of the decision duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Label value of records whose environment is unknown or not resolved.
const UNKNOWN: &str = "unknown";

/// Counts derived from the journal.
#[derive(Debug, Default)]
struct Counts {
    decisions: BTreeMap<(String, String), u64>,
    denials: BTreeMap<(String, String), u64>,
    break_glass: BTreeMap<String, u64>,
    policy_errors: u64,
    audit_write_errors: u64,
    /// Cumulative count per bucket of DURATION_BUCKETS.
    duration_buckets: [u64; DURATION_BUCKETS.len()],
    duration_count: u64,
    duration_sum_seconds: f64,
    policy_sha256: Option<String>,
    version: Option<String>,
}

/// Runs `guardctl metrics ...`.
pub fn run(command: &MetricsCommand) -> Result<Status, Failure> {
    match command {
        MetricsCommand::Export(arguments) => export(arguments),
    }
}

fn export(arguments: &ExportArgs) -> Result<Status, Failure> {
    let mut present = Vec::new();
    for file in &arguments.audit {
        if file.exists() {
            present.push(file.clone());
        } else {
            eprintln!("guardctl: note: {} not found; counted as empty", file.display());
        }
    }
    let records = read_records(&present)?;
    let mut counts = count_records(&records);
    for file in &arguments.audit {
        counts.audit_write_errors += count_write_errors(file)?;
    }
    let mut configured_out = None;
    if let Some(path) = &arguments.policy {
        let policy = super::load_policy(path)?;
        counts.policy_sha256 = Some(policy.sha256().to_owned());
        configured_out = policy.metrics_textfile().map(PathBuf::from);
        // A series that first appears at 1 has no increase() in Prometheus,
        // so every environment that permits break glass starts at 0.
        for name in policy.environment_names() {
            if policy.break_glass_max_minutes(name).is_some() {
                counts.break_glass.entry(name.to_owned()).or_default();
            }
        }
    }
    let out = match (&arguments.out, configured_out) {
        (Some(out), _) => out.clone(),
        (None, Some(configured)) => configured,
        (None, None) => {
            return Err(Failure::new(
                "no output file: pass --out FILE.prom, or set metrics.textfile in the policy given with --policy",
            ))
        }
    };
    write_replacing(&out, &format_metrics(&counts))?;
    Ok(Status::Success)
}

fn count_records(records: &[RecordLine]) -> Counts {
    let mut counts = Counts::default();
    for RecordLine { record, .. } in records {
        counts.version = Some(record.version.clone());
        match record.event {
            Event::Decision => count_decision(&mut counts, record),
            Event::PolicyError => counts.policy_errors += 1,
            Event::StepEnd => {}
        }
    }
    counts
}

fn count_decision(counts: &mut Counts, record: &AuditRecord) {
    let environment = record.environment.clone().unwrap_or_else(|| UNKNOWN.to_owned());
    let outcome = record.outcome.map_or_else(|| UNKNOWN.to_owned(), |outcome| json_name(&outcome));
    *counts.decisions.entry((environment.clone(), outcome)).or_default() += 1;
    if record.outcome == Some(Outcome::Deny) {
        for reason in &record.reasons {
            *counts.denials.entry((environment.clone(), reason.rule.clone())).or_default() += 1;
        }
    }
    if record.break_glass {
        *counts.break_glass.entry(environment).or_default() += 1;
    }
    if let Some(micros) = record.duration_us {
        let seconds = micros as f64 / 1_000_000.0;
        counts.duration_count += 1;
        counts.duration_sum_seconds += seconds;
        for (bucket, bound) in counts.duration_buckets.iter_mut().zip(DURATION_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }
    if record.policy_sha256.is_some() {
        counts.policy_sha256.clone_from(&record.policy_sha256);
    }
}

/// Returns the number of lines of the write-error file of `audit`; 0 when
/// it does not exist.
fn count_write_errors(audit: &Path) -> Result<u64, Failure> {
    let path = journal::write_errors_path(audit);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(bytes.iter().filter(|byte| **byte == b'\n').count() as u64),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(Failure::new(format!("cannot read {}: {error}", path.display()))),
    }
}

/// Escapes a label value as the Prometheus text format requires.
fn label(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn header(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} {kind}");
}

fn format_metrics(counts: &Counts) -> String {
    let mut text = String::new();
    header(&mut text, "spank_guard_decisions_total", "counter", "Decisions in the audit journal, by environment and outcome.");
    for ((environment, outcome), value) in &counts.decisions {
        let _ = writeln!(
            text,
            "spank_guard_decisions_total{{environment=\"{}\",outcome=\"{}\"}} {value}",
            label(environment),
            label(outcome)
        );
    }
    header(&mut text, "spank_guard_denials_total", "counter", "Failing rules of denied decisions, by environment and rule id.");
    for ((environment, rule), value) in &counts.denials {
        let _ = writeln!(text, "spank_guard_denials_total{{environment=\"{}\",rule=\"{}\"}} {value}", label(environment), label(rule));
    }
    header(&mut text, "spank_guard_policy_errors_total", "counter", "policy_error records: the policy could not be loaded.");
    let _ = writeln!(text, "spank_guard_policy_errors_total {}", counts.policy_errors);
    header(&mut text, "spank_guard_audit_write_errors_total", "counter", "Audit records the plugin failed to write.");
    let _ = writeln!(text, "spank_guard_audit_write_errors_total {}", counts.audit_write_errors);
    header(&mut text, "spank_guard_break_glass_total", "counter", "Decisions where a user broke glass, by environment.");
    for (environment, value) in &counts.break_glass {
        let _ = writeln!(text, "spank_guard_break_glass_total{{environment=\"{}\"}} {value}", label(environment));
    }
    header(
        &mut text,
        "spank_guard_decision_duration_seconds",
        "histogram",
        "Time the plugin took to load the policy and evaluate a step.",
    );
    for (bound, value) in DURATION_BUCKETS.iter().zip(counts.duration_buckets) {
        let _ = writeln!(text, "spank_guard_decision_duration_seconds_bucket{{le=\"{bound}\"}} {value}");
    }
    let _ = writeln!(text, "spank_guard_decision_duration_seconds_bucket{{le=\"+Inf\"}} {}", counts.duration_count);
    let _ = writeln!(text, "spank_guard_decision_duration_seconds_sum {}", counts.duration_sum_seconds);
    let _ = writeln!(text, "spank_guard_decision_duration_seconds_count {}", counts.duration_count);
    if let Some(sha256) = &counts.policy_sha256 {
        header(&mut text, "spank_guard_policy_info", "gauge", "The policy in force: its sha256 and the plugin version.");
        let version = counts.version.clone().unwrap_or_else(|| policy_core::VERSION.to_owned());
        let _ = writeln!(text, "spank_guard_policy_info{{sha256=\"{}\",version=\"{}\"}} 1", label(sha256), label(&version));
    }
    text
}

/// Writes `text` to a temporary file next to `path` whose name does not end
/// in `.prom`, then renames it over `path`.
fn write_replacing(path: &Path, text: &str) -> Result<(), Failure> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp.{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(Failure::new(format!("cannot write {}: {error}", path.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
