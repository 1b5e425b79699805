"""ANALYZE after a load: a hypertable's chunks shared between two connections (module_utils/migrate/table_analyze.py).

On the throw-away cluster with TimescaleDB: every chunk and the parent are
analyzed exactly once, the parent gets its inherited statistics, the server
log stays free of SKIP_LOCKED warnings, and each reason to fall back to one
plain ANALYZE (not allowed to quiet the log, a chunk locked by someone else,
a plain table) still analyzes everything.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg2
import pytest
from ansible.module_utils.core.postgres import connect
from ansible.module_utils.mapping.target import load_table
from ansible.module_utils.migrate.table_analyze import analyze_table, hypertable_chunks, split_chunks

pytestmark = pytest.mark.integration

MONTHS = 14


@pytest.fixture
def ht_db(require_timescaledb, pg_db):
    """A hypertable of MONTHS monthly chunks (a few rows each) and a plain table."""
    conn = require_timescaledb.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        # autovacuum off (the chunks inherit it): an autoanalyze holding a chunk's lock would make
        # the SKIP_LOCKED statement skip that chunk, and the exact counts below would flake
        cur.execute('CREATE TABLE "Prices" (d date NOT NULL, ticker text, v float8) WITH (autovacuum_enabled = false)')
        cur.execute("""SELECT create_hypertable('"Prices"', 'd', chunk_time_interval => INTERVAL '1 month')""")
        cur.execute("""INSERT INTO "Prices" SELECT DATE '2024-01-01' + (i %% (%s * 30)), 'T' || (i %% 50), i
                       FROM generate_series(1, 6000) i""", (MONTHS,))
        cur.execute("CREATE TABLE plain (id int, v text) WITH (autovacuum_enabled = false)")
        cur.execute("INSERT INTO plain SELECT i, 'x' || i FROM generate_series(1, 500) i")
    conn.close()
    return pg_db


def _table(conn, name):
    with conn.cursor() as cur:
        return load_table(cur, "public", name)


def _analyze_counts(conn, table):
    """{relname: analyze_count} of the table and its chunks (waits for the statistics to settle)."""
    query = ("SELECT c.relname, coalesce(s.analyze_count, 0) FROM pg_class c "
             "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
             "WHERE c.oid = %s::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)")
    previous = None
    for _ in range(20):
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(query, (table, table))
            counts = dict(cur.fetchall())
        if counts == previous:
            return counts
        previous = counts
        time.sleep(0.25)
    return previous


def _run(server, db, table_name, user_params=None):
    params = user_params or server.params(db)
    conn = connect(params, autocommit=True)
    try:
        table = _table(conn, table_name)
        with conn.cursor() as cur:
            chunks = hypertable_chunks(cur, table)
        how = analyze_table(conn, params, table, chunks)
        return how, chunks
    finally:
        conn.close()


def test_split_halves_the_newer_chunks_to_the_helper():
    assert split_chunks(["a", "b", "c", "d", "e"]) == (["a", "b"], ["c", "d", "e"])


def test_hypertable_chunks_are_each_analyzed_once_on_two_connections(ht_db, pg_server):
    log = pg_server.datadir / "server.log"
    log_before = log.stat().st_size
    how, chunks = _run(pg_server, ht_db, "Prices")
    assert how == "parallel"
    assert len(chunks) >= MONTHS
    conn = pg_server.connect(ht_db)
    try:
        counts = _analyze_counts(conn, '"Prices"')
        assert set(counts.values()) == {1}, counts
        assert len(counts) == len(chunks) + 1
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'Prices' AND inherited")
            assert cur.fetchone()[0] == 3  # the parent's statistics across all chunks
            cur.execute("SHOW log_min_messages")
            assert cur.fetchone()[0] == "warning"
    finally:
        conn.close()
    with open(log, "rb") as fh:
        fh.seek(log_before)
        assert b"skipping analyze" not in fh.read()


def test_a_user_who_may_not_quiet_the_log_gets_one_plain_analyze(ht_db, pg_server):
    role = "an_" + uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    admin = pg_server.connect(ht_db)
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE %s LOGIN PASSWORD %%s" % role, (password,))
        cur.execute('ALTER TABLE "Prices" OWNER TO %s' % role)
    try:
        params = pg_server.params(ht_db, login_user=role, login_password=password)
        log = pg_server.datadir / "server.log"
        log_before = log.stat().st_size
        how, chunks = _run(pg_server, ht_db, "Prices", params)
        assert how == "single"
        with open(log, "rb") as fh:  # the privilege is asked, not tried: no refused SET in the log
            fh.seek(log_before)
            assert b"permission denied" not in fh.read()
        counts = _analyze_counts(admin, '"Prices"')
        assert set(counts.values()) == {1} and len(counts) == len(chunks) + 1, counts
    finally:
        with admin.cursor() as cur:
            cur.execute('ALTER TABLE "Prices" OWNER TO %s' % pg_server.user)
            cur.execute("DROP ROLE %s" % role)
        admin.close()


def test_a_chunk_locked_elsewhere_makes_it_one_analyze_that_waits(ht_db, pg_server):
    """Another session holds ANALYZE's lock on the newest chunk: the helper cannot lock its half,
    so the whole ANALYZE runs on one connection and waits for the lock rather than skipping it."""
    other = pg_server.connect(ht_db, autocommit=False)
    conn = pg_server.connect(ht_db)
    with conn.cursor() as cur:
        chunks = hypertable_chunks(cur, _table(conn, "Prices"))
    with other.cursor() as cur:
        cur.execute("LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE" % chunks[-1])
    release = threading.Timer(4.0, other.rollback)
    release.start()
    try:
        how, _chunks = _run(pg_server, ht_db, "Prices")
    finally:
        release.join()
        other.close()
    assert how == "single"
    counts = _analyze_counts(conn, '"Prices"')
    conn.close()
    assert set(counts.values()) == {1} and len(counts) == len(chunks) + 1, counts


def test_a_plain_table_gets_one_analyze(ht_db, pg_server):
    how, chunks = _run(pg_server, ht_db, "plain")
    assert (how, chunks) == ("single", [])
    conn = pg_server.connect(ht_db)
    try:
        assert _analyze_counts(conn, "plain") == {"plain": 1}
    finally:
        conn.close()


def test_the_main_connection_dying_mid_analyze_reports_that_error(ht_db, pg_server):
    """The server ends the main session while ANALYZE (SKIP_LOCKED) runs: the caller gets the
    server's error, not one from cleaning up on the dead connection; the helper lets go."""
    admin = pg_server.connect(ht_db)
    with admin.cursor() as cur:  # enough rows per chunk that the ANALYZE can be caught running
        cur.execute("""INSERT INTO "Prices" SELECT DATE '2024-01-01' + (i %% (%s * 30)), 'T' || (i %% 50), i
                       FROM generate_series(1, 1500000) i""", (MONTHS,))
    params = pg_server.params(ht_db)
    conn = connect(params, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        main_pid = cur.fetchone()[0]
        table = load_table(cur, "public", "Prices")
        chunks = hypertable_chunks(cur, table)
    killed = []

    def kill_when_running():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE pid = %s AND query LIKE 'ANALYZE (SKIP_LOCKED)%%' AND state = 'active'",
                            (main_pid,))
                killed.extend(cur.fetchall())
            time.sleep(0.005)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    try:
        with pytest.raises(psycopg2.OperationalError, match="terminat"):
            analyze_table(conn, params, table, chunks)
    finally:
        killer.join()
        conn.close()
    assert killed

    def chunk_locks():
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname LIKE '%chunk' AND l.mode = 'ShareUpdateExclusiveLock'")
            return cur.fetchone()[0]

    # the helper's transaction ended and the terminated backend is gone: no chunk lock is left
    # (both backends exit asynchronously after their clients see the end, so allow them a moment)
    deadline = time.monotonic() + 10
    while chunk_locks() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert chunk_locks() == 0
    admin.close()
