"""The table mapping: how SQLite tables and columns land in PostgreSQL.

Mapping format (one entry per source table; every key optional)::

    ohlcv_data:
      target: ohlcv_data          # target table (default: same name)
      schema: public              # target schema (default: public)
      columns: {old: new}         # renames; unlisted source columns keep their name
      drop: [atr]                 # source columns deliberately NOT migrated (explicit;
                                  # an unmapped source column is an error, never dropped silently)
      derive:                     # target columns filled from a lookup in another SOURCE table
        region: {lookup: tickers, key: ticker, match: ticker, value: region, when: null}
                                  # when: null  -> only where the source value is NULL/absent (default)
                                  # when: always -> always looked up (source value ignored)
      transforms:                 # per source column, applied before type conversion, in order
        timeframe: [strip, upper, {map: {DAILY: D}}, {null_if: ['N/A']}]
      keys: [ticker, region, timeframe, date]   # natural key (target names); default: primary key
      order_by: [date]            # stream order (source names); default rowid order
      references:                 # orphan checks against a SOURCE table (target col -> source col)
        - {table: tickers, columns: {ticker: ticker, region: region}}
      batch_rows: 50000           # per-table override

A lookup miss (the key is not in the lookup table, or maps to more than one
value) is a reject naming the key; a reference miss is a reject ("orphan").
"""

from __future__ import annotations

import struct

from ansible.module_utils.value_convert import (
    BINARY_TRAILER,
    NULL,
    NULL_BINARY,
    PACK_FLOAT8,
    PACK_INT,
    ConversionError,
    Options,
    binary_supported,
    decode_binary_field,
    make_binary_converter,
    make_converter,
    unescape_copy_text,
)

TRANSFORM_NAMES = ("strip", "upper", "lower")


class MappingError(Exception):
    """The mapping does not fit the source or the target."""


def table_order(mapping, requested=None):
    """Tables to migrate in mapping order (which is FK order for the shipped mapping).

    requested: optional subset; unknown names are an error (the old script
    ignored them silently).
    """
    names = list(mapping)
    if not requested:
        return names
    unknown = [t for t in requested if t not in mapping]
    if unknown:
        raise MappingError("tables not in the mapping: %s (known: %s)" % (", ".join(unknown), ", ".join(names)))
    return [t for t in names if t in requested]


def _as_list(value, what):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise MappingError("%s must be a list" % what)
    return list(value)


class PlanColumn:
    """One column of the COPY column list."""

    def __init__(self, target, source=None, derive=None, transforms=None):
        self.target = target
        self.source = source
        self.derive = derive
        self.transforms = transforms or []
        self.index = None  # position in the SQLite row tuple (0 = rowid)
        self.converter = None  # produces the COPY field in the table's format
        self.text_converter = None  # text form, also used to explain a failure
        self.base = None
        self.not_null = False


class TablePlan:
    """Everything needed to stream one table."""

    def __init__(self, source_table, spec):
        self.source_table = source_table
        self.spec = spec or {}
        self.target_schema = self.spec.get("schema") or "public"
        self.target_name = self.spec.get("target") or source_table
        self.columns = []
        self.source_columns = []
        self.keys = []
        self.order_by = _as_list(self.spec.get("order_by"), "%s.order_by" % source_table)
        self.references = []
        self.batch_rows = self.spec.get("batch_rows")
        self.convert_row = None
        self.target = None
        self.dropped = []
        self.binary = False

    def record(self, fields):
        """One COPY row from its fields, in the table's format."""
        if self.binary:
            return self.field_count + b"".join(fields)
        return "\t".join(fields) + "\n"

    def field_text(self, pos, field):
        """Readable text of one converted field (for messages)."""
        if self.binary:
            return decode_binary_field(field, self.columns[pos].base)
        return unescape_copy_text(field)

    def describe_record(self, record):
        """Readable form of a COPY row (for reject records)."""
        if not self.binary:
            return record.rstrip("\n")
        out = []
        pos = 2
        try:
            for i in range(len(self.columns)):
                (length,) = struct.unpack(">i", record[pos:pos + 4])
                end = pos + 4 + max(length, 0)
                text = self.field_text(i, record[pos:end])
                out.append("NULL" if text is None else text)
                pos = end
        except Exception:  # a message helper must never fail the load
            return repr(record)
        return "\t".join(out)

    def copy_options(self):
        return " WITH (FORMAT binary)" if self.binary else ""

    def stream_header(self):
        return self.header if self.binary else b""

    def stream_trailer(self):
        return BINARY_TRAILER if self.binary else b""

    @property
    def target_display(self):
        return "%s.%s" % (self.target_schema, self.target_name)


