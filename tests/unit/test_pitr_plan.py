"""The pg_pitr role's platform decisions (module_utils/platform_plan/pitr.py) and their filters
(plugins/filter/pitr.py), for every platform of the support matrix."""

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible.module_utils.platform_plan import pitr
from ansible.module_utils.platform_plan.matrix import platform_plan
from file_module import load_file

_PATH = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "pitr.py"
pitr_filters = load_file("quant_filter_pitr", _PATH)
FILTERS = pitr_filters.FilterModule().filters()

LINUX = [("Debian", "Debian", "11", "x86_64"), ("Debian", "Debian", "12.11", "x86_64"),
         ("Debian", "Debian", "13", "aarch64"), ("Debian", "Ubuntu", "20.04", "x86_64"),
         ("Debian", "Ubuntu", "22.04", "x86_64"), ("Debian", "Ubuntu", "24.04", "aarch64")]
MACS = [("arm64", "/opt/homebrew"), ("x86_64", "/usr/local")]


def mac(arch="arm64"):
    return platform_plan("Darwin", "MacOSX", "14.5", arch, 15, brew_user="carol")


@pytest.mark.parametrize("facts", LINUX, ids=["-".join(f[1:3]) for f in LINUX])
def test_debian_family_uses_the_distribution_package(facts):
    plan = pitr.pitr_plan(platform_plan(*facts, 15))
    assert plan["packages"] == ["pgbackrest"] and plan["package_manager"] == "apt"
    assert plan["binary"] == "/usr/bin/pgbackrest"
    assert plan["config_file"] == "/etc/pgbackrest/pgbackrest.conf"
    assert plan["log_path"] == "/var/log/pgbackrest"
    assert plan["service_mode"] == "pg_ctlcluster"


@pytest.mark.parametrize(("arch", "prefix"), MACS)
def test_macos_uses_homebrew_under_its_prefix(arch, prefix):
    plan = pitr.pitr_plan(mac(arch))
    assert plan["packages"] == ["pgbackrest"] and plan["package_manager"] == "homebrew"
    assert plan["binary"] == prefix + "/bin/pgbackrest"
    assert plan["config_file"] == prefix + "/etc/pgbackrest/pgbackrest.conf"
    assert plan["service_mode"] == "brew" and plan["root_group"] == "wheel"


def test_unknown_family_is_refused():
    with pytest.raises(pitr.PitrError, match="os family 'Suse'"):
        pitr.pitr_plan({"os_family": "Suse"})


def test_pg_ctlcluster_commands_run_as_root_without_pg_ctl_options():
    cmds = pitr.service_commands(platform_plan("Debian", "Debian", "12", "x86_64", 15, cluster_name="quant"))
    assert cmds["stop"] == ["pg_ctlcluster", "15", "quant", "stop"]
    assert cmds["start"] == ["pg_ctlcluster", "15", "quant", "start"]
    assert cmds["restart"] == ["pg_ctlcluster", "15", "quant", "restart"]
    assert cmds["as_os_user"] is False


def test_brew_commands_run_as_the_homebrew_user():
    cmds = pitr.service_commands(mac())
    assert cmds["restart"] == ["/opt/homebrew/bin/brew", "services", "restart", "postgresql@15"]
    assert cmds["as_os_user"] is True


def test_pg_ctl_mode_names_the_data_directory_and_log():
    plan = platform_plan("Debian", "Debian", "12", "x86_64", 15)
    cmds = pitr.service_commands(plan, "pg_ctl", data_dir="/srv/pg", bin_dir="/opt/pg/bin", log_file="/srv/log")
    assert cmds["start"] == ["/opt/pg/bin/pg_ctl", "-D", "/srv/pg", "-w", "-t", "300", "start", "-l", "/srv/log"]
    assert cmds["stop"][-3:] == ["stop", "-m", "fast"]
    assert cmds["as_os_user"] is True
    defaults = pitr.service_commands(plan, "pg_ctl")
    assert defaults["start"][:3] == ["/usr/lib/postgresql/15/bin/pg_ctl", "-D", "/var/lib/postgresql/15/main"]
    assert "-l" not in defaults["start"]


def test_unknown_service_mode_is_refused():
    with pytest.raises(pitr.PitrError, match="unknown service mode 'systemctl'"):
        pitr.service_commands(mac(), "systemctl")


def test_archive_command():
    assert pitr.archive_command("/usr/bin/pgbackrest", "/etc/pgbackrest/pgbackrest.conf", "quant") == (
        "/usr/bin/pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=quant archive-push %p")


@pytest.mark.parametrize("bad", ["my stanza", "it's", "", "a%b", "back\\slash"])
def test_archive_command_refuses_what_would_break_the_quoted_setting(bad):
    with pytest.raises(pitr.PitrError, match="cannot go into archive_command"):
        pitr.archive_command("/usr/bin/pgbackrest", "/etc/pgbackrest/pgbackrest.conf", bad)


