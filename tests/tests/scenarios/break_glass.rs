//! Break glass. A permitted user runs outside the window and without a
//! ticket, with loud warnings and an audit trail. A user whom the policy
//! does not name is denied.

use cluster_tests::Cluster;
use serde_json::{json, Value};

use super::support::{
    base_policy, change_slot_window, check, expect_code, expect_field, expect_sorted_stdout, guardctl, install, job_correlation_id, paths,
    prepare_files, records_of, srun, Readable, PROD_USER, USER,
};

pub const SCENARIOS: [(&str, super::Scenario); 3] = [
    ("break_glass::permitted_user_runs", permitted_user_runs),
    ("break_glass::other_user_denied", other_user_denied),
    ("break_glass::explain_shows_waivers", explain_shows_waivers),
];

const REASON: &str = "INC-7 restore the lost nightly run";

/// Base policy with an `ops` environment whose window is closed (it opens
/// two hours from now), which requires a ticket, and where only
/// `guardprod` may break glass.
fn break_glass_policy(cluster: &Cluster) -> Value {
    let mut policy = base_policy(cluster);
    policy["windows"] = change_slot_window(120, 180);
    policy["environments"]["ops"] = json!({
        "risk": 9,
        "windows": ["change-slot"],
        "approval": { "ticket": true },
        "break_glass": { "users": ["guardprod"], "max_minutes": 60 }
    });
    policy
}

