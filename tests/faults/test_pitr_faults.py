"""Faults of point-in-time recovery with pgBackRest (issue 18, role pg_pitr).

1. The WAL archive becomes unwritable (its directories read-only) or full (the repository on a
   small tmpfs, filled up): PostgreSQL keeps running and accepting writes (the WAL waits in
   pg_wal), the validation (pg_pitr tasks_from: validate) fails as CRITICAL naming the failing
   archiver and `pgbackrest check`; once the fault is removed the archiver catches up by itself,
   validation passes, and a restore to `latest` brings back every row written during the fault.
2. kill -9 of every pgbackrest process of a running full backup, early (its directory just
   created) and while it copies data files (over 8 MB written): the next backup succeeds, `pgbackrest info` lists only
   complete backups, `pgbackrest verify` finds the repository consistent, and a restore to
   `latest` gives every row.

Each test runs on a throw-away cluster of its own (test_pitr.prepared_cluster: run as the postgres
user, pgbackrest as postgres too) and records one row through `fault_report`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from ansible.module_utils.platform_plan.pitr import verify_summary
from faultlib import WAIT, wait_until
from integration.test_pitr import STANZA, ok, prepared_cluster, validate, wait_archived

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

DB = "pitr_faults"
# pgbackrest check waits this long for its WAL segment (default 60 s): a failing check is quick.
CHECK_TIMEOUT = 10


def flat(text):
    return " ".join(text.split())


def pgbackrest(pitr, *args, check=True):
    cmd = ["runuser", "-u", "postgres", "--", "pgbackrest", "--config=%s" % pitr.conf, "--stanza=%s" % STANZA,
           *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check:
        assert out.returncode == 0, "pgbackrest %s: %s %s" % (" ".join(args), out.stdout[-2000:], out.stderr[-2000:])
    return out


def archiver(pitr):
    row = pitr.sql("SELECT archived_count, failed_count, last_archived_wal, last_failed_wal, "
                   "coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) "
                   "FROM pg_stat_archiver", db="postgres")[0]
    return dict(zip(("archived", "failed", "last_archived", "last_failed", "failing"), row))


@contextmanager
def archiving_cluster(repo_tmpfs_mb=0):
    """A throw-away cluster with WAL archiving, a first full backup and a table `ticks` in DB
    (with TimescaleDB, which the restore checks). repo_tmpfs_mb: the repository on a tmpfs of
    that size, unmounted before the cluster is removed."""
    with prepared_cluster() as pitr:
        if repo_tmpfs_mb:
            pitr.repo.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0750" % repo_tmpfs_mb, "tmpfs",
                            str(pitr.repo)], check=True)
        try:
            ok(pitr.play("playbooks/pitr.yml"))
            with open(pitr.conf, "a", encoding="utf-8") as fh:  # [stanza] is the last section
                fh.write("archive-timeout=%d\n" % CHECK_TIMEOUT)
            conn = pitr.server.connect("postgres")
            conn.cursor().execute("CREATE DATABASE %s" % DB)
            conn.close()
            pitr.sql("CREATE EXTENSION IF NOT EXISTS timescaledb", db=DB)
            pitr.sql("CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), "
                     "payload text NOT NULL)", db=DB)
            yield pitr
        finally:
            if repo_tmpfs_mb:
                subprocess.run(["umount", str(pitr.repo)], check=False)


def write_rows(pitr, n, tag):
    pitr.sql("INSERT INTO ticks (payload) SELECT %s || g FROM generate_series(1, %d) g" % (
        "'%s-'" % tag, n), db=DB)


def count(pitr):
    return pitr.sql("SELECT count(*) FROM ticks", db=DB)[0][0]


def pitr_validation(pitr):
    return validate(pitr)


def restore_latest(pitr):
    """restore_pitr.yml to latest: what the archive really holds."""
    ok(pitr.play("playbooks/restore_pitr.yml", restore_target_time="latest", restore_confirm="yes",
                 pg_pitr_restore_check_db=DB, pg_pitr_restore_check_roles=["postgres"]))


def wait_failing(pitr):
    """Write a segment's worth of WAL and switch until the archiver reports the failure."""
    def probe():
        pitr.sql("SELECT pg_switch_wal()", db="postgres")
        return archiver(pitr)["failing"]
    return wait_until("the archiver failing", probe, timeout=WAIT, interval=1)


