"""Check collector: severity overrides, summary, failure message; the decisions of the Community checks
(compression state, aggregate freshness) and their wiring."""

from __future__ import annotations

import pytest
from ansible.module_utils.validate import timescale_health as th
from ansible.module_utils.validate.checks import Results, failure_message
from ansible.module_utils.validate.runner import ValidationError, _community_state, parse_mapping


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


# --- compression state and aggregate freshness (Community) -------------------------------------------------

class FakeCursor:
    """Answers each execute with the next scripted result (a list of rows); records the parameters."""

    def __init__(self, *answers, fail=None):
        self.answers = list(answers)
        self.params = []
        self.fail = fail
        self.connection = self
        self.closed = False
        self.rolled_back = 0
        self.rows = []

    def execute(self, query, params=None):
        if self.fail:
            raise self.fail
        self.params.append(params)
        self.rows = list(self.answers.pop(0))

    def fetchone(self):
        return self.rows.pop(0) if self.rows else None

    def rollback(self):
        self.rolled_back += 1


def one(results):
    assert len(results.checks) == 1
    return results.checks[0]


def test_compression_ratio_of_the_compressed_chunks():
    # the container's ohlcv_data: 13 chunks, 8650752 bytes before, 7413760 after
    assert th.compression_ratio(8650752, 7413760) == 1.17
    assert th.compression_ratio(None, None) is None
    assert th.compression_ratio(4096, 0) is None


@pytest.mark.parametrize(("enabled", "has_policy", "overdue", "verdict"), [
    (True, True, 3, ("warning", False)),     # the policy left chunks past compress_after uncompressed
    (True, True, 0, ("info", True)),
    (True, True, None, ("info", True)),      # not countable (no compress_after, integer time)
    (True, False, 3, ("info", True)),        # no policy: the `compression policy` check says so
    (False, False, None, ("info", True)),    # not enabled: the `compression` check says so
])
def test_compression_state_warns_only_when_an_existing_policy_left_old_chunks(enabled, has_policy, overdue, verdict):
    assert th.compression_state_verdict(enabled, has_policy, overdue) == verdict


def _figures(**over):
    fig = {"hypertable": "public.ohlcv_data", "enabled": True, "has_policy": True, "compress_after": "365 days",
           "chunks_total": 13, "chunks_compressed": 13, "chunks_overdue": 0, "before_bytes": 8650752,
           "after_bytes": 7413760, "ratio": 1.17}
    fig.update(over)
    return fig


def test_compression_state_detail_names_the_figures_and_the_finding():
    assert th.compression_state_detail(_figures()) == (
        "13 of 13 chunk(s) compressed, 8.2 MiB before, 7.1 MiB after (ratio 1.17); "
        "no chunk older than compress_after 365 days is left uncompressed")
    late = th.compression_state_detail(_figures(chunks_compressed=10, chunks_overdue=3))
    assert late.startswith("3 chunk(s) older than compress_after 365 days are not compressed")
    assert "10 of 13 chunk(s) compressed" in late
    small = th.compression_state_detail(_figures(before_bytes=49152, after_bytes=81920, ratio=0.6))
    assert "48 KiB before, 80 KiB after (ratio 0.60)" in small
    off = _figures(enabled=False, has_policy=False, chunks_compressed=0, chunks_overdue=None, before_bytes=None,
                   after_bytes=None, ratio=None)
    assert th.compression_state_detail(off) == "0 of 13 chunk(s) compressed; compression is not enabled"
    assert th.compression_state_detail(_figures(has_policy=False)).endswith("; no compression policy")


def test_compression_state_check_reads_a_continuous_aggregate_through_its_materialization_hypertable():
    cur = FakeCursor([("_timescaledb_internal", "_materialized_hypertable_4", True, "date")],  # store
                     [("1 year 6 mons",)],           # compression policy
                     [(2, 1)],                       # chunks total, compressed
                     [(65536, 69632)],               # bytes before, after
                     [(1,)])                         # overdue chunks
    r = Results()
    th.check_compression_state(r, cur, "ohlcv_quarterly")
    check = one(r)
    assert (check.name, check.status, check.severity) == ("compression state ohlcv_quarterly", "fail", "warning")
    assert check.data["hypertable"] == "_timescaledb_internal._materialized_hypertable_4"
    assert (check.data["chunks_total"], check.data["chunks_compressed"], check.data["chunks_overdue"]) == (2, 1, 1)
    assert check.data["ratio"] == 0.94
    assert cur.params[-1][-1] == "1 year 6 mons"    # show_chunks(older_than => the policy's compress_after)


def test_compression_state_without_compression_reads_no_stats_and_a_missing_target_is_skipped():
    cur = FakeCursor([("public", "factor_scores", False, "date")], [], [(0, 0)])
    r = Results()
    th.check_compression_state(r, cur, "factor_scores")
    assert (one(r).status, one(r).severity) == ("pass", "info") and not cur.answers
    r = Results()
    th.check_compression_state(r, FakeCursor([]), "nope")
    assert one(r).status == "skip" and "neither a hypertable nor a continuous aggregate" in one(r).detail


DAY = 86400.0


