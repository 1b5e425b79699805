#!/usr/bin/env python3
"""Logical backups of the quant platform database (installed by the pg_backup role).

Subcommands (every one prints one JSON object on stdout; errors go to stderr
with exit status 2):

  backup [--safety]  pg_dump -Fc into --dir, then <dump>.sha256 and <dump>.json
                (manifest: time, size, database, TimescaleDB version, row
                count and content fingerprint of every data table: public
                and the other schemas such as sqlite_legacy, read in
                pg_dump's own snapshot), then the retention pass. --safety marks
                a rollback's safety backup: no retention pass, and `latest`
                skips it
  prune         delete dumps (and their .sha256/.json) older than --retention-days
  latest        the newest dump of --db in --dir that is not a safety backup
  verify DUMP   compare DUMP with its .sha256 (refuses a corrupt dump)
  counts        the current row count and fingerprint of every data table of --db
  compare MANIFEST   current row counts and fingerprints against the manifest's
  check-sqlite FILE  open FILE read-only: PRAGMA quick_check and its row counts
  restore DUMP [PG_RESTORE_OPTION...]  load DUMP into --db, which the caller has
                created with the extension at the dump's version and put in
                restore mode (timescaledb_pre_restore). pg_restore runs section
                by section; when this server's TimescaleDB cannot read back its
                own all-NULL column blocks of compressed chunks (2.19: upstream
                issue 8893), those chunks' data passes through a filter that
                writes each such block as SQL NULL, which decompresses to the
                same all-NULL batch

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
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
COMPANIONS = (".sha256", ".json")
# Session settings that make a row's text form (and so its fingerprint) independent
# of the server's and the client's defaults.
STABLE_TEXT_SETTINGS = ("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
                        "SET extra_float_digits = 1; SET bytea_output = 'hex';")
# The tables a manifest covers: every table of every schema holding data (public, the
# migration's legacy_schema copies such as sqlite_legacy, any other), one row per table as
# "schema<US>name". Left out: the system's and TimescaleDB's own schemas (a hypertable's scan
# already covers its chunks), tables an extension owns, partitions (their parent covers them),
# and quant_meta: the migration's bookkeeping, which every migration run rewrites (run ids,
# timings) and which is not the platform's data.
TABLES_SQL = ("SELECT n.nspname || chr(31) || c.relname FROM pg_class c "
              "JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
              "AND n.nspname NOT IN ('information_schema', 'quant_meta') "
              "AND n.nspname !~ '^(pg_|_timescaledb|timescaledb_)' "
              "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
              "AND d.objid = c.oid AND d.deptype = 'e') "
              "ORDER BY n.nspname <> 'public', n.nspname, c.relname")
# Continuous aggregates are in a manifest too (format 4): a dump carries their materialized
# rows, so the restore must bring back the same aggregate content. Plain materialized views
# (the Apache edition's fallback) are not: pg_restore recomputes them from the restored
# tables, fresher than they may have been when the dump was taken.
AGGREGATES_SQL = ("SELECT view_schema || chr(31) || view_name FROM timescaledb_information.continuous_aggregates "
                  "ORDER BY view_schema <> 'public', view_schema, view_name")
# Format 4 adds the continuous aggregates; format 3 covered every schema above; format 2
# (and 1) covered only public.
MANIFEST_FORMAT = 4
# TimescaleDB's text form of a compressed column block whose values are all NULL: base64
# of the single algorithm byte 6 (COMPRESSION_ALGORITHM_NULL). 2.19 writes it in every
# dump and its input function refuses it ("function ... returned NULL").
NULL_BLOCK_TEXT = b"Bg=="
COMPRESSED_DATA_TYPE = "_timescaledb_internal.compressed_data"


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


def latest_dump(names, db, skip=()):
    """The newest project dump among names, leaving out those in skip (safety backups)."""
    dumps = [name for _when, name in list_dumps(names, db) if name not in skip]
    return dumps[-1] if dumps else None


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


def compare_fingerprints(expected, actual):
    """Tables (present on both sides) whose content fingerprint differs, as readable strings."""
    return ["%s: content differs (fingerprint %s, manifest says %s)" % (table, actual[table], expected[table])
            for table in sorted(set(expected) & set(actual)) if expected[table] != actual[table]]


def table_key(schema, name):
    """A table's name in a manifest: bare for public (as in format 2), schema.name otherwise."""
    return name if schema == "public" else "%s.%s" % (schema, name)


