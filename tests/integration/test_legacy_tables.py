"""SQLite tables outside the mapping on a real PostgreSQL (issue 15, item 6): with legacy_schema set
every row and value lands in sqlite_legacy and validates; with it empty nothing is created and each
table is listed with its row count."""

from __future__ import annotations

import math
import sqlite3
from decimal import Decimal

import pytest
from ansible.module_utils.migrate.runner import MigrationError, run_migration
from ansible.module_utils.validate.runner import ValidationError
from ansible.module_utils.validate.runner import run as run_validation

pytestmark = pytest.mark.integration

BLOB = bytes(range(256)) + b"\x00\xff\xfe"  # NUL and invalid UTF-8: text could not hold it

SOURCE = """
CREATE TABLE tickers (ticker TEXT, region TEXT, name TEXT, PRIMARY KEY (ticker, region));
INSERT INTO tickers VALUES ('005930', 'KR', 'Samsung'), ('AAPL', 'US', 'Apple');

CREATE TABLE backtest_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, config_hash TEXT NOT NULL, total_trades INTEGER, sharpe_ratio REAL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, passed BOOLEAN, cagr DECIMAL(10,4),
    UNIQUE (config_hash));
INSERT INTO backtest_results VALUES (3, 'h1', 12, 1.25, '2025-10-17 09:00:00', 1, 0.1234);
INSERT INTO backtest_results VALUES (7, 'h2', 'N/A', NULL, NULL, 0, 'n/a');
INSERT INTO backtest_results VALUES (9, 'h3', NULL, -0.5, 1760000000, NULL, 3.0);

CREATE TABLE filter_cache_stage0 (
    ticker TEXT NOT NULL, region TEXT NOT NULL, market_cap_krw BIGINT, exchange_rate_date DATE,
    is_otc BOOLEAN, misc, PRIMARY KEY (ticker, region));
INSERT INTO filter_cache_stage0 VALUES ('005930', 'KR', 400000000000000, '2025-10-04', 0, 1);
INSERT INTO filter_cache_stage0 VALUES ('AAPL', 'US', NULL, 20251004, 'yes', 2.5);
INSERT INTO filter_cache_stage0 VALUES ('ZZZZ', 'XX', 9223372036854775807, NULL, NULL, 'free text');

CREATE TABLE gpt_analysis (ticker TEXT, analysis_date TEXT, payload BLOB, mixed BLOB, note TEXT,
                           PRIMARY KEY (ticker, analysis_date));
INSERT INTO gpt_analysis VALUES ('AAPL', '2025-01-02', ?, x'00', 'line1
line2	tab \\ backslash');
INSERT INTO gpt_analysis VALUES ('AAPL', NULL, x'', 'plain text', '');
INSERT INTO gpt_analysis VALUES ('005930', '2025-01-03', NULL, 42, NULL);

CREATE TABLE kelly_history (timestamp REAL, index_name TEXT, kelly_fraction REAL, recommended_lots INTEGER);
INSERT INTO kelly_history VALUES (1760000000.25, 'KOSPI', 0.25, 3);
INSERT INTO kelly_history VALUES (1760000000.25, 'KOSPI', 0.25, 3);
INSERT INTO kelly_history VALUES (1760000100.5, 'NIFTY', 1e300, -2);

CREATE TABLE "we""ird name" ("a b" INTEGER PRIMARY KEY, "c""d" TEXT);
INSERT INTO "we""ird name" VALUES (1, 'x');

CREATE TABLE wr_cache (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
INSERT INTO wr_cache VALUES ('a', 1), ('b', 2);
"""

LEGACY = ["backtest_results", "filter_cache_stage0", "gpt_analysis", "kelly_history", 'we"ird name']
COPIED = [*LEGACY, "wr_cache"]  # a WITHOUT ROWID table is copied and validated too (issue 20, item 6)
ROWS = {
    "backtest_results": 3,
    "filter_cache_stage0": 3,
    "gpt_analysis": 3,
    "kelly_history": 3,
    'we"ird name': 1,
    "wr_cache": 2,
}


def build_source(path):
    db = sqlite3.connect(path)
    statements = [s for s in SOURCE.split(";\n") if s.strip()]
    for stmt in statements:
        db.execute(stmt, (BLOB,) if "?" in stmt else ())
    db.commit()
    db.close()


@pytest.fixture
def legacy(pg_server, pg_db, tmp_path):
    src = str(tmp_path / "spock_local.db")
    build_source(src)
    conn = pg_server.connect(pg_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE tickers (ticker text, region text, name text, PRIMARY KEY (ticker, region))")
    params = pg_server.params(pg_db)
    params.update(src=src, mapping={"tickers": {}}, analyze=False, legacy_schema="sqlite_legacy")
    yield conn, params
    conn.close()


def scalar(conn, query, args=()):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchone()[0]


def column_types(conn, table):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attnum > 0 ORDER BY attnum",
            ('sqlite_legacy."%s"' % table.replace('"', '""'),),
        )
        return dict(cur.fetchall())


