"""Load order from the target's foreign keys, and FK cycles set aside then validated (issue 20, item 2),
against a real PostgreSQL whose schema was written without quotes (lower-case names)."""

from __future__ import annotations

import pytest
from ansible.module_utils.migrate.runner import MigrationError, run_migration
from integration.test_any_sqlite_files import make_source, params, pg_exec, pg_rows

pytestmark = pytest.mark.integration

# Alphabetically every child sorts before a parent: album < artist, playlist_track < track.
MUSIC_TARGET = """
CREATE TABLE artist (artistid integer PRIMARY KEY, name text);
CREATE TABLE album (albumid integer PRIMARY KEY, title text NOT NULL,
                    artistid integer NOT NULL REFERENCES artist (artistid));
CREATE TABLE track (trackid integer PRIMARY KEY, name text NOT NULL, albumid integer REFERENCES album (albumid));
CREATE TABLE playlist (playlistid integer PRIMARY KEY, name text);
CREATE TABLE playlist_track (playlistid integer NOT NULL REFERENCES playlist (playlistid),
                             trackid integer NOT NULL REFERENCES track (trackid),
                             PRIMARY KEY (playlistid, trackid));
"""


def music_source(path):
    lines = [
        'CREATE TABLE "Artist" ("ArtistId" INTEGER PRIMARY KEY, "Name" TEXT);',
        'CREATE TABLE "Album" ("AlbumId" INTEGER PRIMARY KEY, "Title" TEXT NOT NULL, "ArtistId" INTEGER NOT NULL);',
        'CREATE TABLE "Track" ("TrackId" INTEGER PRIMARY KEY, "Name" TEXT NOT NULL, "AlbumId" INTEGER);',
        'CREATE TABLE "Playlist" ("PlaylistId" INTEGER PRIMARY KEY, "Name" TEXT);',
        'CREATE TABLE "playlist_track" ("PlaylistId" INTEGER NOT NULL, "TrackId" INTEGER NOT NULL, '
        'PRIMARY KEY ("PlaylistId", "TrackId"));',
    ]
    lines += ["INSERT INTO \"Artist\" VALUES (%d, 'artist %d');" % (i, i) for i in range(1, 21)]
    lines += ["INSERT INTO \"Album\" VALUES (%d, 'album %d', %d);" % (i, i, 21 - (i % 20 or 20)) for i in range(1, 41)]
    lines += ["INSERT INTO \"Track\" VALUES (%d, 'track %d', %d);" % (i, i, 41 - (i % 40 or 40)) for i in range(1, 101)]
    lines += ["INSERT INTO \"Playlist\" VALUES (%d, 'list %d');" % (i, i) for i in range(1, 6)]
    lines += ["INSERT INTO playlist_track VALUES (%d, %d);" % (p, t) for p in range(1, 6) for t in range(p, 101, 3)]
    return make_source(path, "\n".join(lines))


def test_tables_load_parents_first_without_a_mapping(pg_server, pg_db, tmp_path):
    src = music_source(tmp_path / "music.db")
    pg_exec(pg_server, pg_db, MUSIC_TARGET)
    result = run_migration(params(pg_server, pg_db, src, batch_rows=7))
    assert result["load_order"] == ["Artist", "Album", "Playlist", "Track", "playlist_track"]
    assert result["fk_cycles"] == []
    assert result["total_rejected"] == 0
    assert {name: t["copied_rows"] for name, t in result["tables"].items()} == {
        "Album": 40, "Artist": 20, "Playlist": 5, "Track": 100, "playlist_track": 165}
    assert pg_rows(pg_server, pg_db, "SELECT count(*) FROM playlist_track") == [(165,)]


def test_an_explicit_mapping_keeps_its_order_and_warns(pg_server, pg_db, tmp_path):
    src = music_source(tmp_path / "music.db")
    pg_exec(pg_server, pg_db, MUSIC_TARGET)
    mapping = {"Album": {}, "Artist": {}}
    result = run_migration(params(pg_server, pg_db, src, mapping=mapping, max_reject_ratio=1.0))
    assert result["load_order"] == ["Album", "Artist"]
    assert result["tables"]["Album"]["rejected_rows"] == 40  # its artists were not there yet
    warning = next(w for w in result["warnings"] if "loads before" in w)
    assert "Album loads before Artist" in warning and "album_artistid_fkey" in warning


