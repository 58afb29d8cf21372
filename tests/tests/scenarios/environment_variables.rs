//! Variables the policy scrubs and sets, and values that must not break
//! a log or audit line.

use cluster_tests::Cluster;
use serde_json::json;

use super::support::{
    job_correlation_id,
    base_policy, check, expect_code, expect_field, expect_guard_lines, expect_sorted_stdout, install,
    paths, prepare_files, records_of, settled_records, srun, Readable, USER,
};

pub const SCENARIOS: [(&str, super::Scenario); 7] = [
    ("env::long_and_binary_values_reach_task", long_and_binary_values_reach_task),
    ("audit::write_failure_denies_with_on_error_deny", audit_write_failure_denies),
    ("audit::write_failure_logged_with_on_error_allow", audit_write_failure_allowed),
    ("env::ld_preload_scrubbed_from_task", ld_preload_scrubbed_from_task),
    ("env::policy_variables_set_in_task", policy_variables_set_in_task),
    ("env::given_correlation_id_adopted", given_correlation_id_adopted),
    ("env::justification_with_newlines_and_quotes", justification_with_newlines_and_quotes),
];

const HARMLESS_LIBRARY: &str = "/lib/x86_64-linux-gnu/libm.so.6";

fn ld_preload_scrubbed_from_task(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = srun(
        cluster,
        &USER,
        &[("LD_PRELOAD", HARMLESS_LIBRARY), ("LD_AUDIT", HARMLESS_LIBRARY)],
        &["-N1", "sh", "-c", "echo preload=${LD_PRELOAD-unset} audit=${LD_AUDIT-unset}"],
    );
    expect_code(&output, 0)?;
    expect_guard_lines(&output, &[])?;
    expect_sorted_stdout(&output, &["preload=unset audit=unset"])?;
    let decision = &records_of(cluster, "decision")?[0];
    expect_field(&decision["effects"], "unset", &json!(["LD_AUDIT", "LD_PRELOAD"]))?;
    check(!decision.to_string().contains(HARMLESS_LIBRARY), "the audit record must not contain variable values", &output)
}

fn policy_variables_set_in_task(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = srun(
        cluster,
        &USER,
        &[],
        &["-N2", "sh", "-c", "echo $SLURMD_NODENAME $HOS_ENV $HOS_RISK $HOS_CORRELATION_ID"],
    );
    expect_code(&output, 0)?;
    let job_id = records_of(cluster, "decision")?[0]["job_id"].as_u64().unwrap_or_default();
    let id = job_correlation_id(cluster, job_id)?;
    expect_sorted_stdout(&output, &[&format!("c1 dev 1 {id}"), &format!("c2 dev 1 {id}")])?;
    for record in records_of(cluster, "decision")? {
        expect_field(&record, "correlation_id", &json!(id))?;
        expect_field(&record["effects"], "set", &json!(["HOS_CORRELATION_ID", "HOS_ENV", "HOS_RISK"]))?;
    }
    Ok(())
}

fn given_correlation_id_adopted(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = srun(cluster, &USER, &[("HOS_CORRELATION_ID", "ci-build-4711")], &["-N1", "printenv", "HOS_CORRELATION_ID"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["ci-build-4711"])?;
    expect_field(&records_of(cluster, "decision")?[0], "correlation_id", &json!("ci-build-4711"))
}

fn justification_with_newlines_and_quotes(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let justification = "line one \"quoted\"\nline two 'single' \\ backslash\r\n{\"json\": true}";
    let output = srun(cluster, &USER, &[("HOS_JUSTIFICATION", justification)], &["-N1", "true"]);
    expect_code(&output, 0)?;
    cluster.settle()?;
    let text = std::fs::read_to_string(paths(cluster).audit).map_err(|error| error.to_string())?;
    let records = settled_records(cluster, &paths(cluster).audit)?;
    check(text.lines().count() == records.len(), "every line is one record", &output)?;
    let decision = records.iter().find(|record| record["event"] == "decision").cloned().unwrap_or_default();
    expect_field(&decision, "justification", &json!(justification))
}

fn long_and_binary_values_reach_task(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let long = "v".repeat(100_000);
    let output = cluster.run_as_os(
        &USER,
        &[
            ("LONG_VALUE", std::ffi::OsStr::new(&long)),
            ("MULTILINE_VALUE", std::ffi::OsStr::new("first\nsecond")),
            ("BINARY_VALUE", std::os::unix::ffi::OsStrExt::from_bytes(b"\xff\xfe-raw")),
        ],
        &["srun", "-N1", "sh", "-c", "printf '%s' \"$LONG_VALUE\" | wc -c; printf '%s' \"$MULTILINE_VALUE\" | wc -l; printf '%s' \"$BINARY_VALUE\" | od -An -tx1"],
    );
    expect_code(&output, 0)?;
    let lines: Vec<String> = output.stdout.lines().map(|line| line.trim().to_owned()).collect();
    check(lines == ["100000", "1", "ff fe 2d 72 61 77"], &format!("task saw {lines:?}"), &output)?;
    cluster.settle()?;
    let text = std::fs::read_to_string(paths(cluster).audit).map_err(|error| error.to_string())?;
    let records = settled_records(cluster, &paths(cluster).audit)?;
    check(text.lines().count() == records.len() && records.len() == 2, "two whole audit records", &output)
}

/// Points the audit path at a directory, where no record can be written.
fn unwritable_audit_policy(cluster: &Cluster, on_error: &str) -> serde_json::Value {
    let mut policy = base_policy(cluster);
    policy["audit"]["path"] = json!(cluster.path("images").display().to_string());
    policy["audit"]["on_error"] = json!(on_error);
    policy
}

fn audit_write_failure_denies(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &unwritable_audit_policy(cluster, "deny"), Readable::ByEveryone, "")?;
    let output = srun(cluster, &USER, &[], &["-N1", "echo", "ran"]);
    expect_code(&output, 1)?;
    check(!output.stdout.contains("ran"), "the task must not run without its audit record", &output)?;
    let images = cluster.path("images").display().to_string();
    expect_guard_lines(&output, &[&format!("spank-guard: denied: cannot write audit record to {images}: Is a directory (os error 21)")])
}

fn audit_write_failure_allowed(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &unwritable_audit_policy(cluster, "allow"), Readable::ByEveryone, "")?;
    let output = srun(cluster, &USER, &[], &["-N1", "echo", "ran"]);
    expect_code(&output, 0)?;
    expect_guard_lines(&output, &[])?;
    expect_sorted_stdout(&output, &["ran"])
}
