"""The connection contract (docs/CONVENTIONS.md, "Connection contract"; issue 19, item 1).

roles/quant_common decides where PostgreSQL lives from the platform plan and exports `quant_pg`;
every role that connects reads it through `__<role>_connection` (its vars/main.yml) in
module_defaults. These tests render the roles' own Jinja (quant_common's defaults and its set_fact,
each role's defaults and vars) with the project's `quant_platform` filter, per platform of the
matrix, so what they check is what Ansible would compute on that host, without the host.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from file_module import load_file
from jinja2.nativetypes import NativeEnvironment

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
_FILTERS = load_file("quant_filter_platform_contract", ROOT / "plugins/filter/platform.py")

# Roles that connect, and whether the connection is theirs to override (client roles) or the
# server's own (postgresql, timescaledb act on the server the plan describes).
CLIENT_ROLES = {"quant_database": "quant_database", "sqlite_migration": "sqlite_migration",
                "migration_validation": "migration_validation", "pg_backup": "pg_backup"}
SERVER_ROLES = ("postgresql", "timescaledb")

# (facts, connecting user) -> expected quant_pg, per platform of the matrix.
PLATFORMS = {
    "debian12-x86_64": ({"os_family": "Debian", "distribution": "Debian", "distribution_version": "12",
                         "architecture": "x86_64", "user_id": "root"},
                        {"admin_os_user": "postgres", "login_user": "postgres",
                         "login_unix_socket": "/var/run/postgresql"}),
    "debian11-aarch64": ({"os_family": "Debian", "distribution": "Debian", "distribution_version": "11.9",
                          "architecture": "aarch64", "user_id": "root"},
                         {"admin_os_user": "postgres", "login_user": "postgres",
                          "login_unix_socket": "/var/run/postgresql"}),
    "ubuntu2204-x86_64": ({"os_family": "Debian", "distribution": "Ubuntu", "distribution_version": "22.04",
                           "architecture": "x86_64", "user_id": "ubuntu"},
                          {"admin_os_user": "postgres", "login_user": "postgres",
                           "login_unix_socket": "/var/run/postgresql"}),
    "ubuntu2404-aarch64": ({"os_family": "Debian", "distribution": "Ubuntu", "distribution_version": "24.04",
                            "architecture": "aarch64", "user_id": "root"},
                           {"admin_os_user": "postgres", "login_user": "postgres",
                            "login_unix_socket": "/var/run/postgresql"}),
    "macos14-arm64": ({"os_family": "Darwin", "distribution": "MacOSX", "distribution_version": "14.5",
                       "architecture": "arm64", "user_id": "alice"},
                      {"admin_os_user": "alice", "login_user": "alice", "login_unix_socket": "/tmp"}),
    "macos13-x86_64": ({"os_family": "Darwin", "distribution": "MacOSX", "distribution_version": "13.6",
                        "architecture": "x86_64", "user_id": "bob"},
                       {"admin_os_user": "bob", "login_user": "bob", "login_unix_socket": "/tmp"}),
}
# quant_common's inputs that decide the connection (its other defaults serve check_vars).
CONNECTION_INPUTS = {"quant_common_pg_version", "quant_common_homebrew_user", "quant_common_cluster_name",
                     "quant_common_port", "quant_common_login_user", "quant_common_login_unix_socket"}
# The shared inventory values (group_vars/all) every entry point sees.
INVENTORY = {"postgresql_version": 15, "quant_db_name": "quant_platform"}


def env():
    e = NativeEnvironment()
    e.filters.update(_FILTERS.FilterModule().filters())
    return e


def render(value, context):
    """One role variable as Ansible templates it (strings only; nested dicts/lists item by item)."""
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, str) and "{{" in value:
        return env().from_string(value).render(**context)
    return value


def load(path):
    return yaml.safe_load(path.read_text()) or {}


def quant_pg(facts, **inventory):
    """quant_pg as roles/quant_common computes it: its defaults, then its set_fact (tasks/connection.yml)."""
    context = {**INVENTORY, **inventory, "ansible_facts": facts}
    for name, value in load(ROLES / "quant_common/defaults/main.yml").items():
        if name in CONNECTION_INPUTS and name not in inventory:
            context[name] = render(value, context)
    (task,) = [t for t in load(ROLES / "quant_common/tasks/connection.yml") if "ansible.builtin.set_fact" in t]
    for name, value in task.get("vars", {}).items():
        context[name] = render(value, context)
    return render(task["ansible.builtin.set_fact"]["quant_pg"].strip(), context)


def role_connection(role, pg, **inventory):
    """What the role's module_defaults give every task: __<role>_connection, from its defaults."""
    context = {**INVENTORY, **inventory, "quant_pg": pg}
    for name, value in load(ROLES / role / "defaults/main.yml").items():
        if name not in inventory and name.startswith(role + "_") and ("login" in name or name.endswith("_port")):
            context[name] = render(value, context)
    connection = load(ROLES / role / "vars/main.yml")["__%s_connection" % role]
    return {k: render(v, context) for k, v in connection.items()}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_quant_pg_is_the_platform_plan(platform):
    facts, expected = PLATFORMS[platform]
    pg = quant_pg(facts)
    assert {k: pg[k] for k in expected} == expected
    assert pg["login_port"] == 5432
    assert pg["pg_version"] == 15
    # The whole plan travels with it: the postgresql role installs the server where clients connect.
    assert pg["plan"]["socket_dir"] == pg["login_unix_socket"]
    assert pg["plan"]["admin_db_user"] == pg["login_user"]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@pytest.mark.parametrize("role", [*sorted(CLIENT_ROLES), *SERVER_ROLES])
