"""playbooks/rollback.yml end to end, every runbook scenario on a migrated database.

The module fixture builds a "migrated host" on the throw-away cluster with the
project's own playbooks: playbooks/database.yml (role quant_database: roles,
extensions, the real schema, the app .env) and playbooks/migrate.yml (role
sqlite_migration) from a generated SQLite sample (module_utils/sample/generator.py).
Each scenario is then run twice (idempotent), and the state it leaves is
checked against the runbook's rollback section:

* corruption: after damaging ohlcv_data and tickers, the restore brings back the
  content of the last regular dump, proven by the backup script's per-table
  fingerprints and by independent content hashes; the second run restores the
  same dump (not the first run's safety backup of the damaged database).
* remigrate: the tables are emptied and migrated again; the content equals the
  first migration's and every row count equals the source's (minus the
  migration's recorded rejects and duplicates).
* The SQLite file also holds two tables outside the mapping, copied by the
  migration into the legacy schema (sqlite_legacy): damaged like the others,
  they come back through corruption (restore verified against the manifest),
  remigrate (emptied and reloaded, not refused) and failed_migration + remigrate
  (the schema is recreated), each time with the source's row counts.
* revert_to_sqlite: the app .env points at SQLite and its database manager;
  PostgreSQL and its data stay; no backup is taken; the second run changes nothing.
* failed_migration: dropped and recreated with the empty schema (the data is in
  the safety backup); remigrate afterwards brings back the migrated content.
* Without rollback_confirm nothing happens, and --check changes nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
from ansible.module_utils.sample.generator import generate
from integration.test_backup import content_hashes
from playbooks_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "pg_backup" / "files" / "quant-pg-backup.py"
# The quant_database role schedules the Apache-edition rollup refresh on the host
# itself (cron): keep the dev host's file as it was.
HOST_FILES = [Path("/etc/cron.d/quant-refresh-aggregates")]
# SQLite tables outside the migration mapping, copied into LEGACY_SCHEMA: name -> (DDL, rows).
LEGACY_SCHEMA = "sqlite_legacy"
LEGACY = {
    "backtest_results": (
        "CREATE TABLE backtest_results (id INTEGER PRIMARY KEY AUTOINCREMENT, strategy TEXT NOT NULL, "
        "total_return REAL, params BLOB, run_at DATETIME)",
        [(None, "momentum_%d" % i, i / 7.0, bytes([i % 256, 0, 255]), "2025-01-%02d 09:00:00" % (i % 28 + 1))
         for i in range(40)]),
    "kelly_history": (  # no key: the same row twice is two rows
        "CREATE TABLE kelly_history (ticker TEXT, fraction DECIMAL(6,4), note TEXT)",
        [("AAPL", 0.25, "a"), ("AAPL", 0.25, "a"), ("005930", 1, None), ("VNM", "n/a", "text in DECIMAL")]),
}
DESTRUCTIVE = ["failed_migration", "corruption", "remigrate"]
# Versioned schema steps the quant_database role applies (one template per step; 0004 and 0005 per edition).
SCHEMA_STEPS = len({p.name[:4] for p in (ROOT / "roles" / "quant_database" / "templates" / "schema").glob("0*.sql.j2")})
pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Host:
    """The migrated database and everything the playbooks need to reach it."""

    def __init__(self, server, base):
        self.server = server
        self.db = "rb_" + uuid.uuid4().hex[:10]
        self.base = base
        self.src = base / "spock_local.db"
        self.env_file = base / "etc" / ".env"
        self.backups = base / "backups"

    def env(self):
        return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PGPASSWORD=self.server.password,
                    ANSIBLE_NOCOLOR="1")

    def play(self, playbook, *args, **extra):
        s = self.server
        extra_vars = {
            # the shared group_vars every role defaults from
            "quant_db_name": self.db, "postgresql_admin_user": s.user, "postgresql_socket_dir": str(s.socket_dir),
            "postgresql_port": s.port, "postgresql_bin_dir": str(s.bindir),
            "quant_database_env_path": str(self.env_file),
            "sqlite_migration_src": str(self.src), "sqlite_migration_rejects_path": str(self.base / "rejects.jsonl"),
            "sqlite_migration_poll_seconds": 1, "sqlite_migration_progress_polls": 2,
            "pg_backup_dir": str(self.backups), "pg_backup_os_user": "root",
            "pg_backup_script_path": str(self.base / "quant-pg-backup"), "pg_backup_python": sys.executable,
            "sqlite_migration_legacy_schema": LEGACY_SCHEMA,
        }
        extra_vars.update(extra)
        return run_playbook(playbook, *args, inventory="inventories/dev", extra_vars=extra_vars,
                            env={"PGPASSWORD": self.server.password})

    def rollback(self, scenario, *args, **extra):
        return self.play("playbooks/rollback.yml", *args, rollback_scenario=scenario, **extra)

    def script(self, *args):
        s = self.server
        out = subprocess.run([sys.executable, str(SCRIPT), "--dir", str(self.backups), "--db", self.db,
                              "--host", str(s.socket_dir), "--port", str(s.port), "--user", s.user,
                              "--bindir", str(s.bindir), *args], env=self.env(), capture_output=True, text=True,
                             check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def contents(self):
        """Row counts and content fingerprints of every data table, public and sqlite_legacy (the manifest's kind)."""
        return self.script("counts")

    def sql(self, statement, args=None):
        conn = self.server.connect(self.db)
        try:
            cur = conn.cursor()
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def hashes(self):
        conn = self.server.connect(self.db)
        try:
            return content_hashes(conn)
        finally:
            conn.close()

    def exists(self):
        conn = self.server.connect()
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.db,))
            return cur.fetchone() is not None
        finally:
            conn.close()

    def dumps(self):
        return sorted(p.name for p in self.backups.glob("*.dump"))

    def manifest(self, name):
        return json.loads((self.backups / (name + ".json")).read_text())


