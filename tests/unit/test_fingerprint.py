"""Fingerprint normalization: both sides reach the same canonical value and the same hashes."""

from __future__ import annotations

import datetime
from decimal import Decimal

import numpy as np
import pytest
from ansible.module_utils.convert.text_copy import make_converter
from ansible.module_utils.convert.types import TargetType
from ansible.module_utils.core.fingerprint import (
    NULL_ATOM,
    TableFingerprint,
    atom,
    canonical_text,
    cell_hash_np,
    cell_hash_py,
    compare_fingerprints,
    encode_by_unique,
    encode_numbers,
    from_copy_text,
    from_pg,
    key_hash_np,
    key_hash_py,
    keyed_differences,
    kind_of,
    mix64,
    mix64_np,
)

UTC = datetime.timezone.utc


def source_side(raw, base):
    """SQLite value -> the migration's converter -> canonical (what the validator does)."""
    text = make_converter(TargetType(base))(raw)
    return from_copy_text(text, kind_of(base))


@pytest.mark.parametrize(("raw", "base", "pg", "text"), [
    (1.5, "float8", 1.5, "1.5"),
    (100, "float8", 100.0, "100.0"),
    (-0.0, "float8", 0.0, "0.0"),
    (b"1,234.5", "float8", 1234.5, "1234.5"),
    (0.1 + 0.2, "float8", 0.30000000000000004, "0.30000000000000004"),
    (42, "int8", 42, "42"),
    (42.0, "int8", 42, "42"),
    (b"2025-10-17", "date", datetime.date(2025, 10, 17), "2025-10-17"),
    (20251017, "date", datetime.date(2025, 10, 17), "2025-10-17"),
    (b"2025-10-17T10:00:00.123456", "timestamptz",
     datetime.datetime(2025, 10, 17, 19, 0, 0, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=9))),
     "2025-10-17T10:00:00.123456+00:00"),
    (b"2025-10-17 10:00:00", "timestamptz", datetime.datetime(2025, 10, 17, 10, tzinfo=UTC),
     "2025-10-17T10:00:00+00:00"),
    (1, "bool", True, "t"),
    (b"no", "bool", False, "f"),
    (b"tab\there", "text", "tab\there", "tab\there"),
    (b"back\\slash", "text", "back\\slash", "back\\slash"),
    (5930, "text", "5930", "5930"),
    (b'{"b": 1, "a": [1, 2]}', "jsonb", {"a": [1, 2], "b": 1}, '{"a":[1,2],"b":1}'),
    (1.25, "numeric", Decimal("1.2500"), "1.25"),
])
def test_both_sides_normalize_alike(raw, base, pg, text):
    kind = kind_of(base)
    src = source_side(raw, base)
    dst = from_pg(pg, kind)
    assert canonical_text(src, kind) == canonical_text(dst, kind) == text
    assert atom(src, kind) == atom(dst, kind)


def test_null_and_distinct_values():
    assert canonical_text(None, "float") == "\\N"
    assert atom(None, "int") == NULL_ATOM
    assert atom(1.0, "float") != atom(1.0000000000000002, "float")
    assert atom("a", "text") != atom("b", "text")
    assert from_copy_text("\\N", "text") is None


def test_numpy_mix_matches_reference():
    xs = [0, 1, 2**63, 2**64 - 1, 123456789]
    got = mix64_np(np.array(xs, dtype=np.uint64))
    assert [int(v) for v in got] == [mix64(x) for x in xs]
    keys = [np.array([atom("005930", "text")], dtype=np.uint64), np.array([atom("KR", "text")], dtype=np.uint64)]
    kh = key_hash_np(keys, 1)
    assert int(kh[0]) == key_hash_py([atom("005930", "text"), atom("KR", "text")])
    v = np.array([atom(1.5, "float")], dtype=np.uint64)
    assert int(cell_hash_np(kh, v)[0]) == cell_hash_py(int(kh[0]), atom(1.5, "float"))


def test_numbers_fast_path_equals_generic_path():
    values = (1.5, None, -0.0, 3.0, 2)
    atoms, null, _ = encode_numbers(values, "float")
    slow, slow_null, _canon, _codes = encode_by_unique(values, lambda v: from_pg(v, "float"), "float")
    assert list(null) == [False, True, False, False, False]
    assert list(atoms) == list(slow) and list(null) == list(slow_null)
    ints = (1, None, 2.0, -5)
    atoms, null, _ = encode_numbers(ints, "int")
    assert [int(a) for a, n in zip(atoms, null) if not n] == [1, 2, (-5) & (2**64 - 1)]
    assert encode_numbers((1.5, 2), "int") is None  # 1.5 is not an integer: generic path decides
    assert encode_numbers((b"x", 2.0), "float") is None


def _fp(rows, name="t"):
    fp = TableFingerprint(name, ["k", "v"], ["text", "float"], ["k"])
    cols = list(zip(*rows))
    enc = []
    for values, kind in zip(cols, ["text", "float"]):
        fast = encode_numbers(values, kind)
        if fast:
            enc.append((*fast, None, None))
        else:
            a, n, c, codes = encode_by_unique(values, lambda v, k=kind: from_pg(v, k), kind)
            enc.append((a, n, None, c, codes))
    fp.add_chunk(enc)
    return fp.finish()


def test_order_independent_and_swap_sensitive():
    rows = [("a", 1.0), ("b", 2.0), ("c", None)]
    same = _fp(rows)
    shuffled = _fp(list(reversed(rows)))
    assert compare_fingerprints(same, shuffled) == []
    swapped = _fp([("a", 2.0), ("b", 1.0), ("c", None)])
    diffs = compare_fingerprints(same, swapped)
    assert [d[:2] for d in diffs] == [("v", "hash")]  # same multiset, sum, min, max: only the hash sees it
    keyed = keyed_differences(same, swapped)
    assert len(keyed["changed"]) == 2 and not len(keyed["missing"]) and not len(keyed["extra"])


def test_keyed_differences_missing_extra_duplicated():
    src = _fp([("a", 1.0), ("b", 2.0), ("c", 3.0)])
    dst = _fp([("a", 1.0), ("c", 3.0), ("d", 4.0), ("a", 1.0)])
    keyed = keyed_differences(src, dst)
    assert {k: len(v) for k, v in keyed.items()} == {"missing": 1, "extra": 1, "changed": 0, "duplicated": 1}
    stats = dict((d[0], d) for d in compare_fingerprints(src, dst) if d[1] == "rows")
    assert stats["*"][2:] == (3, 4)
