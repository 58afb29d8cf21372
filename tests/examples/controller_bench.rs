//! Submission throughput of slurmctld with and without the spank-guard
//! controller hook (`JobSubmitPlugins=lua` with `examples/job_submit.lua`),
//! and with a job_submit.lua that only returns success, which separates the
//! cost of job_submit/lua itself from the cost of spank-guard.
//!
//! Each round submits a burst of `sbatch --hold --wrap=true` jobs as the
//! test user from 4 parallel submitters and times the whole burst. Held
//! jobs never start, so only submission is measured. Rounds alternate
//! between the setups, and the jobs of a round are cancelled (untimed)
//! before the next. Prints a Markdown section for `docs/benchmarks.md`.
//!
//! Needs root, `cargo build --release -p spank-guard -p spank-guard-lua`,
//! and runs with `cargo run --release -p cluster-tests --example controller_bench`.
//! `BENCH_JOBS` sets the burst size (default 1000) and `BENCH_ROUNDS` the
//! rounds per setup (default 3). Cancelled jobs stay in slurmctld for
//! `MinJobAge` (600 s in the test cluster), so jobs times rounds times 3
//! must stay below `MaxJobCount` (10,000 by default).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use cluster_tests::bench::{machine_description, median};
use cluster_tests::{default_plugin_path, demo_policy, Cluster, ALL_DAY, TEST_USERS};

const DEFAULT_JOBS: usize = 1000;
const DEFAULT_ROUNDS: usize = 3;
const SUBMITTERS: usize = 4;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("benchmark failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn count_from_env(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(value) => value.parse::<usize>().ok().filter(|count| *count > 0).ok_or_else(|| format!("{name} must be a positive integer, got `{value}`")),
        Err(_) => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let jobs = count_from_env("BENCH_JOBS", DEFAULT_JOBS)?;
    let rounds = count_from_env("BENCH_ROUNDS", DEFAULT_ROUNDS)?;
    let module = module_path()?;
    let mut cluster = Cluster::start(&default_plugin_path())?;

    let dir = cluster.dir().display().to_string();
    cluster.write_root_file("images/analysis.sif", b"stand-in image\n")?;
    // Readable by root only: sbatch skips its advisory check in both setups.
    let policy = cluster.write_root_file_mode(
        "etc/spank-guard/policy.json",
        demo_policy(&dir, ALL_DAY, ALL_DAY).as_bytes(),
        0o600,
    )?;
    cluster.set_plugstack(&format!("policy={}", policy.display()))?;
    let hook_script = hook_script(&cluster, &module, &policy)?;
    let base_conf = std::fs::read_to_string(cluster.slurm_conf()).map_err(|error| error.to_string())?;

    let mut samples: [Vec<Duration>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Rotate which setup goes first.
        for offset in 0..3 {
            let setup = (round + offset) % 3;
            match setup {
                0 => set_plugin(&cluster, &base_conf, false)?,
                1 => {
                    set_script(&cluster, TRIVIAL_SCRIPT)?;
                    set_plugin(&cluster, &base_conf, true)?;
                }
                _ => {
                    set_script(&cluster, &hook_script)?;
                    set_plugin(&cluster, &base_conf, true)?;
                }
            }
            let elapsed = timed_burst(&cluster, jobs)?;
            if let Some(list) = samples.get_mut(setup) {
                list.push(elapsed);
            }
        }
    }
    let slurm_version = cluster.root(&["sbatch", "--version"]).stdout.trim().to_owned();
    cluster.stop();

    for (name, list) in ["no plugin", "trivial script", "spank_guard"].iter().zip(&samples) {
        let shown: Vec<String> = list.iter().map(|sample| format!("{:.2}", sample.as_secs_f64())).collect();
        eprintln!("{name}: burst times in seconds: {}", shown.join(", "));
    }
    let [mut none, mut trivial, mut hook] = samples;
    let none_median = median(&mut none);
    let trivial_median = median(&mut trivial);
    let hook_median = median(&mut hook);
    let per_job = |total: Duration| total.as_secs_f64() * 1000.0 / jobs as f64;
    println!("| setup | rounds | median burst time | per job |");
    println!("| --- | --- | --- | --- |");
    for (name, median) in [
        ("no job_submit plugin", none_median),
        ("job_submit/lua, script returns success", trivial_median),
        ("job_submit/lua with spank_guard", hook_median),
    ] {
        println!("| {name} | {rounds} | {:.2} s | {:.2} ms |", median.as_secs_f64(), per_job(median));
    }
    println!();
    println!("Median ratio (spank_guard hook / no plugin): {:.3}", hook_median.as_secs_f64() / none_median.as_secs_f64());
    println!("Median ratio (spank_guard hook / trivial script): {:.3}", hook_median.as_secs_f64() / trivial_median.as_secs_f64());
    println!("Bursts of {jobs} jobs from {SUBMITTERS} parallel submitters.");
    println!("Machine: {}, {slurm_version}", machine_description());
    Ok(())
}

