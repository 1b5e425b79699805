"""Secrets and exposure of the main job on the dev host (issue #9, item 5).

Runs the main job exactly as a user does (`ansible-playbook -i inventories/dev site.yml -vvv`
against this machine, the dev host), then an on-demand backup (`playbooks/backup.yml -vvv`) so
that the dumps it checks are made here and not left behind by an earlier run, and then looks for
every configured password in everything the job leaves behind: its full -vvv output, the rejects
file, the reports (repository reports/ and the managed host's copy), the PostgreSQL server log,
pg_stat_statements and the backup manifests and script. It also checks the modes of the files
that hold a secret or all the data (.env, backups, rejects), that pg_hba.conf has no `trust`
rule over TCP and that the dev server listens on loopback only.

Sample scale: the job runs with the same sample scale as `scripts/site.sh` (QUANT_SAMPLE_SCALE
unset, i.e. the inventory's default 1.0). sqlite_sample keeps an existing file whatever the
scale, so on a host where the main job already ran the scale changes nothing and the migration
reports "already complete". On a host where it never ran, a smaller scale would create a small
sample that every later `scripts/site.sh` would keep (the file exists), silently changing what
the main job migrates; using the default leaves the host exactly as `scripts/site.sh` would.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from playbooks_run import one_play, run_playbook
from psycopg2 import sql

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DEV_VARS = ROOT / "inventories" / "dev" / "group_vars" / "quant_db.yml"
SITE_TIMEOUT = 1800  # a first run on a fresh host generates and migrates the full-size sample
LOOPBACK = ("127.", "::1", "[::1]")


def role_default(role, name):
    """A role default that is a plain value (not a template): the path a role writes to."""
    value = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())[name]
    assert isinstance(value, (str, int)) and "{{" not in str(value), "%s is templated: %r" % (name, value)
    inventory = yaml.safe_load(DEV_VARS.read_text())
    assert name not in inventory, "the dev inventory overrides %s; read it from there" % name
    return value


def configured_passwords():
    """Every password configured for the dev environment (name -> value)."""
    data = yaml.safe_load(DEV_VARS.read_text())
    found = {k: v for k, v in data.items() if "password" in k and isinstance(v, str) and v and "{{" not in v}
    assert len(found) >= 3, "expected the owner, app and read-only passwords in %s" % DEV_VARS
    return found


def dev_connect(dbname="postgres"):
    """Admin connection as the dev host's tasks make it: Unix socket, root mapped to postgres."""
    import psycopg2

    conf = yaml.safe_load((ROOT / "roles" / "postgresql" / "defaults" / "main.yml").read_text())
    socket_dir = conf.get("postgresql_socket_dir", "/var/run/postgresql")
    if "{{" in str(socket_dir):
        socket_dir = "/var/run/postgresql"
    port = int(conf.get("postgresql_port", 5432))
    conn = psycopg2.connect(host=socket_dir, user="postgres", dbname=dbname, port=port)
    conn.autocommit = True
    return conn


def scalar(conn, query, args=None):
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchone()[0]


@pytest.fixture(scope="module")
def site_run(tmp_path_factory):
    """The main job and then an on-demand backup, both -vvv, once for the module.

    The backup stage only installs the schedule: on a host where the timer has not fired yet there
    is no dump, so the tests that look at dumps (their modes, their manifests) would depend on
    whatever an earlier run left behind. `playbooks/backup.yml` makes one now, as a user would.
    Returns (rc, seconds, output text of both runs).
    """
    # QUANT_SAMPLE_SCALE unset: the same scale as scripts/site.sh (see the module docstring)
    env = {"PATH": "%s:%s" % (VENV_BIN, os.environ.get("PATH", "")), "QUANT_SAMPLE_SCALE": None}
    logs = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    output = ""
    for playbook in ("site.yml", "playbooks/backup.yml"):
        log = logs / ("%s-vvv.log" % Path(playbook).stem)
        done = run_playbook(playbook, "-vvv", inventory="inventories/dev", env=env, log=log, timeout=SITE_TIMEOUT)
        assert done.rc == 0, "%s failed (rc %d):\n%s" % (playbook, done.rc, done.stdout[-6000:])
        output += done.stdout
    seconds = time.monotonic() - started
    print("\nsite.yml + backup.yml -vvv: %.0f s, %d lines of output" % (seconds, output.count("\n")))
    return done.rc, seconds, output


def leaks_in(text, passwords):
    """{password name: occurrences} for the passwords found in text."""
    return {name: text.count(value) for name, value in passwords.items() if value in text}


def reports_dir_of(output):
    match = re.search(r"Reports: (\S+)/validation-\S+\.json and \.md", output)
    assert match, "the site summary does not say where the reports are"
    return Path(match.group(1))


def rows_lost_from_report(report):
    """Rows neither copied, rejected nor counted as duplicates, from the validation report's accounting."""
    checks = json.loads(report.read_text())["validation"]["checks"]
    accounting = [c["data"] for c in checks if c["name"].startswith("row accounting ")]
    assert accounting, "no row accounting in %s" % report
    return sum(abs(d["sqlite_rows_now"] - d["copied_rows"] - d["rejected_rows"] - d["duplicate_rows"])
               + abs(d["postgres_rows"] - d["copied_rows"]) for d in accounting), len(accounting)


