"""Pure logic of roles/pg_backup/files/quant-pg-backup.py: dump names, latest
(safety backups skipped), retention selection, checksum parsing, row-count and
fingerprint comparison, the fingerprint query; and the prune, latest, verify and
check-sqlite commands on real files (no server needed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from file_module import load_file

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "pg_backup" / "files" / "quant-pg-backup.py"
qb = load_file("quant_pg_backup", SCRIPT)

DAY = 86400
NOW = 1_800_000_000.0


def test_dump_name_round_trips_through_the_pattern():
    name = qb.dump_name("quant_platform", dt.datetime(2026, 11, 25, 3, 30, 0, tzinfo=dt.timezone.utc))
    assert name == "quant_platform-20261125T033000Z.dump"
    assert qb.list_dumps([name], "quant_platform")[0][1] == name


def test_latest_ignores_foreign_and_companion_files():
    names = ["quant_platform-20261124T033000Z.dump", "quant_platform-20261125T033000Z.dump.json",
             "quant_platform-20261123T033000Z.dump", "quant_platform-20261126T033000Z.dump.partial",
             "other-20271125T033000Z.dump", "quant_platform-latest.dump", "notes.txt",
             "quant_platformX-20291125T033000Z.dump", "quant_platform-20261399T999999Z.dump"]
    assert qb.latest_dump(names, "quant_platform") == "quant_platform-20261124T033000Z.dump"
    assert qb.latest_dump(["notes.txt"], "quant_platform") is None


def test_db_name_is_matched_literally():
    assert qb.latest_dump(["quantXplatform-20261124T033000Z.dump"], "quant.platform") is None


def test_retention_selects_old_dumps_with_companions_only():
    old, new = "quant_platform-20261101T033000Z.dump", "quant_platform-20261124T033000Z.dump"
    entries = {
        old: NOW - 20 * DAY, old + ".sha256": NOW - 20 * DAY, old + ".json": NOW - 20 * DAY,
        new: NOW - 1 * DAY, new + ".sha256": NOW - DAY,
        "notes.txt": NOW - 100 * DAY, "other-20261101T033000Z.dump": NOW - 100 * DAY,
        "quant_platform-manual.dump": NOW - 100 * DAY,
    }
    assert sorted(qb.select_expired(entries, "quant_platform", 14, NOW)) == sorted(
        [old, old + ".sha256", old + ".json"])


def test_retention_keeps_the_newest_dump_and_the_one_just_written():
    a, b, c = ("quant_platform-2026110%dT033000Z.dump" % d for d in (1, 2, 3))
    entries = {a: NOW - 30 * DAY, b: NOW - 29 * DAY, c: NOW - 28 * DAY}
    assert qb.select_expired(entries, "quant_platform", 14, NOW) == [a, b]
    assert qb.select_expired(entries, "quant_platform", 14, NOW, keep=a) == [b]
    assert qb.select_expired(entries, "quant_platform", 0, NOW) == []


def test_retention_boundary():
    name = "quant_platform-20261101T033000Z.dump"
    other = "quant_platform-20261120T033000Z.dump"
    assert qb.select_expired({name: NOW - 14 * DAY, other: NOW}, "quant_platform", 14, NOW) == []
    assert qb.select_expired({name: NOW - 14 * DAY - 1, other: NOW}, "quant_platform", 14, NOW) == [name]


def test_parse_checksum():
    digest = "a" * 64
    assert qb.parse_checksum("%s  quant_platform-x.dump\n" % digest) == digest
    with pytest.raises(qb.BackupError):
        qb.parse_checksum("not a checksum")


def test_compare_counts():
    assert qb.compare_counts({"a": 1, "b": 2}, {"a": 1, "b": 2}) == []
    problems = qb.compare_counts({"a": 1, "b": 2}, {"a": 0, "c": 5})
    assert problems == ["a: 0 rows, manifest says 1", "b: missing (expected 2 rows)", "c: not in the manifest (5 rows)"]


def test_prune_command_deletes_only_expired_project_dumps(tmp_path, capsys):
    now = time.time()
    files = {
        "quant_platform-20261001T033000Z.dump": 30, "quant_platform-20261001T033000Z.dump.sha256": 30,
        "quant_platform-20261001T033000Z.dump.json": 30, "quant_platform-20261120T033000Z.dump": 5,
        "quant_platform-20261124T033000Z.dump": 1, "important.sql": 300, "quant_platform.dump": 300,
        "other_db-20261001T033000Z.dump": 300, "quant_platform-20261001T033000Z.dump.bak": 300,
    }
    for name, age in files.items():
        path = tmp_path / name
        path.write_text(name)
        os.utime(path, (now - age * DAY, now - age * DAY))
    assert qb.main(["--dir", str(tmp_path), "prune"]) == 0
    pruned = json.loads(capsys.readouterr().out)["pruned"]
    assert sorted(pruned) == sorted(n for n in files if n.startswith("quant_platform-20261001T033000Z.dump")
                                    and not n.endswith(".bak"))
    left = {p.name for p in tmp_path.iterdir()}
    assert left == set(files) - set(pruned)
    assert "important.sql" in left and "other_db-20261001T033000Z.dump" in left


def test_verify_refuses_a_corrupt_dump(tmp_path, capsys):
    dump = tmp_path / "quant_platform-20261124T033000Z.dump"
    dump.write_bytes(b"PGDMP data")
    (tmp_path / (dump.name + ".sha256")).write_text("%s  %s\n" % (hashlib.sha256(b"PGDMP data").hexdigest(), dump.name))
    assert qb.main(["--dir", str(tmp_path), "verify"]) == 0
    assert json.loads(capsys.readouterr().out)["dump"] == str(dump)
    dump.write_bytes(b"PGDMP dat4")
    assert qb.main(["--dir", str(tmp_path), "verify", dump.name]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "refusing to use it" in err
    (tmp_path / (dump.name + ".sha256")).unlink()
    assert qb.main(["--dir", str(tmp_path), "verify"]) == 2
    assert "no checksum file" in capsys.readouterr().err


def test_verify_without_dumps(tmp_path, capsys):
    assert qb.main(["--dir", str(tmp_path), "verify"]) == 2
    assert "no backup of quant_platform" in capsys.readouterr().err


def test_compare_fingerprints_names_the_tables_that_differ():
    assert qb.compare_fingerprints({"a": "x", "b": "y"}, {"a": "x", "b": "y"}) == []
    # a table missing on one side is compare_counts' business, not reported twice
    assert qb.compare_fingerprints({"a": "x", "b": "y", "gone": "z"}, {"a": "x", "b": "Y", "new": "n"}) == [
        "b: content differs (fingerprint Y, manifest says y)"]


def test_fingerprint_sql_quotes_every_table():
    sql = qb.fingerprint_sql([("public", "ohlcv_data"), ("public", 'we"ird'), ("sqlite_legacy", "kelly's")])
    assert sql.count(" UNION ALL ") == 2
    assert "'ohlcv_data'" in sql and '"public"."ohlcv_data"' in sql and '"public"."we""ird"' in sql
    # a table outside public is named schema.table in the manifest
    assert "'sqlite_legacy.kelly''s'" in sql and '"sqlite_legacy"."kelly\'s"' in sql
    assert "ORDER BY" not in sql  # order independent: no sort of the table


def test_table_keys_keep_format_2_names_for_public():
    assert qb.table_key("public", "tickers") == "tickers"
    assert qb.table_key("sqlite_legacy", "backtest_results") == "sqlite_legacy.backtest_results"
    # an older manifest covers public only: the other schemas are not "not in the manifest"
    assert qb.public_only({"tickers": 3, "sqlite_legacy.backtest_results": 2}) == {"tickers": 3}
    assert qb.compare_counts({"tickers": 3}, qb.public_only({"tickers": 3, "sqlite_legacy.kelly": 1})) == []


def write_dump(directory, name, safety=None):
    (directory / name).write_bytes(b"PGDMP " + name.encode())
    (directory / (name + ".sha256")).write_text(
        "%s  %s\n" % (hashlib.sha256(b"PGDMP " + name.encode()).hexdigest(), name))
    if safety is not None:
        (directory / (name + ".json")).write_text(json.dumps({"dump": name, "safety": safety}))


def test_latest_skips_rollback_safety_backups(tmp_path, capsys):
    assert qb.latest_dump(["quant_platform-20261124T033000Z.dump", "quant_platform-20261125T033000Z.dump"],
                          "quant_platform", skip={"quant_platform-20261125T033000Z.dump"}) == \
        "quant_platform-20261124T033000Z.dump"
    regular, safety = "quant_platform-20261124T033000Z.dump", "quant_platform-20261125T090000Z.dump"
    write_dump(tmp_path, regular, safety=False)
    write_dump(tmp_path, safety, safety=True)
    assert qb.main(["--dir", str(tmp_path), "latest"]) == 0
    assert json.loads(capsys.readouterr().out)["dump"] == str(tmp_path / regular)
    assert qb.main(["--dir", str(tmp_path), "verify"]) == 0  # restore's "latest" is the same choice
    assert json.loads(capsys.readouterr().out)["dump"] == str(tmp_path / regular)
    assert qb.main(["--dir", str(tmp_path), "verify", safety]) == 0  # by name it can be restored
    assert json.loads(capsys.readouterr().out)["manifest"]["safety"] is True
    (tmp_path / regular).unlink()
    assert qb.main(["--dir", str(tmp_path), "latest"]) == 2
    assert "besides rollback safety backups (name one to restore it: %s)" % safety in capsys.readouterr().err


def test_check_sqlite(tmp_path, capsys):
    import sqlite3

    path = tmp_path / "spock_local.db"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE ohlcv_data (ticker TEXT, close REAL)")
    conn.executemany("INSERT INTO ohlcv_data VALUES (?, ?)", [("A", 1.0), ("B", 2.0)])
    conn.commit()
    conn.close()
    before = path.read_bytes()
    assert qb.main(["check-sqlite", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"path": str(path), "quick_check": "ok",
                                                   "row_counts": {"ohlcv_data": 2}}
    assert path.read_bytes() == before  # opened read-only
    assert qb.main(["check-sqlite", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "garbage.db").write_bytes(b"not a database" * 100)
    assert qb.main(["check-sqlite", str(tmp_path / "garbage.db")]) == 2
    assert "cannot be read" in capsys.readouterr().err


# --- restore: the all-NULL block filter (TimescaleDB 2.19, upstream issue 8893) ---------
def test_copy_header_parses_quoted_names_and_columns():
    line = b'COPY _timescaledb_internal.compress_hyper_6_20_chunk (ticker, "date", "we""ird", ma20) FROM stdin;\n'
    assert qb.parse_copy_header(line) == ("_timescaledb_internal", "compress_hyper_6_20_chunk",
                                          ["ticker", "date", 'we"ird', "ma20"])
    assert qb.parse_copy_header(b'COPY "odd schema"."T" (a) FROM stdin;') == ("odd schema", "T", ["a"])
    assert qb.parse_copy_header(b"SELECT 1;\n") is None


def test_split_toc_separates_the_data_of_the_named_tables_only():
    lines = [";", "; Archive created at 2026-12-04", "4013; 0 17543 TABLE DATA _timescaledb_internal "
             "compress_hyper_6_20_chunk postgres", "4014; 0 17500 TABLE DATA public ohlcv_data postgres",
             "310; 1259 17543 TABLE _timescaledb_internal compress_hyper_6_20_chunk postgres"]
    rest, only = qb.split_toc(lines, {("_timescaledb_internal", "compress_hyper_6_20_chunk")})
    assert only == [lines[2]]
    assert rest == [lines[0], lines[1], lines[3], lines[4]]  # its CREATE TABLE stays in the rest


def test_null_block_filter_rewrites_only_compressed_columns_of_listed_tables():
    columns = {("_timescaledb_internal", "compress_hyper_6_20_chunk"): {"ma20", "ma200"}}
    script = [b"SET statement_timeout = 0;\n",
              b"COPY _timescaledb_internal.compress_hyper_6_20_chunk (ticker, _ts_meta_count, ma20, ma200) "
              b"FROM stdin;\n",
              b"Bg==\t1000\tBg==\tAwA1\n",  # a ticker literally named Bg== stays
              b"AAPL\t1000\tAwA2\tBg==\n",
              b"\\.\n",
              b"COPY public.tickers (ticker, ma20) FROM stdin;\n",
              b"Bg==\tBg==\n",  # not a compressed chunk: untouched
              b"\\.\n"]
    rewrite = qb.NullBlockFilter(columns)
    out = [rewrite.line(line) for line in script]
    assert out[2] == b"Bg==\t1000\t\\N\tAwA1\n"
    assert out[3] == b"AAPL\t1000\tAwA2\t\\N\n"
    assert out[6] == b"Bg==\tBg==\n"
    assert [o for i, o in enumerate(out) if i not in (2, 3)] == [s for i, s in enumerate(script) if i not in (2, 3)]
    assert rewrite.rewritten == 2


def test_restore_takes_pg_restore_options_after_the_dump():
    args = qb.parser().parse_args(["restore", "x.dump", "--", "--jobs=2", "--no-owner"])
    assert (args.dump, args.options) == ("x.dump", ["--jobs=2", "--no-owner"])
    assert qb.parser().parse_args(["restore", "x.dump"]).options == []


def test_restore_of_a_missing_dump_names_it(tmp_path, capsys):
    assert qb.main(["--dir", str(tmp_path), "restore", "nope.dump"]) == 2
    assert "nope.dump does not exist" in capsys.readouterr().err
