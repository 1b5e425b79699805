"""The row converter of a table plan: one SQLite row -> the list of its COPY fields.

It is a table of functions, one per column, each taking the column's source value
(after its transforms and derive) and returning the field in the table's COPY format.
Which function a column gets depends on the classes of the row's values (a row's
"shape": which columns are NULL, which hold a float): the list for each shape seen is
built once and kept, so the common cases need no Python frame per column:

* NULL in a nullable column: ``{None: NULL}.get``;
* a binary float8/int column holding a float/int (SQLite REAL, INTEGER): the packer;
  any other column holding a number: its converter alone (a number is never empty);
* a converter whose output depends on the value alone and whose values repeat
  (`cacheable`: tickers, dates, timestamps, booleans): a dict of the fields already
  seen, whose ``__getitem__`` is the function; a miss (``__missing__``) converts,
  checks and remembers;
* anything else: the column's converter with the NULL and NOT NULL checks around it.

Measured with scripts/bench-converter (README, "Benchmarks"). Any failure propagates;
the caller then runs explain_row (the slow path) to name the column, the value and
the reason.
"""

from __future__ import annotations

import operator
from functools import partial

from ansible.module_utils.convert.binary_copy import INT_SIZE, NULL_BINARY, PACK_FLOAT8, PACK_INT
from ansible.module_utils.convert.text_copy import NULL
from ansible.module_utils.convert.types import ConversionError

CACHE_LIMIT = 100000  # fields remembered per column
SHAPE_LIMIT = 256  # row shapes remembered per table; past that, rows take the general functions


def compile_row_converter(plan):
    """``row -> [field, ...]`` for the plan (a table of closures, nothing generated)."""
    columns = _ColumnFunctions(plan)
    values_of = _values_reader(plan.columns)
    by_shape = {}
    call = operator.call

    def convert_row(row):
        values = values_of(row)
        shape = tuple(map(type, values))
        fields = by_shape.get(shape)
        if fields is None:
            fields = columns.for_shape(shape)
            if len(by_shape) < SHAPE_LIMIT:
                by_shape[shape] = fields
        return list(map(call, fields, values))

    return convert_row


class _ColumnFunctions:
    """Per column: the general value -> field function and the fast ones by value class."""

    def __init__(self, plan):
        null = NULL_BINARY if plan.binary else NULL
        self.general = []
        self.fast = []
        for pc in plan.columns:
            field = _checked(pc.converter, pc.not_null, null)
            cacheable = getattr(pc.converter, "cacheable", None)
            if cacheable:
                field = _FieldCache(field, cacheable).__getitem__
            fast = {} if pc.not_null else {type(None): {None: null}.get}
            if not cacheable:
                # a number is never an empty value: no NULL or NOT NULL check around the converter
                fast[int] = fast[float] = pc.converter
            if plan.binary and not cacheable and pc.base == "float8":
                fast[float] = partial(PACK_FLOAT8, 8)
            elif plan.binary and not cacheable and pc.base in PACK_INT:
                fast[int] = partial(PACK_INT[pc.base], INT_SIZE[pc.base])
            self.general.append(field)
            self.fast.append(fast)

    def for_shape(self, shape):
        """The function of every column for values of these classes."""
        return [fast.get(cls, general) for fast, general, cls in zip(self.fast, self.general, shape)]


def _values_reader(columns):
    """row -> the source value of every column, transforms and derives applied."""
    getter = _tuple_getter([pc.index or 0 for pc in columns])
    special = [(pos, _value_function(pc)) for pos, pc in enumerate(columns)
               if pc.index is None or pc.transforms or pc.derive]
    if not special:
        return getter
    # a column derived only where its source value is NULL (the region lookup) costs nothing
    # on the rows that have the value
    if_null = [pc.index for pc in columns if pc.index is not None and not pc.transforms and pc.derive
               and pc.derive["kind"] == "lookup" and pc.derive["when"] != "always"]
    sources = _tuple_getter(if_null) if len(if_null) == len(special) else None

    def values_of(row):
        if sources is not None and None not in sources(row):
            return getter(row)
        values = list(getter(row))
        for pos, value_of in special:
            values[pos] = value_of(row, values[pos])
        return values

    return values_of


