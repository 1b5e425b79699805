"""module_utils/schema/steps.py: checksums, ordering and edited-step detection (no server)."""

import hashlib

import pytest
from ansible.module_utils.schema.steps import SchemaStepError, checksum, normalize_steps, plan
from schema_render import render_steps


def steps(*items):
    return normalize_steps([{"step": n, "name": name, "sql": sql} for n, name, sql in items])


def recorded(desired):
    return {s["step"]: (s["name"], s["checksum"]) for s in desired}


def test_checksum_is_sha256_of_rendered_sql():
    assert checksum("SELECT 1;") == hashlib.sha256(b"SELECT 1;").hexdigest()
    assert checksum("SELECT 1;") != checksum("SELECT 1; ")


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
    with pytest.raises(SchemaStepError, match=r"applied as 'aggregates_apache'.*'aggregates_community'.*edition"):
        plan(new, recorded(old))


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