def public_only(mapping):
    """The public tables of a {table key: value} map (what a format 1 or 2 manifest covers)."""
    return {key: value for key, value in mapping.items() if "." not in key}


def fingerprint_sql(tables):
    """One query: table key | rows | fingerprint for every (schema, name) in tables.

    The fingerprint is order independent: md5 of each row's text form, split in
    two 64-bit halves, each summed exactly (numeric) over the table, and md5 of
    the two sums. Equal content gives equal fingerprints; a changed, missing or
    extra row changes it. No sort, no table-sized string.
    """
    parts = []
    for schema, name in tables:
        parts.append(
            "SELECT %s, count(*), md5(coalesce(sum(('x' || left(h, 16))::bit(64)::bigint::numeric), 0) || ':' || "
            "coalesce(sum(('x' || right(h, 16))::bit(64)::bigint::numeric), 0)) "
            "FROM (SELECT md5(t::text) AS h FROM %s.%s t) s"
            % (quote_literal(table_key(schema, name)), quote_ident(schema), quote_ident(name)))
    return " UNION ALL ".join(parts)


# pg_restore -l lines of table data: "<id>; <oid> <oid> TABLE DATA <schema> <table> <owner>".
TOC_TABLE_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ")
_IDENT = r'"(?:[^"]|"")*"|[^\s",().]+'
COPY_HEADER = re.compile(rb'^COPY (%s)\.(%s) \((.*)\) FROM stdin;$' % (_IDENT.encode(), _IDENT.encode()))


def unquote_ident(token):
    return token[1:-1].replace('""', '"') if token.startswith('"') else token


def parse_copy_header(line):
    """(schema, table, [columns]) of a pg_restore script's `COPY ... FROM stdin;` line, else None."""
    match = COPY_HEADER.match(line.rstrip(b"\r\n"))
    if not match:
        return None
    schema, table, columns = (part.decode("utf-8") for part in match.groups())
    return unquote_ident(schema), unquote_ident(table), [unquote_ident(c) for c in re.findall(_IDENT, columns)]


def split_toc(lines, tables):
    """(listing without the data of tables, listing of only their data) from `pg_restore -l` lines;
    tables is a set of (schema, table)."""
    rest, only = [], []
    for line in lines:
        match = TOC_TABLE_DATA.match(line)
        (only if match and match.groups() in tables else rest).append(line)
    return rest, only


class NullBlockFilter:
    """Rewrites a pg_restore script on its way to psql: in the COPY data of the tables in
    columns ({(schema, table): {compressed_data column}}), a field holding NULL_BLOCK_TEXT
    becomes \\N. A SQL NULL in a compressed column decompresses to an all-NULL batch, as the
    block does, in a table created by the restore (such a table has no missing-value
    defaults); every other byte passes through unchanged."""

    def __init__(self, columns):
        self.columns = columns
        self.positions = None  # field positions to check inside the current COPY block
        self.rewritten = 0

    def line(self, line):
        if self.positions is None:
            header = parse_copy_header(line) if line.startswith(b"COPY ") else None
            if header:
                wanted = self.columns.get(header[:2], ())
                self.positions = [i for i, column in enumerate(header[2]) if column in wanted]
            return line
        if line in (b"\\.\n", b"\\."):
            self.positions = None
            return line
        if not self.positions:
            return line
        fields = line.rstrip(b"\n").split(b"\t")
        for i in self.positions:
            if i < len(fields) and fields[i] == NULL_BLOCK_TEXT:
                fields[i] = b"\\N"
                self.rewritten += 1
        return b"\t".join(fields) + (b"\n" if line.endswith(b"\n") else b"")


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


