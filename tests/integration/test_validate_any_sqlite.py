"""migration_validate after sqlite_migrate on a SQLite file nobody designed for it (issue 20, items 1, 6, 7):
mixed-case names loaded into a schema written without quotes, a WITHOUT ROWID table, and a REAL in a
`real` column stored rounded (float4_rounding: accept). The validation must find the tables the migration
found and really compare their rows."""

from __future__ import annotations

import sqlite3

import pytest
from ansible.module_utils.migrate.runner import run_migration
from ansible.module_utils.validate.runner import run
from integration.test_any_sqlite_files import make_source, params, pg_exec

pytestmark = pytest.mark.integration

SOURCE = """
CREATE TABLE "Artist" ("ArtistId" INTEGER PRIMARY KEY, "Name" NVARCHAR(120));
CREATE TABLE "Track" ("TrackId" INTEGER PRIMARY KEY, "Name" TEXT NOT NULL,
                      "ArtistId" INTEGER REFERENCES "Artist", "Rating" REAL);
CREATE TABLE "TrackTag" ("TrackId" INTEGER NOT NULL REFERENCES "Track", "Tag" TEXT NOT NULL, "Weight" REAL,
                         PRIMARY KEY ("Tag", "TrackId")) WITHOUT ROWID;
"""

# as a tool that writes names without quotes makes it; rating and weight are float4
TARGET = """
CREATE TABLE artist (artistid integer PRIMARY KEY, name varchar(120));
CREATE TABLE track (trackid integer PRIMARY KEY, name text NOT NULL, artistid integer REFERENCES artist,
                    rating real);
CREATE TABLE tracktag (trackid integer NOT NULL REFERENCES track, tag text NOT NULL, weight real,
                       PRIMARY KEY (trackid, tag));
"""

MAPPING = {"Artist": {}, "Track": {}, "TrackTag": {}}
CHECKS = ["reconciliation", "content", "integrity"]


def _fill(src):
    db = sqlite3.connect(src)
    db.executemany('INSERT INTO "Artist" VALUES (?, ?)', [(i, "artist %d" % i) for i in range(1, 21)])
    db.executemany('INSERT INTO "Track" VALUES (?, ?, ?, ?)', [
        (i, "track %d" % i, 1 + i % 20, i / 7 + 0.01) for i in range(1, 301)])  # most not exact in float4
    db.executemany('INSERT INTO "TrackTag" VALUES (?, ?, ?)', [
        (1 + (i * 37) % 300, tag, i * 0.1) for i in range(300) for tag in ("rock", "live")[: 1 + i % 2]])
    db.commit()
    db.close()


@pytest.fixture
def migrated(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "third.db", SOURCE)
    _fill(src)
    pg_exec(pg_server, pg_db, TARGET)
    result = run_migration(params(pg_server, pg_db, src, tables=None, float4_rounding="accept"))
    assert {t: r["copied_rows"] for t, r in result["tables"].items()} == {"Artist": 20, "Track": 300,
                                                                          "TrackTag": 450}
    return src


def _validate(pg_server, pg_db, src, **extra):
    base = pg_server.params(pg_db, src=src, mapping=MAPPING, checks=CHECKS, severity_overrides={},
                            quality_severity="warning", max_differences=10, legacy_schema="")
    return run(dict(base, **extra))


def _checks(result):
    return {c["name"]: c for c in result["checks"]}


def test_mixed_case_rowless_float4_file_validates(pg_server, pg_db, migrated):
    result = _validate(pg_server, pg_db, migrated, float4_rounding="accept")
    failing = [c for c in result["checks"] if c["status"] == "fail"]
    assert result["summary"]["critical_failures"] == 0, failing
    checks = _checks(result)
    for table, rows, cols in (("Artist", 20, 2), ("Track", 300, 4), ("TrackTag", 450, 3)):
        content = checks["content %s" % table]
        assert content["status"] == "pass", content
        assert content["detail"].startswith("%d rows x %d columns identical" % (rows, cols)), content
        assert checks["row accounting %s" % table]["status"] == "pass", checks["row accounting %s" % table]


def test_without_accept_the_rounded_values_are_named(pg_server, pg_db, migrated):
    # the migration stored float4 roundings; compared as exact doubles they differ, and the check says so
    result = _validate(pg_server, pg_db, migrated)
    checks = _checks(result)
    assert checks["content Track"]["status"] == "fail"
    assert checks["content Artist"]["status"] == "pass"


def test_a_changed_row_of_the_rowless_table_is_found(pg_server, pg_db, migrated):
    pg_exec(pg_server, pg_db, "UPDATE tracktag SET weight = weight + 1 WHERE trackid = 38 AND tag = 'rock'")
    result = _validate(pg_server, pg_db, migrated, float4_rounding="accept")
    content = _checks(result)["content TrackTag"]
    assert content["status"] == "fail", content
    assert "38" in content["detail"] and "rock" in content["detail"], content


def test_a_missing_row_of_the_rowless_table_is_named_by_its_position(pg_server, pg_db, migrated):
    pg_exec(pg_server, pg_db, "DELETE FROM tracktag WHERE trackid = 38 AND tag = 'live'")
    result = _validate(pg_server, pg_db, migrated, float4_rounding="accept")
    content = _checks(result)["content TrackTag"]
    assert content["status"] == "fail", content
    assert "position" in str(content) and "(Tag, TrackId) order" in str(content), content
