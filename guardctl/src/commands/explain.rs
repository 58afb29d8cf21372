//! `guardctl explain`: builds the request a job would send, evaluates it, and
//! prints the decision as a table or as JSON.

use std::collections::BTreeMap;

use policy_core::{evaluate, Context, Decision, GuardOptions, Outcome, Request, UNLIMITED_TIME_LIMIT};

use crate::cli::ExplainArgs;
use crate::failure::{Failure, Status};
use crate::output::{count, print, shell_quote};

/// Evaluates the request and prints the decision.
pub fn run(arguments: &ExplainArgs) -> Result<Status, Failure> {
    let policy = super::load_policy(&arguments.policy)?;
    let request = build_request(arguments, std::env::vars_os());
    let now = arguments.at.unwrap_or_else(jiff::Timestamp::now);
    let decision = evaluate(&policy, &request, now);

    // Without a time limit the duration rule cannot run, so the table names it.
    let unchecked_duration = match (&arguments.break_glass, arguments.time_limit, decision.environment.as_deref()) {
        (Some(_), None, Some(environment)) => policy.break_glass_max_minutes(environment),
        _ => None,
    };
    let text = if arguments.json {
        let mut json = serde_json::to_string_pretty(&decision)
            .map_err(|error| Failure::new(format!("cannot encode the decision as JSON: {error}")))?;
        json.push('\n');
        json
    } else {
        let mut table = render_table(&decision, &request.argv);
        if let Some(minutes) = unchecked_duration {
            row(
                &mut table,
                "not checked",
                &format!("break_glass.duration: the job's time limit must be at most {minutes} minutes (pass --time-limit)"),
            );
        }
        table
    };
    print(&text)?;

    Ok(match decision.outcome {
        Outcome::Allow | Outcome::WouldDeny => Status::Success,
        Outcome::Deny => Status::Denied,
    })
}

/// Builds the request from the options. `inherited` is guardctl's own
/// environment, used only with `--inherit-env`. Names and values that are not
/// UTF-8 are converted lossily.
fn build_request(
    arguments: &ExplainArgs,
    inherited: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Request {
    let mut env = BTreeMap::new();
    if arguments.inherit_env {
        for (name, value) in inherited {
            env.insert(name.to_string_lossy().into_owned(), value.to_string_lossy().into_owned());
        }
    }
    for (name, value) in &arguments.setenv {
        env.insert(name.clone(), value.clone());
    }

    Request {
        // The compute node's step check is the authoritative one.
        context: Context::Step,
        cluster: arguments.cluster.clone().unwrap_or_default(),
        job_id: arguments.job_id,
        node: arguments.node.clone(),
        user: arguments.user.clone(),
        groups: arguments.groups.clone(),
        options: GuardOptions {
            env: arguments.environment.clone(),
            justification: arguments.justification.clone(),
            ticket: arguments.ticket.clone(),
            image: arguments.image.clone(),
            binds: arguments.bind.clone(),
            container_flags: arguments.container_flags.clone(),
            break_glass: arguments.break_glass.clone(),
        },
        env,
        argv: arguments.command.clone(),
        job_name: arguments.job_name.clone(),
        // Slurm reads `--time=0` as no time limit.
        time_limit_minutes: arguments.time_limit.map(|minutes| if minutes == 0 { UNLIMITED_TIME_LIMIT } else { minutes }),
        ..Request::default()
    }
}

/// Width of the label column of the table, `environment:` plus two spaces.
const LABEL_WIDTH: usize = 14;

fn row(table: &mut String, label: &str, value: &str) {
    let label = format!("{label}:");
    table.push_str(&format!("{label:<LABEL_WIDTH$}{value}\n"));
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::WouldDeny => "would_deny",
    }
}

