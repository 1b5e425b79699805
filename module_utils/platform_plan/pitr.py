"""Per-platform decisions of the pg_pitr role (pgBackRest, WAL archiving, point-in-time recovery).

Pure functions, no I/O: the role asks them through the filters of
plugins/filter/pitr.py, and tests/unit/test_pitr_plan.py covers every platform
of the support matrix without any of those machines.

    pitr_plan(plan)             packages, binary, config file, log directory for a host's platform plan
    service_commands(...)       argv that stop, start and restart PostgreSQL (pg_ctlcluster, brew, pg_ctl)
    archive_command(...)        the archive_command line of postgresql.conf
    restore_options(target)     pgbackrest restore options for a target time or "latest"
    info_summary(info, stanza)  the facts of `pgbackrest info --output=json` the role acts on
    verify_summary(text, rc)    what `pgbackrest verify --output=text --verbose` found (WAL and backups)
    validation(state, ...)      the validation report's lines and its critical failures
    restore_offer(...)          what the corruption rollback tells about point-in-time recovery
"""

from __future__ import annotations

import datetime
import re

PACKAGE = "pgbackrest"
SERVICE_MODES = ("pg_ctlcluster", "brew", "pg_ctl")
# pgBackRest backup types, oldest to newest dependency: a diff needs a full, an incr any backup.
BACKUP_TYPES = ("full", "diff", "incr")
# A recovery target time as PostgreSQL parses it: date, time, optional fraction and zone.
TARGET_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?( ?(Z|UTC|[+-]\d{2}(:?\d{2})?))?$")


class PitrError(ValueError):
    """An input the role cannot act on; the message names it."""


def pitr_plan(plan):
    """pgBackRest for the host whose platform plan (module_utils/platform_plan/matrix.py) is given.

    Debian/Ubuntu: the distribution's package, /usr/bin/pgbackrest and the
    upstream default /etc/pgbackrest/pgbackrest.conf (Debian's package still ships
    the older /etc/pgbackrest.conf, which pgBackRest reads only when the new file
    is missing: every command of the role names its file with --config anyway).
    macOS: the Homebrew formula, its binary and an etc/ under the Homebrew prefix.
    """
    family = plan.get("os_family")
    if family == "Debian":
        return {
            "packages": [PACKAGE],
            "package_manager": "apt",
            "binary": "/usr/bin/pgbackrest",
            "config_file": "/etc/pgbackrest/pgbackrest.conf",
            "log_path": "/var/log/pgbackrest",
            "service_mode": "pg_ctlcluster",
            "root_group": "root",
        }
    if family == "Darwin":
        prefix = plan.get("homebrew_prefix")
        if not prefix:
            raise PitrError("macOS plan without a Homebrew prefix")
        return {
            "packages": [PACKAGE],
            "package_manager": "homebrew",
            "binary": "%s/bin/pgbackrest" % prefix,
            "config_file": "%s/etc/pgbackrest/pgbackrest.conf" % prefix,
            "log_path": "%s/var/log/pgbackrest" % prefix,
            "service_mode": "brew",
            "root_group": "wheel",
        }
    raise PitrError("no pgBackRest plan for os family '%s'" % family)


def service_commands(plan, mode="", *, data_dir="", bin_dir="", log_file=""):
    """{'stop': argv, 'start': argv, 'restart': argv, 'as_os_user': bool} for PostgreSQL on this host.

    mode '' takes the platform's: pg_ctlcluster on Debian/Ubuntu (run as root; it
    hands over to systemctl when systemd runs the cluster), brew services on macOS,
    or pg_ctl on the data directory (run as the database OS user: a server that
    no service manager knows, like a hand-built or throw-away cluster).
    """
    mode = mode or pitr_plan(plan)["service_mode"]
    if mode not in SERVICE_MODES:
        raise PitrError("unknown service mode '%s': expected one of %s" % (mode, ", ".join(SERVICE_MODES)))
    if mode == "pg_ctlcluster":
        # pg_ctlcluster stops in fast mode by default; no pg_ctl options, so that
        # under systemd it hands over to systemctl instead of bypassing the unit.
        base = ["pg_ctlcluster", str(plan["pg_version"]), plan["cluster_name"]]
        return {"stop": [*base, "stop"], "start": [*base, "start"], "restart": [*base, "restart"],
                "as_os_user": False}
    if mode == "brew":
        formula = plan["service_name"]
        brew = "%s/bin/brew" % plan["homebrew_prefix"]
        commands = {action: [brew, "services", action, formula] for action in ("stop", "start", "restart")}
        commands["as_os_user"] = True  # Homebrew refuses root
        return commands
    pg_ctl = ["%s/pg_ctl" % (bin_dir or plan["bin_dir"]), "-D", data_dir or plan["data_dir"], "-w", "-t", "300"]
    log = ["-l", log_file] if log_file else []
    return {"stop": [*pg_ctl, "stop", "-m", "fast"], "start": [*pg_ctl, "start", *log],
            "restart": [*pg_ctl, "restart", "-m", "fast", *log], "as_os_user": True}


