"""Parity tests: upstream timescaledb-tune 0.19.0 test tables replayed against our port.

Each block names the upstream Go test it transcribes (pkg/pgtune/*_test.go,
internal/parse/parse_test.go). Where upstream builds its expectations in an
init() function, the same construction is repeated here with the Go rounding
rule spelled out locally (half away from zero), so the expectations do not
depend on the code under test.
"""

from __future__ import annotations

import math

import pytest
from ansible.module_utils.tune import recommender as tr
from ansible.module_utils.tune.recommender import (
    GIGABYTE,
    KILOBYTE,
    MEGABYTE,
    TERABYTE,
    TuneInputError,
    bytes_to_decimal_format,
    bytes_to_pg_format,
    parse_int_to_float_units,
    pg_format_to_bytes,
    recommend,
)


def go_round_ref(x):
    """Reference for Go's math.Round on the non-negative values used in the tables."""
    return math.floor(x + 0.5)


# ---------------------------------------------------------------------------
# internal/parse/parse_test.go
# ---------------------------------------------------------------------------

# TestParseIntToFloatUnits
@pytest.mark.parametrize("num, want_val, want_units", [
    (2000 * TERABYTE, 2000, "TB"),
    (TERABYTE, 1.0, "TB"),
    (int(1.5 * TERABYTE), 1.5, "TB"),
    (TERABYTE - GIGABYTE, 1023, "GB"),
    (GIGABYTE, 1.0, "GB"),
    (int(1.5 * GIGABYTE), 1.5, "GB"),
    (2 * GIGABYTE, 2.0, "GB"),
    (GIGABYTE - MEGABYTE, 1023.0, "MB"),
    (MEGABYTE, 1.0, "MB"),
    (int(1.5 * MEGABYTE), 1.5, "MB"),
    (MEGABYTE - 4 * KILOBYTE, 1020.0, "kB"),
    (KILOBYTE, 1.0, "kB"),
    (int(1.5 * KILOBYTE), 1.5, "kB"),
    (KILOBYTE - 24, 1000, ""),
])
def test_parse_int_to_float_units(num, want_val, want_units):
    assert parse_int_to_float_units(num) == (want_val, want_units)


def test_parse_int_to_float_units_rejects_zero():  # TestParseIntToFloatUnitsPanic
    with pytest.raises(TuneInputError):
        parse_int_to_float_units(0)


# TestBytesToDecimalFormat
@pytest.mark.parametrize("num, want", [
    (2000 * TERABYTE, "2000.00 TB"),
    (TERABYTE, "1.00 TB"),
    (int(1.5 * TERABYTE), "1.50 TB"),
    (int(1.25 * TERABYTE), "1.25 TB"),
    (int(0.50 * TERABYTE), "512.00 GB"),
])
def test_bytes_to_decimal_format(num, want):
    assert bytes_to_decimal_format(num) == want


# TestBytesToPGFormat
@pytest.mark.parametrize("num, want", [
    (2000 * TERABYTE, "2000TB"),
    (TERABYTE, "1TB"),
    (int(1.5 * TERABYTE), "1536GB"),
    (TERABYTE - GIGABYTE, "1023GB"),
    (TERABYTE - MEGABYTE, "1048575MB"),
    (GIGABYTE, "1GB"),
    (int(1.5 * GIGABYTE), "1536MB"),
    (2 * GIGABYTE, "2GB"),
    (GIGABYTE - MEGABYTE, "1023MB"),
    (MEGABYTE, "1MB"),
    (int(1.5 * MEGABYTE), "1536kB"),
    (MEGABYTE - 4 * KILOBYTE, "1020kB"),
    (KILOBYTE, "1kB"),
    (int(1.5 * KILOBYTE), "2kB"),  # round half away from zero (Python's round() would give 2 too, 2.5 would not)
    (1400, "1kB"),
    (KILOBYTE - 24, "1kB"),
])
def test_bytes_to_pg_format(num, want):
    assert bytes_to_pg_format(num) == want


def test_bytes_to_pg_format_half_rounds_away_from_zero():
    # 2.5kB: Go's math.Round gives 3; Python's banker's round() would give 2.
    assert bytes_to_pg_format(2560) == "3kB"
    # A fractional MB value drops to kB and truncates (5.12MB -> 5242kB, not 5243kB).
    assert bytes_to_pg_format(int(5.12 * MEGABYTE)) == "5242kB"


