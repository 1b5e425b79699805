"""Pure logic of roles/pg_backup/files/quant-pg-backup.py: dump names, latest,
retention selection, checksum parsing, row-count comparison; and the prune and
verify commands on a real directory (no server needed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "pg_backup" / "files" / "quant-pg-backup.py"
_spec = importlib.util.spec_from_file_location("quant_pg_backup", SCRIPT)
qb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qb)

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
