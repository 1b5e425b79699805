"""Data checks of migration_validate: reconciliation, content, integrity and quality.

All SQL is read-only; identifiers are quoted with psycopg2.sql, never formatted by hand.
"""

from __future__ import annotations

from ansible.module_utils.core.fingerprint import Invalid, canonical_text, compare_fingerprints, keyed_differences
from ansible.module_utils.validate.content_compare import explain, fingerprint_target, source_rows_by_rowid
from psycopg2 import sql

# Ticker shapes per region (spec source_system.md §1.4). KR: 6 digits, newer KRX codes
# also carry uppercase letters; US: 1-5 letters plus an optional .A/.B class suffix;
# CN: 6 digits, optional .SS/.SZ; HK: 4-5 digits, optional .HK; JP: 4 digits; VN: 3 letters.
TICKER_PATTERNS = {
    "KR": r"^[0-9A-Z]{6}$",
    "US": r"^[A-Z]{1,5}(\.[AB])?$",
    "CN": r"^[0-9]{6}(\.(SS|SZ))?$",
    "HK": r"^[0-9]{4,5}(\.HK)?$",
    "JP": r"^[0-9]{4}$",
    "VN": r"^[A-Z]{3}$",
}
EXAMPLES = 5
LOOKUP_CHUNK = 5000  # rowids per SQLite IN list / PostgreSQL lookup


def _ident(schema, name):
    return sql.Identifier(schema, name)


def _scalar(cur, query, params=None):
    cur.execute(query, params)
    row = cur.fetchone()
    return row[0] if row else None


def relation_exists(cur, qualified):
    return _scalar(cur, "SELECT to_regclass(%s) IS NOT NULL", (qualified,))


# -- reconciliation ---------------------------------------------------------------------------


def checkpoint_for(checkpoints, source_table, target_name):
    if not checkpoints:
        return None
    return checkpoints.get(source_table) or checkpoints.get(target_name)


def check_reconciliation(results, cur, source, plan, *, checkpoint, rejects):
    """source rows = copied + rejected + duplicates, and both sides agree with the accounting."""
    table = plan.source_table
    name = "row accounting %s" % table
    if checkpoint is None:
        results.add(name, "reconciliation", "critical", False,
                    "no quant_meta.migration_checkpoints row for %s: the migration did not run or did not record it"
                    % table, table)
        return
    src_now = source.count(table)
    pg_rows = _scalar(cur, sql.SQL("SELECT count(*) FROM {}").format(_ident(plan.target_schema, plan.target_name)))
    s, c = checkpoint["source_rows"], checkpoint["copied_rows"]
    r, d = checkpoint["rejected_rows"] or 0, checkpoint["duplicate_rows"] or 0
    problems = []
    if checkpoint["status"] != "done":
        problems.append("checkpoint status is %r, not 'done'" % checkpoint["status"])
    if s is None or c is None or s != c + r + d:
        problems.append("unexplained difference: source %s != copied %s + rejected %s + duplicates %s (%+d rows)"
                        % (s, c, r, d, (s or 0) - ((c or 0) + r + d)))
    if s != src_now:
        problems.append("SQLite now has %d rows but the migration read %s (source changed since)" % (src_now, s))
    if c != pg_rows:
        problems.append("PostgreSQL %s has %d rows but the migration copied %s" % (plan.target_name, pg_rows, c))
    if len(rejects) not in (r, r + d):
        problems.append("quant_meta.migration_rejects holds %d rejected rowids, checkpoint says %d" % (len(rejects), r))
    detail = "source %s = copied %s + rejected %s + duplicates %s; PostgreSQL rows %d" % (s, c, r, d, pg_rows)
    if problems:
        detail = "; ".join(problems) + " (" + detail + ")"
    results.add(name, "reconciliation", "critical", not problems, detail, table,
                {"source_rows": s, "copied_rows": c, "rejected_rows": r, "duplicate_rows": d,
                 "sqlite_rows_now": src_now, "postgres_rows": pg_rows, "reject_records": len(rejects)})


