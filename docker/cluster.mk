# Targets of the dockerised test cluster, included by the top-level
# Makefile. docker/cluster.sh does the work; docker/README.md describes it.

.PHONY: cluster-up cluster-deploy cluster-test cluster-down cluster-lint cluster-ci

# Build the images (no registry needed) and start slurmctld, login, c1, c2.
cluster-up:
	docker/cluster.sh up

# Build the plugin and guardctl and deploy them with the Ansible role.
cluster-deploy: deps
	docker/cluster.sh deploy

# Run the cluster tests, starting the cluster when it is not running.
cluster-test: deps
	docker/cluster.sh test

# Remove the cluster's containers, network and volumes.
cluster-down:
	docker/cluster.sh down

# Run yamllint and ansible-lint (production profile) on ansible/.
cluster-lint:
	docker/cluster.sh lint

# CI: run the cluster tests, then remove the cluster whatever the result;
# the last line of the output is the test summary.
cluster-ci: deps
	docker/cluster.sh ci
