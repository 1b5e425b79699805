"""The prod guard and the controller file's checks (roles/sqlite_migration, tasks/preflight.yml).

Where the synthetic sample is not allowed (quant_environment prod, or anything but
dev/test) and no SQLite file is given, site.yml must fail before any task that
writes: the guard is the first play. The runs use a temporary inventory whose
host connects locally with a Python that does not exist, so a task that reached
the host (facts, a package, a file) would fail instead of changing this machine,
and the assertions on the output tell the guard's failure from that one.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from playbooks_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
NO_FILE = "no SQLite file given for environment prod"


def inventory(tmp_path, environment="prod", **host_vars):
    """A one-host inventory (quant_db) that connects locally with an unusable interpreter."""
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    host = {"ansible_connection": "local", "ansible_python_interpreter": "/nonexistent/python", **host_vars}
    (inv / "hosts.yml").write_text(json.dumps({"all": {"children": {"quant_db": {"hosts": {"dbhost": host}}}}}))
    (inv / "group_vars" / "quant_db.yml").write_text(json.dumps({"quant_environment": environment}))
    return inv


def run(inv, playbook, *args, **extra_vars):
    out = run_playbook(playbook, *args, inventory=inv, extra_vars=extra_vars or None, json_output=True, timeout=300)
    return out.rc, out.document(), out.stdout + out.stderr


def task_results(result):
    """(play name, task name, host result) for every task that ran, in order."""
    return [
        (play["play"]["name"], task["task"]["name"], res)
        for play in result["plays"]
        for task in play["tasks"]
        for res in task["hosts"].values()
    ]


def failure(result):
    failed = [(task, res) for _play, task, res in task_results(result) if res.get("failed")]
    assert len(failed) == 1, failed
    return failed[0]


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_site_in_prod_without_a_file_fails_before_any_change(tmp_path, check):
    rc, result, output = run(inventory(tmp_path), "site.yml", *(["--check"] if check else []))
    assert rc != 0, output
    task, res = failure(result)
    assert task.endswith("Source checks | Require one SQLite source, or an environment that allows the sample"), task
    assert (
        NO_FILE in res["msg"]
        and "sqlite_migration_src" in res["msg"]
        and "sqlite_migration_src_controller" in res["msg"]
    ), res["msg"]
    assert "Nothing was changed" in res["msg"]
    # Only the guard's play ran: no provisioning, no database, no sample, no facts.
    assert [play["play"]["name"] for play in result["plays"]] == ["Check the inputs before any change"]
    assert not any(res.get("changed") for _p, _t, res in task_results(result))
    assert result["stats"]["dbhost"]["changed"] == 0


def test_migrate_playbook_in_prod_without_a_file_fails_before_the_sample(tmp_path):
    rc, result, output = run(inventory(tmp_path), "playbooks/migrate.yml")
    assert rc != 0, output
    _task, res = failure(result)
    assert NO_FILE in res["msg"]
    names = [name for _p, name, _r in task_results(result)]
    assert not any("sample" in name.lower() and "Source checks" not in name for name in names), names
    assert not any("Migrate |" in name for name in names), names


def test_the_prod_example_inventory_cannot_load_the_sample():
    rc, result, output = run(
        ROOT / "inventories" / "prod",
        "playbooks/preflight.yml",
        "--vault-password-file",
        "inventories/prod/vault-password.example",
        "-e",
        "ansible_python_interpreter=/nonexistent/python",
        "--connection",
        "local",
    )
    assert rc != 0, output
    assert NO_FILE in failure(result)[1]["msg"]


@pytest.mark.parametrize(
    ("environment", "extra"),
    [
        ("dev", {}),
        ("test", {}),
        ("prod", {"sqlite_migration_src": "/srv/spock/data/spock_local.db"}),
        ("prod", {"sqlite_migration_allow_sample": True}),
    ],
    ids=["dev-sample", "test-sample", "prod-src", "prod-allowed-sample"],
)
def test_preflight_passes(tmp_path, environment, extra):
    rc, _result, output = run(inventory(tmp_path, environment), "playbooks/preflight.yml", **extra)
    assert rc == 0, output


def test_staging_is_not_allowed_the_sample_by_default(tmp_path):
    rc, result, output = run(inventory(tmp_path, "staging"), "playbooks/preflight.yml")
    assert rc != 0, output
    assert "environment staging" in failure(result)[1]["msg"]


def test_both_sources_are_refused(tmp_path):
    rc, result, output = run(
        inventory(tmp_path),
        "playbooks/preflight.yml",
        sqlite_migration_src="/a.db",
        sqlite_migration_src_controller=str(tmp_path / "b.db"),
    )
    assert rc != 0, output
    assert "both sqlite_migration_src" in failure(result)[1]["msg"]


def _sqlite_file(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize(
    ("sidecar", "content", "expected"),
    [
        (None, None, None),
        ("-wal", b"", None),  # an empty WAL holds nothing
        ("-wal", b"x" * 32, "has committed data still in its -wal file"),
        ("-journal", b"", "has a hot journal"),
    ],
    ids=["quiet", "empty-wal", "wal", "journal"],
)
def test_controller_file_must_be_quiescent(tmp_path, sidecar, content, expected):
    src = _sqlite_file(tmp_path / "spock_local.db")
    if sidecar:
        Path(str(src) + sidecar).write_bytes(content)
    rc, result, output = run(inventory(tmp_path), "playbooks/preflight.yml", sqlite_migration_src_controller=str(src))
    if expected is None:
        assert rc == 0, output
    else:
        assert rc != 0, output
        assert expected in failure(result)[1]["msg"]


def test_missing_controller_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.db"
    rc, result, output = run(
        inventory(tmp_path), "playbooks/preflight.yml", sqlite_migration_src_controller=str(missing)
    )
    assert rc != 0, output
    msg = failure(result)[1]["msg"]
    assert "sqlite_migration_src_controller=%s does not exist on the controller" % missing in msg, msg


def test_copy_needs_room_first(tmp_path):
    """The free space is checked before the copy: nothing is copied, the original is untouched."""
    src = _sqlite_file(tmp_path / "spock_local.db")
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    copy_dir = tmp_path / "copy"
    inv = inventory(tmp_path, "dev", ansible_python_interpreter=sys.executable)
    rc, result, output = run(
        inv,
        "playbooks/migrate.yml",
        sqlite_migration_src_controller=str(src),
        sqlite_migration_copy_dir=str(copy_dir),
        sqlite_migration_copy_reserve_mb=10**12,
    )
    assert rc != 0, output
    task, res = failure(result)
    assert task.endswith("Copy | Require room for the copy in %s" % copy_dir), task
    msg = res["msg"]
    assert "not enough free space" in msg and "sqlite_migration_copy_dir" in msg, msg
    mount = msg.split(" bytes free on ", 1)[1].split(",", 1)[0]
    assert (str(copy_dir) + "/").startswith(mount.rstrip("/") + "/"), msg
    assert list(copy_dir.iterdir()) == []
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before
