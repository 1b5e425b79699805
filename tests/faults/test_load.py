"""Read load during validation (issue #9, item 6).

A database migrated from the project's own sample (modest scale) on the session's throw-away
cluster; while migration_validate runs (again and again, for the whole window), 30 client threads
each hold one psycopg2 connection and run the 13 benchmark queries of the migration_validation
role (module_utils/bench/pg_bench.py's workload) round-robin for 60 s. Proven: no query error, no
refused connection (`too many clients`), every validation without a critical failure, and the
data unchanged. p95 latency and queries/s are printed and recorded, never asserted
(docs/CONVENTIONS.md: tests never assert on timings).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psycopg2
import pytest
import yaml
from ansible.module_utils.bench.pg_bench import percentile, validate_queries
from ansible.module_utils.migrate.runner import run_migration
from ansible.module_utils.sample.generator import generate
from ansible.module_utils.schema.steps import run as apply_schema
from ansible.module_utils.validate.runner import run as validate
from schema_render import render_steps

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = int(os.environ.get("QUANT_LOAD_CLIENTS", "30"))
SECONDS = float(os.environ.get("QUANT_LOAD_SECONDS", "60"))
SCALE = float(os.environ.get("QUANT_LOAD_SCALE", "0.05"))


def role_defaults(role):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())


def scalar(conn, query):
    with conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchone()[0]


def table_counts(conn, tables):
    return {t: scalar(conn, "SELECT count(*) FROM %s" % t) for t in tables}


class Client(threading.Thread):
    """One application-like reader: one connection, the benchmark queries round-robin until the deadline."""

    def __init__(self, index, dsn, queries, deadline, start_gate):
        super().__init__(name="reader-%d" % index, daemon=True)
        self.index = index
        self.dsn = dsn
        self.queries = queries
        self.deadline = deadline
        self.start_gate = start_gate
        self.latencies = []
        self.errors = []
        self.connect_error = None

    def run(self):
        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=10, application_name="fault-load-reader")
        except psycopg2.Error as exc:
            self.connect_error = str(exc).strip()
            self.start_gate.abort()  # the test fails on it; the others need not wait for this one
            return
        try:
            conn.set_session(readonly=True, autocommit=True)
            cur = conn.cursor()
            try:
                self.start_gate.wait()
            except threading.BrokenBarrierError:
                pass  # another reader could not connect (recorded there): still run the workload
            i = self.index
            while time.monotonic() < self.deadline:
                query = self.queries[i % len(self.queries)]
                i += 1
                t0 = time.perf_counter()
                try:
                    cur.execute(query["sql"], query["params"])
                    if cur.description:
                        cur.fetchall()
                except psycopg2.Error as exc:
                    self.errors.append("%s: %s" % (query["name"], str(exc).strip().splitlines()[0]))
                    if conn.closed:
                        return
                    continue
                self.latencies.append((time.perf_counter() - t0) * 1000.0)
        finally:
            conn.close()


class ConnectionWatch(threading.Thread):
    """Samples the number of backends every 0.5 s (the peak is what max_connections must cover)."""

    def __init__(self, server, stop):
        super().__init__(name="connection-watch", daemon=True)
        self.server = server
        self.stop = stop
        self.peak = 0

    def run(self):
        conn = self.server.connect()
        try:
            while not self.stop.is_set():
                self.peak = max(self.peak, scalar(conn, "SELECT count(*) FROM pg_stat_activity "
                                                        "WHERE backend_type = 'client backend'"))
                self.stop.wait(0.5)
        finally:
            conn.close()


@pytest.fixture
def migrated(require_timescaledb, pg_db, tmp_path):
    """pg_db with the real schema (Apache edition steps), migrated from the sample at SCALE."""
    server = require_timescaledb
    conn = server.connect(pg_db)
    conn.cursor().execute("CREATE EXTENSION timescaledb")
    conn.close()
    params = server.params(pg_db)
    apply_schema(params, render_steps("apache"))
    src = str(tmp_path / "spock_local.db")
    counts = generate(src, scale=SCALE)
    mapping = role_defaults("sqlite_migration")["sqlite_migration_mapping"]
    result = run_migration(dict(params, src=src, mapping=mapping, on_conflict="skip", max_reject_ratio=0.05,
                                batch_rows=20000))
    conn = server.connect(pg_db)
    for view in ("ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly"):
        conn.cursor().execute("REFRESH MATERIALIZED VIEW %s" % view)
    conn.close()
    return server, params, src, mapping, counts, result


def test_30_readers_during_validation(migrated, fault_report):
    server, params, src, mapping, counts, migration = migrated
    queries = validate_queries(role_defaults("migration_validation")["migration_validation_benchmarks"])
    admin = server.connect(params["db"])
    max_connections = int(scalar(admin, "SHOW max_connections"))
    reserved = int(scalar(admin, "SHOW superuser_reserved_connections"))
    # readers + validation (its connection and the source worker's) + this test's admin/watch connections
    needed = CLIENTS + 2 + 3
    assert needed <= max_connections - reserved, (
        "the throw-away cluster (tests/pgcluster.py) allows %d connections, the test needs %d"
        % (max_connections - reserved, needed))
    before = table_counts(admin, list(mapping))

    validate_params = dict(params, src=src, mapping=mapping, checks=None, severity_overrides={},
                           quality_severity="warning", expected_chunk_interval="1 month", max_differences=10)
    gate = threading.Barrier(CLIENTS + 1)
    started = time.monotonic()
    deadline = started + SECONDS + 30  # readers get a moment to connect; the window starts at the gate
    clients = [Client(i, server.dsn(params["db"]), queries, deadline, gate) for i in range(CLIENTS)]
    for c in clients:
        c.start()
    stop = threading.Event()
    watch = ConnectionWatch(server, stop)
    watch.start()
    connect_errors = []
    try:
        gate.wait(timeout=60)
    except threading.BrokenBarrierError:
        connect_errors.append("not every reader connected within 60 s")
    window_start = time.monotonic()
    window_end = window_start + SECONDS
    for c in clients:
        c.deadline = window_end
    validations = []
    while time.monotonic() < window_end or not validations:
        t0 = time.monotonic()
        res = validate(validate_params)
        validations.append((time.monotonic() - t0, res["summary"], res.get("failed_checks") or []))
    for c in clients:
        c.join(timeout=120)
    window = time.monotonic() - window_start
    stop.set()
    watch.join(timeout=10)
    after = table_counts(admin, list(mapping))
    admin.close()

    connect_errors += [c.connect_error for c in clients if c.connect_error]
    errors = [e for c in clients for e in c.errors]
    latencies = [ms for c in clients for ms in c.latencies]
    total = len(latencies) + len(errors)
    p95 = percentile(latencies, 95) if latencies else float("nan")
    qps = len(latencies) / window
    critical = [f for _s, summary, failed in validations if summary["critical_failures"] for f in failed]
    lost = sum(abs(after[t] - before[t]) for t in before)
    lost += sum(abs(r["source_rows"] - r["copied_rows"] - r["rejected_rows"] - r["duplicate_rows"])
                for r in migration["tables"].values())
    slowest = max(s for s, _summary, _failed in validations)
    print("\n%d readers x %.0f s during %d validation run(s) (slowest %.1f s) on %d rows: %d queries, %.1f queries/s, "
          "p95 %.1f ms, peak %d client connections of max_connections %d"
          % (CLIENTS, window, len(validations), slowest, sum(counts.values()), total, qps, p95, watch.peak,
             max_connections))
    clean = [c for c in clients if not c.connect_error and not c.errors and c.latencies]
    fault_report("%d read clients for %.0f s during migration_validate" % (CLIENTS, SECONDS), tries=CLIENTS,
                 recovered=len(clean) if not critical else 0, rows_lost=lost, secrets_leaked=0,
                 detail="%d queries, %d errors, p95 %.1f ms, %.1f queries/s; %d validations (slowest %.1f s, %d "
                        "critical); peak %d connections of %d" % (total, len(errors), p95, qps, len(validations),
                                                                  slowest, len(critical), watch.peak,
                                                                  max_connections))
    assert connect_errors == []
    assert errors == [], errors[:10]
    assert all(len(c.latencies) > 0 for c in clients), "a reader never completed a query"
    assert critical == [], critical
    assert lost == 0, (before, after)
    assert watch.peak <= max_connections - reserved
