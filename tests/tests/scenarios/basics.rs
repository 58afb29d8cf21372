//! The cluster itself, without the plugin.

use cluster_tests::{Cluster, TEST_USERS};

pub const SCENARIOS: [(&str, super::Scenario); 1] = [("cluster::two_nodes_run_steps", two_nodes_run_steps)];

fn two_nodes_run_steps(cluster: &mut Cluster) -> Result<(), String> {
    cluster.set_plugstack("")?;
    let user = TEST_USERS[0];
    let output = cluster.run_as(&user, &[], &["srun", "-N2", "-l", "--label", "sh", "-c", "echo $SLURMD_NODENAME $(id -un)"]);
    let mut lines = output.stdout_lines();
    lines.sort();
    if output.code != 0 || lines != ["0: c1 guardtest", "1: c2 guardtest"] {
        return Err(format!("expected both nodes to run the step as guardtest\n{output}"));
    }
    Ok(())
}