def test_restore_latest_replays_everything():
    assert pitr.restore_options("latest") == ["--type=default"]
    assert pitr.restore_options(" LATEST ", delta=True) == ["--delta", "--type=default"]


@pytest.mark.parametrize("target", ["2026-12-04 14:30:00+00", "2026-12-04T14:30:00Z", "2026-12-04 14:30",
                                    "2026-12-04 14:30:00.123456+00", "2026-12-04 14:30:00 UTC",
                                    "2026-12-04 14:30:00-05:00"])
def test_restore_to_a_time_promotes(target):
    assert pitr.restore_options(target) == ["--type=time", "--target=" + target, "--target-action=promote"]


@pytest.mark.parametrize("target", ["yesterday", "2026-12-04", "2026-12-04 14:30:00'; DROP", "", None,
                                    "14:30 2026-12-04"])
def test_unreadable_targets_are_refused_before_any_change(target):
    with pytest.raises(pitr.PitrError, match="neither 'latest' nor a time"):
        pitr.restore_options(target)


def test_target_action_is_checked():
    assert pitr.restore_options("2026-12-04 14:30", target_action="pause")[-1] == "--target-action=pause"
    with pytest.raises(pitr.PitrError, match="target action 'explode'"):
        pitr.restore_options("2026-12-04 14:30", target_action="explode")


MISSING = [{"name": "quant", "status": {"code": 1, "message": "missing stanza path"}, "backup": [], "archive": []}]
TWO_BACKUPS = [{
    "name": "quant", "status": {"code": 0, "message": "ok"},
    "backup": [
        {"label": "20261129-011500F", "type": "full", "timestamp": {"start": 1764378900, "stop": 1764378960}},
        {"label": "20261129-011500F_20261130-011500D", "type": "diff",
         "timestamp": {"start": 1764465300, "stop": 1764465330}},
    ],
    "archive": [{"id": "15-1", "min": "000000010000000000000001", "max": "000000010000000000000009"}],
}]


def test_info_of_a_missing_stanza():
    summary = pitr.info_summary(MISSING, "quant")
    assert summary["exists"] is False and summary["backups"] == 0 and summary["last"] is None
    assert summary["status"] == "missing stanza path"


def test_info_of_an_unlisted_stanza():
    summary = pitr.info_summary([], "quant")
    assert summary["exists"] is False and summary["status"] == "stanza not listed"


def test_info_names_the_newest_backup_and_its_age():
    summary = pitr.info_summary(TWO_BACKUPS, "quant", now=1764465330 + 3600)
    assert summary["exists"] is True and summary["backups"] == 2 and summary["full_backups"] == 1
    assert summary["last"] == {"label": "20261129-011500F_20261130-011500D", "type": "diff",
                               "stop": 1764465330, "age_seconds": 3600}
    assert (summary["wal_min"], summary["wal_max"]) == ("000000010000000000000001", "000000010000000000000009")


VERIFY_OK = """stanza: quant
status: ok
  archiveId: 15-1, total WAL checked: 3, total valid WAL: 3
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261204-212554F, status: valid, total files checked: 1764, total valid files: 1764
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
"""


def test_verify_of_a_consistent_repository():
    summary = pitr.verify_summary(VERIFY_OK, 0)
    assert summary == {"ok": True, "status": "ok", "wal_checked": 3, "wal_valid": 3, "backups_valid": 1,
                       "backups_invalid": [], "detail": ""}


def test_verify_finds_a_bad_wal_file_or_backup():
    bad_wal = VERIFY_OK.replace("status: ok", "status: error").replace("total valid WAL: 3", "total valid WAL: 2")
    summary = pitr.verify_summary(bad_wal, 1)
    assert not summary["ok"] and summary["wal_valid"] == 2 and "status: error" in summary["detail"]
    bad_backup = VERIFY_OK.replace("status: valid", "status: invalid")
    assert pitr.verify_summary(bad_backup, 0)["backups_invalid"] == ["20261204-212554F (invalid)"]
    assert not pitr.verify_summary("", 0)["ok"]  # nothing reported is not a proof


def test_schedule_full_on_its_day_diff_on_the_others():
    cal = pitr.schedule("Sun", "1", "15", "1", "15")
    assert cal["full"] == "Sun *-*-* 01:15:00"
    assert cal["diff"] == "Mon,Tue,Wed,Thu,Fri,Sat *-*-* 01:15:00"
    assert cal["full_cron_weekday"] == "0" and cal["diff_cron_weekdays"] == "1,2,3,4,5,6"
    assert pitr.schedule("wednesday", 3, 0, 3, 0)["full_cron_weekday"] == "3"
    with pytest.raises(pitr.PitrError, match="weekday 'Funday'"):
        pitr.schedule("Funday", 1, 0, 1, 0)


