"""playbooks/promote.yml and playbooks/rejoin.yml on two throw-away clusters of this host (issue 17, item 2).

pg_a is a primary with rows, pg_b its streaming standby (pg_basebackup -R --slot, as the postgres
user). Both are hosts of a throw-away inventory (db_primary: pg_a, db_replica: pg_b, pg_c and pg_gone,
a host that never answers; local connection) whose servers the playbooks stop and start with pg_ctl
(pg_replica_service_mode). The sequence: --check and the refusals change nothing; promote.yml with
promote_force stops and fences pg_a, promotes pg_b and repoints pg_c to it; a write succeeds on pg_b; the app .env
points at pg_b; a second run changes nothing; rejoin.yml rewinds pg_a (pg_rewind) into a standby
of pg_b that streams and has the new row; a second run changes nothing. Last, pg_a replaced by an
unrelated cluster: pg_rewind fails, the run stops saying so, and rejoin_allow_basebackup copies
pg_b instead. No molecule: the replica scenario covers the containers.

Each cluster keeps its port and socket in <base>/local.conf, outside the data directory (pg_rewind
and pg_basebackup copy the data directory, configuration files included, from the other cluster:
a packaged cluster keeps its configuration in /etc the same way).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from pgcluster import SUPERUSER_PASSWORD, PgServer, _as_postgres, _free_port, start_cluster, stop_cluster
from playbooks_run import run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPLICATION_PASSWORD = "repl-it's: se\\cret"  # quote, space, colon, backslash: conninfo and passfile escaping
DB = "failover_db"
TIMINGS = {}
# A third database host that never answers (nothing listens on port 1): a dead host must not
# stop a failover; the plans count it as unreachable.
GONE = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1,
        "ansible_ssh_common_args": "-o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no"}
HOST_ONLY = ("port", "listen_addresses", "unix_socket_directories", "full_page_writes")


def _chown_postgres(*paths):
    pg = pwd.getpwnam("postgres")
    for path in paths:
        os.chown(path, pg.pw_uid, pg.pw_gid)


def _local_conf(base, port, sockdir):
    conf = Path(base) / "local.conf"
    conf.write_text("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" % (port, sockdir))
    _chown_postgres(conf)


def _sql(server, query, db="postgres"):
    return server.query(query, db)


def _running(server):
    out = subprocess.run(["runuser", "-u", "postgres", "--", str(server.bindir / "pg_ctl"), "-D",
                          str(server.datadir), "status"], capture_output=True, text=True, check=False)
    return out.returncode == 0


def _wait(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # a server still starting refuses connections
            pass
        time.sleep(0.5)
    raise AssertionError("timed out waiting for %s" % what)


def _make_primary():
    """start_cluster(), then its host-only settings moved to <base>/local.conf, wal_log_hints and
    full_page_writes on (pg_rewind), and the superuser reachable over the socket by root (peer map)."""
    a = start_cluster()
    a.pg_ctl("stop", "-m", "fast")
    auto = a.datadir / "postgresql.auto.conf"
    auto.write_text("".join(line for line in auto.read_text().splitlines(True)
                            if line.split("=")[0].strip() not in HOST_ONLY))
    with open(a.datadir / "postgresql.conf", "a", encoding="utf-8") as fh:
        fh.write("include_if_exists = '../local.conf'\nwal_log_hints = on\nfull_page_writes = on\n")
    a.peer_superuser("failover")
    _local_conf(a.base, a.port, a.socket_dir)
    a.pg_ctl("start", "-l", str(a.base / "server.log"))
    return a


def _make_standby(a, name="pg_b"):
    base = Path(tempfile.mkdtemp(prefix="quant-pgtest-standby-"))
    sockdir = base / "sock"
    sockdir.mkdir()
    _chown_postgres(base, sockdir)
    b = PgServer("127.0.0.1", _free_port(), "postgres", SUPERUSER_PASSWORD, base / "data", sockdir, a.bindir,
                 a.has_timescaledb, base)
    _local_conf(base, b.port, sockdir)
    _as_postgres([str(a.bindir / "pg_basebackup"), "-D", str(b.datadir), "-R", "-X", "stream", "-c", "fast",
                  "--slot=quant_replica_%s" % name, "-h", "127.0.0.1", "-p", str(a.port), "-U", "replicator",
                  "--no-password"], env=dict(os.environ, PGPASSWORD=REPLICATION_PASSWORD))
    b.pg_ctl("start", "-l", str(base / "server.log"))
    _wait(lambda: _sql(b, "SELECT status FROM pg_stat_wal_receiver") == [("streaming",)], name + " to stream")
    return b


def _streams_without_the_password(server):
    """The role's primary_conninfo names the password file beside the data directory (0600)
    and never holds the password: pg_basebackup and pg_rewind copy the data directory."""
    auto = (server.datadir / "postgresql.auto.conf").read_text()
    assert "cret" not in auto, auto
    # The conninfo's own quotes, doubled inside the setting's quotes.
    assert "passfile=''%s''" % (server.base / "quant_replication.pgpass") in auto, auto
    passfile = server.base / "quant_replication.pgpass"
    assert oct(passfile.stat().st_mode & 0o777) == "0o600"
    assert passfile.read_text() == "*:*:*:replicator:repl-it's\\: se\\\\cret\n"


def _host(server, python="/usr/bin/python3"):
    return {
        "ansible_connection": "local",
        # Tasks that become postgres cannot run the virtualenv's Python (under /root).
        "ansible_python_interpreter": python,
        "quant_private_address": "127.0.0.1",
        "postgresql_admin_user": "postgres", "postgresql_socket_dir": str(server.socket_dir),
        "postgresql_port": server.port, "postgresql_bin_dir": str(server.bindir),
        "pg_replica_data_dir": str(server.datadir), "pg_replica_bin_dir": str(server.bindir),
        "pg_replica_service_mode": "pg_ctl", "pg_replica_server_log": str(server.base / "server.log"),
    }


class Pair:
    def __init__(self, a, b, c, workdir):
        self.a, self.b, self.c, self.workdir = a, b, c, Path(workdir)
        self.env_file = self.workdir / "quant-platform" / ".env"
        self.inventory = self.workdir / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {"quant_db": {
            "children": {"db_primary": {"hosts": {"pg_a": _host(a)}},
                         "db_replica": {"hosts": {"pg_b": _host(b), "pg_c": _host(c), "pg_gone": GONE}}},
            "vars": {"quant_db_replication_password": REPLICATION_PASSWORD,
                     "quant_db_app_password": "app-secret", "quant_database_env_path": str(self.env_file),
                     }}}}}))

    def play(self, playbook, *args, **extra):
        return run_playbook(playbook, *args, inventory=self.inventory, extra_vars=extra,
                            env={"ANSIBLE_BECOME_METHOD": "su"})


def ok(out):
    assert out.rc == 0, out.stdout[-8000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def pair():
    if os.geteuid() != 0:
        pytest.skip("the fixture hands the clusters to the postgres user: run as root")
    a = _make_primary()
    b = c = None
    workdir = tempfile.mkdtemp(prefix="quant-failover-")
    try:
        _sql(a, "CREATE ROLE replicator LOGIN REPLICATION PASSWORD '%s'" % REPLICATION_PASSWORD.replace("'", "''"))
        for name in ("pg_b", "pg_c"):
            _sql(a, "SELECT pg_create_physical_replication_slot('quant_replica_%s', true)" % name)
        _sql(a, "CREATE DATABASE %s" % DB)
        _sql(a, "CREATE TABLE trades (id int PRIMARY KEY, note text NOT NULL)", DB)
        _sql(a, "INSERT INTO trades SELECT g, 'before failover ' || g FROM generate_series(1, 1000) g", DB)
        b = _make_standby(a)
        c = _make_standby(a, "pg_c")
        for standby in (b, c):
            _wait(lambda s=standby: _sql(s, "SELECT count(*) FROM trades", DB) == [(1000,)], "the standbys to replay")
        yield Pair(a, b, c, workdir)
    finally:
        for server in (c, b, a):
            if server is not None:
                stop_cluster(server)
        subprocess.run(["rm", "-rf", workdir], check=False)
        print("\nfailover timings (s): %s" % TIMINGS)


def test_check_mode_and_refusals_change_nothing(pair):
    check = ok(pair.play("playbooks/promote.yml", "--check", promote_host="pg_b", promote_force="yes"))
    text = " ".join(check.stdout.split())
    for line in ("Stop and fence: pg_a", "Repoint to pg_b: pg_c", "pg_gone: unreachable"):
        assert line in text, check.stdout[-4000:]
    refused = pair.play("playbooks/promote.yml", promote_host="pg_b", promote_confirm="yes")
    assert refused.rc != 0 and "pg_a still runs as a primary" in refused.stdout, refused.stdout[-4000:]
    unconfirmed = pair.play("playbooks/promote.yml", promote_host="pg_b", promote_force="yes")
    assert unconfirmed.rc != 0 and "Not confirmed" in unconfirmed.stdout, unconfirmed.stdout[-4000:]
    unknown = pair.play("playbooks/promote.yml", promote_host="pg_x", promote_confirm="yes")
    assert unknown.rc != 0 and "promote_host=pg_x is not a quant_db host" in unknown.stdout
    assert _sql(pair.b, "SELECT pg_is_in_recovery()") == [(True,)]
    assert _sql(pair.a, "SELECT pg_is_in_recovery()") == [(False,)]
    assert not (pair.a.datadir / "standby.signal").exists() and not pair.env_file.exists()


def test_a_primary_that_refuses_the_probe_is_not_taken_for_stopped(pair):
    """pg_a still runs and takes writes but refuses the admin (a pg_hba.conf edit gone wrong): the
    failed probe must not read as 'stopped', or promote_force would promote pg_b beside it."""
    hba = pair.a.datadir / "pg_hba.conf"
    saved = hba.read_text()
    hba.write_text("local all all reject\n" + saved)
    pair.a.pg_ctl("reload")
    try:
        refused = pair.play("playbooks/promote.yml", promote_host="pg_b", promote_force="yes", promote_confirm="yes")
        text = " ".join(refused.stdout.split())
        assert refused.rc != 0, text[-4000:]
        assert "pg_a runs a PostgreSQL server (pg_ctl status) that did not answer the probe" in text, text[-4000:]
        assert "pg_a: running but not answering" in text
    finally:
        hba.write_text(saved)
        pair.a.pg_ctl("reload")
    assert _running(pair.a) and not (pair.a.datadir / "standby.signal").exists()
    assert _sql(pair.b, "SELECT pg_is_in_recovery()") == [(True,)]


def test_promote_fences_the_old_primary_and_the_new_one_takes_writes(pair):
    started = time.monotonic()
    ok(pair.play("playbooks/promote.yml", promote_host="pg_b", promote_force="yes", promote_confirm="yes"))
    TIMINGS["promote_yml_s"] = round(time.monotonic() - started, 1)
    assert _sql(pair.b, "SELECT pg_is_in_recovery()") == [(False,)]
    assert not _running(pair.a)
    assert (pair.a.datadir / "standby.signal").exists()
    assert "rejoin_host=pg_a" in (pair.a.datadir / "quant_fenced.txt").read_text()
    _sql(pair.b, "INSERT INTO trades VALUES (1001, 'after failover')", DB)
    # pg_c now streams from pg_b through its own slot there, and gets the new row.
    senders = _sql(pair.b, "SELECT application_name, state FROM pg_stat_replication")
    assert senders == [("quant_replica_pg_c", "streaming")]
    _wait(lambda: _sql(pair.c, "SELECT count(*) FROM trades", DB) == [(1001,)], "pg_c to replay the new row")
    _streams_without_the_password(pair.c)
    env = pair.env_file.read_text()
    assert "POSTGRES_HOST=127.0.0.1" in env and "POSTGRES_PORT=%d" % pair.b.port in env, env
    assert "POSTGRES_PASSWORD=app-secret" in env and oct(pair.env_file.stat().st_mode & 0o777) == "0o600"


def test_promote_again_changes_nothing(pair):
    again = ok(pair.play("playbooks/promote.yml", promote_host="pg_b"))
    assert again.changed == 0, again.stdout[-4000:]


def test_rejoin_refuses_the_current_primary_and_check_changes_nothing(pair):
    refused = pair.play("playbooks/rejoin.yml", rejoin_host="pg_b", rejoin_confirm="yes")
    assert refused.rc != 0 and "pg_b is the current primary" in refused.stdout, refused.stdout[-4000:]
    ok(pair.play("playbooks/rejoin.yml", "--check", rejoin_host="pg_a"))
    assert not _running(pair.a) and (pair.a.datadir / "quant_fenced.txt").exists()


def test_rejoin_rewinds_the_old_primary_into_a_streaming_replica(pair):
    started = time.monotonic()
    out = ok(pair.play("playbooks/rejoin.yml", rejoin_host="pg_a", rejoin_confirm="yes"))
    TIMINGS["rejoin_yml_s"] = round(time.monotonic() - started, 1)
    assert "pg_rewind (rc 0)" in out.stdout, out.stdout[-4000:]
    receiver = _sql(pair.a, "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)")
    assert receiver == [(True, "streaming")]
    senders = _sql(pair.b, "SELECT application_name, state FROM pg_stat_replication ORDER BY 1")
    assert senders == [("quant_replica_pg_a", "streaming"), ("quant_replica_pg_c", "streaming")]
    assert _sql(pair.b, "SELECT active FROM pg_replication_slots WHERE slot_name = 'quant_replica_pg_a'") == [(True,)]
    _sql(pair.b, "INSERT INTO trades VALUES (1002, 'after rejoin')", DB)
    _wait(lambda: _sql(pair.a, "SELECT count(*) FROM trades", DB) == [(1002,)], "pg_a to replay the new rows")
    assert _sql(pair.a, "SELECT note FROM trades WHERE id = 1001", DB) == [("after failover",)]
    with pytest.raises(Exception, match="read-only"):
        _sql(pair.a, "INSERT INTO trades VALUES (1003, 'refused')", DB)
    assert not (pair.a.datadir / "quant_fenced.txt").exists()
    # The slots pg_a held as the primary survive pg_rewind; left there they would pin WAL on it.
    assert _sql(pair.a, "SELECT slot_name FROM pg_replication_slots") == []
    _streams_without_the_password(pair.a)


def test_rejoin_again_changes_nothing(pair):
    again = ok(pair.play("playbooks/rejoin.yml", rejoin_host="pg_a"))
    assert again.changed == 0, again.stdout[-4000:]
    assert "pg_a streams already" in again.stdout


def test_the_old_groups_stop_the_replication_stage_on_a_standby_db_primary(pair):
    """After promote and rejoin the inventory still names pg_a db_primary. site.yml's replication
    stage (roles/pg_replica on db_primary) must stop there, saying which host to move where,
    instead of failing later on a read-only write."""
    playbook = pair.workdir / "replicate.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Replicate", "hosts": "db_primary", "gather_facts": False,
                                         "roles": ["pg_replica"]}]))
    out = pair.play(str(playbook))
    text = " ".join(out.stdout.split())
    assert out.rc != 0, text[-4000:]
    assert "pg_a is the inventory's db_primary but its server is a standby (streaming from 127.0.0.1)" in text, \
        text[-4000:]
    assert "put the promoted host in db_primary" in text
    assert _sql(pair.a, "SELECT pg_is_in_recovery()") == [(True,)]


def test_rejoin_without_common_history_needs_the_basebackup_fallback(pair):
    """pg_a replaced by an unrelated cluster (its own initdb): pg_rewind cannot rewind it. Without
    rejoin_allow_basebackup the run stops with pg_rewind's message and leaves the directory alone;
    with it, pg_basebackup copies pg_b and pg_a streams again."""
    a = pair.a
    a.pg_ctl("stop", "-m", "fast")
    subprocess.run(["rm", "-rf", str(a.datadir)], check=True)
    _as_postgres([str(a.bindir / "initdb"), "-D", str(a.datadir), "-U", "postgres", "--no-sync",
                  "--auth-local=trust"])
    with open(a.datadir / "postgresql.conf", "a", encoding="utf-8") as fh:
        fh.write("include_if_exists = '../local.conf'\nwal_log_hints = on\n")
    refused = pair.play("playbooks/rejoin.yml", rejoin_host="pg_a", rejoin_confirm="yes")
    assert refused.rc != 0, refused.stdout[-4000:]
    text = " ".join(refused.stdout.split())
    assert "pg_rewind of pg_a from pg_b failed" in text and "rejoin_allow_basebackup=yes" in text, text[-4000:]
    assert not _running(a) and not (a.datadir / "standby.signal").exists()
    started = time.monotonic()
    ok(pair.play("playbooks/rejoin.yml", rejoin_host="pg_a", rejoin_confirm="yes", rejoin_allow_basebackup="yes"))
    TIMINGS["rejoin_basebackup_yml_s"] = round(time.monotonic() - started, 1)
    assert _sql(a, "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)") == [(True, "streaming")]
    _sql(pair.b, "INSERT INTO trades VALUES (1003, 'after the copy')", DB)
    _wait(lambda: _sql(a, "SELECT count(*) FROM trades", DB) == [(1003,)], "pg_a to replay the copy's new row")
    _streams_without_the_password(a)  # pg_basebackup -R would have written it
    again = ok(pair.play("playbooks/rejoin.yml", rejoin_host="pg_a"))
    assert again.changed == 0, again.stdout[-4000:]
