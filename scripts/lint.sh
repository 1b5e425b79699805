#!/usr/bin/env bash
# The lint gate: yamllint, ansible-lint (production profile), ruff, and a
# syntax check of every playbook.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"

echo "--- yamllint"; yamllint --strict .
echo "--- ruff"; ruff check .
echo "--- ansible-lint"; ansible-lint --strict -q
echo "--- syntax-check"
for pb in site.yml playbooks/*.yml; do
  ansible-playbook -i inventories/dev --syntax-check "$pb" >/dev/null
  ansible-playbook -i inventories/prod --vault-password-file inventories/prod/vault-password.example \
    --syntax-check "$pb" >/dev/null
done
echo "lint: clean"
