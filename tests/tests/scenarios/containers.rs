//! Container wrapping: the exact runtime command line, images, binds,
//! flags and the Apptainer variables of the job environment.

use std::fs;

use cluster_tests::Cluster;
use serde_json::json;

use super::support::{
    job_correlation_id,
    base_policy, check, expect_code, expect_field, expect_guard_lines, expect_sorted_stdout, install, prepare_files,
    records_of, srun, Readable, USER,
};

pub const SCENARIOS: [(&str, super::Scenario); 13] = [
    ("container::repeated_bind_options_reach_node", repeated_bind_options_reach_node),
    ("container::sbatch_repeated_binds_reach_inner_step", sbatch_repeated_binds_reach_inner_step),
    ("container::image_wrapped_with_exact_argv", image_wrapped_with_exact_argv),
    ("container::four_tasks_all_wrapped", four_tasks_all_wrapped),
    ("container::four_tasks_all_denied", four_tasks_all_denied),
    ("container::image_outside_sets_denied", image_outside_sets_denied),
    ("container::image_digest_mismatch_denied", image_digest_mismatch_denied),
    ("container::image_symlink_escape_denied", image_symlink_escape_denied),
    ("container::bind_outside_roots_denied", bind_outside_roots_denied),
    ("container::bind_dot_dot_tricks_denied", bind_dot_dot_tricks_denied),
    ("container::apptainer_bind_env_validated", apptainer_bind_env_validated),
    ("container::apptainer_variables_removed", apptainer_variables_removed),
    ("container::missing_runtime_fails_task", missing_runtime_fails_task),
];

/// Reads one recorded call of the stand-in: its argv and environment.
fn recorded_call(cluster: &Cluster, job_id: u64, step: &str, task: u32) -> Result<(Vec<String>, Vec<String>), String> {
    let base = cluster.apptainer_calls().join(format!("{job_id}.{step}.{task}"));
    let read = |extension: &str| -> Result<Vec<String>, String> {
        let path = std::path::PathBuf::from(format!("{}.{extension}", base.display()));
        let bytes = fs::read(&path).map_err(|error| format!("no stand-in call recorded at {}: {error}", path.display()))?;
        Ok(bytes.split(|&byte| byte == 0).filter(|item| !item.is_empty()).map(|item| String::from_utf8_lossy(item).into_owned()).collect())
    };
    Ok((read("argv")?, read("env")?))
}

fn only_job_id(cluster: &Cluster) -> Result<u64, String> {
    let decisions = records_of(cluster, "decision")?;
    decisions.first().and_then(|record| record["job_id"].as_u64()).ok_or_else(|| format!("no decision record: {decisions:#?}"))
}

fn image_wrapped_with_exact_argv(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let bind = format!("--guard-bind={dir}/data/project:/project:ro");
    let output = srun(
        cluster,
        &USER,
        &[],
        &["-N1", "-w", "c1", &image, &bind, "--guard-container-flags=--nv,--pwd=/project", "printenv", "HOS_ENV"],
    );
    expect_code(&output, 0)?;
    expect_guard_lines(&output, &[])?;
    expect_sorted_stdout(&output, &["dev"])?;

    let job_id = only_job_id(cluster)?;
    let (argv, _) = recorded_call(cluster, job_id, "0", 0)?;
    let expected = [
        format!("{dir}/bin/apptainer"),
        "exec".to_owned(),
        "--containall".to_owned(),
        "--cleanenv".to_owned(),
        "--bind".to_owned(),
        format!("{dir}/data/project:/project:ro"),
        "--nv".to_owned(),
        "--pwd=/project".to_owned(),
        format!("{dir}/images/app.sif"),
        "printenv".to_owned(),
        "HOS_ENV".to_owned(),
    ];
    check(argv == expected, &format!("stand-in argv {argv:#?}\nexpected {expected:#?}"), &output)?;

    let decision = &records_of(cluster, "decision")?[0];
    expect_field(&decision["effects"]["container"], "image", &json!(format!("{dir}/images/app.sif")))?;
    expect_field(&decision["effects"]["container"], "binds", &json!([format!("{dir}/data/project:/project:ro")]))
}

