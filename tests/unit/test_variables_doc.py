"""docs/VARIABLES.md is generated from the argument specs, and every role's
defaults/main.yml and meta/argument_specs.yml name the same variables."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen-variables-doc"
ROLES = sorted(p.parent.parent for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def _spec_options(role_dir):
    specs = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = {}
    for entry in specs.values():
        options.update((entry or {}).get("options") or {})
    return options


def _defaults(role_dir):
    path = role_dir / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def test_variables_doc_is_current(tmp_path):
    out = tmp_path / "VARIABLES.md"
    subprocess.run([sys.executable, str(SCRIPT), "--output", str(out)], check=True, capture_output=True)
    committed = (ROOT / "docs" / "VARIABLES.md").read_text()
    assert out.read_text() == committed, "docs/VARIABLES.md is stale: run scripts/gen-variables-doc"


def test_variables_doc_is_deterministic(tmp_path):
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    for out in (first, second):
        subprocess.run([sys.executable, str(SCRIPT), "--output", str(out)], check=True, capture_output=True)
    assert first.read_text() == second.read_text()


def test_variables_doc_lists_every_role_and_option():
    text = (ROOT / "docs" / "VARIABLES.md").read_text()
    for role_dir in ROLES:
        assert "\n## %s\n" % role_dir.name in text
        for name in _spec_options(role_dir):
            assert "| `%s` |" % name in text


def test_jinja_defaults_are_shown_raw():
    text = (ROOT / "docs" / "VARIABLES.md").read_text()
    assert "| `sqlite_migration_db` | str | no | `{{ quant_db_name \\| default('quant_platform') }}` |" in text


@pytest.mark.parametrize("role_dir", ROLES, ids=[r.name for r in ROLES])
def test_defaults_and_spec_name_the_same_variables(role_dir):
    public_defaults = {k for k in _defaults(role_dir) if not k.startswith("__")}
    options = {k for k in _spec_options(role_dir) if not k.startswith("__")}
    assert not public_defaults - options, "%s: in defaults/main.yml but not in meta/argument_specs.yml: %s" % (
        role_dir.name, sorted(public_defaults - options))
    assert not options - public_defaults, "%s: in meta/argument_specs.yml but not in defaults/main.yml: %s" % (
        role_dir.name, sorted(options - public_defaults))


@pytest.mark.parametrize("role_dir", ROLES, ids=[r.name for r in ROLES])
def test_spec_defaults_match_role_defaults(role_dir):
    defaults = _defaults(role_dir)
    wrong = {name: (opt["default"], defaults[name]) for name, opt in _spec_options(role_dir).items()
             if "default" in (opt or {}) and name in defaults and opt["default"] != defaults[name]}
    assert not wrong, "%s: spec default differs from defaults/main.yml: %s" % (role_dir.name, wrong)
