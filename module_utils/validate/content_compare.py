"""Stream a table from SQLite and from PostgreSQL into fingerprints, and explain differences.

The SQLite side reuses the migration's compiled plan (module_utils/mapping/plan.py:
renames, transforms, derive lookups and the row converter (mapping/row_converter.py) of each
target column), so both sides are normalized exactly as the migration wrote
them. Rows the migration rejected or counted as duplicates (quant_meta.migration_rejects)
are left out, and the duplicates are checked against the migration's rules in the
same pass: for each recorded duplicate, the source row kept with its key must be the
one the rules keep, the first in stream order, or the latest (highest rowid) for
on_conflict update tables (INSERT OR REPLACE in SQLite). (migration_validate's
"duplicates accounted" check proves each duplicate's key is a real unique key holding
no NULL, and is in PostgreSQL.) When the migration counted duplicates it did not
record by rowid, they are found again by the same rules: only on the target's real
unique key, a key holding NULL never a duplicate unless the index is NULLS NOT DISTINCT.

The SQLite side of every table runs in a forked child process while the parent
reads PostgreSQL, so the two halves use both CPUs.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import sqlite3
import struct
import traceback
from itertools import compress
from urllib.parse import quote

from ansible.module_utils.convert.binary_copy import SIGNATURE as COPY_SIGNATURE
from ansible.module_utils.core.fingerprint import (
    CANON_NAN_BITS,
    INT_CODED,
    NULL_ATOM,
    Invalid,
    TableFingerprint,
    atom,
    canonical_text,
    decode_int,
    encode_by_unique,
    encode_numbers,
    from_copy_text,
    from_pg,
    key_hash_np,
    kind_of,
    np,
)
from ansible.module_utils.mapping.row_converter import apply_transforms

CHUNK_ROWS = 50000
_UTC = datetime.timezone.utc
_FLOAT4 = struct.Struct(">f")


class ColumnSpec:
    """One compared column: target name, fingerprint kind, and how the source produces it."""

    def __init__(self, plan_column, float4_rounding="reject"):
        self.name = plan_column.target
        self.base = plan_column.converter_base
        self.kind = kind_of(self.base)
        # float4_rounding=accept: the migration stored the float4 rounding of a REAL, so that is what the
        # source value compares as (with reject an inexact value was a reject, left out by rowid)
        self.float4_rounded = self.base == "float4" and float4_rounding == "accept"
        self.index = plan_column.index
        self.transforms = plan_column.transforms
        self.derive = plan_column.derive
        # the COPY *text* form (the migration may stream binary COPY; text is what we parse)
        self.converter = getattr(plan_column, "text_converter", None) or plan_column.converter


class TableJob:
    """Everything both sides need to fingerprint one table."""

    def __init__(self, plan, target, excluded_rowids=(), dedupe=False, *, latest_wins=False, duplicates=()):
        self.source_table = plan.source_table
        self.target_schema = plan.target_schema
        self.target_name = plan.target_name
        self.source_columns = list(plan.source_columns)
        self.order_by = list(plan.order_by)
        # a WITHOUT ROWID source: the migration numbered its rows by position in this order (_source_query)
        self.rowless_key = list(getattr(plan, "rowless_key", None) or [])
        # the name that reaches the rowid (sqlite_source.rowid_alias): "rowid" means a column when one has it
        self.rowid_alias = getattr(plan, "rowid_alias", None) or "rowid"
        # the natural key (a real unique constraint of the target), or none: then rows are
        # matched on all their columns and no row is ever a duplicate
        self.natural_key = list(plan.keys)
        unique = getattr(plan, "unique_key", None)
        self.nulls_equal = bool(unique and unique.nulls_not_distinct)
        self.latest_wins = latest_wins
        self.keys = list(plan.keys) or [pc.target for pc in plan.columns]
        self.columns = []
        rounding = getattr(plan, "float4_rounding", "reject")
        for pc in plan.columns:
            pc.converter_base = target.columns[pc.target].type.base
            self.columns.append(ColumnSpec(pc, rounding))
        self.excluded = np.unique(np.asarray(sorted(excluded_rowids), dtype=np.int64))
        self.dedupe = dedupe
        self.duplicates = np.unique(np.asarray(sorted(duplicates), dtype=np.int64))  # recorded by the migration

    @property
    def row_id(self):
        """The SQL that names a source row: its rowid, or the position _numbered_rows adds."""
        return _position_name(self.source_columns) if self.rowless_key else self.rowid_alias

    @property
    def names(self):
        return [c.name for c in self.columns]

    @property
    def kinds(self):
        return [c.kind for c in self.columns]


# -- SQLite side ---------------------------------------------------------------------------


class _DeriveError(tuple):
    """Marker for a failed lookup (hashable so it can sit in the per-value table)."""


def _derived_values(spec, own, keys, n):
    d = spec.derive
    dmap = d["map"]
    if d.get("kind") == "period_end":
        # keys are the rowids (key_index 0); rows without a computed period end keep their own value
        if own is None:
            return [dmap.get(keys[i]) for i in range(n)]
        return [dmap.get(keys[i], own[i]) for i in range(n)]
    always = d["when"] == "always" or own is None
    out = []
    for i in range(n):
        if not always and own[i] is not None:
            out.append(own[i])
            continue
        raw = keys[i]
        if raw is None:
            out.append(_DeriveError(("lookup key is NULL",)))
            continue
        key = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        found = dmap.get(key)
        if found is None or isinstance(found, frozenset):
            out.append(_DeriveError(("lookup of %r in %s failed" % (key, d["table"]),)))
        else:
            out.append(found)
    return out


def _transformed(values, transforms):
    out = []
    for v in values:
        try:
            out.append(apply_transforms(v, transforms))
        except ValueError as exc:
            out.append(_DeriveError((str(exc),)))
    return out


def float4_of(value):
    """The float4 PostgreSQL stores for a float (as a float); out of float4's range: unchanged (the
    migration rejected it, so the row is not compared)."""
    try:
        return _FLOAT4.unpack(_FLOAT4.pack(value))[0]
    except OverflowError:
        return value


def _source_canonical(converter, kind, transforms=None, float4=False):
    def to_canonical(raw):
        if isinstance(raw, _DeriveError):
            raise ValueError(raw[0])
        value = apply_transforms(raw, transforms) if transforms else raw
        if value is None:
            return None
        out = from_copy_text(converter(value), kind)
        return float4_of(out) if float4 else out

    return to_canonical


def encode_source_chunk(job, cols, n):
    """Encode SQLite columns (tuples, index 0 = rowid) for every compared column.

    Same order of operations as the migration's row converter: transforms on
    the source value, then the derive lookup (when the value is NULL or
    always), then the converter of the target type.
    """
    encoded = []
    for spec in job.columns:
        own = cols[spec.index] if spec.index is not None else None
        if spec.derive:
            if own is not None and spec.transforms:
                own = _transformed(own, spec.transforms)
            raw = _derived_values(spec, own, cols[spec.derive["key_index"]], n)
            to_canonical = _source_canonical(spec.converter, spec.kind, float4=spec.float4_rounded)
        else:
            raw = own if own is not None else (None,) * n
            to_canonical = _source_canonical(spec.converter, spec.kind, spec.transforms, spec.float4_rounded)
        fast = None if (spec.transforms or spec.derive or spec.float4_rounded) else encode_numbers(raw, spec.kind)
        if fast is not None:
            atoms, null, numbers = fast
            encoded.append((atoms, null, numbers, None, None))
        else:
            atoms, null, canon, codes = encode_by_unique(raw, to_canonical, spec.kind)
            encoded.append((atoms, null, None, canon, codes))
    return encoded


def _qi(name):
    return '"%s"' % name.replace('"', '""')


def open_sqlite(path):
    conn = sqlite3.connect("file:%s?mode=ro" % quote(os.path.abspath(path)), uri=True)
    conn.text_factory = bytes
    return conn


def _source_query(job, where="", ordered=False):
    """Rows in rowid (storage) order; the migration's order_by only matters when duplicates are resolved."""
    cols = ", ".join(_qi(c) for c in job.source_columns)
    query = "SELECT %s, %s FROM %s%s" % (job.row_id, cols, _qi(job.source_table) if not job.rowless_key else
                                         _numbered_rows(job, cols), where)
    if ordered and job.order_by:
        query += " ORDER BY %s, %s" % (", ".join(_qi(c) for c in job.order_by), job.row_id)
    elif job.rowless_key:
        query += " ORDER BY %s" % job.row_id
    return query


