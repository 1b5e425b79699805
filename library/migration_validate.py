#!/usr/bin/python
"""Ansible module migration_validate: prove the SQLite -> PostgreSQL migration lossless."""

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_validate
short_description: Compare the SQLite source with PostgreSQL and inspect TimescaleDB and PostgreSQL health
description:
  - Runs categories of read-only checks and returns every check with its status
    (C(pass), C(fail), C(skip)), severity (C(critical), C(warning), C(info)) and detail.
  - C(reconciliation) - per table, source rows = copied + rejected + duplicates from
    C(quant_meta.migration_checkpoints), and both databases agree with that accounting.
    C(duplicates accounted TABLE) checks every row recorded as a duplicate on its own - read
    back from SQLite and converted like the migration did, its key must equal a PostgreSQL
    row on the target's unique key under SQL NULL semantics (a key holding NULL equals
    nothing unless the index is NULLS NOT DISTINCT; a table without a unique key loaded
    from the source has no duplicates).
  - C(content) - per table and column, count, NULL count, min, max, sum and an
    order-independent 64-bit hash of (key, value) pairs, computed while streaming both
    sides after the same normalization (the SQLite side goes through the migration's own
    mapping and value converter). When fingerprints differ, a keyed comparison names the
    first missing, extra or changed keys and the differing columns. Duplicates are left
    out of the source side by the migration's rules (found again, not read from its
    records) - the first row is kept, or the latest rowid for I(on_conflict=update) tables.
  - Source rows are named (in findings, and matched with the migration's rejects and duplicates) by their
    rowid, read by whichever of C(rowid), C(_rowid_), C(oid) the table does not declare as a column, as
    sqlite_migrate reads it; a column named C(rowid) is compared like any other. A table without a reachable
    rowid (WITHOUT ROWID, or all three names declared) is read in primary-key order, its rows named by their
    1-based position in that order; one declaring all three names without a primary key fails the critical
    check C(mapping TABLE).
  - C(integrity) - NULL keys, duplicate keys, orphans against C(tickers(ticker, region)).
  - C(quality) - price rules on OHLCV tables and ticker formats per region (severity
    I(quality_severity)).
  - C(timescaledb) - edition, hypertables and chunk interval, aggregates complete (equal to
    a direct GROUP BY), and on the Community edition compression, policies and jobs
    (skipped with the reason on the Apache edition).
  - On the Community edition also C(compression state TARGET) - chunks total and compressed,
    bytes before and after compression and their ratio (C(data)); a warning when the target
    has a compression policy and chunks older than its C(compress_after) are uncompressed.
    And C(aggregate freshness NAME) - the continuous aggregate's watermark against the newest
    bucket of its source (the lag); a warning when it lags more than the refresh policy's
    C(end_offset) + one bucket + C(schedule_interval). Both are skipped on the Apache edition.
  - C(health) - cache hit ratios, unused indexes, dead tuples, connections, settings
    pending a restart.
  - The module fails only when a critical check fails, naming those checks.
version_added: "1.0.0"
author: Quant platform team
extends_documentation_fragment: [quant_postgres]
options:
  src:
    description:
      - Path of the SQLite source file on the managed host (read by C(reconciliation) and C(content)).
      - Default the path the migration recorded in C(quant_meta.migration_checkpoints).
    type: path
  mapping:
    description:
      - The migration mapping, the same value as the sqlite_migration role's C(sqlite_migration_mapping)
        (dict of source table -> C(target), C(columns), C(drop), C(derive), C(transforms), C(keys),
        C(on_conflict), C(order_by), C(references)). A list of items each naming its C(source) table is accepted too.
    type: raw
    required: true
  legacy_schema:
    description:
      - The sqlite_migrate option of the same name (the same value). When set, every SQLite table outside
        I(mapping) is validated like a mapped table in that schema (reconciliation, content, integrity; its
        orphan checks are warnings, since SQLite never enforced those foreign keys), a WITHOUT ROWID table
        too (compared in primary-key order, see the description).
      - When empty, each such table is a failed C(warning) check C(unmapped table NAME) with its row count.
      - Only without I(tables), and only with the C(reconciliation) or C(content) category.
    type: str
    default: ""
  on_conflict:
    description:
      - The migration's module-wide I(on_conflict) (the sqlite_migration role's C(sqlite_migration_on_conflict)),
        which says which of several source rows with one key PostgreSQL holds. C(update) - the latest (highest
        rowid); otherwise the first. A table's C(on_conflict) in I(mapping) overrides it.
    type: str
    choices: [error, skip, update]
    default: skip
  float4_rounding:
    description:
      - The migration's I(float4_rounding) (the sqlite_migration role's C(sqlite_migration_float4_rounding)).
        C(accept) - a SQLite REAL in a C(real) (float4) column compares equal to its float4 rounding, the value
        the migration stored; C(reject) - only an exact value does (the migration rejected the others).
    type: str
    choices: [reject, accept]
    default: reject
  tables:
    description: Source tables to validate (default every table of I(mapping)); unknown names are an error.
    type: list
    elements: str
  checks:
    description: Categories to run.
    type: list
    elements: str
    choices: [reconciliation, content, integrity, quality, timescaledb, health]
    default: [reconciliation, content, integrity, quality, timescaledb, health]
  severity_overrides:
    description:
      - "Severity by check name, glob pattern on the name, or category,
        e.g. C({health: info, 'content etf_*': warning})."
    type: dict
    default: {}
  quality_severity:
    description: Severity of the C(quality) checks.
    type: str
    choices: [critical, warning, info]
    default: warning
  report_path:
    description: Write the result as JSON to this path on the managed host (not in check mode).
    type: path
  expected_chunk_interval:
    description: Chunk interval every expected hypertable must have.
    type: str
    default: 1 month
  expected_hypertables:
    description: Hypertables that must exist (default C(ohlcv_data), C(factor_scores)).
    type: list
    elements: str
  expected_aggregates:
    description:
      - Aggregates that must exist and be complete, each a dict with C(name), C(bucket_column),
        C(width) and optional C(source) (default C(ohlcv_data)), C(time_column) (C(date)) and
        C(where) (dict column -> value). Default the platform's monthly, quarterly and yearly views.
    type: list
    elements: dict
  expected_compression:
    description: Hypertables and aggregates that must have compression and a compression policy (Community only).
    type: list
    elements: str
  max_differences:
    description: How many differing keys to name per table and kind.
    type: int
    default: 10
  parallel:
    description: Fingerprint the SQLite side in a forked child process while PostgreSQL is read.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Every check is read-only; in check mode the JSON report is not written.