@pytest.mark.parametrize(("has_rows", "lag", "allowed", "verdict"), [
    (False, None, DAY, ("info", True)),              # no raw rows: nothing to be fresh about
    (True, None, DAY, ("warning", False)),           # rows but nothing materialized
    (True, -31 * DAY, 33 * DAY, ("info", True)),     # watermark past the newest bucket (the container)
    (True, 1 * DAY, 2.04 * DAY, ("info", True)),     # a working daily policy: yesterday's bucket
    (True, 33 * DAY, 33 * DAY, ("info", True)),      # exactly end_offset + bucket + schedule: still allowed
    (True, 122 * DAY, 33 * DAY, ("warning", False)),  # four months behind a 1-month aggregate
])
def test_freshness_warns_when_the_watermark_lags_more_than_the_policy_allows(has_rows, lag, allowed, verdict):
    assert th.freshness_verdict(has_rows, lag, allowed) == verdict


def _freshness(**over):
    fig = {"watermark": "2025-11-01", "newest": "2025-10-17", "newest_bucket": "2025-10-01",
           "lag_seconds": -31 * DAY, "allowed_seconds": 33 * DAY, "newest_materialized": True, "has_policy": True,
           "end_offset": "1 day", "schedule_interval": "1 day", "width": "1 month"}
    fig.update(over)
    return fig


def test_freshness_detail_reports_the_lag_and_the_rule():
    assert th.freshness_detail(_freshness()) == (
        "watermark 2025-11-01, newest raw bucket 2025-10-01 (latest row 2025-10-17): newest bucket materialized, "
        "lag 0 day(s) (allowed 33 day(s) = end_offset 1 day + bucket 1 month + schedule_interval 1 day)")
    stale = th.freshness_detail(_freshness(watermark="2025-06-01", lag_seconds=122 * DAY, newest_materialized=False))
    assert stale.startswith("watermark 2025-06-01 is 122 day(s) behind the newest raw bucket 2025-10-01")
    assert "refresh the aggregate or check its policy" in stale
    assert "(no refresh policy)" in th.freshness_detail(_freshness(has_policy=False, end_offset="0"))
    assert th.freshness_detail(_freshness(watermark=None, lag_seconds=None)).startswith("nothing is materialized")
    assert th.freshness_detail(_freshness(newest=None)) == "the source has no rows yet: nothing to materialize"


QUARTERLY = th.DEFAULT_AGGREGATES[1]


def test_freshness_check_passes_the_policy_offsets_and_the_aggregate_filter():
    cur = FakeCursor([(4, "date")],                            # mat hypertable id, source time column type
                     [("1 day", "1 day")],                     # refresh policy end_offset, schedule_interval
                     [("2026-01-01", "2025-10-17", "2025-10-01", -92 * DAY, 94 * DAY, True)])
    r = Results()
    th.check_aggregate_freshness(r, cur, QUARTERLY)
    check = one(r)
    assert (check.name, check.status, check.severity) == ("aggregate freshness ohlcv_quarterly", "pass", "info")
    # watermark of hypertable 4, the WHERE timeframe = 'D', then width, end_offset, width, schedule, width
    assert cur.params[-1] == [4, "D", "3 months", "1 day", "3 months", "1 day", "3 months"]
    assert check.data["lag_seconds"] == -92 * DAY and check.data["has_policy"]


def test_freshness_check_skips_what_it_cannot_measure():
    r = Results()
    th.check_aggregate_freshness(r, FakeCursor([]), QUARTERLY)
    assert one(r).status == "skip" and "not a continuous aggregate" in one(r).detail
    r = Results()
    th.check_aggregate_freshness(r, FakeCursor([(4, "bigint")]), QUARTERLY)
    assert one(r).status == "skip" and "date and timestamp buckets only" in one(r).detail


class _Ctx:
    def __init__(self):
        self.results = Results()


def test_community_state_is_skipped_with_the_reason_on_apache():
    ctx = _Ctx()
    _community_state(ctx, None, "apache", th.DEFAULT_AGGREGATES, th.DEFAULT_COMPRESSION)
    names = [c.name for c in ctx.results.checks]
    assert names == ["compression state %s" % t for t in th.DEFAULT_COMPRESSION] + \
        ["aggregate freshness %s" % a["name"] for a in th.DEFAULT_AGGREGATES]
    assert all(c.status == "skip" and "Apache-2 edition" in c.detail for c in ctx.results.checks)


def test_community_state_guards_each_check_on_its_own():
    ctx = _Ctx()
    cur = FakeCursor(fail=RuntimeError("permission denied for function cagg_watermark"))
    _community_state(ctx, cur, "timescale", th.DEFAULT_AGGREGATES[:1], ["ohlcv_data", "factor_scores"])
    assert [(c.name, c.status, c.severity) for c in ctx.results.checks] == [
        ("compression state ohlcv_data", "fail", "warning"), ("compression state factor_scores", "fail", "warning"),
        ("aggregate freshness ohlcv_monthly", "fail", "warning")]
    assert ctx.results.checks[-1].detail == "check could not run: permission denied for function cagg_watermark"
    assert cur.rolled_back == 3