def add_legacy_tables(path):
    """Tables the mapping does not know, as a real platform file has (backtests, Kelly history)."""
    conn = sqlite3.connect(str(path))
    for name, (ddl, rows) in LEGACY.items():
        conn.execute(ddl)
        conn.executemany("INSERT INTO %s VALUES (%s)" % (name, ", ".join("?" * len(rows[0]))), rows)
    conn.commit()
    conn.close()


def legacy_key(name):
    return "%s.%s" % (LEGACY_SCHEMA, name)


def assert_legacy_like_source(host):
    """Every legacy copy holds the source's rows (count), and the content of the first migration."""
    now = host.contents()
    for name, (_ddl, rows) in LEGACY.items():
        assert now["row_counts"][legacy_key(name)] == len(rows), name
        assert host.sql('SELECT count(*) FROM %s."%s"' % (LEGACY_SCHEMA, name)) == [(len(rows),)], name
        assert now["fingerprints"][legacy_key(name)] == host.migrated["fingerprints"][legacy_key(name)], name


def assert_compressed_and_aggregated(h):
    """The Community host really has what only it has: compressed ohlcv_data chunks and three
    continuous aggregates whose content is in the manifest."""
    compressed = h.sql("SELECT count(*) FILTER (WHERE is_compressed), count(*) FROM timescaledb_information.chunks "
                       "WHERE hypertable_name = 'ohlcv_data'")[0]
    assert 0 < compressed[0] <= compressed[1], compressed
    aggregates = [r[0] for r in h.sql("SELECT view_name FROM timescaledb_information.continuous_aggregates "
                                      "ORDER BY 1")]
    assert aggregates == ["ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly"]
    counts = h.contents()["row_counts"]
    assert all(counts[name] > 0 for name in aggregates), counts


def ok(out):
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    return out.stdout


def report_of(stdout):
    """The rollback's closing report (the last debug message), YAML line folding undone."""
    return " ".join(stdout[stdout.rindex("Rollback | Report"):].split())


