"""Keys of earlier batches kept on disk, for the cases where nothing else would find a duplicate.

RowFeeder keeps at most KEY_MEMORY keys in Python and may forget older ones when the target's
unique index catches what it forgot (copy_engine.py). Two cases have no such backstop: check mode
(nothing is written, so no index is asked) and on_conflict=update on a stream not in rowid order
(the highest rowid must win, not the row streamed later, so Python must know the earlier rowid).
There the forgotten generation moves here instead: a private temporary SQLite database on disk
(SQLite's temp directory, deleted when closed), one row per key, so memory stays bounded and the
answer stays exact. A lookup costs one indexed SQLite read, paid only by rows whose key is not
among the keys still in memory.
"""

from __future__ import annotations

import sqlite3


class KeySpill:
    """key -> source rowid, on disk. Keys are tuples of converted fields (str, bytes or None), stored
    by their repr, which is exact for those types."""

    def __init__(self):
        # "" opens a private, temporary on-disk database: it never outlives this object
        self.db = sqlite3.connect("")
        self.db.execute("CREATE TABLE seen (k TEXT PRIMARY KEY, rowid_ INTEGER) WITHOUT ROWID")
        self.count = 0

    def add(self, keys):
        """Store a generation of keys (dict key -> rowid); a key already here takes the newer rowid."""
        self.db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?)",
                            ((repr(key), rowid) for key, rowid in keys.items()))
        self.count += len(keys)

    def get(self, key):
        """The rowid stored for the key, or None."""
        row = self.db.execute("SELECT rowid_ FROM seen WHERE k = ?", (repr(key),)).fetchone()
        return row[0] if row else None

    def __contains__(self, key):
        return self.db.execute("SELECT 1 FROM seen WHERE k = ?", (repr(key),)).fetchone() is not None

    def close(self):
        self.db.close()
