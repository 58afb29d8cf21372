//! Keeps the committed C header in step with `src/ffi.rs` and `Cargo.toml`.
//!
//! The header is generated with the pinned cbindgen dev-dependency. When
//! this test fails because the header is stale, regenerate it with
//!   GUARD_UPDATE_HEADER=1 cargo test -p policy-core --test header
//! and commit `include/guard_policy.h`.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on setup errors")]

use std::path::PathBuf;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    manifest_dir().join("include/guard_policy.h")
}

/// Version macros placed after the includes; the version comes from Cargo.toml.
fn version_macros() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "\n/* Version of the library this header was generated from (Cargo.toml). */\n\
         #define GUARD_POLICY_VERSION \"{version}\"\n\
         #define GUARD_POLICY_VERSION_MAJOR {}\n\
         #define GUARD_POLICY_VERSION_MINOR {}\n\
         #define GUARD_POLICY_VERSION_PATCH {}\n",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    )
}

fn generate_header() -> String {
    let mut config = cbindgen::Config::from_file(manifest_dir().join("cbindgen.toml")).unwrap();
    config.after_includes = Some(version_macros());

    // Only ffi.rs declares C items, so it is parsed alone; this avoids running
    // `cargo metadata` from inside a test.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(manifest_dir().join("src/ffi.rs"))
        .generate()
        .unwrap();
    let mut bytes = Vec::new();
    bindings.write(&mut bytes);
    String::from_utf8(bytes).unwrap()
}

#[test]
fn committed_header_is_current() {
    let generated = generate_header();
    if std::env::var_os("GUARD_UPDATE_HEADER").is_some() {
        std::fs::write(header_path(), &generated).unwrap();
        return;
    }

    let committed = std::fs::read_to_string(header_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "include/guard_policy.h is stale: regenerate it with \
         `GUARD_UPDATE_HEADER=1 cargo test -p policy-core --test header` and commit it\n\
         --- generated header ---\n{generated}"
    );
}

#[test]
fn header_version_matches_cargo_toml() {
    let committed = std::fs::read_to_string(header_path()).unwrap();
    let expected = format!("#define GUARD_POLICY_VERSION \"{}\"", env!("CARGO_PKG_VERSION"));
    let found: Vec<&str> = committed.lines().filter(|line| line.starts_with("#define GUARD_POLICY_VERSION ")).collect();
    assert_eq!(found, vec![expected.as_str()]);
}

#[test]
fn header_declares_every_entry_point() {
    let committed = std::fs::read_to_string(header_path()).unwrap();
    let entry_points = [
        "guard_result guard_policy_load_path(",
        "guard_result guard_policy_load_buffer(",
        "void guard_policy_free(guard_policy **policy);",
        "guard_result guard_request_evaluate(",
        "guard_result guard_ticket_verify(",
        "void guard_string_free(char **string);",
        "const char *guard_version_get(void);",
        "size_t guard_error_last(char *buffer, size_t buffer_length);",
    ];
    for entry_point in entry_points {
        assert!(committed.contains(entry_point), "header does not declare `{entry_point}`");
    }
}
