"""Deterministic generator of a spock-shaped SQLite file (data/spock_local.db look-alike).

Used by library/sqlite_sample.py (the role generates a sample on the managed
host when no source file is given), by scripts/make-sample-db and by the tests.

* The 12 source tables with the SQLite DDL of the spec (init_db.py plus the
  known drift), sizes from the spec at ``scale=1.0`` (18,661 tickers with the
  spec's region split, 926,325 OHLCV rows of about one year of daily 'D'
  bars, 17,606 stock_details, 1,028 etf_details, 3 etf_holdings, 47
  ticker_fundamentals, 0 technical_analysis/trades/portfolio/market_sentiment,
  6 global indices, 5 FX rates). ``scale`` shrinks the large tables (tests
  use 0.01); the small tables and every quirk stay.
* Seeded RNG: the same (seed, scale) gives the same file content.
* The real quirks (spec section 1.5), see QUIRKS below, so the migration's
  handling of each can be tested.
* ``schema_stage``: ``current`` (the default, above) or a stage a real file can
  be at (init_db, fiscal_year, fiscal_year_key, kis_ohlcv): that stage's schema,
  the SQLite-only tables and the stage's key quirks, written in the order the
  platform's scripts write them (module_utils/sample/stages.py).
"""

from __future__ import annotations

import datetime
import os
import random
import sqlite3

try:
    from ansible.module_utils.sample import stages as sample_stages
except ImportError:  # scripts/make-sample-db imports this file without Ansible
    import stages as sample_stages

STAGES = sample_stages.STAGES

# The spec lists KR 1,365 (later reports 1,364); 1,364 makes the regions add up to the 18,661 total.
REGION_COUNTS = {"CN": 3450, "HK": 2722, "JP": 4036, "KR": 1364, "US": 6532, "VN": 557}
OHLCV_ROWS = 926325
TRADING_DAYS = 250
STOCK_DETAILS_ROWS = 17606
STOCK_DETAILS_ORPHANS = 6
ETF_DETAILS_ROWS = 1028
ETF_DETAILS_ORPHANS = 1
OHLCV_NULL_REGION_SHARE = 0.03
OHLCV_DUPLICATES = 75

QUIRKS = {
    "Q1": "ohlcv_data rows with NULL region (resolved by looking the ticker up in tickers)",
    "Q2": "stock_details orphans: ticker not in tickers, region NULL",
    "Q3": "etf_details, ticker_fundamentals, technical_analysis, portfolio, etf_holdings have no region column",
    "Q4": "ticker_fundamentals: several fiscal years collected on the same date",
    "Q5": "etf_holdings rows (region = the ETF's region)",
    "Q6": "sector/industry codes longer than 10 characters; expense ratios with more than 2 decimals; region 'ASIA'",
    "Q7": "OHLCV indicator columns filled (ma*, rsi, macd, bb, atr)",
    "Q8": "source timestamps in both ISO 'T' + microseconds and 'YYYY-MM-DD HH:MM:SS' forms",
    "Q9": "duplicate OHLCV keys hidden by a NULL region (SQLite UNIQUE treats NULLs as distinct)",
    "Q11": "CN 6-digit and HK 4-digit tickers (also with NULL region) that shape-guessing would call KR/JP",
}

