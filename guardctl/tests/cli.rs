//! Runs the built `guardctl` binary against `examples/policy.json` and
//! temporary policies, and checks exact output lines and exit codes.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on setup errors")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// A Wednesday, 10:00 UTC: inside London business hours, outside the
/// example's weekend maintenance window.
const WEDNESDAY: &str = "2026-06-03T10:00:00Z";
/// A Saturday, 11:00 UTC: inside the example's maintenance window.
const SATURDAY: &str = "2026-06-06T11:00:00Z";

fn example_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.json")
}

fn example_sha256() -> String {
    let bytes = std::fs::read(example_policy()).unwrap();
    Sha256::digest(&bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn guardctl(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardctl")).args(arguments).env_clear().output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Returns the rule ids of the reason lines of an explain table.
fn rule_ids(table: &str) -> Vec<String> {
    table
        .lines()
        .filter_map(|line| line.strip_prefix("  "))
        .map(|line| line.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

/// Returns the value of the `label:` row of an explain table.
fn row<'a>(table: &'a str, label: &str) -> Option<&'a str> {
    let prefix = format!("{label}:");
    table.lines().find_map(|line| line.strip_prefix(&prefix)).map(str::trim_start)
}

fn explain_example(extra: &[&str]) -> Output {
    let policy = example_policy();
    let mut arguments = vec!["explain", "--policy", policy.to_str().unwrap()];
    arguments.extend_from_slice(extra);
    guardctl(&arguments)
}

#[test]
fn check_example_prints_summary() {
    let policy = example_policy();
    let output = guardctl(&["check", policy.to_str().unwrap()]);

    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        format!(
            "{}: valid policy, 4 environments (dev, prod, sandbox, staging), \
             2 image sets (approved, community), sha256 {}\n",
            policy.display(),
            example_sha256()
        )
    );
    assert_eq!(stderr(&output), "");
}

#[test]
fn check_lists_every_problem() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("policy.json");
    let text = r#"{
  "version": 1,
  "default_environment": "qa",
  "environments": {
    "dev": { "risk": 1, "windows": ["lunch"] }
  }
}
"#;
    std::fs::write(&path, text).unwrap();

    let output = guardctl(&["check", path.to_str().unwrap()]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let origin = path.display();
    assert_eq!(
        stderr(&output),
        format!(
            "guardctl: {origin}: cannot load policy, 2 problems:\n\
             {origin}:3:26: default_environment: default environment `qa` is not defined; expected one of `dev`\n\
             {origin}:5:37: environments.dev.windows[0]: unknown window `lunch`; expected one of (none defined)\n"
        )
    );
}

#[test]
fn check_rejects_unknown_field() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("policy.json");
    std::fs::write(&path, "{\n  \"version\": 1,\n  \"colour\": 1\n}\n").unwrap();

    let output = guardctl(&["check", path.to_str().unwrap()]);

    assert_eq!(output.status.code(), Some(1));
    let lines: Vec<String> = stderr(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], format!("guardctl: {}: cannot load policy, 1 problem:", path.display()));
    assert!(lines[1].starts_with(&format!("{}:3:10: colour: unknown field `colour`", path.display())));
}

#[test]
fn check_missing_file() {
    let output = guardctl(&["check", "/nonexistent/policy.json"]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "guardctl: /nonexistent/policy.json: cannot load policy, 1 problem:\n\
         /nonexistent/policy.json: cannot read policy file: No such file or directory (os error 2)\n"
    );
}

#[test]
fn explain_dev_allows_any_user() {
    let output = explain_example(&["--user", "alice", "--env", "dev", "--at", WEDNESDAY, "--", "python", "train.py"]);

    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        format!(
            "outcome:      allow\n\
             environment:  dev\n\
             risk:         1\n\
             mode:         enforce\n\
             reasons:      none\n\
             container:    none\n\
             unset:        none\n\
             set:          HOS_CORRELATION_ID=cluster-submit-0-1780480800 HOS_ENV=dev HOS_RISK=1\n\
             ticket:       none\n\
             correlation:  cluster-submit-0-1780480800\n\
             policy:       sha256 {}\n",
            example_sha256()
        )
    );
}

