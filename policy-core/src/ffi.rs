//! C ABI of policy-core, declared in the committed header
//! `include/guard_policy.h` (generated from this file by cbindgen).
//!
//! Conventions, the same for every function:
//! - Names are `guard_<noun>_<verb>`.
//! - Every fallible function returns a [`GuardResult`]; `GUARD_RESULT_OK` is 0.
//!   On failure a message is stored for the calling thread and
//!   [`guard_error_last`] copies it out.
//! - Out-params come last and are written only when the result is
//!   `GUARD_RESULT_OK`, so a failed call leaves the caller's variables untouched.
//! - Every pointer a function returns is owned by the caller and is released
//!   by the `_free` function its documentation names. The `_free` functions
//!   take the address of the caller's pointer and set it to NULL, so freeing
//!   the same variable twice is a no-op.
//! - No Rust panic crosses the boundary: every entry runs inside
//!   `catch_unwind` and turns a panic into `GUARD_RESULT_PANIC`. This relies on
//!   the library being built with `panic = "unwind"`, which the workspace
//!   release profile sets.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::{evaluate, Outcome, Policy, Request};

#[cfg(test)]
mod tests;

/// A loaded policy. Opaque to C: create it with `guard_policy_load_path` or
/// `guard_policy_load_buffer` and release it with `guard_policy_free`.
pub struct GuardPolicy {
    policy: Policy,
}

// INVARIANT: the header promises that one handle may be used by several
// threads at once, which needs a `Send + Sync` policy. This fails to compile
// otherwise.
const _: () = {
    fn require_send_sync<T: Send + Sync>() {}
    let _ = require_send_sync::<Policy>;
};

/// Result code of every fallible C ABI function.
///
/// The numbers are part of the ABI: new codes get new numbers, existing
/// numbers never change meaning.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardResult {
    /// Success; out-params were written.
    Ok = 0,

    // Caller errors: the arguments are wrong, the library state is unchanged.
    /// A required pointer argument is NULL.
    NullPointer = 1,
    /// An argument is out of range (a length above `PTRDIFF_MAX`, a time
    /// outside the supported range).
    InvalidArgument = 2,
    /// A string argument that must be UTF-8 is not.
    InvalidUtf8 = 3,

    // Content errors: the arguments are well-formed but their content is rejected.
    /// The policy could not be read or is invalid. The message lists every
    /// problem, one per line, each with its JSON path, line and column.
    PolicyLoad = 10,
    /// The request JSON is malformed or does not match the request schema.
    RequestJson = 11,
    /// The approval ticket is malformed, forged, expired, or bound to another
    /// user, environment or job name.
    TicketInvalid = 12,

    // Internal errors: a bug in the library. Report it with the message.
    /// A panic was caught at the boundary; the call had no effect.
    Panic = 100,
    /// A result could not be encoded (JSON serialisation failed).
    Internal = 101,
}

/// Outcome of an evaluation, as in the decision JSON's `outcome` field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardOutcome {
    /// Every rule passed: run the job.
    Allow = 0,
    /// At least one rule failed in enforce mode: do not run the job.
    Deny = 1,
    /// At least one rule failed in audit mode: run the job and record the
    /// reasons.
    WouldDeny = 2,
}

impl From<Outcome> for GuardOutcome {
    fn from(outcome: Outcome) -> GuardOutcome {
        match outcome {
            Outcome::Allow => GuardOutcome::Allow,
            Outcome::Deny => GuardOutcome::Deny,
            Outcome::WouldDeny => GuardOutcome::WouldDeny,
        }
    }
}

/// Value of `now_unix` that makes evaluation and ticket checks use the
/// system clock.
pub const GUARD_NOW_SYSTEM_CLOCK: i64 = 0;

/// A failed call: the code to return and the message for `guard_error_last`.
struct Failure {
    code: GuardResult,
    message: String,
}

impl Failure {
    fn new(code: GuardResult, message: String) -> Failure {
        Failure { code, message }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

// These two run outside `catch_unwind`, so they use `try_with`: `with` panics
// when a thread calls in while its thread-locals are being destroyed, and the
// message is then dropped instead.
fn set_last_error(message: &str) {
    // A NUL would end the C string early; policy text can contain one as `\u0000`.
    let cleaned = message.replace('\0', "\u{FFFD}");
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = cleaned);
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|slot| slot.borrow_mut().clear());
}

/// Renders a panic payload for the error message.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "unknown panic payload"
    }
}

