"""The table mapping: how SQLite tables and columns land in PostgreSQL.

Mapping format (one entry per source table; every key optional)::

    ohlcv_data:
      target: ohlcv_data          # target table (default: same name)
      schema: public              # target schema (default: public)
      columns: {old: new}         # renames; unlisted source columns keep their name
      drop: [atr]                 # source columns deliberately NOT migrated (explicit;
                                  # an unmapped source column is an error, never dropped silently)
      derive:                     # target columns filled another way (module_utils/mapping/derive.py)
        region: {lookup: tickers, key: ticker, match: ticker, value: region, when: null}
                                  # when: null  -> only where the source value is NULL/absent (default)
                                  # when: always -> always looked up (source value ignored)
        collected_date: {copy: date}          # another source column of the same row
        date: {period_end: {fiscal_year: fiscal_year, period_type: period_type, report: data_source}}
      transforms:                 # per source column, applied before type conversion, in order
        timeframe: [strip, upper, {map: {DAILY: D}}, {null_if: ['N/A']}]
      keys: [ticker, region, timeframe, date]   # natural key (target names); default: primary key
                                  # it must be one of the target's unique constraints (any column
                                  # order); a key holding NULL is never a duplicate, unless that
                                  # index is NULLS NOT DISTINCT; no unique constraint: no duplicates
      on_conflict: update         # per-table override of the module's on_conflict:
                                  # error | skip (first row kept) | update (the latest row, highest
                                  # rowid, wins: what SQLite's INSERT OR REPLACE kept); every
                                  # superseded row is still recorded as a duplicate
      order_by: [date]            # stream order (source names); default rowid order
      references:                 # orphan checks against a SOURCE table (target col -> source col)
        - {table: tickers, columns: {ticker: ticker, region: region}}
      batch_rows: 50000           # per-table override

A lookup miss (the key is not in the lookup table, or maps to more than one
value) is a reject naming the key; a reference miss is a reject ("orphan").

Files at older schema stages fit the same mapping: names the file lacks and
source columns the target lacks are plan.warnings, not errors (see build_plan).
"""

from __future__ import annotations

from ansible.module_utils.convert.binary_copy import (
    BINARY_HEADER,
    BINARY_TRAILER,
    binary_supported,
    decode_binary_field,
    describe_binary_record,
    make_binary_converter,
    record_builder,
)
from ansible.module_utils.convert.text_copy import make_converter, unescape_copy_text
from ansible.module_utils.convert.types import Options
from ansible.module_utils.mapping.derive import DeriveContext, MappingError, compile_derive
from ansible.module_utils.mapping.names import check_no_fold_collision, resolve_name
from ansible.module_utils.mapping.row_converter import compile_row_converter
from ansible.module_utils.mapping.target import natural_key

TRANSFORM_NAMES = ("strip", "upper", "lower")
ON_CONFLICT = ("error", "skip", "update")


class SourceTableMissing(MappingError):
    """The SQLite file lacks a table of the mapping (an older schema stage: skipped, not an error)."""


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
        self.on_conflict = self.spec.get("on_conflict")  # None: the module's on_conflict
        if self.on_conflict not in (None, *ON_CONFLICT):
            raise MappingError("on_conflict of %s must be one of %s, got %r"
                               % (source_table, ", ".join(ON_CONFLICT), self.on_conflict))
        self.unique_key = None  # pg_target.UniqueKey duplicates are judged on (None: no natural key)
        self.convert_row = None
        self.target = None
        self.dropped = []
        self.unloaded = []  # source columns the target lacks (reported, not loaded)
        self.warnings = []  # schema-stage differences, one line each
        self.notes = []  # decisions worth showing (e.g. derived period ends)
        self.binary = False
        self.target_folded = False  # the target table is the lower-case form of the source name (names.py)
        self.rowless_key = []  # WITHOUT ROWID source: its primary key orders the rows, numbered by position

    def line_builder(self):
        """fields -> one COPY row in the table's format."""
        if self.binary:
            return record_builder(len(self.columns))
        join = "\t".join
        return lambda fields: join(fields) + "\n"

    def field_text(self, pos, field):
        """Readable text of one converted field (for messages)."""
        if self.binary:
            return decode_binary_field(field, self.columns[pos].base)
        return unescape_copy_text(field)

    def describe_record(self, record):
        """Readable form of a COPY row (for reject records)."""
        if not self.binary:
            return record.rstrip("\n")
        return describe_binary_record(record, [pc.base for pc in self.columns])

    def copy_options(self):
        return " WITH (FORMAT binary)" if self.binary else ""

    def stream_header(self):
        return BINARY_HEADER if self.binary else b""

    def stream_trailer(self):
        return BINARY_TRAILER if self.binary else b""

    @property
    def target_display(self):
        return "%s.%s" % (self.target_schema, self.target_name)