fn four_tasks_all_wrapped(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let output = srun(cluster, &USER, &[], &["-N2", "-n4", &image, "sh", "-c", "echo task $SLURM_PROCID"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["task 0", "task 1", "task 2", "task 3"])?;
    let job_id = only_job_id(cluster)?;
    for task in 0..4 {
        let (argv, _) = recorded_call(cluster, job_id, "0", task)?;
        let tail: Vec<&str> = argv.iter().rev().take(4).rev().map(String::as_str).collect();
        let image_path = format!("{dir}/images/app.sif");
        check(tail == [image_path.as_str(), "sh", "-c", "echo task $SLURM_PROCID"], &format!("task {task} argv {argv:?}"), &output)?;
    }
    let ends = records_of(cluster, "step_end")?;
    let total: u64 = ends.iter().filter_map(|record| record["tasks"].as_u64()).sum();
    check(ends.len() == 2 && total == 4, &format!("step_end records {ends:#?}"), &output)
}

fn four_tasks_all_denied(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "")?;
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/other/rogue.sif");
    let output = srun(cluster, &USER, &[], &["-N2", "-n4", &image, "echo", "ran"]);
    expect_code(&output, 1)?;
    check(!output.stdout.contains("ran"), "no task may run", &output)?;
    let denials = output.guard_lines().iter().filter(|line| line.starts_with("spank-guard: denied: container.image: ")).count();
    check(denials == 4, &format!("expected one denial per task, got {denials}"), &output)?;
    let failed = output.stderr.lines().filter(|line| line.contains(": Exited with exit code 1")).count();
    check(failed >= 1, "srun reports the failed tasks", &output)
}

/// Runs a dev step with extra options on c1 and expects a deny whose only
/// reason is `rule` with `message`.
fn expect_single_denial(cluster: &mut Cluster, options: &[&str], env: &[(&str, &str)], rule: &str, message: &str) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "")?;
    let mut args: Vec<&str> = vec!["-N1", "-w", "c1"];
    args.extend_from_slice(options);
    args.extend(["echo", "ran"]);
    let output = srun(cluster, &USER, env, &args);
    expect_code(&output, 1)?;
    let job_id = only_job_id(cluster)?;
    expect_guard_lines(
        &output,
        &[&format!("spank-guard: denied: {rule}: {message}"), &format!("spank-guard: correlation id: {}", job_correlation_id(cluster, job_id)?)],
    )?;
    let decision = &records_of(cluster, "decision")?[0];
    expect_field(decision, "outcome", &json!("deny"))?;
    expect_field(decision, "reasons", &json!([{ "rule": rule, "message": message }]))
}

fn image_outside_sets_denied(cluster: &mut Cluster) -> Result<(), String> {
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/other/rogue.sif");
    let message = format!(
        "image `{dir}/other/rogue.sif` is not in an allowed image set (`approved`); allowed paths: \
         `{dir}/images/*.sif`, `{dir}/images/pinned/tool.sif`"
    );
    expect_single_denial(cluster, &[&image], &[], "container.image", &message)
}

fn image_digest_mismatch_denied(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    let dir = cluster.dir().display().to_string();
    // The image changes after the policy pinned its digest.
    cluster.write_root_file("images/pinned/tool.sif", b"stand-in image tool, tampered\n")?;
    let result = {
        let mut policy = base_policy(cluster);
        policy["images"]["approved"][1]["sha256"] = json!("0".repeat(64));
        install(cluster, &policy, Readable::ByRootOnly, "")?;
        let image = format!("--guard-image={dir}/images/pinned/tool.sif");
        let output = srun(cluster, &USER, &[], &["-N1", "-w", "c1", &image, "echo", "ran"]);
        expect_code(&output, 1).and_then(|()| {
            let lines = output.guard_lines();
            check(
                lines.first().is_some_and(|line| line.starts_with("spank-guard: denied: container.image: ") && line.contains("sha256")),
                "expected a container.image denial naming the sha256",
                &output,
            )
        })
    };
    cluster.write_root_file("images/pinned/tool.sif", b"stand-in image tool\n")?;
    result
}

