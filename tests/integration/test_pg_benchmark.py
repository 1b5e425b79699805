"""pg_benchmark on the real server: failures are reported, not dropped; the role's 13 default
queries are valid SQL against the quant_database schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.module_utils.bench.pg_bench import run
from ansible.module_utils.schema.steps import run as apply_schema
from schema_render import render_steps

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_failing_query_is_a_failed_result(pg_server, pg_db):
    queries = [
        {"name": "fast", "sql": "SELECT generate_series(1, 10)", "target_ms": 10000},
        {"name": "broken", "sql": "SELECT * FROM no_such_table", "target_ms": 100},
        {"name": "slow", "sql": "SELECT pg_sleep(0.02)", "target_ms": 1},
        {"name": "params", "sql": "SELECT %(x)s::int + 1", "params": {"x": 41}, "target_ms": 10000},
    ]
    out = run(pg_server.params(pg_db, queries=queries, runs=3, warmup=1, pass_metric="p95"))
    res = {r["name"]: r for r in out["results"]}
    assert [r["name"] for r in out["results"]] == ["fast", "broken", "slow", "params"]
    assert res["fast"]["passed"] and res["fast"]["rows"] == 10 and len(res["fast"]["samples_ms"]) == 3
    assert res["fast"]["p50_ms"] <= res["fast"]["p95_ms"] <= res["fast"]["max_ms"]
    assert res["broken"]["status"] == "error" and not res["broken"]["passed"]
    assert "no_such_table" in res["broken"]["error"]
    assert not res["slow"]["passed"] and "Execution Time" in res["slow"]["plan"]
    assert res["params"]["passed"]
    assert out["summary"] == {"queries": 4, "passed": 2, "failed": 2, "errors": 1, "slow": 1}


def test_default_benchmarks_run_on_the_schema(require_timescaledb, pg_db):
    conn = require_timescaledb.connect(pg_db)
    conn.cursor().execute("CREATE EXTENSION timescaledb")
    conn.close()
    params = require_timescaledb.params(pg_db)
    apply_schema(params, render_steps("apache"))
    defaults = yaml.safe_load((ROOT / "roles/migration_validation/defaults/main.yml").read_text())
    queries = defaults["migration_validation_benchmarks"]
    assert len(queries) == 13
    out = run(dict(params, queries=queries, runs=1, warmup=0))
    errors = {r["name"]: r.get("error") for r in out["results"] if r["status"] == "error"}
    assert errors == {}
