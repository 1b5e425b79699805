"""timescaledb-tune (the Go binary) as a source of recommendations.

The binary is asked the way the role always asked it: for a scratch
postgresql.conf that already preloads timescaledb, so every tunable is
"missing" and printed. With ``--quiet --dry-run --yes`` it writes nothing
(no backup, no output file) and prints one ``name = value`` line per
recommendation on stdout; its statements ("Recommendations based on ...")
go to stderr. The parser also reads a whole postgresql.conf as written with
``--out-path`` (same line grammar), so either form turns into the same
settings mapping that module_utils/tune/recommender.py returns.

Upstream reference: github.com/timescale/timescaledb-tune, pkg/tstune
(tuner.go: processQuiet, fmtTunableParam, ourParams).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import OrderedDict

DEFAULT_BINARY = "timescaledb-tune"

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_SETTING_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$")
_BASED_ON_RE = re.compile(
    r"Recommendations based on (?P<memory>[0-9.]+ ?[kMGT]?B) of available memory "
    r"and (?P<cpus>\d+) CPUs for PostgreSQL (?P<pg_version>[0-9.]+)")
# Lines the tool prints that are not recommendations: the preload line it
# checks (the postgresql role owns shared_preload_libraries) and its own
# bookkeeping, whose timestamp would make every run a change.
NOT_RECOMMENDATIONS = ("shared_preload_libraries", "timescaledb.last_tuned", "timescaledb.last_tuned_version")
SCRATCH_CONF = "shared_preload_libraries = 'timescaledb'\n"


class BinaryError(Exception):
    """timescaledb-tune failed or printed nothing usable; the message says which."""


def memory_argument(num_bytes):
    """Bytes in the PostgreSQL format the binary's --memory accepts, exact (kB when whole)."""
    if num_bytes % 1024 == 0:
        return "%dkB" % (num_bytes // 1024)
    return "%d" % num_bytes


def tune_command(binary, inputs, conf_path):
    """The argv that asks the binary for the same inputs the Python recommender gets.

    Memory is always passed: the module resolved it (argument, physical RAM or
    the cgroup limit), so both sources tune for the same number.
    """
    argv = [binary, "--quiet", "--yes", "--dry-run", "--color=false", "--conf-path=" + conf_path,
            "--pg-version=" + inputs["pg_version"], "--memory=" + memory_argument(inputs["memory"]),
            "--cpus=%d" % inputs["cpus"], "--max-bg-workers=%d" % inputs["max_background_workers"]]
    if inputs["max_connections"]:
        argv.append("--max-conns=%d" % inputs["max_connections"])
    if inputs["wal_disk_size"]:
        argv.append("--wal-disk-size=" + memory_argument(inputs["wal_disk_size"]))
    if inputs["profile"] != "default":
        argv.append("--profile=" + inputs["profile"])
    return argv


def _value(raw):
    """The value of a postgresql.conf line: quotes removed, a trailing comment dropped."""
    text = raw.strip()
    if text.startswith("'"):
        end = 1
        while end < len(text):
            if text[end] == "'" and text[end + 1:end + 2] == "'":
                end += 2
                continue
            if text[end] == "'":
                return text[1:end].replace("''", "'")
            end += 1
        raise ValueError(raw)
    return text.split("#", 1)[0].strip()


def parse_output(stdout, stderr=""):
    """Settings (name -> value, in the order printed, last one wins) and what the tool says it used.

    Returns ``(settings, based_on)``; ``based_on`` is a dict (memory, cpus,
    pg_version) from the stderr statement, or None when it was not printed.
    """
    settings = OrderedDict()
    for line in _ANSI_RE.sub("", stdout or "").splitlines():
        match = _SETTING_RE.match(line)
        if not match or match.group(1) in NOT_RECOMMENDATIONS:
            continue
        try:
            value = _value(match.group(2))
        except ValueError:
            raise BinaryError("timescaledb-tune output: unterminated quote in %r" % line.strip()) from None
        settings.pop(match.group(1), None)
        settings[match.group(1)] = value
    found = _BASED_ON_RE.search(_ANSI_RE.sub("", stderr or ""))
    based_on = None
    if found:
        based_on = dict(memory=found.group("memory"), cpus=int(found.group("cpus")),
                        pg_version=found.group("pg_version"))
    return settings, based_on


def _first_lines(text, count=5):
    lines = [line for line in _ANSI_RE.sub("", text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[:count]) or "(nothing)"


def run_binary(run_command, binary, inputs):
    """Run the binary for ``inputs`` (resolved module inputs) and parse its answer.

    ``run_command(argv, environ_update)`` returns ``(rc, stdout, stderr)``
    (AnsibleModule.run_command in the module, a fake in unit tests).
    TSTUNE_PROFILE is emptied: upstream lets it replace an empty --profile,
    which would make the variable say one thing and the binary do another.
    """
    scratch = tempfile.mkdtemp(prefix="quant-tstune-")
    try:
        conf = os.path.join(scratch, "postgresql.conf")
        with open(conf, "w", encoding="ascii") as handle:
            handle.write(SCRATCH_CONF)
        argv = tune_command(binary, inputs, conf)
        rc, out, err = run_command(argv, {"TSTUNE_PROFILE": ""})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if rc != 0:
        raise BinaryError("running %s (exit %d): %s" % (" ".join(argv[:1] + argv[1:4]), rc, _first_lines(err or out)))
    settings, based_on = parse_output(out, err)
    if not settings:
        raise BinaryError("%s printed no recommendations; stdout: %s; stderr: %s"
                          % (binary, _first_lines(out), _first_lines(err)))
    if based_on and based_on["cpus"] != inputs["cpus"]:
        raise BinaryError("%s tuned for %d CPUs, asked for %d" % (binary, based_on["cpus"], inputs["cpus"]))
    return settings, based_on