/// Runs the body of a fallible entry point: clears the thread's last error,
/// catches panics, and stores the message of a failure.
///
/// The body is asserted unwind-safe because it only reads the policy handle
/// and writes out-params after its last fallible step, so a panic leaves no
/// half-updated state visible to the caller.
fn run_fallible(function: &str, body: impl FnOnce() -> Result<(), Failure>) -> GuardResult {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => GuardResult::Ok,
        Ok(Err(failure)) => {
            set_last_error(&format!("{function}: {}", failure.message));
            failure.code
        }
        Err(payload) => {
            set_last_error(&format!(
                "{function}: internal error, please report it: panic: {}",
                panic_text(payload.as_ref())
            ));
            GuardResult::Panic
        }
    }
}

/// Runs the body of an entry point that cannot report errors (the `_free`
/// functions and getters) and returns `fallback` if it panics.
fn run_infallible<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Borrows a required C string argument.
///
/// # Safety
///
/// `pointer` is NULL or points to a NUL-terminated string that stays valid
/// and unchanged for `'a`.
unsafe fn borrow_c_str<'a>(pointer: *const c_char, argument: &str) -> Result<&'a CStr, Failure> {
    if pointer.is_null() {
        return Err(Failure::new(GuardResult::NullPointer, format!("argument `{argument}` is NULL")));
    }
    // SAFETY: the pointer is not NULL, and the caller guarantees a valid
    // NUL-terminated string for 'a.
    Ok(unsafe { CStr::from_ptr(pointer) })
}

/// Borrows a required UTF-8 C string argument.
///
/// # Safety
///
/// As for [`borrow_c_str`].
unsafe fn borrow_str<'a>(pointer: *const c_char, argument: &str) -> Result<&'a str, Failure> {
    // SAFETY: forwarded from this function's contract.
    let c_str = unsafe { borrow_c_str(pointer, argument) }?;
    c_str.to_str().map_err(|error| {
        Failure::new(
            GuardResult::InvalidUtf8,
            format!("argument `{argument}` is not valid UTF-8: {error}"),
        )
    })
}

/// Borrows an optional UTF-8 C string argument; NULL becomes `None`.
///
/// # Safety
///
/// As for [`borrow_c_str`].
unsafe fn borrow_optional_str<'a>(pointer: *const c_char, argument: &str) -> Result<Option<&'a str>, Failure> {
    if pointer.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { borrow_str(pointer, argument) }.map(Some)
}

/// Borrows the policy behind a handle.
///
/// # Safety
///
/// `handle` is NULL or was returned by a `guard_policy_load_*` function and
/// not freed since.
unsafe fn borrow_policy<'a>(handle: *const GuardPolicy) -> Result<&'a Policy, Failure> {
    // SAFETY: the caller guarantees a live handle or NULL, and `as_ref` maps
    // NULL to None.
    match unsafe { handle.as_ref() } {
        Some(handle) => Ok(&handle.policy),
        None => Err(Failure::new(GuardResult::NullPointer, "argument `policy` is NULL".to_owned())),
    }
}

/// Checks that an out-param is not NULL before any work is done.
fn require_out<T>(pointer: *mut T, argument: &str) -> Result<(), Failure> {
    if pointer.is_null() {
        return Err(Failure::new(GuardResult::NullPointer, format!("argument `{argument}` is NULL")));
    }
    Ok(())
}

/// Converts the `now_unix` argument to a timestamp.
fn timestamp_from_unix(now_unix: i64) -> Result<jiff::Timestamp, Failure> {
    if now_unix == GUARD_NOW_SYSTEM_CLOCK {
        return Ok(jiff::Timestamp::now());
    }
    jiff::Timestamp::from_second(now_unix).map_err(|error| {
        Failure::new(
            GuardResult::InvalidArgument,
            format!("argument `now_unix` is out of range: {now_unix}: {error}"),
        )
    })
}

/// Moves a Rust string to a caller-owned C string.
fn into_c_string(text: String) -> Result<*mut c_char, Failure> {
    CString::new(text).map(CString::into_raw).map_err(|error| {
        Failure::new(GuardResult::Internal, format!("result contains a NUL byte at offset {}", error.nul_position()))
    })
}

