"""Python at the size of one idea: no function over MAX_LINES lines without a reason next to it.

A function's length runs from its `def` line to its last line (docstring, comments and nested
functions included). A longer one passes only when a comment `# long: <reason>` sits on the line
right above its `def` (above its decorators, if any) or on its first body line, the line(s) between
the signature and the first statement included (docs/CONVENTIONS.md, module_utils layout).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60
MARKER = re.compile(r"#\s*long:\s*\S")


def python_files():
    files = set()
    for pattern in ("module_utils/**/*.py", "library/**/*.py", "plugins/**/*.py", "roles/*/files/*.py"):
        files.update(ROOT.glob(pattern))
    return sorted(files)


def _marker_lines(source):
    """Line numbers that carry a `# long: <reason>` comment (comments only, never strings)."""
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and MARKER.match(tok.string):
            lines.add(tok.start[0])
    return lines


def _functions(tree):
    """(qualified name, node) of every function and method, nested ones too."""
    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, prefix + child.name + ".")
            else:
                yield from visit(child, prefix)
    return visit(tree, "")


def _excused(node, markers):
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return first - 1 in markers or any(line in markers for line in range(node.lineno, node.body[0].lineno + 1))


def long_functions(source, filename="<string>", limit=MAX_LINES):
    """["file:function:length", ...] for the functions over limit lines that carry no `# long:` reason."""
    tree = ast.parse(source, filename)
    markers = _marker_lines(source)
    found = []
    for name, node in _functions(tree):
        length = node.end_lineno - node.lineno + 1
        if length > limit and not _excused(node, markers):
            found.append("%s:%s:%d" % (filename, name, length))
    return found


def test_no_function_is_longer_than_the_limit_without_a_reason():
    found = []
    for path in python_files():
        found += long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, ("functions over %d lines; split them into helpers of one idea each, or write the reason "
                       "as `# long: <reason>` right above the def:\n  %s" % (MAX_LINES, "\n  ".join(found)))


def test_the_scan_covers_every_python_tree():
    names = {str(p.relative_to(ROOT)) for p in python_files()}
    for expected in ("module_utils/migrate/runner.py", "library/migration_validate.py",
                     "plugins/filter/platform.py"):
        assert expected in names
    assert any(n.startswith("roles/") and "/files/" in n for n in names)


def _function(lines, head="", first=""):
    body = [first] if first else []
    body += ["    x = %d" % i for i in range(lines - 1 - len(body))]
    return "%sdef f(a):\n%s\n" % (head, "\n".join(body))


@pytest.mark.parametrize(("source", "flagged"), [
    (_function(61), ["t.py:f:61"]),
    (_function(60), []),
    (_function(61, head="# long: one table of cases reads best in one piece\n"), []),
    (_function(61, first="    # long: the state machine's states are easier to follow together"), []),
    (_function(61, head="# long: a decorated function's reason goes above its decorators\n@staticmethod\n"), []),
    # not a reason: an empty marker, a marker in a string, a comment far from the def
    (_function(61, head="# long:\n"), ["t.py:f:61"]),
    (_function(61, first='    """# long: inside a docstring is not a comment"""'), ["t.py:f:61"]),
    (_function(61, head="# long: too far away\n\n"), ["t.py:f:61"]),
])
def test_the_check_flags_a_long_function_and_accepts_a_written_reason(source, flagged):
    assert long_functions(source, "t.py") == flagged


def test_methods_and_nested_functions_are_named_and_measured():
    inner = "\n".join("            y = %d" % i for i in range(62))
    source = "class C:\n    def m(self):\n        def g():\n%s\n        return g\n" % inner
    assert long_functions(source, "t.py") == ["t.py:C.m:65", "t.py:C.m.g:63"]
