"""Rows a constraint refuses are found without one savepoint per row (issue 20, item 3).

One SQLite table into a keyed target that refuses rows in every way PostgreSQL can: a foreign
key, a CHECK, a second unique index, a domain (refused while staging), a trigger (no catalog
check can foresee it). Every refused row must come back alone, with PostgreSQL's own message,
whatever batch it falls in; every other row must load; on_conflict keeps its meaning.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from ansible.module_utils.migrate.runner import run_migration

pytestmark = pytest.mark.integration

PG_DDL = """
CREATE TABLE parents (id integer PRIMARY KEY);
INSERT INTO parents SELECT generate_series(1, 10);
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE items (
    id integer PRIMARY KEY,
    parent_id integer REFERENCES parents (id),
    qty integer CHECK (qty < 1000),
    code text UNIQUE,
    weight positive,
    note text);
CREATE FUNCTION no_thirteen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.note = 'thirteen' THEN
        RAISE EXCEPTION 'unlucky row %', NEW.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER items_no_thirteen BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION no_thirteen();
"""

ROWS = 200
BAD = {  # rowid -> (column, value)
    7: ("parent_id", 99),
    20: ("qty", 5000),
    21: ("code", "c3"),
    50: ("weight", -5),
    77: ("note", "thirteen"),
    150: ("parent_id", 42),
    151: ("parent_id", 43),
}
REASONS = {
    7: 'PostgreSQL: insert or update on table "items" violates foreign key constraint "items_parent_id_fkey" '
       '(Key (parent_id)=(99) is not present in table "parents".)',
    20: 'PostgreSQL: new row for relation "items" violates check constraint "items_qty_check" '
        "(Failing row contains (20, 1, 5000, c20, 21, ok).)",
    21: 'PostgreSQL: duplicate key value violates unique constraint "items_code_key" (Key (code)=(c3) already exists.)',
    50: 'PostgreSQL: value for domain positive violates check constraint "positive_check"',
    77: "PostgreSQL: unlucky row 77",
    150: 'PostgreSQL: insert or update on table "items" violates foreign key constraint "items_parent_id_fkey" '
         '(Key (parent_id)=(42) is not present in table "parents".)',
}


def _source(path):
    lite = sqlite3.connect(path)
    lite.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, parent_id INTEGER, qty INTEGER, code TEXT, "
                 "weight INTEGER, note TEXT)")
    for i in range(1, ROWS + 1):
        row = {"id": i, "parent_id": 1 + i % 10, "qty": i, "code": "c%d" % i, "weight": i + 1, "note": "ok"}
        if i == 160:
            row["parent_id"] = None  # MATCH SIMPLE: a NULL reference is no violation
        if i in BAD:
            column, value = BAD[i]
            row[column] = value
        lite.execute("INSERT INTO items VALUES (:id, :parent_id, :qty, :code, :weight, :note)", row)
    lite.commit()
    lite.close()


def _migrate(pg_server, pg_db, tmp_path, on_conflict="skip", batch_rows=64, resume=False, copy_format="auto"):
    rejects = tmp_path / "rejects.jsonl"
    params = pg_server.params(pg_db)
    params.update(src=str(tmp_path / "items.db"), mapping={"items": {"keys": ["id"]}}, on_conflict=on_conflict,
                  batch_rows=batch_rows, max_reject_ratio=1, rejects_path=str(rejects), resume=resume,
                  copy_format=copy_format)
    result = run_migration(params)
    recorded = [json.loads(line) for line in rejects.read_text().splitlines()] if rejects.exists() else []
    return result["tables"]["items"], {r["source_rowid"]: r for r in recorded}


@pytest.fixture
def target(pg_server, pg_db, tmp_path):
    _source(str(tmp_path / "items.db"))
    conn = pg_server.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute(PG_DDL)
    yield conn
    conn.close()


def _ids(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM items ORDER BY id")
        return [r[0] for r in cur.fetchall()]


@pytest.mark.parametrize(("batch_rows", "copy_format"), [(64, "auto"), (50000, "auto"), (50000, "text")])
def test_each_refused_row_alone_with_postgresqls_message(target, pg_server, pg_db, tmp_path, batch_rows, copy_format):
    res, recorded = _migrate(pg_server, pg_db, tmp_path, batch_rows=batch_rows, copy_format=copy_format)
    assert sorted(recorded) == sorted(BAD)
    for rowid, reason in REASONS.items():
        assert recorded[rowid]["reason"] == reason, rowid
    assert recorded[21]["kind"] == "duplicate"  # a unique violation under on_conflict=skip, as before
    assert recorded[50]["column"] is None
    assert (res["copied_rows"], res["rejected_rows"], res["duplicate_rows"]) == (ROWS - 7, 6, 1)
    assert _ids(target) == [i for i in range(1, ROWS + 1) if i not in BAD]
    # the checkpoint committed with each batch: a resumed run finds nothing left to load
    again, _ = _migrate(pg_server, pg_db, tmp_path, batch_rows=batch_rows, resume=True, copy_format=copy_format)
    assert again["status"] == "skipped"
    assert len(_ids(target)) == ROWS - 7


def test_rows_already_in_the_target_with_on_conflict_update(target, pg_server, pg_db, tmp_path):
    with target.cursor() as cur:
        # a unique violation on another index than the key cannot be upserted (ON CONFLICT names
        # the key): that stops the run, as it always did; this test is about the key
        cur.execute("ALTER TABLE items DROP CONSTRAINT items_code_key")
        cur.execute("INSERT INTO items VALUES (5, 1, 1, 'old5', 1, 'old'), (6, 1, 1, 'old6', 1, 'old')")
    res, recorded = _migrate(pg_server, pg_db, tmp_path, on_conflict="update", batch_rows=50000)
    # 5 and 6 are updated in place (the key join); the refused rows of the same batch are rejects
    assert sorted(recorded) == sorted(set(BAD) - {21} | {5, 6})
    assert recorded[5]["kind"] == recorded[6]["kind"] == "duplicate"
    for rowid in (7, 20, 50, 77, 150):
        assert recorded[rowid]["reason"] == REASONS[rowid]
    with target.cursor() as cur:
        cur.execute("SELECT id, code, note FROM items WHERE id IN (5, 6) ORDER BY id")
        assert cur.fetchall() == [(5, "c5", "ok"), (6, "c6", "ok")]
    assert (res["copied_rows"], res["rejected_rows"], res["duplicate_rows"]) == (ROWS - 8, 6, 2)


def test_on_conflict_error_makes_a_unique_violation_a_reject(target, pg_server, pg_db, tmp_path):
    _res, recorded = _migrate(pg_server, pg_db, tmp_path, on_conflict="error", batch_rows=50000)
    assert recorded[21]["kind"] == "reject"
    assert recorded[21]["reason"] == REASONS[21]


def test_a_row_referencing_a_row_of_its_own_batch_loads(target, pg_server, pg_db, tmp_path):
    # a self-reference is checked against the target only, so these rows are suspects; tried one
    # by one after the others, in rowid order, they still load when what they reference does
    with target.cursor() as cur:
        cur.execute("ALTER TABLE items ADD COLUMN ref integer REFERENCES items (id)")
    lite = sqlite3.connect(str(tmp_path / "items.db"))
    lite.execute("ALTER TABLE items ADD COLUMN ref INTEGER")
    lite.execute("UPDATE items SET ref = id - 1 WHERE id % 10 = 0")  # the row just before, same batch
    lite.execute("UPDATE items SET ref = 6 WHERE id = 3")  # a later row of the same batch
    lite.execute("UPDATE items SET ref = 7 WHERE id = 30")  # a row refused itself
    lite.commit()
    lite.close()
    _res, recorded = _migrate(pg_server, pg_db, tmp_path, batch_rows=50000)
    assert sorted(recorded) == sorted(set(BAD) | {30})
    assert "items_ref_fkey" in recorded[30]["reason"]
    assert _ids(target) == [i for i in range(1, ROWS + 1) if i not in BAD and i != 30]


def test_densely_refused_rows_no_catalog_check_foresees(target, pg_server, pg_db, tmp_path):
    # a trigger refusing every third row: the halving stops at small groups, tried row by row
    with target.cursor() as cur:
        cur.execute("""
            CREATE FUNCTION no_thirds() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.id % 3 = 0 THEN
                    RAISE EXCEPTION 'row % is a third', NEW.id;
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER items_no_thirds BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION no_thirds();
        """)
    res, recorded = _migrate(pg_server, pg_db, tmp_path, batch_rows=50000)
    thirds = {i for i in range(3, ROWS + 1, 3)}
    assert set(recorded) == set(BAD) | thirds
    for rowid in thirds - set(BAD):
        assert recorded[rowid]["reason"] == "PostgreSQL: row %d is a third" % rowid
    assert _ids(target) == [i for i in range(1, ROWS + 1) if i not in BAD and i not in thirds]
    assert res["copied_rows"] == ROWS - len(set(BAD) | thirds)
