"""What the roles' tasks read from and record in ``quant_meta``, through the module
``quant_meta`` (library/quant_meta.py); the tables themselves are defined in core/quant_meta.py.

* ``progress``: the checkpoints of the current load with done rows, percent and rows/s
  (role sqlite_migration, tasks/poll.yml).
* ``refresh_status``: whether the aggregates are due a refresh, i.e. a completed load is newer
  than the last recorded refresh, or none was ever recorded (tasks/aggregates.yml).
* ``record_refresh``: record that the aggregates were refreshed (tasks/aggregates.yml).
* ``reset``: forget the checkpoints and rejects of some source tables, so the next migration
  loads them from the start (the migration does the same itself with ``truncate``).
"""

from __future__ import annotations

from ansible.module_utils.core.postgres import ConnectionFailure, connect
from ansible.module_utils.core.quant_meta import AGGREGATE_REFRESHES_DDL, checkpoints_exist, meta_exists, reset_tables

ACTIONS = ("progress", "refresh_status", "record_refresh", "reset")
READ_ONLY = ("progress", "refresh_status")
# Checkpoints not updated for this long belong to a finished past run, not to the load in progress.
PROGRESS_WINDOW = "1 day"
PROGRESS_COLS = ("table_name", "status", "source_rows", "copied_rows", "rejected_rows", "duplicate_rows", "seconds")


class QuantMetaError(Exception):
    """Bad input to an action; the message names the option."""


def checkpoint_progress(conn):
    """The checkpoints of the current load (updated within PROGRESS_WINDOW), oldest start first, as
    dicts of PROGRESS_COLS; [] before the migration created quant_meta."""
    if not meta_exists(conn):
        return []
    with conn.cursor() as cur:
        cur.execute("SELECT %s FROM quant_meta.migration_checkpoints WHERE updated_at >= now() - %%s::interval "
                    "ORDER BY started_at, table_name" % ", ".join(PROGRESS_COLS), (PROGRESS_WINDOW,))
        return [dict(zip(PROGRESS_COLS, row)) for row in cur.fetchall()]


def load_and_refresh_times(conn):
    """(checkpoints exist, newest finish of a completed load, newest recorded aggregate refresh);
    a time is None when there is none (or its table does not exist yet)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('quant_meta.migration_checkpoints') IS NOT NULL, "
                    "to_regclass('quant_meta.aggregate_refreshes') IS NOT NULL")
        has_checkpoints, has_refreshes = cur.fetchone()
        last_load = last_refresh = None
        if has_checkpoints:
            cur.execute("SELECT max(finished_at) FROM quant_meta.migration_checkpoints WHERE status = 'done'")
            last_load = cur.fetchone()[0]
        if has_refreshes:
            cur.execute("SELECT max(refreshed_at) FROM quant_meta.aggregate_refreshes")
            last_refresh = cur.fetchone()[0]
    return has_checkpoints, last_load, last_refresh


def record_refresh(conn):
    """Record that the aggregates were just refreshed (creating the table the first time); commits.
    Returns the recorded time."""
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS quant_meta")
        cur.execute(AGGREGATE_REFRESHES_DDL)
        cur.execute("INSERT INTO quant_meta.aggregate_refreshes DEFAULT VALUES RETURNING refreshed_at")
        refreshed_at = cur.fetchone()[0]
    conn.commit()
    return refreshed_at


def reset_counts(cur, tables):
    """(checkpoints, rejects) that reset_tables would delete for these source tables; (0, 0)
    before the migration created quant_meta."""
    if not checkpoints_exist(cur):
        return 0, 0
    cur.execute("SELECT (SELECT count(*) FROM quant_meta.migration_checkpoints WHERE table_name = ANY(%s)), "
                "(SELECT count(*) FROM quant_meta.migration_rejects WHERE table_name = ANY(%s))",
                (list(tables), list(tables)))
    return tuple(cur.fetchone())


def progress_row(checkpoint):
    """One checkpoint as the poll prints it: rows done (copied, rejected or duplicate) of the
    source's, percent with one decimal, whole rows per second."""
    done = checkpoint["copied_rows"] + checkpoint["rejected_rows"] + checkpoint["duplicate_rows"]
    return {
        "table_name": checkpoint["table_name"],
        "status": checkpoint["status"],
        "source_rows": checkpoint["source_rows"],
        "done_rows": done,
        "percent": round(100.0 * done / max(checkpoint["source_rows"], 1), 1),
        "rows_per_second": round(done / max(checkpoint["seconds"] or 0, 0.001)),
    }


