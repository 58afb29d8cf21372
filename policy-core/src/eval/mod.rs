//! Evaluation of a request against a policy. Every rule family runs (a failing
//! rule does not stop the others) so that the user sees every problem at once.
//! Rule families live in submodules: `environment` (unknown, access, window,
//! node), `approval` (justification, ticket), `container` (required, image,
//! bind, flag, runtime), `variables` (deny list and `env.set`) and
//! `break_glass`.

mod approval;
pub(crate) use approval::justification;
mod break_glass;
pub(crate) use break_glass::requested as break_glass_reason;
pub use break_glass::MAX_REASON_CHARS as MAX_BREAK_GLASS_REASON_CHARS;
pub use container::{BATCH_STEP_ID, BIND_VARIABLES};
pub(crate) mod container;
mod environment;
mod variables;

use std::collections::HashSet;

use jiff::Timestamp;

use crate::decision::{Decision, Effects, Mode, Outcome, Reason};
use crate::policy::Policy;
use crate::request::Request;

/// Name of the job environment variable that carries the correlation id.
pub const CORRELATION_ID_VARIABLE: &str = "HOS_CORRELATION_ID";
/// Job environment variable naming the environment when `--guard-env` is not given.
pub const ENVIRONMENT_VARIABLE: &str = "HOS_ENV";
/// Job environment variable holding the justification when `--guard-justification` is not given.
pub const JUSTIFICATION_VARIABLE: &str = "HOS_JUSTIFICATION";
/// Job environment variable holding the ticket when `--guard-ticket` is not given.
pub const TICKET_VARIABLE: &str = "HOS_APPROVAL_TICKET";

/// Maximum length of a correlation id taken from the job environment.
const MAX_CORRELATION_ID_LEN: usize = 128;

/// Evaluates `request` against `policy` at time `now` and returns every
/// failing rule. It does not panic: no indexing or unwrap, and the property
/// tests feed it arbitrary requests. A deny carries empty effects; `would_deny` (audit
/// mode) carries the effects of the rules that passed.
pub fn evaluate(policy: &Policy, request: &Request, now: Timestamp) -> Decision {
    let correlation_id = correlation_id(request, now);
    let mut reasons: Vec<Reason> = Vec::new();
    let mut effects = Effects::default();
    let mut ticket = None;
    let mut mode = policy.mode();
    let mut resolved = None;
    let mut deferred: Vec<String> = Vec::new();
    let mut break_glass_permitted = false;
    let mut waived: Vec<Reason> = Vec::new();

    let requested = requested_environment(request);
    let found = match requested.name {
        Some(name) => policy.find_environment(name),
        None => policy.find_environment(policy.default_environment()),
    };
    match found {
        None => reasons.push(environment::unknown(policy, &requested)),
        Some((_, environment)) => {
            mode = environment.mode.unwrap_or(policy.mode());
            resolved = Some((environment.name.clone(), environment.risk));

            environment::check(policy, environment, request, now, &mut reasons, &mut deferred);
            ticket = approval::check(policy, environment, request, now, &mut reasons);
            container::check(policy, environment, request, &mut reasons, &mut effects, &mut deferred);
            variables::set(environment, request, &correlation_id, &mut effects);
            // Last, because it waives the window and approval rules found above.
            if break_glass::check(environment, request, now, &mut reasons) {
                break_glass_permitted = true;
                waived = break_glass::waive(&mut reasons);
            }
        }
    }
    variables::deny(policy, request, &mut reasons, &mut effects);
    effects.unset.sort_unstable();
    effects.unset.dedup();

    let outcome = match (reasons.is_empty(), mode) {
        // Every rule passed.
        (true, _) => Outcome::Allow,
        // A rule failed and the policy enforces: nothing of the request applies.
        (false, Mode::Enforce) => Outcome::Deny,
        // A rule failed in audit mode: the step runs with the passing rules' effects.
        (false, Mode::Audit) => Outcome::WouldDeny,
    };
    if outcome == Outcome::Deny {
        effects = Effects::default();
    }
    // Glass is broken only when it changed the outcome: a rule was waived and
    // the job runs. A permitted request that other rules deny keeps its
    // waived list, so the user sees what remains.
    let break_glass = break_glass_permitted && !waived.is_empty() && outcome != Outcome::Deny;

    let (environment, risk) = match resolved {
        Some((name, risk)) => (Some(name), Some(risk)),
        None => (None, None),
    };
    Decision {
        outcome,
        environment,
        risk,
        mode,
        reasons,
        effects,
        correlation_id,
        ticket,
        policy_sha256: policy.sha256().to_owned(),
        deferred,
        break_glass,
        waived,
    }
}

/// Source of the requested environment name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvironmentSource {
    Option,
    Variable,
    Default,
}

/// Environment name of a request; `name` is `None` for the default.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestedEnvironment<'a> {
    pub name: Option<&'a str>,
    pub source: EnvironmentSource,
}

/// Picks `--guard-env`, else `HOS_ENV`, else the default environment. Empty
/// values count as not given.
pub(crate) fn requested_environment(request: &Request) -> RequestedEnvironment<'_> {
    if let Some(name) = request.options.env.as_deref().filter(|name| !name.is_empty()) {
        return RequestedEnvironment { name: Some(name), source: EnvironmentSource::Option };
    }
    if let Some(name) = request.env.get(ENVIRONMENT_VARIABLE).map(String::as_str).filter(|name| !name.is_empty()) {
        return RequestedEnvironment { name: Some(name), source: EnvironmentSource::Variable };
    }
    RequestedEnvironment { name: None, source: EnvironmentSource::Default }
}

