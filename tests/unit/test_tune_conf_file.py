"""The one apply path the role uses: the recommendation written to a conf.d file (dest)."""

from __future__ import annotations

import pytest
import timescaledb_tune  # library/timescaledb_tune.py
from ansible.module_utils.platform_plan.postgresql_conf import conf_value
from ansible.module_utils.tune.conf_file import read_text, render_conf, written_settings
from tune_helpers import ModuleFail, run_module, write_fake_binary

BASE = dict(memory="8GB", cpus=4, pg_version="15", max_connections=100)


def rec(settings, source="module"):
    return dict(source=source, settings=settings, groups=[], inputs={})


def test_render_quotes_like_the_postgresql_role():
    text = render_conf(rec({"shared_buffers": "2GB", "random_page_cost": "1.1", "jit": "off"}), {}, conf_value)
    lines = text.splitlines()
    assert lines[0].startswith("# Managed by Ansible") and "Tuned by: module" in lines[1]
    assert lines[2:] == ["shared_buffers = '2GB'", "random_page_cost = 1.1", "jit = 'off'"]


def test_extra_settings_come_last_and_replace_or_drop():
    settings = written_settings(rec({"jit": "off", "work_mem": "4MB", "max_connections": "100"}),
                                {"work_mem": "8MB", "timescaledb.telemetry_level": "off", "jit": None})
    assert list(settings.items()) == [("max_connections", "100"), ("timescaledb.telemetry_level", "off"),
                                      ("work_mem", "8MB")]


def test_read_text_of_a_missing_file_is_none(tmp_path):
    assert read_text(str(tmp_path / "nope.conf")) is None


@pytest.mark.parametrize("route", ["module", "binary"])
def test_write_then_idempotent_then_check_mode(tmp_path, route):
    dest = tmp_path / "conf.d" / "60-timescaledb.conf"
    params = dict(BASE, source=route, binary=write_fake_binary(tmp_path), dest=str(dest),
                  extra_settings={"timescaledb.telemetry_level": "off"})
    predicted = run_module(timescaledb_tune, params, check_mode=True)
    assert predicted["changed"] is True and not dest.exists()  # check mode predicts, writes nothing
    first = run_module(timescaledb_tune, params)
    assert first["changed"] is True and first["diff"]["after"] == predicted["diff"]["after"]
    text = dest.read_text()
    assert "shared_buffers = '2GB'\n" in text and text.endswith("timescaledb.telemetry_level = 'off'\n")
    assert "last_tuned" not in text
    again = run_module(timescaledb_tune, params)
    assert again["changed"] is False and dest.read_text() == text
    assert run_module(timescaledb_tune, params, check_mode=True)["changed"] is False
    smaller = run_module(timescaledb_tune, dict(params, memory="4GB"), check_mode=True)
    assert smaller["changed"] is True and dest.read_text() == text
    assert "shared_buffers = '1GB'" in smaller["diff"]["after"]


def test_switching_source_is_a_change_of_the_header_only(tmp_path):
    dest = tmp_path / "60-timescaledb.conf"
    params = dict(BASE, dest=str(dest), binary=write_fake_binary(tmp_path))
    run_module(timescaledb_tune, dict(params, source="module"))
    module_text = dest.read_text()
    assert run_module(timescaledb_tune, dict(params, source="binary"))["changed"] is True
    assert dest.read_text().splitlines()[2:] == module_text.splitlines()[2:]


def test_none_writes_extra_settings_only(tmp_path):
    dest = tmp_path / "60-timescaledb.conf"
    run_module(timescaledb_tune, dict(BASE, source="none", dest=str(dest), extra_settings={"jit": "off"}))
    assert dest.read_text().splitlines()[2:] == ["jit = 'off'"]


def test_apply_and_dest_are_exclusive(tmp_path):
    with pytest.raises(ModuleFail, match="apply and dest are exclusive"):
        run_module(timescaledb_tune, dict(BASE, apply=True, dest=str(tmp_path / "x.conf")))
