"""The two entry points (site.yml and playbooks/*.yml run directly) must see
the same variables and connect to PostgreSQL the same way; the prod inventory
must parse with the example vault."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def effective_config(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_NOCOLOR="1")
    out = subprocess.run([ANSIBLE_PLAYBOOK, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout)
    configs = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                msg = res.get("msg", "")
                if isinstance(msg, str) and msg.startswith("quant-config "):
                    configs[host] = json.loads(msg[len("quant-config "):])
    assert configs, "show_config printed nothing"
    return configs


def test_playbook_run_directly_sees_the_same_variables_as_site():
    direct = effective_config("-i", "inventories/dev", "playbooks/show_config.yml")
    via_site = effective_config("-i", "inventories/dev", "site.yml", "--tags", "config")
    assert direct == via_site
    assert direct["localhost"]["postgresql_version"] == 15
    assert direct["localhost"]["quant_db_name"] == "quant_platform"
    assert direct["localhost"]["quant_reports_dir"] == str(ROOT / "reports")
    assert direct["localhost"]["postgresql_ssl"] is False
    assert direct["localhost"]["postgresql_listen_addresses"] == ["localhost"]


def test_prod_inventory_overrides_shared_defaults_and_decrypts_the_example_vault():
    prod = effective_config("-i", "inventories/prod",
                            "--vault-password-file", "inventories/prod/vault-password.example",
                            "playbooks/show_config.yml", "--connection", "local",
                            "-e", "ansible_python_interpreter=" + sys.executable, "-e", "ansible_become=false")
    # The primary and its example replica (issue 17).
    assert set(prod) == {"quant-db-01.example.internal", "quant-db-02.example.internal"}
    for name, address in (("quant-db-01.example.internal", "10.20.0.11"),
                          ("quant-db-02.example.internal", "10.20.0.12")):
        host = prod[name]
        assert host["quant_environment"] == "prod"
        assert host["quant_db_name"] == "quant_platform"
        assert host["postgresql_ssl"] is True
        # localhost and the host's private address (hosts.yml), never all interfaces.
        assert host["postgresql_listen_addresses"] == ["localhost", address]


# --- The connection contract, statically (docs/CONVENTIONS.md, "Connection contract") -----------
# Every role that connects depends on quant_common (which decides quant_pg before the role runs,
# for roles: and include_role alike), every entry point that reaches a connecting task wraps it
# in ONE module_defaults block naming __<role>_connection, and no task spells the connection.
# So each playbook under playbooks/, run on its own, connects exactly as site.yml does.

ROLES = ROOT / "roles"
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))
CONNECTION_ARGS = {"login_user", "login_unix_socket", "login_port", "port", "login", "unix_socket", "login_host"}
# The project's modules that take the connection options (module_utils/core/postgres.py).
PROJECT_DB_MODULES = {
    p.stem for p in (ROOT / "library").glob("*.py") if "postgres_common_argument_spec" in p.read_text()
}
# Database variable of each client role: a nested include_role passes it with the connection.
DATABASE_VAR = {"quant_database": "quant_database_name", "sqlite_migration": "sqlite_migration_db",
                "migration_validation": "migration_validation_db", "pg_backup": "pg_backup_db"}
# community.postgresql modules that edit files and never connect.
FILE_ONLY_MODULES = {"community.postgresql.postgresql_pg_hba"}
TASK_LISTS = ("block", "rescue", "always")
PLAY_TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")


def load_yaml(path):
    return yaml.safe_load(path.read_text()) or []


def walk(tasks, parents=()):
    """(task, enclosing blocks) for every task, blocks included, depth first."""
    for task in tasks or []:
        yield task, parents
        for key in TASK_LISTS:
            yield from walk(task.get(key), (*parents, task))


def db_module(task):
    """The connecting module a task calls, or None."""
    for key in task:
        if key in FILE_ONLY_MODULES:
            continue
        short = key.rsplit(".", 1)[-1] if key.startswith(("ansible.legacy.", "ansible.builtin.")) else key
        if key.startswith("community.postgresql.") or short in PROJECT_DB_MODULES:
            return key
    return None


def covers(module_defaults, module):
    keys = set(module_defaults)
    return module in keys or (module.startswith("community.postgresql.") and "group/community.postgresql.all" in keys)


def included_files(task, tasks_dir):
    """Task files of the same role an include_tasks/import_tasks names (templated names globbed)."""
    for key in ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks"):
        if key in task:
            arg = task[key]
            name = arg["file"] if isinstance(arg, dict) else arg
            yield from sorted(tasks_dir.glob(re.sub(r"\{\{.*?\}\}", "*", name)))


def role_includes(task):
    """(role, tasks_from, vars) of an include_role/import_role task, or None."""
    for key in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
        if key in task:
            return task[key]["name"], task[key].get("tasks_from", "main"), task.get("vars", {})
    return None


def reachable_db_modules(path, seen=None):
    """Connecting modules a task file reaches through include_tasks/import_tasks (same role)."""
    seen = set() if seen is None else seen
    if path in seen:
        return set()
    seen.add(path)
    found = set()
    for task, _parents in walk(load_yaml(path)):
        if db_module(task):
            found.add(db_module(task))
        for inc in included_files(task, path.parent):
            found |= reachable_db_modules(inc, seen)
    return found


def entry_points(role):
    """main plus every tasks_from its argument specs declare or a role/playbook includes."""
    names = {"main"} | set(load_yaml(ROLES / role / "meta" / "argument_specs.yml").get("argument_specs", {}))
    for path in [*ROLES.glob("*/tasks/*.yml"), *PLAYBOOKS]:
        for task, _p in walk_play_or_tasks(path):
            inc = role_includes(task)
            if inc and inc[0] == role:
                names.add(inc[1])
    return sorted(n for n in names if (ROLES / role / "tasks" / (n + ".yml")).exists())


def walk_play_or_tasks(path):
    data = load_yaml(path)
    if path.parent.name == "playbooks" or path.name == "site.yml":
        for play in data:
            for key in PLAY_TASK_LISTS:
                yield from walk(play.get(key))
    else:
        yield from walk(data)


def connecting_roles():
    roles = set()
    for role_dir in sorted(p for p in ROLES.iterdir() if (p / "tasks").is_dir()):
        files = [*role_dir.glob("tasks/*.yml"), *role_dir.glob("handlers/*.yml")]
        if any(db_module(t) for f in files for t, _p in walk(load_yaml(f))):
            roles.add(role_dir.name)
    return roles


def dependencies(role):
    meta = yaml.safe_load((ROLES / role / "meta" / "main.yml").read_text())
    return [d if isinstance(d, str) else d.get("role", d.get("name")) for d in meta.get("dependencies") or []]


def test_every_role_that_connects_depends_on_quant_common():
    roles = connecting_roles()
    assert roles >= {"postgresql", "timescaledb", "quant_database", "sqlite_migration", "migration_validation",
                     "pg_backup"}, roles
    for role in roles:
        assert "quant_common" in dependencies(role), role


def test_no_task_spells_the_connection():
    offenders = []
    for path in sorted([*ROLES.glob("*/tasks/*.yml"), *ROLES.glob("*/handlers/*.yml")]):
        for task, _parents in walk(load_yaml(path)):
            module = db_module(task)
            if module and isinstance(task[module], dict) and CONNECTION_ARGS & set(task[module]):
                offenders.append("%s: %s" % (path.relative_to(ROOT), task.get("name")))
    assert not offenders, "use the role's module_defaults block instead: %s" % offenders


def module_defaults_blocks(role, path, tasks):
    """The blocks of a task file whose module_defaults are the role's connection, by id."""
    wanted = "{{ __%s_connection }}" % role
    blocks = {}
    for task, _parents in walk(tasks):
        md = task.get("module_defaults")
        if md is not None:
            assert "block" in task, "%s: module_defaults on a block only" % path.relative_to(ROOT)
            assert set(md.values()) == {wanted}, "%s: module_defaults must be %s" % (path.relative_to(ROOT), wanted)
            blocks[id(task)] = md
    return blocks


