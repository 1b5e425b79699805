"""Faults only the Community edition can have (issue 16): compressed chunks under a kill -9.

1. kill -9 of the server process that runs a compression job, while it waits to compress a
   chunk (the chunks before it are compressed and committed): the postmaster restarts every
   backend and recovers; no row is lost, the chunk it was on is left uncompressed (its
   transaction never committed), and the job run again compresses the rest.
2. kill -9 of sqlite_migrate in the middle of ohlcv_data, a compression policy that runs before
   anyone resumes (every chunk so far compressed, the one the killed batch was writing into
   too), then `resume: true`: the resumed load writes into compressed chunks (they become
   partial) and ends exactly where an uninterrupted load does.

Both run on a dedicated Community cluster (scripts/build-community): a backend's kill -9
restarts the whole server. The proof is the fault suite's: migration_validate's content
fingerprints against the SQLite source and exact per-table counts against an uninterrupted
load. Pauses are PostgreSQL locks, never sleeps.
"""

from __future__ import annotations

import os
import signal
import threading

import psycopg2
import pytest
from ansible.module_utils.sample.generator import generate
from faultlib import (
    WAIT,
    Gate,
    content_proof,
    drop_database,
    kill_9,
    migrate,
    migration_params,
    new_database,
    query,
    scalar,
    start_core,
    table_counts,
    validate,
    wait_until,
)
from pgcluster import community_fixture
from quant_target_ddl import OHLCV_COMPRESSION, quant_mapping

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SCALE = 0.03
TABLES = list(quant_mapping())


@pytest.fixture(scope="module")
def community():
    """A dedicated Community cluster: these tests crash and restart it."""
    yield from community_fixture()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("community-faults") / "spock_local.db"
    generate(str(path), scale=SCALE)
    return str(path)


@pytest.fixture(scope="module")
def reference(community, sample):
    """Per-table counts of an uninterrupted load into the Community cluster."""
    db = new_database(community, "ref")
    try:
        migrate(community, db, sample)
        return table_counts(community, db, TABLES)
    finally:
        drop_database(community, db)


def ohlcv_chunks(conn):
    """[(chunk, is_compressed)] of ohlcv_data, oldest first."""
    return query(conn, "SELECT format('%%I.%%I', chunk_schema, chunk_name), is_compressed "
                       "FROM timescaledb_information.chunks WHERE hypertable_name = 'ohlcv_data' "
                       "ORDER BY range_start")


def proven(server, db, src, reference):
    """(rows lost, problems): fingerprints against the source, counts against the reference."""
    lost, _rows, failed = content_proof(validate(server, db, src))
    counts = table_counts(server, db, TABLES)
    problems = ["critical check failed: %s" % name for name in failed]
    problems += ["%s: %d rows, uninterrupted load has %d" % (t, counts[t], n)
                 for t, n in reference.items() if counts[t] != n]
    return lost, problems


def wait_for_server(server):
    """The server accepts connections again (after the postmaster's crash restart)."""
    def probe():
        try:
            server.connect().close()
            return True
        except psycopg2.OperationalError:
            return False
    wait_until("the server back after crash recovery", probe, interval=0.2)


