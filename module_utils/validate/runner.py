"""migration_validate: run the selected check categories and build the result.

Order of work (2 CPUs): plans and accounting are read first, then a forked
child fingerprints the SQLite side of every table while this process
fingerprints PostgreSQL and runs the SQL checks.
"""

from __future__ import annotations

import json
import time

from ansible.module_utils.convert.types import Options
from ansible.module_utils.core.atomic_file import atomic_text_file
from ansible.module_utils.core.postgres import connect, rollback_quietly
from ansible.module_utils.core.quant_meta import all_checkpoints, recorded_rowids, recorded_source_paths
from ansible.module_utils.core.sqlite_source import SourceError, open_source
from ansible.module_utils.mapping.legacy import LegacyError, extend_validation
from ansible.module_utils.mapping.names import check_no_fold_collision
from ansible.module_utils.mapping.plan import MappingError, SourceTableMissing, build_plan, table_order
from ansible.module_utils.mapping.target import TargetError, find_table, load_table
from ansible.module_utils.validate import data as validate_data
from ansible.module_utils.validate import pg_health, timescale_health
from ansible.module_utils.validate.checks import CATEGORIES, Results, failure_message
from ansible.module_utils.validate.content_compare import SourceFingerprints, TableJob

try:
    import psycopg2
except ImportError:  # pragma: no cover - the module reports missing psycopg2 first
    psycopg2 = None


class ValidationError(Exception):
    """Bad input: the whole validation cannot run (message names the input)."""


