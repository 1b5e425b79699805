#!/usr/bin/python
"""Ansible module: timescaledb-tune's recommendations (Python or the binary), optionally applied."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: timescaledb_tune
short_description: Compute timescaledb-tune recommendations and optionally write them to a file or with ALTER SYSTEM
description:
  - Computes the settings that timescaledb-tune 0.19.0 recommends for a machine (memory, parallelism, WAL,
    background writer and miscellaneous groups), with values formatted exactly as timescaledb-tune prints them
    (for example C(2560MB), C(5242kB), C(2047MB)).
  - The recommendations come from I(source) - the module's Python port of the algorithm or the
    C(timescaledb-tune) binary on the host, whose output is parsed - and are a function of I(memory),
    I(cpus), I(pg_version), I(max_connections), I(wal_disk_size), I(max_background_workers) and I(profile),
    resolved once by the module and passed to either source (the binary always gets C(--memory)). Both
    sources give the same result object (I(recommendation)); I(overrides) are merged after, the same way.
  - With I(dest) the settings are written to that file (a C(conf.d) include file), atomically and only when
    its text differs; in check mode the file is compared, not written. This is how roles/timescaledb applies
    tuning.
  - With I(apply=true) the module connects to the server and writes only the settings whose current value
    differs (compared by unit, so C(2GB) equals C(262144) 8kB pages) with C(ALTER SYSTEM), then reloads
    the configuration with the C(pg_reload_conf) function. I(restart_required) tells whether a changed
    setting needs a restart.
  - The PostgreSQL version is read from the server when I(pg_version) is not given.
version_added: "1.0.0"
author: Quant platform team
options:
  source:
    description:
      - Where the recommendations come from.
      - C(module) computes them in Python (no binary needed).
      - C(binary) runs I(binary) (C(timescaledb-tune) from timescaledb-tools) on a scratch C(postgresql.conf)
        with C(--quiet --dry-run) and parses what it prints; the task fails when the binary is not installed.
      - C(auto) is C(binary) when I(binary) is installed, else C(module). The choice is returned in I(source).
      - C(none) recommends nothing (I(overrides) are ignored); with I(dest) the file holds I(extra_settings) only.
    type: str
    choices: [auto, module, binary, none]
    default: module
  binary:
    description: Name (looked up on C(PATH)) or path of the C(timescaledb-tune) binary.
    type: str
    default: timescaledb-tune
  memory:
    description:
      - Memory to base the recommendations on, as bytes (integer) or in PostgreSQL format such as C(8GB),
        C(512MB), C(65536) (bytes).
      - Defaults to the host's memory as chosen by I(memory_source).
    type: raw
  memory_source:
    description:
      - Where the default for I(memory) comes from.
      - C(physical) is the host's RAM, as upstream timescaledb-tune uses.
      - C(cgroup) uses the container's memory limit (cgroup v2 C(memory.max), cgroup v1
        C(memory.limit_in_bytes)) when it is lower than the physical RAM. This goes beyond upstream.
      - Ignored when I(memory) is given.
    type: str
    choices: [physical, cgroup]
    default: physical
  cpus:
    description: Number of CPUs to base the recommendations on. Defaults to the CPUs this host lets the module use.
    type: int
  pg_version:
    description:
      - Major PostgreSQL version (C(15), C(16), C(9.6)). Defaults to the server's version, read over the connection.
    type: str
  max_connections:
    description:
      - Value for C(max_connections) and the basis of C(work_mem). C(0) derives it from memory as upstream does
        (25 up to 2GB, 50 up to 4GB, 75 up to 6GB, otherwise 100). Otherwise at least 25.
    type: int
    default: 0
  wal_disk_size:
    description:
      - Size of the disk holding the WAL (bytes or PostgreSQL format). When set, C(max_wal_size) is 60% of it,
        rounded up to a 16MB segment.
    type: raw
  max_background_workers:
    description: Value for C(timescaledb.max_background_workers); at least 16.
    type: int
    default: 16
  profile:
    description: Upstream's workload profile. C(promscale) raises shared_buffers and WAL sizes.
    type: str
    choices: [default, promscale]
    default: default
  overrides:
    description:
      - Settings that win over the recommendations, as name to value. New names are added; a null value
        removes a setting from what is returned and applied.
    type: dict
    default: {}
  apply:
    description:
      - Write the settings with C(ALTER SYSTEM) and reload the configuration. Settings unknown to the
        server (for example C(timescaledb.*) when the library is not preloaded) make the module fail.
      - Exclusive with I(dest).
    type: bool
    default: false
  dest:
    description:
      - Write the settings, then I(extra_settings), to this file (one C(name = value) line each, values quoted
        as the postgresql role quotes them) instead of using ALTER SYSTEM. Nothing connects to the server; reload
        it afterwards (the file's change is the module's I(changed)).
      - I(owner), I(group) and I(mode) apply to the file.
    type: path
  extra_settings:
    description:
      - Settings written to I(dest) after the recommendations, whatever the I(source) (also C(none)); a name
        here replaces the recommended value, C(null) drops it. Only used with I(dest).
    type: dict
    default: {}
extends_documentation_fragment:
  - quant_postgres
  - files
attributes:
  check_mode:
    support: full
    details: In check mode the module reads the current values and reports the statements it would run.
  diff_mode:
    support: full
notes:
  - The connection options are used only when I(apply=true) or when I(pg_version) is not given.
  - With I(dest), I(restart_required) is always false; whoever reloads the server asks it which changed
    settings wait for a restart (roles/postgresql's C(reload postgresql) handler does).
  - Changing C(shared_buffers), C(max_connections), C(max_worker_processes) and similar postmaster settings
    takes effect only after a restart; notify a restart handler when I(restart_required) is true.
seealso:
  - name: timescaledb-tune
    description: The upstream tool whose algorithm this module follows.
    link: https://github.com/timescale/timescaledb-tune
  - module: community.postgresql.postgresql_alter_system
"""