/// Returns the canonical name and aliases of the environment `name` refers
/// to, for ticket binding checks.
fn environment_names<'a>(policy: &'a Policy, name: &str) -> Result<Vec<&'a str>, Failure> {
    let Some(canonical) = policy.resolve_environment(name) else {
        return Err(Failure::new(
            GuardResult::InvalidArgument,
            format!("argument `environment` names no environment of the policy: `{name}`"),
        ));
    };
    let mut names = vec![canonical];
    names.extend(policy.environment_aliases(canonical));
    Ok(names)
}

fn load_failure(error: &crate::LoadError) -> Failure {
    Failure::new(GuardResult::PolicyLoad, format!("policy is invalid:\n{error}"))
}

/// Loads and validates the policy file at `path`.
///
/// On success `*policy_out` receives a new handle that the caller owns and
/// releases with `guard_policy_free`. The handle is immutable, so one handle
/// may be used by several threads at once.
///
/// Returns `GUARD_RESULT_POLICY_LOAD` when the file cannot be read or is
/// invalid; the last error then lists every problem, one per line.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string (any bytes, as paths are on
/// Unix). `policy_out` is NULL or points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn guard_policy_load_path(path: *const c_char, policy_out: *mut *mut GuardPolicy) -> GuardResult {
    run_fallible("guard_policy_load_path", || {
        // SAFETY: `path` is NULL or a valid C string per this function's contract.
        let path = unsafe { borrow_c_str(path, "path") }?;
        require_out(policy_out, "policy_out")?;

        let path = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
        let policy = Policy::from_path(path).map_err(|error| load_failure(&error))?;

        let handle = Box::into_raw(Box::new(GuardPolicy { policy }));
        // SAFETY: `policy_out` is not NULL (checked above) and writable per
        // this function's contract.
        unsafe { policy_out.write(handle) };
        Ok(())
    })
}

/// Loads and validates a policy from `length` bytes at `data`.
///
/// `origin` names the source in error messages (for example the path the
/// bytes came from); NULL means `<buffer>`. Ownership of the result is as for
/// `guard_policy_load_path`; the library copies what it needs from `data`.
///
/// # Safety
///
/// `data` is NULL or points to `length` readable bytes. `origin` is NULL or a
/// NUL-terminated UTF-8 string. `policy_out` is NULL or points to writable
/// storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn guard_policy_load_buffer(
    data: *const u8,
    length: usize,
    origin: *const c_char,
    policy_out: *mut *mut GuardPolicy,
) -> GuardResult {
    run_fallible("guard_policy_load_buffer", || {
        if data.is_null() {
            return Err(Failure::new(GuardResult::NullPointer, "argument `data` is NULL".to_owned()));
        }
        if length > isize::MAX as usize {
            return Err(Failure::new(
                GuardResult::InvalidArgument,
                format!("argument `length` is larger than PTRDIFF_MAX: {length}"),
            ));
        }
        // SAFETY: `origin` is NULL or a valid C string per this function's contract.
        let origin = unsafe { borrow_optional_str(origin, "origin") }?.unwrap_or("<buffer>");
        require_out(policy_out, "policy_out")?;

        // SAFETY: `data` is not NULL, `length` fits in isize (both checked
        // above), and the caller guarantees `length` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data, length) };
        let policy = Policy::from_slice(bytes, origin).map_err(|error| load_failure(&error))?;

        let handle = Box::into_raw(Box::new(GuardPolicy { policy }));
        // SAFETY: `policy_out` is not NULL (checked above) and writable per
        // this function's contract.
        unsafe { policy_out.write(handle) };
        Ok(())
    })
}

/// Releases a policy handle and sets `*policy` to NULL.
///
/// Both `policy` and `*policy` may be NULL, in which case nothing happens.
/// Because the variable is cleared, calling `guard_policy_free(&p)` twice on
/// the same variable `p` is safe. Other copies of the pointer are not
/// cleared and must not be used or freed afterwards.
///
/// # Safety
///
/// `policy` is NULL or points to a pointer that is NULL or was returned by a
/// `guard_policy_load_*` function and not freed since.
#[no_mangle]
pub unsafe extern "C" fn guard_policy_free(policy: *mut *mut GuardPolicy) {
    run_infallible((), || {
        if policy.is_null() {
            return;
        }
        // SAFETY: `policy` is not NULL and points to a readable pointer.
        let handle = unsafe { policy.read() };
        if handle.is_null() {
            return;
        }
        // SAFETY: `policy` is not NULL and writable. Clearing it before the
        // drop means a panic in drop still leaves no dangling pointer behind.
        unsafe { policy.write(std::ptr::null_mut()) };
        // SAFETY: `handle` came from Box::into_raw in a load function and has
        // not been freed, per this function's contract.
        drop(unsafe { Box::from_raw(handle) });
    });
}

