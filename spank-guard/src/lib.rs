//! spank-guard: a Slurm SPANK plugin that checks every srun, sbatch and
//! salloc against the site policy of `policy-core`, enforces the decision
//! on the compute node, and writes an audit record for every step.
//!
//! This file is the dispatcher: it owns every symbol Slurm looks up and
//! forwards each callback, by SPANK context, to [`submit`] (srun, sbatch,
//! salloc) or [`step`] (slurmstepd). Every entry runs inside the panic
//! boundary of [`boundary`]. The linker version script `exports.map`
//! keeps every other symbol local.
//!
//! Callback order in slurmstepd (Slurm 22.05): `init` (root), option
//! callbacks, `init_post_opt` (root), `user_init` (job user), then per task
//! in the forked child `task_init_privileged` (root) and `task_init` (job
//! user) before exec, and `task_exit` and `exit` in the parent.

mod boundary;
mod config;
mod facts;
mod identity;
mod launch;
mod loader;
mod logging;
mod options;
mod records;
mod report;
mod spank;
mod step;
mod submit;
#[cfg(test)]
mod test_symbols;

use std::ffi::{c_char, c_int, c_uint, CStr};

use boundary::{guard_callback, Failure};
use spank::{Context, Spank};

/// Plugin name; Slurm also uses it in the option environment variables
/// (`_SLURM_SPANK_OPTION_spank_guard_guard_env`).
#[no_mangle]
#[allow(non_upper_case_globals, reason = "symbol name fixed by Slurm's plugin loader")]
pub static plugin_name: [u8; 12] = *b"spank_guard\0";

/// Plugin type; Slurm loads only `spank` plugins from plugstack.conf.
#[no_mangle]
#[allow(non_upper_case_globals, reason = "symbol name fixed by Slurm's plugin loader")]
pub static plugin_type: [u8; 6] = *b"spank\0";

/// `SLURM_VERSION_NUMBER` of the headers the plugin was built against.
/// Slurm refuses to load a plugin whose major or minor version differs.
#[no_mangle]
#[allow(non_upper_case_globals, reason = "symbol name fixed by Slurm's plugin loader")]
pub static plugin_version: c_uint = slurm_headers::SLURM_VERSION_NUMBER;

/// Copies the plugstack arguments of a callback.
///
/// # Safety
///
/// `argv` must hold `argc` NUL-terminated strings (or be NULL), as Slurm passes them.
unsafe fn plugstack_args(argc: c_int, argv: *mut *mut c_char) -> Vec<String> {
    let count = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: Slurm passes `argc` valid entries at `argv`.
    let entries = unsafe { std::slice::from_raw_parts(argv, count) };
    entries
        .iter()
        .filter(|arg| !arg.is_null())
        // SAFETY: every non-NULL entry is a NUL-terminated string owned by Slurm.
        .map(|&arg| unsafe { CStr::from_ptr(arg) }.to_string_lossy().into_owned())
        .collect()
}

/// Loads the configuration and registers the `--guard-*` options.
///
/// # Safety
///
/// Called by Slurm with a valid handle and plugstack arguments.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_init(sp: slurm_headers::spank_t, argc: c_int, argv: *mut *mut c_char) -> c_int {
    guard_callback("init", Failure::DeferToTask, || {
        // SAFETY: `sp` is the handle of this callback and does not escape it.
        let spank = unsafe { Spank::from_raw(sp) };
        // SAFETY: Slurm passes valid plugstack arguments.
        let args = unsafe { plugstack_args(argc, argv) };
        match spank::context() {
            Context::Local | Context::Allocator => submit::init(&spank, &args),
            Context::Remote => {
                step::init(&spank, &args);
                Ok(())
            }
            // slurmd and the prolog/epilog helper have nothing to check.
            Context::Slurmd | Context::JobScript | Context::Unknown => Ok(()),
        }
    })
}

/// Evaluates the request: at submission in srun/sbatch/salloc, once per
/// step in slurmstepd.
///
/// # Safety
///
/// Called by Slurm with a valid handle and plugstack arguments.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_init_post_opt(sp: slurm_headers::spank_t, _argc: c_int, _argv: *mut *mut c_char) -> c_int {
    guard_callback("init_post_opt", Failure::DeferToTask, || {
        // SAFETY: `sp` is the handle of this callback and does not escape it.
        let spank = unsafe { Spank::from_raw(sp) };
        match spank::context() {
            Context::Local | Context::Allocator => submit::check(&spank),
            Context::Remote => {
                step::evaluate(&spank);
                Ok(())
            }
            Context::Slurmd | Context::JobScript | Context::Unknown => Ok(()),
        }
    })
}

/// Denies the task, or applies the decision's environment changes, as root
/// in the forked task before privileges are dropped.
///
/// # Safety
///
/// Called by Slurm with a valid handle and plugstack arguments.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_task_init_privileged(sp: slurm_headers::spank_t, _argc: c_int, _argv: *mut *mut c_char) -> c_int {
    guard_callback("task_init_privileged", Failure::Return, || {
        // SAFETY: `sp` is the handle of this callback and does not escape it.
        let spank = unsafe { Spank::from_raw(sp) };
        match spank::context() {
            Context::Remote => step::task_init_privileged(&spank),
            _ => Ok(()),
        }
    })
}

/// Starts the task inside the approved container, as the job user.
///
/// # Safety
///
/// Called by Slurm with a valid handle and plugstack arguments.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_task_init(sp: slurm_headers::spank_t, _argc: c_int, _argv: *mut *mut c_char) -> c_int {
    guard_callback("task_init", Failure::Return, || {
        // SAFETY: `sp` is the handle of this callback and does not escape it.
        let spank = unsafe { Spank::from_raw(sp) };
        match spank::context() {
            Context::Remote => step::task_init(&spank),
            _ => Ok(()),
        }
    })
}

/// Records the exit status of each task for the `step_end` audit record.
///
/// # Safety
///
/// Called by Slurm with a valid handle and plugstack arguments.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_task_exit(sp: slurm_headers::spank_t, _argc: c_int, _argv: *mut *mut c_char) -> c_int {
    guard_callback("task_exit", Failure::DeferToTask, || {
        // SAFETY: `sp` is the handle of this callback and does not escape it.
        let spank = unsafe { Spank::from_raw(sp) };
        if spank::context() == Context::Remote {
            step::task_exit(&spank);
        }
        Ok(())
    })
}

/// Writes the `step_end` audit record in slurmstepd.
///
/// # Safety
///
/// Called by Slurm with a valid handle and plugstack arguments.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_exit(sp: slurm_headers::spank_t, _argc: c_int, _argv: *mut *mut c_char) -> c_int {
    guard_callback("exit", Failure::DeferToTask, || {
        // SAFETY: `sp` is the handle of this callback and does not escape it.
        let spank = unsafe { Spank::from_raw(sp) };
        if spank::context() == Context::Remote {
            step::exit(&spank);
        }
        Ok(())
    })
}
