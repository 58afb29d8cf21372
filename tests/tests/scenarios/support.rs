//! Policy files, images and checks shared by the scenarios.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cluster_tests::{Cluster, Output, TestUser, TEST_USERS};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

/// `guardtest`: in no special group.
pub const USER: TestUser = TEST_USERS[0];
/// `guardprod`: member of `hpc-prod`.
pub const PROD_USER: TestUser = TEST_USERS[1];

/// Key id of the test approval key.
pub const KEY_ID: &str = "test-2026";

/// Fixed seed of the test signing key (tests only).
pub const KEY_SEED: [u8; 32] = [7; 32];

/// Returns the test signing key.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&KEY_SEED)
}

/// Paths of the files the test policy refers to.
pub struct Paths {
    pub policy: PathBuf,
    pub audit: PathBuf,
    pub fallback_audit: PathBuf,
    pub images: PathBuf,
    pub data: PathBuf,
}

/// Returns the paths for `cluster`.
pub fn paths(cluster: &Cluster) -> Paths {
    Paths {
        policy: cluster.path("etc/spank-guard/policy.json"),
        audit: cluster.path("audit/audit.jsonl"),
        fallback_audit: cluster.path("audit/policy-errors.jsonl"),
        images: cluster.path("images"),
        data: cluster.path("data"),
    }
}

/// Creates the images and bind sources the policy refers to (root-owned).
pub fn prepare_files(cluster: &Cluster) -> Result<(), String> {
    let paths = paths(cluster);
    cluster.write_root_file("images/app.sif", b"stand-in image app\n")?;
    cluster.write_root_file("images/pinned/tool.sif", b"stand-in image tool\n")?;
    cluster.write_root_file("other/rogue.sif", b"stand-in image outside every set\n")?;
    cluster.write_root_file("data/project/input.txt", b"input\n")?;
    cluster.write_root_file("data2/leak.txt", b"outside the allowed root\n")?;
    cluster.write_root_file("secret/key.txt", b"secret\n")?;
    let escape = paths.images.join("escape.sif");
    if !escape.exists() {
        symlink(cluster.path("other/rogue.sif"), &escape).map_err(|error| format!("cannot create {}: {error}", escape.display()))?;
    }
    fs::create_dir_all(paths.data.join("scratch")).map_err(|error| error.to_string())?;
    Ok(())
}

/// Returns the hex sha256 that `images/pinned/tool.sif` must have.
pub fn tool_sha256(cluster: &Cluster) -> String {
    policy_core::digest::sha256_file(&cluster.path("images/pinned/tool.sif")).unwrap_or_default()
}

/// Returns the base test policy. Scenarios change parts of it.
pub fn base_policy(cluster: &Cluster) -> Value {
    let paths = paths(cluster);
    let dir = cluster.dir().display().to_string();
    let public_key = STANDARD.encode(signing_key().verifying_key().as_bytes());
    json!({
        "version": 1,
        "mode": "enforce",
        "default_environment": "dev",
        "environments": {
            "dev": { "risk": 1, "container": { "images": ["approved"] } },
            "prod": {
                "risk": 10,
                "aliases": ["production"],
                "allow": { "users": [], "groups": ["hpc-prod"] },
                "env": { "set": { "HOS_TIER": "production" } }
            },
            "staging": { "risk": 5, "approval": { "justification_min_chars": 15 } },
            "secure": { "risk": 8, "approval": { "ticket": true } },
            "boxed": {
                "risk": 3,
                "container": { "required": true, "images": ["approved"] }
            }
        },
        "images": {
            "approved": [
                { "path": format!("{dir}/images/*.sif") },
                { "path": format!("{dir}/images/pinned/tool.sif"), "sha256": tool_sha256(cluster) }
            ]
        },
        "container": {
            "runtime": cluster.apptainer().display().to_string(),
            "args": ["--containall", "--cleanenv"],
            "binds": { "allow": [paths.data.display().to_string()], "default": [] },
            "user_flags": ["--nv", "--pwd"],
            "digest_cache": null
        },
        "env": {
            "deny": ["LD_PRELOAD", "LD_AUDIT"],
            "on_denied": "scrub",
            "set": {
                "HOS_ENV": "{environment}",
                "HOS_RISK": "{risk}",
                "HOS_CORRELATION_ID": "{correlation_id}"
            }
        },
        "approvals": { "keys": { KEY_ID: public_key }, "max_ttl_hours": 24 },
        "audit": { "path": paths.audit.display().to_string(), "on_error": "deny", "argv": "argv0" }
    })
}

/// Who may read the installed policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readable {
    /// Mode 0644: srun, sbatch and salloc check the job before submitting it.
    ByEveryone,
    /// Mode 0600: the submit-side check is skipped, so only the compute
    /// node decides. Scenarios use it to test the node's enforcement.
    ByRootOnly,
}

/// Installs `policy` (root-owned), enables the plugin with `extra_args`,
/// and removes the audit files with their head files, so each scenario's
/// journal starts at seq 1.
pub fn install(cluster: &Cluster, policy: &Value, readable: Readable, extra_args: &str) -> Result<(), String> {
    let paths = paths(cluster);
    let text = serde_json::to_string_pretty(policy).map_err(|error| error.to_string())?;
    let mode = match readable {
        Readable::ByEveryone => 0o644,
        Readable::ByRootOnly => 0o600,
    };
    cluster.write_root_file_mode("etc/spank-guard/policy.json", text.as_bytes(), mode)?;
    let heads = [policy_core::journal::head_path(&paths.audit), policy_core::journal::head_path(&paths.fallback_audit)];
    for audit in [&paths.audit, &paths.fallback_audit, &heads[0], &heads[1]] {
        if audit.exists() {
            fs::remove_file(audit).map_err(|error| format!("cannot remove {}: {error}", audit.display()))?;
        }
    }
    let args = format!(
        "policy={} fallback_audit={} {extra_args}",
        paths.policy.display(),
        paths.fallback_audit.display()
    );
    cluster.set_plugstack(args.trim())
}

