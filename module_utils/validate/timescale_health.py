"""TimescaleDB checks: edition, hypertables, aggregate completeness, compression, policies, jobs.

The Community edition has compression, continuous aggregates and policies; the
Apache-2 edition has none of them (the schema falls back to plain materialized
views with the same names and columns). Checks that only make sense on
Community are reported as ``skip`` with the reason on Apache.
"""

from __future__ import annotations

from psycopg2 import sql

# spec source_system.yaml: hypertables, continuous_aggregates, compression
DEFAULT_HYPERTABLES = ["ohlcv_data", "factor_scores"]
DEFAULT_AGGREGATES = [
    {"name": "ohlcv_monthly", "source": "ohlcv_data", "time_column": "date", "bucket_column": "month",
     "width": "1 month", "where": None},
    {"name": "ohlcv_quarterly", "source": "ohlcv_data", "time_column": "date", "bucket_column": "quarter",
     "width": "3 months", "where": {"timeframe": "D"}},
    {"name": "ohlcv_yearly", "source": "ohlcv_data", "time_column": "date", "bucket_column": "year",
     "width": "1 year", "where": None},
]
DEFAULT_COMPRESSION = ["ohlcv_data", "factor_scores", "ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly"]
APACHE_REASON = ("TimescaleDB %s edition (timescaledb.license=%s): compression, continuous aggregates and their "
                 "policies are Community features; the schema uses the documented fallback")
CATEGORY = "timescaledb"


def edition(cur):
    """(version, license) of the timescaledb extension in this database, or (None, None)."""
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    row = cur.fetchone()
    if not row:
        return None, None
    cur.execute("SHOW timescaledb.license")
    return row[0], cur.fetchone()[0]


def check_edition(results, version, license_):
    if version is None:
        results.add("timescaledb extension", CATEGORY, "critical", False,
                    "the timescaledb extension is not installed in this database")
        return
    label = "Community" if license_ == "timescale" else "Apache-2"
    results.add("timescaledb edition", CATEGORY, "info", True,
                "TimescaleDB %s, %s edition (timescaledb.license=%s)" % (version, label, license_),
                data={"version": version, "license": license_})


def check_hypertables(results, cur, names, chunk_interval, schema="public"):
    for name in names:
        check = "hypertable %s" % name
        cur.execute("SELECT h.num_chunks, d.column_name, d.time_interval::text, d.time_interval = %s::interval "
                    "FROM timescaledb_information.hypertables h "
                    "LEFT JOIN timescaledb_information.dimensions d ON d.hypertable_schema = h.hypertable_schema "
                    " AND d.hypertable_name = h.hypertable_name AND d.dimension_number = 1 "
                    "WHERE h.hypertable_schema = %s AND h.hypertable_name = %s",
                    (chunk_interval, schema, name))
        row = cur.fetchone()
        if row is None:
            results.add(check, CATEGORY, "critical", False, "%s.%s is not a hypertable (or does not exist)"
                        % (schema, name), name)
            continue
        chunks, column, interval, interval_ok = row
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(schema, name)))
        has_rows = cur.fetchone()[0]
        problems = []
        if not interval_ok:
            problems.append("chunk interval is %s, expected %s" % (interval, chunk_interval))
        if has_rows and not chunks:
            problems.append("table has rows but 0 chunks")
        detail = "time column %s, chunk interval %s, %d chunk(s)%s" % (
            column, interval, chunks, "" if has_rows else ", no rows yet")
        if problems:
            detail = "; ".join(problems) + " (" + detail + ")"
        results.add(check, CATEGORY, "critical" if has_rows and not chunks else "warning", not problems, detail, name,
                    {"chunks": chunks, "chunk_interval": str(interval)})


def _aggregate_kind(cur, schema, name):
    cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if cur.fetchone():
        cur.execute("SELECT materialized_only FROM timescaledb_information.continuous_aggregates "
                    "WHERE view_schema = %s AND view_name = %s", (schema, name))
        row = cur.fetchone()
        if row:
            return "continuous aggregate (materialized_only=%s)" % row[0]
    cur.execute("SELECT 1 FROM pg_matviews WHERE schemaname = %s AND matviewname = %s", (schema, name))
    if cur.fetchone():
        return "materialized view"
    cur.execute("SELECT 1 FROM pg_views WHERE schemaname = %s AND viewname = %s", (schema, name))
    if cur.fetchone():
        return "view"
    return None


def _row_hash(cols):
    """Order-independent SQL hash of a row: 64-bit prefix of md5 over '|'-joined text."""
    return sql.SQL("('x' || left(md5(concat_ws('|', {})), 16))::bit(64)::bigint::numeric").format(
        sql.SQL(", ").join(cols))


