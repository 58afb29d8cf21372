//! The controller check on a real cluster: slurmctld with
//! `JobSubmitPlugins=lua`, the shipped `examples/job_submit.lua` and the
//! `spank_guard` Lua module, and the SPANK plugin on the nodes.
//!
//! The policy file is readable by root only, so the advisory check in the
//! user's sbatch skips itself (as when a user bypasses it) and every
//! decision shown comes from slurmctld. The cases share one cluster and run
//! in order in one test, because each rewrites the policy or the script.
//!
//! Needs root, the plugin (`cargo build -p spank-guard`) and the module
//! (`cargo build -p spank-guard-lua`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code fails loudly")]

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use cluster_tests::{default_plugin_path, Cluster, Output, TestUser, TEST_USERS};
use policy_core::ticket::{issue, Claims};
use serde_json::{json, Value};

/// Environment variable that overrides the path of the Lua module to test.
const MODULE_ENV: &str = "SPANK_GUARD_LUA_MODULE";

/// `guardtest`: in no special group.
const USER: TestUser = TEST_USERS[0];
/// `guardprod`: member of `hpc-prod`.
const PROD_USER: TestUser = TEST_USERS[1];

const KEY_ID: &str = "controller-test";
const KEY_SEED: [u8; 32] = [9; 32];
const JUSTIFICATION: &str = "quarterly risk report";

/// Minutes from now to the end of the `ops` window of the test policy.
const WINDOW_MINUTES_LEFT: i64 = 90;

/// Returns the Lua module to test: `$SPANK_GUARD_LUA_MODULE`, else the newer
/// of `libspank_guard_lua.so` in the profile directory of this test binary
/// and in its `deps` directory (where `cargo test -p spank-guard-lua` writes it).
fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os(MODULE_ENV) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let profile = deps.parent().unwrap();
    let candidates = [profile.join("libspank_guard_lua.so"), deps.join("libspank_guard_lua.so")];
    candidates
        .into_iter()
        .filter_map(|path| path.metadata().and_then(|metadata| metadata.modified()).ok().map(|modified| (modified, path)))
        .max()
        .map(|(_, path)| path)
        .unwrap_or_else(|| {
            panic!("libspank_guard_lua.so not found next to {}; build it with `cargo build -p spank-guard-lua` or set {MODULE_ENV}", exe.display())
        })
}

/// A running cluster with the controller hook installed.
struct Controller {
    cluster: Cluster,
    policy: PathBuf,
    audit: PathBuf,
    module_dir: PathBuf,
    /// End of the `ops` window as `YYYY-MM-DDTHH:MM:00Z`.
    window_end: String,
}

impl Controller {
    fn start() -> Controller {
        let cluster = Cluster::start(&default_plugin_path()).unwrap_or_else(|error| panic!("cannot start the cluster: {error}"));
        let module_dir = cluster.path("lib/lua");
        std::fs::create_dir_all(&module_dir).unwrap();
        let module = module_path();
        std::fs::copy(&module, module_dir.join("spank_guard.so")).unwrap_or_else(|error| panic!("cannot copy {}: {error}", module.display()));

        let policy = cluster.path("etc/spank-guard/policy.json");
        let audit = cluster.path("audit/audit.jsonl");
        let mut controller = Controller { cluster, policy, audit, module_dir, window_end: String::new() };
        let policy_text = controller.policy_json().to_string();
        controller.write_policy(&policy_text);
        controller.cluster.set_plugstack(&format!("policy={}", controller.policy.display())).unwrap();
        controller.write_script("deny");

        let conf = std::fs::read_to_string(controller.cluster.slurm_conf()).unwrap();
        controller.cluster.write_root_file("etc/slurm.conf", format!("{conf}JobSubmitPlugins=lua\n").as_bytes()).unwrap();
        let reconfigure = controller.cluster.root(&["scontrol", "reconfigure"]);
        assert_eq!(reconfigure.code, 0, "{reconfigure}");
        let config = controller.cluster.root(&["scontrol", "show", "config"]);
        assert!(config.stdout.lines().any(|line| line.split_whitespace().collect::<Vec<_>>() == ["JobSubmitPlugins", "=", "lua"]), "{config}");
        controller
    }