@pytest.mark.parametrize("role", sorted(connecting_roles()))
def test_every_entry_point_that_connects_has_one_module_defaults_block(role):
    for entry in entry_points(role):
        path = ROLES / role / "tasks" / (entry + ".yml")
        modules = reachable_db_modules(path)
        tasks = load_yaml(path)
        blocks = module_defaults_blocks(role, path, tasks)
        if not modules:
            continue
        assert len(blocks) == 1, "%s: one module_defaults block per entry point, found %d" % (path, len(blocks))
        (md,) = blocks.values()
        assert all(covers(md, m) for m in modules), "%s: module_defaults misses %s" % (
            path.relative_to(ROOT), sorted(m for m in modules if not covers(md, m)))
        # Whatever connects (a module, or an include that reaches one) sits inside the block.
        for task, parents in walk(tasks):
            reaches = db_module(task) or any(reachable_db_modules(f) for f in included_files(task, path.parent))
            if reaches and id(task) not in blocks:
                assert any(id(p) in blocks for p in parents), "%s: %s is outside the block" % (path, task.get("name"))


@pytest.mark.parametrize("role", sorted(connecting_roles()))
def test_handlers_that_connect_carry_the_connection(role):
    for path in (ROLES / role / "handlers").glob("*.yml"):
        for task, _parents in walk(load_yaml(path)):
            if db_module(task):
                md = task.get("module_defaults") or {}
                assert covers(md, db_module(task)) and set(md.values()) == {"{{ __%s_connection }}" % role}, path


