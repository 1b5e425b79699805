"""Derived target columns of the table mapping (its `derive` key).

Three kinds, each a dict under the target column's name::

    region: {lookup: tickers, key: ticker, match: ticker, value: region, when: null}
        looked up in another SOURCE table; a miss is a reject (orphan). when: null fills
        only NULL/absent values (default), always ignores the row's own value.
    collected_date: {copy: date}
        the value of another source column of the same row (after that column's transforms).
    date: {period_end: {fiscal_year: fiscal_year, period_type: period_type, report: data_source},
           when: auto}
        the fiscal period end of a fundamentals row: ANNUAL -> <fiscal_year>-12-31,
        SEMI-ANNUAL -> -06-30, QUARTERLY with `report` DART-<year>-11013 (the Q1 report)
        -> -03-31 and DART-<year>-11014 (Q3) -> -09-30. Values match exactly, as the
        platform writes them (the rule of schema step 0007). A QUARTERLY row without one
        of those codes names no quarter: it gets -12-31, a date no coded row uses, so
        the rows a fiscal_year-keyed file keeps apart stay apart (fiscal_year and
        collected_date keep what the file said). Rows without a fiscal_year (or whose
        fiscal_year is not a year), DAILY rows and every other period type keep the
        source value.
        when: auto (default) derives only when no unique key of the SQLite table includes
        the column (a file keyed on fiscal_year, where the date is the collection date);
        always / never force it.

A kind that needs a source column the file lacks is left out and reported by the
caller (the target column then keeps the source value, or gets NULL / its default).
"""

from __future__ import annotations

import math
import re

LOOKUP_WHEN = ("null", "always")
PERIOD_WHEN = ("auto", "always", "never")
PERIOD_DEFAULTS = {"fiscal_year": "fiscal_year", "period_type": "period_type", "report": "data_source"}
PERIOD_ENDS = {"ANNUAL": "12-31", "SEMI-ANNUAL": "06-30"}
QUARTER_ENDS = {"11013": "03-31", "11014": "09-30"}  # DART reprt_code of the Q1 and Q3 reports
UNKNOWN_QUARTER_END = "12-31"  # no quarterly report ends there (Q4 is the annual report)
REPORT_CODE = re.compile(r"DART-[0-9]{4}-(1101[34])")  # the same rule as schema step 0007


class MappingError(Exception):
    """The mapping does not fit the source or the target."""


class DeriveContext:
    """What compiling a derive needs: the source table, its columns, the lookup cache."""

    def __init__(self, table, source, src_cols, lookups):
        self.table = table
        self.source = source
        self.src_cols = src_cols
        self.lookups = lookups
        self.missing = []  # (source column, where the mapping names it)
        self.notes = []

    def need(self, col, where):
        """True when the source table has col; otherwise remember it as missing."""
        if col in self.src_cols:
            return True
        self.missing.append((col, where))
        return False


def derive_kind(tname, dspec, table):
    if isinstance(dspec, dict):
        for kind in ("lookup", "copy", "period_end"):
            if kind in dspec:
                return kind
    raise MappingError("derive %s.%s must be a dict with `lookup` (and `key`), `copy` or `period_end`, got %r"
                       % (table, tname, dspec))


def compile_derive(tname, dspec, ctx, own_source):
    """The compiled derive of one target column, or None when it cannot (or must not) apply.

    own_source: the source column loaded into the same target column (None if none).
    """
    kind = derive_kind(tname, dspec, ctx.table)
    if kind == "lookup":
        return _compile_lookup(tname, dspec, ctx)
    if kind == "copy":
        col = dspec["copy"]
        if not isinstance(col, str):
            raise MappingError("derive %s.%s: copy names one source column, got %r" % (ctx.table, tname, col))
        return {"kind": "copy", "source": col} if ctx.need(col, "derive.%s copy" % tname) else None
    return _compile_period_end(tname, dspec, ctx, own_source)


