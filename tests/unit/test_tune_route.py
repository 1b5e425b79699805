"""One tuning route: both sources give the same recommendation object, honour the same
variables, merge overrides in one place, and are written by one apply path (dest).

The binary source runs tests/tune_helpers.py's stand-in for timescaledb-tune (a
real executable answering in the binary's format), so what is tested per
variable is the whole route: module inputs -> command line -> parsed output ->
overrides -> file. Each test runs for both sources.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timescaledb_tune  # library/timescaledb_tune.py
import yaml
from ansible.module_utils.tune.recommendation import build_recommendation, choose_source, groups_for
from ansible.module_utils.tune.recommender import GIGABYTE, TuneInputError, recommend
from tune_helpers import ModuleFail, recorded_calls, run_module, write_fake_binary

ROUTES = ("module", "binary")
BASE = dict(memory="8GB", cpus=4, pg_version="15", max_connections=100)


@pytest.fixture
def tune(tmp_path, monkeypatch):
    """tune(route, **params) -> (module result, argv of the binary call or None)."""
    binary = write_fake_binary(tmp_path)
    log = tmp_path / "argv.log"
    monkeypatch.setenv("FAKE_TSTUNE_ARGV", str(log))
    monkeypatch.setenv("TSTUNE_PROFILE", "promscale")  # must not leak into the binary route

    def run(route, **params):
        result = run_module(timescaledb_tune, dict(BASE, source=route, binary=binary, **params))
        calls = recorded_calls(str(log))
        log.unlink(missing_ok=True)
        assert result["source"] == route and result["recommendation"]["source"] == route
        assert bool(calls) == (route == "binary")
        return result, (calls[-1]["argv"] if calls else None)
    return run


@pytest.mark.parametrize("route", ROUTES)
def test_memory(tune, route):
    result, argv = tune(route, memory="2GB")
    assert result["settings"]["shared_buffers"] == "512MB"
    assert result["recommendation"]["inputs"]["memory"] == 2 * GIGABYTE
    assert argv is None or "--memory=2097152kB" in argv


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("source", "shared_buffers"), [("physical", "4GB"), ("cgroup", "512MB")])
def test_memory_source(tune, route, source, shared_buffers, monkeypatch):
    """16GB of RAM in a 2GB container: the source decides, for the binary too (it gets --memory)."""
    monkeypatch.setattr(timescaledb_tune, "detect_memory",
                        lambda memory_source: {"physical": 16 * GIGABYTE, "cgroup": 2 * GIGABYTE}[memory_source])
    result, argv = tune(route, memory=None, memory_source=source)
    assert result["settings"]["shared_buffers"] == shared_buffers
    assert result["inputs"]["memory_source"] == source
    assert argv is None or ("--memory=%dkB" % (result["inputs"]["memory"] // 1024)) in argv


@pytest.mark.parametrize("route", ROUTES)
def test_cpus(tune, route):
    result, argv = tune(route, cpus=8)
    assert result["settings"]["max_parallel_workers"] == "8"
    assert result["settings"]["max_worker_processes"] == "27"  # 3 + 16 + 8
    assert argv is None or "--cpus=8" in argv


@pytest.mark.parametrize("route", ROUTES)
def test_max_connections(tune, route):
    result, argv = tune(route, max_connections=50)
    assert result["settings"]["max_connections"] == "50"
    assert result["settings"]["work_mem"] == "32MB"  # twice the 100-connection value
    assert argv is None or "--max-conns=50" in argv


@pytest.mark.parametrize("route", ROUTES)
def test_max_background_workers(tune, route):
    result, argv = tune(route, max_background_workers=20)
    assert result["settings"]["timescaledb.max_background_workers"] == "20"
    assert result["settings"]["max_worker_processes"] == "27"  # 3 + 20 + 4
    assert argv is None or "--max-bg-workers=20" in argv


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("profile", "shared_buffers"), [("default", "2GB"), ("promscale", "4GB")])
def test_profile(tune, route, profile, shared_buffers):
    result, argv = tune(route, profile=profile)
    assert result["settings"]["shared_buffers"] == shared_buffers
    assert ("checkpoint_timeout" in result["settings"]) == (profile == "promscale")
    if argv is not None:  # TSTUNE_PROFILE=promscale is set in the environment and must not win
        assert ("--profile=promscale" in argv) == (profile == "promscale")


@pytest.mark.parametrize("route", ROUTES)
def test_overrides(tune, route):
    result, _ = tune(route, overrides={"work_mem": "32MB", "jit": None, "random_page_cost": 1.5,
                                       "timescaledb.telemetry_level": "off"})
    settings = result["settings"]
    assert settings["work_mem"] == "32MB" and settings["random_page_cost"] == "1.5"
    assert "jit" not in settings
    assert result["groups"][-1] == {"label": "overrides", "keys": ["timescaledb.telemetry_level"]}


@pytest.mark.parametrize("params", [
    {}, dict(memory="1GB", cpus=1), dict(memory="64GB", cpus=16, max_connections=0),
    dict(profile="promscale", wal_disk_size="100GB", max_background_workers=32),
])
def test_routes_give_the_same_object(tune, params):
    module, _ = tune("module", **params)
    binary, _ = tune("binary", **params)
    assert list(binary["settings"].items()) == list(module["settings"].items())
    assert binary["groups"] == module["groups"]
    common = {k: v for k, v in binary["inputs"].items() if k not in ("source", "source_reason", "binary",
                                                                     "binary_based_on")}
    assert common == {k: module["inputs"][k] for k in common}
    assert binary["inputs"]["binary_based_on"]["cpus"] == module["inputs"]["cpus"]


# --------------------------------------------------------------------------
# The route decision (timescaledb_tune_method -> source)
# --------------------------------------------------------------------------

@pytest.mark.parametrize(("requested", "found", "source"), [
    ("auto", "/usr/bin/timescaledb-tune", "binary"), ("auto", None, "module"),
    ("binary", "/usr/bin/timescaledb-tune", "binary"), ("module", "/usr/bin/timescaledb-tune", "module"),
    ("module", None, "module"), ("none", None, "none"),
])
def test_choose_source(requested, found, source):
    assert choose_source(requested, found)[0] == source


def test_binary_without_the_tool_fails_saying_so():
    with pytest.raises(TuneInputError, match=r"not installed.*timescaledb_tune_method"):
        choose_source("binary", None)
    with pytest.raises(ModuleFail, match="source: binary, but timescaledb-tune is not installed"):
        run_module(timescaledb_tune, dict(BASE, source="binary", binary="no-such-timescaledb-tune"))


def test_auto_takes_the_module_when_the_binary_is_missing():
    result = run_module(timescaledb_tune, dict(BASE, source="auto", binary="no-such-timescaledb-tune"))
    assert result["source"] == "module"
    assert result["inputs"]["source_reason"] == "auto: timescaledb-tune not installed"


def test_auto_takes_the_binary_when_installed(tmp_path):
    result = run_module(timescaledb_tune, dict(BASE, source="auto", binary=write_fake_binary(tmp_path)))
    assert result["source"] == "binary"


def test_none_recommends_nothing_and_ignores_overrides():
    result = run_module(timescaledb_tune, dict(BASE, source="none", overrides={"work_mem": "1GB"}))
    assert result["settings"] == {} and result["groups"] == []


def test_groups_for_parsed_settings_follow_upstream():
    settings, groups = recommend(8 * GIGABYTE, 4, "15", profile="promscale")
    assert groups_for(settings) == groups
    assert groups_for({"work_mem": "4MB", "foo.bar": "1"})[-1] == {"label": "other", "keys": ["foo.bar"]}


def test_build_recommendation_does_not_touch_its_inputs():
    settings, groups = recommend(8 * GIGABYTE, 4, "15")
    before = dict(settings)
    rec = build_recommendation("module", settings, groups, {"memory": 1}, {"work_mem": "1GB"})
    assert rec["settings"]["work_mem"] == "1GB" and dict(settings) == before


# --------------------------------------------------------------------------
# The role: one task, every tuning variable passed to it, whatever the method
# --------------------------------------------------------------------------

def test_role_passes_every_tuning_variable_to_one_module_task():
    role = Path(__file__).resolve().parents[2] / "roles" / "timescaledb"
    tasks = yaml.safe_load((role / "tasks" / "tune.yml").read_text())
    calls = [t for t in tasks if "timescaledb_tune" in t]
    assert len(calls) == 1 and "when" not in calls[0]  # no per-method task
    args = yaml.safe_dump(calls[0]["timescaledb_tune"])
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    tuning = sorted(name for name in defaults if name.startswith("timescaledb_tune_"))
    assert [name for name in tuning if name not in args] == []
    assert calls[0]["timescaledb_tune"]["source"] == "{{ timescaledb_tune_method }}"
    assert calls[0]["timescaledb_tune"]["dest"].endswith("/conf.d/60-timescaledb.conf")
    assert calls[0]["notify"] == "reload postgresql"
    spec = set(timescaledb_tune.argument_spec())
    assert set(calls[0]["timescaledb_tune"]) - spec <= {"owner", "group", "mode"}
