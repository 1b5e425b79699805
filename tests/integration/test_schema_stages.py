"""Each schema stage of a real spock file migrates with the role's DEFAULT mapping and options and
validates with 0 critical (issue 15, "Done means").

For every stage of module_utils/sample/stages.py: the project's schema (the quant_database role's
rendered steps) on a fresh database, sqlite_migrate's logic with the parameters the role passes
(read from roles/sqlite_migration/tasks/migrate.yml and its defaults), then the validation with the
parameters roles/migration_validation passes. Then, per table, copied + rejected + duplicates =
source rows; ticker_fundamentals keeps every row the platform keeps distinct; exchange_rate_history
keeps every row; the SQLite-only tables are in the legacy schema.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import migration_validate
import pytest
import sqlite_migrate
import yaml
from ansible.module_utils.core.postgres import postgres_common_argument_spec
from ansible.module_utils.migrate.runner import MigrationError, run_migration
from ansible.module_utils.sample.generator import STAGES, generate
from ansible.module_utils.schema.steps import run as apply_schema
from ansible.module_utils.validate.runner import ValidationError
from ansible.module_utils.validate.runner import run as validate
from integration.test_quant_schema import query
from schema_render import render_steps

pytestmark = pytest.mark.integration

ROLES = Path(__file__).resolve().parents[2] / "roles"
CONNECTION = {"src", "db", "login_user", "login_unix_socket", "login_port", "login_host", "login_password"}


def _defaults(role):
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


def _resolve(value, known, depth=0):
    """A default that only names another role variable ("{{ x | default(..) }}") takes that variable's
    value; any other template is left to the test (None)."""
    if not isinstance(value, str) or "{{" not in value:
        return value
    m = re.fullmatch(r"\{\{\s*(\w+)\s*(\|.*)?\}\}", value.strip())
    if not m or m.group(1) not in known or depth > 3:
        return None
    return _resolve(known[m.group(1)], known, depth + 1)


def _role_params(role, task_file, module, spec_module):
    """The module's parameters as the role passes them by default: the argument spec's defaults,
    overlaid with each option the task sets from a role variable."""
    known = {**_defaults("sqlite_migration"), **_defaults(role)}
    common = postgres_common_argument_spec()
    params = {k: v.get("default") for k, v in spec_module.argument_spec().items() if k not in common}
    tasks = yaml.safe_load((ROLES / role / "tasks" / task_file).read_text())
    args = next(t[module] for t in tasks if module in t)
    for option, expr in args.items():
        m = re.match(r"\{\{\s*(\w+)", str(expr))
        if option in CONNECTION or not m:
            continue
        value = _resolve(known.get(m.group(1)), known)
        if value is None or (value in ([], "", {}) and "omit" in str(expr)):
            continue
        params[option] = value
    return params


def migrate_params():
    return _role_params("sqlite_migration", "migrate.yml", "sqlite_migrate", sqlite_migrate)


def validate_params():
    params = _role_params("migration_validation", "validate.yml", "migration_validate", migration_validate)
    params["mapping"] = _defaults("sqlite_migration")["sqlite_migration_mapping"]
    return params


class Outcome:
    def __init__(self, stage, src, counts):
        self.stage, self.src, self.counts = stage, src, counts
        self.migration = self.migration_error = self.validation = self.validation_error = None
        self.db = None


@pytest.fixture(scope="module")
def outcomes(pg_server, tmp_path_factory):
    """{stage: Outcome}, each stage migrated and validated once on its own database."""
    if not pg_server.has_timescaledb:
        pytest.fail("TimescaleDB is not installed (make provision-local)")
    cache, dbs = {}, []

    def get(stage):
        if stage not in cache:
            cache[stage] = _migrate_stage(pg_server, tmp_path_factory.mktemp(stage), stage)
            dbs.append(cache[stage].db)
        return cache[stage]

    yield get
    conn = pg_server.connect()
    for db in dbs:
        conn.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
    conn.close()


def _migrate_stage(pg_server, tmp, stage):
    src = str(tmp / "spock_local.db")
    out = Outcome(stage, src, generate(src, scale=0.01, schema_stage=stage))
    out.db = "stage_%s" % stage
    conn = pg_server.connect()
    conn.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % out.db)
    conn.cursor().execute('CREATE DATABASE "%s"' % out.db)
    conn.close()
    conn = pg_server.connect(out.db)
    conn.cursor().execute("CREATE EXTENSION timescaledb")
    conn.close()
    apply_schema(pg_server.params(out.db), render_steps("apache"))
    params = pg_server.params(out.db, **{**migrate_params(), "src": src, "rejects_path": str(tmp / "rejects.jsonl")})
    try:
        out.migration = run_migration(params)
    except MigrationError as exc:
        out.migration_error = str(exc)
        return out
    _refresh_views(pg_server, out.db)
    vparams = pg_server.params(out.db, **{**validate_params(), "src": src, "report_path": str(tmp / "report.json")})
    try:
        out.validation = validate(vparams)
    except ValidationError as exc:
        out.validation_error = str(exc)
    return out


def _refresh_views(pg_server, db):
    """What the role does next (quant_database refresh_aggregates, the Apache edition's views)."""
    conn = pg_server.connect(db)
    cur = conn.cursor()
    cur.execute("SELECT matviewname FROM pg_matviews WHERE schemaname = 'public'")
    for (view,) in cur.fetchall():
        cur.execute('REFRESH MATERIALIZED VIEW public."%s"' % view)
    conn.close()


def migrated(outcome):
    assert outcome.migration_error is None, "%s: the migration failed: %s" % (outcome.stage, outcome.migration_error)
    return outcome.migration


@pytest.mark.parametrize("stage", STAGES)
def test_every_row_is_accounted_for(outcomes, stage):
    out = outcomes(stage)
    tables = migrated(out)["tables"]
    lite = sqlite3.connect(out.src)
    present = {r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for name, res in tables.items():
        source = lite.execute('SELECT count(*) FROM "%s"' % name).fetchone()[0] if name in present else 0
        assert res["source_rows"] == source, (name, res)
        assert res["copied_rows"] + res["rejected_rows"] + res["duplicate_rows"] == source, (name, res)


@pytest.mark.parametrize("stage", STAGES)
def test_only_the_orphans_are_rejected(outcomes, stage):
    """The files' only bad rows are details of tickers that are not in tickers; a default run tolerates them."""
    out = outcomes(stage)
    tables = migrated(out)["tables"]
    lite = sqlite3.connect(out.src)
    orphans = {t: lite.execute("SELECT count(*) FROM %s WHERE ticker NOT IN (SELECT ticker FROM tickers)" % t
                               ).fetchone()[0] for t in ("stock_details", "etf_details")}
    assert {t: r["rejected_rows"] for t, r in tables.items() if r["rejected_rows"]} == \
        {t: n for t, n in orphans.items() if n}


@pytest.mark.parametrize("stage", STAGES)
def test_validation_has_no_critical_failure(outcomes, stage):
    out = outcomes(stage)
    migrated(out)
    assert out.validation_error is None, out.validation_error
    critical = [c for c in out.validation["checks"] if c["status"] == "fail" and c["severity"] == "critical"]
    assert out.validation["summary"]["critical_failures"] == 0, [(c["name"], c["detail"]) for c in critical]


def _source_fundamentals(src):
    lite = sqlite3.connect(src)
    cols = {r[1] for r in lite.execute("PRAGMA table_info(ticker_fundamentals)")}
    fiscal = "fiscal_year" if "fiscal_year" in cols else "NULL"
    return lite.execute("SELECT ticker, period_type, %s, date FROM ticker_fundamentals" % fiscal).fetchall()


@pytest.mark.parametrize("stage", STAGES)
def test_fundamentals_keep_every_distinct_row(pg_server, outcomes, stage):
    """A source row is the platform's fact (ticker, period_type, fiscal_year, date); rows equal on all four
    are one fact (the repeated DAILY snapshots of the fiscal_year key). Each fact is in PostgreSQL, under its
    date or, where the period end was derived, under the collection date kept beside it."""
    out = outcomes(stage)
    migrated(out)
    pg_cols = {r[0] for r in query(pg_server, out.db, "SELECT column_name FROM information_schema.columns "
                                                      "WHERE table_name = 'ticker_fundamentals'")}
    dates = ["date"] + [c for c in ("collected_date",) if c in pg_cols]
    have = set()
    for column in dates:
        have |= set(query(pg_server, out.db, "SELECT ticker, period_type, fiscal_year, %s::text FROM "
                                             "ticker_fundamentals" % column))
    facts = set(_source_fundamentals(out.src))
    missing = sorted(facts - have, key=str)
    assert not missing, "%d of %d distinct source rows missing, e.g. %s" % (len(missing), len(facts), missing[:5])


@pytest.mark.parametrize("stage", STAGES)
def test_exchange_rates_keep_every_row(pg_server, outcomes, stage):
    out = outcomes(stage)
    res = migrated(out)["tables"]["exchange_rate_history"]
    assert res["duplicate_rows"] == res["rejected_rows"] == 0, res
    assert query(pg_server, out.db, "SELECT count(*) FROM exchange_rate_history")[0][0] == out.counts[
        "exchange_rate_history"]


@pytest.mark.parametrize("stage", STAGES)
def test_sqlite_only_tables_are_in_the_legacy_schema(pg_server, outcomes, stage):
    out = outcomes(stage)
    migrated(out)
    schema = migrate_params().get("legacy_schema")
    assert schema, "roles/sqlite_migration/defaults: sqlite_migration_legacy_schema should default to a schema"
    mapping = _defaults("sqlite_migration")["sqlite_migration_mapping"]
    legacy = {t: n for t, n in out.counts.items() if t not in mapping}
    assert (stage == "current") == (not legacy)
    got = {}
    for table in legacy:
        rows = query(pg_server, out.db, "SELECT to_regclass(%s)", ('"%s"."%s"' % (schema, table),))[0][0]
        got[table] = query(pg_server, out.db, 'SELECT count(*) FROM "%s"."%s"' % (schema, table))[0][0] \
            if rows else None
    assert got == legacy
    # reconciled by the validation like the mapped tables
    status = {c["name"]: c["status"] for c in out.validation["checks"]}
    for table in legacy:
        assert status.get("row accounting %s" % table) == status.get("content %s" % table) == "pass", table
