"""PostgreSQL's binary COPY format: the stream's framing and one field per target type.

A stream is SIGNATURE + flags + header extension (BINARY_HEADER), then per row a 16-bit
field count followed by each field as a 32-bit length and the type's binary form (length
-1 is NULL: NULL_BINARY), then BINARY_TRAILER. The type forms used here: float4/float8
IEEE big-endian, int2/4/8 big-endian, bool one byte, date days and timestamps
microseconds since 2000-01-01 (UTC), text/json UTF-8 bytes, jsonb a version byte 1 then
the text, bytea the raw bytes.

Measured on the full-size sample: repr() of a float costs ~800 ns, struct.pack ~70 ns, and
the server skips float8in/date_in/timestamptz_in too. So tables whose target types all
have a binary form (BINARY_TYPES) are loaded with binary COPY; any other type (numeric,
uuid, arrays, ...) makes that table use the text format (text_copy.py). Both formats
accept and reject the same values: the binary converters pack the canonical value the
text converters produce (timestamps: the datetime make_moment parses).
"""

from __future__ import annotations

import datetime
import json
import struct

from ansible.module_utils.convert.text_copy import make_converter, make_moment, short_text
from ansible.module_utils.convert.types import TEXT_TYPES, ConversionError, Options, decode_utf8, text_of

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_HEADER = SIGNATURE + struct.pack(">ii", 0, 0)  # no flags, no header extension
BINARY_TRAILER = struct.pack(">h", -1)
NULL_BINARY = struct.pack(">i", -1)
BINARY_TYPES = frozenset(("float4", "float8", "int2", "int4", "int8", "bool", "date", "timestamptz", "timestamp",
                          "json", "jsonb", "bytea")) | TEXT_TYPES

PACK_FLOAT8 = struct.Struct(">id").pack
PACK_INT = {"int2": struct.Struct(">ih").pack, "int4": struct.Struct(">ii").pack, "int8": struct.Struct(">iq").pack}
INT_SIZE = {"int2": 2, "int4": 4, "int8": 8}
_PACK_COUNT = struct.Struct(">h").pack
_PACK_LEN = struct.Struct(">i").pack
_PACK_DATE = struct.Struct(">ii").pack
_PACK_TS = struct.Struct(">iq").pack
_PACK_BOOL = struct.Struct(">ib").pack
_PACK_FLOAT4 = struct.Struct(">if").pack
_PACK_ROWID = struct.Struct(">hiq").pack
_PG_EPOCH_ORDINAL = datetime.date(2000, 1, 1).toordinal()
_UTC = datetime.timezone.utc


def binary_supported(tt):
    return tt.base in BINARY_TYPES


def field_count(columns):
    """The prefix of every row of a stream with that many columns."""
    return _PACK_COUNT(columns)


def record_builder(columns):
    """fields -> one row: the field count, then the fields (each already length-prefixed)."""
    count = _PACK_COUNT(columns)
    join = b"".join
    return lambda fields: count + join(fields)


def with_leading_bigint(record, value):
    """The record with one more field in front, a bigint (e.g. a rowid for a staging table)."""
    (count,) = struct.unpack(">h", record[:2])
    return _PACK_ROWID(count + 1, 8, value) + record[2:]


def split_record(record):
    """The fields (each with its length prefix) of one row."""
    (count,) = struct.unpack(">h", record[:2])
    fields = []
    pos = 2
    for _ in range(count):
        (length,) = struct.unpack(">i", record[pos:pos + 4])
        end = pos + 4 + max(length, 0)
        fields.append(record[pos:end])
        pos = end
    return fields


# -- one field per target type ------------------------------------------------------------
# Each builder takes (tt, options) and returns value -> field; NULL_BINARY for an empty
# value the options turn into NULL. `cacheable` as in text_copy.py.


def _text_field(tt, options):
    limit = tt.length
    replace = options.invalid_utf8 == "replace"

    def conv(value):
        if isinstance(value, bytes):
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                if not replace:
                    decode_utf8(value, options)  # raises, naming the byte
                text = value.decode("utf-8", "replace")
                value = text.encode("utf-8")
        else:
            text = text_of(value, options)
            value = text.encode("utf-8")
        if limit is not None and len(text) > limit:
            raise ConversionError("%d characters exceed %s" % (len(text), tt.sql_type))
        if b"\x00" in value:
            raise ConversionError("contains a NUL character, which PostgreSQL text cannot store")
        return _PACK_LEN(len(value)) + value

    # short repeated values (tickers, regions, codes); long texts are not worth keeping
    conv.cacheable = short_text
    return conv


def _packed(text_conv, pack):
    """value -> pack(canonical text), NULL_BINARY when the text converter says NULL."""
    def conv(value):
        out = text_conv(value)
        return NULL_BINARY if out is None else pack(out)
    return conv


def _float8_field(tt, options):
    return _packed(make_converter(tt, options), lambda out: PACK_FLOAT8(8, float(out)))


