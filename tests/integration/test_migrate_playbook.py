"""playbooks/database.yml and playbooks/migrate.yml on the throw-away cluster (issue 15, items 2, 8, 9).

* The application's directory gets a .env with both key styles the platform
  reads (POSTGRES_* and DB_*), mode 0600; the /etc one stays.
* A SQLite file on the controller (sqlite_migration_src_controller) is copied,
  verified and migrated; the copy is removed afterwards, or kept on request, and
  then a second run changes nothing; the original is never written.
* Overriding only sqlite_migration_db refreshes the aggregates of THAT database:
  the shared quant_db_name names a database that does not exist, so a refresh
  sent there fails the run.
"""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path

import pytest
from ansible.module_utils.sample.generator import generate
from integration.test_rollback import ok, played_host

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DOTENV_SINGLE_QUOTED = re.compile(r"^'((?:\\'|[^'])*)'$")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dotenv(path):
    """KEY=value lines as python-dotenv reads them (unquoted, or single-quoted with \\\\ and \\' escapes)."""
    values = {}
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        quoted = DOTENV_SINGLE_QUOTED.match(value)
        values[key] = re.sub(r"\\([\\'])", r"\1", quoted.group(1)) if quoted else value
    return values


def recap_changed(stdout):
    return sum(int(n) for n in re.findall(r"changed=(\d+)", stdout[stdout.rindex("PLAY RECAP") :]))


@pytest.fixture(scope="module")
def host(pg_server, tmp_path_factory):
    if not pg_server.has_timescaledb:
        pytest.fail("TimescaleDB is not installed for this PostgreSQL (make provision-local)")
    with played_host(pg_server, tmp_path_factory.mktemp("migrate_playbook")) as h:
        h.app_dir = h.base / "spock"
        h.app_dir.mkdir()
        h.copy_dir = h.base / "copy"
        generate(str(h.src), scale=0.01)
        ok(h.play("playbooks/database.yml", quant_database_app_dir=str(h.app_dir)))
        yield h


def migrate_from_controller(h, *args, **extra):
    """migrate.yml into h.db given only as sqlite_migration_db; quant_db_name names no database."""
    return h.play(
        "playbooks/migrate.yml",
        *args,
        quant_db_name="no_such_database",
        sqlite_migration_db=h.db,
        sqlite_migration_src="",
        sqlite_migration_src_controller=str(h.src),
        sqlite_migration_copy_dir=str(h.copy_dir),
        **extra,
    )


def test_app_env_in_the_application_directory(host):
    app_env = host.app_dir / ".env"
    values = dotenv(app_env)
    assert stat.S_IMODE(app_env.stat().st_mode) == 0o600
    assert app_env.stat().st_uid == host.app_dir.stat().st_uid  # the application's OS user (the dir's owner)
    for a, b in [("HOST", "HOST"), ("PORT", "PORT"), ("DB", "NAME"), ("USER", "USER"), ("PASSWORD", "PASSWORD")]:
        assert values["POSTGRES_" + a] == values["DB_" + b], (a, b)
    assert values["POSTGRES_DB"] == host.db and values["POSTGRES_USER"] == "quant_user"
    assert values["POSTGRES_PASSWORD"] == "dev-app-change-me"
    assert dotenv(host.env_file) == values  # the /etc/quant-platform one stays


def test_controller_file_is_copied_migrated_into_sqlite_migration_db_and_removed(host):
    before = (sha256(host.src), host.src.stat().st_mtime_ns, stat.S_IMODE(host.src.stat().st_mode))
    out = ok(migrate_from_controller(host))
    copy = host.copy_dir / host.src.name
    assert "Start the migration of %s" % copy in out
    assert not copy.exists(), "the copy was not removed"
    assert stat.S_IMODE(host.copy_dir.stat().st_mode) == 0o700
    assert (sha256(host.src), host.src.stat().st_mtime_ns, stat.S_IMODE(host.src.stat().st_mode)) == before
    # The aggregates were refreshed in sqlite_migration_db, not in quant_db_name's database.
    assert host.sql("SELECT count(*) FROM ohlcv_monthly")[0][0] > 0
    assert host.sql("SELECT count(*) FROM quant_meta.aggregate_refreshes")[0][0] >= 1


def test_kept_copy_is_verified_and_a_second_run_changes_nothing(host):
    before = (sha256(host.src), host.src.stat().st_mtime_ns)
    ok(migrate_from_controller(host, sqlite_migration_keep_copy=True))
    copy = host.copy_dir / host.src.name
    assert sha256(copy) == before[0]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    again = ok(migrate_from_controller(host, sqlite_migration_keep_copy=True))
    assert recap_changed(again) == 0, again[-3000:]
    check = ok(migrate_from_controller(host, "--check", sqlite_migration_keep_copy=True))
    assert recap_changed(check) == 0, check[-3000:]
    assert (sha256(host.src), host.src.stat().st_mtime_ns) == before
    ok(migrate_from_controller(host))  # not kept any more: removed
    assert not copy.exists()
