#!/usr/bin/env python3
"""Logical backups of the quant platform database (installed by the pg_backup role).

Subcommands (every one prints one JSON object on stdout; errors go to stderr
with exit status 2):

  backup        pg_dump -Fc into --dir, then <dump>.sha256 and <dump>.json
                (manifest: time, size, database, TimescaleDB version, row
                counts of every public table), then the retention pass
  prune         delete dumps (and their .sha256/.json) older than --retention-days
  latest        the newest dump of --db in --dir
  verify DUMP   compare DUMP with its .sha256 (refuses a corrupt dump)
  counts        the current row count of every public table of --db
  compare MANIFEST   current row counts against the manifest's

Only files named <db>-YYYYmmddTHHMMSSZ.dump (and their companions) are ever
deleted. Standard library only: runs with the host's python3; talks to the
server with psql/pg_dump from --bindir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import time

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
COMPANIONS = (".sha256", ".json")


class BackupError(Exception):
    """What went wrong, worded for the operator."""


# --- pure logic (unit tested) -------------------------------------------------
def dump_pattern(db):
    return re.compile(r"^%s-(\d{8}T\d{6}Z)\.dump$" % re.escape(db))


def dump_name(db, when):
    return "%s-%s.dump" % (db, when.strftime(STAMP_FORMAT))


def list_dumps(names, db):
    """[(timestamp, name)] of the project's dumps among names, oldest first."""
    pattern = dump_pattern(db)
    out = []
    for name in names:
        match = pattern.match(name)
        if match:
            try:
                when = dt.datetime.strptime(match.group(1), STAMP_FORMAT).replace(tzinfo=dt.timezone.utc)
            except ValueError:
                continue
            out.append((when, name))
    return sorted(out)


def latest_dump(names, db):
    dumps = list_dumps(names, db)
    return dumps[-1][1] if dumps else None


def select_expired(entries, db, retention_days, now, keep=None):
    """Names (dumps and their companions) to delete.

    entries: {name: mtime (epoch seconds)}. A dump is expired when its mtime is
    older than retention_days; the newest dump is always kept (a stale host
    never loses its last backup), and so is `keep` (the dump just written).
    """
    if retention_days is None or retention_days <= 0:
        return []
    limit = now - retention_days * 86400
    dumps = list_dumps(entries, db)
    newest = dumps[-1][1] if dumps else None
    doomed = []
    for _when, name in dumps:
        if name in (newest, keep) or entries[name] >= limit:
            continue
        doomed.append(name)
        doomed.extend(name + ext for ext in COMPANIONS if name + ext in entries)
    return doomed


def parse_checksum(text):
    """The hex digest of a `sha256sum`-style line."""
    fields = text.split()
    if not fields or not re.fullmatch(r"[0-9a-f]{64}", fields[0]):
        raise BackupError("checksum file is not in sha256sum format")
    return fields[0]


def compare_counts(expected, actual):
    """Differences between two {table: rows} maps, as readable strings."""
    problems = []
    for table in sorted(set(expected) | set(actual)):
        if table not in actual:
            problems.append("%s: missing (expected %s rows)" % (table, expected[table]))
        elif table not in expected:
            problems.append("%s: not in the manifest (%s rows)" % (table, actual[table]))
        elif int(expected[table]) != int(actual[table]):
            problems.append("%s: %s rows, manifest says %s" % (table, actual[table], expected[table]))
    return problems


# --- I/O ----------------------------------------------------------------------
def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def conn_args(args):
    out = ["-h", args.host, "-p", str(args.port), "-U", args.user, "--no-password"]
    return out


