//! `make demo`: starts a throwaway two-node cluster with the plugin and the
//! policy of `examples/demo/policy.json`. It runs sample jobs that are
//! allowed, denied, scrubbed and wrapped in a container, and prints each
//! with the audit records the compute nodes wrote. Then it stops the cluster.

use std::fs;
use std::process::ExitCode;

use cluster_tests::{default_plugin_path, Cluster, TestUser, TEST_USERS};

const POLICY_TEMPLATE: &str = include_str!("../../examples/demo/policy.json");
const HARMLESS_LIBRARY: &str = "/lib/x86_64-linux-gnu/libm.so.6";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    println!("Starting a throwaway Slurm cluster (munged, slurmctld, slurmd c1 and c2)...");
    let mut cluster = Cluster::start(&default_plugin_path())?;
    let dir = cluster.dir().display().to_string();
    println!("Cluster directory: {dir}");

    cluster.write_root_file("images/analysis.sif", b"stand-in image\n")?;
    cluster.write_root_file("data/project/input.csv", b"id,value\n1,42\n")?;
    let policy = POLICY_TEMPLATE.replace("@DEMO_DIR@", &dir);
    let policy_path = cluster.write_root_file("etc/spank-guard/policy.json", policy.as_bytes())?;
    let plugstack = format!("policy={}", policy_path.display());
    cluster.set_plugstack(&plugstack)?;
    println!("plugstack.conf: required {} {plugstack}", cluster.plugin().display());
    println!("Policy: examples/demo/policy.json, installed as {}", policy_path.display());

    let demo = Demo { cluster: &cluster, audit: cluster.path("audit/audit.jsonl"), show_full_record: false.into() };
    let [user, prod_user] = TEST_USERS;

    demo.job(
        "1. Allowed: a dev job on both nodes gets the policy's variables",
        &user,
        &[],
        &["srun", "-N2", "--guard-env=dev", "sh", "-c", "echo $SLURMD_NODENAME: HOS_ENV=$HOS_ENV HOS_CORRELATION_ID=$HOS_CORRELATION_ID"],
    )?;
    demo.job(
        "2. Denied at submission: prod needs group hpc-prod, a justification and a container",
        &user,
        &[],
        &["srun", "--guard-env=prod", "hostname"],
    )?;
    demo.job(
        "3. Scrubbed: LD_PRELOAD is on the deny list and removed from the task",
        &user,
        &[("LD_PRELOAD", HARMLESS_LIBRARY)],
        &["srun", "-N1", "sh", "-c", "echo LD_PRELOAD in the task: ${LD_PRELOAD:-<not set>}"],
    )?;
    let image = format!("--guard-image={dir}/images/analysis.sif");
    let bind = format!("--guard-bind={dir}/data/project:/project:ro");
    let calls_before = demo.recorded_calls()?;
    demo.show_full_record.set(true);
    demo.job(
        "4. Wrapped: a prod job by a member of hpc-prod runs inside the approved image",
        &prod_user,
        &[],
        &[
            "srun",
            "-N1",
            "--guard-env=prod",
            "--guard-justification=rerun the nightly ingest after the storage fix",
            &image,
            &bind,
            "--guard-container-flags=--pwd=/project",
            "printenv",
            "HOS_TIER",
        ],
    )?;
    demo.show_full_record.set(false);
    for call in demo.recorded_calls()?.into_iter().filter(|call| !calls_before.contains(call)) {
        let argv = fs::read(&call).map_err(|error| format!("cannot read {}: {error}", call.display()))?;
        let words: Vec<String> =
            argv.split(|&byte| byte == 0).filter(|word| !word.is_empty()).map(|word| String::from_utf8_lossy(word).into_owned()).collect();
        println!("Command line the task ran (recorded by the apptainer stand-in):\n  {}", words.join(" "));
    }

    demo.job(
        "5. Denied on the compute node: environment gpu may only run on c1, and only the node knows where it runs",
        &user,
        &[],
        &["srun", "-N1", "-w", "c2", "--guard-env=gpu", "hostname"],
    )?;
    println!("\nStopping the cluster.");
    cluster.stop();
    Ok(())
}

