//! `--guard-explain`: the decision a job would get, printed by srun, sbatch
//! and salloc, which then exit without submitting anything.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cluster_tests::{Cluster, Output};
use serde_json::{json, Value};

use super::support::{
    base_policy, check, expect_code, expect_guard_lines, expect_sorted_stdout, guardctl, install, paths, prepare_files,
    records_of, srun, Readable, KEY_ID, KEY_SEED, PROD_USER, USER,
};

pub const SCENARIOS: [(&str, super::Scenario); 10] = [
    ("explain::srun_allowed_not_run", srun_allowed_not_run),
    ("explain::sbatch_prod_without_ticket", sbatch_prod_without_ticket),
    ("explain::printed_ticket_command_works", printed_ticket_command_works),
    ("explain::container_command_line", container_command_line),
    ("explain::json_decision", json_decision),
    ("explain::unknown_format_rejected", unknown_format_rejected),
    ("explain::salloc_allocates_nothing", salloc_allocates_nothing),
    ("explain::srun_in_allocation_creates_no_step", srun_in_allocation_creates_no_step),
    ("explain::unreadable_policy_no_decision", unreadable_policy_no_decision),
    ("explain::step_ignores_option_variable", step_ignores_option_variable),
];

/// Correlation id given to every explained request, so the report is exact.
const CORRELATION_ID: &str = "explain-test-1";

/// Report of an allowed dev request with [`CORRELATION_ID`], without the prefix.
const DEV_ALLOWED_REPORT: [&str; 8] = [
    "environment dev (risk 1, mode enforce)",
    "outcome: allow",
    "unset: none",
    "set: HOS_CORRELATION_ID=explain-test-1",
    "set: HOS_ENV=dev",
    "set: HOS_RISK=1",
    "container: none",
    "correlation id: explain-test-1",
];

/// Returns the ids of every job in slurmctld, finished ones included
/// (the test cluster keeps them for `MinJobAge`, 600 s).
fn job_ids(cluster: &Cluster) -> Result<Vec<String>, String> {
    let output = cluster.root(&["squeue", "-h", "-t", "all", "-o", "%i"]);
    if output.code != 0 {
        return Err(format!("squeue failed\n{output}"));
    }
    let mut ids: Vec<String> = output.stdout_lines().into_iter().map(str::to_owned).collect();
    ids.sort();
    Ok(ids)
}

/// Runs `args` as `user` and checks that slurmctld has no new job afterwards.
fn run_without_job(cluster: &Cluster, user: &cluster_tests::TestUser, env: &[(&str, &str)], args: &[&str]) -> Result<Output, String> {
    let before = job_ids(cluster)?;
    let output = cluster.run_as(user, env, args);
    let after = job_ids(cluster)?;
    check(after == before, &format!("no job may be created: jobs before {before:?}, after {after:?}"), &output)?;
    Ok(output)
}

/// Runs `args` as `user` with the test correlation id, through [`run_without_job`].
fn explain_without_job(cluster: &Cluster, user: &cluster_tests::TestUser, args: &[&str]) -> Result<Output, String> {
    run_without_job(cluster, user, &[("HOS_CORRELATION_ID", CORRELATION_ID)], args)
}

/// Checks standard output line by line, in order.
fn expect_stdout(output: &Output, expected: &[String]) -> Result<(), String> {
    let lines = output.stdout_lines();
    check(lines == expected, &format!("expected stdout lines {expected:#?}"), output)
}

fn lines(prefixed: &[&str]) -> Vec<String> {
    prefixed.iter().map(|line| format!("spank-guard explain: {line}")).collect()
}

fn srun_allowed_not_run(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let marker = cluster.work_dir(&USER).join("explain-ran");
    let marker_text = marker.display().to_string();
    let output = explain_without_job(cluster, &USER, &["srun", "--guard-explain", "--guard-env=dev", "touch", &marker_text])?;
    expect_code(&output, 0)?;
    expect_stdout(
        &output,
        &lines(&DEV_ALLOWED_REPORT),
    )?;
    check(output.stderr.is_empty(), "nothing on standard error", &output)?;
    check(!marker.exists(), &format!("the command must not run, but {marker_text} exists"), &output)?;

    // `--guard-explain=text` is the same report.
    let output = explain_without_job(cluster, &USER, &["srun", "--guard-explain=text", "--guard-env=dev", "touch", &marker_text])?;
    expect_code(&output, 0)?;
    check(output.stdout_lines().get(1) == Some(&"spank-guard explain: outcome: allow"), "text report", &output)?;
    check(!marker.exists(), "the command must not run", &output)
}

