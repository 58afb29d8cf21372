//! Runs `guardctl plugin check` against small shared objects compiled from
//! C at test time, one per way a SPANK plugin can be unloadable, and checks
//! the exact summary or problem lines.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test helpers fail the test on setup errors")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Compiles `source` into `dir/name.so` with the system C compiler.
fn shared_object(dir: &Path, name: &str, source: &str) -> PathBuf {
    let source_path = dir.join(format!("{name}.c"));
    std::fs::write(&source_path, source).unwrap();
    let library = dir.join(format!("{name}.so"));
    let output = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source_path)
        .output()
        .unwrap_or_else(|error| panic!("cannot run cc to build the test plugin: {error}"));
    assert!(output.status.success(), "cc failed: {}", String::from_utf8_lossy(&output.stderr));
    library
}

/// Exports of a loadable plugin built for Slurm 22.05.8 (0x160508).
const GOOD_EXPORTS: &str = r#"
const char plugin_name[] = "spank_guard";
const char plugin_type[] = "spank";
const unsigned int plugin_version = 0x160508;
int slurm_spank_init(void *spank, int argc, char **argv) { return 0; }
int slurm_spank_task_init(void *spank, int argc, char **argv) { return 0; }
"#;

fn check(slurm_version: &str, plugin: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardctl"))
        .args(["plugin", "check", "--slurm-version", slurm_version])
        .arg(plugin)
        .env_clear()
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn plugin_check_accepts_matching_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = shared_object(dir.path(), "good", GOOD_EXPORTS);

    let output = check("22.05.8", &plugin);

    assert_eq!(stderr(&output), "");
    assert_eq!(
        stdout(&output),
        format!(
            "{}: loadable by Slurm 22.05.8: plugin spank_guard, built for Slurm 22.05.8, exports plugin_name, \
             plugin_type, plugin_version and 2 callbacks (slurm_spank_init, slurm_spank_task_init)\n",
            plugin.display()
        )
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn plugin_check_compares_major_minor_only() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = shared_object(dir.path(), "good", GOOD_EXPORTS);

    let output = check("slurm 22.05.11", &plugin);

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains(": loadable by Slurm 22.05.11: "), "{}", stdout(&output));
}

#[test]
fn plugin_check_rejects_other_minor_version() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = shared_object(dir.path(), "good", GOOD_EXPORTS);

    let output = check("23.02.7", &plugin);

    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "guardctl: {}: Slurm 23.02.7 cannot load this plugin:\n  plugin_version is 22.05.8 but Slurm \
             23.02.7 loads only plugins built for 23.02: rebuild the plugin against the slurm/spank.h of \
             Slurm 23.02.7\n",
            plugin.display()
        )
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn plugin_check_rejects_init_fini_and_opt() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("{GOOD_EXPORTS}\nint init(void) {{ return 0; }}\nint fini(void) {{ return 0; }}\nint opt = 1;\n");
    let plugin = shared_object(dir.path(), "leaky", &source);

    let output = check("22.05.8", &plugin);

    let problems: Vec<String> = stderr(&output).lines().skip(1).map(str::to_owned).collect();
    let because = "Slurm calls init and fini of every plugin it loads, and a global named opt replaces \
                   srun's own; keep it out of the exported symbols";
    let mut expected: Vec<String> =
        ["fini", "init", "opt"].iter().map(|name| format!("  exports `{name}`: {because}")).collect();
    let mut actual = problems.clone();
    actual.sort();
    expected.sort();
    assert_eq!(actual, expected);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn plugin_check_rejects_stray_exports() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("{GOOD_EXPORTS}\nint policy_cache_size = 4;\n");
    let plugin = shared_object(dir.path(), "stray", &source);

    let output = check("22.05.8", &plugin);

    assert_eq!(
        stderr(&output),
        format!(
            "guardctl: {}: Slurm 22.05.8 cannot load this plugin:\n  exports `policy_cache_size`: only \
             plugin_name, plugin_type, plugin_version and slurm_spank_* may be exported, because any other \
             global can bind to a symbol of srun or slurmstepd\n",
            plugin.display()
        )
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn plugin_check_rejects_missing_symbols_and_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    let source = "const char plugin_type[] = \"select\";\nint unrelated(void) { return 0; }\n";
    let plugin = shared_object(dir.path(), "select", source);

    let output = check("22.05.8", &plugin);

    let lines: Vec<String> = stderr(&output).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            format!("guardctl: {}: Slurm 22.05.8 cannot load this plugin:", plugin.display()),
            "  plugin_type is `select`, expected `spank`: plugstack.conf loads only SPANK plugins".to_owned(),
            "  exports `unrelated`: only plugin_name, plugin_type, plugin_version and slurm_spank_* may be \
             exported, because any other global can bind to a symbol of srun or slurmstepd"
                .to_owned(),
            "  does not export `plugin_name`, which Slurm's plugin loader requires".to_owned(),
            "  does not export `plugin_version`, which Slurm's plugin loader requires".to_owned(),
            "  exports no slurm_spank_* callback".to_owned(),
        ]
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn plugin_check_rejects_non_elf_file() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("plugin.so");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();

    let output = check("22.05.8", &script);

    let message = stderr(&output);
    let prefix = format!("guardctl: {}: not an ELF shared object: ", script.display());
    assert!(message.starts_with(&prefix), "{message}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn plugin_check_rejects_malformed_version() {
    let output = check("22", Path::new("/nonexistent.so"));

    assert!(
        stderr(&output).contains("invalid Slurm version `22`: expected MAJOR.MINOR[.MICRO], for example 22.05.8"),
        "{}",
        stderr(&output)
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn plugin_check_reports_missing_file() {
    let output = check("22.05.8", Path::new("/nonexistent/spank_guard.so"));

    assert_eq!(
        stderr(&output),
        "guardctl: /nonexistent/spank_guard.so: cannot read plugin: No such file or directory (os error 2)\n"
    );
    assert_eq!(output.status.code(), Some(1));
}
