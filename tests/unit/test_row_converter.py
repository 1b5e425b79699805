"""The row converter (mapping/row_converter.py, a table of closures) on a real SQLite file.

Values are looked up in a per-column cache and floats/ints packed directly, so these pin
down that every way to be empty in a NOT NULL column is still a ConversionError naming
why, in both COPY formats, on the first and on every later occurrence of a value, and
that every field is the one the column's own converter gives.
"""

from __future__ import annotations

import sqlite3
import struct

import pytest
from ansible.module_utils.convert.binary_copy import NULL_BINARY
from ansible.module_utils.convert.text_copy import NULL
from ansible.module_utils.convert.types import ConversionError, Options, TargetType
from ansible.module_utils.core.sqlite_source import open_source
from ansible.module_utils.mapping.plan import build_plan
from ansible.module_utils.mapping.row_converter import explain_row
from ansible.module_utils.mapping.target import Column, TargetTable


def _target():
    types = {
        "ticker": TargetType("text", not_null=True),
        "day": TargetType("date", not_null=True),
        "close": TargetType("float8", "double precision", not_null=True),
        "volume": TargetType("int8", "bigint", not_null=True),
        "note": TargetType("text"),
        "ma": TargetType("float8", "double precision"),
    }
    columns = {name: Column(name, tt, None, False, False) for name, tt in types.items()}
    return TargetTable("public", "prices", 1, columns, [], ["ticker", "day"], False)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE prices (ticker TEXT, day TEXT, close REAL, volume INTEGER, note TEXT, ma REAL)")
    db.executemany("INSERT INTO prices VALUES (?, ?, ?, ?, ?, ?)", [
        ("AAA", "2024-01-05", 10.5, 100, "ok", 1.25),       # 1: clean
        ("AAA", "2024-01-05", 10.5, 100, None, None),       # 2: same cached values again
        ("", "2024-01-08", 1.0, 1, None, None),             # 3: empty ticker (text keeps '')
        ("AAA", "", 1.0, 1, None, None),                    # 4: empty date
        ("AAA", "", 1.0, 1, None, None),                    # 5: empty date again (must not hit a cache)
        ("AAA", None, 1.0, 1, None, None),                  # 6: NULL date
        ("AAA", "2024-01-09", None, 1, None, None),         # 7: NULL float
        ("AAA", "2024-01-09", "", 1, None, None),           # 8: empty text in a REAL column
        ("AAA", "2024-01-09", 2.0, None, None, None),       # 9: NULL bigint
        ("AAA", "2024-01-09", "1,234.5", "7", "", None),    # 10: numbers as text, empty nullable text
    ])
    db.commit()
    db.close()
    src = open_source(str(path))
    yield src
    src.close()


def _plan(source, copy_format):
    return build_plan("prices", {}, source, _target(), Options(copy_format=copy_format))


def _rows(source, plan):
    return list(source.iter_rows("prices", plan.source_columns))


@pytest.mark.parametrize("copy_format", ["binary", "text"])
def test_not_null_columns_reject_every_empty_form(source, copy_format):
    plan = _plan(source, copy_format)
    assert plan.binary is (copy_format == "binary")
    outcome = {}
    for row in _rows(source, plan):
        try:
            plan.convert_row(row)
            outcome[row[0]] = "ok"
        except ConversionError:
            outcome[row[0]] = explain_row(plan, row)
    # an empty string is a value of a text column, not a NULL: kept as it is (lossless)
    assert outcome[1] == outcome[2] == outcome[3] == outcome[10] == "ok"
    assert outcome[4] == outcome[5] == ("day", b"", "empty value in NOT NULL column")
    assert outcome[6] == ("day", None, "NULL in NOT NULL column")
    assert outcome[7] == ("close", None, "NULL in NOT NULL column")
    assert outcome[8][0] == "close"
    assert outcome[9] == ("volume", None, "NULL in NOT NULL column")


