//! Missing, invalid and insecure policies under both `on_policy_error`
//! settings, invalid plugstack arguments, and audit mode.

use cluster_tests::Cluster;
use serde_json::json;

use super::support::{
    job_correlation_id,
    base_policy, check, expect_code, expect_field, expect_guard_lines, expect_sorted_stdout, install,
    paths, prepare_files, records_of, settled_records, srun, Readable, USER,
};

pub const SCENARIOS: [(&str, super::Scenario); 8] = [
    ("policy_error::missing_policy_denied_at_submit", missing_policy_denied_at_submit),
    ("policy_error::missing_policy_allowed", missing_policy_allowed),
    ("policy_error::invalid_policy_fails_tasks", invalid_policy_fails_tasks),
    ("policy_error::invalid_policy_allowed", invalid_policy_allowed),
    ("policy_error::world_writable_policy_fails_tasks", world_writable_policy_fails_tasks),
    ("policy_error::world_writable_policy_allowed", world_writable_policy_allowed),
    ("plugstack::unknown_argument_rejected", unknown_argument_rejected),
    ("audit_mode::would_deny_runs_with_warning", would_deny_runs_with_warning),
];

const INVALID_POLICY: &[u8] = b"{ \"version\": 1, \"default_environment\": \"dev\", \"environments\": { \"dev\": { \"risk\": \"high\" } } }\n";

fn remove_policy(cluster: &Cluster) -> Result<(), String> {
    let path = paths(cluster).policy;
    if path.exists() {
        std::fs::remove_file(&path).map_err(|error| format!("cannot remove {}: {error}", path.display()))?;
    }
    Ok(())
}

/// Returns the job id of the first `policy_error` record.
fn failed_job_id(cluster: &Cluster) -> Result<u64, String> {
    let errors = policy_error_records(cluster)?;
    errors.first().and_then(|record| record["job_id"].as_u64()).ok_or_else(|| format!("no policy_error record: {errors:#?}"))
}

fn policy_error_records(cluster: &Cluster) -> Result<Vec<serde_json::Value>, String> {
    Ok(settled_records(cluster, &paths(cluster).fallback_audit)?.into_iter().filter(|record| record["event"] == "policy_error").collect())
}

fn missing_policy_denied_at_submit(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "on_policy_error=deny")?;
    remove_policy(cluster)?;
    let policy = paths(cluster).policy.display().to_string();
    let output = srun(cluster, &USER, &[], &["true"]);
    expect_code(&output, 1)?;
    let lines = output.guard_lines();
    check(lines.len() == 2, "the error and the correlation id", &output)?;
    check(
        lines[0] == format!("spank-guard: denied: policy.invalid: {policy}: cannot read policy file: No such file or directory (os error 2)"),
        "missing policy message",
        &output,
    )?;
    check(lines[1].starts_with("spank-guard: correlation id: "), "correlation id line", &output)
}

fn missing_policy_allowed(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "on_policy_error=allow")?;
    remove_policy(cluster)?;
    let policy = paths(cluster).policy.display().to_string();
    let output = srun(cluster, &USER, &[], &["-N1", "echo", "ran"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["ran"])?;
    expect_guard_lines(
        &output,
        &[&format!(
            "spank-guard: warning: policy not loaded, on_policy_error=allow: {policy}: cannot read policy file: \
             No such file or directory (os error 2)"
        )],
    )?;
    let errors = policy_error_records(cluster)?;
    check(errors.len() == 1, &format!("expected one policy_error record, got {errors:#?}"), &output)?;
    expect_field(&errors[0], "outcome", &json!("allow"))?;
    expect_field(&errors[0], "user", &json!("guardtest"))
}

/// Installs an invalid policy that only root may read, so that the submit
/// check is skipped and the node decides.
fn invalid_policy_fails_tasks(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "on_policy_error=deny")?;
    cluster.write_root_file_mode("etc/spank-guard/policy.json", INVALID_POLICY, 0o600)?;
    let output = srun(cluster, &USER, &[], &["-N2", "echo", "ran"]);
    expect_code(&output, 1)?;
    check(!output.stdout.contains("ran"), "no task may run", &output)?;
    let policy = paths(cluster).policy.display().to_string();
    let job_id = failed_job_id(cluster)?;
    let mut lines = output.guard_lines();
    lines.sort_unstable();
    let reason = format!(
        "spank-guard: denied: policy.invalid: {policy}:1:87: environments.dev.risk: invalid type: string \"high\", expected u32"
    );
    let correlation = format!("spank-guard: correlation id: {}", job_correlation_id(cluster, job_id)?);
    check(lines == [correlation.as_str(), correlation.as_str(), reason.as_str(), reason.as_str()], "one error per node", &output)?;
    let errors = policy_error_records(cluster)?;
    check(errors.len() == 2, &format!("expected one policy_error record per node, got {errors:#?}"), &output)?;
    expect_field(&errors[0], "outcome", &json!("deny"))?;
    check(records_of(cluster, "decision")?.is_empty(), "no decision without a policy", &output)
}

