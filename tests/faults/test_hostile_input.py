"""Hostile SQLite input, run through Ansible exactly as a playbook runs sqlite_migrate (issue #9, item 4).

Every case must end in one of two ways: the data migrates correctly (checked value by value
in PostgreSQL) or it is refused with a reason (a reject record with table, source rowid,
column and reason, or one clear fail_json msg naming the file). Never a traceback, never a
row that is neither copied, rejected nor counted as a duplicate, never a hang.

The module is run by `ansible-playbook` (ANSIBLE_CONFIG=ansible.cfg, cwd = repository root,
the ansible.posix.json callback so the results can be read back); the target is the session's
throw-away cluster (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from playbooks_run import PlaybookTimeout, one_play, run_playbook
from psycopg2 import sql

pytestmark = pytest.mark.faults

PLAYBOOK_TIMEOUT = 300  # seconds; a hang (e.g. reading /dev/zero) fails the test instead of blocking CI
BIG = 10 * 1024 * 1024  # 10 MB values


# -- running the module through Ansible --------------------------------------------------------

class Run:
    """One ansible-playbook run: rc, seconds, combined output and one result per task."""

    def __init__(self, rc, seconds, stdout, stderr, results):
        self.rc = rc
        self.seconds = seconds
        self.output = stdout + "\n" + stderr
        self.results = results

    def assert_clean(self, password):
        """No traceback anywhere, no unexpected-error path, no password, no 10 MB value echoed."""
        assert "Traceback" not in self.output, self.output[-4000:]
        for res in self.results:
            # Ansible 2.19 puts "(traceback unavailable)" in every failed result; a real one starts "Traceback"
            assert "Traceback" not in str(res.get("exception", "")), res.get("exception")
            assert "unexpected error" not in str(res.get("msg", "")), res.get("msg")
        assert password not in self.output
        assert len(self.output) < BIG // 10, "a huge value was echoed into the Ansible output"

    def leaked(self, password):
        return self.output.count(password)


def run_tasks(pg_server, db, tmp_path, tasks, timeout=PLAYBOOK_TIMEOUT):
    """Run sqlite_migrate once per entry of tasks (module params; `_check_mode` for a dry run).

    Every task has ignore_errors so each case reports its own result.
    """
    conn = {k: v for k, v in pg_server.params(db).items() if v not in (None, "")}
    params = [dict(conn, **{k: v for k, v in t.items() if not k.startswith("_")}) for t in tasks]
    cases = [{"name": "case %d" % i,
              "sqlite_migrate": {k: "{{ p[%d][%r] }}" % (i, k) for k in p},
              "check_mode": bool(t.get("_check_mode")), "ignore_errors": True}
             for i, (p, t) in enumerate(zip(params, tasks))]
    playbook = one_play(cases, tmp_path, "hostile input")
    try:
        done = run_playbook(playbook, extra_vars={"p": params}, json_output=True, timeout=timeout)
    except PlaybookTimeout:
        pytest.fail("ansible-playbook did not finish within %d s (a hang on hostile input)" % timeout)
    data = done.document()
    results = [task["hosts"]["localhost"] for task in data["plays"][0]["tasks"]]
    assert len(results) == len(tasks), done.tail(3000)
    return Run(done.rc, done.seconds, done.stdout, done.stderr, results)


def rows_unaccounted(result):
    """Source rows neither copied, rejected nor counted as duplicates, over every table of a result."""
    lost = 0
    for res in (result.get("tables") or {}).values():
        lost += abs(res["source_rows"] - res["copied_rows"] - res["rejected_rows"] - res["duplicate_rows"])
    return lost


def reject_records(path):
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def qi(name):
    """SQLite identifier quoting (the module's own rule: double the double quotes)."""
    return '"%s"' % name.replace('"', '""')


@contextmanager
def extra_database(pg_server):
    name = "f_" + uuid.uuid4().hex[:10]
    admin = pg_server.connect()
    admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        admin.cursor().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def fetch(conn, query, args=None):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


# -- hostile identifiers -------------------------------------------------------------------------

VICTIM = "victim"
T_WEIRD = 'we"ird; DROP TABLE victim;--'
T_GROUP = "group"  # an SQL keyword as a table name
T_UNI = "tëst ☃\ttab"
# source columns of each table; the first one is an INTEGER PRIMARY KEY (PostgreSQL: identity)
COLS = {
    T_WEIRD: ["id%s", "select", "a b", "x'y", 'semi;colon"q', "50% off", "new\nline"],
    T_GROUP: ["order", "from", "where", "user"],
    T_UNI: ["ключ", "values); DELETE FROM victim; --", "%(x)s"],
}
TARGET_SCHEMA = 'sch"ema; --'
RENAMES = {T_GROUP: {"from": "to; DROP TABLE victim", "where": "where%"}}


def hostile_rows(table):
    cols = COLS[table]
    out = []
    for i in range(1, 41):
        values = [i] + ["%s|%d|'\";\\N\t%%s" % (c, i) for c in cols[1:]]
        out.append(tuple(values))
    return out


def make_hostile_identifier_source(path):
    lite = sqlite3.connect(path)
    for table, cols in COLS.items():
        defs = ["%s INTEGER PRIMARY KEY" % qi(cols[0])] + ["%s TEXT" % qi(c) for c in cols[1:]]
        lite.execute("CREATE TABLE %s (%s)" % (qi(table), ", ".join(defs)))
        lite.executemany("INSERT INTO %s VALUES (%s)" % (qi(table), ", ".join("?" * len(cols))), hostile_rows(table))
    lite.commit()
    lite.close()


def target_of(variant, table):
    """(schema, table, [column names]) of a source table in the PostgreSQL target."""
    cols = [RENAMES.get(table, {}).get(c, c) for c in COLS[table]] if variant == "mapping" else COLS[table]
    schema = TARGET_SCHEMA if variant == "mapping" and table == T_UNI else "public"
    name = "tar get; --" if variant == "mapping" and table == T_UNI else table
    return schema, name, cols


def create_hostile_targets(conn, variant):
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(VICTIM)))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(sql.Identifier(VICTIM)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(TARGET_SCHEMA)))
        for table in COLS:
            schema, name, cols = target_of(variant, table)
            ident = sql.Identifier(schema, name)
            defs = [sql.SQL("{} bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY").format(sql.Identifier(cols[0]))]
            defs += [sql.SQL("{} text").format(sql.Identifier(c)) for c in cols[1:]]
            cur.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(", ").join(defs)))
            # a non-unique index with a hostile name: dropped while loading and rebuilt after
            cur.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier("idx; drop %s " + name[:20]), ident, sql.Identifier(cols[1])))
            # the mapping's keys must name a real unique constraint: a hostile-named one
            cur.execute(sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
                sql.Identifier("uq; drop %s " + name[:20]), ident, sql.Identifier(cols[1])))


