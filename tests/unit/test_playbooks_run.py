"""tests/playbooks_run.py: the one ansible-playbook runner of the tests (no PostgreSQL needed)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from playbooks_run import PlaybookTimeout, one_play, parse_recap, run_playbook, start_playbook

SECRET = "s3cret-extra-var"


def write_play(tmp_path, dest):
    return one_play([{"name": "Write", "ansible.builtin.copy": {"content": "{{ pw }} {{ n + 1 }}", "dest": str(dest)}},
                     {"name": "Look", "ansible.builtin.debug": {"msg": "seen"}}], tmp_path)


def test_extra_vars_go_through_a_private_file_removed_after_the_run(tmp_path):
    dest = tmp_path / "seen"
    running = start_playbook(write_play(tmp_path, dest), extra_vars={"pw": SECRET, "n": 41})
    vars_file = Path(running.cmd[running.cmd.index("-e") + 1].lstrip("@"))
    assert SECRET not in " ".join(running.cmd)
    assert stat.S_IMODE(vars_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(vars_file.parent.stat().st_mode) == 0o700
    out = running.wait(timeout=120)
    assert out.rc == 0, out.tail()
    assert dest.read_text() == "%s 42" % SECRET  # typed values survive (n is a number)
    assert not vars_file.exists() and not vars_file.parent.exists()
    assert out.recap["localhost"]["ok"] == 2 and out.changed == 1 and out.failed == 0


def test_check_mode_and_json_results(tmp_path):
    dest = tmp_path / "seen"
    out = run_playbook(write_play(tmp_path, dest), extra_vars={"pw": "x", "n": 1}, check=True, json_output=True,
                       timeout=120)
    assert out.rc == 0, out.tail()
    assert not dest.exists()  # --check wrote nothing
    assert out.results()["Write"]["changed"] is True
    assert out.recap == {"localhost": {"ok": 2, "changed": 1, "unreachable": 0, "failed": 0, "skipped": 0,
                                       "rescued": 0, "ignored": 0}}


def test_a_failed_task_is_in_the_recap_and_the_rc(tmp_path):
    play = one_play([{"name": "Boom", "ansible.builtin.fail": {"msg": "planted"}}], tmp_path)
    out = run_playbook(play, timeout=120)
    assert out.rc != 0 and out.returncode == out.rc
    assert out.failed == 1 and "planted" in out.stdout


def test_a_hang_is_killed_and_reported(tmp_path):
    play = one_play([{"name": "Sleep", "ansible.builtin.command": "sleep 60"}], tmp_path)
    with pytest.raises(PlaybookTimeout, match="did not finish within 3 s"):
        run_playbook(play, timeout=3)


def test_recap_of_the_default_callback():
    text = ("PLAY RECAP ****\nlocalhost                  : ok=5    changed=2    unreachable=0    failed=1    "
            "skipped=3    rescued=0    ignored=1   \n")
    assert parse_recap(text) == {"localhost": {"ok": 5, "changed": 2, "unreachable": 0, "failed": 1, "skipped": 3,
                                               "rescued": 0, "ignored": 1}}
    assert parse_recap("no recap") == {}


def test_a_log_file_gets_both_streams(tmp_path):
    play = one_play([{"name": "Say", "ansible.builtin.debug": {"msg": "to the log"}}], tmp_path)
    log = tmp_path / "run.log"
    out = run_playbook(play, "-v", log=log, timeout=120)
    assert out.rc == 0 and out.stdout == log.read_text() and "to the log" in out.stdout
    assert out.recap["localhost"]["ok"] == 1
