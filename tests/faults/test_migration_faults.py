"""Fault injection into the migration (issue #9, items 1-3).

1. kill -9 of sqlite_migrate at five exact points, then `resume: true`: the final contents are the
   source's, proven by migration_validate's fingerprints (SQLite vs PostgreSQL) and by exact
   per-table counts against an uninterrupted reference load.
2. PostgreSQL restarted (`pg_ctl restart -m fast`) mid-migration and mid-validation, on a dedicated
   throw-away cluster; connection refused, wrong password, missing database: one clear message, no
   traceback in real ansible-playbook output; a clean rerun is exact.
3. Two migrations started at once into the same empty database: one loads, the other fails clearly
   (lock_timeout 0) or waits and then skips (lock_timeout > 0); the data is loaded exactly once.

Faults land where they should because the runs are paused with PostgreSQL locks (faultlib.Gate),
not by timing. Every test records a summary row through `fault_report`.
"""

from __future__ import annotations

import pytest
from ansible.module_utils.migrate.runner import MigrationError
from ansible.module_utils.sample.generator import generate
from faultlib import (
    CONTENT_CHECKS,
    AnsibleRun,
    Gate,
    connection_args,
    content_proof,
    drop_database,
    fault_mapping,
    kill_9,
    migrate,
    migration_params,
    new_database,
    public_indexes,
    query,
    secrets_in,
    start_core,
    table_counts,
    task,
    traceback_leaks,
    validate,
    wait_until,
)
from pgcluster import _free_port, cluster_fixture

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SCALE = 0.03  # 27,790 ohlcv_data rows (28 batches), 561 tickers and 529 stock_details (11-12 batches each)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "spock_local.db"
    counts = generate(str(path), scale=SCALE)
    return str(path), counts


@pytest.fixture(scope="module")
def reference(pg_server, sample):
    """An uninterrupted load of the sample: the exact per-table counts and indexes every fault must end with."""
    src, counts = sample
    db = new_database(pg_server, "ref")
    try:
        result = migrate(pg_server, db, src)
        lost, _rows, failed = content_proof(validate(pg_server, db, src))
        assert not failed and lost == 0, failed
        ref = {
            "counts": table_counts(pg_server, db, list(fault_mapping())),
            "indexes": public_indexes(pg_server, db),
            "copied": result["total_copied"],
        }
    finally:
        drop_database(pg_server, db)
    # the sample exercises the quirks: rejects (orphans) and duplicates exist, so "exact" is not "all rows"
    assert ref["counts"]["ohlcv_data"] == counts["ohlcv_data"] - 3
    assert ref["counts"]["stock_details"] < counts["stock_details"]
    return ref


@pytest.fixture(scope="module")
def own_cluster():
    """A dedicated throw-away cluster: these tests restart it (never the shared pg_server)."""
    yield from cluster_fixture()


def final_state(server, db, src, reference):
    """Validation (fingerprints) + counts + indexes after recovery: (rows_lost, problems, detail)."""
    validation = validate(server, db, src)
    lost, rows, failed = content_proof(validation)
    counts = table_counts(server, db, list(reference["counts"]))
    problems = ["critical check failed: %s" % name for name in failed]
    problems += ["%s: %d rows, uninterrupted load has %d" % (t, counts[t], n)
                 for t, n in reference["counts"].items() if counts[t] != n]
    missing = sorted(reference["indexes"] - public_indexes(server, db))
    if missing:
        problems.append("indexes missing after recovery: %s" % ", ".join(missing))
    conn = server.connect(db)
    try:
        leftovers = query(conn, "SELECT table_name, index_name FROM quant_meta.migration_dropped_indexes")
        statuses = dict(query(conn, "SELECT table_name, status FROM quant_meta.migration_checkpoints"))
    finally:
        conn.close()
    if leftovers:
        problems.append("dropped-index records left: %s" % leftovers)
    if set(statuses.values()) != {"done"} or len(statuses) != len(reference["counts"]):
        problems.append("checkpoints not all done: %s" % statuses)
    detail = "fingerprints of %d tables match (%d rows)" % (len(rows), sum(r[1] for r in rows.values()))
    return lost, problems, detail


# -- 1. kill -9 at five points, then resume ----------------------------------------------------------


def _inside(gate, proc, table):
    pid, cp = gate.pause_inside(table, proc)
    return pid, "after %d of %d rows committed, next batch written but not committed" % (
        cp["copied"] + cp["rejected"] + cp["duplicates"], cp["source_rows"]), cp


def _between(gate, proc, table):
    pid = gate.backend(proc)
    gate.blocked(pid, proc, "DROP INDEX")  # the next table's preparation, not committed
    done = gate.done_tables()
    return pid, "%d tables done (%s), %s not started" % (len(done), ", ".join(done), table), None


