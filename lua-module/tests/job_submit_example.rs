//! Runs `examples/job_submit.lua` in the `lua5.1` interpreter with a
//! stand-in `slurm` table that records what the script logs, so the mapping
//! from job descriptors to requests is checked without a cluster. The
//! descriptors copy what slurmctld 22.05 passes (spank_job_env indexed from
//! 0, NO_VAL time limits, partitions keyed by name).
//!
//! The policy must be owned by root, so these tests skip with a note when
//! they do not run as root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers fail the test on setup errors")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const POLICY: &str = r#"{
  "version": 1,
  "default_environment": "dev",
  "environments": {
    "dev": { "risk": 1 },
    "prod": { "risk": 10, "allow": { "users": ["nobody-else"] }, "approval": { "justification_min_chars": 10 } },
    "gpu": { "risk": 3, "nodes": ["g[1-4]"], "container": { "images": ["approved"], "user_flags": ["--nv"] } },
    "ops": { "risk": 5, "windows": ["never"], "break_glass": { "users": ["root"], "max_minutes": 60 } },
    "audited": { "risk": 2, "mode": "audit", "windows": ["never"], "break_glass": { "users": ["nobody-else"], "max_minutes": 60 } }
  },
  "windows": { "never": { "timezone": "UTC", "weekly": [ { "days": ["mon"], "start": "00:00", "end": "00:01" } ] } },
  "images": { "approved": [ { "path": "/nonexistent-example-test/*.sif" } ] },
  "container": { "runtime": "/nonexistent-example-test/apptainer", "digest_cache": null }
}
"#;

/// Stand-in for the `slurm` table of job_submit/lua: log functions format
/// like Slurm's (`string.format`) and print one tagged line each.
const SLURM_STAND_IN: &str = r#"
slurm = { SUCCESS = 0, ERROR = -1, NO_VAL = 4294967294, INFINITE = 4294967295 }
function slurm.log_user(...) print("user: " .. string.format(...)) end
function slurm.log_info(...) print("info: " .. string.format(...)) end
function slurm.log_error(...) print("error: " .. string.format(...)) end
PARTITIONS = { debug = { name = "debug", flag_default = 1, default_time = 4294967294, max_time = 60 } }
function submit(job_desc)
  job_desc.time_limit = job_desc.time_limit or 4294967294
  print("rc: " .. slurm_job_submit(job_desc, PARTITIONS, 0))
end
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(policy: &str, on_policy_error: &str) -> Option<Fixture> {
        if !fs::metadata("/proc/self").map(|metadata| std::os::unix::fs::MetadataExt::uid(&metadata) == 0).unwrap_or(false) {
            eprintln!("skipped: the policy must be owned by root, so this test needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let module = std::env::current_exe().unwrap().parent().unwrap().join("libspank_guard_lua.so");
        fs::copy(&module, dir.path().join("spank_guard.so")).unwrap_or_else(|error| panic!("cannot copy {}: {error}", module.display()));
        let policy_path = dir.path().join("policy.json");
        fs::write(&policy_path, policy).unwrap();
        fs::set_permissions(&policy_path, fs::Permissions::from_mode(0o644)).unwrap();

        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/job_submit.lua");
        let mut script = fs::read_to_string(&example).unwrap();
        for (setting, value) in [
            ("local POLICY = \"/etc/slurm/spank-guard/policy.json\"", format!("local POLICY = {:?}", policy_path.display().to_string())),
            ("local ON_POLICY_ERROR = \"deny\"", format!("local ON_POLICY_ERROR = {on_policy_error:?}")),
            ("local CLUSTER = \"cluster\"", "local CLUSTER = \"hpc\"".to_owned()),
            ("local MODULE_DIR = nil", format!("local MODULE_DIR = {:?}", dir.path().display().to_string())),
        ] {
            assert!(script.contains(setting), "examples/job_submit.lua has no line `{setting}`");
            script = script.replace(setting, &value);
        }
        fs::write(dir.path().join("job_submit.lua"), script).unwrap();
        Some(Fixture { dir })
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("job_submit.lua")
    }

    /// Loads the stand-in and the script, runs `calls`, and returns stdout.
    fn run(&self, calls: &str) -> String {
        let program = format!("{SLURM_STAND_IN}\nassert(dofile({:?}) == 0)\n{calls}", self.script().display().to_string());
        let output = Command::new("lua5.1")
            .arg("-e")
            .arg(program)
            .output()
            .unwrap_or_else(|error| panic!("cannot run lua5.1 ({error}); install it with `apt-get install lua5.1`"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "lua5.1 failed\nstdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr));
        stdout
    }
}

#[test]
fn denied_job_shows_every_reason() {
    let Some(fixture) = Fixture::new(POLICY, "deny") else { return };
    let stdout = fixture.run(
        "submit({ name = 'train', partition = 'debug', account = 'physics', spank_job_env = {
  [0] = '_SLURM_SPANK_OPTION_spank_guard_guard_env=prod',
  [1] = 'HOS_CORRELATION_ID=4b8c6d1e-0f2a-4c3b-9d5e-6f7a8b9c0d1e',
} })",
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "info: spank-guard: controller decision: outcome=deny correlation_id=4b8c6d1e-0f2a-4c3b-9d5e-6f7a8b9c0d1e user=root uid=0 environment=prod rules=environment.access,approval.justification deferred= account=physics partition=debug job_name=train",
            "user: spank-guard: denied: environment.access: user `root` is not allowed in environment `prod`; allowed users: `nobody-else`; allowed groups: (none)",
            "user: spank-guard: denied: approval.justification: environment `prod` requires a justification of at least 10 non-blank characters and no justification was given; pass `--guard-justification=TEXT` or set `HOS_JUSTIFICATION`",
            "user: spank-guard: correlation id: 4b8c6d1e-0f2a-4c3b-9d5e-6f7a8b9c0d1e",
            "rc: -1",
        ]
    );
}