/// Base policy whose `prod` environment needs a ticket and runs only on c1.
fn ticket_policy(cluster: &Cluster) -> Value {
    let mut policy = base_policy(cluster);
    policy["environments"]["prod"]["approval"] = json!({ "ticket": true });
    policy["environments"]["prod"]["nodes"] = json!(["c1"]);
    policy
}

const ACCESS_MESSAGE: &str =
    "user `guardtest` is not allowed in environment `prod`; allowed users: (none); allowed groups: `hpc-prod`";
const TICKET_MESSAGE: &str = "environment `prod` requires an approval ticket and none was given; pass \
     `--guard-ticket=TICKET` or set `HOS_APPROVAL_TICKET` (an approver issues one with `guardctl ticket issue`)";

/// Returns the report lines that describe a prod ticket for `user`.
fn ticket_lines(user: &str, job_name_line: &str, command_suffix: &str) -> Vec<String> {
    lines(&[
        "ticket required: environment prod needs an approval ticket from an approver; the ticket must contain:",
        &format!("ticket user: {user}"),
        "ticket environment: prod (or an alias: production)",
        job_name_line,
        "ticket lifetime: at most 24 hours (approvals.max_ttl_hours)",
        &format!("ticket keys: {KEY_ID}"),
        &format!(
            "ticket command: guardctl ticket issue --key PRIVATE_KEY_FILE --kid {KEY_ID} --user {user} --env prod --ttl 24h{command_suffix}"
        ),
        "ticket use: pass it with --guard-ticket=TICKET or in HOS_APPROVAL_TICKET",
    ])
}

fn sbatch_prod_without_ticket(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &ticket_policy(cluster), Readable::ByEveryone, "")?;
    let output = explain_without_job(cluster, &USER, &["sbatch", "--guard-explain", "--guard-env=production", "-J", "nightly", "--wrap=true"])?;
    expect_code(&output, 1)?;
    check(!output.stdout.contains("Submitted batch job"), "the job must not be submitted", &output)?;
    let expected = |job_name_line: &str, command_suffix: &str| {
        let mut expected = lines(&[
            "environment prod (risk 10, mode enforce)",
            "outcome: deny",
            &format!("deny: environment.access: {ACCESS_MESSAGE}"),
            &format!("deny: approval.ticket: {TICKET_MESSAGE}"),
            "checked on the compute node: environment.node: every node of the job must match `c1`",
        ]);
        expected.extend(ticket_lines("guardtest", job_name_line, command_suffix));
        expected.extend(lines(&["correlation id: explain-test-1"]));
        expected
    };
    expect_stdout(
        &output,
        &expected("ticket job name: nightly (optional; a ticket without a job name is valid for every job name)", " --job-name nightly"),
    )?;
    check(output.stderr.is_empty(), "nothing on standard error", &output)?;

    // The environment of srun and salloc has no SLURM_JOB_NAME in
    // init_post_opt (Slurm 22.05), so their report requests a ticket
    // without a job name.
    let output = explain_without_job(cluster, &USER, &["srun", "--guard-explain", "--guard-env=prod", "--job-name=nightly", "true"])?;
    expect_code(&output, 1)?;
    expect_stdout(&output, &expected("ticket job name: none needed (a ticket without a job name is valid for every job name)", ""))?;

    let output = explain_without_job(cluster, &USER, &["salloc", "--guard-explain", "--guard-env=prod", "--job-name=nightly", "true"])?;
    expect_code(&output, 1)?;
    expect_stdout(&output, &expected("ticket job name: none needed (a ticket without a job name is valid for every job name)", ""))
}

