"""run_or_fail / module_params: the one error path every PostgreSQL module shares."""

from __future__ import annotations

import pytest
from ansible.module_utils.core.postgres import ConnectionFailure, module_params, run_or_fail


class Exited(Exception):
    pass


class FakeModule:
    def __init__(self, params=None):
        self.params = params or {}
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise Exited()


class PartialError(Exception):
    def __init__(self, msg, result):
        super().__init__(msg)
        self.result = result


def boom(exc):
    def fn():
        raise exc
    return fn


def test_returns_the_result():
    assert run_or_fail(FakeModule(), "x", lambda: {"ok": 1}) == {"ok": 1}


def test_expected_error_is_one_line_without_traceback():
    module = FakeModule()
    with pytest.raises(Exited):
        run_or_fail(module, "benchmark", boom(ValueError("query 3 failed")), expected=(ValueError,))
    assert module.failed == {"msg": "benchmark: query 3 failed"}


def test_connection_failure_is_always_expected():
    module = FakeModule()
    with pytest.raises(Exited):
        run_or_fail(module, "validation", boom(ConnectionFailure("cannot connect to 127.0.0.1:1")))
    assert module.failed["msg"] == "validation: cannot connect to 127.0.0.1:1"
    assert "exception" not in module.failed


def test_partial_result_is_returned_with_the_failure():
    module = FakeModule()
    with pytest.raises(Exited):
        run_or_fail(module, "sqlite_migrate", boom(PartialError("table t failed", {"tables": {"a": 1}})),
                    expected=(PartialError,))
    assert module.failed["tables"] == {"a": 1}


def test_unexpected_error_names_its_type_and_keeps_the_traceback():
    module = FakeModule()
    with pytest.raises(Exited):
        run_or_fail(module, "applying schema steps", boom(KeyError("steps")))
    assert module.failed["msg"] == "applying schema steps: unexpected error: KeyError: 'steps'"
    assert "Traceback" in module.failed["exception"]


def test_module_params_falls_back_to_pgpassword(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "from-env")
    module = FakeModule({"login_password": ""})
    params = module_params(module)
    assert params["login_password"] == "from-env"
    assert module.params["login_password"] == ""  # the module's own params are not modified
