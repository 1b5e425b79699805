"""The application's writes (../shared/spec/app_contract.md section 2) on the role's schema.

A database built with every schema step of the role, the grants tasks/privileges.yml
makes (rendered from vars/main.yml), then each writer's statement shape (conflict
target and column set, in our own SQL) run as the APP role, twice: the second run is
an update. Spock bugs listed in the contract's section 6 are not reproduced.
"""

from datetime import date, timedelta

import psycopg2
import pytest
from ansible.module_utils.migrate.runner import run_migration
from ansible.module_utils.sample.generator import generate
from ansible.module_utils.schema.steps import run
from integration.test_schema_stages import migrate_params
from schema_render import grant_statements, render_steps

pytestmark = pytest.mark.integration

TODAY = date(2026, 12, 1)
PHASE2 = ("pp_e", "accumulated_depreciation", "sga_expense", "rd_expense", "operating_expense", "interest_income",
          "loan_portfolio", "npl_amount", "nim", "investing_cf", "financing_cf", "ebitda_margin")


class AppDb:
    """A database at every schema step with owner/app/read-only roles and the role's grants."""

    def __init__(self, server, db):
        self.server, self.db = server, db
        suffix = db[-6:]
        self.owner, self.app, self.ro = "own_" + suffix, "app_" + suffix, "ro_" + suffix

    def build(self, steps):
        admin = self.server.connect(self.db)
        cur = admin.cursor()
        for name in (self.owner, self.app, self.ro):
            cur.execute('CREATE ROLE "%s" LOGIN PASSWORD %%s' % name, ("pw-" + name,))
        cur.execute("CREATE EXTENSION timescaledb")
        cur.execute('ALTER DATABASE "%s" OWNER TO "%s"' % (self.db, self.owner))  # as database.yml does
        run(self.server.params(self.db), steps, session_role=self.owner)
        admin.close()

    def grant(self):
        self.admin_sql(*grant_statements(self.db, self.owner, self.app, self.ro))

    def admin_sql(self, *statements):
        conn = self.server.connect(self.db)
        try:
            cur = conn.cursor()
            for stmt in statements:
                cur.execute(stmt)
            return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def login(self, role):
        return psycopg2.connect(host=self.server.host, port=self.server.port, user=role, password="pw-" + role,
                                dbname=self.db)


@pytest.fixture
def app_db(require_timescaledb, pg_db):
    db = AppDb(require_timescaledb, pg_db)
    db.build(render_steps("apache"))
    db.grant()
    return db


def upsert(cur, table, row, key, keep=("created_at",), returning=""):
    """INSERT ... ON CONFLICT (key) DO UPDATE SET every written column but the key and `keep`."""
    cols = list(row)
    sets = ", ".join("%s = EXCLUDED.%s" % (c, c) for c in cols if c not in key and c not in keep)
    cur.execute("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s %s"
                % (table, ", ".join(cols), ", ".join(["%s"] * len(cols)), ", ".join(key), sets, returning),
                [row[c] for c in cols])
    return cur.fetchall() if returning else None


def insert(cur, table, row, returning=""):
    cols = list(row)
    cur.execute("INSERT INTO %s (%s) VALUES (%s) %s" % (table, ", ".join(cols), ", ".join(["%s"] * len(cols)),
                                                        returning), [row[c] for c in cols])
    return cur.fetchall() if returning else None


def ticker_row(ticker, region, name, r):
    return {"ticker": ticker, "region": region, "name": "%s r%d" % (name, r), "name_eng": name,
            "exchange": "KOSPI" if region == "KR" else "NASDAQ", "currency": "KRW" if region == "KR" else "USD",
            "asset_type": "ETF" if ticker == "069500" else "STOCK", "listing_date": "2000-01-04",
            "delisting_date": None, "is_active": True, "lot_size": 1, "data_source": "KIS",
            "created_at": "2025-01-01 00:00:00+00", "last_updated": "2025-01-0%d 00:00:00+00" % r}


