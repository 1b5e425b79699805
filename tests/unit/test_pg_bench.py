"""pg_bench: percentiles and query validation (no server)."""

from __future__ import annotations

import pytest
from ansible.module_utils.bench.pg_bench import BenchmarkError, percentile, validate_queries


def test_percentile_linear_interpolation():
    assert percentile([5], 95) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 50) == 2.5  # order does not matter
    assert percentile([1, 2, 3, 4, 5], 50) == 3.0
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)
    assert percentile([10, 20], 0) == 10.0 and percentile([10, 20], 100) == 20.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_validate_queries():
    out = validate_queries([{"name": "a", "sql": "SELECT 1;", "target_ms": "100"}])
    assert out == [{"name": "a", "sql": "SELECT 1", "target_ms": 100.0, "params": None}]
    with pytest.raises(BenchmarkError, match="used twice"):
        validate_queries([{"name": "a", "sql": "x", "target_ms": 1}] * 2)
    with pytest.raises(BenchmarkError, match="target_ms"):
        validate_queries([{"name": "a", "sql": "x", "target_ms": "fast"}])
    with pytest.raises(BenchmarkError, match="empty"):
        validate_queries([])