def test_no_password_in_output_rejects_reports_or_logs(site_run, fault_report):
    _rc, seconds, output = site_run
    passwords = configured_passwords()
    env_file = Path(role_default("quant_database", "quant_database_env_path"))
    env_values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
                      and not line.startswith("#"))
    passwords["POSTGRES_PASSWORD in %s" % env_file] = env_values["POSTGRES_PASSWORD"]

    artifacts = {"site.yml -vvv output": output}
    rejects = Path(role_default("sqlite_migration", "sqlite_migration_rejects_path"))
    assert rejects.exists(), "the migration wrote no rejects file at %s" % rejects
    for path in sorted(rejects.parent.glob("*")):
        artifacts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    reports = reports_dir_of(output)
    remote_report = Path(role_default("migration_validation", "migration_validation_remote_report"))
    for path in sorted({*reports.glob("*"), *remote_report.parent.glob("*")}):
        if path.is_file():
            artifacts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    backup_dir = Path(role_default("pg_backup", "pg_backup_dir"))
    for path in [*sorted(backup_dir.glob("*.json")), Path(role_default("pg_backup", "pg_backup_script_path"))]:
        if path.is_file():
            artifacts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    for path in sorted(Path("/var/log/postgresql").glob("*.log*")):
        if path.is_file() and not path.name.endswith(".gz"):
            artifacts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    conn = dev_connect()
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datallowconn")
        databases = [r[0] for r in cur.fetchall()]
    conn.close()
    for db in databases:  # the view shows every database's statements; read it where it is installed
        conn = dev_connect(db)
        if scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"):
            with conn.cursor() as cur:
                cur.execute("SELECT coalesce(string_agg(query, E'\\n'), '') FROM pg_stat_statements")
                artifacts["pg_stat_statements (read in %s)" % db] = cur.fetchone()[0]
            conn.close()
            break
        conn.close()

    found = {name: leaks_in(text, passwords) for name, text in artifacts.items()}
    found = {name: hits for name, hits in found.items() if hits}
    leaked = sum(sum(hits.values()) for hits in found.values())
    lost, tables = rows_lost_from_report(reports / "validation-localhost.json")
    status = "already complete" if "Migration already complete" in output else "migrated in this run"
    fault_report("secrets: site.yml -vvv output, rejects, reports, server log", tries=len(artifacts),
                 recovered=len(artifacts) - len(found), rows_lost=lost, secrets_leaked=leaked,
                 detail="%d passwords x %d artifacts; site.yml %.0f s, migration %s, %d tables reconciled"
                        % (len(passwords), len(artifacts), seconds, status, tables))
    assert found == {}, "passwords found (name -> {password: count}): %s" % found
    assert lost == 0


def test_secret_and_data_files_have_restrictive_modes(site_run, fault_report):
    env_file = Path(role_default("quant_database", "quant_database_env_path"))
    backup_dir = Path(role_default("pg_backup", "pg_backup_dir"))
    rejects = Path(role_default("sqlite_migration", "sqlite_migration_rejects_path"))
    # path -> bits that must be clear: nobody but the owner (and a read-only group for the .env's
    # directory and the rejects) may touch a password or a full copy of the data
    checks = {env_file: 0o077, env_file.parent: 0o027, backup_dir: 0o077, rejects: 0o037}
    backups = [p for p in backup_dir.iterdir()] if backup_dir.is_dir() else []
    for path in backups:
        checks[path] = 0o077
    script = Path(role_default("pg_backup", "pg_backup_script_path"))
    if script.exists():
        checks[script] = 0o022  # runs as the backup user: nobody else may rewrite it
    bad = {}
    for path, forbidden in checks.items():
        assert path.exists(), "%s does not exist after the main job" % path
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & forbidden:
            bad[str(path)] = oct(mode)
    # a secret readable by others counts as leaked: the .env holds the app password, backups hold everything
    leaked = sum(1 for p in bad if p == str(env_file) or p.startswith(str(backup_dir)))
    fault_report("file modes (.env, backups, rejects, backup script)", tries=len(checks),
                 recovered=len(checks) - len(bad), rows_lost=0, secrets_leaked=leaked,
                 detail="%d backup files checked; wrong: %s" % (len(backups), bad or "none"))
    assert backups, "no backup files in %s to check" % backup_dir
    assert bad == {}


