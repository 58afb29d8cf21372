//! Scenario tests of spank-guard on a real two-node Slurm cluster.
//!
//! One cluster serves every scenario; scenarios run one at a time because
//! each rewrites the policy and plugstack.conf. The cluster is stopped
//! after the last scenario, also when scenarios fail.

mod scenarios;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use cluster_tests::{default_plugin_path, Cluster};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // Scenarios share one cluster and rewrite its policy.
    args.test_threads = Some(1);

    let trials_needed = !args.list;
    let cluster = if trials_needed {
        match Cluster::start(&default_plugin_path()) {
            Ok(cluster) => Some(cluster),
            Err(message) => {
                eprintln!("cannot start the test cluster: {message}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let shared = Arc::new(Mutex::new(cluster));

    let trials: Vec<Trial> = scenarios::all()
        .into_iter()
        .map(|(name, scenario)| {
            let shared = Arc::clone(&shared);
            Trial::test(name, move || {
                let mut guard = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(cluster) = guard.as_mut() else {
                    return Err(Failed::from("the cluster is not running"));
                };
                let result = scenario(cluster);
                let idle = cluster.wait_idle();
                result.map_err(Failed::from)?;
                idle.map_err(|error| Failed::from(format!("nodes not idle after the scenario: {error}")))
            })
        })
        .collect();

    let conclusion = libtest_mimic::run(&args, trials);

    if let Some(mut cluster) = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        cluster.stop();
    }
    conclusion.exit_code()
}