def write_core(cur, r):
    """tickers, ohlcv_data, stock_details, etf_*, technical_analysis, factor_scores, market data."""
    for t in (("005930", "KR", "Samsung"), ("000660", "KR", "SK hynix"), ("069500", "KR", "KODEX 200"),
              ("AAPL", "US", "Apple")):
        upsert(cur, "tickers", ticker_row(*t, r), ("ticker", "region"))
    bar = {"ticker": "005930", "region": "KR", "timeframe": "D", "date": "2025-01-02", "open": 10.0 * r,
           "high": 12.0 * r, "low": 9.0 * r, "close": 11.0 * r, "volume": 100 * r}
    upsert(cur, "ohlcv_data", dict(bar, created_at="2025-01-02 18:00:00+00"), ("ticker", "region", "timeframe", "date"))
    # backfill_kr_ohlcv_pykrx.py: timeframe '1d', no created_at, key written as (..., date, timeframe)
    upsert(cur, "ohlcv_data", dict(bar, timeframe="1d"), ("ticker", "region", "date", "timeframe"))
    upsert(cur, "stock_details", {
        "ticker": "005930", "region": "KR", "sector": "IT r%d" % r, "sector_code": "45", "industry": "Semis",
        "industry_code": "4530", "is_spac": False, "is_preferred": False, "par_value": 100,
        "created_at": "2025-01-01 00:00:00+00", "last_updated": "2025-01-01 00:00:00+00"}, ("ticker", "region"))
    upsert(cur, "etf_details", {
        "ticker": "069500", "region": "KR", "issuer": "Samsung AM", "inception_date": "2002-10-14",
        "underlying_asset_class": "equity", "tracking_index": "KOSPI 200", "geographic_region": "KR",
        "sector_theme": "broad", "fund_type": "index", "aum": 1000 * r, "listed_shares": 50 * r,
        "underlying_asset_count": 200, "expense_ratio": 0.15, "ter": 0.15, "leverage_ratio": "1x",
        "currency_hedged": False, "tracking_error_20d": 0.01, "tracking_error_60d": 0.02,
        "tracking_error_120d": 0.03, "tracking_error_250d": 0.04,
        "created_at": "2025-01-01 00:00:00+00", "last_updated": "2025-01-01 00:00:00+00"}, ("ticker", "region"))
    cur.execute("UPDATE etf_details SET aum = %s, listed_shares = %s WHERE ticker = '069500' AND region = 'KR'",
                (2000 * r, 60 * r))  # dbm:1099
    upsert(cur, "etf_holdings", {
        "etf_ticker": "069500", "stock_ticker": "005930", "region": "KR", "weight": 20.0 + r, "shares": 10,
        "market_value": 1e6, "rank_in_etf": 1, "weight_change_from_prev": 0.1, "as_of_date": "2025-01-02",
        "data_source": "KRX", "created_at": "2025-01-02 00:00:00+00"},
        ("etf_ticker", "stock_ticker", "region", "as_of_date"))
    upsert(cur, "technical_analysis", {
        "ticker": "005930", "region": "KR", "analysis_date": "2025-01-02", "stage": 2, "stage_confidence": 0.8,
        "layer1_macro_score": 1.0, "layer2_structural_score": 2.0, "layer3_micro_score": 3.0,
        "total_score": 60.0 + r, "signal": "BUY", "signal_strength": 0.7, "gpt_pattern": None,
        "gpt_confidence": None, "gpt_analysis": None, "created_at": "2025-01-02 00:00:00+00"},
        ("ticker", "region", "analysis_date"))
    upsert(cur, "factor_scores", {"ticker": "005930", "region": "KR", "date": "2025-01-02",
                                  "factor_name": "momentum_12m", "score": -1.2345 * r, "percentile": 12.5 * r},
           ("ticker", "region", "date", "factor_name"))
    upsert(cur, "market_sentiment", {"date": "2025-01-02", "vix": 15.0 + r, "fear_greed_index": 50.0,
                                     "usd_krw": 1450.0, "market_regime": "NEUTRAL", "sentiment_score": 0.1,
                                     "created_at": "2025-01-02 00:00:00+00"}, ("date",))
    upsert(cur, "global_market_indices", {
        "date": "2025-01-02", "symbol": "^GSPC", "index_name": "S&P 500", "region": "US", "close_price": 5900.0 + r,
        "open_price": 5880.0, "high_price": 5920.0, "low_price": 5870.0, "volume": 10, "change_percent": 0.5,
        "trend_5d": "UP", "consecutive_days": 2, "created_at": "2025-01-02 00:00:00+00"}, ("date", "symbol"))
    # backfill_market_indices.py: no change_percent, trend_5d, consecutive_days, created_at
    upsert(cur, "global_market_indices", {
        "symbol": "000001.SS", "index_name": "Shanghai Composite", "region": "EU", "date": "2025-01-02",
        "open_price": 3200.0, "high_price": 3250.0, "low_price": 3190.0, "close_price": 3240.0 + r,
        "volume": 20}, ("date", "symbol"))
    insert(cur, "exchange_rate_history", {"currency": "USD", "rate": 1450.0 + r,
                                          "timestamp": "2025-01-02 09:00:00+09", "rate_date": "2025-01-02",
                                          "source": "BOK_API", "created_at": "2025-01-02 00:00:00+00"})


