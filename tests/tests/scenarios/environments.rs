//! Environment selection, access and the submit-side check.

use cluster_tests::Cluster;
use serde_json::json;

use super::support::{
    job_correlation_id,
    base_policy, check, expect_code, expect_field, expect_guard_lines, expect_sorted_stdout, install, prepare_files,
    records_of, srun, Readable, PROD_USER, USER,
};

pub const SCENARIOS: [(&str, super::Scenario); 7] = [
    ("options::srun_help_lists_every_option", srun_help_lists_every_option),
    ("environment::dev_allowed_with_audit_record", dev_allowed_with_audit_record),
    ("environment::unknown_denied_at_submit", unknown_denied_at_submit),
    ("environment::prod_denied_for_non_member_on_node", prod_denied_for_non_member_on_node),
    ("environment::prod_allowed_for_group_member", prod_allowed_for_group_member),
    ("environment::node_name_not_taken_from_user", node_name_not_taken_from_user),
    ("environment::batch_inner_step_uses_its_node", batch_inner_step_uses_its_node),
];

fn srun_help_lists_every_option(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    for command in ["srun", "sbatch", "salloc"] {
        let output = cluster.run_as(&USER, &[], &[command, "--help"]);
        expect_code(&output, 0)?;
        for option in [
            "--guard-env=ENV",
            "--guard-justification=TEXT",
            "--guard-ticket=TICKET",
            "--guard-image=PATH",
            "--guard-bind=SRC[:DST[:ro|rw]][,...]",
            "--guard-container-flags=FLAG[,...]",
        ] {
            check(
                output.stdout.lines().any(|line| line.trim_start().starts_with(option)),
                &format!("`{command} --help` does not list {option}"),
                &output,
            )?;
        }
    }
    Ok(())
}

fn dev_allowed_with_audit_record(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = srun(cluster, &USER, &[], &["-N1", "-w", "c1", "sh", "-c", "echo env=$HOS_ENV risk=$HOS_RISK"]);
    expect_code(&output, 0)?;
    expect_guard_lines(&output, &[])?;
    expect_sorted_stdout(&output, &["env=dev risk=1"])?;

    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, &format!("expected one decision record, got {decisions:#?}"), &output)?;
    let record = &decisions[0];
    expect_field(record, "outcome", &json!("allow"))?;
    expect_field(record, "environment", &json!("dev"))?;
    expect_field(record, "risk", &json!(1))?;
    expect_field(record, "user", &json!("guardtest"))?;
    expect_field(record, "node", &json!("c1"))?;
    expect_field(record, "cluster", &json!("guardtest"))?;
    expect_field(record, "step_id", &json!(0))?;
    expect_field(record, "argv0", &json!("sh"))?;
    expect_field(record, "reasons", &json!([]))?;
    let job_id = record["job_id"].as_u64().unwrap_or_default();
    expect_field(record, "correlation_id", &json!(job_correlation_id(cluster, job_id)?))?;

    let ends = records_of(cluster, "step_end")?;
    check(ends.len() == 1, &format!("expected one step_end record, got {ends:#?}"), &output)?;
    expect_field(&ends[0], "tasks", &json!(1))?;
    expect_field(&ends[0], "exit_codes", &json!([0]))?;
    expect_field(&ends[0], "job_id", &json!(job_id))
}

fn unknown_denied_at_submit(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let jobs_before = cluster.root(&["squeue", "--noheader", "--all", "--states=all", "--format=%i"]).stdout;
    let output = srun(cluster, &USER, &[], &["--guard-env=nope", "true"]);
    expect_code(&output, 1)?;
    let lines = output.guard_lines();
    check(lines.len() == 2, "expected one reason and the correlation id", &output)?;
    check(
        lines[0]
            == "spank-guard: denied: environment.unknown: environment `nope` (from `--guard-env`) is not defined; \
                use one of `boxed`, `dev`, `prod`, `secure`, `staging` or an alias (`production`)",
        "unexpected reason line",
        &output,
    )?;
    check(lines[1].starts_with("spank-guard: correlation id: "), "expected the correlation id line", &output)?;
    check(
        output.stderr.contains("srun: error: Plugin stack post-option processing failed."),
        "srun must report that the plugin failed",
        &output,
    )?;
    let jobs_after = cluster.root(&["squeue", "--noheader", "--all", "--states=all", "--format=%i"]).stdout;
    check(jobs_before == jobs_after, "a denied srun must not submit a job", &output)?;
    check(records_of(cluster, "decision")?.is_empty(), "no step ran, so no node wrote a record", &output)
}

