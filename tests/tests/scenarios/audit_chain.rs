//! The hash-chained audit journal under real slurmstepd writers: many
//! concurrent steps, rotation by logrotate with the shipped snippet, and a hand
//! edit that `verify` must find.

use std::fs;
use std::path::{Path, PathBuf};

use cluster_tests::Cluster;
use policy_core::journal::{self, Verification, GENESIS_SHA256};

use super::support::{audit_records, base_policy, check, expect_code, install, paths, prepare_files, Readable, USER};

pub const SCENARIOS: [(&str, super::Scenario); 3] = [
    ("audit::chain_holds_for_200_concurrent_steps", chain_holds_for_200_concurrent_steps),
    ("audit::rotation_keeps_chain", rotation_keeps_chain),
    ("audit::edited_line_fails_verify_at_that_line", edited_line_fails_verify_at_that_line),
];

const CONCURRENT_STEPS: usize = 200;

fn verify(files: &[PathBuf]) -> Result<Verification, String> {
    journal::verify(files).map_err(|error| format!("cannot verify {files:?}: {error}"))
}

fn expect_intact(files: &[PathBuf], records: u64) -> Result<Verification, String> {
    let verification = verify(files)?;
    if let Some(broken) = &verification.broken {
        return Err(format!("audit chain broken at {broken}"));
    }
    if verification.records != records {
        return Err(format!("expected {records} chained records in {files:?}, verified {}", verification.records));
    }
    Ok(verification)
}

/// Runs one batch job on both nodes that starts `steps` one-task steps at
/// once, and returns the job id.
fn run_concurrent_steps(cluster: &Cluster, steps: usize) -> Result<u64, String> {
    let script = format!("for i in $(seq {steps}); do srun -N1 -n1 --overlap --mem=0 true & done; wait");
    let output = cluster.run_as(&USER, &[], &["sbatch", "--parsable", "--wait", "-N2", "-n2", &format!("--wrap={script}")]);
    expect_code(&output, 0)?;
    let job_id = output.stdout.trim().parse::<u64>().map_err(|error| format!("job id: {error}: {output}"))?;
    cluster.settle()?;
    Ok(job_id)
}

fn chain_holds_for_200_concurrent_steps(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let job_id = run_concurrent_steps(cluster, CONCURRENT_STEPS)?;
    let audit = paths(cluster).audit;

    // Every step writes a decision and a step_end record, and so does the
    // batch step.
    let expected = 2 * (CONCURRENT_STEPS as u64 + 1);
    let verification = expect_intact(std::slice::from_ref(&audit), expected)?;
    let first = verification.first.ok_or("no first record")?;
    if first.seq != 1 || first.sha256 != GENESIS_SHA256 {
        return Err(format!("the first record must be seq 1 linked to the genesis hash, got {first:?}"));
    }

    let records = audit_records(&audit)?;
    let mut steps: Vec<u64> = records
        .iter()
        .filter(|record| record["event"] == "decision" && record["job_id"].as_u64() == Some(job_id))
        .filter_map(|record| record["step_id"].as_u64())
        .filter(|step| *step < CONCURRENT_STEPS as u64)
        .collect();
    steps.sort_unstable();
    let expected_steps: Vec<u64> = (0..CONCURRENT_STEPS as u64).collect();
    if steps != expected_steps {
        return Err(format!("expected one decision for each step 0..{CONCURRENT_STEPS}, got {steps:?}"));
    }
    let sequence: Vec<u64> = records.iter().filter_map(|record| record["seq"].as_u64()).collect();
    let expected_sequence: Vec<u64> = (1..=expected).collect();
    if sequence != expected_sequence {
        return Err(format!("seq must count 1 to {expected} in file order, got {sequence:?}"));
    }
    Ok(())
}

