"""A small migrated dataset for migration_validate tests: a SQLite source and the
PostgreSQL tables it was migrated into (DDL per the team contract), plus the
quant_meta accounting, built consistently so a clean run passes."""

from __future__ import annotations

import datetime
import random
import sqlite3

from ansible.module_utils.core.quant_meta import ensure_schema
from psycopg2.extras import execute_values

TICKERS = [  # ticker, region, name, exchange
    ("005930", "KR", "Samsung Electronics", "KOSPI"),
    ("000660", "KR", "SK Hynix", "KOSPI"),
    ("AAPL", "US", "Apple", "NASDAQ"),
    ("BRK.B", "US", "Berkshire B", "NYSE"),
    ("0700", "HK", "Tencent", "SEHK"),
    ("7203", "JP", "Toyota", "TSE"),
    ("600519", "CN", "Kweichow Moutai", "SSE"),
    ("VNM", "VN", "Vinamilk", "HOSE"),
]
DAYS = 70

MAPPING = {
    "tickers": {"keys": ["ticker", "region"]},
    "stock_details": {"keys": ["ticker", "region"]},
    "etf_details": {"keys": ["ticker", "region"],
                    "derive": {"region": {"lookup": "tickers", "key": "ticker", "match": "ticker", "value": "region"}}},
    "ohlcv_data": {"drop": ["id"], "keys": ["ticker", "region", "timeframe", "date"],
                   "derive": {"region": {"lookup": "tickers", "key": "ticker", "match": "ticker", "value": "region"}}},
}

SQLITE_DDL = [
    "CREATE TABLE tickers (ticker TEXT PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, exchange TEXT NOT NULL, "
    "is_active BOOLEAN DEFAULT 1, listing_date TEXT, created_at TEXT NOT NULL)",
    "CREATE TABLE stock_details (ticker TEXT PRIMARY KEY, region TEXT, sector TEXT, is_spac BOOLEAN DEFAULT 0, "
    "par_value INTEGER, created_at TEXT NOT NULL)",
    "CREATE TABLE etf_details (ticker TEXT PRIMARY KEY, issuer TEXT, expense_ratio REAL NOT NULL, "
    "created_at TEXT NOT NULL)",
    "CREATE TABLE ohlcv_data (id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT NOT NULL, timeframe TEXT NOT NULL, "
    "date TEXT NOT NULL, region TEXT, open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL, "
    "volume BIGINT NOT NULL, ma5 REAL, created_at TEXT NOT NULL, UNIQUE (ticker, region, timeframe, date))",
]

PG_DDL = [
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    "CREATE TABLE tickers (ticker text NOT NULL, region text NOT NULL, name text NOT NULL, exchange text NOT NULL, "
    "is_active boolean, listing_date date, created_at timestamptz, PRIMARY KEY (ticker, region))",
    "CREATE TABLE stock_details (ticker text NOT NULL, region text NOT NULL, sector text, is_spac boolean, "
    "par_value bigint, created_at timestamptz, PRIMARY KEY (ticker, region), "
    "FOREIGN KEY (ticker, region) REFERENCES tickers (ticker, region))",
    "CREATE TABLE etf_details (ticker text NOT NULL, region text NOT NULL, issuer text, "
    "expense_ratio double precision NOT NULL, created_at timestamptz, "
    "CONSTRAINT etf_details_pkey PRIMARY KEY (ticker, region))",
    "CREATE TABLE ohlcv_data (ticker text NOT NULL, region text NOT NULL, timeframe text NOT NULL, date date NOT NULL, "
    "open double precision, high double precision, low double precision, close double precision, volume bigint, "
    "ma5 double precision, created_at timestamptz, PRIMARY KEY (ticker, region, timeframe, date))",
    "SELECT create_hypertable('ohlcv_data', 'date', chunk_time_interval => interval '1 month')",
    "CREATE TABLE factor_scores (ticker text NOT NULL, region text NOT NULL, date date NOT NULL, "
    "factor_name text NOT NULL, "
    "score double precision, PRIMARY KEY (ticker, region, date, factor_name))",
    "SELECT create_hypertable('factor_scores', 'date', chunk_time_interval => interval '1 month')",
]

AGG_SQL = """CREATE MATERIALIZED VIEW {name} AS
SELECT ticker, region, timeframe, time_bucket('{width}'::interval, date) AS {col},
       first(open, date) AS open, max(high) AS high, min(low) AS low, last(close, date) AS close,
       sum(volume) AS volume, count(*) AS trading_days
  FROM ohlcv_data {where} GROUP BY ticker, region, timeframe, {col}"""
AGGS = [("ohlcv_monthly", "1 month", "month", ""), ("ohlcv_quarterly", "3 months", "quarter", "WHERE timeframe = 'D'"),
        ("ohlcv_yearly", "1 year", "year", "")]


