//! Loads the built module into the `lua5.1` interpreter, as slurmctld's
//! job_submit/lua does, and runs Lua scripts against real policy files.
//!
//! The module is the cdylib that `cargo test -p spank-guard-lua` builds
//! (`target/<profile>/deps/libspank_guard_lua.so`), copied as `spank_guard.so`
//! into a directory on `package.cpath`. The policy files must be owned by
//! root, like on a controller, so these tests skip with a note when they do
//! not run as root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers fail the test on setup errors")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// Saturday 2026-12-05 14:00 UTC, inside the `maintenance` window below.
const SATURDAY_14H: i64 = 1_796_479_200;

const POLICY: &str = r#"{
  "version": 1,
  "default_environment": "dev",
  "environments": {
    "dev": { "risk": 1 },
    "prod": {
      "risk": 10,
      "allow": { "groups": ["hpc-prod"] },
      "windows": ["maintenance"],
      "nodes": ["c[1-2]"],
      "approval": { "justification_min_chars": 10 }
    }
  },
  "windows": {
    "maintenance": { "timezone": "UTC", "weekly": [ { "days": ["sat", "sun"], "start": "10:00", "end": "16:00" } ] }
  },
  "env": { "set": { "HOS_ENV": "{environment}", "HOS_CORRELATION_ID": "{correlation_id}" } },
  "container": { "digest_cache": null }
}
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        if !nix_is_root() {
            eprintln!("skipped: the policy must be owned by root, so this test needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::copy(module_path(), dir.path().join("spank_guard.so")).unwrap();
        let fixture = Fixture { dir };
        fixture.write_policy(POLICY, 0o644);
        Some(fixture)
    }

    fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.json")
    }

    /// Replaces the policy file by a new file (new inode), as editors and
    /// configuration tools do.
    fn write_policy(&self, text: &str, mode: u32) {
        let temp = self.dir.path().join("policy.json.tmp");
        fs::write(&temp, text).unwrap();
        fs::set_permissions(&temp, fs::Permissions::from_mode(mode)).unwrap();
        fs::rename(&temp, self.policy_path()).unwrap();
    }

    /// Runs `script` after `guard = require("spank_guard")` and
    /// `POLICY = "<policy path>"`; returns stdout, and fails on a non-zero exit.
    fn run(&self, script: &str) -> String {
        let prelude = format!(
            "package.cpath = {:?} .. \"/?.so;\" .. package.cpath\nguard = require(\"spank_guard\")\nPOLICY = {:?}\n",
            self.dir.path().display().to_string(),
            self.policy_path().display().to_string()
        );
        let output = Command::new("lua5.1")
            .arg("-e")
            .arg(format!("{prelude}{script}"))
            .output()
            .unwrap_or_else(|error| panic!("cannot run lua5.1 ({error}); install it with `apt-get install lua5.1`"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "lua5.1 failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
        stdout
    }
}

fn nix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").map(|metadata| metadata.uid() == 0).unwrap_or(false)
}

/// Returns the module that cargo built for this test run: the library is
/// also an rlib, so cargo builds it (with its cdylib) as a dependency of the
/// test and writes `libspank_guard_lua.so` next to the test binary in
/// `target/<profile>/deps`.
fn module_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().join("libspank_guard_lua.so");
    assert!(path.is_file(), "{} not found; build it with `cargo build -p spank-guard-lua`", path.display());
    path
}

/// Lua helper that prints a decision as stable lines.
const PRINT_DECISION: &str = r#"
function show(decision, err)
  if decision == nil then
    print("error: " .. err)
    return
  end
  print("outcome: " .. decision.outcome .. " permits: " .. tostring(decision.permits))
  print("environment: " .. tostring(decision.environment) .. " risk: " .. tostring(decision.risk))
  print("correlation_id: " .. decision.correlation_id)
  for _, reason in ipairs(decision.reasons) do
    print("reason: " .. reason.rule .. ": " .. reason.message)
  end
  print("deferred: " .. table.concat(decision.deferred, ","))
  local names = {}
  for name, value in pairs(decision.effects.set) do
    table.insert(names, name .. "=" .. value)
  end
  table.sort(names)
  print("set: " .. table.concat(names, ","))
end
"#;

#[test]
fn deny_lists_reasons_and_deferred_rules() {
    let Some(fixture) = Fixture::new() else { return };
    let stdout = fixture.run(&format!(
        "{PRINT_DECISION}
show(guard.evaluate(POLICY, {{
  user = 'bob', uid = 1000, groups = {{ 'users' }}, cluster = 'hpc',
  options = {{ env = 'Prod' }}, env = {{ HOS_CORRELATION_ID = 'corr-1' }},
  time_limit_minutes = 180,
}}, {SATURDAY_14H}))"
    ));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "outcome: deny permits: false",
            "environment: prod risk: 10",
            "correlation_id: corr-1",
            "reason: environment.access: user `bob` is not allowed in environment `prod`; allowed users: (none); allowed groups: `hpc-prod`",
            "reason: environment.window: job has a time limit of 180 minutes but window `maintenance` of environment `prod` ends at 2026-12-05T16:00:00Z, 120 minutes from now; request `--time=120` or less",
            "reason: approval.justification: environment `prod` requires a justification of at least 10 non-blank characters and no justification was given; pass `--guard-justification=TEXT` or set `HOS_JUSTIFICATION`",
            "deferred: environment.node",
            "set: ",
        ]
    );
}

