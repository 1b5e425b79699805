"""Stream SQLite rows into PostgreSQL with COPY, batch by batch.

Design (measured, see scripts/bench-migrate):

* Fast path: rows are converted lazily inside the file-like object that
  psycopg2's ``copy_expert`` reads from, so Python converts batch k+1's next
  chunk while the server is still parsing the previous one (the two CPUs work
  in parallel). The batch goes straight into the target table: no staging copy.
* Duplicates are caught twice. In Python, a key dictionary per batch plus the
  keys of earlier batches: of the same ``order_by`` group (for the time-ordered
  hypertable a group is one date), or else KEY_MEMORY keys at most (two
  generations; older keys are forgotten, so memory stays flat with table size,
  see RowFeeder.commit_keys), except for on_conflict update in an order other
  than rowid's, which keeps every key.
  And in PostgreSQL: the target's unique index is never dropped, so any
  duplicate the Python side could not see (rows already in the target, equal
  keys written in different source formats, the resume boundary, keys Python
  forgot) makes the
  batch's COPY fail; the batch is then replayed through a TEMP staging table
  where conflicting rows are identified with one join and handled per
  ``on_conflict``; any remaining error (FK, CHECK, ...) is isolated without one
  savepoint per row (see reject_isolation: set-based checks flag the suspects,
  halving finds the rest) and becomes a reject carrying PostgreSQL's message.
* Each batch commits together with its rejects and its checkpoint row.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from operator import itemgetter

from ansible.module_utils.convert.binary_copy import NULL_BINARY
from ansible.module_utils.convert.text_copy import NULL
from ansible.module_utils.convert.types import describe_value
from ansible.module_utils.core.quant_meta import advance_checkpoint, insert_rejects
from ansible.module_utils.mapping.row_converter import explain_row
from ansible.module_utils.migrate.key_spill import KeySpill
from ansible.module_utils.migrate.reject_isolation import STAGE, STAGE_ROWID, RejectIsolator, rowid_in

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover
    psycopg2 = None
    sql = None

UNIQUE_VIOLATION = "23505"
# Keys of earlier batches kept in Python, at most (unless update in an order other than rowid's; two
# generations of KEY_MEMORY / 2; measured ~250 bytes a key: about 50 MB). None keeps every key.
KEY_MEMORY = 200_000


class Batch:
    """One batch: the converted COPY lines (kept for the fallback path) and its outcome."""

    __slots__ = ("copied", "duplicates", "keys", "last_rowid", "lines", "rejected", "rejects", "replaced", "rowids",
                 "upserts")

    def __init__(self):
        self.rowids = []
        self.lines = []
        self.keys = {}
        self.upserts = {}  # key -> (rowid, line): update-mode duplicates of committed rows
        self.rejects = []
        self.rejected = 0
        self.duplicates = 0
        self.copied = 0
        self.last_rowid = None
        self.replaced = False  # update mode replaced a line after it was streamed

    def __len__(self):
        return len(self.lines)


class RowFeeder:
    """Converts source rows into batches; owns the Python-side duplicate detection."""

    def __init__(self, plan, rows, on_conflict):
        self.plan = plan
        self.rows = rows
        self.on_conflict = on_conflict
        self.exhausted = False
        targets = [pc.target for pc in plan.columns]
        self.key_pos = [targets.index(k) for k in plan.keys] if plan.keys else []
        # SQL (and SQLite) NULL semantics: a key holding NULL equals no other key, so it is
        # never a duplicate, unless the index is NULLS NOT DISTINCT. Only keys with a
        # nullable column pay for the test (NOT NULL columns reject NULLs before).
        unique = getattr(plan, "unique_key", None)
        nullable = any(not plan.columns[p].not_null for p in self.key_pos)
        self.null_field = (plan_null(plan) if nullable and not (unique and unique.nulls_not_distinct) else None)
        key_sources = {pc.source for pc in plan.columns if pc.target in plan.keys and pc.source}
        # Reset the "earlier batches" key memory whenever the order group changes,
        # but only when the order columns are part of the key (then duplicates
        # can only occur inside one group).
        self.group_pos = []
        if plan.order_by and all(c in key_sources for c in plan.order_by):
            self.group_pos = [plan.source_columns.index(c) + 1 for c in plan.order_by]
        self.group = None
        self.old_keys = {}  # key -> rowid: earlier batches (group mode: of this group; else the young generation)
        self.older_keys = {}  # the previous generation (rowid order only, see commit_keys)
        # When the target's unique index finds a duplicate Python forgot, the row streamed later is the
        # one rejected (error) or dropped (skip), as in Python, in any order. update writes it over the
        # earlier one, which is Python's outcome (the highest rowid wins) only when a later row has a
        # higher rowid: in rowid (or WITHOUT ROWID position) order. So update in another order
        # (order_by not part of the key) keeps every key; group mode has its own bound.
        self.may_forget = not self.group_pos and (not plan.order_by or on_conflict != "update")
        self.key_memory = KEY_MEMORY
        self.forgot = 0  # keys forgotten so far
        self.spill = None  # KeySpill: where the older generation goes when nothing else would catch it
        self.refs = []
        for ref in plan.references:
            pos = [targets.index(c) for c in ref["target_columns"]]
            self.refs.append((tuple_getter(pos), ref["keys"], pos, ref))
        self.key_of = tuple_getter(self.key_pos) if self.key_pos else None
        self.group_of = tuple_getter(self.group_pos) if self.group_pos else None
        self.consumed = 0

    def _key_text(self, key):
        shown = []
        for pos, field in zip(self.key_pos, key):
            text = self.plan.field_text(pos, field)
            shown.append("NULL" if text is None else text)
        return "(%s)=(%s)" % (", ".join(self.plan.keys), ", ".join(shown))

    def fill(self, batch, limit):
        """Generator of COPY chunks; appends to batch until limit rows consumed.

        Raises _Replaced at the end when update mode replaced a line already streamed."""
        convert_row = self.plan.convert_row
        to_line = self.plan.line_builder()
        joiner = b"".join if self.plan.binary else "".join
        orphan = self._orphan if self.refs else None
        admit = self._admit if self.key_of is not None else None
        rowids, lines = batch.rowids, batch.lines
        pending = []
        count = 0
        rowid = None
        for row in self.rows:
            count += 1
            rowid = row[0]
            try:
                fields = convert_row(row)
            except Exception:  # every failure becomes a reject with its reason
                self._reject(batch, rowid, *explain_row(self.plan, row))
                fields = None
            if fields is not None and (orphan is None or not orphan(batch, rowid, fields)):
                line = to_line(fields)
                if admit is None or admit(batch, row, rowid, fields, line):
                    rowids.append(rowid)
                    lines.append(line)
                    if pending is not None:
                        pending.append(line)
                        if len(pending) >= 256:
                            batch.last_rowid = rowid
                            yield joiner(pending)
                            pending = []
                elif batch.replaced:
                    pending = None  # a line already streamed changed: the batch is sent again
            if count >= limit:
                break
        else:
            self.exhausted = True
        if count:
            batch.last_rowid = rowid
        self.consumed += count
        if pending is None:
            raise _Replaced()
        if pending:
            yield joiner(pending)

    def _orphan(self, batch, rowid, fields):
        """True, after recording the reject, when a referenced key is not in its source table."""
        for ref_of, keyset, pos, ref in self.refs:
            if ref_of(fields) not in keyset:
                shown = ", ".join("%s=%s" % (ref["target_columns"][i], self.plan.field_text(p, fields[p]))
                                  for i, p in enumerate(pos))
                self._reject(batch, rowid, ",".join(ref["target_columns"]), shown,
                             "orphan: (%s) not found in source table %s" % (shown, ref["table"]))
                return True
        return False

    def _admit(self, batch, row, rowid, fields, line):
        """True when the row's key was not seen before (the row joins the batch).

        A repeated key is handled here per on_conflict; when update mode replaced a line
        of the batch, batch.replaced is set."""
        if self.group_of is not None:
            group = self.group_of(row)
            if group != self.group:
                self.group = group
                self.old_keys = {}
                self.older_keys = {}
        key = self.key_of(fields)
        if self.null_field is not None and self.null_field in key:
            return True  # NULL in the key: distinct from every other row
        if key in batch.keys or key in self.old_keys or key in self.older_keys or \
                (self.spill is not None and key in self.spill):
            if self._duplicate(batch, key, rowid, line):
                batch.replaced = True
            return False
        batch.keys[key] = len(batch.lines)
        return True

    def _reject(self, batch, rowid, column, value, reason):
        batch.rejected += 1
        batch.rejects.append({"source_rowid": rowid, "kind": "reject", "column": column,
                              "value": describe_value(value), "reason": reason})

    def _duplicate(self, batch, key, rowid, line):
        """Handle a key seen before in this run. Returns True when a batch line was replaced.

        update keeps the row with the highest rowid (what SQLite's INSERT OR REPLACE
        left behind), whatever the stream order; every superseded row becomes a
        duplicate record naming the rowid that superseded it.
        """
        in_batch = key in batch.keys
        first = batch.rowids[batch.keys[key]] if in_batch else self._earlier(key)
        where = "source rowid %s" % first if first is not None else "an earlier row"
        if self.on_conflict == "error":
            self._reject(batch, rowid, ",".join(self.plan.keys), self._key_text(key),
                         "duplicate key %s, already loaded from %s (on_conflict=error)" % (self._key_text(key), where))
            return False
        batch.duplicates += 1
        if self.on_conflict == "skip" or (first is not None and rowid < first):
            self._superseded(batch, rowid, key, "duplicate key, %s kept (on_conflict=%s)" % (
                where, self.on_conflict))
            return False
        # update: this later row wins
        self._superseded(batch, first, key, "duplicate key, superseded by later source rowid %s (on_conflict=update)"
                         % rowid)
        if in_batch:
            pos = batch.keys[key]
            batch.rowids[pos] = rowid
            batch.lines[pos] = line
            return True
        self.old_keys[key] = rowid  # a third occurrence supersedes this one (the young generation is asked first)
        batch.upserts[key] = (rowid, line)  # applied as an update of the committed row
        return False

    def _earlier(self, key):
        """The rowid an earlier batch loaded the key from (None when forgotten)."""
        first = self.old_keys.get(key)
        if first is None:
            first = self.older_keys.get(key)
        if first is None and self.spill is not None:
            first = self.spill.get(key)
        return first

    def _superseded(self, batch, rowid, key, reason):
        batch.rejects.append({"source_rowid": rowid, "kind": "duplicate", "column": ",".join(self.plan.keys),
                              "value": self._key_text(key), "reason": reason})

    def commit_keys(self, batch, index=None):
        """Remember this batch's keys for the following batches.

        In group mode old_keys is emptied whenever the order group changes
        (see fill), so it never holds more than one group plus one batch.

        index: the target's unique index on the keys (None in check mode, where nothing
        else would find a duplicate). With it, a stream in rowid order (or any order
        unless on_conflict is update, see may_forget in __init__) keeps two
        generations of keys: once the young one holds key_memory / 2 keys it becomes the
        old one and the old one is forgotten, so Python remembers at least the last
        key_memory / 2 keys and never more than key_memory plus one batch. A duplicate of
        a forgotten key makes the batch's COPY fail on the index and the staging path
        handles it per on_conflict with the same outcome (see __init__); its record then
        reads "key (...) already exists in <target>". One note per table says so.
        """
        if not self.key_pos:
            return
        rowids = batch.rowids
        young = self.old_keys
        for key, pos in batch.keys.items():
            young[key] = rowids[pos]
        if self.group_pos or self.key_memory is None or len(young) < self.key_memory // 2:
            return
        if index is None:
            self._spill_older("check mode has no target index to find a duplicate of a forgotten key")
        elif not self.may_forget:
            self._spill_older("on_conflict=update in an order other than rowid's must know which row is later")
        else:
            if self.older_keys and not self.forgot:
                self.plan.notes.append(
                    "table %s: more than %d keys, so duplicates are looked up in Python among the last %d keys at "
                    "least; a duplicate of an older row is found by the target's unique index %s and recorded as "
                    "\"key (%s) already exists in %s\", with the same outcome (on_conflict=%s)"
                    % (self.plan.source_table, self.key_memory, self.key_memory // 2, index.name,
                       ", ".join(self.plan.keys), self.plan.target.display, self.on_conflict))
            self.forgot += len(self.older_keys)
        self.older_keys = young
        self.old_keys = {}

    def _spill_older(self, why):
        """Nothing else would find a duplicate of a forgotten key (why): the older generation moves to
        disk (key_spill.py) instead of being forgotten."""
        if not self.older_keys:
            return
        if self.spill is None:
            self.spill = KeySpill()
            self.plan.notes.append(
                "table %s: more than %d keys; %s, so older keys are kept on disk (a temporary SQLite file) "
                "rather than in memory" % (self.plan.source_table, self.key_memory, why))
        self.spill.add(self.older_keys)

    def close(self):
        """Release the spilled keys (their temporary file)."""
        if self.spill is not None:
            self.spill.close()
            self.spill = None


def plan_null(plan):
    """The converted form of NULL in the plan's COPY format."""
    return NULL_BINARY if plan.binary else NULL