def build_plan(source_table, spec, source, target, options=None, lookups=None):  # noqa: PLR0917
    """Check the mapping against both sides and compile the row converter."""
    options = options or Options()
    lookups = lookups if lookups is not None else {}
    spec = spec or {}
    if not isinstance(spec, dict):
        raise MappingError("mapping for %s must be a dict" % source_table)
    plan = TablePlan(source_table, spec)
    plan.target = target
    src_cols = source.columns(source_table)
    renames = spec.get("columns") or {}
    drop = _as_list(spec.get("drop"), "%s.drop" % source_table)
    derive = spec.get("derive") or {}
    transforms = spec.get("transforms") or {}
    for name in list(renames) + drop + list(transforms):
        if name not in src_cols:
            raise MappingError("mapping for %s names source column %r, which the SQLite table does not have "
                               "(it has: %s)"
                               % (source_table, name, ", ".join(src_cols)))
    for col in plan.order_by:
        if col not in src_cols:
            raise MappingError("order_by of %s names unknown source column %r" % (source_table, col))
    used_targets = set()
    for col in src_cols:
        if col in drop:
            plan.dropped.append(col)
            continue
        tname = renames.get(col, col)
        if tname not in target.columns:
            raise MappingError(
                "source column %s.%s has no target column %r in %s: rename it in `columns` or list it in `drop`"
                % (source_table, col, tname, target.display))
        tcol = target.columns[tname]
        if tcol.generated:
            raise MappingError("target column %s.%s is generated and cannot be loaded" % (target.display, tname))
        pc = PlanColumn(tname, source=col, transforms=_compile_transforms(transforms.get(col), source_table, col))
        plan.columns.append(pc)
        plan.source_columns.append(col)
        used_targets.add(tname)
    for tname, dspec in derive.items():
        if tname not in target.columns:
            raise MappingError("derive for %s names target column %r, which %s does not have"
                               % (source_table, tname, target.display))
        compiled = _compile_derive(tname, dspec, source_table, source, src_cols, renames, lookups)
        existing = [pc for pc in plan.columns if pc.target == tname]
        if existing:
            existing[0].derive = compiled
        else:
            pc = PlanColumn(tname, derive=compiled)
            plan.columns.append(pc)
            used_targets.add(tname)
    copy_format = getattr(options, "copy_format", "auto")
    plan.binary = copy_format != "text" and all(binary_supported(target.columns[pc.target].type) for pc in plan.columns)
    for pc in plan.columns:
        tcol = target.columns[pc.target]
        pc.base = tcol.type.base
        pc.text_converter = make_converter(tcol.type, options)
        pc.converter = make_binary_converter(tcol.type, options) if plan.binary else pc.text_converter
        pc.not_null = tcol.type.not_null
    if plan.binary:
        plan.field_count = struct.pack(">h", len(plan.columns))
        plan.header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    missing_required = [c.name for c in target.columns.values()
                        if c.type.not_null and not c.default and not c.identity and not c.generated
                        and c.name not in used_targets]
    if missing_required:
        raise MappingError("target %s requires NOT NULL column(s) %s that nothing in the mapping provides"
                           % (target.display, ", ".join(missing_required)))
    keys = _as_list(spec.get("keys"), "%s.keys" % source_table) or list(target.primary_key or [])
    for key in keys:
        if key not in used_targets:
            raise MappingError("key column %r of %s is not loaded from the source" % (key, source_table))
    plan.keys = keys
    for ref in _as_list(spec.get("references"), "%s.references" % source_table):
        plan.references.append(_compile_reference(ref, source_table, source, used_targets))
    by_target = {pc.target: pc for pc in plan.columns}
    for ref in plan.references:
        convs = [by_target[c].converter for c in ref["target_columns"]]
        encoded = set()
        for key in ref["keys"]:
            try:
                encoded.add(tuple(conv(v) if v is not None else None for conv, v in zip(convs, key)))
            except Exception:  # a key that cannot be converted can never match a converted row
                continue
        ref["keys"] = encoded
    col_pos = {}
    for pos, col in enumerate(plan.source_columns, start=1):
        col_pos[col] = pos
    for pc in plan.columns:
        pc.index = col_pos.get(pc.source) if pc.source else None
        if pc.derive:
            pc.derive["key_index"] = col_pos.get(pc.derive["key"])
            if pc.derive["key_index"] is None:
                raise MappingError("derive %s.%s: lookup key column %r is not loaded from the source"
                                   % (source_table, pc.target, pc.derive["key"]))
    plan.convert_row = compile_row_converter(plan)
    return plan


