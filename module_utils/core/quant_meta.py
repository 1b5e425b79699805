"""The bookkeeping schema ``quant_meta`` (never ``public``): the one place that creates its
tables and holds SQL over their columns (docs/CONVENTIONS.md, "quant_meta: the bookkeeping schema").

* ``quant_meta.migration_checkpoints``: one row per source table; updated in
  the SAME transaction as each batch of data, so a kill -9 at any point leaves
  data and checkpoint consistent and ``resume: true`` continues exactly.
  It doubles as the progress feed the role polls while the load runs.
* ``quant_meta.migration_rejects``: every rejected row (and every duplicate),
  with source rowid, column, value and reason, also written in the batch's
  transaction.
* ``quant_meta.migration_dropped_indexes``: definitions of indexes dropped for
  the bulk load, so they are rebuilt even after a crash.
* ``quant_meta.migration_set_aside_fks``: foreign keys of a load-order cycle dropped for the
  load (migrate/load_order.py), so they are added back and validated even after a crash.
* ``quant_meta.aggregate_refreshes``: when the role sqlite_migration last refreshed
  the aggregates, so a run stopped between load and refresh completes them next time.
* ``quant_meta.schema_steps``: the versioned schema steps the role quant_database applied
  (created here, read and written by schema/steps.py).
* A session-level advisory lock keeps two runs from loading at once.

This file holds the DDL of every table, the lock and the migration's per-batch writes;
core/quant_meta_actions.py holds what the roles' tasks read and record through the module
``quant_meta`` (library/quant_meta.py): no task writes SQL over these columns.
"""

from __future__ import annotations

import time
import zlib

try:
    from psycopg2 import sql
    from psycopg2.extras import execute_values
except ImportError:  # pragma: no cover
    sql = None
    execute_values = None

META_SCHEMA = "quant_meta"
LOCK_KEY = zlib.crc32(b"quant_meta.sqlite_migrate")  # fixed 32-bit key, same for every run

DDL = [
    "CREATE SCHEMA IF NOT EXISTS quant_meta",
    """CREATE TABLE IF NOT EXISTS quant_meta.migration_checkpoints (
        table_name text PRIMARY KEY,
        target_table text NOT NULL,
        source_path text NOT NULL,
        source_fingerprint text NOT NULL,
        source_rows bigint NOT NULL DEFAULT 0,
        last_rowid bigint,
        copied_rows bigint NOT NULL DEFAULT 0,
        rejected_rows bigint NOT NULL DEFAULT 0,
        duplicate_rows bigint NOT NULL DEFAULT 0,
        status text NOT NULL CHECK (status IN ('running', 'done')),
        started_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        seconds double precision NOT NULL DEFAULT 0,
        run_id text NOT NULL
    )""",
    # the target's identity (pg_class oid) since issue 20: a recreated or different target is never "done"
    "ALTER TABLE quant_meta.migration_checkpoints ADD COLUMN IF NOT EXISTS target_oid bigint",
    """CREATE TABLE IF NOT EXISTS quant_meta.migration_rejects (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id text NOT NULL,
        table_name text NOT NULL,
        source_rowid bigint,
        kind text NOT NULL CHECK (kind IN ('reject', 'duplicate')),
        column_name text,
        value text,
        reason text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS migration_rejects_table_run ON quant_meta.migration_rejects (table_name, run_id)",
    """CREATE TABLE IF NOT EXISTS quant_meta.migration_dropped_indexes (
        table_name text NOT NULL,
        index_name text NOT NULL,
        definition text NOT NULL,
        dropped_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (table_name, index_name)
    )""",
]
AGGREGATE_REFRESHES_DDL = """CREATE TABLE IF NOT EXISTS quant_meta.aggregate_refreshes (
    refreshed_at timestamptz NOT NULL DEFAULT now()
)"""
SCHEMA_STEPS_DDL = """CREATE TABLE IF NOT EXISTS quant_meta.schema_steps (
    step       int PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


HAS_TARGET_OID = """EXISTS (SELECT 1 FROM pg_attribute
    WHERE attrelid = to_regclass('quant_meta.migration_checkpoints') AND attname = 'target_oid' AND NOT attisdropped)"""
# True when every object of DDL exists (checked before taking the creators' lock): the newest
# table and the newest column, since older releases created the tables without them.
SCHEMA_CURRENT = "SELECT to_regclass('quant_meta.migration_dropped_indexes') IS NOT NULL AND " + HAS_TARGET_OID


class LockBusy(Exception):
    """Another run holds the migration lock."""


def ensure_schema(conn):
    """Create quant_meta and its tables if missing (idempotent)."""
    with conn.cursor() as cur:
        cur.execute(SCHEMA_CURRENT)
        if cur.fetchone()[0]:
            return False
        # Serialise concurrent creators (CREATE ... IF NOT EXISTS can race).
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY + 1,))
        for stmt in DDL:
            cur.execute(stmt)
    conn.commit()
    return True


