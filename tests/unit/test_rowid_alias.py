"""A column named rowid, _rowid_ or oid hides SQLite's rowid under that name (issue 20): the migration's
reads (module_utils/core/sqlite_source.py) and the validation's (module_utils/validate/content_compare.py)
reach the real rowid by the name no column has, and read a table with none left like a WITHOUT ROWID
table, in primary-key order."""

from __future__ import annotations

import pytest
from ansible.module_utils.convert.types import TargetType
from ansible.module_utils.core.sqlite_source import SourceError, open_source
from ansible.module_utils.mapping.target import Column, TargetTable
from ansible.module_utils.validate.content_compare import (
    TableJob,
    _position_name,
    _source_query,
    fingerprint_source,
    source_rows_by_rowid,
)
from ansible.module_utils.validate.runner import conversion_options, plan_table
from integration.test_any_sqlite_files import make_source

SOURCE = """
CREATE TABLE plain (v TEXT);
CREATE TABLE notes (rowid TEXT, body TEXT, n INTEGER);
CREATE TABLE two ("RowId" TEXT, _ROWID_ INTEGER, v TEXT);
CREATE TABLE gen (a INTEGER, rowid TEXT, _rowid_ TEXT, oid INTEGER GENERATED ALWAYS AS (a + 1));
CREATE TABLE three_pk (rowid TEXT, _rowid_ TEXT, oid TEXT, k INTEGER PRIMARY KEY);
CREATE TABLE three_bare (rowid TEXT, _rowid_ TEXT, oid TEXT);
CREATE TABLE wr (rowid TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
INSERT INTO plain (rowid, v) VALUES (7, 'x');
-- real rowids 10, 20, 30, 40; the rowid column holds duplicates, a NULL and a number-like text
INSERT INTO notes (_rowid_, rowid, body, n) VALUES (30, 'a', 'third', 3), (10, '40', 'first', 1),
                                                   (40, NULL, 'fourth', 4), (20, 'a', 'second', 2);
INSERT INTO two (oid, "RowId", _rowid_, v) VALUES (5, 'r', 99, 'v');
INSERT INTO three_pk VALUES ('x', 'y', 'z', 2), ('x', 'y', 'z', 1);
INSERT INTO three_bare VALUES ('x', 'y', 'z');
INSERT INTO wr VALUES ('b', 2), ('a', 1);
"""


@pytest.fixture
def path(tmp_path):
    return make_source(tmp_path / "rowids.db", SOURCE)


@pytest.fixture
def source(path):
    src = open_source(path)
    yield src
    src.close()


@pytest.mark.parametrize(("table", "alias"), [
    ("plain", "rowid"), ("notes", "_rowid_"), ("two", "oid"), ("gen", None), ("three_pk", None),
    ("three_bare", None), ("wr", None)])
def test_the_rowid_is_read_by_the_name_no_column_has(source, table, alias):
    # case-insensitive like SQLite ("RowId", _ROWID_), a generated column hides its name too, and a
    # WITHOUT ROWID table with a column named rowid has no rowid (SELECT rowid reads that column)
    assert source.rowid_alias(table) == alias
    assert source.has_rowid(table) is (alias is not None)


def test_a_column_named_rowid_is_read_as_a_column_and_rows_by_their_real_rowid(source):
    rows = list(source.iter_rows("notes", ["rowid", "body"]))
    assert rows == [(10, b"40", b"first"), (20, b"a", b"second"), (30, b"a", b"third"), (40, None, b"fourth")]
    # resume after a rowid: the real one, not the text column (whose '40' would compare above any number)
    assert [r[0] for r in source.iter_rows("notes", ["body"], after_rowid=20)] == [30, 40]
    assert [r[:2] for r in source.iter_rows("notes", ["rowid"], order_by=["rowid"])] == [
        (40, None), (10, b"40"), (20, b"a"), (30, b"a")]
    assert source.first_rowid_with("notes", "body", "third") == 30
    assert list(source.select("notes", ["body"], not_null=["rowid"])) == [
        (10, "first"), (20, "second"), (30, "third")]
    assert list(source.iter_rows("two", ["RowId", "_rowid_"])) == [(5, b"r", 99)]


def test_a_table_without_a_reachable_rowid_is_read_in_primary_key_order(source):
    assert source.rowless_key("plain") == [] and source.rowless_key("notes") == []
    assert source.rowless_key("three_pk") == ["k"] and source.rowless_key("wr") == ["rowid"]
    rows = list(source.iter_rows("three_pk", ["rowid", "k"], key=["k"]))
    assert rows == [(1, b"x", 1), (2, b"x", 2)]  # position in key order, the rowid column as a value


def test_no_reachable_rowid_and_no_primary_key_is_a_clear_error(source):
    with pytest.raises(SourceError, match=r"table three_bare declares columns named rowid, _rowid_ and oid.*"
                                          r"no primary key.*rename one of those columns"):
        source.rowless_key("three_bare")
    with pytest.raises(SourceError, match=r"three_bare declares columns named rowid"):
        list(source.iter_rows("three_bare", ["rowid"]))
    assert source.first_rowid_with("three_bare", "oid", "z") is None  # a note's detail: never an error


def _text_target(name, columns):
    """A PostgreSQL table of text columns, named like the source's (a column may be called rowid there)."""
    cols = {c: Column(c, TargetType("text"), None, "", "") for c in columns}
    return TargetTable("public", name, 1, cols, [], [], False)


def _job(source, table, columns):
    target = _text_target(table, columns)
    plan = plan_table(table, {}, source, target, conversion_options({}), {})
    return plan, TableJob(plan, target)


def test_the_validation_names_rows_by_the_same_rowid(path, source):
    plan, job = _job(source, "notes", ["rowid", "body", "n"])
    assert plan.source_columns == ["rowid", "body", "n"] and job.names == ["rowid", "body", "n"]
    assert _source_query(job).startswith('SELECT _rowid_, "rowid", "body", "n" FROM "notes"')
    assert sorted(fingerprint_source(path, job).rowids.tolist()) == [10, 20, 30, 40]
    rows = source_rows_by_rowid(path, job, [30, 10])
    assert {rowid: values[:2] for rowid, values in rows.items()} == {10: ["40", "first"], 30: ["a", "third"]}


def test_a_position_never_takes_a_column_name(path, source):
    assert _position_name(["a", "b"]) == '"_row_position"'
    assert _position_name(["_Row_Position", "__row_position"]) == '"___row_position"'
    _plan, job = _job(source, "wr", ["rowid", "v"])
    assert job.row_id == '"_row_position"' and "AS \"_row_position\"" in _source_query(job)
    assert sorted(fingerprint_source(path, job).rowids.tolist()) == [1, 2]
    assert {pos: values[0] for pos, values in source_rows_by_rowid(path, job, [2]).items()} == {2: "b"}


def test_the_validation_refuses_a_table_with_no_order(source):
    with pytest.raises(SourceError, match=r"three_bare declares columns named rowid"):
        _job(source, "three_bare", ["rowid", "_rowid_", "oid"])