def refresh_due(has_checkpoints, last_load, last_refresh):
    """(due, reason): due when the migration's bookkeeping exists and either no refresh was ever
    recorded or a load completed after the last one (a run stopped between load and refresh)."""
    if not has_checkpoints:
        return False, "no migration has run on this database (no quant_meta.migration_checkpoints)"
    if last_refresh is None:
        return True, "no aggregate refresh was recorded yet"
    if last_load is not None and last_load > last_refresh:
        return True, "a load completed at %s, after the last refresh at %s" % (last_load.isoformat(),
                                                                                last_refresh.isoformat())
    return False, "no load completed since the last refresh at %s" % last_refresh.isoformat()


def check_request(action, tables):
    """Raise QuantMetaError naming the option when the action cannot run with these inputs."""
    if action not in ACTIONS:
        raise QuantMetaError("action: %r is not one of %s" % (action, ", ".join(ACTIONS)))
    if action == "reset":
        if not tables or not all(isinstance(t, str) and t.strip() for t in tables):
            raise QuantMetaError("tables: reset needs the names of the source tables whose checkpoints and "
                                 "rejects to forget (non-empty strings), got %r" % (tables,))
    elif tables:
        raise QuantMetaError("tables: only the reset action takes tables (action is %s)" % action)


def _iso(value):
    return value.isoformat() if value is not None else None


def _progress(conn, check_mode, tables):
    return {"changed": False, "progress": [progress_row(cp) for cp in checkpoint_progress(conn)]}


def _refresh_status(conn, check_mode, tables):
    has_checkpoints, last_load, last_refresh = load_and_refresh_times(conn)
    due, reason = refresh_due(has_checkpoints, last_load, last_refresh)
    return {"changed": False, "due": due, "reason": reason, "last_load": _iso(last_load),
            "last_refresh": _iso(last_refresh)}


def _record_refresh(conn, check_mode, tables):
    if check_mode:
        return {"changed": True, "refreshed_at": None, "msg": "would record an aggregate refresh"}
    return {"changed": True, "refreshed_at": _iso(record_refresh(conn))}


def _reset(conn, check_mode, tables):
    with conn.cursor() as cur:
        checkpoints, rejects = reset_counts(cur, tables)
        if (checkpoints or rejects) and not check_mode:
            reset_tables(cur, tables)
    conn.commit()
    return {"changed": bool(checkpoints or rejects), "tables": list(tables), "checkpoints": checkpoints,
            "rejects": rejects}


_HANDLERS = {"progress": _progress, "refresh_status": _refresh_status, "record_refresh": _record_refresh,
             "reset": _reset}


def run(params, action, tables=None, check_mode=False):
    """Connect with the module's connection params and run one action; returns the module result.

    In check mode a database that does not exist yet (the play would create it) holds no
    bookkeeping: the read-only actions report nothing recorded instead of failing.
    """
    check_request(action, tables)
    try:
        conn = connect(params)
    except ConnectionFailure as exc:
        if check_mode and "does not exist" in str(exc):
            return _absent_database(action, tables)
        raise
    try:
        return _HANDLERS[action](conn, check_mode, tables)
    finally:
        conn.close()


def _absent_database(action, tables):
    results = {
        "progress": {"changed": False, "progress": []},
        "refresh_status": {"changed": False, "due": False, "last_load": None, "last_refresh": None,
                           "reason": "the database does not exist yet"},
        "record_refresh": {"changed": True, "refreshed_at": None, "msg": "would record an aggregate refresh"},
        "reset": {"changed": False, "tables": list(tables or []), "checkpoints": 0, "rejects": 0},
    }
    return dict(results[action], msg="database does not exist yet (check mode)")