#[test]
fn options_and_forwarded_variables_mapped() {
    let Some(fixture) = Fixture::new(POLICY, "deny") else { return };
    // HOS_ENV names the environment; the option wins over it. The relayed
    // flag list replaces the last --guard-container-flags value.
    let stdout = fixture.run(
        "submit({ name = 'render', spank_job_env = {
  [0] = 'HOS_ENV=prod',
  [1] = '_SLURM_SPANK_OPTION_spank_guard_guard_env=gpu',
  [2] = '_SLURM_SPANK_OPTION_spank_guard_guard_image=/nonexistent-example-test/app.sif',
  [3] = '_SLURM_SPANK_OPTION_spank_guard_guard_container_flags=--nv',
  [4] = 'SPANK_GUARD_CONTAINER_FLAG_OPTIONS=--nv,--writable',
  [5] = 'HOS_CORRELATION_ID=c-1',
} })",
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "info: spank-guard: controller decision: outcome=deny correlation_id=c-1 user=root uid=0 environment=gpu rules=container.flag deferred=environment.node,container.image,container.bind,container.runtime account=nil partition=nil job_name=render",
            "user: spank-guard: denied: container.flag: container flag `--writable` is not allowed by the policy's user_flags; allowed flags: `--nv`",
            "user: spank-guard: correlation id: c-1",
            "rc: -1",
        ]
    );
}

#[test]
fn break_glass_warns_and_checks_time_limit() {
    let Some(fixture) = Fixture::new(POLICY, "deny") else { return };
    let job = |minutes: u32| {
        format!(
            "submit({{ name = 'fix', time_limit = {minutes}, spank_job_env = {{ [0] = 'HOS_CORRELATION_ID=c-7', \
             [1] = '_SLURM_SPANK_OPTION_spank_guard_guard_env=ops', \
             [2] = '_SLURM_SPANK_OPTION_spank_guard_guard_break_glass=INC-7 restore the lost nightly run' }} }})"
        )
    };
    let stdout = fixture.run(&format!("{}\n{}", job(60), job(61)));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 13, "{stdout}");
    assert!(lines[0].starts_with("info: spank-guard: controller decision: outcome=allow correlation_id=c-7 "), "{stdout}");
    assert_eq!(
        lines[1],
        "info: spank-guard: controller BREAK GLASS: correlation_id=c-7 user=root environment=ops waived=environment.window \
         reason=INC-7_restore_the_lost_nightly_run"
    );
    assert_eq!(lines[2], "user: spank-guard: WARNING: BREAK GLASS by user `root` in environment `ops`: INC-7 restore the lost nightly run");
    assert!(lines[3].starts_with("user: spank-guard: WARNING: BREAK GLASS waives environment.window: environment `ops` is outside"), "{stdout}");
    assert_eq!(lines[4], "user: spank-guard: WARNING: BREAK GLASS: every step that runs this way is recorded in the audit log and reviewed by the administrators");
    assert_eq!(lines[5..7], ["user: spank-guard: correlation id: c-7", "rc: 0"]);

    assert!(lines[7].starts_with("info: spank-guard: controller decision: outcome=deny correlation_id=c-7 "), "{stdout}");
    assert!(lines[7].contains(" rules=environment.window,break_glass.duration "), "{stdout}");
    assert_eq!(
        lines[8],
        "info: spank-guard: controller BREAK GLASS rejected: correlation_id=c-7 user=root environment=ops \
         rules=environment.window,break_glass.duration reason=INC-7_restore_the_lost_nightly_run"
    );
    assert!(lines[9].starts_with("user: spank-guard: denied: environment.window: environment `ops` is outside"), "{stdout}");
    assert_eq!(
        lines[10..],
        [
            "user: spank-guard: denied: break_glass.duration: job has a time limit of 61 minutes but break glass in environment `ops` allows at most 60 minutes; request `--time=60` or less",
            "user: spank-guard: correlation id: c-7",
            "rc: -1",
        ]
    );
}

