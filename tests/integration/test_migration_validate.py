"""migration_validate against a small migrated dataset: clean passes, every planted fault is named."""

from __future__ import annotations

import pytest
from ansible.module_utils.validate.runner import run
from integration.validation_dataset import build

pytestmark = pytest.mark.integration


@pytest.fixture
def dataset(pg_server, pg_db, tmp_path):
    src = str(tmp_path / "source.db")
    conn = pg_server.connect(pg_db)
    mapping = build(src, conn)
    params = pg_server.params(pg_db, src=src, mapping=mapping, checks=None, severity_overrides={},
                              quality_severity="warning", expected_chunk_interval="1 month", max_differences=10)
    yield params, conn
    conn.close()


def by_name(result):
    return {c["name"]: c for c in result["checks"]}


def failed(result):
    return {c["name"]: c for c in result["checks"] if c["status"] == "fail"}


def test_clean_dataset_passes(dataset):
    params, _conn = dataset
    result = run(params)
    assert result["summary"]["critical_failures"] == 0, [c for c in result["checks"] if c["status"] == "fail"]
    checks = by_name(result)
    for table in ("tickers", "stock_details", "etf_details", "ohlcv_data"):
        assert checks["content %s" % table]["status"] == "pass", checks["content %s" % table]
        assert checks["row accounting %s" % table]["status"] == "pass", checks["row accounting %s" % table]
    assert "1 rejected" in checks["content stock_details"]["detail"]
    assert checks["content ohlcv_data"]["data"]["target_read_path"] == "binary COPY"
    assert checks["aggregate ohlcv_monthly complete"]["status"] == "pass"
    assert checks["ticker format US"]["status"] == "pass"
    print("clean validation took %.2f s" % result["seconds"])



def test_deleted_row_is_named(dataset):
    params, conn = dataset
    conn.cursor().execute("DELETE FROM ohlcv_data WHERE ticker = 'AAPL' AND date = '2025-07-10'")
    result = run(params)
    bad = failed(result)
    content = bad["content ohlcv_data"]
    assert content["severity"] == "critical"
    assert content["data"]["keyed"]["missing"] == 1
    assert "ticker=AAPL, region=US, timeframe=D, date=2025-07-10" in content["detail"]
    assert "missing in PostgreSQL" in content["detail"]
    assert "row accounting ohlcv_data" in bad  # 559 rows in PostgreSQL, 560 copied
    assert "ohlcv_data" in result["msg"] and "content ohlcv_data" in result["failed_checks"]


def test_changed_value_names_key_and_column(dataset):
    params, conn = dataset
    conn.cursor().execute("UPDATE ohlcv_data SET close = close + 0.0001 "
                          "WHERE ticker = '005930' AND date = '2025-08-01'")
    result = run(params)
    bad = failed(result)
    content = bad["content ohlcv_data"]
    assert content["data"]["differing_columns"] == ["close"]
    finding = content["data"]["findings"][0]
    assert finding["kind"] == "changed"
    assert finding["key"] == "ticker=005930, region=KR, timeframe=D, date=2025-08-01"
    assert [c["column"] for c in finding["columns"]] == ["close"]
    assert "row accounting ohlcv_data" not in bad  # counts still agree: only content sees it


def test_changed_timestamp_and_boolean(dataset):
    params, conn = dataset
    cur = conn.cursor()
    cur.execute("UPDATE tickers SET is_active = NOT is_active WHERE ticker = 'VNM'")
    cur.execute("UPDATE stock_details SET created_at = created_at + interval '1 microsecond' WHERE ticker = 'AAPL'")
    bad = failed(run(params))
    assert bad["content tickers"]["data"]["differing_columns"] == ["is_active"]
    assert bad["content stock_details"]["data"]["differing_columns"] == ["created_at"]


def test_infinite_timestamp_falls_back_and_is_named(dataset):
    params, conn = dataset
    conn.cursor().execute("UPDATE stock_details SET created_at = 'infinity' WHERE ticker = 'AAPL'")
    content = failed(run(dict(params, checks=["content"])))["content stock_details"]
    assert content["data"]["target_read_path"] == "rows"
    assert content["data"]["findings"][0]["columns"][0]["column"] == "created_at"


def test_lost_unique_key_is_caught(dataset):
    # duplicates are judged only on a real unique constraint: a target that lost the one the
    # mapping's keys name fails the validation, naming the keys and what the target has
    params, conn = dataset
    cur = conn.cursor()
    cur.execute("ALTER TABLE etf_details DROP CONSTRAINT etf_details_pkey")
    cur.execute("INSERT INTO etf_details SELECT * FROM etf_details WHERE ticker = '0700'")
    result = run(params)
    check = failed(result)["mapping etf_details"]
    assert check["severity"] == "critical"
    assert ("keys (ticker, region) of etf_details match no unique constraint of public.etf_details "
            "(its unique keys: none)") in check["detail"]
    assert "mapping etf_details" in result["failed_checks"]