    /// The test policy: `dev` for everyone, `prod` for `hpc-prod` with a
    /// justification and a ticket, and `ops` with a window that opened an
    /// hour ago and closes [`WINDOW_MINUTES_LEFT`] minutes from now.
    fn policy_json(&mut self) -> Value {
        let now = jiff::Timestamp::now();
        let start = now - jiff::SignedDuration::from_mins(60);
        let end = now + jiff::SignedDuration::from_mins(WINDOW_MINUTES_LEFT);
        let end = jiff::Timestamp::from_second(end.as_second() - end.as_second().rem_euclid(60)).unwrap();
        self.window_end = end.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let public_key = base64_encode(ed25519_dalek::SigningKey::from_bytes(&KEY_SEED).verifying_key().as_bytes());
        json!({
            "version": 1,
            "mode": "enforce",
            "default_environment": "dev",
            "environments": {
                "dev": { "risk": 1 },
                "prod": {
                    "risk": 10,
                    "allow": { "groups": ["hpc-prod"] },
                    "approval": { "justification_min_chars": 10, "ticket": true },
                    "break_glass": { "groups": ["hpc-prod"], "max_minutes": 60 }
                },
                "ops": { "risk": 5, "windows": ["ops"] }
            },
            "windows": {
                // Every day, so a slot past midnight still contains now.
                "ops": { "timezone": "UTC", "weekly": [ {
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "start": start.strftime("%H:%M").to_string(),
                    "end": end.strftime("%H:%M").to_string()
                } ] }
            },
            "env": { "set": { "HOS_ENV": "{environment}", "HOS_CORRELATION_ID": "{correlation_id}" } },
            "approvals": { "keys": { KEY_ID: public_key }, "max_ttl_hours": 24 },
            "audit": { "path": self.audit.display().to_string(), "on_error": "deny" },
            "container": { "digest_cache": null }
        })
    }

    /// Writes the policy readable by root only, so only slurmctld and the
    /// nodes evaluate it.
    fn write_policy(&self, text: &str) {
        self.cluster.write_root_file_mode("etc/spank-guard/policy.json", text.as_bytes(), 0o600).unwrap();
    }

    /// Installs `examples/job_submit.lua` with the test settings.
    fn write_script(&self, on_policy_error: &str) {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/job_submit.lua");
        let mut script = std::fs::read_to_string(&example).unwrap();
        for (setting, value) in [
            ("local POLICY = \"/etc/slurm/spank-guard/policy.json\"", format!("local POLICY = {:?}", self.policy.display().to_string())),
            ("local ON_POLICY_ERROR = \"deny\"", format!("local ON_POLICY_ERROR = {on_policy_error:?}")),
            ("local CLUSTER = \"cluster\"", "local CLUSTER = \"guardtest\"".to_owned()),
            ("local MODULE_DIR = nil", format!("local MODULE_DIR = {:?}", self.module_dir.display().to_string())),
        ] {
            assert!(script.contains(setting), "examples/job_submit.lua has no line `{setting}`");
            script = script.replace(setting, &value);
        }
        // job_submit/lua reloads the script when its mtime, in whole
        // seconds, is later than the last load.
        sleep(Duration::from_millis(1100));
        self.cluster.write_root_file("etc/job_submit.lua", script.as_bytes()).unwrap();
    }

    fn sbatch(&self, user: &TestUser, args: &[&str]) -> Output {
        let mut command = vec!["sbatch"];
        command.extend_from_slice(args);
        self.cluster.run_as(user, &[], &command)
    }

    /// Asserts that slurmctld responds to `scontrol ping` and no node is drained.
    fn assert_alive(&mut self, case: &str) {
        let ping = self.cluster.root(&["scontrol", "ping"]);
        assert!(ping.stdout.contains("is UP"), "{case}: slurmctld is not up after the case:\n{ping}");
        self.cluster.wait_idle().unwrap_or_else(|error| panic!("{case}: {error}"));
    }

    /// Returns the job ids of `user` that slurmctld lists in `squeue`.
    fn jobs_of(&self, user: &TestUser) -> Vec<String> {
        let output = self.cluster.root(&["squeue", "--noheader", "--states=all", "--format=%i", &format!("--user={}", user.name)]);
        output.stdout.split_whitespace().map(str::to_owned).collect()
    }

