//! Table-driven policy cases from `tests/cases/*.json`.
//!
//! Each case file names a policy (inline, or a file under
//! `tests/cases/policies/`), a list of file-system entries to create, and
//! cases: a request, the evaluation time, the expected outcome and the
//! expected rule ids in order, optionally exact messages and effects. Files
//! with `load_errors` instead list policies that must fail to load with an
//! exact error text.
//!
//! Placeholders in policies and requests:
//! - `{tmp}`: a fresh directory that the runner creates with mode 0755 under
//!   cargo's target tmp directory (or `/run` when the checkout is below a
//!   world-writable directory), so that every parent is owned by root and
//!   not writable by others when the tests run as root;
//! - `{world}`: a fresh directory under the system temp dir (`/tmp`, which is
//!   world-writable), for the writable-parent cases;
//! - `{test_key}`: the base64 public key of the fixed test signing key.
//!
//! Tickets are signed in the runner with fixed seeds, so the suite needs no
//! stored secrets: key `test` (seed 0x01 repeated) is listed in the policies,
//! key `other` (seed 0x02 repeated) is not.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test loudly"
)]

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::SigningKey;
use policy_core::ticket::{issue, Claims};
use policy_core::{evaluate, Outcome, Policy, Request};
use serde::Deserialize;

mod support;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    policy: Option<serde_json::Value>,
    #[serde(default)]
    setup: Vec<SetupEntry>,
    /// Cases that need a root-owned tree (image checks with
    /// `require_root_owned`) are skipped with a note when not run as root.
    #[serde(default)]
    needs_root: bool,
    #[serde(default)]
    cases: Vec<Case>,
    #[serde(default)]
    load_errors: Vec<LoadErrorCase>,
}

/// One file-system entry; exactly one of `dir`, `file`, `symlink` is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupEntry {
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    content: String,
    #[serde(default)]
    symlink: Option<String>,
    #[serde(default)]
    target: Option<String>,
    /// Octal mode such as `"0755"`.
    #[serde(default)]
    mode: Option<String>,
    /// Owner uid to set with chown.
    #[serde(default)]
    owner: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    policy: Option<serde_json::Value>,
    now: String,
    request: serde_json::Value,
    #[serde(default)]
    ticket: Option<TicketSpec>,
    outcome: Outcome,
    rules: Vec<String>,
    #[serde(default)]
    messages: Option<Vec<String>>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    argv_prefix: Option<Vec<String>>,
    #[serde(default)]
    unset: Option<Vec<String>>,
    #[serde(default)]
    set: Option<BTreeMap<String, String>>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    ticket_kid: Option<String>,
    /// Rule ids the decision must list as deferred to the node.
    #[serde(default)]
    deferred: Option<Vec<String>>,
    /// Whether the decision must be marked as break glass.
    #[serde(default)]
    break_glass: Option<bool>,
    /// Rule ids that break glass must have waived, in order.
    #[serde(default)]
    waived: Option<Vec<String>>,
}

/// A ticket to sign and put in `--guard-ticket`; `iat` and `exp` are
/// seconds relative to the case's `now`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketSpec {
    key: String,
    kid: String,
    user: String,
    env: String,
    iat: i64,
    exp: i64,
    #[serde(default)]
    job_name: Option<String>,
    /// Flip one character of the claims part after signing.
    #[serde(default)]
    tamper: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadErrorCase {
    name: String,
    /// Policy source text, loaded as `policy.json`.
    source: String,
    error: String,
}

fn signing_key(name: &str) -> SigningKey {
    match name {
        "test" => SigningKey::from_bytes(&[1u8; 32]),
        "other" => SigningKey::from_bytes(&[2u8; 32]),
        other => panic!("unknown test key `{other}`"),
    }
}

fn test_public_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(signing_key("test").verifying_key().to_bytes())
}

struct Placeholders {
    tmp: PathBuf,
    world: PathBuf,
    key: String,
}

