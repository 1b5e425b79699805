"""SQLite tables outside the migration mapping: copied into their own schema, or listed.

A real platform file holds tables the 19-table target does not know (backtest results,
Kelly history, filter caches, GPT analyses, ...). Nothing may be left behind silently, so:

* with ``legacy_schema`` set (e.g. ``sqlite_legacy``), every SQLite table that is not in the
  mapping (internal ``sqlite_*`` tables aside) gets a table of the same name in that schema,
  created (if absent) from its declared column types and primary key, and is then loaded by
  the same engine as the mapped tables (identity mapping, appended after them, same
  checkpoints, same rejects, same validation);
* with ``legacy_schema`` empty, each such table is listed with its row count
  (``unmapped_tables``) and a warning.

Column types (decided from the declared type's SQLite affinity AND the storage classes the
column really holds, because SQLite never checks a declared type):

* a column holding blobs becomes ``bytea`` (text cannot store arbitrary bytes: invalid UTF-8 and
  NUL are refused, so a blob would be rejected or altered). When the same column also holds text or
  numbers, those keep their bytes (text as its UTF-8 bytes, numbers as their decimal text) but not
  their storage class; a warning says so.
* NUMERIC affinity (DECIMAL, BOOLEAN, DATE, DATETIME, TIMESTAMP, ...) becomes ``text``: SQLite stores
  a value there as INTEGER or REAL when it looks like a number and as TEXT otherwise, so one column
  can hold 1, 1.5 and '2024-01-05' side by side, and a declared DATE or BOOLEAN says what the writer
  meant, not what the file holds. Only text keeps all three without a guess: integers keep their
  digits, reals their shortest text that reads back to the same double (3.0 stays '3.0'), text its
  characters.
* INTEGER affinity becomes ``bigint`` (SQLite integers are 64-bit); REAL/FLOA/DOUB ``double
  precision``; TEXT/CHAR/CLOB ``text``; no type ``bigint``/``double precision``/``text`` by content.
  When a column holds values its declared type cannot keep (text in an INTEGER column, reals among
  integers), it falls back to the narrowest type that keeps every value (``numeric`` for integers
  and reals together: exact for both; ``text`` when text is present) and a warning names it.

Keys: the primary key (single or composite) becomes the primary key. An INTEGER PRIMARY KEY /
AUTOINCREMENT id is kept as a plain ``bigint`` value (no sequence, no default: the archive keeps
its ids). SQLite allows NULL in a non-integer primary key; when the data holds such a NULL the key
becomes a UNIQUE constraint instead (NULLs distinct, as in SQLite) and a warning says so. NOT NULL
is kept. Defaults, other UNIQUE constraints, indexes and foreign keys are not copied: SQLite never
enforced these foreign keys, and the copy is an archive of what the file holds.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple

from ansible.module_utils.core.quant_meta import checkpointed_tables, checkpoints_exist, reset_tables
from ansible.module_utils.core.sqlite_source import SourceError, qi

MAX_IDENT_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: longer names would be truncated silently
LOCK_KEY = 0x51AE7AB1  # serialises concurrent CREATE ... IF NOT EXISTS of the legacy tables

# Storage classes observed in a column, as bits (SQLite typeof()).
INTEGER, REAL, TEXT, BLOB = 1, 2, 4, 8
_CLASS_SQL = "CASE typeof(%s) WHEN 'integer' THEN 1 WHEN 'real' THEN 2 WHEN 'text' THEN 4 WHEN 'blob' THEN 8 END"
_RESERVED_SCHEMAS = ("public", "quant_meta", "information_schema")
_RESERVED_PREFIXES = ("pg_", "_timescaledb", "timescaledb_")

LegacyColumn = namedtuple("LegacyColumn", "name declared pg_type not_null note")


class LegacyError(Exception):
    """A legacy table (or the legacy schema name) cannot be copied as asked."""


class LegacyTable:
    """The decided PostgreSQL shape of one unmapped SQLite table."""

    def __init__(self, name, columns, key_kind, key_columns, notes):
        self.name = name
        self.columns = columns
        self.key_kind = key_kind  # "PRIMARY KEY", "UNIQUE" or None
        self.key_columns = key_columns
        self.notes = notes


# -- pure decisions ---------------------------------------------------------------------------


def affinity(declared):
    """SQLite's column affinity of a declared type (datatype3.html, section 3.1, in rule order)."""
    up = (declared or "").upper()
    if "INT" in up:
        return "INTEGER"
    if "CHAR" in up or "CLOB" in up or "TEXT" in up:
        return "TEXT"
    if "BLOB" in up or not up.strip():
        return "BLOB"
    if "REAL" in up or "FLOA" in up or "DOUB" in up:
        return "REAL"
    return "NUMERIC"