@pytest.fixture(scope="module", params=["apache", "community"])
def host(request, tmp_path_factory):
    """The migrated host, once per TimescaleDB edition: the host's own PostgreSQL (Apache) and the
    Community tree (scripts/build-community), where the migration leaves compressed chunks and
    continuous aggregates behind, so every scenario runs on them too."""
    server = request.getfixturevalue("pg_server" if request.param == "apache" else "community_server")
    if not server.has_timescaledb:
        pytest.fail("TimescaleDB is not installed for this PostgreSQL (make provision-local)")
    with played_host(server, tmp_path_factory.mktemp("rollback-" + request.param)) as h:
        h.edition = request.param
        generate(str(h.src), scale=0.01)
        add_legacy_tables(h.src)
        ok(h.play("playbooks/database.yml"))
        ok(h.play("playbooks/migrate.yml"))
        if h.edition == "community":
            assert_compressed_and_aggregated(h)
        h.migrated = h.contents()
        assert_legacy_like_source(h)
        h.migrated_hashes = h.hashes()
        assert h.migrated["row_counts"]["ohlcv_data"] > 9000 and h.migrated["row_counts"]["tickers"] > 100
        h.backups.mkdir(mode=0o700)
        h.regular = Path(h.script("backup")["dump"]).name  # the nightly backup
        yield h


@contextmanager
def host_files_kept():
    """Restore the host files the roles rewrite (HOST_FILES) when the block ends."""
    saved = {path: path.read_bytes() if path.exists() else None for path in HOST_FILES}
    try:
        yield
    finally:
        for path, data in saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)


@contextmanager
def played_host(pg_server, base):
    """A Host whose playbooks run against the test cluster; its database is dropped and the host
    files are restored when the block ends."""
    with host_files_kept():
        h = Host(pg_server, base)
        try:
            yield h
        finally:
            conn = pg_server.connect()
            conn.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % h.db)
            conn.close()


def damage(h):
    h.sql("UPDATE ohlcv_data SET close = close * 1.5 WHERE date >= '2025-09-01'")
    h.sql("DELETE FROM ohlcv_data WHERE date < '2025-03-01'")
    h.sql("UPDATE tickers SET name = 'corrupted' WHERE ticker IN (SELECT ticker FROM tickers ORDER BY 1 LIMIT 3)")
    h.sql("DELETE FROM %s.kelly_history WHERE ticker = 'AAPL'" % LEGACY_SCHEMA)
    h.sql("UPDATE %s.backtest_results SET total_return = 0 WHERE id <= 5" % LEGACY_SCHEMA)
    damaged = h.contents()
    for name in LEGACY:
        assert damaged["fingerprints"][legacy_key(name)] != h.migrated["fingerprints"][legacy_key(name)]
    assert damaged["fingerprints"]["ohlcv_data"] != h.migrated["fingerprints"]["ohlcv_data"]
    assert damaged["fingerprints"]["tickers"] != h.migrated["fingerprints"]["tickers"]
    assert damaged["row_counts"]["tickers"] == h.migrated["row_counts"]["tickers"]  # only a fingerprint sees this
    return damaged


def test_nothing_happens_without_confirmation(host):
    before, dumps, env = host.contents(), host.dumps(), host.env_file.read_text()
    for scenario in [*DESTRUCTIVE, "revert_to_sqlite"]:
        out = host.rollback(scenario)  # no terminal: the prompt cannot be answered
        assert out.returncode != 0, scenario
        assert "Not confirmed" in out.stdout and "-e rollback_confirm=yes" in out.stdout, out.stdout[-3000:]
    assert host.contents() == before and host.dumps() == dumps and host.env_file.read_text() == env


def test_check_mode_changes_nothing(host):
    damaged = damage(host)
    dumps = host.dumps()
    for scenario in DESTRUCTIVE:
        ok(host.rollback(scenario, "--check", rollback_confirm="yes"))
        assert host.contents() == damaged, scenario
    assert host.dumps() == dumps  # not even a safety backup