def wait_caught_up(pitr):
    """After the fault is gone: every segment written so far reaches the repository. A new
    segment wakes the archiver, which then pushes the waiting ones first."""
    (target,) = pitr.sql("SELECT pg_walfile_name(pg_switch_wal())", db="postgres")[0]

    def probe():
        state = archiver(pitr)
        if not state["failing"] and (state["last_archived"] or "") >= target:
            return True
        write_rows(pitr, 10, "wake")
        pitr.sql("SELECT pg_switch_wal()", db="postgres")
        return False
    # The archiver sleeps up to 60 s after three failed tries, unless a new segment wakes it.
    return wait_until("the archiver catching up", probe, timeout=3 * WAIT, interval=2)


def archive_fault_round(pitr, fault, inject, remove, fault_report):
    """The common proof of an archive fault (see the module docstring, item 1)."""
    write_rows(pitr, 1000, "before")
    wait_archived(pitr)
    healthy = pitr_validation(pitr)
    assert healthy.rc == 0 and "critical: none" in flat(healthy.stdout), healthy.stdout[-3000:]

    inject()
    try:
        wait_failing(pitr)
        # The server keeps running and accepting writes.
        for i in range(5):
            write_rows(pitr, 2000, "during-%d" % i)
            pitr.sql("SELECT pg_switch_wal()", db="postgres")
        assert pitr.sql("SELECT pg_is_in_recovery()", db="postgres") == [(False,)]
        expected = count(pitr)
        assert expected == 11000
        bad = pitr_validation(pitr)
        text = flat(bad.stdout)
        assert bad.rc != 0, text[-3000:]
        assert "CRITICAL: pgBackRest stanza %s is not healthy" % STANZA in text, text[-3000:]
        assert "WAL archiving is failing since" in text and "pgbackrest check failed" in text, text[-3000:]
    finally:
        remove()

    wait_caught_up(pitr)
    expected = count(pitr)
    good = pitr_validation(pitr)
    assert good.rc == 0 and "critical: none" in flat(good.stdout), good.stdout[-3000:]
    restore_latest(pitr)
    lost = expected - count(pitr)
    assert lost == 0
    assert pitr.sql("SELECT count(*) FROM ticks WHERE payload LIKE 'during-%'", db=DB) == [(10000,)]
    fault_report(fault, tries=1, recovered=1, rows_lost=lost,
                 detail="server kept writing (10,000 rows during the fault); validation CRITICAL, then clean; "
                        "restore to latest exact")


def test_archive_directory_unwritable(fault_report):
    with archiving_cluster() as pitr:
        archive = pitr.repo / "archive" / STANZA

        def chmod(mode):
            subprocess.run(["chmod", "-R", mode, str(archive)], check=True)

        archive_fault_round(pitr, "pitr: WAL archive directory unwritable", lambda: chmod("a-w"),
                            lambda: chmod("u+w"), fault_report)


def test_archive_filesystem_full(fault_report):
    with archiving_cluster(repo_tmpfs_mb=128) as pitr:
        filler = pitr.repo / "filler"

        def fill():
            out = subprocess.run(["dd", "if=/dev/zero", "of=%s" % filler, "bs=1M"], capture_output=True, text=True,
                                 check=False)
            assert "No space left on device" in out.stderr, out.stderr
            assert os.statvfs(pitr.repo).f_bavail == 0

        archive_fault_round(pitr, "pitr: WAL archive filesystem full", fill, lambda: filler.unlink(missing_ok=True),
                            fault_report)


