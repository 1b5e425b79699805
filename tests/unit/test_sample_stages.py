"""The sample generator: the current sample is byte-for-byte what it was, and each schema stage of a
real spock file (app_contract.md section 5) has that stage's schema and key quirks."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
from contextlib import redirect_stdout

import pytest
from ansible.module_utils import basic
from ansible.module_utils.sample.generator import generate
from ansible.module_utils.sample.stages import FINANCIAL, FUND_TICKERS, LEGACY_DDL, LEGACY_ROWS, METRICS

# Computed with the generator as it was before the stages were added (commit 31ca5af): sha256 of each
# table's CREATE statement and of every row in rowid order (first 16 hex digits), and of the indexes.
PINNED_CURRENT = {
    (0.01, 20251021): {
        "etf_details": "6b473dd70f8bb001", "etf_holdings": "908e4f4f23ef8bb3",
        "exchange_rate_history": "3d12e906eb68fe4f", "global_market_indices": "19714ff6033b76a8",
        "market_sentiment": "668e7cbe85cf22b2", "ohlcv_data": "b10da03f5861b7e5", "portfolio": "11447e61cbc36fa9",
        "stock_details": "90a281d2f96026bf", "technical_analysis": "6ab0a7d1ba7d5041",
        "ticker_fundamentals": "8b2cca6084ca5edf", "tickers": "803d8472cc709d06", "trades": "e8031c7f16261113",
        "<indexes>": "c856c19edea29f8f",
    },
    (0.1, 20251021): {
        "etf_details": "6a56146088e9a484", "etf_holdings": "5142421bd3cfc97f",
        "exchange_rate_history": "3ff0fd7b8da3784f", "global_market_indices": "1b36299765136f12",
        "market_sentiment": "668e7cbe85cf22b2", "ohlcv_data": "e60fd92a5281b7da", "portfolio": "11447e61cbc36fa9",
        "stock_details": "b1ff0eed6defc575", "technical_analysis": "6ab0a7d1ba7d5041",
        "ticker_fundamentals": "96493479d444e41b", "tickers": "a90cbf53720d3078", "trades": "e8031c7f16261113",
        "<indexes>": "c856c19edea29f8f",
    },
    (0.03, 7): {
        "etf_details": "13eb1019f653067e", "etf_holdings": "8eef58a8993d6237",
        "exchange_rate_history": "ed56d1d35f3f24b8", "global_market_indices": "33a6c3a529f63f0b",
        "market_sentiment": "668e7cbe85cf22b2", "ohlcv_data": "0fd1373fc9ff2777", "portfolio": "11447e61cbc36fa9",
        "stock_details": "e879a792d980524b", "technical_analysis": "6ab0a7d1ba7d5041",
        "ticker_fundamentals": "006358cd0896c6e6", "tickers": "023d5a3940843118", "trades": "e8031c7f16261113",
        "<indexes>": "c856c19edea29f8f",
    },
}
PINNED_COUNTS = {
    (0.01, 20251021): {"tickers": 186, "stock_details": 177, "etf_details": 10, "ohlcv_data": 9263},
    (0.1, 20251021): {"tickers": 1866, "stock_details": 1761, "etf_details": 104, "ohlcv_data": 92632},
    (0.03, 7): {"tickers": 561, "stock_details": 529, "etf_details": 31, "ohlcv_data": 27790},
}
STAGED = ("init_db", "fiscal_year", "fiscal_year_key", "kis_ohlcv")
LEGACY = [ddl.split()[2] for ddl in LEGACY_DDL]


def digest(path):
    conn = sqlite3.connect(path)
    out = {}
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                  "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
        h = hashlib.sha256(sql.encode())
        for row in conn.execute('SELECT rowid, * FROM "%s" ORDER BY rowid' % name):
            h.update(repr(row).encode())
        out[name] = h.hexdigest()[:16]
    idx = hashlib.sha256()
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"):
        idx.update(repr((name, sql)).encode())
    out["<indexes>"] = idx.hexdigest()[:16]
    conn.close()
    return out


@pytest.mark.parametrize(("scale", "seed"), list(PINNED_CURRENT))
def test_current_stage_is_unchanged(tmp_path, scale, seed):
    path = str(tmp_path / "current.db")
    counts = generate(path, scale=scale, seed=seed)  # the default stage
    assert digest(path) == PINNED_CURRENT[(scale, seed)]
    assert list(counts)[:5] == ["tickers", "stock_details", "etf_details", "etf_holdings", "ohlcv_data"]
    assert len(counts) == 12
    for table, rows in PINNED_COUNTS[(scale, seed)].items():
        assert counts[table] == rows


def test_unknown_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="schema_stage must be one of current, init_db"):
        generate(str(tmp_path / "x.db"), scale=0.01, schema_stage="v2")
    assert not (tmp_path / "x.db").exists()


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """{stage: (sqlite3 connection, counts, seconds)} at scale 0.01."""
    out = {}
    for stage in STAGED:
        path = str(tmp_path_factory.mktemp(stage) / "spock_local.db")
        started = time.monotonic()
        counts = generate(path, scale=0.01, schema_stage=stage)
        out[stage] = (sqlite3.connect(path), counts, time.monotonic() - started)
    yield out
    for conn, _c, _s in out.values():
        conn.close()


def columns(conn, table):
    """{name: (declared type, notnull, default, pk)}"""
    return {r[1]: (r[2], r[3], r[4], r[5]) for r in conn.execute('PRAGMA table_info("%s")' % table)}


def unique_keys(conn, table):
    """Column tuples of the table's UNIQUE indexes and constraints (the rowid primary key excluded)."""
    keys = set()
    for _seq, name, unique, _origin, _partial in conn.execute('PRAGMA index_list("%s")' % table):
        if unique:
            keys.add(tuple(r[2] for r in conn.execute('PRAGMA index_info("%s")' % name)))
    return keys


