//! A private, throwaway Slurm cluster for testing spank-guard against real
//! daemons (Debian's `slurmctld`, `slurmd` and `munged`), and helpers to
//! run jobs on it as unprivileged test users.
//!
//! [`Cluster::start`] needs root: it runs the daemons, creates the test
//! users, and owns the policy files as root like a real site. Everything
//! lives in one temporary directory; dropping the [`Cluster`] stops every
//! process it started and removes the directory.

mod cluster;
mod command;
mod stand_in;
mod users;

pub use cluster::{default_plugin_path, Cluster, NodeState, KEEP_ENV, PLUGIN_ENV};
pub use command::Output;
pub use users::{TestUser, PROD_GROUP, TEST_USERS};