def psql(args, sql):
    cmd = [os.path.join(args.bindir, "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", *conn_args(args),
           "-d", args.db, "-c", sql]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise BackupError("psql on %s failed: %s" % (args.db, out.stderr.strip()))
    return out.stdout


def timescaledb_version(args):
    return psql(args, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").strip() or None


def row_counts(args):
    tables = psql(args, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1").split()
    if not tables:
        return {}
    sql = " UNION ALL ".join(
        "SELECT %s, count(*) FROM public.%s" % (quote_literal(t), quote_ident(t)) for t in tables)
    counts = {}
    for line in psql(args, sql).splitlines():
        table, _, count = line.rpartition("|")
        counts[table] = int(count)
    return counts


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def quote_literal(text):
    return "'%s'" % text.replace("'", "''")


def chown_like_dir(path, directory):
    """When run as root, give the file to the backup directory's owner."""
    if os.geteuid() == 0:
        st = os.stat(directory)
        os.chown(path, st.st_uid, st.st_gid)


def write_file(path, text, directory):
    tmp = path + ".partial"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    chown_like_dir(tmp, directory)
    os.replace(tmp, path)


def do_prune(args, keep=None):
    entries = {}
    for name in os.listdir(args.dir):
        path = os.path.join(args.dir, name)
        if os.path.isfile(path):
            entries[name] = os.stat(path).st_mtime
    doomed = select_expired(entries, args.db, args.retention_days, time.time(), keep=keep)
    for name in doomed:
        os.unlink(os.path.join(args.dir, name))
    return doomed


def do_backup(args):
    if not os.path.isdir(args.dir):
        raise BackupError("backup directory %s does not exist (run the pg_backup role)" % args.dir)
    started = dt.datetime.now(dt.timezone.utc)
    name = dump_name(args.db, started)
    path = os.path.join(args.dir, name)
    if os.path.exists(path):
        raise BackupError("%s already exists; one backup per second at most" % path)
    version = timescaledb_version(args)
    counts = row_counts(args)
    tmp = path + ".partial"
    cmd = [os.path.join(args.bindir, "pg_dump"), "-Fc", *conn_args(args), "-d", args.db, "-f", tmp]
    old_umask = os.umask(0o077)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        os.umask(old_umask)
    if out.returncode != 0:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise BackupError("pg_dump of %s failed: %s" % (args.db, out.stderr.strip()))
    chown_like_dir(tmp, args.dir)
    os.replace(tmp, path)
    checksum = sha256_file(path)
    size = os.path.getsize(path)
    write_file(path + ".sha256", "%s  %s\n" % (checksum, name), args.dir)
    manifest = {
        "format": 1,
        "dump": name,
        "database": args.db,
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "size_bytes": size,
        "sha256": checksum,
        "timescaledb_version": version,
        "row_counts": counts,
        "pg_dump_warnings": [line for line in out.stderr.splitlines() if line.strip()],
    }
    write_file(path + ".json", json.dumps(manifest, indent=2, sort_keys=True) + "\n", args.dir)
    pruned = do_prune(args, keep=name)
    return {"dump": path, "size_bytes": size, "sha256": checksum, "manifest": path + ".json",
            "timescaledb_version": version, "tables": len(counts), "pruned": pruned}


def resolve_dump(args, dump):
    if not dump or dump == "latest":
        names = os.listdir(args.dir) if os.path.isdir(args.dir) else []
        latest = latest_dump(names, args.db)
        if latest is None:
            raise BackupError("no backup of %s in %s" % (args.db, args.dir))
        return os.path.join(args.dir, latest)
    return dump if os.path.isabs(dump) else os.path.join(args.dir, dump)


def do_verify(args):
    path = resolve_dump(args, args.dump)
    if not os.path.isfile(path):
        raise BackupError("dump %s does not exist" % path)
    if not os.path.isfile(path + ".sha256"):
        raise BackupError("dump %s has no checksum file %s.sha256; refusing to use it" % (path, path))
    with open(path + ".sha256", encoding="utf-8") as fh:
        expected = parse_checksum(fh.read())
    actual = sha256_file(path)
    if actual != expected:
        raise BackupError("checksum mismatch for %s: file has sha256 %s, %s.sha256 says %s; "
                          "the dump is corrupt or was modified, refusing to use it" % (path, actual, path, expected))
    manifest = None
    if os.path.isfile(path + ".json"):
        with open(path + ".json", encoding="utf-8") as fh:
            manifest = json.load(fh)
    return {"dump": path, "sha256": actual, "size_bytes": os.path.getsize(path), "manifest": manifest}


def do_compare(args):
    with open(args.manifest, encoding="utf-8") as fh:
        manifest = json.load(fh)
    actual = row_counts(args)
    problems = compare_counts(manifest["row_counts"], actual)
    if problems:
        raise BackupError("row counts of %s differ from %s: %s" % (args.db, args.manifest, "; ".join(problems)))
    return {"database": args.db, "tables": len(actual), "rows": sum(actual.values()), "row_counts": actual}


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default="/var/backups/quant-platform")
    p.add_argument("--db", default="quant_platform")
    p.add_argument("--host", default="/var/run/postgresql", help="server host or Unix socket directory")
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--user", default="postgres")
    p.add_argument("--bindir", default="/usr/lib/postgresql/15/bin")
    p.add_argument("--retention-days", type=int, default=14)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("backup")
    sub.add_parser("prune")
    sub.add_parser("latest")
    sub.add_parser("counts")
    verify = sub.add_parser("verify")
    verify.add_argument("dump", nargs="?", default="latest")
    compare = sub.add_parser("compare")
    compare.add_argument("manifest")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        if args.command == "backup":
            result = do_backup(args)
        elif args.command == "prune":
            result = {"pruned": do_prune(args)}
        elif args.command == "latest":
            result = {"dump": resolve_dump(args, "latest")}
        elif args.command == "counts":
            result = {"row_counts": row_counts(args)}
        elif args.command == "verify":
            result = do_verify(args)
        else:
            result = do_compare(args)
    except (BackupError, OSError) as exc:
        print("quant-pg-backup %s: %s" % (args.command, exc), file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
