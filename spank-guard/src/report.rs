//! Lines shown to the user for denials, warnings and errors.
//!
//! Every line starts with `spank-guard: `. The shapes are part of the
//! user interface (scripts grep for them):
//!
//! ```text
//! spank-guard: denied: <rule>: <message>
//! spank-guard: warning: audit mode, would deny: <rule>: <message>
//! spank-guard: correlation id: <id>
//! spank-guard: WARNING: BREAK GLASS by user `<user>` in environment `<env>`: <reason>
//! spank-guard: WARNING: BREAK GLASS waives <rule>: <message>
//! ```
//!
//! The report of `--guard-explain` (see [`explain_lines`]) starts every line
//! with `spank-guard explain: ` instead, so it never matches the denial lines.

use policy_core::rules::{self, POLICY_INVALID};
use policy_core::{Decision, LoadError, Mode, Outcome, Request};

use crate::logging::PREFIX;

/// Prefix of every line of the `--guard-explain` report.
pub const EXPLAIN_PREFIX: &str = "spank-guard explain: ";

/// Returns every line shown to the user for a decision of `request`: the
/// break-glass warnings, then [`decision_lines`].
pub fn user_lines(decision: &Decision, request: &Request) -> Vec<String> {
    let mut lines = break_glass_lines(decision, &request.user, request.options.break_glass.as_deref());
    lines.extend(decision_lines(decision));
    lines
}

/// Returns the lines that explain a decision to the user: one per failing
/// rule, then the correlation id. An allow without reasons has no lines,
/// unless the user broke glass.
pub fn decision_lines(decision: &Decision) -> Vec<String> {
    let label = match decision.outcome {
        Outcome::Allow if decision.reasons.is_empty() && !decision.break_glass => return Vec::new(),
        Outcome::Deny => "denied",
        Outcome::WouldDeny | Outcome::Allow => "warning: audit mode, would deny",
    };
    let mut lines: Vec<String> =
        decision.reasons.iter().map(|reason| format!("{PREFIX}{label}: {}: {}", reason.rule, reason.message)).collect();
    lines.push(correlation_line(&decision.correlation_id));
    lines
}

/// Returns the warning lines of a break-glass request: who broke glass and
/// why, then each waived rule. When other rules deny the request, one line
/// names the rules that break glass would have waived. `reason` is the value of
/// `--guard-break-glass`; without it there are no lines.
pub fn break_glass_lines(decision: &Decision, user: &str, reason: Option<&str>) -> Vec<String> {
    let Some(reason) = reason else {
        return Vec::new();
    };
    let environment = decision.environment.as_deref().unwrap_or("-");
    if decision.break_glass {
        let mut lines = vec![format!("{PREFIX}WARNING: BREAK GLASS by user `{user}` in environment `{environment}`: {reason}")];
        lines.extend(
            decision.waived.iter().map(|waived| format!("{PREFIX}WARNING: BREAK GLASS waives {}: {}", waived.rule, waived.message)),
        );
        lines.push(format!("{PREFIX}WARNING: BREAK GLASS: every step that runs this way is recorded in the audit log and reviewed by the administrators"));
        return lines;
    }
    if decision.waived.is_empty() {
        // Permitted, but every window and approval rule passed: nothing to break.
        if decision.permits() && !decision.reasons.iter().any(|reason| rules::BREAK_GLASS.contains(&reason.rule.as_str())) {
            return vec![format!("{PREFIX}break glass not needed: the window and approval rules pass without it; remove --guard-break-glass")];
        }
        return Vec::new();
    }
    let waived: Vec<&str> = decision.waived.iter().map(|waived| waived.rule.as_str()).collect();
    vec![format!("{PREFIX}break glass would waive {}, but the other rules still deny the request", waived.join(", "))]
}

/// Returns the lines for a policy that cannot be loaded: one
/// `policy.invalid` line per problem.
pub fn policy_error_lines(error: &LoadError, correlation_id: Option<&str>) -> Vec<String> {
    let mut lines: Vec<String> =
        error.to_string().lines().map(|problem| format!("{PREFIX}denied: {POLICY_INVALID}: {problem}")).collect();
    if let Some(id) = correlation_id {
        lines.push(correlation_line(id));
    }
    lines
}