def tuple_getter(positions):
    """itemgetter that always returns a tuple (itemgetter(i) alone returns the bare item)."""
    if len(positions) == 1:
        (pos,) = positions
        return lambda seq: (seq[pos],)
    return itemgetter(*positions)


@contextmanager
def paused_gc():
    """Keep the cyclic garbage collector off while a table streams.

    Every source row allocates ~30 objects, so a generation-0 collection runs
    every couple of dozen rows and the older generations scan the batch's live
    lists; the row path creates no
    reference cycles, so they never free anything (measured: 0.65 s of a
    10 s load of the full sample). Plain reference counting still frees every
    row as soon as its batch is sent.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Replaced(Exception):
    """Internal: the batch text changed after streaming started (update-mode duplicate)."""


class ChunkReader:
    """File-like object over a generator of chunks (str or bytes), as psycopg2 copy_expert wants.

    header/trailer frame a binary COPY stream.
    """

    def __init__(self, chunks, header=b"", trailer=b""):
        self.chunks = chunks
        self.buf = header
        self.trailer = trailer

    def read(self, size=-1):
        while size < 0 or len(self.buf) < size:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                self.buf += self.trailer
                self.trailer = b""
                break
            self.buf += chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        if size < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:size], self.buf[size:]
        return out


def drain(gen):
    for _ in gen:
        pass


class TableWriter:
    """Writes batches of one table into PostgreSQL (not used in check mode)."""

    def __init__(self, conn, plan, on_conflict, run_id, queries):
        self.conn = conn
        self.plan = plan
        self.table = plan.target
        self.on_conflict = on_conflict
        self.run_id = run_id
        self.queries = queries
        cols = [sql.Identifier(pc.target) for pc in plan.columns]
        self.col_list = sql.SQL(", ").join(cols)
        with conn.cursor() as cur:
            self.copy_sql = sql.SQL("COPY {} ({}) FROM STDIN" + plan.copy_options()).format(
                self.table.ident, self.col_list).as_string(cur)
        unique = self.table.unique_for(plan.keys) if plan.keys else None
        self.key_index = unique
        if on_conflict == "update" and plan.keys and not unique:
            raise ValueError("on_conflict=update needs a unique index on (%s) in %s"
                             % (", ".join(plan.keys), self.table.display))
        self.isolator = RejectIsolator(plan, self.col_list, self._reader)  # the staging path
        self.stage_first = False  # skip the direct COPY while batches keep needing the staging table

    # -- the fast path -----------------------------------------------------------------

    def write_batch(self, feeder, batch_rows, started):
        """Stream one batch; returns the Batch (committed) or None when the source is exhausted."""
        batch = Batch()
        cur = self.conn.cursor()
        cur.execute("SAVEPOINT sqlite_migrate_batch")
        gen = feeder.fill(batch, batch_rows)
        state = "ok"
        try:
            if self.stage_first:
                # the previous batch had rows PostgreSQL refused: this one most likely has too,
                # and a COPY refused at its end (a foreign key) costs as much as a whole load
                state = "failed"
            else:
                cur.copy_expert(self.copy_sql, self._reader(gen), size=1 << 16)
        except _Replaced:
            state = "replaced"
        except psycopg2.Error:
            state = "failed"
        if state != "ok":
            # the generator may have stopped early; finish consuming the batch's rows
            try:
                drain(gen)
            except _Replaced:
                pass
            cur.execute("ROLLBACK TO SAVEPOINT sqlite_migrate_batch")
        if state == "replaced":
            # update mode replaced a line already streamed: send the corrected batch again
            try:
                cur.copy_expert(self.copy_sql, self._reader(iter(batch.lines)), size=1 << 16)
                state = "ok"
            except psycopg2.Error:
                cur.execute("ROLLBACK TO SAVEPOINT sqlite_migrate_batch")
        if state == "ok":
            batch.copied = len(batch.lines)
        elif batch.lines:
            self._slow_path(cur, batch)
        if batch.upserts:
            self._apply_upserts(cur, batch)
        nothing = not batch.lines and not batch.rejects and not batch.upserts
        if nothing and feeder.exhausted and batch.last_rowid is None:
            self.conn.rollback()
            return None
        insert_rejects(cur, self.run_id, self.plan.source_table, batch.rejects)
        advance_checkpoint(cur, self.plan.source_table, batch.last_rowid, batch.copied, batch.rejected,
                           batch.duplicates, time.monotonic() - started)
        self.conn.commit()
        feeder.commit_keys(batch, self.key_index)
        return batch

    def _reader(self, chunks):
        return ChunkReader(chunks, self.plan.stream_header(), self.plan.stream_trailer())

    # -- fallback: the batch goes through the staging table (reject_isolation) ----------

    def _key_match(self):
        nnd = bool(self.key_index and self.key_index[2])
        parts = []
        for key in self.plan.keys:
            left, right = sql.Identifier("t", key), sql.Identifier("s", key)
            if nnd and not self.table.columns[key].type.not_null:
                parts.append(sql.SQL("({} = {} OR ({} IS NULL AND {} IS NULL))").format(left, right, left, right))
            else:
                parts.append(sql.SQL("{} = {}").format(left, right))
        return sql.SQL(" AND ").join(parts)

    def _slow_path(self, cur, batch):
        entries = sorted(zip(batch.rowids, batch.lines))
        line_of = dict(entries)
        refused = self.isolator.stage_isolating(cur, entries)
        for (rowid, line), error in refused:
            self._classify(batch, rowid, error, line)
        conflicted = []
        if self.plan.keys and self.key_index:
            cur.execute(sql.SQL("SELECT s.{} FROM {} s WHERE EXISTS (SELECT 1 FROM {} t WHERE {}) ORDER BY 1").format(
                sql.Identifier(STAGE_ROWID), sql.Identifier(STAGE), self.table.ident, self._key_match()))
            conflicted = [r[0] for r in cur.fetchall()]
        if conflicted:
            self._handle_conflicts(cur, batch, conflicted, line_of)
            cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(STAGE), rowid_in(conflicted)))
        done = {rowid for (rowid, _line), _error in refused}
        done.update(conflicted)
        failed = self._insert_staged(cur, batch, [rowid for rowid, _line in entries if rowid not in done], line_of)
        self.stage_first = bool(done or failed)

    def _handle_conflicts(self, cur, batch, rowids, line_of):
        for rowid in rowids:
            reason_key = "key (%s) already exists in %s" % (", ".join(self.plan.keys), self.table.display)
            if self.on_conflict == "error":
                batch.rejected += 1
                batch.rejects.append({"source_rowid": rowid, "kind": "reject", "column": ",".join(self.plan.keys),
                                      "value": self.plan.describe_record(line_of[rowid]),
                                      "reason": "duplicate: %s (on_conflict=error)" % reason_key})
            else:
                batch.duplicates += 1
                batch.rejects.append({"source_rowid": rowid, "kind": "duplicate", "column": ",".join(self.plan.keys),
                                      "value": self.plan.describe_record(line_of[rowid]),
                                      "reason": "duplicate: %s (on_conflict=%s)" % (reason_key, self.on_conflict)})
        if self.on_conflict == "update":
            cur.execute(self.isolator.insert_from_stage(rowid_in(rowids), upsert=True))

    def _classify(self, batch, rowid, error, line):
        """Record a row PostgreSQL refused (error: a PgError); returns "duplicate" or "reject"."""
        if error.code == UNIQUE_VIOLATION and self.on_conflict != "error":
            batch.duplicates += 1
            kind = "duplicate"
        else:
            batch.rejected += 1
            kind = "reject"
        message = error.message
        if error.detail:
            message += " (%s)" % error.detail
        batch.rejects.append({"source_rowid": rowid, "kind": kind, "column": error.column or None,
                              "value": self.plan.describe_record(line), "reason": "PostgreSQL: %s" % message})
        return kind

    def _insert_staged(self, cur, batch, rowids, line_of):
        """Insert the staged rows into the target; the rows PostgreSQL refuses become rejects (or duplicates)."""
        failed, inserted = self.isolator.insert_staged(cur, rowids)
        batch.copied += inserted
        upserts = [rowid for rowid, error in failed
                   if self._classify(batch, rowid, error, line_of[rowid]) == "duplicate"]
        if upserts and self.on_conflict == "update":
            cur.execute(self.isolator.insert_from_stage(rowid_in(upserts), upsert=True))
        return failed

    def _apply_upserts(self, cur, batch):
        entries = sorted(batch.upserts.values())
        if not self.isolator.stage(cur, entries):
            for rowid, line in entries:
                batch.rejected += 1
                batch.duplicates -= 1
                batch.rejects.append({"source_rowid": rowid, "kind": "reject", "column": None,
                                      "value": self.plan.describe_record(line),
                                      "reason": "PostgreSQL refused the row text"})
            return
        cur.execute(self.isolator.insert_from_stage(sql.SQL("true"), upsert=True))


def check_batch(feeder, batch_rows):
    """Check mode: convert one batch without touching PostgreSQL."""
    batch = Batch()
    try:
        drain(feeder.fill(batch, batch_rows))
    except _Replaced:
        pass
    batch.copied = len(batch.lines)
    feeder.commit_keys(batch)
    if not batch.lines and not batch.rejects and batch.last_rowid is None:
        return None
    return batch
