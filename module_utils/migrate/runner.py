"""Orchestrates a SQLite -> PostgreSQL migration (the logic behind library/sqlite_migrate.py).

``run_migration(params, check_mode)`` returns the module result or raises
``MigrationError`` (whose ``result`` carries what was done before the failure).
"""

from __future__ import annotations

import collections
import json
import time
import uuid
from contextlib import closing

from ansible.module_utils.convert.types import Options
from ansible.module_utils.core.atomic_file import atomic_text_file
from ansible.module_utils.core.postgres import ConnectionFailure, connect, rollback_quietly
from ansible.module_utils.core.quant_meta import (
    LockBusy,
    TruncateRefused,
    acquire_lock,
    adopt_target,
    dropped_indexes,
    ensure_schema,
    fetch_rejects,
    finish_checkpoint,
    forget_dropped_index,
    get_checkpoint,
    release_lock,
    remember_dropped_index,
    reset_tables,
    start_checkpoint,
    truncate_targets,
)
from ansible.module_utils.core.sqlite_source import SourceError, open_source
from ansible.module_utils.mapping.legacy import LegacyError, extend_migration
from ansible.module_utils.mapping.names import check_no_fold_collision
from ansible.module_utils.mapping.plan import MappingError, build_plan, epoch_note, epoch_readings, table_order
from ansible.module_utils.mapping.target import (
    TargetError,
    count_rows_exist,
    droppable_indexes,
    find_table,
    load_table,
    sync_sequences,
)
from ansible.module_utils.migrate.checkpoint_match import (
    emptied_warning,
    reload_warning,
    resume_refusal,
    target_change,
)
from ansible.module_utils.migrate.copy_engine import RowFeeder, TableWriter, check_batch, paused_gc
from ansible.module_utils.migrate.cycle_loads import CycleLoads
from ansible.module_utils.migrate.errors import MigrationError
from ansible.module_utils.migrate.index_build import build_indexes
from ansible.module_utils.migrate.reject_policy import RejectPolicy
from ansible.module_utils.migrate.table_analyze import analyze_table, hypertable_chunks

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover
    psycopg2 = None
    sql = None

DEFAULT_BATCH_ROWS = 50000
SAMPLE_REJECTS = 20
VIEW_REASON = ("a view: it holds no rows of its own (the rows it shows are migrated with its tables); "
               "recreate it in PostgreSQL if needed")


def default_mapping(source):
    """Identity mapping for every table of the source (used when no mapping is given)."""
    return {name: {} for name in source.tables()}


def _rate(rows, seconds):
    return round(rows / seconds, 1) if seconds > 0 else 0.0


def drops_indexes(setting, plan):
    """Whether an empty target's non-unique indexes are dropped for the load (drop_indexes: auto).

    Not for a hypertable loaded in time order: each chunk is filled completely
    before the next one starts, so its indexes are small and stay in memory
    while the server maintains them on the core the Python side leaves free;
    rebuilding them afterwards is a second pass over every chunk. Measured on
    the full-size sample (2 cores): 0.6-1.2 s faster for ohlcv_data.
    """
    return setting == "auto" and not (plan.target.is_hypertable and plan.order_by)


def _table_result(plan, source_rows, copied, rejected, duplicates, seconds, status):  # noqa: PLR0917
    return {
        "target": plan.target_display,
        "source_rows": source_rows,
        "copied_rows": copied,
        "rejected_rows": rejected,
        "duplicate_rows": duplicates,
        "seconds": round(seconds, 3),
        "rows_per_second": _rate(copied + rejected + duplicates, seconds),
        "status": status,
        "rejects_sample": [],
    }


# Where a table's load starts: its run id, the source rows already processed (after_rowid is the
# last one's rowid) and their (copied, rejected, duplicates) counts; resumed when continuing one.
_LoadStart = collections.namedtuple("_LoadStart", "run_id done_rows after_rowid base resumed")