/// Runs the `guardctl ticket issue` command that the report prints, with the
/// test key, and submits with the ticket it prints.
fn printed_ticket_command_works(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &ticket_policy(cluster), Readable::ByEveryone, "")?;
    let output = explain_without_job(cluster, &PROD_USER, &["srun", "--guard-explain", "--guard-env=prod", "-w", "c1", "hostname"])?;
    expect_code(&output, 1)?;
    let mut expected = lines(&[
        "environment prod (risk 10, mode enforce)",
        "outcome: deny",
        &format!("deny: approval.ticket: {TICKET_MESSAGE}"),
        "checked on the compute node: environment.node: every node of the job must match `c1`",
    ]);
    expected.extend(ticket_lines(
        "guardprod",
        "ticket job name: none needed (a ticket without a job name is valid for every job name)",
        "",
    ));
    expected.extend(lines(&["correlation id: explain-test-1"]));
    expect_stdout(&output, &expected)?;

    let command_line = output
        .stdout_lines()
        .into_iter()
        .find_map(|line| line.strip_prefix("spank-guard explain: ticket command: guardctl "))
        .ok_or_else(|| format!("no ticket command line\n{output}"))?
        .to_owned();
    let key_file = cluster.path("etc/approver.key");
    fs::write(&key_file, format!("{}\n", STANDARD.encode(KEY_SEED))).map_err(|error| format!("cannot write {}: {error}", key_file.display()))?;
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).map_err(|error| format!("cannot chmod {}: {error}", key_file.display()))?;
    let key_text = key_file.display().to_string();
    let arguments: Vec<&str> =
        command_line.split(' ').map(|word| if word == "PRIVATE_KEY_FILE" { key_text.as_str() } else { word }).collect();
    let issued = guardctl(&arguments)?;
    let ticket = String::from_utf8_lossy(&issued.stdout).trim().to_owned();
    if !issued.status.success() || !ticket.starts_with("v1.") {
        return Err(format!(
            "guardctl {command_line} failed: {}\n{}",
            issued.status,
            String::from_utf8_lossy(&issued.stderr)
        ));
    }

    let option = format!("--guard-ticket={ticket}");
    let output = explain_without_job(cluster, &PROD_USER, &["srun", "--guard-explain", "--guard-env=prod", &option, "-w", "c1", "hostname"])?;
    expect_code(&output, 0)?;
    let stdout = output.stdout_lines();
    check(stdout.get(1) == Some(&"spank-guard explain: outcome: allow"), "the ticket makes the request allowed", &output)?;
    check(
        stdout.iter().any(|line| line.starts_with(&format!("spank-guard explain: ticket: valid, key {KEY_ID}, expires "))),
        "the report names the valid ticket",
        &output,
    )?;
    check(!stdout.iter().any(|line| line.contains("ticket required")), "no ticket requirement with a valid ticket", &output)?;

    // The ticket works for a real step as well.
    let output = srun(cluster, &PROD_USER, &[], &["--guard-env=prod", &option, "-w", "c1", "printenv", "HOS_ENV"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["prod"])
}

fn apptainer_call_count(cluster: &Cluster) -> usize {
    fs::read_dir(cluster.apptainer_calls()).map(|entries| entries.count()).unwrap_or(0)
}

fn container_command_line(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let bind = format!("--guard-bind={dir}/data/project:/project:ro");
    let calls_before = apptainer_call_count(cluster);
    let output = run_without_job(
        cluster,
        &USER,
        &[("HOS_CORRELATION_ID", CORRELATION_ID), ("APPTAINER_CACHEDIR", "/tmp")],
        &["srun", "--guard-explain", &image, &bind, "--guard-container-flags=--nv,--pwd=/project", "sh", "-c", "echo $HOS_ENV"],
    )?;
    expect_code(&output, 0)?;
    expect_stdout(
        &output,
        &lines(&[
            "environment dev (risk 1, mode enforce)",
            "outcome: allow",
            "unset: APPTAINER_CACHEDIR",
            "set: HOS_CORRELATION_ID=explain-test-1",
            "set: HOS_ENV=dev",
            "set: HOS_RISK=1",
            &format!(
                "container: {dir}/bin/apptainer exec --containall --cleanenv --bind {dir}/data/project:/project:ro \
                 --nv --pwd=/project {dir}/images/app.sif <srun command>"
            ),
            "correlation id: explain-test-1",
        ]),
    )?;
    check(apptainer_call_count(cluster) == calls_before, "the container runtime must not run", &output)?;

    // sbatch has no command: the batch script runs on the host by default,
    // and each srun step is wrapped.
    let output = explain_without_job(cluster, &USER, &["sbatch", "--guard-explain", &image, "--wrap=true"])?;
    expect_code(&output, 0)?;
    let expected = format!(
        "spank-guard explain: container: {dir}/bin/apptainer exec --containall --cleanenv {dir}/images/app.sif <srun step command>"
    );
    check(output.stdout_lines().contains(&expected.as_str()), &format!("expected the line {expected}"), &output)
}

fn json_decision(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = explain_without_job(cluster, &USER, &["srun", "--guard-explain=json", "--guard-env=staging", "true"])?;
    expect_code(&output, 1)?;
    let decision: Value =
        serde_json::from_str(&output.stdout).map_err(|error| format!("standard output is not JSON: {error}\n{output}"))?;
    let expected_reasons = json!([{
        "rule": "approval.justification",
        "message": "environment `staging` requires a justification of at least 15 non-blank characters and no \
                    justification was given; pass `--guard-justification=TEXT` or set `HOS_JUSTIFICATION`"
    }]);
    check(decision["outcome"] == "deny", "outcome deny", &output)?;
    check(decision["environment"] == "staging", "environment staging", &output)?;
    check(decision["risk"] == 5, "risk 5", &output)?;
    check(decision["reasons"] == expected_reasons, &format!("reasons {expected_reasons}"), &output)?;
    check(decision["correlation_id"] == CORRELATION_ID, "correlation id", &output)?;
    expect_guard_lines(&output, &[])?;

    let output = run_without_job(cluster, &USER, &[], &["srun", "--guard-explain=json", "--guard-env=dev", "true"])?;
    expect_code(&output, 0)?;
    let decision: Value =
        serde_json::from_str(&output.stdout).map_err(|error| format!("standard output is not JSON: {error}\n{output}"))?;
    check(decision["outcome"] == "allow", "outcome allow", &output)
}