/// Evaluates a request against a policy.
///
/// `request_json` is one JSON object with the request fields (`user`,
/// `groups`, `options`, `env`, `argv`, ...; unknown fields are rejected).
/// `now_unix` is the evaluation time in Unix seconds, or
/// `GUARD_NOW_SYSTEM_CLOCK` (0) for the system clock.
///
/// On success, `*outcome_out` (when `outcome_out` is not NULL) receives the
/// outcome and `*decision_json_out` receives the whole decision as a JSON
/// object: a caller-owned string to release with `guard_string_free`. A deny
/// is a successful evaluation: the result is `GUARD_RESULT_OK` and the
/// outcome is `GUARD_OUTCOME_DENY`.
///
/// # Safety
///
/// `policy` is NULL or a live handle. `request_json` is NULL or a
/// NUL-terminated string. `outcome_out` is NULL or writable.
/// `decision_json_out` is NULL or points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn guard_request_evaluate(
    policy: *const GuardPolicy,
    request_json: *const c_char,
    now_unix: i64,
    outcome_out: *mut GuardOutcome,
    decision_json_out: *mut *mut c_char,
) -> GuardResult {
    run_fallible("guard_request_evaluate", || {
        // SAFETY: `policy` is NULL or a live handle per this function's contract.
        let policy = unsafe { borrow_policy(policy) }?;
        // SAFETY: `request_json` is NULL or a valid C string per this function's contract.
        let request_json = unsafe { borrow_str(request_json, "request_json") }?;
        require_out(decision_json_out, "decision_json_out")?;
        let now = timestamp_from_unix(now_unix)?;

        let request: Request = serde_json::from_str(request_json).map_err(|error| {
            Failure::new(GuardResult::RequestJson, format!("argument `request_json` is not a valid request: {error}"))
        })?;
        let decision = evaluate(policy, &request, now);
        let json = serde_json::to_string(&decision)
            .map_err(|error| Failure::new(GuardResult::Internal, format!("cannot encode the decision: {error}")))?;
        let json = into_c_string(json)?;

        if !outcome_out.is_null() {
            // SAFETY: `outcome_out` is not NULL and writable per this function's contract.
            unsafe { outcome_out.write(decision.outcome.into()) };
        }
        // SAFETY: `decision_json_out` is not NULL (checked above) and writable
        // per this function's contract.
        unsafe { decision_json_out.write(json) };
        Ok(())
    })
}

/// Verifies an approval ticket against the policy's keys and `max_ttl_hours`.
///
/// Each of `user`, `environment` and `job_name` that is not NULL must match
/// the ticket's binding; NULL skips that check. `environment` may be a
/// canonical name or an alias, in any case; a name the policy does not
/// define is `GUARD_RESULT_INVALID_ARGUMENT`. A ticket bound to a job name
/// fails when `job_name` differs, and passes when `job_name` is NULL.
/// `now_unix` is as for `guard_request_evaluate`.
///
/// On success `*claims_json_out` receives the ticket's claims as a JSON
/// object (`kid`, `user`, `env`, `iat`, `exp`, and `job_name` and
/// `justification` when present), a caller-owned string to release with
/// `guard_string_free`. Returns `GUARD_RESULT_TICKET_INVALID` with the reason
/// in the last error when the ticket is rejected.
///
/// # Safety
///
/// `policy` is NULL or a live handle. `ticket`, `user`, `environment` and
/// `job_name` are NULL or NUL-terminated strings. `claims_json_out` is NULL or points to
/// writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn guard_ticket_verify(
    policy: *const GuardPolicy,
    ticket: *const c_char,
    user: *const c_char,
    environment: *const c_char,
    job_name: *const c_char,
    now_unix: i64,
    claims_json_out: *mut *mut c_char,
) -> GuardResult {
    run_fallible("guard_ticket_verify", || {
        // SAFETY: `policy` is NULL or a live handle per this function's contract.
        let policy = unsafe { borrow_policy(policy) }?;
        // SAFETY: `ticket` is NULL or a valid C string per this function's contract.
        let ticket = unsafe { borrow_str(ticket, "ticket") }?;
        // SAFETY: `user` is NULL or a valid C string per this function's contract.
        let user = unsafe { borrow_optional_str(user, "user") }?;
        // SAFETY: `environment` is NULL or a valid C string per this function's contract.
        let environment = unsafe { borrow_optional_str(environment, "environment") }?;
        // SAFETY: `job_name` is NULL or a valid C string per this function's contract.
        let job_name = unsafe { borrow_optional_str(job_name, "job_name") }?;
        require_out(claims_json_out, "claims_json_out")?;
        let now = timestamp_from_unix(now_unix)?;

        let claims = crate::ticket::verify(ticket, policy.approval_keys(), policy.max_ttl_hours(), now.as_second())
            .map_err(|error| Failure::new(GuardResult::TicketInvalid, error.to_string()))?;
        if user.is_some() || environment.is_some() || job_name.is_some() {
            let user = user.unwrap_or(&claims.user);
            let names = match environment {
                Some(environment) => environment_names(policy, environment)?,
                None => vec![claims.env.as_str()],
            };
            let job_name = job_name.or(claims.job_name.as_deref());
            crate::ticket::check_binding(&claims, user, &names, job_name)
                .map_err(|error| Failure::new(GuardResult::TicketInvalid, error.to_string()))?;
        }

        let json = serde_json::to_string(&claims)
            .map_err(|error| Failure::new(GuardResult::Internal, format!("cannot encode the claims: {error}")))?;
        let json = into_c_string(json)?;
        // SAFETY: `claims_json_out` is not NULL (checked above) and writable
        // per this function's contract.
        unsafe { claims_json_out.write(json) };
        Ok(())
    })
}