def _class_names(classes):
    return "/".join(
        n for bit, n in ((INTEGER, "integer"), (REAL, "real"), (TEXT, "text"), (BLOB, "blob")) if classes & bit
    )


def column_type(declared, classes):
    """(PostgreSQL type, note or None) for a column: declared SQLite type + bitmask of stored classes."""
    aff = affinity(declared)
    shown = declared or "no type"
    if classes & BLOB:
        if classes == BLOB:
            return "bytea", None
        return "bytea", (
            "declared %s, holds %s: bytea keeps every byte (text as UTF-8, numbers as decimal "
            "text) but not which values were text or numbers" % (shown, _class_names(classes))
        )
    if aff == "NUMERIC":
        return "text", None
    if aff == "TEXT" or classes & TEXT:
        note = (
            None
            if aff in ("TEXT", "BLOB")
            else "declared %s, holds %s: stored as text" % (shown, _class_names(classes))
        )
        return "text", note
    if classes == INTEGER | REAL:
        note = None if aff == "BLOB" else "declared %s, holds integer/real: stored as numeric (exact for both)" % shown
        return "numeric", note
    if aff == "INTEGER" or (aff == "BLOB" and classes == INTEGER):
        return "bigint", None
    if aff == "REAL" or (aff == "BLOB" and classes == REAL):
        return "double precision", None
    return ("bytea" if declared else "text"), None  # declared BLOB, or no type, and no values


def check_identifier(name, what):
    """Refuse names PostgreSQL would truncate (over 63 bytes) or cannot hold (empty, NUL)."""
    if not name or "\x00" in name:
        raise LegacyError("%s %r is not a valid PostgreSQL identifier" % (what, name))
    size = len(name.encode("utf-8"))
    if size > MAX_IDENT_BYTES:
        raise LegacyError(
            "%s %r is %d bytes long; PostgreSQL identifiers hold at most %d bytes and would be "
            "truncated" % (what, name, size, MAX_IDENT_BYTES)
        )


def check_legacy_schema(schema, mapped_schemas):
    """The legacy schema must be a valid name apart from every mapped target's schema and the system's."""
    check_identifier(schema, "legacy_schema")
    if schema in _RESERVED_SCHEMAS or schema in mapped_schemas or schema.startswith(_RESERVED_PREFIXES):
        raise LegacyError(
            "legacy_schema %r is used by the mapped tables or the system; choose a schema of its "
            "own such as sqlite_legacy (legacy tables would otherwise mix with real ones)" % schema
        )


def quote_ident(name):
    """PostgreSQL quoted identifier (double quotes doubled); names are checked first."""
    return '"%s"' % name.replace('"', '""')