def dart_row(r, fiscal_year, period_type, report, period_end):
    row = {"ticker": "005930", "region": "KR", "date": period_end, "period_type": period_type,
           "shares_outstanding": 5969782550, "market_cap": 300_000_000_000_000, "close_price": 53000.0,
           "per": 10.5, "pbr": 1.1, "psr": 1.5, "total_assets": 455_000_000_000_000,
           "total_liabilities": 92_000_000_000_000, "total_equity": 363_000_000_000_000,
           "revenue": 300_000_000_000_000 + r, "operating_profit": 32_000_000_000_000,
           "net_income": 34_000_000_000_000, "current_assets": 200_000_000_000_000,
           "current_liabilities": 70_000_000_000_000, "inventory": 51_000_000_000_000,
           "cogs": 186_000_000_000_000, "gross_profit": 114_000_000_000_000, "depreciation": 39_000_000_000_000,
           "accounts_receivable": 43_000_000_000_000, "interest_expense": 900_000_000_000,
           "ebitda": 71_000_000_000_000, "fiscal_year": fiscal_year,
           "data_source": "DART-%d-%s" % (fiscal_year, report), "created_at": "2025-03-01 00:00:00+00"}
    row.update({c: 1_234_567_890_123.45 * r for c in PHASE2})
    row.update(nim=2.1234 * r, ebitda_margin=23.6789)
    return row


FUND_KEY = ("ticker", "region", "date", "period_type")