@pytest.mark.parametrize("role", sorted(connecting_roles()))
def test_the_connection_is_spelled_once_in_the_role_vars(role):
    connection = yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text())["__%s_connection" % role]
    assert set(connection) == {"login_user", "login_unix_socket", "login_port"}
    if role in DATABASE_VAR:  # client roles: the per-role override, defaulting to quant_pg
        defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
        for option, key in (("login_user", "login_user"), ("login_unix_socket", "login_unix_socket"),
                            ("port", "login_port")):
            assert defaults["%s_%s" % (role, option)] == "{{ quant_pg.%s }}" % key, (role, option)
            assert "%s_%s" % (role, option) in connection[key]
    else:  # the server's own roles: quant_pg itself
        assert all("quant_pg." in value for value in connection.values()), role


def test_nested_roles_are_told_where_to_act():
    """An include_role of a connecting entry point passes the database and the connection."""
    roles = connecting_roles()
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        for task, _parents in walk(load_yaml(path)):
            inc = role_includes(task)
            if not inc or inc[0] not in roles or inc[0] not in DATABASE_VAR:
                continue
            target, tasks_from, passed = inc
            if not reachable_db_modules(ROLES / target / "tasks" / (tasks_from + ".yml")):
                continue
            wanted = {DATABASE_VAR[target], target + "_login_user", target + "_login_unix_socket", target + "_port"}
            assert wanted <= set(passed), "%s: include of %s misses %s" % (path, target, sorted(wanted - set(passed)))


def test_no_role_reads_another_roles_files():
    for path in ROLES.rglob("*.yml"):
        assert "role_path }}/.." not in path.read_text(), path


def play_roles(play):
    """(role, entry point) of every role a play runs."""
    used = [((r if isinstance(r, str) else r["role"]), "main") for r in play.get("roles", [])]
    for key in PLAY_TASK_LISTS:
        for task, _parents in walk(play.get(key)):
            inc = role_includes(task)
            if inc:
                used.append(inc[:2])
    return used


def connection_vars(variables):
    names = set(variables or {})
    return {n for n in names if re.search(r"login|_port$|_socket|admin_user|^quant_common_(?!connect$|writes$)", n)}


def site_imports():
    return {Path(p["ansible.builtin.import_playbook"]).name: p for p in load_yaml(ROOT / "site.yml")}


@pytest.mark.parametrize("playbook", [p.name for p in PLAYBOOKS])
def test_each_playbook_on_its_own_connects_as_site(playbook):
    roles = connecting_roles()
    data = load_yaml(ROOT / "playbooks" / playbook)
    imported = site_imports()
    for play in data:
        if "ansible.builtin.import_playbook" in play:
            assert Path(play["ansible.builtin.import_playbook"]).name in imported
            continue
        connects = [(r, e) for r, e in play_roles(play)
                    if r in roles and reachable_db_modules(ROLES / r / "tasks" / (e + ".yml"))]
        for role, _entry in connects:
            assert "quant_common" in dependencies(role), (playbook, role)
        # Nothing at play level changes where it connects (site.yml would differ), and only a
        # play that connects nowhere may turn quant_common off.
        assert not connection_vars(play.get("vars")), (playbook, connection_vars(play.get("vars")))
        if (play.get("vars") or {}).get("quant_common_connect") is False:
            assert not connects, playbook
    # site.yml runs this very file, passing nothing that moves the connection.
    if playbook in imported:
        assert not connection_vars(imported[playbook].get("vars")), playbook


PITR_PASSPHRASE_PLAY = """
- name: Resolve the pgBackRest passphrase
  hosts: quant_db
  gather_facts: false
  tasks:
    - name: Check the passphrase without showing it
      ansible.builtin.assert:
        that: pg_pitr_cipher_passphrase | default('') | length >= 32
        quiet: true
      no_log: true
    - name: Say which hosts encrypt
      ansible.builtin.debug:
        msg: "pitr-encrypted {{ pg_pitr_cipher_passphrase | default('') | length > 0 }}"
"""


def test_prod_maps_the_pgbackrest_passphrase_from_the_vault_and_never_shows_it(tmp_path):
    """vault_pg_pitr_cipher_passphrase (example vault) becomes pg_pitr_cipher_passphrase in prod
    (issue 18); the dev inventory leaves the repository unencrypted."""
    play = tmp_path / "passphrase.yml"
    play.write_text(PITR_PASSPHRASE_PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    vault = ["--vault-password-file", "inventories/prod/vault-password.example"]
    secret = yaml.safe_load(subprocess.run(
        [str(Path(sys.executable).with_name("ansible-vault")), "view", *vault,
         "inventories/prod/group_vars/quant_db/vault.yml"], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True).stdout)["vault_pg_pitr_cipher_passphrase"]
    prod = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "inventories/prod", *vault, str(play), "-v", "--diff",
                           "--connection", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                           "-e", "ansible_become=false"], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    assert prod.returncode == 0, prod.stdout[-3000:]
    assert prod.stdout.count("pitr-encrypted True") == 2
    assert secret not in prod.stdout + prod.stderr
    dev_vars = yaml.safe_load((ROOT / "inventories" / "dev" / "group_vars" / "quant_db.yml").read_text())
    assert "pg_pitr_cipher_passphrase" not in dev_vars  # dev: the role's default, no encryption