def epoch_readings(plan):
    """[(plan column, first value, its datetime)] of the columns whose converter read a number as a Unix
    epoch during the load (text_copy.py keeps the first one per converter)."""
    out = []
    for pc in plan.columns:
        first = getattr(pc.converter, "epoch_first", None)
        if first:
            out.append((pc, first[0][0], first[0][1]))
    return out


def epoch_note(pc, value, moment, rowid=None):
    """The note recording why a column's numbers became dates or times (issue 20: said once, per column)."""
    where = " at source rowid %s" % rowid if rowid is not None else ""
    name = pc.source if pc.source == pc.target else "%s (into %s)" % (pc.source, pc.target)
    return ("column %s: integer values read as Unix epoch seconds, UTC (milliseconds above 1e11; a YYYYMMDD "
            "integer is a date instead); first %r -> %s%s" % (name, value, moment.isoformat(" "), where))


def float4_notes(plan, options):
    """float4_rounding: accept is a choice to lose digits: each real column says so once."""
    if getattr(options, "float4_rounding", "reject") != "accept":
        return []
    return ["column %s: stored in %s rounded to float4 (about 7 significant digits) where needed "
            "(float4_rounding: accept)" % (pc.target, plan.target_display)
            for pc in plan.columns if pc.base == "float4"]


def build_plan(source_table, spec, source, target, options=None, lookups=None):  # noqa: PLR0917
    """Check the mapping against both sides and compile the row converter.

    A file at an older schema stage is not an error: source columns the mapping
    names but the file lacks are left out (plan.warnings says so once), and source
    columns the target lacks are not loaded (also a warning). What cannot work
    (a NOT NULL target column or a key column left without a value, an explicit
    rename or derive into a column the target lacks) is a MappingError.
    """
    options = options or Options()
    lookups = lookups if lookups is not None else {}
    spec = spec or {}
    if not isinstance(spec, dict):
        raise MappingError("mapping for %s must be a dict" % source_table)
    if not source.has_table(source_table):
        raise SourceTableMissing("the SQLite file has no table %s" % source_table)
    plan = TablePlan(source_table, spec)
    plan.target = target
    ctx = DeriveContext(source_table, source, source.columns(source_table), lookups)
    renames, drop, transforms = _named_columns(plan, spec, ctx)
    used_targets = _plan_source_columns(plan, target, ctx.src_cols, renames, drop, transforms)
    _plan_derives(plan, spec, target, ctx, used_targets, transforms)
    _report_stage(plan, ctx)
    _compile_formats(plan, target, options)
    plan.notes.extend(float4_notes(plan, options))
    _check_required(plan, target, used_targets, ctx.src_cols)
    plan.keys = _plan_keys(plan, spec, target, used_targets, ctx.src_cols)
    for ref in _as_list(spec.get("references"), "%s.references" % source_table):
        plan.references.append(_compile_reference(ref, source_table, source, used_targets))
    _encode_references(plan)
    _resolve_positions(plan)
    plan.convert_row = compile_row_converter(plan)
    return plan


