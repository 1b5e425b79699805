"""module_utils/platform_plan/topology.py: one primary, its replicas, and who
writes; every broken topology is one clear error (issue 17)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.platform_plan.topology import (
    conninfo,
    count_differences,
    failover_plan,
    rejoin_plan,
    slot_name,
    topology,
)
from file_module import load_file

ROOT = Path(__file__).resolve().parents[2]
_PATH = ROOT / "plugins" / "filter" / "platform.py"
_filters = load_file("quant_filter_platform_topology", _PATH)
FILTERS = _filters.FilterModule().filters()


def groups(quant_db, primary=None, replica=None, **extra):
    out = {"all": list(quant_db), "ungrouped": [], "quant_db": list(quant_db)}
    if primary is not None:
        out["db_primary"] = list(primary)
    if replica is not None:
        out["db_replica"] = list(replica)
    out.update(extra)
    return out


def test_dev_inventory_one_host_without_groups_writes_there():
    topo = topology(groups(["localhost"], dev=["localhost"]))
    assert topo == {"primary": None, "replicas": [], "writers": ["localhost"], "replicated": False, "errors": []}


def test_primary_alone_is_the_writer():
    topo = topology(groups(["db1"], primary=["db1"]))
    assert topo["primary"] == "db1"
    assert topo["writers"] == ["db1"]
    assert not topo["replicated"]
    assert topo["errors"] == []


def test_primary_with_replicas():
    topo = topology(groups(["db1", "db2", "db3"], primary=["db1"], replica=["db2", "db3"]))
    assert topo["primary"] == "db1"
    assert topo["replicas"] == ["db2", "db3"]
    assert topo["writers"] == ["db1"]
    assert topo["replicated"]
    assert topo["errors"] == []


def test_empty_replica_group_is_fine():
    topo = topology(groups(["db1"], primary=["db1"], replica=[]))
    assert topo["errors"] == [] and not topo["replicated"]


def test_two_primaries():
    errors = topology(groups(["db1", "db2"], primary=["db1", "db2"]))["errors"]
    assert len(errors) == 1
    assert "db_primary must hold exactly one host, it holds 2 (db1, db2)" in errors[0]


def test_replica_without_primary():
    for inventory in (groups(["db2"], replica=["db2"]), groups(["db2"], primary=[], replica=["db2"])):
        topo = topology(inventory)
        assert any("db_replica holds db2 but db_primary is empty or missing" in e for e in topo["errors"])
        assert topo["writers"] == []


def test_host_in_both_groups():
    errors = topology(groups(["db1", "db2"], primary=["db1"], replica=["db1", "db2"]))["errors"]
    assert errors == ["db1 is in both db_primary and db_replica: a host is either the primary or a replica"]


def test_group_host_outside_quant_db():
    errors = topology(groups(["db1"], primary=["db1"], replica=["db9"]))["errors"]
    assert errors == ["db9 in db_replica is not under quant_db: put db_replica inside quant_db (children) "
                      "so every stage sees it"]


def test_database_host_in_neither_group_when_there_is_a_primary():
    errors = topology(groups(["db1", "db2", "db3"], primary=["db1"], replica=["db2"]))["errors"]
    assert len(errors) == 1
    assert errors[0].startswith("db3 is in quant_db but in neither db_primary nor db_replica")


def test_replica_as_target_of_a_writing_stage():
    inventory = groups(["db1", "db2"], primary=["db1"], replica=["db2"])
    assert topology(inventory, ["db1"])["errors"] == []
    errors = topology(inventory, ["db1", "db2"])["errors"]
    assert len(errors) == 1
    assert errors[0].startswith("db2 is a replica (db_replica) but a target of a stage that writes")
    assert "from db1 by streaming replication" in errors[0]


def test_several_errors_are_all_reported():
    errors = topology(groups(["a", "b", "c"], primary=["a", "b"], replica=["b", "c"]))["errors"]
    assert any("two primaries" in e for e in errors)
    assert any("b is in both" in e for e in errors)


def test_slot_names_are_valid_identifiers_and_distinct_hosts_may_collide():
    assert slot_name("quant-db-02.example.internal") == "quant_replica_quant_db_02_example_internal"
    assert len(slot_name("x" * 200)) == 63
    errors = topology(groups(["p", "db-2", "db.2"], primary=["p"], replica=["db-2", "db.2"]))["errors"]
    assert errors == ["replicas db-2, db.2 would share the replication slot quant_replica_db_2: rename one of them"]


def test_count_differences():
    primary = {"public.a": 3, "public.b": 5, "public.c": 1}
    assert count_differences(dict(primary), primary) == []
    assert count_differences({"public.a": "3", "public.b": 4, "public.d": 2}, primary) == [
        "public.b: 4 rows on the replica, 5 on the primary",
        "public.c: missing on the replica (1 rows on the primary)",
        "public.d: on the replica only (2 rows)",
    ]


def test_filters_are_registered_and_wire_the_functions():
    assert {"quant_topology", "quant_replica_slot", "quant_replica_count_differences"} <= set(FILTERS)
    inventory = groups(["db1", "db2"], primary=["db1"], replica=["db2"])
    assert FILTERS["quant_topology"](inventory)["replicas"] == ["db2"]
    assert FILTERS["quant_topology"](inventory, None)["errors"] == []
    assert FILTERS["quant_replica_slot"]("db2") == "quant_replica_db2"
    differences = FILTERS["quant_replica_count_differences"]({"t": 1}, {"t": 2})
    assert differences == ["t: 1 rows on the replica, 2 on the primary"]


@pytest.mark.parametrize("inventory", ["dev", "prod"])
def test_shipped_inventories_are_sound(inventory):
    out = subprocess.run([str(Path(sys.executable).with_name("ansible-inventory")), "-i", "inventories/" + inventory,
                          "--list", "--vault-password-file", "inventories/prod/vault-password.example"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    data = yaml.safe_load(out.stdout)
    names = {name: value.get("hosts", []) for name, value in data.items() if isinstance(value, dict)}

    def members(group):
        hosts = list(names.get(group, []))
        for child in data.get(group, {}).get("children", []):
            hosts += members(child)
        return hosts

    inv = {name: members(name) for name in ("quant_db", "db_primary", "db_replica") if name in data}
    topo = topology(inv)
    assert topo["errors"] == []
    if inventory == "prod":
        assert topo["primary"] == "quant-db-01.example.internal"
        assert topo["replicas"] == ["quant-db-02.example.internal"]
    else:
        assert topo["writers"] == ["localhost"] and topo["replicas"] == []


# --- failover and rejoin (issue 17, item 2) ----------------------------------------------------------

TWO = groups(["db1", "db2"], primary=["db1"], replica=["db2"])
THREE = groups(["db1", "db2", "db3"], primary=["db1"], replica=["db2", "db3"])
PRIMARY = {"reachable": True, "running": True, "standby": False}
STREAMING = {"reachable": True, "running": True, "standby": True, "receiver": "streaming", "fenced": True}
STOPPED = {"reachable": True, "running": False}
FENCED = {"reachable": True, "running": False, "fenced": True}
GONE = {"reachable": False}


def test_promote_a_streaming_replica_when_the_primary_is_gone():
    plan = failover_plan(TWO, {"db1": GONE, "db2": STREAMING}, "db2")
    assert plan["errors"] == []
    assert plan["primary"] == "db2" and plan["promote"]
    assert plan["fence_stop"] == [] and plan["fence_mark"] == [] and plan["repoint"] == []
    assert plan["summary"] == ["db1: unreachable", "db2: standby (streaming)"]


def test_promote_refuses_while_the_old_primary_runs_unless_forced():
    probes = {"db1": PRIMARY, "db2": STREAMING}
    plan = failover_plan(TWO, probes, "db2")
    assert len(plan["errors"]) == 1
    assert "db1 still runs as a primary" in plan["errors"][0] and "promote_force=yes" in plan["errors"][0]
    forced = failover_plan(TWO, probes, "db2", force=True)
    assert forced["errors"] == [] and forced["fence_stop"] == ["db1"] and forced["promote"]


def test_promote_marks_a_stopped_former_primary_and_repoints_the_other_replicas():
    plan = failover_plan(THREE, {"db1": STOPPED, "db2": STREAMING, "db3": STREAMING}, "db2")
    assert plan["errors"] == []
    assert plan["fence_mark"] == ["db1"] and plan["fence_stop"] == [] and plan["repoint"] == ["db3"]


def test_promote_again_changes_nothing():
    plan = failover_plan(TWO, {"db1": FENCED, "db2": PRIMARY}, "db2")
    assert plan["errors"] == []
    assert not plan["promote"] and plan["fence_mark"] == [] and plan["fence_stop"] == []


def test_promote_host_must_be_given_and_be_a_quant_db_host():
    assert "promote_host is required" in failover_plan(TWO, {}, "")["errors"][0]
    assert "promote_host=db9 is not a quant_db host" in failover_plan(TWO, {}, "db9")["errors"][0]


def test_promote_host_must_be_a_running_server():
    plan = failover_plan(TWO, {"db1": GONE, "db2": STOPPED}, "db2")
    assert plan["errors"] == ["promote_host db2 is stopped: only a running standby can be promoted (start it, "
                              "or promote another replica)"]
    assert "is unreachable" in failover_plan(TWO, {"db1": PRIMARY, "db2": GONE}, "db2")["errors"][0]


def test_rejoin_a_fenced_former_primary():
    plan = rejoin_plan(TWO, {"db1": FENCED, "db2": PRIMARY}, "db1")
    assert plan == {"primary": "db2", "rejoin": True, "errors": [],
                    "summary": ["db1: stopped (fenced)", "db2: primary"]}


def test_rejoin_of_a_streaming_standby_changes_nothing():
    plan = rejoin_plan(TWO, {"db1": STREAMING, "db2": PRIMARY}, "db1")
    assert plan["errors"] == [] and not plan["rejoin"] and plan["primary"] == "db2"


def test_rejoin_host_that_is_the_current_primary_is_refused():
    plan = rejoin_plan(TWO, {"db1": PRIMARY, "db2": STREAMING}, "db1")
    assert len(plan["errors"]) == 1 and "db1 is the current primary" in plan["errors"][0]


def test_rejoin_needs_exactly_one_running_primary():
    none = rejoin_plan(TWO, {"db1": FENCED, "db2": STOPPED}, "db1")
    assert "no running primary" in none["errors"][0]
    two = rejoin_plan(THREE, {"db1": FENCED, "db2": PRIMARY, "db3": PRIMARY}, "db1")
    assert "db2, db3 all run as primaries" in two["errors"][0] and two["primary"] is None


def test_rejoin_host_must_be_reachable_and_known():
    assert "is unreachable" in rejoin_plan(TWO, {"db1": GONE, "db2": PRIMARY}, "db1")["errors"][0]
    assert "rejoin_host is required" in rejoin_plan(TWO, {}, None)["errors"][0]


SILENT = {"reachable": True, "running": False, "silent": True, "error": "FATAL:  no pg_hba.conf entry"}


def test_a_running_server_that_does_not_answer_is_never_taken_for_stopped():
    # db1 may still be a primary taking writes: no promotion, forced or not, and no fencing mark.
    for force in (False, True):
        plan = failover_plan(TWO, {"db1": SILENT, "db2": STREAMING}, "db2", force=force)
        assert len(plan["errors"]) == 1, plan["errors"]
        assert plan["errors"][0].startswith("db1 runs a PostgreSQL server (pg_ctl status) that did not answer "
                                            "the probe (FATAL:  no pg_hba.conf entry)")
    assert "db1: running but not answering (FATAL:  no pg_hba.conf entry)" in plan["summary"]
    rejoin = rejoin_plan(TWO, {"db1": STREAMING, "db2": SILENT}, "db1")
    assert any(error.startswith("db2 runs a PostgreSQL server") for error in rejoin["errors"])
    named = failover_plan(TWO, {"db1": SILENT}, "db9")["errors"]
    assert len(named) == 2 and "promote_host=db9" in named[1]


def test_conninfo_quotes_every_value_and_leaves_out_empty_ones():
    text = conninfo({"host": "10.0.0.1", "port": 5432, "password": "it's a \\secret", "sslmode": ""})
    assert text == "host='10.0.0.1' port='5432' password='it\\'s a \\\\secret'"


def test_failover_filters_are_registered():
    assert {"quant_failover_plan", "quant_rejoin_plan", "quant_replica_conninfo"} <= set(FILTERS)
    assert FILTERS["quant_failover_plan"](TWO, {"db2": STREAMING}, "db2", "yes")["promote"]


def test_pgpass_line_escapes_what_libpq_unescapes():
    from ansible.module_utils.platform_plan.topology import pgpass_line

    assert pgpass_line("replicator", "plain") == "*:*:*:replicator:plain"
    assert pgpass_line("replicator", "a:b\\c") == "*:*:*:replicator:a\\:b\\\\c"
    for user, password in (("replicator", ""), ("", "x"), ("replicator", "two\nlines")):
        with pytest.raises(ValueError, match="password file") as err:
            pgpass_line(user, password)
        assert "two" not in str(err.value)  # never the secret itself
