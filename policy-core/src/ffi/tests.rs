//! Rust-side tests of the C ABI: they call the `extern "C"` functions the way
//! a C caller would. The C program in `tests/c/` covers the same paths
//! through the real header.

use std::ffi::{c_char, CStr};

use super::*;

fn last_error_text() -> String {
    let mut buffer = [0 as c_char; 512];
    // SAFETY: the buffer has the length passed.
    unsafe { guard_error_last(buffer.as_mut_ptr(), buffer.len()) };
    // SAFETY: guard_error_last NUL-terminates a buffer of length >= 1.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }.to_str().unwrap().to_owned()
}

#[test]
fn panic_becomes_result_code() {
    let result = run_fallible("guard_test_panic", || panic!("boom"));
    assert_eq!(result, GuardResult::Panic);
    assert_eq!(last_error_text(), "guard_test_panic: internal error, please report it: panic: boom");
}

#[test]
fn panic_in_infallible_entry_returns_fallback() {
    let value = run_infallible(7_usize, || panic!("boom"));
    assert_eq!(value, 7);
}

#[test]
fn failure_message_replaces_nul() {
    let result = run_fallible("guard_test", || {
        Err(Failure::new(GuardResult::PolicyLoad, "bad \0 byte".to_owned()))
    });
    assert_eq!(result, GuardResult::PolicyLoad);
    assert_eq!(last_error_text(), "guard_test: bad \u{FFFD} byte");
}

#[test]
fn error_last_truncates_on_char_boundary() {
    // "guard_test: é" is 14 bytes; the 2-byte é straddles a 14-byte buffer.
    run_fallible("guard_test", || Err(Failure::new(GuardResult::InvalidArgument, "é".to_owned())));
    let mut buffer = [0x55 as c_char; 14];
    // SAFETY: the buffer has the length passed.
    let length = unsafe { guard_error_last(buffer.as_mut_ptr(), buffer.len()) };
    assert_eq!(length, 14);
    // SAFETY: guard_error_last NUL-terminates a buffer of length >= 1.
    let copied = unsafe { CStr::from_ptr(buffer.as_ptr()) };
    assert_eq!(copied.to_str().unwrap(), "guard_test: ");
}

#[test]
fn error_last_with_zero_length_writes_nothing() {
    run_fallible("guard_test", || Err(Failure::new(GuardResult::InvalidArgument, "x".to_owned())));
    let mut byte = 0x55 as c_char;
    // SAFETY: a zero length promises nothing about the buffer, which is not written.
    let length = unsafe { guard_error_last(&mut byte, 0) };
    assert_eq!(length, 13);
    assert_eq!(byte, 0x55);
}

#[test]
fn success_clears_last_error() {
    run_fallible("guard_test", || Err(Failure::new(GuardResult::InvalidArgument, "x".to_owned())));
    assert_eq!(run_fallible("guard_test", || Ok(())), GuardResult::Ok);
    // SAFETY: NULL with length 0 asks for the length only.
    assert_eq!(unsafe { guard_error_last(std::ptr::null_mut(), 0) }, 0);
}

#[test]
fn version_matches_cargo_toml() {
    // SAFETY: guard_version_get returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(guard_version_get()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn free_functions_accept_null() {
    let mut policy: *mut GuardPolicy = std::ptr::null_mut();
    let mut string: *mut c_char = std::ptr::null_mut();
    // SAFETY: NULL and pointers to NULL are documented as accepted.
    unsafe {
        guard_policy_free(std::ptr::null_mut());
        guard_policy_free(&mut policy);
        guard_string_free(std::ptr::null_mut());
        guard_string_free(&mut string);
    }
    assert!(policy.is_null());
    assert!(string.is_null());
}

#[test]
fn string_free_clears_variable() {
    let mut string = into_c_string("decision".to_owned()).ok().unwrap();
    // SAFETY: the string came from into_c_string; the second call sees NULL.
    unsafe {
        guard_string_free(&mut string);
        guard_string_free(&mut string);
    }
    assert!(string.is_null());
}

