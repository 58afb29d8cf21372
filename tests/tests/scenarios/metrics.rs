//! `guardctl metrics export` after concurrent allowed and denied steps.

use std::thread;

use cluster_tests::Cluster;

use super::support::{base_policy, expect_code, guardctl, install, paths, prepare_files, Readable, PROD_USER, USER};

pub const SCENARIOS: [(&str, super::Scenario); 1] =
    [("metrics::export_counts_concurrent_decisions", export_counts_concurrent_decisions)];

fn export_counts_concurrent_decisions(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    // Readable by root only: srun skips its own check, so the nodes decide
    // and record the denials too.
    install(cluster, &base_policy(cluster), Readable::ByRootOnly, "")?;

    let shared: &Cluster = cluster;
    let outputs: Vec<_> = thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 0..6 {
            handles.push(scope.spawn(move || (0, shared.run_as(&USER, &[], &["srun", "-N1", "true"]))));
        }
        for _ in 0..4 {
            handles.push(scope.spawn(move || (1, shared.run_as(&USER, &[], &["srun", "-N1", "--guard-env=prod", "true"]))));
        }
        for _ in 0..2 {
            handles.push(scope.spawn(move || (0, shared.run_as(&PROD_USER, &[], &["srun", "-N1", "--guard-env=prod", "true"]))));
        }
        handles.into_iter().map(|handle| handle.join()).collect()
    });
    for output in outputs {
        let (code, output) = output.map_err(|_| "a submitting thread panicked".to_owned())?;
        expect_code(&output, code)?;
    }
    cluster.settle()?;

    let paths = paths(cluster);
    let out = cluster.path("spank_guard.prom");
    let result = guardctl(&[
        "metrics",
        "export",
        "--policy",
        &paths.policy.display().to_string(),
        "--audit",
        &paths.audit.display().to_string(),
        "--out",
        &out.display().to_string(),
    ])?;
    if !result.status.success() {
        return Err(format!("guardctl metrics export failed: {}", String::from_utf8_lossy(&result.stderr)));
    }
    let text = std::fs::read_to_string(&out).map_err(|error| format!("cannot read {}: {error}", out.display()))?;
    let samples: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("spank_guard_decision_duration_seconds_bucket"))
        .filter(|line| !line.starts_with("spank_guard_decision_duration_seconds_sum"))
        .collect();
    let sha256 = policy_core::digest::sha256_file(&paths.policy).map_err(|error| error.to_string())?;
    let expected = [
        "spank_guard_decisions_total{environment=\"dev\",outcome=\"allow\"} 6".to_owned(),
        "spank_guard_decisions_total{environment=\"prod\",outcome=\"allow\"} 2".to_owned(),
        "spank_guard_decisions_total{environment=\"prod\",outcome=\"deny\"} 4".to_owned(),
        "spank_guard_denials_total{environment=\"prod\",rule=\"environment.access\"} 4".to_owned(),
        "spank_guard_policy_errors_total 0".to_owned(),
        "spank_guard_audit_write_errors_total 0".to_owned(),
        "spank_guard_decision_duration_seconds_count 12".to_owned(),
        format!("spank_guard_policy_info{{sha256=\"{sha256}\",version=\"{}\"}} 1", policy_core::VERSION),
    ];
    if samples != expected {
        return Err(format!("expected metrics {expected:#?}\ngot {samples:#?}\nfile:\n{text}"));
    }
    let infinite = "spank_guard_decision_duration_seconds_bucket{le=\"+Inf\"} 12";
    if !text.lines().any(|line| line == infinite) {
        return Err(format!("expected `{infinite}` in\n{text}"));
    }
    Ok(())
}
