"""Type, key and identifier decisions for SQLite tables outside the mapping (module_utils/mapping/legacy.py)."""

from __future__ import annotations

import sqlite3

import pytest
from ansible.module_utils.core.sqlite_source import open_source
from ansible.module_utils.mapping.legacy import (
    BLOB,
    INTEGER,
    REAL,
    TEXT,
    LegacyError,
    affinity,
    check_identifier,
    check_legacy_schema,
    column_type,
    inspect_table,
    plan_table,
    quote_ident,
    table_ddl,
    unmapped_names,
)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("INTEGER", "INTEGER"),
        ("BIGINT", "INTEGER"),
        ("unsigned big int", "INTEGER"),
        ("POINT", "INTEGER"),
        ("TEXT", "TEXT"),
        ("VARCHAR(20)", "TEXT"),
        ("CLOB", "TEXT"),
        ("CHARINT", "INTEGER"),
        ("BLOB", "BLOB"),
        ("", "BLOB"),
        (None, "BLOB"),
        ("REAL", "REAL"),
        ("FLOAT", "REAL"),
        ("DOUBLE PRECISION", "REAL"),
        ("NUMERIC", "NUMERIC"),
        ("DECIMAL(10,2)", "NUMERIC"),
        ("BOOLEAN", "NUMERIC"),
        ("DATE", "NUMERIC"),
        ("DATETIME", "NUMERIC"),
        ("TIMESTAMP", "NUMERIC"),
    ],
)
def test_affinity_follows_sqlite_rules_in_order(declared, expected):
    assert affinity(declared) == expected


@pytest.mark.parametrize(
    ("declared", "classes", "pg_type", "noted"),
    [
        ("INTEGER", INTEGER, "bigint", False),
        ("INTEGER", 0, "bigint", False),
        ("INTEGER", INTEGER | TEXT, "text", True),  # 'N/A' in an INTEGER column
        ("INTEGER", INTEGER | REAL, "numeric", True),
        ("BIGINT", INTEGER | BLOB, "bytea", True),
        ("REAL", REAL, "double precision", False),
        ("REAL", REAL | TEXT, "text", True),
        ("TEXT", TEXT, "text", False),
        ("TEXT", TEXT | INTEGER, "text", False),
        ("BLOB", BLOB, "bytea", False),
        ("BLOB", 0, "bytea", False),
        ("", 0, "text", False),
        ("", INTEGER, "bigint", False),
        ("", REAL, "double precision", False),
        ("", INTEGER | REAL, "numeric", False),
        ("", INTEGER | TEXT, "text", False),
        ("", TEXT | BLOB, "bytea", True),
        ("DATE", TEXT, "text", False),
        ("BOOLEAN", INTEGER, "text", False),  # NUMERIC affinity: always text (see the module docstring)
        ("DECIMAL(10,2)", INTEGER | REAL | TEXT, "text", False),
        ("TIMESTAMP", BLOB, "bytea", False),
    ],
)
def test_column_type_keeps_every_stored_value(declared, classes, pg_type, noted):
    got, note = column_type(declared, classes)
    assert got == pg_type
    assert bool(note) == noted


def test_identifiers_over_63_bytes_are_refused():
    check_identifier("a" * 63, "SQLite table")
    with pytest.raises(LegacyError, match="64 bytes long; PostgreSQL identifiers hold at most 63"):
        check_identifier("a" * 64, "SQLite table")
    with pytest.raises(LegacyError, match="66 bytes"):
        check_identifier("\u00e9" * 33, "column t.x")  # 33 characters, 66 bytes in UTF-8
    with pytest.raises(LegacyError):
        check_identifier("", "SQLite table")


@pytest.mark.parametrize("schema", ["public", "quant_meta", "pg_legacy", "_timescaledb_x", "information_schema", "app"])
def test_legacy_schema_must_be_its_own(schema):
    with pytest.raises(LegacyError, match="legacy_schema"):
        check_legacy_schema(schema, {"public", "app"})
    check_legacy_schema("sqlite_legacy", {"public", "app"})


def test_quote_ident_doubles_quotes():
    assert quote_ident('we"ird name') == '"we""ird name"'


def test_plan_and_ddl_with_composite_key_and_not_null():
    info = [
        ("ticker", "TEXT", 1, 1),
        ("region", "TEXT", 1, 2),
        ("cap", "BIGINT", 0, 0),
        ("d", "DATE", 0, 0),
        ("raw", "", 0, 0),
    ]
    classes = {"ticker": TEXT, "region": TEXT, "cap": INTEGER | TEXT, "d": TEXT, "raw": BLOB}
    table = plan_table("filter_cache_stage0", info, classes, 0)
    assert [c.pg_type for c in table.columns] == ["text", "text", "text", "text", "bytea"]
    assert table.key_kind == "PRIMARY KEY" and table.key_columns == ["ticker", "region"]
    assert len(table.notes) == 1 and table.notes[0].startswith("filter_cache_stage0: column cap declared BIGINT")
    assert table_ddl("sqlite_legacy", table) == (
        'CREATE TABLE IF NOT EXISTS "sqlite_legacy"."filter_cache_stage0" ("ticker" text NOT NULL, '
        '"region" text NOT NULL, "cap" text, "d" text, "raw" bytea, PRIMARY KEY ("ticker", "region"))'
    )


def test_key_order_follows_the_declared_primary_key_not_the_columns():
    info = [("a", "TEXT", 0, 2), ("b", "INTEGER", 0, 1)]
    assert plan_table("t", info, {}, 0).key_columns == ["b", "a"]


def test_null_in_primary_key_becomes_unique():
    table = plan_table("t", [("k", "TEXT", 0, 1), ("v", "REAL", 0, 0)], {"k": TEXT, "v": REAL}, 2)
    assert table.key_kind == "UNIQUE"
    assert "NULL in primary key" in table.notes[0]
    assert table_ddl("s", table).endswith('UNIQUE ("k"))')


def test_table_without_key_and_long_column_name():
    assert plan_table("log", [("x", "INTEGER", 0, 0)], {"x": INTEGER}, 0).key_kind is None
    with pytest.raises(LegacyError, match="column log"):
        plan_table("log", [("c" * 64, "INTEGER", 0, 0)], {}, 0)


def test_inspect_reads_storage_classes_and_null_keys(tmp_path):
    path = str(tmp_path / "quirks.db")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE q (k TEXT, n INTEGER, r REAL, b BLOB, u, PRIMARY KEY (k));
        INSERT INTO q VALUES ('a', 1, 1.5, x'00ff', 3);
        INSERT INTO q VALUES (NULL, 'N/A', 2, NULL, 'x');
        INSERT INTO q VALUES ('c', NULL, NULL, 'text', 2.5);
        CREATE TABLE tickers (ticker TEXT);
    """)
    db.commit()
    db.close()
    source = open_source(path)
    try:
        info, classes, pk_nulls = inspect_table(source, "q")
        assert [r[:2] for r in info] == [("k", "TEXT"), ("n", "INTEGER"), ("r", "REAL"), ("b", "BLOB"), ("u", "")]
        assert classes == {"k": TEXT, "n": INTEGER | TEXT, "r": REAL, "b": BLOB | TEXT, "u": INTEGER | REAL | TEXT}
        assert pk_nulls == 1
        assert unmapped_names(source, {"tickers": {}}) == ["q"]
    finally:
        source.close()
