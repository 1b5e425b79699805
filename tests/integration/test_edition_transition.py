"""An Apache database whose server gets the Community edition, moved in place (issue 16, item 2).

One cluster from the Community tree (scripts/build-community), started with
timescaledb.license = 'apache': playbooks/database.yml and migrate.yml build and fill the
database with the Apache fallback (plain materialized views, their refresh schedule). The
server is then restarted with the Community license, as after installing Timescale's
packages, and database.yml runs again: schema steps 4 and 5 go through their transitions
(the views become continuous aggregates, the policies appear), the aggregates are filled
and equal a recomputation from ohlcv_data, the tables' content is untouched, the Apache
schedule is gone, and the next run changes nothing.
"""

from __future__ import annotations

import pytest
from ansible.module_utils.sample.generator import generate
from integration.test_rollback import HOST_FILES, ok, played_host
from pgcluster import community_bindir, running_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGGREGATES = ["ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly"]
# The monthly rollup recomputed from ohlcv_data, both ways (EXCEPT ALL): 0 rows when equal.
MONTHLY_DIFF = """
SELECT count(*) FROM (
  (SELECT ticker, region, timeframe, time_bucket(INTERVAL '1 month', date) AS month, max(high), min(low),
          sum(volume), count(*) FROM ohlcv_data GROUP BY 1, 2, 3, 4
   EXCEPT ALL SELECT ticker, region, timeframe, month, high, low, volume, trading_days FROM ohlcv_monthly)
  UNION ALL
  (SELECT ticker, region, timeframe, month, high, low, volume, trading_days FROM ohlcv_monthly
   EXCEPT ALL SELECT ticker, region, timeframe, time_bucket(INTERVAL '1 month', date), max(high), min(low),
          sum(volume), count(*) FROM ohlcv_data GROUP BY 1, 2, 3, 4)) d
"""


def tables_only(contents, names):
    return {k: v for k, v in contents["fingerprints"].items() if k not in names}


def test_an_apache_database_moves_to_community_in_place(tmp_path):
    bindir = community_bindir()
    if bindir is None:
        pytest.fail("no Community tree on this host: scripts/build-community builds it (provision stage)")
    with running_cluster("timescaledb.license = 'apache'\n", bindir) as server, \
            played_host(server, tmp_path) as h:
        generate(str(h.src), scale=0.01)
        ok(h.play("playbooks/database.yml"))
        ok(h.play("playbooks/migrate.yml"))
        assert h.sql("SHOW timescaledb.license") == [("apache",)]
        assert h.sql("SELECT step, name FROM quant_meta.schema_steps WHERE step IN (4, 5) ORDER BY 1") == [
            (4, "aggregates_apache"), (5, "policies_apache")]
        before = h.contents()
        apache_schedule = [p for p in HOST_FILES if p.exists()]  # cron here (no systemd)

        conf = server.datadir / "postgresql.auto.conf"
        conf.write_text(conf.read_text().replace("timescaledb.license = 'apache'", "timescaledb.license = 'timescale'"))
        server.restart()
        moved = ok(h.play("playbooks/database.yml"))
        assert "Schema | Fill the continuous aggregates an edition transition created" in moved

        assert h.sql("SHOW timescaledb.license") == [("timescale",)]
        assert h.sql("SELECT step, name FROM quant_meta.schema_steps WHERE step IN (4, 5) ORDER BY 1") == [
            (4, "aggregates_community"), (5, "policies_community")]
        assert [r[0] for r in h.sql("SELECT view_name FROM timescaledb_information.continuous_aggregates "
                                    "ORDER BY 1")] == AGGREGATES
        assert h.sql("SELECT count(*) FROM pg_matviews WHERE matviewname LIKE 'ohlcv%'") == [(0,)]
        assert h.sql("SELECT to_regprocedure('quant_meta.refresh_ohlcv_aggregates()')") == [(None,)]
        jobs = dict(h.sql("SELECT proc_name, count(*) FROM timescaledb_information.jobs "
                          "WHERE hypertable_name IS NOT NULL GROUP BY 1"))
        assert jobs == {"policy_refresh_continuous_aggregate": 3, "policy_compression": 5}, jobs
        assert h.sql(MONTHLY_DIFF) == [(0,)]  # filled, and equal to a recomputation
        after = h.contents()
        assert all(after["row_counts"][name] > 0 for name in AGGREGATES)
        assert tables_only(after, AGGREGATES) == tables_only(before, AGGREGATES)  # no table touched
        assert not any(p.exists() for p in apache_schedule), "the Apache refresh schedule is left behind"

        again = ok(h.play("playbooks/database.yml"))
        assert "changed=0" in again, again[-3000:]
