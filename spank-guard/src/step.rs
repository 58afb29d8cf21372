//! The authoritative check in slurmstepd (remote context).
//!
//! `init_post_opt` gathers the step's facts, evaluates the policy once per
//! step and writes the `decision` audit record (as root). It never fails:
//! on Slurm 22.05 a failure there drains the node and still reports the job
//! as completed. The verdict is kept in process memory, which the forked
//! tasks inherit; `task_init_privileged` then denies each task or applies
//! the environment changes, and `task_init` execs the container runtime.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use policy_core::policy::BatchStep;
use policy_core::{Context as RequestContext, Decision, Outcome, Policy, Request};

use crate::boundary::Status;
use crate::config::{Config, OnPolicyError};
use crate::facts::{self, Facts};
use crate::loader::{self, LoadFailure};
use crate::logging::PREFIX;
use crate::spank::{self, Spank};
use crate::{identity, launch, options, records, report};

/// Step id of the extern step Slurm creates with `PrologFlags=contain`
/// (`SLURM_EXTERN_CONT`). It runs no user command and is never checked.
pub const EXTERN_STEP_ID: u32 = 0xFFFF_FFFC;

/// Outcome for the tasks of this step, decided once in `init_post_opt`.
enum Verdict {
    /// `init_post_opt` has not run (or failed before deciding).
    Pending,
    /// The extern step: nothing to check.
    Skip,
    /// Every task fails, showing these lines to the user.
    Deny(Vec<String>),
    /// Tasks run with these changes.
    Run(Launch),
}

/// Changes applied to every task of an allowed step.
#[derive(Default)]
struct Launch {
    unset: Vec<String>,
    set: Vec<(String, String)>,
    /// Full argv prefix of the container runtime, when the task is wrapped.
    container: Option<Vec<String>>,
    /// Lines shown to the user by the first task (audit-mode warnings).
    warnings: Vec<String>,
}

/// Data kept for the `step_end` record.
struct Evaluated {
    audit_path: PathBuf,
    request: Request,
    /// `None` when the policy could not be loaded and the step ran anyway.
    decision: Option<Decision>,
}

struct StepState {
    config: Result<Config, String>,
    /// Failures of callbacks that must not fail (remote `init`, option
    /// callbacks), raised in every task instead.
    deferred: Vec<String>,
    verdict: Verdict,
    evaluated: Option<Evaluated>,
    exit_statuses: Vec<i32>,
}

/// Configuration error shown when `slurm_spank_init` never ran, which
/// Slurm does not do; the tasks fail rather than run unchecked.
const NOT_INITIALISED: &str = "the plugin was not initialised: slurm_spank_init did not run in this slurmstepd";

static STATE: Mutex<StepState> = Mutex::new(StepState {
    config: Err(String::new()),
    deferred: Vec::new(),
    verdict: Verdict::Pending,
    evaluated: None,
    exit_statuses: Vec::new(),
});

fn state() -> MutexGuard<'static, StepState> {
    // Every update is a single assignment or push, so a lock poisoned by a
    // caught panic still guards consistent data.
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records a failure of a callback that must return success in
/// slurmstepd; every task of the step then fails with this message.
pub fn defer_failure(message: String) {
    state().deferred.push(format!("{PREFIX}{message}"));
}

/// Remote `init`: parses the plugstack arguments and registers the options
/// so that slurmstepd passes their values to the option callback.
pub fn init(spank: &Spank, args: &[String]) {
    let config = Config::parse(args).map_err(|error| error.to_string());
    if let Err(message) = &config {
        tracing::error!("{message}");
    }
    state().config = config;
    if let Err(error) = options::register_all(spank) {
        defer_failure(format!("cannot register the --guard-* options: {error}"));
    }
}

/// Remote `init_post_opt`: evaluates the step once and stores the verdict.
pub fn evaluate(spank: &Spank) {
    let verdict = decide(spank);
    state().verdict = verdict;
}