def test_corruption_restores_identical_data_twice(host):
    host.sql("UPDATE ohlcv_data SET close = close + 1 WHERE ticker IN (SELECT ticker FROM tickers LIMIT 5)")
    assert host.contents() != host.migrated  # damaged (also by the previous test)
    session = host.server.connect(host.db)  # an open session is terminated by the rollback
    for _run in (1, 2):
        out = ok(host.rollback("corruption", rollback_confirm="yes"))
        # No pgBackRest stanza backs up this throw-away cluster: nothing offered, the dump restored.
        assert "point-in-time recovery: not offered" in " ".join(out.split()), out[-3000:]
        text = report_of(out)
        assert "restored %s" % (host.backups / host.regular) in text  # the regular dump, never a safety backup
        assert "row counts and content fingerprints match the manifest" in text
        if host.edition == "community":  # TimescaleDB 2.19's all-NULL blocks went through the filter
            assert "all-NULL compressed blocks written as SQL NULL" in text, text
            assert_compressed_and_aggregated(host)
        assert host.contents() == host.migrated  # the validation fingerprints of the dump
        assert host.hashes() == host.migrated_hashes  # independent content hashes agree
        assert_legacy_like_source(host)
    with pytest.raises(psycopg2.OperationalError):
        session.cursor().execute("SELECT 1")
    session.close()
    safety = [d for d in host.dumps() if host.manifest(d)["safety"]]
    assert len(safety) == 2
    # the first safety backup holds the damaged database, the second the restored one
    assert host.manifest(safety[0])["fingerprints"]["ohlcv_data"] != host.migrated["fingerprints"]["ohlcv_data"]
    assert host.manifest(safety[1])["fingerprints"] == host.migrated["fingerprints"]
    assert host.script("latest")["dump"] == str(host.backups / host.regular)


def test_remigrate_reloads_the_source(host):
    damage(host)
    host.sql("DELETE FROM etf_holdings")
    for _run in (1, 2):
        out = host.rollback("remigrate", rollback_confirm="yes")
        text = report_of(ok(out))
        assert "safety backup: %s" % host.backups in text and "truncated (RESTART IDENTITY CASCADE)" in text
        assert "migrated %s again" % host.src in text
        # the legacy copies were emptied and reloaded by the migration (truncate), not refused
        assert "legacy copies emptied and reloaded (SQLite tables outside the mapping): %s" % ", ".join(
            legacy_key(name) for name in LEGACY) in text
        assert host.contents() == host.migrated
        assert_legacy_like_source(host)
        if host.edition == "community":  # reloaded into compressed chunks, compressed and refreshed again
            assert_compressed_and_aggregated(host)
    # every row of the source is accounted for: copied, or recorded as a reject or a duplicate
    source = sqlite3.connect(str(host.src))
    checkpoints = {r[0]: r[1:] for r in host.sql(
        "SELECT table_name, source_rows, copied_rows, rejected_rows, duplicate_rows "
        "FROM quant_meta.migration_checkpoints")}
    counts = host.contents()["row_counts"]
    assert len(checkpoints) == 12 + len(LEGACY)
    for table, (source_rows, copied, rejected, duplicates) in checkpoints.items():
        assert source_rows == source.execute('SELECT count(*) FROM "%s"' % table).fetchone()[0], table
        key = legacy_key(table) if table in LEGACY else table
        assert counts[key] == copied == source_rows - rejected - duplicates, table
    source.close()
    assert counts["ohlcv_data"] > 9000