fn prod_denied_for_non_member_on_node(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "")?;
    let output = srun(cluster, &USER, &[], &["-N1", "-w", "c2", "--guard-env=production", "echo", "ran"]);
    expect_code(&output, 1)?;
    check(!output.stdout.contains("ran"), "the denied task must not run", &output)?;
    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, &format!("expected one decision record, got {decisions:#?}"), &output)?;
    let record = &decisions[0];
    let job_id = record["job_id"].as_u64().unwrap_or_default();
    expect_guard_lines(
        &output,
        &[
            "spank-guard: denied: environment.access: user `guardtest` is not allowed in environment `prod`; \
             allowed users: (none); allowed groups: `hpc-prod`",
            &format!("spank-guard: correlation id: {}", job_correlation_id(cluster, job_id)?),
        ],
    )?;
    expect_field(record, "outcome", &json!("deny"))?;
    expect_field(record, "environment", &json!("prod"))?;
    expect_field(record, "node", &json!("c2"))?;
    expect_field(
        record,
        "reasons",
        &json!([{
            "rule": "environment.access",
            "message": "user `guardtest` is not allowed in environment `prod`; allowed users: (none); allowed groups: `hpc-prod`"
        }]),
    )?;
    check(
        output.stderr.contains("srun: error: c2: task 0: Exited with exit code 1"),
        "srun must report the failed task",
        &output,
    )
}

fn prod_allowed_for_group_member(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = srun(cluster, &PROD_USER, &[], &["-N2", "--guard-env=prod", "sh", "-c", "echo $SLURMD_NODENAME $HOS_ENV $HOS_TIER"]);
    expect_code(&output, 0)?;
    expect_guard_lines(&output, &[])?;
    expect_sorted_stdout(&output, &["c1 prod production", "c2 prod production"])?;
    let decisions = records_of(cluster, "decision")?;
    let nodes: Vec<&str> = decisions.iter().filter_map(|record| record["node"].as_str()).collect();
    check(decisions.len() == 2, &format!("expected one decision per node, got {decisions:#?}"), &output)?;
    check(nodes.contains(&"c1") && nodes.contains(&"c2"), &format!("nodes: {nodes:?}"), &output)?;
    for record in &decisions {
        expect_field(record, "outcome", &json!("allow"))?;
        expect_field(record, "user", &json!("guardprod"))?;
    }
    Ok(())
}

/// Returns the base policy with `dev` limited to node `c1`.
fn dev_only_on_c1(cluster: &Cluster) -> serde_json::Value {
    let mut policy = base_policy(cluster);
    policy["environments"]["dev"]["nodes"] = json!(["c1"]);
    policy
}

fn node_name_not_taken_from_user(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &dev_only_on_c1(cluster), Readable::ByEveryone, "")?;
    // A user who names an allowed node in the environment must still be
    // checked against the node the step runs on.
    let output = srun(cluster, &USER, &[("SLURMD_NODENAME", "c1")], &["-N1", "-w", "c2", "--guard-env=dev", "echo", "ran"]);
    expect_code(&output, 1)?;
    check(!output.stdout.contains("ran"), "the denied task must not run", &output)?;
    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, &format!("expected one decision record, got {decisions:#?}"), &output)?;
    expect_field(&decisions[0], "node", &json!("c2"))?;
    expect_field(&decisions[0], "outcome", &json!("deny"))?;
    let lines = output.guard_lines();
    check(
        lines.first().copied()
            == Some("spank-guard: denied: environment.node: node `c2` is not allowed for environment `dev`; allowed nodes: `c1`"),
        "the node rule names the real node",
        &output,
    )
}

fn batch_inner_step_uses_its_node(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &dev_only_on_c1(cluster), Readable::ByEveryone, "")?;
    let out = cluster.work_dir(&USER).join("inner-node.out");
    let output_option = format!("--output={}", out.display());
    let output = cluster.run_as(
        &USER,
        &[],
        &["sbatch", "--wait", "-N2", "--guard-env=dev", &output_option, "--wrap=srun -N1 -w c2 true"],
    );
    // The batch step runs on c1 and is allowed; its srun step on c2 is denied.
    expect_code(&output, 1)?;
    let decisions = records_of(cluster, "decision")?;
    let steps: Vec<(u64, &str, &str)> = decisions
        .iter()
        .map(|record| {
            (
                record["step_id"].as_u64().unwrap_or_default(),
                record["node"].as_str().unwrap_or_default(),
                record["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    check(
        steps == [(u64::from(policy_core::BATCH_STEP_ID), "c1", "allow"), (0, "c2", "deny")],
        &format!("decisions (step, node, outcome): {steps:?}"),
        &output,
    )
}
