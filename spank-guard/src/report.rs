//! Lines shown to the user for denials, warnings and errors.
//!
//! Every line starts with `spank-guard: `. The shapes are part of the
//! user interface (scripts grep for them):
//!
//! ```text
//! spank-guard: denied: <rule>: <message>
//! spank-guard: warning: audit mode, would deny: <rule>: <message>
//! spank-guard: correlation id: <id>
//! ```

use policy_core::rules::POLICY_INVALID;
use policy_core::{Decision, LoadError, Outcome};

use crate::logging::PREFIX;

/// Returns the lines that explain a decision to the user: one per failing
/// rule, then the correlation id. An allow without reasons has no lines.
pub fn decision_lines(decision: &Decision) -> Vec<String> {
    let label = match decision.outcome {
        Outcome::Allow if decision.reasons.is_empty() => return Vec::new(),
        Outcome::Deny => "denied",
        Outcome::WouldDeny | Outcome::Allow => "warning: audit mode, would deny",
    };
    let mut lines: Vec<String> =
        decision.reasons.iter().map(|reason| format!("{PREFIX}{label}: {}: {}", reason.rule, reason.message)).collect();
    lines.push(correlation_line(&decision.correlation_id));
    lines
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
        }
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
}