/// Releases a string returned by this library and sets `*string` to NULL.
///
/// Both `string` and `*string` may be NULL, in which case nothing happens,
/// so freeing the same variable twice is safe.
///
/// # Safety
///
/// `string` is NULL or points to a pointer that is NULL or was returned
/// through an out-param of this library and not freed since. Strings from
/// `guard_version_get` are static and must not be passed here.
#[no_mangle]
pub unsafe extern "C" fn guard_string_free(string: *mut *mut c_char) {
    run_infallible((), || {
        if string.is_null() {
            return;
        }
        // SAFETY: `string` is not NULL and points to a readable pointer.
        let owned = unsafe { string.read() };
        if owned.is_null() {
            return;
        }
        // SAFETY: `string` is not NULL and writable.
        unsafe { string.write(std::ptr::null_mut()) };
        // SAFETY: `owned` came from CString::into_raw in this library and has
        // not been freed, per this function's contract.
        drop(unsafe { CString::from_raw(owned) });
    });
}

/// Returns the library version, for example `"0.1.0"`, as a static string
/// that the caller must not free. Compare it with `GUARD_POLICY_VERSION` to
/// detect a header that does not match the loaded library.
#[no_mangle]
pub extern "C" fn guard_version_get() -> *const c_char {
    const VERSION_NUL: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    run_infallible(std::ptr::null(), || VERSION_NUL.as_ptr().cast())
}

/// Copies the calling thread's last error message into `buffer`.
///
/// The message describes the most recent failed call on this thread; every
/// function that returns a `guard_result` clears it when it starts, so after
/// a successful call the message is empty. The message is UTF-8 and may span
/// several lines (one per policy problem).
///
/// Writes at most `buffer_length` bytes including the terminating NUL,
/// truncating on a UTF-8 character boundary, and always NUL-terminates when
/// `buffer_length` is at least 1. Returns the full length of the message in
/// bytes, without the NUL, like `snprintf`: a return value of
/// `buffer_length` or more means the copy was truncated. Pass NULL and 0 to
/// ask for the length only.
///
/// # Safety
///
/// `buffer` is NULL or points to `buffer_length` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn guard_error_last(buffer: *mut c_char, buffer_length: usize) -> usize {
    run_infallible(0, || {
        LAST_ERROR.with(|slot| {
            let message = slot.borrow();
            if buffer.is_null() || buffer_length == 0 {
                return message.len();
            }

            let mut copied = message.len().min(buffer_length - 1);
            while !message.is_char_boundary(copied) {
                copied -= 1;
            }
            // SAFETY: `buffer` is not NULL and has `buffer_length` writable
            // bytes; `copied` is at most `buffer_length - 1`, leaving room for
            // the NUL, and the source is a live String that cannot overlap a
            // caller buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(message.as_ptr(), buffer.cast::<u8>(), copied);
                buffer.add(copied).write(0);
            }
            message.len()
        })
    })
}