def _tuple_getter(positions):
    """itemgetter that always returns a tuple (itemgetter(i) alone returns the bare item)."""
    get = operator.itemgetter(*positions)
    if len(positions) > 1:
        return get
    return lambda row: (get(row),)


def _value_function(pc):
    """(row, value read at pc.index) -> the value to convert, for a transformed or derived column."""
    transforms, derive = pc.transforms, pc.derive
    plain = pc.index is not None

    def value_of(row, value):
        value = value if plain else None
        if transforms:
            value = apply_transforms(value, transforms)
        if derive and derive["kind"] == "period_end":
            # rowid -> period end, computed when the plan was built; other rows keep their value
            return derive["map"].get(row[0], value)
        if derive and (value is None or derive["when"] == "always" or not plain):
            return _derive_value(row, derive)
        return value

    return value_of


def _checked(converter, not_null, null):
    """converter with SQL NULL handled: NULL (and an empty value) is the NULL field, or a
    ConversionError in a NOT NULL column."""
    if not_null:
        def strict(value):
            if value is None:
                raise ConversionError("NULL in NOT NULL column")
            out = converter(value)
            if out is None or out is NULL_BINARY:
                raise ConversionError("empty value in NOT NULL column")
            return out
        return strict

    def nullable(value):
        if value is None:
            return null
        out = converter(value)
        return null if out is None else out
    return nullable


class _FieldCache(dict):
    """value -> field, converting (and remembering) on a miss.

    What field() refuses (NULL or an empty value in a NOT NULL column, a bad value) raises
    and is never remembered, so every occurrence is refused the same way."""

    __slots__ = ("cacheable", "field")

    def __init__(self, field, cacheable):
        super().__init__()
        self.field, self.cacheable = field, cacheable

    def __missing__(self, value):
        out = self.field(value)
        if len(self) < CACHE_LIMIT and (self.cacheable is True or self.cacheable(value)):
            self[value] = out
        return out


def apply_transforms(value, transforms):
    """Apply transforms to one value (bytes TEXT is decoded first)."""
    for name, arg in transforms:
        if value is None:
            return None
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ConversionError("invalid UTF-8 before transform %s" % name) from None
        text = value if isinstance(value, str) else str(value)
        if name == "strip":
            value = text.strip() if isinstance(value, str) else value
        elif name == "upper":
            value = text.upper() if isinstance(value, str) else value
        elif name == "lower":
            value = text.lower() if isinstance(value, str) else value
        elif name == "map":
            if text in arg:
                value = arg[text]
        elif name == "null_if":
            if text in arg:
                value = None
    return value


def _derive_value(row, d):
    raw = row[d["key_index"]]
    if raw is None:
        raise ConversionError("cannot look up %s: %s is NULL" % (d["value"], d["key"]))
    key = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    found = d["map"].get(key)
    if found is None:
        raise ConversionError("%s %r not found in source table %s (orphan; region is looked up, never guessed)"
                              % (d["key"], key, d["table"]))
    if isinstance(found, frozenset):
        raise ConversionError("%s %r is ambiguous in %s: %s" % (d["key"], key, d["table"], sorted(found)))
    return found


def explain_row(plan, row):
    """Slow path: (target column, source value, reason) of the first failing column."""
    for pc in plan.columns:
        value = row[pc.index] if pc.index is not None else None
        shown = value
        try:
            if pc.transforms:
                value = apply_transforms(value, pc.transforms)
            if pc.derive and pc.derive["kind"] == "period_end":
                value = shown = pc.derive["map"].get(row[0], value)
            elif pc.derive and (value is None or pc.derive["when"] == "always"):
                shown = row[pc.derive["key_index"]]
                value = _derive_value(row, pc.derive)
            if value is None:
                if pc.not_null:
                    raise ConversionError("NULL in NOT NULL column")
                continue
            if pc.text_converter(value) is None and pc.not_null:
                raise ConversionError("empty value in NOT NULL column")
            pc.converter(value)
        except ConversionError as exc:
            return pc.target, shown, str(exc)
        except Exception as exc:  # a converter bug must still be a reject, not a crash
            return pc.target, shown, "conversion failed: %s: %s" % (type(exc).__name__, exc)
    return None, None, "unknown conversion error"
