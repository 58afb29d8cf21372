# Build, test and demo entry points of spank-guard.
#
#   make demo   start a throwaway two-node Slurm cluster with the plugin and
#               the controller check, run sample jobs (allowed, denied at
#               submission, by the controller and by a node, scrubbed,
#               wrapped in a container) with their audit records, then the
#               evidence report of the prod job and the metrics, and stop
#               it (root)
#   make test   run every test, including the real-cluster scenarios (root)
#   make bench  measure srun wall time with and without the plugin (root)
#
# Each target installs missing Debian packages first (scripts/install-deps.sh).

CARGO ?= cargo

.PHONY: all deps plugin plugin-release test demo bench

all: plugin

deps:
	@scripts/install-deps.sh

# cargo test does not build cdylib targets, so the plugin that the cluster
# tests load is built here.
plugin: deps
	$(CARGO) build -p spank-guard

plugin-release: deps
	$(CARGO) build --release -p spank-guard

# valgrind is installed by deps, so the C ABI test must run under it here
# rather than skip.
test: plugin
	GUARD_REQUIRE_VALGRIND=1 $(CARGO) test --workspace

# The demo's slurmctld loads the Lua module through job_submit.lua.
demo: plugin-release
	$(CARGO) build --release -p spank-guard-lua -p guardctl
	$(CARGO) run --release -p cluster-tests --example demo

bench: plugin-release
	$(CARGO) run --release -p cluster-tests --example bench

include docker/cluster.mk