# A cycle (department.manager_id -> employee, employee.dept_id -> department) and a self-reference
# (employee.reports_to -> employee), every reference pointing at a row of a later batch.
CYCLE_TARGET = """
CREATE TABLE department (id integer PRIMARY KEY, name text NOT NULL, manager_id integer);
CREATE TABLE employee (id integer PRIMARY KEY, name text NOT NULL, dept_id integer REFERENCES department (id),
                       reports_to integer REFERENCES employee (id), salary integer CHECK (salary >= 0));
ALTER TABLE department ADD CONSTRAINT department_manager_id_fkey FOREIGN KEY (manager_id) REFERENCES employee (id);
"""
EMPLOYEES = 30
CYCLE_FKS = ["department_manager_id_fkey on public.department", "employee_reports_to_fkey on public.employee"]
ALL_VALID = {"department_manager_id_fkey": True, "employee_dept_id_fkey": True, "employee_reports_to_fkey": True}


def cycle_source(path, bad_boss=None):
    """Employee i reports to i + 5 (a later batch); departments are managed by employees 10, 20, 30.
    Employee 2 breaks the CHECK on salary (one reject, found on the staging path); bad_boss: a missing boss."""
    lines = [
        "CREATE TABLE department (id INTEGER PRIMARY KEY, name TEXT NOT NULL, manager_id INTEGER);",
        "CREATE TABLE employee (id INTEGER PRIMARY KEY, name TEXT NOT NULL, dept_id INTEGER, reports_to INTEGER, "
        "salary INTEGER);",
    ]
    lines += ["INSERT INTO department VALUES (%d, 'dept %d', %d);" % (d, d, d * 10) for d in range(1, 4)]
    for i in range(1, EMPLOYEES + 1):
        boss = i + 5 if i + 5 <= EMPLOYEES else "NULL"
        if i == EMPLOYEES and bad_boss:
            boss = bad_boss
        lines.append("INSERT INTO employee VALUES (%d, 'emp %d', %d, %s, %d);" % (
            i, i, i % 3 + 1, boss, -1 if i == 2 else 1000))
    return make_source(path, "\n".join(lines))


def validated(pg_server, db):
    return dict(pg_rows(pg_server, db, "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' "
                                       "AND conrelid IN ('employee'::regclass, 'department'::regclass)"))


def cycle_params(pg_server, db, src, **extra):
    return params(pg_server, db, src, batch_rows=3, tolerated_rejects=1, **extra)


def test_a_cycle_and_a_self_reference_load_and_are_validated(pg_server, pg_db, tmp_path):
    src = cycle_source(tmp_path / "staff.db")
    pg_exec(pg_server, pg_db, CYCLE_TARGET)
    result = run_migration(cycle_params(pg_server, pg_db, src))
    assert result["load_order"] == ["department", "employee"]
    assert result["fk_cycles"] == [{"tables": ["department", "employee"], "constraints": CYCLE_FKS,
                                    "handling": "set_aside"}]
    assert result["tables"]["department"]["copied_rows"] == 3
    employee = result["tables"]["employee"]
    # only the CHECK failure: forward references in the same failing batch are not suspects
    assert (employee["copied_rows"], employee["rejected_rows"]) == (EMPLOYEES - 1, 1)
    assert employee["rejects_sample"][0]["source_rowid"] == 2
    assert any("cycle with department" in note for note in employee["notes"])
    assert validated(pg_server, pg_db) == ALL_VALID
    assert any(q.endswith("VALIDATE CONSTRAINT employee_reports_to_fkey") for q in result["queries"])
    assert pg_rows(pg_server, pg_db, "SELECT count(*) FROM quant_meta.migration_set_aside_fks") == [(0,)]

    again = run_migration(cycle_params(pg_server, pg_db, src))
    assert again["changed"] is False
    assert {t["status"] for t in again["tables"].values()} == {"skipped"}
    assert not any("CONSTRAINT" in q for q in again["queries"])


def test_a_missing_parent_in_a_cycle_fails_and_leaves_the_key_not_valid(pg_server, pg_db, tmp_path):
    src = cycle_source(tmp_path / "staff.db", bad_boss=999)
    pg_exec(pg_server, pg_db, CYCLE_TARGET)
    with pytest.raises(MigrationError) as info:
        run_migration(cycle_params(pg_server, pg_db, src))
    msg = str(info.value)
    assert "foreign key employee_reports_to_fkey on public.employee (reports_to) -> employee" in msg
    assert "1 loaded row has no parent row (missing reports_to: 999)" in msg
    assert "VALIDATE CONSTRAINT employee_reports_to_fkey" in msg
    assert validated(pg_server, pg_db)["employee_reports_to_fkey"] is False
    assert pg_rows(pg_server, pg_db, "SELECT count(*) FROM employee") == [(EMPLOYEES - 1,)]

    # the tables are done: a rerun validates again, and fails again until the row is fixed
    with pytest.raises(MigrationError) as info:
        run_migration(cycle_params(pg_server, pg_db, src))
    assert "missing reports_to: 999" in str(info.value)
    pg_exec(pg_server, pg_db, "UPDATE employee SET reports_to = NULL WHERE reports_to = 999")
    result = run_migration(cycle_params(pg_server, pg_db, src))
    assert result["changed"] is True and all(validated(pg_server, pg_db).values())
    assert pg_rows(pg_server, pg_db, "SELECT count(*) FROM quant_meta.migration_set_aside_fks") == [(0,)]


