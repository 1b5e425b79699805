"""Render roles/quant_database/templates/schema/*.sql.j2 outside Ansible (for tests).

Uses the role's own defaults and the same Jinja options as Ansible's template
lookup (trim_blocks), and the policy resolution the role's filter applies.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml
from ansible.module_utils.timescale_policies import resolve_policies

ROLE = Path(__file__).resolve().parent.parent / "roles" / "quant_database"
CATALOG = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__quant_database_schema_catalog"]


def role_defaults():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def render_steps(edition, version="2.19.3", **overrides):
    """[{step, name, sql}] for an edition, as the role's schema.yml builds them."""
    defaults = role_defaults()
    variables = {k: v for k, v in defaults.items() if not str(v).startswith("{{")}
    variables.update(overrides)
    variables["__quant_database_policies"] = resolve_policies(
        version, variables["quant_database_refresh_policies"], variables["quant_database_compression"],
        on_conflict=variables.get("quant_database_policy_conflict", "adjust"))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    steps = []
    for item in CATALOG:
        name = item["name"] + ("_" + edition if item.get("per_edition") else "")
        sql = env.get_template("schema/%04d_%s.sql.j2" % (item["step"], name)).render(**variables)
        steps.append({"step": item["step"], "name": name, "sql": sql})
    return steps
