#!/bin/bash
# Tests of spank-guard on the dockerised cluster, run by `make cluster-test`
# (docker/cluster.sh test) once the cluster is healthy. Every job is
# submitted from the login container as an unprivileged user. Each test
# deploys with ansible/site.yml as `make cluster-deploy` does, but with the
# plugin and guardctl that docker/cluster.sh test built once beforehand.
# The last line is "cluster-test: N passed, M failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
readonly BUILD_DIR=${CARGO_TARGET_DIR:-$here/../target}
readonly IMAGE=/mnt/hpc-data/images/tool.sif
readonly POLICY=/etc/slurm/spank-guard/policy.json
readonly PLUGIN_DIR=/usr/lib/x86_64-linux-gnu/slurm-wlm
readonly DROPIN=/etc/slurm/plugstack.conf.d/50-spank-guard.conf
readonly AUDIT=/var/log/spank-guard/audit.jsonl
readonly LUA_MODULE_DIR=/usr/local/lib/lua/5.1
readonly JOB_SUBMIT=/etc/slurm/job_submit.lua
readonly METRICS_SCRIPT=/usr/local/sbin/spank-guard-metrics-export
readonly METRICS_SERVICE=/etc/systemd/system/spank-guard-metrics.service
readonly METRICS_TIMER=/etc/systemd/system/spank-guard-metrics.timer
readonly TEXTFILE_DIR=/var/lib/prometheus/node-exporter
readonly TEXTFILE=$TEXTFILE_DIR/spank_guard.prom
# The maint window of the test policy opened an hour ago and closes 90
# minutes from now. Only the controller checks a job's time limit against it.
readonly WINDOW_END_MINUTE=$(date -u -d '+90 min' '+%Y-%m-%dT%H:%M')
readonly WINDOW_VARS="{\"cluster_maint_window\": {\"start\": \"$(date -u -d '-60 min' +%H:%M)\", \"end\": \"${WINDOW_END_MINUTE#*T}\"}}"
log_dir=$(mktemp -d /tmp/spank-guard-cluster-test.XXXXXX)

passed=0
failed=0

# on NODE COMMAND...: run COMMAND as root in a cluster container.
on() {
    local node=$1
    shift
    docker exec "spank-guard-$node" "$@"
}

# as_user USER COMMAND...: run COMMAND on the login node as USER, in the
# user's home directory, with stderr merged into stdout.
as_user() {
    local user=$1
    shift
    docker exec -w "/home/$user" spank-guard-login runuser -u "$user" -- "$@" 2>&1
}

# expect DESCRIPTION EXPECTED ACTUAL: compare exactly, print both on mismatch.
expect() {
    if [[ $2 == "$3" ]]; then
        return 0
    fi
    printf '  %s\n  expected: %q\n  actual:   %q\n' "$1" "$2" "$3"
    return 1
}

# run_test NAME: run the function NAME and count it.
run_test() {
    local name=$1
    if "$name"; then
        passed=$((passed + 1))
        echo "ok: $name"
    else
        failed=$((failed + 1))
        echo "FAILED: $name"
    fi
}

# deploy LOG [ANSIBLE-PLAYBOOK ARGS...]: run the role, output to LOG.
deploy() {
    local output=$log_dir/$1.log
    shift
    if ! "$here/cluster.sh" playbook -e "$WINDOW_VARS" "$@" >"$output" 2>&1; then
        echo "  ansible-playbook failed; last lines of $output:"
        tail -n 25 "$output" | sed 's/^/    /'
        return 1
    fi
}

# Prints the PLAY RECAP lines of a deployment log, one per host.
recap() {
    sed -n '/^PLAY RECAP/,$p' "$log_dir/$1.log" | grep -E '^[a-z0-9]+ +:' | sed -E 's/ +/ /g'
}

# daemon_pids: the pids of slurmctld and both slurmd, to prove no restart.
daemon_pids() {
    echo "slurmctld $(on slurmctld cat /run/slurmctld.pid)"
    echo "c1 $(on c1 cat /run/slurmd.pid) c2 $(on c2 cat /run/slurmd.pid)"
}

