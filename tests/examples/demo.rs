//! `make demo`: starts a throwaway two-node cluster with the plugin on the
//! nodes, slurmctld checking every job through `JobSubmitPlugins=lua` with
//! `examples/job_submit.lua` and the `spank_guard` Lua module, and the
//! policy of `examples/demo/policy.json`. It runs sample jobs that are
//! allowed, denied at submission, by the controller and by a compute node,
//! scrubbed and wrapped in a container, and prints each with the audit
//! records the compute nodes wrote. Then it stops the cluster.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cluster_tests::{default_plugin_path, demo_policy, Cluster, TestUser, TEST_USERS};

const JOB_SUBMIT_SCRIPT: &str = include_str!("../../examples/job_submit.lua");
const HARMLESS_LIBRARY: &str = "/lib/x86_64-linux-gnu/libm.so.6";

/// The `maintenance` window of the demo policy opened this many minutes ago...
const WINDOW_OPENED_MINUTES_AGO: i64 = 60;
/// ...and closes this many minutes from now, so the job of step 5, with a
/// time limit of 4 hours, would run past its end.
const WINDOW_CLOSES_IN_MINUTES: i64 = 90;
/// The one-hour `change-slot` window of the `hotfix` environment opens this
/// many minutes from now, so step 8 has to break glass.
const CHANGE_OPENS_IN_MINUTES: i64 = 120;

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
    let (window_start, window_end) = daily_window(-WINDOW_OPENED_MINUTES_AGO, WINDOW_CLOSES_IN_MINUTES);
    let (change_start, change_end) = daily_window(CHANGE_OPENS_IN_MINUTES, CHANGE_OPENS_IN_MINUTES + 60);
    let policy = demo_policy(&dir, (&window_start, &window_end), (&change_start, &change_end));
    let policy_path = cluster.write_root_file("etc/spank-guard/policy.json", policy.as_bytes())?;
    let plugstack = format!("policy={}", policy_path.display());
    cluster.set_plugstack(&plugstack)?;
    println!("plugstack.conf: required {} {plugstack}", cluster.plugin().display());
    println!("Policy: examples/demo/policy.json, installed as {}", policy_path.display());
    println!("Window `maintenance` (environment maint): every day {window_start}-{window_end} UTC");
    println!("Window `change-slot` (environment hotfix): every day {change_start}-{change_end} UTC");
    enable_controller_check(&cluster, &policy_path)?;

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
        "5. Denied by the controller: the job's time limit runs past the end of the maintenance window, and only slurmctld knows the limit",
        &user,
        &[],
        &["sbatch", "--guard-env=maint", "--time=4:00:00", "--wrap=hostname"],
    )?;
    demo.job(
        "6. Denied on the compute node: environment gpu may only run on c1, and only the node knows where it runs",
        &user,
        &[],
        &["srun", "-N1", "-w", "c2", "--guard-env=gpu", "hostname"],
    )?;
    demo.job(
        "7. Explained, not submitted: --guard-explain shows what a prod job still needs",
        &prod_user,
        &[],
        &["srun", "--guard-explain", "--guard-env=prod", "hostname"],
    )?;
    demo.job(
        "8. Break glass: an hpc-prod member runs a hotfix outside its change window; the use is recorded for review",
        &prod_user,
        &[],
        &["srun", "-N1", "--time=30", "--guard-env=hotfix", "--guard-break-glass=INC-1234 restore the ingest service", "hostname"],
    )?;
    print_evidence_and_metrics(&cluster, &demo.audit, &policy_path)?;
    println!("\nStopping the cluster.");
    cluster.stop();
    Ok(())
}

/// Writes the evidence bundle of the prod job of step 4 and the node's
/// metrics file with guardctl, and prints `evidence.md` and the metrics.
fn print_evidence_and_metrics(cluster: &Cluster, audit: &Path, policy: &Path) -> Result<(), String> {
    println!("\n=== 9. Evidence of the prod job (step 4) and the metrics of the journal ===");
    let guardctl = default_plugin_path().with_file_name("guardctl");
    if !guardctl.is_file() {
        return Err(format!("{} not found; build it with `cargo build --release -p guardctl`", guardctl.display()));
    }
    cluster.settle()?;
    let text = fs::read_to_string(audit).map_err(|error| format!("cannot read {}: {error}", audit.display()))?;
    let correlation_id = text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["event"] == "decision" && record["environment"] == "prod" && record["outcome"] == "allow")
        .find_map(|record| record["correlation_id"].as_str().map(str::to_owned))
        .ok_or("no allowed prod decision in the audit journal")?;

    let out = cluster.path("evidence");
    let audit_text = audit.display().to_string();
    let evidence = run_guardctl(
        &guardctl,
        &["evidence", "--correlation-id", &correlation_id, "--audit", &audit_text, "--out", &out.display().to_string()],
    )?;
    println!("$ guardctl evidence --correlation-id {correlation_id} --audit {audit_text} --out {}", out.display());
    print!("{evidence}");
    let report = fs::read_to_string(out.join("evidence.md")).map_err(|error| format!("cannot read evidence.md: {error}"))?;
    println!("--- evidence.md ---\n{report}");

    let metrics = cluster.path("spank_guard.prom");
    run_guardctl(
        &guardctl,
        &["metrics", "export", "--policy", &policy.display().to_string(), "--audit", &audit_text, "--out", &metrics.display().to_string()],
    )?;
    let text = fs::read_to_string(&metrics).map_err(|error| format!("cannot read {}: {error}", metrics.display()))?;
    println!("$ guardctl metrics export --policy {} --audit {audit_text} --out {}", policy.display(), metrics.display());
    println!("--- spank_guard.prom (without HELP and TYPE lines) ---");
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        println!("{line}");
    }
    Ok(())
}

