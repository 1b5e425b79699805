#!/usr/bin/env bash
# Run every test of the project, from a fresh Debian 12 machine:
#   bootstrap -> lint -> unit -> provision localhost with our own roles ->
#   integration (throw-away clusters) -> faults (hostile input, kill -9, secrets
#   of the main job on this machine, read load; scripts/test-faults) -> molecule
#   scenarios (podman).
# Each stage prints its duration; the first failing stage stops the run.
#
#   scripts/test.sh                 # everything
#   STAGES="lint unit" scripts/test.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
export CONTAINERS_CONF="$root/molecule/containers.conf"
export PYTHONDONTWRITEBYTECODE=1

stages="${STAGES:-bootstrap lint unit provision integration faults molecule}"
scenarios="${MOLECULE_SCENARIOS:-$(cat molecule/ORDER)}"

stage_bootstrap() { scripts/bootstrap.sh --test; }
stage_lint() { scripts/lint.sh; }
stage_unit() { pytest -q -p no:cacheprovider tests/unit; }
stage_provision() {
  # The integration fixtures need PostgreSQL 15 + TimescaleDB on this machine:
  # install them with this project's own roles, as a user would.
  ansible-playbook -i inventories/dev playbooks/provision.yml
}
stage_integration() { pytest -q -p no:cacheprovider -m integration tests/integration; }
stage_faults() { scripts/test-faults; }
stage_molecule() {
  scripts/build-images.sh bookworm trixie
  for s in $scenarios; do
    echo "--- molecule scenario $s"
    molecule test -s "$s"
  done
}

declare -a report=()
total_start=$SECONDS
for stage in $stages; do
  echo "=== stage $stage"
  start=$SECONDS
  if ! "stage_$stage"; then
    report+=("$stage FAILED after $((SECONDS - start))s")
    printf '%s\n' "${report[@]}"
    echo "test.sh: stage $stage failed"
    exit 1
  fi
  report+=("$stage ok in $((SECONDS - start))s")
done
echo "=== summary"
printf '%s\n' "${report[@]}"
echo "test.sh: all stages passed in $((SECONDS - total_start))s"