def test_no_trust_over_tcp_and_loopback_only(site_run, fault_report):
    conn = dev_connect()
    with conn.cursor() as cur:
        cur.execute("SELECT line_number, type, database, user_name, address, auth_method, error "
                    "FROM pg_hba_file_rules ORDER BY line_number")
        rules = cur.fetchall()
        cur.execute("SHOW listen_addresses")
        listen = [a.strip() for a in cur.fetchone()[0].split(",") if a.strip()]
        cur.execute("SHOW port")
        port = int(cur.fetchone()[0])
        cur.execute("SHOW hba_file")
        hba_file = cur.fetchone()[0]
    conn.close()
    tcp = [r for r in rules if r[1].startswith("host")]
    bad_rules = [r for r in rules if r[6] or (r[1].startswith("host") and r[5] == "trust")]
    bad_listen = [a for a in listen if a not in ("localhost", "127.0.0.1", "::1")]
    out = subprocess.run(["ss", "-H", "-ltn", "sport = :%d" % port], capture_output=True, text=True, check=True)
    sockets = [line.split()[3] for line in out.stdout.splitlines() if line.strip()]
    bad_sockets = [s for s in sockets if not s.startswith(LOOPBACK)]
    fault_report("network exposure (pg_hba trust over TCP, listen addresses)",
                 tries=len(tcp) + len(listen) + len(sockets),
                 recovered=len(tcp) + len(listen) + len(sockets) - len(bad_rules) - len(bad_listen) - len(bad_sockets),
                 rows_lost=0, secrets_leaked=0,
                 detail="%s: %d TCP rules (%s); listen_addresses=%s; listening on %s" % (
                     hba_file, len(tcp), ", ".join(sorted({r[5] for r in tcp})) or "none", ",".join(listen),
                     " ".join(sockets)))
    assert tcp, "no host rules at all in %s: cannot judge" % hba_file
    assert bad_rules == [], "trust over TCP or broken lines in %s: %s" % (hba_file, bad_rules)
    assert bad_listen == [] and sockets, "dev listens on %s" % listen
    assert bad_sockets == [], "PostgreSQL port %d open on %s" % (port, bad_sockets)


def test_role_passwords_stay_out_of_statistics_and_server_log(pg_server, tmp_path, fault_report):
    """The quant_database role's login-role task (create, then a password change) against the
    throw-away cluster, which preloads pg_stat_statements like the real one, with statement
    logging of DDL switched on as an auditing DBA would: no password may reach pg_stat_statements
    (it keeps utility statements verbatim on PostgreSQL 15), the server log or the -vvv output."""
    import uuid

    admin = pg_server.connect()
    with admin.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cur.execute("SELECT pg_stat_statements_reset()")
        cur.execute("ALTER SYSTEM SET log_statement = 'ddl'")
        cur.execute("SELECT pg_reload_conf()")
    log = pg_server.datadir / "server.log"
    log_start = log.stat().st_size
    suffix = uuid.uuid4().hex[:8]
    names = {"owner": "f_owner_" + suffix, "app_user": "f_app_" + suffix, "readonly_user": "f_ro_" + suffix}
    passwords = {}
    runs = []
    try:
        for attempt in ("create", "change"):
            extra = {"quant_database_login_user": pg_server.user,
                     "quant_database_login_unix_socket": str(pg_server.socket_dir),
                     "quant_database_port": pg_server.port}
            for key, name in names.items():
                secret = "pw-%s-%s-%s" % (key, attempt, uuid.uuid4().hex[:12])
                passwords["%s (%s)" % (key, attempt)] = secret
                extra["quant_database_%s" % key] = name
                extra["quant_database_%s_password" % key.replace("_user", "")] = secret
            # the connection as the role's entry point gives it (module_defaults, vars/main.yml)
            play = one_play([{"name": "Connect as the role does", "module_defaults": {
                "group/community.postgresql.all": "{{ __quant_database_connection }}"}, "block": [
                    {"name": "Login roles", "ansible.builtin.include_role": {"name": "quant_database",
                                                                             "tasks_from": "roles"}}]}],
                            tmp_path, "roles")
            out = run_playbook(play, "-vvv", extra_vars=extra, env={"PGPASSWORD": pg_server.password}, timeout=300)
            runs.append(out)
            assert out.rc == 0, out.tail()
        canary = "f_canary_" + suffix  # proves the server does log DDL and count utility statements
        with admin.cursor() as cur:
            cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(names.values()),))
            assert len(cur.fetchall()) == len(names)
            cur.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(canary)))
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(canary)))
            cur.execute("SELECT coalesce(string_agg(query, E'\\n'), '') FROM pg_stat_statements")
            statements = cur.fetchone()[0]
        server_log = log.read_bytes()[log_start:].decode("utf-8", "replace")
        output = "\n".join(o.stdout + o.stderr for o in runs)
        artifacts = {"pg_stat_statements": statements, "server log": server_log, "ansible -vvv output": output}
        found = {name: leaks_in(text, passwords) for name, text in artifacts.items()}
        found = {name: hits for name, hits in found.items() if hits}
        leaked = sum(sum(h.values()) for h in found.values())
        fault_report("secrets: role passwords in pg_stat_statements / server log (create + change)",
                     tries=len(artifacts) * len(runs), recovered=(len(artifacts) - len(found)) * len(runs),
                     rows_lost=0, secrets_leaked=leaked,
                     detail="%d passwords; DDL logging on; leaks in: %s" % (len(passwords),
                                                                           ", ".join(found) or "none"))
        assert found == {}, "passwords found: %s" % found
        assert canary in server_log and canary in statements, "DDL is not logged/tracked: the check proves nothing"
    finally:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET log_statement")
            cur.execute("SELECT pg_reload_conf()")
            for name in names.values():
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()
