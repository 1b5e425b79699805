"""The foreign-key side of a run (issue 20, item 2): the load order, and the keys a cycle sets aside
around its tables (the logic is in load_order.py; this is how a Migration uses it)."""

from __future__ import annotations

from functools import partial

from ansible.module_utils.core.postgres import rollback_quietly
from ansible.module_utils.core.quant_meta import get_checkpoint
from ansible.module_utils.migrate.checkpoint_match import target_change
from ansible.module_utils.migrate.errors import MigrationError
from ansible.module_utils.migrate.load_order import CycleGuard, ValidationFailed, fk_display, plan_load_order

try:
    import psycopg2
except ImportError:  # pragma: no cover
    psycopg2 = None


class CycleLoads:
    """Mixin of Migration: expects conn, params, plans, result, queries, source, log, pg_error and
    finished_from_this_file."""

    def arrange_load_order(self, cur, mapped):
        """Order the plans by the target's foreign keys (only without a mapping: an explicit mapping's
        order wins) and find the cycles whose keys are set aside (migrate/load_order.py); fk_cycles: auto
        sets them aside without a mapping only, since a mapping is the user's own plan of the load."""
        handling = self.params.get("fk_cycles") or "auto"
        set_aside = handling == "set_aside" or (handling == "auto" and not mapped)
        self.load_order = plan_load_order(cur, self.plans, not mapped, set_aside)
        self.plans = self.load_order.plans
        self.result.update(self.load_order.report())
        for child, _parent, _fk in self.load_order.late:
            self.warn(child.warnings[-1])

    def already_migrated(self, plan):
        """Whether load_table will skip the plan (finished from this file into this very target)."""
        cp = get_checkpoint(self.conn, plan.source_table)
        self.conn.rollback()
        return self.finished_from_this_file(cp) and target_change(cp, plan.target) is None

    def loading_cycles(self):
        """The cycles of which this run loads at least one table (their keys are set aside)."""
        if not self.load_order.set_aside:
            return []
        return [c for c in self.load_order.cycles
                if any(not self.already_migrated(p) for p in self.plans[c.first:c.last + 1]
                       if p.source_table in c.tables)]

    def repair_set_aside(self):
        """Add back and validate the keys an earlier run set aside and did not restore (it crashed, or
        VALIDATE found violations), unless a cycle this run loads sets them aside again."""
        self.cycle_guard = CycleGuard(self.conn, self.queries)
        self.cycles_to_load = self.loading_cycles()
        keep = {(fk.schema, fk.table, fk.name) for c in self.cycles_to_load for fk in c.fks}
        self.restore_keys(partial(self.cycle_guard.restore, lambda key: key not in keep))

    def set_aside_before(self, pos):
        """Before the first table of a cycle this run loads: its foreign keys are dropped (recorded first)."""
        for cycle in self.cycles_to_load:
            if cycle.first != pos:
                continue
            try:
                self.cycle_guard.set_aside(cycle)
            except psycopg2.Error as exc:
                rollback_quietly(self.conn)
                raise MigrationError("setting aside the foreign keys of the cycle %s (%s) before loading it: %s" % (
                    ", ".join(cycle.tables), ", ".join(fk_display(fk) for fk in cycle.fks), self.pg_error(exc)),
                    self.result) from None
            self.result["changed"] = True
            self.log("foreign-key cycle %s: %d constraints set aside" % (", ".join(cycle.tables), len(cycle.fks)))

    def restore_after(self, pos):
        """After the last table of a cycle: its foreign keys back, NOT VALID, then validated."""
        for cycle in self.load_order.cycles:
            if cycle.last == pos:
                self.restore_keys(partial(self.cycle_guard.restore_cycle, cycle))

    def restore_keys(self, restore):
        """Run restore() (returns how many keys came back); a failed VALIDATE stops the run."""
        try:
            if restore():
                self.result["changed"] = True
        except ValidationFailed as exc:
            self.result["changed"] = True
            raise MigrationError(str(exc), self.result) from None