def checkpoints_exist(cur):
    """Whether the migration created its bookkeeping in this database."""
    cur.execute("SELECT to_regclass('quant_meta.migration_checkpoints') IS NOT NULL")
    return cur.fetchone()[0]


def meta_exists(conn):
    with conn.cursor() as cur:
        return checkpoints_exist(cur)


def create_schema_steps(cur):
    """Create quant_meta and quant_meta.schema_steps if missing, as the cursor's current role
    (schema/steps.py sets the owner role first, so both belong to it). The caller commits."""
    cur.execute("CREATE SCHEMA IF NOT EXISTS quant_meta")
    cur.execute(SCHEMA_STEPS_DDL)


def all_checkpoints(cur):
    """{table_name: checkpoint dict} of every migrated table, or None before the first migration."""
    if not checkpoints_exist(cur):
        return None
    cur.execute("SELECT table_name, source_path, source_rows, last_rowid, copied_rows, rejected_rows, "
                "duplicate_rows, status, run_id FROM quant_meta.migration_checkpoints")
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row)) for row in cur.fetchall()}


def recorded_source_paths(cur):
    """The distinct SQLite paths the checkpoints record (sorted; [] before the first migration)."""
    if not checkpoints_exist(cur):
        return []
    cur.execute("SELECT DISTINCT source_path FROM quant_meta.migration_checkpoints WHERE source_path IS NOT NULL "
                "ORDER BY 1")
    return [r[0] for r in cur.fetchall()]


def recorded_rowids(cur, checkpoint, source_table, target_name):
    """(rejected rowids, duplicate rowids) recorded in migration_rejects for the checkpoint's run.

    The rowid column is ``source_rowid`` or ``rowid`` (the original contract's name; databases
    migrated by it are still validated). A rowid recorded as both (a superseding row PostgreSQL
    then refused) counts as rejected.
    """
    cur.execute("SELECT to_regclass('quant_meta.migration_rejects') IS NOT NULL")
    if checkpoint is None or not cur.fetchone()[0]:
        return [], []
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'quant_meta' "
                "AND table_name = 'migration_rejects' AND column_name IN ('source_rowid', 'rowid', 'kind')")
    found = [r[0] for r in cur.fetchall()]
    if "source_rowid" not in found and "rowid" not in found:
        return [], []
    col = sql.Identifier("source_rowid" if "source_rowid" in found else "rowid")
    kind = sql.SQL("kind" if "kind" in found else "'reject'")
    cur.execute(sql.SQL("SELECT DISTINCT {c}, {k} = 'duplicate' FROM quant_meta.migration_rejects "
                        "WHERE table_name IN (%s, %s) AND run_id IS NOT DISTINCT FROM %s AND {c} IS NOT NULL")
                .format(c=col, k=kind), (source_table, target_name, checkpoint.get("run_id")))
    rejects, duplicates = set(), set()
    for rowid, is_duplicate in cur.fetchall():
        (duplicates if is_duplicate else rejects).add(rowid)
    return sorted(rejects), sorted(duplicates - rejects)