def _rows_with_ids(job, count):
    """WHERE clause of _source_query selecting `count` rows by their id (one ? each)."""
    return " WHERE %s IN (%s)" % (job.row_id, ",".join("?" * count))


def _numbered_rows(job, cols):
    """A WITHOUT ROWID table has no rowid: its rows get the 1-based position in (order_by, primary key)
    order, the number sqlite_migrate gave them (sqlite_source.iter_rows(key=...)) and recorded for its
    rejects and duplicates, so everything keyed by rowid here works unchanged."""
    order = job.order_by + [c for c in job.rowless_key if c not in job.order_by]
    return "(SELECT row_number() OVER (ORDER BY %s) AS %s, %s FROM %s)" % (
        ", ".join(_qi(c) for c in order), job.row_id, cols, _qi(job.source_table))


def _position_name(columns):
    """A name for the row position of a table without rowid that none of its columns has (quoted)."""
    taken = {c.lower() for c in columns}
    name = "_row_position"
    while name in taken:
        name = "_" + name
    return _qi(name)


def columns_of(rows, width):
    """Column-major view of fetched rows (a 2-D object array is cheaper than zip(*rows))."""
    arr = np.array(rows, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == width:
        return [arr[:, i] for i in range(width)]
    return list(zip(*rows))  # a value that is itself a sequence: keep it whole


def _iter_source_chunks(conn, job, excluded, ordered=False):
    cur = conn.execute(_source_query(job, ordered=ordered))
    width = len(job.source_columns) + 1
    while True:
        rows = cur.fetchmany(CHUNK_ROWS)
        if not rows:
            return
        cols = columns_of(rows, width)
        rowids = np.fromiter(cols[0], dtype=np.int64, count=len(rows))
        if len(excluded):
            keep = ~np.isin(rowids, excluded)
            if not keep.all():
                mask = keep.tolist()
                cols = [c[keep] if isinstance(c, np.ndarray) else tuple(compress(c, mask)) for c in cols]
                rowids = rowids[keep]
        if len(rowids):
            yield cols, rowids


def _duplicate_rowids(conn, job, excluded):
    """excluded plus the rowids the migration must have counted as duplicates (module docstring)."""
    if not job.natural_key:
        return excluded
    keys, nulls, ids = [], [], []
    positions = [job.names.index(k) for k in job.natural_key]
    for cols, rowids in _iter_source_chunks(conn, job, excluded, ordered=not job.latest_wins):
        hashes, null = _key_hashes(job, positions, cols, len(rowids))
        keys.append(hashes)
        nulls.append(null)
        ids.append(rowids)
    if not keys:
        return excluded
    return np.union1d(excluded, superseded(np.concatenate(keys), np.concatenate(ids),
                                           None if job.nulls_equal else np.concatenate(nulls), job.latest_wins))


def _key_hashes(job, positions, cols, n):
    """(key hash, key holds a NULL) per source row of a chunk, for the key columns at positions."""
    enc = encode_source_chunk(_KeyOnly(job, positions), cols, n)
    return key_hash_np([e[0] for e in enc], n), np.logical_or.reduce([np.asarray(e[1], dtype=bool) for e in enc])


def superseded(key_hashes, rowids, null_keys=None, latest_wins=False):
    """Rowids that lose to another row with the same key.

    Arrays in stream order. null_keys: rows whose key holds a NULL, which collide with
    nothing (None when the index is NULLS NOT DISTINCT). latest_wins: the highest
    rowid of a key survives; otherwise the first in stream order.
    """
    if null_keys is not None:
        key_hashes, rowids = key_hashes[~null_keys], rowids[~null_keys]
    if latest_wins:
        order = np.lexsort((-rowids, key_hashes))  # per key, the highest rowid first
    else:
        order = np.lexsort((np.arange(len(key_hashes)), key_hashes))  # per key, stream order
    ordered = key_hashes[order]
    later = np.ones(len(ordered), dtype=bool)
    later[1:] = ordered[1:] == ordered[:-1]
    if len(later):
        later[0] = False
    return np.sort(rowids[order][later])


class _KeyOnly:
    def __init__(self, job, positions):
        self.columns = [job.columns[p] for p in positions]


def fingerprint_source(path, job):
    """Fingerprint the SQLite side of one table."""
    conn = open_sqlite(path)
    try:
        excluded = job.excluded
        if job.dedupe:
            excluded = _duplicate_rowids(conn, job, excluded)
        fp = TableFingerprint(job.source_table, job.names, job.kinds, job.keys)
        for cols, rowids in _iter_source_chunks(conn, job, excluded):
            fp.add_chunk(encode_source_chunk(job, cols, len(rowids)), rowids)
        fp.excluded = excluded
        fp.finish()
        fp.wrong_survivors = wrong_survivors(conn, job, fp) if len(job.duplicates) and not job.dedupe else []
        return fp
    finally:
        conn.close()


def wrong_survivors(conn, job, fp):
    """[(duplicate rowid, kept rowid)] where the migration kept the row its rules do not keep.

    fp: the source fingerprint without the recorded duplicates, so the row kept with
    a duplicate's key is the one left in fp with that key hash. Skip mode keeps the
    first in stream order: checked when the stream order is rowid order within a key
    (no order_by, or order_by columns all in the key).
    """
    if not job.natural_key or fp.rowids is None:
        return []
    key_sources = {job.source_columns[c.index - 1] for c in job.columns
                   if c.name in job.natural_key and c.index is not None}
    if not job.latest_wins and not set(job.order_by) <= key_sources:
        return []
    positions = [job.names.index(k) for k in job.natural_key]
    order = np.argsort(fp.key_hashes, kind="stable")
    sorted_keys = fp.key_hashes[order]
    out = []
    for start in range(0, len(job.duplicates), CHUNK_ROWS):
        ids = [int(r) for r in job.duplicates[start:start + CHUNK_ROWS]]
        rows = []
        for part in range(0, len(ids), 5000):
            rows += conn.execute(_source_query(job, _rows_with_ids(job, len(ids[part:part + 5000]))),
                                 ids[part:part + 5000]).fetchall()
        if not rows:
            continue
        cols = columns_of(rows, len(job.source_columns) + 1)
        hashes, null = _key_hashes(job, positions, cols, len(rows))
        left = np.searchsorted(sorted_keys, hashes, side="left")
        right = np.searchsorted(sorted_keys, hashes, side="right")
        for rowid, lo, hi, null_key in zip(cols[0], left, right, null):
            if null_key and not job.nulls_equal:
                continue  # a NULL key is no duplicate: "duplicates accounted" names it
            for kept in fp.rowids[order[lo:hi]]:
                if (kept < rowid) if job.latest_wins else (kept > rowid):
                    out.append((int(rowid), int(kept)))
    return sorted(out)


def source_rows_by_rowid(path, job, rowids):
    """Canonical values of the given SQLite rows: {rowid: [values...]}."""
    if not len(rowids):
        return {}
    conn = open_sqlite(path)
    try:
        rows = conn.execute(_source_query(job, _rows_with_ids(job, len(rowids))), [int(r) for r in rowids]).fetchall()
    finally:
        conn.close()
    if not rows:
        return {}
    cols = list(zip(*rows))
    enc = encode_source_chunk(job, cols, len(rows))
    return dict(zip(cols[0], canonical_rows(enc, len(rows), job.kinds)))


def canonical_rows(encoded, n, kinds):
    out = [[None] * len(encoded) for _ in range(n)]
    for pos, (_atoms, null, numbers, canon, codes) in enumerate(encoded):
        for i in range(n):
            if null[i]:
                value = None
            elif numbers is not None:
                value = decode_int(numbers[i].item(), kinds[pos])
            else:
                value = canon[codes[i]]
            out[i][pos] = value
    return out


# -- PostgreSQL side -----------------------------------------------------------------------


# Dates and timestamps are read as the integers their atoms are made of (days since
# 0001-01-01 + 1 = date.toordinal(), microseconds since the epoch): the same values,
# without building a Python datetime per row. Non-finite values make the cast fail;
# the caller then reads them the plain way.
_INT_EXPR = {
    "date": "({c} - DATE '0001-01-01' + 1)",
    "timestamptz": "(EXTRACT(EPOCH FROM {c}) * 1000000)::int8",
    "timestamp": "(EXTRACT(EPOCH FROM {c}) * 1000000)::int8",
}
_TEXT_EXPR = "{c}::text"  # json/jsonb as text: canonicalized by from_pg, never a Python dict per row


def _pg_select(job, int_coded=True):
    from psycopg2 import sql

    exprs = []
    for spec in job.columns:
        ident = sql.Identifier(spec.name)
        if int_coded and spec.kind in _INT_EXPR:
            exprs.append(sql.SQL(_INT_EXPR[spec.kind]).format(c=ident))
        elif spec.kind == "json":
            exprs.append(sql.SQL(_TEXT_EXPR).format(c=ident))
        else:
            exprs.append(ident)
    return sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(exprs),
                                              sql.Identifier(job.target_schema, job.target_name))


