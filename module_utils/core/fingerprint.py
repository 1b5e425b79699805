"""Order-independent content fingerprints of a table, computed the same way on both sides.

Normalization (one definition, used for the SQLite source and for PostgreSQL):

* SQLite side: every value goes through the migration's own pipeline
  (mapping transforms, derive lookups, the text COPY converter (convert/text_copy.py) for the
  TARGET column type), whose output is COPY text; ``from_copy_text`` turns that
  text into a canonical Python value.
* PostgreSQL side: values are read back with psycopg2 (session TimeZone UTC)
  and ``from_pg`` turns them into the same canonical Python values.
* ``canonical_text`` renders a canonical value as text: floats ``repr``, dates
  ISO, timestamps UTC ISO, booleans ``t``/``f``, NULL ``\\N``. Reports and the
  keyed comparison show these texts.
* ``atom`` maps a canonical value to 64 bits by a rule that is one-to-one with
  its canonical text (IEEE-754 bits for floats, the integer itself, days or
  microseconds since the epoch, the first 64 bits of MD5 of the text otherwise), so two
  values get the same atom exactly when their canonical texts are equal
  (up to a 2**-64 hash collision for text).

Hashes: a row's key hash mixes the atoms of its key columns; a cell hash mixes
the key hash with the value atom (so swapping values between rows is seen);
a column hash is the sum of its cell hashes modulo 2**64 (order independent,
so the two sides may stream rows in any order). A row hash combines its cell
hashes; (key hash, row hash) pairs drive the keyed comparison.

The hot path is vectorized with numpy; ``cell_hash_py`` is the pure-Python
reference the unit tests hold the numpy code to.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import struct
from decimal import Decimal, InvalidOperation

try:
    import numpy as np

    HAS_NUMPY = True
except ImportError:  # pragma: no cover - reported by the module with missing_required_lib
    np = None
    HAS_NUMPY = False

MASK = (1 << 64) - 1
NULL_TEXT = "\\N"
NULL_ATOM = 0x9E3779B97F4A7C15
INVALID_SALT = 0x5851F42D4C957F2D
KEY_SEED = 0x243F6A8885A308D3
VALUE_SALT = 0x13198A2E03707344
CANON_NAN_BITS = 0x7FF8000000000000
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_NAIVE = datetime.datetime(1970, 1, 1)
_US = datetime.timedelta(microseconds=1)

# PostgreSQL base type name (pg_type.typname) -> fingerprint kind.
_KINDS = {
    "float4": "float", "float8": "float",
    "int2": "int", "int4": "int", "int8": "int",
    "numeric": "numeric", "bool": "bool", "date": "date",
    "timestamptz": "timestamptz", "timestamp": "timestamp",
    "json": "json", "jsonb": "json",
    "text": "text", "varchar": "text", "bpchar": "text", "name": "text", "citext": "text", "char": "text",
}
_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


class Invalid:
    """A source value the migration's converter refuses (the row should have been rejected)."""

    __slots__ = ("reason", "value")

    def __init__(self, value, reason):
        self.value = value
        self.reason = reason

    def __eq__(self, other):
        return isinstance(other, Invalid) and other.value == self.value

    def __hash__(self):
        return hash(("invalid", repr(self.value)))

    def __repr__(self):
        return "<invalid %r: %s>" % (self.value, self.reason)


def kind_of(pg_base_type):
    """Fingerprint kind for a PostgreSQL base type name (unknown types compare as text)."""
    return _KINDS.get(pg_base_type, "other")


# -- canonical values ---------------------------------------------------------------------


def _canon_float(value):
    value = float(value)
    if value == 0.0:
        return 0.0  # -0.0 and 0.0 are the same number in both databases
    return value


def _canon_numeric(value):
    try:
        d = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError("not a number: %r" % (value,)) from None
    if d.is_nan():
        return Decimal("NaN")
    if d == 0:
        return Decimal(0)
    return d.normalize()


