"""Explicit precision choices (issue 20, item 7): float4_rounding, and the epoch reading noted once per column."""

from __future__ import annotations

import datetime
import struct

import pytest
from ansible.module_utils.convert.binary_copy import make_binary_converter
from ansible.module_utils.convert.text_copy import make_converter
from ansible.module_utils.convert.types import ConversionError, Options, TargetType
from ansible.module_utils.mapping.plan import PlanColumn, TablePlan, epoch_note, epoch_readings, float4_notes
from copy_types import DATE, TS, TSTZ

REAL = TargetType("float4", "real")
ACCEPT = Options(float4_rounding="accept")


@pytest.mark.parametrize("make", [make_converter, make_binary_converter])
@pytest.mark.parametrize("value", [9.99, b"9.99", 16777217, 0.1])
def test_float4_rounding_is_a_reject_by_default(make, value):
    with pytest.raises(ConversionError) as info:
        make(REAL)(value)
    assert "cannot be stored exactly in real" in str(info.value) and "float4_rounding: accept" in str(info.value)


@pytest.mark.parametrize("value", [0.5, 1.25, -3.0, 16777216, float("inf"), float("nan"), b" 2.5 "])
def test_exact_float4_values_pass_by_default(value):
    assert make_converter(REAL)(value) is not None
    assert make_binary_converter(REAL)(value) is not None


def test_accept_stores_the_float4_rounding():
    assert make_converter(REAL, ACCEPT)(9.99) == "9.99"  # PostgreSQL's float4in rounds it
    field = make_binary_converter(REAL, ACCEPT)(9.99)
    assert struct.unpack(">if", field) == (4, struct.unpack(">f", struct.pack(">f", 9.99))[0])


@pytest.mark.parametrize("options", [Options(), ACCEPT])
def test_out_of_float4_range_is_a_reject_whatever_the_rounding_choice(options):
    for make in (make_converter, make_binary_converter):
        with pytest.raises(ConversionError, match="out of range for real"):
            make(REAL, options)(1e39)


def test_double_precision_is_unaffected():
    f8 = TargetType("float8", "double precision")
    assert make_converter(f8)(9.99) == "9.99"


@pytest.mark.parametrize("tt", [TS, TSTZ, DATE])
@pytest.mark.parametrize("make", [make_converter, make_binary_converter])
def test_the_first_epoch_value_is_kept_on_the_converter(tt, make):
    conv = make(tt)
    assert conv.epoch_first == []
    conv(b"2024-01-02" if tt is DATE else b"2024-01-02 03:04:05")  # text: no epoch reading
    conv(20240102)  # YYYYMMDD: a date, no epoch reading
    assert conv.epoch_first == []
    conv(86400)
    conv(172800)
    assert conv.epoch_first == [(86400, datetime.datetime(1970, 1, 2, tzinfo=datetime.timezone.utc))]


def test_a_rejected_epoch_is_not_the_first_reading():
    conv = make_converter(DATE)
    with pytest.raises(ConversionError):
        conv(2024)  # 00:33:44, not midnight: a DATE would lose it
    assert conv.epoch_first == []


def _plan(*columns):
    plan = TablePlan("t", {})
    plan.columns = list(columns)
    return plan


def test_epoch_readings_and_note_name_the_column_the_value_and_the_rowid():
    pc = PlanColumn("created", source="Created")
    pc.converter = make_converter(TS)
    other = PlanColumn("price", source="price")
    other.converter = make_converter(REAL)
    plan = _plan(pc, other)
    assert epoch_readings(plan) == []
    pc.converter(2024)
    ((col, value, moment),) = epoch_readings(plan)
    assert col is pc and value == 2024
    note = epoch_note(col, value, moment, rowid=7)
    assert note.startswith("column Created (into created): integer values read as Unix epoch seconds")
    assert "2024 -> 1970-01-01 00:33:44+00:00 at source rowid 7" in note


def test_float4_notes_only_when_rounding_is_accepted():
    pc = PlanColumn("price", source="price")
    pc.base = "float4"
    plan = _plan(pc)
    assert float4_notes(plan, Options()) == []
    (note,) = float4_notes(plan, ACCEPT)
    assert "column price" in note and "float4_rounding: accept" in note