def hostile_mapping(variant):
    if variant == "identity":
        return None  # the module's default: every source table into the same name
    mapping = {}
    for table, cols in COLS.items():
        schema, name, _ = target_of(variant, table)
        spec = {"keys": [RENAMES.get(table, {}).get(cols[1], cols[1])], "order_by": [cols[-1]]}
        if table in RENAMES:
            spec["columns"] = RENAMES[table]
        if name != table:
            spec.update(schema=schema, target=name)
        mapping[table] = spec
    return mapping


@pytest.mark.parametrize("variant", ["mapping", "identity"])
def test_hostile_identifiers(pg_server, pg_db, tmp_path, fault_report, variant):
    """Quotes, semicolons, spaces, %, newlines, keywords and non-ASCII in table, column, schema and
    index names: a dry run, the load and a rerun (idempotent) all succeed and the data is exact."""
    src = tmp_path / "hostile names.db"
    make_hostile_identifier_source(src)
    conn = pg_server.connect(pg_db)
    create_hostile_targets(conn, variant)
    rejects = tmp_path / "rejects.jsonl"
    base = {"src": str(src), "on_conflict": "error", "batch_rows": 7, "rejects_path": str(rejects)}
    if hostile_mapping(variant) is not None:
        base["mapping"] = hostile_mapping(variant)
    copy_format = "text" if variant == "identity" else "auto"
    base["copy_format"] = copy_format
    run = run_tasks(pg_server, pg_db, tmp_path, [dict(base, _check_mode=True), base, base])
    dry, load, again = run.results
    run.assert_clean(pg_server.password)
    source_total = sum(len(hostile_rows(t)) for t in COLS)

    ok = 0
    # dry run: every row would be copied, nothing written
    assert not dry.get("failed"), dry.get("msg")
    assert {t: r["copied_rows"] for t, r in dry["tables"].items()} == {t: len(hostile_rows(t)) for t in COLS}
    assert "rejects_path" not in dry and all(r["status"] == "would_copy" for r in dry["tables"].values())
    ok += 1
    # the load: exact data, victim untouched, identity sequences past the migrated ids, indexes rebuilt
    assert not load.get("failed"), load.get("msg")
    assert load["total_copied"] == source_total and load["total_rejected"] == 0
    mismatched = 0
    for table in COLS:
        schema, name, cols = target_of(variant, table)
        got = fetch(conn, sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in cols), sql.Identifier(schema, name)))
        mismatched += len(set(hostile_rows(table)) ^ set(got))
        with conn.cursor() as cur:
            cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES (DEFAULT) RETURNING {}").format(
                sql.Identifier(schema, name), sql.Identifier(cols[0]), sql.Identifier(cols[0])))
            assert cur.fetchone()[0] > len(hostile_rows(table)), "identity sequence not synced for %r" % name
        assert fetch(conn, "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
                           "AND indexname LIKE %s", (schema, name, "idx; drop %%"))[0][0] == 1
    assert mismatched == 0
    assert fetch(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(VICTIM)))[0][0] == 1
    assert reject_records(rejects) == []
    ok += 1
    # rerun: already migrated, nothing changes
    assert not again.get("failed") and not again.get("changed"), again.get("msg")
    assert {r["status"] for r in again["tables"].values()} == {"skipped"}
    ok += 1
    conn.close()
    lost = sum(rows_unaccounted(r) for r in (dry, load)) + mismatched
    fault_report("hostile identifiers (%s mapping, %s COPY)" % ("custom" if variant == "mapping" else "default",
                                                               copy_format),
                 tries=len(run.results), recovered=ok, rows_lost=lost, secrets_leaked=run.leaked(pg_server.password),
                 detail="%d tables, %d rows, names with quotes/;/%%/spaces/newline/keywords; %.1fs"
                        % (len(COLS), source_total, run.seconds))