/// Renders the decision as aligned `label: value` rows, reasons one per line
/// with their rule id, and the container command line ready to paste.
fn render_table(decision: &Decision, command: &[String]) -> String {
    let mut table = String::new();
    row(&mut table, "outcome", outcome_name(decision.outcome));
    row(&mut table, "environment", decision.environment.as_deref().unwrap_or("(unknown)"));
    let risk = decision.risk.map_or_else(|| "(unknown)".to_owned(), |risk| risk.to_string());
    row(&mut table, "risk", &risk);
    let mode = match decision.mode {
        policy_core::Mode::Enforce => "enforce",
        policy_core::Mode::Audit => "audit",
    };
    row(&mut table, "mode", mode);

    if decision.reasons.is_empty() {
        row(&mut table, "reasons", "none");
    } else {
        row(&mut table, "reasons", &count(decision.reasons.len(), "failing rule", "failing rules"));
        let width = decision.reasons.iter().map(|reason| reason.rule.len()).max().unwrap_or(0);
        for reason in &decision.reasons {
            table.push_str(&format!("  {:<width$}  {}\n", reason.rule, reason.message));
        }
    }
    if decision.break_glass {
        row(&mut table, "break glass", "yes, the job runs although the waived rules failed");
    }
    if !decision.waived.is_empty() {
        // Waived only when glass was broken; otherwise other rules still deny.
        let label = if decision.break_glass { "waived" } else { "would waive" };
        row(&mut table, label, &count(decision.waived.len(), "rule", "rules"));
        let width = decision.waived.iter().map(|reason| reason.rule.len()).max().unwrap_or(0);
        for reason in &decision.waived {
            table.push_str(&format!("  {:<width$}  {}\n", reason.rule, reason.message));
        }
    }

    let container = match &decision.effects.container {
        Some(launch) => launch
            .argv_prefix
            .iter()
            .chain(command)
            .map(|argument| shell_quote(argument))
            .collect::<Vec<_>>()
            .join(" "),
        None => "none".to_owned(),
    };
    row(&mut table, "container", &container);
    if let Some(sha256) = decision.effects.container.as_ref().and_then(|launch| launch.image_sha256.as_deref()) {
        row(&mut table, "image sha256", sha256);
    }

    let unset = if decision.effects.unset.is_empty() { "none".to_owned() } else { decision.effects.unset.join(" ") };
    row(&mut table, "unset", &unset);
    let set = if decision.effects.set.is_empty() {
        "none".to_owned()
    } else {
        let assignments = decision.effects.set.iter().map(|(name, value)| shell_quote(&format!("{name}={value}")));
        assignments.collect::<Vec<_>>().join(" ")
    };
    row(&mut table, "set", &set);

    let ticket = match &decision.ticket {
        Some(ticket) => format!("kid {}, expires {}", ticket.kid, format_unix(ticket.exp)),
        None => "none".to_owned(),
    };
    row(&mut table, "ticket", &ticket);
    row(&mut table, "correlation", &decision.correlation_id);
    row(&mut table, "policy", &format!("sha256 {}", decision.policy_sha256));
    table
}

/// Formats Unix seconds as RFC 3339 UTC, or the number itself when out of range.
pub fn format_unix(seconds: i64) -> String {
    match jiff::Timestamp::from_second(seconds) {
        Ok(timestamp) => timestamp.to_string(),
        Err(_) => format!("{seconds} (Unix seconds)"),
    }
}

#[cfg(test)]
mod tests {
    use policy_core::{ContainerLaunch, Effects, Mode, Reason, TicketSummary};

    use super::*;

    fn decision() -> Decision {
        Decision {
            outcome: Outcome::Allow,
            environment: Some("prod".to_owned()),
            risk: Some(10),
            mode: Mode::Enforce,
            reasons: Vec::new(),
            effects: Effects {
                unset: vec!["APPTAINER_BIND".to_owned(), "LD_PRELOAD".to_owned()],
                set: BTreeMap::from([("HOS_ENV".to_owned(), "prod".to_owned())]),
                container: Some(ContainerLaunch {
                    argv_prefix: vec![
                        "/usr/bin/apptainer".to_owned(),
                        "exec".to_owned(),
                        "--bind".to_owned(),
                        "/mnt/hpc-data/prod:/mnt/hpc-data/prod:ro".to_owned(),
                        "/opt/images/a b.sif".to_owned(),
                    ],
                    image: "/opt/images/a b.sif".to_owned(),
                    image_sha256: None,
                    binds: vec!["/mnt/hpc-data/prod:/mnt/hpc-data/prod:ro".to_owned()],
                }),
            },
            correlation_id: "hpc-42".to_owned(),
            ticket: Some(TicketSummary { kid: "jenkins-2026".to_owned(), exp: 1_780_322_400 }),
            policy_sha256: "ab".repeat(32),
            deferred: Vec::new(),
            break_glass: false,
            waived: Vec::new(),
        }
    }

    #[test]
    fn table_of_allow_with_container() {
        let command = vec!["python".to_owned(), "train.py".to_owned()];
        let expected = format!(
            "outcome:      allow\n\
             environment:  prod\n\
             risk:         10\n\
             mode:         enforce\n\
             reasons:      none\n\
             container:    /usr/bin/apptainer exec --bind /mnt/hpc-data/prod:/mnt/hpc-data/prod:ro \
             '/opt/images/a b.sif' python train.py\n\
             unset:        APPTAINER_BIND LD_PRELOAD\n\
             set:          HOS_ENV=prod\n\
             ticket:       kid jenkins-2026, expires 2026-06-01T14:00:00Z\n\
             correlation:  hpc-42\n\
             policy:       sha256 {}\n",
            "ab".repeat(32)
        );
        assert_eq!(render_table(&decision(), &command), expected);
    }

    #[test]
    fn table_of_deny_aligns_rule_ids() {
        let mut denied = decision();
        denied.outcome = Outcome::Deny;
        denied.effects = Effects::default();
        denied.ticket = None;
        denied.reasons = vec![
            Reason { rule: "environment.access".to_owned(), message: "user `bob` is not allowed".to_owned() },
            Reason { rule: "approval.ticket".to_owned(), message: "ticket is missing".to_owned() },
        ];
        let table = render_table(&denied, &["true".to_owned()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "outcome:      deny");
        assert_eq!(lines[4], "reasons:      2 failing rules");
        assert_eq!(lines[5], "  environment.access  user `bob` is not allowed");
        assert_eq!(lines[6], "  approval.ticket     ticket is missing");
        assert_eq!(lines[7], "container:    none");
        assert_eq!(lines[8], "unset:        none");
        assert_eq!(lines[9], "set:          none");
        assert_eq!(lines[10], "ticket:       none");
    }
}
