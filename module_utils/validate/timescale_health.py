"""TimescaleDB checks: edition, hypertables, aggregate completeness, compression, policies, jobs,
compression state per hypertable and continuous aggregate freshness.

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
# time column types whose chunks and watermarks are timestamps (integer time columns are not measured)
TIME_TYPES = ("date", "timestamp with time zone", "timestamp without time zone")


def apache_reason(license_):
    """Why a Community-only check is skipped on this edition (APACHE_REASON filled in)."""
    return APACHE_REASON % ("Apache-2" if license_ == "apache" else str(license_), license_)


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
        reason = apache_reason(license_)
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


def skip_community_state(results, license_, aggregates, compression_targets):
    """On the Apache edition: compression state and aggregate freshness are skipped with the reason."""
    reason = apache_reason(license_)
    for target in compression_targets:
        results.skip("compression state %s" % target, CATEGORY, "warning", reason, target)
    for agg in aggregates:
        results.skip("aggregate freshness %s" % agg["name"], CATEGORY, "warning", reason, agg["name"])


# --- compression state: chunks compressed, bytes before/after, chunks the policy left behind -------------

def compression_ratio(before_bytes, after_bytes):
    """before/after of the compressed chunks, 2 decimals; None when nothing is compressed."""
    if not before_bytes or not after_bytes:
        return None
    return round(before_bytes / after_bytes, 2)


def compression_state_verdict(enabled, has_policy, overdue):
    """(severity, ok) of a compression state check.

    Only one finding is a problem of this check: compression enabled, a compression policy, and
    `overdue` (> 0) chunks whose whole range is older than the policy's compress_after still
    uncompressed: the policy has not run yet or failed. Compression off or no policy is reported by
    the `compression TARGET` / `compression policy TARGET` checks; here it is information.
    """
    if enabled and has_policy and overdue:
        return "warning", False
    return "info", True


def _size(n):
    if n is None:
        return "?"
    return "%.1f MiB" % (n / 1048576.0) if n >= 1048576 else "%d KiB" % round(n / 1024.0)


def compression_state_detail(fig):
    """One line from the figures of check_compression_state (see its data)."""
    text = "%d of %d chunk(s) compressed" % (fig["chunks_compressed"], fig["chunks_total"])
    if fig["ratio"] is not None:
        text += ", %s before, %s after (ratio %.2f)" % (_size(fig["before_bytes"]), _size(fig["after_bytes"]),
                                                       fig["ratio"])
    if not fig["enabled"]:
        return text + "; compression is not enabled"
    if not fig["has_policy"]:
        return text + "; no compression policy"
    if fig["chunks_overdue"] is None:
        return text + "; chunks past the policy's age not counted (no compress_after or no time dimension)"
    if fig["chunks_overdue"]:
        return ("%d chunk(s) older than compress_after %s are not compressed: the compression policy has not "
                "run yet or failed (see background jobs healthy); %s" % (fig["chunks_overdue"],
                                                                         fig["compress_after"], text))
    return text + "; no chunk older than compress_after %s is left uncompressed" % fig["compress_after"]


def compression_store(cur, target, schema="public"):
    """(schema, name, compression enabled, time column type) of the hypertable holding target's rows:
    target itself, or a continuous aggregate's materialization hypertable; None when it is neither."""
    cur.execute("SELECT s.sch, s.name, s.enabled, d.column_type::text FROM ("
                " SELECT hypertable_schema, hypertable_name, compression_enabled "
                " FROM timescaledb_information.hypertables WHERE hypertable_schema = %s AND hypertable_name = %s"
                " UNION ALL SELECT materialization_hypertable_schema, materialization_hypertable_name, "
                " compression_enabled FROM timescaledb_information.continuous_aggregates "
                " WHERE view_schema = %s AND view_name = %s) s(sch, name, enabled) "
                "LEFT JOIN timescaledb_information.dimensions d ON d.hypertable_schema = s.sch "
                " AND d.hypertable_name = s.name AND d.dimension_number = 1", (schema, target, schema, target))
    return cur.fetchone()