def test_every_role_connects_as_quant_pg(platform, role):
    facts, _expected = PLATFORMS[platform]
    pg = quant_pg(facts)
    assert role_connection(role, pg) == {"login_user": pg["login_user"], "login_unix_socket": pg["login_unix_socket"],
                                         "login_port": 5432}


def test_macos_superuser_is_the_homebrew_user_not_the_connecting_one():
    facts, _ = PLATFORMS["macos14-arm64"]
    pg = quant_pg(facts, postgresql_homebrew_user="brew")
    assert (pg["login_user"], pg["admin_os_user"], pg["login_unix_socket"]) == ("brew", "brew", "/tmp")
    assert pg["plan"]["homebrew_prefix"] == "/opt/homebrew"
    assert quant_pg(PLATFORMS["macos13-x86_64"][0])["plan"]["homebrew_prefix"] == "/usr/local"


def test_the_inventory_port_moves_the_server_and_every_client():
    pg = quant_pg(PLATFORMS["debian12-x86_64"][0], postgresql_port=5433)
    assert pg["login_port"] == 5433
    for role in [*CLIENT_ROLES, *SERVER_ROLES]:
        assert role_connection(role, pg)["login_port"] == 5433, role


def test_a_server_outside_the_plan_is_named_once_for_every_role():
    """The throw-away test cluster: postgresql_admin_user / postgresql_socket_dir, set as inventory or extra vars."""
    pg = quant_pg(PLATFORMS["debian12-x86_64"][0], postgresql_admin_user="tester",
                  postgresql_socket_dir="/tmp/cluster", postgresql_port=55432)
    assert (pg["login_user"], pg["login_unix_socket"], pg["login_port"]) == ("tester", "/tmp/cluster", 55432)
    for role in [*CLIENT_ROLES, *SERVER_ROLES]:
        assert role_connection(role, pg) == {"login_user": "tester", "login_unix_socket": "/tmp/cluster",
                                             "login_port": 55432}, role


@pytest.mark.parametrize("role", sorted(CLIENT_ROLES))
def test_a_client_role_override_changes_that_role_only(role):
    pg = quant_pg(PLATFORMS["ubuntu2204-x86_64"][0])
    mine = role_connection(role, pg, **{role + "_login_user": "other", role + "_port": 6543,
                                        role + "_login_unix_socket": "/srv/sock"})
    assert mine == {"login_user": "other", "login_unix_socket": "/srv/sock", "login_port": 6543}
    for other in CLIENT_ROLES:
        if other != role:
            assert role_connection(other, pg)["login_user"] == "postgres", other


def test_an_unsupported_platform_is_an_error_naming_it():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="unsupported operating system 'Fedora"):
        quant_pg({"os_family": "RedHat", "distribution": "Fedora", "distribution_version": "40",
                  "architecture": "x86_64", "user_id": "root"})
