"""PostgreSQL health checks (the useful part of the old performance_tuning.sql, as checks).

Cache hit ratios, unused indexes, dead tuples, connections against
max_connections and settings waiting for a restart. Informational or warning
only: none of them says the migrated data is wrong.
"""

from __future__ import annotations

CATEGORY = "health"
MIN_BLOCKS = 1000  # below this the ratio says nothing (freshly started or barely used)


def check_cache_hit(results, cur, threshold=0.90):
    cur.execute("SELECT coalesce(sum(heap_blks_hit), 0), coalesce(sum(heap_blks_read), 0), "
                "coalesce(sum(idx_blks_hit), 0), coalesce(sum(idx_blks_read), 0) FROM pg_statio_user_tables")
    heap_hit, heap_read, idx_hit, idx_read = (int(v) for v in cur.fetchone())
    for label, hit, read in (("table", heap_hit, heap_read), ("index", idx_hit, idx_read)):
        name = "%s cache hit ratio" % label
        total = hit + read
        if total < MIN_BLOCKS:
            results.add(name, CATEGORY, "info", True,
                        "only %d %s block accesses so far: too few to judge" % (total, label))
            continue
        ratio = hit / total
        ok = ratio >= threshold
        detail = "%.2f%% of %d block accesses hit shared_buffers (target >= %.0f%%)" % (
            100 * ratio, total, 100 * threshold)
        if not ok:
            detail += "; consider raising shared_buffers / effective_cache_size"
        results.add(name, CATEGORY, "warning", ok, detail, data={"ratio": round(ratio, 4)})


def check_unused_indexes(results, cur):
    cur.execute("SELECT s.relname, s.indexrelname, pg_relation_size(s.indexrelid) "
                "FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid "
                "WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary "
                "AND s.schemaname NOT LIKE '\\_timescaledb%%' ORDER BY 3 DESC")
    rows = cur.fetchall()
    detail = ("%d index(es) never scanned since statistics were reset (normal right after a migration): %s"
              % (len(rows), ", ".join("%s.%s" % (r[0], r[1]) for r in rows[:10]))) if rows else \
        "every non-unique index has been used"
    results.add("unused indexes", CATEGORY, "info", not rows, detail, data={"unused": [r[1] for r in rows]})


def check_dead_tuples(results, cur, min_dead=1000, ratio=0.10):
    cur.execute("SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables "
                "WHERE n_dead_tup > %s AND n_dead_tup > %s * greatest(n_live_tup, 1) ORDER BY n_dead_tup DESC",
                (min_dead, ratio))
    rows = cur.fetchall()
    listed = ", ".join("%s (%d dead / %d live)" % r for r in rows[:10])
    detail = ("tables needing VACUUM ANALYZE: %s" % listed) if rows \
        else "no table has more than %d dead tuples and %.0f%% dead" % (min_dead, 100 * ratio)
    results.add("dead tuples", CATEGORY, "warning", not rows, detail)


def check_connections(results, cur, threshold=0.80):
    cur.execute("SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity")
    used, limit = cur.fetchone()
    ok = used < threshold * limit
    results.add("connections", CATEGORY, "warning", ok,
                "%d of max_connections %d in use (%.0f%%)" % (used, limit, 100.0 * used / limit),
                data={"connections": used, "max_connections": limit})


def check_pending_restart(results, cur):
    cur.execute("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
    names = [r[0] for r in cur.fetchall()]
    results.add("settings pending restart", CATEGORY, "warning", not names,
                ("changed settings wait for a restart: %s" % ", ".join(names)) if names
                else "no setting is waiting for a restart")


def run_all(results, cur):
    for fn in (check_cache_hit, check_unused_indexes, check_dead_tuples, check_connections, check_pending_restart):
        try:
            fn(results, cur)
        except Exception as exc:  # one broken probe must not hide the others
            cur.connection.rollback()
            results.error(fn.__name__.replace("check_", "").replace("_", " "), CATEGORY, "warning", exc)