def _compression_policy(cur, store_schema, store_name):
    """(has a compression policy, its compress_after text or None)."""
    cur.execute("SELECT config->>'compress_after' FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_compression' AND hypertable_schema = %s AND hypertable_name = %s "
                "ORDER BY job_id LIMIT 1", (store_schema, store_name))
    row = cur.fetchone()
    return (True, row[0]) if row else (False, None)


def _overdue_chunks(cur, store_schema, store_name, compress_after):
    """Uncompressed chunks the compression policy would pick: show_chunks(older_than => compress_after),
    the call policy_compression makes in TimescaleDB 2.19 (whole chunk range older than now - compress_after)."""
    cur.execute("SELECT count(*) FROM timescaledb_information.chunks c "
                "WHERE c.hypertable_schema = %s AND c.hypertable_name = %s AND NOT c.is_compressed "
                "AND format('%%I.%%I', c.chunk_schema, c.chunk_name)::regclass IN ("
                " SELECT show_chunks(format('%%I.%%I', %s, %s)::regclass, older_than => %s::interval))",
                (store_schema, store_name, store_schema, store_name, compress_after))
    return cur.fetchone()[0]


def compression_figures(cur, store):
    """Chunks total/compressed/overdue and bytes before/after compression of one hypertable (a store row)."""
    store_schema, store_name, enabled, column_type = store
    has_policy, compress_after = _compression_policy(cur, store_schema, store_name)
    cur.execute("SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
                "WHERE hypertable_schema = %s AND hypertable_name = %s", (store_schema, store_name))
    total, compressed = cur.fetchone()
    before = after = overdue = None
    if enabled:
        # the sums cover the compressed chunks only: TimescaleDB knows no "after" of the others
        cur.execute("SELECT before_compression_total_bytes, after_compression_total_bytes "
                    "FROM hypertable_compression_stats(format('%%I.%%I', %s, %s)::regclass)",
                    (store_schema, store_name))
        before, after = cur.fetchone() or (None, None)
        if compress_after and column_type in TIME_TYPES:
            overdue = _overdue_chunks(cur, store_schema, store_name, compress_after)
    return {"hypertable": "%s.%s" % (store_schema, store_name), "enabled": bool(enabled),
            "has_policy": has_policy, "compress_after": compress_after, "chunks_total": total,
            "chunks_compressed": compressed, "chunks_overdue": overdue, "before_bytes": before,
            "after_bytes": after, "ratio": compression_ratio(before, after)}


def check_compression_state(results, cur, target, schema="public"):
    """`compression state TARGET` (Community): how much of a hypertable, or of a continuous aggregate's
    materialization hypertable, is compressed; a warning when the policy left old chunks uncompressed."""
    name = "compression state %s" % target
    store = compression_store(cur, target, schema)
    if store is None:
        results.skip(name, CATEGORY, "warning", "%s.%s is neither a hypertable nor a continuous aggregate "
                     "(see the hypertable and aggregate checks)" % (schema, target), target)
        return
    fig = compression_figures(cur, store)
    severity, ok = compression_state_verdict(fig["enabled"], fig["has_policy"], fig["chunks_overdue"])
    results.add(name, CATEGORY, severity, ok, compression_state_detail(fig), target, fig)


