//! Rule `env.denied` (the deny list) and the `env.set` effects.

use crate::decision::{Effects, Reason};
use crate::policy::model::Environment;
use crate::policy::{OnDenied, Policy};
use crate::request::Request;
use crate::rules;

use super::reason;

/// Checks every job environment variable name against the deny list: with
/// `scrub` the names go to `effects.unset`, with `deny` each is a reason.
/// Messages name the variable, never its value.
pub(super) fn deny(policy: &Policy, request: &Request, reasons: &mut Vec<Reason>, effects: &mut Effects) {
    for name in request.env.keys() {
        if !policy.deny.denies(name) {
            continue;
        }
        match policy.on_denied {
            OnDenied::Scrub => effects.unset.push(name.clone()),
            OnDenied::Deny => reasons.push(reason(
                rules::ENV_DENIED,
                format!("variable `{name}` is on the policy's deny list; unset it before submitting the job"),
            )),
        }
    }
}

/// Adds the environment's `env.set` variables (global merged with the
/// environment's own) with their placeholders substituted.
pub(super) fn set(environment: &Environment, request: &Request, correlation_id: &str, effects: &mut Effects) {
    for (name, template) in &environment.set {
        let value = template.render(&environment.name, environment.risk, correlation_id, request.job_id);
        effects.set.insert(name.clone(), value);
    }
}
