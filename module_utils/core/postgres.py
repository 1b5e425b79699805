"""Connection plumbing shared by the project's PostgreSQL modules.

Shaped like community.postgresql's module_utils/postgres.py so that a task
written for `community.postgresql.postgresql_query` can pass the same
connection options to `sqlite_migrate`, `migration_validate`,
`timescaledb_tune` and `pg_benchmark`.
"""

from __future__ import annotations

import os

try:
    import psycopg2
    import psycopg2.extensions
    from psycopg2 import sql as pgsql

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without the driver
    psycopg2 = None
    pgsql = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc


def postgres_common_argument_spec():
    """Connection options, identical in name and meaning to community.postgresql."""
    return dict(
        login_user=dict(default="postgres", aliases=["login"]),
        login_password=dict(default="", no_log=True),
        login_host=dict(default=""),
        login_unix_socket=dict(default=""),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        db=dict(type="str", default="", aliases=["login_db"]),
        ssl_mode=dict(
            default="prefer",
            choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"],
        ),
        ca_cert=dict(aliases=["ssl_rootcert"]),
        connect_timeout=dict(type="int", default=10),
    )


def connection_kwargs(params, db_override=None):
    """Translate module parameters into psycopg2.connect() keyword arguments.

    An empty login_host means "use the Unix socket", exactly as in
    community.postgresql; login_unix_socket then picks the socket directory.
    """
    kwargs = {
        "user": params.get("login_user") or "postgres",
        "port": params.get("login_port") or 5432,
        "sslmode": params.get("ssl_mode") or "prefer",
        "connect_timeout": params.get("connect_timeout") or 10,
        "application_name": "quant-platform-ansible",
    }
    dbname = db_override or params.get("db")
    if dbname:
        kwargs["dbname"] = dbname
    if params.get("login_password"):
        kwargs["password"] = params["login_password"]
    host = params.get("login_host")
    socket_dir = params.get("login_unix_socket")
    if host:
        kwargs["host"] = host
    elif socket_dir:
        kwargs["host"] = socket_dir
    if params.get("ca_cert"):
        kwargs["sslrootcert"] = params["ca_cert"]
    return kwargs


def describe_target(kwargs):
    """A secret-free description of where we connect, for error messages."""
    host = kwargs.get("host") or "local socket"
    return "%s@%s:%s/%s" % (kwargs.get("user"), host, kwargs.get("port"), kwargs.get("dbname", ""))


class ConnectionFailure(Exception):
    """Raised with a one-line, password-free explanation of a failed connect."""


def explain_connect_error(exc, kwargs):
    """Map a psycopg2 connect error to one clear sentence naming what is wrong."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    target = describe_target(kwargs)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        reason = "authentication failed for user %r (check login_user/login_password)" % kwargs.get("user")
    elif "does not exist" in lowered and "database" in lowered:
        reason = "database %r does not exist" % kwargs.get("dbname")
    elif "connection refused" in lowered or "no such file or directory" in lowered:
        reason = "server is not accepting connections (is PostgreSQL running and listening there?)"
    elif "timeout" in lowered:
        reason = "connection timed out"
    else:
        reason = text
    password = kwargs.get("password")
    if password:
        reason = reason.replace(password, "********")
    return "cannot connect to PostgreSQL at %s: %s" % (target, reason)


def connect(params, db_override=None, autocommit=False):
    """Open a psycopg2 connection or raise ConnectionFailure with a clear message."""
    if not HAS_PSYCOPG2:
        raise ConnectionFailure("the psycopg2 Python package is required on the managed host")
    kwargs = connection_kwargs(params, db_override)
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        raise ConnectionFailure(explain_connect_error(exc, kwargs)) from None
    conn.autocommit = autocommit
    return conn


def quote_ident(name):
    """Quote one identifier safely (never format user input into SQL by hand)."""
    return pgsql.Identifier(name)


def rollback_quietly(conn):
    """Roll back after an error. A connection the server already closed has nothing to
    roll back (the server did), and raising here would hide the error being reported."""
    try:
        if not conn.closed:
            conn.rollback()
    except psycopg2.Error:
        pass


def env_fallback_password(params):
    """Honour PGPASSWORD like libpq does when no password parameter was given."""
    if not params.get("login_password") and os.environ.get("PGPASSWORD"):
        params["login_password"] = os.environ["PGPASSWORD"]
    return params


def module_params(module):
    """The module's parameters, failing first when psycopg2 is missing; PGPASSWORD honoured."""
    if not HAS_PSYCOPG2:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    return env_fallback_password(dict(module.params))


def run_or_fail(module, what, fn, expected=()):
    """Return fn(); a failure ends the module with one line that starts with `what`.

    Expected errors (ConnectionFailure plus `expected`) are the message
    alone; an error carrying a partial result (``exc.result``, e.g. the tables
    a migration finished before failing) returns it too. Anything else is a
    bug or an unforeseen driver error: the type is named and the traceback is
    kept for -vvv.
    """
    try:
        return fn()
    except (ConnectionFailure, *expected) as exc:
        module.fail_json(msg="%s: %s" % (what, exc), **(getattr(exc, "result", None) or {}))
    except Exception as exc:
        import traceback

        module.fail_json(msg="%s: unexpected error: %s: %s" % (what, type(exc).__name__, exc),
                         exception=traceback.format_exc())
    return None  # fail_json exits; reached only with a test double
