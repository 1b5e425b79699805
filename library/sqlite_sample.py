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
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
rows:
  description: Rows per table (only when the file was generated).
  returned: changed
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.sample_data import generate


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            scale=dict(type="float", default=0.01),
            seed=dict(type="int", default=20251021),
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
        rows = generate(path, scale=module.params["scale"], seed=module.params["seed"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="generating the sample SQLite file %s: %s" % (path, exc))
    module.exit_json(changed=True, path=path, rows=rows)


if __name__ == "__main__":
    main()
