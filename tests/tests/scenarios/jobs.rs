//! Batch jobs, allocations, arrays, heterogeneous jobs, the extern step
//! and concurrent steps.

use std::thread;

use cluster_tests::Cluster;
use serde_json::json;

use super::support::{
    is_uuid_v4,
    base_policy, check, expect_code, expect_field, expect_guard_lines, expect_sorted_stdout, install,
    paths, prepare_files, records_of, settled_records, srun, Readable, PROD_USER, USER,
};

pub const SCENARIOS: [(&str, super::Scenario); 9] = [
    ("sbatch::options_reach_batch_and_inner_steps", options_reach_batch_and_inner_steps),
    ("sbatch::unknown_environment_not_submitted", sbatch_unknown_environment_not_submitted),
    ("sbatch::batch_step_wrapped_when_policy_says_wrap", batch_step_wrapped_when_policy_says_wrap),
    ("salloc::options_reach_steps", salloc_options_reach_steps),
    ("array::each_element_evaluated", array_each_element_evaluated),
    ("extern::extern_step_never_checked", extern_step_never_checked),
    ("hetjob::each_component_evaluated", hetjob_each_component_evaluated),
    ("audit::concurrent_steps_write_whole_lines", concurrent_steps_write_whole_lines),
    ("nodes::still_idle_after_everything", still_idle_after_everything),
];

const BATCH_STEP_ID: u64 = 4_294_967_291;
const EXTERN_STEP_ID: u64 = 4_294_967_292;

fn read_output_file(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
}

fn options_reach_batch_and_inner_steps(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let out = cluster.work_dir(&PROD_USER).join("batch-options.out");
    let script = "echo batch=$HOS_ENV; srun -N1 printenv HOS_ENV; srun -N1 sh -c 'echo step=$HOS_TIER'";
    let output_option = format!("--output={}", out.display());
    let output = cluster.run_as(&PROD_USER, &[], &["sbatch", "--wait", "-N1", "--guard-env=prod", &output_option, &format!("--wrap={script}")]);
    expect_code(&output, 0)?;
    let text = read_output_file(&out)?;
    let lines: Vec<&str> = text.lines().collect();
    check(lines == ["batch=prod", "prod", "step=production"], &format!("job output: {text}"), &output)?;

    let decisions = records_of(cluster, "decision")?;
    let steps: Vec<u64> = decisions.iter().filter_map(|record| record["step_id"].as_u64()).collect();
    check(steps == [BATCH_STEP_ID, 0, 1], &format!("decision steps {steps:?}"), &output)?;
    for record in &decisions {
        expect_field(record, "environment", &json!("prod"))?;
        expect_field(record, "outcome", &json!("allow"))?;
    }
    Ok(())
}

fn sbatch_unknown_environment_not_submitted(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = cluster.run_as(&USER, &[], &["sbatch", "--guard-env=nope", "--wrap=true"]);
    expect_code(&output, 1)?;
    check(!output.stdout.contains("Submitted batch job"), "the job must not be submitted", &output)?;
    let lines = output.guard_lines();
    check(lines.len() == 2, "one reason and the correlation id", &output)?;
    check(lines[0].starts_with("spank-guard: denied: environment.unknown: environment `nope`"), "reason line", &output)
}

fn batch_step_wrapped_when_policy_says_wrap(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    for (batch_step, expect_batch_wrapped) in [("host", false), ("wrap", true)] {
        let mut policy = base_policy(cluster);
        policy["container"]["batch_step"] = json!(batch_step);
        install(cluster, &policy, Readable::ByEveryone, "")?;
        let out = cluster.work_dir(&USER).join(format!("batch-{batch_step}.out"));
        let output_option = format!("--output={}", out.display());
        let output = cluster.run_as(&USER, &[], &["sbatch", "--parsable", "--wait", "-N1", &image, &output_option, "--wrap=srun true"]);
        expect_code(&output, 0)?;
        let job_id = output.stdout.trim().to_owned();
        let batch_record = cluster.apptainer_calls().join(format!("{job_id}.nostep.0.argv"));
        let step_record = cluster.apptainer_calls().join(format!("{job_id}.0.0.argv"));
        check(
            batch_record.exists() == expect_batch_wrapped,
            &format!("batch_step={batch_step}: batch step wrapped: {}", batch_record.exists()),
            &output,
        )?;
        check(step_record.exists(), &format!("batch_step={batch_step}: the inner srun step must be wrapped"), &output)?;
    }
    Ok(())
}

