"""The order tables load in, from the target's foreign keys, and the keys a cycle sets aside (issue 20, item 2).

Without a mapping, the tables came in the SQLite file's order (alphabetical), so a child table
loaded before its parent and its rows became FK rejects. Now the foreign keys among the target
tables of the run (pg_constraint) order the load: parents first, ties keep the current order
(a stable topological sort). An explicit mapping keeps its own order (the shipped role passes
one, already in FK order); a child listed before its parent there gets a warning.

Tables in a foreign-key cycle (two tables referencing each other, or a self-reference such as
employee.reports_to -> employee) cannot be ordered: whatever loads first may reference rows
of a later batch. Their FKs that the order cannot satisfy are set aside, disabled-then-
validated rather than deferred (a deferred check would need the whole cycle in one
transaction, and every batch commits with its checkpoint):

1. before the cycle's first table loads, each such constraint's name and definition
   (pg_get_constraintdef) is recorded in quant_meta.migration_set_aside_fks, then it is dropped;
2. the cycle's tables load;
3. each constraint is added back NOT VALID (new writes are checked at once) and VALIDATEd.

A violation found by VALIDATE keeps the constraint NOT VALID (no loaded row is deleted), and the
run fails naming the constraint, the table, the count and a sample of the missing references.
The record stays until a VALIDATE succeeds, so a run that crashed between drop and restore, or
whose validation failed, is repaired by the next run (which adds back, or validates again, every
recorded constraint whose tables it does not load).
"""

from __future__ import annotations

import heapq
from collections import namedtuple

from ansible.module_utils.core.quant_meta import (
    ensure_set_aside_fks,
    forget_set_aside_fk,
    remember_set_aside_fk,
    set_aside_fks,
)
from ansible.module_utils.migrate.reject_isolation import FK_COLUMNS, fk_condition

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover
    psycopg2 = None
    sql = None

# A foreign key among the run's target tables: child_oid references parent_oid.
ForeignKey = namedtuple("ForeignKey", "name child_oid parent_oid schema table definition")
# child and parent are positions in the plan list; fk is the ForeignKey behind the edge.
Edge = namedtuple("Edge", "child parent fk")
# Tables of one cycle (source names, load order) and the ForeignKeys set aside for it; first and
# last are the positions of its first and last table in the load order.
Cycle = namedtuple("Cycle", "tables fks first last")

SAMPLE_VIOLATIONS = 5

FOREIGN_KEYS_SQL = """
SELECT c.conname, c.conrelid, c.confrelid, n.nspname, k.relname,
       regexp_replace(pg_get_constraintdef(c.oid), ' NOT VALID$', '')
  FROM pg_constraint c
  JOIN pg_class k ON k.oid = c.conrelid
  JOIN pg_namespace n ON n.oid = k.relnamespace
 WHERE c.contype = 'f' AND c.conparentid = 0
   AND c.conrelid = ANY(%s::oid[]) AND c.confrelid = ANY(%s::oid[])
 ORDER BY n.nspname, k.relname, c.conname
"""


class ValidationFailed(Exception):
    """A restored foreign key found rows without their parent (the constraint stays NOT VALID)."""


# -- the graph (pure) -----------------------------------------------------------------------------------

