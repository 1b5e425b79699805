"""sqlite_migrate into compressed chunks (issue 16, item 3), on a Community cluster.

ohlcv_data already holds rows in compressed chunks (an earlier load the compression
policy has since compressed, or the application's own writes); a SQLite file brings
rows with the same keys and new ones. on_conflict decides as it does on plain tables:
skip keeps the compressed rows, update replaces them with the source's, error rejects
the source's. The new rows go in beside them; the chunks stay compressed (partially).
"""

from __future__ import annotations

import sqlite3

import pytest
from ansible.module_utils.migrate.runner import run_migration
from quant_target_ddl import OHLCV_COMPRESSION, create_target_schema

pytestmark = pytest.mark.integration

COLUMNS = ("ticker", "timeframe", "date", "region", "open", "high", "low", "close", "volume", "ma200")
# Already in PostgreSQL (then compressed): January 2025, two tickers; ma200 all NULL as in a
# ticker's first months, so the compressed batch holds an all-NULL block too.
EXISTING = [(t, "D", "2025-01-%02d" % d, "KR", 1.0, 2.0, 0.5, 1.5, 100, None)
            for t in ("005930", "000660") for d in range(2, 23)]
# The SQLite file: January rows of one ticker again with another close, plus February rows.
SOURCE = [("005930", "D", "2025-01-%02d" % d, "KR", 1.0, 2.0, 0.5, 9.5, 100, None) for d in range(2, 12)] + \
         [("005930", "D", "2025-02-%02d" % d, "KR", 1.0, 2.0, 0.5, 3.5, 100, 1.25) for d in range(3, 8)]


def query(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


@pytest.mark.parametrize("mode", ["skip", "update", "error"])
def test_on_conflict_into_compressed_chunks(community_server, tmp_path, mode):
    name = "cm_" + mode
    admin = community_server.connect()
    admin.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    admin.cursor().execute('CREATE DATABASE "%s"' % name)
    target = community_server.connect(name)
    try:
        create_target_schema(target, hypertable=True)
        query(target, OHLCV_COMPRESSION)
        with target.cursor() as cur:
            cur.executemany("INSERT INTO ohlcv_data (%s) VALUES (%s)" % (", ".join(COLUMNS), ", ".join(["%s"] * 10)),
                            EXISTING)
        query(target, "SELECT compress_chunk(c) FROM show_chunks('ohlcv_data') c")
        assert query(target, "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks") == [(True,)]

        src = tmp_path / ("ohlcv-%s.db" % mode)
        lite = sqlite3.connect(src)
        lite.execute("CREATE TABLE ohlcv_data (%s)" % ", ".join(COLUMNS))
        lite.executemany("INSERT INTO ohlcv_data VALUES (%s)" % ", ".join("?" * 10), SOURCE)
        lite.commit()
        lite.close()
        params = community_server.params(name)
        params.update(src=str(src), mapping={"ohlcv_data": {"keys": ["ticker", "region", "timeframe", "date"]}},
                      on_conflict=mode, max_reject_ratio=1)
        res = run_migration(params)["tables"]["ohlcv_data"]

        assert res["copied_rows"] + res["rejected_rows"] + res["duplicate_rows"] == len(SOURCE)
        closes = dict(query(target, "SELECT date::text, close FROM ohlcv_data WHERE ticker = '005930'"))
        january = {closes["2025-01-%02d" % d] for d in range(2, 12)}
        assert query(target, "SELECT count(*) FROM ohlcv_data") == [(len(EXISTING) + 5,)]
        assert [closes["2025-02-%02d" % d] for d in range(3, 8)] == [3.5] * 5  # the new rows, every mode
        if mode == "update":
            assert (res["copied_rows"], res["duplicate_rows"]) == (5, 10) and january == {9.5}
        elif mode == "skip":
            assert (res["copied_rows"], res["duplicate_rows"]) == (5, 10) and january == {1.5}
        else:
            assert (res["copied_rows"], res["rejected_rows"]) == (5, 10) and january == {1.5}
        # the other ticker's compressed rows, all-NULL ma200 included, are untouched
        assert query(target, "SELECT count(*), count(ma200), min(close), max(close) FROM ohlcv_data "
                             "WHERE ticker = '000660'") == [(21, 0, 1.5, 1.5)]
        # January's chunk is still compressed: the source's rows went in beside the compressed ones
        assert query(target, "SELECT is_compressed FROM timescaledb_information.chunks "
                             "WHERE range_start <= '2025-01-10' AND range_end > '2025-01-10'") == [(True,)]
    finally:
        target.close()
        admin.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        admin.close()
