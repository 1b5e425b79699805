"""Shared pytest wiring.

* Makes `ansible.module_utils.<name>` resolve to this repository's
  module_utils/ (as ansible.cfg does for Ansible), and library/ importable,
  so unit tests import the same code the modules ship.
* Provides a throw-away PostgreSQL 15 cluster with TimescaleDB preloaded,
  started as the unprivileged `postgres` user on a free port and removed at
  the end of the session (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

import ansible.module_utils  # noqa: E402

if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))
for extra in (ROOT / "library", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from pgcluster import PG_VERSION, PgServer, cluster_fixture, community_fixture, timescaledb_available  # noqa: E402

__all__ = ["PG_VERSION", "PgServer", "timescaledb_available"]


@pytest.fixture(scope="session")
def pg_server():
    """A throw-away PostgreSQL cluster for the whole test session."""
    yield from cluster_fixture()


@pytest.fixture(scope="session")
def community_server():
    """A throw-away cluster of the TimescaleDB Community edition (scripts/build-community) for the session."""
    yield from community_fixture()


@pytest.fixture
def pg_db(pg_server):
    """A fresh, empty database (dropped afterwards); yields its name."""
    name = "t_" + uuid.uuid4().hex[:10]
    conn = pg_server.connect()
    try:
        conn.cursor().execute('CREATE DATABASE "%s"' % name)
    finally:
        conn.close()
    try:
        yield name
    finally:
        conn = pg_server.connect()
        try:
            conn.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        finally:
            conn.close()


@pytest.fixture
def require_timescaledb(pg_server):
    if not pg_server.has_timescaledb:
        pytest.fail("TimescaleDB is not installed for PostgreSQL %s; the test command installs it "
                    "with this project's roles (make provision-local)" % PG_VERSION)
    return pg_server