notes:
  - Needs numpy and psycopg2 on the managed host.
  - Naive source timestamps are UTC, as in the migration's value converter.
seealso:
  - module: sqlite_migrate
  - module: pg_benchmark
"""

EXAMPLES = r"""
- name: Validate the migration
  migration_validate:
    login_user: postgres
    login_unix_socket: /var/run/postgresql
    db: quant_platform
    src: /srv/quant/spock_local.db
    mapping: "{{ sqlite_migration_mapping }}"
    report_path: /var/tmp/quant/validation.json
  register: validation

- name: Only the fast structural checks, health as info
  migration_validate:
    db: quant_platform
    mapping: "{{ sqlite_migration_mapping }}"
    checks: [integrity, timescaledb, health]
    severity_overrides:
      health: info
"""

RETURN = r"""
checks:
  description: Every check that ran.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Check name, e.g. C(content ohlcv_data)., type: str}
    category: {description: reconciliation, content, integrity, quality, timescaledb or health., type: str}
    severity: {description: critical, warning or info., type: str}
    status: {description: pass, fail or skip., type: str}
    detail: {description: What was found (numbers, first differing keys and columns, skip reason)., type: str}
    table: {description: Table the check is about, if any., type: str}
    data: {description: Structured figures (fingerprints, counts), when the check has any., type: dict}
tables:
  description:
    - Source tables validated, in order; with I(legacy_schema) set, the SQLite tables outside I(mapping) follow
      the mapped ones. Without it, those tables appear as C(unmapped table NAME) warning checks (C(data.rows)).
  returned: always
  type: list
  elements: str
summary:
  description: Counts of checks.
  returned: always
  type: dict
  sample: {total: 40, passed: 36, failed: 1, warnings: 1, notices: 1, skipped: 11, critical_failures: 0}
seconds:
  description: Wall-clock duration of the validation.
  returned: always
  type: float
failed_checks:
  description: Names of the failed critical checks.
  returned: always
  type: list
  elements: str
report_path:
  description: Where the JSON report was written.
  returned: when report_path was given and not in check mode
  type: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.core.postgres import module_params, postgres_common_argument_spec, run_or_fail

try:
    from ansible.module_utils.core.fingerprint import HAS_NUMPY
    from ansible.module_utils.validate.runner import ValidationError, run
except ImportError:  # pragma: no cover - psycopg2 missing: reported below
    HAS_NUMPY = False
    run = ValidationError = None
    IMPORT_ERROR = traceback.format_exc()
else:
    IMPORT_ERROR = None

CATEGORIES = ["reconciliation", "content", "integrity", "quality", "timescaledb", "health"]


def argument_spec():
    spec = postgres_common_argument_spec()
    spec.update(
        src=dict(type="path"),
        mapping=dict(type="raw", required=True),
        on_conflict=dict(type="str", choices=["error", "skip", "update"], default="skip"),
        float4_rounding=dict(type="str", choices=["reject", "accept"], default="reject"),
        tables=dict(type="list", elements="str"),
        checks=dict(type="list", elements="str", choices=CATEGORIES, default=list(CATEGORIES)),
        severity_overrides=dict(type="dict", default={}),
        quality_severity=dict(type="str", choices=["critical", "warning", "info"], default="warning"),
        report_path=dict(type="path"),
        expected_chunk_interval=dict(type="str", default="1 month"),
        expected_hypertables=dict(type="list", elements="str"),
        expected_aggregates=dict(type="list", elements="dict"),
        expected_compression=dict(type="list", elements="str"),
        max_differences=dict(type="int", default=10),
        parallel=dict(type="bool", default=True),
        legacy_schema=dict(type="str", default=""),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module_params(module)
    if not HAS_NUMPY or run is None:
        module.fail_json(msg=missing_required_lib("numpy"), exception=IMPORT_ERROR)
    result = run_or_fail(module, "migration validation", lambda: run(params, check_mode=module.check_mode),
                         expected=(ValidationError,))
    if result["summary"]["critical_failures"]:
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