# decision_count NODE ENVIRONMENT OUTCOME: print the number of decision
# records with that environment and outcome in NODE's audit journal, or 0
# when the journal does not exist yet.
decision_count() {
    on "$1" python3 -c '
import json, os, sys
path, environment, outcome = sys.argv[1:]
count = 0
if os.path.exists(path):
    for line in open(path):
        record = json.loads(line)
        if record["event"] == "decision" and record["environment"] == environment and record["outcome"] == outcome:
            count += 1
print(count)
' "$AUDIT" "$2" "$3"
}

# The journals outlive `spank_guard_state=absent`, so a second run of the
# tests on the same cluster starts from these counts instead of zero.
decisions_before_tests=$(for node in c1 c2; do
    echo "$node dev allow $(decision_count "$node" dev allow)"
    echo "$node prod deny $(decision_count "$node" prod deny)"
done)

# decisions_before NODE ENVIRONMENT OUTCOME: the count when the tests began.
decisions_before() {
    awk -v key="$1 $2 $3" '$1 " " $2 " " $3 == key { print $4 }' <<<"$decisions_before_tests"
}

# metrics_files NODE: the metrics exporter's files that exist on NODE.
metrics_files() {
    on "$1" sh -c "ls -d $METRICS_SCRIPT $METRICS_SERVICE $METRICS_TIMER $TEXTFILE 2>/dev/null"
}

# deploy_failing LOG [ANSIBLE-PLAYBOOK ARGS...]: run the role and expect it to fail.
deploy_failing() {
    local output=$log_dir/$1.log
    shift
    if "$here/cluster.sh" playbook -e "$WINDOW_VARS" "$@" >"$output" 2>&1; then
        echo "  ansible-playbook succeeded, expected a failure; see $output"
        return 1
    fi
}

role_rejects_other_slurm_release() {
    deploy_failing other-release -e cluster_slurm_version=23.02.7 || return 1
    local status=0
    expect "hosts that named both versions" 3 \
        "$(grep -cE '"msg": "the node runs Slurm 22\.05\.8 but the plugin in .* was built for Slurm 23\.02\.7; Slurm loads only plugins of its own major\.minor' \
            "$log_dir/other-release.log")" || status=1
    # Every host of the first play failed, so ansible-playbook stops before
    # the controller play.
    expect "failed hosts" "$(printf '%s\n' 'c1 failed=1' 'c2 failed=1' 'login failed=1')" \
        "$(recap other-release | sed -E 's/^([a-z0-9]+) .*(failed=[0-9]+).*/\1 \2/')" || status=1
    return $status
}

role_passes_lint() {
    if ! "$here/cluster.sh" lint >"$log_dir/lint.log" 2>&1; then
        echo "  yamllint or ansible-lint failed; see $log_dir/lint.log"
        tail -n 20 "$log_dir/lint.log" | sed 's/^/    /'
        return 1
    fi
}

role_installs_plugin() {
    deploy first || return 1
    local status=0
    expect "c1 drop-in" \
        "required $PLUGIN_DIR/spank_guard.so policy=$POLICY on_policy_error=deny" \
        "$(on c1 grep -v '^#' "$DROPIN")" || status=1
    local digest
    digest=$(sha256sum "$BUILD_DIR/release/libspank_guard.so" | cut -c1-16)
    expect "login stable plugin name" "spank_guard.so -> spank_guard-$digest.so" \
        "$(on login find "$PLUGIN_DIR" -name spank_guard.so -printf '%f -> %l\n')" || status=1
    expect "audit directory mode" "750 root root" "$(on c2 stat -c '%a %U %G' /var/log/spank-guard)" || status=1
    expect "policy mode" "644 root root" "$(on c2 stat -c '%a %U %G' "$POLICY")" || status=1
    return $status
}