/// Returns the Lua module: `$SPANK_GUARD_LUA_MODULE`, else
/// `libspank_guard_lua.so` in this example's profile directory.
fn module_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SPANK_GUARD_LUA_MODULE") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|error| error.to_string())?;
    let path = exe.parent().and_then(Path::parent).map(|profile| profile.join("libspank_guard_lua.so")).unwrap_or_default();
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} not found; build it with `cargo build --release -p spank-guard-lua`", path.display()))
    }
}

/// A job_submit.lua that accepts every job without looking at it.
const TRIVIAL_SCRIPT: &str = "function slurm_job_submit(job_desc, part_list, submit_uid)\n  return slurm.SUCCESS\nend\n\
function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)\n  return slurm.SUCCESS\nend\nreturn slurm.SUCCESS\n";

/// Copies the module and returns `examples/job_submit.lua` with the
/// settings of this cluster.
fn hook_script(cluster: &Cluster, module: &Path, policy: &Path) -> Result<String, String> {
    let module_dir = cluster.path("lib/lua");
    std::fs::create_dir_all(&module_dir).map_err(|error| error.to_string())?;
    std::fs::copy(module, module_dir.join("spank_guard.so")).map_err(|error| format!("cannot copy {}: {error}", module.display()))?;
    let mut script = include_str!("../../examples/job_submit.lua").to_owned();
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
    Ok(script)
}

/// Installs job_submit.lua. job_submit/lua reloads the script only when its
/// mtime, in whole seconds, is later than the last load, so this waits a
/// second first (untimed).
fn set_script(cluster: &Cluster, script: &str) -> Result<(), String> {
    sleep(Duration::from_millis(1100));
    cluster.write_root_file("etc/job_submit.lua", script.as_bytes())?;
    Ok(())
}

/// Switches `JobSubmitPlugins=lua` on or off with `scontrol reconfigure`.
fn set_plugin(cluster: &Cluster, base_conf: &str, hook: bool) -> Result<(), String> {
    let conf = if hook { format!("{base_conf}JobSubmitPlugins=lua\n") } else { base_conf.to_owned() };
    cluster.write_root_file("etc/slurm.conf", conf.as_bytes())?;
    let output = cluster.root(&["scontrol", "reconfigure"]);
    if output.code != 0 {
        return Err(format!("scontrol reconfigure failed\n{output}"));
    }
    let expected = if hook { "lua" } else { "(null)" };
    let config = cluster.root(&["scontrol", "show", "config"]);
    let shown = config.stdout.lines().find_map(|line| line.strip_prefix("JobSubmitPlugins")).map(|rest| rest.trim_start_matches([' ', '=']).trim().to_owned());
    if shown.as_deref() != Some(expected) {
        return Err(format!("JobSubmitPlugins is {shown:?} after reconfigure, expected {expected}"));
    }
    Ok(())
}

/// Submits `jobs` held jobs from [`SUBMITTERS`] threads and returns the wall
/// time of the burst. Cancels the jobs afterwards, untimed.
fn timed_burst(cluster: &Cluster, jobs: usize) -> Result<Duration, String> {
    let user = TEST_USERS[0];
    let start = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SUBMITTERS)
            .map(|submitter| {
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for _ in (submitter..jobs).step_by(SUBMITTERS) {
                        let output = cluster.run_as(&user, &[], &["sbatch", "--hold", "--output=/dev/null", "--wrap=true"]);
                        if output.code != 0 || !output.stdout.starts_with("Submitted batch job ") {
                            failures.push(output.to_string());
                        }
                    }
                    failures
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().unwrap_or_else(|_| vec!["submitter thread panicked".to_owned()])).collect()
    });
    let elapsed = start.elapsed();
    if let Some(first) = failures.first() {
        return Err(format!("{} of {jobs} submissions failed; first:\n{first}", failures.len()));
    }

    cluster.root(&["scancel", &format!("--user={}", user.name)]);
    for _ in 0..300 {
        let queue = cluster.root(&["squeue", "--noheader", "--states=PENDING,RUNNING", "--format=%i", &format!("--user={}", user.name)]);
        if queue.stdout.trim().is_empty() {
            return Ok(elapsed);
        }
        sleep(Duration::from_millis(200));
    }
    Err("cancelled jobs still queued after 60 s".to_owned())
}
