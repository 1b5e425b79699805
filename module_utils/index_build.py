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

from ansible.module_utils.quant_postgres import ConnectionFailure, connect

# Two builders: enough to use a second core, few enough that maintenance_work_mem
# (per builder) stays modest on a laptop.
WORKERS = 2
MAINTENANCE_WORK_MEM = "256MB"


def _build(conn, definition):
    with conn.cursor() as cur:
        cur.execute("SET maintenance_work_mem = %s", (MAINTENANCE_WORK_MEM,))
        cur.execute(definition)
    conn.commit()


def _build_on_new_connection(params, definition):
    conn = connect(params)
    try:
        _build(conn, definition)
    finally:
        conn.close()


def build_indexes(conn, params, definitions, workers=WORKERS):
    """Run each CREATE INDEX statement; several at once on their own connections when possible.

    psycopg2 errors propagate (the caller reports them); if extra connections
    cannot be opened, the statements run one after another on conn.
    """
    definitions = list(definitions)
    if len(definitions) > 1 and workers > 1:
        try:
            probe = connect(params)
        except ConnectionFailure:
            probe = None
        if probe is not None:
            probe.close()
            with ThreadPoolExecutor(max_workers=min(workers, len(definitions))) as pool:
                for future in [pool.submit(_build_on_new_connection, params, d) for d in definitions]:
                    future.result()
            return
    for definition in definitions:
        _build(conn, definition)
