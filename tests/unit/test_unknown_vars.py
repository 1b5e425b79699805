"""plugins/filter/unknown_vars.py: misspelled role variables are found and
the closest known name is suggested; the inventories use no unknown names."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from file_module import load_file

ROOT = Path(__file__).resolve().parents[2]
_PATH = ROOT / "plugins" / "filter" / "unknown_vars.py"
unknown_vars = load_file("quant_filter_unknown_vars", _PATH)
FILTERS = unknown_vars.FilterModule().filters()
unknown = FILTERS["quant_unknown_role_vars"]
report = FILTERS["quant_unknown_vars_report"]

KNOWN = ["postgresql_listen_addresses", "postgresql_port", "postgresql_version", "postgresql_admin_user"]
GUARDED = ["postgresql", "timescaledb", "quant_database", "sqlite_migration", "migration_validation", "pg_backup"]


def test_filters_registered():
    assert {"quant_unknown_role_vars", "quant_unknown_vars_report", "quant_closest_var",
            "quant_spec_option_names"} <= set(FILTERS)


def test_typo_is_reported():
    names = ["postgresql_listen_adresses", "postgresql_port", "ansible_host"]
    assert unknown(names, "postgresql", KNOWN) == ["postgresql_listen_adresses"]


def test_known_internal_and_other_prefixes_are_ignored():
    names = [*KNOWN, "__postgresql_plan", "timescaledb_version", "quant_db_name", "postgresqlx", "postgresql"]
    assert unknown(names, "postgresql", KNOWN) == []


def test_prefix_needs_the_underscore():
    # quant_database must not claim quant_db_* (shared group_vars) nor quant_databases_x
    assert unknown(["quant_db_name", "quant_databases_x", "quant_database_nmae"], "quant_database",
                   ["quant_database_name"]) == ["quant_database_nmae"]


def test_result_is_sorted_and_unique():
    names = ["postgresql_b", "postgresql_a", "postgresql_b"]
    assert unknown(names, "postgresql", []) == ["postgresql_a", "postgresql_b"]


def test_trailing_underscore_in_prefix_is_accepted():
    assert unknown(["postgresql_x"], "postgresql_", []) == ["postgresql_x"]


@pytest.mark.parametrize("bad", [("postgresql_x", ""), ("postgresql_x", None), ("postgresql_x", "postgresql")])
def test_bad_arguments_raise(bad):
    names, prefix = bad
    with pytest.raises(AnsibleFilterError):
        unknown(names, prefix, [])


def test_report_suggests_the_closest_name():
    assert report(["postgresql_listen_adresses"], KNOWN, "postgresql") == [
        "postgresql: unknown variable postgresql_listen_adresses (did you mean postgresql_listen_addresses?)"]


def test_report_without_a_close_name():
    assert report(["postgresql_zzzzzzzzzzzzzzzzzzzz"], KNOWN, "postgresql") == [
        "postgresql: unknown variable postgresql_zzzzzzzzzzzzzzzzzzzz (no similar variable is known)"]


def test_report_names_what_replaced_a_renamed_variable():
    renamed = {"postgresql_old_name": "postgresql_new_a and postgresql_new_b"}
    assert report(["postgresql_old_name", "postgresql_listen_adresses"], KNOWN, "postgresql", renamed) == [
        "postgresql: postgresql_old_name was replaced by postgresql_new_a and postgresql_new_b",
        "postgresql: unknown variable postgresql_listen_adresses (did you mean postgresql_listen_addresses?)"]
    with pytest.raises(AnsibleFilterError, match="renamed must be a dict"):
        report(["postgresql_old_name"], KNOWN, "postgresql", ["postgresql_old_name"])


def test_renamed_variables_are_really_gone():
    """A name in quant_common's renamed list must not still be an option of its role."""
    renamed = yaml.safe_load((ROOT / "roles" / "quant_common" / "vars" / "main.yml").read_text())
    for name in renamed["__quant_common_renamed"]:
        role = next(r.name for r in (ROOT / "roles").iterdir() if name.startswith(r.name + "_"))
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        assert name not in FILTERS["quant_spec_option_names"](spec)


def test_spec_option_names_cover_every_entry_point():
    spec = yaml.safe_load((ROOT / "roles" / "quant_database" / "meta" / "argument_specs.yml").read_text())
    names = FILTERS["quant_spec_option_names"](spec)
    assert "quant_database_owner_password" in names and "quant_database_port" in names
    assert names == sorted(set(names))
    with pytest.raises(AnsibleFilterError):
        FILTERS["quant_spec_option_names"]({"options": {}})


def _known(role):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    names = FILTERS["quant_spec_option_names"](spec)
    vars_file = ROOT / "roles" / role / "vars" / "main.yml"
    if vars_file.exists():
        names += (yaml.safe_load(vars_file.read_text()) or {}).get("__%s_exported_facts" % role, [])
    return names


@pytest.mark.parametrize("role", GUARDED)
def test_every_role_is_guarded_first(role):
    tasks = yaml.safe_load((ROOT / "roles" / role / "tasks" / "main.yml").read_text())
    first = tasks[0]
    assert first["ansible.builtin.include_role"]["name"] == "quant_common"
    assert first["ansible.builtin.include_role"]["tasks_from"] == "check_vars"
    assert first["vars"]["quant_common_role"] == role
    assert "always" in first["tags"]


@pytest.mark.parametrize("role", GUARDED)
def test_exported_facts_are_the_public_set_facts(role):
    """Every non-internal set_fact name with the role's prefix is listed as exported."""
    exported = set(_known(role)) - set(FILTERS["quant_spec_option_names"](
        yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())))
    set_names = set()

    def walk(tasks):
        for task in tasks or []:
            for key in ("block", "rescue", "always"):
                walk(task.get(key))
            for module in ("ansible.builtin.set_fact", "set_fact"):
                set_names.update(k for k in (task.get(module) or {}) if k != "cacheable")
            register = task.get("register", "")
            if register:
                set_names.add(register)

    for path in (ROOT / "roles" / role / "tasks").glob("*.yml"):
        walk(yaml.safe_load(path.read_text()))
    assert unknown(sorted(set_names), role, exported) == []


def test_inventories_use_no_unknown_role_variables():
    """The shared, dev and prod variables only use names the roles know (no Ansible run: prod is
    never contacted; the vault file is encrypted and holds only vault_* names)."""
    files = [ROOT / "group_vars" / "all" / "main.yml", ROOT / "inventories" / "dev" / "group_vars" / "quant_db.yml",
             ROOT / "inventories" / "prod" / "group_vars" / "quant_db" / "main.yml"]
    provision = yaml.safe_load((ROOT / "playbooks" / "provision.yml").read_text())[0]
    names = list(provision.get("vars", {}))
    for path in files:
        names += list(yaml.safe_load(path.read_text()) or {})
    for role in GUARDED:
        assert unknown(names, role, _known(role)) == [], role