def _index_rebuild(gate, proc, table):
    pid = gate.backend(proc)
    gate.blocked(pid, proc, "DROP INDEX")
    gate.step_table()  # the drop commits with the checkpoint; the first COPY waits
    gate.blocked(pid, proc, "COPY")
    # ROW EXCLUSIVE lets the load's COPYs through but not the rebuild's CREATE INDEX (SHARE)
    gate.hold_writers_instead(table)
    builders = gate.blocked_builders(proc)
    cp = gate.checkpoint(table)
    return pid, "all %d rows loaded, %d index build(s) waiting to start" % (cp["copied"], len(builders)), cp


KILL_POINTS = {
    "inside tickers": ("tickers", _inside),
    "inside stock_details": ("stock_details", _inside),
    "inside ohlcv_data": ("ohlcv_data", _inside),
    # ohlcv_data, a hypertable loaded in time order, keeps its indexes (drop_indexes: auto), so the
    # points that need a bulk-load index drop use the plain tables that have one
    "between tables (before stock_details)": ("stock_details", _between),
    "during tickers index rebuild": ("tickers", _index_rebuild),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_then_resume_is_exact(pg_server, sample, reference, tmp_path, fault_report, point):
    src, _counts = sample
    table, pause = KILL_POINTS[point]
    db = new_database(pg_server)
    gate = Gate(pg_server, db)
    proc = None
    try:
        gate.hold_table(table)  # before the run reaches the table
        proc = start_core(migration_params(pg_server, db, src), tmp_path, "killed")
        pid, where, cp = pause(gate, proc, table)
        builders = [b[0] for b in gate.backends() if b[0] != pid]
        assert kill_9(proc) == -9
        if pause is _index_rebuild:
            # the rebuild runs on extra connections while the main one, holding the migration lock,
            # is idle: its backend sees the dead client at once
            gate.wait_gone(pid)
        else:
            # the dead client's backend keeps the migration lock until it may run again (it is waiting
            # on the gate): resuming that early is refused clearly, naming that backend
            with pytest.raises(MigrationError, match=r"another sqlite_migrate run is loading this database "
                                                     r"\(advisory lock \d+ held by backend pid %d " % pid):
                migrate(pg_server, db, src, resume=True)
        gate.release_rows()
        gate.release_table()
        for backend in [pid, *builders]:
            gate.wait_gone(backend)  # each rolls its open transaction back (an orphan index build too)

        # what the kill left: only committed work
        mid = table_counts(pg_server, db, [table])[table]
        conn = pg_server.connect(db)
        try:
            status = query(conn, "SELECT status FROM quant_meta.migration_checkpoints WHERE table_name = %s",
                           (table,))
            dropped = {r[0] for r in query(conn, "SELECT index_name FROM quant_meta.migration_dropped_indexes "
                                                 "WHERE table_name = %s", (table,))}
        finally:
            conn.close()
        if pause is _inside:
            assert status == [("running",)]
            assert mid == cp["copied"], "the uncommitted batch must be rolled back"
            assert 0 < mid < reference["counts"][table]
        elif pause is _between:
            assert status == [] and mid == 0
            assert reference["indexes"] <= public_indexes(pg_server, db)  # the drop was rolled back
        else:
            assert status == [("running",)] and mid == reference["counts"][table]
            # every index dropped for the bulk load is missing and still recorded for the rebuild
            assert dropped and reference["indexes"] - public_indexes(pg_server, db) == dropped
        if status:  # an interrupted load is never continued silently
            with pytest.raises(MigrationError, match=r"interrupted load.*resume: true"):
                migrate(pg_server, db, src)

        result = migrate(pg_server, db, src, resume=True)
        for name, res in result["tables"].items():
            assert res["copied_rows"] + res["rejected_rows"] + res["duplicate_rows"] == res["source_rows"], name
        if status:
            assert result["tables"][table]["status"] == "resumed"
        lost, problems, detail = final_state(pg_server, db, src, reference)
        fault_report("kill -9 %s" % point, tries=1, recovered=int(not problems), rows_lost=lost,
                     detail="%s; resume: %s" % (where, detail))
        assert not problems
        assert lost == 0
    finally:
        gate.close()
        if proc is not None and proc.poll() is None:
            kill_9(proc)
        drop_database(pg_server, db)


# -- 2. server faults ---------------------------------------------------------------------------------


def _module_args(server, db, src, **extra):
    args = dict(connection_args(server, db), src=src, mapping=fault_mapping(), on_conflict="skip",
                max_reject_ratio=0.05)
    args.update(extra)
    return args


def _validate_args(server, db, src):
    return dict(connection_args(server, db), src=src, mapping=fault_mapping(), checks=CONTENT_CHECKS)


def test_restart_mid_migration(own_cluster, sample, reference, tmp_path, fault_report):
    src, _counts = sample
    db = new_database(own_cluster, "restart")
    gate = Gate(own_cluster, db)
    try:
        gate.hold_table("ohlcv_data")
        run = AnsibleRun([task("Migrate", "sqlite_migrate", _module_args(own_cluster, db, src))], tmp_path)
        _pid, cp = gate.pause_inside("ohlcv_data", run.proc)
        own_cluster.restart()  # pg_ctl restart -m fast, as postgres
        gate.close()
        res = run.wait().results["Migrate"]
        msg = str(res.get("msg", ""))
        leaks = traceback_leaks(run, res)

        again = AnsibleRun([
            task("Resume", "sqlite_migrate", _module_args(own_cluster, db, src, resume=True)),
            task("Validate", "migration_validate", _validate_args(own_cluster, db, src)),
        ], tmp_path, "resume").wait()
        resumed, checked = again.results["Resume"], again.results["Validate"]
        lost, problems, detail = final_state(own_cluster, db, src, reference)
        recovered = not problems and not resumed.get("failed") and not checked.get("failed")
        fault_report("PostgreSQL restart mid-migration", tries=1, recovered=int(recovered), rows_lost=lost,
                     secrets_leaked=secrets_in(run.output + again.output, own_cluster.password),
                     detail="ohlcv_data at %d/%d rows: %s; resume: %s" % (cp["copied"], cp["source_rows"], msg,
                                                                          detail))
        assert res.get("failed") and not leaks, leaks or res
        assert msg.startswith("sqlite_migrate: loading table ohlcv_data into public.ohlcv_data: lost the connection "
                              "to PostgreSQL ("), msg
        assert msg.endswith("rerun with resume: true to continue"), msg
        assert "\n" not in msg.strip()
        assert not resumed.get("failed"), resumed.get("msg")
        assert resumed["tables"]["ohlcv_data"]["status"] == "resumed"
        assert not checked.get("failed"), checked.get("msg")
        assert not traceback_leaks(again, resumed) and not traceback_leaks(again, checked)
        assert not problems and lost == 0
    finally:
        gate.close()
        drop_database(own_cluster, db)


def test_restart_mid_validation(own_cluster, sample, reference, tmp_path, fault_report):
    src, _counts = sample
    db = new_database(own_cluster, "revalid")
    try:
        migrate(own_cluster, db, src)
        gate = Gate(own_cluster, db)
        try:
            gate.hold_table("ohlcv_data", "ACCESS EXCLUSIVE")  # the validation's first read of it waits
            run = AnsibleRun([task("Validate", "migration_validate", _validate_args(own_cluster, db, src))], tmp_path)
            pid = gate.backend(run.proc)
            waiting_in = gate.blocked(pid, run.proc)
            own_cluster.restart()
        finally:
            gate.close()
        res = run.wait().results["Validate"]
        msg = str(res.get("msg", ""))
        leaks = traceback_leaks(run, res)
        again = AnsibleRun([task("Validate", "migration_validate", _validate_args(own_cluster, db, src))],
                           tmp_path, "again").wait()
        checked = again.results["Validate"]
        lost, problems, detail = final_state(own_cluster, db, src, reference)
        fault_report("PostgreSQL restart mid-validation", tries=1,
                     recovered=int(not checked.get("failed") and not problems), rows_lost=lost,
                     secrets_leaked=secrets_in(run.output + again.output, own_cluster.password),
                     detail="validation waiting in %r: %s; rerun: %s" % (waiting_in[:40], msg, detail))
        assert res.get("failed") and not leaks, leaks or res
        assert msg.startswith("migration validation: lost the connection to PostgreSQL"), msg
        assert "\n" not in msg.strip(), msg
        assert not checked.get("failed"), checked.get("msg")
        assert not traceback_leaks(again, checked)
        assert not problems and lost == 0
    finally:
        drop_database(own_cluster, db)


def test_connection_faults_are_one_clear_message(own_cluster, sample, reference, tmp_path, fault_report):
    src, _counts = sample
    db = new_database(own_cluster, "conn")
    wrong_password = "wrong-%s" % _free_port()
    faults = {
        "connection refused (wrong port)": ({"login_port": _free_port()}, "server is not accepting connections"),
        "wrong password": ({"login_password": wrong_password}, "authentication failed for user 'postgres'"),
        "database missing": ({"db": db + "_missing"}, "database '%s_missing' does not exist" % db),
    }
    try:
        tasks = []
        for fault, (override, _reason) in faults.items():
            tasks.append(task("migrate: " + fault, "sqlite_migrate",
                              dict(_module_args(own_cluster, db, src), **override)))
            tasks.append(task("validate: " + fault, "migration_validate",
                              dict(_validate_args(own_cluster, db, src), **override)))
        tasks.append(task("migrate", "sqlite_migrate", _module_args(own_cluster, db, src)))
        tasks.append(task("validate", "migration_validate", _validate_args(own_cluster, db, src)))
        run = AnsibleRun(tasks, tmp_path).wait()
        lost, problems, detail = final_state(own_cluster, db, src, reference)
        good = {m: not run.results[m].get("failed") for m in ("migrate", "validate")}
        leaked = secrets_in(run.output, own_cluster.password, wrong_password)
        bad = []
        for fault, (_override, reason) in faults.items():
            msgs = []
            for module, prefix in (("migrate", "sqlite_migrate: "), ("validate", "migration validation: ")):
                res = run.results["%s: %s" % (module, fault)]
                msg = str(res.get("msg", ""))
                msgs.append(msg)
                if not res.get("failed"):
                    bad.append("%s: %s did not fail" % (fault, module))
                bad += ["%s: %s: %s" % (fault, module, leak) for leak in traceback_leaks(run, res)]
                if not msg.startswith(prefix + "cannot connect to PostgreSQL at ") or reason not in msg \
                        or "\n" in msg.strip():
                    bad.append("%s: %s: unclear message %r" % (fault, module, msg))
            fault_report(fault, tries=2, recovered=sum(good.values()) if not problems else 0, rows_lost=lost,
                         secrets_leaked=leaked, detail=" | ".join(msgs) + "; then correct settings: " + detail)
        assert not bad, bad
        assert leaked == 0
        assert all(good.values()), {m: run.results[m].get("msg") for m in good}
        assert not problems and lost == 0
    finally:
        drop_database(own_cluster, db)


# -- 3. two migrations at once --------------------------------------------------------------------------


@pytest.mark.parametrize("lock_timeout", [0, 120], ids=["fail-fast", "wait"])
def test_two_concurrent_migrations_load_once(pg_server, sample, reference, tmp_path, fault_report, lock_timeout):
    src, _counts = sample
    db = new_database(pg_server, "twin")
    gate = Gate(pg_server, db)
    runs = []
    try:
        gate.hold_table("tickers")  # the winner stops in its first table while holding the migration lock
        args = _module_args(pg_server, db, src, lock_timeout=lock_timeout)
        runs = [AnsibleRun([task("Migrate", "sqlite_migrate", args)], tmp_path, "twin%d" % i) for i in (1, 2)]

        def winner():
            rows = [r for r in gate.backends() if r[1] == "Lock" and r[3].startswith("DROP INDEX")]
            return rows[0][0] if rows else None

        holder = wait_until("one run loading", winner)
        if lock_timeout:  # the other one is polling the lock
            wait_until("the second run waiting for the lock", lambda: any(
                r[0] != holder and "pg_try_advisory_lock" in r[3] for r in gate.backends()))
        else:
            wait_until("the second run giving up", lambda: any(r.proc.poll() is not None for r in runs))
        gate.release_table()
        results = [r.wait().results["Migrate"] for r in runs]
        loaders = [r for r in results if not r.get("failed") and r.get("changed")]
        others = [r for r in results if r not in loaders]
        lost, problems, detail = final_state(pg_server, db, src, reference)
        fault_report("two concurrent migrations (lock_timeout %d)" % lock_timeout, tries=1,
                     recovered=int(len(loaders) == 1 and not problems), rows_lost=lost,
                     detail="the other run: %s; %s" % ("; ".join(
                         str(r.get("msg") or "skipped %d tables" % len(r["tables"])) for r in others), detail))
        assert len(loaders) == 1 and len(others) == 1, [r.get("msg") for r in results]
        assert loaders[0]["total_copied"] == reference["copied"]
        other = others[0]
        for run, res in zip(runs, results):
            assert not traceback_leaks(run, res)
        if lock_timeout:
            assert not other.get("failed") and not other["changed"], other.get("msg")
            assert {t["status"] for t in other["tables"].values()} == {"skipped"}
        else:
            assert other["failed"]
            assert other["msg"].startswith("sqlite_migrate: another sqlite_migrate run is loading this database "
                                           "(advisory lock"), other["msg"]
            assert "backend pid %d" % holder in other["msg"]
            assert other["total_copied"] == 0 and not other["tables"]
        assert not problems and lost == 0
    finally:
        gate.close()
        for run in runs:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
        drop_database(pg_server, db)