EXAMPLES = r"""
- name: Show what timescaledb-tune would recommend for an 8GB, 4 CPU machine
  timescaledb_tune:
    memory: 8GB
    cpus: 4
    pg_version: "15"
    max_connections: 100
  register: tune

- name: Tune the local server for its container's memory limit and apply the result
  timescaledb_tune:
    memory_source: cgroup
    apply: true
    login_unix_socket: /var/run/postgresql
    overrides:
      random_page_cost: "1.5"
      jit: null
  register: tune_applied

- name: Ask the timescaledb-tune binary, write conf.d/60-timescaledb.conf, reload when it changed
  timescaledb_tune:
    source: auto
    memory_source: cgroup
    pg_version: "15"
    dest: /etc/postgresql/15/main/conf.d/60-timescaledb.conf
    extra_settings:
      timescaledb.telemetry_level: "off"
    owner: postgres
    group: postgres
    mode: "0644"
  notify: reload postgresql

- name: Report settings that wait for a restart
  ansible.builtin.debug:
    msg: "restart needed for {{ tune_applied.diff.after | list | join(', ') }}"
  when: tune_applied.restart_required
"""

RETURN = r"""
source:
  description: The source that computed the settings (C(auto) resolved to C(module) or C(binary)).
  returned: always
  type: str
  sample: module
recommendation:
  description:
    - The recommendation object, the same for every source. I(settings), I(groups) and I(inputs) below are
      its parts, kept at the top level as well.
  returned: always
  type: dict
  sample: {"source": "module", "settings": {"shared_buffers": "2GB"}, "groups": [], "inputs": {"memory": 8589934592}}
dest:
  description: The file written (or compared in check mode).
  returned: when I(dest) is given
  type: str
settings:
  description: Setting name to value, formatted as timescaledb-tune prints it, in upstream's order, overrides applied.
  returned: always
  type: dict
  sample: {"shared_buffers": "2GB", "effective_cache_size": "6GB", "maintenance_work_mem": "1GB", "work_mem": "16MB"}
groups:
  description: The groups in processing order, each with its label and keys (skipped groups are absent).
  returned: always
  type: list
  elements: dict
  sample: [{"label": "memory", "keys": ["shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem"]}]
inputs:
  description:
    - The resolved inputs the recommendations are based on, with the I(source) and why it was chosen.
    - For the binary also its path and what it said it tuned for (C(binary_based_on), or null).
  returned: always
  type: dict
  sample: {"memory": 8589934592, "memory_pretty": "8.00 GB", "memory_source": "argument", "cpus": 4,
           "pg_version": "15", "max_connections": 100, "wal_disk_size": 0, "max_background_workers": 16,
           "profile": "default", "source": "module", "source_reason": "requested"}
changed:
  description: Whether ALTER SYSTEM or the I(dest) file changed (or in check mode would change).
  returned: always
  type: bool
restart_required:
  description: True when a changed setting has pg_settings.context = postmaster.
  returned: always
  type: bool
queries:
  description: The ALTER SYSTEM statements run, or in check mode those that would run.
  returned: always
  type: list
  elements: str
  sample: ["ALTER SYSTEM SET \"shared_buffers\" = '2GB'"]
diff:
  description: Before and after values of the settings that change; with I(dest) the file's old and new text.
  returned: always
  type: dict
  sample: {"before": {"shared_buffers": "128MB"}, "after": {"shared_buffers": "2GB"}}
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.core.atomic_file import atomic_text_file
from ansible.module_utils.core.postgres import (
    ConnectionFailure,
    connect,
    env_fallback_password,
    postgres_common_argument_spec,
)
from ansible.module_utils.platform_plan.postgresql_conf import conf_value
from ansible.module_utils.tune.apply import (
    ApplyError,
    apply_settings,
    detect_memory,
    host_cpus,
    server_major_version,
)
from ansible.module_utils.tune.binary import DEFAULT_BINARY, BinaryError, run_binary
from ansible.module_utils.tune.conf_file import read_text, render_conf
from ansible.module_utils.tune.recommendation import (
    SOURCE_CHOICES,
    build_recommendation,
    choose_source,
    groups_for,
)
from ansible.module_utils.tune.recommender import (
    TuneInputError,
    bytes_to_decimal_format,
    normalize_pg_version,
    pg_format_to_bytes,
    recommend,
)


def argument_spec():
    """The module's options plus the shared connection options."""
    spec = postgres_common_argument_spec()
    spec.update(
        source=dict(type="str", default="module", choices=list(SOURCE_CHOICES)),
        binary=dict(type="str", default=DEFAULT_BINARY),
        memory=dict(type="raw"),
        memory_source=dict(type="str", default="physical", choices=["physical", "cgroup"]),
        cpus=dict(type="int"),
        pg_version=dict(type="str"),
        max_connections=dict(type="int", default=0),
        wal_disk_size=dict(type="raw"),
        max_background_workers=dict(type="int", default=16),
        profile=dict(type="str", default="default", choices=["default", "promscale"]),
        overrides=dict(type="dict", default={}),
        apply=dict(type="bool", default=False),
        dest=dict(type="path"),
        extra_settings=dict(type="dict", default={}),
    )
    return spec


