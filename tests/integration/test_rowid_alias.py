"""A SQLite column named rowid (or _rowid_, oid) against a real PostgreSQL (issue 20): in SQL that name
then reads the column (text, NULL, repeated), so the migration and the validation reach the real rowid
by the name no column has (sqlite_source.rowid_alias). The column itself is migrated and compared like
any other; a table declaring all three names is read in primary-key order, and refused without one."""

from __future__ import annotations

import random
import sqlite3

import pytest
from ansible.module_utils.migrate.runner import MigrationError, run_migration
from ansible.module_utils.validate.runner import run as run_validation
from integration.test_any_sqlite_files import make_source, params, pg_exec, pg_rows

pytestmark = pytest.mark.integration

ROWS = 300
BAD_TEXT = 50  # every 50th row holds text in its INTEGER column n: a conversion reject
BAD_CHECK = 37  # every 37th row breaks the target's CHECK: a constraint reject (found by the staging path)

NOTES_SOURCE = "CREATE TABLE notes (rowid TEXT, body TEXT NOT NULL, n INTEGER);"
NOTES_TARGET = "CREATE TABLE notes (rowid text, body text PRIMARY KEY, n integer CHECK (n %% %d <> 0));" % BAD_CHECK


def _note(i):
    """Row i (real rowid 10 * i): its rowid column repeats, is NULL or looks like another row's rowid."""
    rowid_col = None if i % 11 == 0 else str(10 * (ROWS - i)) if i % 5 == 0 else "r%d" % (i % 7)
    return 10 * i, rowid_col, "note %03d" % i, "bad" if i % BAD_TEXT == 0 else i


def _rejected(i):
    return i % BAD_TEXT == 0 or i % BAD_CHECK == 0


