# Developer shortcuts. The README's two commands (scripts/site.sh and
# scripts/test.sh) need nothing but bash; these targets wrap the same scripts.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export CONTAINERS_CONF := $(CURDIR)/molecule/containers.conf

.PHONY: help deps site check lint unit integration test-faults provision-local images molecule test bench

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

deps:  ## Debian packages + .venv with pinned Python packages (test extras included)
	scripts/bootstrap.sh --test

site:  ## the main job: site.yml on the dev inventory (localhost)
	scripts/site.sh

check:  ## site.yml in check mode with diff
	scripts/site.sh --check --diff

lint:  ## yamllint, ansible-lint (production), ruff, syntax checks
	scripts/lint.sh

unit:  ## pure-logic tests
	$(VENV)/pytest -q tests/unit

provision-local:  ## PostgreSQL 15 + TimescaleDB on this machine via the roles
	$(VENV)/ansible-playbook -i inventories/dev playbooks/provision.yml

integration:  ## tests against throw-away PostgreSQL clusters
	$(VENV)/pytest -q -m integration tests/integration

test-faults:  ## fault suite (hostile input, kill -9/restarts, secrets, load) + summary table; needs provision-local
	scripts/test-faults

images:  ## build (or reuse) the Debian 12/13 systemd images for molecule
	scripts/build-images.sh bookworm trixie

molecule: images  ## every molecule scenario
	STAGES=molecule scripts/test.sh

test:  ## everything (what CI runs)
	scripts/test.sh

bench:  ## migration benchmark: module vs raw COPY vs pgloader
	$(VENV)/python scripts/bench-migrate