# TestPGFormatToBytes (error cases)
@pytest.mark.parametrize("text", [
    " 64MB",  # no leading spaces
    "64b",  # bytes unit not allowed
    "64 GB",  # no space between number and unit
    "-64MB",  # negative
    "5.5MB",  # decimals
    "9223372036854775808MB",  # too big for int64
])
def test_pg_format_to_bytes_errors_name_the_input(text):
    with pytest.raises(TuneInputError) as err:
        pg_format_to_bytes(text, "memory")
    assert text in str(err.value)
    assert str(err.value).startswith("memory:")


# TestPGFormatToBytes (valid cases)
@pytest.mark.parametrize("text, want", [
    ("65536", 64 * KILOBYTE),
    ("64kB", 64 * KILOBYTE),
    ("2048kB", 2048 * KILOBYTE),
    ("64MB", 64 * MEGABYTE),
    ("2048MB", 2048 * MEGABYTE),
    ("64GB", 64 * GIGABYTE),
    ("2048GB", 2048 * GIGABYTE),
    ("64TB", 64 * TERABYTE),
    ("2048TB", 2048 * TERABYTE),
    ("'64MB'", 64 * MEGABYTE),
])
def test_pg_format_to_bytes(text, want):
    assert pg_format_to_bytes(text) == want


def test_pg_format_to_bytes_accepts_ints_and_rejects_bools():
    assert pg_format_to_bytes(8 * GIGABYTE) == 8 * GIGABYTE
    with pytest.raises(TuneInputError, match="wal_disk_size"):
        pg_format_to_bytes(True, "wal_disk_size")
    with pytest.raises(TuneInputError, match="-5"):
        pg_format_to_bytes(-5, "memory")


# ---------------------------------------------------------------------------
# pkg/pgtune/memory_test.go (0.19.0: work_mem per GB per conn = 20 * baseConns)
# ---------------------------------------------------------------------------

DEFAULT_MEMORY_BASE = {
    10 * GIGABYTE: dict(shared_buffers=2560 * MEGABYTE, effective_cache_size=7680 * MEGABYTE,
                        maintenance_work_mem=1280 * MEGABYTE, work_mem=200 * MEGABYTE),
    12 * GIGABYTE: dict(shared_buffers=3 * GIGABYTE, effective_cache_size=9 * GIGABYTE,
                        maintenance_work_mem=1536 * MEGABYTE, work_mem=240 * MEGABYTE),
    32 * GIGABYTE: dict(shared_buffers=8 * GIGABYTE, effective_cache_size=24 * GIGABYTE,
                        maintenance_work_mem=2047 * MEGABYTE, work_mem=640 * MEGABYTE),
}
PROMSCALE_MEMORY_BASE = {
    10 * GIGABYTE: dict(DEFAULT_MEMORY_BASE[10 * GIGABYTE], shared_buffers=5120 * MEGABYTE),
    12 * GIGABYTE: dict(DEFAULT_MEMORY_BASE[12 * GIGABYTE], shared_buffers=6 * GIGABYTE),
    32 * GIGABYTE: dict(DEFAULT_MEMORY_BASE[32 * GIGABYTE], shared_buffers=16 * GIGABYTE),
}
HIGH_CPUS = 9000  # high enough that work_mem falls below the 64kB minimum
CPU_VALS = (1, 4, 5, HIGH_CPUS)
CONN_VALS = (0, 19, 20, 50)


def _memory_matrix(base_vals):
    """Upstream's init(): expected values per (memory, cpus, conns)."""
    cases = []
    for mem, base in base_vals.items():
        for cpus in CPU_VALS:
            for conns in CONN_VALS:
                cpu_factor = go_round_ref(cpus / 2.0)
                conn_factor = (100 if conns == 0 else conns) / 20
                work_mem = max(int(base["work_mem"] / conn_factor / cpu_factor), 64 * KILOBYTE)
                want = {key: bytes_to_pg_format(base[key])
                        for key in ("shared_buffers", "effective_cache_size", "maintenance_work_mem")}
                want["work_mem"] = bytes_to_pg_format(work_mem)
                cases.append((mem, cpus, conns, want))
    return cases


@pytest.mark.parametrize("mem, cpus, conns, want", _memory_matrix(DEFAULT_MEMORY_BASE))
def test_memory_recommender(mem, cpus, conns, want):  # TestMemoryRecommenderRecommend / TestMemorySettingsGroup
    assert dict(tr.recommend_memory(mem, cpus, conns)) == want