    /// Asserts that a line of slurmctld's log contains `marker` and ends with `ending`.
    fn assert_log_line(&self, marker: &str, ending: &str) {
        let log = std::fs::read_to_string(self.cluster.path("log/slurmctld.log")).unwrap_or_default();
        assert!(
            log.lines().any(|line| line.contains(marker) && line.ends_with(ending)),
            "slurmctld.log has no line with `{marker}` ending with `{ending}`"
        );
    }

    /// Returns the controller decision lines of slurmctld's log that name `correlation_id`.
    fn controller_log_lines(&self, correlation_id: &str) -> Vec<String> {
        let log = std::fs::read_to_string(self.cluster.path("log/slurmctld.log")).unwrap_or_default();
        let needle = format!("correlation_id={correlation_id} ");
        log.lines().filter(|line| line.contains("spank-guard: controller decision:") && line.contains(&needle)).map(str::to_owned).collect()
    }

    /// Returns the node's audit records of `job_id`.
    fn audit_records(&self, job_id: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|error| panic!("invalid audit line {line}: {error}")))
            .filter(|record| record["job_id"].as_u64().map(|id| id.to_string()).as_deref() == Some(job_id))
            .collect()
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn ticket(user: &str, env: &str) -> String {
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        kid: KEY_ID.to_owned(),
        user: user.to_owned(),
        env: env.to_owned(),
        iat: now - 60,
        exp: now + 3600,
        job_name: None,
        justification: None,
    };
    issue(&ed25519_dalek::SigningKey::from_bytes(&KEY_SEED), &claims)
}

/// Returns the id of `spank-guard: correlation id: ID` in sbatch's stderr.
fn correlation_id(output: &Output) -> String {
    output
        .stderr
        .lines()
        .find_map(|line| line.split_once("spank-guard: correlation id: ").map(|(_, id)| id.trim().to_owned()))
        .unwrap_or_else(|| panic!("no correlation id line:\n{output}"))
}

fn is_uuid_v4(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|group| group.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && text.bytes().all(|byte| byte == b'-' || byte.is_ascii_hexdigit())
        && text.get(14..15) == Some("4")
}

/// Lines of sbatch's stderr, without the `sbatch: error: ` or `sbatch: ` prefix.
fn sbatch_messages(output: &Output) -> Vec<String> {
    output
        .stderr
        .lines()
        .map(|line| line.strip_prefix("sbatch: error: ").or_else(|| line.strip_prefix("sbatch: ")).unwrap_or(line).to_owned())
        .collect()
}

/// Returns the job id of `Submitted batch job N`.
fn submitted_job_id(output: &Output) -> String {
    output
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Submitted batch job "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no job submitted:\n{output}"))
}

fn prod_denied_without_ticket(controller: &mut Controller) {
    let justification = format!("--guard-justification={JUSTIFICATION}");
    let output = controller.sbatch(&PROD_USER, &["--guard-env=prod", &justification, "--wrap=true"]);
    assert_eq!(output.code, 1, "{output}");
    let id = correlation_id(&output);
    assert!(is_uuid_v4(&id), "correlation id {id} is not a UUID v4:\n{output}");
    assert_eq!(
        sbatch_messages(&output),
        [
            "spank-guard: denied: approval.ticket: environment `prod` requires an approval ticket and none was given; pass `--guard-ticket=TICKET` or set `HOS_APPROVAL_TICKET` (an approver issues one with `guardctl ticket issue`)".to_owned(),
            format!("spank-guard: correlation id: {id}"),
            "Batch job submission failed: Unspecified error".to_owned(),
        ],
        "{output}"
    );
    assert_eq!(controller.jobs_of(&PROD_USER), Vec::<String>::new(), "a rejected job must not exist");

    let lines = controller.controller_log_lines(&id);
    assert_eq!(lines.len(), 1, "one controller decision line for {id}: {lines:#?}");
    assert!(
        lines[0].ends_with(&format!(
            "spank-guard: controller decision: outcome=deny correlation_id={id} user=guardprod uid={} environment=prod rules=approval.ticket deferred= account=nil partition=nil job_name=wrap",
            uid_of(&PROD_USER)
        )),
        "{}",
        lines[0]
    );
}

fn uid_of(user: &TestUser) -> u32 {
    nix::unistd::User::from_name(user.name).unwrap().unwrap().uid.as_raw()
}