class Migration(CycleLoads):
    def __init__(self, params, check_mode=False, log=None):
        self.params = params
        self.check_mode = check_mode
        self.log = log or (lambda msg: None)
        self.queries = []
        self.result = {"changed": False, "tables": {}, "total_copied": 0, "total_rejected": 0,
                       "total_duplicates": 0, "queries": self.queries, "check_mode": check_mode}
        self.options = Options(empty_as_null=params.get("empty_as_null", True),
                               invalid_utf8=params.get("invalid_utf8") or "reject",
                               copy_format=params.get("copy_format") or "auto",
                               float4_rounding=params.get("float4_rounding") or "reject")
        self.on_conflict = params.get("on_conflict") or "error"
        self.policy = RejectPolicy.from_params(params)
        self.conn = None
        self.source = None
        self.run_id = uuid.uuid4().hex[:16]
        self.result["run_id"] = self.run_id

    # -- setup ---------------------------------------------------------------------------

    def prepare(self):
        try:
            self.source = open_source(self.params["src"], quick_check=self.params.get("verify_source", True))
        except SourceError as exc:
            raise MigrationError(str(exc), self.result) from None
        mapping = self.params.get("mapping") or default_mapping(self.source)
        if not isinstance(mapping, dict):
            raise MigrationError("mapping must be a dict of source table -> spec", self.result)
        try:
            order = table_order(mapping, self.params.get("tables"))
        except MappingError as exc:
            raise MigrationError("checking the mapping: %s" % exc, self.result) from None
        order = self.skip_missing_tables(order)
        try:
            self.conn = connect(self.params)
        except ConnectionFailure as exc:
            raise MigrationError(str(exc), self.result) from None
        try:  # SQLite tables outside the mapping: copied into legacy_schema, or listed with their row counts
            mapping, order = extend_migration(self, mapping, order)
        except LegacyError as exc:
            raise MigrationError("legacy tables: %s" % exc, self.result) from None
        lookups = {}
        self.plans = []
        resolved = []
        with self.conn.cursor() as cur:
            for name in order:
                try:
                    plan = self.plan_table(cur, name, mapping.get(name) or {}, lookups)
                    resolved.append((name, plan.target_display, plan.target_folded))
                    check_no_fold_collision(resolved, "source tables")
                except (TargetError, MappingError, SourceError) as exc:
                    raise MigrationError("checking the mapping for table %s: %s" % (name, exc), self.result) from None
                for text in plan.warnings:
                    self.warn(text)
                self.plans.append(plan)
            self.arrange_load_order(cur, mapped=bool(self.params.get("mapping")))
        self.conn.rollback()

    def plan_table(self, cur, name, spec, lookups):
        """The table's plan; a target the mapping does not name is found by name (mapping/names.py)."""
        schema = spec.get("schema") or "public"
        target_name, folded = find_table(cur, schema, spec.get("target") or name, explicit=bool(spec.get("target")))
        target = load_table(cur, schema, target_name)
        plan = build_plan(name, dict(spec, target=target_name), self.source, target, self.options, lookups)
        plan.target_folded = folded
        plan.rowless_key = self.source.rowless_key(name)  # SourceError when neither rowid nor primary key
        if plan.rowless_key:
            plan.notes.append(
                "table %s has no rowid to read (a WITHOUT ROWID table, or one declaring columns named rowid, "
                "_rowid_ and oid): streamed in primary-key order (%s), a rerun with resume: true "
                "continues by position in that order (refused if the file changed); source_rowid in its rejects "
                "is that 1-based position" % (name, ", ".join(plan.rowless_key)))
        if folded:
            plan.notes.append("table %s: loaded into %s, PostgreSQL's unquoted (lower-case) form of its name"
                              % (name, target.display))
        if self.on_conflict == "update" and plan.keys and not target.unique_for(plan.keys):
            raise MappingError("on_conflict=update needs a unique index on (%s) in %s"
                               % (", ".join(plan.keys), target.display))
        return plan

    def skip_missing_tables(self, order):
        """Tables of the mapping the file does not have (an older schema stage): reported, 0 rows."""
        present = []
        views = set(self.list_views())
        for name in order:
            if self.source.has_table(name):
                present.append(name)
                continue
            if name in views:
                self.warn("%s: %s; skipped" % (name, VIEW_REASON))
                continue
            text = ("%s: the SQLite file has no table %s (older schema stage); skipped, 0 rows"
                    % (name, name))
            self.warn(text)
            self.result["tables"][name] = {
                "target": None, "source_rows": 0, "copied_rows": 0, "rejected_rows": 0, "duplicate_rows": 0,
                "seconds": 0.0, "rows_per_second": 0.0, "status": "missing", "rejects_sample": [],
                "warnings": [text], "notes": []}
        return present

    def list_views(self):
        """The file's views, listed in the result as skipped (with the reason), never copied."""
        views = self.source.views()
        if views:
            self.result["skipped_views"] = {name: VIEW_REASON for name in views}
        return views

    def warn(self, text):
        """A module-level warning (result `warnings`; the module shows each one)."""
        self.result.setdefault("warnings", []).append(text)

    def table_done(self, plan, res):
        """Attach the plan's warnings and notes to the table's result and apply the reject policy."""
        res["warnings"] = list(plan.warnings)
        res["notes"] = list(plan.notes)
        self.result["tables"][plan.source_table] = res
        failure = self.policy.judge(plan.source_table, res, self.check_mode)
        if res.get("reject_warning"):
            self.warn(res["reject_warning"])
            res["warnings"].append(res.pop("reject_warning"))
        return failure

    # -- run ----------------------------------------------------------------------------

    def run(self):
        try:
            self.prepare()
            if self.check_mode:
                self.dry_run()
            else:
                self.real_run()
        except psycopg2.Error as exc:  # a statement no step above explains (e.g. the server went away)
            if self.conn is not None:
                rollback_quietly(self.conn)
            raise MigrationError("talking to PostgreSQL: %s" % self.pg_error(exc), self.result) from None
        except MigrationError:
            self.totals()
            raise
        finally:
            self.close()
        self.totals()
        return self.result

    def totals(self):
        tables = self.result["tables"].values()
        self.result["total_copied"] = sum(t["copied_rows"] for t in tables)
        self.result["total_rejected"] = sum(t["rejected_rows"] for t in tables)
        self.result["total_duplicates"] = sum(t["duplicate_rows"] for t in tables)

    def dry_run(self):
        """Check mode: every table is read and converted; the reject policy is judged over all of them."""
        bad = []
        for plan in self.plans:
            self.dry_run_table(plan)
            failure = self.table_done(plan, self.result["tables"][plan.source_table])
            if failure:
                bad.append("%s: %s" % (plan.source_table, failure))
        if bad:
            raise MigrationError("migration would reject rows (nothing was written): %s" % "; ".join(bad),
                                 self.result)

    def close(self):
        if self.conn is not None and not self.conn.closed:
            try:
                self.conn.rollback()
                if not self.check_mode:
                    release_lock(self.conn)
            except psycopg2.Error:
                pass
            self.conn.close()
        if self.source is not None:
            self.source.close()

    def real_run(self):
        try:
            if ensure_schema(self.conn):
                self.queries.append("CREATE SCHEMA IF NOT EXISTS quant_meta (+ checkpoint/reject tables)")
            acquire_lock(self.conn, self.params.get("lock_timeout") or 0)
        except LockBusy as exc:
            raise MigrationError(str(exc), self.result) from None
        except psycopg2.Error as exc:
            raise MigrationError("preparing quant_meta bookkeeping: %s" % _pg_msg(exc), self.result) from None
        if self.params.get("truncate"):
            self.truncate()
        self.repair_set_aside()
        try:
            self.load_tables()
        except MigrationError as exc:  # a cycle's keys still set aside: say so and how they come back
            raise MigrationError(str(exc) + self.cycle_guard.pending_hint(), self.result) from None
        try:
            self.write_rejects_file()
        except psycopg2.Error as exc:
            rollback_quietly(self.conn)
            raise MigrationError("reading quant_meta.migration_rejects for the rejects file: %s"
                                 % self.pg_error(exc), self.result) from None

    def load_tables(self):
        """Load the tables in load order; a foreign-key cycle's keys are set aside around its tables."""
        for pos, plan in enumerate(self.plans):
            try:
                self.set_aside_before(pos)
                self.load_table(plan)
                failure = self.table_done(plan, self.result["tables"][plan.source_table])
                if failure:
                    self.stop_after(pos, failure)
                self.restore_after(pos)
            except psycopg2.Error as exc:
                rollback_quietly(self.conn)
                raise MigrationError("loading table %s into %s: %s" % (
                    plan.source_table, plan.target_display, self.pg_error(exc)), self.result) from None
            except SourceError as exc:
                rollback_quietly(self.conn)
                raise MigrationError(str(exc), self.result) from None

    def stop_after(self, pos, failure):
        """Fail right after a table whose rejects break the policy, before the next table loads."""
        name = self.plans[pos].source_table
        loaded = [p.source_table for p in self.plans[:pos]]
        pending = [p.source_table for p in self.plans[pos + 1:]]
        try:
            self.write_rejects_file()
        except psycopg2.Error as exc:
            rollback_quietly(self.conn)
            failure += " (writing the rejects file failed too: %s)" % self.pg_error(exc)
        raise MigrationError(self.policy.failure_message(name, failure, loaded, pending), self.result)

    def pg_error(self, exc):
        """The PostgreSQL error in one line; a lost connection says so and how to continue."""
        text = _pg_msg(exc)
        if self.conn is not None and self.conn.closed:
            text = "lost the connection to PostgreSQL (%s); %s" % (
                text, "nothing was changed: rerun" if self.check_mode
                else "every committed batch is kept: rerun with resume: true to continue")
        return text

    def truncate(self):
        with self.conn.cursor() as cur:
            try:
                query = truncate_targets(cur, [plan.target for plan in self.plans])
            except TruncateRefused as exc:
                rollback_quietly(self.conn)
                raise MigrationError(str(exc), self.result) from None
            except psycopg2.Error as exc:
                rollback_quietly(self.conn)
                raise MigrationError("truncating the target tables: %s" % self.pg_error(exc), self.result) from None
            reset_tables(cur, [p.source_table for p in self.plans])
            self.queries.append(query)
        self.conn.commit()
        self.result["changed"] = True

    def load_table(self, plan):
        name = plan.source_table
        fingerprint = self.source.fingerprint()
        cp = self.matching_checkpoint(plan, get_checkpoint(self.conn, name))
        source_rows = self.source.count(name)
        if self.finished_from_this_file(cp):
            self.skip_migrated(plan, cp)
            return
        interrupted = self.interrupted_load(name, cp, fingerprint)
        started = time.monotonic()
        start = self.begin_load(plan, interrupted, fingerprint, source_rows)
        self.result["changed"] = True
        copied, rejected, duplicates = self.copy_rows(plan, start, source_rows)
        self.note_epochs(plan)
        seconds = time.monotonic() - started
        self.finish_load(plan)
        total_seconds = time.monotonic() - started
        res = _table_result(plan, source_rows, copied, rejected, duplicates, total_seconds,
                            "resumed" if start.resumed else "copied")
        res["load_seconds"] = round(seconds, 3)
        res["rejects_sample"] = self.sample_rejects(name, start.run_id)
        res["run_id"] = start.run_id
        if copied + rejected + duplicates != source_rows:
            res["accounting_error"] = "copied + rejected + duplicates (%d) != source rows (%d)" % (
                copied + rejected + duplicates, source_rows)
        self.result["tables"][name] = res
        self.log("%s: %d copied, %d rejected, %d duplicates in %.1fs" % (name, copied, rejected, duplicates,
                                                                        total_seconds))

    def note_epochs(self, plan):
        """After a table's rows: one note per column whose numbers were read as Unix epochs, naming the
        first such value and its source rowid (one lookup per such column, none per value)."""
        for pc, value, moment in epoch_readings(plan):
            rowid = None
            if not plan.rowless_key and pc.source:
                rowid = self.source.first_rowid_with(plan.source_table, pc.source, value, plan.order_by)
            plan.notes.append(epoch_note(pc, value, moment, rowid))

    def finished_from_this_file(self, cp):
        """Whether the checkpoint records a finished load from this very source file."""
        return bool(cp and cp["status"] == "done" and cp["source_fingerprint"] == self.source.fingerprint())

    def matching_checkpoint(self, plan, cp):
        """The checkpoint when it describes a load into this very target; a finished load into another
        (or a recreated) table is forgotten with a warning, an interrupted one stops the run."""
        if not cp:
            return cp
        change = target_change(cp, plan.target)
        if change is None:
            if cp.get("target_oid") is None and not self.check_mode:
                with self.conn.cursor() as cur:
                    adopt_target(cur, plan.source_table, plan.target)
                self.conn.commit()
            return cp
        if cp["status"] == "running":
            raise MigrationError(resume_refusal(plan.source_table, cp, change), self.result)
        text = reload_warning(plan.source_table, cp, change)
        self.warn(text)
        plan.warnings.append(text)
        return None

    def skip_migrated(self, plan, cp):
        """The table was already migrated from this very file: report that load instead (indexes it
        dropped and did not rebuild are rebuilt)."""
        name = plan.source_table
        self.rebuild_indexes(plan)
        res = _table_result(plan, cp["source_rows"], cp["copied_rows"], cp["rejected_rows"], cp["duplicate_rows"],
                            cp["seconds"], "skipped")
        res["note"] = "already migrated from this source (run_id %s); truncate: true reloads it" % cp["run_id"]
        if cp["copied_rows"] and not self.target_has_rows(plan):
            res["note"] = emptied_warning(name, cp, plan.target)
            self.warn(res["note"])
        res["run_id"] = cp["run_id"]
        res["rejects_sample"] = self.sample_rejects(name, cp["run_id"])
        self.result["tables"][name] = res
        self.log("%s: already migrated, skipped" % name)

    def target_has_rows(self, plan):
        with self.conn.cursor() as cur:
            found = count_rows_exist(cur, plan.target)
        self.conn.rollback()
        return found

    def interrupted_load(self, name, cp, fingerprint):
        """The checkpoint of an interrupted load to continue, or None to start afresh. An interrupted
        load is continued only with resume: true and only from the same source file."""
        if not (cp and cp["status"] == "running"):
            return None
        if not self.params.get("resume"):
            raise MigrationError(
                "table %s has an interrupted load (run_id %s, %d of %d rows processed); rerun with resume: true "
                "to continue it or truncate: true to start over" % (
                    name, cp["run_id"], cp["copied_rows"] + cp["rejected_rows"] + cp["duplicate_rows"],
                    cp["source_rows"]), self.result)
        if cp["source_fingerprint"] != fingerprint:
            raise MigrationError(
                "table %s: the source file changed since the interrupted load (was %s, now %s); "
                "use truncate: true to start over" % (name, cp["source_fingerprint"], fingerprint), self.result)
        return cp

    def begin_load(self, plan, interrupted, fingerprint, source_rows):
        """Where the rows start: after an interrupted load's last batch, or from the top with a new
        checkpoint (and an empty target's droppable indexes dropped)."""
        with self.conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            if interrupted is not None:
                cp = interrupted
                base = (cp["copied_rows"], cp["rejected_rows"], cp["duplicate_rows"])
                start = _LoadStart(cp["run_id"], sum(base), cp["last_rowid"], base, True)
            else:
                start = _LoadStart(self.run_id, 0, None, (0, 0, 0), False)
                start_checkpoint(cur, plan.source_table, plan.target, self.params["src"], fingerprint,
                                 source_rows, self.run_id)
                if drops_indexes(self.params.get("drop_indexes", "auto"), plan) \
                        and not count_rows_exist(cur, plan.target):
                    self.drop_indexes(cur, plan)
            self.conn.commit()
        return start

    def drop_indexes(self, cur, plan):
        """Drop the target's droppable indexes for the load, remembered so rebuild_indexes recreates them."""
        for idx_name, definition in droppable_indexes(cur, plan.target, plan.keys):
            remember_dropped_index(cur, plan.source_table, idx_name, definition)
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(plan.target.schema, idx_name)))
            self.queries.append("DROP INDEX %s.%s" % (plan.target.schema, idx_name))

    def copy_rows(self, plan, start, source_rows):
        """Stream the source rows into the target batch by batch; returns (copied, rejected, duplicates),
        counting the interrupted load's rows too."""
        name = plan.source_table
        by_position = bool(plan.order_by or plan.rowless_key)  # resumed by skipping, not by rowid
        rows = self.source.iter_rows(name, plan.source_columns, plan.order_by,
                                     after_rowid=None if by_position else start.after_rowid,
                                     skip=start.done_rows if by_position else 0, key=plan.rowless_key)
        feeder = RowFeeder(plan, rows, plan.on_conflict or self.on_conflict)
        writer = TableWriter(self.conn, plan, plan.on_conflict or self.on_conflict, start.run_id, self.queries)
        batch_rows = int(plan.batch_rows or self.params.get("batch_rows") or DEFAULT_BATCH_ROWS)
        copied, rejected, duplicates = start.base
        self.log("%s: loading %d rows into %s%s" % (name, source_rows, plan.target_display,
                                                   " (resuming after %d)" % start.done_rows if start.resumed else ""))
        with paused_gc(), closing(feeder):
            while True:
                batch = writer.write_batch(feeder, batch_rows, time.monotonic())
                if batch is None:
                    break
                copied += batch.copied
                rejected += batch.rejected
                duplicates += batch.duplicates
                if feeder.exhausted:
                    break
        return copied, rejected, duplicates

    def finish_load(self, plan):
        """After the rows: the dropped indexes back, sequences past the loaded ids, the checkpoint done,
        then ANALYZE (unless analyze: false)."""
        self.rebuild_indexes(plan)
        with self.conn.cursor() as cur:
            sync_sequences(cur, plan.target, self.queries)
            finish_checkpoint(cur, plan.source_table)
        self.conn.commit()
        if self.params.get("analyze", True):
            self.analyze(plan)

    def analyze(self, plan):
        """ANALYZE the loaded target in autocommit mode (analyze_table may spread its chunks over two connections)."""
        old = self.conn.autocommit
        self.conn.autocommit = True
        try:
            with self.conn.cursor() as cur:
                chunks = hypertable_chunks(cur, plan.target)
            how = analyze_table(self.conn, self.params, plan.target, chunks)
        finally:
            self.conn.autocommit = old
        self.queries.append("ANALYZE %s%s" % (plan.target_display, " (chunks on two connections)"
                                              if how == "parallel" else ""))

    def rebuild_indexes(self, plan):
        """Recreate the indexes dropped for the load (those still missing), then forget them."""
        with self.conn.cursor() as cur:
            dropped = dropped_indexes(cur, plan.source_table)
            missing = []
            for idx_name, definition in dropped:
                cur.execute("SELECT to_regclass(%s)", (sql.Identifier(plan.target.schema, idx_name).as_string(cur),))
                if cur.fetchone()[0] is None:
                    missing.append(definition)
        self.conn.commit()
        if not dropped:
            return
        build_indexes(self.conn, self.params, missing)
        self.queries.extend(missing)
        with self.conn.cursor() as cur:
            for idx_name, _definition in dropped:
                forget_dropped_index(cur, plan.source_table, idx_name)
        self.conn.commit()

    def sample_rejects(self, table, run_id):
        if self.check_mode:
            return []
        out = []
        for rec in fetch_rejects(self.conn, table, run_id):
            out.append(rec)
            if len(out) >= SAMPLE_REJECTS:
                break
        self.conn.rollback()
        return out

    def write_rejects_file(self):
        path = self.params.get("rejects_path")
        if not path:
            return
        count = 0
        # Rejects may quote source values: readable by the owner and group only.
        with atomic_text_file(path, mode=0o640, prefix=".rejects-") as fh:
            for plan in self.plans:
                cp = get_checkpoint(self.conn, plan.source_table)
                if not cp:
                    continue
                for rec in fetch_rejects(self.conn, plan.source_table, cp["run_id"]):
                    fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
                    count += 1
                self.conn.rollback()
        self.result["rejects_path"] = path
        self.result["rejects_written"] = count

    # -- check mode ----------------------------------------------------------------------

    def dry_run_table(self, plan):
        name = plan.source_table
        started = time.monotonic()
        source_rows = self.source.count(name)
        rows = self.source.iter_rows(name, plan.source_columns, plan.order_by, key=plan.rowless_key)
        feeder = RowFeeder(plan, rows, plan.on_conflict or self.on_conflict)
        batch_rows = int(plan.batch_rows or self.params.get("batch_rows") or DEFAULT_BATCH_ROWS)
        copied = rejected = duplicates = 0
        sample = []
        with paused_gc(), closing(feeder):
            while True:
                batch = check_batch(feeder, batch_rows)
                if batch is None:
                    break
                copied += batch.copied
                rejected += batch.rejected
                duplicates += batch.duplicates
                for rec in batch.rejects:
                    if len(sample) < SAMPLE_REJECTS:
                        sample.append(dict(rec, table=name))
                if feeder.exhausted:
                    break
        self.note_epochs(plan)
        cp = None
        try:
            cp = self.matching_checkpoint(plan, get_checkpoint(self.conn, name))
        finally:
            self.conn.rollback()
        status = "would_copy"
        if self.finished_from_this_file(cp) and not self.params.get("truncate"):
            status = "would_skip"
        else:
            self.result["changed"] = True
        res = _table_result(plan, source_rows, copied, rejected, duplicates, time.monotonic() - started, status)
        res["rejects_sample"] = sample
        self.result["tables"][name] = res


def _pg_msg(exc):
    diag = getattr(exc, "diag", None)
    if diag is not None and diag.message_primary:
        text = diag.message_primary
        if diag.message_detail:
            text += " (%s)" % diag.message_detail
        return text
    return str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)


def run_migration(params, check_mode=False, log=None):
    """Run (or, in check mode, simulate) a migration; returns the module result."""
    return Migration(params, check_mode=check_mode, log=log).run()