@pytest.mark.parametrize("mem, cpus, conns, want", _memory_matrix(PROMSCALE_MEMORY_BASE))
def test_promscale_memory_recommender(mem, cpus, conns, want):  # TestPromscaleMemoryRecommenderRecommend
    assert dict(tr.recommend_memory(mem, cpus, conns, profile="promscale")) == want


def test_memory_keys_order():
    assert list(tr.recommend_memory(8 * GIGABYTE, 4)) == list(tr.MEMORY_KEYS)


# ---------------------------------------------------------------------------
# pkg/pgtune/parallel_test.go
# ---------------------------------------------------------------------------

def _parallel_matrix():
    cases = []
    gather = {2: "1", 4: "2", 5: "3"}
    for cpus in (2, 4, 5):
        for workers in (16, 16 * cpus):
            cases.append((cpus, workers, {
                "timescaledb.max_background_workers": str(workers),
                "max_worker_processes": str(cpus + 3 + workers),
                "max_parallel_workers_per_gather": gather[cpus],
                "max_parallel_workers": str(cpus),
            }))
    return cases


@pytest.mark.parametrize("cpus, workers, want", _parallel_matrix())
def test_parallel_recommender(cpus, workers, want):  # TestParallelRecommenderRecommend / TestParallelSettingsGroup
    for version in ("10", "11", "15"):
        got = tr.recommend_parallel(cpus, workers, version)
        assert dict(got) == want
        assert list(got) == list(tr.PARALLEL_KEYS)
    # 9.6 lacks max_parallel_workers
    got = tr.recommend_parallel(cpus, workers, "9.6")
    want_96 = dict(want)
    del want_96["max_parallel_workers"]
    assert dict(got) == want_96


def test_parallel_is_available():  # TestParallelRecommenderIsAvailable
    assert not tr.parallel_available(0)
    assert not tr.parallel_available(1)
    assert all(tr.parallel_available(i) for i in range(2, 1000))
    assert tr.recommend_parallel(1) == {}


def test_parallel_rejects_too_few_workers():  # TestParallelRecommenderRecommendPanics (worker case)
    with pytest.raises(TuneInputError, match="15"):
        tr.recommend_parallel(5, 15)


# ---------------------------------------------------------------------------
# pkg/pgtune/wal_test.go
# ---------------------------------------------------------------------------

WAL_DISK_UNSET = 0
WAL_DISK_DIVIDE_UNEVENLY = 8 * GIGABYTE
WAL_DISK_DIVIDE_EVENLY = 8800 * MEGABYTE
MEMORY_TO_WAL_BUFFERS = {
    1 * GIGABYTE: 7864 * KILOBYTE,
    int(1.5 * GIGABYTE): 11796 * KILOBYTE,
    2 * GIGABYTE: 16 * MEGABYTE,
    10 * GIGABYTE: 16 * MEGABYTE,
}
WAL_DISK_TO_MAX_BYTES = {
    WAL_DISK_UNSET: 1 * GIGABYTE,
    WAL_DISK_DIVIDE_UNEVENLY: 4928 * MEGABYTE,  # nearest 16MB segment
    WAL_DISK_DIVIDE_EVENLY: 5280 * MEGABYTE,
}
PROMSCALE_WAL_DISK_TO_MAX_BYTES = {
    WAL_DISK_UNSET: 4 * GIGABYTE,
    WAL_DISK_DIVIDE_UNEVENLY: 4928 * MEGABYTE,
    WAL_DISK_DIVIDE_EVENLY: 5280 * MEGABYTE,
}


