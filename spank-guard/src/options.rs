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
const EXPLAIN: c_int = 7;
const BREAK_GLASS: c_int = 8;

/// Every option of the plugin, in the order `--help` lists them.
pub static OPTIONS: [OptionSpec; 8] = [
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
    OptionSpec::with_argument(
        c"guard-break-glass",
        c"REASON",
        c"Emergency: run despite failing time window and approval rules, if the policy permits you; the use is audited for review",
        BREAK_GLASS,
        option_callback,
    ),
    // Not a policy input: submit.rs keeps its value (see submit::explain_option).
    OptionSpec::with_optional_argument(
        c"guard-explain",
        c"FORMAT",
        c"Print the decision the job would get and exit without submitting it; FORMAT is text (the default) or json",
        EXPLAIN,
        crate::submit::explain_option,
    ),
];

static VALUES: Mutex<GuardOptions> = Mutex::new(GuardOptions {
    env: None,
    justification: None,
    ticket: None,
    image: None,
    binds: Vec::new(),
    container_flags: Vec::new(),
    break_glass: None,
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

/// Job environment variables that carry every value of the repeatable
/// options from srun, sbatch and salloc to slurmstepd, joined with commas.
///
/// Slurm 22.05 sends only the last value of a repeated SPANK option to the
/// node, so `--guard-bind=A --guard-bind=B` would reach slurmstepd as `B`.
/// The submit side stores the whole list in these variables, and the node
/// uses them in place of the values Slurm forwarded. A user who sets them
/// by hand only requests binds or flags, which the node checks like the
/// options themselves.
pub const RELAY_VARIABLES: [(&str, RelayedOption); 2] =
    [("SPANK_GUARD_BIND_OPTIONS", RelayedOption::Binds), ("SPANK_GUARD_CONTAINER_FLAG_OPTIONS", RelayedOption::ContainerFlags)];

/// A repeatable option relayed through [`RELAY_VARIABLES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayedOption {
    /// `--guard-bind`.
    Binds,
    /// `--guard-container-flags`.
    ContainerFlags,
}

fn relayed_list(options: &mut GuardOptions, option: RelayedOption) -> &mut Vec<String> {
    match option {
        RelayedOption::Binds => &mut options.binds,
        RelayedOption::ContainerFlags => &mut options.container_flags,
    }
}

/// Variables in which sbatch and salloc pass their option values to the
/// srun commands of the job, for the repeatable options in [`RELAY_VARIABLES`]
/// order. Slurm forms the name from `plugin_name` and the option name.
const INHERITED_OPTION_VARIABLES: [&str; 2] = [
    "SLURM_SPANK__SLURM_SPANK_OPTION_spank_guard_guard_bind",
    "SLURM_SPANK__SLURM_SPANK_OPTION_spank_guard_guard_container_flags",
];

/// Returns the relay variables to export from the submit side: the joined
/// list of each repeatable option, or `None` to remove a variable that an
/// enclosing job left in the environment.
///
/// An srun inside an sbatch or salloc job receives only the last value of the
/// job's repeated option, through [`INHERITED_OPTION_VARIABLES`]. When that
/// is all it has, the job's relay variable (from `inherited`) ends with that
/// value and is kept, so the step gets every value the job was given.
pub fn relay_values(options: &GuardOptions, inherited: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, Option<String>)> {
    let mut options = options.clone();
    RELAY_VARIABLES
        .iter()
        .zip(INHERITED_OPTION_VARIABLES)
        .map(|(&(name, option), option_variable)| {
            let list = relayed_list(&mut options, option);
            let only_inherited = match list.as_slice() {
                [single] => inherited(option_variable).as_deref() == Some(single.as_str()),
                _ => false,
            };
            if only_inherited {
                let last = list.join(",");
                let relayed = inherited(name).filter(|joined| joined == &last || joined.ends_with(&format!(",{last}")));
                if relayed.is_some() {
                    return (name, relayed);
                }
            }
            (name, (!list.is_empty()).then(|| list.join(",")))
        })
        .collect()
}

/// Replaces the repeatable options with the relayed lists found in the job
/// environment (on the node).
pub fn apply_relayed(options: &mut GuardOptions, env: &std::collections::BTreeMap<String, String>) {
    for &(name, option) in &RELAY_VARIABLES {
        if let Some(joined) = env.get(name).filter(|joined| !joined.is_empty()) {
            *relayed_list(options, option) = vec![joined.clone()];
        }
    }
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
        BREAK_GLASS => options.break_glass = Some(value),
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
    fn relay_joins_and_restores_lists() {
        let mut submitted = GuardOptions::default();
        store(&mut submitted, BIND, "/a:/a:ro".into()).unwrap();
        store(&mut submitted, BIND, "/b,/c".into()).unwrap();
        let relayed = relay_values(&submitted, |_| None);
        assert_eq!(
            relayed,
            [("SPANK_GUARD_BIND_OPTIONS", Some("/a:/a:ro,/b,/c".to_owned())), ("SPANK_GUARD_CONTAINER_FLAG_OPTIONS", None)]
        );

        // The node got only the last value from Slurm.
        let mut on_node = GuardOptions::default();
        store(&mut on_node, BIND, "/b,/c".into()).unwrap();
        let env = relayed.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value?))).collect();
        apply_relayed(&mut on_node, &env);
        assert_eq!(on_node.binds, ["/a:/a:ro,/b,/c"]);
        assert!(on_node.container_flags.is_empty());
    }

    #[test]
    fn inner_srun_keeps_job_relay() {
        // sbatch --guard-bind=/a --guard-bind=/b: the inner srun receives only /b.
        let inherited = |name: &str| match name {
            "SLURM_SPANK__SLURM_SPANK_OPTION_spank_guard_guard_bind" => Some("/b".to_owned()),
            "SPANK_GUARD_BIND_OPTIONS" => Some("/a,/b".to_owned()),
            _ => None,
        };
        let mut inner = GuardOptions::default();
        store(&mut inner, BIND, "/b".into()).unwrap();
        assert_eq!(
            relay_values(&inner, inherited),
            [("SPANK_GUARD_BIND_OPTIONS", Some("/a,/b".to_owned())), ("SPANK_GUARD_CONTAINER_FLAG_OPTIONS", None)]
        );

        // Binds of its own on the srun command line replace the job's.
        let mut own = GuardOptions::default();
        store(&mut own, BIND, "/b".into()).unwrap();
        store(&mut own, BIND, "/c".into()).unwrap();
        assert_eq!(relay_values(&own, inherited)[0], ("SPANK_GUARD_BIND_OPTIONS", Some("/b,/c".to_owned())));

        // A relay variable that does not end with the inherited value is not the job's.
        let mut other = GuardOptions::default();
        store(&mut other, BIND, "/b".into()).unwrap();
        let stale = |name: &str| match name {
            "SLURM_SPANK__SLURM_SPANK_OPTION_spank_guard_guard_bind" => Some("/b".to_owned()),
            "SPANK_GUARD_BIND_OPTIONS" => Some("/a,/x".to_owned()),
            _ => None,
        };
        assert_eq!(relay_values(&other, stale)[0], ("SPANK_GUARD_BIND_OPTIONS", Some("/b".to_owned())));
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
            [
                "guard-env",
                "guard-justification",
                "guard-ticket",
                "guard-image",
                "guard-bind",
                "guard-container-flags",
                "guard-break-glass",
                "guard-explain"
            ]
        );
    }
}
