"""The load order from foreign keys and the keys a cycle sets aside (migrate/load_order.py), on graph inputs."""

from __future__ import annotations

from types import SimpleNamespace

from ansible.module_utils.migrate.load_order import (
    Edge,
    ForeignKey,
    LoadOrder,
    arrange,
    components,
    cycle_note,
    cyclic_components,
    late_warning,
    plan_edges,
    stable_order,
    unsatisfied,
)


def fk(name, child, parent):
    return ForeignKey(name, child, parent, "public", "t%d" % child, "FOREIGN KEY (x) REFERENCES t%d(id)" % parent)


def edges(*pairs):
    """Edges child -> parent from (child, parent) pairs, one foreign key each."""
    return [Edge(c, p, fk("fk_%d_%d" % (c, p), c, p)) for c, p in pairs]


def test_without_foreign_keys_the_order_stays():
    assert stable_order(4, []) == [0, 1, 2, 3]


def test_parents_come_first_and_ties_keep_the_order():
    # 0 album -> 1 artist; 2 track -> 0 album; 3 genre stands alone
    assert stable_order(4, edges((0, 1), (2, 0))) == [1, 0, 2, 3]


def test_a_chain_given_backwards_is_reversed():
    assert stable_order(4, edges((0, 1), (1, 2), (2, 3))) == [3, 2, 1, 0]


def test_a_diamond_keeps_the_order_among_ready_tables():
    # 0 references 1 and 2, both reference 3
    assert stable_order(4, edges((0, 1), (0, 2), (1, 3), (2, 3))) == [3, 1, 2, 0]


def test_the_order_satisfies_every_edge_of_a_dag():
    graph = edges((5, 0), (0, 3), (4, 3), (2, 5), (1, 2))
    order = stable_order(6, graph)
    assert sorted(order) == list(range(6))
    assert unsatisfied(order, graph) == []


def test_components_find_cycles_and_self_references():
    graph = edges((0, 1), (1, 0), (2, 2), (3, 0))
    assert sorted(components(4, graph)) == [[0, 1], [2], [3]]
    assert sorted(cyclic_components(4, graph)) == [[0, 1], [2]]


def test_a_long_chain_needs_no_recursion():
    count = 5000
    graph = edges(*[(i, i + 1) for i in range(count - 1)])
    assert stable_order(count, graph) == list(range(count - 1, -1, -1))


def test_a_two_table_cycle_sets_aside_one_key():
    graph = edges((0, 1), (1, 0))
    order, cycles, late = arrange(2, graph, reorder=True)
    assert order == [0, 1]
    assert [(comp, [e.fk.name for e in aside]) for comp, aside in cycles] == [([0, 1], ["fk_0_1"])]
    assert late == []


def test_a_self_reference_is_a_cycle_of_one():
    graph = edges((0, 0), (0, 1))  # employee.reports_to -> employee, employee -> department
    order, cycles, late = arrange(2, graph, reorder=True)
    assert order == [1, 0]
    assert [(comp, [e.fk.name for e in aside]) for comp, aside in cycles] == [([0], ["fk_0_0"])]
    assert late == []


def test_inside_a_cycle_a_table_whose_parents_are_loaded_goes_first():
    # 0 -> 1 -> 2 -> 0 and 0 -> 2: 2 waits for 0 only, 0 waits for 1 and 2, 1 waits for 2
    graph = edges((0, 1), (1, 2), (2, 0), (0, 2))
    order, cycles, _late = arrange(3, graph, reorder=True)
    assert order == [2, 1, 0]
    assert [e.fk.name for e in cycles[0][1]] == ["fk_2_0"]  # the one key the order cannot satisfy


def test_tables_referencing_a_cycle_load_after_it_and_parents_before():
    # 2 <-> 3 is the cycle; 0 references 2, 3 references 1
    graph = edges((2, 3), (3, 2), (0, 2), (3, 1))
    order, cycles, late = arrange(4, graph, reorder=True)
    assert order.index(1) < order.index(3) and order.index(3) < order.index(0) and order.index(2) < order.index(0)
    assert [comp for comp, _aside in cycles] == [[2, 3]] and late == []
    assert all(e.fk.name in ("fk_2_3", "fk_3_2") for e in cycles[0][1]) and len(cycles[0][1]) == 1


def test_an_explicit_order_stays_and_reports_the_edges_it_breaks():
    # 0 references 1 (listed after it); 2 <-> 3 cycle listed in order
    graph = edges((0, 1), (2, 3), (3, 2))
    order, cycles, late = arrange(4, graph, reorder=False)
    assert order == [0, 1, 2, 3]
    assert [e.fk.name for e in late] == ["fk_0_1"]
    assert [(comp, [e.fk.name for e in aside]) for comp, aside in cycles] == [([2, 3], ["fk_2_3"])]


def plan(name, oid):
    return SimpleNamespace(source_table=name, target=SimpleNamespace(oid=oid), notes=[], warnings=[])


def test_plan_edges_link_every_plan_of_a_target():
    plans = [plan("a", 10), plan("b", 20), plan("b_old", 20)]
    found = plan_edges(plans, [fk("a_b", 10, 20), fk("b_self", 20, 20)])
    assert sorted((e.child, e.parent, e.fk.name) for e in found) == [
        (0, 1, "a_b"), (0, 2, "a_b"), (1, 1, "b_self"), (1, 2, "b_self"), (2, 1, "b_self"), (2, 2, "b_self")]


def test_the_report_names_the_order_and_the_cycle():
    cycle = SimpleNamespace(tables=["a", "b"], fks=[fk("a_b", 1, 2)], first=0, last=1)
    report = LoadOrder([plan("a", 1), plan("b", 2)], [cycle], []).report()
    assert report == {"load_order": ["a", "b"], "fk_cycles": [
        {"tables": ["a", "b"], "constraints": ["a_b on public.t1"], "handling": "set_aside"}]}
    assert LoadOrder([], [cycle], [], set_aside=False).report()["fk_cycles"][0]["handling"] == "kept"


def test_notes_and_warnings_name_tables_and_constraints():
    note = cycle_note("employee", ["employee"], [fk("reports_to_fk", 1, 1)])
    assert note.startswith("table employee references itself: reports_to_fk on public.t1 is set aside")
    note = cycle_note("a", ["a", "b"], [fk("a_b", 1, 2), fk("b_a", 2, 1)])
    assert "cycle with b" in note and "a_b on public.t1, b_a on public.t2 are set aside while they load" in note
    note = cycle_note("employee", ["employee"], [fk("reports_to_fk", 1, 1)], set_aside=False)
    assert "reports_to_fk on public.t1 is kept in place" in note and "fk_cycles: set_aside drops it" in note
    text = late_warning(plan("album", 1), plan("artist", 2), fk("album_artist_fk", 1, 2))
    assert "album loads before artist" in text and "album_artist_fk" in text and "list artist first" in text
