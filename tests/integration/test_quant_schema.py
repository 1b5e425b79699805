"""Apply the role's rendered Apache-edition schema steps to a real PostgreSQL + TimescaleDB."""

from datetime import date, timedelta

import psycopg2
import pytest
from ansible.module_utils.mapping.derive import period_end
from ansible.module_utils.schema.steps import SchemaStepError, checksum, run, text_checksum
from integration.test_rollback import Host, host_files_kept, ok
from schema_render import grant_statements, render_steps

pytestmark = pytest.mark.integration

EXPECTED_TABLES = {
    "tickers", "ohlcv_data", "stock_details", "etf_details", "etf_holdings", "ticker_fundamentals",
    "factor_scores", "global_market_indices", "exchange_rate_history", "strategies", "backtest_results",
    "portfolio_holdings", "portfolio_transactions", "walk_forward_results", "optimization_history",
    "technical_analysis", "trades", "portfolio", "market_sentiment",
    # step 6: what the application writes beyond the 19
    "fx_valuation_signals", "ic_time_series", "corporate_actions", "users", "sessions", "audit_log",
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
    assert preview["changed"] and [s["step"] for s in preview["pending"]] == [1, 2, 3, 4, 5, 6, 7]
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
                 "ORDER BY 1") == [("mv_latest_fx_signals",), ("ohlcv_monthly",), ("ohlcv_quarterly",),
                                   ("ohlcv_yearly",)]
    recorded = query(pg_server, schema_db, "SELECT step, name, length(checksum) FROM quant_meta.schema_steps "
                     "ORDER BY step")
    assert recorded == [(1, "tables", 64), (2, "indexes", 64), (3, "hypertables", 64),
                        (4, "aggregates_apache", 64), (5, "policies_apache", 64), (6, "app_schema", 64),
                        (7, "fundamentals_key", 64)]

    again = run(params, steps)
    assert again == {"changed": False, "applied": [], "pending": [], "rerecorded": [], "transitioned": [],
                     "recorded": [1, 2, 3, 4, 5, 6, 7]}

    # A database recorded by a release that hashed the whole text: accepted, re-recorded once.
    with pg_server.connect(schema_db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE quant_meta.schema_steps SET checksum = %s WHERE step = 2",
                    (text_checksum(steps[1]["sql"]),))
    assert [s["step"] for s in run(params, steps, check_mode=True)["rerecorded"]] == [2]
    upgraded = run(params, steps)
    assert upgraded["changed"] and [s["step"] for s in upgraded["rerecorded"]] == [2] and not upgraded["applied"]
    assert query(pg_server, schema_db, "SELECT checksum FROM quant_meta.schema_steps WHERE step = 2") == [
        (checksum(steps[1]["sql"]),)]
    assert run(params, steps)["changed"] is False

    # Comments are not what a step does: rewording them is not an edit.
    reworded = [dict(s) for s in steps]
    reworded[1]["sql"] = "-- reworded\n" + steps[1]["sql"]
    assert run(params, reworded)["changed"] is False

    edited = [dict(s) for s in steps]
    edited[1]["sql"] += "\nCREATE INDEX idx_extra ON tickers (name);\n"
    with pytest.raises(SchemaStepError, match="step 2 'indexes' was edited"):
        run(params, edited, check_mode=True)

    switched = render_steps("community")
    with pytest.raises(SchemaStepError, match=r"applied as 'aggregates_apache'.*no transition"):
        run(params, [dict(s, transitions={}) for s in switched])
    # the Community variant's transition on a server that is still Apache: refused by the server,
    # rolled back whole (the fallback views and their recorded step stay)
    with pytest.raises(SchemaStepError, match="step 4's transition 'aggregates_apache' -> 'aggregates_community' "
                                              "failed and was rolled back"):
        run(params, switched)
    assert query(pg_server, schema_db, "SELECT count(*) FROM pg_matviews WHERE matviewname LIKE 'ohlcv_%'") == [(3,)]
    assert query(pg_server, schema_db, "SELECT name FROM quant_meta.schema_steps WHERE step = 4") == [
        ("aggregates_apache",)]


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
    """The grants the role's privileges.yml makes (rendered from its vars), on the role's schema."""
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
    for stmt in grant_statements(schema_db, owner, app, ro):
        cur.execute(stmt)
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