def _compile_transforms(items, table, col):
    out = []
    for item in _as_list(items, "transforms of %s.%s" % (table, col)):
        if isinstance(item, str):
            if item not in TRANSFORM_NAMES:
                raise MappingError("unknown transform %r for %s.%s (known: %s, map, null_if)"
                                   % (item, table, col, ", ".join(TRANSFORM_NAMES)))
            out.append((item, None))
        elif isinstance(item, dict) and len(item) == 1:
            name, arg = next(iter(item.items()))
            if name == "map" and isinstance(arg, dict):
                out.append(("map", {str(k): v for k, v in arg.items()}))
            elif name == "null_if":
                out.append(("null_if", {str(v) for v in _as_list(arg, "null_if")}))
            else:
                raise MappingError("unknown transform %r for %s.%s" % (item, table, col))
        else:
            raise MappingError("bad transform %r for %s.%s" % (item, table, col))
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


def _compile_derive(tname, dspec, table, source, src_cols, renames, lookups):  # noqa: PLR0917
    if not isinstance(dspec, dict) or "lookup" not in dspec or "key" not in dspec:
        raise MappingError("derive %s.%s needs at least `lookup` and `key`" % (table, tname))
    lookup_table = dspec["lookup"]
    key = dspec["key"]
    match = dspec.get("match", key)
    value = dspec.get("value", tname)
    when = dspec.get("when", "null")
    if when not in ("null", "always"):
        raise MappingError("derive %s.%s: when must be null or always" % (table, tname))
    if key not in src_cols:
        raise MappingError("derive %s.%s: key %r is not a column of source table %s" % (table, tname, key, table))
    if not source.has_table(lookup_table):
        raise MappingError("derive %s.%s: lookup table %r is not in the SQLite file" % (table, tname, lookup_table))
    lcols = source.columns(lookup_table)
    for col in (match, value):
        if col not in lcols:
            raise MappingError("derive %s.%s: lookup table %s has no column %r" % (table, tname, lookup_table, col))
    cache_key = (lookup_table, match, value)
    if cache_key not in lookups:
        lookups[cache_key] = source.lookup(lookup_table, match, value)
    return {"table": lookup_table, "key": key, "match": match, "value": value,
            "when": when, "map": lookups[cache_key]}


def _compile_reference(ref, table, source, used_targets):
    if not isinstance(ref, dict) or "table" not in ref or not ref.get("columns"):
        raise MappingError("references of %s: each item needs `table` and `columns`" % table)
    rtable = ref["table"]
    if not source.has_table(rtable):
        raise MappingError("references of %s: table %r is not in the SQLite file" % (table, rtable))
    cols = dict(ref["columns"])
    for tcol in cols:
        if tcol not in used_targets:
            raise MappingError("references of %s: column %r is not loaded" % (table, tcol))
    rcols = source.columns(rtable)
    for scol in cols.values():
        if scol not in rcols:
            raise MappingError("references of %s: %s has no column %r" % (table, rtable, scol))
    return {"table": rtable, "target_columns": list(cols), "keys": source.key_set(rtable, list(cols.values()))}


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


