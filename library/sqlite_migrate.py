#!/usr/bin/python
"""Ansible module sqlite_migrate: copy SQLite tables into existing PostgreSQL tables."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sqlite_migrate
short_description: Copy tables from a SQLite file into existing PostgreSQL tables, losslessly and resumably
description:
  - Streams every row of the selected SQLite tables (stdlib C(sqlite3), rowid order, or time order for
    hypertables) into PostgreSQL with C(COPY), converting each value by the B(target) column type read from
    the PostgreSQL catalog at run time.
  - A value that cannot be stored losslessly is a B(reject) (table, source rowid, column, value, reason),
    never a silent NULL. Rejects go to I(rejects_path) as JSON lines and to C(quant_meta.migration_rejects).
  - Duplicate keys are detected in Python and by the target's unique index, and handled per I(on_conflict)
    (or the table's C(on_conflict) in I(mapping)); every duplicate is recorded. Duplicates are judged only on
    a real unique constraint of the target, and a key holding NULL is never a duplicate unless the index is
    NULLS NOT DISTINCT (SQL and SQLite semantics). Orphans (lookup misses, I(references) misses) are rejects.
  - Memory stays flat with table size. A keyed table keeps at most 200,000 keys of earlier batches in Python
    (at least the last 100,000); a duplicate of an older row makes its batch's C(COPY) fail on the target's
    unique index and is handled per I(on_conflict) with the same outcome (the row streamed later is refused,
    skipped, or written over the earlier one), recorded as "key (...) already exists in <target>"; the
    table's C(notes) say so when it happens. Check mode (no target to ask) and I(on_conflict=update) in an
    order other than rowid's (I(order_by) not part of the key, where the highest rowid, not the row streamed
    later, must win) cannot forget a key; there the older keys move to a temporary SQLite file on disk
    (SQLite's temp directory, about 60 bytes a key, deleted at the end of the table) and stay exact.
  - Progress and checkpoints live in C(quant_meta.migration_checkpoints); each batch commits together with
    its checkpoint, so a killed run continues exactly with I(resume=true). A checkpoint records its source file
    (size, modification time, schema) and its target (name and table oid), so a table finished into another
    target, or into one dropped and created again, is loaded again with a warning (never C(skipped)); an
    interrupted load whose target changed is an error naming both; a finished target found empty is skipped
    with a warning saying I(truncate=true) reloads it.
  - A WITHOUT ROWID table (no rowid to resume on) streams in primary-key order and a resumed load skips the
    rows already processed in that order; that is exact because a resume is refused when the file changed
    (size, modification time or schema). Its rejects' C(source_rowid) is the row's 1-based position in that
    order. Views are not copied (they hold no rows of their own; the rows they show come with their tables)
    and are listed in C(skipped_views) with that reason; a view named in I(mapping) is skipped with a warning.
  - A column named C(rowid), C(_rowid_) or C(oid) is migrated as a column; resume and C(source_rowid) use the real
    rowid, reached by whichever of the three names the table does not declare (SQLite's rule). A table declaring
    all three is read like a WITHOUT ROWID table, in primary-key order, and without a primary key either it is
    refused before anything loads.
  - Load order - without I(mapping), the foreign keys among the target tables (read from C(pg_constraint)) order
    the load, parents before children; tables not linked keep the SQLite file's order. An explicit I(mapping)
    keeps its own order (list referenced tables first); a table it lists before a table it references gets a
    warning. The order used is returned in C(load_order).
  - Foreign-key cycles (tables referencing each other, or a table referencing itself such as
    C(employee.reports_to)) cannot be ordered. With I(fk_cycles=set_aside) (the default without I(mapping)), each
    cycle's foreign keys that the load order cannot satisfy are disabled, then validated - recorded in
    C(quant_meta.migration_set_aside_fks) and dropped before the cycle's first table loads, added back C(NOT VALID)
    after its last table, then C(VALIDATE)d (deferring them would need the whole cycle in one transaction, while
    every batch commits with its checkpoint). The cycles and their keys are
    returned in C(fk_cycles) and noted in each table's C(notes). Rows violating a key fail the run with a message
    naming the constraint, the table, the number of rows and a sample of the missing references; the key stays
    C(NOT VALID) (new rows are checked, no loaded row is deleted) until the rows are fixed and
    C(ALTER TABLE ... VALIDATE CONSTRAINT) runs, or a rerun validates again. A run that stopped while keys were set
    aside says so; the next run adds them back and validates them. The login user must own the cycle's tables.
    With I(fk_cycles=keep) the keys stay in place and a row referencing a row of a later batch is a reject.
  - A session-level advisory lock prevents two concurrent loads into the same database.
  - Conversion rules (documented decisions) - empty strings stay C('') in text columns and become NULL in
    other types (I(empty_as_null)); naive timestamps are UTC; dates accept C(YYYY-MM-DD), C(YYYYMMDD),
    C(YYYY/MM/DD) and epoch integers; booleans accept 0/1, true/false, t/f, yes/no, y/n, on/off;
    numbers stored as text may use C(,) thousands separators; C(inf) and C(1e999) become Infinity;
    VARCHAR overflow, NUMERIC rounding, float4 rounding (see I(float4_rounding)), NUL characters and invalid
    UTF-8 are rejects.
  - Numbers in date and time columns - for a C(date), C(timestamp) or C(timestamptz) target an integer (or
    integer text) that is a valid YYYYMMDD date (10000101 to 29991231) is that date; any other number is read
    as Unix epoch seconds in UTC, or milliseconds when its magnitude exceeds 1e11 (SQLite's C(unixepoch) function and
    most applications store one of the two). So C(2024) in a DATETIME column becomes C(1970-01-01 00:33:44+00),
    not the year 2024. A C(date) target takes an epoch only when it falls on midnight UTC (otherwise a reject).
    Each column where this reading happened says so once in C(tables.<t>.notes), with the first value read
    that way, its reading and its source rowid; rewrite such values in the source (or C(transforms)) if they
    mean something else.
version_added: "1.0.0"
author: Quant platform team
extends_documentation_fragment: [quant_postgres]
options:
  src:
    description: Path of the SQLite file on the managed host.
    type: path
    required: true
  tables:
    description:
      - Source tables to migrate, in any order (they are loaded in load order, see the description). Default is
        every table in I(mapping).
    type: list
    elements: str
  mapping:
    description:
      - Per source table, how it lands in PostgreSQL. Keys per table are C(target), C(schema), C(columns)
        (renames), C(drop) (source columns deliberately not migrated), C(derive) (target columns looked up in
        another source table, for example region looked up in C(tickers) by C(ticker)), C(transforms)
        (C(strip), C(upper), C(lower), C(map), C(null_if)), C(keys) (natural key, default
        the primary key), C(order_by) (stream order, for hypertables), C(references) (orphan checks against
        a source table) and C(batch_rows).
      - C(derive) kinds - C(lookup) (with C(key), C(match), C(value), C(when)) looks a value up in another source
        table (a miss is a reject); C(copy) (a source column name) copies another source column of the same row;
        C(period_end) (a dict naming the C(fiscal_year), C(period_type) and C(report) source columns; C(when) is
        C(auto), C(always) or C(never)) sets a fundamentals row's date to its fiscal period end (ANNUAL -12-31,
        SEMI-ANNUAL -06-30, QUARTERLY with DART report code 11013 -03-31 or 11014 -09-30; other rows keep their
        date); C(auto) does so only when no unique key of the SQLite table includes the column.
      - A file at an older schema stage migrates with the same mapping - a table the file lacks is skipped
        (status C(missing), 0 rows); a source column the mapping names but the file lacks is left out (its target
        column keeps the source value, or gets NULL or its default); a source column the target lacks is not
        loaded. Each is reported once per table in C(warnings). A NOT NULL target column without default or a
        key column left without a value, and an explicit rename or derive into a column the target lacks, are
        errors naming the column and what to set.
      - Default is every table of the SQLite file with the same name and columns.
      - Names the mapping does not give (a table without C(target), a column not renamed in C(columns)) find
        their target by exact name, else by PostgreSQL's unquoted (lower-case) form, which a schema written
        without quotes (by hand or by pgloader) has - SQLite C(Album.AlbumId) loads into C(album.albumid), noted
        in the table's C(notes). The form is used only when the target has no other spelling of the name
        differing in case; otherwise, and when two source names land in one target column, the error names both
        candidates. A name the mapping gives is matched exactly (the error names the spellings differing only in
        case). A name over 63 bytes of UTF-8 (PostgreSQL's NAMEDATALEN-1) is an error naming it.
      - The quant platform's mapping is the default of the sqlite_migration role.
    type: dict
  on_conflict:
    description:
      - What to do with a row whose key already exists (earlier in the source or in the target).
      - C(error) records it as a reject; C(skip) keeps the first row and counts a duplicate; C(update) lets the
        latest row (highest source rowid, what SQLite's INSERT OR REPLACE kept) win and counts each superseded
        row as a duplicate, naming the rowid that superseded it.
      - A table's C(on_conflict) in I(mapping) overrides this value for that table.
    type: str
    choices: [error, skip, update]
    default: error
  truncate:
    description: Empty the target tables (and their checkpoints and rejects) before loading.
    type: bool
    default: false
  resume:
    description: Continue an interrupted load from its checkpoint. Without it an interrupted load is an error.
    type: bool
    default: false
  batch_rows:
    description: Rows per COPY batch; each batch commits with its checkpoint.
    type: int
    default: 50000
  rejects_path:
    description:
      - JSON-lines file (on the managed host) receiving every reject and duplicate record. Not written in
        check mode.
    type: path
  max_reject_ratio:
    description:
      - Largest tolerated share of rejected rows per table. A table fails when it rejects more than
        I(tolerated_rejects) rows and more than this share of its source rows, or more than I(max_rejects) rows.
      - The verdict is taken right after each table, before the next one loads. The failing table's rows are
        committed (its checkpoint is done), the rejects file is written, and the message names the counts, the
        option to change, the rejects file and the tables already loaded. A rerun does not fail the same way - it
        finds the table complete, reports its rejects as a warning and goes on with the next table.
      - With the defaults (0 and I(tolerated_rejects=0)) any reject fails.
    type: float
    default: 0
  max_rejects:
    description:
      - Largest number of rejected rows per table, whatever the share (unset = no absolute limit).
    type: int
  tolerated_rejects:
    description:
      - Up to this many rejected rows per table never fail by I(max_reject_ratio) (a few orphans in a small
        table); I(max_rejects) still applies. Tolerated rejects are reported in C(warnings).
    type: int
    default: 0
  drop_indexes:
    description:
      - C(auto) drops non-unique indexes while loading into an empty table and rebuilds them afterwards,
        except for a TimescaleDB hypertable loaded in time order (C(order_by)), whose chunk indexes are cheaper to
        maintain during the load; C(never) keeps them.
    type: str
    choices: [auto, never]
    default: auto
  analyze:
    description:
      - Run ANALYZE on each loaded table.
      - A TimescaleDB hypertable's chunks are analyzed on two connections when the login user may lower
        C(log_min_messages) for its session (a superuser, or C(GRANT SET ON PARAMETER)); otherwise, and for plain
        tables, one ANALYZE runs.
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for a concurrent run's lock before failing (0 = fail at once).
    type: int
    default: 0
  empty_as_null:
    description:
      - Empty strings become NULL in non-text columns (text columns always keep C('')); false makes them
        rejects.
    type: bool
    default: true
  invalid_utf8:
    description: C(reject) invalid UTF-8 in text values, or C(replace) the bad bytes with U+FFFD (lossy, opt-in).
    type: str
    choices: [reject, replace]
    default: reject
  float4_rounding:
    description:
      - What a value becomes when the target column is C(real) (float4, 24-bit mantissa, about 7 significant
        digits) and float4 cannot hold it exactly, e.g. SQLite REAL C(9.99) (a double).
      - C(reject) (lossless, the default) makes it a reject saying so; C(accept) stores it rounded to float4, as
        PostgreSQL itself would, and notes the choice once per C(real) column in C(tables.<t>.notes). A value
        beyond float4's range is a reject either way. C(double precision) holds every SQLite REAL exactly.
    type: str
    choices: [reject, accept]
    default: reject
  verify_source:
    description: Run C(PRAGMA quick_check) on the SQLite file before reading it.
    type: bool
    default: true
  legacy_schema:
    description:
      - Schema receiving a copy of every SQLite table that is not in I(mapping) (internal C(sqlite_*) tables
        aside), e.g. C(sqlite_legacy). Empty = off; then each such table is listed with its row count in
        C(unmapped_tables) and C(migration_warnings).
      - The schema and one table per source table are created if absent, owned by the login user, from the
        declared types and the storage classes the column really holds (SQLite never checks a declared
        type) - INTEGER affinity C(bigint), REAL C(double precision), TEXT C(text), NUMERIC affinity (DECIMAL,
        BOOLEAN, DATE, DATETIME) C(text), which alone keeps integers, reals and text that share such a
        column; a column holding blobs C(bytea) (text cannot keep arbitrary bytes); a column holding values
        its declared type cannot keep (text in an INTEGER column, reals among integers) falls back to
        C(text) or C(numeric) with a warning.
      - The primary key (single or composite) becomes the primary key (a UNIQUE constraint when the data holds
        a NULL in it, which SQLite allows); AUTOINCREMENT ids are kept as plain values; NOT NULL is kept;
        defaults, indexes and foreign keys are not copied.
      - The tables are then loaded like mapped tables (identity mapping with this schema, after the mapped
        tables, same checkpoints and resume) by full runs; a run with I(tables) copies no legacy table.
      - A name over 63 bytes is an error (PostgreSQL would truncate it); a WITHOUT ROWID table is copied like
        the others (see the description).
      - It must not be the schema of a mapped table, C(public) or a system schema.
    type: str
    default: ""
  fk_cycles:
    description:
      - What happens to the foreign keys of a cycle among the target tables (see the description).
      - C(set_aside) drops the keys the load order cannot satisfy before the cycle's first table loads, adds them
        back C(NOT VALID) after its last table and validates them; a violation fails the run and leaves the key
        C(NOT VALID) with every loaded row kept.
      - C(keep) leaves them in place - each batch is checked, so a row referencing a row of a later batch (or a
        refused row) is a reject with PostgreSQL's reason.
      - C(auto) is C(set_aside) without I(mapping) and C(keep) with one (a mapping is the user's own plan of
        the load, order included).
    type: str
    choices: [auto, set_aside, keep]
    default: auto
  copy_format:
    description:
      - C(auto) uses binary COPY when every target column type has a binary form (text, integers, double,
        boolean, date, timestamps, json, bytea; measured about 3x faster, chiefly because formatting a float
        as text costs ten times more than packing it) and the text format otherwise; C(text) forces the text format.
    type: str
    choices: [auto, text]
    default: auto
attributes:
  check_mode:
    support: full
    details:
      - Dry run - reads and converts every row and reports what would be copied, rejected and duplicated;
        writes nothing (no data, no checkpoints, no rejects file). Conflicts with rows already in the target
        and PostgreSQL-side constraint failures (FK, CHECK) can only be seen by a real run.
      - The load order and the foreign-key cycles are reported (C(load_order), C(fk_cycles)); no key is set aside.
notes:
  - Identifiers are always quoted with psycopg2.sql.Identifier; names from the SQLite file never reach SQL unquoted.
  - Tables are loaded in foreign-key order without a mapping, in mapping order with one; identity sequences are set
    to max(id) afterwards.
seealso:
  - module: community.postgresql.postgresql_copy
requirements:
  - psycopg2
"""