def test_binary_fields_of_clean_and_text_numbers(source):
    plan = _plan(source, "binary")
    rows = {row[0]: row for row in _rows(source, plan)}
    first = plan.convert_row(rows[1])
    assert first[2] == struct.pack(">id", 8, 10.5)
    assert first[3] == struct.pack(">iq", 8, 100)
    assert first[5] == struct.pack(">id", 8, 1.25)
    assert plan.convert_row(rows[2])[4:] == [NULL_BINARY, NULL_BINARY]
    tenth = plan.convert_row(rows[10])
    assert tenth[2:4] == [struct.pack(">id", 8, 1234.5), struct.pack(">iq", 8, 7)]
    assert tenth[4] in (NULL_BINARY, struct.pack(">i", 0))  # empty nullable text: per empty_as_null


# every type with a binary form, once NOT NULL and once nullable, and text-only numeric
_TYPES = {"t": "text", "vc": "varchar", "f8": "float8", "f4": "float4", "i2": "int2", "i4": "int4", "i8": "int8",
          "b": "bool", "d": "date", "ts": "timestamp", "tz": "timestamptz", "j": "json", "jb": "jsonb",
          "by": "bytea"}
_VALUES = [b"AAA", b"", None, 1, 0, 1.0, 2.5, 20241001, b"2024-10-01", b"2025-10-17 10:00:00",
           b"2025-10-17T19:00:00+09:00", b"1,234", b"true", b'{"a": 1}', b"a\tb", 2**40, b"\xff", b"a\x00b",
           b"x" * 40, float("inf")]


def _wide_target(numeric):
    types = {}
    for name, base in _TYPES.items():
        length = 3 if base == "varchar" else None
        types[name + "_nn"] = TargetType(base, length=length, not_null=True)
        types[name] = TargetType(base, length=length)
    if numeric:
        types["n"] = TargetType("numeric")
    columns = {name: Column(name, tt, None, False, False) for name, tt in types.items()}
    return TargetTable("public", "wide", 1, columns, [], [], False)


@pytest.fixture
def wide(tmp_path):
    names = [name + suffix for name in _TYPES for suffix in ("_nn", "")]
    path = tmp_path / "wide.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE wide (%s, n)" % ", ".join(names))
    for value in _VALUES * 2:  # twice: the second time from the caches
        db.execute("INSERT INTO wide VALUES (%s)" % ", ".join("?" * (len(names) + 1)), [value] * (len(names) + 1))
    db.commit()
    db.close()
    src = open_source(str(path))
    yield src
    src.close()


def _expected(plan, row):
    """Column by column with the plan's own converters: the fields, or the explain_row of the failure."""
    null = NULL_BINARY if plan.binary else NULL
    fields = []
    for pc in plan.columns:
        value = row[pc.index]
        try:
            out = None if value is None else pc.converter(value)
        except Exception:
            return explain_row(plan, row)
        if out is None or out is NULL_BINARY:
            if pc.not_null:
                return explain_row(plan, row)
            out = null
        fields.append(out)
    return fields


@pytest.mark.parametrize("numeric", [False, True], ids=["binary", "text"])
def test_every_field_is_the_column_converters(wide, numeric):
    """Same fields as each column's converter for every type and value, NULL as the format's
    NULL, and a row that fails is explained the same way on every occurrence."""
    plan = build_plan("wide", {}, wide, _wide_target(numeric), Options())
    assert plan.binary is not numeric
    outcomes = []
    for row in wide.iter_rows("wide", plan.source_columns):
        try:
            got = plan.convert_row(row)
        except Exception:
            got = explain_row(plan, row)
        assert got == _expected(plan, row), row
        outcomes.append(got)
    half = len(outcomes) // 2
    assert outcomes[:half] == outcomes[half:]
    assert any(isinstance(o, list) for o in outcomes) and any(isinstance(o, tuple) for o in outcomes)


def test_nullable_columns_give_the_null_field(wide):
    for copy_format, null in (("auto", NULL_BINARY), ("text", NULL)):
        target = _wide_target(False)
        for name in list(target.columns):
            if name.endswith("_nn"):
                del target.columns[name]
        plan = build_plan("wide", {"drop": [n + "_nn" for n in _TYPES]}, wide, target, Options(copy_format=copy_format))
        row = next(r for r in wide.iter_rows("wide", plan.source_columns) if r[1] is None)
        assert plan.convert_row(row) == [null] * len(plan.columns)