def compile_row_converter(plan):
    """Generate a fast function ``row -> (fields list)`` for the plan.

    The generated code inlines the NULL test and calls one converter per
    column; any ConversionError propagates and the caller re-runs
    ``explain_row`` to name the column and value.
    """
    env = {"NULL": NULL_BINARY if plan.binary else NULL, "ConversionError": ConversionError,
           "apply_transforms": apply_transforms, "derive": _derive_value, "pd": PACK_FLOAT8}
    empty_out = NULL_BINARY if plan.binary else None  # what a converter returns for an empty value
    for base, pack in PACK_INT.items():
        env["p_" + base] = pack
    sizes = {"int2": 2, "int4": 4, "int8": 8}
    lines = ["def convert_row(row):"]
    names = []
    for i, pc in enumerate(plan.columns):
        env["c%d" % i] = pc.converter
        var = "f%d" % i
        names.append(var)
        if pc.index is not None:
            lines.append("    v = row[%d]" % pc.index)
        else:
            lines.append("    v = None")
        if pc.transforms:
            env["t%d" % i] = pc.transforms
            lines.append("    v = apply_transforms(v, t%d)" % i)
        if pc.derive:
            env["d%d" % i] = pc.derive
            if pc.derive["when"] == "always" or pc.index is None:
                lines.append("    v = derive(row, d%d)" % i)
            else:
                lines.append("    if v is None:")
                lines.append("        v = derive(row, d%d)" % i)
        call = "c%d(v)" % i
        cache = None
        if getattr(pc.converter, "cache", None) is not None:
            cache = "m%d" % i
            env[cache] = pc.converter.cache
        conv = "c%d" % i
        if pc.not_null:
            # NOT NULL: the None and empty-value checks move into s<i>, off the common path
            # (a cache never holds an empty value, a float packed directly cannot be one)
            conv = "s%d" % i
            env[conv] = _not_null(pc.converter, empty_out)
            call = "%s(v)" % conv
        if plan.binary and pc.base == "float8" and not pc.transforms:
            call = "(pd(8, v) if v.__class__ is float else %s(v))" % conv
        elif plan.binary and pc.base in sizes and not pc.transforms:
            call = "(p_%s(%d, v) if v.__class__ is int else %s(v))" % (pc.base, sizes[pc.base], conv)
        if pc.not_null:
            _assign(lines, "    ", var, call, cache)
        elif cache is not None:
            lines.append("    if v is None:")
            lines.append("        %s = NULL" % var)
            lines.append("    else:")
            _assign(lines, "        ", var, call, cache)
        else:
            lines.append("    %s = NULL if v is None else %s" % (var, call))
            if not plan.binary:
                lines.append("    if %s is None:" % var)
                lines.append("        %s = NULL" % var)
    lines.append("    return [%s]" % ", ".join(names))
    code = "\n".join(lines) + "\n"
    exec(compile(code, "<sqlite_migrate row converter %s>" % plan.source_table, "exec"), env)
    return env["convert_row"]


def _not_null(converter, empty_out):
    """converter for a NOT NULL column: NULL and empty values are conversion errors."""
    def strict(value):
        if value is None:
            raise ConversionError("NULL in NOT NULL column")
        out = converter(value)
        if out is empty_out:
            raise ConversionError("empty value in NOT NULL column")
        return out
    return strict


def _assign(lines, indent, var, call, cache=None):
    """var = call(v), looking the value up in the converter's cache (named `cache` in the
    generated code) first: a dict lookup inline is several times cheaper than calling the
    caching wrapper."""
    if cache is None:
        lines.append("%s%s = %s" % (indent, var, call))
        return
    lines.append("%s%s = %s.get(v)" % (indent, var, cache))
    lines.append("%sif %s is None:" % (indent, var))
    lines.append("%s    %s = %s" % (indent, var, call))


def explain_row(plan, row):
    """Slow path: (target column, source value, reason) of the first failing column."""
    for pc in plan.columns:
        value = row[pc.index] if pc.index is not None else None
        shown = value
        try:
            if pc.transforms:
                value = apply_transforms(value, pc.transforms)
            if pc.derive and (value is None or pc.derive["when"] == "always"):
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
