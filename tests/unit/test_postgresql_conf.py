"""shared_preload_libraries merge and postgresql.conf value rendering."""

import pytest
from ansible.module_utils.platform_plan.postgresql_conf import conf_value, merge_preload


def test_merge_is_order_stable_and_deduplicated():
    out = merge_preload(["pg_stat_statements"], ["auto_explain", "pg_stat_statements"], ["timescaledb"])
    assert out == {"libraries": ["pg_stat_statements", "auto_explain", "timescaledb"], "missing": []}


def test_merge_accepts_strings_none_and_blanks():
    out = merge_preload("pg_stat_statements, timescaledb", None, ["", " timescaledb "])
    assert out["libraries"] == ["pg_stat_statements", "timescaledb"]


def test_merge_holds_back_libraries_not_installed():
    out = merge_preload(["pg_stat_statements"], [], ["timescaledb"], available=["pg_stat_statements", "plpgsql"])
    assert out == {"libraries": ["pg_stat_statements"], "missing": ["timescaledb"]}


def test_merge_empty():
    assert merge_preload([], []) == {"libraries": [], "missing": []}


@pytest.mark.parametrize(("value", "rendered"), [
    (100, "100"),
    ("100", "100"),
    (0.9, "0.9"),
    (True, "on"),
    (False, "off"),
    ("scram-sha-256", "'scram-sha-256'"),
    ("128MB", "'128MB'"),
    (["localhost", "10.0.0.1"], "'localhost,10.0.0.1'"),
    (["timescaledb"], "'timescaledb'"),
    ([], "''"),
    ("it's", "'it''s'"),
    ("C:\\path", "'C:\\\\path'"),
])
def test_conf_value(value, rendered):
    assert conf_value(value) == rendered