def archive_command(binary, config_file, stanza):
    """archive_command of postgresql.conf: push each finished WAL segment to the stanza's repository."""
    for name, value in (("binary", binary), ("config file", config_file), ("stanza", stanza)):
        if not value or re.search(r"[\s'\"\\%]", str(value)):
            raise PitrError("%s '%s' cannot go into archive_command (empty, or a space, quote, %% or backslash)"
                            % (name, value))
    return "%s --config=%s --stanza=%s archive-push %%p" % (binary, config_file, stanza)


def restore_options(target, *, delta=False, target_action="promote"):
    """pgbackrest restore options for a target: 'latest' (replay every archived WAL) or a time.

    A time recovers every transaction committed up to that moment (inclusive,
    PostgreSQL's default) and then promotes. Raises PitrError for anything
    PostgreSQL would not read as a timestamp, before any change.
    """
    target = str(target or "").strip()
    options = ["--delta"] if delta else []
    if target.lower() == "latest":
        return [*options, "--type=default"]
    if not TARGET_TIME.match(target):
        raise PitrError(
            "restore target '%s' is neither 'latest' nor a time like '2026-12-04 14:30:00+00'" % target)
    if target_action not in ("promote", "pause", "shutdown"):
        raise PitrError("target action '%s': expected promote, pause or shutdown" % target_action)
    return [*options, "--type=time", "--target=%s" % target, "--target-action=%s" % target_action]


def _stanza(info, stanza):
    for item in info or []:
        if item.get("name") == stanza:
            return item
    return None


def info_summary(info, stanza, now=None):
    """What `pgbackrest info --output=json` says about one stanza.

    {exists, status_code, status, backups, full_backups, last: {label, type,
    stop (epoch), age_seconds} or None, wal_min, wal_max}. exists is false when
    pgBackRest reports 'missing stanza path' (code 1) or does not list it.
    """
    item = _stanza(info, stanza)
    status = (item or {}).get("status") or {}
    code = status.get("code", 1 if item is None else 0)
    backups = (item or {}).get("backup") or []
    last = None
    if backups:
        newest = max(backups, key=lambda b: (b.get("timestamp") or {}).get("stop", 0))
        stop = int((newest.get("timestamp") or {}).get("stop", 0))
        now = now if now is not None else datetime.datetime.now(datetime.timezone.utc).timestamp()
        last = {"label": newest.get("label"), "type": newest.get("type"), "stop": stop,
                "age_seconds": max(0, int(now - stop))}
    archives = [a for a in (item or {}).get("archive") or [] if a.get("min") or a.get("max")]
    dbs = sorted((item or {}).get("db") or [], key=lambda d: d.get("id", 0))
    return {
        # The newest cluster the stanza backs up (a stanza upgraded with stanza-upgrade lists several).
        "system_id": str(dbs[-1].get("system-id")) if dbs else None,
        "first_stop": min(int((b.get("timestamp") or {}).get("stop", 0)) for b in backups) if backups else None,
        "exists": item is not None and code != 1,
        "status_code": code,
        "status": status.get("message", "stanza not listed" if item is None else ""),
        "backups": len(backups),
        "full_backups": sum(1 for b in backups if b.get("type") == "full"),
        "last": last,
        "wal_min": archives[0].get("min") if archives else None,
        "wal_max": archives[-1].get("max") if archives else None,
    }


_VERIFY_ARCHIVE = re.compile(r"archiveId: (\S+), total WAL checked: (\d+), total valid WAL: (\d+)")
_VERIFY_BACKUP = re.compile(r"backup: (\S+), status: ([^,]+),")


