//! `guardctl audit verify|query|tail` and `guardctl replay` on journals written with
//! `policy_core::journal`, checking exact output lines and exit codes.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on setup errors")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use policy_core::audit::AuditRecord;
use policy_core::journal::{append_record, head_path, line_sha256};
use policy_core::{evaluate, GuardOptions, Policy, Request};

const POLICY: &str = r#"{
  "version": 1,
  "default_environment": "dev",
  "environments": {
    "dev": { "risk": 1 },
    "prod": { "risk": 10, "allow": { "users": ["alice"] }, "approval": { "justification_min_chars": 15 } }
  },
  "container": { "digest_cache": null },
  "audit": { "path": "/var/log/spank-guard/audit.jsonl" }
}"#;

fn guardctl(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardctl")).args(arguments).env_clear().output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Writes five decisions: alice dev (job 1), bob prod (job 2, denied),
/// alice prod without justification (job 3, denied), alice prod with one
/// (job 4), bob dev (job 5), each at 10:0N UTC.
fn write_journal(path: &Path) {
    let policy = Policy::from_slice(POLICY.as_bytes(), "policy.json").unwrap();
    let cases = [
        ("alice", "dev", None),
        ("bob", "prod", Some("nightly model refresh")),
        ("alice", "prod", None),
        ("alice", "prod", Some("nightly model refresh")),
        ("bob", "dev", None),
    ];
    for (index, (user, environment, justification)) in cases.into_iter().enumerate() {
        let job = index as u32 + 1;
        let request = Request {
            cluster: "hpc".to_owned(),
            job_id: Some(job),
            step_id: Some(0),
            node: Some("c1".to_owned()),
            user: user.to_owned(),
            options: GuardOptions {
                env: Some(environment.to_owned()),
                justification: justification.map(str::to_owned),
                ..GuardOptions::default()
            },
            argv: vec!["true".to_owned()],
            ..Request::default()
        };
        let now = format!("2026-12-04T10:0{index}:00Z").parse().unwrap();
        let decision = evaluate(&policy, &request, now);
        append_record(path, &AuditRecord::decision(&policy, &request, &decision, now)).unwrap();
    }
}

fn journal() -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    write_journal(&path);
    (directory, path)
}

fn jobs_of(json_lines: &str) -> Vec<u64> {
    json_lines.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["job_id"].as_u64().unwrap()).collect()
}