# (id, ticker, region, date, period_type, fiscal_year, data_source, revenue) as migrated under the
# old key (ticker, region, fiscal_year, period_type): several fiscal years on one collection date,
# Q1 and Q3 reports collected the same day, DAILY rows without a fiscal year.
FUNDAMENTALS = [
    (1, "005930", "KR", "2025-03-15", "ANNUAL", 2022, "DART-2022-11011", 100),
    (2, "005930", "KR", "2025-03-15", "ANNUAL", 2023, "DART-2023-11011", 110),
    (3, "005930", "KR", "2025-03-15", "ANNUAL", 2024, "DART-2024-11011", 120),
    (4, "005930", "KR", "2024-05-20", "QUARTERLY", 2023, "DART-2023-11013", 30),
    (5, "005930", "KR", "2024-05-20", "QUARTERLY", 2024, "DART-2024-11014", 31),
    (6, "005930", "KR", "2024-08-14", "SEMI-ANNUAL", 2024, "DART-2024-11012", 60),
    (7, "005930", "KR", "2025-03-14", "DAILY", None, "pykrx", None),
    (8, "005930", "KR", "2025-03-15", "DAILY", None, "pykrx", None),
    (9, "000660", "KR", "2023-12-31", "ANNUAL", 2023, "DART-2023-11011", 50),
    (10, "000660", "KR", "2023-12-31", "ANNUAL", 2022, "DART-2022-11011", 40),
    (11, "000660", "KR", "2025-03-15", "DAILY", None, "pykrx", None),
    (12, "AAPL", "US", "2025-01-10", "ANNUAL", 2024, "yfinance", 400),
]
# id -> the fiscal period end the upgrade moves it to: the rows share the new key, so every statement
# row moves, as the migration would have moved it (a DAILY row and a row already at its end stay)
MOVED = {1: date(2022, 12, 31), 2: date(2023, 12, 31), 3: date(2024, 12, 31), 4: date(2023, 3, 31),
         5: date(2024, 9, 30), 6: date(2024, 6, 30), 10: date(2022, 12, 31), 12: date(2024, 12, 31)}
OTHER_TABLES = ("tickers", "stock_details", "global_market_indices", "exchange_rate_history", "ohlcv_data")


def load_old_database(conn, fundamentals):
    """Rows as the migration left them in a database at steps 1-5 (explicit ids, then setval)."""
    cur = conn.cursor()
    for ticker, region in (("005930", "KR"), ("000660", "KR"), ("AAPL", "US")):
        cur.execute("INSERT INTO tickers (ticker, region, name, exchange) VALUES (%s, %s, %s, 'X')",
                    (ticker, region, ticker))
    cur.execute("INSERT INTO stock_details (ticker, region, sector) VALUES ('005930', 'KR', 'IT')")
    cur.execute("INSERT INTO global_market_indices (date, symbol, index_name, region, close_price, open_price, "
                "high_price, low_price, change_percent) VALUES ('2025-01-02', '^GSPC', 'S&P', 'US', 1, 1, 1, 1, 0.5)")
    cur.execute("INSERT INTO exchange_rate_history (id, currency, rate, \"timestamp\", rate_date) "
                "VALUES (7, 'USD', 1450.5, '2025-01-02 09:00+09', '2025-01-02')")
    cur.execute("INSERT INTO ohlcv_data (ticker, region, date, open, high, low, close, volume) "
                "VALUES ('005930', 'KR', '2025-01-02', 1, 2, 0.5, 1.5, 10)")
    cur.executemany("INSERT INTO ticker_fundamentals (id, ticker, region, date, period_type, fiscal_year, "
                    "data_source, revenue, per, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1.5, "
                    "'2025-04-01 10:00+00')", fundamentals)
    cur.execute("SELECT setval(pg_get_serial_sequence('ticker_fundamentals', 'id'), 12)")


def snapshot(conn, table, order="1"):
    cur = conn.cursor()
    cur.execute("SELECT to_jsonb(t) FROM %s t ORDER BY %s" % (table, order))
    return [row[0] for row in cur.fetchall()]


def test_upgrade_in_place_keeps_every_row(pg_server, schema_db):
    """A database at steps 1-5 holding migrated rows takes steps 6-7 with nothing lost."""
    params = pg_server.params(schema_db)
    steps = render_steps("apache")
    run(params, [s for s in steps if s["step"] <= 5])
    conn = pg_server.connect(schema_db)
    load_old_database(conn, FUNDAMENTALS)
    before = {t: snapshot(conn, t) for t in OTHER_TABLES}
    fund_before = snapshot(conn, "ticker_fundamentals", "(t.id)")

    assert [s["step"] for s in run(params, steps)["applied"]] == [6, 7]

    for table in OTHER_TABLES:  # old columns keep their values; new ones hold their defaults
        after = snapshot(conn, table)
        assert [{k: row[k] for k in old} for row, old in zip(after, before[table])] == before[table], table
    assert [r["metadata"] for r in snapshot(conn, "exchange_rate_history")] == [{}]
    assert [r["corp_code"] for r in snapshot(conn, "stock_details")] == [None]
    fund_after = snapshot(conn, "ticker_fundamentals", "(t.id)")
    assert len(fund_after) == len(FUNDAMENTALS)
    for old, new in zip(fund_before, fund_after):
        moved = MOVED.get(old["id"])
        expected = dict(old, date=moved.isoformat()) if moved else old
        assert {k: new[k] for k in old} == expected, old["id"]
        # the step and the migration apply one rule (module_utils/mapping/derive.py)
        rule = period_end(old["fiscal_year"], old["period_type"], old["data_source"])
        assert new["date"] == (rule or old["date"]), old["id"]
        assert new["collected_date"] == old["date"], old["id"]  # every row came from the SQLite file

    # the application's key works on the upgraded table, and a ticker delete cascades
    cur = conn.cursor()
    cur.execute("INSERT INTO ticker_fundamentals (ticker, region, date, period_type, fiscal_year, revenue) "
                "VALUES ('005930', 'KR', '2024-12-31', 'ANNUAL', 2024, 121) "
                "ON CONFLICT (ticker, region, date, period_type) DO UPDATE SET revenue = EXCLUDED.revenue "
                "RETURNING id")
    assert cur.fetchone() == (3,)
    cur.execute("INSERT INTO ticker_fundamentals (ticker, region, date, period_type) "
                "VALUES ('005930', 'KR', '2025-03-15', 'ANNUAL') RETURNING id")
    assert cur.fetchone()[0] > 12  # identity above the migrated ids
    cur.execute("DELETE FROM tickers WHERE ticker = '000660'")
    cur.execute("SELECT count(*) FROM ticker_fundamentals WHERE ticker = '000660'")
    assert cur.fetchone() == (0,)
    conn.close()