EXAMPLES = r"""
- name: Migrate the quant platform's SQLite file
  sqlite_migrate:
    src: /srv/spock/data/spock_local.db
    db: quant_platform
    login_user: postgres
    login_unix_socket: /var/run/postgresql
    mapping: "{{ sqlite_migration_mapping }}"
    on_conflict: error
    rejects_path: /var/lib/quant/migration-rejects.jsonl

- name: Continue an interrupted migration of two tables
  sqlite_migrate:
    src: /srv/spock/data/spock_local.db
    db: quant_platform
    tables: [tickers, ohlcv_data]
    resume: true

- name: Dry run (what would be copied and rejected)
  sqlite_migrate:
    src: /srv/spock/data/spock_local.db
    db: quant_platform
  check_mode: true
"""

RETURN = r"""
tables:
  description: Per source table counts. C(copied_rows + rejected_rows + duplicate_rows = source_rows).
  returned: always
  type: dict
  sample:
    ohlcv_data:
      target: public.ohlcv_data
      source_rows: 926325
      copied_rows: 926300
      rejected_rows: 0
      duplicate_rows: 25
      seconds: 21.4
      rows_per_second: 43286.2
      status: copied
      rejects_sample: []
      warnings: []
      notes: []
  contains:
    status:
      description:
        - C(copied), C(resumed), C(skipped) (complete from an earlier run), C(missing) (the SQLite file has no such
          table; 0 rows); in check mode C(would_copy) or C(would_skip).
      type: str
    warnings:
      description: This table's warnings (schema-stage differences, tolerated or earlier rejects).
      type: list
      elements: str
    notes:
      description:
        - Decisions worth knowing, e.g. how many dates became fiscal period ends (derive period_end), a target
          table or columns found by the lower-case form of their name, a WITHOUT ROWID table's load order,
          C(real) columns rounded by I(float4_rounding=accept), the foreign-key cycle the table is in and the keys
          set aside for it, and per column the first number read as a Unix
          epoch, its reading and its source rowid (for example C(2024) read as C(1970-01-01 00:33:44+00:00) at
          source rowid 3).
      type: list
      elements: str
migration_warnings:
  description:
    - Every warning of the run, one line each, each starting with the table name (also in C(tables.<t>.warnings))
      - tables the file lacks, source columns the mapping names but the file lacks, source columns the target
      lacks, tolerated rejects, rejects of tables an earlier run loaded, SQLite tables outside the mapping.
    - Ansible also shows each one as a warning. (Not C(warnings) - Ansible takes that key over.)
  returned: always
  type: list
  elements: str
total_copied:
  description: Rows copied over all tables.
  returned: always
  type: int
total_rejected:
  description: Rows rejected over all tables.
  returned: always
  type: int
total_duplicates:
  description: Duplicate rows over all tables.
  returned: always
  type: int
run_id:
  description: Identifier of this run (rejects and checkpoints of a load carry the run_id that started it).
  returned: always
  type: str
rejects_path:
  description: Where the rejects were written.
  returned: when rejects_path is set and not in check mode
  type: str
legacy_tables:
  description: SQLite tables outside the mapping copied into I(legacy_schema), as source table -> schema.table.
  returned: when legacy_schema is set and the file has such tables (not with tables)
  type: dict
  sample: {backtest_results: sqlite_legacy.backtest_results, kelly_history: sqlite_legacy.kelly_history}
legacy_created:
  description: Legacy tables created by this run (in check mode, that would be created; nothing is created).
  returned: when a legacy table was (or would be) created
  type: list
  elements: str
skipped_views:
  description: Views of the SQLite file, with the reason they are not copied.
  returned: when the file has views
  type: dict
  sample: {invoice_totals: "a view: it holds no rows of its own (...); recreate it in PostgreSQL if needed"}
unmapped_tables:
  description: SQLite tables left out of the migration, with their row count (null if unreadable).
  returned: when the file has tables outside the mapping and legacy_schema is empty
  type: dict
  sample: {backtest_results: 12, filter_cache_stage0: 3100}
load_order:
  description: Source tables in the order they were (in check mode, would be) loaded.
  returned: always (once the tables are known)
  type: list
  elements: str
  sample: [Artist, Album, Playlist, Track, PlaylistTrack]
fk_cycles:
  description:
    - Foreign-key cycles among the target tables - their source tables in load order, and the constraints (as
      C(name on schema.table)) the load order cannot satisfy, and their C(handling) - C(set_aside) (dropped while
      they load, then added back and validated) or C(kept) (I(fk_cycles)). Empty without cycles.
  returned: always (once the tables are known)
  type: list
  elements: dict
  sample:
    - tables: [department, employee]
      constraints: [department_manager_id_fkey on public.department, employee_reports_to_fkey on public.employee]
      handling: set_aside
queries:
  description: Notable statements run (TRUNCATE, DROP/CREATE INDEX, setval, ANALYZE, ALTER TABLE DROP/ADD/VALIDATE
    CONSTRAINT for a foreign-key cycle).
  returned: always
  type: list
  elements: str
"""


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.core.postgres import module_params, postgres_common_argument_spec, run_or_fail