#[test]
fn allow_carries_effects() {
    let Some(fixture) = Fixture::new() else { return };
    // uid as a Lua 5.1 number with a fraction-free double value.
    let stdout = fixture.run(&format!(
        "{PRINT_DECISION}
show(guard.evaluate(POLICY, {{
  user = 'carol', uid = 1001.0, groups = {{ 'hpc-prod' }}, cluster = 'hpc',
  options = {{ env = 'prod', justification = 'quarterly reporting run' }},
  env = {{ HOS_CORRELATION_ID = 'corr-2' }}, time_limit_minutes = 120,
}}, {SATURDAY_14H}))"
    ));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "outcome: allow permits: true",
            "environment: prod risk: 10",
            "correlation_id: corr-2",
            "deferred: environment.node",
            "set: HOS_CORRELATION_ID=corr-2,HOS_ENV=prod",
        ]
    );
}

#[test]
fn invalid_arguments_return_nil_and_message() {
    let Some(fixture) = Fixture::new() else { return };
    let stdout = fixture.run(
        "print(guard.evaluate(POLICY, { user = 'bob', colour = 'red' }))
print(guard.evaluate(POLICY, { user = 'bob', context = 'step' }))
print(guard.evaluate(POLICY, 'bob'))
print(guard.evaluate(42, {}))
print(guard.evaluate(POLICY, { user = 'bob', uid = 'root' }))
print(guard.evaluate(POLICY, { user = 'bob', env = { HOME = 7 } }))
print(guard.evaluate(POLICY, { user = 'bob' }, 1.5))
print(guard.evaluate(POLICY .. '.missing', { user = 'bob' }))",
    );
    let missing = format!("{}.missing", fixture.policy_path().display());
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "nil\tinvalid request table: deserialize error: unknown field `colour`, expected one of `context`, `cluster`, `job_id`, `step_id`, `node`, `uid`, `user`, `groups`, `options`, `env`, `argv`, `job_name`, `time_limit_minutes`",
            "nil\tinvalid request table: `context` is `step`, but this module only evaluates `controller` requests; remove the field",
            "nil\tinvalid request: expected a table, got string",
            "nil\tinvalid policy path: expected a string, got integer",
            "nil\tinvalid request table: deserialize error: invalid type: string \"root\", expected u32",
            "nil\tinvalid request table: `env` entry `HOME` has a value of type integer; names and values must be strings",
            "nil\tinvalid time: expected whole Unix seconds, got number",
            &format!("nil\tcannot read policy `{missing}`: No such file or directory (os error 2)"),
        ]
    );
}

#[test]
fn environment_values_need_not_be_utf8() {
    let Some(fixture) = Fixture::new() else { return };
    let stdout = fixture.run(
        "local decision, err = guard.evaluate(POLICY, { user = 'bob', env = { NOTE = 'caf\\233', HOS_CORRELATION_ID = 'c-3' } })
print(decision.outcome, decision.correlation_id, err)",
    );
    assert_eq!(stdout, "allow\tc-3\tnil\n");
}

#[test]
fn policy_reloaded_when_file_changes() {
    let Some(fixture) = Fixture::new() else { return };
    let first = fixture.run("local summary = guard.load(POLICY)\nprint(summary.default_environment, table.concat(summary.environments, ','))");
    assert_eq!(first, "dev\tdev,prod\n");

    // One interpreter, three versions of the file: valid, malformed, valid again.
    let script_dir = fixture.dir.path().display().to_string();
    let changed = POLICY.replace("\"default_environment\": \"dev\"", "\"default_environment\": \"prod\"");
    fs::write(fixture.dir.path().join("changed.json"), &changed).unwrap();
    fs::write(fixture.dir.path().join("broken.json"), "{ \"version\": 1, ").unwrap();
    let stdout = fixture.run(&format!(
        "local function replace(source)
  assert(os.execute('cp {script_dir}/' .. source .. ' {script_dir}/new.json && chmod 0644 {script_dir}/new.json && mv {script_dir}/new.json ' .. POLICY) == 0)
end
print(guard.load(POLICY).default_environment)
replace('changed.json')
print(guard.load(POLICY).default_environment)
replace('broken.json')
print(guard.load(POLICY))
print(guard.evaluate(POLICY, {{ user = 'bob' }}))
replace('changed.json')
print(guard.load(POLICY).default_environment)"
    ));
    let path = fixture.policy_path().display().to_string();
    let broken = format!("nil\t{path}:1:16: EOF while parsing a value");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["dev", "prod", broken.as_str(), broken.as_str(), "prod"]);
}

#[test]
fn writable_policy_rejected() {
    let Some(fixture) = Fixture::new() else { return };
    fixture.write_policy(POLICY, 0o666);
    let stdout = fixture.run("print(guard.evaluate(POLICY, { user = 'bob' }))");
    let path = fixture.policy_path().display().to_string();
    assert_eq!(stdout, format!("nil\t{path}: policy file is writable by group or others (mode 0666); run `chmod go-w {path}`\n"));
}

#[test]
fn identity_resolves_uid() {
    let Some(fixture) = Fixture::new() else { return };
    let stdout = fixture.run(
        "local root = guard.identity(0)
local has_root = false
for _, group in ipairs(root.groups) do has_root = has_root or group == 'root' end
print(root.user, has_root)
print(guard.identity(-1))
print(guard.identity(4000000123))",
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "root\ttrue",
            "nil\tinvalid uid: expected a whole number from 0 to 4294967295",
            "nil\tuser id 4000000123 not found in the passwd database of the controller",
        ]
    );
}