def test_upgrade_stops_on_rows_the_new_key_cannot_hold_and_changes_nothing(pg_server, schema_db):
    params = pg_server.params(schema_db)
    steps = render_steps("apache")
    run(params, [s for s in steps if s["step"] <= 5])
    conn = pg_server.connect(schema_db)
    # two DAILY snapshots of one day (NULL fiscal_year: distinct under the old key); a QUARTERLY
    # pair without a DART report code moves to each fiscal year's last day and no longer collides
    twins = [(13, "005930", "KR", "2025-03-14", "DAILY", None, "yfinance", None),
             (14, "AAPL", "US", "2025-02-01", "QUARTERLY", 2024, "yfinance", 1),
             (15, "AAPL", "US", "2025-02-01", "QUARTERLY", 2023, "yfinance", 2)]
    load_old_database(conn, FUNDAMENTALS + twins)
    fund_before = snapshot(conn, "ticker_fundamentals", "(t.id)")

    with pytest.raises(SchemaStepError, match=r"(?s)step 7 'fundamentals_key' failed and was rolled back: .*"
                       r"ticker_fundamentals: 2 rows share \(ticker, region, date, period_type\) with another row "
                       r"\(1 keys\).*Nothing was changed or dropped.*HINT:.*GROUP BY") as failure:
        run(params, steps)
    assert "dropped" in str(failure.value)
    assert query(pg_server, schema_db, "SELECT max(step) FROM quant_meta.schema_steps") == [(6,)]
    fund_after = snapshot(conn, "ticker_fundamentals", "(t.id)")
    assert [{k: row[k] for k in old} for row, old in zip(fund_after, fund_before)] == fund_before
    assert {r["collected_date"] for r in fund_after} == {None}
    assert query(pg_server, schema_db, "SELECT conname FROM pg_constraint "
                 "WHERE conrelid = 'ticker_fundamentals'::regclass AND contype = 'u'") == [("ticker_fundamentals_key",)]

    # the user resolves the duplicates; the next run applies step 7
    conn.cursor().execute("DELETE FROM ticker_fundamentals WHERE id = 13")
    assert [s["step"] for s in run(params, steps)["applied"]] == [7]
    conn.close()


@pytest.mark.slow
def test_the_role_upgrades_a_step_5_database_in_place(pg_server, schema_db, tmp_path):
    """playbooks/database.yml on a database the role left at step 5: steps 6-7 and the app-owned
    view on the next run, then --check predicts no change (privileges.yml is idempotent)."""
    host = Host(pg_server, tmp_path)
    host.db = schema_db
    conn = pg_server.connect(schema_db)
    cur = conn.cursor()
    for role in ("quant_owner", "quant_user", "quant_readonly"):
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if not cur.fetchone():
            cur.execute('CREATE ROLE "%s" LOGIN' % role)
    cur.execute('ALTER DATABASE "%s" OWNER TO quant_owner' % schema_db)
    run(pg_server.params(schema_db), [s for s in render_steps("apache") if s["step"] <= 5],
        session_role="quant_owner")
    load_old_database(conn, FUNDAMENTALS)
    conn.close()
    with host_files_kept():
        ok(host.play("playbooks/database.yml"))
        assert query(pg_server, schema_db, "SELECT step, name FROM quant_meta.schema_steps WHERE step > 5 "
                     "ORDER BY 1") == [(6, "app_schema"), (7, "fundamentals_key")]
        assert query(pg_server, schema_db, "SELECT matviewowner FROM pg_matviews "
                     "WHERE matviewname = 'mv_latest_fx_signals'") == [("quant_user",)]
        assert query(pg_server, schema_db, "SELECT count(*), count(collected_date) FROM ticker_fundamentals") == [
            (len(FUNDAMENTALS), len(FUNDAMENTALS))]
        assert "changed=0" in ok(host.play("playbooks/database.yml", "--check"))