#[test]
fn verify_intact_journal() {
    let (_directory, path) = journal();
    let output = guardctl(&["audit", "verify", path.to_str().unwrap()]);
    assert_eq!(stderr(&output), "");
    assert_eq!(
        stdout(&output),
        format!("audit chain intact: 1 file, 5 records, seq 1 to 5\nhead: {} names the last record\n", head_path(&path).display())
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn verify_reports_edited_line() {
    let (_directory, path) = journal();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let original = line_sha256(lines[1].as_bytes());
    lines[1] = lines[1].replace("\"outcome\":\"deny\"", "\"outcome\":\"allow\"");
    let edited = line_sha256(lines[1].as_bytes());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let output = guardctl(&["audit", "verify", path.to_str().unwrap()]);
    let file = path.display();
    assert_eq!(
        stderr(&output),
        format!(
            "guardctl: audit chain broken at {file}:2: the line hashes to {edited} but the next record ({file}:3, seq 3) recorded prev_sha256 {original}: one of the two lines was changed after it was written\nintact records before the break: 1\n"
        )
    );
    assert_eq!(stdout(&output), "");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn verify_across_rotation() {
    let (directory, path) = journal();
    let rotated = directory.path().join("audit.jsonl-20261204");
    std::fs::rename(&path, &rotated).unwrap();
    write_journal(&path);
    let output = guardctl(&["audit", "verify", rotated.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(
        stdout(&output),
        format!("audit chain intact: 2 files, 10 records, seq 1 to 10\nhead: {} names the last record\n", head_path(&path).display())
    );
    assert_eq!(output.status.code(), Some(0));

    let live_only = guardctl(&["audit", "verify", path.to_str().unwrap()]);
    let first_line = std::fs::read_to_string(&rotated).unwrap().lines().last().unwrap().to_owned();
    assert_eq!(
        stdout(&live_only).lines().nth(1).unwrap(),
        format!(
            "note: the first record (seq 6) links to sha256 {}, the last record of an earlier file that was not given",
            line_sha256(first_line.as_bytes())
        )
    );
}

#[test]
fn query_filters_combine() {
    let (_directory, path) = journal();
    let file = path.to_str().unwrap();
    let cases: [(&[&str], &[u64]); 8] = [
        (&[], &[1, 2, 3, 4, 5]),
        (&["--user", "alice"], &[1, 3, 4]),
        (&["--env", "prod"], &[2, 3, 4]),
        (&["--outcome", "deny"], &[2, 3]),
        (&["--env", "prod", "--outcome", "allow"], &[4]),
        (&["--job", "5"], &[5]),
        (&["--since", "2026-12-04T10:01:00Z", "--until", "2026-12-04T10:03:00Z"], &[2, 3]),
        (&["--break-glass"], &[]),
    ];
    for (filters, expected) in cases {
        let mut arguments = vec!["audit", "query", "--json"];
        arguments.extend_from_slice(filters);
        arguments.push(file);
        let output = guardctl(&arguments);
        assert_eq!(output.status.code(), Some(0), "{filters:?}: {}", stderr(&output));
        assert_eq!(jobs_of(&stdout(&output)), expected, "{filters:?}");
    }
}

#[test]
fn query_json_prints_lines_verbatim() {
    let (_directory, path) = journal();
    let output = guardctl(&["audit", "query", "--json", "--job", "2", path.to_str().unwrap()]);
    let second = std::fs::read_to_string(&path).unwrap().lines().nth(1).unwrap().to_owned();
    assert_eq!(stdout(&output), format!("{second}\n"));
}

#[test]
fn query_table_lists_rules() {
    let (_directory, path) = journal();
    let output = guardctl(&["audit", "query", "--outcome", "deny", path.to_str().unwrap()]);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["SEQ", "TIME", "EVENT", "JOB", "STEP", "NODE", "USER", "ENV", "OUTCOME", "DETAIL", "CORRELATION"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..10], ["2", "2026-12-04T10:01:00.000Z", "decision", "2", "0", "c1", "bob", "prod", "deny", "environment.access"]);
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(row[9], "approval.justification");
}

#[test]
fn tail_prints_last_matches() {
    let (_directory, path) = journal();
    let output = guardctl(&["audit", "tail", "-n", "2", "--json", "--user", "alice", path.to_str().unwrap()]);
    assert_eq!(jobs_of(&stdout(&output)), [3, 4]);
    let none = guardctl(&["audit", "tail", "--user", "carol", path.to_str().unwrap()]);
    assert_eq!(stdout(&none), "no matching records\n");
}

#[test]
fn query_reports_line_that_is_not_a_record() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    std::fs::write(&path, "{\"seq\":1}\n").unwrap();
    let output = guardctl(&["audit", "query", path.to_str().unwrap()]);
    assert_eq!(stderr(&output), format!("guardctl: {}:1: not an audit record: missing field `ts` at line 1 column 9\n", path.display()));
    assert_eq!(output.status.code(), Some(1));
}

/// POLICY with dev limited to bob and a longer prod justification.
const STRICTER_POLICY: &str = r#"{
  "version": 1,
  "default_environment": "dev",
  "environments": {
    "dev": { "risk": 1, "allow": { "users": ["bob"] } },
    "prod": { "risk": 10, "allow": { "users": ["alice"] }, "approval": { "justification_min_chars": 30 } }
  },
  "container": { "digest_cache": null },
  "audit": { "path": "/var/log/spank-guard/audit.jsonl" }
}"#;

fn stricter_policy(directory: &Path) -> PathBuf {
    let path = directory.join("stricter.json");
    std::fs::write(&path, STRICTER_POLICY).unwrap();
    path
}

#[test]
fn replay_lists_changed_decisions() {
    let (directory, path) = journal();
    let policy = stricter_policy(directory.path());
    let output = guardctl(&["replay", "--policy", policy.to_str().unwrap(), "--audit", path.to_str().unwrap()]);
    assert_eq!(stderr(&output), "");
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    let sha256 = policy_core::digest::sha256_file(&policy).unwrap();
    assert_eq!(
        lines[0],
        format!("replayed 5 decisions against {} (sha256 {sha256}): 3 would change, 2 unchanged", policy.display())
    );
    let header: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(header, ["SEQ", "TIME", "JOB", "STEP", "NODE", "USER", "ENV", "RECORDED", "REPLAYED", "RULES"]);
    let first: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(first, ["1", "2026-12-04T10:00:00.000Z", "1", "0", "c1", "alice", "dev", "allow", "deny", "+environment.access"]);
    // Denied before for access only; now the justification is too short too.
    let second: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(second, ["2", "2026-12-04T10:01:00.000Z", "2", "0", "c1", "bob", "prod", "deny", "deny", "+approval.justification"]);
    let third: Vec<&str> = lines[5].split_whitespace().collect();
    assert_eq!(third, ["4", "2026-12-04T10:03:00.000Z", "4", "0", "c1", "alice", "prod", "allow", "deny", "+approval.justification"]);
    assert_eq!(lines[7], "new failing rules:");
    assert!(lines[8].starts_with("  seq 1: environment.access: user `alice` is not allowed in environment `dev`"), "{}", lines[8]);
    assert!(lines[9].starts_with("  seq 2: approval.justification: environment `prod` requires a justification of at least 30"), "{}", lines[9]);
    assert!(lines[10].starts_with("  seq 4: approval.justification: environment `prod` requires a justification of at least 30"), "{}", lines[10]);
    assert_eq!(lines.len(), 11);
}

#[test]
fn replay_json_has_counts_and_rules() {
    let (directory, path) = journal();
    let policy = stricter_policy(directory.path());
    let output = guardctl(&["replay", "--json", "--policy", policy.to_str().unwrap(), "--audit", path.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["replayed"], 5);
    assert_eq!(report["unchanged"], 2);
    assert_eq!(report["skipped"], 0);
    let changed = report["changed"].as_array().unwrap();
    let summary: Vec<(u64, &str, &str, &serde_json::Value)> = changed
        .iter()
        .map(|change| {
            (change["job_id"].as_u64().unwrap(), change["recorded"].as_str().unwrap(), change["replayed"].as_str().unwrap(), &change["added_rules"])
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "allow", "deny", &serde_json::json!(["environment.access"])),
            (2, "deny", "deny", &serde_json::json!(["approval.justification"])),
            (4, "allow", "deny", &serde_json::json!(["approval.justification"])),
        ]
    );
}

#[test]
fn replay_same_policy_changes_nothing() {
    let (directory, path) = journal();
    let policy = directory.path().join("same.json");
    std::fs::write(&policy, POLICY).unwrap();
    let output = guardctl(&["replay", "--policy", policy.to_str().unwrap(), "--audit", path.to_str().unwrap()]);
    let sha256 = policy_core::digest::sha256_file(&policy).unwrap();
    assert_eq!(
        stdout(&output),
        format!("replayed 5 decisions against {} (sha256 {sha256}): 0 would change, 5 unchanged\n", policy.display())
    );
}

#[test]
fn evidence_writes_three_files() {
    let (directory, path) = journal();
    let out = directory.path().join("bundle");
    let output = guardctl(&["evidence", "--correlation-id", "hpc-4", "--audit", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(stderr(&output), "");
    assert_eq!(
        stdout(&output),
        format!("wrote {}/evidence.json, evidence.md and evidence.html: 1 record of `hpc-4`, chain intact\n", out.display())
    );
    assert_eq!(output.status.code(), Some(0));
    let bundle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("evidence.json")).unwrap()).unwrap();
    assert_eq!(bundle["job_ids"], serde_json::json!([4]));
    assert_eq!(bundle["chain"][0]["records"], 5);
    assert_eq!(bundle["chain"][0]["broken"], serde_json::Value::Null);
    assert_eq!(bundle["timeline"][0]["outcome"], "allow");
    let markdown = std::fs::read_to_string(out.join("evidence.md")).unwrap();
    assert!(markdown.starts_with("# Evidence for `hpc-4`\n"), "{markdown}");
    let html = std::fs::read_to_string(out.join("evidence.html")).unwrap();
    assert!(html.contains("<h1>Evidence for <code>hpc-4</code></h1>"), "{html}");
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");
}

#[test]
fn evidence_rejects_unknown_id() {
    let (directory, path) = journal();
    let out = directory.path().join("bundle");
    let output = guardctl(&["evidence", "--correlation-id", "nope", "--audit", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(
        stderr(&output),
        format!(
            "guardctl: no audit record has correlation id `nope` in {}; check the id and pass the journals of the nodes the job ran on\n",
            path.display()
        )
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn evidence_reports_broken_chain() {
    let (directory, path) = journal();
    let text = std::fs::read_to_string(&path).unwrap().replacen("\"user\":\"bob\"", "\"user\":\"eve\"", 1);
    std::fs::write(&path, text).unwrap();
    let out = directory.path().join("bundle");
    let output = guardctl(&["evidence", "--correlation-id", "hpc-1", "--audit", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with(&format!("guardctl: audit chain broken, so the evidence cannot be trusted: {}:2: ", path.display())), "{}", stderr(&output));
    let bundle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("evidence.json")).unwrap()).unwrap();
    assert_eq!(bundle["chain_intact"], false);
}

#[test]
fn metrics_export_counts_journal() {
    let (directory, path) = journal();
    std::fs::write(policy_core::journal::write_errors_path(&path), "2026-12-04T10:09:00.000Z disk full\n").unwrap();
    let out = directory.path().join("spank_guard.prom");
    let output = guardctl(&["metrics", "export", "--audit", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(stderr(&output), "");
    assert_eq!(output.status.code(), Some(0));
    let text = std::fs::read_to_string(&out).unwrap();
    let samples: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
    let policy_sha256 = {
        let last = std::fs::read_to_string(&path).unwrap().lines().last().unwrap().to_owned();
        serde_json::from_str::<serde_json::Value>(&last).unwrap()["policy_sha256"].as_str().unwrap().to_owned()
    };
    let mut expected = vec![
        "spank_guard_decisions_total{environment=\"dev\",outcome=\"allow\"} 2".to_owned(),
        "spank_guard_decisions_total{environment=\"prod\",outcome=\"allow\"} 1".to_owned(),
        "spank_guard_decisions_total{environment=\"prod\",outcome=\"deny\"} 2".to_owned(),
        "spank_guard_denials_total{environment=\"prod\",rule=\"approval.justification\"} 1".to_owned(),
        "spank_guard_denials_total{environment=\"prod\",rule=\"environment.access\"} 1".to_owned(),
        "spank_guard_policy_errors_total 0".to_owned(),
        "spank_guard_audit_write_errors_total 1".to_owned(),
    ];
    // guardctl's journal helper writes no durations: an empty histogram.
    for bound in ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "+Inf"] {
        expected.push(format!("spank_guard_decision_duration_seconds_bucket{{le=\"{bound}\"}} 0"));
    }
    expected.push("spank_guard_decision_duration_seconds_sum 0".to_owned());
    expected.push("spank_guard_decision_duration_seconds_count 0".to_owned());
    expected.push(format!("spank_guard_policy_info{{sha256=\"{policy_sha256}\",version=\"{}\"}} 1", policy_core::VERSION));
    assert_eq!(samples, expected);
    assert!(text.contains("# TYPE spank_guard_decisions_total counter\n"));
    assert!(text.contains("# TYPE spank_guard_decision_duration_seconds histogram\n"));
    let leftovers: Vec<_> = std::fs::read_dir(directory.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert!(!leftovers.iter().any(|name| name.to_string_lossy().contains(".tmp")), "{leftovers:?}");
}

#[test]
fn metrics_export_missing_file_counts_empty() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("audit.jsonl");
    let out = directory.path().join("spank_guard.prom");
    let output = guardctl(&["metrics", "export", "--audit", missing.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(stderr(&output), format!("guardctl: note: {} not found; counted as empty\n", missing.display()));
    assert_eq!(output.status.code(), Some(0));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("\nspank_guard_policy_errors_total 0\n"), "{text}");
    assert!(!text.contains("spank_guard_policy_info"), "{text}");
}

#[test]
fn metrics_export_out_from_policy() {
    let directory = tempfile::tempdir().unwrap();
    let audit = directory.path().join("audit.jsonl");
    std::fs::write(&audit, "").unwrap();
    let configured = directory.path().join("configured.prom");
    let policy = directory.path().join("policy.json");
    let text = format!(
        "{{\"version\": 1, \"default_environment\": \"dev\", \"environments\": {{\"dev\": {{\"risk\": 1}}, \
         \"prod\": {{\"risk\": 9, \"break_glass\": {{\"users\": [\"alice\"], \"max_minutes\": 60}}}}}}, \
         \"metrics\": {{\"textfile\": \"{}\"}}}}",
        configured.display()
    );
    std::fs::write(&policy, text).unwrap();

    let output = guardctl(&["metrics", "export", "--audit", audit.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "guardctl: no output file: pass --out FILE.prom, or set metrics.textfile in the policy given with --policy\n"
    );

    let output = guardctl(&["metrics", "export", "--audit", audit.to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let written = std::fs::read_to_string(&configured).unwrap();
    assert!(written.contains("\nspank_guard_audit_write_errors_total 0\n"), "{written}");
    // Environments that permit break glass start at 0, so the first use is an increase.
    assert!(written.contains("\nspank_guard_break_glass_total{environment=\"prod\"} 0\n"), "{written}");
    assert!(!written.contains("spank_guard_break_glass_total{environment=\"dev\"}"), "{written}");
}
