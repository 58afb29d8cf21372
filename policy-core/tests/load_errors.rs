//! Exact texts of policy load errors. Each names the JSON path, line and
//! column, and what was expected.

#![allow(clippy::unwrap_used, reason = "helpers outside #[test] functions fail the test by unwrapping")]

use policy_core::Policy;

const EXAMPLE: &str = include_str!("../../examples/policy.json");

fn load_error(source: &str) -> String {
    Policy::from_slice(source.as_bytes(), "policy.json").unwrap_err().to_string()
}

#[test]
fn example_policy_loads() {
    let policy = Policy::from_slice(EXAMPLE.as_bytes(), "examples/policy.json").unwrap();
    assert_eq!(policy.version(), 1);
    assert_eq!(policy.default_environment(), "dev");
    assert_eq!(policy.environment_names(), vec!["dev", "prod", "sandbox", "staging"]);
    assert_eq!(policy.image_set_names(), vec!["approved", "community"]);
    assert_eq!(policy.max_ttl_hours(), 24);
    assert_eq!(policy.sha256().len(), 64);
    assert_eq!(policy.resolve_environment("PRODUCTION"), Some("prod"));
    assert_eq!(policy.environment_aliases("Production"), vec!["production"]);
    assert_eq!(policy.environment_aliases("qa"), Vec::<&str>::new());
}

#[test]
fn policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
}

#[test]
fn unknown_top_level_field() {
    let source = "{\n  \"version\": 1,\n  \"default_environment\": \"dev\",\n  \"environments\": {\"dev\": {\"risk\": 1}},\n  \"colour\": \"blue\"\n}";
    assert_eq!(
        load_error(source),
        "policy.json:5:10: colour: unknown field `colour`, expected one of `version`, `mode`, `default_environment`, \
         `environments`, `windows`, `images`, `container`, `env`, `approvals`, `audit`, `metrics`"
    );
}

#[test]
fn unknown_nested_field() {
    let source = "{\"version\": 1, \"default_environment\": \"dev\",\n \"environments\": {\"dev\": {\"risk\": 1, \"riks\": 2}}}";
    assert_eq!(
        load_error(source),
        "policy.json:2:43: environments.dev.riks: unknown field `riks`, expected one of `risk`, `aliases`, `mode`, \
         `allow`, `windows`, `nodes`, `approval`, `container`, `env`, `break_glass`"
    );
}

#[test]
fn wrong_type_names_path() {
    let source = "{\"version\": 1, \"default_environment\": \"dev\",\n \"environments\": {\"dev\": {\"risk\": \"high\"}}}";
    assert_eq!(
        load_error(source),
        "policy.json:2:40: environments.dev.risk: invalid type: string \"high\", expected u32"
    );
}

#[test]
fn syntax_error_has_position() {
    assert_eq!(load_error("{\"version\": 1,,}"), "policy.json:1:15: key must be a string");
}

#[test]
fn cross_reference_problems_are_all_reported() {
    let source = r#"{
  "version": 1,
  "default_environment": "qa",
  "environments": {
    "dev": { "risk": 1, "aliases": ["Prod"] },
    "prod": { "risk": 10, "windows": ["nightly"], "container": { "images": ["gold"] } }
  },
  "images": { "approved": [ { "path": "images/*.sif", "sha256": "abc" } ] },
  "audit": { "path": "audit.jsonl" }
}"#;
    assert_eq!(
        load_error(source),
        [
            "policy.json:3:26: default_environment: default environment `qa` is not defined; expected one of `dev`, `prod`",
            "policy.json:5:37: environments.dev.aliases[0]: alias `Prod` is the name of environment `prod`; names and aliases must be unique, ignoring case",
            "policy.json:6:39: environments.prod.windows[0]: unknown window `nightly`; expected one of (none defined)",
            "policy.json:6:77: environments.prod.container.images[0]: unknown image set `gold`; expected one of `approved`",
            "policy.json:8:39: images.approved[0].path: relative path `images/*.sif`; expected an absolute path starting with `/`",
            "policy.json:8:65: images.approved[0].sha256: malformed sha256 `abc`; expected 64 hexadecimal characters",
            "policy.json:9:22: audit.path: relative path `audit.jsonl`; expected an absolute path starting with `/`",
        ]
        .join("\n")
    );
}

#[test]
fn missing_file_names_path() {
    let error = Policy::from_path(std::path::Path::new("/nonexistent/spank-guard/policy.json")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "/nonexistent/spank-guard/policy.json: cannot read policy file: No such file or directory (os error 2)"
    );
}

#[test]
fn non_utf8_policy_is_rejected() {
    let error = Policy::from_slice(b"{\"version\": 1, \xff}", "policy.json").unwrap_err();
    assert_eq!(error.to_string(), "policy.json: policy is not valid UTF-8 (byte 15)");
}

/// Returns true when the test process runs as root, which chown needs.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

#[test]
fn file_security_accepts_root_owned_file() {
    use std::os::unix::fs::PermissionsExt;
    if !running_as_root() {
        eprintln!("skipping: chown needs root");
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("policy.json");
    std::fs::write(&path, EXAMPLE).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    policy_core::check_file_security(&path).unwrap();
}

#[test]
fn file_security_rejects_writable_user_file() {
    use std::os::unix::fs::PermissionsExt;
    if !running_as_root() {
        eprintln!("skipping: chown needs root");
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("policy.json");
    std::fs::write(&path, EXAMPLE).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&path, Some(1000), None).unwrap();
    let origin = path.display().to_string();
    assert_eq!(
        policy_core::check_file_security(&path).unwrap_err().to_string(),
        format!(
            "{origin}: policy file is owned by uid 1000, expected root (uid 0); run `chown root {origin}`\n\
             {origin}: policy file is writable by group or others (mode 0666); run `chmod go-w {origin}`"
        )
    );
}

#[test]
fn file_security_rejects_directory() {
    let directory = tempfile::tempdir().unwrap();
    let origin = directory.path().display().to_string();
    assert_eq!(
        policy_core::check_file_security(directory.path()).unwrap_err().to_string(),
        format!("{origin}: policy path is not a regular file")
    );
}