fn unknown_format_rejected(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let expected = "spank-guard: invalid --guard-explain format `yaml`; use --guard-explain or --guard-explain=text \
                    for the report, or --guard-explain=json for the decision as JSON";
    for command in ["srun", "salloc"] {
        let output = run_without_job(cluster, &USER, &[], &[command, "--guard-explain=yaml", "true"])?;
        expect_code(&output, 2)?;
        expect_guard_lines(&output, &[expected])?;
        check(output.stdout.is_empty(), "nothing on standard output", &output)?;
    }
    Ok(())
}

fn salloc_allocates_nothing(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let marker = cluster.work_dir(&USER).join("salloc-explain-ran");
    let marker_text = marker.display().to_string();
    let output = explain_without_job(cluster, &USER, &["salloc", "--guard-explain", "-N1", "--guard-env=dev", "touch", &marker_text])?;
    expect_code(&output, 0)?;
    expect_stdout(
        &output,
        &lines(&DEV_ALLOWED_REPORT),
    )?;
    check(output.stderr.is_empty(), "nothing on standard error: no allocation is granted", &output)?;
    check(!marker.exists(), "salloc must not run its command", &output)?;

    // A denied request exits 1.
    let output = explain_without_job(cluster, &USER, &["salloc", "--guard-explain", "--guard-env=prod", "true"])?;
    expect_code(&output, 1)?;
    check(output.stdout_lines().get(1) == Some(&"spank-guard explain: outcome: deny"), "outcome deny", &output)
}

/// srun inside an allocation creates no step: the node writes a `decision`
/// record for every step it starts, and none is written.
fn srun_in_allocation_creates_no_step(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = cluster.run_as(
        &USER,
        &[("HOS_CORRELATION_ID", CORRELATION_ID)],
        &["salloc", "-N1", "--guard-env=dev", "srun", "--guard-explain", "true"],
    );
    expect_code(&output, 0)?;
    check(output.stdout_lines().get(1) == Some(&"spank-guard explain: outcome: allow"), "outcome allow", &output)?;
    let decisions = records_of(cluster, "decision")?;
    check(decisions.is_empty(), &format!("no step may start: {decisions:#?}"), &output)
}

fn unreadable_policy_no_decision(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "")?;
    let policy = paths(cluster).policy.display().to_string();
    let output = run_without_job(cluster, &USER, &[], &["srun", "--guard-explain", "true"])?;
    expect_code(&output, 2)?;
    expect_guard_lines(
        &output,
        &[&format!(
            "spank-guard: cannot explain the decision: the policy file {policy} is not readable by user guardtest; \
             ask an administrator to run `guardctl explain` for this request"
        )],
    )?;
    check(output.stdout.is_empty(), "nothing on standard output", &output)?;

    // An invalid policy: the load errors instead of a decision.
    cluster.write_root_file_mode(
        "etc/spank-guard/policy.json",
        b"{ \"version\": 1, \"default_environment\": \"dev\", \"environments\": { \"dev\": { \"risk\": \"high\" } } }\n",
        0o644,
    )?;
    let output = run_without_job(cluster, &USER, &[], &["sbatch", "--guard-explain", "--wrap=true"])?;
    expect_code(&output, 2)?;
    expect_guard_lines(
        &output,
        &[
            &format!("spank-guard: cannot explain the decision: the policy file {policy} is invalid:"),
            &format!(
                "spank-guard: policy.invalid: {policy}:1:87: environments.dev.risk: invalid type: string \"high\", expected u32"
            ),
        ],
    )
}

/// Checks that a hand-set option variable in the job environment does not
/// change the step. slurmstepd ignores the value, and the node stays in
/// service (checked after every scenario).
fn step_ignores_option_variable(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    for value in ["", "json", "yaml"] {
        let output = srun(cluster, &USER, &[("_SLURM_SPANK_OPTION_spank_guard_guard_explain", value)], &["printenv", "HOS_ENV"]);
        expect_code(&output, 0)?;
        expect_guard_lines(&output, &[])?;
        expect_sorted_stdout(&output, &["dev"])?;
    }
    Ok(())
}