fn decide(spank: &Spank) -> Verdict {
    let step_id = match spank.step_id() {
        Ok(step_id) => step_id,
        Err(error) => return deny_with(format!("cannot identify the step: {error}")),
    };
    if step_id == EXTERN_STEP_ID {
        tracing::trace!("extern step: not checked");
        return Verdict::Skip;
    }

    let config = match state().config.clone() {
        Ok(config) => config,
        Err(message) if message.is_empty() => return deny_with(NOT_INITIALISED.to_owned()),
        Err(message) => return Verdict::Deny(vec![format!("{PREFIX}{message}")]),
    };

    let request = match gather(spank, step_id) {
        Ok(request) => request,
        Err(message) => return deny_with(message),
    };

    let started = std::time::Instant::now();
    let policy = match loader::load(&config.policy, false) {
        Ok(policy) => policy,
        Err(LoadFailure::Invalid(error)) => return policy_error(&config, request, &error),
        Err(LoadFailure::NotReadable) => return deny_with(format!("cannot read policy file {}", config.policy.display())),
    };

    let decision = policy_core::evaluate(&policy, &request, jiff::Timestamp::now());
    let duration = started.elapsed();
    log_summary(&request, &decision);

    if let Err(error) = records::write_decision(&policy, &request, &decision, duration) {
        let path = policy.audit().path.display().to_string();
        let message = format!("cannot write audit record to {path}: {error}");
        if policy.audit().on_error == policy_core::policy::OnError::Deny {
            tracing::error!("{message}; audit.on_error is deny, so the step's tasks fail");
            return Verdict::Deny(vec![format!("{PREFIX}denied: {message}")]);
        }
        tracing::error!("{message}; audit.on_error is allow, so the step runs");
    }

    let lines = report::user_lines(&decision, &request);
    let verdict = if decision.permits() {
        Verdict::Run(launch_for(&policy, &decision, step_id, lines))
    } else {
        Verdict::Deny(lines)
    };
    state().evaluated = Some(Evaluated { audit_path: policy.audit().path.clone(), request, decision: Some(decision) });
    verdict
}

fn deny_with(message: String) -> Verdict {
    tracing::error!("{message}");
    Verdict::Deny(vec![format!("{PREFIX}{message}")])
}

/// Gathers the step's facts from Slurm and the node.
fn gather(spank: &Spank, step_id: u32) -> Result<Request, String> {
    let uid = spank.job_uid().map_err(|error| error.to_string())?;
    let gid = spank.job_gid().map_err(|error| error.to_string())?;
    let job_id = spank.job_id().map_err(|error| error.to_string())?;
    let supplementary = spank.supplementary_gids().unwrap_or_else(|error| {
        tracing::debug!("{error}; using only the groups of the node's name service");
        Vec::new()
    });
    let argv = spank.argv().map_err(|error| error.to_string())?;
    let env = facts::env_map(&spank.env().map_err(|error| error.to_string())?);
    let identity = identity::resolve(uid, gid, &supplementary)?;
    let node = node_name(&env);

    let mut guard_options = options::current();
    options::apply_relayed(&mut guard_options, &env);

    Ok(facts::request(Facts {
        context: RequestContext::Step,
        identity,
        options: guard_options,
        env,
        argv,
        job_id: Some(job_id),
        step_id: Some(step_id),
        node,
    }))
}

/// Returns the name of this node. Slurm sets `SLURM_TOPOLOGY_ADDR` in the
/// step environment on the node before `init_post_opt`, replacing any value
/// the user passed (seen on 22.05.8), and its last dot-separated
/// component is the node name (the whole value with `topology/none`).
/// `SLURMD_NODENAME` is not used: at this point it still contains the value of
/// the submitting environment, so a user could name an allowed node, and an
/// srun inside a batch script would name the batch node. The host name is the
/// last resort and is wrong when one host runs several slurmd.
fn node_name(env: &BTreeMap<String, String>) -> Option<String> {
    if let Some(address) = env.get("SLURM_TOPOLOGY_ADDR") {
        if let Some(name) = address.rsplit('.').next().filter(|name| !name.is_empty()) {
            return Some(name.to_owned());
        }
    }
    short_hostname()
}

