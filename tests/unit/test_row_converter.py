"""The generated row converter (migration_mapping.compile_row_converter) on a real SQLite file.

NOT NULL handling moved off the common path (a cache hit or a directly packed
float skips the checks), so these pin down that every way to be empty in a
NOT NULL column is still a ConversionError naming why, in both COPY formats,
on the first and on every later occurrence of a value.
"""

from __future__ import annotations

import sqlite3
import struct

import pytest
from ansible.module_utils.convert.values import NULL_BINARY, ConversionError, Options, TargetType
from ansible.module_utils.core.sqlite_source import open_source
from ansible.module_utils.mapping.plan import build_plan, explain_row
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
