"""Helpers of the fault-injection suite: pause a running migration at an exact point, run the
modules the way Ansible does, and prove the final contents.

Pausing uses ordinary PostgreSQL locks, never sleeps, so every fault lands where the test says:

* a SHARE lock on a target table lets the migration's transactions through one at a time
  (`Gate.step_table`): the load blocks at its next `COPY` (or, before a table starts, at the
  `DROP INDEX` of its bulk-load preparation, whose transaction is not committed yet);
* a row lock on the table's checkpoint row stops the batch after its rows were written but
  before its commit (`advance_checkpoint` runs in the batch's transaction);
* swapping the table's SHARE lock for ROW EXCLUSIVE (`Gate.hold_writers_instead`) lets the
  load finish and holds the index rebuild's `CREATE INDEX` statements before they start.

The kill -9 / resume machinery itself is the integration suite's (tests/integration).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

from ansible.module_utils.migrate.runner import run_migration
from ansible.module_utils.validate.runner import run as run_validation
from integration.test_sqlite_migrate import _start_core as start_core  # noqa: F401  (re-exported)
from integration.test_sqlite_migrate import params_for, query, scalar
from playbooks_run import one_play, start_playbook
from psycopg2 import sql
from quant_target_ddl import create_target_schema, quant_mapping

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "quant-platform-ansible"  # application_name of every connection the modules open
CONTENT_CHECKS = ["reconciliation", "content", "integrity"]
WAIT = 60  # seconds any single wait may take before the test fails (never reached when things work)

# Small per-table batches for the tables the faults land in, so a kill can fall between batches
# of every one of them; the quant mapping is otherwise the shipped one (roles/sqlite_migration).
BATCHES = {"tickers": 50, "stock_details": 50, "ohlcv_data": 1000}


def fault_mapping():
    mapping = quant_mapping()
    for table, rows in BATCHES.items():
        mapping[table] = dict(mapping[table], batch_rows=rows)
    return mapping


def migration_params(server, db, src, **extra):
    """sqlite_migrate parameters for the quant mapping (the integration suite's, small batches)."""
    return params_for(server, db, src, mapping=fault_mapping(), **extra)


def wait_until(what, probe, timeout=WAIT, proc=None, interval=0.01):
    """Poll probe() until it returns a true value; fail naming `what` (and a dead process' output)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError("%s: the process exited (rc %s) first: %s %s" % (what, proc.returncode,
                                                                                  out[-2000:], err[-2000:]))
        if time.monotonic() > deadline:
            raise AssertionError("%s: not reached within %ss" % (what, timeout))
        time.sleep(interval)


# -- databases -------------------------------------------------------------------------------------


def new_database(server, prefix="f"):
    """A fresh database with the 12-table target schema (ohlcv_data a hypertable when possible)."""
    name = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
    admin = server.connect()
    try:
        admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        admin.close()
    conn = server.connect(name)
    try:
        create_target_schema(conn)
    finally:
        conn.close()
    return name


def drop_database(server, name):
    admin = server.connect()
    try:
        admin.cursor().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()


def table_counts(server, db, tables):
    conn = server.connect(db)
    try:
        return {t: scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t)).as_string(conn))
                for t in tables}
    finally:
        conn.close()


def public_indexes(server, db):
    conn = server.connect(db)
    try:
        return {r[0] for r in query(conn, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    finally:
        conn.close()


# -- proof of contents -----------------------------------------------------------------------------


def content_proof(validation):
    """From a migration_validate result: (rows lost, {table: (source rows, PostgreSQL rows)}, failed checks).

    Rows lost per table = rows the source fingerprint expects (rejects and recorded duplicates
    excluded) that PostgreSQL does not have: the keyed comparison's `missing` when the
    fingerprints differ, else the row-count difference.
    """
    lost, rows = 0, {}
    for check in validation["checks"]:
        if check["category"] != "content" or not check["name"].startswith("content "):
            continue
        data = check.get("data") or {}
        src = (data.get("source") or {}).get("rows")
        dst = (data.get("target") or {}).get("rows")
        if src is None or dst is None:  # the check could not run: count nothing as proven
            raise AssertionError("content check without fingerprints: %s" % check)
        rows[check["table"]] = (src, dst)
        keyed = data.get("keyed") or {}
        lost += keyed["missing"] if "missing" in keyed else max(0, src - dst)
    failed = [c["name"] for c in validation["checks"] if c["status"] == "fail" and c["severity"] == "critical"]
    return lost, rows, failed


def validate(server, db, src):
    """Run migration_validate's reconciliation, content (fingerprints) and integrity checks in-process."""
    params = server.params(db, src=src, mapping=fault_mapping(), checks=CONTENT_CHECKS, severity_overrides={},
                           quality_severity="warning", max_differences=10)
    return run_validation(params)


def migrate(server, db, src, **extra):
    """sqlite_migrate in-process (the module's core) with the fault suite's parameters."""
    return run_migration(migration_params(server, db, src, **extra))


# -- pausing a running migration ---------------------------------------------------------------------


class Gate:
    """Locks that hold a migration (or validation) at an exact point; see the module docstring."""

    def __init__(self, server, db):
        self.server = server
        self.db = db
        self.watch = server.connect(db)  # autocommit observer
        self.table_conn = server.connect(db, autocommit=False)
        self.row_conn = server.connect(db, autocommit=False)
        for conn in (self.table_conn, self.row_conn):
            conn.cursor().execute("SET lock_timeout = '%ds'" % WAIT)
            conn.commit()
        self.table = None
        self.mode = None

    # locks
    def hold_table(self, table, mode="SHARE"):
        self.table, self.mode = table, mode
        self.table_conn.cursor().execute(
            sql.SQL("LOCK TABLE {} IN %s MODE" % mode).format(sql.Identifier(table)))

    def release_table(self):
        self.table_conn.commit()

    def step_table(self):
        """Let exactly the migration's waiting transaction through, then hold the table again.

        The new lock request queues behind the migration's, so it is granted when that
        transaction commits, before the migration can start its next one.
        """
        self.release_table()
        self.hold_table(self.table, self.mode)

    def hold_row(self, statement, args=()):
        with self.row_conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall()

    def release_rows(self):
        self.row_conn.rollback()

    def hold_writers_instead(self, table):
        """Swap the table's SHARE lock for ROW EXCLUSIVE without a gap: writes (COPY) pass, while
        CREATE INDEX (which needs SHARE) waits. The new lock is queued behind the migration's
        waiting COPY before the old one is released, so nothing slips through in between."""
        lock = sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(sql.Identifier(table))
        taken = threading.Thread(target=lambda: self.row_conn.cursor().execute(lock))
        taken.start()
        wait_until("the ROW EXCLUSIVE request queued", lambda: query(
            self.watch, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
            (self.row_conn.get_backend_pid(),)))
        self.release_table()
        taken.join(WAIT)

    def blocked_builders(self, proc):
        """Wait until the index rebuild's connections wait for their lock; returns their pids."""
        def probe():
            rows = [r for r in self.backends() if r[1] == "Lock" and r[3].lstrip().upper().startswith("CREATE")]
            return [r[0] for r in rows] or None
        return wait_until("an index build waiting for its lock", probe, proc=proc)

    # observation
    def backends(self):
        """(pid, wait_event_type, state, query) of the modules' connections to this database."""
        return query(self.watch, "SELECT pid, wait_event_type, state, query FROM pg_stat_activity "
                                 "WHERE datname = %s AND application_name = %s ORDER BY backend_start",
                     (self.db, APP_NAME))

    def backend(self, proc):
        """The pid of the one backend a module process opened."""
        rows = wait_until("the module's connection", self.backends, proc=proc)
        return rows[0][0]

    def blocked(self, pid, proc, prefix=""):
        """Wait until backend pid waits for a lock in a statement starting with prefix; returns the statement."""
        def probe():
            rows = query(self.watch, "SELECT wait_event_type, query FROM pg_stat_activity WHERE pid = %s", (pid,))
            if rows and rows[0][0] == "Lock" and rows[0][1].lstrip().upper().startswith(prefix.upper()):
                return rows[0][1]
            return None
        return wait_until("backend %s blocked in %r" % (pid, prefix or "any statement"), probe, proc=proc)

    def checkpoint(self, table):
        if not scalar(self.watch, "SELECT to_regclass('quant_meta.migration_checkpoints') IS NOT NULL"):
            return None
        rows = query(self.watch, "SELECT status, copied_rows, rejected_rows, duplicate_rows, source_rows "
                                 "FROM quant_meta.migration_checkpoints WHERE table_name = %s", (table,))
        if not rows:
            return None
        return dict(zip(("status", "copied", "rejected", "duplicates", "source_rows"), rows[0]))

    def done_tables(self):
        if not scalar(self.watch, "SELECT to_regclass('quant_meta.migration_checkpoints') IS NOT NULL"):
            return []
        return [r[0] for r in query(self.watch, "SELECT table_name FROM quant_meta.migration_checkpoints "
                                                "WHERE status = 'done' ORDER BY table_name")]

    def wait_gone(self, pid):
        """Wait until backend pid has ended (after its client died it ends once it may run again)."""
        wait_until("backend %s gone" % pid, lambda: not query(
            self.watch, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)))

    def close(self):
        for conn in (self.table_conn, self.row_conn, self.watch):
            try:
                conn.close()
            except Exception:  # the server may have been restarted under it
                pass

    # the composite pause points
    def pause_inside(self, table, proc, fraction=0.5):
        """Hold the load of `table` with about `fraction` of its rows committed and the next batch
        written but not committed. Call before the migration reaches the table (hold_table first).
        Returns (backend pid, committed checkpoint)."""
        pid = self.backend(proc)
        self.blocked(pid, proc)
        while True:
            cp = self.checkpoint(table)
            if cp and cp["status"] != "running":
                raise AssertionError("%s finished before the pause point: %s" % (table, cp))
            if cp and cp["copied"] + cp["rejected"] + cp["duplicates"] >= fraction * cp["source_rows"]:
                break
            self.step_table()
            self.blocked(pid, proc)
        # blocked at the next batch's COPY: lock the checkpoint row, then let the COPY run
        self.hold_row("SELECT 1 FROM quant_meta.migration_checkpoints WHERE table_name = %s FOR UPDATE", (table,))
        self.release_table()
        self.blocked(pid, proc, "UPDATE quant_meta.migration_checkpoints")
        return pid, cp


