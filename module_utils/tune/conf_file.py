"""A recommendation written as one postgresql.conf include file (the role's conf.d file).

The role applies tuning through a file, not ALTER SYSTEM: PostgreSQL reads a
conf.d file without checking the names, so ``timescaledb.*`` settings can be
written before the library is preloaded and preload + tuning cost one restart;
check mode on a host without a running server still predicts the change.
"""

from __future__ import annotations

import os

HEADER = ("# Managed by Ansible (timescaledb_tune module, roles/timescaledb). Local edits are overwritten.\n"
          "# Tuned by: %s. A later file in conf.d (or postgresql.auto.conf) wins over this one.\n")


def written_settings(recommendation, extra_settings):
    """What the file holds: the recommendation, then ``extra_settings`` (which replace a same-named one)."""
    settings = dict(recommendation["settings"])
    for name in sorted(extra_settings or {}):
        settings.pop(name, None)
        if extra_settings[name] is not None:
            settings[name] = extra_settings[name]
    return settings


def render_conf(recommendation, extra_settings, render_value):
    """The file's text; ``render_value`` quotes a value for postgresql.conf."""
    lines = [HEADER % recommendation["source"]]
    for name, value in written_settings(recommendation, extra_settings).items():
        lines.append("%s = %s\n" % (name, render_value(value)))
    return "".join(lines)


def read_text(path):
    """The file's current text, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read()
