"""Point-in-time recovery with pgBackRest (issue 18): the pg_pitr role and playbooks on a throw-away cluster.

playbooks/pitr.yml turns on WAL archiving, creates the stanza and takes a first
full backup (a second run changes nothing); rows committed before a time T,
more rows after T and a dropped table after that; playbooks/restore_pitr.yml to
T gives exactly the rows before T and the table back, and keeps the old data
directory aside. The cluster is this module's own (it is restarted and
replaced), started as the postgres user; pgbackrest runs as postgres too (become
with su: the machine has no sudo; the system Python, which postgres can run).
Nothing is installed here: scripts/bootstrap.sh --test installs pgbackrest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager

import pytest
from pgcluster import _as_postgres, running_cluster
from playbooks_run import one_play, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STANZA = "pitr_test"
DB = "pitr_db"
APP_ROLE = "pitr_app"
BATCH = 5000
TIMINGS = {}


class Pitr:
    """The throw-away cluster plus the paths and variables the playbooks need to reach it."""

    def __init__(self, server):
        self.server = server
        self.base = server.base
        self.repo = self.base / "pgbackrest-repo"
        self.conf = self.base / "pgbackrest" / "pgbackrest.conf"

    def extra_vars(self, **extra):
        s = self.server
        out = {
            # the connection quant_common decides (postgres over the socket: peer, mapped below)
            "postgresql_admin_user": "postgres", "postgresql_socket_dir": str(s.socket_dir),
            "postgresql_port": s.port, "postgresql_bin_dir": str(s.bindir),
            "pg_pitr_stanza": STANZA, "pg_pitr_data_dir": str(s.datadir), "pg_pitr_config_dir": str(s.datadir),
            "pg_pitr_service_mode": "pg_ctl", "pg_pitr_server_log": str(self.base / "server.log"),
            "pg_pitr_install": False, "pg_pitr_schedule_enabled": False,
            "pg_pitr_config_file": str(self.conf), "pg_pitr_log_path": str(self.base / "pgbackrest-log"),
            "pg_pitr_repo_path": str(self.repo),
            # Its own locks: another run of these tests on the machine (same stanza name) must not
            # make a backup fail with "unable to acquire lock".
            "pg_pitr_lock_path": str(self.base / "pgbackrest-lock"),
            "pg_pitr_restore_check_db": DB, "pg_pitr_restore_check_roles": [APP_ROLE],
            # Tasks that become postgres cannot run the virtualenv's Python (under /root):
            # the system's has everything the modules need (psycopg2 included).
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        out.update(extra)
        return out

    def play(self, playbook, *args, **extra):
        return run_playbook(playbook, *args, inventory="inventories/dev", extra_vars=self.extra_vars(**extra),
                            env={"ANSIBLE_BECOME_METHOD": "su"})

    def sql(self, query, db=DB):
        return self.server.query(query, db)

    def info(self):
        out = _as_postgres(["pgbackrest", "--config=%s" % self.conf, "--stanza=%s" % STANZA, "--output=json", "info"])
        return json.loads(out.stdout)[0]


def ok(out):
    assert out.rc == 0, out.stdout[-6000:] + out.stderr[-2000:]
    return out.stdout


@contextmanager
def prepared_cluster(extra_conf=""):
    """A throw-away cluster prepared like a packaged one: conf.d included, and the database
    superuser reachable over the socket by the OS users root and postgres (peer, mapped).
    extra_conf: settings after the test cluster's own (scripts/bench-pitr turns fsync back on)."""
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed (scripts/bootstrap.sh --test installs it)")
    with running_cluster(extra_conf) as server:
        if not server.has_timescaledb:
            pytest.fail("TimescaleDB is not installed for this PostgreSQL (make provision-local)")
        _as_postgres(["mkdir", "-m", "0755", str(server.datadir / "conf.d")])
        with open(server.datadir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("include_dir = 'conf.d'\n")
        server.peer_superuser("pitr")
        server.pg_ctl("reload")
        yield Pitr(server)


@pytest.fixture(scope="module")
def pitr():
    with prepared_cluster() as prepared:
        yield prepared


@pytest.fixture(scope="module")
def archiving(pitr):
    # Check mode first: it predicts and writes nothing (no restart, no stanza).
    check = pitr.play("playbooks/pitr.yml", "--check")
    ok(check)
    assert not pitr.conf.exists() and not pitr.repo.exists()
    assert not (pitr.server.datadir / "conf.d" / "60-quant-archive.conf").exists()
    assert pitr.sql("SHOW archive_mode", db="postgres") == [("off",)]
    started = time.monotonic()
    first = pitr.play("playbooks/pitr.yml")
    TIMINGS["pitr_yml_first_run_s"] = round(time.monotonic() - started, 1)
    ok(first)
    return first


def test_archiving_is_on_with_a_full_backup(pitr, archiving):
    s = pitr.server
    conf = (s.datadir / "conf.d" / "60-quant-archive.conf").read_text()
    assert "archive_mode = on" in conf
    assert "archive-push %p" in conf and "--stanza=%s" % STANZA in conf
    assert pitr.sql("SHOW archive_mode", db="postgres") == [("on",)]  # the restart happened
    info = pitr.info()
    assert info["status"]["code"] == 0, info["status"]
    assert [b["type"] for b in info["backup"]] == ["full"]
    backup = info["backup"][0]
    TIMINGS["first_full_backup_s"] = backup["timestamp"]["stop"] - backup["timestamp"]["start"]
    assert oct(pitr.conf.stat().st_mode & 0o777) == "0o640"
    assert "cipher" not in pitr.conf.read_text()  # no passphrase given: no encryption


def test_second_run_changes_nothing(pitr, archiving):
    out = pitr.play("playbooks/pitr.yml")
    ok(out)
    assert out.changed == 0, out.stdout[-4000:]
    assert len(pitr.info()["backup"]) == 1  # no second "first" backup


def validate(pitr, **extra):
    play = one_play([{"name": "Validate the backups", "ansible.builtin.include_role": {
        "name": "pg_pitr", "tasks_from": "validate"}}], workdir=pitr.base, name="validate_pitr")
    return run_playbook(play, inventory="inventories/dev", extra_vars=pitr.extra_vars(**extra),
                        env={"ANSIBLE_BECOME_METHOD": "su"})


def test_validation_reports_the_last_backup_and_the_check(pitr, archiving):
    text = " ".join(ok(validate(pitr)).split())
    assert "1 backups (1 full)" in text and "(full), 0.0 h old" in text, text[-3000:]
    assert "pgbackrest check: ok" in text and "not failing" in text
    assert "continuity: ok (pgbackrest verify:" in text and "critical: none" in text
    # Every backup is too old for 0 hours: critical (the role's default), or only a warning
    # (what the dev inventory sets: no scheduler fires on the dev machines).
    stale = validate(pitr, pg_pitr_validate_max_age_hours=0, pg_pitr_validate_stale_severity="critical")
    assert stale.rc != 0 and "is not healthy" in stale.stdout, stale.stdout[-3000:]
    assert "CRITICAL: pgBackRest stanza %s is not healthy: newest backup" % STANZA in " ".join(stale.stdout.split())
    warned = validate(pitr, pg_pitr_validate_max_age_hours=0, pg_pitr_validate_stale_severity="warning")
    text = " ".join(ok(warned).split())
    assert "WARNING: newest backup" in text and "critical: none" in text, text[-3000:]


def test_corruption_rollback_offers_pitr_for_this_cluster(pitr, archiving):
    """The corruption rollback names the restorable window and the restore_pitr.yml command before
    its confirmation (unconfirmed here: nothing is restored)."""
    sys_id = pitr.sql("SELECT system_identifier::text FROM pg_control_system()", db="postgres")[0][0]
    assert pitr.info()["db"][-1]["system-id"] == int(sys_id)
    base = pitr.base
    out = pitr.play("playbooks/rollback.yml", rollback_scenario="corruption", pg_backup_dir=str(base / "dumps"),
                    pg_backup_os_user="root", pg_backup_script_path=str(base / "quant-pg-backup"),
                    pg_backup_db="postgres")
    text = " ".join(out.stdout.split())
    assert out.rc != 0 and "Not confirmed" in text, text[-3000:]  # no terminal: nothing happens
    assert "point-in-time recovery is available instead of this dump (pgBackRest stanza %s" % STANZA in text, text
    assert "playbooks/restore_pitr.yml -e \"restore_target_time=" in text
    assert text.index("point-in-time recovery is available") < text.index("Not confirmed")


def test_restore_needs_confirmation_and_a_readable_target(pitr, archiving):
    datadir = pitr.server.datadir
    before = sorted(p.name for p in datadir.parent.iterdir())
    unconfirmed = pitr.play("playbooks/restore_pitr.yml", restore_target_time="latest")
    assert unconfirmed.rc != 0 and "Not confirmed" in unconfirmed.stdout, unconfirmed.stdout[-3000:]
    bad = pitr.play("playbooks/restore_pitr.yml", restore_target_time="yesterday noon", restore_confirm="yes")
    assert bad.rc != 0 and "neither 'latest' nor a time" in bad.stdout, bad.stdout[-3000:]
    check = pitr.play("playbooks/restore_pitr.yml", "--check", restore_target_time="latest", restore_confirm="yes")
    ok(check)
    assert sorted(p.name for p in datadir.parent.iterdir()) == before  # no safety copy, nothing moved
    assert pitr.sql("SELECT 1", db="postgres") == [(1,)]  # still running


def wait_archived(pitr):
    """Switch to a new WAL segment and wait until the finished one is in the repository."""
    (segment,) = pitr.sql("SELECT pg_walfile_name(pg_switch_wal())", db="postgres")[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (last,) = pitr.sql("SELECT last_archived_wal FROM pg_stat_archiver", db="postgres")[0]
        if last and last >= segment:
            return segment
        time.sleep(0.5)
    raise AssertionError("WAL segment %s was not archived within 60 s" % segment)


def test_restore_to_a_time_between_two_batches(pitr, archiving):
    s = pitr.server
    conn = s.connect("postgres")
    conn.cursor().execute("CREATE DATABASE %s" % DB)
    conn.cursor().execute("CREATE ROLE %s LOGIN PASSWORD NULL" % APP_ROLE)
    conn.close()
    pitr.sql("CREATE EXTENSION IF NOT EXISTS timescaledb")
    pitr.sql("CREATE TABLE ticks (ts timestamptz NOT NULL, n int NOT NULL)")
    pitr.sql("SELECT create_hypertable('ticks', 'ts', chunk_time_interval => interval '1 day')")
    pitr.sql("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    pitr.sql("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g")
    # Batch 1, committed; T from the server's clock after its commit.
    pitr.sql("INSERT INTO ticks SELECT now() - g * interval '1 minute', g FROM generate_series(1, %d) g" % BATCH)
    time.sleep(1)
    (target,) = pitr.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")[0]
    time.sleep(1)
    # Batch 2 after T, then a table dropped.
    pitr.sql("INSERT INTO ticks SELECT now() - g * interval '1 minute', g FROM generate_series(%d, %d) g"
             % (BATCH + 1, 2 * BATCH))
    pitr.sql("DROP TABLE notes")
    wait_archived(pitr)
    assert pitr.sql("SELECT count(*) FROM ticks") == [(2 * BATCH,)]

    started = time.monotonic()
    out = ok(pitr.play("playbooks/restore_pitr.yml", restore_target_time=target, restore_confirm="yes"))
    TIMINGS["restore_pitr_yml_s"] = round(time.monotonic() - started, 1)

    assert pitr.sql("SELECT count(*), min(n), max(n) FROM ticks") == [(BATCH, 1, BATCH)]  # exactly batch 1
    assert pitr.sql("SELECT count(*) FROM notes") == [(100,)]  # the dropped table is back
    assert pitr.sql("SELECT pg_is_in_recovery()", db="postgres") == [(False,)]  # promoted
    assert pitr.sql("SELECT hypertable_name FROM timescaledb_information.hypertables") == [("ticks",)]
    report = " ".join(out[out.rindex("Restore | Report"):].split())
    assert "1 hypertables (public.ticks)" in report, report
    safety = [p for p in s.datadir.parent.iterdir() if p.name.startswith(s.datadir.name + ".before-pitr-")]
    assert len(safety) == 1 and (safety[0] / "PG_VERSION").exists()
    assert str(safety[0]) in report
    # The restored server archives again (a new timeline), and a backup of it works.
    pitr.sql("INSERT INTO ticks VALUES (now(), -1)")
    wait_archived(pitr)
    started = time.monotonic()
    _as_postgres(["pgbackrest", "--config=%s" % pitr.conf, "--stanza=%s" % STANZA, "--type=diff", "backup"])
    TIMINGS["diff_backup_after_restore_s"] = round(time.monotonic() - started, 1)
    _as_postgres(["pgbackrest", "--config=%s" % pitr.conf, "--stanza=%s" % STANZA, "check"])
    print("pitr timings:", json.dumps(TIMINGS))


def test_restore_latest_keeps_everything(pitr, archiving):
    """'latest' replays every archived WAL: the row committed after the last restore is there."""
    pitr.sql("INSERT INTO ticks VALUES (now(), -2)")
    wait_archived(pitr)
    before = pitr.sql("SELECT count(*) FROM ticks")
    ok(pitr.play("playbooks/restore_pitr.yml", restore_target_time="latest", restore_confirm="yes",
                 restore_safety_copy="copy"))
    assert pitr.sql("SELECT count(*) FROM ticks") == before
    assert pitr.sql("SELECT count(*) FROM ticks WHERE n < 0") == [(2,)]
    assert subprocess.run(["ls", str(pitr.server.datadir)], capture_output=True, check=True).returncode == 0


def test_encrypted_repository_never_shows_the_passphrase():
    secret = "pitr-secret-" + uuid.uuid4().hex
    with prepared_cluster() as other:
        out = other.play("playbooks/pitr.yml", "-v", "--diff", pg_pitr_cipher_passphrase=secret)
        ok(out)
        assert secret not in out.stdout + out.stderr
        info = other.info()
        assert info["cipher"] == "aes-256-cbc" and [b["type"] for b in info["backup"]] == ["full"]
        assert "repo1-cipher-type=aes-256-cbc" in other.conf.read_text()
        assert oct(other.conf.stat().st_mode & 0o777) == "0o640" and other.conf.owner() == "postgres"
        again = other.play("playbooks/pitr.yml", "-v", "--diff", pg_pitr_cipher_passphrase=secret)
        assert ok(again) and again.changed == 0 and secret not in again.stdout + again.stderr