def test_revert_to_sqlite_points_the_app_at_sqlite_and_keeps_postgresql(host):
    before, dumps = host.contents(), host.dumps()
    assert "POSTGRES_DB=%s" % host.db in host.env_file.read_text()  # rendered by quant_database
    first = ok(host.rollback("revert_to_sqlite", rollback_confirm="yes"))
    assert "rewritten: QUANT_DB_BACKEND=sqlite" in report_of(first)
    assert "intact (quick_check ok, 9263 ohlcv_data rows)" in report_of(first)
    second = ok(host.rollback("revert_to_sqlite", rollback_confirm="yes"))
    assert "changed=0" in second and "already: QUANT_DB_BACKEND=sqlite" in report_of(second)
    env = dict(line.split("=", 1) for line in host.env_file.read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    assert env["QUANT_DB_BACKEND"] == "sqlite" and env["SQLITE_PATH"] == str(host.src)
    assert env["QUANT_DB_MANAGER"] == "modules.db_manager_sqlite.SQLiteDatabaseManager"
    assert env["POSTGRES_DB"] == host.db  # kept for reference
    assert oct(host.env_file.stat().st_mode & 0o777) == "0o600"
    # PostgreSQL stays, untouched, and nothing was backed up (nothing is deleted)
    assert host.exists() and host.contents() == before and host.dumps() == dumps
    # a missing SQLite file is refused and the .env is left alone
    env_text = host.env_file.read_text()
    out = host.rollback("revert_to_sqlite", rollback_confirm="yes", pg_backup_sqlite_path=str(host.base / "nope.db"))
    assert out.returncode != 0 and "nope.db does not exist" in out.stdout, out.stdout[-3000:]
    assert host.env_file.read_text() == env_text


def test_a_run_stopped_before_the_refresh_gets_its_aggregates_next_time(host):
    """Every table done but the rollups never refreshed (the run stopped in between): the next
    migrate.yml writes no rows yet completes the aggregates; the run after that changes nothing."""
    if host.edition == "community":
        pytest.skip("emptying a rollup by hand is the Apache fallback's state (plain materialized views); a "
                    "Community aggregate never refreshed is what failed_migration leaves, and the remigrate "
                    "after it must fill all three (test_failed_migration_recreates_...)")
    # the OHLCV rollups; the application's mv_latest_fx_signals is its own to refresh (app_contract.md)
    rollups = "SELECT matviewname, ispopulated FROM pg_matviews WHERE schemaname = 'public' " \
              "AND matviewname LIKE 'ohlcv\\_%' ORDER BY 1"
    views = [r[0] for r in host.sql(rollups)]
    assert views, "the Apache edition keeps its rollups as materialized views"
    for view in views:
        host.sql('REFRESH MATERIALIZED VIEW public."%s" WITH NO DATA' % view)
    host.sql("DELETE FROM quant_meta.aggregate_refreshes")
    before = host.contents()
    first = ok(host.play("playbooks/migrate.yml"))
    assert all(populated for _name, populated in host.sql(rollups))
    assert host.sql("SELECT count(*) FROM quant_meta.aggregate_refreshes")[0][0] == 1
    assert "changed=0" not in first
    second = ok(host.play("playbooks/migrate.yml"))
    assert "changed=0" in second
    after = host.contents()
    assert {t: after["fingerprints"][t] for t in before["fingerprints"] if t not in views} == \
        {t: before["fingerprints"][t] for t in before["fingerprints"] if t not in views}


def test_failed_migration_recreates_an_empty_schema_then_remigrate_restores(host):
    migrated_rows = sum(host.migrated["row_counts"].values())
    for run in (1, 2):
        text = report_of(ok(host.rollback("failed_migration", rollback_confirm="yes")))
        assert "dropped %s" % host.db in text and "recreated %s" % host.db in text
        safety = host.manifest(host.dumps()[-1])
        assert safety["safety"] is True
        if run == 1:  # the migrated data is kept in the safety backup
            assert safety["fingerprints"] == host.migrated["fingerprints"]
        else:
            assert sum(safety["row_counts"].values()) == 0
        counts = host.contents()["row_counts"]
        # the recreated database has the empty schema; the legacy copies come with the next migration
        assert set(counts) == set(host.migrated["row_counts"]) - {legacy_key(name) for name in LEGACY}
        assert sum(counts.values()) == 0
        assert host.sql("SELECT to_regnamespace(%s)", (LEGACY_SCHEMA,)) == [(None,)]
        assert host.sql("SELECT count(*) FROM quant_meta.schema_steps") == [(SCHEMA_STEPS,)]
        assert host.sql("SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1") == [
            ("factor_scores",), ("ohlcv_data",)]
        assert host.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()") == [
            ("quant_owner",)]
    assert migrated_rows > 0
    # the runbook's "recreate and retry": migrate again
    ok(host.rollback("remigrate", rollback_confirm="yes"))
    assert host.contents() == host.migrated
    assert_legacy_like_source(host)
    if host.edition == "community":  # recreated aggregates, never refreshed before this migration: filled
        assert_compressed_and_aggregated(host)