def _wal_matrix(max_bytes, promscale):
    cases = []
    for mem, wal_buffers in MEMORY_TO_WAL_BUFFERS.items():
        for disk, max_wal in max_bytes.items():
            want = {
                "wal_buffers": bytes_to_pg_format(wal_buffers),
                "min_wal_size": bytes_to_pg_format(max_wal // 2),
                "max_wal_size": bytes_to_pg_format(max_wal),
            }
            if promscale:
                want["checkpoint_timeout"] = "900"
                want["wal_compression"] = "1"
            cases.append((mem, disk, want))
    return cases


@pytest.mark.parametrize("mem, disk, want", _wal_matrix(WAL_DISK_TO_MAX_BYTES, False))
def test_wal_recommender(mem, disk, want):  # TestWALRecommenderRecommend / TestWALSettingsGroup
    assert dict(tr.recommend_wal(mem, disk)) == want


@pytest.mark.parametrize("mem, disk, want", _wal_matrix(PROMSCALE_WAL_DISK_TO_MAX_BYTES, True))
def test_promscale_wal_recommender(mem, disk, want):  # TestPromscaleWALRecommenderRecommend
    assert dict(tr.recommend_wal(mem, disk, "promscale")) == want


def test_promscale_checkpoint_timeout_is_constant():  # TestPromscaleWALRecommenderCheckpointTimeout (sampled)
    for i in range(1, 5000, 37):
        assert tr.recommend_wal(i * MEGABYTE, i * GIGABYTE, "promscale")["checkpoint_timeout"] == "900"


def test_default_wal_has_no_checkpoint_timeout():  # TestWALRecommenderNoRecommendation
    assert "checkpoint_timeout" not in tr.recommend_wal(GIGABYTE)
    assert "wal_compression" not in tr.recommend_wal(GIGABYTE)


# ---------------------------------------------------------------------------
# pkg/pgtune/background_writer_test.go
# ---------------------------------------------------------------------------

def test_bgwriter():  # TestBgwriterSettingsGroupRecommend / TestPromscaleBgwriterRecommender
    assert tr.recommend_bgwriter("default") == {}
    assert dict(tr.recommend_bgwriter("promscale")) == {"bgwriter_flush_after": "0"}


# ---------------------------------------------------------------------------
# pkg/pgtune/misc_test.go
# ---------------------------------------------------------------------------

MEMORY_TO_LOCKS = {
    7 * GIGABYTE: "128",
    8 * GIGABYTE: "256",
    15 * GIGABYTE: "256",
    16 * GIGABYTE: "512",
    24 * GIGABYTE: "512",
    32 * GIGABYTE: "1024",
    80 * GIGABYTE: "1024",
}
CONNS_TO_MAX_CONNS = {90: 90, 100: 100, 110: 110}


@pytest.mark.parametrize("mem, locks", MEMORY_TO_LOCKS.items())
@pytest.mark.parametrize("conns, max_conns", CONNS_TO_MAX_CONNS.items())
def test_misc_recommender(mem, locks, conns, max_conns):  # TestMiscRecommenderRecommend / TestMiscSettingsGroup
    got = tr.recommend_misc(mem, conns, "10")
    assert dict(got) == {
        "default_statistics_target": "100",
        "random_page_cost": "1.1",
        "checkpoint_completion_target": "0.9",
        "max_connections": str(max_conns),
        "max_locks_per_transaction": locks,
        "autovacuum_max_workers": "10",
        "autovacuum_naptime": "10",
        "effective_io_concurrency": "200",
    }


@pytest.mark.parametrize("mem, want", [  # TestGetMaxConns
    (1 * GIGABYTE, 25),
    (2 * GIGABYTE, 25),
    (3 * GIGABYTE, 50),
    (4 * GIGABYTE, 50),
    (5 * GIGABYTE, 75),
    (6 * GIGABYTE, 75),
    (7 * GIGABYTE, 100),
])
def test_get_max_conns(mem, want):
    assert tr.get_max_conns(mem) == want


@pytest.mark.parametrize("version, want", [  # TestGetEffectiveIOConcurrency
    ("9.6", "200"), ("10", "200"), ("11", "200"), ("12", "200"), ("13", "256"), ("15", "256"),
])
def test_effective_io_concurrency(version, want):
    assert tr.effective_io_concurrency(version) == want


@pytest.mark.parametrize("versions, want", [  # TestDefaultToastCompression
    (("9.6", "10", "11", "12", "13"), None),
    (("14", "15", "16", "17", "18"), "lz4"),
])
def test_default_toast_compression(versions, want):
    for version in versions:
        assert tr.recommend_misc(1000, 32, version).get("default_toast_compression") == want


@pytest.mark.parametrize("versions, want", [  # TestJIT
    (("9.6", "10", "11"), None),
    (("12", "13", "14", "15", "16", "17", "18"), "off"),
])
def test_jit(versions, want):
    for version in versions:
        assert tr.recommend_misc(1000, 32, version).get("jit") == want


# ---------------------------------------------------------------------------
# pkg/pgtune/tune_test.go (NewSystemConfig validation) and the whole pipeline
# ---------------------------------------------------------------------------

def test_system_config_validation():
    with pytest.raises(TuneInputError, match="max_connections"):
        recommend(GIGABYTE, 4, "10", max_connections=1)
    settings, _ = recommend(GIGABYTE, 4, "10", max_connections=0)
    assert settings["max_connections"] == "25"
    with pytest.raises(TuneInputError, match="max_background_workers"):
        recommend(GIGABYTE, 4, "10", max_background_workers=8)
    with pytest.raises(TuneInputError, match="profile"):
        recommend(GIGABYTE, 4, "10", profile="oltp")
    with pytest.raises(TuneInputError, match=r"unsupported major PG version: 8\.4"):
        recommend(GIGABYTE, 4, "8.4")


ACCEPTANCE_8GB_4CPU_PG15 = [
    ("memory", [("shared_buffers", "2GB"), ("effective_cache_size", "6GB"),
                ("maintenance_work_mem", "1GB"), ("work_mem", "16MB")]),
    ("parallelism", [("timescaledb.max_background_workers", "16"), ("max_worker_processes", "23"),
                     ("max_parallel_workers_per_gather", "2"), ("max_parallel_workers", "4")]),
    ("WAL", [("wal_buffers", "16MB"), ("min_wal_size", "512MB"), ("max_wal_size", "1GB")]),
    ("miscellaneous", [("default_statistics_target", "100"), ("random_page_cost", "1.1"),
                       ("checkpoint_completion_target", "0.9"), ("max_connections", "100"),
                       ("max_locks_per_transaction", "256"), ("autovacuum_max_workers", "10"),
                       ("autovacuum_naptime", "10"), ("default_toast_compression", "lz4"), ("jit", "off"),
                       ("effective_io_concurrency", "256")]),
]


def test_issue_3_acceptance_example():
    """memory=8GB cpus=4 pg_version=15 max_connections=100, the issue's machine."""
    settings, groups = recommend(8 * GIGABYTE, 4, "15", max_connections=100)
    assert [g["label"] for g in groups] == [label for label, _ in ACCEPTANCE_8GB_4CPU_PG15]
    assert [g["keys"] for g in groups] == [[k for k, _ in items] for _, items in ACCEPTANCE_8GB_4CPU_PG15]
    assert list(settings.items()) == [kv for _, items in ACCEPTANCE_8GB_4CPU_PG15 for kv in items]


def test_single_cpu_skips_parallelism_and_promscale_adds_bgwriter():
    settings, groups = recommend(4 * GIGABYTE, 1, "15", profile="promscale")
    labels = [g["label"] for g in groups]
    assert labels == ["memory", "WAL", "background writer", "miscellaneous"]
    assert settings["shared_buffers"] == "2GB"
    assert settings["max_wal_size"] == "4GB" and settings["min_wal_size"] == "2GB"
    assert settings["bgwriter_flush_after"] == "0"
    assert settings["max_connections"] == "50"


def test_overrides_win_add_and_remove():
    settings, groups = recommend(8 * GIGABYTE, 4, "15", max_connections=100)
    settings, groups = tr.apply_overrides(settings, groups, {"work_mem": "32MB", "jit": None,
                                                             "log_min_duration_statement": 500,
                                                             "track_io_timing": True})
    assert settings["work_mem"] == "32MB"
    assert "jit" not in settings
    assert "jit" not in [k for g in groups for k in g["keys"]]
    assert settings["log_min_duration_statement"] == "500"
    assert settings["track_io_timing"] == "on"
    assert groups[-1] == {"label": "overrides", "keys": ["log_min_duration_statement", "track_io_timing"]}


@pytest.mark.parametrize("given, want", [
    ("15", "15"), (15, "15"), ("15.4", "15"), ("PostgreSQL 16.2 (Debian)", "16"), ("9.6.24", "9.6"),
])
def test_normalize_pg_version(given, want):
    assert tr.normalize_pg_version(given) == want


def test_normalize_pg_version_errors_name_input():
    with pytest.raises(TuneInputError, match="'fifteen'"):
        tr.normalize_pg_version("fifteen")


# ---------------------------------------------------------------------------
# cgroup limits (beyond upstream)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("max\n", None),
    ("", None),
    ("1073741824\n", GIGABYTE),
    ("9223372036854771712\n", None),  # cgroup v1 "unlimited"
])
def test_parse_cgroup_memory_value(text, want):
    assert tr.parse_cgroup_memory_value(text) == want


def test_parse_cgroup_memory_value_error_names_source():
    with pytest.raises(TuneInputError, match=r"/x/memory\.max.*'lots'"):
        tr.parse_cgroup_memory_value("lots", "/x/memory.max")


def test_effective_memory():
    assert tr.effective_memory(16 * GIGABYTE, None) == 16 * GIGABYTE
    assert tr.effective_memory(16 * GIGABYTE, 4 * GIGABYTE) == 4 * GIGABYTE
    assert tr.effective_memory(16 * GIGABYTE, 32 * GIGABYTE) == 16 * GIGABYTE