#[test]
fn explain_prod_denies_outsider() {
    let output = explain_example(&[
        "--user", "bob", "--groups", "users", "--env", "prod", "--node", "c9", "--at", WEDNESDAY, "--", "true",
    ]);

    assert_eq!(output.status.code(), Some(3));
    let table = stdout(&output);
    assert_eq!(row(&table, "outcome"), Some("deny"));
    assert_eq!(row(&table, "environment"), Some("prod"));
    assert_eq!(row(&table, "risk"), Some("10"));
    assert_eq!(row(&table, "reasons"), Some("6 failing rules"));
    assert_eq!(
        rule_ids(&table),
        [
            "environment.access",
            "environment.window",
            "environment.node",
            "approval.justification",
            "approval.ticket",
            "container.required"
        ]
    );
    assert!(table.contains(
        "\n  environment.access      user `bob` is not allowed in environment `prod`; \
         allowed users: `svc-ci`; allowed groups: `hpc-prod`\n"
    ));
    assert_eq!(row(&table, "container"), Some("none"));
}

#[test]
fn explain_prod_member_in_window() {
    // A member of hpc-prod, on an allowed node, in the maintenance window,
    // with a justification: only the ticket and the container are missing.
    let output = explain_example(&[
        "--user",
        "carol",
        "--groups",
        "users,hpc-prod",
        "--env",
        "PRODUCTION",
        "--node",
        "c3",
        "--justification",
        "quarterly model refresh",
        "--at",
        SATURDAY,
        "--",
        "true",
    ]);

    assert_eq!(output.status.code(), Some(3));
    let table = stdout(&output);
    assert_eq!(row(&table, "environment"), Some("prod"));
    assert_eq!(rule_ids(&table), ["approval.ticket", "container.required"]);
}