def test_kill_9_of_a_compression_job_loses_nothing(community, sample, reference, fault_report):
    db = new_database(community, "cjob")
    watch = community.connect(db)
    try:
        migrate(community, db, sample)
        cur = watch.cursor()
        cur.execute(OHLCV_COMPRESSION)
        # the policy exists but only this test runs it (never the scheduler on its own)
        job = scalar(watch, "SELECT add_compression_policy('ohlcv_data', compress_after => INTERVAL '1 day')")
        cur.execute("SELECT alter_job(%s, scheduled => false)", (job,))
        chunks = ohlcv_chunks(watch)
        assert len(chunks) >= 4 and not any(c[1] for c in chunks), chunks
        gated = chunks[2][0]
        gate = community.connect(db, autocommit=False)
        gate.cursor().execute("LOCK TABLE %s IN SHARE MODE" % gated)  # compress_chunk needs EXCLUSIVE
        runner = community.connect(db)
        pid = runner.get_backend_pid()
        errors = []

        def run_job():
            try:
                runner.cursor().execute("CALL run_job(%s)", (job,))
            except psycopg2.Error as exc:  # the kill ends this connection
                errors.append(exc)

        thread = threading.Thread(target=run_job)
        thread.start()
        wait_until("the job waiting for the chunk %s" % gated, lambda: query(
            watch, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'", (pid,)))
        compressed_before = [c for c, done in ohlcv_chunks(watch) if done]
        assert compressed_before == [c[0] for c in chunks[:2]], compressed_before

        os.kill(pid, signal.SIGKILL)  # the server process itself (as the OOM killer would)
        thread.join(WAIT)
        assert errors, "the job's session should have died with its backend"
        for conn in (gate, runner, watch):
            conn.close()
        wait_for_server(community)

        watch = community.connect(db)
        after_kill = dict(ohlcv_chunks(watch))
        assert [c for c, done in after_kill.items() if done] == compressed_before  # the gated one rolled back
        lost_mid, problems = proven(community, db, sample, reference)

        watch.cursor().execute("CALL run_job(%s)", (job,))
        final = ohlcv_chunks(watch)
        lost_end, problems_end = proven(community, db, sample, reference)
        problems += problems_end
        if not all(done for _c, done in final):
            problems.append("chunks left uncompressed after the job ran again: %s" % final)
        fault_report("kill -9 of a compression job's server process", tries=1, recovered=int(not problems),
                     rows_lost=lost_mid + lost_end,
                     detail="%d of %d chunks compressed when killed; after recovery the same %d, then all %d "
                            "compressed by the job run again; fingerprints match the source"
                            % (len(compressed_before), len(chunks), len(compressed_before), len(final)))
        assert not problems
        assert lost_mid == lost_end == 0
    finally:
        watch.close()
        drop_database(community, db)


def test_kill_9_while_loading_into_compressed_chunks_then_resume(community, sample, reference, tmp_path,
                                                                 fault_report):
    db = new_database(community, "cload")
    gate = Gate(community, db)
    proc = None
    try:
        gate.watch.cursor().execute(OHLCV_COMPRESSION)
        gate.hold_table("ohlcv_data")
        proc = start_core(migration_params(community, db, sample), tmp_path, "killed")
        pid, cp = gate.pause_inside("ohlcv_data", proc)
        assert kill_9(proc) == -9
        gate.release_rows()
        gate.wait_gone(pid)
        mid = table_counts(community, db, ["ohlcv_data"])["ohlcv_data"]
        assert mid == cp["copied"], "the uncommitted batch must be rolled back"
        # the compression policy runs before anyone resumes: every chunk so far, the one the
        # killed batch was writing into included, is compressed
        compressed = [chunk for chunk, _done in ohlcv_chunks(gate.watch)]
        for chunk in compressed:
            gate.watch.cursor().execute("SELECT compress_chunk(%s)", (chunk,))

        result = migrate(community, db, sample, resume=True)
        assert result["tables"]["ohlcv_data"]["status"] == "resumed"
        written_into_compressed = scalar(gate.watch, "SELECT count(*) FROM timescaledb_information.chunks c "
                                         "JOIN _timescaledb_catalog.chunk k ON k.table_name = c.chunk_name "
                                         "WHERE c.hypertable_name = 'ohlcv_data' AND c.is_compressed "
                                         "AND k.status & 8 <> 0")  # 8: partial (rows beside the compressed ones)
        lost, problems = proven(community, db, sample, reference)
        fault_report("kill -9 of sqlite_migrate loading into compressed chunks, resume", tries=1,
                     recovered=int(not problems), rows_lost=lost,
                     detail="killed after %d ohlcv_data rows with %d chunks compressed; the resume wrote into "
                            "%d compressed chunk(s); fingerprints match the source"
                            % (cp["copied"], len(compressed), written_into_compressed))
        assert not problems
        assert lost == 0
        assert written_into_compressed > 0, "the resume never wrote into a compressed chunk: the fault was not hit"
    finally:
        gate.close()
        if proc is not None and proc.poll() is None:
            kill_9(proc)
        drop_database(community, db)