def recorded_schema_steps(cur):
    """{step: (name, checksum)} of the applied schema steps; {} before the first step."""
    cur.execute("SELECT to_regclass('quant_meta.schema_steps') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    cur.execute("SELECT step, name, checksum FROM quant_meta.schema_steps")
    return {row[0]: (row[1], row[2]) for row in cur.fetchall()}


def record_schema_step(cur, step, name, checksum):
    """Record an applied step, in the transaction that applied it."""
    cur.execute("INSERT INTO quant_meta.schema_steps (step, name, checksum) VALUES (%s, %s, %s)",
                (step, name, checksum))


def rerecord_schema_step(cur, step, checksum):
    """Replace an applied step's checksum by the current form of the same SQL (schema/steps.py
    decides that it is the same). applied_at keeps the time the step ran."""
    cur.execute("UPDATE quant_meta.schema_steps SET checksum = %s WHERE step = %s", (checksum, step))


def transition_schema_step(cur, step, name, checksum):
    """Record that an applied step now stands as another variant (name, checksum), in the
    transaction that ran the transition; applied_at becomes the transition's time."""
    cur.execute("UPDATE quant_meta.schema_steps SET name = %s, checksum = %s, applied_at = now() WHERE step = %s",
                (name, checksum, step))


def acquire_lock(conn, lock_timeout=0):
    """Take the session-level advisory lock or raise LockBusy (after lock_timeout seconds).

    The lock belongs to the session, so the polling runs outside any transaction
    (autocommit): a waiting run holds no snapshot, and pg_stat_activity shows it as
    ``SELECT pg_try_advisory_lock(...)`` while it sleeps, not as an anonymous ROLLBACK.
    """
    deadline = time.monotonic() + max(0, lock_timeout or 0)
    conn.commit()  # whatever the caller has open (nothing is expected) is kept, not discarded
    was_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
                if cur.fetchone()[0]:
                    return
                if time.monotonic() >= deadline:
                    cur.execute(
                        "SELECT l.pid, a.application_name, a.backend_start FROM pg_locks l "
                        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted LIMIT 1",
                        (LOCK_KEY & 0xFFFFFFFF,),
                    )
                    holder = cur.fetchone()
                    who = "backend pid %s (%s, connected since %s)" % holder if holder else "another session"
                    raise LockBusy("another sqlite_migrate run is loading this database (advisory lock %d held by "
                                   "%s); wait for it to finish or raise lock_timeout" % (LOCK_KEY, who))
                time.sleep(0.5)
    finally:
        if not conn.closed:  # a lost connection keeps its own error
            conn.autocommit = was_autocommit


def release_lock(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    conn.commit()


CHECKPOINT_COLS = ("table_name", "target_table", "source_path", "source_fingerprint", "source_rows", "last_rowid",
                   "copied_rows", "rejected_rows", "duplicate_rows", "status", "started_at", "finished_at",
                   "seconds", "run_id")


def get_checkpoint(conn, table):
    """The table's checkpoint as a dict, or None. target_oid is None for a checkpoint an older release
    wrote (and, in check mode, before this release first ran: check mode creates nothing)."""
    if not meta_exists(conn):
        return None
    with conn.cursor() as cur:
        cur.execute("SELECT " + HAS_TARGET_OID)
        oid = "target_oid" if cur.fetchone()[0] else "NULL::bigint"
        cur.execute("SELECT %s, %s FROM quant_meta.migration_checkpoints WHERE table_name = %%s"
                    % (", ".join(CHECKPOINT_COLS), oid), (table,))
        row = cur.fetchone()
    return dict(zip((*CHECKPOINT_COLS, "target_oid"), row)) if row else None


def start_checkpoint(cur, table, target, path, fingerprint, source_rows, run_id):  # noqa: PLR0917
    """(Re)start a table's load: counts reset, status running. Caller commits.

    target: the TargetTable; its display name and oid identify the table the rows go into."""
    cur.execute("DELETE FROM quant_meta.migration_rejects WHERE table_name = %s", (table,))
    cur.execute(
        """INSERT INTO quant_meta.migration_checkpoints AS c
               (table_name, target_table, target_oid, source_path, source_fingerprint, source_rows, last_rowid,
                copied_rows, rejected_rows, duplicate_rows, status, started_at, updated_at, finished_at, seconds,
                run_id)
           VALUES (%s, %s, %s, %s, %s, %s, NULL, 0, 0, 0, 'running', now(), now(), NULL, 0, %s)
           ON CONFLICT (table_name) DO UPDATE SET
               target_table = EXCLUDED.target_table, target_oid = EXCLUDED.target_oid,
               source_path = EXCLUDED.source_path,
               source_fingerprint = EXCLUDED.source_fingerprint, source_rows = EXCLUDED.source_rows,
               last_rowid = NULL, copied_rows = 0, rejected_rows = 0, duplicate_rows = 0, status = 'running',
               started_at = now(), updated_at = now(), finished_at = NULL, seconds = 0, run_id = EXCLUDED.run_id""",
        (table, target.display, target.oid, path, fingerprint, source_rows, run_id),
    )


def adopt_target(cur, table, target):
    """Record the target's identity in a checkpoint an older release wrote without it (same name)."""
    cur.execute("UPDATE quant_meta.migration_checkpoints SET target_oid = %s WHERE table_name = %s",
                (target.oid, table))


def advance_checkpoint(cur, table, last_rowid, copied, rejected, duplicates, seconds):  # noqa: PLR0917
    """Add one batch's counts; runs in the batch's transaction."""
    cur.execute(
        """UPDATE quant_meta.migration_checkpoints
              SET last_rowid = %s, copied_rows = copied_rows + %s, rejected_rows = rejected_rows + %s,
                  duplicate_rows = duplicate_rows + %s, seconds = seconds + %s, updated_at = now()
            WHERE table_name = %s""",
        (last_rowid, copied, rejected, duplicates, seconds, table),
    )


def finish_checkpoint(cur, table):
    cur.execute(
        "UPDATE quant_meta.migration_checkpoints SET status = 'done', finished_at = now(), updated_at = now() "
        "WHERE table_name = %s", (table,))


def insert_rejects(cur, run_id, table, records):
    """records: dicts with source_rowid, kind, column, value, reason."""
    if not records:
        return
    execute_values(
        cur,
        "INSERT INTO quant_meta.migration_rejects (run_id, table_name, source_rowid, kind, column_name, value, reason) "
        "VALUES %s",
        [(run_id, table, r["source_rowid"], r["kind"], r.get("column"), r.get("value"), r["reason"]) for r in records],
        page_size=1000,
    )


def fetch_rejects(conn, table, run_id):
    """Iterate over a table's stored rejects (server-side cursor: never all in memory)."""
    with conn.cursor(name="rejects_%s" % abs(hash((table, run_id)))) as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT source_rowid, kind, column_name, value, reason FROM quant_meta.migration_rejects "
            "WHERE table_name = %s AND run_id = %s ORDER BY id", (table, run_id))
        for rowid, kind, column, value, reason in cur:
            yield {"table": table, "source_rowid": rowid, "kind": kind, "column": column, "value": value,
                   "reason": reason}


def remember_dropped_index(cur, table, name, definition):
    cur.execute(
        "INSERT INTO quant_meta.migration_dropped_indexes (table_name, index_name, definition) VALUES (%s, %s, %s) "
        "ON CONFLICT (table_name, index_name) DO NOTHING", (table, name, definition))


def dropped_indexes(cur, table):
    cur.execute("SELECT index_name, definition FROM quant_meta.migration_dropped_indexes WHERE table_name = %s "
                "ORDER BY index_name", (table,))
    return cur.fetchall()


def forget_dropped_index(cur, table, name):
    cur.execute("DELETE FROM quant_meta.migration_dropped_indexes WHERE table_name = %s AND index_name = %s",
                (table, name))


def checkpointed_tables(cur, tables):
    """The names among ``tables`` that have a checkpoint (a recorded load, finished or not)."""
    if not checkpoints_exist(cur):
        return set()
    cur.execute("SELECT table_name FROM quant_meta.migration_checkpoints WHERE table_name = ANY(%s)", (list(tables),))
    return {row[0] for row in cur.fetchall()}


def reset_tables(cur, tables):
    cur.execute("DELETE FROM quant_meta.migration_checkpoints WHERE table_name = ANY(%s)", (list(tables),))
    cur.execute("DELETE FROM quant_meta.migration_rejects WHERE table_name = ANY(%s)", (list(tables),))



class TruncateRefused(Exception):
    """A table outside the requested ones references them and holds rows: nothing was truncated."""


# Tables holding a foreign key to one of the given tables, and transitively to those (TRUNCATE must
# name them all in one statement). TimescaleDB chunks carry copies of their hypertable's foreign keys:
# they are left out, the hypertable stands for them (TRUNCATE of a hypertable empties its chunks).
_REFERENCING = """
WITH RECURSIVE refs(oid) AS (
    SELECT c.conrelid FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = ANY(%s::oid[])
    UNION
    SELECT c.conrelid FROM pg_constraint c JOIN refs r ON c.confrelid = r.oid WHERE c.contype = 'f'
)
SELECT r.oid, n.nspname, k.relname
  FROM refs r JOIN pg_class k ON k.oid = r.oid JOIN pg_namespace n ON n.oid = k.relnamespace
 WHERE n.nspname <> '_timescaledb_internal' AND NOT r.oid = ANY(%s::oid[])
 ORDER BY n.nspname, k.relname
"""


def truncate_targets(cur, tables):
    """Empty the target tables in ONE TRUNCATE, adding the empty tables that reference them.

    PostgreSQL refuses to truncate a table referenced by a foreign key unless the referencing
    table is truncated in the same statement. A referencing table outside ``tables`` is added
    only when it is empty; one that holds rows raises TruncateRefused before anything is
    truncated (CASCADE would silently empty tables nobody asked to lose). The tables are locked
    first, so no row can arrive between the emptiness check and the TRUNCATE. The caller
    commits. tables: pg_target.TargetTable objects. Returns the statement as text.
    """
    oids = [t.oid for t in tables]
    idents = [t.ident for t in tables]
    cur.execute(_REFERENCING, (oids, oids))
    referencing = cur.fetchall()
    extra = [sql.Identifier(schema, name) for _oid, schema, name in referencing]
    cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.SQL(", ").join(idents + extra)))
    holding = []
    for ident, (_oid, schema, name) in zip(extra, referencing):
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(ident))
        if cur.fetchone()[0]:
            holding.append("%s.%s" % (schema, name))
    if holding:
        many = len(holding) > 1
        raise TruncateRefused(
            "truncate: %s %s the tables to truncate by foreign key and %s rows; add %s to `tables` "
            "(sqlite_migration_tables) to empty %s too, or do not truncate (nothing was truncated)"
            % (", ".join(holding), "reference" if many else "references", "hold" if many else "holds",
               "them" if many else "it", "them" if many else "it"))
    query = sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(idents + extra))
    cur.execute(query)
    return query.as_string(cur)