#[test]
fn explain_break_glass_waives_window_and_approval() {
    // An on-call member of hpc-prod breaks glass outside the window without
    // approval: only the missing container still denies.
    let output = explain_example(&[
        "--user",
        "dave",
        "--groups",
        "hpc-prod,hpc-oncall",
        "--env",
        "prod",
        "--node",
        "c3",
        "--break-glass",
        "INC-4711 scheduler outage, rerun lost jobs",
        "--at",
        WEDNESDAY,
        "--",
        "python",
        "train.py",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let table = stdout(&output);
    assert_eq!(row(&table, "outcome"), Some("deny"));
    assert_eq!(row(&table, "would waive"), Some("3 rules"));
    assert_eq!(
        rule_ids(&table),
        ["container.required", "environment.window", "approval.justification", "approval.ticket"]
    );
    assert_eq!(row(&table, "break glass"), None, "a denied request did not break glass:\n{table}");

    // Without a time limit the table names the duration rule as not checked.
    assert_eq!(
        row(&table, "not checked"),
        Some("break_glass.duration: the job's time limit must be at most 240 minutes (pass --time-limit)")
    );

    // A time limit above max_minutes fails break_glass.duration.
    let output = explain_example(&[
        "--user", "dave", "--groups", "hpc-prod,hpc-oncall", "--env", "prod", "--node", "c3", "--break-glass",
        "INC-4711 scheduler outage, rerun lost jobs", "--time-limit", "0", "--at", WEDNESDAY, "--", "true",
    ]);
    assert!(stdout(&output).contains(
        "\n  break_glass.duration    job has no time limit (`UNLIMITED`) but break glass in environment `prod` \
         allows at most 240 minutes; request `--time=240` or less\n"
    ), "--time-limit 0 is no limit:\n{}", stdout(&output));
    let output = explain_example(&[
        "--user", "dave", "--groups", "hpc-prod,hpc-oncall", "--env", "prod", "--node", "c3", "--break-glass",
        "INC-4711 scheduler outage, rerun lost jobs", "--time-limit", "241", "--at", WEDNESDAY, "--", "true",
    ]);
    let table = stdout(&output);
    assert!(table.contains(
        "\n  break_glass.duration    job has a time limit of 241 minutes but break glass in environment `prod` \
         allows at most 240 minutes; request `--time=240` or less\n"
    ), "{table}");

    // Outside the on-call group, break glass is rejected and waives nothing.
    let output = explain_example(&[
        "--user", "carol", "--groups", "hpc-prod", "--env", "prod", "--node", "c3", "--break-glass",
        "INC-4711 scheduler outage, rerun lost jobs", "--at", WEDNESDAY, "--", "true",
    ]);
    let table = stdout(&output);
    assert_eq!(row(&table, "waived"), None, "{table}");
    assert!(table.contains(
        "\n  break_glass.access      user `carol` may not break glass in environment `prod`; \
         permitted users: (none); permitted groups: `hpc-oncall`\n"
    ), "{table}");
}

#[test]
fn explain_unknown_environment() {
    let output = explain_example(&["--user", "alice", "--env", "qa", "--at", WEDNESDAY, "--", "true"]);

    assert_eq!(output.status.code(), Some(3));
    let table = stdout(&output);
    assert_eq!(row(&table, "environment"), Some("(unknown)"));
    assert_eq!(row(&table, "risk"), Some("(unknown)"));
    assert_eq!(rule_ids(&table), ["environment.unknown"]);
}

#[test]
fn explain_audit_mode_exits_zero() {
    let output = explain_example(&[
        "--user", "alice", "--env", "sandbox", "--image", "/nonexistent.sif", "--at", WEDNESDAY, "--", "true",
    ]);

    assert_eq!(output.status.code(), Some(0));
    let table = stdout(&output);
    assert_eq!(row(&table, "outcome"), Some("would_deny"));
    assert_eq!(row(&table, "mode"), Some("audit"));
    assert_eq!(rule_ids(&table), ["container.image"]);
}

#[test]
fn explain_setenv_selects_environment_and_scrubs() {
    let output = explain_example(&[
        "--user",
        "alice",
        "--setenv",
        "HOS_ENV=development",
        "--setenv",
        "LD_PRELOAD=/tmp/hook.so",
        "--at",
        WEDNESDAY,
        "--",
        "true",
    ]);

    assert_eq!(output.status.code(), Some(0));
    let table = stdout(&output);
    assert_eq!(row(&table, "environment"), Some("dev"));
    assert_eq!(row(&table, "unset"), Some("LD_PRELOAD"));
}

#[test]
fn explain_inherits_environment_only_on_request() {
    let policy = example_policy();
    let arguments = ["explain", "--policy", policy.to_str().unwrap(), "--user", "alice", "--at", WEDNESDAY];
    let run = |inherit: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_guardctl"));
        command.args(arguments).env_clear().env("LD_AUDIT", "/tmp/audit.so");
        if inherit {
            command.arg("--inherit-env");
        }
        command.args(["--", "true"]).output().unwrap()
    };

    let isolated = stdout(&run(false));
    let inherited = stdout(&run(true));

    assert_eq!(row(&isolated, "unset"), Some("none"));
    assert_eq!(row(&inherited, "unset"), Some("LD_AUDIT"));
}

#[test]
fn explain_json_is_the_decision() {
    let output = explain_example(&["--user", "bob", "--env", "prod", "--at", WEDNESDAY, "--json", "--", "true"]);

    assert_eq!(output.status.code(), Some(3));
    let decision: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(decision["outcome"], "deny");
    assert_eq!(decision["environment"], "prod");
    assert_eq!(decision["risk"], 10);
    assert_eq!(decision["policy_sha256"], example_sha256());
    let rules: Vec<&str> = decision["reasons"].as_array().unwrap().iter().map(|reason| reason["rule"].as_str().unwrap()).collect();
    assert_eq!(rules[0], "environment.access");
}

#[test]
fn explain_container_command_line() {
    // An allowed image needs a root-owned directory chain, so this policy
    // allows any image under the test directory and turns that check off.
    let directory = tempfile::tempdir().unwrap();
    let image = directory.path().join("my image.sif");
    std::fs::write(&image, b"image").unwrap();
    let policy_path = directory.path().join("policy.json");
    let policy = serde_json::json!({
        "version": 1,
        "default_environment": "dev",
        "environments": { "dev": { "risk": 1, "container": { "images": ["local"] } } },
        "images": { "local": [ { "path": format!("{}/*.sif", directory.path().display()) } ] },
        "container": {
            "runtime": "/bin/sh",
            "args": ["--containall"],
            "binds": { "allow": [directory.path()], "default": [] },
            "user_flags": ["--nv"],
            "require_root_owned": false
        }
    });
    std::fs::write(&policy_path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
    let root = directory.path().display();

    let output = guardctl(&[
        "explain",
        "--policy",
        policy_path.to_str().unwrap(),
        "--user",
        "alice",
        "--image",
        image.to_str().unwrap(),
        "--bind",
        &format!("{root}:/data:ro"),
        "--container-flags",
        "--nv",
        "--at",
        WEDNESDAY,
        "--",
        "python",
        "train.py",
        "--epochs=3",
    ]);

    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let table = stdout(&output);
    assert_eq!(
        row(&table, "container"),
        Some(
            format!(
                "/bin/sh exec --containall --bind {root}:/data:ro --nv '{root}/my image.sif' python train.py --epochs=3"
            )
            .as_str()
        )
    );
}

#[test]
fn explain_job_id_sets_correlation_id() {
    let output = explain_example(&[
        "--user", "alice", "--env", "dev", "--cluster", "hpc", "--job-id", "4242", "--at", WEDNESDAY, "--", "true",
    ]);

    assert_eq!(output.status.code(), Some(0));
    let table = stdout(&output);
    assert_eq!(row(&table, "correlation"), Some("hpc-4242"));
    assert_eq!(row(&table, "set"), Some("HOS_CORRELATION_ID=hpc-4242 HOS_ENV=dev HOS_RISK=1"));
}

#[test]
fn explain_invalid_policy_fails() {
    let output = guardctl(&["explain", "--policy", "/nonexistent/policy.json", "--user", "alice", "--", "true"]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert!(stderr(&output).starts_with("guardctl: /nonexistent/policy.json: cannot load policy, 1 problem:\n"));
}

#[test]
fn explain_requires_command() {
    let output = explain_example(&["--user", "alice"]);

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("error: the following required arguments were not provided:\n  <CMD>...\n"));
}

#[test]
fn explain_rejects_bad_time() {
    let output = explain_example(&["--user", "alice", "--at", "tomorrow", "--", "true"]);

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with(
        "error: invalid value 'tomorrow' for '--at <RFC3339>': expected an RFC 3339 time with an offset, \
         for example 2026-06-01T09:30:00Z: "
    ));
}

/// A key pair in a temporary directory and a copy of the example policy
/// that trusts it under key id `test-key`.
struct Keys {
    directory: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let directory = tempfile::tempdir().unwrap();
        let private = directory.path().join("approver.key");
        let output = guardctl(&["ticket", "keygen", private.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let public_key = std::fs::read_to_string(directory.path().join("approver.key.pub")).unwrap();
        assert_eq!(
            stdout(&output),
            format!(
                "wrote private key {} (mode 0600) and public key {}.pub\npublic key: {}\n",
                private.display(),
                private.display(),
                public_key.trim_end()
            )
        );

        let mut policy: serde_json::Value =
            serde_json::from_slice(&std::fs::read(example_policy()).unwrap()).unwrap();
        policy["approvals"]["keys"] = serde_json::json!({ "test-key": public_key.trim_end() });
        std::fs::write(directory.path().join("policy.json"), serde_json::to_string_pretty(&policy).unwrap())
            .unwrap();
        Keys { directory }
    }

    fn private_key(&self) -> String {
        self.directory.path().join("approver.key").to_str().unwrap().to_owned()
    }

    fn policy(&self) -> String {
        self.directory.path().join("policy.json").to_str().unwrap().to_owned()
    }

    fn issue(&self, extra: &[&str]) -> String {
        let key = self.private_key();
        let mut arguments = vec!["ticket", "issue", "--key", &key, "--kid", "test-key"];
        arguments.extend_from_slice(extra);
        let output = guardctl(&arguments);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout(&output).trim_end().to_owned()
    }
}

#[test]
fn ticket_issue_and_verify() {
    let keys = Keys::new();
    let ticket = keys.issue(&["--user", "alice", "--env", "prod", "--ttl", "2h", "--job-name", "train"]);
    assert!(ticket.starts_with("v1."));

    let output = guardctl(&["ticket", "verify", "--policy", &keys.policy(), &ticket]);

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let line = stdout(&output);
    assert!(line.starts_with("valid ticket: kid `test-key`, user `alice`, environment `prod`, issued "));
    assert!(line.ends_with(", job name `train`\n"));

    let bound = guardctl(&[
        "ticket", "verify", "--policy", &keys.policy(), &ticket, "--user", "alice", "--env", "Production", "--job-name",
        "train",
    ]);
    assert_eq!(bound.status.code(), Some(0), "{}", stderr(&bound));
}

#[test]
fn ticket_verify_rejects_other_user() {
    let keys = Keys::new();
    let ticket = keys.issue(&["--user", "alice", "--env", "prod", "--ttl", "30m"]);

    let output = guardctl(&["ticket", "verify", "--policy", &keys.policy(), &ticket, "--user", "bob"]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "guardctl: invalid ticket: approval ticket is for user `alice`, not `bob`; \
         ask for a new ticket with `guardctl ticket issue --user bob`\n"
    );
}

#[test]
fn ticket_verify_rejects_expired() {
    let keys = Keys::new();
    let ticket = keys.issue(&["--user", "alice", "--env", "prod", "--ttl", "1h"]);

    let output = guardctl(&["ticket", "verify", "--policy", &keys.policy(), &ticket, "--at", "2100-01-01T00:00:00Z"]);

    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("guardctl: invalid ticket: approval ticket expired at "));
}

#[test]
fn ticket_verify_rejects_unknown_key() {
    let keys = Keys::new();
    let ticket = keys.issue(&["--user", "alice", "--env", "prod", "--ttl", "1h"]);
    let policy = example_policy();

    let output = guardctl(&["ticket", "verify", "--policy", policy.to_str().unwrap(), &ticket]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "guardctl: invalid ticket: approval ticket is signed with key `test-key`, which is not in the \
         policy's approvals.keys (known keys: jenkins-2026); ask for a new ticket with `guardctl ticket issue` \
         signed with a listed key\n"
    );
}

#[test]
fn ticket_verify_rejects_unknown_environment() {
    let keys = Keys::new();
    let ticket = keys.issue(&["--user", "alice", "--env", "prod", "--ttl", "1h"]);

    let output = guardctl(&["ticket", "verify", "--policy", &keys.policy(), &ticket, "--env", "qa"]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "guardctl: unknown environment `qa`: the policy defines dev, prod, sandbox, staging\n");
}

#[test]
fn ticket_passes_explain_approval() {
    let keys = Keys::new();
    let ticket = keys.issue(&["--user", "carol", "--env", "prod", "--ttl", "1h"]);

    // The ticket is valid from now on, so explain runs at the current time.
    // The window rule depends on the day, so only the approval and container
    // rules are asserted.
    let output = guardctl(&[
        "explain",
        "--policy",
        &keys.policy(),
        "--user",
        "carol",
        "--groups",
        "hpc-prod",
        "--env",
        "prod",
        "--ticket",
        &ticket,
        "--",
        "true",
    ]);

    let table = stdout(&output);
    assert!(!rule_ids(&table).contains(&"approval.ticket".to_owned()), "{table}");
    assert!(rule_ids(&table).contains(&"container.required".to_owned()), "{table}");
}

#[test]
fn ticket_keygen_refuses_overwrite() {
    let keys = Keys::new();
    let private = keys.private_key();

    let output = guardctl(&["ticket", "keygen", &private]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), format!("guardctl: `{private}` already exists; remove it or choose another output path\n"));
}