def write_fundamentals(cur, r):
    """Every ticker_fundamentals writer of contract section 2a."""
    # backfill_fundamentals_dart.py: one row per report; Q1 and Q3 share fiscal_year and period_type
    reports = ((2024, "ANNUAL", "11011", "2024-12-31"), (2025, "SEMI-ANNUAL", "11012", "2025-06-30"),
               (2025, "QUARTERLY", "11013", "2025-03-31"), (2025, "QUARTERLY", "11014", "2025-09-30"))
    for fy, ptype, report, end in reports:
        upsert(cur, "ticker_fundamentals", dart_row(r, fy, ptype, report, end), FUND_KEY)
    # backfill_phase2_historical.py: annual reports of earlier years
    upsert(cur, "ticker_fundamentals", dart_row(r, 2023, "ANNUAL", "11011", "2023-12-31"), FUND_KEY)
    # backfill_fundamentals_pykrx_kr.py: DAILY on the trading day, eps/bps, data_source merged by CASE
    row = {"ticker": "005930", "region": "KR", "date": "2025-01-02", "period_type": "DAILY",
           "shares_outstanding": 5969782550, "market_cap": 316_000_000_000_000, "close_price": 53000.0 + r,
           "per": 11.2, "pbr": 1.05, "eps": 4950.0, "bps": 52002.0 * r, "dividend_yield": 2.72,
           "dividend_per_share": 1444.0, "data_source": "pykrx" if r == 1 else "DART-2024-11011"}
    cur.execute("""
        INSERT INTO ticker_fundamentals (ticker, region, date, period_type, shares_outstanding, market_cap,
            close_price, per, pbr, eps, bps, dividend_yield, dividend_per_share, data_source, created_at)
        VALUES (%(ticker)s, 'KR', %(date)s, %(period_type)s, %(shares_outstanding)s, %(market_cap)s, %(close_price)s,
            %(per)s, %(pbr)s, %(eps)s, %(bps)s, %(dividend_yield)s, %(dividend_per_share)s, %(data_source)s, NOW())
        ON CONFLICT (ticker, region, date, period_type) DO UPDATE SET
            close_price = EXCLUDED.close_price, eps = EXCLUDED.eps, bps = EXCLUDED.bps,
            data_source = CASE WHEN ticker_fundamentals.data_source LIKE 'DART%%' AND EXCLUDED.data_source = 'pykrx'
                               THEN 'DART+pykrx' ELSE EXCLUDED.data_source END""", row)
    # backfill_fundamentals_yfinance.py: DAILY, today
    upsert(cur, "ticker_fundamentals", {"ticker": "AAPL", "region": "US", "date": TODAY, "period_type": "DAILY",
                                        "per": 30.0 + r, "pbr": 50.0, "market_cap": 3_500_000_000_000,
                                        "data_source": "yfinance"}, FUND_KEY)
    # collect_eps_data.py: DAILY today with the EPS columns
    upsert(cur, "ticker_fundamentals", {"ticker": "005930", "region": "KR", "date": TODAY, "period_type": "DAILY",
                                        "trailing_eps": 4950.1234 * r, "forward_eps": 5500.5, "eps_growth_yoy": 12.34,
                                        "earnings_momentum": -3.5, "data_source": "yfinance"}, FUND_KEY)
    # collect_quality_data.py: ANNUAL dated the day it runs; two runs on different days keep two rows
    for day in (TODAY - timedelta(days=1), TODAY):
        upsert(cur, "ticker_fundamentals", {"ticker": "000660", "region": "KR", "date": day, "period_type": "ANNUAL",
                                            "fiscal_year": 2024, "net_income": 1000 * r, "total_equity": 5000,
                                            "operating_cash_flow": 700, "data_source": "DART"}, FUND_KEY)
    # collect_fcf_data.py:146 UPDATE by (ticker, region, date)
    cur.execute("UPDATE ticker_fundamentals SET fcf = %s, capex = %s, fcf_yield = %s "
                "WHERE ticker = '005930' AND region = 'KR' AND date = '2024-12-31'",
                (9_000_000_000_000 * r, -50_000_000_000_000, 3.1415))
    # the writer's UPDATE names no period_type, so it sets every row of that date: on an empty database
    # only the DART annual row, after a migration also a quarterly row of unknown quarter
    assert cur.rowcount >= 1
    # migrate_ticker_fundamentals.py: DO NOTHING on an existing key
    cur.execute("INSERT INTO ticker_fundamentals (ticker, region, date, period_type, per, data_source) "
                "VALUES ('005930', 'KR', '2024-12-31', 'ANNUAL', -1, 'copy') "
                "ON CONFLICT (ticker, region, date, period_type) DO NOTHING")
    assert cur.rowcount == 0


def write_research(cur, r):
    """fx_valuation_signals (+ its view), ic_time_series, corporate_actions; returns the fx upsert's result."""
    cur.execute("""
        INSERT INTO fx_valuation_signals (currency, region, date, usd_rate, data_quality, created_at, updated_at)
        VALUES (%s, %s, %s, %s, %s, NOW(), NOW())
        ON CONFLICT (currency, region, date) DO UPDATE SET
            usd_rate = EXCLUDED.usd_rate, data_quality = EXCLUDED.data_quality, updated_at = NOW()
        RETURNING id, (xmax = 0) AS inserted""", ("HKD", "HK", "2025-01-02", 0.128 + r / 1000, "GOOD"))
    returned = cur.fetchone()
    # fx_valuation_analyzer.py:722 UPDATE keyed by (currency, date)
    cur.execute("UPDATE fx_valuation_signals SET return_1m = %s, return_3m = 1.5, return_6m = 2.5, return_12m = 3.5, "
                "trend_score = -42.5, volatility = 0.8, momentum_acceleration = 0.1, attractiveness_score = %s, "
                "confidence = 0.95 WHERE currency = 'HKD' AND date = '2025-01-02'", (-0.5 * r, 60.0 + r))
    assert cur.rowcount == 1
    upsert(cur, "ic_time_series", {"factor_name": "momentum_12m", "date": "2025-01-02", "region": "KR",
                                   "holding_period": 21, "ic": 0.123456 * r, "p_value": 0.01, "num_stocks": 150,
                                   "is_significant": True}, ("factor_name", "date", "region", "holding_period"))
    cur.execute("""
        INSERT INTO corporate_actions (ticker, region, action_date, action_type, dividend_type, dividend_per_share,
            dividend_yield, split_ratio, split_from, split_to, rights_ratio, rights_price, data_source)
        VALUES (%s, 'KR', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (ticker, region, action_date, action_type) DO UPDATE SET
            dividend_type = EXCLUDED.dividend_type, dividend_per_share = EXCLUDED.dividend_per_share,
            dividend_yield = EXCLUDED.dividend_yield, split_ratio = EXCLUDED.split_ratio,
            split_from = EXCLUDED.split_from, split_to = EXCLUDED.split_to, rights_ratio = EXCLUDED.rights_ratio,
            rights_price = EXCLUDED.rights_price, data_source = EXCLUDED.data_source,
            updated_at = CURRENT_TIMESTAMP""",
                ("005930", "2024-12-27", "dividend", "cash", 361.0 * r, 2.72, None, None, None, None, None, "pykrx"))
    return returned


