"""Schema stages of a real spock SQLite file, for the sample generator (module_utils/sample/generator.py).

A real data/spock_local.db is whatever the platform's scripts made of it over time
(app_contract.md section 5, "Schema stages of a real file"):

* ``init_db``: init_db.py's schema. tickers without market_tier; ticker_fundamentals
  with 11 metric columns, no fiscal_year, key (ticker, date, period_type);
  exchange_rate_history without a key; etf_details/etf_holdings without the
  code-only columns; the SQLite-only tables (etfs, kelly_*, gpt_analysis,
  filter_cache_*, ...).
* ``fiscal_year``: + migrations/001 (tickers.market_tier DEFAULT 'MAIN'), +
  add_fiscal_year_column (fiscal_year INTEGER, 2 indexes; older rows stay NULL
  except DART rows, filled from data_source 'DART-<year>-<report>'), +
  the 7 + 11 BIGINT financial columns: ALTER TABLE ADD COLUMN, as the scripts do.
* ``fiscal_year_key``: + fix_uniqueness_constraint: ticker_fundamentals dropped
  and recreated with fiscal_year after period_type and the 11 metrics only,
  key (ticker, fiscal_year, period_type), rows restored first-wins with
  INSERT OR IGNORE (new ids), financial columns lost.
* ``kis_ohlcv``: the fiscal_year_key file whose ohlcv_data was created by the
  KIS collector (no id, no atr_14, volume_ma20 BIGINT, date DATE, region NOT
  NULL, created_at/updated_at DEFAULT CURRENT_TIMESTAMP, idx_ohlcv_unique).

Rows are written the way the platform writes them: INSERT OR REPLACE where it
replaces (the file keeps only the surviving row, with a new rowid), plain INSERT
where it appends (exchange_rate_history repeats (currency, rate_date)). The DDL
here is this project's own, written to give the same schema as those scripts.
"""

from __future__ import annotations

import datetime

STAGES = ("current", "init_db", "fiscal_year", "fiscal_year_key", "kis_ohlcv")

# The eleven metric columns of init_db.py's ticker_fundamentals.
METRICS = ("shares_outstanding", "market_cap", "close_price", "per", "pbr", "psr", "pcr", "ev", "ev_ebitda",
           "dividend_yield", "dividend_per_share")
# add_financial_columns_to_fundamentals.py (7) and extend_schema_for_quality_factors.py (11), all BIGINT.
FINANCIAL = ("total_assets", "total_liabilities", "total_equity", "revenue", "operating_profit", "net_income",
             "ebitda", "cogs", "gross_profit", "depreciation", "interest_expense", "current_assets",
             "current_liabilities", "inventory", "accounts_receivable", "cash_and_equivalents",
             "operating_cash_flow", "capital_expenditure")
FUND_TICKERS = ("005930", "000660", "035420", "600519", "0700", "AAPL", "7203")
FX_CURRENCIES = (("USD", 1390.0), ("JPY", 9.31), ("HKD", 178.6), ("CNY", 194.2), ("VND", 0.0551))

