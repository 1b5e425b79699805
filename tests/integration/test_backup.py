"""pg_backup end to end against the throw-away cluster: the backup script writes a
dump, checksum and manifest whose row counts and content fingerprints are read
in pg_dump's own snapshot (so they hold under concurrent writes); retention
deletes only project dumps older than the limit and a safety backup prunes
nothing; playbooks/restore.yml brings back identical data after rows were
damaged (timescaledb_pre_restore/post_restore) and fails naming the table when
the restored content differs from the manifest; a corrupt dump, a TimescaleDB
version mismatch and a missing confirmation are refused before anything is
dropped; playbooks/rollback.yml names its scenarios (the scenarios themselves:
test_rollback.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from playbooks_run import run_playbook
from quant_target_ddl import create_target_schema

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "pg_backup" / "files" / "quant-pg-backup.py"
pytestmark = pytest.mark.integration

ROWS = """
INSERT INTO tickers (ticker, region, name, exchange) VALUES ('005930', 'KR', 'Samsung', 'KOSPI'),
  ('AAPL', 'US', 'Apple', 'NASDAQ'), ('VNM', 'VN', 'Vinamilk', 'HOSE');
INSERT INTO stock_details (ticker, region, sector) VALUES ('005930', 'KR', 'Tech'), ('AAPL', 'US', 'Tech');
INSERT INTO ohlcv_data (ticker, region, timeframe, date, open, high, low, close, volume)
  SELECT t, r, 'D', d::date, 1.5, 2.5, 0.5, 2.0, 1000
  FROM (VALUES ('005930', 'KR'), ('AAPL', 'US'), ('VNM', 'VN')) AS x(t, r),
       generate_series('2024-01-01'::date, '2024-12-31'::date, '1 day') AS d;
