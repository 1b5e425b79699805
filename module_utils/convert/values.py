"""Convert SQLite values into PostgreSQL COPY text fields, chosen by the TARGET type.

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
"""

from __future__ import annotations

import datetime
import json
import math
import re
from decimal import Decimal, InvalidOperation

NULL = "\\N"

INT_RANGES = {
    "int2": (-(2**15), 2**15 - 1),
    "int4": (-(2**31), 2**31 - 1),
    "int8": (-(2**63), 2**63 - 1),
}

_TEXT_TYPES = frozenset(("text", "varchar", "bpchar", "name", "citext", "char"))
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


class ConversionError(ValueError):
    """A value that cannot be stored losslessly in the target column."""


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


class TargetType:
    """What the converter needs to know about one target column."""

    __slots__ = ("base", "length", "not_null", "precision", "scale", "sql_type")

    def __init__(self, base, sql_type=None, length=None, precision=None, scale=None, not_null=False):  # noqa: PLR0917
        self.base = base
        self.sql_type = sql_type or base
        self.length = length
        self.precision = precision
        self.scale = scale
        self.not_null = not_null

    @classmethod
    def from_catalog(cls, typname, typmod, sql_type, not_null=False):
        """Build from pg_type.typname and pg_attribute.atttypmod."""
        length = precision = scale = None
        if typname in ("varchar", "bpchar") and typmod > 4:
            length = typmod - 4
        elif typname == "numeric" and typmod > 4:
            precision = ((typmod - 4) >> 16) & 0xFFFF
            scale = (typmod - 4) & 0xFFFF
        return cls(typname, sql_type, length, precision, scale, not_null)

    @property
    def is_text(self):
        return self.base in _TEXT_TYPES


class Options:
    """Conversion policy knobs (module parameters)."""

    __slots__ = ("copy_format", "empty_as_null", "invalid_utf8")

    def __init__(self, empty_as_null=True, invalid_utf8="reject", copy_format="auto"):
        self.empty_as_null = empty_as_null
        self.invalid_utf8 = invalid_utf8
        self.copy_format = copy_format


def _decode(value, options):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        if options.invalid_utf8 == "replace":
            return value.decode("utf-8", "replace")
        raise ConversionError("invalid UTF-8 (byte 0x%02x at offset %d)" % (value[exc.start], exc.start)) from None


def _text_of(value, options):
    """A non-NULL SQLite value as str (numbers keep their SQLite text form)."""
    if isinstance(value, bytes):
        return _decode(value, options)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    raise ConversionError("unsupported SQLite value type %s" % type(value).__name__)


def _float_text(value):
    if math.isnan(value):
        return "NaN"
    if value == math.inf:
        return "Infinity"
    if value == -math.inf:
        return "-Infinity"
    return repr(value)


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


def make_text(tt, options):
    limit = tt.length

    def conv(value):
        if isinstance(value, bytes):
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = _decode(value, options)
        else:
            text = _text_of(value, options)
        if limit is not None and len(text) > limit:
            raise ConversionError("%d characters exceed %s" % (len(text), tt.sql_type))
        if "\x00" in text:
            raise ConversionError("contains a NUL character, which PostgreSQL text cannot store")
        if _ESCAPE_RE.search(text) is None:
            return text
        return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text)

    return conv


def make_float(tt, options):
    def conv(value):
        t = type(value)
        if t is float:
            if value - value == 0.0:  # finite
                return repr(value)
            return _float_text(value)
        if t is int:
            f = float(value)
            if int(f) != value:
                raise ConversionError("integer %d cannot be represented exactly as %s" % (value, tt.sql_type))
            return str(value)
        text = _text_of(value, options).strip()
        if not text:
            return _blank(text, options, tt.sql_type)
        special = _SPECIAL_FLOATS.get(text.lower())
        if special:
            return special
        return _float_text(float(_number_text(text)))

    return conv


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
            text = _text_of(value, options).strip()
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
            text = _text_of(value, options).strip()
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
        text = _text_of(value, options).strip()
        if not text:
            return _blank(text, options, "boolean")
        low = text.lower()
        if low in _TRUE:
            return "t"
        if low in _FALSE:
            return "f"
        raise ConversionError("not a boolean")

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
    def from_number(value):
        if isinstance(value, int) or (isinstance(value, float) and value == int(value)):
            day = _int_as_date(int(value))
            if day is not None:
                return day.isoformat()
        moment = _from_epoch(value)
        if moment.time() != datetime.time(0):
            raise ConversionError("epoch %r is not midnight UTC; a DATE would lose the time of day" % value)
        return moment.date().isoformat()

    def conv(value):
        if type(value) is bytes and len(value) == 10:
            try:
                return datetime.date.fromisoformat(value.decode("ascii")).isoformat()
            except ValueError:
                pass
        if isinstance(value, (int, float)):
            return from_number(value)
        text = _text_of(value, options).strip()
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