def check_duplicates_accounted(results, cur, job, target, *, src_path, checkpoint, duplicates):
    """Every row the migration counted as a duplicate has a row with its key in PostgreSQL.

    Checked on its own, not from the module's count: each recorded duplicate is read
    back from SQLite and converted like the migration did, and its key must equal,
    under SQL NULL semantics, a row in the target (the row that superseded it) on a
    unique key of the target that the source fills (the natural key first; PostgreSQL
    enforces the others too). A key holding NULL equals nothing (unless NULLS NOT
    DISTINCT), and a table without such a key has no duplicates at all.
    """
    table = job.source_table
    name = "duplicates accounted %s" % table
    if checkpoint is None:
        return  # row accounting already reports the missing checkpoint
    counted = checkpoint["duplicate_rows"] or 0
    if not counted and not duplicates:
        results.add(name, "reconciliation", "critical", True, "no duplicates counted", table, {"duplicates": 0})
        return
    problems = []
    if counted != len(duplicates):
        problems.append("the checkpoint counts %d duplicate(s), quant_meta.migration_rejects records %d by rowid"
                        % (counted, len(duplicates)))
    keys = _loaded_unique_keys(job, target)
    label = " or ".join("(%s)" % ", ".join(k.columns) for k in keys) or "no unique key loaded from the source"
    if keys:
        unmatched = _unmatched_duplicates(cur, job, target, src_path, duplicates, keys)
    else:
        unmatched = [(r, "%s has no unique key the source fills: no row may be a duplicate" % target.display)
                     for r in duplicates]
    if unmatched:
        problems.append("%d of %d duplicate(s) match no PostgreSQL row on %s: %s" % (
            len(unmatched), len(duplicates), label,
            "; ".join("SQLite rowid %s %s" % pair for pair in unmatched[:EXAMPLES])))
    detail = "; ".join(problems) if problems else (
        "each of %d duplicate(s) equals a PostgreSQL row on %s" % (len(duplicates), label))
    results.add(name, "reconciliation", "critical", not problems, detail, table,
                {"duplicates": len(duplicates), "checkpoint_duplicates": counted, "unmatched": len(unmatched),
                 "unmatched_rowids": [r for r, _why in unmatched[:EXAMPLES]]})


def _loaded_unique_keys(job, target):
    """The target's unique keys whose columns the source fills, the natural key first (keys in its order)."""
    keys = [u._replace(columns=list(job.natural_key)) for u in target.unique_keys
            if job.natural_key and set(u.columns) == set(job.natural_key)][:1]
    keys += [u for u in target.unique_keys
             if all(c in job.names for c in u.columns) and set(u.columns) != set(job.natural_key)]
    return keys


def _unmatched_duplicates(cur, job, target, src_path, rowids, keys):  # noqa: PLR0917
    """[(rowid, why)] of duplicates whose key matches no target row on any of keys."""
    out = []
    for start in range(0, len(rowids), LOOKUP_CHUNK):
        chunk = rowids[start:start + LOOKUP_CHUNK]
        rows = source_rows_by_rowid(src_path, job, chunk)
        why = {}
        for rowid in chunk:
            if rowid not in rows:
                why[rowid] = "is no longer in the SQLite table"
        pending = [r for r in chunk if r in rows]
        for key in keys:
            lookup = {}
            for rowid in pending:
                text, reason = _key_texts(job, key, rows[rowid])
                if reason:
                    why.setdefault(rowid, "%s: %s" % (text, reason))
                else:
                    lookup[rowid] = (text, [None if v is None else canonical_text(v, kind)
                                            for v, kind in _key_values(job, key, rows[rowid])])
            missing = set(_keys_not_in_target(cur, job, target, key, lookup))
            for rowid in lookup:
                if rowid in missing:
                    why.setdefault(rowid, "%s: no such key in %s" % (lookup[rowid][0], target.display))
            pending = [r for r in pending if r not in lookup or r in missing]
        out.extend((rowid, why[rowid]) for rowid in pending + [r for r in chunk if r not in rows])
    return sorted(out)


def _key_values(job, key, row):
    return [(row[job.names.index(c)], job.kinds[job.names.index(c)]) for c in key.columns]


def _key_texts(job, key, row):
    """('(a=.., b=..)', reason the key can match nothing or None)."""
    values = _key_values(job, key, row)
    shown = "(%s)" % ", ".join("%s=%s" % (c, canonical_text(v, kind)) for c, (v, kind) in zip(key.columns, values))
    if any(isinstance(v, Invalid) for v, _kind in values):
        return shown, "unconvertible key"
    if not key.nulls_not_distinct and any(v is None for v, _kind in values):
        return shown, "a key holding NULL equals no other row"
    return shown, None


