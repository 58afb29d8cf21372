//! The early check in srun, sbatch and salloc (local and allocator contexts).
//!
//! This check runs in the user's own process, so it is advisory: it gives
//! the user the decision before anything is submitted, and the compute node
//! enforces the same policy again. A deny makes the command exit non-zero
//! without submitting the job.

use std::sync::{Mutex, MutexGuard, PoisonError};

use policy_core::{Context as RequestContext, Outcome};

use crate::boundary::Status;
use crate::config::{Config, OnPolicyError};
use crate::facts::{self, Facts};
use crate::loader::{self, LoadFailure};
use crate::logging::PREFIX;
use crate::spank::{self, LogLevel, Spank};
use crate::{identity, options, report};

static CONFIG: Mutex<Option<Config>> = Mutex::new(None);

fn config() -> MutexGuard<'static, Option<Config>> {
    // A single assignment is the only update, so a poisoned lock is consistent.
    CONFIG.lock().unwrap_or_else(PoisonError::into_inner)
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

    relay_repeated_options();
    share_with_controller(spank);

    let request = match gather(spank) {
        Ok(request) => request,
        Err(message) => {
            spank::user_log(&format!("{PREFIX}{message}"));
            return Err(());
        }
    };

    let policy = match loader::load(&config.policy, true) {
        Ok(policy) => policy,
        Err(LoadFailure::NotReadable) => {
            tracing::trace!(
                "policy file {} is not readable by this user; the compute node checks the job",
                config.policy.display()
            );
            return Ok(());
        }
        Err(LoadFailure::Invalid(error)) => return policy_error(&config, &request, &error),
    };

    let decision = policy_core::evaluate(&policy, &request, jiff::Timestamp::now());
    let break_glass = report::break_glass_lines(&decision, &request.user, request.options.break_glass.as_deref());
    for line in break_glass.iter().chain(&report::decision_lines(&decision)) {
        spank::user_log(line);
    }
    match decision.outcome {
        Outcome::Deny => Err(()),
        Outcome::Allow | Outcome::WouldDeny => Ok(()),
    }
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
    // srun provides the command in S_JOB_ARGV, and sbatch and salloc do not.
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
