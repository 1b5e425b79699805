"""The staging path of a batch whose COPY PostgreSQL refused: finding the rows it refuses (issue 20, item 3).

copy_engine.TableWriter streams batches straight into the target; when one fails, the batch
is COPYed into a TEMP staging table here (text PostgreSQL refuses is found by halving), the
writer handles the rows whose key the target already holds (on_conflict is its business),
and RejectIsolator.insert_staged moves the rest into the target, returning the refused rows
with PostgreSQL's own error.

Why not one savepoint per row: that made a failing batch quadratic in practice (issue 20):
every single-row INSERT scanned the whole staging table, and every released savepoint left
a subtransaction behind. Instead: the target's checkable constraints (NOT NULL, CHECK,
foreign keys, unique indexes) are evaluated over the whole staging table with one query
each; the rows they flag are tried one by one inside a PL/pgSQL loop (one round trip,
PostgreSQL's own error per row), the others are inserted together and, should they still
fail (a trigger, an exclusion constraint), halved down to groups of EACH_BELOW rows that
go through the same loop: O(bad rows x log rows) statements.
"""

from __future__ import annotations

from collections import namedtuple
from functools import partial

from ansible.module_utils.convert.binary_copy import with_leading_bigint

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover
    psycopg2 = None
    sql = None

STAGE = "__sqlite_migrate_stage"
STAGE_ROWID = "__sqlite_rowid"
# Halving a failing group of the unsuspected rows stops at this size: below it, the rows are
# tried one by one server-side (one round trip), cheaper than up to 2 x 16 attempts.
EACH_BELOW = 16

# What psycopg2's Diagnostics and PL/pgSQL's GET STACKED DIAGNOSTICS both give of an error.
PgError = namedtuple("PgError", "code message detail column")

# Inserts rows one by one, each in its own subtransaction, in one round trip: the rows
# that fail come back with PostgreSQL's error (the same fields psycopg2 reports).
# INSERT_ONE is replaced by the single-row INSERT reading the variable sqlite_migrate_one.
EACH_ROW_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.sqlite_migrate_each(ids bigint[])
RETURNS TABLE (o_rowid bigint, o_code text, o_message text, o_detail text, o_column text)
LANGUAGE plpgsql AS $sqlite_migrate_each$
#variable_conflict use_column
DECLARE
    sqlite_migrate_one bigint;
BEGIN
    FOREACH sqlite_migrate_one IN ARRAY ids LOOP
        BEGIN
            INSERT_ONE;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS o_code = RETURNED_SQLSTATE, o_message = MESSAGE_TEXT,
                o_detail = PG_EXCEPTION_DETAIL, o_column = COLUMN_NAME;
            o_rowid := sqlite_migrate_one;
            RETURN NEXT;
        END;
    END LOOP;
END
$sqlite_migrate_each$
"""

# A constraint c's key columns, by name in key order (key: conkey or confkey, of table rel).
_KEY_NAMES = """ARRAY(SELECT a.attname::text FROM unnest(c.{key}) WITH ORDINALITY k(n, i)
              JOIN pg_attribute a ON a.attrelid = c.{rel} AND a.attnum = k.n ORDER BY k.i)"""
# A foreign key c's columns, referenced table (the catalog's quoted regclass text) and referenced columns.
FK_COLUMNS = ",\n       ".join([_KEY_NAMES.format(key="conkey", rel="conrelid"), "c.confrelid::regclass::text",
                                _KEY_NAMES.format(key="confkey", rel="confrelid")])

# CHECK and FOREIGN KEY constraints of a table, with column names in key order.
CONSTRAINTS_SQL = """
SELECT c.contype, pg_get_expr(c.conbin, c.conrelid),
       %s
  FROM pg_constraint c
 WHERE c.conrelid = %%s AND c.contype IN ('c', 'f')
 ORDER BY c.conname
""" % FK_COLUMNS


def isolate(items, attempt, each=None, small=1):
    """Try items as one group, halving every group that fails; [(item, error)] of those failing alone.

    attempt(group) loads a group atomically and returns None, or the error when it refused.
    Groups are tried in item order (earlier rows go in first, as a row-by-row load would).
    With b bad items among n: at most 1 + 2 b log2(n) attempts, instead of n. each(group),
    when given, takes the groups of at most `small` items a failing group splits into: it
    loads them item by item and returns the failures (so densely bad rows cost n / small
    calls, not 2 n attempts).
    """
    failed = []
    stack = [items] if items else []
    while stack:
        group = stack.pop()
        if each is not None and len(group) <= small:
            failed.extend(each(group))
            continue
        error = attempt(group)
        if error is None:
            continue
        if len(group) == 1:
            failed.append((group[0], error))
            continue
        half = len(group) // 2
        stack.append(group[half:])
        stack.append(group[:half])
    return failed


def pg_error(exc):
    """PgError of a psycopg2 exception."""
    diag = getattr(exc, "diag", None)
    message = diag.message_primary if diag and diag.message_primary else str(exc).splitlines()[0]
    return PgError(getattr(exc, "pgcode", None), message, diag.message_detail if diag else None,
                   diag.column_name if diag else None)


def rowid_in(rowids):
    """WHERE condition: the staged row's rowid is one of rowids (one array literal, not n parameters)."""
    return sql.SQL("{} = ANY({}::bigint[])").format(
        sql.Identifier(STAGE_ROWID), sql.Literal("{%s}" % ",".join(str(r) for r in rowids)))