def lost_connection(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ("lost the connection to PostgreSQL during the checks (%s); nothing was changed: rerun the "
            "validation when the server is back" % text)


def _after_error(conn, exc):
    """Roll back after a failed check. When the connection is gone no further check can run: stop with
    one clear line (rolling back a closed connection would raise and hide the reason)."""
    rollback_quietly(conn)
    if conn.closed:
        raise ValidationError(lost_connection(exc)) from None


def parse_mapping(mapping):
    """The mapping parameter: a dict {source table: spec} (sqlite_migration_mapping) or a
    list of specs each naming its `source` table. Returns an ordered dict."""
    if isinstance(mapping, dict):
        return {str(k): (v or {}) for k, v in mapping.items()}
    if isinstance(mapping, list):
        out = {}
        for item in mapping:
            if not isinstance(item, dict) or not (item.get("source") or item.get("table")):
                raise ValidationError("mapping: every list item needs `source` (the SQLite table), got %r" % (item,))
            spec = dict(item)
            name = spec.pop("source", None) or spec.pop("table")
            out[name] = spec
        return out
    raise ValidationError("mapping must be a dict {source table: spec} or a list, got %s" % type(mapping).__name__)


class Context:
    def __init__(self, params):
        self.params = params
        self.categories = list(params.get("checks") or CATEGORIES)
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise ValidationError("checks: unknown categories %s (known: %s)"
                                  % (", ".join(unknown), ", ".join(CATEGORIES)))
        try:
            self.results = Results(params.get("severity_overrides"),
                                   {"quality": params.get("quality_severity") or "warning"})
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        self.mapping = parse_mapping(params.get("mapping") or {})
        try:
            self.tables = table_order(self.mapping, params.get("tables") or None)
        except MappingError as exc:
            raise ValidationError("tables: %s" % exc) from None

    def wants(self, *cats):
        return any(c in self.categories for c in cats)


def conversion_options(params):
    """The conversion policy the migration ran with, as far as it changes what PostgreSQL holds: with
    float4_rounding=accept a real column holds the rounded value, which must compare equal."""
    return Options(float4_rounding=params.get("float4_rounding") or "reject")


def find_target(cur, table, spec):
    """(schema, target name, target, folded) for one source table, found the way sqlite_migrate finds
    it: the name the mapping gives, else the source name, else its unquoted lower-case form
    (mapping/names.py), so a mixed-case file loaded into a lower-case schema validates."""
    schema = spec.get("schema") or "public"
    name, folded = find_table(cur, schema, spec.get("target") or table, explicit=bool(spec.get("target")))
    return schema, name, load_table(cur, schema, name), folded


def plan_table(table, spec, source, target, options, lookups):  # noqa: PLR0917
    """The table's migration plan as sqlite_migrate builds it for `target`: columns resolved like the
    table, rows named by the rowid under the name that reaches it (a column may be called rowid), and a
    source without a reachable rowid (WITHOUT ROWID, or rowid, _rowid_ and oid all declared) numbered by
    position in primary-key order, as it was loaded (SourceError when it has no primary key either)."""
    plan = build_plan(table, dict(spec, target=target.name), source, target, options, lookups)
    plan.float4_rounding = options.float4_rounding  # what a real column compares as (TableJob)
    plan.rowless_key = source.rowless_key(table)
    plan.rowid_alias = source.rowid_alias(table)
    return plan


def _plans(ctx, cur, source):
    """Compile the migration plan of every table; mapping problems become critical checks."""
    plans, targets = {}, {}
    lookups, resolved = {}, []
    options = conversion_options(ctx.params)
    for table in ctx.tables:
        spec = ctx.mapping[table]
        try:
            schema, name, target, folded = find_target(cur, table, spec)
            targets[name] = (schema, target)
            if source is not None:
                plans[table] = plan_table(table, spec, source, target, options, lookups)
                plans[table].target_folded = folded
                resolved.append((table, target.display, folded))
                check_no_fold_collision(resolved, "source tables")
        except SourceTableMissing as exc:
            # the migration skipped it too (status missing): nothing to reconcile, but say so
            ctx.results.skip("mapping %s" % table, "content", "warning", str(exc), table)
        except (MappingError, TargetError, SourceError) as exc:
            _after_error(cur.connection, exc)
            ctx.results.add("mapping %s" % table, "content", "critical", False, str(exc), table)
    return plans, targets


def _guard(ctx, name, category, severity, fn, *args, table=None):
    """Run one check function (args start with results, cur); an exception becomes a failed check."""
    try:
        fn(*args)
    except Exception as exc:
        _after_error(args[1].connection, exc)
        ctx.results.error(name, category, severity, exc, table)


class _Resources:
    """What run() opens and must close whatever happens: the connection, the SQLite source and the
    child process fingerprinting it. Helpers store source and worker here as soon as they open them,
    so an error raised right after still closes them."""

    def __init__(self, conn):
        self.conn = conn
        self.source = None
        self.worker = None

    def close(self):
        if self.worker is not None:
            self.worker.close()
        self.conn.close()
        if self.source is not None:
            self.source.close()


def run(params, check_mode=False):
    """Run the validation; returns the module result dict (without changed)."""
    started = time.monotonic()
    ctx = Context(params)
    conn = connect(params)
    conn.set_session(readonly=True)
    res = _Resources(conn)
    try:
        timings = _run_checks(ctx, params, res, started)
    except psycopg2.Error as exc:  # outside the guarded checks: only a lost connection is expected here
        if conn.closed:
            raise ValidationError(lost_connection(exc)) from None
        raise
    finally:
        res.close()
    out = _result(ctx, started, timings)
    report_path = params.get("report_path")
    if report_path and not check_mode:
        write_report(report_path, out)
        out["report_path"] = report_path
    return out


def _run_checks(ctx, params, res, started):
    """Prepare every table's plan and accounting, start fingerprinting the SQLite side, then run the
    check categories in order; returns the seconds each phase took."""
    timings = {}
    need_source = ctx.wants("reconciliation", "content")
    if need_source:
        params = _open_source(ctx, params, res)
    cur = res.conn.cursor()
    cur.execute("SET TimeZone TO 'UTC'")
    plans, targets = _plans(ctx, cur, res.source)
    checkpoints = all_checkpoints(cur) if need_source else None
    accounts = _accounts(cur, plans, targets, checkpoints, params.get("on_conflict"))
    res.conn.rollback()
    if ctx.wants("content") and accounts:
        res.worker = SourceFingerprints(params["src"], [a.job for a in accounts.values()],
                                        parallel=params.get("parallel", True))
    timings["setup"] = time.monotonic() - started
    _timed(timings, "reconciliation", _check_reconciliation, ctx, cur, res.source, accounts, params)
    _timed(timings, "content", _check_content, ctx, res.conn, res.worker, accounts, params)
    _timed(timings, "integrity_quality", _integrity_and_quality, ctx, cur, plans, targets)
    _timed(timings, "timescaledb", _timescale, ctx, cur)
    _timed(timings, "health", _health, ctx, cur)
    res.conn.rollback()
    return timings


def _timed(timings, name, fn, *args):
    mark = time.monotonic()
    fn(*args)
    timings[name] = time.monotonic() - mark


def _open_source(ctx, params, res):
    """Open the SQLite file (src, else the one the migration recorded) into res; returns params with src set."""
    if not ctx.tables:
        raise ValidationError("mapping: empty; reconciliation and content checks need the table mapping")
    params = dict(params, src=params.get("src") or recorded_source(res.conn))
    try:
        res.source = open_source(params["src"], quick_check=False)
    except SourceError as exc:
        raise ValidationError(str(exc)) from None
    try:  # SQLite tables outside the mapping: their legacy_schema copies, or listed as warnings
        extend_validation(ctx, res.source)
    except LegacyError as exc:
        raise ValidationError("legacy tables: %s" % exc) from None
    return params


class _Account:
    """One table as the migration accounted for it: plan, target, checkpoint, the rowids it recorded
    as rejected and as duplicates, and the fingerprint job that leaves those rows out."""

    def __init__(self, plan, target, *, checkpoint, rejects, duplicates, job):
        self.plan = plan
        self.target = target
        self.checkpoint = checkpoint
        self.rejects = rejects
        self.duplicates = duplicates
        self.job = job


def _accounts(cur, plans, targets, checkpoints, on_conflict):
    accounts = {}
    for table, plan in plans.items():
        cp = validate_data.checkpoint_for(checkpoints, table, plan.target_name)
        rejects, duplicates = recorded_rowids(cur, cp, table, plan.target_name)
        # recorded duplicates are left out and their kept rows checked against the rules; duplicates
        # counted but not recorded by rowid are found again by the rules ("duplicates accounted" fails)
        dedupe = bool(cp and (cp.get("duplicate_rows") or 0) > len(duplicates))
        latest = (plan.on_conflict or on_conflict or "skip") == "update"
        target = targets[plan.target_name][1]
        job = TableJob(plan, target, rejects + duplicates, dedupe, latest_wins=latest, duplicates=duplicates)
        accounts[table] = _Account(plan, target, checkpoint=cp, rejects=rejects, duplicates=duplicates, job=job)
    return accounts


def _check_reconciliation(ctx, cur, source, accounts, params):
    if not ctx.wants("reconciliation"):
        return
    for table, acc in accounts.items():
        recorded = sorted(set(acc.rejects) | set(acc.duplicates))
        _guard(ctx, "row accounting %s" % table, "reconciliation", "critical",
               _reconcile, ctx.results, cur, source, acc.plan, (acc.checkpoint, recorded), table=table)
        _guard(ctx, "duplicates accounted %s" % table, "reconciliation", "critical", _duplicates_accounted,
               ctx.results, cur, acc.job, (acc.checkpoint, acc.duplicates, params["src"], acc.target), table=table)
    cur.connection.rollback()


def _check_content(ctx, conn, worker, accounts, params):
    if worker is None:
        return
    for acc in accounts.values():
        table = acc.job.source_table
        try:
            validate_data.check_content(ctx.results, conn, acc.job, acc.plan, src_path=params["src"],
                                        source_result=worker.get(table),
                                        max_differences=params.get("max_differences") or 10)
        except Exception as exc:
            _after_error(conn, exc)
            ctx.results.error("content %s" % table, "content", "critical", exc, table)


def _result(ctx, started, timings):
    results = ctx.results
    out = {
        "checks": results.as_list(),
        "summary": results.summary(),
        "seconds": round(time.monotonic() - started, 3),
        "tables": list(ctx.tables),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "categories": ctx.categories,
    }
    failures = results.critical_failures()
    out["failed_checks"] = [c.name for c in failures]
    if failures:
        out["msg"] = failure_message(failures)
    else:
        s = out["summary"]
        out["msg"] = "migration validation passed: %d passed, %d warnings, %d skipped, 0 critical failures" % (
            s["passed"], s["warnings"], s["skipped"])
    return out


def _reconcile(results, cur, source, plan, accounting):
    checkpoint, rejects = accounting
    validate_data.check_reconciliation(results, cur, source, plan, checkpoint=checkpoint, rejects=rejects)


def _duplicates_accounted(results, cur, job, accounting):
    checkpoint, duplicates, src, target = accounting
    validate_data.check_duplicates_accounted(results, cur, job, target, src_path=src, checkpoint=checkpoint,
                                             duplicates=duplicates)


def _prices(results, cur, target, where):
    schema, table, severity = where
    validate_data.check_prices(results, cur, target, schema=schema, table=table, severity=severity)


def _community(results, cur, license_, aggregates, compression):
    timescale_health.check_community_features(results, cur, license_, aggregates=aggregates,
                                              compression_targets=compression)


def _community_state(ctx, cur, license_, aggregates, compression):
    """Compression state of every compression target and freshness of every continuous aggregate
    (Community; skipped with the reason on Apache), each check guarded on its own."""
    results = ctx.results
    if license_ != "timescale":
        timescale_health.skip_community_state(results, license_, aggregates, compression)
        return
    for target in compression:
        _guard(ctx, "compression state %s" % target, "timescaledb", "warning",
               timescale_health.check_compression_state, results, cur, target, table=target)
    for agg in aggregates:
        _guard(ctx, "aggregate freshness %s" % agg["name"], "timescaledb", "warning",
               timescale_health.check_aggregate_freshness, results, cur, agg, table=agg["name"])


def recorded_source(conn):
    """The SQLite path the migration recorded in its checkpoints (used when src is not given)."""
    paths = recorded_source_paths(conn.cursor())
    conn.rollback()
    if len(paths) != 1:
        found = "no source path" if not paths else "several: %s" % ", ".join(paths)
        raise ValidationError("src: not given and quant_meta.migration_checkpoints records %s; "
                              "set src to the SQLite file" % found)
    return paths[0]


def _integrity_and_quality(ctx, cur, plans, targets):
    results = ctx.results
    qsev = ctx.params.get("quality_severity") or "warning"
    for table in ctx.tables:
        spec = ctx.mapping[table]
        name = spec.get("target") or table
        if name not in targets:
            continue
        schema, target = targets[name]
        plan = plans.get(table)
        if ctx.wants("integrity") and plan is not None:
            _guard(ctx, "no NULL keys %s" % name, "integrity", "critical",
                   validate_data.check_key_nulls, results, cur, plan, target, table=name)
            _guard(ctx, "no duplicate keys %s" % name, "integrity", "critical",
                   validate_data.check_duplicate_keys, results, cur, plan, target, table=name)
            refs = validate_data.references_for(plan, ctx.mapping, target, targets)
            _guard(ctx, "no orphans %s" % name, "integrity", "critical",
                   validate_data.check_orphans, results, cur, plan, target, refs, table=name)
        if ctx.wants("quality"):
            _guard(ctx, "%s price rules" % name, "quality", qsev,
                   _prices, results, cur, target, (schema, name, qsev), table=name)
            if name == "tickers" and "region" in target.columns:
                _guard(ctx, "ticker format", "quality", qsev,
                       validate_data.check_ticker_formats, results, cur, schema, name, qsev, table=name)
    cur.connection.rollback()


def _timescale(ctx, cur):
    if not ctx.wants("timescaledb"):
        return
    results = ctx.results
    p = ctx.params
    version, license_ = timescale_health.edition(cur)
    timescale_health.check_edition(results, version, license_)
    hypertables = p.get("expected_hypertables")
    hypertables = timescale_health.DEFAULT_HYPERTABLES if hypertables is None else hypertables
    aggregates = p.get("expected_aggregates")
    aggregates = timescale_health.DEFAULT_AGGREGATES if aggregates is None else aggregates
    compression = p.get("expected_compression")
    compression = timescale_health.DEFAULT_COMPRESSION if compression is None else compression
    if version is None:
        for n in hypertables:
            results.add("hypertable %s" % n, "timescaledb", "critical", False, "timescaledb extension missing", n)
        return
    _guard(ctx, "hypertables", "timescaledb", "critical", timescale_health.check_hypertables,
           results, cur, hypertables, p.get("expected_chunk_interval") or "1 month")
    _guard(ctx, "aggregates", "timescaledb", "critical", timescale_health.check_aggregates, results, cur, aggregates)
    _guard(ctx, "community features", "timescaledb", "warning", _community,
           results, cur, license_, aggregates, compression)
    _community_state(ctx, cur, license_, aggregates, compression)


def _health(ctx, cur):
    if ctx.wants("health"):
        pg_health.run_all(ctx.results, cur)


def write_report(path, result):
    """Write the JSON report atomically (temp file in the same directory, then rename)."""
    with atomic_text_file(path, mode=0o644, prefix=".validation-") as fh:
        json.dump(result, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