def _ts(rng):
    base = datetime.datetime(2025, 10, 17, 10, 0, 0)
    return (base + datetime.timedelta(seconds=rng.randint(0, 86400), microseconds=rng.randint(0, 999999))).isoformat()


def build(sqlite_path, conn, orphan=True):
    """Create and fill both sides; returns the mapping. conn: autocommit psycopg2 connection."""
    rng = random.Random(42)
    lite = sqlite3.connect(sqlite_path)
    for stmt in SQLITE_DDL:
        lite.execute(stmt)
    tick_rows = [(t, r, n, e, rng.choice([0, 1]), "2001-0%d-15" % rng.randint(1, 9), _ts(rng))
                 for t, r, n, e in TICKERS]
    lite.executemany("INSERT INTO tickers VALUES (?,?,?,?,?,?,?)", tick_rows)
    stock = [(t, r, rng.choice(["Tech", "Auto", None]), 0, rng.choice([100, 5000, None]), _ts(rng))
             for t, r, _n, _e in TICKERS[:5]]
    if orphan:
        stock.append(("999999", None, "Ghost", 0, None, _ts(rng)))  # rejected by the migration
    lite.executemany("INSERT INTO stock_details VALUES (?,?,?,?,?,?)", stock)
    etf = [(t, "Issuer %d" % i, round(rng.uniform(0.01, 1.5), 4), _ts(rng))
           for i, (t, _r, _n, _e) in enumerate(TICKERS[2:6])]
    lite.executemany("INSERT INTO etf_details VALUES (?,?,?,?)", etf)
    start = datetime.date(2025, 7, 1)
    ohlcv = []
    for t, r, _n, _e in TICKERS:
        price = rng.uniform(10, 500)
        for d in range(DAYS):
            price *= rng.uniform(0.97, 1.03)
            lo, hi = price * 0.98, price * 1.02
            ohlcv.append((t, "D", (start + datetime.timedelta(days=d)).isoformat(), None if d % 9 == 0 else r,
                          rng.uniform(lo, hi), hi, lo, price, rng.randint(0, 10**7),
                          None if d < 4 else price * 0.99, _ts(rng)))
    lite.executemany("INSERT INTO ohlcv_data (ticker, timeframe, date, region, open, high, low, close, volume, ma5, "
                     "created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", ohlcv)
    lite.commit()
    region_of = {t: r for t, r, _n, _e in TICKERS}
    cur = conn.cursor()
    for stmt in PG_DDL:
        cur.execute(stmt)

    def utc(text):
        return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)

    execute_values(cur, "INSERT INTO tickers VALUES %s",
                   [(t, r, n, e, bool(a), datetime.date.fromisoformat(ld), utc(c))
                    for t, r, n, e, a, ld, c in tick_rows])
    execute_values(cur, "INSERT INTO stock_details VALUES %s",
                   [(t, r, s, bool(sp), pv, utc(c)) for t, r, s, sp, pv, c in stock if r is not None])
    execute_values(cur, "INSERT INTO etf_details VALUES %s", [(t, region_of[t], i, er, utc(c)) for t, i, er, c in etf])
    execute_values(cur, "INSERT INTO ohlcv_data VALUES %s",
                   [(t, r or region_of[t], tf, datetime.date.fromisoformat(d), o, h, lo, c, v, m, utc(ca))
                    for t, tf, d, r, o, h, lo, c, v, m, ca in ohlcv])
    for name, width, col, where in AGGS:
        cur.execute(AGG_SQL.format(name=name, width=width, col=col, where=where))
    conn.autocommit = False
    ensure_schema(conn)
    conn.autocommit = True
    counts = {"tickers": len(tick_rows), "stock_details": len(stock), "etf_details": len(etf), "ohlcv_data": len(ohlcv)}
    for table, n in counts.items():
        rejected = 1 if table == "stock_details" and orphan else 0
        cur.execute("INSERT INTO quant_meta.migration_checkpoints (table_name, target_table, source_path, "
                    "source_fingerprint, source_rows, last_rowid, copied_rows, rejected_rows, duplicate_rows, status, "
                    "run_id, finished_at) VALUES (%s, %s, %s, 'test', %s, %s, %s, %s, 0, 'done', 'run-1', now())",
                    (table, table, sqlite_path, n, n, n - rejected, rejected))
    if orphan:
        rowid = lite.execute("SELECT rowid FROM stock_details WHERE ticker = '999999'").fetchone()[0]
        cur.execute("INSERT INTO quant_meta.migration_rejects (run_id, table_name, source_rowid, kind, column_name, "
                    "value, reason) VALUES ('run-1', 'stock_details', %s, 'reject', 'ticker', '999999', 'orphan')",
                    (rowid,))
    cur.execute("ANALYZE")
    lite.close()
    return MAPPING