def _named_columns(plan, spec, ctx):
    """renames, drop and transforms of the spec; names the file lacks are remembered in ctx."""
    table = plan.source_table
    renames = spec.get("columns") or {}
    if not isinstance(renames, dict):
        raise MappingError("%s.columns must be a dict {source column: target column}" % table)
    drop = _as_list(spec.get("drop"), "%s.drop" % table)
    transforms = spec.get("transforms") or {}
    if not isinstance(transforms, dict):
        raise MappingError("%s.transforms must be a dict {source column: [transforms]}" % table)
    for name, new in renames.items():
        ctx.need(name, "columns: %s -> %s" % (name, new))
    for name in drop:
        ctx.need(name, "drop")
    for name in transforms:
        ctx.need(name, "transforms")
    plan.order_by = [col for col in plan.order_by if ctx.need(col, "order_by")]
    compiled = {col: _compile_transforms(items, table, col) for col, items in transforms.items()}
    return renames, drop, compiled


def _plan_source_columns(plan, target, src_cols, renames, drop, transforms):  # noqa: PLR0917
    """One PlanColumn per loaded source column; returns the set of filled target columns."""
    used_targets = set()
    resolved, folded_cols = [], []
    for col in src_cols:
        if col in drop:
            plan.dropped.append(col)
            continue
        tname, folded = resolve_name(renames.get(col, col), target.columns, "column %s.%s" % (
            target.display, renames.get(col, col)), explicit=col in renames)
        if tname is None:
            if col in renames:
                raise MappingError("source column %s.%s is renamed to %r in `columns`, which %s does not have"
                                   % (plan.source_table, col, renames[col], target.display))
            plan.unloaded.append(col)
            continue
        if target.columns[tname].generated:
            raise MappingError("target column %s.%s is generated and cannot be loaded" % (target.display, tname))
        resolved.append((col, tname, folded))
        check_no_fold_collision(resolved, "source columns of %s:" % plan.source_table)
        if folded:
            folded_cols.append("%s -> %s" % (col, tname))
        plan.columns.append(PlanColumn(tname, source=col, transforms=transforms.get(col)))
        plan.source_columns.append(col)
        used_targets.add(tname)
    if folded_cols:
        plan.notes.append("columns loaded into PostgreSQL's unquoted (lower-case) form of their name: %s"
                          % ", ".join(folded_cols))
    return used_targets


def _plan_derives(plan, spec, target, ctx, used_targets, transforms):  # noqa: PLR0917
    derive = spec.get("derive") or {}
    if not isinstance(derive, dict):
        raise MappingError("%s.derive must be a dict {target column: how}" % plan.source_table)
    for tname, dspec in derive.items():
        if tname not in target.columns:
            raise MappingError("derive for %s names target column %r, which %s does not have"
                               % (plan.source_table, tname, target.display))
        existing = next((pc for pc in plan.columns if pc.target == tname), None)
        compiled = compile_derive(tname, dspec, ctx, existing.source if existing else None)
        if compiled is None:
            continue
        if compiled["kind"] == "copy":
            # a plain column reading another source column: nothing extra per row
            src = compiled["source"]
            if existing is None:
                existing = PlanColumn(tname)
                plan.columns.append(existing)
            existing.source, existing.transforms = src, transforms.get(src) or []
        elif existing is None:
            plan.columns.append(PlanColumn(tname, derive=compiled))
        else:
            existing.derive = compiled
        used_targets.add(tname)
        needed = compiled["source"] if compiled["kind"] == "copy" else compiled.get("key")
        if needed and needed not in plan.source_columns:
            plan.source_columns.append(needed)
    plan.notes.extend(ctx.notes)


