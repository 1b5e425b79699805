"""Convert SQLite values into PostgreSQL text-format COPY fields, chosen by the TARGET type.

Every converter takes one SQLite value (int, float, bytes, or None; TEXT
arrives as bytes because the reader uses ``text_factory=bytes`` so that invalid
UTF-8 can be detected per value) and returns the field exactly as it must
appear in a text-format COPY stream (already escaped), or ``None`` for SQL NULL.
A value that cannot be represented losslessly raises ``ConversionError`` with a
one-line reason: the caller turns it into a reject record. Nothing is ever
silently turned into NULL, truncated or rounded.

Documented decisions
--------------------
* Empty strings: TEXT-like targets keep ``''``. For every other target type an
  empty (or all-blank) string means "no value" and becomes NULL when
  ``empty_as_null`` is true (the default); with ``empty_as_null: false`` it is
  a reject.
* Naive timestamps (no zone) are UTC. ``timestamp without time zone`` targets
  receive zoned values converted to UTC.
* Epoch integers: for DATE and TIMESTAMP targets an integer that is a valid
  YYYYMMDD date (10000101..29991231) is read as a date; any other integer is
  Unix epoch seconds (or milliseconds when its magnitude exceeds 1e11).
  A DATE target only accepts an epoch that falls on midnight UTC (otherwise
  the time of day would be lost).
* ``real`` (float4) targets: a value float4 cannot hold exactly (9.99) is a reject
  (``float4_rounding: reject``, the default), or stored rounded to float4
  (``float4_rounding: accept``, opt-in). double precision holds every SQLite REAL.
* The first value read as an epoch is kept on the converter (``epoch_first``:
  [(value, datetime)]), so the migration can say once per column that it read
  integers that way; a list test on the epoch path only, nothing on the others.
* Floating point targets accept ``inf``/``-inf``/``infinity``/``nan`` (any case)
  and overflowing literals such as ``1e999`` (= Infinity, as SQLite itself does).
* Numbers stored as text may use ``,`` thousands separators in groups of three
  (``1,234.5``); any other use of ``,`` is a reject (it could be a decimal comma).
* Integer targets accept floats only when they are integral (``100.0``).
  NUMERIC(p,s) targets reject values that would need rounding.
* Booleans: 1/0 (int, float or text) and true/false, t/f, yes/no, y/n, on/off
  (any case). Any other number is a reject (the old script mapped it to FALSE).
* Text: invalid UTF-8 is a reject (``invalid_utf8: reject``) or replaced by
  U+FFFD (``invalid_utf8: replace``, opt-in, lossy). NUL characters cannot be
  stored in PostgreSQL text and are a reject. VARCHAR(n)/CHAR(n) overflow is a
  reject (never truncated).

The binary-format converters (binary_copy.py) follow the same rules: they pack the
canonical text these converters produce.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import struct
from decimal import Decimal, InvalidOperation

from ansible.module_utils.convert.types import (
    INT_RANGES,
    ConversionError,
    Options,
    TargetType,
    decode_utf8,
    float_text,
    text_of,
)

NULL = "\\N"

_TRUE = frozenset(("1", "t", "true", "y", "yes", "on"))
_FALSE = frozenset(("0", "f", "false", "n", "no", "off"))

_INT_RE = re.compile(r"[+-]?\d+\Z")
_THOUSANDS_RE = re.compile(r"([+-]?)(\d{1,3}(?:,\d{3})+)(\.\d*)?\Z")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_SPECIAL_FLOATS = {
    "inf": "Infinity", "+inf": "Infinity", "infinity": "Infinity", "+infinity": "Infinity",
    "-inf": "-Infinity", "-infinity": "-Infinity", "nan": "NaN", "+nan": "NaN", "-nan": "NaN",
}
_DATE_RE = re.compile(r"(\d{4})([-/]?)(\d{2})\2(\d{2})\Z")
_TS_RE = re.compile(
    r"(\d{4})([-/])(\d{2})\2(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?\Z",
    re.IGNORECASE,
)
_ESCAPE_RE = re.compile(r"[\\\t\n\r]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_UTC = datetime.timezone.utc
_FLOAT4 = struct.Struct(">f")


def escape_copy_text(text):
    """Escape one value for PostgreSQL's text COPY format.

    Backslash, tab, newline and carriage return are escaped; NUL cannot be
    represented in a PostgreSQL text value at all and is a ConversionError.
    """
    if "\x00" in text:
        raise ConversionError("contains a NUL character, which PostgreSQL text cannot store")
    if _ESCAPE_RE.search(text) is None:
        return text
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text)


def unescape_copy_text(field):
    """Inverse of escape_copy_text for one field (NULL marker -> None); used by tests and tools."""
    if field == NULL:
        return None
    out = []
    i = 0
    table = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    while i < len(field):
        ch = field[i]
        if ch == "\\" and i + 1 < len(field):
            out.append(table.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)



def _blank(text, options, what):
    if options.empty_as_null:
        return None
    raise ConversionError("empty string is not a valid %s (empty_as_null is false)" % what)


def _number_text(text):
    """Normalise a number written as text; returns str or raises."""
    s = text.strip()
    m = _THOUSANDS_RE.match(s)
    if m:
        return m.group(1) + m.group(2).replace(",", "") + (m.group(3) or "")
    if _NUMBER_RE.match(s):
        return s
    raise ConversionError("not a number")


# -- converters ---------------------------------------------------------------------
# Each make_* returns value -> field (None for an empty value the options make NULL).
# `cacheable` (True, or a predicate of the value) marks a converter whose output depends
# on the value alone and whose values repeat: mapping/row_converter.py memoises it.


def short_text(value):
    """Worth remembering a text field of (tickers, regions, codes; long texts rarely repeat)."""
    return value.__class__ in (bytes, str) and len(value) <= 32


def make_text(tt, options):
    limit = tt.length

    def conv(value):
        if isinstance(value, bytes):
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = decode_utf8(value, options)
        else:
            text = text_of(value, options)
        if limit is not None and len(text) > limit:
            raise ConversionError("%d characters exceed %s" % (len(text), tt.sql_type))
        if "\x00" in text:
            raise ConversionError("contains a NUL character, which PostgreSQL text cannot store")
        if _ESCAPE_RE.search(text) is None:
            return text
        return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text)

    conv.cacheable = short_text
    return conv


def make_float(tt, options):
    def conv(value):
        t = type(value)
        if t is float:
            if value - value == 0.0:  # finite
                return repr(value)
            return float_text(value)
        if t is int:
            f = float(value)
            if int(f) != value:
                raise ConversionError("integer %d cannot be represented exactly as %s" % (value, tt.sql_type))
            return str(value)
        text = text_of(value, options).strip()
        if not text:
            return _blank(text, options, tt.sql_type)
        special = _SPECIAL_FLOATS.get(text.lower())
        if special:
            return special
        return float_text(float(_number_text(text)))

    return conv


def make_float4(tt, options):
    """make_float, refusing what float4 cannot hold: out of its range always, and (float4_rounding:
    reject, the default) a value float4 would round.

    PostgreSQL's float4in rounds a longer literal silently, so the check is ours; in
    the binary format the value is packed as float4 from this same text."""
    conv = make_float(tt, options)
    reject = options.float4_rounding != "accept"
    pack, unpack = _FLOAT4.pack, _FLOAT4.unpack

    def checked(value):
        out = conv(value)
        if out is not None:
            f = float(out)
            try:
                rounded = unpack(pack(f))[0]
            except OverflowError:
                raise ConversionError("%s is out of range for %s" % (out, tt.sql_type)) from None
            if reject and rounded != f and not math.isnan(f):
                raise ConversionError("%s cannot be stored exactly in %s (float4_rounding: accept stores it "
                                      "rounded)" % (out, tt.sql_type))
        return out

    return checked


def make_int(tt, options):
    lo, hi = INT_RANGES[tt.base]

    def conv(value):
        t = type(value)
        if t is int:
            n = value
        elif t is float:
            if not math.isfinite(value) or value != int(value):
                raise ConversionError("%r is not an integer" % value)
            n = int(value)
        else:
            text = text_of(value, options).strip()
            if not text:
                return _blank(text, options, tt.sql_type)
            try:
                num = _number_text(text)
            except ConversionError:
                raise ConversionError("not an integer") from None
            if _INT_RE.match(num):
                n = int(num)
            else:
                try:
                    d = Decimal(num)
                except InvalidOperation:
                    raise ConversionError("not an integer") from None
                if d != d.to_integral_value():
                    raise ConversionError("has a fractional part")
                n = int(d)
        if n < lo or n > hi:
            raise ConversionError("%d is out of range for %s" % (n, tt.sql_type))
        return str(n)

    return conv


def make_numeric(tt, options):
    precision, scale = tt.precision, tt.scale

    def conv(value):
        t = type(value)
        if t is int:
            d = Decimal(value)
        elif t is float:
            if math.isnan(value):
                return "NaN"
            if value in (math.inf, -math.inf):
                if precision is not None:
                    raise ConversionError("infinity does not fit %s" % tt.sql_type)
                return "Infinity" if value > 0 else "-Infinity"
            d = Decimal(repr(value))
        else:
            text = text_of(value, options).strip()
            if not text:
                return _blank(text, options, tt.sql_type)
            special = _SPECIAL_FLOATS.get(text.lower())
            if special:
                if precision is not None and special != "NaN":
                    raise ConversionError("infinity does not fit %s" % tt.sql_type)
                return special
            try:
                d = Decimal(_number_text(text))
            except InvalidOperation:
                raise ConversionError("not a number") from None
        if not d.is_finite():
            return str(d)
        if precision is not None:
            try:
                rounded = d.quantize(Decimal(1).scaleb(-scale), rounding="ROUND_HALF_EVEN")
            except InvalidOperation:
                raise ConversionError("%s overflows %s" % (d, tt.sql_type)) from None
            if d != rounded:
                raise ConversionError("%s would be rounded to %d decimals by %s" % (d, scale, tt.sql_type))
            if d != 0 and d.adjusted() + 1 > precision - scale:
                raise ConversionError("%s overflows %s" % (d, tt.sql_type))
        return str(d)

    return conv


def make_bool(tt, options):
    def conv(value):
        t = type(value)
        if t is int or t is float:
            if value == 1:
                return "t"
            if value == 0:
                return "f"
            raise ConversionError("number %r is not a boolean (only 0 and 1 are)" % value)
        text = text_of(value, options).strip()
        if not text:
            return _blank(text, options, "boolean")
        low = text.lower()
        if low in _TRUE:
            return "t"
        if low in _FALSE:
            return "f"
        raise ConversionError("not a boolean")

    conv.cacheable = True
    return conv


def _valid_date(y, m, d):
    try:
        return datetime.date(int(y), int(m), int(d))
    except ValueError as exc:
        raise ConversionError("invalid date: %s" % exc) from None


def _from_epoch(n):
    if isinstance(n, float) and not math.isfinite(n):
        raise ConversionError("not a finite epoch")
    seconds = n / 1000.0 if abs(n) > 1e11 else n
    try:
        return _EPOCH + datetime.timedelta(seconds=seconds)
    except OverflowError:
        raise ConversionError("epoch %r is out of range" % n) from None


def _int_as_date(n):
    """YYYYMMDD integer -> date, else None."""
    if 10000101 <= n <= 29991231:
        try:
            return datetime.date(n // 10000, n // 100 % 100, n % 100)
        except ValueError:
            return None
    return None


def make_date(tt, options):
    epoch_first = []

    def from_number(value):
        if isinstance(value, int) or (isinstance(value, float) and value == int(value)):
            day = _int_as_date(int(value))
            if day is not None:
                return day.isoformat()
        moment = _from_epoch(value)
        if moment.time() != datetime.time(0):
            raise ConversionError("epoch %r is not midnight UTC; a DATE would lose the time of day" % value)
        if not epoch_first:
            epoch_first.append((value, moment))
        return moment.date().isoformat()

    def conv(value):
        if type(value) is bytes and len(value) == 10:
            try:
                return datetime.date.fromisoformat(value.decode("ascii")).isoformat()
            except ValueError:
                pass
        if isinstance(value, (int, float)):
            return from_number(value)
        text = text_of(value, options).strip()
        if not text:
            return _blank(text, options, "date")
        m = _DATE_RE.match(text)
        if m:
            return _valid_date(m.group(1), m.group(3), m.group(4)).isoformat()
        if _INT_RE.match(text):
            return from_number(int(text))
        m = _TS_RE.match(text)
        if m:
            moment = _ts_from_match(m)
            if moment.tzinfo is not None:
                moment = moment.astimezone(_UTC)
            if moment.time() != datetime.time(0):
                raise ConversionError("has a time of day; a DATE would lose it")
            return moment.date().isoformat()
        raise ConversionError("not a date (expected YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD or epoch)")

    conv.cacheable = True
    conv.epoch_first = epoch_first
    return conv


def _ts_from_match(m):
    y, _, mo, d, hh, mi, ss, frac, zone = m.groups()
    tz = None
    if zone:
        if zone.upper() == "Z":
            tz = _UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
            if hours > 23 or minutes > 59:
                raise ConversionError("invalid UTC offset %r" % zone)
            tz = datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
    micro = int((frac or "0").ljust(6, "0"))
    try:
        return datetime.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), micro, tz)
    except ValueError as exc:
        raise ConversionError("invalid timestamp: %s" % exc) from None


def _is_plain_timestamp(value):
    """19 bytes shaped YYYY-MM-DD?HH:MM:SS with ? a space or T (digits are datetime's to check)."""
    return value[4] == 45 and value[7] == 45 and value[10] in (32, 84) and value[13] == 58 and value[16] == 58


def make_moment(tt, options):
    """Converter of one value to a datetime (naive means UTC) or None (empty value).

    Shared by the text form (make_timestamp renders it) and the binary one (binary_copy
    packs it), so both accept and reject exactly the same values.
    """
    epoch_first = []

    def parse(value):
        # 'YYYY-MM-DD HH:MM:SS' (or with T), what SQLite's CURRENT_TIMESTAMP stores, is read
        # directly, several times faster than the regex; a value datetime refuses takes the
        # general path below, which says why.
        if value.__class__ is bytes and len(value) == 19 and _is_plain_timestamp(value):
            try:
                return datetime.datetime.fromisoformat(value.decode("ascii"))
            except ValueError:
                pass
        if isinstance(value, (int, float)):
            if isinstance(value, int) or value == int(value):
                day = _int_as_date(int(value))
                if day is not None:
                    return datetime.datetime(day.year, day.month, day.day)
            moment = _from_epoch(value)
            if not epoch_first:
                epoch_first.append((value, moment))
            return moment
        text = text_of(value, options).strip()
        if not text:
            return _blank(text, options, tt.sql_type)
        m = _TS_RE.match(text)
        if m:
            return _ts_from_match(m)
        m = _DATE_RE.match(text)
        if m:
            day = _valid_date(m.group(1), m.group(3), m.group(4))
            return datetime.datetime(day.year, day.month, day.day)
        if _INT_RE.match(text):
            return parse(int(text))
        raise ConversionError("not a timestamp (expected ISO 8601 text or epoch)")

    parse.epoch_first = epoch_first
    return parse


def make_timestamp(tt, options, with_zone):
    parse = make_moment(tt, options)

    def conv(value):
        moment = parse(value)
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_UTC)  # naive = UTC (documented)
        elif moment.utcoffset() != datetime.timedelta(0) and not with_zone:
            moment = moment.astimezone(_UTC)
        if not with_zone:
            return moment.replace(tzinfo=None).isoformat(" ")
        return moment.isoformat(" ")

    conv.cacheable = True
    conv.epoch_first = parse.epoch_first
    return conv


