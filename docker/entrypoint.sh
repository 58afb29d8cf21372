#!/bin/bash
# Entrypoint of every test cluster container. The first argument is the
# node's role: slurmctld, slurmd (compute node) or login. Each role starts
# munged with the cluster's shared key, waits for what it depends on, and
# then runs its daemon in the foreground under tini.
set -euo pipefail

readonly SHARED_KEY=/etc/munge-shared/munge.key
readonly STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-120}

log() {
    echo "cluster-entrypoint[$(hostname)]: $*" >&2
}

# wait_for SECONDS DESCRIPTION COMMAND...: run COMMAND every second until it
# succeeds; exit the container when it still fails after SECONDS.
wait_for() {
    local timeout=$1 description=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout} s waiting for ${description}"
            exit 1
        fi
        sleep 1
    done
    log "${description}: ready"
}

# The controller creates the key on the cluster's first start; the other
# nodes wait for it. Writing to a temporary name and renaming means no node
# ever reads a half-written key.
create_munge_key() {
    if [[ ! -s $SHARED_KEY ]]; then
        log "creating the cluster's munge key"
        dd if=/dev/urandom of="$SHARED_KEY.tmp" bs=1024 count=1 status=none
        chmod 0400 "$SHARED_KEY.tmp"
        mv "$SHARED_KEY.tmp" "$SHARED_KEY"
    fi
}

start_munge() {
    wait_for "$STARTUP_TIMEOUT" "munge key $SHARED_KEY" test -s "$SHARED_KEY"
    install -o munge -g munge -m 0400 "$SHARED_KEY" /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    wait_for 30 "munged" munge -n
}

# The images and data roots the test policies name. Every path is owned by
# root and not writable by others, as the policy's require_root_owned needs.
create_test_data() {
    install -d -m 0755 /mnt/hpc-data/images /mnt/hpc-data/dev /mnt/hpc-data/prod
    if [[ ! -f /mnt/hpc-data/images/tool.sif ]]; then
        printf 'test image of the spank-guard cluster, not a real SIF file\n' >/mnt/hpc-data/images/tool.sif
        chmod 0644 /mnt/hpc-data/images/tool.sif
    fi
}

role=${1:-}
case "$role" in
    slurmctld)
        create_munge_key
        create_test_data
        start_munge
        exec /usr/sbin/slurmctld -D
        ;;
    slurmd)
        start_munge
        wait_for "$STARTUP_TIMEOUT" "slurmctld" scontrol ping
        exec /usr/sbin/slurmd -D -N "$(hostname)"
        ;;
    login)
        start_munge
        wait_for "$STARTUP_TIMEOUT" "slurmctld" scontrol ping
        log "login node ready"
        exec sleep infinity
        ;;
    *)
        log "unknown role '${role}': expected slurmctld, slurmd or login"
        exit 64
        ;;
esac