def write_platform(cur, r):
    """trades, portfolio, strategies, users/sessions/audit_log."""
    insert(cur, "trades", {"ticker": "005930", "region": "KR", "side": "BUY", "order_type": "LIMIT", "quantity": 10,
                           "entry_price": 53000.0, "price": 53000.0, "amount": 530000.0, "fee": 10.0, "tax": 0.0,
                           "order_no": "O%d" % r, "order_time": "2025-01-02 09:01:00+09", "trade_status": "OPEN"})
    cur.execute("UPDATE trades SET trade_status = 'CLOSED', exit_price = 55000, exit_timestamp = now() "
                "WHERE order_no = %s", ("O%d" % r,))  # dbm:1898
    cur.execute("UPDATE portfolio SET current_price = %s, market_value = %s, unrealized_pnl = %s "
                "WHERE ticker = '005930' AND region = 'KR'", (54000.0 + r, 540000.0, 10000.0 * r))  # dbm:1951
    assert cur.rowcount == 1
    if r == 1:  # strategy_routes.py:146 checks the name first, then INSERT ... RETURNING
        cur.execute("INSERT INTO strategies (name, description, factor_weights, constraints, created_at, updated_at) "
                    "VALUES ('momentum_value', 'd', '{\"momentum\": 0.5}', '{}', NOW(), NOW()) RETURNING id")
        assert cur.fetchone()[0] >= 1
        # cli/commands/setup.py:188
        insert(cur, "users", {"username": "admin", "email": "admin@example.org", "password_hash": "$2b$12$x",
                              "role": "admin", "is_active": True, "created_at": "2025-01-01 00:00:00"})
    cur.execute("UPDATE strategies SET factor_weights = %s, updated_at = NOW() WHERE name = 'momentum_value'",
                ('{"momentum": %s}' % (r / 10),))  # :387
    cur.execute("SELECT id FROM users WHERE username = 'admin'")
    user_id = cur.fetchone()[0]
    cur.execute("INSERT INTO sessions (user_id, session_token, expires_at, created_at) VALUES (%s, %s, %s, NOW())",
                (user_id, "tok%d" % r + "x" * 60, TODAY + timedelta(days=7)))
    cur.execute("UPDATE users SET last_login = NOW() WHERE id = %s", (user_id,))
    cur.execute("INSERT INTO audit_log (user_id, action, status, timestamp) VALUES (%s, 'login', 'success', NOW())",
                (user_id,))


def run_app(db, r):
    conn = db.login(db.app)
    try:
        cur = conn.cursor()
        write_core(cur, r)
        write_fundamentals(cur, r)
        fx = write_research(cur, r)
        write_platform(cur, r)
        conn.commit()
        # fx_data_collector.py:586 after the upserts, and migrations/007's wrapper
        cur.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_latest_fx_signals")
        cur.execute("SELECT refresh_latest_fx_signals()")
        conn.commit()
        return fx
    finally:
        conn.close()


