"""timescaledb-tune 0.19.0 recommendations, re-implemented in pure Python.

Everything here is a plain function of its arguments (no I/O), so the parity
tests in tests/unit/test_tune_recommender.py can replay upstream's own test
tables. Three Go details matter for byte-exact output:

* Go's ``math.Round`` rounds half away from zero; Python's ``round`` rounds
  half to even, so :func:`go_round` is used wherever upstream calls
  ``math.Round``.
* ``uint64(f)`` truncates toward zero; integer ``/`` on uint64 is floor
  division for the non-negative values used here.
* The byte formatter picks the largest unit that is <= the value and drops to
  the next smaller unit (truncating) when the value is not a whole number of
  that unit; values below 1MB are rounded to whole kB (minimum 1kB).

Upstream reference: github.com/timescale/timescaledb-tune, pkg/pgtune and
internal/parse (release 0.19.0). The code below follows the algorithm; it is
not a transcription.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict

KILOBYTE = 1 << 10
MEGABYTE = 1 << 20
GIGABYTE = 1 << 30
TERABYTE = 1 << 40
UINT64_MAX = (1 << 64) - 1
INT64_MAX = (1 << 63) - 1

# (suffix, size) largest first; '' means plain bytes as in PostgreSQL.
_UNITS = (("TB", TERABYTE), ("GB", GIGABYTE), ("MB", MEGABYTE), ("kB", KILOBYTE))
_SMALLER_UNIT = {"TB": "GB", "GB": "MB", "MB": "kB"}
_PG_BYTES_RE = re.compile(r"^'?([0-9]+)((?:k|M|G|T)B)?'?$")

PROFILES = ("default", "promscale")

# Group labels, in the order timescaledb-tune processes them.
MEMORY_LABEL = "memory"
PARALLEL_LABEL = "parallelism"
WAL_LABEL = "WAL"
BGWRITER_LABEL = "background writer"
MISC_LABEL = "miscellaneous"
GROUP_ORDER = (MEMORY_LABEL, PARALLEL_LABEL, WAL_LABEL, BGWRITER_LABEL, MISC_LABEL)

# pkg/tstune/utils.go ValidPGVersions (0.19.0 added 19 on main).
VALID_PG_VERSIONS = ("9.6", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19")

# Constants of pkg/pgtune (memory.go, parallel.go, wal.go, background_writer.go, misc.go).
MAINTENANCE_WORK_MEM_LIMIT = 2047 * MEGABYTE
BASE_CONNS = 20
WORK_MEM_MIN = 64 * KILOBYTE
WORK_MEM_PER_GIG_PER_CONN = 20.0 * BASE_CONNS  # MB; 0.19.0 raised it from 6.4 (upstream PR #149)
MIN_BUILTIN_PROCESSES = 3
MAX_BACKGROUND_WORKERS_DEFAULT = 16
MAX_CONNECTIONS_DEFAULT = 100
MIN_MAX_CONNS = 25
WAL_MAX_DISK_PCT = 60
WAL_BUFFERS_THRESHOLD = 2 * GIGABYTE
WAL_BUFFERS_DEFAULT = 16 * MEGABYTE
WAL_SEGMENT = 16 * MEGABYTE
DEFAULT_MAX_WAL_BYTES = 1 * GIGABYTE
PROMSCALE_DEFAULT_MAX_WAL_BYTES = 4 * GIGABYTE
PROMSCALE_CHECKPOINT_TIMEOUT = "900"
PROMSCALE_WAL_COMPRESSION = "1"
PROMSCALE_BGWRITER_FLUSH_AFTER = "0"
MAX_LOCKS_VALUES = ("128", "256", "512", "1024")
CHECKPOINT_DEFAULT = "0.9"
STATS_TARGET_DEFAULT = "100"
RANDOM_PAGE_COST_DEFAULT = "1.1"
AUTOVACUUM_MAX_WORKERS_DEFAULT = "10"
AUTOVACUUM_NAPTIME_DEFAULT = "10"
EFFECTIVE_IO_OLD_VERSIONS = "200"
EFFECTIVE_IO_DEFAULT = "256"
TOAST_COMPRESSION_DEFAULT = "lz4"
JIT_DEFAULT = "off"

MEMORY_KEYS = ("shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem")
PARALLEL_KEYS = (
    "timescaledb.max_background_workers",
    "max_worker_processes",
    "max_parallel_workers_per_gather",
    "max_parallel_workers",  # PG10+
)
WAL_KEYS = ("wal_buffers", "min_wal_size", "max_wal_size", "checkpoint_timeout", "wal_compression")
BGWRITER_KEYS = ("bgwriter_flush_after",)
MISC_KEYS = (
    "default_statistics_target",
    "random_page_cost",
    "checkpoint_completion_target",
    "max_connections",
    "max_locks_per_transaction",
    "autovacuum_max_workers",
    "autovacuum_naptime",
    "default_toast_compression",  # PG14+
    "jit",  # PG12+
    "effective_io_concurrency",  # Linux only upstream; always last
)


class TuneInputError(ValueError):
    """Bad input to the recommender; the message names the offending value."""


def go_round(value):
    """math.Round from Go: round half away from zero."""
    if value >= 0:
        return math.floor(value + 0.5)
    return -math.floor(-value + 0.5)


def go_uint64(value):
    """uint64(float) conversion from Go for the non-negative values used here."""
    return math.trunc(value)


# --------------------------------------------------------------------------
# Bytes: parsing and formatting (internal/parse/parse.go)
# --------------------------------------------------------------------------

def parse_int_to_float_units(num_bytes):
    """Split a byte count into (value, unit) using the largest fitting unit."""
    if num_bytes <= 0:
        raise TuneInputError("bytes must be at least 1 byte (got %d)" % num_bytes)
    for suffix, size in _UNITS:
        if num_bytes >= size:
            return num_bytes / size, suffix
    return float(num_bytes), ""


def bytes_to_decimal_format(num_bytes):
    """8589934592 -> '8.00 GB' (used in upstream's 'Recommendations based on' line)."""
    val, units = parse_int_to_float_units(num_bytes)
    return "%0.2f %s" % (val, units)


def bytes_to_pg_format(num_bytes):
    """Format bytes exactly as timescaledb-tune prints them: 2GB, 2560MB, 5242kB."""
    val, units = parse_int_to_float_units(int(num_bytes))
    if units == "":  # nothing below 1kB is allowed
        val, units = 1.0, "kB"
    elif units == "kB":
        val = go_round(val)
    elif val - go_uint64(val) > 0.001:  # not a whole number of this unit
        val *= 1024
        units = _SMALLER_UNIT[units]
    return "%d%s" % (go_uint64(val), units)


def pg_format_to_bytes(value, what="value"):
    """Parse '8GB', '512MB', '64kB', '65536' (bytes) or an int into bytes.

    ``what`` names the parameter in error messages.
    """
    if isinstance(value, bool):
        raise TuneInputError("%s: expected bytes or a PostgreSQL size like 8GB, got %r" % (what, value))
    if isinstance(value, int):
        if value < 0:
            raise TuneInputError("%s: incorrect PostgreSQL bytes format: '%d' (negative)" % (what, value))
        return value
    text = str(value)
    match = _PG_BYTES_RE.match(text)
    if not match:
        raise TuneInputError(
            "%s: incorrect PostgreSQL bytes format: '%s' (expected <integer><unit> with unit kB, MB, GB, TB "
            "or none for bytes, e.g. 8GB)" % (what, text))
    num = int(match.group(1))
    if num > INT64_MAX:
        raise TuneInputError("%s: could not parse bytes number: '%s' is out of range" % (what, text))
    size = dict(_UNITS).get(match.group(2) or "", 1)
    total = num * size
    if total > UINT64_MAX:
        raise TuneInputError("%s: '%s' is larger than 16EB" % (what, text))
    return total


def normalize_pg_version(value):
    """Return the major version string ('15', '9.6') or raise naming the input."""
    text = str(value).strip()
    match = re.match(r"^(?:PostgreSQL\s+)?(\d+)(?:\.(\d+))?", text)
    if not match:
        raise TuneInputError("pg_version: cannot parse PostgreSQL version %r" % (value,))
    major = match.group(1)
    if major in ("7", "8", "9"):  # before 10 the major version is X.Y
        major = "%s.%s" % (major, match.group(2) or "")
    if major not in VALID_PG_VERSIONS:
        raise TuneInputError("pg_version: unsupported major PG version: %s (supported: %s)"
                             % (major, ", ".join(VALID_PG_VERSIONS)))
    return major


def _version_at_least(pg_version, major):
    return pg_version != "9.6" and int(pg_version) >= major


# --------------------------------------------------------------------------
# Recommenders (pkg/pgtune/*.go)
# --------------------------------------------------------------------------

def get_max_conns(total_memory):
    """Default max_connections: a step function of memory (misc.go getMaxConns)."""
    if total_memory <= 2 * GIGABYTE:
        return MIN_MAX_CONNS
    if total_memory <= 4 * GIGABYTE:
        return 50
    if total_memory <= 6 * GIGABYTE:
        return 75
    return MAX_CONNECTIONS_DEFAULT


def recommend_memory(total_memory, cpus, max_conns=0, profile="default"):
    """shared_buffers, effective_cache_size, maintenance_work_mem, work_mem."""
    conns = max_conns or get_max_conns(total_memory)
    divisor = 2 if profile == "promscale" else 4
    maintenance = (total_memory / GIGABYTE) * (128.0 * MEGABYTE)
    maintenance = min(maintenance, float(MAINTENANCE_WORK_MEM_LIMIT))
    cpu_factor = go_round(cpus / 2.0)
    gigs = total_memory / GIGABYTE
    work_mem = go_uint64(gigs * (WORK_MEM_PER_GIG_PER_CONN * MEGABYTE / conns) / cpu_factor)
    work_mem = max(work_mem, WORK_MEM_MIN)
    return OrderedDict((
        ("shared_buffers", bytes_to_pg_format(total_memory // divisor)),
        ("effective_cache_size", bytes_to_pg_format((total_memory * 3) // 4)),
        ("maintenance_work_mem", bytes_to_pg_format(go_uint64(maintenance))),
        ("work_mem", bytes_to_pg_format(work_mem)),
    ))


def parallel_available(cpus):
    """Upstream skips the whole parallelism group with a single CPU."""
    return cpus > 1


def recommend_parallel(cpus, max_bg_workers=MAX_BACKGROUND_WORKERS_DEFAULT, pg_version="15"):
    """Parallelism settings; empty when cpus <= 1 (group not available)."""
    if not parallel_available(cpus):
        return OrderedDict()
    if max_bg_workers < MAX_BACKGROUND_WORKERS_DEFAULT:
        raise TuneInputError("max_background_workers must be >= %d: got %d"
                             % (MAX_BACKGROUND_WORKERS_DEFAULT, max_bg_workers))
    values = OrderedDict((
        ("timescaledb.max_background_workers", "%d" % max_bg_workers),
        ("max_worker_processes", "%d" % (MIN_BUILTIN_PROCESSES + max_bg_workers + cpus)),
        ("max_parallel_workers_per_gather", "%d" % go_round(cpus / 2.0)),
        ("max_parallel_workers", "%d" % cpus),
    ))
    if pg_version == "9.6":
        del values["max_parallel_workers"]
    return values


def _max_wal_bytes(wal_disk_size, default):
    if not wal_disk_size:
        return default
    limit = (wal_disk_size * WAL_MAX_DISK_PCT) // 100
    if limit % WAL_SEGMENT:  # round up to a whole 16MB WAL segment
        limit = (limit // WAL_SEGMENT + 1) * WAL_SEGMENT
    return limit


def recommend_wal(total_memory, wal_disk_size=0, profile="default"):
    """wal_buffers, min/max_wal_size (+ checkpoint_timeout, wal_compression for promscale)."""
    if total_memory < WAL_BUFFERS_THRESHOLD:
        wal_buffers = go_uint64((total_memory / GIGABYTE) * (7864.0 * KILOBYTE))
    else:
        wal_buffers = WAL_BUFFERS_DEFAULT
    promscale = profile == "promscale"
    max_wal = _max_wal_bytes(wal_disk_size, PROMSCALE_DEFAULT_MAX_WAL_BYTES if promscale else DEFAULT_MAX_WAL_BYTES)
    values = OrderedDict((
        ("wal_buffers", bytes_to_pg_format(wal_buffers)),
        ("min_wal_size", bytes_to_pg_format(max_wal // 2)),
        ("max_wal_size", bytes_to_pg_format(max_wal)),
    ))
    if promscale:
        values["checkpoint_timeout"] = PROMSCALE_CHECKPOINT_TIMEOUT
        values["wal_compression"] = PROMSCALE_WAL_COMPRESSION
    return values


def recommend_bgwriter(profile="default"):
    """Only the promscale profile tunes the background writer."""
    if profile == "promscale":
        return OrderedDict((("bgwriter_flush_after", PROMSCALE_BGWRITER_FLUSH_AFTER),))
    return OrderedDict()


def max_locks_per_transaction(total_memory):
    """128 below 8GB, 256 from 8GB, 512 from 16GB, 1024 from 32GB."""
    for i in range(len(MAX_LOCKS_VALUES) - 1, 0, -1):
        if total_memory >= (2 ** (2 + i)) * GIGABYTE:
            return MAX_LOCKS_VALUES[i]
    return MAX_LOCKS_VALUES[0]


def effective_io_concurrency(pg_version):
    """PG13 changed the meaning of effective_io_concurrency."""
    return EFFECTIVE_IO_DEFAULT if _version_at_least(pg_version, 13) else EFFECTIVE_IO_OLD_VERSIONS


def recommend_misc(total_memory, max_conns=0, pg_version="15", include_effective_io=True):
    """The miscellaneous group; version-dependent keys are absent when not recommended."""
    values = OrderedDict((
        ("default_statistics_target", STATS_TARGET_DEFAULT),
        ("random_page_cost", RANDOM_PAGE_COST_DEFAULT),
        ("checkpoint_completion_target", CHECKPOINT_DEFAULT),
        ("max_connections", "%d" % (max_conns or get_max_conns(total_memory))),
        ("max_locks_per_transaction", max_locks_per_transaction(total_memory)),
        ("autovacuum_max_workers", AUTOVACUUM_MAX_WORKERS_DEFAULT),
        ("autovacuum_naptime", AUTOVACUUM_NAPTIME_DEFAULT),
    ))
    if _version_at_least(pg_version, 14):
        values["default_toast_compression"] = TOAST_COMPRESSION_DEFAULT
    if _version_at_least(pg_version, 12):
        values["jit"] = JIT_DEFAULT
    if include_effective_io:
        values["effective_io_concurrency"] = effective_io_concurrency(pg_version)
    return values


def validate_inputs(memory, cpus, max_connections, max_background_workers, profile):
    """The checks upstream makes in NewSystemConfig/ParseProfile, with clear messages."""
    if memory <= 0:
        raise TuneInputError("memory: must be at least 1 byte, got %d" % memory)
    if cpus < 1:
        raise TuneInputError("cpus: must be at least 1, got %d" % cpus)
    if max_connections and max_connections < MIN_MAX_CONNS:
        raise TuneInputError("max_connections: must be 0 (derive from memory) or >= %d, got %d"
                             % (MIN_MAX_CONNS, max_connections))
    if max_connections < 0:
        raise TuneInputError("max_connections: must not be negative, got %d" % max_connections)
    if max_background_workers < MAX_BACKGROUND_WORKERS_DEFAULT:
        raise TuneInputError("max_background_workers: must be >= %d, got %d"
                             % (MAX_BACKGROUND_WORKERS_DEFAULT, max_background_workers))
    if profile not in PROFILES:
        raise TuneInputError("profile: unrecognized profile %r (choose from %s)" % (profile, ", ".join(PROFILES)))


def recommend(memory, cpus, pg_version, *, max_connections=0, wal_disk_size=0,
              max_background_workers=MAX_BACKGROUND_WORKERS_DEFAULT, profile="default"):
    """All recommendations in upstream order.

    Returns ``(settings, groups)``: an ordered name -> value mapping and a list of
    ``{"label": ..., "keys": [...]}`` in processing order. Groups that upstream
    would skip (parallelism with one CPU, background writer for the default
    profile) are absent.
    """
    pg_version = normalize_pg_version(pg_version)
    validate_inputs(memory, cpus, max_connections, max_background_workers, profile)
    per_group = OrderedDict((
        (MEMORY_LABEL, recommend_memory(memory, cpus, max_connections, profile)),
        (PARALLEL_LABEL, recommend_parallel(cpus, max_background_workers, pg_version)),
        (WAL_LABEL, recommend_wal(memory, wal_disk_size, profile)),
        (BGWRITER_LABEL, recommend_bgwriter(profile)),
        (MISC_LABEL, recommend_misc(memory, max_connections, pg_version)),
    ))
    settings = OrderedDict()
    groups = []
    for label, values in per_group.items():
        if not values:
            continue
        settings.update(values)
        groups.append({"label": label, "keys": list(values)})
    return settings, groups


def override_value_to_str(value):
    """Render an override as a postgresql.conf value (bools become on/off)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def apply_overrides(settings, groups, overrides):
    """Overrides win; new keys go to an 'overrides' group; a None value drops a key."""
    settings = OrderedDict(settings)
    groups = [{"label": g["label"], "keys": list(g["keys"])} for g in groups]
    extra = []
    for name, value in (overrides or {}).items():
        if value is None:
            settings.pop(name, None)
            for group in groups:
                if name in group["keys"]:
                    group["keys"].remove(name)
            continue
        if name not in settings:
            extra.append(name)
        settings[name] = override_value_to_str(value)
    groups = [g for g in groups if g["keys"]]
    if extra:
        groups.append({"label": "overrides", "keys": extra})
    return settings, groups


# --------------------------------------------------------------------------
# Container memory limits (beyond upstream: memory_source=cgroup)
# --------------------------------------------------------------------------

def parse_cgroup_memory_value(text, source="cgroup file"):
    """Parse memory.max / memory.limit_in_bytes content; None means unlimited."""
    value = (text or "").strip()
    if value in ("", "max"):
        return None
    if not value.isdigit():
        raise TuneInputError("%s: cannot parse memory limit %r" % (source, value))
    limit = int(value)
    # cgroup v1 reports "no limit" as a huge page-aligned number near INT64_MAX.
    if limit >= (1 << 62):
        return None
    return limit


def effective_memory(physical, cgroup_limit):
    """The container limit when it is lower than physical RAM, else physical RAM."""
    if cgroup_limit is not None and 0 < cgroup_limit < physical:
        return cgroup_limit
    return physical
