"""Throw-away PostgreSQL 15 cluster (TimescaleDB preloaded when installed).

Shared by tests/conftest.py (the `pg_server` fixture) and scripts/bench-migrate.
The server runs as the unprivileged `postgres` user on a free port (PostgreSQL
refuses to run as root) and is removed by stop_cluster().
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_VERSION = os.environ.get("QUANT_TEST_PG_VERSION", "15")
PG_BINDIR = Path(os.environ.get("QUANT_TEST_PG_BINDIR", "/usr/lib/postgresql/%s/bin" % PG_VERSION))
SUPERUSER_PASSWORD = "test-" + uuid.uuid4().hex[:12]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_pkglibdir(bindir=PG_BINDIR):
    out = subprocess.run([str(bindir / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=False)
    if out.returncode == 0:
        return Path(out.stdout.strip())
    return Path("/usr/lib/postgresql/%s/lib" % PG_VERSION)


def timescaledb_available(bindir=PG_BINDIR):
    return any(_pg_pkglibdir(bindir).glob("timescaledb*.so"))


def community_bindir():
    """The bin directory of the host's PostgreSQL + TimescaleDB Community tree (scripts/build-community),
    or None when it has not been built."""
    out = subprocess.run([str(Path(__file__).resolve().parents[1] / "scripts" / "build-community"), "--print"],
                         capture_output=True, text=True, check=False)
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _as_postgres(cmd, **kw):
    """Run cmd as the unprivileged postgres user when we are root."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    password: str
    datadir: Path
    socket_dir: Path
    bindir: Path
    has_timescaledb: bool
    base: Path = None

    def params(self, db="postgres", **extra):
        """Module parameters (community.postgresql shape) for this server."""
        out = dict(
            login_host=self.host,
            login_port=self.port,
            login_user=self.user,
            login_password=self.password,
            login_unix_socket="",
            db=db,
            ssl_mode="disable",
            ca_cert=None,
            connect_timeout=10,
        )
        out.update(extra)
        return out

    def dsn(self, db="postgres"):
        return "host=%s port=%d user=%s password=%s dbname=%s" % (
            self.host, self.port, self.user, self.password, db)

    def connect(self, db="postgres", autocommit=True):
        import psycopg2

        conn = psycopg2.connect(self.dsn(db))
        conn.autocommit = autocommit
        return conn

    def query(self, statement, db="postgres"):
        """One statement on its own autocommit connection: its rows, or None when it returns none."""
        conn = self.connect(db)
        try:
            cur = conn.cursor()
            cur.execute(statement)
            return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def peer_superuser(self, map_name):
        """Let the OS users root and postgres log in as the superuser over the socket (peer,
        mapped), as on a packaged cluster where the playbooks connect as postgres. Read at the
        next start or reload."""
        hba = self.datadir / "pg_hba.conf"
        hba.write_text("local all postgres peer map=%s\n" % map_name + hba.read_text())
        with open(self.datadir / "pg_ident.conf", "a", encoding="utf-8") as fh:
            fh.write("%s root postgres\n%s postgres postgres\n" % (map_name, map_name))

    def pg_ctl(self, *args):
        return _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60", *args])

    def restart(self):
        self.pg_ctl("restart", "-m", "fast", "-l", str(self.datadir / "server.log"))




class ClusterError(RuntimeError):
    """The PostgreSQL binaries are missing or the cluster did not start."""


def start_cluster(extra_conf="", bindir=PG_BINDIR):
    """initdb + start a cluster in a temp dir with the binaries of bindir; returns a PgServer (call
    stop_cluster after)."""
    if not (bindir / "initdb").exists():
        raise ClusterError("PostgreSQL %s binaries not found in %s; run `make deps` first" % (PG_VERSION, bindir))
    base = Path(tempfile.mkdtemp(prefix="quant-pgtest-"))
    datadir = base / "data"
    sockdir = base / "sock"
    sockdir.mkdir()
    pwfile = base / "pw"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for path in (base, sockdir, pwfile):
            os.chown(path, pg.pw_uid, pg.pw_gid)
    # LC_COLLATE C / LC_CTYPE C.UTF-8: what the quant_database role gives a new database
    _as_postgres([
        str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "-E", "UTF8",
        "--locale=C.UTF-8", "--lc-collate=C", "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
        "--pwfile", str(pwfile), "--no-sync",
    ])
    has_ts = timescaledb_available(bindir)
    preload = "timescaledb,pg_stat_statements" if has_ts else "pg_stat_statements"
    port = _free_port()
    conf = datadir / "postgresql.auto.conf"
    with open(conf, "a", encoding="utf-8") as fh:
        fh.write(
            "port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"
            "shared_preload_libraries = '%s'\nfsync = off\nsynchronous_commit = off\n"
            "full_page_writes = off\nmax_connections = 100\ntimescaledb.telemetry_level = off\n"
            % (port, sockdir, preload)
        )
        if extra_conf:
            fh.write(extra_conf.rstrip("\n") + "\n")
    if not has_ts:
        # Without the library the GUC above is unknown and would stop startup.
        conf.write_text(conf.read_text().replace("timescaledb.telemetry_level = off\n", ""))
    server = PgServer("127.0.0.1", port, "postgres", SUPERUSER_PASSWORD, datadir, sockdir, bindir, has_ts)
    server.base = base
    server.pg_ctl("start", "-l", str(datadir / "server.log"))
    return server


def stop_cluster(server):
    try:
        server.pg_ctl("stop", "-m", "immediate")
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(getattr(server, "base", server.datadir.parent), ignore_errors=True)


@contextmanager
def running_cluster(extra_conf="", bindir=PG_BINDIR):
    """start_cluster() for the duration of a with-block; always removed afterwards."""
    server = start_cluster(extra_conf, bindir)
    try:
        yield server
    finally:
        stop_cluster(server)


def cluster_fixture(extra_conf="", bindir=PG_BINDIR):
    """Body of a pytest fixture: yields a running cluster, or fails the test with the reason."""
    import pytest

    try:
        with running_cluster(extra_conf, bindir) as server:
            yield server
    except ClusterError as exc:
        pytest.fail(str(exc))


def community_fixture():
    """Body of a pytest fixture: a running cluster of the Community tree (license timescale), or a
    failure saying how to build the tree."""
    import pytest

    bindir = community_bindir()
    if bindir is None:
        pytest.fail("no PostgreSQL + TimescaleDB Community tree on this host: scripts/build-community builds it "
                    "(the test command's provision stage runs it)")
    yield from cluster_fixture("timescaledb.license = 'timescale'\n", bindir)