# --- aggregate freshness: the watermark against the newest raw bucket ----------------------------------
#
# The rule. The watermark (_timescaledb_functions.cagg_watermark) is the end of the last materialized
# bucket. A refresh policy run at time t refreshes the window [t - start_offset, t - end_offset] and
# materializes only the buckets inside it, i.e. up to t - end_offset rounded down to a bucket boundary:
# right after a run the watermark is later than t - end_offset - one bucket width (when the source
# has rows there), and the next run comes schedule_interval later. The reference is the start of the
# newest raw bucket (the bucket of max(time) over the source rows the aggregate's WHERE keeps), capped
# at now(), since rows dated in the future are in no policy's window. Hence, with a working policy:
#     lag = reference - watermark <= end_offset + one bucket width + schedule_interval
# and a larger lag is a warning (the policy has not run, fails, or its window misses the data).
# schedule_interval only matters when end_offset + schedule_interval crosses one more bucket boundary
# than end_offset alone: the lag between bucket boundaries is a whole number of buckets, so for the
# platform's policies (1 or 7 days, buckets of 1 month or more) the verdict equals the one of
# end_offset + one bucket width. Without a refresh policy end_offset and schedule_interval count as
# 0 (one bucket allowed). A lag <= 0 means the newest raw bucket's start is materialized; the newest
# bucket itself is materialized when the watermark reaches its end (data: newest_materialized).

_WATERMARK_FUNCTIONS = {  # time column type -> (converter of the internal watermark, arithmetic type)
    "date": ("to_date", "timestamp"),
    "timestamp without time zone": ("to_timestamp_without_timezone", "timestamp"),
    "timestamp with time zone": ("to_timestamp", "timestamptz"),
}


def freshness_verdict(has_rows, lag_seconds, allowed_seconds):
    """(severity, ok) of an aggregate freshness check. lag_seconds: newest raw bucket start (capped at
    now) minus the watermark, None when nothing is materialized; allowed_seconds: end_offset + bucket
    width + schedule_interval of the refresh policy, as seconds from the reference."""
    if not has_rows:
        return "info", True
    if lag_seconds is None or lag_seconds > allowed_seconds:
        return "warning", False
    return "info", True


def _days(seconds):
    return "%g day(s)" % round(seconds / 86400.0, 2)


def freshness_detail(fig):
    """One line from the figures of check_aggregate_freshness (see its data)."""
    if fig["newest"] is None:
        return "the source has no rows yet: nothing to materialize"
    where = "newest raw bucket %s (latest row %s)" % (fig["newest_bucket"], fig["newest"])
    if fig["watermark"] is None:
        return "nothing is materialized yet (no watermark) although the source has rows; %s" % where
    rule = "allowed %s = end_offset %s + bucket %s + schedule_interval %s%s" % (
        _days(fig["allowed_seconds"]), fig["end_offset"], fig["width"], fig["schedule_interval"],
        "" if fig["has_policy"] else " (no refresh policy)")
    if fig["lag_seconds"] > fig["allowed_seconds"]:
        return ("watermark %s is %s behind the %s, more than a working refresh policy leaves (%s): refresh the "
                "aggregate or check its policy" % (fig["watermark"], _days(fig["lag_seconds"]), where, rule))
    state = "newest bucket materialized" if fig["newest_materialized"] else "newest bucket not yet materialized"
    return "watermark %s, %s: %s, lag %s (%s)" % (fig["watermark"], where, state,
                                                 _days(max(fig["lag_seconds"], 0)), rule)


def aggregate_store(cur, agg, schema="public"):
    """(materialization hypertable id, source time column type) of a continuous aggregate, or None."""
    cur.execute("SELECT c.mat_hypertable_id, (SELECT data_type FROM information_schema.columns "
                " WHERE table_schema = %s AND table_name = %s AND column_name = %s) "
                "FROM _timescaledb_catalog.continuous_agg c WHERE c.user_view_schema = %s AND c.user_view_name = %s",
                (schema, agg.get("source", "ohlcv_data"), agg.get("time_column", "date"), schema, agg["name"]))
    return cur.fetchone()


def _refresh_policy(cur, mat_id):
    """(end_offset, schedule_interval) of the refresh policy as interval texts, or None without one."""
    cur.execute("SELECT coalesce(config->>'end_offset', '0'), schedule_interval::text "
                "FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate' "
                "AND (config->>'mat_hypertable_id')::int = %s ORDER BY job_id LIMIT 1", (mat_id,))
    return cur.fetchone()