@pytest.mark.parametrize("on_conflict", ["skip", "update", "error"])
def test_hostile_identifiers_conflict_path(pg_server, pg_db, tmp_path, fault_report, on_conflict):
    """A row already in the target sends the batch through the staging-table fallback, whose
    statements also carry the hostile names: the conflict must still be a recorded duplicate/reject."""
    table = T_WEIRD
    src = tmp_path / "conflict.db"
    make_hostile_identifier_source(src)
    conn = pg_server.connect(pg_db)
    create_hostile_targets(conn, "identity")
    cols = COLS[table]
    first = hostile_rows(table)[0]
    with conn.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in cols),
            sql.SQL(", ").join(sql.Literal(v) for v in first)))
    rejects = tmp_path / "rejects.jsonl"
    run = run_tasks(pg_server, pg_db, tmp_path, [{"src": str(src), "tables": [table], "on_conflict": on_conflict,
                                                  "max_reject_ratio": 1, "rejects_path": str(rejects)}])
    res = run.results[0]
    lost = rows_unaccounted(res)
    recorded = reject_records(rejects)
    fault_report("hostile identifiers, conflict with existing rows (on_conflict=%s)" % on_conflict, tries=1,
                 recovered=int(not res.get("failed") and "Traceback" not in run.output and len(recorded) == 1),
                 rows_lost=lost, secrets_leaked=run.leaked(pg_server.password), detail=str(res.get("msg", ""))[:200])
    run.assert_clean(pg_server.password)
    assert not res.get("failed"), res.get("msg")
    tab = res["tables"][table]
    assert tab["copied_rows"] == len(hostile_rows(table)) - 1
    assert len(recorded) == 1 and recorded[0]["source_rowid"] == first[0]
    assert lost == 0
    conn.close()


