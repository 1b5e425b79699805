"""The bounded key memory of RowFeeder (issue 20, item 5), without a server.

A table keeps at most KEY_MEMORY keys of earlier batches (two generations) once the target's
unique index backs it; update in an order other than rowid's, check mode (no index) and group
mode keep what they kept before. What the target's index then
finds is proven on a real cluster in tests/integration/test_key_memory.py.
"""

from __future__ import annotations

import sqlite3

import pytest
from ansible.module_utils.convert.types import Options, TargetType
from ansible.module_utils.core.sqlite_source import open_source
from ansible.module_utils.mapping.plan import build_plan
from ansible.module_utils.mapping.target import Column, TargetTable, UniqueKey
from ansible.module_utils.migrate import copy_engine
from ansible.module_utils.migrate.copy_engine import Batch, RowFeeder, check_batch, drain
from ansible.module_utils.migrate.key_spill import KeySpill

KEY = UniqueKey("items_key", ["code", "grp"], False, False)
N = 40


def _target():
    types = {"code": TargetType("text", not_null=True), "grp": TargetType("int8", "bigint"),
             "note": TargetType("text")}
    columns = {name: Column(name, tt, None, "", "") for name, tt in types.items()}
    return TargetTable("public", "items", 1, columns, [KEY], None, False)


@pytest.fixture
def source(tmp_path):
    """N rows; row i repeats the key of row i - 20 when i % 10 == 0 (a duplicate two batches of 10 back)."""
    path = tmp_path / "src.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE items (code TEXT, grp INTEGER, note TEXT)")
    for i in range(1, N + 1):
        key = i - 20 if i % 10 == 0 and i > 20 else i
        db.execute("INSERT INTO items (rowid, code, grp, note) VALUES (?, ?, ?, ?)", (i, "k%d" % key, 1, "row %d" % i))
    db.commit()
    db.close()
    src = open_source(str(path))
    yield src
    src.close()


def _feeder(source, spec, on_conflict="skip"):
    plan = build_plan("items", dict({"keys": ["code", "grp"]}, **spec), source, _target(), Options())
    rows = source.iter_rows("items", plan.source_columns, plan.order_by)
    return plan, RowFeeder(plan, rows, on_conflict)


def _stream(feeder, index, batch_rows=10):
    """Every batch like TableWriter (index given) or check mode (None); returns (rowids kept, duplicates,
    the largest number of keys remembered between batches)."""
    kept, duplicates, most = [], 0, 0
    while not feeder.exhausted:
        batch = Batch()
        drain(feeder.fill(batch, batch_rows))
        feeder.commit_keys(batch, index)
        kept += batch.rowids
        duplicates += batch.duplicates
        most = max(most, len(feeder.old_keys) + len(feeder.older_keys))
    return kept, duplicates, most


def test_without_a_bound_every_duplicate_is_found_in_python(source):
    plan, feeder = _feeder(source, {})
    kept, duplicates, most = _stream(feeder, KEY)
    assert duplicates == 2 and 30 not in kept and 40 not in kept
    assert most == N - 2 and feeder.forgot == 0
    assert plan.notes == []


def test_bounded_memory_forgets_old_keys_and_says_so_once(source, monkeypatch):
    monkeypatch.setattr(copy_engine, "KEY_MEMORY", 20)
    plan, feeder = _feeder(source, {})
    kept, duplicates, most = _stream(feeder, KEY)
    # two generations of 10: the keys of rows 10 and 20 are forgotten when rows 30 and 40 repeat
    # them, so those rows go to PostgreSQL, whose unique index decides
    assert duplicates == 0 and kept == list(range(1, N + 1))
    assert most <= 20
    assert feeder.forgot == 30  # rows 1-30: all but the last generation
    assert len(plan.notes) == 1
    assert plan.notes[0] == (
        'table items: more than 20 keys, so duplicates are looked up in Python among the last 10 keys at least; '
        'a duplicate of an older row is found by the target\'s unique index items_key and recorded as '
        '"key (code, grp) already exists in public.items", with the same outcome (on_conflict=skip)')


def test_a_duplicate_within_the_window_is_still_found_in_python(source, monkeypatch):
    monkeypatch.setattr(copy_engine, "KEY_MEMORY", 40)  # two generations of 20: rows 10, 20 remembered
    _plan, feeder = _feeder(source, {})
    kept, duplicates, _most = _stream(feeder, KEY)
    assert duplicates == 2 and 30 not in kept and 40 not in kept


@pytest.mark.parametrize("on_conflict", ["skip", "update"])
def test_check_mode_and_other_orders_spill_older_keys_to_disk(source, monkeypatch, on_conflict):
    monkeypatch.setattr(copy_engine, "KEY_MEMORY", 2)
    # check mode: no index would find what Python forgot, so the older keys go to disk and every
    # duplicate is still found, with the rowid it repeats
    plan, feeder = _feeder(source, {}, on_conflict)
    kept, duplicates, most = _stream(feeder, None)
    assert duplicates == 2 and 30 not in kept and 40 not in kept and most <= 10  # one batch of 10
    assert feeder.forgot == 0 and feeder.spill.count >= 20
    assert len(plan.notes) == 1 and "check mode has no target index" in plan.notes[0]
    feeder.close()
    _plan, feeder = _feeder(source, {}, on_conflict)
    while check_batch(feeder, 10) is not None and not feeder.exhausted:
        pass
    assert feeder.forgot == 0 and feeder.spill is not None
    # order_by not part of the key: update must know which row has the higher rowid, so its older
    # keys go to disk too; skip keeps the row streamed first, as the target's index does, so it forgets
    plan, feeder = _feeder(source, {"order_by": ["note"]}, on_conflict)
    _kept, duplicates, most = _stream(feeder, KEY)
    if on_conflict == "update":
        assert duplicates == 2 and most <= 10 and feeder.forgot == 0 and feeder.spill is not None
        assert len(plan.notes) == 1 and "which row is later" in plan.notes[0]
    else:
        assert most <= 10 and feeder.forgot > 0 and feeder.spill is None and len(plan.notes) == 1


def test_a_tiny_bound_keeps_in_batch_duplicates_and_nothing_older(source, monkeypatch):
    monkeypatch.setattr(copy_engine, "KEY_MEMORY", 0)  # forget at every batch
    _plan, feeder = _feeder(source, {})
    _kept, duplicates, most = _stream(feeder, KEY, batch_rows=40)  # one batch: all in-batch
    assert duplicates == 2 and most == N - 2


def test_the_spill_keeps_the_newest_rowid_per_key():
    spill = KeySpill()
    try:
        spill.add({("a", None): 1, (b"\x00b", "c"): 2})
        spill.add({("a", None): 7})
        assert spill.get(("a", None)) == 7 and (b"\x00b", "c") in spill
        assert ("a", "None") not in spill and spill.get(("x",)) is None
    finally:
        spill.close()