#[test]
fn break_glass_rejected_in_audit_mode() {
    let Some(fixture) = Fixture::new(POLICY, "deny") else { return };
    let stdout = fixture.run(
        "submit({ name = 'fix', time_limit = 30, spank_job_env = { [0] = 'HOS_CORRELATION_ID=c-8', \
         [1] = '_SLURM_SPANK_OPTION_spank_guard_guard_env=audited', \
         [2] = '_SLURM_SPANK_OPTION_spank_guard_guard_break_glass=INC-8 \\27[31mred\\27[0m outage' } })",
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("info: spank-guard: controller decision: outcome=would_deny correlation_id=c-8 "), "{stdout}");
    assert_eq!(
        lines[1],
        "info: spank-guard: controller BREAK GLASS rejected: correlation_id=c-8 user=root environment=audited \
         rules=environment.window,break_glass.access reason=INC-8_\u{1b}[31mred\u{1b}[0m_outage"
            .replace('\u{1b}', "_"),
        "{stdout}"
    );
    assert!(!stdout.contains("break glass not needed"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no escape character reaches the user: {stdout:?}");
    assert!(
        lines.iter().any(|line| line.starts_with("user: spank-guard: audit mode, would deny: break_glass.access: user `root` may not break glass")),
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"rc: 0"), "{stdout}");
}

#[test]
fn allowed_job_shows_correlation_id() {
    let Some(fixture) = Fixture::new(POLICY, "deny") else { return };
    let stdout = fixture.run("submit({ name = 'wrap', spank_job_env = { [0] = 'HOS_CORRELATION_ID=c-2' } })\nsubmit({ name = 'wrap' })");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert_eq!(
        lines[..3],
        [
            "info: spank-guard: controller decision: outcome=allow correlation_id=c-2 user=root uid=0 environment=dev rules= deferred= account=nil partition=nil job_name=wrap",
            "user: spank-guard: correlation id: c-2",
            "rc: 0",
        ]
    );
    // Without the plugin on the submit host there is no minted id: the
    // module falls back to hpc-submit-<uid>-<unix seconds>.
    assert!(lines[4].starts_with("user: spank-guard: correlation id: hpc-submit-0-"), "{stdout}");
    assert_eq!(lines[5], "rc: 0");
}

#[test]
fn log_line_escapes_job_name() {
    let Some(fixture) = Fixture::new(POLICY, "deny") else { return };
    let stdout = fixture.run(
        "submit({ name = 'x\\nspank-guard: controller decision: outcome=allow user=root', \
         spank_job_env = { [0] = 'HOS_CORRELATION_ID=c-9' } })",
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "info: spank-guard: controller decision: outcome=allow correlation_id=c-9 user=root uid=0 environment=dev rules= deferred= account=nil partition=nil job_name=x_spank-guard:_controller_decision:_outcome=allow_user=root",
        "{stdout}"
    );
    assert_eq!(lines.len(), 3, "{stdout}");
}

/// Returns a policy whose `ops` window opened an hour ago and closes in 90
/// minutes, every day, so a slot past midnight still contains now.
fn policy_with_open_window() -> String {
    let now = jiff::Timestamp::now();
    let start = now - jiff::SignedDuration::from_mins(60);
    let end = now + jiff::SignedDuration::from_mins(90);
    POLICY.replace(
        r#""never": { "timezone": "UTC", "weekly": [ { "days": ["mon"], "start": "00:00", "end": "00:01" } ] }"#,
        &format!(
            r#""never": {{ "timezone": "UTC", "weekly": [ {{ "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "{}", "end": "{}" }} ] }}"#,
            start.strftime("%H:%M"),
            end.strftime("%H:%M")
        ),
    )
}

#[test]
fn time_limit_from_job_or_partition() {
    let Some(fixture) = Fixture::new(&policy_with_open_window(), "deny") else { return };
    // Each call prints the outcome and the start of the window reason.
    let stdout = fixture.run(
        "slurm.log_info = function() end
slurm.log_user = function(format, text)
  if string.find(text, 'environment.window') then print(string.match(text, '^(.-) but window')) end
end
local env = { [0] = '_SLURM_SPANK_OPTION_spank_guard_guard_env=ops' }
submit({ name = 'a', time_limit = 30, spank_job_env = env })
submit({ name = 'b', time_limit = 200, spank_job_env = env })
-- No --time: the partition's DefaultTime is NO_VAL, so MaxTime (60) applies.
submit({ name = 'c', spank_job_env = env })
PARTITIONS.debug.max_time = 300
submit({ name = 'd', spank_job_env = env })
PARTITIONS.debug.default_time = 20
submit({ name = 'e', spank_job_env = env })
PARTITIONS.debug.default_time = 4294967294
PARTITIONS.debug.max_time = 4294967295
submit({ name = 'f', spank_job_env = env })
-- A named partition that is not in the list leaves the limit unknown.
submit({ name = 'g', partition = 'other', spank_job_env = env })",
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "rc: 0",
            "spank-guard: denied: environment.window: job has a time limit of 200 minutes",
            "rc: -1",
            "rc: 0",
            "spank-guard: denied: environment.window: job has a time limit of 300 minutes",
            "rc: -1",
            "rc: 0",
            "spank-guard: denied: environment.window: job has no time limit (`UNLIMITED`)",
            "rc: -1",
            "rc: 0",
        ]
    );
}