def _report_stage(plan, ctx):
    """One warning per kind of schema-stage difference, naming the table and the columns."""
    table = plan.source_table
    if ctx.missing:
        where = {}
        for col, place in ctx.missing:
            where.setdefault(col, []).append(place)
        plan.warnings.append(
            "%s: the SQLite table has no column %s, which the mapping names; nothing is read from %s (a target "
            "column it would fill keeps the source value, or gets NULL or its default)"
            % (table, ", ".join("%s (%s)" % (col, "; ".join(places)) for col, places in where.items()),
               "it" if len(where) == 1 else "them"))
    if plan.unloaded:
        plan.warnings.append(
            "%s: source column%s %s ha%s no column in %s and %s not loaded (add %s to the target, rename in "
            "`columns`, or list in `drop` to silence this)"
            % (table, "s" if len(plan.unloaded) > 1 else "", ", ".join(plan.unloaded),
               "ve" if len(plan.unloaded) > 1 else "s", plan.target.display,
               "are" if len(plan.unloaded) > 1 else "is", "them" if len(plan.unloaded) > 1 else "it"))


def _compile_formats(plan, target, options):
    copy_format = getattr(options, "copy_format", "auto")
    plan.binary = copy_format != "text" and all(binary_supported(target.columns[pc.target].type) for pc in plan.columns)
    for pc in plan.columns:
        tcol = target.columns[pc.target]
        pc.base = tcol.type.base
        pc.text_converter = make_converter(tcol.type, options)
        pc.converter = make_binary_converter(tcol.type, options) if plan.binary else pc.text_converter
        pc.not_null = tcol.type.not_null


def _check_required(plan, target, used_targets, src_cols):
    missing = [c.name for c in target.columns.values()
               if c.type.not_null and not c.default and not c.identity and not c.generated
               and c.name not in used_targets]
    if not missing:
        return
    raise MappingError(
        "target %s requires NOT NULL column%s %s without a default, and the SQLite table %s has no column that "
        "fills %s (it has: %s); set `columns` ({source column: %s}) or `derive` for %s in the mapping "
        "(sqlite_migration_mapping), or give the target column a default"
        % (target.display, "s" if len(missing) > 1 else "", ", ".join(missing), plan.source_table,
           "them" if len(missing) > 1 else "it", ", ".join(src_cols) or "no columns", missing[0],
           plan.source_table))


def _plan_keys(plan, spec, target, used_targets, src_cols):
    """The natural key: the mapping's `keys`, else the target's primary key.

    A primary key the target generates itself (identity or default) and the source
    does not fill is unique by construction: then there is no key to check.
    """
    explicit = _as_list(spec.get("keys"), "%s.keys" % plan.source_table)
    keys = explicit or list(target.primary_key or [])
    unfilled = [k for k in keys if k not in used_targets]
    if not explicit and unfilled and all(target.columns[k].identity or target.columns[k].default for k in unfilled):
        return []
    for key in unfilled:
        if key in plan.dropped:
            why = "source column %r is listed in `drop`" % key
        elif key not in target.columns:
            why = "%s has no column %r" % (target.display, key)
        else:
            why = "the SQLite table %s has no column %r (it has: %s)" % (plan.source_table, key, ", ".join(src_cols))
        raise MappingError(
            "key column %r of %s is not loaded: %s; set `keys` for %s in the mapping (sqlite_migration_mapping) to "
            "columns the file has, or fill %r with `columns` ({source column: %s}) or `derive`"
            % (key, plan.source_table, why, plan.source_table, key, key))
    # duplicates are judged only on a real unique constraint (`keys` must name one)
    plan.unique_key = natural_key(plan.source_table, explicit, target, used_targets)
    return (explicit or list(plan.unique_key.columns)) if plan.unique_key else []


def _encode_references(plan):
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


def _resolve_positions(plan):
    """Position of every read column in the SQLite row tuple (0 is the rowid)."""
    col_pos = {col: pos for pos, col in enumerate(plan.source_columns, start=1)}
    for pc in plan.columns:
        pc.index = col_pos.get(pc.source) if pc.source else None
        if pc.derive and pc.derive["kind"] == "lookup":
            pc.derive["key_index"] = col_pos[pc.derive["key"]]


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