def resolve_inputs(params, conn):
    """Turn module parameters into recommender inputs (bytes, ints, a major version)."""
    if params["memory"] not in (None, ""):
        memory = pg_format_to_bytes(params["memory"], "memory")
        source = "argument"
    else:
        memory = detect_memory(params["memory_source"])
        source = params["memory_source"]
    wal = params["wal_disk_size"]
    wal_disk_size = pg_format_to_bytes(wal, "wal_disk_size") if wal not in (None, "") else 0
    pg_version = params["pg_version"] or server_major_version(conn)
    return dict(
        memory=memory, memory_pretty=bytes_to_decimal_format(memory) if memory > 0 else "0", memory_source=source,
        cpus=params["cpus"] if params["cpus"] is not None else host_cpus(),
        pg_version=normalize_pg_version(pg_version),
        max_connections=params["max_connections"], wal_disk_size=wal_disk_size,
        max_background_workers=params["max_background_workers"], profile=params["profile"],
    )


def compute(module, inputs):
    """The recommendation from the chosen source, overrides merged; the same object for every source."""
    params = module.params
    found = module.get_bin_path(params["binary"]) if params["source"] in ("auto", "binary") else None
    source, reason = choose_source(params["source"], found)
    inputs = dict(inputs, source=source, source_reason=reason)
    if source == "binary":
        def run_command(argv, environ_update):
            return module.run_command(argv, environ_update=environ_update)
        settings, based_on = run_binary(run_command, found, inputs)
        groups = groups_for(settings)
        inputs.update(binary=found, binary_based_on=based_on)
    elif source == "module":
        settings, groups = recommend(
            inputs["memory"], inputs["cpus"], inputs["pg_version"], max_connections=inputs["max_connections"],
            wal_disk_size=inputs["wal_disk_size"], max_background_workers=inputs["max_background_workers"],
            profile=inputs["profile"])
    else:
        settings, groups = {}, []
    return build_recommendation(source, settings, groups, inputs, params["overrides"])