def make_timestamp(tt, options, with_zone):
    def render(moment):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_UTC)  # naive = UTC (documented)
        elif moment.utcoffset() != datetime.timedelta(0) and not with_zone:
            moment = moment.astimezone(_UTC)
        if not with_zone:
            return moment.replace(tzinfo=None).isoformat(" ")
        return moment.isoformat(" ")

    def conv(value):
        if isinstance(value, (int, float)):
            if isinstance(value, int) or value == int(value):
                day = _int_as_date(int(value))
                if day is not None:
                    return render(datetime.datetime(day.year, day.month, day.day))
            return render(_from_epoch(value))
        text = _text_of(value, options).strip()
        if not text:
            return _blank(text, options, tt.sql_type)
        m = _TS_RE.match(text)
        if m:
            return render(_ts_from_match(m))
        m = _DATE_RE.match(text)
        if m:
            day = _valid_date(m.group(1), m.group(3), m.group(4))
            return render(datetime.datetime(day.year, day.month, day.day))
        if _INT_RE.match(text):
            return conv(int(text))
        raise ConversionError("not a timestamp (expected ISO 8601 text or epoch)")

    return conv


def make_json(tt, options):
    text_conv = make_text(TargetType("text"), options)

    def conv(value):
        text = _text_of(value, options)
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
            raw = _text_of(value, options).encode("utf-8")
        return "\\\\x" + raw.hex()

    return conv


def make_passthrough(tt, options):
    """Unknown target type: hand PostgreSQL the text; its input function validates it
    (a failure becomes a reject through the engine's row-level fallback)."""
    text_conv = make_text(TargetType("text"), options)

    def conv(value):
        text = _text_of(value, options)
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
    if base in ("float4", "float8"):
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


