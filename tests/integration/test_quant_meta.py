"""The module quant_meta's actions on a real PostgreSQL (issue 19, item 3): each creates or reads
quant_meta's tables as core/quant_meta.py defines them, read-only actions change nothing in
check mode, and a database without the bookkeeping reads as "nothing recorded"."""

from __future__ import annotations

import collections
import uuid

import pytest
from ansible.module_utils.core.postgres import ConnectionFailure
from ansible.module_utils.core.quant_meta import advance_checkpoint, ensure_schema, finish_checkpoint, start_checkpoint
from ansible.module_utils.core.quant_meta_actions import run

pytestmark = pytest.mark.integration

FakeTarget = collections.namedtuple("FakeTarget", "display oid")  # what start_checkpoint reads of a TargetTable


def sql(server, db, statement, args=None):
    conn = server.connect(db)
    try:
        cur = conn.cursor()
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def load(server, db, table, copied, done=True, rejects=0):
    """Record a table's load the way the migration does (start, one batch, finish)."""
    conn = server.connect(db, autocommit=False)
    try:
        ensure_schema(conn)
        with conn.cursor() as cur:
            start_checkpoint(cur, table, FakeTarget("public." + table, None), "/src.db", "fp", copied + rejects, "run1")
            advance_checkpoint(cur, table, copied + rejects, copied, rejects, 0, 2.0)
            for n in range(rejects):
                cur.execute("INSERT INTO quant_meta.migration_rejects (run_id, table_name, source_rowid, kind, reason) "
                            "VALUES ('run1', %s, %s, 'reject', 'bad')", (table, n))
            if done:
                finish_checkpoint(cur, table)
        conn.commit()
    finally:
        conn.close()


def test_a_database_without_bookkeeping_shows_nothing_and_is_not_due(pg_server, pg_db):
    params = pg_server.params(pg_db)
    assert run(params, "progress") == {"changed": False, "progress": []}
    status = run(params, "refresh_status")
    assert (status["changed"], status["due"], status["last_load"], status["last_refresh"]) == (False, False, None, None)
    assert "no migration has run" in status["reason"]
    assert run(params, "reset", ["tickers"])["changed"] is False
    assert sql(pg_server, pg_db, "SELECT to_regnamespace('quant_meta')") == [(None,)]  # reads created nothing


def test_progress_lists_the_current_load(pg_server, pg_db):
    load(pg_server, pg_db, "tickers", 100)
    load(pg_server, pg_db, "ohlcv_data", 300, done=False, rejects=100)
    rows = run(pg_server.params(pg_db), "progress", check_mode=True)["progress"]
    assert rows == [
        {"table_name": "tickers", "status": "done", "source_rows": 100, "done_rows": 100, "percent": 100.0,
         "rows_per_second": 50},
        {"table_name": "ohlcv_data", "status": "running", "source_rows": 400, "done_rows": 400, "percent": 100.0,
         "rows_per_second": 200},
    ]
    sql(pg_server, pg_db, "UPDATE quant_meta.migration_checkpoints SET updated_at = now() - interval '2 days' "
                          "WHERE table_name = 'tickers'")
    assert [r["table_name"] for r in run(pg_server.params(pg_db), "progress")["progress"]] == ["ohlcv_data"]


def test_a_refresh_is_due_until_recorded_and_again_after_a_newer_load(pg_server, pg_db):
    params = pg_server.params(pg_db)
    load(pg_server, pg_db, "tickers", 10)
    first = run(params, "refresh_status")
    assert (first["changed"], first["due"], first["last_refresh"]) == (False, True, None)
    assert first["last_load"] is not None

    would = run(params, "record_refresh", check_mode=True)
    assert (would["changed"], would["refreshed_at"]) == (True, None)
    assert sql(pg_server, pg_db, "SELECT to_regclass('quant_meta.aggregate_refreshes')") == [(None,)]

    recorded = run(params, "record_refresh")
    assert recorded["changed"] is True and recorded["refreshed_at"]
    assert sql(pg_server, pg_db, "SELECT count(*) FROM quant_meta.aggregate_refreshes") == [(1,)]
    after = run(params, "refresh_status", check_mode=True)
    assert (after["due"], after["last_refresh"]) == (False, recorded["refreshed_at"])
    assert "no load completed since" in after["reason"]

    load(pg_server, pg_db, "ohlcv_data", 10, done=False)  # still running: nothing new completed
    assert run(params, "refresh_status")["due"] is False
    load(pg_server, pg_db, "ohlcv_data", 10)  # completed after the refresh
    again = run(params, "refresh_status")
    assert again["due"] is True and "after the last refresh" in again["reason"]
    run(params, "record_refresh")
    assert sql(pg_server, pg_db, "SELECT count(*) FROM quant_meta.aggregate_refreshes") == [(2,)]
    assert run(params, "refresh_status")["due"] is False


def test_reset_forgets_the_named_tables_only(pg_server, pg_db):
    params = pg_server.params(pg_db)
    load(pg_server, pg_db, "tickers", 10, rejects=2)
    load(pg_server, pg_db, "ohlcv_data", 10, rejects=3)
    counts = "SELECT (SELECT count(*) FROM quant_meta.migration_checkpoints), " \
             "(SELECT count(*) FROM quant_meta.migration_rejects)"
    preview = run(params, "reset", ["tickers", "no_such_table"], check_mode=True)
    assert preview == {"changed": True, "tables": ["tickers", "no_such_table"], "checkpoints": 1, "rejects": 2}
    assert sql(pg_server, pg_db, counts) == [(2, 5)]
    assert run(params, "reset", ["tickers"])["changed"] is True
    assert sql(pg_server, pg_db, "SELECT table_name FROM quant_meta.migration_checkpoints") == [("ohlcv_data",)]
    assert sql(pg_server, pg_db, counts) == [(1, 3)]
    assert run(params, "reset", ["tickers"]) == {"changed": False, "tables": ["tickers"], "checkpoints": 0,
                                                 "rejects": 0}


def test_a_database_that_does_not_exist_yet(pg_server):
    params = pg_server.params("nodb_" + uuid.uuid4().hex[:8])
    assert run(params, "progress", check_mode=True)["progress"] == []
    assert run(params, "refresh_status", check_mode=True)["due"] is False
    assert run(params, "record_refresh", check_mode=True)["changed"] is True
    with pytest.raises(ConnectionFailure, match="does not exist"):
        run(params, "refresh_status")  # outside check mode the missing database is the error


def test_schema_steps_table_belongs_to_the_role_that_applies_the_steps(pg_server, pg_db):
    from ansible.module_utils.schema.steps import apply_steps

    owner = "qm_owner_" + uuid.uuid4().hex[:6]
    sql(pg_server, pg_db, 'CREATE ROLE "%s"; GRANT CREATE ON DATABASE "%s" TO "%s"' % (owner, pg_db, owner))
    conn = pg_server.connect(pg_db, autocommit=False)
    try:
        result = apply_steps(conn, [{"step": 1, "name": "noop", "sql": "SELECT 1"}], session_role=owner)
    finally:
        conn.close()
    assert result["recorded"] == [1]
    assert sql(pg_server, pg_db, "SELECT tableowner FROM pg_tables WHERE schemaname = 'quant_meta' "
                                 "AND tablename = 'schema_steps'") == [(owner,)]
    sql(pg_server, pg_db, 'DROP OWNED BY "%s"; DROP ROLE "%s"' % (owner, owner))
