"""timescaledb_tune against the session's real PostgreSQL 15 + TimescaleDB server.

The apply tests change the SHARED session server's postgresql.auto.conf, so the
``restore_auto_conf`` fixture snapshots it and puts back exactly what was there
(ALTER SYSTEM SET old value / RESET for keys we added), then reloads. It does
not use ALTER SYSTEM RESET ALL: the fixture's own port, socket directory and
shared_preload_libraries live in postgresql.auto.conf and must survive. The
server is never restarted here, so the small shared_buffers we write (1GB
machine -> 256MB) never takes effect during the session.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import timescaledb_tune  # library/timescaledb_tune.py
import yaml
from pgcluster import running_cluster, timescaledb_available
from tune_helpers import ModuleFail, write_fake_binary
from tune_helpers import run_module as run_tune

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def run_module(params, check_mode=False):
    return run_tune(timescaledb_tune, params, check_mode)


def auto_conf(server):
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' "
                        "ORDER BY seqno")
            return dict(cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
def restore_auto_conf(require_timescaledb):
    """Put postgresql.auto.conf back the way it was, then reload."""
    server = require_timescaledb
    before = auto_conf(server)
    yield server
    after = auto_conf(server)
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            for name, value in after.items():
                if before.get(name) == value:
                    continue
                ident = '"%s"' % '"."'.join(name.split("."))
                if name in before:
                    cur.execute("ALTER SYSTEM SET %s = %%s" % ident, (before[name],))
                else:
                    cur.execute("ALTER SYSTEM RESET %s" % ident)
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()
    assert auto_conf(server) == before


def small_machine(server, **extra):
    """A 1GB / 2 CPU machine: small values, safe even if someone restarts the server."""
    params = server.params("postgres", memory="1GB", cpus=2, max_connections=100, apply=True)
    params.update(extra)
    return params


def test_reads_pg_version_from_server(require_timescaledb):
    result = run_module(require_timescaledb.params("postgres", memory="8GB", cpus=4, max_connections=100))
    assert result["inputs"]["pg_version"] == "15"
    assert result["settings"]["work_mem"] == "16MB"
    assert result["changed"] is False and result["queries"] == []


def test_apply_then_idempotent(restore_auto_conf):
    server = restore_auto_conf
    first = run_module(small_machine(server, max_background_workers=20))
    assert first["changed"] is True
    assert first["restart_required"] is True  # shared_buffers is a postmaster setting
    assert "shared_buffers" in first["diff"]["after"]
    assert first["diff"]["after"]["shared_buffers"] == "256MB"
    assert any(q.startswith('ALTER SYSTEM SET "shared_buffers" = ') for q in first["queries"])
    assert any('"timescaledb"."max_background_workers"' in q for q in first["queries"])
    written = auto_conf(server)
    assert written["shared_buffers"] == "256MB"
    assert written["timescaledb.max_background_workers"] == "20"
    # only what differed was written: work_mem (4MB for 1GB / 100 conns) already is the default
    assert "work_mem" not in first["diff"]["after"]
    assert {name: written[name] for name in first["diff"]["after"]} == first["diff"]["after"]

    # random_page_cost is reloadable: a new session sees it without a restart
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW random_page_cost")
            assert cur.fetchone()[0] == "1.1"
    finally:
        conn.close()

    second = run_module(small_machine(server, max_background_workers=20))
    assert second["changed"] is False, second["diff"]
    assert second["restart_required"] is False
    assert second["queries"] == []


def test_check_mode_writes_nothing(restore_auto_conf):
    server = restore_auto_conf
    before = auto_conf(server)
    result = run_module(small_machine(server), check_mode=True)
    assert result["changed"] is True
    assert result["restart_required"] is True
    assert result["queries"]
    assert auto_conf(server) == before


def test_overrides_win(restore_auto_conf):
    server = restore_auto_conf
    result = run_module(small_machine(server, overrides={"work_mem": "32MB", "jit": None}))
    assert result["settings"]["work_mem"] == "32MB"
    assert "jit" not in result["settings"]
    written = auto_conf(server)
    assert written["work_mem"] == "32MB"
    assert "jit" not in written


def test_unknown_setting_fails_naming_it(restore_auto_conf):
    server = restore_auto_conf
    before = auto_conf(server)
    with pytest.raises(ModuleFail) as err:
        run_module(small_machine(server, overrides={"notloaded.some_setting": "1"}))
    assert "notloaded.some_setting" in err.value.result["msg"]
    assert auto_conf(server) == before  # nothing half-written


def test_bad_memory_fails_naming_it():
    with pytest.raises(ModuleFail) as err:
        run_module(dict(memory="8 GB", cpus=4, pg_version="15"))
    assert "memory" in err.value.result["msg"] and "'8 GB'" in err.value.result["msg"]


def test_ansible_adhoc_runs_the_real_module():
    """The issue's acceptance example through the real `ansible` CLI from the repo root."""
    env = dict(os.environ, ANSIBLE_CONFIG="ansible.cfg", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_DEPRECATION_WARNINGS="0")
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible"), "localhost", "-m", "timescaledb_tune",
         "-a", "memory=8GB cpus=4 pg_version=15 max_connections=100"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    output = json.loads(proc.stdout)
    result = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    settings = result["settings"]
    assert settings["shared_buffers"] == "2GB"
    assert settings["effective_cache_size"] == "6GB"
    assert settings["maintenance_work_mem"] == "1GB"
    assert settings["work_mem"] == "16MB"
    assert settings["max_worker_processes"] == "23"
    assert settings["max_parallel_workers_per_gather"] == "2"
    assert settings["min_wal_size"] == "512MB"
    assert settings["max_locks_per_transaction"] == "256"
    assert [g["label"] for g in result["groups"]] == ["memory", "parallelism", "WAL", "miscellaneous"]
    assert result["changed"] is False