# -- hostile values ------------------------------------------------------------------------------

VALUE_TABLE = "values"  # a keyword again
VALUE_COLUMNS = {  # column -> PostgreSQL type
    "t": "text", "b": "bytea", "f": "double precision", "n": "numeric", "n2": "numeric(12,2)", "i": "bigint",
    "d": "date", "tz": "timestamptz", "ts": "timestamp",
}
BIG_TEXT = ("é\t\\N\n'\";" * (BIG // 16))[: BIG // 2]  # ~10 MB of UTF-8, full of COPY escapes
BIG_BLOB = b"\x00\xff\\N\t" * (BIG // 4)
INF = math.inf

# (column, SQLite value, expected outcome, expected PostgreSQL value or reason fragment)
# outcome: "copy" must be stored exactly; "reject" must be a reject record with the reason;
# "either" may be refused with a reason, but when stored it must be exact.
VALUE_CASES = [
    ("t", "a\x00b", "reject", "NUL"),
    ("t", b"a\x00b", "reject", "NUL"),
    ("t", b"bad \xff\xfe utf-8", "reject", "invalid UTF-8"),
    ("t", BIG_TEXT, "copy", BIG_TEXT),
    ("t", "\\N", "copy", "\\N"),  # COPY's NULL marker as data stays text
    ("t", "'); DROP TABLE victim; --", "copy", "'); DROP TABLE victim; --"),
    ("b", b"\x00\xff\x00nul", "copy", b"\x00\xff\x00nul"),
    ("b", BIG_BLOB, "copy", BIG_BLOB),
    ("f", 1e308, "copy", 1e308),
    ("f", -1e308, "copy", -1e308),
    ("f", sys.float_info.max, "copy", sys.float_info.max),
    ("f", 5e-324, "copy", 5e-324),
    ("f", INF, "copy", INF),
    ("f", -INF, "copy", -INF),
    ("f", "1e999", "copy", INF),
    ("f", "-1e999", "copy", -INF),
    ("n", 1e308, "copy", Decimal("1e308")),
    ("n", INF, "copy", Decimal("Infinity")),
    ("n", -INF, "copy", Decimal("-Infinity")),
    ("n2", 1e308, "reject", "overflows"),
    ("n2", INF, "reject", "infinity"),
    ("i", 1e308, "reject", "out of range"),
    ("i", INF, "reject", "not an integer"),
    ("i", 2**63 - 1, "copy", 2**63 - 1),
    ("i", -(2**63), "copy", -(2**63)),
    ("d", "0000-01-01", "reject", "year 0"),
    ("d", "9999-12-31", "copy", "9999-12-31"),
    ("d", "0001-01-01", "copy", "0001-01-01"),
    ("d", 1e308, "reject", "out of range"),
    ("d", INF, "either", "infinity"),
    ("d", -INF, "either", "-infinity"),
    ("tz", "0000-01-01 00:00:00", "reject", "year 0"),
    ("tz", "9999-12-31 23:59:59.999999", "copy", "9999-12-31 23:59:59.999999+00"),
    ("tz", "9999-12-31T23:59:59-05:00", "either", "10000-01-01 04:59:59+00"),
    ("tz", "0001-01-01T00:00:00Z", "copy", "0001-01-01 00:00:00+00"),
    ("tz", 1e308, "reject", "out of range"),
    ("tz", INF, "either", "infinity"),
    ("ts", "9999-12-31 23:59:59", "copy", "9999-12-31 23:59:59"),
    ("ts", "0001-01-01T00:00:00+05:00", "either", "0001-12-31 19:00:00 BC"),
]
PG_VALUE = {"t": str, "b": bytes, "f": float, "n": Decimal, "n2": Decimal, "i": int, "d": str, "tz": str, "ts": str}


def make_value_source(path):
    cols = list(VALUE_COLUMNS)
    lite = sqlite3.connect(path)
    lite.execute("CREATE TABLE %s (id INTEGER PRIMARY KEY, %s)" % (qi(VALUE_TABLE), ", ".join(cols)))
    for rowid, (col, value, _outcome, _expected) in enumerate(VALUE_CASES, start=1):
        row = [rowid] + [value if c == col else None for c in cols]
        lite.execute("INSERT INTO %s VALUES (%s)" % (qi(VALUE_TABLE), ", ".join("?" * len(row))), row)
    lite.commit()
    lite.close()


@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_hostile_values(pg_server, pg_db, tmp_path, fault_report, copy_format):
    """NUL bytes, invalid UTF-8, 10 MB values, 1e308, infinities, years 0 and 9999: each value is
    stored exactly or rejected with a reason naming its column; accounting is exact."""
    src = tmp_path / "values.db"
    make_value_source(src)
    conn = pg_server.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, {})").format(
            sql.Identifier(VALUE_TABLE),
            sql.SQL(", ").join(sql.SQL("{} " + t).format(sql.Identifier(c)) for c, t in VALUE_COLUMNS.items())))
    rejects = tmp_path / "rejects.jsonl"
    run = run_tasks(pg_server, pg_db, tmp_path, [{"src": str(src), "max_reject_ratio": 1, "copy_format": copy_format,
                                                  "rejects_path": str(rejects), "batch_rows": 5}])
    res = run.results[0]
    run.assert_clean(pg_server.password)
    assert not res.get("failed"), res.get("msg")
    tab = res["tables"][VALUE_TABLE]
    records = {r["source_rowid"]: r for r in reject_records(rejects)}
    conn.cursor().execute("SET TimeZone = 'UTC'")
    cols = list(VALUE_COLUMNS)
    casts = [sql.SQL("{}::text").format(sql.Identifier(c)) if c not in ("t", "b") else sql.Identifier(c)
             for c in cols]
    rows = {r[0]: r[1:] for r in fetch(conn, sql.SQL("SELECT id, {} FROM {}").format(
        sql.SQL(", ").join(casts), sql.Identifier(VALUE_TABLE)))}

    good, problems, outcomes = 0, [], {"copied": 0, "rejected": 0}
    for rowid, (col, value, outcome, expected) in enumerate(VALUE_CASES, start=1):
        case = "row %d %s=%s" % (rowid, col, repr(value)[:40])
        rec = records.get(rowid)
        if rec is not None:
            outcomes["rejected"] += 1
            if rowid in rows:
                problems.append("%s: both copied and rejected" % case)
            elif rec["table"] != VALUE_TABLE or rec["column"] != col or not rec["reason"]:
                problems.append("%s: incomplete reject record %r" % (case, rec))
            elif outcome == "copy":
                problems.append("%s: rejected (%s) but PostgreSQL can store it" % (case, rec["reason"]))
            elif outcome == "reject" and expected.lower() not in rec["reason"].lower():
                problems.append("%s: reason %r does not mention %r" % (case, rec["reason"], expected))
            elif len(rec["value"]) > 1000:
                problems.append("%s: the reject record quotes %d characters" % (case, len(rec["value"])))
            else:
                good += 1
            continue
        if rowid not in rows:
            problems.append("%s: neither copied nor rejected" % case)
            continue
        outcomes["copied"] += 1
        raw = rows[rowid][cols.index(col)]
        got = bytes(raw) if col == "b" else PG_VALUE[col](raw) if raw is not None else None
        others = [v for c, v in zip(cols, rows[rowid]) if c != col]
        if outcome == "reject":
            problems.append("%s: copied as %r, expected a reject (%s)" % (case, repr(got)[:60], expected))
        elif got != expected or any(v is not None for v in others):
            problems.append("%s: stored %r, expected %r" % (case, repr(got)[:60], repr(expected)[:60]))
        else:
            good += 1
    lost = rows_unaccounted(res) + sum(1 for p in problems if "neither" in p)
    fault_report("hostile values (%s COPY)" % copy_format, tries=len(VALUE_CASES), recovered=good, rows_lost=lost,
                 secrets_leaked=run.leaked(pg_server.password),
                 detail="%(copied)d stored exactly, %(rejected)d rejected with a reason" % outcomes
                        + "; %.1fs" % run.seconds)
    assert problems == []
    assert tab["source_rows"] == len(VALUE_CASES)
    assert tab["copied_rows"] == outcomes["copied"] == len(rows)
    assert tab["rejected_rows"] == outcomes["rejected"] and tab["duplicate_rows"] == 0
    assert lost == 0
    assert hashlib.md5(BIG_TEXT.encode()).hexdigest() == fetch(
        conn, sql.SQL("SELECT md5(t) FROM {} WHERE length(t) > 1000").format(sql.Identifier(VALUE_TABLE)))[0][0]
    conn.close()


