"""sqlite_migrate on SQLite files nobody designed for it (issue 20, items 1, 6, 7), against a real
PostgreSQL whose schema was written without quotes (lower-case names, as pgloader makes them)."""

from __future__ import annotations

import sqlite3

import pytest
from ansible.module_utils.migrate.runner import MigrationError, run_migration

pytestmark = pytest.mark.integration

MIXED_CASE_SOURCE = """
CREATE TABLE "Artist" ("ArtistId" INTEGER PRIMARY KEY, "Name" NVARCHAR(120));
INSERT INTO "Artist" VALUES (1, 'AC/DC'), (2, 'Accept');
CREATE TABLE "Album" ("AlbumId" INTEGER PRIMARY KEY, "Title" NVARCHAR(160) NOT NULL, "ArtistId" INTEGER NOT NULL);
INSERT INTO "Album" VALUES (1, 'For Those About To Rock', 1), (2, 'Balls to the Wall', 2), (3, 'Restless', 2);
"""

LOWER_CASE_TARGET = """
CREATE TABLE artist (artistid integer PRIMARY KEY, name varchar(120));
CREATE TABLE album (albumid integer PRIMARY KEY, title varchar(160) NOT NULL, artistid integer NOT NULL);
"""


def make_source(path, script):
    db = sqlite3.connect(path)
    db.executescript(script)
    db.commit()
    db.close()
    return str(path)


def pg_exec(pg_server, db, script):
    conn = pg_server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(script)
        conn.commit()
    finally:
        conn.close()


def pg_rows(pg_server, db, query):
    conn = pg_server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def params(pg_server, db, src, **extra):
    out = pg_server.params(db)
    out.update(src=src, verify_source=True)
    out.update(extra)
    return out


# -- item 1: names ------------------------------------------------------------------------------------

def test_mixed_case_source_loads_into_lower_case_schema(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "music.db", MIXED_CASE_SOURCE)
    pg_exec(pg_server, pg_db, LOWER_CASE_TARGET)
    result = run_migration(params(pg_server, pg_db, src, tables=None))
    album = result["tables"]["Album"]
    assert album["target"] == "public.album" and album["copied_rows"] == 3
    assert any("public.album" in note and "lower-case" in note for note in album["notes"])
    assert any("AlbumId -> albumid" in note for note in album["notes"])
    assert pg_rows(pg_server, pg_db, "SELECT albumid, title, artistid FROM album ORDER BY 1") == [
        (1, "For Those About To Rock", 1), (2, "Balls to the Wall", 2), (3, "Restless", 2)]
    assert pg_rows(pg_server, pg_db, "SELECT count(*) FROM artist") == [(2,)]


def test_explicit_target_is_exact_and_the_error_names_the_lower_case_table(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "music.db", MIXED_CASE_SOURCE)
    pg_exec(pg_server, pg_db, LOWER_CASE_TARGET)
    with pytest.raises(MigrationError) as info:
        run_migration(params(pg_server, pg_db, src, mapping={"Album": {"target": "Album"}}))
    msg = str(info.value)
    assert "public.Album does not exist" in msg and "album" in msg and "only in case" in msg


def test_ambiguous_target_table_names_both_candidates(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "music.db", 'CREATE TABLE "ALBUM" (id INTEGER PRIMARY KEY);')
    pg_exec(pg_server, pg_db, 'CREATE TABLE album (id int); CREATE TABLE "Album" (id int);')
    with pytest.raises(MigrationError) as info:
        run_migration(params(pg_server, pg_db, src))
    assert "Album and album" in str(info.value) and "ambiguous" in str(info.value)


def test_a_rename_and_a_fold_into_one_column_is_an_error(pg_server, pg_db, tmp_path):
    # SQLite names are case-insensitive, so a clash needs a rename: label -> title, and Title folds to title
    src = make_source(tmp_path / "cols.db", 'CREATE TABLE t ("Title" TEXT, label TEXT);')
    pg_exec(pg_server, pg_db, "CREATE TABLE t (title text);")
    with pytest.raises(MigrationError) as info:
        run_migration(params(pg_server, pg_db, src, mapping={"t": {"columns": {"label": "title"}}}))
    assert "Title and label both resolve to title" in str(info.value)


