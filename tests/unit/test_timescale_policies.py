"""module_utils/schema/timescale_policies.py: policy intervals valid per TimescaleDB version."""

import pytest
from ansible.module_utils.schema.timescale_policies import (
    PolicyError,
    add_intervals,
    interval_seconds,
    parse_interval,
    parse_version,
    resolve_policies,
)
from file_module import load_file

REFRESH = {
    "ohlcv_monthly": {"start_offset": "3 months", "end_offset": "1 day", "schedule_interval": "1 day",
                      "bucket_width": "1 month"},
    "ohlcv_quarterly": {"start_offset": "2 years", "end_offset": "1 day", "schedule_interval": "1 day",
                        "bucket_width": "3 months"},
    "ohlcv_yearly": {"start_offset": "3 years", "end_offset": "1 year", "schedule_interval": "7 days",
                     "bucket_width": "1 year"},
}
COMPRESSION = [
    {"target": "ohlcv_data", "segmentby": ["ticker"], "orderby": "date DESC", "compress_after": "365 days"},
    {"target": "factor_scores", "segmentby": ["ticker"], "orderby": "date DESC", "compress_after": "180 days"},
    {"target": "ohlcv_monthly", "segmentby": ["ticker"], "orderby": "month DESC", "compress_after": "1 year"},
    {"target": "ohlcv_quarterly", "segmentby": ["ticker"], "orderby": "quarter DESC", "compress_after": "18 months"},
    {"target": "ohlcv_yearly", "segmentby": ["ticker"], "orderby": "year DESC", "compress_after": "2 years"},
]


def by_target(result):
    return {c["target"]: c for c in result["compression"]}


def test_parse_version_and_interval():
    assert parse_version("2.19.3") == (2, 19, 3)
    assert parse_version("2.18") == (2, 18, 0)
    assert parse_version("2.22.1-dev") == (2, 22, 1)
    assert parse_interval("2 years 1 month") == (25, 0, 0)
    assert parse_interval("365 days") == (0, 365, 0)
    assert interval_seconds("1 month") == 30 * 86400
    assert add_intervals("2 years", "3 months") == "27 months"


@pytest.mark.parametrize("bad", ["", "soon", "3 fortnights", "12"])
def test_bad_interval_is_named(bad):
    with pytest.raises(PolicyError, match="interval"):
        parse_interval(bad)


def test_new_version_keeps_spec_values():
    result = resolve_policies("2.19.3", REFRESH, COMPRESSION)
    assert [c["compress_after"] for c in result["compression"]] == [c["compress_after"] for c in COMPRESSION]
    assert result["adjustments"] == []


def test_2_18_1_is_the_first_release_allowing_overlap():
    assert resolve_policies("2.18.1", REFRESH, COMPRESSION)["adjustments"] == []
    assert len(resolve_policies("2.18.0", REFRESH, COMPRESSION)["adjustments"]) == 2


def test_old_version_moves_compress_after_past_the_window():
    result = by_target(resolve_policies("2.11.2", REFRESH, COMPRESSION))
    assert result["ohlcv_quarterly"]["compress_after"] == "27 months"
    assert result["ohlcv_quarterly"]["compress_after_requested"] == "18 months"
    assert result["ohlcv_yearly"]["compress_after"] == "48 months"
    # outside the window already (1 year > 3 months) or a hypertable: untouched
    assert result["ohlcv_monthly"]["compress_after"] == "1 year"
    assert "compress_after_requested" not in result["ohlcv_data"]


def test_old_version_fail_mode_explains():
    with pytest.raises(PolicyError, match=r"ohlcv_quarterly.*2\.18\.1.*#7656"):
        resolve_policies("2.17.2", REFRESH, COMPRESSION, on_conflict="fail")


def test_margin_override():
    result = by_target(resolve_policies("2.11.0", REFRESH, COMPRESSION, margin="1 day"))
    assert result["ohlcv_quarterly"]["compress_after"] == "24 months 1 days"


def test_refresh_window_must_cover_two_buckets():
    bad = dict(REFRESH, ohlcv_yearly=dict(REFRESH["ohlcv_yearly"], start_offset="2 years"))
    with pytest.raises(PolicyError, match=r"ohlcv_yearly.*two buckets"):
        resolve_policies("2.19.3", bad, COMPRESSION)


def test_cagg_compression_needs_2_6():
    with pytest.raises(PolicyError, match=r"2\.6\.0"):
        resolve_policies("2.5.2", REFRESH, COMPRESSION)


def test_bad_inputs_are_named():
    with pytest.raises(PolicyError, match="on_conflict"):
        resolve_policies("2.19.3", REFRESH, COMPRESSION, on_conflict="ignore")
    with pytest.raises(PolicyError, match="version"):
        resolve_policies("", REFRESH, COMPRESSION)
    with pytest.raises(PolicyError, match="needs target"):
        resolve_policies("2.19.3", REFRESH, [{"target": "ohlcv_data"}])


def test_filter_plugin_wraps_the_function():
    from pathlib import Path

    from ansible.errors import AnsibleFilterError

    path = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "timescale_policies.py"
    module = load_file("quant_filter_timescale_policies", path)
    policies = module.FilterModule().filters()["quant_timescale_policies"]
    assert policies(COMPRESSION, "2.19.3", REFRESH)["adjustments"] == []
    with pytest.raises(AnsibleFilterError, match="TimescaleDB policy settings"):
        policies(COMPRESSION, "2.11.0", REFRESH, "fail")
