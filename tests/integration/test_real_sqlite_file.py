"""sqlite_migrate on a real SQLite file nobody designed for it: PROJ's proj.db (Debian package proj-data,
installed by scripts/bootstrap.sh --test). 36 tables, most WITHOUT ROWID with composite primary keys,
50 foreign keys whose child tables sort before their parents, CHECK constraints, a declared type
PostgreSQL lacks (INTEGER_OR_TEXT), views and triggers.

The target schema is made by pgloader, the way a new user would make it (unquoted, lower-case names),
and pgloader's own load of the same file is the reference: with the default mapping the module must
load every table row for row as pgloader did, and a rerun must change nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.module_utils.migrate.runner import run_migration
from ansible.module_utils.validate.runner import run
from test_any_sqlite_files import params

pytestmark = pytest.mark.integration

PROJ_DB = Path("/usr/share/proj/proj.db")
# SQLite's own statistics table: pgloader copies it, the module leaves SQLite's internal tables alone
INTERNAL = {"sqlite_stat1"}


def pgloader(server, tmp_path, src, db, options):
    load = tmp_path / ("%s.load" % db)
    load.write_text(
        "LOAD DATABASE FROM sqlite://%s INTO postgresql://%s:%s@%s:%d/%s\n  WITH %s\n"
        "  CAST type integer_or_text to text drop typemod;\n"
        % (src, server.user, server.password, server.host, server.port, db, options))
    done = subprocess.run(["pgloader", "--no-ssl-cert-verification", "--root-dir", str(tmp_path / "pgl"), str(load)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def fingerprints(server, db):
    """{table: (rows, md5 of the sorted row texts)} of every table in public."""
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            out = {}
            for (table,) in cur.fetchall():
                cur.execute('SELECT count(*), md5(string_agg(x::text, E\'\\n\' ORDER BY x::text)) FROM public."%s" x'
                            % table)
                out[table] = cur.fetchone()
            return out
    finally:
        conn.close()


def copy_schema(server, source_db, target_db):
    """The reference's schema as pgloader left it (pgloader's `schema only` differs: it makes usage's
    primary key NOT NULL, which its full load could not, as 22,650 rows hold NULL there)."""
    env = {"PGPASSWORD": server.password, "PATH": "/usr/bin:/bin"}
    dump = subprocess.run([str(server.bindir / "pg_dump"), "-s", "-h", server.host, "-p", str(server.port),
                           "-U", server.user, source_db], capture_output=True, text=True, env=env, check=True)
    subprocess.run([str(server.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host,
                    "-p", str(server.port), "-U", server.user, target_db], input=dump.stdout, capture_output=True,
                   text=True, env=env, check=True)


def create_db(server, name):
    conn = server.connect()
    try:
        conn.cursor().execute('CREATE DATABASE "%s"' % name)
    finally:
        conn.close()


def assert_validates(server, db, src, tables):
    """migration_validate finds every table and compares its rows with the file's: all identical."""
    result = run(server.params(db, src=src, mapping={t: {} for t in tables}, checks=["reconciliation", "content"],
                               severity_overrides={}, quality_severity="warning", max_differences=10,
                               legacy_schema=""))
    failing = [c for c in result["checks"] if c["status"] == "fail"]
    assert result["summary"]["critical_failures"] == 0 and not failing, failing
    content = {c["name"]: c for c in result["checks"] if c["name"].startswith("content ")}
    assert set(content) == {"content %s" % t for t in tables}
    assert all(c["detail"].split(" rows")[0].isdigit() and "identical" in c["detail"] for c in content.values()), \
        content


@pytest.fixture
def proj_copy(tmp_path):
    assert PROJ_DB.exists(), "%s is missing: run scripts/bootstrap.sh --test (Debian package proj-data)" % PROJ_DB
    assert shutil.which("pgloader"), "pgloader is missing: run scripts/bootstrap.sh --test"
    src = tmp_path / "proj.db"
    shutil.copyfile(PROJ_DB, src)
    return str(src)


def test_proj_db_migrates_row_for_row_like_pgloader(pg_server, pg_db, proj_copy, tmp_path):
    reference = pg_db + "_pgl"
    create_db(pg_server, reference)
    pgloader(pg_server, tmp_path, proj_copy, reference, "create tables, create indexes, foreign keys")
    copy_schema(pg_server, reference, pg_db)
    result = run_migration(params(pg_server, pg_db, proj_copy, batch_rows=1000))
    assert result["total_rejected"] == 0 and result["total_duplicates"] == 0, result["warnings"]
    want = fingerprints(pg_server, reference)
    got = fingerprints(pg_server, pg_db)
    assert len(want) > 30
    for table in INTERNAL:
        assert want.pop(table)[0] > 0 and got.pop(table)[0] == 0
    assert got == want
    assert sum(rows for rows, _md5 in got.values()) == result["total_copied"] > 70000
    rowless = [t for t, r in result["tables"].items() if any("WITHOUT ROWID" in n for n in r["notes"])]
    assert len(rowless) > 20
    assert set(result["skipped_views"]) >= {"coordinate_operation_view", "crs_view"}
    assert_validates(pg_server, pg_db, proj_copy, list(result["tables"]))
    again = run_migration(params(pg_server, pg_db, proj_copy, batch_rows=1000))
    assert {r["status"] for r in again["tables"].values()} == {"skipped"}
    got.update({table: (0, None) for table in INTERNAL})
    assert fingerprints(pg_server, pg_db) == got
