"""When rejected rows fail a migration (sqlite_migrate's max_reject_ratio, max_rejects, tolerated_rejects).

A table fails when it rejected more than ``max_rejects`` rows (when set), or more
than ``tolerated_rejects`` rows AND more than ``max_reject_ratio`` of its source
rows. A few orphans in a small table (1 of 19) are within ``tolerated_rejects``;
a large share, by ratio or by count, still fails. The verdict is taken right
after each table, before the next one loads. A table that an earlier run loaded
(its checkpoint is done) is never judged again: its rejects are a warning, so a
re-run goes on with the next table instead of failing the same way forever.
"""

from __future__ import annotations

ROLE_VARS = {
    "max_reject_ratio": "sqlite_migration_max_reject_ratio",
    "max_rejects": "sqlite_migration_max_rejects",
    "tolerated_rejects": "sqlite_migration_tolerated_rejects",
}
LOADED = ("copied", "resumed")
EARLIER = ("skipped", "would_skip")


def _name(option):
    return "%s (role: %s)" % (option, ROLE_VARS[option])


class RejectPolicy:
    def __init__(self, max_reject_ratio=0.0, max_rejects=None, tolerated_rejects=0, rejects_path=None):
        self.ratio = float(max_reject_ratio or 0)
        self.max_rejects = None if max_rejects is None else int(max_rejects)
        self.tolerated = int(tolerated_rejects or 0)
        self.rejects_path = rejects_path

    @classmethod
    def from_params(cls, params):
        return cls(params.get("max_reject_ratio"), params.get("max_rejects"), params.get("tolerated_rejects"),
                   params.get("rejects_path"))

    def verdict(self, rejected, source_rows):
        """Why this many rejects fail a table, or None when they are tolerated."""
        if self.max_rejects is not None and rejected > self.max_rejects:
            return "%d of %d rows rejected, more than %s %d" % (
                rejected, source_rows, _name("max_rejects"), self.max_rejects)
        if rejected > self.tolerated and rejected > self.ratio * max(source_rows, 1):
            return "%d of %d rows rejected (%.2f%%), more than %s %.2f%% and more than %s %d" % (
                rejected, source_rows, 100.0 * rejected / max(source_rows, 1), _name("max_reject_ratio"),
                100.0 * self.ratio, _name("tolerated_rejects"), self.tolerated)
        return None

    def where(self, check_mode=False):
        if check_mode or not self.rejects_path:
            return "quant_meta.migration_rejects" if not check_mode else "the rejects_sample of the result"
        return "%s and quant_meta.migration_rejects" % self.rejects_path

    def judge(self, name, res, check_mode=False):
        """The failure text for a table's result, or None; sets res['reject_warning'] for tolerated rejects."""
        if res.get("accounting_error"):
            return res["accounting_error"]
        rejected, status = res.get("rejected_rows") or 0, res.get("status")
        if not rejected or status not in LOADED + EARLIER + ("would_copy",):
            return None
        if status in EARLIER:
            res["reject_warning"] = (
                "%s: %d of %d rows were rejected when an earlier run (run_id %s) loaded it; they are in %s. The "
                "table is complete and was not loaded again (truncate: true reloads it)"
                % (name, rejected, res.get("source_rows") or 0, res.get("run_id") or "?", self.where(check_mode)))
            return None
        reason = self.verdict(rejected, res.get("source_rows") or 0)
        if reason is None:
            res["reject_warning"] = "%s: %d of %d rows rejected (tolerated by the reject policy); they are in %s" % (
                name, rejected, res.get("source_rows") or 0, self.where(check_mode))
        return reason

    def failure_message(self, name, reason, loaded, pending):
        """The message of a real run stopped after table `name` (its rows are committed)."""
        return (
            "table %s: %s. Its rows are committed (%s is complete) and so are the tables loaded before it (%s); "
            "not loaded: %s. The rejected rows are in %s. Fix those rows in the SQLite file and reload with "
            "truncate: true, or accept them by raising the limit; a rerun keeps %s as it is, reports its rejects "
            "as a warning and continues with %s"
            % (name, reason, name, ", ".join(loaded) or "none", ", ".join(pending) or "none", self.where(),
               name, pending[0] if pending else "the remaining steps"))
