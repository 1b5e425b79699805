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


# --- failover (playbooks/promote.yml) and rejoin (playbooks/rejoin.yml) ---------------------------
#
# After a promotion the inventory's db_primary / db_replica groups no longer say which server
# accepts writes, so both playbooks first probe every quant_db host (roles/pg_replica, probe.yml)
# and decide from what the servers say. A probe is a dict:
#   reachable  the host answered (SSH); false: nothing is known about it
#   running    its PostgreSQL answered a query
#   standby    pg_is_in_recovery()  (only meaningful when running)
#   receiver   pg_stat_wal_receiver.status ('' when none)
#   fenced     its data directory holds standby.signal (it can only start read-only)


def _probe(probes, host):
    probe = (probes or {}).get(host) or {}
    return {
        "reachable": bool(probe.get("reachable", False)),
        "running": bool(probe.get("running", False)),
        "standby": bool(probe.get("standby", False)),
        "receiver": str(probe.get("receiver") or ""),
        "fenced": bool(probe.get("fenced", False)),
        # A server runs (pg_ctl status) but refused or failed the probe's query.
        "silent": bool(probe.get("silent", False)),
        "error": str(probe.get("error") or ""),
    }


def _state(probe):
    if not probe["reachable"]:
        return "unreachable"
    if probe["silent"]:
        return "running but not answering (%s)" % (probe["error"] or "no answer")
    if not probe["running"]:
        return "stopped (fenced)" if probe["fenced"] else "stopped"
    if probe["standby"]:
        return "standby (%s)" % (probe["receiver"] or "not streaming")
    return "primary"


def describe(groups, probes):
    """One 'host: state' phrase per quant_db host, for the reports."""
    return ["%s: %s" % (host, _state(_probe(probes, host))) for host in _hosts(groups, DB_GROUP)]


def current_primaries(groups, probes, exclude=None):
    """The quant_db hosts whose server runs and is not in recovery (accepts writes)."""
    return [host for host in _hosts(groups, DB_GROUP) if host != exclude
            and _probe(probes, host)["running"] and not _probe(probes, host)["standby"]]


def _silent_errors(groups, probes):
    """A server that runs but did not answer could be a primary that accepts writes: a plan
    that took it for stopped could make a second primary, so none is made until it answers."""
    return ["%s runs a PostgreSQL server (pg_ctl status) that did not answer the probe (%s): whether it "
            "accepts writes is unknown, so nothing was changed. Let the admin connect to it again "
            "(pg_hba.conf, the server's log) or stop it, then run again"
            % (host, _probe(probes, host)["error"] or "no answer")
            for host in _hosts(groups, DB_GROUP) if _probe(probes, host)["silent"]]


def _required_host(groups, name, option):
    if not name:
        return "%s is required: -e %s=NAME, one of the quant_db hosts (%s)" % (
            option, option, ", ".join(_hosts(groups, DB_GROUP)) or "none")
    if name not in _hosts(groups, DB_GROUP):
        return "%s=%s is not a quant_db host of this inventory (%s)" % (
            option, name, ", ".join(_hosts(groups, DB_GROUP)) or "none")
    return None


