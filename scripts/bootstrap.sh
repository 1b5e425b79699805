#!/usr/bin/env bash
# Prepare this machine to run the project: Debian packages and a virtualenv
# (.venv) with the pinned Python packages. Safe to re-run: it only installs
# what is missing and reinstalls Python packages when requirements.txt changes.
#
#   scripts/bootstrap.sh            # what the main job needs
#   scripts/bootstrap.sh --test     # plus what the test suite needs
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

apt_pkgs=(python3 python3-venv python3-dev gcc make git ca-certificates sqlite3)
if [ "${1:-}" = "--test" ]; then
  # podman + runc + debootstrap: molecule containers; pgloader: benchmark
  # reference; postgresql-15: the throw-away test clusters.
  # cmake + libssl-dev: TimescaleDB Community from source (scripts/build-community).
  # proj-data: PROJ's proj.db, a real third-party SQLite file (tests/integration/test_real_sqlite_file.py).
  # pgbackrest: WAL archiving and point-in-time recovery (tests/integration/test_pitr.py).
  apt_pkgs+=(podman runc debootstrap uidmap pgloader postgresql-15 postgresql-server-dev-15 cmake libssl-dev
             proj-data pgbackrest)
fi

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python packages (requirements.txt)"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -r requirements.txt
  echo "$want" >"$stamp"
fi
echo "bootstrap: ready ($(.venv/bin/ansible --version 2>/dev/null | sed -n 1p))"
