//! Stable rule ids. They appear in decisions, audit records, metrics labels and
//! user-facing messages, so a rename is a breaking change of the audit schema.

/// The requested environment is not defined in the policy (names and aliases).
pub const ENVIRONMENT_UNKNOWN: &str = "environment.unknown";
/// The user is neither listed nor a member of a listed group.
pub const ENVIRONMENT_ACCESS: &str = "environment.access";
/// The request falls outside every window named by the environment.
pub const ENVIRONMENT_WINDOW: &str = "environment.window";
/// The node is not in the environment's node list.
pub const ENVIRONMENT_NODE: &str = "environment.node";
/// The justification is missing or shorter than required.
pub const APPROVAL_JUSTIFICATION: &str = "approval.justification";
/// The approval ticket is missing or not valid for this request.
pub const APPROVAL_TICKET: &str = "approval.ticket";
/// The environment requires a container and none was requested.
pub const CONTAINER_REQUIRED: &str = "container.required";
/// The image is not approved, not a regular file, or its digest differs.
pub const CONTAINER_IMAGE: &str = "container.image";
/// A bind specification is malformed or its source is outside the allowed roots.
pub const CONTAINER_BIND: &str = "container.bind";
/// A container flag is not in the policy's `user_flags`.
pub const CONTAINER_FLAG: &str = "container.flag";
/// The container runtime is missing or not executable.
pub const CONTAINER_RUNTIME: &str = "container.runtime";
/// A variable on the policy's deny list is set and `on_denied` is `deny`.
pub const ENV_DENIED: &str = "env.denied";
/// The user asked to break glass but may not in this environment, or the
/// permission has expired.
pub const BREAK_GLASS_ACCESS: &str = "break_glass.access";
/// The break-glass reason is shorter than the environment requires.
pub const BREAK_GLASS_REASON: &str = "break_glass.reason";
/// The job's time limit is longer than break-glass allows.
pub const BREAK_GLASS_DURATION: &str = "break_glass.duration";
/// The policy could not be loaded (used by enforcement points).
pub const POLICY_INVALID: &str = "policy.invalid";

/// Every rule id, in documentation order.
pub const ALL: &[&str] = &[
    ENVIRONMENT_UNKNOWN,
    ENVIRONMENT_ACCESS,
    ENVIRONMENT_WINDOW,
    ENVIRONMENT_NODE,
    APPROVAL_JUSTIFICATION,
    APPROVAL_TICKET,
    CONTAINER_REQUIRED,
    CONTAINER_IMAGE,
    CONTAINER_BIND,
    CONTAINER_FLAG,
    CONTAINER_RUNTIME,
    ENV_DENIED,
    BREAK_GLASS_ACCESS,
    BREAK_GLASS_REASON,
    BREAK_GLASS_DURATION,
    POLICY_INVALID,
];

/// Rules that check a request to break glass.
pub const BREAK_GLASS: &[&str] = &[BREAK_GLASS_ACCESS, BREAK_GLASS_REASON, BREAK_GLASS_DURATION];

/// Rules that a permitted break-glass request waives. Access, node,
/// container and variable rules are never waived.
pub const WAIVABLE_BY_BREAK_GLASS: &[&str] = &[ENVIRONMENT_WINDOW, APPROVAL_JUSTIFICATION, APPROVAL_TICKET];
