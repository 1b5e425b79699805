"""`playbooks/migrate.yml -e sqlite_migration_db=other` acts on `other` only (issue 19, item 2).

Two databases carry the quant schema (playbooks/database.yml run for each): the shared one that
quant_db_name names, and `other`. Migrating into `other` loads it, refreshes ITS aggregates and
records the refresh in ITS quant_meta; the shared database's rollups, unpopulated beforehand, stay
so, and it holds no migration bookkeeping. A refresh sent to the shared database (the nested quant_database include
falling back to its own defaults) would populate its rollups and fail this test.
"""

from __future__ import annotations

import uuid

import pytest
from ansible.module_utils.core.quant_meta_actions import run
from ansible.module_utils.sample.generator import generate
from integration.test_rollback import ok, played_host

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLLUPS = "SELECT matviewname, ispopulated FROM pg_matviews WHERE schemaname = 'public' " \
          "AND matviewname LIKE 'ohlcv\\_%' ORDER BY 1"


def sql(server, db, statement):
    return server.query(statement, db)


@pytest.fixture(scope="module")
def migrated_other(pg_server, tmp_path_factory):
    """(host, other): both databases built by database.yml, then migrate.yml into `other` only."""
    if not pg_server.has_timescaledb:
        pytest.fail("TimescaleDB is not installed for this PostgreSQL (make provision-local)")
    other = "other_" + uuid.uuid4().hex[:8]
    with played_host(pg_server, tmp_path_factory.mktemp("migrate_other")) as h:
        try:
            generate(str(h.src), scale=0.01)
            ok(h.play("playbooks/database.yml"))
            ok(h.play("playbooks/database.yml", quant_db_name=other))
            # The Apache rollups are created WITH DATA (empty): unpopulate the shared database's, so a
            # refresh sent there shows.
            for view, _populated in sql(pg_server, h.db, ROLLUPS):
                sql(pg_server, h.db, 'REFRESH MATERIALIZED VIEW public."%s" WITH NO DATA' % view)
            ok(h.play("playbooks/migrate.yml", sqlite_migration_db=other))
            yield h, other
        finally:
            conn = pg_server.connect()
            conn.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % other)
            conn.close()


def test_the_aggregates_of_the_migrated_database_are_refreshed_and_recorded(pg_server, migrated_other):
    _host, other = migrated_other
    assert sql(pg_server, other, "SHOW timescaledb.license") == [("apache",)], \
        "this test reads the Apache edition's rollups (materialized views)"
    rollups = sql(pg_server, other, ROLLUPS)
    assert rollups and all(populated for _name, populated in rollups), rollups
    assert sql(pg_server, other, "SELECT count(*) FROM ohlcv_monthly")[0][0] > 0
    status = run(pg_server.params(other), "refresh_status")
    assert status["last_refresh"] is not None and status["due"] is False, status


def test_the_shared_database_is_left_alone(pg_server, migrated_other):
    host, _other = migrated_other
    rollups = sql(pg_server, host.db, ROLLUPS)
    assert rollups and not any(populated for _name, populated in rollups), rollups
    assert sql(pg_server, host.db, "SELECT count(*) FROM ohlcv_data") == [(0,)]
    status = run(pg_server.params(host.db), "refresh_status")
    assert (status["last_load"], status["last_refresh"], status["due"]) == (None, None, False), status
