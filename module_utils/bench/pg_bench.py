"""pg_benchmark: run named queries N times and report latency percentiles against targets.

Unlike the old benchmark script, a query that raises is a FAILED result (with
the error) instead of disappearing from the report, PASS is judged on a
percentile (p95 by default) rather than the mean, and the plan
(EXPLAIN (ANALYZE, BUFFERS)) of every query over its target is kept.
"""

from __future__ import annotations

import math
import time

from ansible.module_utils.core.postgres import connect

METRICS = ("p50", "p95", "max", "mean")


class BenchmarkError(Exception):
    """Bad benchmark definition (names the query)."""


def percentile(samples, pct):
    """Linear-interpolated percentile (numpy's default method) of a non-empty sequence."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100.0
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return float(ordered[lo])
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def validate_queries(queries):
    """Check names, SQL and targets; returns normalised query dicts."""
    out, seen = [], set()
    for i, q in enumerate(queries or []):
        if not isinstance(q, dict):
            raise BenchmarkError("queries[%d] must be a dict with name, sql and target_ms" % i)
        name = q.get("name")
        if not name:
            raise BenchmarkError("queries[%d] has no name" % i)
        if name in seen:
            raise BenchmarkError("query name %r is used twice" % name)
        seen.add(name)
        if not (q.get("sql") or "").strip():
            raise BenchmarkError("query %r has no sql" % name)
        try:
            target = float(q.get("target_ms"))
        except (TypeError, ValueError):
            raise BenchmarkError("query %r: target_ms must be a number, got %r" % (name, q.get("target_ms"))) from None
        params = q.get("params")
        if params is not None and not isinstance(params, (dict, list)):
            raise BenchmarkError("query %r: params must be a dict or a list" % name)
        out.append({"name": name, "sql": q["sql"].strip().rstrip(";"), "target_ms": target, "params": params})
    if not out:
        raise BenchmarkError("queries is empty")
    return out


def _one(cur, query):
    t0 = time.perf_counter()
    cur.execute(query["sql"], query["params"])
    rows = cur.fetchall() if cur.description else []
    return (time.perf_counter() - t0) * 1000.0, len(rows)


def _explain(cur, query):
    cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"], query["params"])
    return "\n".join(r[0] for r in cur.fetchall())


def run_query(conn, query, *, runs, warmup, metric, explain_slow=True):
    """Benchmark one query; never raises for SQL errors (they become a failed result)."""
    result = {"name": query["name"], "target_ms": query["target_ms"], "runs": runs, "metric": metric}
    cur = conn.cursor()
    samples = []
    try:
        for _ in range(warmup):
            _one(cur, query)
            conn.rollback()
        rows = 0
        for _ in range(runs):
            ms, rows = _one(cur, query)
            samples.append(ms)
            conn.rollback()
    except Exception as exc:
        conn.rollback()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result.update({"status": "error", "passed": False, "error": text, "samples_ms": [round(s, 3) for s in samples]})
        for m in METRICS:
            result["%s_ms" % m] = None
        return result
    result.update({
        "status": "ok", "rows": rows,
        "p50_ms": round(percentile(samples, 50), 3), "p95_ms": round(percentile(samples, 95), 3),
        "max_ms": round(max(samples), 3), "mean_ms": round(sum(samples) / len(samples), 3),
        "samples_ms": [round(s, 3) for s in samples],
    })
    result["passed"] = result["%s_ms" % metric] <= query["target_ms"]
    if not result["passed"] and explain_slow:
        try:
            result["plan"] = _explain(cur, query)
        except Exception as exc:
            result["plan"] = "EXPLAIN failed: %s" % exc
        conn.rollback()
    return result


def run(params):
    """Run every query; returns {results, summary, seconds}."""
    started = time.monotonic()
    queries = validate_queries(params.get("queries"))
    runs = int(params.get("runs") or 5)
    warmup = int(params.get("warmup") or 0)
    if runs < 1 or warmup < 0:
        raise BenchmarkError("runs must be >= 1 and warmup >= 0 (got runs=%s, warmup=%s)" % (runs, warmup))
    metric = params.get("pass_metric") or "p95"
    conn = connect(params)
    try:
        conn.set_session(readonly=bool(params.get("read_only", True)))
        cur = conn.cursor()
        if params.get("statement_timeout_ms"):
            cur.execute("SET statement_timeout = %s", (int(params["statement_timeout_ms"]),))
        conn.commit()
        results = [run_query(conn, q, runs=runs, warmup=warmup, metric=metric,
                             explain_slow=params.get("explain_slow", True)) for q in queries]
    finally:
        conn.close()
    summary = {
        "queries": len(results),
        "passed": sum(1 for r in results if r["passed"]),
        "failed": sum(1 for r in results if not r["passed"]),
        "errors": sum(1 for r in results if r["status"] == "error"),
        "slow": sum(1 for r in results if r["status"] == "ok" and not r["passed"]),
    }
    return {"results": results, "summary": summary, "seconds": round(time.monotonic() - started, 3),
            "runs": runs, "warmup": warmup, "pass_metric": metric}