def test_name_over_63_bytes_is_named(pg_server, pg_db, tmp_path):
    long_name = "é" * 32  # 64 bytes of UTF-8, 32 characters
    src = make_source(tmp_path / "long.db", 'CREATE TABLE "%s" (id INTEGER PRIMARY KEY);' % long_name)
    with pytest.raises(MigrationError) as info:
        run_migration(params(pg_server, pg_db, src))
    assert long_name in str(info.value) and "64 bytes" in str(info.value)


# -- item 6: WITHOUT ROWID tables and views -----------------------------------------------------------

ROWLESS_SOURCE = """
CREATE TABLE "PlayCount" ("Region" TEXT NOT NULL, "TrackId" INTEGER NOT NULL, "Plays" INTEGER,
                          PRIMARY KEY ("Region", "TrackId")) WITHOUT ROWID;
CREATE VIEW "TopTracks" AS SELECT "TrackId", sum("Plays") AS plays FROM "PlayCount" GROUP BY "TrackId";
"""

ROWLESS_TARGET = "CREATE TABLE playcount (region text, trackid integer, plays integer, PRIMARY KEY (region, trackid));"


def rowless_source(path, rows):
    src = make_source(path, ROWLESS_SOURCE)
    db = sqlite3.connect(src)
    db.executemany('INSERT INTO "PlayCount" VALUES (?, ?, ?)', rows)
    db.commit()
    db.close()
    return src


def rowless_rows(count):
    """Rows in an order unrelated to the key, so key order is observable."""
    return [("EU" if i % 3 else "US", (i * 7919) % 10007, i) for i in range(count)]


def test_without_rowid_table_loads_in_key_order_and_views_are_listed(pg_server, pg_db, tmp_path):
    rows = [*rowless_rows(500), ("ZZ", 1, "many")]  # last in key order: position 501
    src = rowless_source(tmp_path / "plays.db", rows)
    pg_exec(pg_server, pg_db, ROWLESS_TARGET)
    result = run_migration(params(pg_server, pg_db, src, batch_rows=64, max_reject_ratio=0.01))
    res = result["tables"]["PlayCount"]
    assert (res["source_rows"], res["copied_rows"], res["rejected_rows"]) == (501, 500, 1)
    assert any("WITHOUT ROWID" in note and "Region, TrackId" in note for note in res["notes"])
    assert res["rejects_sample"][0]["source_rowid"] == 501 and res["rejects_sample"][0]["column"] == "plays"
    assert "TopTracks" in result["skipped_views"] and "no rows of its own" in result["skipped_views"]["TopTracks"]
    assert "TopTracks" not in result["tables"]
    want = sorted(r for r in rows if r[0] != "ZZ")
    assert pg_rows(pg_server, pg_db, "SELECT region, trackid, plays FROM playcount ORDER BY 1, 2") == want


def test_without_rowid_table_resumes_by_position(pg_server, pg_db, tmp_path):
    rows = rowless_rows(400)
    src = rowless_source(tmp_path / "plays.db", rows)
    pg_exec(pg_server, pg_db, ROWLESS_TARGET)
    first = run_migration(params(pg_server, pg_db, src, batch_rows=50))
    assert first["tables"]["PlayCount"]["copied_rows"] == 400
    # what a run killed after 150 rows leaves: its committed batches and a running checkpoint
    pg_exec(pg_server, pg_db, """
        DELETE FROM playcount WHERE (region, trackid) NOT IN (
            SELECT region, trackid FROM playcount ORDER BY region COLLATE "C", trackid LIMIT 150);
        UPDATE quant_meta.migration_checkpoints SET status = 'running', copied_rows = 150, last_rowid = 150
         WHERE table_name = 'PlayCount';
    """)
    with pytest.raises(MigrationError, match=r"interrupted load.*resume: true"):
        run_migration(params(pg_server, pg_db, src, batch_rows=50))
    result = run_migration(params(pg_server, pg_db, src, batch_rows=50, resume=True))
    res = result["tables"]["PlayCount"]
    assert res["status"] == "resumed" and (res["copied_rows"], res["duplicate_rows"], res["rejected_rows"]) == (
        400, 0, 0)
    assert pg_rows(pg_server, pg_db, "SELECT region, trackid, plays FROM playcount ORDER BY 1, 2") == sorted(rows)


