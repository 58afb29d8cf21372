//! Rules `approval.justification` and `approval.ticket`.

use jiff::Timestamp;

use crate::decision::{Reason, TicketSummary};
use crate::policy::model::Environment;
use crate::policy::Policy;
use crate::request::Request;
use crate::rules;
use crate::ticket;

use super::{option_or_variable, reason, visible_char_count, JUSTIFICATION_VARIABLE, TICKET_VARIABLE};

/// Checks the approval rules; returns the summary of a valid ticket.
///
/// A ticket is only checked where the environment requires one: CI systems
/// often export `HOS_APPROVAL_TICKET` for every job, and a prod ticket must not
/// make a dev job fail.
pub(super) fn check(
    policy: &Policy,
    environment: &Environment,
    request: &Request,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
) -> Option<TicketSummary> {
    let required = environment.justification_min_chars;
    if required > 0 {
        let justification = justification(request);
        let count = justification.map_or(0, visible_char_count);
        if count < required as usize {
            let found = match justification {
                None => "no justification was given".to_owned(),
                Some(_) => format!("the justification has {count} non-blank characters"),
            };
            reasons.push(reason(
                rules::APPROVAL_JUSTIFICATION,
                format!(
                    "environment `{}` requires a justification of at least {required} non-blank characters and {found}; \
                     pass `--guard-justification=TEXT` or set `{JUSTIFICATION_VARIABLE}`",
                    environment.name
                ),
            ));
        }
    }

    if !environment.ticket_required {
        return None;
    }
    let Some(token) = option_or_variable(request.options.ticket.as_deref(), request, TICKET_VARIABLE) else {
        reasons.push(reason(
            rules::APPROVAL_TICKET,
            format!(
                "environment `{}` requires an approval ticket and none was given; \
                 pass `--guard-ticket=TICKET` or set `{TICKET_VARIABLE}` (an approver issues one with `guardctl ticket issue`)",
                environment.name
            ),
        ));
        return None;
    };
    let verified = ticket::verify(token, policy.approval_keys(), policy.max_ttl_hours(), now.as_second());
    let claims = match verified {
        Ok(claims) => claims,
        Err(error) => {
            reasons.push(reason(rules::APPROVAL_TICKET, error.to_string()));
            return None;
        }
    };
    let mut names: Vec<&str> = Vec::with_capacity(environment.aliases.len() + 1);
    names.push(environment.name.as_str());
    names.extend(environment.aliases.iter().map(String::as_str));
    if let Err(error) = ticket::check_binding(&claims, &request.user, &names, request.job_name.as_deref()) {
        reasons.push(reason(rules::APPROVAL_TICKET, error.to_string()));
        return None;
    }
    Some(TicketSummary { kid: claims.kid, exp: claims.exp })
}

/// Returns `--guard-justification`, else `HOS_JUSTIFICATION`.
pub(crate) fn justification(request: &Request) -> Option<&str> {
    option_or_variable(request.options.justification.as_deref(), request, JUSTIFICATION_VARIABLE)
}