def plan_table(name, info, classes, pk_nulls):
    """Decide the PostgreSQL shape of one table.

    info: PRAGMA table_info rows as (column name, declared type, notnull, pk position);
    classes: {column: storage-class bitmask}; pk_nulls: rows with a NULL in a key column.
    """
    check_identifier(name, "SQLite table")
    columns, notes = [], []
    for col, declared, notnull, _pk in info:
        check_identifier(col, "column %s.%s" % (name, col))
        pg_type, note = column_type(declared, classes.get(col, 0))
        if note:
            notes.append("%s: column %s %s" % (name, col, note))
        columns.append(LegacyColumn(col, declared, pg_type, bool(notnull), note))
    key = [row[0] for row in sorted((r for r in info if r[3]), key=lambda r: r[3])]
    kind = "PRIMARY KEY" if key else None
    if key and pk_nulls:
        kind = "UNIQUE"
        notes.append(
            "%s: %d row(s) hold NULL in primary key (%s), which SQLite allows; the key becomes UNIQUE "
            "(NULLs distinct, as in SQLite)" % (name, pk_nulls, ", ".join(key))
        )
    return LegacyTable(name, columns, kind, key, notes)


def table_ddl(schema, table):
    """CREATE TABLE IF NOT EXISTS statement text for a planned legacy table."""
    parts = ["%s %s%s" % (quote_ident(c.name), c.pg_type, " NOT NULL" if c.not_null else "") for c in table.columns]
    if table.key_kind:
        parts.append("%s (%s)" % (table.key_kind, ", ".join(quote_ident(c) for c in table.key_columns)))
    return "CREATE TABLE IF NOT EXISTS %s.%s (%s)" % (quote_ident(schema), quote_ident(table.name), ", ".join(parts))


def unmapped_names(source, mapping):
    """SQLite tables (sqlite_* aside) that the mapping does not name, in file order."""
    return [t for t in source.tables() if t not in mapping]


# -- the SQLite side --------------------------------------------------------------------------


def inspect_table(source, name):
    """(table_info rows, {column: class bitmask}, rows with a NULL key) read from the SQLite file."""
    try:
        raw = source.conn.execute("PRAGMA table_info(%s)" % qi(name)).fetchall()
        info = [(_text(r[1]), _text(r[2]) or "", r[3], r[5]) for r in raw]
        key = [r[0] for r in info if r[3]]
        selects = ["coalesce(sum(DISTINCT %s), 0)" % (_CLASS_SQL % qi(r[0])) for r in info]
        selects.append("coalesce(sum(%s), 0)" % (" OR ".join("%s IS NULL" % qi(k) for k in key) if key else "0"))
        row = source.conn.execute("SELECT %s FROM %s" % (", ".join(selects), qi(name))).fetchone()
    except sqlite3.DatabaseError as exc:
        raise LegacyError("source SQLite file %s: reading table %s failed: %s" % (source.path, name, exc)) from None
    classes = {r[0]: int(v) for r, v in zip(info, row)}
    return info, classes, int(row[-1])


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _count(source, name):
    try:
        return source.count(name)
    except SourceError:
        return None


# -- the migration and validation entry points ------------------------------------------------


def _warn(result, text):
    result.setdefault("warnings", []).append(text)


def report_unmapped(result, source, names, why=None):
    """unmapped_tables {name: rows} and one warning per table left out."""
    listed = result.setdefault("unmapped_tables", {})
    for name in names:
        listed[name] = _count(source, name)
        _warn(
            result,
            "%s: SQLite table (%s rows) not in the mapping, not migrated: %s"
            % (
                name,
                "?" if listed[name] is None else listed[name],
                why or "set legacy_schema (sqlite_migration_legacy_schema) to copy it, or map it",
            ),
        )


def _create(cur, source, schema, names, queries):
    """Create the schema and the tables it lacks (only those are read to decide their types).

    Returns the LegacyTable plans of the tables created.
    """
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    cur.execute("SELECT to_regnamespace(%s) IS NULL", (quote_ident(schema),))
    if cur.fetchone()[0]:
        stmt = "CREATE SCHEMA IF NOT EXISTS %s" % quote_ident(schema)
        cur.execute(stmt)
        queries.append(stmt)
    created = []
    for name in names:
        cur.execute("SELECT to_regclass(%s) IS NULL", ("%s.%s" % (quote_ident(schema), quote_ident(name)),))
        if cur.fetchone()[0]:
            table = plan_table(name, *inspect_table(source, name))
            stmt = table_ddl(schema, table)
            cur.execute(stmt)
            queries.append(stmt)
            created.append(table)
    return created