# -- bad files -----------------------------------------------------------------------------------

TICKS = 20000


def make_ticks(path, journal_mode="delete"):
    lite = sqlite3.connect(path)
    lite.execute("PRAGMA journal_mode=%s" % journal_mode)
    lite.execute("CREATE TABLE ticks (id INTEGER PRIMARY KEY, sym TEXT, px REAL, d TEXT)")
    lite.executemany("INSERT INTO ticks VALUES (?, ?, ?, ?)",
                     ((i, "SYM%04d" % (i % 997), i / 7.0, "2024-%02d-%02d" % (i % 12 + 1, i % 28 + 1))
                      for i in range(1, TICKS + 1)))
    lite.commit()
    lite.close()


def create_ticks_target(pg_server, db):
    conn = pg_server.connect(db)
    conn.cursor().execute("CREATE TABLE ticks (id bigint PRIMARY KEY, sym text, px double precision, d date)")
    return conn


def ticks_in(conn):
    return fetch(conn, "SELECT count(*) FROM ticks")[0][0]


def test_truncated_sqlite_file(pg_server, pg_db, tmp_path, fault_report):
    """A SQLite file cut short (at the header, inside the first page, at page boundaries, mid-page, and
    cut with a header patched to match) is refused with a message naming the file, or - only if every
    row is still readable - migrated completely. Never a partial load reported as success."""
    good = tmp_path / "ticks.db"
    make_ticks(good)
    data = good.read_bytes()
    page = int.from_bytes(data[16:18], "big")
    cuts = {"header only": 100, "first page": page // 2, "25%": len(data) // 4 // page * page,
            "50% mid-page": len(data) // 2 + page // 3, "one page short": len(data) - page}
    tasks, files = [], {}
    for label, size in cuts.items():
        path = tmp_path / ("cut %s.db" % label.replace("%", "pct"))
        path.write_bytes(data[:size])
        files[label] = path
        for verify in (True, False):
            tasks.append({"src": str(path), "verify_source": verify, "truncate": True})
    # cut to half, with the header's page count patched so SQLite believes the file: the damage is
    # only found while reading the rows
    patched = tmp_path / "cut consistent header.db"
    half_pages = len(data) // 2 // page
    patched.write_bytes(data[:28] + half_pages.to_bytes(4, "big") + data[32:half_pages * page])
    files["half, header patched"] = patched
    for verify in (True, False):
        tasks.append({"src": str(patched), "verify_source": verify, "truncate": True})
    conn = create_ticks_target(pg_server, pg_db)
    run = run_tasks(pg_server, pg_db, tmp_path, tasks)
    run.assert_clean(pg_server.password)
    ok, lost, bad = 0, 0, []
    for task, res in zip(tasks, run.results):
        name = Path(task["src"]).name
        if res.get("failed"):
            msg = res["msg"]
            if task["src"] in msg and any(w in msg for w in ("corrupt", "truncated", "malformed", "not a database")):
                ok += 1
            else:
                bad.append("%s: unclear failure %r" % (name, msg))
            lost += rows_unaccounted(res)
        else:
            tab = res["tables"]["ticks"]
            if tab["source_rows"] == TICKS and tab["copied_rows"] == TICKS:
                ok += 1
            else:
                bad.append("%s: reported success with %d of %d rows" % (name, tab["copied_rows"], TICKS))
                lost += TICKS - tab["copied_rows"] - tab["rejected_rows"] - tab["duplicate_rows"]
    fault_report("truncated SQLite file", tries=len(tasks), recovered=ok, rows_lost=lost,
                 secrets_leaked=run.leaked(pg_server.password),
                 detail="%d cuts x quick_check on/off; %.1fs" % (len(files), run.seconds))
    assert bad == []
    assert lost == 0
    # the intact file still migrates completely into the same database afterwards
    again = run_tasks(pg_server, pg_db, tmp_path, [{"src": str(good), "truncate": True}])
    again.assert_clean(pg_server.password)
    assert not again.results[0].get("failed"), again.results[0].get("msg")
    assert ticks_in(conn) == TICKS
    conn.close()


WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("DELETE FROM ticks WHERE id % 2 = 0")
conn.execute("INSERT INTO ticks VALUES (99999999, 'UNCOMMITTED', 1.0, '2024-01-01')")
print("holding", flush=True)
time.sleep(600)
"""


@contextmanager
def exclusive_writer(path, cache_pages=None):
    """Another process holding BEGIN EXCLUSIVE (with uncommitted changes) on the SQLite file.

    cache_pages: a tiny page cache makes the writer spill uncommitted pages into the file itself,
    so killing it leaves a hot journal (an application that crashed mid-transaction).
    """
    code = WRITER
    if cache_pages:
        code = code.replace('conn.execute("BEGIN', 'conn.execute("PRAGMA cache_size=%d")\nconn.execute("BEGIN'
                            % cache_pages)
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_sqlite_file_locked_by_a_writer(pg_server, pg_db, tmp_path, fault_report, journal_mode):
    """rollback journal: the exclusive lock blocks readers, so the run fails within the busy timeout
    saying the file is locked (nothing written) and succeeds once the writer is gone.
    WAL: readers are not blocked; the run migrates the last committed state, never the writer's
    uncommitted rows."""
    src = tmp_path / ("locked-%s.db" % journal_mode)
    make_ticks(src, journal_mode)
    conn = create_ticks_target(pg_server, pg_db)
    task = {"src": str(src), "rejects_path": str(tmp_path / "rejects.jsonl")}
    with exclusive_writer(src):
        locked = run_tasks(pg_server, pg_db, tmp_path, [task], timeout=120)
    first = locked.results[0]
    locked.assert_clean(pg_server.password)
    tries, ok, lost = 1, 0, rows_unaccounted(first)
    if journal_mode == "delete":
        assert first.get("failed"), "a run against an exclusively locked file did not fail"
        assert str(src) in first["msg"] and "locked by another process" in first["msg"], first["msg"]
        assert ticks_in(conn) == 0
        ok += 1
        released = run_tasks(pg_server, pg_db, tmp_path, [task])  # the writer is gone (killed, rolled back)
        released.assert_clean(pg_server.password)
        second = released.results[0]
        tries += 1
        lost += rows_unaccounted(second)
        assert not second.get("failed"), second.get("msg")
        ok += 1
        seconds = (locked.seconds, released.seconds)
    else:
        assert not first.get("failed"), first.get("msg")
        ok += 1
        seconds = (locked.seconds,)
    assert ticks_in(conn) == TICKS
    assert fetch(conn, "SELECT count(*) FROM ticks WHERE sym = 'UNCOMMITTED'")[0][0] == 0
    lost += TICKS - ticks_in(conn)
    fault_report("SQLite file locked by a writer (%s journal)" % journal_mode, tries=tries, recovered=ok,
                 rows_lost=lost, secrets_leaked=locked.leaked(pg_server.password),
                 detail="runs took %s s" % ", ".join("%.1f" % s for s in seconds))
    assert lost == 0
    conn.close()


def test_special_files_do_not_hang(pg_server, pg_db, tmp_path, fault_report):
    """A symlink to /dev/zero (an endless stream of zeros), /dev/zero itself, a FIFO with no writer
    and a symlink loop are refused at once with a message naming the file; nothing blocks."""
    zero_link = tmp_path / "spock_local.db"
    zero_link.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.db"
    loop.symlink_to(loop)
    cases = {str(zero_link): "not a regular file", "/dev/zero": "not a regular file", str(fifo): "not a regular file",
             str(loop): "cannot be inspected"}
    conn = create_ticks_target(pg_server, pg_db)
    run = run_tasks(pg_server, pg_db, tmp_path, [{"src": path} for path in cases], timeout=120)
    run.assert_clean(pg_server.password)
    ok, bad = 0, []
    for (path, reason), res in zip(cases.items(), run.results):
        if res.get("failed") and path in res["msg"] and reason in res["msg"]:
            ok += 1
        else:
            bad.append("%s: %r" % (path, res.get("msg")))
    fault_report("special files (symlink to /dev/zero, FIFO, symlink loop)", tries=len(cases), recovered=ok,
                 rows_lost=0, secrets_leaked=run.leaked(pg_server.password),
                 detail="all refused in %.1fs (one ansible-playbook run)" % run.seconds)
    assert bad == []
    assert ticks_in(conn) == 0
    conn.close()


def test_writer_killed_mid_transaction(pg_server, pg_db, tmp_path, fault_report):
    """A writer killed after spilling uncommitted pages into the file leaves a hot journal. The
    read-only migration must not read the half-written pages: it refuses, naming the journal, and
    after the operator's documented step (open the file once with sqlite3) migrates the last
    committed state exactly."""
    src = tmp_path / "crashed.db"
    make_ticks(src)
    conn = create_ticks_target(pg_server, pg_db)
    with exclusive_writer(src, cache_pages=5):
        pass  # killed on exit, in the middle of its transaction
    journal = Path(str(src) + "-journal")
    assert journal.exists() and journal.stat().st_size > 0
    task = {"src": str(src)}
    first = run_tasks(pg_server, pg_db, tmp_path, [task], timeout=120)
    first.assert_clean(pg_server.password)
    res = first.results[0]
    ok = int(bool(res.get("failed")) and "hot journal" in res.get("msg", "") and str(src) in res.get("msg", "")
             and ticks_in(conn) == 0)
    lite = sqlite3.connect(src)  # the operator's step: SQLite rolls the journal back
    committed = lite.execute("SELECT count(*) FROM ticks").fetchone()[0]
    lite.close()
    second = run_tasks(pg_server, pg_db, tmp_path, [task])
    second.assert_clean(pg_server.password)
    ok += int(not second.results[0].get("failed"))
    lost = rows_unaccounted(res) + rows_unaccounted(second.results[0]) + committed - ticks_in(conn)
    fault_report("SQLite writer killed mid-transaction (hot journal)", tries=2, recovered=ok, rows_lost=lost,
                 secrets_leaked=first.leaked(pg_server.password) + second.leaked(pg_server.password),
                 detail=str(res.get("msg", ""))[:120])
    assert res.get("failed") and "hot journal" in res["msg"], res.get("msg")
    assert not second.results[0].get("failed"), second.results[0].get("msg")
    assert committed == TICKS and ticks_in(conn) == TICKS
    assert fetch(conn, "SELECT count(*) FROM ticks WHERE sym = 'UNCOMMITTED'")[0][0] == 0
    assert lost == 0
    conn.close()
