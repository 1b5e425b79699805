"""What every COPY converter shares: the target column's type, the options, the error, and
reading a SQLite value.

The converters themselves are in text_copy.py (fields of a text-format COPY stream) and
binary_copy.py (fields of a binary-format stream); the rules they both follow (what is
accepted, what is a reject and why) are written at the top of text_copy.py.
"""

from __future__ import annotations

import math

INT_RANGES = {
    "int2": (-(2**15), 2**15 - 1),
    "int4": (-(2**31), 2**31 - 1),
    "int8": (-(2**63), 2**63 - 1),
}

TEXT_TYPES = frozenset(("text", "varchar", "bpchar", "name", "citext", "char"))


class ConversionError(ValueError):
    """A value that cannot be stored losslessly in the target column."""


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
        return self.base in TEXT_TYPES


class Options:
    """Conversion policy knobs (module parameters)."""

    __slots__ = ("copy_format", "empty_as_null", "float4_rounding", "invalid_utf8")

    def __init__(self, empty_as_null=True, invalid_utf8="reject", copy_format="auto", float4_rounding="reject"):
        self.empty_as_null = empty_as_null
        self.invalid_utf8 = invalid_utf8
        self.copy_format = copy_format
        self.float4_rounding = float4_rounding  # reject: lossless; accept: real's rounding is wanted



def decode_utf8(value, options):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        if options.invalid_utf8 == "replace":
            return value.decode("utf-8", "replace")
        raise ConversionError("invalid UTF-8 (byte 0x%02x at offset %d)" % (value[exc.start], exc.start)) from None


def text_of(value, options):
    """A non-NULL SQLite value as str (numbers keep their SQLite text form)."""
    if isinstance(value, bytes):
        return decode_utf8(value, options)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    raise ConversionError("unsupported SQLite value type %s" % type(value).__name__)


def float_text(value):
    if math.isnan(value):
        return "NaN"
    if value == math.inf:
        return "Infinity"
    if value == -math.inf:
        return "-Infinity"
    return repr(value)



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