fn salloc_options_reach_steps(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = cluster.run_as(&PROD_USER, &[], &["salloc", "-N1", "--guard-env=prod", "srun", "printenv", "HOS_ENV"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["prod"])?;
    let decisions = records_of(cluster, "decision")?;
    check(decisions.len() == 1, &format!("one step, one decision: {decisions:#?}"), &output)?;
    expect_field(&decisions[0], "environment", &json!("prod"))?;

    let output = cluster.run_as(&USER, &[], &["salloc", "-N1", "--guard-env=prod", "true"]);
    expect_code(&output, 1)?;
    let lines = output.guard_lines();
    check(
        lines.first().is_some_and(|line| line.starts_with("spank-guard: denied: environment.access: ")),
        "salloc denies a non-member before allocating",
        &output,
    )?;
    check(!output.stderr.contains("Granted job allocation"), "no allocation may be granted", &output)
}

fn array_each_element_evaluated(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let out = cluster.work_dir(&USER).join("array-%a.out");
    let output_option = format!("--output={}", out.display());
    let output = cluster.run_as(&USER, &[], &["sbatch", "--wait", "--array=1-3", "--guard-env=dev", &output_option, "--wrap=printenv HOS_ENV"]);
    expect_code(&output, 0)?;
    for element in 1..=3 {
        let text = read_output_file(&cluster.work_dir(&USER).join(format!("array-{element}.out")))?;
        check(text == "dev\n", &format!("array element {element} output: {text:?}"), &output)?;
    }
    let decisions = records_of(cluster, "decision")?;
    let mut jobs: Vec<u64> = decisions.iter().filter_map(|record| record["job_id"].as_u64()).collect();
    jobs.sort_unstable();
    jobs.dedup();
    check(decisions.len() == 3 && jobs.len() == 3, &format!("one decision per element: {decisions:#?}"), &output)?;
    // The elements come from one submission, so they share its correlation id.
    let mut ids: Vec<String> = decisions.iter().filter_map(|record| record["correlation_id"].as_str().map(str::to_owned)).collect();
    ids.sort();
    ids.dedup();
    check(ids.len() == 1 && is_uuid_v4(&ids[0]), &format!("one minted correlation id for the array: {ids:?}"), &output)
}

fn extern_step_never_checked(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "")?;
    // The job is denied on the node; its extern step (PrologFlags=contain)
    // must neither be evaluated nor fail.
    let output = cluster.run_as(&USER, &[], &["sbatch", "--wait", "--guard-env=production", "--output=/dev/null", "--wrap=true"]);
    expect_code(&output, 1)?;
    let records = settled_records(cluster, &paths(cluster).audit)?;
    check(
        !records.iter().any(|record| record["step_id"] == EXTERN_STEP_ID),
        &format!("the extern step must not be audited: {records:#?}"),
        &output,
    )?;
    let batch: Vec<_> = records.iter().filter(|record| record["event"] == "decision").collect();
    check(batch.len() == 1 && batch[0]["step_id"] == BATCH_STEP_ID, "the batch step is evaluated", &output)?;
    expect_field(batch[0], "outcome", &json!("deny"))?;
    check(cluster.idle(), &format!("nodes must stay idle: {:?}", cluster.node_states()), &output)
}

fn hetjob_each_component_evaluated(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let output = srun(cluster, &USER, &[], &["-N1", "printenv", "HOS_ENV", ":", "-N1", "printenv", "HOS_ENV"]);
    expect_code(&output, 0)?;
    expect_guard_lines(&output, &[])?;
    expect_sorted_stdout(&output, &["dev", "dev"])?;
    let decisions = records_of(cluster, "decision")?;
    let mut jobs: Vec<u64> = decisions.iter().filter_map(|record| record["job_id"].as_u64()).collect();
    jobs.sort_unstable();
    jobs.dedup();
    check(decisions.len() == 2 && jobs.len() == 2, &format!("one decision per component: {decisions:#?}"), &output)
}

fn concurrent_steps_write_whole_lines(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    // Large records make interleaved writes likely if they were not atomic.
    let padding = "x".repeat(6000);
    let shared: &Cluster = cluster;
    let outputs: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|index| {
                let justification = format!("step {index} {padding}");
                scope.spawn(move || shared.run_as(&USER, &[("HOS_JUSTIFICATION", &justification)], &["srun", "-N1", "true"]))
            })
            .collect();
        handles.into_iter().map(|handle| handle.join()).collect()
    });
    for output in outputs {
        let output = output.map_err(|_| "a submitting thread panicked".to_owned())?;
        expect_code(&output, 0)?;
    }
    cluster.settle()?;
    let text = std::fs::read_to_string(paths(cluster).audit).map_err(|error| error.to_string())?;
    let records = settled_records(cluster, &paths(cluster).audit)?;
    if text.lines().count() != records.len() || records.len() != 16 {
        return Err(format!("expected 16 whole records (8 decision, 8 step_end), got {} lines", text.lines().count()));
    }
    let mut seen: Vec<String> = records
        .iter()
        .filter(|record| record["event"] == "decision")
        .filter_map(|record| record["justification"].as_str().map(str::to_owned))
        .collect();
    seen.sort();
    let mut expected: Vec<String> = (0..8).map(|index| format!("step {index} {padding}")).collect();
    expected.sort();
    if seen != expected {
        return Err("the decision records do not carry the 8 justifications intact".to_owned());
    }
    Ok(())
}

fn still_idle_after_everything(cluster: &mut Cluster) -> Result<(), String> {
    let states = cluster.node_states();
    let expected = ["c1 idle", "c2 idle"];
    let actual: Vec<String> = states.iter().map(|node| format!("{} {}", node.name, node.state)).collect();
    if actual == expected {
        Ok(())
    } else {
        Err(format!("expected {expected:?}, got {actual:?}"))
    }
}
