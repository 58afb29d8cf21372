//! Every scenario, by name. Each returns `Err` with the command output that
//! failed its check.

mod approvals;
mod audit_chain;
mod basics;
mod break_glass;
mod containers;
mod environment_variables;
mod environments;
mod evidence;
mod explain;
mod jobs;
mod metrics;
mod policy_errors;
mod replay;
mod support;

use cluster_tests::Cluster;

/// A scenario runs on the shared cluster and reports the first failed check.
pub type Scenario = fn(&mut Cluster) -> Result<(), String>;

/// Returns every scenario with its test name.
pub fn all() -> Vec<(String, Scenario)> {
    let mut list: Vec<(&str, Scenario)> = Vec::new();
    list.extend(basics::SCENARIOS);
    list.extend(environments::SCENARIOS);
    list.extend(approvals::SCENARIOS);
    list.extend(break_glass::SCENARIOS);
    list.extend(containers::SCENARIOS);
    list.extend(environment_variables::SCENARIOS);
    list.extend(policy_errors::SCENARIOS);
    list.extend(audit_chain::SCENARIOS);
    list.extend(replay::SCENARIOS);
    list.extend(evidence::SCENARIOS);
    list.extend(metrics::SCENARIOS);
    list.extend(explain::SCENARIOS);
    // Last: its final scenario checks that the nodes are still idle.
    list.extend(jobs::SCENARIOS);
    list.into_iter().map(|(name, scenario)| (name.to_owned(), scenario)).collect()
}
