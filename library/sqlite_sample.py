#!/usr/bin/python
"""Ansible module sqlite_sample: generate the deterministic spock-shaped sample SQLite file."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sqlite_sample
short_description: Generate a deterministic, spock-shaped sample SQLite database
description:
  - Writes the 12 source tables of the quant platform's SQLite file (DDL of the spec, sizes of the spec at
    I(scale=1.0)) with the real data quirks (NULL regions, orphans, tables without region, several fiscal years
    per date, long codes, source timestamps, duplicate keys hidden by NULL, CN/HK tickers that shape-guessing
    misclassifies).
  - The same I(seed) and I(scale) always give the same content. An existing file is kept unless I(force=true),
    so the task is idempotent.
version_added: "1.0.0"
author: Quant platform team
options:
  path:
    description: Where to write the SQLite file (its directory is created).
    type: path
    required: true
  scale:
    description:
      - Size factor for the large tables (1.0 = 18,661 tickers and 926,325 OHLCV rows). Small tables and
        quirks stay.
    type: float
    default: 0.01
  seed:
    description: RNG seed.
    type: int
    default: 20251021
  schema_stage:
    description:
      - Which schema of the platform's SQLite file to write. C(current) is the spec's 12 tables (the
        development and CI sample).
      - The other stages are the schemas a real file can have (app_contract.md section 5), with the
        SQLite-only tables and the key quirks of each (DAILY fundamentals with NULL fiscal_year, repeated
        exchange rates, rows replaced by INSERT OR REPLACE, an orphan ETF, ...). C(init_db) is init_db.py's
        schema; C(fiscal_year) adds migrations/001 and the fiscal_year and financial columns;
        C(fiscal_year_key) rebuilds ticker_fundamentals on (ticker, fiscal_year, period_type);
        C(kis_ohlcv) is that file with the KIS collector's ohlcv_data.
      - An existing file is not regenerated when only this option changes; use I(force=true).
    type: str
    choices: [current, init_db, fiscal_year, fiscal_year_key, kis_ohlcv]
    default: current
  force:
    description: Regenerate even when the file exists.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reports whether the file would be generated; writes nothing.
"""

EXAMPLES = r"""
- name: Generate a 1% sample for development
  sqlite_sample:
    path: /var/lib/quant/sample/spock_local.db
    scale: 0.01

- name: Generate a file at the stage init_db.py leaves it
  sqlite_sample:
    path: /tmp/spock_init_db.db
    schema_stage: init_db
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
rows:
  description: Rows per table (only when the file was generated); every table of the file.
  returned: changed
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.sample.generator import STAGES, generate


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            scale=dict(type="float", default=0.01),
            seed=dict(type="int", default=20251021),
            schema_stage=dict(type="str", default="current", choices=list(STAGES)),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    if module.params["scale"] <= 0:
        module.fail_json(msg="generating the sample: scale must be positive")
    if os.path.exists(path) and not module.params["force"]:
        module.exit_json(changed=False, path=path)
    if module.check_mode:
        module.exit_json(changed=True, path=path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        rows = generate(path, scale=module.params["scale"], seed=module.params["seed"],
                        schema_stage=module.params["schema_stage"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="generating the sample SQLite file %s: %s" % (path, exc))
    module.exit_json(changed=True, path=path, rows=rows)


if __name__ == "__main__":
    main()