def test_check_mode_reads_without_rowid_tables(pg_server, pg_db, tmp_path):
    src = rowless_source(tmp_path / "plays.db", rowless_rows(30))
    pg_exec(pg_server, pg_db, ROWLESS_TARGET)
    result = run_migration(params(pg_server, pg_db, src), check_mode=True)
    assert result["tables"]["PlayCount"]["copied_rows"] == 30
    assert result["tables"]["PlayCount"]["status"] == "would_copy"


def test_a_view_named_in_the_mapping_is_skipped_with_a_warning(pg_server, pg_db, tmp_path):
    src = rowless_source(tmp_path / "plays.db", rowless_rows(3))
    pg_exec(pg_server, pg_db, ROWLESS_TARGET)
    result = run_migration(params(pg_server, pg_db, src, mapping={"PlayCount": {}, "TopTracks": {}}))
    assert result["tables"]["PlayCount"]["copied_rows"] == 3 and "TopTracks" not in result["tables"]
    assert any(w.startswith("TopTracks: a view") for w in result["warnings"])


# -- item 7: explicit precision choices ---------------------------------------------------------------

PRICES_SOURCE = """
CREATE TABLE prices (id INTEGER PRIMARY KEY, price REAL, created DATETIME, day DATE);
INSERT INTO prices VALUES (1, 0.5, '2024-05-01 10:00:00', '2024-05-01');
INSERT INTO prices VALUES (2, 9.99, '2024-05-02 10:00:00', 20240502);
INSERT INTO prices VALUES (3, 1.25, 2024, 86400);
INSERT INTO prices VALUES (4, 2.5, 1714557600000, '2024-05-04');
"""

PRICES_TARGET = "CREATE TABLE prices (id integer PRIMARY KEY, price real, created timestamptz, day date);"


@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_float4_rounding_reject_by_default_accept_on_request(pg_server, pg_db, tmp_path, copy_format):
    src = make_source(tmp_path / "prices.db", PRICES_SOURCE)
    pg_exec(pg_server, pg_db, PRICES_TARGET)
    base = params(pg_server, pg_db, src, copy_format=copy_format, max_reject_ratio=0.5)
    result = run_migration(base)
    res = result["tables"]["prices"]
    assert (res["copied_rows"], res["rejected_rows"]) == (3, 1)
    (reject,) = res["rejects_sample"]
    assert (reject["source_rowid"], reject["column"]) == (2, "price")
    assert "cannot be stored exactly in real" in reject["reason"]
    accepted = run_migration(dict(base, truncate=True, float4_rounding="accept"))
    res = accepted["tables"]["prices"]
    assert (res["copied_rows"], res["rejected_rows"]) == (4, 0)
    assert any("float4_rounding: accept" in note and "price" in note for note in res["notes"])
    assert pg_rows(pg_server, pg_db, "SELECT price FROM prices WHERE id = 2") == [(pytest.approx(9.99, rel=1e-6),)]
    assert pg_rows(pg_server, pg_db, "SELECT price = 9.99::real FROM prices WHERE id = 2") == [(True,)]


@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_epoch_reading_is_noted_once_per_column_with_its_first_rowid(pg_server, pg_db, tmp_path, copy_format):
    src = make_source(tmp_path / "prices.db", PRICES_SOURCE)
    pg_exec(pg_server, pg_db, PRICES_TARGET)
    result = run_migration(params(pg_server, pg_db, src, copy_format=copy_format, float4_rounding="accept"))
    notes = result["tables"]["prices"]["notes"]
    created = [n for n in notes if n.startswith("column created:")]
    day = [n for n in notes if n.startswith("column day:")]
    assert len(created) == 1 and "Unix epoch seconds" in created[0]
    assert "first 2024 -> 1970-01-01 00:33:44+00:00 at source rowid 3" in created[0]
    assert len(day) == 1 and "first 86400 -> 1970-01-02 00:00:00+00:00 at source rowid 3" in day[0]
    got = pg_rows(pg_server, pg_db, "SELECT id, created AT TIME ZONE 'UTC', day FROM prices WHERE id IN (3, 4) "
                                    "ORDER BY id")
    assert [(r[0], r[1].isoformat(" "), r[2].isoformat()) for r in got] == [
        (3, "1970-01-01 00:33:44", "1970-01-02"), (4, "2024-05-01 10:00:00", "2024-05-04")]


