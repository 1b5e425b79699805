"""sqlite_migrate against a real PostgreSQL: quirks, accounting, dry run, kill -9 + resume,
concurrency, hostile identifiers and bad source files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ansible.module_utils.core.quant_meta import LOCK_KEY
from ansible.module_utils.migrate.runner import MigrationError, run_migration
from ansible.module_utils.sample.generator import generate
from playbooks_run import run_playbook
from quant_target_ddl import create_target_schema, quant_mapping

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "spock_local.db"
    counts = generate(str(path), scale=0.01)
    return str(path), counts


@pytest.fixture
def target(pg_server, pg_db):
    conn = pg_server.connect(pg_db)
    create_target_schema(conn)
    yield conn
    conn.close()


def params_for(pg_server, db, src, **extra):
    out = pg_server.params(db)
    out.update(src=src, mapping=quant_mapping(), on_conflict="skip", batch_rows=2000, max_reject_ratio=0.05,
               verify_source=True)
    out.update(extra)
    return out


def query(conn, sql, args=()):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def scalar(conn, sql, args=()):
    return query(conn, sql, args)[0][0]


def table_digest(conn, table, order):
    return scalar(conn, "SELECT md5(string_agg(t::text, '|' ORDER BY %s)) FROM %s t" % (order, table))


# -- the quant mapping on the spock-shaped sample -------------------------------------------

def test_full_migration_quirks_and_accounting(pg_server, pg_db, target, sample, tmp_path):
    src, counts = sample
    rejects_path = tmp_path / "rejects.jsonl"
    result = run_migration(params_for(pg_server, pg_db, src, rejects_path=str(rejects_path)))
    tables = result["tables"]
    assert list(tables) == list(quant_mapping())  # FK order = mapping order
    for name, res in tables.items():
        # accounting: every source row is copied, rejected or a recorded duplicate
        assert res["copied_rows"] + res["rejected_rows"] + res["duplicate_rows"] == counts[name] == res["source_rows"]
        assert scalar(target, "SELECT count(*) FROM %s" % name) == res["copied_rows"], name
    lite = sqlite3.connect(src)

    # Q1/Q11: NULL regions resolved by lookup; CN 6-digit and HK 4-digit keep CN/HK
    assert scalar(target, "SELECT count(*) FROM ohlcv_data WHERE region IS NULL") == 0
    assert lite.execute("SELECT count(*) FROM ohlcv_data WHERE ticker IN ('600519', '0700') AND region IS NULL"
                        ).fetchone()[0] > 0
    assert {r[0] for r in query(target, "SELECT DISTINCT region FROM ohlcv_data WHERE ticker = '600519'")} == {"CN"}
    assert {r[0] for r in query(target, "SELECT DISTINCT region FROM ohlcv_data WHERE ticker = '0700'")} == {"HK"}
    assert scalar(target, "SELECT region FROM etf_details WHERE ticker = '510300'") == "CN"
    assert scalar(target, "SELECT region FROM etf_details WHERE ticker = '2800'") == "HK"

    # Q9: duplicate keys hidden by NULL region are counted, recorded, first row kept
    assert tables["ohlcv_data"]["duplicate_rows"] == 3
    recorded = [json.loads(line) for line in rejects_path.read_text().splitlines()]
    dups = [r for r in recorded if r["kind"] == "duplicate"]
    assert len(dups) == 3 and all(r["table"] == "ohlcv_data" for r in dups)

    # Q2: orphan stock_details are rejects with a reason (file AND quant_meta), never dropped silently
    orphans = [r for r in recorded if r["table"] == "stock_details"]
    assert len(orphans) == tables["stock_details"]["rejected_rows"] >= 1
    assert "not found in source table tickers" in orphans[0]["reason"]
    assert scalar(target, "SELECT count(*) FROM quant_meta.migration_rejects WHERE table_name = 'stock_details' "
                          "AND kind = 'reject'") == len(orphans)

    # Q4: several fiscal years collected on the same date all survive, each under its fiscal period end,
    # the collection date kept beside it
    assert query(target, "SELECT fiscal_year, date::text FROM ticker_fundamentals WHERE ticker = '005930' "
                         "AND period_type = 'ANNUAL' AND collected_date = '2025-10-15' ORDER BY 1") == [
        (year, "%d-12-31" % year) for year in (2022, 2023, 2024)]
    # Q5: etf_holdings get the ETF's region
    assert query(target, "SELECT DISTINCT region FROM etf_holdings") == [("KR",)]
    # Q6: long codes and >2-decimal expense ratios are kept exactly; 'ASIA' fits
    src_codes = {r[0] for r in lite.execute("SELECT sector_code FROM stock_details WHERE length(sector_code) > 10")}
    assert src_codes and src_codes <= {r[0] for r in query(target, "SELECT sector_code FROM stock_details")}
    src_ratios = dict(lite.execute("SELECT ticker, expense_ratio FROM etf_details"))
    for ticker, ratio in query(target, "SELECT ticker, expense_ratio FROM etf_details"):
        assert ratio == src_ratios[ticker]
    assert scalar(target, "SELECT count(*) FROM global_market_indices WHERE region = 'ASIA'") == 1
    # Q7 + lossless floats: indicator columns are filled and identical to the source
    row = lite.execute("SELECT ticker, date, close, ma20, rsi_14, macd, atr, volume_ratio, created_at FROM ohlcv_data "
                       "WHERE ma200 IS NOT NULL AND region IS NOT NULL ORDER BY rowid LIMIT 1").fetchone()
    got = query(target, "SELECT close, ma20, rsi_14, macd, atr, volume_ratio, created_at AT TIME ZONE 'UTC' "
                        "FROM ohlcv_data WHERE ticker = %s AND date = %s", (row[0], row[1]))[0]
    assert got[:6] == row[2:8]
    # Q8: source timestamps preserved (naive = UTC), not now()
    assert str(got[6]) == row[8]
    ts_src = lite.execute("SELECT created_at FROM tickers WHERE ticker = '005930'").fetchone()[0]
    ts_pg = scalar(target, "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') "
                           "FROM tickers WHERE ticker = '005930'")
    assert ts_pg.rstrip("0").rstrip(".") in ts_src.replace(" ", "T") or ts_src.startswith(ts_pg[:19].replace("T", " "))

    # identity sequences follow the migrated ids
    with target.cursor() as cur:
        cur.execute("INSERT INTO etf_holdings (etf_ticker, stock_ticker, region, weight, as_of_date) "
                    "VALUES ('069500', 'AAPL', 'KR', 1, '2025-10-16') RETURNING id")
        assert cur.fetchone()[0] == 4
    # dropped non-key indexes are back
    assert scalar(target, "SELECT count(*) FROM pg_indexes WHERE tablename = 'ohlcv_data' "
                          "AND indexname = 'idx_ohlcv_region_date'") == 1
    assert scalar(target, "SELECT count(*) FROM quant_meta.migration_dropped_indexes") == 0
    cps = dict(query(target, "SELECT table_name, status FROM quant_meta.migration_checkpoints"))
    assert set(cps.values()) == {"done"} and len(cps) == 12

    # a second run changes nothing (idempotent)
    again = run_migration(params_for(pg_server, pg_db, src, rejects_path=str(rejects_path)))
    assert {t["status"] for t in again["tables"].values()} == {"skipped"}
    assert not again["changed"]


def test_any_reject_fails_after_rejects_are_written(pg_server, pg_db, target, sample, tmp_path):
    src, _counts = sample
    rejects_path = tmp_path / "r.jsonl"
    with pytest.raises(MigrationError, match=r"stock_details: 1 of .* rows rejected") as info:
        run_migration(params_for(pg_server, pg_db, src, max_reject_ratio=0, rejects_path=str(rejects_path),
                                 tables=["tickers", "stock_details"]))
    assert rejects_path.exists() and "stock_details" in rejects_path.read_text()
    assert info.value.result["tables"]["stock_details"]["rejected_rows"] == 1


def test_dry_run_writes_nothing(pg_server, pg_db, target, sample, tmp_path):
    src, counts = sample
    rejects_path = tmp_path / "dry.jsonl"
    result = run_migration(params_for(pg_server, pg_db, src, rejects_path=str(rejects_path), truncate=True),
                           check_mode=True)
    assert result["changed"]
    assert result["tables"]["ohlcv_data"]["copied_rows"] == counts["ohlcv_data"] - 3
    assert result["tables"]["ohlcv_data"]["duplicate_rows"] == 3
    assert result["tables"]["stock_details"]["rejected_rows"] == 1
    assert result["tables"]["stock_details"]["rejects_sample"][0]["column"] == "region"
    assert not rejects_path.exists()
    assert scalar(target, "SELECT to_regnamespace('quant_meta')") is None
    for name in counts:
        assert scalar(target, "SELECT count(*) FROM %s" % name) == 0


# -- kill -9 and resume -------------------------------------------------------------------------

def _start_core(params, tmp_path, name):
    path = tmp_path / ("%s.json" % name)
    path.write_text(json.dumps(params))
    return subprocess.Popen([sys.executable, str(HERE / "migrate_core.py"), str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_table_then_resume_is_exact(pg_server, pg_db, target, sample, tmp_path):
    src, counts = sample
    tables = ["tickers", "ohlcv_data"]
    params = params_for(pg_server, pg_db, src, tables=tables, batch_rows=300)
    proc = _start_core(params, tmp_path, "killed")
    deadline = time.monotonic() + 60
    copied = 0
    while time.monotonic() < deadline:
        rows = []
        if scalar(target, "SELECT to_regclass('quant_meta.migration_checkpoints')"):
            rows = query(target, "SELECT copied_rows FROM quant_meta.migration_checkpoints "
                                 "WHERE table_name = 'ohlcv_data' AND status = 'running'")
        copied = rows[0][0] if rows else 0
        if copied >= 1500:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert copied >= 1500, "the loader did not get far enough before the deadline"
    mid = scalar(target, "SELECT count(*) FROM ohlcv_data")
    assert 0 < mid < counts["ohlcv_data"] - 3
    # without resume an interrupted load is refused, clearly
    with pytest.raises(MigrationError, match=r"interrupted load.*resume: true"):
        run_migration(params_for(pg_server, pg_db, src, tables=tables))
    result = run_migration(params_for(pg_server, pg_db, src, tables=tables, resume=True))
    res = result["tables"]["ohlcv_data"]
    assert res["status"] == "resumed"
    assert res["copied_rows"] + res["rejected_rows"] + res["duplicate_rows"] == counts["ohlcv_data"]
    assert scalar(target, "SELECT count(*) FROM ohlcv_data") == counts["ohlcv_data"] - 3
    # exactly the rows of an uninterrupted load
    conn = pg_server.connect("postgres")
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE "%s_ref"' % pg_db)
    ref = pg_server.connect(pg_db + "_ref")
    try:
        create_target_schema(ref)
        run_migration(params_for(pg_server, pg_db + "_ref", src, tables=tables))
        order = "ticker, region, timeframe, date"
        assert table_digest(target, "ohlcv_data", order) == table_digest(ref, "ohlcv_data", order)
    finally:
        ref.close()
        with conn.cursor() as cur:
            cur.execute('DROP DATABASE "%s_ref" WITH (FORCE)' % pg_db)
        conn.close()


def test_concurrent_run_is_refused(pg_server, pg_db, target, sample):
    src, _counts = sample
    holder = pg_server.connect(pg_db)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        with pytest.raises(MigrationError, match="another sqlite_migrate run is loading this database"):
            run_migration(params_for(pg_server, pg_db, src, tables=["tickers"]))
        with pytest.raises(MigrationError, match="another sqlite_migrate run"):
            run_migration(params_for(pg_server, pg_db, src, tables=["tickers"], lock_timeout=1))
    finally:
        holder.close()
    assert scalar(target, "SELECT count(*) FROM tickers") == 0
    run_migration(params_for(pg_server, pg_db, src, tables=["tickers"]))
    assert scalar(target, "SELECT count(*) FROM tickers") > 0


# -- conflicts with rows already in the target ------------------------------------------------

@pytest.mark.parametrize("mode", ["skip", "update", "error"])
def test_on_conflict_against_existing_rows(pg_server, pg_db, target, tmp_path, mode):
    src = tmp_path / "fx.db"
    lite = sqlite3.connect(src)
    lite.execute("CREATE TABLE exchange_rate_history (id INTEGER PRIMARY KEY, currency TEXT, rate REAL, "
                 "timestamp TEXT, rate_date TEXT, source TEXT, created_at TEXT)")
    lite.executemany("INSERT INTO exchange_rate_history VALUES (?,?,?,?,?,?,?)", [
        (1, "USD_KRW", 1421.5, "2025-10-17 15:30:00", "2025-10-17", "BOK", "2025-10-17 15:31:00"),
        (2, "JPY_KRW", 9.41, "2025-10-17 15:30:00", "2025-10-17", "BOK", "2025-10-17 15:31:00"),
        (3, "USD_KRW", 1422.0, "2025-10-17 16:30:00", "2025-10-17", "BOK", "2025-10-17 16:31:00"),
    ])
    lite.commit()
    with target.cursor() as cur:
        # the key spock's migrations/006 adds when it creates the table (keys must name a real unique key)
        cur.execute("ALTER TABLE exchange_rate_history ADD UNIQUE (currency, rate_date)")
        cur.execute("INSERT INTO exchange_rate_history (id, currency, rate, timestamp, rate_date) "
                    "VALUES (100, 'JPY_KRW', 9.0, now(), '2025-10-17')")
    mapping = {"exchange_rate_history": {"keys": ["currency", "rate_date"]}}
    params = pg_server.params(pg_db)
    params.update(src=str(src), mapping=mapping, on_conflict=mode, max_reject_ratio=1)
    res = run_migration(params)["tables"]["exchange_rate_history"]
    assert res["copied_rows"] + res["rejected_rows"] + res["duplicate_rows"] == 3
    rates = dict(query(target, "SELECT currency, rate FROM exchange_rate_history"))
    if mode == "skip":
        assert (res["copied_rows"], res["duplicate_rows"]) == (1, 2)
        assert rates == {"USD_KRW": 1421.5, "JPY_KRW": 9.0}
    elif mode == "update":
        assert (res["copied_rows"], res["duplicate_rows"]) == (1, 2)
        assert rates == {"USD_KRW": 1422.0, "JPY_KRW": 9.41}
    else:
        assert (res["copied_rows"], res["rejected_rows"]) == (1, 2)
        assert rates == {"USD_KRW": 1421.5, "JPY_KRW": 9.0}


# -- value formats end to end, text and binary COPY --------------------------------------------

ODD_ROWS = [
    # date          ts                           flag    amount         note
    ("2024-10-01", "2025-10-17T10:00:00.123456", 1, 1.5, "plain"),
    ("20241002", "2025-10-17 10:00:00", "yes", "1,234.5", "tab\there"),
    ("2024/10/03", "2025-10-17T19:00:00+09:00", "f", "inf", "back\\slash\nnewline"),
    (1727913600, 1760695200, "t", 1e999, ""),
    ("", "", "", "", "empty strings"),
    ("2024-02-30", "2025-10-17", 0, 1.0, "bad date"),
    ("2024-10-05", "2025-10-17", 2, 1.0, "bad bool"),
    ("2024-10-06", "2025-10-17", 1, "1,23", "bad number"),
    ("2024-10-07", "2025-10-17", 1, 1.0, b"bad \xff utf8"),
    ("2024-10-08", "2025-10-17", 1, 1.0, "nul\x00char"),
]


@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_value_formats_and_rejects(pg_server, pg_db, tmp_path, copy_format):
    src = tmp_path / "odd.db"
    lite = sqlite3.connect(src)
    lite.execute("CREATE TABLE odd (d TEXT, ts TEXT, flag BOOLEAN, amount REAL, note TEXT)")
    lite.executemany("INSERT INTO odd VALUES (?,?,?,?,?)", ODD_ROWS)
    lite.commit()
    conn = pg_server.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE odd (d date, ts timestamptz, flag boolean, amount double precision, note text)")
    params = pg_server.params(pg_db)
    params.update(src=str(src), max_reject_ratio=1, copy_format=copy_format, rejects_path=str(tmp_path / "r.jsonl"))
    res = run_migration(params)["tables"]["odd"]
    assert (res["copied_rows"], res["rejected_rows"]) == (5, 5)
    rows = query(conn, "SELECT d::text, ts AT TIME ZONE 'UTC', flag, amount, note FROM odd ORDER BY note")
    by_note = {r[4]: r for r in rows}
    assert by_note["plain"][0] == "2024-10-01" and str(by_note["plain"][1]) == "2025-10-17 10:00:00.123456"
    assert by_note["tab\there"][:4][0] == "2024-10-02" and by_note["tab\there"][3] == 1234.5
    assert by_note["tab\there"][2] is True
    assert by_note["back\\slash\nnewline"][0] == "2024-10-03"
    assert str(by_note["back\\slash\nnewline"][1]) == "2025-10-17 10:00:00"
    assert by_note["back\\slash\nnewline"][3] == float("inf")
    assert by_note[""][0] == "2024-10-03" and by_note[""][3] == float("inf") and by_note[""][2] is True
    assert by_note["empty strings"][:4] == (None, None, None, None)
    reasons = {json.loads(line)["column"]: json.loads(line)["reason"]
               for line in (tmp_path / "r.jsonl").read_text().splitlines()}
    assert "invalid date" in reasons["d"]
    assert "not a boolean" in reasons["flag"]
    assert "not a number" in reasons["amount"]
    assert "invalid UTF-8" in reasons["note"] or "NUL" in reasons["note"]
    stored = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert {r["source_rowid"] for r in stored} == {6, 7, 8, 9, 10}
    conn.close()


# -- hostile identifiers -------------------------------------------------------------------------

def test_hostile_identifiers(pg_server, pg_db, tmp_path):
    table = 'we"ird; DROP TABLE victim;--'
    cols = ["select", "a b", "x'y", 'semi;colon"q']
    src = tmp_path / "hostile.db"
    lite = sqlite3.connect(src)
    lite.execute('CREATE TABLE "%s" (%s)' % (table.replace('"', '""'),
                                             ", ".join('"%s" TEXT' % c.replace('"', '""') for c in cols)))
    lite.execute('INSERT INTO "%s" VALUES (?,?,?,?)' % table.replace('"', '""'), ("1", "2", "3", "4"))
    lite.commit()
    conn = pg_server.connect(pg_db)
    with conn.cursor() as cur:
        from psycopg2 import sql

        cur.execute("CREATE TABLE victim (x int)")
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in cols)))
        cur.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(
            sql.Identifier("idx; drop"), sql.Identifier(table), sql.Identifier("a b")))
        # keys must name a real unique constraint
        cur.execute(sql.SQL("ALTER TABLE {} ADD UNIQUE ({})").format(sql.Identifier(table), sql.Identifier("select")))
    params = pg_server.params(pg_db)
    params.update(src=str(src), mapping={table: {"keys": ["select"], "order_by": ["x'y"]}})
    result = run_migration(params)
    assert result["tables"][table]["copied_rows"] == 1
    assert scalar(conn, "SELECT to_regclass('victim') IS NOT NULL")
    from psycopg2 import sql

    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
        assert cur.fetchall() == [("1", "2", "3", "4")]
    assert scalar(conn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'idx; drop'") == 1
    conn.close()


# -- bad source files --------------------------------------------------------------------------

def _error_for(pg_server, pg_db, path):
    params = pg_server.params(pg_db)
    params.update(src=str(path))
    with pytest.raises(MigrationError) as info:
        run_migration(params)
    return str(info.value)


def test_missing_source(pg_server, pg_db, tmp_path):
    path = tmp_path / "nope.db"
    msg = _error_for(pg_server, pg_db, path)
    assert str(path) in msg and "does not exist" in msg


def test_directory_source(pg_server, pg_db, tmp_path):
    msg = _error_for(pg_server, pg_db, tmp_path)
    assert str(tmp_path) in msg and "not a regular file" in msg


def test_non_sqlite_and_empty_source(pg_server, pg_db, tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("ticker,close\nAAPL,1\n" * 20)
    msg = _error_for(pg_server, pg_db, text)
    assert str(text) in msg and "not a SQLite 3 database" in msg
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    msg = _error_for(pg_server, pg_db, empty)
    assert str(empty) in msg and "empty" in msg


def test_corrupt_source(pg_server, pg_db, tmp_path, sample):
    src, _counts = sample
    bad = tmp_path / "corrupt.db"
    data = bytearray(Path(src).read_bytes()[:200000])
    data[100:4096] = os.urandom(4096 - 100)  # smash the schema page, keep the header
    bad.write_bytes(bytes(data))
    msg = _error_for(pg_server, pg_db, bad)
    assert str(bad) in msg and "corrupt" in msg


def test_unreadable_source(pg_server, pg_db, sample):
    src, _counts = sample
    if os.geteuid() != 0:
        pytest.skip("needs root to run the check as an unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="unreadable-"))
    try:
        base.chmod(0o755)
        locked = base / "locked.db"
        locked.write_bytes(Path(src).read_bytes()[:8192])
        locked.chmod(0o000)
        # sqlite_source.py has no Ansible imports: copy it where `nobody` can read it
        source_py = HERE.parents[1] / "module_utils" / "core" / "sqlite_source.py"
        (base / "sqlite_source.py").write_text(source_py.read_text())
        code = ("import sys; sys.path.insert(0, %r)\n"
                "from sqlite_source import open_source, SourceError\n"
                "try:\n    open_source(%r)\nexcept SourceError as e:\n    print(e)" % (str(base), str(locked)))
        out = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", code],
                             capture_output=True, text=True, check=False)
        assert str(locked) in out.stdout and "not readable" in out.stdout, out.stderr
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_unknown_table_and_bad_mapping_are_clear(pg_server, pg_db, target, sample):
    src, _counts = sample
    params = params_for(pg_server, pg_db, src, tables=["tickers", "nosuch"])
    with pytest.raises(MigrationError, match="tables not in the mapping: nosuch"):
        run_migration(params)
    mapping = quant_mapping()
    # an explicit rename into a column the target lacks is an error (a source column the target
    # lacks without a rename is a warning: tests/integration/test_schema_stages_module.py)
    mapping["ohlcv_data"] = dict(mapping["ohlcv_data"], columns={"atr": "avg_true_range"})
    with pytest.raises(MigrationError, match=r"source column ohlcv_data.atr is renamed to 'avg_true_range' in "
                                             r"`columns`, which public.ohlcv_data does not have"):
        run_migration(params_for(pg_server, pg_db, src, mapping=mapping, tables=["ohlcv_data"]))


# -- through Ansible (module packaging, check mode, idempotence) --------------------------------

def test_modules_through_ansible(pg_server, pg_db, target, tmp_path):
    src = tmp_path / "sample.db"
    playbook = tmp_path / "play.yml"
    conn_vars = {k: v for k, v in pg_server.params(pg_db).items() if v not in (None, "")}
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "Generate", "sqlite_sample": {"path": str(src), "scale": 0.002}, "register": "gen"},
            {"name": "Dry run", "sqlite_migrate": dict(conn_vars, src=str(src), mapping="{{ m }}",
                                                       on_conflict="skip", max_reject_ratio=0.5),
             "check_mode": True, "register": "dry"},
            {"name": "Load", "sqlite_migrate": dict(conn_vars, src=str(src), mapping="{{ m }}",
                                                    on_conflict="skip", max_reject_ratio=0.5), "register": "load"},
            {"name": "Load again", "sqlite_migrate": dict(conn_vars, src=str(src), mapping="{{ m }}",
                                                          on_conflict="skip", max_reject_ratio=0.5),
             "register": "again"},
            {"name": "Check", "ansible.builtin.assert": {"that": [
                "gen is changed", "dry is changed", "load is changed", "again is not changed",
                "load.total_copied > 0", "dry.tables.ohlcv_data.copied_rows == load.tables.ohlcv_data.copied_rows",
            ]}},
        ],
    }]))
    out = run_playbook(playbook, extra_vars={"m": quant_mapping()})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert scalar(target, "SELECT count(*) FROM ohlcv_data") > 0


def test_role_runs_with_progress(pg_server, pg_db, target, tmp_path):
    playbook = tmp_path / "role.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                     "roles": [{"role": "sqlite_migration"}]}]))
    extra = {
        "sqlite_migration_db": pg_db, "sqlite_migration_login_unix_socket": str(pg_server.socket_dir),
        "sqlite_migration_port": pg_server.port, "sqlite_migration_sample_path": str(tmp_path / "s.db"),
        "sqlite_migration_sample_scale": 0.01, "sqlite_migration_rejects_path": str(tmp_path / "rejects.jsonl"),
        "sqlite_migration_batch_rows": 500, "sqlite_migration_poll_seconds": 1,
        "sqlite_migration_refresh_aggregates": False, "sqlite_migration_progress_polls": 5,
    }
    out = run_playbook(playbook, extra_vars=extra, env={"PGPASSWORD": pg_server.password})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "ohlcv_data: copied" in out.stdout
    assert scalar(target, "SELECT count(*) FROM ohlcv_data") > 0
    assert (tmp_path / "rejects.jsonl").exists()
