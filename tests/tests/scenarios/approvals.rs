//! Time windows, justifications and approval tickets.

use cluster_tests::Cluster;
use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use policy_core::ticket::{issue, Claims};
use serde_json::json;

use super::support::{
    job_correlation_id,
    base_policy, change_slot_window, check, expect_code, expect_field, expect_guard_lines, expect_sorted_stdout, install,
    prepare_files, records_of, signing_key, srun, utc_clock, Readable, KEY_ID, USER,
};

pub const SCENARIOS: [(&str, super::Scenario); 7] = [
    ("window::open_window_allows", open_window_allows),
    ("window::closed_window_denies", closed_window_denies),
    ("approval::justification_too_short", justification_too_short),
    ("approval::valid_ticket_allows", valid_ticket_allows),
    ("approval::expired_ticket_denied", expired_ticket_denied),
    ("approval::forged_ticket_denied", forged_ticket_denied),
    ("approval::other_users_ticket_denied", other_users_ticket_denied),
];

/// Base policy with a `windowed` environment whose only window runs from
/// `start` to `end` minutes from now, every day, in UTC.
fn window_policy(cluster: &Cluster, start: i64, end: i64) -> serde_json::Value {
    let mut policy = base_policy(cluster);
    policy["windows"] = change_slot_window(start, end);
    policy["environments"]["windowed"] = json!({ "risk": 4, "windows": ["change-slot"] });
    policy
}

fn open_window_allows(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &window_policy(cluster, -60, 60), Readable::ByEveryone, "")?;
    let output = srun(cluster, &USER, &[], &["--guard-env=windowed", "printenv", "HOS_ENV"]);
    expect_code(&output, 0)?;
    expect_guard_lines(&output, &[])?;
    expect_sorted_stdout(&output, &["windowed"])
}

fn closed_window_denies(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &window_policy(cluster, 120, 180), Readable::ByRootOnly, "")?;
    let output = srun(cluster, &USER, &[], &["--guard-env=windowed", "printenv", "HOS_ENV"]);
    expect_code(&output, 1)?;
    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, "expected one decision record", &output)?;
    let reasons = decisions[0]["reasons"].as_array().cloned().unwrap_or_default();
    check(reasons.len() == 1 && reasons[0]["rule"] == "environment.window", "expected environment.window", &output)?;
    let message = reasons[0]["message"].as_str().unwrap_or_default();
    let job_id = decisions[0]["job_id"].as_u64().unwrap_or_default();
    expect_guard_lines(
        &output,
        &[&format!("spank-guard: denied: environment.window: {message}"), &format!("spank-guard: correlation id: {}", job_correlation_id(cluster, job_id)?)],
    )?;
    check(
        message.starts_with("environment `windowed` is outside its time windows at "),
        &format!("window message: {message}"),
        &output,
    )?;
    let slot = format!("`change-slot` (mon,tue,wed,thu,fri,sat,sun {}-{} (UTC)); next opening ", utc_clock(120), utc_clock(180));
    check(message.contains(&slot), &format!("the message names the window and its next opening: {slot}"), &output)
}

fn justification_too_short(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = srun(cluster, &USER, &[], &["--guard-env=staging", "--guard-justification=fix it", "true"]);
    expect_code(&output, 1)?;
    let lines = output.guard_lines();
    check(lines.len() == 2, "expected one reason and the correlation id", &output)?;
    check(
        lines[0]
            == "spank-guard: denied: approval.justification: environment `staging` requires a justification of at least 15 \
                non-blank characters and the justification has 5 non-blank characters; pass `--guard-justification=TEXT` \
                or set `HOS_JUSTIFICATION`",
        "justification message",
        &output,
    )?;

    let output = srun(
        cluster,
        &USER,
        &[],
        &["--guard-env=staging", "--guard-justification=rebuild the staging index after the upgrade", "printenv", "HOS_ENV"],
    );
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["staging"])?;
    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, "expected one decision record", &output)?;
    expect_field(&decisions[0], "justification", &json!("rebuild the staging index after the upgrade"))
}

fn ticket(key: &SigningKey, user: &str, env: &str, iat_offset: i64, exp_offset: i64) -> String {
    let now = Timestamp::now().as_second();
    issue(
        key,
        &Claims {
            kid: KEY_ID.to_owned(),
            user: user.to_owned(),
            env: env.to_owned(),
            iat: now + iat_offset,
            exp: now + exp_offset,
            job_name: None,
            justification: None,
        },
    )
}

fn valid_ticket_allows(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let token = ticket(&signing_key(), "guardtest", "secure", -60, 3600);
    let option = format!("--guard-ticket={token}");
    let output = srun(cluster, &USER, &[], &["--guard-env=secure", &option, "printenv", "HOS_ENV"]);
    expect_code(&output, 0)?;
    expect_guard_lines(&output, &[])?;
    expect_sorted_stdout(&output, &["secure"])?;
    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, "expected one decision record", &output)?;
    expect_field(&decisions[0]["ticket"], "kid", &json!(KEY_ID))?;
    check(!decisions[0].to_string().contains(&token), "the audit record must not contain the ticket", &output)
}

fn denied_ticket(cluster: &mut Cluster, token: &str, expected_message: &str) -> Result<(), String> {
    denied_ticket_any(cluster, token, &[expected_message.to_owned()])
}

/// Submits with `token` and expects a deny whose reason is one of `expected_messages`.
fn denied_ticket_any(cluster: &mut Cluster, token: &str, expected_messages: &[String]) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let option = format!("--guard-ticket={token}");
    let output = srun(cluster, &USER, &[], &["--guard-env=secure", &option, "true"]);
    expect_code(&output, 1)?;
    let lines = output.guard_lines();
    check(lines.len() == 2, "expected one reason and the correlation id", &output)?;
    check(
        expected_messages.iter().any(|message| lines[0] == format!("spank-guard: denied: approval.ticket: {message}")),
        &format!("expected one of {expected_messages:#?}"),
        &output,
    )?;
    check(!output.stderr.contains(token), "the ticket must not be echoed", &output)
}

fn expired_ticket_denied(cluster: &mut Cluster) -> Result<(), String> {
    let now = Timestamp::now().as_second();
    let token = ticket(&signing_key(), "guardtest", "secure", -7200, -3600);
    let expired_at = Timestamp::from_second(now - 3600).map_err(|error| error.to_string())?;
    // The message names the expiry and its age in seconds; the age can be
    // one second more than computed here.
    denied_ticket_any(
        cluster,
        &token,
        &[0, 1].map(|late| {
            format!("approval ticket expired at {expired_at} ({} s ago); ask for a new ticket with `guardctl ticket issue`", 3600 + late)
        }),
    )
}

fn forged_ticket_denied(cluster: &mut Cluster) -> Result<(), String> {
    let forger = SigningKey::from_bytes(&[9; 32]);
    denied_ticket(
        cluster,
        &ticket(&forger, "guardtest", "secure", -60, 3600),
        "approval ticket signature is not valid for key `test-2026`: the ticket was altered or signed with another key; \
         ask for a new ticket with `guardctl ticket issue`",
    )
}

fn other_users_ticket_denied(cluster: &mut Cluster) -> Result<(), String> {
    denied_ticket(
        cluster,
        &ticket(&signing_key(), "guardprod", "secure", -60, 3600),
        "approval ticket is for user `guardprod`, not `guardtest`; ask for a new ticket with `guardctl ticket issue --user guardtest`",
    )
}