# The containers run tini, not systemd, so the role installs the units
# without enabling them and runs the export script once itself.
role_installs_metrics_exporter() {
    local status=0 node digest
    for node in login c1 c2; do
        expect "$node metrics exporter files" \
            "$(printf '%s\n' "755 root $METRICS_SCRIPT" "644 root $METRICS_SERVICE" "644 root $METRICS_TIMER" "644 root $TEXTFILE")" \
            "$(on "$node" stat -c '%a %U %n' "$METRICS_SCRIPT" "$METRICS_SERVICE" "$METRICS_TIMER" "$TEXTFILE")" || status=1
    done
    expect "c1 service lines" \
        "$(printf '%s\n' "ExecStart=$METRICS_SCRIPT" "ReadWritePaths=$TEXTFILE_DIR")" \
        "$(on c1 grep -E '^(ExecStart|ReadWritePaths)=' "$METRICS_SERVICE")" || status=1
    expect "c1 timer lines" "$(printf '%s\n' 'OnBootSec=1min' 'OnUnitActiveSec=1min' 'WantedBy=timers.target')" \
        "$(on c1 grep -E '^(OnBootSec|OnUnitActiveSec|WantedBy)=' "$METRICS_TIMER")" || status=1
    expect "c1 export command" \
        "exec /usr/local/bin/guardctl metrics export --policy $POLICY --out $TEXTFILE --audit \"\$@\"" \
        "$(on c1 sed -n '/^exec /,/--audit/p' "$METRICS_SCRIPT" | tr -s ' \\\n' ' ' | sed 's/ $//')" || status=1
    expect "hosts that reported the timer not enabled" 3 \
        "$(grep -cF '"msg": "systemd is not the init system here (no /run/systemd/system), so spank-guard-metrics.timer is installed but not enabled; the role wrote /var/lib/prometheus/node-exporter/spank_guard.prom once, and it is refreshed only by the next role run unless the site runs /usr/local/sbin/spank-guard-metrics-export from its own scheduler"' \
            "$log_dir/first.log")" || status=1
    digest=$(on c1 guardctl policy sha256 "$POLICY")
    expect "c1 policy info from the role's export" "spank_guard_policy_info{sha256=\"$digest\",version=\"0.1.0\"} 1" \
        "$(on c1 grep '^spank_guard_policy_info' "$TEXTFILE")" || status=1
    expect "metrics exporter files on slurmctld" "" "$(metrics_files slurmctld)" || status=1
    return $status
}

role_second_run_changes_nothing() {
    deploy second || return 1
    expect "recap of the second run" \
        "$(printf '%s\n' 'c1 : ok=X changed=0' 'c2 : ok=X changed=0' 'login : ok=X changed=0' 'slurmctld : ok=X changed=0')" \
        "$(recap second | sed -E 's/ok=[0-9]+/ok=X/; s/(changed=[0-9]+).*/\1/')"
}

role_installs_controller_check() {
    local status=0 digest
    digest=$(sha256sum "$BUILD_DIR/release/libspank_guard_lua.so" | cut -c1-16)
    expect "slurmctld stable Lua module name" "spank_guard.so -> spank_guard-$digest.so" \
        "$(on slurmctld find "$LUA_MODULE_DIR" -name spank_guard.so -printf '%f -> %l\n')" || status=1
    expect "require on slurmctld" "0.1.0" \
        "$(on slurmctld lua5.1 -e 'io.write(require("spank_guard").version)')" || status=1
    expect "job_submit.lua settings" \
        "$(printf '%s\n' \
            '-- Managed by Ansible (role spank_guard): local changes are overwritten.' \
            "local POLICY = \"$POLICY\"" \
            'local ON_POLICY_ERROR = "deny"' \
            'local CLUSTER = "guardtest"' \
            'local SHOW_CORRELATION_ID = false')" \
        "$(on slurmctld grep -E '^(-- Managed by|local (POLICY|ON_POLICY_ERROR|CLUSTER|SHOW_CORRELATION_ID) =)' "$JOB_SUBMIT")" || status=1
    expect "SPANK plugin files on slurmctld" "" \
        "$(on slurmctld sh -c "ls -d $DROPIN $PLUGIN_DIR/spank_guard* 2>/dev/null")" || status=1
    expect "policy on slurmctld against c1" "$(on c1 guardctl policy sha256 "$POLICY")" \
        "$(on slurmctld guardctl policy sha256 "$POLICY")" || status=1
    return $status
}

