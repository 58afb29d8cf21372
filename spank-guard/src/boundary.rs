//! Panic boundary for every `extern "C"` entry point.
//!
//! A panic must never unwind into Slurm: it would abort srun or
//! slurmstepd. Each entry runs its body under `catch_unwind`, logs a
//! panic with `slurm_error`, and turns it into a return value that Slurm
//! handles without damage (see [`Failure`]).

use std::any::Any;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::spank::{self, Context, LogLevel};
use crate::step;

/// Failure report of a callback to Slurm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Return -1. Used where a failure only fails the command or the task:
    /// every local and allocator callback, and remote `task_init_privileged`
    /// and `task_init`.
    Return,
    /// Return 0 in slurmstepd and record the failure so that the step's
    /// tasks fail in `task_init_privileged`. On Slurm 22.05 an error from
    /// remote `init`, `init_post_opt` or `user_init` drains the node and
    /// still reports the job as completed, so these callbacks never fail.
    /// Outside slurmstepd this behaves like [`Failure::Return`].
    DeferToTask,
}

/// Result of a callback body: Slurm gets 0 for `Ok` and -1 for `Err`. The
/// body has already shown or logged the reason.
pub type Status = Result<(), ()>;

/// Runs a SPANK callback body inside the panic boundary.
pub fn guard_callback(name: &'static str, failure: Failure, body: impl FnOnce() -> Status) -> c_int {
    crate::logging::install();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(())) => -1,
        Err(payload) => {
            let message = format!("internal error in slurm_spank_{name}: {}", panic_text(payload.as_ref()));
            spank::log(LogLevel::Error, &format!("{}{message}", crate::logging::PREFIX));
            if failure == Failure::DeferToTask && spank::context() == Context::Remote {
                step::defer_failure(message);
                0
            } else {
                -1
            }
        }
    }
}

/// Runs an option callback body inside the panic boundary. In srun, sbatch
/// and salloc an error or a panic returns -1, which rejects the option. In
/// slurmstepd a failing option callback would fail the step's `init` (and
/// drain the node on 22.05), so the failure is recorded for the tasks and
/// 0 is returned.
pub fn guard_option(body: impl FnOnce() -> Result<(), String>) -> c_int {
    crate::logging::install();
    let message = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return 0,
        Ok(Err(message)) => message,
        Err(payload) => format!("internal error in the option callback: {}", panic_text(payload.as_ref())),
    };
    tracing::error!("{message}");
    if spank::context() == Context::Remote {
        step::defer_failure(message);
        0
    } else {
        -1
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
