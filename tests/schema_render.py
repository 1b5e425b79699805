"""Render roles/quant_database/templates/schema/*.sql.j2 outside Ansible (for tests).

Uses the role's own defaults and the same Jinja options as Ansible's template
lookup (trim_blocks, the trailing newline kept), and the policy resolution the
role's filter applies, so the checksums match what the role records.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml
from ansible.module_utils.schema.timescale_policies import resolve_policies

ROLE = Path(__file__).resolve().parent.parent / "roles" / "quant_database"
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
CATALOG = VARS["__quant_database_schema_catalog"]


def role_defaults():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def render_steps(edition, version="2.19.3", **overrides):
    """[{step, name, sql, earlier_checksums, transitions}] for an edition, as the role's schema.yml builds them."""
    defaults = role_defaults()
    variables = {k: v for k, v in defaults.items() if not str(v).startswith("{{")}
    variables.update(overrides)
    variables["__quant_database_policies"] = resolve_policies(
        version, variables["quant_database_refresh_policies"], variables["quant_database_compression"],
        on_conflict=variables.get("quant_database_policy_conflict", "adjust"))
    # keep_trailing_newline: Ansible's template lookup keeps it, and the checksum covers it.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
                             trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    steps = []
    for item in CATALOG:
        name = item["name"] + ("_" + edition if item.get("per_edition") else "")
        sql = env.get_template("schema/%04d_%s.sql.j2" % (item["step"], name)).render(**variables)
        transitions = {
            "%s_%s" % (item["name"], source): env.get_template("schema/%04d_%s_%s_to_%s.sql.j2" % (
                item["step"], item["name"], source, edition)).render(**variables)
            for source in (item.get("transitions") or {}).get(edition, [])}
        steps.append({"step": item["step"], "name": name, "sql": sql,
                      "earlier_checksums": item.get("earlier_checksums", []), "transitions": transitions})
    return steps


def _role_name(template, names):
    """A role entry of vars/main.yml ('{{ quant_database_app_user }}') with the test's role names."""
    return jinja2.Template(template, undefined=jinja2.StrictUndefined).render(
        quant_database_owner=names["owner"], quant_database_app_user=names["app"],
        quant_database_readonly_user=names["readonly"])


def grant_statements(db, owner, app, readonly):
    """The SQL equivalent of tasks/privileges.yml, built from the role's vars/main.yml.

    Run as a superuser after the schema steps, in that order, as the role does.
    """
    names = {"owner": owner, "app": app, "readonly": readonly}
    stmts = ['REVOKE ALL ON DATABASE "%s" FROM PUBLIC' % db]
    for g in VARS["__quant_database_database_grants"]:
        stmts.append('GRANT %s ON DATABASE "%s" TO "%s"' % (g["privs"], db, _role_name(g["role"], names)))
    stmts.append('GRANT USAGE ON SCHEMA public TO "%s", "%s"' % (app, readonly))
    for g in VARS["__quant_database_grants"]:
        kind = "TABLES" if g["type"] == "table" else "SEQUENCES"
        role = _role_name(g["role"], names)
        stmts.append('GRANT %s ON ALL %s IN SCHEMA public TO "%s"' % (g["privs"], kind, role))
        stmts.append('ALTER DEFAULT PRIVILEGES FOR ROLE "%s" IN SCHEMA public GRANT %s ON %s TO "%s"'
                     % (owner, g["privs"], kind, role))
    for obj in VARS["__quant_database_app_owned"]:
        kind = {"matview": "MATERIALIZED VIEW", "table": "TABLE", "view": "VIEW"}[obj["type"]]
        stmts.append('ALTER %s public.%s OWNER TO "%s"' % (kind, obj["name"], app))
    return stmts