def test_filters_wire_the_functions():
    assert set(FILTERS) == {"quant_pitr_plan", "quant_pitr_service_commands", "quant_pitr_archive_command",
                            "quant_pitr_restore_options", "quant_pitr_info", "quant_pitr_schedule",
                            "quant_pitr_verify", "quant_pitr_validation",
                            "quant_pitr_restore_offer"}
    assert FILTERS["quant_pitr_plan"](mac())["package_manager"] == "homebrew"
    assert FILTERS["quant_pitr_restore_options"]("latest", True) == ["--delta", "--type=default"]
    assert FILTERS["quant_pitr_info"](TWO_BACKUPS, "quant")["backups"] == 2


def test_filter_errors_are_ansible_errors():
    with pytest.raises(AnsibleFilterError, match="quant_pitr: restore target 'soon'"):
        FILTERS["quant_pitr_restore_options"]("soon")


def _state(**extra):
    state = {"set_up": True, "config_file": "/etc/pgbackrest/pgbackrest.conf",
             "info": pitr.info_summary(TWO_BACKUPS, "quant", now=1764465330 + 3600), "info_error": "",
             "archiver": {"archived_count": 9, "failed_count": 0, "failing": False, "archive_mode": "on"},
             "verify": pitr.verify_summary(VERIFY_OK, 0), "check_ran": True, "check_ok": True, "check_error": ""}
    state.update(extra)
    return state


def test_validation_of_a_healthy_stanza_has_no_failure():
    report = pitr.validation(_state(), "quant", 36)
    assert report["failures"] == [] and report["set_up"]
    text = "\n".join(report["lines"])
    assert "2 backups (1 full)" in text and "(diff), 1.0 h old" in text
    assert "continuity: ok (pgbackrest verify: 3 WAL files, all valid" in text
    assert "not failing" in text and "pgbackrest check: ok" in text and "critical: none" in text


def test_a_stale_backup_is_critical_or_only_a_warning():
    assert pitr.validation(_state(), "quant", 0.5)["failures"] == [
        "newest backup 20261129-011500F_20261130-011500D is 1.0 h old (limit 0.5 h)"]
    warned = pitr.validation(_state(), "quant", 0.5, "warning")
    assert warned["failures"] == []
    assert "WARNING: newest backup 20261129-011500F_20261130-011500D is 1.0 h old" in "\n".join(warned["lines"])
    with pytest.raises(pitr.PitrError, match="severity 'loud'"):
        pitr.validation(_state(), "quant", 36, "loud")


def test_validation_of_a_host_never_set_up_reports_without_failing():
    report = pitr.validation(_state(set_up=False), "quant", 36)
    assert report["failures"] == [] and not report["set_up"] and "not set up" in report["lines"][0]


def test_validation_failures_are_each_named():
    failing = {"archived_count": 9, "failed_count": 4, "failing": True, "archive_mode": "on",
               "last_failed_time": "2026-12-04 21:00:00+00", "last_failed_wal": "000000010000000000000010"}
    report = pitr.validation(_state(archiver=failing, check_ok=False, check_error="ERROR: [082]: timeout",
                                    verify=pitr.verify_summary("status: error", 1)), "quant", 0.5)
    text = "; ".join(report["failures"])
    assert "is 1.0 h old (limit 0.5 h)" in text and "failing since 2026-12-04 21:00:00+00" in text
    assert "pgbackrest verify" in text and "check failed: ERROR: [082]: timeout" in text
    assert "FAILING since" in "\n".join(report["lines"])
    missing = pitr.validation(_state(info=pitr.info_summary(MISSING, "quant"), verify=None, check_ran=False),
                              "quant", 36)
    assert missing["failures"] == ["stanza missing (missing stanza path)"]
    assert "not checked" in "\n".join(missing["lines"]) and "skipped (check mode)" in "\n".join(missing["lines"])


def test_restore_offer_names_the_window_and_the_command():
    info = [dict(TWO_BACKUPS[0], db=[{"id": 1, "system-id": 7642011472967116994, "version": "15"}])]
    archiver = {"last_archived_wal": "000000010000000000000009", "last_archived_time": "2025-11-30 02:00:00+00"}
    offer = pitr.restore_offer(info, "quant", "7642011472967116994", archiver, "/srv/inventories/prod")
    assert offer["available"]
    text = "\n".join(offer["lines"])
    assert "any moment from 2025-11-29 01:16:00+00 to about 2025-11-30 02:00:00+00" in text
    assert "segment 000000010000000000000009" in text
    assert ("ansible-playbook -i /srv/inventories/prod playbooks/restore_pitr.yml "
            "-e \"restore_target_time='2025-11-30 02:00:00+00'\" -e restore_confirm=yes") in text


def test_restore_offer_only_for_this_cluster_with_a_backup():
    info = [dict(TWO_BACKUPS[0], db=[{"id": 1, "system-id": 111, "version": "15"}])]
    other = pitr.restore_offer(info, "quant", "222", {})
    assert not other["available"] and "another cluster: system id 111, this server 222" in other["lines"][0]
    missing = pitr.restore_offer(MISSING, "quant", "222", {})
    assert not missing["available"] and "missing stanza path" in missing["lines"][0]
    assert not pitr.restore_offer([], "quant", "222", {})["available"]