def _float4_field(tt, options):
    # the text converter already refused what float4 would round (unless float4_rounding: accept)
    return _packed(make_converter(tt, options), lambda out: _PACK_FLOAT4(4, float(out)))


def _int_field(tt, options):
    pack, size = PACK_INT[tt.base], INT_SIZE[tt.base]
    return _packed(make_converter(tt, options), lambda out: pack(size, int(out)))


def _bool_field(tt, options):
    conv = _packed(make_converter(tt, options), lambda out: _PACK_BOOL(1, 1 if out == "t" else 0))
    conv.cacheable = True
    return conv


def _date_field(tt, options):
    text_conv = make_converter(tt, options)
    conv = _packed(text_conv, lambda out: _PACK_DATE(
        4, datetime.date.fromisoformat(out).toordinal() - _PG_EPOCH_ORDINAL))
    conv.cacheable = True
    conv.epoch_first = text_conv.epoch_first  # the epoch note reads it (text_copy.py)
    return conv


def _timestamp_field(tt, options):
    parse = make_moment(tt, options)

    def conv(value):
        moment = parse(value)
        if moment is None:
            return NULL_BINARY
        if moment.tzinfo is not None:
            moment = moment.astimezone(_UTC).replace(tzinfo=None)
        return _PACK_TS(8, _naive_micros(moment))

    conv.cacheable = True
    conv.epoch_first = parse.epoch_first  # the epoch note reads it (text_copy.py)
    return conv


def _naive_micros(moment):
    """Microseconds since PostgreSQL's epoch (2000-01-01 00:00) of a naive (UTC) datetime."""
    days = moment.toordinal() - _PG_EPOCH_ORDINAL
    return ((days * 86400 + moment.hour * 3600 + moment.minute * 60 + moment.second) * 1000000
            + moment.microsecond)


def _json_field(tt, options):
    prefix = b"\x01" if tt.base == "jsonb" else b""

    def conv(value):
        text = text_of(value, options)
        if not text.strip():
            if options.empty_as_null:
                return NULL_BINARY
            raise ConversionError("empty string is not valid %s" % tt.sql_type)
        try:
            json.loads(text)
        except ValueError as exc:
            raise ConversionError("invalid JSON: %s" % exc) from None
        if "\x00" in text:
            raise ConversionError("contains a NUL character")
        data = prefix + text.encode("utf-8")
        return _PACK_LEN(len(data)) + data

    return conv


def _bytea_field(tt, options):
    def conv(value):
        raw = value if isinstance(value, bytes) else text_of(value, options).encode("utf-8")
        return _PACK_LEN(len(raw)) + raw
    return conv


_FIELD_BUILDERS = {
    "float8": _float8_field, "float4": _float4_field, "int2": _int_field, "int4": _int_field,
    "int8": _int_field, "bool": _bool_field, "date": _date_field, "timestamptz": _timestamp_field,
    "timestamp": _timestamp_field, "json": _json_field, "jsonb": _json_field, "bytea": _bytea_field,
}


def make_binary_converter(tt, options=None):
    """Converter producing one binary COPY field (length-prefixed), or raising ConversionError."""
    options = options or Options()
    build = _text_field if tt.is_text else _FIELD_BUILDERS.get(tt.base)
    if build is None:
        raise ValueError("no binary COPY form for %s" % tt.sql_type)
    return build(tt, options)


# -- reading fields back (messages, reject records) ------------------------------------------

def _decode_number(data, base):
    if base == "float8":
        return repr(struct.unpack(">d", data)[0])
    if base == "float4":
        return repr(struct.unpack(">f", data)[0])
    return str(int.from_bytes(data, "big", signed=True))


def _decode_time(data, base):
    if base == "date":
        return datetime.date.fromordinal(struct.unpack(">i", data)[0] + _PG_EPOCH_ORDINAL).isoformat()
    micros = struct.unpack(">q", data)[0]
    moment = datetime.datetime(2000, 1, 1) + datetime.timedelta(microseconds=micros)
    return moment.isoformat(" ") + ("+00" if base == "timestamptz" else "")


def decode_binary_field(field, base):
    """Readable text of one binary field (for messages); None for NULL."""
    if field == NULL_BINARY:
        return None
    data = field[4:]
    try:
        if base in TEXT_TYPES or base in ("json", "bytea"):
            return data.decode("utf-8", "replace")
        if base == "jsonb":
            return data[1:].decode("utf-8", "replace")
        if base in ("float8", "float4") or base in INT_SIZE:
            return _decode_number(data, base)
        if base == "bool":
            return "true" if data == b"\x01" else "false"
        if base in ("date", "timestamp", "timestamptz"):
            return _decode_time(data, base)
    except (struct.error, ValueError, OverflowError):
        pass
    return repr(data)


def describe_binary_record(record, bases):
    """Tab-separated readable fields of one row (NULL as NULL), for reject records."""
    try:
        texts = [decode_binary_field(field, base) for field, base in zip(split_record(record), bases)]
    except Exception:  # a message helper must never fail the load
        return repr(record)
    return "\t".join("NULL" if text is None else text for text in texts)