def _iter_pg_chunks(conn, job, int_coded=True):
    cur = conn.cursor(name="quant_validate_%s" % os.getpid())
    cur.itersize = CHUNK_ROWS
    cur.execute(_pg_select(job, int_coded))
    try:
        while True:
            rows = cur.fetchmany(CHUNK_ROWS)
            if not rows:
                return
            yield columns_of(rows, len(job.columns)), len(rows)
    finally:
        cur.close()


# -- PostgreSQL side, fast path: fixed-width binary COPY decoded by numpy -------------------
#
# Every column is sent as one non-NULL 8-byte field (NULLs as 0 plus a bit in a NULL
# bitmap column): floats as float8, integers/booleans/dates/timestamps as the int8
# their atoms are made of, text as the first 8 bytes of md5() - the text atom. With a
# fixed row width numpy reads the COPY stream as an array of records.

_BIN_EXPR = {
    "float": ("coalesce({c}, 0)::float8", ">f8"),
    "int": ("coalesce({c}, 0)::int8", ">i8"),
    "bool": ("coalesce({c}::int, 0)::int8", ">i8"),
    "date": ("coalesce({c} - DATE '0001-01-01' + 1, 0)::int8", ">i8"),
    "timestamptz": ("coalesce((EXTRACT(EPOCH FROM {c}) * 1000000)::int8, 0)", ">i8"),
    "timestamp": ("coalesce((EXTRACT(EPOCH FROM {c}) * 1000000)::int8, 0)", ">i8"),
    "text": ("coalesce(substr(decode(md5({c}::text), 'hex'), 1, 8), '\\x0000000000000000'::bytea)", "V8"),
}
_BIN_TEXT_BASES = ("text", "varchar", "name", "citext")


