"""Which checkpoints still describe the target a table loads into (issue 20, item 4)."""

from __future__ import annotations

import collections

from ansible.module_utils.migrate.checkpoint_match import emptied_warning, reload_warning, resume_refusal, target_change

Target = collections.namedtuple("Target", "display oid")


def checkpoint(table="public.prices", oid=16384, **extra):
    return dict({"target_table": table, "target_oid": oid, "run_id": "r1", "copied_rows": 5}, **extra)


def test_same_name_and_oid_match():
    assert target_change(checkpoint(), Target("public.prices", 16384)) is None


def test_an_older_checkpoint_matches_by_name():
    assert target_change(checkpoint(oid=None), Target("public.prices", 16384)) is None


def test_another_table_is_named_with_both_names():
    text = target_change(checkpoint(), Target("public.prices_b", 16999))
    assert "went into public.prices," in text and "public.prices_b" in text


def test_a_recreated_table_names_both_oids():
    text = target_change(checkpoint(), Target("public.prices", 17001))
    assert "dropped and created again" in text and "16384" in text and "17001" in text


def test_messages_name_the_table_the_run_and_what_to_do():
    change = target_change(checkpoint(), Target("public.prices", 17001))
    assert reload_warning("prices", checkpoint(), change).startswith("table prices: run r1 recorded it as migrated")
    refusal = resume_refusal("prices", checkpoint(), change)
    assert "truncate: true" in refusal and "public.prices" in refusal
    assert "5 rows into public.prices" in emptied_warning("prices", checkpoint(), Target("public.prices", 16384))