def _refuse_unrecorded_rows(cur, schema, names):
    """A legacy copy holding rows that no checkpoint accounts for (the bookkeeping was cleared, e.g.
    by a rollback, but the copy was not emptied) would be loaded twice: stop and say what to do."""
    recorded = checkpointed_tables(cur, names)
    for name in names:
        if name in recorded:
            continue
        cur.execute("SELECT EXISTS (SELECT 1 FROM %s.%s)" % (quote_ident(schema), quote_ident(name)))
        if cur.fetchone()[0]:
            raise LegacyError(
                "%s.%s holds rows but quant_meta.migration_checkpoints has no record of loading them (the "
                "bookkeeping was cleared without emptying the copy); loading again would duplicate them: rerun "
                "with truncate: true (sqlite_migration_truncate) to reload it, or drop schema %s to recreate it"
                % (schema, name, schema)
            )


def extend_migration(migration, mapping, order):
    """sqlite_migrate: add the unmapped tables to the run (mapping, order), creating their tables.

    In check mode the tables are created inside the open transaction (so the mapping can be
    checked against them) and rolled back with it: nothing is created. A run with a `tables`
    subset copies no legacy table (full runs do). Raises LegacyError.
    """
    params, source, result = migration.params, migration.source, migration.result
    names = unmapped_names(source, mapping)
    schema = (params.get("legacy_schema") or "").strip()
    if not names or params.get("tables"):
        return mapping, order
    if not schema:
        report_unmapped(result, source, names)
        return mapping, order
    check_legacy_schema(schema, {(spec or {}).get("schema") or "public" for spec in mapping.values()})
    for name in names:  # every name, before anything is created
        check_identifier(name, "SQLite table")
    with migration.conn.cursor() as cur:
        created = _create(cur, source, schema, names, migration.queries)
        if created and checkpoints_exist(cur):  # a created table's checkpoint is stale (its copy was dropped)
            reset_tables(cur, [t.name for t in created])
        if not params.get("truncate"):
            _refuse_unrecorded_rows(cur, schema, [n for n in names if n not in {t.name for t in created}])
    if not migration.check_mode:
        migration.conn.commit()
    for table in created:
        for note in table.notes:
            _warn(result, note)
    if created:
        result["changed"] = True
        result["legacy_created"] = [t.name for t in created]
    result["legacy_tables"] = {name: "%s.%s" % (schema, name) for name in names}
    extended = dict(mapping)
    for name in names:
        extended[name] = {"schema": schema}
    return extended, list(order) + names


def extend_validation(ctx, source):
    """migration_validate: validate the legacy copies like mapped tables, or report the unmapped ones.

    Creates nothing. Orphan checks of legacy tables are warnings (SQLite never enforced their
    foreign keys; the copy keeps what the file holds).
    """
    params = ctx.params
    names = unmapped_names(source, ctx.mapping)
    schema = (params.get("legacy_schema") or "").strip()
    if not names or params.get("tables"):
        return
    if not schema:
        for name in names:
            rows = _count(source, name)
            ctx.results.add(
                "unmapped table %s" % name,
                "reconciliation",
                "warning",
                False,
                "SQLite table %s (%s rows) is not in the mapping and was not migrated (set legacy_schema "
                "to copy it, or map it)" % (name, "?" if rows is None else rows),
                name,
                {"rows": rows},
            )
        return
    check_legacy_schema(schema, {(spec or {}).get("schema") or "public" for spec in ctx.mapping.values()})
    for name in names:  # a WITHOUT ROWID table too: compared in primary-key order, as it was loaded
        check_identifier(name, "SQLite table")
        ctx.mapping[name] = {"schema": schema}
        ctx.tables.append(name)
        for check in ("no orphans %s" % name, "no orphans %s -> *" % name):  # exact: the check that errored
            ctx.results.overrides.setdefault(check, "warning")
