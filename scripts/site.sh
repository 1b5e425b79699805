#!/usr/bin/env bash
# The main job on this machine: install what Ansible needs, then run site.yml
# against the dev inventory (localhost). Extra arguments go to ansible-playbook,
# e.g. `scripts/site.sh --check` or `scripts/site.sh --tags provision`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
exec ansible-playbook -i inventories/dev site.yml "$@"