#[test]
fn malformed_policy_fails_closed() {
    let Some(fixture) = Fixture::new("{ \"version\": 1, ", "deny") else { return };
    let stdout = fixture.run("submit({ name = 'wrap', spank_job_env = { [0] = 'HOS_CORRELATION_ID=c-4' } })");
    let policy = fixture.dir.path().join("policy.json").display().to_string();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!("error: spank-guard: policy not usable, on_policy_error=deny: correlation_id=c-4 uid=0: {policy}:1:16: EOF while parsing a value"),
            format!("user: spank-guard: denied: policy.invalid: {policy}:1:16: EOF while parsing a value"),
            "user: spank-guard: correlation id: c-4".to_owned(),
            "rc: -1".to_owned(),
        ]
    );
}

#[test]
fn malformed_policy_fails_open() {
    let Some(fixture) = Fixture::new("{ \"version\": 1, ", "allow") else { return };
    let stdout = fixture.run("submit({ name = 'wrap' })");
    let policy = fixture.dir.path().join("policy.json").display().to_string();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!("error: spank-guard: policy not usable, on_policy_error=allow: correlation_id=(none) uid=0: {policy}:1:16: EOF while parsing a value"),
            "rc: 0".to_owned(),
        ]
    );
}

#[test]
fn missing_module_follows_setting() {
    let Some(fixture) = Fixture::new(POLICY, "deny") else { return };
    fs::remove_file(fixture.dir.path().join("spank_guard.so")).unwrap();
    let stdout = fixture.run("submit({ name = 'wrap' })");
    let message = "cannot load the spank_guard Lua module (module 'spank_guard' not found); \
                   install spank_guard.so in a package.cpath directory or set MODULE_DIR in job_submit.lua";
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!("error: spank-guard: policy not usable, on_policy_error=deny: correlation_id=(none) uid=0: {message}"),
            format!("user: spank-guard: denied: policy.invalid: {message}"),
            "user: spank-guard: correlation id: (none)".to_owned(),
            "rc: -1".to_owned(),
        ]
    );
}

#[test]
fn lua_error_caught() {
    let Some(fixture) = Fixture::new(POLICY, "deny") else { return };
    // A descriptor whose spank_job_env is not a table makes the script fail.
    let stdout = fixture.run("submit({ name = 'wrap', spank_job_env = 42 })");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("internal error in job_submit.lua: "), "{stdout}");
    assert_eq!(lines.last(), Some(&"rc: -1"), "{stdout}");
}
