"""Filter `quant_pg_hba_rules`: the pg_hba rules the postgresql role writes.

    postgresql_hba_entries | quant_pg_hba_rules(postgresql_app_networks, ssl=postgresql_ssl,
                                                method=..., databases=..., users=...)

1. The entries of postgresql_hba_entries, in order.
2. One rule per application network (postgresql_app_networks), appended:
   `hostssl` when TLS is on, `host` when it is off; each network is checked
   and written in CIDR form (10.20.0.7 -> 10.20.0.7/32, 10.20.0.7/24 -> 10.20.0.0/24).
3. One `replication` rule per replica address (postgresql_replication_addresses,
   a single host each: 10.20.0.12 -> 10.20.0.12/32) for the replication user
   only, after the application rules: `hostssl` when TLS is on, `host` when off;
   then one rule per address for the same user to the `postgres` database, where
   pg_rewind reads its source (playbooks/rejoin.yml).
4. With TLS on, nothing but loopback travels in clear text: every `host` rule
   whose address is not loopback (127.0.0.0/8, ::1, localhost, samehost)
   becomes `hostssl`, and a non-loopback `hostnossl` rule is an error unless
   its method is `reject`.

Pure and self-contained (no I/O), so tests/unit/test_pg_hba_filter.py covers
it without a server. Errors name the bad input.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

# Addresses whose connections never leave the host.
LOCAL_NAMES = ("localhost", "samehost")
APP_COMMENT = "application network (postgresql_app_networks)"
REPLICATION_COMMENT = "streaming replica (postgresql_replication_addresses)"
REWIND_COMMENT = "pg_rewind of a former primary (postgresql_replication_addresses)"


class HbaError(ValueError):
    """A rule or network the role must not write; the message names it."""


def _network(address, netmask=None):
    """ip_network of an address (CIDR, bare IP, or IP + netmask), or None for names."""
    text = str(address).strip()
    if netmask:
        text = "%s/%s" % (text, str(netmask).strip())
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def is_local(rule):
    """True when the rule only matches connections from the server itself."""
    address = rule.get("address")
    if address is None or str(address).strip() == "":
        return False
    if str(address).strip().lower() in LOCAL_NAMES:
        return True
    network = _network(address, rule.get("netmask"))
    return bool(network is not None and network.is_loopback)


def app_network(value):
    """One postgresql_app_networks item as a CIDR string; HbaError when it is not a network."""
    if not isinstance(value, str) or not value.strip():
        raise HbaError("postgresql_app_networks: %r is not an IP network (expected CIDR like 10.20.0.0/24)"
                       % (value,))
    network = _network(value)
    if network is None:
        raise HbaError("postgresql_app_networks: '%s' is not an IP network (expected CIDR like 10.20.0.0/24)"
                       % value.strip())
    return str(network)


def replica_address(value):
    """One postgresql_replication_addresses item as a single-host CIDR; HbaError otherwise."""
    network = _network(value) if isinstance(value, str) and value.strip() else None
    if network is None or network.num_addresses != 1:
        raise HbaError("postgresql_replication_addresses: %r is not one host's IP address (expected e.g. 10.20.0.12; "
                       "set quant_private_address for each db_replica host)" % (value,))
    return str(network)


def replication_rules(addresses, user, *, ssl=False, method="scram-sha-256"):
    """One `replication` rule per replica address, for the replication user only."""
    if addresses is None:
        addresses = []
    if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
        raise HbaError("postgresql_replication_addresses must be a list of addresses, got %r" % (addresses,))
    if addresses and not str(user or "").strip():
        raise HbaError("postgresql_replication_user must name the replication role")
    return (_network_rules(addresses, replica_address, "replication", user, ssl, method, REPLICATION_COMMENT)
            + _network_rules(addresses, replica_address, "postgres", user, ssl, method, REWIND_COMMENT))


def _network_rules(values, parse, databases, users, ssl, method, comment):  # noqa: PLR0917
    """One rule per distinct network parse() makes of values, in their order."""
    rules, seen = [], set()
    for value in values:
        cidr = parse(value)
        if cidr in seen:
            continue
        seen.add(cidr)
        rules.append({
            "contype": "hostssl" if ssl else "host",
            "databases": str(databases),
            "users": str(users),
            "address": cidr,
            "method": str(method),
            "comment": comment,
        })
    return rules


def hba_rules(entries, app_networks=None, *, ssl=False, method="scram-sha-256", databases="all", users="all",
              replication_addresses=None, replication_user="replicator"):
    """The complete, ordered list of pg_hba rules (dicts for community.postgresql.postgresql_pg_hba)."""
    if entries is None:
        entries = []
    if not isinstance(entries, (list, tuple)):
        raise HbaError("postgresql_hba_entries must be a list of rules, got %s" % type(entries).__name__)
    if app_networks is None:
        app_networks = []
    if isinstance(app_networks, str) or not isinstance(app_networks, (list, tuple)):
        raise HbaError("postgresql_app_networks must be a list of networks, got %r" % (app_networks,))

    rules = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise HbaError("postgresql_hba_entries item %d must be a rule (a mapping), got %r" % (position, entry))
        rule = dict(entry)
        contype = str(rule.get("contype", ""))
        if ssl and not is_local(rule):
            if contype == "host":
                rule["contype"] = "hostssl"
            elif contype == "hostnossl" and str(rule.get("method", "")) != "reject":
                raise HbaError(
                    "postgresql_hba_entries item %d (hostnossl %s, method %s) allows clear-text connections "
                    "from beyond this host while postgresql_ssl is on: use hostssl, or method reject"
                    % (position, rule.get("address", "?"), rule.get("method", "md5")))
        rules.append(rule)

    rules.extend(_network_rules(app_networks, app_network, databases, users, ssl, method, APP_COMMENT))
    rules.extend(replication_rules(replication_addresses, replication_user, ssl=ssl, method=method))
    return rules


def quant_pg_hba_rules(entries, app_networks=None, *, ssl=False, method="scram-sha-256", databases="all",
                       users="all", replication_addresses=None, replication_user="replicator"):
    try:
        return hba_rules(entries, app_networks, ssl=boolean(ssl, strict=True), method=method,
                         databases=databases, users=users, replication_addresses=replication_addresses,
                         replication_user=replication_user)
    except (HbaError, TypeError) as exc:
        raise AnsibleFilterError("quant_pg_hba_rules: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"quant_pg_hba_rules": quant_pg_hba_rules}