/// Rotates the audit file with `logrotate -f` and the shipped snippet
/// `examples/logrotate/spank-guard`, pointed at the cluster's audit file,
/// and returns the rotated file.
fn rotate_with_logrotate(cluster: &Cluster, audit: &Path) -> Result<PathBuf, String> {
    let snippet_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/logrotate/spank-guard");
    let snippet = fs::read_to_string(&snippet_path).map_err(|error| format!("cannot read {}: {error}", snippet_path.display()))?;
    let config = snippet.replace("/var/log/spank-guard/audit.jsonl", &audit.display().to_string());
    if config == snippet {
        return Err(format!("{} no longer names /var/log/spank-guard/audit.jsonl", snippet_path.display()));
    }
    let config_path = cluster.write_root_file("etc/logrotate.conf", config.as_bytes())?;
    let state = cluster.path("logrotate.state");
    let output = std::process::Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(&state)
        .arg(&config_path)
        .output()
        .map_err(|error| format!("cannot run logrotate (install it with scripts/install-deps.sh): {error}"))?;
    if !output.status.success() {
        return Err(format!("logrotate failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    // dateext names the rotated file audit.jsonl-YYYYMMDD.
    let directory = audit.parent().ok_or("the audit path has no directory")?;
    let rotated: Vec<PathBuf> = fs::read_dir(directory)
        .map_err(|error| format!("cannot list {}: {error}", directory.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("audit.jsonl-")))
        .collect();
    let [rotated] = rotated.as_slice() else {
        return Err(format!("expected one rotated audit.jsonl-YYYYMMDD, found {rotated:?}"));
    };
    let rotated = rotated.clone();
    if fs::metadata(audit).map(|metadata| metadata.len()).ok() != Some(0) {
        return Err(format!("logrotate did not leave {} and an empty {}", rotated.display(), audit.display()));
    }
    Ok(rotated)
}

fn rotation_keeps_chain(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    let audit = paths(cluster).audit;
    let first = cluster.run_as(&USER, &[], &["srun", "-N2", "true"]);
    expect_code(&first, 0)?;
    cluster.settle()?;
    let rotated = rotate_with_logrotate(cluster, &audit)?;
    let second = cluster.run_as(&USER, &[], &["srun", "-N2", "true"]);
    expect_code(&second, 0)?;
    cluster.settle()?;

    // Two nodes, a decision and a step_end each, per srun.
    expect_intact(&[rotated.clone(), audit.clone()], 8)?;
    let new_file = expect_intact(std::slice::from_ref(&audit), 4)?;
    let old_file = expect_intact(std::slice::from_ref(&rotated), 4)?;
    let link = new_file.first.ok_or("no record after the rotation")?;
    let old_last = old_file.last.ok_or("no record before the rotation")?;
    check(
        link.seq == 5 && link.sha256 == old_last.sha256,
        &format!("the first record after the rotation must be seq 5 linked to {old_last:?}, got {link:?}"),
        &second,
    )
}

fn edited_line_fails_verify_at_that_line(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    install(cluster, &base_policy(cluster), Readable::ByEveryone, "")?;
    run_concurrent_steps(cluster, 10)?;
    let audit = paths(cluster).audit;
    expect_intact(std::slice::from_ref(&audit), 22)?;

    // A copy, so the live journal and its head file stay as written.
    let copy = audit.with_file_name("edited.jsonl");
    let text = fs::read_to_string(&audit).map_err(|error| error.to_string())?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let target = lines.get_mut(6).ok_or("fewer than 7 records")?;
    let edited = target.replacen("\"user\":\"guardtest\"", "\"user\":\"someone\"", 1);
    if edited == *target {
        return Err(format!("line 7 has no user guardtest: {target}"));
    }
    *target = edited;
    fs::write(&copy, lines.join("\n") + "\n").map_err(|error| error.to_string())?;

    let verification = verify(std::slice::from_ref(&copy))?;
    let broken = verification.broken.ok_or("verify accepted the edited line")?;
    if broken.file != copy || broken.line != 7 {
        return Err(format!("expected the break at {}:7, got {broken}", copy.display()));
    }
    if !broken.reason.ends_with("one of the two lines was changed after it was written") {
        return Err(format!("unexpected reason: {broken}"));
    }
    if verification.records != 6 {
        return Err(format!("expected 6 intact records before the break, got {}", verification.records));
    }
    Ok(())
}
