"""ANALYZE after a bulk load; a hypertable's chunks are shared between two connections.

TimescaleDB turns ``ANALYZE hypertable`` into the parent (its inherited
statistics, sampled across all chunks) plus every chunk, one after another on
one core. After a bulk load the server has nothing else to do, so a helper
connection takes the newer half of the chunks:

1. the helper locks its chunks (SHARE UPDATE EXCLUSIVE, ANALYZE's own lock)
   and analyzes them one by one in one transaction;
2. meanwhile this connection runs ``ANALYZE (SKIP_LOCKED) hypertable``: the
   parent and the older chunks, skipping the helper's;
3. only then does the helper commit. Holding the locks until this
   connection is done is what keeps it from analyzing a chunk the helper
   already did.

Every relation is analyzed exactly once (no chunk twice, none left out) and the
statement is the same one a DBA would run. The one exception is a chunk that
autovacuum is analyzing at that moment: SKIP_LOCKED leaves it to autovacuum.

SKIP_LOCKED warns once per skipped chunk; those warnings would only be noise in
the server log, so the split is used only when this session may lower
``log_min_messages`` (a superuser, or ``GRANT SET ON PARAMETER``). Otherwise,
and for plain tables or few chunks, it is the single ``ANALYZE``.
"""

from __future__ import annotations

import threading

from ansible.module_utils.core.postgres import ConnectionFailure, connect, rollback_quietly

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover
    psycopg2 = None
    sql = None

MIN_CHUNKS = 4  # below this the second connection costs more than it saves
HELPER_LOCK_TIMEOUT = "2s"  # autovacuum on a chunk must not stall the migration: fall back instead


def split_chunks(chunks):
    """(this connection's, the helper's): the helper takes the newer half."""
    half = len(chunks) // 2
    return chunks[:half], chunks[half:]


def analyze_table(conn, params, table, chunks=()):
    """ANALYZE table (a pg_target.TargetTable); chunks are its chunks' qualified names, oldest first.

    Returns "parallel" or "single" (how it ran). psycopg2 errors of the main
    statement propagate; conn must be in autocommit mode.
    """
    ident = table.ident
    if len(chunks) < MIN_CHUNKS or not _quiet_skip_warnings(conn):
        _run(conn, sql.SQL("ANALYZE {}").format(ident))
        return "single"
    _mine, theirs = split_chunks(list(chunks))
    helper = _lock_for_helper(params, theirs)
    if helper is None:
        _reset_messages(conn)
        _run(conn, sql.SQL("ANALYZE {}").format(ident))
        return "single"
    failure = []
    worker = threading.Thread(target=_helper_analyze, args=(helper, theirs, failure), daemon=True)
    worker.start()
    try:
        _run(conn, sql.SQL("ANALYZE (SKIP_LOCKED) {}").format(ident))
    except Exception:
        # the main statement's error is the one to report: cleaning up on a connection the
        # server may have closed must not replace it
        worker.join()
        rollback_quietly(helper)
        helper.close()
        _quietly(_reset_messages, conn)
        raise
    worker.join()
    try:
        if failure:
            rollback_quietly(helper)
        else:
            helper.commit()
    finally:
        helper.close()
        _reset_messages(conn)
    if failure:
        raise failure[0]
    return "parallel"


def _quietly(fn, conn):
    try:
        fn(conn)
    except psycopg2.Error:
        pass


def _run(conn, statement):
    with conn.cursor() as cur:
        cur.execute(statement)


def _quiet_skip_warnings(conn):
    """Lower this session's log and client levels so SKIP_LOCKED's warnings stay out; False if not allowed.

    The privilege is asked first: a refused SET would itself write an ERROR to the server log.
    """
    try:
        with conn.cursor() as cur:
            if not may_quiet_log(cur):
                return False
            cur.execute("SET log_min_messages = error")
            cur.execute("SET client_min_messages = error")
    except psycopg2.Error:  # anything unexpected: analyze in one statement instead
        rollback_quietly(conn)
        return False
    return True


def may_quiet_log(cur):
    """Whether this session may SET log_min_messages (a superuser, or GRANT SET ON PARAMETER in PostgreSQL 15+)."""
    cur.execute("SELECT current_setting('is_superuser') = 'on', current_setting('server_version_num')::int")
    superuser, version = cur.fetchone()
    if superuser or version < 150000:
        return superuser
    cur.execute("SELECT has_parameter_privilege('log_min_messages', 'SET')")
    return cur.fetchone()[0]


def _reset_messages(conn):
    with conn.cursor() as cur:
        cur.execute("RESET log_min_messages")
        cur.execute("RESET client_min_messages")


def _lock_for_helper(params, chunks):
    """A connection holding ANALYZE's lock on chunks, or None (the caller then runs one ANALYZE)."""
    try:
        helper = connect(params)
    except ConnectionFailure:
        return None
    try:
        with helper.cursor() as cur:
            cur.execute("SET lock_timeout = %s", (HELPER_LOCK_TIMEOUT,))
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(
                sql.SQL(", ").join(sql.SQL(c) for c in chunks)))
    except psycopg2.Error:
        rollback_quietly(helper)
        helper.close()
        return None
    return helper


def _helper_analyze(helper, chunks, failure):
    """Runs in a thread; the caller commits (see step 3) or rolls back once it has joined."""
    try:
        with helper.cursor() as cur:
            for chunk in chunks:
                cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(chunk)))
    except Exception as exc:  # re-raised in the caller's thread
        failure.append(exc)


def hypertable_chunks(cur, table):
    """Qualified, quoted names of a hypertable's chunks, oldest first ([] for a plain table)."""
    if not table.is_hypertable:
        return []
    cur.execute(
        "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
        "WHERE hypertable_schema = %s AND hypertable_name = %s ORDER BY range_start, chunk_name",
        (table.schema, table.name))
    return [row[0] for row in cur.fetchall()]
