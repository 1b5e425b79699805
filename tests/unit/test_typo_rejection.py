"""The guard rejects a misspelled role variable before any change.

Runs tests/playbooks/check_vars.yml (only the guard of every role, on the
controller, with the dev inventory): no PostgreSQL server is needed.
"""

from pathlib import Path

import pytest
from playbooks_run import ANSIBLE_PLAYBOOK, run_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "playbooks" / "check_vars.yml"

TYPOS = [
    ("postgresql", {"postgresql_listen_adresses": []}, "postgresql_listen_addresses"),
    ("timescaledb", {"timescaledb_tune_memroy": "8GB"}, "timescaledb_tune_memory"),
    ("quant_database", {"quant_database_chunk_intervall": "1 week"}, "quant_database_chunk_interval"),
    ("sqlite_migration", {"sqlite_migration_batch_row": 10}, "sqlite_migration_batch_rows"),
    ("migration_validation", {"migration_validation_benchmark_run": 3}, "migration_validation_benchmark_runs"),
    ("pg_backup", {"pg_backup_retention_day": 3}, "pg_backup_retention_days"),
]


def _run(extra_vars=None):
    return run_playbook(PLAYBOOK, inventory=ROOT / "inventories" / "dev", extra_vars=extra_vars, timeout=300)


@pytest.fixture(scope="module", autouse=True)
def _ansible():
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip("ansible-playbook is not installed next to this Python")


def test_dev_inventory_passes():
    result = _run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0" in result.stdout


def test_exported_facts_and_known_options_pass():
    result = _run({"postgresql_admin_user": "postgres", "timescaledb_edition": "apache",
                   "sqlite_migration_result": {}, "migration_validation_outcome": {},
                   "postgresql_version": 17, "quant_database_refresh_policies": {}})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("role", "extra", "suggestion"), TYPOS, ids=[t[0] for t in TYPOS])
def test_typo_is_rejected_with_a_suggestion(role, extra, suggestion):
    result = _run(extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    typo = next(iter(extra))
    assert "%s: unknown variable %s (did you mean %s?)" % (role, typo, suggestion) in output, output


def test_renamed_variable_names_its_replacement():
    result = _run({"quant_database_locale": "C.UTF-8"})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "quant_database: quant_database_locale was replaced by quant_database_lc_collate" in output, output
