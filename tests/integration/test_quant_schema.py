"""Apply the role's rendered Apache-edition schema steps to a real PostgreSQL + TimescaleDB."""

from datetime import timedelta

import psycopg2
import pytest
from ansible.module_utils.schema_steps import SchemaStepError, run
from schema_render import render_steps

pytestmark = pytest.mark.integration

EXPECTED_TABLES = {
    "tickers", "ohlcv_data", "stock_details", "etf_details", "etf_holdings", "ticker_fundamentals",
    "factor_scores", "global_market_indices", "exchange_rate_history", "strategies", "backtest_results",
    "portfolio_holdings", "portfolio_transactions", "walk_forward_results", "optimization_history",
    "technical_analysis", "trades", "portfolio", "market_sentiment",
}


@pytest.fixture
def schema_db(require_timescaledb, pg_db):
    conn = require_timescaledb.connect(pg_db)
    conn.cursor().execute("CREATE EXTENSION timescaledb")
    conn.close()
    return pg_db


def query(server, db, sql, args=None):
    conn = server.connect(db)
    try:
        cur = conn.cursor()
        cur.execute(sql, args)
        return cur.fetchall()
    finally:
        conn.close()


def test_apache_edition_detected(pg_server, schema_db):
    assert query(pg_server, schema_db, "SHOW timescaledb.license") == [("apache",)]


def test_apply_rerun_and_edit(pg_server, schema_db):
    params = pg_server.params(schema_db)
    steps = render_steps("apache")

    preview = run(params, steps, check_mode=True)
    assert preview["changed"] and [s["step"] for s in preview["pending"]] == [1, 2, 3, 4, 5]
    assert query(pg_server, schema_db, "SELECT to_regclass('public.tickers')") == [(None,)]

    first = run(params, steps)
    assert first["changed"] and [s["name"] for s in first["applied"]][3] == "aggregates_apache"

    tables = query(pg_server, schema_db,
                   "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                   "AND table_type = 'BASE TABLE'")
    assert {t for (t,) in tables} == EXPECTED_TABLES
    assert query(pg_server, schema_db,
                 "SELECT hypertable_name, d.time_interval FROM timescaledb_information.dimensions d "
                 "ORDER BY 1") == [("factor_scores", timedelta(days=30)),
                                   ("ohlcv_data", timedelta(days=30))]
    assert query(pg_server, schema_db, "SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' "
                 "ORDER BY 1") == [("ohlcv_monthly",), ("ohlcv_quarterly",), ("ohlcv_yearly",)]
    recorded = query(pg_server, schema_db, "SELECT step, name, length(checksum) FROM quant_meta.schema_steps "
                     "ORDER BY step")
    assert recorded == [(1, "tables", 64), (2, "indexes", 64), (3, "hypertables", 64),
                        (4, "aggregates_apache", 64), (5, "policies_apache", 64)]

    again = run(params, steps)
    assert again == {"changed": False, "applied": [], "pending": [], "recorded": [1, 2, 3, 4, 5]}

    edited = [dict(s) for s in steps]
    edited[1]["sql"] += "\nCREATE INDEX idx_extra ON tickers (name);\n"
    with pytest.raises(SchemaStepError, match="step 2 'indexes' was edited"):
        run(params, edited, check_mode=True)

    switched = render_steps("community")
    with pytest.raises(SchemaStepError, match="applied as 'aggregates_apache'"):
        run(params, switched)


def test_fallback_views_refresh_and_hold_data(pg_server, schema_db):
    run(pg_server.params(schema_db), render_steps("apache"))
    conn = pg_server.connect(schema_db)
    cur = conn.cursor()
    cur.execute("INSERT INTO tickers (ticker, region, name, exchange) VALUES ('005930', 'KR', 'Samsung', 'KOSPI')")
    cur.execute("INSERT INTO ohlcv_data (ticker, region, date, open, high, low, close, volume) VALUES "
                "('005930', 'KR', '2025-01-02', 1.5, 2.25, 1.0, 2.0, 10), "
                "('005930', 'KR', '2025-01-03', 2.0, 3.0, 1.75, 2.5, 20)")
    cur.execute("CALL quant_meta.refresh_ohlcv_aggregates()")
    cur.execute("CALL quant_meta.refresh_ohlcv_aggregates()")  # second run: CONCURRENTLY
    cur.execute("SELECT open, high, low, close, volume, trading_days FROM ohlcv_monthly")
    assert cur.fetchall() == [(1.5, 3.0, 1.0, 2.5, 30, 2)]
    cur.execute("SELECT timeframe FROM ohlcv_data LIMIT 1")
    assert cur.fetchone() == ("D",)
    conn.close()


def test_failed_step_rolls_back_and_names_it(pg_server, schema_db):
    steps = [{"step": 1, "name": "ok", "sql": "CREATE TABLE a (x int);"},
             {"step": 2, "name": "broken", "sql": "CREATE TABLE b (x int); SELECT * FROM nowhere;"}]
    with pytest.raises(SchemaStepError, match="step 2 'broken' failed and was rolled back"):
        run(pg_server.params(schema_db), steps)
    assert query(pg_server, schema_db, "SELECT to_regclass('b'), to_regclass('a') IS NOT NULL") == [(None, True)]
    assert query(pg_server, schema_db, "SELECT step FROM quant_meta.schema_steps") == [(1,)]


def test_app_role_writes_readonly_role_cannot(pg_server, schema_db):
    """The grants the role's privileges.yml makes, applied by hand, on the role's schema."""
    admin = pg_server.connect(schema_db)
    cur = admin.cursor()
    suffix = schema_db[-6:]
    owner, app, ro = "own_" + suffix, "app_" + suffix, "ro_" + suffix
    for name in (owner, app, ro):
        cur.execute('CREATE ROLE "%s" LOGIN PASSWORD %%s' % name, ("pw-" + name,))
    cur.execute('GRANT CREATE ON SCHEMA public TO "%s"' % owner)
    cur.execute('GRANT CREATE ON DATABASE "%s" TO "%s"' % (schema_db, owner))
    run(pg_server.params(schema_db), render_steps("apache"), session_role=owner)
    cur.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'tickers'")
    assert cur.fetchone() == (owner,)
    cur.execute('GRANT USAGE ON SCHEMA public TO "%s", "%s"' % (app, ro))
    cur.execute('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "%s"' % app)
    cur.execute('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "%s"' % app)
    cur.execute('GRANT SELECT ON ALL TABLES IN SCHEMA public TO "%s"' % ro)
    admin.close()

    def as_role(name):
        conn = psycopg2.connect(host=pg_server.host, port=pg_server.port, user=name, password="pw-" + name,
                                dbname=schema_db)
        conn.autocommit = True
        return conn.cursor()

    app_cur = as_role(app)
    app_cur.execute("INSERT INTO tickers (ticker, region, name, exchange) VALUES ('AAPL', 'US', 'Apple', 'NASDAQ')")
    app_cur.execute("INSERT INTO strategies (name) VALUES ('s1') RETURNING id")
    assert app_cur.fetchone() == (1,)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        app_cur.execute("CREATE TABLE public.sneaky (x int)")
    ro_cur = as_role(ro)
    ro_cur.execute("SELECT count(*) FROM tickers")
    assert ro_cur.fetchone() == (1,)
    ro_cur.execute("SELECT count(*) FROM ohlcv_monthly")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        ro_cur.execute("INSERT INTO tickers (ticker, region, name, exchange) VALUES ('X', 'US', 'X', 'NYSE')")
