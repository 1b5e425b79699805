"""Read-only access to the SQLite source file.

* ``open_source(path)`` validates the file (exists, regular file, readable,
  SQLite 3 header, schema readable, optional ``PRAGMA quick_check``) and raises
  ``SourceError`` with one sentence that names the file.
* Rows are streamed with stdlib sqlite3 in ``rowid`` order (or ``ORDER BY
  <order_by>, rowid`` for hypertables, and primary-key order for WITHOUT ROWID
  tables), a ``fetchmany`` page at a time, so a table is never held in memory.
* "rowid" in SQL means the real rowid only while no column has that name: every
  read of it goes through ``rowid_alias(table)``, the one of ``rowid``, ``_rowid_``,
  ``oid`` the table does not declare (SQLite's own rule). A table declaring all
  three has no reachable rowid and is read like a WITHOUT ROWID table.
* TEXT arrives as bytes (``text_factory=bytes``) so invalid UTF-8 is detected
  per value by the converters (convert/) instead of aborting the whole cursor.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from urllib.parse import quote

SQLITE_HEADER = b"SQLite format 3\x00"
ROWID_NAMES = ("rowid", "_rowid_", "oid")  # SQLite's names of the rowid, tried in this order
SORTER_THREADS = 2
LOCK_WAIT_SECONDS = 5  # sqlite3's default busy timeout, stated in the locked-file message


class SourceError(Exception):
    """The SQLite source file is missing, unreadable, corrupt or not SQLite."""


def qi(name):
    """Quote an SQLite identifier (double quotes doubled)."""
    return '"%s"' % name.replace('"', '""')


def check_file(path):
    """Validate the file itself before SQLite touches it."""
    if not path:
        raise SourceError("source SQLite file: no path given (src)")
    if not os.path.lexists(path):
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(parent) and not os.access(parent, os.X_OK):
            raise SourceError("source SQLite file %s is not readable: permission denied on directory %s"
                              % (path, parent))
        raise SourceError("source SQLite file %s does not exist" % path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceError("source SQLite file %s cannot be inspected: %s" % (path, exc.strerror)) from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceError("source SQLite file %s is not a regular file" % path)
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise SourceError("source SQLite file %s is not readable: %s" % (path, exc.strerror)) from None
    if not header:
        raise SourceError("source SQLite file %s is empty (0 bytes), not a SQLite database" % path)
    if not header.startswith(SQLITE_HEADER):
        raise SourceError("source SQLite file %s is not a SQLite 3 database (bad file header %r)" % (path, header[:16]))
    if len(header) < 100:
        raise SourceError("source SQLite file %s is corrupt: truncated header (%d bytes)" % (path, len(header)))
    return st


class SqliteSource:
    """An open, validated, read-only SQLite source."""

    def __init__(self, path, quick_check=True):
        self.path = path
        st = check_file(path)
        self.size = st.st_size
        self.mtime_ns = st.st_mtime_ns
        uri = "file:%s?mode=ro" % quote(os.path.abspath(path))
        try:
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=LOCK_WAIT_SECONDS)
            self.conn.text_factory = bytes
            rows = self.conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
            if quick_check:
                result = self.conn.execute("PRAGMA quick_check(1)").fetchone()
                if not result or result[0] not in (b"ok", "ok"):
                    raise SourceError("source SQLite file %s is corrupt: quick_check reports %r" % (path, result))
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            if _is_locked(exc):
                raise SourceError("source SQLite file %s is locked by another process (a writer holds it for more "
                                  "than %d s); stop the application writing to it, or migrate a copy: %s"
                                  % (path, LOCK_WAIT_SECONDS, exc)) from None
            # sqlite_errorname needs Python 3.11; older ones only have the message
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_ROLLBACK" or "readonly database" in str(exc):
                raise SourceError("source SQLite file %s has a hot journal (%s-journal): a writer stopped in the "
                                  "middle of a transaction and SQLite must roll it back before the file can be read, "
                                  "which this read-only migration never does; open the file once with the "
                                  "application or sqlite3 (as its owner) and rerun" % (path, path)) from None
            raise SourceError("source SQLite file %s is corrupt or not a database: %s" % (path, exc)) from None
        self._schema = [tuple(_s(v) for v in row) for row in rows]
        self._columns = {}
        self._aliases = {}

    # -- schema --------------------------------------------------------------------

    def tables(self):
        return [name for kind, name, _tbl, _sql in self._schema
                if kind == "table" and not name.startswith("sqlite_")]

    def has_table(self, name):
        return name in self.tables()

    def views(self):
        return [name for kind, name, _tbl, _sql in self._schema if kind == "view"]

    def primary_key(self, table):
        """Primary key columns in key order ([] without one)."""
        try:
            info = self.conn.execute("PRAGMA table_info(%s)" % qi(table)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise SourceError("source SQLite file %s: cannot read table %s: %s" % (self.path, table, exc)) from None
        return [_s(row[1]) for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]

    def columns(self, table):
        """Column names (declared order) of a table."""
        if table not in self._columns:
            try:
                info = self.conn.execute("PRAGMA table_info(%s)" % qi(table)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise SourceError("source SQLite file %s: cannot read table %s: %s" % (self.path, table, exc)) from None
            self._columns[table] = [_s(row[1]) for row in info]
        return self._columns[table]

    def unique_keys(self, table):
        """Column lists of the table's unique constraints and unique indexes (PRIMARY KEY included).

        Partial and expression indexes are left out: they do not make the listed
        columns unique for every row. An INTEGER PRIMARY KEY is the rowid and has
        no index, so it is listed from table_info.
        """
        try:
            out = []
            for row in self.conn.execute("PRAGMA index_list(%s)" % qi(table)).fetchall():
                name, unique, partial = _s(row[1]), row[2], row[4] if len(row) > 4 else 0
                if not unique or partial:
                    continue
                cols = [_s(info[2]) for info in self.conn.execute("PRAGMA index_info(%s)" % qi(name))]
                if cols and None not in cols:
                    out.append(cols)
            info = self.conn.execute("PRAGMA table_info(%s)" % qi(table)).fetchall()
            pk = [_s(row[1]) for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            if pk and not any(set(k) == set(pk) for k in out):
                out.append(pk)
        except sqlite3.DatabaseError as exc:
            raise SourceError("source SQLite file %s: cannot read the indexes of table %s: %s"
                              % (self.path, table, exc)) from None
        return out

    def select(self, table, columns, not_null=()):
        """Yield ``(rowid, *columns)`` (text decoded) of the rows whose not_null columns hold a value."""
        query = "SELECT %s, %s FROM %s" % (self._rowid(table), ", ".join(qi(c) for c in columns), qi(table))
        if not_null:
            query += " WHERE " + " AND ".join("%s IS NOT NULL" % qi(c) for c in not_null)
        try:
            for row in self.conn.execute(query):
                yield tuple(_s(v) for v in row)
        except sqlite3.DatabaseError as exc:
            raise SourceError("source SQLite file %s: reading table %s failed: %s" % (self.path, table, exc)) from None

    def schema_hash(self):
        digest = hashlib.sha256()
        for kind, name, tbl, sql in self._schema:
            digest.update(("%s\x1f%s\x1f%s\x1f%s\x1e" % (kind, name, tbl, sql or "")).encode("utf-8"))
        return digest.hexdigest()[:16]

    def fingerprint(self):
        """size + mtime + schema hash: changes when the file is modified."""
        return "size=%d;mtime_ns=%d;schema=%s" % (self.size, self.mtime_ns, self.schema_hash())

    def count(self, table):
        return self._scalar("SELECT count(*) FROM %s" % qi(table), table)

    def _scalar(self, query, table, params=()):
        try:
            return self.conn.execute(query, params).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise SourceError("source SQLite file %s: reading table %s failed: %s" % (self.path, table, exc)) from None

    def rowid_alias(self, table):
        """The name that reads the table's real rowid, or None when none does.

        A declared column hides the rowid name it shares (case-insensitively, generated
        columns included): ``rowid`` then reads that column, which may be text, NULL or
        repeated. The first of rowid, _rowid_, oid left undeclared reaches the rowid; None
        for a WITHOUT ROWID table and for a table declaring all three (rowless_key).
        """
        if table not in self._aliases:
            declared = {name.lower() for name in self._declared_names(table)}
            free = [name for name in ROWID_NAMES if name not in declared]
            alias = None
            if free:
                try:
                    self.conn.execute("SELECT %s FROM %s LIMIT 0" % (free[0], qi(table)))
                    alias = free[0]
                except sqlite3.OperationalError:  # WITHOUT ROWID: no name reaches a rowid
                    alias = None
            self._aliases[table] = alias
        return self._aliases[table]

    def has_rowid(self, table):
        """The rows can be read and resumed by rowid (rowid_alias)."""
        return self.rowid_alias(table) is not None

    def rowless_key(self, table):
        """How the rows are ordered and numbered without a rowid: the primary key ([] when the
        rowid is reachable). Raises SourceError for a table with neither."""
        if self.has_rowid(table):
            return []
        key = self.primary_key(table)
        if not key:
            raise SourceError(
                "source SQLite file %s: table %s declares columns named rowid, _rowid_ and oid, which hide "
                "its rowid, and has no primary key, so its rows have no order to be read, resumed and compared "
                "by; rename one of those columns or give the table a primary key" % (self.path, table))
        return key

    def _declared_names(self, table):
        """Every declared column name, generated (hidden) columns included (table_xinfo, SQLite 3.26+)."""
        for pragma in ("table_xinfo", "table_info"):
            try:
                return [_s(row[1]) for row in self.conn.execute("PRAGMA %s(%s)" % (pragma, qi(table)))]
            except sqlite3.OperationalError:
                continue
        return self.columns(table)

    def _rowid(self, table):
        """rowid_alias, or SourceError naming why rows cannot be read by rowid."""
        alias = self.rowid_alias(table)
        if alias is None:
            self.rowless_key(table)  # no primary key either: that error says what to do
            raise SourceError("source SQLite file %s: table %s has no reachable rowid (WITHOUT ROWID, or columns "
                              "named rowid, _rowid_ and oid): it is read in primary-key order, not by rowid"
                              % (self.path, table))
        return alias

    # -- rows ------------------------------------------------------------------------

    def iter_rows(self, table, columns, order_by=(), after_rowid=None, skip=0, page=2000, key=()):  # noqa: PLR0917
        """Yield tuples ``(rowid, col1, col2, ...)``.

        Without order_by: ``WHERE rowid > after_rowid ORDER BY rowid``
        (resumable by rowid, no OFFSET scans). With order_by: ``ORDER BY
        <order_by>, rowid`` and ``skip`` rows already processed (a one-time
        OFFSET on resume; the order is total, so it is deterministic). "rowid"
        is the table's rowid_alias, so a column named rowid is read as a column.

        key: the primary key of a WITHOUT ROWID table (rowless_key), which has no rowid: the rows
        come ``ORDER BY <order_by>, <key>`` (total: the key is unique and NOT NULL
        there) and the first item is the row's 1-based position in that order,
        so a resume skips the rows already processed like the order_by case.

        A table that can be read neither way raises SourceError here, at the call, not at the
        first row (rowless_key names what to change).
        """
        query, params = self._rows_query(table, columns, order_by, after_rowid, skip, key)
        return self._stream(table, query, params, page, int(skip) if key else None)

    def _rows_query(self, table, columns, order_by, after_rowid, skip, key):  # noqa: PLR0917
        """(query, params) of iter_rows."""
        cols = ", ".join(qi(c) for c in columns)
        if key:
            order = list(order_by) + [c for c in key if c not in order_by]
            query = "SELECT %s FROM %s ORDER BY %s" % (cols, qi(table), ", ".join(qi(c) for c in order))
        elif order_by:
            # The sort runs before the first row arrives, while the target has nothing to do:
            # a second sorter thread takes the other core (full sample: 3.0 s instead of 3.6 s)
            self.conn.execute("PRAGMA threads = %d" % SORTER_THREADS)
            rowid = self._rowid(table)
            query = "SELECT %s, %s FROM %s ORDER BY %s, %s" % (
                rowid, cols, qi(table), ", ".join(qi(c) for c in order_by), rowid)
        else:
            query = "SELECT {0}, {1} FROM {2} WHERE {0} > ? ORDER BY {0}".format(self._rowid(table), cols, qi(table))
            return query, (after_rowid if after_rowid is not None else -(2**63),)
        if skip:
            query += " LIMIT -1 OFFSET %d" % int(skip)
        return query, ()

    def _stream(self, table, query, params, page, numbered_from):
        """The rows of query a page at a time; numbered_from: prefix each with its position after that many."""
        try:
            cur = self.conn.execute(query, params)
            if numbered_from is not None:
                yield from _numbered(cur, page, numbered_from)
                return
            while True:
                rows = cur.fetchmany(page)
                if not rows:
                    break
                yield from rows
        except sqlite3.DatabaseError as exc:
            raise SourceError("source SQLite file %s: reading table %s failed: %s" % (self.path, table, exc)) from None

    def first_rowid_with(self, table, column, value, order_by=()):
        """rowid of the first row (in stream order) whose column equals value, or None (for notes)."""
        rowid = self.rowid_alias(table)
        if rowid is None:
            return None
        query = "SELECT %s FROM %s WHERE %s = ? ORDER BY %s LIMIT 1" % (
            rowid, qi(table), qi(column), ", ".join([*(qi(c) for c in order_by), rowid]))
        try:
            row = self.conn.execute(query, (value,)).fetchone()
        except sqlite3.DatabaseError:
            return None  # a note's detail, never a reason to stop
        return row[0] if row else None

    def lookup(self, table, key, value):
        """dict key -> value built from a (small) lookup table, e.g. tickers.ticker -> region.

        Keys that occur more than once with different values map to a set so
        the caller can reject ambiguous lookups instead of picking one.
        """
        out = {}
        query = "SELECT %s, %s FROM %s" % (qi(key), qi(value), qi(table))
        try:
            for raw_key, raw_value in self.conn.execute(query):
                k, v = _s(raw_key), _s(raw_value)
                if k in out and out[k] != v:
                    prev = out[k]
                    out[k] = (prev if isinstance(prev, frozenset) else frozenset([prev])) | {v}
                else:
                    out[k] = v
        except sqlite3.DatabaseError as exc:
            raise SourceError("source SQLite file %s: reading lookup table %s failed: %s"
                              % (self.path, table, exc)) from None
        return out

    def key_set(self, table, columns):
        """Set of tuples of the given columns (decoded), for reference checks."""
        query = "SELECT %s FROM %s" % (", ".join(qi(c) for c in columns), qi(table))
        try:
            return {tuple(_s(v) for v in row) for row in self.conn.execute(query)}
        except sqlite3.DatabaseError as exc:
            raise SourceError("source SQLite file %s: reading table %s failed: %s" % (self.path, table, exc)) from None

    def close(self):
        self.conn.close()

    def _close_quietly(self):
        if getattr(self, "conn", None) is not None:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass


def _numbered(cur, page, done):
    """Rows of cur prefixed with their 1-based position, counting on from `done` (WITHOUT ROWID tables)."""
    pos = done
    while True:
        rows = cur.fetchmany(page)
        if not rows:
            return
        for row in rows:
            pos += 1
            yield (pos, *row)


def _is_locked(exc):
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds a lock that blocks reading."""
    code = getattr(exc, "sqlite_errorname", "")
    return code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc) or "busy" in str(exc)


def _s(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def open_source(path, quick_check=True):
    return SqliteSource(path, quick_check=quick_check)
