#!/bin/sh
# Installs the Debian packages that building spank-guard and running its
# throwaway Slurm cluster need, when any of them is missing, and checks
# that a recent enough Rust toolchain is on PATH.
set -eu

# logrotate and chromium serve the cluster tests of audit rotation and of
# the evidence bundle (headless rendering of evidence.html).
PACKAGES="slurmctld slurmd slurm-client munge libslurm-dev libclang-dev build-essential liblua5.1-0-dev lua5.1 valgrind logrotate chromium"
# Keep in sync with rust-version in Cargo.toml.
RUST_MIN_MINOR=85

missing=""
for package in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    case "$status" in
        *" installed") ;;
        *) missing="$missing $package" ;;
    esac
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing Debian packages:$missing" >&2
        echo "help: run this as root, or run: sudo apt-get install$missing" >&2
        exit 1
    fi
    echo "Installing missing Debian packages:$missing"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found on PATH; spank-guard needs Rust 1.$RUST_MIN_MINOR or later" >&2
    echo "help: install it with rustup (https://rustup.rs), then run 'make' again" >&2
    exit 1
fi
rust_minor=$(rustc --version | sed -n 's/^rustc 1\.\([0-9]*\)\..*/\1/p')
if [ -z "$rust_minor" ] || [ "$rust_minor" -lt "$RUST_MIN_MINOR" ]; then
    echo "error: $(rustc --version) is too old; spank-guard needs Rust 1.$RUST_MIN_MINOR or later" >&2
    echo "help: run 'rustup update stable' (Debian's rustc package is too old)" >&2
    exit 1
fi
