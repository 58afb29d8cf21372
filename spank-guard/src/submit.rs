//! The early check in srun, sbatch and salloc (local and allocator contexts).
//!
//! This check runs in the user's own process, so it is advisory: it gives
//! the user the decision before anything is submitted, and the compute node
//! enforces the same policy again. A deny makes the command exit non-zero
//! without submitting the job.
//!
//! With `--guard-explain` the check prints the whole decision on standard
//! output and ends the process, so nothing is submitted (see [`print_explanation`]).

use std::ffi::{c_char, c_int, CStr};
use std::io::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

use policy_core::{Context as RequestContext, Outcome, Policy};

use crate::boundary::Status;
use crate::config::{Config, OnPolicyError};
use crate::facts::{self, Facts};
use crate::loader::{self, LoadFailure};
use crate::logging::PREFIX;
use policy_core::rules::POLICY_INVALID;
use crate::report::{Explanation, TaskCommand, TicketRequirement};
use crate::spank::{self, Context, LogLevel, Spank};
use crate::{identity, options, report};

static CONFIG: Mutex<Option<Config>> = Mutex::new(None);

fn config() -> MutexGuard<'static, Option<Config>> {
    // A single assignment is the only update, so a poisoned lock is consistent.
    CONFIG.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `--guard-explain` value as given: `None` without the option, an
/// empty string for the option without a value.
static EXPLAIN: Mutex<Option<String>> = Mutex::new(None);