def binary_supported(job):
    return all(s.kind in _BIN_EXPR and (s.kind != "text" or s.base in _BIN_TEXT_BASES) for s in job.columns)


def _binary_query(job):
    from psycopg2 import sql

    exprs = [sql.SQL(_BIN_EXPR[s.kind][0]).format(c=sql.Identifier(s.name)) for s in job.columns]
    groups = [job.columns[i:i + 62] for i in range(0, len(job.columns), 62)]
    for group in groups:
        exprs.append(sql.SQL("(" + " | ".join("(({} IS NULL)::int::int8 << %d)" % i for i in range(len(group))) + ")")
                     .format(*[sql.Identifier(s.name) for s in group]))
    select = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(exprs),
                                                 sql.Identifier(job.target_schema, job.target_name))
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(select), len(groups)


class _BinaryRows:
    """File-like sink for copy_expert: decodes complete records in batches."""

    def __init__(self, job, ngroups, fp):
        self.job = job
        self.fp = fp
        fields = [(s.name, _BIN_EXPR[s.kind][1]) for s in job.columns]
        fields += [("__nulls%d" % g, ">i8") for g in range(ngroups)]
        layout = [("__n", ">i2")]
        for i, (_name, typ) in enumerate(fields):
            layout += [("__l%d" % i, ">i4"), ("f%d" % i, typ)]
        self.dtype = np.dtype(layout)
        self.nfields = len(fields)
        self.parts = []
        self.size = 0
        self.header = None

    def write(self, data):
        self.parts.append(data)
        self.size += len(data)
        if self.size >= self.dtype.itemsize * CHUNK_ROWS:
            self._drain(final=False)

    def _drain(self, final):
        buf = b"".join(self.parts)
        if self.header is None:
            if not buf.startswith(COPY_SIGNATURE):
                raise ValueError("unexpected binary COPY header")
            ext = int.from_bytes(buf[15:19], "big")
            self.header = 19 + ext
            buf = buf[self.header:]
        n = len(buf) // self.dtype.itemsize
        if final:
            if buf[n * self.dtype.itemsize:] != b"\xff\xff":
                raise ValueError("unexpected end of the binary COPY stream")
        rest = buf[n * self.dtype.itemsize:]
        self.parts = [rest] if rest else []
        self.size = len(rest)
        if n:
            self._decode(np.frombuffer(buf, dtype=self.dtype, count=n))

    def finish(self):
        self._drain(final=True)

    def _decode(self, rec):
        if not (rec["__n"] == self.nfields).all() or any(
                not (rec["__l%d" % i] == 8).all() for i in range(self.nfields)):
            raise ValueError("unexpected field layout in the binary COPY stream")
        ncols = len(self.job.columns)
        nulls = [rec["f%d" % (ncols + g)].astype(np.int64) for g in range((ncols + 61) // 62)]
        encoded = []
        for i, spec in enumerate(self.job.columns):
            null = ((nulls[i // 62] >> np.int64(i % 62)) & 1).astype(bool)
            raw = rec["f%d" % i]
            if spec.kind == "float":
                numbers = raw.astype(np.float64) + 0.0
                atoms = numbers.view(np.uint64).copy()
                nan = np.isnan(numbers)
                if nan.any():
                    atoms[nan] = np.uint64(CANON_NAN_BITS)
            elif spec.kind == "text":
                numbers = None
                atoms = np.frombuffer(np.ascontiguousarray(raw).tobytes(), dtype="<u8").copy()
            else:
                numbers = raw.astype(np.int64)
                atoms = numbers.view(np.uint64).copy()
            atoms[null] = np.uint64(NULL_ATOM)
            encoded.append((atoms, null, numbers, None, None))
        self.fp.add_chunk(encoded)


def _text_minmax(conn, job, fp):
    from psycopg2 import sql

    texts = [s for s in job.columns if s.kind == "text"]
    if not texts:
        return
    cur = conn.cursor()
    cur.execute(sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.SQL('min({c} COLLATE "C"), max({c} COLLATE "C")').format(c=sql.Identifier(s.name))
                           for s in texts),
        sql.Identifier(job.target_schema, job.target_name)))
    row = cur.fetchone()
    for i, spec in enumerate(texts):
        st = fp.stats[job.names.index(spec.name)]
        st.min, st.max = row[2 * i], row[2 * i + 1]


def fingerprint_target_binary(conn, job):
    fp = TableFingerprint(job.target_name, job.names, job.kinds, job.keys)
    query, ngroups = _binary_query(job)
    sink = _BinaryRows(job, ngroups, fp)
    conn.cursor().copy_expert(query, sink)
    sink.finish()
    _text_minmax(conn, job, fp)
    conn.rollback()
    fp.read_path = "binary COPY"
    return fp.finish()


def encode_target_chunk(job, cols, n, int_coded=True):
    encoded = []
    for pos, spec in enumerate(job.columns):
        raw = cols[pos]
        coded = int_coded and spec.kind in INT_CODED
        fast = encode_numbers(raw, "int" if coded else spec.kind)
        if fast is not None:
            atoms, null, numbers = fast
            encoded.append((atoms, null, numbers, None, None))
        else:
            kind = spec.kind
            atoms, null, canon, codes = encode_by_unique(raw, lambda v, k=kind: from_pg(v, k), kind)
            encoded.append((atoms, null, None, canon, codes))
    return encoded


def fingerprint_target(conn, job):
    """Fingerprint the PostgreSQL side of one table (values read back)."""
    import psycopg2

    if binary_supported(job):
        try:
            return fingerprint_target_binary(conn, job)
        except (psycopg2.Error, ValueError):
            conn.rollback()  # e.g. 'infinity' timestamps: read them the plain way
    for int_coded in (True, False):
        fp = TableFingerprint(job.target_name, job.names, job.kinds, job.keys)
        try:
            for cols, n in _iter_pg_chunks(conn, job, int_coded):
                fp.add_chunk(encode_target_chunk(job, cols, n, int_coded))
        except (psycopg2.DataError, psycopg2.NotSupportedError):
            conn.rollback()  # 'infinity' dates/timestamps have no integer form: read them as values
            if not int_coded:
                raise
            continue
        conn.rollback()
        fp.read_path = "rows (int-coded dates)" if int_coded else "rows"
        return fp.finish()
    raise RuntimeError("unreachable")


def target_rows_by_keyhash(conn, job, wanted, limit):
    """Canonical values of PostgreSQL rows whose key hash is in wanted: {key hash: [rows]}."""
    found = {}
    if not len(wanted):
        return found
    positions = [job.names.index(k) for k in job.keys]
    for cols, n in _iter_pg_chunks(conn, job, int_coded=False):
        enc = encode_target_chunk(job, cols, n, int_coded=False)
        keyh = key_hash_np([enc[p][0] for p in positions], n)
        hits = np.flatnonzero(np.isin(keyh, wanted))
        if len(hits):
            rows = canonical_rows(enc, n, job.kinds)
            for i in hits:
                found.setdefault(int(keyh[i]), []).append(rows[i])
        if len(found) >= limit:
            break
    conn.rollback()
    return found


# -- parallel SQLite worker ----------------------------------------------------------------


def _worker(path, jobs, pipe):
    for job in jobs:
        try:
            result = ("ok", fingerprint_source(path, job))
        except Exception as exc:  # report every failure to the parent, never hang it
            result = ("error", "%s: %s" % (type(exc).__name__, exc), traceback.format_exc())
        pipe.send((job.source_table, result))
    pipe.close()


class SourceFingerprints:
    """Compute SQLite fingerprints for jobs, in a forked child when possible."""

    def __init__(self, path, jobs, parallel=True):
        self.path = path
        self.jobs = list(jobs)
        self.proc = None
        self.conn = None
        if parallel and self.jobs and "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            parent, child = ctx.Pipe(duplex=False)
            self.proc = ctx.Process(target=_worker, args=(path, self.jobs, child), daemon=True)
            self.proc.start()
            child.close()
            self.conn = parent

    def get(self, table):
        """('ok', fingerprint) or ('error', message, traceback) for the next table (in job order)."""
        if self.proc is None:
            job = next(j for j in self.jobs if j.source_table == table)
            try:
                return ("ok", fingerprint_source(self.path, job))
            except Exception as exc:
                return ("error", "%s: %s" % (type(exc).__name__, exc), traceback.format_exc())
        try:
            name, result = self.conn.recv()
        except EOFError:
            return ("error", "the SQLite worker process ended unexpectedly (exit code %s)" % self.proc.exitcode, "")
        if name != table:
            return ("error", "internal: expected results for %s, got %s" % (table, name), "")
        return result

    def close(self):
        if self.proc is not None:
            self.conn.close()
            self.proc.join(timeout=5)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join()


# -- explaining differences ----------------------------------------------------------------


def row_ref(job, rowid):
    """How a source row is named: its rowid, or for a WITHOUT ROWID table the position the migration
    numbered it by (also its source_rowid in the rejects)."""
    if job.rowless_key:
        return "position %d in (%s) order" % (rowid, ", ".join(job.order_by + [
            c for c in job.rowless_key if c not in job.order_by]))
    return "SQLite rowid %d" % rowid


def _key_text(job, row):
    return ", ".join("%s=%s" % (k, canonical_text(row[job.names.index(k)], job.kinds[job.names.index(k)]))
                     for k in job.keys)


def explain(job, src_fp, dst_fp, diffs, *, path, conn, limit=10):
    """Turn keyed differences into readable findings naming keys and columns."""
    findings = []
    s_order = np.argsort(src_fp.key_hashes, kind="stable")

    def src_rowids(hashes):
        hashes = hashes[:limit]
        if not len(hashes):
            return []
        pos = s_order[np.searchsorted(src_fp.key_hashes, hashes, sorter=s_order)]
        return src_fp.rowids[pos]

    missing_ids = src_rowids(diffs["missing"])
    changed_ids = src_rowids(diffs["changed"])
    src_rows = source_rows_by_rowid(path, job, list(missing_ids) + list(changed_ids))
    wanted = np.concatenate([diffs["extra"][:limit], diffs["changed"][:limit], diffs["duplicated"][:limit]])
    dst_rows = target_rows_by_keyhash(conn, job, wanted, 3 * limit)
    for rid in missing_ids:
        row = src_rows.get(int(rid))
        if row is not None:
            findings.append({"kind": "missing", "key": _key_text(job, row), "source_rowid": int(rid),
                             "text": "row %s (%s) is missing in PostgreSQL" % (_key_text(job, row), row_ref(job, rid))})
    for h in diffs["extra"][:limit]:
        for row in dst_rows.get(int(h), [])[:1]:
            findings.append({"kind": "extra", "key": _key_text(job, row),
                             "text": "row %s exists only in PostgreSQL" % _key_text(job, row)})
    for rid, h in zip(changed_ids, diffs["changed"][:limit]):
        srow = src_rows.get(int(rid))
        drows = dst_rows.get(int(h), [])
        if srow is None or not drows:
            continue
        drow = drows[0]
        cols = []
        for pos, name in enumerate(job.names):
            a, b = srow[pos], drow[pos]
            kind = job.kinds[pos]
            differs = canonical_text(a, kind) != canonical_text(b, kind) or atom(a, kind) != atom(b, kind)
            if differs or isinstance(a, Invalid):
                cols.append({"column": name, "source": canonical_text(a, kind), "target": canonical_text(b, kind)})
        findings.append({"kind": "changed", "key": _key_text(job, srow), "source_rowid": int(rid), "columns": cols,
                         "text": "row %s differs in %s" % (_key_text(job, srow), ", ".join(
                             "%s (SQLite %s, PostgreSQL %s)" % (c["column"], c["source"], c["target"]) for c in cols))})
    for h in diffs["duplicated"][:limit]:
        rows = dst_rows.get(int(h), [])
        if rows:
            findings.append({"kind": "duplicated", "key": _key_text(job, rows[0]),
                             "text": "key %s occurs %d time(s) in PostgreSQL, a different number of times in "
                                     "the source" % (_key_text(job, rows[0]), len(rows))})
    findings.sort(key=lambda f: (f["kind"], f["key"]))
    return findings
