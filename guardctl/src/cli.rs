//! Command-line definition. The help text of every option states what it
//! sets and its unit or format; `guardctl help <command>` prints it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use jiff::Timestamp;

use crate::ttl::parse_ttl;

/// Check spank-guard policies, explain decisions and manage approval tickets.
///
/// Exit status: 0 success (for explain: the job would run), 1 invalid input
/// or failed operation, 2 usage error, 3 explain: the policy denies the job.
#[derive(Debug, Parser)]
#[command(name = "guardctl", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a policy file and print a one-line summary.
    ///
    /// Exits 0 and prints the environments, image sets and sha256 of a valid
    /// policy. Exits 1 and prints every problem to standard error, each with
    /// its line, column and JSON path. Works as Ansible's `validate:` command
    /// (`guardctl check %s`).
    Check(CheckArgs),
    /// Print the decision a job would get, with every failing rule.
    ///
    /// Evaluates the request as the compute node would at step launch.
    /// Exits 0 when the job would run (allow, or would_deny in audit mode)
    /// and 3 when the policy denies it.
    Explain(Box<ExplainArgs>),
    /// Create key pairs, and issue or verify approval tickets.
    Ticket {
        #[command(subcommand)]
        command: TicketCommand,
    },
    /// Check a built SPANK plugin file before Slurm loads it.
    Plugin {
        #[command(subcommand)]
        command: crate::commands::plugin::PluginCommand,
    },
    /// Print facts about an installed policy, for drift checks.
    Policy {
        #[command(subcommand)]
        command: crate::commands::policy::PolicyCommand,
    },
    /// Write the evidence bundle of one job for a CI build to archive.
    ///
    /// Writes evidence.json (every record with the correlation id, the
    /// policy sha256s seen, the chain check of each file), evidence.md and a
    /// self-contained evidence.html with the timeline. Exits 1 when no
    /// record has the id, or when a file's chain is broken (the bundle is
    /// still written and records the break).
    Evidence(crate::commands::evidence::EvidenceArgs),
    /// Export Prometheus metrics derived from the audit journal.
    Metrics {
        #[command(subcommand)]
        command: crate::commands::metrics::MetricsCommand,
    },
    /// Re-evaluate recorded decisions against another policy.
    ///
    /// Lists every decision whose outcome or failing rules would change,
    /// with the rules added (+) and removed (-). Always exits 0 when the
    /// files and the policy could be read.
    Replay(crate::commands::replay::ReplayArgs),
    /// Verify the audit hash chain, and query or tail audit records.
    Audit {
        #[command(subcommand)]
        command: crate::commands::audit::AuditCommand,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy file (JSON, format version 1).
    #[arg(value_name = "POLICY")]
    pub policy: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Policy file to evaluate against.
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,

    /// User name of the job owner.
    #[arg(long, value_name = "USER")]
    pub user: String,

    /// Groups of the user, comma-separated. Groups are not looked up on this
    /// host: list every group the policy should see.
    #[arg(long, value_name = "GROUP,...", value_delimiter = ',')]
    pub groups: Vec<String>,

    /// Environment requested with --guard-env (name or alias, any case).
    /// Without it, HOS_ENV from the job environment, else the policy's
    /// default_environment.
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: Option<String>,

    /// Container image requested with --guard-image (a path).
    #[arg(long, value_name = "PATH")]
    pub image: Option<String>,

    /// Bind requested with --guard-bind: SRC[:DST[:ro|rw]], a comma list of
    /// them, or the option repeated.
    #[arg(long, value_name = "SPEC")]
    pub bind: Vec<String>,

    /// Container flags requested with --guard-container-flags, comma-separated
    /// long flags such as --nv or --pwd=/work. May be repeated.
    #[arg(long = "container-flags", value_name = "FLAGS", allow_hyphen_values = true)]
    pub container_flags: Vec<String>,

    /// Approval ticket given with --guard-ticket.
    #[arg(long, value_name = "TICKET")]
    pub ticket: Option<String>,

    /// Justification given with --guard-justification.
    #[arg(long, value_name = "TEXT")]
    pub justification: Option<String>,

    /// Break-glass reason given with --guard-break-glass.
    #[arg(long = "break-glass", value_name = "REASON")]
    pub break_glass: Option<String>,

    /// Time limit of the job in minutes (`--time`), as the controller check
    /// receives it; 0 means no limit, as in Slurm. It is checked against the
    /// end of the window and against break_glass.max_minutes.
    #[arg(long = "time-limit", value_name = "MINUTES")]
    pub time_limit: Option<u32>,

    /// Short host name of the compute node that runs the step.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,

    /// Slurm job name (tickets may be bound to it).
    #[arg(long = "job-name", value_name = "NAME")]
    pub job_name: Option<String>,

    /// Slurm cluster name, the first part of the correlation id.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// Slurm job id, for the correlation id `<cluster>-<job id>` and the
    /// `{job_id}` placeholder of env.set. Without it the correlation id has
    /// the form used before submission.
    #[arg(long = "job-id", value_name = "ID")]
    pub job_id: Option<u32>,

    /// Evaluation time in RFC 3339, for example 2026-06-01T09:30:00Z or
    /// 2026-06-01T10:30:00+01:00. Default: now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub at: Option<Timestamp>,

    /// Variable of the job environment, as NAME=VALUE. May be repeated; it
    /// overrides an inherited variable of the same name.
    #[arg(long = "setenv", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub setenv: Vec<(String, String)>,

    /// Start the job environment from guardctl's own environment, as sbatch
    /// does with its default --export=ALL. Without it the job environment
    /// holds only the --setenv variables.
    #[arg(long = "inherit-env")]
    pub inherit_env: bool,

    /// Print the decision as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// The job's command and its arguments, after `--`.
    #[arg(value_name = "CMD", last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Create an Ed25519 key pair for signing tickets.
    ///
    /// Writes the private key to OUT (base64, mode 0600; an existing file is
    /// never overwritten) and the public key to OUT.pub, and prints the
    /// public key to add under approvals.keys in the policy.
    Keygen(KeygenArgs),
    /// Sign a ticket and print it.
    Issue(IssueArgs),
    /// Check a ticket against a policy's keys and maximum lifetime.
    ///
    /// Exits 0 and prints the claims of a valid ticket; exits 1 and prints
    /// why a ticket is rejected.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path of the private key file to create; the public key goes to OUT.pub.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Private key file written by `guardctl ticket keygen`.
    #[arg(long, value_name = "PRIV")]
    pub key: PathBuf,

    /// Key id, as named under approvals.keys in the policy.
    #[arg(long, value_name = "ID")]
    pub kid: String,

    /// User the ticket is for.
    #[arg(long, value_name = "USER")]
    pub user: String,

    /// Environment the ticket is for (canonical name or alias).
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,

    /// Lifetime from now: a whole number with unit s, m, h or d, for example
    /// 90m or 2h. Verification rejects tickets whose lifetime is above the
    /// policy's approvals.max_ttl_hours.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: i64,

    /// Restrict the ticket to jobs with this Slurm job name.
    #[arg(long = "job-name", value_name = "NAME")]
    pub job_name: Option<String>,

    /// Reason for the approval, recorded in the ticket and the audit log.
    #[arg(long, value_name = "TEXT")]
    pub justification: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Policy file whose approvals.keys and max_ttl_hours apply.
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,

    /// The ticket (v1.<claims>.<signature>).
    #[arg(value_name = "TICKET")]
    pub ticket: String,

    /// Also require the ticket to be bound to this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Also require the ticket to be bound to this environment (name or
    /// alias, any case).
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: Option<String>,

    /// Also require a ticket bound to a job name to be bound to this one.
    #[arg(long = "job-name", value_name = "NAME")]
    pub job_name: Option<String>,

    /// Verification time in RFC 3339, for example 2026-06-01T09:30:00Z.
    /// Default: now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    pub at: Option<Timestamp>,
}

fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|error| {
        format!("expected an RFC 3339 time with an offset, for example 2026-06-01T09:30:00Z: {error}")
    })
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE with a non-empty NAME".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn assignment_splits_at_first_equals() {
        assert_eq!(parse_assignment("A=b=c"), Ok(("A".to_owned(), "b=c".to_owned())));
        assert_eq!(parse_assignment("A="), Ok(("A".to_owned(), String::new())));
        assert!(parse_assignment("=x").is_err());
        assert!(parse_assignment("A").is_err());
    }
}