def write_conf(module, recommendation):
    """Write the recommendation to I(dest) when its text differs; check mode only compares."""
    dest = module.params["dest"]
    after = render_conf(recommendation, module.params["extra_settings"], conf_value)
    before = read_text(dest)
    changed = before != after
    if changed and not module.check_mode:
        with atomic_text_file(dest, mode=0o644, prefix=".%s." % os.path.basename(dest)) as handle:
            handle.write(after)
    file_args = module.load_file_common_arguments(module.params, path=dest)
    if before is not None or not module.check_mode:
        changed = module.set_fs_attributes_if_different(file_args, changed)
    diff = dict(before=before or "", after=after, before_header=dest, after_header=dest)
    return dict(changed=changed, restart_required=False, queries=[], diff=diff, dest=dest)


def apply_result(module, conn, recommendation):
    """The changed/diff part of the result: the file, ALTER SYSTEM, or nothing (compute only)."""
    if module.params["dest"]:
        return write_conf(module, recommendation)
    result = dict(changed=False, restart_required=False, queries=[], diff=dict(before={}, after={}))
    if module.params["apply"]:
        outcome = apply_settings(conn, recommendation["settings"], check_mode=module.check_mode)
        result.update(changed=outcome["changed"], restart_required=outcome["restart_required"],
                      queries=outcome["queries"], diff=outcome["diff"])
    return result


def run(module):
    """Compute, optionally apply, and exit."""
    params = module.params
    if params["apply"] and params["dest"]:
        module.fail_json(msg="timescaledb_tune: apply and dest are exclusive: apply writes with ALTER SYSTEM, "
                             "dest writes a configuration file; set one")
    conn = None
    try:
        if params["apply"] or not params["pg_version"]:
            conn = connect(env_fallback_password(dict(params)), autocommit=True)
        recommendation = compute(module, resolve_inputs(params, conn))
        result = apply_result(module, conn, recommendation)
    except ConnectionFailure as exc:
        purpose = "to apply settings" if params["apply"] else "to read the server version (pg_version not given)"
        module.fail_json(msg="timescaledb_tune: connecting %s: %s" % (purpose, exc))
    except TuneInputError as exc:
        module.fail_json(msg="timescaledb_tune: computing recommendations: %s" % exc)
    except BinaryError as exc:
        module.fail_json(msg="timescaledb_tune: source binary: %s" % exc)
    except (ApplyError, OSError) as exc:
        module.fail_json(msg="timescaledb_tune: %s" % exc)
    except Exception as exc:  # report anything unexpected with its traceback
        module.fail_json(msg="timescaledb_tune: unexpected error: %s" % exc, exception=traceback.format_exc())
    finally:
        if conn is not None:
            conn.close()
    module.exit_json(settings=dict(recommendation["settings"]), groups=recommendation["groups"],
                     inputs=recommendation["inputs"], source=recommendation["source"],
                     recommendation=recommendation, **result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, add_file_common_args=True)
    run(module)


if __name__ == "__main__":
    main()