# Foreign keys of a load-order cycle set aside for the load (migrate/load_order.py): recorded before
# the DROP, forgotten once validated, so a crash between drop and restore (or a failed VALIDATE) is
# repaired by the next run. Created when first needed, so older quant_meta schemas gain it too.
SET_ASIDE_FKS_DDL = """CREATE TABLE IF NOT EXISTS quant_meta.migration_set_aside_fks (
    schema_name     text NOT NULL,
    table_name      text NOT NULL,
    constraint_name text NOT NULL,
    definition      text NOT NULL,
    set_aside_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name, constraint_name)
)"""


def ensure_set_aside_fks(cur):
    """Create quant_meta.migration_set_aside_fks if missing (the caller holds the migration lock)."""
    cur.execute("SELECT to_regclass('quant_meta.migration_set_aside_fks') IS NOT NULL")
    if not cur.fetchone()[0]:
        cur.execute(SET_ASIDE_FKS_DDL)


def remember_set_aside_fk(cur, schema, table, name, definition):
    """Record a foreign key about to be dropped; an earlier record (an unfinished run's) keeps its definition."""
    cur.execute(
        "INSERT INTO quant_meta.migration_set_aside_fks (schema_name, table_name, constraint_name, definition) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", (schema, table, name, definition))


def set_aside_fks(cur):
    """[(schema, table, constraint, definition)] of the foreign keys still set aside ([] if none ever was)."""
    cur.execute("SELECT to_regclass('quant_meta.migration_set_aside_fks') IS NOT NULL")
    if not cur.fetchone()[0]:
        return []
    cur.execute("SELECT schema_name, table_name, constraint_name, definition FROM quant_meta.migration_set_aside_fks "
                "ORDER BY set_aside_at, schema_name, table_name, constraint_name")
    return cur.fetchall()


def forget_set_aside_fk(cur, schema, table, name):
    cur.execute("DELETE FROM quant_meta.migration_set_aside_fks WHERE schema_name = %s AND table_name = %s "
                "AND constraint_name = %s", (schema, table, name))