fn explain_value() -> MutexGuard<'static, Option<String>> {
    // A single assignment is the only update, so a poisoned lock is consistent.
    EXPLAIN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Output format of `--guard-explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExplainFormat {
    /// `--guard-explain` or `--guard-explain=text`: the lines of [`report::explain_lines`].
    Text,
    /// `--guard-explain=json`: the decision as pretty JSON.
    Json,
}

/// Exit codes of `--guard-explain`.
const EXIT_WOULD_RUN: i32 = 0;
const EXIT_WOULD_BE_DENIED: i32 = 1;
const EXIT_NO_DECISION: i32 = 2;

/// Parses the value of `--guard-explain`, ignoring case; an empty value is
/// the text report. The error names the value and the accepted formats.
fn parse_explain_format(value: &str) -> Result<ExplainFormat, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "text" => Ok(ExplainFormat::Text),
        "json" => Ok(ExplainFormat::Json),
        other => Err(format!(
            "invalid --guard-explain format `{other}`; use --guard-explain or --guard-explain=text for the report, \
             or --guard-explain=json for the decision as JSON"
        )),
    }
}

/// Option callback of `--guard-explain`.
///
/// srun, sbatch and salloc store the value for [`check`]. slurmstepd
/// (`remote` set) ignores it: no job is submitted with the option, and a
/// value there can only come from a hand-made
/// `_SLURM_SPANK_OPTION_spank_guard_guard_explain` in the job environment,
/// which must not fail the step.
///
/// # Safety
///
/// `optarg` must be NULL or a NUL-terminated string, as Slurm passes it.
pub unsafe extern "C" fn explain_option(_val: c_int, optarg: *const c_char, remote: c_int) -> c_int {
    crate::boundary::guard_option(|| {
        if remote != 0 {
            return Ok(());
        }
        let value = if optarg.is_null() {
            String::new()
        } else {
            // SAFETY: Slurm passes a NUL-terminated argument that lives for the call.
            unsafe { CStr::from_ptr(optarg) }.to_string_lossy().into_owned()
        };
        *explain_value() = Some(value);
        Ok(())
    })
}

/// Local or allocator `init`: parses the plugstack arguments and registers
/// the options (Slurm 22.05 ignores a static option table in sbatch and
/// salloc, so registration is always dynamic).
pub fn init(spank: &Spank, args: &[String]) -> Status {
    let parsed = match Config::parse(args) {
        Ok(parsed) => parsed,
        Err(error) => {
            spank::log(LogLevel::Error, &format!("{PREFIX}{error}"));
            return Err(());
        }
    };
    *config() = Some(parsed);

    if let Err(error) = options::register_all(spank) {
        spank::log(LogLevel::Error, &format!("{PREFIX}cannot register the --guard-* options: {error}"));
        return Err(());
    }
    Ok(())
}

/// Local or allocator `init_post_opt`: evaluates the request of the
/// submitting user after the command line was parsed.
pub fn check(spank: &Spank) -> Status {
    let Some(config) = config().clone() else {
        // init failed and already reported why.
        return Err(());
    };
    let explain = match explain_value().as_deref().map(parse_explain_format).transpose() {
        Ok(explain) => explain,
        Err(message) => no_decision(&[message]),
    };

    relay_repeated_options();
    share_with_controller(spank);

    let request = match gather(spank) {
        Ok(request) => request,
        Err(message) if explain.is_some() => no_decision(&[format!("cannot explain the decision: {message}")]),
        Err(message) => {
            spank::user_log(&format!("{PREFIX}{message}"));
            return Err(());
        }
    };

    let policy = match loader::load(&config.policy, true) {
        Ok(policy) => policy,
        Err(LoadFailure::NotReadable) if explain.is_some() => no_decision(&[format!(
            "cannot explain the decision: the policy file {} is not readable by user {}; \
             ask an administrator to run `guardctl explain` for this request",
            config.policy.display(),
            request.user
        )]),
        Err(LoadFailure::NotReadable) => {
            tracing::trace!(
                "policy file {} is not readable by this user; the compute node checks the job",
                config.policy.display()
            );
            return Ok(());
        }
        Err(LoadFailure::Invalid(error)) if explain.is_some() => {
            let mut lines = vec![format!("cannot explain the decision: the policy file {} is invalid:", config.policy.display())];
            lines.extend(error.to_string().lines().map(|problem| format!("{POLICY_INVALID}: {problem}")));
            no_decision(&lines)
        }
        Err(LoadFailure::Invalid(error)) => return policy_error(&config, &request, &error),
    };

    let decision = policy_core::evaluate(&policy, &request, jiff::Timestamp::now());
    if let Some(format) = explain {
        print_explanation(format, &policy, &request, &decision);
    }
    for line in report::user_lines(&decision, &request) {
        spank::user_log(&line);
    }
    match decision.outcome {
        Outcome::Deny => Err(()),
        Outcome::Allow | Outcome::WouldDeny => Ok(()),
    }
}

/// Prints the `--guard-explain` output on standard output and ends the
/// process with 0 when the job would run (allow or would_deny) and 1 when it
/// would be denied.
///
/// Ending the process here submits nothing. srun, sbatch and salloc call
/// `init_post_opt` after they parsed the options (sbatch also read the
/// script and its `#SBATCH` lines) and before they send any request to
/// slurmctld: srun has neither an allocation nor a step yet, sbatch has not
/// submitted the script, and salloc has not asked for an allocation. Inside
/// an existing allocation srun has not created the step either. The cluster
/// scenarios in `tests/tests/scenarios/explain.rs` check that no job exists
/// afterwards (Slurm 22.05). `exit` still runs the `atexit` handlers the
/// commands registered, such as sbatch's `spank_fini`.
fn print_explanation(format: ExplainFormat, policy: &Policy, request: &policy_core::Request, decision: &policy_core::Decision) -> ! {
    let text = match format {
        ExplainFormat::Json => {
            // The JSON lists the rules checked later (on the node or by the
            // controller) as deferred, like the text report does, so that a
            // script does not take an allow for the final word.
            let mut reported = decision.clone();
            let later = node_checks(policy, decision).into_iter().chain(controller_checks(policy, request, decision));
            for (rule, _) in later {
                if !reported.deferred.contains(&rule) {
                    reported.deferred.push(rule);
                }
            }
            match serde_json::to_string_pretty(&reported) {
                Ok(json) => json + "\n",
                Err(error) => no_decision(&[format!("cannot encode the decision as JSON: {error}")]),
            }
        }
        ExplainFormat::Text => {
            let explanation = Explanation {
                decision,
                command: task_command(policy, request),
                node_checks: node_checks(policy, decision),
                controller_checks: controller_checks(policy, request, decision),
                ticket: ticket_requirement(policy, request, decision),
            };
            report::explain_lines(&explanation).into_iter().map(|line| line + "\n").collect()
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A closed standard output leaves nothing to report the error to.
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
    let code = if decision.permits() { EXIT_WOULD_RUN } else { EXIT_WOULD_BE_DENIED };
    std::process::exit(code)
}

/// Shows why `--guard-explain` has no decision and ends the process with 2,
/// before anything is submitted (see [`print_explanation`]).
fn no_decision(lines: &[String]) -> ! {
    for line in lines {
        spank::user_log(&format!("{PREFIX}{line}"));
    }
    std::process::exit(EXIT_NO_DECISION)
}

/// Returns the command a container would run after its argv prefix: srun's
/// command when Slurm provides it (`S_JOB_ARGV`), else a stand-in.
///
/// Slurm 22.05 has no `S_JOB_ARGV` in srun's `init_post_opt` yet (srun has
/// not built its job record), and sbatch and salloc never provide one.
fn task_command(policy: &Policy, request: &policy_core::Request) -> TaskCommand {
    if spank::context() == Context::Local {
        if request.argv.is_empty() {
            return TaskCommand::Placeholder("<srun command>");
        }
        return TaskCommand::Argv(request.argv.clone());
    }
    let program = std::env::current_exe().ok().and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()));
    if program.as_deref() == Some("sbatch") && policy.batch_step() == policy_core::policy::BatchStep::Wrap {
        TaskCommand::Placeholder("<batch script>")
    } else {
        // The batch script (container.batch_step `host`) and salloc's
        // command run on the host; each srun step of the job is wrapped.
        TaskCommand::Placeholder("<srun step command>")
    }
}