class Session:
    """One psql session fed through a pipe, so a transaction (and its exported
    snapshot) stays open across queries and while pg_dump runs."""

    def __init__(self, args):
        self.db = args.db
        self.marker = "quant-pg-backup-end-%s" % uuid.uuid4().hex
        self.errors = tempfile.TemporaryFile(mode="w+")
        cmd = [os.path.join(args.bindir, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", *conn_args(args),
               "-d", args.db]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                     text=True)
        self.query(STABLE_TEXT_SETTINGS)

    def query(self, sql):
        """Lines printed by sql (psql -At: columns separated by |); sql is sent as one statement."""
        lines = []
        try:
            self.proc.stdin.write("%s;\n\\echo %s\n" % (sql.rstrip().rstrip(";"), self.marker))
            self.proc.stdin.flush()
            for line in self.proc.stdout:
                if line.rstrip("\n") == self.marker:
                    return lines
                lines.append(line.rstrip("\n"))
        except BrokenPipeError:
            pass
        self.proc.wait()
        self.errors.seek(0)
        raise BackupError("psql on %s failed: %s" % (self.db, self.errors.read().strip() or "session ended"))

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()
        self.errors.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def timescaledb_version(session):
    out = session.query("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    return out[0] if out and out[0] else None


def table_contents(session, aggregates=True):
    """({table: rows}, {table: fingerprint}) of every table TABLES_SQL lists and, with aggregates,
    every continuous aggregate, read in the session's snapshot."""
    tables = [tuple(line.split("\x1f", 1)) for line in session.query(TABLES_SQL)]
    if aggregates and timescaledb_version(session):
        tables += [tuple(line.split("\x1f", 1)) for line in session.query(AGGREGATES_SQL)]
    counts, prints = {}, {}
    if tables:
        for line in session.query(fingerprint_sql(tables)):
            table, count, fingerprint = line.rsplit("|", 2)
            counts[table] = int(count)
            prints[table] = fingerprint
    return counts, prints


def current_contents(args, aggregates=True):
    """Row counts and fingerprints of every table TABLES_SQL lists (and continuous aggregate), all
    read in one snapshot."""
    with Session(args) as session:
        session.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return table_contents(session, aggregates)


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
    tmp = path + ".partial"
    with Session(args) as session:
        # Counts, fingerprints and pg_dump all see the snapshot exported here; the
        # transaction stays open until pg_dump is done.
        session.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = session.query("SELECT pg_export_snapshot()")[0]
        version = timescaledb_version(session)
        counts, prints = table_contents(session)
        cmd = [os.path.join(args.bindir, "pg_dump"), "-Fc", "--snapshot=" + snapshot, *conn_args(args),
               "-d", args.db, "-f", tmp]
        old_umask = os.umask(0o077)
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        finally:
            os.umask(old_umask)
        session.query("COMMIT")
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
        "format": MANIFEST_FORMAT,
        "dump": name,
        "database": args.db,
        "safety": args.safety,
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "size_bytes": size,
        "sha256": checksum,
        "timescaledb_version": version,
        "snapshot": snapshot,
        "row_counts": counts,
        "fingerprints": prints,
        "pg_dump_warnings": [line for line in out.stderr.splitlines() if line.strip()],
    }
    write_file(path + ".json", json.dumps(manifest, indent=2, sort_keys=True) + "\n", args.dir)
    # A safety backup never prunes: the rollback may be about to restore an old dump.
    pruned = [] if args.safety else do_prune(args, keep=name)
    return {"dump": path, "size_bytes": size, "sha256": checksum, "manifest": path + ".json", "safety": args.safety,
            "timescaledb_version": version, "tables": len(counts), "rows": sum(counts.values()), "pruned": pruned}