def test_check_mode_notes_the_epoch_reading_too(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "prices.db", PRICES_SOURCE)
    pg_exec(pg_server, pg_db, PRICES_TARGET)
    result = run_migration(params(pg_server, pg_db, src, float4_rounding="accept"), check_mode=True)
    assert any(n.startswith("column created:") for n in result["tables"]["prices"]["notes"])


# -- together: what a third-party file looks like ------------------------------------------------------

THIRD_PARTY_SOURCE = """
CREATE TABLE "Artist" ("ArtistId" INTEGER PRIMARY KEY, "Name" NVARCHAR(120));
CREATE TABLE "Track" ("TrackId" INTEGER PRIMARY KEY, "Name" TEXT NOT NULL,
                      "ArtistId" INTEGER REFERENCES "Artist", "AddedAt" DATETIME, "Rating" REAL);
CREATE TABLE "TrackTag" ("TrackId" INTEGER NOT NULL REFERENCES "Track", "Tag" TEXT NOT NULL,
                         PRIMARY KEY ("TrackId", "Tag")) WITHOUT ROWID;
CREATE VIEW "ArtistTracks" AS SELECT a."Name", count(*) FROM "Artist" a JOIN "Track" t USING ("ArtistId")
                              GROUP BY a."Name";
"""

# as a tool that writes names without quotes makes it (FKs included)
THIRD_PARTY_TARGET = """
CREATE TABLE artist (artistid integer PRIMARY KEY, name varchar(120));
CREATE TABLE track (trackid integer PRIMARY KEY, name text NOT NULL, artistid integer REFERENCES artist,
                    addedat timestamptz, rating double precision);
CREATE TABLE tracktag (trackid integer NOT NULL REFERENCES track, tag text NOT NULL, PRIMARY KEY (trackid, tag));
"""


def test_third_party_file_migrates_row_for_row_with_the_default_mapping(pg_server, pg_db, tmp_path):
    src = make_source(tmp_path / "third.db", THIRD_PARTY_SOURCE)
    db = sqlite3.connect(src)
    db.executemany('INSERT INTO "Artist" VALUES (?, ?)', [(i, "artist %d" % i) for i in range(1, 21)])
    db.executemany('INSERT INTO "Track" VALUES (?, ?, ?, ?, ?)', [
        (i, "track %d" % i, 1 + i % 20, "2024-01-%02d 10:00:00" % (1 + i % 28) if i % 5 else 1700000000 + i,
         i / 8) for i in range(1, 301)])
    db.executemany('INSERT INTO "TrackTag" VALUES (?, ?)', [
        (1 + (i * 37) % 300, tag) for i in range(300) for tag in ("rock", "live")[: 1 + i % 2]])
    db.commit()
    want = {
        "artist": db.execute('SELECT * FROM "Artist" ORDER BY 1').fetchall(),
        "track": db.execute('SELECT "TrackId", "Name", "ArtistId", "Rating" FROM "Track" ORDER BY 1').fetchall(),
        "tracktag": db.execute('SELECT * FROM "TrackTag" ORDER BY 1, 2').fetchall(),
    }
    db.close()
    pg_exec(pg_server, pg_db, THIRD_PARTY_TARGET)
    result = run_migration(params(pg_server, pg_db, src, batch_rows=100))
    assert {t: r["target"] for t, r in result["tables"].items()} == {
        "Artist": "public.artist", "Track": "public.track", "TrackTag": "public.tracktag"}
    assert result["total_rejected"] == 0 and result["total_duplicates"] == 0
    assert list(result["skipped_views"]) == ["ArtistTracks"]
    assert any(n.startswith("column AddedAt (into addedat): integer values read as Unix epoch")
               for n in result["tables"]["Track"]["notes"])
    assert pg_rows(pg_server, pg_db, "SELECT * FROM artist ORDER BY 1") == want["artist"]
    assert pg_rows(pg_server, pg_db, "SELECT trackid, name, artistid, rating FROM track ORDER BY 1") == want["track"]
    tags = pg_rows(pg_server, pg_db, 'SELECT trackid, tag FROM tracktag ORDER BY 1, tag COLLATE "C"')
    assert tags == want["tracktag"]
    assert pg_rows(pg_server, pg_db, "SELECT count(*) FROM track WHERE addedat < '2000-01-01'") == [(0,)]