def test_null_in_a_nullable_key_is_distinct_and_compared(dataset):
    params, conn = dataset
    cur = conn.cursor()
    cur.execute("ALTER TABLE etf_details DROP CONSTRAINT etf_details_pkey")
    cur.execute("ALTER TABLE etf_details ALTER COLUMN region DROP NOT NULL")
    cur.execute("ALTER TABLE etf_details ADD CONSTRAINT etf_details_key UNIQUE (ticker, region)")
    cur.execute("INSERT INTO etf_details SELECT ticker, NULL, issuer, expense_ratio, created_at FROM etf_details "
                "WHERE ticker = '0700'")
    result = run(params)
    checks, bad = by_name(result), failed(result)
    # the catalog allows NULL there (NULLs distinct): reported, not a failure of its own
    assert checks["no NULL keys etf_details"]["status"] == "pass"
    assert "region 1" in checks["no NULL keys etf_details"]["detail"]
    assert bad["content etf_details"]["data"]["keyed"]["extra"] == 1


def test_orphan_is_caught(dataset):
    params, conn = dataset
    conn.cursor().execute("INSERT INTO etf_details VALUES ('ZZZZ', 'US', 'x', 0.1, now())")
    bad = failed(run(params))
    assert "1 orphan row" in bad["no orphans etf_details -> tickers(ticker, region) via ticker"]["detail"]
    assert bad["content etf_details"]["data"]["keyed"]["extra"] == 1


def test_stale_aggregate_is_caught(dataset):
    params, conn = dataset
    conn.cursor().execute("INSERT INTO ohlcv_data (ticker, region, timeframe, date, open, high, low, close, volume) "
                          "VALUES ('AAPL', 'US', 'D', '2025-10-01', 1, 2, 1, 1.5, 100)")
    result = run(params)
    bad = failed(result)
    for agg in ("ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly"):
        assert bad["aggregate %s complete" % agg]["table"] == agg
        assert "aggregate %s complete" % agg in result["failed_checks"]
    assert "stale" in bad["aggregate ohlcv_monthly complete"]["detail"]


def test_quality_is_a_warning(dataset):
    params, conn = dataset
    conn.cursor().execute("UPDATE ohlcv_data SET low = high + 1 WHERE ticker = '7203' AND date = '2025-07-03'")
    result = run(dict(params, checks=["quality"]))
    bad = failed(result)
    assert bad["ohlcv_data high >= low"]["severity"] == "warning"
    assert result["summary"]["critical_failures"] == 0
    result = run(dict(params, checks=["quality"], severity_overrides={"ohlcv_data high*": "critical"}))
    assert result["failed_checks"] == ["ohlcv_data high >= low"]


def test_bad_ticker_format(dataset):
    params, conn = dataset
    conn.cursor().execute("UPDATE tickers SET ticker = 'vn-m' WHERE ticker = 'VNM'")
    bad = failed(run(dict(params, checks=["quality"])))
    assert "vn-m" in bad["ticker format VN"]["detail"]


def test_missing_compression_policy(dataset, pg_server, pg_db):
    params, conn = dataset
    cur = conn.cursor()
    cur.execute("SHOW timescaledb.license")
    license_ = cur.fetchone()[0]
    result = run(dict(params, checks=["timescaledb"]))
    check = by_name(result)["compression policy ohlcv_data"]
    if license_ != "timescale":
        assert check["status"] == "skip" and "Community" in check["detail"]
        pytest.skip("TimescaleDB %s edition: compression policies are a Community feature; the check reports "
                    "skip: %s" % (license_, check["detail"]))
    cur.execute("ALTER TABLE ohlcv_data SET (timescaledb.compress, timescaledb.compress_segmentby = 'ticker, region')")
    result = run(dict(params, checks=["timescaledb"]))
    assert by_name(result)["compression policy ohlcv_data"]["status"] == "fail"


def test_apache_skips_have_reasons(dataset):
    params, _conn = dataset
    for c in run(dict(params, checks=["timescaledb"]))["checks"]:
        if c["status"] == "skip":
            assert c["detail"]


def test_rejected_rows_must_be_accounted(dataset):
    params, conn = dataset
    conn.cursor().execute("UPDATE quant_meta.migration_checkpoints SET rejected_rows = 0 "
                          "WHERE table_name = 'stock_details'")
    bad = failed(run(dict(params, checks=["reconciliation"])))
    assert "unexplained difference" in bad["row accounting stock_details"]["detail"]


def test_missing_checkpoint_is_critical(dataset):
    params, conn = dataset
    conn.cursor().execute("DELETE FROM quant_meta.migration_checkpoints WHERE table_name = 'tickers'")
    result = run(dict(params, checks=["reconciliation"]))
    assert result["failed_checks"] == ["row accounting tickers"]


def test_sequential_mode_matches_parallel(dataset):
    params, conn = dataset
    conn.cursor().execute("UPDATE ohlcv_data SET volume = volume + 1 WHERE ticker = 'VNM' AND date = '2025-07-20'")
    a = failed(run(dict(params, checks=["content"])))
    b = failed(run(dict(params, checks=["content"], parallel=False)))
    assert a["content ohlcv_data"]["data"]["findings"] == b["content ohlcv_data"]["data"]["findings"]
