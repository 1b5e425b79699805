"""library/sqlite_migrate.py documents what it accepts and returns (issue 20: float4_rounding, skipped_views)."""

from __future__ import annotations

import sqlite_migrate
import yaml


def test_documentation_and_return_are_valid_yaml():
    for text in (sqlite_migrate.DOCUMENTATION, sqlite_migrate.RETURN, sqlite_migrate.EXAMPLES):
        assert yaml.safe_load(text)


def test_float4_rounding_is_documented_as_the_argument_spec_declares_it():
    documented = yaml.safe_load(sqlite_migrate.DOCUMENTATION)["options"]["float4_rounding"]
    declared = sqlite_migrate.argument_spec()["float4_rounding"]
    assert documented["choices"] == declared["choices"] == ["reject", "accept"]
    assert documented["default"] == declared["default"] == "reject"


def test_skipped_views_is_a_documented_return():
    assert "skipped_views" in yaml.safe_load(sqlite_migrate.RETURN)