/// Returns the line that names the correlation id.
pub fn correlation_line(id: &str) -> String {
    format!("{PREFIX}correlation id: {id}")
}

/// The command that follows the container's argv prefix in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskCommand {
    /// The step's own command (srun).
    Argv(Vec<String>),
    /// A stand-in shown as is, for commands the submit side does not have:
    /// `<srun command>`, `<batch script>` or `<srun step command>`.
    Placeholder(&'static str),
}

/// Claims an approval ticket for the request must contain, shown when the
/// environment requires a ticket and the request has no valid one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRequirement {
    /// User name of the job.
    pub user: String,
    /// Canonical name of the environment.
    pub environment: String,
    /// Aliases of the environment, which a ticket may name instead.
    pub aliases: Vec<String>,
    /// Job name from `SLURM_JOB_NAME`. sbatch sets it from `--job-name` before
    /// `init_post_opt`, but srun and salloc do not (Slurm 22.05).
    pub job_name: Option<String>,
    /// The policy's `approvals.max_ttl_hours`.
    pub max_ttl_hours: u32,
    /// Key ids under the policy's `approvals.keys`, sorted.
    pub key_ids: Vec<String>,
}

/// Everything the `--guard-explain` text report shows.
#[derive(Debug, Clone)]
pub struct Explanation<'a> {
    /// The decision of the submit-side check.
    pub decision: &'a Decision,
    /// The command the container runs, after the argv prefix.
    pub command: TaskCommand,
    /// Rules the submit side cannot check, with what the node checks:
    /// (`rule id`, description).
    pub node_checks: Vec<(String, String)>,
    /// Rules that only the controller check (job_submit/lua) can decide,
    /// because only slurmctld receives the job's time limit:
    /// (`rule id`, description).
    pub controller_checks: Vec<(String, String)>,
    /// The ticket the request lacks, when the environment requires one.
    pub ticket: Option<TicketRequirement>,
}

/// Returns the lines of the `--guard-explain` text report, each starting
/// with [`EXPLAIN_PREFIX`]:
///
/// ```text
/// environment <name> (risk <n>, mode enforce|audit)
/// outcome: allow|deny|would_deny
/// break glass: yes, ...                    (when break glass waived a rule)
/// deny: <rule>: <message>                  (would deny: ... in audit mode)
/// waived by break glass: <rule>: <message> (break glass would waive: ... on a deny)
/// checked on the compute node: <rule>: <what>
/// checked by the controller: <rule>: <what>
/// unset: <NAME> ...                         (when the job would run)
/// set: <NAME=value>                         (one line per variable)
/// container: <runtime argv> <command>
/// ticket: valid, key <kid>, expires <time>
/// ticket required: ...                     (what a ticket must contain)
/// correlation id: <id>
/// ```
pub fn explain_lines(explanation: &Explanation<'_>) -> Vec<String> {
    let decision = explanation.decision;
    let mut lines = Vec::new();

    let mode = match decision.mode {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    };
    lines.push(match (&decision.environment, decision.risk) {
        (Some(name), Some(risk)) => format!("environment {name} (risk {risk}, mode {mode})"),
        (Some(name), None) => format!("environment {name} (mode {mode})"),
        (None, _) => format!("environment unknown (mode {mode})"),
    });
    lines.push(format!("outcome: {}", outcome_name(decision.outcome)));
    if decision.break_glass {
        lines.push("break glass: yes, the job runs although window or approval rules fail; the use is audited".to_owned());
    }

    let label = match decision.outcome {
        Outcome::Deny => "deny",
        Outcome::WouldDeny | Outcome::Allow => "would deny",
    };
    for reason in &decision.reasons {
        lines.push(format!("{label}: {}: {}", reason.rule, reason.message));
    }
    let waived_label = if decision.break_glass { "waived by break glass" } else { "break glass would waive" };
    for reason in &decision.waived {
        lines.push(format!("{waived_label}: {}: {}", reason.rule, reason.message));
    }
    for (rule, what) in &explanation.node_checks {
        lines.push(format!("checked on the compute node: {rule}: {what}"));
    }
    for (rule, what) in &explanation.controller_checks {
        lines.push(format!("checked by the controller: {rule}: {what}"));
    }

    // A deny carries no effects: nothing would run.
    if decision.permits() {
        push_effects(&mut lines, decision, &explanation.command);
    }

    if let Some(ticket) = &decision.ticket {
        lines.push(format!("ticket: valid, key {}, expires {}", ticket.kid, format_unix(ticket.exp)));
    }
    if let Some(requirement) = &explanation.ticket {
        push_ticket_requirement(&mut lines, requirement);
    }
    lines.push(format!("correlation id: {}", decision.correlation_id));

    lines.into_iter().map(|line| format!("{EXPLAIN_PREFIX}{line}")).collect()
}

