"""Versioned schema steps: apply numbered SQL steps once, detect edited ones.

Each step is {step: int, name: str, sql: str} (the SQL already rendered by
the role), optionally with earlier_checksums. Applied steps are recorded in
quant_meta.schema_steps with the sha256 of the rendered SQL's statements:
comment lines and blank lines do not count, so a step's explanation can be
corrected without touching what it did. Rules:

* a step whose number is recorded is never run again;
* a recorded step whose statements now hash differently was edited after it
  was applied -> SchemaStepError naming it (fix forward with a new step);
* a recorded checksum in an older form (the whole text's sha256, as releases
  before the statement checksum recorded it, or one of the step's
  earlier_checksums: texts known to do the same thing, like Liquibase's
  validCheckSum) is accepted and re-recorded in the current form;
* a recorded step under another name (e.g. 'aggregates_apache' vs
  'aggregates_community') means the variant changed, typically the
  TimescaleDB edition. When the step lists a transition from the recorded
  variant (transitions: {recorded name: SQL}), that SQL runs once, in its own
  transaction, and the step is recorded under its new name and checksum (an
  Apache database whose server got the Community edition); otherwise
  SchemaStepError saying so;
* new steps must come after every applied one (no inserting into history).

Every step runs in its own transaction; a session advisory lock serializes
concurrent runs against the same database.
"""

from __future__ import annotations

import hashlib

from ansible.module_utils.core.postgres import ConnectionFailure, connect, pgsql, quote_ident
from ansible.module_utils.core.quant_meta import (
    META_SCHEMA,
    create_schema_steps,
    record_schema_step,
    recorded_schema_steps,
    rerecord_schema_step,
    transition_schema_step,
)

# Arbitrary but fixed 64-bit key: "quant_meta.schema_steps" for pg_advisory_lock.
LOCK_KEY = 0x71756D657461


class SchemaStepError(Exception):
    """A step list that cannot be applied safely; the message names the step."""


def statements(sql):
    """The SQL without whole-line `--` comments, trailing blanks and empty lines.

    Only whole lines go: a `--` after code stays, and so would a line starting with
    `--` inside a multi-line string literal (a step has none)."""
    lines = (line.rstrip() for line in sql.splitlines())
    return "\n".join(line for line in lines if line and not line.lstrip().startswith("--"))


def checksum(sql):
    """sha256 hex digest of the step's statements (see statements())."""
    return hashlib.sha256(statements(sql).encode("utf-8")).hexdigest()


def text_checksum(sql):
    """sha256 of the whole rendered text: the form recorded before statement checksums."""
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def normalize_steps(steps):
    """Validate the desired steps and return them sorted, each with its checksum."""
    seen, out = {}, []
    for raw in steps or []:
        try:
            number = int(raw["step"])
            name = str(raw["name"]).strip()
            sql = raw["sql"]
            earlier = [str(c).strip().lower() for c in raw.get("earlier_checksums") or []]
            transitions = dict(raw.get("transitions") or {})
        except (KeyError, TypeError, ValueError):
            raise SchemaStepError("steps: every item needs an integer 'step', a 'name' and 'sql', got %r"
                                  % (raw,)) from None
        if number < 1 or not name or not isinstance(sql, str) or not sql.strip():
            raise SchemaStepError("step %r (%s): needs a positive number, a name and non-empty SQL" % (number, name))
        bad = [k for k, v in transitions.items() if not isinstance(v, str) or not v.strip() or k == name]
        if bad:
            raise SchemaStepError("step %d (%s): the transition from '%s' needs non-empty SQL and another variant's "
                                  "name" % (number, name, bad[0]))
        if number in seen:
            raise SchemaStepError("step %d is listed twice ('%s' and '%s')" % (number, seen[number], name))
        seen[number] = name
        digest = checksum(sql)
        out.append({"step": number, "name": name, "sql": sql, "checksum": digest,
                    "accepted": {digest, text_checksum(sql), *earlier}, "transitions": transitions})
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
            if name in step["transitions"]:
                continue  # transitions() turns it into this variant
            raise SchemaStepError(
                "step %d was applied as '%s' but now renders as '%s': the step variant changed (for edition "
                "steps this means the TimescaleDB edition changed) and the role has no transition from '%s' "
                "(transitions: %s); migrate with a new step instead"
                % (number, name, step["name"], name, ", ".join(sorted(step["transitions"])) or "none"))
        if digest not in step["accepted"]:
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


