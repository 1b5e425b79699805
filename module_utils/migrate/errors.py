"""The error every step of a migration raises (runner.py and the mixins it is made of)."""

from __future__ import annotations


class MigrationError(Exception):
    """A clear, one-line failure; .result holds the partial module result."""

    def __init__(self, msg, result=None):
        super().__init__(msg)
        self.result = result or {}
