#!/usr/bin/python
"""Ansible module pg_benchmark: query latency percentiles against targets."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_benchmark
short_description: Run named PostgreSQL queries N times and report p50/p95/max/mean against targets
description:
  - Each query runs I(warmup) times unmeasured, then I(runs) times measured (execute plus fetch
    of every row), each run in its own read-only transaction.
  - A query passes when its I(pass_metric) latency is at most its C(target_ms).
  - A query that raises is a failed result with its error (it is never dropped from the report).
  - For queries over target the C(EXPLAIN (ANALYZE, BUFFERS)) plan is returned.
version_added: "1.0.0"
author: Quant platform team
extends_documentation_fragment: [quant_postgres]
options:
  queries:
    description: The queries.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Unique name shown in reports.
        type: str
        required: true
      sql:
        description: The SQL; psycopg2 placeholders (C(%(ticker)s)) take values from C(params).
        type: str
        required: true
      target_ms:
        description: Latency target in milliseconds.
        type: float
        required: true
      params:
        description: Query parameters (dict for named, list for positional placeholders).
        type: raw
  runs:
    description: Measured runs per query.
    type: int
    default: 5
  warmup:
    description: Unmeasured runs per query before measuring.
    type: int
    default: 1
  pass_metric:
    description: Which statistic must be within the target.
    type: str
    choices: [p50, p95, max, mean]
    default: p95
  statement_timeout_ms:
    description: statement_timeout for the session (0 = none); a query hitting it is a failed result.
    type: int
    default: 60000
  read_only:
    description: Run the queries in read-only transactions.
    type: bool
    default: true
  explain_slow:
    description: Keep the EXPLAIN (ANALYZE, BUFFERS) text of queries over target.
    type: bool
    default: true
  fail_on_failure:
    description: Fail the task when any query errors or misses its target (default only reports).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Queries run read-only, so check mode measures the same way.
seealso:
  - module: migration_validate
"""

EXAMPLES = r"""
- name: Benchmark the platform queries
  pg_benchmark:
    login_user: postgres
    login_unix_socket: /var/run/postgresql
    db: quant_platform
    runs: 5
    queries:
      - name: "OHLCV: 10-year data (single ticker)"
        sql: >-
          SELECT date, open, high, low, close, volume FROM ohlcv_data
          WHERE ticker = %(ticker)s AND region = %(region)s AND timeframe = 'D'
          AND date >= CURRENT_DATE - INTERVAL '10 years' ORDER BY date DESC
        params: {ticker: "005930", region: KR}
        target_ms: 1000
  register: bench
"""

RETURN = r"""
results:
  description: One entry per query, in the given order.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Query name., type: str}
    status: {description: C(ok) or C(error)., type: str}
    passed: {description: Whether the pass_metric latency is within target (false on error)., type: bool}
    target_ms: {description: Target., type: float}
    p50_ms: {description: Median latency (null on error)., type: float}
    p95_ms: {description: 95th percentile latency, linear interpolation (null on error)., type: float}
    max_ms: {description: Slowest run (null on error)., type: float}
    mean_ms: {description: Mean latency (null on error)., type: float}
    rows: {description: Rows returned by the last run., type: int}
    samples_ms: {description: Every measured run., type: list}
    error: {description: The error of a failed query., type: str, returned: on error}
    plan: {description: EXPLAIN (ANALYZE, BUFFERS) text., type: str, returned: when over target}
summary:
  description: Counts of queries, passed, failed, errors and slow.
  returned: always
  type: dict
  sample: {queries: 13, passed: 12, failed: 1, errors: 0, slow: 1}
seconds:
  description: Duration of the whole benchmark.
  returned: always
  type: float
"""


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bench.pg_bench import BenchmarkError, run
from ansible.module_utils.core.postgres import module_params, postgres_common_argument_spec, run_or_fail


def argument_spec():
    spec = postgres_common_argument_spec()
    spec.update(
        queries=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            sql=dict(type="str", required=True),
            target_ms=dict(type="float", required=True),
            params=dict(type="raw"),
        )),
        runs=dict(type="int", default=5),
        warmup=dict(type="int", default=1),
        pass_metric=dict(type="str", choices=["p50", "p95", "max", "mean"], default="p95",
                         no_log=False),  # a latency statistic; "pass" in the name is not a password
        statement_timeout_ms=dict(type="int", default=60000),
        read_only=dict(type="bool", default=True),
        explain_slow=dict(type="bool", default=True),
        fail_on_failure=dict(type="bool", default=False),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module_params(module)
    result = run_or_fail(module, "benchmark", lambda: run(params), expected=(BenchmarkError,))
    bad = [r["name"] for r in result["results"] if not r["passed"]]
    if module.params["fail_on_failure"] and bad:
        module.fail_json(msg="benchmark: %d query(ies) failed or missed the target: %s" % (len(bad), ", ".join(bad)),
                         changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