#[test]
fn load_buffer_rejects_null_data() {
    let mut policy: *mut GuardPolicy = std::ptr::null_mut();
    // SAFETY: NULL data is documented as rejected.
    let result = unsafe { guard_policy_load_buffer(std::ptr::null(), 3, std::ptr::null(), &mut policy) };
    assert_eq!(result, GuardResult::NullPointer);
    assert!(policy.is_null());
    assert_eq!(last_error_text(), "guard_policy_load_buffer: argument `data` is NULL");
}

#[test]
fn load_buffer_rejects_oversized_length() {
    let mut policy: *mut GuardPolicy = std::ptr::null_mut();
    let byte = 0_u8;
    // SAFETY: the length check runs before the slice is built, so the
    // oversized length is never used to read memory.
    let result = unsafe { guard_policy_load_buffer(&byte, usize::MAX, std::ptr::null(), &mut policy) };
    assert_eq!(result, GuardResult::InvalidArgument);
    assert!(policy.is_null());
    assert_eq!(
        last_error_text(),
        format!("guard_policy_load_buffer: argument `length` is larger than PTRDIFF_MAX: {}", usize::MAX)
    );
}

#[test]
fn now_zero_means_system_clock() {
    let before = jiff::Timestamp::now();
    let now = timestamp_from_unix(GUARD_NOW_SYSTEM_CLOCK).ok().unwrap();
    assert!(now >= before);
    assert_eq!(timestamp_from_unix(1_780_315_200).ok().unwrap().as_second(), 1_780_315_200);
}

#[test]
fn load_path_accepts_non_utf8_bytes() {
    use std::os::unix::ffi::OsStrExt;

    let directory = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"policy-\xff.json");
    let path = directory.path().join(name);
    std::fs::write(&path, r#"{"version": 1, "default_environment": "dev", "environments": {"dev": {"risk": 1}}}"#)
        .unwrap();
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut policy: *mut GuardPolicy = std::ptr::null_mut();

    // SAFETY: `c_path` is a valid C string and `policy` is writable.
    let result = unsafe { guard_policy_load_path(c_path.as_ptr(), &mut policy) };

    assert_eq!(result, GuardResult::Ok, "{}", last_error_text());
    assert!(!policy.is_null());
    // SAFETY: `policy` came from guard_policy_load_path.
    unsafe { guard_policy_free(&mut policy) };
    assert!(policy.is_null());
}

#[test]
fn evaluate_leaves_out_params_on_failure() {
    let text = r#"{"version": 1, "default_environment": "dev", "environments": {"dev": {"risk": 1}}}"#;
    let mut policy: *mut GuardPolicy = std::ptr::null_mut();
    // SAFETY: the buffer is valid for its length and `policy` is writable.
    let loaded = unsafe { guard_policy_load_buffer(text.as_ptr(), text.len(), std::ptr::null(), &mut policy) };
    assert_eq!(loaded, GuardResult::Ok);

    let mut outcome = GuardOutcome::WouldDeny;
    let sentinel = std::ptr::dangling_mut::<c_char>();
    let mut decision = sentinel;
    // SAFETY: the policy is live, the request is a C string literal, and both
    // out-params are writable.
    let result =
        unsafe { guard_request_evaluate(policy, c"[1, 2]".as_ptr(), 1_780_315_200, &mut outcome, &mut decision) };

    assert_eq!(result, GuardResult::RequestJson);
    assert_eq!(outcome, GuardOutcome::WouldDeny);
    assert_eq!(decision, sentinel);
    assert!(last_error_text().starts_with("guard_request_evaluate: argument `request_json` is not a valid request: "));
    // SAFETY: `policy` came from guard_policy_load_buffer.
    unsafe { guard_policy_free(&mut policy) };
}
