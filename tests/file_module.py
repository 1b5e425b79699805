"""Import a Python file that is not on a package path (filter plugins, doc fragments, scripts) by its path."""

from __future__ import annotations

import importlib.util


def load_file(name, path):
    """The module that the file at path defines, imported under name."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