/// Returns the correlation id of a request: `HOS_CORRELATION_ID` from the job
/// environment when it is 1 to 128 characters of `A-Z a-z 0-9 . _ : -`, else
/// `<cluster>-<job id>`, and before a job id exists (at submit)
/// `<cluster>-submit-<uid>-<unix seconds>`. An empty cluster name is written
/// as `cluster`.
pub fn correlation_id(request: &Request, now: Timestamp) -> String {
    if let Some(given) = request.env.get(CORRELATION_ID_VARIABLE) {
        if is_valid_correlation_id(given) {
            return given.clone();
        }
    }
    let cluster = if request.cluster.is_empty() { "cluster" } else { request.cluster.as_str() };
    match request.job_id {
        Some(job_id) => format!("{cluster}-{job_id}"),
        None => format!("{cluster}-submit-{}-{}", request.uid, now.as_second()),
    }
}

/// Returns a new random UUID version 4 in lowercase hex
/// (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`), for the submit side to put in
/// `HOS_CORRELATION_ID` when the user gave none. The bytes come from the
/// kernel's `getrandom(2)`; its error is returned as text.
pub fn new_correlation_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|error| format!("cannot read random bytes for a correlation id: {error}"))?;
    // Version 4 in the high nibble of byte 6, RFC 4122 variant (10xx) in byte 8.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;

    let mut text = String::with_capacity(36);
    for (position, byte) in bytes.iter().enumerate() {
        if matches!(position, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    Ok(text)
}

/// Returns true for 1 to 128 characters of `A-Z a-z 0-9 . _ : -`.
pub fn is_valid_correlation_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_CORRELATION_ID_LEN
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'))
}

/// Returns an option value, else the job environment variable, ignoring empty values.
pub(crate) fn option_or_variable<'a>(option: Option<&'a str>, request: &'a Request, variable: &str) -> Option<&'a str> {
    option
        .filter(|value| !value.is_empty())
        .or_else(|| request.env.get(variable).map(String::as_str).filter(|value| !value.is_empty()))
}

/// Formats up to `limit` names as `` `a`, `b` `` and adds how many were left out.
pub(crate) fn quoted_names<'a>(names: impl Iterator<Item = &'a str>, limit: usize) -> String {
    let mut out = String::new();
    let mut count = 0usize;
    for name in names {
        if count < limit {
            if count > 0 {
                out.push_str(", ");
            }
            out.push('`');
            out.push_str(name);
            out.push('`');
        }
        count += 1;
    }
    if count == 0 {
        return "(none)".to_owned();
    }
    if count > limit {
        out.push_str(&format!(" and {} more", count - limit));
    }
    out
}

/// Counts the visible characters of `text`. Whitespace, control characters
/// and invisible format characters (zero-width spaces and joiners,
/// bidirectional marks, the soft hyphen, the byte order mark) do not count,
/// so that they cannot fill a minimum length.
pub(crate) fn visible_char_count(text: &str) -> usize {
    text.chars()
        .filter(|&character| {
            !character.is_whitespace()
                && !character.is_control()
                && !matches!(
                    character,
                    '\u{00AD}'
                        | '\u{180E}'
                        | '\u{200B}'..='\u{200F}'
                        | '\u{202A}'..='\u{202E}'
                        | '\u{2060}'..='\u{2064}'
                        | '\u{2066}'..='\u{2069}'
                        | '\u{FEFF}'
                )
        })
        .count()
}

/// Returns true when the request's user is in `users` or one of the user's
/// groups is in `groups`.
pub(crate) fn is_listed(users: &HashSet<String>, groups: &HashSet<String>, request: &Request) -> bool {
    users.contains(&request.user) || request.groups.iter().any(|group| groups.contains(group))
}

/// Formats `users` and `groups`, each sorted, as
/// ``{noun} users: `a`, `b`; {noun} groups: `c` ``.
pub(crate) fn listed_names(noun: &str, users: &HashSet<String>, groups: &HashSet<String>, limit: usize) -> String {
    let mut sorted_users: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut sorted_groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    sorted_users.sort_unstable();
    sorted_groups.sort_unstable();
    format!(
        "{noun} users: {}; {noun} groups: {}",
        quoted_names(sorted_users.into_iter(), limit),
        quoted_names(sorted_groups.into_iter(), limit)
    )
}

pub(crate) fn reason(rule: &str, message: String) -> Reason {
    Reason { rule: rule.to_owned(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_correlation_id_is_uuid_v4() {
        let id = new_correlation_id().unwrap();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.iter().map(|group| group.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(id.bytes().all(|byte| byte == b'-' || byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)), "{id}");
        assert_eq!(&id[14..15], "4", "version nibble of {id}");
        assert!(["8", "9", "a", "b"].contains(&&id[19..20]), "variant nibble of {id}");
        assert!(is_valid_correlation_id(&id));
    }

    #[test]
    fn new_correlation_ids_differ() {
        assert_ne!(new_correlation_id().unwrap(), new_correlation_id().unwrap());
    }
}
