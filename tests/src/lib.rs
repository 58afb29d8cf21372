//! A private, throwaway Slurm cluster for testing spank-guard against real
//! daemons (Debian's `slurmctld`, `slurmd` and `munged`), and helpers to
//! run jobs on it as unprivileged test users.
//!
//! [`Cluster::start`] needs root: it runs the daemons, creates the test
//! users, and owns the policy files as root like a real site. Everything
//! lives in one temporary directory; dropping the [`Cluster`] stops every
//! process it started and removes the directory.

pub mod bench;
mod cluster;
mod command;
mod stand_in;
mod users;

pub use cluster::{default_plugin_path, Cluster, NodeState, KEEP_ENV, PLUGIN_ENV};
pub use command::Output;
pub use users::{TestUser, PROD_GROUP, TEST_USERS};

/// Daily window that is open all day, for runs that must not depend on the
/// time of day.
pub const ALL_DAY: (&str, &str) = ("00:00", "24:00");

/// Returns `examples/demo/policy.json` for a cluster in `dir`, with the
/// `maintenance` and `change-slot` windows set to the given daily
/// `(start, end)` times (`HH:MM`, UTC).
pub fn demo_policy(dir: &str, maintenance: (&str, &str), change_slot: (&str, &str)) -> String {
    include_str!("../../examples/demo/policy.json")
        .replace("@DEMO_DIR@", dir)
        .replace("@WINDOW_START@", maintenance.0)
        .replace("@WINDOW_END@", maintenance.1)
        .replace("@CHANGE_START@", change_slot.0)
        .replace("@CHANGE_END@", change_slot.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_policy_fills_every_placeholder() {
        let text = demo_policy("/srv/demo", ALL_DAY, ("01:00", "02:00"));
        assert!(!text.contains('@'), "a placeholder is left in\n{text}");
        if let Err(error) = policy_core::Policy::from_slice(text.as_bytes(), "demo/policy.json") {
            panic!("the demo policy does not load: {error}");
        }
    }
}