fn image_symlink_escape_denied(cluster: &mut Cluster) -> Result<(), String> {
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/escape.sif");
    let message = format!(
        "image `{dir}/images/escape.sif` (resolves to `{dir}/other/rogue.sif`) is not in an allowed image set \
         (`approved`); allowed paths: `{dir}/images/*.sif`, `{dir}/images/pinned/tool.sif`"
    );
    expect_single_denial(cluster, &[&image], &[], "container.image", &message)
}

fn bind_outside_roots_denied(cluster: &mut Cluster) -> Result<(), String> {
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let bind = format!("--guard-bind={dir}/data2/leak.txt:/leak");
    let message = format!(
        "bind `{dir}/data2/leak.txt:/leak` in `--guard-bind`: source is outside the allowed bind roots; \
         allowed roots: `{dir}/data`"
    );
    expect_single_denial(cluster, &[&image, &bind], &[], "container.bind", &message)
}

fn bind_dot_dot_tricks_denied(cluster: &mut Cluster) -> Result<(), String> {
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let bind = format!("--guard-bind={dir}/data/../secret");
    let message = format!(
        "bind `{dir}/data/../secret` in `--guard-bind`: source is outside the allowed bind roots \
         (resolves to `{dir}/secret`); allowed roots: `{dir}/data`"
    );
    expect_single_denial(cluster, &[&image, &bind], &[], "container.bind", &message)?;
    let bind = format!("--guard-bind={dir}/data/project:/project/../etc");
    let message = format!(
        "bind `{dir}/data/project:/project/../etc` in `--guard-bind`: destination `/project/../etc` must not contain a `..` component"
    );
    expect_single_denial(cluster, &[&image, &bind], &[], "container.bind", &message)
}

fn apptainer_bind_env_validated(cluster: &mut Cluster) -> Result<(), String> {
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let secret = format!("{dir}/secret");
    let message = format!(
        "bind `{dir}/secret` in `APPTAINER_BIND`: source is outside the allowed bind roots; allowed roots: `{dir}/data`"
    );
    expect_single_denial(cluster, &[&image], &[("APPTAINER_BIND", &secret)], "container.bind", &message)?;

    // An allowed bind from the environment is passed explicitly, and the
    // variable itself does not reach the runtime.
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let allowed = format!("{dir}/data/project");
    let output = srun(cluster, &USER, &[("APPTAINER_BIND", &allowed)], &["-N1", "-w", "c1", &image, "true"]);
    expect_code(&output, 0)?;
    let job_id = only_job_id(cluster)?;
    let (argv, env) = recorded_call(cluster, job_id, "0", 0)?;
    let bind_argument = format!("{allowed}:{allowed}");
    check(argv.windows(2).any(|pair| pair[0] == "--bind" && pair[1] == bind_argument), &format!("argv {argv:?}"), &output)?;
    check(!env.iter().any(|entry| entry.starts_with("APPTAINER_BIND=")), "APPTAINER_BIND must be removed", &output)
}