INSERT INTO exchange_rate_history (currency, rate, timestamp, rate_date) VALUES ('USD', 1380.5, now(), '2025-01-02');
"""


def env(server):
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PGPASSWORD=server.password, ANSIBLE_NOCOLOR="1")


def script(server, db, backup_dir, *args):
    cmd = [sys.executable, str(SCRIPT), "--dir", str(backup_dir), "--db", db, "--host", str(server.socket_dir),
           "--port", str(server.port), "--user", server.user, "--bindir", str(server.bindir), *args]
    return subprocess.run(cmd, env=env(server), capture_output=True, text=True, check=False)


def play(server, db, backup_dir, playbook, **extra):
    extra_vars = {
        "pg_backup_db": db, "pg_backup_dir": str(backup_dir), "pg_backup_login_user": server.user,
        "pg_backup_login_unix_socket": str(server.socket_dir), "pg_backup_port": server.port,
        "pg_backup_bin_dir": str(server.bindir), "pg_backup_os_user": "root", "pg_backup_db_owner": "quant_owner",
        "pg_backup_script_path": str(backup_dir.parent / "quant-pg-backup"),
        "pg_backup_python": sys.executable,
    }
    extra_vars.update(extra)
    return run_playbook(playbook, inventory="inventories/dev", extra_vars=extra_vars,
                        env={"PGPASSWORD": server.password})


def content_hashes(conn):
    """(rows, md5 of the sorted rows) of every table of public and the other data schemas (e.g.
    sqlite_legacy), keyed as the manifests are: computed independently of the backup script."""
    with conn.cursor() as cur:
        cur.execute("SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                    "AND table_schema NOT IN ('information_schema', 'pg_catalog', 'quant_meta') "
                    "AND table_schema NOT LIKE '%timescaledb%' ORDER BY 1, 2")
        tables = cur.fetchall()
        out = {}
        for schema, table in tables:
            cur.execute('SELECT count(*), md5(string_agg(t::text, \',\' ORDER BY t::text)) FROM "%s"."%s" t'
                        % (schema, table))
            out[table if schema == "public" else "%s.%s" % (schema, table)] = cur.fetchone()
    return out


@pytest.fixture
def quant_db(require_timescaledb, pg_db):
    conn = require_timescaledb.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'quant_owner'")
        if not cur.fetchone():
            cur.execute("CREATE ROLE quant_owner NOLOGIN")
    conn.close()
    conn = require_timescaledb.connect(pg_db)
    create_target_schema(conn, hypertable=True)
    with conn.cursor() as cur:
        cur.execute(ROWS)
        cur.execute("ALTER TABLE tickers OWNER TO quant_owner")
    conn.close()
    return pg_db


@pytest.fixture
def backup_dir(tmp_path):
    path = tmp_path / "backups"
    path.mkdir(mode=0o700)
    return path


def test_backup_writes_dump_checksum_and_manifest(pg_server, quant_db, backup_dir):
    out = script(pg_server, quant_db, backup_dir, "backup")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    dump = Path(result["dump"])
    assert dump.parent == backup_dir and dump.name.startswith(quant_db + "-") and dump.suffix == ".dump"
    assert dump.read_bytes()[:5] == b"PGDMP"  # custom format
    assert oct(dump.stat().st_mode & 0o777) == "0o600"
    assert Path(str(dump) + ".sha256").read_text().split() == [result["sha256"], dump.name]
    manifest = json.loads(Path(str(dump) + ".json").read_text())
    assert manifest["database"] == quant_db and manifest["size_bytes"] == dump.stat().st_size
    assert manifest["timescaledb_version"] and manifest["timescaledb_version"][0].isdigit()
    assert manifest["row_counts"]["ohlcv_data"] == 3 * 366 and manifest["row_counts"]["tickers"] == 3
    assert len(manifest["row_counts"]) == 12
    assert manifest["started_at"] <= manifest["finished_at"]
    assert manifest["format"] == 4 and manifest["safety"] is False and manifest["snapshot"]
    # fingerprints of every table, the same the `counts` command computes on the live database
    now = json.loads(script(pg_server, quant_db, backup_dir, "counts").stdout)
    assert manifest["fingerprints"] == now["fingerprints"] and manifest["row_counts"] == now["row_counts"]
    assert len(set(manifest["fingerprints"].values())) == 5  # 4 tables with rows, 8 empty ones share one value


def test_backup_corrupt_restore_round_trip(pg_server, quant_db, backup_dir):
    conn = pg_server.connect(quant_db)
    before = content_hashes(conn)
    assert script(pg_server, quant_db, backup_dir, "backup").returncode == 0
    with conn.cursor() as cur:
        cur.execute("DELETE FROM ohlcv_data WHERE ticker = 'VNM' AND date < '2024-03-01'")
        cur.execute("UPDATE tickers SET name = 'corrupted' WHERE ticker = 'AAPL'")
        cur.execute("DELETE FROM exchange_rate_history")
    assert content_hashes(conn) != before
    # an open session on the database is terminated by the restore
    out = play(pg_server, quant_db, backup_dir, "playbooks/restore.yml", restore_confirm="yes")
    conn.close()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "row counts and content fingerprints match the manifest: 12 tables" in out.stdout
    manifest = json.loads(next(backup_dir.glob("*.dump.json")).read_text())
    assert json.loads(script(pg_server, quant_db, backup_dir, "counts").stdout)["fingerprints"] == \
        manifest["fingerprints"]
    conn = pg_server.connect(quant_db)
    try:
        assert content_hashes(conn) == before
        with conn.cursor() as cur:
            cur.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
            assert [r[0] for r in cur.fetchall()] == ["ohlcv_data"]
            cur.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'ohlcv_data'")
            assert cur.fetchone()[0] >= 12
            cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
            assert cur.fetchone()[0] == "quant_owner"
            cur.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'tickers'")
            assert cur.fetchone()[0] == "quant_owner"
            cur.execute("SHOW timescaledb.restoring")
            assert cur.fetchone()[0] == "off"
    finally:
        conn.close()


def test_refusals_leave_the_database_alone(pg_server, quant_db, backup_dir):
    out = script(pg_server, quant_db, backup_dir, "backup")
    dump = Path(json.loads(out.stdout)["dump"])
    conn = pg_server.connect(quant_db)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM tickers WHERE ticker = 'VNM'")
    before = content_hashes(conn)

    # no confirmation, no terminal: fails saying how to confirm
    out = play(pg_server, quant_db, backup_dir, "playbooks/restore.yml")
    assert out.returncode != 0 and "restore_confirm=yes" in out.stdout, out.stdout[-3000:]

    # manifest from another TimescaleDB version
    manifest_path = Path(str(dump) + ".json")
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps(dict(manifest, timescaledb_version="2.0.0")))
    out = play(pg_server, quant_db, backup_dir, "playbooks/restore.yml", restore_confirm="yes")
    assert out.returncode != 0 and "TimescaleDB version mismatch" in out.stdout, out.stdout[-3000:]
    manifest_path.write_text(json.dumps(manifest))

    # corrupt dump (one byte changed): checksum mismatch
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    out = play(pg_server, quant_db, backup_dir, "playbooks/restore.yml", restore_confirm="yes",
               restore_dump=dump.name)
    assert out.returncode != 0 and "checksum mismatch" in out.stdout, out.stdout[-3000:]
    assert "refusing to use it" in out.stdout
    assert content_hashes(conn) == before  # nothing was dropped
    conn.close()


def test_rollback_requires_a_known_scenario(pg_server, quant_db, backup_dir):
    for extra in ({}, {"rollback_scenario": "oops"}):
        out = play(pg_server, quant_db, backup_dir, "playbooks/rollback.yml", **extra)
        assert out.returncode != 0
        text = out.stdout + out.stderr
        for name in ("failed_migration", "corruption", "remigrate", "revert_to_sqlite"):
            assert name in text, text[-3000:]


def test_rollback_corruption_restores_the_dump_taken_before_the_safety_backup(pg_server, quant_db, backup_dir):
    conn = pg_server.connect(quant_db)
    before = content_hashes(conn)
    assert script(pg_server, quant_db, backup_dir, "backup").returncode == 0
    with conn.cursor() as cur:
        cur.execute("DELETE FROM ohlcv_data WHERE ticker = 'AAPL'")
    conn.close()
    out = play(pg_server, quant_db, backup_dir, "playbooks/rollback.yml", rollback_scenario="corruption",
               rollback_confirm="yes")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "safety backup: " + str(backup_dir) in out.stdout
    assert len(list(backup_dir.glob("*.dump"))) == 2  # the original and the safety backup
    conn = pg_server.connect(quant_db)
    try:
        assert content_hashes(conn) == before
    finally:
        conn.close()


def test_restore_fails_naming_the_table_whose_content_differs(pg_server, quant_db, backup_dir):
    out = script(pg_server, quant_db, backup_dir, "backup")
    manifest_path = Path(json.loads(out.stdout)["manifest"])
    manifest = json.loads(manifest_path.read_text())
    manifest["fingerprints"]["ohlcv_data"] = "0" * 32  # the restored ohlcv_data cannot match this
    manifest_path.write_text(json.dumps(manifest))
    out = play(pg_server, quant_db, backup_dir, "playbooks/restore.yml", restore_confirm="yes")
    assert out.returncode != 0, out.stdout[-3000:]
    assert "RESTORE VERIFICATION FAILED" in out.stdout
    assert "ohlcv_data: content differs" in out.stdout and "tickers" not in out.stdout.split("FAILED")[-1]


LEGACY = """
CREATE SCHEMA sqlite_legacy;
CREATE TABLE sqlite_legacy.backtest_results (id bigint PRIMARY KEY, strategy text, ret double precision, raw bytea);
CREATE TABLE sqlite_legacy.kelly_history (ticker text, fraction numeric, note text);
INSERT INTO sqlite_legacy.backtest_results VALUES (1, 'momentum', 0.125, '\\x00ff'), (2, 'value', -0.5, NULL);
INSERT INTO sqlite_legacy.kelly_history VALUES ('AAPL', 0.25, 'a'), ('AAPL', 0.25, 'a'), ('VNM', 1.5, NULL);
"""


def test_legacy_schema_is_in_the_manifest_and_restored_verified(pg_server, quant_db, backup_dir):
    """The migration's legacy_schema copies (SQLite tables outside the mapping) are backed up,
    restored and verified like the public tables, under their schema-qualified names."""
    conn = pg_server.connect(quant_db)
    with conn.cursor() as cur:
        cur.execute(LEGACY)
    before = content_hashes(conn)
    assert before["sqlite_legacy.kelly_history"][0] == 3
    out = script(pg_server, quant_db, backup_dir, "backup")
    assert out.returncode == 0, out.stderr
    manifest_path = Path(json.loads(out.stdout)["manifest"])
    manifest = json.loads(manifest_path.read_text())
    assert manifest["row_counts"]["sqlite_legacy.backtest_results"] == 2
    assert manifest["row_counts"]["sqlite_legacy.kelly_history"] == 3 and len(manifest["row_counts"]) == 14
    with conn.cursor() as cur:  # damage only the legacy copies: a public-only check would not notice
        cur.execute("UPDATE sqlite_legacy.kelly_history SET fraction = 0.5 WHERE ticker = 'VNM'")
        cur.execute("DELETE FROM sqlite_legacy.backtest_results WHERE id = 2")
    conn.close()
    compared = script(pg_server, quant_db, backup_dir, "compare", str(manifest_path))
    assert compared.returncode == 2
    assert "sqlite_legacy.kelly_history: content differs" in compared.stderr
    assert "sqlite_legacy.backtest_results: 1 rows, manifest says 2" in compared.stderr
    out = play(pg_server, quant_db, backup_dir, "playbooks/restore.yml", restore_confirm="yes")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "row counts and content fingerprints match the manifest: 14 tables" in out.stdout
    conn = pg_server.connect(quant_db)
    try:
        assert content_hashes(conn) == before
    finally:
        conn.close()
    # a wrong legacy fingerprint fails the restore naming the legacy table
    manifest["fingerprints"]["sqlite_legacy.kelly_history"] = "0" * 32
    manifest_path.write_text(json.dumps(manifest))
    out = play(pg_server, quant_db, backup_dir, "playbooks/restore.yml", restore_confirm="yes")
    assert out.returncode != 0 and "RESTORE VERIFICATION FAILED" in out.stdout, out.stdout[-3000:]
    assert "sqlite_legacy.kelly_history: content differs" in out.stdout
    # a format 2 manifest (public tables only) still verifies: the legacy tables are not "extra"
    old = dict(manifest, format=2)
    for key in ("row_counts", "fingerprints"):
        old[key] = {t: v for t, v in manifest[key].items() if "." not in t}
    manifest_path.write_text(json.dumps(old))
    compared = script(pg_server, quant_db, backup_dir, "compare", str(manifest_path))
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["fingerprints_checked"] == 12


def restore_into_new_database(server, dump):
    """pg_restore into a fresh database the TimescaleDB way; returns its name (caller drops it)."""
    name = "r_" + uuid.uuid4().hex[:10]
    conn = server.connect()
    conn.cursor().execute('CREATE DATABASE "%s" OWNER quant_owner' % name)
    conn.close()
    conn = server.connect(name)
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION timescaledb")
    cur.execute("SELECT timescaledb_pre_restore()")
    try:
        out = subprocess.run([str(server.bindir / "pg_restore"), "-h", str(server.socket_dir), "-p", str(server.port),
                              "-U", server.user, "--no-password", "--exit-on-error", "-d", name, str(dump)],
                             env=env(server), capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
    finally:
        cur.execute("SELECT timescaledb_post_restore()")
        conn.close()
    return name


def drop_database(server, name):
    conn = server.connect()
    conn.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    conn.close()


def test_manifest_is_read_in_the_dumps_snapshot_under_concurrent_writes(pg_server, quant_db, backup_dir):
    stop, written = threading.Event(), []

    def writer():
        conn = pg_server.connect(quant_db)
        cur, i = conn.cursor(), 0
        while not stop.is_set():
            cur.execute("INSERT INTO exchange_rate_history (currency, rate, timestamp, rate_date) "
                        "VALUES ('EUR', %s, now(), DATE '2000-01-01' + %s)", (1000 + i, i))
            cur.execute("UPDATE ohlcv_data SET volume = volume + 1 WHERE ticker = 'AAPL' AND date = '2024-06-03'")
            i += 1
        written.append(i)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        out = script(pg_server, quant_db, backup_dir, "backup")
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    manifest = json.loads(Path(result["manifest"]).read_text())
    in_dump = manifest["row_counts"]["exchange_rate_history"]
    assert 1 < in_dump < 1 + written[0]  # writes before and after the snapshot
    restored = restore_into_new_database(pg_server, result["dump"])
    try:
        out = script(pg_server, restored, backup_dir, "compare", result["manifest"])
        assert out.returncode == 0, out.stderr  # counts AND fingerprints of the dump's own snapshot
        assert json.loads(out.stdout)["fingerprints_checked"] == 12
    finally:
        drop_database(pg_server, restored)


def test_retention_deletes_only_project_dumps_older_than_the_limit(pg_server, quant_db, backup_dir):
    now = time.time()
    aged = {"%s-20200101T000000Z.dump" % quant_db: 20, "%s-20200102T000000Z.dump" % quant_db: 15,
            "%s-20200103T000000Z.dump" % quant_db: 13}
    others = ["notes.txt", "other_db-20200101T000000Z.dump", "%s-manual.dump" % quant_db]
    for name, days in aged.items():
        for path in (backup_dir / name, backup_dir / (name + ".sha256"), backup_dir / (name + ".json")):
            path.write_text("{}")
            os.utime(path, (now - days * 86400, now - days * 86400))
    for name in others:
        (backup_dir / name).write_text("keep")
        os.utime(backup_dir / name, (now - 100 * 86400, now - 100 * 86400))

    # a rollback's safety backup never prunes (the rollback may be restoring an old dump)
    out = script(pg_server, quant_db, backup_dir, "--retention-days", "14", "backup", "--safety")
    assert out.returncode == 0, out.stderr
    safety = json.loads(out.stdout)
    assert safety["pruned"] == [] and json.loads(Path(safety["manifest"]).read_text())["safety"] is True
    time.sleep(1.1)  # one backup per second
    out = script(pg_server, quant_db, backup_dir, "--retention-days", "14", "backup")
    assert out.returncode == 0, out.stderr
    gone = [n for n, days in aged.items() if days > 14]
    assert sorted(json.loads(out.stdout)["pruned"]) == sorted(n + ext for n in gone for ext in ("", ".sha256", ".json"))
    left = {p.name for p in backup_dir.iterdir()}
    assert not any(n.startswith(tuple(gone)) for n in left)
    assert set(others) <= left and "%s-20200103T000000Z.dump" % quant_db in left  # 13 days: kept
    assert Path(safety["dump"]).exists() and Path(json.loads(out.stdout)["dump"]).exists()