def _keys_not_in_target(cur, job, target, key, lookup):
    """Rowids of lookup {rowid: (shown, [key texts])} whose key no target row has."""
    if not lookup:
        return []
    cols = ["c%d" % i for i in range(len(key.columns))]
    match = []
    for col, name in zip(cols, key.columns):
        left = sql.SQL("t.{}").format(sql.Identifier(name))
        right = sql.SQL("CAST(k.{} AS {})").format(sql.Identifier(col), sql.SQL(target.columns[name].type.sql_type))
        if key.nulls_not_distinct:
            match.append(sql.SQL("({} = {} OR ({} IS NULL AND k.{} IS NULL))").format(
                left, right, left, sql.Identifier(col)))
        else:
            match.append(sql.SQL("{} = {}").format(left, right))
    rowids = sorted(lookup)
    query = sql.SQL("SELECT k.i FROM unnest({}) AS k(i, {}) WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE {}) "
                    "ORDER BY k.i").format(
        sql.SQL(", ").join([sql.SQL("%s::bigint[]")] + [sql.SQL("%s::text[]")] * len(cols)),
        sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        _ident(job.target_schema, job.target_name), sql.SQL(" AND ").join(match))
    cur.execute(query, [rowids] + [[lookup[r][1][i] for r in rowids] for i in range(len(cols))])
    return [r[0] for r in cur.fetchall()]


# -- content ----------------------------------------------------------------------------------


def check_content(results, conn, job, plan, *, src_path, source_result, max_differences):
    """Fingerprints of both sides; on mismatch, a keyed comparison naming keys and columns."""
    table = plan.source_table
    name = "content %s" % table
    if source_result[0] != "ok":
        results.error(name, "content", "critical", "reading SQLite %s failed: %s" % (table, source_result[1]), table)
        return
    src_fp = source_result[1]
    dst_fp = fingerprint_target(conn, job)
    diffs = compare_fingerprints(src_fp, dst_fp)
    dropped = (" Columns not migrated by the mapping: %s." % ", ".join(plan.dropped)) if plan.dropped else ""
    data = {"source": src_fp.summary(), "target": dst_fp.summary(), "excluded_source_rows": len(src_fp.excluded),
            "target_read_path": getattr(dst_fp, "read_path", "rows")}
    wrong = _wrong_survivors(job, getattr(src_fp, "wrong_survivors", []))
    if wrong:
        data["wrong_survivors"] = len(wrong)
        results.add(name, "content", "critical", False, wrong, table, data)
        return
    if not diffs:
        results.add(name, "content", "critical", True,
                    "%d rows x %d columns identical after normalization (%d rejected/duplicate source rows excluded).%s"
                    % (src_fp.rows, len(job.names), len(src_fp.excluded), dropped), table, data)
        return
    cols = sorted({d[0] for d in diffs if d[0] != "*"})
    keyed = keyed_differences(src_fp, dst_fp)
    findings = explain(job, src_fp, dst_fp, keyed, path=src_path, conn=conn, limit=max_differences)
    counts = {k: len(v) for k, v in keyed.items()}
    summary = ", ".join("%d %s" % (v, k) for k, v in counts.items() if v)
    first = "; ".join(f["text"] for f in findings[:max_differences])
    detail = "fingerprints differ in column(s) %s (%s)%s%s" % (
        ", ".join(cols) or "-", ", ".join("%s %s: %s != %s" % (c, f, a, b) for c, f, a, b in diffs[:6]),
        ("; keyed comparison: " + summary) if summary else "",
        (". First differences: " + first) if first else "")
    data.update({"differing_columns": cols, "keyed": counts, "findings": findings[:max_differences]})
    results.add(name, "content", "critical", False, detail, table, data)


def _wrong_survivors(job, pairs):
    """Detail naming duplicates whose kept row is not the one the migration's rules keep, or ''."""
    if not pairs:
        return ""
    rule = ("on_conflict=update keeps the highest rowid (INSERT OR REPLACE)" if job.latest_wins
            else "on_conflict=skip keeps the first row")
    return "%d duplicate(s) kept the wrong row (%s): %s" % (len(pairs), rule, "; ".join(
        "SQLite rowid %d was counted as a duplicate, rowid %d was kept" % pair for pair in pairs[:EXAMPLES]))


# -- integrity --------------------------------------------------------------------------------


