"""WITHOUT ROWID tables and views in the SQLite source (module_utils/core/sqlite_source.py, issue 20 item 6)."""

from __future__ import annotations

import sqlite3

import pytest
from ansible.module_utils.core.sqlite_source import open_source


@pytest.fixture
def source(tmp_path):
    path = str(tmp_path / "rowless.db")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE "Pairs" (b INTEGER, a TEXT, v REAL, PRIMARY KEY (a, b)) WITHOUT ROWID;
        INSERT INTO "Pairs" VALUES (2, 'y', 0.5), (1, 'y', 1.5), (3, 'x', 2.5), (1, 'x', 3.5), (2, 'x', 4.5);
        CREATE TABLE plain (id INTEGER PRIMARY KEY, t TEXT);
        INSERT INTO plain VALUES (5, 'e'), (2, 'b');
        CREATE VIEW pair_totals AS SELECT a, sum(v) FROM "Pairs" GROUP BY a;
    """)
    db.commit()
    db.close()
    src = open_source(path)
    yield src
    src.close()


def test_primary_key_in_key_order(source):
    assert source.primary_key("Pairs") == ["a", "b"]
    assert source.primary_key("plain") == ["id"]


def test_views_are_listed_apart_from_tables(source):
    assert source.views() == ["pair_totals"]
    assert "pair_totals" not in source.tables()
    assert not source.has_rowid("Pairs") and source.has_rowid("plain")


def test_rowless_rows_come_in_key_order_numbered_by_position(source):
    rows = list(source.iter_rows("Pairs", ["a", "b", "v"], key=["a", "b"], page=2))
    assert rows == [(1, b"x", 1, 3.5), (2, b"x", 2, 4.5), (3, b"x", 3, 2.5), (4, b"y", 1, 1.5), (5, b"y", 2, 0.5)]


def test_rowless_resume_skips_the_processed_positions(source):
    rows = list(source.iter_rows("Pairs", ["v"], key=["a", "b"], skip=3, page=1))
    assert rows == [(4, 1.5), (5, 0.5)]


def test_rowless_order_by_comes_first_then_the_key(source):
    rows = list(source.iter_rows("Pairs", ["a", "b"], order_by=["b"], key=["a", "b"]))
    assert [r[1:] for r in rows] == [(b"x", 1), (b"y", 1), (b"x", 2), (b"y", 2), (b"x", 3)]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]


def test_rowid_tables_keep_their_rowid(source):
    assert list(source.iter_rows("plain", ["t"])) == [(2, b"b"), (5, b"e")]