fn prod_denied_for_non_member(controller: &mut Controller) {
    let justification = format!("--guard-justification={JUSTIFICATION}");
    let ticket = format!("--guard-ticket={}", ticket(USER.name, "prod"));
    let output = controller.sbatch(&USER, &["--guard-env=prod", &justification, &ticket, "--wrap=true"]);
    assert_eq!(output.code, 1, "{output}");
    let id = correlation_id(&output);
    assert_eq!(
        sbatch_messages(&output),
        [
            "spank-guard: denied: environment.access: user `guardtest` is not allowed in environment `prod`; allowed users: (none); allowed groups: `hpc-prod`".to_owned(),
            format!("spank-guard: correlation id: {id}"),
            "Batch job submission failed: Unspecified error".to_owned(),
        ],
        "{output}"
    );
    assert_eq!(controller.jobs_of(&USER), Vec::<String>::new(), "a rejected job must not exist");
}

/// A valid ticket is accepted, and the id that sbatch prints is the one in
/// slurmctld's log, the node's audit records and the task's environment.
fn valid_ticket_accepted_with_one_correlation_id(controller: &mut Controller) {
    let justification = format!("--guard-justification={JUSTIFICATION}");
    let ticket = format!("--guard-ticket={}", ticket(PROD_USER.name, "prod"));
    let output_file = controller.cluster.work_dir(&PROD_USER).join("correlation.out");
    let output_arg = format!("--output={}", output_file.display());
    let output = controller.sbatch(
        &PROD_USER,
        &["--wait", "--guard-env=prod", &justification, &ticket, &output_arg, "--wrap=srun printenv HOS_CORRELATION_ID; printenv HOS_CORRELATION_ID"],
    );
    assert_eq!(output.code, 0, "{output}");
    let job_id = submitted_job_id(&output);
    let id = correlation_id(&output);
    assert!(is_uuid_v4(&id), "correlation id {id} is not a UUID v4:\n{output}");
    assert_eq!(sbatch_messages(&output), [format!("spank-guard: correlation id: {id}")], "{output}");

    let lines = controller.controller_log_lines(&id);
    assert_eq!(lines.len(), 1, "one controller decision line for {id}: {lines:#?}");
    assert!(lines[0].contains(" outcome=allow "), "{}", lines[0]);

    let task_output = std::fs::read_to_string(&output_file).unwrap_or_default();
    assert_eq!(task_output.lines().collect::<Vec<_>>(), [id.as_str(), id.as_str()], "srun step and batch step environment");

    let records = controller.audit_records(&job_id);
    let decisions: Vec<&Value> = records.iter().filter(|record| record["event"] == "decision").collect();
    assert_eq!(decisions.len(), 2, "batch step and srun step decisions: {records:#?}");
    for record in &records {
        assert_eq!(record["correlation_id"], json!(id), "every audit record of the job: {record}");
    }
}

fn time_past_window_end_rejected(controller: &mut Controller) {
    let output = controller.sbatch(&USER, &["--guard-env=ops", "--time=200", "--wrap=true"]);
    assert_eq!(output.code, 1, "{output}");
    let id = correlation_id(&output);
    let messages = sbatch_messages(&output);
    assert_eq!(messages.len(), 3, "{output}");
    let prefix = format!(
        "spank-guard: denied: environment.window: job has a time limit of 200 minutes but window `ops` of environment `ops` ends at {}, ",
        controller.window_end
    );
    let rest = messages[0].strip_prefix(&prefix).unwrap_or_else(|| panic!("expected `{prefix}...`:\n{output}"));
    // The minutes left depend on the second the controller evaluated the job.
    let minutes: i64 = rest.split(' ').next().unwrap().parse().unwrap();
    assert!((WINDOW_MINUTES_LEFT - 2..=WINDOW_MINUTES_LEFT).contains(&minutes), "{rest}");
    assert_eq!(rest, format!("{minutes} minutes from now; request `--time={minutes}` or less"));
    assert_eq!(messages[1], format!("spank-guard: correlation id: {id}"));
    assert_eq!(messages[2], "Batch job submission failed: Unspecified error");
    assert_eq!(controller.jobs_of(&USER), Vec::<String>::new(), "a rejected job must not exist");

    // The partition's MaxTime is UNLIMITED: a job without --time has no limit.
    let output = controller.sbatch(&USER, &["--guard-env=ops", "--wrap=true"]);
    assert_eq!(output.code, 1, "{output}");
    assert!(
        sbatch_messages(&output)[0].starts_with("spank-guard: denied: environment.window: job has no time limit (`UNLIMITED`) but window `ops`"),
        "{output}"
    );

    let output = controller.sbatch(&USER, &["--wait", "--guard-env=ops", "--time=30", "--output=/dev/null", "--wrap=true"]);
    assert_eq!(output.code, 0, "{output}");
}

