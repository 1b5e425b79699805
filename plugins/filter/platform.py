"""Filters exposing the project's pure platform and configuration logic.

quant_platform        ansible_facts -> the plan of module_utils/platform_plan/matrix.py
quant_preload_merge   merge shared_preload_libraries contributions
quant_pg_conf_value   render a postgresql.conf value
quant_timescaledb_compat  '' or why a TimescaleDB/PostgreSQL pair is unsupported
quant_timescaledb_method  which TimescaleDB install method to use, and why
quant_topology        groups -> primary, replicas, writers and errors (platform_plan/topology.py)
quant_replica_slot    a replica's host name -> its replication slot name
quant_replica_count_differences  replica counts, primary counts -> the tables that differ
quant_failover_plan   groups, probes, promote_host, force -> what promote.yml does, or errors
quant_rejoin_plan     groups, probes, rejoin_host -> what rejoin.yml does, or errors
quant_replica_conninfo  dict -> a quoted libpq connection string (primary_conninfo)
quant_replica_pgpass_line  user, password -> the replication role's password file line
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ansible.errors import AnsibleFilterError

_UTILS = Path(__file__).resolve().parents[2] / "module_utils"


def _load(name):
    """Import module_utils/<package>/<name>.py (name is "package.name"): controller-side plugins do not get the
    module_utils path that ansible.cfg gives to modules, so load it by path."""
    try:
        return importlib.import_module("ansible.module_utils." + name)
    except ImportError:
        key = "quant_module_utils_" + name.replace(".", "_")
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, _UTILS.joinpath(*name.split(".")).with_suffix(".py"))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[key] = module
        return sys.modules[key]


def quant_platform(facts, pg_version=15, ts_version="2.19.3", brew_user=None, cluster_name="main"):
    """Plan for the host whose facts (ansible_facts, un-prefixed keys) are given."""
    matrix = _load("platform_plan.matrix")
    facts = facts or {}
    try:
        return matrix.platform_plan(
            facts.get("os_family"), facts.get("distribution"), facts.get("distribution_version"),
            facts.get("architecture"), pg_version, ts_version=ts_version,
            brew_user=brew_user or facts.get("user_id"), cluster_name=cluster_name)
    except ValueError as exc:
        raise AnsibleFilterError("quant_platform: %s" % exc) from exc


def quant_preload_merge(lists, available=None):
    """lists: list of lists (base, extra, roles); available: installed library names or None."""
    return _load("platform_plan.postgresql_conf").merge_preload(*lists, available=available)


def quant_pg_conf_value(value):
    return _load("platform_plan.postgresql_conf").conf_value(value)


def quant_timescaledb_compat(ts_version, pg_version):
    try:
        return _load("platform_plan.timescaledb").compatibility_problem(ts_version, pg_version)
    except ValueError as exc:
        return str(exc)


def quant_timescaledb_method(requested, **kwargs):
    try:
        return _load("platform_plan.timescaledb").choose_install_method(requested, **kwargs)
    except ValueError as exc:
        raise AnsibleFilterError("quant_timescaledb_method: %s" % exc) from exc


def quant_topology(groups, writing_hosts=None):
    """groups: Ansible's `groups`; writing_hosts: the hosts of a play that writes (a replica among them is an error)."""
    return _load("platform_plan.topology").topology(groups, writing_hosts or [])


def quant_replica_slot(host):
    return _load("platform_plan.topology").slot_name(host)


def quant_replica_count_differences(replica, primary):
    return _load("platform_plan.topology").count_differences(replica, primary)


def quant_failover_plan(groups, probes, promote_host, force=False):
    return _load("platform_plan.topology").failover_plan(groups, probes, promote_host, bool(force))


def quant_rejoin_plan(groups, probes, rejoin_host):
    return _load("platform_plan.topology").rejoin_plan(groups, probes, rejoin_host)


def quant_replica_conninfo(params):
    return _load("platform_plan.topology").conninfo(params)


def quant_replica_pgpass_line(user, password):
    try:
        return _load("platform_plan.topology").pgpass_line(user, password)
    except ValueError as exc:
        raise AnsibleFilterError("quant_replica_pgpass_line: %s" % exc) from exc


class FilterModule:
    def filters(self):
        return {
            "quant_platform": quant_platform,
            "quant_preload_merge": quant_preload_merge,
            "quant_pg_conf_value": quant_pg_conf_value,
            "quant_timescaledb_compat": quant_timescaledb_compat,
            "quant_timescaledb_method": quant_timescaledb_method,
            "quant_topology": quant_topology,
            "quant_replica_slot": quant_replica_slot,
            "quant_replica_count_differences": quant_replica_count_differences,
            "quant_failover_plan": quant_failover_plan,
            "quant_rejoin_plan": quant_rejoin_plan,
            "quant_replica_conninfo": quant_replica_conninfo,
            "quant_replica_pgpass_line": quant_replica_pgpass_line,
        }
