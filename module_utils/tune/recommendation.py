"""The recommendation object both sources produce, and the one place overrides are merged.

A recommendation is a plain dict (it is returned to Ansible as is)::

    {"source": "module" | "binary" | "none",
     "settings": {name: value in PostgreSQL units, ...},   # overrides merged
     "groups": [{"label": ..., "keys": [...]}, ...],
     "inputs": {"memory": bytes, "memory_source": ..., "cpus": ..., "pg_version": ...,
                "max_connections": ..., "max_background_workers": ..., "profile": ..., ...}}

The Python recommender gives settings and groups directly; the binary's
output is parsed (module_utils/tune/binary.py) and grouped here the way
upstream groups them, so what follows (overrides, writing, reporting) cannot
tell the sources apart.
"""

from __future__ import annotations

from collections import OrderedDict

from ansible.module_utils.tune.recommender import (
    BGWRITER_KEYS,
    BGWRITER_LABEL,
    MEMORY_KEYS,
    MEMORY_LABEL,
    MISC_KEYS,
    MISC_LABEL,
    PARALLEL_KEYS,
    PARALLEL_LABEL,
    WAL_KEYS,
    WAL_LABEL,
    TuneInputError,
    apply_overrides,
)

SOURCES = ("module", "binary", "none")
SOURCE_CHOICES = ("auto", *SOURCES)
OTHER_LABEL = "other"

_GROUP_KEYS = ((MEMORY_LABEL, MEMORY_KEYS), (PARALLEL_LABEL, PARALLEL_KEYS), (WAL_LABEL, WAL_KEYS),
               (BGWRITER_LABEL, BGWRITER_KEYS), (MISC_LABEL, MISC_KEYS))


def choose_source(requested, binary_path):
    """Which source computes the settings, and why: ``(source, reason)``.

    ``binary_path`` is where timescaledb-tune was found on the host, or None.
    auto takes the binary when it is installed, else the Python recommender;
    binary without the tool is an error (silently tuning differently would hide it).
    """
    if requested not in SOURCE_CHOICES:
        raise TuneInputError("source: expected one of %s, got %r" % (", ".join(SOURCE_CHOICES), requested))
    if requested == "auto":
        if binary_path:
            return "binary", "auto: timescaledb-tune found at %s" % binary_path
        return "module", "auto: timescaledb-tune not installed"
    if requested == "binary" and not binary_path:
        raise TuneInputError("source: binary, but timescaledb-tune is not installed on the host (install "
                             "timescaledb-tools, or set source - timescaledb_tune_method in roles/timescaledb - "
                             "to module or auto)")
    return requested, "requested"


def groups_for(settings):
    """Upstream's groups, in processing order, for settings that arrive without them."""
    groups = []
    placed = set()
    for label, keys in _GROUP_KEYS:
        present = [name for name in settings if name in keys]
        if present:
            groups.append({"label": label, "keys": present})
            placed.update(present)
    rest = [name for name in settings if name not in placed]
    if rest:
        groups.append({"label": OTHER_LABEL, "keys": rest})
    return groups


def build_recommendation(source, settings, groups, inputs, overrides):
    """The recommendation object, overrides merged (the only place they are).

    ``source`` none means no tuning: no settings, and overrides (which win over
    recommendations) have nothing to win over, so they are not written either.
    """
    if source == "none":
        return dict(source=source, settings=OrderedDict(), groups=[], inputs=dict(inputs))
    settings, groups = apply_overrides(settings, groups, overrides)
    return dict(source=source, settings=settings, groups=groups, inputs=dict(inputs))
