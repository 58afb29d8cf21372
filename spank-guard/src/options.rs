//! The `--guard-*` command-line options and the values Slurm passed for them.
//!
//! Slurm calls [`option_callback`] once per occurrence in srun, sbatch and
//! salloc, and (on 22.05) twice per srun step in slurmstepd: once from the
//! launch message and once from the environment. Storing a value is
//! therefore idempotent: single-valued options keep the last value, and
//! repeatable options skip a value they already hold.

use std::ffi::{c_char, c_int, CStr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use policy_core::GuardOptions;

use crate::spank::{OptionSpec, Spank, SpankError};

const ENV: c_int = 1;
const JUSTIFICATION: c_int = 2;
const TICKET: c_int = 3;
const IMAGE: c_int = 4;
const BIND: c_int = 5;
const CONTAINER_FLAGS: c_int = 6;

/// Every option of the plugin, in the order `--help` lists them.
pub static OPTIONS: [OptionSpec; 6] = [
    OptionSpec::with_argument(
        c"guard-env",
        c"ENV",
        c"Run the job in policy environment ENV (name or alias; default: HOS_ENV, else the policy's default environment)",
        ENV,
        option_callback,
    ),
    OptionSpec::with_argument(
        c"guard-justification",
        c"TEXT",
        c"Reason for running the job, recorded in the audit log (required by some environments)",
        JUSTIFICATION,
        option_callback,
    ),
    OptionSpec::with_argument(
        c"guard-ticket",
        c"TICKET",
        c"Signed approval ticket for environments that require one (from `guardctl ticket issue`)",
        TICKET,
        option_callback,
    ),
    OptionSpec::with_argument(
        c"guard-image",
        c"PATH",
        c"Run every task inside the Apptainer image at PATH (must be approved by the policy)",
        IMAGE,
        option_callback,
    ),
    OptionSpec::with_argument(
        c"guard-bind",
        c"SRC[:DST[:ro|rw]][,...]",
        c"Bind SRC into the container at DST (default: SRC); repeatable; sources must be under an allowed root",
        BIND,
        option_callback,
    ),
    OptionSpec::with_argument(
        c"guard-container-flags",
        c"FLAG[,...]",
        c"Extra Apptainer flags in --name or --name=value form, limited to the policy's user_flags",
        CONTAINER_FLAGS,
        option_callback,
    ),
];

static VALUES: Mutex<GuardOptions> = Mutex::new(GuardOptions {
    env: None,
    justification: None,
    ticket: None,
    image: None,
    binds: Vec::new(),
    container_flags: Vec::new(),
});

fn values() -> MutexGuard<'static, GuardOptions> {
    // A panic while the lock was held cannot leave the options half-written
    // (every update is a single assignment or push), so a poisoned lock is
    // still consistent.
    VALUES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers every option with Slurm, so they are parsed and listed in `--help`.
pub fn register_all(spank: &Spank) -> Result<(), SpankError> {
    for option in &OPTIONS {
        spank.register_option(option)?;
    }
    Ok(())
}

/// Returns the option values stored so far.
pub fn current() -> GuardOptions {
    values().clone()
}

/// Stores one option value. Returns an error message for an unknown `val`.
pub fn store(options: &mut GuardOptions, val: c_int, value: String) -> Result<(), String> {
    match val {
        ENV => options.env = Some(value),
        JUSTIFICATION => options.justification = Some(value),
        TICKET => options.ticket = Some(value),
        IMAGE => options.image = Some(value),
        BIND => push_once(&mut options.binds, value),
        CONTAINER_FLAGS => push_once(&mut options.container_flags, value),
        other => return Err(format!("option callback called with unknown option number {other}")),
    }
    Ok(())
}

fn push_once(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// Option callback Slurm calls for each `--guard-*` value.
///
/// # Safety
///
/// `optarg` must be NULL or a NUL-terminated string, as Slurm passes it.
unsafe extern "C" fn option_callback(val: c_int, optarg: *const c_char, _remote: c_int) -> c_int {
    crate::boundary::guard_option(|| {
        let value = if optarg.is_null() {
            String::new()
        } else {
            // SAFETY: Slurm passes a NUL-terminated argument that lives for the call.
            unsafe { CStr::from_ptr(optarg) }.to_string_lossy().into_owned()
        };
        store(&mut values(), val, value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_callbacks_are_idempotent() {
        let mut options = GuardOptions::default();
        for _ in 0..2 {
            store(&mut options, ENV, "prod".into()).unwrap();
            store(&mut options, BIND, "/mnt/a".into()).unwrap();
            store(&mut options, BIND, "/mnt/b:/b:ro".into()).unwrap();
            store(&mut options, CONTAINER_FLAGS, "--nv".into()).unwrap();
        }
        assert_eq!(options.env.as_deref(), Some("prod"));
        assert_eq!(options.binds, vec!["/mnt/a".to_owned(), "/mnt/b:/b:ro".to_owned()]);
        assert_eq!(options.container_flags, vec!["--nv".to_owned()]);
    }

    #[test]
    fn later_single_value_wins() {
        let mut options = GuardOptions::default();
        store(&mut options, ENV, "dev".into()).unwrap();
        store(&mut options, ENV, "prod".into()).unwrap();
        assert_eq!(options.env.as_deref(), Some("prod"));
    }

    #[test]
    fn unknown_option_number() {
        let mut options = GuardOptions::default();
        assert_eq!(
            store(&mut options, 99, "x".into()).unwrap_err(),
            "option callback called with unknown option number 99"
        );
    }

    #[test]
    fn option_names_are_stable() {
        let names: Vec<String> = OPTIONS.iter().map(OptionSpec::name).collect();
        assert_eq!(
            names,
            ["guard-env", "guard-justification", "guard-ticket", "guard-image", "guard-bind", "guard-container-flags"]
        );
    }
}