impl Placeholders {
    fn apply(&self, text: &str) -> String {
        text.replace("{tmp}", &self.tmp.to_string_lossy())
            .replace("{world}", &self.world.to_string_lossy())
            .replace("{test_key}", &self.key)
    }
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn resolve_policy(value: &serde_json::Value, placeholders: &Placeholders) -> String {
    let text = match value {
        serde_json::Value::String(name) => {
            std::fs::read_to_string(cases_dir().join("policies").join(name)).unwrap_or_else(|error| panic!("policy file `{name}`: {error}"))
        }
        other => serde_json::to_string_pretty(other).unwrap(),
    };
    placeholders.apply(&text)
}

fn create_entries(setup: &[SetupEntry], placeholders: &Placeholders) {
    for entry in setup {
        let path = match (&entry.dir, &entry.file, &entry.symlink) {
            (Some(dir), None, None) => {
                let path = PathBuf::from(placeholders.apply(dir));
                std::fs::create_dir_all(&path).unwrap();
                path
            }
            (None, Some(file), None) => {
                let path = PathBuf::from(placeholders.apply(file));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &entry.content).unwrap();
                path
            }
            (None, None, Some(link)) => {
                let path = PathBuf::from(placeholders.apply(link));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let target = placeholders.apply(entry.target.as_deref().expect("symlink needs a target"));
                symlink(target, &path).unwrap();
                path
            }
            _ => panic!("setup entry needs exactly one of dir, file, symlink: {entry:?}"),
        };
        if let Some(mode) = &entry.mode {
            let mode = u32::from_str_radix(mode, 8).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        if let Some(owner) = entry.owner {
            std::os::unix::fs::lchown(&path, Some(owner), None).unwrap();
        }
    }
}

fn build_request(case: &Case, placeholders: &Placeholders, now: jiff::Timestamp) -> Request {
    let text = placeholders.apply(&serde_json::to_string(&case.request).unwrap());
    let mut request: Request =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("case `{}`: invalid request: {error}", case.name));
    if let Some(spec) = &case.ticket {
        let claims = Claims {
            kid: spec.kid.clone(),
            user: spec.user.clone(),
            env: spec.env.clone(),
            iat: now.as_second() + spec.iat,
            exp: now.as_second() + spec.exp,
            job_name: spec.job_name.clone(),
            justification: None,
        };
        let mut token = issue(&signing_key(&spec.key), &claims);
        if spec.tamper {
            // Change the claims part, keeping it valid base64url: the
            // signature no longer matches.
            let claims_start = token.find('.').unwrap() + 1;
            let byte = token.as_bytes()[claims_start + 4];
            let replacement = if byte == b'A' { "B" } else { "A" };
            token.replace_range(claims_start + 4..claims_start + 5, replacement);
        }
        request.options.ticket = Some(token);
    }
    request
}

/// Compares one case; returns the mismatches found.
fn run_case(case: &Case, policy: &Policy, placeholders: &Placeholders) -> Vec<String> {
    let now: jiff::Timestamp = case.now.parse().unwrap_or_else(|error| panic!("case `{}`: bad now: {error}", case.name));
    let request = build_request(case, placeholders, now);
    let decision = evaluate(policy, &request, now);

    let mut problems = Vec::new();
    let mut expect = |what: &str, expected: String, actual: String| {
        if expected != actual {
            problems.push(format!("{what}: expected {expected}, got {actual}"));
        }
    };
    expect("outcome", format!("{:?}", case.outcome), format!("{:?}", decision.outcome));
    expect("rules", format!("{:?}", case.rules), format!("{:?}", decision.rule_ids()));

    if let Some(messages) = &case.messages {
        let expected: Vec<String> = messages.iter().map(|message| placeholders.apply(message)).collect();
        let actual: Vec<&str> = decision.reasons.iter().map(|reason| reason.message.as_str()).collect();
        expect("messages", format!("{expected:#?}"), format!("{actual:#?}"));
    }

    if let Some(environment) = &case.environment {
        expect("environment", format!("{environment:?}"), format!("{:?}", decision.environment.as_deref().unwrap_or("")));
    }
    if let Some(argv_prefix) = &case.argv_prefix {
        let expected: Vec<String> = argv_prefix.iter().map(|arg| placeholders.apply(arg)).collect();
        let actual = decision.effects.container.as_ref().map(|launch| launch.argv_prefix.clone()).unwrap_or_default();
        expect("argv_prefix", format!("{expected:?}"), format!("{actual:?}"));
    }
    if let Some(unset) = &case.unset {
        expect("unset", format!("{unset:?}"), format!("{:?}", decision.effects.unset));
    }
    if let Some(set) = &case.set {
        expect("set", format!("{set:?}"), format!("{:?}", decision.effects.set));
    }
    if let Some(correlation_id) = &case.correlation_id {
        expect("correlation_id", correlation_id.clone(), decision.correlation_id.clone());
    }
    if let Some(kid) = &case.ticket_kid {
        expect("ticket kid", kid.clone(), decision.ticket.as_ref().map(|ticket| ticket.kid.clone()).unwrap_or_default());
    }

    if let Some(deferred) = &case.deferred {
        expect("deferred", format!("{deferred:?}"), format!("{:?}", decision.deferred));
    }
    if let Some(break_glass) = case.break_glass {
        expect("break_glass", break_glass.to_string(), decision.break_glass.to_string());
    }
    if let Some(waived) = &case.waived {
        let actual: Vec<&str> = decision.waived.iter().map(|reason| reason.rule.as_str()).collect();
        expect("waived", format!("{waived:?}"), format!("{actual:?}"));
    }

    if decision.outcome == Outcome::Deny && decision.effects != policy_core::Effects::default() {
        problems.push("a deny must carry empty effects".to_owned());
    }
    problems
}