def scalar(conn, sql):
    return conn.execute(sql).fetchone()[0]


def test_each_stage_is_small_and_fast(stages):
    for stage, (_conn, counts, seconds) in stages.items():
        assert seconds < 3, (stage, seconds)
        assert sum(counts.values()) < 12000, stage


def test_init_db_schema(stages):
    conn = stages["init_db"][0]
    assert "market_tier" not in columns(conn, "tickers")
    fund = columns(conn, "ticker_fundamentals")
    assert list(fund) == ["id", "ticker", "date", "period_type", *METRICS, "created_at", "data_source"]
    assert unique_keys(conn, "ticker_fundamentals") == {("ticker", "date", "period_type")}
    assert unique_keys(conn, "exchange_rate_history") == set()
    ohlcv = columns(conn, "ohlcv_data")
    assert ohlcv["id"][3] == 1 and "atr_14" in ohlcv
    assert ohlcv["volume_ma20"][0] == "REAL" and ohlcv["created_at"][:2] == ("TEXT", 1)
    assert "actual_expense_ratio" not in columns(conn, "etf_details")
    assert not {"sector", "country"} & set(columns(conn, "etf_holdings"))


def test_fiscal_year_schema(stages):
    conn = stages["fiscal_year"][0]
    assert columns(conn, "tickers")["market_tier"][0::2] == ("TEXT", "'MAIN'")
    fund = columns(conn, "ticker_fundamentals")
    assert fund["fiscal_year"][0] == "INTEGER"
    assert all(fund[c][0] == "BIGINT" for c in FINANCIAL)
    assert list(fund)[-19:] == ["fiscal_year", *FINANCIAL]  # ALTER TABLE ADD COLUMN appends
    assert unique_keys(conn, "ticker_fundamentals") == {("ticker", "date", "period_type")}
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(ticker_fundamentals)")}
    assert {"idx_ticker_fundamentals_fiscal_year", "idx_ticker_fundamentals_ticker_year"} <= indexes


@pytest.mark.parametrize("stage", ["fiscal_year_key", "kis_ohlcv"])
def test_fiscal_year_key_schema(stages, stage):
    conn = stages[stage][0]
    fund = columns(conn, "ticker_fundamentals")
    # the rebuild moved fiscal_year after period_type and lost the financial columns
    assert list(fund) == ["id", "ticker", "date", "period_type", "fiscal_year", *METRICS, "created_at", "data_source"]
    assert unique_keys(conn, "ticker_fundamentals") == {("ticker", "fiscal_year", "period_type")}
    assert "market_tier" in columns(conn, "tickers")


