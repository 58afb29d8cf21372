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

use policy_core::rules::POLICY_INVALID;
use policy_core::{Decision, LoadError, Outcome};

use crate::logging::PREFIX;

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
/// says that the waived rules did not help. `reason` is the value of
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
        lines.push(format!("{PREFIX}WARNING: BREAK GLASS is recorded in the audit log and reviewed by the administrators"));
        return lines;
    }
    if decision.waived.is_empty() {
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

#[cfg(test)]
mod tests {
    use policy_core::{Effects, Mode, Reason};

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
                "spank-guard: WARNING: BREAK GLASS is recorded in the audit log and reviewed by the administrators",
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
    fn no_break_glass_no_lines() {
        assert!(break_glass_lines(&decision(Outcome::Allow, &[]), "alice", None).is_empty());
        let refused = decision(Outcome::Deny, &[("break_glass.access", "user `bob` may not break glass")]);
        assert!(break_glass_lines(&refused, "bob", Some("INC-42 storage outage")).is_empty());
    }
}