fn break_glass_limited_to_max_minutes(controller: &mut Controller) {
    let reason = "--guard-break-glass=INC-9 rerun the lost risk report";
    // Earlier cases left finished jobs of this user in squeue.
    let jobs_before = controller.jobs_of(&PROD_USER);
    let output = controller.sbatch(&PROD_USER, &["--guard-env=prod", reason, "--time=120", "--wrap=true"]);
    assert_eq!(output.code, 1, "{output}");
    let id = correlation_id(&output);
    assert_eq!(
        sbatch_messages(&output),
        [
            "spank-guard: denied: approval.justification: environment `prod` requires a justification of at least 10 non-blank characters and no justification was given; pass `--guard-justification=TEXT` or set `HOS_JUSTIFICATION`".to_owned(),
            "spank-guard: denied: approval.ticket: environment `prod` requires an approval ticket and none was given; pass `--guard-ticket=TICKET` or set `HOS_APPROVAL_TICKET` (an approver issues one with `guardctl ticket issue`)".to_owned(),
            "spank-guard: denied: break_glass.duration: job has a time limit of 120 minutes but break glass in environment `prod` allows at most 60 minutes; request `--time=60` or less".to_owned(),
            format!("spank-guard: correlation id: {id}"),
            "Batch job submission failed: Unspecified error".to_owned(),
        ],
        "{output}"
    );
    assert_eq!(controller.jobs_of(&PROD_USER), jobs_before, "a rejected job must not exist");
    controller.assert_log_line(
        "spank-guard: controller BREAK GLASS rejected: ",
        &format!(
            "correlation_id={id} user=guardprod environment=prod \
             rules=approval.justification,approval.ticket,break_glass.duration reason=INC-9_rerun_the_lost_risk_report"
        ),
    );

    let output = controller.sbatch(&PROD_USER, &["--wait", "--guard-env=prod", reason, "--time=60", "--output=/dev/null", "--wrap=true"]);
    assert_eq!(output.code, 0, "{output}");
    let id = correlation_id(&output);
    let job_id = submitted_job_id(&output);
    let messages = sbatch_messages(&output);
    assert_eq!(
        messages[..5],
        [
            "spank-guard: WARNING: BREAK GLASS by user `guardprod` in environment `prod`: INC-9 rerun the lost risk report".to_owned(),
            "spank-guard: WARNING: BREAK GLASS waives approval.justification: environment `prod` requires a justification of at least 10 non-blank characters and no justification was given; pass `--guard-justification=TEXT` or set `HOS_JUSTIFICATION`".to_owned(),
            "spank-guard: WARNING: BREAK GLASS waives approval.ticket: environment `prod` requires an approval ticket and none was given; pass `--guard-ticket=TICKET` or set `HOS_APPROVAL_TICKET` (an approver issues one with `guardctl ticket issue`)".to_owned(),
            "spank-guard: WARNING: BREAK GLASS: every step that runs this way is recorded in the audit log and reviewed by the administrators".to_owned(),
            format!("spank-guard: correlation id: {id}"),
        ],
        "{output}"
    );
    controller.assert_log_line(
        "spank-guard: controller BREAK GLASS: ",
        &format!(
            "correlation_id={id} user=guardprod environment=prod \
             waived=approval.justification,approval.ticket reason=INC-9_rerun_the_lost_risk_report"
        ),
    );

    // A pending break-glass job cannot get a longer time limit later.
    let output = controller.sbatch(&PROD_USER, &["--hold", "--guard-env=prod", reason, "--time=30", "--output=/dev/null", "--wrap=true"]);
    assert_eq!(output.code, 0, "{output}");
    let held_job = submitted_job_id(&output);
    let update = |limit: &str| {
        controller.cluster.run_as(&PROD_USER, &[], &["scontrol", "update", &format!("jobid={held_job}"), &format!("TimeLimit={limit}")])
    };
    let output = update("UNLIMITED");
    assert_eq!(output.code, 1, "{output}");
    // Slurm 22.05 shows no job_submit message on update; the log has the reason.
    assert_eq!(output.stderr.trim(), format!("Unspecified error for job {held_job}"), "{output}");
    controller.assert_log_line(
        "spank-guard: controller BREAK GLASS rejected: ",
        &format!(
            " user=guardprod environment=prod rules=break_glass.duration update_uid={} time_limit=4294967295: job has no \
             time limit (`UNLIMITED`) but break glass in environment `prod` allows at most 60 minutes; request `--time=60` or less",
            uid_of(&PROD_USER)
        ),
    );
    let output = update("45");
    assert_eq!(output.code, 0, "a limit within max_minutes is accepted: {output}");
    let queue = controller.cluster.root(&["squeue", "-h", "-j", &held_job, "-o", "%l"]);
    assert_eq!(queue.stdout.trim(), "45:00", "{queue}");
    let cancel = controller.cluster.root(&["scancel", &held_job]);
    assert_eq!(cancel.code, 0, "{cancel}");

    // The node decides the batch step again and records the break glass.
    let records = controller.audit_records(&job_id);
    let decision = records.iter().find(|record| record["event"] == "decision").unwrap_or_else(|| panic!("no decision record"));
    assert_eq!(decision["break_glass"], json!(true), "{decision}");
    assert_eq!(decision["break_glass_reason"], json!("INC-9 rerun the lost risk report"), "{decision}");
}