def describe_value(value, limit=200):
    """repr() of a source value for a reject record (UTF-8 text shown as text), truncated."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "...(%d chars)" % len(text)
    return text


# -- binary COPY ----------------------------------------------------------------------
#
# Measured on the full-size sample: repr() of a float costs ~800 ns, struct.pack
# ~70 ns, and the server skips float8in/date_in/timestamptz_in too. So tables
# whose target types all have a binary form below are loaded with binary COPY;
# any other type (numeric, uuid, arrays, ...) makes that table use the text
# format above. Both formats share the same parsing rules: the binary
# converters pack the canonical text the text converters produce.

import struct  # noqa: E402

BINARY_TYPES = frozenset(("float4", "float8", "int2", "int4", "int8", "bool", "date", "timestamptz", "timestamp",
                          "json", "jsonb", "bytea")) | _TEXT_TYPES
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
BINARY_TRAILER = struct.pack(">h", -1)
NULL_BINARY = struct.pack(">i", -1)
PACK_FLOAT8 = struct.Struct(">id").pack
PACK_INT = {"int2": struct.Struct(">ih").pack, "int4": struct.Struct(">ii").pack, "int8": struct.Struct(">iq").pack}
INT_SIZE = {"int2": 2, "int4": 4, "int8": 8}
_PACK_LEN = struct.Struct(">i").pack
_PACK_DATE = struct.Struct(">ii").pack
_PACK_TS = struct.Struct(">iq").pack
_PACK_BOOL = struct.Struct(">ib").pack
_PACK_FLOAT4 = struct.Struct(">if").pack
_PG_EPOCH_ORDINAL = datetime.date(2000, 1, 1).toordinal()
_CACHE_LIMIT = 100000


def binary_supported(tt):
    return tt.base in BINARY_TYPES


def _cached(fn, cacheable=None):
    """Memoise a converter on the raw value (dates, timestamps, tickers repeat a lot).

    Errors are not cached. ``conv.cache`` is exposed so the generated row
    converter (migration_mapping.compile_row_converter) can look values up
    inline, without a Python call per column. cacheable(value) limits what is
    stored (long texts are not worth keeping).
    """
    cache = {}

    def conv(value):
        try:
            return cache[value]
        except KeyError:
            pass
        except TypeError:
            return fn(value)
        out = fn(value)
        # empty values (NULL out) are never cached: the generated row converter relies on a
        # cache hit being a real value, which lets it skip the NOT NULL check on that path
        if out is not None and out != NULL_BINARY and len(cache) < _CACHE_LIMIT \
                and (cacheable is None or cacheable(value)):
            cache[value] = out
        return out

    conv.cache = cache
    return conv


def _is_plain_timestamp(value):
    """19 bytes shaped YYYY-MM-DD?HH:MM:SS with ? a space or T (digits are datetime's to check)."""
    return value[4] == 45 and value[7] == 45 and value[10] in (32, 84) and value[13] == 58 and value[16] == 58


def _short_text(value):
    return value.__class__ in (bytes, str) and len(value) <= 32


def _ts_micros(text, with_zone):
    moment = datetime.datetime.fromisoformat(text)
    if with_zone:
        moment = moment.astimezone(_UTC).replace(tzinfo=None)
    return _naive_micros(moment)


def _naive_micros(moment):
    """Microseconds since PostgreSQL's epoch (2000-01-01 00:00) of a naive (UTC) datetime."""
    days = moment.toordinal() - _PG_EPOCH_ORDINAL
    return ((days * 86400 + moment.hour * 3600 + moment.minute * 60 + moment.second) * 1000000
            + moment.microsecond)


def make_binary_converter(tt, options=None):
    """Converter producing one binary COPY field (length-prefixed), or raising ConversionError."""
    options = options or Options()
    base = tt.base
    if tt.is_text:
        limit = tt.length
        replace = options.invalid_utf8 == "replace"

        def conv_text(value):
            if isinstance(value, bytes):
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError:
                    if not replace:
                        text = _decode(value, options)
                    text = value.decode("utf-8", "replace")
                    value = text.encode("utf-8")
            else:
                text = _text_of(value, options)
                value = text.encode("utf-8")
            if limit is not None and len(text) > limit:
                raise ConversionError("%d characters exceed %s" % (len(text), tt.sql_type))
            if b"\x00" in value:
                raise ConversionError("contains a NUL character, which PostgreSQL text cannot store")
            return _PACK_LEN(len(value)) + value

        # short repeated values (tickers, regions, codes) are cached; long texts are not kept
        return _cached(conv_text, _short_text)
    text_conv = make_converter(tt, options)
    if base == "float8":
        def conv_f8(value):
            out = text_conv(value)
            return NULL_BINARY if out is None else PACK_FLOAT8(8, float(out))
        return conv_f8
    if base == "float4":
        def conv_f4(value):
            out = text_conv(value)
            if out is None:
                return NULL_BINARY
            f = float(out)
            if not math.isnan(f) and struct.unpack(">f", struct.pack(">f", f))[0] != f:
                raise ConversionError("%s cannot be stored exactly in %s" % (out, tt.sql_type))
            return _PACK_FLOAT4(4, f)
        return conv_f4
    if base in PACK_INT:
        pack = PACK_INT[base]

        def conv_int(value):
            out = text_conv(value)
            return NULL_BINARY if out is None else pack(INT_SIZE[base], int(out))
        return conv_int
    if base == "bool":
        return _cached(lambda value: _none_or(text_conv(value), lambda out: _PACK_BOOL(1, 1 if out == "t" else 0)))
    if base == "date":
        return _cached(lambda value: _none_or(text_conv(value), lambda out: _PACK_DATE(
            4, datetime.date.fromisoformat(out).toordinal() - _PG_EPOCH_ORDINAL)))
    if base in ("timestamptz", "timestamp"):
        zone = base == "timestamptz"

        def conv_ts(value):
            # 'YYYY-MM-DD HH:MM:SS' (or with T), naive and so UTC, is what SQLite's CURRENT_TIMESTAMP
            # stores: parsed directly instead of regex, ISO text and parse again (several times
            # faster; tables with a timestamp per row miss the cache on nearly every row).
            # Anything else, or a value datetime refuses, takes the general path and its messages.
            if value.__class__ is bytes and len(value) == 19 and _is_plain_timestamp(value):
                try:
                    return _PACK_TS(8, _naive_micros(datetime.datetime.fromisoformat(value.decode("ascii"))))
                except ValueError:
                    pass
            return _none_or(text_conv(value), lambda out: _PACK_TS(8, _ts_micros(out, zone)))

        return _cached(conv_ts)
    if base in ("json", "jsonb"):
        prefix = b"\x01" if base == "jsonb" else b""

        def conv_json(value):
            text = _text_of(value, options)
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
        return conv_json
    if base == "bytea":
        def conv_bytea(value):
            raw = value if isinstance(value, bytes) else _text_of(value, options).encode("utf-8")
            return _PACK_LEN(len(raw)) + raw
        return conv_bytea
    raise ValueError("no binary COPY form for %s" % tt.sql_type)


def _none_or(out, fn):
    return NULL_BINARY if out is None else fn(out)


def decode_binary_field(field, base):
    """Readable text of one binary field (for messages); None for NULL."""
    if field == NULL_BINARY:
        return None
    data = field[4:]
    try:
        if base in _TEXT_TYPES or base in ("json", "bytea"):
            return data.decode("utf-8", "replace")
        if base == "jsonb":
            return data[1:].decode("utf-8", "replace")
        if base == "float8":
            return repr(struct.unpack(">d", data)[0])
        if base == "float4":
            return repr(struct.unpack(">f", data)[0])
        if base in INT_SIZE:
            return str(int.from_bytes(data, "big", signed=True))
        if base == "bool":
            return "true" if data == b"\x01" else "false"
        if base == "date":
            return datetime.date.fromordinal(struct.unpack(">i", data)[0] + _PG_EPOCH_ORDINAL).isoformat()
        if base in ("timestamp", "timestamptz"):
            micros = struct.unpack(">q", data)[0]
            moment = datetime.datetime(2000, 1, 1) + datetime.timedelta(microseconds=micros)
            return moment.isoformat(" ") + ("+00" if base == "timestamptz" else "")
    except (struct.error, ValueError, OverflowError):
        pass
    return repr(data)
