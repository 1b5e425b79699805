"""The replication topology of an inventory: one primary, zero or more replicas.

    topology(groups, writing_hosts=()) -> {primary, replicas, writers, replicated, errors}

`groups` is Ansible's `groups` magic variable (group name -> host names). The
database hosts are the group `quant_db`; with replication, `db_primary` holds
exactly one of them and `db_replica` the others. Without a `db_primary` group
(the dev inventory: one host) every quant_db host is a writer, as before.

`writing_hosts` are the hosts of a play that writes (database, migrate,
validate, backup): a replica among them is an error, since a standby refuses
writes and is filled by streaming replication only.

Pure (no Ansible, no I/O): tests/unit/test_topology.py covers every rule.
Errors are sentences naming the hosts and groups that are wrong.
"""

from __future__ import annotations

import re

DB_GROUP = "quant_db"
PRIMARY_GROUP = "db_primary"
REPLICA_GROUP = "db_replica"
SLOT_PREFIX = "quant_replica_"
# PostgreSQL identifiers (slot names) are at most 63 bytes.
MAX_SLOT_NAME = 63


def _hosts(groups, name):
    value = (groups or {}).get(name) or []
    if isinstance(value, str):
        value = [value]
    return list(value)


def topology(groups, writing_hosts=()):
    """The primary, replicas and writers of the inventory, and every error found (an empty list when sound)."""
    db_hosts = _hosts(groups, DB_GROUP)
    primaries = _hosts(groups, PRIMARY_GROUP)
    replicas = _hosts(groups, REPLICA_GROUP)
    errors = []

    if len(primaries) > 1:
        errors.append("%s must hold exactly one host, it holds %d (%s): two primaries would both accept writes "
                      "and diverge; keep one in %s and move the others to %s"
                      % (PRIMARY_GROUP, len(primaries), ", ".join(primaries), PRIMARY_GROUP, REPLICA_GROUP))
    if replicas and not primaries:
        errors.append("%s holds %s but %s is empty or missing: a replica needs the one primary it streams from"
                      % (REPLICA_GROUP, ", ".join(replicas), PRIMARY_GROUP))
    both = [host for host in primaries if host in replicas]
    for host in both:
        errors.append("%s is in both %s and %s: a host is either the primary or a replica"
                      % (host, PRIMARY_GROUP, REPLICA_GROUP))
    for group, members in ((PRIMARY_GROUP, primaries), (REPLICA_GROUP, replicas)):
        outside = [host for host in members if host not in db_hosts]
        if outside:
            errors.append("%s in %s %s not under %s: put %s inside %s (children) so every stage sees %s"
                          % (", ".join(outside), group, "is" if len(outside) == 1 else "are", DB_GROUP, group,
                             DB_GROUP, "it" if len(outside) == 1 else "them"))
    if primaries:
        loose = [host for host in db_hosts if host not in primaries and host not in replicas]
        if loose:
            errors.append("%s %s in %s but in neither %s nor %s: with a primary, every database host is "
                          "the primary or one of its replicas"
                          % (", ".join(loose), "is" if len(loose) == 1 else "are", DB_GROUP, PRIMARY_GROUP,
                             REPLICA_GROUP))
    slots = {}
    for host in replicas:
        slots.setdefault(slot_name(host), []).append(host)
    for name, hosts in slots.items():
        if len(hosts) > 1:
            errors.append("replicas %s would share the replication slot %s: rename one of them"
                          % (", ".join(hosts), name))

    writers = primaries[:1] if primaries else [host for host in db_hosts if host not in replicas]
    targeted = [host for host in (writing_hosts or []) if host in replicas]
    for host in targeted:
        errors.append("%s is a replica (%s) but a target of a stage that writes (database, migrate, validate, "
                      "backup): a replica is read-only and receives the data from %s by streaming replication"
                      % (host, REPLICA_GROUP, primaries[0] if primaries else PRIMARY_GROUP))

    return {
        "primary": primaries[0] if len(primaries) == 1 else None,
        "replicas": [host for host in replicas if host not in primaries],
        "writers": writers,
        "replicated": bool(primaries and replicas),
        "errors": errors,
    }


def slot_name(host):
    """The physical replication slot (on the primary) of a replica: quant_replica_<host>, lower case,
    every character outside [a-z0-9_] as '_', at most 63 characters."""
    text = re.sub(r"[^a-z0-9_]", "_", str(host).lower())
    return (SLOT_PREFIX + text)[:MAX_SLOT_NAME]


def count_differences(replica, primary):
    """Sentences naming every table whose row count on a replica differs from the primary's
    (both: table name -> count); an empty list when they agree."""
    replica = {str(k): int(v) for k, v in (replica or {}).items()}
    primary = {str(k): int(v) for k, v in (primary or {}).items()}
    out = []
    for name in sorted(set(primary) | set(replica)):
        if name not in replica:
            out.append("%s: missing on the replica (%d rows on the primary)" % (name, primary[name]))
        elif name not in primary:
            out.append("%s: on the replica only (%d rows)" % (name, replica[name]))
        elif replica[name] != primary[name]:
            out.append("%s: %d rows on the replica, %d on the primary" % (name, replica[name], primary[name]))
    return out
