"""scripts/test.sh: a failing molecule scenario fails the stage, whichever its place in the order.

run_stage calls each stage inside `if !`, where bash ignores set -e; a stage of several
commands must check each one itself. Run against a copy of the script in a scratch tree
whose molecule and image build are stand-ins that only record their calls."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _executable(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "test.sh", tmp_path / "scripts" / "test.sh")
    (tmp_path / "molecule").mkdir()
    (tmp_path / "molecule" / "ORDER").write_text("first\nsecond\n")
    _executable(tmp_path / "scripts" / "build-images.sh", "#!/bin/sh\necho images >> \"$CALLS\"\n")
    # molecule fails for the scenarios listed in FAIL_SCENARIOS
    _executable(tmp_path / ".venv" / "bin" / "molecule",
                "#!/bin/sh\necho \"molecule $3\" >> \"$CALLS\"\n"
                "case \" $FAIL_SCENARIOS \" in *\" $3 \"*) exit 1 ;; esac\n")
    for tool in ("pytest", "ansible-playbook"):
        _executable(tmp_path / ".venv" / "bin" / tool, "#!/bin/sh\nexit 0\n")
    _executable(tmp_path / "scripts" / "bootstrap.sh", "#!/bin/sh\nexit 0\n")
    return tmp_path


def run(tree, fail):
    calls = tree / "calls"
    env = dict(os.environ, STAGES="bootstrap molecule", FAIL_SCENARIOS=fail, CALLS=str(calls))
    done = subprocess.run(["bash", str(tree / "scripts" / "test.sh")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    return done, calls.read_text().split("\n")[:-1]


@pytest.mark.parametrize("fail", ["first", "second", "first second"])
def test_a_failing_scenario_fails_the_stage_and_the_others_still_run(tree, fail):
    done, calls = run(tree, fail)
    assert done.returncode == 1, done.stdout
    assert calls == ["images", "molecule first", "molecule second"]
    assert "molecule scenarios failed: %s" % fail in done.stdout
    assert "test.sh: stage molecule failed" in done.stdout


def test_every_scenario_passing_passes(tree):
    done, calls = run(tree, "")
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls == ["images", "molecule first", "molecule second"]
    assert "test.sh: all stages passed" in done.stdout
