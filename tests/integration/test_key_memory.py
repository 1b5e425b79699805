"""Bounded key memory (issue 20, item 5) on a real cluster: what Python forgets, the target's unique
index finds, with the same outcome.

One SQLite table with a nullable two-column key: duplicates inside a batch, duplicates many batches
apart, a key repeated three times far apart, and rows with NULL in the key. It is migrated with the
default KEY_MEMORY (every key of this small table remembered) and with KEY_MEMORY = 2 (only the last
batch or so), for error, skip and update, into a plain UNIQUE and a UNIQUE NULLS NOT DISTINCT target,
in rowid order and in another order (order_by a non-key column): the target rows and the copied /
rejected / duplicate counts must be equal, and equal to what the rules say (the row streamed first
kept for error and skip, the highest rowid for update, NULL distinct unless NULLS NOT DISTINCT).
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager

import pytest
from ansible.module_utils.migrate import copy_engine
from ansible.module_utils.migrate.runner import run_migration

pytestmark = pytest.mark.integration

BATCH = 4


def _rows():
    """(code, grp, note) by rowid 1..; the repeats are chosen by their rowid distance."""
    rows = [("k%d" % i, i % 3, "row %d" % i) for i in range(1, 61)]
    for later, earlier in ((3, 2), (9, 6), (30, 5), (45, 5), (58, 5), (50, 49), (52, 12), (60, 1)):
        rows[later - 1] = (rows[earlier - 1][0], rows[earlier - 1][1], "row %d" % later)
    for rowid in (7, 31, 55):  # NULL in the key, same code: distinct unless NULLS NOT DISTINCT
        rows[rowid - 1] = ("nk", None, "row %d" % rowid)
    return rows


ROWS = _rows()


def _expected(on_conflict, nnd, order_by):
    """The target rows the rules give: error and skip keep the row streamed first, update the highest rowid."""
    out, seen = {}, set()
    stream = list(enumerate(ROWS, 1))
    if order_by and on_conflict != "update":
        stream.sort(key=lambda entry: (entry[1][2], entry[0]))  # ORDER BY note, rowid
    for rowid, (code, grp, note) in stream:
        key = (code, grp)
        if grp is None and not nnd:
            key = (code, grp, rowid)
        if key in seen and on_conflict != "update":
            continue
        seen.add(key)
        out[key] = note
    return sorted(out.values())


@contextmanager
def _database(pg_server, nnd):
    name = "t_" + uuid.uuid4().hex[:10]
    admin = pg_server.connect()
    admin.cursor().execute('CREATE DATABASE "%s"' % name)
    conn = pg_server.connect(name)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE items (code text NOT NULL, grp integer, note text, CONSTRAINT items_key UNIQUE %s"
                        "(code, grp))" % ("NULLS NOT DISTINCT " if nnd else ""))
        yield name, conn
    finally:
        conn.close()
        admin.cursor().execute('DROP DATABASE "%s"' % name)
        admin.close()


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("keymem") / "items.db")
    lite = sqlite3.connect(path)
    lite.execute("CREATE TABLE items (code TEXT, grp INTEGER, note TEXT)")
    lite.executemany("INSERT INTO items VALUES (?, ?, ?)", ROWS)
    lite.commit()
    lite.close()
    return path


def _migrate(pg_server, src, on_conflict, nnd, order_by=None):
    """(table result, target notes, {kind: rowids recorded})."""
    spec = {"keys": ["code", "grp"]}
    if order_by:
        spec["order_by"] = order_by
    with _database(pg_server, nnd) as (db, conn):
        params = pg_server.params(db, src=src, mapping={"items": spec}, on_conflict=on_conflict,
                                  batch_rows=BATCH, max_reject_ratio=1, resume=False)
        res = run_migration(params)["tables"]["items"]
        with conn.cursor() as cur:
            cur.execute("SELECT note FROM items ORDER BY note")
            notes = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT kind, source_rowid FROM quant_meta.migration_rejects ORDER BY 2")
            recorded = {}
            for kind, rowid in cur.fetchall():
                recorded.setdefault(kind, []).append(rowid)
    return res, notes, recorded


def _counts(res):
    return res["copied_rows"], res["rejected_rows"], res["duplicate_rows"]


@pytest.mark.parametrize("order_by", [None, ["note"]], ids=["rowid-order", "order-by-note"])
@pytest.mark.parametrize("nnd", [False, True], ids=["unique", "nulls-not-distinct"])
@pytest.mark.parametrize("on_conflict", ["error", "skip", "update"])
def test_a_tiny_key_memory_gives_the_same_rows_and_counts(pg_server, src, monkeypatch, on_conflict, nnd, order_by):
    exact = _migrate(pg_server, src, on_conflict, nnd, order_by)
    monkeypatch.setattr(copy_engine, "KEY_MEMORY", 2)
    bounded = _migrate(pg_server, src, on_conflict, nnd, order_by)
    expected = _expected(on_conflict, nnd, order_by)
    assert exact[1] == bounded[1] == expected
    assert _counts(exact[0]) == _counts(bounded[0])
    copied, rejected, duplicates = _counts(exact[0])
    assert copied == len(expected) and copied + rejected + duplicates == len(ROWS)
    assert (rejected > 0) == (on_conflict == "error") and (duplicates > 0) == (on_conflict != "error")
    assert {k: len(v) for k, v in exact[2].items()} == {k: len(v) for k, v in bounded[2].items()}
    if on_conflict != "update":
        # the later row is the one refused, whoever finds it (update records the superseded row in
        # Python, the superseding one when the index finds it)
        assert exact[2] == bounded[2]
    assert not any("KEY_MEMORY" in n or "looked up in Python" in n for n in exact[0]["notes"])
    note = [n for n in bounded[0]["notes"] if "looked up in Python" in n]
    if order_by and on_conflict == "update":
        assert note == []  # the highest rowid must win in any stream order: every key kept
        return
    assert len(note) == 1 and "unique index items_key" in note[0]
    assert "already exists in public.items" in note[0]


def test_the_index_finds_a_forgotten_duplicate_with_its_message(pg_server, src, monkeypatch):
    monkeypatch.setattr(copy_engine, "KEY_MEMORY", 2)
    with _database(pg_server, False) as (db, conn):
        params = pg_server.params(db, src=src, mapping={"items": {"keys": ["code", "grp"]}}, on_conflict="skip",
                                  batch_rows=BATCH, max_reject_ratio=1, resume=False)
        run_migration(params)
        with conn.cursor() as cur:
            cur.execute("SELECT source_rowid, reason FROM quant_meta.migration_rejects ORDER BY 1")
            reasons = dict(cur.fetchall())
    assert reasons[3] == "duplicate key, source rowid 2 kept (on_conflict=skip)"  # same batch: Python
    assert reasons[9] == "duplicate key, source rowid 6 kept (on_conflict=skip)"  # the batch before: Python
    assert reasons[60] == "duplicate: key (code, grp) already exists in public.items (on_conflict=skip)"