def kill_9(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=WAIT)
    return proc.returncode


# -- Ansible -------------------------------------------------------------------------------------------


def connection_args(server, db):
    """Module connection options for a server (what a task would write)."""
    return {k: v for k, v in server.params(db).items() if v not in (None, "")}


class AnsibleRun:
    """ansible-playbook on a one-play playbook of tasks (json callback), cwd the repository root
    (tests/playbooks_run.py); `.proc` runs until `.wait()`, which reads one result per task name."""

    def __init__(self, tasks, workdir, name="play"):
        self.playbook = one_play(tasks, workdir, name)
        self._run = start_playbook(self.playbook, json_output=True)
        self.proc = self._run.proc
        self.stdout = self.stderr = ""
        self.results = {}

    def wait(self, timeout=300):
        done = self._run.wait(timeout=timeout)
        self.stdout, self.stderr = done.stdout, done.stderr
        self.results = done.results()
        return self

    @property
    def output(self):
        return self.stdout + self.stderr


def task(name, module, args, **extra):
    out = {"name": name, module: args, "ignore_errors": True}
    out.update(extra)
    return out


# ansible-core 2.19 puts this in every failed result while tracebacks are not enabled (the default)
NO_TRACEBACK = "(traceback unavailable)"


def traceback_leaks(run, result):
    """Everything that would show the operator a Python traceback, or that the module took its
    unexpected-error path (which attaches one): [] when clean."""
    leaks = []
    if "Traceback (most recent call last)" in run.output:
        leaks.append("'Traceback' in ansible-playbook output")
    if result.get("exception") and str(result["exception"]).strip() != NO_TRACEBACK:
        leaks.append("result has exception: %s" % str(result["exception"])[:300])
    for key in ("module_stderr", "module_stdout"):
        if result.get(key):
            leaks.append("result has %s: %s" % (key, str(result[key])[:300]))
    msg = str(result.get("msg", ""))
    if "Traceback" in msg or "unexpected error" in msg:
        leaks.append("unexpected-error path: %s" % msg[:300])
    return leaks


def secrets_in(text, *secrets):
    return sum(text.count(s) for s in secrets if s)
