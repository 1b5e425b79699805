"""convert/text_copy: every accepted format, every reject, and COPY text escaping."""

from __future__ import annotations

import pytest
from ansible.module_utils.convert.text_copy import convert, escape_copy_text, unescape_copy_text
from ansible.module_utils.convert.types import ConversionError, Options, TargetType
from copy_types import BOOL, DATE, F8, I2, I4, I8, TEXT, TS, TSTZ


def rejects(value, tt, options=None):
    with pytest.raises(ConversionError) as info:
        convert(value, tt, options)
    return str(info.value)


# -- dates ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [b"2024-10-01", b"20241001", b"2024/10/01", 20241001, b" 2024-10-01 ",
                                   b"2024-10-01 00:00:00", b"2024-10-01T00:00:00Z", 1727740800, 1727740800000])
def test_date_formats(value):
    assert convert(value, DATE) == "2024-10-01"


@pytest.mark.parametrize("value,reason", [
    (b"2024-02-30", "invalid date"),
    (b"2024-10-01 12:30:00", "time of day"),
    (1727740801, "not midnight"),
    (b"yesterday", "not a date"),
    (b"10/01/2024", "not a date"),
])
def test_date_rejects(value, reason):
    assert reason in rejects(value, DATE)


# -- timestamps -------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (b"2025-10-17T10:00:00.123456", "2025-10-17 10:00:00.123456+00:00"),  # naive = UTC
    (b"2025-10-17 10:00:00", "2025-10-17 10:00:00+00:00"),
    (b"2025-10-17T10:00:00Z", "2025-10-17 10:00:00+00:00"),
    (b"2025-10-17T19:00:00+09:00", "2025-10-17 19:00:00+09:00"),
    (b"2025-10-17 10:00:00.5-0330", "2025-10-17 10:00:00.500000-03:30"),
    (b"2025-10-17", "2025-10-17 00:00:00+00:00"),
    (0, "1970-01-01 00:00:00+00:00"),
    (1760695200, "2025-10-17 10:00:00+00:00"),
    (1760695200.25, "2025-10-17 10:00:00.250000+00:00"),
])
def test_timestamptz_formats(value, expected):
    assert convert(value, TSTZ) == expected


def test_timestamp_without_zone_converts_to_utc():
    assert convert(b"2025-10-17T19:00:00+09:00", TS) == "2025-10-17 10:00:00"
    assert convert(b"2025-10-17 10:00:00", TS) == "2025-10-17 10:00:00"


@pytest.mark.parametrize("value", [b"2025-13-01 00:00:00", b"2025-10-17 25:00:00", b"soon",
                                   b"2025-10-17T10:00:00+25:00"])
def test_timestamp_rejects(value):
    rejects(value, TSTZ)


# -- booleans ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [1, 1.0, b"1", b"true", b"TRUE", b"t", b"yes", b"Y", b"on"])
def test_bool_true(value):
    assert convert(value, BOOL) == "t"


@pytest.mark.parametrize("value", [0, 0.0, b"0", b"false", b"f", b"no", b"N", b"off"])
def test_bool_false(value):
    assert convert(value, BOOL) == "f"


@pytest.mark.parametrize("value", [2, -1, b"maybe", b"2"])
def test_bool_rejects(value):
    # the old script mapped every other integer to FALSE; here it is a reject
    rejects(value, BOOL)


# -- numbers ----------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (1.5, "1.5"), (0.1, "0.1"), (100, "100"), (b"1,234.5", "1234.5"), (b"-1,234,567", "-1234567.0"),
    (b"42", "42.0"), (b" 3.25 ", "3.25"), (b"1e-7", "1e-07"), (b"inf", "Infinity"), (b"-Infinity", "-Infinity"),
    (b"1e999", "Infinity"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"), (b"NaN", "NaN"),
])
def test_float_formats(value, expected):
    assert convert(value, F8) == expected


def test_float_is_lossless():
    for value in (0.1, 1 / 3, 1e-300, 123456.7891, 2.0**-1074):
        assert float(convert(value, F8)) == value


@pytest.mark.parametrize("value", [b"1,23", b"12,34.5", b"abc", b"1.2.3", b"1_000", 2**60 + 1])
def test_float_rejects(value):
    rejects(value, F8)


@pytest.mark.parametrize("value,expected", [(5, "5"), (5.0, "5"), (b"1,234", "1234"), (b"-7", "-7"), (b"12.0", "12")])
def test_int_formats(value, expected):
    assert convert(value, I8) == expected


def test_int_ranges_and_fractions():
    assert "out of range" in rejects(2**31, I4)
    assert "out of range" in rejects(40000, I2)
    assert "out of range" in rejects(2**63, I8)
    assert "not an integer" in rejects(1.5, I4)
    assert "fractional" in rejects(b"1.5", I4)
    assert convert(2**31 - 1, I4) == str(2**31 - 1)


def test_numeric_precision_is_never_rounded():
    num = TargetType.from_catalog("numeric", ((5 << 16) | 2) + 4, "numeric(5,2)")
    assert convert(0.25, num) == "0.25"
    assert "rounded" in rejects(0.125, num)
    assert "overflows" in rejects(12345.0, num)
    assert convert(b"1,234.50", TargetType("numeric")) == "1234.50"


# -- empty strings, text, UTF-8 -----------------------------------------------------------

def test_empty_string_policy():
    assert convert(b"", TEXT) == ""  # text keeps ''
    assert convert(b"", F8) is None
    assert convert(b"  ", DATE) is None
    assert "empty_as_null" in rejects(b"", I4, Options(empty_as_null=False))


def test_invalid_utf8_is_rejected_or_replaced():
    assert "invalid UTF-8" in rejects(b"ab\xffcd", TEXT)
    assert convert(b"ab\xffcd", TEXT, Options(invalid_utf8="replace")) == "ab\ufffdcd"


def test_varchar_overflow_is_a_reject_not_a_truncation():
    vc = TargetType.from_catalog("varchar", 14, "character varying(10)")
    assert convert(b"G2520101", vc) == "G2520101"
    assert "exceed" in rejects(b"G25201010203040", vc)


def test_json_is_validated():
    js = TargetType("jsonb")
    assert convert(b'{"a": 1}', js) == '{"a": 1}'
    assert "invalid JSON" in rejects(b"{a:", js)


# -- COPY escaping --------------------------------------------------------------------------

@pytest.mark.parametrize("raw,escaped", [
    ("plain", "plain"), ("a\\b", "a\\\\b"), ("tab\there", "tab\\there"), ("line\nbreak", "line\\nbreak"),
    ("cr\rhere", "cr\\rhere"), ("\\N", "\\\\N"), ("all\\\t\n\r", "all\\\\\\t\\n\\r"),
])
def test_copy_text_escaping_round_trips(raw, escaped):
    assert escape_copy_text(raw) == escaped
    assert unescape_copy_text(escaped) == raw
    assert convert(raw.encode(), TEXT) == escaped


def test_nul_is_a_reject():
    with pytest.raises(ConversionError, match="NUL"):
        escape_copy_text("a\x00b")
    assert "NUL" in rejects(b"a\x00b", TEXT)


def test_null_marker_text_is_not_null():
    # a literal backslash-N string must not become NULL
    assert convert(b"\\N", TEXT) == "\\\\N"
