"""scripts/bench-editions: the pure parts (range choice, --as-of, loading the role's queries, formatting)."""

from __future__ import annotations

import argparse
import datetime
import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.bench.pg_bench import validate_queries

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "bench-editions"


def _load():
    loader = importlib.machinery.SourceFileLoader("bench_editions", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


bench = _load()
D = datetime.date


def chunk(start, end, rows, compressed):
    return {"start": D.fromisoformat(start), "end": D.fromisoformat(end), "rows": rows, "compressed": compressed}


def test_pair_prefers_equal_length_then_similar_rows():
    chunks = [
        chunk("2025-01-09", "2025-02-08", 80000, True),   # 30 days
        chunk("2025-02-08", "2025-03-10", 60000, True),   # 30 days, fewer rows
        chunk("2025-03-10", "2025-04-11", 81000, True),   # 32 days
        chunk("2025-09-09", "2025-10-09", 81510, False),  # 30 days
    ]
    packed, plain = bench.choose_ranges(chunks)
    assert packed["start"] == D(2025, 1, 9)
    assert plain["start"] == D(2025, 9, 9)


def test_pair_ties_go_to_the_latest():
    chunks = [chunk("2025-01-09", "2025-02-08", 100, True), chunk("2025-02-08", "2025-03-10", 100, True),
              chunk("2025-09-09", "2025-10-09", 100, False)]
    packed, _ = bench.choose_ranges(chunks)
    assert packed["start"] == D(2025, 2, 8)


def test_one_side_only_gives_the_fullest_chunk_and_none():
    chunks = [chunk("2025-01-09", "2025-02-08", 10, False), chunk("2025-02-08", "2025-03-10", 90, False),
              chunk("2025-03-10", "2025-04-09", 90, False)]
    assert bench.choose_ranges(chunks) == (None, chunks[2])
    packed, plain = bench.choose_ranges([dict(c, compressed=True) for c in chunks])
    assert packed["start"] == D(2025, 3, 10) and plain is None


def test_empty_chunks_are_never_chosen():
    chunks = [chunk("2025-01-09", "2025-02-08", 0, False), chunk("2025-02-08", "2025-03-10", 5, True)]
    assert bench.choose_ranges(chunks) == (chunks[1], None)
    assert bench.choose_ranges([]) == (None, None)


def test_pick_ranges_says_when_a_side_is_missing():
    chunks = [chunk("2025-09-09", "2025-10-09", 81510, False)]
    ranges, notes = bench.pick_ranges(chunks, [(D(2025, 5, 1), D(2025, 6, 1))])
    assert ranges == [("uncompressed chunk", (D(2025, 9, 9), D(2025, 10, 9))),
                      ("--range", (D(2025, 5, 1), D(2025, 6, 1)))]
    assert notes[0].startswith("no compressed chunk with rows")
    assert notes[1] == "uncompressed chunk: 2025-09-09..2025-10-09, 30 days, 81,510 rows"


def test_parse_range():
    assert bench.parse_range("2025-05-01:2025-06-01") == (D(2025, 5, 1), D(2025, 6, 1))
    for bad in ("2025-05-01", "2025-06-01:2025-05-01", "may:june", "2025-05-01:2025-05-01"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_range(bad)


def test_as_of_turns_current_date_into_a_parameter():
    query = {"name": "q", "sql": "SELECT 1 WHERE d >= CURRENT_DATE - INTERVAL '1 year'", "params": {"t": "x"}}
    shifted = bench.as_of_query(query, D(2025, 10, 17))
    assert shifted["sql"] == "SELECT 1 WHERE d >= %(bench_as_of)s::date - INTERVAL '1 year'"
    assert shifted["params"] == {"t": "x", "bench_as_of": D(2025, 10, 17)}
    assert query["params"] == {"t": "x"}  # the original is untouched
    assert bench.as_of_query({**query, "params": None}, D(2025, 10, 17))["params"] == {"bench_as_of": D(2025, 10, 17)}
    assert bench.as_of_query(query, None) is query
    plain = {"name": "p", "sql": "SELECT 1", "params": None}
    assert bench.as_of_query(plain, D(2025, 10, 17)) is plain
    with pytest.raises(SystemExit, match="positional"):
        bench.as_of_query({**query, "params": ["x"]}, D(2025, 10, 17))


def test_the_role_queries_load_as_pg_benchmark_gets_them():
    queries = validate_queries(bench.load_benchmarks())
    assert len(queries) == 13
    assert all(q["target_ms"] > 0 for q in queries)


def test_a_templated_query_is_refused(tmp_path):
    path = tmp_path / "main.yml"
    path.write_text("migration_validation_benchmarks:\n"
                    "  - {name: t, target_ms: 1, sql: \"SELECT {{ x }}\"}\n")
    with pytest.raises(SystemExit, match="templated"):
        bench.load_benchmarks(path)
    path.write_text("other: 1\n")
    with pytest.raises(SystemExit, match="has no migration_validation_benchmarks"):
        bench.load_benchmarks(path)


def test_formatting():
    assert bench.ratio(1000, 100) == "10.00x"
    assert bench.ratio(299.3, 290.4) == "1.03x"
    assert bench.ratio(None, 100) == "-" and bench.ratio(100, 0) == "-"
    assert bench.human_bytes(None) == "-"
    assert bench.human_bytes(512) == "512 B"
    assert bench.human_bytes(315195392) == "300.6 MB"
    assert bench.human_bytes(5 * 1024 ** 4) == "5120.0 GB"
    assert bench.edition_label("timescale") == "Community"
    assert bench.edition_label("apache") == "Apache"
    assert bench.edition_label(None) == "none"
    assert bench.table(["a", "long header"], [("xyz", 1)]).splitlines() == [
        "a    long header", "---  -----------", "xyz  1"]


def test_wiring_without_ansible_installed(monkeypatch):
    """In a container without Ansible the script makes its own ansible.module_utils package."""
    saved = {n: m for n, m in sys.modules.items() if n == "ansible" or n.startswith("ansible.")}
    for name in saved:
        del sys.modules[name]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p and ".venv" not in p])
    try:
        bench.wire_module_utils(ROOT)
        assert str(ROOT / "module_utils") in sys.modules["ansible.module_utils"].__path__
        assert not hasattr(sys.modules["ansible"], "__file__")  # the stand-in, not the real package
        from ansible.module_utils.bench import pg_bench
        assert pg_bench.percentile([1, 2, 3], 50) == 2
    finally:
        for name in [n for n in sys.modules if n == "ansible" or n.startswith("ansible.")]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.skipif(not shutil.which("ruff", path=str(ROOT / ".venv" / "bin")), reason="ruff not installed")
def test_ruff_lints_the_script():
    """ruff check . skips files without a .py suffix: name the script explicitly."""
    ruff = shutil.which("ruff", path=str(ROOT / ".venv" / "bin"))
    result = subprocess.run([ruff, "check", "--no-cache", str(SCRIPT)], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