#[test]
fn ticket_issue_rejects_readable_key() {
    use std::os::unix::fs::PermissionsExt;

    let keys = Keys::new();
    let private = keys.private_key();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();

    let output = guardctl(&[
        "ticket", "issue", "--key", &private, "--kid", "test-key", "--user", "alice", "--env", "prod", "--ttl", "1h",
    ]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!("guardctl: key file `{private}` is accessible by group or others (mode 0644); run `chmod 600 {private}`\n")
    );
}

#[test]
fn ticket_issue_rejects_ttl_without_unit() {
    let output = guardctl(&[
        "ticket", "issue", "--key", "k", "--kid", "k", "--user", "alice", "--env", "prod", "--ttl", "120",
    ]);

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with(
        "error: invalid value '120' for '--ttl <DURATION>': invalid lifetime `120`: missing or unknown unit: \
         expected a positive whole number followed by s, m, h or d, for example 90m or 2h\n"
    ));
}

#[test]
fn version_matches_cargo_toml() {
    let output = guardctl(&["--version"]);

    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), format!("guardctl {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_commands_and_options() {
    let top = stdout(&guardctl(&["--help"]));
    for command in ["check", "explain", "ticket"] {
        assert!(top.contains(&format!("\n  {command} ")), "--help does not list `{command}`:\n{top}");
    }

    let explain = stdout(&guardctl(&["explain", "--help"]));
    let options = [
        "--policy <POLICY>",
        "--user <USER>",
        "--groups <GROUP,...>",
        "--env <ENVIRONMENT>",
        "--image <PATH>",
        "--bind <SPEC>",
        "--container-flags <FLAGS>",
        "--ticket <TICKET>",
        "--justification <TEXT>",
        "--node <NODE>",
        "--job-name <NAME>",
        "--cluster <NAME>",
        "--job-id <ID>",
        "--at <RFC3339>",
        "--setenv <NAME=VALUE>",
        "--inherit-env",
        "--json",
    ];
    for option in options {
        assert!(explain.contains(option), "explain --help does not list `{option}`");
    }

    let issue = stdout(&guardctl(&["ticket", "issue", "--help"]));
    assert!(issue.contains("a whole number with unit s, m, h or d"), "{issue}");
}

#[test]
fn usage_error_exits_two() {
    let output = guardctl(&["explain", "--policy", "p.json", "--", "true"]);

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("error: the following required arguments were not provided:\n  --user <USER>\n"));
}