@pytest.fixture
def notes(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "notes.db", NOTES_SOURCE)
    rows = [_note(i) for i in range(1, ROWS + 1)]
    random.Random(20).shuffle(rows)  # inserted out of order: rowid order is not insertion order

    db = sqlite3.connect(src)
    db.executemany("INSERT INTO notes (_rowid_, rowid, body, n) VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    pg_exec(pg_server, pg_db, NOTES_TARGET)
    return src


def _migrate(pg_server, pg_db, src, **extra):
    return run_migration(params(pg_server, pg_db, src, batch_rows=40, max_reject_ratio=0.1, **extra))


def _expected_rows():
    """(rowid column, body, n) of the rows PostgreSQL must hold, in body order."""
    return [(rowid_col, body, n) for _r, rowid_col, body, n in map(_note, range(1, ROWS + 1))
            if not _rejected(int(body[5:]))]


def _recorded_rejects(pg_server, pg_db):
    return [r for (r,) in pg_rows(pg_server, pg_db, "SELECT source_rowid FROM quant_meta.migration_rejects "
                                                    "WHERE table_name = 'notes' ORDER BY 1")]


def _validate(pg_server, pg_db, src, mapping, **extra):
    base = pg_server.params(pg_db, src=src, mapping=mapping, checks=["reconciliation", "content", "integrity"],
                            severity_overrides={}, quality_severity="warning", max_differences=10, legacy_schema="")
    result = run_validation(dict(base, **extra))
    return result, {c["name"]: c for c in result["checks"]}


def test_a_column_named_rowid_migrates_and_rejects_name_the_real_rowid(pg_server, pg_db, notes):
    res = _migrate(pg_server, pg_db, notes)["tables"]["notes"]
    rejected = [10 * i for i in range(1, ROWS + 1) if _rejected(i)]
    assert (res["source_rows"], res["copied_rows"], res["rejected_rows"]) == (ROWS, ROWS - len(rejected),
                                                                            len(rejected)), res
    assert _recorded_rejects(pg_server, pg_db) == rejected
    assert {r["source_rowid"] for r in res["rejects_sample"]} <= set(rejected)
    assert pg_rows(pg_server, pg_db, "SELECT rowid, body, n FROM notes ORDER BY body") == _expected_rows()


def test_an_interrupted_load_resumes_after_the_real_rowid(pg_server, pg_db, notes):
    _migrate(pg_server, pg_db, notes)
    cut = 150  # what a run killed after row 150 (real rowid 1500) leaves: its batches and a running checkpoint
    before = [i for i in range(1, cut + 1) if _rejected(i)]
    pg_exec(pg_server, pg_db, """
        DELETE FROM notes WHERE substring(body from 6)::int > {cut};
        DELETE FROM quant_meta.migration_rejects WHERE table_name = 'notes' AND source_rowid > {rowid};
        UPDATE quant_meta.migration_checkpoints SET status = 'running', last_rowid = {rowid},
               copied_rows = {copied}, rejected_rows = {rejected} WHERE table_name = 'notes';
    """.format(cut=cut, rowid=10 * cut, copied=cut - len(before), rejected=len(before)))
    with pytest.raises(MigrationError, match=r"interrupted load.*resume: true"):
        _migrate(pg_server, pg_db, notes)
    res = _migrate(pg_server, pg_db, notes, resume=True)["tables"]["notes"]
    rejected = [10 * i for i in range(1, ROWS + 1) if _rejected(i)]
    assert res["status"] == "resumed", res
    assert (res["copied_rows"], res["rejected_rows"], res["duplicate_rows"]) == (ROWS - len(rejected),
                                                                               len(rejected), 0), res
    assert _recorded_rejects(pg_server, pg_db) == rejected
    assert pg_rows(pg_server, pg_db, "SELECT rowid, body, n FROM notes ORDER BY body") == _expected_rows()


def test_the_validation_compares_the_rowid_column_and_names_rows_by_real_rowid(pg_server, pg_db, notes):
    _migrate(pg_server, pg_db, notes)
    result, checks = _validate(pg_server, pg_db, notes, {"notes": {}})
    assert result["summary"]["critical_failures"] == 0, [c for c in result["checks"] if c["status"] == "fail"]
    kept = ROWS - len([i for i in range(1, ROWS + 1) if _rejected(i)])
    assert checks["content notes"]["detail"].startswith("%d rows x 3 columns identical" % kept), checks
    assert checks["row accounting notes"]["status"] == "pass", checks["row accounting notes"]

    pg_exec(pg_server, pg_db, "UPDATE notes SET rowid = 'changed' WHERE body = 'note 002'")
    _result, checks = _validate(pg_server, pg_db, notes, {"notes": {}})
    content = checks["content notes"]
    assert content["status"] == "fail", content
    assert "body=note 002 differs in rowid (SQLite r2, PostgreSQL changed)" in content["detail"], content


TRIPLE_SOURCE = """
CREATE TABLE triple (rowid TEXT, _rowid_ TEXT, oid INTEGER, k TEXT PRIMARY KEY);
INSERT INTO triple VALUES ('x', 'y', 1, 'c'), (NULL, 'y', 1, 'a'), ('x', NULL, NULL, 'b');
CREATE TABLE bare (rowid TEXT, _rowid_ TEXT, oid INTEGER);
INSERT INTO bare VALUES ('x', 'y', 1);
"""
TRIPLE_TARGET = """
CREATE TABLE triple (rowid text, _rowid_ text, oid integer, k text PRIMARY KEY);
CREATE TABLE bare (rowid text, _rowid_ text, oid integer);
"""


def test_a_table_declaring_rowid_oid_and__rowid__is_read_in_key_order(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "triple.db", TRIPLE_SOURCE)
    pg_exec(pg_server, pg_db, TRIPLE_TARGET)
    res = run_migration(params(pg_server, pg_db, src, mapping={"triple": {}}))["tables"]["triple"]
    assert (res["copied_rows"], res["rejected_rows"]) == (3, 0), res
    assert any("primary-key order (k)" in note for note in res["notes"]), res["notes"]
    assert pg_rows(pg_server, pg_db, "SELECT k, rowid, _rowid_, oid FROM triple ORDER BY k") == [
        ("a", None, "y", 1), ("b", "x", None, None), ("c", "x", "y", 1)]
    result, checks = _validate(pg_server, pg_db, src, {"triple": {}})
    assert result["summary"]["critical_failures"] == 0, [c for c in result["checks"] if c["status"] == "fail"]
    assert checks["content triple"]["detail"].startswith("3 rows x 4 columns identical"), checks["content triple"]

    pg_exec(pg_server, pg_db, "UPDATE triple SET oid = 7 WHERE k = 'b'")
    _result, checks = _validate(pg_server, pg_db, src, {"triple": {}})
    assert checks["content triple"]["status"] == "fail"
    assert "k=b differs in oid (SQLite \\N, PostgreSQL 7)" in checks["content triple"]["detail"], checks


def test_without_a_primary_key_either_both_modules_say_what_to_do(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "triple.db", TRIPLE_SOURCE)
    pg_exec(pg_server, pg_db, TRIPLE_TARGET)
    with pytest.raises(MigrationError, match=r"table bare declares columns named rowid, _rowid_ and oid.*no "
                                             r"primary key.*rename one of those columns"):
        run_migration(params(pg_server, pg_db, src, mapping={"bare": {}}))
    _result, checks = _validate(pg_server, pg_db, src, {"bare": {}})
    mapping = checks["mapping bare"]
    assert (mapping["status"], mapping["severity"]) == ("fail", "critical"), mapping
    assert "declares columns named rowid, _rowid_ and oid" in mapping["detail"], mapping


LEGACY_SOURCE = """
CREATE TABLE tickers (ticker TEXT PRIMARY KEY);
CREATE TABLE cache (rowid TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
INSERT INTO cache VALUES ('b', 2), ('a', 1), ('c', NULL);
CREATE TABLE log (rowid TEXT, msg TEXT);
INSERT INTO log (_rowid_, rowid, msg) VALUES (5, 'x', 'five'), (3, 'x', 'three'), (9, NULL, 'nine');
"""


def test_legacy_tables_with_a_rowid_column_are_created_copied_and_compared(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "legacy.db", LEGACY_SOURCE)
    pg_exec(pg_server, pg_db, "CREATE TABLE tickers (ticker text PRIMARY KEY);")
    result = run_migration(params(pg_server, pg_db, src, mapping={"tickers": {}}, legacy_schema="sqlite_legacy"))
    assert {t: result["tables"][t]["copied_rows"] for t in ("cache", "log")} == {"cache": 3, "log": 3}
    assert pg_rows(pg_server, pg_db, "SELECT rowid, v FROM sqlite_legacy.cache ORDER BY rowid") == [
        ("a", 1), ("b", 2), ("c", None)]
    assert pg_rows(pg_server, pg_db, "SELECT rowid, msg FROM sqlite_legacy.log ORDER BY msg") == [
        ("x", "five"), (None, "nine"), ("x", "three")]
    report, checks = _validate(pg_server, pg_db, src, {"tickers": {}}, legacy_schema="sqlite_legacy")
    assert report["summary"]["critical_failures"] == 0, [c for c in report["checks"] if c["status"] == "fail"]
    assert checks["content cache"]["detail"].startswith("3 rows x 2 columns identical"), checks["content cache"]
    assert checks["content log"]["detail"].startswith("3 rows x 2 columns identical"), checks["content log"]

    pg_exec(pg_server, pg_db, "UPDATE sqlite_legacy.log SET msg = 'changed' WHERE msg = 'five'")
    _report, checks = _validate(pg_server, pg_db, src, {"tickers": {}}, legacy_schema="sqlite_legacy")
    assert checks["content log"]["status"] == "fail", checks["content log"]
    assert "SQLite rowid 5" in str(checks["content log"]), checks["content log"]
