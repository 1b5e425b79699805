"""Checkpoints identify their target (issue 20, item 4): a finished load into another table, or into a
table dropped and created again, is never reported as "skipped"; an interrupted one is not resumed into
a different table; an emptied target is pointed out."""

from __future__ import annotations

import pytest
from ansible.module_utils.migrate.runner import MigrationError, run_migration
from test_any_sqlite_files import make_source, params, pg_exec, pg_rows

pytestmark = pytest.mark.integration

SOURCE = """
CREATE TABLE prices (id INTEGER PRIMARY KEY, ticker TEXT NOT NULL, close REAL);
INSERT INTO prices VALUES (1, 'AAA', 1.5), (2, 'BBB', 2.5), (3, 'CCC', 3.5), (4, 'DDD', 4.5), (5, 'EEE', 5.5);
"""
TARGET = "CREATE TABLE {name} (id integer PRIMARY KEY, ticker text NOT NULL, close double precision)"


@pytest.fixture
def loaded(pg_server, pg_db, tmp_path):
    """prices migrated once into public.prices_a; returns the module params for more runs."""
    src = make_source(tmp_path / "prices.db", SOURCE)
    pg_exec(pg_server, pg_db, TARGET.format(name="prices_a") + ";" + TARGET.format(name="prices_b"))
    args = params(pg_server, pg_db, src, mapping={"prices": {"target": "prices_a"}})
    first = run_migration(args)
    assert first["tables"]["prices"]["status"] == "copied"
    return args


def count(pg_server, pg_db, table):
    return pg_rows(pg_server, pg_db, "SELECT count(*) FROM %s" % table)[0][0]


def test_a_finished_load_into_another_table_is_loaded_again(pg_server, pg_db, loaded):
    loaded["mapping"] = {"prices": {"target": "prices_b"}}
    preview = run_migration(loaded, check_mode=True)
    assert preview["tables"]["prices"]["status"] == "would_copy"
    result = run_migration(loaded)
    table = result["tables"]["prices"]
    assert (table["status"], table["copied_rows"]) == ("copied", 5)
    assert count(pg_server, pg_db, "prices_b") == 5
    assert any("went into public.prices_a" in w and "public.prices_b" in w for w in result["warnings"])


def test_a_recreated_target_is_loaded_again(pg_server, pg_db, loaded):
    pg_exec(pg_server, pg_db, "DROP TABLE prices_a;" + TARGET.format(name="prices_a"))
    result = run_migration(loaded)
    assert result["tables"]["prices"]["status"] == "copied"
    assert count(pg_server, pg_db, "prices_a") == 5
    assert any("dropped and created again" in w for w in result["warnings"])
    again = run_migration(loaded)
    assert again["tables"]["prices"]["status"] == "skipped" and not again.get("warnings")


def test_an_interrupted_load_is_not_resumed_into_a_recreated_target(pg_server, pg_db, loaded):
    pg_exec(pg_server, pg_db, "UPDATE quant_meta.migration_checkpoints SET status = 'running';"
                              "DROP TABLE prices_a;" + TARGET.format(name="prices_a"))
    with pytest.raises(MigrationError) as info:
        run_migration(dict(loaded, resume=True))
    assert "resume cannot continue it into another table" in str(info.value)
    assert "truncate: true" in str(info.value)
    assert count(pg_server, pg_db, "prices_a") == 0


def test_an_older_checkpoint_without_the_oid_is_adopted(pg_server, pg_db, loaded):
    pg_exec(pg_server, pg_db, "UPDATE quant_meta.migration_checkpoints SET target_oid = NULL")
    result = run_migration(loaded)
    assert result["tables"]["prices"]["status"] == "skipped"
    assert pg_rows(pg_server, pg_db, "SELECT target_oid = 'public.prices_a'::regclass::oid::bigint "
                                     "FROM quant_meta.migration_checkpoints") == [(True,)]


def test_an_emptied_target_is_skipped_with_a_warning(pg_server, pg_db, loaded):
    pg_exec(pg_server, pg_db, "TRUNCATE prices_a")
    result = run_migration(loaded)
    table = result["tables"]["prices"]
    assert table["status"] == "skipped"
    assert "holds none now" in table["note"] and "truncate: true reloads it" in table["note"]
    assert any("holds none now" in w for w in result["warnings"])


def test_bookkeeping_from_an_older_release_gains_the_column(pg_server, pg_db, loaded):
    pg_exec(pg_server, pg_db, "ALTER TABLE quant_meta.migration_checkpoints DROP COLUMN target_oid")
    preview = run_migration(loaded, check_mode=True)  # check mode creates nothing and still reads it
    assert preview["tables"]["prices"]["status"] == "would_skip"
    result = run_migration(loaded)
    assert result["tables"]["prices"]["status"] == "skipped"
    assert pg_rows(pg_server, pg_db, "SELECT target_oid IS NOT NULL FROM quant_meta.migration_checkpoints") == [
        (True,)]