def _freshness_query(agg, column_type, schema):
    """SQL and the order of its parameters: watermark (NULL when nothing is materialized: TimescaleDB then
    returns the type's minimum, year 4714 BC), newest raw row, its bucket, lag and allowance in seconds."""
    conv, calc = _WATERMARK_FUNCTIONS[column_type]
    where = agg.get("where") or {}
    cond = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in where) if where else \
        sql.SQL("true")
    query = sql.SQL(
        "WITH w AS (SELECT {conv}(_timescaledb_functions.cagg_watermark(%s)) AS wm), "
        "r AS (SELECT max({t}) AS newest FROM {src} WHERE {cond}), "
        "x AS (SELECT CASE WHEN w.wm >= '0001-01-01' THEN w.wm END AS wm, r.newest, "
        " time_bucket(%s::interval, r.newest) AS nb FROM w, r), "
        "y AS (SELECT x.*, x.wm::{calc} AS wmc, x.nb::{calc} AS bucket, least(x.nb::{calc}, now()::{calc}) AS ref "
        " FROM x) "
        "SELECT wm::text, newest::text, nb::text, extract(epoch FROM ref - wmc)::float8, "
        " extract(epoch FROM ref - (ref - %s::interval - %s::interval - %s::interval))::float8, "
        " wmc >= bucket + %s::interval FROM y").format(
        conv=sql.Identifier("_timescaledb_functions", conv), calc=sql.SQL(calc),
        t=sql.Identifier(agg.get("time_column", "date")),
        src=sql.Identifier(schema, agg.get("source", "ohlcv_data")), cond=cond)
    return query, list(where.values())


def freshness_figures(cur, agg, store, schema="public"):
    """Watermark, newest raw row and bucket, lag and allowance of one continuous aggregate."""
    mat_id, column_type = store
    policy = _refresh_policy(cur, mat_id)
    end_offset, schedule = policy or ("0", "0")
    query, where_values = _freshness_query(agg, column_type, schema)
    cur.execute(query, [mat_id, *where_values, agg["width"], end_offset, agg["width"], schedule, agg["width"]])
    watermark, newest, bucket, lag, allowed, newest_materialized = cur.fetchone()
    return {"watermark": watermark, "newest": newest, "newest_bucket": bucket, "lag_seconds": lag,
            "allowed_seconds": allowed, "newest_materialized": bool(newest_materialized),
            "has_policy": policy is not None, "end_offset": end_offset, "schedule_interval": schedule,
            "width": agg["width"]}


def check_aggregate_freshness(results, cur, agg, schema="public"):
    """`aggregate freshness NAME` (Community): lag = start of the newest raw bucket of the source (capped
    at now) minus the continuous aggregate's watermark. A warning when the lag exceeds the refresh
    policy's end_offset + one bucket width + schedule_interval (what a working policy can leave
    unmaterialized; the comment above derives it) or nothing is materialized while the source has rows."""
    name = "aggregate freshness %s" % agg["name"]
    store = aggregate_store(cur, agg, schema)
    if store is None:
        results.skip(name, CATEGORY, "warning", "%s.%s is not a continuous aggregate (see aggregate %s complete)"
                     % (schema, agg["name"], agg["name"]), agg["name"])
        return
    if store[1] not in _WATERMARK_FUNCTIONS:
        results.skip(name, CATEGORY, "info", "time column %s is %s: freshness is measured for date and timestamp "
                     "buckets only" % (agg.get("time_column", "date"), store[1]), agg["name"])
        return
    fig = freshness_figures(cur, agg, store, schema)
    severity, ok = freshness_verdict(fig["newest"] is not None, fig["lag_seconds"], fig["allowed_seconds"])
    results.add(name, CATEGORY, severity, ok, freshness_detail(fig), agg["name"], fig)
