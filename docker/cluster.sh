#!/bin/bash
# Drive the dockerised spank-guard test cluster from the host.
#
#   docker/cluster.sh up       build the images (no registry needed) and start
#                              slurmctld, login, c1 and c2; wait until healthy
#   docker/cluster.sh deploy [ANSIBLE-PLAYBOOK ARGS...]
#                              build the plugin and guardctl on the host and
#                              deploy them with ansible/roles/spank_guard
#   docker/cluster.sh playbook [ANSIBLE-PLAYBOOK ARGS...]
#                              deploy what target/release holds, without building
#   docker/cluster.sh test     build, start the cluster when it is not running,
#                              and run docker/cluster-test.sh, whose last line
#                              is "cluster-test: N passed, M failed"
#   docker/cluster.sh down     remove the containers, network and volumes
#   docker/cluster.sh lint     run yamllint and ansible-lint on ansible/
#   docker/cluster.sh ci       test, then down, then repeat the summary line
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

readonly PROJECT=spank-guard-cluster
readonly BUILD_DIR=${CARGO_TARGET_DIR:-$root/target}
readonly VENV=$BUILD_DIR/cluster/venv
readonly HEALTH_TIMEOUT=${CLUSTER_HEALTH_TIMEOUT:-180}
export CLUSTER_IMAGE

log() {
    echo "cluster: $*" >&2
}

# Prints why the cluster cannot run here, or nothing when it can.
engine_problem() {
    if ! command -v docker >/dev/null 2>&1; then
        echo "no docker command in PATH"
    elif ! docker info >/dev/null 2>&1; then
        echo "no Docker engine answers (docker info failed)"
    elif ! compose version >/dev/null 2>&1; then
        echo "neither 'docker compose' nor 'docker-compose' works"
    fi
}

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -p "$PROJECT" -f "$here/docker-compose.yml" "$@"
    elif command -v docker-compose >/dev/null 2>&1; then
        docker-compose -p "$PROJECT" -f "$here/docker-compose.yml" "$@"
    else
        return 127
    fi
}

# wait_healthy SECONDS CONTAINER...: wait until every container reports healthy.
wait_healthy() {
    local timeout=$1
    shift
    local deadline=$((SECONDS + timeout)) container status
    for container in "$@"; do
        while true; do
            status=$(docker inspect -f '{{.State.Health.Status}}' "$container" 2>/dev/null || echo missing)
            [[ $status == healthy ]] && break
            if ((SECONDS >= deadline)); then
                log "timed out after ${timeout} s: $container is $status; its log follows"
                docker logs --tail 30 "$container" >&2 || true
                return 1
            fi
            sleep 1
        done
    done
}

cluster_up() {
    local problem
    problem=$(engine_problem)
    if [[ -n $problem ]]; then
        log "cannot start the cluster: $problem"
        return 1
    fi
    local started=$SECONDS
    "$here/build-base.sh"
    log "building $CLUSTER_IMAGE"
    docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$CLUSTER_IMAGE" "$here" >/dev/null
    log "starting slurmctld, c1, c2 and login"
    compose up -d
    wait_healthy "$HEALTH_TIMEOUT" spank-guard-slurmctld spank-guard-c1 spank-guard-c2 spank-guard-login
    log "cluster healthy after $((SECONDS - started)) s"
}

cluster_down() {
    if [[ -n $(engine_problem) ]]; then
        log "no Docker engine: nothing to remove"
        return 0
    fi
    compose down --volumes --remove-orphans --timeout 10
}

ensure_venv() {
    if [[ ! -x $VENV/bin/ansible-playbook ]] || ! cmp -s "$root/ansible/requirements.txt" "$VENV/requirements.txt"; then
        log "installing Ansible into $VENV (ansible/requirements.txt)"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$root/ansible/requirements.txt"
        cp "$root/ansible/requirements.txt" "$VENV/requirements.txt"
    fi
}

build_plugin() {
    log "building the plugin, guardctl and the Lua module (cargo build --release)"
    (cd "$root" && cargo build --release --quiet -p spank-guard -p guardctl -p spank-guard-lua)
}

# deploy [ANSIBLE-PLAYBOOK ARGS...]: run ansible/site.yml on the cluster.
deploy() {
    ensure_venv
    local slurm_version=${SLURM_DEB_VERSION%%-*}
    (
        cd "$root/ansible"
        ANSIBLE_CONFIG=$root/ansible/ansible.cfg "$VENV/bin/ansible-playbook" \
            -i inventories/docker/hosts.yml site.yml \
            -e "cluster_build_dir=$BUILD_DIR/release" \
            -e "cluster_slurm_version=$slurm_version" "$@"
    )
}

lint() {
    ensure_venv
    (
        cd "$root/ansible"
        "$VENV/bin/yamllint" --strict .
        PATH=$VENV/bin:$PATH "$VENV/bin/ansible-lint" --profile production
    )
}

command=${1:-}
shift || true
case "$command" in
    up) cluster_up ;;
    down) cluster_down ;;
    deploy)
        build_plugin
        deploy "$@"
        ;;
    playbook)
        # deploy without building first; cluster-test.sh builds once.
        deploy "$@"
        ;;
    lint) lint ;;
    test)
        problem=$(engine_problem)
        if [[ -n $problem ]]; then
            echo "cluster-test: skipped: $problem; the dockerised cluster tests did not run"
            exit 0
        fi
        build_plugin
        ensure_venv
        if [[ $(docker inspect -f '{{.State.Health.Status}}' spank-guard-login 2>/dev/null || true) != healthy ]]; then
            cluster_up
        fi
        "$here/cluster-test.sh"
        ;;
    ci)
        # Remove the cluster whatever the result, then repeat the test
        # summary so that it stays the last line of the output for CI.
        output=$(mktemp)
        status=0
        "$0" test | tee "$output" || status=$?
        "$0" down >&2 || status=1
        tail -n 1 "$output"
        rm -f "$output"
        exit "$status"
        ;;
    *)
        echo "usage: $0 up|deploy|test|down|lint|ci" >&2
        exit 64
        ;;
esac
