"""Whether a table's checkpoint still describes the table the rows would go into (issue 20, item 4).

A checkpoint is keyed by source table. Before this check, pointing a source table at another target,
or dropping and recreating the target, left a "done" checkpoint that made the next run report the
table as migrated (``status: skipped``) while the new target held no rows. The checkpoint now also
records the target's identity: its name and its pg_class oid, which a DROP + CREATE changes and
nothing else the migration does (index drops, constraints, hypertable conversion, TRUNCATE) does.
"""

from __future__ import annotations


def target_change(cp, target):
    """None when the checkpoint's rows went into this very table; else what changed, in words.

    cp: the checkpoint dict (target_table, target_oid); target: the plan's TargetTable. A checkpoint
    an older release wrote has no oid: the name alone decides (and the caller records the oid).
    """
    if cp["target_table"] != target.display:
        return "its rows went into %s, and the mapping now loads it into %s" % (cp["target_table"], target.display)
    if cp.get("target_oid") is not None and cp["target_oid"] != target.oid:
        return "%s was dropped and created again since (table oid %s then, %s now)" % (
            target.display, cp["target_oid"], target.oid)
    return None


def reload_warning(table, cp, change):
    """Warning for a finished load whose target changed: the table is loaded again."""
    return ("table %s: run %s recorded it as migrated, but %s; loading it again into the current target"
            % (table, cp["run_id"], change))


def resume_refusal(table, cp, change):
    """Error for an interrupted load whose target changed: its rows cannot be continued elsewhere."""
    return ("table %s has an interrupted load (run_id %s), but %s: resume cannot continue it into another table; "
            "rerun with truncate: true to start over (or point the mapping back at %s)"
            % (table, cp["run_id"], change, cp["target_table"]))


def emptied_warning(table, cp, target):
    """Warning for a finished load whose target has no rows any more (emptied by hand, say)."""
    return ("table %s: run %s copied %d rows into %s, which holds none now (emptied since the migration?); "
            "it is not reloaded on its own: truncate: true reloads it" % (
                table, cp["run_id"], cp["copied_rows"], target.display))