def make_json(tt, options):
    text_conv = make_text(TargetType("text"), options)

    def conv(value):
        text = text_of(value, options)
        if not text.strip():
            return _blank(text, options, tt.sql_type)
        try:
            json.loads(text)
        except ValueError as exc:
            raise ConversionError("invalid JSON: %s" % exc) from None
        return text_conv(text)

    return conv


def make_bytea(tt, options):
    def conv(value):
        if isinstance(value, bytes):
            raw = value
        else:
            raw = text_of(value, options).encode("utf-8")
        return "\\\\x" + raw.hex()

    return conv


def make_passthrough(tt, options):
    """Unknown target type: hand PostgreSQL the text; its input function validates it
    (a failure becomes a reject through the engine's row-level fallback)."""
    text_conv = make_text(TargetType("text"), options)

    def conv(value):
        text = text_of(value, options)
        if not text.strip() and options.empty_as_null:
            return None
        return text_conv(text)

    return conv


def make_converter(tt, options=None):
    """The converter for one target column type."""
    options = options or Options()
    base = tt.base
    if tt.is_text:
        return make_text(tt, options)
    if base == "float4":
        return make_float4(tt, options)
    if base == "float8":
        return make_float(tt, options)
    if base in INT_RANGES:
        return make_int(tt, options)
    if base == "numeric":
        return make_numeric(tt, options)
    if base == "bool":
        return make_bool(tt, options)
    if base == "date":
        return make_date(tt, options)
    if base == "timestamptz":
        return make_timestamp(tt, options, with_zone=True)
    if base == "timestamp":
        return make_timestamp(tt, options, with_zone=False)
    if base in ("json", "jsonb"):
        return make_json(tt, options)
    if base == "bytea":
        return make_bytea(tt, options)
    return make_passthrough(tt, options)


def convert(value, tt, options=None):
    """Convert one value (convenience for tests and tools); None stays None."""
    if value is None:
        return None
    return make_converter(tt, options)(value)

