"""Test helpers for timescaledb_tune: a stand-in for the timescaledb-tune binary, a sample
of the real one's output, and a runner for the module without Ansible.

timescaledb-tune (timescaledb-tools) is not installable on the project's
machines (no Timescale repository, see shared ENVIRONMENT.md), so the binary
route is tested with:

* ``SAMPLE_STDOUT`` / ``SAMPLE_STDERR``: what timescaledb-tune 0.19.0 prints for
  ``--quiet --yes --dry-run --pg-version=15 --memory=8GB --cpus=4 --max-conns=100``
  on a scratch postgresql.conf that preloads timescaledb. NOT recorded from a
  run here: reconstructed from upstream's source (pkg/tstune/tuner.go
  processQuiet: one ``name = value`` line per missing setting on stdout, then
  timescaledb.last_tuned and timescaledb.last_tuned_version; statements, in
  colour by default, on stderr) with the values of upstream's own test tables.
* ``write_fake_binary(directory)``: an executable that answers like the binary
  (same flags, same output format) by running the project's Python recommender
  and records its argv. It proves the plumbing (flags, parsing, merge,
  apply) per variable; the algorithm's fidelity to upstream is proven
  separately by tests/unit/test_tune_recommender.py.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

RECOMMENDER = Path(__file__).resolve().parents[1] / "module_utils" / "tune" / "recommender.py"

SAMPLE_STDOUT = """\
shared_buffers = 2GB
effective_cache_size = 6GB
maintenance_work_mem = 1GB
work_mem = 16MB
timescaledb.max_background_workers = 16
max_worker_processes = 23
max_parallel_workers_per_gather = 2
max_parallel_workers = 4
wal_buffers = 16MB
min_wal_size = 512MB
max_wal_size = 1GB
default_statistics_target = 100
random_page_cost = 1.1
checkpoint_completion_target = 0.9
max_connections = 100
max_locks_per_transaction = 256
autovacuum_max_workers = 10
autovacuum_naptime = 10
default_toast_compression = lz4
jit = off
effective_io_concurrency = 256
timescaledb.last_tuned = '2026-12-04T07:41:09Z'
timescaledb.last_tuned_version = '0.19.0'
"""

SAMPLE_STDERR = (
    "\x1b[36mUsing postgresql.conf at this path:\x1b[0m\n/tmp/quant-tstune-x/postgresql.conf\n\n"
    "\x1b[36mRecommendations based on 8.00 GB of available memory and 4 CPUs for PostgreSQL 15\x1b[0m\n"
    "\x1b[36mSuccess, but not writing due to --dry-run flag\x1b[0m\n")

# The same recommendations as a postgresql.conf written with --out-path (no
# --dry-run): the scratch file's lines, then the appended settings, a kept
# trailing comment, and the tool's bookkeeping lines.
SAMPLE_OUT_CONF = (
    "shared_preload_libraries = 'timescaledb'\t# (change requires restart)\n"
    "#shared_buffers = 128MB\n"
    + SAMPLE_STDOUT.replace("random_page_cost = 1.1\n", "random_page_cost = 1.1\t# measured on SSD\n"))

_SCRIPT = '''#!{python}
"""Fake timescaledb-tune for tests (tests/tune_helpers.py)."""
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("fake_tstune_recommender", {recommender!r})
rec = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rec)
flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if "=" in arg)
log = os.environ.get("FAKE_TSTUNE_ARGV")
if log:
    with open(log, "a") as fh:
        fh.write(json.dumps(dict(argv=sys.argv[1:], tstune_profile=os.environ.get("TSTUNE_PROFILE"))) + "\\n")
if os.environ.get("FAKE_TSTUNE_FAIL"):
    sys.stderr.write("Error: " + os.environ["FAKE_TSTUNE_FAIL"] + "\\n")
    sys.exit(1)
memory = rec.pg_format_to_bytes(flags["memory"])
cpus = int(flags["cpus"])
wal = rec.pg_format_to_bytes(flags["wal-disk-size"]) if "wal-disk-size" in flags else 0
settings, _ = rec.recommend(memory, cpus, flags["pg-version"], max_connections=int(flags.get("max-conns", 0)),
                            wal_disk_size=wal,
                            max_background_workers=int(flags.get("max-bg-workers", 16)),
                            profile=flags.get("profile") or "default")
sys.stderr.write("Using postgresql.conf at this path:\\n%s\\n\\n" % flags["conf-path"])
sys.stderr.write("Recommendations based on %s of available memory and %d CPUs for PostgreSQL %s\\n"
                 % (rec.bytes_to_decimal_format(memory), cpus, flags["pg-version"]))
for name, value in settings.items():
    print("%s = %s" % (name, value))
print("timescaledb.last_tuned = '2026-12-04T07:41:09Z'")
print("timescaledb.last_tuned_version = '0.19.0'")
sys.stderr.write("Success, but not writing due to --dry-run flag\\n")
'''


def write_fake_binary(directory):
    """Write ``directory``/timescaledb-tune (executable) and return its path."""
    path = Path(directory) / "timescaledb-tune"
    path.write_text(_SCRIPT.format(python=sys.executable, recommender=str(RECOMMENDER)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def recorded_calls(log_path):
    """The argv (and TSTUNE_PROFILE) of every call the fake binary logged."""
    if not os.path.exists(log_path):
        return []
    with open(log_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


class ModuleFail(Exception):
    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


class FakeModule:
    """The AnsibleModule surface timescaledb_tune.run() uses, without Ansible's process around it.

    Commands really run (the fake binary is a real executable); file attributes
    (owner/group/mode) are left to the real module, tested through ``ansible``.
    """

    def __init__(self, module, params, check_mode=False):
        self.params = {name: arg.get("default") for name, arg in module.argument_spec().items()}
        self.params.update(params)
        self.check_mode = check_mode

    def get_bin_path(self, name):
        return shutil.which(name)

    def run_command(self, argv, environ_update=None):
        env = dict(os.environ, **(environ_update or {}))
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def load_file_common_arguments(self, params, path=None):
        return dict(path=path)

    def set_fs_attributes_if_different(self, file_args, changed):
        return changed

    def exit_json(self, **result):
        raise ModuleExit(result)

    def fail_json(self, **result):
        raise ModuleFail(result)


def run_module(module, params, check_mode=False):
    """Run library/<module>.run() with ``params``; the result dict, or ModuleFail raised."""
    try:
        module.run(FakeModule(module, params, check_mode))
    except ModuleExit as done:
        return done.result
    raise AssertionError("the module neither exited nor failed")
