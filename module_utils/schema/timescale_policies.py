"""Make TimescaleDB policy settings valid for the installed TimescaleDB version.

Pure functions, no database: the role calls them through the filter
`quant_timescale_policies` before rendering the policy step, and the unit
tests call them directly.

Why this exists: until TimescaleDB 2.18.1 `add_compression_policy()` on a
continuous aggregate refused a `compress_after` that falls inside the
aggregate's refresh window ("compress_after value for compression policy
should be greater than the start of the refresh window of continuous
aggregate policy"). timescale/timescaledb PR #7656 lifted that restriction
and shipped in 2.18.1 (2025-02-10). The platform's settings (quarterly 18
months inside a 2-year window, yearly 2 years inside a 3-year window) need
it, so on older releases we either move compress_after just past the window
start or stop with an explanation.
"""

from __future__ import annotations

import re

# First release that accepts compress_after inside the refresh window (PR #7656).
OVERLAP_ALLOWED_SINCE = (2, 18, 1)
# Compression on continuous aggregates exists since 2.6.0.
CAGG_COMPRESSION_SINCE = (2, 6, 0)

_UNITS = {
    "year": ("months", 12), "years": ("months", 12), "yr": ("months", 12), "y": ("months", 12),
    "month": ("months", 1), "months": ("months", 1), "mon": ("months", 1), "mons": ("months", 1),
    "week": ("days", 7), "weeks": ("days", 7), "w": ("days", 7),
    "day": ("days", 1), "days": ("days", 1), "d": ("days", 1),
    "hour": ("seconds", 3600), "hours": ("seconds", 3600), "h": ("seconds", 3600),
    "minute": ("seconds", 60), "minutes": ("seconds", 60), "min": ("seconds", 60),
    "second": ("seconds", 1), "seconds": ("seconds", 1), "sec": ("seconds", 1), "s": ("seconds", 1),
}
_PART = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")


class PolicyError(ValueError):
    """A policy setting that cannot work on the installed TimescaleDB."""


def parse_version(text):
    """'2.19.3' or '2.19.3-dev' -> (2, 19, 3)."""
    nums = re.findall(r"\d+", str(text or ""))
    if len(nums) < 2:
        raise PolicyError("cannot read the TimescaleDB version %r (expected e.g. '2.19.3')" % (text,))
    return tuple(int(n) for n in [*nums, "0"][:3])


def parse_interval(text):
    """'2 years 1 month' -> (months, days, seconds). Only what PostgreSQL accepts in our vars."""
    src = str(text).strip().lower()
    out = {"months": 0, "days": 0, "seconds": 0}
    pos = 0
    for match in _PART.finditer(src):
        if match.start() != pos or match.group(2) not in _UNITS:
            break
        field, factor = _UNITS[match.group(2)]
        out[field] += int(match.group(1)) * factor
        pos = match.end()
    if not src or pos != len(src):
        raise PolicyError("cannot read the interval %r (expected e.g. '18 months' or '365 days')" % (text,))
    return out["months"], out["days"], out["seconds"]


def interval_seconds(text):
    """Comparable length, using PostgreSQL's own interval ordering (1 month = 30 days)."""
    months, days, seconds = parse_interval(text)
    return (months * 30 + days) * 86400 + seconds


def format_interval(months=0, days=0, seconds=0):
    """(25, 0, 0) -> '25 months'; inverse of parse_interval for what we produce."""
    parts = []
    for value, unit in ((months, "months"), (days, "days"), (seconds, "seconds")):
        if value:
            parts.append("%d %s" % (value, unit))
    return " ".join(parts) or "0 days"


def add_intervals(left, right):
    a, b = parse_interval(left), parse_interval(right)
    return format_interval(*(x + y for x, y in zip(a, b)))


def check_refresh_policy(name, policy):
    """Reject refresh windows TimescaleDB would refuse (end must precede start by 2 buckets)."""
    for key in ("start_offset", "end_offset", "schedule_interval", "bucket_width"):
        if key not in policy:
            raise PolicyError("refresh policy of %s: missing %s" % (name, key))
    start, end = interval_seconds(policy["start_offset"]), interval_seconds(policy["end_offset"])
    width = interval_seconds(policy["bucket_width"])
    if start - end < 2 * width:
        raise PolicyError(
            "refresh policy of %s: the window from start_offset %s to end_offset %s must cover at least "
            "two buckets of %s" % (name, policy["start_offset"], policy["end_offset"], policy["bucket_width"]))


def resolve_policies(version, refresh_policies, compression, on_conflict="adjust", margin=None):
    """Return the policy settings to render for TimescaleDB `version`.

    refresh_policies: {cagg: {start_offset, end_offset, schedule_interval, bucket_width}}
    compression: [{target, segmentby, orderby, compress_after}] (targets may be hypertables or caggs)
    on_conflict: 'adjust' moves a cagg's compress_after past its refresh window start
                 (start_offset + margin, margin defaults to the cagg's bucket width);
                 'fail' raises PolicyError naming the setting.
    Returns {'refresh': {...}, 'compression': [...], 'adjustments': [text, ...]}; each
    compression item gains 'compress_after_requested' when it was changed.
    """
    if on_conflict not in ("adjust", "fail"):
        raise PolicyError("on_conflict must be 'adjust' or 'fail', not %r" % (on_conflict,))
    ver = parse_version(version)
    refresh = {}
    for name, policy in sorted((refresh_policies or {}).items()):
        check_refresh_policy(name, policy)
        refresh[name] = dict(policy)
    items, notes = [], []
    for raw in compression or []:
        item = dict(raw)
        target = item.get("target")
        if not target or "compress_after" not in item:
            raise PolicyError("compression setting %r: needs target and compress_after" % (raw,))
        interval_seconds(item["compress_after"])
        window = refresh.get(target)
        if window is not None:
            if ver < CAGG_COMPRESSION_SINCE:
                raise PolicyError("compression of continuous aggregate %s needs TimescaleDB >= 2.6.0, found %s"
                                  % (target, version))
            inside = interval_seconds(item["compress_after"]) <= interval_seconds(window["start_offset"])
            if inside and ver < OVERLAP_ALLOWED_SINCE:
                why = ("TimescaleDB %s rejects compress_after %s for %s because it lies inside the refresh "
                       "window starting %s ago (allowed from 2.18.1, timescale/timescaledb PR #7656)"
                       % (version, item["compress_after"], target, window["start_offset"]))
                if on_conflict == "fail":
                    raise PolicyError(why + "; upgrade TimescaleDB or raise compress_after")
                new = add_intervals(window["start_offset"], margin or window["bucket_width"])
                item["compress_after_requested"] = item["compress_after"]
                item["compress_after"] = new
                notes.append("%s; using compress_after %s instead" % (why, new))
        items.append(item)
    return {"refresh": refresh, "compression": items, "adjustments": notes}
