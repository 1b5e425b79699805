"""Check collector: severity overrides, summary, failure message."""

from __future__ import annotations

import pytest
from ansible.module_utils.validate.checks import Results, failure_message
from ansible.module_utils.validate.runner import ValidationError, parse_mapping


def test_overrides_and_summary():
    r = Results({"health": "info", "content etf_*": "warning", "dead tuples": "critical"}, {"quality": "info"})
    r.add("content etf_details", "content", "critical", False, "x", "etf_details")
    r.add("content ohlcv_data", "content", "critical", False, "rows differ", "ohlcv_data")
    r.add("connections", "health", "warning", False)
    r.add("dead tuples", "health", "warning", False)
    r.add("high >= low", "quality", "warning", True)
    r.skip("compression policy ohlcv_data", "timescaledb", "warning", "Apache edition")
    sev = {c.name: c.severity for c in r.checks}
    assert sev == {"content etf_details": "warning", "content ohlcv_data": "critical", "connections": "info",
                   "dead tuples": "critical", "high >= low": "info", "compression policy ohlcv_data": "warning"}
    assert r.summary() == {"total": 6, "passed": 1, "failed": 3, "warnings": 1, "notices": 1, "skipped": 1,
                           "critical_failures": 2}
    msg = failure_message(r.critical_failures())
    assert "content ohlcv_data [ohlcv_data]: rows differ" in msg and "2 critical" in msg


def test_bad_override_and_mapping_shapes():
    with pytest.raises(ValueError):
        Results({"health": "fatal"})
    assert list(parse_mapping([{"source": "tickers", "keys": ["ticker"]}])) == ["tickers"]
    assert parse_mapping({"a": None}) == {"a": {}}
    with pytest.raises(ValidationError):
        parse_mapping([{"keys": []}])
