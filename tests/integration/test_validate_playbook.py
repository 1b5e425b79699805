"""playbooks/validate.yml end to end on the dev inventory (localhost): reports on the
controller, a summary at the end, and a failed play (after the reports) on a planted fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from integration.validation_dataset import build
from playbooks_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def play(server, db, src, mapping, reports, *extra):
    extra_vars = {
        "migration_validation_db": db, "migration_validation_login_user": server.user,
        "migration_validation_login_unix_socket": str(server.socket_dir), "migration_validation_port": server.port,
        "migration_validation_src": src, "migration_validation_mapping": mapping,
        "migration_validation_reports_dir": str(reports),
        "migration_validation_remote_report": str(reports / "remote" / "validation.json"),
        "migration_validation_benchmark_runs": 2,
        "migration_validation_expected_chunk_interval": "1 month",
    }
    return run_playbook("playbooks/validate.yml", *extra, extra_vars=extra_vars, env={"PGPASSWORD": server.password})


def test_playbook_reports_and_verdict(pg_server, pg_db, tmp_path):
    src = str(tmp_path / "source.db")
    conn = pg_server.connect(pg_db)
    mapping = build(src, conn)
    reports = tmp_path / "reports"
    out = play(pg_server, pg_db, src, mapping, reports)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 critical failures" in out.stdout
    assert "ms / target" in out.stdout  # benchmark lines in the summary
    host = "localhost"
    report = json.loads((reports / ("validation-%s.json" % host)).read_text())
    assert report["validation"]["summary"]["critical_failures"] == 0
    assert len(report["benchmark"]["results"]) == 13
    markdown = (reports / ("validation-%s.md" % host)).read_text()
    assert "**Verdict: PASSED**" in markdown and "p95 latency as a share of its target" in markdown
    assert (reports / ("benchmark-%s.svg" % host)).read_text().startswith("<svg")
    assert (reports / "remote" / "validation.json").exists()

    check = play(pg_server, pg_db, src, mapping, tmp_path / "check", "--check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert not (tmp_path / "check" / "remote" / "validation.json").exists()  # check mode writes no report

    conn.cursor().execute("DELETE FROM ohlcv_data WHERE ticker = 'VNM' AND date = '2025-07-05'")
    bad = play(pg_server, pg_db, src, mapping, reports)
    conn.close()
    assert bad.returncode != 0
    assert "content ohlcv_data" in bad.stdout and "ticker=VNM" in bad.stdout
    markdown = (reports / ("validation-%s.md" % host)).read_text()
    assert "**Verdict: FAILED**" in markdown and "ticker=VNM, region=VN, timeframe=D, date=2025-07-05" in markdown