/// Returns the outcome as in the decision's JSON form.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::WouldDeny => "would_deny",
    }
}

fn push_effects(lines: &mut Vec<String>, decision: &Decision, command: &TaskCommand) {
    let effects = &decision.effects;
    if effects.unset.is_empty() {
        lines.push("unset: none".to_owned());
    } else {
        lines.push(format!("unset: {}", effects.unset.join(" ")));
    }
    for (name, value) in &effects.set {
        lines.push(format!("set: {}", shell_quote(&format!("{name}={value}"))));
    }
    match &effects.container {
        Some(launch) => {
            let mut words: Vec<String> = launch.argv_prefix.iter().map(|argument| shell_quote(argument)).collect();
            match command {
                TaskCommand::Argv(argv) => words.extend(argv.iter().map(|argument| shell_quote(argument))),
                TaskCommand::Placeholder(text) => words.push((*text).to_owned()),
            }
            lines.push(format!("container: {}", words.join(" ")));
        }
        None => lines.push("container: none".to_owned()),
    }
}

fn push_ticket_requirement(lines: &mut Vec<String>, requirement: &TicketRequirement) {
    lines.push(format!(
        "ticket required: environment {} needs an approval ticket from an approver; the ticket must contain:",
        requirement.environment
    ));
    lines.push(format!("ticket user: {}", requirement.user));
    if requirement.aliases.is_empty() {
        lines.push(format!("ticket environment: {}", requirement.environment));
    } else {
        lines.push(format!(
            "ticket environment: {} (or an alias: {})",
            requirement.environment,
            requirement.aliases.join(", ")
        ));
    }
    match &requirement.job_name {
        Some(name) => lines.push(format!(
            "ticket job name: {name} (optional; a ticket without a job name is valid for every job name)"
        )),
        None => lines.push("ticket job name: none needed (a ticket without a job name is valid for every job name)".to_owned()),
    }
    lines.push(format!("ticket lifetime: at most {} hours (approvals.max_ttl_hours)", requirement.max_ttl_hours));
    lines.push(format!("ticket keys: {}", requirement.key_ids.join(", ")));

    let kid = match requirement.key_ids.as_slice() {
        [only] => shell_quote(only),
        _ => "KEY_ID".to_owned(),
    };
    let mut command = format!(
        "guardctl ticket issue --key PRIVATE_KEY_FILE --kid {kid} --user {} --env {} --ttl {}h",
        shell_quote(&requirement.user),
        shell_quote(&requirement.environment),
        requirement.max_ttl_hours
    );
    if let Some(name) = &requirement.job_name {
        command.push_str(&format!(" --job-name {}", shell_quote(name)));
    }
    lines.push(format!("ticket command: {command}"));
    lines.push("ticket use: pass it with --guard-ticket=TICKET or in HOS_APPROVAL_TICKET".to_owned());
}

/// Formats Unix seconds as RFC 3339 UTC, or the number itself when out of range.
fn format_unix(seconds: i64) -> String {
    match jiff::Timestamp::from_second(seconds) {
        Ok(timestamp) => timestamp.to_string(),
        Err(_) => format!("{seconds} (Unix seconds)"),
    }
}

