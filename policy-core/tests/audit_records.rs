//! Audit records: exact fields of each event, one line per record whatever
//! the values contain, no job environment values, and concurrent appends
//! that never interleave.

#![allow(clippy::unwrap_used, reason = "helpers outside #[test] functions fail the test by unwrapping")]

use std::collections::BTreeMap;

use policy_core::audit::{append_line, AuditRecord};
use policy_core::{evaluate, GuardOptions, Outcome, Policy, Request};
use serde_json::json;

const POLICY: &str = r#"{
  "version": 1,
  "default_environment": "dev",
  "environments": {
    "dev": { "risk": 1, "env": { "set": { "HOS_TIER": "development" } } },
    "prod": { "risk": 10, "approval": { "justification_min_chars": 15 } }
  },
  "env": { "deny": ["LD_PRELOAD"], "set": { "HOS_ENV": "{environment}", "HOS_CORRELATION_ID": "{correlation_id}" } },
  "container": { "digest_cache": null },
  "audit": { "path": "/var/log/spank-guard/audit.jsonl", "argv": "argv0" }
}"#;

fn now() -> jiff::Timestamp {
    "2026-12-02T12:00:00.123456Z".parse().unwrap()
}

fn request() -> Request {
    Request {
        cluster: "hpc".to_owned(),
        job_id: Some(42),
        step_id: Some(0),
        node: Some("c1".to_owned()),
        uid: 1000,
        user: "bob".to_owned(),
        groups: vec!["users".to_owned()],
        options: GuardOptions {
            env: Some("Prod".to_owned()),
            justification: Some("line one\nline \"two\"".to_owned()),
            ticket: Some("v1.secret-ticket.signature".to_owned()),
            ..GuardOptions::default()
        },
        env: BTreeMap::from([
            ("LD_PRELOAD".to_owned(), "/home/bob/secret-hook.so".to_owned()),
            ("API_TOKEN".to_owned(), "hunter2".to_owned()),
            ("BUILD_URL".to_owned(), "https://ci.example/job/7/".to_owned()),
            ("GIT_COMMIT".to_owned(), "0123abc".to_owned()),
        ]),
        argv: vec!["python".to_owned(), "--token=hunter2".to_owned()],
        job_name: Some("train".to_owned()),
        ..Request::default()
    }
}

#[test]
fn decision_record_fields() {
    let policy = Policy::from_slice(POLICY.as_bytes(), "policy.json").unwrap();
    let request = request();
    let decision = evaluate(&policy, &request, now());
    let line = AuditRecord::decision(&policy, &request, &decision, now()).to_json_line();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let expected = json!({
        "ts": "2026-12-02T12:00:00.123Z",
        "event": "decision",
        "correlation_id": "hpc-42",
        "cluster": "hpc",
        "job_id": 42,
        "step_id": 0,
        "node": "c1",
        "uid": 1000,
        "user": "bob",
        "environment": "prod",
        "risk": 10,
        "mode": "enforce",
        "outcome": "allow",
        "reasons": [],
        "effects": {
            "unset": ["LD_PRELOAD"],
            "set": ["HOS_CORRELATION_ID", "HOS_ENV"]
        },
        "argv0": "python",
        "ci": { "build_url": "https://ci.example/job/7/", "git_commit": "0123abc" },
        "justification": "line one\nline \"two\"",
        "policy_sha256": policy.sha256(),
        "version": policy_core::VERSION,
        "request": {
            "context": "submit",
            "groups": ["users"],
            "job_name": "train",
            "environment": "Prod",
            "environment_source": "option",
            "ticket_given": true,
            "env_names": ["API_TOKEN", "BUILD_URL", "GIT_COMMIT", "LD_PRELOAD"]
        }
    });
    assert_eq!(value, expected);
}

#[test]
fn record_is_one_line_without_secrets() {
    let policy = Policy::from_slice(POLICY.as_bytes(), "policy.json").unwrap();
    let request = request();
    let decision = evaluate(&policy, &request, now());
    let line = AuditRecord::decision(&policy, &request, &decision, now()).to_json_line();
    assert_eq!(line.matches('\n').count(), 1);
    assert!(line.ends_with('\n'));
    assert!(!line.contains("hunter2"), "{line}");
    assert!(!line.contains("secret-hook"), "{line}");
    assert!(!line.contains("secret-ticket"), "{line}");
}