/// Returns the rules that only the compute node can decide, with what it
/// checks: the node list of the environment (the submit side has no node),
/// and any rule the decision lists as deferred.
fn node_checks(policy: &Policy, decision: &policy_core::Decision) -> Vec<(String, String)> {
    let mut checks = Vec::new();
    if let Some(environment) = decision.environment.as_deref() {
        if let Some(nodes) = policy.environment_nodes(environment) {
            let quoted: Vec<String> = nodes.iter().map(|pattern| format!("`{pattern}`")).collect();
            checks.push((
                policy_core::rules::ENVIRONMENT_NODE.to_owned(),
                format!("every node of the job must match {}", quoted.join(", ")),
            ));
        }
    }
    for rule in &decision.deferred {
        if !checks.iter().any(|(known, _)| known == rule) {
            checks.push((rule.clone(), "checked when the step starts".to_owned()));
        }
    }
    checks
}

/// Returns the rules that only the controller check can decide: the
/// break-glass time limit, which srun, sbatch and salloc do not pass to the
/// plugin.
fn controller_checks(policy: &Policy, request: &policy_core::Request, decision: &policy_core::Decision) -> Vec<(String, String)> {
    let limit = decision.environment.as_deref().and_then(|environment| policy.break_glass_max_minutes(environment));
    match (limit, &request.options.break_glass) {
        (Some(minutes), Some(_)) => vec![(
            policy_core::rules::BREAK_GLASS_DURATION.to_owned(),
            format!("the job's time limit (`--time`) must be at most {minutes} minutes"),
        )],
        _ => Vec::new(),
    }
}

/// Returns what a ticket must contain when the environment requires one and
/// the request has no valid ticket, unless break glass waives the ticket.
fn ticket_requirement(
    policy: &Policy,
    request: &policy_core::Request,
    decision: &policy_core::Decision,
) -> Option<TicketRequirement> {
    let environment = decision.environment.as_deref()?;
    if decision.ticket.is_some() || decision.break_glass || !policy.ticket_required(environment) {
        return None;
    }
    Some(TicketRequirement {
        user: request.user.clone(),
        environment: environment.to_owned(),
        aliases: policy.environment_aliases(environment).into_iter().map(str::to_owned).collect(),
        job_name: request.job_name.clone().filter(|name| !name.is_empty()),
        max_ttl_hours: policy.max_ttl_hours(),
        key_ids: policy.approval_keys().keys().cloned().collect(),
    })
}