COUNTED = ("tickers", "ohlcv_data", "stock_details", "etf_details", "etf_holdings", "technical_analysis",
           "ticker_fundamentals", "factor_scores", "market_sentiment", "global_market_indices",
           "exchange_rate_history", "trades", "portfolio", "strategies", "fx_valuation_signals",
           "mv_latest_fx_signals", "ic_time_series", "corporate_actions", "users", "sessions", "audit_log")


def counts(db):
    return dict(zip(COUNTED, db.admin_sql("SELECT " + ", ".join("(SELECT count(*) FROM %s)" % t for t in COUNTED))[0]))


def seed_portfolio(db):
    """portfolio has no application insert path (dbm:1951 only updates): the migration brings its rows."""
    conn = db.login(db.app)
    cur = conn.cursor()
    upsert(cur, "tickers", ticker_row("005930", "KR", "Samsung", 1), ("ticker", "region"))
    insert(cur, "portfolio", {"ticker": "005930", "region": "KR", "quantity": 10, "avg_price": 53000.0,
                              "entry_date": "2025-01-02"})
    conn.commit()
    conn.close()


def test_every_application_write_runs_twice_as_the_app_role(app_db):
    seed_portfolio(app_db)
    first_fx = run_app(app_db, 1)
    after_first = counts(app_db)
    second_fx = run_app(app_db, 2)
    after_second = counts(app_db)

    # plain INSERT writers add a row per run; every upsert updated in place
    grows = {"exchange_rate_history", "trades", "sessions", "audit_log"}
    assert {t: after_second[t] - after_first[t] for t in COUNTED} == {t: int(t in grows) for t in COUNTED}
    # 5 DART reports, pykrx DAILY, yfinance DAILY, EPS DAILY, 2 quality runs
    assert after_second["ticker_fundamentals"] == 10
    assert app_db.admin_sql("SELECT ticker, date, period_type, fiscal_year FROM ticker_fundamentals "
                            "WHERE ticker = '005930' AND period_type = 'QUARTERLY' ORDER BY date") == [
        ("005930", date(2025, 3, 31), "QUARTERLY", 2025), ("005930", date(2025, 9, 30), "QUARTERLY", 2025)]
    assert app_db.admin_sql("SELECT count(*) FROM ticker_fundamentals WHERE ticker = '000660'") == [(2,)]

    # fx upsert: RETURNING id, (xmax = 0) tells the insert from the update of the same row
    assert first_fx[1] is True and second_fx == (first_fx[0], False)
    assert app_db.admin_sql("SELECT usd_rate::float8, return_1m::float8, attractiveness_score::float8, "
                            "updated_at = (SELECT max(updated_at) FROM fx_valuation_signals) FROM mv_latest_fx_signals"
                            ) == [(pytest.approx(0.130), pytest.approx(-1.0), 62.0, True)]
    # the BEFORE UPDATE trigger moved updated_at
    assert app_db.admin_sql("SELECT updated_at > created_at FROM fx_valuation_signals") == [(True,)]

    # second-run values everywhere
    values = app_db.admin_sql("""SELECT
        (SELECT name FROM tickers WHERE ticker = '005930'),
        (SELECT created_at = '2025-01-01 00:00:00+00' FROM tickers WHERE ticker = '005930'),
        (SELECT string_agg(timeframe || ':' || close, ',' ORDER BY timeframe) FROM ohlcv_data),
        (SELECT sector FROM stock_details), (SELECT aum FROM etf_details), (SELECT weight FROM etf_holdings),
        (SELECT total_score FROM technical_analysis), (SELECT score::float8 FROM factor_scores),
        (SELECT vix FROM market_sentiment),
        (SELECT string_agg(symbol || ':' || close_price || ':' || coalesce(change_percent::text, '-'), ','
                           ORDER BY symbol) FROM global_market_indices),
        (SELECT ic::float8 FROM ic_time_series), (SELECT dividend_per_share::float8 FROM corporate_actions),
        (SELECT current_price FROM portfolio),
        (SELECT factor_weights ->> 'momentum' FROM strategies),
        (SELECT last_login IS NOT NULL AND updated_at > created_at FROM users)""")[0]
    assert values == ("Samsung r2", True, "1d:22,D:22", "IT r2", 4000, 22.0, 62.0, pytest.approx(-2.469), 17.0,
                      "000001.SS:3242:-,^GSPC:5902:0.5", pytest.approx(0.246912), 722, 54002.0, "0.2", True)
    fund = app_db.admin_sql("""SELECT
        (SELECT revenue FROM ticker_fundamentals WHERE date = '2023-12-31'),
        (SELECT pp_e::float8 FROM ticker_fundamentals WHERE date = '2024-12-31'),
        (SELECT nim::float8 FROM ticker_fundamentals WHERE date = '2025-03-31'),
        (SELECT fcf FROM ticker_fundamentals WHERE date = '2024-12-31'),
        (SELECT per FROM ticker_fundamentals WHERE date = '2024-12-31'),
        (SELECT bps || ':' || data_source FROM ticker_fundamentals WHERE period_type = 'DAILY' AND date = '2025-01-02'),
        (SELECT trailing_eps::float8 FROM ticker_fundamentals WHERE ticker = '005930' AND date = %s),
        (SELECT per FROM ticker_fundamentals WHERE ticker = 'AAPL'),
        (SELECT sum(net_income) FROM ticker_fundamentals WHERE ticker = '000660')""" % ("'%s'" % TODAY))[0]
    assert fund == (300_000_000_000_002, pytest.approx(2_469_135_780_246.90), pytest.approx(4.2468),
                    18_000_000_000_000, 10.5, "104004:DART-2024-11011", pytest.approx(9900.2468), 32.0, 4000)


