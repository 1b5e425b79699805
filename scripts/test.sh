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
#
# Any subset of the stages, in this order, passes on a fresh machine: a stage
# whose prerequisite is not in STAGES runs it first when what it makes is
# missing (every stage needs bootstrap's .venv; integration and faults need
# provision's PostgreSQL 15 + TimescaleDB). Each test makes the state it checks
# (throw-away clusters, its own sample, its own dumps; the faults stage's
# secrets tests run site.yml and backup.yml themselves).
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
  # install them with this project's own roles, as a user would. The Community
  # edition's tests start clusters from a tree beside it (built once per machine).
  ansible-playbook -i inventories/dev playbooks/provision.yml || return
  scripts/build-community
}
# The ten slowest tests are printed: the suite has a time budget (README, Tests).
stage_integration() { pytest -q -p no:cacheprovider --durations=10 -m integration tests/integration; }
stage_faults() { scripts/test-faults; }
# run_stage calls a stage inside `if !`, where bash ignores set -e: a stage of several
# commands says `|| return` after each, or only its last command would count.
stage_molecule() {
  scripts/build-images.sh bookworm trixie || return
  local s start failed=() took=()
  for s in $scenarios; do
    echo "--- molecule scenario $s"
    start=$SECONDS
    molecule test -s "$s" || failed+=("$s")
    took+=("$s $((SECONDS - start))s")
  done
  echo "molecule scenarios: ${took[*]}"
  [ ${#failed[@]} -eq 0 ] || { echo "molecule scenarios failed: ${failed[*]}"; return 1; }
}

# What a later stage needs from an earlier one, and how to tell it is done here.
declare -A needs=([lint]="bootstrap" [unit]="bootstrap" [provision]="bootstrap" [integration]="bootstrap provision"
                  [faults]="bootstrap provision" [molecule]="bootstrap")
have_bootstrap() { [ -x .venv/bin/pytest ] && [ -x .venv/bin/ansible-playbook ] && [ -x /usr/lib/postgresql/15/bin/initdb ]; }
have_provision() {
  local lib
  lib="$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir 2>/dev/null)" || return 1
  compgen -G "$lib/timescaledb*.so" >/dev/null && scripts/build-community --print >/dev/null
}

declare -a report=()
declare -A ran=()
total_start=$SECONDS
run_stage() {
  local stage=$1 start=$SECONDS
  echo "=== stage $stage"
  if ! "stage_$stage"; then
    report+=("$stage FAILED after $((SECONDS - start))s")
    printf '%s\n' "${report[@]}"
    echo "test.sh: stage $stage failed"
    exit 1
  fi
  report+=("$stage ok in $((SECONDS - start))s")
  ran[$stage]=1
}
for stage in $stages; do
  for need in ${needs[$stage]:-}; do
    case " $stages " in *" $need "*) continue ;; esac  # listed: it runs in its place
    if [ -z "${ran[$need]:-}" ] && ! "have_$need"; then
      echo "=== $stage needs $need (not in STAGES, not done on this machine): running it first"
      run_stage "$need"
    fi
  done
  run_stage "$stage"
done
echo "=== summary"
printf '%s\n' "${report[@]}"
echo "test.sh: all stages passed in $((SECONDS - total_start))s"