# init_db.py's versions of the tables that later scripts changed (the other mapped tables are unchanged).
INIT_DB_DDL = {
    "tickers": """CREATE TABLE tickers (
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
        data_source TEXT
    )""",
    "etf_details": None,  # the current DDL without actual_expense_ratio (a code-only column)
    "etf_holdings": None,  # the current DDL without sector, country (code-only columns)
    "ticker_fundamentals": """CREATE TABLE ticker_fundamentals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticker TEXT NOT NULL,
        date TEXT NOT NULL,
        period_type TEXT NOT NULL,
        shares_outstanding BIGINT,
        market_cap BIGINT,
        close_price REAL,
        per REAL,
        pbr REAL,
        psr REAL,
        pcr REAL,
        ev BIGINT,
        ev_ebitda REAL,
        dividend_yield REAL,
        dividend_per_share REAL,
        created_at TEXT NOT NULL,
        data_source TEXT,
        UNIQUE (ticker, date, period_type),
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    "exchange_rate_history": """CREATE TABLE exchange_rate_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        currency TEXT NOT NULL,
        rate REAL NOT NULL,
        timestamp TEXT NOT NULL,
        rate_date TEXT NOT NULL,
        source TEXT,
        created_at TEXT DEFAULT CURRENT_TIMESTAMP
    )""",
}
CODE_ONLY_COLUMNS = {"etf_details": ("actual_expense_ratio",), "etf_holdings": ("sector", "country"),
                     "ticker_fundamentals": ("free_float_percentage",)}

INIT_DB_INDEXES = [
    "CREATE INDEX idx_tickers_exchange ON tickers(exchange)",
    "CREATE INDEX idx_tickers_asset_type ON tickers(asset_type)",
    "CREATE INDEX idx_tickers_region ON tickers(region)",
    "CREATE INDEX idx_stock_details_sector ON stock_details(sector)",
    "CREATE INDEX idx_stock_details_region ON stock_details(region)",
    "CREATE INDEX idx_fundamentals_ticker_date ON ticker_fundamentals(ticker, date DESC)",
    "CREATE INDEX idx_fundamentals_period ON ticker_fundamentals(period_type)",
    "CREATE INDEX idx_ohlcv_ticker_region_date ON ohlcv_data(ticker, region, date DESC)",
    "CREATE INDEX idx_ohlcv_region ON ohlcv_data(region)",
    "CREATE INDEX idx_exchange_rate_currency_date ON exchange_rate_history(currency, rate_date DESC)",
]
FISCAL_YEAR_INDEXES = [
    "CREATE INDEX idx_ticker_fundamentals_fiscal_year ON ticker_fundamentals(fiscal_year)",
    "CREATE INDEX idx_ticker_fundamentals_ticker_year ON ticker_fundamentals(ticker, fiscal_year)",
]

# fix_uniqueness_constraint.py's rebuilt table: fiscal_year moved after period_type, the 11 metrics, the new key.
FIXED_FUNDAMENTALS_DDL = """CREATE TABLE ticker_fundamentals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ticker TEXT NOT NULL,
        date TEXT NOT NULL,
        period_type TEXT NOT NULL,
        fiscal_year INTEGER,
        shares_outstanding BIGINT,
        market_cap BIGINT,
        close_price REAL,
        per REAL,
        pbr REAL,
        psr REAL,
        pcr REAL,
        ev BIGINT,
        ev_ebitda REAL,
        dividend_yield REAL,
        dividend_per_share REAL,
        created_at TEXT NOT NULL,
        data_source TEXT,
        UNIQUE (ticker, fiscal_year, period_type),
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )"""
FIXED_FUNDAMENTALS_INDEXES = [
    "CREATE INDEX idx_ticker_fundamentals_fiscal_year ON ticker_fundamentals(fiscal_year)",
    "CREATE INDEX idx_ticker_fundamentals_ticker_year ON ticker_fundamentals(ticker, fiscal_year)",
    "CREATE INDEX idx_fundamentals_ticker_date ON ticker_fundamentals(ticker, date)",
    "CREATE INDEX idx_fundamentals_period ON ticker_fundamentals(period_type)",
]

# kis_data_collector.py's ohlcv_data (created when the collector runs first) and its unique index.
KIS_OHLCV_DDL = """CREATE TABLE ohlcv_data (
        ticker TEXT NOT NULL,
        region TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        date DATE NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume BIGINT NOT NULL,
        ma5 REAL,
        ma20 REAL,
        ma60 REAL,
        ma120 REAL,
        ma200 REAL,
        rsi_14 REAL,
        macd REAL,
        macd_signal REAL,
        macd_hist REAL,
        volume_ma20 BIGINT,
        volume_ratio REAL,
        atr REAL,
        bb_upper REAL,
        bb_middle REAL,
        bb_lower REAL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        PRIMARY KEY (ticker, region, timeframe, date)
    )"""
KIS_OHLCV_INDEXES = [
    "CREATE INDEX idx_ohlcv_ticker_region ON ohlcv_data(ticker, region)",
    "CREATE INDEX idx_ohlcv_date ON ohlcv_data(date)",
    "CREATE INDEX idx_ohlcv_timeframe ON ohlcv_data(timeframe)",
    "CREATE INDEX idx_ohlcv_ticker_date ON ohlcv_data(ticker, date)",
    "CREATE UNIQUE INDEX idx_ohlcv_unique ON ohlcv_data(ticker, timeframe, date)",
]

# SQLite-only tables (init_db.py, migrations/003-006, db_manager_sqlite.py); never on PostgreSQL.
LEGACY_DDL = [
    """CREATE TABLE migration_history (
        migration_id INTEGER PRIMARY KEY AUTOINCREMENT,
        migration_version TEXT NOT NULL,
        migration_name TEXT NOT NULL,
        executed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE etfs (
        ticker TEXT PRIMARY KEY, name TEXT NOT NULL, name_eng TEXT, region TEXT NOT NULL, exchange TEXT,
        category TEXT, subcategory TEXT, tracking_index TEXT, total_assets REAL, expense_ratio REAL,
        listed_shares INTEGER, issuer TEXT, inception_date TEXT, leverage_ratio REAL,
        is_inverse BOOLEAN DEFAULT 0, currency_hedged BOOLEAN DEFAULT 0, tracking_error_20d REAL,
        tracking_error_60d REAL, tracking_error_120d REAL, tracking_error_250d REAL, premium_discount REAL,
        avg_daily_volume REAL, avg_daily_value REAL, created_at TEXT NOT NULL, last_updated TEXT NOT NULL,
        data_source TEXT,
        FOREIGN KEY (ticker) REFERENCES tickers(ticker) ON DELETE CASCADE
    )""",
    """CREATE TABLE kelly_sizing (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT NOT NULL, calculation_date TEXT NOT NULL,
        pattern_type TEXT, win_rate REAL NOT NULL, avg_win_loss REAL NOT NULL, kelly_pct REAL NOT NULL,
        half_kelly_pct REAL NOT NULL, recommended_position_size REAL, recommended_quantity INTEGER,
        max_position_pct REAL, max_sector_pct REAL, created_at TEXT NOT NULL,
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    """CREATE TABLE kelly_analysis (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT NOT NULL, analysis_date TEXT NOT NULL,
        detected_pattern TEXT NOT NULL, quality_score REAL NOT NULL, base_position_pct REAL NOT NULL,
        quality_multiplier REAL NOT NULL, technical_position_pct REAL NOT NULL, gpt_confidence REAL,
        gpt_recommendation TEXT, gpt_adjustment REAL, final_position_pct REAL NOT NULL, risk_level TEXT,
        max_portfolio_allocation REAL, reasoning TEXT, created_at TEXT,
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    """CREATE TABLE gpt_analysis (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT NOT NULL, analysis_date TEXT NOT NULL,
        vcp_detected BOOLEAN, vcp_confidence REAL, vcp_stage INTEGER, vcp_volatility_ratio REAL,
        vcp_reasoning TEXT, cup_handle_detected BOOLEAN, cup_handle_confidence REAL, cup_depth_ratio REAL,
        handle_duration_days INTEGER, cup_handle_reasoning TEXT, gpt_recommendation TEXT, gpt_confidence REAL,
        gpt_reasoning TEXT, api_cost_usd REAL, processing_time_ms INTEGER, created_at TEXT,
        stage2_confirmed BOOLEAN, stage2_confidence REAL, stage2_ma_alignment BOOLEAN,
        stage2_volume_surge BOOLEAN, stage2_reasoning TEXT, position_adjustment REAL,
        FOREIGN KEY (ticker) REFERENCES tickers(ticker)
    )""",
    """CREATE TABLE filter_cache_stage0 (
        ticker TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL, exchange TEXT,
        market_cap_krw BIGINT, trading_value_krw BIGINT, current_price_krw INTEGER, market_cap_local REAL,
        trading_value_local REAL, current_price_local REAL, currency TEXT NOT NULL, exchange_rate_to_krw REAL,
        exchange_rate_date DATE, exchange_rate_source TEXT, market_warn_code TEXT, is_stock_connect BOOLEAN,
        is_otc BOOLEAN, is_delisting BOOLEAN, filter_date DATE NOT NULL, stage0_passed BOOLEAN,
        filter_reason TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        UNIQUE (ticker, region, filter_date)
    )""",
    """CREATE TABLE filter_cache_stage1 (
        ticker TEXT NOT NULL, region TEXT NOT NULL, ma5 REAL, ma20 REAL, ma60 REAL, rsi_14 REAL,
        current_price_krw INTEGER, week_52_high_krw INTEGER, volume_3d_avg BIGINT, volume_10d_avg BIGINT,
        filter_date DATE NOT NULL, data_start_date DATE, data_end_date DATE, stage1_passed BOOLEAN,
        filter_reason TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        UNIQUE (ticker, region, filter_date)
    )""",
    """CREATE TABLE filter_cache_stage2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT NOT NULL, region TEXT NOT NULL,
        total_score INTEGER NOT NULL, market_regime_score INTEGER, volume_profile_score INTEGER,
        price_action_score INTEGER, stage_analysis_score INTEGER, moving_average_score INTEGER,
        relative_strength_score INTEGER, pattern_recognition_score INTEGER, volume_spike_score INTEGER,
        momentum_score INTEGER, recommendation TEXT NOT NULL, market_regime TEXT, volatility_regime TEXT,
        detected_pattern TEXT, pattern_confidence REAL, score_explanations TEXT, execution_time_ms INTEGER,
        cache_timestamp DATETIME DEFAULT CURRENT_TIMESTAMP, created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
        UNIQUE (ticker, region, cache_timestamp)
    )""",
    """CREATE TABLE filter_execution_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT, execution_date DATE NOT NULL, region TEXT NOT NULL,
        stage INTEGER NOT NULL, input_count INTEGER, output_count INTEGER, reduction_rate REAL,
        execution_time_sec REAL, api_calls INTEGER, error_count INTEGER, total_market_cap_krw BIGINT,
        avg_trading_value_krw BIGINT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        UNIQUE (execution_date, region, stage)
    )""",
    """CREATE TABLE risk_limits (
        id INTEGER PRIMARY KEY AUTOINCREMENT, daily_loss_limit_percent REAL NOT NULL DEFAULT -3.0,
        stop_loss_percent REAL NOT NULL DEFAULT -8.0, take_profit_percent REAL NOT NULL DEFAULT 20.0,
        max_positions INTEGER NOT NULL DEFAULT 10, max_sector_exposure_percent REAL NOT NULL DEFAULT 40.0,
        consecutive_loss_threshold INTEGER NOT NULL DEFAULT 3, risk_profile TEXT NOT NULL DEFAULT 'MODERATE',
        effective_from TEXT NOT NULL, effective_to TEXT, created_at TEXT NOT NULL,
        created_by TEXT DEFAULT 'system'
    )""",
    """CREATE TABLE circuit_breaker_logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, breaker_type TEXT NOT NULL, trigger_value REAL NOT NULL,
        limit_value REAL NOT NULL, trigger_reason TEXT NOT NULL, metadata TEXT, timestamp TEXT NOT NULL,
        action_taken TEXT, resolved_at TEXT, resolved_by TEXT,
        created_at TEXT NOT NULL DEFAULT (datetime('now'))
    )""",
    """CREATE TABLE portfolio_templates (
        template_id INTEGER PRIMARY KEY AUTOINCREMENT, template_name TEXT NOT NULL UNIQUE,
        template_name_kr TEXT, risk_level TEXT NOT NULL, description TEXT, bonds_etf_target_percent REAL,
        commodities_etf_target_percent REAL, dividend_stocks_target_percent REAL,
        individual_stocks_target_percent REAL, cash_target_percent REAL, rebalancing_method TEXT,
        drift_threshold_percent REAL, periodic_interval_days INTEGER, min_rebalance_interval_days INTEGER,
        max_trade_size_percent REAL, max_single_position_percent REAL, max_sector_exposure_percent REAL,
        min_cash_reserve_percent REAL, max_concurrent_positions INTEGER, is_active BOOLEAN DEFAULT 1,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE asset_class_holdings (
        holding_id INTEGER PRIMARY KEY AUTOINCREMENT, template_name TEXT NOT NULL, asset_class TEXT NOT NULL,
        ticker TEXT NOT NULL, region TEXT, category TEXT, quantity REAL NOT NULL, avg_entry_price REAL NOT NULL,
        current_price REAL NOT NULL, market_value REAL NOT NULL, target_allocation_percent REAL,
        current_allocation_percent REAL, drift_percent REAL, last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        FOREIGN KEY (template_name) REFERENCES portfolio_templates(template_name) ON DELETE CASCADE
    )""",
    """CREATE TABLE allocation_drift_log (
        log_id INTEGER PRIMARY KEY AUTOINCREMENT, template_name TEXT NOT NULL, asset_class TEXT NOT NULL,
        target_percent REAL NOT NULL, current_percent REAL NOT NULL, drift_percent REAL NOT NULL,
        alert_level TEXT, rebalancing_needed BOOLEAN, recorded_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        FOREIGN KEY (template_name) REFERENCES portfolio_templates(template_name) ON DELETE CASCADE
    )""",
    """CREATE TABLE rebalancing_history (
        rebalance_id INTEGER PRIMARY KEY AUTOINCREMENT, template_name TEXT NOT NULL, trigger_type TEXT NOT NULL,
        trigger_reason TEXT, max_drift_percent REAL, pre_cash_krw REAL, pre_invested_krw REAL,
        pre_total_value_krw REAL, pre_allocation_json TEXT, post_cash_krw REAL, post_invested_krw REAL,
        post_total_value_krw REAL, post_allocation_json TEXT, orders_generated INTEGER, orders_executed INTEGER,
        total_value_traded_krw REAL, transaction_costs_krw REAL, status TEXT, error_message TEXT,
        execution_start_time TIMESTAMP, execution_end_time TIMESTAMP,
        FOREIGN KEY (template_name) REFERENCES portfolio_templates(template_name) ON DELETE CASCADE
    )""",
    """CREATE TABLE rebalancing_orders (
        order_id INTEGER PRIMARY KEY AUTOINCREMENT, rebalance_id INTEGER NOT NULL, ticker TEXT NOT NULL,
        region TEXT, asset_class TEXT NOT NULL, side TEXT NOT NULL, target_value_krw REAL NOT NULL,
        current_value_krw REAL NOT NULL, delta_value_krw REAL NOT NULL, quantity REAL, order_price REAL,
        executed_price REAL, executed_quantity REAL, execution_fee_krw REAL, status TEXT, error_message TEXT,
        order_time TIMESTAMP, execution_time TIMESTAMP,
        FOREIGN KEY (rebalance_id) REFERENCES rebalancing_history(rebalance_id) ON DELETE CASCADE
    )""",
    """CREATE TABLE kis_api_logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL, endpoint TEXT NOT NULL,
        method TEXT NOT NULL, tr_id TEXT, status_code INTEGER, rt_cd TEXT, msg_cd TEXT, msg1 TEXT,
        response_time REAL, error_message TEXT, created_at TEXT NOT NULL
    )""",
    # db_manager_sqlite.py's backtest tables: SQLite's own backtest_results, keyed on config_hash.
    """CREATE TABLE backtest_results (
        id INTEGER PRIMARY KEY AUTOINCREMENT, config_hash TEXT NOT NULL UNIQUE, strategy_name TEXT,
        start_date TEXT NOT NULL, end_date TEXT NOT NULL, regions TEXT, initial_capital REAL,
        final_value REAL, total_return REAL, annualized_return REAL, sharpe_ratio REAL, sortino_ratio REAL,
        max_drawdown REAL, win_rate REAL, profit_factor REAL, total_trades INTEGER, config_json TEXT,
        created_at TEXT DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE backtest_trades (
        id INTEGER PRIMARY KEY AUTOINCREMENT, backtest_id INTEGER NOT NULL, ticker TEXT NOT NULL,
        region TEXT, entry_date TEXT NOT NULL, exit_date TEXT, entry_price REAL NOT NULL, exit_price REAL,
        quantity INTEGER NOT NULL, pnl REAL, pnl_pct REAL, exit_reason TEXT,
        FOREIGN KEY (backtest_id) REFERENCES backtest_results(id) ON DELETE CASCADE
    )""",
    """CREATE TABLE backtest_equity_curve (
        backtest_id INTEGER NOT NULL, date TEXT NOT NULL, portfolio_value REAL NOT NULL, cash REAL,
        daily_return REAL, drawdown REAL,
        PRIMARY KEY (backtest_id, date),
        FOREIGN KEY (backtest_id) REFERENCES backtest_results(id) ON DELETE CASCADE
    )""",
]
LEGACY_ROWS = 3
LEGACY_ANCHORS = (("005930", "KR"), ("AAPL", "US"), ("0700", "HK"))
TEMPLATES = ("CONSERVATIVE", "MODERATE", "AGGRESSIVE")


def table_columns(conn, table):
    return [r[1] for r in conn.execute('PRAGMA table_info("%s")' % table)]


def insert_rows(conn, table, columns, rows, verb="INSERT"):
    """executemany of rows into the columns the table has (a stage lacks some); returns nothing."""
    have = set(table_columns(conn, table))
    keep = [i for i, c in enumerate(columns) if c in have]
    if len(keep) < len(columns):
        columns = [columns[i] for i in keep]
        rows = (tuple(r[i] for i in keep) for r in rows)
    conn.executemany("%s INTO %s (%s) VALUES (%s)" % (verb, table, ", ".join(columns), ",".join("?" * len(columns))),
                     rows)


def _without_columns(ddl, columns):
    lines = ddl.split("\n")
    return "\n".join(line for line in lines if line.strip().split(" ")[0] not in columns)


def create_init_schema(conn, current_ddl, kis=False):
    """init_db.py's tables (mapped and SQLite-only); the KIS collector's ohlcv_data when kis."""
    for name, current in current_ddl.items():
        ddl = current
        if name in INIT_DB_DDL:
            ddl = INIT_DB_DDL[name] or _without_columns(current, CODE_ONLY_COLUMNS[name])
        if kis and name == "ohlcv_data":
            ddl = KIS_OHLCV_DDL
        conn.execute(ddl)
    for ddl in LEGACY_DDL:
        conn.execute(ddl)
    for stmt in INIT_DB_INDEXES + (KIS_OHLCV_INDEXES if kis else []):
        conn.execute(stmt)


def upgrade_to_fiscal_year(conn):
    """migrations/001, add_fiscal_year_column.py, the two financial-column scripts (ALTER TABLE ADD COLUMN)."""
    conn.execute("ALTER TABLE tickers ADD COLUMN market_tier TEXT DEFAULT 'MAIN'")
    conn.execute("ALTER TABLE ticker_fundamentals ADD COLUMN fiscal_year INTEGER")
    for stmt in FISCAL_YEAR_INDEXES:
        conn.execute(stmt)
    # The script fills fiscal_year of existing DART rows from data_source 'DART-<year>-<report>'.
    conn.execute("UPDATE ticker_fundamentals SET fiscal_year = CAST(substr(data_source, 6, 4) AS INTEGER) "
                 "WHERE data_source LIKE 'DART-%-%' AND fiscal_year IS NULL")
    for column in FINANCIAL:
        conn.execute("ALTER TABLE ticker_fundamentals ADD COLUMN %s BIGINT" % column)


def fix_uniqueness_constraint(conn):
    """The script's rebuild: export the rows, drop the table (its AUTOINCREMENT counter goes with it), create
    it with the new key, restore with OR IGNORE (first row wins, new ids); the financial columns are lost."""
    kept = ("ticker", "date", "period_type", "fiscal_year", *METRICS, "created_at", "data_source")
    rows = conn.execute("SELECT %s FROM ticker_fundamentals" % ", ".join(kept)).fetchall()
    conn.execute("DROP TABLE ticker_fundamentals")
    conn.execute(FIXED_FUNDAMENTALS_DDL)
    for stmt in FIXED_FUNDAMENTALS_INDEXES:
        conn.execute(stmt)
    insert_rows(conn, "ticker_fundamentals", kept, rows, verb="INSERT OR IGNORE")


def _stamp(day, rng):
    return "%sT%02d:%02d:%02d.%06d" % (day, rng.randrange(8, 19), rng.randrange(60), rng.randrange(60),
                                       rng.randrange(1, 999999))


def _fundamental(rng, ticker, day, period, source, *, fiscal_year=None, financial=False):
    """One row as (columns, values): the 11 metrics, optionally fiscal_year and the financial columns."""
    price = round(rng.uniform(5, 500), 2)
    values = [rng.randrange(10**6, 10**10), rng.randrange(10**9, 10**14), price, round(rng.uniform(1, 60), 3),
              round(rng.uniform(0.2, 9), 3), round(rng.uniform(0.2, 9), 3), None, rng.randrange(10**9, 10**14),
              round(rng.uniform(2, 30), 3), round(rng.uniform(0, 6), 4), round(rng.uniform(0, 3000), 1)]
    columns = ("ticker", "date", "period_type", *METRICS, "created_at", "data_source")
    row = [ticker, day, period, *values, _stamp("2025-10-17", rng), source]
    if fiscal_year is not None or financial:
        columns += ("fiscal_year",)
        row.append(fiscal_year)
    if financial:
        columns += FINANCIAL
        row += [rng.randrange(10**9, 10**14) for _ in FINANCIAL]
    return columns, tuple(row)


def _write_fundamentals(conn, rows):
    """OR REPLACE, one statement per row, as db_manager_sqlite.py writes (the key decides what survives)."""
    for columns, row in rows:
        insert_rows(conn, "ticker_fundamentals", columns, [row], verb="INSERT OR REPLACE")


def write_fundamentals_init_db(conn, rng):
    """pykrx DAILY snapshots on several days; DART annuals dated by collection day (a later year replaces)."""
    rows = [_fundamental(rng, t, day, "DAILY", "pykrx")
            for day in ("2025-09-01", "2025-09-02", "2025-09-03") for t in FUND_TICKERS]
    rows += [_fundamental(rng, t, "2025-09-05", "ANNUAL", "DART-%d-11011" % year)
             for t in FUND_TICKERS for year in (2022, 2023, 2024)]
    _write_fundamentals(conn, rows)


DART_REPORTS = (("ANNUAL", 2023, "11011", "2023-12-31"), ("ANNUAL", 2024, "11011", "2024-12-31"),
                ("SEMI-ANNUAL", 2025, "11012", "2025-06-30"), ("QUARTERLY", 2025, "11013", "2025-03-31"),
                ("QUARTERLY", 2024, "11014", "2024-09-30"))


def write_fundamentals_fiscal_year(conn, rng):
    """DART rows dated by fiscal period end (Q1 and Q3 included), more NULL-fiscal_year DAILY snapshots,
    collect_quality's ANNUAL rows dated by the day it ran."""
    rows = [_fundamental(rng, t, end, period, "DART-%d-%s" % (year, code), fiscal_year=year,
                         financial=True)
            for t in FUND_TICKERS for period, year, code, end in DART_REPORTS]
    rows += [_fundamental(rng, t, day, "DAILY", "pykrx") for day in ("2025-10-01", "2025-10-02")
             for t in FUND_TICKERS]
    rows += [_fundamental(rng, t, "2025-10-10", "ANNUAL", "yfinance", fiscal_year=2024, financial=True)
             for t in FUND_TICKERS]
    _write_fundamentals(conn, rows)


def write_fundamentals_fiscal_year_key(conn, rng):
    """Under the fiscal_year key: several fiscal years under one collection date, (ticker, date, DAILY)
    twice (NULL fiscal_year never collides), and Q3 replacing Q1 of the same year."""
    rows = [_fundamental(rng, t, "2025-10-15", "ANNUAL", "DART-%d-11011" % year, fiscal_year=year)
            for t in FUND_TICKERS for year in (2020, 2021, 2022)]
    rows += [_fundamental(rng, t, "2025-10-17", "DAILY", "pykrx") for _run in range(2) for t in FUND_TICKERS]
    rows += [_fundamental(rng, t, "2025-09-30", "QUARTERLY", "DART-2025-11014", fiscal_year=2025)
             for t in FUND_TICKERS[:3]]
    _write_fundamentals(conn, rows)


def write_exchange_rates(conn, rng):
    """One row per call (no key in this table): the same (currency, rate_date) several times a day.

    exchange_rate_manager.py leaves created_at to CURRENT_TIMESTAMP (UTC, 'YYYY-MM-DD HH:MM:SS');
    fx_data_collector.py writes datetime.now().isoformat() (local, 'T', microseconds). Older rows
    carry the 'USD_KRW' currency form."""
    rows = [("USD_KRW", 1385.5, "2025-10-14T09:00:01.000001", "2025-10-14", "BOK_API", "2025-10-14 00:00:01")]
    for day in ("2025-10-15", "2025-10-16", "2025-10-17"):
        for currency, rate in FX_CURRENCIES:
            for call in range(1 + (currency in ("USD", "JPY")) + (day == "2025-10-17")):
                stamp = _stamp(day, rng)
                utc = datetime.datetime.fromisoformat(stamp) - datetime.timedelta(hours=9)
                created = stamp if call else utc.strftime("%Y-%m-%d %H:%M:%S")
                rows.append((currency, round(rate * rng.uniform(0.99, 1.01), 4), stamp, day, "BOK_API", created))
    insert_rows(conn, "exchange_rate_history", ("currency", "rate", "timestamp", "rate_date", "source", "created_at"),
                rows)


def replace_rows(conn):
    """Later OR REPLACE writes: the file keeps only the surviving row (new rowid, unlisted columns reset)."""
    conn.execute("INSERT OR REPLACE INTO tickers (ticker, name, name_eng, exchange, region, currency, asset_type, "
                 "listing_date, lot_size, is_active, delisting_date, created_at, last_updated, data_source) "
                 "SELECT ticker, name || ' (renamed)', name_eng, exchange, region, currency, asset_type, listing_date,"
                 " lot_size, is_active, delisting_date, created_at, '2025-10-17T20:00:00.000001', data_source "
                 "FROM tickers WHERE ticker IN ('005930', 'AAPL', '7203')")
    conn.execute("INSERT OR REPLACE INTO etf_holdings (etf_ticker, stock_ticker, weight, shares, market_value, "
                 "rank_in_etf, weight_change_from_prev, as_of_date, created_at, data_source) "
                 "SELECT etf_ticker, stock_ticker, weight + 0.5, shares, market_value, rank_in_etf, 0.5, as_of_date, "
                 "'2025-10-17T20:00:00.000002', data_source FROM etf_holdings WHERE stock_ticker = '000660'")
    conn.execute("INSERT OR REPLACE INTO global_market_indices (date, symbol, index_name, region, close_price, "
                 "open_price, high_price, low_price, volume, change_percent, trend_5d, consecutive_days, created_at) "
                 "SELECT date, symbol, index_name, region, close_price + 1, open_price, high_price + 1, low_price, "
                 "volume, change_percent, trend_5d, consecutive_days, '2025-10-17 21:00:00' "
                 "FROM global_market_indices WHERE symbol = '^GSPC'")


def kis_upsert(conn):
    """The KIS collector's upsert ON CONFLICT (ticker, timeframe, date): the last write wins and keeps the
    existing row's region and created_at."""
    conn.execute("INSERT INTO ohlcv_data (ticker, region, timeframe, date, open, high, low, close, volume, "
                 "updated_at) SELECT ticker, region, timeframe, date, open, max(high, close * 1.01), low, "
                 "close * 1.01, volume, '2025-10-18 01:00:00' FROM ohlcv_data WHERE ticker = '005930' "
                 "AND date >= '2025-10-15' ON CONFLICT (ticker, timeframe, date) DO UPDATE SET "
                 "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
                 "volume = excluded.volume, updated_at = excluded.updated_at")


def _legacy_value(rng, i, name, decl, notnull):
    decl = decl.upper()
    ticker, region = LEGACY_ANCHORS[i % len(LEGACY_ANCHORS)]
    special = {"ticker": ticker, "region": region, "template_name": TEMPLATES[i % len(TEMPLATES)],
               "rebalance_id": i + 1, "backtest_id": i + 1, "config_hash": "%032x" % rng.getrandbits(128)}
    if name in special:
        return special[name]
    if not notnull and rng.random() < 0.15:
        return None
    if name.endswith("_json") or name in ("metadata", "score_explanations"):
        return '{"row": %d}' % i
    if "BOOL" in decl:
        return rng.choice((0, 1))
    if "INT" in decl:
        return rng.randrange(1, 10**6)
    if decl == "REAL":
        return round(rng.uniform(-10, 100), 4)
    if decl == "DATE" or name.endswith("_date") or name == "date":
        return (datetime.date(2025, 10, 1) + datetime.timedelta(days=i)).isoformat()
    if decl in ("TIMESTAMP", "DATETIME") or name.endswith(("_at", "_time", "timestamp")):
        return "2025-10-%02d %02d:00:00" % (i + 1, 9 + i)
    return "%s %d" % (name, i)


def fill_legacy(conn, rng):
    """A few rows in each SQLite-only table; parents (templates, rebalances, backtests) before children."""
    for ddl in LEGACY_DDL:
        table = ddl.split()[2]
        info = list(conn.execute('PRAGMA table_info("%s")' % table))
        pk_cols = [r for r in info if r[5]]
        cols = [r for r in info if not (len(pk_cols) == 1 and r[5] and r[2].upper() == "INTEGER")]
        rows = [tuple(_legacy_value(rng, i, c[1], c[2], c[3]) for c in cols) for i in range(LEGACY_ROWS)]
        insert_rows(conn, table, [c[1] for c in cols], rows)