fn apptainer_variables_removed(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let env = [
        ("APPTAINERENV_LD_PRELOAD", "/lib/x86_64-linux-gnu/libm.so.6"),
        ("SINGULARITYENV_LD_PRELOAD", "/lib/x86_64-linux-gnu/libm.so.6"),
        ("APPTAINER_WRITABLE", "1"),
        ("APPTAINER_FAKEROOT", "1"),
        ("SINGULARITY_WRITABLE", "1"),
        ("KEEP_ME", "yes"),
    ];
    let output = srun(cluster, &USER, &env, &["-N1", "-w", "c1", &image, "printenv", "KEEP_ME"]);
    expect_code(&output, 0)?;
    expect_sorted_stdout(&output, &["yes"])?;
    let job_id = only_job_id(cluster)?;
    let (_, recorded_env) = recorded_call(cluster, job_id, "0", 0)?;
    for (name, _) in &env[..5] {
        check(
            !recorded_env.iter().any(|entry| entry.starts_with(&format!("{name}="))),
            &format!("{name} reached the container runtime: {recorded_env:#?}"),
            &output,
        )?;
    }
    let decision = &records_of(cluster, "decision")?[0];
    let unset = decision["effects"]["unset"].as_array().cloned().unwrap_or_default();
    for (name, _) in &env[..5] {
        check(unset.contains(&json!(name)), &format!("{name} missing from effects.unset {unset:?}"), &output)?;
    }
    Ok(())
}

fn missing_runtime_fails_task(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    let mut policy = base_policy(cluster);
    let dir = cluster.dir().display().to_string();
    // The runtime exists at evaluation time but is not executable by the
    // user, so exec fails in the task.
    let runtime = cluster.write_root_file_mode("bin/apptainer-root-only", b"#!/bin/sh\nexit 0\n", 0o700)?;
    policy["container"]["runtime"] = json!(runtime.display().to_string());
    install(cluster, &policy, Readable::ByEveryone, "")?;
    let image = format!("--guard-image={dir}/images/app.sif");
    let output = srun(cluster, &USER, &[], &["-N1", "-w", "c1", &image, "echo", "ran"]);
    expect_code(&output, 1)?;
    expect_guard_lines(
        &output,
        &[&format!("spank-guard: cannot start container runtime `{}`: Permission denied (os error 13)", runtime.display())],
    )
}

fn repeated_bind_options_reach_node(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    // Only the node decides, so the binds must reach slurmstepd.
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "")?;
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let first = format!("--guard-bind={dir}/data/project:/project:ro");
    let second = format!("--guard-bind={dir}/data/scratch:/scratch");
    let output = srun(cluster, &USER, &[], &["-N1", "-w", "c1", &image, &first, &second, "true"]);
    expect_code(&output, 0)?;
    let job_id = only_job_id(cluster)?;
    let (argv, _) = recorded_call(cluster, job_id, "0", 0)?;
    let binds: Vec<&str> = argv.windows(2).filter(|pair| pair[0] == "--bind").map(|pair| pair[1].as_str()).collect();
    let project = format!("{dir}/data/project:/project:ro");
    let scratch = format!("{dir}/data/scratch:/scratch");
    check(binds == [project.as_str(), scratch.as_str()], &format!("binds {binds:?}"), &output)
}

fn sbatch_repeated_binds_reach_inner_step(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let dir = cluster.dir().display().to_string();
    let image = format!("--guard-image={dir}/images/app.sif");
    let first = format!("--guard-bind={dir}/data/project:/project:ro");
    let second = format!("--guard-bind={dir}/data/scratch:/scratch");
    let out = cluster.work_dir(&USER).join("repeated-binds.out");
    let output_option = format!("--output={}", out.display());
    let output = cluster.run_as(
        &USER,
        &[],
        &["sbatch", "--parsable", "--wait", "-N1", "-w", "c1", &image, &first, &second, &output_option, "--wrap=srun -N1 true"],
    );
    expect_code(&output, 0)?;
    let job_id: u64 = output.stdout.trim().parse().map_err(|error| format!("job id in {:?}: {error}", output.stdout))?;
    let (argv, _) = recorded_call(cluster, job_id, "0", 0)?;
    let binds: Vec<&str> = argv.windows(2).filter(|pair| pair[0] == "--bind").map(|pair| pair[1].as_str()).collect();
    let project = format!("{dir}/data/project:/project:ro");
    let scratch = format!("{dir}/data/scratch:/scratch");
    check(binds == [project.as_str(), scratch.as_str()], &format!("inner step binds {binds:?}"), &output)
}
