"""quant_meta has one owner (issue 19, item 3): its tables are created in module_utils/core/quant_meta.py
only, and no role task holds SQL over them (tasks use the module quant_meta)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# SQL that names a quant_meta table after a keyword: a read, a write or DDL. CALL of the schema's
# procedure (quant_meta.refresh_ohlcv_aggregates, a schema object of role quant_database) is not one.
SQL_OVER_QUANT_META = re.compile(r"\b(FROM|INTO|UPDATE|TABLE|JOIN|EXISTS)\s+quant_meta\.\w+"
                                 r"|regclass\('quant_meta\.\w+", re.I)


def test_quant_meta_tables_are_created_in_core_only():
    creators = [str(p.relative_to(ROOT)) for folder in ("module_utils", "library", "roles")
                for p in sorted((ROOT / folder).rglob("*")) if p.is_file() and p.suffix in (".py", ".yml", ".j2")
                and re.search(r"CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?quant_meta\.", p.read_text(), re.I)]
    assert creators == ["module_utils/core/quant_meta.py"]


def test_no_task_holds_sql_over_quant_meta():
    found = ["%s: %s" % (p.relative_to(ROOT), m.group(0)) for p in sorted(ROOT.glob("roles/*/tasks/**/*.yml"))
             for m in SQL_OVER_QUANT_META.finditer(p.read_text())]
    assert found == [], "tasks with SQL over quant_meta (use the module quant_meta): %s" % found


def test_module_utils_reaches_quant_meta_through_core():
    """The migration, validation and schema code call core/quant_meta.py; none has its own queries."""
    found = ["%s: %s" % (p.relative_to(ROOT), m.group(0)) for folder in ("module_utils", "library")
             for p in sorted((ROOT / folder).rglob("*.py")) if p.parent.name != "core"
             for m in SQL_OVER_QUANT_META.finditer(p.read_text())]
    assert found == [], "SQL over quant_meta outside module_utils/core/: %s" % found