DDL = [
    """CREATE TABLE tickers (
        ticker TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        name_eng TEXT,
        exchange TEXT NOT NULL,
        region TEXT NOT NULL,
        currency TEXT NOT NULL DEFAULT 'KRW',
        asset_type TEXT NOT NULL DEFAULT 'STOCK',
        listing_date TEXT,
        lot_size INTEGER DEFAULT 1,
        sector_code TEXT,
        is_active BOOLEAN DEFAULT 1,
        delisting_date TEXT,
        created_at TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        enriched_at TEXT,
        data_source TEXT,
        market_tier TEXT DEFAULT 'MAIN'
    )""",
    """CREATE TABLE stock_details (
        ticker TEXT PRIMARY KEY,
        sector TEXT,
        sector_code TEXT,
        industry TEXT,
        industry_code TEXT,
        is_spac BOOLEAN DEFAULT 0,
        is_preferred BOOLEAN DEFAULT 0,
        par_value INTEGER,
        region TEXT,
        created_at TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        enriched_at TEXT,
        FOREIGN KEY (ticker) REFERENCES tickers(ticker) ON DELETE CASCADE
    )""",
    """CREATE TABLE etf_details (
        ticker TEXT PRIMARY KEY,
        issuer TEXT,
        inception_date TEXT,
        underlying_asset_class TEXT,
        tracking_index TEXT NOT NULL,
        geographic_region TEXT,
        sector_theme TEXT,
        fund_type TEXT,
        aum BIGINT,
        listed_shares BIGINT,
        underlying_asset_count INTEGER,
        expense_ratio REAL NOT NULL,
        ter REAL,
        leverage_ratio TEXT,
        currency_hedged BOOLEAN,
        tracking_error_20d REAL,
        tracking_error_60d REAL,
        tracking_error_120d REAL,
        tracking_error_250d REAL,
        week_52_high INTEGER,
        week_52_low INTEGER,
        pension_eligible BOOLEAN,
        investment_strategy TEXT,
        created_at TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        data_source TEXT DEFAULT 'ETFCheck',
        actual_expense_ratio REAL,
        FOREIGN KEY (ticker) REFERENCES tickers(ticker) ON DELETE CASCADE
    )""",
    """CREATE TABLE etf_holdings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        etf_ticker TEXT NOT NULL,
        stock_ticker TEXT NOT NULL,
        weight REAL NOT NULL,
        shares INTEGER,
        market_value REAL,
        rank_in_etf INTEGER,
        weight_change_from_prev REAL,
        as_of_date TEXT NOT NULL,
        created_at TEXT NOT NULL,
        data_source TEXT,
        sector TEXT,
        country TEXT,
        UNIQUE (etf_ticker, stock_ticker, as_of_date),
        FOREIGN KEY (etf_ticker) REFERENCES etfs(ticker) ON DELETE CASCADE,
        FOREIGN KEY (stock_ticker) REFERENCES tickers(ticker) ON DELETE CASCADE
    )""",
    """CREATE TABLE ohlcv_data (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticker TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        date TEXT NOT NULL,
        region TEXT,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume BIGINT NOT NULL,
        ma5 REAL, ma20 REAL, ma60 REAL, ma120 REAL, ma200 REAL,
        rsi_14 REAL,
        macd REAL, macd_signal REAL, macd_hist REAL,
        bb_upper REAL, bb_middle REAL, bb_lower REAL,
        atr_14 REAL,
        atr REAL,
        volume_ma20 REAL,
        volume_ratio REAL,
        created_at TEXT NOT NULL,
        UNIQUE (ticker, region, timeframe, date),
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    """CREATE TABLE technical_analysis (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticker TEXT NOT NULL,
        analysis_date TEXT NOT NULL,
        stage INTEGER,
        stage_confidence REAL,
        layer1_macro_score REAL,
        layer2_structural_score REAL,
        layer3_micro_score REAL,
        total_score REAL,
        signal TEXT,
        signal_strength REAL,
        gpt_pattern TEXT,
        gpt_confidence REAL,
        gpt_analysis TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (ticker, analysis_date),
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    """CREATE TABLE ticker_fundamentals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticker TEXT NOT NULL,
        date TEXT NOT NULL,
        period_type TEXT NOT NULL,
        shares_outstanding BIGINT,
        market_cap BIGINT,
        close_price REAL,
        per REAL, pbr REAL, psr REAL, pcr REAL,
        ev BIGINT,
        ev_ebitda REAL,
        dividend_yield REAL,
        dividend_per_share REAL,
        created_at TEXT NOT NULL,
        data_source TEXT,
        fiscal_year INTEGER,
        total_assets BIGINT, total_liabilities BIGINT, total_equity BIGINT, revenue BIGINT,
        operating_profit BIGINT, net_income BIGINT, ebitda BIGINT, cogs BIGINT, gross_profit BIGINT,
        depreciation BIGINT, interest_expense BIGINT, current_assets BIGINT, current_liabilities BIGINT,
        inventory BIGINT, accounts_receivable BIGINT, cash_and_equivalents BIGINT,
        operating_cash_flow BIGINT, capital_expenditure BIGINT,
        free_float_percentage REAL,
        UNIQUE (ticker, fiscal_year, period_type),
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    """CREATE TABLE trades (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticker TEXT NOT NULL,
        region TEXT NOT NULL DEFAULT 'KR',
        side TEXT NOT NULL,
        order_type TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        entry_price REAL,
        exit_price REAL,
        price REAL NOT NULL,
        amount REAL NOT NULL,
        fee REAL DEFAULT 0,
        tax REAL DEFAULT 0,
        order_no TEXT,
        execution_no TEXT,
        entry_timestamp TEXT,
        exit_timestamp TEXT,
        order_time TEXT NOT NULL,
        execution_time TEXT,
        trade_status TEXT DEFAULT 'OPEN',
        sector TEXT,
        position_size_percent REAL,
        reason TEXT,
        created_at TEXT NOT NULL,
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    """CREATE TABLE portfolio (
        ticker TEXT PRIMARY KEY,
        quantity INTEGER NOT NULL,
        avg_price REAL NOT NULL,
        current_price REAL,
        market_value REAL,
        unrealized_pnl REAL,
        unrealized_pnl_pct REAL,
        stop_loss_price REAL,
        profit_target_price REAL,
        entry_date TEXT NOT NULL,
        entry_score REAL,
        last_updated TEXT NOT NULL,
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    """CREATE TABLE market_sentiment (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        date TEXT NOT NULL UNIQUE,
        vix REAL,
        fear_greed_index REAL,
        kospi_index REAL,
        kosdaq_index REAL,
        foreign_net_buying BIGINT,
        institution_net_buying BIGINT,
        usd_krw REAL,
        jpy_krw REAL,
        oil_price REAL,
        gold_price REAL,
        market_regime TEXT,
        sentiment_score REAL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE global_market_indices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        date TEXT NOT NULL,
        symbol TEXT NOT NULL,
        index_name TEXT NOT NULL,
        region TEXT NOT NULL,
        close_price REAL NOT NULL,
        open_price REAL NOT NULL,
        high_price REAL NOT NULL,
        low_price REAL NOT NULL,
        volume BIGINT,
        change_percent REAL NOT NULL,
        trend_5d TEXT,
        consecutive_days INTEGER,
        created_at TEXT NOT NULL,
        UNIQUE (date, symbol)
    )""",
    """CREATE TABLE exchange_rate_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        currency TEXT NOT NULL,
        rate REAL NOT NULL,
        timestamp TEXT NOT NULL,
        rate_date TEXT NOT NULL,
        source TEXT DEFAULT 'BOK_API',
        created_at TEXT DEFAULT CURRENT_TIMESTAMP,
        UNIQUE (currency, rate_date)
    )""",
]

INDEXES = [
    "CREATE INDEX idx_tickers_exchange ON tickers(exchange)",
    "CREATE INDEX idx_tickers_asset_type ON tickers(asset_type)",
    "CREATE INDEX idx_tickers_region ON tickers(region)",
    "CREATE INDEX idx_tickers_exchange_tier ON tickers(exchange, market_tier)",
    "CREATE INDEX idx_stock_details_sector ON stock_details(sector)",
    "CREATE INDEX idx_stock_details_industry ON stock_details(industry)",
    "CREATE INDEX idx_stock_details_region ON stock_details(region)",
    "CREATE INDEX idx_etf_details_geographic_region ON etf_details(geographic_region)",
    "CREATE INDEX idx_etf_details_sector_theme ON etf_details(sector_theme)",
    "CREATE INDEX idx_etf_details_fund_type ON etf_details(fund_type)",
    "CREATE INDEX idx_etf_details_expense_ratio ON etf_details(expense_ratio)",
    "CREATE INDEX idx_holdings_stock_date_weight ON etf_holdings(stock_ticker, as_of_date DESC, weight DESC)",
    "CREATE INDEX idx_holdings_etf_date_weight ON etf_holdings(etf_ticker, as_of_date DESC, weight DESC)",
    "CREATE INDEX idx_holdings_date ON etf_holdings(as_of_date DESC)",
    "CREATE INDEX idx_holdings_weight ON etf_holdings(weight DESC)",
    "CREATE INDEX idx_ohlcv_ticker_region_date ON ohlcv_data(ticker, region, date DESC)",
    "CREATE INDEX idx_ohlcv_timeframe ON ohlcv_data(timeframe)",
    "CREATE INDEX idx_ohlcv_region ON ohlcv_data(region)",
    "CREATE INDEX idx_ta_ticker_date ON technical_analysis(ticker, analysis_date DESC)",
    "CREATE INDEX idx_ta_signal ON technical_analysis(signal)",
    "CREATE INDEX idx_ta_score ON technical_analysis(total_score DESC)",
    "CREATE INDEX idx_fundamentals_ticker_date ON ticker_fundamentals(ticker, date DESC)",
    "CREATE INDEX idx_fundamentals_period ON ticker_fundamentals(period_type)",
    "CREATE INDEX idx_ticker_fundamentals_fiscal_year ON ticker_fundamentals(fiscal_year)",
    "CREATE INDEX idx_ticker_fundamentals_ticker_year ON ticker_fundamentals(ticker, fiscal_year)",
    "CREATE INDEX idx_sentiment_date ON market_sentiment(date DESC)",
    "CREATE INDEX idx_global_indices_date ON global_market_indices(date DESC)",
    "CREATE INDEX idx_global_indices_symbol ON global_market_indices(symbol, date DESC)",
    "CREATE INDEX idx_exchange_rate_currency_date ON exchange_rate_history(currency, rate_date DESC)",
    "CREATE INDEX idx_exrate_currency_timestamp ON exchange_rate_history(currency, timestamp DESC)",
    "CREATE INDEX idx_exrate_timestamp ON exchange_rate_history(timestamp DESC)",
]

TABLES = ["tickers", "stock_details", "etf_details", "etf_holdings", "ohlcv_data", "technical_analysis",
          "ticker_fundamentals", "trades", "portfolio", "market_sentiment", "global_market_indices",
          "exchange_rate_history"]

EXCHANGES = {"KR": ["KOSPI", "KOSDAQ", "KONEX"], "US": ["NYSE", "NASDAQ", "AMEX"], "CN": ["SSE", "SZSE"],
             "HK": ["SEHK"], "JP": ["TSE"], "VN": ["HOSE", "HNX"]}
CURRENCY = {"KR": "KRW", "US": "USD", "CN": "CNY", "HK": "HKD", "JP": "JPY", "VN": "VND"}
LOT = {"KR": 1, "US": 1, "CN": 100, "HK": 500, "JP": 100, "VN": 100}
SOURCES = ["KRX Official API", "pykrx", "KIS Master File", "Unknown"]
SECTORS = [("Information Technology", "45"), ("Financials", "40"), ("Health Care", "35"), ("Industrials", "20"),
           ("Consumer Discretionary", "25"), ("Materials", "15"), ("Energy", "10"), ("Utilities", "55")]
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _scaled(n, scale, minimum):
    return max(minimum, round(n * scale))


def _trading_days(end=datetime.date(2025, 10, 17), count=TRADING_DAYS):
    days = []
    day = end
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= datetime.timedelta(days=1)
    return [d.isoformat() for d in reversed(days)]


def _make_tickers(rng, scale):
    """(ticker, region, asset_type) list; formats per region, globally unique strings."""
    used = set()
    out = []

    def unique(fn):
        while True:
            t = fn()
            if t not in used:
                used.add(t)
                return t

    makers = {
        "KR": lambda: "%06d" % rng.randrange(0, 300000, 5) if rng.random() > 0.03 else
        "%04d%s0" % (rng.randrange(0, 10000), rng.choice(LETTERS)),
        "US": lambda: "".join(rng.choice(LETTERS) for _ in range(rng.choice((1, 2, 3, 4, 4, 5))))
        + (rng.choice((".A", ".B")) if rng.random() < 0.01 else ""),
        "CN": lambda: "%06d" % rng.choice((rng.randrange(600000, 606000), rng.randrange(300000, 302000),
                                           rng.randrange(510000, 512000))),
        "HK": lambda: "%04d" % rng.randrange(1, 1000) if rng.random() < 0.35 else "%05d" % rng.randrange(1000, 99999),
        "JP": lambda: "%04d" % rng.randrange(1300, 10000),
        "VN": lambda: "".join(rng.choice(LETTERS) for _ in range(3)),
    }
    # Anchor tickers every scale keeps (real-looking, and the Q11 shape traps).
    anchors = [("005930", "KR", "STOCK"), ("000660", "KR", "STOCK"), ("035420", "KR", "STOCK"),
               ("069500", "KR", "ETF"), ("AAPL", "US", "STOCK"), ("SPY", "US", "ETF"), ("600519", "CN", "STOCK"),
               ("510300", "CN", "ETF"), ("0700", "HK", "STOCK"), ("2800", "HK", "ETF"), ("7203", "JP", "STOCK"),
               ("VNM", "VN", "STOCK")]
    for t, region, kind in anchors:
        used.add(t)
        out.append((t, region, kind))
    for region, count in REGION_COUNTS.items():
        n = _scaled(count, scale, 3) - sum(1 for a in anchors if a[1] == region)
        for _ in range(max(n, 0)):
            t = unique(makers[region])
            out.append((t, region, rng.choice(("STOCK",) * 30 + ("REIT", "PREFERRED", "ETN"))))
    # Exactly enough ETFs for etf_details (1,027 + slack), the rest stay stocks for stock_details.
    etf_quota = _scaled(ETF_DETAILS_ROWS + 12, scale, 6) - sum(1 for a in anchors if a[2] == "ETF")
    for i in sorted(rng.sample(range(len(anchors), len(out)), max(etf_quota, 0))):
        out[i] = (out[i][0], out[i][1], "ETF")
    return out


def _ts_iso(rng, base):
    """Python isoformat() style (T, microseconds)."""
    moment = base + datetime.timedelta(seconds=rng.randrange(0, 86400 * 30), microseconds=rng.randrange(1, 999999))
    return moment.isoformat()


def _ts_plain(rng, base):
    """CURRENT_TIMESTAMP style (space, seconds)."""
    moment = base + datetime.timedelta(seconds=rng.randrange(0, 86400 * 30))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


BASE = datetime.datetime(2025, 9, 1, 9, 0, 0)
FUND_TICKERS = ["005930", "000660", "035420", "600519", "0700", "AAPL", "7203"]
FINANCIAL_COLUMNS = ("total_assets, total_liabilities, total_equity, revenue, operating_profit, net_income, ebitda, "
                     "cogs, gross_profit, depreciation, interest_expense, current_assets, current_liabilities, "
                     "inventory, accounts_receivable, cash_and_equivalents, operating_cash_flow, capital_expenditure")


def generate(path, scale=1.0, seed=20251021, overwrite=True, schema_stage="current"):
    """Write the sample SQLite file at path; returns {table: rows}.

    schema_stage: current (the default: the 12 tables of the spec) or a stage of a real file
    (module_utils/sample/stages.py: init_db, fiscal_year, fiscal_year_key, kis_ohlcv), whose
    result also counts the SQLite-only tables.
    """
    if schema_stage not in STAGES:
        raise ValueError("schema_stage must be one of %s, got %r" % (", ".join(STAGES), schema_stage))
    if os.path.exists(path):
        if not overwrite:
            raise FileExistsError(path)
        os.unlink(path)
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        fill = _fill_current if schema_stage == "current" else _fill_stage
        tables = fill(conn, random.Random(seed), scale, schema_stage)
        conn.commit()
        counts = {t: conn.execute('SELECT count(*) FROM "%s"' % t).fetchone()[0] for t in tables}
    finally:
        conn.close()
    os.replace(tmp, path)
    return counts


def _fill_current(conn, rng, scale, _stage):
    """The spec's 12 tables (the main job, the benchmarks and the tests count on this exact content)."""
    for stmt in DDL:
        conn.execute(stmt)
    tickers = _write_tickers(conn, rng, scale)
    _write_stock_details(conn, rng, scale, tickers)
    _write_etf_details(conn, rng, scale, tickers, ETF_DETAILS_ORPHANS if scale >= 0.1 else 0)
    _write_etf_holdings(conn, rng)
    _ohlcv(conn, rng, tickers, scale)
    _write_fundamentals(conn, rng)
    _write_global_indices(conn, rng)
    _write_exchange_rates(conn, rng)
    for stmt in INDEXES:
        conn.execute(stmt)
    return TABLES


def _fill_stage(conn, rng, scale, stage):
    """A file at a schema stage, written in the order the platform wrote it: init_db.py's schema and
    data, then each later script's schema change followed by the rows its writers added."""
    kis = stage == "kis_ohlcv"
    sample_stages.create_init_schema(conn, {_table_name(d): d for d in DDL}, kis=kis)
    tickers = _write_tickers(conn, rng, scale)
    _write_stock_details(conn, rng, scale, tickers)
    # One orphan whatever the scale: a few orphans in a small table is what real files hold.
    _write_etf_details(conn, rng, scale, tickers, ETF_DETAILS_ORPHANS)
    _write_etf_holdings(conn, rng)
    _ohlcv(conn, rng, tickers, scale, kis=kis)
    _write_global_indices(conn, rng)
    sample_stages.write_fundamentals_init_db(conn, rng)
    sample_stages.write_exchange_rates(conn, rng)
    sample_stages.fill_legacy(conn, rng)
    if stage != "init_db":
        sample_stages.upgrade_to_fiscal_year(conn)
        sample_stages.write_fundamentals_fiscal_year(conn, rng)
    if stage in ("fiscal_year_key", "kis_ohlcv"):
        sample_stages.fix_uniqueness_constraint(conn)
        sample_stages.write_fundamentals_fiscal_year_key(conn, rng)
    sample_stages.replace_rows(conn)
    if kis:
        sample_stages.kis_upsert(conn)
    legacy = [_table_name(d) for d in sample_stages.LEGACY_DDL]
    return TABLES + legacy


def _table_name(ddl):
    return ddl.split()[2]


def _write_tickers(conn, rng, scale):
    """tickers; returns [(ticker, region, asset_type)]."""
    tickers = _make_tickers(rng, scale)
    rows = []
    for t, region, kind in tickers:
        created = _ts_iso(rng, BASE) if rng.random() < 0.5 else _ts_plain(rng, BASE)
        rows.append((
            t, "%s Corp %s" % (region, t), "%s Holdings" % t if rng.random() < 0.7 else None,
            rng.choice(EXCHANGES[region]), region, CURRENCY[region], kind,
            (datetime.date(1990, 1, 1) + datetime.timedelta(days=rng.randrange(0, 12000))).isoformat(),
            LOT[region] if region != "HK" else rng.choice((100, 200, 500, 1000, 2000)),
            rng.choice(SECTORS)[1] if rng.random() < 0.8 else None,
            1 if rng.random() < 0.97 else 0, None, created, created,
            _ts_iso(rng, BASE) if rng.random() < 0.4 else None, rng.choice(SOURCES),
            rng.choice(("MAIN", "MAIN", "MAIN", "KOSDAQ_GLOBAL", None)),
        ))
    _insert(conn, "tickers", "ticker, name, name_eng, exchange, region, currency, asset_type, listing_date, "
            "lot_size, sector_code, is_active, delisting_date, created_at, last_updated, enriched_at, data_source, "
            "market_tier", rows)
    return tickers


def _write_stock_details(conn, rng, scale, tickers):
    """Stocks, plus orphans (Q2) and long codes (Q6)."""
    region_of = {t: r for t, r, _k in tickers}
    stocks = [t for t, _r, k in tickers if k != "ETF"]
    n_details = min(_scaled(STOCK_DETAILS_ROWS - STOCK_DETAILS_ORPHANS, scale, 20), len(stocks))
    rows = []
    for i, t in enumerate(rng.sample(stocks, n_details)):
        sector, code = rng.choice(SECTORS)
        long_code = i % 97 == 3  # Q6: longer than VARCHAR(10)
        created = _ts_plain(rng, BASE)
        rows.append((t, sector, code + ("10203040506" if long_code else "1010"), "Industry %d" % rng.randrange(60),
                     ("%s-IND-%05d" % (code, i)) if long_code else "%s%02d" % (code, rng.randrange(99)),
                     0, 1 if rng.random() < 0.02 else 0, rng.choice((100, 500, 5000, None)),
                     region_of[t] if rng.random() < 0.9 else None, created, created,
                     _ts_iso(rng, BASE) if rng.random() < 0.3 else None))
    for i in range(_scaled(STOCK_DETAILS_ORPHANS, scale, 1)):
        created = _ts_plain(rng, BASE)
        rows.append(("%06d" % (900000 + i), "Delisted", "99", None, None, 0, 0, None, None, created, created, None))
    _insert(conn, "stock_details", "ticker, sector, sector_code, industry, industry_code, is_spac, is_preferred, "
            "par_value, region, created_at, last_updated, enriched_at", rows)


def _write_etf_details(conn, rng, scale, tickers, orphans):
    """No region column (Q3); expense ratios with more than 2 decimals (Q6); orphans not in tickers."""
    etfs = [t for t, _r, k in tickers if k == "ETF"]
    etfs = sorted(etfs, key=lambda t: (t not in ("069500", "510300", "2800", "SPY"), t))
    n_etf = min(_scaled(ETF_DETAILS_ROWS - ETF_DETAILS_ORPHANS, scale, 4), len(etfs))
    rows = []
    for t in etfs[:n_etf] + ["ORPHAN%d" % i for i in range(orphans)]:
        created = _ts_iso(rng, BASE)
        rows.append((t, rng.choice(("Samsung", "Mirae", "KB", "iShares", "Vanguard")),
                     "2015-06-%02d" % rng.randrange(1, 29),
                     rng.choice(("equity", "bond", "commodity")), "Index %s" % t,
                     rng.choice(("KR", "US", "CN", "VN", "EU", "GLOBAL")), rng.choice(("tech", "dividend", None)),
                     rng.choice(("index", "sector", "thematic", "commodity")), rng.randrange(10**9, 10**13),
                     rng.randrange(10**5, 10**9), rng.randrange(10, 500), round(rng.uniform(0.01, 0.9), 4),
                     round(rng.uniform(0.01, 0.9), 3) if rng.random() < 0.7 else None,
                     rng.choice(("1배", "2배", "-1배", None)), rng.choice((0, 1, None)),
                     round(rng.uniform(0, 2), 4), round(rng.uniform(0, 2), 4), None, round(rng.uniform(0, 2), 4),
                     rng.randrange(10000, 50000), rng.randrange(5000, 10000), rng.choice((0, 1)),
                     "Tracks the index", created, created, "ETFCheck", round(rng.uniform(0.01, 0.9), 5)))
    _insert(conn, "etf_details", "ticker, issuer, inception_date, underlying_asset_class, tracking_index, "
            "geographic_region, sector_theme, fund_type, aum, listed_shares, underlying_asset_count, expense_ratio, "
            "ter, leverage_ratio, currency_hedged, tracking_error_20d, tracking_error_60d, tracking_error_120d, "
            "tracking_error_250d, week_52_high, week_52_low, pension_eligible, investment_strategy, created_at, "
            "last_updated, data_source, actual_expense_ratio", rows)


def _write_etf_holdings(conn, rng):
    """3 rows (Q5): the region must come from the ETF."""
    rows = [("069500", "005930", 31.25, 1200000, 8.1e10, 1, 0.35, "2025-10-15", _ts_iso(rng, BASE), "KIS API",
             "Information Technology", "KR"),
            ("069500", "000660", 10.5, 400000, 2.7e10, 2, -0.125, "2025-10-15", _ts_iso(rng, BASE), "KIS API",
             "Information Technology", "KR"),
            ("069500", "035420", 3.875, 150000, 9.9e9, 3, None, "2025-10-15", _ts_iso(rng, BASE), "KIS API",
             "Communication Services", "KR")]
    _insert(conn, "etf_holdings", "etf_ticker, stock_ticker, weight, shares, market_value, rank_in_etf, "
            "weight_change_from_prev, as_of_date, created_at, data_source, sector, country", rows)


def _write_fundamentals(conn, rng):
    """The current schema's ticker_fundamentals (Q3, Q4): several fiscal years collected the same day."""
    plan = [(t, "ANNUAL", fy, "2025-10-15") for t in FUND_TICKERS for fy in (2022, 2023, 2024)]
    plan += [(t, "QUARTERLY", fy, "2025-10-16") for t in FUND_TICKERS for fy in (2024, 2025)]
    plan += [(t, "DAILY", 2025, "2025-10-17") for t in FUND_TICKERS]
    plan += [(t, "QUARTERLY", 2023, "2025-10-16") for t in FUND_TICKERS]
    rows = []
    for t, period, fy, day in plan[:47]:
        vals = [rng.randrange(10**9, 10**14) for _ in range(18)]
        rows.append((t, day, period, rng.randrange(10**6, 10**10), rng.randrange(10**9, 10**14),
                     round(rng.uniform(5, 500), 2), round(rng.uniform(1, 60), 3), round(rng.uniform(0.2, 9), 3),
                     round(rng.uniform(0.2, 9), 3), None, rng.randrange(10**9, 10**14), round(rng.uniform(2, 30), 3),
                     round(rng.uniform(0, 6), 4), round(rng.uniform(0, 3000), 1), _ts_iso(rng, BASE),
                     rng.choice(("DART-2025-11011", "KIS API", "yfinance")), fy, *vals, round(rng.uniform(10, 90), 2)))
    _insert(conn, "ticker_fundamentals", "ticker, date, period_type, shares_outstanding, market_cap, close_price, "
            "per, pbr, psr, pcr, ev, ev_ebitda, dividend_yield, dividend_per_share, created_at, data_source, "
            "fiscal_year, %s, free_float_percentage" % FINANCIAL_COLUMNS, rows)


def _write_global_indices(conn, rng):
    """Q6: region 'ASIA'."""
    idx = [("^GSPC", "S&P 500", "US"), ("^IXIC", "NASDAQ Composite", "US"), ("^DJI", "Dow Jones", "US"),
           ("^HSI", "Hang Seng", "HK"), ("^N225", "Nikkei 225", "ASIA"), ("^KS11", "KOSPI", "KR")]
    rows = []
    for sym, name, region in idx:
        close = round(rng.uniform(2000, 45000), 2)
        rows.append(("2025-10-17", sym, name, region, close, close * 0.99, close * 1.01, close * 0.98,
                     rng.randrange(10**8, 10**10), round(rng.uniform(-2, 2), 4), rng.choice(("UP", "DOWN", "SIDEWAYS")),
                     rng.randrange(1, 6), _ts_plain(rng, BASE)))
    _insert(conn, "global_market_indices", "date, symbol, index_name, region, close_price, open_price, high_price, "
            "low_price, volume, change_percent, trend_5d, consecutive_days, created_at", rows)


def _write_exchange_rates(conn, rng):
    """The current schema's FX table: one row per (currency, rate_date)."""
    rows = [(cur, rate, "2025-10-17T15:30:00.%06d" % rng.randrange(1, 999999), "2025-10-17", "BOK_API",
             "2025-10-17 06:31:02") for cur, rate in
            (("USD_KRW", 1421.5), ("HKD_KRW", 182.84), ("JPY_KRW", 9.4123), ("CNY_KRW", 199.27), ("VND_KRW", 0.0539))]
    _insert(conn, "exchange_rate_history", "currency, rate, timestamp, rate_date, source, created_at", rows)


def _insert(conn, table, columns, rows):
    """Insert into the columns the table has at this stage (comma-separated column list)."""
    sample_stages.insert_rows(conn, table, [c.strip() for c in columns.split(",")], rows)


OHLCV_COLUMNS = ("ticker, timeframe, date, region, open, high, low, close, volume, ma5, ma20, ma60, ma120, ma200, "
                 "rsi_14, macd, macd_signal, macd_hist, bb_upper, bb_middle, bb_lower, atr_14, atr, volume_ma20, "
                 "volume_ratio, created_at")
OHLCV_STAMP = "2025-10-17 18:00:00"


def _ohlcv(conn, rng, tickers, scale, kis=False):
    """OHLCV: ticker-major rowid order (not time order), ~1 year of 'D' bars per ticker.

    kis: the KIS collector's table (region NOT NULL, so no NULL-region rows or Q9 duplicates;
    volume_ma20 a rolling mean, a REAL in its BIGINT column; updated_at)."""
    target_rows = _scaled(OHLCV_ROWS, scale, TRADING_DAYS * 4)
    dupes = _scaled(OHLCV_DUPLICATES, scale, 3)
    unique_rows = target_rows - dupes
    chosen = _ohlcv_tickers(rng, tickers, -(-unique_rows // TRADING_DAYS))
    cols = OHLCV_COLUMNS + (", updated_at" if kis else "")
    bars = _OhlcvBars(rng, chosen, unique_rows, dupes, kis)
    _insert(conn, "ohlcv_data", cols, iter(bars))
    # Q9: the same bars again with a NULL region (a later collector run); SQLite's UNIQUE lets them in.
    extra = [(r[0], r[1], r[2], None, *r[4:25], "2025-10-18 02:00:00") for r in bars.kept[:dupes]]
    _insert(conn, "ohlcv_data", cols, extra)
    return unique_rows - bars.remaining + len(extra)


def _ohlcv_tickers(rng, tickers, count):
    """The tickers that get bars: the anchors, then a random pick of the other stocks (two ETFs only)."""
    pool = [t for t in tickers if t[2] != "ETF" or t[0] in ("069500", "SPY")]
    must = [t for t in pool if t[0] in ("005930", "000660", "035420", "600519", "0700", "AAPL", "7203", "VNM")]
    rest = [t for t in pool if t not in must]
    return must + rng.sample(rest, max(0, min(len(rest), count - len(must))))


class _OhlcvBars:
    """Iterable of the chosen tickers' daily bars, up to `rows` of them (remaining counts what is left
    unwritten). Outside kis, up to `dupes` bars with a region are kept aside for the Q9 duplicates."""

    def __init__(self, rng, chosen, rows, dupes, kis):
        self.rng = rng
        self.chosen = chosen
        self.remaining = rows
        self.dupes = dupes
        self.kis = kis
        self.kept = []

    def __iter__(self):
        days = _trading_days()
        for t, region, _k in self.chosen:
            if self.remaining <= 0:
                return
            n = min(TRADING_DAYS, self.remaining)
            self.remaining -= n
            yield from self._ticker(t, region, days[TRADING_DAYS - n:])

    def _ticker(self, t, region, days):
        """One ticker's bars: a random walk with its moving averages and indicators."""
        rng, kis, kept, dupes = self.rng, self.kis, self.kept, self.dupes
        rand = rng.random
        gauss = rng.gauss
        stamp = OHLCV_STAMP
        price = rng.uniform(5, 500) if region != "VN" else rng.uniform(5000, 90000)
        cum = [0.0]
        trap = t in ("600519", "0700")  # Q11: NULL region on shape-trap tickers
        for i, day in enumerate(days):
            prev = price
            price = max(0.01, price * (1 + gauss(0, 0.02)))
            hi = max(prev, price) * (1 + rand() * 0.01)
            lo = min(prev, price) * (1 - rand() * 0.01)
            cum.append(cum[-1] + price)
            vol = int(rand() * 5e6) + 100
            top = cum[-1]
            ma5, ma20, ma60, ma120, ma200 = [(top - cum[-1 - k]) / k if i + 1 >= k else None
                                             for k in (5, 20, 60, 120, 200)]
            null_region = (trap and i % 7 == 0) or rand() < OHLCV_NULL_REGION_SHARE
            rreg = None if null_region and not kis else region
            row = (t, "D", day, rreg, round(prev, 4), round(hi, 4), round(lo, 4), round(price, 4), vol,
                   ma5, ma20, ma60, ma120, ma200, 30 + rand() * 40 if i >= 14 else None,
                   gauss(0, 1) if i >= 26 else None, gauss(0, 1) if i >= 35 else None,
                   gauss(0, 0.5) if i >= 35 else None,
                   ma20 * 1.05 if ma20 else None, ma20, ma20 * 0.95 if ma20 else None,
                   hi - lo if i >= 14 else None, hi - lo, (vol / 3 if kis else float(vol)) if i >= 20 else None,
                   1.0 + gauss(0, 0.2) if i >= 20 else None, stamp)
            if kis:
                yield (*row, stamp)
                continue
            if len(kept) < dupes and rreg is not None and rand() < 0.01:
                kept.append(row)
            yield row