#[test]
fn full_argv_when_configured() {
    let text = POLICY.replace(r#""argv": "argv0""#, r#""argv": "full""#);
    let policy = Policy::from_slice(text.as_bytes(), "policy.json").unwrap();
    let request = request();
    let decision = evaluate(&policy, &request, now());
    let record = AuditRecord::decision(&policy, &request, &decision, now());
    assert_eq!(record.argv0, None);
    assert_eq!(record.argv, Some(vec!["python".to_owned(), "--token=hunter2".to_owned()]));
}

#[test]
fn deny_record_has_reasons_and_no_effects() {
    let policy = Policy::from_slice(POLICY.as_bytes(), "policy.json").unwrap();
    let mut request = request();
    request.options.justification = Some("short".to_owned());
    let decision = evaluate(&policy, &request, now());
    let record = AuditRecord::decision(&policy, &request, &decision, now());
    assert_eq!(record.outcome, Some(Outcome::Deny));
    assert_eq!(record.reasons.len(), 1);
    assert_eq!(record.reasons[0].rule, "approval.justification");
    let effects = record.effects.unwrap();
    assert!(effects.unset.is_empty());
    assert!(effects.set.is_empty());
    assert_eq!(effects.container, None);
}

#[test]
fn step_end_record_fields() {
    let policy = Policy::from_slice(POLICY.as_bytes(), "policy.json").unwrap();
    let request = request();
    let decision = evaluate(&policy, &request, now());
    let line = AuditRecord::step_end(&request, Some(&decision), 2, &[0, 256], now()).to_json_line();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let expected = json!({
        "ts": "2026-12-02T12:00:00.123Z",
        "event": "step_end",
        "correlation_id": "hpc-42",
        "cluster": "hpc",
        "job_id": 42,
        "step_id": 0,
        "node": "c1",
        "uid": 1000,
        "user": "bob",
        "environment": "prod",
        "risk": 10,
        "mode": "enforce",
        "outcome": "allow",
        "reasons": [],
        "argv0": "python",
        "ci": { "build_url": "https://ci.example/job/7/", "git_commit": "0123abc" },
        "policy_sha256": policy.sha256(),
        "version": policy_core::VERSION,
        "tasks": 2,
        "exit_codes": [0, 256]
    });
    assert_eq!(value, expected);
}

#[test]
fn policy_error_record_fields() {
    let request = request();
    let error = "/etc/slurm/spank-guard/policy.json:3:5: version: unsupported policy format version `2`";
    let line = AuditRecord::policy_error(&request, error, Outcome::Deny, now()).to_json_line();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let expected = json!({
        "ts": "2026-12-02T12:00:00.123Z",
        "event": "policy_error",
        "correlation_id": "hpc-42",
        "cluster": "hpc",
        "job_id": 42,
        "step_id": 0,
        "node": "c1",
        "uid": 1000,
        "user": "bob",
        "environment": null,
        "risk": null,
        "mode": null,
        "outcome": "deny",
        "reasons": [ { "rule": "policy.invalid", "message": error } ],
        "argv0": "python",
        "ci": { "build_url": "https://ci.example/job/7/", "git_commit": "0123abc" },
        "policy_sha256": null,
        "version": policy_core::VERSION,
        "error": error
    });
    assert_eq!(value, expected);
}

#[test]
fn replay_request_gives_same_decision() {
    let policy = Policy::from_slice(POLICY.as_bytes(), "policy.json").unwrap();
    let mut request = request();
    request.options.ticket = None;
    let decision = evaluate(&policy, &request, now());
    let line = AuditRecord::decision(&policy, &request, &decision, now()).to_json_line();
    let record: AuditRecord = serde_json::from_str(&line).unwrap();
    let replayed = record.replay_request().unwrap();
    let again = evaluate(&policy, &replayed, now());
    assert_eq!(again.outcome, decision.outcome);
    assert_eq!(again.environment, decision.environment);
    assert_eq!(again.correlation_id, decision.correlation_id);
    assert_eq!(again.effects.unset, decision.effects.unset);
}

#[test]
fn concurrent_appends_stay_whole() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit/audit.jsonl");
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let path = path.clone();
            std::thread::spawn(move || {
                for record in 0..200 {
                    let padding = "x".repeat(2000 + thread * 100);
                    let line = format!("{{\"thread\":{thread},\"record\":{record},\"padding\":\"{padding}\"}}\n");
                    append_line(&path, &line).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1600);
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value["thread"].is_u64(), "{line}");
    }
}
