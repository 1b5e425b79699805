"""Versioned schema steps: apply numbered SQL steps once, detect edited ones.

Each step is {step: int, name: str, sql: str} (the SQL already rendered by
the role). Applied steps are recorded in quant_meta.schema_steps with the
sha256 of the rendered SQL. Rules:

* a step whose number is recorded is never run again;
* a recorded step whose rendered SQL now hashes differently was edited
  after it was applied -> SchemaStepError naming it (fix forward with a new step);
* a recorded step under another name (e.g. 'aggregates_apache' vs
  'aggregates_community') means the variant changed, typically the
  TimescaleDB edition -> SchemaStepError saying so;
* new steps must come after every applied one (no inserting into history).

Every step runs in its own transaction; a session advisory lock serializes
concurrent runs against the same database.
"""

from __future__ import annotations

import hashlib

from ansible.module_utils.core.postgres import ConnectionFailure, connect, pgsql, quote_ident
from ansible.module_utils.core.quant_meta import META_SCHEMA, create_schema_steps

# Arbitrary but fixed 64-bit key: "quant_meta.schema_steps" for pg_advisory_lock.
LOCK_KEY = 0x71756D657461


class SchemaStepError(Exception):
    """A step list that cannot be applied safely; the message names the step."""


def checksum(sql):
    """sha256 hex digest of the rendered SQL exactly as it would be executed."""
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def normalize_steps(steps):
    """Validate the desired steps and return them sorted, each with its checksum."""
    seen, out = {}, []
    for raw in steps or []:
        try:
            number = int(raw["step"])
            name = str(raw["name"]).strip()
            sql = raw["sql"]
        except (KeyError, TypeError, ValueError):
            raise SchemaStepError("steps: every item needs an integer 'step', a 'name' and 'sql', got %r"
                                  % (raw,)) from None
        if number < 1 or not name or not isinstance(sql, str) or not sql.strip():
            raise SchemaStepError("step %r (%s): needs a positive number, a name and non-empty SQL" % (number, name))
        if number in seen:
            raise SchemaStepError("step %d is listed twice ('%s' and '%s')" % (number, seen[number], name))
        seen[number] = name
        out.append({"step": number, "name": name, "sql": sql, "checksum": checksum(sql)})
    return sorted(out, key=lambda s: s["step"])


def plan(desired, recorded):
    """Steps still to apply, given recorded {step: (name, checksum)}; raises on conflicts."""
    wanted = {s["step"]: s for s in desired}
    for number in sorted(recorded):
        name, digest = recorded[number]
        step = wanted.get(number)
        if step is None:
            raise SchemaStepError("step %d '%s' is recorded in %s.schema_steps but is not among the role's "
                                  "steps (is the database newer than this role?)" % (number, name, META_SCHEMA))
        if step["name"] != name:
            raise SchemaStepError(
                "step %d was applied as '%s' but now renders as '%s': the step variant changed (for edition "
                "steps this means the TimescaleDB edition changed); migrate with a new step instead"
                % (number, name, step["name"]))
        if step["checksum"] != digest:
            raise SchemaStepError(
                "step %d '%s' was edited after it was applied (recorded checksum %s, rendered %s); revert the "
                "change or add a new step that makes it" % (number, name, digest[:12], step["checksum"][:12]))
    last = max(recorded) if recorded else 0
    pending = [s for s in desired if s["step"] not in recorded]
    early = [s for s in pending if s["step"] < last]
    if early:
        raise SchemaStepError("step %d '%s' is new but step %d is already applied; number new steps after %d"
                              % (early[0]["step"], early[0]["name"], last, last))
    return pending


def _read_recorded(cur):
    cur.execute("SELECT to_regclass('quant_meta.schema_steps') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    cur.execute("SELECT step, name, checksum FROM quant_meta.schema_steps")
    return {row[0]: (row[1], row[2]) for row in cur.fetchall()}


def _set_role(cur, session_role):
    if session_role:
        cur.execute(pgsql.SQL("SET LOCAL ROLE {}").format(quote_ident(session_role)))


def _brief(step):
    return {"step": step["step"], "name": step["name"], "checksum": step["checksum"]}


def apply_steps(conn, steps, check_mode=False, session_role=None):
    """Apply pending steps on an open connection; returns the module result dict."""
    desired = normalize_steps(steps)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        conn.autocommit = False
        recorded = _read_recorded(cur)
        conn.rollback()
        pending = plan(desired, recorded)
        applied = []
        if not check_mode and pending:
            _set_role(cur, session_role)
            create_schema_steps(cur)  # after _set_role: the table belongs to session_role
            conn.commit()
            for step in pending:
                try:
                    _set_role(cur, session_role)
                    cur.execute("SET LOCAL search_path = public")
                    cur.execute(step["sql"])
                    cur.execute("INSERT INTO quant_meta.schema_steps (step, name, checksum) VALUES (%s, %s, %s)",
                                (step["step"], step["name"], step["checksum"]))
                    conn.commit()
                except Exception as exc:
                    conn.rollback()
                    detail = str(getattr(exc, "pgerror", None) or exc).strip()
                    raise SchemaStepError("step %d '%s' failed and was rolled back: %s"
                                          % (step["step"], step["name"], detail)) from None
                applied.append(_brief(step))
        left = [] if not check_mode else [_brief(s) for s in pending]
        return {"changed": bool(pending), "applied": applied, "pending": left,
                "recorded": sorted(set(recorded) | {s["step"] for s in applied})}
    finally:
        conn.rollback()
        conn.autocommit = True
        cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def run(params, steps, check_mode=False, session_role=None):
    """Connect with module params and apply; in check mode a missing database means 'all pending'."""
    try:
        conn = connect(params)
    except ConnectionFailure as exc:
        if check_mode and "does not exist" in str(exc):
            desired = normalize_steps(steps)
            return {"changed": bool(desired), "applied": [], "pending": [_brief(s) for s in desired],
                    "recorded": [], "msg": "database does not exist yet; every step would be applied"}
        raise
    try:
        return apply_steps(conn, steps, check_mode=check_mode, session_role=session_role)
    finally:
        conn.close()
