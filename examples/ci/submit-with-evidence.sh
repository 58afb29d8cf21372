#!/bin/sh
# Submits a prod batch job with an approval ticket, waits for it, and writes
# its evidence bundle (evidence.json, evidence.md, evidence.html) for the CI
# build to archive. Runs as the CI user on a login node.
#
# Usage: submit-with-evidence.sh [SBATCH OPTION]... SCRIPT|--wrap=COMMAND
#
# Environment:
#   GUARD_KEY            approver private key file (a CI credential; mode 0600)
#   GUARD_KID            its key id under approvals.keys in the policy
#   GUARD_JUSTIFICATION  why the job runs in prod (default: the CI build name)
#   GUARD_AUDIT          audit files to read, space-separated, each node's
#                        journal readable by the CI user
#                        (default /var/log/spank-guard/audit.jsonl)
#   EVIDENCE_DIR         where the bundle goes (default ./evidence)
#   EVIDENCE_TIMEOUT     seconds to wait for the job's last audit record (default 60)
#   GUARDCTL             guardctl to run (default guardctl on PATH)
#   HOS_CORRELATION_ID   id to give the job (default ci-<random UUID>)
#
# Exit status: the job's (sbatch --wait), or 1 when the ticket, the
# submission or the evidence failed.
set -eu

: "${GUARD_KEY:?set GUARD_KEY to the approver private key file}"
: "${GUARD_KID:?set GUARD_KID to the key id of GUARD_KEY in the policy}"
GUARDCTL=${GUARDCTL:-guardctl}
GUARD_AUDIT=${GUARD_AUDIT:-/var/log/spank-guard/audit.jsonl}
EVIDENCE_DIR=${EVIDENCE_DIR:-./evidence}
EVIDENCE_TIMEOUT=${EVIDENCE_TIMEOUT:-60}
GUARD_JUSTIFICATION=${GUARD_JUSTIFICATION:-CI build ${JOB_NAME:-manual} ${BUILD_NUMBER:-0}}

if [ $# -eq 0 ]; then
    echo "submit-with-evidence: missing the batch script or --wrap=COMMAND" >&2
    exit 1
fi

# The id links the submission, every step on every node and the evidence.
HOS_CORRELATION_ID=${HOS_CORRELATION_ID:-ci-$(cat /proc/sys/kernel/random/uuid)}
export HOS_CORRELATION_ID
user=$(id -un)

ticket=$("$GUARDCTL" ticket issue --key "$GUARD_KEY" --kid "$GUARD_KID" \
    --user "$user" --env prod --ttl 1h --justification "$GUARD_JUSTIFICATION")

job_status=0
job_id=$(sbatch --parsable --wait --guard-env=prod --guard-ticket="$ticket" \
    --guard-justification="$GUARD_JUSTIFICATION" "$@") || job_status=$?
job_id=${job_id%%;*}
if [ -z "$job_id" ]; then
    echo "submit-with-evidence: sbatch submitted no job (exit status $job_status)" >&2
    exit 1
fi
echo "submit-with-evidence: job $job_id ended with status $job_status, correlation id $HOS_CORRELATION_ID"

# slurmstepd writes the batch step's step_end record as the job ends; wait
# for it so the bundle holds the whole job.
# shellcheck disable=SC2086 # GUARD_AUDIT is a list of paths
waited=0
until "$GUARDCTL" audit query --json --correlation-id "$HOS_CORRELATION_ID" --job "$job_id" \
        --event step_end $GUARD_AUDIT | grep -q '"step_id":4294967291'; do
    if [ "$waited" -ge "$EVIDENCE_TIMEOUT" ]; then
        echo "submit-with-evidence: no step_end record of the batch step of job $job_id after ${EVIDENCE_TIMEOUT}s; writing the evidence found so far" >&2
        break
    fi
    sleep 1
    waited=$((waited + 1))
done

# shellcheck disable=SC2086
"$GUARDCTL" evidence --correlation-id "$HOS_CORRELATION_ID" --audit $GUARD_AUDIT --out "$EVIDENCE_DIR"
exit "$job_status"