def expected(value, pg_type):
    """What PostgreSQL must hold for a SQLite value in a column of pg_type (no loss)."""
    if value is None:
        return None
    if pg_type == "bytea":
        return value if isinstance(value, bytes) else str(value).encode("utf-8")
    if pg_type == "text":
        return repr(value) if isinstance(value, float) else str(value)
    if pg_type == "numeric":
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return value


def normalized(value):
    return bytes(value) if isinstance(value, memoryview) else value


def assert_same_rows(conn, src, table):
    types = column_types(conn, table)
    lite = sqlite3.connect(src)
    lite.text_factory = str
    cols = list(types)
    quoted = ", ".join('"%s"' % c.replace('"', '""') for c in cols)
    want = [
        tuple(expected(v, types[c]) for v, c in zip(row, cols))
        for row in lite.execute('SELECT %s FROM "%s"' % (quoted, table.replace('"', '""')))
    ]
    lite.close()
    with conn.cursor() as cur:
        cur.execute('SELECT %s FROM sqlite_legacy."%s"' % (quoted, table.replace('"', '""')))
        got = [tuple(normalized(v) for v in row) for row in cur.fetchall()]
    assert sorted(map(repr, got)) == sorted(map(repr, want)), table


def validate(params, **extra):
    checks = ["reconciliation", "content", "integrity", "quality"]
    return run_validation(
        dict(params, checks=checks, severity_overrides={}, quality_severity="warning", max_differences=10, **extra)
    )


def test_every_legacy_row_and_value_is_copied_and_validates(legacy):
    conn, params = legacy
    result = run_migration(params)
    assert result["legacy_tables"] == {t: "sqlite_legacy.%s" % t for t in COPIED}
    assert sorted(result["legacy_created"]) == sorted(COPIED)
    for table in COPIED:
        res = result["tables"][table]
        assert (res["source_rows"], res["copied_rows"], res["rejected_rows"]) == (ROWS[table], ROWS[table], 0), res
        assert_same_rows(conn, params["src"], table)
    # the WITHOUT ROWID table streams in primary-key order: copied, with a note that says how
    assert "unmapped_tables" not in result
    assert any("WITHOUT ROWID" in note for note in result["tables"]["wr_cache"]["notes"])
    assert any(w.startswith("backtest_results: column total_trades declared INTEGER") for w in result["warnings"])
    types = column_types(conn, "backtest_results")
    assert types == {
        "id": "bigint",
        "config_hash": "text",
        "total_trades": "text",
        "sharpe_ratio": "double precision",
        "created_at": "text",
        "passed": "text",
        "cagr": "text",
    }
    assert column_types(conn, "gpt_analysis")["payload"] == "bytea"
    assert column_types(conn, "filter_cache_stage0")["market_cap_krw"] == "bigint"
    assert column_types(conn, "filter_cache_stage0")["misc"] == "text"
    assert (
        bytes(scalar(conn, "SELECT payload FROM sqlite_legacy.gpt_analysis WHERE analysis_date = '2025-01-02'")) == BLOB
    )
    assert math.isclose(
        scalar(conn, "SELECT kelly_fraction FROM sqlite_legacy.kelly_history WHERE index_name = 'NIFTY'"), 1e300
    )
    # keys: composite PK kept; a NULL in gpt_analysis's key makes it UNIQUE; AUTOINCREMENT id is a plain value
    assert (
        scalar(
            conn,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = "
            "'sqlite_legacy.filter_cache_stage0'::regclass AND contype = 'p'",
        )
        == "PRIMARY KEY (ticker, region)"
    )
    assert (
        scalar(
            conn,
            "SELECT contype FROM pg_constraint WHERE conrelid = 'sqlite_legacy.gpt_analysis'::regclass "
            "AND contype IN ('p', 'u')",
        )
        == "u"
    )
    assert (
        scalar(
            conn,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'sqlite_legacy.backtest_results'::regclass"
            " AND (atthasdef OR attidentity <> '')",
        )
        == 0
    )
    assert (
        scalar(
            conn, "SELECT tableowner FROM pg_tables WHERE schemaname = 'sqlite_legacy' AND tablename = 'kelly_history'"
        )
        == params["login_user"]
    )

    report = validate(params, legacy_schema="sqlite_legacy")
    assert report["summary"]["critical_failures"] == 0, [c for c in report["checks"] if c["status"] == "fail"]
    checks = {c["name"]: c for c in report["checks"]}
    for table in COPIED:
        assert checks["content %s" % table]["status"] == "pass", checks["content %s" % table]
        assert checks["row accounting %s" % table]["status"] == "pass", checks["row accounting %s" % table]
    assert "unmapped table wr_cache" not in checks  # compared by content like the others, no warning
    # SQLite never enforced the legacy foreign keys: an orphan is reported, as a warning
    orphans = checks["no orphans filter_cache_stage0 -> tickers(ticker, region) via ticker"]
    assert (orphans["status"], orphans["severity"]) == ("fail", "warning") and "(ZZZZ, XX)" in orphans["detail"]

    # a second run skips them by checkpoint, creates nothing
    again = run_migration(params)
    assert "legacy_created" not in again
    assert {again["tables"][t]["status"] for t in COPIED} == {"skipped"}
    # a dropped copy is recreated and loaded again, not skipped by its stale checkpoint
    with conn.cursor() as cur:
        cur.execute("DROP TABLE sqlite_legacy.kelly_history")
    third = run_migration(params)
    assert third["legacy_created"] == ["kelly_history"]
    assert third["tables"]["kelly_history"]["status"] == "copied"
    assert scalar(conn, "SELECT count(*) FROM sqlite_legacy.kelly_history") == 3


