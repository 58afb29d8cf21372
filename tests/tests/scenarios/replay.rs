//! `guardctl replay` on decisions that slurmstepd recorded.

use cluster_tests::Cluster;
use serde_json::{json, Value};

use super::support::{base_policy, expect_code, guardctl, install, paths, prepare_files, srun, Readable, PROD_USER, USER};

pub const SCENARIOS: [(&str, super::Scenario); 1] =
    [("replay::stricter_policy_changes_recorded_decisions", stricter_policy_changes_recorded_decisions)];

fn stricter_policy_changes_recorded_decisions(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    let policy = base_policy(cluster);
    install(cluster, &policy, Readable::ByEveryone, "")?;
    let dev = srun(cluster, &USER, &[], &["-N1", "true"]);
    expect_code(&dev, 0)?;
    let prod = srun(cluster, &PROD_USER, &[], &["-N1", "--guard-env=prod", "true"]);
    expect_code(&prod, 0)?;
    cluster.settle()?;

    let mut stricter = policy.clone();
    stricter["environments"]["dev"]["allow"] = json!({ "users": [], "groups": ["hpc-prod"] });
    stricter["environments"]["prod"]["approval"] = json!({ "justification_min_chars": 15 });
    let text = serde_json::to_string_pretty(&stricter).map_err(|error| error.to_string())?;
    let stricter_path = cluster.write_root_file("etc/stricter.json", text.as_bytes())?;

    let audit = paths(cluster).audit.display().to_string();
    let output = guardctl(&["replay", "--json", "--policy", &stricter_path.display().to_string(), "--audit", &audit])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("guardctl replay failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let report: Value = serde_json::from_str(&stdout).map_err(|error| format!("replay --json: {error}: {stdout}"))?;
    if report["replayed"] != 2 || report["unchanged"] != 0 || report["skipped"] != 0 {
        return Err(format!("expected 2 replayed and 2 changed decisions, got {report:#}"));
    }
    let changes: Vec<Value> = report["changed"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|change| json!([change["user"], change["environment"], change["recorded"], change["replayed"], change["added_rules"]]))
                .collect()
        })
        .unwrap_or_default();
    let expected = vec![
        json!([USER.name, "dev", "allow", "deny", ["environment.access"]]),
        json!([PROD_USER.name, "prod", "allow", "deny", ["approval.justification"]]),
    ];
    if changes != expected {
        return Err(format!("expected changes {expected:?}, got {changes:?}"));
    }
    Ok(())
}