def test_kis_ohlcv_schema(stages):
    conn = stages["kis_ohlcv"][0]
    ohlcv = columns(conn, "ohlcv_data")
    assert "id" not in ohlcv and "atr_14" not in ohlcv
    assert ohlcv["volume_ma20"][0] == "BIGINT" and ohlcv["date"][0] == "DATE"
    assert ohlcv["region"][1] == 1
    assert ohlcv["created_at"][2] == ohlcv["updated_at"][2] == "CURRENT_TIMESTAMP"
    assert [c for c, v in ohlcv.items() if v[3]] == ["ticker", "region", "timeframe", "date"]
    assert ("ticker", "timeframe", "date") in unique_keys(conn, "ohlcv_data")
    assert scalar(conn, "SELECT count(*) FROM pragma_index_list('ohlcv_data') WHERE name = 'idx_ohlcv_unique'") == 1
    # dynamic typing: the rolling-mean volume_ma20 stays REAL in its BIGINT column
    assert scalar(conn, "SELECT count(*) FROM ohlcv_data WHERE typeof(volume_ma20) = 'real'") > 0
    assert scalar(conn, "SELECT count(*) FROM ohlcv_data WHERE region IS NULL") == 0
    # the collector's upsert: last write wins, updated_at moves, created_at stays
    assert scalar(conn, "SELECT count(*) FROM ohlcv_data WHERE updated_at = '2025-10-18 01:00:00' "
                        "AND created_at = '2025-10-17 18:00:00'") == 3


def test_null_fiscal_year_daily_snapshots(stages):
    for stage, expected in (("fiscal_year", 35), ("fiscal_year_key", 49), ("kis_ohlcv", 49)):
        conn = stages[stage][0]
        assert scalar(conn, "SELECT count(*) FROM ticker_fundamentals WHERE period_type = 'DAILY' "
                            "AND fiscal_year IS NULL") == expected, stage
        assert scalar(conn, "SELECT count(*) FROM ticker_fundamentals WHERE period_type = 'DAILY' "
                            "AND fiscal_year IS NOT NULL") == 0
        # several snapshots per ticker on different days
        assert scalar(conn, "SELECT min(n) FROM (SELECT count(DISTINCT date) n FROM ticker_fundamentals "
                            "WHERE period_type = 'DAILY' GROUP BY ticker)") >= 5
    init = stages["init_db"][0]
    assert scalar(init, "SELECT count(*) FROM ticker_fundamentals WHERE period_type = 'DAILY'") == 21
    # at the fiscal_year key, NULL never collides: (ticker, date, DAILY) repeats for every ticker
    conn = stages["fiscal_year_key"][0]
    assert scalar(conn, "SELECT count(*) FROM (SELECT 1 FROM ticker_fundamentals WHERE period_type = 'DAILY' "
                        "GROUP BY ticker, date HAVING count(*) = 2)") == len(FUND_TICKERS)


def test_fiscal_years_under_one_collection_date(stages):
    conn = stages["fiscal_year_key"][0]
    years = conn.execute("SELECT ticker, group_concat(fiscal_year) FROM (SELECT * FROM ticker_fundamentals "
                         "WHERE date = '2025-10-15' AND period_type = 'ANNUAL' ORDER BY fiscal_year) "
                         "GROUP BY ticker").fetchall()
    assert dict(years) == dict.fromkeys(FUND_TICKERS, "2020,2021,2022")
    # first wins in the rebuild: the oldest 2024 annual (dated by its collection day) is kept, the
    # period-end DART row and collect_quality's row of the same fiscal year went with the fix
    assert dict(conn.execute("SELECT ticker, date || ' ' || data_source FROM ticker_fundamentals "
                             "WHERE fiscal_year = 2024 AND period_type = 'ANNUAL'")) \
        == dict.fromkeys(FUND_TICKERS, "2025-09-05 DART-2024-11011")
    # Q3 overwrote Q1 of the same fiscal year for the tickers it was written for
    q = dict(conn.execute("SELECT ticker, data_source FROM ticker_fundamentals WHERE fiscal_year = 2025 "
                          "AND period_type = 'QUARTERLY'"))
    assert [q[t] for t in FUND_TICKERS] == ["DART-2025-11014"] * 3 + ["DART-2025-11013"] * 4


def test_dart_rows_carry_year_and_report(stages):
    conn = stages["fiscal_year"][0]
    codes = dict(conn.execute("SELECT substr(data_source, 11), count(*) FROM ticker_fundamentals "
                              "WHERE data_source LIKE 'DART-____-_____' GROUP BY 1"))
    assert set(codes) == {"11011", "11012", "11013", "11014"}
    assert scalar(conn, "SELECT count(*) FROM ticker_fundamentals WHERE data_source LIKE 'DART-%' "
                        "AND CAST(substr(data_source, 6, 4) AS INTEGER) != fiscal_year") == 0
    # the older DART row (dated by its collection day) got its fiscal_year from data_source when the column
    # came; the quality writer dates its 2024 annual by the day it ran, beside DART's period-end row
    assert conn.execute("SELECT date FROM ticker_fundamentals WHERE ticker = '005930' AND fiscal_year = 2024 "
                        "AND period_type = 'ANNUAL' ORDER BY date").fetchall() \
        == [("2024-12-31",), ("2025-09-05",), ("2025-10-10",)]
    assert scalar(conn, "SELECT count(*) FROM ticker_fundamentals WHERE period_type = 'ANNUAL' "
                        "AND fiscal_year IS NULL") == 0


