"""Introspect target tables in the PostgreSQL catalog (types, keys, indexes, identities).

Everything is read at run time, so the migration follows whatever DDL the
quant_database role created; identifiers are always passed as values or
quoted with psycopg2.sql.Identifier, never formatted into SQL by hand.
"""

from __future__ import annotations

from collections import namedtuple

from ansible.module_utils.convert.types import TargetType
from ansible.module_utils.mapping.derive import MappingError
from ansible.module_utils.mapping.names import resolve_name

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - the module reports missing psycopg2 earlier
    sql = None


class TargetError(Exception):
    """A target table or column is missing or unusable."""


# One non-partial unique index (primary key, unique constraint or unique index).
# nulls_not_distinct: PostgreSQL 15's NULLS NOT DISTINCT; otherwise a key holding
# NULL never equals another key (SQL semantics, also SQLite's), so it never conflicts.
UniqueKey = namedtuple("UniqueKey", "name columns nulls_not_distinct primary")


class Column:
    __slots__ = ("default", "generated", "identity", "name", "type")

    def __init__(self, name, ttype, default, identity, generated):
        self.name = name
        self.type = ttype
        self.default = default
        self.identity = identity
        self.generated = generated


class TargetTable:
    """Catalog facts about one target table."""

    def __init__(self, schema, name, oid, columns, unique_keys, primary_key, is_hypertable):  # noqa: PLR0917
        self.schema = schema
        self.name = name
        self.oid = oid
        self.columns = columns  # name -> Column (ordered)
        self.unique_keys = unique_keys  # list of UniqueKey
        self.primary_key = primary_key
        self.is_hypertable = is_hypertable

    @property
    def ident(self):
        return sql.Identifier(self.schema, self.name)

    @property
    def display(self):
        return "%s.%s" % (self.schema, self.name)

    def unique_for(self, cols):
        """The unique index whose column set equals cols (order irrelevant), or None."""
        wanted = set(cols)
        for entry in self.unique_keys:
            if set(entry.columns) == wanted and len(entry.columns) == len(cols):
                return entry
        return None

    def describe_unique_keys(self):
        """'(a, b), (c)' or 'none': for messages."""
        return ", ".join("(%s)" % ", ".join(u.columns) for u in self.unique_keys) or "none"


def natural_key(table, keys, target, loaded):
    """The unique key duplicates of `table` are judged on: a UniqueKey, or None (no natural key).

    keys: the mapping's `keys` (target column names) or empty. A given key must be
    one of the target's real unique constraints (column order irrelevant): collapsing
    rows on anything else would drop rows PostgreSQL accepts. Without `keys` the
    primary key is used when every column of it is loaded from the source; an
    identity/serial key the target generates is no natural key, and a target without
    a unique constraint has none: then no row is ever a duplicate.
    """
    if keys:
        entry = target.unique_for(keys)
        if entry is None:
            raise MappingError(
                "keys (%s) of %s match no unique constraint of %s (its unique keys: %s): duplicates are judged only "
                "on a real primary key or unique constraint; set keys to one of those, or remove keys"
                % (", ".join(keys), table, target.display, target.describe_unique_keys()))
        for key in keys:
            if key not in loaded:
                raise MappingError("key column %r of %s is not loaded from the source" % (key, table))
        return entry
    primary = next((u for u in target.unique_keys if u.primary), None)
    if primary is None and target.primary_key:
        primary = UniqueKey(None, list(target.primary_key), False, True)
    if primary is not None and all(c in loaded for c in primary.columns):
        return primary
    return None


def table_names(cur, schema):
    """Names of the tables (plain and partitioned) of a target schema."""
    cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
        (schema,),
    )
    return {row[0] for row in cur.fetchall()}


def find_table(cur, schema, name, explicit=False):
    """(target table name, folded) for a source table (module_utils/mapping/names.py has the rule).

    Raises TargetError when no table fits; the message names the tables differing only in case.
    """
    what = "target table %s.%s" % (schema, name)
    found, folded = resolve_name(name, table_names(cur, schema), what, explicit)
    if found is None:
        raise TargetError("%s does not exist (create the schema first)" % what)
    return found, folded


def load_table(cur, schema, name):
    cur.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, name),
    )
    row = cur.fetchone()
    if not row:
        raise TargetError("target table %s.%s does not exist (create the schema first)" % (schema, name))
    oid = row[0]
    cur.execute(
        """
        SELECT a.attname, coalesce(bt.typname, t.typname), format_type(a.atttypid, a.atttypmod),
               CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
               a.attnotnull OR coalesce(t.typnotnull, false), a.atthasdef, a.attidentity, a.attgenerated
          FROM pg_attribute a
          JOIN pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
         WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum
        """,
        (oid,),
    )
    columns = {}
    for attname, typname, fmt, typmod, notnull, hasdef, identity, generated in cur.fetchall():
        ttype = TargetType.from_catalog(typname, typmod, fmt, notnull)
        columns[attname] = Column(attname, ttype, hasdef, identity or "", generated or "")
    cur.execute(
        """
        SELECT i.indexrelid::regclass::text, i.indisprimary,
               array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                      ORDER BY k.ord),
               coalesce((SELECT to_jsonb(x) ->> 'indnullsnotdistinct' FROM pg_index x
                          WHERE x.indexrelid = i.indexrelid), 'false') = 'true'
          FROM pg_index i
         WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND 0 <> ALL (i.indkey)
         ORDER BY i.indisprimary DESC, i.indexrelid
        """,
        (oid,),
    )
    unique_keys = []
    primary_key = None
    for idxname, primary, cols, nnd in cur.fetchall():
        unique_keys.append(UniqueKey(idxname, list(cols), bool(nnd), bool(primary)))
        if primary:
            primary_key = list(cols)
    is_hypertable = False
    cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if cur.fetchone():
        cur.execute(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema = %s AND hypertable_name = %s",
            (schema, name),
        )
        is_hypertable = cur.fetchone() is not None
    return TargetTable(schema, name, oid, columns, unique_keys, primary_key, is_hypertable)


def droppable_indexes(cur, table, key_cols):
    """Indexes that are not constraints and not the conflict key: (name, definition)."""
    cur.execute(
        """
        SELECT ci.relname, pg_get_indexdef(i.indexrelid)
          FROM pg_index i
          JOIN pg_class ci ON ci.oid = i.indexrelid
         WHERE i.indrelid = %s
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
           AND NOT i.indisunique
         ORDER BY ci.relname
        """,
        (table.oid,),
    )
    return cur.fetchall()


def count_rows_exist(cur, table):
    cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table.ident))
    return cur.fetchone()[0]


def identity_columns(table):
    return [c.name for c in table.columns.values()
            if c.identity or (c.default and c.type.base in ("int2", "int4", "int8"))]


def sync_sequences(cur, table, executed):
    """setval() every identity/serial sequence of the table to max(column)."""
    for col in identity_columns(table):
        cur.execute("SELECT pg_get_serial_sequence(%s, %s)", (
            sql.Identifier(table.schema, table.name).as_string(cur), col))
        seq = cur.fetchone()[0]
        if not seq:
            continue
        # seq as a Literal, not a %s parameter: psycopg2 would read a '%' in the
        # (hostile) table or column name as a placeholder and fail with IndexError.
        query = sql.SQL("SELECT setval({}::regclass, m, true) FROM (SELECT max({}) AS m FROM {}) s "
                        "WHERE m IS NOT NULL").format(sql.Literal(seq), sql.Identifier(col), table.ident)
        cur.execute(query)
        executed.append("setval(%s, max(%s))" % (seq, col))