fn short_hostname() -> Option<String> {
    let name = nix::unistd::gethostname().ok()?;
    let name = name.to_string_lossy();
    Some(name.split('.').next().unwrap_or_default().to_owned())
}

/// Handles a policy that cannot be loaded, following `on_policy_error`.
fn policy_error(config: &Config, request: Request, error: &policy_core::LoadError) -> Verdict {
    let text = error.to_string().replace('\n', "; ");
    let outcome = match config.on_policy_error {
        OnPolicyError::Deny => Outcome::Deny,
        OnPolicyError::Allow => Outcome::Allow,
    };
    if let Err(write_error) = records::write_policy_error(&config.fallback_audit, &request, error, outcome) {
        tracing::error!("cannot write policy_error record to {}: {write_error}", config.fallback_audit.display());
    }
    match config.on_policy_error {
        OnPolicyError::Deny => {
            tracing::error!("policy not loaded, on_policy_error=deny fails the step: {text}");
            let correlation_id = policy_core::correlation_id(&request, jiff::Timestamp::now());
            Verdict::Deny(report::policy_error_lines(error, Some(&correlation_id)))
        }
        OnPolicyError::Allow => {
            tracing::error!("policy not loaded, on_policy_error=allow runs the step unchecked: {text}");
            state().evaluated = Some(Evaluated { audit_path: config.fallback_audit.clone(), request, decision: None });
            Verdict::Run(Launch::default())
        }
    }
}

/// Logs one line per decision on the node: `slurm_error` for a deny,
/// `slurm_info` otherwise.
fn log_summary(request: &Request, decision: &Decision) {
    let summary = format!(
        "decision for job {} step {} user {}: environment {} outcome {} rules [{}] correlation_id {}",
        request.job_id.unwrap_or_default(),
        request.step_id.unwrap_or_default(),
        request.user,
        decision.environment.as_deref().unwrap_or("-"),
        outcome_name(decision.outcome),
        decision.rule_ids().join(","),
        decision.correlation_id,
    );
    match decision.outcome {
        Outcome::Deny => tracing::error!("{summary}"),
        Outcome::Allow | Outcome::WouldDeny if decision.break_glass => {
            let waived: Vec<&str> = decision.waived.iter().map(|reason| reason.rule.as_str()).collect();
            tracing::warn!("{summary} BREAK GLASS waived [{}]", waived.join(","));
        }
        Outcome::Allow | Outcome::WouldDeny => tracing::info!("{summary}"),
    }
    for reason in &decision.reasons {
        tracing::debug!("rule {} failed: {}", reason.rule, reason.message);
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::WouldDeny => "would_deny",
    }
}

/// Turns an allowing decision into the per-task changes; the first task
/// shows `warnings` to the user.
fn launch_for(policy: &Policy, decision: &Decision, step_id: u32, warnings: Vec<String>) -> Launch {
    let effects = &decision.effects;
    let container = match &effects.container {
        Some(_) if step_id == policy_core::BATCH_STEP_ID && policy.batch_step() == BatchStep::Host => {
            tracing::debug!("batch step runs on the host (container.batch_step is host)");
            None
        }
        Some(container) => Some(container.argv_prefix.clone()),
        None => None,
    };
    Launch {
        unset: effects.unset.clone(),
        set: effects.set.iter().map(|(name, value)| (name.clone(), value.clone())).collect(),
        container,
        warnings,
    }
}

/// Remote `task_init_privileged` (root, in the forked task): fails a denied
/// task, otherwise removes and sets the decision's variables.
pub fn task_init_privileged(spank: &Spank) -> Status {
    let state = state();
    if !state.deferred.is_empty() {
        return fail_task(&state.deferred);
    }
    match &state.verdict {
        Verdict::Skip => Ok(()),
        Verdict::Pending => fail_task_with_log(format!("{PREFIX}the step was not checked against the policy, so it may not run")),
        Verdict::Deny(lines) => fail_task(lines),
        Verdict::Run(launch) => {
            if is_first_task(spank) {
                for line in &launch.warnings {
                    spank::user_log(line);
                }
            }
            apply_environment(spank, launch)
        }
    }
}