def test_deletes_and_cleanup_as_the_app_role(app_db):
    seed_portfolio(app_db)
    run_app(app_db, 1)
    conn = app_db.login(app_db.app)
    cur = conn.cursor()
    # dbm:475 delete_ticker: its fundamentals, details, holdings, analysis, trades, portfolio go with it
    cur.execute("DELETE FROM tickers WHERE ticker = '005930' AND region = 'KR'")
    cur.execute("SELECT count(*) FROM ticker_fundamentals WHERE ticker = '005930'")
    assert cur.fetchone() == (0,)
    cur.execute("SELECT (SELECT count(*) FROM stock_details) + (SELECT count(*) FROM portfolio) "
                "+ (SELECT count(*) FROM trades) + (SELECT count(*) FROM technical_analysis)")
    assert cur.fetchone() == (0,)
    cur.execute("SELECT count(*) FROM ticker_fundamentals")
    assert cur.fetchone() == (3,)  # AAPL and 000660's two quality rows stay
    cur.execute("DELETE FROM technical_analysis WHERE ticker = '005930'")  # dbm:1466, nothing left
    cur.execute("DELETE FROM strategies WHERE name = 'momentum_value'")  # strategy_routes.py:658
    assert cur.rowcount == 1
    cur.execute("DELETE FROM ticker_fundamentals WHERE ticker = 'AAPL' AND region = 'US' AND date = %s "
                "AND period_type = 'DAILY'", (TODAY,))  # dbm:1724
    assert cur.rowcount == 1
    # cli logout, then cleanup_expired_sessions() deletes what expired
    cur.execute("DELETE FROM sessions WHERE session_token LIKE 'tok1%'")
    cur.execute("INSERT INTO sessions (user_id, session_token, expires_at) "
                "SELECT id, 'expired', now() - interval '1 hour' FROM users")
    cur.execute("SELECT cleanup_expired_sessions()")
    assert cur.fetchone() == (1,)
    cur.execute("SELECT count(*) FROM sessions")
    assert cur.fetchone() == (0,)
    conn.commit()
    # the application's validation SQL creates temporary tables
    cur.execute("CREATE TEMP TABLE check_results (name text)")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("CREATE TABLE public.sneaky (x int)")
    conn.close()


