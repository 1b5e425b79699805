"""truncate: true with a table subset, against foreign keys on a real PostgreSQL (issue 15, item 8).

PostgreSQL refuses to TRUNCATE a referenced table unless its referencing tables are truncated
in the same statement. sqlite_migrate adds referencing tables that are empty and refuses, before
truncating anything, when one outside the subset holds rows.
"""

from __future__ import annotations

import sqlite3

import pytest
from ansible.module_utils.migrate.runner import MigrationError, run_migration

pytestmark = pytest.mark.integration

DDL = """
CREATE TABLE parent (code TEXT PRIMARY KEY, name TEXT);
CREATE TABLE child (id BIGINT PRIMARY KEY, code TEXT NOT NULL REFERENCES parent (code), qty BIGINT);
CREATE TABLE grandchild (id BIGINT PRIMARY KEY, child_id BIGINT REFERENCES child (id));
CREATE TABLE series (code TEXT NOT NULL REFERENCES parent (code), day DATE NOT NULL, v DOUBLE PRECISION,
                     PRIMARY KEY (code, day));
"""


@pytest.fixture
def fk_db(pg_server, pg_db, tmp_path):
    src = str(tmp_path / "fk.db")
    lite = sqlite3.connect(src)
    lite.executescript("""
        CREATE TABLE parent (code TEXT PRIMARY KEY, name TEXT);
        CREATE TABLE child (id INTEGER PRIMARY KEY, code TEXT, qty INTEGER);
        CREATE TABLE grandchild (id INTEGER PRIMARY KEY, child_id INTEGER);
        CREATE TABLE series (code TEXT, day TEXT, v REAL, PRIMARY KEY (code, day));
        INSERT INTO parent VALUES ('A', 'alpha'), ('B', 'beta');
        INSERT INTO child VALUES (1, 'A', 10), (2, 'B', 20);
        INSERT INTO grandchild VALUES (7, 1);
        INSERT INTO series VALUES ('A', '2024-01-02', 1.5), ('B', '2024-02-03', 2.5);
    """)
    lite.commit()
    lite.close()
    conn = pg_server.connect(pg_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(DDL)
        if pg_server.has_timescaledb:
            # a hypertable's chunks carry their own copies of the foreign key
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cur.execute("SELECT create_hypertable('series', 'day', chunk_time_interval => INTERVAL '1 month')")
    params = pg_server.params(pg_db)
    params.update(src=src, mapping={"parent": {}, "child": {}, "grandchild": {}, "series": {}}, analyze=False)
    yield conn, params
    conn.close()


def counts(conn):
    with conn.cursor() as cur:
        out = {}
        for table in ("parent", "child", "grandchild", "series"):
            cur.execute("SELECT count(*) FROM %s" % table)
            out[table] = cur.fetchone()[0]
        return out


def test_subset_with_referencing_rows_is_refused_before_truncating(fk_db):
    conn, params = fk_db
    run_migration(params)
    before = counts(conn)
    assert before == {"parent": 2, "child": 2, "grandchild": 1, "series": 2}
    with pytest.raises(MigrationError) as err:
        run_migration(dict(params, tables=["parent"], truncate=True))
    msg = str(err.value)
    assert "public.child" in msg and "public.series" in msg and "nothing was truncated" in msg
    assert "sqlite_migration_tables" in msg
    assert "public.grandchild" in msg  # references child, which would have to go too
    assert counts(conn) == before


def test_subset_adds_empty_referencing_tables_in_one_statement(fk_db):
    conn, params = fk_db
    run_migration(params)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM grandchild; DELETE FROM series")
    result = run_migration(dict(params, tables=["parent", "child"], truncate=True))
    truncates = [q for q in result["queries"] if q.startswith("TRUNCATE")]
    assert len(truncates) == 1
    for table in ("parent", "child", "grandchild", "series"):
        assert '"%s"' % table in truncates[0]
    assert result["tables"]["parent"]["copied_rows"] == 2
    assert result["tables"]["child"]["copied_rows"] == 2
    assert counts(conn) == {"parent": 2, "child": 2, "grandchild": 0, "series": 0}


def test_whole_fk_family_truncates_and_reloads(fk_db):
    conn, params = fk_db
    run_migration(params)
    result = run_migration(dict(params, truncate=True))
    assert all(t["status"] == "copied" for t in result["tables"].values())
    assert counts(conn) == {"parent": 2, "child": 2, "grandchild": 1, "series": 2}
