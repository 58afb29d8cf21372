//! `make bench`: wall time of `srun -N1 -n1 true` with spank-guard in
//! enforce mode versus an empty plugstack.conf, on one throwaway cluster.
//!
//! Runs alternate between the two setups (and alternate which one goes
//! first) so that drift of the machine affects both alike. Prints the
//! medians, their ratio and the machine description as a Markdown section
//! for `docs/benchmarks.md`. Set `BENCH_PAIRS` to change the number of
//! runs per setup (default 40).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use cluster_tests::bench::{machine_description, median};
use cluster_tests::{default_plugin_path, demo_policy, Cluster, ALL_DAY, TEST_USERS};

const DEFAULT_PAIRS: usize = 40;
const WARMUP_RUNS: usize = 3;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("benchmark failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let pairs = match std::env::var("BENCH_PAIRS") {
        Ok(value) => value.parse::<usize>().map_err(|_| format!("BENCH_PAIRS must be a positive integer, got `{value}`"))?,
        Err(_) => DEFAULT_PAIRS,
    };
    let plugin = default_plugin_path();
    let mut cluster = Cluster::start(&plugin)?;
    let dir = cluster.dir().display().to_string();
    cluster.write_root_file("images/analysis.sif", b"stand-in image\n")?;
    let policy = cluster.write_root_file("etc/spank-guard/policy.json", demo_policy(&dir, ALL_DAY, ALL_DAY).as_bytes())?;
    let enforce_args = format!("policy={}", policy.display());

    let mut empty = Vec::with_capacity(pairs);
    let mut enforce = Vec::with_capacity(pairs);
    for _ in 0..WARMUP_RUNS {
        timed_srun(&mut cluster, "")?;
        timed_srun(&mut cluster, &enforce_args)?;
    }
    for pair in 0..pairs {
        if pair % 2 == 0 {
            empty.push(timed_srun(&mut cluster, "")?);
            enforce.push(timed_srun(&mut cluster, &enforce_args)?);
        } else {
            enforce.push(timed_srun(&mut cluster, &enforce_args)?);
            empty.push(timed_srun(&mut cluster, "")?);
        }
    }
    let slurm_version = cluster.root(&["srun", "--version"]).stdout.trim().to_owned();
    cluster.stop();

    let empty_median = median(&mut empty);
    let enforce_median = median(&mut enforce);
    let ratio = enforce_median.as_secs_f64() / empty_median.as_secs_f64();
    println!("| setup | runs | median wall time |");
    println!("| --- | --- | --- |");
    println!("| empty plugstack.conf | {pairs} | {:.1} ms |", empty_median.as_secs_f64() * 1000.0);
    println!("| spank-guard, enforce mode (`examples/demo/policy.json`) | {pairs} | {:.1} ms |", enforce_median.as_secs_f64() * 1000.0);
    println!();
    println!("Median ratio (enforce / empty): {ratio:.3}");
    println!();
    println!("Plugin: {}", plugin.display());
    println!("Machine: {}, {slurm_version}", machine_description());
    Ok(())
}

/// Sets plugstack.conf to `plugstack_args` (empty: no plugin), waits until
/// both nodes are idle, and times one `srun -N1 -n1 true` as the test user.
fn timed_srun(cluster: &mut Cluster, plugstack_args: &str) -> Result<Duration, String> {
    cluster.set_plugstack(plugstack_args)?;
    cluster.wait_idle()?;
    let start = Instant::now();
    let output = cluster.run_as(&TEST_USERS[0], &[], &["srun", "-N1", "-n1", "-w", "c1", "true"]);
    let elapsed = start.elapsed();
    if output.code != 0 {
        return Err(format!("srun failed\n{output}"));
    }
    Ok(elapsed)
}