def verify_summary(text, rc=0):
    """What `pgbackrest verify --output=text --verbose` reports, for the validation report.

    {ok, status, wal_checked, wal_valid, backups_valid, backups_invalid: [label (status)], detail}.
    ok needs rc 0, 'status: ok', every checked WAL file valid and every backup valid: a WAL
    file missing, truncated or with a bad checksum breaks the archive's continuity.
    """
    text = text or ""
    status = re.search(r"^status: (\S+)", text, re.M)
    archives = _VERIFY_ARCHIVE.findall(text)
    backups = _VERIFY_BACKUP.findall(text)
    checked = sum(int(a[1]) for a in archives)
    valid = sum(int(a[2]) for a in archives)
    invalid = ["%s (%s)" % (label, state.strip()) for label, state in backups if state.strip() != "valid"]
    summary = {
        "status": status.group(1) if status else "unknown",
        "wal_checked": checked,
        "wal_valid": valid,
        "backups_valid": sum(1 for _label, state in backups if state.strip() == "valid"),
        "backups_invalid": invalid,
    }
    summary["ok"] = rc == 0 and summary["status"] == "ok" and checked == valid and not invalid
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    summary["detail"] = "" if summary["ok"] else "; ".join(lines[-6:])[:1000]
    return summary


def _verify_line(verify):
    if verify is None:
        return "not checked (pg_pitr_validate_verify: false)"
    if verify["ok"]:
        return "ok (pgbackrest verify: %d WAL files, all valid; %d backups valid)" % (
            verify["wal_checked"], verify["backups_valid"])
    return "BROKEN (pgbackrest verify: status %s, %d of %d WAL files valid%s): %s" % (
        verify["status"], verify["wal_valid"], verify["wal_checked"],
        (", invalid backups " + ", ".join(verify["backups_invalid"])) if verify["backups_invalid"] else "",
        verify["detail"])


def _stale(state, max_age_hours):
    """The newest backup's age when it is past the limit, else None."""
    last = state["info"]["last"]
    if last is not None and last["age_seconds"] > float(max_age_hours) * 3600:
        return "newest backup %s is %.1f h old (limit %s h)" % (last["label"], last["age_seconds"] / 3600.0,
                                                                max_age_hours)
    return None


def _failures(state, max_age_hours, stale_severity):
    info, archiver, verify = state["info"], state.get("archiver") or {}, state.get("verify")
    out = []
    if not info["exists"]:
        out.append("stanza missing (%s%s)" % (info["status"], "; " + state["info_error"] if state.get("info_error")
                                              else ""))
    elif info["last"] is None:
        out.append("no backup in the repository")
    elif stale_severity == "critical" and _stale(state, max_age_hours):
        out.append(_stale(state, max_age_hours))
    if archiver.get("archive_mode", "on") == "off":
        out.append("archive_mode is off: no WAL is archived")
    if archiver.get("failing"):
        out.append("WAL archiving is failing since %s (segment %s)" % (
            archiver.get("last_failed_time"), archiver.get("last_failed_wal")))
    if verify is not None and not verify["ok"]:
        out.append("the archive or a backup is broken (pgbackrest verify)")
    if state.get("check_ran") and not state.get("check_ok"):
        out.append("pgbackrest check failed: %s" % (state.get("check_error") or "no output")[:500])
    return out


