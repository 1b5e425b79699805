"""sqlite_migrate on SQLite files at the schema stages of app_contract.md §5, with the role's default
mapping, and the reject policy (fail after a table, before the next; a rerun goes on).

Each test builds the SQLite file it needs with the platform's DDL of that stage (init_db.py, the
KIS collector's ohlcv_data, the fiscal_year key of S/fix_uniqueness_constraint.py) and loads it
into the 12-table target of tests/quant_target_ddl.py.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from ansible.module_utils.migrate.runner import MigrationError, run_migration
from ansible.module_utils.validate.runner import run as validate
from integration.test_sqlite_migrate import params_for, query
from quant_target_ddl import create_target_schema, quant_mapping

pytestmark = pytest.mark.integration

TICKERS_INIT_DB = """CREATE TABLE tickers (
    ticker TEXT PRIMARY KEY, name TEXT NOT NULL, name_eng TEXT, exchange TEXT NOT NULL, region TEXT NOT NULL,
    currency TEXT NOT NULL DEFAULT 'KRW', asset_type TEXT NOT NULL DEFAULT 'STOCK', listing_date TEXT,
    lot_size INTEGER DEFAULT 1, is_active BOOLEAN DEFAULT 1, delisting_date TEXT, created_at TEXT NOT NULL,
    last_updated TEXT NOT NULL, data_source TEXT, yf_status TEXT DEFAULT 'unknown')"""
OHLCV_KIS = """CREATE TABLE ohlcv_data (
    ticker TEXT NOT NULL, region TEXT NOT NULL, timeframe TEXT NOT NULL, date DATE NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume BIGINT, ma5 REAL, ma20 REAL, ma60 REAL, ma120 REAL,
    ma200 REAL, rsi_14 REAL, macd REAL, macd_signal REAL, macd_hist REAL, bb_upper REAL, bb_middle REAL,
    bb_lower REAL, atr REAL, volume_ma20 BIGINT, volume_ratio REAL,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP, updated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (ticker, region, timeframe, date))"""
FUNDAMENTALS_COLUMNS = """id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT NOT NULL, date TEXT NOT NULL,
    period_type TEXT NOT NULL, shares_outstanding BIGINT, market_cap BIGINT, close_price REAL, per REAL, pbr REAL,
    psr REAL, pcr REAL, ev BIGINT, ev_ebitda REAL, dividend_yield REAL, dividend_per_share REAL,
    created_at TEXT NOT NULL, data_source TEXT"""
FUNDAMENTALS_INIT_DB = "CREATE TABLE ticker_fundamentals (%s, UNIQUE (ticker, date, period_type))" % (
    FUNDAMENTALS_COLUMNS)
FUNDAMENTALS_FIXED = ("CREATE TABLE ticker_fundamentals (%s, fiscal_year INTEGER, UNIQUE (ticker, fiscal_year, "
                      "period_type))" % FUNDAMENTALS_COLUMNS)
RATES_INIT_DB = """CREATE TABLE exchange_rate_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, currency TEXT NOT NULL, rate REAL NOT NULL, timestamp TEXT NOT NULL,
    rate_date TEXT NOT NULL, source TEXT DEFAULT 'BOK_API', created_at TEXT DEFAULT CURRENT_TIMESTAMP)"""
ETF_DETAILS = """CREATE TABLE etf_details (
    ticker TEXT PRIMARY KEY, issuer TEXT, tracking_index TEXT NOT NULL, expense_ratio REAL NOT NULL,
    created_at TEXT NOT NULL, last_updated TEXT NOT NULL)"""
ETF_HOLDINGS = """CREATE TABLE etf_holdings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, etf_ticker TEXT NOT NULL, stock_ticker TEXT NOT NULL, weight REAL NOT NULL,
    as_of_date TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (etf_ticker, stock_ticker, as_of_date))"""
STAMP = "2025-10-15T09:00:00"


def _tickers(db, codes):
    db.executemany("INSERT INTO tickers (ticker, name, exchange, region, created_at, last_updated) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   [(code, "n" + code, "KOSPI" if region == "KR" else "NASDAQ", region, STAMP, STAMP)
                    for code, region in codes])


def _build(path, *ddl, tickers=(("005930", "KR"), ("000660", "KR"), ("AAPL", "US"))):
    db = sqlite3.connect(path)
    db.execute(TICKERS_INIT_DB)
    _tickers(db, tickers)
    for statement in ddl:
        db.execute(statement)
    return db


@pytest.fixture
def target(pg_server, pg_db):
    conn = pg_server.connect(pg_db)
    create_target_schema(conn)
    yield conn
    conn.close()


def _params(pg_server, db, src, tmp_path, **extra):
    """The module's parameters with the role's reject policy."""
    policy = {"batch_rows": 500, "max_reject_ratio": 0.01, "max_rejects": 10000, "tolerated_rejects": 10,
              "rejects_path": str(tmp_path / "rejects.jsonl")}
    return params_for(pg_server, db, str(src), **{**policy, **extra})


# -- item 5: every schema stage migrates with the default mapping ----------------------------------

def test_init_db_stage_and_kis_ohlcv_migrate_with_warnings(pg_server, pg_db, target, tmp_path):
    src = tmp_path / "init_db.db"
    db = _build(src, OHLCV_KIS, FUNDAMENTALS_INIT_DB, RATES_INIT_DB)
    db.executemany("INSERT INTO ohlcv_data (ticker, region, timeframe, date, open, high, low, close, volume, "
                   "volume_ma20, created_at, updated_at) VALUES (?, ?, 'D', ?, 1, 2, 0.5, 1.5, 100, 90, ?, ?)",
                   [("005930", "KR", "2024-01-0%d" % d, "2024-01-0%d 06:00:00" % d, "2024-01-0%d 07:00:00" % d)
                    for d in range(2, 6)])
    db.executemany("INSERT INTO ticker_fundamentals (ticker, date, period_type, per, created_at, data_source) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   [("005930", "2025-10-15", "ANNUAL", 9.5, STAMP, "DART-2024-11011"),
                    ("005930", "2025-10-15", "DAILY", 9.4, STAMP, "pykrx"),
                    ("AAPL", "2025-10-16", "DAILY", 30.1, STAMP, "yfinance")])
    # no key: the same (currency, rate_date) twice is two rows, both kept
    db.executemany("INSERT INTO exchange_rate_history (currency, rate, timestamp, rate_date) VALUES (?, ?, ?, ?)",
                   [("USD", 1390.5, "2025-10-15T09:00:00", "2025-10-15"),
                    ("USD", 1391.0, "2025-10-15T15:00:00", "2025-10-15")])
    db.commit()
    db.close()
    params = _params(pg_server, pg_db, src, tmp_path)
    dry = run_migration(params, check_mode=True)
    result = run_migration(params)
    tables = result["tables"]
    for name in ("tickers", "ohlcv_data", "ticker_fundamentals", "exchange_rate_history"):
        res = tables[name]
        assert res["status"] == "copied" and res["rejected_rows"] == 0, (name, res)
        assert res["copied_rows"] + res["duplicate_rows"] == res["source_rows"]
    assert tables["exchange_rate_history"]["copied_rows"] == 2
    # the tables the file lacks: reported and skipped, 0 rows
    for name in ("stock_details", "etf_details", "etf_holdings", "technical_analysis", "trades", "portfolio",
                 "market_sentiment", "global_market_indices"):
        assert tables[name]["status"] == "missing" and tables[name]["copied_rows"] == 0
        assert "%s: the SQLite file has no table %s" % (name, name) in tables[name]["warnings"][0]
    warnings = result["warnings"]
    assert warnings == dry["warnings"]  # check mode reports the same
    assert [w for w in warnings if w.startswith("ohlcv_data:")] == [
        "ohlcv_data: the SQLite table has no column id (drop), which the mapping names; nothing is read from it (a "
        "target column it would fill keeps the source value, or gets NULL or its default)",
        "ohlcv_data: source column updated_at has no column in public.ohlcv_data and is not loaded (add it to the "
        "target, rename in `columns`, or list in `drop` to silence this)"]
    assert tables["ohlcv_data"]["warnings"] == [w for w in warnings if w.startswith("ohlcv_data:")]
    assert any(w.startswith("tickers: source column yf_status") for w in warnings)
    assert any(w.startswith("ticker_fundamentals: the SQLite table has no column fiscal_year (derive.date "
                            "period_end)") for w in warnings)
    assert len([w for w in warnings if w.startswith("ticker_fundamentals:")]) == 1  # once per table
    # tickers without market_tier get the column default; the KIS created_at keeps its value
    assert query(target, "SELECT DISTINCT market_tier FROM tickers") == [("MAIN",)]
    assert query(target, "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM ohlcv_data "
                         "ORDER BY date LIMIT 1") == [("2024-01-02 06:00:00",)]
    # a date-keyed (init_db) file keeps its dates; collected_date is the source date
    assert query(target, "SELECT ticker, date::text, period_type, collected_date::text, fiscal_year "
                         "FROM ticker_fundamentals ORDER BY ticker, period_type") == [
        ("005930", "2025-10-15", "ANNUAL", "2025-10-15", None), ("005930", "2025-10-15", "DAILY", "2025-10-15", None),
        ("AAPL", "2025-10-16", "DAILY", "2025-10-16", None)]
    # the validation skips the tables the file lacks, as the migration did, and says so
    checked = validate(pg_server.params(pg_db, src=str(src), mapping=quant_mapping(),
                                        checks=["reconciliation", "content"], severity_overrides={},
                                        quality_severity="warning", max_differences=10))
    by_name = {c["name"]: c for c in checked["checks"]}
    assert by_name["mapping stock_details"]["status"] == "skip"
    assert "has no table stock_details" in by_name["mapping stock_details"]["detail"]
    assert checked["summary"]["critical_failures"] == 0, [c for c in checked["checks"] if c["status"] == "fail"]


def _fixed_stage_file(path):
    """ticker_fundamentals after S/fix_uniqueness_constraint.py: several fiscal years under one collection
    date, Q1 and Q3 of other tickers, DAILY rows whose (ticker, date) repeats."""
    db = _build(path, FUNDAMENTALS_FIXED)
    rows = [("005930", "2025-10-15", "ANNUAL", "DART-%d-11011" % y, y, 10.0 + y % 10) for y in (2022, 2023, 2024)]
    rows += [("005930", "2025-10-15", "SEMI-ANNUAL", "DART-2024-11012", 2024, 8.0),
             ("000660", "2025-10-15", "QUARTERLY", "DART-2024-11013", 2024, 7.0),
             ("AAPL", "2025-10-15", "QUARTERLY", "DART-2024-11014", 2024, 6.0),
             ("AAPL", "2025-10-15", "ANNUAL", "yfinance", 2025, 5.0),
             ("005930", "2025-10-16", "DAILY", "pykrx", None, 9.1),
             ("000660", "2025-10-16", "DAILY", "pykrx", None, 9.2)]
    db.executemany("INSERT INTO ticker_fundamentals (ticker, date, period_type, data_source, fiscal_year, per, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, '%s')" % STAMP, rows)
    db.commit()
    db.close()
    return len(rows)


def test_fiscal_year_keyed_fundamentals_keep_every_row_and_validate(pg_server, pg_db, target, tmp_path):
    src = tmp_path / "fixed.db"
    count = _fixed_stage_file(src)
    params = _params(pg_server, pg_db, src, tmp_path, tables=["tickers", "ticker_fundamentals"])
    result = run_migration(params)
    res = result["tables"]["ticker_fundamentals"]
    assert (res["copied_rows"], res["rejected_rows"], res["duplicate_rows"]) == (count, 0, 0)
    assert res["warnings"] == []
    assert "replaces the source value in 7 rows" in res["notes"][0]
    got = query(target, "SELECT ticker, period_type, fiscal_year, date::text, collected_date::text "
                        "FROM ticker_fundamentals ORDER BY ticker, period_type, fiscal_year")
    assert got == [
        ("000660", "DAILY", None, "2025-10-16", "2025-10-16"),
        ("000660", "QUARTERLY", 2024, "2024-03-31", "2025-10-15"),
        ("005930", "ANNUAL", 2022, "2022-12-31", "2025-10-15"),
        ("005930", "ANNUAL", 2023, "2023-12-31", "2025-10-15"),
        ("005930", "ANNUAL", 2024, "2024-12-31", "2025-10-15"),
        ("005930", "DAILY", None, "2025-10-16", "2025-10-16"),
        ("005930", "SEMI-ANNUAL", 2024, "2024-06-30", "2025-10-15"),
        ("AAPL", "ANNUAL", 2025, "2025-12-31", "2025-10-15"),
        ("AAPL", "QUARTERLY", 2024, "2024-09-30", "2025-10-15")]
    # the validator recomputes the source side through the same plan: content matches
    checked = validate(pg_server.params(pg_db, src=str(src), mapping=quant_mapping(),
                                        tables=["tickers", "ticker_fundamentals"], checks=["reconciliation", "content"],
                                        severity_overrides={}, quality_severity="warning", max_differences=10))
    bad = [c for c in checked["checks"] if c["status"] == "fail"]
    assert checked["summary"]["critical_failures"] == 0, bad
    assert any(c["name"] == "content ticker_fundamentals" and c["status"] == "pass" for c in checked["checks"])


def test_key_column_the_file_lacks_names_what_to_set(pg_server, pg_db, target, tmp_path):
    src = tmp_path / "init_db.db"
    db = _build(src, FUNDAMENTALS_INIT_DB)
    db.commit()
    db.close()
    mapping = quant_mapping()
    mapping["ticker_fundamentals"] = dict(mapping["ticker_fundamentals"], keys=["ticker", "region", "fiscal_year",
                                                                                 "period_type"])
    # a unique key on those columns, so that only the missing source column is wrong
    query(target, "CREATE UNIQUE INDEX tf_fy ON ticker_fundamentals (ticker, region, fiscal_year, period_type)"
          " ; SELECT 1")
    with pytest.raises(MigrationError) as info:
        run_migration(_params(pg_server, pg_db, src, tmp_path, mapping=mapping, tables=["ticker_fundamentals"]))
    msg = str(info.value)
    assert "key column 'fiscal_year' of ticker_fundamentals is not loaded" in msg
    assert "the SQLite table ticker_fundamentals has no column 'fiscal_year'" in msg
    assert "set `keys` for ticker_fundamentals in the mapping (sqlite_migration_mapping)" in msg


# -- item 7: the reject policy -----------------------------------------------------------------------

def _etf_file(path, orphans):
    """19 etf_details rows, `orphans` of them for tickers the file does not have, and 2 holdings."""
    codes = [("E%02d" % i, "KR") for i in range(19 - orphans)]
    db = _build(path, ETF_DETAILS, ETF_HOLDINGS, tickers=codes)
    db.executemany("INSERT INTO etf_details VALUES (?, 'issuer', 'KOSPI200', 0.05, ?, ?)",
                   [(code, STAMP, STAMP) for code, _ in codes] + [("X%02d" % i, STAMP, STAMP) for i in range(orphans)])
    db.executemany("INSERT INTO etf_holdings (etf_ticker, stock_ticker, weight, as_of_date, created_at) "
                   "VALUES (?, ?, 1.5, '2025-10-15', ?)", [("E00", "E01", STAMP), ("E00", "E02", STAMP)])
    db.commit()
    db.close()


def test_one_orphan_among_19_passes_with_role_defaults(pg_server, pg_db, target, tmp_path):
    src = tmp_path / "etf.db"
    _etf_file(src, orphans=1)
    result = run_migration(_params(pg_server, pg_db, src, tmp_path))
    res = result["tables"]["etf_details"]
    assert (res["copied_rows"], res["rejected_rows"]) == (18, 1)
    assert result["tables"]["etf_holdings"]["copied_rows"] == 2
    text = "etf_details: 1 of 19 rows rejected (tolerated by the reject policy)"
    assert any(w.startswith(text) for w in result["warnings"]) and res["warnings"][-1].startswith(text)


def test_too_many_rejects_fail_before_the_next_table_and_a_rerun_goes_on(pg_server, pg_db, target, tmp_path):
    src = tmp_path / "etf.db"
    _etf_file(src, orphans=3)
    params = _params(pg_server, pg_db, src, tmp_path, tolerated_rejects=2)
    with pytest.raises(MigrationError) as info:
        run_migration(params)
    msg = str(info.value)
    assert msg.startswith("table etf_details: 3 of 19 rows rejected (15.79%), more than max_reject_ratio (role: "
                          "sqlite_migration_max_reject_ratio) 1.00% and more than tolerated_rejects (role: "
                          "sqlite_migration_tolerated_rejects) 2")
    assert "so are the tables loaded before it (tickers)" in msg
    assert str(tmp_path / "rejects.jsonl") in msg and "continues with etf_holdings" in msg
    # the failing table is committed, the next one was not started, the rejects file is written
    assert query(target, "SELECT count(*) FROM etf_details") == [(16,)]
    assert query(target, "SELECT count(*) FROM etf_holdings") == [(0,)]
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["source_rowid"] for r in rejects if r["table"] == "etf_details") == [17, 18, 19]
    assert "etf_holdings" not in info.value.result["tables"]
    # the rerun finds etf_details complete, warns about its rejects and loads the rest
    again = run_migration(params)
    assert again["tables"]["etf_details"]["status"] == "skipped"
    assert again["tables"]["etf_holdings"]["status"] == "copied"
    assert query(target, "SELECT count(*) FROM etf_holdings") == [(2,)]
    assert any(w.startswith("etf_details: 3 of 19 rows were rejected when an earlier run") for w in again["warnings"])


def test_absolute_limit_and_check_mode(pg_server, pg_db, target, tmp_path):
    src = tmp_path / "etf.db"
    _etf_file(src, orphans=3)
    params = _params(pg_server, pg_db, src, tmp_path, max_reject_ratio=1.0, max_rejects=2)
    with pytest.raises(MigrationError, match=r"migration would reject rows \(nothing was written\): etf_details: "
                                             r"3 of 19 rows rejected, more than max_rejects \(role: "
                                             r"sqlite_migration_max_rejects\) 2"):
        run_migration(params, check_mode=True)
    assert query(target, "SELECT count(*) FROM etf_details") == [(0,)]
    with pytest.raises(MigrationError, match=r"^table etf_details: 3 of 19 rows rejected, more than max_rejects"):
        run_migration(params)
