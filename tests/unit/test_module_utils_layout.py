"""module_utils/ is packages by concern, layered so that no concern reaches
into another's internals (docs/CONVENTIONS.md, "module_utils layout").

Layers, lowest first: convert/ and core/ (shared foundations), mapping/
(what a source table becomes; may use both), then the concerns (migrate/,
validate/, tune/, schema/, platform_plan/, bench/, sample/), each of which
may use the shared layers and itself, never another concern.
"""

import ast
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[2] / "module_utils"
SHARED = {"core", "convert", "mapping"}
ALLOWED = {
    "convert": {"convert"},
    "core": {"core"},
    "mapping": {"core", "convert", "mapping"},
}
# Part of ansible-core itself, not of this project.
ANSIBLE_OWN = {"basic", "common", "six", "parsing", "compat", "urls", "_text"}


def project_imports(path):
    """Packages of ansible.module_utils that the file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "ansible.module_utils" else [
                "ansible.module_utils." + alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["ansible", "module_utils"] and len(parts) > 2 and parts[2] not in ANSIBLE_OWN:
                found.add(parts[2])
    return found


def layering_violations(root):
    """'file -> package' for every import that breaks the layering."""
    bad = []
    for path in sorted(root.glob("*/*.py")):
        package = path.parent.name
        allowed = ALLOWED.get(package, SHARED | {package})
        bad += ["%s -> %s" % (path.relative_to(root), used) for used in sorted(project_imports(path) - allowed)]
    return bad


def test_every_file_lives_in_a_package():
    loose = sorted(p.name for p in UTILS.glob("*.py"))
    assert loose == [], "module_utils/ files outside a package: %s" % loose
    missing = sorted(d.name for d in UTILS.iterdir() if d.is_dir() and not d.name.startswith("__")
                     and not (d / "__init__.py").is_file())
    assert missing == [], "packages without __init__.py: %s" % missing


def test_no_concern_imports_another_concerns_internals():
    assert layering_violations(UTILS) == []


@pytest.mark.parametrize(("package", "source", "expected"), [
    ("validate", "from ansible.module_utils.migrate.runner import Migration\n", ["validate/x.py -> migrate"]),
    ("core", "from ansible.module_utils.mapping.plan import build_plan\n", ["core/x.py -> mapping"]),
    ("convert", "from ansible.module_utils import core\n", ["convert/x.py -> core"]),
    ("migrate", "from ansible.module_utils.mapping.plan import build_plan\n"
                "from ansible.module_utils.basic import AnsibleModule\n", []),
])
def test_the_check_catches_a_crossing_import(tmp_path, package, source, expected):
    (tmp_path / package).mkdir()
    (tmp_path / package / "x.py").write_text(source)
    assert layering_violations(tmp_path) == expected