/// Reads every record of an audit file; each line must be one JSON object.
pub fn audit_records(path: &std::path::Path) -> Result<Vec<Value>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str::<Value>(line).map_err(|error| format!("{}:{}: invalid JSON ({error}): {line}", path.display(), index + 1))
        })
        .collect()
}

/// Waits until the jobs have ended on the nodes, then reads every record
/// of an audit file of the cluster.
pub fn settled_records(cluster: &Cluster, path: &std::path::Path) -> Result<Vec<Value>, String> {
    cluster.settle()?;
    audit_records(path)
}

/// Returns the records of `event` from the policy's audit file, once the
/// jobs have ended on the nodes.
pub fn records_of(cluster: &Cluster, event: &str) -> Result<Vec<Value>, String> {
    Ok(settled_records(cluster, &paths(cluster).audit)?.into_iter().filter(|record| record["event"] == event).collect())
}

/// Returns the correlation id of job `job_id`: srun, sbatch and salloc mint
/// a UUID v4 at submit, and every audit record of the job (in the policy's
/// audit file and the fallback file) must carry that one id.
pub fn job_correlation_id(cluster: &Cluster, job_id: u64) -> Result<String, String> {
    let paths = paths(cluster);
    let mut ids: Vec<String> = Vec::new();
    for path in [&paths.audit, &paths.fallback_audit] {
        for record in settled_records(cluster, path)? {
            if record["job_id"].as_u64() == Some(job_id) {
                ids.push(record["correlation_id"].as_str().unwrap_or("(missing)").to_owned());
            }
        }
    }
    ids.sort();
    ids.dedup();
    match ids.as_slice() {
        [id] if is_uuid_v4(id) => Ok(id.clone()),
        _ => Err(format!("job {job_id}: expected one UUID v4 correlation id in its audit records, got {ids:?}")),
    }
}

/// Returns true for a lowercase UUID version 4 such as the submit side mints.
pub fn is_uuid_v4(text: &str) -> bool {
    let lengths: Vec<usize> = text.split('-').map(str::len).collect();
    lengths == [8, 4, 4, 4, 12]
        && text.bytes().all(|byte| byte == b'-' || byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        && text.get(14..15) == Some("4")
}

/// Fails with the output unless `condition` holds.
pub fn check(condition: bool, what: &str, output: &Output) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!("{what}\n{output}"))
    }
}

/// Checks the exit code.
pub fn expect_code(output: &Output, code: i32) -> Result<(), String> {
    check(output.code == code, &format!("expected exit code {code}, got {}", output.code), output)
}

/// Checks that the `spank-guard: ` lines are exactly `expected`, in order.
pub fn expect_guard_lines(output: &Output, expected: &[&str]) -> Result<(), String> {
    let lines = output.guard_lines();
    check(lines == expected, &format!("expected spank-guard lines {expected:#?}\ngot {lines:#?}"), output)
}

/// Checks standard output, line by line, after sorting (tasks of several
/// nodes print in any order).
pub fn expect_sorted_stdout(output: &Output, expected: &[&str]) -> Result<(), String> {
    let mut lines = output.stdout_lines();
    lines.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    check(lines == expected, &format!("expected stdout lines {expected:#?}"), output)
}

/// Checks a JSON field of a record.
pub fn expect_field(record: &Value, field: &str, expected: &Value) -> Result<(), String> {
    if &record[field] == expected {
        Ok(())
    } else {
        Err(format!("audit field `{field}`: expected {expected}, got {}\nrecord: {record}", record[field]))
    }
}

/// Runs `srun` with `args` as `user`.
pub fn srun(cluster: &Cluster, user: &TestUser, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = vec!["srun"];
    command.extend_from_slice(args);
    cluster.run_as(user, env, &command)
}

/// Returns the `guardctl` binary that cargo built next to the test
/// executable (`cargo test --workspace` builds it for guardctl's own tests).
pub fn guardctl_path() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|error| format!("cannot find the test executable: {error}"))?;
    let path = exe.parent().and_then(std::path::Path::parent).map(|profile| profile.join("guardctl")).unwrap_or_default();
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} not found; build it with `cargo build -p guardctl`", path.display()))
    }
}

/// Runs guardctl as root with `args` and returns its output.
pub fn guardctl(args: &[&str]) -> Result<std::process::Output, String> {
    let path = guardctl_path()?;
    std::process::Command::new(&path).args(args).output().map_err(|error| format!("cannot run {}: {error}", path.display()))
}

/// Returns `HH:MM` in UTC for now plus `minutes`.
pub fn utc_clock(minutes: i64) -> String {
    let seconds = jiff::Timestamp::now().as_second() + minutes * 60;
    format!("{:02}:{:02}", seconds.rem_euclid(86_400) / 3600, seconds.rem_euclid(3600) / 60)
}

/// Returns a `windows` section with one window, `change-slot`, that runs
/// every day in UTC from `start` to `end` minutes from now.
pub fn change_slot_window(start: i64, end: i64) -> Value {
    json!({
        "change-slot": {
            "timezone": "UTC",
            "weekly": [{
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "start": utc_clock(start),
                "end": utc_clock(end)
            }]
        }
    })
}