def test_or_replace_keeps_only_the_survivor(stages):
    conn = stages["init_db"][0]
    # three fiscal years written under one collection date: the last replaced the others
    assert dict(conn.execute("SELECT ticker, data_source FROM ticker_fundamentals WHERE period_type = 'ANNUAL'")) \
        == dict.fromkeys(FUND_TICKERS, "DART-2024-11011")
    assert scalar(conn, "SELECT max(id) - count(*) FROM ticker_fundamentals") == 2 * len(FUND_TICKERS)
    for stage in STAGED:
        conn = stages[stage][0]
        row = conn.execute("SELECT name, sector_code, enriched_at FROM tickers WHERE ticker = '005930'").fetchone()
        assert row[0].endswith("(renamed)") and row[1:] == (None, None), stage
        assert scalar(conn, "SELECT count(*) FROM tickers WHERE ticker = '005930'") == 1
        assert scalar(conn, "SELECT weight FROM etf_holdings WHERE stock_ticker = '000660'") == 11.0
        assert scalar(conn, "SELECT count(*) FROM global_market_indices WHERE symbol = '^GSPC'") == 1
    assert scalar(stages["fiscal_year"][0], "SELECT market_tier FROM tickers WHERE ticker = 'AAPL'") == "MAIN"


def test_exchange_rates_repeat_without_a_key(stages):
    for stage in STAGED:
        conn = stages[stage][0]
        assert stages[stage][1]["exchange_rate_history"] == 27
        repeated = scalar(conn, "SELECT count(*) FROM (SELECT 1 FROM exchange_rate_history "
                                "GROUP BY currency, rate_date HAVING count(*) > 1)")
        assert repeated == 9, stage
        assert scalar(conn, "SELECT max(n) FROM (SELECT count(*) n FROM exchange_rate_history "
                            "GROUP BY currency, rate_date)") == 3


def test_orphan_etf_and_legacy_tables(stages):
    for stage in STAGED:
        conn, counts, _s = stages[stage]
        assert scalar(conn, "SELECT count(*) FROM etf_details WHERE ticker NOT IN (SELECT ticker FROM tickers)") == 1
        assert counts["etf_details"] == 11
        assert {t: counts[t] for t in LEGACY} == dict.fromkeys(LEGACY, LEGACY_ROWS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert set(LEGACY) <= tables
        assert ("config_hash",) in unique_keys(conn, "backtest_results")
        assert {"kelly_sizing", "kelly_analysis", "gpt_analysis", "etfs", "filter_cache_stage0"} <= set(LEGACY)
        assert scalar(conn, "SELECT count(*) FROM kis_api_logs "
                            "WHERE typeof(response_time) NOT IN ('real', 'null')") == 0
        # child rows point at parents that exist (the real writers keep these consistent)
        assert scalar(conn, "SELECT count(*) FROM rebalancing_orders WHERE rebalance_id NOT IN "
                            "(SELECT rebalance_id FROM rebalancing_history)") == 0


def test_stages_are_deterministic(tmp_path, stages):
    for stage in ("init_db", "kis_ohlcv"):
        path = str(tmp_path / ("%s.db" % stage))
        generate(path, scale=0.01, schema_stage=stage)
        again = str(tmp_path / ("%s-again.db" % stage))
        generate(again, scale=0.01, schema_stage=stage)
        assert digest(path) == digest(again)


def run_module(monkeypatch, args):
    import sqlite_sample

    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")  # what a direct invocation of a module uses
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        sqlite_sample.main()
    return json.loads(out.getvalue())


def test_module_schema_stage_option(tmp_path, monkeypatch):
    path = str(tmp_path / "m.db")
    result = run_module(monkeypatch, {"path": path, "scale": 0.01, "schema_stage": "fiscal_year_key"})
    assert result["changed"] and result["rows"]["backtest_results"] == LEGACY_ROWS
    assert result["rows"]["ticker_fundamentals"] == 105
    unchanged = run_module(monkeypatch, {"path": path, "schema_stage": "fiscal_year_key"})
    assert unchanged["changed"] is False
    refused = run_module(monkeypatch, {"path": path, "schema_stage": "v9", "force": True})
    assert refused["failed"] and "schema_stage" in refused["msg"]