def test_rows_without_checkpoint_are_not_loaded_twice(legacy):
    conn, params = legacy
    run_migration(params)
    with conn.cursor() as cur:  # what a rollback that clears the bookkeeping but not the copy leaves
        cur.execute("DELETE FROM quant_meta.migration_checkpoints")
    with pytest.raises(MigrationError, match=r"sqlite_legacy\.backtest_results holds rows .* truncate: true"):
        run_migration(params)
    assert scalar(conn, "SELECT count(*) FROM sqlite_legacy.kelly_history") == 3
    result = run_migration(dict(params, truncate=True))
    assert {result["tables"][t]["status"] for t in LEGACY} == {"copied"}
    assert scalar(conn, "SELECT count(*) FROM sqlite_legacy.kelly_history") == 3


def test_check_mode_creates_nothing(legacy):
    conn, params = legacy
    result = run_migration(params, check_mode=True)
    assert sorted(result["legacy_created"]) == sorted(COPIED)
    assert result["changed"] is True
    assert result["tables"]["gpt_analysis"]["status"] == "would_copy"
    assert result["tables"]["gpt_analysis"]["copied_rows"] == 3
    assert any(q.startswith('CREATE TABLE IF NOT EXISTS "sqlite_legacy"."backtest_results"') for q in result["queries"])
    assert scalar(conn, "SELECT to_regnamespace('sqlite_legacy') IS NULL")


def test_empty_legacy_schema_creates_nothing_and_lists_tables(legacy):
    conn, params = legacy
    params = dict(params, legacy_schema="")
    result = run_migration(params)
    assert result["unmapped_tables"] == {t: ROWS[t] for t in [*LEGACY, "wr_cache"]}
    assert "legacy_tables" not in result
    assert list(result["tables"]) == ["tickers"]
    assert sum("not in the mapping" in w for w in result["warnings"]) == len(ROWS)
    assert scalar(conn, "SELECT to_regnamespace('sqlite_legacy') IS NULL")
    report = validate(params)
    assert report["summary"]["critical_failures"] == 0
    unmapped = {c["name"]: c for c in report["checks"] if c["name"].startswith("unmapped table ")}
    assert len(unmapped) == len(ROWS)
    assert unmapped["unmapped table backtest_results"]["data"] == {"rows": 3}
    assert {c["severity"] for c in unmapped.values()} == {"warning"}


def test_bad_names_are_refused_before_anything_is_created(legacy, tmp_path):
    conn, params = legacy
    with pytest.raises(MigrationError, match="legacy_schema 'public' is used"):
        run_migration(dict(params, legacy_schema="public"))
    src = str(tmp_path / "long.db")
    db = sqlite3.connect(src)
    db.execute("CREATE TABLE tickers (ticker TEXT PRIMARY KEY, name TEXT)")
    db.execute("CREATE TABLE %s (x INTEGER)" % ("t" * 64))
    db.commit()
    db.close()
    with pytest.raises(MigrationError, match="64 bytes long; PostgreSQL identifiers hold at most 63"):
        run_migration(dict(params, src=src))
    assert scalar(conn, "SELECT to_regnamespace('sqlite_legacy') IS NULL")
    with pytest.raises(ValidationError, match="64 bytes long"):
        validate(dict(params, src=src), legacy_schema="sqlite_legacy")


def test_a_without_rowid_legacy_table_is_compared_by_content(legacy):
    # compared like a mapped WITHOUT ROWID table: rows by position in primary-key order, matched on the key
    conn, params = legacy
    run_migration(params)
    with conn.cursor() as cur:
        cur.execute("UPDATE sqlite_legacy.wr_cache SET v = 5 WHERE k = 'b'")
    checks = {c["name"]: c for c in validate(params, legacy_schema="sqlite_legacy")["checks"]}
    content = checks["content wr_cache"]
    assert (content["status"], content["severity"]) == ("fail", "critical"), content
    assert "row k=b differs in v (SQLite 2, PostgreSQL 5)" in content["detail"], content
    assert checks["content kelly_history"]["status"] == "pass", checks["content kelly_history"]
