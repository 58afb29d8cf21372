//! Runs `guardctl policy sha256` on the example policy and on policy files
//! the plugin would reject.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on setup errors")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn example_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.json")
}

fn guardctl(arguments: &[&str], policy: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardctl")).args(arguments).arg(policy).env_clear().output().unwrap()
}

fn hex_sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Returns whether files this test creates are owned by root, as the owner check requires.
fn running_as_root() -> bool {
    let probe = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::MetadataExt::uid(&probe.as_file().metadata().unwrap()) == 0
}

#[test]
fn sha256_prints_digest_of_copy() {
    let output = guardctl(&["policy", "sha256", "--any-owner"], &example_policy());

    assert_eq!(String::from_utf8(output.stdout).unwrap(), format!("{}\n", hex_sha256(&example_policy())));
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn sha256_rejects_group_writable_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::copy(example_policy(), &policy).unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o664)).unwrap();

    let output = guardctl(&["policy", "sha256"], &policy);

    let message = String::from_utf8(output.stderr).unwrap();
    let origin = policy.display();
    assert!(
        message.starts_with(&format!("guardctl: {origin}: the plugin would reject this policy file:\n")),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "policy file is writable by group or others (mode 0664); run `chmod go-w {origin}`"
        )),
        "{message}"
    );
    assert_eq!(output.stdout, b"");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn sha256_accepts_root_owned_policy() {
    if !running_as_root() {
        eprintln!("skipped: files created by this test are not owned by root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::copy(example_policy(), &policy).unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();

    let output = guardctl(&["policy", "sha256"], &policy);

    assert_eq!(String::from_utf8(output.stdout).unwrap(), format!("{}\n", hex_sha256(&policy)));
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn sha256_rejects_invalid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, "{\"version\": 1}\n").unwrap();

    let output = guardctl(&["policy", "sha256", "--any-owner"], &policy);

    let message = String::from_utf8(output.stderr).unwrap();
    assert!(message.starts_with(&format!("guardctl: {}: cannot load policy, ", policy.display())), "{message}");
    assert_eq!(output.stdout, b"");
    assert_eq!(output.status.code(), Some(1));
}