def read_manifest(path):
    """The manifest at path, or None when there is none."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except ValueError as exc:
            raise BackupError("manifest %s is not valid JSON: %s" % (path, exc)) from None


def safety_dumps(directory, names):
    """Names of the dumps whose manifest marks them as rollback safety backups."""
    return {name for name in names if name.endswith(".dump")
            and (read_manifest(os.path.join(directory, name + ".json")) or {}).get("safety")}


def resolve_dump(args, dump):
    if not dump or dump == "latest":
        names = os.listdir(args.dir) if os.path.isdir(args.dir) else []
        safety = safety_dumps(args.dir, names)
        latest = latest_dump(names, args.db, skip=safety)
        if latest is None:
            raise BackupError("no backup of %s in %s%s" % (
                args.db, args.dir, " besides rollback safety backups (name one to restore it: %s)"
                % ", ".join(sorted(safety)) if safety else ""))
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
    manifest = read_manifest(path + ".json")
    return {"dump": path, "sha256": actual, "size_bytes": os.path.getsize(path), "manifest": manifest}


def do_compare(args):
    manifest = read_manifest(args.manifest)
    if manifest is None:
        raise BackupError("manifest %s does not exist" % args.manifest)
    manifest_format = int(manifest.get("format") or 1)
    counts, prints = current_contents(args, aggregates=manifest_format >= 4)
    if manifest_format < 3:  # an older manifest covers public only
        counts, prints = public_only(counts), public_only(prints)
    expected_prints = manifest.get("fingerprints") or {}
    problems = compare_counts(manifest.get("row_counts") or {}, counts) + compare_fingerprints(expected_prints, prints)
    if problems:
        raise BackupError("%s differs from %s: %s" % (args.db, args.manifest, "; ".join(problems)))
    return {"database": args.db, "tables": len(counts), "rows": sum(counts.values()), "row_counts": counts,
            "fingerprints_checked": len(expected_prints)}


def run_checked(cmd, what):
    """stdout of cmd; a failure raises BackupError with what and cmd's stderr."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise BackupError("%s failed: %s" % (what, out.stderr.strip() or "exit status %d" % out.returncode))
    return out.stdout


def compressed_columns(session):
    """{(schema, table): {column}} of the tables with TimescaleDB compressed_data columns."""
    out = {}
    for line in session.query(
            "SELECT n.nspname || chr(31) || c.relname || chr(31) || a.attname FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE a.atttypid = to_regtype('%s') AND a.attnum > 0 AND NOT a.attisdropped "
            "AND c.relkind = 'r'" % COMPRESSED_DATA_TYPE):
        schema, table, column = line.split("\x1f")
        out.setdefault((schema, table), set()).add(column)
    return out


def reads_null_blocks(args):
    """Whether this server's TimescaleDB reads back the text form of an all-NULL block (2.19 raises)."""
    try:
        with Session(args) as session:
            return session.query("SELECT '%s'::%s IS NOT NULL" % (NULL_BLOCK_TEXT.decode(), COMPRESSED_DATA_TYPE)) \
                == ["t"]
    except BackupError:
        return False