fn policy_error(config: &Config, request: &policy_core::Request, error: &policy_core::LoadError) -> Status {
    match config.on_policy_error {
        OnPolicyError::Deny => {
            let correlation_id = policy_core::correlation_id(request, jiff::Timestamp::now());
            for line in report::policy_error_lines(error, Some(&correlation_id)) {
                spank::user_log(&line);
            }
            Err(())
        }
        OnPolicyError::Allow => {
            for line in error.to_string().lines() {
                spank::user_log(&format!("{PREFIX}warning: policy not loaded, on_policy_error=allow: {line}"));
            }
            Ok(())
        }
    }
}

/// Exports every value of the repeatable options for the node (see
/// [`options::RELAY_VARIABLES`]). srun, sbatch and salloc copy their
/// environment into the job after this callback.
fn relay_repeated_options() {
    for (name, value) in options::relay_values(&options::current(), |name| std::env::var(name).ok()) {
        // The variables are changed before Slurm starts the job, from the
        // thread that runs the SPANK callbacks.
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

/// Job environment variables that slurmctld cannot read from the job
/// descriptor (job_submit/lua receives only `spank_job_env` and the options), so
/// the submit side copies them there with `spank_job_control_setenv`.
const CONTROLLER_VARIABLES: [&str; 5] = [
    policy_core::ENVIRONMENT_VARIABLE,
    policy_core::JUSTIFICATION_VARIABLE,
    policy_core::TICKET_VARIABLE,
    options::RELAY_VARIABLES[0].0,
    options::RELAY_VARIABLES[1].0,
];

/// Gives the job a correlation id and copies the variables the controller
/// needs into the job control environment.
///
/// Without a valid `HOS_CORRELATION_ID` in the environment a new UUID v4 is
/// set, so the process environment that srun, sbatch and salloc copy into
/// the job carries it to every step, and the controller logs the same id.
/// Failures are logged and skipped: the node then falls back to
/// `<cluster>-<job id>`.
fn share_with_controller(spank: &Spank) {
    let given = std::env::var(policy_core::CORRELATION_ID_VARIABLE)
        .ok()
        .filter(|id| policy_core::is_valid_correlation_id(id));
    let correlation_id = match given {
        Some(id) => Some(id),
        None => match policy_core::new_correlation_id() {
            Ok(id) => {
                // The job environment is copied after this callback, on this thread.
                std::env::set_var(policy_core::CORRELATION_ID_VARIABLE, &id);
                Some(id)
            }
            Err(error) => {
                spank::log(LogLevel::Info, &format!("{PREFIX}{error}; the node will use <cluster>-<job id>"));
                None
            }
        },
    };

    let mut shared: Vec<(&str, String)> = Vec::new();
    if let Some(id) = correlation_id {
        shared.push((policy_core::CORRELATION_ID_VARIABLE, id));
    }
    for name in CONTROLLER_VARIABLES {
        if let Some(value) = std::env::var(name).ok().filter(|value| !value.is_empty()) {
            shared.push((name, value));
        }
    }
    for (name, value) in shared {
        // srun inside an existing allocation creates no job, and Slurm may
        // refuse the call there; the step still carries the variable.
        if let Err(error) = spank.job_control_setenv(name, value.as_bytes()) {
            tracing::debug!("cannot pass {name} to the controller: {error}");
        }
    }
}

/// Gathers the submitting user's identity, options and environment.
fn gather(spank: &Spank) -> Result<policy_core::Request, String> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let identity = identity::resolve(uid, gid, &[])?;

    let env_entries: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(name, value)| {
            use std::os::unix::ffi::OsStrExt;
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            entry
        })
        .collect();
    // S_JOB_ARGV needs srun's job record, which Slurm 22.05 builds only after
    // init_post_opt, so the command is empty here; sbatch and salloc never
    // provide one.
    let argv = spank.argv().unwrap_or_default();

    Ok(facts::request(Facts {
        context: RequestContext::Submit,
        identity,
        options: options::current(),
        env: facts::env_map(&env_entries),
        argv,
        job_id: None,
        step_id: None,
        node: None,
    }))
}
