"""Host facts and idempotent ALTER SYSTEM application for timescaledb_tune.

Split from tune_recommender (pure) because everything here touches the host
or the server: /proc-like facts, cgroup files, pg_settings, ALTER SYSTEM.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict

from ansible.module_utils.tune.recommender import (
    TuneInputError,
    effective_memory,
    parse_cgroup_memory_value,
)

try:
    from psycopg2 import sql as pgsql
except ImportError:  # pragma: no cover - the module reports the missing driver
    pgsql = None

CGROUP_ROOT = "/sys/fs/cgroup"

_MEMORY_UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
# Microseconds per unit, as PostgreSQL's GUC time units.
_TIME_UNITS = {"us": 1, "ms": 1000, "s": 1000 ** 2, "min": 60 * 1000 ** 2, "h": 3600 * 1000 ** 2,
               "d": 86400 * 1000 ** 2}
_BOOL_TRUE = ("on", "true", "yes", "1", "t", "y")
_BOOL_FALSE = ("off", "false", "no", "0", "f", "n")
# Enum values PostgreSQL shows differently from what was set (PG15 wal_compression: on -> pglz).
_ENUM_ALIASES = {"wal_compression": {"on": "pglz", "true": "pglz", "yes": "pglz", "1": "pglz",
                                     "false": "off", "no": "off", "0": "off"}}


class ApplyError(Exception):
    """A failure while reading or applying settings; the message names the setting."""


# --------------------------------------------------------------------------
# Host facts
# --------------------------------------------------------------------------

def physical_memory():
    """Total RAM in bytes (what upstream's pbnjay/memory reports on Linux)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def host_cpus():
    """CPUs this process may run on (Go's runtime.NumCPU honours the affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def read_cgroup_memory_limit(root=CGROUP_ROOT):
    """The container memory limit in bytes, or None when unlimited or not found.

    cgroup v2: <root>/memory.max; cgroup v1: <root>/memory/memory.limit_in_bytes
    (or <root>/memory.limit_in_bytes when root already is the memory controller).
    """
    candidates = (
        os.path.join(root, "memory.max"),
        os.path.join(root, "memory", "memory.limit_in_bytes"),
        os.path.join(root, "memory.limit_in_bytes"),
    )
    for path in candidates:
        if os.path.isfile(path):
            with open(path, encoding="ascii") as handle:
                return parse_cgroup_memory_value(handle.read(), source=path)
    return None


def detect_memory(source="physical", cgroup_root=CGROUP_ROOT, physical=None):
    """Memory to tune for: physical RAM, or the lower cgroup limit for source=cgroup."""
    physical = physical if physical is not None else physical_memory()
    if source == "physical":
        return physical
    if source == "cgroup":
        return effective_memory(physical, read_cgroup_memory_limit(cgroup_root))
    raise TuneInputError("memory_source: expected physical or cgroup, got %r" % (source,))


# --------------------------------------------------------------------------
# Reading the server
# --------------------------------------------------------------------------

def server_major_version(conn):
    """'15' for 150004; '9.6' for 90624."""
    with conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        num = int(cur.fetchone()[0])
    if num >= 100000:
        return str(num // 10000)
    return "%d.%d" % (num // 10000, (num // 100) % 100)


def read_current(conn, names):
    """pg_settings rows for ``names`` plus any value pending in postgresql.auto.conf.

    Returns name -> dict(setting, unit, vartype, context, enumvals, display,
    pending) for the names the server knows; unknown names are left out.
    The pending value (ALTER SYSTEM already written, not yet in effect) wins,
    so a second run before a restart does not rewrite shared_buffers.
    """
    rows = OrderedDict()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT name, setting, unit, vartype, context, enumvals, current_setting(name) "
            "FROM pg_settings WHERE name = ANY(%s)", (list(names),))
        for name, setting, unit, vartype, context, enumvals, display in cur.fetchall():
            rows[name] = dict(setting=setting, unit=unit, vartype=vartype, context=context,
                              enumvals=list(enumvals or []), display=display, pending=None)
    for name, setting in _auto_conf_settings(conn):
        if name in rows:
            rows[name]["pending"] = setting
    return rows


def _auto_conf_settings(conn):
    """(name, value) pairs of postgresql.auto.conf in file order; empty when not readable.

    pg_file_settings re-reads the files at query time, so it shows ALTER SYSTEM
    values that are not in effect yet (postmaster settings waiting for a restart
    carry error = 'setting could not be applied', so rows are not filtered on
    error). Only superusers (and pg_read_all_settings
    members on newer releases) may read it; without it we compare running values.
    """
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT name, setting FROM pg_file_settings "
                "WHERE sourcefile LIKE %s ORDER BY seqno", ("%postgresql.auto.conf",))
            return cur.fetchall()
    except Exception:  # psycopg2.Error (permission denied); autocommit keeps the session usable
        return []


# --------------------------------------------------------------------------
# Normalising values so equal settings compare equal
# --------------------------------------------------------------------------

_NUMBER_UNIT_RE = re.compile(r"^([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)$")


def _split_number_unit(text):
    """'2GB' -> (2.0, 'GB'); '0.9' -> (0.9, ''); raises ValueError otherwise."""
    match = _NUMBER_UNIT_RE.match(text.strip())
    if not match:
        raise ValueError(text)
    return float(match.group(1)), match.group(2)


def _unit_size(unit, table):
    """Size of a pg_settings base unit like '8kB', 'kB', 'ms', 's'."""
    if not unit:
        return None
    for name, size in table.items():
        if unit == name:
            return size
        if unit.endswith(name) and unit[: -len(name)].isdigit():
            return int(unit[: -len(name)]) * size
    return None


def normalize(name, value, meta):
    """Canonical comparable form of ``value`` for setting ``name`` (pg_settings meta)."""
    vartype = meta.get("vartype")
    unit = meta.get("unit") or ""
    text = str(value).strip().strip("'\"")
    try:
        if vartype == "bool":
            low = text.lower()
            if low in _BOOL_TRUE:
                return ("bool", True)
            if low in _BOOL_FALSE:
                return ("bool", False)
            return ("text", low)
        if vartype in ("integer", "real"):
            number, given_unit = _split_number_unit(text)
            mem_base = _unit_size(unit, _MEMORY_UNITS)
            time_base = _unit_size(unit, _TIME_UNITS)
            if mem_base:
                scale = _MEMORY_UNITS[given_unit] if given_unit else mem_base
                number = number * scale / mem_base
            elif time_base:
                scale = _TIME_UNITS[given_unit] if given_unit else time_base
                number = number * scale / time_base
            elif given_unit:
                return ("text", text.lower())
            if vartype == "integer":
                return ("num", float(round(number)))
            return ("num", round(number, 9))
        if vartype == "enum":
            low = text.lower()
            return ("text", _ENUM_ALIASES.get(name, {}).get(low, low))
    except (ValueError, KeyError):
        return ("text", text.lower())
    return ("text", text)


def _current_value(meta):
    """The value that will be in effect: pending ALTER SYSTEM value, else running value."""
    return meta["pending"] if meta["pending"] is not None else meta["setting"]


def plan_changes(desired, current):
    """Compare desired name -> value with read_current() output.

    Returns (changes, unknown) where changes is an ordered list of
    dict(name, before, after, context) for values that differ.
    """
    unknown = [name for name in desired if name not in current]
    changes = []
    for name, value in desired.items():
        meta = current.get(name)
        if meta is None:
            continue
        if normalize(name, value, meta) == normalize(name, _current_value(meta), meta):
            continue
        before = meta["pending"] if meta["pending"] is not None else meta["display"]
        changes.append(dict(name=name, before=before, after=value, context=meta["context"]))
    return changes, unknown


def alter_system_statement(name, value):
    """ALTER SYSTEM SET <name> = '<value>' with identifiers and literal quoted safely."""
    ident = pgsql.SQL(".").join(pgsql.Identifier(part) for part in name.split("."))
    return pgsql.SQL("ALTER SYSTEM SET {} = {}").format(ident, pgsql.Literal(str(value)))


def apply_settings(conn, desired, check_mode=False):
    """Idempotently write ``desired`` with ALTER SYSTEM; reload when something changed.

    ``conn`` must be in autocommit mode (ALTER SYSTEM cannot run in a transaction).
    Returns dict(changed, restart_required, queries, diff, changes).
    """
    current = read_current(conn, desired)
    changes, unknown = plan_changes(desired, current)
    if unknown:
        raise ApplyError(
            "checking settings on the server: unknown to this server: %s (is the library that defines "
            "them in shared_preload_libraries? drop them with overrides: {name: null})" % ", ".join(unknown))
    statements = [alter_system_statement(c["name"], c["after"]) for c in changes]
    queries = [s.as_string(conn) for s in statements]
    if changes and not check_mode:
        with conn.cursor() as cur:
            for change, statement in zip(changes, statements):
                try:
                    cur.execute(statement)
                except Exception as exc:  # psycopg2.Error, kept generic for the driver-less import
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                    raise ApplyError("setting %s = %s with ALTER SYSTEM: %s"
                                     % (change["name"], change["after"], first)) from None
            cur.execute("SELECT pg_reload_conf()")
    return dict(
        changed=bool(changes),
        restart_required=any(c["context"] == "postmaster" for c in changes),
        queries=queries,
        diff=dict(before={c["name"]: c["before"] for c in changes},
                  after={c["name"]: c["after"] for c in changes}),
        changes=changes,
    )
