"""isolate(): the halving that finds a failing batch's bad rows (issue 20, item 3).

The bound that matters: with b bad rows among n, at most 1 + 2 b log2(n) attempts, where the
row-by-row fallback it replaces made n (each with a savepoint).
"""

from __future__ import annotations

import math
import random

from ansible.module_utils.migrate.reject_isolation import isolate


class Loader:
    """Fake atomic load: a group fails when it holds a bad item; remembers what went in and how often it was asked."""

    def __init__(self, bad):
        self.bad = set(bad)
        self.loaded = []
        self.attempts = 0

    def __call__(self, group):
        self.attempts += 1
        hit = [item for item in group if item in self.bad]
        if hit:
            return "refused %s" % hit[0]
        self.loaded.extend(group)
        return None


def test_a_clean_group_is_one_attempt():
    loader = Loader([])
    assert isolate(list(range(1000)), loader) == []
    assert loader.attempts == 1
    assert loader.loaded == list(range(1000))


def test_nothing_to_load_asks_nothing():
    loader = Loader([])
    assert isolate([], loader) == []
    assert loader.attempts == 0


def test_each_bad_item_comes_back_alone_with_its_own_error():
    loader = Loader([3, 4, 999])
    assert isolate(list(range(1000)), loader) == [(3, "refused 3"), (4, "refused 4"), (999, "refused 999")]
    assert sorted(loader.loaded) == [i for i in range(1000) if i not in (3, 4, 999)]


def test_good_items_go_in_in_order():
    # earlier rows first, as a row-by-row load would (a later row may reference an earlier one)
    loader = Loader([10, 500, 501])
    isolate(list(range(1000)), loader)
    assert loader.loaded == sorted(loader.loaded)


def test_attempts_grow_with_bad_rows_times_log_not_with_rows():
    rng = random.Random(20)
    n = 50000
    for bad_count in (1, 10, 100):
        loader = Loader(rng.sample(range(n), bad_count))
        failed = isolate(list(range(n)), loader)
        assert len(failed) == bad_count
        assert loader.attempts <= 1 + 2 * bad_count * math.ceil(math.log2(n))
        assert loader.attempts < n // 20


def test_every_item_bad_stays_linear():
    loader = Loader(range(64))
    assert len(isolate(list(range(64)), loader)) == 64
    assert loader.attempts == 2 * 64 - 1


def test_small_groups_go_row_by_row_in_one_call():
    # every row bad (say a NOT NULL column the mapping does not fill): n / small calls of each,
    # not 2 n attempts
    loader = Loader(range(1024))
    calls = []

    def each(group):
        calls.append(list(group))
        return [(item, "refused %s" % item) for item in group]

    failed = isolate(list(range(1024)), loader, each, 16)
    assert [item for item, _error in failed] == list(range(1024))
    assert len(calls) == 1024 // 16
    assert loader.attempts == 1024 // 16 - 1  # the groups of 1024, 512, ..., 32
    assert [item for group in calls for item in group] == list(range(1024))  # still in order


def test_a_clean_group_never_reaches_each():
    loader = Loader([])
    assert isolate(list(range(100)), loader, lambda group: 1 / 0, 16) == []
    assert loader.attempts == 1