def validation(state, stanza, max_age_hours, stale_severity="critical"):
    """The validation report of one stanza: {set_up, lines, failures}; any failure is critical.

    stale_severity: critical (a newest backup older than max_age_hours is a failure) or
    warning (it is only reported: a host whose scheduler never fires, like the dev machine).

    state: set_up (pgbackrest.conf present or archive_mode not off), config_file, info (an
    info_summary), info_error, archiver (a pg_stat_archiver row plus archive_mode), verify (a
    verify_summary, or None when not run), check_ran, check_ok, check_error.
    """
    if not state.get("set_up"):
        return {"set_up": False, "failures": [], "lines": [
            "pgBackRest: not set up on this host yet (no %s, archive_mode off): playbooks/pitr.yml "
            "(site.yml's pitr stage, after this one on a first run) sets it up" % state.get("config_file")]}
    info, archiver = state["info"], state.get("archiver") or {}
    last = info["last"]
    lines = [
        "stanza %s: %s, %d backups (%d full)" % (
            stanza, "exists" if info["exists"] else "MISSING (%s)" % info["status"], info["backups"],
            info["full_backups"]),
        "last backup: %s" % ("%s (%s), %.1f h old" % (last["label"], last["type"], last["age_seconds"] / 3600.0)
                             if last else "none"),
        "archived WAL: %s .. %s; continuity: %s" % (info["wal_min"] or "none", info["wal_max"] or "none",
                                                   _verify_line(state.get("verify"))),
        "archiver: %s archived, %s failed, %s; archive_mode %s" % (
            archiver.get("archived_count", "?"), archiver.get("failed_count", "?"),
            "FAILING since %s" % archiver.get("last_failed_time") if archiver.get("failing") else "not failing",
            archiver.get("archive_mode", "?")),
        "pgbackrest check: %s" % ("skipped (check mode)" if not state.get("check_ran")
                                  else "ok" if state.get("check_ok") else "FAILED: %s" % state.get("check_error")),
    ]
    if stale_severity not in ("critical", "warning"):
        raise PitrError("stale backup severity '%s': expected critical or warning" % stale_severity)
    failures = _failures(state, max_age_hours, stale_severity)
    if stale_severity == "warning" and _stale(state, max_age_hours):
        lines.append("WARNING: %s (pg_pitr_validate_stale_severity: warning)" % _stale(state, max_age_hours))
    lines.append("critical: %s" % ("; ".join(failures) if failures else "none"))
    return {"set_up": True, "lines": lines, "failures": failures}


def _utc(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00")


def restore_offer(info, stanza, system_id, archiver, inventory_dir=""):
    """What the corruption rollback says about point-in-time recovery: {available, lines}.

    Offered only when the stanza has a backup of this very cluster (pgBackRest's system-id equals
    the server's pg_control_system().system_identifier): the inventory's pgbackrest.conf may
    describe another cluster than the one being rolled back. archiver: last_archived_wal and
    last_archived_time of pg_stat_archiver (the newest point a restore reaches).
    """
    summary = info_summary(info, stanza)
    if not summary["exists"] or not summary["backups"]:
        return {"available": False, "lines": ["point-in-time recovery: not offered (pgBackRest stanza %s: %s)" % (
            stanza, "no backup" if summary["exists"] else summary["status"])]}
    if summary["system_id"] and system_id and str(system_id) != summary["system_id"]:
        return {"available": False, "lines": [
            "point-in-time recovery: not offered (pgBackRest stanza %s backs up another cluster: system id %s, "
            "this server %s)" % (stanza, summary["system_id"], system_id)]}
    archiver = archiver or {}
    newest = archiver.get("last_archived_time") or _utc(summary["last"]["stop"])
    inventory = " -i %s" % inventory_dir if inventory_dir else ""
    return {"available": True, "lines": [
        "point-in-time recovery is available instead of this dump (pgBackRest stanza %s, %d backups): any moment "
        "from %s to about %s (the newest archived WAL segment %s; target latest replays all of it)" % (
            stanza, summary["backups"], _utc(summary["first_stop"]), newest,
            archiver.get("last_archived_wal") or summary["wal_max"]),
        "it restores the whole cluster (every database) to a moment you choose, e.g. just before the corruption, "
        "and sets the current data directory aside first:",
        "ansible-playbook%s playbooks/restore_pitr.yml -e \"restore_target_time='%s'\" -e restore_confirm=yes" % (
            inventory, newest),
        "to use it instead, answer no at the confirmation (or stop this run); the rollback below restores the "
        "dump, which may be up to a day old",
    ]}


def schedule(full_weekday, full_hour, full_minute, diff_hour, diff_minute):
    """systemd OnCalendar of the weekly full and the daily differential backups (the full's day has no diff)."""
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    day = str(full_weekday)[:3].capitalize()
    if day not in days:
        raise PitrError("full backup weekday '%s': expected one of %s" % (full_weekday, ", ".join(days)))
    others = ",".join(d for d in days if d != day)
    return {
        "full": "%s *-*-* %02d:%02d:00" % (day, int(full_hour), int(full_minute)),
        "diff": "%s *-*-* %02d:%02d:00" % (others, int(diff_hour), int(diff_minute)),
        # cron and launchd number the days 0 (Sunday) to 6.
        "full_cron_weekday": str((days.index(day) + 1) % 7),
        "diff_cron_weekdays": ",".join(str((days.index(d) + 1) % 7) for d in days if d != day),
    }