fn guardctl_text(args: &[&str]) -> Result<String, String> {
    let output = guardctl(args)?;
    if !output.status.success() {
        return Err(format!("guardctl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn rules_of(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|entries| entries.iter().map(|entry| entry["rule"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

fn permitted_user_runs(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &break_glass_policy(cluster), Readable::ByEveryone, "")?;
    let option = format!("--guard-break-glass={REASON}");
    let output = srun(cluster, &PROD_USER, &[], &["--guard-env=ops", &option, "printenv", "HOS_ENV"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["ops"])?;

    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, "expected one decision record", &output)?;
    let record = &decisions[0];
    expect_field(record, "outcome", &json!("allow"))?;
    expect_field(record, "break_glass", &json!(true))?;
    expect_field(record, "break_glass_reason", &json!(REASON))?;
    let waived = rules_of(&record["waived"]);
    check(waived == ["environment.window", "approval.ticket"], &format!("waived rules {waived:?}"), &output)?;
    let correlation_id = job_correlation_id(cluster, record["job_id"].as_u64().unwrap_or_default())?;

    // srun prints the warning before submitting, and the first task prints
    // it again on the node. The window message names the current second,
    // so only its start is fixed.
    let lines = output.guard_lines();
    check(lines.len() == 10, "expected five lines from srun and five from the node", &output)?;
    for half in [&lines[..5], &lines[5..]] {
        check(
            half[0] == format!("spank-guard: WARNING: BREAK GLASS by user `guardprod` in environment `ops`: {REASON}"),
            "first warning names user, environment and reason",
            &output,
        )?;
        check(
            half[1].starts_with(
                "spank-guard: WARNING: BREAK GLASS waives environment.window: environment `ops` is outside its time windows at ",
            ),
            "second warning names the window rule",
            &output,
        )?;
        check(
            half[2]
                == "spank-guard: WARNING: BREAK GLASS waives approval.ticket: environment `ops` requires an approval ticket and \
                    none was given; pass `--guard-ticket=TICKET` or set `HOS_APPROVAL_TICKET` (an approver issues one with \
                    `guardctl ticket issue`)",
            "third warning names the ticket rule",
            &output,
        )?;
        check(
            half[3] == "spank-guard: WARNING: BREAK GLASS: every step that runs this way is recorded in the audit log and reviewed by the administrators",
            "review warning",
            &output,
        )?;
        check(half[4] == format!("spank-guard: correlation id: {correlation_id}"), "correlation id line", &output)?;
    }

    // The review lists the use, and the metrics count it.
    let paths = paths(cluster);
    let audit = paths.audit.display().to_string();
    let listed = guardctl_text(&["audit", "query", "--break-glass", "--json", &audit])?;
    check(listed.lines().count() == 1, &format!("audit query --break-glass lists one record:\n{listed}"), &output)?;
    let listed: Value = serde_json::from_str(listed.trim()).map_err(|error| format!("audit query output: {error}"))?;
    expect_field(&listed, "correlation_id", &json!(correlation_id))?;

    let out = cluster.path("break_glass.prom");
    guardctl_text(&[
        "metrics",
        "export",
        "--policy",
        &paths.policy.display().to_string(),
        "--audit",
        &audit,
        "--out",
        &out.display().to_string(),
    ])?;
    let text = std::fs::read_to_string(&out).map_err(|error| format!("cannot read {}: {error}", out.display()))?;
    let counted = "spank_guard_break_glass_total{environment=\"ops\"} 1";
    check(text.lines().any(|line| line == counted), &format!("expected `{counted}` in\n{text}"), &output)?;

    // The evidence bundle names the reason and the waived rules.
    let bundle = cluster.path("break-glass-evidence");
    guardctl_text(&["evidence", "--correlation-id", &correlation_id, "--audit", &audit, "--out", &bundle.display().to_string()])?;
    let report = std::fs::read_to_string(bundle.join("evidence.md")).map_err(|error| format!("cannot read evidence.md: {error}"))?;
    let summary = format!("| Break glass | YES, reason: {REASON} |");
    check(report.lines().any(|line| line == summary), &format!("expected `{summary}` in\n{report}"), &output)?;
    check(
        report.contains("waived by break glass: environment.window: environment `ops` is outside"),
        &format!("the timeline names the waived window rule:\n{report}"),
        &output,
    )?;

    // Break glass never waives the image rule.
    let output = srun(cluster, &PROD_USER, &[], &["--guard-env=ops", &option, "--guard-image=/nonexistent/other.sif", "true"]);
    expect_code(&output, 1)?;
    let lines = output.guard_lines();
    check(
        lines.first().copied()
            == Some(
                "spank-guard: break glass would waive environment.window, approval.ticket, but the other rules still deny \
                 the request",
            ),
        "waived rules did not help",
        &output,
    )?;
    check(
        lines.get(1).is_some_and(|line| {
            line.starts_with("spank-guard: denied: container.image: environment `ops` allows no container images")
        }),
        "the image rule denies",
        &output,
    )
}

fn other_user_denied(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    // Readable by root only: the node decides and records the attempt.
    install(cluster, &break_glass_policy(cluster), Readable::ByRootOnly, "")?;
    let option = format!("--guard-break-glass={REASON}");
    let output = srun(cluster, &USER, &[], &["--guard-env=ops", &option, "true"]);
    expect_code(&output, 1)?;

    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, "expected one decision record", &output)?;
    let record = &decisions[0];
    expect_field(record, "outcome", &json!("deny"))?;
    check(record.get("break_glass").is_none(), "no break_glass field on a rejected attempt", &output)?;
    expect_field(record, "break_glass_reason", &json!(REASON))?;
    let rules = rules_of(&record["reasons"]);
    check(
        rules == ["environment.window", "approval.ticket", "break_glass.access"],
        &format!("failing rules {rules:?}"),
        &output,
    )?;
    let correlation_id = job_correlation_id(cluster, record["job_id"].as_u64().unwrap_or_default())?;
    let lines = output.guard_lines();
    check(lines.len() == 4, "expected three reasons and the correlation id", &output)?;
    check(
        lines[2]
            == "spank-guard: denied: break_glass.access: user `guardtest` may not break glass in environment `ops`; \
                permitted users: `guardprod`; permitted groups: (none)",
        "break_glass.access message",
        &output,
    )?;
    check(lines[3] == format!("spank-guard: correlation id: {correlation_id}"), "correlation id line", &output)?;

    // The rejected attempt is listed for review too.
    let audit = paths(cluster).audit.display().to_string();
    let table = guardctl_text(&["audit", "query", "--break-glass", &audit])?;
    let rows: Vec<&str> = table.lines().skip(1).collect();
    check(rows.len() == 1, &format!("one row for the rejected attempt:\n{table}"), &output)?;
    check(
        rows[0].contains("environment.window,approval.ticket,break_glass.access reason=\"INC-7 restore the lost nightly run\""),
        &format!("row names the rules and the reason:\n{table}"),
        &output,
    )
}

fn explain_shows_waivers(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &break_glass_policy(cluster), Readable::ByEveryone, "")?;
    let option = format!("--guard-break-glass={REASON}");
    let marker = cluster.work_dir(&PROD_USER).join("explained-break-glass");
    let marker_text = marker.display().to_string();
    let output = srun(cluster, &PROD_USER, &[], &["--guard-explain", "--guard-env=ops", &option, "touch", &marker_text]);
    expect_code(&output, 0)?;
    check(!marker.exists(), "--guard-explain must not run the command", &output)?;
    let lines: Vec<&str> = output.stdout.lines().collect();
    let expected_start = [
        "spank-guard explain: environment ops (risk 9, mode enforce)",
        "spank-guard explain: outcome: allow",
        "spank-guard explain: break glass: yes, the job runs although window or approval rules fail; the use is audited",
    ];
    check(lines.len() > 3 && lines[..3] == expected_start, "report starts with environment, outcome, break glass", &output)?;
    check(
        lines[3].starts_with("spank-guard explain: waived by break glass: environment.window: environment `ops` is outside"),
        "the window rule is waived",
        &output,
    )?;
    check(
        lines[4].starts_with("spank-guard explain: waived by break glass: approval.ticket: environment `ops` requires an approval ticket"),
        "the ticket rule is waived",
        &output,
    )?;
    check(
        lines[5]
            == "spank-guard explain: checked by the controller: break_glass.duration: the job's time limit (`--time`) \
                must be at most 60 minutes",
        "the duration is left to the controller",
        &output,
    )?;
    check(
        !lines.iter().any(|line| line.starts_with("spank-guard explain: ticket")),
        "no ticket is asked for when break glass waives it",
        &output,
    )?;
    check(records_of(cluster, "decision")?.is_empty(), "explain writes no audit record", &output)?;

    // The JSON form lists the controller's rule as deferred.
    let output = srun(cluster, &PROD_USER, &[], &["--guard-explain=json", "--guard-env=ops", &option, "true"]);
    expect_code(&output, 0)?;
    let decision: Value =
        serde_json::from_str(&output.stdout).map_err(|error| format!("standard output is not JSON: {error}\n{output}"))?;
    check(decision["break_glass"] == json!(true), "break_glass is true", &output)?;
    check(decision["deferred"] == json!(["break_glass.duration"]), "break_glass.duration is deferred", &output)
}
