"""module_utils/schema/steps.py: checksums, ordering and edited-step detection (no server)."""

import hashlib

import pytest
from ansible.module_utils.schema.steps import (
    SchemaStepError,
    checksum,
    normalize_steps,
    outdated,
    plan,
    statements,
    text_checksum,
    transitions,
)
from schema_render import render_steps


def steps(*items):
    return normalize_steps([{"step": n, "name": name, "sql": sql} for n, name, sql in items])


def recorded(desired):
    return {s["step"]: (s["name"], s["checksum"]) for s in desired}


def test_checksum_covers_the_statements_not_the_comments():
    assert checksum("SELECT 1;") == hashlib.sha256(b"SELECT 1;").hexdigest()
    commented = "-- Step 1: why\n\nSELECT 1;   \n  -- indented comment\n"
    assert checksum(commented) == checksum("SELECT 1;")
    assert statements("SELECT 1; -- kept\n") == "SELECT 1; -- kept"
    assert checksum("SELECT 1;") != checksum("SELECT 2;")
    assert text_checksum(commented) == hashlib.sha256(commented.encode()).hexdigest()


def test_a_comment_only_edit_is_not_an_edit():
    old = steps((1, "tables", "-- makes a\nCREATE TABLE a ()\n"))
    reworded = steps((1, "tables", "-- makes table a (see module_utils/x.py)\nCREATE TABLE a ()\n"))
    assert plan(reworded, recorded(old)) == []
    assert outdated(reworded, recorded(old)) == []


def test_a_whole_text_checksum_is_accepted_and_marked_for_re_recording():
    sql = "-- makes a\nCREATE TABLE a ()\n"
    desired = steps((1, "tables", sql))
    legacy = {1: ("tables", hashlib.sha256(sql.encode()).hexdigest())}
    assert plan(desired, legacy) == []
    assert [s["step"] for s in outdated(desired, legacy)] == [1]


def test_earlier_checksums_accept_a_known_older_text():
    before = "-- see module_utils/old.py\nCREATE TABLE a ()\n"
    now = "-- see module_utils/new.py\nCREATE TABLE a ()\n"
    legacy = {1: ("tables", hashlib.sha256(before.encode()).hexdigest())}
    with pytest.raises(SchemaStepError, match="step 1 'tables' was edited"):
        plan(steps((1, "tables", now)), legacy)
    known = normalize_steps([{"step": 1, "name": "tables", "sql": now,
                              "earlier_checksums": [legacy[1][1].upper()]}])
    assert plan(known, legacy) == []
    assert [s["step"] for s in outdated(known, legacy)] == [1]


def test_the_role_step_7_accepts_what_the_version_before_the_packages_recorded():
    """Databases upgraded before 15930a9 recorded the whole text of step 7 with the old path."""
    desired = normalize_steps(render_steps("apache"))
    old_text = {7: ("fundamentals_key", "3254dbfa44e8ff260e7edbcd891c6889b59b2616981d88a7cf408d7b12c27766")}
    rest = {s["step"]: (s["name"], s["checksum"]) for s in desired if s["step"] != 7}
    assert plan(desired, {**rest, **old_text}) == []


def test_steps_are_sorted_and_validated():
    out = steps((2, "b", "SELECT 2"), (1, "a", "SELECT 1"))
    assert [s["step"] for s in out] == [1, 2]
    with pytest.raises(SchemaStepError, match="step 1 is listed twice"):
        steps((1, "a", "x"), (1, "b", "y"))
    with pytest.raises(SchemaStepError, match="non-empty SQL"):
        steps((1, "a", "  "))
    with pytest.raises(SchemaStepError, match="integer 'step'"):
        normalize_steps([{"name": "a", "sql": "x"}])


def test_fresh_database_applies_everything_in_order():
    desired = steps((1, "a", "x"), (2, "b", "y"))
    assert [s["step"] for s in plan(desired, {})] == [1, 2]


def test_rerun_applies_only_new_steps():
    old = steps((1, "a", "x"), (2, "b", "y"))
    new = steps((1, "a", "x"), (2, "b", "y"), (3, "c", "z"))
    assert [s["step"] for s in plan(new, recorded(old))] == [3]
    assert plan(old, recorded(old)) == []


def test_edited_step_is_an_error_naming_it():
    old = steps((1, "tables", "CREATE TABLE a ()"), (2, "indexes", "y"))
    edited = steps((1, "tables", "CREATE TABLE a (x int)"), (2, "indexes", "y"))
    with pytest.raises(SchemaStepError, match="step 1 'tables' was edited after it was applied"):
        plan(edited, recorded(old))


