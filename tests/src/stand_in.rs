//! A stand-in for the `apptainer` executable.
//!
//! Apptainer is not packaged for Debian 12, and the tests check the exact
//! command line the plugin builds, not Apptainer itself. The stand-in
//! records its arguments and environment and then runs the wrapped command
//! on the host. No test claims that a real container ran.

/// Returns the shell script of the stand-in. Each call writes
/// `<calls_dir>/<job>.<step>.<task>.argv` and `.env`, NUL-separated.
pub fn script(calls_dir: &str) -> String {
    format!(
        r#"#!/bin/sh
# Stand-in for apptainer written by the spank-guard cluster tests: it records
# its argv and environment, then runs the wrapped command on the host.
record="{calls_dir}/${{SLURM_JOB_ID:-nojob}}.${{SLURM_STEP_ID:-nostep}}.${{SLURM_PROCID:-0}}"
for arg in "$0" "$@"; do printf '%s\0' "$arg"; done > "$record.argv"
env -0 > "$record.env"
if [ "$1" != exec ]; then
    echo "apptainer stand-in: expected 'exec' as the first argument, got '$1'" >&2
    exit 64
fi
shift
while [ $# -gt 0 ]; do
    case "$1" in
        --bind|-B|--pwd|--home|-H|--env|--overlay) shift 2 ;;
        -*) shift ;;
        *) shift; break ;;
    esac
done
exec "$@"
"#
    )
}
