"""Rebuild the indexes dropped for a bulk load, several at a time.

After a bulk load the server has nothing else to do, and one CREATE INDEX
uses one core; building two indexes on two connections at once roughly halves
the rebuild (measured with scripts/bench-migrate on a 2-core machine). CREATE
INDEX takes a SHARE lock, which does not conflict with itself, so the builds
do not wait for each other. Each build commits on its own: after a crash the
caller sees which indexes exist and rebuilds only the missing ones.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from queue import SimpleQueue

from ansible.module_utils.core.postgres import ConnectionFailure, connect, rollback_quietly

# Two builders: enough to use a second core, few enough that maintenance_work_mem
# (per builder) stays modest on a laptop.
WORKERS = 2
MAINTENANCE_WORK_MEM = "256MB"


def _build(conn, definition):
    with conn.cursor() as cur:
        cur.execute("SET maintenance_work_mem = %s", (MAINTENANCE_WORK_MEM,))
        cur.execute(definition)
    conn.commit()


def _open_builders(params, count):
    """count extra connections, or [] when they cannot be opened (the caller then builds alone)."""
    conns = []
    try:
        for _ in range(count):
            conns.append(connect(params))
    except ConnectionFailure:
        for conn in conns:
            conn.close()
        return []
    return conns


def build_indexes(conn, params, definitions, workers=WORKERS):
    """Run each CREATE INDEX statement; several at once on their own connections when possible.

    psycopg2 errors propagate (the caller reports them); if extra connections
    cannot be opened, the statements run one after another on conn.
    """
    definitions = list(definitions)
    builders = _open_builders(params, min(workers, len(definitions))) if len(definitions) > 1 else []
    if not builders:
        for definition in definitions:
            _build(conn, definition)
        return
    idle = SimpleQueue()  # each task borrows a connection no other task is using
    for builder in builders:
        idle.put(builder)

    def build(definition):
        builder = idle.get()
        try:
            _build(builder, definition)
        except Exception:
            rollback_quietly(builder)  # the next task on this connection starts clean
            raise
        finally:
            idle.put(builder)

    try:
        with ThreadPoolExecutor(max_workers=len(builders)) as pool:
            for future in [pool.submit(build, d) for d in definitions]:
                future.result()
    finally:
        for builder in builders:
            builder.close()
