//! Break glass: a permitted user runs a job although window or approval
//! rules fail. The rules `break_glass.access`, `break_glass.reason` and
//! `break_glass.duration` check the request. When they pass, the failing
//! rules listed in [`rules::WAIVABLE_BY_BREAK_GLASS`] move from the reasons
//! to the waived list.

use jiff::Timestamp;

use crate::decision::Reason;
use crate::policy::model::Environment;
use crate::request::{Request, UNLIMITED_TIME_LIMIT};
use crate::rules;

use super::{is_listed, listed_names, reason, visible_char_count};

/// Names listed in a message before "and N more".
const LIST_LIMIT: usize = 8;
/// Maximum length of a break-glass reason in characters. Every audit record
/// of the job stores the reason, so it stays a short incident description.
pub const MAX_REASON_CHARS: usize = 1024;

/// Returns the break-glass reason of a request, or `None` when the user did
/// not ask to break glass. An empty `--guard-break-glass=` counts as asked,
/// so that it fails `break_glass.reason` instead of being ignored.
pub(crate) fn requested(request: &Request) -> Option<&str> {
    request.options.break_glass.as_deref()
}

/// Checks a break-glass request. Returns true when the user may break glass:
/// then the caller waives the window and approval rules.
pub(super) fn check(environment: &Environment, request: &Request, now: Timestamp, reasons: &mut Vec<Reason>) -> bool {
    let Some(given) = requested(request) else {
        return false;
    };
    let failures_before = reasons.len();

    let Some(permission) = &environment.break_glass else {
        reasons.push(reason(
            rules::BREAK_GLASS_ACCESS,
            format!(
                "environment `{}` does not allow break glass; remove `--guard-break-glass` \
                 and meet the window and approval rules",
                environment.name
            ),
        ));
        return false;
    };

    if !is_listed(&permission.users, &permission.groups, request) {
        reasons.push(reason(
            rules::BREAK_GLASS_ACCESS,
            format!(
                "user `{}` may not break glass in environment `{}`; {}",
                request.user,
                environment.name,
                listed_names("permitted", &permission.users, &permission.groups, LIST_LIMIT)
            ),
        ));
    }
    if let Some(expires) = permission.expires.filter(|&expires| now >= expires) {
        reasons.push(reason(
            rules::BREAK_GLASS_ACCESS,
            format!(
                "break glass in environment `{}` expired at {}; ask the administrators to renew `break_glass.expires`",
                environment.name,
                expires.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
        ));
    }

    let count = visible_char_count(given);
    let required = permission.reason_min_chars as usize;
    let length = given.chars().count();
    if length > MAX_REASON_CHARS {
        reasons.push(reason(
            rules::BREAK_GLASS_REASON,
            format!(
                "a break-glass reason may have at most {MAX_REASON_CHARS} characters and has {length}; \
                 name the incident and put the details in the incident ticket"
            ),
        ));
    } else if count < required {
        reasons.push(reason(
            rules::BREAK_GLASS_REASON,
            format!(
                "a break-glass reason needs at least {required} non-blank characters and has {count}; \
                 describe the incident in `--guard-break-glass=REASON`"
            ),
        ));
    }

    if let Some(minutes) = request.time_limit_minutes {
        if minutes > permission.max_minutes {
            let requested = if minutes == UNLIMITED_TIME_LIMIT {
                "no time limit (`UNLIMITED`)".to_owned()
            } else {
                format!("a time limit of {minutes} minutes")
            };
            reasons.push(reason(
                rules::BREAK_GLASS_DURATION,
                format!(
                    "job has {requested} but break glass in environment `{}` allows at most {} minutes; \
                     request `--time={}` or less",
                    environment.name, permission.max_minutes, permission.max_minutes
                ),
            ));
        }
    }

    reasons.len() == failures_before
}

/// Moves every waivable reason from `reasons` to the returned list, keeping
/// the order of both.
pub(super) fn waive(reasons: &mut Vec<Reason>) -> Vec<Reason> {
    let (waived, kept): (Vec<Reason>, Vec<Reason>) = std::mem::take(reasons)
        .into_iter()
        .partition(|reason| rules::WAIVABLE_BY_BREAK_GLASS.contains(&reason.rule.as_str()));
    *reasons = kept;
    waived
}