def check_key_nulls(results, cur, plan, target):
    """NULLs in the natural key: impossible where the catalog says NOT NULL; where the unique
    key has a nullable column (SQLite allowed NULL there too), they are counted and reported,
    and pass: such rows are distinct from every other row (unless NULLS NOT DISTINCT)."""
    table = plan.target_name
    name = "no NULL keys %s" % table
    keys = list(plan.keys)
    if not keys:
        results.add(name, "integrity", "critical", True, "no natural key (no unique key loaded from the source)", table)
        return
    nullable = [k for k in keys if not target.columns[k].type.not_null]
    if not nullable:
        results.add(name, "integrity", "critical", True, "key (%s) is NOT NULL in the catalog" % ", ".join(keys), table)
        return
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {} IS NULL)").format(sql.Identifier(k)) for k in nullable),
        _ident(plan.target_schema, table))
    cur.execute(query)
    counts = dict(zip(nullable, cur.fetchone()))
    found = {k: v for k, v in counts.items() if v}
    nnd = bool(plan.unique_key and plan.unique_key.nulls_not_distinct)
    semantics = "NULLS NOT DISTINCT: equal NULLs collide" if nnd else "NULLs are distinct: never duplicates"
    detail = ("NULL in nullable key column(s), as in the source: %s (%s)"
              % (", ".join("%s %d" % kv for kv in found.items()), semantics)) if found else \
        "no NULLs in key (%s)" % ", ".join(keys)
    results.add(name, "integrity", "critical", True, detail, table, {"nulls": counts})


def check_duplicate_keys(results, cur, plan, target):
    table = plan.target_name
    name = "no duplicate keys %s" % table
    keys = list(plan.keys)
    if not keys:
        results.add(name, "integrity", "critical", True,
                    "no unique key loaded from the source: repeated rows are allowed, none was dropped", table)
        return
    enforced = target.unique_for(keys)
    if enforced:
        results.add(name, "integrity", "critical", True, "enforced by unique index %s%s" % (
            enforced.name, " (NULLS NOT DISTINCT)" if enforced.nulls_not_distinct else ""), table)
        return
    ident = _ident(plan.target_schema, table)
    cols = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
    # NULL keys never collide (SQL semantics)
    where = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in keys)
    cur.execute(sql.SQL("SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {} WHERE {} "
                        "GROUP BY {} HAVING count(*) > 1) d").format(ident, where, cols))
    groups, rows = cur.fetchone()
    examples = []
    if groups:
        cur.execute(sql.SQL("SELECT {}, count(*) FROM {} WHERE {} GROUP BY {} HAVING count(*) > 1 ORDER BY {} "
                            "LIMIT %s").format(cols, ident, where, cols, cols), (EXAMPLES,))
        examples = ["(%s) x%d" % (", ".join(str(v) for v in row[:-1]), row[-1]) for row in cur.fetchall()]
    detail = ("%d duplicated key(s) over %d rows on (%s): %s" % (groups, rows, ", ".join(keys), "; ".join(examples))
              if groups else "no duplicates on (%s) (no unique index: checked by scan)" % ", ".join(keys))
    results.add(name, "integrity", "critical", not groups, detail, table, {"duplicate_keys": groups})


def references_for(plan, mapping, target, targets):
    """[(label, [child cols], parent schema, parent table, [parent cols])] for FK-orphan checks.

    From the mapping's `references` (source table + target column -> source column),
    else the platform rule: (ticker|etf_ticker|stock_ticker, region) -> tickers(ticker, region).
    """
    out = []
    for ref in plan.spec.get("references") or []:
        rtable = ref.get("table")
        rspec = mapping.get(rtable) or {}
        rtarget = rspec.get("target") or rtable
        rschema = rspec.get("schema") or "public"
        renames = rspec.get("columns") or {}
        child = list(ref["columns"])
        parent = [renames.get(c, c) for c in ref["columns"].values()]
        out.append(("%s(%s)" % (rtarget, ", ".join(parent)), child, rschema, rtarget, parent))
    if out or plan.target_name == "tickers" or "tickers" not in targets:
        return out
    for col in ("ticker", "etf_ticker", "stock_ticker"):
        if col in target.columns and "region" in target.columns:
            out.append(("tickers(ticker, region) via %s" % col, [col, "region"], targets["tickers"][0], "tickers",
                        ["ticker", "region"]))
    return out


def _fk_enforced(cur, target, child, parent):
    cur.execute(
        """
        SELECT c.conname FROM pg_constraint c
         WHERE c.contype = 'f' AND c.convalidated AND c.conrelid = %s
           AND c.confrelid = to_regclass(%s)
           AND array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) = %s::text[]
           AND array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) = %s::text[]
        """,
        (target.oid, _qualified(cur, parent[0], parent[1]), child, parent[2]))
    row = cur.fetchone()
    return row[0] if row else None


def _qualified(cur, schema, name):
    return "%s.%s" % (sql.Identifier(schema).as_string(cur), sql.Identifier(name).as_string(cur))


