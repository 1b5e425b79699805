"""Full-size figure: migrate the spec-sized sample (scale 1.0, ~963k rows) with the project's
own generator, schema and sqlite_migrate engine, then time migration_validate on it.
Prints the figure; never asserts on timing (docs/CONVENTIONS.md)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.migrate.runner import run_migration
from ansible.module_utils.sample.generator import generate
from ansible.module_utils.schema.steps import run as apply_schema
from ansible.module_utils.validate.runner import run as validate
from schema_render import render_steps

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCALE = float(os.environ.get("QUANT_VALIDATE_SCALE", "1.0"))


def test_full_size_validation_time(require_timescaledb, pg_db, tmp_path):
    server = require_timescaledb
    conn = server.connect(pg_db)
    conn.cursor().execute("CREATE EXTENSION timescaledb")
    conn.cursor().execute("SHOW timescaledb.license")
    conn.close()
    params = server.params(pg_db)
    apply_schema(params, render_steps("apache"))
    src = str(tmp_path / "spock_local.db")
    t0 = time.monotonic()
    counts = generate(src, scale=SCALE)
    t_gen = time.monotonic() - t0
    defaults = yaml.safe_load((ROOT / "roles/sqlite_migration/defaults/main.yml").read_text())
    mapping = defaults["sqlite_migration_mapping"]
    t0 = time.monotonic()
    migrated = run_migration(dict(params, src=src, mapping=mapping, on_conflict="skip", resume=False,
                                  max_reject_ratio=0.05, analyze=True, batch_rows=50000))
    t_mig = time.monotonic() - t0
    conn = server.connect(pg_db)
    cur = conn.cursor()
    for view in ("ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly"):
        cur.execute("REFRESH MATERIALIZED VIEW %s" % view)
    conn.close()
    result = validate(dict(params, src=src, mapping=mapping, checks=None, severity_overrides={},
                           quality_severity="warning", expected_chunk_interval="1 month", max_differences=10))
    rows = sum(counts.values())
    print("\nsample rows %d (generated in %.1f s), migrated in %.1f s, VALIDATED IN %.2f s; summary %s"
          % (rows, t_gen, t_mig, result["seconds"], result["summary"]))
    print("timings", result["timings"])
    for c in result["checks"]:
        if c["status"] == "fail":
            print("FAIL", c["severity"], c["name"], c["detail"][:300])
    assert migrated
    assert result["summary"]["critical_failures"] == 0, result["msg"]
