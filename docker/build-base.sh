#!/bin/bash
# Build the Debian 12 base image of the test cluster without an image
# registry: debootstrap a minimal root file system from Debian's mirror with
# every package the cluster needs, then `docker import` it. Installing the
# packages at debootstrap time means `docker build` never needs the network.
#
# Usage: docker/build-base.sh [--force]
# Skips the build when the image exists and was made from the same package
# list and Slurm version, unless --force is given.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

packages=(
    slurmctld slurmd slurm-client munge
    python3 tini logrotate procps iproute2 ca-certificates
    lua5.1
)
# The label lets a later run see whether the image matches this script.
fingerprint="$SLURM_DEB_VERSION ${packages[*]}"

if [[ "${1:-}" != --force ]] \
    && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
    && [[ "$(docker image inspect -f '{{index .Config.Labels "spank-guard.base"}}' "$BASE_IMAGE")" == "$fingerprint" ]]; then
    echo "build-base: $BASE_IMAGE is up to date"
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    echo "build-base: debootstrap not found: installing it with apt-get" >&2
    apt-get update -qq
    apt-get install -y -qq debootstrap >/dev/null
fi

# Use the mirror the host's apt uses, so a site with its own mirror keeps it.
mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | awk '{print $2}' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

rootfs=$(mktemp -d /var/tmp/spank-guard-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
# mktemp makes the directory 0700; package scripts that switch to a system
# user (munge's postinst runs su) must be able to enter the root.
chmod 0755 "$rootfs"

started=$(date +%s)
echo "build-base: debootstrap $DEBIAN_SUITE from $mirror into $rootfs"
debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
    "$DEBIAN_SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    echo "build-base: debootstrap failed; the full log is $rootfs.log" >&2
    exit 1
}
rm -f "$rootfs.log"

installed=$(chroot "$rootfs" dpkg-query -W -f '${Version}' slurmd)
if [[ "$installed" != "$SLURM_DEB_VERSION" ]]; then
    echo "build-base: the mirror installed slurmd $installed, but docker/versions.env pins $SLURM_DEB_VERSION; update SLURM_DEB_VERSION and rebuild the plugin against the same Slurm" >&2
    exit 1
fi

# Keep the image small: package caches and documentation are not needed.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*

tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change "LABEL spank-guard.base=\"$fingerprint\"" \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
echo "build-base: built $BASE_IMAGE (slurmd $installed) in $(( $(date +%s) - started )) s"