def not_null_conditions(table, loaded):
    """[condition] true for a staged row with NULL in a NOT NULL column (empty when none)."""
    parts = [sql.SQL("s.{} IS NULL").format(sql.Identifier(name))
             for name, col in table.columns.items() if name in loaded and col.type.not_null]
    return [sql.SQL(" OR ").join(parts)] if parts else []


def fk_condition(cols, ref_table, ref_cols):
    """Condition: a staged row whose (non-NULL) reference is not in the referenced table.

    ref_table is the catalog's own quoted regclass text."""
    present = [sql.SQL("s.{} IS NOT NULL").format(sql.Identifier(c)) for c in cols]
    match = [sql.SQL("r.{} = s.{}").format(sql.Identifier(rc), sql.Identifier(c)) for c, rc in zip(cols, ref_cols)]
    return sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {} r WHERE {})").format(
        sql.SQL(" AND ").join(present), sql.SQL(ref_table), sql.SQL(" AND ").join(match))


def unique_condition(table, cols, nulls_not_distinct):
    """Condition: a staged row whose values of a unique index are in the target or twice in the stage.

    A window partition groups NULLs together, which is right only for NULLS NOT DISTINCT; otherwise
    rows with a NULL in the index never clash."""
    idents = [sql.Identifier(c) for c in cols]
    in_target = sql.SQL("EXISTS (SELECT 1 FROM {} t WHERE {})").format(
        table.ident, sql.SQL(" AND ").join(sql.SQL("t.{} = s.{}").format(i, i) for i in idents))
    repeated = sql.SQL("s.{} IN (SELECT w.{} FROM (SELECT {}, count(*) OVER (PARTITION BY {}) AS n FROM {}) w "
                       "WHERE w.n > 1)").format(
        sql.Identifier(STAGE_ROWID), sql.Identifier(STAGE_ROWID), sql.Identifier(STAGE_ROWID),
        sql.SQL(", ").join(idents), sql.Identifier(STAGE))
    if not nulls_not_distinct:
        present = sql.SQL(" AND ").join(sql.SQL("s.{} IS NOT NULL").format(i) for i in idents)
        repeated = sql.SQL("({} AND {})").format(present, repeated)
    return sql.SQL("({} OR {})").format(in_target, repeated)