# --------------------------------------------------------------------------
# One route: the binary source goes through the same apply path
# --------------------------------------------------------------------------

def test_binary_source_applies_like_the_module(restore_auto_conf, tmp_path):
    """source=binary (the stand-in of tests/tune_helpers.py) through ALTER SYSTEM: same settings, same diff."""
    server = restore_auto_conf
    binary = write_fake_binary(tmp_path)
    predicted = run_module(small_machine(server, source="module"), check_mode=True)
    first = run_module(small_machine(server, source="binary", binary=binary))
    assert first["source"] == "binary" and first["changed"] is True
    assert first["settings"] == predicted["settings"] and first["diff"] == predicted["diff"]
    again = run_module(small_machine(server, source="binary", binary=binary))
    assert again["changed"] is False and again["queries"] == []
    assert run_module(small_machine(server, source="module"))["changed"] is False


# --------------------------------------------------------------------------
# The role's apply path (dest = conf.d/60-timescaledb.conf) on a server of its own
# --------------------------------------------------------------------------

def handler_restart_query():
    """The query roles/postgresql's reload handler asks before it notifies the restart."""
    handlers = yaml.safe_load((ROOT / "roles" / "postgresql" / "handlers" / "main.yml").read_text())
    task = next(t for t in handlers if t.get("notify") == "restart postgresql")
    return task["community.postgresql.postgresql_query"]["query"]


@pytest.fixture(scope="module")
def conf_d_server():
    """A throw-away cluster whose configuration includes a conf.d directory, as a Debian cluster does."""
    if not timescaledb_available():
        pytest.fail("TimescaleDB is not installed for PostgreSQL; the test command installs it")
    conf_d = Path(tempfile.mkdtemp(prefix="quant-tune-confd-"))
    conf_d.chmod(0o755)
    try:
        with running_cluster("include_dir = '%s'" % conf_d) as server:
            yield server, conf_d
    finally:
        shutil.rmtree(conf_d, ignore_errors=True)


def reload_and_ask(server):
    """Reload, then what the handler would see: the names waiting for a restart (sorted)."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)  # the postmaster re-reads the files asynchronously
            cur.execute(handler_restart_query())
            return sorted(row[0] for row in cur.fetchall())
    finally:
        conn.close()


def show(server, *names):
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            values = []
            for name in names:
                cur.execute("SELECT current_setting(%s)", (name,))
                values.append(cur.fetchone()[0])
            return values
    finally:
        conn.close()


def test_conf_file_route_restarts_only_for_restart_settings(conf_d_server, tmp_path):
    server, conf_d = conf_d_server
    params = dict(memory="1GB", cpus=2, pg_version="15", max_connections=100, max_background_workers=20,
                  binary=write_fake_binary(tmp_path), dest=str(conf_d / "60-timescaledb.conf"),
                  extra_settings={"timescaledb.telemetry_level": "off"})
    first = run_module(dict(params, source="module"))
    assert first["changed"] is True
    pending = reload_and_ask(server)
    assert "shared_buffers" in pending and "timescaledb.max_background_workers" in pending  # -> restart
    assert show(server, "random_page_cost") == ["1.1"]  # reloadable: live without the restart
    server.restart()
    assert show(server, "shared_buffers", "timescaledb.max_background_workers") == ["256MB", "20"]

    # Same inputs through the binary: only the header line differs, nothing waits for a restart.
    binary = run_module(dict(params, source="binary"))
    assert binary["changed"] is True and reload_and_ask(server) == []
    assert run_module(dict(params, source="binary"))["changed"] is False

    # A reloadable override: written, live after the reload, no restart asked for.
    tuned = run_module(dict(params, source="binary", overrides={"random_page_cost": "1.5"}))
    assert tuned["changed"] is True and reload_and_ask(server) == []
    assert show(server, "random_page_cost") == ["1.5"]


def test_ansible_writes_the_conf_file_with_its_attributes(tmp_path):
    """The real module through `ansible`: file mode, check mode, then no change on the second run."""
    dest = tmp_path / "conf.d" / "60-timescaledb.conf"
    args = "source=auto binary=no-such-tstune memory=1GB cpus=2 pg_version=15 max_connections=100 " \
           "dest=%s mode=0640" % dest
    env = dict(os.environ, ANSIBLE_CONFIG="ansible.cfg", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_DEPRECATION_WARNINGS="0")

    def ansible(*extra):
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible"), "localhost", "-m", "timescaledb_tune",
                               "-a", args, *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]

    assert ansible("--check")["changed"] is True and not dest.exists()
    first = ansible()
    assert first["changed"] is True and first["source"] == "module"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert "shared_buffers = '256MB'\n" in dest.read_text()
    assert ansible()["changed"] is False
