#!/usr/bin/python
"""Ansible module quant_meta: read and record the migration's bookkeeping (schema quant_meta)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: quant_meta
short_description: Read and record the migration's bookkeeping in schema quant_meta
description:
  - The one way tasks reach the bookkeeping tables of schema C(quant_meta); their definitions and SQL
    live in C(module_utils/core/quant_meta.py) and C(module_utils/core/quant_meta_actions.py)
    (docs/CONVENTIONS.md, "quant_meta - the bookkeeping schema").
  - C(progress) - the checkpoints of the load in progress (updated within the last day), each with
    the rows done (copied, rejected or duplicate), the percent of the source's rows and rows per second.
    Before the migration created C(quant_meta) the list is empty.
  - C(refresh_status) - whether the aggregates are due a refresh - a load recorded in
    C(quant_meta.migration_checkpoints) completed after the last refresh recorded in
    C(quant_meta.aggregate_refreshes), or none was ever recorded. Never due before a migration ran.
  - C(record_refresh) - records that the aggregates were refreshed now, creating
    C(quant_meta.aggregate_refreshes) the first time.
  - C(reset) - forgets the checkpoints and rejects of the source tables in I(tables), so the next
    migration loads them from the start. The migration does the same itself with C(truncate).
extends_documentation_fragment: [quant_postgres]
options:
  action:
    description: What to read or record.
    type: str
    required: true
    choices: [progress, refresh_status, record_refresh, reset]
  tables:
    description:
      - Source table names (as in C(quant_meta.migration_checkpoints.table_name)) whose bookkeeping
        I(action=reset) forgets. Required for C(reset), refused for the other actions.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    details:
      - C(progress) and C(refresh_status) only read and run in check mode too, reporting C(changed=false).
      - C(record_refresh) and C(reset) report what they would change and write nothing.
      - A database that does not exist yet holds no bookkeeping - nothing to show, nothing due.
seealso:
  - module: sqlite_migrate
author: quant platform team
"""

EXAMPLES = r"""
- name: Read the progress of the tables being loaded
  quant_meta:
    action: progress
    db: quant_platform
  register: progress

- name: Ask whether the aggregates are due a refresh
  quant_meta:
    action: refresh_status
    db: quant_platform
  register: refresh

- name: Record the refresh
  quant_meta:
    action: record_refresh
    db: quant_platform
  when: refresh.due

- name: Forget two tables' checkpoints and rejects (the next migration reloads them)
  quant_meta:
    action: reset
    db: quant_platform
    tables: [ohlcv_data, tickers]
"""

RETURN = r"""
progress:
  description: C(progress) - one item per checkpoint, oldest load first.
  returned: action is progress
  type: list
  elements: dict
  sample:
    - {table_name: ohlcv_data, status: running, source_rows: 120000, done_rows: 30000, percent: 25.0,
       rows_per_second: 41000}
due:
  description: C(refresh_status) - whether the aggregates need a refresh.
  returned: action is refresh_status
  type: bool
reason:
  description: C(refresh_status) - why they do or do not.
  returned: action is refresh_status
  type: str
  sample: no aggregate refresh was recorded yet
last_load:
  description: C(refresh_status) - when the newest completed load finished (ISO 8601), or null.
  returned: action is refresh_status
  type: str
last_refresh:
  description: C(refresh_status) - when the last recorded refresh happened (ISO 8601), or null.
  returned: action is refresh_status
  type: str
refreshed_at:
  description: C(record_refresh) - the recorded time (ISO 8601); null in check mode.
  returned: action is record_refresh
  type: str
checkpoints:
  description: C(reset) - checkpoints forgotten (or that would be, in check mode).
  returned: action is reset
  type: int
rejects:
  description: C(reset) - rejects forgotten (or that would be, in check mode).
  returned: action is reset
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.core.postgres import module_params, postgres_common_argument_spec, run_or_fail
from ansible.module_utils.core.quant_meta_actions import ACTIONS, QuantMetaError, run


def main():
    argument_spec = postgres_common_argument_spec()
    argument_spec.update(
        action=dict(type="str", required=True, choices=list(ACTIONS)),
        tables=dict(type="list", elements="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module_params(module)
    action = params["action"]
    result = run_or_fail(module, "quant_meta %s" % action,
                         lambda: run(params, action, params["tables"], check_mode=module.check_mode),
                         expected=(QuantMetaError,))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