struct Demo<'a> {
    cluster: &'a Cluster,
    audit: std::path::PathBuf,
    /// Prints the first new record in full, besides the summary lines.
    show_full_record: std::cell::Cell<bool>,
}

impl Demo<'_> {
    fn audit_lines(&self) -> Vec<String> {
        fs::read_to_string(&self.audit).map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default()
    }

    fn recorded_calls(&self) -> Result<Vec<std::path::PathBuf>, String> {
        let dir = self.cluster.apptainer_calls();
        let entries = fs::read_dir(&dir).map_err(|error| format!("cannot list {}: {error}", dir.display()))?;
        let mut calls: Vec<_> =
            entries.flatten().map(|entry| entry.path()).filter(|path| path.extension().is_some_and(|ext| ext == "argv")).collect();
        calls.sort();
        Ok(calls)
    }

    fn job(&self, title: &str, user: &TestUser, env: &[(&str, &str)], args: &[&str]) -> Result<(), String> {
        let before = self.audit_lines().len();
        println!("\n=== {title}");
        let shown_env: String = env.iter().map(|(name, value)| format!("{name}={value} ")).collect();
        println!("[{}]$ {shown_env}{}", user.name, shell_words(args));
        let output = self.cluster.run_as(user, env, args);
        print!("{}", output.stdout);
        for line in output.stderr.lines().filter(|line| !line.contains("queued and waiting") && !line.contains("has been allocated")) {
            println!("{line}");
        }
        println!("(exit code {})", output.code);
        // slurmstepd writes step_end after srun returned; the nodes are idle
        // once every step has ended.
        self.cluster.settle()?;
        let new_records: Vec<String> = self.audit_lines().into_iter().skip(before).collect();
        if new_records.is_empty() {
            println!("Audit: no record (nothing reached a compute node)");
            return Ok(());
        }
        println!("Audit records written by the compute nodes (main fields):");
        for line in &new_records {
            println!("  {}", summarize(line));
        }
        if self.show_full_record.get() {
            if let Some(first) = new_records.first() {
                println!("First record in full:\n  {first}");
            }
        }
        Ok(())
    }
}

/// Returns the main fields of an audit record on one line.
fn summarize(line: &str) -> String {
    let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
        return format!("invalid JSON: {line}");
    };
    let text = |field: &str| match &record[field] {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(value) => value.clone(),
        other => other.to_string(),
    };
    let rules: Vec<String> =
        record["reasons"].as_array().into_iter().flatten().filter_map(|reason| reason["rule"].as_str().map(str::to_owned)).collect();
    let mut summary = format!(
        "{} job={} step={} node={} user={} environment={} outcome={} rules=[{}] correlation_id={}",
        text("event"),
        text("job_id"),
        text("step_id"),
        text("node"),
        text("user"),
        text("environment"),
        text("outcome"),
        rules.join(","),
        text("correlation_id"),
    );
    let effects = &record["effects"];
    if let Some(unset) = effects["unset"].as_array().filter(|unset| !unset.is_empty()) {
        summary.push_str(&format!(" unset={}", serde_json::Value::Array(unset.clone())));
    }
    if let Some(image) = effects["container"]["image"].as_str() {
        summary.push_str(&format!(" image={image}"));
    }
    if let Some(codes) = record["exit_codes"].as_array() {
        summary.push_str(&format!(" tasks={} exit_codes={}", text("tasks"), serde_json::Value::Array(codes.clone())));
    }
    summary
}

/// Quotes arguments that contain spaces or shell characters for display.
fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|arg| {
            if arg.chars().any(|c| c.is_whitespace() || "$;'\"{}<>|&".contains(c)) {
                format!("'{}'", arg.replace('\'', r"'\''"))
            } else {
                (*arg).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