def failover_plan(groups, probes, promote_host, force=False):
    """What playbooks/promote.yml does, decided from the probes before any change.

    Returns {primary, promote, fence_stop, fence_mark, repoint, errors, summary}:
      primary     the host that is the primary afterwards (promote_host)
      promote     promote_host is a standby now (false: it already accepts writes, nothing to promote)
      fence_stop  other servers running as a primary: stopped and fenced (only with force)
      fence_mark  stopped, reachable servers without standby.signal (a former primary that could
                  start again as a primary by itself): marked so they start read-only
      repoint     running standbys (besides promote_host) that must stream from promote_host
    """
    errors = _silent_errors(groups, probes)
    missing = _required_host(groups, promote_host, "promote_host")
    if missing:
        return {"primary": None, "promote": False, "fence_stop": [], "fence_mark": [], "repoint": [],
                "errors": [*errors, missing], "summary": describe(groups, probes)}
    me = _probe(probes, promote_host)
    others = [host for host in _hosts(groups, DB_GROUP) if host != promote_host]
    if not me["reachable"] or not me["running"]:
        errors.append("promote_host %s is %s: only a running standby can be promoted (start it, or promote "
                      "another replica)" % (promote_host, _state(me)))
    primaries = current_primaries(groups, probes, exclude=promote_host)
    if primaries and not force:
        verb, them = ("runs", "it") if len(primaries) == 1 else ("run", "them")
        errors.append("%s still %s as a primary and reachable: promoting %s would give two primaries that both "
                      "accept writes. Stop %s first, or add -e promote_force=yes to stop %s and keep %s "
                      "from starting as a primary again"
                      % (", ".join(primaries), verb, promote_host, them, them, them))
    fence_mark = [host for host in others if _probe(probes, host)["reachable"]
                  and not _probe(probes, host)["running"] and not _probe(probes, host)["fenced"]]
    repoint = [host for host in others if _probe(probes, host)["running"] and _probe(probes, host)["standby"]]
    return {
        "primary": promote_host,
        "promote": bool(me["running"] and me["standby"]),
        "fence_stop": primaries if force else [],
        "fence_mark": fence_mark,
        "repoint": repoint,
        "errors": errors,
        "summary": describe(groups, probes),
    }


def rejoin_plan(groups, probes, rejoin_host):
    """What playbooks/rejoin.yml does, decided from the probes before any change.

    Returns {primary, rejoin, errors, summary}: primary is the one running primary other than
    rejoin_host; rejoin is false when rejoin_host already streams as a standby (nothing to do).
    """
    errors = _silent_errors(groups, probes)
    missing = _required_host(groups, rejoin_host, "rejoin_host")
    if missing:
        return {"primary": None, "rejoin": False, "errors": [*errors, missing], "summary": describe(groups, probes)}
    me = _probe(probes, rejoin_host)
    primaries = current_primaries(groups, probes, exclude=rejoin_host)
    if not me["reachable"]:
        errors.append("rejoin_host %s is unreachable: rejoin needs its data directory" % rejoin_host)
    if not primaries:
        if me["running"] and not me["standby"]:
            errors.append("rejoin_host %s is the current primary (the only server that accepts writes): rejoin "
                          "turns a former primary into a replica; promote another host first "
                          "(playbooks/promote.yml) or name the former primary" % rejoin_host)
        else:
            errors.append("no running primary among the quant_db hosts (%s): %s has nothing to follow; promote a "
                          "replica first (playbooks/promote.yml)"
                          % ("; ".join(describe(groups, probes)), rejoin_host))
    elif len(primaries) > 1:
        errors.append("%s all run as primaries: fence all but one (playbooks/promote.yml -e promote_force=yes) "
                      "before rejoining %s" % (", ".join(primaries), rejoin_host))
    streaming = me["running"] and me["standby"] and me["receiver"] == "streaming"
    return {
        "primary": primaries[0] if len(primaries) == 1 else None,
        "rejoin": not streaming,
        "errors": errors,
        "summary": describe(groups, probes),
    }


def conninfo(params):
    """A libpq connection string from a dict (empty values left out), every value single-quoted
    with backslashes and quotes escaped, so a password may hold spaces or quotes."""
    parts = []
    for key, value in params.items():
        if value is None or value == "":
            continue
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        parts.append("%s='%s'" % (key, text))
    return " ".join(parts)


def pgpass_line(user, password):
    """The replication role's line of a libpq password file: any host, port and database (a
    standby follows whichever server is promoted), with ':' and '\\' escaped as libpq reads them."""
    if not user or not password:
        raise ValueError("a password file line needs the replication user and its password")
    if any(ch in str(user) + str(password) for ch in "\r\n"):
        raise ValueError("the replication user or password holds a line break, which a libpq password file cannot hold")
    fields = [str(user), str(password)]
    return "*:*:*:" + ":".join(f.replace("\\", "\\\\").replace(":", "\\:") for f in fields)