def restore_filtered(args, path, listing, columns):
    """pg_restore the table data in listing to a script, through NullBlockFilter, into psql; returns
    the number of blocks rewritten."""
    with tempfile.NamedTemporaryFile("w", suffix=".list") as lst, tempfile.TemporaryFile() as errors:
        lst.write("\n".join(listing) + "\n")
        lst.flush()
        restore = subprocess.Popen([os.path.join(args.bindir, "pg_restore"), "--data-only", "-L", lst.name, "-f", "-",
                                    path], stdout=subprocess.PIPE, stderr=errors)
        psql = subprocess.Popen([os.path.join(args.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                 *conn_args(args), "-d", args.db], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=errors)
        rewrite = NullBlockFilter(columns)
        try:
            for line in restore.stdout:
                psql.stdin.write(rewrite.line(line))
            psql.stdin.close()
        except BrokenPipeError:  # psql stopped on an error: its stderr says which
            restore.kill()
        codes = restore.wait(), psql.wait()
        if any(codes):
            errors.seek(0)
            raise BackupError("loading the compressed chunks of %s failed: %s"
                              % (path, errors.read().decode("utf-8", "replace").strip()))
    return rewrite.rewritten


def do_restore(args):
    path = resolve_dump(args, args.dump)
    if not os.path.isfile(path):
        raise BackupError("dump %s does not exist" % path)

    def pg_restore(what, *options):
        run_checked([os.path.join(args.bindir, "pg_restore"), *conn_args(args), "-d", args.db, "--exit-on-error",
                     *args.options, *options, path], "pg_restore (%s) of %s" % (what, path))

    pg_restore("pre-data", "--section=pre-data")
    with Session(args) as session:
        columns = compressed_columns(session)
    result = {"dump": path, "database": args.db, "compressed_tables": len(columns), "null_blocks_rewritten": 0}
    if not columns or reads_null_blocks(args):
        pg_restore("data, post-data", "--section=data", "--section=post-data")
        return dict(result, filtered=False)
    listing = run_checked([os.path.join(args.bindir, "pg_restore"), "-l", path], "pg_restore -l %s" % path)
    rest, compressed = split_toc(listing.splitlines(), set(columns))
    with tempfile.NamedTemporaryFile("w", suffix=".list") as lst:
        lst.write("\n".join(rest) + "\n")
        lst.flush()
        pg_restore("data", "--section=data", "-L", lst.name)
    rewritten = restore_filtered(args, path, compressed, columns) if compressed else 0
    pg_restore("post-data", "--section=post-data")
    return dict(result, filtered=True, null_blocks_rewritten=rewritten)


def do_check_sqlite(path):
    """Read-only integrity check of the SQLite file the application would go back to."""
    if not os.path.isfile(path):
        raise BackupError("SQLite database %s does not exist" % path)
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(os.path.abspath(path)), uri=True)
        try:
            check = [row[0] for row in conn.execute("PRAGMA quick_check")]
            tables = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1")]
            counts = {t: conn.execute('SELECT count(*) FROM "%s"' % t.replace('"', '""')).fetchone()[0]
                      for t in tables}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError("SQLite database %s cannot be read: %s" % (path, exc)) from None
    if check != ["ok"]:
        raise BackupError("SQLite database %s failed PRAGMA quick_check: %s" % (path, "; ".join(check[:5])))
    return {"path": path, "quick_check": "ok", "row_counts": counts}


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
    backup = sub.add_parser("backup")
    backup.add_argument("--safety", action="store_true", help="a rollback's safety backup (no retention pass)")
    sub.add_parser("prune")
    sub.add_parser("latest")
    sub.add_parser("counts")
    verify = sub.add_parser("verify")
    verify.add_argument("dump", nargs="?", default="latest")
    compare = sub.add_parser("compare")
    compare.add_argument("manifest")
    check_sqlite = sub.add_parser("check-sqlite")
    check_sqlite.add_argument("path")
    restore = sub.add_parser("restore")
    restore.add_argument("dump")
    restore.add_argument("options", nargs=argparse.REMAINDER, help="more pg_restore options (after --)")
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
            counts, prints = current_contents(args)
            result = {"row_counts": counts, "fingerprints": prints}
        elif args.command == "verify":
            result = do_verify(args)
        elif args.command == "check-sqlite":
            result = do_check_sqlite(args.path)
        elif args.command == "restore":
            result = do_restore(args)
        else:
            result = do_compare(args)
    except (BackupError, OSError) as exc:
        print("quant-pg-backup %s: %s" % (args.command, exc), file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