fn invalid_policy_allowed(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "on_policy_error=allow")?;
    cluster.write_root_file_mode("etc/spank-guard/policy.json", INVALID_POLICY, 0o600)?;
    let output = srun(cluster, &USER, &[], &["-N1", "echo", "ran"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["ran"])?;
    let errors = policy_error_records(cluster)?;
    check(errors.len() == 1, &format!("expected one policy_error record, got {errors:#?}"), &output)?;
    expect_field(&errors[0], "outcome", &json!("allow"))?;
    let ends: Vec<_> =
        settled_records(cluster, &paths(cluster).fallback_audit)?.into_iter().filter(|record| record["event"] == "step_end").collect();
    check(ends.len() == 1, &format!("the step_end record goes to the fallback audit file: {ends:#?}"), &output)
}

/// Installs a policy writable by others. Mode 0602 also makes it
/// unreadable for the user, so only the node checks it.
fn world_writable_policy_fails_tasks(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "on_policy_error=deny")?;
    let text = serde_json::to_vec(&base_policy(cluster)).map_err(|error| error.to_string())?;
    let policy = cluster.write_root_file_mode("etc/spank-guard/policy.json", &text, 0o602)?;
    let output = srun(cluster, &USER, &[], &["-N1", "echo", "ran"]);
    expect_code(&output, 1)?;
    let job_id = failed_job_id(cluster)?;
    expect_guard_lines(
        &output,
        &[
            &format!(
                "spank-guard: denied: policy.invalid: {}: policy file is writable by group or others (mode 0602); run `chmod go-w {}`",
                policy.display(),
                policy.display()
            ),
            &format!("spank-guard: correlation id: {}", job_correlation_id(cluster, job_id)?),
        ],
    )
}

fn world_writable_policy_allowed(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "on_policy_error=allow")?;
    let text = serde_json::to_vec(&base_policy(cluster)).map_err(|error| error.to_string())?;
    cluster.write_root_file_mode("etc/spank-guard/policy.json", &text, 0o666)?;
    let output = srun(cluster, &USER, &[], &["-N1", "echo", "ran"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["ran"])?;
    let errors = policy_error_records(cluster)?;
    check(errors.len() == 1, &format!("expected one policy_error record, got {errors:#?}"), &output)?;
    expect_field(&errors[0], "outcome", &json!("allow"))
}

fn unknown_argument_rejected(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "verbose=yes")?;
    let output = srun(cluster, &USER, &[], &["-N1", "echo", "ran"]);
    expect_code(&output, 1)?;
    check(!output.stdout.contains("ran"), "nothing may run", &output)?;
    check(
        output.stderr.contains(
            "spank-guard: invalid plugstack.conf argument: `verbose=yes`: unknown argument `verbose`; \
             known arguments are policy, on_policy_error, fallback_audit",
        ),
        "the error names the argument",
        &output,
    )?;

    // A job that reaches the node with the bad argument fails its tasks,
    // and the node is not drained.
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "")?;
    cluster.set_plugstack(&format!("policy={} verbose=yes", paths(cluster).policy.display()))?;
    let output = cluster.run_as(&USER, &[], &["sbatch", "--wait", "--output=/dev/null", "--wrap=echo ran"]);
    check(output.code != 0, "the batch job must fail", &output)?;
    check(cluster.idle(), &format!("nodes must stay idle: {:?}", cluster.node_states()), &output)
}

fn would_deny_runs_with_warning(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    let mut policy = base_policy(cluster);
    policy["mode"] = json!("audit");
    install(cluster, &policy, Readable::ByEveryone, "")?;
    let output = srun(cluster, &USER, &[], &["-N1", "--guard-env=prod", "printenv", "HOS_ENV"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["prod"])?;
    let decision = &records_of(cluster, "decision")?[0];
    expect_field(decision, "outcome", &json!("would_deny"))?;
    expect_field(decision, "mode", &json!("audit"))?;
    let job_id = decision["job_id"].as_u64().unwrap_or_default();
    let warning = "spank-guard: warning: audit mode, would deny: environment.access: user `guardtest` is not allowed in \
                   environment `prod`; allowed users: (none); allowed groups: `hpc-prod`";
    let lines = output.guard_lines();
    check(lines.len() == 4, "warnings at submit and from the node", &output)?;
    check(lines[0] == warning && lines[2] == warning, "audit-mode warning lines", &output)?;
    check(lines[1].starts_with("spank-guard: correlation id: "), "correlation id at submit", &output)?;
    let node_line = format!("spank-guard: correlation id: {}", job_correlation_id(cluster, job_id)?);
    check(lines[1] == node_line && lines[3] == node_line, "one correlation id at submit and on the node", &output)
}