fn is_first_task(spank: &Spank) -> bool {
    spank.task_global_id().map(|id| id == 0).unwrap_or(false)
}

/// Shows `lines` to the user and fails the task. The node log already has
/// the reason: it was logged when the step was evaluated, and a second
/// `slurm_error` here would print every line twice on the user's terminal.
fn fail_task(lines: &[String]) -> Status {
    for line in lines {
        spank::user_log(line);
    }
    Err(())
}

/// Fails the task for a reason found in the task itself, which the node
/// log does not have yet. It is logged with `slurm_info`: in the task
/// process `slurm_error` would also print it on the user's terminal.
fn fail_task_with_log(line: String) -> Status {
    tracing::warn!("{}", line.strip_prefix(PREFIX).unwrap_or(&line));
    fail_task(&[line])
}

fn apply_environment(spank: &Spank, launch: &Launch) -> Status {
    for name in &launch.unset {
        if let Err(error) = spank.unsetenv(name) {
            return fail_task_with_log(format!("{PREFIX}cannot remove {name} from the task environment: {error}"));
        }
    }
    for (name, value) in &launch.set {
        if let Err(error) = spank.setenv(name, value.as_bytes()) {
            return fail_task_with_log(format!("{PREFIX}cannot set {name} in the task environment: {error}"));
        }
    }
    Ok(())
}

/// Remote `task_init` (job user, just before exec): runs the task inside
/// the approved container.
pub fn task_init(spank: &Spank) -> Status {
    let prefix = match &state().verdict {
        Verdict::Run(Launch { container: Some(prefix), .. }) => prefix.clone(),
        _ => return Ok(()),
    };

    let prefix_bytes: Vec<Vec<u8>> = prefix.iter().map(|arg| arg.as_bytes().to_vec()).collect();
    if let Some(result) = spank.prepend_task_argv(&prefix_bytes) {
        return result.or_else(|error| fail_task_with_log(format!("{PREFIX}cannot wrap the task in the container: {error}")));
    }

    // Slurm before 23.11 has no spank_prepend_task_argv: exec the runtime
    // here with the task's own argv and environment.
    let task_argv = match spank.argv() {
        Ok(argv) => argv,
        Err(error) => return fail_task_with_log(format!("{PREFIX}cannot read the task command: {error}")),
    };
    let env = match spank.env() {
        Ok(env) => env,
        Err(error) => return fail_task_with_log(format!("{PREFIX}cannot read the task environment: {error}")),
    };
    let argv = launch::wrapped_argv(&prefix, &task_argv);
    let message = launch::exec(&argv, &env);
    fail_task_with_log(format!("{PREFIX}{message}"))
}

/// Remote `task_exit`: keeps the task's wait status for `step_end`.
pub fn task_exit(spank: &Spank) {
    match spank.task_exit_status() {
        Ok(status) => state().exit_statuses.push(status),
        Err(error) => tracing::debug!("{error}"),
    }
}

/// Remote `exit`: writes the `step_end` audit record.
pub fn exit(spank: &Spank) {
    let state = state();
    let Some(evaluated) = &state.evaluated else {
        return;
    };
    let task_count = spank.local_task_count().unwrap_or_else(|error| {
        tracing::debug!("{error}");
        u32::try_from(state.exit_statuses.len()).unwrap_or(u32::MAX)
    });
    let exit_codes: Vec<i32> = state.exit_statuses.iter().map(|&status| exit_code(status)).collect();
    let decision = evaluated.decision.as_ref();
    if let Err(error) = records::write_step_end(&evaluated.audit_path, &evaluated.request, decision, task_count, &exit_codes) {
        tracing::error!("cannot write step_end record to {}: {error}", evaluated.audit_path.display());
    }
}

/// Converts a wait status to a shell-style exit code (128 + signal for a
/// task killed by a signal).
fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_wait_status() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
    }
}
