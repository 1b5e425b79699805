"""plugins/filter/pg_hba.py: the pg_hba rules the postgresql role writes
(application networks, TLS-only beyond loopback), and what prod gets."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from file_module import load_file

ROOT = Path(__file__).resolve().parents[2]
_PATH = ROOT / "plugins" / "filter" / "pg_hba.py"
pg_hba = load_file("quant_filter_pg_hba", _PATH)
rules_filter = pg_hba.FilterModule().filters()["quant_pg_hba_rules"]

LOCAL = [
    {"contype": "local", "databases": "all", "users": "all", "method": "peer"},
    {"contype": "host", "databases": "all", "users": "all", "address": "127.0.0.1/32", "method": "scram-sha-256"},
    {"contype": "host", "databases": "all", "users": "all", "address": "::1/128", "method": "scram-sha-256"},
]


def _role_defaults():
    return yaml.safe_load((ROOT / "roles" / "postgresql" / "defaults" / "main.yml").read_text())


def _prod_vars():
    return yaml.safe_load((ROOT / "inventories" / "prod" / "group_vars" / "quant_db" / "main.yml").read_text())


def test_defaults_pass_through_unchanged_without_ssl_or_networks():
    assert rules_filter(LOCAL) == LOCAL
    assert rules_filter(LOCAL, [], ssl=True) == LOCAL


def test_entries_are_not_modified_in_place():
    entries = [{"contype": "host", "databases": "all", "users": "all", "address": "10.0.0.0/8", "method": "md5"}]
    rules_filter(entries, ssl=True)
    assert entries[0]["contype"] == "host"


def test_app_networks_become_hostssl_rules_after_the_entries():
    out = rules_filter(LOCAL, ["10.20.0.0/24", "fd00:20::/64"], ssl=True)
    assert out[:3] == LOCAL
    assert out[3:] == [
        {"contype": "hostssl", "databases": "all", "users": "all", "address": "10.20.0.0/24",
         "method": "scram-sha-256", "comment": pg_hba.APP_COMMENT},
        {"contype": "hostssl", "databases": "all", "users": "all", "address": "fd00:20::/64",
         "method": "scram-sha-256", "comment": pg_hba.APP_COMMENT},
    ]


def test_app_networks_without_ssl_are_plain_host_rules():
    (rule,) = rules_filter([], ["10.20.0.0/24"], ssl=False)
    assert rule["contype"] == "host"


def test_app_rule_method_databases_and_users():
    (rule,) = rules_filter([], ["10.20.0.0/24"], ssl=True, method="md5", databases="quant_platform",
                           users="quant_user,quant_readonly")
    assert (rule["method"], rule["databases"], rule["users"]) == ("md5", "quant_platform", "quant_user,quant_readonly")


@pytest.mark.parametrize(("given", "written"), [
    ("10.20.0.7", "10.20.0.7/32"),
    ("10.20.0.7/24", "10.20.0.0/24"),
    (" 192.168.1.0/24 ", "192.168.1.0/24"),
    ("2001:db8::1", "2001:db8::1/128"),
])
def test_app_networks_are_written_in_cidr_form(given, written):
    (rule,) = rules_filter([], [given], ssl=True)
    assert rule["address"] == written


def test_duplicate_app_networks_are_written_once():
    out = rules_filter([], ["10.20.0.0/24", "10.20.0.9/24"], ssl=True)
    assert [r["address"] for r in out] == ["10.20.0.0/24"]


@pytest.mark.parametrize("bad", ["10.20.0.0/33", "db.example.com", "", "all", 42, None])
def test_a_bad_app_network_is_named(bad):
    with pytest.raises(AnsibleFilterError, match=r"postgresql_app_networks: .*not an IP network"):
        rules_filter([], [bad], ssl=True)


def test_app_networks_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="must be a list of networks"):
        rules_filter([], "10.20.0.0/24", ssl=True)


@pytest.mark.parametrize("address", ["10.0.0.0/8", "0.0.0.0/0", "::/0", "all", "samenet", ".example.com",
                                     "db.example.com", "192.168.1.5/32"])
def test_with_ssl_a_non_local_host_rule_becomes_hostssl(address):
    entry = {"contype": "host", "databases": "all", "users": "all", "address": address, "method": "scram-sha-256"}
    (rule,) = rules_filter([entry], ssl=True)
    assert rule == dict(entry, contype="hostssl")
    (plain,) = rules_filter([entry], ssl=False)
    assert plain["contype"] == "host"


@pytest.mark.parametrize("address", ["127.0.0.1/32", "127.0.0.0/8", "::1/128", "::1", "localhost", "samehost",
                                     "LOCALHOST"])
def test_with_ssl_loopback_host_rules_stay_host(address):
    entry = {"contype": "host", "databases": "all", "users": "all", "address": address, "method": "scram-sha-256"}
    assert rules_filter([entry], ssl=True) == [entry]


def test_address_with_a_separate_netmask():
    loopback = {"contype": "host", "databases": "all", "users": "all", "address": "127.0.0.1",
                "netmask": "255.255.255.255", "method": "md5"}
    private = dict(loopback, address="10.1.0.0", netmask="255.255.0.0")
    assert [r["contype"] for r in rules_filter([loopback, private], ssl=True)] == ["host", "hostssl"]


def test_with_ssl_hostnossl_beyond_loopback_is_an_error_unless_reject():
    clear = {"contype": "hostnossl", "databases": "all", "users": "all", "address": "10.0.0.0/8", "method": "md5"}
    with pytest.raises(AnsibleFilterError, match=r"item 1 \(hostnossl 10.0.0.0/8, method md5\).*postgresql_ssl"):
        rules_filter([clear], ssl=True)
    reject = dict(clear, method="reject")
    assert rules_filter([reject], ssl=True) == [reject]
    assert rules_filter([clear], ssl=False) == [clear]


def test_local_and_gss_rules_are_left_alone():
    entries = [{"contype": "local", "databases": "all", "users": "all", "method": "peer"},
               {"contype": "hostgssenc", "databases": "all", "users": "all", "address": "10.0.0.0/8",
                "method": "gss"}]
    assert rules_filter(entries, ssl=True) == entries


@pytest.mark.parametrize(("ssl", "expected"), [("yes", "hostssl"), ("false", "host"), (1, "hostssl"), (0, "host")])
def test_ssl_flag_accepts_ansible_booleans(ssl, expected):
    (rule,) = rules_filter([], ["10.0.0.0/8"], ssl=ssl)
    assert rule["contype"] == expected


def test_ssl_flag_rejects_non_booleans():
    with pytest.raises(AnsibleFilterError, match="not a valid boolean"):
        rules_filter([], [], ssl="maybe")


@pytest.mark.parametrize("entries", ["host all all 10.0.0.0/8 md5", ["host all all"]])
def test_entries_must_be_a_list_of_rules(entries):
    with pytest.raises(AnsibleFilterError, match="postgresql_hba_entries"):
        rules_filter(entries, [], ssl=True)


def test_role_defaults_keep_tcp_on_loopback_and_trust_nobody():
    defaults = _role_defaults()
    assert defaults["postgresql_ssl"] is False
    assert defaults["postgresql_app_networks"] == []
    out = rules_filter(defaults["postgresql_hba_entries"], defaults["postgresql_app_networks"], ssl=True)
    tcp = [r for r in out if r["contype"] != "local"]
    assert tcp and all(pg_hba.is_local(r) for r in tcp)
    assert all(r["method"] != "trust" for r in out)


def test_prod_gets_tls_only_rules_for_its_app_network():
    prod, defaults = _prod_vars(), _role_defaults()
    assert prod["postgresql_ssl"] is True
    assert prod["postgresql_app_networks"], "prod must name its application network"
    entries = prod.get("postgresql_hba_entries", defaults["postgresql_hba_entries"])
    out = rules_filter(entries, prod["postgresql_app_networks"], ssl=prod["postgresql_ssl"],
                       method=defaults["postgresql_password_encryption"])
    remote = [r for r in out if r["contype"] != "local" and not pg_hba.is_local(r)]
    assert remote, "prod has no rule for its application network"
    assert all(r["contype"] == "hostssl" and r["method"] == "scram-sha-256" for r in remote)
    assert all(r["method"] != "trust" for r in out if r["contype"] != "local")


def test_replication_rules_one_per_replica_for_the_replication_user_only():
    rules = rules_filter(LOCAL, ["10.20.0.0/24"], ssl=True, replication_addresses=["10.20.0.12", "10.20.0.13/32",
                                                                                   "10.20.0.12"],
                         replication_user="replicator")
    replication = [r for r in rules if r["databases"] == "replication"]
    assert replication == [
        {"contype": "hostssl", "databases": "replication", "users": "replicator", "address": address,
         "method": "scram-sha-256", "comment": pg_hba.REPLICATION_COMMENT}
        for address in ("10.20.0.12/32", "10.20.0.13/32")]
    # After the application rules.
    assert rules.index(replication[0]) > max(i for i, r in enumerate(rules) if r.get("comment") == pg_hba.APP_COMMENT)


def test_each_replication_address_may_also_reach_postgres_for_pg_rewind():
    rules = rules_filter(LOCAL, [], ssl=True, replication_addresses=["10.20.0.12", "10.20.0.13"])
    rewind = [r for r in rules if r.get("comment") == pg_hba.REWIND_COMMENT]
    assert rewind == [
        {"contype": "hostssl", "databases": "postgres", "users": "replicator", "address": address,
         "method": "scram-sha-256", "comment": pg_hba.REWIND_COMMENT}
        for address in ("10.20.0.12/32", "10.20.0.13/32")]


def test_replication_rules_are_host_without_tls_and_absent_without_replicas():
    rules = rules_filter(LOCAL, [], replication_addresses=["10.88.0.5"])
    assert rules[-1]["contype"] == "host" and rules[-1]["address"] == "10.88.0.5/32"
    assert rules_filter(LOCAL, []) == rules_filter(LOCAL, [], replication_addresses=[])


@pytest.mark.parametrize("bad", ["", "10.20.0.0/24", "replica-host", None])
def test_replication_address_must_be_one_host(bad):
    with pytest.raises(AnsibleFilterError, match=r"postgresql_replication_addresses: .* quant_private_address"):
        rules_filter(LOCAL, [], replication_addresses=[bad])


def test_replication_addresses_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="must be a list"):
        rules_filter(LOCAL, [], replication_addresses="10.20.0.12")