def check_aggregates(results, cur, aggregates, schema="public"):
    """Each aggregate exists and equals a direct GROUP BY over its hypertable (counts + fingerprint)."""
    for agg in aggregates:
        name = agg["name"]
        check = "aggregate %s complete" % name
        kind = _aggregate_kind(cur, schema, name)
        if kind is None:
            results.add(check, CATEGORY, "critical", False, "%s.%s does not exist" % (schema, name), name)
            continue
        src = sql.Identifier(schema, agg.get("source", "ohlcv_data"))
        width = agg["width"]
        tcol = sql.Identifier(agg.get("time_column", "date"))
        where = agg.get("where") or {}
        cond = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in where) if where else \
            sql.SQL("true")
        keycols = [sql.Identifier(c) for c in ("ticker", "region", "timeframe")]
        direct = sql.SQL(
            "SELECT count(*), coalesce(sum(h), 0) FROM (SELECT {h} AS h FROM ("
            "SELECT ticker, region, timeframe, time_bucket(%s::interval, {t})::date AS b, sum(volume) AS v, "
            "count(*) AS n FROM {src} WHERE {cond} GROUP BY 1, 2, 3, 4) g) x").format(
            h=_row_hash([*keycols, sql.SQL("b::text"), sql.SQL("v::numeric::text"), sql.SQL("n::bigint::text")]),
            t=tcol, src=src, cond=cond)
        view = sql.SQL("SELECT count(*), coalesce(sum({h}), 0) FROM {v}").format(
            h=_row_hash([*keycols, sql.SQL("{}::date::text").format(sql.Identifier(agg["bucket_column"])),
                         sql.SQL("volume::numeric::text"), sql.SQL("trading_days::bigint::text")]),
            v=sql.Identifier(schema, name))
        cur.execute(direct, [width, *where.values()])
        d_count, d_hash = cur.fetchone()
        cur.execute(view)
        v_count, v_hash = cur.fetchone()
        ok = d_count == v_count and d_hash == v_hash
        if ok:
            detail = "%s with %d rows equals a direct GROUP BY over the hypertable" % (kind, v_count)
        else:
            detail = ("%s is stale or incomplete: %d rows vs %d from a direct GROUP BY%s "
                      "(refresh it over the full range)"
                      % (kind, v_count, d_count,
                         "" if d_count != v_count else "; same row count but volume/trading_days differ"))
        results.add(check, CATEGORY, "critical", ok, detail, name,
                    {"view_rows": v_count, "expected_rows": d_count})


def check_community_features(results, cur, license_, *, aggregates, compression_targets, schema="public"):
    """Compression settings, compression + refresh policies and job health (Community only)."""
    names = ["compression %s" % t for t in compression_targets] + \
            ["compression policy %s" % t for t in compression_targets] + \
            ["refresh policy %s" % a["name"] for a in aggregates] + ["background jobs healthy"]
    if license_ != "timescale":
        reason = APACHE_REASON % ("Apache-2" if license_ == "apache" else str(license_), license_)
        for n in names:
            results.skip(n, CATEGORY, "warning", reason)
        return
    cur.execute("SELECT view_name, materialization_hypertable_name, compression_enabled "
                "FROM timescaledb_information.continuous_aggregates WHERE view_schema = %s", (schema,))
    caggs = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    cur.execute("SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables "
                "WHERE hypertable_schema = %s", (schema,))
    hyper = dict(cur.fetchall())
    cur.execute("SELECT job_id, proc_name, hypertable_name, config::text FROM timescaledb_information.jobs")
    jobs = cur.fetchall()
    for target in compression_targets:
        enabled = hyper.get(target) if target in hyper else (caggs.get(target) or (None, None))[1]
        results.add("compression %s" % target, CATEGORY, "warning", bool(enabled),
                    "compression enabled" if enabled else "compression is not enabled on %s" % target, target)
        internal = caggs.get(target, (target,))[0]
        found = [j for j in jobs if j[1] == "policy_compression" and j[2] in (target, internal)]
        results.add("compression policy %s" % target, CATEGORY, "warning", bool(found),
                    ("job %s: %s" % (found[0][0], found[0][3])) if found else "no compression policy on %s" % target,
                    target)
    for agg in aggregates:
        internal = caggs.get(agg["name"], (agg["name"],))[0]
        found = [j for j in jobs if j[1] == "policy_refresh_continuous_aggregate" and j[2] in (agg["name"], internal)]
        results.add("refresh policy %s" % agg["name"], CATEGORY, "warning", bool(found),
                    ("job %s: %s" % (found[0][0], found[0][3])) if found else "no refresh policy on %s" % agg["name"],
                    agg["name"])
    cur.execute("SELECT j.job_id, j.proc_name, j.hypertable_name, s.last_run_status, s.total_failures "
                "FROM timescaledb_information.jobs j JOIN timescaledb_information.job_stats s USING (job_id) "
                "WHERE s.last_run_status = 'Failed' OR NOT j.scheduled")
    bad = cur.fetchall()
    results.add("background jobs healthy", CATEGORY, "warning", not bad,
                ("failing or unscheduled jobs: %s" % ", ".join("%s %s on %s (%s, %s failures)" % r for r in bad))
                if bad else "%d job(s), none failing" % len(jobs))