def test_privileges_are_what_the_statements_need(app_db):
    assert app_db.admin_sql("SELECT matviewowner FROM pg_matviews WHERE matviewname = 'mv_latest_fx_signals'") == [
        (app_db.app,)]
    assert app_db.admin_sql("SELECT tableowner FROM pg_tables WHERE tablename = 'fx_valuation_signals'") == [
        (app_db.owner,)]
    ro = app_db.login(app_db.ro)
    cur = ro.cursor()
    cur.execute("SELECT count(*) FROM mv_latest_fx_signals")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("REFRESH MATERIALIZED VIEW mv_latest_fx_signals")
    ro.rollback()
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("CREATE TEMP TABLE t (x int)")
    ro.close()
    # the role's second run changes no privilege (privileges.yml is idempotent)
    acl = ("SELECT relname, relacl::text, relowner::regrole::text FROM pg_class "
           "WHERE relnamespace = 'public'::regnamespace ORDER BY 1")
    before = app_db.admin_sql(acl)
    app_db.grant()
    assert app_db.admin_sql(acl) == before


def test_every_conflict_target_has_a_plain_unique_constraint(app_db):
    """ON CONFLICT inference needs a non-partial unique index on exactly the target columns."""
    targets = {
        "tickers": {"ticker", "region"}, "ohlcv_data": {"ticker", "region", "timeframe", "date"},
        "stock_details": {"ticker", "region"}, "etf_details": {"ticker", "region"},
        "etf_holdings": {"etf_ticker", "stock_ticker", "region", "as_of_date"},
        "technical_analysis": {"ticker", "region", "analysis_date"},
        "ticker_fundamentals": {"ticker", "region", "date", "period_type"}, "market_sentiment": {"date"},
        "global_market_indices": {"date", "symbol"}, "factor_scores": {"ticker", "region", "date", "factor_name"},
        "fx_valuation_signals": {"currency", "region", "date"},
        "ic_time_series": {"factor_name", "date", "region", "holding_period"},
        "corporate_actions": {"ticker", "region", "action_date", "action_type"}, "strategies": {"name"},
    }
    rows = app_db.admin_sql("""
        SELECT c.relname, array_agg(a.attname::text)
          FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
         WHERE i.indisunique AND i.indpred IS NULL AND c.relnamespace = 'public'::regnamespace
         GROUP BY c.relname, i.indexrelid""")
    found = {(t, frozenset(cols)) for t, cols in rows}
    assert {(t, frozenset(cols)) for t, cols in targets.items()} <= found
    assert ("ticker_fundamentals", frozenset({"ticker", "region", "fiscal_year", "period_type"})) not in found


def test_every_application_write_runs_twice_on_a_migrated_database(app_db, tmp_path):
    """The same writes after the role's default migration of the sample: the upserts meet migrated keys
    (005930 KR and its fundamentals are in the sample), and the plain inserts, which never supply an id,
    get ids above the migrated ones."""
    src = tmp_path / "spock_local.db"
    generate(str(src), scale=0.01)
    params = {**migrate_params(), "src": str(src), "rejects_path": str(tmp_path / "rejects.jsonl")}
    migration = run_migration(app_db.server.params(app_db.db, **params))
    assert migration["total_copied"] > 9000
    migrated_ids = dict(app_db.admin_sql(
        "SELECT 'trades', coalesce(max(id), 0) FROM trades UNION ALL "
        "SELECT 'exchange_rate_history', coalesce(max(id), 0) FROM exchange_rate_history"))
    assert app_db.admin_sql("SELECT count(*) FROM ticker_fundamentals WHERE ticker = '005930' AND region = 'KR'")[0][0]

    seed_portfolio(app_db)  # the sample has no portfolio rows, and the application only updates them
    before = counts(app_db)
    run_app(app_db, 1)
    after_first = counts(app_db)
    run_app(app_db, 2)
    after_second = counts(app_db)

    grows = {"exchange_rate_history", "trades", "sessions", "audit_log"}
    assert {t: after_second[t] - after_first[t] for t in COUNTED} == {t: int(t in grows) for t in COUNTED}
    assert all(after_first[t] >= before[t] for t in COUNTED)
    assert migrated_ids["exchange_rate_history"] > 0  # the sample's rates came with their SQLite ids
    for table, top in migrated_ids.items():  # each run's insert got an id above the migrated ones
        assert app_db.admin_sql("SELECT count(*) FROM %s WHERE id > %s" % (table, top)) == [(2,)], table
    # the second run updated the migrated ticker in place
    assert app_db.admin_sql("SELECT name FROM tickers WHERE ticker = '005930' AND region = 'KR'") == [
        ("Samsung r2",)]
