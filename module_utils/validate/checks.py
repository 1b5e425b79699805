"""Check results of migration_validate: the Check record, the collector and the summary.

Severity says what a failure means: ``critical`` fails the module, ``warning``
is reported, ``info`` only informs. Status is ``pass``, ``fail`` or ``skip``
(with a reason). A check that errors out is a ``fail`` with the error as detail,
never dropped (the old validator dropped or mis-counted them).
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field

SEVERITIES = ("critical", "warning", "info")
STATUSES = ("pass", "fail", "skip")
CATEGORIES = ("reconciliation", "content", "integrity", "quality", "timescaledb", "health")


@dataclass
class Check:
    """One check result."""

    name: str
    category: str
    severity: str
    status: str
    detail: str = ""
    table: str | None = None
    data: dict = field(default_factory=dict)

    def as_dict(self):
        out = asdict(self)
        if not out["data"]:
            out.pop("data")
        return out


class Results:
    """Collects checks, applying severity overrides as they are added."""

    def __init__(self, severity_overrides=None, category_severity=None):
        self.checks = []
        self.overrides = dict(severity_overrides or {})
        self.category_severity = dict(category_severity or {})
        for key, sev in self.overrides.items():
            if sev not in SEVERITIES:
                raise ValueError("severity_overrides[%r]: %r is not one of %s" % (key, sev, ", ".join(SEVERITIES)))

    def severity_for(self, name, category, default):
        """Exact check name, then glob pattern, then category, then the check's default."""
        if name in self.overrides:
            return self.overrides[name]
        for pattern, sev in self.overrides.items():
            if any(ch in pattern for ch in "*?[") and fnmatch.fnmatchcase(name, pattern):
                return sev
        if category in self.overrides:
            return self.overrides[category]
        return self.category_severity.get(category, default)

    def add(self, name, category, severity, ok, detail="", table=None, data=None):  # noqa: PLR0917 - mirrors the Check fields
        """Record a pass/fail check; ok may be True/False or 'skip'."""
        status = "skip" if ok == "skip" else ("pass" if ok else "fail")
        check = Check(name, category, self.severity_for(name, category, severity), status, detail, table, data or {})
        self.checks.append(check)
        return check

    def skip(self, name, category, severity, reason, table=None):
        return self.add(name, category, severity, "skip", reason, table)

    def error(self, name, category, severity, exc, table=None):
        """A check that could not run is a failure naming the error."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return self.add(name, category, severity, False, "check could not run: %s" % text, table)

    def critical_failures(self):
        return [c for c in self.checks if c.status == "fail" and c.severity == "critical"]

    def summary(self):
        fails = [c for c in self.checks if c.status == "fail"]
        return {
            "total": len(self.checks),
            "passed": sum(1 for c in self.checks if c.status == "pass"),
            "failed": sum(1 for c in fails if c.severity in ("critical", "warning")),
            "warnings": sum(1 for c in fails if c.severity == "warning"),
            "notices": sum(1 for c in fails if c.severity == "info"),
            "skipped": sum(1 for c in self.checks if c.status == "skip"),
            "critical_failures": sum(1 for c in fails if c.severity == "critical"),
        }

    def as_list(self):
        return [c.as_dict() for c in self.checks]


def failure_message(checks):
    """fail_json message naming every failed critical check, its table and detail."""
    parts = []
    for c in checks:
        where = " [%s]" % c.table if c.table else ""
        parts.append("%s%s: %s" % (c.name, where, c.detail))
    return "migration validation: %d critical check(s) failed: %s" % (len(checks), "; ".join(parts))