try:
    from ansible.module_utils.migrate.runner import MigrationError, run_migration
except ImportError:  # pragma: no cover - only when psycopg2 itself is missing
    MigrationError = Exception
    run_migration = None


def argument_spec():
    spec = postgres_common_argument_spec()
    spec.update(
        src=dict(type="path", required=True),
        tables=dict(type="list", elements="str"),
        mapping=dict(type="dict"),
        on_conflict=dict(type="str", choices=["error", "skip", "update"], default="error"),
        truncate=dict(type="bool", default=False),
        resume=dict(type="bool", default=False),
        batch_rows=dict(type="int", default=50000),
        rejects_path=dict(type="path"),
        max_reject_ratio=dict(type="float", default=0.0),
        max_rejects=dict(type="int"),
        tolerated_rejects=dict(type="int", default=0),
        drop_indexes=dict(type="str", choices=["auto", "never"], default="auto"),
        analyze=dict(type="bool", default=True),
        lock_timeout=dict(type="int", default=0),
        empty_as_null=dict(type="bool", default=True),
        invalid_utf8=dict(type="str", choices=["reject", "replace"], default="reject"),
        float4_rounding=dict(type="str", choices=["reject", "accept"], default="reject"),
        verify_source=dict(type="bool", default=True),
        copy_format=dict(type="str", choices=["auto", "text"], default="auto"),
        fk_cycles=dict(type="str", choices=["auto", "set_aside", "keep"], default="auto"),
        legacy_schema=dict(type="str", default=""),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module_params(module)
    if params["batch_rows"] < 1:
        module.fail_json(msg="checking parameters: batch_rows must be at least 1")
    if not 0 <= params["max_reject_ratio"] <= 1:
        module.fail_json(msg="checking parameters: max_reject_ratio must be between 0 and 1")
    for name in ("max_rejects", "tolerated_rejects"):
        if (params.get(name) or 0) < 0:
            module.fail_json(msg="checking parameters: %s must be 0 or more, got %d" % (name, params[name]))
    result = run_or_fail(module, "sqlite_migrate", lambda: _migrate(module, params), expected=(MigrationError,))
    module.exit_json(**result)


def _publish(module, result):
    """Warnings as migration_warnings (Ansible reserves `warnings`) and as Ansible warnings."""
    warnings = result.pop("warnings", None) or []
    result["migration_warnings"] = warnings
    for text in warnings:
        module.warn(text)
    return result


def _migrate(module, params):
    try:
        return _publish(module, run_migration(params, check_mode=module.check_mode))
    except MigrationError as exc:
        _publish(module, exc.result)
        raise


if __name__ == "__main__":
    main()
