"""Unit tests for module_utils/tune/apply.py (no server) and the module's documentation."""

from __future__ import annotations

import pytest
import timescaledb_tune  # library/timescaledb_tune.py
import yaml
from ansible.module_utils.tune import apply as ta
from ansible.module_utils.tune.recommender import GIGABYTE, TuneInputError
from file_module import load_file

# --------------------------------------------------------------------------
# cgroup files (temp files standing in for /sys/fs/cgroup)
# --------------------------------------------------------------------------

def test_cgroup_v2_limit(tmp_path):
    (tmp_path / "memory.max").write_text("2147483648\n")
    assert ta.read_cgroup_memory_limit(str(tmp_path)) == 2 * GIGABYTE
    assert ta.detect_memory("cgroup", str(tmp_path), physical=16 * GIGABYTE) == 2 * GIGABYTE
    assert ta.detect_memory("physical", str(tmp_path), physical=16 * GIGABYTE) == 16 * GIGABYTE


def test_cgroup_v2_unlimited(tmp_path):
    (tmp_path / "memory.max").write_text("max\n")
    assert ta.read_cgroup_memory_limit(str(tmp_path)) is None
    assert ta.detect_memory("cgroup", str(tmp_path), physical=16 * GIGABYTE) == 16 * GIGABYTE


def test_cgroup_v1_limit_and_unlimited(tmp_path):
    (tmp_path / "memory").mkdir()
    limit = tmp_path / "memory" / "memory.limit_in_bytes"
    limit.write_text("1073741824\n")
    assert ta.detect_memory("cgroup", str(tmp_path), physical=8 * GIGABYTE) == GIGABYTE
    limit.write_text("9223372036854771712\n")
    assert ta.detect_memory("cgroup", str(tmp_path), physical=8 * GIGABYTE) == 8 * GIGABYTE


def test_cgroup_limit_above_physical_is_ignored(tmp_path):
    (tmp_path / "memory.max").write_text(str(64 * GIGABYTE))
    assert ta.detect_memory("cgroup", str(tmp_path), physical=8 * GIGABYTE) == 8 * GIGABYTE


def test_cgroup_missing_files_mean_physical(tmp_path):
    assert ta.read_cgroup_memory_limit(str(tmp_path)) is None
    assert ta.detect_memory("cgroup", str(tmp_path), physical=3 * GIGABYTE) == 3 * GIGABYTE


def test_cgroup_garbage_names_the_file(tmp_path):
    path = tmp_path / "memory.max"
    path.write_text("unlimited-ish\n")
    with pytest.raises(TuneInputError) as err:
        ta.read_cgroup_memory_limit(str(tmp_path))
    assert str(path) in str(err.value) and "unlimited-ish" in str(err.value)


def test_detect_memory_rejects_unknown_source():
    with pytest.raises(TuneInputError, match="'swap'"):
        ta.detect_memory("swap", physical=1)


def test_host_facts_are_sane():
    assert ta.physical_memory() > 0
    assert ta.host_cpus() >= 1


# --------------------------------------------------------------------------
# Normalisation and planning
# --------------------------------------------------------------------------

MEM_8KB = dict(vartype="integer", unit="8kB")
MEM_KB = dict(vartype="integer", unit="kB")
MEM_MB = dict(vartype="integer", unit="MB")
TIME_S = dict(vartype="integer", unit="s")
TIME_MS = dict(vartype="integer", unit="ms")


@pytest.mark.parametrize("meta, a, b", [
    (MEM_8KB, "2GB", "262144"),
    (MEM_8KB, "2GB", "2048MB"),
    (MEM_8KB, "7864kB", "983"),
    (MEM_KB, "16MB", "16384"),
    (MEM_KB, "5242kB", "5242"),
    (MEM_MB, "512MB", "512"),
    (MEM_MB, "1GB", "1024"),
    (TIME_S, "10", "10s"),
    (TIME_S, "900", "15min"),
    (TIME_MS, "10ms", "10"),
    (dict(vartype="real", unit=None), "0.9", "0.90"),
    (dict(vartype="integer", unit=None), "100", "100"),
    (dict(vartype="bool", unit=None), "off", "false"),
    (dict(vartype="enum", unit=None), "lz4", "LZ4"),
])
def test_normalize_equal(meta, a, b):
    assert ta.normalize("x", a, meta) == ta.normalize("x", b, meta)


@pytest.mark.parametrize("meta, a, b", [
    (MEM_8KB, "2GB", "16384"),
    (MEM_KB, "16MB", "4096"),
    (dict(vartype="real", unit=None), "1.1", "4"),
    (dict(vartype="bool", unit=None), "off", "on"),
])
def test_normalize_different(meta, a, b):
    assert ta.normalize("x", a, meta) != ta.normalize("x", b, meta)


def test_wal_compression_on_matches_pglz():
    meta = dict(vartype="enum", unit=None)
    assert ta.normalize("wal_compression", "1", meta) == ta.normalize("wal_compression", "pglz", meta)


def _meta(setting, unit=None, vartype="integer", context="sighup", pending=None, display=None):
    return dict(setting=setting, unit=unit, vartype=vartype, context=context, enumvals=[],
                display=display or setting, pending=pending)


def test_plan_changes():
    current = {
        "shared_buffers": _meta("16384", "8kB", context="postmaster", display="128MB"),
        "work_mem": _meta("16384", "kB", context="user", display="16MB"),
        "max_wal_size": _meta("1024", "MB", pending="2GB", display="1GB"),
    }
    desired = {"shared_buffers": "2GB", "work_mem": "16MB", "max_wal_size": "1GB", "nope.setting": "1"}
    changes, unknown = ta.plan_changes(desired, current)
    assert unknown == ["nope.setting"]
    assert [c["name"] for c in changes] == ["shared_buffers", "max_wal_size"]
    assert changes[0] == dict(name="shared_buffers", before="128MB", after="2GB", context="postmaster")
    # the pending ALTER SYSTEM value is what the setting will be, so it is the "before"
    assert changes[1]["before"] == "2GB"


def test_pending_value_counts_as_current():
    current = {"shared_buffers": _meta("16384", "8kB", context="postmaster", pending="256MB")}
    changes, _ = ta.plan_changes({"shared_buffers": "256MB"}, current)
    assert changes == []


# --------------------------------------------------------------------------
# The module's documentation matches its argument spec
# --------------------------------------------------------------------------

def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(timescaledb_tune.DOCUMENTATION)
    yaml.safe_load(timescaledb_tune.EXAMPLES)
    returns = yaml.safe_load(timescaledb_tune.RETURN)
    assert {"settings", "groups", "changed", "restart_required", "queries", "diff", "source",
            "recommendation"} <= set(returns)
    # files: owner/group/mode of dest, added by AnsibleModule(add_file_common_args=True), not argument_spec()
    assert doc["extends_documentation_fragment"] == ["quant_postgres", "files"]
    fragment = _load_fragment()
    options = dict(fragment["options"], **doc["options"])
    spec = timescaledb_tune.argument_spec()
    assert set(options) == set(spec)
    for name, arg in spec.items():
        opt = options[name]
        assert opt.get("type", "str") == arg.get("type", "str"), name
        assert opt.get("default") == arg.get("default"), name
        assert opt.get("choices") == arg.get("choices"), name
        assert sorted(opt.get("aliases", [])) == sorted(arg.get("aliases", [])), name


def _load_fragment():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "plugins" / "doc_fragments" / "quant_postgres.py"
    module = load_file("quant_postgres_doc_fragment", path)
    return yaml.safe_load(module.ModuleDocFragment.DOCUMENTATION)