def _canon_json(value):
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _unescape_copy(text):
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        pair = text[i:i + 2]
        if pair in _UNESCAPE:
            out.append(_UNESCAPE[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def from_copy_text(text, kind):
    """Canonical value of one COPY text field produced by convert/text_copy.py (None/\\N = NULL)."""
    if text is None or text == NULL_TEXT:
        return None
    if kind == "float":
        return _canon_float(text)
    if kind == "int":
        return int(text)
    if kind == "numeric":
        return _canon_numeric(text)
    if kind == "bool":
        return text == "t"
    if kind == "date":
        return datetime.date.fromisoformat(text)
    if kind == "timestamptz":
        moment = datetime.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_UTC)
        return moment.astimezone(_UTC)
    if kind == "timestamp":
        return datetime.datetime.fromisoformat(text).replace(tzinfo=None)
    text = _unescape_copy(text)
    if kind == "json":
        return _canon_json(text)
    return text


def from_pg(value, kind):
    """Canonical value of one value read back from PostgreSQL by psycopg2."""
    if value is None:
        return None
    if kind == "float":
        return _canon_float(value)
    if kind == "int":
        return int(value)
    if kind == "numeric":
        return _canon_numeric(value)
    if kind == "bool":
        return bool(value)
    if kind == "date":
        return value
    if kind == "timestamptz":
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        return value.astimezone(_UTC)
    if kind == "timestamp":
        return value.replace(tzinfo=None)
    if kind == "json":
        return _canon_json(value)
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def canonical_text(value, kind):
    """The text form both sides are compared in (what reports show)."""
    if value is None:
        return NULL_TEXT
    if isinstance(value, Invalid):
        return "<unconvertible %r: %s>" % (value.value, value.reason)
    if kind == "float":
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if kind == "bool":
        return "t" if value else "f"
    if kind in ("date", "timestamp"):
        return value.isoformat()
    if kind == "timestamptz":
        return value.astimezone(_UTC).isoformat()
    if kind == "numeric":
        return "NaN" if value.is_nan() else format(value, "f")
    return str(value)


# -- 64-bit atoms and mixing ------------------------------------------------------------


def _text_atom(text):
    """First 8 bytes of MD5 (little endian): PostgreSQL computes the same with md5() server-side."""
    return int.from_bytes(hashlib.md5(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")


def atom(value, kind):
    """64-bit atom of a canonical value; one-to-one with canonical_text."""
    if value is None:
        return NULL_ATOM
    if isinstance(value, Invalid):
        return _text_atom("\x00invalid\x00" + repr(value.value)) ^ INVALID_SALT
    if kind == "float":
        if math.isnan(value):
            return CANON_NAN_BITS
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    if kind == "int":
        return value & MASK
    if kind == "bool":
        return 1 if value else 0
    if kind == "date":
        return value.toordinal()
    if kind == "timestamptz":
        return ((value - _EPOCH) // _US) & MASK
    if kind == "timestamp":
        return ((value - _EPOCH_NAIVE) // _US) & MASK
    return _text_atom(canonical_text(value, kind))


INT_CODED = ("date", "timestamptz", "timestamp")


def decode_int(n, kind):
    """Inverse of atom() for date/timestamp kinds read back as integers (days / microseconds)."""
    if kind == "date":
        return datetime.date.fromordinal(n)
    if kind == "timestamptz":
        return _EPOCH + datetime.timedelta(microseconds=n)
    if kind == "timestamp":
        return _EPOCH_NAIVE + datetime.timedelta(microseconds=n)
    return n


def mix64(x):
    """splitmix64 finalizer on a Python int (reference for the numpy version)."""
    x &= MASK
    x ^= x >> 30
    x = (x * _M1) & MASK
    x ^= x >> 27
    x = (x * _M2) & MASK
    return x ^ (x >> 31)


def key_hash_py(key_atoms):
    h = KEY_SEED
    for pos, a in enumerate(key_atoms):
        h = mix64(h ^ mix64((a + pos * 0x9E3779B97F4A7C15) & MASK))
    return h


def cell_hash_py(key_h, value_atom):
    return mix64(key_h ^ mix64((value_atom + VALUE_SALT) & MASK))


def row_weight(col_pos):
    """Odd multiplier that makes a row hash depend on which column a cell hash came from."""
    return (((col_pos + 1) * 0xD6E8FEB86659FD93) | 1) & MASK


if HAS_NUMPY:
    _NM1 = np.uint64(_M1)
    _NM2 = np.uint64(_M2)
    _S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix64_np(x):
    """splitmix64 finalizer on a uint64 array (wraps modulo 2**64 like the reference)."""
    x = x ^ (x >> _S30)
    x *= _NM1
    x ^= x >> _S27
    x *= _NM2
    x ^= x >> _S31
    return x


def key_hash_np(key_atom_arrays, n):
    h = np.full(n, KEY_SEED, dtype=np.uint64)
    for pos, a in enumerate(key_atom_arrays):
        h = mix64_np(h ^ mix64_np(a + np.uint64((pos * 0x9E3779B97F4A7C15) & MASK)))
    return h


def cell_hash_np(key_h, atoms):
    return mix64_np(key_h ^ mix64_np(atoms + np.uint64(VALUE_SALT)))


# -- per-column encoding ------------------------------------------------------------------


class ColumnStats:
    """count, NULL count, unconvertible count, min, max, sum and hash of one column."""

    __slots__ = ("count", "hash", "invalid", "kind", "max", "min", "name", "nulls", "sum")

    def __init__(self, name, kind):
        self.name = name
        self.kind = kind
        self.count = 0
        self.nulls = 0
        self.invalid = 0
        self.min = None
        self.max = None
        self.sum = 0 if kind in ("int", "float", "numeric") else None
        self.hash = 0

    def merge_minmax(self, lo, hi):
        if lo is None:
            return
        if self.min is None or lo < self.min:
            self.min = lo
        if self.max is None or hi > self.max:
            self.max = hi

    def as_dict(self):
        out = {
            "count": self.count, "nulls": self.nulls, "invalid": self.invalid,
            "min": None if self.min is None else canonical_text(self.min, self.kind),
            "max": None if self.max is None else canonical_text(self.max, self.kind),
            "hash": "%016x" % self.hash,
        }
        if self.sum is not None:
            out["sum"] = canonical_text(self.sum, self.kind) if self.kind != "float" else repr(float(self.sum))
        return out


def encode_numbers(values, kind):
    """Fast path for float/int columns: (atoms, null mask, numeric array) or None to fall back."""
    if kind == "float":
        try:
            arr = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        nan = np.isnan(arr)
        if nan.any():
            idx = np.flatnonzero(nan)
            null = np.zeros(len(arr), dtype=bool)
            null[idx] = [values[i] is None for i in idx]
        else:
            null = nan
        arr = arr + 0.0  # -0.0 -> 0.0
        bits = arr.view(np.uint64).copy()
        realnan = nan & ~null
        if realnan.any():
            bits[realnan] = np.uint64(CANON_NAN_BITS)
        bits[null] = np.uint64(NULL_ATOM)
        return bits, null, arr
    if kind == "int":
        obj = np.array(values, dtype=object)
        null = np.equal(obj, None)
        filled = np.where(null, 0, obj)
        try:
            ints = filled.astype(np.int64)
            if filled.dtype == object and not all(type(v) is int for v in filled[:64]):
                # floats such as 100.0 are fine, 1.5 is not: verify exactly
                if not np.array_equal(ints.astype(object), filled):
                    return None
        except (TypeError, ValueError, OverflowError):
            return None
        atoms = ints.view(np.uint64).copy()
        atoms[null] = np.uint64(NULL_ATOM)
        return atoms, null, ints
    return None


def encode_by_unique(values, to_canonical, kind):
    """Encode a column by its distinct raw values (cheap for low-cardinality columns).

    to_canonical(raw) -> canonical value, or raises ValueError (-> Invalid).
    Returns atoms, null mask, the canonical value per distinct code, and codes.
    """
    lut = {}
    setdefault = lut.setdefault
    codes = np.fromiter((setdefault(v, len(lut)) for v in values), dtype=np.int64, count=len(values))
    canon = []
    atoms = np.empty(len(lut), dtype=np.uint64)
    for raw, code in lut.items():
        if raw is None:
            value = None
        else:
            try:
                value = to_canonical(raw)
            except (ValueError, TypeError, ArithmeticError) as exc:
                value = Invalid(raw, str(exc) or type(exc).__name__)
        canon.append(value)
        atoms[code] = atom(value, kind)
    null_codes = np.array([v is None for v in canon], dtype=bool)
    return atoms[codes], null_codes[codes], canon, codes


class TableFingerprint:
    """Streaming fingerprint of one table: feed column-major chunks with add_chunk()."""

    def __init__(self, table, columns, kinds, key_columns):
        self.table = table
        self.columns = list(columns)
        self.kinds = list(kinds)
        self.key_positions = [self.columns.index(k) for k in key_columns]
        self.stats = [ColumnStats(c, k) for c, k in zip(self.columns, self.kinds)]
        self.rows = 0
        self._keys = []
        self._rowhashes = []
        self._rowids = []

    def add_chunk(self, encoded, rowids=None):
        """encoded: per column (atoms, null mask, numbers-or-None, canon-or-None, codes-or-None)."""
        n = len(encoded[0][0]) if encoded else 0
        if n == 0:
            return
        keyh = key_hash_np([encoded[p][0] for p in self.key_positions], n)
        rowh = np.zeros(n, dtype=np.uint64)
        for pos, (atoms, null, numbers, canon, codes) in enumerate(encoded):
            st = self.stats[pos]
            cells = cell_hash_np(keyh, atoms)
            st.hash = (st.hash + int(cells.sum(dtype=np.uint64))) & MASK
            rowh += cells * np.uint64(row_weight(pos))
            nnull = int(null.sum())
            st.nulls += nnull
            st.count += n - nnull
            if numbers is not None:
                valid = numbers[~null]
                if st.kind == "float":
                    valid = valid[~np.isnan(valid)]
                if len(valid):
                    st.merge_minmax(decode_int(valid.min().item(), st.kind), decode_int(valid.max().item(), st.kind))
                    if st.sum is not None:
                        st.sum += valid.sum().item()
            elif canon is not None:
                counts = np.bincount(codes, minlength=len(canon))
                good = []
                for code in np.flatnonzero(counts):
                    value = canon[code]
                    if isinstance(value, Invalid):
                        st.invalid += int(counts[code])
                    elif value is not None and not (st.kind in ("float", "numeric") and _is_nan(value)):
                        good.append(value)
                        if st.sum is not None:
                            st.sum += value * int(counts[code])
                if good and st.kind not in ("json", "other"):
                    st.merge_minmax(min(good), max(good))
        self.rows += n
        self._keys.append(keyh)
        self._rowhashes.append(rowh)
        if rowids is not None:
            self._rowids.append(np.asarray(rowids, dtype=np.int64))

    def finish(self):
        """Concatenate the per-row arrays (call once, after the last chunk)."""
        def cat(parts, dtype):
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        self.key_hashes = cat(self._keys, np.uint64)
        self.row_hashes = cat(self._rowhashes, np.uint64)
        self.rowids = cat(self._rowids, np.int64) if self._rowids else None
        self._keys = self._rowhashes = self._rowids = None
        return self

    def summary(self):
        return {"rows": self.rows, "columns": {st.name: st.as_dict() for st in self.stats}}


def _sums_differ(a, b, kind):
    if a is None or b is None:
        return a != b
    if kind == "float":
        return not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a != b


def _is_nan(value):
    return value.is_nan() if isinstance(value, Decimal) else math.isnan(value)


def compare_fingerprints(src, dst):
    """Column-level differences: list of (column, field, source, target) in canonical text."""
    diffs = []
    if src.rows != dst.rows:
        diffs.append(("*", "rows", src.rows, dst.rows))
    dst_by_name = {st.name: st for st in dst.stats}
    for s in src.stats:
        d = dst_by_name.get(s.name)
        if d is None:
            diffs.append((s.name, "column", "present", "missing"))
            continue
        sd, dd = s.as_dict(), d.as_dict()
        for field in ("count", "nulls", "invalid", "min", "max"):
            if sd[field] != dd[field]:
                diffs.append((s.name, field, sd[field], dd[field]))
        if "sum" in sd and _sums_differ(s.sum, d.sum, s.kind):
            diffs.append((s.name, "sum", sd["sum"], dd.get("sum")))
        if s.hash != d.hash:
            diffs.append((s.name, "hash", sd["hash"], dd["hash"]))
    return diffs


def keyed_differences(src, dst):
    """Compare (key hash -> row hash) between sides.

    Returns dict with arrays of key hashes: missing (source only), extra
    (target only), changed (both, row hash differs) and duplicated (key hash
    occurring a different number of times on the two sides).
    """
    sk, sc = np.unique(src.key_hashes, return_counts=True)
    dk, dc = np.unique(dst.key_hashes, return_counts=True)
    missing = np.setdiff1d(sk, dk, assume_unique=True)
    extra = np.setdiff1d(dk, sk, assume_unique=True)
    common, si, di = np.intersect1d(sk, dk, assume_unique=True, return_indices=True)
    duplicated = common[sc[si] != dc[di]]
    single = common[(sc[si] == 1) & (dc[di] == 1)]
    s_order = np.argsort(src.key_hashes, kind="stable")
    d_order = np.argsort(dst.key_hashes, kind="stable")
    s_pos = s_order[np.searchsorted(src.key_hashes, single, sorter=s_order)]
    d_pos = d_order[np.searchsorted(dst.key_hashes, single, sorter=d_order)]
    changed = single[src.row_hashes[s_pos] != dst.row_hashes[d_pos]]
    return {"missing": missing, "extra": extra, "changed": changed, "duplicated": duplicated}