def check_orphans(results, cur, plan, target, refs):
    table = plan.target_name
    for label, child, pschema, ptable, pcols in refs:
        name = "no orphans %s -> %s" % (table, label)
        if not relation_exists(cur, _qualified(cur, pschema, ptable)):
            results.add(name, "integrity", "critical", False,
                        "referenced table %s.%s does not exist" % (pschema, ptable), table)
            continue
        fk = _fk_enforced(cur, target, child, (pschema, ptable, pcols))
        if fk:
            results.add(name, "integrity", "critical", True, "enforced by validated foreign key %s" % fk, table)
            continue
        join = sql.SQL(" AND ").join(
            sql.SQL("p.{} = c.{}").format(sql.Identifier(pc), sql.Identifier(cc)) for pc, cc in zip(pcols, child))
        notnull = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(cc)) for cc in child)
        base = sql.SQL("FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
            _ident(plan.target_schema, table), notnull, _ident(pschema, ptable), join)
        cur.execute(sql.SQL("SELECT count(*) ") + base)
        orphans = cur.fetchone()[0]
        examples = []
        if orphans:
            cur.execute(sql.SQL("SELECT DISTINCT {} ").format(
                sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(cc)) for cc in child))
                + base + sql.SQL(" LIMIT %s"), (EXAMPLES,))
            examples = ["(%s)" % ", ".join(str(v) for v in row) for row in cur.fetchall()]
        detail = ("%d orphan row(s) without a matching %s, e.g. %s" % (orphans, label, ", ".join(examples))
                  if orphans else "every row has its %s (no FK constraint: checked by scan)" % label)
        results.add(name, "integrity", "critical", not orphans, detail, table, {"orphans": orphans})


# -- quality ----------------------------------------------------------------------------------


PRICE_RULES = (
    ("prices > 0", "{o} <= 0 OR {h} <= 0 OR {l} <= 0 OR {c} <= 0"),
    ("high >= low", "{h} < {l}"),
    ("close within [low, high]", "{c} < {l} OR {c} > {h}"),
)


def check_prices(results, cur, target, *, schema, table, severity):
    cols = target.columns
    if not all(c in cols for c in ("open", "high", "low", "close")):
        return
    names = dict(o=sql.Identifier("open"), h=sql.Identifier("high"), l=sql.Identifier("low"), c=sql.Identifier("close"))
    rules = [(label, sql.SQL(expr).format(**names)) for label, expr in PRICE_RULES]
    if "volume" in cols:
        rules.append(("volume >= 0", sql.SQL("{} < 0").format(sql.Identifier("volume"))))
    query = sql.SQL("SELECT count(*), {} FROM {}").format(
        sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {})").format(expr) for _label, expr in rules),
        _ident(schema, table))
    cur.execute(query)
    row = cur.fetchone()
    total = row[0]
    for (label, _expr), bad in zip(rules, row[1:]):
        pct = (100.0 * bad / total) if total else 0.0
        detail = "%d of %d rows violate %s (%.3f%%)" % (bad, total, label, pct) if bad else \
            "all %d rows satisfy %s" % (total, label)
        results.add("%s %s" % (table, label), "quality", severity, not bad, detail, table, {"violations": bad})


def check_ticker_formats(results, cur, schema, table, severity):
    cur.execute(sql.SQL("SELECT region, count(*) FROM {} GROUP BY region ORDER BY region").format(
        _ident(schema, table)))
    regions = cur.fetchall()
    for region, total in regions:
        name = "ticker format %s" % region
        pattern = TICKER_PATTERNS.get(region)
        if pattern is None:
            results.add(name, "quality", severity, False,
                        "%d tickers in unknown region %r (known: %s)" % (total, region, ", ".join(TICKER_PATTERNS)),
                        table)
            continue
        cur.execute(sql.SQL("SELECT count(*) FILTER (WHERE ticker !~ %s), "
                            "(array_agg(ticker ORDER BY ticker) FILTER (WHERE ticker !~ %s))[1:5] "
                            "FROM {} WHERE region = %s").format(_ident(schema, table)), (pattern, pattern, region))
        bad, examples = cur.fetchone()
        shown = ", ".join(examples or [])
        detail = ("%d of %d %s tickers do not match %s, e.g. %s" % (bad, total, region, pattern, shown)
                  if bad else "all %d %s tickers match %s" % (total, region, pattern))
        results.add(name, "quality", severity, not bad, detail, table, {"violations": bad})
