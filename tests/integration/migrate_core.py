"""Run the sqlite_migrate core outside Ansible (used by the kill -9 and concurrency tests).

    python migrate_core.py PARAMS.json   -> prints the result as JSON, exit 1 on MigrationError
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402,F401  (wires ansible.module_utils to this repository)
from ansible.module_utils.migrate.runner import MigrationError, run_migration  # noqa: E402


def main():
    params = json.loads(Path(sys.argv[1]).read_text())
    try:
        result = run_migration(params, check_mode=params.pop("_check_mode", False))
    except MigrationError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