/// Returns true when the test process runs as root (`/proc/self` belongs to
/// the effective uid).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

#[test]
fn policy_cases() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    files.sort();

    let mut failures = Vec::new();
    let mut ran = 0usize;
    let mut skipped = 0usize;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let case_file: CaseFile =
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();

        let tmp = support::root_owned_tempdir("cases-");
        let world = tempfile::Builder::new().prefix("spank-guard-cases-").tempdir().unwrap();
        std::fs::set_permissions(world.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let placeholders = Placeholders { tmp: tmp.path().to_path_buf(), world: world.path().to_path_buf(), key: test_public_key() };

        if case_file.needs_root && !running_as_root() {
            eprintln!("skipping {file_name} ({}): image cases create root-owned files; run the tests as root", case_file.description);
            skipped += case_file.cases.len();
            continue;
        }
        if case_file.needs_root {
            assert!(
                support::root_owned_tree(tmp.path()),
                "{file_name}: {} has a parent that is not owned by root or is writable by others; \
                 set CARGO_TARGET_DIR to a directory below root-owned, non-world-writable directories",
                tmp.path().display()
            );
        }
        create_entries(&case_file.setup, &placeholders);

        for case in &case_file.load_errors {
            ran += 1;
            let actual = match Policy::from_slice(case.source.as_bytes(), "policy.json") {
                Ok(_) => "policy loaded".to_owned(),
                Err(error) => error.to_string(),
            };
            if actual != case.error {
                failures.push(format!("{file_name}: {}: expected error\n{}\ngot\n{actual}", case.name, case.error));
            }
        }

        let file_policy = case_file.policy.as_ref().map(|value| resolve_policy(value, &placeholders));
        for case in &case_file.cases {
            ran += 1;
            let policy_text = match (&case.policy, &file_policy) {
                (Some(value), _) => resolve_policy(value, &placeholders),
                (None, Some(text)) => text.clone(),
                (None, None) => panic!("{file_name}: case `{}` has no policy", case.name),
            };
            let policy = match Policy::from_slice(policy_text.as_bytes(), &file_name) {
                Ok(policy) => policy,
                Err(error) => {
                    failures.push(format!("{file_name}: {}: policy did not load:\n{error}", case.name));
                    continue;
                }
            };
            let problems = run_case(case, &policy, &placeholders);
            if !problems.is_empty() {
                failures.push(format!("{file_name}: {}:\n  {}", case.name, problems.join("\n  ")));
            }
        }
    }

    assert!(failures.is_empty(), "{} of {ran} cases failed:\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(ran + skipped >= 60, "expected at least 60 cases, found {}", ran + skipped);
    eprintln!("{ran} policy cases passed, {skipped} skipped");
}
