"""build_plan on SQLite files at older schema stages, the period-end rule, and the reject policy.

The target tables are catalog stand-ins (pg_target.TargetTable); the source is a
real SQLite file built per test. What matters is the decision build_plan takes:
a warning and a plan that loads what it can, or an error that names the column
and what to set.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple

import pytest
from ansible.module_utils.convert.types import Options, TargetType
from ansible.module_utils.core.sqlite_source import open_source
from ansible.module_utils.mapping.derive import period_end
from ansible.module_utils.mapping.plan import MappingError, SourceTableMissing, build_plan
from ansible.module_utils.mapping.row_converter import explain_row
from ansible.module_utils.mapping.target import Column, TargetTable
from ansible.module_utils.migrate.reject_policy import RejectPolicy

# the shape of pg_target's unique-key entries (name, columns, nulls_not_distinct, primary)
UniqueKey = namedtuple("UniqueKey", "name columns nulls_not_distinct primary")


def _target(name, spec, primary_key=None, unique=()):
    """spec: {column: (base type, not_null, has_default, identity)}."""
    columns = {}
    for col, (base, not_null, default, identity) in spec.items():
        columns[col] = Column(col, TargetType(base, not_null=not_null), default, "d" if identity else "", "")
    keys = [UniqueKey("%s_key%d" % (name, i), list(cols), False, False) for i, cols in enumerate(unique)]
    if primary_key:
        keys.append(UniqueKey("%s_pkey" % name, list(primary_key), False, True))
    return TargetTable("public", name, 1, columns, keys, primary_key, False)


OHLCV = _target("ohlcv_data", {
    "ticker": ("text", True, False, False), "region": ("text", True, False, False),
    "timeframe": ("text", True, False, False), "date": ("date", True, False, False),
    "close": ("float8", True, False, False), "created_at": ("timestamptz", True, True, False),
}, primary_key=["ticker", "region", "timeframe", "date"])

FUNDAMENTALS = _target("ticker_fundamentals", {
    "id": ("int8", True, True, True), "ticker": ("text", True, False, False), "region": ("text", True, False, False),
    "date": ("date", True, False, False), "period_type": ("text", True, False, False),
    "fiscal_year": ("int8", False, False, False), "per": ("float8", False, False, False),
    "data_source": ("text", False, False, False), "collected_date": ("date", False, False, False),
}, primary_key=["id"], unique=[("ticker", "region", "date", "period_type")])

FUNDAMENTALS_MAPPING = {
    "keys": ["ticker", "region", "date", "period_type"],
    "derive": {
        "region": {"lookup": "tickers", "key": "ticker"},
        "date": {"period_end": {"fiscal_year": "fiscal_year", "period_type": "period_type", "report": "data_source"}},
        "collected_date": {"copy": "date"},
    },
}


def _source(tmp_path, *statements):
    path = tmp_path / "stage.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE tickers (ticker TEXT PRIMARY KEY, region TEXT NOT NULL)")
    db.executemany("INSERT INTO tickers VALUES (?, ?)", [("005930", "KR"), ("000660", "KR"), ("AAPL", "US")])
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    return open_source(str(path))


def _rows(src, plan):
    return list(src.iter_rows(plan.source_table, plan.source_columns, plan.order_by))


# -- schema stages -------------------------------------------------------------------------------

def test_kis_ohlcv_without_id_and_with_updated_at_is_a_warning(tmp_path):
    src = _source(tmp_path, "CREATE TABLE ohlcv_data (ticker TEXT, region TEXT NOT NULL, timeframe TEXT, "
                            "date DATE, close REAL, created_at TEXT, updated_at TEXT)",
                  "INSERT INTO ohlcv_data VALUES ('005930', 'KR', 'D', '2024-01-05', 1.5, "
                  "'2024-01-05 10:00:00', '2024-01-06 10:00:00')")
    plan = build_plan("ohlcv_data", {"drop": ["id"], "order_by": ["date"], "keys": ["ticker", "region", "timeframe",
                                                                                      "date"]}, src, OHLCV)
    assert plan.source_columns == ["ticker", "region", "timeframe", "date", "close", "created_at"]
    assert plan.unloaded == ["updated_at"]
    assert plan.order_by == ["date"]
    assert len(plan.warnings) == 2
    assert "ohlcv_data: the SQLite table has no column id (drop)" in plan.warnings[0]
    assert "source column updated_at has no column in public.ohlcv_data and is not loaded" in plan.warnings[1]
    assert plan.convert_row(_rows(src, plan)[0])[0] is not None


def test_explicit_rename_to_a_missing_target_column_stays_an_error(tmp_path):
    src = _source(tmp_path, "CREATE TABLE ohlcv_data (ticker TEXT, region TEXT, timeframe TEXT, date TEXT, "
                            "close REAL, px REAL)")
    with pytest.raises(MappingError, match=r"px is renamed to 'price' in `columns`, which public.ohlcv_data"):
        build_plan("ohlcv_data", {"columns": {"px": "price"}}, src, OHLCV)


def test_renamed_column_the_file_lacks_is_reported_once(tmp_path):
    src = _source(tmp_path, "CREATE TABLE ohlcv_data (ticker TEXT, region TEXT, timeframe TEXT, date TEXT, "
                            "close REAL)")
    spec = {"columns": {"stamp": "created_at"}, "transforms": {"stamp": ["strip"], "timeframe": ["upper"]},
            "order_by": ["stamp", "date"]}
    plan = build_plan("ohlcv_data", spec, src, OHLCV)
    assert plan.warnings == [
        "ohlcv_data: the SQLite table has no column stamp (columns: stamp -> created_at; transforms; order_by), "
        "which the mapping names; nothing is read from it (a target column it would fill keeps the source value, "
        "or gets NULL or its default)"]
    assert plan.order_by == ["date"]
    assert "created_at" not in [pc.target for pc in plan.columns]  # the target's default applies


def test_not_null_column_left_unfilled_names_column_and_what_to_set(tmp_path):
    src = _source(tmp_path, "CREATE TABLE ohlcv_data (ticker TEXT, region TEXT, date TEXT, close REAL)")
    with pytest.raises(MappingError) as info:
        build_plan("ohlcv_data", {"keys": ["ticker", "region", "date"]}, src, OHLCV)
    msg = str(info.value)
    assert "requires NOT NULL column timeframe without a default" in msg
    assert "the SQLite table ohlcv_data has no column that fills it" in msg
    assert "set `columns` ({source column: timeframe}) or `derive` for ohlcv_data" in msg


def test_key_column_the_file_lacks_says_what_to_set(tmp_path):
    # init_db.py stage: no fiscal_year, key (ticker, date, period_type)
    src = _source(tmp_path, "CREATE TABLE ticker_fundamentals (id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT "
                            "NOT NULL, date TEXT NOT NULL, period_type TEXT NOT NULL, per REAL, data_source TEXT, "
                            "UNIQUE (ticker, date, period_type))")
    spec = dict(FUNDAMENTALS_MAPPING, keys=["ticker", "region", "fiscal_year", "period_type"])
    with pytest.raises(MappingError) as info:
        build_plan("ticker_fundamentals", spec, src, FUNDAMENTALS)
    msg = str(info.value)
    assert "key column 'fiscal_year' of ticker_fundamentals is not loaded" in msg
    assert "the SQLite table ticker_fundamentals has no column 'fiscal_year'" in msg
    assert "set `keys` for ticker_fundamentals in the mapping (sqlite_migration_mapping)" in msg


def test_init_db_fundamentals_keep_their_dates(tmp_path):
    src = _source(tmp_path, "CREATE TABLE ticker_fundamentals (id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT "
                            "NOT NULL, date TEXT NOT NULL, period_type TEXT NOT NULL, per REAL, data_source TEXT, "
                            "UNIQUE (ticker, date, period_type))",
                  "INSERT INTO ticker_fundamentals (ticker, date, period_type, per) "
                  "VALUES ('005930', '2025-10-15', 'ANNUAL', 9.5)")
    plan = build_plan("ticker_fundamentals", FUNDAMENTALS_MAPPING, src, FUNDAMENTALS)
    assert plan.keys == ["ticker", "region", "date", "period_type"]
    assert "fiscal_year (derive.date period_end)" in plan.warnings[0]
    assert not plan.unloaded
    by_target = {pc.target: pc for pc in plan.columns}
    assert by_target["date"].derive is None and by_target["collected_date"].source == "date"


def test_period_end_replaces_dates_only_in_a_fiscal_year_keyed_file(tmp_path):
    src = _source(
        tmp_path,
        "CREATE TABLE ticker_fundamentals (id INTEGER PRIMARY KEY AUTOINCREMENT, ticker TEXT NOT NULL, date TEXT "
        "NOT NULL, period_type TEXT NOT NULL, per REAL, data_source TEXT, fiscal_year INTEGER, "
        "UNIQUE (ticker, fiscal_year, period_type))",
        "INSERT INTO ticker_fundamentals (ticker, date, period_type, data_source, fiscal_year) VALUES "
        "('005930', '2025-10-15', 'ANNUAL', 'DART-2023-11011', 2023), "
        "('005930', '2025-10-15', 'ANNUAL', 'DART-2024-11011', 2024), "
        "('005930', '2025-10-15', 'QUARTERLY', 'DART-2024-11013', 2024), "
        "('000660', '2025-10-16', 'QUARTERLY', 'DART-2024-11014', 2024), "
        "('AAPL', '2025-10-16', 'QUARTERLY', 'yfinance', 2024), "
        "('005930', '2025-10-17', 'DAILY', 'pykrx', NULL), "
        "('005930', '2025-10-17', 'SEMI-ANNUAL', 'DART-2024-11012', 2024)")
    plan = build_plan("ticker_fundamentals", FUNDAMENTALS_MAPPING, src, FUNDAMENTALS, Options(copy_format="text"))
    names = [pc.target for pc in plan.columns]
    dates = [(f[names.index("date")], f[names.index("collected_date")]) for f in map(plan.convert_row,
                                                                                      _rows(src, plan))]
    assert dates == [("2023-12-31", "2025-10-15"), ("2024-12-31", "2025-10-15"), ("2024-03-31", "2025-10-15"),
                     ("2024-09-30", "2025-10-16"), ("2024-12-31", "2025-10-16"), ("2025-10-17", "2025-10-17"),
                     ("2024-06-30", "2025-10-17")]
    assert any("replaces the source value in 6 rows" in note for note in plan.notes)
    assert not plan.warnings


@pytest.mark.parametrize(("when", "derived"), [("never", False), ("always", True)])
def test_period_end_switch(tmp_path, when, derived):
    src = _source(tmp_path, "CREATE TABLE ticker_fundamentals (ticker TEXT, date TEXT, period_type TEXT, "
                            "data_source TEXT, fiscal_year INTEGER, UNIQUE (ticker, date, period_type))",
                  "INSERT INTO ticker_fundamentals VALUES ('AAPL', '2025-01-02', 'ANNUAL', 'yfinance', 2024)")
    spec = {"keys": ["ticker", "region", "date", "period_type"],
            "derive": {"region": {"lookup": "tickers", "key": "ticker"},
                       "date": {"period_end": {}, "when": when}}}
    plan = build_plan("ticker_fundamentals", spec, src, FUNDAMENTALS, Options(copy_format="text"))
    names = [pc.target for pc in plan.columns]
    row = _rows(src, plan)[0]
    assert plan.convert_row(row)[names.index("date")] == ("2024-12-31" if derived else "2025-01-02")
    assert explain_row(plan, row)[2] == "unknown conversion error"  # the row converts: nothing to explain


def test_missing_table_and_bad_derive_kind(tmp_path):
    src = _source(tmp_path, "CREATE TABLE prices (ticker TEXT, region TEXT, timeframe TEXT, date TEXT, close REAL)")
    with pytest.raises(SourceTableMissing):
        build_plan("ohlcv_data", {}, src, OHLCV)
    with pytest.raises(MappingError, match="must be a dict with `lookup`"):
        build_plan("prices", {"derive": {"region": {"guess": True}}}, src, OHLCV)


def test_unique_keys_of_the_source(tmp_path):
    src = _source(tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT, UNIQUE (a, b))",
                  "CREATE UNIQUE INDEX t_c ON t (c) WHERE c IS NOT NULL",
                  "CREATE TABLE u (a TEXT, b TEXT, PRIMARY KEY (b, a))")
    assert sorted(src.unique_keys("t")) == [["a", "b"], ["id"]]
    assert src.unique_keys("u") == [["b", "a"]]


# -- the period-end rule -------------------------------------------------------------------------

@pytest.mark.parametrize(("fiscal_year", "period_type", "report", "expected"), [
    (2023, "ANNUAL", "DART-2023-11011", "2023-12-31"),
    (2023, "annual", None, None),  # exactly as the platform writes it
    (2023, "QUARTERLY", "DART-2023-11013 ", "2023-12-31"),  # no exact code: quarter unknown
    (2023, "QUARTERLY", "DART+pykrx", "2023-12-31"),
    (2023, "SEMI-ANNUAL", "DART-2023-11012", "2023-06-30"),
    (2023, "QUARTERLY", "DART-2023-11013", "2023-03-31"),
    (2023, "QUARTERLY", "DART-2023-11014", "2023-09-30"),
    (2023, "QUARTERLY", "DART-2023-11012", "2023-12-31"),
    (2023, "QUARTERLY", "yfinance", "2023-12-31"),
    (2023, "QUARTERLY", None, "2023-12-31"),
    (2023, "DAILY", "pykrx", None),
    (None, "ANNUAL", "DART-2023-11011", None),
    ("2023", "ANNUAL", None, "2023-12-31"),
    (b"2023", "ANNUAL", None, None),  # decoded text only: bytes never reach the rule
    (2023.0, "ANNUAL", None, "2023-12-31"),
    (2023.5, "ANNUAL", None, None),
    (0, "ANNUAL", None, None),
    ("FY23", "ANNUAL", None, None),
    (float("inf"), "ANNUAL", None, None),
])
def test_period_end_rule(fiscal_year, period_type, report, expected):
    assert period_end(fiscal_year, period_type, report) == expected


# -- reject policy -------------------------------------------------------------------------------

@pytest.mark.parametrize(("ratio", "max_rejects", "tolerated", "rejected", "rows", "fails"), [
    (0.01, None, 10, 1, 19, False),       # one orphan in a small table: role defaults pass
    (0.01, None, 10, 10, 19, False),
    (0.01, None, 10, 11, 19, True),       # beyond the tolerance and the ratio
    (0.01, None, 10, 11, 10000, False),   # beyond the tolerance, within the ratio
    (0.01, 50, 10, 60, 10000, True),      # absolute limit, whatever the share
    (0.0, None, 0, 1, 1000000, True),     # module defaults: any reject fails
    (0.0, None, 0, 0, 10, False),
])
def test_reject_policy(ratio, max_rejects, tolerated, rejected, rows, fails):
    policy = RejectPolicy(ratio, max_rejects, tolerated)
    assert (policy.verdict(rejected, rows) is not None) is fails


def test_reject_policy_messages():
    policy = RejectPolicy(0.01, None, 1, "/r.jsonl")
    res = {"status": "copied", "rejected_rows": 2, "source_rows": 19}
    reason = policy.judge("etf_details", res)
    assert "2 of 19 rows rejected" in reason and "sqlite_migration_max_reject_ratio" in reason
    assert "sqlite_migration_tolerated_rejects" in reason
    msg = policy.failure_message("etf_details", reason, ["tickers", "stock_details"], ["etf_holdings", "ohlcv_data"])
    assert "/r.jsonl" in msg and "tickers, stock_details" in msg and "not loaded: etf_holdings, ohlcv_data" in msg
    assert "continues with etf_holdings" in msg
    earlier = {"status": "skipped", "rejected_rows": 2, "source_rows": 19, "run_id": "abc"}
    assert policy.judge("etf_details", earlier) is None
    assert "earlier run (run_id abc)" in earlier["reject_warning"]
    tolerated = {"status": "copied", "rejected_rows": 1, "source_rows": 19}
    assert policy.judge("etf_details", tolerated) is None and "tolerated" in tolerated["reject_warning"]
