"""playbooks/validate.yml end to end on the dev inventory (localhost): reports on the
controller, a summary at the end, and a failed play (after the reports) on a planted fault
or on a benchmark that did not run (unless migration_validation_benchmark_required is false)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from integration.validation_dataset import build
from playbooks_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def play_vars(server, db, src, mapping, reports, **overrides):
    return {
        "migration_validation_db": db, "migration_validation_login_user": server.user,
        "migration_validation_login_unix_socket": str(server.socket_dir), "migration_validation_port": server.port,
        "migration_validation_src": src, "migration_validation_mapping": mapping,
        "migration_validation_reports_dir": str(reports),
        "migration_validation_remote_report": str(reports / "remote" / "validation.json"),
        "migration_validation_benchmark_runs": 2,
        "migration_validation_expected_chunk_interval": "1 month",
        # The pgBackRest lines (role pg_pitr) validate the inventory's cluster, not this
        # throw-away one: tests/integration/test_pitr.py covers them.
        "pg_pitr_enabled": False,
        **overrides,
    }


def play(server, db, src, mapping, reports, *extra, **overrides):
    extra_vars = play_vars(server, db, src, mapping, reports, **overrides)
    return run_playbook("playbooks/validate.yml", *extra, extra_vars=extra_vars, env={"PGPASSWORD": server.password})


def test_playbook_reports_and_verdict(pg_server, pg_db, tmp_path):
    src = str(tmp_path / "source.db")
    conn = pg_server.connect(pg_db)
    mapping = build(src, conn)
    reports = tmp_path / "reports"
    # The dataset holds four of the platform's tables: 7 of the 13 benchmark queries cannot run
    # here, which is reported (and would fail the play without the opt-out).
    opt_out = {"migration_validation_benchmark_required": False}
    out = play(pg_server, pg_db, src, mapping, reports, **opt_out)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 critical failures" in out.stdout
    assert "ms / target" in out.stdout  # benchmark lines in the summary
    assert 'BENCHMARK NOT RUN Backtest: Strategy results: relation "backtest_results" does not exist' in flat(out)
    host = "localhost"
    report = json.loads((reports / ("validation-%s.json" % host)).read_text())
    assert report["validation"]["summary"]["critical_failures"] == 0
    assert len(report["benchmark"]["results"]) == 13
    markdown = (reports / ("validation-%s.md" % host)).read_text()
    assert "**Verdict: PASSED**" in markdown and "p95 latency as a share of its target" in markdown
    assert (reports / ("benchmark-%s.svg" % host)).read_text().startswith("<svg")
    assert (reports / "remote" / "validation.json").exists()

    check = play(pg_server, pg_db, src, mapping, tmp_path / "check", "--check", **opt_out)
    assert check.returncode == 0, check.stdout[-3000:]
    assert not (tmp_path / "check" / "remote" / "validation.json").exists()  # check mode writes no report

    conn.cursor().execute("DELETE FROM ohlcv_data WHERE ticker = 'VNM' AND date = '2025-07-05'")
    bad = play(pg_server, pg_db, src, mapping, reports, **opt_out)
    conn.close()
    assert bad.returncode != 0
    assert "content ohlcv_data" in bad.stdout and "ticker=VNM" in bad.stdout
    markdown = (reports / ("validation-%s.md" % host)).read_text()
    assert "**Verdict: FAILED**" in markdown and "ticker=VNM, region=VN, timeframe=D, date=2025-07-05" in markdown


GOOD = {"name": "Tickers: count", "target_ms": 60000, "sql": "SELECT count(*) FROM tickers"}
BROKEN = {"name": "Broken: a table that is not there", "target_ms": 100, "sql": "SELECT * FROM no_such_table"}
NOT_RUN_LINE = 'BENCHMARK NOT RUN Broken: a table that is not there: relation "no_such_table" does not exist'


def flat(out):
    """stdout with the YAML callback's line folding undone."""
    return " ".join(out.stdout.split())


def site_tail(tmp_path):
    """validate.yml then the site summary (playbooks/summary.yml), as site.yml ends."""
    book = tmp_path / "validate_and_summary.yml"
    book.write_text("".join("- ansible.builtin.import_playbook: %s\n" % (ROOT / "playbooks" / name)
                            for name in ("validate.yml", "summary.yml")))
    return book


def test_a_benchmark_that_did_not_run_fails_the_play_unless_opted_out(pg_server, pg_db, tmp_path):
    src = str(tmp_path / "source.db")
    conn = pg_server.connect(pg_db)
    mapping = build(src, conn)
    conn.close()
    reports = tmp_path / "reports"
    markdown = reports / "validation-localhost.md"

    failed = play(pg_server, pg_db, src, mapping, reports, migration_validation_benchmarks=[GOOD, BROKEN])
    assert failed.rc != 0 and failed.recap["localhost"]["failed"] == 1, failed.tail()
    assert NOT_RUN_LINE in flat(failed) and "PASS Tickers: count" in flat(failed)
    assert "Benchmarks did not run: Broken: a table that is not there" in flat(failed)
    assert "0 critical failures" in flat(failed)  # the validation itself passed: only the benchmark failed
    assert "## Benchmarks that did not run" in markdown.read_text()

    opted = play_vars(pg_server, pg_db, src, mapping, reports, migration_validation_benchmarks=[GOOD, BROKEN],
                      migration_validation_benchmark_required=False)
    out = run_playbook(site_tail(tmp_path), extra_vars=opted, env={"PGPASSWORD": pg_server.password})
    assert out.rc == 0, out.tail()
    assert NOT_RUN_LINE in flat(out)  # the role's summary
    assert ('Benchmark did not run: Broken: a table that is not there: relation "no_such_table" does not exist'
            in flat(out))  # the site summary
    text = markdown.read_text()
    assert "## Benchmarks that did not run" in text and "reported only" in text
    assert '| Broken: a table that is not there | relation "no_such_table" does not exist |' in text
    report = json.loads((reports / "validation-localhost.json").read_text())
    assert report["benchmarks_not_run"] == [{"name": BROKEN["name"],
                                             "error": 'relation "no_such_table" does not exist'}]


def test_a_benchmark_module_that_fails_as_a_whole_is_one_line(pg_server, pg_db, tmp_path):
    """pg_benchmark refusing its query list (the same name twice) runs no query at all."""
    src = str(tmp_path / "source.db")
    conn = pg_server.connect(pg_db)
    mapping = build(src, conn)
    conn.close()
    reports = tmp_path / "reports"
    twice = [GOOD, dict(BROKEN, name=GOOD["name"])]
    failed = play(pg_server, pg_db, src, mapping, reports, migration_validation_benchmarks=twice)
    assert failed.rc != 0, failed.tail()
    # the YAML callback doubles the quotes around the name: compare up to them
    line = "BENCHMARK NOT RUN all 2 benchmarks: benchmark: query name "
    assert line in flat(failed) and "is used twice" in flat(failed), failed.tail()
    opted = play(pg_server, pg_db, src, mapping, reports, migration_validation_benchmarks=twice,
                 migration_validation_benchmark_required=False)
    assert opted.rc == 0, opted.tail()
    assert line in flat(opted)
    report = json.loads((reports / "validation-localhost.json").read_text())
    assert report["benchmarks_not_run"] == [{"name": "all 2 benchmarks",
                                             "error": "benchmark: query name 'Tickers: count' is used twice"}]
    assert "| all 2 benchmarks | benchmark: query name 'Tickers: count' is used twice |" in \
        (reports / "validation-localhost.md").read_text()