/// Quotes one word for a POSIX shell: plain words stay as they are, anything
/// else goes in single quotes with each `'` written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&byte));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use policy_core::{ContainerLaunch, Effects, Reason, TicketSummary};

    use super::*;

    fn decision(outcome: Outcome, reasons: &[(&str, &str)]) -> Decision {
        Decision {
            outcome,
            environment: Some("prod".into()),
            risk: Some(10),
            mode: Mode::Enforce,
            reasons: reasons.iter().map(|(rule, message)| Reason { rule: (*rule).into(), message: (*message).into() }).collect(),
            effects: Effects::default(),
            correlation_id: "test-42".into(),
            ticket: None,
            policy_sha256: String::new(),
            deferred: Vec::new(),
            break_glass: false,
            waived: Vec::new(),
        }
    }

    fn reason(rule: &str, message: &str) -> Reason {
        Reason { rule: rule.into(), message: message.into() }
    }

    #[test]
    fn deny_lists_every_reason() {
        let lines = decision_lines(&decision(
            Outcome::Deny,
            &[("environment.access", "user `bob` is not allowed"), ("approval.ticket", "missing ticket")],
        ));
        assert_eq!(
            lines,
            [
                "spank-guard: denied: environment.access: user `bob` is not allowed",
                "spank-guard: denied: approval.ticket: missing ticket",
                "spank-guard: correlation id: test-42",
            ]
        );
    }

    #[test]
    fn would_deny_is_a_warning() {
        let lines = decision_lines(&decision(Outcome::WouldDeny, &[("environment.window", "outside `maintenance`")]));
        assert_eq!(
            lines,
            [
                "spank-guard: warning: audit mode, would deny: environment.window: outside `maintenance`",
                "spank-guard: correlation id: test-42",
            ]
        );
    }

    #[test]
    fn clean_allow_has_no_lines() {
        assert!(decision_lines(&decision(Outcome::Allow, &[])).is_empty());
    }

    fn requirement() -> TicketRequirement {
        TicketRequirement {
            user: "bob".into(),
            environment: "prod".into(),
            aliases: vec!["production".into()],
            job_name: None,
            max_ttl_hours: 24,
            key_ids: vec!["jenkins-2026".into()],
        }
    }

    #[test]
    fn explain_deny_with_ticket_requirement() {
        let denied = decision(
            Outcome::Deny,
            &[("environment.access", "user `bob` is not allowed"), ("approval.ticket", "missing ticket")],
        );
        let explanation = Explanation {
            decision: &denied,
            command: TaskCommand::Argv(vec!["true".into()]),
            node_checks: vec![("environment.node".into(), "the job must run on a node in `c[1-2]`".into())],
            controller_checks: vec![("break_glass.duration".into(), "the job's time limit must be at most 60 minutes".into())],
            ticket: Some(requirement()),
        };
        assert_eq!(
            explain_lines(&explanation),
            [
                "spank-guard explain: environment prod (risk 10, mode enforce)",
                "spank-guard explain: outcome: deny",
                "spank-guard explain: deny: environment.access: user `bob` is not allowed",
                "spank-guard explain: deny: approval.ticket: missing ticket",
                "spank-guard explain: checked on the compute node: environment.node: the job must run on a node in `c[1-2]`",
                "spank-guard explain: checked by the controller: break_glass.duration: the job's time limit must be at most 60 minutes",
                "spank-guard explain: ticket required: environment prod needs an approval ticket from an approver; \
                 the ticket must contain:",
                "spank-guard explain: ticket user: bob",
                "spank-guard explain: ticket environment: prod (or an alias: production)",
                "spank-guard explain: ticket job name: none needed (a ticket without a job name is valid for every job name)",
                "spank-guard explain: ticket lifetime: at most 24 hours (approvals.max_ttl_hours)",
                "spank-guard explain: ticket keys: jenkins-2026",
                "spank-guard explain: ticket command: guardctl ticket issue --key PRIVATE_KEY_FILE --kid jenkins-2026 \
                 --user bob --env prod --ttl 24h",
                "spank-guard explain: ticket use: pass it with --guard-ticket=TICKET or in HOS_APPROVAL_TICKET",
                "spank-guard explain: correlation id: test-42",
            ]
        );
    }

    #[test]
    fn explain_ticket_job_name_and_several_keys() {
        let denied = decision(Outcome::Deny, &[("approval.ticket", "missing ticket")]);
        let mut ticket = requirement();
        ticket.aliases.clear();
        ticket.job_name = Some("nightly build".into());
        ticket.key_ids = vec!["a".into(), "b".into()];
        let explanation =
            Explanation { decision: &denied, command: TaskCommand::Argv(Vec::new()), node_checks: Vec::new(), controller_checks: Vec::new(), ticket: Some(ticket) };
        let lines = explain_lines(&explanation);
        let ticket_lines: Vec<&str> = lines.iter().map(String::as_str).filter(|line| line.contains(": ticket ")).collect();
        assert_eq!(
            ticket_lines[2..6],
            [
                "spank-guard explain: ticket environment: prod",
                "spank-guard explain: ticket job name: nightly build (optional; a ticket without a job name is valid \
                 for every job name)",
                "spank-guard explain: ticket lifetime: at most 24 hours (approvals.max_ttl_hours)",
                "spank-guard explain: ticket keys: a, b",
            ]
        );
        assert_eq!(
            ticket_lines[6],
            "spank-guard explain: ticket command: guardctl ticket issue --key PRIVATE_KEY_FILE --kid KEY_ID --user bob \
             --env prod --ttl 24h --job-name 'nightly build'"
        );
    }

    fn allowed_with_container() -> Decision {
        let mut allowed = decision(Outcome::Allow, &[]);
        allowed.effects = Effects {
            unset: vec!["APPTAINER_BIND".into(), "LD_PRELOAD".into()],
            set: BTreeMap::from([("HOS_ENV".into(), "prod".into()), ("HOS_NOTE".into(), "two words".into())]),
            container: Some(ContainerLaunch {
                argv_prefix: vec!["/usr/bin/apptainer".into(), "exec".into(), "/opt/images/a b.sif".into()],
                image: "/opt/images/a b.sif".into(),
                image_sha256: None,
                binds: Vec::new(),
            }),
        };
        allowed.ticket = Some(TicketSummary { kid: "jenkins-2026".into(), exp: 1_780_322_400 });
        allowed
    }

    #[test]
    fn explain_allow_shows_effects_and_ticket() {
        let allowed = allowed_with_container();
        let explanation = Explanation {
            decision: &allowed,
            command: TaskCommand::Argv(vec!["sh".into(), "-c".into(), "echo it's $HOME".into()]),
            node_checks: Vec::new(),
            controller_checks: Vec::new(),
            ticket: None,
        };
        assert_eq!(
            explain_lines(&explanation),
            [
                "spank-guard explain: environment prod (risk 10, mode enforce)",
                "spank-guard explain: outcome: allow",
                "spank-guard explain: unset: APPTAINER_BIND LD_PRELOAD",
                "spank-guard explain: set: HOS_ENV=prod",
                "spank-guard explain: set: 'HOS_NOTE=two words'",
                "spank-guard explain: container: /usr/bin/apptainer exec '/opt/images/a b.sif' sh -c 'echo it'\\''s $HOME'",
                "spank-guard explain: ticket: valid, key jenkins-2026, expires 2026-06-01T14:00:00Z",
                "spank-guard explain: correlation id: test-42",
            ]
        );
    }

    #[test]
    fn explain_batch_placeholder_is_not_quoted() {
        let allowed = allowed_with_container();
        let explanation = Explanation {
            decision: &allowed,
            command: TaskCommand::Placeholder("<batch script>"),
            node_checks: Vec::new(),
            controller_checks: Vec::new(),
            ticket: None,
        };
        let lines = explain_lines(&explanation);
        assert!(lines.contains(&"spank-guard explain: container: /usr/bin/apptainer exec '/opt/images/a b.sif' <batch script>".to_owned()));
    }

    #[test]
    fn explain_would_deny_and_unknown_environment() {
        let mut audited = decision(Outcome::WouldDeny, &[("environment.window", "outside `maintenance`")]);
        audited.mode = Mode::Audit;
        let explanation =
            Explanation { decision: &audited, command: TaskCommand::Argv(Vec::new()), node_checks: Vec::new(), controller_checks: Vec::new(), ticket: None };
        assert_eq!(
            explain_lines(&explanation),
            [
                "spank-guard explain: environment prod (risk 10, mode audit)",
                "spank-guard explain: outcome: would_deny",
                "spank-guard explain: would deny: environment.window: outside `maintenance`",
                "spank-guard explain: unset: none",
                "spank-guard explain: container: none",
                "spank-guard explain: correlation id: test-42",
            ]
        );

        let mut unknown = decision(Outcome::Deny, &[("environment.unknown", "no environment `qa`")]);
        unknown.environment = None;
        unknown.risk = None;
        let explanation =
            Explanation { decision: &unknown, command: TaskCommand::Argv(Vec::new()), node_checks: Vec::new(), controller_checks: Vec::new(), ticket: None };
        assert_eq!(explain_lines(&explanation)[0], "spank-guard explain: environment unknown (mode enforce)");
    }

    #[test]
    fn shell_quote_cases() {
        assert_eq!(shell_quote("/mnt/data:/data:ro"), "/mnt/data:/data:ro");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn break_glass_warns_loudly() {
        let mut broken = decision(Outcome::Allow, &[]);
        broken.break_glass = true;
        broken.waived = vec![reason("environment.window", "outside `maintenance`"), reason("approval.ticket", "no ticket")];
        assert_eq!(
            break_glass_lines(&broken, "alice", Some("INC-42 storage outage")),
            [
                "spank-guard: WARNING: BREAK GLASS by user `alice` in environment `prod`: INC-42 storage outage",
                "spank-guard: WARNING: BREAK GLASS waives environment.window: outside `maintenance`",
                "spank-guard: WARNING: BREAK GLASS waives approval.ticket: no ticket",
                "spank-guard: WARNING: BREAK GLASS: every step that runs this way is recorded in the audit log and reviewed by the administrators",
            ]
        );
        assert_eq!(decision_lines(&broken), ["spank-guard: correlation id: test-42"]);
    }

    #[test]
    fn break_glass_denied_by_other_rules() {
        let mut denied = decision(Outcome::Deny, &[("container.image", "image `x` is not approved")]);
        denied.waived = vec![reason("environment.window", "outside `maintenance`")];
        assert_eq!(
            break_glass_lines(&denied, "alice", Some("INC-42 storage outage")),
            ["spank-guard: break glass would waive environment.window, but the other rules still deny the request"]
        );
    }

    #[test]
    fn explain_lists_waived_rules() {
        let mut broken = decision(Outcome::Allow, &[]);
        broken.break_glass = true;
        broken.waived = vec![reason("approval.ticket", "no ticket")];
        let explanation =
            Explanation { decision: &broken, command: TaskCommand::Argv(Vec::new()), node_checks: Vec::new(), controller_checks: Vec::new(), ticket: None };
        let lines = explain_lines(&explanation);
        assert_eq!(
            lines[..4],
            [
                "spank-guard explain: environment prod (risk 10, mode enforce)",
                "spank-guard explain: outcome: allow",
                "spank-guard explain: break glass: yes, the job runs although window or approval rules fail; the use is audited",
                "spank-guard explain: waived by break glass: approval.ticket: no ticket",
            ]
        );
    }

    #[test]
    fn no_break_glass_no_lines() {
        assert!(break_glass_lines(&decision(Outcome::Allow, &[]), "alice", None).is_empty());
        assert_eq!(
            break_glass_lines(&decision(Outcome::Allow, &[]), "alice", Some("INC-42 storage outage")),
            ["spank-guard: break glass not needed: the window and approval rules pass without it; remove --guard-break-glass"]
        );
        let rejected = decision(Outcome::Deny, &[("break_glass.access", "user `bob` may not break glass")]);
        assert!(break_glass_lines(&rejected, "bob", Some("INC-42 storage outage")).is_empty());
    }
}