def components(count, edges):
    """Strongly connected components of nodes 0..count-1 (edge parent -> child), each a sorted list.

    Iterative Tarjan (no recursion limit on long FK chains)."""
    children = [[] for _ in range(count)]
    for edge in edges:
        children[edge.parent].append(edge.child)
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in range(count):
        if root in index:
            continue
        work = [(root, iter(children[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, rest = work[-1]
            nxt = next(rest, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    found.append(_pop_component(stack, on_stack, node))
            elif nxt not in index:
                index[nxt] = low[nxt] = len(index)
                stack.append(nxt)
                on_stack.add(nxt)
                work.append((nxt, iter(children[nxt])))
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
    return found


def _pop_component(stack, on_stack, node):
    comp = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        comp.append(member)
        if member == node:
            return sorted(comp)


def cyclic_components(count, edges):
    """The components that form a cycle: two or more nodes, or one node referencing itself."""
    selfref = {e.child for e in edges if e.child == e.parent}
    return [c for c in components(count, edges) if len(c) > 1 or c[0] in selfref]


def stable_order(count, edges):
    """Nodes 0..count-1 with every parent before its children; ties keep the node order.

    The components come in topological order (the one holding the lowest node first among those
    ready); inside a cycle, a node whose parents are all loaded goes first, else the one that the
    most nodes still to come wait for, net of the parents it waits for itself (few foreign keys to
    set aside; the fewest is an NP-hard problem, and FK cycles are small), lowest node on a tie."""
    comps = components(count, edges)
    comp_of = {node: i for i, comp in enumerate(comps) for node in comp}
    waits = [set() for _ in comps]
    for e in edges:
        if comp_of[e.child] != comp_of[e.parent]:
            waits[comp_of[e.child]].add(comp_of[e.parent])
    ready = [(comp[0], i) for i, comp in enumerate(comps) if not waits[i]]
    heapq.heapify(ready)
    order = []
    while ready:
        _low, i = heapq.heappop(ready)
        order.extend(_inside_order(comps[i], edges))
        for j, wait in enumerate(waits):
            if i in wait:
                wait.discard(i)
                if not wait:
                    heapq.heappush(ready, (comps[j][0], j))
    return order


def _inside_order(comp, edges):
    """The order inside one component (see stable_order): the greedy of Eades, Lin and Smyth."""
    members = set(comp)
    parents = {node: {e.parent for e in edges if e.child == node and e.parent in members and e.parent != node}
               for node in comp}
    children = {node: {c for c in comp if node in parents[c]} for node in comp}
    order, left = [], set(comp)
    while left:
        order.append(min(left, key=lambda n: _inside_rank(n, parents[n] & left, children[n] & left)))
        left.discard(order[-1])
    return order


def _inside_rank(node, waits_for, waited_by):
    """Ready tables first (lowest node); else the one the most tables wait for, net of those it waits for."""
    if not waits_for:
        return (0, 0, node)
    return (1, len(waits_for) - len(waited_by), node)


def unsatisfied(order, edges):
    """Edges whose parent does not load before its child in this order (self-references included)."""
    pos = {node: i for i, node in enumerate(order)}
    return [e for e in edges if pos[e.parent] >= pos[e.child]]


def arrange(count, edges, reorder):
    """(order, cycles, out_of_order): the load order of nodes 0..count-1, and the edges it cannot satisfy.

    reorder=False keeps the node order. cycles: [(component nodes in load order, [edges set aside])];
    out_of_order: the unsatisfied edges outside any cycle (only with reorder=False)."""
    order = stable_order(count, edges) if reorder else list(range(count))
    late = unsatisfied(order, edges)
    pos = {node: i for i, node in enumerate(order)}
    cycles = []
    for comp in cyclic_components(count, edges):
        members = set(comp)
        aside = [e for e in late if e.child in members and e.parent in members]
        cycles.append((sorted(comp, key=pos.get), aside))
    cycles.sort(key=lambda c: pos[c[0][0]])
    out_of_order = [e for e in late if not _same_cycle(e, cycles)]
    return order, cycles, out_of_order


def _same_cycle(edge, cycles):
    return any(edge.child in comp and edge.parent in comp for comp, _aside in cycles)


# -- the plans --------------------------------------------------------------------------------------------

def foreign_keys(cur, oids):
    """ForeignKeys among the tables oids (a table's partitions' copies aside)."""
    cur.execute(FOREIGN_KEYS_SQL, (list(oids), list(oids)))
    return [ForeignKey(*row) for row in cur.fetchall()]


def plan_edges(plans, fks):
    """Edges between plan positions: one per (child plan, parent plan) pair a ForeignKey links."""
    at = {}
    for i, plan in enumerate(plans):
        at.setdefault(plan.target.oid, []).append(i)
    return [Edge(child, parent, fk) for fk in fks
            for child in at.get(fk.child_oid, []) for parent in at.get(fk.parent_oid, [])]


class LoadOrder:
    """The plans in load order, the cycles and their set-aside keys; notes and warnings are on the plans."""

    def __init__(self, plans, cycles, late, set_aside=True):
        self.plans = plans
        self.cycles = cycles
        self.late = late  # (child plan, parent plan, ForeignKey) loaded out of order (explicit mapping)
        self.set_aside = set_aside  # False: the cycles' keys stay in place (fk_cycles: keep)

    def report(self):
        """What the module result shows: load_order and fk_cycles."""
        return {"load_order": [p.source_table for p in self.plans],
                "fk_cycles": [{"tables": list(c.tables), "constraints": [fk_display(fk) for fk in c.fks],
                               "handling": "set_aside" if self.set_aside else "kept"}
                              for c in self.cycles]}


def fk_display(fk):
    return "%s on %s.%s" % (fk.name, fk.schema, fk.table)


def plan_load_order(cur, plans, reorder, set_aside=True):
    """LoadOrder of the plans from the target's foreign keys (reorder=False: the given order stays;
    set_aside=False: a cycle's keys stay in place, and its notes say what that means)."""
    edges = plan_edges(plans, foreign_keys(cur, {p.target.oid for p in plans}))
    order, cycles, late = arrange(len(plans), edges, reorder)
    ordered = [plans[i] for i in order]
    pos = {node: i for i, node in enumerate(order)}
    found = []
    for comp, aside in cycles:
        fks = _unique_fks(e.fk for e in aside)
        found.append(Cycle([plans[i].source_table for i in comp], fks, pos[comp[0]], pos[comp[-1]]))
        for i in comp:
            plans[i].notes.append(cycle_note(plans[i].source_table, [plans[j].source_table for j in comp], fks,
                                             set_aside))
    late = [(plans[e.child], plans[e.parent], e.fk) for e in late]
    for child, parent, fk in late:
        child.warnings.append(late_warning(child, parent, fk))
    return LoadOrder(ordered, found, late, set_aside)


def _unique_fks(fks):
    seen, out = set(), []
    for fk in fks:
        if fk not in seen:
            seen.add(fk)
            out.append(fk)
    return out


def cycle_note(table, tables, fks, set_aside=True):
    others = [t for t in tables if t != table]
    what = "references itself" if not others else "is in a foreign-key cycle with %s" % ", ".join(others)
    keys = ", ".join(fk_display(fk) for fk in fks)
    if not set_aside:
        return ("table %s %s: %s %s kept in place (fk_cycles: keep, or auto with a mapping), so a row referencing "
                "a row of a later batch, or a refused row, is a reject; fk_cycles: set_aside drops %s for the load "
                "and validates %s after" % (table, what, keys, "is" if len(fks) == 1 else "are",
                                            "it" if len(fks) == 1 else "them", "it" if len(fks) == 1 else "them"))
    return ("table %s %s: %s %s set aside while %s (dropped, recorded in quant_meta.migration_set_aside_fks), "
            "then added back NOT VALID and validated" % (
                table, what, keys, "is" if len(fks) == 1 else "are", "it loads" if not others else "they load"))


def late_warning(child, parent, fk):
    return ("table %s loads before %s, which it references (%s), because the mapping lists it first: its rows "
            "referencing rows of %s not loaded yet become rejects; list %s first in the mapping (or give no "
            "mapping: the load order then follows the foreign keys)" % (
                child.source_table, parent.source_table, fk_display(fk), parent.source_table, parent.source_table))


# -- setting aside and restoring (in a real run) -----------------------------------------------------------

class CycleGuard:
    """Drops a cycle's foreign keys before its tables load and restores them after (see the module doc).

    conn: the migration's connection; queries: the result's statement list."""

    def __init__(self, conn, queries):
        self.conn = conn
        self.queries = queries
        self.pending = {}  # cycles whose keys this run set aside and did not restore yet, by first position

    def set_aside(self, cycle):
        """Record, then drop, the cycle's foreign keys (those still present); commits."""
        if cycle.first in self.pending:
            return
        with self.conn.cursor() as cur:
            ensure_set_aside_fks(cur)
            for fk in cycle.fks:
                remember_set_aside_fk(cur, fk.schema, fk.table, fk.name, fk.definition)
                if _constraint_state(cur, fk.schema, fk.table, fk.name) is not None:
                    cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                        sql.Identifier(fk.schema, fk.table), sql.Identifier(fk.name)))
                    self.queries.append("ALTER TABLE %s.%s DROP CONSTRAINT %s" % (fk.schema, fk.table, fk.name))
        self.conn.commit()
        self.pending[cycle.first] = cycle

    def restore_cycle(self, cycle):
        """Restore the cycle's recorded keys (see restore); returns how many."""
        self.pending.pop(cycle.first, None)  # whatever VALIDATE finds, each key is back
        keys = {(fk.schema, fk.table, fk.name) for fk in cycle.fks}
        return self.restore(keys.__contains__)

    def pending_hint(self):
        """For a failure message: the keys still set aside and what brings them back ('' when none)."""
        fks = [fk_display(fk) for cycle in self.pending.values() for fk in cycle.fks]
        if not fks:
            return ""
        return ("; the foreign keys %s stay set aside (dropped, recorded in quant_meta.migration_set_aside_fks) "
                "until the next run adds them back and validates them (after loading what is left of their cycle)"
                % ", ".join(fks))

    def restore(self, wanted):
        """Add back NOT VALID and validate the recorded foreign keys whose (schema, table, name) is
        wanted (a predicate); raises ValidationFailed on the first that rows violate. Returns how many."""
        with self.conn.cursor() as cur:
            recorded = [r for r in set_aside_fks(cur) if wanted(tuple(r[:3]))]
        self.conn.rollback()
        for schema, table, name, definition in recorded:
            self.restore_one(schema, table, name, definition)
        return len(recorded)

    def restore_one(self, schema, table, name, definition):
        ident, con = sql.Identifier(schema, table), sql.Identifier(name)
        with self.conn.cursor() as cur:
            state = _constraint_state(cur, schema, table, name)
            if state is None:
                # the definition is pg_get_constraintdef's own text (quoted as the catalog quotes)
                cur.execute(sql.SQL(" ").join([sql.SQL("ALTER TABLE {} ADD CONSTRAINT {}").format(ident, con),
                                               sql.SQL(definition), sql.SQL("NOT VALID")]))
                self.queries.append("ALTER TABLE %s.%s ADD CONSTRAINT %s %s NOT VALID" % (schema, table, name,
                                                                                           definition))
            if not state:
                self.conn.commit()  # kept NOT VALID whatever VALIDATE finds: new rows are checked
                cur.execute("SAVEPOINT sqlite_migrate_validate")
                try:
                    cur.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(ident, con))
                except psycopg2.Error as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT sqlite_migrate_validate")
                    message = validation_message(cur, schema, table, name, exc)
                    self.conn.rollback()
                    raise ValidationFailed(message) from None
                self.queries.append("ALTER TABLE %s.%s VALIDATE CONSTRAINT %s" % (schema, table, name))
            forget_set_aside_fk(cur, schema, table, name)
        self.conn.commit()


def _constraint_state(cur, schema, table, name):
    """None when the constraint is absent, else whether it is validated."""
    cur.execute("SELECT c.convalidated FROM pg_constraint c JOIN pg_class k ON k.oid = c.conrelid "
                "JOIN pg_namespace n ON n.oid = k.relnamespace WHERE n.nspname = %s AND k.relname = %s "
                "AND c.conname = %s", (schema, table, name))
    row = cur.fetchone()
    return row[0] if row else None


# The named foreign key's columns, referenced table and referenced columns.
VIOLATIONS_SQL = """
SELECT %s
  FROM pg_constraint c JOIN pg_class k ON k.oid = c.conrelid JOIN pg_namespace n ON n.oid = k.relnamespace
 WHERE n.nspname = %%s AND k.relname = %%s AND c.conname = %%s
""" % FK_COLUMNS


def violations(cur, schema, table, name):
    """(columns, count of rows violating the foreign key, sample of their distinct missing references)."""
    cur.execute(VIOLATIONS_SQL, (schema, table, name))
    cols, ref_table, ref_cols = cur.fetchone()
    missing = sql.SQL("FROM {} s WHERE {}").format(sql.Identifier(schema, table),
                                                   fk_condition(cols, ref_table, ref_cols))
    cur.execute(sql.SQL("SELECT count(*) ") + missing)
    count = cur.fetchone()[0]
    keys = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in cols)
    cur.execute(sql.SQL("SELECT DISTINCT {} {} ORDER BY {} LIMIT {}").format(
        keys, missing, keys, sql.Literal(SAMPLE_VIOLATIONS)))
    return cols, count, [row if len(row) > 1 else row[0] for row in cur.fetchall()], ref_table


def validation_message(cur, schema, table, name, exc):
    """What failed, how many rows, which references, and what to do."""
    cols, count, sample, ref_table = violations(cur, schema, table, name)
    where = "%s.%s" % (schema, table)
    return ("foreign key %s on %s (%s) -> %s: %d loaded %s no parent row (missing %s: %s); PostgreSQL: %s. "
            "The cycle's tables are loaded and the constraint is back NOT VALID (new rows are checked, no "
            "loaded row was deleted); add the missing %s rows or delete those rows, then run "
            "ALTER TABLE %s VALIDATE CONSTRAINT %s (or rerun the migration: it validates again)" % (
                name, where, ", ".join(cols), ref_table, count, "row has" if count == 1 else "rows have",
                ", ".join(cols), ", ".join(str(v) for v in sample), str(exc).strip().splitlines()[0],
                ref_table, where, name))
