"""migration_validate reads a source the way sqlite_migrate loaded it (issue 20, items 1, 6, 7), without a
server: mixed-case names resolved like the migration's, WITHOUT ROWID rows numbered by their position in
primary-key order, and float4_rounding=accept comparing a REAL as its float4 rounding."""

from __future__ import annotations

import sqlite3
import struct

import pytest
from ansible.module_utils.convert.types import TargetType
from ansible.module_utils.core.sqlite_source import open_source
from ansible.module_utils.mapping.target import Column, TargetTable, UniqueKey
from ansible.module_utils.validate.content_compare import (
    TableJob,
    _source_query,
    fingerprint_source,
    float4_of,
    row_ref,
    source_rows_by_rowid,
)
from ansible.module_utils.validate.runner import conversion_options, plan_table

SOURCE = """
CREATE TABLE "PlayCount" ("Region" TEXT NOT NULL, "TrackId" INTEGER NOT NULL, "Plays" INTEGER, "Score" REAL,
                          PRIMARY KEY ("Region", "TrackId")) WITHOUT ROWID;
INSERT INTO "PlayCount" VALUES ('KR', 2, 20, 9.99), ('US', 1, 30, 0.5), ('KR', 1, 10, 1.25), ('AU', 7, 70, NULL);
"""
# the positions sqlite_migrate gives these rows: primary-key order (Region, TrackId)
BY_POSITION = {1: ("AU", 7), 2: ("KR", 1), 3: ("KR", 2), 4: ("US", 1)}


def _target():
    types = {"region": TargetType("text", not_null=True), "trackid": TargetType("int4", "integer", not_null=True),
             "plays": TargetType("int4", "integer"), "score": TargetType("float4", "real")}
    columns = {name: Column(name, tt, None, "", "") for name, tt in types.items()}
    pkey = UniqueKey("playcount_pkey", ["region", "trackid"], False, True)
    return TargetTable("public", "playcount", 1, columns, [pkey], ["region", "trackid"], False)


@pytest.fixture
def path(tmp_path):
    out = str(tmp_path / "plays.db")
    db = sqlite3.connect(out)
    db.executescript(SOURCE)
    db.commit()
    db.close()
    return out


def _job(path, rounding="reject"):
    source = open_source(path)
    try:
        plan = plan_table("PlayCount", {}, source, _target(), conversion_options({"float4_rounding": rounding}), {})
    finally:
        source.close()
    return plan, TableJob(plan, _target())


def test_mixed_case_columns_resolve_to_the_lower_case_target(path):
    plan, job = _job(path)
    assert plan.target_name == "playcount"
    assert job.names == ["region", "trackid", "plays", "score"]


def test_rowless_table_is_numbered_in_primary_key_order_like_the_migration(path):
    plan, job = _job(path)
    assert plan.rowless_key == job.rowless_key == ["Region", "TrackId"]
    source = open_source(path)
    try:
        migrated = {row[0]: row[1:3] for row in source.iter_rows("PlayCount", ["Region", "TrackId"],
                                                                 key=plan.rowless_key)}
    finally:
        source.close()
    assert {pos: (r.decode(), t) for pos, (r, t) in migrated.items()} == BY_POSITION
    rows = source_rows_by_rowid(path, job, [3, 1])
    assert {pos: tuple(values[:2]) for pos, values in rows.items()} == {3: ("KR", 2), 1: ("AU", 7)}


def test_rowless_fingerprint_holds_every_position_and_leaves_recorded_ones_out(path):
    _plan, job = _job(path)
    assert sorted(fingerprint_source(path, job).rowids.tolist()) == [1, 2, 3, 4]
    plan, _job_all = _job(path)
    assert sorted(fingerprint_source(path, TableJob(plan, _target(), [2])).rowids.tolist()) == [1, 3, 4]


def test_a_rowid_table_still_reads_rowid(path):
    _plan, job = _job(path)
    job.rowless_key = []
    assert _source_query(job).startswith('SELECT rowid, "Region"') and "row_number" not in _source_query(job)


def test_float4_rounding_accept_compares_the_rounded_value(path):
    as_float4 = struct.unpack(">f", struct.pack(">f", 9.99))[0]
    _plan, exact = _job(path)
    _plan, rounded = _job(path, "accept")
    assert [c.float4_rounded for c in rounded.columns] == [False, False, False, True]
    assert not any(c.float4_rounded for c in exact.columns)
    assert source_rows_by_rowid(path, rounded, [3])[3][3] == as_float4 != 9.99
    assert source_rows_by_rowid(path, rounded, [1])[1][3] is None


def test_float4_of_keeps_what_float4_cannot_hold():
    assert float4_of(0.5) == 0.5
    assert float4_of(1e300) == 1e300  # the migration rejected it either way


def test_options_default_to_the_migrations_defaults():
    assert conversion_options({}).float4_rounding == "reject"
    assert conversion_options({"float4_rounding": "accept"}).float4_rounding == "accept"


def test_a_rowless_row_is_named_by_its_position(path):
    _plan, job = _job(path)
    assert row_ref(job, 3) == "position 3 in (Region, TrackId) order"
    job.rowless_key = []
    assert row_ref(job, 3) == "SQLite rowid 3"