fn run_guardctl(guardctl: &Path, args: &[&str]) -> Result<String, String> {
    let output = std::process::Command::new(guardctl)
        .args(args)
        .output()
        .map_err(|error| format!("cannot run {}: {error}", guardctl.display()))?;
    if !output.status.success() {
        return Err(format!("guardctl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Returns the start and end (`HH:MM`, UTC) of a daily window that opens
/// `start_minutes` from now (negative: in the past) and closes `end_minutes`
/// from now. A window that crosses midnight ends on the next day, so any
/// time of day works.
fn daily_window(start_minutes: i64, end_minutes: i64) -> (String, String) {
    let now = jiff::Timestamp::now();
    let start = now + jiff::SignedDuration::from_mins(start_minutes);
    let end = now + jiff::SignedDuration::from_mins(end_minutes);
    (start.strftime("%H:%M").to_string(), end.strftime("%H:%M").to_string())
}

/// Installs `examples/job_submit.lua` and the `spank_guard` Lua module,
/// sets `JobSubmitPlugins=lua` and reconfigures slurmctld, so that the
/// controller checks every job against `policy`.
fn enable_controller_check(cluster: &Cluster, policy: &Path) -> Result<(), String> {
    let module = lua_module_path();
    let module_dir = cluster.path("lib/lua");
    fs::create_dir_all(&module_dir).map_err(|error| format!("cannot create {}: {error}", module_dir.display()))?;
    let contents = fs::read(&module).map_err(|error| {
        format!("cannot read the Lua module {}: {error}; build it with `cargo build --release -p spank-guard-lua`", module.display())
    })?;
    cluster.write_root_file_mode("lib/lua/spank_guard.so", &contents, 0o755)?;

    let mut script = JOB_SUBMIT_SCRIPT.to_owned();
    for (setting, value) in [
        ("local POLICY = \"/etc/slurm/spank-guard/policy.json\"", format!("local POLICY = {:?}", policy.display().to_string())),
        ("local CLUSTER = \"cluster\"", "local CLUSTER = \"guardtest\"".to_owned()),
        ("local MODULE_DIR = nil", format!("local MODULE_DIR = {:?}", module_dir.display().to_string())),
    ] {
        if !script.contains(setting) {
            return Err(format!("examples/job_submit.lua has no line `{setting}`"));
        }
        script = script.replace(setting, &value);
    }
    let script_path = cluster.write_root_file("etc/job_submit.lua", script.as_bytes())?;

    let conf_path = cluster.slurm_conf();
    let conf = fs::read_to_string(&conf_path).map_err(|error| format!("cannot read {}: {error}", conf_path.display()))?;
    cluster.write_root_file("etc/slurm.conf", format!("{conf}JobSubmitPlugins=lua\n").as_bytes())?;
    let reconfigure = cluster.root(&["scontrol", "reconfigure"]);
    if reconfigure.code != 0 {
        return Err(format!("scontrol reconfigure failed:\n{reconfigure}"));
    }
    println!("slurm.conf: JobSubmitPlugins=lua, with examples/job_submit.lua installed as {}", script_path.display());
    println!("Lua module: {}, installed as {}", module.display(), module_dir.join("spank_guard.so").display());
    Ok(())
}

/// Returns the Lua module that `cargo build -p spank-guard-lua` wrote next
/// to the plugin: `libspank_guard_lua.so` of the same profile.
fn lua_module_path() -> PathBuf {
    default_plugin_path().with_file_name("libspank_guard_lua.so")
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

    /// Returns the decision lines that job_submit.lua wrote to slurmctld's log,
    /// from `controller decision:` on.
    fn controller_decisions(&self) -> Vec<String> {
        let log = fs::read_to_string(self.cluster.path("log/slurmctld.log")).unwrap_or_default();
        log.lines().filter_map(|line| line.split_once("spank-guard: controller decision: ").map(|(_, rest)| rest.to_owned())).collect()
    }

    fn job(&self, title: &str, user: &TestUser, env: &[(&str, &str)], args: &[&str]) -> Result<(), String> {
        let before = self.audit_lines().len();
        let decisions_before = self.controller_decisions().len();
        println!("\n=== {title}");
        let shown_env: String = env.iter().map(|(name, value)| format!("{name}={value} ")).collect();
        println!("[{}]$ {shown_env}{}", user.name, shell_words(args));
        let output = self.cluster.run_as(user, env, args);
        print!("{}", output.stdout);
        for line in output.stderr.lines().filter(|line| !line.contains("queued and waiting") && !line.contains("has been allocated")) {
            println!("{line}");
        }
        println!("(exit code {})", output.code);

        let decisions: Vec<String> = self.controller_decisions().into_iter().skip(decisions_before).collect();
        if decisions.is_empty() {
            println!("Controller: no decision (the job never reached slurmctld)");
        }
        for decision in decisions {
            println!("Controller decision in slurmctld's log:\n  {decision}");
        }
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
    if record["break_glass"] == true {
        let waived: Vec<&str> =
            record["waived"].as_array().into_iter().flatten().filter_map(|reason| reason["rule"].as_str()).collect();
        summary.push_str(&format!(" break_glass=true waived=[{}] break_glass_reason={:?}", waived.join(","), text("break_glass_reason")));
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