def outdated(desired, recorded):
    """Recorded steps whose checksum plan() accepted in an older form: to re-record."""
    return [s for s in desired if s["step"] in recorded and recorded[s["step"]][0] == s["name"]
            and recorded[s["step"]][1] != s["checksum"]]


def transitions(desired, recorded):
    """[(step, recorded name)] of recorded steps to turn into their desired variant, in step order."""
    return [(s, recorded[s["step"]][0]) for s in desired
            if s["step"] in recorded and recorded[s["step"]][0] != s["name"]
            and recorded[s["step"]][0] in s["transitions"]]


def _set_role(cur, session_role):
    if session_role:
        cur.execute(pgsql.SQL("SET LOCAL ROLE {}").format(quote_ident(session_role)))


def _brief(step):
    return {"step": step["step"], "name": step["name"], "checksum": step["checksum"]}


def _run_in_transaction(conn, cur, sql, *, label, session_role, record):
    """Run one step's SQL and record it in the same transaction; a failure rolls both back."""
    try:
        _set_role(cur, session_role)
        cur.execute("SET LOCAL search_path = public")
        cur.execute(sql)
        record()
        conn.commit()
    except Exception as exc:
        conn.rollback()
        detail = str(getattr(exc, "pgerror", None) or exc).strip()
        raise SchemaStepError("%s failed and was rolled back: %s" % (label, detail)) from None


def apply_steps(conn, steps, check_mode=False, session_role=None):
    """Apply pending steps on an open connection; returns the module result dict."""
    desired = normalize_steps(steps)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        conn.autocommit = False
        recorded = recorded_schema_steps(cur)
        conn.rollback()
        pending = plan(desired, recorded)
        rerecorded = [_brief(s) for s in outdated(desired, recorded)]
        if rerecorded and not check_mode:
            for step in rerecorded:
                rerecord_schema_step(cur, step["step"], step["checksum"])
            conn.commit()
        moves = transitions(desired, recorded)
        turned = [dict(_brief(s), **{"from": old}) for s, old in moves]
        applied = []
        if not check_mode:
            for step, old in moves:
                _run_in_transaction(
                    conn, cur, step["transitions"][old], session_role=session_role,
                    label="step %d's transition '%s' -> '%s'" % (step["step"], old, step["name"]),
                    record=lambda s=step: transition_schema_step(cur, s["step"], s["name"], s["checksum"]))
        if not check_mode and pending:
            _set_role(cur, session_role)
            create_schema_steps(cur)  # after _set_role: the table belongs to session_role
            conn.commit()
            for step in pending:
                _run_in_transaction(
                    conn, cur, step["sql"], session_role=session_role,
                    label="step %d '%s'" % (step["step"], step["name"]),
                    record=lambda s=step: record_schema_step(cur, s["step"], s["name"], s["checksum"]))
                applied.append(_brief(step))
        left = [] if not check_mode else [_brief(s) for s in pending]
        return {"changed": bool(pending or rerecorded or turned), "applied": applied, "pending": left,
                "rerecorded": rerecorded, "transitioned": turned,
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
                    "rerecorded": [], "transitioned": [], "recorded": [],
                    "msg": "database does not exist yet; every step would be applied"}
        raise
    try:
        return apply_steps(conn, steps, check_mode=check_mode, session_role=session_role)
    finally:
        conn.close()
