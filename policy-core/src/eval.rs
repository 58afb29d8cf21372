//! Placeholder; being written.
use crate::{Decision, Policy, Request};
/// Placeholder.
pub fn evaluate(_policy: &Policy, _request: &Request, _now: jiff::Timestamp) -> Option<Decision> {
    None
}
