//! Policy engine of spank-guard: the Environment Guard (tiers, access, time
//! windows, approvals) and the Apptainer container rules, with no Slurm
//! dependency. The SPANK plugin, `guardctl` and the C ABI all call
//! [`evaluate`], so every enforcement point reaches the same decision.

#![deny(unsafe_code)]

pub mod audit;
pub mod binds;
pub mod decision;
pub mod digest;
mod eval;
#[allow(unsafe_code, reason = "the C ABI needs raw pointers; every block has a SAFETY line")]
pub mod ffi;
pub mod flags;
pub mod glob;
pub mod hostlist;
#[allow(unsafe_code, reason = "flock(2) has no safe wrapper in std before Rust 1.89; the block has a SAFETY line")]
pub mod journal;
pub mod paths;
pub mod policy;
pub mod request;
pub mod rules;
pub mod ticket;
pub mod window;

pub use decision::{ContainerLaunch, Decision, Effects, Mode, Outcome, Reason, TicketSummary};
pub use eval::{
    correlation_id, evaluate, is_valid_correlation_id, new_correlation_id, BATCH_STEP_ID, BIND_VARIABLES,
    CORRELATION_ID_VARIABLE, ENVIRONMENT_VARIABLE, JUSTIFICATION_VARIABLE, MAX_BREAK_GLASS_REASON_CHARS, TICKET_VARIABLE,
};
pub use policy::{check_file_security, LoadError, Policy, Problem};
pub use request::{Context, GuardOptions, Request, UNLIMITED_TIME_LIMIT};

/// Version of this library, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