# The login check passes (the window is open), and slurmctld rejects the job
# because its time limit runs past the window end, which only it can know.
controller_rejects_job_past_window() {
    local output status correlation_id minutes minutes_left
    minutes_left=$((($(date -u -d "${WINDOW_END_MINUTE}:00Z" +%s) - $(date +%s)) / 60))
    output=$(as_user alice sbatch --guard-env=maint --time=4:00:00 --wrap=hostname)
    status=$?
    expect "exit status" 1 "$status" || { sed 's/^/    /' <<<"$output"; return 1; }
    correlation_id=$(sed -n 's/^sbatch: error: spank-guard: correlation id: \(.\+\)$/\1/p' <<<"$output")
    # The minutes left depend on the second slurmctld evaluated the job.
    minutes=$(sed -n 's/.*, \([0-9]\+\) minutes from now;.*/\1/p' <<<"$output")
    [[ -n $correlation_id && $minutes =~ ^[0-9]+$ ]] && ((minutes == minutes_left || minutes == minutes_left - 1)) \
        || { echo "  no correlation id or unexpected minutes left:"; sed 's/^/    /' <<<"$output"; return 1; }
    local status=0
    expect "sbatch output" \
        "$(printf '%s\n' \
            "sbatch: error: spank-guard: denied: environment.window: job has a time limit of 240 minutes but window \`maint\` of environment \`maint\` ends at $WINDOW_END_MINUTE:00Z, $minutes minutes from now; request \`--time=$minutes\` or less" \
            "sbatch: error: spank-guard: correlation id: $correlation_id" \
            'sbatch: error: Batch job submission failed: Unspecified error')" \
        "$output" || status=1
    expect "slurmctld decision line" \
        "spank-guard: controller decision: outcome=deny correlation_id=$correlation_id user=alice uid=2001 environment=maint rules=environment.window deferred= account=nil partition=nil job_name=wrap" \
        "$(docker logs spank-guard-slurmctld 2>&1 | grep -F "correlation_id=$correlation_id " | sed 's/.*\(spank-guard: controller decision: \)/\1/')" || status=1
    expect "jobs of alice" "" "$(on login squeue -h -u alice)" || status=1
    expect "slurmctld after the rejection" "Slurmctld(primary) at slurmctld is UP" \
        "$(on login scontrol ping | grep -o 'Slurmctld(primary) at slurmctld is UP')" || status=1
    expect "maint job within the window" "c1" "$(as_user alice srun -N1 -w c1 --guard-env=maint --time=30 hostname)" || status=1
    return $status
}

srun_spans_both_nodes() {
    expect "srun -N2 hostname" "$(printf '0: c1\n1: c2')" \
        "$(as_user alice srun -N2 -l hostname | sort)"
}

prod_denied_at_submit() {
    local output status
    output=$(as_user alice srun -N2 --guard-env=prod hostname)
    status=$?
    expect "exit status" 1 "$status" || return 1
    expect "srun output" \
        "$(printf '%s\n' \
            'spank-guard: denied: environment.access: user `alice` is not allowed in environment `prod`; allowed users: (none); allowed groups: `hpc-prod`' \
            'spank-guard: correlation id: ID' \
            'srun: error: spank: required plugin spank_guard.so: init_post_opt() failed with rc=-1' \
            'srun: error: Plugin stack post-option processing failed.')" \
        "$(sed -E 's/(correlation id: ).*/\1ID/' <<<"$output")"
}

prod_denied_on_both_nodes() {
    local output status correlation_id
    output=$(as_user bob srun -N2 -l --guard-env=prod hostname)
    status=$?
    expect "exit status" 1 "$status" || return 1
    # Both nodes must print the one correlation id of the job, whatever it is.
    correlation_id=$(sed -n 's/^0: spank-guard: correlation id: \(.\+\)$/\1/p' <<<"$output")
    [[ -n $correlation_id ]] || { echo "  no correlation id from c1:"; sed 's/^/    /' <<<"$output"; return 1; }
    expect "spank-guard lines of both nodes" \
        "$(printf '%s\n' \
            '0: spank-guard: correlation id: '"$correlation_id" \
            '0: spank-guard: denied: environment.node: node `c1` is not allowed for environment `prod`; allowed nodes: `c[3-4]`' \
            '1: spank-guard: correlation id: '"$correlation_id" \
            '1: spank-guard: denied: environment.node: node `c2` is not allowed for environment `prod`; allowed nodes: `c[3-4]`')" \
        "$(grep -E '^[01]: spank-guard: ' <<<"$output" | sort)"
}

wrapped_job_on_both_nodes() {
    local output
    output=$(as_user alice srun -N2 -l --guard-image="$IMAGE" --guard-bind=/mnt/hpc-data/dev:/data:ro \
        printenv SLURM_JOB_ID HOS_CORRELATION_ID)
    # Task 0 prints the argv line, the job id and the correlation id; task 1
    # must print the same three lines.
    local job_id correlation_id
    job_id=$(sed -n '2s/^0: //p' <<<"$(grep '^0: ' <<<"$output")")
    correlation_id=$(sed -n '3s/^0: //p' <<<"$(grep '^0: ' <<<"$output")")
    local argv="apptainer stand-in: exec --containall --cleanenv --bind /mnt/hpc-data/dev:/data:ro $IMAGE printenv SLURM_JOB_ID HOS_CORRELATION_ID"
    expect "wrapped job output" \
        "$(printf '%s\n' "0: $argv" "0: $job_id" "0: $correlation_id" "1: $argv" "1: $job_id" "1: $correlation_id")" \
        "$(sort -s -k1,1 <<<"$output")" || return 1
    [[ $job_id =~ ^[0-9]+$ && -n $correlation_id ]] || { echo "  no job id or correlation id: $output"; return 1; }
    echo "$job_id $correlation_id" >"$log_dir/wrapped-job"
}

audit_records_share_correlation_id() {
    local job_id correlation_id status=0 node
    read -r job_id correlation_id <"$log_dir/wrapped-job" 2>/dev/null || { echo "  no wrapped job ran"; return 1; }
    for node in c1 c2; do
        local digest
        digest=$(on "$node" guardctl policy sha256 "$POLICY")
        expect "$node decision record" \
            "decision allow $node dev $correlation_id $IMAGE $digest" \
            "$(on "$node" python3 -c '
import json, sys
for line in open(sys.argv[1]):
    record = json.loads(line)
    if record["event"] == "decision" and record["job_id"] == int(sys.argv[2]):
        print(record["event"], record["outcome"], record["node"], record["environment"],
              record["correlation_id"], record["effects"]["container"]["image"], record["policy_sha256"])
' "$AUDIT" "$job_id")" || status=1
    done
    return $status
}

# Runs the script as the timer would, after the jobs of the tests above:
# srun_spans_both_nodes and wrapped_job_on_both_nodes each ran one dev step
# on c1 and c2, and prod_denied_on_both_nodes one denied prod step.
metrics_count_jobs() {
    local status=0 node dev_allow prod_deny
    for node in c1 c2; do
        on "$node" "$METRICS_SCRIPT" || { echo "  $METRICS_SCRIPT failed on $node"; status=1; continue; }
        dev_allow=$(($(decisions_before "$node" dev allow) + 2))
        prod_deny=$(($(decisions_before "$node" prod deny) + 1))
        expect "$node dev allow counter" "spank_guard_decisions_total{environment=\"dev\",outcome=\"allow\"} $dev_allow" \
            "$(on "$node" grep -F 'spank_guard_decisions_total{environment="dev",outcome="allow"}' "$TEXTFILE")" || status=1
        expect "$node prod deny counter" "spank_guard_decisions_total{environment=\"prod\",outcome=\"deny\"} $prod_deny" \
            "$(on "$node" grep -F 'spank_guard_decisions_total{environment="prod",outcome="deny"}' "$TEXTFILE")" || status=1
        expect "$node temporary files left" "" "$(on "$node" find "$TEXTFILE_DIR" -name '*.tmp.*')" || status=1
    done
    return $status
}

policy_same_on_every_node() {
    local login c1 c2
    login=$(on login guardctl policy sha256 "$POLICY")
    c1=$(on c1 guardctl policy sha256 "$POLICY")
    c2=$(on c2 guardctl policy sha256 "$POLICY")
    expect "policy sha256 on c1 and c2 against login ($login)" "$login $login" "$c1 $c2"
}

changed_policy_applies_without_restart() {
    local before_pids before_digest
    before_pids=$(daemon_pids)
    before_digest=$(on c1 guardctl policy sha256 "$POLICY")
    deploy changed -e '{"cluster_prod_nodes": ["c[1-2]"]}' || return 1
    local status=0
    expect "daemon pids after the policy change" "$before_pids" "$(daemon_pids)" || status=1
    [[ $(on c1 guardctl policy sha256 "$POLICY") != "$before_digest" ]] || { echo "  policy sha256 unchanged"; status=1; }
    expect "prod job of bob after the change" "$(printf '0: c1\n1: c2')" \
        "$(as_user bob srun -N2 -l --guard-env=prod hostname | sort)" || status=1
    return $status
}

# A new build must land under a new name while the old file stays as it is,
# so a job step that has the old plugin mapped keeps a consistent file.
# Bytes appended after the ELF data make a different but loadable build.
new_plugin_switches_link() {
    local old_target old_inode new_build
    old_target=$(on c1 readlink "$PLUGIN_DIR/spank_guard.so")
    old_inode=$(on c1 stat -c %i "$PLUGIN_DIR/$old_target")
    new_build=$log_dir/new-build/libspank_guard.so
    mkdir -p "$(dirname "$new_build")"
    cp "$BUILD_DIR/release/libspank_guard.so" "$new_build"
    printf 'spank-guard cluster test build\n' >>"$new_build"
    # Keep the changed policy of the previous test, so only the plugin differs.
    deploy new-plugin -e "spank_guard_plugin_src=$new_build" -e '{"cluster_prod_nodes": ["c[1-2]"]}' || return 1

    local status=0 digest
    digest=$(sha256sum "$new_build" | cut -c1-16)
    expect "c1 stable plugin name" "spank_guard-$digest.so" "$(on c1 readlink "$PLUGIN_DIR/spank_guard.so")" || status=1
    expect "inode of the previous plugin file" "$old_inode" "$(on c1 stat -c %i "$PLUGIN_DIR/$old_target")" || status=1
    expect "job with the new plugin" "$(printf '0: c1\n1: c2')" "$(as_user alice srun -N2 -l hostname | sort)" || status=1
    return $status
}

invalid_policy_never_lands() {
    local before
    before=$(on c1 guardctl policy sha256 "$POLICY")
    deploy_failing invalid-policy -e '{"cluster_prod_nodes": ["c[4-"]}' || return 1
    local status=0
    grep -qF 'failed to validate' "$log_dir/invalid-policy.log" \
        || { echo "  no validation failure in $log_dir/invalid-policy.log"; status=1; }
    grep -qF 'environments.prod.nodes[0]' "$log_dir/invalid-policy.log" \
        || { echo "  guardctl check did not name environments.prod.nodes[0]"; status=1; }
    expect "policy on c1 after the failed deployment" "$before" "$(on c1 guardctl policy sha256 "$POLICY")" || status=1
    expect "prod job of bob with the previous policy" "$(printf '0: c1\n1: c2')" \
        "$(as_user bob srun -N2 -l --guard-env=prod hostname | sort)" || status=1
    return $status
}

# Keeps the policy of the previous tests, so only the exporter changes.
metrics_disabled_removes_exporter() {
    local status=0 node
    deploy metrics-off -e spank_guard_metrics_enabled=false -e '{"cluster_prod_nodes": ["c[1-2]"]}' || return 1
    for node in login c1 c2; do
        expect "$node metrics exporter files when disabled" "" "$(metrics_files "$node")" || status=1
        expect "$node textfile directory when disabled" "$TEXTFILE_DIR" "$(on "$node" ls -d "$TEXTFILE_DIR")" || status=1
    done
    # Enable it again, so that the removal test below has an exporter to remove.
    deploy metrics-on -e '{"cluster_prod_nodes": ["c[1-2]"]}' || return 1
    # ls sorts the names it prints.
    expect "c1 metrics exporter files when enabled again" \
        "$(printf '%s\n' "$METRICS_SERVICE" "$METRICS_TIMER" "$METRICS_SCRIPT" "$TEXTFILE")" \
        "$(metrics_files c1)" || status=1
    return $status
}

# The role refuses to remove the policy while slurmctld runs the role's
# job_submit.lua, because that script would then deny every job. So the
# test puts back a script of the site's own first.
absent_leaves_clean_cluster() {
    local status=0 node
    deploy_failing absent-refused -e spank_guard_state=absent || return 1
    grep -qF 'slurmctld runs JobSubmitPlugins=lua with the role' "$log_dir/absent-refused.log" \
        || { echo "  absent did not name the active job_submit.lua; see $log_dir/absent-refused.log"; status=1; }
    docker exec -i spank-guard-slurmctld sh -c "cat >$JOB_SUBMIT" <"$here/job_submit-accept.lua" || return 1
    deploy absent -e spank_guard_state=absent || return 1
    expect "slurmctld spank-guard files" "$JOB_SUBMIT" \
        "$(on slurmctld sh -c "ls -d $JOB_SUBMIT $LUA_MODULE_DIR/spank_guard* /etc/slurm/spank-guard /usr/local/bin/guardctl 2>/dev/null")" \
        || status=1
    for node in login c1 c2; do
        expect "$node spank-guard files" "" \
            "$(on "$node" sh -c "ls -d $DROPIN $PLUGIN_DIR/spank_guard* /etc/slurm/spank-guard /usr/local/bin/guardctl /etc/logrotate.d/spank-guard 2>/dev/null")" \
            || status=1
        expect "$node metrics exporter files" "" "$(metrics_files "$node")" || status=1
        expect "$node textfile directory" "$TEXTFILE_DIR" "$(on "$node" ls -d "$TEXTFILE_DIR")" || status=1
    done
    expect "job after removal" "$(printf '0: c1\n1: c2')" "$(as_user alice srun -N2 -l hostname | sort)" || status=1
    expect "--guard-env after removal" "srun: unrecognized option '--guard-env=prod'" \
        "$(as_user alice srun -N2 --guard-env=prod hostname | head -n1)" || status=1
    return $status
}

no_node_drained() {
    expect "node states" "$(printf 'c1 idle\nc2 idle')" "$(on login sinfo -h -N -o '%N %t' | sort)"
}

echo "cluster-test: logs in $log_dir"
for test_name in \
    role_passes_lint \
    role_rejects_other_slurm_release \
    role_installs_plugin \
    role_installs_metrics_exporter \
    role_second_run_changes_nothing \
    role_installs_controller_check \
    controller_rejects_job_past_window \
    srun_spans_both_nodes \
    prod_denied_at_submit \
    prod_denied_on_both_nodes \
    wrapped_job_on_both_nodes \
    audit_records_share_correlation_id \
    metrics_count_jobs \
    policy_same_on_every_node \
    changed_policy_applies_without_restart \
    new_plugin_switches_link \
    invalid_policy_never_lands \
    metrics_disabled_removes_exporter \
    absent_leaves_clean_cluster \
    no_node_drained; do
    run_test "$test_name"
done
echo "cluster-test: $passed passed, $failed failed"
((failed == 0))
