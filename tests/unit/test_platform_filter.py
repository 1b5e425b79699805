"""The filter plugin wires ansible_facts to the pure functions."""

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from file_module import load_file

_PATH = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "platform.py"
platform_filters = load_file("quant_filter_platform", _PATH)
FILTERS = platform_filters.FilterModule().filters()

DEBIAN12 = {"os_family": "Debian", "distribution": "Debian", "distribution_version": "12.11",
            "architecture": "x86_64", "user_id": "root"}


def test_filters_registered():
    assert {"quant_platform", "quant_preload_merge", "quant_pg_conf_value",
            "quant_timescaledb_compat", "quant_timescaledb_method"} <= set(FILTERS)


def test_quant_platform_from_facts():
    plan = FILTERS["quant_platform"](DEBIAN12, 15, "2.19.3")
    assert plan["service_name"] == "postgresql@15-main"


def test_quant_platform_mac_uses_user_id_as_brew_user():
    facts = {"os_family": "Darwin", "distribution": "MacOSX", "distribution_version": "14.5",
             "architecture": "arm64", "user_id": "carol"}
    assert FILTERS["quant_platform"](facts)["admin_os_user"] == "carol"


def test_quant_platform_error_names_os():
    facts = dict(DEBIAN12, os_family="Suse", distribution="openSUSE Leap")
    with pytest.raises(AnsibleFilterError, match=r"unsupported operating system 'openSUSE Leap 12\.11'"):
        FILTERS["quant_platform"](facts)


def test_other_filters():
    assert FILTERS["quant_preload_merge"]([["a"], ["b", "a"]])["libraries"] == ["a", "b"]
    assert FILTERS["quant_pg_conf_value"]("x") == "'x'"
    assert FILTERS["quant_timescaledb_compat"]("2.19.3", 15) == ""
    assert "invalid" in FILTERS["quant_timescaledb_compat"]("x", 15)
    assert FILTERS["quant_timescaledb_method"]("auto")["method"] == "source"
    with pytest.raises(AnsibleFilterError, match="unknown timescaledb_install_method"):
        FILTERS["quant_timescaledb_method"]("nope")