def pgbackrest_pids(conf):
    """Processes running pgbackrest with this test's configuration file (only ours)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"pgbackrest") and ("--config=%s" % conf).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def backup_dirs(pitr):
    root = pitr.repo / "backup" / STANZA
    return {p.name for p in root.iterdir() if p.is_dir() and p.name[:8].isdigit()}


def dir_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


KILL_POINTS = {
    # the new backup's directory exists: the manifest is being built, little or nothing copied
    "early": lambda path: path.exists(),
    # copying the data files: more than 8 MB of them in the repository
    "mid": lambda path: path.exists() and dir_bytes(path) > 8 * 1024 * 1024,
}


@pytest.mark.parametrize("point,next_type", [("early", "diff"), ("mid", "full")])
def test_kill_9_during_a_backup(fault_report, point, next_type):
    with archiving_cluster() as pitr:
        # Enough data that a full backup takes seconds (about 2 M rows, 250 MB).
        for i in range(4):
            write_rows(pitr, 500000, "load-%d" % i)
        expected = count(pitr)
        before = backup_dirs(pitr)
        proc = subprocess.Popen(["runuser", "-u", "postgres", "--", "pgbackrest", "--config=%s" % pitr.conf,
                                 "--stanza=%s" % STANZA, "--type=full", "backup"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            new = wait_until("the new backup's directory", lambda: backup_dirs(pitr) - before, proc=proc,
                             interval=0.005)
            (label,) = new
            wait_until("kill point %s" % point, lambda: KILL_POINTS[point](pitr.repo / "backup" / STANZA / label),
                       proc=proc, interval=0.005)
            pids = pgbackrest_pids(pitr.conf)
            assert pids, "no pgbackrest process to kill"
            os.killpg(proc.pid, signal.SIGKILL)  # runuser and its pgbackrest processes
            for pid in pgbackrest_pids(pitr.conf):  # any that left the process group
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=WAIT)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=WAIT)
        wait_until("every pgbackrest process gone", lambda: not pgbackrest_pids(pitr.conf))
        copied = dir_bytes(pitr.repo / "backup" / STANZA / label) if (pitr.repo / "backup" / STANZA / label).exists() \
            else 0
        info = json.loads(pgbackrest(pitr, "--output=json", "info").stdout)[0]
        assert [b["type"] for b in info["backup"]] == ["full"], info["backup"]  # the killed one is not listed
        # The server is not left in backup mode and keeps working.
        write_rows(pitr, 1000, "after-kill")
        expected += 1000

        started = time.monotonic()
        pgbackrest(pitr, "--type=%s" % next_type, "backup")
        seconds = time.monotonic() - started
        info = json.loads(pgbackrest(pitr, "--output=json", "info").stdout)[0]
        assert info["status"]["code"] == 0, info["status"]
        assert [b["type"] for b in info["backup"]] == ["full", next_type], info["backup"]
        verify = pgbackrest(pitr, "--output=text", "--verbose", "verify", check=False)
        summary = verify_summary(verify.stdout, verify.returncode)
        assert summary["ok"] and summary["backups_valid"] == 2, verify.stdout + verify.stderr
        pgbackrest(pitr, "check")
        report = pitr_validation(pitr)
        assert report.rc == 0 and "critical: none" in flat(report.stdout), report.stdout[-3000:]
        wait_archived(pitr)
        restore_latest(pitr)
        lost = expected - count(pitr)
        assert lost == 0
        fault_report("pitr: kill -9 of a full backup (%s), next %s" % (point, next_type), tries=1, recovered=1,
                     rows_lost=lost, detail="killed with %.1f MB in the aborted backup; next %s backup %.1f s; "
                                            "info lists only complete backups; verify ok; restore to latest exact"
                                            % (copied / 1048576.0, next_type, seconds))
        print("kill -9 %s: %.1f MB copied before the kill, next %s backup %.1f s" % (
            point, copied / 1048576.0, next_type, seconds))
