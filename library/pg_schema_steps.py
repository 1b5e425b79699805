#!/usr/bin/python
"""Ansible module pg_schema_steps: apply numbered, checksummed schema steps once."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_schema_steps
short_description: Apply numbered SQL schema steps once and detect edited ones
description:
  - Applies each step of I(steps) that is not yet recorded in C(quant_meta.schema_steps), in step order,
    each in its own transaction, and records the sha256 checksum of its statements (comment lines
    and blank lines do not count, so correcting a step's comments is not an edit).
  - A recorded step whose statements now hash differently, or that is recorded under another name
    (for example another TimescaleDB edition variant) that its I(transitions) do not cover, is an error
    that names the step. A covered variant change runs the transition once and records the new variant.
  - A checksum recorded in an older form (the whole text's sha256, or one of the step's
    I(earlier_checksums)) is accepted and re-recorded in the current form.
  - A session advisory lock serializes concurrent runs against the same database.
extends_documentation_fragment: [quant_postgres]
options:
  steps:
    description:
      - The desired steps, already rendered (the role uses C(lookup('ansible.builtin.template', ...))).
    type: list
    elements: dict
    required: true
    suboptions:
      step:
        description: Step number; new steps must be numbered after every applied one.
        type: int
        required: true
      name:
        description: Step name; edition-dependent steps carry the edition in it.
        type: str
        required: true
      sql:
        description: The rendered SQL of the step.
        type: str
        required: true
      earlier_checksums:
        description:
          - Checksums of earlier texts of this step that did the same thing, accepted for a database that
            recorded one of them (the whole-text checksum of a version whose comments have changed since).
            Say next to each why it is equivalent.
        type: list
        elements: str
        default: []
      transitions:
        description:
          - SQL that turns a database where this step was applied as another variant (the key, that variant's
            recorded name, e.g. C(aggregates_apache)) into this variant. It runs once, in its own transaction,
            and the step is then recorded under its new name and checksum. Without a transition from the
            recorded variant, a variant change is an error that names the step.
        type: dict
        default: {}
  session_role:
    description:
      - Role to C(SET ROLE) to while applying, so the created objects belong to it.
    type: str
attributes:
  check_mode:
    support: full
    details: Reports the steps that would be applied; a missing database means every step is pending.
seealso:
  - module: community.postgresql.postgresql_query
author: quant platform team
"""

EXAMPLES = r"""
- name: Apply the schema steps as the owner role
  pg_schema_steps:
    db: quant_platform
    login_user: postgres
    login_unix_socket: /var/run/postgresql
    session_role: quant_owner
    steps:
      - step: 1
        name: tables
        sql: "{{ lookup('ansible.builtin.template', 'schema/0001_tables.sql.j2') }}"
"""

RETURN = r"""
applied:
  description: Steps applied by this run (empty in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{step: 1, name: tables, checksum: 9f86d08...}]
pending:
  description: Steps that would be applied (check mode); empty after a real run.
  returned: always
  type: list
  elements: dict
rerecorded:
  description: Applied steps whose recorded checksum was in an older form and was replaced by the current one
    (in check mode, would be).
  returned: always
  type: list
  elements: dict
transitioned:
  description: Applied steps turned into their current variant by a transition (in check mode, would be); each
    names the variant it came C(from).
  returned: always
  type: list
  elements: dict
  sample: [{step: 4, name: aggregates_community, from: aggregates_apache, checksum: 1c0e2f9...}]
recorded:
  description: Step numbers recorded in quant_meta.schema_steps after this run.
  returned: always
  type: list
  elements: int
"""


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.core.postgres import module_params, postgres_common_argument_spec, run_or_fail
from ansible.module_utils.schema.steps import SchemaStepError, run


def main():
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        steps=dict(type="list", elements="dict", required=True, options=dict(
            step=dict(type="int", required=True),
            name=dict(type="str", required=True),
            sql=dict(type="str", required=True),
            earlier_checksums=dict(type="list", elements="str", default=[]),
            transitions=dict(type="dict", default={}),
        )),
        session_role=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module_params(module)
    result = run_or_fail(module, "applying schema steps",
                         lambda: run(params, params["steps"], check_mode=module.check_mode,
                                     session_role=params["session_role"]),
                         expected=(SchemaStepError,))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