def test_edition_switch_is_reported_by_name():
    old = steps((4, "aggregates_apache", "x"))
    new = steps((4, "aggregates_community", "y"))
    with pytest.raises(SchemaStepError, match=r"applied as 'aggregates_apache'.*'aggregates_community'.*edition"
                                              r".*no transition from 'aggregates_apache' \(transitions: none\)"):
        plan(new, recorded(old))


def test_a_transition_from_the_recorded_variant_is_planned_not_refused():
    old = steps((4, "aggregates_apache", "x"), (5, "policies_apache", "p"))
    new = normalize_steps([
        {"step": 4, "name": "aggregates_community", "sql": "y", "transitions": {"aggregates_apache": "t4"}},
        {"step": 5, "name": "policies_community", "sql": "q", "transitions": {"policies_apache": "t5"}},
        {"step": 6, "name": "app_schema", "sql": "z"}])
    assert [s["step"] for s in plan(new, recorded(old))] == [6]
    assert [(s["step"], src, s["transitions"][src]) for s, src in transitions(new, recorded(old))] == [
        (4, "aggregates_apache", "t4"), (5, "policies_apache", "t5")]
    assert outdated(new, recorded(old)) == []  # a transition is not a re-record
    # once transitioned (recorded under the new name), nothing is left to do
    assert transitions(new, recorded(new)) == [] and plan(new, recorded(new)) == []


def test_a_transition_from_another_variant_does_not_cover_this_one():
    old = steps((4, "aggregates_other", "x"))
    new = normalize_steps([{"step": 4, "name": "aggregates_community", "sql": "y",
                            "transitions": {"aggregates_apache": "t4"}}])
    with pytest.raises(SchemaStepError, match=r"no transition from 'aggregates_other' "
                                              r"\(transitions: aggregates_apache\)"):
        plan(new, recorded(old))


@pytest.mark.parametrize("bad", [{"aggregates_apache": "  "}, {"aggregates_community": "x"}, {"a": None}])
def test_a_transition_needs_sql_and_another_variant(bad):
    with pytest.raises(SchemaStepError, match="step 4 \\(aggregates_community\\): the transition from"):
        normalize_steps([{"step": 4, "name": "aggregates_community", "sql": "y", "transitions": bad}])


def test_the_role_moves_an_apache_database_to_community_in_steps_4_and_5():
    community = {s["step"]: s for s in render_steps("community")}
    assert {n: sorted(s["transitions"]) for n, s in community.items() if s["transitions"]} == {
        4: ["aggregates_apache"], 5: ["policies_apache"]}
    step4 = community[4]["transitions"]["aggregates_apache"]
    for view in ("ohlcv_monthly", "ohlcv_quarterly", "ohlcv_yearly"):
        assert "DROP MATERIALIZED VIEW %s;" % view in step4  # no CASCADE: a dependent object stops it
    assert "DROP PROCEDURE quant_meta.refresh_ohlcv_aggregates();" in step4
    assert statements(community[4]["sql"]) in statements(step4)  # then exactly the Community variant
    assert statements(community[5]["sql"]) in statements(community[5]["transitions"]["policies_apache"])
    assert not any(s["transitions"] for s in render_steps("apache"))  # no way back: Apache cannot hold them


def test_new_step_inserted_before_applied_ones_is_refused():
    old = steps((1, "a", "x"), (3, "c", "z"))
    new = steps((1, "a", "x"), (2, "b", "y"), (3, "c", "z"))
    with pytest.raises(SchemaStepError, match="step 2 'b' is new but step 3 is already applied"):
        plan(new, recorded(old))


def test_recorded_step_missing_from_role_is_refused():
    old = steps((1, "a", "x"), (2, "b", "y"))
    with pytest.raises(SchemaStepError, match="step 2 'b' is recorded"):
        plan(steps((1, "a", "x")), recorded(old))


@pytest.mark.parametrize("edition", ["community", "apache"])
def test_a_database_at_step_5_gets_the_application_steps(edition):
    desired = normalize_steps(render_steps(edition))
    at_five = recorded([s for s in desired if s["step"] <= 5])
    assert [(s["step"], s["name"]) for s in plan(desired, at_five)] == [(6, "app_schema"), (7, "fundamentals_key")]
    assert [s["step"] for s in desired] == list(range(1, len(desired) + 1))
