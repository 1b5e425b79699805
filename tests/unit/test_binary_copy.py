"""convert/binary_copy: binary COPY fields accept and reject what the text form does; the stream framing."""

from __future__ import annotations

import datetime
import struct

import pytest
from ansible.module_utils.convert.binary_copy import (
    BINARY_HEADER,
    BINARY_TRAILER,
    NULL_BINARY,
    decode_binary_field,
    describe_binary_record,
    field_count,
    make_binary_converter,
    record_builder,
    split_record,
    with_leading_bigint,
)
from ansible.module_utils.convert.text_copy import convert
from ansible.module_utils.convert.types import ConversionError
from copy_types import BOOL, DATE, F8, I4, TEXT, TS, TSTZ

# -- binary COPY fields ----------------------------------------------------------------------

def test_binary_fields():
    assert make_binary_converter(F8)(1.5) == struct.pack(">id", 8, 1.5)
    assert make_binary_converter(F8)(b"1,234.5") == struct.pack(">id", 8, 1234.5)
    assert make_binary_converter(I4)(7) == struct.pack(">ii", 4, 7)
    assert make_binary_converter(BOOL)(1) == struct.pack(">ib", 1, 1)
    assert make_binary_converter(TEXT)(b"a\tb") == struct.pack(">i", 3) + b"a\tb"  # no escaping in binary
    assert make_binary_converter(F8)(b"") == NULL_BINARY
    days = (datetime.date(2024, 10, 1) - datetime.date(2000, 1, 1)).days
    assert make_binary_converter(DATE)(b"20241001") == struct.pack(">ii", 4, days)
    field = make_binary_converter(TSTZ)(b"2025-10-17T19:00:00+09:00")
    assert decode_binary_field(field, "timestamptz") == "2025-10-17 10:00:00+00"


def test_binary_rejects_like_text():
    with pytest.raises(ConversionError, match="NUL"):
        make_binary_converter(TEXT)(b"a\x00b")
    with pytest.raises(ConversionError, match="invalid UTF-8"):
        make_binary_converter(TEXT)(b"\xff")
    with pytest.raises(ConversionError):
        make_binary_converter(DATE)(b"2024-02-30")


def _outcome(conv, value):
    try:
        return conv(value)
    except ConversionError:
        return "reject"


@pytest.mark.parametrize("tt", [TSTZ, TS])
@pytest.mark.parametrize("text", [
    "2025-10-17 10:00:00", "2025-10-17T10:00:00", "1999-12-31 23:59:59", "2000-01-01 00:00:00",
    "0001-01-01 00:00:00", "9999-12-31 23:59:59", "2024-02-29 12:00:00",
    "2023-02-29 12:00:00", "2025-13-01 00:00:00", "2025-10-17 24:00:00", "2025-10-17 23:59:60",
    "2025-10-17_10:00:00", "2025/10/17 10:00:00", "2025-10-17 10:00:0Z", "0000-01-01 00:00:00",
    "2025-1a-17 10:00:00", "2025-10-17 10:00+01",
])
def test_plain_timestamp_fast_path_agrees_with_the_general_path(tt, text):
    """19-byte 'YYYY-MM-DD HH:MM:SS' values skip the regex; a str value always takes the general
    path, so both must give the same field or both reject."""
    fast, general = make_binary_converter(tt), make_binary_converter(tt)
    assert _outcome(fast, text.encode()) == _outcome(general, text)


def test_plain_timestamp_fast_path_value():
    micros = (datetime.datetime(2025, 10, 17, 10) - datetime.datetime(2000, 1, 1)) // datetime.timedelta(microseconds=1)
    assert make_binary_converter(TSTZ)(b"2025-10-17 10:00:00") == struct.pack(">iq", 8, micros)
    assert make_binary_converter(TS)(b"2025-10-17T10:00:00") == struct.pack(">iq", 8, micros)
    with pytest.raises(ConversionError):
        make_binary_converter(TSTZ)(b"2025-02-30 10:00:00")


def test_binary_stream_framing():
    assert BINARY_HEADER == b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    assert BINARY_TRAILER == b"\xff\xff"
    fields = [make_binary_converter(I4)(7), NULL_BINARY, make_binary_converter(TEXT)(b"AAA")]
    record = record_builder(3)(fields)
    assert record == field_count(3) + b"".join(fields)
    assert split_record(record) == fields
    assert describe_binary_record(record, ["int4", "float8", "text"]) == "7\tNULL\tAAA"
    staged = with_leading_bigint(record, 42)
    assert split_record(staged) == [struct.pack(">iq", 8, 42), *fields]
    assert describe_binary_record(b"\x00\x02junk", ["int4", "int4"]).startswith("b'")


@pytest.mark.parametrize("tt", [DATE, TSTZ, TS, BOOL])
def test_cacheable_binary_converters_are_marked(tt):
    """The row converter memoises these on the raw value: their output depends on it alone."""
    assert make_binary_converter(tt).cacheable is True
    assert make_binary_converter(TEXT).cacheable(b"AAA")
    assert not make_binary_converter(TEXT).cacheable(b"x" * 33)
    assert getattr(make_binary_converter(F8), "cacheable", None) is None


@pytest.mark.parametrize("value", [b"2025-10-17 10:00:00", b"2025-10-17T19:00:00+09:00", b"2025-10-17", 1760695200,
                                   1760695200.25, 20241001, b"  2025-10-17 10:00:00.5-0330 "])
@pytest.mark.parametrize("tt", [TSTZ, TS])
def test_binary_timestamp_packs_what_the_text_form_says(tt, value):
    """One parse (make_moment) for both forms: the binary field decodes to the text field's instant."""
    text = convert(value, tt)
    field = make_binary_converter(tt)(value)
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    assert decode_binary_field(field, tt.base).removesuffix("+00") == moment.isoformat(" ")
