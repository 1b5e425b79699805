"""Filters of the pg_pitr role: the pure decisions of module_utils/platform_plan/pitr.py.

quant_pitr_plan              platform plan -> pgBackRest packages, binary, config file, log directory
quant_pitr_service_commands  platform plan -> argv that stop, start, restart PostgreSQL
quant_pitr_archive_command   archive_command of postgresql.conf
quant_pitr_restore_options   restore target ('latest' or a time) -> pgbackrest restore options
quant_pitr_info              `pgbackrest info --output=json` -> what the role acts on for one stanza
quant_pitr_verify            `pgbackrest verify --output=text --verbose` -> ok, WAL checked/valid, invalid backups
quant_pitr_validation        probes of tasks_from: validate -> report lines and critical failures
quant_pitr_restore_offer     info + this server -> the corruption rollback's offer of point-in-time recovery
quant_pitr_schedule          weekly full + daily differential -> systemd OnCalendar and cron days
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ansible.errors import AnsibleFilterError

_UTILS = Path(__file__).resolve().parents[2] / "module_utils"


def _pitr():
    """module_utils/platform_plan/pitr.py: controller-side plugins do not get the module_utils path
    that ansible.cfg gives to modules, so load it by path (as plugins/filter/platform.py does)."""
    try:
        return importlib.import_module("ansible.module_utils.platform_plan.pitr")
    except ImportError:
        key = "quant_module_utils_platform_plan_pitr"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, _UTILS / "platform_plan" / "pitr.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[key] = module
        return sys.modules[key]


def _call(name, *args, **kwargs):
    try:
        return getattr(_pitr(), name)(*args, **kwargs)
    except ValueError as exc:
        raise AnsibleFilterError("quant_pitr: %s" % exc) from exc


def quant_pitr_plan(plan):
    return _call("pitr_plan", plan)


def quant_pitr_service_commands(plan, mode="", data_dir="", bin_dir="", log_file=""):
    return _call("service_commands", plan, mode, data_dir=data_dir, bin_dir=bin_dir, log_file=log_file)


def quant_pitr_archive_command(binary, config_file, stanza):
    return _call("archive_command", binary, config_file, stanza)


def quant_pitr_restore_options(target, delta=False, target_action="promote"):
    return _call("restore_options", target, delta=bool(delta), target_action=target_action)


def quant_pitr_info(info, stanza, now=None):
    return _call("info_summary", info, stanza, now)


def quant_pitr_verify(text, rc=0):
    return _call("verify_summary", text, int(rc))


def quant_pitr_validation(state, stanza, max_age_hours, stale_severity="critical"):
    return _call("validation", state, stanza, max_age_hours, stale_severity)


def quant_pitr_restore_offer(info, stanza, system_id, archiver, inventory_dir=""):
    return _call("restore_offer", info, stanza, system_id, archiver, inventory_dir)


def quant_pitr_schedule(full_weekday, full_hour, full_minute, diff_hour, diff_minute):
    return _call("schedule", full_weekday, full_hour, full_minute, diff_hour, diff_minute)


class FilterModule:
    def filters(self):
        return {
            "quant_pitr_plan": quant_pitr_plan,
            "quant_pitr_service_commands": quant_pitr_service_commands,
            "quant_pitr_archive_command": quant_pitr_archive_command,
            "quant_pitr_restore_options": quant_pitr_restore_options,
            "quant_pitr_info": quant_pitr_info,
            "quant_pitr_verify": quant_pitr_verify,
            "quant_pitr_validation": quant_pitr_validation,
            "quant_pitr_restore_offer": quant_pitr_restore_offer,
            "quant_pitr_schedule": quant_pitr_schedule,
        }
