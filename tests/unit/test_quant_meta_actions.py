"""module_utils/core/quant_meta_actions.py (the module quant_meta) without a server (issue 19, item 3)."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from ansible.module_utils.core.quant_meta_actions import QuantMetaError, check_request, progress_row, refresh_due, run

T0 = datetime(2026, 12, 4, 7, 0, tzinfo=timezone.utc)


def checkpoint(**values):
    row = {"table_name": "ohlcv_data", "status": "running", "source_rows": 1000, "copied_rows": 200,
           "rejected_rows": 30, "duplicate_rows": 20, "seconds": 0.5}
    row.update(values)
    return row


def test_progress_counts_every_processed_row_as_done():
    assert progress_row(checkpoint()) == {"table_name": "ohlcv_data", "status": "running", "source_rows": 1000,
                                          "done_rows": 250, "percent": 25.0, "rows_per_second": 500}


def test_progress_of_an_empty_source_or_a_first_batch_divides_by_no_zero():
    empty = progress_row(checkpoint(source_rows=0, copied_rows=0, rejected_rows=0, duplicate_rows=0, seconds=0))
    assert (empty["percent"], empty["rows_per_second"]) == (0.0, 0)
    first = progress_row(checkpoint(seconds=0))
    assert first["rows_per_second"] == 250000  # 250 rows over the 1 ms floor
    assert progress_row(checkpoint(source_rows=3, copied_rows=1, rejected_rows=0, duplicate_rows=0))["percent"] == 33.3


@pytest.mark.parametrize(("has_checkpoints", "last_load", "last_refresh", "due", "says"), [
    (False, None, None, False, "no migration has run"),
    (True, None, None, True, "no aggregate refresh was recorded"),
    (True, T0, None, True, "no aggregate refresh was recorded"),
    (True, T0 + timedelta(seconds=1), T0, True, "a load completed at 2026-12-04T07:00:01+00:00, after"),
    (True, T0, T0, False, "no load completed since"),
    (True, T0 - timedelta(hours=1), T0, False, "no load completed since the last refresh at 2026-12-04T07:00"),
    (True, None, T0, False, "no load completed since"),  # every checkpoint running or reset
])
def test_a_refresh_is_due_after_a_load_newer_than_the_last_refresh(has_checkpoints, last_load, last_refresh, due,
                                                                  says):
    got, reason = refresh_due(has_checkpoints, last_load, last_refresh)
    assert got is due
    assert says in reason


@pytest.mark.parametrize(("action", "tables", "message"), [
    ("reset", None, "tables: reset needs the names"),
    ("reset", [], "tables: reset needs the names"),
    ("reset", ["ok", " "], "tables: reset needs the names"),
    ("progress", ["tickers"], "tables: only the reset action takes tables"),
    ("vacuum", None, "action: 'vacuum' is not one of progress, refresh_status, record_refresh, reset"),
])
def test_bad_input_names_the_option_before_connecting(action, tables, message):
    with pytest.raises(QuantMetaError, match=re.escape(message)):
        run({"login_port": 1, "login_host": "unreachable.invalid"}, action, tables)


def test_good_input_passes():
    check_request("reset", ["tickers"])
    for action in ("progress", "refresh_status", "record_refresh"):
        check_request(action, None)

