"""Pure helpers for the PostgreSQL configuration the postgresql role writes.

Kept out of Jinja so the rules (list merge, value quoting) are unit tested.
"""

from __future__ import annotations

import re

_BARE = re.compile(r"^-?\d+(\.\d+)?$")


def merge_preload(*lists, available=None):
    """Merge shared_preload_libraries contributions, order-stable, deduplicated.

    `lists` are the base list, the user's extras and what other roles add.
    When `available` (library names found in pkglibdir) is given, libraries
    not installed yet are held back, so PostgreSQL still starts on a fresh
    host before the role that installs them has run; they are reported in
    `missing` and written as soon as they are installed.
    """
    merged = []
    for items in lists:
        if items is None:
            continue
        for item in items.split(",") if isinstance(items, str) else items:
            name = str(item).strip()
            if name and name not in merged:
                merged.append(name)
    if available is None:
        return {"libraries": merged, "missing": []}
    present = set(available)
    return {
        "libraries": [name for name in merged if name in present],
        "missing": [name for name in merged if name not in present],
    }


def conf_value(value):
    """Render one postgresql.conf value: numbers and booleans bare, the rest quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item) for item in value)
    text = str(value)
    if isinstance(value, (int, float)) or _BARE.match(text):
        return text
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "''")
