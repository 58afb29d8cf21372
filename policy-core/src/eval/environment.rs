//! Rules `environment.unknown`, `environment.access`, `environment.window` and
//! `environment.node`.

use jiff::Timestamp;

use crate::decision::Reason;
use crate::policy::model::Environment;
use crate::policy::Policy;
use crate::request::{Context, Request, UNLIMITED_TIME_LIMIT};
use crate::rules;

use super::{is_listed, listed_names, quoted_names, reason, EnvironmentSource, RequestedEnvironment};

/// Names listed in a message before "and N more".
const LIST_LIMIT: usize = 8;

pub(super) fn unknown(policy: &Policy, requested: &RequestedEnvironment<'_>) -> Reason {
    let name = requested.name.unwrap_or(policy.default_environment());
    let source = match requested.source {
        EnvironmentSource::Option => "`--guard-env`",
        EnvironmentSource::Variable => "`HOS_ENV`",
        EnvironmentSource::Default => "`default_environment`",
    };
    let aliases: Vec<&str> =
        policy.environments.iter().flat_map(|environment| environment.aliases.iter().map(String::as_str)).collect();
    let mut message = format!(
        "environment `{name}` (from {source}) is not defined; use one of {}",
        quoted_names(policy.environments.iter().map(|environment| environment.name.as_str()), LIST_LIMIT)
    );
    if !aliases.is_empty() {
        message.push_str(&format!(" or an alias ({})", quoted_names(aliases.into_iter(), LIST_LIMIT)));
    }
    reason(rules::ENVIRONMENT_UNKNOWN, message)
}

pub(super) fn check(
    policy: &Policy,
    environment: &Environment,
    request: &Request,
    now: Timestamp,
    reasons: &mut Vec<Reason>,
    deferred: &mut Vec<String>,
) {
    if let Some(allow) = &environment.allow {
        if !is_listed(&allow.users, &allow.groups, request) {
            reasons.push(reason(
                rules::ENVIRONMENT_ACCESS,
                format!(
                    "user `{}` is not allowed in environment `{}`; {}",
                    request.user,
                    environment.name,
                    listed_names("allowed", &allow.users, &allow.groups, LIST_LIMIT)
                ),
            ));
        }
    }

    if !environment.windows.is_empty() {
        let windows = environment.windows.iter().filter_map(|&position| policy.windows.get(position));
        let open = windows.clone().any(|named| named.window.contains(now));
        if !open {
            let described: Vec<String> =
                windows.clone().map(|named| format!("`{}` ({})", named.name, named.description)).collect();
            let next = windows.filter_map(|named| named.window.next_open(now)).min();
            let hint = match next {
                Some(next) => format!("; next opening {}", next.strftime("%Y-%m-%dT%H:%M:%SZ")),
                None => String::new(),
            };
            reasons.push(reason(
                rules::ENVIRONMENT_WINDOW,
                format!(
                    "environment `{}` is outside its time windows at {}: {}{hint}",
                    environment.name,
                    now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    described.join(", ")
                ),
            ));
        } else if let Some(minutes) = request.time_limit_minutes {
            check_time_limit(policy, environment, minutes, now, reasons);
        }
    }

    // Before a job has a node (at submit) the node rule cannot be decided; the
    // node checks it again when the step starts.
    if environment.nodes.is_some() && request.context == Context::Controller {
        deferred.push(rules::ENVIRONMENT_NODE.to_owned());
        return;
    }
    if let (Some(patterns), Some(node)) = (&environment.nodes, request.node.as_deref()) {
        if !patterns.iter().any(|(_, pattern)| pattern.matches(node)) {
            reasons.push(reason(
                rules::ENVIRONMENT_NODE,
                format!(
                    "node `{node}` is not allowed for environment `{}`; allowed nodes: {}",
                    environment.name,
                    quoted_names(patterns.iter().map(|(text, _)| text.as_str()), LIST_LIMIT)
                ),
            ));
        }
    }
}

/// Denies a job whose time limit would run past the end of the open window
/// that closes last. Windows open for the next 8 days or more have no known
/// end, so they accept any limit.
fn check_time_limit(policy: &Policy, environment: &Environment, minutes: u32, now: Timestamp, reasons: &mut Vec<Reason>) {
    let mut latest: Option<(Timestamp, &str)> = None;
    for named in environment.windows.iter().filter_map(|&position| policy.windows.get(position)) {
        if !named.window.contains(now) {
            continue;
        }
        let Some(end) = named.window.current_end(now) else {
            // This window stays open past the horizon: any limit fits.
            return;
        };
        if latest.is_none_or(|(latest_end, _)| end > latest_end) {
            latest = Some((end, named.name.as_str()));
        }
    }
    let Some((end, window_name)) = latest else {
        return;
    };

    let remaining_minutes = (end.as_second() - now.as_second()).max(0) / 60;
    let end_text = end.strftime("%Y-%m-%dT%H:%M:%SZ");
    let requested = if minutes == UNLIMITED_TIME_LIMIT {
        "no time limit (`UNLIMITED`)".to_owned()
    } else if i64::from(minutes) > remaining_minutes {
        format!("a time limit of {minutes} minutes")
    } else {
        return;
    };
    // Slurm reads `--time=0` as no limit, so a window in its last minute
    // gets no `--time` suggestion.
    let hint = if remaining_minutes == 0 {
        "submit when the window opens again".to_owned()
    } else {
        format!("request `--time={remaining_minutes}` or less")
    };
    reasons.push(reason(
        rules::ENVIRONMENT_WINDOW,
        format!(
            "job has {requested} but window `{window_name}` of environment `{}` ends at {end_text}, \
             {remaining_minutes} minutes from now; {hint}",
            environment.name
        ),
    ));
}