def test_a_key_left_set_aside_by_a_crash_is_restored_by_the_next_run(pg_server, pg_db, tmp_path):
    src = cycle_source(tmp_path / "staff.db")
    pg_exec(pg_server, pg_db, CYCLE_TARGET)
    run_migration(cycle_params(pg_server, pg_db, src))
    # as if a run died between the DROP and the restore
    pg_exec(pg_server, pg_db, """
        INSERT INTO quant_meta.migration_set_aside_fks (schema_name, table_name, constraint_name, definition)
        SELECT 'public', 'employee', conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conname = 'employee_reports_to_fkey';
        ALTER TABLE employee DROP CONSTRAINT employee_reports_to_fkey;""")
    result = run_migration(cycle_params(pg_server, pg_db, src))
    assert result["changed"] is True
    assert validated(pg_server, pg_db)["employee_reports_to_fkey"] is True
    assert pg_rows(pg_server, pg_db, "SELECT count(*) FROM quant_meta.migration_set_aside_fks") == [(0,)]


def test_check_mode_reports_the_order_and_changes_nothing(pg_server, pg_db, tmp_path):
    src = cycle_source(tmp_path / "staff.db")
    pg_exec(pg_server, pg_db, CYCLE_TARGET)
    result = run_migration(cycle_params(pg_server, pg_db, src), check_mode=True)
    assert result["load_order"] == ["department", "employee"]
    assert result["fk_cycles"][0]["constraints"] == CYCLE_FKS
    assert validated(pg_server, pg_db) == ALL_VALID
    assert pg_rows(pg_server, pg_db, "SELECT count(*) FROM employee") == [(0,)]
    assert pg_rows(pg_server, pg_db, "SELECT to_regclass('quant_meta.migration_set_aside_fks')") == [(None,)]


def test_a_failure_inside_a_cycle_says_its_keys_stay_set_aside_and_the_next_run_restores_them(
        pg_server, pg_db, tmp_path):
    src = cycle_source(tmp_path / "staff.db")
    pg_exec(pg_server, pg_db, CYCLE_TARGET)
    with pytest.raises(MigrationError) as info:  # employee 2's reject breaks the default policy
        run_migration(params(pg_server, pg_db, src, batch_rows=3))
    msg = str(info.value)
    assert "the foreign keys %s stay set aside" % ", ".join(CYCLE_FKS) in msg
    assert "employee_reports_to_fkey" not in validated(pg_server, pg_db)
    result = run_migration(cycle_params(pg_server, pg_db, src))
    assert result["changed"] is True and {t["status"] for t in result["tables"].values()} == {"skipped"}
    assert validated(pg_server, pg_db) == ALL_VALID


def test_with_a_mapping_a_cycle_keeps_its_keys_unless_fk_cycles_says_set_aside(pg_server, pg_db, tmp_path):
    src = cycle_source(tmp_path / "staff.db")
    pg_exec(pg_server, pg_db, CYCLE_TARGET)
    mapping = {"employee": {}, "department": {}}
    kept = run_migration(cycle_params(pg_server, pg_db, src, mapping=mapping, max_reject_ratio=1.0), check_mode=True)
    assert kept["load_order"] == ["employee", "department"]
    assert kept["fk_cycles"] == [{"tables": ["employee", "department"], "handling": "kept", "constraints": [
        "employee_dept_id_fkey on public.employee", "employee_reports_to_fkey on public.employee"]}]
    assert any("kept in place" in note for note in kept["tables"]["employee"]["notes"])
    result = run_migration(cycle_params(pg_server, pg_db, src, mapping=mapping, fk_cycles="set_aside"))
    assert result["load_order"] == ["employee", "department"]
    assert result["fk_cycles"][0]["handling"] == "set_aside"
    assert (result["tables"]["employee"]["copied_rows"], result["total_rejected"]) == (EMPLOYEES - 1, 1)
    assert validated(pg_server, pg_db) == ALL_VALID