def _compile_lookup(tname, dspec, ctx):
    if "key" not in dspec:
        raise MappingError("derive %s.%s needs at least `lookup` and `key`" % (ctx.table, tname))
    lookup_table, key = dspec["lookup"], dspec["key"]
    match = dspec.get("match", key)
    value = dspec.get("value", tname)
    when = dspec.get("when", "null")
    if when not in LOOKUP_WHEN:
        raise MappingError("derive %s.%s: when must be null or always" % (ctx.table, tname))
    if not ctx.need(key, "derive.%s key" % tname):
        return None
    if not ctx.source.has_table(lookup_table):
        raise MappingError("derive %s.%s: lookup table %r is not in the SQLite file; without it %s cannot be "
                           "looked up (set `derive` of %s in the mapping)" % (ctx.table, tname, lookup_table, tname,
                                                                            ctx.table))
    lcols = ctx.source.columns(lookup_table)
    for col in (match, value):
        if col not in lcols:
            raise MappingError("derive %s.%s: lookup table %s has no column %r"
                               % (ctx.table, tname, lookup_table, col))
    cache_key = (lookup_table, match, value)
    if cache_key not in ctx.lookups:
        ctx.lookups[cache_key] = ctx.source.lookup(lookup_table, match, value)
    return {"kind": "lookup", "table": lookup_table, "key": key, "match": match, "value": value,
            "when": when, "map": ctx.lookups[cache_key]}


def _compile_period_end(tname, dspec, ctx, own_source):
    cols = dict(PERIOD_DEFAULTS)
    inner = dspec.get("period_end")
    if inner not in (None, True):
        if not isinstance(inner, dict) or set(inner) - set(PERIOD_DEFAULTS):
            raise MappingError("derive %s.%s: period_end takes a dict with fiscal_year, period_type and report "
                               "(source column names), got %r" % (ctx.table, tname, inner))
        cols.update(inner)
    when = dspec.get("when", "auto")
    if when not in PERIOD_WHEN:
        raise MappingError("derive %s.%s: when must be auto, always or never, got %r" % (ctx.table, tname, when))
    if when == "never":
        ctx.notes.append("%s: kept as in the source (derive period_end, when: never)" % tname)
        return None
    where = "derive.%s period_end" % tname
    if not (ctx.need(cols["fiscal_year"], where) and ctx.need(cols["period_type"], where)):
        return None
    report = cols["report"] if cols["report"] and ctx.need(cols["report"], where) else None
    if when == "auto" and own_source:
        keyed = [k for k in ctx.source.unique_keys(ctx.table) if own_source in k]
        if keyed:
            ctx.notes.append("%s: kept as in the source: the SQLite table's unique key (%s) includes %s"
                             % (tname, ", ".join(keyed[0]), own_source))
            return None
    ends = period_end_map(ctx.source, ctx.table, cols["fiscal_year"], cols["period_type"], report)
    ctx.notes.append("%s: the fiscal period end (from %s) replaces the source value in %d rows%s"
                     % (tname, ", ".join(c for c in (cols["fiscal_year"], cols["period_type"], report) if c),
                        len(ends), "" if when == "always" or not own_source else
                        " (no unique key of the SQLite table includes %s)" % own_source))
    return {"kind": "period_end", "table": ctx.table, "key": None, "key_index": 0, "when": "always", "map": ends}


def period_end_map(source, table, fiscal_year, period_type, report):
    """rowid -> period end (bytes YYYY-MM-DD) of every row whose period end replaces the source value."""
    wanted = [fiscal_year, period_type] + ([report] if report else [])
    out = {}
    for row in source.select(table, wanted, not_null=[fiscal_year]):
        end = period_end(row[1], row[2], row[3] if report else None)
        if end is not None:
            out[row[0]] = end.encode("ascii")
    return out


def period_end(fiscal_year, period_type, report=None):
    """The fiscal period end 'YYYY-MM-DD' of one row, or None when the source date stays."""
    year = _year(fiscal_year)
    if year is None or period_type is None:
        return None
    suffix = PERIOD_ENDS.get(period_type)
    if period_type == "QUARTERLY":
        found = REPORT_CODE.fullmatch(str(report)) if report is not None else None
        suffix = QUARTER_ENDS.get(found.group(1)) if found else UNKNOWN_QUARTER_END
    return None if suffix is None else "%04d-%s" % (year, suffix)


def _year(value):
    """An int year 1-9999 from an SQLite value, or None (NULL or not a year)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    elif not isinstance(value, int):
        text = str(value).strip()
        if not text.isdigit():
            return None
        value = int(text)
    return value if 1 <= value <= 9999 else None