class RejectIsolator:
    """One target table's staging table, and the inserts from it that single out the rows PostgreSQL refuses.

    col_list is the loaded columns (a sql.Composable); reader(chunks) is the file-like object
    COPY reads, framed for the plan's COPY format (copy_engine owns that framing).
    """

    def __init__(self, plan, col_list, reader):
        self.plan = plan
        self.table = plan.target
        self.col_list = col_list
        self.reader = reader
        self.stage_ready = False
        self.suspect_queries = None  # built from the catalog on the first failing batch
        self._inserted = 0

    # -- the staging table -------------------------------------------------------------

    def ensure_stage(self, cur):
        """Create the (empty) staging table, or empty the one this writer created."""
        if self.stage_ready:
            cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(STAGE)))
            return
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(STAGE)))
        cur.execute(sql.SQL("CREATE TEMP TABLE {} AS SELECT NULL::bigint AS {}, {} FROM {} WITH NO DATA").format(
            sql.Identifier(STAGE), sql.Identifier(STAGE_ROWID), self.col_list, self.table.ident))
        # rows are looked up by rowid when a batch is split (issue 20)
        cur.execute(sql.SQL("CREATE INDEX ON {} ({})").format(sql.Identifier(STAGE), sql.Identifier(STAGE_ROWID)))
        self.stage_ready = True

    def stage(self, cur, entries):
        """COPY (rowid, line) entries into the staging table; False when PostgreSQL refuses the text."""
        cur.execute("SAVEPOINT sqlite_migrate_stage")
        self.ensure_stage(cur)
        try:
            self._copy_stage(cur, entries)
        except psycopg2.Error:
            cur.execute("ROLLBACK TO SAVEPOINT sqlite_migrate_stage")
            self.stage_ready = False
            return False
        cur.execute("RELEASE SAVEPOINT sqlite_migrate_stage")
        return True

    def stage_isolating(self, cur, entries):
        """Stage (rowid, line) entries, halving around the text PostgreSQL refuses; [((rowid, line), PgError)]."""
        self.ensure_stage(cur)
        return isolate(entries, partial(self._attempt, cur, self._copy_stage))

    def insert_from_stage(self, where, upsert=False):
        """INSERT into the target of the staged rows matching where, in rowid order (upsert: ON CONFLICT DO UPDATE)."""
        query = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE {} ORDER BY {}").format(
            self.table.ident, self.col_list, self.col_list, sql.Identifier(STAGE), where, sql.Identifier(STAGE_ROWID))
        if upsert:
            keys = sql.SQL(", ").join(sql.Identifier(k) for k in self.plan.keys)
            sets = [sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(pc.target), sql.Identifier(pc.target))
                    for pc in self.plan.columns if pc.target not in self.plan.keys]
            if sets:
                query = query + sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(keys, sql.SQL(", ").join(sets))
            else:
                query = query + sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(keys)
        return query

    def _copy_stage(self, cur, entries):
        """COPY (rowid, line) entries into the staging table (appends)."""
        stage_copy = sql.SQL("COPY {} ({}, {}) FROM STDIN" + self.plan.copy_options()).format(
            sql.Identifier(STAGE), sql.Identifier(STAGE_ROWID), self.col_list).as_string(cur)
        if self.plan.binary:
            chunks = (with_leading_bigint(line, rowid) for rowid, line in entries)
        else:
            chunks = ("%d\t%s" % (rowid, line) for rowid, line in entries)
        cur.copy_expert(stage_copy, self.reader(chunks), size=1 << 16)

    # -- isolating the rows a constraint refuses -----------------------------------------

    def insert_staged(self, cur, rowids):
        """Insert the staged rows into the target; ([(rowid, PgError)] of the refused, rows inserted)."""
        self._inserted = 0
        # the batch failed once already: check first rather than try the whole batch again
        suspects = self._suspects(cur) if rowids else set()
        clean = [rowid for rowid in rowids if rowid not in suspects]
        each = partial(self._insert_each, cur)
        if rowids:
            # static SQL in the function body: PL/pgSQL plans it once for all its calls
            one = sql.SQL("{} = sqlite_migrate_one").format(sql.Identifier(STAGE_ROWID))
            cur.execute(EACH_ROW_FUNCTION.replace("INSERT_ONE", self.insert_from_stage(one).as_string(cur)))
        failed = isolate(clean, partial(self._attempt, cur, self._insert_segment), each, EACH_BELOW)
        failed.extend(each([rowid for rowid in rowids if rowid in suspects]))
        return failed, self._inserted

    def _attempt(self, cur, action, segment):
        """Run action(cur, segment) under a savepoint: None when it succeeded, else its PgError."""
        cur.execute("SAVEPOINT sqlite_migrate_part")
        try:
            action(cur, segment)
        except psycopg2.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT sqlite_migrate_part")
            return pg_error(exc)
        cur.execute("RELEASE SAVEPOINT sqlite_migrate_part")
        return None

    def _insert_segment(self, cur, rowids):
        cur.execute(self.insert_from_stage(rowid_in(rowids)))
        self._inserted += cur.rowcount

    def _insert_each(self, cur, rowids):
        """Insert rows one by one server-side (one round trip); [(rowid, PgError)] of the refused.

        pg_temp.sqlite_migrate_each is (re)created for the batch by insert_staged."""
        if not rowids:
            return []
        cur.execute("SELECT * FROM pg_temp.sqlite_migrate_each(%s::bigint[])",
                    ("{%s}" % ",".join(str(r) for r in rowids),))
        failed = [(row[0], PgError(*row[1:])) for row in cur.fetchall()]
        self._inserted += len(rowids) - len(failed)
        return failed

    def _suspects(self, cur):
        """Rowids of staged rows that some constraint of the target would refuse (a superset is fine)."""
        if self.suspect_queries is None:
            self.suspect_queries = self._suspect_queries(cur)
        found = set()
        for query in list(self.suspect_queries):
            cur.execute("SAVEPOINT sqlite_migrate_check")
            try:
                cur.execute(query)
            except psycopg2.Error:
                # e.g. a CHECK on a column the mapping does not load: the halving finds those rows
                cur.execute("ROLLBACK TO SAVEPOINT sqlite_migrate_check")
                self.suspect_queries.remove(query)
                continue
            found.update(row[0] for row in cur.fetchall())
            cur.execute("RELEASE SAVEPOINT sqlite_migrate_check")
        return found

    def _suspect_queries(self, cur):
        """The checks, read from the catalog once per table load (a RejectIsolator lives for one load):
        a foreign key a cycle set aside for the load (migrate/load_order.py) is absent then, so it is
        not checked, and it is back, so checked, for any later table."""
        loaded = {pc.target for pc in self.plan.columns}
        select = sql.SQL("SELECT s.{} FROM {} s WHERE ").format(sql.Identifier(STAGE_ROWID), sql.Identifier(STAGE))
        queries = [select + cond for cond in
                   not_null_conditions(self.table, loaded) + self._unique_conditions(loaded)]
        cur.execute(CONSTRAINTS_SQL, (self.table.oid,))
        for kind, expr, cols, ref_table, ref_cols in cur.fetchall():
            if kind == "c":
                queries.append(select + sql.SQL("({}) IS FALSE").format(sql.SQL(expr)))
            elif set(cols) <= loaded:
                queries.append(select + fk_condition(cols, ref_table, ref_cols))
        return queries

    def _unique_conditions(self, loaded):
        conds = []
        for unique in self.table.unique_keys:
            if set(unique.columns) <= loaded:
                conds.append(unique_condition(self.table, unique.columns, unique.nulls_not_distinct))
        return conds
