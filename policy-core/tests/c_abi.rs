//! Builds `tests/c/guard_abi_test.c` against the committed header and the
//! static library cargo built for this test run, then runs it, under
//! valgrind when `valgrind` is on PATH.
//!
//! The C program is compiled here, with the `cc` crate as a dev-dependency,
//! rather than by a build script. A build script runs before the library it
//! would link is built, and stable cargo gives a build script no path to
//! another crate's staticlib. When this test runs, cargo has already written
//! `libpolicy_core.a` next to the test executable.
//!
//! Set `GUARD_REQUIRE_VALGRIND=1` to make a missing valgrind a failure
//! instead of a skipped step (for CI hosts that install it).

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on setup errors")]

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use policy_core::ticket::Claims;

/// Seed of the test signing key; its public key goes into the valid policy.
const SIGNING_SEED: [u8; 32] = [7; 32];

/// 2026-06-01T12:00:00Z, the time the C program passes as `now_unix`
/// (keep in sync with NOW in tests/c/guard_abi_test.c).
const NOW_UNIX: i64 = 1_780_315_200;

/// Returns a policy that allows `alice` in `dev`, denies everyone but `alice`
/// in `prod`, and accepts tickets signed with the test key.
fn valid_policy() -> String {
    let key = SigningKey::from_bytes(&SIGNING_SEED);
    let public_key = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
    format!(
        r#"{{
  "version": 1,
  "mode": "enforce",
  "default_environment": "dev",
  "environments": {{
    "dev": {{ "risk": 1 }},
    "prod": {{ "risk": 10, "aliases": ["production"], "allow": {{ "users": ["alice"] }} }}
  }},
  "approvals": {{ "keys": {{ "test-key": "{public_key}" }}, "max_ttl_hours": 24 }}
}}
"#
    )
}

/// Issues a ticket for `alice` in `prod`, bound to job name `train`, valid
/// for two hours from an hour before `NOW_UNIX`.
fn ticket() -> String {
    let claims = Claims {
        kid: "test-key".to_owned(),
        user: "alice".to_owned(),
        env: "prod".to_owned(),
        iat: NOW_UNIX - 3600,
        exp: NOW_UNIX + 3600,
        job_name: Some("train".to_owned()),
        justification: Some("quarterly model refresh".to_owned()),
    };
    policy_core::ticket::issue(&SigningKey::from_bytes(&SIGNING_SEED), &claims)
}

/// A policy with an unknown field on line 3.
const INVALID_POLICY: &str = r#"{
  "version": 1,
  "colour": "red",
  "default_environment": "dev",
  "environments": { "dev": { "risk": 1 } }
}
"#;

/// Directory holding the test executable and, next to it, the crate's
/// staticlib (`target/<profile>/deps`).
fn artifact_dir() -> PathBuf {
    let executable = std::env::current_exe().unwrap();
    executable.parent().unwrap().to_path_buf()
}

fn compile_test_program(output: &Path) {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let static_library = artifact_dir().join("libpolicy_core.a");
    assert!(static_library.is_file(), "static library not found: {}", static_library.display());

    // cc reads these from the environment of a build script; a test has to
    // name them. The test only runs on Linux (see the cfg above).
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .target(&triple)
        .host(&triple)
        .opt_level(0)
        .debug(true)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .flag("-std=c11")
        .include(manifest_dir.join("include"))
        .get_compiler();

    let mut command = compiler.to_command();
    command
        .arg(manifest_dir.join("tests/c/guard_abi_test.c"))
        .arg(&static_library)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(output);
    let result = command.output().unwrap();
    assert!(
        result.status.success(),
        "compiling the C test program failed: {command:?}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// Finds `valgrind` on PATH.
fn find_valgrind() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|directory| directory.join("valgrind")).find(|candidate| candidate.is_file())
}

fn run(program: &Path, arguments: &[&std::ffi::OsStr], valgrind: Option<&Path>) -> Output {
    let mut command = match valgrind {
        Some(valgrind) => {
            let mut command = Command::new(valgrind);
            command
                .args(["--quiet", "--error-exitcode=1", "--leak-check=full"])
                .args(["--errors-for-leak-kinds=definite,indirect,possible"])
                .arg(program);
            command
        }
        None => Command::new(program),
    };
    command.args(arguments).output().unwrap()
}

#[test]
fn c_program_exercises_abi() {
    let directory = tempfile::tempdir().unwrap();
    let valid = directory.path().join("valid.json");
    let invalid = directory.path().join("invalid.json");
    let program = directory.path().join("guard_abi_test");
    std::fs::write(&valid, valid_policy()).unwrap();
    std::fs::write(&invalid, INVALID_POLICY).unwrap();
    compile_test_program(&program);

    let valgrind = find_valgrind();
    match &valgrind {
        Some(path) => eprintln!("running the C test program under {}", path.display()),
        None if std::env::var_os("GUARD_REQUIRE_VALGRIND").is_some() => {
            panic!("GUARD_REQUIRE_VALGRIND is set but valgrind is not on PATH")
        }
        None => eprintln!("valgrind not found on PATH: running the C test program without it"),
    }
    let ticket = ticket();
    let arguments = [valid.as_os_str(), invalid.as_os_str(), std::ffi::OsStr::new(&ticket)];
    let output = run(&program, &arguments, valgrind.as_deref());

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "C test program failed ({})\n{stdout}{stderr}", output.status);
    let summary = stdout.lines().last().unwrap_or_default();
    eprintln!("{summary}");
    assert!(
        summary.starts_with("c_abi: ") && summary.ends_with(" checks passed, 0 failed"),
        "unexpected summary: {stdout}"
    );
    // valgrind --quiet prints nothing unless it found an error.
    assert_eq!(stderr, "", "valgrind or the program wrote to stderr");
}