fn malformed_policy_fails_closed_or_open(controller: &mut Controller) {
    controller.write_policy("{ \"version\": 1, ");
    let policy = controller.policy.display().to_string();

    let output = controller.sbatch(&USER, &["--wrap=true"]);
    assert_eq!(output.code, 1, "{output}");
    let id = correlation_id(&output);
    assert_eq!(
        sbatch_messages(&output),
        [
            format!("spank-guard: denied: policy.invalid: {policy}:1:16: EOF while parsing a value"),
            format!("spank-guard: correlation id: {id}"),
            "Batch job submission failed: Unspecified error".to_owned(),
        ],
        "{output}"
    );
    controller.assert_alive("malformed policy, fail closed");

    // Fail open at the controller; the nodes also allow, so the job runs.
    controller.write_script("allow");
    controller.cluster.set_plugstack(&format!("policy={} on_policy_error=allow", controller.policy.display())).unwrap();
    let output = controller.sbatch(&USER, &["--wait", "--output=/dev/null", "--wrap=true"]);
    assert_eq!(output.code, 0, "{output}");
    submitted_job_id(&output);
    assert_eq!(sbatch_messages(&output), Vec::<String>::new(), "fail open shows the user nothing:\n{output}");
    let log = std::fs::read_to_string(controller.cluster.path("log/slurmctld.log")).unwrap_or_default();
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains("spank-guard: policy not usable, on_policy_error=allow: "))
        .unwrap_or_else(|| panic!("slurmctld logged no fail-open line"));
    let (_, rest) = line.split_once("on_policy_error=allow: correlation_id=").unwrap();
    let (id, rest) = rest.split_once(' ').unwrap();
    assert!(is_uuid_v4(id), "{line}");
    assert_eq!(rest, format!("uid={}: {policy}:1:16: EOF while parsing a value", uid_of(&USER)));

    // Restore the valid policy and the fail-closed script.
    controller.cluster.set_plugstack(&format!("policy={}", controller.policy.display())).unwrap();
    let policy_text = controller.policy_json().to_string();
    controller.write_policy(&policy_text);
    controller.write_script("deny");
}

/// One case of the controller test; it panics on failure.
type Case = fn(&mut Controller);

#[test]
fn controller_enforces_policy_at_submit() {
    let mut controller = Controller::start();
    let cases: [(&str, Case); 6] = [
        ("prod denied without ticket", prod_denied_without_ticket),
        ("prod denied for non-member", prod_denied_for_non_member),
        ("valid ticket accepted with one correlation id", valid_ticket_accepted_with_one_correlation_id),
        ("time past window end rejected", time_past_window_end_rejected),
        ("break glass limited to max_minutes", break_glass_limited_to_max_minutes),
        ("malformed policy fails closed or open", malformed_policy_fails_closed_or_open),
    ];
    for (name, case) in cases {
        eprintln!("case: {name}");
        case(&mut controller);
        controller.assert_alive(name);
    }
    controller.cluster.stop();
}
